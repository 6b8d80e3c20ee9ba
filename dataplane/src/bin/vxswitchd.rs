//! vxswitchd: the vxswitch daemon. See `vxswitchd --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{ArgAction, Parser};
use dataplane::pipeline::{OuterTos, OuterTtl};
use dataplane::server::{self, Access};
use dataplane::switch::{Switch, SwitchConfig};
use dataplane::worker::{PollMode, Polling};

const AFTER_HELP: &str = "\
vxswitchd starts idle: it binds the VXLAN port and creates vxhost0 when it learns the local
node (from vxagent or `vxctl`), and creates one TAP per pod port it is given. Its configuration
is saved to the state file after every change; a restarted vxswitchd restores it and re-attaches
the pods' persistent TAPs, so pods keep their interfaces.

Examples:
  vxswitchd                                  # defaults: /run/vxswitch/vxswitchd.sock, port 4789
  vxswitchd --vxlan-port 8472                # talk to Linux/flannel's default port
  vxswitchd --workers 2 --pin --busy-poll    # dedicated cores
  vxswitchd --poll adaptive                  # poll while traffic flows, sleep when idle
  vxswitchd --socket-group vxadmin           # let group vxadmin use vxctl
  vxswitchd --tos inherit --ttl inherit      # outer DSCP and TTL copied from the pod's packet
  vxswitchd --src-ports 64                   # 64 outer source ports (sockets) per worker

