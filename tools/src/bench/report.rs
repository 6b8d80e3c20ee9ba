//! What a run leaves behind: every sample, the medians per system and their spread (lowest to
//! highest round), a markdown summary with ratios to the kernel, the terminal tables, and the
//! run's description.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::measure::Metrics;
use super::stats;

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Context, not a score (offered load, retransmits).
    Neither,
}

/// One figure of the summary.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its key in samples.json and summary.json.
    pub key: &'static str,
    pub label: &'static str,
    pub better: Better,
}

const fn m(key: &'static str, label: &'static str, better: Better) -> Metric {
    Metric { key, label, better }
}

/// Every figure, in the order tables show them.
pub const METRICS: &[Metric] = &[
    m("tcp1_gbps", "TCP 1 stream, Gb/s", Better::Higher),
    m("tcp4_gbps", "TCP 4 streams, Gb/s", Better::Higher),
    m(
        "udp64_rx_pps",
        "UDP 64 B received, packets/s",
        Better::Higher,
    ),
    m(
        "udp64_tx_pps",
        "UDP 64 B offered, packets/s",
        Better::Neither,
    ),
    m("udp64_loss_pct", "UDP 64 B loss, %", Better::Lower),
    m(
        "udp64_max_pps",
        "UDP 64 B highest rate under the loss limit, packets/s",
        Better::Higher,
    ),
    m(
        "udp64_max_loss_pct",
        "UDP 64 B loss at that rate, %",
        Better::Neither,
    ),
    m(
        "udp1400_rx_pps",
        "UDP 1400 B received, packets/s",
        Better::Higher,
    ),
    m(
        "udp1400_tx_pps",
        "UDP 1400 B offered, packets/s",
        Better::Neither,
    ),
    m("udp1400_loss_pct", "UDP 1400 B loss, %", Better::Lower),
    m(
        "udp1400_rx_gbps",
        "UDP 1400 B received payload, Gb/s",
        Better::Higher,
    ),
    m("ping_p50_ms", "ping median, ms", Better::Lower),
    m("ping_p99_ms", "ping p99, ms", Better::Lower),
    m(
        "tcp_rr_p50_ms",
        "TCP 1-byte request/response median, ms",
        Better::Lower,
    ),
    m(
        "tcp_rr_p99_ms",
        "TCP 1-byte request/response p99, ms",
        Better::Lower,
    ),
    m(
        "tcp1_cpu_s_per_gbit",
        "switch CPU-s per Gb, TCP 1 stream",
        Better::Lower,
    ),
    m(
        "tcp4_cpu_s_per_gbit",
        "switch CPU-s per Gb, TCP 4 streams",
        Better::Lower,
    ),
    m(
        "udp64_cpu_s_per_mpkt",
        "switch CPU-s per million UDP 64 B packets",
        Better::Lower,
    ),
    m("tcp1_retrans", "TCP 1 stream retransmits", Better::Neither),
    m("tcp4_retrans", "TCP 4 streams retransmits", Better::Neither),
    m("ping_loss_pct", "ping loss, %", Better::Lower),
    m("lab_up_s", "lab set-up, s", Better::Lower),
];

/// One test of one system in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// 1-based.
    pub round: usize,
    pub system: String,
    /// lab, warmup, ping, tcp_rr, tcp1, tcp4, udp64, udp1400, udp64_max.
    pub test: String,
    /// Seconds since the run started.
    pub at_s: f64,
    /// How long the test took.
    pub secs: f64,
    pub metrics: Metrics,
    /// How the figures came about, where that takes words (the trials of a rate search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every value of every figure per system, in the order the systems ran.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub systems: Vec<String>,
    values: BTreeMap<(String, String), Vec<f64>>,
}

impl Summary {
    pub fn new(systems: &[String], samples: &[Sample]) -> Summary {
        let mut s = Summary {
            systems: systems.to_vec(),
            values: BTreeMap::new(),
        };
        for sample in samples {
            for (k, &v) in &sample.metrics {
                if v.is_finite() {
                    s.values
                        .entry((sample.system.clone(), k.clone()))
                        .or_default()
                        .push(v);
                }
            }
        }
        s
    }

