//! nom 8 parsers for the NATS client protocol
//! (<https://docs.nats.io/reference/reference-protocols/nats-protocol>).
//!
//! Every message starts with a control line `VERB [args...]\r\n`; `PUB`, `HPUB`, `MSG` and
//! `HMSG` are followed by a payload of the announced size and `\r\n`. Verbs are
//! case-insensitive and arguments are separated by runs of spaces or tabs (nats-py writes
//! `SUB subject  1` with an empty queue group). Nothing here allocates except the JSON helpers,
//! which only the session uses.

use adi_classify::Sender;
use nom::error::{Error, ErrorKind};
use nom::{Err, Needed};

use crate::parsing::PResult;

/// Most bytes of one control line, `\r\n` excluded. nats-server's `max_control_line` defaults
/// to 4 KiB (it applies to client operations); the `INFO` a server sends and a `CONNECT` with
/// a JWT run longer, so adi allows 64 KiB.
pub(crate) const MAX_CONTROL_LINE: usize = 64 * 1024;
/// Most payload bytes one message may announce: nats-server's `max_payload` defaults to
/// 1 MiB and is capped at 64 MiB (`MAX_PAYLOAD_MAX_SIZE` in nats-server/server/const.go).
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// Most decimal digits of a size argument: 8 cover [`MAX_PAYLOAD`].
const MAX_SIZE_DIGITS: usize = 8;
/// Most arguments any verb takes (`HMSG subject sid reply hdr total` has five).
const MAX_ARGS: usize = 5;
/// Deepest JSON nesting the `INFO`/`CONNECT` scanner follows.
const MAX_JSON_DEPTH: usize = 32;
/// `NATS/1.0`: the first line of an `HPUB`/`HMSG` header block (protocol doc, "HPUB").
pub(crate) const HEADER_MAGIC: &[u8] = b"NATS/1.0";

/// A protocol operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// Server: `INFO {json}`.
    Info,
    /// Client: `CONNECT {json}`.
    Connect,
    /// Client: `PUB subject [reply-to] #bytes`.
    Pub,
    /// Client: `HPUB subject [reply-to] #header-bytes #total-bytes`.
    Hpub,
    /// Client: `SUB subject [queue group] sid`.
    Sub,
    /// Client: `UNSUB sid [max_msgs]`.
    Unsub,
    /// Server: `MSG subject sid [reply-to] #bytes`.
    Msg,
    /// Server: `HMSG subject sid [reply-to] #header-bytes #total-bytes`.
    Hmsg,
    /// Either side: keep-alive.
    Ping,
    /// Either side: keep-alive reply.
    Pong,
    /// Server, verbose mode: acknowledgement.
    Ok,
    /// Server: `-ERR 'message'`.
    Err,
}

/// Verbs by their wire spelling, upper case.
const VERBS: &[(&[u8], Verb)] = &[
    (b"INFO", Verb::Info),
    (b"CONNECT", Verb::Connect),
    (b"PUB", Verb::Pub),
    (b"HPUB", Verb::Hpub),
    (b"SUB", Verb::Sub),
    (b"UNSUB", Verb::Unsub),
    (b"MSG", Verb::Msg),
    (b"HMSG", Verb::Hmsg),
    (b"PING", Verb::Ping),
    (b"PONG", Verb::Pong),
    (b"+OK", Verb::Ok),
    (b"-ERR", Verb::Err),
];

/// The longest verb (`CONNECT`).
pub(crate) const MAX_VERB_LEN: usize = 7;

impl Verb {
    /// The verb as the protocol document spells it.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Connect => "CONNECT",
            Self::Pub => "PUB",
            Self::Hpub => "HPUB",
            Self::Sub => "SUB",
            Self::Unsub => "UNSUB",
            Self::Msg => "MSG",
            Self::Hmsg => "HMSG",
            Self::Ping => "PING",
            Self::Pong => "PONG",
            Self::Ok => "+OK",
            Self::Err => "-ERR",
        }
    }

    pub(crate) const fn sender(self) -> Sender {
        match self {
            Self::Info | Self::Msg | Self::Hmsg | Self::Ok | Self::Err => Sender::Server,
            Self::Connect | Self::Pub | Self::Hpub | Self::Sub | Self::Unsub => Sender::Client,
            Self::Ping | Self::Pong => Sender::Either,
        }
    }
}

