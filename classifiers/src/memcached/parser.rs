//! nom 8 parsers for memcached's text, meta and binary protocols
//! (<https://github.com/memcached/memcached/blob/master/doc/protocol.txt>,
//! `protocol_binary.h`).
//!
//! Every parser is `streaming`: `Err::Incomplete` means "a longer input could still parse",
//! `Err::Error` means the bytes break the grammar. Nothing here allocates, so the probe and the
//! session share them.

use nom::bytes::streaming::take;
use nom::number::streaming::{be_u16, be_u32, be_u64, u8 as be_u8};
use nom::{Err, Needed, Parser};

use crate::parsing::{fail, PResult};

/// Longest key: `KEY_MAX_LENGTH` (250) in `memcached.h`; protocol.txt: "the key must not
/// include control characters or whitespace" and "is currently 250 characters".
pub(crate) const MAX_KEY_LEN: usize = 250;
/// Longest text command line adi reads. memcached refuses lines over 2048 bytes except
/// `get`/`gets` with many keys (`try_read_command_ascii` in `proto_text.c`), which it reads
/// on; 64 KiB covers a few hundred keys.
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// Largest value: the `-I` item size limit tops out at 1 GiB (`memcached.c`, "Cannot set
/// item size limit higher than 1/2 of memory max" / 1024m).
pub(crate) const MAX_VALUE_LEN: u64 = 1024 * 1024 * 1024;
/// A binary header (`protocol_binary_request_header`): 24 bytes.
pub(crate) const BINARY_HEADER_LEN: usize = 24;
/// Most extras bytes of any binary command (`incr`/`decr` requests: 20).
pub(crate) const MAX_EXTRAS_LEN: u8 = 20;

/// The binary protocol's magic byte (`protocol_binary.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Magic(pub(crate) u8);

impl Magic {
    /// `PROTOCOL_BINARY_REQ`.
    pub(crate) const REQUEST: Self = Self(0x80);
    /// `PROTOCOL_BINARY_RES`.
    pub(crate) const RESPONSE: Self = Self(0x81);
}

/// A binary opcode (`protocol_binary_command`). Unknown values still parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Opcode(pub(crate) u8);

impl Opcode {
    /// 0x10 STAT: one response per statistic, then one with an empty key.
    pub(crate) const STAT: Self = Self(0x10);

    /// The command's name, lower case like the text protocol's, or `None` when unknown.
    pub(crate) const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "get",
            0x01 => "set",
            0x02 => "add",
            0x03 => "replace",
            0x04 => "delete",
            0x05 => "incr",
            0x06 => "decr",
            0x07 => "quit",
            0x08 => "flush",
            0x09 => "getq",
            0x0a => "noop",
            0x0b => "version",
            0x0c => "getk",
            0x0d => "getkq",
            0x0e => "append",
            0x0f => "prepend",
            0x10 => "stat",
            0x11 => "setq",
            0x12 => "addq",
            0x13 => "replaceq",
            0x14 => "deleteq",
            0x15 => "incrq",
            0x16 => "decrq",
            0x17 => "quitq",
            0x18 => "flushq",
            0x19 => "appendq",
            0x1a => "prependq",
            0x1b => "verbosity",
            0x1c => "touch",
            0x1d => "gat",
            0x1e => "gatq",
            0x20 => "sasl_list_mechs",
            0x21 => "sasl_auth",
            0x22 => "sasl_step",
            0x23 => "gatk",
            0x24 => "gatkq",
            _ => return None,
        })
    }

    /// SASL commands (0x20-0x22): their bodies carry mechanisms and credentials.
    pub(crate) const fn is_sasl(self) -> bool {
        matches!(self.0, 0x20..=0x22)
    }

    /// Quiet commands: the server answers only some outcomes (a `getq` miss, a `setq`
    /// success get no reply), so they are never paired with a response.
    pub(crate) const fn is_quiet(self) -> bool {
        matches!(self.0, 0x09 | 0x0d | 0x11..=0x1a | 0x1e | 0x24)
    }
}

