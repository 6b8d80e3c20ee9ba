//! The lexical layer of the flow syntax: splitting a flow into `key[=value]` items, and the
//! value parsers (numbers, ports, MAC and IP addresses with masks) that fields and actions
//! share.
//!
//! Everything here works on byte offsets into the whole input line and fails with a [`Bad`]
//! at the offset of the offending token; [`super::ParseError`] turns the offset into a
//! column. Offsets always fall on character boundaries: tokens are split at ASCII
//! delimiters only.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::flow::PortRef;
use crate::proto::MacAddr;

/// A syntax error at a byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bad {
    pub at: usize,
    pub msg: String,
}

pub(super) type Res<T> = Result<T, Bad>;

/// Fails at byte offset `at` with `msg`.
pub(super) fn bad<T>(at: usize, msg: impl Into<String>) -> Res<T> {
    Err(Bad {
        at,
        msg: msg.into(),
    })
}

/// Fields and actions are separated by commas or whitespace, as in ovs-ofctl.
pub(super) fn is_delim(c: char) -> bool {
    c == ',' || c.is_whitespace()
}

/// The 1-based column, in characters, of byte offset `at` of `s`.
pub(super) fn column(s: &str, at: usize) -> usize {
    s.char_indices().take_while(|&(i, _)| i < at).count() + 1
}

/// How an error message shows a token: quoted, or "nothing" when it is empty.
pub(super) fn found(v: &str) -> String {
    if v.is_empty() {
        "nothing".to_string()
    } else {
        format!("{v:?}")
    }
}

/// The offset of the first character at or after `from` that `keep` rejects.
pub(super) fn scan(s: &str, from: usize, keep: impl Fn(char) -> bool) -> usize {
    let Some(rest) = s.get(from..) else {
        return s.len();
    };
    rest.char_indices()
        .find(|&(_, c)| !keep(c))
        .map_or(s.len(), |(i, _)| from + i)
}

/// The offset of the first non-delimiter at or after `from`.
pub(super) fn skip_delims(s: &str, from: usize) -> usize {
    scan(s, from, is_delim)
}

/// One `key` or `key=value` of a flow's match part.
#[derive(Debug)]
pub(super) struct Item<'a> {
    pub key: &'a str,
    pub at: usize,
    /// The value and its offset.
    pub value: Option<(&'a str, usize)>,
}

impl<'a> Item<'a> {
    /// The whole `key=value` text (`s` is the string the item came from).
    pub fn text(&self, s: &'a str) -> &'a str {
        let end = self
            .value
            .map_or(self.at + self.key.len(), |(v, at)| at + v.len());
        s.get(self.at..end).unwrap_or(self.key)
    }
}

/// A flow split into its match items and, when present, its action list.
#[derive(Debug)]
pub(super) struct Split<'a> {
    pub items: Vec<Item<'a>>,
    /// Offsets of the `actions` key and of the action text just after `actions=`.
    pub actions: Option<(usize, usize)>,
}

/// Splits `s` from offset `from`: `key` and `key=value` items separated by commas or
/// whitespace, up to `actions=` (or `action=`, as OVS also accepts) after which everything is
/// the action list.
pub(super) fn split(s: &str, from: usize) -> Split<'_> {
    let mut items = Vec::new();
    let mut i = from;
    loop {
        i = skip_delims(s, i);
        if i >= s.len() {
            return Split {
                items,
                actions: None,
            };
        }
        let at = i;
        i = scan(s, i, |c| c != '=' && !is_delim(c));
        let key = &s[at..i];
        if s[i..].starts_with('=') {
            i += 1;
            if key == "actions" || key == "action" {
                return Split {
                    items,
                    actions: Some((at, i)),
                };
            }
            let value_at = i;
            i = scan(s, i, |c| !is_delim(c));
            items.push(Item {
                key,
                at,
                value: Some((&s[value_at..i], value_at)),
            });
        } else {
            items.push(Item {
                key,
                at,
                value: None,
            });
        }
    }
}

