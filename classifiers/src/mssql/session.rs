//! Per-flow TDS parsing: packets reassembled into messages (the last packet has EOM), one
//! [`Record`] per message.
//!
//! Client messages are `Request`s named by their packet type (`PRELOGIN`, `LOGIN7`,
//! `SQL_BATCH`, `RPC`, `ATTENTION`...), with: PRELOGIN `encryption`; LOGIN7 `tds_version`,
//! `host`, `user`, `app`, `server`, `database`; SQL batch text as `resource` (UTF-16LE,
//! capped at [`MAX_SQL_CHARS`]); RPC the procedure as `resource`. Tabular results are
//! `Response`s named after the request they answer, with PRELOGIN `encryption`, LOGINACK
//! `server_program` and `tds_version`, ENVCHANGE `database`, the first ERROR's number as
//! `status`, and the final DONE's `rows` when counted. A PRELOGIN packet carrying TLS, and
//! the TLS records that follow the handshake, are one `Message` named `TLS` per direction.

use std::collections::VecDeque;

use adi_classify::{Direction, ParseError, Record, RecordKind, Skip, Step, StepResult, Steps};
use nom::number::streaming::{le_u16, le_u32, le_u64};
use nom::Err;

use super::parser::{
    encryption_name, parse_all_headers, parse_login7, parse_packet_header, parse_prelogin,
    parse_rpc_name, parse_tls_record_header, parse_token, tds_version_name, PacketType, Token,
    HEADER_LEN, MAX_LOGIN7_LEN,
};
use super::MSSQL;

/// Most bytes of one message the session keeps to summarise it (a LOGIN7 fits whole; a
/// long batch is summarised from its start).
pub(crate) const MAX_MESSAGE_KEPT: usize = MAX_LOGIN7_LEN;
/// Most characters of SQL text kept in `resource`.
pub(crate) const MAX_SQL_CHARS: usize = 1024;
/// Most bytes of a message kept in [`Record::raw`].
pub(crate) const MAX_RAW: usize = 64;
/// Most requests awaiting a reply that the session remembers.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;

type E<'a> = nom::error::Error<&'a [u8]>;

/// A message being reassembled in one direction.
#[derive(Debug, Default)]
struct Partial {
    ptype: Option<PacketType>,
    /// The first bytes of the message body (packet headers removed), capped.
    body: Vec<u8>,
    /// The first bytes as sent, capped.
    raw: Vec<u8>,
    /// Bytes of the message on the wire so far, headers included.
    wire_len: u64,
    truncated: bool,
}

/// The state of one TDS connection.
#[derive(Debug, Default)]
pub(crate) struct TdsSession {
    partial: [Partial; 2],
    /// Request types awaiting their tabular result.
    in_flight: VecDeque<PacketType>,
    /// A PRELOGIN packet carried TLS: raw TLS records may follow.
    tls_seen: bool,
    /// A `TLS` message was reported for this direction.
    tls_reported: [bool; 2],
    /// Bytes of a TLS record still to skip, per direction.
    skip: Skip,
    /// The error of a packet that failed after changing the state (a LOGIN7 ending a
    /// message): reported as is when the next call starts at that packet.
    failed: [Option<ParseError>; 2],
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(MSSQL, what)
}

