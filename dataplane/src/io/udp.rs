//! The underlay: UDP sockets on the node's VTEP address.
//!
//! Each worker has its own receive socket bound to the VXLAN port with `SO_REUSEPORT` (the
//! kernel spreads flows across workers) and reads it in batches with `recvmmsg` through
//! quinn-udp, which also handles UDP GRO (several datagrams in one receive, cut by `stride`).
//!
//! RFC 7348 wants the outer source port to carry a hash of the inner flow. A UDP socket sends
//! from the port it is bound to, so each worker keeps a table of sockets bound to source ports
//! of the configured range, opened the first time a flow hashes to that port (one syscall per
//! new port, never per packet).
//!
//! RFC 7348 section 4.3: a VTEP must not fragment its VXLAN packets. Every underlay socket
//! sends with DF (`IP_PMTUDISC_DO`, or `IPV6_DONTFRAG` on an IPv6 underlay), so a datagram
//! larger than the path MTU fails with `EMSGSIZE` instead of leaving in fragments; the path
//! MTU is then read from a socket connected to the VTEP ([`path_mtu`]).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;

use socket2::{Domain, Protocol, Socket, Type};

use super::sys::setsockopt_int;

/// Socket buffer size asked for underlay sockets (bursts of 64 KB super-frames).
pub const SOCKET_BUFFER: usize = 4 << 20;

fn new_socket(addr: SocketAddr, reuseport: bool) -> io::Result<Socket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuseport {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    set_dont_fragment(s.as_fd(), addr.is_ipv6())?;
    Ok(s)
}

/// Sends with DF and never fragments locally: a send larger than the path MTU fails with
/// `EMSGSIZE` (`IP_PMTUDISC_DO`; on IPv6 `IPV6_PMTUDISC_DO` and `IPV6_DONTFRAG`).
pub fn set_dont_fragment(fd: std::os::fd::BorrowedFd<'_>, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        )?;
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)
    } else {
        setsockopt_int(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    }
}

/// The path MTU from `local` to `vtep` as the kernel knows it (the route's MTU, lowered by
/// ICMP frag-needed / packet-too-big it received): `IP_MTU` of a UDP socket connected to the
/// VTEP. A few system calls: called when a node is added and after an `EMSGSIZE`, never per
/// packet.
pub fn path_mtu(local: Option<IpAddr>, vtep: SocketAddr) -> io::Result<u16> {
    let domain = if vtep.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    set_dont_fragment(s.as_fd(), vtep.is_ipv6())?;
    if let Some(l) = local.filter(|l| l.is_ipv4() == vtep.is_ipv4()) {
        // Port 0: any free port; only the route lookup matters.
        s.bind(&SocketAddr::new(l, 0).into())?;
    }
    s.connect(&vtep.into())?;
    let mtu = if vtep.is_ipv6() {
        super::sys::getsockopt_int(s.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_MTU)?
    } else {
        super::sys::getsockopt_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_MTU)?
    };
    Ok(mtu.clamp(0, u16::MAX as i32) as u16)
}

/// How a datagram leaves: the outer TOS (traffic class) and TTL (hop limit), and for a UDP
/// GSO send the segment size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendMeta {
    pub tos: u8,
    pub ttl: u8,
    /// `Some(size)`: the buffer is cut into datagrams of `size` bytes (UDP GSO).
    pub segment: Option<u16>,
}

/// Sends `buf` to `dst` with one `sendmsg`, the outer TOS and TTL as control messages
/// (`IP_TOS`/`IP_TTL`, or `IPV6_TCLASS`/`IPV6_HOPLIMIT`) and, for GSO, `UDP_SEGMENT`.
pub fn send_meta(
    sock: &UdpSocket,
    buf: &[u8],
    dst: SocketAddr,
    meta: SendMeta,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let addr = socket2::SockAddr::from(dst);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // Room for three control messages (two ints and a u16), 8-byte aligned.
    let mut control = [0u64; 12];
    let (level, tos_name, ttl_name) = if dst.is_ipv6() {
        (libc::IPPROTO_IPV6, libc::IPV6_TCLASS, libc::IPV6_HOPLIMIT)
    } else {
        (libc::IPPROTO_IP, libc::IP_TOS, libc::IP_TTL)
    };
    // SAFETY: CMSG_SPACE only computes sizes.
    let (int_space, u16_space) = unsafe {
        (
            libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize,
            libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize,
        )
    };
    let space = 2 * int_space + if meta.segment.is_some() { u16_space } else { 0 };
    debug_assert!(space <= std::mem::size_of_val(&control));
    // SAFETY: msghdr is plain data; all-zero is a valid empty value that we then fill in.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = addr.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg_control points at `control` (96 bytes, 8-byte aligned), and msg_controllen
    // (at most two int messages and one u16 message, 56 bytes) fits in it, so CMSG_FIRSTHDR
    // and each CMSG_NXTHDR within those `space` bytes are non-null and every write through
    // them and CMSG_DATA stays inside `control`.
    unsafe {
        let int_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = level;
        (*c).cmsg_type = tos_name;
        (*c).cmsg_len = int_len;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, meta.tos as i32);
        let c = libc::CMSG_NXTHDR(&msg, c);
        (*c).cmsg_level = level;
        (*c).cmsg_type = ttl_name;
        (*c).cmsg_len = int_len;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, meta.ttl as i32);
        if let Some(seg) = meta.segment {
            let c = libc::CMSG_NXTHDR(&msg, c);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg);
        }
    }
    // SAFETY: every pointer in `msg` (address, iovec, control) refers to live locals or to
    // `buf`, valid for the duration of the call.
    let n = super::sys::cvt_retry(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) })?;
    Ok(n as usize)
}

