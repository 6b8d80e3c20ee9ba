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
    Ok(s)
}

/// Binds a worker's receive socket on `vtep:port` (with `SO_REUSEPORT`).
pub fn bind_underlay(vtep: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(vtep, port);
    let s = new_socket(addr, true)?;
    // Larger buffers absorb bursts; the kernel caps them at rmem_max/wmem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    if vtep.is_ipv6() {
        set_no_check6_rx(&s, true)?;
    }
    s.bind(&addr.into())?;
    Ok(s.into())
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

/// Sends `buf` to `dst` as datagrams of `segment` bytes each (the last may be shorter) with
/// one `sendmsg` carrying a `UDP_SEGMENT` control message: the kernel (or the NIC) cuts it.
pub fn send_gso(sock: &UdpSocket, buf: &[u8], dst: SocketAddr, segment: u16) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let addr = socket2::SockAddr::from(dst);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // Room for one cmsghdr + u16, 8-byte aligned.
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; all-zero is a valid empty value that we then fill in.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = addr.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    // SAFETY: msg_control points at `control`, which is large and aligned enough for one
    // cmsghdr with a u16 payload (msg_controllen says so), so CMSG_FIRSTHDR is non-null and
    // the writes through it and CMSG_DATA stay inside `control`.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, segment);
    }
    // SAFETY: every pointer in `msg` (address, iovec, control) refers to live locals or to
    // `buf`, valid for the duration of the call.
    let n = super::sys::cvt_retry(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) })?;
    Ok(n as usize)
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
