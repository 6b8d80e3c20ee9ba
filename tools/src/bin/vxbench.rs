//! vxbench: build the same two-node lab with vxswitch, the kernel's vxlan, Open vSwitch and
//! plain routing in turn, measure pod to pod, and report medians, ratios to the kernel and a
//! chart.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tools::bench::systems::{self, System};
use tools::bench::{self, rr, search, udp, Options};
use tools::lab::{self, Kind};

const ABOUT: &str = "Benchmark vxswitch against the kernel's vxlan, Open vSwitch and plain routing";

const LONG_ABOUT: &str = "\
Benchmark vxswitch against the kernel's vxlan, Open vSwitch and plain routing.

For every round and every system in turn (A B C A B C ...), builds a lab with vxlab — two nodes
(namespaces on a veth underlay, 198.51.100.0/24), one pod on each — measures from pod n1p1 to
pod n2p1, and tears the lab down:
  ping      ping -c PINGS -i 0.01: median and p99 round trip
  tcp_rr    1-byte TCP request/response over one connection: median and p99
  tcp1/4    iperf3 TCP, 1 and 4 streams: Gb/s, retransmits, switch CPU-s per Gb
  udp64     64-byte UDP payloads from a batching sender (sendmmsg), or from --udp-senders N
            at once, each to its own receiver: offered and received packets/s (summed), loss,
            switch CPU-s per million packets
  udp1400   the same with 1400-byte payloads
  udp64_max only with --udp-search or --tests: the highest rate of 64-byte UDP the path forwards
            with less loss than --udp-max-loss (1 %). Trials of --udp-trial seconds: first as
            fast as the sender goes (if that passes, the path keeps up with the sender and that
            is the answer), then paced from 25000 packets/s, doubling up to what the unpaced
            sender offered, until a rate fails, then bisection between the highest passing and
            the lowest failing rate until within 5 %; at most 12 trials and 25 s per lab. Gives
            the received packets/s of the best passing trial (0 if even 25000 failed) and its
            loss; every trial is on stderr and in samples.json.
Systems: vxswitch; kernel (Linux vxlan + bridge, flannel-style); ovs (OVS userspace datapath,
needs openvswitch-switch); plain (no overlay, routed: the upper bound); vxswitch:NAME, a variant:
vxswitch started with the extra vxswitchd arguments of --variant NAME='ARGS', measured in the
same interleaved rounds as a system of its own (its own row in every table and bar in the
chart; ratios still to the kernel).

Writes to the output directory samples.json (every sample), summary.json ({\"SYSTEM\":
{\"tcp1_gbps\": median, ..., \"tcp1_gbps_min\": lowest round, \"tcp1_gbps_max\": highest
round, ...}}), summary.md (table with ratios to the kernel, and the spread from the lowest to
the highest round), chart.svg and meta.json. Progress goes to stderr, the final tables to
stdout. Ctrl-C stops after tearing the current lab down and writes what was measured. Must run
as root.";

const EXAMPLES: &str = "\
Examples:
  vxbench                                     all systems, 3 rounds, into results/DATE-HOST
  vxbench --systems vxswitch,kernel --repeats 5
  vxbench --tso off                           per-frame comparison (no TSO in the pods)
  vxbench --underlay-offload off              software segmentation on the underlay too
  vxbench --systems vxswitch --pin --workers 2
  vxbench --systems vxswitch,vxswitch:udp,kernel --variant udp='--underlay-gso udp'
                                              the default switch, the switch with the UDP
                                              underlay, and the kernel, interleaved
  vxbench --systems vxswitch,kernel --tests udp64 --udp-senders 4
                                              64-byte UDP from 4 senders at once
  vxbench profile --systems vxswitch,kernel --rounds 3
                                              the CPU per 64 KB of TCP, by call chain
  vxbench --udp-search                        every test, and the UDP rate search
  vxbench --systems vxswitch,kernel --repeats 5 --tests udp64_max
                                              only the rate search (1.5 min on 2 CPUs)
  vxbench --systems kernel --repeats 1 --duration 1 --out /tmp/smoke

