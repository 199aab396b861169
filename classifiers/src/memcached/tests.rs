//! memcached tests.

use adi_core::testing::{check_classifier, load_fixtures};
use adi_core::{fixtures_dir, Classifier, Confidence, PortHint, Registration, Registry};

use super::Memcached;

fn registration() -> &'static Registration {
    let registry = Registry::from_inventory().expect("registry");
    registry.get("memcached").expect("memcached is registered")
}

#[test]
fn conformance() {
    check_classifier(registration(), fixtures_dir!("memcached"), Confidence::WEAK);
}

#[test]
fn dump_fixture_verdicts() {
    for fx in load_fixtures(fixtures_dir!("memcached")) {
        let p = Memcached.probe(&fx.bytes, fx.dir, PortHint::NONE);
        eprintln!("{:?} {}: {:?}", fx.dir, fx.name, p);
    }
}
