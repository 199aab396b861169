//! nom 8 parsers for AMQP 0-9-1 framing (<https://www.rabbitmq.com/resources/specs/amqp0-9-1.pdf>,
//! section 4.2 "Protocol header" and "Frame format"; method arguments from the spec's XML and
//! RabbitMQ's errata for field-table types).
//!
//! The outer frame parser is `streaming` (`Incomplete` = a longer input could still parse);
//! method arguments and field tables are parsed `complete` inside the frame that holds them,
//! so every length inside a frame is bounded by the frame's own size. Nothing here allocates.

use adi_classify::Sender;
use nom::error::{Error, ErrorKind};
use nom::number::complete::{be_u16, be_u32, be_u64, be_u8};
use nom::{Err, Needed};

use crate::parsing::PResult;

/// `AMQP` : the first four bytes of every protocol header (section 4.2.2).
pub(crate) const AMQP_MAGIC: &[u8] = b"AMQP";
/// Length of a protocol header.
pub(crate) const HEADER_LEN: usize = 8;
/// frame-end: the octet after every frame's payload (section 4.2.3).
pub(crate) const FRAME_END: u8 = 0xCE;
/// type (1) + channel (2) + size (4) (section 4.2.3).
pub(crate) const FRAME_HEADER_LEN: usize = 7;
/// Most payload bytes one frame may announce. The spec lets peers negotiate `frame-max` up to
/// 2^32-1 (section 4.2.3, Connection.Tune); RabbitMQ defaults to 128 KiB and refuses more than
/// its configured `frame_max`, so adi treats anything above 16 MiB as not AMQP.
pub(crate) const MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;
/// Deepest nesting of field tables and arrays followed (tables inside tables, section 4.2.5.5).
pub(crate) const MAX_TABLE_DEPTH: usize = 8;

fn fail<T>(i: &[u8], kind: ErrorKind) -> PResult<'_, T> {
    Err(Err::Error(Error::new(i, kind)))
}

/// A frame type (section 4.2.3). Unknown values still parse; [`FrameType::is_known`] says
/// whether the spec defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameType(pub(crate) u8);

impl FrameType {
    /// A method frame.
    pub(crate) const METHOD: Self = Self(1);
    /// A content header frame.
    pub(crate) const HEADER: Self = Self(2);
    /// A content body frame.
    pub(crate) const BODY: Self = Self(3);
    /// A heartbeat frame (section 4.2.7).
    pub(crate) const HEARTBEAT: Self = Self(8);

    pub(crate) const fn is_known(self) -> bool {
        matches!(self.0, 1 | 2 | 3 | 8)
    }
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) kind: FrameType,
    pub(crate) channel: u16,
    pub(crate) size: u32,
}

/// A frame header with a known type and a size within [`MAX_FRAME_SIZE`].
///
/// # Errors
///
/// `Incomplete` before 7 bytes, `Error` on an unknown type or an oversized frame (checked on
/// the bytes present, so a bad first byte fails at once).
pub(crate) fn parse_frame_header(i: &[u8]) -> PResult<'_, FrameHeader> {
    if let Some(&t) = i.first() {
        if !FrameType(t).is_known() {
            return fail(i, ErrorKind::Tag);
        }
    }
    // The size's high byte is 0 for any size up to 16 MiB.
    if i.get(3).is_some_and(|&b| b != 0) {
        return fail(i, ErrorKind::TooLarge);
    }
    if i.len() < FRAME_HEADER_LEN {
        return Err(Err::Incomplete(Needed::new(FRAME_HEADER_LEN - i.len())));
    }
    let kind = FrameType(i[0]);
    let channel = u16::from_be_bytes([i[1], i[2]]);
    let size = u32::from_be_bytes([i[3], i[4], i[5], i[6]]);
    if size > MAX_FRAME_SIZE {
        return fail(i, ErrorKind::TooLarge);
    }
    Ok((
        &i[FRAME_HEADER_LEN..],
        FrameHeader {
            kind,
            channel,
            size,
        },
    ))
}

/// A whole frame: its header, its payload, then frame-end.
///
/// # Errors
///
/// `Incomplete` until the frame-end octet has arrived, `Error` when the header is bad or the
/// octet after the payload is not [`FRAME_END`].
pub(crate) fn parse_frame(i: &[u8]) -> PResult<'_, (FrameHeader, &[u8])> {
    let (rest, header) = parse_frame_header(i)?;
    let size = header.size as usize;
    if rest.len() <= size {
        return Err(Err::Incomplete(Needed::new(size + 1 - rest.len())));
    }
    if rest[size] != FRAME_END {
        return fail(i, ErrorKind::Verify);
    }
    Ok((&rest[size + 1..], (header, &rest[..size])))
}

