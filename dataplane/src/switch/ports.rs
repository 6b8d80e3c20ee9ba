//! Ports and the local node: TAPs created in pod namespaces, attached to the workers, restored after a restart; the underlay and masquerade.

use super::*;

impl Switch {
    pub(super) fn tap_options(&self) -> TapOptions {
        TapOptions {
            vnet_hdr: self.cfg.offload,
        }
    }

    /// Loads the state file, if any, and brings its configuration back.
    pub fn restore(&mut self) -> Result<(), String> {
        let Some(path) = self.cfg.state_file.clone() else {
            return Ok(());
        };
        let jpath = publish::journal_path(&path);
        let journal = match std::fs::read(&jpath) {
            Ok(bytes) => bytes,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    eprintln!("vxswitchd: cannot read {}: {e}", jpath.display());
                }
                Vec::new()
            }
        };
        let read = match std::fs::read(&path) {
            Ok(bytes) => parse_state(&bytes),
            // A journal without its state file: the changes since an empty configuration.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !journal.is_empty() => {
                Ok(Config::default())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => Err(format!("cannot read it: {e}")),
        };
        let read = read.map(|snapshot| {
            if journal.is_empty() {
                return snapshot;
            }
            let mut c = snapshot.clone();
            let what = format!("journal {}", jpath.display());
            let n = publish::replay(&journal, &mut c, &what);
            match validate(&c) {
                Ok(()) => {
                    if n > 0 {
                        eprintln!("vxswitchd: replayed {n} changes from the {what}");
                    }
                    c
                }
                Err(why) => {
                    eprintln!(
                        "vxswitchd: the {what} leads to a configuration that does not hold \
                         ({why}); starting from the state file alone"
                    );
                    snapshot
                }
            }
        });
        let saved = match read {
            Ok(c) => c,
            Err(why) => {
                if jpath.exists() {
                    let _ = set_aside(&jpath);
                }
                // A bad state file never keeps the switch down: it is kept aside for a look,
                // and the switch starts empty until the agent pushes.
                let aside = set_aside(&path);
                eprintln!(
                    "vxswitchd: state file {} is not usable ({why}); {}; starting with no \
                     configuration until the agent pushes",
                    path.display(),
                    match &aside {
                        Ok(a) => format!("kept as {}", a.display()),
                        Err(e) => format!("could not move it aside: {e}"),
                    }
                );
                return Ok(());
            }
        };
        if let Some(local) = &saved.local {
            self.ensure_local(&local.spec)?;
        }
        for p in saved.ports.values() {
            let attached = match &saved.local {
                Some(l) => self.attach_port(&l.spec, p),
                None => Err("no local node in the state file".into()),
            };
            match attached {
                Ok((rt, queues)) => {
                    self.give_queues(p.no, queues);
                    self.runtime.insert(p.no, rt);
                }
                Err(e) => {
                    eprintln!("vxswitchd: port {} ({}) stays down: {e}", p.spec.name, p.no);
                    self.down.insert(p.no, e);
                }
            }
        }
        self.sync_host_routes6(&saved)?;
        self.config = saved;
        self.node_index = config::NodeIndex::build(&self.config);
        self.nodes_synced = false;
        self.publish();
        // The state file written whole with what the journal added; the journal starts again.
        self.compact();
        eprintln!(
            "vxswitchd: restored {} ports and {} nodes from {}",
            self.config.ports.len(),
            self.config.nodes.len(),
            path.display()
        );
        Ok(())
    }

    /// Binds the underlay and creates the host port, once; a later identical call is a no-op.
    pub(super) fn ensure_local(&mut self, l: &LocalNode) -> Result<(), String> {
        if self.underlay == Some(l.vtep) {
            return Ok(());
        }
        if self.underlay.is_some() {
            return Err(
                "the VTEP address of a running switch cannot change; restart vxswitchd".into(),
            );
        }
        udp::check_port_free(l.vtep, self.cfg.vxlan_port)?;
        let mut socks = Vec::new();
        for _ in &self.workers {
            socks.push(
                udp::bind_underlay(l.vtep, self.cfg.vxlan_port).map_err(|e| {
                    format!("cannot bind UDP {}:{}: {e}", l.vtep, self.cfg.vxlan_port)
                })?,
            );
        }
        if self.cfg.udp_zero_csum && l.vtep.is_ipv4() {
            // Replies from the receive sockets are never sent; the source-port sockets carry
            // the setting. Nothing to do here.
        }
        // The host port: vxhost0 in the node's own namespace, holding the gateway address.
        let gw = l.gateway();
        let n = self.workers.len();
        let opts = self.tap_options();
        let (hmac, mtu, subnet, cluster) = (host_mac(gw), l.pod_mtu(), l.subnet, l.cluster_network);
        let masquerade = self.cfg.masquerade;
        // A dual-stack node: vxhost0 holds the IPv6 gateway address too.
        let gw6 = l
            .subnet6
            .zip(l.gateway6())
            .map(|(s6, gw6)| format!("{gw6}/{}", s6.prefix()));
        let tap = self
            .netns
            .run(None, move || {
                let tap = Tap::open(HOST_PORT_NAME, n, opts)?;
                tap.control.set_persist(true)?;
                let ipv6_conf = format!("/proc/sys/net/ipv6/conf/{HOST_PORT_NAME}/disable_ipv6");
                match &gw6 {
                    Some(_) => std::fs::write(&ipv6_conf, "0")?,
                    None => {
                        let _ = std::fs::write(&ipv6_conf, "1");
                    }
                }
                let mac = hmac.to_string();
                let mtu = mtu.to_string();
                run_cmd(
                    "ip",
                    &[
                        "link",
                        "set",
                        "dev",
                        HOST_PORT_NAME,
                        "address",
                        &mac,
                        "mtu",
                        &mtu,
                        "up",
                    ],
                )?;
                let addr = format!("{gw}/{}", subnet.prefix());
                run_cmd("ip", &["addr", "replace", &addr, "dev", HOST_PORT_NAME])?;
                if let Some(addr6) = &gw6 {
                    // No duplicate address detection: the switch owns the prefix.
                    run_cmd(
                        "ip",
                        &[
                            "-6",
                            "addr",
                            "replace",
                            addr6,
                            "dev",
                            HOST_PORT_NAME,
                            "nodad",
                        ],
                    )?;
                }
                run_cmd(
                    "ip",
                    &[
                        "route",
                        "replace",
                        &cluster.to_string(),
                        "dev",
                        HOST_PORT_NAME,
                    ],
                )?;
                if masquerade {
                    install_masquerade(cluster)?;
                }
                Ok(tap)
            })
            .map_err(|e| format!("cannot set up {HOST_PORT_NAME}: {e}"))?;
        for (w, (sock, q)) in self.workers.iter().zip(socks.into_iter().zip(tap.queues)) {
            w.send(Control::Underlay {
                vtep: l.vtep,
                socket: sock,
            });
            w.send(Control::AddPort {
                no: PORT_HOST,
                queue: q,
            });
        }
        self.runtime.insert(
            PORT_HOST,
            PortRuntime {
                device: HOST_PORT_NAME.into(),
                netns: None,
                control: Some(tap.control),
            },
        );
        self.attach_tunnel(l.vtep);
        self.underlay = Some(l.vtep);
        eprintln!(
            "vxswitchd: underlay on {}:{} ({} workers), {HOST_PORT_NAME} holds {gw}",
            l.vtep,
            self.cfg.vxlan_port,
            self.workers.len()
        );
        Ok(())
    }

    /// Routes every remote node's IPv6 prefix on-link through vxhost0 when this node has one
    /// (IPv4 has one cluster route; IPv6 has no cluster prefix, so one route per node), the
    /// way the node reaches remote pods: the switch answers their neighbour solicitations
    /// with the gateway MAC and routes them. Routes of removed nodes are deleted.
    pub(super) fn sync_host_routes6(&mut self, c: &Config) -> Result<(), String> {
        let want: BTreeSet<Ipv6Cidr> = match &c.local {
            Some(l) if l.spec.subnet6.is_some() => {
                c.nodes.values().filter_map(|n| n.spec.subnet6).collect()
            }
            _ => BTreeSet::new(),
        };
        let add = want.difference(&self.host_routes6).copied().collect();
        let del = self.host_routes6.difference(&want).copied().collect();
        self.apply_host_routes6(&(add, del))
    }

    /// The on-link IPv6 routes a staged batch adds and removes (only the nodes it changed).
    pub(super) fn host_routes6_delta(
        &self,
        delta: &config::Delta,
    ) -> (Vec<Ipv6Cidr>, Vec<Ipv6Cidr>) {
        let on = self
            .config
            .local
            .as_ref()
            .is_some_and(|l| l.spec.subnet6.is_some());
        if delta.local.is_some() {
            let want: BTreeSet<Ipv6Cidr> = if on {
                self.config
                    .nodes
                    .values()
                    .filter_map(|n| n.spec.subnet6)
                    .collect()
            } else {
                BTreeSet::new()
            };
            let add = want.difference(&self.host_routes6).copied().collect();
            let del = self.host_routes6.difference(&want).copied().collect();
            return (add, del);
        }
        let now: BTreeSet<Ipv6Cidr> = delta
            .nodes
            .keys()
            .filter_map(|name| self.config.nodes.get(name)?.spec.subnet6)
            .filter(|_| on)
            .collect();
        let was = delta
            .nodes
            .values()
            .flatten()
            .filter_map(|n| n.spec.subnet6);
        let add = now
            .iter()
            .filter(|c| !self.host_routes6.contains(c))
            .copied()
            .collect();
        let del = was
            .filter(|c| !now.contains(c) && self.host_routes6.contains(c))
            .collect();
        (add, del)
    }

    /// Adds and removes IPv6 prefixes routed on-link through vxhost0.
    pub(super) fn apply_host_routes6(
        &mut self,
        (add, del): &(Vec<Ipv6Cidr>, Vec<Ipv6Cidr>),
    ) -> Result<(), String> {
        if add.is_empty() && del.is_empty() {
            return Ok(());
        }
        let add_s: Vec<String> = add.iter().map(|p| p.to_string()).collect();
        let del_s: Vec<String> = del.iter().map(|p| p.to_string()).collect();
        self.netns
            .run(None, move || {
                for p in &del_s {
                    // Gone already (vxhost0 recreated, removed by hand): nothing to undo.
                    let _ = run_cmd("ip", &["-6", "route", "del", p, "dev", HOST_PORT_NAME]);
                }
                for p in &add_s {
                    run_cmd("ip", &["-6", "route", "replace", p, "dev", HOST_PORT_NAME])?;
                }
                Ok(())
            })
            .map_err(|e| format!("cannot route IPv6 prefixes through {HOST_PORT_NAME}: {e}"))?;
        for p in del {
            self.host_routes6.remove(p);
        }
        self.host_routes6.extend(add.iter().copied());
        Ok(())
    }

    /// Creates (or re-attaches) a pod's TAP and hands its queues to the workers.
    pub(super) fn attach_port(
        &self,
        local: &LocalNode,
        p: &PortCfg,
    ) -> Result<(PortRuntime, Vec<TapQueue>), String> {
        let ns = netns_path(&p.spec.netns);
        let ifname = p.spec.ifname().to_string();
        let n = self.workers.len();
        let opts = self.tap_options();
        let ifn = ifname.clone();
        let exists = self
            .netns
            .run(Some(&ns), move || Ok(if_index(&ifn).is_some()))
            .map_err(|e| e.to_string())?;
        let tap = if exists {
            // A restarted switch finds the pod's persistent TAP and attaches to it again.
            let ifn = ifname.clone();
            self.netns
                .run(Some(&ns), move || {
                    Tap::open(&ifn, n, opts).map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("{ifn} exists in the pod and is not a vxswitch TAP ({e})"),
                        )
                    })
                })
                .map_err(|e| e.to_string())?
        } else {
            let tmp = format!("vxt{}", p.no);
            let nsd = ns.display().to_string();
            let ifn = ifname.clone();
            self.netns
                .run(None, move || {
                    let tap = Tap::open(&tmp, n, opts)?;
                    tap.control.set_persist(true)?;
                    if let Err(e) = run_cmd(
                        "ip",
                        &["link", "set", "dev", &tmp, "netns", &nsd, "name", &ifn],
                    ) {
                        let _ = tap.control.set_persist(false);
                        return Err(e);
                    }
                    Ok(tap)
                })
                .map_err(|e| e.to_string())?
        };
        tap.control.set_persist(true).map_err(|e| e.to_string())?;
        // Address the pod: MAC, MTU, address, default route via the gateway.
        let mac = p.spec.mac.to_string();
        let mtu = p.spec.mtu.unwrap_or(local.pod_mtu()).to_string();
        let addr = format!("{}/{}", p.spec.ip, local.subnet.prefix());
        let gw = local.gateway().to_string();
        let ifn = ifname.clone();
        let v6 = pod_ipv6(local, &p.spec);
        let gso = self
            .cfg
            .pod_gso_max
            .limits(p.spec.mtu.unwrap_or(local.pod_mtu()) as u32);
        let configured = self.netns.run(Some(&ns), move || {
            // New and re-attached TAPs alike get the GSO limits of this start's flag, in the
            // same command (a restart re-attaches every port: one process each, not two).
            let (size, segs) = (gso.0.to_string(), gso.1.to_string());
            let link = [
                "link", "set", "dev", &ifn, "address", &mac, "mtu", &mtu, "up",
            ];
            let gso_args = ["gso_max_size", &size, "gso_max_segs", &segs];
            let with_gso: Vec<&str> = link.iter().chain(&gso_args).copied().collect();
            if let Err(e) = run_cmd("ip", &with_gso) {
                // An older kernel or iproute2: the pod works, its super-frames may take two
                // sends.
                run_cmd("ip", &link)?;
                eprintln!("vxswitchd: {ifn}: cannot set its GSO limits: {e}");
            }
            run_cmd("ip", &["addr", "replace", &addr, "dev", &ifn])?;
            run_cmd(
                "ip",
                &["route", "replace", "default", "via", &gw, "dev", &ifn],
            )?;
            if let Some((addr6, gw6)) = &v6 {
                configure_ipv6(&ifn, addr6, gw6)?;
            }
            Ok(())
        });
        if let Err(e) = configured {
            if !exists {
                let _ = tap.control.set_persist(false);
            }
            return Err(e.to_string());
        }
        if let Some(q) = tap.queues.first() {
            self.announce_gateway(local, &p.spec, q);
        }
        Ok((
            PortRuntime {
                device: ifname,
                netns: Some(ns),
                control: Some(tap.control),
            },
            tap.queues,
        ))
    }

    /// Writes the gateway's announcement (see [`announce`](super::announce)) into a pod's
    /// TAP, right after the port is attached and its link is up, so a pod whose neighbour
    /// entry for the gateway went with the carrier has it again at once. A write that fails is
    /// logged; the pod then resolves the gateway itself.
    fn announce_gateway(&self, local: &LocalNode, spec: &PortSpec, q: &TapQueue) {
        let gw = local.gateway();
        let frames = super::announce::gateway_frames(
            gw,
            gateway_mac(gw),
            local.gateway6(),
            eth(spec.mac),
            spec.ip,
            pod_ipv6(local, spec).and(spec.ip6),
        );
        let vnet = [0u8; crate::wire::vnet::HEADER_LEN];
        let mut written = 0;
        for f in &frames {
            let r = if self.cfg.offload {
                q.writev(&[io::IoSlice::new(&vnet), io::IoSlice::new(f)])
            } else {
                q.write(f)
            };
            match r {
                Ok(_) => written += 1,
                Err(e) => {
                    eprintln!(
                        "vxswitchd: port {}: cannot announce the gateway: {e}",
                        spec.name
                    );
                    break;
                }
            }
        }
        if let Some(w) = self.workers.first() {
            w.counters.event_n(Event::GatewayAnnounced, written);
        }
    }

    /// Hands one queue to each worker.
    pub(super) fn give_queues(&self, no: PortNo, queues: Vec<TapQueue>) {
        for (w, q) in self.workers.iter().zip(queues) {
            w.send(Control::AddPort { no, queue: q });
        }
    }

    /// Removes a port's TAP (unless another port now uses the same device).
    pub(super) fn destroy(&mut self, mut rt: PortRuntime, keep_device: bool) {
        if let Some(control) = rt.control.take() {
            if !keep_device {
                let _ = control.set_persist(false);
            }
            // Closing the last queue removes a non-persistent device.
            drop(control);
        }
        let _ = rt.netns;
    }
}

