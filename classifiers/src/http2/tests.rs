//! http2 tests: the probe and the session on real h2c captures (see `fixtures/README.md`),
//! on hand-written frames, on look-alike protocols and on hostile bytes.

use adi_classify::testing::{
    self, flow_records, run_engine, survives_pieces, verdicts, Expect, Subject,
};
use adi_classify::{
    fixtures_path, Confidence, Direction, PortHint, Probe, Record, RecordKind, Session,
};
use proptest::prelude::*;

use super::parser::PREFACE;
use super::session::Http2Session;
use super::{Http2, ID, PROBE_WINDOW};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Http2, fixtures_path!("src/http2/fixtures"));

/// A frame: length u24, type, flags, stream id.
fn frame(frame_type: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = u32::try_from(payload.len()).expect("short").to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[frame_type, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

// ---- probe on real captures ----

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "http2",
    "src/http2/fixtures",
    Confidence::CERTAIN,
    Expect {
        reversed: Expect::BOTH_WAYS,
        reasons: Some([
            "HTTP/2 client preface and SETTINGS",
            "HTTP/2 server SETTINGS and next frame",
        ]),
        prefixes_parse: true,
        paired: true,
        exact_splits: true,
        ..Expect::NONE
    }
);

#[test]
fn probe_needs_more_on_every_prefix_of_the_preface() {
    for len in 1..PREFACE.len() {
        assert_eq!(
            T.probe(&PREFACE[..len], Direction::ToServer),
            Probe::NeedMore,
            "{len}"
        );
    }
    // The preface alone: STRONG; with a frame header that is not SETTINGS: WEAK.
    assert_eq!(
        T.score(PREFACE, Direction::ToServer),
        Confidence::STRONG.get()
    );
    let mut ping = PREFACE.to_vec();
    ping.extend_from_slice(&frame(6, 0, 0, &[0; 8]));
    assert_eq!(T.score(&ping, Direction::ToServer), Confidence::WEAK.get());
    // The split-preface client's bands as its writes arrived: 10, 24 + 5, 33 + 12 bytes.
    let (c, _) = T.fixture("python_split_preface");
    assert_eq!(T.probe(&c[..10], Direction::ToServer), Probe::NeedMore);
    assert_eq!(
        T.score(&c[..29], Direction::ToServer),
        Confidence::STRONG.get()
    );
    assert_eq!(
        T.score(&c[..45], Direction::ToServer),
        Confidence::CERTAIN.get()
    );
}

#[test]
fn probe_bands_on_server_settings() {
    let (_, s) = T.fixture("curl_get");
    for len in 1..9 {
        assert_eq!(
            T.probe(&s[..len], Direction::ToClient),
            Probe::NeedMore,
            "{len}"
        );
    }
    // Header only: WEAK; whole SETTINGS (MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE,
    // MAX_FRAME_SIZE): STRONG; with the WINDOW_UPDATE header after it: CERTAIN.
    assert_eq!(
        T.score(&s[..9], Direction::ToClient),
        Confidence::WEAK.get()
    );
    assert_eq!(
        T.score(&s[..27], Direction::ToClient),
        Confidence::STRONG.get()
    );
    assert_eq!(
        T.score(&s[..36], Direction::ToClient),
        Confidence::CERTAIN.get()
    );
    // An empty SETTINGS frame alone: WEAK; followed by a SETTINGS ACK: STRONG.
    let mut empty = frame(4, 0, 0, &[]);
    assert_eq!(T.score(&empty, Direction::ToClient), Confidence::WEAK.get());
    empty.extend_from_slice(&frame(4, 1, 0, &[]));
    assert_eq!(
        T.score(&empty, Direction::ToClient),
        Confidence::STRONG.get()
    );
}

#[test]
fn server_settings_checks_are_strict() {
    let settings = [0, 3, 0, 0, 0, 100]; // MAX_CONCURRENT_STREAMS 100
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (frame(4, 0, 1, &settings), "stream 1"),
        (frame(4, 0, 0x8000_0000, &settings), "reserved bit set"),
        (frame(4, 1, 0, &settings), "ACK with a payload"),
        (frame(4, 0, 0, &settings[..5]), "length not a multiple of 6"),
        (frame(1, 4, 0, &settings), "HEADERS type"),
        (frame(4, 0, 0, &[0, 2, 0, 0, 0, 7]), "ENABLE_PUSH 7"),
        (frame(4, 0, 0, &[0, 0, 0, 0, 0, 1]), "identifier 0"),
        (
            [frame(4, 0, 0, &settings), frame(6, 0, 0, &[0; 4])].concat(),
            "PING of 4 bytes next",
        ),
        (
            [frame(4, 0, 0, &settings), frame(8, 0, 0, &[0; 5])].concat(),
            "WINDOW_UPDATE of 5 next",
        ),
        (
            vec![0x00, 0x41, 0x00, 4, 0, 0, 0, 0, 0],
            "length 0x4100 > 2^14",
        ),
    ];
    for (bytes, what) in cases {
        assert_eq!(
            T.probe(&bytes, Direction::ToClient),
            Probe::NoMatch,
            "{what}"
        );
    }
    // Unknown identifiers are allowed (RFC 9113 section 6.5.2) but weaker evidence.
    let unknown = frame(4, 0, 0, &[0x0a, 0x0a, 0, 0, 0, 1]);
    assert_eq!(
        T.score(&unknown, Direction::ToClient),
        Confidence::WEAK.get()
    );
}

