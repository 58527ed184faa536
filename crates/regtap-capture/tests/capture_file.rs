use std::io::Write as _;
use std::path::Path;

use regtap_capture::factory::FlowBuilder;
use regtap_capture::{
    Capture, CaptureError, CaptureHeader, CaptureReader, CaptureWriter, Data, ErrorStage,
    ExistingCapture, Flow, FlowError, FlowLines, InFlightRecord, sha256_hex,
};

fn header() -> CaptureHeader {
    let settings = regtap_capture::CaptureSettings {
        listen: Some("127.0.0.1:8080".to_owned()),
        ..Default::default()
    };
    CaptureHeader::new("0.1.0-test", 1_721_668_002_123_456_789, settings)
}

fn sample_flows() -> Vec<Flow> {
    let ping = FlowBuilder::new(1, "GET", "https://registry.test:5000/v2/")
        .request_header("User-Agent", "docker/20.10.24")
        .request_header("Accept", "a")
        .request_header("Accept", "b")
        .status(401)
        .response_header(
            "Www-Authenticate",
            "Bearer realm=\"https://auth.test:5001/token\",service=\"registry.test\"",
        )
        .response_body(br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)
        .build();
    let mut binary = FlowBuilder::new(
        2,
        "PATCH",
        "https://registry.test:5000/v2/lab/app/blobs/uploads/u?_state=x",
    )
    .request_body(&[0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe])
    .status(202)
    .build();
    // A header value that is not UTF-8 must survive too.
    binary.request.headers.0.push(regtap_capture::Header(
        "X-Raw".into(),
        Data::from_bytes(&[0xc3, 0x28]),
    ));
    let aborted = FlowBuilder::new(
        3,
        "PATCH",
        "https://registry.test:5000/v2/lab/app/blobs/uploads/v",
    )
    .request_body_summary(1 << 20, &sha256_hex(b"irrelevant"))
    .error(FlowError {
        stage: ErrorStage::Request,
        message: "client hung up after 1048576 bytes".into(),
    })
    .build();
    vec![ping, binary, aborted]
}

fn write_capture(path: &Path, flows: &[Flow]) {
    let mut writer = CaptureWriter::create(path, &header()).unwrap();
    for flow in flows {
        writer.append(flow).unwrap();
    }
}

#[test]
fn round_trip_keeps_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    write_capture(&path, &flows);

    let capture = Capture::read(&path).unwrap();
    assert_eq!(capture.header, header());
    assert_eq!(capture.flows, flows);
    assert!(!capture.truncated_tail);

    let patch = &capture.flows[1];
    assert_eq!(
        patch.request.body.full_bytes().unwrap(),
        vec![0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe]
    );
    let accept: Vec<_> = capture.flows[0].request.headers.get_all("accept").collect();
    assert_eq!(accept, ["a", "b"], "repeated headers keep their order");
    assert_eq!(
        patch
            .request
            .headers
            .0
            .last()
            .unwrap()
            .1
            .to_bytes()
            .unwrap(),
        vec![0xc3, 0x28]
    );
}

#[test]
fn every_record_is_on_disk_when_append_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    let mut writer = CaptureWriter::create(&path, &header()).unwrap();
    writer.append(&flows[0]).unwrap();
    // The writer is still open: a reader must already see the record.
    let capture = Capture::read(&path).unwrap();
    assert_eq!(capture.flows, flows[..1]);
    drop(writer);
}

#[cfg(unix)]
#[test]
fn capture_file_is_private_even_when_it_existed() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let writer = CaptureWriter::open(&path, &header(), ExistingCapture::Overwrite).unwrap();
    drop(writer);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_cut_off_last_record_is_reported_and_earlier_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    write_capture(&path, &flows);
    // Simulate a proxy killed in the middle of writing a fourth record.
    let mut partial = serde_json::to_string(&flows[0]).unwrap();
    partial.truncate(partial.len() / 2);
    let mut file = open_to_append(&path);
    file.write_all(partial.as_bytes()).unwrap();
    drop(file);

    let mut reader = CaptureReader::open(&path).unwrap();
    let read: Vec<Flow> = reader.by_ref().map(Result::unwrap).collect();
    assert_eq!(read, flows);
    assert!(reader.truncated_tail());

    let capture = Capture::read(&path).unwrap();
    assert!(capture.truncated_tail);
    assert_eq!(capture.flows.len(), 3);
}

