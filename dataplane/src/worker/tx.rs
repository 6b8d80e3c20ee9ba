//! The transmit side of a worker: the pipeline's outputs to TAP queues and to the underlay
//! (single sends, batches of small frames in one UDP GSO send, super-frames cut into segments).

use super::*;

/// The worker's transmit side: carries out the pipeline's outputs.
pub(super) struct Tx<'a> {
    pub(super) cfg: &'a WorkerConfig,
    pub(super) c: &'a WorkerCounters,
    pub(super) taps: &'a [Option<TapQueue>],
    pub(super) underlay: Option<&'a mut Underlay>,
    pub(super) capture: &'a CaptureTap,
    pub(super) gro: &'a mut Coalescer,
    pub(super) gso_out: &'a mut [u8],
    pub(super) gso_ok: &'a mut bool,
    pub(super) batch: &'a mut TxBatch,
    /// Frames come from the tunnel (candidates for merging into TAP super-frames).
    pub(super) from_tunnel: bool,
}

impl Tx<'_> {
    /// Writes the pending merged super-frame, if any.
    pub(super) fn flush_gro(&mut self) {
        let Some((port, bytes, segs)) = self.gro.take() else {
            return;
        };
        let c = self.c;
        let Some(q) = self.taps.get(port as usize).and_then(Option::as_ref) else {
            c.drop(DropReason::PortDown);
            return;
        };
        match q.write(bytes) {
            Ok(_) => {
                c.tx(port, bytes.len() - vnet::HEADER_LEN);
                if segs > 1 {
                    c.event(Event::TapGsoWrites);
                    c.event_n(Event::TapGsoSegments, segs as u64);
                }
            }
            Err(_) => {
                c.tx_error(port);
                c.drop(DropReason::TxError);
            }
        }
    }

    /// Writes one frame to a TAP queue, with a virtio-net header when offloads are on.
    fn write_tap(&mut self, no: PortNo, q_hdr: VnetHdr, buf: &mut PacketBuf) {
        let c = self.c;
        let Some(q) = self.taps.get(no as usize).and_then(Option::as_ref) else {
            c.drop(DropReason::PortDown);
            return;
        };
        let len = buf.len();
        let r = if self.cfg.gro {
            match buf.prepend(vnet::HEADER_LEN) {
                Some(h) => {
                    q_hdr.emit(h);
                    let r = q.write(buf.frame());
                    buf.advance(vnet::HEADER_LEN);
                    r
                }
                None => {
                    let mut h = [0u8; vnet::HEADER_LEN];
                    q_hdr.emit(&mut h);
                    q.writev(&[io::IoSlice::new(&h), io::IoSlice::new(buf.frame())])
                }
            }
        } else {
            q.write(buf.frame())
        };
        match r {
            Ok(_) => c.tx(no, len),
            Err(_) => {
                c.tx_error(no);
                c.drop(DropReason::TxError);
            }
        }
    }
}

