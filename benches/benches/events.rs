//! The per-message cost of full capture in user space, after the engine: one parsed HTTP
//! message (a real fixture: curl, Python, Go and nginx requests and responses) turned into an
//! `http` event, redacted, and written as a JSON line, as the live pipeline and the jsonl sink
//! do for every message when `--max-rate 0` captures everything.
//!
//! - `event/http_json`: `HttpEvent::from_record` + `redact` + the JSON line as the jsonl sink
//!   writes it (`sonic_rs::to_writer`) per message, elements per second over every HTTP/1
//!   fixture.
//!
//! - `service_map/http_events`: the `service-map` sink's work per live event (pairing, path
//!   templating, schema inference of both bodies, read from the event as it is), elements per
//!   second over the same messages, each request and its response on one connection.
//!
//! - `service_map/http_json_values`: the same map built from each event's JSON form
//!   (`serde_json::to_value`, then the map): what `adi map build` does per recorded line
//!   after parsing it, and what the live sink did per event before it read events as they are.
//!
//! - `sink/jsonl`: the `jsonl` sink's `write` (serialisation into its line buffer and a
//!   buffered write) per event, over the same redacted events, to a writer that discards.
//!
//! - `sink/env_yaml`: the `env-yaml` sink's document for one process (this process's own
//!   environment), to a writer that discards.
//!
//! - `bus/jsonl_encoded` and `bus/events`: publishing the same events (each cloned first, as
//!   the pipeline makes each anew) on a bus whose one subscriber is the `jsonl` sink, in the
//!   two ways the bus serves a sink: encoded on the publishing thread and the bytes handed
//!   over (how live capture runs `jsonl`), or the events themselves handed over, written by
//!   the subscriber and given back to be dropped by the publisher (how it runs the others).
//!   One thread plays both sides: what this leaves out is the second CPU.
//!
//! Run with `cargo bench -p adi-benches --bench events`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use adi_core::bus::{Bus, Delivery};
use adi_core::engine::{Engine, FlowRecord, Output};
use adi_core::event::{Event, HttpEvent, ProcessEvent, ProcessInfo};
use adi_core::flow::{FlowKey, Role};
use adi_core::testing::load_fixtures;
use adi_core::Registry;
use adi_sinks::env_yaml::EnvYamlSink;
use adi_sinks::jsonl::JsonlSink;
use adi_sinks::service_map::{MapBuilder, MapOptions};
use adi_sinks::Sink;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use adi_classifiers as _;

