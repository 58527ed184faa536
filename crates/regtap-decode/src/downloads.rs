//! Downloads checked against the digest they were asked by: the proxy hashed
//! every body, so a complete blob or manifest fetched by digest is compared
//! with that digest (and the registry's `Docker-Content-Digest` with it).
//! Ranged downloads (`206`) of one blob in one operation are checked as one.

use std::collections::BTreeMap;

use regtap_capture::Ending;
use sha2::Digest as _;

use crate::Works;
use crate::http::{human_bytes, short_digest};
use crate::model::AnnotationKind;
use crate::model::{Annotation, ByteRange, DigestCheck, DownloadCheck, FlowKind, Reference};

/// Sets the download check of every blob and manifest GET answered 200 or 206.
pub(crate) fn check(works: &mut Works) {
    for w in works.items.iter_mut() {
        let local = &mut w.local;
        let Some(response) = &local.flow.response else {
            continue;
        };
        let header = response
            .headers
            .get("docker-content-digest")
            .map(|d| d.trim().to_owned());
        let asked = match &local.kind {
            FlowKind::BlobGet { digest, .. } => Some(digest.clone()),
            FlowKind::ManifestGet {
                reference: Reference::Digest(digest),
                ..
            } => Some(digest.clone()),
            // A manifest by tag is checked against its header where it is
            // decoded (`local::manifest_body`).
            _ => None,
        };
        let Some(digest) = asked else {
            continue;
        };
        let status = response.status;
        if status != 200 && status != 206 {
            continue;
        }
        if let Some(header) = &header
            && header != &digest
        {
            local.annotations.push(Annotation::warning(
                AnnotationKind::Digest,
                format!(
                    "the registry's Docker-Content-Digest {header} is not the digest asked for ({digest})"
                ),
            ));
        }
        let range = (status == 206)
            .then(|| {
                response
                    .headers
                    .get("content-range")
                    .and_then(content_range)
            })
            .flatten();
        let verdict = if status == 206 {
            DigestCheck::NotVerifiable {
                reason: match range {
                    Some(r) => format!("a partial download (bytes {}..{})", r.start, r.end),
                    None => "a partial download without a Content-Range".to_owned(),
                },
            }
        } else {
            whole_body_verdict(local, &digest)
        };
        match &verdict {
            DigestCheck::Verified => local.annotations.push(Annotation::info(
                AnnotationKind::Digest,
                format!(
                    "digest verified: the {} received hash to {digest}",
                    human_bytes(response.body.size)
                ),
            )),
            DigestCheck::Mismatch { computed, .. } => local.annotations.push(Annotation::error(
                AnnotationKind::Digest,
                format!(
                    "digest MISMATCH: the {} received hash to {computed}, not {digest}",
                    human_bytes(response.body.size)
                ),
            )),
            DigestCheck::NotVerifiable { reason } if status == 200 => {
                local.annotations.push(Annotation::info(
                    AnnotationKind::Digest,
                    format!("digest not verifiable: {reason}"),
                ))
            }
            _ => {}
        }
        local.download = Some(Box::new(DownloadCheck {
            digest,
            verdict,
            content_digest_header: header,
            range,
        }));
    }
}

/// The verdict on a whole (200) body.
fn whole_body_verdict(local: &crate::local::Local, digest: &str) -> DigestCheck {
    let Some(response) = &local.flow.response else {
        return DigestCheck::NotVerifiable {
            reason: "no response".to_owned(),
        };
    };
    let body = &response.body;
    let whole = local.response_body_whole();
    if body.ended == Ending::Unknown && !whole {
        return DigestCheck::NotVerifiable {
            reason: "the recording does not say whether the body arrived whole".to_owned(),
        };
    }
    if body.is_cut_off() || !whole {
        return DigestCheck::NotVerifiable {
            reason: format!("the body was cut off after {}", human_bytes(body.size)),
        };
    }
    let encoding = response
        .headers
        .get("content-encoding")
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e != "identity");
    if let Some(encoding) = encoding {
        return DigestCheck::NotVerifiable {
            reason: format!(
                "served with Content-Encoding: {encoding}; the capture hashed the encoded bytes"
            ),
        };
    }
    verdict_of_bytes(digest, body.sha256.as_deref(), || body.full_bytes())
}

