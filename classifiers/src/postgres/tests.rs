//! postgres tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written messages, on look-alike protocols and on hostile or random bytes.

use adi_classify::testing::{
    engine_from_inventory, feed_engine, flow_key, flow_records, verdicts, view, views, Expect,
    Subject,
};
use adi_classify::{fixtures_path, Confidence, Direction, Probe, RecordKind, Session};
use proptest::prelude::*;

use super::session::{PostgresSession, MAX_QUERY_KEPT};
use super::{Postgres, POSTGRES, PROBE_WINDOW};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Postgres, fixtures_path!("src/postgres/fixtures"));

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "postgres",
    "src/postgres/fixtures",
    Confidence::CERTAIN,
    Expect::NONE.min_fixtures(20).exact_splits()
);

// ---- the session on real captures ----

#[test]
fn session_psql_scram_login_and_query() {
    let (s, c) = T.fixture("psql_scram_query");
    let records = T.parse_all(&s, &c);
    assert_eq!(
        views(&records),
        [
            "Request startup - [protocol=3.0, user=adi, database=adidb, application_name=adi-psql]",
            "Request query SELECT id, name FROM items ORDER BY id LIMIT 3 []",
            "Message terminate - []",
            "Response ready_for_query - [auth=sasl, sasl_mechanism=SCRAM-SHA-256, auth=sasl_continue, \
             auth=sasl_final, auth=ok, server_version=15.18 (Debian 15.18-0+deb12u1), backend_pid=28859, \
             transaction_status=idle]",
            "Response ready_for_query - [command_tag=SELECT 3, transaction_status=idle]",
        ]
    );
    // The SCRAM client messages (`p`) leave no trace: no record carries a password proof.
    assert!(records
        .iter()
        .all(|r| r.attributes.iter().all(|(_, v)| !v.contains("p="))));
    assert_eq!(records[0].wire_len, 0x3b);
    assert_eq!(records[1].wire_len, 1 + 0x33);
}

#[test]
fn session_failed_login_is_the_startup_response() {
    assert_eq!(
        T.views("psql_bad_password"),
        [
            "Request startup - [protocol=3.0, user=adi, database=adidb, application_name=psql]",
            "Response error - [auth=sasl, sasl_mechanism=SCRAM-SHA-256, auth=sasl_continue, severity=FATAL, \
             sqlstate=28P01, message=password authentication failed for user \"adi\"]",
        ]
    );
}

#[test]
fn session_ssl_refused_then_clear_text_login() {
    let (s, c) = T.fixture("psql_ssl_refused");
    let records = T.parse_all(&s, &c);
    assert_eq!(
        views(&records)[..5],
        [
            "Request ssl_request - []",
            "Request startup - [protocol=3.0, user=adi, database=adidb, application_name=psql]",
            "Request query SELECT current_user []",
            "Message terminate - []",
            "Response ssl_refused - []",
        ]
    );
    assert_eq!(records.len(), 7);
}

#[test]
fn session_ssl_accepted_switches_and_stops_reading() {
    let (s, c) = T.fixture("psycopg_ssl_require");
    // In wire order: SSLRequest, then the server's 'S', then TLS from both sides.
    let mut session = PostgresSession::default();
    let mut out = Vec::new();
    assert_eq!(session.parse(&s[..8], Direction::ToServer, &mut out), Ok(8));
    assert_eq!(
        session.parse(&c, Direction::ToClient, &mut out),
        Ok(1),
        "only the 'S'"
    );
    assert_eq!(
        views(&out),
        ["Request ssl_request - []", "Switch ssl_accepted - []"]
    );
    // After the switch everything is opaque (the engine re-classifies it as TLS).
    out.clear();
    assert_eq!(
        session.parse(&s[8..], Direction::ToServer, &mut out),
        Ok(s.len() - 8)
    );
    assert_eq!(
        session.parse(&c[1..], Direction::ToClient, &mut out),
        Ok(c.len() - 1)
    );
    assert!(out.is_empty());
    // The client's TLS bytes arriving before the answer switch too.
    let records = T.parse_all(&s, &c);
    assert_eq!(
        views(&records),
        ["Request ssl_request - []", "Switch tls - []"]
    );
}

