//! Output events: the JSON-lines schema (documented in `docs/output-formats.md`). Field names
//! here are the schema, pinned by golden tests in `sinks/tests/`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::classify::{Confidence, Direction};
use crate::engine::{Classification, FlowRecord};
use crate::flow::{FlowId, FlowKey, Role};
use crate::protocol::{Category, ProtocolId};
use crate::record::{Record, RecordKind};

/// One line of the event stream, tagged by `event_type`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum Event {
    /// One HTTP message.
    Http(HttpEvent),
    /// One classified connection (again when its verdict improves).
    Connection(ConnectionEvent),
    /// Events a source or the bus could not deliver.
    Lost(LostEvent),
    /// A process adi watches, with its environment: what the `env-yaml` sink writes (the
    /// JSON-lines sink leaves these out).
    Process(ProcessEvent),
    /// One HTTP call a Go program made or served, read by the Go uprobes.
    GoHttp(GoHttpEvent),
    /// One parsed request, response or message of a protocol other than HTTP.
    Message(MessageEvent),
    /// A container seen for the first time (container enrichment on), with its labels, which
    /// the per-message `source_container` / `destination_container` leave out.
    Container(ContainerEvent),
}

/// A container, described once: what the per-message fields say of it, and its labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerEvent {
    /// RFC 3339 UTC with nanoseconds: when adi first saw it.
    pub timestamp: String,
    /// Service, image, id and name.
    #[serde(flatten)]
    pub container: Arc<ContainerInfo>,
    /// Its labels, as the runtime reports them.
    pub labels: BTreeMap<String, String>,
}

impl ContainerEvent {
    /// The description of `container`, seen at `timestamp`.
    pub fn new(container: &Arc<ContainerInfo>, timestamp: String) -> Self {
        Self {
            timestamp,
            labels: container.labels.clone(),
            container: Arc::clone(container),
        }
    }
}

/// The process that sent or received a message. Events share it (`Arc`): a connection's
/// events carry the same one while nothing about it changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// Process id (tgid).
    pub pid: u32,
    /// The kernel's short command name.
    pub comm: Arc<str>,
    /// The command line, arguments joined by spaces.
    pub cmdline: Arc<str>,
    /// The service this process is: `ADI_PROFILE_NAME`, else the program's own name (the
    /// executable, or the script, module or jar an interpreter runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Arc<str>>,
    /// The service at the other end of the connection, when that end is a watched process
    /// of this host too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_service: Option<Arc<str>>,
    /// The program listening at the other end when it is on this host but not watched
    /// (`postgres`, `redis-server`): named from `/proc`, nothing of it captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_process: Option<Arc<str>>,
    /// The container this process runs in (container enrichment on, and the process in one).
    #[serde(skip)]
    pub container: Option<Arc<ContainerInfo>>,
    /// Where the other end of the connection is, when container enrichment is on: which
    /// container, else whether it is a process of this host or elsewhere.
    #[serde(skip)]
    pub peer_place: Option<Place>,
}

/// A container, as events name it (`source_container`, `destination_container`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// The service it runs: the compose service, else the Kubernetes container (in its pod),
    /// else the container's name.
    pub service: String,
    /// Its image reference, as the runtime reports it.
    pub image: String,
    /// The runtime's full container id.
    pub container_id: String,
    /// Its name.
    pub container_name: String,
    /// Its labels, as the runtime reports them: in the `container` event that describes it
    /// once, not in every message's fields.
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
}

/// Where one end of a connection is (`destination_type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// In a container the runtime knows.
    Container(Arc<ContainerInfo>),
    /// A process of this host, not in a known container.
    Process,
    /// Outside this host and its containers.
    External,
}

impl Place {
    /// The `destination_type` word.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Container(_) => "container",
            Self::Process => "process",
            Self::External => "external",
        }
    }

    /// The container, if any.
    pub fn container(&self) -> Option<&Arc<ContainerInfo>> {
        match self {
            Self::Container(c) => Some(c),
            Self::Process | Self::External => None,
        }
    }
}

