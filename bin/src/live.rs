//! The main job: live capture. Kernel events → connection tracker → engine → events → bus →
//! sinks, until SIGINT or SIGTERM.
//!
//! - The tracker maps each (pid, kernel socket) to a flow: its role comes from the TCP state
//!   changes the kernel saw (connect, accept), or, for a connection opened before adi
//!   started, from whether its local port is a listening port (the kernel is then told, so
//!   that it can sample the connection).
//! - Under load the kernel captures at most `--max-rate` request/response exchanges per
//!   second in full and skips the others whole, before copying a byte; skipped messages are
//!   counted and reported like every other loss.
//! - Once a connection is classified as something other than HTTP, the kernel is told to copy
//!   only the first bytes of each of its messages (enough for the protocol summaries).
//! - Processes are chosen by `--all`, `--pid`, or the ADI_PROFILE opt-in, which the kernel
//!   applies at every exec (before the new program runs) and a /proc scan applies at start to
//!   what already runs; user space re-checks each exec from /proc and writes the environment
//!   inventory (`env-yaml`).
//! - Every loss is counted and reported: kernel ring buffer overflows, undecodable records,
//!   bus queues of slow sinks, failed sink writes; as `lost` events every 10 s while
//!   non-zero, and in the exit summary.

use std::collections::HashSet;

/// The hot path's maps (flows, sockets, processes: looked up for every message): foldhash,
/// seeded per process, instead of std's SipHash, which profiles showed at 3 to 4% of adi's CPU
/// under full capture.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adi_core::bus::{Bus, Delivery, EncodedSubscriber, Subscriber};
use adi_core::event::{Event, LostEvent};
use adi_core::flow::{FlowKey, Role};
use adi_core::time::rfc3339_nanos;
use adi_core::{Category, Direction, Registry};
use adi_probes::live::{KernelProbes, KernelStats, ProbeConfig};
use adi_probes::raw::{DataDir, EventKind, KernelRole, RawEvent};
use adi_sinks::service_map::MapOptions;
use adi_sinks::{EnvYamlSink, JsonlSink, ServiceMapSink, Sink, SinkSpec};
use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use adi_pipeline::{Input, OptIn, Pipeline, PipelineConfig, ProcFs};

/// Bytes per message the kernel copies once a connection is known not to be HTTP.
const NON_HTTP_CAP: u32 = 256;
/// Events queued per sink (those that take events: the service map, the env inventory)
/// before the slowest starts losing (and counting) them. Chosen when the jsonl sink took
/// events too: at full capture of a saturated server (`benches/overhead`, `--max-rate 0`) it
/// fell behind capture and the queue held adi's memory (an `http` event is about 2 KiB):
/// measured side by side, 4,096 events kept the peak under load at 69-73 MiB and 16,384 at
/// 88-92 MiB, and both lost the same share at the queue (30-40% per run, counted); 65,536
/// peaked at 185-190 MiB. A queue only absorbs bursts (4,096 events are 20 ms of a saturated
/// nginx); a sink slower than capture loses the difference whatever its length.
const BUS_CAPACITY: usize = 4_096;
/// Bytes of encoded events (JSON lines) queued per encoded sink (`jsonl`) before it starts
/// losing (and counting) them: the 4,096 events above at about 1 KiB a line, 20 ms of a
/// saturated nginx. Measured side by side at full capture (`benches/overhead/run.sh 8 4`):
/// 2 MiB lost two to three times as many lines at the queue as the event queue before it
/// (a destination's stalls last longer than 10 ms), 4 MiB about as many, 8 MiB no fewer
/// than that but 4 MiB more resident.
const ENCODED_CAPACITY: usize = 4 << 20;
/// Most ring buffer records handled per turn of the main loop, before signals, ticks, Go
/// events and the sinks' hand-over get theirs.
const RECORDS_PER_TURN: usize = 4_096;
/// How often `lost` events are emitted while there are losses.
const LOST_EVERY: Duration = Duration::from_secs(10);
/// How often, at most, the listening-port table is read again (only when a connection of
/// unknown role has a local port the last read did not list).
const RESCAN_EVERY: Duration = Duration::from_secs(2);

