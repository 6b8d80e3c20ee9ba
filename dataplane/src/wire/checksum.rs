//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! A *partial sum* is a `u64` holding the ones'-complement sum of big-endian 16-bit words, not
//! yet folded to 16 bits. Build one with [`accumulate`] and the pseudo-header helpers, add partial
//! sums with [`combine`] (or `+`: every partial sum returned here is below 2^35, so a few thousand
//! of them can be added without overflow), then [`finish`] it to get the value to store in a
//! checksum field. A packet whose stored checksum is right sums (with [`fold`]) to `0xffff`, i.e.
//! `finish` gives 0.
//!
//! Data is summed eight bytes at a time, as native-endian 32-bit halves added into a 64-bit
//! accumulator: no carry to propagate and no byte swap per word, so the loop vectorises. A
//! ones'-complement sum over wider words folds to the same 16-bit value as the sum over 16-bit
//! words (RFC 1071 section 2(C): 2^16 ≡ 1 modulo 2^16 - 1), and the sum of byte-swapped words
//! is the byte-swapped sum (section 2(B)), so the folded native sum is swapped once at the end.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds with end-around carry (ones'-complement addition on 64 bits).
#[inline]
fn add_carry(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    sum + u64::from(carry)
}

/// Folds a 64-bit partial sum to below 2^33 without changing its value modulo 2^16 - 1.
#[inline]
fn reduce(sum: u64) -> u64 {
    (sum & 0xffff_ffff) + (sum >> 32)
}

/// Adds the big-endian 16-bit words of `data` to the partial sum `init`.
///
/// An odd trailing byte is padded with a zero byte on the right, as RFC 1071 says; so when a
/// packet is summed in pieces, every piece but the last must have an even length.
///
/// The bulk is summed as 64-bit loads split into their 32-bit halves (no carry inside the loop,
/// no swap per word), folded and swapped once; the last 1-7 bytes as big-endian words.
#[inline]
pub fn accumulate(init: u64, data: &[u8]) -> u64 {
    let (bulk, tail) = data.split_at(data.len() & !7);
    let mut native = 0u64;
    for block in bulk.chunks(BLOCK) {
        native = add_carry(native, sum_native(block));
    }
    let mut acc = with_native(init, native);
    let mut pairs = tail.chunks_exact(2);
    for p in &mut pairs {
        acc = add_carry(acc, u64::from(u16::from_be_bytes([p[0], p[1]])));
    }
    if let [last] = pairs.remainder() {
        acc = add_carry(acc, u64::from(*last) << 8);
    }
    reduce(acc)
}

/// The fewer than 8 bytes after the bulk, padded with zeros to one native-order word: the bulk
/// is a multiple of 8 bytes long, so a zero after an odd last byte is the zero byte RFC 1071
/// pads it with.
#[inline(always)]
fn tail_native(tail: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(tail) {
        *d = *s;
    }
    halves(u64::from_ne_bytes(b))
}

/// Adds the native-order sum `native`, folded and swapped to network order once, to `init`.
#[inline(always)]
fn with_native(init: u64, native: u64) -> u64 {
    // A no-op swap on big-endian hosts.
    add_carry(reduce(init), u64::from(u16::from_be(fold(native))))
}

/// Bytes summed before the native accumulators are folded into the running sum: every 8 bytes
/// add less than 2^33, so a block adds less than 2^50 to one accumulator.
const BLOCK: usize = 1 << 20;

/// The 32-bit halves of `w`, added: less than 2^33.
#[inline(always)]
fn halves(w: u64) -> u64 {
    (w & 0xffff_ffff) + (w >> 32)
}

/// The native-order 64-bit word at `at` of a chunk known to hold it.
#[inline(always)]
fn word(c: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c[at..at + 8]);
    u64::from_ne_bytes(b)
}

/// The native-order sum of `block` (a multiple of 8 bytes, at most [`BLOCK`]), not folded.
/// One accumulator: the compiler vectorises this loop (two 16-byte loads and four adds per 32
/// bytes); four independent accumulators measured 3-15 % slower here (`--bench checksum_ab`).
#[inline]
fn sum_native(block: &[u8]) -> u64 {
    let mut s = 0u64;
    for w in block.chunks_exact(8) {
        s += halves(word(w, 0));
    }
    s
}