Exit status: 0 all done; 2 done, but some tests failed (see samples.json); 130 interrupted;
1 could not run.";

#[derive(Parser)]
#[command(
    name = "vxbench",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    override_usage = "vxbench [OPTIONS]",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Systems, in the order each round runs them (vxswitch, kernel, ovs, plain, and
    /// vxswitch:NAME for a variant defined with --variant) [default: vxswitch,kernel,ovs,plain;
    /// ovs only if Open vSwitch is installed].
    #[arg(long, value_name = "LIST", value_parser = parse_systems)]
    systems: Option<Systems>,
    /// A vxswitch variant: NAME=ARGS, extra vxswitchd arguments for the system vxswitch:NAME
    /// (after every --switch-arg), split as a shell splits words (quotes and backslashes
    /// work; no expansions). Repeat for several, e.g. --variant udp='--underlay-gso udp'
    /// --variant spin='--spin-us 50'.
    #[arg(long = "variant", value_name = "NAME=ARGS", allow_hyphen_values = true, value_parser = systems::parse_variant)]
    variants: Vec<(String, Vec<String>)>,
    /// Rounds; every figure is the median over them.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Seconds of each iperf3 TCP test.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    duration: u64,
    /// Seconds of each UDP test [default: 3, at most --duration].
    #[arg(long, value_name = "SECS")]
    udp_duration: Option<f64>,
    /// Pace the UDP sender at this many datagrams/s (default: as fast as it goes); udp64_max
    /// ignores it.
    #[arg(long, value_name = "PPS")]
    udp_rate: Option<u64>,
    /// Concurrent 64- and 1400-byte UDP senders in the client pod, each to its own receiver
    /// in the server pod (flows differ in both ports); rates are summed, and a paced rate is
    /// split among them (udp64_max too). With one, a kernel path runs inside its sender's
    /// system calls and measures the sender as much as the path.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_senders)]
    udp_senders: usize,
    /// Tests, in the order each lab runs them: ping, tcp_rr, tcp1, tcp4, udp64, udp1400,
    /// udp64_max [default: all but udp64_max].
    #[arg(long, value_name = "LIST", value_parser = parse_tests)]
    tests: Option<Tests>,
    /// Add the UDP rate search, udp64_max, to the tests (after the others).
    #[arg(long)]
    udp_search: bool,
    /// Seconds of each trial of the UDP rate search.
    #[arg(long, value_name = "SECS", default_value_t = 1.5, value_parser = parse_trial)]
    udp_trial: f64,
    /// The UDP rate search's loss limit: a rate passes with less loss than this, in percent.
    #[arg(long, value_name = "PCT", default_value_t = search::MAX_LOSS_PCT, value_parser = parse_loss)]
    udp_max_loss: f64,
    /// Pings per latency test (0.01 s apart).
    #[arg(long, default_value_t = 50)]
    pings: u32,
    /// TCP request/response round trips per test.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    rr_count: usize,
    /// TSO in the pods (off: TX checksum offload off in every pod, MTU-sized frames).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    tso: OnOff,
    /// TX checksum offload on the underlay veths: on, large frames cross the underlay whole, as
    /// between NICs with TSO and GRO (how the reference baselines were measured); off, the
    /// sending kernel segments every frame in software, as vxlab does by default.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    underlay_offload: OnOff,
    /// vxswitchd worker threads (vxswitchd's default if not given).
    #[arg(long)]
    workers: Option<usize>,
    /// Pin vxswitchd's workers to cores (vxswitchd --pin); labs leave them unpinned.
    #[arg(long)]
    pin: bool,
    /// One more argument for every vxswitchd; repeat for several.
    #[arg(long = "switch-arg", value_name = "ARG", allow_hyphen_values = true)]
    switch_args: Vec<String>,
    /// VXLAN UDP port of the overlays.
    #[arg(long, default_value_t = 4789)]
    port: u16,
    /// Output directory [default: results/YYYY-MM-DD-HOST; -tso-off, -underlay-offload-off
    /// appended when those are off].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Prefix of the labs' names (bvx, bk, bo, bp with the default).
    #[arg(long, value_name = "P", default_value = "b")]
    lab_prefix: String,
    #[command(subcommand)]
    helper: Option<Helper>,
}

