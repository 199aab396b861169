//! nats tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written edge cases, on look-alikes (Redis, HTTP CONNECT) and on random bytes.

use adi_classify::testing::{self, Expect, Subject};
use adi_classify::{fixtures_path, Confidence, Direction, PortHint, Probe, RecordKind, Session};
use proptest::prelude::*;

use super::session::NatsSession;
use super::{Nats, AMBIGUOUS, PROBE_WINDOW};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Nats, fixtures_path!("src/nats/fixtures"));

const TO_SERVER_NATS_PY: &[u8] = include_bytes!("fixtures/to_server_nats_py.bin");
const TO_CLIENT_NATS_PY: &[u8] = include_bytes!("fixtures/to_client_nats_py.bin");
const TO_SERVER_NC_RAW: &[u8] = include_bytes!("fixtures/to_server_nc_raw.bin");
const TO_CLIENT_NC_RAW: &[u8] = include_bytes!("fixtures/to_client_nc_raw.bin");
const TO_SERVER_SPLIT: &[u8] = include_bytes!("fixtures/to_server_split_verbose.bin");
const TO_CLIENT_SPLIT: &[u8] = include_bytes!("fixtures/to_client_split_verbose.bin");

/// (confidence, observed) of a match, or `None`.
fn verdict(buf: &[u8], dir: Direction, ports: PortHint) -> Option<(u8, Option<Direction>)> {
    testing::verdict(&Nats, buf, dir, ports).map(|v| (v.confidence.get(), v.observed))
}

/// The summary of a record without a status, as every NATS record is.
fn s(
    kind: RecordKind,
    op: &str,
    resource: Option<&str>,
    attrs: &[(&str, &str)],
) -> testing::Summary {
    testing::summary(kind, op, resource, None, attrs)
}

// ---- probe ----

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "nats",
    "src/nats/fixtures",
    Confidence::CERTAIN,
    Expect::NONE.reversed(Expect::BOTH_WAYS).exact_splits()
);

#[test]
fn probe_bands() {
    let to_server = Direction::ToServer;
    let to_client = Direction::ToClient;
    let cases: &[(&[u8], Direction, Option<u8>)] = &[
        // INFO { before the line ends: STRONG; whole line: CERTAIN.
        (b"INFO {\"server_id\":\"x\"", to_client, Some(80)),
        (b"INFO {\"server_id\":\"x\"} \r\n", to_client, Some(92)),
        // Lower-case verbs are the same protocol.
        (b"connect {\"verbose\":false}\r\n", to_server, Some(92)),
        (b"CONNECT {", to_server, Some(80)),
        // A PUB control line whose payload is still coming: STRONG; whole: CERTAIN.
        (b"PUB a.b 5\r\nhel", to_server, Some(80)),
        (b"PUB a.b 5\r\nhello\r\n", to_server, Some(92)),
        (b"pub a.b inbox.1 0\r\n\r\n", to_server, Some(92)),
        // HPUB: the header block must start with NATS/1.0.
        (
            b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
            to_server,
            Some(92),
        ),
        (b"HPUB a 12 14\r\nHTTP/1.1\r\n\r\nhi\r\n", to_server, None),
        (b"MSG a 1 2\r\nhi\r\n", to_client, Some(92)),
        (
            b"HMSG a 1 r 12 12\r\nNATS/1.0\r\n\r\n\r\n",
            to_client,
            Some(92),
        ),
        // SUB / UNSUB lines: STRONG (no length to check).
        (b"SUB a.> 1\r\n", to_server, Some(80)),
        (b"SUB a.> q 1\r\n", to_server, Some(80)),
        (b"UNSUB 1 10\r\n", to_server, Some(80)),
        // A bare PING then a decisive message: the best evidence wins.
        (b"PING\r\nSUB a 1\r\n", to_server, Some(80)),
        (b"PONG\r\n+OK\r\nMSG a 1 0\r\n\r\n", to_client, Some(92)),
        // Ambiguous alone: below REPORT.
        (b"PING\r\n", to_server, Some(AMBIGUOUS.get())),
        (b"+OK\r\n", to_client, Some(AMBIGUOUS.get())),
        (
            b"-ERR 'Authorization Violation'\r\n",
            to_client,
            Some(AMBIGUOUS.get()),
        ),
        // Wrong sizes or grammar: no match.
        (b"PUB a.b 5\r\nhello!\r\n", to_server, None),
        (b"PUB a.b\r\n", to_server, None),
        (b"PUB a.b -1\r\n", to_server, None),
        (b"PUB a.b 999999999\r\n", to_server, None),
        (b"SUB a b c d\r\n", to_server, None),
        (b"PING extra\r\n", to_server, None),
    ];
    for (buf, dir, want) in cases {
        let got = verdict(buf, *dir, PortHint::NONE).map(|(c, _)| c);
        assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(buf));
    }
}

