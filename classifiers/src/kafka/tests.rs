//! kafka tests: the probe and the session on real kafka-python captures (see
//! `fixtures/README.md`), on hand-written edge cases, on look-alikes and on random bytes.

use adi_classify::testing::{summaries, summary as s, Expect, Subject};
use adi_classify::{fixtures_path, Confidence, Direction, Probe, RecordKind, Session};
use proptest::prelude::*;

use super::session::KafkaSession;
use super::Kafka;

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Kafka, fixtures_path!("src/kafka/fixtures"));

const TO_SERVER_BOOTSTRAP: &[u8] = include_bytes!("fixtures/to_server_kafka_default_0.bin");
const TO_CLIENT_BOOTSTRAP: &[u8] = include_bytes!("fixtures/to_client_kafka_default_0.bin");
const TO_SERVER_PRODUCE: &[u8] = include_bytes!("fixtures/to_server_kafka_default_1.bin");
const TO_CLIENT_PRODUCE: &[u8] = include_bytes!("fixtures/to_client_kafka_default_1.bin");

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "kafka",
    "src/kafka/fixtures",
    Confidence::CERTAIN,
    Expect::NONE.reversed(&[Direction::ToServer])
);

#[test]
fn bands_grow_with_the_prefix() {
    // (Every fixture CERTAIN in its direction: the conformance tests.)
    // The 14-byte request header (up to an 11-byte client id) is not enough yet: the id
    // must be read whole before anything is claimed.
    let strong = Some(Confidence::STRONG);
    T.assert_prefix_bands(
        TO_SERVER_BOOTSTRAP,
        Direction::ToServer,
        &[(14, None), (25, strong)],
    );
    // ApiVersions response: three entries read is STRONG (v3 layout: 2 + 1 + 3 * 7 bytes).
    T.assert_prefix_bands(
        TO_CLIENT_BOOTSTRAP,
        Direction::ToClient,
        &[(12, None), (32, strong)],
    );
}

#[test]
fn session_names_every_request_and_pairs_responses() {
    use RecordKind::{Request, Response};
    let client = ("client_id", "adi-fixture");
    // Kafka records name no resource.
    let expected = [
        s(
            Request,
            "ApiVersions",
            None,
            None,
            &[client, ("api_version", "3"), ("correlation_id", "1")],
        ),
        s(
            Request,
            "Metadata",
            None,
            None,
            &[client, ("api_version", "1"), ("correlation_id", "2")],
        ),
        s(
            Request,
            "Produce",
            None,
            None,
            &[client, ("api_version", "2"), ("correlation_id", "3")],
        ),
        s(
            Response,
            "ApiVersions",
            None,
            Some(0),
            &[("correlation_id", "1")],
        ),
        s(Response, "Metadata", None, None, &[("correlation_id", "2")]),
        s(Response, "Produce", None, None, &[("correlation_id", "3")]),
    ];
    for size in [usize::MAX, 1, 3, 7] {
        let records = T.parse_split(TO_SERVER_PRODUCE, TO_CLIENT_PRODUCE, size.min(4096));
        assert_eq!(summaries(&records), expected, "pieces of {size}");
    }
    let records = T.parse_split(TO_SERVER_PRODUCE, TO_CLIENT_PRODUCE, 4096);
    assert_eq!(records[2].wire_len, 0x65 + 4);
    assert_eq!(records[0].raw, TO_SERVER_PRODUCE[..47]);
}

#[test]
fn bootstrap_connection_sends_api_versions_v4() {
    let records = T.parse_split(TO_SERVER_BOOTSTRAP, TO_CLIENT_BOOTSTRAP, 4096);
    let ops: Vec<_> = records
        .iter()
        .map(|r| (r.kind, r.op.as_deref(), r.attribute("api_version")))
        .collect();
    assert_eq!(
        ops,
        [
            (RecordKind::Request, Some("ApiVersions"), Some("4")),
            (RecordKind::Request, Some("Metadata"), Some("1")),
            (RecordKind::Response, Some("ApiVersions"), None),
            (RecordKind::Response, Some("Metadata"), None),
        ]
    );
}

/// A Produce v2 request with `acks = 0`, hand-written.
const PRODUCE_ACKS_0: &[u8] = &[
    0x00, 0x00, 0x00, 0x15, // size 21
    0x00, 0x00, // api_key 0 (Produce)
    0x00, 0x02, // api_version 2
    0x00, 0x00, 0x00, 0x07, // correlation_id 7
    0x00, 0x01, b'p', // client_id "p"
    0x00, 0x00, // acks 0
    0x00, 0x00, 0x03, 0xe8, // timeout_ms 1000
    0x00, 0x00, 0x00, 0x00, // topic_data: empty array
];

