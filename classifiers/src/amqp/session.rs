//! Per-connection AMQP 0-9-1 parsing: protocol headers, frames, methods and their content.
//!
//! Each direction is a stream of frames (section 4.2.3). Method and content header frames are
//! parsed once whole; content body frames are consumed as they arrive, whatever their size.
//! Records:
//! - the protocol header: a [`RecordKind::Message`] with op `protocol-header` and the
//!   `version` attribute. After an AMQP 1.0 or 1.0 SASL header the rest of the connection is
//!   AMQP 1.0 framing, which adi does not parse: it is consumed without records. After a 1.0
//!   TLS header the record is a [`RecordKind::Switch`]: TLS follows.
//! - each method frame: `op` is `class.method` (`basic.publish`); synchronous methods are
//!   [`RecordKind::Request`]s (unless their `no-wait` bit is set) and their `-ok` answers
//!   [`RecordKind::Response`]s, asynchronous ones (publish, deliver, ack...) messages.
//!   `resource`: the queue (queue methods, basic.consume, basic.get), the exchange (exchange
//!   methods; for publish/deliver/return/get-ok the exchange, or the routing key when the
//!   exchange is the default `""`), the virtual host (connection.open). Attributes:
//!   Connection.Start's server properties `product`, `version`, `platform`, `cluster_name`
//!   and `mechanisms`; Start-Ok's client properties `product`, `version`, `platform`,
//!   `connection_name` and `mechanism`; `exchange`, `routing_key`, `type`, `consumer_tag`,
//!   `reply_text` where the method has them; close and return reply codes as `status`.
//! - a method that carries content (publish, deliver, return, get-ok) is emitted when its
//!   body is complete, with the body (capped at [`MAX_BODY_KEPT`]) and `content_type`.
//! - heartbeats produce no record.

use adi_classify::record::{keep_capped, lossy};
use adi_classify::{Direction, ParseError, Record, RecordKind, Step, StepResult, Steps};
use nom::Err;

use super::parser::{
    parse_arguments, parse_content_header, parse_frame, parse_frame_header, parse_method_id,
    Arguments, FrameType, MethodId, Role, AMQP_MAGIC, FRAME_END, FRAME_HEADER_LEN, HEADER_LEN,
    MAX_FRAME_SIZE,
};
use super::{known_header, ID};
use crate::parsing::read;

/// Most content body bytes kept per message in [`Record::body`].
pub(crate) const MAX_BODY_KEPT: usize = 16 * 1024;
/// Most bytes of a method frame kept as sent in [`Record::raw`].
pub(crate) const MAX_RAW_KEPT: usize = 512;
/// Most messages waiting for their content at once (one per channel and direction is the
/// norm); beyond it the oldest is emitted without its body.
pub(crate) const MAX_PENDING_CONTENT: usize = 256;

/// A content-carrying method waiting for its header and body frames (section 4.2.6).
#[derive(Debug)]
struct Content {
    dir: Direction,
    channel: u16,
    record: Record,
    /// Body bytes still to come; `None` until the content header arrived.
    body_left: Option<u64>,
}

/// A content body frame being read.
#[derive(Clone, Copy, Debug)]
struct BodyFrame {
    channel: u16,
    /// Payload bytes left, then the frame-end octet.
    left: usize,
}

/// What follows a protocol header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// AMQP 0-x frames: parse on.
    Frames,
    /// AMQP 1.0 framing: consumed without records.
    Opaque,
    /// TLS: another protocol.
    Switch,
}

/// The AMQP session.
#[derive(Debug, Default)]
pub(crate) struct AmqpSession {
    /// After an AMQP 1.0 header: consume everything, parse nothing.
    opaque: bool,
    /// Per direction, the body frame being read.
    body: [Option<BodyFrame>; 2],
    /// Messages waiting for content, oldest first.
    pending: Vec<Content>,
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(ID, what)
}