/// Why a number did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumErr {
    Syntax,
    Overflow,
}

/// A number, decimal or `0x` hex (no sign, no spaces).
pub(super) fn number(v: &str) -> Result<u64, NumErr> {
    let (digits, radix) = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (v, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(NumErr::Syntax);
    }
    u64::from_str_radix(digits, radix).map_err(|_| NumErr::Overflow)
}

/// A number as C's `%#x` prints it (and ovs-ofctl with it): `0x5`, but `0` for zero.
pub(super) fn chex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// The largest value of a `bits`-wide field.
pub(super) fn max_of(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// A number that fits in `bits` bits. `after` is the text before the value (`priority=`,
/// `goto_table:`) and `name` the field the range error names.
pub(super) fn uint(v: &str, at: usize, after: &str, name: &str, bits: u32) -> Res<u64> {
    let max = max_of(bits);
    match number(v) {
        Ok(n) if n <= max => Ok(n),
        Ok(_) | Err(NumErr::Overflow) => {
            let max = if v.starts_with("0x") || v.starts_with("0X") {
                format!("{max:#x}")
            } else {
                max.to_string()
            };
            bad(
                at,
                format!("{v} is too large for {name} ({bits} bits, at most {max})"),
            )
        }
        Err(NumErr::Syntax) => bad(
            at,
            format!(
                "expected a number (decimal or 0x hex) after {after}, found {}",
                found(v)
            ),
        ),
    }
}

/// `N` or `N/MASK`, both fitting in `bits`; the value is masked. Unmasked values get an
/// all-ones mask.
pub(super) fn uint_masked(v: &str, at: usize, key: &str, bits: u32) -> Res<(u64, u64)> {
    let after = format!("{key}=");
    match v.split_once('/') {
        None => Ok((uint(v, at, &after, key, bits)?, max_of(bits))),
        Some((a, m)) => {
            let value = uint(a, at, &after, key, bits)?;
            let mask_after = format!("{key}={a}/");
            let mask = uint(
                m,
                at + a.len() + 1,
                &mask_after,
                &format!("the {key} mask"),
                bits,
            )?;
            Ok((value & mask, mask))
        }
    }
}

/// A table number, 0-254.
pub(super) fn table(v: &str, at: usize, after: &str) -> Res<u8> {
    match number(v) {
        Ok(n) if n <= u64::from(crate::flow::MAX_TABLE) => Ok(n as u8),
        Ok(_) | Err(NumErr::Overflow) => {
            bad(at, format!("table {v} is out of range (tables are 0-254)"))
        }
        Err(NumErr::Syntax) => bad(
            at,
            format!(
                "expected a table number (0-254) after {after}, found {}",
                found(v)
            ),
        ),
    }
}

/// The mask of an IPv4 prefix length (at most 32).
pub(super) fn prefix_mask32(len: u32) -> u32 {
    u32::MAX.checked_shl(32 - len.min(32)).unwrap_or(0)
}

/// The mask of an IPv6 prefix length (at most 128).
pub(super) fn prefix_mask128(len: u32) -> u128 {
    u128::MAX.checked_shl(128 - len.min(128)).unwrap_or(0)
}

/// `/N` (a prefix length up to `max_len`) or a mask in address form.
fn prefix_or_mask<A: std::str::FromStr>(
    m: &str,
    at: usize,
    max_len: u32,
    to_mask: impl Fn(u32) -> A,
    kind: &str,
) -> Res<A> {
    if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(len) = m.parse::<u32>() {
            if len <= max_len {
                return Ok(to_mask(len));
            }
        }
    } else if let Ok(mask) = m.parse::<A>() {
        return Ok(mask);
    }
    bad(
        at,
        format!(
            "expected a prefix length (0-{max_len}) or an {kind} mask after '/', found {}",
            found(m)
        ),
    )
}