/// A binary response status (`protocol_binary_response_status`). Unknown values still parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status(pub(crate) u16);

impl Status {
    /// The status's name, or `None` when unknown.
    pub(crate) const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "success",
            0x01 => "key_not_found",
            0x02 => "key_exists",
            0x03 => "value_too_large",
            0x04 => "invalid_arguments",
            0x05 => "item_not_stored",
            0x06 => "non_numeric_value",
            0x07 => "wrong_vbucket",
            // 0x08/0x09 in protocol_binary.h, 0x20/0x21 in the SASL extension.
            0x08 | 0x20 => "auth_error",
            0x09 | 0x21 => "auth_continue",
            0x81 => "unknown_command",
            0x82 => "out_of_memory",
            0x83 => "not_supported",
            0x84 => "internal_error",
            0x85 => "busy",
            0x86 => "temporary_failure",
            _ => return None,
        })
    }
}

/// A binary packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BinaryHeader {
    pub(crate) magic: Magic,
    pub(crate) opcode: Opcode,
    pub(crate) key_len: u16,
    pub(crate) extras_len: u8,
    /// vbucket id in requests, status in responses.
    pub(crate) vbucket_or_status: u16,
    pub(crate) body_len: u32,
}

/// Checks the first bytes of a binary header as they arrive: magic, a known opcode, a key
/// of at most [`MAX_KEY_LEN`] bytes, extras of at most [`MAX_EXTRAS_LEN`], data type 0
/// (`PROTOCOL_BINARY_RAW_BYTES`, the only one defined), a known status in responses.
pub(crate) fn binary_prefix_ok(buf: &[u8]) -> bool {
    let at = |i: usize| buf.get(i).copied();
    let magic_ok = at(0).is_none_or(|m| m == Magic::REQUEST.0 || m == Magic::RESPONSE.0);
    let opcode_ok = at(1).is_none_or(|o| Opcode(o).name().is_some());
    let key_ok = match (at(2), at(3)) {
        (Some(hi), Some(lo)) => usize::from(u16::from_be_bytes([hi, lo])) <= MAX_KEY_LEN,
        (Some(hi), None) => hi == 0,
        _ => true,
    };
    let extras_ok = at(4).is_none_or(|e| e <= MAX_EXTRAS_LEN);
    let type_ok = at(5).is_none_or(|t| t == 0);
    let status_ok = match (at(0), at(6), at(7)) {
        (Some(0x81), Some(hi), Some(lo)) => Status(u16::from_be_bytes([hi, lo])).name().is_some(),
        _ => true,
    };
    magic_ok && opcode_ok && key_ok && extras_ok && type_ok && status_ok
}

/// A 24-byte binary header whose fields agree (key and extras fit in the body, the body is at
/// most a maximal value plus key and extras).
pub(crate) fn parse_binary_header(input: &[u8]) -> PResult<'_, BinaryHeader> {
    if !binary_prefix_ok(input) {
        return fail(input);
    }
    let (rest, magic) = be_u8(input)?;
    let (rest, opcode) = be_u8(rest)?;
    let (rest, key_len) = be_u16(rest)?;
    let (rest, extras_len) = be_u8(rest)?;
    let (rest, _data_type) = be_u8(rest)?;
    let (rest, vbucket_or_status) = be_u16(rest)?;
    let (rest, body_len) = be_u32(rest)?;
    let (rest, _opaque) = be_u32(rest)?;
    let (rest, _cas) = be_u64(rest)?;
    let fixed = u64::from(key_len) + u64::from(extras_len);
    if u64::from(body_len) < fixed || u64::from(body_len) > MAX_VALUE_LEN + fixed {
        return fail(input);
    }
    let header = BinaryHeader {
        magic: Magic(magic),
        opcode: Opcode(opcode),
        key_len,
        extras_len,
        vbucket_or_status,
        body_len,
    };
    Ok((rest, header))
}

