//! The service map's model: per source service, the HTTP endpoints it calls (one variant per
//! distinct request/response shape) and the other connections it makes, with what each is
//! used for. Built from the facts of each event (`facts.rs`), read from the live event or from
//! its JSON line alike, so the live sink and `adi map build` over recorded JSON lines build
//! the same map.
//!
//! Only the calling side describes a dependency: a request the traced process sent (or, in
//! a capture, any request); a server's view of its callers is left to the callers' maps.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::facts::{number, string_map, text, Ends, Http, Ip, Message};
use super::{path, schema};

/// Most services, endpoints per service, connections per service, variants per endpoint,
/// and names kept per usage list; beyond them, counted in [`Overflow`].
pub const MAX_SERVICES: usize = 1024;
pub const MAX_ENDPOINTS: usize = 1024;
pub const MAX_CONNECTIONS: usize = 1024;
pub const MAX_VARIANTS: usize = 16;
pub const MAX_NAMES: usize = 64;
/// Most connections with requests waiting for their responses, and requests per connection.
const MAX_PENDING_FLOWS: usize = 65_536;
const MAX_PENDING: usize = 256;

/// What was left out to keep memory bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overflow {
    /// Services beyond [`MAX_SERVICES`].
    #[serde(default)]
    pub services: u64,
    /// Endpoints beyond [`MAX_ENDPOINTS`] of one service.
    #[serde(default)]
    pub endpoints: u64,
    /// Connections beyond [`MAX_CONNECTIONS`] of one service.
    #[serde(default)]
    pub connections: u64,
    /// Exchanges whose shape was a variant beyond [`MAX_VARIANTS`] of its endpoint.
    #[serde(default)]
    pub variants: u64,
    /// Requests forgotten unanswered (a connection with too many waiting).
    #[serde(default)]
    pub pending: u64,
}

/// Counts that make the map's counts lower bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sampling {
    /// Messages the kernel captured only in part and adi did not parse (`--max-rate`).
    #[serde(default)]
    pub sampled_out_messages: u64,
    /// Events lost before they reached the map (ring buffer, queues).
    #[serde(default)]
    pub lost_events: u64,
    /// Responses that had no request to pair with (joined mid-stream, sampled, lost).
    #[serde(default)]
    pub unpaired_responses: u64,
}

/// Latency distribution: counts per bucket of about 5% width (bucket `i` holds latencies
/// up to `1.05^i` microseconds), mergeable and exact to within a bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency(pub BTreeMap<u16, u64>);

impl Latency {
    fn add(&mut self, ms: f64) {
        let us = (ms * 1000.0).max(1.0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive logarithm, capped below u16::MAX"
        )]
        let bucket = (us.ln() / 1.05_f64.ln()).ceil().min(1000.0) as u16;
        *self.0.entry(bucket).or_default() += 1;
    }

    /// The `q` quantile (0..=1) in milliseconds, rounded to the microsecond.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.0.values().sum();
        if total == 0 {
            return None;
        }
        #[expect(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "counts far below 2^52"
        )]
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (&b, &n) in &self.0 {
            seen += n;
            if seen >= rank {
                let ms = 1.05_f64.powi(i32::from(b)) / 1000.0;
                return Some((ms * 1000.0).round() / 1000.0);
            }
        }
        None
    }

    fn merge(&mut self, other: &Self) {
        for (&b, &n) in &other.0 {
            *self.0.entry(b).or_default() += n;
        }
    }
}

/// One shape of an endpoint's exchanges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub request_schema: Value,
    pub response_schema: Value,
    /// A body was cut at the capture limit: its schema is that of the part seen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    pub status_codes: BTreeMap<u16, u64>,
    /// gRPC calls: the `grpc-status` of their responses (0 is OK).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grpc_status_codes: BTreeMap<u16, u64>,
    pub latency: Latency,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
}

