//! Per-connection PostgreSQL parsing: startup, encryption negotiation, query cycles.
//!
//! **Records.** To the server: StartupMessage → `Request` `startup` (attributes `protocol`
//! and every parameter in wire order: `user`, `database`, `application_name`, ...),
//! SSLRequest / GSSENCRequest → `Request` `ssl_request` / `gssenc_request`, CancelRequest →
//! `Message` `cancel`, `Q` → `Request` `query` (resource: the SQL, capped), an extended-protocol
//! batch (`P`/`B`/`D`/`E`/`C` ... `S`) → one `Request` named after its first message (`parse`
//! with the SQL as resource, `bind`, ...; a later `P` in the same batch is a `Message`
//! `parse`), a lone Sync → `Request` `sync`, FunctionCall → `Request` `function_call`,
//! Terminate → `Message` `terminate`. Passwords and SASL messages (`p`) never produce a
//! record.
//!
//! To the client: ReadyForQuery (`Z`) is the `Response` that ends every cycle (op
//! `ready_for_query`), carrying what the cycle produced as attributes: `auth` methods,
//! `server_version` and `backend_pid` during startup, `command_tag` for each
//! CommandComplete, `severity`/`sqlstate`/`message` for an ErrorResponse, and
//! `transaction_status`. An ErrorResponse during startup (a failed login) is itself the
//! `Response` (op `error`), since no ReadyForQuery follows. The single-byte answer to an
//! SSLRequest is a `Response` `ssl_refused` (`N`) or a `Switch` `ssl_accepted` (`S`, TLS
//! follows); after a switch the session consumes everything without records (the engine
//! re-classifies). NoticeResponse, NotificationResponse, a ParameterStatus after startup and
//! NegotiateProtocolVersion are `Message`s. Row data is consumed without records.
//!
//! Messages whose bodies feed no record (rows, copy data, bind parameters) are consumed as
//! they arrive, so a capture gap inside one is stepped over ([`Session::gap`]). A message
//! that feeds a record and is longer than [`MAX_BUFFERED`] is not waited for either: its
//! record is made from the bytes at hand (marked `truncated`) and the rest is skipped.

use adi_classify::record::lossy_capped;
use adi_classify::{Direction, ParseError, Record, RecordKind, Skip, Step, StepResult, Steps};
use nom::Err;

use super::parser::{
    cstring, error_fields, parse_message_header, parse_untyped, sasl_mechanisms, startup_params,
    uint32, AuthCode, BackendType, FrontendType, Untyped, MAX_MESSAGE_LEN,
};
use super::POSTGRES;

/// Most bytes of a message the session waits for before handling it from a prefix.
pub(crate) const MAX_BUFFERED: usize = 64 * 1024;
/// Most bytes of SQL text kept in [`Record::resource`].
pub(crate) const MAX_QUERY_KEPT: usize = 4096;
/// Most bytes of an attribute value kept.
pub(crate) const MAX_VALUE_KEPT: usize = 256;
/// Most attributes on one record (startup parameters, command tags of one cycle).
pub(crate) const MAX_ATTRIBUTES: usize = 32;

/// Which encryption the client asked for in clear text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encryption {
    Ssl,
    Gss,
}

/// The per-connection state.
#[derive(Debug, Default)]
pub(crate) struct PostgresSession {
    /// TLS or GSS encryption was accepted: the rest of the connection is opaque.
    opaque: bool,
    /// An SSLRequest or GSSENCRequest waits for its single-byte answer.
    encryption: Option<Encryption>,
    /// A StartupMessage waits for its final answer (ReadyForQuery or ErrorResponse).
    startup: bool,
    /// An extended-protocol batch is open (a Request was emitted, no Sync yet).
    batch: bool,
    /// Attributes gathered for the next ReadyForQuery.
    pending: Vec<(String, String)>,
    /// Bytes of an oversized message still to skip, per direction.
    skip: Skip,
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(POSTGRES, what)
}

fn value(bytes: &[u8]) -> String {
    lossy_capped(bytes, MAX_VALUE_KEPT).0
}

fn push_attr(attrs: &mut Vec<(String, String)>, name: &str, v: String) {
    if attrs.len() < MAX_ATTRIBUTES {
        attrs.push((name.to_owned(), v));
    }
}

