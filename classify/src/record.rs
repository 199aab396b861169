//! [`Record`]: what a session parser learnt from one message, in protocol-neutral terms.

/// The role of a message within its protocol exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A request; the engine pairs it, in order, with the next [`RecordKind::Response`] of the
    /// flow (pipelining safe), or with the response of the same [`Record::exchange`].
    Request,
    /// A final response to the oldest unanswered request.
    Response,
    /// A message that answers nothing and expects no answer (an interim `100 Continue`, a
    /// pub/sub push, a greeting).
    Message,
    /// The protocol ends here and the bytes after this message are another protocol (HTTP
    /// `101 Switching Protocols`, Postgres `S` to an SSLRequest): the engine re-classifies.
    Switch,
}

/// One parsed message. Sessions fill what their protocol has and leave the rest empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Request, response, message or protocol switch.
    pub kind: RecordKind,
    /// The operation: HTTP method, SQL verb, Redis command.
    pub op: Option<String>,
    /// What the operation acts on: HTTP request target, query text, key, subject.
    pub resource: Option<String>,
    /// A status: HTTP status code, error code.
    pub status: Option<u16>,
    /// Name/value pairs in wire order; a repeated name keeps every value (HTTP headers).
    pub attributes: Vec<(String, String)>,
    /// The decoded body (HTTP Content-Length or chunked framing removed), capped.
    pub body: Vec<u8>,
    /// The first bytes of the message as sent, capped.
    pub raw: Vec<u8>,
    /// The real size of the whole message on the wire, whatever was kept.
    pub wire_len: u64,
    /// True when `body` or `raw` was cut at its cap, or the message was only partly seen.
    pub truncated: bool,
    /// What this message says about its whole connection, under the names every protocol
    /// shares: `user`, `database`, `client_name`, `client_id`, `vhost`, `server_name` (TLS SNI). The pipeline puts
    /// them on the connection's `connection` events.
    pub connection: Vec<(&'static str, String)>,
    /// The exchange this message belongs to when the protocol multiplexes exchanges on one
    /// connection (the HTTP/2 stream id): the engine pairs a response with the request of the
    /// same exchange rather than with the oldest one.
    pub exchange: Option<u64>,
}

impl Record {
    /// An empty record of the given kind.
    pub const fn new(kind: RecordKind) -> Self {
        Self {
            kind,
            op: None,
            resource: None,
            status: None,
            attributes: Vec::new(),
            body: Vec::new(),
            raw: Vec::new(),
            wire_len: 0,
            truncated: false,
            connection: Vec::new(),
            exchange: None,
        }
    }

    /// Appends attribute `name` = `value`.
    pub fn push_attribute(&mut self, name: &str, value: impl Into<String>) {
        self.attributes.push((name.to_owned(), value.into()));
    }

    /// The first value of attribute `name`, compared ASCII case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `bytes` as text, invalid UTF-8 replaced.
pub fn lossy(bytes: &[u8]) -> String {
    // Valid text (nearly always) through the validator's word-at-a-time ASCII path; the
    // lossy decoder walks byte by byte (3% of live capture's CPU on header fields).
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The first `cap` bytes of `bytes` as text (invalid UTF-8 replaced, a character cut at the
/// cap dropped), and whether anything was cut.
pub fn lossy_capped(bytes: &[u8], cap: usize) -> (String, bool) {
    let cut = bytes.len() > cap;
    let mut s = lossy(bytes.get(..cap).unwrap_or(bytes));
    if cut && s.ends_with('\u{fffd}') {
        s.pop();
    }
    (s, cut)
}

/// Appends what fits of `bytes` to `dst` while it holds at most `cap` bytes; sets `truncated`
/// when some did not fit.
pub fn keep_capped(dst: &mut Vec<u8>, truncated: &mut bool, bytes: &[u8], cap: usize) {
    let room = cap.saturating_sub(dst.len());
    if bytes.len() > room {
        *truncated = true;
    }
    dst.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
}
