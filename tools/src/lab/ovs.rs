//! Nodes of kind `ovs`: Open vSwitch's userspace datapath (`datapath_type=netdev`) set up as
//! OVS's userspace-tunneling guide does, one ovsdb-server + ovs-vswitchd per node namespace.
//!
//! - `br-phy` holds the underlay `eth0` (an AF_PACKET port); the VTEP address moves from `eth0`
//!   to br-phy's internal port, whose MAC is eth0's (`other_config:hwaddr`).
//! - `br-int` holds the pods' veths (MTU 1450, TX checksum offload off at both ends: an
//!   AF_PACKET port must not be handed partial-checksum or TSO frames) and one vxlan port per
//!   peer (`options:remote_ip`, `options:key=1` — the VNI, OVS's default is 0 — and
//!   `options:dst_port` = the lab's port). The tunnel's route and the peer's MAC are set with
//!   `ovs/route/add` and `tnl/arp/set`, so nothing is learnt at run time.
//! - L3 in br-int with OpenFlow, as a CNI plugin does: the pods see a virtual gateway (br-int's
//!   MAC, a permanent neighbour in each pod); a remote subnet goes out its node's vxlan port, a
//!   local pod gets its MACs rewritten; everything else is NORMAL.
//!
//! The daemons' files live in `/run/vxlab/LAB/n{i}/ovs/`, and every path is given explicitly
//! (`OVS_RUNDIR`, `OVS_DBDIR`, `OVS_LOGDIR`, `OVS_SYSCONFDIR`, `--pidfile`, `--unixctl`,
//! `--log-file`, `--remote=punix:`), so the per-node instances never meet each other or a
//! system-wide Open vSwitch. Teardown stops them by the PIDs in their pidfiles.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{sh, topo, Lab, LabError, NodeInfo};
use sh::Batch;

pub const VSWITCHD: &str = "ovs-vswitchd";
pub const OVSDB: &str = "ovsdb-server";
/// Every Open vSwitch program a lab runs.
const PROGRAMS: [&str; 6] = [
    VSWITCHD,
    OVSDB,
    "ovsdb-tool",
    "ovs-vsctl",
    "ovs-appctl",
    "ovs-ofctl",
];
/// Where distributions keep the database schema.
const SCHEMAS: [&str; 2] = [
    "/usr/share/openvswitch/vswitch.ovsschema",
    "/usr/local/share/openvswitch/vswitch.ovsschema",
];
/// How long ovs-vsctl waits for the database and ovs-vswitchd, and ovs-appctl for an answer.
const CTL_TIMEOUT_SECS: u32 = 20;

pub const BR_INT: &str = "br-int";
pub const BR_PHY: &str = "br-phy";
/// The OpenFlow port of the vxlan port towards node k is `TUNNEL_OFPORT_BASE + k`; pod j of a
/// node is port j.
const TUNNEL_OFPORT_BASE: usize = 1000;

/// Checks that Open vSwitch is installed: every program on PATH and the schema in place.
pub fn check_installed() -> Result<(), LabError> {
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for program in PROGRAMS {
        if !path.iter().any(|d| is_executable(&d.join(program))) {
            return Err(LabError::OvsMissing(format!("{program} is not on PATH")));
        }
    }
    schema().map(drop)
}

