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
    let mut code = ExitCode::SUCCESS;
    let json = match args.what {
        DecodeWhat::Jwt { token } => {
            let token = token.trim();
            let token = strip_prefix_ignore_case(token, "authorization:").trim();
            let token = strip_prefix_ignore_case(token, "bearer ").trim();
            serde_json::to_string_pretty(&regtap_decode::jwt::decode(token)?)?
        }
        DecodeWhat::State { value, secret } => {
            let value = state_value(&value);
            let info = regtap_decode::state::decode(value, secret.as_deref().map(str::as_bytes))?;
            if info.hmac == regtap_decode::HmacStatus::Invalid {
                eprintln!("regtap: the HMAC does not verify with the given secret");
                code = ExitCode::from(1);
            }
            serde_json::to_string_pretty(&info)?
        }
    };
    crate::cmd_inspect::print_all(&format!("{json}\n"))?;
    Ok(code)
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