/// How a method takes part in an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Synchronous: the peer answers with the matching `-ok` (unless `no-wait`).
    Request,
    /// The answer to a synchronous method.
    Response,
    /// Asynchronous: nothing answers it.
    Async,
}

/// A method: class-id and method-id (section 4.2.4; ids from the spec's XML, plus RabbitMQ's
/// extensions exchange.bind/unbind, basic.nack, confirm.select, connection.blocked and
/// update-secret). Unknown pairs still parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MethodId {
    pub(crate) class: u16,
    pub(crate) method: u16,
}

/// (class, method, name, sender, role) for every known method.
const METHODS: &[(u16, u16, &str, Sender, Role)] = {
    use Role::{Async, Request, Response};
    use Sender::{Client, Either, Server};
    &[
        (10, 10, "connection.start", Server, Request),
        (10, 11, "connection.start-ok", Client, Response),
        (10, 20, "connection.secure", Server, Request),
        (10, 21, "connection.secure-ok", Client, Response),
        (10, 30, "connection.tune", Server, Request),
        (10, 31, "connection.tune-ok", Client, Response),
        (10, 40, "connection.open", Client, Request),
        (10, 41, "connection.open-ok", Server, Response),
        (10, 50, "connection.close", Either, Request),
        (10, 51, "connection.close-ok", Either, Response),
        (10, 60, "connection.blocked", Server, Async),
        (10, 61, "connection.unblocked", Server, Async),
        (10, 70, "connection.update-secret", Client, Request),
        (10, 71, "connection.update-secret-ok", Server, Response),
        (20, 10, "channel.open", Client, Request),
        (20, 11, "channel.open-ok", Server, Response),
        (20, 20, "channel.flow", Either, Request),
        (20, 21, "channel.flow-ok", Either, Response),
        (20, 40, "channel.close", Either, Request),
        (20, 41, "channel.close-ok", Either, Response),
        (40, 10, "exchange.declare", Client, Request),
        (40, 11, "exchange.declare-ok", Server, Response),
        (40, 20, "exchange.delete", Client, Request),
        (40, 21, "exchange.delete-ok", Server, Response),
        (40, 30, "exchange.bind", Client, Request),
        (40, 31, "exchange.bind-ok", Server, Response),
        (40, 40, "exchange.unbind", Client, Request),
        (40, 51, "exchange.unbind-ok", Server, Response),
        (50, 10, "queue.declare", Client, Request),
        (50, 11, "queue.declare-ok", Server, Response),
        (50, 20, "queue.bind", Client, Request),
        (50, 21, "queue.bind-ok", Server, Response),
        (50, 30, "queue.purge", Client, Request),
        (50, 31, "queue.purge-ok", Server, Response),
        (50, 40, "queue.delete", Client, Request),
        (50, 41, "queue.delete-ok", Server, Response),
        (50, 50, "queue.unbind", Client, Request),
        (50, 51, "queue.unbind-ok", Server, Response),
        (60, 10, "basic.qos", Client, Request),
        (60, 11, "basic.qos-ok", Server, Response),
        (60, 20, "basic.consume", Client, Request),
        (60, 21, "basic.consume-ok", Server, Response),
        (60, 30, "basic.cancel", Either, Request),
        (60, 31, "basic.cancel-ok", Either, Response),
        (60, 40, "basic.publish", Client, Async),
        (60, 50, "basic.return", Server, Async),
        (60, 60, "basic.deliver", Server, Async),
        (60, 70, "basic.get", Client, Request),
        (60, 71, "basic.get-ok", Server, Response),
        (60, 72, "basic.get-empty", Server, Response),
        (60, 80, "basic.ack", Either, Async),
        (60, 90, "basic.reject", Client, Async),
        (60, 100, "basic.recover-async", Client, Async),
        (60, 110, "basic.recover", Client, Request),
        (60, 111, "basic.recover-ok", Server, Response),
        (60, 120, "basic.nack", Either, Async),
        (85, 10, "confirm.select", Client, Request),
        (85, 11, "confirm.select-ok", Server, Response),
        (90, 10, "tx.select", Client, Request),
        (90, 11, "tx.select-ok", Server, Response),
        (90, 20, "tx.commit", Client, Request),
        (90, 21, "tx.commit-ok", Server, Response),
        (90, 30, "tx.rollback", Client, Request),
        (90, 31, "tx.rollback-ok", Server, Response),
    ]
};