fn record(kind: RecordKind, op: &str, wire_len: usize) -> Record {
    let mut r = Record::new(kind);
    r.op = Some(op.to_owned());
    r.wire_len = wire_len as u64;
    r
}

/// Severity, SQLSTATE and message of an ErrorResponse/NoticeResponse body.
fn error_attrs(body: &[u8], attrs: &mut Vec<(String, String)>) {
    let mut severity = None;
    for (code, v) in error_fields(body) {
        match code {
            // `V` is the non-localised severity (9.6+); `S` may be translated.
            b'V' => severity = Some(v),
            b'S' if severity.is_none() => severity = Some(v),
            _ => {}
        }
    }
    if let Some(s) = severity {
        push_attr(attrs, "severity", value(s));
    }
    for (code, v) in error_fields(body) {
        match code {
            b'C' => push_attr(attrs, "sqlstate", value(v)),
            b'M' => push_attr(attrs, "message", value(v)),
            _ => {}
        }
    }
}

impl PostgresSession {
    fn frontend_untyped(&mut self, msg: Untyped<'_>, len: usize, out: &mut Vec<Record>) {
        match msg {
            Untyped::Startup { version, params } => {
                let mut r = record(RecordKind::Request, "startup", len);
                push_attr(
                    &mut r.attributes,
                    "protocol",
                    format!("{}.{}", version >> 16, version & 0xffff),
                );
                for (name, v) in startup_params(params) {
                    let shared = match name {
                        b"user" => Some("user"),
                        b"database" => Some("database"),
                        b"application_name" => Some("client_name"),
                        _ => None,
                    };
                    if let Some(shared) = shared.filter(|_| !v.is_empty()) {
                        r.connection.push((shared, value(v)));
                    }
                    push_attr(&mut r.attributes, &String::from_utf8_lossy(name), value(v));
                }
                self.startup = true;
                self.pending.clear();
                out.push(r);
            }
            Untyped::SslRequest => {
                self.encryption = Some(Encryption::Ssl);
                out.push(record(RecordKind::Request, "ssl_request", len));
            }
            Untyped::GssEncRequest => {
                self.encryption = Some(Encryption::Gss);
                out.push(record(RecordKind::Request, "gssenc_request", len));
            }
            Untyped::Cancel { pid } => {
                let mut r = record(RecordKind::Message, "cancel", len);
                r.attributes.push(("pid".to_owned(), pid.to_string()));
                out.push(r);
            }
        }
    }

    /// A frontend message; `body` may be a prefix when `truncated`.
    fn frontend(
        &mut self,
        ty: FrontendType,
        body: &[u8],
        wire: usize,
        truncated: bool,
        out: &mut Vec<Record>,
    ) {
        let op = match ty {
            FrontendType::QUERY => {
                let mut r = record(RecordKind::Request, "query", wire);
                let sql = cstring(body).map_or(body, |(s, _)| s);
                let (sql, cut) = lossy_capped(sql, MAX_QUERY_KEPT);
                r.resource = Some(sql);
                r.truncated = cut || truncated;
                out.push(r);
                return;
            }
            FrontendType::PARSE => {
                let kind = if self.batch {
                    RecordKind::Message
                } else {
                    RecordKind::Request
                };
                self.batch = true;
                let mut r = record(kind, "parse", wire);
                let (name, rest) = cstring(body).unwrap_or((b"", body));
                let sql = cstring(rest).map_or(rest, |(s, _)| s);
                let (sql, cut) = lossy_capped(sql, MAX_QUERY_KEPT);
                r.resource = Some(sql);
                r.truncated = cut || truncated;
                if !name.is_empty() {
                    r.attributes.push(("statement".to_owned(), value(name)));
                }
                out.push(r);
                return;
            }
            FrontendType::SYNC => {
                let open = std::mem::replace(&mut self.batch, false);
                if open {
                    return;
                }
                "sync"
            }
            FrontendType::BIND => "bind",
            FrontendType::EXECUTE => "execute",
            FrontendType::DESCRIBE => "describe",
            FrontendType::CLOSE => "close",
            FrontendType::FUNCTION_CALL => "function_call",
            FrontendType::TERMINATE => {
                out.push(record(RecordKind::Message, "terminate", wire));
                return;
            }
            // Flush, password/SASL, copy data/done/fail: no record.
            _ => return,
        };
        if ty != FrontendType::SYNC && ty != FrontendType::FUNCTION_CALL {
            if self.batch {
                return;
            }
            self.batch = true;
        }
        let mut r = record(RecordKind::Request, op, wire);
        if ty == FrontendType::BIND {
            if let Some((_, rest)) = cstring(body) {
                if let Some((stmt, _)) = cstring(rest).filter(|(s, _)| !s.is_empty()) {
                    r.attributes.push(("statement".to_owned(), value(stmt)));
                }
            }
        }
        r.truncated = truncated;
        out.push(r);
    }

