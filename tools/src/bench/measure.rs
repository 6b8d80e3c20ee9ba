//! The tests, each between the client pod n1p1 and the server pod n2p1 of a running lab. Each
//! returns its figures under the names summary.json uses (see [`super::report::METRICS`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::proc::{self, Background};
use super::rr::RrReport;
use super::search::{self, Found, Plan, Trial, Verdict};
use super::udp::{self, RecvReport, SendReport};
use super::{stats, sys, BenchError};
use crate::lab::Lab;

/// Figures of one test, by summary key.
pub type Metrics = BTreeMap<String, f64>;

const IPERF_PORT: u16 = 5201;
const RR_PORT: u16 = 7001;
const UDP_PORT: u16 = 7002;
/// How long a server may take to listen.
const READY: Duration = Duration::from_secs(5);
/// Slack on top of a test's own duration before it is killed.
const SLACK: Duration = Duration::from_secs(15);
/// A pause between the trials of a rate search, for the last one's queues to drain.
const TRIAL_SETTLE: Duration = Duration::from_millis(200);

/// Where and how the tests run.
pub struct Ctx<'a> {
    pub lab: &'a Lab,
    pub client_ns: String,
    pub server_ns: String,
    pub server_ip: Ipv4Addr,
    /// This program, run inside the pods for the UDP and request/response tests.
    pub exe: PathBuf,
    pub duration: Duration,
    pub udp_duration: Duration,
    pub udp_rate: Option<u64>,
    /// Concurrent UDP senders, each to its own receiver (the rate is split among them).
    pub udp_senders: usize,
    /// Seconds of each trial of the UDP rate search.
    pub udp_trial: Duration,
    /// How the UDP rate search runs.
    pub udp_search: Plan,
    pub pings: u32,
    pub rr_count: usize,
}

impl Ctx<'_> {
    fn client(&self, program: &str) -> Command {
        proc::in_netns(&self.client_ns, program)
    }

    fn server(&self, program: &str) -> Command {
        proc::in_netns(&self.server_ns, program)
    }

    fn own(&self, ns: &str) -> Command {
        proc::in_netns(ns, &self.exe.display().to_string())
    }

    /// CPU seconds of the lab's userspace switches so far (None: it has none).
    fn switch_cpu(&self) -> Option<f64> {
        proc::cpu_seconds(&proc::switch_pids(self.lab))
    }
}

/// Pings until the first answer (at most 10 tries of 1 s): ARP, flow set-up and upcalls happen
/// here, not in a measurement. Fails if the server pod never answers.
pub fn warmup(ctx: &Ctx) -> Result<(), BenchError> {
    let ip = ctx.server_ip.to_string();
    for _ in 0..10 {
        let mut ping = ctx.client("ping");
        ping.args(["-n", "-c", "1", "-W", "1", &ip]);
        if proc::run(&mut ping, Duration::from_secs(5))?
            .status
            .success()
        {
            return Ok(());
        }
    }
    Err(BenchError::Bad(format!(
        "{} never answered a ping from {}",
        ip, ctx.client_ns
    )))
}

/// `ping -c N -i 0.01`: median and p99 round trip, and loss.
pub fn ping(ctx: &Ctx) -> Result<Metrics, BenchError> {
    let ip = ctx.server_ip.to_string();
    let n = ctx.pings.max(1).to_string();
    let mut cmd = ctx.client("ping");
    cmd.args(["-n", "-c", &n, "-i", "0.01", "-W", "2", "-w", "30", &ip]);
    let line = proc::cmdline(&cmd);
    let out = proc::run(&mut cmd, Duration::from_secs(40))?;
    let mut times = parse_ping_times(&out.stdout);
    if times.is_empty() {
        return out
            .ok(&line)
            .and(Err(BenchError::Bad(format!("no ping answers from {ip}"))));
    }
    let answered = times.len();
    stats::sort(&mut times);
    Ok(Metrics::from([
        ("ping_p50_ms".into(), stats::percentile_sorted(&times, 50.0)),
        ("ping_p99_ms".into(), stats::percentile_sorted(&times, 99.0)),
        (
            "ping_loss_pct".into(),
            udp::loss_pct(u64::from(ctx.pings.max(1)), answered as u64),
        ),
    ]))
}

