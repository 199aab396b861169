//! `adi classify FILE...`: offline classification.
//!
//! A file starting with pcap or pcapng magic is read as a capture: its TCP streams are
//! reassembled by `adi_capture` and fed to the same engine the live probes use, and each
//! connection gets one line `{"file","client","server","protocol","category","confidence",
//! "reason"}`, in the order connections opened. Any other file is one raw payload: one line
//! `{"file","protocol","category","confidence","reason"}`.
//!
//! A capture uses `--threads` threads to classify (default one per core; 1 does all on the
//! calling thread): one more reads and reassembles, numbers each connection as a single engine
//! would (by its first bytes, or its close) and decides the evictions beyond the engine's flow
//! limit over all of them, then sends each connection whole, in batches over bounded queues, to
//! the thread its addresses hash to; the calling thread writes the lines in connection order as
//! they finish. The output is byte-for-byte that of one engine, whatever the number of threads.
//!
//! One bad file never stops the rest: its error goes to stderr as one line and counts as a
//! failure (non-zero exit status).

use std::collections::VecDeque;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use adi_capture::{is_capture_magic, CaptureError, CaptureEventRef, CaptureReader};
use adi_core::engine::{Engine, EngineConfig, FlowSummary, Output};
use adi_core::flow::{unmapped_ip, FlowKey, Role};
use adi_core::{Direction, Registry};
use anyhow::Context as _;
use serde::Serialize;

/// Looked up for every reassembled chunk: foldhash rather than std's SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// How much of a payload file is read: far more than any probe window, so a 1 GB file costs
/// no more than a small one.
const MAX_PAYLOAD_READ: u64 = 1 << 20;

/// Options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `--port` (payload files).
    pub port: Option<u16>,
    /// `--direction` (payload files).
    pub direction: Option<Direction>,
    /// `--threads` (captures): threads that classify connections; 1 reads, classifies and
    /// writes on the calling thread, more add one thread that reads the capture.
    pub threads: NonZeroUsize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            port: None,
            direction: None,
            threads: NonZeroUsize::MIN,
        }
    }
}

#[derive(Serialize)]
struct ConnectionLine<'a> {
    file: &'a str,
    client: Addr,
    server: Addr,
    protocol: adi_core::ProtocolId,
    category: adi_core::Category,
    confidence: adi_core::Confidence,
    reason: &'a str,
}

/// An address as [`adi_core::flow::display_addr`] gives it, serialised without an intermediate `String`.
struct Addr(SocketAddr);

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        SocketAddr::new(unmapped_ip(self.0), self.0.port()).fmt(f)
    }
}

impl Serialize for Addr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
struct PayloadLine<'a> {
    file: &'a str,
    protocol: adi_core::ProtocolId,
    category: adi_core::Category,
    confidence: adi_core::Confidence,
    reason: &'a str,
}

/// Classifies every file, writing JSON lines to `out` and one error line per bad file to
/// stderr. Returns the number of files that failed.
///
/// # Errors
///
/// Only when `out` cannot be written (a closed pipe): per-file problems are reported and
/// counted instead.
pub fn run(
    registry: &Arc<Registry>,
    files: &[impl AsRef<Path>],
    opts: Options,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let mut failures = 0;
    for path in files {
        let path = path.as_ref();
        if let Err(e) = classify_file(registry, path, opts, out) {
            if e.downcast_ref::<OutputError>().is_some() {
                return Err(e);
            }
            eprintln!("adi: {}: {e:#}", path.display());
            failures += 1;
        }
    }
    Ok(failures)
}

/// Writing to stdout failed: not a per-file problem, so it stops the run.
#[derive(Debug)]
struct OutputError(std::io::Error);

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing output: {}", self.0)
    }
}

impl std::error::Error for OutputError {}

fn emit(out: &mut impl Write, line: &impl Serialize) -> anyhow::Result<()> {
    let mut buf = serde_json::to_vec(line)?;
    buf.push(b'\n');
    out.write_all(&buf)
        .map_err(|e| anyhow::Error::new(OutputError(e)))
}