    /// A backend message; `body` may be a prefix when `truncated`.
    fn backend(
        &mut self,
        ty: BackendType,
        body: &[u8],
        wire: usize,
        truncated: bool,
        out: &mut Vec<Record>,
    ) {
        match ty {
            BackendType::AUTHENTICATION => {
                let Some((code, rest)) = uint32(body) else {
                    return;
                };
                let name = AuthCode(code).name().unwrap_or("unknown");
                if self.startup {
                    push_attr(&mut self.pending, "auth", name.to_owned());
                    if AuthCode(code) == AuthCode::SASL && sasl_mechanisms(rest).is_some() {
                        let mut rest = rest;
                        while let Some((mech, after)) = cstring(rest).filter(|(m, _)| !m.is_empty())
                        {
                            push_attr(&mut self.pending, "sasl_mechanism", value(mech));
                            rest = after;
                        }
                    }
                } else {
                    let mut r = record(RecordKind::Message, "auth", wire);
                    r.attributes.push(("auth".to_owned(), name.to_owned()));
                    out.push(r);
                }
            }
            BackendType::PARAMETER_STATUS => {
                let Some((name, rest)) = cstring(body) else {
                    return;
                };
                let v = cstring(rest).map_or(rest, |(v, _)| v);
                if self.startup {
                    if name == b"server_version" {
                        push_attr(&mut self.pending, "server_version", value(v));
                    }
                } else {
                    let mut r = record(RecordKind::Message, "parameter_status", wire);
                    r.attributes.push((value(name), value(v)));
                    out.push(r);
                }
            }
            BackendType::BACKEND_KEY_DATA => {
                if let Some((pid, _)) = uint32(body) {
                    push_attr(&mut self.pending, "backend_pid", pid.to_string());
                }
            }
            BackendType::COMMAND_COMPLETE => {
                let tag = cstring(body).map_or(body, |(t, _)| t);
                push_attr(&mut self.pending, "command_tag", value(tag));
            }
            BackendType::ERROR_RESPONSE => {
                if self.startup || self.encryption.is_some() {
                    // A failed login: the connection ends, no ReadyForQuery follows.
                    self.startup = false;
                    self.encryption = None;
                    let mut r = record(RecordKind::Response, "error", wire);
                    r.attributes = std::mem::take(&mut self.pending);
                    error_attrs(body, &mut r.attributes);
                    r.truncated = truncated;
                    out.push(r);
                } else {
                    error_attrs(body, &mut self.pending);
                }
            }
            BackendType::READY_FOR_QUERY => {
                self.startup = false;
                let mut r = record(RecordKind::Response, "ready_for_query", wire);
                r.attributes = std::mem::take(&mut self.pending);
                let status = match body.first() {
                    Some(b'I') => "idle",
                    Some(b'T') => "in_transaction",
                    Some(b'E') => "failed_transaction",
                    _ => "unknown",
                };
                r.attributes
                    .push(("transaction_status".to_owned(), status.to_owned()));
                out.push(r);
            }
            BackendType::NOTICE_RESPONSE => {
                let mut r = record(RecordKind::Message, "notice", wire);
                error_attrs(body, &mut r.attributes);
                r.truncated = truncated;
                out.push(r);
            }
            BackendType::NOTIFICATION_RESPONSE => {
                let mut r = record(RecordKind::Message, "notification", wire);
                if let Some((channel, _)) = body.get(4..).and_then(cstring) {
                    r.resource = Some(value(channel));
                }
                out.push(r);
            }
            BackendType::NEGOTIATE_PROTOCOL_VERSION => {
                out.push(record(
                    RecordKind::Message,
                    "negotiate_protocol_version",
                    wire,
                ));
            }
            // Row descriptions, rows, completions of extended-protocol steps, copy: no record.
            _ => {}
        }
    }
}

