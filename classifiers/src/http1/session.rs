//! Per-connection HTTP/1.x parsing: message heads, bodies and pipelining (RFC 9112).
//!
//! Both directions share one session. Each direction is a stream of messages; a message is a
//! head (start line and fields, at most [`MAX_HEAD_LEN`]) and a body framed as RFC 9112
//! section 6.3 says: none, Content-Length, chunked (extensions skipped, trailers kept as
//! attributes) or, for a response, until the connection closes. Body bytes are consumed as
//! they arrive, whatever their size; the record keeps at most [`MAX_BODY_KEPT`] of them and
//! is emitted when the message ends. Its `raw` is the head as sent (at most
//! [`MAX_RAW_KEPT`]).
//!
//! Framing a response needs its request's method (a HEAD response has no body, a 2xx to
//! CONNECT ends HTTP), so the session keeps the methods of unanswered requests in order
//! (pipelining safe). `1xx` responses become [`RecordKind::Message`]s; `101 Switching
//! Protocols` and a 2xx to CONNECT become [`RecordKind::Switch`]: parsing stops right after
//! their head. A response delimited by the close of the connection is emitted when the engine
//! reports the close ([`Session::finish`]), with its whole body.
//!
//! Live capture copies at most a cap of each write: the rest arrives as a gap
//! ([`Session::gap`]). Inside a body of known length (Content-Length or a chunk) or a body
//! read until close, the gap is counted in `wire_len` and the record is marked `truncated`;
//! anywhere else the session gives up and the engine restarts it at the next write.
//!
//! Whether a head is a request or a response is decided from its bytes (`HTTP/` starts a
//! status line), not from the direction, so a flow whose roles were guessed wrong still
//! parses.

use std::collections::VecDeque;

use adi_classify::record::{keep_capped, lossy};
use adi_classify::{Direction, ParseError, Record, RecordKind, Step, StepResult, Steps};
use nom::Err;

use super::parser::{
    find_head_end, parse_chunk_data_end, parse_chunk_size_line, parse_field_line,
    parse_request_line, parse_status_line, Field, FramingFields, StatusCode, MAX_CHUNK_LINE_LEN,
    MAX_HEAD_LEN, MAX_TRAILER_LEN,
};
use super::HTTP1;

/// Most body bytes kept per message in [`Record::body`]; the rest is counted, not kept.
pub(crate) const MAX_BODY_KEPT: usize = 64 * 1024;
/// Most bytes of a message's head kept as sent in [`Record::raw`]; its body is in
/// [`Record::body`], decoded.
pub(crate) const MAX_RAW_KEPT: usize = 4096;
/// Most unanswered requests remembered; beyond it the oldest is forgotten (its response is
/// then framed without knowing its method).
pub(crate) const MAX_PENDING_REQUESTS: usize = 1024;
/// Up to this many bytes of an incomplete head, its start line is checked on every call so
/// that garbage fails fast; beyond, only the end of the head is searched for.
const MAX_EARLY_CHECK_LEN: usize = 1024;

/// What a response's framing needs to know about its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Head,
    Connect,
    Other,
}

/// The state of a chunked body (RFC 9112 section 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Expecting `chunk-size [ chunk-ext ] CRLF`.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Expecting the trailer section, ended by an empty line.
    Trailers,
}

/// How the rest of the current body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    /// This many bytes left (Content-Length).
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunk),
    /// Until the connection closes (a response without length).
    UntilClose,
}

/// A message whose head is parsed and whose body is still arriving.
#[derive(Debug)]
struct InFlight {
    record: Record,
    body: Body,
    /// The record was already emitted (close-delimited responses).
    emitted: bool,
}

impl InFlight {
    /// Counts `bytes` of the message as sent after its head. Only the head is kept as sent
    /// (`raw`): a copy of the body there would repeat `body` (the `http` event's raw payload
    /// is the head), and a body longer than the raw cap would mark a message that was kept
    /// whole `truncated`.
    fn wire(&mut self, bytes: &[u8]) {
        self.record.wire_len += bytes.len() as u64;
    }

    /// Adds decoded body bytes, keeping the first [`MAX_BODY_KEPT`].
    fn content(&mut self, bytes: &[u8]) {
        keep_capped(
            &mut self.record.body,
            &mut self.record.truncated,
            bytes,
            MAX_BODY_KEPT,
        );
    }
}

/// One direction's progress.
#[derive(Debug, Default)]
struct Stream {
    /// Bytes of an incomplete head already searched for its end.
    scanned: usize,
    /// The message whose body is being read.
    in_flight: Option<InFlight>,
}

