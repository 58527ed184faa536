//! The text `regtap inspect` prints: operations, numbered steps and their
//! key annotations.

use std::fmt::Write as _;

use regtap_capture::{Flow, rfc3339};

use crate::model::{Analysis, Annotation, OperationStatus, Severity};

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
    fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
}

/// Renders the analysis for people; `color` adds ANSI colours.
pub fn render_text(analysis: &Analysis, flows: &[Flow], color: bool) -> String {
    let style = Style { color };
    let mut out = String::new();
    let origin = flows.iter().map(|f| f.timing.request_start).min();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "{}, {}, {}{}",
        plural(analysis.flows.len(), "flow"),
        plural(analysis.operations.len(), "operation"),
        plural(analysis.sessions.len(), "upload session"),
        origin
            .map(|t| format!(", from {}", rfc3339(t)))
            .unwrap_or_default()
    );
    let at = |ns: i64| -> String {
        let since = ns.saturating_sub(origin.unwrap_or(ns));
        format!("{:.3} s", since as f64 / 1e9)
    };
    for op in &analysis.operations {
        let status = match &op.status {
            OperationStatus::Succeeded => style.green("succeeded"),
            OperationStatus::Failed { reason } => style.red(&format!("FAILED: {reason}")),
            OperationStatus::Incomplete => style.yellow("incomplete"),
        };
        let _ = writeln!(out);
        let client = op
            .client
            .as_ref()
            .map(|c| format!(" · {c}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}. {}{client} — {status}",
            op.index,
            style.bold(&op.title)
        );
        let duration_ms = op.end_ns.saturating_sub(op.start_ns) as f64 / 1e6;
        let _ = writeln!(
            out,
            "   {}",
            style.dim(&format!(
                "{} → {} ({duration_ms:.0} ms), {}",
                at(op.start_ns),
                at(op.end_ns),
                plural(op.flow_ids.len(), "flow")
            ))
        );
        for step in &op.steps {
            let ids: Vec<String> = step.flow_ids.iter().map(|id| format!("#{id}")).collect();
            let _ = writeln!(
                out,
                "   {:>2}. {}  {}",
                step.number,
                step.explanation,
                style.dim(&format!("[{}]", ids.join(" ")))
            );
            for annotation in &step.annotations {
                let _ = writeln!(out, "       {}", annotation_line(&style, annotation));
            }
        }
    }
    let problems: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.severity >= Severity::Warning)
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", style.bold(&plural(problems.len(), "problem")));
        for d in problems {
            let flow = d.flow_id.map(|id| format!("#{id}: ")).unwrap_or_default();
            let line = format!("{flow}{}", d.message);
            let _ = writeln!(
                out,
                "  {}",
                match d.severity {
                    Severity::Error => style.red(&format!("error {line}")),
                    _ => style.yellow(&format!("warning {line}")),
                }
            );
        }
    }
    out
}

fn annotation_line(style: &Style, a: &Annotation) -> String {
    match a.severity {
        Severity::Info => style.dim(&format!("· {}: {}", a.label, a.text)),
        Severity::Warning => style.yellow(&format!("! {}: {}", a.label, a.text)),
        Severity::Error => style.red(&format!("✗ {}: {}", a.label, a.text)),
    }
}
