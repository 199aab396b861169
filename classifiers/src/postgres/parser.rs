//! nom 8 parsers for the PostgreSQL frontend/backend protocol 3.0 (PostgreSQL documentation,
//! chapter "Frontend/Backend Protocol", section "Message Formats").
//!
//! Two frame shapes exist. Untyped messages start the connection (`int32 length` then
//! `int32 code`: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest); every later
//! message is typed (`byte1 type`, `int32 length` counting itself but not the type). The
//! outer frames are `streaming` (`Err::Incomplete` = a longer input could still parse); the
//! bodies are checked by the `*_body_ok` functions, which see a whole body and never
//! allocate, so the probe and the session share them.

use nom::bytes::streaming::take;
use nom::number::streaming::{be_u32, be_u8};
use nom::Parser;

use crate::parsing::{fail, PResult};

/// Longest untyped startup-phase message the server accepts: `MAX_STARTUP_PACKET_LENGTH`
/// (10000) in `src/include/libpq/pqcomm.h`.
pub(crate) const MAX_STARTUP_LEN: usize = 10_000;
/// Longest typed message: `PQ_LARGE_MESSAGE_LIMIT` (`MaxAllocSize - 1`, 1 GiB - 1) in
/// `src/include/libpq/libpq.h`.
pub(crate) const MAX_MESSAGE_LEN: usize = 0x3fff_ffff;
/// Longest cancel key: protocol 3.2 (PostgreSQL 18) allows up to 256 bytes
/// ("BackendKeyData"); 3.0 keys are 4 bytes.
pub(crate) const MAX_CANCEL_KEY_LEN: usize = 256;
/// Most columns of a row: `MaxTupleAttributeNumber` (1664) in `src/include/access/htup_details.h`.
pub(crate) const MAX_COLUMNS: usize = 1664;

/// The code of an untyped startup-phase message (the second `int32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartupCode(pub(crate) u32);

impl StartupCode {
    /// "SSLRequest": `1234 << 16 | 5679`.
    pub(crate) const SSL_REQUEST: Self = Self(80_877_103);
    /// "GSSENCRequest": `1234 << 16 | 5680`.
    pub(crate) const GSSENC_REQUEST: Self = Self(80_877_104);
    /// "CancelRequest": `1234 << 16 | 5678`.
    pub(crate) const CANCEL_REQUEST: Self = Self(80_877_102);

    /// A StartupMessage protocol version 3.x (`3 << 16 | minor`); 3.0 and 3.2 exist.
    pub(crate) const fn is_protocol_3(self) -> bool {
        self.0 >> 16 == 3 && self.0 & 0xffff <= 0xff
    }
}

/// The type byte of a frontend (client) message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrontendType(pub(crate) u8);

impl FrontendType {
    pub(crate) const BIND: Self = Self(b'B');
    pub(crate) const CLOSE: Self = Self(b'C');
    pub(crate) const COPY_DATA: Self = Self(b'd');
    pub(crate) const COPY_DONE: Self = Self(b'c');
    pub(crate) const COPY_FAIL: Self = Self(b'f');
    pub(crate) const DESCRIBE: Self = Self(b'D');
    pub(crate) const EXECUTE: Self = Self(b'E');
    pub(crate) const FLUSH: Self = Self(b'H');
    pub(crate) const FUNCTION_CALL: Self = Self(b'F');
    pub(crate) const PARSE: Self = Self(b'P');
    /// PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse.
    pub(crate) const PASSWORD: Self = Self(b'p');
    pub(crate) const QUERY: Self = Self(b'Q');
    pub(crate) const SYNC: Self = Self(b'S');
    pub(crate) const TERMINATE: Self = Self(b'X');

    const ALL: [Self; 14] = [
        Self::BIND,
        Self::CLOSE,
        Self::COPY_DATA,
        Self::COPY_DONE,
        Self::COPY_FAIL,
        Self::DESCRIBE,
        Self::EXECUTE,
        Self::FLUSH,
        Self::FUNCTION_CALL,
        Self::PARSE,
        Self::PASSWORD,
        Self::QUERY,
        Self::SYNC,
        Self::TERMINATE,
    ];

