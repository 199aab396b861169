//! The classification hot path.
//!
//! Each benchmark loops over a set of inputs and reports elements per second, so the time
//! per classification is 1 / throughput:
//! - `probe/hit/<proto>`: one classifier's probe on the first bytes of each of its real
//!   fixtures (what a new connection costs once its classifier is tried);
//! - `probe/miss/<proto>`: the same probe on 64 random buffers (16..=1024 bytes), which it
//!   must reject: the common case, since most candidates are wrong for any flow;
//! - `engine/first_payload/<proto>` and `engine/first_payload/all_fixtures`: a new flow through
//!   the whole engine (flow creation, every candidate, verdict, session start, close);
//! - `engine/miss/random`: the same for random bytes (every candidate tried and rejected);
//! - `offline/read_reassemble`: every committed capture read from memory, decoded and
//!   reassembled into events (`CaptureReader::next_ref`), in bytes of capture per second;
//! - `offline/classify`: the same captures through one engine, what `adi classify --threads 1`
//!   does but the JSON line, in connections per second.
//!
//! Run with `cargo bench -p adi-benches`; `docs/benchmarks.md` lists the figures.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use adi_capture::{is_capture_magic, CaptureEventRef, CaptureReader};
use adi_core::engine::Engine;
use adi_core::flow::{FlowKey, Role};
use adi_core::testing::load_fixtures;
use adi_core::{PortHint, Registry};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use adi_classifiers as _;

/// Deterministic pseudo-random bytes (xorshift64*), so runs compare.
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

fn fixtures() -> Vec<(String, adi_core::testing::Fixture)> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../classifiers/src"));
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    let mut dirs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let fx = dir.join("fixtures");
        if !fx.is_dir() {
            continue;
        }
        let proto = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        for f in load_fixtures(&fx) {
            out.push((proto.clone(), f));
        }
    }
    out
}

fn key(i: u64) -> FlowKey {
    let client = SocketAddr::from(([127, 0, 0, 1], 30_000 + (i % 30_000) as u16));
    let server = SocketAddr::from(([127, 0, 0, 2], 9));
    FlowKey {
        pid: (i / 30_000) as u32,
        role: Role::Wire,
        client,
        server,
    }
}

/// 64 random buffers of 16..=1024 bytes.
fn random_set() -> Vec<Vec<u8>> {
    (0..64u64)
        .map(|i| random_bytes(16 + (i as usize * 151) % 1009, 0x9e37_79b9_7f4a_7c15 ^ i))
        .collect()
}

fn bench_probes(c: &mut Criterion) {
    let registry = Registry::from_inventory().expect("registry");
    let fixtures = fixtures();
    let random = random_set();
    let mut g = c.benchmark_group("probe");
    for reg in registry.iter() {
        let window = *reg.probe_window.end();
        let hits: Vec<_> = fixtures
            .iter()
            .filter(|(p, _)| p == reg.id.as_str())
            .map(|(_, f)| (&f.bytes[..f.bytes.len().min(window)], f.dir))
            .collect();
        if !hits.is_empty() {
            // Every real first message of this protocol, once each: time per classification
            // is 1 / throughput.
            g.throughput(Throughput::Elements(hits.len() as u64));
            g.bench_function(BenchmarkId::new("hit", reg.id), |b| {
                b.iter(|| {
                    for (bytes, dir) in &hits {
                        black_box(reg.classifier.probe(black_box(bytes), *dir, PortHint::NONE));
                    }
                });
            });
        }
        g.throughput(Throughput::Elements(random.len() as u64));
        g.bench_function(BenchmarkId::new("miss", reg.id), |b| {
            b.iter(|| {
                for bytes in &random {
                    let bytes = &bytes[..bytes.len().min(window)];
                    black_box(reg.classifier.probe(
                        black_box(bytes),
                        adi_core::Direction::ToServer,
                        PortHint::NONE,
                    ));
                }
            });
        });
    }
    g.finish();
}

