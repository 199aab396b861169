//! nom parsers for the TLS record layer and the hello messages (RFC 8446 sections 4.1.2,
//! 4.1.3, 4.2 and 5.1; RFC 5246 sections 6.2 and 7.4), and the SSL 2.0-compatible
//! ClientHello (RFC 5246 appendix E.2).
//!
//! Outer frames (record and handshake headers) are `streaming`: a short input is
//! `Incomplete`. Hello bodies are parsed `complete` inside a length the caller already took.

use nom::bytes::complete::take;
use nom::error::{Error, ErrorKind};
use nom::multi::length_data;
use nom::number::complete::{be_u16 as c_be_u16, be_u8 as c_be_u8};
use nom::number::streaming::{be_u16, be_u24, be_u8};
use nom::{Err, Parser};

use crate::parsing::PResult;

/// A record's content type (RFC 8446 section 5.1, RFC 6520 for heartbeat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContentType(pub u8);

impl ContentType {
    pub const CHANGE_CIPHER_SPEC: Self = Self(20);
    pub const ALERT: Self = Self(21);
    pub const HANDSHAKE: Self = Self(22);
    pub const APPLICATION_DATA: Self = Self(23);
    pub const HEARTBEAT: Self = Self(24);

    /// One of the five content types TLS 1.0..1.3 define.
    pub fn is_known(self) -> bool {
        (Self::CHANGE_CIPHER_SPEC.0..=Self::HEARTBEAT.0).contains(&self.0)
    }
}

/// A handshake message type (RFC 8446 section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HandshakeType(pub u8);

impl HandshakeType {
    pub const CLIENT_HELLO: Self = Self(1);
    pub const SERVER_HELLO: Self = Self(2);
}

/// A protocol version on the wire (`legacy_record_version`, `legacy_version`,
/// `supported_versions` entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProtocolVersion(pub u16);

impl ProtocolVersion {
    pub const SSL3_0: Self = Self(0x0300);
    pub const TLS1_0: Self = Self(0x0301);
    pub const TLS1_2: Self = Self(0x0303);
    pub const TLS1_3: Self = Self(0x0304);

    /// SSL 3.0 to TLS 1.3: the versions a record header may carry (RFC 8446 section 5.1
    /// allows any of them in `legacy_record_version`).
    pub fn is_record_version(self) -> bool {
        (Self::SSL3_0..=Self::TLS1_3).contains(&self)
    }

    /// SSL 3.0 to TLS 1.2: the versions a hello's `legacy_version` may carry (TLS 1.3 sends
    /// 0x0303 there, RFC 8446 section 4.1.2).
    pub fn is_hello_version(self) -> bool {
        (Self::SSL3_0..=Self::TLS1_2).contains(&self)
    }

    /// `TLS 1.2`, `SSL 3.0`, or the hex value.
    pub fn name(self) -> String {
        match self.0 {
            0x0300 => "SSL 3.0".to_owned(),
            0x0301 => "TLS 1.0".to_owned(),
            0x0302 => "TLS 1.1".to_owned(),
            0x0303 => "TLS 1.2".to_owned(),
            0x0304 => "TLS 1.3".to_owned(),
            v => format!("0x{v:04x}"),
        }
    }

    /// RFC 8701 GREASE values (`0x?a?a`), which clients sprinkle into lists.
    pub fn is_grease(self) -> bool {
        self.0 & 0x0f0f == 0x0a0a && self.0 >> 8 == self.0 & 0xff
    }
}

/// An extension type (IANA "TLS ExtensionType Values").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExtensionType(pub u16);

impl ExtensionType {
    pub const SERVER_NAME: Self = Self(0);
    pub const ALPN: Self = Self(16);
    pub const SUPPORTED_VERSIONS: Self = Self(43);
}

/// A cipher suite (IANA "TLS Cipher Suites").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CipherSuite(pub u16);

impl CipherSuite {
    /// The IANA name of common suites, the hex value of the others.
    pub fn name(self) -> String {
        let name = match self.0 {
            0x1301 => "TLS_AES_128_GCM_SHA256",
            0x1302 => "TLS_AES_256_GCM_SHA384",
            0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
            0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
            0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
            0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
            0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
            v => return format!("0x{v:04x}"),
        };
        name.to_owned()
    }
}

