//! Conformance checks for classifier authors (feature `testing`), modelled on Vector's
//! component compliance tests. A classifier's `tests.rs` calls
//! [`check_classifier`]`(REGISTRATION, fixtures_dir!("redis"), Confidence::STRONG)`.
//!
//! Fixtures are files named `to_server_<name>.bin` or `to_client_<name>.bin`: real bytes of
//! one direction of one connection, from its first byte.
//!
//! Besides the conformance check, this module holds the helpers every classifier's tests
//! share: loading a connection's fixtures by name ([`fixture_pair`]), feeding a session in
//! pieces the way the engine does ([`parse_in_pieces`]), probing with the protocol checked
//! ([`verdict`], [`score`]), deterministic random inputs ([`xorshift_buffers`]) and running
//! bytes through a real [`Engine`] over every linked classifier ([`engine_from_inventory`],
//! [`flow_key`], [`feed_engine`]). They are test helpers: they panic loudly, naming what
//! failed, instead of returning errors.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::contract::{Classifier, Confidence, Direction, PortHint, Probe, Verdict};
use crate::engine::{Classification, Engine, FlowRecord, FlowSummary, Output};
use crate::flow::{FlowKey, Role};
use crate::record::Record;
use crate::registry::{Registration, Registry};

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
/// - no prefix of a fixture makes the probe answer `NoMatch`,
/// - the whole fixture (up to the probe window) matches in its own direction, at `min` or
///   more and at most `CERTAIN`,
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
                Probe::Match(_) | Probe::NeedMore => {}
            }
        }
        match reg.classifier.probe(&fx.bytes[..window], fx.dir, ports) {
            Probe::Match(v) => {
                assert!(
                    v.confidence >= min,
                    "{}: matched at {} < {}",
                    fx.path.display(),
                    v.confidence,
                    min
                );
                // One direction alone never earns more: CONFIRMED takes both.
                assert!(
                    v.confidence <= Confidence::CERTAIN,
                    "{}: matched at {} > CERTAIN",
                    fx.path.display(),
                    v.confidence
                );
                assert!(
                    v.observed.is_none_or(|o| o == fx.dir),
                    "{}: matched as travelling {:?}",
                    fx.path.display(),
                    v.observed
                );
            }
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

// ---- fixtures by name ----

/// The file-name prefix of a direction's fixtures: `to_server` or `to_client`.
fn direction_prefix(dir: Direction) -> &'static str {
    match dir {
        Direction::ToServer => "to_server",
        Direction::ToClient => "to_client",
    }
}

/// The bytes of one direction of one captured connection: `<fixtures>/to_<dir>_<name>.bin`.
///
/// # Panics
///
/// When the file cannot be read, naming its path.
pub fn fixture_bytes(fixtures: &Path, dir: Direction, name: &str) -> Vec<u8> {
    let path = fixtures.join(format!("{}_{name}.bin", direction_prefix(dir)));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// Both directions of one captured connection: `(to_server, to_client)`.
///
/// # Panics
///
/// When either file cannot be read, naming its path.
pub fn fixture_pair(fixtures: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
    (
        fixture_bytes(fixtures, Direction::ToServer, name),
        fixture_bytes(fixtures, Direction::ToClient, name),
    )
}

/// One captured connection: its name and the bytes of each direction (empty for a direction
/// that has no fixture).
#[derive(Debug, Clone)]
pub struct Connection {
    /// The fixture name without the direction prefix and extension.
    pub name: String,
    /// The `to_server_<name>.bin` bytes, or nothing.
    pub to_server: Vec<u8>,
    /// The `to_client_<name>.bin` bytes, or nothing.
    pub to_client: Vec<u8>,
}

/// Every connection with at least one fixture in `fixtures`, sorted by name.
///
/// # Panics
///
/// When the folder or a fixture cannot be read.
pub fn load_connections(fixtures: &Path) -> Vec<Connection> {
    let all = load_fixtures(fixtures);
    let mut names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let bytes = |dir| {
                all.iter()
                    .find(|f| f.name == name && f.dir == dir)
                    .map_or_else(Vec::new, |f| f.bytes.clone())
            };
            Connection {
                name: name.to_owned(),
                to_server: bytes(Direction::ToServer),
                to_client: bytes(Direction::ToClient),
            }
        })
        .collect()
}