On the wire: the outer ECN field always follows the inner packet (RFC 6040; CE is sent as
ECT(0)), and a CE mark arriving on the outer header is passed to the inner one. Every VXLAN
packet leaves with DF set and is never fragmented (RFC 7348 section 4.3): the switch learns
the path MTU to each VTEP (the route's `mtu`, or ICMP frag-needed the node received) and
answers pod packets that no longer fit with ICMP frag-needed carrying path MTU - 50 (- 70 on
an IPv6 underlay); an IPv4 packet without DF that does not fit is dropped and counted
(`mtu_exceeded`), not fragmented.

File descriptors: at start vxswitchd raises its soft RLIMIT_NOFILE to the hard limit. It holds
one UDP socket per worker on the VXLAN port, up to --src-ports sockets per worker on ports of
--src-port-range, one TAP queue per worker per pod, and one per control connection. If they run
out anyway, flows leave from the VXLAN port (counted as src_port_open_failed) and the control
socket keeps answering.

Signals:
  SIGTERM, SIGINT  stop: the control socket stops accepting connections (and is removed), every
                   worker forwards what is already queued on its TAP queues and UDP socket
                   (at most 100 ms), the configuration is written to the state file, the pods'
                   TAPs are left in place, and vxswitchd exits 0 (in tens of milliseconds; the
                   time is logged).
  SIGHUP           reopen the log: --log-file PATH is opened again (appending), for log
                   rotation; without --log-file nothing changes.
  SIGKILL, a crash nothing runs; see below.

Restarts: started again with the same command line (systemd's Restart=always, see
contrib/systemd/; vxlab supervises its labs' daemons), vxswitchd restores its configuration
from the state file, re-attaches the pods' persistent TAPs (the pods keep their interfaces,
addresses and routes), and at once announces the gateway into each of them (an ARP request for
the pod's address from the gateway and a gratuitous ARP; a neighbour solicitation and an
unsolicited advertisement on dual-stack pods; counted as gateway_announced), so a pod whose
neighbour entry for the gateway went with the TAP's carrier has it again without waiting the
1 s of an ARP retry. It forwards with the restored tables until vxagent reconnects; the agent
then pushes only what differs, never flushing the tables first. A state file that cannot be
read or parsed is kept aside as FILE.corrupt-SECONDS and the switch starts empty for the agent.";

/// The vxswitch daemon: a userspace VXLAN switch for pod networks.
#[derive(Parser, Debug)]
#[command(name = "vxswitchd", version, after_help = AFTER_HELP)]
struct Args {
    /// Control socket path.
    #[arg(long, default_value = controlplane::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Admit members of this group to the control socket (mode 0660) besides root.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: Option<u16>,
    /// VXLAN destination UDP port (4789 is IANA's; 8472 is Linux's and flannel's default).
    #[arg(long, default_value_t = 4789, value_parser = clap::value_parser!(u16).range(1..))]
    vxlan_port: u16,
    /// Outer UDP source port range, chosen per inner flow by a hash (RFC 7348 section 5).
    #[arg(long, default_value = "49152-65535", value_parser = parse_range)]
    src_port_range: (u16, u16),
    /// Outer UDP source ports a worker holds sockets on, spread evenly over
    /// --src-port-range: each flow's hashed port is mapped onto one of them. The daemon holds
    /// at most workers × N UDP sockets (file descriptors) on these ports of the VTEP address,
    /// however many flows pass; a few hundred give ECMP all the entropy it needs.
    #[arg(long, default_value_t = dataplane::pipeline::DEFAULT_SRC_PORTS, value_name = "N",
          value_parser = parse_src_ports)]
    src_ports: usize,
    /// Most remote nodes a flood (a flow's `flood`) replicates to; the nodes beyond are
    /// counted as flood_nodes_skipped. Default: every node.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    flood_max_nodes: Option<u64>,
    /// Broadcast, unknown-unicast and multicast frames each port may have replicated by a
    /// flow's `flood`, per second, with an optional burst (default: the rate); beyond it they
    /// are dropped and counted as bum_rate_limited. 0 = unlimited. ARP and neighbour
    /// solicitations the switch answers itself are never flooded and never count.
    #[arg(long, default_value = "1000/1000", value_name = "N[/BURST]", value_parser = parse_bum_rate)]
    bum_rate: (u32, u32),
    /// Outer UDP checksum: on (computed, needed for GSO/GRO) or off (zero, as older Linux and
    /// flannel send).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    udp_csum: String,
    /// TAP and UDP offloads (UDP GRO on receive): on or off.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    offload: String,
    /// TCP super-frames to and from the underlay: tap (one write and one read each, through
    /// a TAP with UDP-tunnel GSO joined to the underlay device by tc; Linux 6.17+), udp
    /// (segmented for the UDP sockets), auto (tap when the kernel takes it).
    #[arg(long, default_value = "auto", value_parser = ["tap", "udp", "auto"])]
    underlay_gso: String,
    /// With the underlay TAP: the smallest VXLAN datagram (IPv4 total length, bytes) the
    /// underlay device hands to the TAP rather than to the UDP sockets, and the smallest
    /// super-frame sent through it; a power of two from 2048 to 32768. Only datagrams with
    /// the switch's mark (outer IPv4 id 0x7e57) go through the TAP: small frames, UDP GSO
    /// batches and segmented super-frames keep the UDP sockets' batched receive.
    #[arg(long, default_value_t = dataplane::io::tnl::MIN_TAP_LEN, value_name = "BYTES",
          value_parser = parse_tap_min_len)]
    underlay_tap_min_len: u16,
    /// After work, keep polling without sleeping for this many microseconds, then sleep (0
    /// sleeps at once). Given without --poll, it selects `--poll sleep` with this fixed spin.
    #[arg(long, default_value_t = 0, value_name = "US", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    spin_us: u32,
    /// How workers wait for work. adaptive: after work, keep polling (no sleep) for a budget
    /// that follows the traffic (up to --poll-budget-us), then sleep in epoll: a flow in full
    /// swing or a request/response exchange saves its wake-ups for some CPU while the traffic
    /// lasts (at most one budget of polling per burst); an idle switch sleeps and uses no CPU.
    /// sleep: sleep as soon as a pass finds nothing (a wake-up, a context switch and a few
    /// microseconds per burst; least CPU). busy: never sleep, yield between polls (lowest
    /// latency; each worker keeps a core busy even when idle, shared with whatever else is
    /// runnable). Polling pays where a core is free for it; where pods and switches share
    /// the cores, the CPU a worker polls with is charged to it and its wake-ups wait longer
    /// behind the others (measured on a shared machine, see results/2026-12-08-issue13-poll). [default: adaptive]
    #[arg(long, value_parser = ["adaptive", "sleep", "busy"])]
    poll: Option<String>,
    /// The longest `--poll adaptive` keeps polling after the last work, in microseconds: the
    /// most CPU a burst can cost in polling, and the longest gap between packets of one flow
    /// that polling still bridges without a wake-up.
    #[arg(long, default_value_t = dataplane::worker::DEFAULT_POLL_BUDGET_US, value_name = "US", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    poll_budget_us: u32,
    /// `--poll adaptive`: give the CPU to anything else runnable (sched_yield) between polls
    /// that found nothing, and stop polling until the next work once a yield let another task
    /// run: polling then only takes CPU nothing else wants (pods sharing the cores lose
    /// nothing to it). off: poll through the budget regardless.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    poll_yield: String,
    /// Nice value of the worker threads (-20 to 19; default: vxswitchd's own). Below the
    /// pods' (0), a worker that wakes gets a core sooner when pods keep the cores busy, for
    /// a smaller share of the cores left to the pods under full load.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    worker_nice: Option<i32>,
    /// Masquerade pod traffic that leaves the cluster through this node (nftables table
    /// `ip vxswitch`; turns on IPv4 forwarding in the node's namespace).
    #[arg(long, action = ArgAction::SetTrue)]
    masquerade: bool,
    /// Pin each worker to a core.
    #[arg(long, action = ArgAction::SetTrue)]
    pin: bool,
    /// Workers never sleep in poll, they yield between polls (lowest latency; each worker keeps
    /// a core busy, shared with whatever else is runnable).
    #[arg(long, action = ArgAction::SetTrue)]
    busy_poll: bool,
    /// Where the configuration is saved (default: next to the socket, NAME.state.json).
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9110); off when not given.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// Outer DSCP of VXLAN packets: `inherit` copies the pod packet's DSCP (as Linux's
    /// `ip link add ... type vxlan tos inherit`), or a TOS byte (0-255, `0x` for hex, e.g.
    /// 0xb8 for DSCP EF) whose six DSCP bits are used. The two ECN bits always follow the pod
    /// packet, whatever this says.
    #[arg(long, default_value = "0", value_name = "inherit|TOS", value_parser = parse_tos)]
    tos: OuterTos,
    /// Outer TTL of VXLAN packets: 1-255, or `inherit` to copy the pod packet's TTL (hop
    /// limit) after routing (64 for non-IP frames), as Linux's `ttl inherit`.
    #[arg(long, default_value = "64", value_name = "N|inherit", value_parser = parse_ttl)]
    ttl: OuterTtl,
    /// Log to this file (appending) instead of stderr; SIGHUP reopens it (log rotation).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Directory where OVS's tools look for the switch: DIR/<bridge>.mgmt (OpenFlow) and
    /// DIR/ovs-vswitchd.pid + DIR/ovs-vswitchd.<pid>.ctl (ovs-appctl); point OVS_RUNDIR at it.
    #[arg(long, value_name = "DIR")]
    ovs_rundir: Option<PathBuf>,
    /// The bridge name OVS's tools use for this switch (`ovs-ofctl show br0`, ovs-appctl
    /// fdb/show BRIDGE, ofproto/trace BRIDGE ...).
    #[arg(long, value_name = "NAME", default_value = "br0")]
    bridge: String,
    /// Also serve ovs-appctl on this socket path (`ovs-appctl -t PATH ...`).
    #[arg(long, value_name = "PATH")]
    unixctl: Option<PathBuf>,
    /// Do not save or restore the configuration.
    #[arg(long, action = ArgAction::SetTrue, conflicts_with = "state_file")]
    no_state: bool,
    /// Also listen for OpenFlow on TCP: ptcp:PORT[:IP] (IP default 127.0.0.1). No access
    /// check beyond the address: bind to loopback unless the network is trusted.
    #[arg(long, value_name = "ptcp:PORT[:IP]", value_parser = dataplane::openflow::listener::parse_ptcp)]
    openflow_listen: Option<std::net::SocketAddr>,
    /// Connect out to an OpenFlow controller, tcp:IP:PORT (reconnects with back-off).
    #[arg(long, value_name = "tcp:IP:PORT", value_parser = dataplane::openflow::listener::parse_tcp)]
    controller: Option<std::net::SocketAddr>,
    /// Largest super-frame a pod's TAP hands the switch (its gso_max_size): `auto` sizes it
    /// so that its segments, encapsulated, fit one UDP GSO send (44 segments at MTU 1450);
    /// `off` leaves the kernel's 64 KiB; or a size in bytes.
    #[arg(long, default_value = "auto", value_name = "auto|off|BYTES",
          value_parser = dataplane::switch::PodGsoMax::parse)]
    pod_gso_max: dataplane::switch::PodGsoMax,
    /// Decapsulated GRO batches: `batch` classifies the first segment and applies its verdict
    /// to the segments whose headers match it; `segment` runs the pipeline for each.
    #[arg(long, default_value = "batch", value_parser = ["batch", "segment"])]
    rx_classify: String,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected MIN-MAX, e.g. 49152-65535"))?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a port number"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a port number"))?;
    if a == 0 || a > b {
        return Err(format!("{s:?}: need 1 <= MIN <= MAX"));
    }
    Ok((a, b))
}

