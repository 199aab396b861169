//! mongodb tests: the probe and the session on real pymongo captures (see
//! `fixtures/README.md`), on hand-written OP_QUERY / OP_REPLY / OP_COMPRESSED messages, on
//! look-alikes and on random bytes.

use adi_classify::testing::{summaries, summary as s, Expect, Subject};
use adi_classify::{fixtures_path, Confidence, Direction, Probe, RecordKind, Session};
use proptest::prelude::*;

use super::parser::{validate_document, MAX_BSON_DEPTH};
use super::session::MongoSession;
use super::MongoDb;

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&MongoDb, fixtures_path!("src/mongodb/fixtures"));

const TO_SERVER_APP: &[u8] = include_bytes!("fixtures/to_server_mongodb_default_1.bin");
const TO_CLIENT_APP: &[u8] = include_bytes!("fixtures/to_client_mongodb_default_1.bin");
const TO_SERVER_ZLIB: &[u8] = include_bytes!("fixtures/to_server_mongodb_nondefault_zlib_1.bin");
const TO_CLIENT_ZLIB: &[u8] = include_bytes!("fixtures/to_client_mongodb_nondefault_zlib_1.bin");

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "mongodb",
    "src/mongodb/fixtures",
    Confidence::CERTAIN,
    Expect::NONE.reversed(Expect::BOTH_WAYS)
);

#[test]
fn bands_grow_with_the_prefix() {
    // The header alone (16 bytes) claims nothing; nor do flagBits, section kind 0, document
    // length, then the first element `ismaster`.
    T.assert_prefix_bands(
        TO_SERVER_APP,
        Direction::ToServer,
        &[
            (16, None),
            (26, None),
            (35, Some(Confidence::STRONG)),
            (388, Some(Confidence::CERTAIN)),
        ],
    );
}

#[test]
fn session_summarises_commands_and_pairs_replies() {
    use RecordKind::{Request, Response};
    let op_msg = ("op_code", "OP_MSG");
    let (admin, shop, orders) = (Some("admin"), Some("shop"), Some("shop.orders"));
    let in_orders = [op_msg, ("database", "shop"), ("collection", "orders")];
    let ok = [op_msg, ("ok", "1")];
    let expected = [
        s(
            Request,
            "ismaster",
            admin,
            None,
            &[op_msg, ("database", "admin")],
        ),
        s(Request, "ping", shop, None, &[op_msg, ("database", "shop")]),
        s(Request, "insert", orders, None, &in_orders),
        s(Request, "find", orders, None, &in_orders),
        s(Response, "ismaster", None, None, &ok),
        s(Response, "ping", None, None, &ok),
        s(Response, "insert", None, None, &ok),
        s(Response, "find", None, None, &ok),
    ];
    for size in [4096, 1, 5, 17] {
        assert_eq!(
            summaries(&T.parse_split(TO_SERVER_APP, TO_CLIENT_APP, size)),
            expected,
            "pieces of {size}"
        );
    }
}

#[test]
fn zlib_compressed_commands_are_named_by_their_reply_pairing() {
    let records = T.parse_split(TO_SERVER_ZLIB, TO_CLIENT_ZLIB, 4096);
    let got: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.kind,
                r.op.as_deref(),
                r.attribute("op_code"),
                r.attribute("compressor"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (RecordKind::Request, Some("ismaster"), Some("OP_MSG"), None),
            (
                RecordKind::Request,
                None,
                Some("OP_COMPRESSED"),
                Some("zlib")
            ),
            (
                RecordKind::Request,
                None,
                Some("OP_COMPRESSED"),
                Some("zlib")
            ),
            (
                RecordKind::Request,
                None,
                Some("OP_COMPRESSED"),
                Some("zlib")
            ),
            (RecordKind::Response, Some("ismaster"), Some("OP_MSG"), None),
            (RecordKind::Response, None, Some("OP_MSG"), None),
            (RecordKind::Response, None, Some("OP_MSG"), None),
            (RecordKind::Response, None, Some("OP_MSG"), None),
        ]
    );
}

/// A legacy `isMaster` OP_QUERY on `admin.$cmd`, hand-written from the spec.
const OP_QUERY_ISMASTER: &[u8] = &[
    0x3a, 0x00, 0x00, 0x00, // messageLength 58
    0x01, 0x00, 0x00, 0x00, // requestID 1
    0x00, 0x00, 0x00, 0x00, // responseTo 0
    0xd4, 0x07, 0x00, 0x00, // opCode 2004 OP_QUERY
    0x00, 0x00, 0x00, 0x00, // flags 0
    b'a', b'd', b'm', b'i', b'n', b'.', b'$', b'c', b'm', b'd', 0x00, // fullCollectionName
    0x00, 0x00, 0x00, 0x00, // numberToSkip 0
    0xff, 0xff, 0xff, 0xff, // numberToReturn -1
    0x13, 0x00, 0x00, 0x00, // document length 19
    0x10, b'i', b's', b'M', b'a', b's', b't', b'e', b'r', 0x00, // int32 "isMaster"
    0x01, 0x00, 0x00, 0x00, // 1
    0x00, // end of document
];

