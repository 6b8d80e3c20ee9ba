//! Packet buffers with headroom, and a per-worker pool of them.
//!
//! A frame is read once into a buffer at offset [`HEADROOM`]; encapsulation writes the VXLAN
//! header into the headroom in front of it, decapsulation just moves the start forward, and an
//! ICMP error is built in place around the packet it quotes. Nothing is copied and nothing is
//! allocated per packet: every buffer is allocated once, when the worker starts.

/// Bytes reserved in front of every received frame.
pub const HEADROOM: usize = 128;

/// Largest frame a buffer holds after the headroom (a 64 KB super-frame plus headers).
pub const MAX_FRAME: usize = 65536 + 256;

/// One packet buffer: `data[start..end]` is the frame.
pub struct PacketBuf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
    /// What the TAP's virtio-net header said of the frame (offloads), or all zero.
    pub vnet: crate::wire::vnet::VnetHdr,
}

impl Default for PacketBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBuf {
    /// Allocates a buffer (once; buffers are reused).
    pub fn new() -> PacketBuf {
        Self::with_capacity(MAX_FRAME)
    }

    /// A buffer holding at most `frame` bytes after the headroom.
    pub fn with_capacity(frame: usize) -> PacketBuf {
        PacketBuf {
            data: vec![0u8; HEADROOM + frame].into_boxed_slice(),
            start: HEADROOM,
            end: HEADROOM,
            vnet: Default::default(),
        }
    }

    /// A buffer holding a copy of `frame` (for tests and tools).
    pub fn from_frame(frame: &[u8]) -> PacketBuf {
        let mut b = Self::with_capacity(frame.len().max(2048));
        b.receive_area()[..frame.len()].copy_from_slice(frame);
        b.set_received(frame.len());
        b
    }

    /// The area a read fills: everything after the headroom. Resets the frame.
    #[inline]
    pub fn receive_area(&mut self) -> &mut [u8] {
        self.start = HEADROOM;
        self.end = HEADROOM;
        self.vnet = Default::default();
        &mut self.data[HEADROOM..]
    }

    /// The area a read with a virtio-net header fills: the header lands in the headroom, the
    /// frame at the usual offset.
    #[inline]
    pub fn receive_area_vnet(&mut self) -> &mut [u8] {
        self.start = HEADROOM;
        self.end = HEADROOM;
        self.vnet = Default::default();
        &mut self.data[HEADROOM - crate::wire::vnet::HEADER_LEN..]
    }

    /// Marks `n` bytes read into [`PacketBuf::receive_area_vnet`]: parses the header.
    /// `false` if the read was shorter than the header.
    #[inline]
    pub fn set_received_vnet(&mut self, n: usize) -> bool {
        use crate::wire::vnet::{VnetHdr, HEADER_LEN};
        let Ok(h) = VnetHdr::parse(&self.data[HEADROOM - HEADER_LEN..HEADROOM]) else {
            return false;
        };
        if n < HEADER_LEN {
            return false;
        }
        self.vnet = h;
        self.start = HEADROOM;
        self.end = (HEADROOM + n - HEADER_LEN).min(self.data.len());
        true
    }

    /// Marks `len` bytes of the receive area as the frame.
    #[inline]
    pub fn set_received(&mut self, len: usize) {
        self.start = HEADROOM;
        self.end = HEADROOM + len.min(self.data.len() - HEADROOM);
    }

    #[inline]
    pub fn frame(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    #[inline]
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Bytes free in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Grows the frame at the front by `n` bytes and returns them; `None` without headroom.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.data[self.start..self.start + n])
    }

    /// Drops `n` bytes from the front of the frame (no more than its length).
    #[inline]
    pub fn advance(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Shortens the frame to `len` bytes (never lengthens it).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.end = self.end.min(self.start + len);
    }

    /// Sets the frame to `data[start..start + len]` in absolute buffer offsets relative to the
    /// current start: `delta` bytes earlier (negative moves into the headroom). Returns false
    /// and changes nothing if that falls outside the buffer.
    #[inline]
    pub fn reframe(&mut self, delta: isize, len: usize) -> bool {
        let start = self.start as isize + delta;
        if start < 0 || start as usize + len > self.data.len() {
            return false;
        }
        self.start = start as usize;
        self.end = self.start + len;
        true
    }
}

/// A fixed set of buffers owned by one worker.
pub struct BufPool {
    bufs: Vec<PacketBuf>,
}

impl BufPool {
    /// Allocates `n` buffers of `frame` bytes each, once.
    pub fn new(n: usize, frame: usize) -> BufPool {
        BufPool {
            bufs: (0..n).map(|_| PacketBuf::with_capacity(frame)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    pub fn bufs_mut(&mut self) -> &mut [PacketBuf] {
        &mut self.bufs
    }

    pub fn get_mut(&mut self, i: usize) -> &mut PacketBuf {
        &mut self.bufs[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_advance_stay_in_bounds() {
        let mut b = PacketBuf::from_frame(&[1, 2, 3, 4]);
        assert_eq!(b.frame(), &[1, 2, 3, 4]);
        b.prepend(2).unwrap().copy_from_slice(&[9, 9]);
        assert_eq!(b.frame(), &[9, 9, 1, 2, 3, 4]);
        b.advance(3);
        assert_eq!(b.frame(), &[2, 3, 4]);
        b.advance(100);
        assert!(b.is_empty());
        assert!(b.prepend(HEADROOM + 100).is_none());
        assert!(!b.reframe(-100_000, 4));
    }
}