/// Calls `f` with every proper prefix (lengths `0..len`, the whole fixture excluded) of every
/// fixture in `fixtures`, up to `max_len` bytes: the "no prefix panics" loops.
///
/// # Panics
///
/// When the folder cannot be read, or when `f` panics.
pub fn for_each_prefix(fixtures: &Path, max_len: usize, mut f: impl FnMut(&Fixture, &[u8])) {
    for fx in load_fixtures(fixtures) {
        for len in 0..fx.bytes.len().min(max_len) {
            f(&fx, &fx.bytes[..len]);
        }
    }
}

// ---- sessions ----

/// How [`parse_in_pieces`] calls the session after each piece arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// One `parse` call per piece: a call must consume every whole message it was given.
    OneCallPerPiece,
    /// `parse` again while it makes progress and bytes remain, as the engine does.
    UntilNoProgress,
}

/// Feeds a connection to a fresh session of `classifier`, the to-server bytes first and then
/// the to-client bytes, each in `piece`-byte writes, keeping unconsumed bytes for the next
/// call like the engine does. Returns every record. `usize::MAX` feeds each direction whole.
///
/// # Panics
///
/// When `piece` is 0, when `parse` returns an error, or when bytes are left unconsumed at
/// the end of a direction.
pub fn parse_in_pieces(
    classifier: &dyn Classifier,
    to_server: &[u8],
    to_client: &[u8],
    piece: usize,
    feed: Feed,
) -> Vec<Record> {
    let mut session = classifier.session();
    let mut out = Vec::new();
    for (dir, bytes) in [
        (Direction::ToServer, to_server),
        (Direction::ToClient, to_client),
    ] {
        let mut pending = Vec::new();
        for chunk in bytes.chunks(piece) {
            pending.extend_from_slice(chunk);
            loop {
                let n = session
                    .parse(&pending, dir, &mut out)
                    .unwrap_or_else(|e| panic!("{dir:?}: parse: {e}"));
                pending.drain(..n);
                if feed == Feed::OneCallPerPiece || n == 0 || pending.is_empty() {
                    break;
                }
            }
        }
        assert!(pending.is_empty(), "{dir:?}: {} bytes left", pending.len());
    }
    out
}

// ---- probing ----

/// The classifier's verdict on `buf`, `None` for `NeedMore` and `NoMatch`.
pub fn verdict(
    classifier: &dyn Classifier,
    buf: &[u8],
    dir: Direction,
    ports: PortHint,
) -> Option<Verdict> {
    match classifier.probe(buf, dir, ports) {
        Probe::Match(v) => Some(v),
        Probe::NeedMore | Probe::NoMatch => None,
    }
}

/// The confidence of a match without port hints, 0 for `NeedMore` and `NoMatch`.
pub fn score(classifier: &dyn Classifier, buf: &[u8], dir: Direction) -> u8 {
    verdict(classifier, buf, dir, PortHint::NONE).map_or(0, |v| v.confidence.get())
}

/// Asserts that no prefix of `buf` (from one byte up) is reported, i.e. matches at
/// [`Confidence::REPORT`] or more, in either direction.
///
/// # Panics
///
/// On the first reported prefix.
pub fn assert_never_reported(classifier: &dyn Classifier, buf: &[u8]) {
    for dir in [Direction::ToServer, Direction::ToClient] {
        for len in 1..=buf.len() {
            if let Some(v) = verdict(classifier, &buf[..len], dir, PortHint::NONE) {
                let c = v.confidence;
                assert!(
                    c < Confidence::REPORT,
                    "{dir:?} prefix {len} of {buf:?}: {c}"
                );
            }
        }
    }
}

// ---- random inputs ----