/// The `time=X ms` of every answer in ping's output.
pub fn parse_ping_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter_map(|l| {
            let rest = &l[l.find("time=")? + 5..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// TCP request/response: our echo server in the server pod, `count` 1-byte round trips.
pub fn tcp_rr(ctx: &Ctx) -> Result<Metrics, BenchError> {
    let addr = format!("{}:{RR_PORT}", ctx.server_ip);
    let mut server = ctx.own(&ctx.server_ns);
    server.args(["tcp-echo-server", "--listen", &addr, "--limit", "60"]);
    let mut server = Background::spawn(&mut server)?;
    server.wait_line(|l| l == "ready", READY)?;
    let mut client = ctx.own(&ctx.client_ns);
    client.args([
        "tcp-rr",
        "--to",
        &addr,
        "--count",
        &ctx.rr_count.to_string(),
    ]);
    let line = proc::cmdline(&client);
    // Up to 2 s per round trip is allowed, but a sane path takes well under 10 ms.
    let limit = SLACK + Duration::from_millis(10) * ctx.rr_count as u32;
    let out = proc::run(&mut client, limit)?.ok(&line)?;
    let r: RrReport = parse_json_line(&out, &line)?;
    let _ = server.finish(Duration::from_secs(2));
    Ok(Metrics::from([
        ("tcp_rr_p50_ms".into(), r.p50_us / 1000.0),
        ("tcp_rr_p99_ms".into(), r.p99_us / 1000.0),
    ]))
}

/// iperf3 TCP with `streams` streams for the test duration: received Gb/s, retransmits, and
/// the switches' CPU seconds per gigabit received.
pub fn tcp(ctx: &Ctx, streams: u32) -> Result<Metrics, BenchError> {
    let ip = ctx.server_ip.to_string();
    let port = IPERF_PORT.to_string();
    let mut server = ctx.server("iperf3");
    server.args(["-s", "-1", "-B", &ip, "-p", &port]);
    let mut server = Background::spawn(&mut server)?;
    proc::wait_listening(&ctx.server_ns, IPERF_PORT, READY)?;
    let secs = ctx.duration.as_secs().max(1).to_string();
    let mut client = ctx.client("iperf3");
    client.args([
        "-c",
        &ip,
        "-p",
        &port,
        "-t",
        &secs,
        "-P",
        &streams.to_string(),
        "-J",
        "--connect-timeout",
        "3000",
    ]);
    let line = proc::cmdline(&client);
    let cpu0 = ctx.switch_cpu();
    let out = proc::run(&mut client, ctx.duration + SLACK)?;
    let cpu1 = ctx.switch_cpu();
    let _ = server.finish(Duration::from_secs(3));
    let r = parse_iperf(&out.stdout).map_err(|e| BenchError::Command {
        cmdline: line.clone(),
        reason: e,
    })?;
    out.ok(&line)?;
    let key = |m: &str| format!("tcp{streams}_{m}");
    let mut m = Metrics::from([
        (key("gbps"), r.bits_per_second / 1e9),
        (key("retrans"), r.retransmits),
    ]);
    let gbit = r.bytes * 8.0 / 1e9;
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        if gbit > 0.0 {
            m.insert(key("cpu_s_per_gbit"), (b - a) / gbit);
        }
    }
    Ok(m)
}

/// What iperf3's JSON says about a TCP test.
#[derive(Debug, Clone, PartialEq)]
pub struct IperfResult {
    pub bits_per_second: f64,
    pub bytes: f64,
    pub retransmits: f64,
}

/// Reads `end.sum_received` and `end.sum_sent.retransmits` of `iperf3 -J` output.
pub fn parse_iperf(json: &str) -> Result<IperfResult, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "printed no JSON ({e}): {}",
            json.chars().take(200).collect::<String>()
        )
    })?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(format!("reported: {e}"));
    }
    let num = |path: &[&str]| {
        path.iter()
            .try_fold(&v, |v, k| v.get(k))
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("JSON has no {}", path.join(".")))
    };
    Ok(IperfResult {
        bits_per_second: num(&["end", "sum_received", "bits_per_second"])?,
        bytes: num(&["end", "sum_received", "bytes"])?,
        retransmits: num(&["end", "sum_sent", "retransmits"]).unwrap_or(0.0),
    })
}

/// UDP with `size`-byte payloads from our batching sender, as fast as it goes (or paced):
/// offered and received packets/s, loss, received payload Gb/s, and the switches' CPU seconds
/// per million packets received.
pub fn udp(ctx: &Ctx, size: usize) -> Result<Metrics, BenchError> {
    let r = udp_run(ctx, size, ctx.udp_duration, ctx.udp_rate)?;
    let key = |m: &str| format!("udp{size}_{m}");
    let mut m = Metrics::from([
        (key("tx_pps"), r.tx_pps),
        (key("rx_pps"), r.rx_pps()),
        (key("loss_pct"), r.loss_pct()),
        (key("rx_gbps"), r.rx_pps() * size as f64 * 8.0 / 1e9),
    ]);
    if let Some(cpu) = r.switch_cpu_s {
        if r.received > 0 {
            m.insert(key("cpu_s_per_mpkt"), cpu / (r.received as f64 / 1e6));
        }
    }
    Ok(m)
}

