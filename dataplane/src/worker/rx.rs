//! The receive side of a worker: a batch from a TAP queue or from the underlay socket,
//! through the pipeline.

use super::tx::Tx;
use super::*;
use crate::pipeline::BatchPos;

impl Worker {
    /// The worker split into its transmit side (the pipeline's sink), its pipeline and its
    /// buffers, for one batch.
    pub(super) fn parts(&mut self, from_tunnel: bool) -> (Tx<'_>, &mut Pipeline, &mut BufPool) {
        let Worker {
            cfg,
            counters,
            taps,
            underlay,
            pipeline,
            bufs,
            capture,
            gro,
            gso_out,
            gso_ok,
            batch,
            ..
        } = self;
        let tx = Tx {
            cfg,
            c: counters,
            taps,
            underlay: underlay.as_mut(),
            capture,
            gro,
            gso_out,
            gso_ok,
            batch,
            from_tunnel,
        };
        (tx, pipeline, bufs)
    }

    pub(super) fn service_tap(&mut self, t: &Tables, no: PortNo) -> Drained {
        let (mut tx, pipeline, bufs) = self.parts(false);
        for _ in 0..BATCH {
            let Some(q) = tx.taps.get(no as usize).and_then(Option::as_ref) else {
                return Drained::Empty;
            };
            let buf = bufs.get_mut(0);
            let vnet = tx.cfg.gro;
            let area = if vnet {
                buf.receive_area_vnet()
            } else {
                buf.receive_area()
            };
            match q.read(area) {
                Ok(0) => return Drained::Empty,
                Ok(n) if vnet => {
                    if !buf.set_received_vnet(n) {
                        tx.c.drop(DropReason::Malformed);
                        continue;
                    }
                }
                Ok(n) => buf.set_received(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::Empty,
                // EBADFD / EIO when the device went away: wait for the control side.
                Err(_) => return Drained::Empty,
            }
            tx.c.rx(no, buf.len());
            if tx.capture.wants(no) {
                tx.capture.record(tx.c, no, true, buf.frame(), None);
            }
            pipeline.from_port(t, tx.c, no, buf, &mut tx);
        }
        Drained::More
    }

    pub(super) fn service_underlay(&mut self, t: &Tables) -> Drained {
        let Worker { underlay, bufs, .. } = self;
        let Some(u) = underlay.as_mut() else {
            return Drained::Empty;
        };
        let mut meta = [quinn_udp::RecvMeta::default(); BATCH];
        let n = {
            let mut it = bufs.bufs_mut().iter_mut();
            let mut iovs: [IoSliceMut<'_>; BATCH] = std::array::from_fn(|_| match it.next() {
                Some(b) => IoSliceMut::new(b.receive_area()),
                None => IoSliceMut::new(&mut []),
            });
            match u.state.recv((&u.sock).into(), &mut iovs, &mut meta) {
                Ok(n) => n,
                Err(_) => return Drained::Empty,
            }
        };
        let local = u.local;
        let (mut tx, pipeline, bufs) = self.parts(true);
        for (i, m) in meta.iter().enumerate().take(n) {
            if m.len == 0 {
                // An empty datagram carries no VXLAN header: counted, never silently lost.
                tx.c.rx(PORT_TUNNEL, 0);
                tx.c.drop(DropReason::Malformed);
                continue;
            }
            let stride = if m.stride == 0 { m.len } else { m.stride };
            if stride < m.len {
                tx.c.event_n(Event::GroSegments, m.len.div_ceil(stride) as u64);
            }
            let mut off = 0;
            let batched = stride < m.len;
            while off < m.len {
                let len = stride.min(m.len - off);
                let buf = bufs.get_mut(i);
                buf.set_received(m.len);
                if !buf.reframe(off as isize, len) {
                    break;
                }
                tx.c.rx(PORT_TUNNEL, len);
                if tx.capture.wants(PORT_TUNNEL) {
                    tx.capture
                        .record(tx.c, PORT_TUNNEL, true, buf.frame(), Some(m.addr));
                }
                let ecn = m.ecn.map_or(0, |e| e as u8);
                // The segments of one GRO batch: the first classified, the others given its
                // verdict when their headers match (pipeline::batch).
                let pos = match (batched, off) {
                    (false, _) => BatchPos::Alone,
                    (true, 0) => BatchPos::First,
                    (true, _) => BatchPos::Later,
                };
                pipeline.from_tunnel_batch(t, tx.c, m.addr, local, ecn, pos, buf, &mut tx);
                off += len;
            }
        }
        tx.flush_gro();
        if n == BATCH {
            Drained::More
        } else {
            Drained::Empty
        }
    }
}