/// UTF-16LE to a string, at most `max` characters.
fn utf16(b: &[u8], max: usize) -> String {
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .take(max)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// A LOGIN7 string given its (offset, characters) pair.
fn login_string(body: &[u8], (ib, cch): (usize, usize)) -> Option<String> {
    (cch > 0)
        .then(|| body.get(ib..ib + cch * 2).map(|b| utf16(b, cch)))
        .flatten()
}

fn push(rec: &mut Record, name: &str, value: String) {
    rec.attributes.push((name.to_owned(), value));
}

/// PRELOGIN options: the ENCRYPTION value's name.
fn read_prelogin(body: &[u8], rec: &mut Record) {
    if let Ok((_, p)) = parse_prelogin(body, body.len()) {
        if let Some(name) = p.encryption.and_then(encryption_name) {
            push(rec, "encryption", name.to_owned());
        }
    }
}

/// LOGIN7: version and strings.
fn read_login7(body: &[u8], rec: &mut Record) -> Result<(), ParseError> {
    let (_, login) = parse_login7(body, body.len()).map_err(|_| malformed("LOGIN7"))?;
    if let Some(v) = tds_version_name(login.tds_version) {
        push(rec, "tds_version", v.to_owned());
    }
    for (name, pair) in [
        ("host", login.host),
        ("user", login.user),
        ("app", login.app),
        ("server", login.server),
        ("database", login.database),
    ] {
        if let Some(s) = login_string(body, pair) {
            let shared = match name {
                "user" => Some("user"),
                "database" => Some("database"),
                "app" => Some("client_name"),
                _ => None,
            };
            if let Some(shared) = shared.filter(|_| !s.is_empty()) {
                rec.connection.push((shared, s.clone()));
            }
            push(rec, name, s);
        }
    }
    Ok(())
}

/// A B_VARCHAR (byte count of UTF-16 characters, then the characters) at the start of `i`.
fn b_varchar(i: &[u8]) -> Option<(&[u8], String)> {
    let n = usize::from(*i.first()?);
    let s = i.get(1..1 + n * 2)?;
    Some((&i[1 + n * 2..], utf16(s, n)))
}

/// Walks the framed tokens of a tabular result: LOGINACK, ENVCHANGE (database), ERROR; then
/// reads the final DONE at the very end of the message.
fn read_tokens(body: &[u8], rec: &mut Record) {
    let mut rest = body;
    while let Ok((r, (t, Some(data)))) = parse_token(rest) {
        match t {
            Token::LOGINACK => {
                // Interface (1), TDSVersion (4, big-endian here), ProgName (B_VARCHAR), version.
                if let Some(v) = data.get(1..5) {
                    let v = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                    if let Some(name) = tds_version_name(v) {
                        push(rec, "tds_version", name.to_owned());
                    }
                }
                if let Some((_, prog)) = data.get(5..).and_then(b_varchar) {
                    push(rec, "server_program", prog);
                }
            }
            // ENVCHANGE type 1: database, new value first.
            Token::ENVCHANGE if data.first() == Some(&1) => {
                if let Some((_, db)) = b_varchar(&data[1..]) {
                    push(rec, "database", db);
                }
            }
            // ERROR: Number (LONG) first.
            Token::ERROR if rec.status.is_none() => {
                if let Ok((_, n)) = le_u32::<_, E<'_>>(data) {
                    rec.status = u16::try_from(n).ok();
                }
            }
            _ => {}
        }
        rest = r;
    }
    // The final DONE: Status, CurCmd, DoneRowCount.
    let Some(done) = body.len().checked_sub(13).and_then(|at| body.get(at..)) else {
        return;
    };
    if !matches!(done[0], Token::DONE | Token::DONEPROC) {
        return;
    }
    let Ok((r, status)) = le_u16::<_, E<'_>>(&done[1..]) else {
        return;
    };
    let Ok((_, rows)) = le_u64::<_, E<'_>>(&r[2..]) else {
        return;
    };
    if status & Token::DONE_COUNT != 0 {
        push(rec, "rows", rows.to_string());
    }
    if status & Token::DONE_ERROR != 0 {
        push(rec, "error", "true".to_owned());
    }
}

/// SQL batch: the text after ALL_HEADERS (absent before TDS 7.2).
fn read_batch(body: &[u8], rec: &mut Record) {
    let text = match parse_all_headers(body, body.len()) {
        Ok((rest, ())) => rest,
        Err(_) => body,
    };
    rec.resource = Some(utf16(text, MAX_SQL_CHARS));
    rec.truncated |= text.len() / 2 > MAX_SQL_CHARS;
}

/// RPC: the procedure after ALL_HEADERS.
fn read_rpc(body: &[u8], rec: &mut Record) {
    let rest = parse_all_headers(body, body.len()).map_or(body, |(r, ())| r);
    if let Ok((_, name)) = parse_rpc_name(rest) {
        rec.resource = Some(match name {
            Ok(known) => known.to_owned(),
            Err(units) => utf16(units, 128),
        });
    }
}

