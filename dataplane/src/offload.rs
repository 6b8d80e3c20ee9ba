//! Segmentation and coalescing of TCP, in software, on byte slices (no I/O).
//!
//! With TAP offloads a pod hands the switch TCP super-frames of up to 64 KB
//! ([`segment_tcp`] cuts them into MSS-sized frames with complete checksums before they go
//! on the wire), and the switch hands pods super-frames back ([`Coalescer`] merges
//! consecutive segments of one flow that arrived through the tunnel, and the TAP's virtio-net
//! header tells the pod's kernel the checksum is partial, so nobody passes over the payload
//! to checksum it).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::wire::checksum;
use crate::wire::vnet::{self, VnetHdr};

const ETH: usize = 14;

/// Where the headers of a TCP frame end, and what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLayout {
    pub ipv6: bool,
    /// Offset of the TCP header.
    pub l4: usize,
    /// Length of every header (Ethernet + IP + TCP).
    pub hdr_len: usize,
}

/// Parses the headers of an Ethernet/IPv4-or-IPv6/TCP frame (no IPv4 options beyond the
/// header length, no IPv6 extension headers).
pub fn tcp_layout(f: &[u8]) -> Option<TcpLayout> {
    if f.len() < ETH + 20 {
        return None;
    }
    let (ipv6, l4) = match [f[12], f[13]] {
        [0x08, 0x00] => {
            let ihl = ((f[ETH] & 0x0f) as usize) * 4;
            if f[ETH] >> 4 != 4 || ihl < 20 || f[ETH + 9] != 6 {
                return None;
            }
            (false, ETH + ihl)
        }
        [0x86, 0xdd] => {
            if f.len() < ETH + 40 || f[ETH + 6] != 6 {
                return None;
            }
            (true, ETH + 40)
        }
        _ => return None,
    };
    if f.len() < l4 + 20 {
        return None;
    }
    let thl = ((f[l4 + 12] >> 4) as usize) * 4;
    if thl < 20 || f.len() < l4 + thl {
        return None;
    }
    Some(TcpLayout {
        ipv6,
        l4,
        hdr_len: l4 + thl,
    })
}

fn addrs_sum(f: &[u8], lay: &TcpLayout, tcp_len: usize) -> u64 {
    if lay.ipv6 {
        let s = Ipv6Addr::from(<[u8; 16]>::try_from(&f[ETH + 8..ETH + 24]).unwrap_or([0; 16]));
        let d = Ipv6Addr::from(<[u8; 16]>::try_from(&f[ETH + 24..ETH + 40]).unwrap_or([0; 16]));
        checksum::pseudo_header_v6(&s, &d, 6, tcp_len as u32)
    } else {
        let s = Ipv4Addr::new(f[ETH + 12], f[ETH + 13], f[ETH + 14], f[ETH + 15]);
        let d = Ipv4Addr::new(f[ETH + 16], f[ETH + 17], f[ETH + 18], f[ETH + 19]);
        checksum::pseudo_header_v4(s, d, 6, tcp_len as u32)
    }
}

