//! One-line summaries of captured frames for `vxctl capture` (tcpdump's habit: addresses,
//! ethertype, protocol). Best effort: whatever cannot be decoded is named, never a panic.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use controlplane::proto::{CapturedFrame, Direction, MacAddr};

use super::pcap::unhex;

/// Field offsets of the headers decoded here.
mod field {
    use std::ops::Range;
    pub type Field = Range<usize>;

    pub mod eth {
        use super::Field;
        pub const DST: Field = 0..6;
        pub const SRC: Field = 6..12;
        pub const ETHERTYPE: Field = 12..14;
        pub const HEADER_LEN: usize = ETHERTYPE.end;
        /// 802.1Q: TCI then the inner ethertype.
        pub const VLAN_TCI: Field = 14..16;
        pub const VLAN_ETHERTYPE: Field = 16..18;
        pub const VLAN_HEADER_LEN: usize = VLAN_ETHERTYPE.end;
    }

    pub mod arp {
        use super::Field;
        pub const OPER: Field = 6..8;
        pub const SHA: Field = 8..14;
        pub const SPA: Field = 14..18;
        pub const TPA: Field = 24..28;
        pub const LEN: usize = TPA.end;
    }

    pub mod ipv4 {
        use super::Field;
        pub const VER_IHL: usize = 0;
        pub const PROTOCOL: usize = 9;
        pub const SRC: Field = 12..16;
        pub const DST: Field = 16..20;
        pub const HEADER_LEN: usize = DST.end;
    }

    pub mod ipv6 {
        use super::Field;
        pub const NEXT_HEADER: usize = 6;
        pub const SRC: Field = 8..24;
        pub const DST: Field = 24..40;
        pub const HEADER_LEN: usize = DST.end;
    }

    pub mod l4 {
        use super::Field;
        pub const SRC_PORT: Field = 0..2;
        pub const DST_PORT: Field = 2..4;
        pub const ICMP_TYPE: usize = 0;
        pub const ICMP_CODE: usize = 1;
    }

    pub mod vxlan {
        use super::Field;
        pub const FLAGS: usize = 0;
        pub const VNI: Field = 4..7;
        pub const HEADER_LEN: usize = 8;
    }
}

