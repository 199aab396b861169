//! Redis serialization protocol, RESP2 and RESP3
//! (<https://redis.io/docs/latest/develop/reference/protocol-spec/>).
//!
//! **Probe, to the server.** A command array `*N\r\n$len\r\nNAME\r\n...` of bulk strings
//! whose name is a known command ([`commands`], Redis 7.0's table, case-insensitive) with a
//! fitting arity: `CERTAIN` once every argument has arrived with matching lengths, `STRONG`
//! before. An unknown name (a module command) in a well-formed array scores one band lower.
//! An inline command (`PING\r\n`, `SET k v\r\n`) is `WEAK` once its whole line has arrived
//! with a known upper-case name and a fitting arity; in lower case it is a tie with memcached
//! (`get k\r\n`) and scores [`AMBIGUOUS`] (below `REPORT`) unless the server port is a Redis
//! port, where it is `WEAK`.
//!
//! **Probe, to the client.** Up to [`MAX_PROBE_VALUES`] whole replies of any RESP2/RESP3
//! type, nested at most [`parser::MAX_DEPTH`] levels, every length checked: a bulk string
//! (or an aggregate holding one) whose body ends in CRLF exactly where its length says is
//! `CERTAIN`; an integer, boolean, double, big number, empty aggregate or null, or a bulk
//! header whose body is still arriving, is `STRONG`; a lone simple string or error (`+OK`,
//! `-ERR ...`) is `WEAK`. Bytes that prove the other direction (a reply sent to the server, an
//! inline command sent to the client) match with `observed` set. Random bytes fail on the
//! first byte unless it is a RESP type byte or a letter, and within a few bytes after.
//!
//! **Look-alikes.** NATS `PING\r\n` (an inline `PING` is `WEAK` here and at most
//! [`AMBIGUOUS`] for NATS off its ports, so the port decides), NATS `INFO {...}` and
//! `CONNECT {...}` (JSON arguments and `CONNECT` are not Redis: `NoMatch`), NATS `+OK` and
//! `-ERR '...'` (the quoted error is refused here); memcached text commands (lower case, so
//! `AMBIGUOUS`, and memcached's own shapes fail Redis arities: `incr k 1`, `EXISTS` alone);
//! HTTP `GET / HTTP/1.1` (three words: `GET` takes one argument, `NoMatch`, and nothing is
//! reported before the line ends); POP3 `+OK` greetings (`WEAK` only).
//!
//! **Session.** See [`session`]: each command is a request (`op` the upper-case command name,
//! `resource` its first key or channel), each reply a response (`type`, and `error` for
//! errors); RESP3 pushes and RESP2 pub/sub messages are messages.

mod commands;
mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{
    probe_both_ways, Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId,
};
use nom::Err;

use self::commands::MAX_KNOWN_NAME_LEN;
use self::parser::{
    is_name_byte, parse_command_head, parse_inline_line, scan_value, skip_bulk_args, InlineWords,
    Scan, Strength, TypeByte, MAX_DEPTH,
};

/// The protocol id.
pub(crate) const ID: ProtocolId = ProtocolId::new("redis");

/// Most bytes the probe reads: a command with a few arguments, or the first replies (a RESP3
/// `HELLO` map is about 150 bytes).
pub(crate) const PROBE_WINDOW: usize = 1024;

/// Most whole replies the probe reads looking for a stronger one than `+OK`.
pub(crate) const MAX_PROBE_VALUES: usize = 8;

/// The score of evidence another protocol shares exactly (a lower-case inline command, which
/// memcached also sends): below [`Confidence::REPORT`], so never reported on its own.
pub(crate) const AMBIGUOUS: Confidence = Confidence::new(50);

/// Redis and Redis Sentinel (the ports `docs/confidence.md` lists).
const REDIS_PORTS: &[u16] = &[6379, 26379];

/// The Redis classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redis;

adi_classify::register_classifier!(adi_classify::Registration {
    id: ID,
    category: Category::CACHE,
    description: "Redis RESP2/RESP3 commands and replies, inline commands",
    default_ports: REDIS_PORTS,
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Redis,
});

