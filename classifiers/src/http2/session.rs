//! Per-connection HTTP/2 parsing (RFC 9113): frames, header blocks decoded with HPACK
//! (RFC 7541; `loona-hpack`, one decoder per direction with its own dynamic table), and
//! streams paired into exchanges.
//!
//! Records:
//! - A request ([`RecordKind::Request`]) per client-initiated stream: op `:method`, resource
//!   `:path`, attributes the header fields in wire order (`:authority` and `:scheme` among
//!   them, the other pseudo-fields left out), body the DATA bytes (at most
//!   [`MAX_BODY_KEPT`]), [`Record::exchange`] the stream id. Emitted when the client ends its
//!   side of the stream, or when the server starts answering, whichever comes first.
//! - A response ([`RecordKind::Response`]) per answered stream: status `:status`, attributes
//!   the response's header fields then its trailers (`grpc-status`, `grpc-message`), body the
//!   DATA bytes, the same exchange. Emitted when the server ends the stream (or resets it).
//!   An informational `1xx` HEADERS is a [`RecordKind::Message`].
//! - PUSH_PROMISE, RST_STREAM and GOAWAY are messages (op the frame type), as are header
//!   blocks of server-initiated (pushed) streams.
//! - At the end of the connection, requests and responses still open are emitted, marked
//!   truncated.
//!
//! **Joined mid-stream.** A direction whose first bytes are neither the client preface nor a
//! SETTINGS frame was joined after its start (or after bytes adi lost): its HPACK dynamic
//! table is unknown, so its header blocks are not decoded at all rather than decoded wrong.
//! Their records carry the attribute `:hpack` = [`TABLE_UNKNOWN`]. The same holds once a
//! header block fails to decode.

use std::collections::BTreeMap;

use adi_classify::record::lossy;
use adi_classify::{Direction, ParseError, Record, RecordKind, Skip, Step, StepResult, Steps};
use loona_hpack::Decoder;
use nom::Err;

use super::parser::{
    frame_rules_hold, header_block, parse_frame_header, ErrorCode, Flags, FrameHeader, FrameType,
    FRAME_HEADER_LEN, MAX_FRAME_LEN, PREFACE,
};
use super::ID;

/// HEADERS, PUSH_PROMISE and CONTINUATION frames longer than this are not decoded; their
/// connection's direction then has an unknown dynamic table.
pub(crate) const MAX_BUFFERED_FRAME: usize = 64 * 1024;
/// Most bytes of one header block (a HEADERS frame and its CONTINUATIONs) assembled.
pub(crate) const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Most streams followed at once; the oldest are emitted (truncated) beyond it.
pub(crate) const MAX_TRACKED_STREAMS: usize = 1024;
/// Most DATA bytes kept per request or response.
pub(crate) const MAX_BODY_KEPT: usize = 64 * 1024;
/// Most header fields kept per header block.
pub(crate) const MAX_FIELDS: usize = 128;
/// Most bytes of one header field value kept.
pub(crate) const MAX_VALUE: usize = 8 * 1024;
/// Most bytes of GOAWAY debug data kept as the record's resource.
pub(crate) const MAX_DEBUG_KEPT: usize = 256;
/// Largest HPACK dynamic table a peer may ask for (RFC 7541 size updates beyond it fail the
/// block): bounds the memory one connection can make adi hold.
pub(crate) const MAX_TABLE_SIZE: usize = 1 << 20;
/// The value of the `:hpack` attribute of records whose header block was not decoded.
pub(crate) const TABLE_UNKNOWN: &str = "dynamic table unknown (joined mid-stream or bytes lost)";

/// What a DATA frame still has to deliver, consumed as bytes arrive.
#[derive(Debug, Default, Clone, Copy)]
struct DataLeft {
    stream: u32,
    /// The pad length byte is still to come.
    pad_length_pending: bool,
    data: usize,
    padding: usize,
    end_stream: bool,
}

/// A header block waiting for its CONTINUATION frames.
#[derive(Debug)]
struct Block {
    stream: u32,
    /// HEADERS (with its END_STREAM flag) or PUSH_PROMISE.
    frame_type: FrameType,
    end_stream: bool,
    promised: u32,
    bytes: Vec<u8>,
    wire_len: u64,
}

