//! PostgreSQL frontend/backend protocol 3.0
//! (<https://www.postgresql.org/docs/current/protocol-message-formats.html>).
//!
//! **Probe.** To the server: an untyped startup-phase message, `int32 length` then `int32
//! code`, with the length the code implies: SSLRequest (8, 80877103), GSSENCRequest (8,
//! 80877104), CancelRequest (16, 80877102; up to 12 + 256 with protocol 3.2) or a
//! StartupMessage (protocol 3.x, at most 10000 bytes) whose `name\0value\0...\0` list ends
//! exactly at its length. Mid-connection (a pooled connection adi attached to late): a typed
//! frontend message (`Q`, `P`, `B`, `E`, `D`, `C`, `S`, `H`, `F`, `X`, `p`, `c`, `f`) whose body
//! has the structure its type implies. To the client: a typed backend message (`R` with a
//! known authentication code, `S`, `K`, `Z` with status `I`/`T`/`E`, `E`/`N` fields, `T`, `D`,
//! `C`, ...), or the one-byte answer to an SSLRequest: `S` followed by a TLS record header, or
//! `N` followed by a backend message. Bands: a whole message with a consistent length and
//! body is `CERTAIN`; a checked startup header with an unfinished parameter list is
//! `STRONG`; the start of a `Q`/`P` longer than the window with SQL-looking text is `WEAK`.
//! Bytes of the other direction (a backend message sent "to the server") match with
//! `observed` set. CopyData (`d`) alone is never evidence: its body is arbitrary.
//!
//! **Look-alikes.** Text protocols on 5432 (HTTP `GET /`, `HTTP/1.1`, Redis `PING`, `+OK`)
//! fail on the first or on the length bytes: a typed message's length is a big-endian
//! `int32` and ASCII text makes it exceed 1 GiB or the type byte is unknown. MySQL packets
//! (3-byte little-endian length, sequence id) give lengths below 4 or bodies without the
//! structure their "type" needs. Kafka and other `int32`-length binary protocols fail the
//! code check of the startup header.
//!
//! **Session.** See [`session`]: startup (user, database, application name), SSL/GSS
//! negotiation (a [`adi_classify::RecordKind::Switch`] when TLS follows), simple and extended
//! queries, errors and ReadyForQuery as the response that closes each cycle.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{
    probe_both_ways, Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId,
};
use nom::Err;

use self::parser::{
    backend_body_ok, frontend_body_ok, parse_message_header, parse_untyped_header,
    startup_params_ok, BackendType, FrontendType, StartupCode, MAX_MESSAGE_LEN, MAX_STARTUP_LEN,
};

/// The protocol id.
pub(crate) const POSTGRES: ProtocolId = ProtocolId::new("postgres");

/// Most bytes the probe reads: a StartupMessage from libpq, JDBC or psycopg is 80-300 bytes,
/// and login replies fit well within it.
pub(crate) const PROBE_WINDOW: usize = 1024;

/// How many bytes of an oversized `Q`/`P` must look like text before it counts as `WEAK`.
const TEXT_PREFIX: usize = 16;

/// TLS record content type "handshake" (RFC 8446 section 5.1): what follows an `S` answer.
const TLS_HANDSHAKE: u8 = 0x16;

/// The PostgreSQL classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

adi_classify::register_classifier!(adi_classify::Registration {
    id: POSTGRES,
    category: Category::DATABASE,
    description: "PostgreSQL frontend/backend protocol 3.0 (startup, SSLRequest, queries)",
    default_ports: &[5432],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Postgres,
});

/// The smallest value a big-endian length can still take given its first bytes: used to
/// reject a length before all of it has arrived.
fn min_be_len(prefix: &[u8], width: usize) -> usize {
    let mut v = 0usize;
    for k in 0..width {
        v = (v << 8) | usize::from(prefix.get(k).copied().unwrap_or(0));
    }
    v
}

/// An untyped startup-phase message (first byte 0: lengths are at most 10000).
fn looks_like_startup(buf: &[u8]) -> Probe {
    match parse_untyped_header(buf) {
        Ok((rest, (len, code))) => match code {
            StartupCode::SSL_REQUEST => Probe::matched(Confidence::CERTAIN, "SSLRequest"),
            StartupCode::GSSENC_REQUEST => Probe::matched(Confidence::CERTAIN, "GSSENCRequest"),
            StartupCode::CANCEL_REQUEST if buf.len() >= len => {
                Probe::matched(Confidence::CERTAIN, "CancelRequest")
            }
            StartupCode::CANCEL_REQUEST => {
                Probe::matched(Confidence::STRONG, "CancelRequest header")
            }
            _ => {
                let complete = buf.len() >= len;
                let body = rest.get(..rest.len().min(len - 8)).unwrap_or_default();
                match startup_params_ok(body, complete) {
                    Some(true) => {
                        Probe::matched(Confidence::CERTAIN, "StartupMessage 3.x with parameters")
                    }
                    Some(false) => Probe::matched(Confidence::STRONG, "StartupMessage 3.x header"),
                    None => Probe::NoMatch,
                }
            }
        },
        Err(Err::Incomplete(_)) if min_be_len(buf, 4) <= MAX_STARTUP_LEN => Probe::NeedMore,
        Err(_) => Probe::NoMatch,
    }
}

