//! mysql tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written messages, on look-alike protocols and on hostile or random bytes.

use adi_classify::testing::{flow_records, run_engine, verdicts, view, views, Expect, Subject};
use adi_classify::{fixtures_path, Confidence, Direction, Probe, RecordKind, Session};
use proptest::prelude::*;

use super::parser::{parse_greeting, parse_handshake_response};
use super::session::{MysqlSession, MAX_QUERY_KEPT};
use super::{Mysql, MYSQL, PROBE_WINDOW};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Mysql, fixtures_path!("src/mysql/fixtures"));

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "mysql",
    "src/mysql/fixtures",
    Confidence::CERTAIN,
    Expect::NONE.min_fixtures(16).exact_splits()
);

// ---- the session on real captures ----

const GREETING: &str =
    "Message greeting - [server_version=5.5.5-10.11.19-MariaDB-0+deb12u1, connection_id=";
const LOGIN: &str = "Request login - [user=adi, schema=adidb, auth_plugin=mysql_native_password]";

#[test]
fn session_pymysql_login_queries_and_error() {
    let (s, c) = T.fixture("pymysql_query");
    let records = T.parse_all(&s, &c);
    let v = views(&records);
    assert_eq!(
        v[..8],
        [
            LOGIN,
            "Request query SET NAMES utf8mb4 []",
            "Request query SET AUTOCOMMIT = 0 []",
            "Request query SELECT id, name FROM items WHERE id < 3 ORDER BY id []",
            "Request query INSERT INTO log (msg) VALUES ('hello from pymysql') []",
            "Request query COMMIT []",
            "Request query SELECT * FROM missing_table []",
            "Message quit - []",
        ]
    );
    assert!(
        v[8].starts_with(GREETING) && v[8].ends_with(", auth_plugin=mysql_native_password]"),
        "{}",
        v[8]
    );
    assert_eq!(
        v[9..],
        [
            "Response ok - []",
            "Response ok - [affected_rows=0, last_insert_id=0, warnings=0]",
            "Response ok - [affected_rows=0, last_insert_id=0, warnings=0]",
            "Response result_set - [columns=2]",
            "Response ok - [affected_rows=1, last_insert_id=1, warnings=0]",
            "Response ok - [affected_rows=0, last_insert_id=0, warnings=0]",
            "Response error - 1146 [sqlstate=42S02, message=Table 'adidb.missing_table' doesn't exist]",
        ]
    );
}

/// The views of fixture `name`'s connection after the server greeting (its connection id and
/// salt differ per connection).
fn after_greeting(name: &str) -> Vec<String> {
    let mut v = T.views(name);
    v.retain(|l| !l.starts_with("Message greeting"));
    v
}

#[test]
fn session_bad_password_is_the_login_response() {
    let v = T.views("pymysql_bad_password");
    assert_eq!(v.len(), 3, "{v:#?}");
    assert_eq!(v[0], LOGIN);
    assert_eq!(
        v[2],
        "Response error - 1045 [sqlstate=28000, message=Access denied for user 'adi'@'127.0.0.1' (using password: YES)]"
    );
}

#[test]
fn session_mariadb_cli_result_sets_and_error() {
    assert_eq!(
        after_greeting("mariadb_cli"),
        [
            LOGIN,
            "Request query SELECT id, name FROM items ORDER BY id []",
            "Request query SHOW TABLES []",
            "Request query SELECT nope FROM items []",
            "Message quit - []",
            "Response ok - []",
            "Response result_set - [columns=2]",
            "Response result_set - [columns=1]",
            "Response error - 1054 [sqlstate=42S22, message=Unknown column 'nope' in 'SELECT']",
        ]
    );
}

#[test]
fn session_binary_protocol() {
    assert_eq!(
        after_greeting("raw_binary_protocol"),
        [
            LOGIN,
            "Request stmt_prepare SELECT name FROM items WHERE id = ? []",
            "Request stmt_execute - [statement_id=1]",
            "Message stmt_close - [statement_id=1]",
            "Request ping - []",
            "Request init_db adidb []",
            "Message quit - []",
            "Response ok - []",
            "Response prepare_ok - [statement_id=1, columns=1, params=1]",
            "Response result_set - [columns=1]",
            "Response ok - [affected_rows=0, last_insert_id=0, warnings=0]",
            "Response ok - [affected_rows=0, last_insert_id=0, warnings=0]",
        ]
    );
}

