//! MySQL client/server protocol (MariaDB too)
//! (<https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html>).
//!
//! **Probe.** Every packet is a 3-byte little-endian payload length and a sequence id. The
//! server speaks first, so the strongest evidence travels to the client: a HandshakeV10
//! greeting (sequence 0, protocol version 10, a NUL-terminated server version starting with
//! a digit, connection id, auth-plugin data, a zero filler byte, capability flags with
//! `CLIENT_PROTOCOL_41`, a plugin name) or an ERR packet sent instead of it (sequence 0,
//! `0xff`, an error code ≥ 1000, text). To the server: a HandshakeResponse41 (sequence 1,
//! `CLIENT_PROTOCOL_41`, 19 zero filler bytes, user, auth response, schema and plugin as the
//! flags say, connection attributes whose lengths add up) or the SSLRequest (the 32-byte
//! fixed part alone with `CLIENT_SSL`). Mid-connection: a command at sequence 0 (`COM_QUERY`
//! and `COM_STMT_PREPARE` with text, `COM_INIT_DB`, `COM_STMT_EXECUTE`, and weakly the
//! one-byte `COM_PING`/`COM_QUIT`...), and to the client an ERR with `#` SQLSTATE, an OK
//! packet, or a result-set header followed by a `def` column definition. Bands: a whole
//! greeting, handshake response, SSLRequest, query or ERR is `CERTAIN`; a greeting whose
//! version string is complete, a handshake's fixed part, an OK packet are `STRONG`; one-byte
//! commands and the start of a query longer than the window are `WEAK`. Bytes of the other
//! direction match with `observed` set.
//!
//! **Look-alikes.** PostgreSQL and Kafka frames start with a big-endian `int32` length whose
//! first bytes are 0 here: a payload length of 0 or a sequence id that is not 0/1. Text
//! protocols (HTTP, Redis, NATS) give a sequence id that is a letter or space. TLS records
//! (`16 03 0x ..`) give sequence ids above 1.
//!
//! **Session.** See [`session`]: greeting, login (user, schema), authentication exchanges,
//! commands and their responses with result sets skipped packet by packet.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{
    probe_both_ways, Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId,
};
use nom::Err;

use self::parser::{
    greeting_version, handshake_fixed_ok, is_ssl_request, is_text, lenenc, lenenc_bytes, ok_tail,
    parse_err, parse_greeting, parse_handshake_response, parse_header, parse_ok, Command, Header,
    Version, ERR_HEADER, HANDSHAKE_FIXED_LEN, MAX_GREETING_LEN, OK_HEADER, PROTOCOL_VERSION_10,
};

/// The protocol id.
pub(crate) const MYSQL: ProtocolId = ProtocolId::new("mysql");

/// Most bytes the probe reads: greetings are 70-130 bytes, handshake responses with
/// connection attributes 100-400.
pub(crate) const PROBE_WINDOW: usize = 1024;

/// Most columns of a result set the probe believes: `MAX_FIELDS` (4096) in MySQL's
/// `sql/sql_const.h`.
const MAX_COLUMNS: u64 = 4096;
/// Longest handshake response the probe waits for (connection attributes are capped at
/// 64 KiB by `performance_schema_session_connect_attrs_size`).
const MAX_HANDSHAKE_LEN: usize = 64 * 1024;
/// Longest ERR or OK packet the probe waits for.
const MAX_SMALL_PACKET_LEN: usize = 1024;
/// The sequence id and first payload bytes of the first column definition after a
/// result-set header: sequence 2, catalog `lenenc "def"` ("Protocol::ColumnDefinition41").
const COLUMN_DEF_START: [u8; 5] = [2, 3, b'd', b'e', b'f'];
/// How many bytes of an oversized query must look like text before it counts as `WEAK`.
const TEXT_PREFIX: usize = 16;

/// The MySQL/MariaDB classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mysql;

adi_classify::register_classifier!(adi_classify::Registration {
    id: MYSQL,
    category: Category::DATABASE,
    description: "MySQL/MariaDB client/server protocol (greeting, login, COM_* commands)",
    default_ports: &[3306],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Mysql,
});

/// The header and the payload bytes at hand, or the evidence to return now.
fn header(buf: &[u8]) -> Result<(Header, &[u8]), Probe> {
    match parse_header(buf) {
        Ok((_, h)) if h.len == 0 => Err(Probe::NoMatch),
        Ok((rest, h)) => Ok((h, rest.get(..h.len.min(rest.len())).unwrap_or_default())),
        Err(Err::Incomplete(_)) => Err(Probe::NeedMore),
        Err(_) => Err(Probe::NoMatch),
    }
}

