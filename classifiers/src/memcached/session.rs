//! Per-connection memcached parsing: text, meta and binary messages in both directions.
//!
//! Data blocks and binary bodies are consumed as they arrive, whatever their size; only the
//! first bytes of each message are kept. Records:
//! - to the server: each command is a [`RecordKind::Request`] with `op` the command (`set`,
//!   `mg`; binary opcodes by their names, `get`, `setq`) and `resource` its key (the first
//!   one of a multi-key `get`), attribute `bytes` for storage commands; `noreply`, meta `q`
//!   and binary quiet commands, which may get no answer, are [`RecordKind::Message`]s;
//! - to the client: each reply is a [`RecordKind::Response`]: the `VALUE`/`STAT` lines up to
//!   `END` form one reply (attributes `hits`, `items`), attribute `status` is the closing word
//!   (`STORED`, `NOT_FOUND`, `HD`, `EN`, `END`), `error` the text of `CLIENT_ERROR` /
//!   `SERVER_ERROR` and `version` that of `VERSION`; binary responses carry the status code
//!   as `status` and its name as the `status` attribute; responses to quiet binary commands
//!   and the per-statistic responses of a binary `stat` are messages.

use adi_classify::record::lossy;
use adi_classify::{Direction, ParseError, Record, RecordKind, Step, StepResult, Steps};

use super::parser::{
    parse_binary_header, parse_text_command, parse_text_line, parse_text_reply, words, Magic,
    Opcode, Status, TextCommand, TextReply, BINARY_HEADER_LEN,
};
use super::ID;
use crate::parsing::read;

/// Most bytes of a message kept as sent in [`Record::raw`].
pub(crate) const MAX_RAW_KEPT: usize = 256;

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(ID, what)
}

fn keep_raw(record: &mut Record, bytes: &[u8]) {
    let room = MAX_RAW_KEPT.saturating_sub(record.raw.len());
    record
        .raw
        .extend_from_slice(&bytes[..room.min(bytes.len())]);
    record.wire_len += bytes.len() as u64;
}

/// One direction's reader state.
#[derive(Debug, Default)]
struct Reader {
    /// Bytes of a data block or binary body still to come.
    body_left: u64,
    /// A text data block was read: its `\r\n` comes next.
    crlf_next: bool,
    /// How the message being read is framed.
    framing: Framing,
    /// Binary: extras bytes still to skip, then key bytes still to keep.
    extras_left: u64,
    key_left: u64,
    key: Vec<u8>,
    /// The record being built.
    record: Option<Record>,
    /// Emit the record once the current data block ends (a storage command, a meta `VA`);
    /// otherwise it stays open until `END`.
    emit_after_block: bool,
    /// `VALUE` blocks and `STAT`/`ITEM` lines in the open reply.
    hits: u64,
    items: u64,
}

/// How the message being read is framed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Text or meta protocol.
    #[default]
    Text,
    /// Binary protocol.
    Binary,
    /// Binary, with credentials in the body (SASL): count it, keep none of it.
    BinarySecret,
}

impl Framing {
    const fn is_binary(self) -> bool {
        matches!(self, Self::Binary | Self::BinarySecret)
    }
}

impl Reader {
    fn emit(&mut self, out: &mut Vec<Record>) {
        if let Some(mut record) = self.record.take() {
            if self.hits > 0 {
                record
                    .attributes
                    .push(("hits".to_owned(), self.hits.to_string()));
            }
            if self.items > 0 {
                record
                    .attributes
                    .push(("items".to_owned(), self.items.to_string()));
            }
            if self.framing.is_binary() && !self.key.is_empty() {
                record.resource = Some(lossy(&self.key));
            }
            out.push(record);
        }
        self.hits = 0;
        self.items = 0;
        self.key.clear();
        self.framing = Framing::Text;
        self.emit_after_block = false;
    }

