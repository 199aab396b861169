//! Conformance checks for classifier authors (feature `testing`), modelled on Vector's
//! component compliance tests. A classifier's `tests.rs` enables them in one line:
//! `adi_classify::conformance_tests!("redis", "src/redis/fixtures", Confidence::WEAK);`.
//!
//! Fixtures are files named `to_server_<name>.bin` or `to_client_<name>.bin`: real bytes of
//! one direction of one connection, from its first byte.
//!
//! Besides the conformance check, this module holds the helpers every classifier's tests
//! share: loading a connection's fixtures by name ([`fixture_pair`]), feeding a session in
//! pieces the way the engine does ([`parse_in_pieces`]), probing with the protocol checked
//! ([`verdict`], [`score`]), deterministic random inputs ([`xorshift_buffers`]), comparing
//! records ([`summaries`], [`summary`], [`views`]), other protocols' messages for look-alike
//! tests ([`OTHER_PROTOCOLS`]) and running bytes through a real [`Engine`] over every linked
//! classifier ([`run_engine`], [`verdicts`], [`feed_engine`]). [`Subject`] holds them with one
//! classifier filled in. They are test helpers: they panic loudly, naming what failed,
//! instead of returning errors.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::contract::{Classifier, Confidence, Direction, PortHint, Probe, Verdict};
use crate::engine::{Classification, Engine, FlowRecord, FlowSummary, Output};
use crate::flow::{FlowKey, Role};
use crate::protocol::ProtocolId;
use crate::record::{Record, RecordKind};
use crate::registry::{Registration, Registry};

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
/// - no prefix of a fixture (the empty one included) makes the probe answer `NoMatch`, and
///   the confidence never falls as the prefix grows,
/// - the bytes past the probe window change nothing,
/// - the whole fixture (up to the probe window) matches in its own direction (`observed` is
///   `None`), at `min` or more and at most `CERTAIN`,
/// - a fresh session consumes each connection's fixtures entirely (`to_server_X` first, then
///   `to_client_X`, so responses meet their requests).
///
/// # Panics
///
/// On the first violation, naming the fixture and the prefix length.
pub fn check_classifier(reg: &Registration, fixtures: &Path, min: Confidence) {
    let all = load_fixtures(fixtures);
    assert!(!all.is_empty(), "no fixtures in {}", fixtures.display());
    let probe = |buf: &[u8], dir| reg.classifier.probe(buf, dir, PortHint::NONE);
    for fx in &all {
        let window = fx.bytes.len().min(*reg.probe_window.end());
        let mut last = Confidence::new(0);
        for len in 0..=window {
            let now = match probe(&fx.bytes[..len], fx.dir) {
                Probe::Match(v) => v.confidence,
                Probe::NeedMore => Confidence::new(0),
                Probe::NoMatch => panic!("{}: prefix {len} answered NoMatch", fx.path.display()),
            };
            // More bytes of the same message never make the evidence weaker.
            assert!(
                now >= last,
                "{} prefix {len}: {last} -> {now}",
                fx.path.display()
            );
            last = now;
        }
        let answer = probe(&fx.bytes[..window], fx.dir);
        // The probe reads at most its window: the bytes past it change nothing.
        assert_eq!(answer, probe(&fx.bytes, fx.dir), "{}", fx.path.display());
        let Probe::Match(v) = answer else {
            panic!("{}: whole fixture gave {answer:?}", fx.path.display())
        };
        // One direction alone never earns more than CERTAIN: CONFIRMED takes both.
        assert!(
            (min..=Confidence::CERTAIN).contains(&v.confidence) && v.observed.is_none(),
            "{}: {v:?}, not {min}..=CERTAIN in its own direction",
            fx.path.display()
        );
    }
    for c in load_connections(fixtures) {
        // Panics on an error or on bytes left unconsumed, naming the direction.
        let _ = parse_in_pieces(
            reg.classifier,
            &c.to_server,
            &c.to_client,
            usize::MAX,
            Feed::UntilNoProgress,
        );
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
/// below `max_len` (possibly empty), so failures reproduce from the seed.
pub fn xorshift_star_buffers(
    seed: u64,
    count: usize,
    max_len: usize,
) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    (0..count).map(move |_| {
        let len = usize::try_from(next()).unwrap_or(usize::MAX) % max_len.max(1);
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

/// Feeds `steps` (direction, timestamp in ns, bytes) to the flow [`flow_key`]`(server_port)`
/// of a fresh engine over every linked classifier. Returns the engine (for its stats) and
/// what the steps produced.
///
/// # Panics
///
/// When the registry cannot be built.
pub fn run_engine(server_port: u16, steps: &[(Direction, u64, &[u8])]) -> (Engine, Vec<Output>) {
    let mut engine = engine_from_inventory();
    let (out, _) = feed_engine(&mut engine, flow_key(server_port), steps);
    (engine, out)
}

/// The protocol and confidence of each classification among `out`, in order.
pub fn verdicts(out: &[Output]) -> Vec<(ProtocolId, Confidence)> {
    classifications(out)
        .iter()
        .map(|c| (c.protocol, c.confidence))
        .collect()
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

/// A compact view of a record: kind, op, resource, status (when it has one), attributes.
pub fn view(r: &Record) -> String {
    let attrs: Vec<String> = r
        .attributes
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let status = r.status.map_or(String::new(), |s| format!(" {s}"));
    format!(
        "{:?} {} {}{status} [{}]",
        r.kind,
        r.op.as_deref().unwrap_or("-"),
        r.resource.as_deref().unwrap_or("-"),
        attrs.join(", ")
    )
}

/// The kind and op (`""` for none) of each record.
pub fn ops(records: &[Record]) -> Vec<(RecordKind, &str)> {
    records
        .iter()
        .map(|r| (r.kind, r.op.as_deref().unwrap_or_default()))
        .collect()
}

/// What a record says, for exact comparisons: kind, op, resource, status and attributes
/// (everything but its timing, sizes and bytes).
pub type Summary = (
    RecordKind,
    Option<String>,
    Option<String>,
    Option<u16>,
    Vec<(String, String)>,
);

/// The [`Summary`] of each record.
pub fn summaries(records: &[Record]) -> Vec<Summary> {
    records
        .iter()
        .map(|r| {
            (
                r.kind,
                r.op.clone(),
                r.resource.clone(),
                r.status,
                r.attributes.clone(),
            )
        })
        .collect()
}

/// The [`Summary`] a test expects: a record of `kind` with op `op` (`""`: none, as in [`ops`]).
pub fn summary(
    kind: RecordKind,
    op: &str,
    resource: Option<&str>,
    status: Option<u16>,
    attributes: &[(&str, &str)],
) -> Summary {
    (
        kind,
        (!op.is_empty()).then(|| op.to_owned()),
        resource.map(str::to_owned),
        status,
        attrs(attributes),
    )
}

/// [`view`] of each record.
pub fn views(records: &[Record]) -> Vec<String> {
    records.iter().map(view).collect()
}

/// The first bytes of other protocols' messages, for look-alike tests: an HTTP/1.0 response,
/// a Redis command array, inline command, reply and error, a TLS ClientHello start and a Kafka
/// ApiVersions request header.
pub const OTHER_PROTOCOLS: &[&[u8]] = &[
    b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\n\r\n",
    b"*1\r\n$4\r\nPING\r\n",
    b"PING\r\n",
    b"+PONG\r\n",
    b"-ERR unknown command\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"\x00\x00\x00\x14\x00\x12\x00\x03\x00\x00\x00\x01\x00\x06client",
];

// ---- a classifier under test ----

/// A classifier and its fixture folder: the helpers every classifier's tests share, with
/// the classifier filled in. A `tests.rs` keeps one as a constant (as
/// `classifiers/src/mysql/tests.rs` does; not a doctest: it needs that crate):
///
/// ```text
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

    /// The confidence of a match without port hints (0 for `NeedMore` and `NoMatch`) and
    /// whether the probe said the bytes travel the other way.
    pub fn score_turned(&self, buf: &[u8], dir: Direction) -> (u8, bool) {
        self.verdict(buf, dir, PortHint::NONE)
            .map_or((0, false), |v| {
                (v.confidence.get(), v.observed.is_some_and(|o| o != dir))
            })
    }

    /// Asserts what the probe (no port) makes of prefixes of `buf` sent `dir`: for each
    /// `(len, band)`, `NeedMore` when `band` is `None`, else a match at exactly `band`.
    ///
    /// # Panics
    ///
    /// On the first prefix that does not.
    pub fn assert_prefix_bands(
        &self,
        buf: &[u8],
        dir: Direction,
        cases: &[(usize, Option<Confidence>)],
    ) {
        for &(len, band) in cases {
            let prefix = &buf[..len];
            match band {
                None => assert_eq!(self.probe(prefix, dir), Probe::NeedMore, "{len} bytes"),
                Some(b) => assert_eq!(self.score(prefix, dir), b.get(), "{len} bytes"),
            }
        }
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

    /// Whether a fresh session answers an error to `bytes` sent `dir`.
    pub fn parse_fails(&self, bytes: &[u8], dir: Direction) -> bool {
        self.classifier
            .session()
            .parse(bytes, dir, &mut Vec::new())
            .is_err()
    }

    /// Asserts that a fresh session given `bytes` sent `dir` consumes the first `good` bytes
    /// (whole messages), then answers an error to the rest.
    ///
    /// # Panics
    ///
    /// When it does not.
    pub fn assert_error_after(&self, bytes: &[u8], dir: Direction, good: usize) {
        let mut session = self.classifier.session();
        assert_eq!(session.parse(bytes, dir, &mut Vec::new()), Ok(good));
        let rest = session.parse(&bytes[good..], dir, &mut Vec::new());
        assert!(rest.is_err(), "{rest:?}");
    }

    /// Fixture `name`'s captured connection fed whole, one `parse` call per direction.
    ///
    /// # Panics
    ///
    /// As [`Subject::fixture`] and [`parse_in_pieces`].
    pub fn connection(&self, name: &str) -> Vec<Record> {
        let (to_server, to_client) = self.fixture(name);
        self.parse_split_once(&to_server, &to_client, usize::MAX)
    }

    /// The [`view`] of each record of fixture `name`'s connection fed whole (see
    /// [`Subject::parse_all`]).
    ///
    /// # Panics
    ///
    /// As [`Subject::fixture`] and [`parse_in_pieces`].
    pub fn views(&self, name: &str) -> Vec<String> {
        let (to_server, to_client) = self.fixture(name);
        views(&self.parse_all(&to_server, &to_client))
    }

    /// The confidence and observed direction of a match on `buf` sent `dir` (no port), `None`
    /// for `NeedMore` and `NoMatch`.
    pub fn band(&self, buf: &[u8], dir: Direction) -> Option<(Confidence, Option<Direction>)> {
        self.verdict(buf, dir, PortHint::NONE)
            .map(|v| (v.confidence, v.observed))
    }

    /// Asserts that each `(dir, name, band)` fixture, probed whole in its own direction,
    /// matches at exactly that band without observing another direction.
    ///
    /// # Panics
    ///
    /// On the first fixture that does not.
    pub fn assert_bands(&self, cases: &[(Direction, &str, Confidence)]) {
        for &(dir, name, want) in cases {
            let got = self.band(&self.fixture_bytes(dir, name), dir);
            assert_eq!(got, Some((want, None)), "{dir:?} {name}");
        }
    }

    /// Asserts that none of `cases`, in either direction, matches at `limit` or more:
    /// look-alikes stay below [`Confidence::REPORT`], or with `Confidence::new(0)` never
    /// match at all.
    ///
    /// # Panics
    ///
    /// On the first such case.
    pub fn assert_below(&self, limit: Confidence, cases: &[&[u8]]) {
        for &buf in cases {
            for dir in [Direction::ToServer, Direction::ToClient] {
                if let Some(v) = self.verdict(buf, dir, PortHint::NONE) {
                    let text = String::from_utf8_lossy(buf);
                    assert!(v.confidence < limit, "{text:?} {dir:?}: {v:?}");
                }
            }
        }
    }

    /// [`Subject::assert_below`] for every prefix (from one byte up) of each of `cases`.
    ///
    /// # Panics
    ///
    /// On the first such prefix.
    pub fn assert_prefixes_below(&self, limit: Confidence, cases: &[&[u8]]) {
        for &buf in cases {
            for len in 1..=buf.len() {
                self.assert_below(limit, &[&buf[..len]]);
            }
        }
    }

    /// [`Subject::assert_prefixes_below`] on `cases` and on the first `window` bytes of
    /// every fixture in `folder` (another classifier's, see [`fixtures_path!`](crate::fixtures_path)).
    ///
    /// # Panics
    ///
    /// As [`Subject::assert_prefixes_below`] and [`load_fixtures`].
    pub fn assert_prefixes_below_with(
        &self,
        limit: Confidence,
        cases: &[&[u8]],
        folder: &str,
        window: usize,
    ) {
        let fixtures = load_fixtures(Path::new(folder));
        let mut all = cases.to_vec();
        all.extend(
            fixtures
                .iter()
                .map(|f| &f.bytes[..f.bytes.len().min(window)]),
        );
        self.assert_prefixes_below(limit, &all);
    }

    /// Asserts that no prefix of `cases`, of [`OTHER_PROTOCOLS`] or of the first `window` bytes
    /// of `folder`'s fixtures (another classifier's) matches at all, in either direction.
    ///
    /// # Panics
    ///
    /// As [`Subject::assert_prefixes_below_with`].
    pub fn assert_never_claims(&self, cases: &[&[u8]], folder: &str, window: usize) {
        let all = [cases, OTHER_PROTOCOLS].concat();
        self.assert_prefixes_below_with(Confidence::new(0), &all, folder, window);
    }

    /// Asserts that the probe answers `NoMatch` to each of `cases` (whole) travelling `dir`.
    ///
    /// # Panics
    ///
    /// On the first other answer.
    pub fn assert_no_match(&self, dir: Direction, cases: &[&[u8]]) {
        for &buf in cases {
            let answer = self.probe(buf, dir);
            assert_eq!(
                answer,
                Probe::NoMatch,
                "{dir:?} {:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }
}

// ---- the generic conformance tests ----

/// What one classifier's fixtures show beyond the checks every classifier passes: the fourth
/// argument of [`conformance_tests!`](crate::conformance_tests), `Expect::NONE` when omitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// At least this many fixtures, so that a lost file is noticed.
    pub min_fixtures: usize,
    /// The fixtures of these directions, probed as travelling the other way, still match and
    /// note their real direction in `observed`.
    pub reversed: &'static [Direction],
    /// The reason of a whole fixture's match: `[to-server, to-client]`.
    pub reasons: Option<[&'static str; 2]>,
    /// Each connection's records are not empty and hold as many responses as requests.
    pub paired: bool,
    /// The records, their `raw` bytes included, are the same in any write size, also when
    /// `parse` is called once per write of up to 500 bytes (it then consumes every whole
    /// message it is given).
    pub exact_splits: bool,
    /// A fresh session given any prefix of a fixture never returns an error.
    pub prefixes_parse: bool,
}

impl Expect {
    /// Nothing beyond the generic checks.
    pub const NONE: Self = Self {
        min_fixtures: 1,
        reversed: &[],
        reasons: None,
        paired: false,
        exact_splits: false,
        prefixes_parse: false,
    };

    /// Both directions note the real one when given reversed.
    pub const BOTH_WAYS: &'static [Direction] = &[Direction::ToServer, Direction::ToClient];

    /// At least `n` fixtures.
    #[must_use]
    pub const fn min_fixtures(self, n: usize) -> Self {
        Self {
            min_fixtures: n,
            ..self
        }
    }

    /// The fixtures of `dirs`, given reversed, note their real direction.
    #[must_use]
    pub const fn reversed(self, dirs: &'static [Direction]) -> Self {
        Self {
            reversed: dirs,
            ..self
        }
    }

    /// Records as many responses as requests.
    #[must_use]
    pub const fn paired(self) -> Self {
        Self {
            paired: true,
            ..self
        }
    }

    /// The same records, `raw` included, in any write size.
    #[must_use]
    pub const fn exact_splits(self) -> Self {
        Self {
            exact_splits: true,
            ..self
        }
    }
}

/// The fixture checks of [`check_classifier`] and of `expect`, plus: the fixtures of each
/// connection give the same records whole and in writes of 1 to 500 bytes, parsed once per
/// write or again while the session makes progress.
///
/// # Panics
///
/// On the first violation, naming the fixture.
pub fn check_fixtures(id: &str, fixtures: &Path, band: Confidence, expect: &Expect) {
    let reg = registration(id);
    check_classifier(reg, fixtures, band);
    let all = load_fixtures(fixtures);
    assert!(
        all.len() >= expect.min_fixtures,
        "{} fixtures, expected {} or more",
        all.len(),
        expect.min_fixtures
    );
    let window = *reg.probe_window.end();
    for fx in &all {
        let at = |len: usize, dir| verdict(reg.classifier, &fx.bytes[..len], dir, PortHint::NONE);
        let whole = fx.bytes.len().min(window);
        if let Some(reasons) = expect.reasons {
            let v = at(whole, fx.dir).expect("checked above");
            assert_eq!(v.reason, reasons[fx.dir.index()], "{}", fx.path.display());
        }
        if expect.reversed.contains(&fx.dir) {
            let v = at(whole, fx.dir.reverse());
            assert_eq!(
                v.and_then(|v| v.observed),
                Some(fx.dir),
                "{}: {v:?} given reversed",
                fx.path.display()
            );
        }
        // A fresh session given a prefix never panics nor consumes more than it was given; nor
        // do the probe and the session given the prefix with one byte corrupted.
        for len in 0..=fx.bytes.len() {
            let mut bad = fx.bytes[..len].to_vec();
            for (at, mask) in [(len / 2, 0xff), (len * 2 / 3, 0x5a)] {
                if let Some(b) = bad.get_mut(at) {
                    *b ^= mask;
                }
                let _ = reg.classifier.probe(&bad, fx.dir, PortHint::NONE);
                let _ = reg
                    .classifier
                    .session()
                    .parse(&bad, fx.dir, &mut Vec::new());
            }
            let parsed = reg
                .classifier
                .session()
                .parse(&fx.bytes[..len], fx.dir, &mut Vec::new());
            match parsed {
                Ok(n) => assert!(n <= len, "{} prefix {len}: consumed {n}", fx.path.display()),
                Err(e) => assert!(
                    !expect.prefixes_parse,
                    "{} prefix {len}: {e}",
                    fx.path.display()
                ),
            }
        }
    }
    // `raw` keeps the bytes at hand when a message starts: it may depend on the writes.
    let without_raw = |records: &[Record]| {
        let raw = Vec::new();
        records
            .iter()
            .map(|r| Record {
                raw: raw.clone(),
                ..r.clone()
            })
            .collect::<Vec<_>>()
    };
    for c in load_connections(fixtures) {
        let parse =
            |size, feed| parse_in_pieces(reg.classifier, &c.to_server, &c.to_client, size, feed);
        let whole = parse(usize::MAX, Feed::UntilNoProgress);
        for size in [1, 2, 3, 5, 7, 9, 24, 64, 100, 500, 1000] {
            let got = parse(size, Feed::UntilNoProgress);
            if expect.exact_splits {
                // Writes of up to 500 bytes hold a few messages: one call takes them all.
                let once = (size <= 500).then(|| parse(size, Feed::OneCallPerPiece));
                assert!(
                    got == whole && once.is_none_or(|once| once == whole),
                    "{}: {size}-byte writes",
                    c.name
                );
            }
            let same = without_raw(&got) == without_raw(&whole);
            assert!(same, "{}: {size}-byte writes", c.name);
        }
        if expect.paired {
            let count = |kind| whole.iter().filter(|r| r.kind == kind).count();
            assert!(
                !whole.is_empty() && count(RecordKind::Request) == count(RecordKind::Response),
                "{}: unpaired {whole:#?}",
                c.name
            );
        }
    }
}

/// Random bytes (deterministic: `count` buffers from `seed`, of up to 300 bytes, then as many
/// of up to 1,500) never make the probe panic, read past its window or match at
/// [`Confidence::REPORT`], in either direction, and never make a fresh session panic or
/// consume more than it was given, whole or in two writes.
///
/// # Panics
///
/// On the first reported buffer (or a panic inside the classifier).
pub fn check_random_bytes(id: &str, seed: u64, count: usize) {
    let reg = registration(id);
    let window = *reg.probe_window.end();
    let long = xorshift_star_buffers(seed, count, 1500);
    for bytes in xorshift_buffers(seed, count).chain(long) {
        for dir in [Direction::ToServer, Direction::ToClient] {
            let answer = reg.classifier.probe(&bytes, dir, PortHint::NONE);
            let probed = &bytes[..bytes.len().min(window)];
            assert_eq!(answer, reg.classifier.probe(probed, dir, PortHint::NONE));
            if let Probe::Match(v) = answer {
                assert!(
                    v.confidence < Confidence::REPORT,
                    "{id} matched random bytes at {}: {} ({bytes:?})",
                    v.confidence,
                    v.reason
                );
            }
            // Whole, then in two writes: the first part's unconsumed bytes given again.
            let mut session = reg.classifier.session();
            if let Ok(n) = session.parse(&bytes, dir, &mut Vec::new()) {
                assert!(
                    n <= bytes.len(),
                    "{id} consumed {n} of {} bytes",
                    bytes.len()
                );
            }
            let mut session = reg.classifier.session();
            let cut = bytes.len() / 3;
            if let Ok(n) = session.parse(&bytes[..cut], dir, &mut Vec::new()) {
                assert!(n <= cut, "{id} consumed {n} of {cut} bytes");
                let _ = session.parse(&bytes[n..], dir, &mut Vec::new());
            }
        }
    }
}

/// Feeds `bytes` to a fresh session in `piece`-byte writes, keeping the unconsumed bytes like
/// the engine does, until the first error: whatever the bytes, it never panics and never
/// consumes more than it was given. Returns `false` on an over-read (for `prop_assert!`).
pub fn survives_pieces(
    classifier: &dyn Classifier,
    bytes: &[u8],
    dir: Direction,
    piece: usize,
) -> bool {
    let _ = classifier.probe(bytes, dir, PortHint::NONE);
    let mut session = classifier.session();
    let (mut pending, mut out) = (Vec::new(), Vec::new());
    for chunk in bytes.chunks(piece.max(1)) {
        pending.extend_from_slice(chunk);
        match session.parse(&pending, dir, &mut out) {
            Ok(n) if n <= pending.len() => drop(pending.drain(..n)),
            Ok(_) => return false,
            Err(_) => break,
        }
    }
    true
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
/// session consuming each connection, the same records in any write size, and what an
/// optional [`Expect`](crate::testing::Expect) adds), random bytes (never reported, never a
/// panic) and confusion (no other linked classifier claims its fixtures). A built-in's
/// `tests.rs`, or a third-party crate, enables them in one call (as
/// `classifiers/src/redis/tests.rs` does; not a doctest: it needs that crate's fixtures):
///
/// ```text
/// adi_classify::conformance_tests!("redis", "src/redis/fixtures", Confidence::WEAK);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($id:literal, $fixtures:literal, $band:expr) => {
        $crate::conformance_tests!($id, $fixtures, $band, $crate::testing::Expect::NONE);
    };
    ($id:literal, $fixtures:literal, $band:expr, $expect:expr) => {
        #[test]
        fn conformance_fixtures() {
            $crate::testing::check_fixtures(
                $id,
                ::std::path::Path::new($crate::fixtures_path!($fixtures)),
                $band,
                &$expect,
            );
        }

        #[test]
        fn conformance_random_bytes() {
            $crate::testing::check_random_bytes($id, 0x9e37_79b9_7f4a_7c15, 10_000);
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