/// How large a super-frame a pod's TAP may hand the switch (`vxswitchd --pod-gso-max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodGsoMax {
    /// The largest size whose segments, encapsulated, fit one UDP GSO send (see
    /// [`PodGsoMax::limits`]).
    Auto,
    /// The kernel's defaults (64 KiB, no segment limit): a 64 KB super-frame of a 1,450-byte
    /// MTU pod takes two sends.
    Off,
    /// This `gso_max_size`, no segment limit.
    Bytes(u32),
}

/// The kernel's default `gso_max_size` (GSO_LEGACY_MAX_SIZE) and `gso_max_segs` (GSO_MAX_SEGS).
const KERNEL_GSO_MAX_SIZE: u32 = 65_536;
const KERNEL_GSO_MAX_SEGS: u32 = 65_535;
/// Most UDP payload one GSO send carries (64 KiB minus the IPv4 and UDP headers) and most
/// segments (the kernel's UDP_MAX_SEGMENTS), as the worker's segmenting send uses them.
const UDP_GSO_PAYLOAD: u32 = 65_507;
const UDP_GSO_SEGMENTS: u32 = 64;
/// VXLAN header + inner Ethernet header in front of each segment's IP packet.
const ENCAP_OVERHEAD: u32 = 8 + 14;
/// IPv6 + TCP headers without options: the larger of the two inner header sizes, so the
/// smaller limit, which holds for IPv4 and IPv6 pods alike.
const INNER_HEADERS: u32 = 40 + 20;

