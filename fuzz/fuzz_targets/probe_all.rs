//! Every registered classifier's probe and session on arbitrary bytes: the first input byte
//! picks the classifier and the direction, so a new protocol needs no fuzz edits.
#![no_main]

use std::sync::OnceLock;

use adi_core::{Direction, PortHint, Registry};
use libfuzzer_sys::fuzz_target;

use adi_classifiers as _;

static REGISTRY: OnceLock<Registry> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let reg = REGISTRY.get_or_init(|| Registry::from_inventory().expect("registry"));
    let Some((&pick, payload)) = data.split_first() else { return };
    let entry = reg.nth(usize::from(pick >> 1) % reg.len());
    let dir = if pick & 1 == 0 { Direction::ToServer } else { Direction::ToClient };
    let window = &payload[..payload.len().min(*entry.probe_window.end())];
    let _ = entry.classifier.probe(window, dir, PortHint::NONE);
    let mut session = entry.classifier.session();
    let mut out = Vec::new();
    let mut at = 0;
    // Consume like the engine does: a session must never claim more than it was given.
    while at < payload.len() {
        match session.parse(&payload[at..], dir, &mut out) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                assert!(n <= payload.len() - at, "session consumed past its input");
                at += n;
            }
        }
    }
});