/// What the server sends: a greeting, an ERR instead of it, or a command response.
fn looks_like_server(buf: &[u8]) -> Probe {
    let (h, payload) = match header(buf) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let whole = payload.len() == h.len;
    let Some(&first) = payload.first() else {
        return Probe::NeedMore;
    };
    match (h.seq, first) {
        (0, PROTOCOL_VERSION_10) => {
            if !(18..=MAX_GREETING_LEN).contains(&h.len) {
                return Probe::NoMatch;
            }
            match greeting_version(payload) {
                None => Probe::NoMatch,
                Some(Version::Partial) => Probe::NeedMore,
                Some(Version::Done(..)) if !whole => {
                    Probe::matched(Confidence::STRONG, "server greeting version string")
                }
                Some(Version::Done(..)) => match parse_greeting(payload) {
                    Some(_) => {
                        Probe::matched(Confidence::CERTAIN, "server greeting (HandshakeV10)")
                    }
                    None => Probe::NoMatch,
                },
            }
        }
        (seq, ERR_HEADER) => {
            if !(3..=MAX_SMALL_PACKET_LEN).contains(&h.len) {
                return Probe::NoMatch;
            }
            if !whole {
                // code (2), then '#' and the SQLSTATE after the handshake
                return if payload.len() >= 4 && seq > 0 && payload.get(3) != Some(&b'#') {
                    Probe::NoMatch
                } else {
                    Probe::NeedMore
                };
            }
            match parse_err(payload) {
                Some(e) if e.sqlstate.is_some() => {
                    Probe::matched(Confidence::CERTAIN, "ERR packet with SQLSTATE")
                }
                Some(_) if seq == 0 => {
                    Probe::matched(Confidence::CERTAIN, "ERR packet instead of a greeting")
                }
                _ => Probe::NoMatch,
            }
        }
        // An OK answers a command at sequence 1 (2-4 after a login with an auth switch).
        (1..=4, OK_HEADER) => {
            if !(7..=MAX_SMALL_PACKET_LEN).contains(&h.len) {
                return Probe::NoMatch;
            }
            if !whole {
                return Probe::NeedMore;
            }
            // The tail is empty or an info text ("Rows matched: 1  Changed: 1"); session
            // state changes (binary) are not judged and count as no evidence.
            let plain_tail =
                ok_tail(payload).is_some_and(|t| t.is_empty() || lenenc_text(t) || is_text(t));
            match parse_ok(payload) {
                Some(ok) if ok.status < 0x8000 && plain_tail => {
                    Probe::matched(Confidence::STRONG, "OK packet")
                }
                _ => Probe::NoMatch,
            }
        }
        (1, _) => looks_like_result_set(h, payload, buf),
        _ => Probe::NoMatch,
    }
}

/// A length-encoded info string that fills `t` exactly and is text.
fn lenenc_text(t: &[u8]) -> bool {
    matches!(lenenc_bytes(t), Some((text, [])) if is_text(text))
}

