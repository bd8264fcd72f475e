//! Hand-written SVG charts of a run: the per-client timeline, latency and throughput over
//! time, each with the nemesis intervals shaded behind the data.
//!
//! Invariants: every chart maps the run's clock to the same x range `[0, span]`, where the
//! span is the latest completion or fault end, so charts line up vertically in the report;
//! watch events (instants, no latency) are left out of the latency and throughput charts.

use std::fmt::Write;

use super::FaultInterval;
use crate::history::{Call, History, Op, Outcome};

/// Chart width in pixels (the plot area starts after [`LEFT`]).
const WIDTH: f64 = 1100.0;
const LEFT: f64 = 70.0;
/// Height of one client's row in the timeline.
const ROW: f64 = 12.0;
/// Height of the latency and throughput plots.
const PLOT: f64 = 220.0;

fn colour(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Ok(_) => "#2a9d3a",
        Outcome::Fail => "#d62728",
        Outcome::Info => "#ff9f1c",
    }
}

fn is_event(op: &Op) -> bool {
    matches!(op.call, Call::WatchEvent { .. })
}

/// The x axis: run nanoseconds to pixels.
struct Axis {
    span_ns: f64,
}

impl Axis {
    fn new(history: &History, faults: &[FaultInterval]) -> Self {
        let ops = history.ops.iter().map(|op| op.complete_ns);
        let span = ops.chain(faults.iter().map(|f| f.end_ns)).max().unwrap_or(0).max(1);
        Self { span_ns: span as f64 }
    }

    fn x(&self, ns: u64) -> f64 {
        LEFT + (ns as f64 / self.span_ns).min(1.0) * (WIDTH - LEFT)
    }

    /// Seconds ticks along the bottom at `y`.
    fn ticks(&self, out: &mut String, y: f64) {
        let secs = self.span_ns / 1e9;
        let step = [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0].into_iter().find(|s| secs / s <= 12.0).unwrap_or(600.0);
        let mut t = 0.0;
        while t <= secs {
            let x = self.x((t * 1e9) as u64);
            let _ = write!(
                out,
                r##"<text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{t}s</text>"##,
                y + 12.0
            );
            t += step;
        }
    }

    fn shade(&self, out: &mut String, faults: &[FaultInterval], height: f64) {
        for f in faults {
            let (x0, x1) = (self.x(f.start_ns), self.x(f.end_ns));
            let _ = write!(
                out,
                r##"<rect x="{x0:.1}" y="0" width="{:.1}" height="{height:.1}" fill="#888" opacity="0.25"><title>{}: {}</title></rect>"##,
                (x1 - x0).max(1.0),
                super::report::escape(&f.fault),
                super::report::escape(&f.detail)
            );
        }
    }
}

/// One row per process, one bar per op from invoke to completion, coloured by outcome.
pub fn timeline(history: &History, faults: &[FaultInterval]) -> String {
    let axis = Axis::new(history, faults);
    let mut processes: Vec<u32> = history.ops.iter().map(|op| op.process).collect();
    processes.sort_unstable();
    processes.dedup();
    let height = processes.len() as f64 * ROW;
    let mut out = String::new();
    let _ = write!(out, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{:.0}">"#, height + 20.0);
    axis.shade(&mut out, faults, height);
    for (row, p) in processes.iter().enumerate() {
        let y = row as f64 * ROW;
        let _ = write!(out, r#"<text x="0" y="{:.1}" font-size="9">p{p}</text>"#, y + ROW - 3.0);
    }
    for op in &history.ops {
        let row = processes.binary_search(&op.process).expect("every op's process is listed");
        let (x0, x1) = (axis.x(op.invoke_ns), axis.x(op.complete_ns));
        let _ = write!(
            out,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
            row as f64 * ROW + 1.0,
            (x1 - x0).max(if is_event(op) { 0.5 } else { 1.0 }),
            ROW - 2.0,
            colour(&op.outcome)
        );
    }
    axis.ticks(&mut out, height);
    out.push_str("</svg>");
    out
}

/// Latency (ms) of every op at its invoke time.
pub fn latency(history: &History, faults: &[FaultInterval]) -> String {
    let axis = Axis::new(history, faults);
    let ops: Vec<&Op> = history.ops.iter().filter(|op| !is_event(op)).collect();
    let ms = |op: &Op| (op.complete_ns - op.invoke_ns) as f64 / 1e6;
    let max_ms = ops.iter().map(|op| ms(op)).fold(1.0, f64::max);
    let mut out = frame(&axis, faults, &format!("{max_ms:.0} ms"));
    for op in ops {
        let y = PLOT - ms(op) / max_ms * PLOT;
        let _ = write!(
            out,
            r#"<circle cx="{:.1}" cy="{y:.1}" r="1.5" fill="{}"/>"#,
            axis.x(op.invoke_ns),
            colour(&op.outcome)
        );
    }
    out.push_str("</svg>");
    out
}

/// Completed ops per second, one line per outcome.
pub fn throughput(history: &History, faults: &[FaultInterval]) -> String {
    let axis = Axis::new(history, faults);
    let buckets = (axis.span_ns / 1e9).ceil().max(1.0) as usize;
    let mut counts = vec![[0u32; 3]; buckets];
    for op in history.ops.iter().filter(|op| !is_event(op)) {
        let b = ((op.complete_ns / 1_000_000_000) as usize).min(buckets - 1);
        counts[b][match op.outcome {
            Outcome::Ok(_) => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
        }] += 1;
    }
    let max = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = frame(&axis, faults, &format!("{max:.0}/s"));
    for (i, outcome) in [Outcome::Ok(crate::history::Ret::Done), Outcome::Fail, Outcome::Info].iter().enumerate() {
        let points: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(b, c)| {
                format!("{:.1},{:.1}", axis.x(b as u64 * 1_000_000_000 + 500_000_000), PLOT - c[i] as f64 / max * PLOT)
            })
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            colour(outcome),
            points.join(" ")
        );
    }
    out.push_str("</svg>");
    out
}

/// An open `<svg>` with shaded faults, axes and the top y label.
fn frame(axis: &Axis, faults: &[FaultInterval], top_label: &str) -> String {
    let mut out = String::new();
    let _ = write!(out, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{:.0}">"#, PLOT + 20.0);
    axis.shade(&mut out, faults, PLOT);
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="0" x2="{LEFT}" y2="{PLOT}" stroke="#000"/><line x1="{LEFT}" y1="{PLOT}" x2="{WIDTH}" y2="{PLOT}" stroke="#000"/><text x="0" y="10" font-size="10">{top_label}</text><text x="0" y="{PLOT}" font-size="10">0</text>"##
    );
    axis.ticks(&mut out, PLOT);
    out
}
