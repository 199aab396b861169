//! The classification engine: per flow and per direction, buffer the first bytes, probe the
//! registered classifiers, pick the best verdict, lock the flow once confident, parse messages
//! with the winner's session, and re-classify when the protocol switches.
//!
//! Rules (explained for users in `docs/confidence.md`):
//! - Payload decides. Candidates whose default ports include the server port are tried first
//!   and get [`Confidence::PORT_BONUS`], which only breaks ties.
//! - A direction stops buffering once every candidate said `NoMatch` or the window is full.
//! - Both directions matching the same protocol at [`Confidence::STRONG`] or more confirms it:
//!   [`Confidence::CONFIRMED`].
//! - A verdict is emitted again whenever it improves; a port-only verdict (exactly
//!   [`Confidence::PORT_ONLY`]) is given only at the end of a flow that carried no payload the
//!   port's owner rejected.
//!
//! The miss path (random bytes) allocates nothing per probe: per-flow state is allocated once
//! when the flow is first seen.

use std::collections::VecDeque;

/// The hot path's maps (flows, sockets, processes: looked up for every message): foldhash,
/// seeded per process, instead of std's SipHash, which profiles showed at 3 to 4% of adi's CPU
/// under full capture.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use crate::contract::{Confidence, Direction, PortHint, Probe};
use crate::flow::{FlowId, FlowKey};
use crate::protocol::{Category, ProtocolId};
use crate::record::{Record, RecordKind};
use crate::registry::{score, Registration, Registry};

/// Most unanswered requests remembered per flow for latencies (a peer that never answers);
/// the oldest are forgotten beyond it.
const MAX_PENDING_REQUESTS: usize = 4096;

/// Engine limits.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most bytes of one direction a session may leave unconsumed before the engine drops
    /// them (counted in [`EngineStats::overflow_bytes`]).
    pub max_pending: usize,
    /// Most flows tracked at once; beyond it the least recently active flow is finished.
    pub max_flows: usize,
    /// Whether parsed messages are given as [`Output::Record`] (the default). `false` when
    /// only verdicts are wanted (`adi classify`): sessions still parse, switch protocols and
    /// fail as they would, and [`EngineStats::records`] still counts every message, but the
    /// records are dropped at once instead of moved into the caller's outputs.
    pub records: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_pending: 256 * 1024,
            max_flows: 65_536,
            records: true,
        }
    }
}

/// Counters of what the engine did, including everything it dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Flows seen.
    pub flows: u64,
    /// Classifications emitted (a flow whose verdict improves counts again).
    pub classifications: u64,
    /// Records parsed by sessions.
    pub records: u64,
    /// Session parse errors (each followed by a re-classification).
    pub parse_errors: u64,
    /// Protocol switches announced by sessions.
    pub switches: u64,
    /// Bytes dropped because a session left more than `max_pending` unconsumed, a gap cut a
    /// message, or the flow's session had already failed on them.
    pub overflow_bytes: u64,
    /// Flows finished early because `max_flows` was reached.
    pub evicted_flows: u64,
    /// Bytes reported as not captured ([`Engine::on_gap`]).
    pub gap_bytes: u64,
    /// Sessions restarted because they could not step over a gap.
    pub resyncs: u64,
}

/// A verdict about a flow, as emitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The flow.
    pub flow: FlowId,
    /// Its addresses and observer.
    pub key: FlowKey,
    /// When the evidence arrived (nanoseconds, the caller's clock).
    pub ts_ns: u64,
    /// The protocol ([`ProtocolId::UNKNOWN`] only in [`FlowSummary`]).
    pub protocol: ProtocolId,
    /// Its category.
    pub category: Category,
    /// The score, port bonus and confirmation included.
    pub confidence: Confidence,
    /// The evidence, e.g. `"RESP array header; confirmed by the reply"`.
    pub reason: String,
}

/// One parsed message of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow.
    pub flow: FlowId,
    /// Its addresses and observer.
    pub key: FlowKey,
    /// The protocol that parsed it.
    pub protocol: ProtocolId,
    /// Which way the message travelled.
    pub dir: Direction,
    /// When the bytes that completed it arrived.
    pub ts_ns: u64,
    /// For a response, the time since its request arrived.
    pub latency_ns: Option<u64>,
    /// The message.
    pub record: Record,
}

/// What the engine produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A flow was classified, or its verdict improved.
    Classified(Classification),
    /// A session parsed a message.
    Record(FlowRecord),
}

