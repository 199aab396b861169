//! nom parsers for HTTP/2 framing (RFC 9113 sections 3.4, 4.1 and 6) and a minimal HPACK
//! reader (RFC 7541) for the pseudo-header fields that the static table or plain literals
//! carry.

use nom::error::{Error, ErrorKind};
use nom::number::streaming::{be_u24, be_u32, be_u8};
use nom::{Err, IResult};

type PResult<'a, T> = IResult<&'a [u8], T>;

/// The client connection preface (RFC 9113 section 3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame header: length u24, type, flags, R bit and stream id u31 (RFC 9113 section 4.1).
pub(crate) const FRAME_HEADER_LEN: usize = 9;
/// `SETTINGS_MAX_FRAME_SIZE` starts at 2^14 (RFC 9113 section 6.5.2): the largest frame a
/// peer may send before the other side's SETTINGS raise it.
pub(crate) const DEFAULT_MAX_FRAME_LEN: usize = 1 << 14;
/// The largest `SETTINGS_MAX_FRAME_SIZE` a peer may announce, 2^24 - 1 (RFC 9113 section
/// 6.5.2).
pub(crate) const MAX_FRAME_LEN: usize = (1 << 24) - 1;
/// A SETTINGS parameter: identifier u16, value u32 (RFC 9113 section 6.5.1).
pub(crate) const SETTING_LEN: usize = 6;

/// A frame type (RFC 9113 section 6; IANA "HTTP/2 Frame Type").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameType(pub u8);

impl FrameType {
    pub const DATA: Self = Self(0x0);
    pub const HEADERS: Self = Self(0x1);
    pub const PRIORITY: Self = Self(0x2);
    pub const RST_STREAM: Self = Self(0x3);
    pub const SETTINGS: Self = Self(0x4);
    pub const PUSH_PROMISE: Self = Self(0x5);
    pub const PING: Self = Self(0x6);
    pub const GOAWAY: Self = Self(0x7);
    pub const WINDOW_UPDATE: Self = Self(0x8);
    pub const CONTINUATION: Self = Self(0x9);

    /// The RFC 9113 name, `None` for extension types (which receivers ignore).
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 10] = [
            "DATA",
            "HEADERS",
            "PRIORITY",
            "RST_STREAM",
            "SETTINGS",
            "PUSH_PROMISE",
            "PING",
            "GOAWAY",
            "WINDOW_UPDATE",
            "CONTINUATION",
        ];
        NAMES.get(usize::from(self.0)).copied()
    }
}

/// Frame flags (RFC 9113 section 6).
pub(crate) struct Flags;

impl Flags {
    pub const ACK: u8 = 0x1;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// An error code of RST_STREAM and GOAWAY (RFC 9113 section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrorCode(pub u32);

impl ErrorCode {
    /// The RFC 9113 name, or the hex value.
    pub fn name(self) -> String {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i))
            .map_or_else(|| format!("0x{:x}", self.0), |n| (*n).to_owned())
    }

    /// The code as a record status (codes above 65535 are clamped).
    pub fn status(self) -> u16 {
        u16::try_from(self.0).unwrap_or(u16::MAX)
    }
}

/// A SETTINGS identifier (RFC 9113 section 6.5.2, RFC 8441, RFC 9218).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SettingId(pub u16);

impl SettingId {
    pub const HEADER_TABLE_SIZE: Self = Self(0x1);
    pub const ENABLE_PUSH: Self = Self(0x2);
    pub const MAX_CONCURRENT_STREAMS: Self = Self(0x3);
    pub const INITIAL_WINDOW_SIZE: Self = Self(0x4);
    pub const MAX_FRAME_SIZE: Self = Self(0x5);
    pub const MAX_HEADER_LIST_SIZE: Self = Self(0x6);
    pub const ENABLE_CONNECT_PROTOCOL: Self = Self(0x8);
    pub const NO_RFC7540_PRIORITIES: Self = Self(0x9);
}

/// A frame header (RFC 9113 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: usize,
    pub frame_type: FrameType,
    pub flags: u8,
    /// The reserved bit, which senders MUST leave unset.
    pub reserved: bool,
    pub stream: u32,
}

/// A frame header, whatever its fields say (callers check them).
pub(crate) fn parse_frame_header(i: &[u8]) -> PResult<'_, FrameHeader> {
    let (i, len) = be_u24(i)?;
    let (i, frame_type) = be_u8(i)?;
    let (i, flags) = be_u8(i)?;
    let (i, stream) = be_u32(i)?;
    Ok((
        i,
        FrameHeader {
            len: len as usize,
            frame_type: FrameType(frame_type),
            flags,
            reserved: stream & 0x8000_0000 != 0,
            stream: stream & 0x7fff_ffff,
        },
    ))
}