/// `count` deterministic pseudo-random buffers from xorshift64 (13, 7, 17), the i-th
/// `i % 300 + 1` bytes long, so failures reproduce from the seed.
pub fn xorshift_buffers(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed;
    (0..count).map(move |i| {
        (0..=(i % 300))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    })
}

/// `count` deterministic pseudo-random buffers from xorshift64*, each of a random length
/// below 600 (possibly empty), so failures reproduce from the seed.
pub fn xorshift_star_buffers(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    (0..count).map(move |_| {
        let len = (next() % 600) as usize;
        (0..len).map(|_| (next() >> 56) as u8).collect()
    })
}

// ---- the real engine ----

/// The registration of `id` among the linked classifiers.
///
/// # Panics
///
/// When the registry cannot be built or `id` is not registered.
pub fn registration(id: &str) -> &'static Registration {
    Registry::from_inventory()
        .expect("building the registry from inventory")
        .get(id)
        .unwrap_or_else(|| panic!("{id} is not registered"))
}

/// An engine over every linked classifier, with the default configuration.
///
/// # Panics
///
/// When the registry cannot be built (a duplicate protocol id).
pub fn engine_from_inventory() -> Engine {
    Engine::new(Arc::new(
        Registry::from_inventory().expect("building the registry from inventory"),
    ))
}

/// The key of a captured (wire) flow from `127.0.0.1:40000` to `127.0.0.1:<server_port>`.
pub fn flow_key(server_port: u16) -> FlowKey {
    FlowKey {
        pid: 0,
        role: Role::Wire,
        client: SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)),
        server: SocketAddr::from((Ipv4Addr::LOCALHOST, server_port)),
    }
}

/// Feeds `steps` (direction, timestamp in ns, bytes), in order, to one flow of `engine`.
/// Returns what they produced and the flows evicted meanwhile.
pub fn feed_engine(
    engine: &mut Engine,
    key: FlowKey,
    steps: &[(Direction, u64, &[u8])],
) -> (Vec<Output>, Vec<FlowSummary>) {
    let (mut out, mut evicted) = (Vec::new(), Vec::new());
    for &(dir, ts_ns, bytes) in steps {
        engine.on_data(key, dir, ts_ns, bytes, &mut out, &mut evicted);
    }
    (out, evicted)
}

/// Runs one connection through a fresh engine on `server_port` (the to-server bytes at 1 ns,
/// then the to-client bytes at 2 ns), closes the flow and returns its summary.
///
/// # Panics
///
/// When the registry cannot be built, or when the flow is unknown at close (no bytes at all).
pub fn classify_connection(server_port: u16, to_server: &[u8], to_client: &[u8]) -> FlowSummary {
    let mut engine = engine_from_inventory();
    let key = flow_key(server_port);
    feed_engine(
        &mut engine,
        key,
        &[
            (Direction::ToServer, 1, to_server),
            (Direction::ToClient, 2, to_client),
        ],
    );
    engine
        .close(&key)
        .expect("the flow was seen, so it closes with a summary")
}

/// The classifications among `out`, in order.
pub fn classifications(out: &[Output]) -> Vec<&Classification> {
    out.iter()
        .filter_map(|o| match o {
            Output::Classified(c) => Some(c),
            Output::Record(_) => None,
        })
        .collect()
}

/// The records among `out`, in order.
pub fn flow_records(out: &[Output]) -> Vec<&FlowRecord> {
    out.iter()
        .filter_map(|o| match o {
            Output::Record(r) => Some(r),
            Output::Classified(_) => None,
        })
        .collect()
}

/// `(name, value)` pairs as owned strings, to compare with [`Record::attributes`].
pub fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

// ---- a classifier under test ----