impl Sink for Tx<'_> {
    #[inline]
    fn emit(&mut self, t: &Tables, action: Action, buf: &mut PacketBuf) {
        let c = self.c;
        match action {
            Action::Drop(_) => {}
            Action::Output(no) => {
                if self.capture.wants(no) {
                    self.capture.record(c, no, false, buf.frame(), None);
                }
                if self.cfg.gro
                    && self.from_tunnel
                    && buf.vnet == VnetHdr::default()
                    && no != PORT_TUNNEL
                {
                    let mut offer = self.gro.offer(no, buf.frame());
                    if offer == Offer::Flush {
                        self.flush_gro();
                        offer = self.gro.offer(no, buf.frame());
                    }
                    match offer {
                        Offer::Taken => return,
                        Offer::Refused | Offer::Bad | Offer::Flush => {
                            if offer == Offer::Bad {
                                // Written alone and unmarked: the pod's kernel verifies it.
                                c.event(Event::GroCsumBad);
                            }
                            // Keep the order of whatever the port has pending.
                            if self.gro.port() == no {
                                self.flush_gro();
                            }
                        }
                    }
                }
                let hdr = buf.vnet;
                self.write_tap(no, hdr, buf);
            }
            Action::Encap {
                node,
                src_port,
                tos,
                ttl,
            } => {
                let (Some(u), Some(n)) = (self.underlay.as_deref_mut(), t.node(node)) else {
                    c.drop(DropReason::NotConfigured);
                    return;
                };
                let dst = SocketAddr::new(n.vtep, self.cfg.vxlan_port);
                let to = Dest {
                    dst,
                    node,
                    src_port,
                    tos,
                    ttl,
                };
                if self.capture.wants(PORT_TUNNEL) {
                    self.capture
                        .record(c, PORT_TUNNEL, false, buf.frame(), Some(dst));
                }
                let super_frame = buf.vnet.is_tcp_gso() && buf.vnet.gso_size > 0;
                // Through the underlay's TAP in one write when it can (UDP-tunnel GSO).
                if super_frame && u.tnl.is_some() {
                    let to = super::tnl::TnlDest {
                        node,
                        dst,
                        src_port,
                        tos,
                        ttl,
                    };
                    if super::tnl::send(c, u, self.batch, self.gso_ok, to, buf) {
                        return;
                    }
                }
                // Completed in place and marked complete: later copies (a flood's next node,
                // a flow's next output) carry this checksum as it is.
                if offload::complete_partial(buf, VXLAN_HDR) {
                    c.event(Event::ChecksumCompleted);
                }
                // Frames with offloads on join the pending GSO batch when they can; anything
                // else first sends what is pending, so a flow's frames keep their order.
                if self.cfg.gro && *self.gso_ok && !super_frame {
                    if self.batch.add(to, buf.frame()) {
                        return;
                    }
                    flush_batch(self.batch, Some(&mut *u), c, self.gso_ok);
                    if *self.gso_ok && self.batch.add(to, buf.frame()) {
                        return;
                    }
                } else {
                    flush_batch(self.batch, Some(&mut *u), c, self.gso_ok);
                }
                let sock = match u.src.get(src_port) {
                    Some(s) => s,
                    None => {
                        c.event(Event::SrcPortFallback);
                        &u.sock
                    }
                };
                if super_frame {
                    let failed = send_segmented(c, sock, to, buf, self.gso_out, self.gso_ok);
                    if failed {
                        learn_path_mtu(c, u, to);
                    }
                    return;
                }
                let meta = to.meta(None);
                match udp::send_meta(sock, buf.frame(), dst, meta) {
                    Ok(_) => {
                        c.tx(PORT_TUNNEL, buf.len());
                        c.event(Event::Encapsulated);
                    }
                    Err(e) => {
                        if send_failed(c, &e) {
                            learn_path_mtu(c, u, to);
                        }
                    }
                }
            }
        }
    }
}

const VXLAN_HDR: usize = 8;

