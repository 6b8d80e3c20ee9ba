//! The path MTU to each remote VTEP, learned at run time: read by every worker without a lock.
//!
//! The path MTU is state, not configuration: the kernel knows it (the route's MTU, lowered by
//! ICMP frag-needed / packet-too-big arriving on the underlay) and tells it through `IP_MTU` on
//! a socket connected to the VTEP. The control side asks once per node when it publishes the
//! tables; a worker asks again when a send fails with `EMSGSIZE` (every underlay socket sends
//! with DF, so an oversize datagram fails instead of leaving in fragments). The pipeline reads
//! the value for the node a packet is routed to and answers pods whose packets no longer fit
//! with ICMP frag-needed carrying the inner MTU.
//!
//! One slot per node index, each an `AtomicU64` holding a tag of the VTEP address (48 bits)
//! and the MTU (16 bits), written and read with single relaxed atomic operations. Node indexes
//! change when nodes are added or removed; the tag makes a slot written for another VTEP read
//! as unknown, and unknown means the node-wide tunnel MTU, so a stale slot can never make a
//! packet larger than configured.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fib::NodeIdx;

/// Nodes whose path MTU is tracked (nodes beyond use the node-wide tunnel MTU).
pub const MAX_TRACKED_NODES: usize = 4096;

/// Bytes a VXLAN packet adds in front of the inner IP packet: outer IPv4 (20) + UDP (8) +
/// VXLAN (8) + inner Ethernet (14).
pub const OVERHEAD_V4: u16 = 50;
/// The same on an IPv6 underlay (outer IPv6 header: 40).
pub const OVERHEAD_V6: u16 = 70;

/// Smallest path MTU taken from the kernel (IPv4's minimum reassembly size); anything lower is
/// ignored as nonsense.
const MIN_PATH_MTU: u16 = 576;

/// The learned path MTUs, shared by the control side and every worker.
#[derive(Debug)]
pub struct PathMtus {
    slots: Box<[AtomicU64]>,
}

impl Default for PathMtus {
    fn default() -> Self {
        PathMtus {
            slots: (0..MAX_TRACKED_NODES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// A 48-bit tag of a VTEP address, never 0 (0 marks an empty slot).
fn tag(vtep: IpAddr) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = 0u64;
    match vtep {
        IpAddr::V4(a) => h = (h ^ u32::from(a) as u64).wrapping_mul(K),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            h = (h ^ (v as u64)).wrapping_mul(K);
            h = (h.rotate_left(5) ^ ((v >> 64) as u64)).wrapping_mul(K);
        }
    }
    (h >> 16) | 1
}

impl PathMtus {
    /// The path MTU (outer IP packet size) to node `node` at `vtep`, if known.
    #[inline]
    pub fn get(&self, node: NodeIdx, vtep: IpAddr) -> Option<u16> {
        let v = self.slots.get(node as usize)?.load(Ordering::Relaxed);
        (v != 0 && v >> 16 == tag(vtep)).then_some(v as u16)
    }

    /// Records the path MTU to node `node` at `vtep` (ignored below 576 bytes).
    pub fn set(&self, node: NodeIdx, vtep: IpAddr, mtu: u16) {
        if mtu < MIN_PATH_MTU {
            return;
        }
        if let Some(s) = self.slots.get(node as usize) {
            s.store(tag(vtep) << 16 | mtu as u64, Ordering::Relaxed);
        }
    }

    /// Forgets what is known about node index `node`.
    pub fn clear(&self, node: NodeIdx) {
        if let Some(s) = self.slots.get(node as usize) {
            s.store(0, Ordering::Relaxed);
        }
    }

    /// The largest inner IP packet that reaches node `node` at `vtep` without fragmenting:
    /// the node-wide `tunnel_mtu`, lowered to the path MTU minus the VXLAN overhead when that
    /// is known.
    #[inline]
    pub fn inner_mtu(&self, node: NodeIdx, vtep: IpAddr, tunnel_mtu: u16) -> u16 {
        match self.get(node, vtep) {
            Some(p) => {
                let overhead = if vtep.is_ipv6() {
                    OVERHEAD_V6
                } else {
                    OVERHEAD_V4
                };
                tunnel_mtu.min(p.saturating_sub(overhead))
            }
            None => tunnel_mtu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_inner_mtu_is_the_path_mtu_less_the_overhead_capped_by_the_tunnel_mtu() {
        let p = PathMtus::default();
        let a = ip("198.51.100.2");
        assert_eq!(p.inner_mtu(0, a, 1450), 1450, "unknown: the tunnel MTU");
        p.set(0, a, 1400);
        assert_eq!(p.get(0, a), Some(1400));
        assert_eq!(p.inner_mtu(0, a, 1450), 1350);
        p.set(0, a, 9000);
        assert_eq!(
            p.inner_mtu(0, a, 1450),
            1450,
            "never above the configured MTU"
        );
        let b = ip("2001:db8::2");
        p.set(1, b, 1400);
        assert_eq!(p.inner_mtu(1, b, 1430), 1330);
    }

    #[test]
    fn a_slot_written_for_another_vtep_reads_as_unknown() {
        let p = PathMtus::default();
        p.set(0, ip("198.51.100.2"), 1400);
        // Node 0 is now another VTEP (nodes were removed and re-indexed).
        assert_eq!(p.get(0, ip("198.51.100.3")), None);
        assert_eq!(p.inner_mtu(0, ip("198.51.100.3"), 1450), 1450);
        p.set(0, ip("198.51.100.3"), 100);
        assert_eq!(p.get(0, ip("198.51.100.3")), None, "nonsense is ignored");
        p.clear(0);
        assert_eq!(p.get(0, ip("198.51.100.2")), None);
        p.set(MAX_TRACKED_NODES as NodeIdx, ip("198.51.100.2"), 1400);
        assert_eq!(
            p.get(MAX_TRACKED_NODES as NodeIdx, ip("198.51.100.2")),
            None
        );
    }
}