#[test]
fn look_alikes_are_rejected() {
    T.assert_below(
        Confidence::REPORT,
        &[
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PRI * HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            // TLS ClientHello record header
            &[22, 3, 1, 0, 0xc8, 1, 0, 0, 0xc4, 3, 3],
            // TDS PRELOGIN: type 0x12, status 1, length 0x002f
            &[0x12, 0x01, 0x00, 0x2f, 0x00, 0x00, 0x01, 0x00, 0x00],
            // TDS tabular result: type 4, status 1, length 0x0030
            &[0x04, 0x01, 0x00, 0x30, 0x00, 0x00, 0x01, 0x00, 0xaa],
            // MongoDB reply header: length 0x24 little endian, ids, opCode 1
            &[0x24, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0],
            // Kafka responses: size 0x0604, correlation id 0, error code 0; size 0x0c, id 7
            &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0, 0, 0, 0x0c, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0],
            // Postgres StartupMessage: length 0x0000004f, protocol 3.0
            &[0, 0, 0, 0x4f, 0, 3, 0, 0, b'u', b's', b'e', b'r', 0],
            // Redis RESP array
            b"*1\r\n$4\r\nPING\r\n",
        ],
    );
}

#[test]
fn http1_does_not_take_the_preface() {
    let http1 = testing::registration("http1");
    let (c, _) = T.fixture("curl_get");
    for len in 1..=c.len() {
        assert!(
            !matches!(
                http1
                    .classifier
                    .probe(&c[..len], Direction::ToServer, PortHint::NONE),
                Probe::Match(_)
            ),
            "http1 matched {len} bytes of the h2 preface"
        );
    }
}

// ---- session on real captures ----

