//! MongoDB wire protocol
//! (<https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/>), unencrypted.
//!
//! **Probe.** Every message starts with the 16-byte standard header: int32 messageLength
//! (`16..=48000000`, `maxMessageSizeBytes`; checked on the fourth byte), requestID,
//! responseTo, and an opCode that must be OP_MSG (2013), OP_QUERY (2004), OP_COMPRESSED
//! (2012) or OP_REPLY (1). The header alone claims nothing; the body must agree too:
//! - OP_MSG: flagBits with only the defined bits (checksumPresent, moreToCome,
//!   exhaustAllowed), a section of kind 0 (a BSON document whose length fits the message) or
//!   kind 1 (size, identifier, documents), and the first element's name (the command name,
//!   `hello`, `find`...) read: `STRONG`. Every section parsed, filling the message exactly
//!   (plus the CRC-32C when flagged), every document well formed (nesting bounded by
//!   [`parser::MAX_BSON_DEPTH`]): `CERTAIN`.
//! - OP_QUERY: defined flag bits, a printable `db.collection` name, then a document
//!   (`STRONG` once its first element name is read, `CERTAIN` when whole and well formed).
//! - OP_REPLY: defined responseFlags, cursorID, startingFrom, numberReturned, then that many
//!   documents (same bands).
//! - OP_COMPRESSED: a known originalOpcode, an uncompressedSize within the limit and a known
//!   compressorId (noop, snappy, zlib, zstd): `STRONG`, `CERTAIN` when the whole message is in.
//!
//! Requests carry responseTo 0 and OP_REPLY only travels to the client, so bytes that prove
//! the other direction match with `observed` set.
//!
//! **Look-alikes.** Kafka and TDS frames start with big-endian lengths, which read as huge
//! little-endian ones; MySQL packets have a 3-byte length and a sequence byte, so the fourth
//! byte is 0-2 only by chance and the opcode at bytes 12..16 then fails. Random bytes need
//! one of four exact opcodes.
//!
//! **Session.** See [`session`]: one record per message with the command name as `op`, the
//! database and collection as attributes and `db.collection` as `resource`; replies are
//! paired by responseTo and carry the `ok` flag and error `code`.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId};
use nom::Err;

use crate::body::{body_of, Body};

use self::parser::{
    parse_compressed_prefix, parse_document, parse_document_len, parse_element_head, parse_header,
    parse_msg_flags, parse_query_prefix, parse_reply_prefix, parse_section, validate_document,
    MsgFlags, MsgHeader, OpCode, HEADER_LEN, MAX_BSON_DEPTH, MIN_DOCUMENT_SIZE,
};

/// The protocol id.
pub(crate) const MONGODB: ProtocolId = ProtocolId::new("mongodb");

/// Most bytes the probe reads: a driver's `hello` with its client metadata (at most 512
/// bytes by the handshake spec) and the server's reply fit.
pub(crate) const PROBE_WINDOW: usize = 1024;

/// The MongoDB classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct MongoDb;

adi_classify::register_classifier!(adi_classify::Registration {
    id: MONGODB,
    category: Category::DATABASE,
    description: "MongoDB wire protocol: OP_MSG, OP_QUERY, OP_REPLY, OP_COMPRESSED",
    default_ports: &[27017],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &MongoDb,
});

/// A document start: its length fits `room` and its first element's type and name are
/// read (or it is empty): `Plausible`; whole and well formed: `Whole`, with the bytes after.
fn check_document(i: &[u8], room: usize, whole: bool) -> Result<(&[u8], Body), Body> {
    let (after_len, len) = body_of(parse_document_len(i, room), whole)?;
    if len > MIN_DOCUMENT_SIZE {
        body_of(parse_element_head(after_len), whole)?;
    }
    match parse_document(i, room) {
        Ok((rest, doc)) if validate_document(doc, MAX_BSON_DEPTH) => Ok((rest, Body::Whole)),
        Err(Err::Incomplete(_)) if !whole => Ok((i, Body::Plausible)),
        _ => Err(Body::No),
    }
}