impl ProcessInfo {
    /// A process description without a service name.
    pub fn new(pid: u32, comm: &str, cmdline: &str) -> Self {
        Self {
            pid,
            comm: Arc::from(comm),
            cmdline: Arc::from(cmdline),
            service: None,
            peer_service: None,
            peer_process: None,
            container: None,
            peer_place: None,
        }
    }
}

/// Bytes serialised as a JSON string, invalid UTF-8 sequences replaced (U+FFFD); valid UTF-8
/// is written without a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LossyText(pub Vec<u8>);

impl LossyText {
    /// The bytes as text, invalid UTF-8 sequences replaced: valid UTF-8 (nearly always) is
    /// checked by the fast validator and borrowed as is.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => text.into(),
            Err(_) => String::from_utf8_lossy(&self.0),
        }
    }
}

impl Serialize for LossyText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

/// The container fields of one message (`source_container`, `destination_container`,
/// `destination_type`), present when container enrichment is on: source is who sent it and
/// destination who received it, whichever end adi watched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContainerFields {
    /// The sender's container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_container: Option<Arc<ContainerInfo>>,
    /// The receiver's container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_container: Option<Arc<ContainerInfo>>,
    /// `container`, `process` (this host) or `external`: where the receiver is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_type: Option<&'static str>,
}

impl ContainerFields {
    /// The fields of a message `process` sent (`sent`) or received.
    pub fn of(process: &ProcessInfo, sent: bool) -> Self {
        let Some(peer) = &process.peer_place else {
            return Self::default();
        };
        let me = process.container.clone();
        if sent {
            Self {
                source_container: me,
                destination_container: peer.container().cloned(),
                destination_type: Some(peer.kind()),
            }
        } else {
            Self {
                source_container: peer.container().cloned(),
                destination_type: Some(if me.is_some() { "container" } else { "process" }),
                destination_container: me,
            }
        }
    }
}

/// The searcher for the blank line that ends an HTTP/1 head, built once (building one per
/// search was a measurable part of making an event).
fn head_end() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    &FINDER
}

/// Most bytes of a message's head kept in `raw_payload`: the start line and headers as sent
/// (the body is in `body`, decoded, so it is not repeated).
pub const MAX_RAW_PAYLOAD: usize = 1024;

/// Sender and receiver of one message, in the terms of the tools adi replaces (httpwatcher,
/// gohttpsnoop, an eBPF HTTP profiler): `send` when the traced process wrote it, `recv` when it
/// read it; `source` is always the sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// `send` or `recv`, as seen by the traced process.
    pub direction: &'static str,
    /// Sender's address (IPv4-mapped IPv6 unmapped); serialised as text without an
    /// allocation per event.
    pub source_ip: IpAddr,
    /// Sender's port.
    pub source_port: u16,
    /// Receiver's address.
    pub dest_ip: IpAddr,
    /// Receiver's port.
    pub dest_port: u16,
}

impl Endpoints {
    /// The endpoints of a message travelling `dir` on flow `key`.
    pub fn of(key: &FlowKey, dir: Direction) -> Self {
        let (src, dst) = match dir {
            Direction::ToServer => (key.client, key.server),
            Direction::ToClient => (key.server, key.client),
        };
        // The traced process sends what leaves its own end of the connection.
        let sent = matches!(
            (key.role, dir),
            (Role::Client, Direction::ToServer) | (Role::Server, Direction::ToClient)
        );
        Self {
            direction: if sent { "send" } else { "recv" },
            source_ip: crate::flow::unmapped_ip(src),
            source_port: src.port(),
            dest_ip: crate::flow::unmapped_ip(dst),
            dest_port: dst.port(),
        }
    }
}

