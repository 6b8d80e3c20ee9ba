//! The underlay through a TAP with UDP-tunnel GSO: a TCP super-frame leaves in one write with
//! its outer Ethernet/IPv4/UDP/VXLAN headers and a tunnel vnet header (the kernel segments it,
//! or a veth carries it whole), and arrives in one read.
//!
//! The TAP (`vxtnl0`, one queue per worker) is joined to the device holding the VTEP address
//! by `tc` (clsact, u32 and mirred are all this needs): everything the switch writes into the
//! TAP is redirected out of the underlay device, and only VXLAN datagrams to the VTEP whose IP
//! total length is at least 2048 bytes are redirected from the underlay device into the TAP.
//! Everything else — small frames (which the UDP socket path batches better), ARP, the node's
//! own traffic — stays with the kernel. The kernel keeps the VTEP address on the underlay
//! device, so it also answers ARP for it, with the MAC address the switch writes as the outer
//! source; the switch reads the kernel's neighbour table for the remote VTEPs' MAC addresses.
//!
//! Kernels without UDP-tunnel GSO refuse `TUNSETOFFLOAD`: the switch logs it, counts it and
//! stays on the UDP socket path.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::tap::{offload, tunnel_offload, TapOptions, TapQueue};
use crate::wire::vnet::tunnel;

/// Name of the underlay's TAP.
pub const TAP_NAME: &str = "vxtnl0";
/// Smallest IPv4 total length the underlay device hands to the TAP by default (a power of
/// two: the u32 rules test its high bits); `--underlay-tap-min-len` sets another (0: every
/// VXLAN datagram to the VTEP). Super-frames shorter than it are never sent through the TAP:
/// the receiving node's rules would hand them, unsegmented, to its UDP sockets.
pub const MIN_TAP_LEN: u16 = 2048;
/// The outer IPv4 identification of every super-frame sent through the TAP, and what the
/// receiving node's rules match besides the length: a batch of small frames in one UDP GSO
/// send is as long as a super-frame, and must reach the UDP sockets, which take it whole
/// (UDP GRO), rather than the TAP, which would take it apart one read per frame. Outer
/// headers carry DF, so the identification is free for this (RFC 6864); another sender's
/// datagram that carries it by chance is still handled right through the TAP, one frame a
/// read.
pub const TNL_IP_ID: u16 = 0x7e57;
/// `tc` filter priorities of the switch's rules (so that they are found and removed again,
/// also after a crash, without touching anyone else's).
const PREF_TAP: u16 = 47_890;
const PREF_UNDERLAY: u16 = 47_891;
/// How often the neighbour table is read.
const NEIGH_REFRESH: Duration = Duration::from_millis(100);
/// How soon it is read again after a worker missed an address.
const NEIGH_WANTED: Duration = Duration::from_millis(2);

/// Which way TCP super-frames take to and from the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Through the TAP with UDP-tunnel GSO (fails the start if the kernel lacks it).
    Tap = 0,
    /// Through the UDP sockets (segmented in userspace, UDP GSO/GRO batches).
    Udp = 1,
    /// The TAP when the kernel takes UDP-tunnel GSO, else the UDP sockets.
    Auto = 2,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "tap" => Ok(Mode::Tap),
            "udp" => Ok(Mode::Udp),
            "auto" => Ok(Mode::Auto),
            _ => Err(format!("{s:?}: expected tap, udp or auto")),
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Auto as u8);

static MIN_LEN: AtomicU32 = AtomicU32::new(MIN_TAP_LEN as u32);

/// Sets the smallest IPv4 total length that goes through the TAP (a power of two from 2048
/// to 32768; before the underlay is set up).
pub fn set_min_len(n: u16) -> Result<(), String> {
    if !n.is_power_of_two() || n < 2048 {
        return Err(format!(
            "{n}: the TAP's length threshold is a power of two from 2048 to 32768 (above \
             any segment, so a segmented super-frame never splits between two ways)"
        ));
    }
    MIN_LEN.store(n as u32, Ordering::Relaxed);
    Ok(())
}

