//! HTTP/2 (RFC 9113): prior-knowledge h2c, h2 bytes after an HTTP/1.1 `Upgrade: h2c` (the
//! http1 session announces the switch on `101`), and h2 read as plaintext from a TLS library.
//! HTTP/2 inside TLS seen only on the wire is named `tls` by its handshake; the ALPN `h2`
//! attribute of the ClientHello tells it apart.
//!
//! **Probe.** To the server: the 24-byte client connection preface `PRI * HTTP/2.0\r\n\r\nSM
//! \r\n\r\n` (RFC 9113 section 3.4), `NeedMore` on every prefix of it; the whole preface is
//! `STRONG`, and `CERTAIN` once the SETTINGS frame that must follow it is read with known
//! identifiers and valid values (a preface followed by something else is only `WEAK`). To the
//! client: the server's preface is a SETTINGS frame, checked strictly byte by byte: length
//! a multiple of 6 and at most 2^14, type 4, flags 0 (or ACK with an empty payload), reserved
//! bit 0 and stream id exactly 0. That 9-byte header alone is `WEAK`; with its whole payload
//! (known identifiers 1..6, 8, 9 and valid values; identifier 0 or an out-of-range value
//! rejects) it is `STRONG`, and `CERTAIN` when the next frame header obeys its type's rules
//! too (nginx sends SETTINGS then WINDOW_UPDATE). A preface seen in the wrong direction
//! matches with `observed` set.
//!
//! **Look-alikes.** HTTP/1.x never matches the preface (the http1 classifier rejects the
//! `PRI` method). Length-prefixed binary protocols (Kafka's u32 size, TDS's type/status,
//! Mongo's little-endian length) would need a first byte 0, a type byte 4, a zero flags byte
//! and four zero stream-id bytes at once, and then a payload of valid settings.
//!
//! **Session.** See [`session`]: frames, header blocks decoded with HPACK (`loona-hpack`, one
//! dynamic table per direction), streams paired into request and response records by stream
//! id, DATA bodies; a direction joined mid-stream is never decoded with a table it does not
//! know.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use self::parser::{
    check_settings, frame_rules_hold, parse_frame_header, Flags, FrameType, SettingsCheck,
    DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, PREFACE, SETTING_LEN,
};
use adi_classify::{
    probe_both_ways, Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId,
};

/// The protocol id.
pub(crate) const ID: ProtocolId = ProtocolId::new("http2");

/// Most bytes the probe reads: the preface, a SETTINGS frame with every known identifier
/// (48 bytes) and the next frame header, with room for unknown settings.
pub(crate) const PROBE_WINDOW: usize = 256;

/// The HTTP/2 classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Http2;

adi_classify::register_classifier!(adi_classify::Registration {
    id: ID,
    category: Category::HTTP,
    description: "HTTP/2 (h2c, or h2 from a TLS library): preface, SETTINGS, frames; requests and responses by stream with HPACK",
    default_ports: &[],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Http2,
});

/// One band up, for the evidence a following frame header adds.
fn raise(c: Confidence) -> Confidence {
    if c >= Confidence::STRONG {
        Confidence::CERTAIN
    } else {
        Confidence::STRONG
    }
}

/// The client connection preface and the SETTINGS frame after it.
fn looks_like_preface(buf: &[u8]) -> Probe {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        return Probe::NoMatch;
    }
    let Some(rest) = buf.get(PREFACE.len()..) else {
        return Probe::NeedMore;
    };
    // RFC 9113 section 3.4: the preface is followed by a (non-ACK) SETTINGS frame.
    match parse_frame_header(rest) {
        Err(_) => Probe::matched(Confidence::STRONG, "HTTP/2 client preface"),
        Ok((payload, h)) => {
            let settings = h.frame_type == FrameType::SETTINGS
                && h.flags & Flags::ACK == 0
                && frame_rules_hold(&h) == Some(true);
            if !settings {
                return Probe::matched(Confidence::WEAK, "HTTP/2 client preface, no SETTINGS");
            }
            match payload.get(..h.len).map(check_settings) {
                Some(SettingsCheck::Known) => {
                    Probe::matched(Confidence::CERTAIN, "HTTP/2 client preface and SETTINGS")
                }
                Some(SettingsCheck::Invalid) => {
                    Probe::matched(Confidence::WEAK, "HTTP/2 client preface, bad SETTINGS")
                }
                Some(SettingsCheck::Unknown) | None => {
                    Probe::matched(Confidence::STRONG, "HTTP/2 client preface")
                }
            }
        }
    }
}

/// The server connection preface: a SETTINGS frame on stream 0, checked byte by byte so that
/// other binary protocols are rejected on their first differing byte.
fn looks_like_server_settings(buf: &[u8]) -> Probe {
    // Length u24 <= 2^14 (the default SETTINGS_MAX_FRAME_SIZE): first byte 0, second <= 0x40.
    if buf.first().is_some_and(|&b| b != 0) || buf.get(1).is_some_and(|&b| b > 0x40) {
        return Probe::NoMatch;
    }
    let len = match buf.get(..3) {
        Some(&[_, hi, lo]) => usize::from(hi) << 8 | usize::from(lo),
        _ => return Probe::NeedMore,
    };
    if !len.is_multiple_of(SETTING_LEN) || len > DEFAULT_MAX_FRAME_LEN {
        return Probe::NoMatch;
    }
    // Type SETTINGS; flags 0, or ACK on an empty payload (RFC 9113 section 6.5).
    if buf
        .get(3)
        .is_some_and(|&t| FrameType(t) != FrameType::SETTINGS)
    {
        return Probe::NoMatch;
    }
    if buf
        .get(4)
        .is_some_and(|&f| !(f == 0 || (f == Flags::ACK && len == 0)))
    {
        return Probe::NoMatch;
    }
    // Reserved bit and stream id: exactly 0 (section 6.5: SETTINGS is on stream 0).
    let header_end = buf.len().min(FRAME_HEADER_LEN);
    if buf
        .get(5..header_end)
        .is_some_and(|s| s.iter().any(|&b| b != 0))
    {
        return Probe::NoMatch;
    }
    if buf.len() < FRAME_HEADER_LEN {
        return Probe::NeedMore;
    }
    let weak = Probe::matched(Confidence::WEAK, "HTTP/2 SETTINGS frame header");
    let Some(payload) = buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
        return weak;
    };
    let (confidence, reason) = match check_settings(payload) {
        SettingsCheck::Invalid => return Probe::NoMatch,
        SettingsCheck::Known => (Confidence::STRONG, "HTTP/2 server SETTINGS"),
        SettingsCheck::Unknown => (Confidence::WEAK, "HTTP/2 SETTINGS frame"),
    };
    let next = &buf[FRAME_HEADER_LEN + len..];
    match parse_frame_header(next) {
        Ok((_, h)) => match frame_rules_hold(&h) {
            Some(true) => {
                Probe::matched(raise(confidence), "HTTP/2 server SETTINGS and next frame")
            }
            Some(false) => Probe::NoMatch,
            None => Probe::matched(confidence, reason),
        },
        Err(_) => Probe::matched(confidence, reason),
    }
}

impl Classifier for Http2 {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = buf.get(..buf.len().min(PROBE_WINDOW)).unwrap_or_default();
        if buf.is_empty() {
            return Probe::NeedMore;
        }
        probe_both_ways(
            dir,
            || looks_like_preface(buf),
            || looks_like_server_settings(buf),
        )
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::Http2Session::default())
    }
}
