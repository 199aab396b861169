//! Per-connection MySQL/MariaDB parsing: greeting, login, commands and their responses.
//!
//! **Records.** To the client: the greeting → `Message` `greeting` (attributes
//! `server_version`, `connection_id`, `auth_plugin`); an ERR instead of it → `Message`
//! `error` (status = error code). To the server: the HandshakeResponse → `Request` `login`
//! (attributes `user`, `schema`, `auth_plugin`), answered by the final OK (`Response` `ok`) or
//! ERR (`Response` `error`, status = error code, attributes `sqlstate`, `message`); an
//! AuthSwitchRequest is a `Message` `auth_switch`. An SSLRequest is a `Switch` `ssl_request`:
//! TLS follows at once in both directions, and the session consumes the rest without records.
//!
//! Commands (sequence 0) → `Request` named after the command (`query`, `stmt_prepare`,
//! `stmt_execute`, `init_db`, `ping`, ...; resource: the SQL or schema, capped), except the
//! ones the server never answers (`quit`, `stmt_close`, `stmt_send_long_data`: `Message`s).
//! The first packet of the answer is the `Response`: `ok` (attributes `affected_rows`,
//! `last_insert_id`, `warnings`), `error` (status = error code, `sqlstate`, `message`),
//! `result_set` (attribute `columns`), `prepare_ok` (`statement_id`, `columns`, `params`),
//! `local_infile`, `statistics`. Column definitions, rows and terminators are consumed packet
//! by packet without records (follow-up result sets of a multi-statement query too).
//!
//! Packets whose content feeds no record (rows, column definitions, auth data, LOCAL INFILE
//! contents, continuations of 16 MiB packets) are consumed as they arrive, so a capture gap
//! inside one is stepped over. With `CLIENT_COMPRESS` negotiated the packets are wrapped in
//! compressed frames: the session then consumes everything without records.

use std::collections::VecDeque;

use adi_classify::record::lossy_capped;
use adi_classify::{Direction, ParseError, Record, RecordKind, Skip, Step, StepResult, Steps};

use super::parser::{
    lenenc, parse_err, parse_greeting, parse_handshake_response, parse_header, parse_ok,
    terminator_status, u16_le, u32_le, Capabilities, Command, Header, EOF_HEADER, ERR_HEADER,
    LOCAL_INFILE_HEADER, MAX_PAYLOAD_LEN, OK_HEADER, SERVER_MORE_RESULTS_EXISTS,
};
use super::MYSQL;
use crate::parsing::read;

/// Most bytes of a packet the session waits for before handling it from a prefix.
pub(crate) const MAX_BUFFERED: usize = 64 * 1024;
/// Most bytes of SQL text kept in [`Record::resource`].
pub(crate) const MAX_QUERY_KEPT: usize = 4096;
/// Most bytes of an attribute value kept.
pub(crate) const MAX_VALUE_KEPT: usize = 256;

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Phase {
    /// Before the client's handshake response.
    #[default]
    Handshake,
    /// Between the greeting / handshake response and the final OK/ERR.
    Auth,
    /// Commands and responses.
    Command,
}

/// What the next to-client packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Reply {
    /// The first packet of the answer to the last command: it is the `Response`.
    #[default]
    First,
    /// A later result set of the same answer (after `SERVER_MORE_RESULTS_EXISTS`).
    Next,
    /// This many definition packets (column or parameter definitions and their EOFs) to
    /// skip, then rows when `rows`, else back to `First`.
    Definitions { left: u32, rows: bool },
    /// The column definitions are done: an EOF (unless `CLIENT_DEPRECATE_EOF`) or the rows.
    AfterColumns,
    /// Rows until an EOF/OK terminator or an ERR.
    Rows,
}

/// Most commands remembered while their responses are outstanding (pipelining, or a capture
/// replayed one direction at a time); beyond it the oldest is forgotten.
pub(crate) const MAX_PENDING_COMMANDS: usize = 256;

