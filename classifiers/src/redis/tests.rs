//! redis tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written edge cases, on look-alikes (NATS, memcached, HTTP), on hostile input and
//! through the real engine (port tie-breaks).

use adi_classify::testing::{self, classify_connection, load_connections, Expect, Subject};
use adi_classify::{
    fixtures_path, Classifier, Confidence, Direction, ParseError, PortHint, Probe, ProtocolId,
    Record, RecordKind, Registry, Session,
};
use proptest::prelude::*;

use super::session::RedisSession;
use super::{Redis, AMBIGUOUS, ID};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Redis, fixtures_path!("src/redis/fixtures"));

/// (confidence, observed direction) of a match.
type Band = (Confidence, Option<Direction>);

/// (confidence, observed) of a match, `None` for NeedMore/NoMatch.
fn verdict(buf: &[u8], dir: Direction, ports: PortHint) -> Option<Band> {
    testing::verdict(&Redis, buf, dir, ports).map(|v| (v.confidence, v.observed))
}

fn to_server(buf: &[u8]) -> Probe {
    Redis.probe(buf, Direction::ToServer, PortHint::NONE)
}

/// (kind, op, resource) of each record.
fn summary(records: &[Record]) -> Vec<(RecordKind, Option<&str>, Option<&str>)> {
    records
        .iter()
        .map(|r| (r.kind, r.op.as_deref(), r.resource.as_deref()))
        .collect()
}

// ---- real captures ----

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "redis",
    "src/redis/fixtures",
    Confidence::WEAK,
    Expect::NONE.paired().exact_splits()
);

#[test]
fn fixtures_match_at_their_band() {
    use Direction::{ToClient, ToServer};
    T.assert_bands(&[
        // Command arrays with known commands, whole: CERTAIN.
        (ToServer, "cli_resp2_0", Confidence::CERTAIN),
        (ToServer, "benchmark_1", Confidence::CERTAIN),
        (ToServer, "redis_py_resp3", Confidence::CERTAIN),
        (ToServer, "split", Confidence::CERTAIN),
        // Inline commands: WEAK (NATS sends `PING` too).
        (ToServer, "inline_ping", Confidence::WEAK),
        (ToServer, "inline_set", Confidence::WEAK),
        (ToServer, "decoy_5432_inline", Confidence::WEAK),
        // `+OK` / `+PONG` alone: WEAK; `:1`: STRONG; bulk strings and maps: CERTAIN.
        (ToClient, "cli_resp2_0", Confidence::WEAK),
        (ToClient, "inline_ping", Confidence::WEAK),
        (ToClient, "default_cli_2", Confidence::STRONG),
        (ToClient, "cli_resp2_2", Confidence::CERTAIN),
        (ToClient, "cli_resp3_0", Confidence::CERTAIN),
        (ToClient, "resp3_types", Confidence::CERTAIN),
        (ToClient, "pubsub_0", Confidence::CERTAIN),
        (ToClient, "decoy_5432_cli_2", Confidence::CERTAIN),
    ]);
}

#[test]
fn session_summaries_resp2_and_inline() {
    use RecordKind::{Request, Response};
    let r = T.connection("cli_resp2_1");
    assert_eq!(
        summary(&r),
        [
            (Request, Some("INCR"), Some("greeting")),
            (Response, Some("ERR"), None)
        ]
    );
    assert_eq!(r[0].attributes, [("words".to_owned(), "2".to_owned())]);
    assert_eq!(r[0].wire_len, 28);
    assert_eq!(
        r[1].attributes,
        [
            ("type".to_owned(), "error".to_owned()),
            (
                "error".to_owned(),
                "ERR value is not an integer or out of range".to_owned()
            ),
        ]
    );
    let r = T.connection("cli_resp2_2");
    assert_eq!(
        summary(&r),
        [
            (Request, Some("MGET"), Some("greeting")),
            (Response, None, None)
        ]
    );
    assert_eq!(r[1].attribute("type"), Some("array"));
    // Inline commands: quoted words, the key as resource.
    let r = T.connection("inline_set");
    assert_eq!(
        summary(&r),
        [
            (Request, Some("SET"), Some("inline")),
            (Request, Some("GET"), Some("inline")),
            (Response, None, None),
            (Response, None, None),
        ]
    );
    assert_eq!(r[0].attribute("words"), Some("3"));
    assert_eq!(r[0].attribute("inline"), Some("true"));
    assert_eq!(r[3].attribute("type"), Some("bulk_string"));
    // Containers: the subcommand joins the name, no key.
    let r = T.connection("cli_resp3_2");
    assert_eq!(summary(&r)[1], (Request, Some("CONFIG GET"), None));
    // The `MULTI` / `EXEC` pipeline of redis-py.
    let ops: Vec<_> = T
        .connection("redis_py_resp2")
        .iter()
        .filter_map(|r| r.op.clone())
        .collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    assert_eq!(
        ops,
        [
            "CLIENT SETINFO",
            "CLIENT SETINFO",
            "SET",
            "GET",
            "HSET",
            "HGETALL",
            "MULTI",
            "INCRBY",
            "LPUSH",
            "LRANGE",
            "EXEC",
            "ZADD",
            "ZSCORE",
            "DEL",
            "ERR",
            "ERR",
        ]
    );
}