#[test]
fn ambiguous_messages_reach_weak_only_on_a_nats_port() {
    let ping = b"PING\r\n";
    assert_eq!(
        verdict(ping, Direction::ToServer, PortHint::server(4222)).map(|v| v.0),
        Some(65)
    );
    assert_eq!(
        verdict(ping, Direction::ToServer, PortHint::server(6379)).map(|v| v.0),
        Some(50)
    );
    assert_eq!(
        verdict(ping, Direction::ToServer, PortHint::NONE).map(|v| v.0),
        Some(50)
    );
    // Decisive evidence is not changed by the port.
    let info = b"INFO {} \r\n";
    assert_eq!(
        verdict(info, Direction::ToClient, PortHint::server(6379)).map(|v| v.0),
        Some(92)
    );
}

#[test]
fn look_alikes_are_told_apart() {
    let cases: &[&[u8]] = &[
        // Redis: INFO without JSON, inline and RESP commands, RESP replies.
        b"INFO\r\n",
        b"INFO server\r\n",
        b"info keyspace\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"PUBLISH chan hello\r\n",
        b"SUBSCRIBE chan\r\n",
        b"+PONG\r\n",
        b"-ERR unknown command 'FOO'\r\n",
        b"$5\r\nhello\r\n",
        // HTTP CONNECT and other methods.
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"PUT /x HTTP/1.1\r\n",
        b"HTTP/1.1 200 OK\r\n",
        // SMTP, memcached, AMQP.
        b"HELO mail.example.com\r\n",
        b"MAIL FROM:<a@b>\r\n",
        b"set k 0 0 5\r\nhello\r\n",
        b"AMQP\x00\x00\x09\x01",
    ];
    T.assert_prefixes_below(Confidence::REPORT, cases);
    // Redis INFO and HTTP CONNECT are rejected outright once their line ends.
    assert_eq!(T.probe(b"INFO\r\n", Direction::ToServer), Probe::NoMatch);
    assert_eq!(
        T.probe(b"CONNECT example.com:443 HTTP/1.1\r\n", Direction::ToServer),
        Probe::NoMatch
    );
}

#[test]
fn probe_rejects_on_the_first_bytes() {
    for buf in [
        &b"\x16\x03\x01"[..],
        b"GET / HTTP/1.1",
        b"\x00\x00\x00\x08",
        b"Xyz",
        b"PX",
        b"IZ",
    ] {
        assert_eq!(T.probe(buf, Direction::ToServer), Probe::NoMatch, "{buf:?}");
    }
    for buf in [
        &b"I"[..],
        b"in",
        b"CONN",
        b"hp",
        b"+",
        b"-E",
        b"INFO",
        b"INFO ",
    ] {
        assert_eq!(
            T.probe(buf, Direction::ToClient),
            Probe::NeedMore,
            "{buf:?}"
        );
    }
}

#[test]
fn probe_reads_at_most_its_window() {
    // A PUB whose payload lies past the window stays STRONG: the probe never looks there.
    const _: () = assert!(PROBE_WINDOW < 5000);
    let mut buf = b"PUB big 5000\r\n".to_vec();
    buf.resize(6000, b'x');
    let (conf, _) = verdict(&buf, Direction::ToServer, PortHint::NONE).expect("match");
    assert_eq!(conf, Confidence::STRONG.get());
}