/// The per-connection HTTP/1.x parser.
#[derive(Debug, Default)]
pub(crate) struct Http1Session {
    /// Methods of requests without a final response yet, oldest first.
    pending: VecDeque<Method>,
    /// A CONNECT or Upgrade request waits for its response: the bytes after it may be another
    /// protocol already, so no further request is parsed until the response says.
    awaiting_switch: bool,
    streams: [Stream; 2],
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(HTTP1, what)
}

fn too_large(what: &'static str, len: usize, max: usize) -> ParseError {
    ParseError::too_large(HTTP1, what, len, max)
}

/// A field value with obs-fold line breaks replaced by one SP (RFC 9112 section 5.2).
fn unfold(value: &[u8], section: Section<'_>) -> String {
    if !value.contains(&b'\n') {
        return section.text(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut in_break = false;
    for &c in value {
        match c {
            b'\r' | b'\n' => in_break = true,
            b' ' | b'\t' if in_break => {}
            _ => {
                if in_break {
                    out.push(b' ');
                    in_break = false;
                }
                out.push(c);
            }
        }
    }
    lossy(&out)
}

/// A field section, checked as UTF-8 once: its names and values are then copied without
/// each being checked again (a tenth of the HTTP/1 session's time went to checking them one
/// by one).
#[derive(Clone, Copy)]
struct Section<'a> {
    bytes: &'a [u8],
    /// The same bytes as text, when they are valid UTF-8 (nearly always).
    text: Option<&'a str>,
}

impl<'a> Section<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            text: std::str::from_utf8(bytes).ok(),
        }
    }

    /// `part` (a slice of this section's bytes) as text, invalid UTF-8 replaced.
    fn text(self, part: &[u8]) -> String {
        let at = (part.as_ptr() as usize).wrapping_sub(self.bytes.as_ptr() as usize);
        self.text
            .and_then(|t| t.get(at..at.checked_add(part.len())?))
            .map_or_else(|| lossy(part), str::to_owned)
    }
}

/// Parses the field lines of a complete section into `attributes`, noting the framing fields.
fn parse_fields(
    mut rest: &[u8],
    attributes: &mut Vec<(String, String)>,
    framing: &mut FramingFields,
) -> Result<usize, ParseError> {
    let start = rest.len();
    let section = Section::new(rest);
    loop {
        match parse_field_line(rest) {
            Ok((r, Some(field))) => {
                let Field { name, value } = field;
                framing.note(&field);
                attributes.push((section.text(name), unfold(value, section)));
                rest = r;
            }
            Ok((r, None)) => return Ok(start - r.len()),
            Err(_) => return Err(malformed("header field")),
        }
    }
}

