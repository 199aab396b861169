//! nom 8 parsers for RESP2 and RESP3 framing
//! (<https://redis.io/docs/latest/develop/reference/protocol-spec/>).
//!
//! Every parser is `streaming`: `Err::Incomplete` means "a longer input could still parse",
//! `Err::Error` means the bytes break the grammar. Nothing here allocates, so the probe and the
//! session share them. A partial header line is checked as it arrives, so random bytes fail on
//! their first few bytes instead of waiting for a CRLF.

use nom::error::{Error, ErrorKind};
use nom::{Err, Needed};

use crate::parsing::{fail, PResult};

/// Most bytes of one header or simple line. Redis reads at most `PROTO_INLINE_MAX_SIZE`
/// (64 KiB, `server.h`) before a CRLF, for inline commands and multibulk headers alike.
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// Largest bulk string: Redis's `proto-max-bulk-len` default (512 MiB, `redis.conf`).
pub(crate) const MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
/// Most elements of one aggregate: Redis rejects a multibulk length above `INT_MAX`
/// (`processMultibulkBuffer` in `networking.c`).
pub(crate) const MAX_AGGREGATE_LEN: u64 = i32::MAX as u64;
/// Deepest nesting of aggregates followed. RESP sets no limit; hiredis's reader keeps a
/// fixed task stack, and real replies nest a few levels (`XREAD`, `COMMAND DOCS`).
pub(crate) const MAX_DEPTH: usize = 16;
/// Most digits of a length or integer: 20 hold any `i64` with its sign.
const MAX_DIGITS: usize = 20;

/// The first byte of a RESP value (the spec's "RESP protocol description" table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TypeByte(pub(crate) u8);

impl TypeByte {
    /// `+OK`: RESP2 simple string.
    pub(crate) const SIMPLE_STRING: Self = Self(b'+');
    /// `-ERR ...`: RESP2 simple error.
    pub(crate) const ERROR: Self = Self(b'-');
    /// `:123`: RESP2 integer.
    pub(crate) const INTEGER: Self = Self(b':');
    /// `$5`: RESP2 bulk string (`$-1`: RESP2 null).
    pub(crate) const BULK: Self = Self(b'$');
    /// `*3`: RESP2 array (`*-1`: RESP2 null array).
    pub(crate) const ARRAY: Self = Self(b'*');
    /// `_`: RESP3 null.
    pub(crate) const NULL: Self = Self(b'_');
    /// `#t` / `#f`: RESP3 boolean.
    pub(crate) const BOOLEAN: Self = Self(b'#');
    /// `,3.14`: RESP3 double.
    pub(crate) const DOUBLE: Self = Self(b',');
    /// `(123...`: RESP3 big number.
    pub(crate) const BIG_NUMBER: Self = Self(b'(');
    /// `!21`: RESP3 bulk error.
    pub(crate) const BLOB_ERROR: Self = Self(b'!');
    /// `=15`: RESP3 verbatim string (`txt:` or `mkd:` then the text).
    pub(crate) const VERBATIM: Self = Self(b'=');
    /// `%2`: RESP3 map (2 pairs).
    pub(crate) const MAP: Self = Self(b'%');
    /// `|1`: RESP3 attribute (1 pair), followed by the value it describes.
    pub(crate) const ATTRIBUTE: Self = Self(b'|');
    /// `~3`: RESP3 set.
    pub(crate) const SET: Self = Self(b'~');
    /// `>3`: RESP3 push (out-of-band data: pub/sub messages, invalidations).
    pub(crate) const PUSH: Self = Self(b'>');

    /// The kind of framing that follows this type byte, or `None` for an unknown byte.
    pub(crate) const fn shape(self) -> Option<Shape> {
        Some(match self.0 {
            b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Shape::Line,
            b'$' | b'!' | b'=' => Shape::Bulk,
            b'*' | b'~' | b'>' => Shape::Aggregate { per_entry: 1 },
            b'%' | b'|' => Shape::Aggregate { per_entry: 2 },
            _ => return None,
        })
    }

