//! Per-connection Redis parsing: a streaming RESP reader per direction.
//!
//! Values are read header by header and bulk bodies byte range by byte range, so a value of
//! any size (a 100 MB `GET` reply) is consumed as it arrives and nothing but its first words
//! is kept. Aggregates nest at most [`MAX_DEPTH`] levels. Records:
//! - to the server, each command array or inline command is a [`RecordKind::Request`]: `op`
//!   the upper-case command name (`CONFIG GET` for container commands), `resource` its first
//!   key as the command table places it (the channel for pub/sub commands; never an `AUTH` or
//!   `HELLO` password, and `raw` is left empty for `AUTH`, `HELLO`, `MIGRATE`, `CONFIG SET`,
//!   `ACL SETUSER`), attributes `words` and, for inline commands, `inline`;
//!   subscribe-family commands are [`RecordKind::Message`]s, because their confirmations are
//!   one per channel (RESP3: pushes), not one reply;
//! - to the client, each reply is a [`RecordKind::Response`] with attribute `type` (RESP type
//!   name) and, for simple and blob errors, `error` (the text, capped) and `op` the error
//!   code (`ERR`, `WRONGTYPE`); a RESP3 attribute (`|`) is part of the reply it precedes; a
//!   `HELLO` map's `server` and `version` become attributes. RESP3 pushes (`>`) and, after a
//!   `SUBSCRIBE`, RESP2 `message`/`subscribe`-style arrays are [`RecordKind::Message`]s.

use adi_classify::record::lossy;
use adi_classify::{Direction, ParseError, Record, RecordKind, Step, StepResult, Steps};

use super::commands::{self, Command};
use super::parser::{parse_header, parse_inline_line, Header, InlineWords, TypeByte, MAX_DEPTH};
use super::ID;
use crate::parsing::read;

/// Most bytes of a message kept as sent in [`Record::raw`].
pub(crate) const MAX_RAW_KEPT: usize = 256;
/// Most bytes kept of each of the first words of a value (command name, key, error text).
pub(crate) const MAX_WORD_KEPT: usize = 256;
/// Words kept from the start of a value: name, subcommand or key, and the key of a container
/// command (`OBJECT ENCODING key`), and a `HELLO` map's first two pairs.
const WORDS_KEPT: usize = 4;

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(ID, what)
}

/// The value being read in one direction.
#[derive(Debug)]
struct Value {
    record: Record,
    /// The type of the top-level value (after any attribute).
    top: Option<TypeByte>,
    /// Top-level elements announced (for an aggregate).
    top_count: u64,
    /// The first words of the value: the top-level value itself if it is a string, else its
    /// first top-level elements.
    words: [Option<Vec<u8>>; WORDS_KEPT],
    /// The bulk body being read is kept in `words[i]`.
    capturing: Option<usize>,
}

impl Value {
    fn new(kind: RecordKind) -> Self {
        Self {
            record: Record::new(kind),
            top: None,
            top_count: 0,
            words: Default::default(),
            capturing: None,
        }
    }

    fn keep_raw(&mut self, bytes: &[u8]) {
        let room = MAX_RAW_KEPT.saturating_sub(self.record.raw.len());
        self.record
            .raw
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
        self.record.wire_len += bytes.len() as u64;
    }

    fn word(&self, i: usize) -> Option<&[u8]> {
        self.words.get(i)?.as_deref()
    }
}

fn keep_word(slot: &mut Option<Vec<u8>>, bytes: &[u8]) {
    let w = slot.get_or_insert_with(Vec::new);
    let room = MAX_WORD_KEPT.saturating_sub(w.len());
    w.extend_from_slice(&bytes[..room.min(bytes.len())]);
}

/// One direction's reader state.
#[derive(Debug, Default)]
struct Reader {
    /// Elements still to come in each open aggregate, outermost first, and whether it is an
    /// attribute (which describes the value after it and is no element of its parent).
    stack: Vec<(u64, bool)>,
    /// Bytes of the current bulk body still to come.
    body_left: u64,
    /// The bulk body is read: its CRLF comes next.
    crlf_next: bool,
    /// The value being read.
    value: Option<Value>,
}

/// The Redis session.
#[derive(Debug, Default)]
pub(crate) struct RedisSession {
    readers: [Reader; 2],
    /// A `SUBSCRIBE` was sent: RESP2 replies shaped like pub/sub messages are messages.
    subscribed: bool,
}

/// RESP2 pub/sub arrays start with one of these words.
const PUBSUB_KINDS: &[&[u8]] = &[
    b"message",
    b"pmessage",
    b"smessage",
    b"subscribe",
    b"psubscribe",
    b"ssubscribe",
    b"unsubscribe",
    b"punsubscribe",
    b"sunsubscribe",
];