    /// Every value of a figure of a system, in round order.
    pub fn values(&self, system: &str, key: &str) -> &[f64] {
        self.values
            .get(&(system.to_string(), key.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn median(&self, system: &str, key: &str) -> Option<f64> {
        stats::median(self.values(system, key))
    }

    /// The lowest and highest value.
    pub fn range(&self, system: &str, key: &str) -> Option<(f64, f64)> {
        let v = self.values(system, key);
        let lo = v.iter().copied().reduce(f64::min)?;
        let hi = v.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }

    /// `{"SYSTEM": {"tcp1_gbps": median or null, ..., "tcp1_gbps_min": lowest round or null,
    /// "tcp1_gbps_max": highest round or null, ...}}`, every figure of [`METRICS`] present.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for sys in &self.systems {
            let mut figures = serde_json::Map::new();
            for metric in METRICS {
                figures.insert(metric.key.to_string(), json!(self.median(sys, metric.key)));
            }
            for metric in METRICS {
                let range = self.range(sys, metric.key);
                figures.insert(format!("{}_min", metric.key), json!(range.map(|r| r.0)));
                figures.insert(format!("{}_max", metric.key), json!(range.map(|r| r.1)));
            }
            out.insert(sys.clone(), Value::Object(figures));
        }
        Value::Object(out)
    }

    /// The figures with a value from any system, in [`METRICS`] order.
    fn measured(&self) -> impl Iterator<Item = &'static Metric> + '_ {
        METRICS.iter().filter(|metric| {
            self.systems
                .iter()
                .any(|s| !self.values(s, metric.key).is_empty())
        })
    }

    /// The spread table's rows: figure label, then per system "lowest–highest", with the
    /// half-range as a percentage of the median when there are several rounds.
    fn spread_rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header = vec!["spread (lowest–highest round)".to_string()];
        header.extend(self.systems.iter().cloned());
        let rows = self
            .measured()
            .map(|metric| {
                let mut row = vec![metric.label.to_string()];
                row.extend(self.systems.iter().map(|s| self.spread(s, metric.key)));
                row
            })
            .collect();
        (header, rows)
    }

    /// `lo–hi (±p %)` of a figure of a system, `-` without values.
    fn spread(&self, system: &str, key: &str) -> String {
        let (Some((lo, hi)), Some(med)) = (self.range(system, key), self.median(system, key))
        else {
            return "-".into();
        };
        let mut cell = format!("{}–{}", fmt_num(lo), fmt_num(hi));
        if self.values(system, key).len() > 1 && med != 0.0 {
            let _ = write!(
                cell,
                " (±{} %)",
                fmt_num((hi - lo) / 2.0 / med.abs() * 100.0)
            );
        }
        cell
    }

    /// The systems other than the kernel, if the kernel ran: the ratio columns.
    fn ratio_systems(&self) -> Vec<&String> {
        if self.systems.iter().any(|s| s == KERNEL) {
            self.systems.iter().filter(|s| *s != KERNEL).collect()
        } else {
            Vec::new()
        }
    }