fn classify_file(
    registry: &Arc<Registry>,
    path: &Path,
    opts: Options,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("cannot read: {e}"))?;
    if meta.is_dir() {
        anyhow::bail!("is a directory, not a capture or payload file");
    }
    let mut file = File::open(path).map_err(|e| anyhow::anyhow!("cannot open: {e}"))?;
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut file, &mut magic).map_err(|e| anyhow::anyhow!("cannot read: {e}"))?;
    if got == 0 {
        anyhow::bail!("empty file: nothing to classify");
    }
    let name = path.display().to_string();
    if got == 4 && is_capture_magic(&magic) {
        let reader = (&magic[..]).chain(file);
        let progress = progress_bar(&name, meta.len());
        let result = classify_capture(registry, &name, reader, &progress, opts.threads, out);
        progress.finish_and_clear();
        result
    } else {
        let mut payload = magic[..got].to_vec();
        file.take(MAX_PAYLOAD_READ - got as u64)
            .read_to_end(&mut payload)
            .map_err(|e| anyhow::anyhow!("cannot read: {e}"))?;
        classify_payload(registry, &name, &payload, opts, out)
    }
}

/// Captures smaller than this are read too fast for a progress bar to help.
const PROGRESS_MIN_BYTES: u64 = 8 << 20;

/// A progress bar over the bytes of a capture, on stderr when it is a terminal (indicatif
/// draws nothing otherwise), for captures of at least [`PROGRESS_MIN_BYTES`].
fn progress_bar(name: &str, len: u64) -> indicatif::ProgressBar {
    if len < PROGRESS_MIN_BYTES {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_owned());
    bar
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn classify_capture(
    registry: &Arc<Registry>,
    name: &str,
    reader: impl Read + Send,
    progress: &indicatif::ProgressBar,
    threads: NonZeroUsize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let capture = CaptureReader::new(reader)?;
    let limit = EngineConfig::default().max_flows;
    let (written, failure) =
        classify_events(registry, name, capture, progress, threads, limit, out)?;
    match failure {
        Some(e) => Err(anyhow::Error::new(e).context(format!(
            "capture ends with an error after {written} connection(s)"
        ))),
        None => Ok(()),
    }
}

/// Classifies the connections of `capture` and writes their lines, the engines holding at most
/// `max_flows` flows at once in all, as one engine would (beyond it the least recently active
/// flow is finished, and a later packet of it starts a new one). Returns the lines written and
/// the capture's error, if any.
fn classify_events<R: Read + Send>(
    registry: &Arc<Registry>,
    name: &str,
    capture: CaptureReader<R>,
    progress: &indicatif::ProgressBar,
    threads: NonZeroUsize,
    max_flows: usize,
    out: &mut impl Write,
) -> anyhow::Result<(u64, Option<CaptureError>)> {
    if threads.get() == 1 {
        classify_on_this_thread(registry, name, capture, progress, max_flows, out)
    } else {
        classify_in_parallel(registry, name, capture, progress, threads, max_flows, out)
    }
}

/// Work for a classifying engine, in the order the capture gives it for each connection.
#[derive(Clone, Copy)]
enum Job<'a> {
    /// Reassembled bytes of one direction of a connection.
    Data {
        key: FlowKey,
        dir: Direction,
        ts_ns: u64,
        payload: &'a [u8],
    },
    /// The connection ended (or was evicted, or the capture ended): its line is number `seq`.
    End { key: FlowKey, seq: u64, ts_ns: u64 },
}

/// Where the jobs go: a classifier on this thread, or the queue of the thread that owns the
/// connection.
trait JobSink {
    fn push(&mut self, job: Job<'_>);
    /// Nothing more can be done (output closed): stop reading.
    fn stopped(&self) -> bool;
}

/// A flow the engines track: its line number and last activity.
struct OpenFlow {
    seq: u64,
    last_ts: u64,
}

/// Numbers the connections in the order one engine would (its flow ids: a flow starts at its
/// first bytes, or at its close when it carried none) and decides evictions as that engine
/// would, so that however many engines share the work, the lines and their order are those of
/// a single engine.
struct Sequencer {
    open: HashMap<FlowKey, OpenFlow>,
    next_seq: u64,
    max_flows: usize,
}

impl Sequencer {
    fn new(max_flows: usize) -> Self {
        Self {
            open: HashMap::default(),
            next_seq: 0,
            max_flows,
        }
    }

