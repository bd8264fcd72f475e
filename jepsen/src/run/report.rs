//! `report.html`: one self-contained page per run — the verdicts with each checker's
//! evidence, the nemesis intervals, and the charts of [`super::svg`].
//!
//! Invariants: the page needs no network or script (inline SVG and CSS only); every string
//! from the history or a verdict is HTML-escaped; the evidence shown is the verdict's own
//! `details` (e.g. the linearizability windows), verbatim as JSON.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;

use super::{svg, FaultInterval};
use crate::checker::{Summary, Validity};
use crate::history::{History, Outcome};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn validity_class(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "invalid",
        Validity::Unknown => "unknown",
    }
}

/// The whole page.
pub fn render(history: &History, faults: &[FaultInterval], summary: &Summary) -> String {
    let count = |f: fn(&Outcome) -> bool| history.ops.iter().filter(|op| f(&op.outcome)).count();
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>flotilla-jepsen report</title><style>\
         body{font-family:sans-serif;margin:20px} .valid{color:#2a9d3a} .invalid{color:#d62728} \
         .unknown{color:#b8860b} pre{background:#f4f4f4;padding:8px;max-height:400px;overflow:auto} \
         td,th{padding:2px 8px;text-align:left}</style></head><body>",
    );
    let v = summary.valid;
    let _ = write!(out, r#"<h1>Run: <span class="{}">{v:?}</span></h1>"#, validity_class(v));
    let _ = write!(
        out,
        "<p>{} ops: {} ok, {} fail, {} info; {} faults injected. Colours: \
         <span class=\"valid\">ok</span>, <span class=\"invalid\">fail</span>, \
         <span style=\"color:#ff9f1c\">info (indeterminate)</span>; grey bands are faults.</p>",
        history.ops.len(),
        count(|o| matches!(o, Outcome::Ok(_))),
        count(|o| matches!(o, Outcome::Fail)),
        count(|o| matches!(o, Outcome::Info)),
        faults.len()
    );
    verdicts(&mut out, summary);
    faults_table(&mut out, faults);
    let charts = [
        ("Operations per client", svg::timeline(history, faults)),
        ("Latency over time", svg::latency(history, faults)),
        ("Throughput over time (completed ops per second)", svg::throughput(history, faults)),
    ];
    for (title, chart) in charts {
        let _ = write!(out, "<h2>{title}</h2><div>{chart}</div>");
    }
    out.push_str("</body></html>");
    out
}

fn verdicts(out: &mut String, summary: &Summary) {
    out.push_str("<h2>Verdicts</h2>");
    for verdict in &summary.verdicts {
        let details = serde_json::to_string_pretty(&verdict.details).unwrap_or_default();
        let _ = write!(
            out,
            r#"<h3>{} — <span class="{}">{:?}</span></h3><pre>{}</pre>"#,
            escape(&verdict.checker),
            validity_class(verdict.valid),
            verdict.valid,
            escape(&details)
        );
    }
}

fn faults_table(out: &mut String, faults: &[FaultInterval]) {
    out.push_str("<h2>Faults</h2>");
    if faults.is_empty() {
        out.push_str("<p>None injected.</p>");
        return;
    }
    out.push_str("<table><tr><th>from</th><th>to</th><th>fault</th><th>detail</th></tr>");
    for f in faults {
        let _ = write!(
            out,
            "<tr><td>{:.3}s</td><td>{:.3}s</td><td>{}</td><td>{}</td></tr>",
            f.start_ns as f64 / 1e9,
            f.end_ns as f64 / 1e9,
            escape(&f.fault),
            escape(&f.detail)
        );
    }
    out.push_str("</table>");
}

/// Writes `report.html` into `dir`.
pub fn write(dir: &Path, history: &History, faults: &[FaultInterval], summary: &Summary) -> anyhow::Result<()> {
    std::fs::write(dir.join("report.html"), render(history, faults, summary)).context("writing report.html")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Verdict;
    use crate::history::{Call, Op, Ret};

    #[test]
    fn the_page_shades_faults_shows_evidence_and_escapes_text() {
        let op = |process, invoke_ns, complete_ns, outcome| Op {
            process,
            key: "<k>".into(),
            call: Call::Read,
            invoke_ns,
            complete_ns,
            outcome,
        };
        let history = History::new(vec![
            op(1, 0, 1_000_000, Outcome::Ok(Ret::Value(None))),
            op(2, 500_000, 2_000_000_000, Outcome::Info),
        ]);
        let fault = FaultInterval {
            start_ns: 100,
            end_ns: 1_500_000_000,
            fault: "partition".into(),
            detail: "n1 | n2 n3".into(),
        };
        let verdict = Verdict::new("register/linearizable", Validity::Invalid, serde_json::json!({"stuck": "<op>"}));
        let summary = Summary { valid: Validity::Invalid, verdicts: vec![verdict] };
        let page = render(&history, &[fault], &summary);
        assert_eq!(page.matches("<svg").count(), 3);
        // One shaded band per chart, titled with the fault.
        assert_eq!(page.matches("<title>partition: n1 | n2 n3</title>").count(), 3);
        assert!(page.contains("&quot;stuck&quot;: &quot;&lt;op&gt;&quot;"), "evidence is shown, escaped");
        assert!(!page.contains("<op>") && !page.contains("<k>"));
        assert!(page.contains(r#"<span class="invalid">Invalid</span>"#));
        assert!(page.contains("2 ops: 1 ok, 0 fail, 1 info; 1 faults injected"));
    }
}
