//! vxbench: the same two-node lab built with each system in turn (vxswitch, the kernel's vxlan,
//! Open vSwitch's userspace datapath, plain routing), the same tests between its two pods, the
//! systems interleaved round by round, and medians reported.
//!
//! A round brings up one lab per system (`Lab::up`, 2 nodes × 1 pod, IPv6 off in the pods),
//! runs the chosen tests ([`TESTS`] by default, [`EXTRA_TESTS`] on request) from pod n1p1 to
//! pod n2p1, and tears the lab down — always, also when a test fails or the user presses Ctrl-C
//! (a flag every wait checks; every wait is bounded).
//! Everything lands in the output directory: samples.json (written after every lab, so an
//! interrupted run keeps what it measured), summary.json, summary.md, chart.svg, meta.json.

pub mod measure;
pub mod proc;
pub mod profile;
pub mod report;
pub mod rr;
pub mod search;
pub mod soak;
pub mod stats;
pub mod svg;
pub mod sys;
pub mod systems;
pub mod udp;
pub mod updates;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::lab::{self, Kind, Lab, LabError};
use measure::{Ctx, Metrics};
use report::{Sample, Summary};
use systems::System;

/// Everything that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{cmdline}` {reason}")]
    Command { cmdline: String, reason: String },
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Bad(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// In the order each round runs them; vxswitch variants are systems of their own.
    pub systems: Vec<System>,
    pub repeats: usize,
    /// iperf3 seconds.
    pub duration: Duration,
    pub udp_duration: Duration,
    /// Pace the UDP sender (datagrams/s, all senders together); None: as fast as it goes.
    pub udp_rate: Option<u64>,
    /// Concurrent UDP senders in the client pod, each to its own receiver in the server pod.
    pub udp_senders: usize,
    /// The tests, in the order they run in every lab (names of [`TESTS`] and [`EXTRA_TESTS`]).
    pub tests: Vec<&'static str>,
    /// Seconds of each trial of the UDP rate search (`udp64_max`).
    pub udp_trial: Duration,
    /// How the UDP rate search runs (its loss limit above all).
    pub udp_search: search::Plan,
    pub pings: u32,
    pub rr_count: usize,
    /// TSO in the pods (off: TX checksum offload off, MTU-sized frames everywhere).
    pub tso: bool,
    /// TX checksum offload on the underlay veths (see [`LabSpec::underlay_offload`]).
    pub underlay_offload: bool,
    /// vxswitchd worker threads.
    pub workers: Option<usize>,
    /// More vxswitchd arguments (e.g. `--pin`).
    pub switch_args: Vec<String>,
    pub port: u16,
    pub out: PathBuf,
    /// Prefix of the labs' names (`b` gives bvx, bk, bo, bp).
    pub lab_prefix: String,
    /// The command line, for meta.json and the chart.
    pub command: String,
}

/// The tests every run has by default, in the order they run in every lab.
pub const TESTS: [&str; 6] = ["ping", "tcp_rr", "tcp1", "tcp4", "udp64", "udp1400"];
/// Tests only run on request (`--tests`, `--udp-search`): `udp64_max` searches for the highest
/// paced 64-byte UDP rate with less loss than the limit, up to 25 s per lab.
pub const EXTRA_TESTS: [&str; 1] = ["udp64_max"];

/// Every test vxbench knows, default ones first.
pub fn known_tests() -> impl Iterator<Item = &'static str> {
    TESTS.into_iter().chain(EXTRA_TESTS)
}

/// A comma-separated list of test names, checked: each known, none twice, at least one.
pub fn parse_tests(list: &str) -> Result<Vec<&'static str>, String> {
    let mut tests: Vec<&'static str> = Vec::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(format!("{list:?}: an empty test name"));
        }
        let Some(known) = known_tests().find(|t| *t == name) else {
            return Err(format!(
                "unknown test {name:?}; the tests are {}",
                known_tests().collect::<Vec<_>>().join(", ")
            ));
        };
        if tests.contains(&known) {
            return Err(format!("{name} is listed twice"));
        }
        tests.push(known);
    }
    Ok(tests)
}

