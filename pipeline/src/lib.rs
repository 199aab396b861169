//! `adi-pipeline`: one pipeline for live capture and for captures read offline.
//!
//! A source (the eBPF probes, a pcap file, a test) says what happened in source-neutral
//! terms, an [`Input`]: a connection opened, bytes moved in one direction, bytes were not
//! captured, exchanges were skipped by sampling, a connection closed, a process exec'd or
//! exited. [`Pipeline::handle`] runs the classification engine over it and turns what the
//! engine concludes into [`Event`]s: a `connection` event per verdict, an `http` event per
//! HTTP message, a `message` event per message of every other protocol (requests paired with
//! their responses, in order, with the latency), and a `process` description per watched
//! process. Each event names the process, its `service` and, when the other end of the
//! connection is a watched process too, its `peer_service`.
//!
//! Nothing here names a protocol: the registry's categories decide what becomes an `http` or
//! a `message` event. Process context comes through [`ProcessSource`] (`/proc` live, none
//! offline), so the pipeline runs the same in tests, without root.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod opt_in;
pub mod proc;
pub mod service;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_containers;

use std::collections::{BTreeMap, HashSet, VecDeque};

/// The hot path's maps (flows, sockets, processes: looked up for every message): foldhash,
/// seeded per process, instead of std's SipHash, which profiles showed at 3 to 4% of adi's CPU
/// under full capture.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::SocketAddr;
use std::sync::Arc;

use adi_core::engine::{Classification, Engine, EngineConfig, FlowRecord, FlowSummary, Output};
use adi_core::event::{
    ConnectionEvent, ContainerEvent, ContainerInfo, Event, HttpEvent, MessageEvent, Place,
    ProcessEvent, ProcessInfo,
};
use adi_core::flow::FlowKey;
use adi_core::record::RecordKind;
use adi_core::time::rfc3339_nanos;
use adi_core::{Category, Confidence, Direction, Registry};

pub use opt_in::OptIn;

/// What a source can say. Timestamps are Unix nanoseconds (live sources convert their
/// monotonic clock once, before this point).
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A connection was opened (connected or accepted: `key.role` says which).
    Opened {
        /// The connection as the observing process sees it.
        key: FlowKey,
        /// When.
        ts_ns: u64,
    },
    /// Bytes moved on a connection.
    Data {
        /// The connection.
        key: FlowKey,
        /// Which way.
        dir: Direction,
        /// When.
        ts_ns: u64,
        /// The bytes captured.
        payload: &'a [u8],
        /// Bytes of the same message that were not captured (the capture cap), after
        /// `payload`.
        missing: u64,
        /// The source skipped whole exchanges before these bytes (sampling).
        after_skip: bool,
        /// The process's short name as the source saw it ("" when unknown).
        comm: &'a str,
        /// The bytes are the plaintext a TLS library read or wrote on this connection, not
        /// the bytes on the wire. The first such bytes restart the connection's
        /// classification on plaintext; the wire's (encrypted) bytes after them are ignored.
        tls: bool,
    },
    /// A connection ended.
    Closed {
        /// The connection.
        key: FlowKey,
        /// When.
        ts_ns: u64,
    },
    /// A process exec'd a new program: its connections so far belonged to the old one.
    Exec {
        /// The process.
        pid: u32,
        /// When.
        ts_ns: u64,
        /// Whether adi watches the new program.
        watched: bool,
        /// Its new short name.
        comm: &'a str,
    },
    /// A process exited.
    Exit {
        /// The process.
        pid: u32,
        /// When.
        ts_ns: u64,
    },
}

/// What a process looks like, for events.
#[derive(Debug, Default)]
pub struct ProcessDetails {
    /// Its short name.
    pub comm: String,
    /// Its arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Start time (any unit; tells a reused pid apart).
    pub start_time: u64,
    /// Its environment as `/proc/PID/environ` has it, when readable.
    pub environ: Option<std::io::Result<Vec<u8>>>,
    /// The TCP addresses it listens on (for `peer_service` of connections to it).
    pub listening: Vec<SocketAddr>,
}

/// Where the pipeline learns about processes.
pub trait ProcessSource {
    /// Process `pid`, or `None` when it is gone or unknown.
    fn details(&mut self, pid: u32) -> Option<ProcessDetails>;
    /// The process listening at `addr` on this host, if any (to name an unwatched
    /// destination).
    fn listener(&mut self, addr: SocketAddr) -> Option<u32> {
        let _ = addr;
        None
    }
}

