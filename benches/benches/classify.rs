//! The classification hot path.
//!
//! - `probe/hit/<proto>/<fixture>`: one classifier's probe on the first bytes of a real
//!   fixture (what a new connection costs once its classifier is tried).
//! - `probe/miss/<proto>/random_<n>`: the same probe on random bytes, which every classifier
//!   must reject: the common case, since most candidates are wrong for any flow.
//! - `engine/first_payload/<fixture>`: a new flow through the whole engine (flow creation,
//!   every candidate, verdict, session start), and `engine/miss/random_<n>` for random bytes.
//!
//! Run with `cargo bench -p adi-benches`; the README lists the figures.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

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

fn bench_probes(c: &mut Criterion) {
    let registry = Registry::from_inventory().expect("registry");
    let fixtures = fixtures();
    let mut g = c.benchmark_group("probe");
    for reg in registry.iter() {
        for (proto, f) in fixtures.iter().filter(|(p, _)| p == reg.id.as_str()) {
            let bytes = &f.bytes[..f.bytes.len().min(*reg.probe_window.end())];
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_function(BenchmarkId::new(format!("hit/{proto}"), &f.name), |b| {
                b.iter(|| {
                    reg.classifier
                        .probe(black_box(bytes), f.dir, PortHint::NONE)
                });
            });
        }
        for n in [16usize, 256] {
            let random = random_bytes(n, 0x9e37_79b9_7f4a_7c15 ^ n as u64);
            let bytes = &random[..n.min(*reg.probe_window.end())];
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_function(
                BenchmarkId::new(format!("miss/{}", reg.id), format!("random_{n}")),
                |b| {
                    b.iter(|| {
                        reg.classifier.probe(
                            black_box(bytes),
                            adi_core::Direction::ToServer,
                            PortHint::NONE,
                        )
                    });
                },
            );
        }
    }
    g.finish();
}

fn bench_engine(c: &mut Criterion) {
    let registry = Arc::new(Registry::from_inventory().expect("registry"));
    let mut g = c.benchmark_group("engine");
    let mut engine = Engine::new(Arc::clone(&registry));
    let mut out = Vec::new();
    let mut evicted = Vec::new();
    let mut i = 0u64;
    let mut run = |name: String, bytes: Vec<u8>, dir, g: &mut criterion::BenchmarkGroup<'_, _>| {
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let k = key(i);
                engine.on_data(k, dir, i, black_box(&bytes), &mut out, &mut evicted);
                out.clear();
                black_box(engine.close(&k));
            });
        });
    };
    for (proto, f) in fixtures() {
        run(
            format!("first_payload/{proto}/{}", f.name),
            f.bytes.clone(),
            f.dir,
            &mut g,
        );
    }
    for n in [64usize, 1024] {
        run(
            format!("miss/random_{n}"),
            random_bytes(n, n as u64),
            adi_core::Direction::ToServer,
            &mut g,
        );
    }
    g.finish();
}

criterion_group!(benches, bench_probes, bench_engine);
criterion_main!(benches);
