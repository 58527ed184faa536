//! The capture file: JSON Lines. The first line is a [`CaptureHeader`], every
//! further line one finished [`Flow`], appended and flushed when it finishes.
//! A proxy killed mid-write leaves at most one partial last line, which the
//! reader reports and skips.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Flow, UnixNanos};

/// The value of [`CaptureHeader::format`].
pub const FORMAT_NAME: &str = "regtap-capture";
/// Readers refuse files whose major version differs from theirs.
pub const FORMAT_MAJOR: u32 = 1;
pub const FORMAT_MINOR: u32 = 0;

/// First line of a capture file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureHeader {
    pub format: String,
    /// `major.minor` of the file format.
    pub version: String,
    /// Version of the regtap that wrote the file.
    pub regtap_version: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub started_at_ns: UnixNanos,
    /// How the proxy was configured; free-form so new settings need no new version.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl CaptureHeader {
    pub fn new(
        regtap_version: &str,
        started_at_ns: UnixNanos,
        settings: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        CaptureHeader {
            format: FORMAT_NAME.to_owned(),
            version: format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"),
            regtap_version: regtap_version.to_owned(),
            started_at: rfc3339(started_at_ns),
            started_at_ns,
            settings,
        }
    }
}

/// RFC 3339 with nanoseconds, UTC (`2024-07-22T17:06:43.565871557Z`).
pub fn rfc3339(ns: UnixNanos) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{ns}ns"))
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> UnixNanos {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    UnixNanos::try_from(nanos).unwrap_or(UnixNanos::MAX)
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: empty file, not a regtap capture")]
    Empty { path: PathBuf },
    #[error("{path}: not a regtap capture (first line: {reason})")]
    NotACapture { path: PathBuf, reason: String },
    #[error(
        "{path}: capture format version {found} is not supported by this regtap \
         (reads {FORMAT_MAJOR}.x); use a regtap release that writes version {found}"
    )]
    UnsupportedVersion { path: PathBuf, found: String },
    #[error("{path}:{line}: malformed flow record: {reason}")]
    BadRecord {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

/// Appends flows to a capture file. Each record is written with one `write`
/// and flushed before [`CaptureWriter::append`] returns.
pub struct CaptureWriter {
    path: PathBuf,
    out: BufWriter<File>,
    sync: bool,
}

impl CaptureWriter {
    /// Creates (or truncates) `path` with mode 0600 and writes the header line.
    pub fn create(path: &Path, header: &CaptureHeader) -> Result<Self, CaptureError> {
        let io_err = |source| CaptureError::Io {
            path: path.to_owned(),
            source,
        };
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(io_err)?;
        // An existing file keeps its mode through `open`; captures hold tokens.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io_err)?;
        }
        let mut writer = CaptureWriter {
            path: path.to_owned(),
            out: BufWriter::new(file),
            sync: false,
        };
        writer.write_line(header)?;
        Ok(writer)
    }

    /// Also `fdatasync` after every record, so records survive a machine crash,
    /// not only a process crash.
    pub fn sync_each_record(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, flow: &Flow) -> Result<(), CaptureError> {
        self.write_line(flow)
    }

    fn write_line<T: Serialize>(&mut self, value: &T) -> Result<(), CaptureError> {
        let mut line = serde_json::to_vec(value).map_err(|e| CaptureError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        let result = self
            .out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .and_then(|()| {
                if self.sync {
                    self.out.get_ref().sync_data()
                } else {
                    Ok(())
                }
            });
        result.map_err(|source| CaptureError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Streams the flows of a capture file, one line at a time.
pub struct CaptureReader<R> {
    path: PathBuf,
    lines: R,
    header: CaptureHeader,
    line_no: u64,
    truncated_tail: bool,
    buf: Vec<u8>,
}

impl CaptureReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::new(path, BufReader::new(file))
    }
}

impl<R: BufRead> CaptureReader<R> {
    /// Reads the header from `input`; `path` is only used in messages.
    pub fn new(path: &Path, mut input: R) -> Result<Self, CaptureError> {
        let path = path.to_owned();
        let mut buf = Vec::new();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| CaptureError::Io {
                path: path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(CaptureError::Empty { path });
        }
        let header = parse_header(&path, &buf)?;
        Ok(CaptureReader {
            path,
            lines: input,
            header,
            line_no: 1,
            truncated_tail: false,
            buf,
        })
    }

    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    /// True once the reader has met a last line without its newline that did
    /// not parse: the writer was killed mid-record. That record is lost; every
    /// earlier one was returned.
    pub fn truncated_tail(&self) -> bool {
        self.truncated_tail
    }

    /// The next flow, `None` at the end of the file.
    pub fn next_flow(&mut self) -> Option<Result<Flow, CaptureError>> {
        loop {
            self.buf.clear();
            let n = match self.lines.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(source) => {
                    return Some(Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            if n == 0 {
                return None;
            }
            self.line_no += 1;
            let complete_line = self.buf.last() == Some(&b'\n');
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return match serde_json::from_slice::<Flow>(&self.buf) {
                Ok(flow) => Some(Ok(flow)),
                Err(_) if !complete_line => {
                    self.truncated_tail = true;
                    None
                }
                Err(e) => Some(Err(CaptureError::BadRecord {
                    path: self.path.clone(),
                    line: self.line_no,
                    reason: e.to_string(),
                })),
            };
        }
    }
}

impl<R: BufRead> Iterator for CaptureReader<R> {
    type Item = Result<Flow, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_flow()
    }
}

fn parse_header(path: &Path, line: &[u8]) -> Result<CaptureHeader, CaptureError> {
    let not_a_capture = |reason: String| CaptureError::NotACapture {
        path: path.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| not_a_capture(format!("not JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(not_a_capture(format!("no \"format\": \"{FORMAT_NAME}\"")));
    }
    let version = value
        .get("version")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if major != Some(FORMAT_MAJOR) {
        return Err(CaptureError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
        });
    }
    serde_json::from_value(value).map_err(|e| not_a_capture(e.to_string()))
}

/// A whole capture in memory: its header, its flows, and whether the last
/// record was cut off.
#[derive(Debug, Clone)]
pub struct Capture {
    pub header: CaptureHeader,
    pub flows: Vec<Flow>,
    pub truncated_tail: bool,
}

impl Capture {
    /// Reads every flow of the file at `path`. A malformed record in the middle
    /// is an error naming its line; a cut-off last record is reported in
    /// `truncated_tail`.
    pub fn read(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_reader(path, BufReader::new(file))
    }

    pub fn from_reader(path: &Path, input: impl Read) -> Result<Self, CaptureError> {
        let mut reader = CaptureReader::new(path, BufReader::new(input))?;
        let flows = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
        Ok(Capture {
            header: reader.header.clone(),
            flows,
            truncated_tail: reader.truncated_tail,
        })
    }

    /// True when `bytes` start like a capture file (for telling captures from HAR).
    pub fn sniff(bytes: &[u8]) -> bool {
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let needle = format!("\"format\":\"{FORMAT_NAME}\"");
        first_line
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }
}
