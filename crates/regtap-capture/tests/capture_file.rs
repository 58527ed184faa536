use std::io::Write as _;
use std::path::Path;

use regtap_capture::factory::FlowBuilder;
use regtap_capture::{
    Capture, CaptureError, CaptureHeader, CaptureReader, CaptureWriter, Data, ErrorStage, Flow,
    FlowError, sha256_hex,
};

fn header() -> CaptureHeader {
    let mut settings = serde_json::Map::new();
    settings.insert("listen".into(), "127.0.0.1:8080".into());
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
    write_capture(&path, &sample_flows());
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
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
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
fn a_malformed_record_in_the_middle_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    let flows = sample_flows();
    write_capture(&path, &flows[..1]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
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
    assert!(matches!(
        Capture::read(&path),
        Err(CaptureError::BadRecord { line: 3, .. })
    ));
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
