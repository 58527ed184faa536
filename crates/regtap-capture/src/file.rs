//! The capture file: JSON Lines. The first line is a [`CaptureHeader`]; every
//! further line is a finished [`Flow`] or (format 1.1) an [`InFlightRecord`]
//! about an exchange still in flight: its start, its response head, its
//! progress. A proxy killed mid-write leaves at most one partial last line,
//! which the reader reports and skips; exchanges that started but never
//! finished come back as cut-off flows. A session appended to an existing
//! capture starts with a header line of its own.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Body, ErrorStage, Flow, FlowError, Kept, Response, UnixNanos};
use crate::parse_ahead::ParseAhead;

/// The value of [`CaptureHeader::format`].
pub const FORMAT_NAME: &str = "regtap-capture";
/// Readers refuse files whose major version differs from theirs.
pub const FORMAT_MAJOR: u32 = 1;
/// 1.1 added in-flight records (start, response head, progress) and appended
/// sessions; 1.2 the `upstream_proxy` of flows and its error stage (a 1.1
/// reader would refuse such a flow). Older files read unchanged.
pub const FORMAT_MINOR: u32 = 2;

/// First line of a capture file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureHeader {
    pub format: String,
    /// `major.minor` of the file format.
    pub version: String,
    /// Version of the regtap that wrote the file.
    pub regtap_version: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub started_at_ns: UnixNanos,
    /// How the proxy was configured.
    #[serde(default)]
    pub settings: CaptureSettings,
}

/// How the proxy that wrote a capture was configured: the header's
/// `settings`. Every field is optional on read (older files hold fewer, and
/// one of an unexpected type is taken as absent); keys this regtap does not
/// know are kept in `other`, so new settings need no new format version.
/// Fields are in the order the JSON has always had its keys (alphabetical).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureSettings {
    /// `--allow-client` networks.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub allow_client: Option<Vec<String>>,
    /// SHA-256 fingerprint of the proxy's CA certificate (`AA:BB:…`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub ca_sha256_fingerprint: Option<String>,
    /// `--inline-budget`, bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub inline_budget: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub keep_forwarding_unrecorded: Option<bool>,
    /// The NSS key log file (`--keylog`), when the traffic's keys were written.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub keylog: Option<String>,
    /// The address the proxy listened on.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub listen: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub max_connections: Option<u64>,
    /// `--max-inline`, bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub max_inline: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub mode: Option<ProxyMode>,
    /// `--resolve` rules, `host:port=addr:port`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub resolve: Option<Vec<String>>,
    /// How a reverse proxy (`--reverse`) served its upstreams.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub reverse: Option<ReverseSettings>,
    /// The body store (`--store-bodies`): `Some(None)` (JSON `null`) when
    /// there was none, `None` when the header does not say.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub store_bodies: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub sync_each_record: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub timeouts_s: Option<TimeoutSettings>,
    /// `--upstream-ca` files.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub upstream_ca: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub upstream_insecure: Option<bool>,
    /// The proxies regtap's own connections went through: `Some(None)`
    /// (JSON `null`) when every connection was direct, `None` when the header
    /// does not say.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub upstream_proxy: Option<Option<UpstreamProxySettings>>,
    /// Settings written by another regtap version, kept as written.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl CaptureSettings {
    /// The body store's directory, as the proxy was given it.
    pub fn body_store(&self) -> Option<&str> {
        self.store_bodies.as_ref().and_then(Option::as_deref)
    }
}

/// How clients reached the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// As their HTTP(S) proxy.
    Forward,
    /// As the registry itself (`--reverse`).
    Reverse,
}

/// The `reverse` setting of a reverse proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReverseSettings {
    /// The operator's certificate file, with `client_tls: provided`.
    pub cert: Option<String>,
    pub client_tls: ClientTlsSetting,
    pub rewrite_urls: bool,
    pub upstreams: Vec<ReverseUpstream>,
}