/// A command array at the start of `buf`.
fn looks_like_command_array(buf: &[u8]) -> Probe {
    let (rest, head) = match parse_command_head(buf) {
        Ok(r) => r,
        Err(Err::Incomplete(_)) => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    let known = commands::lookup(head.name)
        .is_some_and(|c| usize::try_from(head.words).is_ok_and(|w| c.arity_ok(w)));
    match (skip_bulk_args(rest, head.words - 1), known) {
        (Ok(_), true) => Probe::matched(
            Confidence::CERTAIN,
            "RESP command array with a known command",
        ),
        (Ok(_), false) => Probe::matched(Confidence::STRONG, "RESP command array"),
        (Err(Err::Incomplete(_)), true) => Probe::matched(
            Confidence::STRONG,
            "RESP command array header with a known command",
        ),
        (Err(Err::Incomplete(_)), false) => {
            Probe::matched(Confidence::WEAK, "RESP command array header")
        }
        (Err(_), _) => Probe::NoMatch,
    }
}

/// An inline command at the start of `buf`.
fn looks_like_inline(buf: &[u8], ports: PortHint) -> Probe {
    let head = &buf[..buf.len().min(MAX_KNOWN_NAME_LEN + 1)];
    let Some(end) = head.iter().position(|&c| !is_name_byte(c)) else {
        return if head.len() <= MAX_KNOWN_NAME_LEN && commands::is_prefix(head) {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    // The byte after the name is checked first: it rejects most random bytes before the
    // table lookup.
    if !matches!(head[end], b' ' | b'\t' | b'\r' | b'\n') {
        return Probe::NoMatch;
    }
    let name = &head[..end];
    let Some(command) = commands::lookup(name) else {
        return Probe::NoMatch;
    };
    let line = match parse_inline_line(buf) {
        Ok((_, line)) => line,
        // Only a whole line is evidence: `GET /` may still become `GET / HTTP/1.1`.
        Err(Err::Incomplete(_)) if buf.len() < PROBE_WINDOW => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    // Printable text only (quoted binary is escaped by clients).
    if !line
        .iter()
        .all(|&c| c == b'\t' || (b' '..=b'~').contains(&c))
    {
        return Probe::NoMatch;
    }
    let mut words = 0_usize;
    for word in InlineWords::new(line) {
        let Ok(word) = word else {
            return Probe::NoMatch;
        };
        // NATS `INFO {"server_id":...}` and `CONNECT {"verbose":...}` carry JSON.
        if word.starts_with(b"{\"") {
            return Probe::NoMatch;
        }
        words += 1;
    }
    if !command.arity_ok(words) {
        return Probe::NoMatch;
    }
    let upper = name.iter().all(|c| !c.is_ascii_lowercase());
    if upper || ports.server.is_some_and(|p| REDIS_PORTS.contains(&p)) {
        Probe::matched(Confidence::WEAK, "Redis inline command")
    } else {
        Probe::matched(
            AMBIGUOUS,
            "lower-case inline command (memcached look-alike)",
        )
    }
}

/// Whole replies at the start of `buf`.
fn looks_like_replies(buf: &[u8]) -> Probe {
    if buf.first().is_none_or(|&c| TypeByte(c).shape().is_none()) {
        return Probe::NoMatch;
    }
    let mut rest = buf;
    let mut best = None;
    for _ in 0..MAX_PROBE_VALUES {
        match scan_value(rest, MAX_DEPTH) {
            Scan::Whole(s, r) => {
                best = best.max(Some(s));
                rest = r;
                if rest.is_empty() {
                    break;
                }
            }
            Scan::Partial(s) => {
                best = best.max(Some(s));
                break;
            }
            Scan::Invalid => return Probe::NoMatch,
        }
    }
    match best {
        Some(Strength::Framed) => {
            Probe::matched(Confidence::CERTAIN, "RESP reply with checked lengths")
        }
        Some(Strength::Typed) => Probe::matched(Confidence::STRONG, "RESP typed reply"),
        Some(Strength::Plain) => Probe::matched(Confidence::WEAK, "RESP simple string or error"),
        Some(Strength::Nothing) | None => Probe::NeedMore,
    }
}

impl Classifier for Redis {
    fn probe(&self, buf: &[u8], dir: Direction, ports: PortHint) -> Probe {
        let buf = &buf[..buf.len().min(PROBE_WINDOW)];
        let Some(&first) = buf.first() else {
            return Probe::NeedMore;
        };
        let command = || {
            if first == TypeByte::ARRAY.0 {
                looks_like_command_array(buf)
            } else if first.is_ascii_alphabetic() {
                looks_like_inline(buf, ports)
            } else {
                Probe::NoMatch
            }
        };
        // Replies: any RESP value. A command array is also a valid reply, so to the client
        // only an inline command proves the other direction. The other direction is only
        // looked at when the expected one does not match (each can scan the whole window).
        let from_client = || match dir {
            Direction::ToClient if first == TypeByte::ARRAY.0 => Probe::NoMatch,
            _ => command(),
        };
        probe_both_ways(dir, from_client, || looks_like_replies(buf))
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::RedisSession::default())
    }
}
