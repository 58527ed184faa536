//! Who sent a request: the program named by its `User-Agent`, and the
//! client connection that carried it.
//!
//! Go's default `Go-http-client/x` says nothing about the program (crane
//! sends it on its `/v2/` pings and `go-containerregistry` on the rest, on
//! one HTTP/2 connection), so a request with no telling User-Agent takes the
//! program of the other requests on its connection.

use std::borrow::Borrow;

use crate::hash::HashMap;
use crate::model::Client;

/// The program a `User-Agent` names.
pub(crate) fn from_user_agent(user_agent: &str) -> Option<Client> {
    let user_agent = user_agent.trim();
    let first = user_agent.split_whitespace().next()?;
    let (product, version) = match first.split_once('/') {
        Some((product, version)) => (product, Some(version)),
        None => (first, None),
    };
    let lower = product.to_ascii_lowercase();
    let version = version.filter(|v| !v.is_empty()).map(str::to_owned);
    let program = match lower.as_str() {
        // dockerd: `docker/20.10.24 go/… UpstreamClient(Docker-Client/20.10.24 \(linux\))`.
        "docker" => "dockerd".to_owned(),
        "libpod" => "podman".to_owned(),
        "regctl" | "regbot" | "regsync" => "regclient".to_owned(),
        "oras" | "oras-go" => "oras-go".to_owned(),
        // containers/image's default, when the program set none.
        "containers" => "containers-image".to_owned(),
        other => other.to_owned(),
    };
    let detail = upstream_client(user_agent);
    Some(Client {
        program,
        version,
        detail,
    })
}

/// The `UpstreamClient(…)` part dockerd adds: the docker CLI that asked it.
fn upstream_client(user_agent: &str) -> Option<String> {
    let start = user_agent.find("UpstreamClient(")? + "UpstreamClient(".len();
    let rest = user_agent.get(start..)?;
    let end = rest.rfind(')')?;
    let inner = rest.get(..end)?.replace("\\(", "(").replace("\\)", ")");
    (!inner.is_empty()).then_some(inner)
}

/// A User-Agent that names an HTTP library, not the program using it.
fn generic(client: &Client) -> bool {
    client.program == "go-http-client"
}

/// The client of every flow: its own User-Agent, or, when that names only
/// Go's HTTP library (or is missing), the program seen on the same client
/// connection. `connections[i]` is flow `i`'s client connection.
///
/// Clients are owned or borrowed (`&Client`, as linking passes them, so
/// that a capture's thousands of requests do not each copy theirs twice).
pub(crate) fn resolve<C: Borrow<Client> + Clone>(
    own: &[Option<C>],
    connections: &[Option<&str>],
) -> Vec<Option<C>> {
    let mut program_of: HashMap<&str, &C> = HashMap::default();
    for (client, connection) in own.iter().zip(connections) {
        if let (Some(client), Some(connection)) = (client, connection)
            && !generic(client.borrow())
        {
            program_of.entry(connection).or_insert(client);
        }
    }
    own.iter()
        .zip(connections)
        .map(|(client, connection)| {
            let inherited = connection.and_then(|c| program_of.get(c)).copied();
            match client {
                Some(c) if !generic(c.borrow()) => Some(c.clone()),
                _ => inherited.cloned().or_else(|| client.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(ua: &str) -> (String, Option<String>) {
        let c = from_user_agent(ua).unwrap_or_else(|| panic!("no client in {ua:?}"));
        (c.program, c.version)
    }

    #[test]
    fn known_programs() {
        let dockerd = from_user_agent(
            r"docker/20.10.24+dfsg1 go/go1.19.8 git-commit/5d6db84 kernel/6.1 os/linux arch/amd64 UpstreamClient(Docker-Client/20.10.24+dfsg1 \(linux\))",
        )
        .unwrap();
        assert_eq!(dockerd.program, "dockerd");
        assert_eq!(dockerd.version.as_deref(), Some("20.10.24+dfsg1"));
        assert_eq!(
            dockerd.detail.as_deref(),
            Some("Docker-Client/20.10.24+dfsg1 (linux)")
        );
        assert_eq!(
            program("containerd/1.6.20~ds1"),
            ("containerd".into(), Some("1.6.20~ds1".into()))
        );
        assert_eq!(program("skopeo/1.9.3").0, "skopeo");
        assert_eq!(program("libpod/4.3.1").0, "podman");
        assert_eq!(program("Buildah/1.28.2").0, "buildah");
        assert_eq!(
            program("go-containerregistry"),
            ("go-containerregistry".into(), None)
        );
        assert_eq!(
            program("crane/v0.19.0 go-containerregistry/v0.19.0").0,
            "crane"
        );
        assert_eq!(program("regclient/regclient (v0.5.0)").0, "regclient");
        assert_eq!(program("oras/1.2.0").0, "oras-go");
        assert_eq!(program("python-requests/2.34.2").0, "python-requests");
        assert_eq!(program("curl/7.88.1").0, "curl");
        assert_eq!(program("Go-http-client/2.0").0, "go-http-client");
        assert_eq!(program("MyTool/3 (extra)").0, "mytool");
        assert!(from_user_agent("  ").is_none());
    }

    #[test]
    fn go_default_user_agent_takes_the_program_of_its_connection() {
        let crane = from_user_agent("go-containerregistry");
        let go = from_user_agent("Go-http-client/2.0");
        let own = vec![go.clone(), crane.clone(), go.clone(), None];
        let connections = vec![
            Some("127.0.0.1:1"),
            Some("127.0.0.1:1"),
            Some("127.0.0.1:2"),
            Some("127.0.0.1:1"),
        ];
        let resolved = resolve(&own, &connections);
        assert_eq!(resolved[0], crane);
        assert_eq!(resolved[1], crane);
        // Alone on its connection, Go's library is all that is known.
        assert_eq!(resolved[2], go);
        assert_eq!(resolved[3], crane);
    }
}
