//! redis tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written edge cases, on look-alikes (NATS, memcached, HTTP) and on hostile input.

use adi_core::testing::{check_classifier, load_fixtures};
use adi_core::{fixtures_dir, Classifier, Confidence, Direction, PortHint, Probe, Registration, Registry};

use super::Redis;

fn registration() -> &'static Registration {
    let registry = Registry::from_inventory().expect("registry");
    registry.get("redis").expect("redis is registered")
}

#[test]
fn conformance() {
    check_classifier(registration(), fixtures_dir!("redis"), Confidence::WEAK);
}

#[test]
fn dump_fixture_verdicts() {
    for fx in load_fixtures(fixtures_dir!("redis")) {
        let p = Redis.probe(&fx.bytes, fx.dir, PortHint::NONE);
        eprintln!("{:?} {}: {:?}", fx.dir, fx.name, p);
    }
}