/// Where the pipeline learns about containers (container enrichment): which container a
/// process runs in, which container an address reaches. Looked up once per process and per
/// connection, and again only when [`ContainerSource::generation`] says the runtimes
/// reported a change since.
pub trait ContainerSource: Send {
    /// The container process `pid` runs in.
    fn of_pid(&mut self, pid: u32) -> Option<Arc<ContainerInfo>>;
    /// The container that address `addr` reaches (its own address, or a port it publishes
    /// on this host).
    fn at(&mut self, addr: SocketAddr) -> Option<Arc<ContainerInfo>>;
    /// Whether `ip` is an address of this host (outside any container).
    fn is_host(&mut self, ip: std::net::IpAddr) -> bool;
    /// Whether process `pid`, in `container`, shares this host's network namespace (a
    /// container on the host's network): its loopback is the host's.
    fn host_network(&mut self, pid: u32, container: &ContainerInfo) -> bool;
    /// Whether `ip` is a container's own address (not a port it publishes on this host).
    fn holds(&mut self, ip: std::net::IpAddr) -> bool;
    /// A number that changes whenever what the runtimes reported changes.
    fn generation(&self) -> u64;
}

/// Processes from `/proc` (live capture).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcFs;

impl ProcessSource for ProcFs {
    fn details(&mut self, pid: u32) -> Option<ProcessDetails> {
        let p = proc::read_process(pid)?;
        Some(ProcessDetails {
            comm: p.comm,
            args: p.args,
            start_time: p.start_time,
            environ: Some(std::fs::read(format!("/proc/{pid}/environ"))),
            listening: proc::listening_addrs(pid),
        })
    }

    fn listener(&mut self, addr: SocketAddr) -> Option<u32> {
        proc::listener_of(addr)
    }
}

/// No process context (captures read offline: the pid is 0 and nothing is known of it).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProcesses;

impl ProcessSource for NoProcesses {
    fn details(&mut self, _pid: u32) -> Option<ProcessDetails> {
        None
    }
}

/// Pipeline options.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipelineConfig {
    /// Replace secrets with `<redacted>` (headers, bodies, query literals, cache keys).
    pub redact: bool,
    /// Describe each watched process once (`process` events, for the env-yaml sink).
    pub describe_processes: bool,
    /// Data on a connection that was never reported opened was joined mid-stream (live
    /// capture reports every open it sees; a capture file does not): its verdict is held
    /// while look-alikes dispute it ([`adi_core::engine::Engine::mark_mid_stream`]).
    pub mid_stream_unopened: bool,
}

/// Counts of what the pipeline produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Events produced.
    pub events: u64,
    /// `http` events.
    pub http: u64,
    /// `message` events.
    pub messages: u64,
    /// `connection` events.
    pub connections: u64,
    /// Responses that had no request to pair with (joined mid-stream, or after a gap).
    pub unpaired_responses: u64,
    /// Requests still unanswered when their connection ended.
    pub unanswered_requests: u64,
    /// Encrypted messages ignored because their connection's plaintext is read from its TLS
    /// library (not a loss).
    pub tls_ciphertext: u64,
}

/// Per-connection state the events need beyond the engine's.
#[derive(Default)]
struct FlowState {
    /// Operations and resources of the requests not answered yet, oldest first (responses
    /// carry their request's).
    pending: VecDeque<(Option<String>, Option<String>)>,
    /// The service at the other end, once known (kept when that end closes first).
    peer: Option<Arc<str>>,
    /// The last verdict announced, to announce again when `summary` grows.
    verdict: Option<Classification>,
    /// When its first input happened.
    first_ts: u64,
    /// What the connection's messages said about it (user, database, ...).
    summary: BTreeMap<&'static str, String>,
    /// Where its other end is (container enrichment on), and the runtimes' generation when
    /// that was found.
    place: Option<(u64, Place)>,
    /// Its bytes come from a TLS library as plaintext.
    tls: bool,
    /// It was joined mid-stream (opened before the source saw it).
    mid_stream: bool,
    /// Paths of the multiplexed requests not answered yet, by exchange (HTTP/2 stream).
    exchanges: BTreeMap<u64, Option<String>>,
    /// The process as its last event named it, and the pipeline's `known` count then.
    process: Option<(u64, Arc<ProcessInfo>)>,
}

/// Most unanswered requests remembered per connection (a peer that never answers).
const MAX_PENDING: usize = 1024;

/// Programs that listen for another: a container's published port, a port-forward.
const FORWARDERS: &[&str] = &[
    "docker-proxy",
    "rootlesskit",
    "slirp4netns",
    "kubectl",
    "pasta",
    "conmon",
    "rootlessport",
];

/// Most containers remembered as described.
const MAX_DESCRIBED_CONTAINERS: usize = 4096;

/// Most destinations whose listening program is remembered.
const MAX_PEER_PROCESSES: usize = 4096;

/// Most facts kept in a connection's summary, and the longest value kept (in bytes).
const MAX_SUMMARY: usize = 8;
const MAX_SUMMARY_VALUE: usize = 256;