/// HTTP headers in wire order; serialised as a JSON object whose value is a string, or an
/// array of strings when the name was repeated (names as sent, first spelling kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// No pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first value of header `name`, compared ASCII case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The headers as their JSON object has them: each name once (compared ASCII
    /// case-insensitively, first spelling kept) in first-seen order, with its value, or every
    /// value when the name was repeated. Without allocating: headers are few.
    pub fn grouped(&self) -> impl Iterator<Item = (&str, HeaderValue<'_>)> {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        // Nearly always every name comes once: one pass over the pairs (lengths first) says
        // so, and each header is then its own key without searching the others for it.
        let repeats = self
            .0
            .iter()
            .enumerate()
            .any(|(i, (name, _))| self.0[i + 1..].iter().any(|(n, _)| same(n, name)));
        self.0
            .iter()
            .enumerate()
            .filter_map(move |(i, (name, value))| {
                if !repeats {
                    return Some((name.as_str(), HeaderValue::One(value)));
                }
                if self.0[..i].iter().any(|(n, _)| same(n, name)) {
                    return None;
                }
                let value = if self.0[i + 1..].iter().any(|(n, _)| same(n, name)) {
                    HeaderValue::Many(Values {
                        headers: &self.0[i..],
                        name,
                    })
                } else {
                    HeaderValue::One(value)
                };
                Some((name.as_str(), value))
            })
    }
}

/// The value of one header name in [`Headers::grouped`].
#[derive(Clone, Copy, Debug)]
pub enum HeaderValue<'a> {
    /// The name's only value: a JSON string.
    One(&'a str),
    /// A repeated name's values: a JSON array of strings.
    Many(Values<'a>),
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (name, value) in self.grouped() {
            match value {
                HeaderValue::One(v) => map.serialize_entry(name, v)?,
                HeaderValue::Many(values) => map.serialize_entry(name, &values)?,
            }
        }
        map.end()
    }
}

/// Every value of one header name, in order, as a JSON array.
#[derive(Clone, Copy, Debug)]
pub struct Values<'a> {
    headers: &'a [(String, String)],
    name: &'a str,
}

impl<'a> Values<'a> {
    /// The values, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = self.name;
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Serde's test for fields written only when true.
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_false(b: &bool) -> bool {
    !*b
}

/// One HTTP request or response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpEvent {
    /// RFC 3339 UTC with nanoseconds.
    pub timestamp: String,
    /// The traced process.
    #[serde(flatten)]
    pub process: Arc<ProcessInfo>,
    /// Direction and addresses.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// Containers of sender and receiver (container enrichment on).
    #[serde(flatten)]
    pub containers: ContainerFields,
    /// The real size of the message on the wire.
    pub bytes: u64,
    /// The bytes were read from the process's TLS library: the plaintext of an encrypted
    /// connection (serialised only when true).
    #[serde(skip_serializing_if = "is_false")]
    pub tls: bool,
    /// Request method (requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Request target (requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Status code (responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Every header.
    pub headers: Headers,
    /// The decoded body, capped, as UTF-8 (invalid sequences replaced).
    pub body: LossyText,
    /// The first bytes of the message as sent, at most [`MAX_RAW_PAYLOAD`].
    pub raw_payload: LossyText,
    /// True when the body or raw payload was cut.
    pub truncated: bool,
    /// The connection.
    pub flow_id: FlowId,
    /// For a response: milliseconds since its request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// The HTTP version when it is not HTTP/1.x: `"2"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'static str>,
    /// HTTP/2: the stream that carries this exchange (its request and response share it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u64>,
    /// A gRPC call (content type `application/grpc...`). Boxed: most events are not gRPC,
    /// and every event is moved a few times on its way to the sinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Box<GrpcInfo>>,
}

/// What an `http` event of a gRPC call says about the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrpcInfo {
    /// The service, from the path `/package.Service/Method`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Responses: `grpc-status` from the trailers (0 is OK).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Responses: `grpc-message`, the error's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The encoding of the messages: `protobuf`, or what the content type names after `+`.
    pub encoding: String,
    /// The size of each length-prefixed message in the body, in order, as far as the body
    /// was captured (at most [`MAX_GRPC_MESSAGES`]).
    pub messages: Vec<u64>,
}