/// An HTTP endpoint a service calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub destination_type: String,
    /// The server addresses (`ip:port`) the calls went to.
    pub addresses: BTreeSet<String>,
    /// Query parameter names seen, sorted.
    pub query: BTreeSet<String>,
    pub variants: Vec<Variant>,
    /// Requests still unanswered when their connection's events ended.
    pub unanswered: u64,
    /// The calls are gRPC (`POST /package.Service/Method`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grpc: bool,
}

/// What a connection is used for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// From the login: user, database, client name, client id, vhost.
    pub login: BTreeMap<String, BTreeSet<String>>,
    /// Operations and how often: SQL verbs, commands, APIs, methods.
    pub operations: BTreeMap<String, u64>,
    /// What they acted on: tables, subjects, topics, exchanges, queues, routing keys.
    pub targets: BTreeSet<String>,
}

impl Endpoint {
    /// The variants in a fixed order (by their shapes), whatever order they were seen or
    /// merged in.
    pub fn sorted_variants(&self) -> Vec<&Variant> {
        let mut v: Vec<&Variant> = self.variants.iter().collect();
        v.sort_by_cached_key(|v| (v.request_schema.to_string(), v.response_schema.to_string()));
        v
    }
}

impl Usage {
    /// As written in the maps: each login fact's values, then `operations` and `targets`;
    /// `None` when nothing is known.
    pub fn to_json(&self) -> Option<Value> {
        let mut usage = serde_json::Map::new();
        for (k, vs) in &self.login {
            usage.insert(k.clone(), serde_json::json!(vs));
        }
        if !self.operations.is_empty() {
            usage.insert("operations".into(), serde_json::json!(self.operations));
        }
        if !self.targets.is_empty() {
            usage.insert("targets".into(), serde_json::json!(self.targets));
        }
        (!usage.is_empty()).then_some(Value::Object(usage))
    }

    fn merge(&mut self, other: &Self) {
        for (k, vs) in &other.login {
            let set = self.login.entry(k.clone()).or_default();
            for v in vs {
                if set.len() < MAX_NAMES {
                    set.insert(v.clone());
                }
            }
        }
        for (op, n) in &other.operations {
            if self.operations.len() < MAX_NAMES || self.operations.contains_key(op) {
                *self.operations.entry(op.clone()).or_default() += n;
            }
        }
        for t in &other.targets {
            if self.targets.len() < MAX_NAMES {
                self.targets.insert(t.clone());
            }
        }
    }
}

/// A non-HTTP connection a service makes (one entry per destination, protocol and port).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub destination_type: String,
    /// The server addresses (`ip:port`) connected to.
    pub addresses: BTreeSet<String>,
    pub category: String,
    pub confidence: u64,
    pub reason: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Connections made.
    pub count: u64,
    pub usage: Usage,
}

/// One source service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub first_seen: String,
    pub last_seen: String,
    /// By (destination, method, path).
    pub endpoints: BTreeMap<(String, String, String), Endpoint>,
    /// By (destination, protocol, port).
    pub connections: BTreeMap<(String, String, u16), Connection>,
}

impl Service {
    fn seen(&mut self, ts: &str) {
        if self.first_seen.is_empty() || ts < self.first_seen.as_str() {
            ts.clone_into(&mut self.first_seen);
        }
        if ts > self.last_seen.as_str() {
            ts.clone_into(&mut self.last_seen);
        }
    }
}