impl PodGsoMax {
    /// Parses `auto`, `off` or a size in bytes (1,024-65,536).
    pub fn parse(s: &str) -> Result<PodGsoMax, String> {
        match s {
            "auto" => Ok(PodGsoMax::Auto),
            "off" => Ok(PodGsoMax::Off),
            n => match n.parse::<u32>() {
                Ok(b) if (1024..=KERNEL_GSO_MAX_SIZE).contains(&b) => Ok(PodGsoMax::Bytes(b)),
                _ => Err(format!(
                    "`{n}`: expected auto, off or a size in bytes from 1024 to 65536"
                )),
            },
        }
    }

    /// The TAP's `gso_max_size` and `gso_max_segs` for a port of this MTU.
    ///
    /// `auto`: each segment of a super-frame leaves as one UDP datagram of
    /// VXLAN (8) + inner Ethernet (14) + at most MTU bytes, and one GSO send carries at most
    /// 65,507 bytes and 64 datagrams, so
    ///
    /// ```text
    /// segments       = min(floor(65507 / (8 + 14 + MTU)), 64)
    /// gso_max_size   = segments × (MTU − 60) + 60        (60: IPv6 + TCP headers)
    /// gso_max_segs   = segments
    /// ```
    ///
    /// The pod's TCP sizes a super-frame as whole MSS-sized segments within `gso_max_size`;
    /// `gso_max_segs` caps their number exactly whatever the MSS (TCP options, IPv4 or IPv6).
    /// A 1,450-byte MTU gives 44 segments and 61,220 bytes: one send per super-frame.
    pub fn limits(self, mtu: u32) -> (u32, u32) {
        match self {
            PodGsoMax::Off => (KERNEL_GSO_MAX_SIZE, KERNEL_GSO_MAX_SEGS),
            PodGsoMax::Bytes(b) => (b, KERNEL_GSO_MAX_SEGS),
            PodGsoMax::Auto => {
                let segments =
                    (UDP_GSO_PAYLOAD / (ENCAP_OVERHEAD + mtu)).clamp(1, UDP_GSO_SEGMENTS);
                let size = segments * mtu.saturating_sub(INNER_HEADERS) + INNER_HEADERS;
                (size.min(KERNEL_GSO_MAX_SIZE), segments)
            }
        }
    }
}

