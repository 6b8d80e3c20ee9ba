//! Decapsulation classifies once per GRO batch: the first segment of a UDP-GRO batch runs the
//! whole pipeline while its verdict is captured; each later segment whose headers match the
//! first's in everything the pipeline may look at gets that verdict replayed — the same header
//! rewrite, the same flows and ports credited, the same output — without being classified.
//!
//! The segments of one GRO batch come from one source with one outer TOS (the kernel merges
//! only datagrams of one flow whose IP headers agree), so they differ, if at all, in the inner
//! fields that change from segment to segment of one TCP stream: IP identification, total
//! length, header checksum, TCP sequence and acknowledgement numbers, window, checksum and
//! option contents, and the payload. [`Plan::matches`] checks that with a masked comparison of
//! the header bytes; anything else is classified alone.
//!
//! A verdict is replayed only when it is plain: decapsulated, one output to one local port, the
//! frame rewritten in its MACs, IPv4 TOS, TTL and header checksum (incrementally, as the
//! pipeline does it) or IPv6 traffic class and hop limit, and nothing else (no learn, no
//! flood, no ICMP error, no walk too long for the flow cache). The replay only skips the
//! classification: every segment still reaches the sink, whose coalescer verifies its
//! checksums before it merges it.

use super::ingress::credit;
use super::*;
use crate::flow::Resolved;

/// Header bytes compared: VXLAN (8) + Ethernet (14) + IPv6 (40) + TCP with options (60).
const HDR_MAX: usize = 128;
/// Offsets in the datagram (VXLAN header first) and in the inner frame.
const INNER: usize = VXLAN_LEN;
const IP: usize = ETH_LEN;
const IPV6_LEN: usize = 40;
const TCP_MIN: usize = 20;
const UDP_LEN: usize = 8;

/// Where a segment stands in its GRO batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPos {
    /// A datagram of its own (or batching is off): the whole pipeline.
    Alone,
    /// The first segment of a batch: classified, its verdict captured.
    First,
    /// A later segment of the same datagram (one source, one outer ECN field) as the last
    /// `First`: the first's verdict replayed when the headers match.
    Later,
}

/// The inner layout a plan covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    V4,
    V6,
}

/// A captured verdict and what a segment must look like to share it.
pub(super) struct Plan {
    /// A replayable verdict is held.
    valid: bool,
    layout: Layout,
    /// Bytes of the datagram compared (VXLAN through the L4 header).
    hdr_len: usize,
    /// The first segment's header bytes before the pipeline, and the mask of the bytes that
    /// must be equal (0xff) or may differ (0x00).
    pre: [u8; HDR_MAX],
    mask: [u8; HDR_MAX],
    /// The first segment's inner header bytes as the sink received them.
    post: [u8; HDR_MAX],
    outer_ecn: u8,
    /// The IPv4 header words the rewrite changes (old, new), in header order, and how many.
    csum_steps: [(u16, u16); IPV4_LEN / 2],
    n_csum_steps: usize,
    port: PortNo,
    /// The flow walk to credit (`None`: the built-in forwarding, no flows).
    flows: Option<(u64, Resolved)>,
    /// What the first segment's pipeline did that cannot be replayed.
    spoiled: bool,
    /// Capturing: the run_flows of the first segment records into this plan.
    armed: bool,
    reserved_bits: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            valid: false,
            layout: Layout::V4,
            hdr_len: 0,
            pre: [0; HDR_MAX],
            mask: [0; HDR_MAX],
            post: [0; HDR_MAX],
            outer_ecn: 0,
            csum_steps: [(0, 0); IPV4_LEN / 2],
            n_csum_steps: 0,
            port: 0,
            flows: None,
            spoiled: false,
            armed: false,
            reserved_bits: false,
        }
    }
}

impl Plan {
    /// The flow walk of the first segment (from `run_flows`), while capturing.
    #[inline]
    pub(super) fn record_flows(&mut self, version: u64, r: &Resolved) {
        if !self.armed {
            return;
        }
        let plain = r
            .steps()
            .iter()
            .all(|s| !matches!(s, Step::Learn(_) | Step::Flood | Step::Tunnel { .. }));
        if plain {
            self.flows = Some((version, *r));
        } else {
            self.spoiled = true;
        }
    }

