//! memcached: the text protocol, its meta commands and the binary protocol
//! (<https://github.com/memcached/memcached/blob/master/doc/protocol.txt>,
//! `protocol_binary.h`).
//!
//! **Probe, binary.** A 24-byte header with magic `0x80` (request) or `0x81` (response), a
//! known opcode, a key of at most 250 bytes, extras of at most 20, data type 0, a known status
//! in responses, and a body length that holds the key and extras: `STRONG`; with the whole
//! body present, `CERTAIN`. Each byte is checked as it arrives, so random bytes fail early.
//!
//! **Probe, text.** To the server: a whole command line with memcached's argument shapes
//! (`set <key> <flags> <exptime> <bytes> [noreply]`, `cas ... <unique>`, `incr <key> <n>`,
//! meta `mg <key> <flags>*`, `ms <key> <datalen> <flags>*`, ...). A storage command whose data
//! block ends in `\r\n` exactly where `<bytes>` says is `CERTAIN`, before that `STRONG`; a
//! line only memcached sends (`gets`, `delete`, `incr`, several `get` keys, meta commands,
//! `stats`) is `STRONG`; `get <key>` and `quit`, which Redis also accepts inline in lower
//! case, are `WEAK` (Redis scores them below `REPORT` off its ports, so the port breaks the
//! tie). To the client: up to [`MAX_PROBE_LINES`] reply lines: a `VALUE`/`VA` block with a
//! matching data length is `CERTAIN`, a memcached-only reply (`STORED`, `NOT_FOUND`, `STAT`,
//! `VERSION`, `HD`, `EN`, ...) `STRONG`, a bare `END`, `OK`, `ERROR` or number `WEAK`. Bytes
//! that prove the other direction match with `observed` set.
//!
//! **Look-alikes.** Redis inline commands are upper case (`GET k`: memcached is
//! case-sensitive, `NoMatch`); Redis's lower-case `get k` is the one tie (see above). RESP
//! (`*`, `+`, `$`), NATS (`INFO`, `PING`, upper case), HTTP (upper case) and the SSLv2
//! ClientHello (`0x80` then a length: its "key length" exceeds 250) fail on the first bytes.
//!
//! **Session.** See [`session`]: commands with `op` (the command, lower case, binary opcodes
//! named alike) and `resource` (the key), replies with the status word (`STORED`, `EN`) or
//! the binary status, `noreply`/quiet commands as unpaired messages.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{
    probe_both_ways, Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId,
};
use nom::Err;

use self::parser::{
    binary_prefix_ok, parse_binary_header, parse_data_block, parse_text_command, parse_text_line,
    parse_text_reply, Magic, TextCommand, TextReply, TEXT_COMMANDS,
};

/// The protocol id.
pub(crate) const ID: ProtocolId = ProtocolId::new("memcached");

/// Most bytes the probe reads: a command line with a small value, or the first reply lines.
pub(crate) const PROBE_WINDOW: usize = 1024;

/// Most reply lines the probe reads looking for a stronger one than `END`.
pub(crate) const MAX_PROBE_LINES: usize = 8;

/// Reply keywords (protocol.txt), for prefixes in the probe.
const REPLY_WORDS: &[&[u8]] = &[
    b"VALUE",
    b"VA",
    b"STAT",
    b"ITEM",
    b"STORED",
    b"NOT_STORED",
    b"EXISTS",
    b"NOT_FOUND",
    b"DELETED",
    b"TOUCHED",
    b"HD",
    b"EN",
    b"NF",
    b"NS",
    b"EX",
    b"MN",
    b"ME",
    b"CLIENT_ERROR",
    b"SERVER_ERROR",
    b"VERSION",
    b"END",
    b"OK",
    b"ERROR",
    b"RESET",
];

/// The memcached classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memcached;

adi_classify::register_classifier!(adi_classify::Registration {
    id: ID,
    category: Category::CACHE,
    description: "memcached text, meta and binary protocols",
    default_ports: &[11211],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Memcached,
});

/// Is the partial first word of `buf` (up to a space or the end) a prefix of one of `names`,
/// or one of them followed by a space?
fn word_prefix_ok(buf: &[u8], names: &[&[u8]]) -> bool {
    let word = buf
        .split(|&c| c == b' ' || c == b'\r' || c == b'\n')
        .next()
        .unwrap_or_default();
    let complete = word.len() < buf.len();
    names.iter().any(|n| {
        if complete {
            *n == word
        } else {
            n.starts_with(word)
        }
    })
}