/// Completes a checksum a pod left partial (`csum_start`/`csum_offset` of its virtio-net
/// header): the field holds the pseudo-header sum, the rest is summed here. A result of 0 is
/// written as 0xffff, as the kernel's `skb_checksum_help` does: for UDP a zero field means "no
/// checksum" (RFC 768), for TCP both are the same ones'-complement zero.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    if at + 2 > frame.len() || start > frame.len() {
        return false;
    }
    let c = match checksum::finish(checksum::accumulate(0, &frame[start..])) {
        0 => 0xffff,
        c => c,
    };
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Completes, in place, the partial checksum of a frame a pod sent with NEEDS_CSUM (not a TCP
/// super-frame: those are segmented with fresh checksums), `skip` bytes into the buffer (the
/// VXLAN header in front), and clears NEEDS_CSUM: the buffer now holds a complete checksum,
/// so every later copy of the frame (the next node of a flood, the next output of a flow)
/// goes out with it as it is, instead of summing the completed field a second time.
/// `true` when a checksum was completed.
pub fn complete_partial(buf: &mut PacketBuf, skip: usize) -> bool {
    let h = buf.vnet;
    if !h.needs_csum() || (h.is_tcp_gso() && h.gso_size > 0) {
        return false;
    }
    let Some(frame) = buf.frame_mut().get_mut(skip..) else {
        return false;
    };
    let done = complete_checksum(frame, h.csum_start as usize, h.csum_offset as usize);
    if done {
        buf.vnet.flags &= !vnet::F_NEEDS_CSUM;
        buf.vnet.csum_start = 0;
        buf.vnet.csum_offset = 0;
    }
    done
}

/// The IPv4 header checksum and the TCP checksum of an IPv4/TCP frame both verify.
pub fn tcp_v4_checksums_ok(f: &[u8], lay: &TcpLayout) -> bool {
    if lay.ipv6 || f.len() < lay.hdr_len || checksum::data(&f[ETH..lay.l4]) != 0 {
        return false;
    }
    let sum = addrs_sum(f, lay, f.len() - lay.l4);
    checksum::finish(checksum::accumulate(sum, &f[lay.l4..])) == 0
}

/// Number of MSS-sized segments a super-frame makes.
pub fn segment_count(frame_len: usize, hdr_len: usize, mss: usize) -> usize {
    frame_len.saturating_sub(hdr_len).div_ceil(mss.max(1))
}

/// Writes segments `first..first + n` of a TCP super-frame back to back into `out`, each
/// preceded by `prefix` (a VXLAN header, say), with IP lengths and ids, TCP sequence numbers,
/// flags and every checksum fixed. Returns the bytes written, or `None` if `out` is too small
/// or the frame is not TCP.
pub fn segment_tcp(
    frame: &[u8],
    mss: usize,
    prefix: &[u8],
    first: usize,
    n: usize,
    out: &mut [u8],
) -> Option<usize> {
    segment_with(frame, mss, prefix, first, n, out, checksum::copy_and_sum)
}

/// [`segment_tcp`] as it was before the payload was copied and summed in one pass: a copy,
/// then [`checksum::accumulate_reference`] over it. Kept so the benches can compare the two
/// (`cargo bench -p vxswitch-benches --bench offload`); not for the packet path.
#[doc(hidden)]
pub fn segment_tcp_reference(
    frame: &[u8],
    mss: usize,
    prefix: &[u8],
    first: usize,
    n: usize,
    out: &mut [u8],
) -> Option<usize> {
    segment_with(frame, mss, prefix, first, n, out, |dst, src| {
        dst.copy_from_slice(src);
        checksum::accumulate_reference(0, dst)
    })
}

/// [`segment_tcp`] with `copy_sum` copying each payload chunk into place and returning its
/// partial sum.
#[inline(always)]
fn segment_with(
    frame: &[u8],
    mss: usize,
    prefix: &[u8],
    first: usize,
    n: usize,
    out: &mut [u8],
    copy_sum: impl Fn(&mut [u8], &[u8]) -> u64,
) -> Option<usize> {
    let lay = tcp_layout(frame)?;
    let total = segment_count(frame.len(), lay.hdr_len, mss);
    if mss == 0 || first >= total {
        return Some(0);
    }
    let seq0 = u32::from_be_bytes(frame[lay.l4 + 4..lay.l4 + 8].try_into().ok()?);
    let id0 = u16::from_be_bytes([frame[ETH + 4], frame[ETH + 5]]);
    let mut w = 0;
    for k in first..(first + n).min(total) {
        let from = lay.hdr_len + k * mss;
        let to = (from + mss).min(frame.len());
        let chunk = &frame[from..to];
        let seg_len = prefix.len() + lay.hdr_len + chunk.len();
        if w + seg_len > out.len() {
            return None;
        }
        let o = &mut out[w..w + seg_len];
        o[..prefix.len()].copy_from_slice(prefix);
        let s = &mut o[prefix.len()..];
        s[..lay.hdr_len].copy_from_slice(&frame[..lay.hdr_len]);
        let tcp_len = lay.hdr_len - lay.l4 + chunk.len();
        if lay.ipv6 {
            s[ETH + 4..ETH + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        } else {
            let ip_len = (lay.l4 - ETH + tcp_len) as u16;
            s[ETH + 2..ETH + 4].copy_from_slice(&ip_len.to_be_bytes());
            s[ETH + 4..ETH + 6].copy_from_slice(&id0.wrapping_add(k as u16).to_be_bytes());
            s[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
            let c = checksum::data(&s[ETH..lay.l4]);
            s[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
        }
        let t = lay.l4;
        s[t + 4..t + 8].copy_from_slice(&seq0.wrapping_add((k * mss) as u32).to_be_bytes());
        if k + 1 < total {
            s[t + 13] &= !0x09; // FIN and PSH only on the last segment
        }
        if k > 0 {
            s[t + 13] &= !0x80; // CWR only on the first
        }
        s[t + 16..t + 18].copy_from_slice(&[0, 0]);
        // The payload is copied and summed in one pass; the TCP header is a multiple of 4
        // bytes, so the payload's words line up with the segment's.
        let head = checksum::accumulate(addrs_sum(s, &lay, tcp_len), &s[t..lay.hdr_len]);
        let body = copy_sum(&mut s[lay.hdr_len..], chunk);
        let c = checksum::finish(checksum::combine(head, body));
        s[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
        w += seg_len;
    }
    Some(w)
}

/// Largest super-frame the coalescer builds (IPv4 total length limit).
pub const MAX_MERGED: usize = 65535;
/// Most segments merged into one super-frame.
pub const MAX_SEGMENTS: usize = 64;

/// Merges consecutive TCP segments of one flow into one super-frame for a TAP.
pub struct Coalescer {
    /// Virtio-net header + the merged frame.
    buf: Box<[u8]>,
    /// Bytes of frame in `buf` after the header (0: empty).
    len: usize,
    port: u16,
    lay: TcpLayout,
    mss: usize,
    segs: usize,
    next_seq: u32,
    /// A segment shorter than the MSS ended the run.
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            buf: vec![0u8; vnet::HEADER_LEN + ETH + MAX_MERGED].into_boxed_slice(),
            len: 0,
            port: 0,
            lay: TcpLayout {
                ipv6: false,
                l4: 0,
                hdr_len: 0,
            },
            mss: 0,
            segs: 0,
            next_seq: 0,
            closed: false,
        }
    }
}

/// A segment the coalescer can take: IPv4, no fragment, TCP with only ACK (and PSH) set and
/// some payload.
fn mergeable(f: &[u8]) -> Option<TcpLayout> {
    let lay = tcp_layout(f)?;
    if lay.ipv6 {
        return None;
    }
    let frag = u16::from_be_bytes([f[ETH + 6], f[ETH + 7]]);
    if frag & 0x3fff != 0 {
        return None;
    }
    let ip_total = u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]) as usize;
    if ETH + ip_total != f.len() || f.len() <= lay.hdr_len {
        return None;
    }
    let flags = f[lay.l4 + 13];
    if flags & !0x08 != 0x10 {
        return None;
    }
    Some(lay)
}

impl Coalescer {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Offers a frame for `port`: see [`Offer`] for what to do next.
    ///
    /// Every segment's IPv4 and TCP checksums are verified before it joins or starts a run, as
    /// Linux GRO does (`tcp4_gro_receive`): the merged super-frame goes to the pod with a
    /// partial checksum, which the pod's kernel trusts, so an unverified segment (one that came
    /// with a zero outer UDP checksum, say, corrupted on the way) must never be part of it.
    pub fn offer(&mut self, port: u16, f: &[u8]) -> Offer {
        self.offer_checking(port, f, true)
    }

    /// [`Coalescer::offer`] without the checksum verification, for a segment known good by
    /// other means (its checksums already verified, or a verified outer checksum that covers
    /// it). Never for what came through the tunnel unverified.
    pub fn offer_verified(&mut self, port: u16, f: &[u8]) -> Offer {
        self.offer_checking(port, f, false)
    }

    fn offer_checking(&mut self, port: u16, f: &[u8], verify: bool) -> Offer {
        let Some(lay) = mergeable(f) else {
            return Offer::Refused;
        };
        let payload = f.len() - lay.hdr_len;
        let seq = u32::from_be_bytes([f[lay.l4 + 4], f[lay.l4 + 5], f[lay.l4 + 6], f[lay.l4 + 7]]);
        if self.len > 0 {
            let cur = &self.buf[vnet::HEADER_LEN..vnet::HEADER_LEN + self.len];
            let same = port == self.port
                && lay == self.lay
                && !self.closed
                && seq == self.next_seq
                && payload <= self.mss
                && self.segs < MAX_SEGMENTS
                && self.len + payload <= ETH + MAX_MERGED
                // MACs, IP version/tos, TTL, protocol, addresses, options; TCP ports, ack,
                // window, options.
                && cur[..ETH + 2] == f[..ETH + 2]
                && cur[ETH + 8..ETH + 10] == f[ETH + 8..ETH + 10]
                && cur[ETH + 12..lay.l4] == f[ETH + 12..lay.l4]
                && cur[lay.l4..lay.l4 + 4] == f[lay.l4..lay.l4 + 4]
                && cur[lay.l4 + 8..lay.l4 + 12] == f[lay.l4 + 8..lay.l4 + 12]
                && cur[lay.l4 + 14..lay.l4 + 16] == f[lay.l4 + 14..lay.l4 + 16]
                && cur[lay.l4 + 20..lay.hdr_len] == f[lay.l4 + 20..lay.hdr_len];
            if !same {
                return Offer::Flush;
            }
            // Verified, then copied: a verification fused with the copy (as segmenting does)
            // measured 10-20 % slower here (`--bench checksum_ab`, coalesce_64k).
            if verify && !tcp_v4_checksums_ok(f, &lay) {
                return Offer::Bad;
            }
            let at = vnet::HEADER_LEN + self.len;
            self.buf[at..at + payload].copy_from_slice(&f[lay.hdr_len..]);
            self.len += payload;
            self.segs += 1;
            self.next_seq = seq.wrapping_add(payload as u32);
            self.closed = payload < self.mss;
            // PSH on any segment marks the merged one.
            self.buf[vnet::HEADER_LEN + lay.l4 + 13] |= f[lay.l4 + 13] & 0x08;
            return Offer::Taken;
        }
        if verify && !tcp_v4_checksums_ok(f, &lay) {
            return Offer::Bad;
        }
        let h = vnet::HEADER_LEN;
        self.buf[h..h + f.len()].copy_from_slice(f);
        self.len = f.len();
        self.port = port;
        self.lay = lay;
        self.mss = payload;
        self.segs = 1;
        self.next_seq = seq.wrapping_add(payload as u32);
        self.closed = false;
        Offer::Taken
    }

    /// Finishes the pending run: returns the port, the bytes to write (virtio-net header +
    /// frame) and the number of segments merged; empties the coalescer.
    pub fn take(&mut self) -> Option<(u16, &[u8], usize)> {
        if self.len == 0 {
            return None;
        }
        let len = std::mem::take(&mut self.len);
        let lay = self.lay;
        let h = vnet::HEADER_LEN;
        let segs = self.segs;
        let hdr = if segs == 1 {
            // One segment, as it arrived; the pod's kernel verifies its checksum.
            VnetHdr::default()
        } else {
            let f = &mut self.buf[h..h + len];
            let ip_len = (len - ETH) as u16;
            f[ETH + 2..ETH + 4].copy_from_slice(&ip_len.to_be_bytes());
            f[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
            let c = checksum::data(&f[ETH..lay.l4]);
            f[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
            // Partial checksum: the pseudo-header sum, completed (or trusted) by the kernel.
            let tcp_len = len - lay.l4;
            let partial = !checksum::finish(addrs_sum(f, &lay, tcp_len));
            f[lay.l4 + 16..lay.l4 + 18].copy_from_slice(&partial.to_be_bytes());
            VnetHdr {
                flags: vnet::F_NEEDS_CSUM,
                gso_type: vnet::GSO_TCPV4,
                hdr_len: lay.hdr_len as u16,
                gso_size: self.mss as u16,
                csum_start: lay.l4 as u16,
                csum_offset: 16,
            }
        };
        hdr.emit(&mut self.buf[..h]);
        Some((self.port, &self.buf[..h + len], segs))
    }
}

/// What [`Coalescer::offer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Merged or started a run.
    Taken,
    /// Not this run: take the pending one, then offer again.
    Flush,
    /// Not a mergeable TCP segment: write it directly.
    Refused,
    /// A TCP segment whose IPv4 or TCP checksum does not verify: not merged. Take what is
    /// pending for the port (to keep the order), then write it alone, without NEEDS_CSUM or
    /// DATA_VALID, so the pod's kernel verifies it (and drops it).
    Bad,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 frame with `payload` bytes of pattern starting at `seq`.
    fn tcp_frame(seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = vec![0x0a, 0x58, 10, 1, 2, 2, 0x0a, 0x58, 10, 1, 2, 1, 0x08, 0x00];
        let total = 20 + 32 + payload.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0x12,
            0x34,
            0x40,
            0,
            63,
            6,
            0,
            0,
        ]);
        f.extend_from_slice(&[10, 1, 1, 2, 10, 1, 2, 2]);
        f.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 7, 0x80, flags, 0x01, 0xf6, 0, 0, 0, 0]);
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 42, 0, 0, 0, 9]); // NOP NOP timestamps
        f.extend_from_slice(payload);
        let c = checksum::data(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let lay = tcp_layout(&f).unwrap();
        let sum = addrs_sum(&f, &lay, f.len() - lay.l4);
        let c = checksum::finish(checksum::accumulate(sum, &f[lay.l4..]));
        f[lay.l4 + 16..lay.l4 + 18].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn verify(f: &[u8]) -> bool {
        let lay = tcp_layout(f).unwrap();
        let sum = addrs_sum(f, &lay, f.len() - lay.l4);
        checksum::data(&f[ETH..lay.l4]) == 0
            && checksum::finish(checksum::accumulate(sum, &f[lay.l4..])) == 0
    }

    #[test]
    fn a_super_frame_split_and_merged_back_matches_the_original() {
        let payload: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sf = tcp_frame(1000, &payload, 0x18);
        let mss = 1398;
        let n = segment_count(sf.len(), 66, mss);
        assert_eq!(n, 43);
        let mut out = vec![0u8; 70_000];
        let prefix = [0x08, 0, 0, 0, 0, 0, 1, 0];
        let written = segment_tcp(&sf, mss, &prefix, 0, 64, &mut out).unwrap();
        let unit = 8 + 66 + mss;
        assert_eq!(written, (n - 1) * unit + 8 + 66 + (60_000 - 42 * mss));
        let mut c = Coalescer::default();
        let mut merged_payload = Vec::new();
        for k in 0..n {
            let seg = &out[k * unit..((k + 1) * unit).min(written)];
            assert_eq!(&seg[..8], &prefix);
            let f = &seg[8..];
            assert!(verify(f), "segment {k} carries complete checksums");
            let flags = f[14 + 20 + 13];
            assert_eq!(flags & 0x08 != 0, k == n - 1, "PSH only on the last");
            assert_eq!(
                u32::from_be_bytes(f[38..42].try_into().unwrap()),
                1000 + (k * mss) as u32
            );
            merged_payload.extend_from_slice(&f[66..]);
            assert_eq!(c.offer(3, f), Offer::Taken);
        }
        assert_eq!(merged_payload, payload);
        let (port, bytes, segs) = c.take().unwrap();
        assert_eq!((port, segs), (3, n));
        let h = VnetHdr::parse(bytes).unwrap();
        assert!(h.is_tcp_gso() && h.needs_csum());
        assert_eq!(h.gso_size as usize, mss);
        let mut merged = bytes[12..].to_vec();
        // Completing the partial checksum gives back the original super-frame.
        assert!(complete_checksum(
            &mut merged,
            h.csum_start as usize,
            h.csum_offset as usize
        ));
        let mut orig = sf.clone();
        orig[18..20].copy_from_slice(&merged[18..20]); // the IP id of the first segment
        assert_eq!(merged.len(), orig.len());
        assert_eq!(merged[66..], orig[66..], "payload identical");
        assert!(verify(&merged));
        assert!(c.take().is_none());
    }

    /// An IPv6/TCP frame (20-byte TCP header) with `payload`.
    fn tcp6_frame(seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x0a, 0x58, 10, 1, 2, 2, 0x0a, 0x58, 10, 1, 2, 1, 0x86, 0xdd];
        let plen = 20 + payload.len();
        f.extend_from_slice(&[0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 6, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 7, 0x50, 0x18, 0x01, 0xf6, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// What a segment's checksums must be, by the previous implementation (copy, then sum the
    /// whole TCP segment).
    fn verify_by_reference(f: &[u8]) -> bool {
        let lay = tcp_layout(f).unwrap();
        let sum = addrs_sum(f, &lay, f.len() - lay.l4);
        let tcp_ok = checksum::finish(checksum::accumulate_reference(sum, &f[lay.l4..])) == 0;
        let ip_ok =
            lay.ipv6 || checksum::finish(checksum::accumulate_reference(0, &f[14..lay.l4])) == 0;
        tcp_ok && ip_ok
    }

    /// Segmenting copies and sums the payload in one pass: for odd and even MSS and payload
    /// lengths, over IPv4 and IPv6, every segment carries the payload bytes and checksums that
    /// a separate copy and sum give, and the coalescer (which verifies every segment) takes
    /// every IPv4 one back.
    #[test]
    fn fused_segmenting_matches_a_copy_then_sum() {
        let mut x = 0x5e9_u64;
        for (mss, len) in [
            (1, 9),
            (7, 100),
            (536, 5001),
            (1397, 60_001),
            (1398, 60_000),
            (1448, 64_000),
            (8948, 63_999),
        ] {
            let mut payload: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if mss == 1397 {
                payload.fill(0xff); // sums on the 0xffff edge
            }
            for sf in [tcp_frame(77, &payload, 0x18), tcp6_frame(77, &payload)] {
                let lay = tcp_layout(&sf).unwrap();
                let n = segment_count(sf.len(), lay.hdr_len, mss);
                let mut out = vec![0u8; n * (3 + lay.hdr_len) + len];
                let w = segment_tcp(&sf, mss, &[1, 2, 3], 0, n, &mut out).unwrap();
                assert_eq!(w, out.len());
                let mut at = 0;
                let mut c = Coalescer::default();
                for k in 0..n {
                    let chunk = &payload[k * mss..((k + 1) * mss).min(len)];
                    let seg = &out[at + 3..at + 3 + lay.hdr_len + chunk.len()];
                    assert_eq!(&seg[lay.hdr_len..], chunk, "mss {mss} segment {k}");
                    assert!(
                        verify_by_reference(seg),
                        "mss {mss} segment {k} ipv6 {}",
                        lay.ipv6
                    );
                    if !lay.ipv6 {
                        let o = c.offer(3, seg);
                        assert!(o == Offer::Taken || o == Offer::Flush, "{o:?}");
                        if o == Offer::Flush {
                            c.take().unwrap();
                            assert_eq!(c.offer(3, seg), Offer::Taken);
                        }
                    }
                    at += 3 + seg.len();
                }
                if let Some((_, bytes, _)) = c.take() {
                    let mut merged = bytes[12..].to_vec();
                    let h = VnetHdr::parse(bytes).unwrap();
                    if h.needs_csum() {
                        assert!(complete_checksum(&mut merged, 34, 16));
                    }
                    assert!(verify_by_reference(&merged));
                }
            }
        }
    }

    #[test]
    fn the_coalescer_refuses_gaps_other_flows_and_non_tcp() {
        let a = tcp_frame(1, &[1; 100], 0x10);
        let b = tcp_frame(101, &[2; 100], 0x10);
        let gap = tcp_frame(500, &[3; 100], 0x10);
        let syn = tcp_frame(1, &[], 0x02);
        let mut c = Coalescer::default();
        assert_eq!(c.offer(3, &a), Offer::Taken);
        assert_eq!(c.offer(4, &b), Offer::Flush, "another port");
        assert_eq!(c.offer(3, &gap), Offer::Flush, "a sequence gap");
        assert_eq!(c.offer(3, &syn), Offer::Refused);
        assert_eq!(c.offer(3, &[1, 2, 3]), Offer::Refused);
        assert_eq!(c.offer(3, &b), Offer::Taken);
        let (_, bytes, segs) = c.take().unwrap();
        assert_eq!(segs, 2);
        assert_eq!(bytes.len(), 12 + a.len() + 100);
        // A single segment goes out as it came, unmarked: the pod's kernel verifies it.
        assert_eq!(c.offer(3, &gap), Offer::Taken);
        let (_, bytes, segs) = c.take().unwrap();
        assert_eq!(segs, 1);
        assert_eq!(&bytes[12..], &gap[..]);
        assert_eq!(bytes[..12], [0; 12]);
    }

    /// The segments of a 60,000-byte super-frame cut at 1398 bytes, as they come from the
    /// tunnel.
    fn segments() -> Vec<Vec<u8>> {
        let payload: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sf = tcp_frame(1000, &payload, 0x18);
        let mss = 1398;
        let mut out = vec![0u8; 70_000];
        let w = segment_tcp(&sf, mss, &[], 0, 64, &mut out).unwrap();
        out[..w].chunks(66 + mss).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn a_segment_whose_checksum_fails_is_never_merged() {
        let segs = segments();
        // A payload byte, the IP id (not compared between segments), the TCP checksum itself:
        // each corrupts segment 5 so that only its checksums tell.
        for at in [66 + 700, 14 + 5, 14 + 20 + 17] {
            let mut c = Coalescer::default();
            for (k, seg) in segs.iter().enumerate().take(5) {
                assert_eq!(c.offer(3, seg), Offer::Taken, "segment {k}");
            }
            let mut bad = segs[5].clone();
            bad[at] ^= 0x20;
            assert!(!verify(&bad));
            assert_eq!(c.offer(3, &bad), Offer::Bad, "byte {at} flipped");
            // What was merged before it is intact and complete.
            let (_, bytes, n) = c.take().unwrap();
            assert_eq!(n, 5);
            let mut merged = bytes[12..].to_vec();
            assert!(complete_checksum(&mut merged, 34, 16));
            assert!(verify(&merged));
            // The run goes on after it (the sender retransmits the bad one later).
            assert_eq!(c.offer(3, &segs[6]), Offer::Taken);
            assert_eq!(c.offer(3, &segs[7]), Offer::Taken);
            let (_, _, n) = c.take().unwrap();
            assert_eq!(n, 2);
            // Nor does a bad segment start a run.
            assert_eq!(c.offer(3, &bad), Offer::Bad);
            assert!(c.is_empty() && c.take().is_none());
        }
    }

    #[test]
    fn an_ipv4_header_checksum_that_fails_is_never_merged() {
        let segs = segments();
        let mut c = Coalescer::default();
        assert_eq!(c.offer(3, &segs[0]), Offer::Taken);
        let mut bad = segs[1].clone();
        bad[24] ^= 1; // the IPv4 header checksum
        assert_eq!(c.offer(3, &bad), Offer::Bad);
        assert_eq!(c.take().unwrap().2, 1);
    }

    #[test]
    fn a_completed_udp_checksum_of_zero_goes_out_as_ffff() {
        // A UDP/IPv4 datagram whose checksum comes out as 0 (RFC 768: sent as all ones).
        let mut f = vec![2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 1, 1, 2, 10, 1, 2, 2]);
        f.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89, 0, 20, 0, 0]);
        f.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]);
        let c = checksum::data(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let pseudo = checksum::pseudo_header_v4(
            Ipv4Addr::new(10, 1, 1, 2),
            Ipv4Addr::new(10, 1, 2, 2),
            17,
            20,
        );
        let partial = checksum::fold(pseudo);
        f[40..42].copy_from_slice(&partial.to_be_bytes());
        // Make the whole sum 0xffff with the last payload word.
        let s = checksum::fold(checksum::accumulate(0, &f[34..]));
        f[52..54].copy_from_slice(&(0xffff - s).to_be_bytes());
        assert_eq!(
            checksum::data(&f[34..]),
            0,
            "the plain completion would be 0"
        );
        assert!(complete_checksum(&mut f, 34, 6));
        assert_eq!(f[40..42], [0xff, 0xff]);
        let udp = crate::wire::UdpPacket::new_checked(&f[34..]).unwrap();
        assert!(udp.verify_checksum_v4(Ipv4Addr::new(10, 1, 1, 2), Ipv4Addr::new(10, 1, 2, 2)));
    }

    #[test]
    fn a_completed_checksum_is_marked_so_every_copy_carries_it() {
        // A flood to three nodes: each encapsulation completes what is still partial.
        let mut f = tcp_frame(1, &[9; 333], 0x18);
        let lay = tcp_layout(&f).unwrap();
        let partial = !checksum::finish(addrs_sum(&f, &lay, f.len() - lay.l4));
        f[lay.l4 + 16..lay.l4 + 18].copy_from_slice(&partial.to_be_bytes());
        let mut buf = PacketBuf::from_frame(&f);
        buf.vnet = VnetHdr {
            flags: vnet::F_NEEDS_CSUM,
            csum_start: lay.l4 as u16,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        for copy in 0..3 {
            buf.prepend(8).unwrap().fill(0);
            assert_eq!(complete_partial(&mut buf, 8), copy == 0, "copy {copy}");
            assert!(
                verify(&buf.frame()[8..]),
                "copy {copy} carries a valid checksum"
            );
            assert!(!buf.vnet.needs_csum());
            buf.advance(8);
        }
        // A TSO super-frame is segmented with fresh checksums: its partial one stays.
        let mut buf = PacketBuf::from_frame(&f);
        buf.vnet.flags = vnet::F_NEEDS_CSUM;
        buf.vnet.gso_type = vnet::GSO_TCPV4;
        buf.vnet.gso_size = 100;
        assert!(!complete_partial(&mut buf, 0));
        assert!(buf.vnet.needs_csum());
        assert_eq!(buf.frame(), &f[..]);
    }

    #[test]
    fn partial_checksums_are_completed() {
        let mut f = tcp_frame(1, &[9; 333], 0x18);
        let lay = tcp_layout(&f).unwrap();
        let partial = !checksum::finish(addrs_sum(&f, &lay, f.len() - lay.l4));
        f[lay.l4 + 16..lay.l4 + 18].copy_from_slice(&partial.to_be_bytes());
        assert!(!verify(&f));
        assert!(complete_checksum(&mut f, lay.l4, 16));
        assert!(verify(&f));
        assert!(!complete_checksum(&mut f, 5000, 16));
    }
}