/// One text line ended by `\r\n` (memcached also takes a bare `\n`), at most [`MAX_LINE`]
/// bytes, printable ASCII only, without its line ending.
pub(crate) fn parse_text_line(input: &[u8]) -> PResult<'_, &[u8]> {
    let window = &input[..input.len().min(MAX_LINE + 2)];
    let end = window.iter().position(|&c| c == b'\n');
    let line = match end {
        Some(end) => window[..end].strip_suffix(b"\r").unwrap_or(&window[..end]),
        None => window.strip_suffix(b"\r").unwrap_or(window),
    };
    // Keys exclude control characters and whitespace other than the separating spaces.
    if !line.iter().all(|&c| (b' '..=b'~').contains(&c)) {
        return fail(input);
    }
    match end {
        Some(end) => Ok((&input[end + 1..], line)),
        None if window.len() > MAX_LINE => fail(input),
        None => Err(Err::Incomplete(Needed::Unknown)),
    }
}

/// A data block of `len` bytes and its `\r\n`.
pub(crate) fn parse_data_block(input: &[u8], len: u64) -> PResult<'_, &[u8]> {
    let Ok(len) = usize::try_from(len) else {
        return fail(input);
    };
    let (rest, data) = take(len).parse(input)?;
    let (rest, end) = take(2_usize).parse(rest)?;
    if end != b"\r\n" {
        return fail(input);
    }
    Ok((rest, data))
}

/// The space-separated words of a text line.
pub(crate) fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&c| c == b' ').filter(|w| !w.is_empty())
}

/// A key: 1 to 250 printable bytes (the line is already printable and split on spaces).
pub(crate) fn key_ok(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN
}

/// An unsigned decimal of at most 20 digits.
pub(crate) fn number(word: &[u8]) -> Option<u64> {
    if word.is_empty() || word.len() > 20 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    word.iter().try_fold(0_u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A signed decimal (exptime may be negative: "expire immediately").
pub(crate) fn signed_number(word: &[u8]) -> bool {
    number(word.strip_prefix(b"-").unwrap_or(word)).is_some()
}

/// A meta flag: a letter, then its token (`v`, `T60`, `kmeta:1`, `N0`).
pub(crate) fn meta_flag_ok(word: &[u8]) -> bool {
    word.first().is_some_and(u8::is_ascii_alphabetic)
}

/// What a text command line says about the bytes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextCommand<'a> {
    /// A command line and nothing more; `unique` when no other protocol sends it (not a Redis
    /// command name, or a memcached-only shape), `reply` false for `noreply`/`quit`.
    Line {
        name: &'a [u8],
        key: Option<&'a [u8]>,
        unique: bool,
        reply: bool,
    },
    /// A storage command (`set`/`add`/`replace`/`append`/`prepend`/`cas`, meta `ms`):
    /// `data_len` bytes and `\r\n` follow.
    Storage {
        name: &'a [u8],
        key: &'a [u8],
        data_len: u64,
        reply: bool,
    },
}

/// Classic storage commands (protocol.txt "Storage commands").
const STORAGE: &[&[u8]] = &[b"set", b"add", b"replace", b"append", b"prepend", b"cas"];
/// Every text command name memcached 1.6 knows (for prefixes in the probe).
pub(crate) const TEXT_COMMANDS: &[&[u8]] = &[
    b"get",
    b"gets",
    b"gat",
    b"gats",
    b"set",
    b"add",
    b"replace",
    b"append",
    b"prepend",
    b"cas",
    b"incr",
    b"decr",
    b"delete",
    b"touch",
    b"stats",
    b"version",
    b"verbosity",
    b"flush_all",
    b"quit",
    b"mg",
    b"ms",
    b"md",
    b"ma",
    b"mn",
    b"me",
    b"shutdown",
    b"cache_memlimit",
    b"lru_crawler",
    b"slabs",
    b"watch",
    b"lru",
    b"misbehave",
];

/// Up to 8 words after a command name.
type Args<'a> = [Option<&'a [u8]>; 8];