fn bench_engine(c: &mut Criterion) {
    let registry = Arc::new(Registry::from_inventory().expect("registry"));
    let fixtures = fixtures();
    let mut g = c.benchmark_group("engine");
    let mut engine = Engine::new(Arc::clone(&registry));
    let (mut out, mut evicted) = (Vec::new(), Vec::new());
    let mut i = 0u64;
    // A new flow, its first payload through every candidate, the verdict, the session start
    // and the close: what each new connection costs.
    let mut run = |name: &str,
                   inputs: &[(&[u8], adi_core::Direction)],
                   g: &mut criterion::BenchmarkGroup<'_, _>| {
        g.throughput(Throughput::Elements(inputs.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for (bytes, dir) in inputs {
                    i += 1;
                    let k = key(i);
                    engine.on_data(k, *dir, i, black_box(bytes), &mut out, &mut evicted);
                    out.clear();
                    black_box(engine.close(&k));
                }
            });
        });
    };
    let all: Vec<(&[u8], adi_core::Direction)> = fixtures
        .iter()
        .map(|(_, f)| (f.bytes.as_slice(), f.dir))
        .collect();
    run("first_payload/all_fixtures", &all, &mut g);
    for reg in registry.iter() {
        let mine: Vec<(&[u8], adi_core::Direction)> = fixtures
            .iter()
            .filter(|(p, _)| p == reg.id.as_str())
            .map(|(_, f)| (f.bytes.as_slice(), f.dir))
            .collect();
        if !mine.is_empty() {
            run(&format!("first_payload/{}", reg.id), &mine, &mut g);
        }
    }
    let random = random_set();
    let misses: Vec<(&[u8], adi_core::Direction)> = random
        .iter()
        .map(|r| (r.as_slice(), adi_core::Direction::ToServer))
        .collect();
    run("miss/random", &misses, &mut g);
    g.finish();
}

/// Every capture committed to the repository, read into memory.
fn captures() -> Vec<Vec<u8>> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut dirs = vec![
        root.join("testdata/captures"),
        root.join("capture/tests/captures"),
    ];
    if let Ok(entries) = std::fs::read_dir(root.join("classifiers/src")) {
        dirs.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("fixtures")),
        );
    }
    let mut files: Vec<_> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .filter(|bytes| is_capture_magic(bytes))
        .collect()
}

/// One capture through one engine as `adi classify --threads 1` does; returns the
/// connections classified.
fn classify_capture(engine: &mut Engine, capture: &[u8]) -> usize {
    let Ok(mut reader) = CaptureReader::new(capture) else {
        return 0;
    };
    let (mut out, mut summaries) = (Vec::new(), Vec::new());
    while let Some(Ok(event)) = reader.next_ref() {
        match event {
            CaptureEventRef::Opened { .. } => {}
            CaptureEventRef::Data {
                key,
                dir,
                ts_ns,
                payload,
            } => {
                engine.on_data(key, dir, ts_ns, payload, &mut out, &mut summaries);
                out.clear();
            }
            CaptureEventRef::Closed { key, ts_ns } => {
                engine.open(key, ts_ns, &mut summaries);
                summaries.extend(engine.close(&key));
            }
        }
    }
    summaries.extend(engine.close_all());
    black_box(&summaries);
    summaries.len()
}

fn bench_offline(c: &mut Criterion) {
    let registry = Arc::new(Registry::from_inventory().expect("registry"));
    let captures = captures();
    assert!(captures.len() >= 40, "only {} captures", captures.len());
    let bytes: usize = captures.iter().map(Vec::len).sum();
    let mut engine = Engine::new(Arc::clone(&registry));
    let connections: usize = captures
        .iter()
        .map(|c| classify_capture(&mut engine, c))
        .sum();
    let mut g = c.benchmark_group("offline");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("read_reassemble", |b| {
        b.iter(|| {
            for capture in &captures {
                let Ok(mut reader) = CaptureReader::new(black_box(&capture[..])) else {
                    continue;
                };
                while let Some(Ok(event)) = reader.next_ref() {
                    black_box(event);
                }
            }
        });
    });
    g.throughput(Throughput::Elements(connections as u64));
    g.bench_function("classify", |b| {
        b.iter(|| {
            for capture in &captures {
                black_box(classify_capture(&mut engine, capture));
            }
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = adi_benches::config(std::time::Duration::from_secs(2));
    targets = bench_probes, bench_engine, bench_offline
}
criterion_main!(benches);