/// The per-connection state. Each side has its own phase, because the two directions are
/// not always fed in the order the bytes were sent.
#[derive(Debug, Default)]
pub(crate) struct MysqlSession {
    /// Where the client is.
    client: Phase,
    /// Where the server is.
    server: Phase,
    /// TLS or compression: no more records in either direction.
    opaque: bool,
    server_caps: Option<Capabilities>,
    client_caps: Option<Capabilities>,
    reply: Reply,
    /// Commands whose responses have not started, oldest first.
    commands: VecDeque<Command>,
    /// The command the current response answers.
    command: Option<Command>,
    /// The last packet of this direction had the maximum length: the next one continues it.
    continued: [bool; 2],
    /// Bytes of a packet still to skip, per direction.
    skip: Skip,
}

fn value(bytes: &[u8]) -> String {
    lossy_capped(bytes, MAX_VALUE_KEPT).0
}

fn record(kind: RecordKind, op: &str, wire_len: usize) -> Record {
    let mut r = Record::new(kind);
    r.op = Some(op.to_owned());
    r.wire_len = wire_len as u64;
    r
}

fn err_record(kind: RecordKind, payload: &[u8], wire: usize) -> Record {
    let mut r = record(kind, "error", wire);
    if let Some(e) = parse_err(payload) {
        r.status = Some(e.code);
        if let Some(state) = e.sqlstate {
            r.attributes.push(("sqlstate".to_owned(), value(state)));
        }
        r.attributes.push(("message".to_owned(), value(e.message)));
    } else if let Some((code, _)) = payload.get(1..).and_then(u16_le) {
        r.status = Some(code);
        r.truncated = true;
    }
    r
}

impl MysqlSession {
    fn deprecate_eof(&self) -> bool {
        match (self.server_caps, self.client_caps) {
            (Some(s), Some(c)) => {
                s.has(Capabilities::DEPRECATE_EOF) && c.has(Capabilities::DEPRECATE_EOF)
            }
            // Unknown (joined mid-connection): EOF packets are recognised by shape below.
            _ => false,
        }
    }

    /// Whether a packet's record needs its whole payload (else a prefix will do).
    fn needs_payload(&self, dir: Direction, h: Header, first: Option<u8>) -> bool {
        let phase = match dir {
            Direction::ToServer => self.client,
            Direction::ToClient => self.server,
        };
        match (dir, phase) {
            (Direction::ToServer, Phase::Command | Phase::Auth) => h.seq == 0,
            (Direction::ToClient, Phase::Command) => match self.reply {
                Reply::First | Reply::Next => true,
                // Only terminators and errors matter in these states; rows do not.
                _ => matches!(first, Some(EOF_HEADER | ERR_HEADER)),
            },
            _ => true,
        }
    }

    /// A to-server packet; true when it switches the connection to TLS.
    fn client_packet(
        &mut self,
        h: Header,
        payload: &[u8],
        wire: usize,
        truncated: bool,
        out: &mut Vec<Record>,
    ) -> bool {
        match self.client {
            Phase::Handshake if h.seq == 1 => {
                if payload.len() == 32 && !truncated {
                    let caps = u32_le(payload).map_or(0, |(c, _)| c);
                    if Capabilities(caps).has(Capabilities::SSL) {
                        self.opaque = true;
                        out.push(record(RecordKind::Switch, "ssl_request", wire));
                        return true;
                    }
                }
                let mut r = record(RecordKind::Request, "login", wire);
                if let Some(hr) = parse_handshake_response(payload) {
                    self.client_caps = Some(hr.capabilities);
                    r.attributes.push(("user".to_owned(), value(hr.user)));
                    r.connection.push(("user", value(hr.user)));
                    if let Some(db) = hr.schema.filter(|d| !d.is_empty()) {
                        r.attributes.push(("schema".to_owned(), value(db)));
                        r.connection.push(("database", value(db)));
                    }
                    if let Some(p) = hr.auth_plugin {
                        r.attributes.push(("auth_plugin".to_owned(), value(p)));
                    }
                } else {
                    r.truncated = true;
                }
                self.client = Phase::Auth;
                out.push(r);
            }
            // A command: the login is over (or we joined mid-connection).
            _ if h.seq == 0 => {
                self.client = Phase::Command;
                self.command(payload, wire, truncated, out);
            }
            // Auth data, LOCAL INFILE contents, long-data continuations: no record.
            _ => {}
        }
        false
    }