/// What the main command was asked to do.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches"
)]
pub struct LiveOptions {
    /// `--all`.
    pub watch_all: bool,
    /// `--pid`.
    pub pids: Vec<u32>,
    /// `--capture-bytes`.
    pub capture_bytes: u32,
    /// `--max-rate`: exchanges per second captured in full (0: all).
    pub max_rate: u32,
    /// `--sink`, with the `OUTPUT_PATH` default applied.
    pub sinks: Vec<SinkSpec>,
    /// `ADI_PROFILE_ALLOWED`.
    pub allowed: String,
    /// `ENV_PREFIX_LIST`, for the env-yaml sink.
    pub env_prefixes: Vec<String>,
    /// Replace secrets with `<redacted>` (not `--no-redact`).
    pub redact: bool,
    /// `--go-uprobes`: `go_http` events from watched Go programs, and which.
    pub go_uprobes: crate::go_http::GoMode,
    /// `--tls-uprobes`: TLS plaintext from OpenSSL-compatible libraries, and for whom.
    pub tls_uprobes: crate::tls::TlsMode,
    /// `--idle-priority`: SCHED_IDLE for every thread of adi.
    pub idle_priority: bool,
    /// A one-line status every few seconds on stderr (a terminal, and not `--quiet`).
    pub status_line: bool,
    /// How the service map names paths.
    pub map: MapOptions,
    /// Container runtime sockets (container enrichment).
    pub runtimes: crate::containers::RuntimeArgs,
}

/// How often the status line is printed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Runs live capture until a signal; returns the exit status.
///
/// # Errors
///
/// When the probes cannot be loaded or a sink cannot be opened: one sentence naming the fix.
pub fn run(opts: &LiveOptions, registry: Arc<Registry>) -> anyhow::Result<ExitCode> {
    if opts.idle_priority {
        // Before the runtime starts: its threads inherit the policy.
        if let Err(e) = adi_probes::host::set_idle_priority() {
            anyhow::bail!("--idle-priority: cannot switch to SCHED_IDLE: {e}");
        }
    }
    // One thread reads the kernel and runs the pipeline; sinks write on their own threads.
    // No worker pool: each hand-off between threads costs the traced services a wakeup.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(opts, registry))
}

