//! The HTTP/2 session (frames, CONTINUATION assembly, HPACK dynamic tables, streams, DATA,
//! gaps) on an arbitrary two-way conversation that starts like a real one: the client preface
//! and an empty SETTINGS frame come first, so that both HPACK decoders run with a known table
//! (a connection joined mid-stream is never decoded and would leave HPACK unfuzzed). Then the
//! input is cut into chunks, each prefixed by one control byte (bit 0: direction, bit 1: the
//! chunk is a gap of that many lost bytes instead of bytes, bits 2..: chunk length).
#![no_main]

use std::sync::OnceLock;

use adi_core::{Direction, Registry, Session};
use libfuzzer_sys::fuzz_target;

use adi_classifiers as _;

static REGISTRY: OnceLock<Registry> = OnceLock::new();

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Bytes of one direction not consumed yet, fed like the engine feeds a session.
fn feed(session: &mut dyn Session, pending: &mut Vec<u8>, dir: Direction, out: &mut Vec<adi_core::Record>) -> bool {
    loop {
        match session.parse(pending, dir, out) {
            Ok(0) => return true,
            Ok(n) => {
                assert!(n <= pending.len(), "session consumed past its input");
                pending.drain(..n);
            }
            Err(_) => return false,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let reg = REGISTRY.get_or_init(|| Registry::from_inventory().expect("registry"));
    let entry = reg.get("http2").expect("http2 is registered");
    let mut session = entry.classifier.session();
    let mut out = Vec::new();
    let mut pending = [[PREFACE, SETTINGS].concat(), SETTINGS.to_vec()];
    for (i, dir) in [Direction::ToServer, Direction::ToClient].into_iter().enumerate() {
        if !feed(session.as_mut(), &mut pending[i], dir, &mut out) {
            return;
        }
    }
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let len = usize::from(ctl >> 2).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        let (i, dir) = if ctl & 1 == 0 { (0, Direction::ToServer) } else { (1, Direction::ToClient) };
        if ctl & 2 != 0 {
            // A gap: the engine reports it only once the pending bytes are consumed.
            if pending[i].is_empty() && session.gap(dir, len as u64, &mut out).is_err() {
                return;
            }
        } else {
            pending[i].extend_from_slice(chunk);
            if !feed(session.as_mut(), &mut pending[i], dir, &mut out) {
                return;
            }
        }
        rest = next;
    }
    for dir in [Direction::ToServer, Direction::ToClient] {
        session.finish(dir, &mut out);
    }
});
