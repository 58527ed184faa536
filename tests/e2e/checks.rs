//! Checks every capture of the lab must pass, whatever the scenario.

use regtap_capture::{Capture, ErrorStage};
use regtap_decode::{Analysis, DigestCheck, HmacStatus, Options, SessionOutcome, analyze};
use regtap_lab::verify::verify_rs256;
use regtap_lab::{HTTP_SECRET, Lab, TOKEN_ISSUER};

use crate::flows::{Flows, Token};

/// What the lab's hosts are called, and what every exchange must look like:
/// through a CONNECT tunnel to a lab name, HTTPS, complete, no proxy error;
/// every token signed by the lab's key with the expected claims; every `_state`
/// carrying a valid HMAC of the registry's secret and naming its own upload.
pub fn common(lab: &Lab, capture: &Capture) {
    let flows = Flows::of(capture);
    let listing = flows.listing();
    assert!(!capture.truncated_tail, "capture cut off:\n{listing}");
    let lab_hosts = [
        lab.registry_host(),
        lab.basic_registry_host(),
        lab.auth_host(),
    ];
    for exchange in &flows.all {
        let flow = exchange.flow;
        let line = exchange.line();
        assert!(
            lab_hosts.contains(&exchange.url.authority),
            "{line}: not a lab host"
        );
        assert_eq!(flow.scheme, "https", "{line}");
        assert_eq!(
            flow.connect_authority.as_deref(),
            Some(exchange.url.authority.as_str()),
            "{line}: not seen inside a CONNECT tunnel to its host"
        );
        assert!(
            flow.request.body.is_complete(),
            "{line}: request body cut off"
        );
        let response = flow
            .response
            .as_ref()
            .unwrap_or_else(|| panic!("{line}: no response"));
        let declared: Option<u64> = response
            .headers
            .get("Content-Length")
            .and_then(|v| v.parse().ok());
        // Every body the client read to its end was recorded whole.
        if let Some(declared) = declared
            && exchange.method() != "HEAD"
            && response.body.size != declared
        {
            assert!(
                client_may_skip_body(exchange),
                "{line}: {} of {declared} bytes recorded",
                response.body.size
            );
        }
        match &flow.error {
            None => assert!(response.body.is_complete(), "{line}: response body cut off"),
            // A body that went through whole is complete, whoever stopped first.
            Some(error) => assert!(
                error.stage == ErrorStage::Response
                    && error.message.contains("client stopped reading")
                    && client_may_skip_body(exchange)
                    && Some(response.body.size) != declared,
                "{line}: {error:?}"
            ),
        }

        if exchange.url.authority == lab.auth_host() && exchange.status() == 200 {
            check_token(lab, &Token::of(exchange), &line);
        }
        for state in [exchange.request_state(), exchange.location_state()]
            .into_iter()
            .flatten()
        {
            let state = state.unwrap_or_else(|e| panic!("{line}: {e}"));
            let repository = repository_of(&exchange.url.path)
                .unwrap_or_else(|| panic!("{line}: _state on a non-repository path"));
            assert_eq!(
                state.name, repository,
                "{line}: _state names another repository"
            );
        }
        if let Some(Ok(state)) = exchange.request_state() {
            assert!(
                exchange
                    .url
                    .path
                    .ends_with(&format!("/blobs/uploads/{}", state.uuid)),
                "{line}: _state UUID {} is not the upload in the path",
                state.uuid
            );
        }
    }
}

/// Go clients close the connection after reading the head of an error or of
/// the `/v2/` ping, without reading the body; the proxy then sees the client
/// stop reading before the body went through.
fn client_may_skip_body(exchange: &crate::flows::Exchange<'_>) -> bool {
    exchange.status() >= 400 || exchange.url.path == "/v2/"
}

fn check_token(lab: &Lab, token: &Token, line: &str) {
    verify_rs256(&token.jwt, &lab.pki.signing_public_key_der())
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(token.header["alg"], "RS256", "{line}");
    assert_eq!(
        token.header["x5c"][0],
        lab.pki.signing_cert_x5c().as_str(),
        "{line}: x5c is not the signing cert"
    );
    assert_eq!(token.claims["iss"], TOKEN_ISSUER, "{line}");
    assert_eq!(token.claims["aud"], lab.token_service(), "{line}");
    let (iat, exp) = (
        token.claims["iat"].as_i64().unwrap_or(0),
        token.claims["exp"].as_i64().unwrap_or(0),
    );
    assert_eq!(exp - iat, regtap_lab::token::TOKEN_LIFETIME_SECS, "{line}");
    assert!(
        lab.token_server.issued().iter().any(|t| t.jwt == token.jwt),
        "{line}: a token the lab's token server never issued"
    );
}

/// `lab/app` of `/v2/lab/app/blobs/uploads/…`.
pub fn repository_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    ["/blobs/", "/manifests/", "/tags/"]
        .iter()
        .find_map(|marker| rest.find(marker).map(|i| rest[..i].to_owned()))
}

/// regtap-decode's analysis, with the lab registries' secret.
pub fn decode(capture: &Capture) -> Analysis {
    analyze(
        &capture.flows,
        &Options {
            registry_secret: Some(HTTP_SECRET.as_bytes().to_vec()),
        },
    )
}

/// regtap-decode's analysis, with the registry secret, and the checks that
/// hold for every capture: valid `_state` HMACs, every completed upload's
/// digest verified.
pub fn analysis(capture: &Capture) -> Analysis {
    let analysis = decode(capture);
    flows_in_one_operation(capture, &analysis);
    for session in analysis
        .sessions
        .iter()
        .filter(|s| s.outcome == SessionOutcome::Completed)
    {
        assert_eq!(
            session.digest_check,
            DigestCheck::Verified,
            "decoder: session {} digest {:?}",
            session.index,
            session.digest_check
        );
    }
    analysis
}

/// Every flow of `capture` is in exactly one operation of `analysis` and
/// explained by its steps; every `_state` HMAC verifies.
pub fn flows_in_one_operation(capture: &Capture, analysis: &Analysis) {
    assert_eq!(analysis.flows.len(), capture.flows.len());
    // Every flow belongs to exactly one operation, and is explained by its steps.
    let mut in_operations = std::collections::BTreeSet::new();
    for op in &analysis.operations {
        assert!(!op.steps.is_empty(), "decoder: {} has no steps", op.title);
        let in_steps: std::collections::BTreeSet<u64> = op
            .steps
            .iter()
            .flat_map(|s| s.flow_ids.iter().copied())
            .collect();
        let own: std::collections::BTreeSet<u64> = op.flow_ids.iter().copied().collect();
        assert_eq!(
            in_steps, own,
            "decoder: steps of {} do not cover its flows",
            op.title
        );
        for id in &op.flow_ids {
            assert!(
                in_operations.insert(*id),
                "decoder: flow {id} in two operations"
            );
        }
    }
    assert_eq!(
        in_operations.len(),
        capture.flows.len(),
        "decoder: flows outside every operation:\n{}",
        operations_listing(analysis)
    );
    for flow in &analysis.flows {
        if let Some(state) = &flow.upload_state {
            assert_eq!(
                state.hmac,
                HmacStatus::Valid,
                "decoder: flow {} _state HMAC {:?}",
                flow.flow_id,
                state.hmac
            );
        }
    }
}

/// The operations of an analysis as `kind title: status`, for messages.
pub fn operations_listing(analysis: &Analysis) -> String {
    analysis
        .operations
        .iter()
        .map(|op| format!("  {} [{:?}]", op.title, op.status))
        .collect::<Vec<_>>()
        .join("\n")
}
