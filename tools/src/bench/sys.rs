//! The benchmark's only system calls beyond std: batched UDP I/O (`sendmmsg`, `recvmmsg`),
//! forced socket buffer sizes, the interrupt handler, and the clock tick of /proc's CPU times.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT or SIGTERM once [`install_interrupt_handler`] has run.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once the user asked us to stop (Ctrl-C or SIGTERM).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

extern "C" fn on_signal(_sig: libc::c_int) {
    // An atomic store is async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM set a flag that every loop of the benchmark checks, once: the handler
/// resets itself (SA_RESETHAND), so a second Ctrl-C kills as usual.
pub fn install_interrupt_handler() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags, SIG_DFL).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
        // SAFETY: `sa` is a valid, initialised sigaction; the handler only stores to an atomic;
        // a null old-action pointer is allowed.
        let rc = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Clock ticks per second, the unit of utime/stime in /proc/PID/stat.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Which socket buffer to size.
#[derive(Debug, Clone, Copy)]
pub enum Buffer {
    Receive,
    Send,
}

/// Sets a socket buffer size past `net.core.rmem_max`/`wmem_max` (SO_RCVBUFFORCE /
/// SO_SNDBUFFORCE, which needs CAP_NET_ADMIN; we run as root).
pub fn force_buffer(sock: &UdpSocket, which: Buffer, bytes: usize) -> io::Result<()> {
    let opt = match which {
        Buffer::Receive => libc::SO_RCVBUFFORCE,
        Buffer::Send => libc::SO_SNDBUFFORCE,
    };
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the fd is open for the lifetime of `sock`; we pass a pointer to a c_int and its
    // exact size, which the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Scratch space for one batched system call: the iovec and mmsghdr arrays, kept between calls
/// so a batch costs no allocation. Their pointers are rebuilt on every call.
#[derive(Default)]
pub struct Mmsg {
    iov: Vec<libc::iovec>,
    hdr: Vec<libc::mmsghdr>,
}

impl Mmsg {
    fn prepare(&mut self, bufs: impl Iterator<Item = (*mut libc::c_void, usize)>) {
        self.iov.clear();
        self.hdr.clear();
        self.iov
            .extend(bufs.map(|(iov_base, iov_len)| libc::iovec { iov_base, iov_len }));
        for iov in self.iov.iter_mut() {
            // SAFETY: an all-zero mmsghdr is valid: null name, control and iov pointers with
            // zero lengths and flags.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            self.hdr.push(h);
        }
    }

    /// Sends every buffer as one datagram on a connected socket with one `sendmmsg`; returns
    /// how many the kernel took (the first ones). Retries EINTR.
    pub fn send(&mut self, sock: &UdpSocket, bufs: &[Vec<u8>]) -> io::Result<usize> {
        self.prepare(
            bufs.iter()
                .map(|b| (b.as_ptr().cast_mut().cast::<libc::c_void>(), b.len())),
        );
        let len = libc::c_uint::try_from(self.hdr.len()).unwrap_or(libc::c_uint::MAX);
        loop {
            // SAFETY: `hdr` holds `len` initialised headers, each pointing at one iovec of
            // `iov`, which points into a buffer of `bufs` with its exact length; all outlive
            // the call, and sendmmsg only reads those buffers. The fd is open.
            let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), self.hdr.as_mut_ptr(), len, 0) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives up to `bufs.len()` datagrams with one `recvmmsg` (blocking for the first only,
    /// MSG_WAITFORONE, up to the socket's read timeout); writes each one's length to `lens`
    /// and returns how many arrived. Retries EINTR.
    pub fn recv(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        lens: &mut [usize],
    ) -> io::Result<usize> {
        self.prepare(
            bufs.iter_mut()
                .map(|b| (b.as_mut_ptr().cast::<libc::c_void>(), b.len())),
        );
        let len = libc::c_uint::try_from(self.hdr.len()).unwrap_or(libc::c_uint::MAX);
        let n = loop {
            // SAFETY: `hdr` holds `len` initialised headers, each pointing at one iovec of
            // `iov`, which points into a distinct buffer of `bufs` with its exact length; the
            // kernel writes at most that much into each. A null timeout is allowed. All
            // outlive the call; the fd is open.
            let n = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    self.hdr.as_mut_ptr(),
                    len,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        for (l, h) in lens.iter_mut().zip(&self.hdr[..n]) {
            *l = h.msg_len as usize;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_out_and_comes_back_in_one_call_each() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let out: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 20 + usize::from(i)]).collect();
        let mut m = Mmsg::default();
        assert_eq!(m.send(&tx, &out).unwrap(), 8);
        let mut bufs = vec![vec![0u8; 64]; 16];
        let mut lens = [0usize; 16];
        let mut got = 0;
        while got < 8 {
            let n = m.recv(&rx, &mut bufs[got..], &mut lens[got..]).unwrap();
            got += n;
        }
        for i in 0..8 {
            assert_eq!(lens[i], 20 + i);
            assert_eq!(&bufs[i][..lens[i]], &out[i][..]);
        }
        force_buffer(&rx, Buffer::Receive, 1 << 20).unwrap();
        assert!(clock_ticks() >= 1.0);
    }
}