fn be16(b: &[u8], f: std::ops::Range<usize>) -> Option<u16> {
    b.get(f).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

fn mac(b: &[u8], f: std::ops::Range<usize>) -> Option<MacAddr> {
    b.get(f)
        .map(|s| MacAddr([s[0], s[1], s[2], s[3], s[4], s[5]]))
}

fn ipv4(b: &[u8], f: std::ops::Range<usize>) -> Option<Ipv4Addr> {
    b.get(f).map(|s| Ipv4Addr::new(s[0], s[1], s[2], s[3]))
}

fn ipv6(b: &[u8], f: std::ops::Range<usize>) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(f)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

/// The capture line of a frame: `TIME PORT rx|tx LEN: SUMMARY`. `port` is the port's name
/// when known. Times are UTC.
pub fn line(f: &CapturedFrame, port: &str) -> String {
    let dir = match f.direction {
        Direction::Rx => "rx",
        Direction::Tx => "tx",
    };
    let what = match unhex(&f.hex) {
        Ok(data) if f.local.is_some() || f.peer.is_some() => {
            let (from, to) = match f.direction {
                Direction::Rx => (f.peer, f.local),
                Direction::Tx => (f.local, f.peer),
            };
            let show =
                |a: Option<std::net::SocketAddr>| a.map_or("?".to_string(), |a| a.to_string());
            format!("{} > {}: {}", show(from), show(to), vxlan(&data))
        }
        Ok(data) => ethernet(&data),
        Err(e) => format!("undecodable frame data: {e}"),
    };
    format!("{} {port} {dir} {}: {what}", clock(f.ts_ns), f.len)
}

/// `HH:MM:SS.uuuuuu` (UTC) of a time in nanoseconds since the epoch.
pub fn clock(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let usecs = (ts_ns % 1_000_000_000) / 1000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{usecs:06}",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// A VXLAN datagram's payload: the header, then the inner frame.
pub fn vxlan(b: &[u8]) -> String {
    use field::vxlan;
    let (Some(flags), Some(vni)) = (b.get(vxlan::FLAGS), b.get(vxlan::VNI)) else {
        return format!("VXLAN, truncated ({} bytes)", b.len());
    };
    let vni = u32::from_be_bytes([0, vni[0], vni[1], vni[2]]);
    let flag = if flags & 0x08 == 0 {
        " (I flag clear)"
    } else {
        ""
    };
    let inner = b.get(vxlan::HEADER_LEN..).unwrap_or(&[]);
    format!("VXLAN vni {vni}{flag}: {}", ethernet(inner))
}

/// An Ethernet frame: `SRC > DST, ETHERTYPE, ...`.
pub fn ethernet(b: &[u8]) -> String {
    use field::eth;
    let (Some(dst), Some(src), Some(mut ethertype)) =
        (mac(b, eth::DST), mac(b, eth::SRC), be16(b, eth::ETHERTYPE))
    else {
        return format!("truncated Ethernet frame ({} bytes)", b.len());
    };
    let mut out = format!("{src} > {dst}");
    let mut at = eth::HEADER_LEN;
    if ethertype == 0x8100 {
        match (be16(b, eth::VLAN_TCI), be16(b, eth::VLAN_ETHERTYPE)) {
            (Some(tci), Some(inner)) => {
                let _ = write!(out, ", vlan {}", tci & 0x0fff);
                ethertype = inner;
                at = eth::VLAN_HEADER_LEN;
            }
            _ => return out + ", 802.1Q, truncated",
        }
    }
    let rest = &b[at.min(b.len())..];
    let _ = write!(out, ", {}", l3(ethertype, rest));
    out
}

fn l3(ethertype: u16, b: &[u8]) -> String {
    match ethertype {
        0x0806 => arp(b),
        0x0800 => ip4(b),
        0x86dd => ip6(b),
        other => format!("ethertype {other:#06x}, {} bytes", b.len()),
    }
}

fn arp(b: &[u8]) -> String {
    use field::arp;
    if b.len() < arp::LEN {
        return "ARP, truncated".to_string();
    }
    let (op, sha, spa, tpa) = (
        be16(b, arp::OPER),
        mac(b, arp::SHA),
        ipv4(b, arp::SPA),
        ipv4(b, arp::TPA),
    );
    match (op, sha, spa, tpa) {
        (Some(1), _, Some(spa), Some(tpa)) => format!("ARP, request who-has {tpa} tell {spa}"),
        (Some(2), Some(sha), Some(spa), _) => format!("ARP, reply {spa} is-at {sha}"),
        (Some(op), ..) => format!("ARP, operation {op}"),
        _ => "ARP, truncated".to_string(),
    }
}

fn ip4(b: &[u8]) -> String {
    use field::ipv4;
    let (Some(vihl), Some(src), Some(dst)) =
        (b.get(ipv4::VER_IHL), ipv4(b, ipv4::SRC), ipv4(b, ipv4::DST))
    else {
        return "IPv4, truncated".to_string();
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let proto = b[ipv4::PROTOCOL];
    let l4 = b.get(ihl.max(ipv4::HEADER_LEN)..).unwrap_or(&[]);
    format!(
        "IPv4, {}",
        transport(&src.to_string(), &dst.to_string(), proto, l4, false)
    )
}

fn ip6(b: &[u8]) -> String {
    use field::ipv6;
    let (Some(next), Some(src), Some(dst)) = (
        b.get(ipv6::NEXT_HEADER),
        ipv6(b, ipv6::SRC),
        ipv6(b, ipv6::DST),
    ) else {
        return "IPv6, truncated".to_string();
    };
    let l4 = b.get(ipv6::HEADER_LEN..).unwrap_or(&[]);
    format!(
        "IPv6, {}",
        transport(&src.to_string(), &dst.to_string(), *next, l4, true)
    )
}

/// `SRC[.PORT] > DST[.PORT]: PROTOCOL ...`, tcpdump style.
fn transport(src: &str, dst: &str, proto: u8, l4: &[u8], v6: bool) -> String {
    use field::l4 as f;
    let ports = || Some((be16(l4, f::SRC_PORT)?, be16(l4, f::DST_PORT)?));
    match proto {
        6 | 17 => {
            let name = if proto == 6 { "TCP" } else { "UDP" };
            match ports() {
                Some((sp, dp)) => format!("{src}.{sp} > {dst}.{dp}: {name}"),
                None => format!("{src} > {dst}: {name}, truncated"),
            }
        }
        1 | 58 => {
            let name = if v6 { "ICMP6" } else { "ICMP" };
            match (l4.get(f::ICMP_TYPE), l4.get(f::ICMP_CODE)) {
                (Some(&t), Some(&c)) => {
                    format!("{src} > {dst}: {name} {}", icmp_name(v6, t, c))
                }
                _ => format!("{src} > {dst}: {name}, truncated"),
            }
        }
        other => format!("{src} > {dst}: ip-proto-{other}"),
    }
}

fn icmp_name(v6: bool, t: u8, c: u8) -> String {
    let known = match (v6, t) {
        (false, 0) => "echo reply",
        (false, 3) => "destination unreachable",
        (false, 8) => "echo request",
        (false, 11) => "time exceeded",
        (true, 1) => "destination unreachable",
        (true, 2) => "packet too big",
        (true, 3) => "time exceeded",
        (true, 128) => "echo request",
        (true, 129) => "echo reply",
        (true, 135) => "neighbor solicitation",
        (true, 136) => "neighbor advertisement",
        _ => "",
    };
    if known.is_empty() {
        format!("type {t} code {c}")
    } else if c != 0 {
        format!("{known} code {c}")
    } else {
        known.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(parts: &[&str]) -> Vec<u8> {
        unhex(&parts.concat()).unwrap()
    }

    fn icmp_echo() -> Vec<u8> {
        bytes(&[
            "0a580a010103",
            "0a580a010102",
            "0800",
            "4500001c00004000400100000a0101020a010103",
            "0800f7ff00000000",
        ])
    }

    #[test]
    fn ethernet_arp_ip_and_ports() {
        assert_eq!(
            ethernet(&icmp_echo()),
            "0a:58:0a:01:01:02 > 0a:58:0a:01:01:03, IPv4, 10.1.1.2 > 10.1.1.3: ICMP echo request"
        );
        let arp = bytes(&[
            "ffffffffffff",
            "0a580a010102",
            "0806",
            "0001080006040001",
            "0a580a010102",
            "0a010102",
            "000000000000",
            "0a010101",
        ]);
        assert_eq!(
            ethernet(&arp),
            "0a:58:0a:01:01:02 > ff:ff:ff:ff:ff:ff, ARP, request who-has 10.1.1.1 tell 10.1.1.2"
        );
        let udp = bytes(&[
            "0a580a010103",
            "0a580a010102",
            "8100",
            "000a",
            "0800",
            "4500001c00004000401100000a0101020a010103",
            "d43100350008",
            "0000",
        ]);
        assert_eq!(
            ethernet(&udp),
            "0a:58:0a:01:01:02 > 0a:58:0a:01:01:03, vlan 10, IPv4, 10.1.1.2.54321 > 10.1.1.3.53: UDP"
        );
        assert_eq!(ethernet(&[1, 2, 3]), "truncated Ethernet frame (3 bytes)");
        let short_ip = &icmp_echo()[..20];
        assert!(
            ethernet(short_ip).ends_with("IPv4, truncated"),
            "{}",
            ethernet(short_ip)
        );
    }

    #[test]
    fn tunnel_frames_show_outer_addresses_and_vni() {
        let mut payload = bytes(&["0800000000000a00"]);
        payload.extend(icmp_echo());
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        let f = CapturedFrame {
            ts_ns: 3_723_000_001_000, // 01:02:03.000001
            port: 1,
            direction: Direction::Rx,
            len: payload.len() as u32,
            hex,
            local: Some("198.51.100.1:4789".parse().unwrap()),
            peer: Some("198.51.100.2:50000".parse().unwrap()),
        };
        assert_eq!(
            line(&f, "vxlan0"),
            "01:02:03.000001 vxlan0 rx 50: 198.51.100.2:50000 > 198.51.100.1:4789: VXLAN vni 10: \
             0a:58:0a:01:01:02 > 0a:58:0a:01:01:03, IPv4, 10.1.1.2 > 10.1.1.3: ICMP echo request"
        );
        let bad = CapturedFrame {
            hex: "zz".into(),
            ..f
        };
        assert!(line(&bad, "vxlan0").contains("undecodable"));
    }
}