    /// A name for the `type` attribute of a record.
    pub(crate) const fn name(self) -> &'static str {
        match self.0 {
            b'+' => "simple_string",
            b'-' => "error",
            b':' => "integer",
            b'$' => "bulk_string",
            b'*' => "array",
            b'_' => "null",
            b'#' => "boolean",
            b',' => "double",
            b'(' => "big_number",
            b'!' => "blob_error",
            b'=' => "verbatim_string",
            b'%' => "map",
            b'|' => "attribute",
            b'~' => "set",
            b'>' => "push",
            _ => "unknown",
        }
    }
}

/// How a value of some type is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The whole value is on its header line.
    Line,
    /// A length line, that many bytes, CRLF.
    Bulk,
    /// A count line, then `count * per_entry` values.
    Aggregate { per_entry: u64 },
}

/// A parsed header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header<'a> {
    /// A line value (`+`, `-`, `:`, `_`, `#`, `,`, `(`) and its text.
    Line(TypeByte, &'a [u8]),
    /// A bulk value (`$`, `!`, `=`) and its length; `None` for the RESP2 null `$-1`.
    Bulk(TypeByte, Option<u64>),
    /// An aggregate and the number of values it holds (pairs counted twice); `None` for the
    /// RESP2 null array `*-1`.
    Aggregate(TypeByte, Option<u64>),
}

/// Is `partial` (a header line without its CRLF, perhaps still arriving) possible for `ty`?
fn partial_line_ok(ty: TypeByte, partial: &[u8]) -> bool {
    let digits_upto = |s: &[u8], signed: bool, max: usize| {
        let s = if signed {
            s.strip_prefix(b"-")
                .or_else(|| s.strip_prefix(b"+"))
                .unwrap_or(s)
        } else {
            s
        };
        s.len() <= max && s.iter().all(u8::is_ascii_digit)
    };
    let digits = |s: &[u8], signed: bool| digits_upto(s, signed, MAX_DIGITS);
    match ty {
        // Lengths: digits, or `-1` for RESP2 nulls.
        TypeByte::BULK | TypeByte::ARRAY => partial
            .strip_prefix(b"-")
            .map_or_else(|| digits(partial, false), |r| r.is_empty() || r == b"1"),
        TypeByte::BLOB_ERROR
        | TypeByte::VERBATIM
        | TypeByte::MAP
        | TypeByte::ATTRIBUTE
        | TypeByte::SET
        | TypeByte::PUSH => digits(partial, false),
        TypeByte::INTEGER => digits(partial, true),
        // Big numbers are arbitrary precision: any number of digits on one line.
        TypeByte::BIG_NUMBER => digits_upto(partial, true, MAX_LINE),
        TypeByte::NULL => partial.is_empty(),
        TypeByte::BOOLEAN => matches!(partial, b"" | b"t" | b"f"),
        TypeByte::DOUBLE => {
            partial.len() <= 64
                && partial
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+'))
        }
        // Simple strings and errors: any text, but real servers send printable ASCII (the spec
        // forbids CR and LF; control bytes are how random data is told apart).
        _ => partial
            .iter()
            .all(|&c| c == b'\t' || (b' '..=b'~').contains(&c) || c >= 0x80),
    }
}

/// Is `line` (complete) a valid RESP3 double (`,1.23`, `,inf`, `,-inf`, `,nan`, `,1e10`)?
fn double_ok(line: &[u8]) -> bool {
    let s = line
        .strip_prefix(b"-")
        .or_else(|| line.strip_prefix(b"+"))
        .unwrap_or(line);
    if matches!(s, b"inf" | b"nan") {
        return true;
    }
    let (mantissa, exponent) = match s.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = mantissa.splitn(2, |&c| c == b'.');
    let int = parts.next().unwrap_or_default();
    let frac = parts.next().unwrap_or_default();
    let num_ok =
        !(int.is_empty() && frac.is_empty()) && int.iter().chain(frac).all(u8::is_ascii_digit);
    let exp_ok = exponent.is_none_or(|e| {
        let e = e
            .strip_prefix(b"-")
            .or_else(|| e.strip_prefix(b"+"))
            .unwrap_or(e);
        !e.is_empty() && e.len() <= 4 && e.iter().all(u8::is_ascii_digit)
    });
    num_ok && exp_ok
}

