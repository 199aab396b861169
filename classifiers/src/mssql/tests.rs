//! mssql (TDS) tests: the probe and the session on real python-tds captures (see
//! `fixtures/README.md`), on hand-written packets (attention, TLS inside PRELOGIN, split
//! messages), on look-alikes and on random bytes.

use adi_classify::testing::{summaries, summary as s, Expect, Subject};
use adi_classify::{
    fixtures_path, Classifier, Confidence, Direction, PortHint, Probe, RecordKind, Session,
};
use proptest::prelude::*;

use super::session::TdsSession;
use super::Mssql;

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Mssql, fixtures_path!("src/mssql/fixtures"));

const TO_SERVER_DEFAULT: &[u8] = include_bytes!("fixtures/to_server_mssql_default_0.bin");
const TO_CLIENT_DEFAULT: &[u8] = include_bytes!("fixtures/to_client_mssql_default_0.bin");
const TO_SERVER_RPC: &[u8] = include_bytes!("fixtures/to_server_mssql_nondefault_rpc_0.bin");
const TO_CLIENT_RPC: &[u8] = include_bytes!("fixtures/to_client_mssql_nondefault_rpc_0.bin");

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "mssql",
    "src/mssql/fixtures",
    Confidence::CERTAIN,
    Expect::NONE.reversed(Expect::BOTH_WAYS)
);

#[test]
fn bands_grow_with_the_prefix() {
    // Header only (8 bytes): nothing claimed; nor with the option table read up to its
    // terminator (5 options * 5 bytes + 0xFF).
    let (strong, certain) = (Some(Confidence::STRONG), Some(Confidence::CERTAIN));
    let prelogin = [(8, None), (20, None), (34, strong), (58, certain)];
    T.assert_prefix_bands(TO_SERVER_DEFAULT, Direction::ToServer, &prelogin);
    // The LOGIN7 packet alone: Length and TDSVersion are STRONG, the whole packet CERTAIN.
    let login = &TO_SERVER_DEFAULT[58..58 + 0xdc];
    let whole = (login.len(), certain);
    T.assert_prefix_bands(
        login,
        Direction::ToServer,
        &[(15, None), (16, strong), whole],
    );
}

#[test]
fn session_summarises_login_batches_and_rpc() {
    use RecordKind::{Request, Response};
    let login = [
        ("tds_version", "7.4"),
        ("host", "vmadi_user"),
        ("user", "adi_user"),
        ("app", "adi-fixture"),
        ("server", "127.0.0.1"),
        ("database", "shop"),
    ];
    let login_ack = [
        ("database", "master"),
        ("tds_version", "7.4"),
        ("server_program", "adi-listener"),
    ];
    let (no_tls, one_row) = ([("encryption", "ENCRYPT_NOT_SUP")], [("rows", "1")]);
    let expected = [
        s(Request, "PRELOGIN", None, None, &no_tls),
        s(Request, "LOGIN7", None, None, &login),
        s(Request, "SQL_BATCH", Some("use [shop]"), None, &[]),
        s(Request, "SQL_BATCH", Some("SELECT 1 AS one"), None, &[]),
        s(Request, "RPC", Some("sp_executesql"), None, &[]),
        s(Response, "PRELOGIN", None, None, &no_tls),
        s(Response, "LOGIN7", None, None, &login_ack),
        s(Response, "SQL_BATCH", None, None, &one_row),
        s(Response, "SQL_BATCH", None, None, &one_row),
        s(Response, "RPC", None, None, &one_row),
    ];
    let mut got = summaries(&T.parse_split(TO_SERVER_RPC, TO_CLIENT_RPC, 4096));
    // The host name is the capturing machine's: check it is there, then pin the rest.
    assert_eq!(got[1].4[1].0, "host");
    got[1].4[1].1 = "vmadi_user".into();
    assert_eq!(got, expected);
    for size in [1, 7, 100] {
        let split = T.parse_split(TO_SERVER_DEFAULT, TO_CLIENT_DEFAULT, size);
        assert_eq!(
            summaries(&split),
            summaries(&T.parse_split(TO_SERVER_DEFAULT, TO_CLIENT_DEFAULT, 4096))
        );
    }
}

