//! What a user checks in `regtap inspect` after running registry clients:
//! one operation per client command, of the right kind, on the right
//! repository, by the right program, and no digest verdict that contradicts
//! the registry.

use regtap_decode::{Analysis, DigestCheck, Operation, OperationKind, OperationStatus};

/// One expected operation, written as `regtap inspect` would let a user say it.
#[derive(Debug, Clone)]
pub struct Expected {
    line: String,
}

impl Expected {
    pub fn push(registry: &str, repository: &str, client: &str) -> Self {
        Expected {
            line: format!("push {registry}/{repository} by {client}: succeeded"),
        }
    }

    pub fn pull(registry: &str, repository: &str, client: &str) -> Self {
        Expected {
            line: format!("pull {registry}/{repository} by {client}: succeeded"),
        }
    }

    pub fn copy(from: (&str, &str), to: (&str, &str), client: &str) -> Self {
        Expected {
            line: format!(
                "copy {}/{} to {}/{} by {client}: succeeded",
                from.0, from.1, to.0, to.1
            ),
        }
    }
}

/// `push registry/repository by program: status`, the form [`Expected`] uses.
pub fn describe(op: &Operation) -> String {
    let client = op
        .client
        .as_ref()
        .map_or("(no client)", |c| c.program.as_str());
    let what = match &op.kind {
        OperationKind::Login { registry } => format!("login {registry}"),
        OperationKind::Push {
            registry,
            repository,
            ..
        } => format!("push {registry}/{repository}"),
        OperationKind::Pull {
            registry,
            repository,
            ..
        } => format!("pull {registry}/{repository}"),
        OperationKind::Copy {
            source_registry,
            source_repository,
            registry,
            repository,
            ..
        } => format!("copy {source_registry}/{source_repository} to {registry}/{repository}"),
        OperationKind::Other => format!("other ({})", op.title),
    };
    let status = match &op.status {
        OperationStatus::Succeeded => "succeeded".to_owned(),
        OperationStatus::Failed { reason } => format!("failed ({reason})"),
        OperationStatus::Incomplete => "incomplete".to_owned(),
    };
    format!("{what} by {client}: {status}")
}

/// The decoder's operations are exactly `expected`: in this order when
/// `ordered` (clients run one after the other), in any order otherwise
/// (clients run in parallel).
#[track_caller]
pub fn operations(analysis: &Analysis, expected: &[Expected], ordered: bool) {
    let mut seen: Vec<String> = analysis.operations.iter().map(describe).collect();
    let mut wanted: Vec<String> = expected.iter().map(|e| e.line.clone()).collect();
    if !ordered {
        seen.sort();
        wanted.sort();
    }
    assert!(
        seen == wanted,
        "decoder: operations\n  {}\nwanted\n  {}",
        seen.join("\n  "),
        wanted.join("\n  ")
    );
}

/// No upload session or download of which the decoder says its bytes do not
/// match their digest: in these scenarios the registry accepted every upload
/// (201) and the clients checked what they downloaded.
#[track_caller]
pub fn no_mismatch(analysis: &Analysis) {
    for session in &analysis.sessions {
        assert!(
            !matches!(session.digest_check, DigestCheck::Mismatch { .. }),
            "decoder: upload session {} ({}) {:?}, yet the registry accepted it",
            session.index,
            session.repository,
            session.digest_check
        );
    }
    for diagnostic in &analysis.diagnostics {
        assert!(
            !diagnostic.message.to_lowercase().contains("mismatch"),
            "decoder diagnostic on flow {:?}: {}",
            diagnostic.flow_id,
            diagnostic.message
        );
    }
    for flow in &analysis.flows {
        for annotation in &flow.annotations {
            let said = format!("{}: {}", annotation.label, annotation.text);
            assert!(
                !said.to_lowercase().contains("mismatch"),
                "decoder: flow {}: {said}",
                flow.flow_id
            );
        }
    }
}