impl Steps for PostgresSession {
    fn skip(&mut self) -> Option<&mut Skip> {
        Some(&mut self.skip)
    }

    fn step(&mut self, rest: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        let Some(&first) = rest.first() else {
            return Ok(Step::NeedMore);
        };
        if let Some(enc) = self.encryption {
            match (dir, enc, first) {
                // The single-byte answer to an SSLRequest / GSSENCRequest.
                (Direction::ToClient, _, b'N') => {
                    self.encryption = None;
                    let op = if enc == Encryption::Ssl {
                        "ssl_refused"
                    } else {
                        "gssenc_refused"
                    };
                    out.push(record(RecordKind::Response, op, 1));
                    return Ok(Step::Consumed(1));
                }
                (Direction::ToClient, Encryption::Ssl, b'S')
                | (Direction::ToClient, Encryption::Gss, b'G') => {
                    self.encryption = None;
                    self.opaque = true;
                    let op = if enc == Encryption::Ssl {
                        "ssl_accepted"
                    } else {
                        "gssenc_accepted"
                    };
                    out.push(record(RecordKind::Switch, op, 1));
                    return Ok(Step::Switched(1));
                }
                // The client already speaks TLS (its bytes arrived before the answer).
                (Direction::ToServer, Encryption::Ssl, 0x16) => {
                    self.encryption = None;
                    self.opaque = true;
                    // The TLS record's size is the TLS classifier's business.
                    out.push(record(RecordKind::Switch, "tls", 0));
                    return Ok(Step::Switched(rest.len()));
                }
                _ => {}
            }
        }
        if dir == Direction::ToServer && first == 0 {
            return match parse_untyped(rest) {
                Ok((after, msg)) => {
                    let len = rest.len() - after.len();
                    self.frontend_untyped(msg, len, out);
                    Ok(Step::Consumed(len))
                }
                Err(Err::Incomplete(_)) => Ok(Step::NeedMore),
                Err(_) => Err(malformed("startup-phase message")),
            };
        }
        let known = match dir {
            Direction::ToServer => FrontendType(first).is_known(),
            Direction::ToClient => BackendType(first).is_known(),
        };
        if !known {
            return Err(malformed("message type"));
        }
        let (after, len) = match parse_message_header(rest) {
            Ok((after, (_, len))) => (after, len),
            Err(Err::Incomplete(_)) => return Ok(Step::NeedMore),
            Err(_) => {
                let raw = rest
                    .get(1..5)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Err(ParseError::too_large(
                    POSTGRES,
                    "message length",
                    raw as usize,
                    MAX_MESSAGE_LEN,
                ));
            }
        };
        // Only these bodies feed records; the others (rows, copy data, bind parameters) are
        // consumed as they arrive, so that a capture gap inside them can be stepped over.
        let needs_body = match dir {
            Direction::ToServer => matches!(first, b'Q' | b'P' | b'B'),
            Direction::ToClient => matches!(
                first,
                b'R' | b'S' | b'K' | b'C' | b'E' | b'N' | b'A' | b'Z' | b'v'
            ),
        };
        let (body, truncated) = match after.get(..len) {
            Some(body) => (body, false),
            None if !needs_body || len > MAX_BUFFERED => (after, true),
            None => return Ok(Step::NeedMore),
        };
        let wire = len + 5;
        match dir {
            Direction::ToServer => self.frontend(FrontendType(first), body, wire, truncated, out),
            Direction::ToClient => self.backend(BackendType(first), body, wire, truncated, out),
        }
        // A truncated message: its bytes past `rest` are stepped over as they arrive.
        Ok(Step::Consumed(self.skip.message(dir, wire, rest.len())))
    }

    fn opaque(&self) -> bool {
        self.opaque
    }

    /// Steps over uncaptured bytes inside a message being skipped (anywhere once the
    /// connection is encrypted: [`Steps::opaque`]).
    fn gap(&mut self, dir: Direction, len: u64, _out: &mut Vec<Record>) -> Result<(), ParseError> {
        self.skip.gap(dir, len)
    }
}
