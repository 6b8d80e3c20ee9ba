//! chart.svg: the medians per system as grouped bars, one panel per figure (each with its own
//! scale; panels of figures no system measured left out), a whisker from the lowest to the highest round, the value over every bar, and the
//! run's date, machine and command in the heading. Plain SVG written by hand.

use std::fmt::Write as _;

use super::report::{fmt_short, Summary};

/// One panel: a figure, how to scale it for display, and its unit.
struct Panel {
    key: &'static str,
    title: &'static str,
    unit: &'static str,
    scale: f64,
    lower_is_better: bool,
}

const PANELS: [Panel; 5] = [
    Panel {
        key: "tcp1_gbps",
        title: "TCP, 1 stream",
        unit: "Gb/s",
        scale: 1.0,
        lower_is_better: false,
    },
    Panel {
        key: "tcp4_gbps",
        title: "TCP, 4 streams",
        unit: "Gb/s",
        scale: 1.0,
        lower_is_better: false,
    },
    Panel {
        key: "udp64_rx_pps",
        title: "UDP 64 B, received",
        unit: "k packets/s",
        scale: 1e-3,
        lower_is_better: false,
    },
    Panel {
        key: "udp64_max_pps",
        title: "UDP 64 B, max at low loss",
        unit: "k packets/s",
        scale: 1e-3,
        lower_is_better: false,
    },
    Panel {
        key: "tcp_rr_p50_ms",
        title: "TCP 1-byte round trip",
        unit: "median µs",
        scale: 1e3,
        lower_is_better: true,
    },
];

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 480.0;
const MARGIN: f64 = 20.0;
const GAP: f64 = 34.0;
const AXIS: f64 = 44.0;
const PLOT_TOP: f64 = 150.0;
const PLOT_BOTTOM: f64 = 410.0;

/// Colours of the systems we know; others cycle through the rest.
fn colour(system: &str, i: usize) -> &'static str {
    match system {
        "vxswitch" => "#1f77b4",
        "kernel" => "#ff7f0e",
        "ovs" => "#2ca02c",
        "plain" => "#8c8c8c",
        _ => ["#9467bd", "#d62728", "#17becf", "#bcbd22"][i % 4],
    }
}

/// A system's bar in a panel: the median, and the lowest and highest round (display units).
type Bar = (Option<f64>, Option<(f64, f64)>);

/// Heading lines: title, machine, command.
pub struct Heading {
    pub title: String,
    /// How the labs were set up (TSO, underlay offload).
    pub setup: String,
    pub machine: String,
    pub command: String,
}

/// The chart of a run.
pub fn chart(summary: &Summary, heading: &Heading) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    text(
        &mut s,
        MARGIN,
        30.0,
        18.0,
        "start",
        "bold",
        "#222",
        &heading.title,
    );
    text(
        &mut s,
        MARGIN,
        52.0,
        12.0,
        "start",
        "normal",
        "#444",
        &format!("{} · {}", heading.machine, heading.setup),
    );
    let _ = writeln!(
        s,
        r##"<text x="{MARGIN}" y="70" font-size="11" font-family="monospace" fill="#444">$ {}</text>"##,
        esc(&heading.command)
    );

    // Legend.
    let mut x = MARGIN;
    for (i, sys) in summary.systems.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="86" width="12" height="12" fill="{}"/>"#,
            colour(sys, i)
        );
        text(&mut s, x + 17.0, 97.0, 12.0, "start", "normal", "#222", sys);
        x += 30.0 + 7.5 * sys.len() as f64;
    }

    let panels = shown_panels(summary);
    let n = panels.len() as f64;
    let panel_w = (WIDTH - 2.0 * MARGIN - GAP * (n - 1.0)) / n;
    for (p, panel) in panels.into_iter().enumerate() {
        let x0 = MARGIN + p as f64 * (panel_w + GAP);
        draw_panel(&mut s, summary, panel, x0, panel_w);
    }
    text(
        &mut s,
        MARGIN,
        HEIGHT - 12.0,
        10.0,
        "start",
        "normal",
        "#666",
        "Bars: median over the rounds; whiskers: lowest and highest round; - : no value. \
         Every figure and the ratios to the kernel are in summary.md.",
    );
    s.push_str("</svg>\n");
    s
}

/// The panels of figures some system measured; all but the opt-in ones if none did.
fn shown_panels(summary: &Summary) -> Vec<&'static Panel> {
    let measured = |p: &Panel| {
        summary
            .systems
            .iter()
            .any(|s| !summary.values(s, p.key).is_empty())
    };
    let shown: Vec<&Panel> = PANELS.iter().filter(|p| measured(p)).collect();
    if shown.is_empty() {
        PANELS.iter().filter(|p| p.key != "udp64_max_pps").collect()
    } else {
        shown
    }
}