/// A classifier and its fixture folder: the helpers every classifier's tests share, with
/// the classifier filled in. A `tests.rs` keeps one as a constant:
///
/// ```ignore
/// const T: Subject = Subject::new(&Mysql, fixtures_path!("src/mysql/fixtures"));
/// let (to_server, to_client) = T.fixture("pymysql_query");
/// let records = T.parse_all(&to_server, &to_client);
/// ```
#[derive(Clone, Copy)]
pub struct Subject {
    /// The classifier.
    pub classifier: &'static dyn Classifier,
    /// Its fixture folder.
    pub fixtures: &'static str,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("fixtures", &self.fixtures)
            .finish_non_exhaustive()
    }
}

impl Subject {
    /// A classifier and its fixture folder (see [`fixtures_path!`](crate::fixtures_path)).
    pub const fn new(classifier: &'static dyn Classifier, fixtures: &'static str) -> Self {
        Self {
            classifier,
            fixtures,
        }
    }

    /// The fixture folder.
    pub fn dir(&self) -> &'static Path {
        Path::new(self.fixtures)
    }

    /// The probe's answer without port hints.
    pub fn probe(&self, buf: &[u8], dir: Direction) -> Probe {
        self.classifier.probe(buf, dir, PortHint::NONE)
    }

    /// The verdict on `buf`, `None` for `NeedMore` and `NoMatch`.
    pub fn verdict(&self, buf: &[u8], dir: Direction, ports: PortHint) -> Option<Verdict> {
        verdict(self.classifier, buf, dir, ports)
    }

    /// The confidence of a match without port hints, 0 for `NeedMore` and `NoMatch`.
    pub fn score(&self, buf: &[u8], dir: Direction) -> u8 {
        score(self.classifier, buf, dir)
    }

    /// Every fixture of the folder.
    ///
    /// # Panics
    ///
    /// When the folder cannot be read.
    pub fn fixtures(&self) -> Vec<Fixture> {
        load_fixtures(self.dir())
    }

    /// Both directions of one captured connection: `(to_server, to_client)`.
    ///
    /// # Panics
    ///
    /// When either file cannot be read.
    pub fn fixture(&self, name: &str) -> (Vec<u8>, Vec<u8>) {
        fixture_pair(self.dir(), name)
    }

    /// One direction of one captured connection.
    ///
    /// # Panics
    ///
    /// When the file cannot be read.
    pub fn fixture_bytes(&self, dir: Direction, name: &str) -> Vec<u8> {
        fixture_bytes(self.dir(), dir, name)
    }

    /// A connection fed whole to a fresh session, to-server first (see [`parse_in_pieces`]).
    ///
    /// # Panics
    ///
    /// As [`parse_in_pieces`].
    pub fn parse_all(&self, to_server: &[u8], to_client: &[u8]) -> Vec<Record> {
        parse_in_pieces(
            self.classifier,
            to_server,
            to_client,
            usize::MAX,
            Feed::UntilNoProgress,
        )
    }

    /// A connection fed in `size`-byte writes, parsed again while it makes progress, as the
    /// engine does.
    ///
    /// # Panics
    ///
    /// As [`parse_in_pieces`].
    pub fn parse_split(&self, to_server: &[u8], to_client: &[u8], size: usize) -> Vec<Record> {
        parse_in_pieces(
            self.classifier,
            to_server,
            to_client,
            size,
            Feed::UntilNoProgress,
        )
    }

    /// A connection fed in `size`-byte writes with one `parse` call each: every call must
    /// consume every whole message it was given.
    ///
    /// # Panics
    ///
    /// As [`parse_in_pieces`].
    pub fn parse_split_once(&self, to_server: &[u8], to_client: &[u8], size: usize) -> Vec<Record> {
        parse_in_pieces(
            self.classifier,
            to_server,
            to_client,
            size,
            Feed::OneCallPerPiece,
        )
    }
}

// ---- the generic conformance tests ----