/// Checks, before anything is loaded or created, that every sink file can be created: its
/// directory exists and is not read-only, and the path is not a directory.
pub(crate) fn check_sinks(specs: &[SinkSpec]) -> anyhow::Result<()> {
    for spec in specs {
        match spec {
            SinkSpec::Jsonl(None) => {}
            SinkSpec::Jsonl(Some(path)) | SinkSpec::EnvYaml(path) | SinkSpec::ServiceMap(path) => {
                adi_sinks::check_writable(path)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn open_sinks(
    specs: &[SinkSpec],
    env_prefixes: &[String],
    map: MapOptions,
) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for spec in specs {
        match spec {
            SinkSpec::Jsonl(None) => sinks.push(Box::new(JsonlSink::stdout())),
            SinkSpec::Jsonl(Some(path)) => sinks.push(Box::new(JsonlSink::file(path)?)),
            SinkSpec::EnvYaml(path) => {
                sinks.push(Box::new(EnvYamlSink::file(path, env_prefixes.to_vec())?));
            }
            SinkSpec::ServiceMap(path) => {
                sinks.push(Box::new(ServiceMapSink::file(path, map)));
            }
        }
    }
    Ok(sinks)
}

/// Counts what sinks could not write, per sink.
#[derive(Default)]
struct SinkCounters {
    written: AtomicU64,
    failed: AtomicU64,
}

/// A sink thread's failures: each counted, the first said once on stderr.
struct SinkFailures {
    counters: Arc<SinkCounters>,
    reported: bool,
}

impl SinkFailures {
    fn new(counters: Arc<SinkCounters>) -> Self {
        Self {
            counters,
            reported: false,
        }
    }

    /// `events` events of `sink` were not written, because of `e`.
    fn fail(&mut self, sink: &dyn Sink, events: u64, e: &dyn std::fmt::Display) {
        self.counters.failed.fetch_add(events, Ordering::Relaxed);
        if !self.reported {
            eprintln!(
                "adi: sink {}: {e}; its events are counted as lost from now on",
                sink.name()
            );
            self.reported = true;
        }
    }

    fn written(&self, events: u64) {
        self.counters.written.fetch_add(events, Ordering::Relaxed);
    }
}

fn lost_event(source: String, count: u64) -> Arc<Event> {
    let timestamp = rfc3339_nanos(adi_core::time::now_unix_ns());
    Arc::new(Event::Lost(LostEvent {
        timestamp,
        source,
        count,
    }))
}

fn sink_loop(
    mut sink: Box<dyn Sink>,
    mut sub: Subscriber<Event>,
    counters: Arc<SinkCounters>,
    rt: tokio::runtime::Handle,
) {
    let source = format!("bus:{}", sub.name());
    let mut failures = SinkFailures::new(counters);
    loop {
        // Drain what is ready, flush, then wait: output appears promptly without a flush per
        // event under load.
        let delivery = if let Some(d) = sub.try_recv() {
            // Under load the queue never empties: a debounced write still happens when due.
            if sink.due().is_some_and(|at| at <= std::time::Instant::now()) {
                if let Err(e) = sink.flush() {
                    failures.fail(sink.as_ref(), 1, &e);
                }
            }
            d
        } else {
            if let Err(e) = sink.flush() {
                failures.fail(sink.as_ref(), 1, &e);
            }
            sub.give_back();
            // A debounced sink (the service map) is woken when its write is due.
            let next = match sink.due() {
                Some(at) => {
                    let wait = at.saturating_duration_since(std::time::Instant::now());
                    match rt.block_on(tokio::time::timeout(wait, sub.recv())) {
                        Ok(next) => next,
                        Err(_) => continue,
                    }
                }
                None => rt.block_on(sub.recv()),
            };
            match next {
                Some(d) => d,
                None => break,
            }
        };
        let event = match delivery {
            Delivery::Event(e) => e,
            // Dropped by this sink's own queue, or upstream (the kernel ring buffer).
            Delivery::Lost(count) => lost_event(source.clone(), count),
            Delivery::LostAt(at, count) => lost_event(at, count),
        };
        match sink.write(&event) {
            Ok(()) => failures.written(1),
            Err(e) => failures.fail(sink.as_ref(), 1, &e),
        }
        // Freed by the pipeline's thread, which allocated it.
        sub.release(event);
    }
    if let Err(e) = sink.finish() {
        failures.fail(sink.as_ref(), 1, &e);
    }
}

/// [`sink_loop`] for a sink whose events the capturing thread encodes: it only writes the
/// bytes, a batch at a time (each written through: its events are counted written or
/// failed as a whole).
fn encoded_sink_loop(
    mut sink: Box<dyn Sink>,
    mut sub: EncodedSubscriber,
    counters: Arc<SinkCounters>,
    rt: tokio::runtime::Handle,
) {
    let mut failures = SinkFailures::new(counters);
    loop {
        let batch = match sub.try_recv() {
            Some(b) => b,
            None => match rt.block_on(sub.recv()) {
                Some(b) => b,
                None => break,
            },
        };
        if let Some(e) = &batch.error {
            failures.fail(sink.as_ref(), batch.failed, e);
        }
        match sink.write_encoded(&batch.bytes) {
            Ok(()) => failures.written(batch.events),
            Err(e) => failures.fail(sink.as_ref(), batch.events, &e),
        }
        sub.give_back(batch.bytes);
    }
    if let Err(e) = sink.finish() {
        failures.fail(sink.as_ref(), 0, &e);
    }
}

/// CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads) to Unix time, measured once.
fn monotonic_to_unix_offset() -> i128 {
    let mono = adi_probes::host::monotonic_ns();
    i128::from(adi_core::time::now_unix_ns()) - mono
}

/// What the live source keeps per connection.
struct Conn {
    key: FlowKey,
    /// Already told the kernel to copy less.
    capped: bool,
    /// Plaintext from its TLS library was seen.
    plaintext: bool,
}

/// A connection's (local, remote) ports as its observing process sees them.
fn ports_of(key: &FlowKey) -> (u16, u16) {
    match key.role {
        Role::Server => (key.server.port(), key.client.port()),
        Role::Client | Role::Wire => (key.client.port(), key.server.port()),
    }
}

impl Conn {
    fn new(key: FlowKey) -> Self {
        Self {
            key,
            capped: false,
            plaintext: false,
        }
    }
}

/// The live source: kernel records to pipeline input. It maps each (pid, kernel socket) to
/// a connection, works out the role of connections opened before adi started (from the
/// listening ports, and tells the kernel), re-decides the opt-in at execs the kernel could
/// not decide, and, once a connection is classified as something other than HTTP, tells the
/// kernel to copy only its first bytes per message.
struct LiveSource {
    pipeline: Pipeline<ProcFs>,
    /// Connections by (pid, kernel socket).
    conns: HashMap<(u32, u64), Conn>,
    listening: HashSet<u16>,
    /// When `listening` was read.
    listening_read: Instant,
    clock_offset: i128,
    /// Events of the input being handled.
    events: Vec<Event>,
    /// `Some` when processes are chosen by the opt-in.
    opt_in: Option<OptIn>,
    /// Execs where user space changed the kernel's decision (the kernel could not read the
    /// whole environment, or disagreed).
    exec_overrides: u64,
}

impl LiveSource {
    fn new(
        registry: Arc<Registry>,
        opts: &LiveOptions,
        env_docs: bool,
        opt_in: Option<OptIn>,
        containers: Option<&crate::containers::Enrichment>,
    ) -> Self {
        let config = PipelineConfig {
            redact: opts.redact,
            describe_processes: env_docs,
            mid_stream_unopened: true,
        };
        let mut pipeline = Pipeline::new(registry, ProcFs, config);
        if let Some(c) = containers {
            pipeline = pipeline.with_containers(Box::new(c.source()));
        }
        Self {
            pipeline,
            conns: HashMap::default(),
            listening: adi_pipeline::proc::listening_ports(),
            listening_read: Instant::now(),
            clock_offset: monotonic_to_unix_offset(),
            events: Vec::new(),
            opt_in,
            exec_overrides: 0,
        }
    }

    fn wall(&self, mono_ns: u64) -> u64 {
        u64::try_from(i128::from(mono_ns) + self.clock_offset).unwrap_or(0)
    }

    /// Whether `port` is a listening port. The table is read again when it does not list the
    /// port (a server may have started since), at most every `RESCAN_EVERY`: reading it walks
    /// every TCP socket of the machine.
    fn is_listening(&mut self, port: u16) -> bool {
        if !self.listening.contains(&port) && self.listening_read.elapsed() >= RESCAN_EVERY {
            self.listening = adi_pipeline::proc::listening_ports();
            self.listening_read = Instant::now();
        }
        self.listening.contains(&port)
    }

    fn flow_key(&mut self, ev: &RawEvent, role: KernelRole) -> FlowKey {
        let role = match role {
            KernelRole::Server => Role::Server,
            KernelRole::Unknown if self.is_listening(ev.local.port()) => Role::Server,
            KernelRole::Client | KernelRole::Unknown => Role::Client,
        };
        let (client, server) = match role {
            Role::Server => (ev.remote, ev.local),
            Role::Client | Role::Wire => (ev.local, ev.remote),
        };
        FlowKey {
            pid: ev.tgid,
            role,
            client,
            server,
        }
    }

    /// Describes the processes watched at start, before any of their traffic.
    fn describe(&mut self, pid: u32, bus: &mut Bus<Event>) {
        self.pipeline.describe(pid, &mut self.events);
        self.publish(bus);
    }

    /// Handles one kernel record: `ev` its header, `payload` its bytes (borrowed from the
    /// ring buffer).
    fn handle(
        &mut self,
        ev: &RawEvent,
        payload: &[u8],
        probes: &mut KernelProbes,
        bus: &mut Bus<Event>,
    ) {
        let ts_ns = self.wall(ev.ts_ns);
        let id = (ev.tgid, ev.sock);
        match ev.kind {
            EventKind::Connect => {
                // A close we never saw (the socket address was reused): end the old one first.
                self.end(id, ts_ns);
                let key = self.flow_key(ev, ev.role);
                self.conns.insert(id, Conn::new(key));
                self.pipeline
                    .handle(Input::Opened { key, ts_ns }, &mut self.events);
            }
            EventKind::Data => {
                let key = match self.conns.get(&id) {
                    Some(c) if same_tuple(&c.key, ev) => c.key,
                    _ => {
                        self.end(id, ts_ns);
                        let key = self.flow_key(ev, ev.role);
                        self.conns.insert(id, Conn::new(key));
                        if ev.role == KernelRole::Unknown {
                            // Worked out from the listening ports: the kernel needs it to
                            // sample the connection by whole exchanges.
                            let ports = (ev.local.port(), ev.remote.port());
                            probes.set_connection(ev.sock, ports, kernel_role(key.role), None);
                        }
                        key
                    }
                };
                if ev.tls {
                    self.uncap_plaintext(id, ev.sock, probes);
                }
                let dir = match (key.role, ev.dir) {
                    (Role::Server, DataDir::Send) | (Role::Client | Role::Wire, DataDir::Recv) => {
                        Direction::ToClient
                    }
                    _ => Direction::ToServer,
                };
                let input = Input::Data {
                    key,
                    dir,
                    ts_ns,
                    payload,
                    missing: ev.real_len.saturating_sub(payload.len() as u64),
                    after_skip: ev.after_skip,
                    comm: &ev.comm,
                    tls: ev.tls,
                };
                self.pipeline.handle(input, &mut self.events);
                self.cap_if_not_http(id, ev.sock, probes);
            }
            EventKind::Close => self.end(id, ts_ns),
            EventKind::Exec => {
                let pid = ev.tgid;
                let flags = ev.exec_flags();
                let mut watched = flags.watched;
                if let (Some(allowed), true) = (&self.opt_in, flags.undecided) {
                    watched = decide_from_proc(pid, allowed, probes);
                    self.exec_overrides += 1;
                }
                self.conns.retain(|(p, _), _| *p != pid);
                let input = Input::Exec {
                    pid,
                    ts_ns,
                    watched,
                    comm: &ev.comm,
                };
                self.pipeline.handle(input, &mut self.events);
            }
            EventKind::Exit => {
                self.conns.retain(|(p, _), _| *p != ev.tgid);
                self.pipeline.handle(
                    Input::Exit {
                        pid: ev.tgid,
                        ts_ns,
                    },
                    &mut self.events,
                );
            }
        }
        self.publish(bus);
    }

    /// Once a connection is classified as something other than HTTP, its messages need only
    /// their first bytes (the protocol's summaries): the kernel copies less.
    fn cap_if_not_http(&mut self, id: (u32, u64), sock: u64, probes: &mut KernelProbes) {
        let not_http = self.events.iter().any(|e| {
            matches!(e, Event::Connection(c) if c.category != Category::HTTP && c.confidence > adi_core::Confidence::PORT_ONLY)
        });
        if !not_http {
            return;
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.capped {
                conn.capped = true;
                let role = kernel_role(conn.key.role);
                probes.set_connection(sock, ports_of(&conn.key), role, Some(NON_HTTP_CAP));
            }
        }
    }

    /// The first plaintext of a connection whose encrypted bytes were capped (classified
    /// `tls`): the plaintext is classified afresh, with the default cap until then. The
    /// kernel resets the cap itself when it first sees the TLS library on the connection;
    /// this covers a cap user space set after that.
    fn uncap_plaintext(&mut self, id: (u32, u64), sock: u64, probes: &mut KernelProbes) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.plaintext {
                conn.plaintext = true;
                if conn.capped {
                    conn.capped = false;
                    let ports = ports_of(&conn.key);
                    probes.set_connection(sock, ports, kernel_role(conn.key.role), Some(0));
                }
            }
        }
    }

    /// Ends the connection of (pid, socket).
    fn end(&mut self, id: (u32, u64), ts_ns: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            self.pipeline.handle(
                Input::Closed {
                    key: conn.key,
                    ts_ns,
                },
                &mut self.events,
            );
        }
    }

    /// Ends every connection (at shutdown).
    fn finish(&mut self, bus: &mut Bus<Event>) {
        self.conns.clear();
        self.pipeline
            .finish(adi_core::time::now_unix_ns(), &mut self.events);
        self.publish(bus);
    }

    /// An event from elsewhere (the Go uprobes), through the same redaction and counts.
    fn pass(&mut self, e: Event, bus: &mut Bus<Event>) {
        self.pipeline.pass(e, &mut self.events);
        self.publish(bus);
    }

    fn publish(&mut self, bus: &mut Bus<Event>) {
        for e in self.events.drain(..) {
            bus.publish(e);
        }
    }
}

