//! Regressions found by `cargo fuzz run engine` (fuzz/fuzz_targets/engine.rs): the whole
//! engine over every built-in classifier on hostile conversations. Each input is replayed in
//! the fuzz target's format: one port byte, then chunks behind a control byte (bit 0: to
//! client, bit 1: close the flow, bits 2..: chunk length).

use std::net::SocketAddr;
use std::sync::Arc;

use adi_classify::engine::Engine;
use adi_classify::flow::{FlowKey, Role};
use adi_classify::{Direction, Registry};

use adi_classifiers as _;

/// Replays one fuzz input exactly as the `engine` fuzz target does.
fn replay(data: &[u8]) {
    let reg = Arc::new(Registry::from_inventory().expect("registry"));
    let mut engine = Engine::new(reg);
    let Some((&port, mut rest)) = data.split_first() else {
        return;
    };
    let ports = [
        80u16, 8080, 5432, 6379, 3306, 27017, 9092, 4222, 11211, 443, 12345,
    ];
    let key = FlowKey {
        pid: 1,
        role: Role::Client,
        client: SocketAddr::from(([127, 0, 0, 1], 40000)),
        server: SocketAddr::from(([127, 0, 0, 1], ports[usize::from(port) % ports.len()])),
    };
    let (mut out, mut evicted) = (Vec::new(), Vec::new());
    let mut ts = 0;
    while let Some((&ctl, tail)) = rest.split_first() {
        let len = usize::from(ctl >> 2).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        let dir = if ctl & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        ts += 1;
        engine.on_data(key, dir, ts, chunk, &mut out, &mut evicted);
        if ctl & 2 != 0 {
            let _ = engine.close(&key);
        }
        rest = next;
    }
    let _ = engine.close_all();
}

/// From fuzzing (engine, minimised): on port 80, RESP-like arrays with broken line ends in
/// both directions. A failed session made the engine re-classify from inside the session
/// call, which locked a candidate whose session failed on the same bytes again, and so on
/// until the stack overflowed.
#[test]
fn fuzz_failed_sessions_do_not_recurse() {
    let parts: &[&[u8]] = &[
        &[0x00], // port 80
        &[0xfd], // to client, 63 bytes
        b"$6redain/classifiers/src/redis/fixture\n*2\rSELEt2\r\n$3\r\nGP/1.\n*2\r",
        &[0x0a], // to server, then close, 2 bytes
        b"Z\x00",
        &[0x00], // to server, 0 bytes
        &[0x00], // to server, 0 bytes
        &[0x05], // to client, 1 bytes
        b"c",
        &[0x00], // to server, 0 bytes
        &[0xfc], // to server, 63 bytes (43 left)
        b"*2\r\n$3\r\nGET\r\n$16\r\nkey:\n*2\rnd_idt__\r\n/1.\n*2\r",
    ];
    replay(&parts.concat());
}
