//! http1 tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written edge cases, on look-alike protocols and on random bytes.

use adi_classify::testing::{
    classifications, engine_from_inventory, feed_engine, flow_key, flow_records, survives_pieces,
    Expect, Subject,
};
use adi_classify::{
    fixtures_path, Confidence, Direction, FlowKey, ParseError, Probe, Record, RecordKind, Session,
};
use proptest::prelude::*;

use super::session::{Http1Session, MAX_BODY_KEPT};
use super::{Http1, HTTP1};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Http1, fixtures_path!("src/http1/fixtures"));

const TO_SERVER_NGINX_GET: &[u8] = include_bytes!("fixtures/to_server_nginx_get.bin");
const TO_CLIENT_NGINX_GET: &[u8] = include_bytes!("fixtures/to_client_nginx_get.bin");
const TO_SERVER_PIPELINED: &[u8] = include_bytes!("fixtures/to_server_pipelined.bin");
const TO_CLIENT_PIPELINED: &[u8] = include_bytes!("fixtures/to_client_pipelined.bin");

/// The index.html nginx and Python served in the captures.
const INDEX_HTML: &[u8] = b"<!doctype html>\n<title>adi</title>\n<p>hello from nginx</p>\n";

/// Feeds a connection's two directions whole, to-server first, and returns every record.
/// (One `parse` call per direction, which must consume every byte.)
fn parse_all(to_server: &[u8], to_client: &[u8]) -> Vec<Record> {
    T.parse_split_once(to_server, to_client, usize::MAX)
}

fn values<'a>(r: &'a Record, name: &str) -> Vec<&'a str> {
    r.attributes
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

// ---- probe ----

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "http1",
    "src/http1/fixtures",
    Confidence::CERTAIN,
    Expect::NONE.reversed(Expect::BOTH_WAYS).exact_splits()
);

