//! nom 8 parsers for the MySQL client/server protocol, which MariaDB speaks too
//! (<https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html>,
//! <https://mariadb.com/kb/en/clientserver-protocol/>).
//!
//! Every packet is `int<3>` little-endian payload length, `int<1>` sequence id, payload. The
//! outer frame is `streaming` (`Err::Incomplete` = a longer input could still parse); the
//! payload readers below see a whole payload (or a prefix, where they say so) and never
//! allocate, so the probe and the session share them.

use nom::number::streaming::{le_u24, le_u8};

use crate::parsing::PResult;

/// Largest payload of one packet, `2^24 - 1`: a payload of exactly this length is continued
/// in the next packet ("Sending More Than 16Mb").
pub(crate) const MAX_PAYLOAD_LEN: usize = 0xff_ffff;
/// Longest server version string: `SERVER_VERSION_LENGTH` (60) in `include/mysql_com.h`.
pub(crate) const MAX_SERVER_VERSION_LEN: usize = 60;
/// Longest greeting adi accepts: the fixed part is 45 bytes plus the version, the
/// auth-plugin data and the plugin name; real greetings are 70-130 bytes.
pub(crate) const MAX_GREETING_LEN: usize = 512;
/// Longest user name and schema name: `USERNAME_CHAR_LENGTH` (32, MySQL 8: 32 chars of up to
/// 4 bytes) and `NAME_CHAR_LEN` (64 chars) in `include/mysql_com.h`, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 256;

/// The protocol version byte of a HandshakeV10 greeting.
pub(crate) const PROTOCOL_VERSION_10: u8 = 10;

/// Capability flags (`include/mysql_com.h`, "Capabilities Flags").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Capabilities(pub(crate) u32);

impl Capabilities {
    pub(crate) const CONNECT_WITH_DB: u32 = 0x8;
    pub(crate) const COMPRESS: u32 = 0x20;
    pub(crate) const PROTOCOL_41: u32 = 0x200;
    pub(crate) const SSL: u32 = 0x800;
    pub(crate) const SECURE_CONNECTION: u32 = 0x8000;
    pub(crate) const PLUGIN_AUTH: u32 = 0x8_0000;
    pub(crate) const CONNECT_ATTRS: u32 = 0x10_0000;
    pub(crate) const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x20_0000;
    pub(crate) const DEPRECATE_EOF: u32 = 0x100_0000;
    pub(crate) const ZSTD_COMPRESSION: u32 = 0x400_0000;

    pub(crate) const fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }
}

/// A command byte (`enum_server_command`, `include/my_command.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Command(pub(crate) u8);

impl Command {
    pub(crate) const QUIT: Self = Self(0x01);
    pub(crate) const INIT_DB: Self = Self(0x02);
    pub(crate) const QUERY: Self = Self(0x03);
    pub(crate) const FIELD_LIST: Self = Self(0x04);
    pub(crate) const CREATE_DB: Self = Self(0x05);
    pub(crate) const DROP_DB: Self = Self(0x06);
    pub(crate) const REFRESH: Self = Self(0x07);
    pub(crate) const STATISTICS: Self = Self(0x09);
    pub(crate) const PROCESS_INFO: Self = Self(0x0a);
    pub(crate) const PROCESS_KILL: Self = Self(0x0c);
    pub(crate) const DEBUG: Self = Self(0x0d);
    pub(crate) const PING: Self = Self(0x0e);
    pub(crate) const CHANGE_USER: Self = Self(0x11);
    pub(crate) const BINLOG_DUMP: Self = Self(0x12);
    pub(crate) const REGISTER_SLAVE: Self = Self(0x15);
    pub(crate) const STMT_PREPARE: Self = Self(0x16);
    pub(crate) const STMT_EXECUTE: Self = Self(0x17);
    pub(crate) const STMT_SEND_LONG_DATA: Self = Self(0x18);
    pub(crate) const STMT_CLOSE: Self = Self(0x19);
    pub(crate) const STMT_RESET: Self = Self(0x1a);
    pub(crate) const SET_OPTION: Self = Self(0x1b);
    pub(crate) const STMT_FETCH: Self = Self(0x1c);
    pub(crate) const BINLOG_DUMP_GTID: Self = Self(0x1e);
    pub(crate) const RESET_CONNECTION: Self = Self(0x1f);
    /// MariaDB `COM_STMT_BULK_EXECUTE`.
    pub(crate) const STMT_BULK_EXECUTE: Self = Self(0xfa);

