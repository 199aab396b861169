//! Cross-protocol checks over every fixture folder (`classifiers/src/<id>/fixtures`):
//! - no classifier of another protocol matches any prefix of a fixture at
//!   `Confidence::REPORT` (60) or more: look-alikes are told apart by payload, not port;
//! - random bytes never reach 60 for any classifier.
//!
//! A new protocol folder is picked up without edits here.

use std::path::Path;

use adi_classify::testing::check_no_confusion;
use adi_classify::{Confidence, Direction, PortHint, Probe, Registry};
use proptest::prelude::*;

use adi_classifiers as _;

fn registry() -> Registry {
    Registry::from_inventory().expect("registry")
}

#[test]
fn no_classifier_claims_another_protocols_fixture() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut checked = 0;
    for owner in registry().iter() {
        let dir = root.join(owner.id.as_str()).join("fixtures");
        if dir.is_dir() {
            check_no_confusion(owner.id.as_str(), &dir);
            checked += 1;
        }
    }
    assert!(checked > 0, "no fixtures found under {}", root.display());
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