/// How a reverse proxy spoke TLS to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientTlsSetting {
    /// Certificates signed by regtap's CA.
    RegtapCa,
    /// The operator's certificate (`cert`).
    Provided,
    /// No TLS.
    PlainHttp,
}

/// One upstream a reverse proxy served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReverseUpstream {
    pub name: String,
    /// The name with regtap's scheme and port (`https://registry.internal:5000`).
    pub served_as: String,
    /// `scheme://authority` of the upstream.
    pub upstream: String,
}

/// The upstream proxy per scheme, and `NO_PROXY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamProxySettings {
    pub http: Option<ChainedProxySetting>,
    pub https: Option<ChainedProxySetting>,
    pub no_proxy: Vec<String>,
}

/// One upstream proxy, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedProxySetting {
    /// Whether Basic credentials are sent to it.
    pub basic_auth: bool,
    /// Where it was configured (an option or an environment variable).
    pub from: String,
    /// Its URL, credentials left out.
    pub url: String,
}

/// The proxy's timeouts, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeoutSettings {
    pub body: f64,
    pub connect: f64,
    pub idle: f64,
    pub request_head: f64,
    pub response: f64,
}

fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

impl CaptureHeader {
    pub fn new(regtap_version: &str, started_at_ns: UnixNanos, settings: CaptureSettings) -> Self {
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
    #[error(
        "{path} already exists; a capture is never overwritten by accident \
         (append to it with --append, replace it with --force, or choose another file)"
    )]
    Exists { path: PathBuf },
    #[error("{path} is a symbolic link; regtap does not write captures through links")]
    Symlink { path: PathBuf },
    #[error(
        "{path}: an earlier record could not be written nor cut off again; \
         no further record is written, so that none extends a fragment"
    )]
    Poisoned { path: PathBuf },
    #[error(
        "{path}:{line}: the file changed while regtap was reading it: the flow read \
         there earlier is not there any more"
    )]
    Changed { path: PathBuf, line: u64 },
}

/// What [`CaptureWriter::open`] does with a file that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingCapture {
    /// Refuse it: a capture is evidence and is never overwritten by accident.
    #[default]
    Refuse,
    /// Append a new session (a header line, then its records) to an existing
    /// capture; flow ids continue after the file's highest.
    Append,
    /// Truncate it and start over.
    Overwrite,
}

/// Appends records to a capture file. Each record is written with one
/// `write_all` of the whole line; when that fails the file is cut back to its
/// last complete record, so a failed write never leaves a fragment that a later
/// write would extend. If even that cut fails the writer refuses every further
/// record.
pub struct CaptureWriter {
    path: PathBuf,
    file: File,
    /// Length of the file up to its last complete record.
    len: u64,
    sync: bool,
    /// Set when the file could not be cut back after a failed write.
    poisoned: bool,
    /// The highest flow id already in an appended-to file (0 for a new file).
    last_id: u64,
}

impl CaptureWriter {
    /// Creates `path` with mode 0600 and writes the header line. An existing
    /// file (or a symlink) at `path` is refused; see [`CaptureWriter::open`].
    pub fn create(path: &Path, header: &CaptureHeader) -> Result<Self, CaptureError> {
        Self::open(path, header, ExistingCapture::Refuse)
    }