/// A binary packet at the start of `buf`, and whether it is a request.
fn looks_like_binary(buf: &[u8]) -> (Probe, bool) {
    let request = buf.first() == Some(&Magic::REQUEST.0);
    if !binary_prefix_ok(buf) {
        return (Probe::NoMatch, request);
    }
    let (rest, header) = match parse_binary_header(buf) {
        Ok(r) => r,
        Err(Err::Incomplete(_)) => return (Probe::NeedMore, request),
        Err(_) => return (Probe::NoMatch, request),
    };
    let body_len = usize::try_from(header.body_len).unwrap_or(usize::MAX);
    let evidence = if rest.len() >= body_len {
        Probe::matched(
            Confidence::CERTAIN,
            "memcached binary packet with consistent lengths",
        )
    } else {
        Probe::matched(Confidence::STRONG, "memcached binary header")
    };
    (evidence, request)
}

/// A text command at the start of `buf`.
fn looks_like_text_command(buf: &[u8]) -> Probe {
    let (rest, line) = match parse_text_line(buf) {
        Ok(r) => r,
        Err(Err::Incomplete(_)) if word_prefix_ok(buf, TEXT_COMMANDS) => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    match parse_text_command(line) {
        Some(TextCommand::Storage { data_len, .. }) => match parse_data_block(rest, data_len) {
            Ok(_) => Probe::matched(
                Confidence::CERTAIN,
                "memcached storage command and data block",
            ),
            Err(Err::Incomplete(_)) => {
                Probe::matched(Confidence::STRONG, "memcached storage command line")
            }
            Err(_) => Probe::NoMatch,
        },
        Some(TextCommand::Line { unique: true, .. }) => {
            Probe::matched(Confidence::STRONG, "memcached command line")
        }
        Some(TextCommand::Line { unique: false, .. }) => Probe::matched(
            Confidence::WEAK,
            "memcached get/quit line (Redis look-alike)",
        ),
        None => Probe::NoMatch,
    }
}

/// Text reply lines at the start of `buf`.
fn looks_like_text_replies(buf: &[u8]) -> Probe {
    let mut rest = buf;
    let mut best: Option<(Confidence, &'static str)> = None;
    for _ in 0..MAX_PROBE_LINES {
        let (after, line) = match parse_text_line(rest) {
            Ok(r) => r,
            Err(Err::Incomplete(_)) if best.is_some() => break,
            Err(Err::Incomplete(_)) => {
                let digits = rest.iter().all(u8::is_ascii_digit);
                return if digits || word_prefix_ok(rest, REPLY_WORDS) {
                    Probe::NeedMore
                } else {
                    Probe::NoMatch
                };
            }
            Err(_) => return Probe::NoMatch,
        };
        let found = match parse_text_reply(line) {
            Some(TextReply::Value { data_len, .. }) => match parse_data_block(after, data_len) {
                Ok((after, _)) => {
                    rest = after;
                    (
                        Confidence::CERTAIN,
                        "memcached VALUE block with matching length",
                    )
                }
                Err(Err::Incomplete(_)) => {
                    best = best.max(Some((Confidence::STRONG, "memcached VALUE line")));
                    break;
                }
                Err(_) => return Probe::NoMatch,
            },
            Some(TextReply::ListItem) => {
                rest = after;
                (Confidence::STRONG, "memcached STAT line")
            }
            Some(TextReply::End { unique: true, .. }) => {
                rest = after;
                (Confidence::STRONG, "memcached reply line")
            }
            Some(TextReply::End { unique: false, .. }) => {
                rest = after;
                (Confidence::WEAK, "memcached END/OK/ERROR line")
            }
            None => return Probe::NoMatch,
        };
        best = best.max(Some(found));
        if rest.is_empty() {
            break;
        }
    }
    best.map_or(Probe::NeedMore, |(c, r)| Probe::matched(c, r))
}

impl Classifier for Memcached {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = &buf[..buf.len().min(PROBE_WINDOW)];
        let Some(&first) = buf.first() else {
            return Probe::NeedMore;
        };
        // (request evidence, response evidence)
        let (request, response) = match first {
            0x80 | 0x81 => {
                let (e, is_request) = looks_like_binary(buf);
                if is_request {
                    (e, Probe::NoMatch)
                } else {
                    (Probe::NoMatch, e)
                }
            }
            b'a'..=b'z' => (looks_like_text_command(buf), Probe::NoMatch),
            b'A'..=b'Z' | b'0'..=b'9' => (Probe::NoMatch, looks_like_text_replies(buf)),
            _ => (Probe::NoMatch, Probe::NoMatch),
        };
        probe_both_ways(dir, || request, || response)
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::MemcachedSession::default())
    }
}