#[test]
fn a_malformed_record_in_the_middle_is_reported_by_line_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    write_capture(&path, &flows[..1]);
    let mut file = open_to_append(&path);
    writeln!(file, "{{\"id\": \"not a flow\"}}").unwrap();
    writeln!(file, "{}", serde_json::to_string(&flows[1]).unwrap()).unwrap();
    drop(file);

    let mut reader = CaptureReader::open(&path).unwrap();
    assert_eq!(reader.next().unwrap().unwrap(), flows[0]);
    let err = reader.next().unwrap().unwrap_err();
    assert!(
        matches!(err, CaptureError::BadRecord { line: 3, .. }),
        "{err}"
    );
    // The reader can go on past the bad line.
    assert_eq!(reader.next().unwrap().unwrap(), flows[1]);
    // A whole read keeps every good record and names the bad line.
    let capture = Capture::read(&path).unwrap();
    assert_eq!(capture.flows, flows[..2]);
    assert_eq!(capture.bad_lines.len(), 1);
    assert_eq!(capture.bad_lines[0].line, 3);
    assert!(!capture.truncated_tail);
}

#[test]
fn an_unknown_major_version_is_refused_with_a_clear_message() {
    let input = br#"{"format":"regtap-capture","version":"2.0","regtap_version":"9.0.0","started_at":"x","started_at_ns":0}
"#;
    let err = Capture::from_reader(Path::new("future.jsonl"), &input[..]).unwrap_err();
    assert!(matches!(err, CaptureError::UnsupportedVersion { .. }));
    let message = err.to_string();
    assert!(message.contains("future.jsonl"), "{message}");
    assert!(message.contains("version 2.0"), "{message}");
}

#[test]
fn a_newer_minor_version_is_read() {
    let input = br#"{"format":"regtap-capture","version":"1.7","regtap_version":"0.9.0","started_at":"x","started_at_ns":0,"settings":{},"new_field":true}
"#;
    let capture = Capture::from_reader(Path::new("newer.jsonl"), &input[..]).unwrap();
    assert_eq!(capture.header.version, "1.7");
    assert!(capture.flows.is_empty());
}

#[test]
fn other_files_are_not_mistaken_for_captures() {
    for (input, expected) in [
        (&b""[..], "empty file"),
        (b"{\"log\":{\"version\":\"1.2\"}}\n", "not a regtap capture"),
        (b"\x00\x01garbage", "not a regtap capture"),
    ] {
        let err = Capture::from_reader(Path::new("x"), input).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert!(Capture::sniff(
        serde_json::to_string(&header()).unwrap().as_bytes()
    ));
    assert!(!Capture::sniff(b"{\"log\":{}}"));
}

/// The start record a proxy writes when a request head arrives.
/// The capture at `path`, opened to write more lines after its own.
fn open_to_append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new().append(true).open(path).unwrap()
}

/// Another session appended to a capture: its header line, then `flows`.
fn append_session(file: &mut std::fs::File, flows: &[Flow]) {
    writeln!(file, "{}", serde_json::to_string(&header()).unwrap()).unwrap();
    for flow in flows {
        writeln!(file, "{}", serde_json::to_string(flow).unwrap()).unwrap();
    }
}

fn started(flow: &Flow) -> InFlightRecord {
    let mut start = flow.clone();
    start.request.body = regtap_capture::Body::pending();
    start.response = None;
    start.error = None;
    InFlightRecord::Start(Box::new(start))
}