/// The highest paced rate of `size`-byte UDP the lab forwards with less loss than the plan
/// allows ([`search::search`], trials of `ctx.udp_trial`): the received packets/s, offered
/// packets/s and loss of the best trial (0 packets/s if none passed), and the number of trials.
/// `progress` hears of every trial as it ends.
pub fn udp_max(
    ctx: &Ctx,
    size: usize,
    progress: &mut dyn FnMut(&Trial, Verdict),
) -> Result<(Metrics, Found), BenchError> {
    let mut first = true;
    let found = search::search(&ctx.udp_search, |rate| {
        if !first {
            std::thread::sleep(TRIAL_SETTLE);
        }
        first = false;
        if sys::interrupted() {
            return Err(BenchError::Interrupted);
        }
        let r = udp_run(ctx, size, ctx.udp_trial, rate)?;
        let t = Trial {
            rate,
            tx_pps: r.tx_pps,
            rx_pps: r.rx_pps(),
            loss_pct: r.loss_pct(),
        };
        progress(&t, search::verdict(&ctx.udp_search, &t));
        Ok(t)
    })?;
    let key = |m: &str| format!("udp{size}_max_{m}");
    let mut m = Metrics::from([
        (key("pps"), found.best().map_or(0.0, |b| b.rx_pps)),
        (key("trials"), found.trials.len() as f64),
    ]);
    if let Some(b) = found.best() {
        m.insert(key("tx_pps"), b.tx_pps);
        m.insert(key("loss_pct"), b.loss_pct);
    }
    Ok((m, found))
}

/// What one UDP run measured, summed over its sender/receiver pairs.
struct UdpRun {
    /// Datagrams the senders' kernels accepted.
    sent: u64,
    /// Datagrams/s offered: the sum of each sender's rate.
    tx_pps: f64,
    /// Datagrams/s that arrived: each receiver's count over its sender's sending time, summed.
    rx_pps: f64,
    received: u64,
    /// CPU seconds the lab's userspace switches spent meanwhile (None: it has none).
    switch_cpu_s: Option<f64>,
}

impl UdpRun {
    /// Datagrams that arrived per second of sending.
    fn rx_pps(&self) -> f64 {
        self.rx_pps
    }

    fn loss_pct(&self) -> f64 {
        udp::loss_pct(self.sent, self.received)
    }

    /// Sums the reports of the pairs (sender i sent to receiver i).
    fn sum(pairs: &[(SendReport, RecvReport)], switch_cpu_s: Option<f64>) -> UdpRun {
        UdpRun {
            sent: pairs.iter().map(|(s, _)| s.sent).sum(),
            tx_pps: pairs.iter().map(|(s, _)| s.pps).sum(),
            rx_pps: pairs.iter().map(|(s, r)| r.received as f64 / s.secs).sum(),
            received: pairs.iter().map(|(_, r)| r.received).sum(),
            switch_cpu_s,
        }
    }
}

/// The rate each of `senders` senders is paced at so that together they offer `rate`.
pub fn split_rate(rate: Option<u64>, senders: usize) -> Option<u64> {
    let n = senders.max(1) as u64;
    rate.map(|r| r.div_ceil(n).max(1))
}