/// (kind, op or status, resource, exchange, body) of a record.
fn exchange(r: &Record) -> (RecordKind, String, Option<&str>, Option<u64>, String) {
    let op =
        r.op.clone()
            .or_else(|| r.status.map(|s| s.to_string()))
            .unwrap_or_default();
    (
        r.kind,
        op,
        r.resource.as_deref(),
        r.exchange,
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

#[test]
fn session_decodes_curl_get() {
    let (c, s) = T.fixture("curl_get");
    let out = T.parse_all(&c, &s);
    assert_eq!(
        testing::summaries(&out),
        [
            testing::summary(
                RecordKind::Request,
                "GET",
                Some("/index.html"),
                None,
                &[
                    (":scheme", "http"),
                    (":authority", "127.0.0.1:56367"),
                    ("user-agent", "curl/7.88.1"),
                    ("accept", "*/*")
                ]
            ),
            testing::summary(
                RecordKind::Response,
                "",
                None,
                Some(200),
                &[
                    ("server", "nginx/1.22.1"),
                    ("date", "Sun, 22 Nov 2026 02:28:38 GMT"),
                    ("content-type", "text/html"),
                    ("content-length", "57"),
                    ("last-modified", "Sun, 22 Nov 2026 02:28:37 GMT"),
                    ("etag", "\"6b025355-39\""),
                    ("accept-ranges", "bytes")
                ]
            ),
        ]
    );
    assert_eq!((out[0].exchange, out[1].exchange), (Some(1), Some(1)));
    assert_eq!(out[0].wire_len, 40);
    // HEADERS (9 + 106) and DATA (9 + 57) of the response.
    assert_eq!(out[1].wire_len, 181);
    assert_eq!(
        out[1].body,
        b"<!doctype html>\n<title>adi</title>\n<p>hello over h2c</p>\n"
    );
}

#[test]
fn session_decodes_curl_post_with_huffman_path_and_body() {
    let (c, s) = T.fixture("curl_post");
    let out = T.parse_all(&c, &s);
    let got: Vec<_> = out.iter().map(exchange).collect();
    let (post, created) = ("POST".to_owned(), "201".to_owned());
    assert_eq!(
        got,
        vec![
            // :path /echo is Huffman-coded by curl
            (
                RecordKind::Request,
                post,
                Some("/echo"),
                Some(1),
                r#"{"name":"adi","tags":["http2","h2c"]}"#.to_owned()
            ),
            (
                RecordKind::Response,
                created,
                None,
                Some(1),
                "created\n".to_owned()
            ),
            (
                RecordKind::Message,
                "RST_STREAM".to_owned(),
                None,
                None,
                String::new()
            ),
        ]
    );
}

#[test]
fn session_pairs_two_streams_and_reads_the_dynamic_table() {
    let (c, s) = T.fixture("python_split_preface");
    let out = T.parse_all(&c, &s);
    let got: Vec<_> = out.iter().map(exchange).collect();
    let text = |s: &str| s.to_owned();
    assert_eq!(
        got[..3],
        [
            (
                RecordKind::Request,
                text("GET"),
                Some("/"),
                Some(1),
                String::new()
            ),
            (
                RecordKind::Request,
                text("GET"),
                Some("/missing"),
                Some(3),
                String::new()
            ),
            (
                RecordKind::Message,
                text("GOAWAY"),
                None,
                None,
                String::new()
            ),
        ]
    );
    assert_eq!(
        (got[3].0, got[3].1.as_str(), got[3].3),
        (RecordKind::Response, "200", Some(1))
    );
    assert_eq!(
        (got[4].0, got[4].1.as_str(), got[4].3),
        (RecordKind::Response, "404", Some(3))
    );
    // Stream 3's :authority is a dynamic-table reference to stream 1's literal.
    assert_eq!(out[1].attribute(":authority"), Some("127.0.0.1:56367"));
}

// ---- the real engine ----

#[test]
fn engine_prefers_http2_on_http1s_port() {
    let (c, s) = T.fixture("curl_decoy_8080");
    let steps = [
        (Direction::ToServer, 1_000, &c[..]),
        (Direction::ToClient, 3_000, &s),
    ];
    let (_, out) = run_engine(8080, &steps);
    let classified = verdicts(&out);
    assert!(classified.iter().all(|c| c.0 == ID), "{classified:?}");
    assert_eq!(classified.last().map(|c| c.1), Some(Confidence::CONFIRMED));
    let records = flow_records(&out);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].record.status, Some(404));
    assert_eq!(records[1].latency_ns, Some(2_000));
}

// ---- hand-written edge cases ----

