//! amqp tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written frames, on look-alikes and on hostile or random bytes.

use adi_classify::testing::{
    self, flow_records, run_engine, summaries, summary as s, verdicts, Expect, Subject, Summary,
};
use adi_classify::{
    fixtures_path, Confidence, Direction, ParseError, PortHint, Probe, Record, RecordKind, Session,
};
use proptest::prelude::*;

use super::parser::{MAX_FRAME_SIZE, MAX_TABLE_DEPTH};
use super::session::{AmqpSession, MAX_BODY_KEPT};
use super::{Amqp, ID, PROBE_WINDOW};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Amqp, fixtures_path!("src/amqp/fixtures"));

const TO_SERVER_PUBLISH: &[u8] = include_bytes!("fixtures/to_server_pika_publish.bin");
const TO_CLIENT_PUBLISH: &[u8] = include_bytes!("fixtures/to_client_pika_publish.bin");
const TO_SERVER_CONSUME: &[u8] = include_bytes!("fixtures/to_server_pika_consume.bin");
const TO_CLIENT_CONSUME: &[u8] = include_bytes!("fixtures/to_client_pika_consume.bin");
const TO_SERVER_RAW_SPLIT: &[u8] = include_bytes!("fixtures/to_server_raw_split.bin");
const TO_CLIENT_RAW_SPLIT: &[u8] = include_bytes!("fixtures/to_client_raw_split.bin");
const TO_SERVER_LEGACY: &[u8] = include_bytes!("fixtures/to_server_legacy_0_8.bin");
const TO_CLIENT_LEGACY: &[u8] = include_bytes!("fixtures/to_client_legacy_0_8.bin");

/// (confidence, observed) of a match, or `None`.
fn verdict(buf: &[u8], dir: Direction) -> Option<Band> {
    testing::verdict(&Amqp, buf, dir, PortHint::NONE).map(|v| (v.confidence.get(), v.observed))
}

fn parse_one(bytes: &[u8], dir: Direction) -> (Result<usize, ParseError>, Vec<Record>) {
    let mut out = Vec::new();
    let r = AmqpSession::default().parse(bytes, dir, &mut out);
    (r, out)
}

/// (confidence, observed) of a match.
type Band = (u8, Option<Direction>);

/// A frame: type, channel, payload, frame-end.
fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&u32::try_from(payload.len()).expect("size").to_be_bytes());
    f.extend_from_slice(payload);
    f.push(0xCE);
    f
}

/// A method frame's payload: class-id, method-id, arguments.
fn method(class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut p = class.to_be_bytes().to_vec();
    p.extend_from_slice(&method.to_be_bytes());
    p.extend_from_slice(args);
    p
}

fn shortstr(s: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(s.len()).expect("short")];
    v.extend_from_slice(s);
    v
}

// ---- probe ----

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "amqp",
    "src/amqp/fixtures",
    Confidence::CERTAIN,
    Expect::NONE.reversed(&[Direction::ToClient]).exact_splits()
);

#[test]
fn a_protocol_header_may_travel_either_way() {
    // A server answers a bad protocol header with its own, so a to-server fixture given as
    // to-client still matches and notes nothing. (The rest: the conformance tests.)
    for fx in T.fixtures().iter().filter(|f| f.dir == Direction::ToServer) {
        let (_, observed) = verdict(&fx.bytes, fx.dir.reverse()).expect("match");
        assert_eq!(observed, None, "{}", fx.path.display());
    }
}

#[test]
fn probe_reasons_name_the_header_version() {
    let reason = |b: &[u8]| match T.probe(b, Direction::ToServer) {
        Probe::Match(v) => (v.confidence.get(), v.reason),
        other => panic!("{b:?}: {other:?}"),
    };
    assert_eq!(
        reason(b"AMQP\x00\x00\x09\x01"),
        (92, "AMQP 0-9-1 protocol header")
    );
    assert_eq!(
        reason(b"AMQP\x00\x01\x00\x00"),
        (92, "AMQP 1.0 protocol header")
    );
    assert_eq!(
        reason(b"AMQP\x03\x01\x00\x00"),
        (92, "AMQP 1.0 SASL protocol header")
    );
    assert_eq!(
        reason(b"AMQP\x01\x01\x08\x00"),
        (92, "AMQP 0-8 protocol header")
    );
    // Right magic, version bytes nobody uses: WEAK.
    assert_eq!(
        reason(b"AMQP\x00\x00\x0a\x00"),
        (65, "AMQP magic with an unknown version")
    );
}

