//! Cross-protocol checks over every fixture folder (`classifiers/src/<id>/fixtures`):
//! - no classifier of another protocol matches any prefix of a fixture at
//!   `Confidence::REPORT` (60) or more: look-alikes are told apart by payload, not port;
//! - random bytes never reach 60 for any classifier.
//!
//! A new protocol folder is picked up without edits here.

use std::path::Path;

use adi_core::testing::load_fixtures;
use adi_core::{Confidence, Direction, PortHint, Probe, Registry};
use proptest::prelude::*;

use adi_classifiers as _;

fn registry() -> Registry {
    Registry::from_inventory().expect("registry")
}

/// Prefix lengths to try: all up to 64 bytes, then every 16th, then the whole window.
fn prefix_lengths(len: usize) -> impl Iterator<Item = usize> {
    (1..=len.min(64))
        .chain((80..len).step_by(16))
        .chain(std::iter::once(len))
}

#[test]
fn no_classifier_claims_another_protocols_fixture() {
    let reg = registry();
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut failures = Vec::new();
    let mut checked = 0;
    for owner in reg.iter() {
        let dir = root.join(owner.id.as_str()).join("fixtures");
        if !dir.is_dir() {
            continue;
        }
        for fx in load_fixtures(&dir) {
            for other in reg.iter().filter(|r| r.id != owner.id) {
                let window = fx.bytes.len().min(*other.probe_window.end());
                for len in prefix_lengths(window) {
                    checked += 1;
                    if let Probe::Match(v) =
                        other
                            .classifier
                            .probe(&fx.bytes[..len], fx.dir, PortHint::NONE)
                    {
                        if v.confidence >= Confidence::REPORT {
                            failures.push(format!(
                                "{} claims {} (prefix {len}) at {}: {}",
                                other.id,
                                fx.path.display(),
                                v.confidence,
                                v.reason
                            ));
                            break;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no fixtures found under {}", root.display());
    assert!(
        failures.is_empty(),
        "{} confusions:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_reach_report_level(bytes in proptest::collection::vec(any::<u8>(), 1..512), to_client: bool) {
        let dir = if to_client { Direction::ToClient } else { Direction::ToServer };
        for r in registry().iter() {
            let window = &bytes[..bytes.len().min(*r.probe_window.end())];
            if let Probe::Match(v) = r.classifier.probe(window, dir, PortHint::NONE) {
                prop_assert!(v.confidence < Confidence::REPORT, "{} matched random bytes at {}: {}", r.id, v.confidence, v.reason);
            }
        }
    }
}