#[test]
fn produce_with_acks_0_expects_no_response() {
    assert_eq!(
        T.score(PRODUCE_ACKS_0, Direction::ToServer),
        Confidence::CERTAIN.get()
    );
    let mut out = Vec::new();
    let n = KafkaSession::default()
        .parse(PRODUCE_ACKS_0, Direction::ToServer, &mut out)
        .expect("parse");
    assert_eq!(n, PRODUCE_ACKS_0.len());
    assert_eq!(out[0].kind, RecordKind::Message);
    assert_eq!(out[0].op.as_deref(), Some("Produce"));
}

#[test]
fn header_fields_are_checked() {
    let ok = |b: &[u8]| T.score(b, Direction::ToServer) >= Confidence::STRONG.get();
    let mut b = PRODUCE_ACKS_0.to_vec();
    assert!(ok(&b));
    b[4..6].copy_from_slice(&93i16.to_be_bytes()); // api_key 93: unknown
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = PRODUCE_ACKS_0.to_vec();
    b[6..8].copy_from_slice(&14i16.to_be_bytes()); // Produce v14: beyond the known range
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = PRODUCE_ACKS_0.to_vec();
    b[8] = 0x80; // correlation_id negative
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = PRODUCE_ACKS_0.to_vec();
    b[12..14].copy_from_slice(&11i16.to_be_bytes()); // client_id of 11 bytes: past the frame
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = PRODUCE_ACKS_0.to_vec();
    b[14] = 0x01; // client_id holds a control byte
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = PRODUCE_ACKS_0.to_vec();
    b[0..4].copy_from_slice(&104_857_601i32.to_be_bytes()); // size above socket.request.max.bytes
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = PRODUCE_ACKS_0.to_vec();
    b[0..4].copy_from_slice(&9i32.to_be_bytes()); // size below the smallest header
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    // A null client_id (length -1) is allowed.
    let null_id: &[u8] = &[
        0x00, 0x00, 0x00, 0x0a, // size 10
        0x00, 0x12, // api_key 18 (ApiVersions)
        0x00, 0x00, // api_version 0
        0x00, 0x00, 0x00, 0x00, // correlation_id 0
        0xff, 0xff, // client_id null
    ];
    assert_eq!(
        T.score(null_id, Direction::ToServer),
        Confidence::CERTAIN.get()
    );
}

#[test]
fn api_versions_response_v0_is_recognised() {
    let v0: &[u8] = &[
        0x00, 0x00, 0x00, 0x12, // size 18
        0x00, 0x00, 0x00, 0x00, // correlation_id 0
        0x00, 0x00, // error_code 0
        0x00, 0x00, 0x00, 0x01, // 1 entry
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, // ApiVersions 0..=3
        0x00, 0x00, // 2 bytes too many for v0, too few for v1: inconsistent
    ];
    assert_eq!(T.probe(v0, Direction::ToClient), Probe::NoMatch);
    let mut fixed = v0[..20].to_vec();
    fixed[3] = 0x10; // size 16: exactly v0
    assert_eq!(
        T.score(&fixed, Direction::ToClient),
        Confidence::CERTAIN.get()
    );
    fixed[9] = 0x05; // error_code 5: not 0 or 35
    assert_eq!(T.probe(&fixed, Direction::ToClient), Probe::NoMatch);
}

#[test]
fn look_alikes_are_rejected() {
    // Postgres StartupMessage: reads as Metadata v0 until the "client id".
    let startup = b"\x00\x00\x00\x54\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00application_name\x00psql\x00client_encoding\x00UTF8\x00\x00";
    assert!(T.score(startup, Direction::ToServer) < Confidence::REPORT.get());
    T.assert_no_match(
        Direction::ToServer,
        &[
            // A MongoDB OP_MSG header (little-endian length).
            b"\x3a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00",
            // A TDS PRELOGIN header.
            b"\x12\x01\x00\x3a\x00\x00\x01\x00\x00\x00\x1a\x00\x06\x01",
            b"GET / HTTP/1.1\r\n",
        ],
    );
}

#[test]
fn hostile_lengths_never_panic() {
    let mut session = KafkaSession::default();
    let mut out = Vec::new();
    assert!(session
        .parse(b"\x7f\xff\xff\xff\x00\x00", Direction::ToServer, &mut out)
        .is_err());
    assert!(session
        .parse(b"\xff\xff\xff\xff\x00\x00", Direction::ToClient, &mut out)
        .is_err());
    assert!(session
        .parse(b"\x00\x00\x00\x02\x00\x00", Direction::ToClient, &mut out)
        .is_err());
    // A truncated request header whose frame claims to be complete.
    assert!(session
        .parse(
            b"\x00\x00\x00\x0a\x00\x03\x00\x01\x00\x00\x00\x01\x00\x05ab",
            Direction::ToServer,
            &mut out
        )
        .is_err());
    // (Every fixture prefix: the conformance tests.)
}

proptest! {}