#[test]
fn session_summaries_resp3() {
    use RecordKind::{Message, Request, Response};
    // HELLO 3: the map's server and version.
    let r = T.connection("cli_resp3_0");
    assert_eq!(r[0].attribute("protocol"), Some("3"));
    assert_eq!(
        r[0].raw, b"",
        "HELLO may carry AUTH: raw bytes are not kept"
    );
    let hello = r.iter().find(|r| r.kind == Response).expect("HELLO reply");
    assert_eq!(hello.attribute("type"), Some("map"));
    assert_eq!(hello.attribute("server"), Some("redis"));
    assert_eq!(hello.attribute("version"), Some("7.0.15"));
    // Every RESP3 type; the attribute belongs to the reply it precedes, the push is a message.
    let r = T.connection("resp3_types");
    let replies: Vec<(RecordKind, &str)> = r
        .iter()
        .filter(|r| r.kind != Request)
        .map(|r| (r.kind, r.attribute("type").expect("type")))
        .collect();
    assert_eq!(
        replies,
        [
            (Response, "map"),
            (Response, "bulk_string"), // |1 key-popularity ... then the real reply
            (Response, "big_number"),
            (Response, "boolean"),
            (Response, "boolean"),
            (Response, "verbatim_string"),
            (Response, "double"),
            (Response, "null"),
            (Message, "push"),
            (Response, "bulk_string"),
            (Response, "map"),
            (Response, "set"),
            (Response, "array"),
            (Response, "error"),
        ]
    );
    // Pub/sub: SUBSCRIBE / UNSUBSCRIBE and their pushes are unpaired messages.
    let r = T.connection("pubsub_0");
    assert_eq!(
        summary(&r),
        [
            (Request, Some("HELLO"), None),
            (Message, Some("SUBSCRIBE"), Some("news")),
            (Message, Some("UNSUBSCRIBE"), Some("news")),
            (Response, None, None),
            (Message, None, None),
            (Message, None, None),
            (Message, None, None),
        ]
    );
    assert_eq!(
        summary(&T.connection("pubsub_1")),
        [
            (Request, Some("PUBLISH"), Some("news")),
            (Response, None, None)
        ]
    );
}

#[test]
fn resp2_pubsub_messages_are_messages() {
    use RecordKind::{Message, Request, Response};
    let to_server = b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n*1\r\n$4\r\nPING\r\n";
    let to_client = concat!(
        "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n", // confirmation
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n", // a message
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n",             // PING's reply in subscribed mode
    );
    let kinds: Vec<_> = T
        .parse_split_once(to_server, to_client.as_bytes(), usize::MAX)
        .iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, [Message, Request, Message, Message, Response]);
}

#[test]
fn nested_attribute_is_not_an_element() {
    // *2 [ |1 {ttl: 3600} "a" , :1 ]: the attribute describes "a" and is no element itself.
    let to_client = b"*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\na\r\n:1\r\n+OK\r\n";
    let mut out = Vec::new();
    let n = RedisSession::default()
        .parse(to_client, Direction::ToClient, &mut out)
        .expect("parse");
    assert_eq!(n, to_client.len());
    let types: Vec<_> = out.iter().map(|r| r.attribute("type")).collect();
    assert_eq!(types, [Some("array"), Some("simple_string")]);
    assert_eq!(
        verdict(to_client, Direction::ToClient, PortHint::NONE),
        Some((Confidence::CERTAIN, None))
    );
}

