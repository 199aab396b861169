//! The live pipeline's cost per event, with container enrichment off and on, side by side in
//! one run: Bookinfo-like services in 40 containers calling each other over HTTP/1, each
//! connection opened, carrying 4 request/response exchanges, and closed; every event
//! serialised as a JSON line, as the jsonl sink writes it.
//!
//! - `pipeline/containers_off`: no runtime (events without container fields).
//! - `pipeline/containers_on`: the runtime index of `adi-containers` with 40 containers
//!   (each process's container read once, each connection's other end located once).
//! - `pipeline_no_json/containers_off` and `.../containers_on`: the same without writing the
//!   JSON lines, which separates the cost of the lookups from the cost of the bigger lines
//!   (an enriched event names two containers: about 300 more bytes of JSON).
//!
//! - `keep_alive/wrk_nginx`: the live overhead bench's traffic (`benches/overhead/run.sh`), one
//!   thread: 50 keep-alive connections traced at both ends (a client and a server process),
//!   each exchange four messages (sent and read at each end) with wrk's and nginx's real
//!   bytes (`benches/fixtures`), every event redacted and written by the
//!   `jsonl` sink (to a writer that discards). The connections are opened and classified before
//!   the measurement: what is measured is a locked flow's cost per message.
//!
//! Elements are events. Run with `cargo bench -p adi-benches --bench pipeline`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use adi_containers::cgroup::{CgroupContainer, Scheme};
use adi_containers::index::{describe, Container, Index, RuntimeKind};
use adi_containers::source::Containers;
use adi_core::event::Event;
use adi_core::flow::{FlowKey, Role};
use adi_core::{Direction, Registry};
use adi_pipeline::{Input, NoProcesses, Pipeline, PipelineConfig};
use adi_sinks::jsonl::JsonlSink;
use adi_sinks::Sink;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use adi_classifiers as _;

// adi's allocator: allocation is a good part of the cost per event.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONTAINERS: u32 = 40;
const CONNECTIONS: u32 = 64;
const EXCHANGES: usize = 4;

const REQUEST: &[u8] = b"GET /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\nUser-Agent: python-requests/2.31.0\r\nAccept: */*\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 62\r\n\r\n{\"id\": 0, \"reviews\": [{\"reviewer\": \"Reviewer1\", \"stars\": 5}]}";

fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 89, 0, 2 + u8::try_from(i).unwrap_or(0)))
}

fn id(i: u32) -> String {
    format!("{i:064x}")
}

/// An index of `CONTAINERS` containers, pid `i + 1000` running in container `i`.
fn runtime() -> Containers {
    let index = Arc::new(Index::new());
    for i in 0..CONTAINERS {
        let labels = BTreeMap::from([
            ("com.docker.compose.service".to_owned(), format!("svc{i}")),
            (
                "com.docker.compose.project".to_owned(),
                "bookinfo".to_owned(),
            ),
        ]);
        index.upsert(Container {
            info: Arc::new(describe(
                &id(i),
                &format!("/bookinfo_svc{i}_1"),
                "localhost/bookinfo/svc:1.0",
                labels,
            )),
            runtime: RuntimeKind::Docker,
            addrs: vec![ip(i)],
            published: Vec::new(),
        });
    }
    let pids: HashMap<u32, String> = (0..CONTAINERS).map(|i| (1000 + i, id(i))).collect();
    Containers::with_readers(
        index,
        Box::new(move |pid| {
            pids.get(&pid).map(|id| CgroupContainer {
                id: id.clone(),
                scheme: Scheme::Podman,
            })
        }),
        Box::new(|| HashSet::from([IpAddr::V4(Ipv4Addr::new(10, 89, 0, 1))])),
    )
}