    fn on_event(&mut self, event: CaptureEventRef<'_>, sink: &mut impl JobSink) {
        match event {
            // A connection is created by its first bytes (or its close), so that its line
            // keeps its place in the output whether or not its opening was captured.
            CaptureEventRef::Opened { .. } => {}
            CaptureEventRef::Data {
                key,
                dir,
                ts_ns,
                payload,
            } => {
                if payload.is_empty() {
                    return;
                }
                self.touch(key, ts_ns, sink);
                sink.push(Job::Data {
                    key,
                    dir,
                    ts_ns,
                    payload,
                });
            }
            CaptureEventRef::Closed { key, ts_ns } => {
                // A connection that closed without payload still gets its line.
                let seq = self.touch(key, ts_ns, sink);
                self.open.remove(&key);
                sink.push(Job::End { key, seq, ts_ns });
            }
        }
    }

    /// The line number of `key`, starting a flow (and evicting the least recently active
    /// one when `max_flows` are open) when it is new.
    fn touch(&mut self, key: FlowKey, ts_ns: u64, sink: &mut impl JobSink) -> u64 {
        if let Some(flow) = self.open.get_mut(&key) {
            flow.last_ts = flow.last_ts.max(ts_ns);
            return flow.seq;
        }
        if self.open.len() >= self.max_flows {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, f)| (f.last_ts, f.seq))
                .map(|(k, f)| (*k, f.seq, f.last_ts));
            if let Some((key, seq, ts_ns)) = oldest {
                self.open.remove(&key);
                sink.push(Job::End { key, seq, ts_ns });
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.open.insert(
            key,
            OpenFlow {
                seq,
                last_ts: ts_ns,
            },
        );
        seq
    }

    /// End of the capture: every flow still open ends, in line order.
    fn finish(&mut self, sink: &mut impl JobSink) {
        let mut open: Vec<_> = self.open.drain().collect();
        open.sort_unstable_by_key(|(_, f)| f.seq);
        for (key, f) in open {
            sink.push(Job::End {
                key,
                seq: f.seq,
                ts_ns: f.last_ts,
            });
        }
    }
}

/// Reads the capture to its end or first error, turning events into jobs; returns the error.
fn read_capture<R: Read>(
    mut capture: CaptureReader<R>,
    progress: &indicatif::ProgressBar,
    max_flows: usize,
    sink: &mut impl JobSink,
) -> Option<CaptureError> {
    let mut sequencer = Sequencer::new(max_flows);
    let mut failure = None;
    let mut seen: u32 = 0;
    loop {
        seen = seen.wrapping_add(1);
        if seen.is_multiple_of(4096) {
            progress.set_position(capture.offset());
        }
        let Some(event) = capture.next_ref() else {
            break;
        };
        match event {
            Ok(event) => sequencer.on_event(event, sink),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if sink.stopped() {
            return failure;
        }
    }
    sequencer.finish(sink);
    failure
}

/// One engine and the lines of the flows it finished.
struct Classifier<'a> {
    engine: Engine,
    outputs: Vec<Output>,
    evicted: Vec<FlowSummary>,
    file: &'a str,
}

impl<'a> Classifier<'a> {
    fn new(registry: &Arc<Registry>, file: &'a str) -> Self {
        // Evictions are decided by the sequencer, over all engines: none here. Only the
        // verdicts are printed: the sessions' records are dropped as they are parsed.
        let config = EngineConfig {
            max_flows: usize::MAX,
            records: false,
            ..EngineConfig::default()
        };
        Self {
            engine: Engine::with_config(Arc::clone(registry), config),
            outputs: Vec::new(),
            evicted: Vec::new(),
            file,
        }
    }

