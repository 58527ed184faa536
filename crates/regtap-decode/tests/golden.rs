//! Golden snapshots of what `regtap inspect` prints, as text and as JSON,
//! for every capture in `captures/*.jsonl` (listed when the test runs, so
//! captures added later are covered without touching this file). The
//! snapshot is named after the capture's file stem.
//!
//! After an intended change, regenerate and then READ the `.snap` files:
//!
//!     INSTA_UPDATE=always cargo test -p regtap-decode --test golden

use std::path::{Path, PathBuf};

use regtap_capture::Capture;
use regtap_decode::{Options, analyze, render_text};

fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../captures");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn inspect_of_every_capture_matches_its_snapshot() {
    let paths = captures();
    assert!(
        paths.iter().any(|p| p.ends_with("dockerhub-push.jsonl")),
        "the transcribed Docker Hub capture is missing: {paths:?}"
    );
    for path in paths {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let capture = Capture::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let analysis = analyze(&capture.flows, &Options::default());
        assert_eq!(
            analysis.flows.len(),
            capture.flows.len(),
            "{stem}: flows lost"
        );
        let mut holders: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for operation in &analysis.operations {
            for id in &operation.flow_ids {
                *holders.entry(*id).or_default() += 1;
            }
        }
        for (flow, decoded) in analysis.pair(&capture.flows) {
            assert_eq!(
                decoded.map(|d| d.flow_id),
                Some(flow.id),
                "{stem}: flow #{} is found by its id",
                flow.id
            );
        }
        for flow in &capture.flows {
            assert_eq!(
                holders.get(&flow.id),
                Some(&1),
                "{stem}: flow #{} is not in exactly one operation",
                flow.id
            );
        }
        let text = render_text(&analysis, &capture.flows, false);
        insta::with_settings!({ snapshot_suffix => "text", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(stem.clone(), text);
        });
        insta::with_settings!({ snapshot_suffix => "json", prepend_module_to_snapshot => false }, {
            insta::assert_json_snapshot!(stem.clone(), analysis);
        });
    }
}