    /// The table's rows: figure label, then per system "median (n)", then ratios to kernel.
    fn rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let ratio = self.ratio_systems();
        let mut header = vec!["figure".to_string()];
        header.extend(self.systems.iter().cloned());
        header.extend(ratio.iter().map(|s| format!("{s}/kernel")));
        let mut rows = Vec::new();
        for metric in self.measured() {
            let mut row = vec![metric.label.to_string()];
            for s in &self.systems {
                let n = self.values(s, metric.key).len();
                row.push(match self.median(s, metric.key) {
                    Some(x) => format!("{} ({n})", fmt_num(x)),
                    None => "-".into(),
                });
            }
            let kernel = self.median(KERNEL, metric.key);
            for s in &ratio {
                row.push(match (self.median(s, metric.key), kernel) {
                    (Some(x), Some(k)) if k != 0.0 => format!("{:.2}", x / k),
                    _ => "-".into(),
                });
            }
            rows.push(row);
        }
        (header, rows)
    }

    /// The tables for the terminal, columns aligned: medians with ratios, then the spread.
    pub fn table(&self) -> String {
        let (header, rows) = self.rows();
        let mut out = aligned(&header, &rows);
        let (header, rows) = self.spread_rows();
        if !rows.is_empty() {
            out.push('\n');
            out.push_str(&aligned(&header, &rows));
        }
        out
    }

    /// summary.md: the run, the table with ratios, the chart, definitions, every value.
    pub fn markdown(&self, meta: &Value) -> String {
        let s = |k: &str| meta[k].as_str().unwrap_or("?").to_string();
        let mut out = String::new();
        let _ = writeln!(out, "# vxbench: {} on {}\n", s("date"), s("hostname"));
        let _ = writeln!(out, "- Command: `{}`", s("command"));
        let _ = writeln!(
            out,
            "- Machine: {} ({}, {} CPUs, {} GiB), Linux {}",
            s("hostname"),
            s("cpu"),
            meta["nproc"],
            meta["mem_gib"],
            s("kernel")
        );
        let _ = writeln!(
            out,
            "- Commit: {}; iperf3: {}; Open vSwitch: {}",
            s("git_commit"),
            s("iperf3"),
            s("ovs")
        );
        let _ = writeln!(
            out,
            "- Started {} (UTC), wall time {:.0} s; {} rounds, systems interleaved ({}); TSO {} in \
             the pods; underlay TX checksum offload {}",
            s("started"),
            meta["wall_s"].as_f64().unwrap_or(0.0),
            meta["repeats"],
            self.systems.join(" "),
            if meta["tso"].as_bool().unwrap_or(true) { "on" } else { "off" },
            if meta["underlay_offload"].as_bool().unwrap_or(false) { "on" } else { "off" }
        );
        if let Some(line) = search_line(meta) {
            let _ = writeln!(out, "{line}");
        }
        if let Some(n) = meta
            .get("udp_senders")
            .and_then(Value::as_u64)
            .filter(|&n| n > 1)
        {
            let _ = writeln!(
                out,
                "- UDP: {n} senders at once, each to its own receiver; rates summed"
            );
        }
        if let Some(v) = meta.get("variants").and_then(Value::as_object) {
            for (name, args) in v {
                let args: Vec<&str> = args
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let _ = writeln!(out, "- {name}: vxswitchd with `{}`", args.join(" "));
            }
        }
        let _ = writeln!(
            out,
            "\nEach cell is the median over the rounds, with the number of rounds that gave a value in \
             parentheses; the last columns divide a system's median by the kernel's.\n"
        );
        let (header, rows) = self.rows();
        markdown_table(&mut out, &header, &rows);
        let (header, rows) = self.spread_rows();
        if !rows.is_empty() {
            let _ = writeln!(
                out,
                "\nThe spread: the lowest and the highest round, and in parentheses half that range \
                 as a percentage of the median.\n"
            );
            markdown_table(&mut out, &header, &rows);
        }
        out.push_str("\n![medians per system](chart.svg)\n\n");
        out.push_str(DEFINITIONS);
        out.push_str("\n## Every value, round by round\n\n");
        for metric in METRICS {
            let per: Vec<String> = self
                .systems
                .iter()
                .filter(|s| !self.values(s, metric.key).is_empty())
                .map(|s| {
                    let v: Vec<String> = self
                        .values(s, metric.key)
                        .iter()
                        .map(|x| fmt_num(*x))
                        .collect();
                    format!("{s} {}", v.join(", "))
                })
                .collect();
            if !per.is_empty() {
                let _ = writeln!(out, "- `{}`: {}", metric.key, per.join("; "));
            }
        }
        out
    }
}

/// A table for the terminal: the header, a rule, the rows; the first column left-aligned, the
/// others right-aligned.
fn aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                let _ = write!(l, "{c:<w$}");
            } else {
                let _ = write!(l, "  {c:>w$}");
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// A markdown table: the header, the alignment row (first column left, others right), the rows.
fn markdown_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
}

/// The UDP rate search's settings from meta.json, as a line of summary.md (None: no search ran).
fn search_line(meta: &Value) -> Option<String> {
    let u = meta.get("udp_search")?.as_object()?;
    let num = |k: &str| u.get(k).and_then(Value::as_f64).map_or("?".into(), fmt_num);
    Some(format!(
        "- UDP rate search (`udp64_max`): loss limit {} %; trials of {} s; ramp from {} packets/s, \
         doubling, then bisection until within {} %; at most {} trials and {} s per lab",
        num("max_loss_pct"),
        num("trial_s"),
        num("start_pps"),
        u.get("precision")
            .and_then(Value::as_f64)
            .map_or("?".into(), |p| fmt_num(p * 100.0)),
        u.get("max_trials")
            .and_then(Value::as_u64)
            .map_or("?".into(), |n| n.to_string()),
        num("budget_s")
    ))
}

/// The baseline of the ratio columns.
pub const KERNEL: &str = "kernel";

const DEFINITIONS: &str = "\
## What was measured

Two nodes (network namespaces joined by a veth underlay, 198.51.100.0/24), one pod on each;
client pod n1p1 (10.1.1.2), server pod n2p1 (10.1.2.2); every lab is built, measured and torn
down once per round.

