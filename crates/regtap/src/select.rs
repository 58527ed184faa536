//! Choosing operations of an analysis: `regtap inspect --client/--repository/
//! --operation/--failed`.

use regtap_decode::{Analysis, Operation, OperationKind, OperationStatus};

/// Which operations to keep; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    /// The client program, as `inspect` names it (`dockerd`, `skopeo`, …),
    /// ignoring case.
    pub client: Option<String>,
    /// A repository the operation worked on (either side of a copy).
    pub repository: Option<String>,
    /// The operation's number (`Operation::index`).
    pub operation: Option<usize>,
    pub failed: bool,
}

impl OperationFilter {
    pub fn is_empty(&self) -> bool {
        *self == OperationFilter::default()
    }

    fn matches(&self, analysis: &Analysis, operation: &Operation) -> bool {
        self.operation.is_none_or(|n| operation.index == n)
            && (!self.failed || matches!(operation.status, OperationStatus::Failed { .. }))
            && self.client.as_deref().is_none_or(|wanted| {
                operation
                    .client
                    .as_ref()
                    .is_some_and(|c| c.program.eq_ignore_ascii_case(wanted))
            })
            && self
                .repository
                .as_deref()
                .is_none_or(|wanted| works_on(analysis, operation, wanted))
    }
}

fn works_on(analysis: &Analysis, operation: &Operation, repository: &str) -> bool {
    let named = match &operation.kind {
        OperationKind::Push { repository: r, .. } | OperationKind::Pull { repository: r, .. } => {
            r == repository
        }
        OperationKind::Copy {
            source_repository,
            repository: r,
            ..
        } => source_repository == repository || r == repository,
        OperationKind::Login { .. } | OperationKind::Other => false,
    };
    named
        || operation.flow_ids.iter().any(|&id| {
            analysis
                .flow(id)
                .and_then(|f| f.kind.repository())
                .is_some_and(|r| r == repository)
        })
}

/// Keeps the operations the filter matches, their flows, the upload
/// sessions among those flows and the diagnostics about them (and those
/// about no single flow). Operations keep their numbers; a flow's
/// `operation` still counts in the whole capture (it is `index - 1`).
pub fn retain(analysis: &mut Analysis, filter: &OperationFilter) {
    if filter.is_empty() {
        return;
    }
    let kept: Vec<usize> = analysis
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| filter.matches(analysis, op))
        .map(|(position, _)| position)
        .collect();
    let mut position = 0;
    analysis.operations.retain(|_| {
        let keep = kept.contains(&position);
        position += 1;
        keep
    });
    analysis
        .flows
        .retain(|f| f.operation.is_some_and(|o| kept.contains(&o)));
    let flow_ids: std::collections::HashSet<u64> =
        analysis.flows.iter().map(|f| f.flow_id).collect();
    analysis
        .sessions
        .retain(|s| s.flow_ids.iter().any(|id| flow_ids.contains(id)));
    analysis
        .diagnostics
        .retain(|d| d.flow_id.is_none_or(|id| flow_ids.contains(&id)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use regtap_decode::{Options, analyze};

    fn analysis(capture: &str) -> Analysis {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../captures")
            .join(capture);
        let flows = crate::input::load(&path).unwrap().flows;
        analyze(&flows, &Options::default())
    }

    fn titles(analysis: &Analysis) -> Vec<String> {
        analysis
            .operations
            .iter()
            .map(|o| format!("{}. {}", o.index, o.title))
            .collect()
    }

    #[test]
    fn by_client_repository_number_and_failure() {
        let all = analysis("parallel-clients.jsonl");
        let clients: Vec<&str> = all
            .operations
            .iter()
            .filter_map(|o| o.client.as_ref().map(|c| c.program.as_str()))
            .collect();
        assert!(clients.contains(&"skopeo"), "{clients:?}");

        let mut skopeo = all.clone();
        retain(
            &mut skopeo,
            &OperationFilter {
                client: Some("SKOPEO".to_owned()),
                ..Default::default()
            },
        );
        assert!(!skopeo.operations.is_empty());
        assert!(
            skopeo
                .operations
                .iter()
                .all(|o| o.client.as_ref().unwrap().program == "skopeo")
        );
        // Every flow kept belongs to a kept operation, and only those.
        let kept_flows: usize = skopeo.operations.iter().map(|o| o.flow_ids.len()).sum();
        assert_eq!(skopeo.flows.len(), kept_flows);

        let mut par_b = all.clone();
        retain(
            &mut par_b,
            &OperationFilter {
                repository: Some("lab/par-b".to_owned()),
                ..Default::default()
            },
        );
        assert_eq!(titles(&par_b), ["2. push lab/par-b:v1"]);

        let mut third = all.clone();
        retain(
            &mut third,
            &OperationFilter {
                operation: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(titles(&third), ["3. pull lab/par-skopeo:v1"]);

        let mut failed = all;
        retain(
            &mut failed,
            &OperationFilter {
                failed: true,
                ..Default::default()
            },
        );
        assert!(failed.operations.is_empty(), "{:?}", titles(&failed));

        let mut denied = analysis("push-denied.jsonl");
        retain(
            &mut denied,
            &OperationFilter {
                failed: true,
                repository: Some("lab/denied".to_owned()),
                ..Default::default()
            },
        );
        assert_eq!(titles(&denied), ["1. push lab/denied"]);
        assert!(!denied.diagnostics.is_empty());
    }

    #[test]
    fn a_copy_matches_either_repository() {
        let all = analysis("crane.jsonl");
        for repository in ["crane/img", "crane/copy"] {
            let mut copy = all.clone();
            retain(
                &mut copy,
                &OperationFilter {
                    repository: Some(repository.to_owned()),
                    operation: Some(2),
                    ..Default::default()
                },
            );
            assert_eq!(
                titles(&copy),
                ["2. copy crane/img:1 → crane/copy:2"],
                "{repository}"
            );
        }
    }
}