/// A pause between tests, for the last one's packets and timers to settle.
const SETTLE: Duration = Duration::from_millis(300);

/// The name of a system's lab: the prefix and a short tag (see [`systems::lab_names`]).
pub fn lab_name(prefix: &str, kind: Kind) -> String {
    systems::lab_names(prefix, &[System::plain(kind)]).remove(0)
}

/// Checks everything that can be checked before the first lab: root, programs, binaries, lab
/// names, output directory.
pub fn preflight(opts: &Options) -> Result<(), BenchError> {
    if !lab::is_root() {
        return Err(BenchError::Bad(
            "vxbench must run as root (it builds labs in network namespaces); try sudo".into(),
        ));
    }
    if opts.systems.is_empty() || opts.repeats == 0 || opts.tests.is_empty() {
        return Err(BenchError::Bad(
            "nothing to do: give at least one system, one round and one test".into(),
        ));
    }
    if let Some(t) = opts.tests.iter().find(|t| !known_tests().any(|k| k == **t)) {
        return Err(BenchError::Bad(format!("unknown test {t}")));
    }
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for (program, package) in [
        ("iperf3", "iperf3"),
        ("ping", "iputils-ping"),
        ("ss", "iproute2"),
        ("ip", "iproute2"),
        ("ethtool", "ethtool"),
    ] {
        if !path.iter().any(|d| d.join(program).is_file()) {
            return Err(BenchError::Bad(format!(
                "{program} is not on PATH; install the package {package} (scripts/deps does)"
            )));
        }
    }
    if opts.systems.iter().any(|s| s.kind == Kind::Ovs) {
        lab::ovs::check_installed()?;
    }
    if opts.systems.iter().any(|s| s.kind == Kind::Vxswitch) {
        lab::vxswitch::Bins::find()?;
    }
    if !(1..=udp::MAX_SENDERS).contains(&opts.udp_senders) {
        return Err(BenchError::Bad(format!(
            "{} UDP senders: use 1 to {}",
            opts.udp_senders,
            udp::MAX_SENDERS
        )));
    }
    for name in systems::lab_names(&opts.lab_prefix, &opts.systems) {
        lab::topo::validate_name(&name).map_err(|_| {
            BenchError::Bad(format!(
                "lab name {name:?} is not 1-8 characters a-z0-9: use a shorter --lab-prefix"
            ))
        })?;
        if Lab::list()?.iter().any(|l| l.name == name) {
            return Err(BenchError::Bad(format!(
                "lab {name} is already up (left by an interrupted run?); remove it with \
                 vxlab down --name {name}, or pick other names with --lab-prefix"
            )));
        }
    }
    std::fs::create_dir_all(&opts.out).map_err(|source| BenchError::Io {
        what: "cannot create the output directory",
        path: opts.out.clone(),
        source,
    })
}

/// What a finished (or interrupted) run produced.
pub struct Outcome {
    pub samples: Vec<Sample>,
    pub summary: Summary,
    pub interrupted: bool,
    pub wall: Duration,
}