#[test]
fn session_ssl_request_switches() {
    let (s, c) = T.fixture("mariadb_cli_ssl");
    let mut session = MysqlSession::default();
    let mut out = Vec::new();
    // Wire order: greeting, SSLRequest (36 bytes), then TLS.
    let greeting_len = 4 + usize::from(c[0]);
    assert_eq!(
        session.parse(&c[..greeting_len], Direction::ToClient, &mut out),
        Ok(greeting_len)
    );
    assert_eq!(
        session.parse(&s, Direction::ToServer, &mut out),
        Ok(36),
        "stops after the SSLRequest"
    );
    assert_eq!(out[1].kind, RecordKind::Switch);
    assert_eq!(view(&out[1]), "Switch ssl_request - []");
    out.clear();
    assert_eq!(
        session.parse(&s[36..], Direction::ToServer, &mut out),
        Ok(s.len() - 36)
    );
    assert_eq!(
        session.parse(&c[greeting_len..], Direction::ToClient, &mut out),
        Ok(c.len() - greeting_len)
    );
    assert!(out.is_empty());
}

#[test]
fn parsed_greeting_and_handshake_fields() {
    let (s, c) = T.fixture("pymysql_query");
    let g = parse_greeting(&c[4..4 + usize::from(c[0])]).expect("greeting");
    assert_eq!(g.server_version, b"5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert_eq!(g.auth_plugin, Some(b"mysql_native_password".as_slice()));
    let hr = parse_handshake_response(&s[4..4 + usize::from(s[0])]).expect("handshake response");
    assert_eq!(
        (hr.user, hr.schema),
        (b"adi".as_slice(), Some(b"adidb".as_slice()))
    );
    // The mariadb CLI sets MariaDB's extended capabilities in the last filler bytes.
    let (s, _) = T.fixture("mariadb_cli");
    let hr = parse_handshake_response(&s[4..4 + usize::from(s[0])]).expect("handshake response");
    assert_ne!(hr.mariadb_capabilities, 0);
}

// ---- hand-written packets ----

/// COM_QUERY: length 9, sequence 0, 0x03, "SELECT 1".
const QUERY: &[u8] = b"\x09\x00\x00\x00\x03SELECT 1";
/// COM_PING: length 1, sequence 0, 0x0e.
const PING: &[u8] = b"\x01\x00\x00\x00\x0e";
/// OK: length 7, sequence 1, 0x00, affected 0, insert id 0, status 0x0002 (autocommit), 0 warnings.
const OK: &[u8] = b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00";
/// ERR: length 23, sequence 1, 0xff, code 1064, '#', SQLSTATE 42000, message.
const ERR: &[u8] = b"\x17\x00\x00\x01\xff\x28\x04#42000syntax error x";
/// ERR instead of a greeting: sequence 0, code 1130, no SQLSTATE.
const ERR_GREETING: &[u8] = b"\x0f\x00\x00\x00\xff\x6a\x04Host blocked";
/// Result-set header (1 column, sequence 1) and the start of its definition (sequence 2, "def").
const RESULT_SET: &[u8] = b"\x01\x00\x00\x01\x01\x1a\x00\x00\x02\x03def";

#[test]
fn probe_bands() {
    // (score, turned) of a match in the direction given.
    let [certain, strong, weak] =
        [Confidence::CERTAIN, Confidence::STRONG, Confidence::WEAK].map(|b| (b.get(), false));
    let (s, c) = T.fixture("pymysql_query");
    assert_eq!(
        T.score_turned(&c[..4 + usize::from(c[0])], Direction::ToClient),
        certain,
        "whole greeting"
    );
    assert_eq!(
        T.score_turned(&c[..45], Direction::ToClient),
        strong,
        "version string complete"
    );
    assert_eq!(T.probe(&c[..10], Direction::ToClient), Probe::NeedMore);
    assert_eq!(
        T.score_turned(&s[..4 + usize::from(s[0])], Direction::ToServer),
        certain,
        "whole handshake response"
    );
    assert_eq!(
        T.score_turned(&s[..40], Direction::ToServer),
        strong,
        "fixed part"
    );
    let (s, _) = T.fixture("mariadb_cli_ssl");
    assert_eq!(
        T.score_turned(&s[..36], Direction::ToServer),
        certain,
        "SSLRequest"
    );
    assert_eq!(
        T.score_turned(QUERY, Direction::ToServer),
        certain,
        "a pooled connection joined mid-way"
    );
    assert_eq!(T.score_turned(PING, Direction::ToServer), weak);
    assert_eq!(T.score_turned(OK, Direction::ToClient), strong);
    assert_eq!(T.score_turned(ERR, Direction::ToClient), certain);
    assert_eq!(T.score_turned(ERR_GREETING, Direction::ToClient), certain);
    assert_eq!(T.score_turned(RESULT_SET, Direction::ToClient), certain);
    assert_eq!(
        T.probe(&RESULT_SET[..8], Direction::ToClient),
        Probe::NeedMore
    );
    // A query longer than the window: its start is all there is.
    let mut long = b"\x00\x10\x00\x00\x03SELECT * FROM t WHERE id IN (".to_vec();
    long.resize(PROBE_WINDOW, b'1');
    assert_eq!(T.score_turned(&long, Direction::ToServer), weak);
    // Packets of the other direction are recognised, and say so.
    assert_eq!(
        T.score_turned(&c[..4 + usize::from(c[0])], Direction::ToServer),
        (Confidence::CERTAIN.get(), true)
    );
    assert_eq!(
        T.score_turned(QUERY, Direction::ToClient),
        (Confidence::CERTAIN.get(), true)
    );
}

#[test]
fn probe_rejects_broken_packets() {
    let no = |buf: &[u8], dir| assert_eq!(T.probe(buf, dir), Probe::NoMatch, "{buf:?}");
    // Payload length 0.
    no(b"\x00\x00\x00\x00", Direction::ToServer);
    // A greeting with protocol version 9.
    no(b"\x50\x00\x00\x00\x09", Direction::ToClient);
    // A greeting whose version does not start with a digit.
    no(b"\x50\x00\x00\x00\x0aMariaDB", Direction::ToClient);
    // A handshake response without CLIENT_PROTOCOL_41.
    no(b"\x40\x00\x00\x01\x05\x00\x00\x00", Direction::ToServer);
    // A command with sequence id 3.
    no(b"\x09\x00\x00\x03\x03SELECT 1", Direction::ToServer);
    // An unknown command.
    no(b"\x05\x00\x00\x00\x99abcd", Direction::ToServer);
    // COM_QUERY whose text has control bytes.
    no(b"\x05\x00\x00\x00\x03\x01\x02\x03\x04", Direction::ToServer);
    // ERR after the handshake without '#'.
    no(
        b"\x17\x00\x00\x01\xff\x28\x04x42000syntax error x",
        Direction::ToClient,
    );
}

#[test]
fn look_alikes_are_rejected() {
    // An HTTP request, the other protocols' messages (OTHER_PROTOCOLS) and every Postgres
    // fixture: no prefix matches, either way.
    let http: &[u8] = b"GET / HTTP/1.1\r\nHost: db:3306\r\n\r\n";
    T.assert_never_claims(
        &[http],
        fixtures_path!("src/postgres/fixtures"),
        PROBE_WINDOW,
    );
}

#[test]
fn session_mid_connection_and_hand_written_replies() {
    // One parse call per direction takes every message.
    let out = T.parse_split_once(&[QUERY, PING].concat(), &[ERR, OK].concat(), usize::MAX);
    assert_eq!(
        views(&out),
        [
            "Request query SELECT 1 []",
            "Request ping - []",
            "Response error - 1064 [sqlstate=42000, message=syntax error x]",
            "Response ok - [affected_rows=0, last_insert_id=0, warnings=0]",
        ]
    );
    // An ERR instead of a greeting.
    let out = T.parse_split_once(&[], ERR_GREETING, usize::MAX);
    assert_eq!(views(&out), ["Message error - 1130 [message=Host blocked]"]);
}

#[test]
fn multi_results_and_big_rows() {
    let mut session = MysqlSession::default();
    let mut out = Vec::new();
    assert_eq!(
        session.parse(QUERY, Direction::ToServer, &mut out),
        Ok(QUERY.len())
    );
    // Result set: 1 column, its definition, EOF, a 1 MiB row (gap inside), EOF with
    // SERVER_MORE_RESULTS_EXISTS, then an OK for the second statement.
    let column = b"\x17\x00\x00\x02\x03def\x00\x00\x00\x01x\x00\x0c\x3f\x00\x01\x00\x00\x00\xfd\x00\x00\x00\x00\x00";
    let eof = b"\x05\x00\x00\x03\xfe\x00\x00\x02\x00";
    let mut row = vec![0x00, 0x00, 0x10, 4, 0xfd, 0xfc, 0xff, 0x0f];
    row.extend_from_slice(&[b'r'; 100]);
    let more = b"\x05\x00\x00\x05\xfe\x00\x00\x0a\x00";
    let ok = b"\x07\x00\x00\x06\x00\x01\x00\x02\x00\x00\x00";
    let head = [&b"\x01\x00\x00\x01\x01"[..], column, eof, &row].concat();
    assert_eq!(
        session.parse(&head, Direction::ToClient, &mut out),
        Ok(head.len())
    );
    let missing = (1u64 << 20) - 104;
    assert_eq!(session.gap(Direction::ToClient, missing, &mut out), Ok(()));
    let tail = [&more[..], ok].concat();
    assert_eq!(
        session.parse(&tail, Direction::ToClient, &mut out),
        Ok(tail.len())
    );
    assert_eq!(
        views(&out),
        [
            "Request query SELECT 1 []",
            "Response result_set - [columns=1]"
        ]
    );
    // The next command's answer is its own response.
    out.clear();
    assert_eq!(
        session.parse(PING, Direction::ToServer, &mut out),
        Ok(PING.len())
    );
    assert_eq!(
        session.parse(OK, Direction::ToClient, &mut out),
        Ok(OK.len())
    );
    assert_eq!(
        views(&out)[1],
        "Response ok - [affected_rows=0, last_insert_id=0, warnings=0]"
    );
    // A long query is capped.
    out.clear();
    let sql = "SELECT '".to_owned() + &"x".repeat(MAX_QUERY_KEPT * 2) + "'";
    let mut q = u32::try_from(sql.len() + 1).expect("small").to_le_bytes()[..3].to_vec();
    q.push(0);
    q.push(3);
    q.extend_from_slice(sql.as_bytes());
    assert_eq!(
        session.parse(&q, Direction::ToServer, &mut out),
        Ok(q.len())
    );
    assert_eq!(
        out[0].resource.as_ref().map(String::len),
        Some(MAX_QUERY_KEPT)
    );
    assert!(out[0].truncated);
}

#[test]
fn hostile_input_never_panics() {
    // (Every fixture prefix: the conformance tests.)
    let mut out = Vec::new();
    // Maximum-length packets announce continuations; lenenc counts of 2^64 - 1.
    let mut session = MysqlSession::default();
    let _ = session.parse(b"\xff\xff\xff\x00\x03SELECT", Direction::ToServer, &mut out);
    let _ = session.parse(
        b"\x09\x00\x00\x01\xfe\xff\xff\xff\xff\xff\xff\xff\xff",
        Direction::ToClient,
        &mut out,
    );
}

proptest! {
    #[test]
    fn valid_header_then_noise_never_panics(len in 0u32..64, seq in 0u8..4, noise in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut buf = len.to_le_bytes()[..3].to_vec();
        buf.push(seq);
        buf.extend_from_slice(&noise);
        for dir in [Direction::ToServer, Direction::ToClient] {
            let _ = T.probe(&buf, dir);
            let mut session = MysqlSession::default();
            let mut out = Vec::new();
            let _ = session.parse(&buf, dir, &mut out);
            let _ = session.parse(&buf, dir.reverse(), &mut out);
        }
    }
}

// ---- the real engine ----

#[test]
fn engine_confirms_greeting_and_login() {
    let (s, c) = T.fixture("pymysql_query");
    // The server speaks first.
    let (engine, out) = run_engine(
        3306,
        &[
            (Direction::ToClient, 1_000, &c[..4 + usize::from(c[0])]),
            (Direction::ToServer, 2_000, &s[..4 + usize::from(s[0])]),
        ],
    );
    let last = verdicts(&out).last().copied();
    assert_eq!(last, Some((MYSQL, Confidence::CONFIRMED)), "{out:#?}");
    let kinds: Vec<_> = flow_records(&out).iter().map(|r| r.record.kind).collect();
    assert_eq!(kinds, [RecordKind::Message, RecordKind::Request]);
    assert_eq!(engine.stats().parse_errors, 0);
}
