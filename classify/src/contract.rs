//! The classifier contract: what a protocol plugin implements.
//!
//! A classifier answers [`Probe::Match`], [`Probe::NeedMore`] or [`Probe::NoMatch`] on the first
//! bytes of one direction of a flow (Suricata's tri-state probing), and once the engine has
//! picked it, parses whole messages through a per-flow [`Session`]. A match carries evidence
//! only (confidence, reason, observed direction): the registry supplies the protocol id and
//! category.
//!
//! The machinery every classifier shares lives here too: combining readings ([`Probe::or`],
//! [`Probe::given`]), the probe that tries both directions ([`probe_both_ways`]), the
//! "skip, then step" session loop ([`parse_steps`], [`Skip`]) and the session of a classifier
//! that only detects ([`DetectOnly`], the default of [`Classifier::session`]).

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::ParseError;
use crate::record::Record;

/// Which way bytes travel on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the side that opened the connection to the side that accepted it.
    ToServer,
    /// From the accepting side back to the connecting side.
    ToClient,
}

impl Direction {
    /// The other direction.
    #[must_use]
    pub const fn reverse(self) -> Self {
        match self {
            Self::ToServer => Self::ToClient,
            Self::ToClient => Self::ToServer,
        }
    }

    /// 0 for [`Direction::ToServer`], 1 for [`Direction::ToClient`]: an index into per-direction
    /// arrays.
    pub const fn index(self) -> usize {
        match self {
            Self::ToServer => 0,
            Self::ToClient => 1,
        }
    }

    /// `to-server` or `to-client`, as on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ToServer => "to-server",
            Self::ToClient => "to-client",
        }
    }
}

/// The ports of a flow, when known. Classifiers use them only to tell look-alikes apart; the
/// engine adds the port bonus itself (see [`crate::registry::score`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PortHint {
    /// The port of the accepting side.
    pub server: Option<u16>,
    /// The port of the connecting side.
    pub client: Option<u16>,
}

impl PortHint {
    /// No port known (a raw payload file, a fuzz input).
    pub const NONE: Self = Self {
        server: None,
        client: None,
    };

    /// Only the server port is known.
    pub const fn server(port: u16) -> Self {
        Self {
            server: Some(port),
            client: None,
        }
    }
}

/// How sure a verdict is, 0..=100 (the bands are explained in `docs/confidence.md`). Below
/// [`Confidence::REPORT`] nothing is reported as a classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Confidence(u8);

impl Confidence {
    /// Both directions agree: a request and its matching response were parsed.
    pub const CONFIRMED: Self = Self(99);
    /// A whole message parsed, its lengths consistent and its codes known.
    pub const CERTAIN: Self = Self(92);
    /// The header is fully checked (magic, length, known type) but the message is incomplete.
    pub const STRONG: Self = Self(80);
    /// Only the first bytes look plausible, or only one weak rule matched.
    pub const WEAK: Self = Self(65);
    /// Nothing to read (yet), but the server port is a protocol's well-known port.
    pub const PORT_ONLY: Self = Self(60);
    /// The lowest confidence that is reported as a classification.
    pub const REPORT: Self = Self(60);
    /// The bonus [`crate::registry::score`] adds when the server port is one of the
    /// protocol's default ports: enough to break a tie between look-alikes of one band, never
    /// enough to lift a verdict into the next band.
    pub const PORT_BONUS: u8 = 3;

    /// Makes a confidence, clamping values above 100.
    pub const fn new(value: u8) -> Self {
        if value > 100 {
            Self(100)
        } else {
            Self(value)
        }
    }

    /// The value, 0..=100.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Confidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

/// The evidence of a match: how sure, why, and which way the bytes were seen travelling. The
/// registry supplies the protocol id and category, so a verdict never repeats them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Payload evidence only: the engine adds the port bonus.
    pub confidence: Confidence,
    /// Names the evidence, e.g. `"RESP array header"`. Static so that probing never allocates.
    pub reason: &'static str,
    /// Set when the bytes prove the opposite direction to the one the probe was given (a
    /// server greeting seen as "to server", say).
    pub observed: Option<Direction>,
}

impl Verdict {
    /// A verdict with the given evidence, in the direction the probe was given.
    pub const fn new(confidence: Confidence, reason: &'static str) -> Self {
        Self {
            confidence,
            reason,
            observed: None,
        }
    }

    /// The same verdict, noting that the bytes travel in direction `dir`.
    #[must_use]
    pub const fn observed(mut self, dir: Direction) -> Self {
        self.observed = Some(dir);
        self
    }
}

