//! Per-connection NATS parsing: control lines and payloads, in both directions.
//!
//! Each direction is a stream of messages. A control line is parsed once it is whole (at most
//! [`MAX_CONTROL_LINE`] bytes); a payload is consumed as it arrives, whatever its size, and its
//! record is emitted when its closing `\r\n` has been read (at most [`MAX_BODY_KEPT`] payload
//! bytes are kept). Records:
//! - `INFO` ([`RecordKind::Message`]): attributes `server_name`, `version` from its JSON;
//! - `CONNECT`: attributes `name`, `lang`, `version`; it also tells whether the client asked
//!   for `verbose` mode, where the server acknowledges every operation with `+OK`;
//! - `PUB`/`HPUB`/`SUB`/`UNSUB`/`CONNECT`: [`RecordKind::Request`] in verbose mode (a `+OK` or
//!   `-ERR` answers each), [`RecordKind::Message`] otherwise; `resource` is the subject,
//!   attributes `reply_to`, `queue`, `sid`, `max_msgs` when present and the header fields of
//!   `HPUB`/`HMSG` (with the `NATS/1.0 503` status line's code as `status`);
//! - `MSG`/`HMSG`: messages with the subject, `sid` and `reply_to`;
//! - `PING` a request and `PONG` its response, either side; `+OK`/`-ERR` responses in
//!   verbose mode (messages otherwise), `-ERR`'s text as the `error` attribute.

use adi_classify::record::{keep_capped, lossy};
use adi_classify::{Direction, ParseError, Record, RecordKind, Step, StepResult, Steps};
use nom::Err;

use super::parser::{
    json_bool, json_string, parse_args, parse_control_line, split_control, Args, Control, Verb,
    HEADER_MAGIC, MAX_CONTROL_LINE,
};
use super::ID;

/// Most payload bytes kept per message in [`Record::body`].
pub(crate) const MAX_BODY_KEPT: usize = 16 * 1024;
/// Most bytes of a message kept as sent in [`Record::raw`].
pub(crate) const MAX_RAW_KEPT: usize = 1024;
/// Most header-block bytes of an `HPUB`/`HMSG` kept to read its fields.
pub(crate) const MAX_HEADERS_KEPT: usize = 4096;

/// A message whose payload is still arriving.
#[derive(Debug)]
struct InFlight {
    record: Record,
    /// Header-block bytes still to come.
    header_left: usize,
    /// The header block, capped at [`MAX_HEADERS_KEPT`].
    headers: Vec<u8>,
    /// Payload bytes (after the headers) still to come.
    body_left: usize,
    /// Bytes of the closing `\r\n` still to come (2, 1 or 0).
    crlf_left: usize,
}

/// The NATS session.
#[derive(Debug, Default)]
pub(crate) struct NatsSession {
    /// The client asked for verbose mode in its `CONNECT`.
    verbose: bool,
    /// Per direction, the message whose payload is being read.
    in_flight: [Option<InFlight>; 2],
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(ID, what)
}