/// The programs vxbench runs inside the pods.
#[derive(Subcommand)]
enum Helper {
    /// Soak a two-node vxswitch lab: mixed TCP and UDP traffic with table churn for a long
    /// time, sampling each vxswitchd's memory, descriptors and drops by reason and the
    /// throughput; writes samples.csv, soak.json and chart.svg. Exits 1 if memory or
    /// descriptors at the end grew more than 5 % over their values after the warm-up.
    Soak(SoakArgs),
    /// What one table change costs vxswitchd with many remote nodes and flows present, one
    /// request at a time through the control socket: daemon CPU and wall time per add-node /
    /// del-node and per add-flow / del-flow, the sustained rate, memory per node and per flow.
    Updates(UpdatesArgs),
    /// Where the CPU goes per 64 KB of TCP payload: single-stream iperf3 TCP through a
    /// two-node lab of each system in turn, round by round, with perf record (call chains,
    /// cpu-clock), perf stat (context switches, syscalls) and /proc/stat (busy time) over a
    /// window in the middle of the transfer; writes profile.md (the table, medians),
    /// profile.json, chart.svg (stacked bars by category) and stacks/*.folded.gz. Root; sets
    /// kernel.perf_event_paranoid and kptr_restrict for the run and restores them.
    #[command(after_help = "Examples:
  vxbench profile                                   vxswitch and kernel, 3 rounds of 10 s
  vxbench profile --systems vxswitch,vxswitch:udp,kernel --variant udp='--underlay-gso udp'
  vxbench profile --systems vxswitch --rounds 1 --duration 5 --out /tmp/p")]
    Profile(ProfileArgs),
    /// Send UDP datagrams in batches; prints a JSON report.
    #[command(hide = true)]
    UdpSend {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        #[arg(long)]
        rate: Option<u64>,
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Count UDP datagrams; prints "ready", then a JSON report.
    #[command(hide = true)]
    UdpRecv {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 30.0)]
        limit: f64,
        #[arg(long, default_value_t = 1.0)]
        idle: f64,
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Echo one TCP connection; prints "ready".
    #[command(hide = true)]
    TcpEchoServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 60.0)]
        limit: f64,
    },
    /// Time 1-byte TCP round trips; prints a JSON report.
    #[command(hide = true)]
    TcpRr {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 20)]
        warmup: usize,
    },
}

#[derive(clap::Args)]
struct ProfileArgs {
    /// Systems, in the order each round runs them: vxswitch, kernel, vxswitch:NAME.
    #[arg(long, value_name = "LIST", value_parser = parse_systems, default_value = "vxswitch,kernel")]
    systems: Systems,
    /// A vxswitch variant, NAME=ARGS (as for the benchmark).
    #[arg(long = "variant", value_name = "NAME=ARGS", allow_hyphen_values = true, value_parser = systems::parse_variant)]
    variants: Vec<(String, Vec<String>)>,
    /// Rounds; every figure is the median over them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each iperf3 run (the window leaves out 1 s at each end).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    duration: u64,
    /// TX checksum offload on the underlay veths.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    underlay_offload: OnOff,
    /// TSO in the pods.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    tso: OnOff,
    /// vxswitchd worker threads (vxswitchd's default if not given).
    #[arg(long)]
    workers: Option<usize>,
    /// One more argument for every vxswitchd; repeat for several.
    #[arg(long = "switch-arg", value_name = "ARG", allow_hyphen_values = true)]
    switch_args: Vec<String>,
    /// VXLAN UDP port.
    #[arg(long, default_value_t = 4789)]
    port: u16,
    /// Output directory [default: results/DATE-HOST-profile].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Prefix of the labs' names (pfvx, pfk, pfvx1 ... with the default).
    #[arg(long, value_name = "P", default_value = "pf")]
    lab_prefix: String,
}