    /// Fills `pre` and `mask` from a datagram (VXLAN header + inner frame) whose layout a plan
    /// can cover; false otherwise.
    fn take_headers(&mut self, d: &[u8]) -> bool {
        let Some((layout, hdr_len)) = layout_of(d) else {
            return false;
        };
        self.layout = layout;
        self.hdr_len = hdr_len;
        self.pre[..hdr_len].copy_from_slice(&d[..hdr_len]);
        let m = &mut self.mask[..hdr_len];
        m.fill(0xff);
        let ip = INNER + IP;
        let (l4, proto) = match layout {
            Layout::V4 => {
                // Total length, identification, header checksum.
                m[ip + 2..ip + 6].fill(0);
                m[ip + 10..ip + 12].fill(0);
                (ip + IPV4_LEN, d[ip + 9])
            }
            Layout::V6 => {
                // Payload length.
                m[ip + 4..ip + 6].fill(0);
                (ip + IPV6_LEN, d[ip + 6])
            }
        };
        if proto == u8::from(IpProtocol::Tcp) {
            // Sequence and acknowledgement numbers; window and checksum; option contents (their
            // length, the data offset, is compared).
            m[l4 + 4..l4 + 12].fill(0);
            m[l4 + 14..l4 + 18].fill(0);
            m[l4 + TCP_MIN..hdr_len].fill(0);
        } else {
            // UDP length and checksum.
            m[l4 + 4..l4 + 8].fill(0);
        }
        true
    }

    /// Whether datagram `d` may share the plan's verdict: its headers equal the first's under
    /// the mask, its lengths agree with its size, and (IPv4) its header checksum verifies.
    #[inline]
    fn matches(&self, d: &[u8], outer_ecn: u8) -> bool {
        let n = self.hdr_len;
        if !self.valid || d.len() < n || outer_ecn != self.outer_ecn {
            return false;
        }
        if !masked_eq(d, &self.pre, &self.mask, n) {
            return false;
        }
        let ip = INNER + IP;
        let inner_ip_len = d.len() - ip;
        match self.layout {
            Layout::V4 => {
                let total = u16::from_be_bytes([d[ip + 2], d[ip + 3]]) as usize;
                total == inner_ip_len && ipv4_header_ok(&d[ip..ip + IPV4_LEN])
            }
            Layout::V6 => {
                let payload = u16::from_be_bytes([d[ip + 4], d[ip + 5]]) as usize;
                payload + IPV6_LEN == inner_ip_len
            }
        }
    }

    /// Checks the first segment's rewrite (`post`, captured at the sink, against `pre`):
    /// plain when only the bytes a replay writes changed and, for IPv4, the header checksum
    /// is the incremental update of the changed words.
    fn rewrite_is_plain(&self) -> bool {
        let n = self.hdr_len - INNER;
        let (pre, post) = (&self.pre[INNER..self.hdr_len], &self.post[..n]);
        let writable = |i: usize| match self.layout {
            Layout::V4 => i < 12 || i == IP + 1 || i == IP + 8 || i == IP + 10 || i == IP + 11,
            Layout::V6 => i < 12 || (IP..IP + 4).contains(&i) || i == IP + 7,
        };
        if (0..n).any(|i| pre[i] != post[i] && !writable(i)) {
            return false;
        }
        match self.layout {
            Layout::V4 => {
                let old = u16::from_be_bytes([pre[IP + 10], pre[IP + 11]]);
                let new = u16::from_be_bytes([post[IP + 10], post[IP + 11]]);
                self.replay_csum(old) == new
            }
            Layout::V6 => true,
        }
    }

    /// Notes the IPv4 header words the first segment's rewrite changed (the checksum aside).
    fn note_csum_steps(&mut self) {
        self.n_csum_steps = 0;
        if self.layout != Layout::V4 {
            return;
        }
        let pre = &self.pre[INNER + IP..INNER + IP + IPV4_LEN];
        let post = &self.post[IP..IP + IPV4_LEN];
        for w in (0..IPV4_LEN / 2).filter(|&w| w != 5) {
            let (a, b) = (
                u16::from_be_bytes([pre[2 * w], pre[2 * w + 1]]),
                u16::from_be_bytes([post[2 * w], post[2 * w + 1]]),
            );
            if a != b {
                self.csum_steps[self.n_csum_steps] = (a, b);
                self.n_csum_steps += 1;
            }
        }
    }