/// The state of one direction.
struct DirState {
    /// The first bytes were looked at.
    started: bool,
    /// HPACK state of what this direction's sender encodes.
    hpack: Decoder<'static>,
    /// Header blocks are not decoded (joined mid-stream, or a block failed).
    table_unknown: bool,
    /// The DATA frame being consumed.
    data: Option<DataLeft>,
    /// The header block being assembled.
    block: Option<Block>,
}

impl Default for DirState {
    fn default() -> Self {
        let mut hpack = Decoder::new();
        hpack.set_max_allowed_table_size(MAX_TABLE_SIZE);
        Self {
            started: false,
            hpack,
            table_unknown: false,
            data: None,
            block: None,
        }
    }
}

impl std::fmt::Debug for DirState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirState")
            .field("started", &self.started)
            .field("table_unknown", &self.table_unknown)
            .finish_non_exhaustive()
    }
}

/// One half of an exchange as it builds up.
#[derive(Debug, Default)]
struct Half {
    /// Its first HEADERS was seen.
    started: bool,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    wire_len: u64,
    truncated: bool,
    table_unknown: bool,
}

/// One stream.
#[derive(Debug, Default)]
struct Stream {
    request: Half,
    response: Half,
    /// The request record was emitted.
    request_sent: bool,
}

impl Stream {
    /// The half a direction's frames build: the request's to the server, the response's to
    /// the client.
    fn half(&mut self, dir: Direction) -> &mut Half {
        match dir {
            Direction::ToServer => &mut self.request,
            Direction::ToClient => &mut self.response,
        }
    }
}

/// HTTP/2 session state for one connection.
#[derive(Debug, Default)]
pub(crate) struct Http2Session {
    dirs: [DirState; 2],
    /// Payload bytes of the current frame still to consume unread, per direction.
    skip: Skip,
    streams: BTreeMap<u32, Stream>,
    /// Client-initiated streams opened.
    opened: u64,
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(ID, what)
}

fn frame_record(kind: RecordKind, h: &FrameHeader) -> Record {
    let mut record = Record::new(kind);
    record.op = h.frame_type.name().map(str::to_owned);
    record.wire_len = (FRAME_HEADER_LEN + h.len) as u64;
    record
}

/// The first value of field `name`.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The record of one half of an exchange.
fn half_record(kind: RecordKind, stream: u32, half: Half) -> Record {
    let mut record = Record::new(kind);
    record.exchange = Some(u64::from(stream));
    record.wire_len = half.wire_len;
    record.truncated = half.truncated;
    if half.table_unknown {
        record
            .attributes
            .push((":hpack".to_owned(), TABLE_UNKNOWN.to_owned()));
    }
    if kind == RecordKind::Request {
        record.op = field(&half.fields, ":method").map(str::to_owned);
        record.resource = field(&half.fields, ":path").map(str::to_owned);
    } else {
        record.status = field(&half.fields, ":status").and_then(|s| s.parse().ok());
    }
    record.attributes.extend(
        half.fields
            .into_iter()
            .filter(|(n, _)| !n.starts_with(':') || n == ":authority" || n == ":scheme"),
    );
    record.body = half.body;
    record
}

impl Http2Session {
    /// The stream `id`, created when new (the oldest is emitted to make room).
    fn stream(&mut self, id: u32, out: &mut Vec<Record>) -> &mut Stream {
        if !self.streams.contains_key(&id) && self.streams.len() >= MAX_TRACKED_STREAMS {
            if let Some((old, s)) = self.streams.pop_first() {
                Self::emit(old, s, true, out);
            }
        }
        self.streams.entry(id).or_default()
    }

    /// Emits what is left of a stream (`cut`: it did not end properly).
    fn emit(id: u32, mut s: Stream, cut: bool, out: &mut Vec<Record>) {
        if s.request.started && !s.request_sent {
            s.request.truncated |= cut;
            out.push(half_record(RecordKind::Request, id, s.request));
        }
        if s.response.started {
            s.response.truncated |= cut;
            out.push(half_record(RecordKind::Response, id, s.response));
        }
    }

    /// Emits the request of stream `id` if it is not out yet (its response is starting).
    fn send_request(&mut self, id: u32, out: &mut Vec<Record>) {
        if let Some(s) = self.streams.get_mut(&id) {
            if s.request.started && !s.request_sent {
                s.request_sent = true;
                let half = std::mem::take(&mut s.request);
                s.request.started = true;
                out.push(half_record(RecordKind::Request, id, half));
            }
        }
    }