    pub(crate) fn is_known(self) -> bool {
        Self::ALL.contains(&self)
    }
}

/// The type byte of a backend (server) message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BackendType(pub(crate) u8);

impl BackendType {
    pub(crate) const AUTHENTICATION: Self = Self(b'R');
    pub(crate) const BACKEND_KEY_DATA: Self = Self(b'K');
    pub(crate) const BIND_COMPLETE: Self = Self(b'2');
    pub(crate) const CLOSE_COMPLETE: Self = Self(b'3');
    pub(crate) const COMMAND_COMPLETE: Self = Self(b'C');
    pub(crate) const COPY_BOTH_RESPONSE: Self = Self(b'W');
    pub(crate) const COPY_DATA: Self = Self(b'd');
    pub(crate) const COPY_DONE: Self = Self(b'c');
    pub(crate) const COPY_IN_RESPONSE: Self = Self(b'G');
    pub(crate) const COPY_OUT_RESPONSE: Self = Self(b'H');
    pub(crate) const DATA_ROW: Self = Self(b'D');
    pub(crate) const EMPTY_QUERY_RESPONSE: Self = Self(b'I');
    pub(crate) const ERROR_RESPONSE: Self = Self(b'E');
    pub(crate) const FUNCTION_CALL_RESPONSE: Self = Self(b'V');
    pub(crate) const NEGOTIATE_PROTOCOL_VERSION: Self = Self(b'v');
    pub(crate) const NO_DATA: Self = Self(b'n');
    pub(crate) const NOTICE_RESPONSE: Self = Self(b'N');
    pub(crate) const NOTIFICATION_RESPONSE: Self = Self(b'A');
    pub(crate) const PARAMETER_DESCRIPTION: Self = Self(b't');
    pub(crate) const PARAMETER_STATUS: Self = Self(b'S');
    pub(crate) const PARSE_COMPLETE: Self = Self(b'1');
    pub(crate) const PORTAL_SUSPENDED: Self = Self(b's');
    pub(crate) const READY_FOR_QUERY: Self = Self(b'Z');
    pub(crate) const ROW_DESCRIPTION: Self = Self(b'T');

    const ALL: [Self; 24] = [
        Self::AUTHENTICATION,
        Self::BACKEND_KEY_DATA,
        Self::BIND_COMPLETE,
        Self::CLOSE_COMPLETE,
        Self::COMMAND_COMPLETE,
        Self::COPY_BOTH_RESPONSE,
        Self::COPY_DATA,
        Self::COPY_DONE,
        Self::COPY_IN_RESPONSE,
        Self::COPY_OUT_RESPONSE,
        Self::DATA_ROW,
        Self::EMPTY_QUERY_RESPONSE,
        Self::ERROR_RESPONSE,
        Self::FUNCTION_CALL_RESPONSE,
        Self::NEGOTIATE_PROTOCOL_VERSION,
        Self::NO_DATA,
        Self::NOTICE_RESPONSE,
        Self::NOTIFICATION_RESPONSE,
        Self::PARAMETER_DESCRIPTION,
        Self::PARAMETER_STATUS,
        Self::PARSE_COMPLETE,
        Self::PORTAL_SUSPENDED,
        Self::READY_FOR_QUERY,
        Self::ROW_DESCRIPTION,
    ];

    pub(crate) fn is_known(self) -> bool {
        Self::ALL.contains(&self)
    }
}

/// An authentication request code (the `int32` after an `R`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuthCode(pub(crate) u32);

impl AuthCode {
    pub(crate) const OK: Self = Self(0);
    pub(crate) const KERBEROS_V5: Self = Self(2);
    pub(crate) const CLEARTEXT_PASSWORD: Self = Self(3);
    pub(crate) const MD5_PASSWORD: Self = Self(5);
    pub(crate) const GSS: Self = Self(7);
    pub(crate) const GSS_CONTINUE: Self = Self(8);
    pub(crate) const SSPI: Self = Self(9);
    pub(crate) const SASL: Self = Self(10);
    pub(crate) const SASL_CONTINUE: Self = Self(11);
    pub(crate) const SASL_FINAL: Self = Self(12);