#[test]
fn probe_bands_on_frames() {
    let heartbeat = frame(8, 0, b"");
    let tune_ok = frame(1, 0, &method(10, 31, &[0x07, 0xff, 0, 2, 0, 0, 0, 60]));
    let publish = frame(
        1,
        1,
        &method(
            60,
            40,
            &[&[0, 0][..], &shortstr(b"ex"), &shortstr(b"rk"), &[0]].concat(),
        ),
    );
    let content_header = frame(2, 1, &[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0]);
    let body = frame(3, 1, b"hello");
    let cases: &[(&[u8], Direction, Option<Band>)] = &[
        (&heartbeat, Direction::ToServer, Some((92, None))),
        // A whole client method: CERTAIN; seen to-client it is noted as to-server.
        (&tune_ok, Direction::ToServer, Some((92, None))),
        (
            &tune_ok,
            Direction::ToClient,
            Some((92, Some(Direction::ToServer))),
        ),
        (&publish, Direction::ToServer, Some((92, None))),
        // Header and class/method checked, payload still coming: STRONG.
        (&publish[..12], Direction::ToServer, Some((80, None))),
        // Class/method not yet read: no verdict.
        (&publish[..10], Direction::ToServer, None),
        (&content_header, Direction::ToClient, Some((92, None))),
        (&content_header[..12], Direction::ToClient, Some((80, None))),
        (&body, Direction::ToClient, Some((80, None))),
    ];
    for (buf, dir, want) in cases {
        assert_eq!(verdict(buf, *dir), *want, "{buf:?}");
    }
    // A 1-byte-short frame needs more; the wrong frame-end octet is not AMQP.
    assert_eq!(
        T.probe(&publish[..publish.len() - 1], Direction::ToServer),
        Probe::Match(match T.probe(&publish[..12], Direction::ToServer) {
            Probe::Match(v) => v,
            other => panic!("{other:?}"),
        })
    );
    let mut bad_end = publish.clone();
    *bad_end.last_mut().expect("end") = 0xCD;
    assert_eq!(T.probe(&bad_end, Direction::ToServer), Probe::NoMatch);
}