proptest! {
    #[test]
    fn proptest_verb_then_noise_never_panics(
        verb in prop::sample::select(vec!["PUB ", "HPUB ", "MSG ", "HMSG ", "SUB ", "INFO {", "CONNECT {", "UNSUB "]),
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut buf = verb.as_bytes().to_vec();
        buf.extend_from_slice(&tail);
        for dir in [Direction::ToServer, Direction::ToClient] {
            let _ = T.probe(&buf, dir);
            let _ = NatsSession::default().parse(&buf, dir, &mut Vec::new());
        }
    }
}

// ---- session ----

#[test]
fn session_nats_py() {
    use RecordKind::{Message, Request, Response};
    let records = T.parse_all(TO_SERVER_NATS_PY, TO_CLIENT_NATS_PY);
    let inbox = "_INBOX.cWCjwMlVxsXYrUATRHVxLS";
    let reply = format!("{inbox}.cWCjwMlVxsXYrUATRHVxNL82c7");
    let mut want = vec![
        s(
            Message,
            "CONNECT",
            None,
            &[
                ("name", "adi-nats-py"),
                ("lang", "python3"),
                ("version", "2.16.0"),
            ],
        ),
        s(Request, "PING", None, &[]),
        s(Message, "SUB", Some("adi.updates"), &[("sid", "1")]),
        s(
            Message,
            "SUB",
            Some("adi.rpc"),
            &[("queue", "workers"), ("sid", "2")],
        ),
        s(Message, "PUB", Some("adi.updates"), &[]),
        s(
            Message,
            "HPUB",
            Some("adi.updates"),
            &[("X-Trace", "abc123")],
        ),
        s(Message, "SUB", Some(&format!("{inbox}.*")), &[("sid", "3")]),
        s(Message, "PUB", Some("adi.rpc"), &[("reply_to", &reply)]),
        s(Message, "PUB", Some(&reply), &[]),
    ];
    want.extend(std::iter::repeat_n(s(Request, "PING", None, &[]), 4));
    for sid in 1..=3 {
        want.push(s(Message, "UNSUB", None, &[("sid", &sid.to_string())]));
    }
    want.push(s(Request, "PING", None, &[]));
    want.extend([
        s(
            Message,
            "INFO",
            None,
            &[("server_name", "adi-capture-4222"), ("version", "2.9.10")],
        ),
        s(Response, "PONG", None, &[]),
        s(Message, "MSG", Some("adi.updates"), &[("sid", "1")]),
        s(
            Message,
            "HMSG",
            Some("adi.updates"),
            &[("sid", "1"), ("X-Trace", "abc123")],
        ),
        s(
            Message,
            "MSG",
            Some("adi.rpc"),
            &[("sid", "2"), ("reply_to", &reply)],
        ),
        s(Message, "MSG", Some(&reply), &[("sid", "3")]),
    ]);
    want.extend(std::iter::repeat_n(s(Response, "PONG", None, &[]), 5));
    assert_eq!(testing::summaries(&records), want);
    // Payloads and sizes.
    let publish = &records[4];
    assert_eq!(publish.body, b"hello from adi-nats-py");
    assert_eq!(
        publish.wire_len,
        b"PUB adi.updates  22\r\nhello from adi-nats-py\r\n".len() as u64
    );
    assert_eq!(records[5].body, b"with headers");
    assert!(!records.iter().any(|r| r.truncated));
}

