//! nom 8 parsers for the MongoDB wire protocol
//! (<https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/>) and the parts of
//! BSON (<https://bsonspec.org/spec.html>) adi reads: the message header, the fixed fields of
//! OP_MSG, OP_QUERY, OP_REPLY and OP_COMPRESSED, and BSON documents and elements.
//!
//! The outer parsers are `streaming` (`Err::Incomplete`: a longer input could still parse).
//! [`validate_document`] and [`elements`] work on a whole document. Nothing here allocates.

use nom::bytes::streaming::{tag, take, take_till};
use nom::error::Error;
use nom::number::streaming::{le_i32, le_u32, le_u8};
use nom::{Err, Needed, Parser};

use crate::parsing::{fail, PResult};

/// Largest message: the server's `maxMessageSizeBytes` (48000000, wire protocol "Standard
/// Message Header" and the `hello` reply).
pub(crate) const MAX_MESSAGE_SIZE: usize = 48_000_000;
/// The standard message header: messageLength, requestID, responseTo, opCode.
pub(crate) const HEADER_LEN: usize = 16;
/// Largest BSON document: `maxBsonObjectSize` (16 MiB) plus the 16 KiB the server allows for
/// command overhead (BSONObjMaxInternalSize).
pub(crate) const MAX_DOCUMENT_SIZE: usize = 16 * 1024 * 1024 + 16 * 1024;
/// Smallest BSON document: int32 length and the trailing 0x00.
pub(crate) const MIN_DOCUMENT_SIZE: usize = 5;
/// Deepest nesting adi follows: the server rejects documents nested more than 100 levels
/// ("Nested Depth for BSON Documents", MongoDB limits).
pub(crate) const MAX_BSON_DEPTH: usize = 100;
/// Longest element name or collection name the probe accepts: namespaces are at most 255
/// bytes (MongoDB limits, "Namespace Length").
pub(crate) const MAX_NAME_LEN: usize = 255;

/// A message opcode (wire protocol "Opcodes"). Unknown values parse; the probe rejects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpCode(pub(crate) i32);

impl OpCode {
    /// OP_REPLY: a reply to OP_QUERY (removed in 5.1, still answered to the legacy hello).
    pub(crate) const REPLY: Self = Self(1);
    /// OP_QUERY: legacy query; since 5.1 only the handshake (`isMaster`/`hello`).
    pub(crate) const QUERY: Self = Self(2004);
    /// OP_COMPRESSED: another opcode's message, compressed.
    pub(crate) const COMPRESSED: Self = Self(2012);
    /// OP_MSG: commands and replies (3.6+).
    pub(crate) const MSG: Self = Self(2013);

    /// The spec's name, for a known opcode.
    pub(crate) fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::REPLY => "OP_REPLY",
            Self::QUERY => "OP_QUERY",
            Self::COMPRESSED => "OP_COMPRESSED",
            Self::MSG => "OP_MSG",
            _ => return None,
        })
    }
}

/// OP_MSG flagBits (wire protocol "OP_MSG", "Flag Bits").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsgFlags(pub(crate) u32);

impl MsgFlags {
    /// checksumPresent: a CRC-32C follows the sections.
    pub(crate) const CHECKSUM_PRESENT: u32 = 1;
    /// moreToCome: the sender will send another message without waiting for a reply.
    pub(crate) const MORE_TO_COME: u32 = 1 << 1;
    /// exhaustAllowed: the client accepts several replies.
    pub(crate) const EXHAUST_ALLOWED: u32 = 1 << 16;
    /// Every bit the spec defines; the others "MUST" be 0 (bits 0-15 are required).
    const KNOWN: u32 = Self::CHECKSUM_PRESENT | Self::MORE_TO_COME | Self::EXHAUST_ALLOWED;

    pub(crate) const fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// The standard message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsgHeader {
    /// The whole message, header included: `HEADER_LEN..=MAX_MESSAGE_SIZE`.
    pub(crate) message_length: usize,
    pub(crate) request_id: i32,
    /// 0 in requests, the request's `request_id` in replies.
    pub(crate) response_to: i32,
    pub(crate) op_code: OpCode,
}