/// A flow's role as the kernel knows roles.
fn kernel_role(role: Role) -> KernelRole {
    match role {
        Role::Server => KernelRole::Server,
        Role::Client | Role::Wire => KernelRole::Client,
    }
}

/// The opt-in decision for `pid` from /proc, applied to the kernel's map, when the kernel could
/// not make it. The process's start time is read before and after, so a process that exited
/// meanwhile (its pid possibly reused) is not left watched.
fn decide_from_proc(pid: u32, opt_in: &OptIn, probes: &mut KernelProbes) -> bool {
    let start = |pid| adi_pipeline::proc::read_process(pid).map(|p| p.start_time);
    let Some(before) = start(pid) else {
        return false;
    };
    if !opt_in.admits_pid(pid) {
        return false;
    }
    if let Err(e) = probes.watch(pid) {
        eprintln!("adi: pid {pid} opts in but cannot be watched: {e}");
        return false;
    }
    if start(pid) != Some(before) {
        probes.unwatch(pid);
        return false;
    }
    true
}

fn same_tuple(key: &FlowKey, ev: &RawEvent) -> bool {
    let (local, remote): (SocketAddr, SocketAddr) = match key.role {
        Role::Server => (key.server, key.client),
        Role::Client | Role::Wire => (key.client, key.server),
    };
    local == ev.local && remote == ev.remote
}

