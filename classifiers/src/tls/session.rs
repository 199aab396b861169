//! Per-connection TLS parsing: the record layer, and the two hellos reassembled across
//! records.
//!
//! Each direction is a stream of records (RFC 8446 section 5.1). Until a direction sends
//! `ChangeCipherSpec` or application data, its handshake records are plaintext: their bytes
//! are reassembled into handshake messages (a hello may span records) and the hellos are
//! summarised:
//! - ClientHello → [`RecordKind::Request`], op `ClientHello`, resource the SNI host name,
//!   attributes `version` (the highest non-GREASE `supported_versions` entry, else
//!   `legacy_version`), `alpn` (one per offered protocol), `cipher_suites` (how many);
//! - ServerHello → [`RecordKind::Response`], op `ServerHello` (or `HelloRetryRequest`),
//!   attributes `version` (the selected `supported_versions`, else `legacy_version`), `cipher`,
//!   and `alpn` when the server answers it in the clear (TLS 1.2);
//! - a plaintext alert → [`RecordKind::Message`], op `Alert`, status the alert description.
//!
//! The engine pairs the two hellos, so their latency is the handshake's first round trip.
//! After its hello a direction's other handshake messages (certificates, key exchange) are
//! skipped unread; application data records are consumed as they arrive without being kept,
//! whatever their size. An SSL 2.0-compatible ClientHello at the start of the to-server
//! direction becomes a `ClientHello` request with `version` `SSL 2.0-compatible`.

use adi_classify::record::lossy;
use adi_classify::{Direction, ParseError, Record, RecordKind, Skip, Step, StepResult, Steps};
use nom::Err;

use super::parser::{
    alpn_protocols, client_supported_versions, extensions, parse_client_hello,
    parse_handshake_header, parse_record_header, parse_server_hello, parse_server_name,
    parse_v2_client_hello, server_selected_version, ContentType, ExtensionType, HandshakeType,
    ProtocolVersion, HANDSHAKE_HEADER_LEN, MAX_HELLO_LEN, RECORD_HEADER_LEN,
};
use super::ID;

/// Most bytes of a hello kept as sent in [`Record::raw`].
pub(crate) const MAX_RAW_KEPT: usize = 512;

/// The state of one direction.
#[derive(Debug, Default)]
struct DirState {
    /// Bytes were seen in this direction (an SSL 2.0 hello can only come first).
    started: bool,
    /// `ChangeCipherSpec` or application data was sent: later records are encrypted.
    encrypted: bool,
    /// This direction's hello was parsed: later handshake messages are skipped.
    hello_done: bool,
    /// Handshake bytes being reassembled (at most one hello plus its record's tail).
    handshake: Vec<u8>,
}

/// TLS session state for one connection.
#[derive(Debug, Default)]
pub(crate) struct TlsSession {
    dirs: [DirState; 2],
    /// Bytes of the current record still to consume unread, per direction.
    skip: Skip,
    /// The server selected TLS 1.3: `ChangeCipherSpec` is then only a compatibility dummy
    /// (RFC 8446 appendix D.4) and does not start encryption.
    tls13: bool,
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(ID, what)
}

/// The ClientHello summary.
fn client_hello_record(message: &[u8], body: &[u8]) -> Result<Record, ParseError> {
    let (_, hello) = parse_client_hello(body).map_err(|_| malformed("ClientHello"))?;
    let mut record = Record::new(RecordKind::Request);
    record.op = Some("ClientHello".to_owned());
    let mut version = hello.legacy_version;
    let mut alpn = Vec::new();
    for (ty, data) in extensions(hello.extensions) {
        match ty {
            ExtensionType::SERVER_NAME => {
                record.resource = parse_server_name(data).map(lossy);
                // The name the client asked for names the connection's server.
                if let Some(name) = record.resource.clone().filter(|n| !n.is_empty()) {
                    record.connection.push(("server_name", name));
                }
            }
            ExtensionType::ALPN => alpn.extend(alpn_protocols(data).map(lossy)),
            ExtensionType::SUPPORTED_VERSIONS => {
                if let Some(max) = client_supported_versions(data)
                    .filter(|v| !v.is_grease())
                    .max()
                {
                    version = max;
                }
            }
            _ => {}
        }
    }
    record.push_attribute("version", version.name());
    record
        .attributes
        .extend(alpn.into_iter().map(|p| ("alpn".to_owned(), p)));
    record.push_attribute("cipher_suites", (hello.cipher_suites.len() / 2).to_string());
    finish(&mut record, message);
    Ok(record)
}

/// The ServerHello summary, whether it was a HelloRetryRequest, and whether it selected
/// TLS 1.3.
fn server_hello_record(message: &[u8], body: &[u8]) -> Result<(Record, bool, bool), ParseError> {
    let (_, hello) = parse_server_hello(body).map_err(|_| malformed("ServerHello"))?;
    let retry = hello.is_retry_request();
    let mut record = Record::new(RecordKind::Response);
    record.op = Some(
        if retry {
            "HelloRetryRequest"
        } else {
            "ServerHello"
        }
        .to_owned(),
    );
    let mut version = hello.legacy_version;
    let mut alpn = Vec::new();
    for (ty, data) in extensions(hello.extensions) {
        match ty {
            ExtensionType::SUPPORTED_VERSIONS => {
                version = server_selected_version(data).unwrap_or(version);
            }
            ExtensionType::ALPN => alpn.extend(alpn_protocols(data).map(lossy)),
            _ => {}
        }
    }
    record.push_attribute("version", version.name());
    record.push_attribute("cipher", hello.cipher_suite.name());
    record
        .attributes
        .extend(alpn.into_iter().map(|p| ("alpn".to_owned(), p)));
    finish(&mut record, message);
    Ok((record, retry, version == ProtocolVersion::TLS1_3))
}