    /// The name adi reports, `None` for an unknown command.
    pub(crate) const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::QUIT => "quit",
            Self::INIT_DB => "init_db",
            Self::QUERY => "query",
            Self::FIELD_LIST => "field_list",
            Self::CREATE_DB => "create_db",
            Self::DROP_DB => "drop_db",
            Self::REFRESH => "refresh",
            Self::STATISTICS => "statistics",
            Self::PROCESS_INFO => "process_info",
            Self::PROCESS_KILL => "process_kill",
            Self::DEBUG => "debug",
            Self::PING => "ping",
            Self::CHANGE_USER => "change_user",
            Self::BINLOG_DUMP => "binlog_dump",
            Self::REGISTER_SLAVE => "register_slave",
            Self::STMT_PREPARE => "stmt_prepare",
            Self::STMT_EXECUTE => "stmt_execute",
            Self::STMT_SEND_LONG_DATA => "stmt_send_long_data",
            Self::STMT_CLOSE => "stmt_close",
            Self::STMT_RESET => "stmt_reset",
            Self::SET_OPTION => "set_option",
            Self::STMT_FETCH => "stmt_fetch",
            Self::BINLOG_DUMP_GTID => "binlog_dump_gtid",
            Self::RESET_CONNECTION => "reset_connection",
            Self::STMT_BULK_EXECUTE => "stmt_bulk_execute",
            _ => return None,
        })
    }

    /// Commands the server never answers.
    pub(crate) fn has_no_response(self) -> bool {
        matches!(
            self,
            Self::QUIT | Self::STMT_CLOSE | Self::STMT_SEND_LONG_DATA
        )
    }
}

/// The first payload byte of a generic response packet.
pub(crate) const OK_HEADER: u8 = 0x00;
pub(crate) const EOF_HEADER: u8 = 0xfe;
pub(crate) const ERR_HEADER: u8 = 0xff;
pub(crate) const LOCAL_INFILE_HEADER: u8 = 0xfb;

/// Status flag: another result set follows this one (`SERVER_MORE_RESULTS_EXISTS`).
pub(crate) const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// A packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: usize,
    pub(crate) seq: u8,
}

/// A packet header (4 bytes).
///
/// # Errors
///
/// `Incomplete` before 4 bytes.
pub(crate) fn parse_header(i: &[u8]) -> PResult<'_, Header> {
    let (rest, len) = le_u24(i)?;
    let (rest, seq) = le_u8(rest)?;
    Ok((
        rest,
        Header {
            len: len as usize,
            seq,
        },
    ))
}

/// A NUL-terminated string: `(string, rest)`.
pub(crate) fn cstring(i: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = i.iter().position(|&b| b == 0)?;
    Some((i.get(..end)?, i.get(end + 1..)?))
}

pub(crate) fn u16_le(i: &[u8]) -> Option<(u16, &[u8])> {
    let b = i.get(..2)?;
    Some((u16::from_le_bytes([b[0], b[1]]), i.get(2..)?))
}

pub(crate) fn u32_le(i: &[u8]) -> Option<(u32, &[u8])> {
    let b = i.get(..4)?;
    Some((u32::from_le_bytes([b[0], b[1], b[2], b[3]]), i.get(4..)?))
}

/// A length-encoded integer (`int<lenenc>`): 1, 3, 4 or 9 bytes. `0xfb` (NULL) and `0xff`
/// are not integers.
pub(crate) fn lenenc(i: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = i.split_first()?;
    let width = match first {
        0..=0xfa => return Some((u64::from(first), rest)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    let mut v = 0u64;
    for (k, &b) in bytes.iter().enumerate() {
        v |= u64::from(b) << (8 * k);
    }
    Some((v, rest.get(width..)?))
}

/// A length-encoded string.
pub(crate) fn lenenc_bytes(i: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = lenenc(i)?;
    let len = usize::try_from(len).ok()?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// Text a human or a driver wrote: no control bytes except whitespace (UTF-8 allowed).
pub(crate) fn is_text(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| b >= 0x20 || b == b'\t' || b == b'\n' || b == b'\r')
}

/// A name (user, schema, plugin): non-empty printable text, bounded.
fn is_name(s: &[u8]) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && s.iter().all(|&b| b >= 0x20 && b != 0x7f)
}

/// A HandshakeV10 greeting ("Protocol::HandshakeV10").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Greeting<'a> {
    pub(crate) server_version: &'a [u8],
    pub(crate) connection_id: u32,
    pub(crate) capabilities: Capabilities,
    pub(crate) auth_plugin: Option<&'a [u8]>,
}

/// How far the server version at the start of a greeting payload got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version<'a> {
    /// Its NUL arrived: the version and the bytes after the NUL.
    Done(&'a [u8], &'a [u8]),
    /// Plausible so far, unfinished.
    Partial,
}