/// Runs the whole benchmark and writes its files; progress goes to stderr as it happens.
pub fn run(opts: &Options) -> Result<Outcome, BenchError> {
    preflight(opts)?;
    sys::install_interrupt_handler().map_err(|source| BenchError::Io {
        what: "cannot install the Ctrl-C handler",
        path: PathBuf::from("-"),
        source,
    })?;
    let exe = std::env::current_exe().map_err(|source| BenchError::Io {
        what: "cannot find this program",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let started = SystemTime::now();
    let t0 = Instant::now();
    let names: Vec<String> = opts.systems.iter().map(System::name).collect();
    let labs = systems::lab_names(&opts.lab_prefix, &opts.systems);
    let mut meta = machine_meta(opts, started);
    eprintln!(
        "vxbench: {} x {} rounds (TSO {} in the pods, underlay offload {}), output in {}",
        names.join(", "),
        opts.repeats,
        on_off(opts.tso),
        on_off(opts.underlay_offload),
        opts.out.display()
    );
    let mut samples: Vec<Sample> = Vec::new();
    'rounds: for round in 1..=opts.repeats {
        for (system, lab_name) in opts.systems.iter().zip(&labs) {
            if sys::interrupted() {
                break 'rounds;
            }
            run_system(opts, &exe, system, lab_name, round, t0, &mut samples);
            write_json(&opts.out.join("samples.json"), &json!(samples))?;
        }
    }
    let interrupted = sys::interrupted();
    if interrupted {
        eprintln!("vxbench: interrupted; the lab is down, writing what was measured");
    }
    let wall = t0.elapsed();
    meta["finished"] = json!(timestamp(SystemTime::now()));
    meta["wall_s"] = json!(wall.as_secs_f64());
    meta["interrupted"] = json!(interrupted);
    let summary = Summary::new(&names, &samples);
    write_json(&opts.out.join("samples.json"), &json!(samples))?;
    write_json(&opts.out.join("summary.json"), &summary.to_json())?;
    write_json(&opts.out.join("meta.json"), &meta)?;
    write_text(&opts.out.join("summary.md"), &summary.markdown(&meta))?;
    let heading = svg::Heading {
        title: format!(
            "vxbench: medians of {} round{}, pod to pod across two nodes{}",
            opts.repeats,
            if opts.repeats == 1 { "" } else { "s" },
            if opts.tso { "" } else { ", TSO off" }
        ),
        setup: format!(
            "TSO {} in the pods, underlay offload {}{}",
            on_off(opts.tso),
            on_off(opts.underlay_offload),
            if opts.udp_senders > 1 {
                format!(", {} UDP senders", opts.udp_senders)
            } else {
                String::new()
            }
        ),
        machine: format!(
            "{} · {} · {} ({} CPUs) · Linux {}",
            meta["date"].as_str().unwrap_or("?"),
            meta["hostname"].as_str().unwrap_or("?"),
            meta["cpu"].as_str().unwrap_or("?"),
            meta["nproc"],
            meta["kernel"].as_str().unwrap_or("?")
        ),
        command: opts.command.clone(),
    };
    write_text(&opts.out.join("chart.svg"), &svg::chart(&summary, &heading))?;
    Ok(Outcome {
        samples,
        summary,
        interrupted,
        wall,
    })
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Tears a lab down when dropped, and says so if that fails.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = Lab::teardown(&self.0) {
            eprintln!("vxbench: {e}");
        }
    }
}