#[test]
fn probe_bands() {
    let s = |b: &[u8]| T.score(b, Direction::ToServer);
    let c = |b: &[u8]| T.score(b, Direction::ToClient);
    assert_eq!(T.probe(b"G", Direction::ToServer), Probe::NeedMore);
    assert_eq!(T.probe(b"GET", Direction::ToServer), Probe::NeedMore);
    assert_eq!(s(b"GET /"), Confidence::WEAK.get());
    assert_eq!(s(b"GET /a HTTP/1."), Confidence::WEAK.get());
    assert_eq!(s(b"GET /a HTTP/1.1\r\n"), Confidence::STRONG.get());
    assert_eq!(
        s(b"GET /a HTTP/1.1\r\nHost: x\r\n"),
        Confidence::STRONG.get()
    );
    assert_eq!(
        s(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        Confidence::CERTAIN.get()
    );
    // Framing that contradicts itself is not a whole message.
    assert_eq!(
        s(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        Confidence::STRONG.get()
    );
    assert_eq!(
        s(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        Confidence::STRONG.get()
    );
    // WebDAV: one band lower, and no WEAK guess on the method alone.
    assert_eq!(T.probe(b"PROPFIND /", Direction::ToServer), Probe::NeedMore);
    assert_eq!(s(b"PROPFIND /d HTTP/1.1\r\n"), Confidence::WEAK.get());
    assert_eq!(
        s(b"PROPFIND /d HTTP/1.1\r\nDepth: 1\r\n\r\n"),
        Confidence::STRONG.get()
    );
    // Absolute and authority forms are only believed with a version.
    assert_eq!(
        T.probe(b"GET http://x/", Direction::ToServer),
        Probe::NeedMore
    );
    assert_eq!(
        s(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
        Confidence::CERTAIN.get()
    );
    assert_eq!(
        s(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
        Confidence::CERTAIN.get()
    );
    // Responses.
    assert_eq!(T.probe(b"HTTP/1", Direction::ToClient), Probe::NeedMore);
    assert_eq!(c(b"HTTP/1.1 "), Confidence::WEAK.get());
    assert_eq!(c(b"HTTP/1.1 200 OK\r\n"), Confidence::STRONG.get());
    assert_eq!(c(b"HTTP/1.0 204\r\n\r\n"), Confidence::CERTAIN.get());
}

#[test]
fn probe_rejects_on_the_first_bytes() {
    for buf in [
        &b"get / HTTP/1.1\r\n"[..],
        b"\x16\x03\x01",
        b"{\"a\":1}",
        b" GET /",
        b"\0\0\0\x08",
    ] {
        assert_eq!(T.probe(buf, Direction::ToServer), Probe::NoMatch, "{buf:?}");
        assert_eq!(T.probe(buf, Direction::ToClient), Probe::NoMatch, "{buf:?}");
    }
    assert_eq!(T.probe(b"GETX", Direction::ToServer), Probe::NoMatch);
    assert_eq!(T.probe(b"GET\t/", Direction::ToServer), Probe::NoMatch);
    assert_eq!(T.probe(b"HTTP/2", Direction::ToClient), Probe::NoMatch);
    assert_eq!(
        T.probe(b"HTTP/1.1 999 X\r\n", Direction::ToClient),
        Probe::NoMatch
    );
}

#[test]
fn look_alikes_stay_below_report() {
    let cases: &[&[u8]] = &[
        b"GET foo\r\n",                        // Redis inline command
        b"GET /foo\r\n",                       // Redis inline, key with a slash
        b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n",   // RESP array
        b"SET key value\r\n",                  // Redis inline
        b"COPY src dst\r\n",                   // Redis COPY looks like WebDAV COPY
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n", // RTSP response
        b"OPTIONS rtsp://cam/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        b"DESCRIBE rtsp://cam/stream RTSP/1.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\n\r\n", // SIP response
        b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n",
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n\r\n",
        b"REQMOD icap://proxy/req ICAP/1.0\r\n\r\n", // ICAP
        b"OPTIONS icap://proxy/req ICAP/1.0\r\n\r\n",
        b"ICAP/1.0 200 OK\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", // HTTP/2 preface
        b"GET / HTTP/2.0\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
    ];
    T.assert_below(Confidence::REPORT, cases);
    assert_eq!(
        T.probe(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Direction::ToServer),
        Probe::NoMatch
    );
    assert_eq!(T.probe(b"GET foo\r\n", Direction::ToServer), Probe::NoMatch);
    assert_eq!(
        T.probe(b"RTSP/1.0 200 OK\r\n", Direction::ToClient),
        Probe::NoMatch
    );
    assert_eq!(
        T.probe(b"SIP/2.0 200 OK\r\n", Direction::ToClient),
        Probe::NoMatch
    );
}

#[test]
fn probe_reads_at_most_its_window() {
    // A head longer than the window: still a STRONG request line, never a panic.
    let mut big = b"GET / HTTP/1.1\r\n".to_vec();
    big.extend(
        std::iter::repeat_n(&b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"[..], 200).flatten(),
    );
    big.extend_from_slice(b"\r\n");
    assert_eq!(T.score(&big, Direction::ToServer), Confidence::STRONG.get());
}

proptest! {
    #[test]
    fn proptest_http_prefix_then_noise_never_panics(
        prefix in prop::sample::select(vec![
            &b"GET / HTTP/1.1\r\n"[..], b"HTTP/1.1 200 OK\r\n", b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
        ]),
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        split in 1usize..64,
    ) {
        let mut buf = prefix.to_vec();
        buf.extend_from_slice(&noise);
        for dir in [Direction::ToServer, Direction::ToClient] {
            prop_assert!(survives_pieces(&Http1, &buf, dir, split));
        }
    }
}

// ---- session on the captures ----

#[test]
fn session_nginx_get() {
    let r = parse_all(TO_SERVER_NGINX_GET, TO_CLIENT_NGINX_GET);
    assert_eq!(r.len(), 2);
    let (req, rsp) = (&r[0], &r[1]);
    assert_eq!(req.kind, RecordKind::Request);
    assert_eq!(req.op.as_deref(), Some("GET"));
    assert_eq!(req.resource.as_deref(), Some("/index.html?q=1"));
    assert_eq!(values(req, "User-Agent"), ["curl/7.88.1"]);
    assert_eq!(values(req, "X-Multi"), ["1", "2"]);
    assert_eq!(
        req.attributes.first().map(|(n, _)| n.as_str()),
        Some("Host")
    );
    assert!(req.body.is_empty());
    assert_eq!(req.raw, TO_SERVER_NGINX_GET);
    assert_eq!(req.wire_len, TO_SERVER_NGINX_GET.len() as u64);
    assert_eq!(rsp.kind, RecordKind::Response);
    assert_eq!(rsp.status, Some(200));
    assert_eq!(rsp.attribute("content-length"), Some("59"));
    assert_eq!(values(rsp, "Set-Cookie"), ["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(rsp.body, INDEX_HTML);
    // The head as sent; the body is in `body`.
    assert_eq!(
        rsp.raw,
        &TO_CLIENT_NGINX_GET[..TO_CLIENT_NGINX_GET.len() - INDEX_HTML.len()]
    );
    assert_eq!(rsp.wire_len, TO_CLIENT_NGINX_GET.len() as u64);
    assert!(!req.truncated && !rsp.truncated);
}

#[test]
fn session_head_has_no_body_despite_content_length() {
    let (s, c) = T.fixture("nginx_head");
    let r = parse_all(&s, &c);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].op.as_deref(), Some("HEAD"));
    assert_eq!(
        (r[1].status, r[1].attribute("Content-Length")),
        (Some(200), Some("59"))
    );
    assert!(r[1].body.is_empty());
    assert_eq!(r[1].wire_len, c.len() as u64);
}

#[test]
fn session_304_has_no_body() {
    let (s, c) = T.fixture("nginx_304");
    let r = parse_all(&s, &c);
    assert_eq!(r.len(), 2);
    assert!(r[0].attribute("If-None-Match").is_some());
    assert_eq!(r[1].status, Some(304));
    assert!(r[1].body.is_empty());
}

#[test]
fn session_nginx_gzip_chunked() {
    let (s, c) = T.fixture("nginx_gzip_chunked");
    let r = parse_all(&s, &c);
    assert_eq!(r.len(), 2);
    let rsp = &r[1];
    assert_eq!(rsp.attribute("Transfer-Encoding"), Some("chunked"));
    assert_eq!(rsp.attribute("Content-Encoding"), Some("gzip"));
    // The decoded body is the whole gzip member: magic first, ISIZE (RFC 1952) last, which
    // is the size of the 2111-byte file nginx compressed (its ETag says 0x83f).
    assert_eq!(rsp.body.get(..2), Some(&[0x1f, 0x8b][..]));
    let isize_bytes: [u8; 4] = rsp.body[rsp.body.len() - 4..].try_into().expect("4 bytes");
    assert_eq!(u32::from_le_bytes(isize_bytes), 0x83f);
    assert_eq!(rsp.wire_len, c.len() as u64);
}

#[test]
fn session_100_continue_then_final_response() {
    let (s, c) = T.fixture("nginx_100_continue");
    let r = parse_all(&s, &c);
    let kinds: Vec<_> = r.iter().map(|r| (r.kind, r.status)).collect();
    assert_eq!(
        kinds,
        [
            (RecordKind::Request, None),
            (RecordKind::Message, Some(100)),
            (RecordKind::Response, Some(201))
        ]
    );
    assert_eq!(r[0].attribute("Expect"), Some("100-continue"));
    assert_eq!(r[0].body, br#"{"name":"adi","tags":["http1","continue"]}"#);
    assert_eq!(
        r[2].body,
        br#"{"received": {"name": "adi", "tags": ["http1", "continue"]}}"#
    );
}

#[test]
fn session_go_client_repeated_headers() {
    let (s, c) = T.fixture("go_client");
    let r = parse_all(&s, &c);
    assert_eq!(r.len(), 2);
    assert_eq!(values(&r[0], "User-Agent"), ["Go-http-client/1.1"]);
    assert_eq!(values(&r[0], "X-Trace"), ["one", "two"]);
    assert_eq!(r[1].body, INDEX_HTML);
}

#[test]
fn session_python_http_server_http10() {
    let (s, c) = T.fixture("python_http_server");
    let r = parse_all(&s, &c);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].status, Some(200));
    assert!(r[1].raw.starts_with(b"HTTP/1.0 200 OK\r\n"));
    assert_eq!(
        values(&r[1], "Content-type"),
        ["text/html"],
        "names kept as sent"
    );
    assert_eq!(r[1].body, INDEX_HTML);
}

#[test]
fn session_python_chunked_with_trailer() {
    let (s, c) = T.fixture("python_chunked");
    let r = parse_all(&s, &c);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].body, b"hello chunked world\n");
    assert_eq!(r[1].attribute("Trailer"), Some("X-Checksum"));
    assert_eq!(
        r[1].attributes.last(),
        Some(&("X-Checksum".to_owned(), "42".to_owned()))
    );
    assert_eq!(r[1].wire_len, c.len() as u64);
}

#[test]
fn session_python_post_json() {
    let (s, c) = T.fixture("python_post_json");
    let r = parse_all(&s, &c);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].op.as_deref(), r[0].resource.as_deref()),
        (Some("POST"), Some("/echo"))
    );
    assert_eq!(r[0].attribute("Content-Type"), Some("application/json"));
    assert_eq!(r[0].body, br#"{"user": "adi", "ids": [1, 2, 3]}"#);
    assert_eq!(r[1].status, Some(201));
    assert_eq!(
        r[1].body,
        br#"{"received": {"user": "adi", "ids": [1, 2, 3]}}"#
    );
}

#[test]
fn session_pipelined_requests_pair_in_order() {
    let r = parse_all(TO_SERVER_PIPELINED, TO_CLIENT_PIPELINED);
    let summary: Vec<_> = r
        .iter()
        .map(|r| {
            (
                r.kind,
                r.op.as_deref(),
                r.resource.as_deref(),
                r.status,
                r.body.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                RecordKind::Request,
                Some("GET"),
                Some("/index.html"),
                None,
                0
            ),
            (
                RecordKind::Request,
                Some("HEAD"),
                Some("/index.html"),
                None,
                0
            ),
            (RecordKind::Request, Some("GET"), Some("/missing"), None, 0),
            (RecordKind::Response, None, None, Some(200), 59),
            // The HEAD response says Content-Length: 59 and has no body.
            (RecordKind::Response, None, None, Some(200), 0),
            (RecordKind::Response, None, None, Some(404), 153),
        ]
    );
    let total: u64 = r.iter().map(|r| r.wire_len).sum();
    assert_eq!(
        total,
        (TO_SERVER_PIPELINED.len() + TO_CLIENT_PIPELINED.len()) as u64
    );
}

// ---- session edge cases (hand-written) ----

fn parse_one_dir(bytes: &[u8], dir: Direction) -> (Result<usize, ParseError>, Vec<Record>) {
    let mut out = Vec::new();
    let r = Http1Session::default().parse(bytes, dir, &mut out);
    (r, out)
}

#[test]
fn chunk_extensions_and_obs_fold() {
    let req = b"POST /up HTTP/1.1\r\n\
        X-Folded: first\r\n  second\r\n\
        Transfer-Encoding: gzip, chunked\r\n\
        \r\n\
        4;name=value;other\r\nWiki\r\n\
        5 ; ext\r\npedia\r\n\
        0\r\nExpires: never\r\n\r\n";
    let (n, r) = parse_one_dir(req, Direction::ToServer);
    assert_eq!(n, Ok(req.len()));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].body, b"Wikipedia");
    assert_eq!(r[0].attribute("X-Folded"), Some("first second"));
    assert_eq!(r[0].attribute("Expires"), Some("never"));
}