/// The standard message header, rejecting a length outside `HEADER_LEN..=MAX_MESSAGE_SIZE`
/// on its fourth byte and an unknown opcode on the sixteenth.
pub(crate) fn parse_header(i: &[u8]) -> PResult<'_, MsgHeader> {
    let (rest, len) = le_i32(i)?;
    let message_length = match usize::try_from(len) {
        Ok(n) if (HEADER_LEN..=MAX_MESSAGE_SIZE).contains(&n) => n,
        _ => return fail(i),
    };
    let (rest, request_id) = le_i32(rest)?;
    let (rest, response_to) = le_i32(rest)?;
    let (rest, op) = le_i32(rest)?;
    let op_code = OpCode(op);
    if op_code.name().is_none() {
        return fail(i);
    }
    Ok((
        rest,
        MsgHeader {
            message_length,
            request_id,
            response_to,
            op_code,
        },
    ))
}

/// OP_MSG flagBits, rejecting unknown bits.
pub(crate) fn parse_msg_flags(i: &[u8]) -> PResult<'_, MsgFlags> {
    let (rest, flags) = le_u32(i)?;
    if flags & !MsgFlags::KNOWN != 0 {
        return fail(i);
    }
    Ok((rest, MsgFlags(flags)))
}

/// A cstring of printable ASCII, 1..=`MAX_NAME_LEN` bytes, without its NUL. Rejects a
/// non-printable byte as soon as it is seen.
pub(crate) fn parse_name(i: &[u8]) -> PResult<'_, &[u8]> {
    let (rest, name) = match take_till(|b: u8| !(0x21..0x7f).contains(&b)).parse(i) {
        Err(Err::Incomplete(_)) if i.len() > MAX_NAME_LEN => return fail(i),
        other => other?,
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return fail(i);
    }
    let (rest, _) = tag(&b"\0"[..]).parse(rest)?;
    Ok((rest, name))
}

/// The int32 length that starts a BSON document, checked against the limits and against
/// `room` (the bytes left in the message).
pub(crate) fn parse_document_len(i: &[u8], room: usize) -> PResult<'_, usize> {
    let (rest, len) = le_i32(i)?;
    match usize::try_from(len) {
        Ok(n) if (MIN_DOCUMENT_SIZE..=MAX_DOCUMENT_SIZE.min(room)).contains(&n) => Ok((rest, n)),
        _ => fail(i),
    }
}

/// A whole BSON document (length prefix included), at most `room` bytes.
pub(crate) fn parse_document(i: &[u8], room: usize) -> PResult<'_, &[u8]> {
    let (_, len) = parse_document_len(i, room)?;
    let (rest, doc) = take(len).parse(i)?;
    if doc.last() != Some(&0) {
        return fail(i);
    }
    Ok((rest, doc))
}

/// One BSON element: type byte, name, and the value's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Element<'a> {
    pub(crate) kind: u8,
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// BSON element types (bsonspec.org).
pub(crate) struct ElementKind;

impl ElementKind {
    pub(crate) const STRING: u8 = 0x02;
    pub(crate) const DOCUMENT: u8 = 0x03;
    pub(crate) const ARRAY: u8 = 0x04;
    pub(crate) const BOOLEAN: u8 = 0x08;
    pub(crate) const DOUBLE: u8 = 0x01;
    pub(crate) const INT32: u8 = 0x10;
    pub(crate) const INT64: u8 = 0x12;
}

/// True for a type byte bsonspec.org defines (deprecated ones included).
pub(crate) fn is_element_kind(kind: u8) -> bool {
    matches!(kind, 0x01..=0x13 | 0x7f | 0xff)
}

/// A little-endian int32 at the start of `i` (streaming: `Incomplete` when short).
fn read_i32(i: &[u8]) -> Result<i32, Err<Error<&[u8]>>> {
    match i.first_chunk::<4>() {
        Some(&b) => Ok(i32::from_le_bytes(b)),
        None => Err(Err::Incomplete(Needed::new(4 - i.len()))),
    }
}