/// Compares bytes known by their SHA-256 (and, when kept, whole) with a digest.
pub(crate) fn verdict_of_bytes(
    digest: &str,
    sha256_hex: Option<&str>,
    bytes: impl FnOnce() -> Option<Vec<u8>>,
) -> DigestCheck {
    let well_formed = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64,
        Some(("sha512", hex)) => hex.len() == 128,
        _ => true,
    } && digest
        .split_once(':')
        .is_some_and(|(_, hex)| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return DigestCheck::NotVerifiable {
            reason: format!("{digest} is not a well-formed digest"),
        };
    }
    let sha256_hex = sha256_hex.unwrap_or_default();
    let known = sha256_hex.len() == 64 && sha256_hex.bytes().all(|b| b.is_ascii_hexdigit());
    let (computed, expected) = match digest.split_once(':') {
        Some(("sha256", _)) if !known => {
            return DigestCheck::NotVerifiable {
                reason: "the capture holds no SHA-256 of these bytes".to_owned(),
            };
        }
        Some(("sha256", hex)) => (format!("sha256:{sha256_hex}"), hex),
        Some(("sha512", hex)) => match bytes() {
            Some(bytes) => (
                format!("sha512:{}", hex::encode(sha2::Sha512::digest(&bytes))),
                hex,
            ),
            None => {
                return DigestCheck::NotVerifiable {
                    reason:
                        "a sha512 digest, and the capture holds only the SHA-256 of these bytes"
                            .to_owned(),
                };
            }
        },
        _ => {
            return DigestCheck::NotVerifiable {
                reason: format!("{digest} is not a sha256 or sha512 digest"),
            };
        }
    };
    let matches = computed
        .split_once(':')
        .is_some_and(|(_, hex)| hex.eq_ignore_ascii_case(expected));
    if matches {
        DigestCheck::Verified
    } else {
        DigestCheck::Mismatch {
            expected: digest.to_owned(),
            computed,
        }
    }
}

/// `bytes 0-99/200` → `[0, 100)` of 200; `bytes 0-99/*` → size unknown.
fn content_range(value: &str) -> Option<ByteRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.trim().split_once('-')?;
    let start: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    (last >= start).then_some(ByteRange {
        start,
        end: last.checked_add(1)?,
        total,
    })
}

