//! Per-flow MongoDB parsing: one [`Record`] per message.
//!
//! Requests (OP_MSG, OP_QUERY on `db.$cmd`): `op` = the command name (the first element of
//! the command document: `hello`, `find`, `insert`...), attributes `op_code`, `database`
//! (`$db`, or the namespace's database) and `collection` (the command's string argument, or
//! the namespace's collection), `resource` = `database.collection` (or `database`). A request
//! flagged moreToCome expects no reply and is a `Message`. Replies (OP_MSG with responseTo,
//! OP_REPLY): `op` = the command they answer (paired by responseTo), attributes `op_code`,
//! `ok` and `code` (also the `status`) when the reply document has them; a reply to no known
//! request (an exhaust stream's follow-up) is a `Message`. OP_COMPRESSED adds `compressor`;
//! its content is summarised only for the `noop` compressor (adi carries no decompressor).
//!
//! A message is summarised once it is whole or [`MAX_SUMMARY_BYTES`] of it arrived; the rest
//! of a large message is skipped as it arrives.

use std::collections::VecDeque;

use adi_classify::record::lossy;
use adi_classify::{Direction, ParseError, Record, RecordKind, Skip, Step, StepResult, Steps};
use nom::number::streaming::{le_i32, le_i64};
use nom::Err;

use super::parser::{
    compressor_name, elements, parse_compressed_prefix, parse_document, parse_header,
    parse_msg_flags, parse_query_prefix, parse_reply_prefix, parse_section, Element, ElementKind,
    MsgFlags, MsgHeader, OpCode, HEADER_LEN, MAX_MESSAGE_SIZE,
};
use super::MONGODB;

/// Most bytes of one message the session waits for before summarising what it has.
pub(crate) const MAX_SUMMARY_BYTES: usize = 64 * 1024;
/// Most bytes of a message kept in [`Record::raw`].
pub(crate) const MAX_RAW: usize = 64;
/// Most requests awaiting a reply that the session remembers.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;

/// What a message's documents said.
#[derive(Debug, Default)]
struct Summary {
    command: Option<String>,
    database: Option<String>,
    collection: Option<String>,
    ok: Option<String>,
    code: Option<i64>,
    compressor: Option<&'static str>,
}

/// The state of one MongoDB connection.
#[derive(Debug, Default)]
pub(crate) struct MongoSession {
    /// (requestID, command name) of requests awaiting a reply.
    in_flight: VecDeque<(i32, Option<String>)>,
    /// Bytes of the current message still to skip, per direction.
    skip: Skip,
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(MONGODB, what)
}

/// A BSON string value without its length and NUL.
fn string_value(e: &Element<'_>) -> Option<String> {
    (e.kind == ElementKind::STRING)
        .then(|| e.value.get(4..e.value.len().saturating_sub(1)).map(lossy))
        .flatten()
}

/// A BSON number or boolean as an integer (`ok: 1.0`, `code: 13`).
fn number_value(e: &Element<'_>) -> Option<i64> {
    type E<'a> = nom::error::Error<&'a [u8]>;
    match e.kind {
        ElementKind::INT32 => le_i32::<_, E<'_>>(e.value).ok().map(|(_, v)| i64::from(v)),
        ElementKind::INT64 => le_i64::<_, E<'_>>(e.value).ok().map(|(_, v)| v),
        ElementKind::DOUBLE => {
            let bits = le_i64::<_, E<'_>>(e.value).ok()?.1;
            let v = f64::from_bits(bits.cast_unsigned());
            #[expect(
                clippy::cast_possible_truncation,
                reason = "ok and code are small integers"
            )]
            Some(v as i64)
        }
        ElementKind::BOOLEAN => e.value.first().map(|&b| i64::from(b)),
        _ => None,
    }
}

/// Reads a command document: the first element names the command, `$db` the database, and
/// a string first element the collection.
fn read_command(doc: &[u8], s: &mut Summary) {
    for (n, e) in elements(doc).enumerate() {
        if n == 0 {
            s.command = Some(lossy(e.name));
            if s.collection.is_none() {
                s.collection = string_value(&e);
            }
        } else if e.name == b"$db" {
            s.database = string_value(&e);
        }
    }
}

/// Reads a reply document: `ok` and `code`.
fn read_reply(doc: &[u8], s: &mut Summary) {
    for e in elements(doc) {
        match e.name {
            b"ok" => s.ok = number_value(&e).map(|v| v.to_string()),
            b"code" => s.code = number_value(&e),
            _ => {}
        }
    }
}