#[test]
fn a_started_exchange_without_its_flow_comes_back_cut_off_with_what_was_known() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    let mut writer = CaptureWriter::create(&path, &header()).unwrap();
    // Exchange 1 starts and finishes; exchange 2 starts, gets its response
    // head and streams; then the proxy is killed.
    writer.append_in_flight(&started(&flows[0])).unwrap();
    writer.append_in_flight(&started(&flows[1])).unwrap();
    writer.append(&flows[0]).unwrap();
    writer
        .append_in_flight(&InFlightRecord::ResponseHead {
            id: 2,
            at: 5,
            response: flows[1].response.clone().unwrap(),
        })
        .unwrap();
    writer
        .append_in_flight(&InFlightRecord::Progress {
            id: 2,
            at: 6,
            request_bytes: 4096,
            response_bytes: 10,
        })
        .unwrap();
    drop(writer);

    let capture = Capture::read(&path).unwrap();
    assert_eq!(capture.header.version, "1.2");
    assert_eq!(capture.cut_off, 1);
    assert!(capture.bad_lines.is_empty());
    assert_eq!(capture.flows.len(), 2);
    assert_eq!(capture.flows[0], flows[0]);
    let cut = &capture.flows[1];
    assert_eq!(cut.id, 2);
    assert_eq!(cut.request.method, "PATCH");
    assert_eq!(cut.request.headers, flows[1].request.headers);
    assert_eq!(cut.request.body.size, 4096);
    assert!(cut.request.body.is_cut_off());
    assert_eq!(cut.status(), Some(202));
    assert_eq!(cut.response.as_ref().unwrap().body.size, 10);
    let error = cut.error.as_ref().unwrap();
    assert_eq!(error.stage, ErrorStage::ProxyStopped);
    assert!(
        error
            .message
            .starts_with("cut off: proxy stopped before the exchange finished"),
        "{}",
        error.message
    );
}