/// What the runtimes said of a service's container (container enrichment on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Its image reference.
    pub image: String,
    /// Its container's labels.
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// Takes what `other` knows that this does not (order-free: the smaller image wins a
    /// disagreement, labels add up).
    fn merge(&mut self, other: &Self) {
        if self.image.is_empty() || (!other.image.is_empty() && other.image < self.image) {
            self.image.clone_from(&other.image);
        }
        for (k, v) in &other.labels {
            self.labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// A request waiting for its response.
struct Pending {
    service: String,
    key: (String, String, String),
    destination_type: &'static str,
    schema: Value,
    truncated: bool,
}

/// What is known of one traced connection (by pid and flow id).
struct Flow {
    service: String,
    key: (String, String, u16),
    client_side: bool,
}

/// The map.
#[derive(Default)]
pub struct Model {
    pub services: BTreeMap<String, Service>,
    pub overflow: Overflow,
    pub sampling: Sampling,
    /// Replace identifiers in paths with `{id}`.
    template_paths: bool,
    pending: HashMap<(u64, u64, u64), VecDeque<Pending>>,
    flows: HashMap<(u64, u64), Flow>,
    /// Watched processes' environments (live only: `process` events), by pid, and the
    /// service each pid's events named: what configuration inference reads. Never written.
    pub environments: HashMap<u64, Vec<(String, String)>>,
    pub pid_services: HashMap<u64, String>,
    /// The containers of the services and destinations named, by name.
    pub workloads: BTreeMap<String, Workload>,
    /// Labels of the containers described by `container` events, by container id.
    container_labels: HashMap<String, BTreeMap<String, String>>,
}

/// Most processes whose environment is kept.
const MAX_ENVIRONMENTS: usize = 4096;

/// Where the receiver of a call the traced process sent is: as the event says with
/// container enrichment on (`container`, `process`, `external`); else `process` for a
/// destination on this host (a watched peer, a listening program, a loopback address),
/// `external` otherwise.
fn destination_type(e: &Ends<'_>, dst_ip: Ip<'_>) -> &'static str {
    match e.destination_type {
        Some("container") => return "container",
        Some("process") => return "process",
        Some("external") => return "external",
        _ => {}
    }
    if dst_ip.is_local() || e.peer_service.is_some() || e.peer_process.is_some() {
        "process"
    } else {
        "external"
    }
}

/// How much a destination type says, to merge maps order-free: a destination seen in a
/// container by one map is a container.
fn type_rank(t: &str) -> u8 {
    match t {
        "container" => 3,
        "process" => 2,
        "external" => 1,
        _ => 0,
    }
}

/// Keeps the destination type that says most.
fn merge_type(mine: &mut String, theirs: &str) {
    if type_rank(theirs) > type_rank(mine) {
        theirs.clone_into(mine);
    }
}

/// The name of the service that sent or received a message on the traced side: its
/// `service`, else its program, else (a capture) the client's address.
fn source_name(e: &Ends<'_>, client_ip: Ip<'_>) -> String {
    match (e.service, e.comm) {
        (Some(s), _) if !s.is_empty() => s.to_owned(),
        (_, Some(c)) if !c.is_empty() => c.to_owned(),
        _ => client_ip.to_string(),
    }
}

/// The destination of a call: the watched peer's service, else the service of the container
/// there, else the program listening there on this host, else the HTTP `Host` or TLS SNI,
/// else the server's address.
fn destination(e: &Ends<'_>, server_ip: Ip<'_>, server_port: u64, host: Option<&str>) -> String {
    let container = e.destination_container.and_then(|c| c.service());
    for name in [e.peer_service, container, e.peer_process] {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            return name.to_owned();
        }
    }
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        return h.to_owned();
    }
    server_ip.with_port(server_port)
}

