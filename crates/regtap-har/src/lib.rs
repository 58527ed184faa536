//! HAR 1.2 for regtap: HAR files written by other tools (and by regtap) →
//! flows ([`import`]), and the redaction rules for sharing HARs ([`redact`]).
//! No file I/O: the `regtap` binary reads and writes the files.

mod import;
pub mod model;
pub mod redact;

pub use import::{ImportError, Imported, import, looks_like_har};
