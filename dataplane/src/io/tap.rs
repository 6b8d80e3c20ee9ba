//! TAP devices through raw ioctls on /dev/net/tun.
//!
//! The `tun-tap` crate opens single-queue devices without offloads; a switch needs
//! `IFF_MULTI_QUEUE` (one queue per worker), persistence (pods keep their interface when the
//! daemon restarts) and, for the offload path, `IFF_VNET_HDR` with `TUNSETOFFLOAD`. The few
//! ioctls involved are simple enough to own here.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use super::sys::{cvt, cvt_retry};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETQUEUE: libc::c_ulong = 0x4004_54d9;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;

const IFF_TAP: u16 = 0x0002;
const IFF_NO_PI: u16 = 0x1000;
const IFF_MULTI_QUEUE: u16 = 0x0100;
const IFF_VNET_HDR: u16 = 0x4000;
const IFF_DETACH_QUEUE: u16 = 0x0400;

/// Offload flags for `TUNSETOFFLOAD`.
pub mod offload {
    pub const CSUM: u32 = 0x01;
    pub const TSO4: u32 = 0x02;
    pub const TSO6: u32 = 0x04;
    pub const TSO_ECN: u32 = 0x08;
    pub const UFO: u32 = 0x10;
    pub const USO4: u32 = 0x20;
    pub const USO6: u32 = 0x40;
}

/// `struct ifreq` as the tun ioctls read it: the name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: u16,
    _pad: [u8; 22],
}

impl IfReq {
    fn new(name: &str, flags: u16) -> io::Result<IfReq> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {name:?} (1-15 bytes)"),
            ));
        }
        let mut r = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags,
            _pad: [0; 22],
        };
        r.name[..bytes.len()].copy_from_slice(bytes);
        Ok(r)
    }
}

/// Options of a TAP device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapOptions {
    /// Frames carry a 12-byte virtio-net header (for checksum and segmentation offloads).
    pub vnet_hdr: bool,
}

fn flags(opts: TapOptions) -> u16 {
    let mut f = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE;
    if opts.vnet_hdr {
        f |= IFF_VNET_HDR;
    }
    f
}

/// One queue of a multi-queue TAP: an open, non-blocking /dev/net/tun file.
#[derive(Debug)]
pub struct TapQueue {
    file: File,
}

impl TapQueue {
    /// Opens (creating if needed) queue on device `name` in the calling thread's network
    /// namespace.
    pub fn open(name: &str, opts: TapOptions) -> io::Result<TapQueue> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/net/tun: {e}")))?;
        let mut req = IfReq::new(name, flags(opts))?;
        // SAFETY: TUNSETIFF reads (and writes back the chosen name into) a `struct ifreq`;
        // `req` is a properly sized, exclusively borrowed ifreq-compatible struct.
        cvt(unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) })
            .map_err(|e| io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")))?;
        if opts.vnet_hdr {
            let size: libc::c_int = 12;
            // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which is valid.
            cvt(unsafe {
                libc::ioctl(
                    file.as_raw_fd(),
                    TUNSETVNETHDRSZ,
                    &size as *const libc::c_int,
                )
            })?;
        }
        Ok(TapQueue { file })
    }

    /// Makes the device outlive its queues (or not).
    pub fn set_persist(&self, on: bool) -> io::Result<()> {
        // SAFETY: TUNSETPERSIST takes its argument by value.
        cvt(unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETPERSIST, on as libc::c_ulong) })?;
        Ok(())
    }

    /// Detaches this queue: it keeps the device referenced but receives no traffic.
    pub fn detach(&self) -> io::Result<()> {
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_DETACH_QUEUE,
            _pad: [0; 22],
        };
        // SAFETY: TUNSETQUEUE reads the flags of a `struct ifreq`; `req` is valid.
        cvt(unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETQUEUE, &mut req as *mut IfReq) })?;
        Ok(())
    }

    /// Enables the given offloads (see [`offload`]).
    pub fn set_offload(&self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        cvt(unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) })?;
        Ok(())
    }

    /// Reads one frame; `WouldBlock` when the queue is empty.
    #[inline]
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
        let n = cvt_retry(|| unsafe {
            libc::read(self.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
        })?;
        Ok(n as usize)
    }

    /// Writes one frame.
    #[inline]
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the duration of the call.
        let n = cvt_retry(|| unsafe {
            libc::write(self.file.as_raw_fd(), frame.as_ptr().cast(), frame.len())
        })?;
        Ok(n as usize)
    }

    /// Writes one frame made of several pieces (a virtio-net header and the frame).
    #[inline]
    pub fn writev(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: IoSlice is ABI-compatible with iovec; every slice is valid for reads for the
        // duration of the call.
        let n = cvt_retry(|| unsafe {
            libc::writev(
                self.file.as_raw_fd(),
                parts.as_ptr().cast(),
                parts.len() as libc::c_int,
            )
        })?;
        Ok(n as usize)
    }

    pub fn into_fd(self) -> OwnedFd {
        self.file.into()
    }
}

impl AsFd for TapQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for TapQueue {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

/// A TAP device with one queue per worker, plus a detached control queue that keeps the
/// device referenced and is used to make it persistent or delete it.
#[derive(Debug)]
pub struct Tap {
    pub name: String,
    pub queues: Vec<TapQueue>,
    pub control: TapQueue,
}

impl Tap {
    /// Opens `workers` queues on device `name` (creating it if needed) in the calling
    /// thread's network namespace.
    pub fn open(name: &str, workers: usize, opts: TapOptions) -> io::Result<Tap> {
        let mut queues = Vec::with_capacity(workers);
        for _ in 0..workers.max(1) {
            queues.push(TapQueue::open(name, opts)?);
        }
        if opts.vnet_hdr {
            // Checksum and TCP segmentation offload: pods hand over 64 KB super-frames.
            // Without it the kernel segments and checksums before the TAP, and frames still
            // carry a (zero) virtio-net header. Set on an attached queue.
            if let Err(e) = queues[0].set_offload(offload::CSUM | offload::TSO4 | offload::TSO6) {
                eprintln!(
                    "vxswitchd: {name}: TAP offloads unavailable ({e}); frames come one by one"
                );
            }
        }
        let control = TapQueue::open(name, opts)?;
        control.detach()?;
        Ok(Tap {
            name: name.to_string(),
            queues,
            control,
        })
    }
}

/// Index of a network interface in the calling thread's namespace, if it exists.
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Offload flags for `TUNSETOFFLOAD` of UDP-tunnel GSO (kernel 6.17 and later): the TAP
/// takes and hands out GSO frames inside a UDP tunnel, with the longer vnet header
/// ([`crate::wire::vnet::tunnel`]); `_CSUM` also with the outer UDP checksum to compute.
pub mod tunnel_offload {
    pub const UDP_TUNNEL_GSO: u32 = 0x080;
    pub const UDP_TUNNEL_GSO_CSUM: u32 = 0x100;
}

impl TapQueue {
    /// Sets the length of the virtio-net header in front of every frame (12 by default; 24
    /// for UDP-tunnel GSO).
    pub fn set_vnet_hdr_len(&self, len: usize) -> io::Result<()> {
        let size = len as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which is valid.
        cvt(unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                TUNSETVNETHDRSZ,
                &size as *const libc::c_int,
            )
        })?;
        Ok(())
    }
}