#[test]
fn trailers_informational_and_push_are_messages() {
    let mut to_server = PREFACE.to_vec();
    to_server.extend_from_slice(&frame(4, 0, 0, &[])); // empty SETTINGS
    to_server.extend_from_slice(&frame(1, 0x4, 1, &[0x83, 0x86, 0x84])); // POST http / (END_HEADERS)
    to_server.extend_from_slice(&frame(0, 0, 1, b"body")); // DATA
    to_server.extend_from_slice(&frame(1, 0x5, 1, &[0x40, 1, b'x', 1, b'y'])); // trailers x: y
    let mut to_client = frame(4, 0, 0, &[]);
    // :status 100 as a literal without indexing (name index 8), END_HEADERS
    to_client.extend_from_slice(&frame(1, 0x4, 1, &[0x08, 3, b'1', b'0', b'0']));
    // PUSH_PROMISE on stream 1 promising stream 2 with :path /style.css (literal, name index 4)
    let mut promise = vec![0, 0, 0, 2, 0x82, 0x04, 10];
    promise.extend_from_slice(b"/style.css");
    to_client.extend_from_slice(&frame(5, 0x4, 1, &promise));
    // PADDED | PRIORITY | END_STREAM HEADERS: pad length 2, dependency + weight, :status 200,
    // padding
    to_client.extend_from_slice(&frame(
        1,
        0x4 | 0x8 | 0x20 | 0x1,
        1,
        &[2, 0, 0, 0, 0, 16, 0x88, 0, 0],
    ));
    // the pushed response on stream 2: :status 200
    to_client.extend_from_slice(&frame(1, 0x5, 2, &[0x88]));
    // RST_STREAM CANCEL (8) on stream 2; GOAWAY last stream 1, ENHANCE_YOUR_CALM with debug data
    to_client.extend_from_slice(&frame(3, 0, 2, &[0, 0, 0, 8]));
    to_client.extend_from_slice(&frame(
        7,
        0,
        0,
        &[0, 0, 0, 1, 0, 0, 0, 0x0b, b'c', b'a', b'l', b'm'],
    ));
    let out = T.parse_all(&to_server, &to_client);
    let got: Vec<_> = out
        .iter()
        .map(|r| (r.kind, r.op.as_deref().unwrap_or_default(), r.status))
        .collect();
    assert_eq!(
        got,
        vec![
            // the request, sent when its trailers end the stream
            (RecordKind::Request, "POST", None),
            (RecordKind::Message, "HEADERS", Some(100)), // informational
            (RecordKind::Message, "PUSH_PROMISE", None),
            (RecordKind::Response, "", Some(200)), // the real response, padded
            (RecordKind::Message, "HEADERS", Some(200)), // pushed response (even stream)
            (RecordKind::Message, "RST_STREAM", Some(8)),
            (RecordKind::Message, "GOAWAY", Some(11)),
        ]
    );
    assert_eq!(out[0].resource.as_deref(), Some("/"));
    assert_eq!(out[0].body, b"body");
    assert_eq!(
        out[0].attribute("x"),
        Some("y"),
        "trailers follow the headers"
    );
    assert_eq!(out[3].exchange, Some(1));
    assert_eq!(out[2].resource.as_deref(), Some("/style.css"));
    assert_eq!(out[2].attribute("promised_stream"), Some("2"));
    assert_eq!(out[5].attribute("error"), Some("CANCEL"));
    assert_eq!(out[6].attribute("error"), Some("ENHANCE_YOUR_CALM"));
    assert_eq!(out[6].resource.as_deref(), Some("calm"));
    assert_eq!(out[6].attribute("streams"), Some("1"));
}

#[test]
fn large_data_frames_are_consumed_as_they_arrive() {
    let mut to_client = frame(4, 0, 0, &[]);
    let big = vec![0x61; 100_000];
    // A 100 000-byte DATA frame (allowed after SETTINGS_MAX_FRAME_SIZE was raised).
    to_client.extend_from_slice(&frame(0, 1, 1, &big));
    let mut session = Http2Session::default();
    let mut out = Vec::new();
    let mut consumed = 0;
    for piece in to_client.chunks(4096) {
        // Every piece is consumed entirely: nothing is buffered.
        let n = session
            .parse(piece, Direction::ToClient, &mut out)
            .expect("parse");
        assert_eq!(n, piece.len());
        consumed += n;
    }
    assert_eq!(consumed, to_client.len());
    // One response: its first MAX_BODY_KEPT bytes kept, its size whole.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RecordKind::Response);
    assert_eq!(out[0].body.len(), super::session::MAX_BODY_KEPT);
    assert!(out[0].truncated);
    assert_eq!(out[0].wire_len, 100_009);
}