/// A dual-stack pod's IPv6 address (with the node prefix's length) and gateway, as text.
fn pod_ipv6(local: &LocalNode, spec: &PortSpec) -> Option<(String, String)> {
    let (ip6, s6, gw6) = (spec.ip6?, local.subnet6?, local.gateway6()?);
    Some((format!("{ip6}/{}", s6.prefix()), gw6.to_string()))
}

/// Gives the interface (in the current namespace) IPv6, a static address without duplicate
/// address detection (the switch owns the prefix and checks addresses for duplicates), and a
/// default route via the gateway, which the switch answers neighbour solicitations for.
fn configure_ipv6(ifname: &str, addr6: &str, gw6: &str) -> io::Result<()> {
    std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "0",
    )?;
    run_cmd(
        "ip",
        &["-6", "addr", "replace", addr6, "dev", ifname, "nodad"],
    )?;
    run_cmd(
        "ip",
        &[
            "-6", "route", "replace", "default", "via", gw6, "dev", ifname,
        ],
    )?;
    Ok(())
}

/// Pod traffic leaving the cluster through the node's stack gets the node's address, as
/// OpenShift-SDN's masquerade rule did: table `ip vxswitch`, replaced whole on every start.
fn install_masquerade(cluster: Ipv4Cidr) -> io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
    let _ = run_cmd("nft", &["delete", "table", "ip", "vxswitch"]);
    run_cmd("nft", &["add", "table", "ip", "vxswitch"])?;
    run_cmd(
        "nft",
        &["add chain ip vxswitch postrouting { type nat hook postrouting priority 100 ; }"],
    )?;
    let rule = format!(
        "add rule ip vxswitch postrouting ip saddr {cluster} ip daddr != {cluster} oifname != \"{HOST_PORT_NAME}\" masquerade"
    );
    run_cmd("nft", &[&rule])
}

