//! Per-connection HTTP/2 parsing: the client preface, then frames (RFC 9113 section 4.1).
//!
//! Records, all with op the frame type name:
//! - HEADERS to the server opening a stream → [`RecordKind::Request`], resource `:path`;
//!   HEADERS to the client answering a stream → [`RecordKind::Response`], status `:status`.
//!   Both carry `stream` and whichever of `:method`, `:scheme`, `:authority`, `:path`,
//!   `:status` HPACK gives without state (see [`super::parser::pseudo_headers`]), and
//!   `end_stream` when the frame ends the stream. A second HEADERS on a stream (trailers), an
//!   informational `1xx` response and HEADERS on a server-initiated (even) stream are
//!   [`RecordKind::Message`]s, so that the engine pairs one request with one response. The
//!   engine pairs in order; HTTP/2 multiplexes, so a latency is exact only when responses come
//!   back in request order.
//! - PUSH_PROMISE → message with `stream` and `promised_stream`.
//! - RST_STREAM → message, status the error code, `stream` and `error` (its name).
//! - GOAWAY → message, status the error code, `last_stream_id`, `error`, `streams` (how many
//!   streams the client opened) and the debug data as resource when there is some.
//!
//! DATA frames and frames larger than [`MAX_BUFFERED_FRAME`] are consumed as they arrive
//! without being kept; SETTINGS, PING, WINDOW_UPDATE, PRIORITY, CONTINUATION and extension
//! frames are checked and consumed silently.

use std::collections::BTreeSet;

use adi_core::{Direction, ParseError, Record, RecordKind, Session};
use nom::Err;

use super::parser::{
    frame_rules_hold, header_block, parse_frame_header, pseudo_headers, ErrorCode, Flags,
    FrameHeader, FrameType, FRAME_HEADER_LEN, MAX_FRAME_LEN, PREFACE,
};
use super::ID;

/// Frames with a longer payload are consumed without being decoded (their bytes are not
/// buffered: a HEADERS frame this large is not summarised).
pub(crate) const MAX_BUFFERED_FRAME: usize = 64 * 1024;
/// Streams remembered per direction to tell trailers from first HEADERS; the oldest are
/// forgotten beyond it.
pub(crate) const MAX_TRACKED_STREAMS: usize = 4096;
/// Most bytes of GOAWAY debug data kept as the record's resource.
pub(crate) const MAX_DEBUG_KEPT: usize = 256;
/// Most bytes of a HEADERS frame kept as sent in [`Record::raw`].
pub(crate) const MAX_RAW_KEPT: usize = 512;

/// The state of one direction.
#[derive(Debug, Default)]
struct DirState {
    /// The first bytes were looked at (the client preface can only come first).
    started: bool,
    /// Payload bytes of the current frame still to consume unread.
    skip: usize,
    /// Streams on which this direction already sent HEADERS.
    headers_seen: BTreeSet<u32>,
}

/// HTTP/2 session state for one connection.
#[derive(Debug, Default)]
pub(crate) struct Http2Session {
    dirs: [DirState; 2],
    /// Client-initiated streams opened (HEADERS on a new odd stream id, to the server).
    streams: u64,
    /// The highest stream id the client opened.
    highest_stream: u32,
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::Malformed { protocol: ID, what }
}

fn frame_record(kind: RecordKind, h: &FrameHeader) -> Record {
    let mut record = Record::new(kind);
    record.op = h.frame_type.name().map(str::to_owned);
    record.wire_len = (FRAME_HEADER_LEN + h.len) as u64;
    record
}

impl Http2Session {
    /// A HEADERS frame with its whole payload.
    fn headers(
        &mut self,
        h: &FrameHeader,
        frame: &[u8],
        dir: Direction,
    ) -> Result<Record, ParseError> {
        let payload = &frame[FRAME_HEADER_LEN..];
        let prefix = if h.flags & Flags::PRIORITY != 0 { 5 } else { 0 };
        let block = header_block(payload, h.flags, prefix).ok_or(malformed("HEADERS padding"))?;
        let fields = pseudo_headers(block);
        let status = fields
            .iter()
            .find(|(n, _)| *n == ":status")
            .and_then(|(_, v)| v.parse::<u16>().ok());
        // An informational response (1xx) does not answer the stream: its final response
        // still comes (RFC 9110 section 15.2).
        let informational = status.is_some_and(|s| (100..200).contains(&s));
        let d = &mut self.dirs[dir.index()];
        let first = if informational {
            !d.headers_seen.contains(&h.stream)
        } else {
            d.headers_seen.insert(h.stream)
        };
        if d.headers_seen.len() > MAX_TRACKED_STREAMS {
            d.headers_seen.pop_first();
        }
        let kind = match dir {
            Direction::ToServer if first => {
                if h.stream > self.highest_stream {
                    self.highest_stream = h.stream;
                    self.streams += 1;
                }
                RecordKind::Request
            }
            Direction::ToClient if first && h.stream % 2 == 1 && !informational => {
                RecordKind::Response
            }
            _ => RecordKind::Message,
        };
        let mut record = frame_record(kind, h);
        record.status = status;
        record
            .attributes
            .push(("stream".to_owned(), h.stream.to_string()));
        for (name, value) in fields {
            if name == ":path" && record.resource.is_none() {
                record.resource = Some(value.clone());
            }
            record.attributes.push((name.to_owned(), value));
        }
        if h.flags & Flags::END_STREAM != 0 {
            record
                .attributes
                .push(("end_stream".to_owned(), "true".to_owned()));
        }
        record.raw = frame[..frame.len().min(MAX_RAW_KEPT)].to_vec();
        record.truncated = frame.len() > MAX_RAW_KEPT || h.flags & Flags::END_HEADERS == 0;
        Ok(record)
    }