#[test]
fn lf_only_lines_are_tolerated() {
    let (n, r) = parse_one_dir(b"GET / HTTP/1.0\nHost: x\n\n", Direction::ToServer);
    assert_eq!(n, Ok(24));
    assert_eq!(r[0].attribute("host"), Some("x"));
}

#[test]
fn incomplete_head_consumes_nothing() {
    let mut s = Http1Session::default();
    let mut out = Vec::new();
    assert_eq!(
        s.parse(
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            Direction::ToServer,
            &mut out
        ),
        Ok(0)
    );
    assert!(out.is_empty());
}

#[test]
fn large_body_is_streamed_and_capped() {
    const SIZE: usize = 10 * 1024 * 1024;
    let mut s = Http1Session::default();
    let mut out = Vec::new();
    let head = format!("PUT /blob HTTP/1.1\r\nContent-Length: {SIZE}\r\n\r\n");
    assert_eq!(
        s.parse(head.as_bytes(), Direction::ToServer, &mut out),
        Ok(head.len())
    );
    let block = vec![b'z'; 64 * 1024 + 3];
    let mut sent = 0;
    while sent < SIZE {
        let n = block.len().min(SIZE - sent);
        assert_eq!(s.parse(&block[..n], Direction::ToServer, &mut out), Ok(n));
        sent += n;
        assert_eq!(out.is_empty(), sent < SIZE);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body.len(), MAX_BODY_KEPT);
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, (head.len() + SIZE) as u64);
    assert_eq!(out[0].raw, head.as_bytes(), "the head as sent");
}