/// Looks up a verb token, ASCII case-insensitively: upper-cased into a stack buffer, then
/// one `match` (no table walk).
pub(crate) fn verb_of(token: &[u8]) -> Option<Verb> {
    let mut upper = [0_u8; MAX_VERB_LEN];
    let upper = upper.get_mut(..token.len())?;
    for (u, c) in upper.iter_mut().zip(token) {
        *u = c.to_ascii_uppercase();
    }
    Some(match &*upper {
        b"INFO" => Verb::Info,
        b"CONNECT" => Verb::Connect,
        b"PUB" => Verb::Pub,
        b"HPUB" => Verb::Hpub,
        b"SUB" => Verb::Sub,
        b"UNSUB" => Verb::Unsub,
        b"MSG" => Verb::Msg,
        b"HMSG" => Verb::Hmsg,
        b"PING" => Verb::Ping,
        b"PONG" => Verb::Pong,
        b"+OK" => Verb::Ok,
        b"-ERR" => Verb::Err,
        _ => return None,
    })
}

/// True when `token` starts some verb, ASCII case-insensitively.
pub(crate) fn is_verb_prefix(token: &[u8]) -> bool {
    VERBS.iter().any(|(name, _)| {
        name.get(..token.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(token))
    })
}

const fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// One control line: everything before `\n`, without a trailing `\r`, at most
/// [`MAX_CONTROL_LINE`] bytes.
///
/// # Errors
///
/// `Incomplete` while no `\n` arrived within the limit, `Error` past the limit.
pub(crate) fn parse_control_line(i: &[u8]) -> PResult<'_, &[u8]> {
    let limit = i.len().min(MAX_CONTROL_LINE + 2);
    let Some(end) = memchr::memchr(b'\n', &i[..limit]) else {
        if limit < MAX_CONTROL_LINE + 2 {
            return Err(Err::Incomplete(Needed::new(1)));
        }
        return Err(Err::Error(Error::new(i, ErrorKind::TooLarge)));
    };
    let line = &i[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_CONTROL_LINE {
        return Err(Err::Error(Error::new(i, ErrorKind::TooLarge)));
    }
    Ok((&i[end + 1..], line))
}

/// A control line split into its verb and arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Control<'a> {
    pub(crate) verb: Verb,
    /// Everything after the verb, leading blanks removed (the JSON of `INFO`/`CONNECT`, the
    /// text of `-ERR`).
    pub(crate) rest: &'a [u8],
    /// The blank-separated arguments (at most [`MAX_ARGS`]).
    pub(crate) args: [&'a [u8]; MAX_ARGS],
    /// How many of `args` are set.
    pub(crate) argc: usize,
}

/// Splits a control line; `None` when the verb is unknown or it has too many arguments.
pub(crate) fn split_control(line: &[u8]) -> Option<Control<'_>> {
    let end = line.iter().position(|&c| is_blank(c)).unwrap_or(line.len());
    let verb = verb_of(&line[..end])?;
    let rest = trim_start(&line[end..]);
    let mut args: [&[u8]; MAX_ARGS] = [&[]; MAX_ARGS];
    let mut argc = 0;
    if !matches!(verb, Verb::Info | Verb::Connect | Verb::Err) {
        for arg in rest.split(|&c| is_blank(c)).filter(|a| !a.is_empty()) {
            *args.get_mut(argc)? = arg;
            argc += 1;
        }
    }
    Some(Control {
        verb,
        rest,
        args,
        argc,
    })
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| is_blank(c)).count();
    &s[n..]
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&c| is_blank(c)).count();
    &s[..s.len() - n]
}

/// A size argument: decimal digits only, at most [`MAX_PAYLOAD`].
pub(crate) fn parse_size(arg: &[u8]) -> Option<usize> {
    if arg.is_empty() || arg.len() > MAX_SIZE_DIGITS || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = arg
        .iter()
        .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
    (n <= MAX_PAYLOAD).then_some(n)
}

