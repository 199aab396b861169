//! nom 8 parsers for the HTTP/1.x message head and chunked framing (RFC 9112).
//!
//! Every parser is `streaming`: `Err::Incomplete` means "a longer input could still parse",
//! `Err::Error` means the bytes break the grammar. Nothing here allocates, so the probe uses
//! the same functions as the session. Slices borrow from the input (zero copy).

use nom::bytes::streaming::{tag, take_till, take_while1, take_while_m_n};
use nom::character::streaming::{char, line_ending, space0};
use nom::error::{Error, ErrorKind};
use nom::{Err, Needed};

use crate::parsing::PResult;

/// Most bytes of a message head (start line plus header fields) adi parses. RFC 9112
/// section 2.3 sets no limit and leaves it to the recipient; servers commonly cap it at
/// 8-64 KiB (nginx `large_client_header_buffers`), adi takes the upper end.
pub(crate) const MAX_HEAD_LEN: usize = 64 * 1024;
/// Most bytes of a trailer section (RFC 9112 section 7.1.2): capped like the head.
pub(crate) const MAX_TRAILER_LEN: usize = 64 * 1024;
/// Most bytes of one chunk-size line, extensions included. RFC 9112 section 7.1.1: "a server
/// ought to limit the total length of chunk extensions received in a request".
pub(crate) const MAX_CHUNK_LINE_LEN: usize = 4096;
/// Most hex digits of a chunk size: 16 fill a u64. RFC 9112 section 7.1: recipients "MUST
/// anticipate potentially large hexadecimal numerals and prevent parsing errors due to
/// integer conversion overflows".
pub(crate) const MAX_CHUNK_SIZE_DIGITS: usize = 16;
/// Most decimal digits of a Content-Length (RFC 9110 section 8.6 asks for the same care):
/// 19 digits always fit a u64.
pub(crate) const MAX_CONTENT_LENGTH_DIGITS: usize = 19;

/// An HTTP version `HTTP/major.minor` (RFC 9112 section 2.3). Only major 1 is http1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) major: u8,
    pub(crate) minor: u8,
}

/// A request line (RFC 9112 section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestLine<'a> {
    pub(crate) method: &'a [u8],
    pub(crate) target: &'a [u8],
    pub(crate) version: Version,
}

/// A status line (RFC 9112 section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StatusLine<'a> {
    pub(crate) version: Version,
    pub(crate) status: StatusCode,
    pub(crate) reason: &'a [u8],
}

/// A status code (RFC 9110 section 15): three digits, the first 1 to 5. Unknown codes parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StatusCode(pub(crate) u16);

impl StatusCode {
    /// 101: the connection continues in the protocol named by `Upgrade`.
    pub(crate) const SWITCHING_PROTOCOLS: Self = Self(101);
    /// 204: never has content (RFC 9110 section 15.3.5).
    pub(crate) const NO_CONTENT: Self = Self(204);
    /// 304: never has content (RFC 9110 section 15.4.5).
    pub(crate) const NOT_MODIFIED: Self = Self(304);

    /// 1xx: an interim response, a final one follows.
    pub(crate) const fn is_informational(self) -> bool {
        self.0 >= 100 && self.0 < 200
    }

    /// 2xx.
    pub(crate) const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }
}

/// One field line `name: value` (RFC 9112 section 5). `value` is the raw span without the
/// surrounding whitespace; it still contains the CRLF of any obs-fold (section 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// `tchar` (RFC 9110 section 5.6.2): the characters of a token (method, field name).
pub(crate) const fn is_tchar(c: u8) -> bool {
    TCHAR[c as usize]
}

/// [`is_tchar`] as a table, built at compile time: one load per byte of a field name.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = matches!(c as u8,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
            | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z');
        c += 1;
    }
    t
};

/// A request-target character: any visible byte but SP (RFC 9112 section 3.2), plus
/// obs-text, which real clients send unencoded.
pub(crate) const fn is_target_char(c: u8) -> bool {
    c > 0x20 && c != 0x7f
}

fn error<T>(i: &[u8], kind: ErrorKind) -> PResult<'_, T> {
    Err(Err::Error(Error::new(i, kind)))
}

/// `HTTP/1.1`: `HTTP-version = "HTTP" "/" DIGIT "." DIGIT` (RFC 9112 section 2.3).
pub(crate) fn parse_version(i: &[u8]) -> PResult<'_, Version> {
    let (i, _) = tag(&b"HTTP/"[..])(i)?;
    let (i, major) = take_while_m_n(1, 1, |c: u8| c.is_ascii_digit())(i)?;
    let (i, _) = char('.')(i)?;
    let (i, minor) = take_while_m_n(1, 1, |c: u8| c.is_ascii_digit())(i)?;
    let digit = |s: &[u8]| s.first().map_or(0, |d| d - b'0');
    Ok((
        i,
        Version {
            major: digit(major),
            minor: digit(minor),
        },
    ))
}