#[test]
fn session_nc_raw() {
    use RecordKind::{Message, Request, Response};
    let records = T.parse_all(TO_SERVER_NC_RAW, TO_CLIENT_NC_RAW);
    let want = vec![
        s(
            Message,
            "CONNECT",
            None,
            &[("name", "adi-nc"), ("lang", "nc"), ("version", "1.0")],
        ),
        s(Request, "PING", None, &[]),
        s(Message, "SUB", Some("adi.raw"), &[("sid", "1")]),
        s(
            Message,
            "SUB",
            Some("adi.raw"),
            &[("queue", "workers"), ("sid", "2")],
        ),
        s(Message, "PUB", Some("adi.raw"), &[]),
        s(Message, "PUB", Some("adi.raw"), &[("reply_to", "reply.to")]),
        s(Request, "PING", None, &[]),
        s(Message, "UNSUB", None, &[("sid", "1")]),
        s(Message, "UNSUB", None, &[("sid", "2"), ("max_msgs", "5")]),
        s(
            Message,
            "INFO",
            None,
            &[
                (
                    "server_name",
                    records[9].attribute("server_name").unwrap_or("?"),
                ),
                ("version", "2.9.10"),
            ],
        ),
        s(Response, "PONG", None, &[]),
        s(Message, "MSG", Some("adi.raw"), &[("sid", "1")]),
        s(Message, "MSG", Some("adi.raw"), &[("sid", "2")]),
        s(
            Message,
            "MSG",
            Some("adi.raw"),
            &[("sid", "1"), ("reply_to", "reply.to")],
        ),
        s(
            Message,
            "MSG",
            Some("adi.raw"),
            &[("sid", "2"), ("reply_to", "reply.to")],
        ),
        s(Response, "PONG", None, &[]),
    ];
    assert_eq!(testing::summaries(&records), want);
    assert!(records[9]
        .attribute("server_name")
        .is_some_and(|n| n.starts_with("adi-capture-")));
    assert_eq!(records[11].body, b"hello");
    assert_eq!(records[14].body, b"abc");
}

#[test]
fn session_verbose_mode_pairs_ok_with_each_operation() {
    use RecordKind::{Message, Request, Response};
    let records = T.parse_all(TO_SERVER_SPLIT, TO_CLIENT_SPLIT);
    assert_eq!(
        testing::ops(&records),
        [
            (Request, "CONNECT"),
            (Request, "SUB"),
            (Request, "PUB"),
            (Request, "PUB"),
            (Request, "UNSUB"),
            (Request, "PING"),
            (Message, "INFO"),
            (Response, "+OK"),
            (Response, "+OK"),
            (Response, "+OK"),
            (Message, "MSG"),
            (Response, "+OK"),
            (Message, "MSG"),
            (Response, "+OK"),
            (Response, "PONG"),
        ]
    );
    // Lower-case verbs are reported in the protocol's spelling.
    assert_eq!(records[1].resource.as_deref(), Some("adi.split.>"));
    assert_eq!(records[3].attribute("reply_to"), Some("reply.inbox"));
    assert!(records[3].body.is_empty());
    assert_eq!(
        records.iter().filter(|r| r.kind == Request).count(),
        records.iter().filter(|r| r.kind == Response).count()
    );
}

#[test]
fn headers_status_and_errors() {
    // HMSG with a 503 status line (no responders) and two fields.
    let headers = b"NATS/1.0 503\r\nA: 1\r\nB-Two:  x y \r\n\r\n";
    let n = headers.len();
    let mut hmsg = format!("HMSG _INBOX.x 3 {n} {n}\r\n").into_bytes();
    hmsg.extend_from_slice(headers);
    hmsg.extend_from_slice(b"\r\n");
    let hmsg = &hmsg[..];
    let mut session = NatsSession::default();
    let mut out = Vec::new();
    let n = session
        .parse(hmsg, Direction::ToClient, &mut out)
        .expect("parse");
    assert_eq!(n, hmsg.len());
    assert_eq!(out[0].status, Some(503));
    assert_eq!(out[0].attribute("sid"), Some("3"));
    assert_eq!(out[0].attribute("A"), Some("1"));
    assert_eq!(out[0].attribute("B-Two"), Some("x y"));
    assert!(out[0].body.is_empty());
    // -ERR text, quotes removed.
    out.clear();
    session
        .parse(
            b"-ERR 'Unknown Protocol Operation'\r\n",
            Direction::ToClient,
            &mut out,
        )
        .expect("parse");
    assert_eq!(out[0].op.as_deref(), Some("-ERR"));
    assert_eq!(
        out[0].attribute("error"),
        Some("Unknown Protocol Operation")
    );
}

