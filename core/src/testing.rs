//! Conformance checks for classifier authors (feature `testing`), modelled on Vector's
//! component compliance tests. A classifier's `tests.rs` calls
//! [`check_classifier`]`(REGISTRATION, fixtures_dir!("redis"), Confidence::STRONG)`.
//!
//! Fixtures are files named `to_server_<name>.bin` or `to_client_<name>.bin`: real bytes of
//! one direction of one connection, from its first byte.

use std::path::{Path, PathBuf};

use crate::classify::{Confidence, Direction, PortHint, Probe};
use crate::registry::Registration;

/// The fixture folder of a protocol inside the calling crate:
/// `<crate>/src/<proto>/fixtures`.
#[macro_export]
macro_rules! fixtures_dir {
    ($proto:literal) => {
        ::std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/",
            $proto,
            "/fixtures"
        ))
    };
}

/// One fixture file.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Its path.
    pub path: PathBuf,
    /// The direction its name declares.
    pub dir: Direction,
    /// The name without the direction prefix and extension.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Every `to_server_*.bin` and `to_client_*.bin` in `dir`, sorted by file name.
///
/// # Panics
///
/// When the folder cannot be read (a test helper: failing loudly is the point).
pub fn load_fixtures(dir: &Path) -> Vec<Fixture> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading fixture folder {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("fixture folder entry").path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let Some(stem) = file.strip_suffix(".bin") else {
            continue;
        };
        let (dir, name) = if let Some(n) = stem.strip_prefix("to_server_") {
            (Direction::ToServer, n)
        } else if let Some(n) = stem.strip_prefix("to_client_") {
            (Direction::ToClient, n)
        } else {
            continue;
        };
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
        out.push(Fixture {
            path,
            dir,
            name: name.to_owned(),
            bytes,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Checks a classifier against its fixtures:
/// - no prefix of a fixture makes the probe answer `NoMatch` or another protocol's verdict,
/// - the whole fixture (up to the probe window) matches at `min` or more,
/// - a fresh session consumes each connection's fixtures entirely (`to_server_X` first, then
///   `to_client_X`, so responses meet their requests).
///
/// # Panics
///
/// On the first violation, naming the fixture and the prefix length.
pub fn check_classifier(reg: &Registration, fixtures: &Path, min: Confidence) {
    let all = load_fixtures(fixtures);
    assert!(!all.is_empty(), "no fixtures in {}", fixtures.display());
    let ports = PortHint::NONE;
    for fx in &all {
        let window = fx.bytes.len().min(*reg.probe_window.end());
        for len in 1..=window {
            match reg.classifier.probe(&fx.bytes[..len], fx.dir, ports) {
                Probe::NoMatch => {
                    panic!(
                        "{}: prefix of {len} bytes answered NoMatch",
                        fx.path.display()
                    )
                }
                Probe::Match(v) => assert_eq!(
                    v.protocol,
                    reg.id,
                    "{}: prefix of {len} bytes matched another protocol",
                    fx.path.display()
                ),
                Probe::NeedMore => {}
            }
        }
        match reg.classifier.probe(&fx.bytes[..window], fx.dir, ports) {
            Probe::Match(v) => assert!(
                v.confidence >= min,
                "{}: matched at {} < {}",
                fx.path.display(),
                v.confidence,
                min
            ),
            other => panic!("{}: whole fixture gave {other:?}", fx.path.display()),
        }
    }
    let mut names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
    names.dedup();
    for name in names {
        let mut session = reg.classifier.session();
        let mut records = Vec::new();
        for dir in [Direction::ToServer, Direction::ToClient] {
            for fx in all.iter().filter(|f| f.name == name && f.dir == dir) {
                let mut consumed = 0;
                while consumed < fx.bytes.len() {
                    match session.parse(&fx.bytes[consumed..], dir, &mut records) {
                        Ok(0) => break,
                        Ok(n) => consumed += n,
                        Err(e) => panic!(
                            "{}: session error at byte {consumed}: {e}",
                            fx.path.display()
                        ),
                    }
                }
                assert_eq!(
                    consumed,
                    fx.bytes.len(),
                    "{}: session left {} bytes unconsumed",
                    fx.path.display(),
                    fx.bytes.len() - consumed
                );
            }
        }
    }
}