/// The pipeline: engine, process context, pairing, service names.
pub struct Pipeline<P: ProcessSource> {
    engine: Engine,
    source: P,
    config: PipelineConfig,
    processes: HashMap<u32, ProcessInfo>,
    /// Processes already described: pid -> start time (a reused pid is a new process).
    described: HashMap<u32, u64>,
    flows: HashMap<FlowKey, FlowState>,
    /// Watched ends of connections by (local, remote) address: who is where, for
    /// `peer_service`.
    ends: HashMap<(SocketAddr, SocketAddr), (u32, Arc<str>)>,
    /// Addresses watched processes listen on: a connection to one is a connection to that
    /// service, even before the server's side of it has said anything.
    listeners: HashMap<SocketAddr, (u32, Arc<str>)>,
    /// Unwatched programs listening on this host, by the address connected to (`None`: no
    /// listener seen there), looked up once per destination.
    peer_processes: HashMap<SocketAddr, Option<(u32, Arc<str>)>>,
    outputs: Vec<Output>,
    summaries: Vec<FlowSummary>,
    /// Process descriptions waiting for the next event.
    docs: Vec<Event>,
    stats: PipelineStats,
    /// Container enrichment, when on.
    containers: Option<Box<dyn ContainerSource>>,
    /// Processes found in no container, and the runtimes' generation then: looked up again
    /// when the runtimes report a change (a container starting as its process is seen).
    uncontained: HashMap<u32, u64>,
    /// Processes named by their `ADI_PROFILE_NAME` (their container does not rename them).
    profile_named: HashSet<u32>,
    /// Containers already described by a `container` event, by id.
    described_containers: HashSet<String>,
    /// Counts the changes to what events say about processes (`processes`, `ends`,
    /// `listeners`, `peer_processes`): a connection's shared [`ProcessInfo`] is reused while
    /// this count is the one it was made at.
    known: u64,
}