    /// A whole frame of a type that is summarised (or silently checked).
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
        match h.frame_type {
            FrameType::HEADERS => out.push(self.headers(h, frame, dir)?),
            FrameType::PUSH_PROMISE => {
                let skip = usize::from(h.flags & Flags::PADDED != 0);
                let promised = u32_at(skip)? & 0x7fff_ffff;
                let mut record = frame_record(RecordKind::Message, h);
                record
                    .attributes
                    .push(("stream".to_owned(), h.stream.to_string()));
                record
                    .attributes
                    .push(("promised_stream".to_owned(), promised.to_string()));
                if let Some(block) = header_block(payload, h.flags, 4) {
                    for (name, value) in pseudo_headers(block) {
                        if name == ":path" && record.resource.is_none() {
                            record.resource = Some(value.clone());
                        }
                        record.attributes.push((name.to_owned(), value));
                    }
                }
                out.push(record);
            }
            FrameType::RST_STREAM => {
                let code = ErrorCode(u32_at(0)?);
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
                    .push(("streams".to_owned(), self.streams.to_string()));
                let debug = &payload[8..];
                if !debug.is_empty() {
                    let kept = &debug[..debug.len().min(MAX_DEBUG_KEPT)];
                    record.resource = Some(String::from_utf8_lossy(kept).into_owned());
                    record.truncated = debug.len() > MAX_DEBUG_KEPT;
                }
                out.push(record);
            }
            _ => {}
        }
        Ok(())
    }
}

impl Session for Http2Session {
    fn parse(
        &mut self,
        buf: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<usize, ParseError> {
        let mut pos = 0;
        while pos < buf.len() {
            let rest = &buf[pos..];
            let d = &mut self.dirs[dir.index()];
            if d.skip > 0 {
                let n = d.skip.min(rest.len());
                d.skip -= n;
                pos += n;
                continue;
            }
            if !d.started {
                // The client preface, in whichever direction it shows up (roles may have been
                // guessed wrong); a server starts directly with frames.
                let n = rest.len().min(PREFACE.len());
                if rest[..n] == PREFACE[..n] {
                    if n < PREFACE.len() {
                        break;
                    }
                    pos += PREFACE.len();
                }
                d.started = true;
                continue;
            }
            let h = match parse_frame_header(rest) {
                Ok((_, h)) => h,
                Err(Err::Incomplete(_)) => break,
                Err(_) if pos > 0 => break,
                Err(_) => return Err(malformed("frame header")),
            };
            // A u24 never exceeds it; kept as the spec's bound (RFC 9113 section 4.2).
            if h.len > MAX_FRAME_LEN {
                return Err(ParseError::TooLarge {
                    protocol: ID,
                    what: "frame",
                    len: h.len,
                    max: MAX_FRAME_LEN,
                });
            }
            if frame_rules_hold(&h) == Some(false) {
                // Report what was consumed first; the next call fails on these bytes.
                if pos > 0 {
                    break;
                }
                return Err(malformed("frame header"));
            }
            let summarised = matches!(
                h.frame_type,
                FrameType::HEADERS
                    | FrameType::PUSH_PROMISE
                    | FrameType::RST_STREAM
                    | FrameType::GOAWAY
            );
            if !summarised || h.len > MAX_BUFFERED_FRAME {
                pos += FRAME_HEADER_LEN;
                d.skip = h.len;
                continue;
            }
            let Some(frame) = rest.get(..FRAME_HEADER_LEN + h.len) else {
                break;
            };
            self.frame(&h, frame, dir, out)?;
            pos += frame.len();
        }
        Ok(pos)
    }
}
