//! TLS 1.0 to 1.3 (RFC 8446, RFC 5246), named by its handshake so that encrypted traffic is
//! recognised rather than guessed from the port.
//!
//! **Probe.** A `TLSPlaintext` record header (RFC 8446 section 5.1): content type 22
//! (handshake), `legacy_record_version` 0x0300..=0x0304, a length of at least a handshake
//! header and at most 2^14; then the handshake header (section 4): `msg_type` 1 ClientHello
//! (to the server) or 2 ServerHello (to the client), a uint24 length between the shortest
//! hello and the longest the vectors allow, and `legacy_version` 0x0300..=0x0303. Bands: both
//! headers checked is `STRONG` (11 bytes: the record and handshake headers must agree, so
//! random bytes starting `16 03` stay below 60); the whole hello parsed (random, session id
//! of at most 32 bytes, an even non-empty cipher suite list, compression methods, and every
//! extension's length consistent up to the end of the body) is `CERTAIN`. A hello that
//! arrives over several TCP writes is `NeedMore` until both headers are read; a hello larger
//! than the first record or the probe window stays `STRONG`. An SSL 2.0-compatible
//! ClientHello (RFC 5246 appendix E.2: high bit set in the 2-byte length, msg_type 1,
//! version, cipher-spec/session-id/challenge lengths that add up) is only `WEAK`, and so is
//! the middle of a connection (a capture that starts after the handshake): two consecutive
//! record headers of type 20, 21, 23 or 24 with one version 0x0301..=0x0303, or one header
//! whose record does not fit in the probe window. A hello seen in the wrong direction matches
//! with `observed` set.
//!
//! **Look-alikes.** Binary protocols whose first byte is 0x14..=0x18 (a MySQL packet length,
//! a Mongo length in little endian) fail the `03 0x` version bytes; TDS, Kafka and Mongo
//! headers never carry 0x16 0x03 followed by a consistent handshake header. Bytes with the
//! high bit set (memcached binary 0x80/0x81) fail the SSL 2.0 hello's msg_type and length
//! arithmetic. STARTTLS, Postgres `SSLRequest` and the like reach this classifier through the
//! engine's re-classification after the other protocol's session announces a `Switch`, so
//! the probe only looks at the start of a byte stream.
//!
//! **Session.** See [`session`]: the hellos are reassembled across records and summarised
//! (SNI, ALPN, offered and selected version, cipher suite); everything after
//! `ChangeCipherSpec` or the first application data record is consumed unread.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId};
use nom::Err;

use self::parser::{
    parse_client_hello, parse_handshake_header, parse_record_header, parse_server_hello,
    parse_v2_client_hello, ContentType, HandshakeType, ProtocolVersion, HANDSHAKE_HEADER_LEN,
    MAX_HELLO_LEN, MAX_PLAINTEXT_LEN, MAX_SESSION_ID_LEN, MIN_CLIENT_HELLO_LEN,
    MIN_SERVER_HELLO_LEN, RECORD_HEADER_LEN,
};

/// The protocol id.
pub(crate) const ID: ProtocolId = ProtocolId::new("tls");

/// Most bytes the probe reads: a whole ordinary ClientHello (about 250..600 bytes, up to
/// about 1800 with post-quantum key shares) and the ServerHello with the start of a TLS 1.2
/// server flight.
pub(crate) const PROBE_WINDOW: usize = 2048;

/// The TLS classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tls;

adi_classify::register_classifier!(adi_classify::Registration {
    id: ID,
    category: Category::TLS,
    description:
        "TLS 1.0-1.3 handshakes (ClientHello/ServerHello, SNI, ALPN); SSL 2.0-compatible hello",
    default_ports: &[443, 8443, 5671],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Tls,
});