- `vxswitch`: vxswitchd + vxagent per node; `kernel`: Linux vxlan + bridge as flannel sets it up
  (pod MTU 1450); `ovs`: Open vSwitch userspace datapath (netdev), its own ovsdb-server and
  ovs-vswitchd per node, VXLAN tunnel port, L3 flows (pod veths with TX checksum offload off);
  `plain`: no overlay, pod subnets routed over the underlay (pod MTU 1500), the upper bound.
- Underlay: with TX checksum offload on the underlay veths (vxbench's default), large frames
  cross the underlay whole and the receiver segments them, as between NICs with TSO and GRO
  (the reference test bed's set-up); with it off, the sending kernel segments every frame in
  software, which caps every system, the plain upper bound included, near the same rate.
- TCP: `iperf3 -t DURATION [-P 4]`, received rate and sender retransmits.
- UDP: vxbench's own sender (sendmmsg, 64 datagrams per call, as fast as it goes) and receiver
  (recvmmsg); offered = datagrams the sender's kernel accepted per second, received = datagrams
  that arrived / sending time, loss = 1 - received/offered. 64 B and 1400 B are UDP payload sizes.
  In the kernel and plain systems the whole path runs inside the sender's system calls (softirq
  on the sending CPU), so offered equals received there: the rate is the path's cost per packet.
  A userspace switch decouples the two; its loss is what it could not forward.
- UDP rate search (`udp64_max`, on request): the highest rate of 64 B datagrams the path
  forwards with less loss than the limit (1 % by default). One trial as fast as the sender goes;
  if it loses less than the limit, that rate is the answer (the path keeps up with the sender).
  Else paced trials from 25000 packets/s, doubling up to what the unpaced sender offered, until
  one fails, then bisection between the highest passing and the lowest failing rate. The figure
  is the received rate of the best passing trial (0 if even the lowest rate failed); a paced
  trial whose sender offered under 90 % of its rate counts, but bounds the search. Every trial
  of every search is in samples.json (`note`).
- Latency: `ping -i 0.01`, and 1-byte TCP request/response round trips over one connection
  (Nagle off); median and p99 (nearest rank).
- Switch CPU: user + system time of the userspace switch processes (vxswitchd, ovs-vswitchd of
  both nodes, from /proc/PID/stat) during the test, per gigabit received (TCP) or per million
  packets received (UDP). The kernel and plain systems do their work in softirq context, which no
  process is charged for: no figure.
";

/// A number for people: 3 significant digits, or an integer from 100 up.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// A short number for chart labels: 1.23, 12.3, 123, 12.3k, 1.23M.
pub fn fmt_short(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

fn trim(x: f64) -> String {
    let a = x.abs();
    let s = if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(round: usize, system: &str, test: &str, kv: &[(&str, f64)]) -> Sample {
        Sample {
            round,
            system: system.into(),
            test: test.into(),
            at_s: 0.0,
            secs: 1.0,
            metrics: kv.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            note: None,
            error: None,
        }
    }

    #[test]
    fn medians_ratios_and_every_documented_key() {
        let systems: Vec<String> = ["vxswitch", "kernel"].map(String::from).to_vec();
        let samples = vec![
            sample(1, "vxswitch", "tcp1", &[("tcp1_gbps", 4.0)]),
            sample(1, "kernel", "tcp1", &[("tcp1_gbps", 10.0)]),
            sample(2, "vxswitch", "tcp1", &[("tcp1_gbps", 6.0)]),
            sample(2, "kernel", "tcp1", &[("tcp1_gbps", 8.0)]),
            sample(3, "vxswitch", "tcp1", &[("tcp1_gbps", 5.0)]),
            sample(1, "kernel", "ping", &[("ping_p50_ms", 0.15)]),
        ];
        let s = Summary::new(&systems, &samples);
        assert_eq!(s.median("vxswitch", "tcp1_gbps"), Some(5.0));
        assert_eq!(s.median("kernel", "tcp1_gbps"), Some(9.0));
        assert_eq!(s.range("vxswitch", "tcp1_gbps"), Some((4.0, 6.0)));
        let j = s.to_json();
        for key in [
            "tcp1_gbps",
            "tcp4_gbps",
            "udp64_rx_pps",
            "udp64_loss_pct",
            "udp1400_rx_pps",
            "ping_p50_ms",
            "ping_p99_ms",
        ] {
            assert!(j["kernel"].get(key).is_some(), "{key}");
        }
        assert_eq!(j["kernel"]["tcp1_gbps"], 9.0);
        assert_eq!(j["vxswitch"]["ping_p50_ms"], Value::Null);
        let table = s.table();
        assert!(table.contains("vxswitch/kernel"), "{table}");
        assert!(
            table.contains("5.00 (3)") && table.contains("0.56"),
            "{table}"
        );
        let md = s.markdown(&json!({"date": "2026-01-02", "hostname": "h", "nproc": 2}));
        assert!(
            md.contains("| TCP 1 stream, Gb/s | 5.00 (3) | 9.00 (2) | 0.56 |"),
            "{md}"
        );
        assert!(md.contains("![medians per system](chart.svg)"));
        assert!(
            md.contains("- `tcp1_gbps`: vxswitch 4.00, 6.00, 5.00; kernel 10.0, 8.00"),
            "{md}"
        );
    }

    #[test]
    fn the_spread_is_in_every_output() {
        let systems: Vec<String> = ["vxswitch", "kernel"].map(String::from).to_vec();
        let max = |round, sys: &str, pps: f64| {
            sample(
                round,
                sys,
                "udp64_max",
                &[("udp64_max_pps", pps), ("udp64_max_loss_pct", 0.5)],
            )
        };
        let samples = vec![
            max(1, "vxswitch", 70_000.0),
            max(1, "kernel", 60_000.0),
            max(2, "vxswitch", 80_000.0),
            max(2, "kernel", 60_000.0),
            max(3, "vxswitch", 78_000.0),
            max(3, "kernel", 62_000.0),
            sample(1, "kernel", "tcp1", &[("tcp1_gbps", 9.0)]),
        ];
        let s = Summary::new(&systems, &samples);
        let j = s.to_json();
        assert_eq!(j["vxswitch"]["udp64_max_pps"], 78_000.0);
        assert_eq!(j["vxswitch"]["udp64_max_pps_min"], 70_000.0);
        assert_eq!(j["vxswitch"]["udp64_max_pps_max"], 80_000.0);
        assert_eq!(j["kernel"]["tcp1_gbps_min"], 9.0);
        assert_eq!(j["vxswitch"]["tcp1_gbps_max"], Value::Null);
        assert_eq!(j["kernel"]["udp64_rx_pps_min"], Value::Null);

        let table = s.table();
        assert!(
            table.contains("78000 (3)") && table.contains("1.30"),
            "{table}"
        );
        assert!(
            table.contains("spread (lowest–highest round)")
                && table.contains("70000–80000 (±6.41 %)")
                && table.contains("60000–62000 (±1.67 %)")
                && table.contains("9.00–9.00"),
            "{table}"
        );
        // Only measured figures get rows.
        assert!(!table.contains("TCP 4 streams"), "{table}");

        let meta = json!({
            "date": "2026-01-02",
            "hostname": "h",
            "nproc": 2,
            "udp_search": {"trial_s": 1.5, "max_loss_pct": 1.0, "start_pps": 25000,
                           "precision": 0.05, "max_trials": 12, "budget_s": 25.0},
        });
        let md = s.markdown(&meta);
        assert!(
            md.contains(
                "| UDP 64 B highest rate under the loss limit, packets/s | 78000 (3) | 60000 (3) \
                 | 1.30 |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| UDP 64 B highest rate under the loss limit, packets/s | 70000–80000 (±6.41 %) \
                 | 60000–62000 (±1.67 %) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("loss limit 1.00 %; trials of 1.50 s; ramp from 25000 packets/s"),
            "{md}"
        );
        assert!(md.contains("until within 5.00 %; at most 12 trials and 25.0 s per lab"));
        let md = s.markdown(&json!({"date": "2026-01-02", "hostname": "h", "nproc": 2}));
        assert!(
            !md.contains("UDP rate search (`udp64_max`): loss limit"),
            "{md}"
        );
        let md = s.markdown(&json!({"date": "2026-01-02", "hostname": "h", "nproc": 2,
            "udp_senders": 4, "variants": {"vxswitch:udp": ["--underlay-gso", "udp"]}}));
        assert!(
            md.contains("- UDP: 4 senders at once, each to its own receiver; rates summed")
                && md.contains("- vxswitch:udp: vxswitchd with `--underlay-gso udp`"),
            "{md}"
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(123456.7), "123457");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(1.2345), "1.23");
        assert_eq!(fmt_num(0.12345), "0.123");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_short(1_234_567.0), "1.23M");
        assert_eq!(fmt_short(412_345.0), "412k");
        assert_eq!(fmt_short(12_000.0), "12k");
        assert_eq!(fmt_short(9.5), "9.5");
        assert_eq!(fmt_short(0.120), "0.12");
    }
}