/// `method SP request-target SP HTTP-version CRLF` (RFC 9112 section 3). A lone LF ends the
/// line too (section 2.2 allows recipients to accept it). Versions other than 1.x fail, so
/// the HTTP/2 preface `PRI * HTTP/2.0` is not a request line.
pub(crate) fn parse_request_line(i: &[u8]) -> PResult<'_, RequestLine<'_>> {
    let (i, method) = take_while1(is_tchar)(i)?;
    let (i, _) = char(' ')(i)?;
    let (i, target) = take_while1(is_target_char)(i)?;
    let (i, _) = char(' ')(i)?;
    let (rest, version) = parse_version(i)?;
    if version.major != 1 {
        return error(i, ErrorKind::Verify);
    }
    let (rest, _) = line_ending(rest)?;
    Ok((
        rest,
        RequestLine {
            method,
            target,
            version,
        },
    ))
}

/// `HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF` (RFC 9112 section 4). Tolerates a
/// missing SP before an empty reason, as some servers send `HTTP/1.1 200\r\n`.
pub(crate) fn parse_status_line(i: &[u8]) -> PResult<'_, StatusLine<'_>> {
    let (i, version) = parse_version(i)?;
    if version.major != 1 {
        return error(i, ErrorKind::Verify);
    }
    let (i, _) = char(' ')(i)?;
    let (rest, code) = take_while_m_n(3, 3, |c: u8| c.is_ascii_digit())(i)?;
    let status = code
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    if !(100..600).contains(&status) {
        return error(i, ErrorKind::Verify);
    }
    let (rest, reason) = match rest.split_first() {
        Some((b' ', after)) => take_till(|c| c == b'\r' || c == b'\n')(after)?,
        Some((b'\r' | b'\n', _)) => (rest, &b""[..]),
        Some(_) => return error(rest, ErrorKind::Char),
        None => return Err(Err::Incomplete(Needed::new(1))),
    };
    let (rest, _) = line_ending(rest)?;
    Ok((
        rest,
        StatusLine {
            version,
            status: StatusCode(status),
            reason,
        },
    ))
}

/// One field line, or `None` for the empty line that ends a field section (RFC 9112
/// section 5: `field-name ":" OWS field-value OWS`, obs-fold continuation lines included).
///
/// Hand-written rather than nom combinators: the probe runs it on every field of a head, so
/// the name is checked through a table and the end of the line found with one search (a CR
/// or LF ends it; a CR must be followed by LF).
#[inline]
pub(crate) fn parse_field_line(i: &[u8]) -> PResult<'_, Option<Field<'_>>> {
    match i {
        [b'\n', rest @ ..] | [b'\r', b'\n', rest @ ..] => return Ok((rest, None)),
        [] | [b'\r'] => return Err(Err::Incomplete(Needed::new(1))),
        _ => {}
    }
    // Section 5.1: no whitespace is allowed between the field name and the colon.
    let name_len = match i.iter().position(|&c| !is_tchar(c)) {
        None => return Err(Err::Incomplete(Needed::new(1))),
        Some(0) => return error(i, ErrorKind::TakeWhile1),
        Some(n) => n,
    };
    let (name, after_name) = i.split_at(name_len);
    if after_name.first() != Some(&b':') {
        return error(after_name, ErrorKind::Char);
    }
    let after_colon = &after_name[1..];
    let Some(ows) = after_colon.iter().position(|&c| c != b' ' && c != b'\t') else {
        return Err(Err::Incomplete(Needed::new(1)));
    };
    let value_start = &after_colon[ows..];
    // Offset in `value_start` where the current line's search starts.
    let mut from = 0;
    loop {
        let line = &value_start[from..];
        let Some(k) = find_cr_or_lf(line) else {
            return Err(Err::Incomplete(Needed::new(1)));
        };
        let eol = match (line[k], line.get(k + 1)) {
            (b'\n', _) => 1,
            (_, Some(b'\n')) => 2,
            (_, None) => return Err(Err::Incomplete(Needed::new(1))),
            (_, Some(_)) => return error(&line[k..], ErrorKind::CrLf),
        };
        let next = from + k + eol;
        match value_start.get(next) {
            // Section 5.2: obs-fold, a line starting with whitespace continues the value.
            Some(b' ' | b'\t') => from = next,
            Some(_) => {
                let value = trim_trailing_ws(&value_start[..from + k]);
                return Ok((&value_start[next..], Some(Field { name, value })));
            }
            None => return Err(Err::Incomplete(Needed::new(1))),
        }
    }
}