/// One lab of one system: up, warm-up, every test, down. Failures become samples with an
/// error; the lab is torn down whatever happens.
fn run_system(
    opts: &Options,
    exe: &Path,
    which: &System,
    name: &str,
    round: usize,
    t0: Instant,
    samples: &mut Vec<Sample>,
) {
    let system = which.name();
    let tag = format!("[{round}/{} {system}]", opts.repeats);
    let mut record = |test: &str, started: Instant, result: Result<Figures, BenchError>| {
        let (metrics, note, error) = match result {
            Ok((m, note)) => (m, note, None),
            Err(e) => (Metrics::new(), None, Some(e.to_string())),
        };
        let secs = started.elapsed().as_secs_f64();
        match &error {
            None => eprintln!(
                "{tag:<16} {test:<8} {}  ({secs:.1} s)",
                describe(test, &metrics)
            ),
            Some(e) => eprintln!("{tag:<16} {test:<8} FAILED: {e}"),
        }
        samples.push(Sample {
            round,
            system: system.clone(),
            test: test.to_string(),
            at_s: (started - t0).as_secs_f64(),
            secs,
            metrics,
            note,
            error,
        });
    };

    let name = name.to_string();
    let spec = systems::two_node_lab(
        name.clone(),
        which,
        opts.port,
        opts.workers,
        &opts.switch_args,
        opts.tso,
        opts.underlay_offload,
    );
    let started = Instant::now();
    let lab = match Lab::up(&spec) {
        Ok(lab) => lab,
        Err(e) => {
            record("lab", started, Err(e.into()));
            return;
        }
    };
    let _down = Down(name);
    record(
        "lab",
        started,
        Ok((
            Metrics::from([("lab_up_s".to_string(), started.elapsed().as_secs_f64())]),
            None,
        )),
    );
    let (Some(client), Some(server)) = (lab.pod("n1p1"), lab.pod("n2p1")) else {
        record(
            "lab",
            started,
            Err(BenchError::Bad("the lab has no pods n1p1 and n2p1".into())),
        );
        return;
    };
    let ctx = Ctx {
        lab: &lab,
        client_ns: client.netns.clone(),
        server_ns: server.netns.clone(),
        server_ip: server.ip,
        exe: exe.to_path_buf(),
        duration: opts.duration,
        udp_duration: opts.udp_duration,
        udp_rate: opts.udp_rate,
        udp_senders: opts.udp_senders,
        udp_trial: opts.udp_trial,
        udp_search: opts.udp_search.clone(),
        pings: opts.pings,
        rr_count: opts.rr_count,
    };
    let started = Instant::now();
    if let Err(e) = measure::warmup(&ctx) {
        record("warmup", started, Err(e));
        return;
    }
    for &test in &opts.tests {
        if sys::interrupted() {
            return;
        }
        let started = Instant::now();
        let plain = |r: Result<Metrics, BenchError>| r.map(|m| (m, None));
        let result = match test {
            "ping" => plain(measure::ping(&ctx)),
            "tcp_rr" => plain(measure::tcp_rr(&ctx)),
            "tcp1" => plain(measure::tcp(&ctx, 1)),
            "tcp4" => plain(measure::tcp(&ctx, 4)),
            "udp64" => plain(measure::udp(&ctx, 64)),
            "udp1400" => plain(measure::udp(&ctx, 1400)),
            "udp64_max" => udp_max(&ctx, &tag, 64),
            other => Err(BenchError::Bad(format!("unknown test {other}"))),
        };
        if matches!(result, Err(BenchError::Interrupted)) {
            return;
        }
        record(test, started, result);
        std::thread::sleep(SETTLE);
    }
}

/// A test's figures, and a note for samples.json.
type Figures = (Metrics, Option<String>);

/// The UDP rate search of a lab, each trial on a progress line as it ends; the note lists
/// every trial and why the search stopped.
fn udp_max(ctx: &Ctx, tag: &str, size: usize) -> Result<Figures, BenchError> {
    let test = format!("udp{size}_max");
    let mut n = 0;
    let (m, found) = measure::udp_max(ctx, size, &mut |t, v| {
        n += 1;
        eprintln!(
            "{tag:<16} {test:<8}   trial {n}: {}",
            search::describe_trial(t, v)
        );
    })?;
    eprintln!("{tag:<16} {test:<8}   {}", found.reason());
    Ok((m, Some(found.note())))
}

