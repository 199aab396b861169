//! `adi replay CAPTURE...`: a pcap/pcapng capture through the same pipeline as live capture
//! (the same `http`, `message` and `connection` events, the same sinks), so a user with only a
//! tcpdump capture gets adi's whole output and every live bug reproduces offline. Captures
//! carry no processes: events have pid 0 and no service.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use adi_capture::{CaptureEvent, CaptureReader};
use adi_core::event::Event;
use adi_core::Registry;
use adi_pipeline::{Input, NoProcesses, Pipeline, PipelineConfig};
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
    /// How the service map names paths.
    pub map: adi_sinks::service_map::MapOptions,
}

/// Replays every capture; returns how many could not be read (each said on stderr).
///
/// # Errors
///
/// When a sink cannot be opened or written.
pub fn run(registry: &Arc<Registry>, opts: &ReplayOptions) -> anyhow::Result<usize> {
    crate::live::check_sinks(&opts.sinks)?;
    let mut sinks = crate::live::open_sinks(&opts.sinks, &[], opts.map)?;
    let config = PipelineConfig {
        redact: opts.redact,
        describe_processes: false,
        // A connection whose opening is not in the capture began before it: joined
        // mid-stream, as live capture joins connections opened before adi started.
        mid_stream_unopened: true,
    };
    // One pipeline for every capture: flow ids stay unique over the run.
    let mut pipeline = Pipeline::new(Arc::clone(registry), NoProcesses, config);
    let mut failures = 0;
    for path in &opts.files {
        if let Err(e) = replay_one(&mut pipeline, path, &mut sinks) {
            eprintln!(
                "adi: {}: {}",
                path.display(),
                adi_core::error::one_line(e.as_ref())
            );
            failures += 1;
        }
    }
    for sink in &mut sinks {
        sink.finish()
            .with_context(|| format!("writing {}", sink.name()))?;
    }
    Ok(failures)
}

