//! nom 8 parsers for TDS, the Tabular Data Stream protocol of Microsoft SQL Server
//! ([MS-TDS], <https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-tds/>): the
//! packet header (2.2.3.1), PRELOGIN options (2.2.6.5), the LOGIN7 fixed part (2.2.6.4),
//! ALL_HEADERS (2.2.5.3), RPC procedure ids (2.2.6.6) and the token stream's framing (2.2.7).
//!
//! Outer parsers are `streaming` (`Err::Incomplete`: a longer input could still parse).
//! Nothing here allocates.

use nom::bytes::streaming::take;
use nom::number::streaming::{be_u16, be_u8, le_u16, le_u32};
use nom::Parser;

use crate::parsing::{fail, PResult};

/// The packet header: type, status, length, SPID, packet id, window (2.2.3.1).
pub(crate) const HEADER_LEN: usize = 8;
/// Largest packet: the negotiated packet size is at most 32767 (LOGIN7 PacketSize,
/// 2.2.6.4); adi allows 32768 as the brief rounds it.
pub(crate) const MAX_PACKET_LEN: usize = 32_768;
/// Largest LOGIN7 record (2.2.6.4: "the maximum length of a LOGIN7 message is 128K bytes").
pub(crate) const MAX_LOGIN7_LEN: usize = 128 * 1024;
/// The LOGIN7 fixed part of TDS 7.0/7.1 (2.2.6.4; 7.2+ adds ChangePassword and cbSSPILong
/// for 94 bytes): variable data starts no earlier.
pub(crate) const LOGIN7_FIXED_LEN_V70: usize = 86;
/// Most PRELOGIN options adi reads: nine are defined (2.2.6.5).
pub(crate) const MAX_PRELOGIN_OPTIONS: usize = 16;
/// Largest TLS record payload (RFC 8446 section 5.2: 2^14 + 256 for ciphertext; RFC 5246
/// allows 2^14 + 2048).
pub(crate) const MAX_TLS_RECORD: usize = 16_384 + 2048;

/// A packet type (2.2.3.1.1). Unknown values parse; the header parser rejects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PacketType(pub(crate) u8);

impl PacketType {
    pub(crate) const SQL_BATCH: Self = Self(0x01);
    pub(crate) const RPC: Self = Self(0x03);
    pub(crate) const TABULAR_RESULT: Self = Self(0x04);
    pub(crate) const ATTENTION: Self = Self(0x06);
    pub(crate) const BULK_LOAD: Self = Self(0x07);
    pub(crate) const FEDAUTH_TOKEN: Self = Self(0x08);
    pub(crate) const TRANSACTION_MANAGER: Self = Self(0x0e);
    pub(crate) const LOGIN7: Self = Self(0x10);
    pub(crate) const SSPI: Self = Self(0x11);
    pub(crate) const PRELOGIN: Self = Self(0x12);

    /// The spec's name, for a known type.
    pub(crate) fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SQL_BATCH => "SQL_BATCH",
            Self::RPC => "RPC",
            Self::TABULAR_RESULT => "TABULAR_RESULT",
            Self::ATTENTION => "ATTENTION",
            Self::BULK_LOAD => "BULK_LOAD",
            Self::FEDAUTH_TOKEN => "FEDAUTH_TOKEN",
            Self::TRANSACTION_MANAGER => "TRANSACTION_MANAGER",
            Self::LOGIN7 => "LOGIN7",
            Self::SSPI => "SSPI",
            Self::PRELOGIN => "PRELOGIN",
            _ => return None,
        })
    }
}

/// Packet status bits (2.2.3.1.2).
pub(crate) struct Status;

impl Status {
    /// End of message: the last packet of a message.
    pub(crate) const EOM: u8 = 0x01;
    /// Bits the spec defines: EOM, IGNORE (0x02), EVENT_NOTIFICATION (0x04, obsolete),
    /// RESETCONNECTION (0x08), RESETCONNECTIONSKIPTRAN (0x10).
    const KNOWN: u8 = 0x1f;
}

/// A packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PacketHeader {
    pub(crate) ptype: PacketType,
    pub(crate) status: u8,
    /// The whole packet, header included: `HEADER_LEN..=MAX_PACKET_LEN`.
    pub(crate) length: usize,
}

impl PacketHeader {
    pub(crate) const fn is_eom(&self) -> bool {
        self.status & Status::EOM != 0
    }
}