/// `[noreply]` as the last word at index `i`: `Some(true)` when a reply is expected,
/// `Some(false)` for `noreply`, `None` for anything else there or after it.
fn reply_expected(args: &Args<'_>, i: usize) -> Option<bool> {
    let arg = |i: usize| args.get(i).copied().flatten();
    match arg(i) {
        None => Some(true),
        Some(b"noreply") if arg(i + 1).is_none() => Some(false),
        Some(_) => None,
    }
}

/// Meta flags (after a meta command's fixed words): `Some(quiet)` when all are well-formed.
fn meta_flags_quiet<'a>(flags: impl Iterator<Item = &'a [u8]>) -> Option<bool> {
    let mut quiet = false;
    for f in flags {
        if !meta_flag_ok(f) {
            return None;
        }
        quiet |= f == b"q";
    }
    Some(quiet)
}

/// `<cmd> <key> <flags> <exptime> <bytes> [<cas unique>] [noreply]` (protocol.txt "Storage
/// commands").
fn parse_storage<'a>(name: &'a [u8], args: &Args<'a>) -> Option<TextCommand<'a>> {
    let arg = |i: usize| args.get(i).copied().flatten();
    let key = arg(0).filter(|k| key_ok(k))?;
    let flags = number(arg(1)?)?;
    let data_len = number(arg(3)?)?;
    if flags > u64::from(u32::MAX) || !signed_number(arg(2)?) || data_len > MAX_VALUE_LEN {
        return None;
    }
    let next = if name == b"cas" {
        number(arg(4)?)?;
        5
    } else {
        4
    };
    let reply = reply_expected(args, next)?;
    Some(TextCommand::Storage {
        name,
        key,
        data_len,
        reply,
    })
}

/// Interprets a whole text command line; `None` when memcached would not accept it as a
/// well-formed command of its grammar.
pub(crate) fn parse_text_command(line: &[u8]) -> Option<TextCommand<'_>> {
    let mut it = words(line);
    let name = it.next()?;
    let args: Args<'_> = std::array::from_fn(|_| it.next());
    let many_words = matches!(
        name,
        b"get" | b"gets" | b"gat" | b"gats" | b"mg" | b"ms" | b"md" | b"ma"
    );
    if it.next().is_some() && !many_words {
        return None;
    }
    if STORAGE.contains(&name) {
        return parse_storage(name, &args);
    }
    let argc = args.iter().take_while(|a| a.is_some()).count();
    let arg = |i: usize| args.get(i).copied().flatten();
    let key = || arg(0).filter(|k| key_ok(k));
    let line_cmd = |key, unique, reply| {
        Some(TextCommand::Line {
            name,
            key,
            unique,
            reply,
        })
    };
    match name {
        b"get" | b"gets" => {
            if argc == 0 || !args.iter().flatten().all(|k| key_ok(k)) {
                return None;
            }
            // `get k` is also a lower-case Redis inline command; several keys or `gets` are not.
            line_cmd(arg(0), name == b"gets" || argc > 1, true)
        }
        b"gat" | b"gats" => {
            let keys_ok = args.iter().skip(1).flatten().all(|k| key_ok(k));
            if argc < 2 || !signed_number(arg(0)?) || !keys_ok {
                return None;
            }
            line_cmd(arg(1), true, true)
        }
        b"incr" | b"decr" => {
            number(arg(1)?)?;
            line_cmd(Some(key()?), true, reply_expected(&args, 2)?)
        }
        b"delete" => {
            // `delete <key> [0] [noreply]`: a legacy time of 0 is still accepted.
            let next = if arg(1) == Some(b"0") { 2 } else { 1 };
            line_cmd(Some(key()?), true, reply_expected(&args, next)?)
        }
        b"touch" => {
            if !signed_number(arg(1)?) {
                return None;
            }
            line_cmd(Some(key()?), true, reply_expected(&args, 2)?)
        }
        b"stats" | b"lru_crawler" | b"slabs" | b"watch" | b"lru" => line_cmd(None, true, true),
        b"version" | b"quit" | b"shutdown" | b"misbehave" | b"mn" if argc <= 1 => {
            // Redis has QUIT and SHUTDOWN too.
            let unique = !matches!(name, b"quit" | b"shutdown");
            line_cmd(None, unique, name != b"quit")
        }
        b"verbosity" | b"flush_all" | b"cache_memlimit" => {
            let value = arg(0).filter(|&a| a != b"noreply");
            if let Some(n) = value {
                number(n)?;
            }
            line_cmd(
                None,
                true,
                reply_expected(&args, usize::from(value.is_some()))?,
            )
        }
        // mg/md/ma/me <key> <flags>*
        b"mg" | b"md" | b"ma" | b"me" => {
            let quiet = meta_flags_quiet(words(line).skip(2))?;
            line_cmd(Some(key()?), true, !quiet)
        }
        // ms <key> <datalen> <flags>*
        b"ms" => {
            let data_len = number(arg(1)?).filter(|&n| n <= MAX_VALUE_LEN)?;
            let quiet = meta_flags_quiet(words(line).skip(3))?;
            Some(TextCommand::Storage {
                name,
                key: key()?,
                data_len,
                reply: !quiet,
            })
        }
        _ => None,
    }
}