/// The final state of a flow, given when it closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSummary {
    /// The best classification: a payload verdict, a port-only verdict, or
    /// [`ProtocolId::UNKNOWN`] at confidence 0 with the reason why.
    pub verdict: Classification,
    /// Bytes seen per direction (`[to_server, to_client]`).
    pub bytes: [u64; 2],
}

/// Per-direction state of one flow.
#[derive(Default)]
struct DirState {
    /// Until the flow is locked: every byte seen (bounded by the window). After: bytes the
    /// session has not consumed yet.
    buf: Vec<u8>,
    /// Bit `i` set: candidate `i` said `NoMatch` for this direction.
    rejected: Vec<u64>,
    /// Bit `i` set: candidate `i`'s session failed on `buf` as it now starts, without
    /// consuming any of it. Cleared whenever the start of `buf` moves. Unlike `rejected`, it
    /// survives re-classification, so that every retry after a failure makes progress.
    failed: Vec<u64>,
    /// No candidate is left or the window is full: stop buffering this direction.
    exhausted: bool,
    /// The best match of this direction: (registry index, scored confidence, reason).
    best: Option<(usize, Confidence, &'static str)>,
    /// Bytes seen, whatever was kept.
    seen: u64,
    /// The session lost its place in this direction (a gap it could not step over): it is
    /// restarted at the next bytes.
    desynced: bool,
}

impl DirState {
    fn is_rejected(&self, i: usize) -> bool {
        self.rejected[i / 64] & (1 << (i % 64)) != 0
    }

    fn reject(&mut self, i: usize) {
        self.rejected[i / 64] |= 1 << (i % 64);
    }

    fn has_failed(&self, i: usize) -> bool {
        self.failed[i / 64] & (1 << (i % 64)) != 0
    }

    /// Records that candidate `i`'s session failed on `buf` as it now starts.
    fn fail(&mut self, i: usize) {
        self.failed[i / 64] |= 1 << (i % 64);
        self.reject(i);
    }

    /// Drops the first `n` pending bytes: failures seen at the old start no longer apply.
    fn consume(&mut self, n: usize) {
        if n > 0 {
            self.buf.drain(..n.min(self.buf.len()));
            self.failed.iter_mut().for_each(|w| *w = 0);
        }
    }

    /// Drops every pending byte.
    fn clear(&mut self) {
        self.consume(self.buf.len());
    }

    /// Starts detection over on the pending bytes, except for the candidates whose session
    /// already failed on them.
    fn reset_detection(&mut self) {
        self.rejected.copy_from_slice(&self.failed);
        self.exhausted = false;
        self.best = None;
    }
}

struct Locked {
    entry: usize,
    session: Box<dyn crate::contract::Session>,
}

struct Flow {
    id: FlowId,
    ports: PortHint,
    dirs: [DirState; 2],
    /// The direction that sent the first byte.
    first: Option<Direction>,
    locked: Option<Locked>,
    /// The last emitted (registry index, confidence), so only improvements are emitted again.
    emitted: Option<(usize, Confidence)>,
    /// The best classification ever emitted, for the summary.
    best: Option<Classification>,
    /// The verdict before the last protocol switch: a flow that goes on in TLS (Postgres
    /// SSLRequest, STARTTLS) is still summarised as the protocol that started it.
    before_switch: Option<Classification>,
    /// Unanswered requests, oldest first (pipelining safe pairing): their exchange (when the
    /// protocol multiplexes) and arrival time.
    pending_requests: VecDeque<(Option<u64>, u64)>,
    last_ts: u64,
    /// Its first bytes were not seen (joined mid-stream): a verdict that another candidate
    /// could still dispute is held until the other direction confirms it.
    mid_stream: bool,
}

impl Flow {
    /// A flow with nothing seen yet.
    fn new(id: FlowId, key: FlowKey, ts_ns: u64, words: usize) -> Self {
        let dir = || DirState {
            rejected: vec![0; words],
            failed: vec![0; words],
            ..DirState::default()
        };
        Self {
            id,
            ports: PortHint {
                server: Some(key.server.port()),
                client: Some(key.client.port()),
            },
            dirs: [dir(), dir()],
            first: None,
            locked: None,
            emitted: None,
            best: None,
            before_switch: None,
            pending_requests: VecDeque::new(),
            last_ts: ts_ns,
            mid_stream: false,
        }
    }
}

/// The classification engine. One per capture source; not shared between threads.
pub struct Engine {
    registry: Arc<Registry>,
    config: EngineConfig,
    flows: HashMap<FlowKey, Flow>,
    next_id: u64,
    window: usize,
    stats: EngineStats,
    records: Vec<Record>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("classifiers", &self.registry.len())
            .field("flows", &self.flows.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `registry` with default limits.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self::with_config(registry, EngineConfig::default())
    }

