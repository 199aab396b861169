//! Pins the JSON-lines schema (`docs/output-formats.md`): field names, types and order.
//! Regenerate the golden file with `UPDATE_GOLDEN=1 cargo test -p adi-sinks --test golden` and
//! review the diff: a change here is a change of the public output format.

use std::io::Write;
use std::sync::{Arc, Mutex};

use adi_core::engine::{Classification, FlowRecord};
use adi_core::event::{
    ConnectionEvent, ContainerEvent, ContainerInfo, Event, GoHttpEvent, GoHttpSide, Headers,
    HttpEvent, LostEvent, Place, ProcessInfo,
};
use adi_core::flow::{FlowId, FlowKey, Role};
use adi_core::{Category, Confidence, Direction, ProtocolId, Record, RecordKind};
use adi_sinks::{JsonlSink, Sink};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn process() -> ProcessInfo {
    ProcessInfo::new(4242, "curl", "curl -s http://[::1]:8080/api")
}

/// A container of compose service `service`.
fn container(service: &str) -> Arc<ContainerInfo> {
    Arc::new(ContainerInfo {
        service: service.into(),
        image: format!("localhost/bookinfo/{service}:1.0"),
        container_id: format!("{service:0>64}"),
        container_name: format!("bookinfo_{service}_1"),
        labels: [("com.docker.compose.service".to_owned(), service.to_owned())].into(),
    })
}

/// `process()` in container `productpage`, talking to container `reviews`.
fn contained() -> ProcessInfo {
    let mut p = process();
    p.service = Some("productpage".into());
    p.container = Some(container("productpage"));
    p.peer_place = Some(Place::Container(container("reviews")));
    p
}

fn events() -> Vec<Event> {
    let key = FlowKey {
        pid: 4242,
        role: Role::Client,
        client: "[::ffff:127.0.0.1]:51234".parse().expect("addr"),
        server: "[::1]:8080".parse().expect("addr"),
    };
    let mut req = Record::new(RecordKind::Request);
    req.op = Some("POST".into());
    req.resource = Some("/api?x=1".into());
    req.attributes = vec![
        ("Host".into(), "[::1]:8080".into()),
        ("Accept".into(), "text/html".into()),
        ("accept".into(), "application/json".into()),
    ];
    req.body = br#"{"name":"a \"quoted\" value"}"#.to_vec();
    req.raw = b"POST /api?x=1 HTTP/1.1\r\nHost: [::1]:8080\r\n".to_vec();
    req.wire_len = 131;
    let mut rsp = Record::new(RecordKind::Response);
    rsp.status = Some(201);
    rsp.attributes = vec![("Content-Length".into(), "2".into())];
    rsp.body = b"{}".to_vec();
    rsp.raw = b"HTTP/1.1 201 Created\r\n".to_vec();
    rsp.wire_len = 60;
    rsp.truncated = true;
    let ts = "2026-04-08T18:30:00.000000005Z".to_owned();
    let req_again = req.clone();
    let rec = |dir, record, latency_ns| FlowRecord {
        flow: FlowId(7),
        key,
        protocol: ProtocolId::new("http1"),
        dir,
        ts_ns: 5,
        latency_ns,
        record,
    };
    vec![
        Event::Http(HttpEvent::from_record(
            rec(Direction::ToServer, req, None),
            process(),
            ts.clone(),
        )),
        Event::Http(HttpEvent::from_record(
            rec(Direction::ToClient, rsp, Some(1_500_000)),
            process(),
            ts.clone(),
        )),
        Event::Connection(ConnectionEvent::from_classification(
            &Classification {
                flow: FlowId(7),
                key,
                ts_ns: 5,
                protocol: ProtocolId::new("http1"),
                category: Category::HTTP,
                confidence: Confidence::CONFIRMED,
                reason: "request line; confirmed by status line".into(),
            },
            process(),
            ts.clone(),
        )),
        Event::GoHttp(go_http(ts.clone())),
        Event::Container(ContainerEvent::new(&container("reviews"), ts.clone())),
        // With container enrichment: the same request as a process in a container sent it.
        Event::Http(HttpEvent::from_record(
            rec(Direction::ToServer, req_again, None),
            contained(),
            ts.clone(),
        )),
        Event::Lost(LostEvent {
            timestamp: ts,
            source: "bus:jsonl".into(),
            count: 3,
        }),
    ]
}

/// A Go client call as the uprobes report it, redacted as adi does by default: a header with
/// two values, a secret header and a secret query parameter.
fn go_http(timestamp: String) -> GoHttpEvent {
    let mut e = GoHttpEvent {
        timestamp,
        pid: 4243,
        comm: "client".into(),
        side: GoHttpSide::Client,
        method: "GET".into(),
        url: "https://[::1]:8443/items?id=7&access_token=abc".into(),
        headers: Headers(vec![
            ("Authorization".into(), "Bearer abc".into()),
            ("X-Two".into(), "one".into()),
            ("X-Two".into(), "two".into()),
        ]),
        truncated: true,
        truncated_fields: vec!["headers"],
        status_code: Some(200),
        duration_ms: Some(1.25),
        go_version: "go1.23.9".into(),
    };
    e.redact();
    e
}