/// A flow can be read again from where the reader found it, whatever lines
/// surround it (in-flight records, a bad line, an appended session, blank
/// lines); a flow rebuilt from in-flight records has no line to read.
#[test]
fn every_located_flow_reads_again_from_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    let mut writer = CaptureWriter::create(&path, &header()).unwrap();
    writer.append_in_flight(&started(&flows[0])).unwrap();
    writer.append_in_flight(&started(&flows[1])).unwrap();
    writer.append(&flows[0]).unwrap();
    drop(writer);
    let mut file = open_to_append(&path);
    writeln!(file, "{{\"id\": \"not a flow\"}}\n").unwrap();
    // An appended session.
    append_session(&mut file, &flows[2..]);
    drop(file);

    let mut reader = CaptureReader::open(&path).unwrap();
    let mut lines = FlowLines::open(&path).unwrap();
    let mut located = Vec::new();
    let mut rebuilt = Vec::new();
    while let Some(record) = reader.next_located_flow() {
        match record {
            Ok((flow, Some(location))) => {
                assert_eq!(location.id, flow.id);
                assert_eq!(lines.read(&location).unwrap(), flow);
                located.push((flow, location));
            }
            Ok((flow, None)) => rebuilt.push(flow.id),
            Err(CaptureError::BadRecord { line: 5, .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let ids: Vec<u64> = located.iter().map(|(f, _)| f.id).collect();
    let expected: Vec<u64> = std::iter::once(flows[0].id)
        .chain(flows[2..].iter().map(|f| f.id))
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(located[0].1.line, 4);
    // Exchange 2 started in the first session and never finished.
    assert_eq!(rebuilt, [flows[1].id]);
    // Read again out of order, as an export in time order does.
    for (flow, location) in located.iter().rev() {
        assert_eq!(&lines.read(location).unwrap(), flow);
    }

    // A file rewritten since it was read: an error naming the line, never
    // another flow in its place.
    let (_, first) = &located[0];
    let (_, last) = located.last().unwrap();
    let mut writer = CaptureWriter::open(&path, &header(), ExistingCapture::Overwrite).unwrap();
    for flow in &flows[1..] {
        writer.append(flow).unwrap();
    }
    drop(writer);
    for location in [first, last] {
        let err = lines.read(location).unwrap_err();
        assert!(
            matches!(&err, CaptureError::Changed { line, .. } if *line == location.line),
            "{err}"
        );
    }
}

#[test]
fn a_version_1_0_capture_still_reads() {
    let flow = serde_json::to_string(&sample_flows()[0]).unwrap();
    let input = format!(
        "{{\"format\":\"regtap-capture\",\"version\":\"1.0\",\"regtap_version\":\"0.1.0\",\
         \"started_at\":\"x\",\"started_at_ns\":0,\"settings\":{{}}}}\n{flow}\n"
    );
    let capture = Capture::from_reader(Path::new("old.jsonl"), input.as_bytes()).unwrap();
    assert_eq!(capture.flows, sample_flows()[..1]);
    assert_eq!(capture.cut_off, 0);
}

#[test]
fn an_existing_capture_is_refused_unless_appending_or_forced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    write_capture(&path, &flows[..2]);
    let before = std::fs::read(&path).unwrap();

    let err = CaptureWriter::create(&path, &header()).err().unwrap();
    assert!(matches!(err, CaptureError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("--append"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "refusing must not touch it"
    );

    // Appending: a second session whose ids continue after the file's highest.
    let mut writer = CaptureWriter::open(&path, &header(), ExistingCapture::Append).unwrap();
    assert_eq!(writer.last_id(), 2);
    let mut third = flows[2].clone();
    third.id = writer.last_id() + 1;
    writer.append(&third).unwrap();
    drop(writer);
    let capture = Capture::read(&path).unwrap();
    assert_eq!(
        capture.flows,
        vec![flows[0].clone(), flows[1].clone(), third]
    );
    assert!(capture.bad_lines.is_empty());

    let writer = CaptureWriter::open(&path, &header(), ExistingCapture::Overwrite).unwrap();
    drop(writer);
    assert!(Capture::read(&path).unwrap().flows.is_empty());
}

#[test]
fn appending_after_a_cut_off_line_never_extends_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    write_capture(&path, &flows[..1]);
    let mut file = open_to_append(&path);
    let whole = serde_json::to_string(&flows[1]).unwrap();
    file.write_all(&whole.as_bytes()[..whole.len() / 2])
        .unwrap();
    drop(file);

    let mut writer = CaptureWriter::open(&path, &header(), ExistingCapture::Append).unwrap();
    writer.append(&flows[2]).unwrap();
    drop(writer);
    let capture = Capture::read(&path).unwrap();
    assert_eq!(capture.flows, vec![flows[0].clone(), flows[2].clone()]);
    assert_eq!(capture.bad_lines.len(), 1, "{:?}", capture.bad_lines);
    assert_eq!(capture.bad_lines[0].line, 3);
}

#[test]
fn appending_to_a_file_that_is_not_a_capture_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "my notes\n").unwrap();
    let err = CaptureWriter::open(&path, &header(), ExistingCapture::Append)
        .err()
        .unwrap();
    assert!(matches!(err, CaptureError::NotACapture { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "my notes\n");
}

#[cfg(unix)]
#[test]
fn a_symlink_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "precious\n").unwrap();
    let link = dir.path().join("c.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for existing in [
        ExistingCapture::Refuse,
        ExistingCapture::Append,
        ExistingCapture::Overwrite,
    ] {
        let err = CaptureWriter::open(&link, &header(), existing)
            .err()
            .unwrap();
        assert!(
            matches!(err, CaptureError::Symlink { .. }),
            "{existing:?}: {err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    // A dangling link is not created through either.
    std::fs::remove_file(&target).unwrap();
    assert!(CaptureWriter::create(&link, &header()).is_err());
    assert!(!target.exists());
}

/// Set by [`a_failed_write_leaves_no_fragment`] for the child it runs.
const FSIZE_CHILD: &str = "REGTAP_CAPTURE_TEST_FSIZE_CHILD";

/// Runs in a child process whose file-size limit is a few kilobytes: writes
/// flows until the limit stops them, then more, and prints what succeeded.
#[test]
fn fsize_child() {
    let Some(path) = std::env::var_os(FSIZE_CHILD) else {
        return;
    };
    let mut writer = CaptureWriter::create(Path::new(&path), &header()).unwrap();
    let flows = sample_flows();
    let mut outcomes = String::new();
    for i in 0..20u64 {
        let mut flow = flows[(i % 3) as usize].clone();
        flow.id = i + 1;
        outcomes.push(if writer.append(&flow).is_ok() {
            'w'
        } else {
            'x'
        });
    }
    println!("OUTCOMES={outcomes}");
}

#[cfg(unix)]
#[test]
fn a_failed_write_leaves_no_fragment() {
    use std::os::unix::process::CommandExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "fsize_child", "--nocapture", "--test-threads=1"])
        .env(FSIZE_CHILD, &path);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        child.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 3000,
                rlim_max: 3000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let outcomes = stdout
        .lines()
        .find_map(|l| l.split("OUTCOMES=").nth(1))
        .map(str::trim)
        .unwrap_or_else(|| panic!("child said: {stdout}"));
    let written = outcomes.matches('w').count();
    assert!(written > 0 && outcomes.contains('x'), "{outcomes}");

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes.last(),
        Some(&b'\n'),
        "the file ends on a whole record"
    );
    let capture = Capture::read(&path).unwrap();
    assert!(capture.bad_lines.is_empty(), "{:?}", capture.bad_lines);
    assert!(!capture.truncated_tail);
    assert_eq!(capture.flows.len(), written);
}

