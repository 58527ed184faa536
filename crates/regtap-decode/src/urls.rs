//! What a request URL says beyond its path: the expiry of a pre-signed
//! storage URL (never its signature), and containerd's `ns=` naming the
//! upstream registry a mirror request stands for.

use url::Url;

use crate::errors::one_line;
use crate::http::{query_first, unix_to_rfc3339};
use crate::local::Local;
use crate::model::{Annotation, AnnotationKind};

const NANOS: i64 = 1_000_000_000;

pub(crate) fn annotate(local: &mut Local) {
    let Some(url) = local.url.clone() else {
        return;
    };
    presigned(local, &url);
    mirror(local, &url);
}

/// Until when a pre-signed URL is valid (Unix seconds), by its signing
/// scheme: AWS SigV4 and Google V4 (`*-Date` + `*-Expires`), CloudFront and
/// Azure-like `Expires=`/`se=`, Docker Hub's former `verify=<time>-<sig>`.
fn expiry(url: &Url) -> Option<(i64, &'static str)> {
    let q = |name: &str| query_first(url, name);
    for (date, expires, scheme) in [
        ("X-Amz-Date", "X-Amz-Expires", "AWS SigV4"),
        ("X-Goog-Date", "X-Goog-Expires", "Google V4"),
    ] {
        if let (Some(date), Some(expires)) = (q(date), q(expires)) {
            let start = compact_utc(&date)?;
            let seconds: i64 = expires.parse().ok()?;
            return Some((start.saturating_add(seconds), scheme));
        }
    }
    if let Some(expires) = q("Expires").and_then(|e| e.parse().ok()) {
        return Some((expires, "signed URL"));
    }
    if let Some(verify) = q("verify") {
        let time = verify.split('-').next()?.parse().ok()?;
        return Some((time, "Docker Hub verify="));
    }
    None
}

/// `20240722T170641Z` → Unix seconds.
fn compact_utc(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, &format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

fn presigned(local: &mut Local, url: &Url) {
    let Some((until, scheme)) = expiry(url) else {
        return;
    };
    let at = local.start().div_euclid(NANOS);
    let when = unix_to_rfc3339(until);
    let refused = local.status().is_some_and(|s| s == 400 || s == 403);
    local.annotations.push(if at > until {
        Annotation::error(
            AnnotationKind::Redirect,
            format!(
                "pre-signed URL ({scheme}) expired at {when}, {} s before this request{}",
                at - until,
                if refused {
                    ": that is why storage refused it"
                } else {
                    ""
                }
            ),
        )
    } else {
        Annotation::info(
            AnnotationKind::Redirect,
            format!(
                "pre-signed URL ({scheme}) valid until {when}, {} s after this request",
                until - at
            ),
        )
    });
}

fn mirror(local: &mut Local, url: &Url) {
    let Some(upstream) = query_first(url, "ns") else {
        return;
    };
    local.annotations.push(Annotation::info(
        AnnotationKind::Mirror,
        format!(
            "mirror request for the upstream registry {} (containerd's ns=)",
            one_line(&upstream)
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn expiries_of_the_signing_schemes() {
        let aws = url(
            "https://s3.example/b?X-Amz-Date=20240722T170641Z&X-Amz-Expires=1200&X-Amz-Signature=abc",
        );
        assert_eq!(expiry(&aws), Some((1_721_668_001 + 1200, "AWS SigV4")));
        let cdn = url("https://cdn.example/b?Expires=1721668001&Signature=x");
        assert_eq!(expiry(&cdn).map(|e| e.0), Some(1_721_668_001));
        let hub = url("https://production.cloudflare.docker.com/b?verify=1721668001-abcdef");
        assert_eq!(expiry(&hub).map(|e| e.0), Some(1_721_668_001));
        assert_eq!(expiry(&url("https://r.example/v2/")), None);
        assert_eq!(
            expiry(&url(
                "https://s3.example/b?X-Amz-Date=garbage&X-Amz-Expires=5"
            )),
            None
        );
    }
}