/// One capture through `pipeline`; its connections all end with it.
fn replay_one(
    pipeline: &mut Pipeline<NoProcesses>,
    path: &std::path::Path,
    sinks: &mut [Box<dyn Sink>],
) -> anyhow::Result<()> {
    let file = File::open(path).context("cannot open")?;
    let reader = CaptureReader::new(BufReader::with_capacity(256 * 1024, file))?;
    let mut events: Vec<Event> = Vec::new();
    let mut last_ts = 0;
    let mut failure = None;
    for item in reader {
        match item {
            Ok(event) => {
                let (input, ts_ns) = input(&event);
                last_ts = ts_ns;
                pipeline.handle(input, &mut events);
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

/// What a capture event tells the pipeline, and its time.
fn input(event: &CaptureEvent) -> (Input<'_>, u64) {
    match *event {
        CaptureEvent::Opened { key, ts_ns } => (Input::Opened { key, ts_ns }, ts_ns),
        CaptureEvent::Data {
            key,
            dir,
            ts_ns,
            ref payload,
        } => (
            Input::Data {
                key,
                dir,
                ts_ns,
                payload,
                missing: 0,
                after_skip: false,
                tls: false,
                comm: "",
            },
            ts_ns,
        ),
        CaptureEvent::Closed { key, ts_ns } => (Input::Closed { key, ts_ns }, ts_ns),
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use adi_core::FlowKey;

    use super::*;

    /// Every capture in the repository: the classifiers' real captures and the end-to-end ones.
    fn captures() -> Vec<PathBuf> {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("classifiers/src"))
            .expect("classifiers/src")
            .map(|e| e.expect("entry").path().join("fixtures"))
            .collect();
        dirs.push(root.join("testdata/captures"));
        let mut files: Vec<PathBuf> = dirs
            .iter()
            .filter(|d| d.is_dir())
            .flat_map(|d| std::fs::read_dir(d).expect("fixtures"))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        files.sort();
        files
    }

    fn read(path: &Path) -> Vec<CaptureEvent> {
        let bytes = std::fs::read(path).expect("capture");
        CaptureReader::new(bytes.as_slice())
            .expect("capture header")
            .map(|e| e.expect("a well-formed capture"))
            .collect()
    }

    /// The protocols each connection (by its client and server address) is announced as.
    fn announced(events: &[CaptureEvent]) -> BTreeMap<String, BTreeSet<String>> {
        let config = PipelineConfig {
            mid_stream_unopened: true,
            ..PipelineConfig::default()
        };
        let registry = Arc::new(Registry::from_inventory().expect("registry"));
        let mut pipeline = Pipeline::new(registry, NoProcesses, config);
        let mut out = Vec::new();
        for e in events {
            pipeline.handle(input(e).0, &mut out);
        }
        pipeline.finish(u64::MAX, &mut out);
        let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in &out {
            if let Event::Connection(c) = e {
                let tuple = serde_json::to_string(&c.endpoints).expect("json");
                named
                    .entry(tuple)
                    .or_default()
                    .insert(c.protocol.as_str().to_owned());
            }
        }
        named
    }

    /// `events` as a capture started later would show them: each connection without its
    /// opening and its first `cut` data events (its first exchanges).
    fn joined_after(events: &[CaptureEvent], cut: usize) -> Vec<CaptureEvent> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let name = |k: &FlowKey| format!("{}-{}", k.client, k.server);
        events
            .iter()
            .filter(|e| match e {
                CaptureEvent::Opened { .. } => false,
                CaptureEvent::Data { key, .. } => {
                    let n = seen.entry(name(key)).or_default();
                    *n += 1;
                    *n > cut
                }
                CaptureEvent::Closed { .. } => true,
            })
            .cloned()
            .collect()
    }

    /// A capture that starts after a connection's first exchanges (or a connection opened
    /// before live capture started) may name fewer protocols, never another one: whatever a
    /// look-alike claims of a single message waits until the connection tells them apart.
    #[test]
    fn connections_joined_mid_stream_are_never_misnamed() {
        let files = captures();
        assert!(files.len() >= 30, "captures found: {files:?}");
        let mut failures = Vec::new();
        let mut checked = 0;
        for path in &files {
            let events = read(path);
            let truth = announced(&events);
            for cut in 1..=6 {
                for (tuple, protocols) in announced(&joined_after(&events, cut)) {
                    checked += 1;
                    let allowed = truth.get(&tuple);
                    for p in protocols {
                        if !allowed.is_some_and(|a| a.contains(&p)) {
                            failures.push(format!(
                                "{}: {tuple} joined after {cut} message(s) is named {p}, \
                                 from the start {allowed:?}",
                                path.display()
                            ));
                        }
                    }
                }
            }
        }
        assert!(checked > 100, "only {checked} verdicts checked");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The connection summaries of `capture`'s connections, as their last `connection`
    /// events give them.
    fn summaries(capture: &str) -> BTreeSet<String> {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../classifiers/src"));
        let registry = Arc::new(Registry::from_inventory().expect("registry"));
        let mut pipeline = Pipeline::new(registry, NoProcesses, PipelineConfig::default());
        let mut out = Vec::new();
        for e in read(&root.join(capture)) {
            pipeline.handle(input(&e).0, &mut out);
        }
        pipeline.finish(u64::MAX, &mut out);
        let mut last: BTreeMap<u64, String> = BTreeMap::new();
        for e in &out {
            if let Event::Connection(c) = e {
                let summary = serde_json::to_string(&c.summary).expect("json");
                last.insert(c.flow_id.0, summary);
            }
        }
        last.into_values().collect()
    }

    #[test]
    fn connection_events_carry_what_the_login_said() {
        let cases: [(&str, &[&str]); 8] = [
            (
                "tls/fixtures/tls_nondefault_port.pcap",
                &[
                    r#"{"server_name":"go.example"}"#,
                    r#"{"server_name":"ossl.example"}"#,
                    r#"{"server_name":"split.example"}"#,
                ],
            ),
            (
                "postgres/fixtures/postgres_default_port.pcap",
                &[
                    r#"{"client_name":"adi-psycopg","database":"adidb","user":"adi"}"#,
                    r#"{"client_name":"psql","database":"adidb","user":"adi"}"#,
                ],
            ),
            (
                "mysql/fixtures/mysql_default_port.pcap",
                &[r#"{"database":"adidb","user":"adi"}"#],
            ),
            (
                "mssql/fixtures/mssql_default.pcap",
                &[r#"{"client_name":"adi-fixture","database":"shop","user":"adi_user"}"#],
            ),
            (
                "mongodb/fixtures/mongodb_default.pcap",
                &[r#"{"database":"shop"}"#, "{}"],
            ),
            (
                "kafka/fixtures/kafka_default.pcap",
                &[r#"{"client_id":"adi-fixture"}"#],
            ),
            (
                "amqp/fixtures/amqp_default_port.pcap",
                &[
                    r#"{"client_name":"adi-consumer","vhost":"/"}"#,
                    r#"{"client_name":"adi-publisher","vhost":"/"}"#,
                ],
            ),
            (
                "nats/fixtures/nats_default_port.pcap",
                &[r#"{"client_name":"adi-nats-py"}"#],
            ),
        ];
        for (capture, want) in cases {
            let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(summaries(capture), want, "{capture}");
        }
    }

    #[test]
    fn amqp_publishes_keep_their_exchange_and_routing_key_when_redacted() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../classifiers/src"));
        let registry = Arc::new(Registry::from_inventory().expect("registry"));
        let config = PipelineConfig {
            redact: true,
            ..PipelineConfig::default()
        };
        let mut pipeline = Pipeline::new(registry, NoProcesses, config);
        let mut out = Vec::new();
        for e in read(&root.join("amqp/fixtures/amqp_default_port.pcap")) {
            pipeline.handle(input(&e).0, &mut out);
        }
        let published: Vec<String> = out
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) if m.op.as_deref() == Some("basic.publish") => {
                    Some(serde_json::to_string(&m.attributes).expect("json"))
                }
                _ => None,
            })
            .collect();
        assert!(!published.is_empty());
        assert!(
            published
                .iter()
                .any(|a| a.contains(r#""exchange":"adi.events""#)
                    && a.contains(r#""routing_key":"task.created""#)),
            "{published:#?}"
        );
    }
}