/// What a text reply line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextReply<'a> {
    /// `VALUE <key> <flags> <bytes> [<cas>]` or meta `VA <bytes> <flags>*`: a data block of
    /// `data_len` bytes follows; `VALUE` lines continue until `END`, `VA` ends the reply.
    Value {
        key: Option<&'a [u8]>,
        data_len: u64,
        last: bool,
    },
    /// `STAT <name> <value>` / `ITEM ...`: one line of a list that `END` closes.
    ListItem,
    /// A line that ends the reply; `unique` when only memcached sends it.
    End { status: &'a [u8], unique: bool },
}

/// Interprets a whole text reply line; `None` when memcached never sends it.
pub(crate) fn parse_text_reply(line: &[u8]) -> Option<TextReply<'_>> {
    let mut it = words(line);
    let first = it.next()?;
    let end = |unique| {
        Some(TextReply::End {
            status: first,
            unique,
        })
    };
    match first {
        b"VALUE" => {
            let key = it.next().filter(|k| key_ok(k))?;
            number(it.next()?)?;
            let data_len = number(it.next()?).filter(|&n| n <= MAX_VALUE_LEN)?;
            if let Some(cas) = it.next() {
                number(cas)?;
            }
            Some(TextReply::Value {
                key: Some(key),
                data_len,
                last: false,
            })
        }
        b"VA" => {
            let data_len = number(it.next()?).filter(|&n| n <= MAX_VALUE_LEN)?;
            if !it.all(meta_flag_ok) {
                return None;
            }
            Some(TextReply::Value {
                key: None,
                data_len,
                last: true,
            })
        }
        b"STAT" | b"ITEM" => Some(TextReply::ListItem),
        b"STORED" | b"NOT_STORED" | b"EXISTS" | b"NOT_FOUND" | b"DELETED" | b"TOUCHED"
            if it.next().is_none() =>
        {
            end(true)
        }
        b"HD" | b"EN" | b"NF" | b"NS" | b"EX" | b"MN" if it.all(meta_flag_ok) => end(true),
        b"CLIENT_ERROR" | b"SERVER_ERROR" | b"VERSION" | b"ME" => end(true),
        b"END" | b"OK" | b"ERROR" | b"RESET" if it.next().is_none() => end(false),
        // incr/decr: the new value.
        _ if number(first).is_some() && it.next().is_none() => end(false),
        _ => None,
    }
}