/// For each of `ctx.udp_senders` pairs, our receiver in the server pod on its own port
/// (UDP_PORT + i), then all the senders at once in the client pod (each from its own source
/// port) for `duration`, together paced at `rate` datagrams/s (None: each as fast as it goes);
/// the sums.
fn udp_run(
    ctx: &Ctx,
    size: usize,
    duration: Duration,
    rate: Option<u64>,
) -> Result<UdpRun, BenchError> {
    let senders = ctx.udp_senders.max(1);
    let dur = duration.as_secs_f64().to_string();
    let limit = duration + Duration::from_secs(5);
    let addrs: Vec<String> = (0..senders)
        .map(|i| format!("{}:{}", ctx.server_ip, UDP_PORT + i as u16))
        .collect();
    let mut receivers = Vec::with_capacity(senders);
    for addr in &addrs {
        let mut recv = ctx.own(&ctx.server_ns);
        recv.args([
            "udp-recv",
            "--listen",
            addr,
            "--limit",
            &limit.as_secs_f64().to_string(),
        ]);
        let mut receiver = Background::spawn(&mut recv)?;
        receiver.wait_line(|l| l == "ready", READY)?;
        receivers.push(receiver);
    }

    let each = split_rate(rate, senders);
    let started = Instant::now();
    let cpu0 = ctx.switch_cpu();
    let mut running = Vec::with_capacity(senders);
    for addr in &addrs {
        let mut send = ctx.own(&ctx.client_ns);
        send.args([
            "udp-send",
            "--to",
            addr,
            "--size",
            &size.to_string(),
            "--duration",
            &dur,
        ]);
        if let Some(rate) = each {
            send.args(["--rate", &rate.to_string()]);
        }
        running.push(Background::spawn(&mut send)?);
    }
    let mut sent = Vec::with_capacity(senders);
    for mut sender in running {
        let left = (duration + SLACK).saturating_sub(started.elapsed());
        let line = sender.cmdline().to_string();
        let out = sender.finish(left)?.ok(&line)?;
        let report: SendReport = parse_json_line(&out, &line)?;
        if report.secs <= 0.0 {
            return Err(BenchError::Bad(format!(
                "the sender ran no time: {report:?}"
            )));
        }
        sent.push(report);
    }
    let mut pairs = Vec::with_capacity(senders);
    for (mut receiver, s) in receivers.into_iter().zip(sent) {
        let left = (limit + Duration::from_secs(3)).saturating_sub(started.elapsed());
        let line = receiver.cmdline().to_string();
        let out = receiver.finish(left)?.ok(&line)?;
        let got: RecvReport = parse_json_line(&out, &line)?;
        pairs.push((s, got));
    }
    let cpu1 = ctx.switch_cpu();
    Ok(UdpRun::sum(&pairs, cpu0.zip(cpu1).map(|(a, b)| b - a)))
}

/// The last line of `out` that parses as `T`.
fn parse_json_line<T: serde::de::DeserializeOwned>(
    out: &str,
    cmdline: &str,
) -> Result<T, BenchError> {
    out.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| BenchError::Command {
            cmdline: cmdline.to_string(),
            reason: format!("printed no result: {}", out.trim()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_senders_add_up() {
        assert_eq!(split_rate(None, 4), None);
        assert_eq!(split_rate(Some(100_000), 4), Some(25_000));
        assert_eq!(split_rate(Some(10), 3), Some(4));
        assert_eq!(split_rate(Some(1), 4), Some(1));
        assert_eq!(split_rate(Some(7), 0), Some(7));
        let pair = |sent: u64, secs: f64, received: u64| {
            (
                SendReport {
                    sent,
                    secs,
                    pps: sent as f64 / secs,
                    errors: 0,
                },
                RecvReport {
                    received,
                    bytes: received * 64,
                    max_seq: None,
                    reordered: 0,
                    fin_sent: Some(sent),
                    secs,
                    stopped: "fin".into(),
                },
            )
        };
        let r = UdpRun::sum(&[pair(1000, 1.0, 900), pair(3000, 2.0, 3000)], None);
        assert_eq!((r.sent, r.received), (4000, 3900));
        assert_eq!(r.tx_pps, 2500.0);
        assert_eq!(r.rx_pps(), 2400.0);
        assert!((r.loss_pct() - 2.5).abs() < 1e-9);
    }

    #[test]
    fn ping_output_gives_its_times() {
        let out = "\
PING 10.1.2.2 (10.1.2.2) 56(84) bytes of data.
64 bytes from 10.1.2.2: icmp_seq=1 ttl=62 time=0.130 ms
64 bytes from 10.1.2.2: icmp_seq=2 ttl=62 time=1.35 ms

--- 10.1.2.2 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1023ms
rtt min/avg/max/mdev = 0.122/0.126/0.130/0.004 ms
";
        assert_eq!(parse_ping_times(out), vec![0.130, 1.35]);
    }

    #[test]
    fn iperf_json_gives_rate_bytes_and_retransmits() {
        let ok = r#"{"start":{},"intervals":[],"end":{"sum_sent":{"bytes":2000,"bits_per_second":1.5e9,"retransmits":7},
            "sum_received":{"bytes":1000,"bits_per_second":1.2e9}}}"#;
        assert_eq!(
            parse_iperf(ok).unwrap(),
            IperfResult {
                bits_per_second: 1.2e9,
                bytes: 1000.0,
                retransmits: 7.0
            }
        );
        let e = parse_iperf(r#"{"start":{},"error":"unable to connect to server"}"#).unwrap_err();
        assert!(e.contains("unable to connect"), "{e}");
        assert!(parse_iperf("iperf3: error")
            .unwrap_err()
            .contains("no JSON"));
        assert!(parse_iperf(r#"{"end":{}}"#)
            .unwrap_err()
            .contains("end.sum_received.bits_per_second"));
    }
}