/// The 206 answers for one blob in one operation are one download: their
/// coverage is told, and when the capture holds every byte of a contiguous
/// cover, the whole is hashed.
pub(crate) fn ranges(works: &mut Works) {
    let mut downloads: BTreeMap<(Option<usize>, String), Vec<usize>> = BTreeMap::new();
    for (i, w) in works.items.iter().enumerate() {
        if let Some(check) = &w.local.download
            && check.range.is_some()
        {
            downloads
                .entry((w.operation, check.digest.clone()))
                .or_default()
                .push(i);
        }
    }
    for ((_, digest), members) in downloads {
        let mut spans: Vec<(ByteRange, usize)> = members
            .iter()
            .filter_map(|&i| {
                let range = works.items.get(i)?.local.download.as_ref()?.range?;
                Some((range, i))
            })
            .collect();
        spans.sort_by_key(|(r, i)| (r.start, r.end, *i));
        let total = spans.iter().find_map(|(r, _)| r.total);
        let mut covered = 0u64;
        let mut reach = 0u64;
        let mut contiguous = true;
        for (r, _) in &spans {
            if r.start > reach {
                contiguous = false;
            } else if r.start < reach {
                // Overlaps are not a gap, but the concatenation would repeat bytes.
                contiguous = false;
            }
            let fresh_start = r.start.max(reach);
            covered = covered.saturating_add(r.end.saturating_sub(fresh_start));
            reach = reach.max(r.end);
        }
        let whole = total.is_some_and(|t| covered >= t && reach >= t);
        let bytes: Option<Vec<u8>> = if whole && contiguous {
            let mut all = Vec::new();
            let mut complete = true;
            for (_, i) in &spans {
                match works
                    .items
                    .get(*i)
                    .and_then(|w| w.local.flow.response.as_ref())
                    .and_then(|r| r.body.full_bytes())
                {
                    Some(part) => all.extend_from_slice(&part),
                    None => complete = false,
                }
            }
            complete.then_some(all)
        } else {
            None
        };
        let verdict = match &bytes {
            Some(all) => verdict_of_bytes(
                &digest,
                Some(&hex::encode(sha2::Sha256::digest(all))),
                || Some(all.clone()),
            ),
            None if whole => DigestCheck::NotVerifiable {
                reason:
                    "the ranges cover the whole blob, but the capture holds only each range's hash"
                        .to_owned(),
            },
            None => DigestCheck::NotVerifiable {
                reason: "the ranges do not cover the whole blob".to_owned(),
            },
        };
        let coverage = match total {
            Some(t) if whole => format!("cover all {}", human_bytes(t)),
            Some(t) => format!("cover {} of {}", human_bytes(covered), human_bytes(t)),
            None => format!(
                "cover {} (the blob's size was not given)",
                human_bytes(covered)
            ),
        };
        let text = format!(
            "ranged download of blob {}: {} range(s) {coverage}{}",
            short_digest(&digest),
            spans.len(),
            match &verdict {
                DigestCheck::Verified => "; together they hash to the digest".to_owned(),
                DigestCheck::Mismatch { computed, .. } =>
                    format!("; together they hash to {computed}: digest MISMATCH"),
                _ => String::new(),
            }
        );
        let severity_error = matches!(verdict, DigestCheck::Mismatch { .. });
        for (_, i) in &spans {
            if let Some(check) = works
                .items
                .get_mut(*i)
                .and_then(|w| w.local.download.as_mut())
            {
                check.verdict = verdict.clone();
            }
        }
        if let Some(w) = spans.last().and_then(|(_, i)| works.items.get_mut(*i)) {
            w.local.annotations.push(if severity_error {
                Annotation::error(AnnotationKind::Digest, text)
            } else {
                Annotation::info(AnnotationKind::Digest, text)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            content_range("bytes 0-99/200"),
            Some(ByteRange {
                start: 0,
                end: 100,
                total: Some(200)
            })
        );
        assert_eq!(content_range("bytes 5-9/*").map(|r| r.total), Some(None));
        assert_eq!(content_range("bytes 9-5/10"), None);
        assert_eq!(content_range("garbage"), None);
        assert_eq!(content_range("bytes 0-18446744073709551615/1"), None);
    }

    #[test]
    fn sha512_is_checked_from_the_bytes() {
        let bytes = b"hello".to_vec();
        let digest = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&bytes)));
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        assert_eq!(
            verdict_of_bytes(&digest, Some(&sha256), || Some(bytes.clone())),
            DigestCheck::Verified
        );
        assert!(matches!(
            verdict_of_bytes(&digest, Some(&sha256), || None),
            DigestCheck::NotVerifiable { .. }
        ));
        assert!(matches!(
            verdict_of_bytes(&digest, Some(&sha256), || Some(b"other".to_vec())),
            DigestCheck::Mismatch { .. }
        ));
    }

    #[test]
    fn no_hash_is_no_mismatch() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert!(matches!(
            verdict_of_bytes(&digest, None, || None),
            DigestCheck::NotVerifiable { .. }
        ));
    }
}
