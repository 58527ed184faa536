//! HAR 1.2 for regtap: flows and their analysis → an annotated HAR with
//! credentials redacted by default ([`export()`]), and HAR files written by other
//! tools → flows ([`import()`]). No file I/O: the `regtap` binary reads and
//! writes the files.

mod annotate;
mod export;
mod import;
mod media;
pub mod model;
pub mod redact;

pub use export::{
    BodySource, BodyToWrite, CREATOR_NAME, Export, ExportError, ExportOptions, ExportToError,
    Listed, Parallelism, Written, export, export_flows, export_flows_in_parallel, export_to,
    in_order,
};
pub use import::{ImportError, ImportLimits, Imported, import, import_reader, looks_like_har};