/// A result-set header (column count, maybe MariaDB's metadata-follows byte) followed by a
/// column definition whose catalog is `def`.
fn looks_like_result_set(h: Header, payload: &[u8], buf: &[u8]) -> Probe {
    if h.len > 10 {
        return Probe::NoMatch;
    }
    let Some((n, rest)) = lenenc(payload) else {
        return if payload.len() < h.len {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    if payload.len() < h.len {
        return Probe::NeedMore;
    }
    if !(1..=MAX_COLUMNS).contains(&n) || rest.len() > 1 {
        return Probe::NoMatch;
    }
    let next = buf.get(4 + h.len..).unwrap_or_default();
    let head = next
        .get(3..next.len().min(3 + COLUMN_DEF_START.len()))
        .unwrap_or_default();
    if head != COLUMN_DEF_START.get(..head.len()).unwrap_or_default() {
        return Probe::NoMatch;
    }
    if head.len() < COLUMN_DEF_START.len() {
        return Probe::NeedMore;
    }
    Probe::matched(
        Confidence::CERTAIN,
        "result-set header and column definition",
    )
}

/// What the client sends: a handshake response, an SSLRequest, or a command.
fn looks_like_client(buf: &[u8]) -> Probe {
    let (h, payload) = match header(buf) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let whole = payload.len() == h.len;
    match h.seq {
        1 => {
            if !(HANDSHAKE_FIXED_LEN..=MAX_HANDSHAKE_LEN).contains(&h.len)
                || handshake_fixed_ok(payload).is_none()
            {
                return Probe::NoMatch;
            }
            if payload.len() < HANDSHAKE_FIXED_LEN {
                return Probe::NeedMore;
            }
            if is_ssl_request(payload) {
                return Probe::matched(
                    Confidence::CERTAIN,
                    "SSLRequest (handshake response with CLIENT_SSL)",
                );
            }
            if !whole {
                return Probe::matched(Confidence::STRONG, "HandshakeResponse41 fixed part");
            }
            match parse_handshake_response(payload) {
                Some(_) => Probe::matched(Confidence::CERTAIN, "HandshakeResponse41"),
                None => Probe::NoMatch,
            }
        }
        0 => looks_like_command(h, payload),
        _ => Probe::NoMatch,
    }
}

/// A command packet at sequence 0.
fn looks_like_command(h: Header, payload: &[u8]) -> Probe {
    let Some((&cmd, body)) = payload.split_first() else {
        return Probe::NeedMore;
    };
    let whole = payload.len() == h.len;
    let cmd = Command(cmd);
    match cmd {
        Command::QUERY | Command::STMT_PREPARE => {
            if !whole {
                if h.len.saturating_add(4) <= PROBE_WINDOW {
                    return Probe::NeedMore;
                }
                return match body.get(..TEXT_PREFIX) {
                    None => Probe::NeedMore,
                    Some(p)
                        if p.iter()
                            .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace()) =>
                    {
                        Probe::matched(Confidence::WEAK, "start of a long COM_QUERY")
                    }
                    Some(_) => Probe::NoMatch,
                };
            }
            // MySQL 8 query attributes: parameter count 0, parameter set count 1.
            let text = body
                .strip_prefix(b"\x00\x01")
                .filter(|_| cmd == Command::QUERY)
                .unwrap_or(body);
            if !text.is_empty() && is_text(text) && text.iter().any(u8::is_ascii_alphabetic) {
                Probe::matched(
                    Confidence::CERTAIN,
                    if cmd == Command::QUERY {
                        "COM_QUERY with SQL text"
                    } else {
                        "COM_STMT_PREPARE with SQL text"
                    },
                )
            } else {
                Probe::NoMatch
            }
        }
        Command::INIT_DB => {
            if !whole {
                return if h.len <= 257 {
                    Probe::NeedMore
                } else {
                    Probe::NoMatch
                };
            }
            if !body.is_empty() && body.len() <= 256 && body.iter().all(u8::is_ascii_graphic) {
                Probe::matched(Confidence::CERTAIN, "COM_INIT_DB with a schema name")
            } else {
                Probe::NoMatch
            }
        }
        Command::STMT_EXECUTE => {
            if h.len < 10 {
                return Probe::NoMatch;
            }
            // statement id (4), flags (1: cursor type, MariaDB 0x80), iteration count (4) = 1
            let flags_ok = payload.get(5).is_none_or(|&f| f & 0x70 == 0);
            let iter = payload.get(6..10).unwrap_or_default();
            let iter_ok = iter == [1, 0, 0, 0].get(..iter.len()).unwrap_or_default();
            match (flags_ok && iter_ok, payload.len() >= 10) {
                (false, _) => Probe::NoMatch,
                (true, false) => Probe::NeedMore,
                (true, true) => Probe::matched(Confidence::STRONG, "COM_STMT_EXECUTE header"),
            }
        }
        Command::QUIT
        | Command::PING
        | Command::STATISTICS
        | Command::RESET_CONNECTION
        | Command::DEBUG
        | Command::PROCESS_INFO
            if h.len == 1 =>
        {
            Probe::matched(Confidence::WEAK, "one-byte COM_PING/COM_QUIT-like command")
        }
        Command::STMT_CLOSE | Command::STMT_RESET if h.len == 5 => {
            Probe::matched(Confidence::WEAK, "COM_STMT_CLOSE/RESET with a statement id")
        }
        _ => Probe::NoMatch,
    }
}

impl Classifier for Mysql {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = buf.get(..buf.len().min(PROBE_WINDOW)).unwrap_or_default();
        probe_both_ways(dir, || looks_like_client(buf), || looks_like_server(buf))
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::MysqlSession::default())
    }
}