/// A decimal length: `None` for `-1` (RESP2 null), an error for anything else negative, not
/// numeric or above `max`.
fn parse_len(line: &[u8], allow_null: bool, max: u64) -> Result<Option<u64>, ()> {
    if allow_null && line == b"-1" {
        return Ok(None);
    }
    if line.is_empty() || line.len() > MAX_DIGITS || !line.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    let n = line.iter().try_fold(0_u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    match n {
        Some(n) if n <= max => Ok(Some(n)),
        _ => Err(()),
    }
}

/// One line ended by CRLF, at most [`MAX_LINE`] bytes, whose bytes so far `ok` accepts.
///
/// A line holds no CR or LF, so the first of either decides: it must be the CR of the CRLF.
/// One search finds it, instead of a search for LF and another for a stray CR.
pub(crate) fn parse_line(input: &[u8], ok: impl Fn(&[u8]) -> bool) -> PResult<'_, &[u8]> {
    let window = &input[..input.len().min(MAX_LINE + 2)];
    let partial = match find_cr_or_lf(window) {
        Some(end) if window[end] == b'\r' => match window.get(end + 1) {
            Some(b'\n') => {
                let line = &window[..end];
                if !ok(line) {
                    return fail(input);
                }
                return Ok((&input[end + 2..], line));
            }
            // A CR inside the line, or a line ending in a bare CR.
            Some(_) => return fail(input),
            // The CR is the last byte: its LF may still come.
            None => &window[..end],
        },
        // An LF without its CR.
        Some(_) => return fail(input),
        None => window,
    };
    if window.len() > MAX_LINE || !ok(partial) {
        return fail(input);
    }
    Err(Err::Incomplete(Needed::Unknown))
}

/// The first CR or LF in `hay`: a plain loop over the first bytes (most RESP lines are a few
/// bytes long, shorter than `memchr2`'s set-up), `memchr2` past them.
fn find_cr_or_lf(hay: &[u8]) -> Option<usize> {
    const SHORT: usize = 32;
    let head = &hay[..hay.len().min(SHORT)];
    match head.iter().position(|&c| c == b'\r' || c == b'\n') {
        Some(k) => Some(k),
        None => memchr::memchr2(b'\r', b'\n', &hay[head.len()..]).map(|k| k + head.len()),
    }
}

/// The header line of a RESP value: its type byte and what the line says.
pub(crate) fn parse_header(input: &[u8]) -> PResult<'_, Header<'_>> {
    let Some((&first, rest)) = input.split_first() else {
        return Err(Err::Incomplete(Needed::new(1)));
    };
    let ty = TypeByte(first);
    let Some(shape) = ty.shape() else {
        return fail(input);
    };
    let (rest, line) = parse_line(rest, |p| partial_line_ok(ty, p))?;
    let header = match shape {
        Shape::Line => {
            let ok = match ty {
                TypeByte::INTEGER | TypeByte::BIG_NUMBER => {
                    let d = line
                        .strip_prefix(b"-")
                        .or_else(|| line.strip_prefix(b"+"))
                        .unwrap_or(line);
                    !d.is_empty()
                }
                TypeByte::BOOLEAN => matches!(line, b"t" | b"f"),
                TypeByte::DOUBLE => double_ok(line),
                // nats-server quotes its errors (`-ERR 'Unknown Protocol Operation'`); Redis
                // never puts a quote right after the code.
                TypeByte::ERROR => !line.starts_with(b"ERR '"),
                _ => true,
            };
            if !ok {
                return fail(input);
            }
            Header::Line(ty, line)
        }
        Shape::Bulk => {
            let Ok(len) = parse_len(line, ty == TypeByte::BULK, MAX_BULK_LEN) else {
                return fail(input);
            };
            // A verbatim string starts with a 3-byte format and `:` (`txt:`).
            if ty == TypeByte::VERBATIM && len.is_some_and(|n| n < 4) {
                return fail(input);
            }
            Header::Bulk(ty, len)
        }
        Shape::Aggregate { per_entry } => {
            let Ok(len) = parse_len(line, ty == TypeByte::ARRAY, MAX_AGGREGATE_LEN) else {
                return fail(input);
            };
            Header::Aggregate(ty, len.map(|n| n * per_entry))
        }
    };
    Ok((rest, header))
}