/// Loss counters already reported, to emit deltas.
#[derive(Default)]
struct LostSoFar {
    kernel: KernelStats,
    decode_errors: u64,
}

/// Watches what the flags ask for. Returns the processes selected by pid (none for `--all`)
/// and the sentence that says what is watched, for stderr once they are described, so a new
/// user never stares at silence.
fn select_processes(
    opts: &LiveOptions,
    opt_in: Option<&OptIn>,
    probes: &mut KernelProbes,
    classifiers: usize,
) -> anyhow::Result<(HashSet<u32>, String)> {
    let mut watched: HashSet<u32> = HashSet::new();
    let said = if let Some(opt_in) = opt_in {
        // Twice: a child forked by an opted-in process between the first pass and its parent's
        // insertion was followed by no one (it has the same environment, so it opts in).
        for _ in 0..2 {
            for pid in opt_in.scan() {
                if watched.insert(pid) {
                    probes.watch(pid)?;
                }
            }
        }
        // The kernel applies the opt-in to every exec from now on; this covers the rest.
        format!(
            "adi: watching {} processes with ADI_PROFILE set, and every program started with it from now on; --all watches every process",
            watched.len()
        )
    } else if opts.watch_all {
        format!("adi: watching every process (--all); {classifiers} classifiers")
    } else {
        for &pid in &opts.pids {
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                eprintln!(
                    "adi: --pid {pid}: no such process (watching it anyway, in case it is reused)"
                );
            }
            probes.watch(pid)?;
            watched.insert(pid);
        }
        format!(
            "adi: watching {} process(es) given with --pid, and their children from now on",
            watched.len()
        )
    };
    Ok((watched, said))
}