/// Most gRPC message sizes listed per event.
pub const MAX_GRPC_MESSAGES: usize = 64;

impl GrpcInfo {
    /// The gRPC facts of an HTTP message (its headers, path and body); `None` when it is not
    /// gRPC.
    fn of(r: &Record) -> Option<Self> {
        let content_type = r.attribute("content-type")?;
        let rest = content_type.strip_prefix("application/grpc")?;
        let encoding = match rest.strip_prefix('+') {
            Some(e) => e.split(';').next().unwrap_or(e).to_owned(),
            None if rest.is_empty() || rest.starts_with(';') => "protobuf".to_owned(),
            None => return None,
        };
        let (service, method) = r
            .resource
            .as_deref()
            .and_then(|p| p.strip_prefix('/'))
            .and_then(|p| p.split_once('/'))
            .map_or((None, None), |(s, m)| {
                (Some(s.to_owned()), Some(m.to_owned()))
            });
        let mut messages = Vec::new();
        let mut at = 0;
        // Length-prefixed messages: a compressed flag, then a big-endian u32 length.
        while let Some(prefix) = r.body.get(at..at + 5) {
            if messages.len() >= MAX_GRPC_MESSAGES {
                break;
            }
            let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
            messages.push(u64::from(len));
            at += 5 + len as usize;
        }
        Some(Self {
            service,
            method,
            status: r.attribute("grpc-status").and_then(|s| s.parse().ok()),
            message: r.attribute("grpc-message").map(str::to_owned),
            encoding,
            messages,
        })
    }
}

impl HttpEvent {
    /// Replaces secrets with `<redacted>` (`docs/redaction.md`): secret-named headers, query
    /// parameters, JSON and form fields, in the parsed fields and in `raw_payload`.
    pub fn redact(&mut self) {
        let mut touched = crate::redact::headers(&mut self.headers.0);
        if let Some(url) = self.url.as_mut().filter(|u| u.contains('?')) {
            *url = crate::redact::url(url);
            touched = true;
        }
        let content_type = self.headers.get("content-type");
        let structured = content_type.is_some_and(|c| c.contains("json") || c.contains("form"))
            || matches!(self.body.0.first(), Some(b'{' | b'['));
        if structured {
            self.body = LossyText(crate::redact::body(&self.body.0, content_type));
            touched = true;
        }
        // The raw copy repeats the head: rewrite it when something above may be secret, or
        // when it was cut (a last, partial header line is not among the parsed headers).
        if touched || self.raw_payload.0.len() >= MAX_RAW_PAYLOAD {
            self.raw_payload = LossyText(crate::redact::raw_head(&self.raw_payload.0));
        }
    }

    /// Builds the event for an HTTP record of the engine, taking its buffers without a copy.
    pub fn from_record(
        rec: FlowRecord,
        process: impl Into<Arc<ProcessInfo>>,
        timestamp: String,
    ) -> Self {
        let process = process.into();
        let endpoints = Endpoints::of(&rec.key, rec.dir);
        let r = rec.record;
        let is_request = r.kind == RecordKind::Request;
        let grpc = GrpcInfo::of(&r).map(Box::new);
        let mut raw = r.raw;
        let mut truncated = r.truncated;
        // The head only: the body follows in `body` (halves what large responses write). The
        // HTTP/1 session keeps the head alone already: no search when the bytes end as a head.
        if !raw.ends_with(b"\r\n\r\n") {
            if let Some(end) = head_end().find(&raw) {
                raw.truncate(end + 4);
            }
        }
        if raw.len() > MAX_RAW_PAYLOAD {
            raw.truncate(MAX_RAW_PAYLOAD);
            truncated = true;
        }
        // HTTP/2 is the HTTP protocol whose exchanges are multiplexed on streams.
        let version = (rec.protocol.as_str() == "http2").then_some("2");
        // gRPC bodies are protobuf: their sizes are in `grpc.messages`, not text.
        let body = if grpc.is_some() { Vec::new() } else { r.body };
        Self {
            timestamp,
            containers: ContainerFields::of(&process, endpoints.direction == "send"),
            process,
            endpoints,
            version,
            stream_id: r.exchange,
            grpc,
            bytes: r.wire_len,
            tls: false,
            method: if is_request { r.op } else { None },
            url: if is_request { r.resource } else { None },
            status_code: if is_request { None } else { r.status },
            headers: Headers(r.attributes),
            body: LossyText(body),
            raw_payload: LossyText(raw),
            truncated,
            flow_id: rec.flow,
            #[expect(
                clippy::cast_precision_loss,
                reason = "latencies are far below 2^52 ns"
            )]
            latency_ms: rec.latency_ns.map(|ns| ns as f64 / 1e6),
        }
    }
}