#[test]
fn jsonl_output_matches_golden_file() {
    let buf = Shared::default();
    let mut sink = JsonlSink::to_writer("jsonl", "memory", Box::new(buf.clone()));
    for e in events() {
        sink.write(&e).expect("write");
    }
    sink.flush().expect("flush");
    let got = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/events.jsonl");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &got).expect("update golden");
    }
    let want = std::fs::read_to_string(path).expect("golden file");
    assert_eq!(got, want);
    for line in got.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(
            v["event_type"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

/// The lines the capturing thread encodes for the sink (`Sink::encoder`) are the ones the
/// sink writes itself, and a loss report is a `lost` line.
#[test]
fn jsonl_encoder_makes_the_sinks_own_lines() {
    let buf = Shared::default();
    let mut sink = JsonlSink::to_writer("jsonl", "memory", Box::new(buf.clone()));
    let mut encoder = sink
        .encoder()
        .expect("the jsonl sink encodes on the capturing thread");
    let mut bytes = Vec::new();
    let mut written = 0;
    for e in events() {
        if encoder.skips(&e) {
            continue;
        }
        encoder.encode(&e, &mut bytes).expect("encode");
        written += 1;
    }
    sink.write_encoded(&bytes).expect("write");
    sink.flush().expect("flush");
    let got = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
    let want = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/events.jsonl"
    ))
    .expect("golden file");
    assert_eq!(got, want);
    assert_eq!(
        written,
        want.lines().count(),
        "one line per event it counts"
    );

    let mut lost = Vec::new();
    encoder
        .encode_lost("bus:jsonl", 7, &mut lost)
        .expect("encode");
    let v: serde_json::Value = serde_json::from_slice(&lost).expect("one JSON line");
    assert_eq!(lost.last(), Some(&b'\n'));
    assert_eq!(v["event_type"], "lost");
    assert_eq!(v["source"], "bus:jsonl");
    assert_eq!(v["count"], 7);
    assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[test]
fn file_sink_creates_mode_0600_and_appends() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.jsonl");
    for _ in 0..2 {
        let mut sink = JsonlSink::file(&path).expect("open");
        sink.write(&events()[3]).expect("write");
        sink.flush().expect("flush");
    }
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .count(),
        2
    );
}

#[test]
fn unwritable_path_is_a_clear_error() {
    let err = JsonlSink::file(std::path::Path::new("/proc/adi-no-such-dir/x.jsonl"))
        .expect_err("must fail");
    assert!(
        err.to_string()
            .starts_with("cannot open /proc/adi-no-such-dir/x.jsonl: "),
        "{err}"
    );
}

/// Any text a message may carry: every byte value (controls, quotes, backslashes, invalid
/// UTF-8), and valid multi-byte characters.
fn wild_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop::collection::vec(
        prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            Just(b"\r\n".to_vec()),
        ],
        0..64,
    )
    .prop_map(|parts| parts.concat())
}

fn wild_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    wild_bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A query of a non-HTTP protocol with `op`, an attribute and an error.
fn message(op: Option<String>, attribute: &(String, String), error: &str) -> Event {
    let mut r = Record::new(RecordKind::Response);
    r.op = op;
    r.resource = Some(attribute.1.clone());
    r.status = Some(1064);
    r.attributes = vec![attribute.clone(), ("error".into(), error.into())];
    r.wire_len = 77;
    let key = FlowKey {
        pid: 4242,
        role: Role::Client,
        client: "127.0.0.1:40000".parse().expect("addr"),
        server: "127.0.0.1:3306".parse().expect("addr"),
    };
    let rec = FlowRecord {
        flow: FlowId(9),
        key,
        protocol: ProtocolId::new("mysql"),
        dir: Direction::ToClient,
        ts_ns: 5,
        latency_ns: Some(3),
        record: r,
    };
    Event::Message(adi_core::event::MessageEvent::from_record(
        rec,
        Category::DATABASE,
        contained(),
        "2026-04-08T18:30:00.000000005Z".into(),
    ))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// The sink's serialiser (sonic-rs, for speed) writes exactly the bytes serde_json writes
    /// for the same event: strings of any content, repeated headers, floats of any size.
    #[test]
    fn jsonl_bytes_equal_serde_json(
        body in wild_bytes(),
        raw in wild_bytes(),
        url in wild_text(),
        header in (wild_text(), wild_text()),
        op in proptest::option::of(wild_text()),
        latency_ns in proptest::option::of(proptest::prelude::any::<u64>()),
        duration_ms in proptest::prelude::any::<f64>(),
        sent in proptest::prelude::any::<bool>(),
    ) {
        let mut events = events();
        events.push(message(op.clone(), &header, &url));
        for e in &mut events {
            match e {
                Event::Http(h) => {
                    h.body = adi_core::event::LossyText(body.clone());
                    h.raw_payload = adi_core::event::LossyText(raw.clone());
                    h.url = Some(url.clone());
                    h.headers.0.push(header.clone());
                    h.headers.0.push((header.0.to_uppercase(), url.clone()));
                    #[expect(clippy::cast_precision_loss, reason = "any float will do")]
                    { h.latency_ms = latency_ns.map(|ns| ns as f64 / 1e6); }
                    h.tls = sent;
                }
                Event::GoHttp(g) => {
                    g.duration_ms = Some(duration_ms);
                    g.method.clone_from(&url);
                }
                Event::Connection(c) => c.detection_reason.clone_from(&url),
                Event::Lost(l) => l.source.clone_from(&url),
                _ => {}
            }
        }
        let buf = Shared::default();
        let mut sink = JsonlSink::to_writer("jsonl", "memory", Box::new(buf.clone()));
        let mut want = Vec::new();
        for e in &events {
            sink.write(e).expect("write");
            serde_json::to_writer(&mut want, e).expect("serde_json");
            want.push(b'\n');
        }
        sink.flush().expect("flush");
        let got = buf.0.lock().expect("lock").clone();
        proptest::prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    }
}