/// The first CR or LF in `hay`, eight bytes per step (SWAR: a zero byte of `word ^ CR..CR`
/// or `word ^ LF..LF` marks a match; the lowest marked byte is exact). Field values are tens
/// of bytes, too short for `memchr2`'s set-up to pay off and long enough for a byte loop to
/// dominate the probe.
fn find_cr_or_lf(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const CRS: u64 = u64::from_le_bytes([b'\r'; 8]);
    const LFS: u64 = u64::from_le_bytes([b'\n'; 8]);
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let (words, tail) = hay.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*word);
        let hits = zero_bytes(x ^ CRS) | zero_bytes(x ^ LFS);
        if hits != 0 {
            return Some(n * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .map(|k| words.len() * 8 + k)
}

fn trim_trailing_ws(mut v: &[u8]) -> &[u8] {
    while let [head @ .., b' ' | b'\t'] = v {
        v = head;
    }
    v
}

/// `chunk-size [ chunk-ext ] CRLF` (RFC 9112 section 7.1): the size, extensions skipped.
pub(crate) fn parse_chunk_size_line(i: &[u8]) -> PResult<'_, u64> {
    let (rest, digits) = take_while1(|c: u8| c.is_ascii_hexdigit())(i)?;
    if digits.len() > MAX_CHUNK_SIZE_DIGITS {
        return error(i, ErrorKind::TooLarge);
    }
    let size = digits.iter().fold(0u64, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d.wrapping_sub(b'A').wrapping_add(10),
        };
        (acc << 4) | u64::from(v)
    });
    // Section 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ).
    let (rest, _) = space0(rest)?;
    let rest = match rest.first() {
        Some(b';') => take_till(|c| c == b'\r' || c == b'\n')(rest)?.0,
        Some(_) => rest,
        None => return Err(Err::Incomplete(Needed::new(1))),
    };
    let (rest, _) = line_ending(rest)?;
    Ok((rest, size))
}

/// The CRLF that ends a chunk's data (RFC 9112 section 7.1).
pub(crate) fn parse_chunk_data_end(i: &[u8]) -> PResult<'_, ()> {
    let (rest, _) = line_ending(i)?;
    Ok((rest, ()))
}

/// A Content-Length value: digits, or a list of identical values (RFC 9110 section 8.6).
/// `None` when malformed, too long or inconsistent.
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    let mut out = None;
    for part in value.split(|&c| c == b',') {
        let part = trim_ws(part);
        if part.is_empty()
            || part.len() > MAX_CONTENT_LENGTH_DIGITS
            || !part.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let n = part
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        if out.is_some_and(|o| o != n) {
            return None;
        }
        out = Some(n);
    }
    out
}

/// Strips leading and trailing SP/HTAB.
pub(crate) fn trim_ws(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', tail @ ..] = v {
        v = tail;
    }
    trim_trailing_ws(v)
}

/// What the header fields say about body framing (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FramingFields {
    /// The Content-Length, when every Content-Length field agrees.
    pub(crate) content_length: Option<u64>,
    /// A Transfer-Encoding field was present.
    pub(crate) has_transfer_encoding: bool,
    /// The last transfer coding is `chunked`.
    pub(crate) chunked: bool,
    /// Content-Length fields disagree or do not parse.
    pub(crate) bad_content_length: bool,
}

impl FramingFields {
    /// Takes one field into account.
    #[inline]
    pub(crate) fn note(&mut self, field: &Field<'_>) {
        // Only two names matter: their lengths (14, 17) rule out most fields at once.
        if !matches!(field.name.len(), 14 | 17) {
            return;
        }
        if field.name.eq_ignore_ascii_case(b"content-length") {
            match (parse_content_length(field.value), self.content_length) {
                (Some(n), None) => self.content_length = Some(n),
                (Some(n), Some(old)) if n == old => {}
                _ => self.bad_content_length = true,
            }
        } else if field.name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.has_transfer_encoding = true;
            // Codings are listed in the order applied; only the last one matters here.
            if let Some(last) = field
                .value
                .rsplit(|&c| c == b',')
                .map(trim_ws)
                .find(|c| !c.is_empty())
            {
                self.chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        }
    }

    /// True when a request with these fields has a well-defined body length (RFC 9112
    /// section 6.3, items 4 to 6).
    pub(crate) fn request_is_consistent(&self) -> bool {
        if self.has_transfer_encoding {
            self.chunked
        } else {
            !self.bad_content_length
        }
    }

    /// True when a response with these fields has a well-defined body length (close
    /// delimited counts).
    pub(crate) fn response_is_consistent(&self) -> bool {
        self.has_transfer_encoding || !self.bad_content_length
    }
}

/// Parses a whole field section and folds the framing fields, without allocating.
pub(crate) fn parse_framing(i: &[u8]) -> PResult<'_, FramingFields> {
    let mut rest = i;
    let mut framing = FramingFields::default();
    loop {
        let (r, field) = parse_field_line(rest)?;
        rest = r;
        match field {
            Some(f) => framing.note(&f),
            None => return Ok((rest, framing)),
        }
    }
}

/// The offset just past the empty line ending the head that starts at `buf`, searching from
/// `from` (bytes already searched): `\r\n\r\n`, or `\n\n` for LF-only senders. Only the line
/// feeds are visited (`memchr`, a vector at a time): a byte loop over the head was a sixth of
/// the HTTP/1 session's time.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3).min(buf.len());
    let hay = buf.get(start..)?;
    memchr::memchr_iter(b'\n', hay).find_map(|k| {
        let at = start + k;
        let prev = at.checked_sub(1).and_then(|p| buf.get(p)).copied();
        let ends = match prev {
            Some(b'\n') => true,
            Some(b'\r') => at.checked_sub(2).and_then(|p| buf.get(p)) == Some(&b'\n'),
            _ => false,
        };
        ends.then_some(at + 1)
    })
}