fn finish(record: &mut Record, message: &[u8]) {
    record.wire_len = message.len() as u64;
    record.raw = message[..message.len().min(MAX_RAW_KEPT)].to_vec();
    record.truncated = message.len() > MAX_RAW_KEPT;
}

/// An alert description's name (RFC 8446 section 6), for the common ones.
fn alert_name(description: u8) -> &'static str {
    match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        80 => "internal_error",
        90 => "user_canceled",
        109 => "missing_extension",
        112 => "unrecognized_name",
        120 => "no_application_protocol",
        _ => "unknown",
    }
}

impl TlsSession {
    /// Takes whole handshake messages out of `dir`'s reassembly buffer and summarises the
    /// hellos.
    fn drain_handshake(&mut self, dir: Direction, out: &mut Vec<Record>) -> Result<(), ParseError> {
        loop {
            let d = &mut self.dirs[dir.index()];
            if d.hello_done {
                d.handshake = Vec::new();
                return Ok(());
            }
            let Ok((_, (ty, len))) = parse_handshake_header(&d.handshake) else {
                return Ok(());
            };
            if len > MAX_HELLO_LEN {
                return Err(ParseError::too_large(
                    ID,
                    "handshake message",
                    len,
                    MAX_HELLO_LEN,
                ));
            }
            let Some(message) = d.handshake.get(..HANDSHAKE_HEADER_LEN + len) else {
                return Ok(());
            };
            let body = &message[HANDSHAKE_HEADER_LEN..];
            match ty {
                HandshakeType::CLIENT_HELLO => {
                    out.push(client_hello_record(message, body)?);
                    d.hello_done = true;
                }
                HandshakeType::SERVER_HELLO => {
                    let (record, retry, tls13) = server_hello_record(message, body)?;
                    out.push(record);
                    self.tls13 |= tls13;
                    let d = &mut self.dirs[dir.index()];
                    d.hello_done = !retry;
                    if retry {
                        // RFC 8446 section 4.1.4: the client answers with a second ClientHello.
                        self.dirs[dir.reverse().index()].hello_done = false;
                    }
                }
                // Not a hello (a capture that starts mid-handshake): nothing more to learn.
                _ => d.hello_done = true,
            }
            let d = &mut self.dirs[dir.index()];
            let n = (HANDSHAKE_HEADER_LEN + len).min(d.handshake.len());
            d.handshake.drain(..n);
        }
    }
}

impl Steps for TlsSession {
    fn skip(&mut self) -> Option<&mut Skip> {
        Some(&mut self.skip)
    }

    fn step(&mut self, rest: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        let d = &mut self.dirs[dir.index()];
        if !d.started && rest[0] & 0x80 != 0 {
            match parse_v2_client_hello(rest) {
                Ok((_, hello)) => {
                    d.started = true;
                    d.hello_done = true;
                    self.skip.set(dir, hello.len);
                    let mut record = Record::new(RecordKind::Request);
                    record.op = Some("ClientHello".to_owned());
                    record.push_attribute("version", "SSL 2.0-compatible");
                    if hello.version != ProtocolVersion(0x0002) {
                        record.push_attribute("legacy_version", hello.version.name());
                    }
                    record.wire_len = hello.len as u64;
                    record.truncated = true;
                    out.push(record);
                    return Ok(Step::Consumed(0));
                }
                Err(Err::Incomplete(_)) => return Ok(Step::NeedMore),
                Err(_) => return Ok(Step::Invalid(malformed("SSL 2.0 ClientHello"))),
            }
        }
        d.started = true;
        let (payload, header) = match parse_record_header(rest) {
            Ok(r) => r,
            Err(Err::Incomplete(_)) => return Ok(Step::NeedMore),
            Err(_) => return Ok(Step::Invalid(malformed("record header"))),
        };
        let plaintext = !d.encrypted;
        let tls13 = self.tls13;
        match header.content_type {
            ContentType::HANDSHAKE if plaintext && !d.hello_done => {
                let Some(fragment) = payload.get(..header.len) else {
                    return Ok(Step::NeedMore);
                };
                d.handshake.extend_from_slice(fragment);
                self.drain_handshake(dir, out)?;
                Ok(Step::Consumed(RECORD_HEADER_LEN + header.len))
            }
            ContentType::ALERT if plaintext && header.len == 2 => {
                let Some(&[level, description]) = payload.get(..2) else {
                    return Ok(Step::NeedMore);
                };
                let mut record = Record::new(RecordKind::Message);
                record.op = Some("Alert".to_owned());
                record.status = Some(u16::from(description));
                let level = if level == 2 { "fatal" } else { "warning" };
                record.push_attribute("level", level);
                record.push_attribute("description", alert_name(description));
                record.wire_len = (RECORD_HEADER_LEN + 2) as u64;
                out.push(record);
                Ok(Step::Consumed(RECORD_HEADER_LEN + 2))
            }
            ty => {
                if ty == ContentType::APPLICATION_DATA
                    || (ty == ContentType::CHANGE_CIPHER_SPEC && !tls13)
                {
                    d.encrypted = true;
                    d.handshake = Vec::new();
                }
                self.skip.set(dir, header.len);
                Ok(Step::Consumed(RECORD_HEADER_LEN))
            }
        }
    }
}
