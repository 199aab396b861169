//! AMQP 0-9-1 (<https://www.rabbitmq.com/resources/specs/amqp0-9-1.pdf>, section 4.2), the
//! protocol of RabbitMQ.
//!
//! **Probe.** A connection starts with the client's 8-byte protocol header
//! `AMQP\x00\x00\x09\x01`; the server answers with a Connection.Start method frame (or, to a
//! version it does not speak, with its own protocol header, section 4.2.2). After that both
//! sides exchange frames: type (1 method, 2 content header, 3 content body, 8 heartbeat),
//! channel u16, size u32, payload, frame-end `0xCE`. Bands:
//! - `CERTAIN`: a whole known protocol header (0-9-1; also 0-9, 0-8, 0-10 and AMQP 1.0 /
//!   1.0 SASL / 1.0 TLS, each with its own reason); a whole method frame with a known
//!   class/method, on the right channel (connection methods on 0, others not), its
//!   arguments parsed (field tables checked entry by entry, depth bounded) and its frame-end
//!   in place; a whole content header frame of the basic class; a heartbeat frame.
//! - `STRONG`: a method or content header frame whose header and class/method are checked
//!   but whose payload has not all arrived; a whole content body frame.
//! - `WEAK`: `AMQP` followed by four version bytes the probe does not know (all below 0x10);
//!   any other bytes after `AMQP` are not a protocol header.
//!
//! A method only one side sends (Connection.Start from the server, Start-Ok or Basic.Publish
//! from the client...) seen in the other direction matches with `observed` set. Random bytes
//! are rejected on the first byte unless it is `A` or a frame type (1, 2, 3, 8), and on the
//! fourth unless the size fits [`parser::MAX_FRAME_SIZE`].
//!
//! **Look-alikes.** Text that merely starts with `AMQP` (version bytes printable: `NoMatch`);
//! binary protocols whose first byte is 1, 2, 3 or 8 (MySQL packets, Kafka sizes, TDS) fail
//! the size, class/method and frame-end checks.
//!
//! **Session.** See [`session`]: one record per method (`class.method` as `op`, the queue or
//! exchange or routing key as `resource`), content bodies attached to their basic.publish /
//! deliver / return / get-ok, client and server properties (product, version, platform,
//! connection_name, cluster_name) as attributes of Connection.Start-Ok / Start.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId};
use nom::Err;

use self::parser::{
    parse_arguments, parse_content_header, parse_frame, parse_frame_header, parse_method_id,
    FrameType, MethodId, AMQP_MAGIC, FRAME_HEADER_LEN, HEADER_LEN,
};

/// The protocol id.
pub(crate) const ID: ProtocolId = ProtocolId::new("amqp");

/// Most bytes the probe reads: RabbitMQ 3.10's Connection.Start is 509 bytes.
pub(crate) const PROBE_WINDOW: usize = 1024;

/// Known protocol headers: the four bytes after `AMQP` (section 4.2.2 and its predecessors;
/// AMQP 1.0 section 2.2 for protocol ids 0, 2 (TLS) and 3 (SASL)).
pub(crate) const KNOWN_HEADERS: &[([u8; 4], &str, &str)] = &[
    ([0, 0, 9, 1], "0-9-1", "AMQP 0-9-1 protocol header"),
    ([1, 1, 0, 9], "0-9", "AMQP 0-9 protocol header"),
    ([1, 1, 8, 0], "0-8", "AMQP 0-8 protocol header"),
    ([1, 1, 0, 10], "0-10", "AMQP 0-10 protocol header"),
    ([0, 1, 0, 0], "1.0", "AMQP 1.0 protocol header"),
    ([3, 1, 0, 0], "1.0-sasl", "AMQP 1.0 SASL protocol header"),
    ([2, 1, 0, 0], "1.0-tls", "AMQP 1.0 TLS protocol header"),
];

/// The version name and probe reason of a known protocol header.
pub(crate) fn known_header(version: &[u8]) -> Option<(&'static str, &'static str)> {
    KNOWN_HEADERS
        .iter()
        .find(|(v, ..)| v == version)
        .map(|&(_, name, reason)| (name, reason))
}

/// The AMQP 0-9-1 classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Amqp;

adi_classify::register_classifier!(adi_classify::Registration {
    id: ID,
    category: Category::MESSAGE_BUS,
    description: "AMQP 0-9-1 (RabbitMQ): protocol header and frames",
    default_ports: &[5672, 5671],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Amqp,
});