/// Every message the engine parses out of the HTTP/1 fixtures, each on a flow of its own.
fn http_records() -> Vec<FlowRecord> {
    let registry = Arc::new(Registry::from_inventory().expect("registry"));
    let mut engine = Engine::new(registry);
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../classifiers/src/http1/fixtures"
    ));
    let (mut out, mut evicted) = (Vec::new(), Vec::new());
    let mut records = Vec::new();
    let mut fixtures = load_fixtures(dir);
    // Each exchange's request, then its response, on one connection (named by the fixture).
    let exchange = |p: &Path| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let name = name
            .trim_start_matches("to_server_")
            .trim_start_matches("to_client_");
        name.to_owned()
    };
    fixtures.sort_by_key(|f| {
        (
            exchange(&f.path),
            f.path.to_string_lossy().contains("to_client"),
        )
    });
    let mut ports: Vec<String> = Vec::new();
    for f in fixtures {
        let name = exchange(&f.path);
        if !ports.contains(&name) {
            ports.push(name.clone());
        }
        let i = ports.iter().position(|n| *n == name).unwrap_or(0);
        let key = FlowKey {
            pid: 1,
            role: Role::Client,
            client: SocketAddr::from(([127, 0, 0, 1], 40_000 + u16::try_from(i).unwrap_or(0))),
            server: SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        engine.on_data(key, f.dir, 1, &f.bytes, &mut out, &mut evicted);
        records.extend(out.drain(..).filter_map(|o| match o {
            Output::Record(r) if r.protocol.as_str() == "http1" => Some(r),
            _ => None,
        }));
    }
    for i in 0..ports.len() {
        let key = FlowKey {
            pid: 1,
            role: Role::Client,
            client: SocketAddr::from(([127, 0, 0, 1], 40_000 + u16::try_from(i).unwrap_or(0))),
            server: SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        engine.finish(&key, 2, &mut out);
    }
    records.extend(out.drain(..).filter_map(|o| match o {
        Output::Record(r) if r.protocol.as_str() == "http1" => Some(r),
        _ => None,
    }));
    records
}

fn bench_events(c: &mut Criterion) {
    let records = http_records();
    assert!(!records.is_empty(), "no HTTP/1 fixture parsed");
    let process = ProcessInfo::new(4242, "nginx", "nginx: worker process");
    let mut line = Vec::with_capacity(4096);
    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("http_json", |b| {
        b.iter(|| {
            for r in &records {
                let mut e = HttpEvent::from_record(
                    r.clone(),
                    process.clone(),
                    "2026-11-22T08:00:00.000000000Z".to_owned(),
                );
                e.redact();
                line.clear();
                sonic_rs::to_writer(&mut line, &Event::Http(e)).expect("json");
                line.push(b'\n');
                black_box(&line);
            }
        });
    });
    g.finish();
    let events: Vec<Event> = records
        .iter()
        .map(|r| {
            let mut e = HttpEvent::from_record(
                r.clone(),
                process.clone(),
                "2026-11-22T08:00:00.000000000Z".to_owned(),
            );
            e.redact();
            Event::Http(e)
        })
        .collect();
    let mut g = c.benchmark_group("sink");
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut jsonl = JsonlSink::to_writer("jsonl", "discard", Box::new(std::io::sink()));
    g.bench_function("jsonl", |b| {
        b.iter(|| {
            for e in &events {
                jsonl.write(black_box(e)).expect("write");
            }
        });
    });
    // The env-yaml sink writes one document per watched process (at its start or exec), not
    // per message: the environment of this very process, real variables.
    let environ = std::fs::read("/proc/self/environ").expect("/proc/self/environ");
    let process_event = Event::Process(ProcessEvent::new(
        std::process::id(),
        Arc::from("/usr/bin/python3 /app/server.py --port 9080"),
        Ok(environ),
        "2026-11-22T08:00:00.000000000Z".to_owned(),
    ));
    g.throughput(Throughput::Elements(1));
    let mut env_yaml =
        EnvYamlSink::to_writer("env-yaml", "discard", Box::new(std::io::sink()), Vec::new());
    g.bench_function("env_yaml", |b| {
        b.iter(|| env_yaml.write(black_box(&process_event)).expect("write"));
    });
    g.finish();
    bench_bus(c, &events);
    let mut g = c.benchmark_group("service_map");
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut map = MapBuilder::new(MapOptions::default());
    g.bench_function("http_events", |b| {
        b.iter(|| {
            for e in &events {
                map.add_event(black_box(e)).expect("event");
            }
        });
    });
    let mut map = MapBuilder::new(MapOptions::default());
    g.bench_function("http_json_values", |b| {
        b.iter(|| {
            for e in &events {
                let value = serde_json::to_value(e).expect("json");
                map.add(black_box(&value));
            }
        });
    });
    g.finish();
}

/// `bus/jsonl_encoded` and `bus/events` (the module's doc).
fn bench_bus(c: &mut Criterion, events: &[Event]) {
    let mut g = c.benchmark_group("bus");
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut bus = Bus::new(1 << 20);
    let writer = JsonlSink::to_writer("jsonl", "discard", Box::new(std::io::sink()));
    let encoder = writer.encoder().expect("jsonl encodes");
    let mut sub = bus.subscribe_encoded("jsonl", encoder, 64 << 20);
    let mut writer: Box<dyn Sink> = Box::new(writer);
    g.bench_function("jsonl_encoded", |b| {
        b.iter(|| {
            for e in events {
                bus.publish(e.clone());
            }
            bus.flush();
            while let Some(batch) = sub.try_recv() {
                writer.write_encoded(&batch.bytes).expect("write");
                sub.give_back(batch.bytes);
            }
        });
    });
    drop(bus);
    let mut bus = Bus::new(1 << 20);
    let mut writer = JsonlSink::to_writer("jsonl", "discard", Box::new(std::io::sink()));
    let mut sub = bus.subscribe("jsonl");
    g.bench_function("events", |b| {
        b.iter(|| {
            for e in events {
                bus.publish(e.clone());
            }
            bus.flush();
            while let Some(Delivery::Event(e)) = sub.try_recv() {
                writer.write(&e).expect("write");
                sub.release(e);
            }
            sub.give_back();
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = adi_benches::config(std::time::Duration::from_secs(3));
    targets = bench_events
}
criterion_main!(benches);