impl MethodId {
    pub(crate) const CONNECTION_START: Self = Self::new(10, 10);
    pub(crate) const CONNECTION_START_OK: Self = Self::new(10, 11);
    pub(crate) const CONNECTION_TUNE: Self = Self::new(10, 30);
    pub(crate) const CONNECTION_TUNE_OK: Self = Self::new(10, 31);
    pub(crate) const CONNECTION_OPEN: Self = Self::new(10, 40);
    pub(crate) const CONNECTION_CLOSE: Self = Self::new(10, 50);
    pub(crate) const CHANNEL_CLOSE: Self = Self::new(20, 40);
    pub(crate) const EXCHANGE_DECLARE: Self = Self::new(40, 10);
    pub(crate) const EXCHANGE_DELETE: Self = Self::new(40, 20);
    pub(crate) const EXCHANGE_BIND: Self = Self::new(40, 30);
    pub(crate) const EXCHANGE_UNBIND: Self = Self::new(40, 40);
    pub(crate) const QUEUE_DECLARE: Self = Self::new(50, 10);
    pub(crate) const QUEUE_DECLARE_OK: Self = Self::new(50, 11);
    pub(crate) const QUEUE_BIND: Self = Self::new(50, 20);
    pub(crate) const QUEUE_PURGE: Self = Self::new(50, 30);
    pub(crate) const QUEUE_DELETE: Self = Self::new(50, 40);
    pub(crate) const QUEUE_UNBIND: Self = Self::new(50, 50);
    pub(crate) const BASIC_CONSUME: Self = Self::new(60, 20);
    pub(crate) const BASIC_CONSUME_OK: Self = Self::new(60, 21);
    pub(crate) const BASIC_CANCEL: Self = Self::new(60, 30);
    pub(crate) const BASIC_CANCEL_OK: Self = Self::new(60, 31);
    pub(crate) const BASIC_PUBLISH: Self = Self::new(60, 40);
    pub(crate) const BASIC_RETURN: Self = Self::new(60, 50);
    pub(crate) const BASIC_DELIVER: Self = Self::new(60, 60);
    pub(crate) const BASIC_GET: Self = Self::new(60, 70);
    pub(crate) const BASIC_GET_OK: Self = Self::new(60, 71);
    pub(crate) const CONFIRM_SELECT: Self = Self::new(85, 10);
    /// The class of content-carrying methods (section 4.2.6): basic.
    pub(crate) const BASIC_CLASS: u16 = 60;
    /// The connection class: its methods travel on channel 0 only (section 4.2.3).
    pub(crate) const CONNECTION_CLASS: u16 = 10;

    pub(crate) const fn new(class: u16, method: u16) -> Self {
        Self { class, method }
    }

    fn entry(self) -> Option<&'static (u16, u16, &'static str, Sender, Role)> {
        METHODS
            .iter()
            .find(|(c, m, ..)| *c == self.class && *m == self.method)
    }

    /// `class.method` as the spec names it, e.g. `basic.publish`.
    pub(crate) fn name(self) -> Option<&'static str> {
        self.entry().map(|e| e.2)
    }

    pub(crate) fn sender(self) -> Option<Sender> {
        self.entry().map(|e| e.3)
    }

    pub(crate) fn role(self) -> Option<Role> {
        self.entry().map(|e| e.4)
    }

    /// Content follows this method (basic.publish, return, deliver, get-ok: section 4.2.6).
    pub(crate) fn carries_content(self) -> bool {
        matches!(
            self,
            Self::BASIC_PUBLISH | Self::BASIC_RETURN | Self::BASIC_DELIVER | Self::BASIC_GET_OK
        )
    }
}

/// The class and method ids at the start of a method frame's payload.
pub(crate) fn parse_method_id(i: &[u8]) -> PResult<'_, MethodId> {
    let (i, class) = be_u16(i)?;
    let (i, method) = be_u16(i)?;
    Ok((i, MethodId { class, method }))
}

/// A field table's content (section 4.2.5.5), already checked entry by entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Table<'a>(pub(crate) &'a [u8]);

/// `n` bytes (complete: too few is an error, the frame holding them is whole).
fn take(n: usize) -> impl Fn(&[u8]) -> PResult<'_, &[u8]> {
    move |i| match i.get(n..) {
        Some(rest) => Ok((rest, &i[..n])),
        None => fail(i, ErrorKind::Eof),
    }
}

