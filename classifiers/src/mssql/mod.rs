//! TDS, the Tabular Data Stream protocol of Microsoft SQL Server ([MS-TDS],
//! <https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-tds/>).
//!
//! **Probe.** Every message travels in packets with an 8-byte header (2.2.3.1): a known type
//! (PRELOGIN 0x12, LOGIN7 0x10, SQL batch 0x01, RPC 0x03, tabular result 0x04, attention
//! 0x06, bulk load 0x07, federated auth token 0x08, transaction manager 0x0E, SSPI 0x11),
//! status with only defined bits, a big-endian length `8..=32768`, SPID, packet id and a
//! window of 0. The header claims nothing alone; the body must agree:
//! - PRELOGIN (and its reply, a tabular result starting with option 0x00): the option table
//!   with VERSION first, known tokens, offsets past the table and inside the packet, a valid
//!   ENCRYPTION value. A PRELOGIN packet may instead carry a TLS handshake record (TDS 7.x
//!   wraps the TLS handshake in PRELOGIN packets when encryption is negotiated).
//! - LOGIN7: Length (86..=128K) and a known TDSVersion (`STRONG`), then every OffsetLength
//!   pair inside Length.
//! - SQL batch, RPC, transaction manager: ALL_HEADERS (TotalLength, headers of known types
//!   filling it), then UTF-16LE text / a procedure id or name / a request type.
//! - Tabular result tokens: a known first token whose length fits; known tokens walked.
//! - Attention: an empty packet; SSPI: an NTLMSSP or SPNEGO token; bulk load: COLMETADATA.
//!
//! Body checks passed on a partial packet: `STRONG`; the whole packet consistent: `CERTAIN`.
//! Client packet types sent to the client (or a tabular result to the server) match with
//! `observed` set.
//!
//! **Look-alikes.** Anything starting with 0x12, 0x10 or 0x01: the status, length and
//! window bytes must fit and then the body structure; a MySQL packet (`01 00 00 00`) has a
//! length below 8, a TLS record (0x16) is no TDS type. Random bytes need about 40 bits of
//! header plus the body's structure.
//!
//! **Session.** See [`session`]: messages reassembled from packets (EOM); one record per
//! message named by its packet type; LOGIN7 gives `user`, `app`, `database`, `host`,
//! `server` and `tds_version`; a SQL batch's text (UTF-16LE decoded, capped) is the
//! `resource`, an RPC's procedure too; replies carry the error number as `status` and the
//! final DONE's row count. TLS records after a TLS-in-PRELOGIN handshake are skipped as one
//! `TLS` message per direction.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId};
use nom::number::streaming::{le_u16, le_u32};
use nom::Err;

use crate::body::{band, body_of, Body};

use self::parser::{
    check_text, parse_all_headers, parse_login7, parse_login7_start, parse_packet_header,
    parse_prelogin, parse_rpc_name, parse_tls_record_header, parse_token, PacketType, Token,
    HEADER_LEN,
};

/// The protocol id.
pub(crate) const MSSQL: ProtocolId = ProtocolId::new("mssql");

/// Most bytes the probe reads: a PRELOGIN (about 60 bytes) or the LOGIN7 fixed part and its
/// strings fit.
pub(crate) const PROBE_WINDOW: usize = 1024;

/// Code units of SQL text the probe checks.
const TEXT_UNITS_CHECKED: usize = 16;

/// The TDS (Microsoft SQL Server) classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mssql;

adi_classify::register_classifier!(adi_classify::Registration {
    id: MSSQL,
    category: Category::DATABASE,
    description: "Microsoft SQL Server TDS: PRELOGIN, LOGIN7, SQL batch, RPC, token streams",
    default_ports: &[1433],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Mssql,
});

fn check_prelogin(body: &[u8], body_len: usize, whole: bool) -> Body {
    match body_of(parse_prelogin(body, body_len), whole) {
        Ok((_, p)) if p.complete && whole => Body::Whole,
        Ok(_) => Body::Plausible,
        Err(b) => b,
    }
}

fn check_tls(body: &[u8], body_len: usize, whole: bool) -> Body {
    match body_of(parse_tls_record_header(body), whole) {
        Ok((_, len)) if whole && len + 5 <= body_len => Body::Whole,
        Ok(_) => Body::Plausible,
        Err(b) => b,
    }
}

/// UTF-16LE text filling the rest of the packet: the first units are plausible.
fn check_text_rest(rest: &[u8], whole: bool) -> Body {
    let units = rest.len() / 2;
    if whole && (!rest.len().is_multiple_of(2) || units == 0) {
        return Body::No;
    }
    match body_of(check_text(rest, units.clamp(1, TEXT_UNITS_CHECKED)), whole) {
        Ok(_) => band(whole),
        Err(b) => b,
    }
}