/// The packet header, rejecting an unknown type on the first byte, unknown status bits on
/// the second, a length outside `HEADER_LEN..=MAX_PACKET_LEN` on the fourth and a non-zero
/// window on the eighth.
pub(crate) fn parse_packet_header(i: &[u8]) -> PResult<'_, PacketHeader> {
    let (rest, t) = be_u8(i)?;
    let ptype = PacketType(t);
    if ptype.name().is_none() {
        return fail(i);
    }
    let (rest, status) = be_u8(rest)?;
    if status & !Status::KNOWN != 0 {
        return fail(i);
    }
    let (rest, len) = be_u16(rest)?;
    let length = usize::from(len);
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) {
        return fail(i);
    }
    let (rest, _spid) = be_u16(rest)?;
    let (rest, _packet_id) = be_u8(rest)?;
    let (rest, window) = be_u8(rest)?;
    if window != 0 {
        return fail(i);
    }
    Ok((
        rest,
        PacketHeader {
            ptype,
            status,
            length,
        },
    ))
}

/// PRELOGIN option tokens (2.2.6.5).
pub(crate) struct PreloginToken;

impl PreloginToken {
    pub(crate) const VERSION: u8 = 0x00;
    pub(crate) const ENCRYPTION: u8 = 0x01;
    /// The highest defined token (FEDAUTHREQUIRED 0x06, NONCEOPT 0x07, 0x08 reserved).
    const LAST: u8 = 0x08;
    pub(crate) const TERMINATOR: u8 = 0xff;
}

/// The name of a PRELOGIN ENCRYPTION value (2.2.6.5), the 0x80 client-certificate bit aside.
pub(crate) fn encryption_name(value: u8) -> Option<&'static str> {
    Some(match value & 0x7f {
        0 => "ENCRYPT_OFF",
        1 => "ENCRYPT_ON",
        2 => "ENCRYPT_NOT_SUP",
        3 => "ENCRYPT_REQ",
        _ => return None,
    })
}

/// What a PRELOGIN option table said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prelogin {
    /// The ENCRYPTION value, when present and inside the bytes given.
    pub(crate) encryption: Option<u8>,
    /// True when every option's data lies inside the bytes given.
    pub(crate) complete: bool,
}

/// A PRELOGIN option table: VERSION first (6 bytes), known tokens, offsets past the table
/// and data inside `body_len`, then the terminator. `i` may be a prefix of the body.
pub(crate) fn parse_prelogin(i: &[u8], body_len: usize) -> PResult<'_, Prelogin> {
    let mut rest = i;
    let mut options = [(0u8, 0usize, 0usize); MAX_PRELOGIN_OPTIONS];
    let mut n = 0;
    loop {
        let (r, token) = be_u8(rest)?;
        if token == PreloginToken::TERMINATOR {
            rest = r;
            break;
        }
        let (r, offset) = be_u16(r)?;
        let (r, len) = be_u16(r)?;
        let (offset, len) = (usize::from(offset), usize::from(len));
        let version_ok = n > 0 || (token == PreloginToken::VERSION && len == 6);
        if token > PreloginToken::LAST
            || !version_ok
            || n == MAX_PRELOGIN_OPTIONS
            || offset + len > body_len
        {
            return fail(i);
        }
        options[n] = (token, offset, len);
        n += 1;
        rest = r;
    }
    let table_end = i.len() - rest.len();
    if n == 0 {
        return fail(i);
    }
    let mut out = Prelogin {
        encryption: None,
        complete: true,
    };
    for &(token, offset, len) in &options[..n] {
        if offset < table_end {
            return fail(i);
        }
        let Some(data) = i.get(offset..offset + len) else {
            out.complete = false;
            continue;
        };
        if token == PreloginToken::ENCRYPTION {
            let value = data.first().copied();
            if len != 1 || value.and_then(encryption_name).is_none() {
                return fail(i);
            }
            out.encryption = value;
        }
    }
    Ok((rest, out))
}

/// A TLS record header (RFC 8446 section 5.1): content type 20-23, legacy version 3.x, a
/// length within the limit. Returns the record's payload length.
pub(crate) fn parse_tls_record_header(i: &[u8]) -> PResult<'_, usize> {
    let (rest, ctype) = be_u8(i)?;
    if !(20..=23).contains(&ctype) {
        return fail(i);
    }
    let (rest, major) = be_u8(rest)?;
    let (rest, minor) = be_u8(rest)?;
    if major != 3 || minor > 4 {
        return fail(i);
    }
    let (rest, len) = be_u16(rest)?;
    let len = usize::from(len);
    if len == 0 || len > MAX_TLS_RECORD {
        return fail(i);
    }
    Ok((rest, len))
}

/// Known LOGIN7 TDSVersion values (2.2.6.4, little-endian on the wire).
pub(crate) fn tds_version_name(v: u32) -> Option<&'static str> {
    Some(match v {
        0x7000_0000 => "7.0",
        0x7100_0000 => "7.1",
        0x7100_0001 => "7.1 SP1",
        0x7209_0002 => "7.2",
        0x730a_0003 => "7.3A",
        0x730b_0003 => "7.3B",
        0x7400_0004 => "7.4",
        0x0800_0000 => "8.0",
        _ => return None,
    })
}

