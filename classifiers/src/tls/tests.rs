//! tls tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written edge cases, on look-alike protocols and on hostile bytes.

use adi_classify::testing::{
    self, flow_records, run_engine, survives_pieces, verdicts, Expect, Subject,
};
use adi_classify::{fixtures_path, Confidence, Direction, Probe, RecordKind, Session};
use proptest::prelude::*;

use super::parser::HELLO_RETRY_REQUEST_RANDOM;
use super::session::TlsSession;
use super::{Tls, ID, PROBE_WINDOW};

/// The classifier under test and its fixtures.
const T: Subject = Subject::new(&Tls, fixtures_path!("src/tls/fixtures"));

// ---- probe on real captures ----

// Fixtures, their prefixes and splits, random bytes, confusion with the other classifiers.
adi_classify::conformance_tests!(
    "tls",
    "src/tls/fixtures",
    Confidence::CERTAIN,
    Expect {
        reversed: Expect::BOTH_WAYS,
        reasons: Some(["TLS ClientHello", "TLS ServerHello"]),
        prefixes_parse: true,
        ..Expect::NONE
    }
);

#[test]
fn probe_bands_on_a_split_client_hello() {
    // The Python client wrote its ClientHello as 3 + 4 + rest bytes.
    let (hello, _) = T.fixture("python_split_hello");
    // Part of the record header, then the record header and part of the handshake header.
    assert_eq!(T.probe(&hello[..3], Direction::ToServer), Probe::NeedMore);
    assert_eq!(T.probe(&hello[..7], Direction::ToServer), Probe::NeedMore);
    assert_eq!(T.probe(&hello[..10], Direction::ToServer), Probe::NeedMore);
    // Record header + handshake header + legacy_version: STRONG.
    assert_eq!(
        T.score(&hello[..11], Direction::ToServer),
        Confidence::STRONG.get()
    );
    assert_eq!(
        T.score(&hello[..200], Direction::ToServer),
        Confidence::STRONG.get()
    );
    assert_eq!(
        T.score(&hello, Direction::ToServer),
        Confidence::CERTAIN.get()
    );
}

#[test]
fn probe_reads_at_most_the_window() {
    let (hello, _) = T.fixture("go_client_h2");
    let mut long = hello.clone();
    long.resize(PROBE_WINDOW * 4, 0xee);
    assert_eq!(
        T.score(&long, Direction::ToServer),
        Confidence::CERTAIN.get()
    );
}

// ---- session on real captures ----

#[test]
fn session_summarises_curl_tls13_h2_without_sni() {
    let (c, s) = T.fixture("curl_h2_tls13_443");
    let out = T.parse_all(&c, &s);
    assert_eq!(
        testing::summaries(&out),
        [
            testing::summary(
                RecordKind::Request,
                "ClientHello",
                None, // curl sends no SNI for an IP address (RFC 6066 section 3)
                None,
                &[
                    ("version", "TLS 1.3"),
                    ("alpn", "h2"),
                    ("alpn", "http/1.1"),
                    ("cipher_suites", "4")
                ]
            ),
            testing::summary(
                RecordKind::Response,
                "ServerHello",
                None,
                None,
                &[("version", "TLS 1.3"), ("cipher", "TLS_AES_256_GCM_SHA384")]
            ),
        ]
    );
    assert_eq!(out[0].wire_len, 238);
    assert_eq!(out[1].wire_len, 122);
}