    /// The name adi reports, `None` for an unknown code.
    pub(crate) const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::OK => "ok",
            Self::KERBEROS_V5 => "kerberos_v5",
            Self::CLEARTEXT_PASSWORD => "cleartext_password",
            Self::MD5_PASSWORD => "md5_password",
            Self::GSS => "gss",
            Self::GSS_CONTINUE => "gss_continue",
            Self::SSPI => "sspi",
            Self::SASL => "sasl",
            Self::SASL_CONTINUE => "sasl_continue",
            Self::SASL_FINAL => "sasl_final",
            _ => return None,
        })
    }
}

/// An untyped startup-phase message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Untyped<'a> {
    /// StartupMessage: protocol version and the raw `name\0value\0...\0` parameter list.
    Startup { version: u32, params: &'a [u8] },
    /// SSLRequest.
    SslRequest,
    /// GSSENCRequest.
    GssEncRequest,
    /// CancelRequest: the backend pid and its secret key.
    Cancel { pid: u32 },
}

/// The header of an untyped message: `(total length, code)`, with the length checked against
/// the code (8 for SSLRequest/GSSENCRequest, 16 + key for CancelRequest, at most
/// [`MAX_STARTUP_LEN`] for a StartupMessage). Unknown codes are errors.
///
/// # Errors
///
/// `Incomplete` before 8 bytes (or as soon as the length is impossible: `Error`).
pub(crate) fn parse_untyped_header(i: &[u8]) -> PResult<'_, (usize, StartupCode)> {
    let (rest, len) = be_u32(i)?;
    let len = len as usize;
    // Reject an impossible length before waiting for the code.
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return fail(i);
    }
    let (rest, code) = be_u32(rest)?;
    let code = StartupCode(code);
    let ok = match code {
        StartupCode::SSL_REQUEST | StartupCode::GSSENC_REQUEST => len == 8,
        StartupCode::CANCEL_REQUEST => (16..=12 + MAX_CANCEL_KEY_LEN).contains(&len),
        // At least the terminating NUL of the parameter list.
        c if c.is_protocol_3() => len >= 9,
        _ => false,
    };
    if ok {
        Ok((rest, (len, code)))
    } else {
        fail(i)
    }
}

/// A whole untyped message.
///
/// # Errors
///
/// `Incomplete` while bytes are missing; `Error` for a bad header or parameter list.
pub(crate) fn parse_untyped(i: &[u8]) -> PResult<'_, Untyped<'_>> {
    let (rest, (len, code)) = parse_untyped_header(i)?;
    let (rest, body) = take(len - 8).parse(rest)?;
    let msg = match code {
        StartupCode::SSL_REQUEST => Untyped::SslRequest,
        StartupCode::GSSENC_REQUEST => Untyped::GssEncRequest,
        StartupCode::CANCEL_REQUEST => {
            let pid = body
                .get(..4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            Untyped::Cancel { pid }
        }
        c => {
            if startup_params_ok(body, true) != Some(true) {
                return fail(i);
            }
            Untyped::Startup {
                version: c.0,
                params: body,
            }
        }
    };
    Ok((rest, msg))
}

/// The header of a typed message: `(type, body length)`.
///
/// # Errors
///
/// `Incomplete` before 5 bytes; `Error` for a length below 4 or above [`MAX_MESSAGE_LEN`].
pub(crate) fn parse_message_header(i: &[u8]) -> PResult<'_, (u8, usize)> {
    let (rest, ty) = be_u8(i)?;
    let (rest, len) = be_u32(rest)?;
    let len = len as usize;
    if !(4..=MAX_MESSAGE_LEN).contains(&len) {
        return fail(i);
    }
    Ok((rest, (ty, len - 4)))
}

/// A NUL-terminated string at the start of `i`: `(string, rest)`.
pub(crate) fn cstring(i: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = i.iter().position(|&b| b == 0)?;
    Some((i.get(..end)?, i.get(end + 1..)?))
}

fn int16(i: &[u8]) -> Option<(i16, &[u8])> {
    let b = i.get(..2)?;
    Some((i16::from_be_bytes([b[0], b[1]]), i.get(2..)?))
}

