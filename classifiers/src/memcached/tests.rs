//! memcached tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written edge cases, on look-alikes (Redis, NATS, HTTP, SSLv2), on hostile input and
//! through the real engine (the `get k` tie with Redis).

use adi_classify::testing::{classify_connection, load_connections, Expect, Subject};
use adi_classify::{
    fixtures_path, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId, Record,
    RecordKind, Session,
};
use proptest::prelude::*;

use super::session::MemcachedSession;
use super::{Memcached, ID};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Memcached, fixtures_path!("src/memcached/fixtures"));

/// (confidence, observed direction) of a match.
type Band = (Confidence, Option<Direction>);
/// (kind, op, resource, `status` attribute) of a record.
type Summary<'a> = (
    RecordKind,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// (kind, op, resource, `status` attribute) of each record.
fn summary(records: &[Record]) -> Vec<Summary<'_>> {
    records
        .iter()
        .map(|r| {
            (
                r.kind,
                r.op.as_deref(),
                r.resource.as_deref(),
                r.attribute("status"),
            )
        })
        .collect()
}

// ---- real captures ----

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "memcached",
    "src/memcached/fixtures",
    Confidence::STRONG,
    Expect::NONE.paired().exact_splits()
);

#[test]
fn fixtures_match_at_their_band() {
    use Direction::{ToClient, ToServer};
    T.assert_bands(&[
        // A storage command with its data block: CERTAIN.
        (ToServer, "pymemcache", Confidence::CERTAIN),
        (ToServer, "split", Confidence::CERTAIN),
        (ToServer, "meta", Confidence::CERTAIN),
        // A 20 KB value does not fit the probe window: the line alone, STRONG.
        (ToServer, "pymemcache_big", Confidence::STRONG),
        // `verbosity 1`: a memcached-only line.
        (ToServer, "errors", Confidence::STRONG),
        // `mn`: meta no-op.
        (ToServer, "decoy_6379_meta", Confidence::STRONG),
        // Binary packets, whole.
        (ToServer, "binary", Confidence::CERTAIN),
        (ToServer, "memcstat_binary", Confidence::CERTAIN),
        (ToClient, "binary", Confidence::CERTAIN),
        (ToClient, "memcstat_binary", Confidence::CERTAIN),
        // VALUE blocks with matching lengths.
        (ToClient, "pymemcache", Confidence::CERTAIN),
        (ToClient, "meta", Confidence::CERTAIN),
        (ToClient, "nc_text", Confidence::CERTAIN),
        // `STORED` first, then a VALUE block.
        (ToClient, "split", Confidence::CERTAIN),
        // OK, ERROR, CLIENT_ERROR...: CLIENT_ERROR is memcached-only.
        (ToClient, "errors", Confidence::STRONG),
        // The 20 KB VALUE is cut by the window.
        (ToClient, "pymemcache_big", Confidence::STRONG),
    ]);
}

#[test]
fn session_summaries_text() {
    use RecordKind::{Message, Request, Response};
    let r = T.connection("pymemcache");
    let requests: Vec<_> = summary(&r)
        .into_iter()
        .filter(|s| s.0 != Response)
        .collect();
    assert_eq!(
        requests,
        [
            (Message, Some("set"), Some("user:1"), None), // noreply
            (Request, Some("get"), Some("user:1"), None),
            (Request, Some("get"), Some("user:1"), None), // get user:1 missing
            (Message, Some("add"), Some("user:1"), None),
            (Request, Some("gets"), Some("user:1"), None),
            (Request, Some("cas"), Some("user:1"), None),
            (Request, Some("set"), Some("counter"), None),
            (Request, Some("incr"), Some("counter"), None),
            (Request, Some("decr"), Some("counter"), None),
            (Message, Some("append"), Some("user:1"), None),
            (Message, Some("prepend"), Some("user:1"), None),
            (Message, Some("touch"), Some("user:1"), None),
            (Message, Some("delete"), Some("user:1"), None),
            (Request, Some("delete"), Some("missing"), None),
            (Request, Some("version"), None, None),
            (Message, Some("quit"), None, None),
        ]
    );
    assert_eq!(r[0].attribute("bytes"), Some("5"));
    let responses: Vec<_> = r.iter().filter(|r| r.kind == Response).collect();
    let statuses: Vec<_> = responses
        .iter()
        .map(|r| r.attribute("status").expect("status"))
        .collect();
    assert_eq!(
        statuses,
        [
            "END",
            "END",
            "END",
            "STORED",
            "STORED",
            "15",
            "13",
            "NOT_FOUND",
            "VERSION"
        ]
    );
    assert_eq!(responses[0].resource.as_deref(), Some("user:1"));
    assert_eq!(responses[0].attribute("hits"), Some("1"));
    assert_eq!(responses[8].attribute("version"), Some("1.6.18"));
    // Errors: the text of CLIENT_ERROR; malformed commands are still requests.
    let r = T.connection("errors");
    let client_error = r
        .iter()
        .find(|r| r.attribute("status") == Some("CLIENT_ERROR"))
        .expect("CLIENT_ERROR");
    assert_eq!(
        client_error.attribute("error"),
        Some("bad command line format")
    );
    assert_eq!(
        r.iter()
            .filter(|r| r.attribute("malformed") == Some("true"))
            .count(),
        3
    );
    // stats: STAT lines up to END are one reply.
    let r = T.connection("nc_text");
    assert_eq!(
        r.last()
            .map(|r| (r.attribute("status"), r.attribute("items"))),
        Some((Some("END"), Some("32")))
    );
}

