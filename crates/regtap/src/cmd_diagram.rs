//! `regtap diagram`: an operation as a Mermaid sequence diagram (GitHub
//! renders it in Markdown): the client, the registry, the auth server and
//! any other host (storage, a source registry) as lanes; steps that ran at
//! the same time in `par` blocks; failed exchanges with crossed arrows.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use regtap_capture::{Flow, reason_phrase};
use regtap_decode::{Analysis, FlowKind, Operation, OperationStatus, Options, Severity, analyze};

#[derive(Args)]
pub struct DiagramArgs {
    /// Capture file written by `regtap proxy`, or a HAR file from another tool
    capture: PathBuf,
    /// The operation to draw, by its number in `regtap inspect` (needed when
    /// the capture holds more than one)
    #[arg(long, value_name = "N")]
    operation: Option<usize>,
    #[arg(long, value_enum, default_value_t = DiagramFormat::Mermaid)]
    format: DiagramFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagramFormat {
    /// Mermaid `sequenceDiagram` text: put it in a ```mermaid block on GitHub,
    /// or render it with mermaid-cli (`mmdc -i diagram.mmd -o diagram.svg`)
    Mermaid,
}

/// Requests drawn per step; the rest of a long step is summed up in a note.
const MAX_FLOWS_PER_STEP: usize = 8;
/// Hosts besides the registry and auth servers get their own lane up to
/// this many; the rest share one.
const MAX_OTHER_LANES: usize = 3;
const MAX_LABEL: usize = 90;

pub fn run(args: DiagramArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::input::load(&args.capture)?;
    for warning in &loaded.warnings {
        eprintln!("regtap: warning: {warning}");
    }
    let analysis = analyze(&loaded.flows, &Options::default());
    let operation = choose(&analysis, args.operation)?;
    let DiagramFormat::Mermaid = args.format;
    crate::cmd_inspect::print_all(&mermaid(&analysis, operation, &loaded.flows))?;
    Ok(ExitCode::SUCCESS)
}

fn choose(analysis: &Analysis, wanted: Option<usize>) -> anyhow::Result<&Operation> {
    let list = || {
        analysis
            .operations
            .iter()
            .map(|o| format!("  {}. {}", o.index, o.title))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match (wanted, analysis.operations.as_slice()) {
        (_, []) => bail!("the capture holds no operation to draw"),
        (None, [only]) => Ok(only),
        (None, many) => bail!(
            "the capture holds {} operations; choose one with --operation N:\n{}",
            many.len(),
            list()
        ),
        (Some(n), all) => all.iter().find(|o| o.index == n).ok_or_else(|| {
            anyhow::anyhow!(
                "no operation {n}; the capture holds {}:\n{}",
                all.len(),
                list()
            )
        }),
    }
}

/// A lane of the diagram: a Mermaid participant id and the hosts it stands for.
struct Lane {
    id: String,
    label: String,
    hosts: Vec<String>,
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

fn lanes(operation: &Operation, flows: &[&Flow], kinds: &[Option<&FlowKind>]) -> Vec<Lane> {
    let client = operation
        .client
        .as_ref()
        .map_or_else(|| "client".to_owned(), ToString::to_string);
    let mut lanes = vec![Lane {
        id: "C".to_owned(),
        label: client,
        hosts: Vec::new(),
    }];
    let registry = operation
        .kind
        .registry()
        .map(str::to_owned)
        .or_else(|| flows.first().map(|f| host_of(f.url()).to_owned()));
    if let Some(registry) = registry {
        lanes.push(Lane {
            id: "R".to_owned(),
            label: format!("registry {registry}"),
            hosts: vec![registry],
        });
    }
    let known =
        |lanes: &[Lane], host: &str| lanes.iter().any(|l| l.hosts.iter().any(|h| h == host));
    let mut auth = 0;
    for (flow, kind) in flows.iter().zip(kinds) {
        let host = host_of(flow.url());
        if matches!(kind, Some(FlowKind::Token { .. })) && !known(&lanes, host) {
            auth += 1;
            lanes.push(Lane {
                id: format!("A{auth}"),
                label: format!("auth {host}"),
                hosts: vec![host.to_owned()],
            });
        }
    }
    let mut others: Vec<String> = Vec::new();
    for flow in flows {
        let host = host_of(flow.url());
        if !known(&lanes, host) && !others.iter().any(|h| h == host) {
            others.push(host.to_owned());
        }
    }
    let shared = others.len() > MAX_OTHER_LANES;
    for (n, host) in others.into_iter().enumerate() {
        if shared && n >= MAX_OTHER_LANES - 1 {
            match lanes.last_mut().filter(|l| l.id == "O") {
                Some(lane) => lane.hosts.push(host),
                None => lanes.push(Lane {
                    id: "O".to_owned(),
                    label: "other hosts".to_owned(),
                    hosts: vec![host],
                }),
            }
        } else {
            lanes.push(Lane {
                id: format!("H{}", n + 1),
                label: host.clone(),
                hosts: vec![host],
            });
        }
    }
    lanes
}

/// Text safe in a Mermaid message or note: `#`, `;`, `<` and `>` as entity
/// codes, one line.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\r' | '\n' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_LABEL {
        return text.to_owned();
    }
    let kept: String = text.chars().take(MAX_LABEL - 1).collect();
    format!("{kept}…")
}

/// `sha256:` digests cut to 12 hex digits; the query as its parameter names.
fn short_request(flow: &Flow) -> String {
    let rest = flow
        .url()
        .split_once("://")
        .map_or(flow.url(), |(_, rest)| rest);
    let path_and_query = rest.find('/').map_or("/", |slash| &rest[slash..]);
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let path = path
        .split('/')
        .map(|segment| match segment.split_once(':') {
            Some((algorithm, hex)) if hex.len() > 12 && algorithm.starts_with("sha") => {
                format!("{algorithm}:{}…", &hex[..12])
            }
            _ => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/");
    let query = query.map(|q| {
        let names: Vec<&str> = q
            .split('&')
            .filter_map(|pair| pair.split('=').next())
            .filter(|name| !name.is_empty())
            .collect();
        format!("?{}", names.join("&"))
    });
    format!("{} {path}{}", flow.method(), query.unwrap_or_default())
}

/// Runs of consecutive steps that overlap in time (a run of one ran alone).
fn concurrent_runs(spans: &[Option<(i64, i64)>]) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    let mut running_end: Option<i64> = None;
    for (n, span) in spans.iter().enumerate() {
        let overlaps = match (span, running_end, runs.last_mut()) {
            (Some((start, _)), Some(end), Some(run)) if *start < end => {
                run.end = n + 1;
                true
            }
            _ => false,
        };
        if !overlaps {
            runs.push(n..n + 1);
        }
        if let Some((_, end)) = span {
            running_end = Some(if overlaps {
                running_end.map_or(*end, |r| r.max(*end))
            } else {
                *end
            });
        }
    }
    runs
}

/// The Mermaid text of one operation.
pub fn mermaid(analysis: &Analysis, operation: &Operation, all_flows: &[Flow]) -> String {
    let by_id = |id: u64| all_flows.iter().find(|f| f.id == id);
    let flows: Vec<&Flow> = operation
        .flow_ids
        .iter()
        .filter_map(|&id| by_id(id))
        .collect();
    let kinds: Vec<Option<&FlowKind>> = flows
        .iter()
        .map(|f| analysis.flow(f.id).map(|a| &a.kind))
        .collect();
    let lanes = lanes(operation, &flows, &kinds);
    let lane_of = |url: &str| {
        let host = host_of(url);
        lanes
            .iter()
            .find(|l| l.hosts.iter().any(|h| h == host))
            .map_or("R", |l| l.id.as_str())
    };

    let mut out = String::from("sequenceDiagram\n");
    let status = match &operation.status {
        OperationStatus::Succeeded => "succeeded".to_owned(),
        OperationStatus::Failed { reason } => format!("failed: {reason}"),
        OperationStatus::Incomplete => "incomplete".to_owned(),
    };
    out.push_str(&format!(
        "    title {}. {} — {}\n",
        operation.index,
        escape(&clip(&operation.title)),
        escape(&clip(&status))
    ));
    for lane in &lanes {
        out.push_str(&format!(
            "    participant {} as {}\n",
            lane.id,
            escape(&lane.label)
        ));
    }
    if let Some(shared) = lanes.iter().find(|l| l.id == "O") {
        out.push_str(&format!(
            "    Note over O: {}\n",
            escape(&clip(&shared.hosts.join(", ")))
        ));
    }
    let last_lane = lanes.last().map_or("C", |l| l.id.as_str());

    let spans: Vec<Option<(i64, i64)>> = operation
        .steps
        .iter()
        .map(|step| {
            step.flow_ids
                .iter()
                .filter_map(|&id| by_id(id))
                .map(|f| (f.timing.request_start, f.timing.end()))
                .reduce(|(s1, e1), (s2, e2)| (s1.min(s2), e1.max(e2)))
        })
        .collect();
    for run in concurrent_runs(&spans) {
        let parallel = run.len() > 1;
        for n in run.clone() {
            let step = &operation.steps[n];
            let indent = if parallel {
                let keyword = if n == run.start { "par" } else { "and" };
                out.push_str(&format!("    {keyword} step {}\n", step.number));
                "        "
            } else {
                "    "
            };
            out.push_str(&format!(
                "{indent}Note over C,{last_lane}: {}. {}\n",
                step.number,
                escape(&clip(&step.explanation))
            ));
            let step_flows: Vec<&Flow> = step.flow_ids.iter().filter_map(|&id| by_id(id)).collect();
            for flow in step_flows.iter().take(MAX_FLOWS_PER_STEP) {
                let server = lane_of(flow.url());
                out.push_str(&format!(
                    "{indent}C->>{server}: {}\n",
                    escape(&clip(&short_request(flow)))
                ));
                // The decoder's judgement, not the status: a 401 challenge
                // or a 404 for a blob about to be uploaded is how it works.
                let judged_failed = analysis
                    .flow(flow.id)
                    .is_some_and(|a| a.annotations.iter().any(|n| n.severity == Severity::Error));
                let (arrow, answer) = match (&flow.response, &flow.error) {
                    (Some(response), error) => {
                        let failed = judged_failed || error.is_some();
                        let mut text =
                            format!("{} {}", response.status, reason_phrase(response.status));
                        if let Some(error) = error {
                            text.push_str(&format!(" ✗ {}", error.message));
                        }
                        (if failed { "--x" } else { "-->>" }, text)
                    }
                    (None, Some(error)) => (
                        "--x",
                        format!(
                            "✗ {}: {}",
                            serde_json::to_value(error.stage)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default(),
                            error.message
                        ),
                    ),
                    (None, None) => ("--x", "✗ no answer in the capture".to_owned()),
                };
                out.push_str(&format!(
                    "{indent}{server}{arrow}C: {}\n",
                    escape(&clip(&answer))
                ));
            }
            if step_flows.len() > MAX_FLOWS_PER_STEP {
                out.push_str(&format!(
                    "{indent}Note over C,{last_lane}: … and {} more requests of this step\n",
                    step_flows.len() - MAX_FLOWS_PER_STEP
                ));
            }
        }
        if parallel {
            out.push_str("    end\n");
        }
    }
    if let OperationStatus::Failed { reason } = &operation.status {
        out.push_str(&format!(
            "    Note over C,{last_lane}: ✗ failed: {}\n",
            escape(&clip(reason))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(name: &str) -> Vec<Flow> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../captures")
            .join(name);
        crate::input::load(&path).unwrap().flows
    }

    fn diagram(name: &str, operation: usize) -> String {
        let flows = capture(name);
        let analysis = analyze(&flows, &Options::default());
        mermaid(
            &analysis,
            choose(&analysis, Some(operation)).unwrap(),
            &flows,
        )
    }

    /// Goldens over real captures: a push with parallel uploads, a pull, a
    /// refused login, a denied push, a copy, a Docker Hub push.
    #[test]
    fn golden_diagrams() {
        for (name, operation) in [
            ("push.jsonl", 1),
            ("pull.jsonl", 1),
            ("login-failed.jsonl", 1),
            ("push-denied.jsonl", 1),
            ("crane.jsonl", 2),
            ("dockerhub-push.jsonl", 1),
            ("parallel-clients.jsonl", 1),
        ] {
            let text = diagram(name, operation);
            insta::assert_snapshot!(
                format!("{}-{operation}", name.trim_end_matches(".jsonl")),
                text
            );
        }
    }

    #[test]
    fn every_operation_of_every_capture_is_well_formed() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../captures");
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let flows = crate::input::load(&path).unwrap().flows;
            let analysis = analyze(&flows, &Options::default());
            for operation in &analysis.operations {
                let text = mermaid(&analysis, operation, &flows);
                check_well_formed(&text, &format!("{} op {}", path.display(), operation.index));
            }
        }
    }

    /// What Mermaid's sequence parser needs: every line a statement it knows,
    /// `par` closed by `end`, messages between declared participants, no raw
    /// `;` or `#` that would cut a statement.
    fn check_well_formed(text: &str, what: &str) {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("sequenceDiagram"), "{what}");
        let mut participants: Vec<&str> = Vec::new();
        let mut open_par = 0;
        for line in lines {
            let line = line.trim();
            let body = line.split_once(": ").map_or(line, |(head, tail)| {
                assert!(!tail.contains(';'), "{what}: raw ';' in {line:?}");
                assert!(
                    tail.match_indices('#')
                        .all(|(i, _)| tail[i..].starts_with("#35;")
                            || tail[i..].starts_with("#59;")
                            || tail[i..].starts_with("#lt;")
                            || tail[i..].starts_with("#gt;")),
                    "{what}: raw '#' in {line:?}"
                );
                head
            });
            if let Some(rest) = line.strip_prefix("participant ") {
                participants.push(rest.split(" as ").next().unwrap());
            } else if line.starts_with("title ") {
            } else if line.starts_with("par ") {
                open_par += 1;
            } else if line.starts_with("and ") {
                assert!(open_par > 0, "{what}: `and` outside par");
            } else if line == "end" {
                open_par -= 1;
            } else if let Some(over) = body.strip_prefix("Note over ") {
                for id in over.split(',') {
                    assert!(participants.contains(&id), "{what}: note over unknown {id}");
                }
            } else {
                let (from, to) = ["-->>", "--x", "->>"]
                    .iter()
                    .find_map(|arrow| body.split_once(arrow))
                    .unwrap_or_else(|| panic!("{what}: not a statement: {line:?}"));
                assert!(participants.contains(&from), "{what}: {from} undeclared");
                assert!(participants.contains(&to), "{what}: {to} undeclared");
            }
        }
        assert_eq!(open_par, 0, "{what}: par not closed");
    }

    #[test]
    fn parallel_uploads_are_a_par_block() {
        let text = diagram("push.jsonl", 1);
        assert!(text.contains("\n    par step "), "{text}");
        assert!(text.contains("\n    and step "), "{text}");
    }

    #[test]
    fn failures_are_crossed_and_the_reason_said() {
        let text = diagram("login-failed.jsonl", 1);
        assert!(text.contains("--xC: 401 Unauthorized"), "{text}");
        assert!(text.contains("Note over C,"), "{text}");
    }

    #[test]
    fn choosing_an_operation() {
        let flows = capture("crane.jsonl");
        let analysis = analyze(&flows, &Options::default());
        let err = choose(&analysis, None).unwrap_err().to_string();
        assert!(err.contains("choose one with --operation N"), "{err}");
        assert!(
            err.contains("  2. copy crane/img:1 → crane/copy:2"),
            "{err}"
        );
        let err = choose(&analysis, Some(99)).unwrap_err().to_string();
        assert!(err.contains("no operation 99"), "{err}");
    }

    #[test]
    fn escaping_keeps_statements_whole() {
        assert_eq!(escape("a;b #1 <x>\nz"), "a#59;b #35;1 #lt;x#gt; z");
        let runs = concurrent_runs(&[Some((0, 10)), Some((5, 20)), Some((30, 40)), None]);
        assert_eq!(runs, vec![0..2, 2..3, 3..4]);
    }
}