#[test]
fn a_body_longer_than_the_raw_cap_kept_whole_is_not_truncated() {
    // 5,000 bytes of body: over the 4 KiB of `raw`, under the body cap, and all of it came.
    let body = vec![b'x'; 5000];
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
    let mut s = Http1Session::default();
    let mut out = Vec::new();
    s.parse(b"GET / HTTP/1.1\r\n\r\n", Direction::ToServer, &mut out)
        .expect("request");
    assert_eq!(s.parse(head, Direction::ToClient, &mut out), Ok(head.len()));
    assert_eq!(
        s.parse(&body, Direction::ToClient, &mut out),
        Ok(body.len())
    );
    assert_eq!(out.len(), 2);
    assert_eq!((out[1].body.len(), out[1].truncated), (5000, false));
    assert_eq!(out[1].raw, head);
    assert_eq!(out[1].wire_len, (head.len() + 5000) as u64);
}

#[test]
fn response_without_length_reads_to_close_and_is_emitted_at_finish() {
    let mut s = Http1Session::default();
    let mut out = Vec::new();
    s.parse(b"GET / HTTP/1.0\r\n\r\n", Direction::ToServer, &mut out)
        .expect("request");
    let rsp = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome body";
    assert_eq!(s.parse(rsp, Direction::ToClient, &mut out), Ok(rsp.len()));
    assert_eq!(s.parse(b" more", Direction::ToClient, &mut out), Ok(5));
    assert_eq!(out.len(), 1, "the body ends only at the close");
    s.finish(Direction::ToClient, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].status, Some(200));
    assert_eq!(out[1].body, b"some body more");
    assert!(!out[1].truncated);
    assert_eq!(out[1].wire_len, (rsp.len() + 5) as u64);
}

