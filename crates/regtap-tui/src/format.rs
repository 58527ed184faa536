//! Short, fixed forms of sizes, durations, times and URLs for narrow columns.

use regtap_capture::UnixNanos;

pub use regtap_capture::human_bytes as bytes;

/// `850 µs`, `12 ms`, `1.23 s`, `2m05s`.
pub fn duration(nanos: i64) -> String {
    let nanos = nanos.max(0);
    if nanos < 1_000_000 {
        format!("{} µs", nanos / 1_000)
    } else if nanos < 1_000_000_000 {
        format!("{} ms", nanos / 1_000_000)
    } else if nanos < 60_000_000_000 {
        format!("{:.2} s", nanos as f64 / 1e9)
    } else {
        let seconds = nanos / 1_000_000_000;
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

/// Seconds since `origin`: `+0.676`.
pub fn offset(at: UnixNanos, origin: UnixNanos) -> String {
    format!("+{:.3}", (at - origin) as f64 / 1e9)
}

/// Bytes per second over `nanos`: `4.5 MiB/s`; `None` when no time passed.
pub fn rate(count: u64, nanos: i64) -> Option<String> {
    (nanos > 0).then(|| {
        let per_second = count as f64 * 1e9 / nanos as f64;
        format!("{}/s", bytes(per_second as u64))
    })
}

/// The `host[:port]` and the rest (path and query) of an absolute URL.
pub fn split_url(url: &str) -> (&str, &str) {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(slash) => after_scheme.split_at(slash),
        None => (after_scheme, "/"),
    }
}

/// The path with the query folded to `?…`: query values (`_state`, digests)
/// are long and shown whole in the detail pane.
pub fn short_path(url: &str) -> String {
    let (_, rest) = split_url(url);
    match rest.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => rest.to_owned(),
    }
}

/// `sha256:0123456789ab…`: enough of a digest to tell blobs apart.
pub fn short_digest(digest: &str) -> String {
    const KEEP: usize = 19; // "sha256:" + 12 hex digits
    match digest.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", &digest[..cut]),
        None => digest.to_owned(),
    }
}

/// At most `width` characters, the cut marked with `…`.
pub fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(850_000), "850 µs");
        assert_eq!(duration(12_400_000), "12 ms");
        assert_eq!(duration(1_234_000_000), "1.23 s");
        assert_eq!(duration(125_000_000_000), "2m05s");
        assert_eq!(duration(-5), "0 µs");
    }

    #[test]
    fn rates_need_elapsed_time() {
        assert_eq!(
            rate(2 * 1024 * 1024, 1_000_000_000).as_deref(),
            Some("2.0 MiB/s")
        );
        assert_eq!(rate(10, 0), None);
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("https://registry.test:5000/v2/lab/seq/blobs/uploads/?x=1"),
            ("registry.test:5000", "/v2/lab/seq/blobs/uploads/?x=1")
        );
        assert_eq!(split_url("http://auth.test"), ("auth.test", "/"));
        assert_eq!(
            short_path("https://r.test/v2/a/blobs/uploads/u?_state=abc&digest=sha256:1"),
            "/v2/a/blobs/uploads/u?…"
        );
    }

    #[test]
    fn digests_and_text_are_clipped_with_an_ellipsis() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab…"
        );
        assert_eq!(short_digest("sha256:01"), "sha256:01");
        assert_eq!(clip("registry", 5), "regi…");
        assert_eq!(clip("µs", 2), "µs");
    }
}