/// The size of a length-prefixed value: int32 `len` then `len + extra` bytes.
fn prefixed(i: &[u8], extra: usize, min: usize) -> PResult<'_, usize> {
    let len = read_i32(i)?;
    match usize::try_from(len) {
        Ok(n) if n >= min && n <= MAX_DOCUMENT_SIZE => Ok((i, 4 + n + extra)),
        _ => fail(i),
    }
}

/// A cstring's bytes and the bytes after its NUL (streaming: `Incomplete` without a NUL).
fn cstring(i: &[u8]) -> PResult<'_, &[u8]> {
    match find_nul(i) {
        Some(n) => Ok((&i[n + 1..], &i[..n])),
        None => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// The first NUL in `i`, eight bytes per step (SWAR: the lowest byte of `word - 0x01..01`
/// that borrowed marks the first zero byte exactly). Element names are a few to a few tens
/// of bytes: too short for `memchr`'s set-up, long enough for a byte loop to dominate the
/// probe.
fn find_nul(i: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let (words, tail) = i.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*word);
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(n * 8 + (zeros.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|&b| b == 0)
        .map(|k| words.len() * 8 + k)
}

/// The start of an element: a known type byte and its name (any bytes but NUL).
///
/// This and [`parse_element`] are hand-written (slice reads, no combinators): the probe
/// walks every element of a first message's documents with them.
pub(crate) fn parse_element_head(i: &[u8]) -> PResult<'_, (u8, &[u8])> {
    let Some((&kind, rest)) = i.split_first() else {
        return Err(Err::Incomplete(Needed::new(1)));
    };
    if !is_element_kind(kind) {
        return fail(i);
    }
    let (rest, name) = cstring(rest)?;
    Ok((rest, (kind, name)))
}

/// One element: the type byte, the name (any bytes but NUL) and the value.
pub(crate) fn parse_element(i: &[u8]) -> PResult<'_, Element<'_>> {
    let (rest, (kind, name)) = parse_element_head(i)?;
    let size = match kind {
        0x06 | 0x0a | 0x7f | 0xff => 0,
        0x08 => 1,
        0x10 => 4,
        0x01 | 0x09 | 0x11 | 0x12 => 8,
        0x07 => 12,
        0x13 => 16,
        // string, JavaScript code, symbol: int32 length (>= 1, the NUL), bytes.
        0x02 | 0x0d | 0x0e => prefixed(rest, 0, 1)?.1,
        // DBPointer: string then a 12-byte ObjectId.
        0x0c => prefixed(rest, 12, 1)?.1,
        // binary: int32 length, subtype byte, bytes.
        0x05 => prefixed(rest, 1, 0)?.1,
        // document, array, code with scope: int32 total length, prefix included.
        0x03 | 0x04 | 0x0f => prefixed(rest, 0, MIN_DOCUMENT_SIZE)?.1 - 4,
        // regex: two cstrings.
        _ => {
            let (r, a) = cstring(rest)?;
            let (_, b) = cstring(r)?;
            a.len() + b.len() + 2
        }
    };
    let Some(after) = rest.get(size..) else {
        return Err(Err::Incomplete(Needed::new(size - rest.len())));
    };
    Ok((
        after,
        Element {
            kind,
            name,
            value: &rest[..size],
        },
    ))
}

/// The top-level elements of a whole document; stops at the first malformed element.
pub(crate) fn elements(doc: &[u8]) -> impl Iterator<Item = Element<'_>> {
    let mut rest = doc.get(4..doc.len().saturating_sub(1)).unwrap_or_default();
    std::iter::from_fn(move || {
        let (r, e) = parse_element(rest).ok()?;
        rest = r;
        Some(e)
    })
}

/// True when `doc` (a whole document, length prefix included) is well formed: its elements
/// fill it exactly, strings end with NUL, and nested documents (at most `depth` levels) are
/// well formed too.
pub(crate) fn validate_document(doc: &[u8], depth: usize) -> bool {
    if depth == 0 || doc.len() < MIN_DOCUMENT_SIZE || doc.last() != Some(&0) {
        return false;
    }
    if le_i32::<_, Error<&[u8]>>(doc)
        .ok()
        .and_then(|(_, n)| usize::try_from(n).ok())
        != Some(doc.len())
    {
        return false;
    }
    let mut rest = &doc[4..doc.len() - 1];
    while !rest.is_empty() {
        let Ok((r, e)) = parse_element(rest) else {
            return false;
        };
        let ok = match e.kind {
            ElementKind::DOCUMENT | ElementKind::ARRAY => validate_document(e.value, depth - 1),
            ElementKind::STRING | 0x0d | 0x0e => e.value.last() == Some(&0),
            ElementKind::BOOLEAN => e.value.first().is_some_and(|&b| b <= 1),
            _ => true,
        };
        if !ok {
            return false;
        }
        rest = r;
    }
    true
}

