//! Classic pcap files (the format tcpdump -w writes): a global header, then one record per
//! frame. Every record is flushed as it is written, so the file is valid after each frame and a
//! capture stopped by Ctrl-C leaves a complete file behind.
//!
//! Tunnel frames arrive as UDP payloads (VXLAN header + inner frame); [`wrap_udp`] puts a
//! synthetic Ethernet + IPv4/IPv6 + UDP header in front so that tcpdump and Wireshark decode the
//! VXLAN and the inner frame.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use controlplane::proto::{CapturedFrame, Direction};

/// The pcap magic number (microsecond timestamps).
pub const MAGIC: u32 = 0xa1b2_c3d4;
pub const VERSION_MAJOR: u16 = 2;
pub const VERSION_MINOR: u16 = 4;
/// Largest number of bytes kept of one frame.
pub const SNAPLEN: u32 = 65535;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// Offsets of the headers this module builds.
mod field {
    use std::ops::Range;
    pub type Field = Range<usize>;

    pub mod eth {
        use super::Field;
        pub const DST: Field = 0..6;
        pub const SRC: Field = 6..12;
        pub const ETHERTYPE: Field = 12..14;
        pub const HEADER_LEN: usize = ETHERTYPE.end;
    }

    pub mod ipv4 {
        use super::Field;
        pub const VER_IHL: usize = 0;
        pub const LENGTH: Field = 2..4;
        pub const FLAGS_FRAG: Field = 6..8;
        pub const TTL: usize = 8;
        pub const PROTOCOL: usize = 9;
        pub const CHECKSUM: Field = 10..12;
        pub const SRC: Field = 12..16;
        pub const DST: Field = 16..20;
        pub const HEADER_LEN: usize = DST.end;
    }

    pub mod ipv6 {
        use super::Field;
        pub const VER_TC_FLOW: Field = 0..4;
        pub const PAYLOAD_LEN: Field = 4..6;
        pub const NEXT_HEADER: usize = 6;
        pub const HOP_LIMIT: usize = 7;
        pub const SRC: Field = 8..24;
        pub const DST: Field = 24..40;
        pub const HEADER_LEN: usize = DST.end;
    }