    /// The IPv4 header checksum after the rewrite, updated one changed word at a time in the
    /// order of the header (RFC 1624 equation 3), as the pipeline's ECN marking (word 0) and
    /// TTL decrement (word 4) update it: a damaged header stays damaged.
    #[inline]
    fn replay_csum(&self, mut sum: u16) -> u16 {
        for &(a, b) in &self.csum_steps[..self.n_csum_steps] {
            sum = checksum::update16(sum, a, b);
        }
        sum
    }

    /// Rewrites a matching segment's inner frame as the first's was rewritten.
    #[inline]
    fn rewrite(&self, f: &mut [u8]) {
        let post = &self.post;
        f[..12].copy_from_slice(&post[..12]);
        match self.layout {
            Layout::V4 => {
                let sum = self.replay_csum(u16::from_be_bytes([f[IP + 10], f[IP + 11]]));
                f[IP + 1] = post[IP + 1];
                f[IP + 8] = post[IP + 8];
                f[IP + 10..IP + 12].copy_from_slice(&sum.to_be_bytes());
            }
            Layout::V6 => {
                f[IP..IP + 4].copy_from_slice(&post[IP..IP + 4]);
                f[IP + 7] = post[IP + 7];
            }
        }
    }
}

/// Whether a 20-byte IPv4 header's checksum verifies (its one's-complement sum is 0xffff).
#[inline]
fn ipv4_header_ok(h: &[u8]) -> bool {
    let mut sum = 0u32;
    for w in h[..IPV4_LEN].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum == 0xffff
}

/// `a[..n] == b[..n]` in the bits `mask` keeps, eight bytes at a time (`n <= a.len()`,
/// `n <= HDR_MAX`).
#[inline]
fn masked_eq(a: &[u8], b: &[u8; HDR_MAX], mask: &[u8; HDR_MAX], n: usize) -> bool {
    #[inline(always)]
    fn word(s: &[u8], o: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[o..o + 8]);
        u64::from_ne_bytes(w)
    }
    let a = &a[..n];
    let mut diff = 0u64;
    let whole = n & !7;
    let mut o = 0;
    while o < whole {
        diff |= (word(a, o) ^ word(b, o)) & word(mask, o);
        o += 8;
    }
    let mut tail = 0u8;
    for i in whole..n {
        tail |= (a[i] ^ b[i]) & mask[i];
    }
    diff == 0 && tail == 0
}

/// The layout and compared header length of a datagram a plan can cover: VXLAN, untagged
/// Ethernet, IPv4 without options and not a fragment or IPv6 without extension headers, TCP
/// or UDP, the IP length equal to what was received.
fn layout_of(d: &[u8]) -> Option<(Layout, usize)> {
    let ip = INNER + IP;
    let ethertype = u16::from_be_bytes([*d.get(INNER + 12)?, *d.get(INNER + 13)?]);
    let (layout, l4, proto) = match ethertype {
        0x0800 => {
            let h = d.get(ip..ip + IPV4_LEN)?;
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
            if h[0] != 0x45 || frag != 0 || total != d.len() - ip {
                return None;
            }
            (Layout::V4, ip + IPV4_LEN, h[9])
        }
        0x86dd => {
            let h = d.get(ip..ip + IPV6_LEN)?;
            let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
            if h[0] >> 4 != 6 || payload + IPV6_LEN != d.len() - ip {
                return None;
            }
            (Layout::V6, ip + IPV6_LEN, h[6])
        }
        _ => return None,
    };
    let l4_len = if proto == u8::from(IpProtocol::Tcp) {
        let doff = (*d.get(l4 + 12)? >> 4) as usize * 4;
        if doff < TCP_MIN {
            return None;
        }
        doff
    } else if proto == u8::from(IpProtocol::Udp) {
        UDP_LEN
    } else {
        return None;
    };
    let hdr_len = l4 + l4_len;
    (hdr_len <= d.len() && hdr_len <= HDR_MAX).then_some((layout, hdr_len))
}

/// The sink of the first segment: passes every output on, remembers the first.
struct Capturing<'a, S: Sink> {
    inner: &'a mut S,
    emits: u32,
    action: Option<Action>,
    post: &'a mut [u8; HDR_MAX],
    /// Where the frame started and how long it was when emitted.
    at: (usize, usize),
    plain_vnet: bool,
}