#[test]
fn session_rejects_non_http2() {
    let mut session = Http2Session::default();
    // A SETTINGS frame on stream 5 breaks RFC 9113 section 6.5.
    assert!(session
        .parse(&frame(4, 0, 5, &[]), Direction::ToClient, &mut Vec::new())
        .is_err());
    // Bad padding: pad length 200 in a 3-byte HEADERS payload.
    let mut session = Http2Session::default();
    let bytes = frame(1, 0x8 | 0x4, 1, &[200, 0x82, 0x84]);
    assert!(session
        .parse(&bytes, Direction::ToServer, &mut Vec::new())
        .is_err());
    // A good frame then a bad one: the good one is consumed first.
    let mut bytes = frame(8, 0, 0, &[0, 0, 1, 0]);
    bytes.extend_from_slice(&frame(6, 0, 0, &[0; 3]));
    T.assert_error_after(&bytes, Direction::ToClient, 13);
}

#[test]
fn probe_reads_at_most_the_window() {
    let (c, _) = T.fixture("curl_get");
    let mut long = c.clone();
    long.resize(PROBE_WINDOW * 8, 0xee);
    assert_eq!(
        T.score(&long, Direction::ToServer),
        Confidence::CERTAIN.get()
    );
}

proptest! {
    #[test]
    fn proptest_frames_then_noise_never_panic(
        prefix in prop::sample::select(vec![
            PREFACE.to_vec(),
            frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]),
            frame(1, 0x4, 1, &[0x82, 0x84]),
            [PREFACE.to_vec(), frame(1, 0x2c, 1, &[])].concat(),
        ]),
        noise in proptest::collection::vec(any::<u8>(), 0..600),
        split in 1usize..64,
    ) {
        let mut buf = prefix.clone();
        buf.extend_from_slice(&noise);
        for dir in [Direction::ToServer, Direction::ToClient] {
            prop_assert!(survives_pieces(&Http2, &buf, dir, split));
        }
    }

    #[test]
    fn proptest_header_blocks_never_panic(block in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Any bytes as a HEADERS block, after a real start: decoded or marked unknown.
        let mut buf = PREFACE.to_vec();
        buf.extend_from_slice(&frame(4, 0, 0, &[]));
        buf.extend_from_slice(&frame(1, 0x5, 1, &block));
        let mut out = Vec::new();
        let _ = Http2Session::default().parse(&buf, Direction::ToServer, &mut out);
    }
}

// ---- header blocks: CONTINUATION, size limits, table updates, joining mid-stream ----

/// A request's header block, HPACK-encoded by the same crate the session decodes with.
fn request_block(path: &str, extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", path.as_bytes()),
        (b":authority", b"api.example"),
    ];
    fields.extend_from_slice(extra);
    loona_hpack::Encoder::new().encode(fields)
}

#[test]
fn continuation_frames_make_one_header_block() {
    let block = request_block("/orders/7?expand=items", &[(b"x-trace", b"abc")]);
    let (a, rest) = block.split_at(5);
    let (b, c) = rest.split_at(7);
    let mut to_server = PREFACE.to_vec();
    to_server.extend_from_slice(&frame(4, 0, 0, &[]));
    to_server.extend_from_slice(&frame(1, 0x1, 1, a)); // HEADERS, END_STREAM, no END_HEADERS
    to_server.extend_from_slice(&frame(9, 0, 1, b)); // CONTINUATION
    to_server.extend_from_slice(&frame(9, 0x4, 1, c)); // CONTINUATION, END_HEADERS
    let out = T.parse_all(&to_server, &[]);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].op.as_deref(), Some("GET"));
    assert_eq!(out[0].resource.as_deref(), Some("/orders/7?expand=items"));
    assert_eq!(out[0].attribute("x-trace"), Some("abc"));
    assert_eq!(out[0].wire_len, (3 * 9 + block.len()) as u64);
    // A CONTINUATION without its HEADERS is not HTTP/2.
    let mut bad = PREFACE.to_vec();
    bad.extend_from_slice(&frame(9, 0x4, 1, c));
    assert!(T.parse_fails(&bad, Direction::ToServer));
}