/// Its OP_REPLY: `{ok: 0, code: 13}`.
const OP_REPLY_ERROR: &[u8] = &[
    0x3f, 0x00, 0x00, 0x00, // messageLength 63
    0x02, 0x00, 0x00, 0x00, // requestID 2
    0x01, 0x00, 0x00, 0x00, // responseTo 1
    0x01, 0x00, 0x00, 0x00, // opCode 1 OP_REPLY
    0x00, 0x00, 0x00, 0x00, // responseFlags 0
    0, 0, 0, 0, 0, 0, 0, 0, // cursorID 0
    0x00, 0x00, 0x00, 0x00, // startingFrom 0
    0x01, 0x00, 0x00, 0x00, // numberReturned 1
    0x1b, 0x00, 0x00, 0x00, // document length 27
    0x01, b'o', b'k', 0x00, 0, 0, 0, 0, 0, 0, 0, 0, // double ok 0.0
    0x10, b'c', b'o', b'd', b'e', 0x00, 0x0d, 0x00, 0x00, 0x00, // int32 code 13
    0x00, // end of document
];

#[test]
fn legacy_op_query_and_op_reply() {
    assert_eq!(
        T.score(OP_QUERY_ISMASTER, Direction::ToServer),
        Confidence::CERTAIN.get()
    );
    assert_eq!(
        T.score(OP_REPLY_ERROR, Direction::ToClient),
        Confidence::CERTAIN.get()
    );
    let Probe::Match(v) = T.probe(OP_REPLY_ERROR, Direction::ToServer) else {
        panic!()
    };
    assert_eq!(v.observed, Some(Direction::ToClient));
    let records = T.parse_split(OP_QUERY_ISMASTER, OP_REPLY_ERROR, 4096);
    assert_eq!(
        summaries(&records),
        [
            s(
                RecordKind::Request,
                "isMaster",
                Some("admin"),
                None,
                &[("op_code", "OP_QUERY"), ("database", "admin")]
            ),
            s(
                RecordKind::Response,
                "isMaster",
                None,
                Some(13),
                &[("op_code", "OP_REPLY"), ("ok", "0"), ("code", "13")]
            ),
        ]
    );
    assert_eq!(records[1].status, Some(13));
}

#[test]
fn op_msg_fields_are_checked() {
    let first = &TO_SERVER_APP[..388];
    let mut b = first.to_vec();
    b[16] = 0x04; // flagBits bit 2: undefined
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = first.to_vec();
    b[20] = 0x02; // section kind 2: not a wire section
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = first.to_vec();
    b[21..25].copy_from_slice(&400i32.to_le_bytes()); // document longer than the message
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = first.to_vec();
    b[25] = 0x42; // element type 0x42: undefined
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = first.to_vec();
    b[12..16].copy_from_slice(&2010i32.to_le_bytes()); // opCode 2010 (OP_COMMAND, removed)
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = first.to_vec();
    b[0..4].copy_from_slice(&48_000_001i32.to_le_bytes()); // beyond maxMessageSizeBytes
    assert_eq!(T.probe(&b[..4], Direction::ToServer), Probe::NoMatch);
}

#[test]
fn nesting_is_bounded() {
    // {a: {a: {a: ... {}}}}: 150 levels, deeper than MAX_BSON_DEPTH.
    let mut doc = vec![5, 0, 0, 0, 0];
    for _ in 0..150 {
        let mut outer = Vec::new();
        let len = i32::try_from(4 + 1 + 2 + doc.len() + 1).expect("small");
        outer.extend_from_slice(&len.to_le_bytes());
        outer.extend_from_slice(&[0x03, b'a', 0]);
        outer.extend_from_slice(&doc);
        outer.push(0);
        doc = outer;
    }
    assert!(!validate_document(&doc, MAX_BSON_DEPTH));
    assert!(validate_document(&doc, 200));
}

#[test]
fn look_alikes_are_rejected() {
    T.assert_no_match(
        Direction::ToServer,
        &[
            // Kafka ApiVersions request (big-endian size 43).
            b"\x00\x00\x00\x2b\x00\x12\x00\x04\x00\x00\x00\x01\x00\x0badi-fixture",
            // TDS PRELOGIN.
            b"\x12\x01\x00\x3a\x00\x00\x01\x00\x00\x00\x1a\x00\x06\x01\x00\x20",
        ],
    );
    // MySQL server greeting: 3-byte length 74, sequence 0, protocol 10.
    let mysql = b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00abcdefgh\x00";
    T.assert_no_match(Direction::ToClient, &[mysql]);
}

#[test]
fn hostile_lengths_never_panic() {
    let mut out = Vec::new();
    assert!(T.parse_fails(
        b"\xff\xff\xff\x7f\0\0\0\0\0\0\0\0\xdd\x07\0\0",
        Direction::ToServer
    ));
    assert!(T.parse_fails(
        b"\x0f\0\0\0\0\0\0\0\0\0\0\0\xdd\x07\0\0",
        Direction::ToServer
    ));
    // A whole 20-byte OP_MSG whose document is missing.
    assert!(MongoSession::default()
        .parse(
            b"\x14\0\0\0\0\0\0\0\0\0\0\0\xdd\x07\0\0\0\0\0\0",
            Direction::ToServer,
            &mut out
        )
        .is_ok());
    // (Fixture prefixes, whole and corrupted: the conformance tests.)
}

proptest! {}