impl RedisSession {
    /// Builds the record of a whole command from its first words.
    fn command_record(
        &mut self,
        mut record: Record,
        words: &[Option<&[u8]>],
        count: usize,
    ) -> Record {
        let name = words.first().copied().flatten().unwrap_or_default();
        let mut op = lossy(name).to_ascii_uppercase();
        let command: Option<&Command> = commands::lookup(name);
        let word = |i: usize| words.get(i).copied().flatten().map(lossy);
        record.resource = match command {
            Some(c) if c.has_subcommand() => {
                if let Some(sub) = word(1) {
                    op = format!("{op} {}", sub.to_ascii_uppercase());
                }
                // `OBJECT ENCODING key`, `MEMORY USAGE key`, `XINFO STREAM key`.
                matches!(c.name, b"OBJECT" | b"MEMORY" | b"XINFO" | b"XGROUP")
                    .then(|| word(2))
                    .flatten()
            }
            Some(c) if c.is_pubsub() => word(1),
            Some(c) if c.first_key > 0 => word(usize::from(c.first_key)),
            _ => None,
        };
        if let Some(c) = command {
            if c.is_subscription() {
                record.kind = RecordKind::Message;
            }
            if c.enters_pubsub() {
                self.subscribed = true;
            }
            if c.name == b"HELLO" {
                if let Some(v) = word(1) {
                    record.attributes.push(("protocol".to_owned(), v));
                }
            }
        }
        // Commands that may carry passwords: keep none of their bytes.
        if matches!(
            op.as_str(),
            "AUTH" | "HELLO" | "MIGRATE" | "CONFIG SET" | "ACL SETUSER" | "MASTERAUTH"
        ) {
            record.raw.clear();
        }
        record.op = Some(op);
        record
            .attributes
            .push(("words".to_owned(), count.to_string()));
        record
    }

    /// Finishes a whole top-level value of direction `dir`.
    fn finish(&mut self, dir: Direction, mut value: Value, out: &mut Vec<Record>) {
        let top = value.top.unwrap_or(TypeByte::NULL);
        let mut record = std::mem::replace(&mut value.record, Record::new(RecordKind::Message));
        let record = match dir {
            Direction::ToServer => {
                let words: Vec<Option<&[u8]>> = (0..WORDS_KEPT).map(|i| value.word(i)).collect();
                let count = usize::try_from(value.top_count).unwrap_or(usize::MAX);
                self.command_record(record, &words, count)
            }
            Direction::ToClient => {
                record
                    .attributes
                    .push(("type".to_owned(), top.name().to_owned()));
                let first = value.word(0);
                match top {
                    TypeByte::ERROR | TypeByte::BLOB_ERROR => {
                        let msg = first.unwrap_or_default();
                        let code = msg.split(|&c| c == b' ').next().unwrap_or_default();
                        record.op = Some(lossy(code));
                        record.attributes.push(("error".to_owned(), lossy(msg)));
                    }
                    TypeByte::PUSH => record.kind = RecordKind::Message,
                    TypeByte::ARRAY
                        if self.subscribed && first.is_some_and(|f| PUBSUB_KINDS.contains(&f)) =>
                    {
                        record.kind = RecordKind::Message;
                    }
                    TypeByte::MAP
                        if first == Some(b"server") && value.word(2) == Some(b"version") =>
                    {
                        for (name, i) in [("server", 1), ("version", 3)] {
                            if let Some(v) = value.word(i) {
                                record.attributes.push((name.to_owned(), lossy(v)));
                            }
                        }
                    }
                    _ => {}
                }
                record
            }
        };
        out.push(record);
    }

    /// One inline command line.
    fn inline(
        &mut self,
        line: &[u8],
        wire: &[u8],
        out: &mut Vec<Record>,
    ) -> Result<(), ParseError> {
        let mut words: Vec<&[u8]> = Vec::new();
        let mut count = 0;
        for w in InlineWords::new(line) {
            let w = w.map_err(|()| malformed("inline command quoting"))?;
            if words.len() < WORDS_KEPT {
                let unquoted = w
                    .strip_prefix(b"\"")
                    .and_then(|w| w.strip_suffix(b"\""))
                    .or_else(|| w.strip_prefix(b"'").and_then(|w| w.strip_suffix(b"'")))
                    .unwrap_or(w);
                words.push(&unquoted[..unquoted.len().min(MAX_WORD_KEPT)]);
            }
            count += 1;
        }
        if count == 0 {
            return Ok(()); // Redis skips empty lines.
        }
        let mut record = Record::new(RecordKind::Request);
        record.raw = wire[..wire.len().min(MAX_RAW_KEPT)].to_vec();
        record.wire_len = wire.len() as u64;
        let words: Vec<Option<&[u8]>> = words.into_iter().map(Some).collect();
        let mut record = self.command_record(record, &words, count);
        record
            .attributes
            .push(("inline".to_owned(), "true".to_owned()));
        out.push(record);
        Ok(())
    }
}