    /// A binary header: starts its record.
    fn binary_header(
        &mut self,
        h: super::parser::BinaryHeader,
        wire: &[u8],
        out: &mut Vec<Record>,
    ) {
        let request = h.magic == Magic::REQUEST;
        // A binary `stat` is answered by one response per statistic and a last one with no
        // key: only that one pairs with the request.
        let stat_item = !request && h.opcode == Opcode::STAT && h.key_len > 0;
        let kind = match (request, h.opcode.is_quiet() || stat_item) {
            (_, true) => RecordKind::Message,
            (true, false) => RecordKind::Request,
            (false, false) => RecordKind::Response,
        };
        let mut record = Record::new(kind);
        record.op = Some(
            h.opcode
                .name()
                .map_or_else(|| format!("0x{:02x}", h.opcode.0), str::to_owned),
        );
        if !request {
            let status = Status(h.vbucket_or_status);
            record.status = Some(status.0);
            let name = status.name().unwrap_or("unknown");
            record
                .attributes
                .push(("status".to_owned(), name.to_owned()));
        }
        record
            .attributes
            .push(("binary".to_owned(), "true".to_owned()));
        keep_raw(&mut record, wire);
        self.record = Some(record);
        // SASL bodies carry credentials: keep none of them.
        self.framing = if h.opcode.is_sasl() {
            Framing::BinarySecret
        } else {
            Framing::Binary
        };
        self.extras_left = u64::from(h.extras_len);
        self.key_left = u64::from(h.key_len);
        self.body_left = u64::from(h.body_len);
        if self.body_left == 0 {
            self.emit(out);
        }
    }

    /// Body bytes of a binary message: the key is kept after the extras.
    fn binary_body(&mut self, mut bytes: &[u8]) {
        let skip = usize::try_from(self.extras_left)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        self.extras_left -= skip as u64;
        bytes = &bytes[skip..];
        let take = usize::try_from(self.key_left)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        self.key.extend_from_slice(&bytes[..take]);
        self.key_left -= take as u64;
    }

    /// A text command line (to the server).
    fn command(&mut self, line: &[u8], wire: &[u8], out: &mut Vec<Record>) {
        let kind = |reply: bool| {
            if reply {
                RecordKind::Request
            } else {
                RecordKind::Message
            }
        };
        let (mut record, block) = match parse_text_command(line) {
            Some(TextCommand::Storage {
                name,
                key,
                data_len,
                reply,
            }) => {
                let mut r = Record::new(kind(reply));
                r.op = Some(lossy(name));
                r.resource = Some(lossy(key));
                r.attributes
                    .push(("bytes".to_owned(), data_len.to_string()));
                (r, Some(data_len))
            }
            Some(TextCommand::Line {
                name, key, reply, ..
            }) => {
                let mut r = Record::new(kind(reply));
                r.op = Some(lossy(name));
                r.resource = key.map(lossy);
                (r, None)
            }
            None => {
                // memcached answers `ERROR` or `CLIENT_ERROR` and carries on.
                let mut r = Record::new(RecordKind::Request);
                r.op = words(line).next().map(lossy);
                r.attributes
                    .push(("malformed".to_owned(), "true".to_owned()));
                (r, None)
            }
        };
        keep_raw(&mut record, wire);
        self.record = Some(record);
        match block {
            Some(len) => {
                self.body_left = len;
                self.crlf_next = len == 0;
                self.emit_after_block = true;
            }
            None => self.emit(out),
        }
    }

