//! `subnet.env`, flannel's hand-off to the CNI plugin and the container runtime:
//!
//! ```text
//! FLANNEL_NETWORK=10.1.0.0/16
//! FLANNEL_SUBNET=10.1.2.1/24
//! FLANNEL_MTU=1450
//! FLANNEL_IPMASQ=false
//! ```
//!
//! (plus FLANNEL_IPV6_NETWORK / FLANNEL_IPV6_SUBNET with IPv6). FLANNEL_SUBNET is the node's
//! gateway with the subnet's length, as flannel writes it. The file is replaced atomically
//! (written next to it, then renamed), so a reader never sees half of it.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::proto::{Ipv4Cidr, Ipv6Cidr};

/// What goes into subnet.env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetEnv {
    pub network: Ipv4Cidr,
    pub subnet: Ipv4Cidr,
    pub ipv6: Option<(Ipv6Cidr, Ipv6Cidr)>,
    pub mtu: u16,
    pub ipmasq: bool,
}

impl SubnetEnv {
    pub fn render(&self) -> String {
        let gw = self.subnet.nth(1);
        let mut s = format!(
            "FLANNEL_NETWORK={}\nFLANNEL_SUBNET={gw}/{}\n",
            self.network,
            self.subnet.prefix()
        );
        if let Some((net6, sub6)) = &self.ipv6 {
            s.push_str(&format!(
                "FLANNEL_IPV6_NETWORK={net6}\nFLANNEL_IPV6_SUBNET={}/{}\n",
                sub6.nth(1),
                sub6.prefix()
            ));
        }
        s.push_str(&format!(
            "FLANNEL_MTU={}\nFLANNEL_IPMASQ={}\n",
            self.mtu, self.ipmasq
        ));
        s
    }
}

/// Writes `text` to `path` atomically (a temporary file in the same directory, renamed over
/// it), creating the directory when missing.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "subnet.env".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The subnet a previous run held, read from a subnet.env (`FLANNEL_SUBNET=10.1.2.1/24` gives
/// 10.1.2.0/24) or from a lease file holding just `10.1.2.0/24`; None when absent or unreadable.
pub fn previous_subnet(path: &Path) -> Option<(Ipv4Cidr, Option<Ipv6Cidr>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut v4 = None;
    let mut v6 = None;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("FLANNEL_SUBNET=") {
            v4 = host_cidr4(v);
        } else if let Some(v) = line.strip_prefix("FLANNEL_IPV6_SUBNET=") {
            v6 = host_cidr6(v);
        } else if !line.contains('=') && v4.is_none() {
            v4 = host_cidr4(line);
        }
    }
    v4.map(|s| (s, v6))
}

fn host_cidr4(s: &str) -> Option<Ipv4Cidr> {
    let (a, p) = s.trim().split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let mask = if p == 0 {
        0
    } else {
        u32::MAX.checked_shl(32 - u32::from(p))?
    };
    Ipv4Cidr::new(Ipv4Addr::from(u32::from(a) & mask), p).ok()
}

fn host_cidr6(s: &str) -> Option<Ipv6Cidr> {
    let (a, p) = s.trim().split_once('/')?;
    let a: Ipv6Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let mask = if p == 0 {
        0
    } else {
        u128::MAX.checked_shl(128 - u32::from(p))?
    };
    Ipv6Cidr::new(Ipv6Addr::from(u128::from(a) & mask), p).ok()
}