/// The LOGIN7 fields adi reads: (offset, length in UTF-16 code units) pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Login7 {
    pub(crate) length: usize,
    pub(crate) tds_version: u32,
    pub(crate) host: (usize, usize),
    pub(crate) user: (usize, usize),
    pub(crate) app: (usize, usize),
    pub(crate) server: (usize, usize),
    pub(crate) database: (usize, usize),
}

/// The first 8 bytes of LOGIN7: Length (`94..=MAX_LOGIN7_LEN` and at least `body_len`, the
/// bytes of this message) and a known TDSVersion.
pub(crate) fn parse_login7_start(i: &[u8], body_len: usize) -> PResult<'_, (usize, u32)> {
    let (rest, len) = le_u32(i)?;
    let length = usize::try_from(len).unwrap_or(usize::MAX);
    if !(LOGIN7_FIXED_LEN_V70..=MAX_LOGIN7_LEN).contains(&length) || length < body_len {
        return fail(i);
    }
    let (rest, version) = le_u32(rest)?;
    if tds_version_name(version).is_none() {
        return fail(i);
    }
    Ok((rest, (length, version)))
}

/// The LOGIN7 fixed part (2.2.6.4): the start, then the OffsetLength table, every string
/// inside `Length` and past the fixed part.
pub(crate) fn parse_login7(i: &[u8], body_len: usize) -> PResult<'_, Login7> {
    let (rest, (length, tds_version)) = parse_login7_start(i, body_len)?;
    // PacketSize .. ClientLCID: 28 bytes up to ibHostName (offset 36).
    let (mut rest, _) = take(28usize).parse(rest)?;
    let mut pairs = [(0usize, 0usize); 9];
    for (n, pair) in pairs.iter_mut().enumerate() {
        let (r, ib) = le_u16(rest)?;
        let (r, cch) = le_u16(r)?;
        let (ib, cch) = (usize::from(ib), usize::from(cch));
        // Entry 5 is ibExtension/cbExtension, counted in bytes; the others in characters.
        let bytes = if n == 5 { cch } else { cch * 2 };
        if bytes > 0 && (ib < LOGIN7_FIXED_LEN_V70 || ib + bytes > length) {
            return fail(i);
        }
        *pair = (ib, cch);
        rest = r;
    }
    Ok((
        rest,
        Login7 {
            length,
            tds_version,
            host: pairs[0],
            user: pairs[1],
            app: pairs[3],
            server: pairs[4],
            database: pairs[8],
        },
    ))
}

/// ALL_HEADERS (2.2.5.3): TotalLength, then headers of HeaderLength (>= 6) and a known
/// HeaderType (1 query notifications, 2 transaction descriptor, 3 trace activity) filling it.
pub(crate) fn parse_all_headers(i: &[u8], body_len: usize) -> PResult<'_, ()> {
    let (mut rest, total) = le_u32(i)?;
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if total < 4 + 6 || total > body_len {
        return fail(i);
    }
    let mut left = total - 4;
    while left > 0 {
        let (r, len) = le_u32(rest)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let (r, htype) = le_u16(r)?;
        if len < 6 || len > left || !(1..=3).contains(&htype) {
            return fail(i);
        }
        let (r, _) = take(len - 6).parse(r)?;
        left -= len;
        rest = r;
    }
    Ok((rest, ()))
}

/// True for a UTF-16LE code unit that plausibly starts or continues SQL text: not a C0
/// control other than tab, CR and LF.
pub(crate) fn is_text_unit(u: u16) -> bool {
    u >= 0x20 || matches!(u, 0x09 | 0x0a | 0x0d)
}

/// Checks up to `n` UTF-16LE code units at the start of `i`; `Incomplete` when fewer than
/// `n` are there (and fewer than `avail_units`, the units the message holds).
pub(crate) fn check_text(i: &[u8], n: usize) -> PResult<'_, ()> {
    let mut rest = i;
    for _ in 0..n {
        let (r, u) = le_u16(rest)?;
        if !is_text_unit(u) {
            return fail(i);
        }
        rest = r;
    }
    Ok((rest, ()))
}

