//! The scenarios are what their names say: the dockerd sequences have the
//! requests dockerd 20.10 sent, in order, and each named capture was made
//! by the client it is named after.

use regtap_capture::Flow;
use regtap_fixtures::{Image, captured, whole_reference};

fn user_agents(flows: &[Flow]) -> Vec<&str> {
    let mut agents: Vec<&str> = flows
        .iter()
        .filter_map(|f| f.request.headers.get("user-agent"))
        .collect();
    agents.sort_unstable();
    agents.dedup();
    agents
}

#[test]
fn the_dockerd_sequences_have_the_observed_requests_in_start_order() {
    let flows = whole_reference();
    // login 3, first push 20, push to another repository 20, push again 7,
    // pull 8, Basic-auth login 2, Basic-auth push 22.
    assert_eq!(flows.len(), 82);
    let ids: Vec<u64> = flows.iter().map(|f| f.id).collect();
    assert_eq!(ids, (1..=82).collect::<Vec<u64>>());
    assert!(flows.is_sorted_by_key(|f| f.timing.request_start));
    let mounts = flows
        .iter()
        .filter(|f| f.request.url.contains("mount="))
        .count();
    assert_eq!(
        mounts, 3,
        "the cross-repository push mounts its three layers"
    );
    let methods = |flows: &[Flow]| -> Vec<String> {
        flows
            .iter()
            .map(|f| {
                format!(
                    "{} {}",
                    f.request.method,
                    f.response.as_ref().map_or(0, |r| r.status)
                )
            })
            .collect()
    };
    let image = Image::new();
    assert_eq!(
        methods(&regtap_fixtures::first_push(&image, 4, 676)),
        [
            "GET 401",
            "GET 200",
            "POST 202",
            "POST 202",
            "POST 202",
            "PATCH 202",
            "PATCH 202",
            "PATCH 202",
            "PUT 201",
            "PUT 201",
            "PUT 201",
            "HEAD 200",
            "HEAD 200",
            "HEAD 200",
            "HEAD 404",
            "POST 202",
            "PATCH 202",
            "PUT 201",
            "HEAD 200",
            "PUT 201"
        ]
    );
    assert_eq!(
        methods(&regtap_fixtures::basic_push(&image, 61, 4756)),
        [
            "GET 401",
            "HEAD 404",
            "HEAD 404",
            "HEAD 404",
            "POST 202",
            "POST 202",
            "POST 202",
            "PATCH 202",
            "PATCH 202",
            "PATCH 202",
            "PUT 201",
            "PUT 201",
            "PUT 201",
            "HEAD 200",
            "HEAD 200",
            "HEAD 200",
            "HEAD 404",
            "POST 202",
            "PATCH 202",
            "PUT 201",
            "HEAD 200",
            "PUT 201"
        ]
    );
}

#[test]
fn each_named_capture_comes_from_its_client() {
    for (name, client) in [
        ("skopeo-copy", "skopeo/"),
        ("ctr", "containerd/"),
        ("crane", "go-containerregistry"),
    ] {
        let flows = captured(name);
        assert!(!flows.is_empty(), "{name} is empty");
        let agents = user_agents(&flows);
        assert!(
            agents.iter().any(|a| a.starts_with(client)),
            "{name}: {agents:?}"
        );
    }
}
