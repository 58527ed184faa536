//! The text `regtap inspect` prints: operations, numbered steps and their
//! key annotations.

use std::fmt::Write as _;

use regtap_capture::{Flow, rfc3339};

use crate::model::{Analysis, Annotation, OperationStatus, PullQuota, Severity};

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

/// `pull quota: 2 counted (manifest GETs), 1 HEAD free; remaining 100 → 98 of 100 per 6 h`.
fn quota_line(quota: &PullQuota) -> String {
    let mut text = format!(
        "pull quota: {} counted (manifest GETs), {} HEAD(s) free",
        quota.pulls_counted, quota.free_heads
    );
    if let (Some(first), Some(last)) = (quota.remaining_first, quota.remaining_last) {
        text.push_str(&format!("; remaining {first} → {last}"));
        if let Some(limit) = quota.limit {
            text.push_str(&format!(" of {limit}"));
        }
        if let Some(window) = quota.window_seconds {
            text.push_str(&format!(" per {} h", window / 3600));
        }
    }
    if quota.refused > 0 {
        text.push_str(&format!("; {} refused with 429", quota.refused));
    }
    text
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
    // A failure may be the upstream proxy's, not the registry's.
    for proxy in &analysis.upstream_proxies {
        let _ = writeln!(
            out,
            "{} through upstream proxy {}",
            plural(proxy.flows, "flow"),
            proxy.url
        );
    }
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
        if let Some(quota) = &op.quota {
            let _ = writeln!(out, "   {}", style.dim(&quota_line(quota)));
        }
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
    let counted: Vec<&PullQuota> = analysis
        .operations
        .iter()
        .filter_map(|o| o.quota.as_ref())
        .collect();
    if !counted.is_empty() {
        let pulls: u64 = counted.iter().map(|q| q.pulls_counted).sum();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "Pull quota: {} counted in this capture ({} operation(s) on registries that count pulls)",
                plural(pulls as usize, "pull"),
                counted.len()
            ))
        );
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

#[cfg(test)]
mod tests {
    use regtap_capture::factory::FlowBuilder;

    use super::*;

    #[test]
    fn flows_through_an_upstream_proxy_are_counted_per_proxy() {
        let mut flows: Vec<Flow> = (1..=3)
            .map(|id| {
                FlowBuilder::new(id, "GET", "https://r.test/v2/")
                    .status(200)
                    .build()
            })
            .collect();
        let direct = crate::analyze(&flows, &crate::Options::default());
        let text = render_text(&direct, &flows, false);
        assert!(!text.contains("upstream proxy"), "{text}");
        for flow in &mut flows[..2] {
            flow.upstream_proxy = Some("http://proxy.corp.test:3128".to_owned());
        }
        let proxied = crate::analyze(&flows, &crate::Options::default());
        // What the text says comes from the analysis: `inspect` passes
        // only the earliest flow.
        let text = render_text(&proxied, &flows[..1], false);
        assert!(
            text.contains("2 flows through upstream proxy http://proxy.corp.test:3128\n"),
            "{text}"
        );
    }
}