/// The body of a bulk value of `len` bytes and its closing CRLF.
pub(crate) fn parse_bulk_body(input: &[u8], len: u64) -> PResult<'_, &[u8]> {
    let Ok(len) = usize::try_from(len) else {
        return fail(input);
    };
    let Some(rest) = input.get(len..) else {
        return Err(Err::Incomplete(Needed::new(len - input.len())));
    };
    match rest {
        [b'\r', b'\n', after @ ..] => Ok((after, &input[..len])),
        [] | [b'\r'] => Err(Err::Incomplete(Needed::new(2 - rest.len()))),
        _ => Err(Err::Error(Error::new(rest, ErrorKind::Tag))),
    }
}

/// How much a value proves, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Strength {
    /// Nothing yet (an aggregate header alone).
    Nothing,
    /// A simple string, simple error or null: other line protocols look the same.
    Plain,
    /// A typed line (`:`, `#`, `,`, `(`), an empty or null aggregate, a null bulk, or a bulk
    /// header whose body is still arriving.
    Typed,
    /// A bulk body whose length matched, or an aggregate of such values.
    Framed,
}

/// What scanning one value found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan<'a> {
    /// The whole value, its strength and the bytes after it.
    Whole(Strength, &'a [u8]),
    /// The value continues past the input; what it proved so far.
    Partial(Strength),
    /// Not RESP (or nested deeper than allowed).
    Invalid,
}

/// Scans one RESP value (an attribute and the value it describes count as one), nested at
/// most `depth` levels, without allocating.
pub(crate) fn scan_value(input: &[u8], depth: usize) -> Scan<'_> {
    if depth == 0 {
        return Scan::Invalid;
    }
    let (rest, header) = match parse_header(input) {
        Ok(r) => r,
        Err(Err::Incomplete(_)) => return Scan::Partial(Strength::Nothing),
        Err(_) => return Scan::Invalid,
    };
    match header {
        Header::Line(ty, _) => {
            let s = match ty {
                TypeByte::SIMPLE_STRING | TypeByte::ERROR | TypeByte::NULL => Strength::Plain,
                _ => Strength::Typed,
            };
            Scan::Whole(s, rest)
        }
        Header::Bulk(_, None) | Header::Aggregate(_, None | Some(0)) => {
            // An empty attribute still precedes a value.
            if matches!(header, Header::Aggregate(TypeByte::ATTRIBUTE, _)) {
                return scan_value(rest, depth - 1);
            }
            Scan::Whole(Strength::Typed, rest)
        }
        Header::Bulk(ty, Some(len)) => match parse_bulk_body(rest, len) {
            Ok((rest, body)) => {
                if ty == TypeByte::VERBATIM && body.get(3) != Some(&b':') {
                    return Scan::Invalid;
                }
                Scan::Whole(Strength::Framed, rest)
            }
            Err(Err::Incomplete(_)) => Scan::Partial(Strength::Typed),
            Err(_) => Scan::Invalid,
        },
        Header::Aggregate(ty, Some(count)) => {
            let mut rest = rest;
            let mut best = Strength::Nothing;
            let mut left = count;
            while left > 0 {
                match scan_value(rest, depth - 1) {
                    Scan::Whole(s, r) => {
                        best = best.max(s);
                        rest = r;
                    }
                    Scan::Partial(s) => return Scan::Partial(best.max(s).min(Strength::Typed)),
                    Scan::Invalid => return Scan::Invalid,
                }
                left -= 1;
            }
            if ty == TypeByte::ATTRIBUTE {
                // The attribute describes the value that follows: scan it too.
                return match scan_value(rest, depth - 1) {
                    Scan::Whole(s, r) => Scan::Whole(best.max(s), r),
                    Scan::Partial(s) => Scan::Partial(best.max(s).min(Strength::Typed)),
                    Scan::Invalid => Scan::Invalid,
                };
            }
            Scan::Whole(best.max(Strength::Typed), rest)
        }
    }
}

/// Most bytes of a command name read from a command array: known names are at most 20
/// bytes, module commands (`FT.SEARCH`, `JSON.SET`) a little longer.
pub(crate) const MAX_COMMAND_NAME_LEN: usize = 64;