impl Steps for RedisSession {
    fn step(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        let reader = &mut self.readers[dir.index()];
        // Inside a bulk body: take what has arrived.
        if reader.body_left > 0 {
            let n = usize::try_from(reader.body_left)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let bytes = &buf[..n];
            if let Some(v) = reader.value.as_mut() {
                v.keep_raw(bytes);
                if let Some(i) = v.capturing {
                    keep_word(&mut v.words[i], bytes);
                }
            }
            reader.body_left -= n as u64;
            reader.crlf_next = reader.body_left == 0;
            return Ok(Step::Consumed(n));
        }
        if reader.crlf_next {
            match buf {
                [b'\r', b'\n', ..] => {}
                [b'\r'] => return Ok(Step::NeedMore),
                _ => return Err(malformed("bulk string end")),
            }
            reader.crlf_next = false;
            if let Some(v) = reader.value.as_mut() {
                v.keep_raw(&buf[..2]);
                v.capturing = None;
            }
            self.element_done(dir, out);
            return Ok(Step::Consumed(2));
        }
        // A new top-level command that is not an array: an inline command.
        if reader.value.is_none() && dir == Direction::ToServer && buf[0] != TypeByte::ARRAY.0 {
            let Some((after, line)) = read(
                parse_inline_line(buf),
                ID,
                "inline command longer than 64 KiB",
            )?
            else {
                return Ok(Step::NeedMore);
            };
            let used = buf.len() - after.len();
            self.inline(line, &buf[..used], out)?;
            return Ok(Step::Consumed(used));
        }
        let Some((after, header)) = read(parse_header(buf), ID, "RESP header")? else {
            return Ok(Step::NeedMore);
        };
        let used = buf.len() - after.len();
        self.on_header(dir, header, &buf[..used], out)?;
        Ok(Step::Consumed(used))
    }

    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        let _ = out;
        let reader = &mut self.readers[dir.index()];
        if len > 0 && len <= reader.body_left {
            reader.body_left -= len;
            reader.crlf_next = reader.body_left == 0;
            if let Some(v) = reader.value.as_mut() {
                v.record.wire_len += len;
                v.record.truncated = true;
            }
            return Ok(());
        }
        Err(ParseError::Gap { len })
    }
}

impl RedisSession {
    /// A header line of direction `dir` (its bytes `wire`): starts or continues the value.
    fn on_header(
        &mut self,
        dir: Direction,
        header: Header<'_>,
        wire: &[u8],
        out: &mut Vec<Record>,
    ) -> Result<(), ParseError> {
        let kind = match dir {
            Direction::ToServer => RecordKind::Request,
            Direction::ToClient => RecordKind::Response,
        };
        let reader = &mut self.readers[dir.index()];
        let depth = reader.stack.len();
        let value = reader.value.get_or_insert_with(|| Value::new(kind));
        value.keep_raw(wire);
        let ty = match header {
            Header::Line(ty, _) | Header::Bulk(ty, _) | Header::Aggregate(ty, _) => ty,
        };
        // Which kept word this element is: the top-level value itself, or one of the
        // first elements of a top-level aggregate.
        let slot = match depth {
            0 => Some(0),
            1 => {
                let index = value.top_count.checked_sub(reader.stack[0].0);
                index
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|&i| i < WORDS_KEPT)
            }
            _ => None,
        };
        if depth == 0 && ty != TypeByte::ATTRIBUTE {
            value.top = Some(ty);
        }
        match header {
            Header::Line(_, line) => {
                if let Some(i) = slot {
                    keep_word(&mut value.words[i], line);
                }
                self.element_done(dir, out);
            }
            Header::Bulk(_, None) | Header::Aggregate(_, None | Some(0)) => {
                self.element_done(dir, out);
            }
            Header::Bulk(_, Some(len)) => {
                if let Some(i) = slot {
                    value.words[i].get_or_insert_with(Vec::new);
                }
                value.capturing = slot;
                reader.body_left = len;
                reader.crlf_next = len == 0;
            }
            Header::Aggregate(_, Some(n)) => {
                if depth >= MAX_DEPTH {
                    return Err(ParseError::too_large(
                        ID,
                        "aggregate nesting",
                        depth + 1,
                        MAX_DEPTH,
                    ));
                }
                if depth == 0 {
                    if ty == TypeByte::ATTRIBUTE {
                        value.top_count = 0;
                    } else {
                        value.top_count = n;
                    }
                }
                reader.stack.push((n, ty == TypeByte::ATTRIBUTE));
            }
        }
        Ok(())
    }

    /// One element (a line, a bulk, a finished aggregate) of direction `dir` is complete:
    /// close the aggregates it completes and, at the top level, finish the value.
    fn element_done(&mut self, dir: Direction, out: &mut Vec<Record>) {
        let reader = &mut self.readers[dir.index()];
        while let Some((left, _)) = reader.stack.last_mut() {
            *left = left.saturating_sub(1);
            if *left > 0 {
                return;
            }
            let attribute = reader.stack.pop().is_some_and(|(_, attribute)| attribute);
            if attribute && !reader.stack.is_empty() {
                // A nested attribute: the value it describes is the parent's element.
                return;
            }
        }
        // The stack is empty: a top-level value is complete. An attribute only describes the
        // value that follows, which belongs to the same record.
        let Some(value) = reader.value.as_mut() else {
            return;
        };
        if value.top.is_none() {
            return;
        }
        if let Some(value) = reader.value.take() {
            self.finish(dir, value, out);
        }
    }
}