    /// Opens `path` for a new recording session: creates it, or treats an
    /// existing file as `existing` says. A symlink at `path` is never followed.
    pub fn open(
        path: &Path,
        header: &CaptureHeader,
        existing: ExistingCapture,
    ) -> Result<Self, CaptureError> {
        let io_err = |source| CaptureError::Io {
            path: path.to_owned(),
            source,
        };
        let mut options = OpenOptions::new();
        options.write(true);
        match existing {
            ExistingCapture::Refuse => options.create_new(true),
            ExistingCapture::Append => options.create(true).read(true),
            ExistingCapture::Overwrite => options.create(true).truncate(true),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let mut file = options.open(path).map_err(|source| {
            // O_NOFOLLOW reports a symlink as ELOOP, O_EXCL as EEXIST.
            if is_symlink(path) {
                CaptureError::Symlink {
                    path: path.to_owned(),
                }
            } else if source.kind() == io::ErrorKind::AlreadyExists {
                CaptureError::Exists {
                    path: path.to_owned(),
                }
            } else {
                io_err(source)
            }
        })?;
        // An existing file keeps its mode through `open`; captures hold tokens.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io_err)?;
        }
        let len = file.metadata().map_err(io_err)?.len();
        let mut separator = Vec::new();
        let mut last_id = 0;
        if existing == ExistingCapture::Append && len > 0 {
            let scan = scan_existing(path, &mut file)?;
            last_id = scan.last_id;
            // A cut-off last line stays a (bad) line of its own: it is never extended.
            if !scan.ends_with_newline {
                separator.push(b'\n');
            }
        }
        file.seek(SeekFrom::Start(len)).map_err(io_err)?;
        let mut writer = CaptureWriter {
            path: path.to_owned(),
            file,
            len,
            sync: false,
            poisoned: false,
            last_id,
        };
        writer.write_line(&separator, header)?;
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

    /// The highest flow id the file held before this session (0 when new).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Appends a finished flow.
    pub fn append(&mut self, flow: &Flow) -> Result<(), CaptureError> {
        self.write_line(&[], flow)
    }

    /// Appends a record about an exchange still in flight.
    pub fn append_in_flight(&mut self, record: &InFlightRecord) -> Result<(), CaptureError> {
        self.write_line(&[], record)
    }

    fn write_line<T: Serialize>(&mut self, prefix: &[u8], value: &T) -> Result<(), CaptureError> {
        if self.poisoned {
            return Err(CaptureError::Poisoned {
                path: self.path.clone(),
            });
        }
        let mut line = prefix.to_vec();
        serde_json::to_writer(&mut line, value).map_err(|e| CaptureError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        let written = self.file.write_all(&line).and_then(|()| {
            if self.sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(source) => {
                // Cut the partial line off; a later record must start on a clean line.
                let cut = self.file.set_len(self.len);
                let rewound = cut.and_then(|()| self.file.seek(SeekFrom::Start(self.len)));
                if rewound.is_err() {
                    self.poisoned = true;
                }
                Err(CaptureError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

struct ExistingScan {
    last_id: u64,
    ends_with_newline: bool,
}

/// Checks that the file being appended to is a capture this regtap reads, and
/// finds its highest flow id.
fn scan_existing(path: &Path, file: &mut File) -> Result<ExistingScan, CaptureError> {
    let io_err = |source| CaptureError::Io {
        path: path.to_owned(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut input = BufReader::new(&*file);
    let mut line = Vec::new();
    input.read_until(b'\n', &mut line).map_err(io_err)?;
    parse_header(path, &line)?;
    let mut scan = ExistingScan {
        last_id: 0,
        ends_with_newline: line.last() == Some(&b'\n'),
    };
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
            break;
        }
        scan.ends_with_newline = line.last() == Some(&b'\n');
        if let Ok(ids) = serde_json::from_slice::<RecordId>(&line) {
            scan.last_id = scan.last_id.max(ids.highest());
        }
    }
    Ok(scan)
}

/// Just the ids of any record line, for [`scan_existing`].
#[derive(Deserialize)]
struct RecordId {
    id: Option<u64>,
    start: Option<Box<RecordId>>,
}

impl RecordId {
    fn highest(&self) -> u64 {
        let start = self.start.as_ref().map_or(0, |s| s.highest());
        self.id.unwrap_or(0).max(start)
    }
}

/// A record about an exchange that has not finished yet (format 1.1). The
/// finished [`Flow`] with the same id supersedes them; when it never comes (the
/// proxy was killed), the reader turns what they say into a cut-off flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InFlightRecord {
    /// The exchange started: the flow as known then (request head, empty bodies).
    Start(Box<Flow>),
    /// Its response head arrived.
    ResponseHead {
        id: u64,
        at: UnixNanos,
        response: Response,
    },
    /// Body bytes streamed so far on each side.
    Progress {
        id: u64,
        at: UnixNanos,
        request_bytes: u64,
        response_bytes: u64,
    },
}

/// How a line of a capture file starts, per record kind.
const IN_FLIGHT_PREFIXES: [&[u8]; 3] = [b"{\"start\":", b"{\"response_head\":", b"{\"progress\":"];
const HEADER_PREFIX: &[u8] = b"{\"format\":";

/// An exchange known from its in-flight records only, so far.
struct Unfinished {
    flow: Flow,
    request_bytes: u64,
    response_bytes: u64,
}

impl Unfinished {
    /// The flow as the records left it: bodies cut off at the bytes last
    /// reported, and an error saying the proxy stopped.
    fn into_cut_off_flow(self) -> Flow {
        let Unfinished {
            mut flow,
            request_bytes,
            response_bytes,
        } = self;
        let cut = |size: u64| Body {
            size,
            kept: if size > 0 {
                Kept::Unknown
            } else {
                Body::pending().kept
            },
            ..Body::pending()
        };
        flow.request.body = cut(request_bytes);
        if let Some(response) = flow.response.as_mut() {
            response.body = cut(response_bytes);
        }
        let response = match &flow.response {
            Some(r) => format!("response {} with {response_bytes} body bytes", r.status),
            None => "no response".to_owned(),
        };
        flow.error = Some(FlowError {
            stage: ErrorStage::ProxyStopped,
            message: format!(
                "cut off: proxy stopped before the exchange finished \
                 ({request_bytes} request body bytes seen, {response})"
            ),
        });
        flow
    }
}

/// What a line of a capture says on its own.
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every line is a flow: boxing it would only add an allocation per flow"
)]
pub(crate) enum Record {
    Flow(Flow),
    InFlight(InFlightRecord),
    /// The header of a session appended to the file.
    SessionHeader,
}

/// A line as read: where it is in the file, and whether its newline was there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineRead {
    offset: u64,
    len: usize,
    /// 1-based, the header being line 1.
    line: u64,
    complete: bool,
}

impl LineRead {
    /// The line just read (`bytes`, with its newline if it had one), counted
    /// in the reader's `position` and `line_no`.
    pub(crate) fn counted(bytes: &[u8], position: &mut u64, line_no: &mut u64) -> Self {
        *line_no += 1;
        let read = LineRead {
            offset: *position,
            len: bytes.len(),
            line: *line_no,
            complete: bytes.last() == Some(&b'\n'),
        };
        *position += bytes.len() as u64;
        read
    }
}

pub(crate) type ParsedLine = (LineRead, Result<Record, String>);

/// A line that is not blank, parsed; `path` is only used in messages.
pub(crate) fn parse_record(path: &Path, line: &[u8]) -> Result<Record, String> {
    let line = line.trim_ascii_start();
    if IN_FLIGHT_PREFIXES.iter().any(|p| line.starts_with(p)) {
        return serde_json::from_slice(line)
            .map(Record::InFlight)
            .map_err(|e| e.to_string());
    }
    if line.starts_with(HEADER_PREFIX) {
        return parse_header(path, line)
            .map(|_| Record::SessionHeader)
            .map_err(|e| e.to_string());
    }
    serde_json::from_slice(line)
        .map(Record::Flow)
        .map_err(|e| e.to_string())
}

/// A line of a capture that could not be read; the reader went on after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based, the header being line 1.
    pub line: u64,
    pub reason: String,
}

/// Streams the flows of a capture file, one line at a time. Exchanges that
/// started but never finished (format 1.1 in-flight records without their
/// flow) come last, as flows cut off with [`ErrorStage::ProxyStopped`].
pub struct CaptureReader<R> {
    path: PathBuf,
    lines: R,
    header: CaptureHeader,
    line_no: u64,
    truncated_tail: bool,
    buf: Vec<u8>,
    /// Bytes of the input read so far.
    position: u64,
    unfinished: BTreeMap<u64, Unfinished>,
    /// Cut-off flows ready to be returned.
    cut_off: std::collections::VecDeque<Flow>,
    cut_off_count: usize,
    at_end: bool,
    /// Parsing threads, when the lines are parsed ahead ([`CaptureReader::parse_ahead`]).
    ahead: Option<ParseAhead>,
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
            position: n as u64,
            unfinished: BTreeMap::new(),
            cut_off: Default::default(),
            cut_off_count: 0,
            at_end: false,
            ahead: None,
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

    /// How many of the flows returned were rebuilt from in-flight records
    /// because their exchange never finished.
    pub fn cut_off_count(&self) -> usize {
        self.cut_off_count
    }

    /// The next flow, `None` at the end of the file. A malformed line is an
    /// `Err` naming it; reading can go on after it.
    pub fn next_flow(&mut self) -> Option<Result<Flow, CaptureError>> {
        self.next_located_flow()
            .map(|record| record.map(|(flow, _)| flow))
    }

    /// As [`CaptureReader::next_flow`], with where the flow's line is in the
    /// input, for [`FlowLines`] to read it again; `None` for a flow rebuilt
    /// from in-flight records, which has no line of its own.
    pub fn next_located_flow(
        &mut self,
    ) -> Option<Result<(Flow, Option<FlowLocation>), CaptureError>> {
        loop {
            if let Some(flow) = self.cut_off.pop_front() {
                self.cut_off_count += 1;
                return Some(Ok((flow, None)));
            }
            if self.at_end {
                return None;
            }
            let (read, parsed) = match self.next_parsed_line() {
                Some(Ok(line)) => line,
                Some(Err(source)) => {
                    return Some(Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
                None => {
                    self.at_end = true;
                    self.release_unfinished();
                    continue;
                }
            };
            match parsed {
                Ok(Record::Flow(flow)) => {
                    self.unfinished.remove(&flow.id);
                    let location = FlowLocation {
                        id: flow.id,
                        line: read.line,
                        offset: read.offset,
                        len: read.len,
                    };
                    return Some(Ok((flow, Some(location))));
                }
                Ok(Record::InFlight(record)) => self.apply(record),
                // The header of a session appended to this file: what is still
                // unfinished from the sessions before it will never finish.
                Ok(Record::SessionHeader) => self.release_unfinished(),
                Err(_) if !read.complete => {
                    self.truncated_tail = true;
                    self.at_end = true;
                    self.release_unfinished();
                }
                Err(reason) => {
                    return Some(Err(CaptureError::BadRecord {
                        path: self.path.clone(),
                        line: read.line,
                        reason,
                    }));
                }
            }
        }
    }

    /// Parses lines on `threads` other threads, ahead of what is taken from
    /// this reader: the same flows in the same order, sooner for a large
    /// file on several cores.
    pub fn parse_ahead(mut self, threads: usize) -> Self {
        self.ahead = Some(ParseAhead::new(&self.path, threads));
        self
    }

    /// The next line that is not blank, parsed; `None` at the end of the input.
    fn next_parsed_line(&mut self) -> Option<io::Result<ParsedLine>> {
        if let Some(ahead) = &mut self.ahead {
            return ahead.next(&mut self.lines, &mut self.position, &mut self.line_no);
        }
        loop {
            self.buf.clear();
            match self.lines.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) => return Some(Err(error)),
            }
            let read = LineRead::counted(&self.buf, &mut self.position, &mut self.line_no);
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Some(Ok((read, parse_record(&self.path, &self.buf))));
            }
        }
    }

    fn apply(&mut self, record: InFlightRecord) {
        match record {
            InFlightRecord::Start(flow) => {
                self.unfinished.insert(
                    flow.id,
                    Unfinished {
                        flow: *flow,
                        request_bytes: 0,
                        response_bytes: 0,
                    },
                );
            }
            InFlightRecord::ResponseHead { id, at, response } => {
                if let Some(u) = self.unfinished.get_mut(&id) {
                    u.flow.timing.response_head = Some(at);
                    u.flow.response = Some(response);
                }
            }
            InFlightRecord::Progress {
                id,
                request_bytes,
                response_bytes,
                ..
            } => {
                if let Some(u) = self.unfinished.get_mut(&id) {
                    u.request_bytes = request_bytes;
                    u.response_bytes = response_bytes;
                }
            }
        }
    }

    fn release_unfinished(&mut self) {
        let unfinished = std::mem::take(&mut self.unfinished);
        self.cut_off
            .extend(unfinished.into_values().map(Unfinished::into_cut_off_flow));
    }
}

/// Where a flow's record is in a capture file, as [`CaptureReader`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLocation {
    /// The flow's id in the record.
    pub id: u64,
    /// 1-based line number, the header being line 1.
    pub line: u64,
    /// Byte offset of the line from the start of the file.
    pub offset: u64,
    /// Length of the line in bytes, its newline included.
    pub len: usize,
}

/// Reads flows again from the lines [`CaptureReader::next_located_flow`]
/// located, so that a large capture can be read without keeping every flow.
pub struct FlowLines {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

impl FlowLines {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(FlowLines {
            path: path.to_owned(),
            file,
            buf: Vec::new(),
        })
    }