#[test]
fn session_summarises_openssl_tls12_with_server_alpn() {
    let (c, s) = T.fixture("openssl_tls12");
    let out = T.parse_all(&c, &s);
    assert_eq!(
        testing::summaries(&out),
        [
            testing::summary(
                RecordKind::Request,
                "ClientHello",
                Some("ossl.example"),
                None,
                &[
                    ("version", "TLS 1.2"),
                    ("alpn", "http/1.1"),
                    ("cipher_suites", "28")
                ]
            ),
            testing::summary(
                RecordKind::Response,
                "ServerHello",
                None,
                None,
                &[
                    ("version", "TLS 1.2"),
                    ("cipher", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
                    ("alpn", "http/1.1")
                ]
            ),
        ]
    );
}

#[test]
fn session_summarises_every_fixture() {
    let expect: &[(&str, Option<&str>, &str, &str)] = &[
        // name, SNI, offered version, selected cipher
        (
            "curl_http11_tls12_8443",
            None,
            "TLS 1.2",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
        (
            "go_client_h2",
            Some("go.example"),
            "TLS 1.3",
            "TLS_AES_128_GCM_SHA256",
        ),
        (
            "openssl_decoy",
            Some("ossl.example"),
            "TLS 1.3",
            "TLS_AES_256_GCM_SHA384",
        ),
        (
            "openssl_tls13",
            Some("ossl.example"),
            "TLS 1.3",
            "TLS_AES_256_GCM_SHA384",
        ),
        (
            "python_split_hello",
            Some("split.example"),
            "TLS 1.3",
            "TLS_AES_256_GCM_SHA384",
        ),
    ];
    for &(name, sni, version, cipher) in expect {
        let (c, s) = T.fixture(name);
        let out = T.parse_all(&c, &s);
        assert_eq!(out.len(), 2, "{name}: {out:?}");
        assert_eq!(out[0].kind, RecordKind::Request, "{name}");
        assert_eq!(out[0].resource.as_deref(), sni, "{name}");
        assert_eq!(out[0].attribute("version"), Some(version), "{name}");
        assert_eq!(out[1].kind, RecordKind::Response, "{name}");
        assert_eq!(out[1].attribute("cipher"), Some(cipher), "{name}");
        // Split writes give the same records.
        for size in [1, 3, 7, 100] {
            assert_eq!(
                T.parse_split(&c, &s, size),
                out,
                "{name} in {size}-byte writes"
            );
        }
    }
}

// ---- the real engine ----

#[test]
fn engine_confirms_and_pairs_the_hellos() {
    let (c, s) = T.fixture("curl_h2_tls13_443");
    let steps = [
        (Direction::ToServer, 1_000, &c[..]),
        (Direction::ToClient, 5_000, &s),
    ];
    let (_, out) = run_engine(443, &steps);
    assert_eq!(verdicts(&out).last(), Some(&(ID, Confidence::CONFIRMED)));
    let records = flow_records(&out);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].latency_ns, Some(4_000));
}

// ---- hand-written edge cases ----

/// A minimal TLS 1.3 ServerHello record whose random is `random`.
fn server_hello(random: [u8; 32]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03]; // legacy_version TLS 1.2
    body.extend_from_slice(&random); // random
    body.push(0); // legacy_session_id_echo: empty
    body.extend_from_slice(&[0x13, 0x02]); // cipher_suite TLS_AES_256_GCM_SHA384
    body.push(0); // legacy_compression_method: null
    body.extend_from_slice(&[0x00, 0x06]); // extensions length 6
    body.extend_from_slice(&[0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]); // supported_versions: TLS 1.3
    let mut record = vec![22, 0x03, 0x03]; // handshake, TLS 1.2 record version
    record.extend_from_slice(&u16::try_from(body.len() + 4).expect("short").to_be_bytes());
    record.push(2); // msg_type ServerHello
    record.extend_from_slice(&u32::try_from(body.len()).expect("short").to_be_bytes()[1..]);
    record.extend_from_slice(&body);
    record
}

#[test]
fn hello_retry_request_then_second_client_hello() {
    let (hello, _) = T.fixture("openssl_tls13");
    let first_record = 5 + usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    let client_hello = &hello[..first_record];
    // ClientHello, then ChangeCipherSpec (a TLS 1.3 compatibility dummy), then ClientHello.
    let mut to_server = client_hello.to_vec();
    to_server.extend_from_slice(&[20, 0x03, 0x03, 0x00, 0x01, 0x01]);
    to_server.extend_from_slice(client_hello);
    let mut to_client = server_hello(HELLO_RETRY_REQUEST_RANDOM);
    to_client.extend_from_slice(&server_hello([7; 32]));
    let mut session = TlsSession::default();
    let mut out = Vec::new();
    // In wire order: CH1, HRR, CCS + CH2, SH.
    let n = session
        .parse(client_hello, Direction::ToServer, &mut out)
        .expect("ch1");
    assert_eq!(n, client_hello.len());
    let hrr_len = server_hello(HELLO_RETRY_REQUEST_RANDOM).len();
    let n = session
        .parse(&to_client[..hrr_len], Direction::ToClient, &mut out)
        .expect("hrr");
    assert_eq!(n, hrr_len);
    let rest = &to_server[client_hello.len()..];
    assert_eq!(
        session
            .parse(rest, Direction::ToServer, &mut out)
            .expect("ch2"),
        rest.len()
    );
    let rest = &to_client[hrr_len..];
    assert_eq!(
        session
            .parse(rest, Direction::ToClient, &mut out)
            .expect("sh"),
        rest.len()
    );
    assert_eq!(
        testing::ops(&out),
        vec![
            (RecordKind::Request, "ClientHello"),
            (RecordKind::Response, "HelloRetryRequest"),
            (RecordKind::Request, "ClientHello"),
            (RecordKind::Response, "ServerHello"),
        ]
    );
    assert_eq!(out[3].attribute("version"), Some("TLS 1.3"));
    assert_eq!(
        T.score(&server_hello([7; 32]), Direction::ToClient),
        Confidence::CERTAIN.get()
    );
}