    /// Runs one job; a finished flow's line is appended to `lines` with its number.
    fn run(&mut self, job: Job<'_>, lines: &mut Vec<(u64, Vec<u8>)>) -> serde_json::Result<()> {
        match job {
            Job::Data {
                key,
                dir,
                ts_ns,
                payload,
            } => {
                self.engine.on_data(
                    key,
                    dir,
                    ts_ns,
                    payload,
                    &mut self.outputs,
                    &mut self.evicted,
                );
                // Offline, only the final verdict per connection is printed.
                self.outputs.clear();
            }
            Job::End { key, seq, ts_ns } => {
                self.engine.open(key, ts_ns, &mut self.evicted);
                if let Some(summary) = self.engine.close(&key) {
                    lines.push((seq, connection_line(self.file, &summary)?));
                }
            }
        }
        Ok(())
    }
}

fn connection_line(file: &str, summary: &FlowSummary) -> serde_json::Result<Vec<u8>> {
    let v = &summary.verdict;
    let mut line = serde_json::to_vec(&ConnectionLine {
        file,
        client: Addr(v.key.client),
        server: Addr(v.key.server),
        protocol: v.protocol,
        category: v.category,
        confidence: v.confidence,
        reason: &v.reason,
    })?;
    line.push(b'\n');
    Ok(line)
}

/// Writes lines in line-number order as they come, in any order: a line waits only for the
/// lines before it (of connections still open, or classified on another thread).
struct InOrder {
    next: u64,
    waiting: VecDeque<Option<Vec<u8>>>,
}

impl InOrder {
    fn new() -> Self {
        Self {
            next: 0,
            waiting: VecDeque::new(),
        }
    }

    fn put(&mut self, seq: u64, line: Vec<u8>, out: &mut impl Write) -> anyhow::Result<()> {
        let at = seq
            .checked_sub(self.next)
            .and_then(|at| usize::try_from(at).ok())
            .context("invariant: each line number is given once")?;
        if self.waiting.len() <= at {
            self.waiting.resize(at + 1, None);
        }
        self.waiting[at] = Some(line);
        while let Some(Some(_)) = self.waiting.front() {
            if let Some(Some(line)) = self.waiting.pop_front() {
                out.write_all(&line)
                    .map_err(|e| anyhow::Error::new(OutputError(e)))?;
                self.next += 1;
            }
        }
        Ok(())
    }

    /// Lines written; every line number below it has been.
    fn finish(self) -> anyhow::Result<u64> {
        anyhow::ensure!(
            self.waiting.is_empty(),
            "invariant: every connection gets its line"
        );
        Ok(self.next)
    }
}

/// `--threads 1`: reading, classifying and writing on the calling thread.
struct Inline<'a, W> {
    classifier: Classifier<'a>,
    lines: Vec<(u64, Vec<u8>)>,
    order: InOrder,
    out: &'a mut W,
    error: Option<anyhow::Error>,
}

impl<W: Write> JobSink for Inline<'_, W> {
    fn push(&mut self, job: Job<'_>) {
        if self.error.is_some() {
            return;
        }
        let result = self
            .classifier
            .run(job, &mut self.lines)
            .map_err(anyhow::Error::new)
            .and_then(|()| {
                self.lines
                    .drain(..)
                    .try_for_each(|(seq, line)| self.order.put(seq, line, self.out))
            });
        if let Err(e) = result {
            self.error = Some(e);
        }
    }

    fn stopped(&self) -> bool {
        self.error.is_some()
    }
}

fn classify_on_this_thread<R: Read>(
    registry: &Arc<Registry>,
    name: &str,
    capture: CaptureReader<R>,
    progress: &indicatif::ProgressBar,
    max_flows: usize,
    out: &mut impl Write,
) -> anyhow::Result<(u64, Option<CaptureError>)> {
    let mut sink = Inline {
        classifier: Classifier::new(registry, name),
        lines: Vec::new(),
        order: InOrder::new(),
        out,
        error: None,
    };
    let failure = read_capture(capture, progress, max_flows, &mut sink);
    if let Some(e) = sink.error {
        return Err(e);
    }
    Ok((sink.order.finish()?, failure))
}

/// Jobs sent to a classifying thread at once, at most (fewer hand-offs than one per job).
const BATCH_JOBS: usize = 1024;
/// Payload bytes sent to a classifying thread at once, at most.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches waiting for each classifying thread: with [`BATCH_BYTES`], what bounds the memory
/// between reading and classifying (a capture larger than memory streams through).
const JOB_QUEUE: usize = 8;
/// Batches of finished lines waiting to be written.
const LINE_QUEUE: usize = 64;

/// Jobs for one classifying thread, their payloads copied into one buffer (one allocation
/// per batch, not per job).
struct Batch {
    jobs: Vec<BatchJob>,
    bytes: Vec<u8>,
}

impl Batch {
    fn new() -> Self {
        Self {
            jobs: Vec::with_capacity(BATCH_JOBS),
            bytes: Vec::with_capacity(BATCH_BYTES),
        }
    }