/// Record header length: type, version, length (RFC 8446 section 5.1).
pub(crate) const RECORD_HEADER_LEN: usize = 5;
/// Handshake header length: msg_type, uint24 length (RFC 8446 section 4).
pub(crate) const HANDSHAKE_HEADER_LEN: usize = 4;
/// `TLSPlaintext.length` MUST NOT exceed 2^14 (RFC 8446 section 5.1): every record before
/// encryption, so every hello.
pub(crate) const MAX_PLAINTEXT_LEN: usize = 1 << 14;
/// `TLSCiphertext.length` MUST NOT exceed 2^14 + 2048 (RFC 5246 section 6.2.3; TLS 1.3 allows
/// only 2^14 + 256, RFC 8446 section 5.2).
pub(crate) const MAX_CIPHERTEXT_LEN: usize = (1 << 14) + 2048;
/// The shortest ClientHello body: version 2, random 32, session id length 1, cipher suites
/// length 2 + one suite 2, compression length 1 + one method 1 (RFC 8446 section 4.1.2).
pub(crate) const MIN_CLIENT_HELLO_LEN: usize = 41;
/// The shortest ServerHello body: version 2, random 32, session id length 1, suite 2,
/// compression 1 (RFC 8446 section 4.1.3).
pub(crate) const MIN_SERVER_HELLO_LEN: usize = 38;
/// The longest hello body the vectors allow: version 2, random 32, session id <0..32>,
/// cipher suites <2..2^16-2>, compression methods <1..2^8-1>, extensions <8..2^16-1>
/// (RFC 8446 section 4.1.2).
pub(crate) const MAX_HELLO_LEN: usize = 2 + 32 + 1 + 32 + 2 + 65534 + 1 + 255 + 2 + 65535;
/// `legacy_session_id<0..32>` (RFC 8446 section 4.1.2).
pub(crate) const MAX_SESSION_ID_LEN: usize = 32;
/// The random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest" (RFC 8446 section
/// 4.1.3).
pub(crate) const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// `opaque data<0..2^8-1>`: a u8 length and that many bytes.
fn u8_data(i: &[u8]) -> PResult<'_, &[u8]> {
    length_data(c_be_u8).parse(i)
}

/// `opaque data<0..2^16-1>`: a u16 length and that many bytes.
fn u16_data(i: &[u8]) -> PResult<'_, &[u8]> {
    length_data(c_be_u16).parse(i)
}

fn error<T>(i: &[u8], kind: ErrorKind) -> PResult<'_, T> {
    Err(Err::Error(Error::new(i, kind)))
}

/// A `TLSPlaintext`/`TLSCiphertext` header (RFC 8446 section 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub content_type: ContentType,
    pub version: ProtocolVersion,
    pub len: usize,
}

/// A record header with a known content type, a version 3.x and a length within
/// [`MAX_CIPHERTEXT_LEN`] (a zero length is allowed only for application data, RFC 8446
/// section 5.1).
pub(crate) fn parse_record_header(i: &[u8]) -> PResult<'_, RecordHeader> {
    let (i, content_type) = be_u8(i)?;
    let content_type = ContentType(content_type);
    if !content_type.is_known() {
        return error(i, ErrorKind::Tag);
    }
    let (i, version) = be_u16(i)?;
    let version = ProtocolVersion(version);
    if !version.is_record_version() {
        return error(i, ErrorKind::Verify);
    }
    let (i, len) = be_u16(i)?;
    let len = usize::from(len);
    if len > MAX_CIPHERTEXT_LEN || (len == 0 && content_type != ContentType::APPLICATION_DATA) {
        return error(i, ErrorKind::TooLarge);
    }
    Ok((
        i,
        RecordHeader {
            content_type,
            version,
            len,
        },
    ))
}

/// A handshake message header: type and uint24 body length (RFC 8446 section 4).
pub(crate) fn parse_handshake_header(i: &[u8]) -> PResult<'_, (HandshakeType, usize)> {
    let (i, msg_type) = be_u8(i)?;
    let (i, len) = be_u24(i)?;
    Ok((i, (HandshakeType(msg_type), len as usize)))
}

/// A ClientHello body (RFC 8446 section 4.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientHello<'a> {
    pub legacy_version: ProtocolVersion,
    pub session_id: &'a [u8],
    pub cipher_suites: &'a [u8],
    pub compression_methods: &'a [u8],
    /// The extensions block (without its length), already checked by [`check_extensions`];
    /// empty when absent (allowed before TLS 1.3).
    pub extensions: &'a [u8],
}

/// A ServerHello body (RFC 8446 section 4.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerHello<'a> {
    pub legacy_version: ProtocolVersion,
    pub random: &'a [u8],
    pub cipher_suite: CipherSuite,
    pub extensions: &'a [u8],
}

impl ServerHello<'_> {
    /// A HelloRetryRequest is a ServerHello with a fixed random (RFC 8446 section 4.1.3).
    pub fn is_retry_request(&self) -> bool {
        self.random == HELLO_RETRY_REQUEST_RANDOM
    }
}