/// Every header and body of the sample captures reads into the typed model
/// and writes back as the same JSON: the model changed, the file format did not.
#[test]
fn every_header_and_body_of_the_sample_captures_writes_back_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../captures");
    let mut bodies = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        files += 1;
        for (number, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if number == 0 {
                let header: CaptureHeader = serde_json::from_value(record.clone()).unwrap();
                assert_eq!(serde_json::to_value(&header).unwrap(), record);
                continue;
            }
            let found = [
                record.pointer("/request/body"),
                record.pointer("/response/body"),
                record.pointer("/flow/request/body"),
                record.pointer("/flow/response/body"),
            ];
            for json in found.into_iter().flatten() {
                let body: regtap_capture::Body = serde_json::from_value(json.clone()).unwrap();
                assert_eq!(
                    &serde_json::to_value(&body).unwrap(),
                    json,
                    "{}:{}",
                    path.display(),
                    number + 1
                );
                bodies += 1;
            }
        }
    }
    assert!(
        files >= 10 && bodies > 500,
        "{files} files, {bodies} bodies"
    );
}

/// A setting of an unexpected type is taken as absent, and one this regtap
/// does not know is kept: neither makes the capture unreadable.
#[test]
fn header_settings_are_read_leniently_and_unknown_ones_kept() {
    let line = r#"{"format":"regtap-capture","version":"1.1","regtap_version":"9","started_at":"x","started_at_ns":0,"settings":{"max_inline":"lots","store_bodies":"bodies","future":{"a":1}}}"#;
    let header: CaptureHeader = serde_json::from_str(line).unwrap();
    assert_eq!(header.settings.max_inline, None);
    assert_eq!(header.settings.body_store(), Some("bodies"));
    assert_eq!(header.settings.other["future"], serde_json::json!({"a": 1}));
}