    /// An engine over `registry` with the given limits.
    pub fn with_config(registry: Arc<Registry>, config: EngineConfig) -> Self {
        let window = registry.max_window().max(1);
        Self {
            registry,
            config,
            flows: HashMap::default(),
            next_id: 1,
            window,
            stats: EngineStats::default(),
            records: Vec::new(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Flows currently tracked.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// The registry in use.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The id of `key`, creating the flow if it is new. Call it when a connection opens so
    /// that flow ids follow opening order.
    pub fn open(&mut self, key: FlowKey, ts_ns: u64, out: &mut Vec<FlowSummary>) -> FlowId {
        if !self.flows.contains_key(&key) && self.flows.len() >= self.config.max_flows {
            self.evict_oldest(out);
        }
        let words = self.registry.len().div_ceil(64);
        let next_id = &mut self.next_id;
        let stats = &mut self.stats;
        let flow = self.flows.entry(key).or_insert_with(|| {
            let id = FlowId(*next_id);
            *next_id += 1;
            stats.flows += 1;
            Flow::new(id, key, ts_ns, words)
        });
        flow.id
    }

    /// Starts a flow's classification over, keeping its id: the bytes it will be fed are
    /// another layer of the same connection (the plaintext a TLS library read, after the
    /// encrypted handshake). `mid_stream` as in [`Engine::mark_mid_stream`]. A flow never
    /// seen is opened (flows evicted to make room are appended to `evicted`).
    pub fn restart(
        &mut self,
        key: FlowKey,
        ts_ns: u64,
        mid_stream: bool,
        evicted: &mut Vec<FlowSummary>,
    ) {
        let words = self.registry.len().div_ceil(64);
        if let Some(flow) = self.flows.get_mut(&key) {
            *flow = Flow::new(flow.id, key, ts_ns, words);
            flow.mid_stream = mid_stream;
            return;
        }
        if mid_stream {
            self.mark_mid_stream(key, ts_ns, evicted);
        } else {
            self.open(key, ts_ns, evicted);
        }
    }

    /// Marks a flow as joined mid-stream (creating it if new): the bytes it will be fed do not
    /// start at the connection's first byte (it was opened before capture started). One
    /// message of such a flow often cannot tell look-alikes apart (a NATS
    /// `PUB` line reads as a Redis inline command, a memcached `get` as one too): a verdict
    /// that another candidate still matches or may match is held, neither emitted nor locked,
    /// until the other direction confirms it (both directions naming the same protocol
    /// strongly) or the disputing candidates drop out.
    pub fn mark_mid_stream(&mut self, key: FlowKey, ts_ns: u64, out: &mut Vec<FlowSummary>) {
        self.open(key, ts_ns, out);
        if let Some(flow) = self.flows.get_mut(&key) {
            if flow.locked.is_none() && flow.emitted.is_none() {
                flow.mid_stream = true;
            }
        }
    }

    /// Feeds bytes of one direction of a flow and appends what they produced to `out`.
    /// Flows evicted to make room are appended to `evicted`.
    pub fn on_data(
        &mut self,
        key: FlowKey,
        dir: Direction,
        ts_ns: u64,
        data: &[u8],
        out: &mut Vec<Output>,
        evicted: &mut Vec<FlowSummary>,
    ) {
        if data.is_empty() {
            return;
        }
        // Most bytes belong to a flow already open: one lookup for them.
        if !self.flows.contains_key(&key) {
            self.open(key, ts_ns, evicted);
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_ts = flow.last_ts.max(ts_ns);
        flow.first.get_or_insert(dir);
        let d = &mut flow.dirs[dir.index()];
        d.seen += data.len() as u64;
        let ctx = Ctx {
            registry: &self.registry,
            config: &self.config,
            window: self.window,
            stats: &mut self.stats,
            records: &mut self.records,
        };
        ctx.feed(flow, key, dir, ts_ns, data, out);
    }

    /// Ends a flow (close, FIN/RST, end of capture) and returns its summary, or `None` for a
    /// flow never seen.
    pub fn close(&mut self, key: &FlowKey) -> Option<FlowSummary> {
        let flow = self.flows.remove(key)?;
        Some(self.summarize(*key, flow))
    }

    /// Ends every flow (end of a capture file, shutdown), in flow id order.
    pub fn close_all(&mut self) -> Vec<FlowSummary> {
        let mut flows: Vec<_> = self.flows.drain().collect();
        flows.sort_by_key(|(_, f)| f.id);
        flows
            .into_iter()
            .map(|(k, f)| self.summarize(k, f))
            .collect()
    }

    /// Ends flows idle since before `older_than_ns`.
    pub fn close_idle(&mut self, older_than_ns: u64) -> Vec<FlowSummary> {
        let idle: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, f)| f.last_ts < older_than_ns)
            .map(|(k, _)| *k)
            .collect();
        idle.iter().filter_map(|k| self.close(k)).collect()
    }

    /// Reports that `len` bytes of `dir` were not captured right after the last bytes fed
    /// (a live probe copies at most a cap of each message; `len` is the rest).
    pub fn on_gap(&mut self, key: &FlowKey, dir: Direction, len: u64, out: &mut Vec<Output>) {
        if len == 0 {
            return;
        }
        self.stats.gap_bytes += len;
        let Some(flow) = self.flows.get_mut(key) else {
            return;
        };
        let d = &mut flow.dirs[dir.index()];
        d.seen += len;
        let Some(locked) = flow.locked.as_mut() else {
            // While classifying, the buffer must stay contiguous: classify on what we have,
            // and if the flow locks later, start its session at the next bytes.
            d.exhausted = true;
            d.desynced = true;
            return;
        };
        if !d.buf.is_empty() {
            // An incomplete message is cut: nothing can step over that.
            self.stats.overflow_bytes += d.buf.len() as u64;
            d.clear();
            d.desynced = true;
            return;
        }
        self.records.clear();
        let result = locked.session.gap(dir, len, &mut self.records);
        let origin = Origin {
            flow: flow.id,
            key: *key,
            protocol: self.registry.nth(locked.entry).id,
            dir,
            ts_ns: flow.last_ts,
        };
        drain_records(
            &mut self.records,
            origin,
            &mut flow.pending_requests,
            &mut self.stats,
            out,
            self.config.records,
        );
        if result.is_err() {
            flow.dirs[dir.index()].desynced = true;
        }
    }

    /// Reports that whole messages of the flow were not captured right before the next bytes
    /// (a live probe sampled out request/response exchanges to stay within its rate budget):
    /// what is in flight is emitted as cut short, and parsing starts over with a fresh session
    /// at the next bytes, which begin a message. Unanswered requests are forgotten, so no
    /// response is paired with the wrong request.
    pub fn on_skipped(&mut self, key: &FlowKey, ts_ns: u64, out: &mut Vec<Output>) {
        self.finish(key, ts_ns, out);
        let Some(flow) = self.flows.get_mut(key) else {
            return;
        };
        let classifying = flow.locked.is_none();
        for d in &mut flow.dirs {
            d.desynced = true;
            // While classifying, bytes on both sides of the hole must not be joined.
            d.exhausted |= classifying;
        }
    }

    /// Lets the flow's session emit what only the end of the connection delimits. Call it
    /// before [`Engine::close`] when the connection really ended (not on eviction).
    pub fn finish(&mut self, key: &FlowKey, ts_ns: u64, out: &mut Vec<Output>) {
        let Some(flow) = self.flows.get_mut(key) else {
            return;
        };
        let Some(locked) = flow.locked.as_mut() else {
            return;
        };
        let protocol = self.registry.nth(locked.entry).id;
        for dir in [Direction::ToServer, Direction::ToClient] {
            self.records.clear();
            locked.session.finish(dir, &mut self.records);
            let origin = Origin {
                flow: flow.id,
                key: *key,
                protocol,
                dir,
                ts_ns,
            };
            drain_records(
                &mut self.records,
                origin,
                &mut flow.pending_requests,
                &mut self.stats,
                out,
                self.config.records,
            );
        }
    }

    fn evict_oldest(&mut self, out: &mut Vec<FlowSummary>) {
        let oldest = self
            .flows
            .iter()
            .min_by_key(|(_, f)| f.last_ts)
            .map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.stats.evicted_flows += 1;
            out.extend(self.close(&key));
        }
    }

    fn summarize(&self, key: FlowKey, flow: Flow) -> FlowSummary {
        let bytes = [flow.dirs[0].seen, flow.dirs[1].seen];
        let best = match (flow.best.clone(), flow.before_switch.clone()) {
            // Encryption after an in-band switch: the application protocol names the flow.
            (Some(after), Some(mut before))
                if after.category == Category::TLS && after.protocol != before.protocol =>
            {
                before.reason = format!("{}; then TLS ({})", before.reason, after.reason);
                Some(before)
            }
            (Some(after), _) => Some(after),
            (None, before) => before,
        };
        let verdict = best
            .or_else(|| self.port_only(&key, &flow))
            .unwrap_or_else(|| {
                let reason = if bytes == [0, 0] {
                    "no payload seen".to_owned()
                } else {
                    format!(
                        "no classifier matched ({} bytes to server, {} bytes to client)",
                        bytes[0], bytes[1]
                    )
                };
                Classification {
                    flow: flow.id,
                    key,
                    ts_ns: flow.last_ts,
                    protocol: ProtocolId::UNKNOWN,
                    category: Category::UNKNOWN,
                    confidence: Confidence::new(0),
                    reason,
                }
            });
        FlowSummary { verdict, bytes }
    }

    /// A port-only verdict, unless the port's owner rejected the payload it saw.
    fn port_only(&self, key: &FlowKey, flow: &Flow) -> Option<Classification> {
        let port = key.server.port();
        let owner = self.registry.port_owner(port)?;
        let index = self.registry.iter().position(|r| r.id == owner.id)?;
        if flow.dirs.iter().any(|d| d.seen > 0 && d.is_rejected(index)) {
            return None;
        }
        Some(Classification {
            flow: flow.id,
            key: *key,
            ts_ns: flow.last_ts,
            protocol: owner.id,
            category: owner.category,
            confidence: Confidence::PORT_ONLY,
            reason: format!("port {port} only"),
        })
    }
}

/// Where records a session just produced come from.
#[derive(Clone, Copy)]
struct Origin {
    flow: FlowId,
    key: FlowKey,
    protocol: ProtocolId,
    dir: Direction,
    ts_ns: u64,
}

/// Turns the records a session just produced into outputs: counts them and pairs responses
/// with requests in order (pipelining safe), which gives their latency. Returns whether one
/// of them announced a protocol switch.
fn drain_records(
    records: &mut Vec<Record>,
    origin: Origin,
    pending: &mut VecDeque<(Option<u64>, u64)>,
    stats: &mut EngineStats,
    out: &mut Vec<Output>,
    keep: bool,
) -> bool {
    let mut switched = false;
    for record in records.drain(..) {
        stats.records += 1;
        if !keep {
            // Only the verdict is wanted: a switch is all that matters of the records.
            switched |= record.kind == RecordKind::Switch;
            continue;
        }
        let latency_ns = match record.kind {
            RecordKind::Request => {
                if pending.len() >= MAX_PENDING_REQUESTS {
                    pending.pop_front();
                }
                pending.push_back((record.exchange, origin.ts_ns));
                None
            }
            RecordKind::Response => {
                let at = match record.exchange {
                    Some(x) => pending.iter().position(|(e, _)| *e == Some(x)),
                    None => (!pending.is_empty()).then_some(0),
                };
                at.and_then(|i| pending.remove(i))
                    .map(|(_, t)| origin.ts_ns.saturating_sub(t))
            }
            RecordKind::Message => None,
            RecordKind::Switch => {
                switched = true;
                None
            }
        };
        out.push(Output::Record(FlowRecord {
            flow: origin.flow,
            key: origin.key,
            protocol: origin.protocol,
            dir: origin.dir,
            ts_ns: origin.ts_ns,
            latency_ns,
            record,
        }));
    }
    switched
}

/// Borrowed engine state, so that a flow can be mutated while the rest is read.
struct Ctx<'a> {
    registry: &'a Registry,
    config: &'a EngineConfig,
    window: usize,
    stats: &'a mut EngineStats,
    records: &'a mut Vec<Record>,
}

impl Ctx<'_> {
    fn feed(
        mut self,
        flow: &mut Flow,
        key: FlowKey,
        dir: Direction,
        ts_ns: u64,
        data: &[u8],
        out: &mut Vec<Output>,
    ) {
        if let Some(locked) = flow.locked.as_mut() {
            if flow.dirs[dir.index()].desynced {
                // Start over at these bytes with a fresh session: captures of later messages
                // usually begin at a message boundary (one write per message).
                locked.session = self.registry.nth(locked.entry).classifier.session();
                flow.pending_requests.clear();
                for d in &mut flow.dirs {
                    d.desynced = false;
                    d.clear();
                }
                self.stats.resyncs += 1;
            }
            let d = &flow.dirs[dir.index()];
            // Nothing pending and not this direction's first bytes (which `confirm` probes):
            // the session parses `data` where it is, and only what it leaves is kept.
            let retry = if d.buf.is_empty() && d.seen != data.len() as u64 {
                self.run_session(flow, key, dir, ts_ns, Some(data), out)
            } else {
                flow.dirs[dir.index()].buf.extend_from_slice(data);
                self.confirm(flow, key, dir, ts_ns, out);
                self.run_session(flow, key, dir, ts_ns, None, out)
            };
            self.reclassify(flow, key, retry, ts_ns, out);
            return;
        }
        let d = &mut flow.dirs[dir.index()];
        if d.exhausted {
            return;
        }
        // Keep the whole chunk: if it locks the flow, the session needs every byte.
        d.buf.extend_from_slice(data);
        let retry = self.classify(flow, key, dir, ts_ns, out);
        self.reclassify(flow, key, retry, ts_ns, out);
        if flow.locked.is_none() {
            flow.dirs[dir.index()].buf.truncate(self.window);
        }
    }