fn parse_hello_version(i: &[u8]) -> PResult<'_, ProtocolVersion> {
    let (rest, v) = c_be_u16(i)?;
    let v = ProtocolVersion(v);
    if !v.is_hello_version() {
        return error(i, ErrorKind::Verify);
    }
    Ok((rest, v))
}

fn parse_session_id(i: &[u8]) -> PResult<'_, &[u8]> {
    let (rest, sid) = u8_data(i)?;
    if sid.len() > MAX_SESSION_ID_LEN {
        return error(i, ErrorKind::TooLarge);
    }
    Ok((rest, sid))
}

/// The optional extensions block that ends a hello: nothing, or a u16 length covering exactly
/// the rest of the body, with every extension's own length consistent.
fn parse_extensions_block(i: &[u8]) -> PResult<'_, &[u8]> {
    if i.is_empty() {
        return Ok((i, i));
    }
    let (rest, block) = u16_data(i)?;
    if !rest.is_empty() || !check_extensions(block) {
        return error(i, ErrorKind::Verify);
    }
    Ok((rest, block))
}

/// A whole ClientHello body (`i` is exactly the handshake body).
pub(crate) fn parse_client_hello(i: &[u8]) -> PResult<'_, ClientHello<'_>> {
    let (i, legacy_version) = parse_hello_version(i)?;
    let (i, _random) = take(32usize)(i)?;
    let (i, session_id) = parse_session_id(i)?;
    let (rest, cipher_suites) = u16_data(i)?;
    // cipher_suites<2..2^16-2>: pairs of bytes.
    if cipher_suites.is_empty() || cipher_suites.len() % 2 != 0 {
        return error(i, ErrorKind::Verify);
    }
    let (i, compression_methods) = u8_data(rest)?;
    // compression_methods<1..2^8-1>
    if compression_methods.is_empty() {
        return error(rest, ErrorKind::Verify);
    }
    let (i, extensions) = parse_extensions_block(i)?;
    Ok((
        i,
        ClientHello {
            legacy_version,
            session_id,
            cipher_suites,
            compression_methods,
            extensions,
        },
    ))
}

/// A whole ServerHello body (`i` is exactly the handshake body).
pub(crate) fn parse_server_hello(i: &[u8]) -> PResult<'_, ServerHello<'_>> {
    let (i, legacy_version) = parse_hello_version(i)?;
    let (i, random) = take(32usize)(i)?;
    let (i, _session_id) = parse_session_id(i)?;
    let (i, cipher_suite) = c_be_u16(i)?;
    let (i, _compression) = c_be_u8(i)?;
    let (i, extensions) = parse_extensions_block(i)?;
    Ok((
        i,
        ServerHello {
            legacy_version,
            random,
            cipher_suite: CipherSuite(cipher_suite),
            extensions,
        },
    ))
}

/// The extensions of a block, in order. Stops (returns `None`) at the first inconsistent
/// length; [`check_extensions`] tells whether the whole block is consistent.
#[derive(Clone, Debug)]
pub(crate) struct Extensions<'a> {
    rest: &'a [u8],
}

pub(crate) fn extensions(block: &[u8]) -> Extensions<'_> {
    Extensions { rest: block }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (ExtensionType, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let parsed: PResult<'a, (u16, &'a [u8])> = (c_be_u16, u16_data).parse(self.rest);
        if let Ok((rest, (ty, data))) = parsed {
            self.rest = rest;
            Some((ExtensionType(ty), data))
        } else {
            self.rest = &[];
            None
        }
    }
}

/// True when the extensions fill `block` exactly (each `extension_type`, `extension_data`
/// length consistent, RFC 8446 section 4.2).
pub(crate) fn check_extensions(mut block: &[u8]) -> bool {
    while !block.is_empty() {
        let parsed: PResult<'_, (u16, &[u8])> = (c_be_u16, u16_data).parse(block);
        match parsed {
            Ok((rest, _)) => block = rest,
            Err(_) => return false,
        }
    }
    true
}

/// The first `host_name` of a `server_name` extension (RFC 6066 section 3).
pub(crate) fn parse_server_name(data: &[u8]) -> Option<&[u8]> {
    let (_, mut list) = u16_data(data).ok()?;
    while !list.is_empty() {
        let parsed: PResult<'_, (u8, &[u8])> = (c_be_u8, u16_data).parse(list);
        let (rest, (name_type, name)) = parsed.ok()?;
        if name_type == 0 {
            return Some(name);
        }
        list = rest;
    }
    None
}