/// The threshold set by [`set_min_len`].
pub fn min_len() -> u16 {
    MIN_LEN.load(Ordering::Relaxed) as u16
}

/// Sets the mode for the switch the process runs (before the underlay is set up).
pub fn set_mode(m: Mode) {
    MODE.store(m as u8, Ordering::Relaxed);
}

/// The mode set by [`set_mode`] (`Auto` by default).
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        0 => Mode::Tap,
        1 => Mode::Udp,
        _ => Mode::Auto,
    }
}

/// Remote VTEP IPv4 address → MAC address, written by one control-side thread and read by
/// the workers without locks: open addressing over a fixed array, a key is never moved or
/// removed (a neighbour that goes away has its value zeroed).
#[derive(Debug)]
pub struct NeighTable {
    keys: Box<[AtomicU32]>,
    /// The MAC address in the low 48 bits, bit 63 set when valid.
    vals: Box<[AtomicU64]>,
    /// A worker missed an address: read the kernel's table again soon.
    wanted: AtomicBool,
}

const NEIGH_SLOTS: usize = 8192;
const NEIGH_PROBES: usize = 64;
const VALID: u64 = 1 << 63;

impl Default for NeighTable {
    fn default() -> Self {
        NeighTable {
            keys: (0..NEIGH_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            vals: (0..NEIGH_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            wanted: AtomicBool::new(false),
        }
    }
}

impl NeighTable {
    #[inline]
    fn home(ip: u32) -> usize {
        (ip.wrapping_mul(0x9e37_79b1) >> 19) as usize % NEIGH_SLOTS
    }

    /// The MAC address of `ip`, if known.
    #[inline]
    pub fn get(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        let k = u32::from(ip);
        if k == 0 {
            return None;
        }
        let h = Self::home(k);
        for i in 0..NEIGH_PROBES {
            let s = (h + i) % NEIGH_SLOTS;
            match self.keys[s].load(Ordering::Acquire) {
                0 => return None,
                x if x == k => {
                    let v = self.vals[s].load(Ordering::Acquire);
                    if v & VALID == 0 {
                        return None;
                    }
                    let b = v.to_be_bytes();
                    return Some([b[2], b[3], b[4], b[5], b[6], b[7]]);
                }
                _ => {}
            }
        }
        None
    }

    /// Asks for the kernel's table to be read again soon (after a miss; one store, no
    /// syscall).
    #[inline]
    pub fn want(&self) {
        if !self.wanted.load(Ordering::Relaxed) {
            self.wanted.store(true, Ordering::Relaxed);
        }
    }

    /// Records (or, with `None`, forgets) the MAC address of `ip`. One writer at a time.
    pub fn set(&self, ip: Ipv4Addr, mac: Option<[u8; 6]>) {
        let k = u32::from(ip);
        if k == 0 {
            return;
        }
        let v = match mac {
            Some(m) => VALID | u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]),
            None => 0,
        };
        let h = Self::home(k);
        for i in 0..NEIGH_PROBES {
            let s = (h + i) % NEIGH_SLOTS;
            match self.keys[s].load(Ordering::Acquire) {
                0 => {
                    if v == 0 {
                        return;
                    }
                    // The value first, then the key that makes it visible.
                    self.vals[s].store(v, Ordering::Release);
                    self.keys[s].store(k, Ordering::Release);
                    return;
                }
                x if x == k => {
                    self.vals[s].store(v, Ordering::Release);
                    return;
                }
                _ => {}
            }
        }
    }

    /// Every address with a known MAC address.
    pub fn known(&self) -> Vec<Ipv4Addr> {
        (0..NEIGH_SLOTS)
            .filter(|&s| {
                self.keys[s].load(Ordering::Acquire) != 0
                    && self.vals[s].load(Ordering::Acquire) & VALID != 0
            })
            .map(|s| Ipv4Addr::from(self.keys[s].load(Ordering::Acquire)))
            .collect()
    }
}