fn profile_main(a: ProfileArgs) -> ExitCode {
    let mut systems = a.systems.0;
    if let Err(e) = systems::attach_variants(&mut systems, &a.variants) {
        eprintln!("vxbench profile: {e}");
        return ExitCode::FAILURE;
    }
    let opts = bench::profile::ProfileOptions {
        systems,
        rounds: a.rounds,
        duration: Duration::from_secs(a.duration),
        tso: a.tso == OnOff::On,
        underlay_offload: a.underlay_offload == OnOff::On,
        workers: a.workers,
        switch_args: a.switch_args,
        port: a.port,
        out: a.out.unwrap_or_else(|| {
            std::path::Path::new("results").join(format!(
                "{}-{}-profile",
                bench::date(std::time::SystemTime::now()),
                bench::hostname()
            ))
        }),
        lab_prefix: a.lab_prefix,
        command: command_line(),
    };
    match bench::profile::run(&opts) {
        Ok(md) => {
            print!("{md}");
            println!("output in {}", opts.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vxbench profile: {e}");
            ExitCode::FAILURE
        }
    }
}

/// This run's command line, quoted as a shell would need it.
fn command_line() -> String {
    std::iter::once("vxbench".to_string())
        .chain(std::env::args().skip(1).map(|a| quote(&a)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(clap::Args)]
struct UpdatesArgs {
    /// Remote node counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [500, 1000, 5000])]
    nodes: Vec<usize>,
    /// Flow counts (comma-separated), one lab each.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 10000, 100000])]
    flows: Vec<usize>,
    /// Single changes per measurement.
    #[arg(long, default_value_t = 1000)]
    changes: usize,
    /// Longest a measurement of single changes runs.
    #[arg(long, default_value = "10s", value_parser = parse_span)]
    limit: Duration,
    /// Length of the sustained-rate run.
    #[arg(long, default_value = "3s", value_parser = parse_span)]
    sustain: Duration,
    /// Lab name (1-8 characters a-z0-9).
    #[arg(long, default_value = "vxupd")]
    lab: String,
    /// Write the results as JSON here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SoakArgs {
    /// How long, e.g. 600s, 10m, 90s.
    #[arg(long, default_value = "10m", value_parser = parse_span)]
    duration: Duration,
    /// Time between samples.
    #[arg(long, default_value = "5s", value_parser = parse_span)]
    interval: Duration,
    /// Warm-up: memory is compared from its end on [default: a fifth of the duration, at most
    /// 120 s; vxswitchd's RSS climbs for about two minutes as the allocator settles under
    /// repeated 1,000-flow replaces, then stays flat].
    #[arg(long, value_parser = parse_span)]
    warmup: Option<Duration>,
    /// Length of each back-to-back TCP and UDP run.
    #[arg(long, default_value = "10s", value_parser = parse_span)]
    chunk: Duration,
    /// Paced UDP datagrams per second.
    #[arg(long, default_value_t = 5000)]
    udp_rate: u64,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 512)]
    udp_size: usize,
    /// iperf3 TCP bit rate cap (iperf3 -b; 0: unlimited).
    #[arg(long, default_value = "200M")]
    tcp_bitrate: String,
    /// Control requests per second on each node.
    #[arg(long, default_value_t = 20)]
    churn_rate: u64,
    /// Lab name.
    #[arg(long, default_value = "vxsoak")]
    lab: String,
    /// Output directory [default: results/DATE-soak].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// "90s", "10m", "1h" or plain seconds.
fn parse_span(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s}: give a number with s, m or h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s}: give a number with s, m or h")),
    };
    secs_positive(secs).ok_or_else(|| format!("{s}: not a positive duration"))
}

fn secs_positive(s: f64) -> Option<Duration> {
    (s > 0.0)
        .then(|| Duration::try_from_secs_f64(s).ok())
        .flatten()
}