impl<P: ProcessSource> std::fmt::Debug for Pipeline<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("flows", &self.flows.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: ProcessSource> Pipeline<P> {
    /// A pipeline over `registry`'s classifiers, learning about processes from `source`.
    pub fn new(registry: Arc<Registry>, source: P, config: PipelineConfig) -> Self {
        Self::with_engine(registry, source, config, EngineConfig::default())
    }

    /// The same, with the engine's limits (connections tracked, bytes buffered) given.
    pub fn with_engine(
        registry: Arc<Registry>,
        source: P,
        config: PipelineConfig,
        engine: EngineConfig,
    ) -> Self {
        Self {
            engine: Engine::with_config(registry, engine),
            source,
            config,
            processes: HashMap::default(),
            described: HashMap::default(),
            flows: HashMap::default(),
            ends: HashMap::default(),
            listeners: HashMap::default(),
            peer_processes: HashMap::default(),
            outputs: Vec::new(),
            summaries: Vec::new(),
            docs: Vec::new(),
            stats: PipelineStats::default(),
            containers: None,
            uncontained: HashMap::default(),
            profile_named: HashSet::new(),
            described_containers: HashSet::new(),
            known: 0,
        }
    }

    /// Turns container enrichment on: events name the containers of both ends and where the
    /// receiver is (`source_container`, `destination_container`, `destination_type`), and a
    /// process in a container is named by the container's service.
    #[must_use]
    pub fn with_containers(mut self, containers: Box<dyn ContainerSource>) -> Self {
        self.containers = Some(containers);
        self
    }

    /// What was produced so far.
    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    /// The engine's counters (bytes not captured, bytes sessions dropped, ...).
    pub fn engine_stats(&self) -> adi_core::engine::EngineStats {
        self.engine.stats()
    }

    /// Handles one input; appends the events it produces to `out`.
    pub fn handle(&mut self, input: Input<'_>, out: &mut Vec<Event>) {
        match input {
            Input::Opened { key, ts_ns } => {
                if self.flows.get(&key).is_some_and(|f| f.first_ts >= ts_ns) {
                    // Its bytes were reported before its opening (another CPU's ring buffer
                    // slot came first): the same connection, already tracked.
                    return;
                }
                self.close(&key, ts_ns, out);
                let mut summaries = std::mem::take(&mut self.summaries);
                self.engine.open(key, ts_ns, &mut summaries);
                self.forget_evicted(&mut summaries);
                self.summaries = summaries;
                self.track(key, ts_ns, "");
            }
            Input::Data {
                key,
                dir,
                ts_ns,
                payload,
                missing,
                after_skip,
                comm,
                tls,
            } => {
                // Whether the connection is known, and read as plaintext: one lookup.
                let read_as_plaintext = self.flows.get(&key).map(|f| f.tls);
                if read_as_plaintext == Some(true) && !tls {
                    // Encrypted bytes reported after the plaintext began (another CPU's ring
                    // buffer slot came first): the plaintext tells it all.
                    self.stats.tls_ciphertext += 1;
                    return;
                }
                let mut outputs = std::mem::take(&mut self.outputs);
                let mut summaries = std::mem::take(&mut self.summaries);
                if read_as_plaintext.is_none() {
                    // Bytes of a connection never seen opening: joined mid-stream.
                    self.track(key, ts_ns, comm);
                    if self.config.mid_stream_unopened {
                        self.engine.mark_mid_stream(key, ts_ns, &mut summaries);
                        if let Some(f) = self.flows.get_mut(&key) {
                            f.mid_stream = true;
                        }
                    }
                }
                if tls && read_as_plaintext != Some(true) {
                    self.restart_on_plaintext(key, ts_ns, &mut summaries);
                }
                if after_skip {
                    self.engine.on_skipped(&key, ts_ns, &mut outputs);
                    // Requests skipped with the exchange will never be answered here.
                    if let Some(f) = self.flows.get_mut(&key) {
                        f.pending.clear();
                    }
                }
                self.engine
                    .on_data(key, dir, ts_ns, payload, &mut outputs, &mut summaries);
                if missing > 0 {
                    self.engine.on_gap(&key, dir, missing, &mut outputs);
                }
                self.forget_evicted(&mut summaries);
                self.summaries = summaries;
                self.publish(&mut outputs, comm, out);
                self.outputs = outputs;
            }
            Input::Closed { key, ts_ns } => self.close(&key, ts_ns, out),
            Input::Exec {
                pid,
                ts_ns,
                watched,
                comm,
            } => {
                self.end_process(pid, ts_ns, out);
                if watched {
                    self.describe_as(pid, comm, out);
                }
            }
            Input::Exit { pid, ts_ns } => self.end_process(pid, ts_ns, out),
        }
    }

    /// Classifies a connection again from its first plaintext on: what its encrypted bytes
    /// said (a `tls` verdict) gives way to what they carry. The connection keeps what its
    /// handshake told (the server name) and is marked `tls` in its events.
    fn restart_on_plaintext(&mut self, key: FlowKey, ts_ns: u64, evicted: &mut Vec<FlowSummary>) {
        let Some(f) = self.flows.get_mut(&key) else {
            return;
        };
        f.tls = true;
        f.verdict = None;
        // Handshake records, not requests of the plaintext's protocol.
        f.pending.clear();
        // The engine's state of the encrypted bytes is of no use to the plaintext.
        self.engine.restart(key, ts_ns, f.mid_stream, evicted);
    }

    /// Ends every open connection (at shutdown, or the end of a capture).
    pub fn finish(&mut self, ts_ns: u64, out: &mut Vec<Event>) {
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for key in keys {
            self.close(&key, ts_ns, out);
        }
    }

    /// Describes process `pid` now (a process found watched at start), so that its `process`
    /// event comes before its traffic's.
    pub fn describe(&mut self, pid: u32, out: &mut Vec<Event>) {
        self.describe_as(pid, "", out);
    }

    /// Reads process `pid` (known to the source as `comm`) and emits its description.
    fn describe_as(&mut self, pid: u32, comm: &str, out: &mut Vec<Event>) {
        let _ = self.process(pid, comm);
        out.append(&mut self.docs);
    }

    /// Forgets the connections the engine evicted to make room for new ones (its flow limit):
    /// their final verdicts say nothing new, and their state here must not outlive them.
    fn forget_evicted(&mut self, summaries: &mut Vec<FlowSummary>) {
        for evicted in summaries.drain(..) {
            self.untrack(&evicted.verdict.key);
        }
    }

    /// Forgets a connection: its state (counting the requests it left unanswered) and its
    /// end, unless another process holds that end now.
    fn untrack(&mut self, key: &FlowKey) {
        if let Some(left) = self.flows.remove(key) {
            self.stats.unanswered_requests += left.pending.len() as u64;
        }
        let end = local_remote(key);
        if self.ends.get(&end).is_some_and(|(pid, _)| *pid == key.pid) {
            self.ends.remove(&end);
            self.known += 1;
        }
    }

    /// Starts tracking a connection, and remembers which watched process holds this end.
    fn track(&mut self, key: FlowKey, ts_ns: u64, comm: &str) {
        self.flows.insert(
            key,
            FlowState {
                first_ts: ts_ns,
                ..FlowState::default()
            },
        );
        if key.pid != 0 {
            if let Some(service) = self.process(key.pid, comm).service {
                if key.role == adi_core::flow::Role::Server {
                    self.listeners
                        .insert(key.server, (key.pid, Arc::clone(&service)));
                }
                self.ends.insert(local_remote(&key), (key.pid, service));
                self.known += 1;
            }
        }
    }

    /// The process behind `pid`, read once per program (a changed comm means an exec or a
    /// reused pid: read again). A process seen for the first time is described (queued in
    /// `docs` when asked for).
    fn process(&mut self, pid: u32, comm: &str) -> ProcessInfo {
        if let Some(p) = self.processes.get(&pid) {
            if (&*p.comm == comm || comm.is_empty()) && !self.container_stale(pid, p) {
                return p.clone();
            }
        }
        if pid == 0 {
            return ProcessInfo::new(0, comm, "");
        }
        // The cgroup first: a short-lived process may be gone a moment later.
        let container = self.containers.as_mut().and_then(|c| {
            let found = c.of_pid(pid);
            if found.is_none() {
                self.uncontained.insert(pid, c.generation());
            }
            found
        });
        let details = self.source.details(pid);
        let mut info = match &details {
            Some(d) => {
                let cmdline = d.args.join(" ");
                let cmdline = if self.config.redact {
                    adi_core::redact::cmdline(&cmdline).into_owned()
                } else {
                    cmdline
                };
                ProcessInfo::new(pid, &d.comm, &cmdline)
            }
            None => ProcessInfo::new(pid, comm, ""),
        };
        let environ = details
            .as_ref()
            .and_then(|d| d.environ.as_ref())
            .and_then(|e| e.as_ref().ok());
        if environ.is_some_and(|e| service::profile_name(e).is_some()) {
            self.profile_named.insert(pid);
        } else {
            self.profile_named.remove(&pid);
        }
        let args = details.as_ref().map_or(&[][..], |d| &d.args[..]);
        if let Some(c) = &container {
            self.describe_container(c);
        }
        // A process gone before it was read, known by no name yet, has no service (rather
        // than an empty one).
        let name = service::service_name_in(
            environ.map(Vec::as_slice),
            container.as_ref().map(|c| c.service.as_str()),
            args,
            &info.comm,
        );
        info.service = (!name.is_empty()).then(|| Arc::from(name.as_str()));
        info.container = container;
        if let (Some(d), Some(service)) = (&details, &info.service) {
            for addr in &d.listening {
                self.listeners.insert(*addr, (pid, Arc::clone(service)));
            }
        }
        if self.config.describe_processes {
            let start = details.as_ref().map_or(0, |d| d.start_time);
            if self.described.get(&pid) != Some(&start) {
                self.described.insert(pid, start);
                let environ = match details.and_then(|d| d.environ) {
                    Some(e) => e,
                    None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
                };
                let ts = rfc3339_nanos(adi_core::time::now_unix_ns());
                let mut doc = ProcessEvent::new(pid, Arc::clone(&info.cmdline), environ, ts);
                if self.config.redact {
                    doc.redact();
                }
                self.docs.push(Event::Process(doc));
            }
        }
        self.processes.insert(pid, info.clone());
        self.known += 1;
        info
    }

    /// Whether what is known of process `pid` (`p`) predates a container the runtimes
    /// reported since it was read.
    fn container_stale(&self, pid: u32, p: &ProcessInfo) -> bool {
        match &self.containers {
            Some(c) if p.container.is_none() => self
                .uncontained
                .get(&pid)
                .is_none_or(|seen| *seen != c.generation()),
            _ => false,
        }
    }

    /// The process of `key` as its events name it: with the service at the other end when
    /// that end is a watched process too (never the process itself), else the program
    /// listening there on this host, and where that end is (container enrichment on).
    ///
    /// A connection's events share one copy while nothing it was made from changed (and
    /// the program did not change its name): no lookups, and one reference count per event
    /// instead of one per name in it (cloning and dropping those was 3% of adi's time).
    fn process_of(&mut self, key: &FlowKey, comm: &str) -> Arc<ProcessInfo> {
        if self.containers.is_none() {
            let shown = self.flows.get(key).and_then(|f| f.process.as_ref());
            if let Some((known, info)) = shown {
                if *known == self.known && (comm.is_empty() || *info.comm == *comm) {
                    return Arc::clone(info);
                }
            }
        }
        let info = Arc::new(self.process_of_uncached(key, comm));
        if let Some(f) = self.flows.get_mut(key) {
            f.process = Some((self.known, Arc::clone(&info)));
        }
        info
    }

    /// [`Pipeline::process_of`], looked up afresh.
    fn process_of_uncached(&mut self, key: &FlowKey, comm: &str) -> ProcessInfo {
        let mut info = self.process(key.pid, comm);
        if info.container.is_none() && self.containers.is_some() {
            self.contained_by_address(key, &mut info);
        }
        let place = self.containers.is_some().then(|| self.place_of(key, &info));
        self.name_peer(key, &mut info, place.as_ref());
        info.peer_place = place;
        info
    }

    /// A process whose cgroup could not be read (it exited before adi asked, as a short-lived
    /// client or a server's per-connection child does) is in the container that holds its
    /// end's address: that container's own address, not loopback or a published port.
    fn contained_by_address(&mut self, key: &FlowKey, info: &mut ProcessInfo) {
        let (local, _) = local_remote(key);
        let ip = adi_core::flow::unmapped_ip(local);
        if ip.is_loopback() || ip.is_unspecified() {
            return;
        }
        let Some(containers) = self.containers.as_mut() else {
            return;
        };
        if !containers.holds(ip) {
            return;
        }
        let Some(c) = containers.at(SocketAddr::new(ip, 0)) else {
            return;
        };
        if !self.profile_named.contains(&key.pid) {
            info.service = Some(Arc::from(c.service.as_str()));
        }
        self.describe_container(&c);
        info.container = Some(c);
        if let Some(known) = self.processes.get_mut(&key.pid) {
            known.container.clone_from(&info.container);
            known.service.clone_from(&info.service);
        }
    }

    /// Queues a `container` event for a container seen for the first time (before the event
    /// that names it).
    fn describe_container(&mut self, c: &Arc<ContainerInfo>) {
        if self.described_containers.contains(&c.container_id) {
            return;
        }
        if self.described_containers.len() >= MAX_DESCRIBED_CONTAINERS {
            // Containers come and go: describe again rather than grow.
            self.described_containers.clear();
        }
        self.described_containers.insert(c.container_id.clone());
        let ts = rfc3339_nanos(adi_core::time::now_unix_ns());
        self.docs.push(Event::Container(ContainerEvent::new(c, ts)));
    }

    /// Where the other end of `key` is, seen from its process `me`: found once per connection,
    /// again when the runtimes changed and it was in no container.
    fn place_of(&mut self, key: &FlowKey, me: &ProcessInfo) -> Place {
        let generation = self.containers.as_ref().map_or(0, |c| c.generation());
        if let Some((seen, place)) = self.flows.get(key).and_then(|f| f.place.as_ref()) {
            if *seen == generation || matches!(place, Place::Container(_)) {
                return place.clone();
            }
        }
        let (local, remote) = local_remote(key);
        let peer_pid = self.ends.get(&(remote, local)).map(|(pid, _)| *pid);
        let place = self.locate(remote, peer_pid, me);
        if let Some(f) = self.flows.get_mut(key) {
            f.place = Some((generation, place.clone()));
        }
        place
    }

    /// Where `remote` is: a container the runtimes know (by address or published port), the
    /// container of the watched process at that end, `me`'s own container for its loopback,
    /// a process of this host, or elsewhere.
    fn locate(&mut self, remote: SocketAddr, peer_pid: Option<u32>, me: &ProcessInfo) -> Place {
        let ip = adi_core::flow::unmapped_ip(remote);
        let Some(containers) = self.containers.as_mut() else {
            return Place::External;
        };
        if let Some(c) = containers.at(remote) {
            self.describe_container(&c);
            return Place::Container(c);
        }
        let host = ip.is_loopback() || ip.is_unspecified() || containers.is_host(ip);
        // Loopback stays inside a network namespace: a container's own, unless it is on the
        // host's network.
        let own_loopback = ip.is_loopback()
            && me
                .container
                .as_ref()
                .is_some_and(|c| !containers.host_network(me.pid, c));
        if let Some(pid) = peer_pid.filter(|pid| *pid != me.pid) {
            if let Some(c) = self.process(pid, "").container {
                return Place::Container(c);
            }
            return Place::Process;
        }
        if let Some(mine) = me.container.as_ref().filter(|_| own_loopback) {
            return Place::Container(Arc::clone(mine));
        }
        if host {
            Place::Process
        } else {
            Place::External
        }
    }

    /// Names the other end of `key` on `info`: the watched process there (`peer_service`),
    /// else the program listening there on this host (`peer_process`). With container
    /// enrichment a watched end must be in the container `place` names (every container's
    /// server listens on its own `0.0.0.0:PORT`).
    fn name_peer(&mut self, key: &FlowKey, info: &mut ProcessInfo, place: Option<&Place>) {
        if let Some(peer) = self.flows.get(key).and_then(|f| f.peer.clone()) {
            info.peer_service = Some(peer);
            return;
        }
        let wanted = place.map(|p| p.container().map(|c| c.container_id.as_str()));
        let fits = |processes: &HashMap<u32, ProcessInfo>, pid: u32| {
            wanted.is_none_or(|want| {
                let theirs = processes
                    .get(&pid)
                    .and_then(|p| p.container.as_ref())
                    .map(|c| c.container_id.as_str());
                theirs == want
            })
        };
        let (local, remote) = local_remote(key);
        let processes = &self.processes;
        let peer = self
            .ends
            .get(&(remote, local))
            .filter(|(pid, _)| fits(processes, *pid))
            .or_else(|| {
                if key.role != adi_core::flow::Role::Client {
                    return None;
                }
                // The server's side has not spoken yet: whoever listens there (a wildcard
                // bind listens on every address of its port).
                let any = |ip: std::net::IpAddr| SocketAddr::new(ip, key.server.port());
                [
                    key.server,
                    any(std::net::Ipv4Addr::UNSPECIFIED.into()),
                    any(std::net::Ipv6Addr::UNSPECIFIED.into()),
                ]
                .iter()
                .filter_map(|a| self.listeners.get(a))
                .find(|(pid, _)| fits(processes, *pid))
            });
        if let Some((pid, service)) = peer {
            if *pid != key.pid {
                info.peer_service = Some(Arc::clone(service));
                if let Some(f) = self.flows.get_mut(key) {
                    f.peer = Some(Arc::clone(service));
                }
            }
            return;
        }
        if key.role == adi_core::flow::Role::Client && !matches!(place, Some(Place::Container(_))) {
            info.peer_process = self.peer_process(key.server, key.pid);
        }
    }

    /// The unwatched program listening at `addr` on this host (never `me` itself).
    fn peer_process(&mut self, addr: SocketAddr, me: u32) -> Option<Arc<str>> {
        let found = if let Some(known) = self.peer_processes.get(&addr) {
            known.clone()
        } else {
            let found = self.source.listener(addr).and_then(|pid| {
                let d = self.source.details(pid)?;
                let environ = d.environ.as_ref().and_then(|e| e.as_ref().ok());
                let name = service::service_name(environ.map(Vec::as_slice), &d.args, &d.comm);
                // A forwarder (a container's published port, a port-forward) is not the
                // service behind it: the destination is then named by the connection.
                (!FORWARDERS.contains(&name.as_str())).then(|| (pid, Arc::from(name.as_str())))
            });
            if self.peer_processes.len() >= MAX_PEER_PROCESSES {
                // Listeners come and go: forget them all rather than grow.
                self.peer_processes.clear();
            }
            self.peer_processes.insert(addr, found.clone());
            self.known += 1;
            found
        };
        found.filter(|(pid, _)| *pid != me).map(|(_, name)| name)
    }

    /// Ends every connection of process `pid` and forgets what is cached about it.
    fn end_process(&mut self, pid: u32, ts_ns: u64, out: &mut Vec<Event>) {
        let keys: Vec<FlowKey> = self
            .flows
            .keys()
            .filter(|k| k.pid == pid)
            .copied()
            .collect();
        for key in keys {
            self.close(&key, ts_ns, out);
        }
        self.processes.remove(&pid);
        self.known += 1;
        self.uncontained.remove(&pid);
        self.profile_named.remove(&pid);
        self.described.remove(&pid);
        self.listeners.retain(|_, (p, _)| *p != pid);
    }

    /// Ends a connection: what only the close delimits, and a port-only verdict for a
    /// connection that said nothing the classifiers could name.
    fn close(&mut self, key: &FlowKey, ts_ns: u64, out: &mut Vec<Event>) {
        if !self.flows.contains_key(key) {
            return;
        }
        let mut outputs = std::mem::take(&mut self.outputs);
        self.engine.finish(key, ts_ns, &mut outputs);
        self.publish(&mut outputs, "", out);
        self.outputs = outputs;
        if let Some(summary) = self.engine.close(key) {
            let v = &summary.verdict;
            if v.confidence == Confidence::PORT_ONLY {
                let p = self.process_of(key, "");
                let e = ConnectionEvent::from_classification(v, p, rfc3339_nanos(ts_ns));
                self.emit(Event::Connection(e), out);
            }
        }
        self.untrack(key);
    }

    /// Turns the engine's outputs into events.
    fn publish(&mut self, outputs: &mut Vec<Output>, comm: &str, out: &mut Vec<Event>) {
        // What this batch's messages say about their connection goes on the connection event
        // of the same batch; a connection announced before is announced again with it.
        let mut grown: Vec<(FlowKey, u64)> = Vec::new();
        for o in outputs.iter() {
            if let Output::Record(r) = o {
                if self.learn(&r.key, &r.record.connection) && !grown.iter().any(|g| g.0 == r.key) {
                    grown.push((r.key, r.ts_ns));
                }
            }
        }
        for o in outputs.drain(..) {
            match o {
                Output::Classified(c) => {
                    grown.retain(|g| g.0 != c.key);
                    self.announce(c, comm, out);
                }
                Output::Record(r) => self.record(r, comm, out),
            }
        }
        for (key, ts_ns) in grown {
            let verdict = self.flows.get(&key).and_then(|f| f.verdict.clone());
            if let Some(c) = verdict {
                self.announce(Classification { ts_ns, ..c }, comm, out);
            }
        }
    }

    /// Adds what a message says about its connection to the connection's summary; true when
    /// the summary grew.
    fn learn(&mut self, key: &FlowKey, facts: &[(&'static str, String)]) -> bool {
        let Some(flow) = self.flows.get_mut(key) else {
            return false;
        };
        let mut grew = false;
        for (name, value) in facts {
            if flow.summary.len() >= MAX_SUMMARY || flow.summary.contains_key(name) {
                continue;
            }
            let mut value = value.clone();
            if value.len() > MAX_SUMMARY_VALUE {
                let mut end = MAX_SUMMARY_VALUE;
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                value.truncate(end);
            }
            flow.summary.insert(name, value);
            grew = true;
        }
        grew
    }

    /// A `connection` event for verdict `c`, with what is known about the connection.
    fn announce(&mut self, c: Classification, comm: &str, out: &mut Vec<Event>) {
        let p = self.process_of(&c.key, comm);
        let mut e = ConnectionEvent::from_classification(&c, p, rfc3339_nanos(c.ts_ns));
        if let Some(flow) = self.flows.get_mut(&c.key) {
            e.summary.clone_from(&flow.summary);
            e.tls = flow.tls;
            flow.verdict = Some(c);
        }
        self.emit(Event::Connection(e), out);
    }

    /// One parsed message: an `http` event for HTTP-category protocols, a `message` event
    /// for every other, a response carrying its request's operation and resource.
    fn record(&mut self, mut r: FlowRecord, comm: &str, out: &mut Vec<Event>) {
        let category = self
            .engine
            .registry()
            .get(r.protocol.as_str())
            .map_or(Category::UNKNOWN, |reg| reg.category);
        let p = self.process_of(&r.key, comm);
        let ts = rfc3339_nanos(r.ts_ns);
        let tls = self.flows.get(&r.key).is_some_and(|f| f.tls);
        // HTTP messages are requests and responses (interim ones too); an HTTP-category
        // record that names an operation without being either is a control frame (HTTP/2
        // RST_STREAM, GOAWAY, PUSH_PROMISE): a `message` event.
        let frame = r.record.kind == RecordKind::Message && r.record.op.is_some();
        if category == Category::HTTP && !frame {
            if let (Some(x), Some(flow)) = (r.record.exchange, self.flows.get_mut(&r.key)) {
                // A multiplexed response names its request's path (gRPC: the method).
                match r.record.kind {
                    RecordKind::Request => {
                        if flow.exchanges.len() >= MAX_PENDING {
                            flow.exchanges.pop_first();
                        }
                        flow.exchanges.insert(x, r.record.resource.clone());
                    }
                    RecordKind::Response => {
                        if let Some(path) = flow.exchanges.remove(&x) {
                            r.record.resource = r.record.resource.take().or(path);
                        }
                    }
                    RecordKind::Message | RecordKind::Switch => {}
                }
            }
            let mut e = HttpEvent::from_record(r, p, ts);
            e.tls = tls;
            self.emit(Event::Http(e), out);
            return;
        }
        if let Some(flow) = self.flows.get_mut(&r.key) {
            match r.record.kind {
                RecordKind::Request => {
                    if flow.pending.len() < MAX_PENDING {
                        flow.pending
                            .push_back((r.record.op.clone(), r.record.resource.clone()));
                    }
                }
                RecordKind::Response => match flow.pending.pop_front() {
                    Some((op, resource)) => {
                        if r.record.op.is_none() {
                            r.record.op = op;
                        }
                        if r.record.resource.is_none() {
                            r.record.resource = resource;
                        }
                    }
                    None => self.stats.unpaired_responses += 1,
                },
                RecordKind::Message | RecordKind::Switch => {}
            }
        }
        let mut e = MessageEvent::from_record(r, category, p, ts);
        e.tls = tls;
        self.emit(Event::Message(e), out);
    }

    /// Redacts, counts and appends one event, after the process descriptions it needs.
    fn emit(&mut self, mut e: Event, out: &mut Vec<Event>) {
        out.append(&mut self.docs);
        if self.config.redact {
            match &mut e {
                Event::Http(h) => h.redact(),
                Event::Message(m) => m.redact(),
                Event::GoHttp(g) => g.redact(),
                Event::Connection(_) | Event::Lost(_) | Event::Process(_) | Event::Container(_) => {
                }
            }
        }
        match &e {
            Event::Http(_) => self.stats.http += 1,
            Event::Message(_) => self.stats.messages += 1,
            Event::Connection(_) => self.stats.connections += 1,
            Event::Lost(_) | Event::Process(_) | Event::GoHttp(_) | Event::Container(_) => {}
        }
        self.stats.events += 1;
        out.push(e);
    }

    /// Publishes an event from elsewhere (Go uprobes) through the same redaction and counts.
    pub fn pass(&mut self, e: Event, out: &mut Vec<Event>) {
        self.emit(e, out);
    }
}

/// A connection's (local, remote) addresses as its observing process sees them.
fn local_remote(key: &FlowKey) -> (SocketAddr, SocketAddr) {
    match key.role {
        adi_core::flow::Role::Server => (key.server, key.client),
        adi_core::flow::Role::Client | adi_core::flow::Role::Wire => (key.client, key.server),
    }
}
