//! Port capture: a worker copies the frames of the captured port into buffers from a
//! preallocated pool and hands them to the control side, which streams them to `vxctl capture`.
//!
//! When nothing is captured the cost is one relaxed atomic load per frame. While capturing, a
//! frame costs a copy of at most [`SNAPLEN`] bytes; when the pool is empty the frame is counted
//! as lost, never waited for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::counters::{Event, WorkerCounters};

/// Bytes kept of each captured frame.
pub const SNAPLEN: usize = 2048;
/// Buffers per worker.
pub const POOL: usize = 256;
const NONE: u32 = u32::MAX;

/// One captured frame.
pub struct CapBuf {
    pub ts_ns: u64,
    pub port: u16,
    pub rx: bool,
    /// Length of the frame on the wire.
    pub len: u32,
    /// Bytes kept in `data`.
    pub kept: usize,
    pub data: [u8; SNAPLEN],
    /// Tunnel frames: the remote VTEP.
    pub peer: Option<SocketAddr>,
}

/// The capture state one worker shares with the control side.
pub struct CaptureTap {
    port: AtomicU32,
    free_tx: Sender<Box<CapBuf>>,
    free_rx: Receiver<Box<CapBuf>>,
    full_tx: Sender<Box<CapBuf>>,
    full_rx: Receiver<Box<CapBuf>>,
}

impl Default for CaptureTap {
    fn default() -> Self {
        let (free_tx, free_rx) = bounded(POOL);
        let (full_tx, full_rx) = bounded(POOL);
        for _ in 0..POOL {
            let b = Box::new(CapBuf {
                ts_ns: 0,
                port: 0,
                rx: false,
                len: 0,
                kept: 0,
                data: [0; SNAPLEN],
                peer: None,
            });
            let _ = free_tx.send(b);
        }
        CaptureTap {
            port: AtomicU32::new(NONE),
            free_tx,
            free_rx,
            full_tx,
            full_rx,
        }
    }
}

impl CaptureTap {
    /// Is `port` being captured?
    #[inline]
    pub fn wants(&self, port: u16) -> bool {
        self.port.load(Ordering::Relaxed) == port as u32
    }

    /// Copies a frame of the captured port (worker side).
    #[inline]
    pub fn record(
        &self,
        c: &WorkerCounters,
        port: u16,
        rx: bool,
        frame: &[u8],
        peer: Option<SocketAddr>,
    ) {
        let Ok(mut b) = self.free_rx.try_recv() else {
            c.event(Event::CaptureLost);
            return;
        };
        b.ts_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b.port = port;
        b.rx = rx;
        b.len = frame.len() as u32;
        b.kept = frame.len().min(SNAPLEN);
        b.data[..b.kept].copy_from_slice(&frame[..b.kept]);
        b.peer = peer;
        if let Err(e) = self.full_tx.try_send(b) {
            let _ = self.free_tx.try_send(e.into_inner());
            c.event(Event::CaptureLost);
        } else {
            c.event(Event::Captured);
        }
    }

    /// Starts capturing `port` (control side).
    pub fn start(&self, port: u16) {
        self.port.store(port as u32, Ordering::Relaxed);
    }

    /// Stops capturing and returns every buffer to the pool.
    pub fn stop(&self) {
        self.port.store(NONE, Ordering::Relaxed);
        while let Ok(b) = self.full_rx.try_recv() {
            let _ = self.free_tx.try_send(b);
        }
    }

    /// Hands every captured frame to `f` and recycles its buffer (control side).
    pub fn drain(&self, mut f: impl FnMut(&CapBuf)) {
        while let Ok(b) = self.full_rx.try_recv() {
            f(&b);
            let _ = self.free_tx.try_send(b);
        }
    }
}