    fn jobs(&self) -> impl Iterator<Item = Job<'_>> {
        self.jobs.iter().map(|job| match *job {
            BatchJob::Data {
                key,
                dir,
                ts_ns,
                ref bytes,
            } => Job::Data {
                key,
                dir,
                ts_ns,
                payload: self.bytes.get(bytes.clone()).unwrap_or_default(),
            },
            BatchJob::End { key, seq, ts_ns } => Job::End { key, seq, ts_ns },
        })
    }
}

/// A [`Job`] in a [`Batch`]: the payload is a range of the batch's bytes.
enum BatchJob {
    Data {
        key: FlowKey,
        dir: Direction,
        ts_ns: u64,
        bytes: Range<usize>,
    },
    End {
        key: FlowKey,
        seq: u64,
        ts_ns: u64,
    },
}

/// The reading thread's side: each connection goes to the thread its addresses hash to, so
/// one engine sees all of it, in order.
struct Dispatcher {
    queues: Vec<SyncSender<Batch>>,
    batches: Vec<Batch>,
    shard: foldhash::fast::FixedState,
    stopped: bool,
}

impl Dispatcher {
    fn flush(&mut self, i: usize) {
        let Some(batch) = self.batches.get_mut(i) else {
            return;
        };
        if batch.jobs.is_empty() {
            return;
        }
        let batch = std::mem::replace(batch, Batch::new());
        // A closed queue: its thread stopped (the output failed).
        if self.queues[i].send(batch).is_err() {
            self.stopped = true;
        }
    }

    fn finish(mut self) {
        for i in 0..self.queues.len() {
            self.flush(i);
        }
    }
}

impl JobSink for Dispatcher {
    fn push(&mut self, job: Job<'_>) {
        let key = match job {
            Job::Data { key, .. } | Job::End { key, .. } => key,
        };
        let i = (self.shard.hash_one(key) % self.queues.len() as u64) as usize;
        let batch = &mut self.batches[i];
        batch.jobs.push(match job {
            Job::Data {
                key,
                dir,
                ts_ns,
                payload,
            } => {
                let start = batch.bytes.len();
                batch.bytes.extend_from_slice(payload);
                BatchJob::Data {
                    key,
                    dir,
                    ts_ns,
                    bytes: start..batch.bytes.len(),
                }
            }
            Job::End { key, seq, ts_ns } => BatchJob::End { key, seq, ts_ns },
        });
        if batch.jobs.len() >= BATCH_JOBS || batch.bytes.len() >= BATCH_BYTES {
            self.flush(i);
        }
    }

    fn stopped(&self) -> bool {
        self.stopped
    }
}

/// `--threads N` (N > 1): one thread reads and reassembles, N classify (each connection on
/// one of them), and this one writes the lines in order.
fn classify_in_parallel<R: Read + Send>(
    registry: &Arc<Registry>,
    name: &str,
    capture: CaptureReader<R>,
    progress: &indicatif::ProgressBar,
    threads: NonZeroUsize,
    max_flows: usize,
    out: &mut impl Write,
) -> anyhow::Result<(u64, Option<CaptureError>)> {
    std::thread::scope(|scope| {
        let (line_tx, line_rx) = sync_channel::<Vec<(u64, Vec<u8>)>>(LINE_QUEUE);
        let mut queues = Vec::with_capacity(threads.get());
        let mut workers = Vec::with_capacity(threads.get());
        for i in 0..threads.get() {
            let (job_tx, job_rx) = sync_channel::<Batch>(JOB_QUEUE);
            queues.push(job_tx);
            let line_tx = line_tx.clone();
            let worker = std::thread::Builder::new()
                .name(format!("adi-classify-{i}"))
                .spawn_scoped(scope, move || {
                    classify_jobs(registry, name, &job_rx, &line_tx)
                })
                .context("starting a classifying thread")?;
            workers.push(worker);
        }
        drop(line_tx);
        let reader = std::thread::Builder::new()
            .name("adi-read".to_owned())
            .spawn_scoped(scope, move || {
                let mut dispatcher = Dispatcher {
                    batches: queues.iter().map(|_| Batch::new()).collect(),
                    queues,
                    shard: foldhash::fast::FixedState::default(),
                    stopped: false,
                };
                let failure = read_capture(capture, progress, max_flows, &mut dispatcher);
                dispatcher.finish();
                failure
            })
            .context("starting the reading thread")?;
        let mut order = InOrder::new();
        let written = line_rx
            .iter()
            .flatten()
            .try_for_each(|(seq, line)| order.put(seq, line, out))
            .and_then(|()| order.finish());
        // On an error, the lines' queue closes here: the classifying threads stop at their
        // next batch, and the reader at its next hand-off.
        drop(line_rx);
        let failure = join(reader);
        for worker in workers {
            join(worker)?;
        }
        Ok((written?, failure))
    })
}