async fn run_async(opts: &LiveOptions, registry: Arc<Registry>) -> anyhow::Result<ExitCode> {
    // First of all: a SIGINT or SIGTERM during start-up (loading the probes, the /proc scan,
    // the container runtimes' first listing) is kept and ends the run as soon as it starts,
    // rather than being lost (a shell's background job starts with SIGINT ignored until a
    // handler is installed).
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    check_sinks(&opts.sinks)?;
    // Environments for the env-yaml inventory, and for the service map's configuration
    // inference (which variables point at each dependency).
    let env_docs = opts
        .sinks
        .iter()
        .any(|s| matches!(s, SinkSpec::EnvYaml(_) | SinkSpec::ServiceMap(_)));
    let opt_in = (!opts.watch_all && opts.pids.is_empty()).then(|| OptIn::new(&opts.allowed));
    let config = ProbeConfig {
        watch_all: opts.watch_all,
        capture_bytes: opts.capture_bytes,
        max_rate: opts.max_rate,
        opt_in: opt_in.as_ref().map(|o| o.allowed().to_vec()),
        tls_plaintext: opts.tls_uprobes != crate::tls::TlsMode::Off,
        ring_bytes: 0,
    };
    // Attached before the /proc scan, so that no exec falls between the two.
    let (mut probes, mut stream) = KernelProbes::load(config)?;
    for note in probes.notes() {
        eprintln!("{note}");
    }
    // Only now that capture runs: no output file exists for a start that failed.
    let sinks = open_sinks(&opts.sinks, &opts.env_prefixes, opts.map)?;
    let (selected, watching) =
        select_processes(opts, opt_in.as_ref(), &mut probes, registry.len())?;
    let mut go =
        crate::go_http::GoHttp::start(opts.go_uprobes, &selected, opts.watch_all, opt_in.clone());
    let mut tls =
        crate::tls::TlsPlaintext::start(opts.tls_uprobes, &mut probes, &selected, opts.watch_all);
    // What loading and inspecting allocated for a moment (the kernel's BTF, library files).
    adi_probes::host::release_freed_memory();
    let mut bus: Bus<Event> = Bus::new(BUS_CAPACITY);
    let (tasks, counters) = start_sinks(sinks, &mut bus);

    // Before the first events: their containers are known from the runtimes' first listing.
    let containers = crate::containers::Enrichment::start(&opts.runtimes).await;
    let mut pipeline = LiveSource::new(registry, opts, env_docs, opt_in, containers.as_ref());
    for pid in selected {
        pipeline.describe(pid, &mut bus);
    }
    eprintln!("{watching}; {}", sampling_note(opts.max_rate));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_lost = Instant::now();
    let mut status = StatusLine::new(opts.status_line);
    let mut lost = LostSoFar::default();
    let started = Instant::now();
    loop {
        tokio::select! {
            r = stream.wait() => {
                r.context("reading the ring buffer")?;
                // Each record handled as it is read: its bytes are parsed while in cache.
                stream.drain_each(RECORDS_PER_TURN, |ev, payload| {
                    go.kernel_event(ev);
                    tls.kernel_event(&mut probes, ev, payload);
                    pipeline.handle(ev, payload, &mut probes, &mut bus);
                });
            }
            Some(e) = go.next() => pipeline.pass(Event::GoHttp(e), &mut bus),
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = tick.tick() => {
                if last_lost.elapsed() >= LOST_EVERY {
                    last_lost = Instant::now();
                    report_lost(&probes, stream.decode_errors, &mut lost, &mut bus);
                    bus.report_loss("kernel_go_uprobes", go.lost_delta());
                }
                status.tick(&pipeline, &probes);
            }
        }
        // One hand-over per batch read (or tick): the sinks wake once for it.
        bus.flush();
    }
    // Stop the kernel side first, so that draining ends even under heavy traffic, then
    // process what was already queued and end every flow.
    probes.detach();
    loop {
        let handle =
            |ev: &RawEvent, payload: &[u8]| pipeline.handle(ev, payload, &mut probes, &mut bus);
        if stream.drain_each(RECORDS_PER_TURN, handle) > 0 {
            continue;
        }
        // Until nothing more arrives for 50 ms.
        let more = tokio::time::timeout(Duration::from_millis(50), stream.wait()).await;
        if !matches!(more, Ok(Ok(()))) {
            break;
        }
    }
    for e in go.stop() {
        pipeline.pass(Event::GoHttp(e), &mut bus);
    }
    pipeline.finish(&mut bus);
    report_lost(&probes, stream.decode_errors, &mut lost, &mut bus);
    bus.flush();
    let bus_lost = bus.lost_totals();
    drop(bus);
    for t in tasks {
        let _ = t.await;
    }
    print_summary(&probes, &stream, &pipeline, &bus_lost, &counters, started);
    Ok(ExitCode::SUCCESS)
}