#[test]
fn probe_rejects_inconsistent_frames() {
    let cases: Vec<Vec<u8>> = vec![
        // Connection method on channel 1, channel method on channel 0 (section 4.2.3).
        frame(1, 1, &method(10, 31, &[0; 8])),
        frame(1, 0, &method(20, 10, &shortstr(b""))),
        // Unknown class/method.
        frame(1, 1, &method(60, 41, &[])),
        frame(1, 1, &method(99, 10, &[])),
        // Arguments that do not fit the frame: queue name longer than the payload.
        frame(1, 1, &method(50, 10, &[0, 0, 200, b'q'])),
        // Heartbeat with a payload or on a channel.
        frame(8, 0, b"x"),
        frame(8, 3, b""),
        // Content header of a class without content, or with a weight.
        frame(2, 1, &[0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        frame(2, 1, &[0, 60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        // Content on channel 0.
        frame(3, 0, b"body"),
        // Unknown frame type; size over MAX_FRAME_SIZE.
        frame(4, 1, b""),
        vec![1, 0, 1, 0x7f, 0, 0, 0, 0, 60, 0, 40],
    ];
    for buf in &cases {
        assert_eq!(T.probe(buf, Direction::ToServer), Probe::NoMatch, "{buf:?}");
    }
    // A body frame whose end lies past the window can never be checked.
    let mut big = vec![3, 0, 1, 0, 0, 0x10, 0];
    big.resize(PROBE_WINDOW + 10, b'x');
    assert_eq!(T.probe(&big, Direction::ToServer), Probe::NoMatch);
    assert_eq!(T.probe(&big[..100], Direction::ToServer), Probe::NoMatch);
    // One that fits is worth waiting for.
    let small = frame(3, 1, &[b'x'; 200]);
    assert_eq!(T.probe(&small[..100], Direction::ToServer), Probe::NeedMore);
}

#[test]
fn look_alikes_are_told_apart() {
    let cases: &[&[u8]] = &[
        // Text that starts with the magic.
        b"AMQP is a wire protocol\r\n",
        b"AMQP/1.0 200 OK\r\n",
        // Postgres StartupMessage / SSLRequest, MySQL greeting, Kafka request, TDS prelogin,
        // TLS ClientHello, Mongo OP_MSG, HTTP, Redis, NATS.
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
        b"\x4a\x00\x00\x00\x0a8.0.36\x00",
        b"\x00\x00\x00\x2b\x00\x12\x00\x03\x00\x00\x00\x01",
        b"\x12\x01\x00\x2f\x00\x00\x01\x00",
        b"\x01\x01\x00\x2c\x00\x00\x01\x00select 1",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"\x3a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00",
        b"GET / HTTP/1.1\r\n\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"INFO {\"server_id\":\"x\"}\r\n",
        // MySQL packets whose length starts with 1, 2, 3 or 8 (sequence id 0 or 1).
        b"\x08\x00\x00\x00\x03SELECT 1",
        b"\x01\x00\x00\x01\x01",
    ];
    T.assert_prefixes_below(Confidence::new(0), cases);
}

proptest! {
    #[test]
    fn proptest_frame_header_then_noise_never_panics(
        kind in prop::sample::select(vec![1u8, 2, 3, 8]),
        channel in 0u16..3,
        size in 0u32..600,
        tail in proptest::collection::vec(any::<u8>(), 0..700),
    ) {
        let mut buf = vec![kind];
        buf.extend_from_slice(&channel.to_be_bytes());
        buf.extend_from_slice(&size.to_be_bytes());
        buf.extend_from_slice(&tail);
        for dir in [Direction::ToServer, Direction::ToClient] {
            let _ = T.probe(&buf, dir);
            let _ = AmqpSession::default().parse(&buf, dir, &mut Vec::new());
        }
    }

    #[test]
    fn proptest_method_with_random_arguments_never_panics(
        id in prop::sample::select(vec![(10u16, 10u16), (10, 11), (40, 10), (50, 10), (50, 20), (60, 20), (60, 40), (60, 60), (60, 71)]),
        args in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let channel = u16::from(id.0 != 10);
        let buf = frame(1, channel, &method(id.0, id.1, &args));
        for dir in [Direction::ToServer, Direction::ToClient] {
            let _ = T.probe(&buf, dir);
            let _ = AmqpSession::default().parse(&buf, dir, &mut Vec::new());
        }
    }
}

// ---- session ----

const PIKA_PROPS: [(&str, &str); 3] = [
    ("product", "Pika Python Client Library"),
    ("version", "1.4.4"),
    ("platform", "Python 3.11.7"),
];
const RABBIT_PROPS: [(&str, &str); 5] = [
    ("product", "RabbitMQ"),
    ("version", "3.10.8"),
    ("platform", "Erlang/OTP 25.2.3"),
    ("cluster_name", "adi-capture@vm"),
    ("mechanisms", "PLAIN AMQPLAIN"),
];

fn with(
    base: &[(&'static str, &'static str)],
    more: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    base.iter().chain(more).copied().collect()
}

/// What every pika connection starts with: the protocol header, then Start-Ok (with `name`),
/// Tune-Ok, Open and Channel.Open.
fn pika_opening(name: &'static str) -> Vec<Summary> {
    use RecordKind::{Message, Request, Response};
    let start_ok = with(
        &PIKA_PROPS,
        &[("connection_name", name), ("mechanism", "PLAIN")],
    );
    vec![
        s(
            Message,
            "protocol-header",
            None,
            None,
            &[("version", "0-9-1")],
        ),
        s(Response, "connection.start-ok", None, None, &start_ok),
        s(Response, "connection.tune-ok", None, None, &[]),
        s(Request, "connection.open", Some("/"), None, &[]),
        s(Request, "channel.open", None, None, &[]),
    ]
}

#[test]
fn session_pika_publish() {
    use RecordKind::{Message, Request, Response};
    let records = T.parse_all(TO_SERVER_PUBLISH, TO_CLIENT_PUBLISH);
    let normal = Some(200);
    let bye = [("reply_text", "Normal shutdown")];
    let mut want = pika_opening("adi-publisher");
    want.extend([
        s(
            Request,
            "exchange.declare",
            Some("adi.events"),
            None,
            &[("type", "topic")],
        ),
        s(Request, "queue.declare", Some("adi.tasks"), None, &[]),
        s(
            Request,
            "queue.bind",
            Some("adi.tasks"),
            None,
            &[("exchange", "adi.events"), ("routing_key", "task.#")],
        ),
        s(
            Message,
            "basic.publish",
            Some("adi.events"),
            None,
            &[
                ("exchange", "adi.events"),
                ("routing_key", "task.created"),
                ("content_type", "application/json"),
            ],
        ),
        // The default exchange: the routing key (the queue) is the resource.
        s(
            Message,
            "basic.publish",
            Some("adi.tasks"),
            None,
            &[("exchange", ""), ("routing_key", "adi.tasks")],
        ),
        s(
            Message,
            "basic.publish",
            Some("adi.events"),
            None,
            &[("exchange", "adi.events"), ("routing_key", "task.big")],
        ),
        s(Request, "channel.close", None, normal, &bye),
        s(Request, "connection.close", None, normal, &bye),
        s(Request, "connection.start", None, None, &RABBIT_PROPS),
        s(Request, "connection.tune", None, None, &[]),
        s(Response, "connection.open-ok", None, None, &[]),
        s(Response, "channel.open-ok", None, None, &[]),
        s(Response, "exchange.declare-ok", None, None, &[]),
        s(Response, "queue.declare-ok", Some("adi.tasks"), None, &[]),
        s(Response, "queue.bind-ok", None, None, &[]),
        s(Response, "channel.close-ok", None, None, &[]),
        s(Response, "connection.close-ok", None, None, &[]),
    ]);
    assert_eq!(summaries(&records), want);
    // Bodies, sizes: the JSON message is 25 bytes; method + header + body frames on the wire.
    assert_eq!(records[8].body, br#"{"id":1,"kind":"created"}"#);
    assert_eq!(records[9].body, b"plain text to the default exchange");
    assert_eq!(records[10].body, vec![b'x'; 3000]);
    assert_eq!(
        records[10].wire_len,
        (7 + 27 + 1) + (7 + 14 + 1) + (7 + 3000 + 1)
    );
    assert!(!records.iter().any(|r| r.truncated));
    // Requests and responses balance (the engine pairs them in order).
    let count = |k| records.iter().filter(|r| r.kind == k).count();
    assert_eq!(count(Request), count(Response));
}

#[test]
fn session_pika_consume() {
    use RecordKind::{Message, Request, Response};
    let records = T.parse_all(TO_SERVER_CONSUME, TO_CLIENT_CONSUME);
    let tag = records
        .iter()
        .find_map(|r| r.attribute("consumer_tag"))
        .expect("consumer tag")
        .to_owned();
    assert!(tag.starts_with("ctag1."), "{tag}");
    let tag = tag.as_str();
    let bye = [("reply_text", "Normal shutdown")];
    let mut want = pika_opening("adi-consumer");
    want.extend([
        s(Request, "basic.qos", None, None, &[]),
        s(Request, "queue.declare", Some("adi.tasks"), None, &[]),
        s(
            Request,
            "basic.consume",
            Some("adi.tasks"),
            None,
            &[("consumer_tag", tag)],
        ),
    ]);
    want.extend(std::iter::repeat_n(
        s(Message, "basic.ack", None, None, &[]),
        3,
    ));
    want.extend([
        s(
            Request,
            "basic.cancel",
            None,
            None,
            &[("consumer_tag", tag)],
        ),
        s(Request, "channel.close", None, Some(200), &bye),
        s(Request, "connection.close", None, Some(200), &bye),
        s(Request, "connection.start", None, None, &RABBIT_PROPS),
        s(Request, "connection.tune", None, None, &[]),
        s(Response, "connection.open-ok", None, None, &[]),
        s(Response, "channel.open-ok", None, None, &[]),
        s(Response, "basic.qos-ok", None, None, &[]),
        s(Response, "queue.declare-ok", Some("adi.tasks"), None, &[]),
        s(
            Response,
            "basic.consume-ok",
            None,
            None,
            &[("consumer_tag", tag)],
        ),
        s(
            Message,
            "basic.deliver",
            Some("adi.events"),
            None,
            &[
                ("exchange", "adi.events"),
                ("routing_key", "task.created"),
                ("consumer_tag", tag),
                ("content_type", "application/json"),
            ],
        ),
        s(
            Message,
            "basic.deliver",
            Some("adi.tasks"),
            None,
            &[
                ("exchange", ""),
                ("routing_key", "adi.tasks"),
                ("consumer_tag", tag),
            ],
        ),
        s(
            Message,
            "basic.deliver",
            Some("adi.events"),
            None,
            &[
                ("exchange", "adi.events"),
                ("routing_key", "task.big"),
                ("consumer_tag", tag),
            ],
        ),
        s(
            Response,
            "basic.cancel-ok",
            None,
            None,
            &[("consumer_tag", tag)],
        ),
        s(Response, "channel.close-ok", None, None, &[]),
        s(Response, "connection.close-ok", None, None, &[]),
    ]);
    assert_eq!(summaries(&records), want);
    assert_eq!(records[22].body, b"plain text to the default exchange");
}

#[test]
fn session_raw_split_and_legacy() {
    use RecordKind::{Message, Request, Response};
    let records = T.parse_all(TO_SERVER_RAW_SPLIT, TO_CLIENT_RAW_SPLIT);
    assert_eq!(
        testing::ops(&records),
        [
            (Message, "protocol-header"),
            (Response, "connection.start-ok"),
            (Response, "connection.tune-ok"),
            (Request, "connection.open"),
            (Request, "connection.close"),
            (Request, "connection.start"),
            (Request, "connection.tune"),
            (Response, "connection.open-ok"),
            (Response, "connection.close-ok"),
        ]
    );
    assert_eq!(
        records[1].attributes,
        [
            ("product".to_owned(), "adi-raw".to_owned()),
            ("connection_name".to_owned(), "raw-split".to_owned()),
            ("mechanism".to_owned(), "PLAIN".to_owned())
        ]
    );
    assert_eq!(
        (records[4].status, records[4].attribute("reply_text")),
        (Some(200), Some("bye"))
    );
    // RabbitMQ still answers an AMQP 0-8 header with a (0-8) Connection.Start.
    let records = T.parse_all(TO_SERVER_LEGACY, TO_CLIENT_LEGACY);
    assert_eq!(
        summaries(&records),
        [
            s(
                Message,
                "protocol-header",
                None,
                None,
                &[("version", "0-8")]
            ),
            s(Request, "connection.start", None, None, &RABBIT_PROPS),
        ]
    );
}

#[test]
fn protocol_headers_in_the_session() {
    // AMQP 1.0: its framing is not parsed, everything after the header is consumed quietly.
    let mut one = b"AMQP\x00\x01\x00\x00".to_vec();
    one.extend_from_slice(&[0, 0, 0, 0x20, 2, 0, 0, 0, 0, 0x53, 0x10]);
    let (r, out) = parse_one(&one, Direction::ToServer);
    assert_eq!(r, Ok(one.len()));
    assert_eq!(out[0].attribute("version"), Some("1.0"));
    // AMQP 1.0 TLS: the bytes after the header are TLS, another protocol.
    let (r, out) = parse_one(b"AMQP\x02\x01\x00\x00\x16\x03\x01", Direction::ToServer);
    assert_eq!(r, Ok(8));
    assert_eq!(out[0].kind, RecordKind::Switch);
    // An unknown version is reported as its bytes.
    let (r, out) = parse_one(b"AMQP\x00\x00\x0a\x00", Direction::ToServer);
    assert_eq!(r, Ok(8));
    assert_eq!(out[0].attribute("version"), Some("0.0.10.0"));
    // Header split: nothing consumed until all 8 bytes are there.
    assert_eq!(parse_one(b"AMQP\x00\x00", Direction::ToServer).0, Ok(0));
}

#[test]
fn large_body_is_streamed_and_capped() {
    let size = 100_000usize;
    let mut bytes = frame(
        1,
        1,
        &method(
            60,
            40,
            &[&[0, 0][..], &shortstr(b""), &shortstr(b"q"), &[0]].concat(),
        ),
    );
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&(size as u64).to_be_bytes());
    header.extend_from_slice(&[0, 0]);
    bytes.extend(frame(2, 1, &header));
    // Two body frames (frame-max splits content, section 4.2.6.2).
    bytes.extend(frame(3, 1, &vec![b'a'; size / 2]));
    bytes.extend(frame(3, 1, &vec![b'b'; size / 2]));
    let mut session = AmqpSession::default();
    let mut out = Vec::new();
    let mut consumed = 0;
    for chunk in bytes.chunks(4096) {
        // Every chunk is consumed whole: body frames are never buffered.
        consumed += session
            .parse(chunk, Direction::ToServer, &mut out)
            .expect("parse");
    }
    assert_eq!(consumed, bytes.len());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resource.as_deref(), Some("q"));
    assert_eq!(out[0].body.len(), MAX_BODY_KEPT);
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, bytes.len() as u64);
}

#[test]
fn no_wait_requests_are_messages() {
    // queue.declare with the no-wait bit (0x10): no declare-ok will answer it.
    let args = [&[0, 0][..], &shortstr(b"q"), &[0x10], &[0, 0, 0, 0]].concat();
    let (r, out) = parse_one(&frame(1, 1, &method(50, 10, &args)), Direction::ToServer);
    assert!(r.is_ok());
    assert_eq!(out[0].kind, RecordKind::Message);
    let args = [&[0, 0][..], &shortstr(b"q"), &[0x00], &[0, 0, 0, 0]].concat();
    let (_, out) = parse_one(&frame(1, 1, &method(50, 10, &args)), Direction::ToServer);
    assert_eq!(out[0].kind, RecordKind::Request);
}

/// A field table nested `depth` levels: `{"a": {"a": ... {}}}`.
fn nested_table(depth: usize) -> Vec<u8> {
    let mut t: Vec<u8> = vec![0, 0, 0, 0];
    for _ in 0..depth {
        let mut entry = shortstr(b"a");
        entry.push(b'F');
        entry.extend_from_slice(&t);
        let mut outer = u32::try_from(entry.len())
            .expect("len")
            .to_be_bytes()
            .to_vec();
        outer.extend_from_slice(&entry);
        t = outer;
    }
    t
}

#[test]
fn hostile_tables_and_lengths() {
    let start_ok = |table: &[u8]| {
        let args = [
            table,
            &shortstr(b"PLAIN"),
            &[0, 0, 0, 0],
            &shortstr(b"en_US"),
        ]
        .concat();
        frame(1, 0, &method(10, 11, &args))
    };
    // Nesting within the bound parses; one level more is refused, never recursing deeper.
    let ok = start_ok(&nested_table(MAX_TABLE_DEPTH - 1));
    assert!(matches!(T.probe(&ok, Direction::ToServer), Probe::Match(_)));
    assert!(parse_one(&ok, Direction::ToServer).0.is_ok());
    let deep = start_ok(&nested_table(MAX_TABLE_DEPTH + 1));
    assert_eq!(T.probe(&deep, Direction::ToServer), Probe::NoMatch);
    assert!(parse_one(&deep, Direction::ToServer).0.is_err());
    // Thousands of levels: no stack overflow.
    let bomb = start_ok(&nested_table(5000));
    assert_eq!(
        T.probe(&bomb[..PROBE_WINDOW], Direction::ToServer),
        Probe::Match(match T.probe(&bomb[..12], Direction::ToServer) {
            Probe::Match(v) => v,
            other => panic!("{other:?}"),
        })
    );
    assert!(parse_one(&bomb, Direction::ToServer).0.is_err());
    // A table whose length runs past the frame, an unknown field type.
    assert!(
        parse_one(&start_ok(&[0, 0, 0xff, 0xff]), Direction::ToServer)
            .0
            .is_err()
    );
    let unknown_type = [&[0, 0, 0, 4][..], &shortstr(b"k"), &[b'Z', 0]].concat();
    assert!(parse_one(&start_ok(&unknown_type), Direction::ToServer)
        .0
        .is_err());
    // Frame size over MAX_FRAME_SIZE.
    let mut huge = vec![1, 0, 1];
    huge.extend_from_slice(&(MAX_FRAME_SIZE + 1).to_be_bytes());
    assert!(matches!(
        parse_one(&huge, Direction::ToServer).0,
        Err(ParseError::TooLarge { .. })
    ));
    // Wrong frame-end octet, unknown frame type.
    let mut bad_end = frame(8, 0, b"");
    bad_end[7] = 0;
    assert!(parse_one(&bad_end, Direction::ToServer).0.is_err());
    assert!(parse_one(&frame(5, 0, b""), Direction::ToServer).0.is_err());
    // Truncated frames consume nothing and never fail.
    // (Connection.Start is 509 bytes, Tune the next 20.)
    for n in 0..529 {
        let want = if n < 509 { 0 } else { 509 };
        assert_eq!(
            parse_one(&TO_CLIENT_PUBLISH[..n], Direction::ToClient).0,
            Ok(want),
            "{n}"
        );
    }
}

// ---- engine ----

#[test]
fn engine_confirms_and_pairs() {
    // Interleaved as on the wire: header, Start, Start-Ok.. (raw_split's order).
    let ts = TO_SERVER_RAW_SPLIT;
    let tc = TO_CLIENT_RAW_SPLIT;
    let (engine, out) = run_engine(
        15672,
        &[
            (Direction::ToServer, 1_000, &ts[..8]),
            (Direction::ToClient, 2_000, &tc[..509]),
            (Direction::ToServer, 3_000, &ts[8..]),
            (Direction::ToClient, 4_000, &tc[509..]),
        ],
    );
    let classified = verdicts(&out);
    assert_eq!(
        classified.last(),
        Some(&(ID, Confidence::CONFIRMED)),
        "{out:#?}"
    );
    let records: Vec<_> = flow_records(&out)
        .iter()
        .map(|r| (r.record.op.clone().unwrap_or_default(), r.latency_ns))
        .collect();
    assert_eq!(records.len(), 9, "{records:?}");
    assert!(records
        .iter()
        .any(|(op, l)| op == "connection.start-ok" && l.is_some()));
    assert_eq!(engine.stats().parse_errors, 0);
}

#[test]
fn gaps_inside_a_body_are_stepped_over() {
    let mut bytes = frame(
        1,
        1,
        &method(
            60,
            40,
            &[&[0, 0][..], &shortstr(b""), &shortstr(b"q"), &[0]].concat(),
        ),
    );
    bytes.extend(frame(2, 1, &[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0]));
    let body = frame(3, 1, b"0123456789");
    let mut session = AmqpSession::default();
    let mut out = Vec::new();
    // Method, header, body frame header and 3 body bytes captured; 5 bytes lost.
    let head = [&bytes[..], &body[..10]].concat();
    assert_eq!(
        session.parse(&head, Direction::ToServer, &mut out),
        Ok(head.len())
    );
    assert_eq!(session.gap(Direction::ToServer, 5, &mut out), Ok(()));
    assert!(out.is_empty());
    assert_eq!(
        session.parse(&body[15..], Direction::ToServer, &mut out),
        Ok(3)
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body, b"01289");
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, (bytes.len() + body.len()) as u64);
    // Outside a body frame, or past its end: the engine must restart the session.
    assert!(AmqpSession::default()
        .gap(Direction::ToServer, 1, &mut out)
        .is_err());
    let mut session = AmqpSession::default();
    session
        .parse(
            &[&bytes[..], &body[..8]].concat(),
            Direction::ToServer,
            &mut out,
        )
        .expect("parse");
    assert!(session.gap(Direction::ToServer, 100, &mut out).is_err());
}
