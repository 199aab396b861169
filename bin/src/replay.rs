//! `adi replay CAPTURE...`: a pcap/pcapng capture through the same pipeline as live capture
//! (the same `http`, `message` and `connection` events, the same sinks), so a user with only a
//! tcpdump capture gets adi's whole output and every live bug reproduces offline. Captures
//! carry no processes: events have pid 0 and no service.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use adi_core::event::Event;
use adi_core::Registry;
use adi_pipeline::{Input, NoProcesses, Pipeline, PipelineConfig};
use adi_probes::pcap::{CaptureEvent, CaptureReader};
use adi_sinks::{Sink, SinkSpec};
use anyhow::Context;

/// What `adi replay` was asked to do.
#[derive(Debug)]
pub struct ReplayOptions {
    /// The captures, in order.
    pub files: Vec<PathBuf>,
    /// Where the events go.
    pub sinks: Vec<SinkSpec>,
    /// Replace secrets with `<redacted>`.
    pub redact: bool,
}

/// Replays every capture; returns how many could not be read (each said on stderr).
///
/// # Errors
///
/// When a sink cannot be opened or written.
pub fn run(registry: &Arc<Registry>, opts: &ReplayOptions) -> anyhow::Result<usize> {
    crate::live::check_sinks(&opts.sinks)?;
    let mut sinks = crate::live::open_sinks(&opts.sinks, &[])?;
    let mut failures = 0;
    for path in &opts.files {
        if let Err(e) = replay_one(registry, path, opts.redact, &mut sinks) {
            eprintln!(
                "adi: {}: {}",
                path.display(),
                adi_core::error::one_line(e.as_ref())
            );
            failures += 1;
        }
    }
    for sink in &mut sinks {
        sink.flush()
            .with_context(|| format!("flushing {}", sink.name()))?;
    }
    Ok(failures)
}

fn replay_one(
    registry: &Arc<Registry>,
    path: &std::path::Path,
    redact: bool,
    sinks: &mut [Box<dyn Sink>],
) -> anyhow::Result<()> {
    let file = File::open(path).context("cannot open")?;
    let reader = CaptureReader::new(BufReader::with_capacity(256 * 1024, file))?;
    let config = PipelineConfig {
        redact,
        describe_processes: false,
        // A capture does not say which connections began before it: their first bytes are
        // taken as the connection's.
        mid_stream_unopened: false,
    };
    let mut pipeline = Pipeline::new(Arc::clone(registry), NoProcesses, config);
    let mut events: Vec<Event> = Vec::new();
    let mut last_ts = 0;
    let mut failure = None;
    for item in reader {
        match item {
            Ok(CaptureEvent::Data {
                key,
                dir,
                ts_ns,
                payload,
            }) => {
                last_ts = ts_ns;
                let input = Input::Data {
                    key,
                    dir,
                    ts_ns,
                    payload: &payload,
                    missing: 0,
                    after_skip: false,
                    comm: "",
                };
                pipeline.handle(input, &mut events);
            }
            Ok(CaptureEvent::Closed { key, ts_ns }) => {
                last_ts = ts_ns;
                pipeline.handle(Input::Closed { key, ts_ns }, &mut events);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        write(sinks, &mut events)?;
    }
    pipeline.finish(last_ts, &mut events);
    write(sinks, &mut events)?;
    match failure {
        Some(e) => Err(anyhow::Error::new(e).context("the capture ends with an error")),
        None => Ok(()),
    }
}

fn write(sinks: &mut [Box<dyn Sink>], events: &mut Vec<Event>) -> anyhow::Result<()> {
    for e in events.drain(..) {
        for sink in sinks.iter_mut() {
            sink.write(&e)
                .with_context(|| format!("writing to {}", sink.name()))?;
        }
    }
    Ok(())
}