/// Copies `src` into `dst` and returns the partial sum of the bytes copied (what
/// `accumulate(0, src)` returns), reading each byte once: segmenting copies every payload byte
/// anyway, and the sum rides along with the copy.
///
/// # Panics
///
/// If `dst` and `src` differ in length (as `copy_from_slice` does).
#[inline]
pub fn copy_and_sum(dst: &mut [u8], src: &[u8]) -> u64 {
    assert_eq!(dst.len(), src.len(), "copy_and_sum: lengths differ");
    let bulk = src.len() & !7;
    let (src_bulk, src_tail) = src.split_at(bulk);
    let (dst_bulk, dst_tail) = dst.split_at_mut(bulk);
    let mut native = 0u64;
    for (d, s) in dst_bulk.chunks_mut(BLOCK).zip(src_bulk.chunks(BLOCK)) {
        native = add_carry(native, copy_sum_native(d, s));
    }
    dst_tail.copy_from_slice(src_tail);
    with_native(0, add_carry(native, tail_native(src_tail)))
}

/// [`sum_native`] of `src` while copying it into `dst` (same length, a multiple of 8 bytes).
/// Never inlined: inlined into `segment_tcp` the loop lost its vectorised shape and
/// segmenting ran 10 % slower than a copy followed by a sum (`--bench checksum_ab`).
#[inline(never)]
fn copy_sum_native(dst: &mut [u8], src: &[u8]) -> u64 {
    let (mut s0, mut s1, mut s2, mut s3) = (0u64, 0u64, 0u64, 0u64);
    let mut d = dst.chunks_exact_mut(32);
    let mut s = src.chunks_exact(32);
    for (dc, sc) in (&mut d).zip(&mut s) {
        let (w0, w1, w2, w3) = (word(sc, 0), word(sc, 8), word(sc, 16), word(sc, 24));
        dc[0..8].copy_from_slice(&w0.to_ne_bytes());
        dc[8..16].copy_from_slice(&w1.to_ne_bytes());
        dc[16..24].copy_from_slice(&w2.to_ne_bytes());
        dc[24..32].copy_from_slice(&w3.to_ne_bytes());
        s0 += halves(w0);
        s1 += halves(w1);
        s2 += halves(w2);
        s3 += halves(w3);
    }
    // The four accumulators are added before the remainder: this shape keeps the loop above
    // vectorised (two 16-byte loads, stores and adds per step).
    let mut t = s0 + s1 + s2 + s3;
    let (dr, sr) = (d.into_remainder(), s.remainder());
    for (dw, sw) in dr.chunks_exact_mut(8).zip(sr.chunks_exact(8)) {
        let w = word(sw, 0);
        dw.copy_from_slice(&w.to_ne_bytes());
        t += halves(w);
    }
    t
}

/// The previous [`accumulate`]: one accumulator, eight bytes per step. Kept so the benches can
/// compare the two (`cargo bench -p vxswitch-benches --bench offload`, `reference`) and the tests
/// can check they agree; not for the packet path.
#[doc(hidden)]
#[inline]
pub fn accumulate_reference(init: u64, data: &[u8]) -> u64 {
    let (bulk, tail) = data.split_at(data.len() & !7);
    let mut native = 0u64;
    for block in bulk.chunks(BLOCK) {
        let mut s = 0u64;
        for w in block.chunks_exact(8) {
            s += halves(word(w, 0));
        }
        native = add_carry(native, s);
    }
    let mut folded = reduce(native);
    while folded > 0xffff {
        folded = (folded & 0xffff) + (folded >> 16);
    }
    let mut acc = add_carry(reduce(init), u64::from(u16::from_be(folded as u16)));
    let mut pairs = tail.chunks_exact(2);
    for p in &mut pairs {
        acc = add_carry(acc, u64::from(u16::from_be_bytes([p[0], p[1]])));
    }
    if let [last] = pairs.remainder() {
        acc = add_carry(acc, u64::from(*last) << 8);
    }
    reduce(acc)
}

/// Adds two partial sums.
#[inline]
pub fn combine(a: u64, b: u64) -> u64 {
    reduce(add_carry(a, b))
}

/// Folds a partial sum to 16 bits (ones'-complement, end-around carry), **not** inverted.
#[inline]
pub fn fold(sum: u64) -> u16 {
    // 64 to 32 to 16 bits, each an addition with end-around carry: no loop, and a sum that is
    // not zero never folds to zero (0xffff stays 0xffff).
    let (s, c) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + u32::from(c);
    let (s, c) = (s as u16).overflowing_add((s >> 16) as u16);
    s + u16::from(c)
}