    fn command(&mut self, payload: &[u8], wire: usize, truncated: bool, out: &mut Vec<Record>) {
        let Some((&byte, body)) = payload.split_first() else {
            return;
        };
        let cmd = Command(byte);
        let name = cmd.name().unwrap_or("unknown");
        let kind = if cmd.has_no_response() {
            RecordKind::Message
        } else {
            RecordKind::Request
        };
        let mut r = record(kind, name, wire);
        match cmd {
            Command::QUERY | Command::STMT_PREPARE => {
                // MySQL 8 query attributes prefix (no attributes): 0x00 0x01.
                let sql = body
                    .strip_prefix(b"\x00\x01")
                    .filter(|_| cmd == Command::QUERY)
                    .unwrap_or(body);
                let (sql, cut) = lossy_capped(sql, MAX_QUERY_KEPT);
                r.resource = Some(sql);
                r.truncated = cut || truncated;
            }
            Command::INIT_DB | Command::CREATE_DB | Command::DROP_DB => {
                r.resource = Some(value(body));
            }
            Command::FIELD_LIST => {
                let table = body
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(body, |end| body.get(..end).unwrap_or(body));
                r.resource = Some(value(table));
            }
            Command::STMT_EXECUTE
            | Command::STMT_CLOSE
            | Command::STMT_RESET
            | Command::STMT_FETCH => {
                if let Some((id, _)) = u32_le(body) {
                    r.attributes
                        .push(("statement_id".to_owned(), id.to_string()));
                }
            }
            _ => {}
        }
        if kind == RecordKind::Request {
            if self.commands.len() >= MAX_PENDING_COMMANDS {
                self.commands.pop_front();
            }
            self.commands.push_back(cmd);
        }
        out.push(r);
    }

    fn server_packet(&mut self, h: Header, payload: &[u8], wire: usize, out: &mut Vec<Record>) {
        let first = payload.first().copied();
        match self.server {
            // A response in a connection joined mid-way (the greeting is sequence 0).
            Phase::Handshake if h.seq != 0 => {
                self.server = Phase::Command;
                self.reply(payload, wire, out);
            }
            Phase::Handshake => {
                if first == Some(ERR_HEADER) {
                    out.push(err_record(RecordKind::Message, payload, wire));
                    return;
                }
                let mut r = record(RecordKind::Message, "greeting", wire);
                if let Some(g) = parse_greeting(payload) {
                    self.server = Phase::Auth;
                    self.server_caps = Some(g.capabilities);
                    r.attributes
                        .push(("server_version".to_owned(), value(g.server_version)));
                    r.attributes
                        .push(("connection_id".to_owned(), g.connection_id.to_string()));
                    if let Some(p) = g.auth_plugin {
                        r.attributes.push(("auth_plugin".to_owned(), value(p)));
                    }
                } else {
                    r.truncated = true;
                }
                out.push(r);
            }
            Phase::Auth => match first {
                Some(OK_HEADER) => {
                    self.server = Phase::Command;
                    let compress = Capabilities::COMPRESS | Capabilities::ZSTD_COMPRESSION;
                    if self.server_caps.is_some_and(|s| s.0 & compress != 0)
                        && self.client_caps.is_some_and(|c| c.0 & compress != 0)
                    {
                        self.opaque = true;
                    }
                    out.push(record(RecordKind::Response, "ok", wire));
                }
                Some(ERR_HEADER) => {
                    self.server = Phase::Command;
                    out.push(err_record(RecordKind::Response, payload, wire));
                }
                Some(EOF_HEADER) => {
                    let mut r = record(RecordKind::Message, "auth_switch", wire);
                    if let Some(plugin) = payload.get(1..).and_then(|p| p.split(|&b| b == 0).next())
                    {
                        r.attributes.push(("auth_plugin".to_owned(), value(plugin)));
                    }
                    out.push(r);
                }
                // AuthMoreData (0x01) and anything else in the exchange: no record.
                _ => {}
            },
            Phase::Command => self.reply(payload, wire, out),
        }
    }