fn draw_panel(s: &mut String, summary: &Summary, panel: &Panel, x0: f64, w: f64) {
    let plot_x = x0 + AXIS;
    let plot_w = w - AXIS;
    let plot_h = PLOT_BOTTOM - PLOT_TOP;
    text(
        s,
        x0 + w / 2.0,
        126.0,
        13.0,
        "middle",
        "bold",
        "#222",
        panel.title,
    );
    let note = if panel.lower_is_better {
        format!("{} (lower is better)", panel.unit)
    } else {
        format!("{} (higher is better)", panel.unit)
    };
    text(
        s,
        x0 + w / 2.0,
        141.0,
        11.0,
        "middle",
        "normal",
        "#555",
        &note,
    );

    let values: Vec<Bar> = summary
        .systems
        .iter()
        .map(|sys| {
            (
                summary.median(sys, panel.key).map(|v| v * panel.scale),
                summary
                    .range(sys, panel.key)
                    .map(|(lo, hi)| (lo * panel.scale, hi * panel.scale)),
            )
        })
        .collect();
    let top = values
        .iter()
        .flat_map(|(m, r)| m.iter().copied().chain(r.map(|r| r.1)))
        .fold(0.0f64, f64::max);
    let (max, step) = nice_axis(top * 1.12);
    let y_of = |v: f64| PLOT_BOTTOM - (v / max).clamp(0.0, 1.0) * plot_h;

    // Grid and tick labels.
    let ticks = (max / step).round() as usize;
    for t in 0..=ticks {
        let v = step * t as f64;
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{plot_x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="1"/>"##,
            plot_x + plot_w,
            if t == 0 { "#888" } else { "#e4e4e4" }
        );
        text(
            s,
            plot_x - 5.0,
            y + 4.0,
            10.0,
            "end",
            "normal",
            "#555",
            &fmt_short(v),
        );
    }

    let n = values.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = slot * 0.7;
    for (i, (sys, (median, range))) in summary.systems.iter().zip(&values).enumerate() {
        let cx = plot_x + slot * (i as f64 + 0.5);
        let Some(v) = *median else {
            text(
                s,
                cx,
                PLOT_BOTTOM - 4.0,
                11.0,
                "middle",
                "normal",
                "#888",
                "-",
            );
            continue;
        };
        let y = y_of(v);
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{y:.1}" width="{bar:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
            cx - bar / 2.0,
            PLOT_BOTTOM - y,
            colour(sys, i),
            esc(sys),
            fmt_short(v)
        );
        let mut label_y = y;
        if let Some((lo, hi)) = *range {
            let (ylo, yhi) = (y_of(lo), y_of(hi));
            let cap = bar * 0.25;
            let _ = writeln!(
                s,
                r##"<path d="M{cx:.1} {ylo:.1}V{yhi:.1}M{:.1} {ylo:.1}H{:.1}M{:.1} {yhi:.1}H{:.1}" stroke="#222" stroke-width="1" fill="none"/>"##,
                cx - cap,
                cx + cap,
                cx - cap,
                cx + cap
            );
            label_y = label_y.min(yhi);
        }
        text(
            s,
            cx,
            label_y - 5.0,
            10.0,
            "middle",
            "normal",
            "#222",
            &fmt_short(v),
        );
        // The system's name under its bar, for readers without colour.
        let _ = writeln!(
            s,
            r##"<text x="{cx:.1}" y="{:.1}" font-size="10" fill="#444" text-anchor="end" transform="rotate(-35 {cx:.1} {:.1})">{}</text>"##,
            PLOT_BOTTOM + 14.0,
            PLOT_BOTTOM + 14.0,
            esc(sys)
        );
    }
}

/// The axis for values up to `v`: the lowest top of 3 to 5 equal steps of 1, 2, 2.5 or 5 × 10^k
/// that holds `v`, and the step.
fn nice_axis(v: f64) -> (f64, f64) {
    if !(v.is_finite() && v > 0.0) {
        return (1.0, 0.2);
    }
    let mag = 10f64.powf((v / 5.0).log10().floor());
    let mut best = (f64::INFINITY, 1.0);
    for mag in [mag, mag * 10.0] {
        for m in [1.0, 2.0, 2.5, 5.0] {
            let step = m * mag;
            let ticks = (v / step - 1e-9).ceil().max(1.0);
            if (3.0..=5.0).contains(&ticks) && step * ticks < best.0 {
                best = (step * ticks, step);
            }
        }
    }
    best
}