fn shortstr(i: &[u8]) -> PResult<'_, &[u8]> {
    match i.split_first() {
        Some((&n, rest)) => take(usize::from(n))(rest),
        None => fail(i, ErrorKind::Eof),
    }
}

fn longstr(i: &[u8]) -> PResult<'_, &[u8]> {
    match i.first_chunk::<4>() {
        Some(&n) => take(u32::from_be_bytes(n) as usize)(&i[4..]),
        None => fail(i, ErrorKind::Eof),
    }
}

/// One field value of type `ty`. Types are RabbitMQ's (the 0-9-1 errata, which every broker
/// and client in use follows): `s` is a 16-bit integer, not a short string. The spec's `U`
/// and `L` are accepted too.
///
/// Hand-written (slice reads, no combinators): the probe checks every entry of a
/// Connection.Start's server-properties table with it.
fn parse_field_value(i: &[u8], ty: u8, depth: usize) -> PResult<'_, &[u8]> {
    let fixed: usize = match ty {
        b'V' => 0,
        b't' | b'b' | b'B' => 1,
        b's' | b'u' | b'U' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'S' | b'x' => return longstr(i),
        b'F' => return parse_table(i, depth).map(|(r, t)| (r, t.0)),
        b'A' => {
            let (rest, body) = longstr(i)?;
            let Some(next) = depth.checked_sub(1) else {
                return fail(i, ErrorKind::TooLarge);
            };
            let mut items = body;
            while let Some((&t, after)) = items.split_first() {
                items = parse_field_value(after, t, next)?.0;
            }
            return Ok((rest, body));
        }
        _ => return fail(i, ErrorKind::Tag),
    };
    take(fixed)(i)
}

/// A field table: a long-uint size then `shortstr name, type octet, value` entries, each
/// checked; nested tables and arrays go at most `depth` levels deeper.
///
/// # Errors
///
/// `Error` on any inconsistent length, unknown type, or nesting beyond `depth`.
pub(crate) fn parse_table(i: &[u8], depth: usize) -> PResult<'_, Table<'_>> {
    let Some(next) = depth.checked_sub(1) else {
        return fail(i, ErrorKind::TooLarge);
    };
    let (rest, body) = longstr(i)?;
    let mut entries = body;
    while !entries.is_empty() {
        let (after, _name) = shortstr(entries)?;
        let Some((&ty, after)) = after.split_first() else {
            return fail(after, ErrorKind::Eof);
        };
        entries = parse_field_value(after, ty, next)?.0;
    }
    Ok((rest, Table(body)))
}

impl<'a> Table<'a> {
    /// The long-string (`S`) value of entry `name` at the top level.
    pub(crate) fn string(self, name: &str) -> Option<&'a [u8]> {
        let mut entries = self.0;
        while !entries.is_empty() {
            let (after, key) = shortstr(entries).ok()?;
            let (after, ty) = be_u8::<_, Error<&[u8]>>(after).ok()?;
            let (next, value) = parse_field_value(after, ty, MAX_TABLE_DEPTH).ok()?;
            if key == name.as_bytes() && ty == b'S' {
                // `value` is the longstr body.
                return Some(value);
            }
            entries = next;
        }
        None
    }
}

/// The arguments of a method that adi reports; everything else is skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Arguments<'a> {
    /// connection.start: protocol major and minor version.
    pub(crate) version: Option<(u8, u8)>,
    /// connection.start server-properties / start-ok client-properties.
    pub(crate) properties: Option<Table<'a>>,
    /// connection.start mechanisms (space-separated) / start-ok mechanism.
    pub(crate) mechanism: Option<&'a [u8]>,
    /// connection.open virtual-host.
    pub(crate) vhost: Option<&'a [u8]>,
    pub(crate) exchange: Option<&'a [u8]>,
    pub(crate) exchange_type: Option<&'a [u8]>,
    pub(crate) queue: Option<&'a [u8]>,
    pub(crate) routing_key: Option<&'a [u8]>,
    pub(crate) consumer_tag: Option<&'a [u8]>,
    /// connection/channel.close and basic.return reply-code.
    pub(crate) reply_code: Option<u16>,
    pub(crate) reply_text: Option<&'a [u8]>,
    /// The method's `no-wait` bit: no `-ok` will answer it.
    pub(crate) no_wait: bool,
}