/// What a frame header's fields allow (RFC 9113 section 6): `Some(true)` when a known type
/// obeys its rules (stream 0 or not, fixed lengths), `Some(false)` when it breaks them, `None`
/// for an extension type (allowed, but no evidence).
pub(crate) fn frame_rules_hold(h: &FrameHeader) -> Option<bool> {
    let connection = h.stream == 0;
    let ok = !h.reserved
        && match h.frame_type {
            FrameType::DATA | FrameType::HEADERS | FrameType::CONTINUATION => !connection,
            FrameType::PUSH_PROMISE => !connection && h.len >= 4,
            FrameType::PRIORITY => !connection && h.len == 5,
            FrameType::RST_STREAM => !connection && h.len == 4,
            FrameType::SETTINGS => {
                connection
                    && h.len.is_multiple_of(SETTING_LEN)
                    && (h.flags & Flags::ACK == 0 || h.len == 0)
            }
            FrameType::PING => connection && h.len == 8,
            FrameType::GOAWAY => connection && h.len >= 8,
            FrameType::WINDOW_UPDATE => h.len == 4,
            _ => return None,
        };
    Some(ok)
}

/// What a SETTINGS payload says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SettingsCheck {
    /// Every identifier is known and every value within its range.
    Known,
    /// The values of known identifiers are fine; some identifiers are unknown (allowed:
    /// receivers ignore them, RFC 9113 section 6.5.2), or the payload is empty.
    Unknown,
    /// A value out of its range, or identifier 0 (never defined).
    Invalid,
}

/// Checks a SETTINGS payload (a multiple of [`SETTING_LEN`] bytes).
pub(crate) fn check_settings(payload: &[u8]) -> SettingsCheck {
    let mut result = if payload.is_empty() {
        SettingsCheck::Unknown
    } else {
        SettingsCheck::Known
    };
    for setting in payload.chunks_exact(SETTING_LEN) {
        let id = SettingId(u16::from_be_bytes([setting[0], setting[1]]));
        let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
        let valid = match id {
            SettingId(0) => false,
            SettingId::ENABLE_PUSH
            | SettingId::ENABLE_CONNECT_PROTOCOL
            | SettingId::NO_RFC7540_PRIORITIES => value <= 1,
            SettingId::INITIAL_WINDOW_SIZE => value <= 0x7fff_ffff,
            SettingId::MAX_FRAME_SIZE => (1 << 14..=(1 << 24) - 1).contains(&value),
            SettingId::HEADER_TABLE_SIZE
            | SettingId::MAX_CONCURRENT_STREAMS
            | SettingId::MAX_HEADER_LIST_SIZE => true,
            _ => {
                result = SettingsCheck::Unknown;
                true
            }
        };
        if !valid {
            return SettingsCheck::Invalid;
        }
    }
    result
}

/// The header block fragment of a HEADERS or PUSH_PROMISE payload: padding (PADDED) and the
/// priority fields (PRIORITY) or the promised stream id removed (RFC 9113 sections 6.2,
/// 6.6). `None` when the pad length exceeds the payload.
pub(crate) fn header_block(payload: &[u8], flags: u8, prefix: usize) -> Option<&[u8]> {
    let (pad, rest) = if flags & Flags::PADDED != 0 {
        let (&pad, rest) = payload.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let rest = rest.get(prefix..)?;
    rest.get(..rest.len().checked_sub(pad)?)
}

// ---- HPACK (RFC 7541), only as far as the static table and plain literals go ----

/// The HPACK static table (RFC 7541 appendix A), index 1..=61.
pub(crate) const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Most fields read from one header block.
pub(crate) const MAX_FIELDS: usize = 128;
/// HPACK integers longer than this many continuation bytes overflow 2^28 and are rejected
/// (RFC 7541 section 5.1 leaves the limit to implementations).
const MAX_INT_CONTINUATIONS: usize = 4;

fn hpack_error<T>(i: &[u8]) -> PResult<'_, T> {
    Err(Err::Error(Error::new(i, ErrorKind::Verify)))
}

/// An integer with an `n`-bit prefix (RFC 7541 section 5.1).
fn parse_int(i: &[u8], n: u32) -> PResult<'_, usize> {
    let Some((&first, mut rest)) = i.split_first() else {
        return hpack_error(i);
    };
    let mask = (1usize << n) - 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok((rest, value));
    }
    for shift in 0..=MAX_INT_CONTINUATIONS {
        let Some((&b, r)) = rest.split_first() else {
            return hpack_error(i);
        };
        rest = r;
        value += usize::from(b & 0x7f) << (7 * shift);
        if b & 0x80 == 0 {
            return Ok((rest, value));
        }
    }
    hpack_error(i)
}

/// A string literal (RFC 7541 section 5.2): `None` when Huffman-coded (not decoded here).
fn parse_string(i: &[u8]) -> PResult<'_, Option<&[u8]>> {
    let huffman = i.first().is_some_and(|b| b & 0x80 != 0);
    let (rest, len) = parse_int(i, 7)?;
    let Some(s) = rest.get(..len) else {
        return hpack_error(i);
    };
    Ok((&rest[len..], (!huffman).then_some(s)))
}

/// The name of a static table entry, `None` for index 0 or the dynamic table.
fn static_entry(index: usize) -> Option<(&'static str, &'static str)> {
    STATIC_TABLE.get(index.checked_sub(1)?).copied()
}