/// The fixture checks of [`check_classifier`], plus: the fixtures of each connection give the
/// same records (but for the `raw` bytes kept) whole and in 1-, 7- and 64-byte writes.
///
/// # Panics
///
/// On the first violation, naming the fixture.
pub fn check_fixtures(id: &str, fixtures: &Path, band: Confidence) {
    let reg = registration(id);
    check_classifier(reg, fixtures, band);
    for c in load_connections(fixtures) {
        let whole = parse_in_pieces(
            reg.classifier,
            &c.to_server,
            &c.to_client,
            usize::MAX,
            Feed::UntilNoProgress,
        );
        for size in [1, 7, 64] {
            let split = parse_in_pieces(
                reg.classifier,
                &c.to_server,
                &c.to_client,
                size,
                Feed::UntilNoProgress,
            );
            // `raw` keeps the bytes at hand when a message starts: it depends on the writes.
            let without_raw = |records: Vec<Record>| {
                records
                    .into_iter()
                    .map(|r| Record {
                        raw: Vec::new(),
                        ..r
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                without_raw(split),
                without_raw(whole.clone()),
                "{}: {size}-byte writes give other records",
                c.name
            );
        }
    }
}

/// Random bytes (deterministic, `count` buffers of up to 300 bytes from `seed`) never make
/// the probe panic or match at [`Confidence::REPORT`], in either direction, and never make a
/// fresh session panic.
///
/// # Panics
///
/// On the first reported buffer (or a panic inside the classifier).
pub fn check_random_bytes(id: &str, seed: u64, count: usize) {
    let reg = registration(id);
    let window = *reg.probe_window.end();
    for bytes in xorshift_buffers(seed, count) {
        for dir in [Direction::ToServer, Direction::ToClient] {
            let probed = &bytes[..bytes.len().min(window)];
            if let Probe::Match(v) = reg.classifier.probe(probed, dir, PortHint::NONE) {
                assert!(
                    v.confidence < Confidence::REPORT,
                    "{id} matched random bytes at {}: {} ({bytes:?})",
                    v.confidence,
                    v.reason
                );
            }
            let _ = reg.classifier.session().parse(&bytes, dir, &mut Vec::new());
        }
    }
}

/// No other linked classifier claims a prefix of one of `fixtures` at [`Confidence::REPORT`]
/// or more: look-alikes are told apart by payload, not port. Prefixes: every length up to 64
/// bytes, then every 16th, then the whole window.
///
/// # Panics
///
/// Listing every confusion.
pub fn check_no_confusion(id: &str, fixtures: &Path) {
    let registry = Registry::from_inventory().expect("building the registry from inventory");
    let mut failures = Vec::new();
    for fx in load_fixtures(fixtures) {
        for other in registry.iter().filter(|r| r.id.as_str() != id) {
            let window = fx.bytes.len().min(*other.probe_window.end());
            let lengths = (1..=window.min(64))
                .chain((80..window).step_by(16))
                .chain(std::iter::once(window));
            for len in lengths {
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
    assert!(
        failures.is_empty(),
        "{} confusions:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A fixture folder inside the calling crate, as a `&'static str`:
/// `fixtures_path!("src/redis/fixtures")`.
#[macro_export]
macro_rules! fixtures_path {
    ($dir:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir)
    };
}

/// The generic conformance tests of one classifier, as `#[test]` functions in the calling
/// module: its fixtures (every prefix, the whole window at `band` in its direction, the
/// session consuming each connection, the same records in any write size), random bytes
/// (never reported, never a panic) and confusion (no other linked classifier claims its
/// fixtures). A built-in's `tests.rs`, or a third-party crate, enables them in one call:
///
/// ```ignore
/// adi_classify::conformance_tests!("redis", "src/redis/fixtures", Confidence::WEAK);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($id:literal, $fixtures:literal, $band:expr) => {
        #[test]
        fn conformance_fixtures() {
            $crate::testing::check_fixtures(
                $id,
                ::std::path::Path::new($crate::fixtures_path!($fixtures)),
                $band,
            );
        }

        #[test]
        fn conformance_random_bytes() {
            $crate::testing::check_random_bytes($id, 0x9e37_79b9_7f4a_7c15, 3000);
        }

        #[test]
        fn conformance_no_confusion() {
            $crate::testing::check_no_confusion(
                $id,
                ::std::path::Path::new($crate::fixtures_path!($fixtures)),
            );
        }
    };
}