/// Looks for a protocol header at the start of `buf` (which starts with a prefix of `AMQP`).
fn looks_like_header(buf: &[u8]) -> Probe {
    let version = &buf[AMQP_MAGIC.len().min(buf.len())..buf.len().min(HEADER_LEN)];
    // Every version byte ever used is below 0x10; text after `AMQP` is not a header.
    if version.iter().any(|&b| b >= 0x10) {
        return Probe::NoMatch;
    }
    if buf.len() < HEADER_LEN {
        return Probe::NeedMore;
    }
    match known_header(version) {
        Some((_, reason)) => Probe::matched(Confidence::CERTAIN, reason),
        None => Probe::matched(Confidence::WEAK, "AMQP magic with an unknown version"),
    }
}

/// Looks for a frame at the start of `buf`.
fn looks_like_frame(buf: &[u8]) -> Probe {
    let header = match parse_frame_header(buf) {
        Ok((_, h)) => h,
        Err(Err::Incomplete(_)) => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    let size = header.size as usize;
    let whole = parse_frame(buf);
    let payload = match whole {
        Ok((_, (_, payload))) => Some(payload),
        Err(Err::Incomplete(_)) => None,
        Err(_) => return Probe::NoMatch,
    };
    match header.kind {
        FrameType::HEARTBEAT => {
            if header.channel != 0 || size != 0 {
                return Probe::NoMatch;
            }
            match payload {
                Some(_) => Probe::matched(Confidence::CERTAIN, "AMQP heartbeat frame"),
                None => Probe::NeedMore,
            }
        }
        FrameType::METHOD => {
            let Some(ids) = buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + 4) else {
                return if size >= 4 {
                    Probe::NeedMore
                } else {
                    Probe::NoMatch
                };
            };
            let Ok((_, id)) = parse_method_id(ids) else {
                return Probe::NoMatch;
            };
            let Some(sender) = id.sender() else {
                return Probe::NoMatch;
            };
            // Connection methods travel on channel 0, every other class on a channel >= 1
            // (section 4.2.3 and 2.3.5.1).
            if (id.class == MethodId::CONNECTION_CLASS) != (header.channel == 0) {
                return Probe::NoMatch;
            }
            match payload {
                Some(p) => match parse_arguments(id, &p[4..]) {
                    Ok(_) => {
                        Probe::matched(Confidence::CERTAIN, "AMQP method frame").sent_by(sender)
                    }
                    Err(_) => Probe::NoMatch,
                },
                None => {
                    Probe::matched(Confidence::STRONG, "AMQP method frame header").sent_by(sender)
                }
            }
        }
        FrameType::HEADER => {
            if header.channel == 0 {
                return Probe::NoMatch;
            }
            // class-id (basic) and weight (0), section 4.2.6.1.
            let fixed = buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + 4);
            let Some(fixed) = fixed else {
                let seen = &buf[FRAME_HEADER_LEN..];
                let want = [0, MethodId::BASIC_CLASS as u8, 0, 0];
                return if seen == &want[..seen.len()] {
                    Probe::NeedMore
                } else {
                    Probe::NoMatch
                };
            };
            if fixed != [0, MethodId::BASIC_CLASS as u8, 0, 0] {
                return Probe::NoMatch;
            }
            match payload.map(parse_content_header) {
                Some(Ok(_)) => Probe::matched(Confidence::CERTAIN, "AMQP content header frame"),
                Some(Err(_)) => Probe::NoMatch,
                None => Probe::matched(Confidence::STRONG, "AMQP content header frame header"),
            }
        }
        FrameType::BODY => {
            if header.channel == 0 {
                return Probe::NoMatch;
            }
            match payload {
                Some(_) => Probe::matched(Confidence::STRONG, "AMQP content body frame"),
                // The frame-end must be inside the window to be checked.
                None if FRAME_HEADER_LEN + size < PROBE_WINDOW => Probe::NeedMore,
                None => Probe::NoMatch,
            }
        }
        _ => Probe::NoMatch,
    }
}

impl Classifier for Amqp {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = &buf[..buf.len().min(PROBE_WINDOW)];
        let Some(&first) = buf.first() else {
            return Probe::NeedMore;
        };
        let evidence = if first == AMQP_MAGIC[0] {
            let n = buf.len().min(AMQP_MAGIC.len());
            if buf[..n] == AMQP_MAGIC[..n] {
                looks_like_header(buf)
            } else {
                Probe::NoMatch
            }
        } else {
            looks_like_frame(buf)
        };
        evidence.given(dir)
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::AmqpSession::default())
    }
}
