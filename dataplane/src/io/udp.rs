//! The underlay: UDP sockets on the node's VTEP address.
//!
//! Each worker has its own receive socket bound to the VXLAN port with `SO_REUSEPORT` (the
//! kernel spreads flows across workers) and reads it in batches with `recvmmsg` through
//! quinn-udp, which also handles UDP GRO (several datagrams in one receive, cut by `stride`).
//!
//! RFC 7348 wants the outer source port to carry a hash of the inner flow. A UDP socket sends
//! from the port it is bound to, so each worker keeps a bounded pool of sockets ([`SrcPorts`]):
//! N ports spread evenly over the configured range (`--src-ports`, 256 by default), each
//! opened the first time a flow maps onto it. A flow's hashed port is mapped onto one of the N,
//! so the file descriptors a worker holds stay bounded however many flows pass; a few hundred
//! ports give ECMP all the entropy it needs. A socket that cannot be opened (no descriptor
//! left, or the port taken) sends its flows from the VXLAN port instead, counted, and is
//! retried a while later — never once per packet.
//!
//! RFC 7348 section 4.3: a VTEP must not fragment its VXLAN packets. Every underlay socket
//! sends with DF (`IP_PMTUDISC_DO`, or `IPV6_DONTFRAG` on an IPv6 underlay), so a datagram
//! larger than the path MTU fails with `EMSGSIZE` instead of leaving in fragments; the path
//! MTU is then read from a socket connected to the VTEP ([`path_mtu`]).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use super::sys::setsockopt_int;
use crate::counters::{Event, WorkerCounters};

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
    // Larger buffers absorb bursts (a worker held off its core for a while): 4 MB is about
    // 5,000 small datagrams. With CAP_NET_ADMIN the size is forced past rmem_max/wmem_max
    // (212,992 bytes on a stock kernel, a few hundred datagrams); without it the kernel caps it.
    set_buffers(&s, SOCKET_BUFFER, SOCKET_BUFFER);
    if vtep.is_ipv6() {
        set_no_check6_rx(&s, true)?;
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Sets the receive and send buffer sizes, forced past the system maxima when the process may
/// (`SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`, CAP_NET_ADMIN), else as far as the maxima allow.
pub fn set_buffers(s: &socket2::Socket, recv: usize, send: usize) {
    let as_int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    if setsockopt_int(
        s.as_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        as_int(recv),
    )
    .is_err()
    {
        let _ = s.set_recv_buffer_size(recv);
    }
    if setsockopt_int(
        s.as_fd(),
        libc::SOL_SOCKET,
        libc::SO_SNDBUFFORCE,
        as_int(send),
    )
    .is_err()
    {
        let _ = s.set_send_buffer_size(send);
    }
}

/// Accepts UDP over IPv6 with a zero checksum (`UDP_NO_CHECK6_RX`), which Linux drops by
/// default: VTEPs set up with `udp6zerocsumtx` (RFC 6935, RFC 6936 for tunnels) send it.
pub fn set_no_check6_rx(sock: &impl AsFd, on: bool) -> io::Result<()> {
    setsockopt_int(
        sock.as_fd(),
        libc::SOL_UDP,
        libc::UDP_NO_CHECK6_RX,
        on as i32,
    )
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

/// How long a source-port socket that could not be opened waits before it is tried again.
pub const SRC_PORT_RETRY_MS: u64 = 2000;

/// File descriptors source-port sockets leave free for the control socket, its connections
/// and new TAP queues: a socket that would leave fewer is closed again and its flows use the
/// fallback socket.
pub const SRC_PORT_FD_HEADROOM: u64 = 64;

/// The slot of a pool of `n` ports over `span` ports from `min` that `port` maps onto.
#[inline]
fn pool_slot(min: u16, span: u32, n: usize, port: u16) -> Option<usize> {
    let off = port.checked_sub(min)? as u64;
    if off >= span as u64 {
        return None;
    }
    Some((off * n as u64 / span as u64) as usize)
}

/// The port slot `i` of such a pool is bound to.
fn pool_slot_port(min: u16, span: u32, n: usize, i: usize) -> u16 {
    let off = (i as u64 * span as u64).div_ceil(n as u64);
    min + off as u16
}

/// The port a flow whose hashed port is `port` leaves from, with a pool of `n` sockets over
/// `min..=max` (what [`SrcPorts`] binds; for `vxctl trace`).
pub fn pool_port(min: u16, max: u16, n: usize, port: u16) -> u16 {
    let span = (max as u32).saturating_sub(min as u32) + 1;
    let n = n.clamp(1, span as usize);
    pool_slot(min, span, n, port)
        .map(|i| pool_slot_port(min, span, n, i))
        .unwrap_or(port)
}

/// Per-worker pool of sockets bound to outer source ports: `n` ports spread over the range.
pub struct SrcPorts {
    vtep: IpAddr,
    min: u16,
    /// Ports in the range.
    span: u32,
    no_check: bool,
    slots: Vec<Slot>,
    counters: Arc<WorkerCounters>,
    /// Whether an open failure was logged already (once per pool).
    logged: bool,
}

enum Slot {
    Unopened,
    Open(UdpSocket),
    /// Opening failed (no descriptor left, or the port is taken by someone else): the
    /// fallback socket serves until `retry_ms`.
    Failed {
        retry_ms: u64,
    },
}

impl SrcPorts {
    /// A pool of `n` sockets (at least 1, at most the range's size) spread over ports
    /// `min..=max`; nothing is opened yet.
    pub fn new(
        vtep: IpAddr,
        min: u16,
        max: u16,
        n: usize,
        no_check: bool,
        counters: Arc<WorkerCounters>,
    ) -> SrcPorts {
        let span = (max as u32).saturating_sub(min as u32) + 1;
        let n = n.clamp(1, span as usize);
        SrcPorts {
            vtep,
            min,
            span,
            no_check,
            slots: (0..n).map(|_| Slot::Unopened).collect(),
            counters,
            logged: false,
        }
    }

    /// The pool slot a flow's port (from the range) maps onto.
    #[inline]
    fn slot_of(&self, port: u16) -> Option<usize> {
        pool_slot(self.min, self.span, self.slots.len(), port)
    }

    /// The port slot `i` is bound to: the lowest port of the range that maps onto it.
    pub fn port_of(&self, i: usize) -> u16 {
        pool_slot_port(self.min, self.span, self.slots.len(), i)
    }

    /// The port a flow whose hashed port is `port` leaves from (when its socket is open).
    pub fn pool_port(&self, port: u16) -> Option<u16> {
        self.slot_of(port).map(|i| self.port_of(i))
    }

    /// The pool's socket for a flow whose hashed port is `port`, opening it on first use and
    /// retrying a failed one every [`SRC_PORT_RETRY_MS`]; `None` when it cannot be opened (send
    /// from the VXLAN port).
    #[inline]
    pub fn get(&mut self, port: u16) -> Option<&UdpSocket> {
        let i = self.slot_of(port)?;
        let due = match self.slots[i] {
            Slot::Open(_) => false,
            Slot::Unopened => true,
            Slot::Failed { retry_ms } => crate::clock::now_ms() >= retry_ms,
        };
        if due {
            let bind = self.port_of(i);
            self.slots[i] = match Self::open(self.vtep, bind, self.no_check) {
                Ok(s) => Slot::Open(s),
                Err(e) => {
                    self.counters.event(Event::SrcPortOpenFailed);
                    if !self.logged {
                        self.logged = true;
                        eprintln!(
                            "vxswitchd: cannot open a socket on outer source port {bind} ({e}); \
                             its flows leave from the VXLAN port, retried every {SRC_PORT_RETRY_MS} ms \
                             (counted as src_port_open_failed; further failures are not logged)"
                        );
                    }
                    Slot::Failed {
                        retry_ms: crate::clock::now_ms() + SRC_PORT_RETRY_MS,
                    }
                }
            };
        }
        match &self.slots[i] {
            Slot::Open(s) => Some(s),
            _ => None,
        }
    }

    fn open(vtep: IpAddr, port: u16, no_check: bool) -> io::Result<UdpSocket> {
        let addr = SocketAddr::new(vtep, port);
        let s = new_socket(addr, true)?;
        // Descriptors are handed out lowest first: descriptor k open means 0..k all are.
        if let Ok(limit) = super::sys::nofile_limit() {
            if s.as_raw_fd() as u64 + SRC_PORT_FD_HEADROOM >= limit {
                return Err(io::Error::other(format!(
                    "fewer than {SRC_PORT_FD_HEADROOM} file descriptors left of {limit}, \
                     kept for the control socket and TAPs"
                )));
            }
        }
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

    /// Size of the pool.
    pub fn capacity(&self) -> usize {
        self.slots.len()
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

#[cfg(test)]
mod pool_tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pool(min: u16, max: u16, n: usize) -> SrcPorts {
        SrcPorts::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            min,
            max,
            n,
            false,
            Arc::new(WorkerCounters::default()),
        )
    }

    #[test]
    fn the_pool_is_bounded_and_spread_over_the_range() {
        let p = pool(49152, 65535, 256);
        assert_eq!(p.capacity(), 256);
        let mut ports: Vec<u16> = (49152..=65535u16)
            .map(|port| p.pool_port(port).unwrap())
            .collect();
        ports.dedup();
        assert_eq!(ports.len(), 256, "every flow port maps onto one of 256");
        assert_eq!(ports[0], 49152);
        assert_eq!(ports[1] - ports[0], 64, "evenly spread");
        assert!(*ports.last().unwrap() >= 65535 - 64);
        for i in 0..256 {
            assert_eq!(p.pool_port(p.port_of(i)), Some(p.port_of(i)), "slot {i}");
        }
        for port in (49152..=65535u16).step_by(97) {
            assert_eq!(Some(pool_port(49152, 65535, 256, port)), p.pool_port(port));
        }
        assert_eq!(p.pool_port(49151), None);
        // Fewer ports than asked: one socket per port.
        let p = pool(40000, 40009, 256);
        assert_eq!(p.capacity(), 10);
        assert_eq!(p.pool_port(40007), Some(40007));
    }

    #[test]
    fn a_socket_that_cannot_open_is_counted_and_retried_later_not_per_packet() {
        // An address this host does not have: every bind fails, nothing is held.
        let c = Arc::new(WorkerCounters::default());
        let mut p = SrcPorts::new(
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 254)),
            41000,
            48999,
            8,
            false,
            c.clone(),
        );
        for port in 41000..49000u16 {
            assert!(p.get(port).is_none(), "the fallback socket serves");
        }
        assert_eq!(p.open_count(), 0);
        assert_eq!(
            c.events[Event::SrcPortOpenFailed as usize].get(),
            8,
            "one attempt per pool slot, not one per packet"
        );
    }
}

#[cfg(test)]
mod ipv6_tests {
    use std::net::Ipv6Addr;
    use std::time::{Duration, Instant};

    use super::*;

    /// A UDP datagram with a zero checksum to `[::1]:port`, sent through a raw socket (which
    /// leaves the UDP checksum as written).
    fn send_zero_checksum(port: u16, payload: &[u8]) {
        let raw = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::UDP)).expect("raw socket");
        let mut d = Vec::new();
        d.extend_from_slice(&40000u16.to_be_bytes());
        d.extend_from_slice(&port.to_be_bytes());
        d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(payload);
        let to = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0);
        raw.send_to(&d, &to.into()).expect("send");
    }

    #[test]
    fn ipv6_underlay_sockets_accept_zero_checksum_datagrams() {
        // In a network namespace of this thread's own, so nothing reaches the host's loopback.
        std::thread::spawn(|| {
            // SAFETY: unshare only changes this thread's network namespace; the thread ends
            // with the test and its namespace with it.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "unshare: {}", io::Error::last_os_error());
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .expect("ip");
            assert!(up.success());
            let lo = IpAddr::V6(Ipv6Addr::LOCALHOST);
            let vxlan = bind_underlay(lo, 4789).expect("bind underlay");
            let opt = super::super::sys::getsockopt_int(
                vxlan.as_fd(),
                libc::SOL_UDP,
                libc::UDP_NO_CHECK6_RX,
            );
            assert_eq!(opt.unwrap(), 1);
            // A socket without the option, as Linux leaves it, for comparison.
            let plain = UdpSocket::bind(SocketAddr::new(lo, 4790)).expect("bind");
            plain.set_nonblocking(true).unwrap();
            send_zero_checksum(4790, b"plainplain");
            send_zero_checksum(4789, b"vxlanvxlan");
            let mut buf = [0u8; 64];
            let deadline = Instant::now() + Duration::from_secs(5);
            let n = loop {
                match vxlan.recv(&mut buf) {
                    Ok(n) => break n,
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("no zero-checksum datagram on the underlay socket: {e}"),
                }
            };
            assert_eq!(&buf[..n], b"vxlanvxlan");
            // Sent first over the same loopback, so it would be there by now.
            let e = plain
                .recv(&mut buf)
                .expect_err("Linux drops it without the option");
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        })
        .join()
        .expect("test thread");
    }
}