/// One parsed message of a protocol other than HTTP: a query, a command, a publish, and
/// their replies, requests and responses paired in order per connection.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageEvent {
    /// RFC 3339 UTC with nanoseconds.
    pub timestamp: String,
    /// The traced process (and its service).
    #[serde(flatten)]
    pub process: Arc<ProcessInfo>,
    /// Direction and addresses of this message.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// Containers of sender and receiver (container enrichment on).
    #[serde(flatten)]
    pub containers: ContainerFields,
    /// Protocol id.
    pub protocol: ProtocolId,
    /// Category of the protocol.
    pub category: Category,
    /// `request`, `response` or `message` (neither: a push, a greeting, a notice).
    pub kind: &'static str,
    /// The operation: SQL verb, command, API, class.method, verb; for a response, its
    /// request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// What it acts on: normalised query text, collection, topic, subject, queue; for a
    /// response, its request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// A numeric status or error code, where the protocol has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error the peer answered with, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Other facts the parser read (user, database, client id, ...), in wire order.
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub attributes: Headers,
    /// Real size of the message on the wire.
    pub bytes: u64,
    /// The bytes were read from the process's TLS library: the plaintext of an encrypted
    /// connection (serialised only when true).
    #[serde(skip_serializing_if = "is_false")]
    pub tls: bool,
    /// The message was only partly seen.
    pub truncated: bool,
    /// The connection.
    pub flow_id: FlowId,
    /// For a response: milliseconds since its request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl MessageEvent {
    /// Builds the event for a non-HTTP record of the engine; `category` is its protocol's.
    pub fn from_record(
        rec: FlowRecord,
        category: Category,
        process: impl Into<Arc<ProcessInfo>>,
        timestamp: String,
    ) -> Self {
        let process = process.into();
        let endpoints = Endpoints::of(&rec.key, rec.dir);
        let r = rec.record;
        let error = r
            .attributes
            .iter()
            .find(|(n, _)| n == "error" || n == "message")
            .map(|(_, v)| v.clone());
        Self {
            timestamp,
            containers: ContainerFields::of(&process, endpoints.direction == "send"),
            process,
            endpoints,
            protocol: rec.protocol,
            category,
            kind: match r.kind {
                RecordKind::Request => "request",
                RecordKind::Response => "response",
                RecordKind::Message | RecordKind::Switch => "message",
            },
            op: r.op,
            resource: r.resource,
            status: r.status,
            error,
            attributes: Headers(r.attributes),
            bytes: r.wire_len,
            tls: false,
            truncated: r.truncated,
            flow_id: rec.flow,
            #[expect(
                clippy::cast_precision_loss,
                reason = "latencies are far below 2^52 ns"
            )]
            latency_ms: rec.latency_ns.map(|ns| ns as f64 / 1e6),
        }
    }

    /// Replaces secrets with `<redacted>`: attributes with secret names, and literals in
    /// query texts (`docs/redaction.md`).
    pub fn redact(&mut self) {
        for (name, value) in &mut self.attributes.0 {
            // Names the parsers give that only look secret: an authentication method, an
            // AMQP routing key (a topic, like a NATS subject).
            let parser_named = matches!(name.as_str(), "auth" | "auth_plugin" | "routing_key");
            if !parser_named && crate::redact::is_secret_name(name) {
                crate::redact::REDACTED.clone_into(value);
            }
        }
        if self.category == Category::DATABASE {
            if let Some(q) = self.resource.as_mut() {
                *q = crate::redact::sql(q);
            }
        } else if self.category == Category::CACHE && self.resource.take().is_some() {
            // Cache keys often embed user or session ids: only how many there were.
            self.attributes
                .0
                .push(("key_count".to_owned(), "1".to_owned()));
        }
    }
}