#[test]
fn plaintext_alert_is_a_message() {
    let (hello, _) = T.fixture("openssl_tls12");
    // alert record: type 21, TLS 1.2, length 2, level fatal (2), handshake_failure (40)
    let alert = [21, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
    let out = T.parse_all(&hello, &alert);
    let last = out.last().expect("alert");
    assert_eq!(last.kind, RecordKind::Message);
    assert_eq!(last.op.as_deref(), Some("Alert"));
    assert_eq!(last.status, Some(40));
    assert_eq!(last.attribute("level"), Some("fatal"));
    assert_eq!(last.attribute("description"), Some("handshake_failure"));
}

/// An SSL 2.0-compatible CLIENT-HELLO (RFC 5246 appendix E.2).
const V2_HELLO: &[u8] = &[
    0x80, 0x2e, // length 46, high bit set (2-byte header)
    0x01, // msg_type CLIENT-HELLO
    0x03, 0x01, // version TLS 1.0
    0x00, 0x15, // cipher_spec_length 21 (7 specs of 3 bytes)
    0x00, 0x00, // session_id_length 0
    0x00, 0x10, // challenge_length 16
    0x00, 0x00, 0x39, 0x00, 0x00, 0x38, 0x00, 0x00, 0x35, 0x00, 0x00, 0x33, 0x00, 0x00, 0x32, 0x00,
    0x00, 0x2f, 0x01, 0x00, 0x80, // cipher specs
    0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    0xb0, // challenge
];

#[test]
fn sslv2_compatible_hello_is_weak() {
    assert_eq!(
        T.score(V2_HELLO, Direction::ToServer),
        Confidence::WEAK.get()
    );
    for len in 1..V2_HELLO.len().min(11) {
        assert_eq!(
            T.probe(&V2_HELLO[..len], Direction::ToServer),
            Probe::NeedMore,
            "{len}"
        );
    }
    // The lengths must add up: a challenge of 15 bytes is not allowed.
    let mut bad = V2_HELLO.to_vec();
    bad[10] = 0x0f;
    assert_eq!(T.probe(&bad, Direction::ToServer), Probe::NoMatch);
    // Followed by TLS records, the session reads both.
    let mut stream = V2_HELLO.to_vec();
    stream.extend_from_slice(&[22, 0x03, 0x01, 0x00, 0x04, 16, 0, 0, 0]); // ClientKeyExchange
    stream.extend_from_slice(&[20, 0x03, 0x01, 0x00, 0x01, 0x01]); // ChangeCipherSpec
    let out = T.parse_all(&stream, &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].op.as_deref(), Some("ClientHello"));
    assert_eq!(out[0].attribute("version"), Some("SSL 2.0-compatible"));
    assert_eq!(out[0].attribute("legacy_version"), Some("TLS 1.0"));
}

#[test]
fn mid_stream_records_are_weak() {
    let mut records = vec![23, 0x03, 0x03, 0x00, 0x03, 1, 2, 3]; // application data, 3 bytes
    assert_eq!(T.probe(&records, Direction::ToClient), Probe::NeedMore);
    records.extend_from_slice(&[23, 0x03, 0x03, 0x00, 0x02, 4, 5]); // another one
    assert_eq!(
        T.score(&records, Direction::ToClient),
        Confidence::WEAK.get()
    );
    // A version change between records is not TLS.
    let mut mixed = records.clone();
    mixed[8 + 2] = 0x01; // the second record's version: 0x0301
    assert_eq!(T.probe(&mixed, Direction::ToClient), Probe::NoMatch);
    // One record longer than the window: WEAK once the window is full.
    let mut big = vec![23, 0x03, 0x03, 0x40, 0x00];
    big.resize(PROBE_WINDOW, 0x5a);
    assert_eq!(T.score(&big, Direction::ToServer), Confidence::WEAK.get());
    assert_eq!(T.probe(&big[..100], Direction::ToServer), Probe::NeedMore);
    // The session consumes them unread.
    assert!(T.parse_all(&records, &big).is_empty());
}