/// The record of one method frame.
fn method_record(id: MethodId, a: &Arguments<'_>, frame: &[u8]) -> Record {
    let kind = match id.role() {
        Some(Role::Request) if !a.no_wait => RecordKind::Request,
        Some(Role::Response) => RecordKind::Response,
        _ => RecordKind::Message,
    };
    let mut r = Record::new(kind);
    r.op = Some(
        id.name()
            .map_or_else(|| format!("{}.{}", id.class, id.method), str::to_owned),
    );
    r.resource = match id.class {
        50 => a.queue,
        40 => a.exchange,
        _ if id.carries_content() => match a.exchange {
            Some(b"") | None => a.routing_key,
            e => e,
        },
        _ if id == MethodId::CONNECTION_OPEN => a.vhost,
        _ => a.queue,
    }
    .map(lossy);
    r.status = a.reply_code;
    let mut attr = |name: &str, value: Option<&[u8]>| {
        if let Some(v) = value {
            r.attributes.push((name.to_owned(), lossy(v)));
        }
    };
    if let Some(props) = a.properties {
        let server = id == MethodId::CONNECTION_START;
        attr("product", props.string("product"));
        attr("version", props.string("version"));
        attr("platform", props.string("platform"));
        if server {
            attr("cluster_name", props.string("cluster_name"));
            attr("mechanisms", a.mechanism);
        } else {
            attr("connection_name", props.string("connection_name"));
            attr("mechanism", a.mechanism);
        }
    }
    if id.class == 50 || id.carries_content() {
        attr("exchange", a.exchange);
    }
    if matches!(id, MethodId::EXCHANGE_BIND | MethodId::EXCHANGE_UNBIND) {
        attr("destination", a.queue);
    }
    attr("type", a.exchange_type);
    attr("routing_key", a.routing_key);
    attr("consumer_tag", a.consumer_tag);
    attr("reply_text", a.reply_text);
    if id == MethodId::CONNECTION_OPEN {
        if let Some(vhost) = a.vhost {
            r.connection.push(("vhost", lossy(vhost)));
        }
    }
    if id != MethodId::CONNECTION_START {
        if let Some(name) = a.properties.and_then(|p| p.string("connection_name")) {
            r.connection.push(("client_name", lossy(name)));
        }
    }
    r.wire_len = frame.len() as u64;
    keep_capped(&mut r.raw, &mut r.truncated, frame, MAX_RAW_KEPT);
    r
}

impl AmqpSession {
    /// The message waiting for content on `channel` in `dir`.
    fn pending_mut(&mut self, dir: Direction, channel: u16) -> Option<&mut Content> {
        self.pending
            .iter_mut()
            .find(|c| c.dir == dir && c.channel == channel)
    }

    /// Emits the message waiting on `channel` in `dir` if its body is complete.
    fn finish_if_done(&mut self, dir: Direction, channel: u16, out: &mut Vec<Record>) {
        if let Some(pos) = self
            .pending
            .iter()
            .position(|c| c.dir == dir && c.channel == channel && c.body_left == Some(0))
        {
            out.push(self.pending.remove(pos).record);
        }
    }

    /// Handles one whole non-body frame.
    fn on_frame(
        &mut self,
        dir: Direction,
        kind: FrameType,
        channel: u16,
        payload: &[u8],
        frame: &[u8],
        out: &mut Vec<Record>,
    ) -> Result<(), ParseError> {
        match kind {
            FrameType::METHOD => {
                let (args, id) = parse_method_id(payload).map_err(|_| malformed("method ids"))?;
                let (_, a) =
                    parse_arguments(id, args).map_err(|_| malformed("method arguments"))?;
                let record = method_record(id, &a, frame);
                // A new method on a channel ends any content still expected there.
                if let Some(pos) = self
                    .pending
                    .iter()
                    .position(|c| c.dir == dir && c.channel == channel)
                {
                    let mut old = self.pending.remove(pos);
                    old.record.truncated = true;
                    out.push(old.record);
                }
                if id.carries_content() {
                    if self.pending.len() >= MAX_PENDING_CONTENT {
                        let mut oldest = self.pending.remove(0);
                        oldest.record.truncated = true;
                        out.push(oldest.record);
                    }
                    self.pending.push(Content {
                        dir,
                        channel,
                        record,
                        body_left: None,
                    });
                } else {
                    out.push(record);
                }
            }
            FrameType::HEADER => {
                let (_, h) =
                    parse_content_header(payload).map_err(|_| malformed("content header"))?;
                if let Some(c) = self.pending_mut(dir, channel) {
                    c.body_left = Some(h.body_size);
                    c.record.wire_len += frame.len() as u64;
                    if let Some(t) = h.content_type {
                        c.record
                            .attributes
                            .push(("content_type".to_owned(), lossy(t)));
                    }
                }
                self.finish_if_done(dir, channel, out);
            }
            // Heartbeats (and frame types adi does not know) carry nothing to report.
            _ => {}
        }
        Ok(())
    }

    /// Handles an 8-byte protocol header and says what follows it.
    fn on_protocol_header(
        &mut self,
        header: &[u8],
        out: &mut Vec<Record>,
    ) -> Result<After, ParseError> {
        let Some(version) = header.strip_prefix(AMQP_MAGIC) else {
            return Err(malformed("protocol header"));
        };
        let name = known_header(version).map_or_else(
            || {
                version
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(".")
            },
            |(name, _)| name.to_owned(),
        );
        let after = match name.as_str() {
            "1.0" | "1.0-sasl" => After::Opaque,
            "1.0-tls" => After::Switch,
            _ => After::Frames,
        };
        let kind = if after == After::Switch {
            RecordKind::Switch
        } else {
            RecordKind::Message
        };
        let mut r = Record::new(kind);
        r.op = Some("protocol-header".to_owned());
        r.attributes.push(("version".to_owned(), name));
        r.wire_len = HEADER_LEN as u64;
        r.raw = header.to_vec();
        out.push(r);
        if after == After::Opaque {
            self.opaque = true;
        }
        Ok(after)
    }