/// Which side of an HTTP call a [`GoHttpEvent`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoHttpSide {
    /// The program made the request (`net/http.(*Client).do`).
    Client,
    /// The program served it (`net/http.serverHandler.ServeHTTP`).
    Server,
}

/// One HTTP call of a Go program, read from `net/http`'s structures by uprobes (before TLS,
/// so HTTPS too): the request at the function's entry, the status and duration at its return.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GoHttpEvent {
    /// RFC 3339 UTC with nanoseconds: when the call began.
    pub timestamp: String,
    /// Process id (tgid).
    pub pid: u32,
    /// The kernel's short command name.
    pub comm: Arc<str>,
    /// `client` or `server`.
    pub side: GoHttpSide,
    /// Request method.
    pub method: String,
    /// `scheme://host/path?query`, rebuilt from `Request.URL` (the server side takes the host
    /// from `Request.Host` and the scheme from whether the connection is TLS).
    pub url: String,
    /// Every header value of `Request.Header`, sorted by name (Go keeps them in a map), values
    /// of one name in order.
    pub headers: Headers,
    /// True when some string or header was cut (see `truncated_fields`).
    pub truncated: bool,
    /// What was cut: `method`, `url`, `headers` (a value cut, or not every value copied).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated_fields: Vec<&'static str>,
    /// The status code: the client's `Response.StatusCode`, the status the server's handler
    /// wrote (200 when it wrote none). Absent when the call returned an error, or when the
    /// return was not seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Milliseconds from the function's entry to its return (absent when the return was not
    /// seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// The Go version that built the program (`go1.23.9`).
    pub go_version: Arc<str>,
}

impl GoHttpEvent {
    /// Replaces secrets with `<redacted>` (`docs/redaction.md`): secret-named header values
    /// and query parameters.
    pub fn redact(&mut self) {
        crate::redact::headers(&mut self.headers.0);
        if self.url.contains('?') {
            self.url = crate::redact::url(&self.url);
        }
    }
}

/// One classified connection.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionEvent {
    /// RFC 3339 UTC with nanoseconds.
    pub timestamp: String,
    /// The traced process.
    #[serde(flatten)]
    pub process: Arc<ProcessInfo>,
    /// Direction and addresses: client to server.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// Containers of sender and receiver (container enrichment on).
    #[serde(flatten)]
    pub containers: ContainerFields,
    /// Protocol id.
    pub protocol: ProtocolId,
    /// Category.
    pub category: Category,
    /// 60..=100.
    pub confidence: Confidence,
    /// The evidence.
    pub detection_reason: String,
    /// The connection.
    pub flow_id: FlowId,
    /// `client` if the traced process connected, `server` if it accepted.
    pub role: Role,
    /// The bytes were read from the process's TLS library: the connection is
    /// encrypted and its messages were read as plaintext (serialised only when true).
    #[serde(skip_serializing_if = "is_false")]
    pub tls: bool,
    /// What the connection's messages said about it so far: `user`, `database`,
    /// `client_name`, `client_id`, `vhost` (the protocol's login or handshake).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub summary: BTreeMap<&'static str, String>,
}