fn parse_byte(s: &str) -> Result<u8, String> {
    let s = s.trim();
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16),
        None => s.parse(),
    };
    v.map_err(|_| format!("{s:?} is not a number from 0 to 255"))
}

fn parse_tos(s: &str) -> Result<OuterTos, String> {
    if s == "inherit" {
        return Ok(OuterTos::Inherit);
    }
    parse_byte(s)
        .map(OuterTos::Fixed)
        .map_err(|e| format!("{e}; expected `inherit` or a TOS byte such as 0xb8"))
}

fn parse_ttl(s: &str) -> Result<OuterTtl, String> {
    if s == "inherit" {
        return Ok(OuterTtl::Inherit);
    }
    match parse_byte(s) {
        Ok(0) | Err(_) => Err(format!("{s:?}: expected `inherit` or a TTL from 1 to 255")),
        Ok(v) => Ok(OuterTtl::Fixed(v)),
    }
}

fn parse_src_ports(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of ports"))?;
    if !(1..=65535).contains(&n) {
        return Err(format!("{n}: need 1 to 65535 source ports"));
    }
    Ok(n)
}

/// `N` or `N/BURST`: frames per second (at most 1,000,000) and burst (1 to 1,000,000; the
/// rate when not given).
fn parse_bum_rate(s: &str) -> Result<(u32, u32), String> {
    let (rate, burst) = match s.split_once('/') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let rate: u32 = rate
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: the rate is not a number of frames per second"))?;
    if rate > 1_000_000 {
        return Err(format!(
            "{rate}: at most 1000000 frames per second (0 = unlimited)"
        ));
    }
    let burst = match burst {
        Some(b) => b
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: the burst is not a number of frames"))?,
        None => rate.max(1),
    };
    if !(1..=1_000_000).contains(&burst) {
        return Err(format!("{burst}: the burst must be 1 to 1000000 frames"));
    }
    Ok((rate, burst))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vxswitchd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    if let Some(path) = &args.log_file {
        dataplane::io::sys::redirect_output(path)
            .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
    }
    let access = Access {
        group: match &args.socket_group {
            Some(g) => Some((server::lookup_group(g)?, g.clone())),
            None => None,
        },
    };
    let workers = args.workers.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let state_file = if args.no_state {
        None
    } else {
        Some(
            args.state_file
                .clone()
                .unwrap_or_else(|| server::default_state_file(&args.socket)),
        )
    };
    // Checked by the parser: cannot fail here.
    let _ = dataplane::io::tnl::set_min_len(args.underlay_tap_min_len);
    dataplane::io::tnl::set_mode(
        args.underlay_gso
            .parse()
            .unwrap_or(dataplane::io::tnl::Mode::Auto),
    );
    let cfg = SwitchConfig {
        workers,
        vxlan_port: args.vxlan_port,
        src_port_min: args.src_port_range.0,
        src_port_max: args.src_port_range.1,
        udp_zero_csum: args.udp_csum == "off",
        busy_poll: args.busy_poll,
        spin_us: args.spin_us,
        polling: polling(&args)?,
        pin: args.pin,
        offload: args.offload == "on",
        masquerade: args.masquerade,
        state_file,
        tos: args.tos,
        ttl: args.ttl,
        flood_max_nodes: args
            .flood_max_nodes
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or(usize::MAX),
        src_ports: args.src_ports,
        bum_rate: args.bum_rate.0,
        bum_burst: args.bum_rate.1,
        pod_gso_max: args.pod_gso_max,
        rx_classify_batch: args.rx_classify == "batch",
    };
    // Sockets, TAP queues and control connections are all file descriptors; the soft limit
    // is often 1,024 (systemd's default), the hard one far higher.
    match dataplane::io::sys::raise_nofile_limit() {
        Ok((before, now)) if before != now => eprintln!(
            "vxswitchd: open file limit raised from {before} to {now} (RLIMIT_NOFILE hard limit)"
        ),
        Ok((_, now)) => eprintln!("vxswitchd: open file limit {now}"),
        Err(e) => eprintln!("vxswitchd: cannot raise the open file limit: {e}"),
    }
    let src_ports = (args.src_ports as u32)
        .min(args.src_port_range.1 as u32 - args.src_port_range.0 as u32 + 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the control runtime: {e}"))?;
    rt.block_on(async move {
        let listener = server::bind(&args.socket, &access)?;
        // ovs-appctl's sockets: DIR/ovs-vswitchd.PID.ctl (found through the pidfile) and/or
        // an explicit path.
        let pidfile = match &args.ovs_rundir {
            Some(dir) => Some(dataplane::unixctl::Pidfile::create(dir)?),
            None => None,
        };
        let mut unixctl_paths: Vec<PathBuf> = Vec::new();
        if let Some(dir) = &args.ovs_rundir {
            unixctl_paths.push(dataplane::unixctl::Pidfile::socket_path(dir));
        }
        if let Some(p) = &args.unixctl {
            unixctl_paths.push(p.clone());
        }
        let mut unixctl_listeners = Vec::new();
        for p in &unixctl_paths {
            unixctl_listeners.push(dataplane::unixctl::bind(p, &access)?);
        }
        let mut sw = Switch::start(cfg).map_err(|e| format!("cannot start workers: {e}"))?;
        sw.restore()?;
        eprintln!(
            "vxswitchd: listening on {} ({} workers, VXLAN port {}, {} outer source ports per worker in {}-{})",
            args.socket.display(),
            workers,
            args.vxlan_port,
            src_ports,
            args.src_port_range.0,
            args.src_port_range.1
        );
        let sw = Arc::new(Mutex::new(sw));
        if let Some(addr) = args.metrics {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
            eprintln!("vxswitchd: metrics on http://{addr}/metrics");
            tokio::spawn(dataplane::metrics::serve(l, sw.clone()));
        }
        let exit = Arc::new(tokio::sync::Notify::new());
        let unixctl_cx = Arc::new(dataplane::unixctl::Context {
            bridge: args.bridge.clone(),
            vxlan_port: args.vxlan_port,
        });
        for (l, p) in unixctl_listeners.into_iter().zip(&unixctl_paths) {
            eprintln!("vxswitchd: ovs-appctl socket {}", p.display());
            tokio::spawn(dataplane::unixctl::serve(
                l,
                sw.clone(),
                access.clone(),
                unixctl_cx.clone(),
                exit.clone(),
            ));
        }
        let mgmt = args
            .ovs_rundir
            .as_ref()
            .map(|d| d.join(format!("{}.mgmt", args.bridge)));
        if let Some(path) = &mgmt {
            let l = server::bind(path, &access)?;
            eprintln!("vxswitchd: OpenFlow on {} (ovs-ofctl ... {})", path.display(), args.bridge);
            tokio::spawn(dataplane::openflow::listener::serve_unix(l, sw.clone(), access.clone()));
        }
        if let Some(addr) = args.openflow_listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for OpenFlow on {addr}: {e}"))?;
            eprintln!("vxswitchd: OpenFlow on tcp:{addr}");
            tokio::spawn(dataplane::openflow::listener::serve_tcp(l, sw.clone()));
        }
        if let Some(addr) = args.controller {
            tokio::spawn(dataplane::openflow::listener::controller(addr, sw.clone()));
        }
        tokio::spawn(server::expire_flows(sw.clone()));
        tokio::spawn(server::learn_flows(sw.clone()));
        tokio::spawn(server::refresh_path_mtus(sw.clone()));
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot watch {name}: {e}"))
        };
        let mut term = watch(SignalKind::terminate(), "SIGTERM")?;
        let mut int = watch(SignalKind::interrupt(), "SIGINT")?;
        let mut hup = watch(SignalKind::hangup(), "SIGHUP")?;
        let why = {
            let serve = server::serve(listener, sw.clone(), access);
            tokio::pin!(serve);
            loop {
                tokio::select! {
                    _ = &mut serve => break "the control socket closed",
                    _ = term.recv() => break "SIGTERM",
                    _ = int.recv() => break "SIGINT",
                    _ = exit.notified() => break "ovs-appctl exit",
                    _ = hup.recv() => match &args.log_file {
                        Some(path) => match dataplane::io::sys::redirect_output(path) {
                            Ok(()) => eprintln!("vxswitchd: log reopened (SIGHUP)"),
                            Err(e) => eprintln!(
                                "vxswitchd: SIGHUP: cannot reopen {}: {e}; logging on to the old file",
                                path.display()
                            ),
                        },
                        None => eprintln!("vxswitchd: SIGHUP: no --log-file to reopen"),
                    },
                }
            }
            // Leaving this block drops the listener: no new control connection is accepted.
        };
        let t0 = std::time::Instant::now();
        let _ = std::fs::remove_file(&args.socket);
        for p in &unixctl_paths {
            let _ = std::fs::remove_file(p);
        }
        drop(pidfile);
        if let Some(path) = &mgmt {
            let _ = std::fs::remove_file(path);
        }
        let mut sw = sw.lock().unwrap_or_else(|p| p.into_inner());
        sw.shutdown();
        eprintln!(
            "vxswitchd: stopped ({why}) in {} ms: queues drained, {}, pod TAPs left for the next start",
            t0.elapsed().as_millis(),
            match sw.state_file() {
                Some(p) => format!("state saved to {}", p.display()),
                None => "no state file".to_string(),
            }
        );
        Ok(())
    })
}

/// The workers' polling settings from --poll, --busy-poll, --spin-us and --poll-budget-us.
fn polling(args: &Args) -> Result<Polling, String> {
    let mode = match (args.poll.as_deref(), args.busy_poll) {
        (Some("busy") | None, true) => PollMode::Busy,
        (Some(m), true) => return Err(format!("--busy-poll contradicts --poll {m}")),
        (Some("sleep"), false) => PollMode::Sleep,
        (Some("busy"), false) => PollMode::Busy,
        (Some(_), false) => PollMode::Adaptive,
        (None, false) if args.spin_us > 0 => PollMode::Sleep,
        (None, false) => Polling::default().mode,
    };
    Ok(Polling {
        mode,
        budget_us: args.poll_budget_us,
        yield_between: args.poll_yield == "on",
        nice: args.worker_nice,
    })
}

fn parse_tap_min_len(s: &str) -> Result<u16, String> {
    let n: u16 = s
        .parse()
        .map_err(|_| format!("{s:?}: a length in bytes (a power of two, 2048-32768)"))?;
    dataplane::io::tnl::set_min_len(n)?;
    Ok(n)
}