/// Summarises the body of a message of opcode `op` (`body` may be cut short).
fn summarize(op: OpCode, body: &[u8], is_reply: bool, s: &mut Summary) -> Result<(), ParseError> {
    let read = if is_reply { read_reply } else { read_command };
    match op {
        OpCode::MSG => {
            let (mut rest, _) = parse_msg_flags(body).map_err(|_| malformed("OP_MSG flagBits"))?;
            while let Ok((r, (kind, _, doc))) = parse_section(rest, rest.len() + 1) {
                if kind == 0 {
                    read(doc, s);
                    break;
                }
                rest = r;
            }
        }
        OpCode::QUERY => {
            let (rest, q) =
                parse_query_prefix(body).map_err(|_| malformed("OP_QUERY namespace"))?;
            let ns = lossy(q.full_collection_name);
            let (db, coll) = ns.split_once('.').unwrap_or((ns.as_str(), ""));
            s.database = Some(db.to_owned());
            let doc = parse_document(rest, rest.len())
                .map(|(_, d)| d)
                .unwrap_or_default();
            if coll == "$cmd" {
                read_command(doc, s);
            } else {
                s.command = Some("query".into());
                s.collection = Some(coll.to_owned());
            }
        }
        OpCode::REPLY => {
            let (rest, n) = parse_reply_prefix(body).map_err(|_| malformed("OP_REPLY"))?;
            if n > 0 {
                if let Ok((_, doc)) = parse_document(rest, rest.len()) {
                    read_reply(doc, s);
                }
            }
        }
        _ => {
            let (rest, (original, id)) =
                parse_compressed_prefix(body).map_err(|_| malformed("OP_COMPRESSED"))?;
            s.compressor = compressor_name(id);
            if id == 0 {
                // noop: the original body follows as is (never OP_COMPRESSED again).
                summarize(original, rest, is_reply, s)?;
            }
        }
    }
    Ok(())
}

impl MongoSession {
    fn record(&mut self, header: &MsgHeader, s: Summary) -> Record {
        let is_reply = header.op_code == OpCode::REPLY || header.response_to != 0;
        let mut rec = Record::new(RecordKind::Message);
        if is_reply {
            let pos = self
                .in_flight
                .iter()
                .position(|(id, _)| *id == header.response_to);
            if let Some((_, op)) = pos.and_then(|p| self.in_flight.remove(p)) {
                rec.kind = RecordKind::Response;
                rec.op = op;
            }
        } else {
            rec.op = s.command;
        }
        let name = header.op_code.name().unwrap_or("OP_UNKNOWN");
        rec.attributes.push(("op_code".into(), name.into()));
        if let Some(c) = s.compressor {
            rec.attributes.push(("compressor".into(), c.into()));
        }
        if let Some(db) = &s.database {
            rec.attributes.push(("database".into(), db.clone()));
            // `admin` carries the handshake and server commands, not the application's data.
            if db != "admin" {
                rec.connection.push(("database", db.clone()));
            }
        }
        if let Some(coll) = &s.collection {
            rec.attributes.push(("collection".into(), coll.clone()));
        }
        rec.resource = match (s.database, s.collection) {
            (Some(db), Some(coll)) if !coll.is_empty() => Some(format!("{db}.{coll}")),
            (db, _) => db,
        };
        if let Some(ok) = s.ok {
            rec.attributes.push(("ok".into(), ok));
        }
        if let Some(code) = s.code {
            rec.attributes.push(("code".into(), code.to_string()));
            rec.status = u16::try_from(code).ok();
        }
        rec
    }

    /// Reads the message at the start of `buf`; returns the bytes consumed (0: not enough yet).
    fn message(
        &mut self,
        buf: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<usize, ParseError> {
        let header = match parse_header(buf) {
            Ok((_, h)) => h,
            Err(Err::Incomplete(_)) => return Ok(0),
            Err(_) => {
                let len = le_i32::<_, nom::error::Error<&[u8]>>(buf).map_or(0, |(_, n)| n);
                return Err(match usize::try_from(len) {
                    Ok(len) if len > MAX_MESSAGE_SIZE => {
                        ParseError::too_large(MONGODB, "message", len, MAX_MESSAGE_SIZE)
                    }
                    _ => malformed("message header"),
                });
            }
        };
        let total = header.message_length;
        if buf.len() < total && buf.len() < MAX_SUMMARY_BYTES {
            return Ok(0);
        }
        let consumed = total.min(buf.len());
        let body = &buf[HEADER_LEN..consumed];
        let is_reply = header.op_code == OpCode::REPLY || header.response_to != 0;
        let mut summary = Summary::default();
        summarize(header.op_code, body, is_reply, &mut summary)?;
        let more_to_come = header.op_code == OpCode::MSG
            && parse_msg_flags(body).is_ok_and(|(_, f)| f.has(MsgFlags::MORE_TO_COME));
        let command = summary.command.clone();
        let mut rec = self.record(&header, summary);
        if !is_reply && !more_to_come {
            rec.kind = RecordKind::Request;
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                self.in_flight.pop_front();
            }
            self.in_flight.push_back((header.request_id, command));
        }
        rec.raw = buf[..consumed.min(MAX_RAW)].to_vec();
        rec.wire_len = total as u64;
        rec.truncated = total > MAX_RAW;
        out.push(rec);
        self.skip.set(dir, total - consumed);
        Ok(consumed)
    }
}

impl Steps for MongoSession {
    fn skip(&mut self) -> Option<&mut Skip> {
        Some(&mut self.skip)
    }

    fn step(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        Ok(Step::from(self.message(buf, dir, out)))
    }
}
