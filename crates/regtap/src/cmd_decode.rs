//! `regtap decode`: decode a pasted JWT or `_state` value.

use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct DecodeArgs {
    #[command(subcommand)]
    what: DecodeWhat,
}

#[derive(Subcommand)]
enum DecodeWhat {
    /// Decode a JWT: header, x5c signer certificate, claims, access (the signature is not checked)
    Jwt {
        /// The token (an `Authorization: Bearer …` value is accepted too)
        token: String,
    },
    /// Decode a distribution `_state` value: name, upload id, offset, start time
    State {
        /// The value (percent-encoded or not), or a whole URL with `_state=`
        value: String,
        /// The registry's `http.secret`: verify the HMAC
        #[arg(long, env = "REGTAP_REGISTRY_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
}

/// Exits 1 when `--secret` was given and the HMAC does not verify.
pub fn run(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let (json, hmac_invalid) = output(args)?;
    if hmac_invalid {
        eprintln!("regtap: the HMAC does not verify with the given secret");
    }
    crate::cmd_inspect::print_all(&format!("{json}\n"))?;
    Ok(if hmac_invalid {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The decoded value as JSON, and whether a `_state` HMAC failed to verify.
fn output(args: DecodeArgs) -> anyhow::Result<(String, bool)> {
    Ok(match args.what {
        DecodeWhat::Jwt { token } => {
            let token = token.trim();
            let token = strip_prefix_ignore_case(token, "authorization:").trim();
            let token = strip_prefix_ignore_case(token, "bearer ").trim();
            let info = regtap_decode::jwt::decode(token)?;
            (serde_json::to_string_pretty(&info)?, false)
        }
        DecodeWhat::State { value, secret } => {
            let value = state_value(&value);
            let info = regtap_decode::state::decode(value, secret.as_deref().map(str::as_bytes))?;
            let invalid = info.hmac == regtap_decode::HmacStatus::Invalid;
            (serde_json::to_string_pretty(&info)?, invalid)
        }
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => text.get(prefix.len()..).unwrap_or(text),
        _ => text,
    }
}

/// The `_state` parameter of a URL, or the value itself.
fn state_value(input: &str) -> &str {
    let input = input.trim();
    match input.split_once("_state=") {
        Some((_, rest)) => rest.split('&').next().unwrap_or(rest),
        None => input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DecodeArgs,
    }

    fn decode(argv: &[&str]) -> anyhow::Result<(String, bool)> {
        let mut full = vec!["decode"];
        full.extend_from_slice(argv);
        output(Cli::parse_from(full).args)
    }

    /// The seed document's Docker Hub token and a `_state` of its PATCH.
    const JWT: &str = include_str!("../../regtap-decode/tests/data/dockerhub-jwt.txt");
    const STATE: &str = "eIbb6aiCKJ4yvBm73PQwwMK9oPGXr1l3F66xUAE6ZPd7Ik5hbWUiOiJqb2NrZXJkcmFnb24vdGVzdCIsIlVVSUQiOiJmN2IxOWY5Ny0yMzNiLTRkMjktOTNkZC03MjFiMjBlNmQ2ZjgiLCJPZmZzZXQiOjAsIlN0YXJ0ZWRBdCI6IjIwMjQtMDctMjJUMTc6MDc6MjBaIn0%3D";

    #[test]
    fn pasted_values() {
        let (json, _) = decode(&["jwt", &format!("Bearer {}", JWT.trim())]).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["claims"]["iss"], "auth.docker.io");
        assert_eq!(value["claims"]["exp"]["unix"], 1_721_668_302);
        let (json, invalid) = decode(&["state", STATE]).unwrap();
        assert!(!invalid);
        assert!(json.contains("f7b19f97-233b-4d29-93dd-721b20e6d6f8"));
        let (_, invalid) = decode(&["state", STATE, "--secret", "guess"]).unwrap();
        assert!(invalid);
        let err = decode(&["jwt", "a.b"]).unwrap_err().to_string();
        assert!(err.contains("a JWT has 3"), "{err}");
    }

    #[test]
    fn state_values_from_urls() {
        assert_eq!(state_value("abc"), "abc");
        assert_eq!(
            state_value("https://r/v2/a/blobs/uploads/u?_state=xyz%3D&digest=sha256:1"),
            "xyz%3D"
        );
        assert_eq!(strip_prefix_ignore_case("Bearer abc", "bearer "), "abc");
        assert_eq!(strip_prefix_ignore_case("ab", "bearer "), "ab");
    }
}