/// A token stream: the first token is known and framed; walk the framed ones.
fn check_tokens(body: &[u8], whole: bool) -> Body {
    let mut rest = body;
    let mut first = true;
    while !rest.is_empty() {
        match parse_token(rest) {
            Ok((_, (_, None))) => return Body::Plausible,
            Ok((r, _)) => rest = r,
            Err(Err::Incomplete(_)) if !whole => {
                return if first { Body::More } else { Body::Plausible };
            }
            Err(_) => return Body::No,
        }
        first = false;
    }
    if first {
        Body::More
    } else {
        band(whole)
    }
}

/// The body of one packet, per type, and the direction its type proves (`None`: either).
fn check_body(
    ptype: PacketType,
    body: &[u8],
    body_len: usize,
    whole: bool,
    eom: bool,
) -> (Body, Option<Direction>) {
    let to_server = Some(Direction::ToServer);
    let body_check = match ptype {
        PacketType::PRELOGIN => {
            if body.first().is_some_and(|b| (20..=23).contains(b)) {
                return (check_tls(body, body_len, whole), None);
            }
            check_prelogin(body, body_len, whole)
        }
        PacketType::TABULAR_RESULT => {
            let b = if body.first() == Some(&0) {
                check_prelogin(body, body_len, whole)
            } else {
                check_tokens(body, whole)
            };
            return (b, Some(Direction::ToClient));
        }
        PacketType::LOGIN7 => match body_of(parse_login7_start(body, body_len), whole) {
            Err(b) => b,
            Ok(_) => match parse_login7(body, body_len) {
                Ok(_) if whole && eom => Body::Whole,
                Ok(_) | Err(Err::Incomplete(_)) => Body::Plausible,
                Err(_) => Body::No,
            },
        },
        PacketType::SQL_BATCH => match body_of(parse_all_headers(body, body_len), whole) {
            Ok((rest, ())) => check_text_rest(rest, whole),
            Err(b) => b,
        },
        PacketType::RPC => match body_of(parse_all_headers(body, body_len), whole) {
            Ok((rest, ())) => match body_of(parse_rpc_name(rest), whole) {
                Ok(_) => band(whole),
                Err(b) => b,
            },
            Err(b) => b,
        },
        PacketType::TRANSACTION_MANAGER => {
            match body_of(parse_all_headers(body, body_len), whole) {
                // RequestType: TM_GET_DTC_ADDRESS (0) .. TM_SAVE_XACT (9) and later additions.
                Ok((rest, ())) => match body_of(le_u16(rest), whole) {
                    Ok((_, t)) if t <= 13 => band(whole),
                    Ok(_) => Body::No,
                    Err(b) => b,
                },
                Err(b) => b,
            }
        }
        PacketType::ATTENTION => {
            if body_len == 0 {
                Body::Whole
            } else {
                Body::No
            }
        }
        PacketType::SSPI => {
            const NTLMSSP: &[u8] = b"NTLMSSP\0";
            let n = body.len().min(NTLMSSP.len());
            match body.first() {
                None => Body::More,
                // SPNEGO: GSS-API InitialContextToken (0x60) or negTokenResp (0xa1).
                Some(0x60 | 0xa1) => Body::Plausible,
                Some(_) if body[..n] == NTLMSSP[..n] && n == NTLMSSP.len() => Body::Plausible,
                Some(_) if body[..n] == NTLMSSP[..n] && !whole => Body::More,
                Some(_) => Body::No,
            }
        }
        PacketType::BULK_LOAD => match body.first() {
            None if !whole => Body::More,
            Some(&Token::COLMETADATA) => Body::Plausible,
            _ => Body::No,
        },
        // FEDAUTH_TOKEN: DataLen, then the token (and a nonce) inside the packet.
        _ => match body_of(le_u32(body), whole) {
            Ok((_, n)) if usize::try_from(n).is_ok_and(|n| n + 4 <= body_len) => band(whole),
            Ok(_) => Body::No,
            Err(b) => b,
        },
    };
    (body_check, to_server)
}

impl Classifier for Mssql {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = buf.get(..buf.len().min(PROBE_WINDOW)).unwrap_or_default();
        let header = match parse_packet_header(buf) {
            Ok((_, h)) => h,
            Err(Err::Incomplete(_)) => return Probe::NeedMore,
            Err(_) => return Probe::NoMatch,
        };
        let whole = buf.len() >= header.length;
        let body = &buf[HEADER_LEN..header.length.min(buf.len())];
        let body_len = header.length - HEADER_LEN;
        let (found, proven) = check_body(header.ptype, body, body_len, whole, header.is_eom());
        let (confidence, reason) = match found {
            Body::No => return Probe::NoMatch,
            Body::More => return Probe::NeedMore,
            Body::Plausible => (Confidence::STRONG, "TDS packet header and message start"),
            Body::Whole => (Confidence::CERTAIN, "TDS packet with a consistent message"),
        };
        let found = Probe::matched(confidence, reason);
        proven.map_or(found, |p| found.observed(p)).given(dir)
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::TdsSession::default())
    }
}