    /// A text reply line (to the client).
    fn reply(&mut self, line: &[u8], wire: &[u8], out: &mut Vec<Record>) {
        let record = self
            .record
            .get_or_insert_with(|| Record::new(RecordKind::Response));
        keep_raw(record, wire);
        match parse_text_reply(line) {
            Some(TextReply::Value {
                key,
                data_len,
                last,
            }) => {
                self.hits += 1;
                if record.resource.is_none() {
                    record.resource = key.map(lossy);
                }
                if last {
                    record
                        .attributes
                        .push(("status".to_owned(), "VA".to_owned()));
                }
                self.body_left = data_len;
                self.crlf_next = data_len == 0;
                self.emit_after_block = last;
            }
            Some(TextReply::ListItem) => self.items += 1,
            Some(TextReply::End { status, .. }) => {
                record.attributes.push(("status".to_owned(), lossy(status)));
                let rest = line.get(status.len() + 1..).unwrap_or_default();
                match status {
                    b"CLIENT_ERROR" | b"SERVER_ERROR" => {
                        record.attributes.push(("error".to_owned(), lossy(rest)));
                    }
                    b"VERSION" => record.attributes.push(("version".to_owned(), lossy(rest))),
                    _ => {}
                }
                self.emit(out);
            }
            // A line adi does not know (`stats detail dump` output): part of an open list,
            // else a reply of its own.
            None if self.hits + self.items > 0 => self.items += 1,
            None => {
                let status = words(line).next().unwrap_or_default();
                record.attributes.push(("status".to_owned(), lossy(status)));
                self.emit(out);
            }
        }
    }
}

/// The memcached session.
#[derive(Debug, Default)]
pub(crate) struct MemcachedSession {
    readers: [Reader; 2],
}

impl Steps for MemcachedSession {
    fn step(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        let r = &mut self.readers[dir.index()];
        if r.body_left > 0 {
            let n = usize::try_from(r.body_left)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let bytes = &buf[..n];
            if r.framing.is_binary() {
                r.binary_body(bytes);
            }
            if let Some(record) = r.record.as_mut() {
                if r.framing == Framing::BinarySecret {
                    record.wire_len += n as u64;
                } else {
                    keep_raw(record, bytes);
                }
            }
            r.body_left -= n as u64;
            if r.body_left == 0 {
                if r.framing.is_binary() {
                    r.emit(out);
                } else {
                    r.crlf_next = true;
                }
            }
            return Ok(Step::Consumed(n));
        }
        if r.crlf_next {
            match buf {
                [b'\r', b'\n', ..] => {}
                [b'\r'] => return Ok(Step::NeedMore),
                _ => return Err(malformed("data block end")),
            }
            if let Some(record) = r.record.as_mut() {
                keep_raw(record, &buf[..2]);
            }
            r.crlf_next = false;
            if r.emit_after_block {
                r.emit(out);
            }
            return Ok(Step::Consumed(2));
        }
        if matches!(buf[0], 0x80 | 0x81) && r.record.is_none() {
            let Some((_, header)) = read(parse_binary_header(buf), ID, "binary header")? else {
                return Ok(Step::NeedMore);
            };
            r.binary_header(header, &buf[..BINARY_HEADER_LEN], out);
            return Ok(Step::Consumed(BINARY_HEADER_LEN));
        }
        let Some((after, line)) = read(parse_text_line(buf), ID, "text line")? else {
            return Ok(Step::NeedMore);
        };
        let used = buf.len() - after.len();
        match dir {
            Direction::ToServer => r.command(line, &buf[..used], out),
            Direction::ToClient => r.reply(line, &buf[..used], out),
        }
        Ok(Step::Consumed(used))
    }

    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        let r = &mut self.readers[dir.index()];
        if len == 0 || len > r.body_left {
            return Err(ParseError::Gap { len });
        }
        r.body_left -= len;
        // The key of a binary message may fall in the gap: skip it as extras.
        let lost_key = len.saturating_sub(r.extras_left).min(r.key_left);
        r.extras_left = r.extras_left.saturating_sub(len);
        r.key_left -= lost_key;
        if let Some(record) = r.record.as_mut() {
            record.wire_len += len;
            record.truncated = true;
        }
        if r.body_left == 0 {
            if r.framing.is_binary() {
                r.emit(out);
            } else {
                r.crlf_next = true;
            }
        }
        Ok(())
    }
}