#[test]
fn session_summaries_meta_and_binary() {
    use RecordKind::{Message, Request, Response};
    assert_eq!(
        summary(&T.connection("meta")),
        [
            (Request, Some("ms"), Some("meta:1"), None),
            (Request, Some("mg"), Some("meta:1"), None),
            (Request, Some("mg"), Some("missing"), None),
            (Request, Some("ma"), Some("meta:n"), None),
            (Message, Some("md"), Some("meta:1"), None), // q: quiet
            (Request, Some("mn"), None, None),
            (Request, Some("me"), Some("meta:n"), None),
            (Request, Some("mg"), Some("meta:1"), None),
            (Response, None, None, Some("HD")),
            (Response, None, None, Some("VA")),
            (Response, None, None, Some("EN")),
            (Response, None, None, Some("VA")),
            (Response, None, None, Some("MN")),
            (Response, None, None, Some("ME")),
            (Response, None, None, Some("EN")),
        ]
    );
    let r = T.connection("binary");
    assert_eq!(
        summary(&r),
        [
            (Request, Some("set"), Some("bin:1"), None),
            (Request, Some("get"), Some("bin:1"), None),
            (Request, Some("get"), Some("missing"), None),
            (Request, Some("set"), Some("bin:n"), None),
            (Request, Some("incr"), Some("bin:n"), None),
            (Request, Some("delete"), Some("bin:1"), None),
            (Response, Some("set"), None, Some("success")),
            (Response, Some("get"), None, Some("success")),
            (Response, Some("get"), None, Some("key_not_found")),
            (Response, Some("set"), None, Some("success")),
            (Response, Some("incr"), None, Some("success")),
            (Response, Some("delete"), None, Some("success")),
        ]
    );
    assert_eq!(r[8].status, Some(1));
    assert_eq!(r[0].wire_len, 42);
    // Binary stat: one message per statistic, the empty-key terminator answers the request.
    let r = T.connection("memcstat_binary");
    let stats = r
        .iter()
        .filter(|r| r.kind == Message && r.op.as_deref() == Some("stat"))
        .count();
    assert!(stats > 50, "{stats}");
    assert!(r
        .iter()
        .any(|r| r.kind == Message && r.resource.as_deref() == Some("pid")));
}

// ---- look-alikes ----

#[test]
fn redis_nats_http_are_told_apart() {
    // Redis inline commands are upper case; memcached is case-sensitive.
    for buf in [
        &b"GET k\r\n"[..],
        b"SET k v\r\n",
        b"PING\r\n",
        b"EXISTS k\r\n",
        b"INFO server\r\n",
    ] {
        assert_eq!(
            Memcached.probe(buf, Direction::ToServer, PortHint::NONE),
            Probe::NoMatch,
            "{buf:?}"
        );
    }
    // Redis and memcached share `get k` in lower case: WEAK here, the port decides.
    assert_eq!(
        T.band(b"get k\r\n", Direction::ToServer),
        Some((Confidence::WEAK, None))
    );
    T.assert_prefixes_below(
        Confidence::REPORT,
        &[
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            b"+OK\r\n$5\r\nhello\r\n:1\r\n",
            b"-ERR unknown command\r\n",
            // NATS and HTTP: upper-case verbs, none of them memcached's.
            b"INFO {\"server_id\":\"x\"}\r\n",
            b"CONNECT {\"verbose\":false}\r\nPING\r\nPUB a 1\r\nx\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            // SSLv2-compatible ClientHello: 0x80, length, 0x01: a "key length" of 259 > 250.
            &[
                0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, 0x07, 0x00, 0xc0,
            ],
        ],
    );
    // (Redis's fixtures: its conformance test `conformance_no_confusion`.)
}

// ---- hand-written edge cases ----