/// Folds and inverts a partial sum: the value to store in a checksum field.
#[inline]
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// The Internet checksum of `data`: `finish(accumulate(0, data))`.
///
/// Over a header that holds a correct checksum this returns 0.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// The partial sum of the IPv4 pseudo-header (RFC 768, RFC 9293 section 3.1): source, destination,
/// zero, protocol, and the upper-layer length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u64 {
    u64::from(u32::from(src)) + u64::from(u32::from(dst)) + u64::from(proto) + u64::from(len)
}

/// The partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination, the
/// 32-bit upper-layer length and the next header value.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, len: u32) -> u64 {
    accumulate(0, &src.octets()) + accumulate(0, &dst.octets()) + u64::from(proto) + u64::from(len)
}

/// Updates checksum `old_csum` after a 16-bit word of the covered data changed from `old` to
/// `new` (RFC 1624 equation 3: `HC' = ~(~HC + ~m + m')`).
#[inline]
pub fn update16(old_csum: u16, old: u16, new: u16) -> u16 {
    let sum = u64::from(!old_csum) + u64::from(!old) + u64::from(new);
    finish(sum)
}

/// Updates checksum `old_csum` after an aligned 32-bit word of the covered data (an IPv4 address,
/// a TCP sequence number) changed from `old` to `new` (RFC 1624 equation 3, twice).
#[inline]
pub fn update32(old_csum: u16, old: u32, new: u32) -> u16 {
    let sum = u64::from(!old_csum)
        + u64::from(!((old >> 16) as u16))
        + u64::from(!(old as u16))
        + u64::from(new >> 16)
        + u64::from(new & 0xffff);
    finish(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::Rng;
    use etherparse::checksum::Sum16BitWords;

    /// The textbook 16-bit-at-a-time reference, to check the 64-bit implementation against.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The previous implementation (big-endian 64-bit words with end-around carry), which the
    /// native-order one must match exactly.
    fn accumulate_be64(init: u64, data: &[u8]) -> u64 {
        let mut acc = reduce(init);
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let word = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            acc = add_carry(acc, word);
        }
        let mut pairs = words.remainder().chunks_exact(2);
        for p in &mut pairs {
            acc = add_carry(acc, u64::from(u16::from_be_bytes([p[0], p[1]])));
        }
        if let [last] = pairs.remainder() {
            acc = add_carry(acc, u64::from(*last) << 8);
        }
        reduce(acc)
    }

    #[test]
    fn the_native_order_sum_matches_the_big_endian_one() {
        let mut rng = Rng::new(0xc5);
        let mut buf = vec![0u8; 70_000];
        rng.fill(&mut buf);
        let inits = [
            0,
            1,
            0xffff,
            0x1_fffe,
            u64::from(u32::MAX),
            (1 << 35) - 1,
            u64::MAX,
        ];
        // Every length up to 300 at every alignment up to 8, then packet and block sizes.
        let lens = (0..300).chain([1398, 1464, 9000, 65_535, 65_536, 69_991]);
        for len in lens {
            for start in 0..8 {
                let d = &buf[start..start + len];
                for &init in &inits {
                    let (a, b) = (accumulate(init, d), accumulate_be64(init, d));
                    assert_eq!(fold(a), fold(b), "len {len} at {start}, init {init:#x}");
                    assert!(a < 1 << 35, "a partial sum stays small");
                }
                assert_eq!(data(d), reference(d), "len {len} at {start}");
            }
        }
        for fill in [0x00, 0xff, 0x80, 0x01] {
            let d = vec![fill; 65_536 + 7];
            for len in [0, 1, 2, 7, 8, 9, 4096, d.len()] {
                assert_eq!(
                    fold(accumulate(0, &d[..len])),
                    fold(accumulate_be64(0, &d[..len]))
                );
                assert_eq!(data(&d[..len]), reference(&d[..len]), "{fill:#x} x {len}");
            }
        }
        // More than one 2^20-byte block.
        let big: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i * 31 % 255) as u8).collect();
        assert_eq!(fold(accumulate(7, &big)), fold(accumulate_be64(7, &big)));
    }

    /// The textbook sum as a partial sum: 16-bit big-endian words, end-around carry each step.
    fn reference_partial(init: u64, data: &[u8]) -> u16 {
        let mut sum = u32::from(fold(init));
        for pair in data.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// Every length 0..2000 at every alignment 0..8 (and odd starts inside the buffer), random
    /// data and data built to sit on the 0x0000/0xffff edge: the wide sum, the fused copy and sum
    /// and the previous implementation all give the textbook result, bit for bit.
    #[test]
    fn the_wide_sum_and_the_fused_copy_match_the_reference_bit_for_bit() {
        let mut rng = Rng::new(0x1071);
        let mut buf = vec![0u8; 2000 + 64];
        let mut dst = vec![0u8; 2000 + 64];
        for fill in 0..4 {
            match fill {
                0 => rng.fill(&mut buf),
                1 => buf.fill(0xff),
                2 => buf.fill(0),
                // 0xff with a sprinkle of zeros: sums that land just below or at 0xffff.
                _ => {
                    rng.fill(&mut buf);
                    for b in buf.iter_mut() {
                        *b = if *b < 8 { 0 } else { 0xff };
                    }
                }
            }
            for len in 0..2000 {
                let start = (len * 7 + fill) % 8;
                let d = &buf[start..start + len];
                let want = reference_partial(0, d);
                let got = accumulate(0, d);
                assert_eq!(fold(got), want, "fill {fill} len {len} at {start}");
                assert!(got < 1 << 35);
                assert_eq!(fold(accumulate_reference(0, d)), want);
                assert_eq!(data(d), !want);
                // The copy lands at another alignment than its source.
                let at = (start + 3) % 8;
                dst.fill(0x5a);
                let copied = copy_and_sum(&mut dst[at..at + len], d);
                assert_eq!(
                    fold(copied),
                    want,
                    "copy: fill {fill} len {len} {start}->{at}"
                );
                assert_eq!(&dst[at..at + len], d, "copy: the bytes");
                assert!(dst[..at].iter().all(|&b| b == 0x5a), "nothing before");
                assert!(dst[at + len..].iter().all(|&b| b == 0x5a), "nothing after");
            }
        }
        // Partial sums start from any value, including ones that fold to 0xffff.
        rng.fill(&mut buf);
        for init in [
            0,
            1,
            0xfffe,
            0xffff,
            0x1_0000,
            0x1_fffe,
            (1 << 35) - 1,
            u64::MAX,
        ] {
            for len in [0, 1, 7, 8, 33, 1450, 1999] {
                let d = &buf[1..1 + len];
                assert_eq!(fold(accumulate(init, d)), reference_partial(init, d));
                let folded = fold(combine(init, copy_and_sum(&mut dst[..len], d)));
                assert_eq!(
                    folded,
                    reference_partial(init, d),
                    "init {init:#x} len {len}"
                );
            }
        }
    }

    #[test]
    fn the_fused_copy_matches_over_large_buffers() {
        let mut rng = Rng::new(0xc0b1);
        let mut src = vec![0u8; (2 << 20) + 13];
        rng.fill(&mut src);
        let mut dst = vec![0u8; src.len()];
        for len in [
            65_535,
            65_536,
            (1 << 20) - 1,
            1 << 20,
            (1 << 20) + 9,
            src.len(),
        ] {
            let sum = copy_and_sum(&mut dst[..len], &src[..len]);
            assert_eq!(
                fold(sum),
                fold(accumulate_reference(0, &src[..len])),
                "len {len}"
            );
            assert_eq!(fold(sum), fold(accumulate(0, &src[..len])));
            assert_eq!(dst[..len], src[..len]);
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(super::data(&data), 0x220d);
    }

    #[test]
    fn known_ipv4_header() {
        // The outer IPv4 header of fixtures/vxlan_arp_request.bin, captured from Linux; the stored
        // checksum is 0xd931.
        let mut header = [
            0x45, 0x00, 0x00, 0x4e, 0x4d, 0x03, 0x00, 0x00, 0x40, 0x11, 0xd9, 0x31, 0xc6, 0x33,
            0x64, 0x01, 0xc6, 0x33, 0x64, 0x02,
        ];
        assert_eq!(data(&header), 0);
        header[10] = 0;
        header[11] = 0;
        assert_eq!(data(&header), 0xd931);
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(data(&[]), 0xffff);
        assert_eq!(data(&[0x12]), !0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), reference(&[0x12, 0x34, 0x56]));
    }

    #[test]
    fn matches_reference_and_etherparse() {
        let mut rng = Rng::new(0x5eed);
        let mut buf = [0u8; 1600];
        rng.fill(&mut buf);
        for len in (0..64).chain([127, 128, 129, 1023, 1499, 1500, 1600]) {
            let d = &buf[..len];
            let expected = reference(d);
            assert_eq!(data(d), expected, "len {len}");
            assert_eq!(
                Sum16BitWords::new().add_slice(d).ones_complement().to_be(),
                expected
            );
        }
        // All-ones data: the sum saturates at 0xffff, the checksum is 0.
        assert_eq!(data(&[0xff; 1500]), 0);
        assert_eq!(data(&[0xff; 1500]), reference(&[0xff; 1500]));
    }

    #[test]
    fn pieces_combine() {
        let mut rng = Rng::new(7);
        let mut buf = [0u8; 301];
        rng.fill(&mut buf);
        let whole = accumulate(0, &buf);
        for split in (0..buf.len()).step_by(2) {
            let (a, b) = buf.split_at(split);
            assert_eq!(fold(accumulate(accumulate(0, a), b)), fold(whole));
            assert_eq!(
                fold(combine(accumulate(0, a), accumulate(0, b))),
                fold(whole)
            );
        }
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(combine(u64::MAX, u64::MAX)), 0xffff);
        assert_eq!(fold(accumulate(u64::MAX, &[0xff; 64])), 0xffff);
    }

    #[test]
    fn pseudo_headers_match_etherparse() {
        let src4 = Ipv4Addr::new(198, 51, 100, 1);
        let dst4 = Ipv4Addr::new(198, 51, 100, 2);
        let expected = Sum16BitWords::new()
            .add_4bytes(src4.octets())
            .add_4bytes(dst4.octets())
            .add_2bytes([0, 17])
            .add_2bytes(1234u16.to_be_bytes())
            .ones_complement()
            .to_be(); // etherparse sums in native byte order
        assert_eq!(finish(pseudo_header_v4(src4, dst4, 17, 1234)), expected);

        let src6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst6: Ipv6Addr = "2001:db8:ffff::2".parse().unwrap();
        let expected = Sum16BitWords::new()
            .add_16bytes(src6.octets())
            .add_16bytes(dst6.octets())
            .add_4bytes(70_000u32.to_be_bytes())
            .add_4bytes([0, 0, 0, 58])
            .ones_complement()
            .to_be();
        assert_eq!(finish(pseudo_header_v6(&src6, &dst6, 58, 70_000)), expected);
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut rng = Rng::new(1624);
        for round in 0..20_000 {
            let mut header = [0u8; 20];
            rng.fill(&mut header);
            if round % 7 == 0 {
                // Corner cases: words of all ones or all zeros around the changed word.
                header.fill(if round % 2 == 0 { 0xff } else { 0 });
            }
            header[10] = 0;
            header[11] = 0;
            let csum = data(&header);
            let word = (rng.next_u64() as usize % 10) * 2;
            let old = u16::from_be_bytes([header[word], header[word + 1]]);
            let new = rng.next_u64() as u16;
            if word == 10 {
                continue;
            }
            header[word..word + 2].copy_from_slice(&new.to_be_bytes());
            let fresh = data(&header);
            let updated = update16(csum, old, new);
            // RFC 1624 eqn 3 can only differ from a recomputation by 0x0000 vs 0xffff, the two
            // representations of zero; both verify.
            assert!(
                updated == fresh || (updated ^ fresh == 0xffff && (updated == 0 || fresh == 0)),
                "round {round}: {updated:#06x} vs {fresh:#06x}"
            );
            header[10..12].copy_from_slice(&updated.to_be_bytes());
            assert_eq!(data(&header), 0, "round {round}");
        }
    }

    #[test]
    fn incremental_update32_matches_recompute() {
        let mut rng = Rng::new(32);
        for _ in 0..10_000 {
            let mut header = [0u8; 20];
            rng.fill(&mut header);
            header[10] = 0;
            header[11] = 0;
            let csum = data(&header);
            let old = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
            let new = rng.next_u64() as u32;
            header[12..16].copy_from_slice(&new.to_be_bytes());
            let updated = update32(csum, old, new);
            header[10..12].copy_from_slice(&updated.to_be_bytes());
            assert_eq!(data(&header), 0);
        }
    }

    #[test]
    fn ttl_decrement_rfc1624_example() {
        // RFC 1624 section 3 setting: a TTL/protocol word 0x4011 becomes 0x3f11.
        let mut header = [
            0x45, 0x00, 0x00, 0x4e, 0x4d, 0x03, 0x00, 0x00, 0x40, 0x11, 0xd9, 0x31, 0xc6, 0x33,
            0x64, 0x01, 0xc6, 0x33, 0x64, 0x02,
        ];
        let csum = update16(0xd931, 0x4011, 0x3f11);
        header[8] = 0x3f;
        header[10..12].copy_from_slice(&csum.to_be_bytes());
        assert_eq!(data(&header), 0);
        assert_eq!(csum, 0xda31);
    }
}