/// One bar of a stacked chart: a label, its segments (name, value) in order, and a note after
/// the bar (its total, say).
pub struct StackedBar {
    pub label: String,
    pub segments: Vec<(String, f64)>,
    pub note: String,
}

/// Colours of stacked segments, by position.
const SEGMENT_COLOURS: [&str; 14] = [
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#e377c2", "#bcbd22", "#c7c7c7",
];

/// Horizontal stacked bars, one per system, the segments in the order given (each with its
/// value when wide enough), a shared axis, and a legend of the segments that have a value.
pub fn stacked(title: &str, subtitle: &str, unit: &str, bars: &[StackedBar]) -> String {
    let left = 150.0;
    let right = 150.0;
    let bar_h = 34.0;
    let top = 100.0;
    let names: Vec<&str> = bars
        .first()
        .map(|b| b.segments.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    let used: Vec<usize> = (0..names.len())
        .filter(|&i| {
            bars.iter()
                .any(|b| b.segments.get(i).is_some_and(|s| s.1 > 0.0))
        })
        .collect();
    let legend_rows = used.len().div_ceil(3) as f64;
    let plot_bottom = top + bars.len() as f64 * (bar_h + 16.0);
    let height = plot_bottom + 40.0 + legend_rows * 18.0 + 20.0;
    let total = |b: &StackedBar| b.segments.iter().map(|s| s.1.max(0.0)).sum::<f64>();
    let (max, step) = nice_axis(bars.iter().map(total).fold(0.0, f64::max) * 1.02);
    let plot_w = WIDTH - left - right;
    let x_of = |v: f64| left + (v / max).clamp(0.0, 1.0) * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    text(&mut s, MARGIN, 30.0, 17.0, "start", "bold", "#222", title);
    let mut y = 50.0;
    for line in wrap(subtitle, 150) {
        text(&mut s, MARGIN, y, 11.0, "start", "normal", "#444", &line);
        y += 14.0;
    }
    let ticks = (max / step).round() as usize;
    for t in 0..=ticks {
        let v = step * t as f64;
        let x = x_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{plot_bottom:.1}" stroke="{}" stroke-width="1"/>"##,
            top - 6.0,
            if t == 0 { "#888" } else { "#e4e4e4" }
        );
        text(
            &mut s,
            x,
            plot_bottom + 14.0,
            10.0,
            "middle",
            "normal",
            "#555",
            &fmt_short(v),
        );
    }
    text(
        &mut s,
        left + plot_w / 2.0,
        plot_bottom + 30.0,
        11.0,
        "middle",
        "normal",
        "#555",
        unit,
    );
    for (i, b) in bars.iter().enumerate() {
        let y = top + i as f64 * (bar_h + 16.0);
        text(
            &mut s,
            left - 8.0,
            y + bar_h / 2.0 + 4.0,
            12.0,
            "end",
            "bold",
            "#222",
            &b.label,
        );
        let mut acc = 0.0;
        for (j, (name, v)) in b.segments.iter().enumerate() {
            if *v <= 0.0 {
                continue;
            }
            let (x0, x1) = (x_of(acc), x_of(acc + v));
            acc += v;
            let _ = writeln!(
                s,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{bar_h}" fill="{}" stroke="white" stroke-width="0.5"><title>{}: {}</title></rect>"#,
                (x1 - x0).max(0.0),
                SEGMENT_COLOURS[j % SEGMENT_COLOURS.len()],
                esc(name),
                fmt_short(*v)
            );
            if x1 - x0 >= 26.0 {
                text(
                    &mut s,
                    (x0 + x1) / 2.0,
                    y + bar_h / 2.0 + 4.0,
                    10.0,
                    "middle",
                    "normal",
                    "#111",
                    &fmt_short(*v),
                );
            }
        }
        text(
            &mut s,
            x_of(acc) + 6.0,
            y + bar_h / 2.0 + 4.0,
            11.0,
            "start",
            "normal",
            "#222",
            &format!("{} · {}", fmt_short(acc), b.note),
        );
    }
    let ly = plot_bottom + 48.0;
    for (k, &i) in used.iter().enumerate() {
        let x = MARGIN + (k % 3) as f64 * 320.0;
        let y = ly + (k / 3) as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{}"/>"#,
            SEGMENT_COLOURS[i % SEGMENT_COLOURS.len()]
        );
        text(
            &mut s,
            x + 17.0,
            y + 10.0,
            11.0,
            "start",
            "normal",
            "#222",
            names[i],
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Splits text into lines of at most about `width` characters, at spaces.
fn wrap(t: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in t.split(' ') {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

#[allow(clippy::too_many_arguments)]
fn text(
    s: &mut String,
    x: f64,
    y: f64,
    size: f64,
    anchor: &str,
    weight: &str,
    fill: &str,
    t: &str,
) {
    let _ = writeln!(
        s,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" fill="{fill}">{}</text>"#,
        esc(t)
    );
}

/// XML-escapes text.
fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::report::Sample;
    use super::*;

    #[test]
    fn stacked_bars_have_a_segment_per_value() {
        let bar = |label: &str, a: f64, b: f64| StackedBar {
            label: label.into(),
            segments: vec![
                ("copies".into(), a),
                ("checksums <csum>".into(), b),
                ("none".into(), 0.0),
            ],
            note: "7 Gb/s".into(),
        };
        let svg = stacked(
            "t",
            "a long subtitle",
            "core-µs per 64 KB",
            &[bar("vxswitch", 27.3, 6.3), bar("kernel", 10.0, 0.0)],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // Background, 3 segments, 2 legend entries.
        assert_eq!(svg.matches("<rect").count(), 1 + 3 + 2, "{svg}");
        assert!(svg.contains("checksums &lt;csum&gt;"));
        assert!(svg.contains(">33.6 · 7 Gb/s<"), "{svg}");
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(9.3), (10.0, 2.0));
        assert_eq!(nice_axis(13.0), (15.0, 5.0));
        assert_eq!(nice_axis(0.9), (1.0, 0.2));
        assert_eq!(nice_axis(410.0), (500.0, 100.0));
        assert_eq!(nice_axis(1.0), (1.0, 0.2));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
        for v in [0.013, 0.77, 3.3, 47.0, 123.0, 980.0, 1234.0] {
            let (top, step) = nice_axis(v);
            assert!(
                top >= v && top <= 2.0 * v && (3.0..=5.0).contains(&(top / step).round()),
                "{v}: {top} {step}"
            );
        }
    }

    #[test]
    fn the_chart_has_a_bar_per_system_and_panel_and_escapes_text() {
        let systems: Vec<String> = ["vxswitch", "kernel"].map(String::from).to_vec();
        let mk = |sys: &str, k: &str, v: f64| Sample {
            round: 1,
            system: sys.into(),
            test: "t".into(),
            at_s: 0.0,
            secs: 0.0,
            metrics: [(k.to_string(), v)].into_iter().collect(),
            note: None,
            error: None,
        };
        let samples = vec![
            mk("vxswitch", "tcp1_gbps", 5.0),
            mk("kernel", "tcp1_gbps", 9.0),
            mk("kernel", "tcp4_gbps", 9.5),
            mk("kernel", "udp64_rx_pps", 412_000.0),
            mk("kernel", "tcp_rr_p50_ms", 0.08),
        ];
        let svg = chart(
            &Summary::new(&systems, &samples),
            &Heading {
                title: "t".into(),
                setup: "TSO on".into(),
                machine: "a <b> & c".into(),
                command: "vxbench --out x".into(),
            },
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 2 + 5,
            "background, legend, bars"
        );
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains(">412<") && svg.contains(">80<"), "{svg}");
        assert!(svg.contains("UDP 64 B, received"));
        assert!(!svg.contains("max at low loss"));
    }

    #[test]
    fn panels_of_unmeasured_figures_are_left_out() {
        let systems: Vec<String> = ["vxswitch", "kernel"].map(String::from).to_vec();
        let keys = |s: &Summary| -> Vec<&str> { shown_panels(s).iter().map(|p| p.key).collect() };
        let none = Summary::new(&systems, &[]);
        assert_eq!(
            keys(&none),
            ["tcp1_gbps", "tcp4_gbps", "udp64_rx_pps", "tcp_rr_p50_ms"]
        );
        let only_max = Summary::new(
            &systems,
            &[Sample {
                round: 1,
                system: "kernel".into(),
                test: "udp64_max".into(),
                at_s: 0.0,
                secs: 0.0,
                metrics: [("udp64_max_pps".to_string(), 61_000.0)].into(),
                note: None,
                error: None,
            }],
        );
        assert_eq!(keys(&only_max), ["udp64_max_pps"]);
        let heading = Heading {
            title: "t".into(),
            setup: "s".into(),
            machine: "m".into(),
            command: "c".into(),
        };
        let svg = chart(&only_max, &heading);
        assert!(
            svg.contains("max at low loss") && svg.contains(">61<"),
            "{svg}"
        );
    }
}