#[test]
fn inconsistent_handshake_headers_stay_below_report() {
    let cases: &[(&[u8], &str)] = &[
        // record ok, handshake length 1: shorter than any ClientHello
        (&[22, 3, 1, 0, 5, 1, 0, 0, 1, 3, 3], "tiny hello"),
        // handshake type 11 (Certificate) cannot start a connection
        (
            &[22, 3, 1, 0, 0x40, 11, 0, 0, 0x3c, 3, 3],
            "certificate first",
        ),
        // record length 0x5000 > 2^14 for a plaintext record
        (
            &[22, 3, 1, 0x50, 0, 1, 0, 0x4f, 0xfc, 3, 3],
            "record too long",
        ),
        // legacy_version 0x0304 in the hello (TLS 1.3 puts 0x0303 there)
        (
            &[22, 3, 1, 0, 0x40, 1, 0, 0, 0x3c, 3, 4],
            "hello version 1.3",
        ),
        // record version 0x0307
        (&[22, 3, 7, 0, 0x40, 1, 0, 0, 0x3c, 3, 3], "record version"),
        // uint24 length 0x030000: larger than any hello
        (&[22, 3, 1, 0, 0x40, 1, 3, 0, 0, 3, 3], "hello too long"),
    ];
    for (bytes, what) in cases {
        assert_eq!(
            T.probe(bytes, Direction::ToServer),
            Probe::NoMatch,
            "{what}"
        );
    }
    // A consistent header with a body that does not parse (session id length 33).
    let (hello, _) = T.fixture("openssl_tls13");
    let mut bad = hello.clone();
    bad[5 + 4 + 2 + 32] = 33;
    assert_eq!(T.probe(&bad, Direction::ToServer), Probe::NoMatch);
    // An extensions block length one byte longer than the body.
    let mut bad = hello.clone();
    let sid = 5 + 4 + 2 + 32;
    let suites = sid + 1 + usize::from(bad[sid]);
    let compression = suites + 2 + usize::from(u16::from_be_bytes([bad[suites], bad[suites + 1]]));
    let ext = compression + 1 + usize::from(bad[compression]);
    let len = u16::from_be_bytes([bad[ext], bad[ext + 1]]) + 1;
    bad[ext..ext + 2].copy_from_slice(&len.to_be_bytes());
    assert_eq!(T.probe(&bad, Direction::ToServer), Probe::NoMatch);
}

#[test]
fn look_alikes_are_rejected() {
    let cases: &[&[u8]] = &[
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // TDS PRELOGIN: type 0x12, status 1, length 0x002f, spid, packet id, window
        &[
            0x12, 0x01, 0x00, 0x2f, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1a,
        ],
        // MongoDB OP_MSG header: length 0x16 little endian, request id, response to, 2013
        &[0x16, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0],
        // Kafka request: size, api_key 18, api_version 3, correlation id
        &[0, 0, 0, 0x16, 0, 0x12, 0, 3, 0, 0, 0, 1],
        // memcached binary GET request header
        &[0x80, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0],
        // Postgres SSLRequest
        &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
        // MySQL packet of length 0x000316, sequence 0
        &[0x16, 0x03, 0x00, 0x00, 0x0a, 0x35, 0x2e, 0x37],
    ];
    T.assert_no_match(Direction::ToServer, cases);
    T.assert_no_match(Direction::ToClient, cases);
}

#[test]
fn session_rejects_non_tls() {
    assert!(T.parse_fails(b"GET / HTTP/1.1\r\n", Direction::ToServer));
    // A bad record after a good one: the good one is consumed first, the error comes next.
    let mut bytes = vec![23, 3, 3, 0, 1, 0];
    bytes.extend_from_slice(&[99, 3, 3, 0, 1, 0]);
    T.assert_error_after(&bytes, Direction::ToClient, 6);
}

#[test]
fn hostile_lengths_do_not_panic() {
    // A handshake record claiming a 2^24-1 byte message: an error, not a huge allocation.
    let bytes = [22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff];
    assert!(T.parse_fails(&bytes, Direction::ToServer));
    assert_eq!(T.probe(&bytes, Direction::ToServer), Probe::NoMatch);
    // Record length 0xffff: over 2^14 + 2048.
    let bytes = [23, 3, 3, 0xff, 0xff];
    assert!(T.parse_fails(&bytes, Direction::ToServer));
    assert_eq!(T.probe(&bytes, Direction::ToServer), Probe::NoMatch);
}

proptest! {
    #[test]
    fn proptest_tls_prefix_then_noise_never_panics(
        prefix in prop::sample::select(vec![
            &[22u8, 3, 1, 0x02, 0x00, 1, 0, 1, 0xfc, 3, 3][..],
            &[22, 3, 3, 0x00, 0x7a, 2, 0, 0, 0x76, 3, 3],
            &[0x80, 0x2e, 1, 3, 1, 0, 0x15, 0, 0, 0, 0x10],
            &[23, 3, 3, 0, 0x10],
        ]),
        noise in proptest::collection::vec(any::<u8>(), 0..600),
        split in 1usize..64,
    ) {
        let mut buf = prefix.to_vec();
        buf.extend_from_slice(&noise);
        for dir in [Direction::ToServer, Direction::ToClient] {
            prop_assert!(survives_pieces(&Tls, &buf, dir, split));
        }
    }
}