impl ConnectionEvent {
    /// Builds the event for a classification of the engine.
    pub fn from_classification(
        c: &Classification,
        process: impl Into<Arc<ProcessInfo>>,
        timestamp: String,
    ) -> Self {
        let process = process.into();
        let endpoints = Endpoints::of(&c.key, Direction::ToServer);
        Self {
            timestamp,
            containers: ContainerFields::of(&process, endpoints.direction == "send"),
            process,
            endpoints,
            protocol: c.protocol,
            category: c.category,
            confidence: c.confidence,
            detection_reason: c.reason.clone(),
            flow_id: c.flow,
            role: c.key.role,
            tls: false,
            summary: BTreeMap::new(),
        }
    }
}

/// Events that could not be delivered since the last `lost` event of this source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LostEvent {
    /// RFC 3339 UTC with nanoseconds.
    pub timestamp: String,
    /// Where they were lost: `kernel_ringbuf`, `bus:jsonl`, ...
    pub source: String,
    /// How many.
    pub count: u64,
}

/// One watched process and its environment (the env-yaml inventory, `docs/output-formats.md`),
/// read from `/proc/PID/environ` when adi starts watching it. Names and values are bytes:
/// environments need not be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessEvent {
    /// When adi read it.
    pub timestamp: String,
    /// Process id.
    pub pid: u32,
    /// The command line, arguments joined by spaces.
    pub cmdline: Arc<str>,
    /// The variables in order, or why they could not be read
    /// (`open /proc/99999/environ: no such file or directory`).
    pub environ: Result<Vec<EnvVar>, String>,
}

/// One environment variable: name and value, as bytes.
pub type EnvVar = (Vec<u8>, Vec<u8>);

impl ProcessEvent {
    /// Builds the event from the raw bytes of `/proc/PID/environ` (or the error reading it).
    pub fn new(
        pid: u32,
        cmdline: Arc<str>,
        environ: std::io::Result<Vec<u8>>,
        timestamp: String,
    ) -> Self {
        let environ = environ
            .map(|raw| {
                raw.split(|&b| b == 0)
                    .filter(|v| !v.is_empty())
                    .map(|var| match var.iter().position(|&b| b == b'=') {
                        Some(eq) => (var[..eq].to_vec(), var[eq + 1..].to_vec()),
                        None => (var.to_vec(), Vec::new()),
                    })
                    .collect()
            })
            .map_err(|e| format!("open /proc/{pid}/environ: {}", io_reason(&e)));
        Self {
            timestamp,
            pid,
            cmdline,
            environ,
        }
    }

    /// The value of variable `name` (the last one when it repeats, as the opt-in rule reads it).
    pub fn var(&self, name: &[u8]) -> Option<&[u8]> {
        let vars = self.environ.as_ref().ok()?;
        vars.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Replaces the values of secret-looking variables (and `NAME=value` arguments of the
    /// command line) with `<redacted>`.
    pub fn redact(&mut self) {
        if let Ok(vars) = &mut self.environ {
            for (name, value) in vars.iter_mut() {
                if crate::redact::is_secret_name(&String::from_utf8_lossy(name)) {
                    crate::redact::REDACTED.as_bytes().clone_into(value);
                } else if let Ok(text) = std::str::from_utf8(value) {
                    // DATABASE_URL=postgres://u:pw@h, JAVA_TOOL_OPTIONS=-Ddb.password=x
                    if let std::borrow::Cow::Owned(v) = crate::redact::cmdline(text) {
                        *value = v.into_bytes();
                    }
                }
            }
        }
        if let std::borrow::Cow::Owned(c) = crate::redact::cmdline(&self.cmdline) {
            self.cmdline = Arc::from(c);
        }
    }
}

/// An I/O error as Go's `os` package words it (`no such file or directory`), without Rust's
/// `(os error 2)` suffix: the error strings of the Go profiler adi replaces.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}
