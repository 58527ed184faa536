//! Golden snapshots of what `regtap inspect` prints, as text and as JSON,
//! for every capture in `captures/*.jsonl` (listed when the test runs, so
//! captures added later are covered without touching this file). The
//! snapshot is named after the capture's file stem.
//!
//! After an intended change, regenerate and then READ the `.snap` files:
//!
//!     INSTA_UPDATE=always cargo test -p regtap-decode --test golden

use regtap_decode::{Options, analyze, render_text};

#[test]
fn inspect_of_every_capture_matches_its_snapshot() {
    let captures = regtap_fixtures::captures();
    assert!(
        captures.iter().any(|(stem, _)| stem == "dockerhub-push"),
        "the transcribed Docker Hub capture is missing"
    );
    for (stem, flows) in captures {
        let analysis = analyze(&flows, &Options::default());
        assert_eq!(analysis.flows.len(), flows.len(), "{stem}: flows lost");
        let mut holders: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for operation in &analysis.operations {
            for id in &operation.flow_ids {
                *holders.entry(*id).or_default() += 1;
            }
        }
        for (flow, decoded) in analysis.pair(&flows) {
            assert_eq!(
                decoded.map(|d| d.flow_id),
                Some(flow.id),
                "{stem}: flow #{} is found by its id",
                flow.id
            );
        }
        for flow in &flows {
            assert_eq!(
                holders.get(&flow.id),
                Some(&1),
                "{stem}: flow #{} is not in exactly one operation",
                flow.id
            );
        }
        let text = render_text(&analysis, &flows, false);
        insta::with_settings!({ snapshot_suffix => "text", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(stem.clone(), text);
        });
        insta::with_settings!({ snapshot_suffix => "json", prepend_module_to_snapshot => false }, {
            insta::assert_json_snapshot!(stem.clone(), analysis);
        });
    }
}

/// The TUI shares its flows with the decoder instead of copying them; the
/// decoder then keeps bytes and credentials it would otherwise drop. What
/// it says must not depend on that.
#[test]
fn flows_shared_with_the_caller_analyse_as_flows_given_away() {
    use std::sync::Arc;

    use regtap_decode::Analyzer;

    for (stem, flows) in regtap_fixtures::captures() {
        let shared: Vec<Arc<regtap_capture::Flow>> = flows.iter().cloned().map(Arc::new).collect();
        let mut given = Analyzer::new(Options::default());
        let mut lent = Analyzer::new(Options::default());
        for (flow, held) in flows.into_iter().zip(&shared) {
            given.push_owned(flow);
            lent.push_shared(Arc::clone(held));
        }
        assert_eq!(lent.finish(), given.finish(), "{stem}");
        assert!(
            shared.iter().all(|flow| Arc::strong_count(flow) == 1),
            "{stem}: the analysis holds no flow"
        );
    }
}