/// The header of a typed message whose type is known: `Ok((body so far, body length))`.
fn typed_header(buf: &[u8]) -> Result<(&[u8], usize), Probe> {
    match parse_message_header(buf) {
        Ok((rest, (_, len))) => Ok((rest, len)),
        Err(Err::Incomplete(_)) => {
            let len = buf.get(1..).unwrap_or_default();
            if min_be_len(len, 4) <= MAX_MESSAGE_LEN {
                Err(Probe::NeedMore)
            } else {
                Err(Probe::NoMatch)
            }
        }
        Err(_) => Err(Probe::NoMatch),
    }
}

/// What to conclude from a typed message that does not fit in the buffer yet.
fn incomplete_typed(ty: u8, body: &[u8], len: usize, text_types: &[u8]) -> Probe {
    // Only a message longer than the window can never be seen whole: judge its start.
    if len.saturating_add(5) <= PROBE_WINDOW {
        return Probe::NeedMore;
    }
    if !text_types.contains(&ty) {
        return Probe::NeedMore;
    }
    match body.get(..TEXT_PREFIX) {
        None => Probe::NeedMore,
        Some(p)
            if p.iter()
                .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace()) =>
        {
            Probe::matched(Confidence::WEAK, "start of a long Query/Parse message")
        }
        Some(_) => Probe::NoMatch,
    }
}

/// A typed frontend message (client to server), or a startup-phase message.
fn looks_like_frontend(buf: &[u8]) -> Probe {
    let Some(&first) = buf.first() else {
        return Probe::NeedMore;
    };
    if first == 0 {
        return looks_like_startup(buf);
    }
    let ty = FrontendType(first);
    // CopyData's body is arbitrary: it proves nothing on its own.
    if !ty.is_known() || ty == FrontendType::COPY_DATA {
        return Probe::NoMatch;
    }
    let (rest, len) = match typed_header(buf) {
        Ok(h) => h,
        Err(e) => return e,
    };
    match rest.get(..len) {
        Some(body) if frontend_body_ok(ty, body) => Probe::matched(
            Confidence::CERTAIN,
            match ty {
                FrontendType::QUERY => "simple Query message",
                FrontendType::PARSE => "Parse message",
                FrontendType::PASSWORD => "password/SASL response message",
                _ => "frontend message with a consistent body",
            },
        ),
        Some(_) => Probe::NoMatch,
        None => incomplete_typed(first, rest, len, b"QP"),
    }
}

/// One typed backend message (server to client).
fn looks_like_backend_typed(buf: &[u8]) -> Probe {
    let Some(&first) = buf.first() else {
        return Probe::NeedMore;
    };
    let ty = BackendType(first);
    if !ty.is_known() || ty == BackendType::COPY_DATA {
        return Probe::NoMatch;
    }
    let (rest, len) = match typed_header(buf) {
        Ok(h) => h,
        Err(e) => return e,
    };
    match rest.get(..len) {
        Some(body) if backend_body_ok(ty, body) => Probe::matched(
            Confidence::CERTAIN,
            match ty {
                BackendType::AUTHENTICATION => "Authentication request",
                BackendType::ERROR_RESPONSE => "ErrorResponse",
                BackendType::READY_FOR_QUERY => "ReadyForQuery",
                BackendType::PARAMETER_STATUS => "ParameterStatus",
                _ => "backend message with a consistent body",
            },
        ),
        Some(_) => Probe::NoMatch,
        None => incomplete_typed(first, rest, len, b""),
    }
}

/// A backend message, or the single-byte answer to an SSLRequest followed by what it
/// announces (`S`: a TLS record; `N`: the server goes on in clear text).
fn looks_like_backend(buf: &[u8]) -> Probe {
    let typed = looks_like_backend_typed(buf);
    let answer = match buf.split_first() {
        Some((b'S', rest)) => {
            // TLS record: content type 22, legacy version 3.x (RFC 8446 section 5.1).
            let tls = [TLS_HANDSHAKE, 3];
            let n = rest.len().min(2);
            if rest.get(..n) != tls.get(..n) {
                Probe::NoMatch
            } else if n < 2 {
                Probe::NeedMore
            } else {
                Probe::matched(
                    Confidence::CERTAIN,
                    "SSLRequest accepted ('S'), TLS record follows",
                )
            }
        }
        Some((b'N', rest)) => match looks_like_backend_typed(rest) {
            Probe::Match(v) => Probe::matched(
                v.confidence,
                "SSLRequest refused ('N'), backend message follows",
            ),
            other => other,
        },
        _ => Probe::NoMatch,
    };
    typed.or(answer)
}

impl Classifier for Postgres {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = buf.get(..buf.len().min(PROBE_WINDOW)).unwrap_or_default();
        probe_both_ways(dir, || looks_like_frontend(buf), || looks_like_backend(buf))
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::PostgresSession::default())
    }
}