/// The answer of [`Classifier::probe`], and of each `looks_like_*` reading a probe is built
/// from: the three outcomes of Suricata's probing, with the evidence of a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The bytes are this protocol, with the given evidence.
    Match(Verdict),
    /// A longer prefix could still match: ask again when more bytes arrive.
    NeedMore,
    /// These bytes cannot be this protocol: the engine stops asking for this direction.
    NoMatch,
}

impl Probe {
    /// A match with this evidence, in the direction the probe was given.
    pub const fn matched(confidence: Confidence, reason: &'static str) -> Self {
        Self::Match(Verdict::new(confidence, reason))
    }

    /// The same answer, a match noting that the bytes travel in direction `dir`.
    #[must_use]
    pub const fn observed(self, dir: Direction) -> Self {
        match self {
            Self::Match(v) => Self::Match(v.observed(dir)),
            other => other,
        }
    }

    /// The same answer for bytes given as travelling `dir`: a match that notes the bytes
    /// travel `dir` notes nothing (a reading that knows who sends a message sets `observed`
    /// to that side before the direction is known; this keeps it only when it contradicts).
    #[must_use]
    pub fn given(self, dir: Direction) -> Self {
        match self {
            Self::Match(v) if v.observed == Some(dir) => Self::Match(Verdict {
                observed: None,
                ..v
            }),
            other => other,
        }
    }

    /// The same answer, a match noting who sends such bytes (see [`Probe::given`]).
    #[must_use]
    pub const fn sent_by(self, sender: Sender) -> Self {
        match sender.direction() {
            Some(dir) => self.observed(dir),
            None => self,
        }
    }

    /// The better of two readings of the same bytes: the stronger match (the first on a
    /// tie), else `NeedMore` if either still waits, else `NoMatch`.
    #[must_use]
    pub fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Match(a), Self::Match(b)) => {
                Self::Match(if b.confidence > a.confidence { b } else { a })
            }
            (m @ Self::Match(_), _) | (_, m @ Self::Match(_)) => m,
            (Self::NeedMore, _) | (_, Self::NeedMore) => Self::NeedMore,
            (Self::NoMatch, Self::NoMatch) => Self::NoMatch,
        }
    }

    /// This reading of the bytes as travelling `dir`, else the reading of them as sent the
    /// other way (asked for only when this one did not match), noted as `observed`; else
    /// `NeedMore` if either still waits, else `NoMatch`.
    #[must_use]
    pub fn or_reversed(self, dir: Direction, other: impl FnOnce() -> Self) -> Self {
        if let Self::Match(_) = self {
            return self;
        }
        match other() {
            Self::Match(v) => Self::Match(v.observed(dir.reverse())),
            Self::NeedMore => Self::NeedMore,
            Self::NoMatch => self,
        }
    }
}

/// Which side of a connection sends a message: what a probe knows before it is told the
/// direction (a greeting only a server sends, a ping either side may).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The connecting side: the bytes travel to the server.
    Client,
    /// The accepting side: the bytes travel to the client.
    Server,
    /// Either side.
    Either,
}

impl Sender {
    /// The direction the bytes travel, `None` for [`Sender::Either`].
    pub const fn direction(self) -> Option<Direction> {
        match self {
            Self::Client => Some(Direction::ToServer),
            Self::Server => Some(Direction::ToClient),
            Self::Either => None,
        }
    }
}

/// The probe of a protocol whose two sides send different messages, tried both ways: the
/// reading of what a client sends (`from_client`) or of what a server sends (`from_server`),
/// whichever `dir` expects, first; the other one only when the expected one did not match,
/// and then noted as `observed` (see [`Probe::or_reversed`]).
pub fn probe_both_ways(
    dir: Direction,
    from_client: impl FnOnce() -> Probe,
    from_server: impl FnOnce() -> Probe,
) -> Probe {
    match dir {
        Direction::ToServer => from_client().or_reversed(dir, from_server),
        Direction::ToClient => from_server().or_reversed(dir, from_client),
    }
}

/// A protocol plugin. Implementors are zero-sized types registered with
/// [`crate::register_classifier!`]; per-flow state lives in the [`Session`].
pub trait Classifier: Send + Sync + 'static {
    /// Looks at the first bytes of one direction of a flow.
    ///
    /// Hot path: no allocation, logging or panics; reads at most
    /// `Registration::probe_window.end()` bytes of `buf`.
    fn probe(&self, buf: &[u8], dir: Direction, ports: PortHint) -> Probe;

    /// Makes the per-flow parser, after this classifier won the flow. The default is
    /// [`DetectOnly`]: a classifier that only names its protocol writes no session.
    fn session(&self) -> Box<dyn Session> {
        Box::new(DetectOnly)
    }
}