/// One progress line's figures.
fn describe(test: &str, m: &Metrics) -> String {
    let g = |k: &str| m.get(k).copied();
    let f = |x: Option<f64>| x.map_or("-".to_string(), report::fmt_num);
    match test {
        "lab" => format!("up in {} s", f(g("lab_up_s"))),
        "ping" => format!(
            "p50 {} ms, p99 {} ms",
            f(g("ping_p50_ms")),
            f(g("ping_p99_ms"))
        ),
        "tcp_rr" => format!(
            "p50 {} ms, p99 {} ms",
            f(g("tcp_rr_p50_ms")),
            f(g("tcp_rr_p99_ms"))
        ),
        t if t.starts_with("tcp") => {
            let cpu = g(&format!("{t}_cpu_s_per_gbit"))
                .map(|c| format!(", switch {} CPU-s/Gb", report::fmt_num(c)))
                .unwrap_or_default();
            format!(
                "{} Gb/s, {} retransmits{cpu}",
                f(g(&format!("{t}_gbps"))),
                f(g(&format!("{t}_retrans")))
            )
        }
        t if t.ends_with("_max") => {
            let at = g(&format!("{t}_loss_pct"))
                .map(|l| format!(" (loss {} %)", report::fmt_num(l)))
                .unwrap_or_default();
            let trials = match g(&format!("{t}_trials")) {
                Some(1.0) => "1 trial".to_string(),
                Some(n) => format!("{n:.0} trials"),
                None => "- trials".to_string(),
            };
            format!(
                "highest rate under the loss limit: received {} pps{at}, {trials}",
                f(g(&format!("{t}_pps")))
            )
        }
        t if t.starts_with("udp") => format!(
            "received {} pps of {} offered, loss {} %",
            f(g(&format!("{t}_rx_pps"))),
            f(g(&format!("{t}_tx_pps"))),
            f(g(&format!("{t}_loss_pct")))
        ),
        _ => String::new(),
    }
}

fn write_text(path: &Path, text: &str) -> Result<(), BenchError> {
    let tmp = path.with_extension("tmp");
    std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| BenchError::Io {
            what: "cannot write",
            path: path.to_path_buf(),
            source,
        })
}

fn write_json(path: &Path, v: &Value) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(v).expect("JSON value");
    write_text(path, &(text + "\n"))
}

/// The default output directory: `results/YYYY-MM-DD-HOST`, with `-tso-off` and
/// `-underlay-offload-off` appended when those differ from the defaults.
pub fn default_out(tso: bool, underlay_offload: bool) -> PathBuf {
    let mut name = format!("{}-{}", date(SystemTime::now()), hostname());
    if !tso {
        name.push_str("-tso-off");
    }
    if !underlay_offload {
        name.push_str("-underlay-offload-off");
    }
    Path::new("results").join(name)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".to_string())
}

/// The machine and the run, for meta.json, summary.md and the chart.
fn machine_meta(opts: &Options, started: SystemTime) -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| (kib / (1 << 20) as f64 * 10.0).round() / 10.0);
    let first_line = |program: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new(program);
        if program == "git" {
            // The commit of the source this program was built from.
            cmd.arg("-C").arg(env!("CARGO_MANIFEST_DIR"));
        }
        cmd.args(args);
        proc::run(&mut cmd, Duration::from_secs(5))
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| o.stdout.lines().next().map(str::to_string))
            .unwrap_or_else(|| "-".into())
    };
    let git = {
        let commit = first_line("git", &["rev-parse", "--short=12", "HEAD"]);
        let dirty = first_line("git", &["status", "--porcelain", "--untracked-files=no"]);
        if commit == "-" || dirty == "-" {
            commit
        } else {
            format!("{commit} (with local changes)")
        }
    };
    json!({
        "date": date(started),
        "started": timestamp(started),
        "hostname": hostname(),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": cpu,
        "mem_gib": mem_gib,
        "command": opts.command,
        "git_commit": git,
        "iperf3": first_line("iperf3", &["--version"]),
        "ovs": if opts.systems.iter().any(|s| s.kind == Kind::Ovs) { first_line("ovs-vswitchd", &["--version"]) } else { "-".into() },
        "systems": opts.systems.iter().map(System::name).collect::<Vec<_>>(),
        "variants": opts.systems.iter().filter(|s| s.variant.is_some()).map(|s| (s.name(), json!(s.args))).collect::<serde_json::Map<_, _>>(),
        "udp_senders": opts.udp_senders,
        "repeats": opts.repeats,
        "tso": opts.tso,
        "underlay_offload": opts.underlay_offload,
        "duration_s": opts.duration.as_secs_f64(),
        "udp_duration_s": opts.udp_duration.as_secs_f64(),
        "udp_rate_pps": opts.udp_rate,
        "pings": opts.pings,
        "rr_count": opts.rr_count,
        "workers": opts.workers,
        "switch_args": opts.switch_args,
        "tests": opts.tests,
        "udp_search": opts.tests.iter().any(|t| EXTRA_TESTS.contains(t)).then(|| json!({
            "trial_s": opts.udp_trial.as_secs_f64(),
            "max_loss_pct": opts.udp_search.max_loss_pct,
            "start_pps": opts.udp_search.start,
            "precision": opts.udp_search.precision,
            "max_trials": opts.udp_search.max_trials,
            "budget_s": opts.udp_search.budget.as_secs_f64(),
        })),
    })
}