/// Can `c` appear in a command name? Letters, digits, and `_ . | - :` (Redis 7 uses `_`,
/// modules `.`, ACL categories `|`).
pub(crate) const fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'|' | b'-' | b':')
}

/// The start of a command array: `*<words>\r\n$<len>\r\n<name>\r\n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommandHead<'a> {
    /// Words in the command, its name included.
    pub(crate) words: u64,
    /// The command name, as sent.
    pub(crate) name: &'a [u8],
}

/// Parses the start of a command array (clients send arrays of bulk strings only).
pub(crate) fn parse_command_head(input: &[u8]) -> PResult<'_, CommandHead<'_>> {
    let (rest, words) = match parse_header(input)? {
        (rest, Header::Aggregate(TypeByte::ARRAY, Some(n))) if n > 0 => (rest, n),
        _ => return fail(input),
    };
    let (rest, len) = match parse_header(rest)? {
        (rest, Header::Bulk(TypeByte::BULK, Some(n)))
            if n > 0 && n <= MAX_COMMAND_NAME_LEN as u64 =>
        {
            (rest, n)
        }
        _ => return fail(input),
    };
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    // Check the name's bytes as they arrive.
    let avail = &rest[..rest.len().min(len)];
    if !avail.iter().all(|&c| is_name_byte(c)) {
        return fail(input);
    }
    let (rest, name) = parse_bulk_body(rest, len as u64)?;
    Ok((rest, CommandHead { words, name }))
}

/// Skips `count` bulk-string arguments of a command array.
pub(crate) fn skip_bulk_args(mut input: &[u8], count: u64) -> PResult<'_, ()> {
    for _ in 0..count {
        let (rest, Header::Bulk(TypeByte::BULK, Some(len))) = parse_header(input)? else {
            return fail(input);
        };
        (input, _) = parse_bulk_body(rest, len)?;
    }
    Ok((input, ()))
}

/// One inline command line (`SET k v\r\n`; Redis also accepts a bare `\n`), at most
/// [`MAX_LINE`] bytes, without its line ending.
pub(crate) fn parse_inline_line(input: &[u8]) -> PResult<'_, &[u8]> {
    let window = &input[..input.len().min(MAX_LINE + 2)];
    match window.iter().position(|&c| c == b'\n') {
        Some(end) => {
            let line = window[..end].strip_suffix(b"\r").unwrap_or(&window[..end]);
            Ok((&input[end + 1..], line))
        }
        None if window.len() > MAX_LINE => fail(input),
        None => Err(Err::Incomplete(Needed::Unknown)),
    }
}

/// The words of an inline command line, split like Redis's `sdssplitargs`: blanks separate
/// words, `"..."` (with `\` escapes) and `'...'` quote them. Each item is a word as sent,
/// quotes included, or `Err` for an unbalanced quote or a quote followed by a non-blank.
pub(crate) struct InlineWords<'a> {
    rest: &'a [u8],
}

impl<'a> InlineWords<'a> {
    pub(crate) const fn new(line: &'a [u8]) -> Self {
        Self { rest: line }
    }
}

impl<'a> Iterator for InlineWords<'a> {
    type Item = Result<&'a [u8], ()>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.rest.iter().position(|&c| !matches!(c, b' ' | b'\t'))?;
        let s = &self.rest[start..];
        let end = match s[0] {
            q @ (b'"' | b'\'') => {
                let mut i = 1;
                loop {
                    match s.get(i) {
                        None => {
                            self.rest = &[];
                            return Some(Err(()));
                        }
                        Some(b'\\') if q == b'"' => i += 2,
                        Some(&c) if c == q => break i + 1,
                        Some(_) => i += 1,
                    }
                }
            }
            _ => s
                .iter()
                .position(|&c| matches!(c, b' ' | b'\t'))
                .unwrap_or(s.len()),
        };
        if end > s.len() || s.get(end).is_some_and(|&c| !matches!(c, b' ' | b'\t')) {
            self.rest = &[];
            return Some(Err(()));
        }
        self.rest = &s[end..];
        Some(Ok(&s[..end]))
    }
}