/// Binds a worker's receive socket on `vtep:port` (with `SO_REUSEPORT`).
pub fn bind_underlay(vtep: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(vtep, port);
    let s = new_socket(addr, true)?;
    // Larger buffers absorb bursts; the kernel caps them at rmem_max/wmem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Checks that nobody else holds `vtep:port` before the workers bind it with `SO_REUSEPORT`
/// (which would otherwise silently share the port with another reuseport socket).
/// The error names the holder when it can be found.
pub fn check_port_free(vtep: IpAddr, port: u16) -> Result<(), String> {
    let addr = SocketAddr::new(vtep, port);
    let s = new_socket(addr, false).map_err(|e| format!("cannot create a UDP socket: {e}"))?;
    match s.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            let who = port_holder(port).unwrap_or_else(|| {
                "held by the kernel or by a process this one cannot see \
                 (a vxlan device? another vxswitchd?)"
                    .to_string()
            });
            Err(format!("UDP port {port} on {vtep} is already in use: {who}; stop it or choose another port with --vxlan-port"))
        }
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Err(format!(
            "cannot bind {addr}: the VTEP address {vtep} is not configured on any interface of this node"
        )),
        Err(e) => Err(format!("cannot bind {addr}: {e}")),
    }
}

/// Finds the process holding a UDP port, from /proc/net/udp{,6} and /proc/*/fd.
fn port_holder(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            let local_port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                if let Ok(inode) = cols[9].parse::<u64>() {
                    if inode != 0 {
                        inodes.push(inode);
                    }
                }
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if inodes.iter().any(|i| t == format!("socket:[{i}]")) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("held by process {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

/// Turns UDP GRO on or off on a socket.
pub fn set_gro(sock: &UdpSocket, on: bool) -> io::Result<()> {
    setsockopt_int(sock.as_fd(), libc::SOL_UDP, libc::UDP_GRO, on as i32)
}

/// Sets the UDP_SEGMENT (GSO) size of every send on a socket (0: off).
pub fn set_gso(sock: &UdpSocket, segment: u16) -> io::Result<()> {
    setsockopt_int(
        sock.as_fd(),
        libc::SOL_UDP,
        libc::UDP_SEGMENT,
        segment as i32,
    )
}

/// Turns the outer UDP checksum off (IPv4 only: `SO_NO_CHECK`).
pub fn set_no_check(sock: &UdpSocket, no_check: bool) -> io::Result<()> {
    setsockopt_int(
        sock.as_fd(),
        libc::SOL_SOCKET,
        libc::SO_NO_CHECK,
        no_check as i32,
    )
}

/// Per-worker table of sockets bound to outer source ports.
pub struct SrcPorts {
    vtep: IpAddr,
    min: u16,
    no_check: bool,
    slots: Vec<Slot>,
}

enum Slot {
    Unopened,
    Open(UdpSocket),
    /// Binding failed (the port is taken by someone else): use the fallback socket.
    Failed,
}

impl SrcPorts {
    /// A table for ports `min..=max`; nothing is opened yet.
    pub fn new(vtep: IpAddr, min: u16, max: u16, no_check: bool) -> SrcPorts {
        let n = (max as usize).saturating_sub(min as usize) + 1;
        SrcPorts {
            vtep,
            min,
            no_check,
            slots: (0..n).map(|_| Slot::Unopened).collect(),
        }
    }

    /// The socket bound to `port`, opening it on first use; `None` when it cannot be bound.
    #[inline]
    pub fn get(&mut self, port: u16) -> Option<&UdpSocket> {
        let i = port.checked_sub(self.min)? as usize;
        let slot = self.slots.get_mut(i)?;
        if let Slot::Unopened = slot {
            *slot = match Self::open(self.vtep, port, self.no_check) {
                Ok(s) => Slot::Open(s),
                Err(_) => Slot::Failed,
            };
        }
        match slot {
            Slot::Open(s) => Some(s),
            _ => None,
        }
    }

    fn open(vtep: IpAddr, port: u16, no_check: bool) -> io::Result<UdpSocket> {
        let addr = SocketAddr::new(vtep, port);
        let s = new_socket(addr, true)?;
        let _ = s.set_send_buffer_size(SOCKET_BUFFER);
        // Nothing is ever received here; keep the receive buffer minimal.
        let _ = s.set_recv_buffer_size(4096);
        s.bind(&addr.into())?;
        let s: UdpSocket = s.into();
        if no_check && vtep.is_ipv4() {
            set_no_check(&s, true)?;
        }
        Ok(s)
    }

    /// Number of sockets opened so far.
    pub fn open_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Open(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSliceMut;

    /// Runs `f` on a thread in a network namespace of its own with only `lo`, up (needs root,
    /// as the end-to-end tests): the test's traffic never touches the host's stack.
    fn in_own_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: unshare takes no pointers; CLONE_NEWNET moves this thread alone (it
            // exits when `f` returns) into a new network namespace.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                r,
                0,
                "unshare(CLONE_NEWNET) (root needed): {}",
                io::Error::last_os_error()
            );
            // A child spawned from this thread starts in its namespace.
            let ok = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .map(|s| s.success());
            assert!(matches!(ok, Ok(true)), "ip link set lo up: {ok:?}");
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    /// Sends with [`send_meta`] over loopback and reads the ECN bits the receiver saw (quinn-udp
    /// asks for `IP_RECVTOS` / `IPV6_RECVTCLASS`).
    fn ecn_seen(local: IpAddr, tos: u8, segment: Option<u16>) -> Vec<(usize, Option<u8>)> {
        let rx = UdpSocket::bind(SocketAddr::new(local, 0)).unwrap();
        rx.set_nonblocking(false).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let state = quinn_udp::UdpSocketState::new((&rx).into()).unwrap();
        let _ = set_gro(&rx, false);
        let tx: UdpSocket = {
            let s = new_socket(SocketAddr::new(local, 0), false).unwrap();
            s.bind(&SocketAddr::new(local, 0).into()).unwrap();
            s.into()
        };
        let payload = [7u8; 300];
        let meta = SendMeta {
            tos,
            ttl: 9,
            segment,
        };
        let dst = rx.local_addr().unwrap();
        assert_eq!(send_meta(&tx, &payload, dst, meta).unwrap(), 300);
        let mut out = Vec::new();
        let want = segment.map_or(1, |s| 300usize.div_ceil(s as usize));
        while out.len() < want {
            let mut b = [0u8; 2048];
            let mut iov = [IoSliceMut::new(&mut b)];
            let mut m = [quinn_udp::RecvMeta::default()];
            let n = state.recv((&rx).into(), &mut iov, &mut m).unwrap();
            assert_eq!(n, 1);
            out.push((m[0].len, m[0].ecn.map(|e| e as u8)));
        }
        out
    }

    #[test]
    fn the_outer_tos_travels_with_every_send_and_every_gso_segment() {
        in_own_netns(outer_tos_travels);
    }

    fn outer_tos_travels() {
        for local in ["127.0.0.1", "::1"] {
            let local: IpAddr = local.parse().unwrap();
            assert_eq!(ecn_seen(local, 0xb8 | 0b10, None), [(300, Some(0b10))]);
            assert_eq!(ecn_seen(local, 0b01, None), [(300, Some(0b01))]);
            assert_eq!(ecn_seen(local, 0, None), [(300, None)]);
            assert_eq!(
                ecn_seen(local, 0b10, Some(100)),
                [(100, Some(0b10)), (100, Some(0b10)), (100, Some(0b10))],
                "{local}: GSO"
            );
        }
    }

    #[test]
    fn underlay_sockets_never_fragment_and_the_path_mtu_can_be_read() {
        in_own_netns(never_fragment);
    }

    fn never_fragment() {
        let s = new_socket("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let v =
            super::super::sys::getsockopt_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
                .unwrap();
        assert_eq!(v, libc::IP_PMTUDISC_DO);
        let s = new_socket("[::1]:0".parse().unwrap(), false).unwrap();
        let v =
            super::super::sys::getsockopt_int(s.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG)
                .unwrap();
        assert_eq!(v, 1);
        // Loopback's MTU is 65536: clamped to what fits a u16.
        let lo: SocketAddr = "127.0.0.1:4789".parse().unwrap();
        assert_eq!(path_mtu(Some(lo.ip()), lo).unwrap(), u16::MAX);
    }
}