/// Per-flow protocol parser.
pub trait Session: Send {
    /// Parses messages from the start of `buf` (bytes of direction `dir` not yet consumed),
    /// pushes what it learnt into `out` and returns how many bytes it consumed. Returning 0
    /// means "call again with more bytes". A session may consume part of a message (a large
    /// body, say) and keep its own state about the rest.
    ///
    /// # Errors
    ///
    /// [`ParseError`] when the bytes cannot be this protocol any more: the engine then
    /// re-classifies the flow from the next bytes.
    fn parse(
        &mut self,
        buf: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<usize, ParseError>;

    /// `len` bytes of direction `dir` were not captured (a live probe copies at most a cap
    /// of each message) and come right after everything parsed so far. A session that can
    /// step over them (inside a body of known length, say) counts them and returns `Ok`.
    ///
    /// # Errors
    ///
    /// The default: [`ParseError::Gap`], and the engine restarts the session at the next
    /// bytes of that direction.
    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        let _ = (dir, out);
        Err(ParseError::Gap { len })
    }

    /// The connection ended: emit what only the end delimits (an HTTP response body read
    /// until close). The default does nothing.
    fn finish(&mut self, dir: Direction, out: &mut Vec<Record>) {
        let _ = (dir, out);
    }
}

/// The session of a classifier that only detects: it reads no message, emits no record and
/// consumes every byte, gaps included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectOnly;

impl Session for DetectOnly {
    fn parse(
        &mut self,
        buf: &[u8],
        _dir: Direction,
        _out: &mut Vec<Record>,
    ) -> Result<usize, ParseError> {
        Ok(buf.len())
    }

    fn gap(
        &mut self,
        _dir: Direction,
        _len: u64,
        _out: &mut Vec<Record>,
    ) -> Result<(), ParseError> {
        Ok(())
    }
}

/// What one step of a message-by-message session made of the bytes at the front of its
/// buffer (see [`parse_steps`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not a whole message yet: call again with more bytes.
    NeedMore,
    /// This many bytes were read (a whole message, or the part of one that is kept).
    Consumed(usize),
    /// This many bytes were read and the protocol ends after them (a switch to TLS, say).
    Switched(usize),
    /// The bytes at the front are not a message: [`parse_steps`] reports what it consumed
    /// before them, and fails with this error only when that is nothing (the next call then
    /// starts at these bytes).
    Invalid(ParseError),
}

impl From<Result<usize, ParseError>> for Step {
    /// The step of a reader that takes one message a call: the bytes it consumed (0: not
    /// whole yet), or why the bytes at the front are not a message.
    fn from(read: Result<usize, ParseError>) -> Self {
        match read {
            Ok(0) => Self::NeedMore,
            Ok(n) => Self::Consumed(n),
            Err(e) => Self::Invalid(e),
        }
    }
}

/// What [`Steps::step`] returns.
pub type StepResult = Result<Step, ParseError>;

/// How many bytes each direction still has to step over: the rest of a message a session
/// read only in part (a long body, a row it does not keep).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skip([usize; 2]);

impl Skip {
    /// The bytes still to step over in `dir`.
    pub const fn get(&self, dir: Direction) -> usize {
        self.0[dir.index()]
    }

    /// Steps over the next `n` bytes of `dir`.
    pub fn set(&mut self, dir: Direction, n: usize) {
        self.0[dir.index()] = n;
    }

    /// Steps over what it can of the next `available` bytes of `dir`; returns how many.
    pub fn take(&mut self, dir: Direction, available: usize) -> usize {
        let left = &mut self.0[dir.index()];
        let n = (*left).min(available);
        *left -= n;
        n
    }

    /// A message of `wire` bytes starts a buffer of `available` bytes: takes what is there
    /// and steps over the rest as it arrives. Returns the bytes consumed now.
    pub fn message(&mut self, dir: Direction, wire: usize, available: usize) -> usize {
        let now = wire.min(available);
        self.set(dir, wire - now);
        now
    }

    /// `len` uncaptured bytes of `dir` ([`Session::gap`]): stepped over when they fall inside
    /// what is being skipped.
    ///
    /// # Errors
    ///
    /// [`ParseError::Gap`] when they do not: the message boundaries are lost.
    pub fn gap(&mut self, dir: Direction, len: u64) -> Result<(), ParseError> {
        let left = &mut self.0[dir.index()];
        match usize::try_from(len) {
            Ok(n) if n <= *left => {
                *left -= n;
                Ok(())
            }
            _ => Err(ParseError::Gap { len }),
        }
    }
}