#[test]
fn gaps_inside_known_length_bodies_are_stepped_over() {
    let mut s = Http1Session::default();
    let mut out = Vec::new();
    // A 10-byte body of which only 4 bytes were captured, then the next request.
    let head = b"POST /u HTTP/1.1\r\nContent-Length: 10\r\n\r\nabcd";
    assert_eq!(s.parse(head, Direction::ToServer, &mut out), Ok(head.len()));
    assert_eq!(s.gap(Direction::ToServer, 6, &mut out), Ok(()));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body, b"abcd");
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, (head.len() + 6) as u64);
    let next = b"GET /n HTTP/1.1\r\n\r\n";
    assert_eq!(s.parse(next, Direction::ToServer, &mut out), Ok(next.len()));
    assert_eq!(out[1].resource.as_deref(), Some("/n"));
    // A gap in the middle of a head cannot be stepped over.
    assert_eq!(s.parse(b"GET /x HT", Direction::ToServer, &mut out), Ok(0));
    assert_eq!(
        s.gap(Direction::ToServer, 3, &mut out),
        Err(ParseError::Gap { len: 3 })
    );
    // Nor a gap longer than the body.
    let mut s = Http1Session::default();
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    s.parse(head, Direction::ToClient, &mut out).expect("head");
    assert!(s.gap(Direction::ToClient, 3, &mut out).is_err());
}