/// The fixed fields of OP_QUERY before the query document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueryPrefix<'a> {
    pub(crate) full_collection_name: &'a [u8],
}

/// OP_QUERY: flags (bits 1-7 defined, bit 0 and 8-31 reserved 0), fullCollectionName
/// (`db.collection`), numberToSkip, numberToReturn.
pub(crate) fn parse_query_prefix(i: &[u8]) -> PResult<'_, QueryPrefix<'_>> {
    let (rest, flags) = le_u32(i)?;
    if flags & !0xfe != 0 {
        return fail(i);
    }
    let (rest, name) = parse_name(rest)?;
    if !name.contains(&b'.') {
        return fail(i);
    }
    let (rest, _skip) = le_i32(rest)?;
    let (rest, _return) = le_i32(rest)?;
    Ok((
        rest,
        QueryPrefix {
            full_collection_name: name,
        },
    ))
}

/// OP_REPLY: responseFlags (bits 0-3 defined), cursorID, startingFrom, numberReturned.
pub(crate) fn parse_reply_prefix(i: &[u8]) -> PResult<'_, usize> {
    let (rest, flags) = le_u32(i)?;
    if flags & !0x0f != 0 {
        return fail(i);
    }
    let (rest, _cursor) = take(8usize).parse(rest)?;
    let (rest, _starting_from) = le_i32(rest)?;
    let (rest, returned) = le_i32(rest)?;
    match usize::try_from(returned) {
        Ok(n) => Ok((rest, n)),
        Err(_) => fail(i),
    }
}

/// Compressor ids (wire protocol "OP_COMPRESSED").
pub(crate) fn compressor_name(id: u8) -> Option<&'static str> {
    Some(match id {
        0 => "noop",
        1 => "snappy",
        2 => "zlib",
        3 => "zstd",
        _ => return None,
    })
}

/// OP_COMPRESSED: originalOpcode (a known one, not OP_COMPRESSED), uncompressedSize,
/// compressorId.
pub(crate) fn parse_compressed_prefix(i: &[u8]) -> PResult<'_, (OpCode, u8)> {
    let (rest, op) = le_i32(i)?;
    let original = OpCode(op);
    if original.name().is_none() || original == OpCode::COMPRESSED {
        return fail(i);
    }
    let (rest, size) = le_i32(rest)?;
    if usize::try_from(size).map_or(true, |n| n > MAX_MESSAGE_SIZE) {
        return fail(i);
    }
    let (rest, id) = le_u8(rest)?;
    if compressor_name(id).is_none() {
        return fail(i);
    }
    Ok((rest, (original, id)))
}

/// One OP_MSG section, whole: kind 0 is one document; kind 1 is int32 size, a cstring
/// identifier and documents filling the size. Returns (kind, identifier, documents bytes).
pub(crate) fn parse_section(i: &[u8], room: usize) -> PResult<'_, (u8, &[u8], &[u8])> {
    let (rest, kind) = le_u8(i)?;
    match kind {
        0 => {
            let (rest, doc) = parse_document(rest, room.saturating_sub(1))?;
            Ok((rest, (0, &b""[..], doc)))
        }
        1 => {
            let (r, size) = le_i32(rest)?;
            let size = match usize::try_from(size) {
                Ok(n) if n >= 4 && n < room => n,
                _ => return fail(i),
            };
            let (r, ident) = parse_name(r)?;
            let Some(docs_len) = (size - 4).checked_sub(ident.len() + 1) else {
                return fail(i);
            };
            let (r, docs) = take(docs_len).parse(r)?;
            Ok((r, (1, ident, docs)))
        }
        _ => fail(i),
    }
}