/// Parses `/proc/net/arp` (the kernel's IPv4 neighbour table): the complete entries
/// (`ATF_COM`) of device `dev`.
pub fn parse_arp(text: &str, dev: &str) -> Vec<(Ipv4Addr, [u8; 6])> {
    const ATF_COM: u32 = 0x2;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != dev {
            continue;
        }
        let Ok(ip) = f[0].parse::<Ipv4Addr>() else {
            continue;
        };
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & ATF_COM == 0 {
            continue;
        }
        if let Some(mac) = parse_mac(f[3]) {
            if mac != [0; 6] {
                out.push((ip, mac));
            }
        }
    }
    out
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut it = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(it.next()?, 16).ok()?;
    }
    it.next().is_none().then_some(m)
}

/// Reads the neighbour table once into `t`: new and changed entries are set, entries gone
/// from the kernel are forgotten.
fn refresh(t: &NeighTable, dev: &str) {
    let Ok(text) = fs::read_to_string("/proc/net/arp") else {
        return;
    };
    let now = parse_arp(&text, dev);
    for ip in t.known() {
        if !now.iter().any(|(a, _)| *a == ip) {
            t.set(ip, None);
        }
    }
    for (ip, mac) in now {
        if t.get(ip) != Some(mac) {
            t.set(ip, Some(mac));
        }
    }
}

/// What a worker gets: its queue of the underlay's TAP and what it needs to write outer
/// headers.
#[derive(Debug)]
pub struct TunnelPort {
    pub queue: TapQueue,
    /// The underlay device's MAC address (outer source; frames to it are ours).
    pub mac: [u8; 6],
    pub vtep: Ipv4Addr,
    /// The underlay device's MTU: no outer segment may be larger.
    pub mtu: u16,
    /// Compute the outer UDP checksum (per segment, by the kernel).
    pub udp_csum: bool,
    pub neigh: Arc<NeighTable>,
}

/// The control side's handle: keeps the device referenced, refreshes the neighbour table,
/// and removes the `tc` rules when dropped.
pub struct TunnelTap {
    dev: String,
    _control: TapQueue,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for TunnelTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        remove_rules(&self.dev);
    }
}

/// The tunnel set up by [`setup`], kept until [`shutdown`].
static RUNNING: Mutex<Option<TunnelTap>> = Mutex::new(None);