impl TdsSession {
    /// Bytes that are a TLS record where a TDS header was expected, after a TLS handshake
    /// inside PRELOGIN: skipped, reported once per direction.
    fn tls_record(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> Option<usize> {
        if !self.tls_seen {
            return None;
        }
        let len = match parse_tls_record_header(buf) {
            Ok((_, len)) => len,
            Err(Err::Incomplete(_)) if buf.first().is_some_and(|b| (20..=23).contains(b)) => {
                return Some(0);
            }
            Err(_) => return None,
        };
        if !self.tls_reported[dir.index()] {
            self.tls_reported[dir.index()] = true;
            let mut rec = Record::new(RecordKind::Message);
            rec.op = Some("TLS".into());
            rec.raw = buf[..buf.len().min(5)].to_vec();
            rec.wire_len = (len + 5) as u64;
            out.push(rec);
        }
        Some(self.skip.message(dir, len + 5, buf.len()))
    }

    fn finish(&mut self, dir: Direction, out: &mut Vec<Record>) -> Result<(), ParseError> {
        let p = std::mem::take(&mut self.partial[dir.index()]);
        let Some(ptype) = p.ptype else { return Ok(()) };
        let body = p.body.as_slice();
        let mut rec = Record::new(RecordKind::Request);
        let name = ptype.name().unwrap_or("UNKNOWN");
        rec.op = Some(name.to_owned());
        rec.truncated = p.truncated;
        match ptype {
            PacketType::PRELOGIN if body.first().is_some_and(|b| (20..=23).contains(b)) => {
                self.tls_seen = true;
                rec.kind = RecordKind::Message;
                rec.op = Some("TLS".into());
                push(&mut rec, "tls", "handshake in PRELOGIN".to_owned());
            }
            PacketType::PRELOGIN => read_prelogin(body, &mut rec),
            PacketType::LOGIN7 => read_login7(body, &mut rec)?,
            PacketType::SQL_BATCH => read_batch(body, &mut rec),
            PacketType::RPC => read_rpc(body, &mut rec),
            PacketType::TABULAR_RESULT => {
                rec.kind = RecordKind::Message;
                rec.op = None;
                if let Some(req) = self.in_flight.pop_front() {
                    rec.kind = RecordKind::Response;
                    rec.op = req.name().map(str::to_owned);
                    if req == PacketType::PRELOGIN {
                        read_prelogin(body, &mut rec);
                    }
                }
                if body.first() != Some(&0) {
                    read_tokens(body, &mut rec);
                }
            }
            _ => {}
        }
        if rec.kind == RecordKind::Request {
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                self.in_flight.pop_front();
            }
            self.in_flight.push_back(ptype);
        }
        rec.raw = p.raw;
        rec.wire_len = p.wire_len;
        out.push(rec);
        Ok(())
    }
}

impl Steps for TdsSession {
    fn skip(&mut self) -> Option<&mut Skip> {
        Some(&mut self.skip)
    }

    fn step(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        // Reported again when parse_steps calls back at the message that failed.
        if let Some(e) = self.failed[dir.index()].take() {
            return Ok(Step::Invalid(e));
        }
        let read = self.packet(buf, dir, out);
        if let Err(e) = &read {
            self.failed[dir.index()] = Some(e.clone());
        }
        Ok(Step::from(read))
    }
}

impl TdsSession {
    /// Reads the packet at the start of `buf`; returns the bytes consumed (0: not enough yet).
    fn packet(
        &mut self,
        buf: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<usize, ParseError> {
        let d = dir.index();
        if let Some(n) = self.tls_record(buf, dir, out) {
            return Ok(n);
        }
        let header = match parse_packet_header(buf) {
            Ok((_, h)) => h,
            Err(Err::Incomplete(_)) => return Ok(0),
            Err(_) => return Err(malformed("packet header")),
        };
        if buf.len() < header.length {
            return Ok(0);
        }
        let p = &mut self.partial[d];
        if p.ptype.is_some_and(|t| t != header.ptype) {
            return Err(malformed("packet type changed inside a message"));
        }
        p.ptype = Some(header.ptype);
        let body = &buf[HEADER_LEN..header.length];
        let room = MAX_MESSAGE_KEPT.saturating_sub(p.body.len());
        p.body.extend_from_slice(&body[..body.len().min(room)]);
        p.truncated |= body.len() > room;
        let raw_room = MAX_RAW.saturating_sub(p.raw.len());
        p.raw.extend_from_slice(&buf[..header.length.min(raw_room)]);
        p.wire_len += header.length as u64;
        if header.is_eom() {
            self.finish(dir, out)?;
        }
        Ok(header.length)
    }
}