/// Most payload one UDP send carries (64 KiB minus the IPv4 and UDP headers).
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Most segments per UDP GSO send (the kernel's UDP_MAX_SEGMENTS).
const MAX_GSO_SEGMENTS: usize = 64;

/// Encapsulated frames bound for one VTEP from one source port, back to back, all of one
/// size but the last (which may be shorter): what one UDP GSO send carries. A worker fills it
/// while it drains a TAP queue and sends it when a frame does not fit, when another
/// destination comes, and after each batch — one system call for up to 64 small frames.
pub(super) struct TxBatch {
    bytes: Box<[u8]>,
    len: usize,
    seg: usize,
    count: usize,
    /// Where the frames go and how (all of a batch leave with one outer TOS and TTL).
    to: Option<Dest>,
    /// A shorter frame ended the batch.
    closed: bool,
}

impl TxBatch {
    pub(super) fn new() -> TxBatch {
        TxBatch {
            bytes: vec![0u8; MAX_UDP_PAYLOAD].into_boxed_slice(),
            len: 0,
            seg: 0,
            count: 0,
            to: None,
            closed: false,
        }
    }

    /// Appends `frame` (a VXLAN header and the inner frame) if it can leave in the same send
    /// as what is pending; `false` when it cannot.
    fn add(&mut self, to: Dest, frame: &[u8]) -> bool {
        let n = frame.len();
        if n == 0 || n > self.bytes.len() - self.len {
            return false;
        }
        if self.count == 0 {
            self.to = Some(to);
            self.seg = n;
            self.closed = false;
        } else if self.closed
            || self.count == MAX_GSO_SEGMENTS
            || self.to != Some(to)
            || n > self.seg
        {
            return false;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(frame);
        self.len += n;
        self.count += 1;
        self.closed = n < self.seg;
        true
    }

    fn clear(&mut self) {
        self.len = 0;
        self.count = 0;
        self.to = None;
    }
}

/// Where an encapsulated frame goes and how: the VTEP (address and node index), the outer
/// source port, TOS and TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dest {
    dst: SocketAddr,
    node: NodeIdx,
    src_port: u16,
    tos: u8,
    ttl: u8,
}

impl Dest {
    fn meta(self, segment: Option<u16>) -> SendMeta {
        SendMeta {
            tos: self.tos,
            ttl: self.ttl,
            segment,
        }
    }
}

/// Counts a failed underlay send (the frame is dropped); `true` when it failed for being
/// larger than the path MTU (EMSGSIZE: with DF set nothing is fragmented).
fn send_failed(c: &WorkerCounters, e: &io::Error) -> bool {
    c.tx_error(PORT_TUNNEL);
    if e.raw_os_error() == Some(libc::EMSGSIZE) {
        c.event(Event::UnderlayMsgSize);
        c.drop(DropReason::Mtu);
        true
    } else {
        c.drop(DropReason::TxError);
        false
    }
}

/// After an EMSGSIZE toward `to`: reads the path MTU to that VTEP from the kernel (at most
/// once per [`PMTU_PROBE_MS`] per worker) and records it, so the pipeline answers the pods
/// with ICMP frag-needed from the next packet on.
fn learn_path_mtu(c: &WorkerCounters, u: &mut Underlay, to: Dest) {
    let now = crate::clock::now_ms();
    if u.last_probe_ms != 0 && now < u.last_probe_ms + PMTU_PROBE_MS {
        return;
    }
    u.last_probe_ms = now.max(1);
    if let Ok(mtu) = udp::path_mtu(u.local, to.dst) {
        u.pmtu.set(to.node, to.dst.ip(), mtu);
        c.event(Event::PathMtuLearned);
    }
}

/// Sends what the batch holds: one UDP GSO send, or (one frame, or GSO refused) one datagram
/// per call.
pub(super) fn flush_batch(
    b: &mut TxBatch,
    u: Option<&mut Underlay>,
    c: &WorkerCounters,
    gso_ok: &mut bool,
) {
    if b.count == 0 {
        return;
    }
    let (Some(to), Some(u)) = (b.to, u) else {
        // The underlay went away with frames pending.
        for _ in 0..b.count {
            c.drop(DropReason::NotConfigured);
        }
        b.clear();
        return;
    };
    let dst = to.dst;
    let sock = match u.src.get(to.src_port) {
        Some(s) => s,
        None => {
            c.event(Event::SrcPortFallback);
            &u.sock
        }
    };
    let bytes = &b.bytes[..b.len];
    let mut sent = false;
    let mut too_big = false;
    if *gso_ok && b.count > 1 {
        match udp::send_meta(sock, bytes, dst, to.meta(Some(b.seg as u16))) {
            Ok(_) => {
                c.event(Event::GsoSends);
                c.event_n(Event::GsoBatched, b.count as u64);
                sent = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                *gso_ok = false;
                c.event(Event::GsoFallback);
            }
        }
    }
    if sent {
        for seg in bytes.chunks(b.seg) {
            c.tx(PORT_TUNNEL, seg.len());
        }
        c.event_n(Event::Encapsulated, b.count as u64);
    } else {
        for seg in bytes.chunks(b.seg) {
            match udp::send_meta(sock, seg, dst, to.meta(None)) {
                Ok(_) => {
                    c.tx(PORT_TUNNEL, seg.len());
                    c.event(Event::Encapsulated);
                }
                Err(e) => too_big |= send_failed(c, &e),
            }
        }
    }
    b.clear();
    if too_big {
        learn_path_mtu(c, u, to);
    }
}

/// A TCP super-frame from a TAP, encapsulated: cut into MSS-sized segments with complete
/// checksums, each behind a copy of the VXLAN header, and sent in as few UDP GSO sends as the
/// limits allow (64 segments, 65,507 bytes of payload per send). Returns `true` when a send
/// failed with EMSGSIZE (segments larger than the path MTU).
fn send_segmented(
    c: &WorkerCounters,
    sock: &UdpSocket,
    to: Dest,
    buf: &PacketBuf,
    out: &mut [u8],
    gso_ok: &mut bool,
) -> bool {
    let dst = to.dst;
    let mut too_big = false;
    let f = buf.frame();
    if f.len() < VXLAN_HDR {
        c.drop(DropReason::Malformed);
        return false;
    }
    let (prefix, frame) = f.split_at(VXLAN_HDR);
    let mss = buf.vnet.gso_size as usize;
    let Some(lay) = offload::tcp_layout(frame) else {
        c.drop(DropReason::Malformed);
        return false;
    };
    let unit = VXLAN_HDR + lay.hdr_len + mss;
    let per_send = (65_507 / unit).clamp(1, 64);
    let total = offload::segment_count(frame.len(), lay.hdr_len, mss);
    c.event(Event::TsoSuperframes);
    let mut k = 0;
    while k < total {
        let Some(w) = offload::segment_tcp(frame, mss, prefix, k, per_send, out) else {
            c.drop(DropReason::Malformed);
            return too_big;
        };
        let n = per_send.min(total - k);
        let mut sent = false;
        if *gso_ok && n > 1 {
            match udp::send_meta(sock, &out[..w], dst, to.meta(Some(unit as u16))) {
                Ok(_) => {
                    c.event(Event::GsoSends);
                    sent = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    // No GSO here (or not with this socket's settings, or segments larger
                    // than the path MTU): one by one until the worker tries GSO again.
                    *gso_ok = false;
                    c.event(Event::GsoFallback);
                }
            }
        }
        if sent {
            for i in 0..n {
                c.tx(PORT_TUNNEL, unit.min(w - i * unit));
            }
        } else {
            for i in 0..n {
                let seg = &out[i * unit..((i + 1) * unit).min(w)];
                match udp::send_meta(sock, seg, dst, to.meta(None)) {
                    Ok(_) => c.tx(PORT_TUNNEL, seg.len()),
                    Err(e) => too_big |= send_failed(c, &e),
                }
            }
        }
        c.event_n(Event::Encapsulated, n as u64);
        k += n;
    }
    too_big
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::GsoRetry;

    fn dst(last: u8, src_port: u16) -> Dest {
        Dest {
            dst: SocketAddr::from(([198, 51, 100, last], 4789)),
            node: last as NodeIdx,
            src_port,
            tos: 0,
            ttl: 64,
        }
    }

    #[test]
    fn a_batch_takes_equal_frames_for_one_destination_and_one_shorter_last() {
        let mut b = TxBatch::new();
        assert!(b.add(dst(2, 50000), &[1; 100]));
        assert!(b.add(dst(2, 50000), &[2; 100]));
        assert!(!b.add(dst(3, 50000), &[3; 100]), "another VTEP");
        assert!(!b.add(dst(2, 50001), &[3; 100]), "another source port");
        assert!(
            !b.add(dst(2, 50000), &[3; 101]),
            "longer than the segment size"
        );
        assert!(
            b.add(dst(2, 50000), &[4; 60]),
            "a shorter frame ends the batch"
        );
        assert!(
            !b.add(dst(2, 50000), &[5; 60]),
            "nothing after a shorter frame"
        );
        assert_eq!((b.count, b.seg, b.len), (3, 100, 260));
        // Segments as the kernel cuts them: every `seg` bytes.
        let segs: Vec<&[u8]> = b.bytes[..b.len].chunks(b.seg).collect();
        assert_eq!(segs.len(), 3);
        assert!(segs[0].iter().all(|&x| x == 1) && segs[1].iter().all(|&x| x == 2));
        assert_eq!(segs[2], &[4; 60][..]);
        b.clear();
        assert!(
            b.add(dst(3, 50001), &[6; 80]),
            "an empty batch takes anything"
        );
    }

    #[test]
    fn gso_is_tried_again_after_a_failure_later_each_time_it_fails_again() {
        let mut r = GsoRetry::default();
        // GSO failed at t=10 s: off for a second.
        assert!(!r.poll(10_000));
        assert!(!r.poll(10_999));
        assert!(r.poll(11_000));
        // It fails again at once: two seconds, then four.
        assert!(!r.poll(11_001));
        assert!(!r.poll(13_000));
        assert!(r.poll(13_001));
        assert!(!r.poll(13_002));
        assert!(r.poll(17_002));
        // It worked for longer than the longest wait: back to one second.
        assert!(!r.poll(100_000));
        assert!(r.poll(101_000));
    }

    #[test]
    fn a_batch_leaves_with_one_outer_tos_and_ttl() {
        let mut b = TxBatch::new();
        assert!(b.add(dst(2, 50000), &[1; 100]));
        let ect0 = Dest {
            tos: 0x02,
            ..dst(2, 50000)
        };
        assert!(!b.add(ect0, &[2; 100]), "another outer TOS (ECN) ends it");
        let ttl = Dest {
            ttl: 63,
            ..dst(2, 50000)
        };
        assert!(!b.add(ttl, &[2; 100]), "another outer TTL ends it");
        assert!(b.add(dst(2, 50000), &[3; 100]));
        assert_eq!(b.count, 2);
    }

    #[test]
    fn a_batch_stops_at_64_segments_and_at_the_udp_size_limit() {
        let mut b = TxBatch::new();
        for _ in 0..MAX_GSO_SEGMENTS {
            assert!(b.add(dst(2, 50000), &[0; 64]));
        }
        assert!(!b.add(dst(2, 50000), &[0; 64]));
        let mut b = TxBatch::new();
        let mut n = 0;
        while b.add(dst(2, 50000), &[0; 9000]) {
            n += 1;
        }
        assert_eq!(n, MAX_UDP_PAYLOAD / 9000);
        assert!(
            !TxBatch::new().add(dst(2, 50000), &[]),
            "empty frames are not sent"
        );
    }
}