/// A ClientHello or ServerHello at the start of `buf` (a handshake record).
fn looks_like_hello(buf: &[u8]) -> Probe {
    // RFC 8446 section 5.1: legacy_record_version is 0x03XX; reject on the second byte.
    if buf.get(1).is_some_and(|&b| b != 3) {
        return Probe::NoMatch;
    }
    let (body, record) = match parse_record_header(buf) {
        Ok(r) => r,
        Err(Err::Incomplete(_)) => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    // The first record is plaintext (at most 2^14) and starts a handshake header.
    if record.len > MAX_PLAINTEXT_LEN || record.len < HANDSHAKE_HEADER_LEN {
        return Probe::NoMatch;
    }
    // msg_type: reject anything but the two hellos as soon as the byte is there.
    let hello = match buf.get(RECORD_HEADER_LEN).copied().map(HandshakeType) {
        None => return Probe::NeedMore,
        Some(HandshakeType::CLIENT_HELLO) => HandshakeType::CLIENT_HELLO,
        Some(HandshakeType::SERVER_HELLO) => HandshakeType::SERVER_HELLO,
        Some(_) => return Probe::NoMatch,
    };
    // The uint24 length: the hellos are shorter than 2^17 (MAX_HELLO_LEN), so its first byte
    // is at most 2.
    if buf.get(RECORD_HEADER_LEN + 1).is_some_and(|&b| b > 2) {
        return Probe::NoMatch;
    }
    let (fields, (_, hs_len)) = match parse_handshake_header(body) {
        Ok(h) => h,
        Err(Err::Incomplete(_)) => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    let (min, dir, header_reason, whole_reason) = if hello == HandshakeType::CLIENT_HELLO {
        (
            MIN_CLIENT_HELLO_LEN,
            Direction::ToServer,
            "TLS ClientHello header",
            "TLS ClientHello",
        )
    } else {
        (
            MIN_SERVER_HELLO_LEN,
            Direction::ToClient,
            "TLS ServerHello header",
            "TLS ServerHello",
        )
    };
    if !(min..=MAX_HELLO_LEN).contains(&hs_len) {
        return Probe::NoMatch;
    }
    // legacy_version (RFC 8446 section 4.1.2: 0x0303 in TLS 1.3; older stacks send their own).
    let Some(version) = fields.get(..2) else {
        return Probe::NeedMore;
    };
    if !ProtocolVersion(u16::from_be_bytes([version[0], version[1]])).is_hello_version() {
        return Probe::NoMatch;
    }
    // legacy_session_id<0..32> follows the 32-byte random.
    if fields
        .get(2 + 32)
        .is_some_and(|&n| usize::from(n) > MAX_SESSION_ID_LEN)
    {
        return Probe::NoMatch;
    }
    let strong = Probe::matched(Confidence::STRONG, header_reason).observed(dir);
    // The whole body in this record and in the buffer: parse it.
    if HANDSHAKE_HEADER_LEN + hs_len > record.len {
        return strong;
    }
    let Some(whole) = fields.get(..hs_len) else {
        return strong;
    };
    let parsed = if hello == HandshakeType::CLIENT_HELLO {
        parse_client_hello(whole).map(|(rest, _)| rest.is_empty())
    } else {
        parse_server_hello(whole).map(|(rest, _)| rest.is_empty())
    };
    match parsed {
        Ok(true) => Probe::matched(Confidence::CERTAIN, whole_reason).observed(dir),
        Ok(false) | Err(_) => Probe::NoMatch,
    }
}

/// Records of an established connection (a capture that starts mid-stream): consecutive
/// record headers of one TLS 1.0..1.2 version (TLS 1.3 records say 0x0303 too).
fn looks_like_records(buf: &[u8]) -> Probe {
    if buf.get(1).is_some_and(|&b| b != 3) {
        return Probe::NoMatch;
    }
    let mut rest = buf;
    let mut version = None;
    let mut complete = 0;
    loop {
        if rest.is_empty() {
            break;
        }
        let (after, header) = match parse_record_header(rest) {
            Ok(h) => h,
            Err(Err::Incomplete(_)) => break,
            Err(_) => return Probe::NoMatch,
        };
        let v = header.version;
        if !(ProtocolVersion::TLS1_0..=ProtocolVersion::TLS1_2).contains(&v)
            || version.is_some_and(|first| first != v)
        {
            return Probe::NoMatch;
        }
        version = Some(v);
        let Some(next) = after.get(header.len..) else {
            break;
        };
        rest = next;
        complete += 1;
        if complete >= 2 {
            return Probe::matched(Confidence::WEAK, "TLS record headers (mid-stream)");
        }
    }
    if buf.len() >= PROBE_WINDOW && version.is_some() {
        // One record larger than the window: all we will ever see.
        return Probe::matched(Confidence::WEAK, "TLS record header (mid-stream)");
    }
    Probe::NeedMore
}

/// An SSL 2.0-compatible ClientHello (RFC 5246 appendix E.2).
fn looks_like_v2_hello(buf: &[u8]) -> Probe {
    match parse_v2_client_hello(buf) {
        Ok(_) => Probe::matched(Confidence::WEAK, "SSL 2.0-compatible ClientHello")
            .observed(Direction::ToServer),
        Err(Err::Incomplete(_)) => Probe::NeedMore,
        Err(_) => Probe::NoMatch,
    }
}

impl Classifier for Tls {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = buf.get(..buf.len().min(PROBE_WINDOW)).unwrap_or_default();
        let Some(&first) = buf.first() else {
            return Probe::NeedMore;
        };
        let evidence = match ContentType(first) {
            ContentType::HANDSHAKE => looks_like_hello(buf),
            ContentType::CHANGE_CIPHER_SPEC
            | ContentType::ALERT
            | ContentType::APPLICATION_DATA
            | ContentType::HEARTBEAT => looks_like_records(buf),
            _ if first & 0x80 != 0 => looks_like_v2_hello(buf),
            _ => Probe::NoMatch,
        };
        evidence.given(dir)
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::TlsSession::default())
    }
}