// ---- look-alikes ----

#[test]
fn nats_is_told_apart() {
    // A bare PING is WEAK at most: the port decides between Redis and NATS.
    assert_eq!(
        verdict(b"PING\r\n", Direction::ToServer, PortHint::NONE),
        Some((Confidence::WEAK, None))
    );
    // The NATS handshake carries JSON and CONNECT is no Redis command.
    T.assert_prefixes_below(
        Confidence::REPORT,
        &[
            b"INFO {\"server_id\":\"NABC\",\"version\":\"2.10.0\"}\r\n",
            b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n",
            b"PUB foo 5\r\nhello\r\n",
            b"SUB foo 1\r\n",
        ],
    );
    // NATS quotes its errors; `+OK` alone is only WEAK.
    assert_eq!(
        to_server(b"-ERR 'Unknown Protocol Operation'\r\n"),
        Probe::NoMatch
    );
    assert_eq!(
        verdict(b"+OK\r\n", Direction::ToClient, PortHint::NONE),
        Some((Confidence::WEAK, None))
    );
}

#[test]
fn memcached_is_told_apart() {
    // Lower-case inline commands are memcached's too: below REPORT off Redis ports...
    assert_eq!(
        verdict(b"get k\r\n", Direction::ToServer, PortHint::NONE),
        Some((AMBIGUOUS, None))
    );
    T.assert_prefixes_below(Confidence::REPORT, &[b"set k 0 0 5\r\nhello\r\n"]);
    // ...and WEAK on them.
    assert_eq!(
        verdict(b"get k\r\n", Direction::ToServer, PortHint::server(6379)),
        Some((Confidence::WEAK, None))
    );
    // memcached's own shapes fail Redis arities or are no Redis command.
    for buf in [
        &b"incr counter 5\r\n"[..],
        b"delete k noreply\r\n",
        b"gets k\r\n",
        b"mg k v\r\n",
        b"stats\r\n",
    ] {
        assert_eq!(to_server(buf), Probe::NoMatch, "{buf:?}");
    }
    // Replies: `EXISTS` alone is no EXISTS command (it needs a key).
    for buf in [
        &b"VALUE k 0 5\r\nhello\r\nEND\r\n"[..],
        b"STORED\r\n",
        b"EXISTS\r\n",
        b"HD\r\n",
        b"END\r\n",
    ] {
        assert_eq!(
            Redis.probe(buf, Direction::ToClient, PortHint::NONE),
            Probe::NoMatch,
            "{buf:?}"
        );
    }
    // Binary protocol.
    T.assert_prefixes_below(
        Confidence::REPORT,
        &[&[
            0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, b'k',
        ]],
    );
    // (memcached's fixtures: its conformance test `conformance_no_confusion`.)
}

#[test]
fn http_is_not_redis() {
    T.assert_prefixes_below(
        Confidence::REPORT,
        &[
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"GET /index.html?q=1 HTTP/1.1\r\n",
            b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ],
    );
    assert_eq!(to_server(b"GET / HTTP/1.1\r\n"), Probe::NoMatch);
}

// ---- hand-written edge cases ----