fn int32(i: &[u8]) -> Option<(i32, &[u8])> {
    let b = i.get(..4)?;
    Some((i32::from_be_bytes([b[0], b[1], b[2], b[3]]), i.get(4..)?))
}

pub(crate) fn uint32(i: &[u8]) -> Option<(u32, &[u8])> {
    let b = i.get(..4)?;
    Some((u32::from_be_bytes([b[0], b[1], b[2], b[3]]), i.get(4..)?))
}

/// Skips `n` bytes.
fn skip(i: &[u8], n: usize) -> Option<&[u8]> {
    i.get(n..)
}

/// A count (`int16`) that must be in `0..=max`.
fn count(i: &[u8], max: usize) -> Option<(usize, &[u8])> {
    let (n, rest) = int16(i)?;
    let n = usize::try_from(n).ok()?;
    (n <= max).then_some((n, rest))
}

/// Parameter names are identifiers: printable ASCII without spaces.
fn is_name(s: &[u8]) -> bool {
    !s.is_empty() && s.len() <= 64 && s.iter().all(|&b| b.is_ascii_graphic())
}

/// Text a human or a driver wrote: no control bytes except whitespace (UTF-8 allowed).
pub(crate) fn is_text(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| b >= 0x20 || b == b'\t' || b == b'\n' || b == b'\r')
}

/// Checks a StartupMessage parameter list (`name\0value\0 ... \0`): `Some(true)` when
/// `complete` and the list ends exactly at the end of `body`, `Some(false)` when the bytes
/// so far are consistent but the list is unfinished (only when `!complete`), `None` when it
/// is malformed.
pub(crate) fn startup_params_ok(body: &[u8], complete: bool) -> Option<bool> {
    let mut rest = body;
    loop {
        match rest {
            [] => return if complete { None } else { Some(false) },
            [0] => return Some(complete),
            _ => {}
        }
        let Some((name, after)) = cstring(rest) else {
            // An unfinished name: plausible only while incomplete.
            let ok = !complete && rest.len() <= 64 && rest.iter().all(u8::is_ascii_graphic);
            return ok.then_some(false);
        };
        if !is_name(name) {
            return None;
        }
        let Some((value, after)) = cstring(after) else {
            return (!complete && is_text(after)).then_some(false);
        };
        if !is_text(value) {
            return None;
        }
        rest = after;
    }
}

/// The parameters of a StartupMessage body, in wire order.
pub(crate) fn startup_params(body: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let (name, after) = cstring(rest)?;
        if name.is_empty() {
            return None;
        }
        let (value, after) = cstring(after)?;
        rest = after;
        Some((name, value))
    })
}

/// A body that is exactly one NUL-terminated text string.
fn single_text(body: &[u8]) -> bool {
    matches!(cstring(body), Some((s, [])) if is_text(s))
}

/// ErrorResponse / NoticeResponse fields: `(code byte, string)` pairs ending with a NUL.
pub(crate) fn error_fields(body: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let (&code, after) = rest.split_first()?;
        if code == 0 {
            return None;
        }
        let (value, after) = cstring(after)?;
        rest = after;
        Some((code, value))
    })
}

fn error_fields_ok(body: &[u8]) -> bool {
    let mut rest = body;
    let mut fields = 0;
    loop {
        match rest.split_first() {
            Some((0, [])) => return fields > 0,
            Some((&code, after)) if code.is_ascii_alphabetic() => {
                let Some((value, after)) = cstring(after) else {
                    return false;
                };
                if !is_text(value) {
                    return false;
                }
                rest = after;
                fields += 1;
            }
            _ => return false,
        }
    }
}