/// The server version at the start of a greeting payload, `None` when the payload cannot be
/// a greeting.
pub(crate) fn greeting_version(payload: &[u8]) -> Option<Version<'_>> {
    let (&proto, rest) = payload.split_first()?;
    if proto != PROTOCOL_VERSION_10 {
        return None;
    }
    let window = rest
        .get(..rest.len().min(MAX_SERVER_VERSION_LEN + 1))
        .unwrap_or_default();
    let end = window.iter().position(|&b| b == 0);
    let version = window
        .get(..end.unwrap_or(window.len()))
        .unwrap_or_default();
    // Versions start with a digit ("8.0.36", "5.5.5-10.11.6-MariaDB-0+deb12u1").
    let ok =
        version.first().is_none_or(u8::is_ascii_digit) && version.iter().all(u8::is_ascii_graphic);
    match end {
        _ if !ok => None,
        Some(0) => None,
        Some(end) => Some(Version::Done(version, rest.get(end + 1..)?)),
        None if window.len() > MAX_SERVER_VERSION_LEN => None,
        None => Some(Version::Partial),
    }
}

/// A whole greeting payload.
pub(crate) fn parse_greeting(payload: &[u8]) -> Option<Greeting<'_>> {
    let Version::Done(server_version, rest) = greeting_version(payload)? else {
        return None;
    };
    let (connection_id, rest) = u32_le(rest)?;
    // auth-plugin-data-part-1 (8), filler (1, always 0)
    let (&filler, rest) = rest.get(8..)?.split_first()?;
    if filler != 0 {
        return None;
    }
    let (lower, rest) = u16_le(rest)?;
    let mut caps = u32::from(lower);
    if rest.is_empty() {
        return Some(Greeting {
            server_version,
            connection_id,
            capabilities: Capabilities(caps),
            auth_plugin: None,
        });
    }
    // character set (1), status flags (2)
    let rest = rest.get(3..)?;
    let (upper, rest) = u16_le(rest)?;
    caps |= u32::from(upper) << 16;
    let caps = Capabilities(caps);
    if !caps.has(Capabilities::PROTOCOL_41) {
        return None;
    }
    let (&auth_len, rest) = rest.split_first()?;
    // reserved (10; MariaDB keeps its extended capabilities in the last 4)
    let mut rest = rest.get(10..)?;
    if caps.has(Capabilities::SECURE_CONNECTION) {
        let part2 = usize::from(auth_len).saturating_sub(8).max(13);
        rest = rest.get(part2..)?;
    }
    let mut auth_plugin = None;
    if caps.has(Capabilities::PLUGIN_AUTH) {
        // Some servers omit the final NUL.
        let name = cstring(rest).map_or(rest, |(n, r)| if r.is_empty() { n } else { &[] });
        if !is_name(name) {
            return None;
        }
        auth_plugin = Some(name);
    } else if !rest.is_empty() {
        return None;
    }
    Some(Greeting {
        server_version,
        connection_id,
        capabilities: caps,
        auth_plugin,
    })
}

/// A HandshakeResponse41 ("Protocol::HandshakeResponse41") or, when it stops after the
/// fixed part with `CLIENT_SSL` set, an SSLRequest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HandshakeResponse<'a> {
    pub(crate) capabilities: Capabilities,
    /// MariaDB extended capabilities (the last 4 filler bytes), 0 from MySQL clients.
    pub(crate) mariadb_capabilities: u32,
    pub(crate) user: &'a [u8],
    pub(crate) schema: Option<&'a [u8]>,
    pub(crate) auth_plugin: Option<&'a [u8]>,
}

/// Length of the fixed part: capabilities (4), max packet size (4), character set (1),
/// filler (23).
pub(crate) const HANDSHAKE_FIXED_LEN: usize = 32;

/// Checks the fixed part of a HandshakeResponse41 prefix: `Some(caps)` when it is plausible
/// so far (`caps` known once 4 bytes are there), `None` when it cannot be one.
pub(crate) fn handshake_fixed_ok(payload: &[u8]) -> Option<Capabilities> {
    let caps = u32_le(payload).map_or(Capabilities(Capabilities::PROTOCOL_41), |(c, _)| {
        Capabilities(c)
    });
    if payload.len() >= 2 && !caps.has(Capabilities::PROTOCOL_41) {
        return None;
    }
    // The first 19 filler bytes are zero (MariaDB uses the last 4).
    let filler = payload.get(9..payload.len().min(28)).unwrap_or_default();
    filler.iter().all(|&b| b == 0).then_some(caps)
}