/// Renames a bad state file to `FILE.corrupt-UNIXSECONDS` (never over an earlier one).
fn set_aside(path: &std::path::Path) -> io::Result<std::path::PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{secs}"));
    let mut aside = std::path::PathBuf::from(name);
    let mut n = 1;
    while aside.exists() {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".corrupt-{secs}-{n}"));
        aside = std::path::PathBuf::from(name);
        n += 1;
    }
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

impl Switch {
    /// TCP super-frames through the underlay's TAP with UDP-tunnel GSO (`--underlay-gso`),
    /// set up after the UDP sockets, which stay for everything else and as the fallback: a
    /// failed probe or setup is logged once and counted by every worker (`tnl_unavailable`).
    pub(super) fn attach_tunnel(&self, vtep: IpAddr) {
        use crate::io::tnl::{self, Mode};
        let mode = tnl::mode();
        if mode == Mode::Udp {
            tnl::clear_stale(vtep);
            return;
        }
        let r = if !self.cfg.offload {
            Err(tnl::Unavailable("offloads are off (--offload off)".into()))
        } else {
            tnl::setup(
                vtep,
                self.cfg.vxlan_port,
                self.workers.len(),
                !self.cfg.udp_zero_csum,
            )
        };
        match r {
            Ok(ports) => {
                for (w, p) in self.workers.iter().zip(ports) {
                    w.send(Control::Tunnel { port: Some(p) });
                }
            }
            Err(e) => {
                tnl::clear_stale(vtep);
                eprintln!("vxswitchd: super-frames take the UDP sockets ({mode:?} asked): {e}");
                for w in &self.workers {
                    w.send(Control::Tunnel { port: None });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PodGsoMax;

    #[test]
    fn pod_gso_limits_fit_one_udp_gso_send() {
        assert_eq!(PodGsoMax::Auto.limits(1450), (61_220, 44));
        assert_eq!(PodGsoMax::Auto.limits(1500), (61_980, 43));
        assert_eq!(PodGsoMax::Auto.limits(9000), (62_640, 7));
        // Small MTUs hit the 64-segment limit first.
        assert_eq!(PodGsoMax::Auto.limits(576), (64 * 516 + 60, 64));
        for mtu in [576u32, 1280, 1400, 1450, 1500, 4000, 9000, 65_000] {
            let (size, segs) = PodGsoMax::Auto.limits(mtu);
            assert!(size <= 65_536);
            // Encapsulated, the segments of the largest super-frame fit one send.
            assert!(segs * (8 + 14 + mtu) <= 65_507 || segs == 1, "{mtu}");
            assert!(segs <= 64);
        }
        assert_eq!(PodGsoMax::Off.limits(1450), (65_536, 65_535));
        assert_eq!(PodGsoMax::Bytes(60_000).limits(1450), (60_000, 65_535));
    }

    #[test]
    fn pod_gso_max_parses() {
        assert_eq!(PodGsoMax::parse("auto"), Ok(PodGsoMax::Auto));
        assert_eq!(PodGsoMax::parse("off"), Ok(PodGsoMax::Off));
        assert_eq!(PodGsoMax::parse("60000"), Ok(PodGsoMax::Bytes(60_000)));
        assert!(PodGsoMax::parse("70000").is_err());
        assert!(PodGsoMax::parse("12").is_err());
        assert!(PodGsoMax::parse("x").is_err());
    }
}
