//! mysql tests: the probe and the session on real captures (see `fixtures/README.md`), on
//! hand-written messages, on look-alike protocols and on hostile or random bytes.

use std::net::SocketAddr;
use std::sync::Arc;

use adi_core::engine::{Engine, Output};
use adi_core::flow::Role;
use adi_core::testing::{check_classifier, load_fixtures};
use adi_core::{
    fixtures_dir, Classifier, Confidence, Direction, FlowKey, PortHint, Probe, Record, RecordKind,
    Registration, Registry, Session,
};
use proptest::prelude::*;

use super::session::{MysqlSession, MAX_QUERY_KEPT};
use super::{Mysql, MYSQL, PROBE_WINDOW};

fn registration() -> &'static Registration {
    let registry = Registry::from_inventory().expect("registry");
    registry.get("mysql").expect("postgres is registered")
}

fn probe(buf: &[u8], dir: Direction) -> Probe {
    Mysql.probe(buf, dir, PortHint::NONE)
}

/// The confidence of a match in the given direction (0 for anything else) and whether the
/// probe said the bytes travel the other way.
fn score(buf: &[u8], dir: Direction) -> (u8, bool) {
    match probe(buf, dir) {
        Probe::Match(v) => {
            assert_eq!(v.protocol, MYSQL);
            (v.confidence.get(), v.observed.is_some_and(|o| o != dir))
        }
        Probe::NeedMore | Probe::NoMatch => (0, false),
    }
}

fn fixture(name: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = fixtures_dir!("mysql");
    let read = |d: &str| {
        std::fs::read(dir.join(format!("to_{d}_{name}.bin"))).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    (read("server"), read("client"))
}

/// Feeds a connection's two directions whole, to-server first (as the conformance check
/// does), and returns every record.
fn parse_all(to_server: &[u8], to_client: &[u8]) -> Vec<Record> {
    let mut session = MysqlSession::default();
    let mut out = Vec::new();
    for (dir, bytes) in [(Direction::ToServer, to_server), (Direction::ToClient, to_client)] {
        let mut done = 0;
        while done < bytes.len() {
            let n = session.parse(&bytes[done..], dir, &mut out).expect("parse");
            assert!(n > 0, "{dir:?}: stuck at {done}");
            done += n;
        }
    }
    out
}

/// The same, in pieces of `size` bytes, unconsumed bytes carried over as the engine does.
fn parse_split(to_server: &[u8], to_client: &[u8], size: usize) -> Vec<Record> {
    let mut session = MysqlSession::default();
    let mut out = Vec::new();
    for (dir, bytes) in [(Direction::ToServer, to_server), (Direction::ToClient, to_client)] {
        let mut pending = Vec::new();
        for piece in bytes.chunks(size) {
            pending.extend_from_slice(piece);
            let n = session.parse(&pending, dir, &mut out).expect("parse");
            pending.drain(..n);
        }
        assert!(pending.is_empty(), "{dir:?}: {} bytes left", pending.len());
    }
    out
}

/// A compact view of a record: kind, op, resource, attributes.
fn view(r: &Record) -> String {
    let attrs: Vec<String> = r.attributes.iter().map(|(n, v)| format!("{n}={v}")).collect();
    format!(
        "{:?} {} {} [{}]",
        r.kind,
        r.op.as_deref().unwrap_or("-"),
        r.resource.as_deref().unwrap_or("-"),
        attrs.join(", ")
    )
}

fn views(records: &[Record]) -> Vec<String> {
    records.iter().map(view).collect()
}

#[test]
fn dump() {
    for name in ["pymysql_query", "mariadb_cli", "raw_binary_protocol", "pymysql_bad_password", "mariadb_cli_ssl"] {
        let (s, c) = fixture(name);
        for v in views(&parse_all(&s, &c)) {
            eprintln!("{v}");
        }
    }
}

#[test]
fn conformance() {
    check_classifier(registration(), fixtures_dir!("mysql"), Confidence::CERTAIN);
}

#[test]
fn probe_matches_every_fixture_at_certain_in_its_direction() {
    let all = load_fixtures(fixtures_dir!("mysql"));
    assert!(all.len() >= 16, "{} fixtures", all.len());
    for fx in &all {
        let window = &fx.bytes[..fx.bytes.len().min(PROBE_WINDOW)];
        assert_eq!(
            score(window, fx.dir),
            (Confidence::CERTAIN.get(), false),
            "{}",
            fx.path.display()
        );
    }
}