/// `IP`, `IP/PREFIX` or `IP/MASK`; the value is masked. `key` is the field for messages.
pub(super) fn ipv4_masked(v: &str, at: usize, key: &str) -> Res<(Ipv4Addr, Ipv4Addr)> {
    let (a, m) = match v.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (v, None),
    };
    let Ok(addr) = a.parse::<Ipv4Addr>() else {
        return bad(
            at,
            format!(
                "expected an IPv4 address or prefix after {key}=, found {}",
                found(v)
            ),
        );
    };
    let mask = match m {
        None => u32::MAX,
        Some(m) => {
            let at = at + a.len() + 1;
            u32::from(prefix_or_mask(
                m,
                at,
                32,
                |n| Ipv4Addr::from(prefix_mask32(n)),
                "IPv4",
            )?)
        }
    };
    Ok((Ipv4Addr::from(u32::from(addr) & mask), Ipv4Addr::from(mask)))
}

/// An exact IPv4 address after `after` (`set_field:`).
pub(super) fn ipv4(v: &str, at: usize, after: &str) -> Res<Ipv4Addr> {
    v.parse().or_else(|_| {
        bad(
            at,
            format!("expected an IPv4 address after {after}, found {}", found(v)),
        )
    })
}

/// `IPv6`, `IPv6/PREFIX` or `IPv6/MASK`; the value is masked.
pub(super) fn ipv6_masked(v: &str, at: usize, key: &str) -> Res<(Ipv6Addr, Ipv6Addr)> {
    let (a, m) = match v.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (v, None),
    };
    let Ok(addr) = a.parse::<Ipv6Addr>() else {
        return bad(
            at,
            format!(
                "expected an IPv6 address or prefix after {key}=, found {}",
                found(v)
            ),
        );
    };
    let mask = match m {
        None => u128::MAX,
        Some(m) => {
            let at = at + a.len() + 1;
            u128::from(prefix_or_mask(
                m,
                at,
                128,
                |n| Ipv6Addr::from(prefix_mask128(n)),
                "IPv6",
            )?)
        }
    };
    Ok((
        Ipv6Addr::from(u128::from(addr) & mask),
        Ipv6Addr::from(mask),
    ))
}

/// An exact MAC address after `after` (`mod_dl_src:`).
pub(super) fn mac(v: &str, at: usize, after: &str) -> Res<MacAddr> {
    v.parse().or_else(|_| {
        bad(
            at,
            format!(
                "expected a MAC address (like 0a:58:0a:01:01:02) after {after}, found {}",
                found(v)
            ),
        )
    })
}

/// `MAC` or `MAC/MASK`; the value is masked.
pub(super) fn mac_masked(v: &str, at: usize, key: &str) -> Res<(MacAddr, MacAddr)> {
    let Some((a, m)) = v.split_once('/') else {
        return Ok((mac(v, at, &format!("{key}="))?, MacAddr([0xff; 6])));
    };
    let value = mac(a, at, &format!("{key}="))?;
    let mask: MacAddr = m.parse().or_else(|_| {
        bad(
            at + a.len() + 1,
            format!(
                "expected a MAC mask (like ff:ff:ff:00:00:00) after '/', found {}",
                found(m)
            ),
        )
    })?;
    Ok((mac_and(value, mask), mask))
}

/// `value & mask`, byte by byte.
pub(super) fn mac_and(value: MacAddr, mask: MacAddr) -> MacAddr {
    let mut out = value.0;
    for (b, m) in out.iter_mut().zip(mask.0) {
        *b &= m;
    }
    MacAddr(out)
}

/// A MAC address as the low 48 bits of a number.
pub(super) fn mac_to_u64(mac: MacAddr) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&mac.0);
    u64::from_be_bytes(b)
}