/// Why the TAP way is not used.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sets up the underlay's TAP for `workers` workers in the calling thread's namespace: finds
/// the device holding `vtep`, opens the TAP and probes UDP-tunnel GSO, joins the two with
/// `tc`, and starts reading the neighbour table. Kept until [`shutdown`].
pub fn setup(
    vtep: IpAddr,
    vxlan_port: u16,
    workers: usize,
    udp_csum: bool,
) -> Result<Vec<TunnelPort>, Unavailable> {
    let IpAddr::V4(v4) = vtep else {
        return Err(Unavailable("IPv6 underlay (IPv4 only for now)".into()));
    };
    let dev = device_of(v4)
        .map_err(|e| Unavailable(format!("cannot list addresses: {e}")))?
        .ok_or_else(|| Unavailable(format!("no device holds {v4}")))?;
    let mac = fs::read_to_string(format!("/sys/class/net/{dev}/address"))
        .ok()
        .and_then(|s| parse_mac(s.trim()))
        .ok_or_else(|| Unavailable(format!("{dev}: no MAC address")))?;
    let mtu = fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .ok_or_else(|| Unavailable(format!("{dev}: no MTU")))?;
    remove_rules(&dev);
    let opts = TapOptions { vnet_hdr: true };
    let open = |_: usize| -> io::Result<TapQueue> {
        let q = TapQueue::open(TAP_NAME, opts)?;
        q.set_vnet_hdr_len(tunnel::HEADER_LEN)?;
        Ok(q)
    };
    let mut queues = Vec::new();
    for i in 0..workers.max(1) {
        queues.push(open(i).map_err(|e| Unavailable(format!("{TAP_NAME}: {e}")))?);
    }
    let flags = offload::CSUM
        | offload::TSO4
        | offload::TSO6
        | tunnel_offload::UDP_TUNNEL_GSO
        | tunnel_offload::UDP_TUNNEL_GSO_CSUM;
    queues[0].set_offload(flags).map_err(|e| {
        Unavailable(format!(
            "the kernel does not take UDP-tunnel GSO on a TAP ({e}; needs Linux 6.17)"
        ))
    })?;
    let control = open(workers).map_err(|e| Unavailable(format!("{TAP_NAME}: {e}")))?;
    control
        .detach()
        .map_err(|e| Unavailable(format!("{TAP_NAME}: {e}")))?;
    // No addresses, no IPv6, no ARP: nothing of the TAP's own goes out of it.
    let _ = fs::write(
        format!("/proc/sys/net/ipv6/conf/{TAP_NAME}/disable_ipv6"),
        "1",
    );
    run("ip", &["link", "set", TAP_NAME, "arp", "off", "up"]).map_err(Unavailable)?;
    if let Err(e) = add_rules(&dev, v4, vxlan_port) {
        remove_rules(&dev);
        return Err(Unavailable(e));
    }
    let neigh = Arc::new(NeighTable::default());
    refresh(&neigh, &dev);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (neigh, stop, dev) = (neigh.clone(), stop.clone(), dev.clone());
        std::thread::Builder::new()
            .name("vx-tnl-neigh".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(NEIGH_WANTED);
                    if neigh.wanted.swap(false, Ordering::Relaxed)
                        || last.elapsed() >= NEIGH_REFRESH
                    {
                        refresh(&neigh, &dev);
                        last = std::time::Instant::now();
                    }
                }
            })
            .map_err(|e| Unavailable(format!("cannot start the neighbour thread: {e}")))?
    };
    let tt = TunnelTap {
        dev: dev.clone(),
        _control: control,
        stop,
        thread: Some(thread),
    };
    if let Ok(mut r) = RUNNING.lock() {
        *r = Some(tt);
    }
    eprintln!(
        "vxswitchd: super-frames to and from the underlay through {TAP_NAME} (UDP-tunnel GSO), joined to {dev}"
    );
    Ok(queues
        .into_iter()
        .map(|queue| TunnelPort {
            queue,
            mac,
            vtep: v4,
            mtu,
            udp_csum,
            neigh: neigh.clone(),
        })
        .collect())
}

/// Removes rules a switch that ended without [`shutdown`] (killed) left on the device holding
/// `vtep`: they would send large VXLAN datagrams to a TAP that is gone.
pub fn clear_stale(vtep: IpAddr) {
    if let IpAddr::V4(v4) = vtep {
        if let Ok(Some(dev)) = device_of(v4) {
            remove_rules(&dev);
        }
    }
}

/// Removes the `tc` rules and lets the TAP go (it disappears with the workers' queues).
pub fn shutdown() {
    let t = RUNNING.lock().ok().and_then(|mut r| r.take());
    drop(t);
}