#[test]
fn json_fields_are_read_from_the_top_level_only() {
    // `name` nested in an object and inside a string must not be taken; escapes decode.
    let line = br#"CONNECT {"opts":{"name":"inner"},"x":"\"name\":\"fake\"","name":"a\"b\u00e9","lang":"go","version":"1.2","verbose":true}"#;
    let mut buf = line.to_vec();
    buf.extend_from_slice(b"\r\n");
    let mut out = Vec::new();
    NatsSession::default()
        .parse(&buf, Direction::ToServer, &mut out)
        .expect("parse");
    assert_eq!(out[0].kind, RecordKind::Request, "verbose: true");
    assert_eq!(out[0].attribute("name"), Some("a\"bé"));
    assert_eq!(out[0].attribute("lang"), Some("go"));
    // Malformed JSON yields no attributes but still a record.
    out.clear();
    NatsSession::default()
        .parse(b"CONNECT {\"name\":}\r\n", Direction::ToServer, &mut out)
        .expect("parse");
    assert!(out[0].attributes.is_empty());
}

#[test]
fn large_payload_is_streamed_and_capped() {
    let size = 100_000;
    let mut msg = format!("MSG big 9 {size}\r\n").into_bytes();
    msg.extend(std::iter::repeat_n(b'z', size));
    msg.extend_from_slice(b"\r\nPING\r\n");
    let mut session = NatsSession::default();
    let mut out = Vec::new();
    let mut consumed = 0;
    for chunk in msg.chunks(4096) {
        // Every chunk is consumed whole: the session never asks for the payload at once.
        consumed += session
            .parse(chunk, Direction::ToClient, &mut out)
            .expect("parse");
    }
    assert_eq!(consumed, msg.len());
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].body.len(), super::session::MAX_BODY_KEPT);
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, msg.len() as u64 - 6);
}

#[test]
fn errors_and_hostile_lengths() {
    let bad: &[&[u8]] = &[
        b"NOPE\r\n",                // unknown verb
        b"PUB a.b 3\r\nabcX\r\n",   // payload not followed by \r\n
        b"PUB a.b x\r\n",           // size not a number
        b"PUB a.b 99999999999\r\n", // size over MAX_PAYLOAD (too many digits)
        b"HPUB a 10 5\r\n",         // headers longer than the total
        b"MSG a\r\n",               // missing arguments
    ];
    for buf in bad {
        let r = NatsSession::default().parse(buf, Direction::ToServer, &mut Vec::new());
        assert!(r.is_err(), "{:?}: {r:?}", String::from_utf8_lossy(buf));
    }
    // A control line that never ends is refused once past the limit, not buffered forever.
    let long = vec![b'P'; super::parser::MAX_CONTROL_LINE + 10];
    assert!(T.parse_fails(&long, Direction::ToServer));
    // An incomplete line consumes nothing.
    assert_eq!(
        NatsSession::default().parse(b"PUB a 1", Direction::ToServer, &mut Vec::new()),
        Ok(0)
    );
}

#[test]
fn gaps_inside_a_payload_are_stepped_over() {
    let mut session = NatsSession::default();
    let mut out = Vec::new();
    // The control line and 3 payload bytes captured, 5 not, then the rest.
    let n = session
        .parse(b"PUB a 10\r\nabc", Direction::ToServer, &mut out)
        .expect("parse");
    assert_eq!(n, 13);
    assert_eq!(session.gap(Direction::ToServer, 5, &mut out), Ok(()));
    let n = session
        .parse(b"ij\r\nPING\r\n", Direction::ToServer, &mut out)
        .expect("parse");
    assert_eq!(n, 10);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].body, b"abcij");
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, b"PUB a 10\r\nabcdefghij\r\n".len() as u64);
    // A gap running past the payload, or outside any payload, is an error.
    let mut session = NatsSession::default();
    session
        .parse(b"PUB a 2\r\n", Direction::ToServer, &mut out)
        .expect("parse");
    assert!(session.gap(Direction::ToServer, 5, &mut out).is_err());
    assert!(NatsSession::default()
        .gap(Direction::ToServer, 1, &mut out)
        .is_err());
    // A gap that ends the payload exactly emits the record.
    let mut session = NatsSession::default();
    out.clear();
    session
        .parse(b"MSG a 1 4\r\n", Direction::ToClient, &mut out)
        .expect("parse");
    assert_eq!(session.gap(Direction::ToClient, 6, &mut out), Ok(()));
    assert_eq!(out.len(), 1);
}