/// An attention packet (2.2.1.7): header only.
const ATTENTION: &[u8] = &[
    0x06, // type ATTENTION
    0x01, // status EOM
    0x00, 0x08, // length 8
    0x00, 0x00, // SPID
    0x01, // packet id
    0x00, // window
];

/// A PRELOGIN packet carrying a TLS ClientHello's first bytes (TDS 7.x encryption).
const PRELOGIN_TLS: &[u8] = &[
    0x12, 0x01, 0x00, 0x11, 0x00, 0x00, 0x01, 0x00, // PRELOGIN, EOM, length 17
    0x16, 0x03, 0x01, 0x00, 0x04, // TLS handshake record, TLS 1.0 legacy version, 4 bytes
    0x01, 0x00, 0x00, 0x00, // ClientHello, length 0 (cut short for the test)
];

#[test]
fn attention_and_tls_in_prelogin() {
    assert_eq!(
        T.score(ATTENTION, Direction::ToServer),
        Confidence::CERTAIN.get()
    );
    assert_eq!(
        T.score(PRELOGIN_TLS, Direction::ToServer),
        Confidence::CERTAIN.get()
    );
    // TLS in PRELOGIN travels both ways: no direction is proven.
    let Probe::Match(v) = T.probe(PRELOGIN_TLS, Direction::ToClient) else {
        panic!()
    };
    assert_eq!(v.observed, None);
    // After the handshake, raw TLS records are skipped as one TLS message.
    let mut to_server = PRELOGIN_TLS.to_vec();
    to_server.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb]);
    to_server.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0xcc]);
    to_server.extend_from_slice(ATTENTION);
    let records = T.parse_split(&to_server, &[], 3);
    let ops: Vec<_> = records.iter().map(|r| (r.kind, r.op.as_deref())).collect();
    assert_eq!(
        ops,
        [
            (RecordKind::Message, Some("TLS")),
            (RecordKind::Message, Some("TLS")),
            (RecordKind::Request, Some("ATTENTION")),
        ]
    );
}

#[test]
fn a_message_in_two_packets_is_one_record() {
    // SQL batch "SELECT 1" without ALL_HEADERS (TDS 7.1), split after "SELE".
    let mut b = vec![0x01, 0x00, 0x00, 0x10, 0x00, 0x00, 0x01, 0x00]; // no EOM, length 16
    b.extend("SELE".encode_utf16().flat_map(u16::to_le_bytes));
    b.extend_from_slice(&[0x01, 0x01, 0x00, 0x10, 0x00, 0x00, 0x02, 0x00]); // EOM, length 16
    b.extend("CT 1".encode_utf16().flat_map(u16::to_le_bytes));
    let records = T.parse_split(&b, &[], 5);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].resource.as_deref(), Some("SELECT 1"));
    assert_eq!(records[0].wire_len, 32);
}

#[test]
fn header_and_body_fields_are_checked() {
    let prelogin = &TO_SERVER_DEFAULT[..58];
    let mut b = prelogin.to_vec();
    b[0] = 0x05; // type 0x05: undefined
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = prelogin.to_vec();
    b[1] = 0x21; // status bit 0x20: undefined
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = prelogin.to_vec();
    b[2..4].copy_from_slice(&0x8001u16.to_be_bytes()); // length above 32768
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = prelogin.to_vec();
    b[7] = 1; // window must be 0
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = prelogin.to_vec();
    b[8] = 0x01; // first option ENCRYPTION: VERSION must come first
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = prelogin.to_vec();
    b[10..12].copy_from_slice(&0x0100u16.to_be_bytes()); // VERSION offset past the packet
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = prelogin.to_vec();
    b[8 + 0x20] = 0x09; // ENCRYPTION value 9: undefined
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let login = &TO_SERVER_DEFAULT[58..58 + 0xdc];
    let mut b = login.to_vec();
    b[12..16].copy_from_slice(&0x7500_0000u32.to_le_bytes()); // TDSVersion 0x75: unknown
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
    let mut b = login.to_vec();
    b[8 + 38..8 + 40].copy_from_slice(&0x0400u16.to_le_bytes()); // host name past Length
    assert_eq!(T.probe(&b, Direction::ToServer), Probe::NoMatch);
}