/// A whole HandshakeResponse41 payload. `None` for an SSLRequest (see
/// [`is_ssl_request`]) or a malformed one.
pub(crate) fn parse_handshake_response(payload: &[u8]) -> Option<HandshakeResponse<'_>> {
    let caps = handshake_fixed_ok(payload)?;
    let mariadb_capabilities = u32_le(payload.get(28..)?)?.0;
    let rest = payload.get(HANDSHAKE_FIXED_LEN..)?;
    let (user, rest) = cstring(rest)?;
    if !user.is_empty() && !is_name(user) {
        return None;
    }
    let rest = if caps.has(Capabilities::PLUGIN_AUTH_LENENC_CLIENT_DATA) {
        lenenc_bytes(rest)?.1
    } else if caps.has(Capabilities::SECURE_CONNECTION) {
        let (&len, rest) = rest.split_first()?;
        rest.get(usize::from(len)..)?
    } else {
        cstring(rest)?.1
    };
    let (schema, rest) = if caps.has(Capabilities::CONNECT_WITH_DB) && !rest.is_empty() {
        let (db, rest) = cstring(rest)?;
        (Some(db), rest)
    } else {
        (None, rest)
    };
    let (auth_plugin, rest) = if caps.has(Capabilities::PLUGIN_AUTH) && !rest.is_empty() {
        let (p, rest) = cstring(rest)?;
        (Some(p), rest)
    } else {
        (None, rest)
    };
    if caps.has(Capabilities::CONNECT_ATTRS) && !rest.is_empty() {
        let (attrs, _) = lenenc_bytes(rest)?;
        let mut attrs = attrs;
        while !attrs.is_empty() {
            attrs = lenenc_bytes(attrs)?.1;
            attrs = lenenc_bytes(attrs)?.1;
        }
    }
    if schema.is_some_and(|s| !s.is_empty() && !is_name(s))
        || auth_plugin.is_some_and(|p| !is_name(p))
    {
        return None;
    }
    Some(HandshakeResponse {
        capabilities: caps,
        mariadb_capabilities,
        user,
        schema,
        auth_plugin,
    })
}

/// An SSLRequest: the fixed part alone, with `CLIENT_SSL`.
pub(crate) fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == HANDSHAKE_FIXED_LEN
        && handshake_fixed_ok(payload).is_some_and(|c| c.has(Capabilities::SSL))
}

/// An ERR packet: error code, SQLSTATE (absent before the handshake), message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrPacket<'a> {
    pub(crate) code: u16,
    pub(crate) sqlstate: Option<&'a [u8]>,
    pub(crate) message: &'a [u8],
}

/// A whole ERR payload (first byte 0xff). Error codes are 1000..=65535 (MySQL's
/// `mysqld_error.h` and `errmsg.h` ranges); message text only.
pub(crate) fn parse_err(payload: &[u8]) -> Option<ErrPacket<'_>> {
    let (&ERR_HEADER, rest) = payload.split_first()? else {
        return None;
    };
    let (code, rest) = u16_le(rest)?;
    if code < 1000 {
        return None;
    }
    let (sqlstate, message) = match rest.split_first() {
        Some((b'#', r)) => {
            let state = r.get(..5)?;
            if !state.iter().all(u8::is_ascii_alphanumeric) {
                return None;
            }
            (Some(state), r.get(5..)?)
        }
        _ => (None, rest),
    };
    is_text(message).then_some(ErrPacket {
        code,
        sqlstate,
        message,
    })
}

/// An OK packet (first byte 0x00, or 0xfe when it ends a result set with
/// `CLIENT_DEPRECATE_EOF`): affected rows, last insert id, status flags, warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OkPacket {
    pub(crate) affected_rows: u64,
    pub(crate) last_insert_id: u64,
    pub(crate) status: u16,
    pub(crate) warnings: u16,
}

/// A whole OK payload. The info / session-state tail is not checked.
pub(crate) fn parse_ok(payload: &[u8]) -> Option<OkPacket> {
    let (&(OK_HEADER | EOF_HEADER), rest) = payload.split_first()? else {
        return None;
    };
    let (affected_rows, rest) = lenenc(rest)?;
    let (last_insert_id, rest) = lenenc(rest)?;
    let (status, rest) = u16_le(rest)?;
    let (warnings, _) = u16_le(rest)?;
    Some(OkPacket {
        affected_rows,
        last_insert_id,
        status,
        warnings,
    })
}

/// What follows the fixed part of a whole OK payload (the human-readable info, and session
/// state changes with `CLIENT_SESSION_TRACK`).
pub(crate) fn ok_tail(payload: &[u8]) -> Option<&[u8]> {
    let (_, rest) = payload.split_first()?;
    let (_, rest) = lenenc(rest)?;
    let (_, rest) = lenenc(rest)?;
    rest.get(4..)
}

/// The status flags of a result-set terminator: an EOF packet (`0xfe`, warnings, status) or
/// an OK packet with the `0xfe` header.
pub(crate) fn terminator_status(payload: &[u8]) -> u16 {
    if payload.len() == 5 {
        return payload.get(3..).and_then(u16_le).map_or(0, |(s, _)| s);
    }
    parse_ok(payload).map_or(0, |ok| ok.status)
}
