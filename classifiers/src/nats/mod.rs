//! NATS client protocol (<https://docs.nats.io/reference/reference-protocols/nats-protocol>).
//!
//! **Probe.** The server speaks first with `INFO {json}\r\n`; the client answers
//! `CONNECT {json}\r\n`, then `PUB`/`HPUB`/`SUB`/`UNSUB`/`PING`/`PONG`; the server sends
//! `MSG`/`HMSG`/`PING`/`PONG`/`+OK`/`-ERR`. Verbs are case-insensitive. The probe reads up to
//! [`MAX_PROBE_MESSAGES`] whole messages from the start of the buffer and scores the best:
//! - `CERTAIN`: a whole `INFO {...}` or `CONNECT {...}` line, or a `PUB`/`HPUB`/`MSG`/`HMSG`
//!   whose payload ends with `\r\n` exactly where its size says (and, with headers, whose
//!   header block starts with `NATS/1.0`);
//! - `STRONG`: `INFO {` or `CONNECT {` before the line ends, a checked `PUB`/`MSG` control
//!   line whose payload has not all arrived, or a whole `SUB`/`UNSUB` line;
//! - a bare `PING`, `PONG`, `+OK` or `-ERR '...'` proves nothing: Redis inline commands and
//!   replies look the same. Alone they score [`AMBIGUOUS`] (below `REPORT`, never reported),
//!   or `WEAK` when the server port is a NATS port (the port breaks the tie only).
//!
//! A message only one side sends (`INFO`, `MSG`, `+OK` from the server; `CONNECT`, `PUB`, `SUB`
//! from the client) seen in the other direction matches with `observed` set. Random bytes are
//! rejected on the first byte unless it starts a verb, and on the second unless it continues
//! one.
//!
//! **Look-alikes.** Redis `INFO\r\n` / `INFO server\r\n` (no JSON object: `NoMatch`), Redis
//! inline `PING`, `+OK`/`-ERR` replies (ambiguous, see above), HTTP `CONNECT host:443 HTTP/1.1`
//! (no `{`: `NoMatch`), Redis `PUBLISH`/`SUBSCRIBE` (not a NATS verb).
//!
//! **Session.** See [`session`]: every operation becomes a record (verb as `op`, subject as
//! `resource`), with the client's name/lang/version from `CONNECT` and the server's
//! server_name/version from `INFO` as attributes.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{
    Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId, Sender,
};
use nom::Err;

use self::parser::{
    is_verb_prefix, parse_args, parse_control_line, parse_payload, split_control, verb_of, Verb,
    HEADER_MAGIC, MAX_VERB_LEN,
};

/// The protocol id.
pub(crate) const ID: ProtocolId = ProtocolId::new("nats");

/// Most bytes the probe reads: an `INFO` from nats-server 2.9 is about 300 bytes, a `CONNECT`
/// from the official clients about 200.
pub(crate) const PROBE_WINDOW: usize = 1024;

/// Most whole messages the probe reads past ambiguous ones (`PING`, `+OK`) looking for a
/// decisive one.
pub(crate) const MAX_PROBE_MESSAGES: usize = 8;

/// The score of a bare `PING`/`PONG`/`+OK`/`-ERR`, which Redis sends too: below
/// [`Confidence::REPORT`], so never reported on its own.
pub(crate) const AMBIGUOUS: Confidence = Confidence::new(50);

/// NATS client and cluster ports (as `docs/confidence.md` lists them).
const NATS_PORTS: &[u16] = &[4222, 6222];

/// The NATS classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nats;

adi_classify::register_classifier!(adi_classify::Registration {
    id: ID,
    category: Category::MESSAGE_BUS,
    description: "NATS client protocol (INFO/CONNECT/PUB/SUB/MSG)",
    default_ports: NATS_PORTS,
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Nats,
});

/// What one message at the start of a buffer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Evidence<'a> {
    /// Cannot be NATS.
    No,
    /// Could be NATS; nothing to score yet.
    More,
    /// An incomplete message that already scores.
    Partial(Confidence, &'static str, Sender),
    /// A whole message, and the bytes after it.
    Whole(Confidence, &'static str, Sender, &'a [u8]),
}

/// Can `c` start a verb? (`INFO CONNECT PUB HPUB SUB UNSUB MSG HMSG PING PONG +OK -ERR`.)
const fn starts_verb(c: u8) -> bool {
    matches!(
        c.to_ascii_uppercase(),
        b'I' | b'C' | b'P' | b'H' | b'S' | b'U' | b'M' | b'+' | b'-'
    )
}