fn add_rules(dev: &str, vtep: Ipv4Addr, vxlan_port: u16) -> Result<(), String> {
    // clsact may be there already (ours from before, or someone else's): that is fine.
    let _ = Command::new("tc")
        .args(["qdisc", "add", "dev", dev, "clsact"])
        .output();
    let _ = Command::new("tc")
        .args(["qdisc", "add", "dev", TAP_NAME, "clsact"])
        .output();
    let p = PREF_TAP.to_string();
    run(
        "tc",
        &[
            "filter", "add", "dev", TAP_NAME, "ingress", "pref", &p, "protocol", "all", "u32",
            "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", dev,
        ],
    )?;
    let dst = format!("{vtep}/32");
    let port = vxlan_port.to_string();
    // The switch's mark, and IP total length >= min: one of the bits 0x8000..min set (u32
    // matches AND only, so one rule per bit).
    let min = min_len();
    let mark = format!("{TNL_IP_ID:#06x}");
    let mut bit = 0x8000u16;
    let mut pref = PREF_UNDERLAY;
    loop {
        let (p, m) = (pref.to_string(), format!("{bit:#06x}"));
        run(
            "tc",
            &[
                "filter", "add", "dev", dev, "ingress", "pref", &p, "protocol", "ip", "u32",
                "match", "ip", "protocol", "17", "0xff", "match", "ip", "dst", &dst, "match", "ip",
                "dport", &port, "0xffff", "match", "u16", "0", "0x3fff", "at", "6", "match", "u16",
                &mark, "0xffff", "at", "4", "match", "u16", &m, &m, "at", "2", "action", "mirred",
                "egress", "redirect", "dev", TAP_NAME,
            ],
        )?;
        if bit <= min {
            break;
        }
        bit >>= 1;
        pref += 1;
    }
    Ok(())
}

fn remove_rules(dev: &str) {
    for pref in PREF_UNDERLAY..PREF_UNDERLAY + 16 {
        let _ = Command::new("tc")
            .args([
                "filter",
                "del",
                "dev",
                dev,
                "ingress",
                "pref",
                &pref.to_string(),
            ])
            .output();
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The device holding IPv4 address `a` in the calling thread's namespace.
fn device_of(a: Ipv4Addr) -> io::Result<Option<String>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into the valid pointer; freed below.
    super::sys::cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut found = None;
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: `ifa_addr` is non-null and points to a sockaddr of the family it names.
        let fam = unsafe { (*ifa.ifa_addr).sa_family } as libc::c_int;
        if fam != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == a {
            // SAFETY: `ifa_name` is a non-null NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            found = Some(name.to_string_lossy().into_owned());
            break;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_neighbour_table_sets_updates_and_forgets() {
        let t = NeighTable::default();
        let a = Ipv4Addr::new(198, 51, 100, 2);
        assert_eq!(t.get(a), None);
        t.set(a, Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(t.get(a), Some([2, 0, 0, 0, 0, 2]));
        t.set(a, Some([2, 0, 0, 0, 0, 3]));
        assert_eq!(t.get(a), Some([2, 0, 0, 0, 0, 3]));
        t.set(a, None);
        assert_eq!(t.get(a), None);
        assert_eq!(t.get(Ipv4Addr::UNSPECIFIED), None);
        // Many addresses, collisions included.
        for i in 0..2000u32 {
            let ip = Ipv4Addr::from(0xc633_6400 + i);
            t.set(ip, Some([2, 0, 0, 0, (i >> 8) as u8, i as u8]));
        }
        for i in 0..2000u32 {
            let ip = Ipv4Addr::from(0xc633_6400 + i);
            assert_eq!(t.get(ip), Some([2, 0, 0, 0, (i >> 8) as u8, i as u8]));
        }
        assert_eq!(t.known().len(), 2000);
    }

    #[test]
    fn arp_lines_of_the_device_that_are_complete() {
        let text =
            "IP address       HW type     Flags       HW address            Mask     Device\n\
            198.51.100.2     0x1         0x2         02:00:00:00:00:02     *        eth0\n\
            198.51.100.3     0x1         0x0         00:00:00:00:00:00     *        eth0\n\
            198.51.100.4     0x1         0x2         02:00:00:00:00:04     *        eth1\n\
            bogus line\n";
        assert_eq!(
            parse_arp(text, "eth0"),
            vec![(Ipv4Addr::new(198, 51, 100, 2), [2, 0, 0, 0, 0, 2])]
        );
        assert_eq!(parse_mac("02:00:00:00:00:0g"), None);
        assert_eq!("tap".parse::<Mode>(), Ok(Mode::Tap));
        assert!("x".parse::<Mode>().is_err());
    }
}