fn schema() -> Result<&'static str, LabError> {
    SCHEMAS
        .into_iter()
        .find(|s| Path::new(s).is_file())
        .ok_or_else(|| {
            LabError::OvsMissing(format!("the schema is in none of {}", SCHEMAS.join(", ")))
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `/run/vxlab/LAB/n{i}/ovs/`: database, sockets, pidfiles and logs of a node's OVS.
pub fn ovs_dir(node_dir: &Path) -> PathBuf {
    node_dir.join("ovs")
}

/// The pidfile of `program` (ovs-vswitchd or ovsdb-server) of a node.
pub fn pidfile(node_dir: &Path, program: &str) -> PathBuf {
    ovs_dir(node_dir).join(format!("{program}.pid"))
}

/// The log file of `program` of a node.
pub fn log_file(node_dir: &Path, program: &str) -> PathBuf {
    ovs_dir(node_dir).join(format!("{program}.log"))
}

/// The control socket of `program` of a node (`ovs-appctl -t` wants this absolute path).
pub fn ctl_socket(node_dir: &Path, program: &str) -> PathBuf {
    ovs_dir(node_dir).join(format!("{program}.ctl"))
}

/// The database socket of a node.
pub fn db_socket(node_dir: &Path) -> PathBuf {
    ovs_dir(node_dir).join("db.sock")
}

/// The OpenFlow management socket of br-int of a node.
pub fn br_int_mgmt(node_dir: &Path) -> PathBuf {
    ovs_dir(node_dir).join(format!("{BR_INT}.mgmt"))
}

/// The PID in a pidfile, if the file holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A command with the node's OVS directories in its environment.
fn ovs_command(node: &NodeInfo, netns: bool, program: &str) -> Command {
    let dir = ovs_dir(&node.dir);
    let mut cmd = if netns {
        sh::netns_exec(&node.netns, program)
    } else {
        Command::new(program)
    };
    cmd.env("OVS_RUNDIR", &dir)
        .env("OVS_DBDIR", &dir)
        .env("OVS_LOGDIR", &dir)
        .env("OVS_SYSCONFDIR", dir.join("etc"));
    cmd
}

fn vsctl(node: &NodeInfo, args: &[String]) -> Result<String, LabError> {
    let mut cmd = ovs_command(node, false, "ovs-vsctl");
    cmd.arg(format!("--db=unix:{}", db_socket(&node.dir).display()))
        .arg(format!("--timeout={CTL_TIMEOUT_SECS}"))
        .args(args);
    sh::run(&mut cmd)
}

fn appctl(node: &NodeInfo, args: &[&str]) -> Result<String, LabError> {
    let mut cmd = ovs_command(node, false, "ovs-appctl");
    cmd.arg(format!("--timeout={CTL_TIMEOUT_SECS}"))
        .arg("-t")
        .arg(ctl_socket(&node.dir, VSWITCHD))
        .args(args);
    sh::run(&mut cmd)
}

/// Starts a daemon inside the node namespace with every path explicit; `--detach` returns once
/// it is ready (or has failed), and the daemon has closed our pipes by then.
fn start_daemon(node: &NodeInfo, program: &str, first: &str) -> Result<(), LabError> {
    let d = &node.dir;
    let mut cmd = ovs_command(node, true, program);
    cmd.arg(first);
    if program == OVSDB {
        cmd.arg(format!("--remote=punix:{}", db_socket(d).display()));
    }
    cmd.arg(format!("--pidfile={}", pidfile(d, program).display()))
        .arg(format!("--unixctl={}", ctl_socket(d, program).display()))
        .arg(format!("--log-file={}", log_file(d, program).display()))
        .args(["-vconsole:off", "--detach", "--no-chdir"]);
    sh::run(&mut cmd).map(drop)
}

/// The vxlan port of br-int towards `peer`.
fn tunnel_port(peer: &NodeInfo) -> String {
    format!("vxlan{}", peer.index)
}

fn tunnel_ofport(peer: &NodeInfo) -> usize {
    TUNNEL_OFPORT_BASE + peer.index
}

/// Programs one ovs node whose namespace, underlay and (empty) pod namespaces exist: pods,
/// daemons, bridges, tunnel routing and flows.
pub fn setup_node(lab: &Lab, node: &NodeInfo) -> Result<(), LabError> {
    let dir = ovs_dir(&node.dir);
    fs::create_dir_all(dir.join("etc")).map_err(|source| LabError::Io {
        what: "cannot create the OVS directory",
        path: dir.clone(),
        source,
    })?;
    let mtu = node.kind.pod_mtu();
    let gw_mac = topo::ovs_gateway_mac(node.index);
    let peers: Vec<&NodeInfo> = lab.nodes().iter().filter(|n| n.name != node.name).collect();

    // Pods: a veth each, TX checksum offload off at both ends, the gateway a fixed neighbour.
    let mut ip = Batch::ip(&node.netns);
    for pod in &node.pods {
        let host = format!("v{}", pod.name);
        ip.add(format!(
            "link add {host} mtu {mtu} type veth peer name eth0 netns {}",
            pod.netns
        ))
        .add(format!("link set {host} up"));
    }
    ip.run()?;
    for pod in &node.pods {
        sh::tx_off(&node.netns, &format!("v{}", pod.name))?;
        sh::tx_off(&pod.netns, "eth0")?;
        let mut p = Batch::ip(&pod.netns);
        p.add(format!("link set eth0 address {} mtu {mtu} up", pod.mac))
            .add(format!("addr add {}/24 dev eth0", pod.ip))
            .add(format!("route add default via {} dev eth0", node.gateway))
            .add(format!(
                "neigh replace {} lladdr {gw_mac} dev eth0 nud permanent",
                node.gateway
            ));
        p.run()?;
    }

    // eth0 becomes an AF_PACKET port: what the node sends on it must be complete frames.
    sh::tx_off(&node.netns, "eth0")?;

    // The daemons.
    let db = dir.join("conf.db");
    sh::run(
        Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(schema()?),
    )?;
    start_daemon(node, OVSDB, &db.display().to_string())?;
    vsctl(node, &["--no-wait".into(), "init".into()])?;
    start_daemon(
        node,
        VSWITCHD,
        &format!("unix:{}", db_socket(&node.dir).display()),
    )?;

    // Bridges and ports, in one transaction.
    let mut t: Vec<String> = Vec::new();
    let mut cmd = |words: &[&str]| {
        if !t.is_empty() {
            t.push("--".into());
        }
        t.extend(words.iter().map(|w| w.to_string()));
    };
    let phy_hw = format!("other_config:hwaddr={}", node.underlay_mac);
    let int_hw = format!("other_config:hwaddr={gw_mac}");
    cmd(&["add-br", BR_PHY]);
    cmd(&["set", "bridge", BR_PHY, "datapath_type=netdev", &phy_hw]);
    cmd(&["add-port", BR_PHY, "eth0"]);
    cmd(&["add-br", BR_INT]);
    cmd(&[
        "set",
        "bridge",
        BR_INT,
        "datapath_type=netdev",
        &int_hw,
        "fail-mode=secure",
    ]);
    for peer in &peers {
        let port = tunnel_port(peer);
        cmd(&["add-port", BR_INT, &port]);
        cmd(&[
            "set",
            "interface",
            &port,
            "type=vxlan",
            &format!("options:remote_ip={}", peer.vtep),
            &format!("options:key={}", topo::VNI),
            &format!("options:dst_port={}", lab.spec().port),
            &format!("ofport_request={}", tunnel_ofport(peer)),
        ]);
    }
    for (j, pod) in node.pods.iter().enumerate() {
        let port = format!("v{}", pod.name);
        cmd(&["add-port", BR_INT, &port]);
        cmd(&[
            "set",
            "interface",
            &port,
            &format!("ofport_request={}", j + 1),
        ]);
    }
    vsctl(node, &t)?;

    // The VTEP address moves to br-phy.
    let mut ip = Batch::ip(&node.netns);
    ip.add("addr flush dev eth0")
        .add("link set eth0 up")
        .add(format!(
            "addr add {}/{} dev {BR_PHY}",
            node.vtep,
            topo::UNDERLAY_PREFIX
        ))
        .add(format!("link set {BR_PHY} up"));
    ip.run()?;
    sh::sysctl(&node.netns, &[(sh::ipv4_conf(BR_PHY, "rp_filter"), "0")])?;

    // Tunnel routing and the peers' MACs, fixed.
    for peer in &peers {
        // OVS also learns the route from the kernel; an explicit one may already exist.
        let _ = appctl(
            node,
            &["ovs/route/add", &format!("{}/32", peer.vtep), BR_PHY],
        );
        appctl(
            node,
            &[
                "tnl/arp/set",
                BR_PHY,
                &peer.vtep.to_string(),
                &peer.underlay_mac,
            ],
        )?;
    }

    // L3 flows in br-int.
    let mgmt = format!("unix:{}", br_int_mgmt(&node.dir).display());
    let ofctl = |args: &[&str], input: Option<&str>| {
        let mut c = ovs_command(node, false, "ovs-ofctl");
        c.args(args);
        sh::run_with_input(&mut c, input).map(drop)
    };
    ofctl(&["del-flows", &mgmt], None)?;
    ofctl(&["add-flows", &mgmt, "-"], Some(&flows(node, &peers)))
}

/// br-int's flow table of `node`, in ovs-ofctl syntax.
fn flows(node: &NodeInfo, peers: &[&NodeInfo]) -> String {
    let gw_mac = topo::ovs_gateway_mac(node.index);
    let mut f = String::new();
    for peer in peers {
        let _ = writeln!(
            f,
            "table=0,priority=100,ip,nw_dst={},actions=dec_ttl,output:{}",
            peer.subnet,
            tunnel_ofport(peer)
        );
    }
    for (j, pod) in node.pods.iter().enumerate() {
        let _ = writeln!(
            f,
            "table=0,priority=100,ip,nw_dst={},actions=mod_dl_src:{gw_mac},mod_dl_dst:{},dec_ttl,output:{}",
            pod.ip,
            pod.mac,
            j + 1
        );
    }
    for peer in peers {
        let _ = writeln!(
            f,
            "table=0,priority=50,arp,in_port={},actions=drop",
            tunnel_ofport(peer)
        );
    }
    f.push_str("table=0,priority=10,actions=NORMAL\n");
    f
}

/// The PIDs in a node's pidfiles, of ovs-vswitchd and ovsdb-server in that order.
pub fn recorded_pids(node_dir: &Path) -> (Option<u32>, Option<u32>) {
    (
        read_pid(&pidfile(node_dir, VSWITCHD)),
        read_pid(&pidfile(node_dir, OVSDB)),
    )
}

/// How to look at a node's OVS by hand, for `vxlab status`.
pub fn hint(node: &NodeInfo) -> String {
    let d = &node.dir;
    format!(
        "ovs-vsctl --db=unix:{} show; ovs-ofctl dump-flows unix:{}; ovs-appctl -t {} dpif/show",
        db_socket(d).display(),
        br_int_mgmt(d).display(),
        ctl_socket(d, VSWITCHD).display()
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, LabSpec};
    use super::*;

    #[test]
    fn flows_route_remote_subnets_to_their_tunnel_and_local_pods_by_ip() {
        let spec = LabSpec {
            name: "o1".into(),
            nodes: 3,
            pods: 2,
            kinds: vec![Kind::Ovs],
            ..LabSpec::default()
        };
        let lab = Lab::plan(&spec).unwrap();
        let n2 = lab.node("n2").unwrap();
        let peers: Vec<&NodeInfo> = lab.nodes().iter().filter(|n| n.name != "n2").collect();
        let f = flows(n2, &peers);
        let want = "\
table=0,priority=100,ip,nw_dst=10.1.1.0/24,actions=dec_ttl,output:1001
table=0,priority=100,ip,nw_dst=10.1.3.0/24,actions=dec_ttl,output:1003
table=0,priority=100,ip,nw_dst=10.1.2.2,actions=mod_dl_src:02:67:77:00:00:02,mod_dl_dst:0a:58:0a:01:02:02,dec_ttl,output:1
table=0,priority=100,ip,nw_dst=10.1.2.3,actions=mod_dl_src:02:67:77:00:00:02,mod_dl_dst:0a:58:0a:01:02:03,dec_ttl,output:2
table=0,priority=50,arp,in_port=1001,actions=drop
table=0,priority=50,arp,in_port=1003,actions=drop
table=0,priority=10,actions=NORMAL
";
        assert_eq!(f, want);
        assert_eq!(
            pidfile(&n2.dir, VSWITCHD),
            Path::new("/run/vxlab/o1/n2/ovs/ovs-vswitchd.pid")
        );
        assert!(hint(n2).contains("ovs-appctl -t /run/vxlab/o1/n2/ovs/ovs-vswitchd.ctl"));
    }
}