#[test]
fn session_extended_protocol_one_request_per_batch() {
    let (s, c) = T.fixture("psycopg_extended");
    let records = T.parse_all(&s, &c);
    let requests: Vec<String> = records
        .iter()
        .filter(|r| r.kind != RecordKind::Response)
        .map(view)
        .collect();
    assert_eq!(
        requests,
        [
            "Request startup - [protocol=3.0, user=adi, database=adidb, application_name=adi-psycopg]",
            "Request query BEGIN []",
            "Request parse SELECT id, name FROM items WHERE id < $1 ORDER BY id []",
            "Request parse SELECT count(*) FROM items WHERE name = $1 [statement=_pg3_0]",
            "Request bind - [statement=_pg3_0]",
            "Request bind - [statement=_pg3_0]",
            "Request query SELECT * FROM missing_table []",
            "Request query COMMIT []",
            "Message terminate - []",
        ]
    );
    let responses: Vec<String> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Response)
        .skip(1)
        .map(view)
        .collect();
    assert_eq!(
        responses,
        [
            "Response ready_for_query - [command_tag=BEGIN, transaction_status=in_transaction]",
            "Response ready_for_query - [command_tag=SELECT 2, transaction_status=in_transaction]",
            "Response ready_for_query - [transaction_status=in_transaction]",
            "Response ready_for_query - [command_tag=SELECT 1, transaction_status=in_transaction]",
            "Response ready_for_query - [command_tag=SELECT 1, transaction_status=in_transaction]",
            "Response ready_for_query - [severity=ERROR, sqlstate=42P01, message=relation \"missing_table\" does \
             not exist, transaction_status=failed_transaction]",
            "Response ready_for_query - [command_tag=ROLLBACK, transaction_status=idle]",
        ]
    );
}

#[test]
fn session_pgbench_prepared_pairs_every_request() {
    let (s, c) = T.fixture("pgbench_prepared");
    let records = T.parse_all(&s, &c);
    let requests = records
        .iter()
        .filter(|r| r.kind == RecordKind::Request)
        .count();
    let responses = records
        .iter()
        .filter(|r| r.kind == RecordKind::Response)
        .count();
    assert_eq!((requests, responses), (7, 7));
    assert_eq!(
        view(&records[1]),
        "Request parse SELECT name FROM items WHERE id = 7; [statement=P_0]"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| view(r) == "Request bind - [statement=P_0]")
            .count(),
        5
    );
}

#[test]
fn session_raw_client_split_writes() {
    assert_eq!(
        T.views("raw_split_writes"),
        [
            "Request startup - [protocol=3.0, user=rawclient, database=adidb, application_name=adi-raw]",
            "Request query SELECT 42 AS answer []",
            "Message terminate - []",
            "Response ready_for_query - [auth=ok, server_version=15.18 (Debian 15.18-0+deb12u1), \
             backend_pid=29207, transaction_status=idle]",
            "Response ready_for_query - [command_tag=SELECT 1, transaction_status=idle]",
        ]
    );
}

// ---- hand-written messages ----

/// SSLRequest: length 8, code 80877103 (0x04d2162f).
const SSL_REQUEST: &[u8] = &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// GSSENCRequest: length 8, code 80877104 (0x04d21630).
const GSSENC_REQUEST: &[u8] = &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
/// CancelRequest: length 16, code 80877102 (0x04d2162e), pid 4242, secret key.
const CANCEL_REQUEST: &[u8] = &[
    0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x10, 0x92, 1, 2, 3, 4,
];
/// StartupMessage: length 30, protocol 3.0, user=bob, database=db, terminating NUL.
const STARTUP: &[u8] = b"\x00\x00\x00\x1e\x00\x03\x00\x00user\x00bob\x00database\x00db\x00\x00";
/// Query 'Q', length 13, "SELECT 1" NUL.
const QUERY: &[u8] = b"Q\x00\x00\x00\x0dSELECT 1\x00";
/// AuthenticationOk: 'R', length 8, code 0.
const AUTH_OK: &[u8] = b"R\x00\x00\x00\x08\x00\x00\x00\x00";
/// ReadyForQuery: 'Z', length 5, idle.
const READY: &[u8] = b"Z\x00\x00\x00\x05I";