/// A subject (or reply-to, queue group, sid): printable ASCII or UTF-8, no control bytes.
pub(crate) fn is_token(arg: &[u8]) -> bool {
    !arg.is_empty() && arg.iter().all(|&c| c > b' ' && c != 0x7f)
}

/// What a message's arguments say, checked against its verb's grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Args<'a> {
    /// The subject (`PUB`, `HPUB`, `SUB`, `MSG`, `HMSG`).
    pub(crate) subject: Option<&'a [u8]>,
    /// The reply-to subject.
    pub(crate) reply_to: Option<&'a [u8]>,
    /// The queue group of a `SUB`.
    pub(crate) queue: Option<&'a [u8]>,
    /// The subscription id (`SUB`, `UNSUB`, `MSG`, `HMSG`).
    pub(crate) sid: Option<&'a [u8]>,
    /// `UNSUB`'s max_msgs.
    pub(crate) max_msgs: Option<&'a [u8]>,
    /// Header bytes of `HPUB`/`HMSG`, included in `total`.
    pub(crate) header_len: usize,
    /// Payload bytes after the control line (headers included), `\r\n` excluded.
    pub(crate) total: usize,
}

/// Checks the arguments of `c` against its verb; `None` when they break the grammar.
pub(crate) fn parse_args<'a>(c: &Control<'a>) -> Option<Args<'a>> {
    let a = &c.args[..c.argc];
    let mut out = Args {
        subject: None,
        reply_to: None,
        queue: None,
        sid: None,
        max_msgs: None,
        header_len: 0,
        total: 0,
    };
    if !a.iter().all(|t| is_token(t)) {
        return None;
    }
    match (c.verb, a) {
        (Verb::Info | Verb::Connect, _) => {
            // A JSON object, possibly followed by blanks (nats-server writes `} \r\n`).
            let json = trim_end(c.rest);
            if !(json.first() == Some(&b'{') && json.last() == Some(&b'}')) {
                return None;
            }
        }
        (Verb::Ping | Verb::Pong | Verb::Ok, &[]) | (Verb::Err, _) => {}
        (Verb::Pub, &[s, n]) => (out.subject, out.total) = (Some(s), parse_size(n)?),
        (Verb::Pub, &[s, r, n]) => {
            (out.subject, out.reply_to, out.total) = (Some(s), Some(r), parse_size(n)?);
        }
        (Verb::Hpub, &[s, h, n]) => {
            (out.subject, out.header_len, out.total) = (Some(s), parse_size(h)?, parse_size(n)?);
        }
        (Verb::Hpub, &[s, r, h, n]) => {
            (out.subject, out.reply_to) = (Some(s), Some(r));
            (out.header_len, out.total) = (parse_size(h)?, parse_size(n)?);
        }
        (Verb::Msg, &[s, i, n]) => {
            (out.subject, out.sid, out.total) = (Some(s), Some(i), parse_size(n)?);
        }
        (Verb::Msg, &[s, i, r, n]) => {
            (out.subject, out.sid, out.reply_to) = (Some(s), Some(i), Some(r));
            out.total = parse_size(n)?;
        }
        (Verb::Hmsg, &[s, i, h, n]) => {
            (out.subject, out.sid) = (Some(s), Some(i));
            (out.header_len, out.total) = (parse_size(h)?, parse_size(n)?);
        }
        (Verb::Hmsg, &[s, i, r, h, n]) => {
            (out.subject, out.sid, out.reply_to) = (Some(s), Some(i), Some(r));
            (out.header_len, out.total) = (parse_size(h)?, parse_size(n)?);
        }
        (Verb::Sub, &[s, i]) => (out.subject, out.sid) = (Some(s), Some(i)),
        (Verb::Sub, &[s, q, i]) => (out.subject, out.queue, out.sid) = (Some(s), Some(q), Some(i)),
        (Verb::Unsub, &[i]) => out.sid = Some(i),
        (Verb::Unsub, &[i, m]) => (out.sid, out.max_msgs) = (Some(i), Some(m)),
        _ => return None,
    }
    if out.header_len > out.total {
        return None;
    }
    Some(out)
}