/// The arguments of method `id` in a method frame's payload after the ids. Methods adi does
/// not report parse as empty arguments.
///
/// # Errors
///
/// `Error` when a reported method's arguments do not fit the payload.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per method, in the order of the spec's XML"
)]
pub(crate) fn parse_arguments<'a>(id: MethodId, i: &'a [u8]) -> PResult<'a, Arguments<'a>> {
    let mut a = Arguments::default();
    let d = MAX_TABLE_DEPTH;
    let bits = |i: &'a [u8], mask: u8| -> PResult<'a, bool> {
        be_u8::<_, Error<&[u8]>>(i).map(|(r, b)| (r, b & mask != 0))
    };
    let rest = match id {
        MethodId::CONNECTION_START => {
            let (i, major) = be_u8(i)?;
            let (i, minor) = be_u8(i)?;
            let (i, props) = parse_table(i, d)?;
            let (i, mechanisms) = longstr(i)?;
            let (i, _locales) = longstr(i)?;
            (a.version, a.properties, a.mechanism) =
                (Some((major, minor)), Some(props), Some(mechanisms));
            i
        }
        MethodId::CONNECTION_START_OK => {
            let (i, props) = parse_table(i, d)?;
            let (i, mechanism) = shortstr(i)?;
            let (i, _response) = longstr(i)?;
            let (i, _locale) = shortstr(i)?;
            (a.properties, a.mechanism) = (Some(props), Some(mechanism));
            i
        }
        MethodId::CONNECTION_TUNE | MethodId::CONNECTION_TUNE_OK => take(8usize)(i)?.0,
        MethodId::CONNECTION_OPEN => {
            let (i, vhost) = shortstr(i)?;
            a.vhost = Some(vhost);
            i
        }
        MethodId::CONNECTION_CLOSE | MethodId::CHANNEL_CLOSE => {
            let (i, code) = be_u16(i)?;
            let (i, text) = shortstr(i)?;
            let (i, _ids) = take(4usize)(i)?;
            (a.reply_code, a.reply_text) = (Some(code), Some(text));
            i
        }
        MethodId::EXCHANGE_DECLARE => {
            let (i, _reserved) = be_u16(i)?;
            let (i, exchange) = shortstr(i)?;
            let (i, kind) = shortstr(i)?;
            let (i, no_wait) = bits(i, 0x10)?;
            let (i, _args) = parse_table(i, d)?;
            (a.exchange, a.exchange_type, a.no_wait) = (Some(exchange), Some(kind), no_wait);
            i
        }
        MethodId::EXCHANGE_DELETE => {
            let (i, _reserved) = be_u16(i)?;
            let (i, exchange) = shortstr(i)?;
            let (i, no_wait) = bits(i, 0x02)?;
            (a.exchange, a.no_wait) = (Some(exchange), no_wait);
            i
        }
        MethodId::EXCHANGE_BIND | MethodId::EXCHANGE_UNBIND => {
            // destination, source, routing-key: reported as queue-less exchange binding.
            let (i, _reserved) = be_u16(i)?;
            let (i, destination) = shortstr(i)?;
            let (i, source) = shortstr(i)?;
            let (i, key) = shortstr(i)?;
            let (i, no_wait) = bits(i, 0x01)?;
            let (i, _args) = parse_table(i, d)?;
            (a.exchange, a.queue, a.routing_key, a.no_wait) =
                (Some(source), Some(destination), Some(key), no_wait);
            i
        }
        MethodId::QUEUE_DECLARE => {
            let (i, _reserved) = be_u16(i)?;
            let (i, queue) = shortstr(i)?;
            let (i, no_wait) = bits(i, 0x10)?;
            let (i, _args) = parse_table(i, d)?;
            (a.queue, a.no_wait) = (Some(queue), no_wait);
            i
        }
        MethodId::QUEUE_DECLARE_OK => {
            let (i, queue) = shortstr(i)?;
            let (i, _counts) = take(8usize)(i)?;
            a.queue = Some(queue);
            i
        }
        MethodId::QUEUE_BIND | MethodId::QUEUE_UNBIND => {
            let (i, _reserved) = be_u16(i)?;
            let (i, queue) = shortstr(i)?;
            let (i, exchange) = shortstr(i)?;
            let (i, key) = shortstr(i)?;
            let (i, no_wait) = if id == MethodId::QUEUE_BIND {
                bits(i, 0x01)?
            } else {
                (i, false)
            };
            let (i, _args) = parse_table(i, d)?;
            (a.queue, a.exchange, a.routing_key, a.no_wait) =
                (Some(queue), Some(exchange), Some(key), no_wait);
            i
        }
        MethodId::QUEUE_PURGE | MethodId::QUEUE_DELETE => {
            let (i, _reserved) = be_u16(i)?;
            let (i, queue) = shortstr(i)?;
            let mask = if id == MethodId::QUEUE_PURGE {
                0x01
            } else {
                0x04
            };
            let (i, no_wait) = bits(i, mask)?;
            (a.queue, a.no_wait) = (Some(queue), no_wait);
            i
        }
        MethodId::BASIC_CONSUME => {
            let (i, _reserved) = be_u16(i)?;
            let (i, queue) = shortstr(i)?;
            let (i, tag) = shortstr(i)?;
            let (i, no_wait) = bits(i, 0x08)?;
            let (i, _args) = parse_table(i, d)?;
            (a.queue, a.consumer_tag, a.no_wait) = (Some(queue), Some(tag), no_wait);
            i
        }
        MethodId::BASIC_CONSUME_OK | MethodId::BASIC_CANCEL_OK => {
            let (i, tag) = shortstr(i)?;
            a.consumer_tag = Some(tag);
            i
        }
        MethodId::BASIC_CANCEL => {
            let (i, tag) = shortstr(i)?;
            let (i, no_wait) = bits(i, 0x01)?;
            (a.consumer_tag, a.no_wait) = (Some(tag), no_wait);
            i
        }
        MethodId::BASIC_PUBLISH => {
            let (i, _reserved) = be_u16(i)?;
            let (i, exchange) = shortstr(i)?;
            let (i, key) = shortstr(i)?;
            let (i, _bits) = be_u8(i)?;
            (a.exchange, a.routing_key) = (Some(exchange), Some(key));
            i
        }
        MethodId::BASIC_RETURN => {
            let (i, code) = be_u16(i)?;
            let (i, text) = shortstr(i)?;
            let (i, exchange) = shortstr(i)?;
            let (i, key) = shortstr(i)?;
            (a.reply_code, a.reply_text, a.exchange, a.routing_key) =
                (Some(code), Some(text), Some(exchange), Some(key));
            i
        }
        MethodId::BASIC_DELIVER => {
            let (i, tag) = shortstr(i)?;
            let (i, _delivery_tag) = be_u64(i)?;
            let (i, _redelivered) = be_u8(i)?;
            let (i, exchange) = shortstr(i)?;
            let (i, key) = shortstr(i)?;
            (a.consumer_tag, a.exchange, a.routing_key) = (Some(tag), Some(exchange), Some(key));
            i
        }
        MethodId::BASIC_GET => {
            let (i, _reserved) = be_u16(i)?;
            let (i, queue) = shortstr(i)?;
            let (i, _no_ack) = be_u8(i)?;
            a.queue = Some(queue);
            i
        }
        MethodId::BASIC_GET_OK => {
            let (i, _delivery_tag) = be_u64(i)?;
            let (i, _redelivered) = be_u8(i)?;
            let (i, exchange) = shortstr(i)?;
            let (i, key) = shortstr(i)?;
            let (i, _count) = be_u32(i)?;
            (a.exchange, a.routing_key) = (Some(exchange), Some(key));
            i
        }
        MethodId::CONFIRM_SELECT => {
            let (i, no_wait) = bits(i, 0x01)?;
            a.no_wait = no_wait;
            i
        }
        _ => &i[i.len()..],
    };
    Ok((rest, a))
}

/// A content header (section 4.2.6.1): class-id, weight (0), body size, property flags, and
/// the content-type property when its flag (bit 15) is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContentHeader<'a> {
    pub(crate) class: u16,
    pub(crate) body_size: u64,
    pub(crate) content_type: Option<&'a [u8]>,
}

/// A content header frame's payload.
///
/// # Errors
///
/// `Error` when it is shorter than its fixed fields or the weight is not 0.
pub(crate) fn parse_content_header(i: &[u8]) -> PResult<'_, ContentHeader<'_>> {
    let (i, class) = be_u16(i)?;
    let (i, weight) = be_u16(i)?;
    if weight != 0 {
        return fail(i, ErrorKind::Verify);
    }
    let (i, body_size) = be_u64(i)?;
    let (i, flags) = be_u16(i)?;
    let (i, content_type) = if flags & 0x8000 != 0 {
        let (i, t) = shortstr(i)?;
        (i, Some(t))
    } else {
        (i, None)
    };
    Ok((
        i,
        ContentHeader {
            class,
            body_size,
            content_type,
        },
    ))
}