#[test]
fn switching_protocols_stops_at_the_head() {
    let mut s = Http1Session::default();
    let mut out = Vec::new();
    let req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert_eq!(s.parse(req, Direction::ToServer, &mut out), Ok(req.len()));
    // Client bytes after an Upgrade request wait for the answer.
    assert_eq!(
        s.parse(b"\x81\x85abcd", Direction::ToServer, &mut out),
        Ok(0)
    );
    let rsp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    let mut buf = rsp.to_vec();
    buf.extend_from_slice(b"\x81\x05hello");
    assert_eq!(s.parse(&buf, Direction::ToClient, &mut out), Ok(rsp.len()));
    assert_eq!(
        out.iter().map(|r| r.kind).collect::<Vec<_>>(),
        [RecordKind::Request, RecordKind::Switch]
    );
}

#[test]
fn connect_2xx_switches() {
    let mut s = Http1Session::default();
    let mut out = Vec::new();
    let req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    s.parse(req, Direction::ToServer, &mut out)
        .expect("request");
    let rsp = b"HTTP/1.1 200 Connection Established\r\n\r\n";
    let mut buf = rsp.to_vec();
    buf.extend_from_slice(b"\x16\x03\x01\x00\x05");
    assert_eq!(s.parse(&buf, Direction::ToClient, &mut out), Ok(rsp.len()));
    assert_eq!(out[1].kind, RecordKind::Switch);
    assert_eq!(out[1].status, Some(200));
}

#[test]
fn errors() {
    let malformed = |what| Err(ParseError::malformed(HTTP1, what));
    let cases: &[(&[u8], Result<usize, ParseError>)] = &[
        (b"GET foo\r\n", malformed("request line")),
        (b"\x16\x03\x01\x02\x00", malformed("request line")),
        (
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            malformed("header field"),
        ),
        (
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            malformed("header field"),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            malformed("content-length"),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            malformed("content-length"),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            malformed("transfer-encoding"),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            malformed("chunk size"),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            malformed("chunk data end"),
        ),
    ];
    for (bytes, want) in cases {
        let (got, _) = parse_one_dir(bytes, Direction::ToServer);
        // A malformed request may still report how far it got before the bad bytes.
        match (want, &got) {
            (Err(_), Err(_)) => assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(bytes)),
            _ => panic!("{:?}: {got:?}", String::from_utf8_lossy(bytes)),
        }
    }
    let mut huge = b"GET / HTTP/1.1\r\n".to_vec();
    huge.extend(
        std::iter::repeat_n(&b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"[..], 2000).flatten(),
    );
    let (got, _) = parse_one_dir(&huge, Direction::ToServer);
    assert!(
        matches!(
            got,
            Err(ParseError::TooLarge {
                what: "message head",
                ..
            })
        ),
        "{got:?}"
    );
    let (got, _) = parse_one_dir(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
        Direction::ToServer,
    );
    assert!(
        matches!(
            got,
            Err(ParseError::Malformed {
                what: "chunk size",
                ..
            })
        ),
        "{got:?}"
    );
}

// ---- the real engine ----

fn engine_key() -> FlowKey {
    flow_key(8080)
}