/// The pseudo-header fields (`:method`, `:path`, `:status`, `:authority`, `:scheme`) of a
/// header block that HPACK can read without state: static table entries, and literals with
/// a static name and a plain (not Huffman-coded) value. Fields that refer to the dynamic
/// table or use Huffman coding are skipped; a malformed block ends the walk with what was
/// read so far.
pub(crate) fn pseudo_headers(mut block: &[u8]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for _ in 0..MAX_FIELDS {
        let Some(&first) = block.first() else { break };
        let field = if first & 0x80 != 0 {
            // Indexed header field (section 6.1).
            parse_int(block, 7).map(|(rest, index)| {
                (
                    rest,
                    static_entry(index).map(|(n, v)| (n, Some(v.to_owned()))),
                )
            })
        } else if first & 0xe0 == 0x20 {
            // Dynamic table size update (section 6.3).
            parse_int(block, 5).map(|(rest, _)| (rest, None))
        } else {
            // Literals: with incremental indexing 01 (6-bit index), without indexing 0000 or
            // never indexed 0001 (4-bit index) (section 6.2).
            let bits = if first & 0xc0 == 0x40 { 6 } else { 4 };
            parse_int(block, bits).and_then(|(rest, index)| {
                let (rest, name) = if index == 0 {
                    let (rest, name) = parse_string(rest)?;
                    let name =
                        name.and_then(|n| STATIC_TABLE.iter().find(|(s, _)| s.as_bytes() == n));
                    (rest, name.map(|(n, _)| *n))
                } else {
                    (rest, static_entry(index).map(|(n, _)| n))
                };
                let (rest, value) = parse_string(rest)?;
                let value = value.map(|v| String::from_utf8_lossy(v).into_owned());
                Ok((rest, name.map(|n| (n, value))))
            })
        };
        let Ok((rest, field)) = field else { break };
        block = rest;
        if let Some((name, Some(value))) = field {
            if name.starts_with(':') {
                out.push((name, value));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers() {
        // RFC 7541 C.1.1: 10 with a 5-bit prefix
        assert_eq!(parse_int(&[0x0a], 5), Ok((&[][..], 10)));
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix
        assert_eq!(parse_int(&[0x1f, 0x9a, 0x0a], 5), Ok((&[][..], 1337)));
        // too many continuation bytes
        assert!(parse_int(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 5).is_err());
        // truncated
        assert!(parse_int(&[0x1f, 0x9a], 5).is_err());
    }

    #[test]
    fn hpack_rfc7541_c3_1_request() {
        // RFC 7541 C.3.1: GET http://www.example.com/ without Huffman coding
        let block = [
            0x82, 0x86, 0x84, 0x41, 0x0f, b'w', b'w', b'w', b'.', b'e', b'x', b'a', b'm', b'p',
            b'l', b'e', b'.', b'c', b'o', b'm',
        ];
        assert_eq!(
            pseudo_headers(&block),
            vec![
                (":method", "GET".to_owned()),
                (":scheme", "http".to_owned()),
                (":path", "/".to_owned()),
                (":authority", "www.example.com".to_owned()),
            ]
        );
    }

    #[test]
    fn hpack_huffman_and_dynamic_are_skipped() {
        // :method GET, :authority Huffman-coded (RFC 7541 C.4.1), dynamic index 62, :path /
        let block = [
            0x82, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4,
            0xff, 0xbe, 0x84,
        ];
        assert_eq!(
            pseudo_headers(&block),
            vec![(":method", "GET".to_owned()), (":path", "/".to_owned())]
        );
    }

    #[test]
    fn settings_checks() {
        assert_eq!(check_settings(&[0, 3, 0, 0, 0, 100]), SettingsCheck::Known);
        assert_eq!(check_settings(&[]), SettingsCheck::Unknown);
        // ENABLE_PUSH 2 is a PROTOCOL_ERROR (RFC 9113 section 6.5.2)
        assert_eq!(check_settings(&[0, 2, 0, 0, 0, 2]), SettingsCheck::Invalid);
        // MAX_FRAME_SIZE below 2^14
        assert_eq!(
            check_settings(&[0, 5, 0, 0, 0x10, 0]),
            SettingsCheck::Invalid
        );
        // a GREASE-like unknown identifier
        assert_eq!(
            check_settings(&[0x0a, 0x0a, 0, 0, 0, 1]),
            SettingsCheck::Unknown
        );
        assert_eq!(check_settings(&[0, 0, 0, 0, 0, 1]), SettingsCheck::Invalid);
    }

    #[test]
    fn header_block_padding() {
        // PADDED: pad length 2, block [0x82], padding [0, 0]
        assert_eq!(
            header_block(&[2, 0x82, 0, 0], Flags::PADDED, 0),
            Some(&[0x82][..])
        );
        // pad length larger than the payload
        assert_eq!(header_block(&[9, 0x82], Flags::PADDED, 0), None);
        // PRIORITY: 5 bytes of dependency and weight first
        assert_eq!(
            header_block(&[0, 0, 0, 1, 16, 0x82], Flags::PRIORITY, 5),
            Some(&[0x82][..])
        );
    }
}