    /// The flow at `location`. The line must still hold that flow: a file
    /// rewritten since it was read is an error, not another flow.
    pub fn read(&mut self, location: &FlowLocation) -> Result<Flow, CaptureError> {
        let changed = || CaptureError::Changed {
            path: self.path.clone(),
            line: location.line,
        };
        self.buf.resize(location.len, 0);
        self.file
            .seek(SeekFrom::Start(location.offset))
            .and_then(|_| self.file.read_exact(&mut self.buf))
            .map_err(|source| match source.kind() {
                io::ErrorKind::UnexpectedEof => changed(),
                _ => CaptureError::Io {
                    path: self.path.clone(),
                    source,
                },
            })?;
        match serde_json::from_slice::<Flow>(&self.buf) {
            Ok(flow) if flow.id == location.id => Ok(flow),
            _ => Err(changed()),
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

/// A whole capture in memory: its header, its flows, and what could not be read.
#[derive(Debug, Clone)]
pub struct Capture {
    pub header: CaptureHeader,
    pub flows: Vec<Flow>,
    /// The last record was cut off mid-write.
    pub truncated_tail: bool,
    /// Lines that are not records this regtap reads; every other record was kept.
    pub bad_lines: Vec<BadLine>,
    /// How many of `flows` never finished (the proxy was killed): rebuilt from
    /// their in-flight records, with an [`ErrorStage::ProxyStopped`] error.
    pub cut_off: usize,
}

impl Capture {
    /// Reads every flow of the file at `path`. A malformed record anywhere is
    /// skipped and listed in `bad_lines`; a cut-off last record is reported in
    /// `truncated_tail`. Only an unreadable file or header is an error.
    pub fn read(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_reader(path, BufReader::new(file))
    }

    pub fn from_reader(path: &Path, input: impl Read) -> Result<Self, CaptureError> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let mut reader = CaptureReader::new(path, BufReader::new(input))?;
        if threads > 1 {
            reader = reader.parse_ahead(threads);
        }
        let mut flows = Vec::new();
        let mut bad_lines = Vec::new();
        for record in reader.by_ref() {
            match record {
                Ok(flow) => flows.push(flow),
                Err(CaptureError::BadRecord { line, reason, .. }) => {
                    bad_lines.push(BadLine { line, reason });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Capture {
            header: reader.header.clone(),
            flows,
            truncated_tail: reader.truncated_tail,
            bad_lines,
            cut_off: reader.cut_off_count,
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