#[test]
fn edge_cases() {
    let cases: &[(&[u8], Direction, Option<Band>)] = &[
        // *2 words, $3 "get" (lower case is fine in arrays), $1 key: whole, known.
        (
            b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n",
            Direction::ToServer,
            Some((Confidence::CERTAIN, None)),
        ),
        // The same with the key's body still arriving: STRONG.
        (
            b"*2\r\n$3\r\nGET\r\n$5\r\nab",
            Direction::ToServer,
            Some((Confidence::STRONG, None)),
        ),
        // A module command (unknown name) in a well-formed array: one band lower.
        (
            b"*3\r\n$9\r\nFT.SEARCH\r\n$3\r\nidx\r\n$1\r\n*\r\n",
            Direction::ToServer,
            Some((Confidence::STRONG, None)),
        ),
        // GET with two keys breaks GET's arity (2): treated like an unknown command.
        (
            b"*3\r\n$3\r\nGET\r\n$1\r\na\r\n$1\r\nb\r\n",
            Direction::ToServer,
            Some((Confidence::STRONG, None)),
        ),
        // A bulk reply seen "to the server": the bytes prove the other direction.
        (
            b"$5\r\nhello\r\n",
            Direction::ToServer,
            Some((Confidence::CERTAIN, Some(Direction::ToClient))),
        ),
        // An inline command seen "to the client".
        (
            b"PING\r\n",
            Direction::ToClient,
            Some((Confidence::WEAK, Some(Direction::ToServer))),
        ),
        // RESP2 nulls: `$-1` bulk, `*-1` array, typed evidence.
        (
            b"$-1\r\n",
            Direction::ToClient,
            Some((Confidence::STRONG, None)),
        ),
        (
            b"*-1\r\n",
            Direction::ToClient,
            Some((Confidence::STRONG, None)),
        ),
        // RESP3 double with exponent, boolean, big number.
        (
            b",1.5e-3\r\n",
            Direction::ToClient,
            Some((Confidence::STRONG, None)),
        ),
        (
            b"#t\r\n",
            Direction::ToClient,
            Some((Confidence::STRONG, None)),
        ),
        (
            b"(-12345678901234567890123\r\n",
            Direction::ToClient,
            Some((Confidence::STRONG, None)),
        ),
        // Verbatim string: `=` len, 3-byte format, `:`, text.
        (
            b"=8\r\ntxt:abcd\r\n",
            Direction::ToClient,
            Some((Confidence::CERTAIN, None)),
        ),
        // An empty array header waiting for its elements: not evidence yet.
        (b"*2\r\n", Direction::ToClient, None),
        // A bulk header whose body is on its way: STRONG.
        (
            b"$10\r\nabc",
            Direction::ToClient,
            Some((Confidence::STRONG, None)),
        ),
        // A bare PING prefix before the line ends: undecided.
        (b"PIN", Direction::ToServer, None),
    ];
    for (buf, dir, want) in cases {
        assert_eq!(
            verdict(buf, *dir, PortHint::NONE),
            *want,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
    assert_eq!(to_server(b"PIN"), Probe::NeedMore);
    assert_eq!(to_server(b"*"), Probe::NeedMore);
}

#[test]
fn auth_password_is_never_kept() {
    // AUTH user secret / HELLO 3 AUTH user secret: no resource, no raw bytes.
    let r = T.parse_split_once(
        b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$6\r\nsecret\r\n*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$6\r\nsecret\r\n",
        b"+OK\r\n%0\r\n",
        usize::MAX,
    );
    for rec in r.iter().filter(|r| r.kind == RecordKind::Request) {
        assert_eq!(rec.resource, None);
        assert!(rec.raw.is_empty());
        assert!(!format!("{:?}", rec.attributes).contains("secret"));
    }
}

// ---- hostile input ----

#[test]
fn hostile_lengths_are_refused() {
    for buf in [
        &b"*99999999999999999999999\r\n"[..], // more digits than any i64
        b"*2147483648\r\n",                   // above INT_MAX elements
        b"$536870913\r\n",                    // above proto-max-bulk-len (512 MiB)
        b"$-2\r\n",                           // only -1 is null
        b"#x\r\n",                            // booleans are t or f
        b"=3\r\nabc\r\n",                     // verbatim shorter than its format
        b"+OK\x01\r\n",                       // control bytes in a simple string
    ] {
        assert_eq!(
            Redis.probe(buf, Direction::ToClient, PortHint::NONE),
            Probe::NoMatch,
            "{buf:?}"
        );
        assert_eq!(to_server(buf), Probe::NoMatch, "{buf:?}");
    }
    // Not commands (a 65-byte name, a NUL in a name), though valid as replies.
    for buf in [&b"*1\r\n$65\r\n"[..], b"*1\r\n$4\r\nPI\0G\r\n"] {
        let got = verdict(buf, Direction::ToServer, PortHint::NONE);
        assert!(
            got.is_some_and(|(_, o)| o == Some(Direction::ToClient)),
            "{buf:?}: {got:?}"
        );
    }
    // Nesting deeper than MAX_DEPTH: refused by the probe, an error in the session.
    let deep = b"*1\r\n".repeat(40);
    assert_eq!(
        Redis.probe(&deep, Direction::ToClient, PortHint::NONE),
        Probe::NoMatch
    );
    let err = RedisSession::default().parse(&deep, Direction::ToClient, &mut Vec::new());
    assert!(matches!(err, Err(ParseError::TooLarge { .. })), "{err:?}");
    // A bulk body announced large and cut short: the session waits, never over-reads.
    let mut s = RedisSession::default();
    let mut out = Vec::new();
    assert_eq!(
        s.parse(b"$1000000\r\nabc", Direction::ToClient, &mut out),
        Ok(13)
    );
    assert!(out.is_empty());
}

#[test]
fn gap_inside_a_bulk_body_is_skipped() {
    let mut s = RedisSession::default();
    let mut out = Vec::new();
    // A 1 MB value: the header and 10 bytes arrive, the rest was not captured.
    assert_eq!(
        s.parse(b"$1000000\r\n0123456789", Direction::ToClient, &mut out),
        Ok(20)
    );
    assert_eq!(s.gap(Direction::ToClient, 999_990, &mut out), Ok(()));
    assert_eq!(
        s.parse(b"\r\n+OK\r\n", Direction::ToClient, &mut out),
        Ok(7)
    );
    assert_eq!(out.len(), 2);
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, 1_000_012);
    // A gap outside a body cannot be stepped over.
    assert!(s.gap(Direction::ToClient, 5, &mut out).is_err());
}

// ---- through the engine: the port breaks ties between look-alikes ----

fn classify(server_port: u16, to_server: &[u8], to_client: &[u8]) -> (ProtocolId, Confidence) {
    let summary = classify_connection(server_port, to_server, to_client);
    (summary.verdict.protocol, summary.verdict.confidence)
}

#[test]
fn engine_port_breaks_the_ping_and_get_ties() {
    let redis = ProtocolId::new("redis");
    assert_eq!(classify(6379, b"PING\r\n", b"+PONG\r\n").0, redis);
    assert_eq!(classify(23456, b"PING\r\n", b"+PONG\r\n").0, redis);
    if Registry::from_inventory()
        .expect("registry")
        .get("nats")
        .is_some()
    {
        assert_eq!(
            classify(4222, b"PING\r\n", b"PONG\r\n").0,
            ProtocolId::new("nats")
        );
    }
    assert_eq!(classify(6379, b"get k\r\n", b"$-1\r\n").0, redis);
    // Redis on Postgres's port: payload wins, both directions confirm.
    let (p, c) = classify(
        5432,
        &T.fixture_bytes(Direction::ToServer, "decoy_5432_cli_1"),
        &T.fixture_bytes(Direction::ToClient, "decoy_5432_cli_1"),
    );
    assert_eq!((p, c), (redis, Confidence::CONFIRMED));
}

#[test]
fn engine_classifies_every_captured_connection() {
    // Each connection of the pcaps, on the port it was captured on: payload decides.
    for conn in load_connections(T.dir()) {
        let name = conn.name.as_str();
        let port = if name.starts_with("default_") {
            6379
        } else if name.starts_with("decoy_5432") {
            5432
        } else {
            40123
        };
        let got = classify(port, &conn.to_server, &conn.to_client);
        assert_eq!(got.0, ID, "{name} on port {port}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// RESP-shaped noise (type bytes, digits, CRLF) never panics and never over-consumes.
    #[test]
    fn resp_noise_never_panics(parts in proptest::collection::vec(
        prop_oneof![Just(&b"*"[..]), Just(&b"$"[..]), Just(&b"%"[..]), Just(&b"|"[..]), Just(&b">"[..]),
                    Just(&b"1"[..]), Just(&b"-1"[..]), Just(&b"\r\n"[..]), Just(&b"OK"[..]), Just(&b"GET"[..])], 0..60)) {
        let bytes = parts.concat();
        for dir in [Direction::ToServer, Direction::ToClient] {
            let _ = Redis.probe(&bytes, dir, PortHint::NONE);
            if let Ok(n) = RedisSession::default().parse(&bytes, dir, &mut Vec::new()) {
                prop_assert!(n <= bytes.len());
            }
        }
    }
}