/// Everything a reader says about a file, in order: each flow and where it
/// is, each error, and what it tells at the end.
fn everything_read(mut reader: CaptureReader<impl std::io::BufRead>) -> Vec<String> {
    let mut said = Vec::new();
    while let Some(record) = reader.next_located_flow() {
        match record {
            Ok((flow, location)) => {
                said.push(format!(
                    "{location:?} {}",
                    serde_json::to_string(&flow).unwrap()
                ));
            }
            Err(e @ CaptureError::BadRecord { .. }) => said.push(format!("error: {e}")),
            // The input itself failed: reading stops there.
            Err(e) => {
                said.push(format!("error: {e}"));
                break;
            }
        }
    }
    said.push(format!(
        "truncated tail {}, cut off {}",
        reader.truncated_tail(),
        reader.cut_off_count()
    ));
    said
}

/// Lines parsed on other threads, many batches of them, are read as one
/// line at a time reads them: flows, locations, bad lines, in-flight
/// records, blank lines, an appended session and a cut-off last line.
#[test]
fn parsing_ahead_on_other_threads_reads_what_one_line_at_a_time_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    let mut writer = CaptureWriter::create(&path, &header()).unwrap();
    for id in 1..=3000u64 {
        let mut flow = flows[(id % 3) as usize].clone();
        flow.id = id;
        // Some exchanges never finish: they are cut off at the appended session.
        let finishes = id % 500 != 0 && id != 1499;
        if id % 7 == 0 || !finishes {
            writer.append_in_flight(&started(&flow)).unwrap();
        }
        if finishes {
            writer.append(&flow).unwrap();
        }
    }
    drop(writer);
    let mut file = open_to_append(&path);
    writeln!(file, "\n  \n{{\"id\": \"not a flow\"}}").unwrap();
    append_session(&mut file, &flows);
    let partial = serde_json::to_string(&flows[0]).unwrap();
    file.write_all(&partial.as_bytes()[..partial.len() / 2])
        .unwrap();
    drop(file);

    let one_at_a_time = everything_read(CaptureReader::open(&path).unwrap());
    assert!(one_at_a_time.len() > 3000, "{}", one_at_a_time.len());
    assert!(one_at_a_time.iter().any(|s| s.starts_with("error:")));
    assert_eq!(
        one_at_a_time.last().unwrap(),
        "truncated tail true, cut off 7"
    );
    for threads in [1, 2, 3] {
        let ahead = everything_read(CaptureReader::open(&path).unwrap().parse_ahead(threads));
        assert!(ahead == one_at_a_time, "{threads} threads");
    }
    let capture = Capture::read(&path).unwrap();
    assert_eq!(
        capture.flows.len() + capture.bad_lines.len() + 1,
        one_at_a_time.len()
    );
}

/// Input that fails after `left` bytes, as a disk read error would.
struct FailingAfter<R> {
    inner: R,
    left: usize,
}

impl<R: std::io::Read> std::io::Read for FailingAfter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("disk read error"));
        }
        let n = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..n])?;
        self.left -= n;
        Ok(n)
    }
}

/// A read error is told after every flow read before it, and nothing of
/// what came after is made up.
#[test]
fn a_read_error_comes_after_the_flows_before_it_when_parsing_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows: Vec<Flow> = (1..=2000u64)
        .map(|id| {
            let mut flow = sample_flows()[0].clone();
            flow.id = id;
            flow
        })
        .collect();
    write_capture(&path, &flows);
    let bytes = std::fs::read(&path).unwrap();
    let failing = || {
        std::io::BufReader::new(FailingAfter {
            inner: bytes.as_slice(),
            left: bytes.len() * 2 / 3,
        })
    };
    let one_at_a_time = everything_read(CaptureReader::new(&path, failing()).unwrap());
    let ahead = everything_read(CaptureReader::new(&path, failing()).unwrap().parse_ahead(2));
    let first_error = |said: &[String]| said.iter().position(|s| s.starts_with("error:"));
    let at = first_error(&one_at_a_time).expect("the read error is told");
    assert!(at > 1000, "{at}");
    assert_eq!(first_error(&ahead), Some(at));
    assert_eq!(ahead[..=at], one_at_a_time[..=at]);
    assert!(
        one_at_a_time[at].contains("disk read error"),
        "{}",
        one_at_a_time[at]
    );
}