/// What the start line says of `--max-rate`.
fn sampling_note(max_rate: u32) -> String {
    if max_rate == 0 {
        "every exchange captured in full (--max-rate 0)".to_owned()
    } else {
        format!(
            "at most {max_rate} request/response exchanges/s captured in full, the rest counted as sampled (--max-rate)"
        )
    }
}

/// A sink's name and counters.
type NamedCounters = (String, Arc<SinkCounters>);

/// Subscribes each sink to the bus and runs it on its own thread; returns the threads and the
/// sinks' counters, by name.
fn start_sinks(
    sinks: Vec<Box<dyn Sink>>,
    bus: &mut Bus<Event>,
) -> (Vec<tokio::task::JoinHandle<()>>, Vec<NamedCounters>) {
    let mut tasks = Vec::new();
    let mut counters = Vec::new();
    for sink in sinks {
        let c = Arc::new(SinkCounters::default());
        counters.push((sink.name().to_owned(), Arc::clone(&c)));
        let handle = tokio::runtime::Handle::current();
        // Encoded on the capturing thread where the sink allows it (jsonl): a fifth less CPU
        // per event at full capture than events handed to the sink's thread.
        if let Some(encoder) = sink.encoder() {
            let sub = bus.subscribe_encoded(sink.name(), encoder, ENCODED_CAPACITY);
            tasks.push(tokio::task::spawn_blocking(move || {
                encoded_sink_loop(sink, sub, c, handle);
            }));
            continue;
        }
        let sub = bus.subscribe(sink.name());
        tasks.push(tokio::task::spawn_blocking(move || {
            sink_loop(sink, sub, c, handle);
        }));
    }
    (tasks, counters)
}