impl Http1Session {
    /// Parses a message head at the start of `rest` (a request or a response, by its bytes).
    fn parse_head(
        &mut self,
        rest: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<Step, ParseError> {
        let is_response = rest.starts_with(b"HTTP/");
        if !is_response && self.awaiting_switch {
            return Ok(Step::NeedMore);
        }
        let stream = &mut self.streams[dir.index()];
        let Some(end) = find_head_end(rest, stream.scanned) else {
            if rest.len() > MAX_HEAD_LEN {
                return Err(too_large("message head", rest.len(), MAX_HEAD_LEN));
            }
            // Fail early on a start line that can never parse, instead of waiting for 64 KiB
            // (only while the head is short, so that trickling bytes stay linear).
            if stream.scanned > MAX_EARLY_CHECK_LEN {
                stream.scanned = rest.len();
                return Ok(Step::NeedMore);
            }
            let start = if is_response || "HTTP/".as_bytes().starts_with(rest) {
                parse_status_line(rest).map(|_| ())
            } else {
                parse_request_line(rest).map(|_| ())
            };
            if matches!(start, Err(Err::Error(_) | Err::Failure(_))) {
                return Err(malformed(if is_response {
                    "status line"
                } else {
                    "request line"
                }));
            }
            stream.scanned = rest.len();
            return Ok(Step::NeedMore);
        };
        stream.scanned = 0;
        if end > MAX_HEAD_LEN {
            return Err(too_large("message head", end, MAX_HEAD_LEN));
        }
        let head = rest.get(..end).unwrap_or_default();
        let mut framing = FramingFields::default();
        let (mut record, body) = if is_response {
            let (fields, line) = parse_status_line(head).map_err(|_| malformed("status line"))?;
            let mut record = Record::new(RecordKind::Response);
            record.status = Some(line.status.0);
            parse_fields(fields, &mut record.attributes, &mut framing)?;
            let body = self.response_body(line.status, &framing, &mut record)?;
            (record, body)
        } else {
            let (fields, line) = parse_request_line(head).map_err(|_| malformed("request line"))?;
            let mut record = Record::new(RecordKind::Request);
            record.op = Some(lossy(line.method));
            record.resource = Some(lossy(line.target));
            parse_fields(fields, &mut record.attributes, &mut framing)?;
            let body = self.request_body(line.method, &framing, &record)?;
            (record, body)
        };
        record.wire_len = end as u64;
        keep_capped(&mut record.raw, &mut record.truncated, head, MAX_RAW_KEPT);
        match body {
            None if record.kind == RecordKind::Switch => {
                out.push(record);
                Ok(Step::Switched(end))
            }
            None | Some(Body::Length(0)) => {
                out.push(record);
                Ok(Step::Consumed(end))
            }
            Some(body) => {
                self.streams[dir.index()].in_flight = Some(InFlight {
                    record,
                    body,
                    emitted: false,
                });
                Ok(Step::Consumed(end))
            }
        }
    }

    /// Body framing of a request (RFC 9112 section 6.3 items 4 to 7), and remembers its
    /// method for the response.
    fn request_body(
        &mut self,
        method: &[u8],
        framing: &FramingFields,
        record: &Record,
    ) -> Result<Option<Body>, ParseError> {
        let body = if framing.has_transfer_encoding {
            // Item 4: a request whose final coding is not chunked has no reliable length.
            if !framing.chunked {
                return Err(malformed("transfer-encoding"));
            }
            Some(Body::Chunked(Chunk::Size))
        } else if framing.bad_content_length {
            return Err(malformed("content-length"));
        } else {
            framing.content_length.map(Body::Length)
        };
        let method = match method {
            b"HEAD" => Method::Head,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        };
        if method == Method::Connect || record.attribute("upgrade").is_some() {
            self.awaiting_switch = true;
        }
        if self.pending.len() >= MAX_PENDING_REQUESTS {
            self.pending.pop_front();
        }
        self.pending.push_back(method);
        Ok(body)
    }

    /// Body framing of a response (RFC 9112 section 6.3 items 1 to 8); sets the record kind.
    fn response_body(
        &mut self,
        status: StatusCode,
        framing: &FramingFields,
        record: &mut Record,
    ) -> Result<Option<Body>, ParseError> {
        if status.is_informational() {
            // Item 2: 1xx has no content. 101 ends HTTP on this connection.
            if status == StatusCode::SWITCHING_PROTOCOLS {
                record.kind = RecordKind::Switch;
                self.awaiting_switch = false;
            } else {
                record.kind = RecordKind::Message;
            }
            return Ok(None);
        }
        self.awaiting_switch = false;
        let method = self.pending.pop_front().unwrap_or(Method::Other);
        if method == Method::Connect && status.is_success() {
            // Item 3: a 2xx to CONNECT turns the connection into a tunnel.
            record.kind = RecordKind::Switch;
            return Ok(None);
        }
        if method == Method::Head
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(None);
        }
        if framing.has_transfer_encoding {
            return Ok(Some(if framing.chunked {
                Body::Chunked(Chunk::Size)
            } else {
                Body::UntilClose
            }));
        }
        if framing.bad_content_length {
            return Err(malformed("content-length"));
        }
        Ok(Some(
            framing
                .content_length
                .map_or(Body::UntilClose, Body::Length),
        ))
    }