fn soak_main(a: SoakArgs) -> ExitCode {
    let opts = bench::soak::SoakOptions {
        duration: a.duration,
        interval: a.interval,
        warmup: a
            .warmup
            .unwrap_or((a.duration / 5).min(Duration::from_secs(120))),
        chunk: a.chunk,
        udp_rate: a.udp_rate,
        udp_size: a.udp_size,
        tcp_bitrate: a.tcp_bitrate,
        churn_rate: a.churn_rate,
        lab: a.lab,
        out: a.out.unwrap_or_else(bench::soak::default_out),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    match bench::soak::run(&opts) {
        Ok(outcome) => {
            print!("{}", outcome.report);
            println!("output in {}", opts.out.display());
            if outcome.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("vxbench soak: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone)]
struct Systems(Vec<System>);

fn parse_systems(s: &str) -> Result<Systems, String> {
    systems::parse_list(s).map(Systems)
}

fn parse_senders(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=udp::MAX_SENDERS).contains(&n) => Ok(n),
        _ => Err(format!("{s}: give 1 to {} senders", udp::MAX_SENDERS)),
    }
}

#[derive(Clone)]
struct Tests(Vec<&'static str>);

fn parse_tests(s: &str) -> Result<Tests, String> {
    bench::parse_tests(s).map(Tests)
}

fn parse_trial(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.2..=60.0).contains(&x) => Ok(x),
        _ => Err(format!("{s}: give seconds from 0.2 to 60")),
    }
}

fn parse_loss(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x < 100.0 => Ok(x),
        _ => Err(format!("{s}: give a percentage above 0 and below 100")),
    }
}

fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{s}: not a duration in seconds"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.helper {
        Some(Helper::Soak(a)) => soak_main(a),
        Some(Helper::Updates(a)) => updates_main(a),
        Some(Helper::Profile(a)) => profile_main(a),
        Some(h) => helper(h),
        None => bench_main(cli),
    }
}

fn helper(h: Helper) -> ExitCode {
    let result: Result<String, String> = (|| match h {
        Helper::UdpSend {
            to,
            size,
            duration,
            rate,
            batch,
        } => {
            let r = udp::send(&udp::SendOptions {
                to,
                size,
                duration: secs(duration)?,
                rate,
                batch,
            })
            .map_err(|e| format!("udp-send to {to}: {e}"))?;
            Ok(serde_json::to_string(&r).expect("JSON"))
        }
        Helper::UdpRecv {
            listen,
            limit,
            idle,
            batch,
        } => {
            let r = udp::recv(
                &udp::RecvOptions {
                    listen,
                    limit: secs(limit)?,
                    idle: secs(idle)?,
                    batch,
                },
                ready,
            )
            .map_err(|e| format!("udp-recv on {listen}: {e}"))?;
            Ok(serde_json::to_string(&r).expect("JSON"))
        }
        Helper::TcpEchoServer { listen, limit } => {
            let n = rr::echo_server(listen, secs(limit)?, ready)
                .map_err(|e| format!("tcp-echo-server on {listen}: {e}"))?;
            Ok(format!("{{\"echoed\":{n}}}"))
        }
        Helper::Soak(_) => Err("soak is not a helper".into()),
        Helper::Updates(_) => Err("updates is not a helper".into()),
        Helper::Profile(_) => Err("profile is not a helper".into()),
        Helper::TcpRr { to, count, warmup } => {
            let r = rr::client(to, count, warmup, Duration::from_secs(3))
                .map_err(|e| format!("tcp-rr to {to}: {e}"))?;
            Ok(serde_json::to_string(&r).expect("JSON"))
        }
    })();
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vxbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Tells the caller the helper listens.
fn ready() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
}