/// The payload after a control line: `total` bytes then `\r\n`.
///
/// # Errors
///
/// `Incomplete` until every byte is there, `Error` when the `\r\n` is missing.
pub(crate) fn parse_payload(i: &[u8], total: usize) -> PResult<'_, &[u8]> {
    let Some(end) = total.checked_add(2) else {
        return Err(Err::Error(Error::new(i, ErrorKind::TooLarge)));
    };
    if i.len() < end {
        return Err(Err::Incomplete(Needed::new(end - i.len())));
    }
    if &i[total..end] != b"\r\n" {
        return Err(Err::Error(Error::new(i, ErrorKind::CrLf)));
    }
    Ok((&i[end..], &i[..total]))
}

/// The `key` string member of the top-level JSON object `json`, unescaped; `None` when absent,
/// not a string, or the JSON is malformed or nested deeper than [`MAX_JSON_DEPTH`].
pub(crate) fn json_string(json: &[u8], key: &str) -> Option<String> {
    match json_member(json, key)? {
        JsonValue::Str(s) => Some(s),
        JsonValue::Other(_) => None,
    }
}

/// The `key` boolean member of the top-level JSON object `json`.
pub(crate) fn json_bool(json: &[u8], key: &str) -> Option<bool> {
    match json_member(json, key)? {
        JsonValue::Other(b"true") => Some(true),
        JsonValue::Other(b"false") => Some(false),
        _ => None,
    }
}

enum JsonValue<'a> {
    Str(String),
    Other(&'a [u8]),
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// Scans a JSON string starting at its opening quote; returns the index after the closing
/// quote and, when `decode`, the unescaped text.
fn scan_string(json: &[u8], at: usize, decode: bool) -> Option<(usize, Option<String>)> {
    if json.get(at) != Some(&b'"') {
        return None;
    }
    let mut out = decode.then(Vec::new);
    let mut i = at + 1;
    loop {
        let c = *json.get(i)?;
        match c {
            b'"' => {
                let text = out.map(|v| String::from_utf8_lossy(&v).into_owned());
                return Some((i + 1, text));
            }
            b'\\' => {
                let e = *json.get(i + 1)?;
                let decoded: &[u8] = match e {
                    b'"' => b"\"",
                    b'\\' => b"\\",
                    b'/' => b"/",
                    b'b' => b"\x08",
                    b'f' => b"\x0c",
                    b'n' => b"\n",
                    b'r' => b"\r",
                    b't' => b"\t",
                    b'u' => {
                        let hex = json.get(i + 2..i + 6)?;
                        let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                        let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                        if let Some(o) = out.as_mut() {
                            let mut buf = [0; 4];
                            o.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        i += 6;
                        continue;
                    }
                    _ => return None,
                };
                if let Some(o) = out.as_mut() {
                    o.extend_from_slice(decoded);
                }
                i += 2;
            }
            _ => {
                if let Some(o) = out.as_mut() {
                    o.push(c);
                }
                i += 1;
            }
        }
    }
}

/// Skips one JSON value at `at` (after whitespace); returns the index after it.
fn skip_value(json: &[u8], at: usize) -> Option<usize> {
    match *json.get(at)? {
        b'"' => scan_string(json, at, false).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match *json.get(i)? {
                    b'"' => {
                        i = scan_string(json, i, false)?.0;
                        continue;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        if depth > MAX_JSON_DEPTH {
                            return None;
                        }
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = json[at..]
                .iter()
                .position(|&c| c == b',' || c == b'}' || c.is_ascii_whitespace())?;
            (len > 0).then_some(at + len)
        }
    }
}

fn json_member<'a>(json: &'a [u8], key: &str) -> Option<JsonValue<'a>> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(json, i + 1);
    if json.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        let (after_key, name) = scan_string(json, i, true)?;
        i = skip_ws(json, after_key);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(json, i + 1);
        let end = skip_value(json, i)?;
        if name.as_deref() == Some(key) {
            return Some(if json.get(i) == Some(&b'"') {
                JsonValue::Str(scan_string(json, i, true)?.1?)
            } else {
                JsonValue::Other(&json[i..end])
            });
        }
        i = skip_ws(json, end);
        match json.get(i) {
            Some(b',') => i = skip_ws(json, i + 1),
            _ => return None,
        }
    }
}