#[test]
fn probe_bands() {
    // (score, turned) of a match in the direction given.
    let [certain, strong, weak] =
        [Confidence::CERTAIN, Confidence::STRONG, Confidence::WEAK].map(|b| (b.get(), false));
    let to_server = Direction::ToServer;
    let to_client = Direction::ToClient;
    assert_eq!(T.score_turned(SSL_REQUEST, to_server), certain);
    assert_eq!(T.score_turned(GSSENC_REQUEST, to_server), certain);
    assert_eq!(T.score_turned(CANCEL_REQUEST, to_server), certain);
    assert_eq!(
        T.score_turned(&CANCEL_REQUEST[..10], to_server),
        strong,
        "header checked, key missing"
    );
    assert_eq!(T.score_turned(STARTUP, to_server), certain);
    assert_eq!(
        T.score_turned(&STARTUP[..20], to_server),
        strong,
        "parameters unfinished"
    );
    assert_eq!(T.probe(&STARTUP[..7], to_server), Probe::NeedMore);
    assert_eq!(
        T.score_turned(QUERY, to_server),
        certain,
        "a pooled connection joined mid-way"
    );
    assert_eq!(T.probe(&QUERY[..8], to_server), Probe::NeedMore);
    assert_eq!(T.score_turned(AUTH_OK, to_client), certain);
    assert_eq!(T.score_turned(READY, to_client), certain);
    // 'S' answers the SSLRequest and a TLS record follows.
    assert_eq!(T.score_turned(b"S\x16\x03\x03\x00\x58", to_client), certain);
    assert_eq!(T.probe(b"S", to_client), Probe::NeedMore);
    assert_eq!(T.probe(b"S\x16", to_client), Probe::NeedMore);
    // 'N' refuses it and the server goes on in clear text.
    assert_eq!(
        T.score_turned(&[b"N".as_slice(), AUTH_OK].concat(), to_client),
        certain
    );
    // A query longer than the window: its start is all there is.
    let mut long = b"Q\x00\x00\x10\x00SELECT * FROM t WHERE id IN (".to_vec();
    long.resize(PROBE_WINDOW, b'1');
    assert_eq!(T.score_turned(&long, to_server), weak);
    // Messages of the other direction are recognised, and say so.
    assert_eq!(
        T.score_turned(AUTH_OK, to_server),
        (Confidence::CERTAIN.get(), true)
    );
    assert_eq!(
        T.score_turned(STARTUP, to_client),
        (Confidence::CERTAIN.get(), true)
    );
}

#[test]
fn probe_rejects_broken_messages() {
    let no = |buf: &[u8], dir| assert_eq!(T.probe(buf, dir), Probe::NoMatch, "{buf:?}");
    // StartupMessage with protocol 2.0.
    no(
        b"\x00\x00\x00\x1e\x00\x02\x00\x00user\x00bob\x00database\x00db\x00\x00",
        Direction::ToServer,
    );
    // A length above MAX_STARTUP_LEN (10000) is rejected from its first two bytes.
    no(b"\x00\x01", Direction::ToServer);
    // SSLRequest with the wrong length.
    no(&[0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f], Direction::ToServer);
    // Startup parameters that do not end where the length says.
    no(
        b"\x00\x00\x00\x1f\x00\x03\x00\x00user\x00bob\x00database\x00db\x00\x00\x00",
        Direction::ToServer,
    );
    // A Query whose text is not NUL-terminated at its end.
    no(b"Q\x00\x00\x00\x0dSELECT 1X", Direction::ToServer);
    // ReadyForQuery with an unknown status.
    no(b"Z\x00\x00\x00\x05Q", Direction::ToClient);
    // A typed length below 4.
    no(b"Q\x00\x00\x00\x03", Direction::ToServer);
    // CopyData alone proves nothing.
    no(b"d\x00\x00\x00\x08abcd", Direction::ToServer);
}

#[test]
fn look_alikes_are_rejected() {
    // An HTTP request, the other protocols' messages (OTHER_PROTOCOLS) and every MySQL
    // fixture: no prefix matches, either way.
    let http: &[u8] = b"GET / HTTP/1.1\r\nHost: db:5432\r\n\r\n";
    T.assert_never_claims(&[http], fixtures_path!("src/mysql/fixtures"), PROBE_WINDOW);
}

#[test]
fn session_records_hand_written_messages() {
    let to_server = [CANCEL_REQUEST, GSSENC_REQUEST].concat();
    // 'N' refuses GSS encryption; then a NoticeResponse (severity, SQLSTATE, message).
    let notice = b"N\x00\x00\x00\x21SWARNING\x00C01000\x00Mbe careful\x00\x00";
    let to_client = [b"N".as_slice(), notice].concat();
    // One parse call per direction takes every message.
    let out = T.parse_split_once(&to_server, &to_client, usize::MAX);
    assert_eq!(
        views(&out),
        [
            "Message cancel - [pid=4242]",
            "Request gssenc_request - []",
            "Response gssenc_refused - []",
            "Message notice - [severity=WARNING, sqlstate=01000, message=be careful]",
        ]
    );
}