/// A session that reads one message at a time and may step over the rest of one: the shape
/// [`parse_steps`] drives. Every `Steps` is a [`Session`]: its `parse` is [`parse_steps`],
/// its `gap` and `finish` are the ones below, and once [`Steps::opaque`] it consumes every
/// byte and gap unread.
pub trait Steps: Send {
    /// The bytes each direction still has to step over; `None` (the default) for a session
    /// that never steps over part of a message.
    fn skip(&mut self) -> Option<&mut Skip> {
        None
    }

    /// Reads the message at the start of `buf` (never empty, nothing left to skip).
    ///
    /// # Errors
    ///
    /// [`ParseError`] when the bytes cannot be this protocol.
    fn step(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult;

    /// The connection carries nothing this session reads any more (encryption or
    /// compression started): every later byte and gap is consumed unread. The default: never.
    fn opaque(&self) -> bool {
        false
    }

    /// [`Session::gap`] (while not [`Steps::opaque`]).
    ///
    /// # Errors
    ///
    /// The default: [`ParseError::Gap`], and the engine restarts the session.
    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        let _ = (dir, out);
        Err(ParseError::Gap { len })
    }

    /// [`Session::finish`]. The default does nothing.
    fn finish(&mut self, dir: Direction, out: &mut Vec<Record>) {
        let _ = (dir, out);
    }
}

impl<S: Steps> Session for S {
    fn parse(
        &mut self,
        buf: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<usize, ParseError> {
        if self.opaque() {
            return Ok(buf.len());
        }
        parse_steps(self, buf, dir, out)
    }

    fn gap(&mut self, dir: Direction, len: u64, out: &mut Vec<Record>) -> Result<(), ParseError> {
        if self.opaque() {
            return Ok(());
        }
        Steps::gap(self, dir, len, out)
    }

    fn finish(&mut self, dir: Direction, out: &mut Vec<Record>) {
        Steps::finish(self, dir, out);
    }
}

/// The "skip, then step" loop of [`Session::parse`]: steps over what is left to skip, then
/// reads message after message until one is incomplete, invalid or the protocol switches.
/// Returns the bytes consumed.
///
/// # Errors
///
/// The first error of [`Steps::step`], and [`Step::Invalid`] at the start of `buf`.
pub fn parse_steps<S: Steps + ?Sized>(
    session: &mut S,
    buf: &[u8],
    dir: Direction,
    out: &mut Vec<Record>,
) -> Result<usize, ParseError> {
    let mut consumed = 0;
    while let Some(rest) = buf.get(consumed..).filter(|r| !r.is_empty()) {
        let skipped = session.skip().map_or(0, |s| s.take(dir, rest.len()));
        if skipped > 0 {
            consumed += skipped;
            continue;
        }
        match session.step(rest, dir, out)? {
            Step::Invalid(e) if consumed == 0 => return Err(e),
            // Reported next call, when these bytes come first.
            Step::NeedMore | Step::Invalid(_) => break,
            Step::Consumed(n) => consumed += n,
            Step::Switched(n) => {
                consumed += n;
                break;
            }
        }
    }
    Ok(consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages are one byte: `m` a message, `s` a message followed by 2 bytes to skip, `?`
    /// an incomplete one, anything else invalid.
    #[derive(Default)]
    struct Bytes {
        skip: Skip,
    }

    impl Steps for Bytes {
        fn skip(&mut self) -> Option<&mut Skip> {
            Some(&mut self.skip)
        }

        fn step(&mut self, buf: &[u8], dir: Direction, _: &mut Vec<Record>) -> StepResult {
            Ok(match buf[0] {
                b'm' => Step::Consumed(1),
                b's' => {
                    self.skip.set(dir, 2);
                    Step::Consumed(1)
                }
                b'?' => Step::NeedMore,
                _ => Step::Invalid(ParseError::Gap { len: 0 }),
            })
        }
    }

    fn parse(buf: &[u8]) -> Result<usize, ParseError> {
        parse_steps(
            &mut Bytes::default(),
            buf,
            Direction::ToServer,
            &mut Vec::new(),
        )
    }

    #[test]
    fn parse_steps_reports_what_came_before_an_invalid_message() {
        assert_eq!(parse(b"ms..m?m"), Ok(5));
        assert_eq!(parse(b"mmx"), Ok(2));
        assert_eq!(parse(b"xm"), Err(ParseError::Gap { len: 0 }));
    }

    #[test]
    fn a_one_message_reader_is_a_step() {
        let e = ParseError::Gap { len: 0 };
        assert_eq!(Step::from(Ok(0)), Step::NeedMore);
        assert_eq!(Step::from(Ok(3)), Step::Consumed(3));
        assert_eq!(Step::from(Err(e.clone())), Step::Invalid(e));
    }
}