fn bench_main(cli: Cli) -> ExitCode {
    let mut systems = match cli.systems {
        Some(s) => s.0,
        None => {
            let mut all = vec![Kind::Vxswitch, Kind::Kernel, Kind::Ovs, Kind::Plain];
            if let Err(e) = lab::ovs::check_installed() {
                eprintln!("vxbench: leaving ovs out: {e}");
                all.retain(|&k| k != Kind::Ovs);
            }
            all.into_iter().map(System::plain).collect()
        }
    };
    if let Err(e) = systems::attach_variants(&mut systems, &cli.variants) {
        eprintln!("vxbench: {e}");
        return ExitCode::FAILURE;
    }
    let duration = Duration::from_secs(cli.duration.max(1));
    let udp_duration = match cli.udp_duration.map(secs) {
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            eprintln!("vxbench: --udp-duration {e}");
            return ExitCode::FAILURE;
        }
        None => duration.min(Duration::from_secs(3)),
    };
    let mut tests = cli.tests.map_or_else(|| bench::TESTS.to_vec(), |t| t.0);
    if cli.udp_search && !tests.contains(&"udp64_max") {
        tests.push("udp64_max");
    }
    let tso = cli.tso == OnOff::On;
    let underlay_offload = cli.underlay_offload == OnOff::On;
    let mut switch_args = cli.switch_args;
    if cli.pin {
        switch_args.push("--pin".into());
    }
    let command = command_line();
    let opts = Options {
        systems,
        repeats: cli.repeats,
        duration,
        udp_duration,
        udp_rate: cli.udp_rate,
        udp_senders: cli.udp_senders,
        tests,
        udp_trial: Duration::from_secs_f64(cli.udp_trial),
        udp_search: search::Plan {
            max_loss_pct: cli.udp_max_loss,
            ..search::Plan::default()
        },
        pings: cli.pings,
        rr_count: cli.rr_count,
        tso,
        underlay_offload,
        workers: cli.workers,
        switch_args,
        port: cli.port,
        out: cli
            .out
            .unwrap_or_else(|| bench::default_out(tso, underlay_offload)),
        lab_prefix: cli.lab_prefix,
        command,
    };
    match bench::run(&opts) {
        Ok(outcome) => {
            println!();
            print!("{}", outcome.summary.table());
            println!(
                "\n{} in {:.0} s; results in {}/ (summary.md, summary.json, samples.json, chart.svg, meta.json)",
                if outcome.interrupted { "interrupted" } else { "done" },
                outcome.wall.as_secs_f64(),
                opts.out.display()
            );
            let failed = outcome.samples.iter().filter(|s| s.error.is_some()).count();
            if outcome.interrupted {
                ExitCode::from(130)
            } else if failed > 0 {
                eprintln!("vxbench: {failed} tests failed; their errors are in samples.json");
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("vxbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An argument as a shell would need it.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn updates_main(a: UpdatesArgs) -> ExitCode {
    let opts = bench::updates::UpdatesOptions {
        nodes: a.nodes,
        flows: a.flows,
        changes: a.changes.max(2),
        limit: a.limit,
        sustain: a.sustain,
        lab: a.lab,
    };
    match bench::updates::run(&opts) {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).expect("JSON");
            println!("{text}");
            if let Some(out) = a.out {
                if let Err(e) = std::fs::write(&out, text) {
                    eprintln!("vxbench updates: cannot write {}: {e}", out.display());
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vxbench updates: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn variants_and_senders_parse_from_the_command_line() {
        let cli = Cli::try_parse_from([
            "vxbench",
            "--systems",
            "vxswitch,vxswitch:udp,kernel",
            "--variant",
            "udp=--underlay-gso udp",
            "--variant",
            "spin=--spin-us 50 --log-file '/tmp/a b'",
            "--udp-senders",
            "4",
        ])
        .unwrap();
        let mut systems = cli.systems.unwrap().0;
        assert_eq!(cli.udp_senders, 4);
        assert_eq!(cli.variants.len(), 2);
        assert_eq!(
            cli.variants[1].1,
            ["--spin-us", "50", "--log-file", "/tmp/a b"]
        );
        let e = systems::attach_variants(&mut systems, &cli.variants).unwrap_err();
        assert!(e.contains("--variant spin is defined"), "{e}");
        systems::attach_variants(&mut systems, &cli.variants[..1]).unwrap();
        assert_eq!(systems[1].args, ["--underlay-gso", "udp"]);
        assert!(Cli::try_parse_from(["vxbench", "--udp-senders", "0"]).is_err());
        let p = Cli::try_parse_from([
            "vxbench",
            "profile",
            "--systems",
            "vxswitch:tap,kernel",
            "--variant",
            "tap=--underlay-gso tap",
            "--rounds",
            "1",
        ])
        .unwrap();
        let Some(Helper::Profile(a)) = p.helper else {
            panic!("not the profile subcommand");
        };
        assert_eq!(a.systems.0[0].name(), "vxswitch:tap");
        assert_eq!(a.duration, 10);
    }
}