/// The status line of a terminal: every [`STATUS_EVERY`], events and their rate, connections
/// classified, losses so far.
struct StatusLine {
    on: bool,
    last: Instant,
    last_events: u64,
}

impl StatusLine {
    fn new(on: bool) -> Self {
        Self {
            on,
            last: Instant::now(),
            last_events: 0,
        }
    }

    fn tick(&mut self, source: &LiveSource, probes: &KernelProbes) {
        let elapsed = self.last.elapsed();
        if !self.on || elapsed < STATUS_EVERY {
            return;
        }
        let k = probes.kernel_stats();
        let stats = source.pipeline.stats();
        let events = stats.events;
        let millis = elapsed.as_millis().max(1);
        let rate = u128::from(events - self.last_events) * 1000 / millis;
        eprintln!(
            "adi: {events} events ({rate}/s; {} http, {} message, {} connection), {} lost in the kernel, {} messages sampled out",
            stats.http,
            stats.messages,
            stats.connections,
            k.ringbuf_full,
            k.sampled,
        );
        self.last = Instant::now();
        self.last_events = events;
    }
}

/// The exit summary: what was produced and everything that was lost or cut.
fn print_summary(
    probes: &KernelProbes,
    stream: &adi_probes::live::EventStream,
    source: &LiveSource,
    bus_lost: &[(String, u64)],
    counters: &[(String, Arc<SinkCounters>)],
    started: Instant,
) {
    let k = probes.kernel_stats();
    let stats = source.pipeline.engine_stats();
    let produced = source.pipeline.stats();
    eprintln!(
        "adi: stopped after {:.1}s: {} events ({} http, {} message, {} connection) from {} kernel events; {} responses without their request, {} requests unanswered at close",
        started.elapsed().as_secs_f64(),
        produced.events,
        produced.http,
        produced.messages,
        produced.connections,
        k.events,
        produced.unpaired_responses,
        produced.unanswered_requests,
    );
    let sinks: Vec<String> = bus_lost
        .iter()
        .zip(counters)
        .map(|((name, queued), (_, c))| {
            format!(
                "{queued} queued for {name}, {} failed writes to {name}",
                c.failed.load(Ordering::Relaxed)
            )
        })
        .collect();
    eprintln!(
        "adi: lost: {} kernel ring buffer, {} undecodable, {} messages sampled out (--max-rate), {} unfollowed children, {} execs the kernel could not decide ({} decided from /proc), {} TLS plaintexts without their connection, {} nested Go TLS calls, {}",
        k.ringbuf_full,
        stream.decode_errors,
        k.sampled,
        k.watch_full,
        k.env_unread,
        source.exec_overrides,
        k.tls_untied,
        k.tls_nested,
        sinks.join(", "),
    );
    eprintln!(
        "adi: partial: {} payloads cut to the capture cap ({} bytes not captured), {} bytes dropped by sessions; {} encrypted messages left out for their plaintext",
        k.truncated, stats.gap_bytes, stats.overflow_bytes, k.tls_ciphertext + produced.tls_ciphertext,
    );
}

fn report_lost(
    probes: &KernelProbes,
    decode_errors: u64,
    so_far: &mut LostSoFar,
    bus: &mut Bus<Event>,
) {
    let k = probes.kernel_stats();
    let deltas = [
        (
            "kernel_ringbuf",
            k.ringbuf_full.saturating_sub(so_far.kernel.ringbuf_full),
        ),
        (
            "kernel_decode",
            decode_errors.saturating_sub(so_far.decode_errors),
        ),
        (
            "kernel_sampled",
            k.sampled.saturating_sub(so_far.kernel.sampled),
        ),
        (
            "kernel_children",
            k.watch_full.saturating_sub(so_far.kernel.watch_full),
        ),
        (
            "kernel_tls_untied",
            k.tls_untied.saturating_sub(so_far.kernel.tls_untied),
        ),
        (
            "kernel_tls_nested",
            k.tls_nested.saturating_sub(so_far.kernel.tls_nested),
        ),
    ];
    for (source, count) in deltas {
        if count > 0 {
            bus.report_loss(source, count);
        }
    }
    so_far.kernel = k;
    so_far.decode_errors = decode_errors;
}
