//! nom parsers for HTTP/2 framing (RFC 9113 sections 3.4, 4.1 and 6) and a minimal HPACK
//! reader (RFC 7541) for the pseudo-header fields that the static table or plain literals
//! carry.

use nom::number::streaming::{be_u24, be_u32, be_u8};

use crate::parsing::PResult;

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

#[cfg(test)]
mod tests {
    use super::*;

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