#[test]
fn long_queries_are_capped_and_big_rows_stepped_over() {
    let mut session = PostgresSession::default();
    let mut out = Vec::new();
    let sql = "SELECT '".to_owned() + &"x".repeat(MAX_QUERY_KEPT * 2) + "'";
    let mut q = b"Q".to_vec();
    q.extend_from_slice(&u32::try_from(sql.len() + 5).expect("small").to_be_bytes());
    q.extend_from_slice(sql.as_bytes());
    q.push(0);
    assert_eq!(
        session.parse(&q, Direction::ToServer, &mut out),
        Ok(q.len())
    );
    assert_eq!(
        out[0].resource.as_ref().map(String::len),
        Some(MAX_QUERY_KEPT)
    );
    assert!(out[0].truncated);
    // A 1 MiB DataRow: consumed as it arrives, a capture gap inside it is stepped over.
    let mut row = b"D".to_vec();
    row.extend_from_slice(&(4u32 + 2 + 4 + (1 << 20)).to_be_bytes());
    row.extend_from_slice(&1u16.to_be_bytes());
    row.extend_from_slice(&(1u32 << 20).to_be_bytes());
    row.extend_from_slice(&[b'r'; 100]);
    out.clear();
    assert_eq!(
        session.parse(&row, Direction::ToClient, &mut out),
        Ok(row.len())
    );
    let missing = (1u64 << 20) - 100 - 10;
    assert_eq!(session.gap(Direction::ToClient, missing, &mut out), Ok(()));
    assert_eq!(
        session.parse(&[0u8; 10], Direction::ToClient, &mut out),
        Ok(10)
    );
    assert_eq!(
        session.parse(READY, Direction::ToClient, &mut out),
        Ok(READY.len())
    );
    assert_eq!(
        views(&out),
        ["Response ready_for_query - [transaction_status=idle]"]
    );
    // A gap outside any message cannot be stepped over.
    assert!(session.gap(Direction::ToClient, 5, &mut out).is_err());
}

#[test]
fn hostile_input_errors_without_panicking() {
    let mut out = Vec::new();
    // Typed length above 1 GiB.
    let e = PostgresSession::default().parse(b"Q\x7f\xff\xff\xff", Direction::ToServer, &mut out);
    assert!(
        matches!(e, Err(adi_classify::ParseError::TooLarge { .. })),
        "{e:?}"
    );
    // Unknown message type.
    assert!(T.parse_fails(b"@\x00\x00\x00\x04", Direction::ToClient));
    // Untyped message with an unknown code.
    assert!(T.parse_fails(&[0, 0, 0, 8, 1, 2, 3, 4], Direction::ToServer));
    // (Every fixture prefix: the conformance tests.)
}

proptest! {
    #[test]
    fn valid_header_then_noise_never_panics(ty in prop::sample::select(b"QPBEDCSHFXpdcfRKZTNAIn123tsvGWV".to_vec()), len in 0u32..64, noise in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut buf = vec![ty];
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&noise);
        for dir in [Direction::ToServer, Direction::ToClient] {
            let _ = T.probe(&buf, dir);
            let _ = PostgresSession::default().parse(&buf, dir, &mut Vec::new());
        }
    }
}

// ---- the real engine ----

#[test]
fn engine_confirms_login_and_switches_on_ssl() {
    let mut engine = engine_from_inventory();
    // A clear-text login: the StartupMessage and the server's answer confirm each other.
    let (s, c) = T.fixture("psql_scram_query");
    let (out, _) = feed_engine(
        &mut engine,
        flow_key(5432),
        &[
            (Direction::ToServer, 1_000, &s[..0x3b]),
            (Direction::ToClient, 2_000, &c),
        ],
    );
    let best = verdicts(&out).last().copied();
    assert_eq!(best, Some((POSTGRES, Confidence::CONFIRMED)), "{out:#?}");
    // SSLRequest then 'S': the session announces the switch, in wire order.
    let (s, c) = T.fixture("psycopg_ssl_require");
    let (out, _) = feed_engine(
        &mut engine,
        flow_key(15432),
        &[
            (Direction::ToServer, 1_000, &s[..8]),
            (Direction::ToClient, 2_000, &c[..1]),
        ],
    );
    let kinds: Vec<_> = flow_records(&out).iter().map(|r| r.record.kind).collect();
    assert_eq!(kinds, [RecordKind::Request, RecordKind::Switch], "{out:#?}");
    assert_eq!(engine.stats().switches, 1);
    assert_eq!(engine.stats().parse_errors, 0);
}
