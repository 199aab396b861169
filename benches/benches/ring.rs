//! The first step of live capture in user space: decoding one ring buffer record (the
//! kernel's header and the payload it copied) into a `RawEvent`, for every message.
//!
//! - `ring/decode_data`: data records carrying the requests and responses of the HTTP/1
//!   fixtures (curl, Python, Go, nginx), each header decoded into the one reused event and
//!   its payload borrowed, as the live loop does (`RawEvent::decode_header`), elements per
//!   second.
//! - `ring/decode_data_copied`: the same with the payload copied into the event
//!   (`RawEvent::decode_into`, what the live loop did before it borrowed the payload).
//!
//! Run with `cargo bench -p adi-benches --bench ring`.

use std::hint::black_box;
use std::path::Path;

use adi_core::testing::load_fixtures;
use adi_probes::raw::{RawEvent, RawEventHdr};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// One data record per fixture (each a direction of a connection), as the kernel writes them.
fn records() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../classifiers/src/http1/fixtures");
    let mut out = Vec::new();
    for f in load_fixtures(&dir) {
        let dir = u32::from(f.dir != adi_core::Direction::ToServer);
        {
            let payload = &f.bytes[..f.bytes.len().min(4096)];
            let hdr = RawEventHdr {
                kind: 1,
                tgid: 4242,
                tid: 4242,
                fd: 7,
                ts_ns: 1_000_000,
                real_len: payload.len() as u64,
                sock: 0xffff_8880_0000_1000,
                cap_len: u32::try_from(payload.len()).expect("small"),
                dir,
                syscall: 1,
                family: 2,
                lport: 8080,
                rport: 51_000,
                role: 2,
                flags: 0,
                laddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                raddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                comm: *b"nginx\0\0\0\0\0\0\0\0\0\0\0",
            };
            let mut record = hdr.to_bytes().to_vec();
            record.extend_from_slice(payload);
            out.push(record);
        }
    }
    out
}

fn bench_ring(c: &mut Criterion) {
    let records = records();
    assert!(!records.is_empty(), "no HTTP/1 fixture");
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(records.len() as u64));
    let mut ev = RawEvent::decode(&records[0]).expect("decode");
    g.bench_function("decode_data", |b| {
        b.iter(|| {
            for r in &records {
                let payload = ev.decode_header(black_box(r)).expect("decode");
                black_box(payload);
            }
            black_box(&ev);
        });
    });
    g.bench_function("decode_data_copied", |b| {
        b.iter(|| {
            for r in &records {
                ev.decode_into(black_box(r)).expect("decode");
                black_box(&ev);
            }
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = adi_benches::config(std::time::Duration::from_secs(3));
    targets = bench_ring
}
criterion_main!(benches);