#[test]
fn engine_confirms_and_pairs_with_latency() {
    let mut engine = engine_from_inventory();
    let (out, evicted) = feed_engine(
        &mut engine,
        engine_key(),
        &[
            (Direction::ToServer, 1_000, TO_SERVER_PIPELINED),
            (Direction::ToClient, 5_000, TO_CLIENT_PIPELINED),
        ],
    );
    assert!(evicted.is_empty());
    let confirmed: Vec<_> = classifications(&out)
        .into_iter()
        .filter(|c| c.confidence == Confidence::CONFIRMED)
        .collect();
    assert_eq!(confirmed.len(), 1, "{out:#?}");
    assert_eq!(confirmed[0].protocol, HTTP1);
    let records: Vec<_> = flow_records(&out)
        .iter()
        .map(|r| (r.record.kind, r.record.status, r.latency_ns))
        .collect();
    assert_eq!(
        records,
        [
            (RecordKind::Request, None, None),
            (RecordKind::Request, None, None),
            (RecordKind::Request, None, None),
            (RecordKind::Response, Some(200), Some(4_000)),
            (RecordKind::Response, Some(200), Some(4_000)),
            (RecordKind::Response, Some(404), Some(4_000)),
        ]
    );
    assert_eq!(engine.stats().parse_errors, 0);
}

#[test]
fn engine_single_exchange() {
    let mut engine = engine_from_inventory();
    let (out, _) = feed_engine(
        &mut engine,
        engine_key(),
        &[
            (Direction::ToServer, 10, TO_SERVER_NGINX_GET),
            (Direction::ToClient, 25, TO_CLIENT_NGINX_GET),
        ],
    );
    let classified: Vec<_> = classifications(&out)
        .iter()
        .map(|c| (c.protocol, c.confidence))
        .collect();
    assert_eq!(classified.last(), Some(&(HTTP1, Confidence::CONFIRMED)));
    assert_eq!(
        classified
            .iter()
            .filter(|c| c.1 == Confidence::CONFIRMED)
            .count(),
        1
    );
    let latency = flow_records(&out)
        .iter()
        .find(|r| r.record.kind == RecordKind::Response)
        .map(|r| r.latency_ns);
    assert_eq!(latency, Some(Some(15)));
}

#[test]
fn trickled_long_head_and_trailers_stay_linear() {
    // 60 KiB of header fields and 60 KiB of trailer fields, one byte per call: each call must
    // look only at the new bytes, or this takes minutes.
    let pad: Vec<u8> =
        std::iter::repeat_n(&b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"[..], 1500)
            .flatten()
            .copied()
            .collect();
    let mut msg = b"POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n".to_vec();
    msg.extend_from_slice(&pad);
    msg.extend_from_slice(b"\r\n3\r\nabc\r\n0\r\n");
    msg.extend_from_slice(&pad);
    msg.extend_from_slice(b"\r\n");
    let started = std::time::Instant::now();
    let r = T.parse_split(&msg, b"", 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].body, b"abc");
    assert_eq!(r[0].attributes.len(), 1 + 2 * 1500);
    assert_eq!(r[0].wire_len, msg.len() as u64);
}

proptest! {
    /// The head's end found with `memchr` is the first `\n\n` or `\r\n\r\n` ending at or after
    /// `from - 3`, as a plain scan of every byte finds it (bytes drawn from the few that
    /// matter, so that ends, near ends and `from` inside an end are all common).
    #[test]
    fn head_end_is_the_first_empty_line(
        buf in proptest::collection::vec(prop::sample::select(&b"\r\nab"[..]), 0..64),
        from in 0usize..70,
    ) {
        let start = from.saturating_sub(3).min(buf.len());
        let plain = (start..buf.len()).find_map(|at| {
            let ends = buf[at] == b'\n'
                && (buf[..at].ends_with(b"\n") || buf[..at].ends_with(b"\n\r"));
            ends.then_some(at + 1)
        });
        prop_assert_eq!(super::parser::find_head_end(&buf, from), plain);
    }
}