/// Looks at the message at the start of `buf`.
fn looks_like_message(buf: &[u8]) -> Evidence<'_> {
    let Some(&first) = buf.first() else {
        return Evidence::More;
    };
    if !starts_verb(first) {
        return Evidence::No;
    }
    let head = &buf[..buf.len().min(MAX_VERB_LEN + 1)];
    let Some(end) = head
        .iter()
        .position(|&c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
    else {
        return if head.len() <= MAX_VERB_LEN && is_verb_prefix(head) {
            Evidence::More
        } else {
            Evidence::No
        };
    };
    let Some(verb) = verb_of(&head[..end]) else {
        return Evidence::No;
    };
    let sender = verb.sender();
    // INFO and CONNECT carry a JSON object: `{` after the blanks is the decisive byte.
    let json_verb = matches!(verb, Verb::Info | Verb::Connect);
    let mut partial = Evidence::More;
    if json_verb {
        let after = buf[end..].iter().find(|&&c| c != b' ' && c != b'\t');
        match after {
            None => return Evidence::More,
            Some(b'{') if end < buf.len() && matches!(buf[end], b' ' | b'\t') => {
                let reason = if verb == Verb::Info {
                    "NATS INFO {"
                } else {
                    "NATS CONNECT {"
                };
                partial = Evidence::Partial(Confidence::STRONG, reason, sender);
            }
            Some(_) => return Evidence::No,
        }
    }
    let (rest, line) = match parse_control_line(buf) {
        Ok(r) => r,
        Err(Err::Incomplete(_)) => return partial,
        Err(_) => return Evidence::No,
    };
    let Some(control) = split_control(line) else {
        return Evidence::No;
    };
    let Some(args) = parse_args(&control) else {
        return Evidence::No;
    };
    let whole = |c, r, rest| Evidence::Whole(c, r, sender, rest);
    match verb {
        Verb::Info => whole(Confidence::CERTAIN, "NATS INFO line", rest),
        Verb::Connect => whole(Confidence::CERTAIN, "NATS CONNECT line", rest),
        Verb::Pub | Verb::Hpub | Verb::Msg | Verb::Hmsg => {
            let (line_reason, whole_reason) = match verb {
                Verb::Pub => ("NATS PUB control line", "NATS PUB with payload"),
                Verb::Hpub => (
                    "NATS HPUB control line",
                    "NATS HPUB with headers and payload",
                ),
                Verb::Msg => ("NATS MSG control line", "NATS MSG with payload"),
                _ => (
                    "NATS HMSG control line",
                    "NATS HMSG with headers and payload",
                ),
            };
            match parse_payload(rest, args.total) {
                Ok((after, payload)) => {
                    if args.header_len > 0 && !payload.starts_with(HEADER_MAGIC) {
                        return Evidence::No;
                    }
                    whole(Confidence::CERTAIN, whole_reason, after)
                }
                Err(Err::Incomplete(_)) => {
                    // The header block's first bytes are checkable before the payload ends.
                    let n = rest.len().min(HEADER_MAGIC.len());
                    if args.header_len > 0 && rest[..n] != HEADER_MAGIC[..n] {
                        return Evidence::No;
                    }
                    Evidence::Partial(Confidence::STRONG, line_reason, sender)
                }
                Err(_) => Evidence::No,
            }
        }
        Verb::Sub => whole(Confidence::STRONG, "NATS SUB line", rest),
        Verb::Unsub => whole(Confidence::STRONG, "NATS UNSUB line", rest),
        Verb::Ping | Verb::Pong => whole(AMBIGUOUS, "NATS PING/PONG only", rest),
        Verb::Ok => whole(AMBIGUOUS, "NATS +OK only", rest),
        // nats-server quotes its error text: `-ERR 'Unknown Protocol Operation'`.
        Verb::Err if control.rest.first() == Some(&b'\'') => {
            whole(AMBIGUOUS, "NATS -ERR only", rest)
        }
        Verb::Err => Evidence::No,
    }
}

impl Classifier for Nats {
    fn probe(&self, buf: &[u8], dir: Direction, ports: PortHint) -> Probe {
        let mut rest = &buf[..buf.len().min(PROBE_WINDOW)];
        let mut best: Option<(Confidence, &'static str, Sender)> = None;
        let mut more = false;
        for _ in 0..MAX_PROBE_MESSAGES {
            let (conf, reason, sender) = match looks_like_message(rest) {
                Evidence::No => return Probe::NoMatch,
                Evidence::More => {
                    more = true;
                    break;
                }
                Evidence::Partial(c, r, s) => {
                    more = true;
                    (c, r, s)
                }
                Evidence::Whole(c, r, s, after) => {
                    rest = after;
                    (c, r, s)
                }
            };
            if best.is_none_or(|(b, _, _)| conf > b) {
                best = Some((conf, reason, sender));
            }
            if more || conf >= Confidence::CERTAIN || rest.is_empty() {
                break;
            }
        }
        let Some((mut conf, reason, sender)) = best else {
            return if more {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            };
        };
        // Only ambiguous messages so far: the port breaks the tie with Redis.
        if conf == AMBIGUOUS && ports.server.is_some_and(|p| NATS_PORTS.contains(&p)) {
            conf = Confidence::WEAK;
        }
        Probe::matched(conf, reason).sent_by(sender).given(dir)
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::NatsSession::default())
    }
}