/// The verb and tables of a SQL text: `SELECT a FROM t JOIN u` -> (`SELECT`, [t, u]).
fn sql_usage(sql: &str) -> (Option<String>, Vec<String>) {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let verb = words.first().map(|w| w.to_ascii_uppercase());
    let mut tables = Vec::new();
    for pair in words.windows(2) {
        let kw = pair[0].to_ascii_uppercase();
        if matches!(kw.as_str(), "FROM" | "JOIN" | "INTO" | "UPDATE" | "TABLE") {
            let t = pair[1].trim_matches('"').trim_matches('`');
            let is_name = t
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '$');
            if is_name && !t.is_empty() && !t.eq_ignore_ascii_case("if") {
                tables.push(t.to_owned());
            }
        }
    }
    (verb, tables)
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("services", &self.services.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// An empty map; `template_paths` turns identifiers in paths into `{id}`.
    pub fn new(template_paths: bool) -> Self {
        Self {
            template_paths,
            ..Self::default()
        }
    }

    /// The service named `name`, created when there is room.
    fn service(&mut self, name: &str) -> Option<&mut Service> {
        if !self.services.contains_key(name) {
            if self.services.len() >= MAX_SERVICES {
                self.overflow.services += 1;
                return None;
            }
            self.services.insert(name.to_owned(), Service::default());
        }
        self.services.get_mut(name)
    }

    /// A `container` event: its labels, for the services it runs.
    fn container(&mut self, e: &Value) {
        let (Some(id), Some(labels)) = (text(e, "container_id"), e.get("labels")) else {
            return;
        };
        let labels = string_map(labels);
        if let Some(service) = text(e, "service") {
            if let Some(w) = self.workloads.get_mut(service) {
                w.merge(&Workload {
                    image: String::new(),
                    labels: labels.clone(),
                });
            }
        }
        if self.container_labels.len() < MAX_SERVICES || self.container_labels.contains_key(id) {
            self.container_labels.insert(id.to_owned(), labels);
        }
    }

    /// Remembers the containers of the sender `source` and receiver `dest` of a call the
    /// traced process sent.
    fn learn_workloads(&mut self, e: &Ends<'_>, source: &str, dest: &str) {
        for (name, c) in [
            (source, e.source_container),
            (dest, e.destination_container),
        ] {
            let Some(c) = c else {
                continue;
            };
            let Some(mut w) = c.workload() else {
                continue;
            };
            if let Some(labels) = c.id().and_then(|id| self.container_labels.get(id)) {
                w.labels
                    .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            if self.workloads.len() >= MAX_SERVICES && !self.workloads.contains_key(name) {
                continue;
            }
            match self.workloads.get_mut(name) {
                Some(known) if *known == w => {}
                Some(known) => known.merge(&w),
                None => {
                    self.workloads.insert(name.to_owned(), w);
                }
            }
        }
    }

    /// Takes one event (as its JSON form). Events it has no use for are ignored.
    pub fn add(&mut self, e: &Value) {
        match text(e, "event_type") {
            // These two name their process themselves (the live sink calls them directly).
            Some("http") => self.add_http(&Http::of_json(e)),
            Some("message") => self.add_message(&Message::of_json(e)),
            kind => {
                self.name_pid(number(e, "pid"), text(e, "service"));
                match kind {
                    Some("connection") => self.connection(e),
                    Some("container") => self.container(e),
                    Some("lost") => self.lost(e),
                    _ => {}
                }
            }
        }
    }

    /// A `lost` event: messages sampled out, or lost before the map.
    fn lost(&mut self, e: &Value) {
        let n = number(e, "count").unwrap_or(0);
        if text(e, "source") == Some("kernel_sampled") {
            self.sampling.sampled_out_messages += n;
        } else {
            self.sampling.lost_events += n;
        }
    }

    /// Remembers the service of a process (for configuration inference).
    fn name_pid(&mut self, pid: Option<u64>, service: Option<&str>) {
        if let (Some(pid), Some(service)) = (pid, service) {
            if pid != 0
                && self.pid_services.len() < MAX_ENVIRONMENTS
                && !self.pid_services.contains_key(&pid)
            {
                self.pid_services.insert(pid, service.to_owned());
            }
        }
    }

    /// A watched process's environment (its `process` event).
    pub fn environment(&mut self, pid: u64, vars: Vec<(String, String)>) {
        if self.environments.len() < MAX_ENVIRONMENTS || self.environments.contains_key(&pid) {
            self.environments.insert(pid, vars);
        }
    }

    /// Each service's environment variables, united over its processes.
    pub fn service_environments(&self) -> BTreeMap<&str, BTreeMap<&str, &str>> {
        let mut out: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        let mut pids: Vec<&u64> = self.environments.keys().collect();
        pids.sort_unstable();
        for pid in pids {
            let vars = &self.environments[pid];
            if let Some(service) = self.pid_services.get(pid) {
                let env = out.entry(service.as_str()).or_default();
                for (k, v) in vars {
                    env.entry(k.as_str()).or_insert(v.as_str());
                }
            }
        }
        out
    }

    /// An `http` event: a request the traced process sent, or the response it received.
    pub(super) fn add_http(&mut self, h: &Http<'_>) {
        let e = &h.ends;
        self.name_pid(e.pid, e.service);
        let (Some(ts), Some(dir)) = (e.timestamp, e.direction) else {
            return;
        };
        let capture = e.pid == Some(0);
        let (sent, received) = (dir == "send" || capture, dir == "recv" || capture);
        match h.method {
            // A request the traced process sent (or a capture's).
            Some(method) if sent => self.request(h, ts, method),
            // A response it received.
            None if received => self.response(h, ts),
            _ => {}
        }
    }

    /// Where an HTTP request waits for its response: its connection, and its HTTP/2 stream
    /// (multiplexed exchanges pair by stream; HTTP/1 ones in order, stream 0).
    fn exchange_of(h: &Http<'_>) -> (u64, u64, u64) {
        (h.ends.pid.unwrap_or(0), h.ends.flow, h.stream)
    }

    fn request(&mut self, h: &Http<'_>, ts: &str, method: &str) {
        let e = &h.ends;
        let flow = Self::exchange_of(h);
        let (Some(src_ip), Some(dst_ip)) = (e.source_ip, e.dest_ip) else {
            return;
        };
        let port = e.dest_port;
        let dest = destination(e, dst_ip, port, h.host);
        if e.service.is_some_and(|s| s == dest) {
            return; // never an endpoint from a service to itself
        }
        let (path, query) = path::split(h.url.unwrap_or("/"), self.template_paths);
        let service = source_name(e, src_ip);
        self.learn_workloads(e, &service, &dest);
        let destination_type = destination_type(e, dst_ip);
        let key = (dest, method.to_owned(), path);
        let Some(s) = self.service(&service) else {
            return;
        };
        s.seen(ts);
        let room = s.endpoints.len() < MAX_ENDPOINTS || s.endpoints.contains_key(&key);
        if !room {
            self.overflow.endpoints += 1;
            return;
        }
        let ep = s.endpoints.entry(key.clone()).or_default();
        ep.grpc |= h.grpc;
        merge_type(&mut ep.destination_type, destination_type);
        if ep.addresses.len() < MAX_NAMES {
            ep.addresses.insert(dst_ip.with_port(port));
        }
        ep.query.extend(query);
        let (schema, cut) = schema::of_body(h.body.as_bytes(), h.truncated);
        if !self.pending.contains_key(&flow) && self.pending.len() >= MAX_PENDING_FLOWS {
            // Connections that ended unanswered (reset, timed out, sampled) leave requests
            // behind: forget them all, counted, rather than refuse every new connection.
            self.overflow.pending += self.pending.values().map(|q| q.len() as u64).sum::<u64>();
            self.pending.clear();
        }
        let queue = self.pending.entry(flow).or_default();
        if queue.len() >= MAX_PENDING {
            queue.pop_front();
            self.overflow.pending += 1;
        }
        queue.push_back(Pending {
            service,
            key,
            destination_type,
            schema,
            truncated: cut,
        });
    }

    /// A response: paired with the oldest request of its connection (of its stream, for
    /// HTTP/2).
    fn response(&mut self, h: &Http<'_>, ts: &str) {
        let flow = Self::exchange_of(h);
        // An interim answer (`100 Continue`) is not the response: the final one follows.
        if h.status_code.is_some_and(|s| s < 200) {
            return;
        }
        let Some(req) = self.pending.get_mut(&flow).and_then(VecDeque::pop_front) else {
            self.sampling.unpaired_responses += 1;
            return;
        };
        if self.pending.get(&flow).is_some_and(VecDeque::is_empty) {
            self.pending.remove(&flow);
        }
        let (resp, cut) = schema::of_body(h.body.as_bytes(), h.truncated);
        let status = h.status_code.and_then(|s| u16::try_from(s).ok());
        let grpc_status = h.grpc_status.and_then(|s| u16::try_from(s).ok());
        let latency = h.latency_ms;
        let Some(s) = self.services.get_mut(&req.service) else {
            return;
        };
        s.seen(ts);
        let Some(ep) = s.endpoints.get_mut(&req.key) else {
            return;
        };
        merge_type(&mut ep.destination_type, req.destination_type);
        let found = ep
            .variants
            .iter()
            .position(|v| v.request_schema == req.schema && v.response_schema == resp);
        let v = match found {
            Some(i) => &mut ep.variants[i],
            None if ep.variants.len() < MAX_VARIANTS => {
                ep.variants.push(Variant {
                    request_schema: req.schema,
                    response_schema: resp,
                    truncated: false,
                    status_codes: BTreeMap::new(),
                    grpc_status_codes: BTreeMap::new(),
                    latency: Latency::default(),
                    first_seen: ts.to_owned(),
                    last_seen: ts.to_owned(),
                    count: 0,
                });
                ep.variants.last_mut().expect("just pushed")
            }
            None => {
                self.overflow.variants += 1;
                return;
            }
        };
        v.count += 1;
        v.truncated |= cut || req.truncated;
        if let Some(s) = status {
            *v.status_codes.entry(s).or_default() += 1;
        }
        if let Some(g) = grpc_status {
            *v.grpc_status_codes.entry(g).or_default() += 1;
        }
        if let Some(ms) = latency {
            v.latency.add(ms);
        }
        if ts < v.first_seen.as_str() {
            ts.clone_into(&mut v.first_seen);
        }
        if ts > v.last_seen.as_str() {
            ts.clone_into(&mut v.last_seen);
        }
    }

    fn connection(&mut self, e: &Value) {
        let ends = Ends::of_json(e);
        let Some(ts) = ends.timestamp else {
            return;
        };
        let (Some(protocol), Some(category)) = (text(e, "protocol"), text(e, "category")) else {
            return;
        };
        let client_side = matches!(text(e, "role"), Some("client" | "wire")) || ends.pid == Some(0);
        let flow = (ends.pid.unwrap_or(0), ends.flow);
        if !client_side {
            return;
        }
        // A connection whose plaintext adi read from its TLS library was first announced as
        // `tls` (its handshake): it is what its plaintext says, not a second connection.
        if e.get("tls").and_then(Value::as_bool) == Some(true) {
            self.forget_tls_verdict(flow);
        }
        // HTTP connections are described by their endpoints.
        if category == "http" {
            return;
        }
        let (Some(src_ip), Some(dst_ip)) = (ends.source_ip, ends.dest_ip) else {
            return;
        };
        let port = ends.dest_port;
        // A TLS client's SNI names the server as a `Host` header would.
        let sni = e
            .get("summary")
            .and_then(|s| s.get("server_name"))
            .and_then(Value::as_str);
        let dest = destination(&ends, dst_ip, port, sni);
        let service = source_name(&ends, src_ip);
        if ends.service.is_some_and(|s| s == dest) {
            return;
        }
        let key = (dest, protocol.to_owned(), u16::try_from(port).unwrap_or(0));
        // A flow id seen with another destination is another connection (ids of separate
        // runs or captures may repeat).
        let new_flow = self
            .flows
            .get(&flow)
            .is_none_or(|f| f.key != key || f.service != service);
        self.learn_workloads(&ends, &service, &key.0);
        let confidence = number(e, "confidence").unwrap_or(0);
        let reason = text(e, "detection_reason").unwrap_or("");
        let destination_type = destination_type(&ends, dst_ip);
        let Some(s) = self.service(&service) else {
            return;
        };
        s.seen(ts);
        if s.connections.len() >= MAX_CONNECTIONS && !s.connections.contains_key(&key) {
            self.overflow.connections += 1;
            return;
        }
        let c = s.connections.entry(key.clone()).or_default();
        if c.first_seen.is_empty() || ts < c.first_seen.as_str() {
            ts.clone_into(&mut c.first_seen);
        }
        if ts > c.last_seen.as_str() {
            ts.clone_into(&mut c.last_seen);
        }
        category.clone_into(&mut c.category);
        merge_type(&mut c.destination_type, destination_type);
        if c.addresses.len() < MAX_NAMES {
            c.addresses.insert(dst_ip.with_port(port));
        }
        if confidence > c.confidence {
            c.confidence = confidence;
            reason.clone_into(&mut c.reason);
        }
        if let Some(summary) = e.get("summary").and_then(Value::as_object) {
            for (k, v) in summary {
                if let Some(v) = v.as_str() {
                    let set = c.usage.login.entry(k.clone()).or_default();
                    if set.len() < MAX_NAMES {
                        set.insert(v.to_owned());
                    }
                }
            }
        }
        if new_flow {
            c.count += 1;
            if self.flows.len() >= MAX_PENDING_FLOWS {
                // Forget the oldest knowledge wholesale rather than grow: later messages of
                // forgotten flows only lose their usage.
                self.flows.clear();
            }
            self.flows.insert(
                flow,
                Flow {
                    service,
                    key,
                    client_side,
                },
            );
        }
    }

    /// Takes back the `tls` verdict flow `flow` was counted under, if it was.
    fn forget_tls_verdict(&mut self, flow: (u64, u64)) {
        if self.flows.get(&flow).is_none_or(|f| f.key.1 != "tls") {
            return;
        }
        let Some(f) = self.flows.remove(&flow) else {
            return;
        };
        let Some(s) = self.services.get_mut(&f.service) else {
            return;
        };
        if let Some(c) = s.connections.get_mut(&f.key) {
            c.count = c.count.saturating_sub(1);
            if c.count == 0 {
                s.connections.remove(&f.key);
            }
        }
    }

    /// A `message` event: what a request or one-way message on a known client connection
    /// says the dependency is used for.
    pub(super) fn add_message(&mut self, m: &Message<'_>) {
        self.name_pid(m.pid, m.service);
        let flow = (m.pid.unwrap_or(0), m.flow);
        let Some(f) = self.flows.get(&flow) else {
            return;
        };
        if !f.client_side {
            return;
        }
        // Requests and one-way messages say what the service does; responses repeat them.
        if !matches!(m.kind, Some("request" | "message")) {
            return;
        }
        let Some(c) = self
            .services
            .get_mut(&f.service)
            .and_then(|s| s.connections.get_mut(&f.key))
        else {
            return;
        };
        let mut usage = Usage::default();
        match (m.category.unwrap_or(""), m.op, m.resource) {
            // Cache keys are not kept (redaction): every command counts.
            ("cache", Some(op), _) => {
                usage.operations.insert(op.to_owned(), 1);
            }
            // What a protocol does without naming anything (a bind, a keep-alive, a login
            // step) says nothing about what the dependency is used for.
            (_, _, None) | (_, None, _) => {}
            ("database", Some("query" | "parse"), Some(sql)) => {
                let (verb, tables) = sql_usage(sql);
                if let Some(v) = verb {
                    usage.operations.insert(v, 1);
                }
                usage.targets.extend(tables);
            }
            // A collection named by a document store's command, a subject, a topic, an
            // exchange or a queue.
            (_, Some(op), Some(target)) => {
                usage.operations.insert(op.to_owned(), 1);
                usage.targets.insert(target.to_owned());
            }
        }
        if let Some(rk) = m.routing_key {
            usage.targets.insert(format!("routing_key:{rk}"));
        }
        c.usage.merge(&usage);
    }

    /// The end of the events (a capture replayed, a recording built, capture stopped):
    /// requests still waiting are counted unanswered on their endpoints.
    pub fn finish(&mut self) {
        // The next events (another recording) number their connections afresh.
        self.flows.clear();
        for (_, queue) in self.pending.drain() {
            for req in queue {
                if let Some(ep) = self
                    .services
                    .get_mut(&req.service)
                    .and_then(|s| s.endpoints.get_mut(&req.key))
                {
                    ep.unanswered += 1;
                }
            }
        }
    }

    /// Adds another map's knowledge to this one (counts add, first seen earliest, last seen
    /// latest, variants and usage united).
    pub fn merge(&mut self, other: &Self) {
        for (name, w) in &other.workloads {
            self.workloads.entry(name.clone()).or_default().merge(w);
        }
        let mut dropped_variants = 0;
        for (name, theirs) in &other.services {
            let Some(s) = self.service(name) else {
                continue;
            };
            s.seen(&theirs.first_seen);
            s.seen(&theirs.last_seen);
            for (k, ep) in &theirs.endpoints {
                let mine = s.endpoints.entry(k.clone()).or_default();
                // The type that says most wins (order-free).
                merge_type(&mut mine.destination_type, &ep.destination_type);
                mine.addresses.extend(ep.addresses.iter().cloned());
                mine.query.extend(ep.query.iter().cloned());
                mine.unanswered += ep.unanswered;
                mine.grpc |= ep.grpc;
                for v in &ep.variants {
                    let same = mine.variants.iter().position(|m| {
                        m.request_schema == v.request_schema
                            && m.response_schema == v.response_schema
                    });
                    match same {
                        Some(i) => {
                            let m = &mut mine.variants[i];
                            m.count += v.count;
                            m.truncated |= v.truncated;
                            for (st, n) in &v.status_codes {
                                *m.status_codes.entry(*st).or_default() += n;
                            }
                            for (st, n) in &v.grpc_status_codes {
                                *m.grpc_status_codes.entry(*st).or_default() += n;
                            }
                            m.latency.merge(&v.latency);
                            if v.first_seen < m.first_seen {
                                m.first_seen.clone_from(&v.first_seen);
                            }
                            if v.last_seen > m.last_seen {
                                m.last_seen.clone_from(&v.last_seen);
                            }
                        }
                        None if mine.variants.len() < MAX_VARIANTS => {
                            mine.variants.push(v.clone());
                        }
                        None => dropped_variants += v.count,
                    }
                }
            }
            for (k, c) in &theirs.connections {
                let mine = s.connections.entry(k.clone()).or_default();
                if mine.first_seen.is_empty() || c.first_seen < mine.first_seen {
                    mine.first_seen.clone_from(&c.first_seen);
                }
                if c.last_seen > mine.last_seen {
                    mine.last_seen.clone_from(&c.last_seen);
                }
                mine.count += c.count;
                mine.addresses.extend(c.addresses.iter().cloned());
                mine.category.clone_from(&c.category);
                merge_type(&mut mine.destination_type, &c.destination_type);
                if c.confidence > mine.confidence
                    || (c.confidence == mine.confidence && c.reason < mine.reason)
                {
                    mine.confidence = c.confidence;
                    mine.reason.clone_from(&c.reason);
                }
                mine.usage.merge(&c.usage);
            }
        }
        let (o, t) = (&mut self.overflow, &other.overflow);
        o.variants += dropped_variants;
        o.services += t.services;
        o.endpoints += t.endpoints;
        o.connections += t.connections;
        o.variants += t.variants;
        o.pending += t.pending;
        let (s, t) = (&mut self.sampling, &other.sampling);
        s.sampled_out_messages += t.sampled_out_messages;
        s.lost_events += t.lost_events;
        s.unpaired_responses += t.unpaired_responses;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_verbs_and_tables() {
        assert_eq!(
            sql_usage("SELECT a FROM orders o JOIN items i ON o.id = i.o WHERE x = ?"),
            (Some("SELECT".into()), vec!["orders".into(), "items".into()])
        );
        assert_eq!(
            sql_usage("insert into public.orders (item, channel) VALUES ($1, ?)"),
            (Some("INSERT".into()), vec!["public.orders".into()])
        );
        assert_eq!(
            sql_usage("CREATE TABLE IF NOT EXISTS orders (id serial)"),
            (Some("CREATE".into()), vec![])
        );
        assert_eq!(sql_usage("select ?"), (Some("SELECT".into()), vec![]));
    }

    #[test]
    fn latency_quantiles_are_within_a_bucket() {
        let mut l = Latency::default();
        for i in 1..=100 {
            l.add(f64::from(i));
        }
        let p50 = l.quantile(0.5).expect("p50");
        let p99 = l.quantile(0.99).expect("p99");
        assert!((50.0..=52.5).contains(&p50), "{p50}");
        assert!((99.0..=104.0).contains(&p99), "{p99}");
        assert_eq!(Latency::default().quantile(0.5), None);
    }
}