impl NatsSession {
    /// The record of a whole control line, before any payload.
    fn record_for(&mut self, c: &Control<'_>, args: &Args<'_>) -> Record {
        let requestish = if self.verbose {
            RecordKind::Request
        } else {
            RecordKind::Message
        };
        let answerish = if self.verbose {
            RecordKind::Response
        } else {
            RecordKind::Message
        };
        let kind = match c.verb {
            Verb::Info | Verb::Msg | Verb::Hmsg => RecordKind::Message,
            Verb::Connect => {
                self.verbose = json_bool(c.rest, "verbose").unwrap_or(false);
                if self.verbose {
                    RecordKind::Request
                } else {
                    RecordKind::Message
                }
            }
            Verb::Pub | Verb::Hpub | Verb::Sub | Verb::Unsub => requestish,
            Verb::Ping => RecordKind::Request,
            Verb::Pong => RecordKind::Response,
            Verb::Ok | Verb::Err => answerish,
        };
        let mut r = Record::new(kind);
        r.op = Some(c.verb.as_str().to_owned());
        r.resource = args.subject.map(lossy);
        let mut attr = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                r.attributes.push((name.to_owned(), v));
            }
        };
        match c.verb {
            Verb::Info => {
                attr("server_name", json_string(c.rest, "server_name"));
                attr("version", json_string(c.rest, "version"));
            }
            Verb::Connect => {
                let name = json_string(c.rest, "name").filter(|n| !n.is_empty());
                if let Some(n) = &name {
                    r.connection.push(("client_name", n.clone()));
                }
                attr("name", name);
                attr("lang", json_string(c.rest, "lang"));
                attr("version", json_string(c.rest, "version"));
            }
            Verb::Err => {
                let msg = c.rest.strip_prefix(b"'").unwrap_or(c.rest);
                let msg = msg.strip_suffix(b"'").unwrap_or(msg);
                attr("error", Some(lossy(msg)));
            }
            _ => {
                attr("queue", args.queue.map(lossy));
                attr("sid", args.sid.map(lossy));
                attr("reply_to", args.reply_to.map(lossy));
                attr("max_msgs", args.max_msgs.map(lossy));
            }
        }
        r
    }

    /// Reads payload bytes of `f` from `buf`; returns how many it took.
    fn feed(f: &mut InFlight, buf: &[u8]) -> Result<usize, ParseError> {
        let mut used = 0;
        let n = f.header_left.min(buf.len());
        let part = &buf[..n];
        keep_capped(
            &mut f.headers,
            &mut f.record.truncated,
            part,
            MAX_HEADERS_KEPT,
        );
        f.header_left -= n;
        used += n;
        let n = f.body_left.min(buf.len() - used);
        let part = &buf[used..used + n];
        keep_capped(
            &mut f.record.body,
            &mut f.record.truncated,
            part,
            MAX_BODY_KEPT,
        );
        f.body_left -= n;
        used += n;
        while f.crlf_left > 0 && used < buf.len() {
            let want = if f.crlf_left == 2 { b'\r' } else { b'\n' };
            if buf[used] != want {
                return Err(malformed("payload end (\\r\\n)"));
            }
            f.crlf_left -= 1;
            used += 1;
        }
        let all = &buf[..used];
        keep_capped(
            &mut f.record.raw,
            &mut f.record.truncated,
            all,
            MAX_RAW_KEPT,
        );
        f.record.wire_len += used as u64;
        Ok(used)
    }

    /// Turns a finished message's header block into attributes (`NATS/1.0 [code]` status line,
    /// then `Name: value` lines).
    fn finish(mut f: InFlight) -> Record {
        let mut lines = f
            .headers
            .split(|&c| c == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        if let Some(status) = lines.next().and_then(|l| l.strip_prefix(HEADER_MAGIC)) {
            let code = status
                .iter()
                .skip_while(|&&c| c == b' ')
                .take_while(|c| c.is_ascii_digit());
            let code = code.fold(0u16, |n, &d| {
                n.saturating_mul(10).saturating_add(u16::from(d - b'0'))
            });
            if code > 0 {
                f.record.status = Some(code);
            }
        }
        for line in lines {
            if let Some(colon) = line.iter().position(|&c| c == b':') {
                let value = line[colon + 1..].trim_ascii();
                f.record
                    .attributes
                    .push((lossy(line[..colon].trim_ascii()), lossy(value)));
            }
        }
        f.record
    }
}

impl Steps for NatsSession {
    /// Steps over uncaptured bytes inside a payload (the record is marked truncated); any
    /// other gap is an error and the engine restarts the session.
    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        let Some(f) = self.in_flight[dir.index()].as_mut() else {
            return Err(ParseError::Gap { len });
        };
        let left = f.header_left + f.body_left + f.crlf_left;
        let Ok(mut n) = usize::try_from(len) else {
            return Err(ParseError::Gap { len });
        };
        if n > left {
            return Err(ParseError::Gap { len });
        }
        f.record.truncated = true;
        f.record.wire_len += len;
        for part in [&mut f.header_left, &mut f.body_left, &mut f.crlf_left] {
            let step = n.min(*part);
            *part -= step;
            n -= step;
        }
        if n == 0 && left == usize::try_from(len).unwrap_or(usize::MAX) {
            if let Some(f) = self.in_flight[dir.index()].take() {
                out.push(Self::finish(f));
            }
        }
        Ok(())
    }

    fn step(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        if let Some(f) = self.in_flight[dir.index()].as_mut() {
            // Short of the message's end only when `buf` ends.
            let n = Self::feed(f, buf)?;
            if f.header_left + f.body_left + f.crlf_left == 0 {
                if let Some(f) = self.in_flight[dir.index()].take() {
                    out.push(Self::finish(f));
                }
            }
            return Ok(Step::Consumed(n));
        }
        let (after, line) = match parse_control_line(buf) {
            Ok(r) => r,
            Err(Err::Incomplete(_)) => return Ok(Step::NeedMore),
            Err(_) => {
                return Err(ParseError::too_large(
                    ID,
                    "control line",
                    buf.len(),
                    MAX_CONTROL_LINE,
                ))
            }
        };
        let control = split_control(line).ok_or_else(|| malformed("control line"))?;
        let args = parse_args(&control).ok_or_else(|| malformed("arguments"))?;
        let line_len = buf.len() - after.len();
        let mut record = self.record_for(&control, &args);
        record.wire_len = line_len as u64;
        keep_capped(
            &mut record.raw,
            &mut record.truncated,
            &buf[..line_len],
            MAX_RAW_KEPT,
        );
        if matches!(
            control.verb,
            Verb::Pub | Verb::Hpub | Verb::Msg | Verb::Hmsg
        ) {
            self.in_flight[dir.index()] = Some(InFlight {
                record,
                header_left: args.header_len,
                headers: Vec::new(),
                body_left: args.total - args.header_len,
                crlf_left: 2,
            });
        } else {
            out.push(record);
        }
        Ok(Step::Consumed(line_len))
    }
}