/// Checks a whole frontend message body of type `ty`.
pub(crate) fn frontend_body_ok(ty: FrontendType, body: &[u8]) -> bool {
    match ty {
        FrontendType::QUERY | FrontendType::COPY_FAIL => single_text(body),
        FrontendType::PARSE => parse_body_ok(body),
        FrontendType::BIND => bind_body_ok(body).is_some(),
        FrontendType::EXECUTE => {
            matches!(cstring(body), Some((p, rest)) if is_text(p) && rest.len() == 4)
        }
        FrontendType::DESCRIBE | FrontendType::CLOSE => {
            matches!(body.split_first(), Some((b'S' | b'P', rest)) if single_text(rest))
        }
        FrontendType::SYNC
        | FrontendType::FLUSH
        | FrontendType::TERMINATE
        | FrontendType::COPY_DONE => body.is_empty(),
        FrontendType::PASSWORD => password_body_ok(body),
        FrontendType::COPY_DATA => true,
        FrontendType::FUNCTION_CALL => function_call_ok(body).is_some(),
        _ => false,
    }
}

/// PasswordMessage (a password or MD5 hash, NUL-terminated), SASLInitialResponse
/// (mechanism, `int32` length or -1, data) or SASLResponse (SCRAM's `c=...,r=...,p=...`).
/// GSSAPI/SSPI tokens are binary and not recognised here.
fn password_body_ok(body: &[u8]) -> bool {
    if single_text(body) {
        return true;
    }
    if let Some((mech, rest)) = cstring(body) {
        if is_name(mech) {
            if let Some((len, data)) = int32(rest) {
                return usize::try_from(len)
                    .map_or(len == -1 && data.is_empty(), |l| l == data.len());
            }
        }
    }
    body.starts_with(b"c=") && is_text(body)
}

/// FunctionCall: function OID, argument formats, arguments, result format.
fn function_call_ok(body: &[u8]) -> Option<()> {
    let (_oid, rest) = int32(body)?;
    let (formats, rest) = count(rest, usize::from(u16::MAX))?;
    let rest = skip(rest, formats * 2)?;
    let (args, mut rest) = count(rest, usize::from(u16::MAX))?;
    for _ in 0..args {
        rest = value(rest)?;
    }
    (rest.len() == 2).then_some(())
}

/// Skips one `int32` length-prefixed value (-1 = NULL, no bytes).
fn value(i: &[u8]) -> Option<&[u8]> {
    let (len, after) = int32(i)?;
    match usize::try_from(len) {
        Ok(len) => skip(after, len),
        Err(_) if len == -1 => Some(after),
        Err(_) => None,
    }
}

/// Parse: statement name, query, parameter type OIDs.
fn parse_body_ok(body: &[u8]) -> bool {
    let Some((name, rest)) = cstring(body) else {
        return false;
    };
    let Some((query, rest)) = cstring(rest) else {
        return false;
    };
    let Some((n, rest)) = count(rest, usize::from(u16::MAX)) else {
        return false;
    };
    is_text(name) && is_text(query) && rest.len() == n * 4
}

/// Bind: portal, statement, formats, parameters, result formats.
fn bind_body_ok(body: &[u8]) -> Option<()> {
    let (portal, rest) = cstring(body)?;
    let (stmt, rest) = cstring(rest)?;
    let (formats, rest) = count(rest, usize::from(u16::MAX))?;
    let mut rest = skip(rest, formats * 2)?;
    let (params, after) = count(rest, usize::from(u16::MAX))?;
    rest = after;
    for _ in 0..params {
        rest = value(rest)?;
    }
    let (results, rest) = count(rest, usize::from(u16::MAX))?;
    (is_text(portal) && is_text(stmt) && rest.len() == results * 2).then_some(())
}