impl<S: Sink> Sink for Capturing<'_, S> {
    fn emit(&mut self, t: &Tables, action: Action, buf: &mut PacketBuf) {
        self.emits += 1;
        if self.emits == 1 {
            let f = buf.frame();
            let n = f.len().min(HDR_MAX);
            self.post[..n].copy_from_slice(&f[..n]);
            self.at = (f.as_ptr() as usize, f.len());
            self.action = Some(action);
            self.plain_vnet = buf.vnet == crate::wire::vnet::VnetHdr::default();
        }
        self.inner.emit(t, action, buf);
    }
}

impl Pipeline {
    /// A segment of a UDP-GRO batch from `src` (see [`from_tunnel_ecn`](Self::from_tunnel_ecn)):
    /// `First` runs the pipeline and captures its verdict; `Later` replays it when the
    /// segment's headers match the first's and the verdict is plain, and runs the pipeline
    /// otherwise; `Alone` (or `rx_batch` off) runs the pipeline.
    #[allow(clippy::too_many_arguments)]
    pub fn from_tunnel_batch(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        src: SocketAddr,
        local: Option<IpAddr>,
        outer_ecn: u8,
        pos: BatchPos,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        if !self.cfg.rx_batch {
            return self.from_tunnel_ecn(t, c, src, local, outer_ecn, buf, sink);
        }
        match pos {
            BatchPos::Alone => self.from_tunnel_ecn(t, c, src, local, outer_ecn, buf, sink),
            BatchPos::First => self.classify_first(t, c, src, local, outer_ecn, buf, sink),
            BatchPos::Later => {
                if self.batch.matches(buf.frame(), outer_ecn) {
                    return self.replay(t, c, buf, sink);
                }
                c.event(Event::RxBatchClassified);
                self.from_tunnel_ecn(t, c, src, local, outer_ecn, buf, sink)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn classify_first(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        src: SocketAddr,
        local: Option<IpAddr>,
        outer_ecn: u8,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        let plan = &mut self.batch;
        plan.valid = false;
        if !plan.take_headers(buf.frame()) {
            return self.from_tunnel_ecn(t, c, src, local, outer_ecn, buf, sink);
        }
        plan.outer_ecn = outer_ecn;
        plan.reserved_bits =
            VxlanPacket::new_checked(buf.frame()).is_ok_and(|v| v.has_reserved_bits());
        plan.flows = None;
        plan.spoiled = false;
        // Armed while the pipeline runs, so that run_flows records its walk into the plan.
        plan.armed = true;
        let start = (buf.frame().as_ptr() as usize, buf.len());
        let mut post = [0u8; HDR_MAX];
        let mut cap = Capturing {
            inner: sink,
            emits: 0,
            action: None,
            post: &mut post,
            at: (0, 0),
            plain_vnet: false,
        };
        let a = self.from_tunnel_ecn(t, c, src, local, outer_ecn, buf, &mut cap);
        let (emits, emitted, at, plain_vnet) = (cap.emits, cap.action, cap.at, cap.plain_vnet);
        let plan = &mut self.batch;
        plan.armed = false;
        plan.post = post;
        let output = match (a, emitted) {
            (Action::Output(p), Some(Action::Output(q))) if p == q && p != PORT_TUNNEL => Some(p),
            _ => None,
        };
        let flows_agree = match (&t.flows, &plan.flows) {
            (Some(fs), Some((v, _))) => fs.version == *v,
            (None, None) => true,
            _ => false,
        };
        if let Some(p) = output {
            plan.port = p;
            plan.note_csum_steps();
            plan.valid = emits == 1
                && !plan.spoiled
                && plain_vnet
                && flows_agree
                && at == (start.0 + INNER, start.1 - INNER)
                && plan.rewrite_is_plain();
        }
        a
    }

    /// Replays the plan on a matching segment: what decapsulation, the rewrite and the flow
    /// walk did to the first, and its output.
    #[inline]
    fn replay(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        let plan = &self.batch;
        // What decap counts.
        if plan.reserved_bits {
            c.event(Event::VxlanReservedBits);
        }
        c.event(Event::Decapsulated);
        buf.advance(VXLAN_LEN);
        plan.rewrite(buf.frame_mut());
        if let (Some(fs), Some((_, r))) = (&t.flows, &plan.flows) {
            credit(c, fs, r.path(), buf.len(), self.now_ms);
        }
        c.event(Event::RxBatchReplayed);
        let a = Action::Output(plan.port);
        sink.emit(t, a, buf);
        a
    }
}