/// `YYYY-MM-DD` (UTC).
pub fn date(t: SystemTime) -> String {
    let (y, m, d, _) = civil(t);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn timestamp(t: SystemTime) -> String {
    let (y, m, d, secs) = civil(t);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Year, month, day and second of the day (UTC) of a time (Howard Hinnant's civil_from_days).
fn civil(t: SystemTime) -> (i64, u32, u32, u64) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs % 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(date(at(0)), "1970-01-01");
        assert_eq!(timestamp(at(951_782_400 + 3_723)), "2000-02-29T01:02:03Z");
        assert_eq!(date(at(1_798_675_200)), "2026-12-31");
        assert_eq!(date(at(1_798_761_600)), "2027-01-01");
    }

    #[test]
    fn lab_names_are_short_and_distinct() {
        let names: Vec<String> = Kind::ALL.iter().map(|&k| lab_name("b", k)).collect();
        assert_eq!(names, ["bvx", "bk", "bo", "bp"]);
        for n in names {
            lab::topo::validate_name(&n).unwrap();
        }
    }

    #[test]
    fn progress_lines_name_the_figures() {
        let m = Metrics::from([
            ("tcp4_gbps".to_string(), 9.123),
            ("tcp4_retrans".to_string(), 12.0),
            ("tcp4_cpu_s_per_gbit".to_string(), 0.25),
        ]);
        assert_eq!(
            describe("tcp4", &m),
            "9.12 Gb/s, 12.0 retransmits, switch 0.250 CPU-s/Gb"
        );
        let m = Metrics::from([
            ("udp64_rx_pps".to_string(), 400_000.0),
            ("udp64_tx_pps".to_string(), 500_000.0),
            ("udp64_loss_pct".to_string(), 20.0),
        ]);
        assert_eq!(
            describe("udp64", &m),
            "received 400000 pps of 500000 offered, loss 20.0 %"
        );
        let m = Metrics::from([
            ("udp64_max_pps".to_string(), 78_125.0),
            ("udp64_max_loss_pct".to_string(), 0.4),
            ("udp64_max_trials".to_string(), 9.0),
        ]);
        assert_eq!(
            describe("udp64_max", &m),
            "highest rate under the loss limit: received 78125 pps (loss 0.400 %), 9 trials"
        );
    }

    #[test]
    fn test_lists_are_checked() {
        assert_eq!(parse_tests("udp64_max").unwrap(), ["udp64_max"]);
        assert_eq!(
            parse_tests("udp64, ping").unwrap(),
            ["udp64", "ping"],
            "in the order given"
        );
        let e = parse_tests("udp64,udp99").unwrap_err();
        assert!(
            e.contains("unknown test \"udp99\"")
                && e.contains("ping, tcp_rr, tcp1, tcp4, udp64, udp1400, udp64_max"),
            "{e}"
        );
        assert!(parse_tests("ping,ping")
            .unwrap_err()
            .contains("listed twice"));
        assert!(parse_tests("ping,").unwrap_err().contains("empty"));
        assert!(parse_tests("").unwrap_err().contains("empty"));
    }
}