/// One round: `CONNECTIONS` connections from container `c % N` to container `(c + 1) % N`,
/// traced at the client, each with its exchanges; returns the bytes of JSON written (`line`
/// given) or the number of events.
fn round(
    p: &mut Pipeline<NoProcesses>,
    port: &mut u16,
    events: &mut Vec<Event>,
    mut line: Option<&mut Vec<u8>>,
) -> usize {
    let mut written = 0;
    for c in 0..CONNECTIONS {
        *port = port.wrapping_add(1).max(1024);
        let key = FlowKey {
            pid: 1000 + c % CONTAINERS,
            role: Role::Client,
            client: SocketAddr::new(ip(c % CONTAINERS), *port),
            server: SocketAddr::new(ip((c + 1) % CONTAINERS), 9080),
        };
        p.handle(Input::Opened { key, ts_ns: 1 }, events);
        for x in 0..EXCHANGES as u64 {
            for (dir, payload) in [
                (Direction::ToServer, REQUEST),
                (Direction::ToClient, RESPONSE),
            ] {
                p.handle(
                    Input::Data {
                        key,
                        dir,
                        ts_ns: 10 + x,
                        payload,
                        missing: 0,
                        after_skip: false,
                        tls: false,
                        comm: "python3",
                    },
                    events,
                );
            }
        }
        p.handle(Input::Closed { key, ts_ns: 100 }, events);
        for e in events.drain(..) {
            let Some(line) = line.as_deref_mut() else {
                black_box(&e);
                written += 1;
                continue;
            };
            line.clear();
            serde_json::to_writer(&mut *line, &e).expect("json");
            line.push(b'\n');
            written += black_box(line.len());
        }
    }
    written
}

fn bench_pipeline(c: &mut Criterion) {
    let registry = Arc::new(Registry::from_inventory().expect("registry"));
    let config = PipelineConfig {
        redact: true,
        ..PipelineConfig::default()
    };
    let mut off = Pipeline::new(Arc::clone(&registry), NoProcesses, config);
    let mut on = Pipeline::new(registry, NoProcesses, config).with_containers(Box::new(runtime()));
    let (mut events, mut line, mut port) = (Vec::new(), Vec::new(), 1024);
    // Events per round: the same with enrichment on or off.
    round(&mut off, &mut port, &mut events, Some(&mut line));
    let per_round = off.stats().events;
    assert!(
        per_round >= u64::from(CONNECTIONS) * EXCHANGES as u64 * 2,
        "{per_round} events"
    );
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(per_round));
    g.bench_function("containers_off", |b| {
        b.iter(|| round(&mut off, &mut port, &mut events, Some(&mut line)));
    });
    g.bench_function("containers_on", |b| {
        b.iter(|| round(&mut on, &mut port, &mut events, Some(&mut line)));
    });
    g.finish();
    let mut g = c.benchmark_group("pipeline_no_json");
    g.throughput(Throughput::Elements(per_round));
    g.bench_function("containers_off", |b| {
        b.iter(|| round(&mut off, &mut port, &mut events, None));
    });
    g.bench_function("containers_on", |b| {
        b.iter(|| round(&mut on, &mut port, &mut events, None));
    });
    g.finish();
    // The enriched events did carry the containers (a bench of nothing proves nothing).
    round(&mut on, &mut port, &mut events, Some(&mut Vec::new()));
    let mut probe = Pipeline::new(
        Arc::new(Registry::from_inventory().expect("registry")),
        NoProcesses,
        config,
    )
    .with_containers(Box::new(runtime()));
    let key = FlowKey {
        pid: 1000,
        role: Role::Client,
        client: SocketAddr::new(ip(0), 5000),
        server: SocketAddr::new(ip(1), 9080),
    };
    probe.handle(
        Input::Data {
            key,
            dir: Direction::ToServer,
            ts_ns: 1,
            payload: REQUEST,
            missing: 0,
            after_skip: false,
            tls: false,
            comm: "python3",
        },
        &mut events,
    );
    let json = events
        .iter()
        .map(|e| serde_json::to_string(e).expect("json"))
        .find(|j| j.contains("\"event_type\":\"http\""))
        .expect("an http event");
    assert!(
        json.contains("\"destination_container\":{\"service\":\"svc1\""),
        "{json}"
    );
}