    /// Reads body bytes of the in-flight message of `dir`.
    fn parse_body(
        &mut self,
        rest: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<Step, ParseError> {
        let stream = &mut self.streams[dir.index()];
        let Some(msg) = stream.in_flight.as_mut() else {
            return Ok(Step::NeedMore);
        };
        let (used, done) = match msg.body {
            Body::UntilClose => {
                msg.wire(rest);
                msg.content(rest);
                (rest.len(), false)
            }
            Body::Length(left) => {
                let n = take_len(left, rest.len());
                let data = rest.get(..n).unwrap_or_default();
                msg.wire(data);
                msg.content(data);
                let left = left - n as u64;
                msg.body = Body::Length(left);
                (n, left == 0)
            }
            Body::Chunked(Chunk::Size) => match parse_chunk_size_line(rest) {
                Ok((r, size)) => {
                    let n = rest.len() - r.len();
                    msg.wire(rest.get(..n).unwrap_or_default());
                    msg.body = Body::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                    (n, false)
                }
                Err(Err::Incomplete(_)) if rest.len() > MAX_CHUNK_LINE_LEN => {
                    return Err(too_large("chunk-size line", rest.len(), MAX_CHUNK_LINE_LEN));
                }
                Err(Err::Incomplete(_)) => return Ok(Step::NeedMore),
                Err(_) => return Err(malformed("chunk size")),
            },
            Body::Chunked(Chunk::Data(left)) => {
                let n = take_len(left, rest.len());
                let data = rest.get(..n).unwrap_or_default();
                msg.wire(data);
                msg.content(data);
                let left = left - n as u64;
                msg.body = Body::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                (n, false)
            }
            Body::Chunked(Chunk::DataEnd) => match parse_chunk_data_end(rest) {
                Ok((r, ())) => {
                    let n = rest.len() - r.len();
                    msg.wire(rest.get(..n).unwrap_or_default());
                    msg.body = Body::Chunked(Chunk::Size);
                    (n, false)
                }
                Err(Err::Incomplete(_)) => return Ok(Step::NeedMore),
                Err(_) => return Err(malformed("chunk data end")),
            },
            Body::Chunked(Chunk::Trailers) => {
                let mut trailers = Vec::new();
                let mut framing = FramingFields::default();
                match parse_trailers(rest, &mut stream.scanned, &mut trailers, &mut framing)? {
                    Some(n) => {
                        msg.wire(rest.get(..n).unwrap_or_default());
                        msg.record.attributes.extend(trailers);
                        (n, true)
                    }
                    None if rest.len() > MAX_TRAILER_LEN => {
                        return Err(too_large("trailer section", rest.len(), MAX_TRAILER_LEN));
                    }
                    None => return Ok(Step::NeedMore),
                }
            }
        };
        if done {
            if let Some(msg) = stream.in_flight.take() {
                if !msg.emitted {
                    out.push(msg.record);
                }
            }
        }
        Ok(if used == 0 {
            Step::NeedMore
        } else {
            Step::Consumed(used)
        })
    }
}

/// How many of `available` bytes belong to a body part with `left` bytes to go.
fn take_len(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |l| l.min(available))
}

/// The trailer section at the start of `rest` (RFC 9112 section 7.1.2), which may be
/// incomplete: `Ok(None)` asks for more. `scanned` remembers how far its end was searched.
fn parse_trailers(
    rest: &[u8],
    scanned: &mut usize,
    attributes: &mut Vec<(String, String)>,
    framing: &mut FramingFields,
) -> Result<Option<usize>, ParseError> {
    // An empty section is just the line ending; otherwise it ends like a head.
    let end = match rest {
        [b'\n', ..] => Some(1),
        [b'\r', b'\n', ..] => Some(2),
        [b'\r'] => None,
        _ => find_head_end(rest, *scanned),
    };
    let Some(end) = end else {
        *scanned = rest.len();
        return Ok(None);
    };
    *scanned = 0;
    parse_fields(rest.get(..end).unwrap_or_default(), attributes, framing)
        .map_err(|_| malformed("trailer field"))
        .map(Some)
}

impl Http1Session {
    /// Steps over `len` uncaptured body bytes of `dir`, if the framing allows it.
    fn skip_body(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> bool {
        let stream = &mut self.streams[dir.index()];
        let Some(msg) = stream.in_flight.as_mut() else {
            return false;
        };
        let done = match msg.body {
            Body::Length(left) if len <= left => {
                msg.body = Body::Length(left - len);
                left == len
            }
            Body::Chunked(Chunk::Data(left)) if len <= left => {
                msg.body = Body::Chunked(if left == len {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - len)
                });
                false
            }
            Body::UntilClose => false,
            _ => return false,
        };
        msg.record.wire_len += len;
        msg.record.truncated = true;
        if done {
            if let Some(msg) = stream.in_flight.take() {
                if !msg.emitted {
                    out.push(msg.record);
                }
            }
        }
        true
    }
}

impl Steps for Http1Session {
    fn step(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        if self.streams[dir.index()].in_flight.is_some() {
            self.parse_body(buf, dir, out)
        } else {
            self.parse_head(buf, dir, out)
        }
    }

    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        if self.skip_body(dir, len, out) {
            Ok(())
        } else {
            Err(ParseError::Gap { len })
        }
    }

    fn finish(&mut self, dir: Direction, out: &mut Vec<Record>) {
        if let Some(msg) = self.streams[dir.index()].in_flight.take() {
            if msg.emitted {
                return;
            }
            let mut record = msg.record;
            // Only a body read until close is complete now; any other was cut short.
            if msg.body != Body::UntilClose {
                record.truncated = true;
            }
            out.push(record);
        }
    }
}