    /// Decodes a complete header block of direction `dir`; `None` when its table is unknown.
    fn decode(&mut self, dir: Direction, block: &[u8]) -> Option<Vec<(String, String)>> {
        let d = &mut self.dirs[dir.index()];
        if d.table_unknown {
            return None;
        }
        let mut fields = Vec::new();
        let decoded = d.hpack.decode_with_cb(block, |name, value| {
            // Every field is decoded (the table needs them); the first ones are kept.
            if fields.len() >= MAX_FIELDS {
                return;
            }
            let value = &value[..value.len().min(MAX_VALUE)];
            fields.push((lossy(&name), lossy(value)));
        });
        if decoded.is_err() {
            // The table may be half updated: nothing after this block can be trusted.
            d.table_unknown = true;
            return None;
        }
        Some(fields)
    }

    /// A complete header block (HEADERS and its CONTINUATIONs, or PUSH_PROMISE).
    fn header_block(&mut self, dir: Direction, b: Block, out: &mut Vec<Record>) {
        let fields = self.decode(dir, &b.bytes);
        let unknown = fields.is_none();
        let fields = fields.unwrap_or_default();
        if b.frame_type == FrameType::PUSH_PROMISE {
            let mut record = Record::new(RecordKind::Message);
            record.op = Some("PUSH_PROMISE".to_owned());
            record.wire_len = b.wire_len;
            record.resource = field(&fields, ":path").map(str::to_owned);
            record
                .attributes
                .push(("stream".to_owned(), b.stream.to_string()));
            record
                .attributes
                .push(("promised_stream".to_owned(), b.promised.to_string()));
            out.push(record);
            return;
        }
        let status: Option<u16> = field(&fields, ":status").and_then(|s| s.parse().ok());
        let pushed = b.stream.is_multiple_of(2);
        let informational = status.is_some_and(|s| (100..200).contains(&s));
        if pushed || informational {
            let mut record = Record::new(RecordKind::Message);
            record.op = Some("HEADERS".to_owned());
            record.status = status;
            record.wire_len = b.wire_len;
            record.exchange = Some(u64::from(b.stream));
            record.attributes = fields;
            out.push(record);
            return;
        }
        let id = b.stream;
        if dir == Direction::ToClient {
            self.send_request(id, out);
        } else if !self.streams.contains_key(&id) {
            self.opened += 1;
        }
        let s = self.stream(id, out);
        let half = s.half(dir);
        // A second block on a half is its trailers: fields appended.
        half.started = true;
        half.table_unknown |= unknown;
        half.wire_len += b.wire_len;
        let room = MAX_FIELDS.saturating_sub(half.fields.len());
        half.truncated |= fields.len() > room;
        half.fields.extend(fields.into_iter().take(room));
        if b.end_stream {
            self.end_half(id, dir, out);
        }
    }

    /// One side of stream `id` ended (END_STREAM).
    fn end_half(&mut self, id: u32, dir: Direction, out: &mut Vec<Record>) {
        match dir {
            Direction::ToServer => self.send_request(id, out),
            Direction::ToClient => {
                if let Some(s) = self.streams.remove(&id) {
                    Self::emit(id, s, false, out);
                }
            }
        }
    }