/// A binary header: magic, opcode, key length, extras length, data type, vbucket/status,
/// total body, opaque 0, cas 0.
fn binary(
    magic: u8,
    opcode: u8,
    key: u16,
    extras: u8,
    dtype: u8,
    status: u16,
    body: u32,
) -> Vec<u8> {
    let mut h = vec![magic, opcode];
    h.extend_from_slice(&key.to_be_bytes());
    h.extend_from_slice(&[extras, dtype]);
    h.extend_from_slice(&status.to_be_bytes());
    h.extend_from_slice(&body.to_be_bytes());
    h.extend_from_slice(&[0; 12]);
    h
}

#[test]
fn edge_cases() {
    use Direction::{ToClient, ToServer};
    let mut get_k = binary(0x80, 0x00, 1, 0, 0, 0, 1); // GET, key "k"
    get_k.push(b'k');
    let cases: Vec<(Vec<u8>, Direction, Option<Band>)> = vec![
        // set <key> <flags> <exptime> <bytes>, then exactly 5 bytes and CRLF.
        (
            b"set k 0 0 5\r\nhello\r\n".to_vec(),
            ToServer,
            Some((Confidence::CERTAIN, None)),
        ),
        // The data block still arriving.
        (
            b"set k 0 0 5\r\nhel".to_vec(),
            ToServer,
            Some((Confidence::STRONG, None)),
        ),
        // cas needs its unique; with noreply.
        (
            b"cas k 1 -1 2 77 noreply\r\nhi\r\n".to_vec(),
            ToServer,
            Some((Confidence::CERTAIN, None)),
        ),
        // Meta commands: flags are a letter and a token.
        (
            b"mg key v t f\r\n".to_vec(),
            ToServer,
            Some((Confidence::STRONG, None)),
        ),
        (
            b"ms key 2 T0 I\r\nab\r\n".to_vec(),
            ToServer,
            Some((Confidence::CERTAIN, None)),
        ),
        (
            b"gets a b c\r\n".to_vec(),
            ToServer,
            Some((Confidence::STRONG, None)),
        ),
        // Several keys: no Redis GET has that arity.
        (
            b"get a b\r\n".to_vec(),
            ToServer,
            Some((Confidence::STRONG, None)),
        ),
        // A reply seen "to the server": observed the other way.
        (
            b"STORED\r\n".to_vec(),
            ToServer,
            Some((Confidence::STRONG, Some(ToClient))),
        ),
        (
            b"VALUE k 0 5\r\nhello\r\nEND\r\n".to_vec(),
            ToClient,
            Some((Confidence::CERTAIN, None)),
        ),
        (
            b"VA 2 t-1\r\nhi\r\n".to_vec(),
            ToClient,
            Some((Confidence::CERTAIN, None)),
        ),
        (
            b"END\r\n".to_vec(),
            ToClient,
            Some((Confidence::WEAK, None)),
        ),
        (b"42\r\n".to_vec(), ToClient, Some((Confidence::WEAK, None))),
        // Binary GET request, whole; seen "to the client" it is observed to the server.
        (get_k.clone(), ToServer, Some((Confidence::CERTAIN, None))),
        (
            get_k.clone(),
            ToClient,
            Some((Confidence::CERTAIN, Some(ToServer))),
        ),
        // The header alone: STRONG; fewer than 24 bytes: undecided.
        (
            get_k[..24].to_vec(),
            ToServer,
            Some((Confidence::STRONG, None)),
        ),
        (get_k[..10].to_vec(), ToServer, None),
    ];
    for (buf, dir, want) in cases {
        assert_eq!(
            T.band(&buf, dir),
            want,
            "{:?}",
            String::from_utf8_lossy(&buf)
        );
    }
    assert_eq!(
        Memcached.probe(b"se", Direction::ToServer, PortHint::NONE),
        Probe::NeedMore
    );
}

// ---- hostile input ----

#[test]
fn hostile_lengths_are_refused() {
    let refused: Vec<Vec<u8>> = vec![
        binary(0x80, 0x00, 10, 0, 0, 0, 5), // body shorter than the key
        binary(0x80, 0x00, 0xffff, 0, 0, 0, 0xffff_ffff), // key above 250 bytes
        binary(0x80, 0x00, 1, 0, 1, 0, 1),  // data type other than raw bytes
        binary(0x80, 0x00, 1, 200, 0, 0, 201), // extras above 20 bytes
        binary(0x80, 0x7f, 1, 0, 0, 0, 1),  // unknown opcode
        binary(0x81, 0x00, 0, 0, 0, 0x4242, 0), // unknown status
        b"set k 0 0 99999999999999999999999\r\n".to_vec(), // length above u64
        b"set k 0 0 2000000000\r\n".to_vec(), // above the 1 GiB item limit
        b"set k 0 0 5\r\nhelloXX\r\n".to_vec(), // data block longer than announced
        format!("get {}\r\n", "k".repeat(251)).into_bytes(), // key above 250 bytes
        b"get k\x01\r\n".to_vec(),          // control byte
    ];
    for buf in refused {
        assert_eq!(
            Memcached.probe(&buf, Direction::ToServer, PortHint::NONE),
            Probe::NoMatch,
            "{buf:?}"
        );
    }
    // A session never over-reads a body announced larger than what arrived.
    let mut s = MemcachedSession::default();
    let mut out = Vec::new();
    assert_eq!(
        s.parse(b"set k 0 0 1000000\r\nabc", Direction::ToServer, &mut out),
        Ok(22)
    );
    assert!(out.is_empty());
}