/// A classifying thread: runs the jobs of its connections, sends the lines they finish.
fn classify_jobs(
    registry: &Arc<Registry>,
    name: &str,
    jobs: &Receiver<Batch>,
    lines: &SyncSender<Vec<(u64, Vec<u8>)>>,
) -> anyhow::Result<()> {
    let mut classifier = Classifier::new(registry, name);
    let mut done = Vec::new();
    for batch in jobs {
        for job in batch.jobs() {
            classifier.run(job, &mut done)?;
        }
        if !done.is_empty() && lines.send(std::mem::take(&mut done)).is_err() {
            // The writer stopped (the output failed): nothing more is wanted.
            break;
        }
    }
    Ok(())
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn classify_payload(
    registry: &Arc<Registry>,
    name: &str,
    payload: &[u8],
    opts: Options,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let key = FlowKey {
        pid: 0,
        role: Role::Wire,
        client: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        server: SocketAddr::from((Ipv4Addr::UNSPECIFIED, opts.port.unwrap_or(0))),
    };
    let dirs: &[Direction] = match opts.direction {
        Some(Direction::ToServer) => &[Direction::ToServer],
        Some(Direction::ToClient) => &[Direction::ToClient],
        None => &[Direction::ToServer, Direction::ToClient],
    };
    let mut best: Option<FlowSummary> = None;
    for &dir in dirs {
        let mut engine = Engine::new(Arc::clone(registry));
        engine.on_data(key, dir, 0, payload, &mut Vec::new(), &mut Vec::new());
        let Some(summary) = engine.close(&key) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|b| summary.verdict.confidence > b.verdict.confidence)
        {
            best = Some(summary);
        }
    }
    let Some(best) = best else {
        anyhow::bail!("no direction to classify")
    };
    let v = &best.verdict;
    emit(
        out,
        &PayloadLine {
            file: name,
            protocol: v.protocol,
            category: v.category,
            confidence: v.confidence,
            reason: &v.reason,
        },
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use adi_capture::CaptureEvent;

    use super::*;

    /// Every capture committed to the repository.
    fn committed_captures() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        let mut add = |dir: PathBuf| {
            for entry in std::fs::read_dir(&dir).expect("captures folder") {
                let path = entry.expect("entry").path();
                let is_capture = std::fs::read(&path).is_ok_and(|b| is_capture_magic(&b));
                if path.is_file() && is_capture {
                    files.push(path);
                }
            }
        };
        add(root.join("testdata/captures"));
        add(root.join("capture/tests/captures"));
        for entry in std::fs::read_dir(root.join("classifiers/src")).expect("classifiers") {
            let fixtures = entry.expect("entry").path().join("fixtures");
            if fixtures.is_dir() {
                add(fixtures);
            }
        }
        files.sort();
        files
    }

    fn line_count(bytes: &[u8]) -> usize {
        bytes.split(|&b| b == b'\n').count() - 1
    }

    fn registry() -> Arc<Registry> {
        Arc::new(Registry::from_inventory().expect("registry"))
    }

    /// `classify_events` on one capture: its lines and whether it ended with an error.
    fn lines(path: &Path, threads: usize, max_flows: usize) -> (Vec<u8>, bool) {
        let file = File::open(path).expect("open");
        let capture = CaptureReader::new(file).expect("capture header");
        let mut out = Vec::new();
        let (written, failure) = classify_events(
            &registry(),
            "f",
            capture,
            &indicatif::ProgressBar::hidden(),
            NonZeroUsize::new(threads).expect("threads"),
            max_flows,
            &mut out,
        )
        .expect("classify");
        let count = line_count(&out);
        assert_eq!(written, count as u64, "{}", path.display());
        (out, failure.is_some())
    }

    /// What `adi classify` printed before it had threads: one engine numbering and evicting
    /// the flows itself, every summary sorted by flow id at the end.
    fn one_engine(path: &Path) -> Vec<u8> {
        let mut engine = Engine::new(registry());
        let mut summaries = Vec::new();
        let mut outputs = Vec::new();
        let capture = CaptureReader::new(File::open(path).expect("open")).expect("header");
        for event in capture {
            match event {
                Ok(CaptureEvent::Opened { .. }) => {}
                Ok(CaptureEvent::Data {
                    key,
                    dir,
                    ts_ns,
                    payload,
                }) => {
                    engine.on_data(key, dir, ts_ns, &payload, &mut outputs, &mut summaries);
                    outputs.clear();
                }
                Ok(CaptureEvent::Closed { key, ts_ns }) => {
                    engine.open(key, ts_ns, &mut summaries);
                    summaries.extend(engine.close(&key));
                }
                Err(_) => break,
            }
        }
        summaries.extend(engine.close_all());
        summaries.sort_by_key(|s| s.verdict.flow);
        summaries
            .iter()
            .flat_map(|s| connection_line("f", s).expect("line"))
            .collect()
    }

    #[test]
    fn every_committed_capture_gives_the_lines_of_one_engine_whatever_the_threads() {
        let files = committed_captures();
        assert!(files.len() >= 40, "only {} captures", files.len());
        let limit = EngineConfig::default().max_flows;
        let mut total = 0;
        for path in &files {
            let want = one_engine(path);
            let (one, failed) = lines(path, 1, limit);
            assert!(
                one == want,
                "{}: --threads 1\n{}\nwant\n{}",
                path.display(),
                String::from_utf8_lossy(&one),
                String::from_utf8_lossy(&want)
            );
            for threads in [2, 3, 8] {
                let (many, many_failed) = lines(path, threads, limit);
                assert_eq!(failed, many_failed, "{}", path.display());
                assert!(
                    many == one,
                    "{}: --threads {threads}\n{}\nwant\n{}",
                    path.display(),
                    String::from_utf8_lossy(&many),
                    String::from_utf8_lossy(&one)
                );
            }
            total += line_count(&one);
        }
        assert!(total >= 130, "only {total} connections");
    }

    /// With room for one flow, flows are evicted and come back as new lines: the threads
    /// share one limit and evict the flows one engine would, in the same order.
    #[test]
    fn evictions_are_the_same_whatever_the_threads() {
        let mut evicting = 0;
        for path in committed_captures() {
            let (unbounded, _) = lines(&path, 1, usize::MAX);
            let (one, _) = lines(&path, 1, 1);
            if one != unbounded {
                evicting += 1;
            }
            for threads in [2, 4] {
                let (many, _) = lines(&path, threads, 1);
                assert!(
                    many == one,
                    "{}: --threads {threads}\n{}\nwant\n{}",
                    path.display(),
                    String::from_utf8_lossy(&many),
                    String::from_utf8_lossy(&one)
                );
            }
        }
        assert!(evicting >= 3, "only {evicting} captures evict flows");
    }

    #[test]
    fn addresses_are_written_as_display_addr_gives_them() {
        for addr in [
            "127.0.0.1:80",
            "[::1]:443",
            "[::ffff:10.0.0.1]:5432",
            "[fe80::1%2]:9",
        ] {
            let addr: SocketAddr = addr.parse().expect("address");
            let json = serde_json::to_string(&Addr(addr)).expect("json");
            let want = serde_json::to_string(&adi_core::flow::display_addr(addr)).expect("json");
            assert_eq!(json, want);
        }
    }

    #[test]
    fn lines_are_written_in_line_order_whatever_order_they_come_in() {
        let mut order = InOrder::new();
        let mut out = Vec::new();
        for (seq, line) in [(2, "c\n"), (0, "a\n"), (3, "d\n"), (1, "b\n")] {
            order
                .put(seq, line.as_bytes().to_vec(), &mut out)
                .expect("put");
        }
        assert_eq!(out, b"a\nb\nc\nd\n");
        order
            .put(1, b"again\n".to_vec(), &mut out)
            .expect_err("line 1 twice");
        assert_eq!(order.finish().expect("all written"), 4);
    }
}