/// Checks a whole backend message body of type `ty`.
pub(crate) fn backend_body_ok(ty: BackendType, body: &[u8]) -> bool {
    match ty {
        BackendType::AUTHENTICATION => auth_body_ok(body),
        BackendType::PARAMETER_STATUS => {
            matches!(cstring(body), Some((name, rest)) if is_name(name) && single_text(rest))
        }
        BackendType::BACKEND_KEY_DATA => (8..=4 + MAX_CANCEL_KEY_LEN).contains(&body.len()),
        BackendType::READY_FOR_QUERY => matches!(body, [b'I' | b'T' | b'E']),
        BackendType::ERROR_RESPONSE | BackendType::NOTICE_RESPONSE => error_fields_ok(body),
        BackendType::COMMAND_COMPLETE => single_text(body),
        BackendType::ROW_DESCRIPTION => row_description_ok(body).is_some(),
        BackendType::DATA_ROW => data_row_ok(body).is_some(),
        BackendType::PARSE_COMPLETE
        | BackendType::BIND_COMPLETE
        | BackendType::CLOSE_COMPLETE
        | BackendType::NO_DATA
        | BackendType::EMPTY_QUERY_RESPONSE
        | BackendType::PORTAL_SUSPENDED
        | BackendType::COPY_DONE => body.is_empty(),
        BackendType::PARAMETER_DESCRIPTION => {
            matches!(count(body, usize::from(u16::MAX)), Some((n, rest)) if rest.len() == n * 4)
        }
        BackendType::NEGOTIATE_PROTOCOL_VERSION => negotiate_ok(body).is_some(),
        BackendType::NOTIFICATION_RESPONSE => {
            let Some((_, rest)) = int32(body) else {
                return false;
            };
            matches!(cstring(rest), Some((channel, rest)) if is_text(channel) && single_text(rest))
        }
        BackendType::COPY_IN_RESPONSE
        | BackendType::COPY_OUT_RESPONSE
        | BackendType::COPY_BOTH_RESPONSE => match body.split_first() {
            Some((0 | 1, rest)) => {
                matches!(count(rest, MAX_COLUMNS), Some((n, rest)) if rest.len() == n * 2)
            }
            _ => false,
        },
        BackendType::COPY_DATA => true,
        BackendType::FUNCTION_CALL_RESPONSE => value(body).is_some_and(<[u8]>::is_empty),
        _ => false,
    }
}

/// Authentication request: the code and the data its code implies.
fn auth_body_ok(body: &[u8]) -> bool {
    let Some((code, rest)) = uint32(body) else {
        return false;
    };
    match AuthCode(code) {
        AuthCode::OK
        | AuthCode::KERBEROS_V5
        | AuthCode::CLEARTEXT_PASSWORD
        | AuthCode::GSS
        | AuthCode::SSPI => rest.is_empty(),
        AuthCode::MD5_PASSWORD => rest.len() == 4,
        // SASL: mechanism names, each NUL-terminated, then an empty one.
        AuthCode::SASL => sasl_mechanisms(rest).is_some(),
        AuthCode::GSS_CONTINUE => !rest.is_empty(),
        // SCRAM server-first / server-final messages are printable text.
        AuthCode::SASL_CONTINUE | AuthCode::SASL_FINAL => !rest.is_empty() && is_text(rest),
        _ => false,
    }
}

/// The SASL mechanism list of an AuthenticationSASL body (after the code): the number of
/// mechanisms, or `None` when malformed.
pub(crate) fn sasl_mechanisms(mut rest: &[u8]) -> Option<usize> {
    let mut n = 0;
    loop {
        let (name, after) = cstring(rest)?;
        if name.is_empty() {
            return (after.is_empty() && n > 0).then_some(n);
        }
        if !is_name(name) {
            return None;
        }
        n += 1;
        rest = after;
    }
}

/// NegotiateProtocolVersion: newest minor version supported, then the unrecognised options.
fn negotiate_ok(body: &[u8]) -> Option<()> {
    let (_minor, rest) = int32(body)?;
    let (n, mut rest) = uint32(rest)?;
    for _ in 0..n.min(1024) {
        let (name, after) = cstring(rest)?;
        if !is_name(name) {
            return None;
        }
        rest = after;
    }
    rest.is_empty().then_some(())
}

fn row_description_ok(body: &[u8]) -> Option<()> {
    let (n, mut rest) = count(body, MAX_COLUMNS)?;
    for _ in 0..n {
        let (name, after) = cstring(rest)?;
        if !is_text(name) {
            return None;
        }
        // table oid, column number, type oid, type size, type modifier, format code
        rest = skip(after, 4 + 2 + 4 + 2 + 4 + 2)?;
    }
    rest.is_empty().then_some(())
}

fn data_row_ok(body: &[u8]) -> Option<()> {
    let (n, mut rest) = count(body, MAX_COLUMNS)?;
    for _ in 0..n {
        rest = value(rest)?;
    }
    rest.is_empty().then_some(())
}