    /// The first packet of a response (or of a follow-up result set): the record it makes,
    /// and the state for the packets after it.
    fn first_packet(&mut self, payload: &[u8], wire: usize, is_terminator: bool) -> Record {
        match payload.first().copied() {
            Some(OK_HEADER) if self.command == Some(Command::STMT_PREPARE) => {
                let mut r = record(RecordKind::Response, "prepare_ok", wire);
                // statement id (4), columns (2), params (2)
                let body = payload.get(1..).unwrap_or_default();
                let id = u32_le(body);
                let cols = body.get(4..).and_then(u16_le).map_or(0, |(c, _)| c);
                let params = body.get(6..).and_then(u16_le).map_or(0, |(p, _)| p);
                if let Some((id, _)) = id {
                    r.attributes
                        .push(("statement_id".to_owned(), id.to_string()));
                }
                r.attributes.push(("columns".to_owned(), cols.to_string()));
                r.attributes.push(("params".to_owned(), params.to_string()));
                let eof = u32::from(!self.deprecate_eof());
                let defs = |n: u16| if n > 0 { u32::from(n) + eof } else { 0 };
                let left = defs(params) + defs(cols);
                self.reply = if left > 0 {
                    Reply::Definitions { left, rows: false }
                } else {
                    Reply::First
                };
                r
            }
            Some(OK_HEADER) => {
                let mut r = record(RecordKind::Response, "ok", wire);
                if let Some(ok) = parse_ok(payload) {
                    r.attributes
                        .push(("affected_rows".to_owned(), ok.affected_rows.to_string()));
                    r.attributes
                        .push(("last_insert_id".to_owned(), ok.last_insert_id.to_string()));
                    r.attributes
                        .push(("warnings".to_owned(), ok.warnings.to_string()));
                    self.reply = more(ok.status);
                } else {
                    self.reply = Reply::First;
                }
                r
            }
            Some(ERR_HEADER) => {
                self.reply = Reply::First;
                err_record(RecordKind::Response, payload, wire)
            }
            Some(EOF_HEADER) if is_terminator => {
                self.reply = more(terminator_status(payload));
                record(RecordKind::Response, "eof", wire)
            }
            Some(LOCAL_INFILE_HEADER) => {
                self.reply = Reply::First;
                let mut r = record(RecordKind::Response, "local_infile", wire);
                r.resource = Some(value(payload.get(1..).unwrap_or_default()));
                r
            }
            _ if self.command == Some(Command::STATISTICS) => {
                self.reply = Reply::First;
                let mut r = record(RecordKind::Response, "statistics", wire);
                r.resource = Some(value(payload));
                r
            }
            _ if self.command == Some(Command::FIELD_LIST) => {
                // Column definitions until EOF.
                self.reply = Reply::Rows;
                record(RecordKind::Response, "field_list", wire)
            }
            _ => {
                let mut r = record(RecordKind::Response, "result_set", wire);
                // column count, then MariaDB's "metadata follows" byte when
                // MARIADB_CLIENT_CACHE_METADATA is on (0: no definitions sent).
                let (n, rest) = lenenc(payload).unwrap_or((0, &[]));
                let metadata = rest.first().is_none_or(|&m| m != 0);
                r.attributes.push(("columns".to_owned(), n.to_string()));
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                self.reply = if metadata && n > 0 {
                    Reply::Definitions {
                        left: n,
                        rows: true,
                    }
                } else {
                    Reply::AfterColumns
                };
                r
            }
        }
    }