    /// Reads body-frame bytes from `buf`; returns how many it took.
    fn on_body(
        &mut self,
        dir: Direction,
        buf: &[u8],
        out: &mut Vec<Record>,
    ) -> Result<usize, ParseError> {
        let Some(mut frame) = self.body[dir.index()] else {
            return Ok(0);
        };
        let payload_left = frame.left.saturating_sub(1);
        let n = payload_left.min(buf.len());
        let part = &buf[..n];
        if let Some(c) = self.pending_mut(dir, frame.channel) {
            keep_capped(
                &mut c.record.body,
                &mut c.record.truncated,
                part,
                MAX_BODY_KEPT,
            );
            c.record.wire_len += n as u64;
            if let Some(left) = c.body_left.as_mut() {
                *left = left.saturating_sub(n as u64);
            }
        }
        frame.left -= n;
        let mut used = n;
        if frame.left == 1 && used < buf.len() {
            if buf[used] != FRAME_END {
                return Err(malformed("frame end"));
            }
            if let Some(c) = self.pending_mut(dir, frame.channel) {
                c.record.wire_len += 1;
            }
            frame.left = 0;
            used += 1;
        }
        if frame.left == 0 {
            self.body[dir.index()] = None;
            self.finish_if_done(dir, frame.channel, out);
        } else {
            self.body[dir.index()] = Some(frame);
        }
        Ok(used)
    }
}

impl Steps for AmqpSession {
    fn step(&mut self, rest: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        if self.opaque {
            return Ok(Step::Consumed(rest.len()));
        }
        if self.body[dir.index()].is_some() {
            // A body frame still open after this has taken all of `rest`.
            return Ok(Step::Consumed(self.on_body(dir, rest, out)?));
        }
        if rest[0] == AMQP_MAGIC[0] {
            let Some(header) = rest.get(..HEADER_LEN) else {
                return Ok(Step::NeedMore);
            };
            return Ok(match self.on_protocol_header(header, out)? {
                After::Frames => Step::Consumed(HEADER_LEN),
                After::Opaque => Step::Consumed(rest.len()),
                After::Switch => Step::Switched(HEADER_LEN),
            });
        }
        let header = match parse_frame_header(rest) {
            Ok((_, h)) => h,
            Err(Err::Incomplete(_)) => return Ok(Step::NeedMore),
            Err(_) => {
                let size = rest
                    .get(3..7)
                    .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
                return Err(if size > MAX_FRAME_SIZE {
                    ParseError::too_large(ID, "frame", size as usize, MAX_FRAME_SIZE as usize)
                } else {
                    malformed("frame type")
                });
            }
        };
        if header.kind == FrameType::BODY {
            if let Some(c) = self.pending_mut(dir, header.channel) {
                c.record.wire_len += FRAME_HEADER_LEN as u64;
            }
            self.body[dir.index()] = Some(BodyFrame {
                channel: header.channel,
                left: header.size as usize + 1,
            });
            return Ok(Step::Consumed(FRAME_HEADER_LEN));
        }
        let Some((_, (_, payload))) = read(parse_frame(rest), ID, "frame end")? else {
            return Ok(Step::NeedMore);
        };
        let frame_len = FRAME_HEADER_LEN + payload.len() + 1;
        self.on_frame(
            dir,
            header.kind,
            header.channel,
            payload,
            &rest[..frame_len],
            out,
        )?;
        Ok(Step::Consumed(frame_len))
    }

    /// Steps over uncaptured bytes inside a content body frame (the message is marked
    /// truncated); any other gap is an error and the engine restarts the session.
    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        let Some(mut frame) = self.body[dir.index()] else {
            return Err(ParseError::Gap { len });
        };
        let n = match usize::try_from(len) {
            Ok(n) if n <= frame.left => n,
            _ => return Err(ParseError::Gap { len }),
        };
        // The payload part of the gap (the frame-end octet may be in it too).
        let payload = n.min(frame.left.saturating_sub(1));
        if let Some(c) = self.pending_mut(dir, frame.channel) {
            c.record.truncated = true;
            c.record.wire_len += len;
            if let Some(left) = c.body_left.as_mut() {
                *left = left.saturating_sub(payload as u64);
            }
        }
        frame.left -= n;
        if frame.left == 0 {
            self.body[dir.index()] = None;
            self.finish_if_done(dir, frame.channel, out);
        } else {
            self.body[dir.index()] = Some(frame);
        }
        Ok(())
    }
}