    /// After a session switched protocols or failed (`retry` names the direction it was
    /// parsing), classifies the pending bytes again, first that direction, then the other;
    /// repeats while the newly locked session switches or fails in turn.
    ///
    /// A loop rather than recursion, so hostile input cannot grow the stack. It ends: each
    /// round either consumes or drops pending bytes, or adds a candidate to a direction's
    /// `failed` set, which only shrinks when bytes are consumed.
    fn reclassify(
        &mut self,
        flow: &mut Flow,
        key: FlowKey,
        mut retry: Option<Direction>,
        ts_ns: u64,
        out: &mut Vec<Output>,
    ) {
        while let Some(first) = retry.take() {
            for d in [first, first.reverse()] {
                if flow.locked.is_none() && !flow.dirs[d.index()].buf.is_empty() {
                    retry = self.classify(flow, key, d, ts_ns, out);
                    if retry.is_some() {
                        break;
                    }
                }
            }
        }
    }

    /// Probes every live candidate on the buffered bytes of `dir`, updates the flow verdict,
    /// and locks the flow when it is confident. Returns the direction to re-classify when
    /// the new session at once switched or failed (see [`Ctx::run_session`]).
    fn classify(
        &mut self,
        flow: &mut Flow,
        key: FlowKey,
        dir: Direction,
        ts_ns: u64,
        out: &mut Vec<Output>,
    ) -> Option<Direction> {
        let ports = flow.ports;
        let d = &mut flow.dirs[dir.index()];
        let mut best: Option<(usize, Confidence, &'static str)> = None;
        let mut undecided = false;
        // The two best scores of the candidates that matched these bytes travelling this way:
        // a mid-stream verdict tied with another protocol's is held.
        let mut scores: [Option<Confidence>; 2] = [None, None];
        // Two passes without allocating: port-hinted candidates first, then the others, so
        // that on equal scores the port's owner wins.
        for hinted in [true, false] {
            for (i, reg) in self.registry.iter().enumerate() {
                if reg.is_default_port(ports.server) != hinted || d.is_rejected(i) {
                    continue;
                }
                if d.buf.len() < *reg.probe_window.start() {
                    undecided = true;
                    continue;
                }
                let end = d.buf.len().min(*reg.probe_window.end());
                match reg.classifier.probe(&d.buf[..end], dir, ports) {
                    Probe::Match(v) => {
                        // A verdict that says the bytes travel the other way is weaker
                        // evidence about this flow's roles; keep it but never prefer it.
                        let mut conf = score(reg, v.confidence, ports);
                        if v.observed.is_some_and(|o| o != dir) {
                            conf = Confidence::new(conf.get().saturating_sub(10));
                        } else if scores[0].is_none_or(|c| conf > c) {
                            scores[1] = scores[0];
                            scores[0] = Some(conf);
                        } else if scores[1].is_none_or(|c| conf > c) {
                            scores[1] = Some(conf);
                        }
                        if best.is_none_or(|(_, c, _)| conf > c) {
                            best = Some((i, conf, v.reason));
                        }
                        if *reg.probe_window.end() > d.buf.len() && conf < Confidence::CERTAIN {
                            undecided = true;
                        }
                    }
                    Probe::NeedMore => undecided = true,
                    Probe::NoMatch => d.reject(i),
                }
            }
        }
        d.best = best.or(d.best);
        let window_full = d.buf.len() >= self.window;
        if d.best.is_none() && (!undecided || window_full) {
            // Nothing can match this direction any more: stop buffering it.
            d.exhausted = true;
            d.clear();
            d.buf = Vec::new();
            return None;
        }
        let (entry, conf, reason) = self.flow_verdict(flow)?;
        if flow.mid_stream {
            // Joined mid-stream: a verdict that a look-alike ties on these bytes, or that more
            // bytes could still overturn, waits for the other direction or more bytes.
            let tied = scores[1].is_some_and(|c| c >= conf);
            let open = undecided && conf < Confidence::CERTAIN;
            if conf < Confidence::CONFIRMED && (tied || open) && !window_full {
                return None;
            }
            flow.mid_stream = false;
        }
        self.emit_if_better(flow, key, ts_ns, entry, conf, reason, out);
        let decided = conf >= Confidence::CERTAIN || !undecided || window_full;
        if decided && conf >= Confidence::REPORT {
            for d in &mut flow.dirs {
                if d.has_failed(entry) {
                    // The verdict comes from the other direction, but this session already
                    // failed on these bytes and no other candidate claimed them: drop them
                    // rather than fail on them again.
                    self.stats.overflow_bytes += d.buf.len() as u64;
                    d.clear();
                }
            }
            return self.lock(flow, key, entry, ts_ns, out);
        }
        None
    }

    /// On a locked flow, probes the first bytes of a direction that was never probed with the
    /// winner only: a matching answer (a response to the request) confirms the verdict.
    fn confirm(
        &mut self,
        flow: &mut Flow,
        key: FlowKey,
        dir: Direction,
        ts_ns: u64,
        out: &mut Vec<Output>,
    ) {
        let Some(entry) = flow.locked.as_ref().map(|l| l.entry) else {
            return;
        };
        let d = &mut flow.dirs[dir.index()];
        // Only while the pending bytes still start at this direction's first byte.
        if d.best.is_some() || d.exhausted || d.is_rejected(entry) || d.seen != d.buf.len() as u64 {
            return;
        }
        let reg = self.registry.nth(entry);
        let end = d.buf.len().min(*reg.probe_window.end());
        match reg.classifier.probe(&d.buf[..end], dir, flow.ports) {
            Probe::Match(v) if v.observed.is_none_or(|o| o == dir) => {
                d.best = Some((entry, score(reg, v.confidence, flow.ports), v.reason));
            }
            Probe::NeedMore if end < *reg.probe_window.end() => return,
            _ => {
                d.exhausted = true;
                return;
            }
        }
        if let Some((e, conf, reason)) = self.flow_verdict(flow) {
            self.emit_if_better(flow, key, ts_ns, e, conf, reason, out);
        }
    }

    /// The flow's verdict from both directions: the better one, or CONFIRMED when both name
    /// the same protocol strongly.
    fn flow_verdict(&self, flow: &Flow) -> Option<(usize, Confidence, String)> {
        let [a, b] = [flow.dirs[0].best, flow.dirs[1].best];
        match (a, b) {
            (Some((ia, ca, ra)), Some((ib, cb, rb)))
                if ia == ib && ca >= Confidence::STRONG && cb >= Confidence::STRONG =>
            {
                Some((
                    ia,
                    Confidence::CONFIRMED,
                    format!("{ra}; confirmed by {rb}"),
                ))
            }
            (Some(x), Some(y)) => {
                let (i, c, r) = if y.1 > x.1 { y } else { x };
                Some((i, c, r.to_owned()))
            }
            (Some((i, c, r)), None) | (None, Some((i, c, r))) => Some((i, c, r.to_owned())),
            (None, None) => None,
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "internal helper over split borrows"
    )]
    fn emit_if_better(
        &mut self,
        flow: &mut Flow,
        key: FlowKey,
        ts_ns: u64,
        entry: usize,
        conf: Confidence,
        reason: String,
        out: &mut Vec<Output>,
    ) {
        if conf < Confidence::REPORT {
            return;
        }
        if flow.emitted.is_some_and(|(e, c)| e == entry && c >= conf) {
            return;
        }
        // A weaker verdict for another protocol does not replace a stronger one.
        if flow.emitted.is_some_and(|(e, c)| e != entry && c >= conf) {
            return;
        }
        flow.emitted = Some((entry, conf));
        let reg = self.registry.nth(entry);
        let c = Classification {
            flow: flow.id,
            key,
            ts_ns,
            protocol: reg.id,
            category: reg.category,
            confidence: conf,
            reason,
        };
        self.stats.classifications += 1;
        flow.best = Some(c.clone());
        out.push(Output::Classified(c));
    }

    /// Hands the flow to the winner's session and replays the buffered bytes, first speaker
    /// first. Returns the direction to re-classify when the session switched or failed.
    fn lock(
        &mut self,
        flow: &mut Flow,
        key: FlowKey,
        entry: usize,
        ts_ns: u64,
        out: &mut Vec<Output>,
    ) -> Option<Direction> {
        let reg: &Registration = self.registry.nth(entry);
        flow.locked = Some(Locked {
            entry,
            session: reg.classifier.session(),
        });
        let first = flow.first.unwrap_or(Direction::ToServer);
        for dir in [first, first.reverse()] {
            if !flow.dirs[dir.index()].buf.is_empty() {
                let retry = self.run_session(flow, key, dir, ts_ns, None, out);
                if retry.is_some() {
                    return retry;
                }
            }
        }
        None
    }

    /// Lets the session consume what it can of `dir`'s pending bytes. When it switches
    /// protocols or fails, unlocks the flow and returns `Some(dir)`: the caller re-classifies
    /// the rest ([`Ctx::reclassify`]).
    ///
    /// `fresh`: new bytes to parse in place of the pending ones, when none are pending; what
    /// the session leaves of them becomes the pending bytes, as if they had been appended.
    fn run_session(
        &mut self,
        flow: &mut Flow,
        key: FlowKey,
        dir: Direction,
        ts_ns: u64,
        fresh: Option<&[u8]>,
        out: &mut Vec<Output>,
    ) -> Option<Direction> {
        let locked = flow.locked.as_mut()?;
        let protocol = self.registry.nth(locked.entry).id;
        let mut consumed_total = 0;
        let mut switched = false;
        let mut failed = false;
        loop {
            let d = &flow.dirs[dir.index()];
            let rest = fresh
                .unwrap_or(&d.buf)
                .get(consumed_total..)
                .unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            self.records.clear();
            match locked.session.parse(rest, dir, self.records) {
                Ok(0) => break,
                Ok(n) => consumed_total += n.min(rest.len()),
                Err(_) => {
                    self.stats.parse_errors += 1;
                    failed = true;
                }
            }
            let origin = Origin {
                flow: flow.id,
                key,
                protocol,
                dir,
                ts_ns,
            };
            switched |= drain_records(
                self.records,
                origin,
                &mut flow.pending_requests,
                self.stats,
                out,
                self.config.records,
            );
            if switched || failed {
                break;
            }
        }
        let d = &mut flow.dirs[dir.index()];
        match fresh {
            Some(data) => {
                d.consume(consumed_total);
                d.buf
                    .extend_from_slice(data.get(consumed_total..).unwrap_or_default());
            }
            None => d.consume(consumed_total),
        }
        if switched || failed {
            let entry = locked.entry;
            if switched {
                self.stats.switches += 1;
                if let Some(best) = flow.best.clone() {
                    flow.before_switch = Some(best);
                }
            }
            // A new protocol starts (or the old one was wrong): its verdict is news even if
            // weaker than the old one.
            flow.emitted = None;
            flow.locked = None;
            flow.pending_requests.clear();
            for d in &mut flow.dirs {
                d.reset_detection();
                d.buf.truncate(self.window);
            }
            if (failed && !switched) || consumed_total == 0 {
                // The session proved these bytes are not its protocol: never pick it again
                // for them, so re-classification always makes progress.
                flow.dirs[dir.index()].fail(entry);
            }
            return Some(dir);
        }
        if d.buf.len() > self.config.max_pending {
            self.stats.overflow_bytes += d.buf.len() as u64;
            d.clear();
        }
        None
    }
}

#[cfg(test)]
mod tests;