/// OP_MSG body: flags, then sections to the end (minus the checksum).
fn check_msg(body: &[u8], len: usize, whole: bool) -> Body {
    let flags = match body_of(parse_msg_flags(body), whole) {
        Ok((_, f)) => f,
        Err(b) => return b,
    };
    let checksum = if flags.has(MsgFlags::CHECKSUM_PRESENT) {
        4
    } else {
        0
    };
    let Some(end) = len.checked_sub(4 + checksum) else {
        return Body::No;
    };
    let mut rest = &body[4..];
    let mut room = end;
    let mut first = true;
    while room > 0 {
        let kind = rest.first().copied();
        if first && kind == Some(0) {
            // The body document: its command name must be readable.
            match check_document(&rest[1..], room - 1, whole) {
                Ok((_, Body::Plausible)) => return Body::Plausible,
                Err(b) => return b,
                Ok(_) => {}
            }
        }
        match parse_section(rest, room) {
            Ok((r, (1, _, docs))) => {
                let mut d = docs;
                while !d.is_empty() {
                    match parse_document(d, d.len()) {
                        Ok((r2, doc)) if validate_document(doc, MAX_BSON_DEPTH) => d = r2,
                        _ => return Body::No,
                    }
                }
                room -= rest.len() - r.len();
                rest = r;
            }
            Ok((r, _)) => {
                room -= rest.len() - r.len();
                rest = r;
            }
            Err(Err::Incomplete(_)) if !whole => {
                return if first { Body::More } else { Body::Plausible };
            }
            Err(_) => return Body::No,
        }
        first = false;
    }
    if first {
        return Body::No; // at least one section
    }
    Body::Whole
}

/// The body after the header, per opcode.
fn check_body(header: &MsgHeader, body: &[u8], whole: bool) -> Body {
    let len = header.message_length - HEADER_LEN;
    match header.op_code {
        OpCode::MSG => check_msg(body, len, whole),
        OpCode::QUERY => match body_of(parse_query_prefix(body), whole) {
            Ok((rest, _)) => {
                let room = len - (body.len() - rest.len());
                match check_document(rest, room, whole) {
                    Ok((_, Body::Whole)) if !whole => Body::Plausible,
                    Ok((r, Body::Whole)) => {
                        // An optional returnFieldsSelector document may follow.
                        let left = &r[..room - (rest.len() - r.len())];
                        if left.is_empty()
                            || parse_document(left, left.len()).is_ok_and(|(x, d)| {
                                x.is_empty() && validate_document(d, MAX_BSON_DEPTH)
                            })
                        {
                            Body::Whole
                        } else {
                            Body::No
                        }
                    }
                    Ok((_, b)) | Err(b) => b,
                }
            }
            Err(b) => b,
        },
        OpCode::REPLY => match body_of(parse_reply_prefix(body), whole) {
            Ok((mut rest, n)) => {
                let mut room = len - 20;
                for _ in 0..n {
                    match check_document(rest, room, whole) {
                        Ok((r, Body::Whole)) => {
                            room -= rest.len() - r.len();
                            rest = r;
                        }
                        Ok((_, b)) | Err(b) => return b,
                    }
                }
                if room == 0 {
                    Body::Whole
                } else {
                    Body::No
                }
            }
            Err(b) => b,
        },
        OpCode::COMPRESSED => match body_of(parse_compressed_prefix(body), whole) {
            Ok(_) if whole => Body::Whole,
            Ok(_) => Body::Plausible,
            Err(b) => b,
        },
        _ => Body::No,
    }
}

impl Classifier for MongoDb {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = buf.get(..buf.len().min(PROBE_WINDOW)).unwrap_or_default();
        let header = match parse_header(buf) {
            Ok((_, h)) => h,
            Err(Err::Incomplete(_)) => return Probe::NeedMore,
            Err(_) => return Probe::NoMatch,
        };
        let whole = buf.len() >= header.message_length;
        let body = &buf[HEADER_LEN..header.message_length.min(buf.len())];
        let (confidence, reason) = match check_body(&header, body, whole) {
            Body::No => return Probe::NoMatch,
            Body::More => return Probe::NeedMore,
            Body::Plausible => (
                Confidence::STRONG,
                "MongoDB message header and first fields",
            ),
            Body::Whole => (
                Confidence::CERTAIN,
                "MongoDB whole message with consistent lengths",
            ),
        };
        // Requests carry responseTo 0; OP_REPLY only answers.
        let proven = if header.op_code == OpCode::REPLY || header.response_to != 0 {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        Probe::matched(confidence, reason)
            .observed(proven)
            .given(dir)
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::MongoSession::default())
    }
}
