//! `regtap decode`: decode a pasted JWT or `_state` value.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
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
        /// The token (an `Authorization: Bearer …` value is accepted too), or
        /// `-` to read it from standard input, out of the process list and
        /// the shell history
        token: String,
    },
    /// Decode a distribution `_state` value: name, upload id, offset, start time
    State {
        /// The value (percent-encoded or not), or a whole URL with `_state=`,
        /// or `-` to read it from standard input
        value: String,
        /// The registry's `http.secret`, to verify the HMAC (visible to other
        /// users in the process list: prefer --secret-file or the environment)
        #[arg(long, env = "REGTAP_REGISTRY_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Read the registry's `http.secret` from FILE (one line)
        #[arg(long, value_name = "FILE", conflicts_with = "secret")]
        secret_file: Option<PathBuf>,
    },
}

/// Exits 1 when `--secret` was given and the HMAC does not verify.
pub fn run(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let (json, hmac_invalid) = output(args, &mut std::io::stdin().lock())?;
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

/// Longest value read from standard input: a JWT or `_state` is a few KiB.
const MAX_PASTED: u64 = 1024 * 1024;

/// `value`, or what `stdin` holds when it is `-`.
fn argument_or_stdin(value: String, stdin: &mut dyn Read) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut text = String::new();
    stdin
        .take(MAX_PASTED + 1)
        .read_to_string(&mut text)
        .context("cannot read standard input")?;
    anyhow::ensure!(
        text.len() as u64 <= MAX_PASTED,
        "standard input holds more than {MAX_PASTED} bytes: not a token"
    );
    anyhow::ensure!(!text.trim().is_empty(), "standard input is empty");
    Ok(text.trim().to_owned())
}

/// The secret in `path`, without its line ending.
fn read_secret_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret file {}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(
        !secret.is_empty(),
        "the secret file {} is empty",
        path.display()
    );
    Ok(secret.to_owned())
}

/// The decoded value as JSON, and whether a `_state` HMAC failed to verify.
fn output(args: DecodeArgs, stdin: &mut dyn Read) -> anyhow::Result<(String, bool)> {
    Ok(match args.what {
        DecodeWhat::Jwt { token } => {
            let token = argument_or_stdin(token, stdin)?;
            let token = token.trim();
            let token = strip_prefix_ignore_case(token, "authorization:").trim();
            let token = strip_prefix_ignore_case(token, "bearer ").trim();
            let info = regtap_decode::jwt::decode(token)?;
            (serde_json::to_string_pretty(&info)?, false)
        }
        DecodeWhat::State {
            value,
            secret,
            secret_file,
        } => {
            let value = argument_or_stdin(value, stdin)?;
            let secret = match secret_file {
                Some(path) => Some(read_secret_file(&path)?),
                None => secret,
            };
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
        decode_with_stdin(argv, "")
    }

    fn decode_with_stdin(argv: &[&str], stdin: &str) -> anyhow::Result<(String, bool)> {
        let mut full = vec!["decode"];
        full.extend_from_slice(argv);
        output(Cli::parse_from(full).args, &mut stdin.as_bytes())
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
    fn values_and_secrets_off_the_command_line() {
        let (json, _) =
            decode_with_stdin(&["jwt", "-"], &format!("Bearer {}\n", JWT.trim())).unwrap();
        assert!(json.contains("auth.docker.io"), "{json}");
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "guess\n").unwrap();
        let secret = secret.to_str().unwrap();
        let (json, invalid) =
            decode_with_stdin(&["state", "-", "--secret-file", secret], STATE).unwrap();
        assert!(invalid, "the file's secret (without its newline) was used");
        assert!(json.contains("f7b19f97-233b-4d29-93dd-721b20e6d6f8"));
        let err = decode_with_stdin(&["jwt", "-"], " \n").unwrap_err();
        assert!(err.to_string().contains("standard input is empty"), "{err}");
        let huge = "a".repeat(MAX_PASTED as usize + 1);
        assert!(decode_with_stdin(&["jwt", "-"], &huge).is_err());
        let missing = decode(&["state", STATE, "--secret-file", "/nonexistent/secret"]);
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/secret")
        );
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
