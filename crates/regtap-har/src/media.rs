//! Which bodies are text.

/// Whether a `Content-Type` names text (JSON, XML, forms, `text/*`); an empty
/// one claims nothing. Everything else (layers, config blobs served as
/// `application/octet-stream`) is binary: described in a HAR, never pasted.
pub(crate) fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.is_empty()
        || essence.starts_with("text/")
        || essence.ends_with("/json")
        || essence.ends_with("+json")
        || essence.ends_with("/xml")
        || essence.ends_with("+xml")
        || essence == "application/x-www-form-urlencoded"
        || essence == "application/javascript"
}