/// The protocol names of an ALPN extension (RFC 7301 section 3.1): `ProtocolName<1..2^8-1>`
/// inside a u16 list.
pub(crate) fn alpn_protocols(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut list: &[u8] = u16_data(data).map(|(_, l)| l).unwrap_or_default();
    std::iter::from_fn(move || {
        let (rest, name) = u8_data(list).ok()?;
        list = rest;
        Some(name)
    })
}

/// The versions of a ClientHello `supported_versions` extension (RFC 8446 section 4.2.1):
/// `ProtocolVersion versions<2..254>`.
pub(crate) fn client_supported_versions(data: &[u8]) -> impl Iterator<Item = ProtocolVersion> + '_ {
    let list: &[u8] = u8_data(data).map(|(_, l)| l).unwrap_or_default();
    list.chunks_exact(2)
        .map(|p| ProtocolVersion(u16::from_be_bytes([p[0], p[1]])))
}

/// The version a ServerHello `supported_versions` extension selects (RFC 8446 section 4.2.1).
pub(crate) fn server_selected_version(data: &[u8]) -> Option<ProtocolVersion> {
    match data {
        [hi, lo] => Some(ProtocolVersion(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

/// An SSL 2.0-compatible CLIENT-HELLO (RFC 5246 appendix E.2): a 2-byte header with the high
/// bit set, msg_type 1, version, three u16 lengths, then the cipher specs (3 bytes each),
/// the session id (0 or 16 bytes) and the challenge (16..=32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct V2ClientHello {
    pub version: ProtocolVersion,
    /// The whole message, header included.
    pub len: usize,
}

/// The fixed part of a V2 CLIENT-HELLO: header 2, msg_type 1, version 2, three lengths 6.
pub(crate) const V2_HELLO_FIXED_LEN: usize = 11;

/// The header of an SSL 2.0-compatible ClientHello, with its lengths checked against each
/// other (the body may still be missing: the result is its total length).
pub(crate) fn parse_v2_client_hello(i: &[u8]) -> PResult<'_, V2ClientHello> {
    let start = i;
    let (i, len) = be_u16(i)?;
    if len & 0x8000 == 0 {
        return error(start, ErrorKind::Tag);
    }
    let body_len = usize::from(len & 0x7fff);
    let (i, msg_type) = be_u8(i)?;
    if msg_type != 1 {
        return error(start, ErrorKind::Tag);
    }
    let (i, version) = be_u16(i)?;
    let version = ProtocolVersion(version);
    // SSL 2.0 (0x0002) or SSL 3.0..TLS 1.2 announced in a V2 hello.
    if version.0 != 0x0002 && !version.is_hello_version() {
        return error(start, ErrorKind::Verify);
    }
    let (i, cipher_specs) = be_u16(i)?;
    let (i, session_id) = be_u16(i)?;
    let (i, challenge) = be_u16(i)?;
    let (cipher_specs, session_id, challenge) = (
        usize::from(cipher_specs),
        usize::from(session_id),
        usize::from(challenge),
    );
    let consistent = cipher_specs > 0
        && cipher_specs % 3 == 0
        && (session_id == 0 || session_id == 16)
        && (16..=32).contains(&challenge)
        && body_len == V2_HELLO_FIXED_LEN - 2 + cipher_specs + session_id + challenge;
    if !consistent {
        return error(start, ErrorKind::Verify);
    }
    Ok((
        i,
        V2ClientHello {
            version,
            len: body_len + 2,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_is_recognised() {
        assert!(ProtocolVersion(0x0a0a).is_grease());
        assert!(ProtocolVersion(0xfafa).is_grease());
        assert!(!ProtocolVersion(0x0a1a).is_grease());
        assert!(!ProtocolVersion::TLS1_3.is_grease());
    }

    #[test]
    fn record_header_limits() {
        // handshake, TLS 1.0, length 2^14 + 2048: the largest allowed
        assert!(parse_record_header(&[22, 3, 1, 0x48, 0x00]).is_ok());
        // one more byte is too large
        assert!(matches!(
            parse_record_header(&[22, 3, 1, 0x48, 0x01]),
            Err(Err::Error(_))
        ));
        // unknown content type 25
        assert!(matches!(
            parse_record_header(&[25, 3, 1, 0, 1]),
            Err(Err::Error(_))
        ));
        // version 3.5 is not TLS
        assert!(matches!(
            parse_record_header(&[22, 3, 5, 0, 1]),
            Err(Err::Error(_))
        ));
        // an empty handshake record is not allowed
        assert!(matches!(
            parse_record_header(&[22, 3, 3, 0, 0]),
            Err(Err::Error(_))
        ));
        // short input is incomplete
        assert!(matches!(
            parse_record_header(&[22, 3]),
            Err(Err::Incomplete(_))
        ));
    }
}