    fn reply(&mut self, payload: &[u8], wire: usize, out: &mut Vec<Record>) {
        let first = payload.first().copied();
        // "EOF_Packet" / OK with the 0xfe header: a row starting with 0xfe is at least
        // 2^24 bytes, so it fills a whole packet.
        let is_terminator = first == Some(EOF_HEADER) && wire - 4 < MAX_PAYLOAD_LEN;
        match self.reply {
            Reply::First | Reply::Next => {
                let emit = self.reply == Reply::First;
                if emit {
                    self.command = self.commands.pop_front();
                }
                let r = self.first_packet(payload, wire, is_terminator);
                if emit {
                    out.push(r);
                }
            }
            Reply::Definitions { left, rows } => {
                if first == Some(ERR_HEADER) {
                    self.reply = Reply::First;
                    return;
                }
                self.reply = match (left.saturating_sub(1), rows) {
                    (0, true) => Reply::AfterColumns,
                    (0, false) => Reply::First,
                    (left, rows) => Reply::Definitions { left, rows },
                };
            }
            Reply::AfterColumns => {
                // With CLIENT_DEPRECATE_EOF there is no EOF here: this is a row or the
                // terminator (an OK with the 0xfe header).
                if is_terminator && !self.deprecate_eof() && wire - 4 < 9 {
                    self.reply = Reply::Rows;
                } else {
                    self.reply = Reply::Rows;
                    self.reply(payload, wire, out);
                }
            }
            Reply::Rows => {
                if first == Some(ERR_HEADER) {
                    let mut r = err_record(RecordKind::Message, payload, wire);
                    r.op = Some("error".to_owned());
                    out.push(r);
                    self.reply = Reply::First;
                } else if is_terminator {
                    self.reply = more(terminator_status(payload));
                }
            }
        }
    }
}

impl Steps for MysqlSession {
    fn skip(&mut self) -> Option<&mut Skip> {
        Some(&mut self.skip)
    }

    fn step(&mut self, rest: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        let Some((after, h)) = read(parse_header(rest), MYSQL, "packet header")? else {
            return Ok(Step::NeedMore);
        };
        let d = dir.index();
        let continued = std::mem::replace(&mut self.continued[d], h.len == MAX_PAYLOAD_LEN);
        let wire = h.len + 4;
        let first = after.first().copied();
        if first.is_none() && h.len > 0 {
            return Ok(Step::NeedMore);
        }
        let (payload, truncated) = match after.get(..h.len) {
            Some(p) => (p, false),
            None if continued || !self.needs_payload(dir, h, first) || h.len > MAX_BUFFERED => {
                (after, true)
            }
            None => {
                // Not consumed yet: the flag is set again when the packet is whole.
                self.continued[d] = continued;
                return Ok(Step::NeedMore);
            }
        };
        if continued {
            // The continuation of a 16 MiB packet: its start was handled already.
        } else if self.opaque {
            // nothing to read
        } else {
            match dir {
                Direction::ToServer => {
                    if self.client_packet(h, payload, wire, truncated, out) {
                        return Ok(Step::Switched(wire));
                    }
                }
                Direction::ToClient => self.server_packet(h, payload, wire, out),
            }
        }
        // A truncated packet: its bytes past `rest` are stepped over as they arrive.
        Ok(Step::Consumed(self.skip.message(dir, wire, rest.len())))
    }

    fn opaque(&self) -> bool {
        self.opaque
    }

    /// Steps over uncaptured bytes inside a packet being skipped (anywhere once the
    /// connection is encrypted or compressed: [`Steps::opaque`]).
    fn gap(&mut self, dir: Direction, len: u64, _out: &mut Vec<Record>) -> Result<(), ParseError> {
        self.skip.gap(dir, len)
    }
}

/// After a response or a result set: another result set follows when the server says so.
fn more(status: u16) -> Reply {
    if status & SERVER_MORE_RESULTS_EXISTS != 0 {
        Reply::Next
    } else {
        Reply::First
    }
}
