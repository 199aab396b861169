//! `adi classify FILE...`: offline classification.
//!
//! A file starting with pcap or pcapng magic is read as a capture: its TCP streams are
//! reassembled by `adi_capture` and fed to the same engine the live probes use, and each
//! connection gets one line `{"file","client","server","protocol","category","confidence",
//! "reason"}`, in the order connections opened. Any other file is one raw payload: one line
//! `{"file","protocol","category","confidence","reason"}`.
//!
//! One bad file never stops the rest: its error goes to stderr as one line and counts as a
//! failure (non-zero exit status).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use adi_capture::{is_capture_magic, CaptureEvent, CaptureReader};
use adi_core::engine::{Engine, FlowSummary, Output};
use adi_core::flow::{display_addr, FlowKey, Role};
use adi_core::{Direction, Registry};
use serde::Serialize;

/// How much of a payload file is read: far more than any probe window, so a 1 GB file costs
/// no more than a small one.
const MAX_PAYLOAD_READ: u64 = 1 << 20;

/// Options for payload files.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `--port`.
    pub port: Option<u16>,
    /// `--direction`.
    pub direction: Option<Direction>,
}

#[derive(Serialize)]
struct ConnectionLine<'a> {
    file: &'a str,
    client: String,
    server: String,
    protocol: adi_core::ProtocolId,
    category: adi_core::Category,
    confidence: adi_core::Confidence,
    reason: &'a str,
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
        let result = classify_capture(registry, &name, reader, &progress, out);
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
    reader: impl Read,
    progress: &indicatif::ProgressBar,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut engine = Engine::new(Arc::clone(registry));
    let mut outputs: Vec<Output> = Vec::new();
    let mut summaries: Vec<FlowSummary> = Vec::new();
    let mut failure = None;
    let mut capture = CaptureReader::new(BufReader::with_capacity(256 * 1024, reader))?;
    let mut seen: u32 = 0;
    while let Some(event) = capture.next() {
        seen = seen.wrapping_add(1);
        if seen.is_multiple_of(4096) {
            progress.set_position(capture.offset());
        }
        match event {
            // A connection is created by its first bytes (or its close), so that its line
            // keeps its place in the output whether or not its opening was captured.
            Ok(CaptureEvent::Opened { .. }) => {}
            Ok(CaptureEvent::Data {
                key,
                dir,
                ts_ns,
                payload,
            }) => {
                engine.on_data(key, dir, ts_ns, &payload, &mut outputs, &mut summaries);
                // Offline, only the final verdict per connection is printed.
                outputs.clear();
            }
            Ok(CaptureEvent::Closed { key, ts_ns }) => {
                // A connection that closed without payload still gets its line.
                engine.open(key, ts_ns, &mut summaries);
                summaries.extend(engine.close(&key));
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    summaries.extend(engine.close_all());
    summaries.sort_by_key(|s| s.verdict.flow);
    for s in &summaries {
        let v = &s.verdict;
        emit(
            out,
            &ConnectionLine {
                file: name,
                client: display_addr(v.key.client),
                server: display_addr(v.key.server),
                protocol: v.protocol,
                category: v.category,
                confidence: v.confidence,
                reason: &v.reason,
            },
        )?;
    }
    match failure {
        Some(e) => Err(anyhow::Error::new(e).context(format!(
            "capture ends with an error after {} connection(s)",
            summaries.len()
        ))),
        None => Ok(()),
    }
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