/// The low 48 bits of a number as a MAC address.
pub(super) fn mac_from_u64(v: u64) -> MacAddr {
    let b = v.to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// OpenFlow's reserved ports, which vxswitch does not have.
const RESERVED_PORTS: &[&str] = &[
    "local",
    "in_port",
    "all",
    "any",
    "none",
    "controller",
    "normal",
    "flood",
    "table",
    "unset",
];

/// The longest port name (a Linux interface name: IFNAMSIZ - 1).
const MAX_PORT_NAME: usize = 15;

/// A port: a number (decimal or 0x hex), or a name that starts with a letter or a digit
/// (`vxlan0`, `n1p1`, `61p2`: what is not a number is a name, as in ovs-ofctl). `after` is the
/// text before it (`in_port=`, `output:`).
pub(super) fn port(v: &str, at: usize, after: &str) -> Res<PortRef> {
    let expected = || {
        bad(
            at,
            format!(
                "expected a port number or name after {after}, found {}",
                found(v)
            ),
        )
    };
    let too_large = || {
        bad(
            at,
            format!(
                "port number {v} is too large (ports are 1-{}; OpenFlow reserves the rest)",
                crate::flow::MAX_PORT
            ),
        )
    };
    match v.chars().next() {
        Some(c) if c.is_ascii_digit() => match number(v) {
            Ok(0) => bad(
                at,
                format!("port 0 is no port (ports are 1-{})", crate::flow::MAX_PORT),
            ),
            Ok(n) if n <= u64::from(crate::flow::MAX_PORT) => Ok(PortRef::Number(n as u16)),
            Ok(_) | Err(NumErr::Overflow) => too_large(),
            Err(NumErr::Syntax) => port_name(v, at, after),
        },
        Some(c) if c.is_ascii_alphabetic() => port_name(v, at, after),
        _ => expected(),
    }
}

/// A port name: an OpenFlow reserved name is refused with a hint; otherwise letters, digits,
/// '_', '-' and '.', at most an interface name long.
fn port_name(v: &str, at: usize, after: &str) -> Res<PortRef> {
    let lower = v.to_ascii_lowercase();
    if RESERVED_PORTS.contains(&lower.as_str()) {
        let hint = if after.starts_with("output") && (lower == "normal" || lower == "flood") {
            format!("; use the {lower} action")
        } else {
            "; name a port by number or by name".to_string()
        };
        return bad(
            at,
            format!("{v} is an OpenFlow reserved port, which vxswitch does not support{hint}"),
        );
    }
    let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if v.len() > MAX_PORT_NAME || !v.chars().all(name_ok) {
        return bad(
            at,
            format!(
                "expected a port number or name (letters, digits, '_', '-', '.', at most \
                 {MAX_PORT_NAME} characters) after {after}, found {}",
                found(v)
            ),
        );
    }
    Ok(PortRef::Name(v.to_string()))
}

/// The candidate closest to `word` (ignoring case) by edit distance, when it is close: one
/// edit for words of up to 4 characters, two for longer ones.
pub(super) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let w: Vec<char> = word.to_ascii_lowercase().chars().collect();
    if w.is_empty() || w.len() > 40 {
        return None;
    }
    let limit = if w.len() <= 4 { 1 } else { 2 };
    candidates
        .into_iter()
        .filter(|c| c.chars().count().abs_diff(w.len()) <= limit)
        .map(|c| {
            let cl: Vec<char> = c.to_ascii_lowercase().chars().collect();
            (distance(&w, &cl), c)
        })
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// " (did you mean X?)" when a candidate is close, else "".
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    suggest(word, candidates).map_or_else(String::new, |s| format!(" (did you mean {s}?)"))
}

/// Edit distance with adjacent transpositions counting as one edit (optimal string
/// alignment), so "tpc" is one edit from "tcp".
fn distance(a: &[char], b: &[char]) -> usize {
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = best;
        }
    }
    d[a.len() * w + b.len()]
}
