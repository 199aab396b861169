//! Kafka wire protocol (<https://kafka.apache.org/protocol.html>), over TCP, unencrypted.
//!
//! **Probe.** To the broker: a request frame `int32 size`, `int16 api_key`, `int16
//! api_version`, `int32 correlation_id`, `nullable string client_id` (request header v1; v2
//! adds tagged fields after it). The size must be `10..=104857600` (the broker's
//! `socket.request.max.bytes` default), the key one of the 93 known APIs, the version within
//! that API's known range (Kafka 4.1), the correlation id not negative, and the client id fit
//! the frame and be printable. Nothing is claimed before the client id is read: a complete
//! header is `STRONG`, a complete frame `CERTAIN`. To the client, a response header is only
//! `int32 size` + `int32 correlation_id`, too weak alone, so only an ApiVersions response
//! (the first answer modern clients get) is recognised: error_code 0 or 35 and an array of
//! ascending (api_key, min, max) entries in the v0-v2 or the flexible v3+ layout; three
//! plausible entries are `STRONG`, the whole body with its length matching the frame
//! `CERTAIN`. Bytes that read as the other direction match with `observed` set.
//!
//! **Look-alikes.** MongoDB and other little-endian length prefixes read as huge big-endian
//! sizes and fail the size check on the fourth byte; TDS (`0x12 0x01 ...`) likewise. A
//! Postgres StartupMessage (`int32 len`, `00 03 00 00`) reads as a Metadata v0 header, but
//! its "client id" holds the NUL-separated parameter list, which fails the printable check.
//! Random bytes need a size under 100 MiB, one of 93 keys and a small version at once.
//!
//! **Session.** See [`session`]: one record per frame, requests named by their API with
//! `client_id`, `api_version` and `correlation_id`; responses paired by correlation id. A
//! Produce with `acks = 0` gets no response, so it is a `Message`, not a `Request`.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId};
use nom::number::streaming::be_i32;
use nom::Err;

use self::parser::{
    parse_api_versions_body, parse_frame_size, parse_request_header, ApiVersionsFit,
    MIN_REQUEST_SIZE, MIN_RESPONSE_SIZE,
};

/// The protocol id.
pub(crate) const KAFKA: ProtocolId = ProtocolId::new("kafka");

/// Most bytes the probe reads: a request header with a long client id, or the first entries
/// of an ApiVersions response (a Kafka 4 broker lists about 90 APIs: about 650 bytes).
pub(crate) const PROBE_WINDOW: usize = 1024;

/// The Kafka classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kafka;

adi_classify::register_classifier!(adi_classify::Registration {
    id: KAFKA,
    category: Category::MESSAGE_BUS,
    description: "Kafka wire protocol: request headers, ApiVersions responses",
    default_ports: &[9092, 9093, 19092, 29092],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Kafka,
});

/// Looks for a request frame at the start of `buf`.
fn looks_like_request(buf: &[u8]) -> Probe {
    let (rest, size) = match parse_frame_size(buf, MIN_REQUEST_SIZE) {
        Ok(x) => x,
        Err(Err::Incomplete(_)) => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    let frame = rest.get(..size.min(rest.len())).unwrap_or_default();
    match parse_request_header(frame, size) {
        Ok((body, header)) if !plausible_body(&header, body) => Probe::NoMatch,
        Ok(_) if rest.len() >= size => {
            Probe::matched(Confidence::CERTAIN, "Kafka request header in a whole frame")
        }
        Ok(_) => Probe::matched(Confidence::STRONG, "Kafka request header"),
        Err(Err::Incomplete(_)) if frame.len() < size => Probe::NeedMore,
        Err(_) => Probe::NoMatch,
    }
}

/// Checks the first field of the request body where it is cheap and decisive: `acks` of a
/// Produce v0-v2 request (protocol guide, Produce Request v0: `acks => INT16`) is -1, 0 or 1.
/// An HTTP/2 SETTINGS frame header reads as a Produce v0 header with an empty client id; its
/// first setting then gives an impossible `acks`.
fn plausible_body(header: &parser::RequestHeader<'_>, body: &[u8]) -> bool {
    if header.api_key != parser::ApiKey::PRODUCE || header.api_version > 2 {
        return true;
    }
    match body {
        [hi, lo, ..] => matches!(i16::from_be_bytes([*hi, *lo]), -1..=1),
        _ => true,
    }
}

/// Looks for an ApiVersions response frame at the start of `buf`.
fn looks_like_response(buf: &[u8]) -> Probe {
    // correlation_id + error_code at least.
    let (rest, size) = match parse_frame_size(buf, MIN_RESPONSE_SIZE + 2) {
        Ok(x) => x,
        Err(Err::Incomplete(_)) => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    let Ok((body, correlation_id)) = be_i32::<_, nom::error::Error<&[u8]>>(rest) else {
        return Probe::NeedMore;
    };
    if correlation_id < 0 {
        return Probe::NoMatch;
    }
    let body_len = size - MIN_RESPONSE_SIZE;
    let avail = body.get(..body_len.min(body.len())).unwrap_or_default();
    let whole = avail.len() == body_len;
    let mut best = Probe::NoMatch;
    for flexible in [false, true] {
        let found = match parse_api_versions_body(avail, body_len, flexible) {
            Ok((_, ApiVersionsFit::Whole)) => Probe::matched(
                Confidence::CERTAIN,
                "Kafka ApiVersions response, whole frame",
            ),
            Ok((_, ApiVersionsFit::Plausible)) => {
                Probe::matched(Confidence::STRONG, "Kafka ApiVersions response entries")
            }
            Err(Err::Incomplete(_)) if !whole => Probe::NeedMore,
            Err(_) => Probe::NoMatch,
        };
        best = match (best, found) {
            (Probe::Match(a), Probe::Match(b)) if a.confidence >= b.confidence => best,
            (_, Probe::Match(_)) | (Probe::NoMatch, Probe::NeedMore) => found,
            _ => best,
        };
    }
    best
}

impl Classifier for Kafka {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = buf.get(..buf.len().min(PROBE_WINDOW)).unwrap_or_default();
        let (request, response) = (|| looks_like_request(buf), || looks_like_response(buf));
        // The expected reading decides while it can; the other one only when it is ruled out.
        let decided = match dir {
            Direction::ToServer => request(),
            Direction::ToClient => response(),
        };
        match (decided, dir) {
            (Probe::NoMatch, Direction::ToServer) => response().observed(dir.reverse()),
            (Probe::NoMatch, Direction::ToClient) => request().observed(dir.reverse()),
            (decided, _) => decided,
        }
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::KafkaSession::default())
    }
}