#[test]
fn look_alikes_are_rejected() {
    T.assert_no_match(
        Direction::ToServer,
        &[
            // MySQL COM_QUERY packet: length 1 (3 bytes), sequence 0: a 1-byte SQL batch.
            b"\x01\x00\x00\x00\x0e",
            // A TLS ClientHello record.
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",
            // Kafka ApiVersions request and MongoDB OP_MSG.
            b"\x00\x00\x00\x2b\x00\x12\x00\x04\x00\x00",
            b"\x84\x01\x00\x00\xc6\x23\x7b\x32",
            // 0x10 0x01 ... with a plausible header but no LOGIN7 inside.
            b"\x10\x01\x00\x20\x00\x00\x01\x00GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            // 0x12 0x01 ... followed by text.
            b"\x12\x01\x00\x20\x00\x00\x00\x00hello world, not tds at all!",
        ],
    );
}

#[test]
fn hostile_lengths_never_panic() {
    assert!(T.parse_fails(b"\x12\x01\x00\x04\x00\x00\x00\x00", Direction::ToServer));
    // A LOGIN7 whose Length is absurd.
    let mut login = TO_SERVER_DEFAULT[58..58 + 0xdc].to_vec();
    login[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(T.parse_fails(&login, Direction::ToServer));
    // (Fixture prefixes, whole and corrupted: the conformance tests.)
}

proptest! {
    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), t in prop::sample::select(vec![1u8, 3, 4, 6, 7, 8, 14, 16, 17, 18])) {
        let len = u16::try_from(body.len() + 8).expect("small");
        let mut b = vec![t, 1];
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&[0, 0, 1, 0]);
        b.extend_from_slice(&body);
        let _ = Mssql.probe(&b, Direction::ToServer, PortHint::NONE);
        let _ = TdsSession::default().parse(&b, Direction::ToServer, &mut Vec::new());
        let _ = TdsSession::default().parse(&b, Direction::ToClient, &mut Vec::new());
    }
}

#[test]
fn a_bad_login7_after_other_packets_fails_at_its_own_call() {
    // PRELOGIN, then a LOGIN7 whose host name lies past its Length, in two packets: the
    // call reports the PRELOGIN, the next one (at the LOGIN7's last packet) the error.
    let mut login = TO_SERVER_DEFAULT[58..58 + 0xdc].to_vec();
    login[8 + 38..8 + 40].copy_from_slice(&0x0400u16.to_le_bytes());
    let (first, second) = login[8..].split_at(100);
    let packet = |status: u8, id: u8, part: &[u8]| {
        let len = u16::try_from(part.len() + 8).expect("small");
        [
            &[0x10, status],
            &len.to_be_bytes()[..],
            &[0, 0, id, 0],
            part,
        ]
        .concat()
    };
    let wire = [&TO_SERVER_DEFAULT[..58], &packet(0, 1, first)].concat();
    let last = packet(1, 2, second);
    let all = [wire.as_slice(), &last].concat();
    let mut session = TdsSession::default();
    let mut out = Vec::new();
    let dir = Direction::ToServer;
    assert_eq!(session.parse(&all, dir, &mut out), Ok(wire.len()));
    assert_eq!(out.len(), 1);
    assert!(session.parse(&last, dir, &mut out).is_err());
    assert_eq!(out.len(), 1);
}