/// RPC: NameLenProcID, then the ProcID (0xFFFF switch: 1..=15) or that many UTF-16 units of
/// name (2.2.6.6). Returns the well-known procedure's name or the name's bytes.
pub(crate) fn parse_rpc_name(i: &[u8]) -> PResult<'_, Result<&'static str, &[u8]>> {
    let (rest, len) = le_u16(i)?;
    if len == 0xffff {
        let (rest, id) = le_u16(rest)?;
        return match proc_name(id) {
            Some(name) => Ok((rest, Ok(name))),
            None => fail(i),
        };
    }
    let len = usize::from(len);
    if len == 0 || len > 128 {
        return fail(i);
    }
    check_text(rest, len)?;
    let (rest, name) = take(len * 2).parse(rest)?;
    Ok((rest, Err(name)))
}

/// Well-known stored procedure ids (2.2.6.6, ProcID).
pub(crate) fn proc_name(id: u16) -> Option<&'static str> {
    Some(match id {
        1 => "sp_cursor",
        2 => "sp_cursoropen",
        3 => "sp_cursorprepare",
        4 => "sp_cursorexecute",
        5 => "sp_cursorprepexec",
        6 => "sp_cursorunprepare",
        7 => "sp_cursorfetch",
        8 => "sp_cursoroption",
        9 => "sp_cursorclose",
        10 => "sp_executesql",
        11 => "sp_prepare",
        12 => "sp_execute",
        13 => "sp_prepexec",
        14 => "sp_prepexecrpc",
        15 => "sp_unprepare",
        _ => return None,
    })
}

/// Data token types (2.2.7) whose framing adi follows.
pub(crate) struct Token;

impl Token {
    pub(crate) const COLMETADATA: u8 = 0x81;
    pub(crate) const ERROR: u8 = 0xaa;
    pub(crate) const LOGINACK: u8 = 0xad;
    pub(crate) const ENVCHANGE: u8 = 0xe3;
    pub(crate) const DONE: u8 = 0xfd;
    pub(crate) const DONEPROC: u8 = 0xfe;
    pub(crate) const DONEINPROC: u8 = 0xff;
    /// DONE status bits defined by 2.2.7.6: MORE, ERROR, INXACT, COUNT, ATTN, SRVERROR.
    pub(crate) const DONE_KNOWN: u16 = 0x0001 | 0x0002 | 0x0004 | 0x0010 | 0x0020 | 0x0100;
    pub(crate) const DONE_ERROR: u16 = 0x0002;
    pub(crate) const DONE_COUNT: u16 = 0x0010;
}

/// How a token is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenFrame {
    /// USHORT length, then that many bytes.
    U16,
    /// ULONG length, then that many bytes.
    U32,
    /// A fixed number of bytes.
    Fixed(usize),
    /// A known token whose length needs the column metadata: adi stops walking there.
    Opaque,
}

/// The framing of a known token type (2.2.7), `None` for an unknown one.
pub(crate) fn token_frame(t: u8) -> Option<TokenFrame> {
    Some(match t {
        // ORDER, ERROR, INFO, LOGINACK, ENVCHANGE, SSPI, COLINFO, TABNAME.
        0xa9 | 0xaa | 0xab | 0xad | 0xe3 | 0xed | 0xa5 | 0xa4 => TokenFrame::U16,
        // SESSIONSTATE, FEDAUTHINFO.
        0xe4 | 0xee => TokenFrame::U32,
        // DONE, DONEPROC, DONEINPROC: Status, CurCmd, DoneRowCount (ULONGLONG since 7.2).
        0xfd..=0xff => TokenFrame::Fixed(12),
        // RETURNSTATUS.
        0x79 => TokenFrame::Fixed(4),
        // COLMETADATA, ALTMETADATA, FEATUREEXTACK, RETURNVALUE, ROW, NBCROW, ALTROW.
        0x81 | 0x88 | 0xae | 0xac | 0xd1 | 0xd2 | 0xd3 => TokenFrame::Opaque,
        _ => return None,
    })
}

/// One framed token: (type, data after the length). `Ok((_, None))` for an opaque token.
pub(crate) fn parse_token(i: &[u8]) -> PResult<'_, (u8, Option<&[u8]>)> {
    let (rest, t) = be_u8(i)?;
    let Some(frame) = token_frame(t) else {
        return fail(i);
    };
    let (rest, data) = match frame {
        TokenFrame::U16 => {
            let (r, n) = le_u16(rest)?;
            take(usize::from(n)).parse(r)?
        }
        TokenFrame::U32 => {
            let (r, n) = le_u32(rest)?;
            take(n).parse(r)?
        }
        TokenFrame::Fixed(n) => take(n).parse(rest)?,
        TokenFrame::Opaque => return Ok((rest, (t, None))),
    };
    if matches!(t, Token::DONE | Token::DONEPROC | Token::DONEINPROC) {
        let (_, status) = le_u16(data)?;
        if status & !Token::DONE_KNOWN != 0 {
            return fail(i);
        }
    }
    Ok((rest, (t, Some(data))))
}