#[test]
fn huge_header_blocks_are_bounded() {
    // A 20 KiB value in a block split over CONTINUATIONs of 16 KiB: decoded, value cut.
    let big = vec![b'v'; 20 * 1024];
    let block = request_block("/big", &[(b"x-big", &big)]);
    let mut to_server = PREFACE.to_vec();
    let mut chunks = block.chunks(16 * 1024).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let (t, end) = if first { (1, 0x1) } else { (9, 0) };
        to_server.extend_from_slice(&frame(t, end | if last { 0x4 } else { 0 }, 1, chunk));
        first = false;
    }
    let out = T.parse_all(&to_server, &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resource.as_deref(), Some("/big"));
    assert_eq!(
        out[0].attribute("x-big").map(str::len),
        Some(super::session::MAX_VALUE)
    );
    // A block beyond MAX_HEADER_BLOCK (over many CONTINUATIONs) is not kept: its request is
    // reported without fields, and the table is unknown from then on.
    let huge = vec![b'w'; super::session::MAX_HEADER_BLOCK + 1];
    let block = request_block("/huge", &[(b"x-huge", &huge)]);
    let mut to_server = PREFACE.to_vec();
    for (i, chunk) in block.chunks(16 * 1024).enumerate() {
        let t = if i == 0 { 1 } else { 9 };
        let end = if (i + 1) * 16 * 1024 >= block.len() {
            0x4
        } else {
            0
        };
        to_server.extend_from_slice(&frame(t, end | u8::from(i == 0), 1, chunk));
    }
    let out = T.parse_all(&to_server, &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resource, None);
    assert_eq!(
        out[0].attribute(":hpack"),
        Some(super::session::TABLE_UNKNOWN)
    );
}

#[test]
fn a_table_size_update_empties_the_table_and_is_followed() {
    let mut to_server = PREFACE.to_vec();
    to_server.extend_from_slice(&frame(4, 0, 0, &[]));
    // Block 1: :method GET (static 2), :path / (static 4), then x-a: 1 as a literal with
    // incremental indexing (new name): the table now holds x-a: 1 at index 62.
    let mut block = vec![0x82, 0x84, 0x40, 3];
    block.extend_from_slice(b"x-a");
    block.extend_from_slice(&[1, b'1']);
    to_server.extend_from_slice(&frame(1, 0x5, 1, &block));
    // Block 2: :method GET, :path /, x-a from the table (index 62 = 0xbe).
    to_server.extend_from_slice(&frame(1, 0x5, 3, &[0x82, 0x84, 0xbe]));
    // Block 3: a size update to 0 (0x20) empties the table; index 62 then does not exist.
    to_server.extend_from_slice(&frame(1, 0x5, 5, &[0x20, 0x82, 0x84, 0xbe]));
    // Block 4: plain static fields; the table is no longer trusted, so not decoded.
    to_server.extend_from_slice(&frame(1, 0x5, 7, &[0x82, 0x84]));
    let out = T.parse_all(&to_server, &[]);
    let got: Vec<_> = out
        .iter()
        .map(|r| (r.exchange, r.attribute("x-a"), r.attribute(":hpack")))
        .collect();
    let unknown = Some(super::session::TABLE_UNKNOWN);
    assert_eq!(
        got,
        [
            (Some(1), Some("1"), None),
            (Some(3), Some("1"), None),
            (Some(5), None, unknown),
            (Some(7), None, unknown),
        ]
    );
}

#[test]
fn a_connection_joined_mid_stream_is_never_mis_decoded() {
    // The server's side starts with a response HEADERS (no SETTINGS first): the encoder's
    // table is unknown. 0xbe would be a dynamic entry; 0x88 is :status 200.
    let to_client = [frame(1, 0x4, 5, &[0x88, 0xbe]), frame(0, 0x1, 5, b"{}")].concat();
    // The client's side starts with a HEADERS frame, not the preface.
    let to_server = frame(1, 0x5, 7, &[0x82, 0x84]);
    let out = T.parse_all(&to_server, &to_client);
    assert_eq!(out.len(), 2, "{out:#?}");
    for r in &out {
        assert_eq!(r.attribute(":hpack"), Some(super::session::TABLE_UNKNOWN));
        assert_eq!((r.op.as_deref(), r.status), (None, None), "nothing guessed");
    }
    assert_eq!(out[0].kind, RecordKind::Request);
    assert_eq!(
        (out[1].kind, out[1].body.as_slice()),
        (RecordKind::Response, &b"{}"[..])
    );
}