#[test]
fn gap_inside_a_value_is_skipped() {
    let mut s = MemcachedSession::default();
    let mut out = Vec::new();
    // A 1 MB binary GET response: the header and a few bytes arrive, the rest was not captured.
    let header = binary(0x81, 0x00, 0, 4, 0, 0, 1_000_004);
    assert_eq!(s.parse(&header, Direction::ToClient, &mut out), Ok(24));
    assert_eq!(
        s.parse(b"\0\0\0\0abc", Direction::ToClient, &mut out),
        Ok(7)
    );
    assert_eq!(s.gap(Direction::ToClient, 999_997, &mut out), Ok(()));
    assert_eq!(out.len(), 1);
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, 1_000_028);
    assert!(s.gap(Direction::ToClient, 5, &mut out).is_err());
    // Text: a 1 MB VALUE cut short, then the rest of the reply.
    let mut s = MemcachedSession::default();
    let mut out = Vec::new();
    assert_eq!(
        s.parse(b"VALUE k 0 1000000\r\nab", Direction::ToClient, &mut out),
        Ok(21)
    );
    assert_eq!(s.gap(Direction::ToClient, 999_998, &mut out), Ok(()));
    assert_eq!(
        s.parse(b"\r\nEND\r\n", Direction::ToClient, &mut out),
        Ok(7)
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].attribute("hits"), Some("1"));
}

#[test]
fn sasl_credentials_are_not_kept() {
    // SASL_AUTH "PLAIN" with "\0user\0secret" as value.
    let mut req = binary(0x80, 0x21, 5, 0, 0, 0, 5 + 12);
    req.extend_from_slice(b"PLAIN\0user\0secret");
    let mut out = Vec::new();
    MemcachedSession::default()
        .parse(&req, Direction::ToServer, &mut out)
        .expect("parse");
    assert_eq!(out.len(), 1);
    assert!(!out[0].raw.windows(6).any(|w| w == b"secret"));
    assert_eq!(out[0].wire_len, 41);
}

// ---- through the engine ----

fn classify(server_port: u16, to_server: &[u8], to_client: &[u8]) -> ProtocolId {
    classify_connection(server_port, to_server, to_client)
        .verdict
        .protocol
}

#[test]
fn engine_tells_memcached_from_redis() {
    let memcached = ProtocolId::new("memcached");
    // `get k` + a memcached reply: the reply decides, whatever the port.
    assert_eq!(classify(11211, b"get k\r\n", b"END\r\n"), memcached);
    assert_eq!(
        classify(6379, b"get k\r\n", b"VALUE k 0 1\r\nx\r\nEND\r\n"),
        memcached
    );
    // memcached on Redis's port, real bytes.
    for name in ["decoy_6379_text", "decoy_6379_meta", "decoy_6379_binary"] {
        let got = classify(
            6379,
            &T.fixture_bytes(Direction::ToServer, name),
            &T.fixture_bytes(Direction::ToClient, name),
        );
        assert_eq!(got, memcached, "{name}");
    }
}

#[test]
fn engine_classifies_every_captured_connection() {
    // Each connection of the pcaps, on the port it was captured on: payload decides.
    for conn in load_connections(T.dir()) {
        let name = conn.name.as_str();
        let port = if name.starts_with("default_") {
            11211
        } else if name.starts_with("decoy_6379") {
            6379
        } else {
            40123
        };
        let got = classify(port, &conn.to_server, &conn.to_client);
        assert_eq!(got, ID, "{name} on port {port}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Text-protocol-shaped noise never panics and never over-consumes.
    #[test]
    fn text_noise_never_panics(parts in proptest::collection::vec(
        prop_oneof![Just(&b"set "[..]), Just(&b"get "[..]), Just(&b"VALUE "[..]), Just(&b"k "[..]),
                    Just(&b"0 "[..]), Just(&b"5"[..]), Just(&b"\r\n"[..]), Just(&b"END"[..]), Just(&b"ms "[..]),
                    Just(&[0x80_u8, 0x00][..])], 0..60)) {
        let bytes = parts.concat();
        for dir in [Direction::ToServer, Direction::ToClient] {
            let _ = Memcached.probe(&bytes, dir, PortHint::NONE);
            if let Ok(n) = MemcachedSession::default().parse(&bytes, dir, &mut Vec::new()) {
                prop_assert!(n <= bytes.len());
            }
        }
    }
}