    pub mod udp {
        use super::Field;
        pub const SRC_PORT: Field = 0..2;
        pub const DST_PORT: Field = 2..4;
        pub const LENGTH: Field = 4..6;
        pub const CHECKSUM: Field = 6..8;
        pub const HEADER_LEN: usize = CHECKSUM.end;
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;
const DONT_FRAGMENT: u16 = 0x4000;
const TTL: u8 = 64;

/// Writes a pcap stream: the file header at creation, then [`PcapWriter::record`]s.
pub struct PcapWriter<W: Write> {
    out: W,
    records: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header (little-endian, as on the machines we run on) and flushes it.
    pub fn new(mut out: W) -> io::Result<PcapWriter<W>> {
        let mut h = Vec::with_capacity(FILE_HEADER_LEN);
        h.extend_from_slice(&MAGIC.to_le_bytes());
        h.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
        h.extend_from_slice(&VERSION_MINOR.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone: UTC
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        out.flush()?;
        Ok(PcapWriter { out, records: 0 })
    }

    /// Writes one record and flushes it. `data` is cut to [`SNAPLEN`]; `orig_len` is the length
    /// the frame had on the wire (at least `data.len()`).
    pub fn record(&mut self, ts_ns: u64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let kept = &data[..data.len().min(SNAPLEN as usize)];
        let secs = (ts_ns / 1_000_000_000) as u32;
        let usecs = ((ts_ns % 1_000_000_000) / 1000) as u32;
        let mut r = Vec::with_capacity(RECORD_HEADER_LEN + kept.len());
        r.extend_from_slice(&secs.to_le_bytes());
        r.extend_from_slice(&usecs.to_le_bytes());
        r.extend_from_slice(&(kept.len() as u32).to_le_bytes());
        r.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        r.extend_from_slice(kept);
        self.out.write_all(&r)?;
        self.out.flush()?;
        self.records += 1;
        Ok(())
    }

    /// Writes a captured frame: pod frames as they are, tunnel frames wrapped (see
    /// [`frame_bytes`]).
    pub fn frame(&mut self, f: &CapturedFrame) -> io::Result<()> {
        let (data, orig) =
            frame_bytes(f).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.record(f.ts_ns, &data, orig)
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Decodes the hex of a captured frame.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("bad hex at offset {i}"))
        })
        .collect()
}

/// The bytes of a record for `f` and its length on the wire. Tunnel frames (both `local` and
/// `peer` set, same address family) get outer headers: rx frames go from the peer to this
/// node, tx frames the other way. Other frames are the Ethernet frame as captured.
pub fn frame_bytes(f: &CapturedFrame) -> Result<(Vec<u8>, u32), String> {
    let data = unhex(&f.hex)?;
    let wire = f.len.max(data.len() as u32);
    match (f.local, f.peer) {
        (Some(local), Some(peer)) if local.is_ipv4() == peer.is_ipv4() => {
            let (src, dst) = match f.direction {
                Direction::Rx => (peer, local),
                Direction::Tx => (local, peer),
            };
            let header = outer_header(src, dst, wire);
            let orig = wire + header.len() as u32;
            let mut out = header;
            out.extend_from_slice(&data);
            Ok((out, orig))
        }
        _ => Ok((data, wire)),
    }
}

/// Wraps a UDP payload in Ethernet + IP + UDP headers from `src` to `dst`.
pub fn wrap_udp(payload: &[u8], src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = outer_header(src, dst, payload.len() as u32);
    out.extend_from_slice(payload);
    out
}

/// A synthetic MAC for an underlay address: locally administered, 02:00 + the address's last
/// four bytes, so that the two ends differ and are recognisable.
fn mac_of(ip: IpAddr) -> [u8; 6] {
    let tail: [u8; 4] = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

/// Ethernet + IP + UDP headers for a payload of `payload_len` bytes (on the wire).
fn outer_header(src: SocketAddr, dst: SocketAddr, payload_len: u32) -> Vec<u8> {
    use field::{eth, ipv4, ipv6, udp};
    let udp_len = (payload_len as usize + udp::HEADER_LEN).min(u16::MAX as usize) as u16;
    let (ethertype, ip_len) = match src.ip() {
        IpAddr::V4(_) => (ETHERTYPE_IPV4, ipv4::HEADER_LEN),
        IpAddr::V6(_) => (ETHERTYPE_IPV6, ipv6::HEADER_LEN),
    };
    let mut h = vec![0u8; eth::HEADER_LEN + ip_len + udp::HEADER_LEN];
    let (e, rest) = h.split_at_mut(eth::HEADER_LEN);
    e[eth::DST].copy_from_slice(&mac_of(dst.ip()));
    e[eth::SRC].copy_from_slice(&mac_of(src.ip()));
    e[eth::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    let (ip, u) = rest.split_at_mut(ip_len);
    u[udp::SRC_PORT].copy_from_slice(&src.port().to_be_bytes());
    u[udp::DST_PORT].copy_from_slice(&dst.port().to_be_bytes());
    u[udp::LENGTH].copy_from_slice(&udp_len.to_be_bytes());
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (ipv4::HEADER_LEN + udp_len as usize).min(u16::MAX as usize) as u16;
            ip[ipv4::VER_IHL] = 0x45;
            ip[ipv4::LENGTH].copy_from_slice(&total.to_be_bytes());
            ip[ipv4::FLAGS_FRAG].copy_from_slice(&DONT_FRAGMENT.to_be_bytes());
            ip[ipv4::TTL] = TTL;
            ip[ipv4::PROTOCOL] = IPPROTO_UDP;
            ip[ipv4::SRC].copy_from_slice(&s.octets());
            ip[ipv4::DST].copy_from_slice(&d.octets());
            let sum = checksum(ip);
            ip[ipv4::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
            // UDP checksum 0: "none", allowed over IPv4 and what VXLAN senders usually do.
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ip[ipv6::VER_TC_FLOW].copy_from_slice(&(6u32 << 28).to_be_bytes());
            ip[ipv6::PAYLOAD_LEN].copy_from_slice(&udp_len.to_be_bytes());
            ip[ipv6::NEXT_HEADER] = IPPROTO_UDP;
            ip[ipv6::HOP_LIMIT] = TTL;
            ip[ipv6::SRC].copy_from_slice(&s.octets());
            ip[ipv6::DST].copy_from_slice(&d.octets());
            // IPv6 requires a UDP checksum, but it covers the payload, which may be cut to the
            // snap length: leave it 0 (tcpdump decodes it and at most notes the checksum).
        }
        _ => unreachable!("callers pass one address family"),
    }
    h
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A pcap file read back (tests, and anyone checking a file): the header fields and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapFile {
    pub magic: u32,
    pub version: (u16, u16),
    pub snaplen: u32,
    pub linktype: u32,
    /// (seconds, microseconds, captured bytes, length on the wire).
    pub records: Vec<(u32, u32, Vec<u8>, u32)>,
}

/// Parses a little-endian classic pcap file; a truncated last record is an error.
pub fn read(bytes: &[u8]) -> Result<PcapFile, String> {
    let u32_at = |o: usize| -> Result<u32, String> {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("truncated at byte {o}"))
    };
    let u16_at = |o: usize| -> Result<u16, String> {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| format!("truncated at byte {o}"))
    };
    let magic = u32_at(0)?;
    if magic != MAGIC {
        return Err(format!("bad magic {magic:#x}"));
    }
    let mut f = PcapFile {
        magic,
        version: (u16_at(4)?, u16_at(6)?),
        snaplen: u32_at(16)?,
        linktype: u32_at(20)?,
        records: Vec::new(),
    };
    let mut at = FILE_HEADER_LEN;
    while at < bytes.len() {
        let (secs, usecs, incl, orig) = (
            u32_at(at)?,
            u32_at(at + 4)?,
            u32_at(at + 8)?,
            u32_at(at + 12)?,
        );
        let start = at + RECORD_HEADER_LEN;
        let data = bytes
            .get(start..start + incl as usize)
            .ok_or_else(|| format!("record at byte {at} is truncated"))?;
        f.records.push((secs, usecs, data.to_vec(), orig));
        at = start + incl as usize;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request from 10.1.1.2 for 10.1.1.1 (42 bytes).
    const ARP: &str = concat!(
        "ffffffffffff",
        "0a580a010102",
        "0806", // Ethernet
        "0001",
        "0800",
        "06",
        "04",
        "0001", // ARP request
        "0a580a010102",
        "0a010102", // sender
        "000000000000",
        "0a010101", // target
    );

    fn arp() -> Vec<u8> {
        unhex(ARP).unwrap()
    }

    #[test]
    fn two_records_read_back_with_the_header_fields() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.record(1_700_000_000_123_456_789, &arp(), 42).unwrap();
        w.record(1_700_000_001_000_000_000, &[0xaa; 20], 60)
            .unwrap();
        assert_eq!(w.records(), 2);
        let bytes = w.into_inner();
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        let f = read(&bytes).unwrap();
        assert_eq!(f.magic, 0xa1b2c3d4);
        assert_eq!(f.version, (2, 4));
        assert_eq!(f.snaplen, 65535);
        assert_eq!(f.linktype, 1);
        assert_eq!(f.records.len(), 2);
        assert_eq!(f.records[0], (1_700_000_000, 123_456, arp(), 42));
        // A cut frame: 20 bytes kept of 60 on the wire.
        assert_eq!(f.records[1], (1_700_000_001, 0, vec![0xaa; 20], 60));
        assert_eq!(bytes.len(), 24 + 16 + 42 + 16 + 20);
    }

    #[test]
    fn a_truncated_record_is_reported() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.record(0, &arp(), 42).unwrap();
        let bytes = w.into_inner();
        assert!(read(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("truncated"));
        assert!(read(&[0; 24]).unwrap_err().contains("magic"));
    }

    fn tunnel_frame(direction: Direction, hex: String, len: u32) -> CapturedFrame {
        CapturedFrame {
            ts_ns: 5_000_000_000,
            port: 1,
            direction,
            len,
            hex,
            local: Some("198.51.100.1:4789".parse().unwrap()),
            peer: Some("198.51.100.2:51000".parse().unwrap()),
        }
    }

    /// VXLAN header (I flag, VNI 10) + the ARP frame.
    fn vxlan_payload() -> Vec<u8> {
        let mut p = vec![0x08, 0, 0, 0, 0, 0, 10, 0];
        p.extend_from_slice(&arp());
        p
    }

    fn to_hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_tunnel_frame_gets_outer_headers_with_correct_lengths_and_checksum() {
        let payload = vxlan_payload();
        let n = payload.len();
        let f = tunnel_frame(Direction::Rx, to_hex(&payload), n as u32);
        let (data, orig) = frame_bytes(&f).unwrap();
        assert_eq!(data.len(), 14 + 20 + 8 + n);
        assert_eq!(orig as usize, data.len());
        // Ethernet: synthetic MACs from the addresses, IPv4 ethertype.
        assert_eq!(&data[0..6], &[2, 0, 198, 51, 100, 1]);
        assert_eq!(&data[6..12], &[2, 0, 198, 51, 100, 2]);
        assert_eq!(&data[12..14], &[0x08, 0x00]);
        let ip = &data[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, 20 + 8 + n);
        assert_eq!(ip[9], 17);
        // rx: from the peer to this node.
        assert_eq!(&ip[12..16], &[198, 51, 100, 2]);
        assert_eq!(&ip[16..20], &[198, 51, 100, 1]);
        // A header with a correct checksum sums to zero.
        assert_eq!(checksum(ip), 0);
        assert_ne!(u16::from_be_bytes([ip[10], ip[11]]), 0);
        let udp = &data[34..42];
        assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 51000);
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 4789);
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]) as usize, 8 + n);
        assert_eq!(&data[42..], &payload[..]);

        // tx goes the other way; a cut frame keeps its wire length in the headers.
        let f = tunnel_frame(Direction::Tx, to_hex(&payload[..20]), n as u32);
        let (data, orig) = frame_bytes(&f).unwrap();
        assert_eq!(data.len(), 42 + 20);
        assert_eq!(orig as usize, 42 + n);
        assert_eq!(&data[26..30], &[198, 51, 100, 1]);
        assert_eq!(u16::from_be_bytes([data[34], data[35]]), 4789);
        assert_eq!(u16::from_be_bytes([data[16], data[17]]) as usize, 28 + n);
        assert_eq!(checksum(&data[14..34]), 0);
    }

    #[test]
    fn ipv6_tunnels_and_pod_frames() {
        let payload = vxlan_payload();
        let mut f = tunnel_frame(Direction::Tx, to_hex(&payload), payload.len() as u32);
        f.local = Some("[2001:db8::1]:4789".parse().unwrap());
        f.peer = Some("[2001:db8::2]:4789".parse().unwrap());
        let (data, _) = frame_bytes(&f).unwrap();
        assert_eq!(&data[12..14], &[0x86, 0xdd]);
        assert_eq!(data[14] >> 4, 6);
        assert_eq!(
            u16::from_be_bytes([data[18], data[19]]) as usize,
            8 + payload.len()
        );
        assert_eq!(data.len(), 14 + 40 + 8 + payload.len());
        // A pod frame is written as captured.
        let pod = CapturedFrame {
            port: 3,
            local: None,
            peer: None,
            ..tunnel_frame(Direction::Rx, to_hex(&arp()), 42)
        };
        assert_eq!(frame_bytes(&pod).unwrap(), (arp(), 42));
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2, checksum 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }
}