const KEEP_ALIVE_CONNECTIONS: u16 = 50;
const WRK_REQUEST: &[u8] = include_bytes!("../fixtures/to_server_wrk_get.bin");
const NGINX_RESPONSE: &[u8] = include_bytes!("../fixtures/to_client_nginx_612.bin");

/// One exchange on each keep-alive connection, seen at both ends (client pid 10, server pid
/// 20); every event handed to `sink`. Returns how many events there were.
fn keep_alive_round(
    p: &mut Pipeline<NoProcesses>,
    ts: &mut u64,
    events: &mut Vec<Event>,
    sink: &mut dyn FnMut(&Event),
) -> usize {
    let mut n = 0;
    for c in 0..KEEP_ALIVE_CONNECTIONS {
        let client = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 40_000 + c);
        let server = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 8080);
        let at = |pid, role| FlowKey {
            pid,
            role,
            client,
            server,
        };
        for (key, dir, payload, comm) in [
            (
                at(10, Role::Client),
                Direction::ToServer,
                WRK_REQUEST,
                "wrk",
            ),
            (
                at(20, Role::Server),
                Direction::ToServer,
                WRK_REQUEST,
                "nginx",
            ),
            (
                at(20, Role::Server),
                Direction::ToClient,
                NGINX_RESPONSE,
                "nginx",
            ),
            (
                at(10, Role::Client),
                Direction::ToClient,
                NGINX_RESPONSE,
                "wrk",
            ),
        ] {
            *ts += 1_000;
            p.handle(
                Input::Data {
                    key,
                    dir,
                    ts_ns: *ts,
                    payload,
                    missing: 0,
                    after_skip: false,
                    tls: false,
                    comm,
                },
                events,
            );
        }
        for e in events.drain(..) {
            sink(&e);
            n += 1;
        }
    }
    n
}

fn bench_keep_alive(c: &mut Criterion) {
    let registry = Arc::new(Registry::from_inventory().expect("registry"));
    let config = PipelineConfig {
        redact: true,
        ..PipelineConfig::default()
    };
    let mut p = Pipeline::new(registry, NoProcesses, config);
    let (mut events, mut ts) = (Vec::new(), 0);
    let mut last = String::new();
    let mut keep_last = |e: &Event| last = sonic_rs::to_string(e).expect("json");
    // Opened and classified (each connection's connection events) before measuring.
    keep_alive_round(&mut p, &mut ts, &mut events, &mut keep_last);
    let per_round = keep_alive_round(&mut p, &mut ts, &mut events, &mut keep_last);
    assert_eq!(
        per_round,
        usize::from(KEEP_ALIVE_CONNECTIONS) * 4,
        "one event per message"
    );
    // The last line is the client's response event, with its headers (a bench of nothing
    // proves nothing).
    assert!(
        last.contains("\"status_code\":200") && last.contains("\"ETag\""),
        "{last}"
    );
    let mut g = c.benchmark_group("keep_alive");
    g.throughput(Throughput::Elements(per_round as u64));
    // Written as adi writes them: the jsonl sink, to a writer that discards.
    let mut jsonl = JsonlSink::to_writer("jsonl", "discard", Box::new(std::io::sink()));
    let mut write = |e: &Event| jsonl.write(e).expect("write");
    g.bench_function("wrk_nginx", |b| {
        b.iter(|| keep_alive_round(&mut p, &mut ts, &mut events, &mut write));
    });
    g.finish();
}

criterion_group! {
    name = keep_alive;
    config = adi_benches::config(std::time::Duration::from_secs(3));
    targets = bench_keep_alive
}

criterion_group! {
    name = benches;
    config = adi_benches::config(std::time::Duration::from_secs(3));
    targets = bench_pipeline
}
criterion_main!(benches, keep_alive);
