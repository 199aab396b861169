//! The whole engine on arbitrary conversations: the input is cut into chunks, each prefixed
//! by one control byte (bit 0: direction, bit 1: close the flow, bits 2..: chunk length).
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use adi_core::engine::Engine;
use adi_core::flow::{FlowKey, Role};
use adi_core::{Direction, Registry};
use libfuzzer_sys::fuzz_target;

use adi_classifiers as _;

static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let reg = REGISTRY.get_or_init(|| Arc::new(Registry::from_inventory().expect("registry")));
    let mut engine = Engine::new(Arc::clone(reg));
    let Some((&port, mut rest)) = data.split_first() else { return };
    let ports = [80u16, 8080, 5432, 6379, 3306, 27017, 9092, 4222, 11211, 443, 12345];
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
        let dir = if ctl & 1 == 0 { Direction::ToServer } else { Direction::ToClient };
        ts += 1;
        engine.on_data(key, dir, ts, chunk, &mut out, &mut evicted);
        if ctl & 2 != 0 {
            let _ = engine.close(&key);
        }
        rest = next;
    }
    let _ = engine.close_all();
});
