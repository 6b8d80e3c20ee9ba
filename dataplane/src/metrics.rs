//! The Prometheus text endpoint (`vxswitchd --metrics ADDR:PORT`, off by default).
//!
//! Counters are read from every worker and summed at scrape time; the packet path never
//! touches a shared counter.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::counters::{DropReason, Event};
use crate::switch::Switch;

/// Renders every metric in the Prometheus text exposition format.
pub fn render(sw: &Switch, uptime_s: f64) -> String {
    let mut o = String::new();
    let stats = sw.stats();
    let workers = sw.worker_counters();
    let _ = writeln!(
        o,
        "# HELP vxswitch_table_version Version of the published tables."
    );
    let _ = writeln!(o, "# TYPE vxswitch_table_version gauge");
    let _ = writeln!(o, "vxswitch_table_version {}", stats.table_version);
    for (metric, help, f) in [
        ("rx_packets", "Frames received on a port.", 0),
        ("rx_bytes", "Bytes received on a port.", 1),
        ("tx_packets", "Frames sent on a port.", 2),
        ("tx_bytes", "Bytes sent on a port.", 3),
        ("tx_errors", "Frames a port could not send.", 4),
    ] {
        let _ = writeln!(o, "# HELP vxswitch_port_{metric}_total {help}");
        let _ = writeln!(o, "# TYPE vxswitch_port_{metric}_total counter");
        for p in &stats.ports {
            let v = [
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.tx_errors,
            ][f];
            let _ = writeln!(
                o,
                "vxswitch_port_{metric}_total{{port=\"{}\",name=\"{}\"}} {v}",
                p.no, p.name
            );
        }
    }
    let _ = writeln!(o, "# HELP vxswitch_drops_total Packets dropped, by reason.");
    let _ = writeln!(o, "# TYPE vxswitch_drops_total counter");
    for r in DropReason::ALL {
        let v: u64 = workers.iter().map(|w| w.drops[*r as usize].get()).sum();
        let _ = writeln!(o, "vxswitch_drops_total{{reason=\"{}\"}} {v}", r.name());
    }
    let _ = writeln!(
        o,
        "# HELP vxswitch_events_total Events worth counting (ARP replies, ICMP sent, ...)."
    );
    let _ = writeln!(o, "# TYPE vxswitch_events_total counter");
    for e in Event::ALL {
        let v: u64 = workers.iter().map(|w| w.events[*e as usize].get()).sum();
        let _ = writeln!(o, "vxswitch_events_total{{event=\"{}\"}} {v}", e.name());
    }
    let hits: u64 = workers
        .iter()
        .map(|w| w.events[Event::FlowCacheHit as usize].get())
        .sum();
    let misses: u64 = workers
        .iter()
        .map(|w| w.events[Event::FlowCacheMiss as usize].get())
        .sum();
    let _ = writeln!(
        o,
        "# HELP vxswitch_flow_cache_hits_total Flow lookups answered by the exact-match cache."
    );
    let _ = writeln!(o, "# TYPE vxswitch_flow_cache_hits_total counter");
    let _ = writeln!(o, "vxswitch_flow_cache_hits_total {hits}");
    let _ = writeln!(
        o,
        "# HELP vxswitch_flow_cache_misses_total Flow lookups that went to the classifier."
    );
    let _ = writeln!(o, "# TYPE vxswitch_flow_cache_misses_total counter");
    let _ = writeln!(o, "vxswitch_flow_cache_misses_total {misses}");
    let _ = writeln!(
        o,
        "# HELP vxswitch_table_lookups_total Lookups in a flow table."
    );
    let _ = writeln!(o, "# TYPE vxswitch_table_lookups_total counter");
    let tables = sw.dump_tables();
    for t in &tables {
        let _ = writeln!(
            o,
            "vxswitch_table_lookups_total{{table=\"{}\"}} {}",
            t.table, t.lookups
        );
    }
    let _ = writeln!(
        o,
        "# HELP vxswitch_table_matches_total Lookups in a flow table that matched a flow."
    );
    let _ = writeln!(o, "# TYPE vxswitch_table_matches_total counter");
    for t in &tables {
        let _ = writeln!(
            o,
            "vxswitch_table_matches_total{{table=\"{}\"}} {}",
            t.table, t.matches
        );
    }
    let _ = writeln!(o, "# HELP vxswitch_table_flows Flows in a table.");
    let _ = writeln!(o, "# TYPE vxswitch_table_flows gauge");
    for t in &tables {
        let _ = writeln!(
            o,
            "vxswitch_table_flows{{table=\"{}\"}} {}",
            t.table, t.flows
        );
    }
    let _ = writeln!(
        o,
        "# HELP vxswitch_worker_busy_seconds_total Time a worker spent processing (not waiting)."
    );
    let _ = writeln!(o, "# TYPE vxswitch_worker_busy_seconds_total counter");
    for (i, w) in workers.iter().enumerate() {
        let _ = writeln!(
            o,
            "vxswitch_worker_busy_seconds_total{{worker=\"{i}\"}} {:.6}",
            w.busy_ns.get() as f64 / 1e9
        );
    }
    let _ = writeln!(
        o,
        "# HELP vxswitch_worker_busy_ratio Share of its lifetime a worker spent processing."
    );
    let _ = writeln!(o, "# TYPE vxswitch_worker_busy_ratio gauge");
    for (i, w) in workers.iter().enumerate() {
        let ratio = if uptime_s > 0.0 {
            w.busy_ns.get() as f64 / 1e9 / uptime_s
        } else {
            0.0
        };
        let _ = writeln!(o, "vxswitch_worker_busy_ratio{{worker=\"{i}\"}} {ratio:.6}");
    }
    o
}

/// Serves `GET /metrics` (any path) over plain HTTP/1.1.
pub async fn serve(listener: TcpListener, switch: Arc<Mutex<Switch>>) {
    let started = std::time::Instant::now();
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let sw = switch.clone();
        tokio::spawn(async move {
            let mut req = [0u8; 2048];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut req)).await;
            let up = started.elapsed().as_secs_f64();
            let body = tokio::task::spawn_blocking(move || {
                let g = sw.lock().unwrap_or_else(|p| p.into_inner());
                render(&g, up)
            })
            .await
            .unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
        });
    }
}