    /// DATA payload bytes of stream `id`.
    fn data(&mut self, id: u32, dir: Direction, bytes: &[u8], out: &mut Vec<Record>) {
        if id.is_multiple_of(2) {
            return;
        }
        let s = self.stream(id, out);
        let half = s.half(dir);
        half.started = true;
        half.wire_len += bytes.len() as u64;
        let room = MAX_BODY_KEPT.saturating_sub(half.body.len());
        half.truncated |= bytes.len() > room;
        half.body.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// A frame other than DATA, whole.
    fn frame(
        &mut self,
        h: &FrameHeader,
        frame: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<(), ParseError> {
        let payload = &frame[FRAME_HEADER_LEN..];
        let u32_at = |at: usize| {
            payload
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(malformed("frame payload"))
        };
        let wire = frame.len() as u64;
        match h.frame_type {
            FrameType::HEADERS | FrameType::PUSH_PROMISE => {
                let (prefix, promised) = if h.frame_type == FrameType::PUSH_PROMISE {
                    let skip = usize::from(h.flags & Flags::PADDED != 0);
                    (4, u32_at(skip)? & 0x7fff_ffff)
                } else if h.flags & Flags::PRIORITY != 0 {
                    (5, 0)
                } else {
                    (0, 0)
                };
                let bytes = header_block(payload, h.flags, prefix)
                    .ok_or(malformed("header block padding"))?
                    .to_vec();
                let block = Block {
                    stream: h.stream,
                    frame_type: h.frame_type,
                    end_stream: h.frame_type == FrameType::HEADERS
                        && h.flags & Flags::END_STREAM != 0,
                    promised,
                    bytes,
                    wire_len: wire,
                };
                if h.flags & Flags::END_HEADERS != 0 {
                    self.header_block(dir, block, out);
                } else {
                    self.dirs[dir.index()].block = Some(block);
                }
            }
            FrameType::CONTINUATION => {
                let d = &mut self.dirs[dir.index()];
                let Some(mut block) = d.block.take() else {
                    return Err(malformed("CONTINUATION without HEADERS"));
                };
                if block.stream != h.stream {
                    return Err(malformed("CONTINUATION on another stream"));
                }
                if block.bytes.len() + payload.len() > MAX_HEADER_BLOCK {
                    d.table_unknown = true;
                    block.bytes.clear();
                } else {
                    block.bytes.extend_from_slice(payload);
                }
                block.wire_len += wire;
                if h.flags & Flags::END_HEADERS != 0 {
                    self.header_block(dir, block, out);
                } else {
                    self.dirs[dir.index()].block = Some(block);
                }
            }
            FrameType::RST_STREAM => {
                let code = ErrorCode(u32_at(0)?);
                // What the stream carried so far, then the reset.
                if let Some(s) = self.streams.remove(&h.stream) {
                    Self::emit(h.stream, s, code.0 != 0, out);
                }
                let mut record = frame_record(RecordKind::Message, h);
                record.status = Some(code.status());
                record
                    .attributes
                    .push(("stream".to_owned(), h.stream.to_string()));
                record.attributes.push(("error".to_owned(), code.name()));
                out.push(record);
            }
            FrameType::GOAWAY => {
                let last = u32_at(0)? & 0x7fff_ffff;
                let code = ErrorCode(u32_at(4)?);
                let mut record = frame_record(RecordKind::Message, h);
                record.status = Some(code.status());
                record
                    .attributes
                    .push(("last_stream_id".to_owned(), last.to_string()));
                record.attributes.push(("error".to_owned(), code.name()));
                record
                    .attributes
                    .push(("streams".to_owned(), self.opened.to_string()));
                let debug = &payload[8..];
                if !debug.is_empty() {
                    let kept = &debug[..debug.len().min(MAX_DEBUG_KEPT)];
                    record.resource = Some(lossy(kept));
                    record.truncated = debug.len() > MAX_DEBUG_KEPT;
                }
                out.push(record);
            }
            _ => {}
        }
        Ok(())
    }

    /// Consumes bytes of the DATA frame in progress; returns how many.
    fn consume_data(&mut self, rest: &[u8], dir: Direction, out: &mut Vec<Record>) -> usize {
        let Some(mut left) = self.dirs[dir.index()].data else {
            return 0;
        };
        let mut pos = 0;
        if left.pad_length_pending {
            let Some(&pad) = rest.first() else {
                return 0;
            };
            pos = 1;
            left.pad_length_pending = false;
            let pad = usize::from(pad);
            left.padding = pad.min(left.data);
            left.data -= left.padding;
        }
        let n = left.data.min(rest.len() - pos);
        if n > 0 {
            self.data(left.stream, dir, &rest[pos..pos + n], out);
            left.data -= n;
            pos += n;
        }
        let p = left.padding.min(rest.len() - pos);
        left.padding -= p;
        pos += p;
        if left.data == 0 && left.padding == 0 {
            self.dirs[dir.index()].data = None;
            if left.end_stream {
                self.end_half(left.stream, dir, out);
            }
        } else {
            self.dirs[dir.index()].data = Some(left);
        }
        pos
    }

    /// The first bytes of a direction: the client preface (consumed) or a server's SETTINGS
    /// mean the connection's start was seen; anything else, that it was joined later.
    fn start(&mut self, rest: &[u8]) -> Option<(usize, bool)> {
        let n = rest.len().min(PREFACE.len());
        if rest[..n] == PREFACE[..n] {
            return (n == PREFACE.len()).then_some((PREFACE.len(), true));
        }
        let (_, h) = parse_frame_header(rest).ok()?;
        Some((
            0,
            h.frame_type == FrameType::SETTINGS && h.flags & Flags::ACK == 0,
        ))
    }
}

impl Steps for Http2Session {
    fn skip(&mut self) -> Option<&mut Skip> {
        Some(&mut self.skip)
    }

    fn step(&mut self, rest: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        let i = dir.index();
        if self.dirs[i].data.is_some() {
            let n = self.consume_data(rest, dir, out);
            return Ok(if n == 0 {
                Step::NeedMore
            } else {
                Step::Consumed(n)
            });
        }
        if !self.dirs[i].started {
            // The client preface, in whichever direction it shows up (roles may have
            // been guessed wrong); a server starts with SETTINGS.
            let Some((n, from_start)) = self.start(rest) else {
                return Ok(Step::NeedMore);
            };
            let d = &mut self.dirs[i];
            d.started = true;
            d.table_unknown = !from_start;
            return Ok(Step::Consumed(n));
        }
        let h = match parse_frame_header(rest) {
            Ok((_, h)) => h,
            Err(Err::Incomplete(_)) => return Ok(Step::NeedMore),
            Err(_) => return Ok(Step::Invalid(malformed("frame header"))),
        };
        // A u24 never exceeds it; kept as the spec's bound (RFC 9113 section 4.2).
        if h.len > MAX_FRAME_LEN {
            return Err(ParseError::too_large(ID, "frame", h.len, MAX_FRAME_LEN));
        }
        if frame_rules_hold(&h) == Some(false) {
            return Ok(Step::Invalid(malformed("frame header")));
        }
        if h.frame_type == FrameType::DATA {
            let padded = h.flags & Flags::PADDED != 0;
            if padded && h.len == 0 {
                return Err(malformed("DATA padding"));
            }
            if !h.stream.is_multiple_of(2) {
                let s = self.stream(h.stream, out);
                let half = s.half(dir);
                half.started = true;
                half.wire_len += FRAME_HEADER_LEN as u64;
            }
            self.dirs[i].data = Some(DataLeft {
                stream: h.stream,
                pad_length_pending: padded,
                data: h.len - usize::from(padded),
                padding: 0,
                end_stream: h.flags & Flags::END_STREAM != 0,
            });
            if h.len == 0 {
                self.consume_data(&[], dir, out);
            }
            return Ok(Step::Consumed(FRAME_HEADER_LEN));
        }
        let decoded = matches!(
            h.frame_type,
            FrameType::HEADERS
                | FrameType::PUSH_PROMISE
                | FrameType::CONTINUATION
                | FrameType::RST_STREAM
                | FrameType::GOAWAY
        );
        if !decoded || h.len > MAX_BUFFERED_FRAME {
            if decoded {
                // A header block adi does not read: the table is lost from here on.
                self.dirs[i].table_unknown = true;
            }
            self.skip.set(dir, h.len);
            return Ok(Step::Consumed(FRAME_HEADER_LEN));
        }
        let Some(frame) = rest.get(..FRAME_HEADER_LEN + h.len) else {
            return Ok(Step::NeedMore);
        };
        self.frame(&h, frame, dir, out)?;
        Ok(Step::Consumed(frame.len()))
    }

    /// Bytes lost inside a DATA frame are stepped over (the body is marked truncated);
    /// anything else loses the frame boundaries.
    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        if self.skip.gap(dir, len).is_ok() {
            return Ok(());
        }
        let d = &mut self.dirs[dir.index()];
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if let Some(left) = d.data.as_mut() {
            if !left.pad_length_pending && left.data + left.padding >= len_usize {
                let from_data = left.data.min(len_usize);
                left.data -= from_data;
                left.padding -= len_usize - from_data;
                let (stream, done, end) = (
                    left.stream,
                    left.data == 0 && left.padding == 0,
                    left.end_stream,
                );
                if done {
                    d.data = None;
                }
                if let Some(s) = self.streams.get_mut(&stream) {
                    let half = s.half(dir);
                    half.truncated = true;
                    half.wire_len += len;
                }
                if done && end {
                    self.end_half(stream, dir, out);
                }
                return Ok(());
            }
        }
        Err(ParseError::Gap { len })
    }

    fn finish(&mut self, dir: Direction, out: &mut Vec<Record>) {
        // Called once per direction: the second call finds nothing left.
        let _ = dir;
        for (id, s) in std::mem::take(&mut self.streams) {
            Self::emit(id, s, true, out);
        }
    }
}
