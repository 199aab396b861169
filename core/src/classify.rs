//! The classifier contract: what a protocol plugin implements.
//!
//! A classifier answers [`Probe::Match`], [`Probe::NeedMore`] or [`Probe::NoMatch`] on the first
//! bytes of one direction of a flow (Suricata's tri-state probing), and once the engine has
//! picked it, parses whole messages through a per-flow [`Session`].

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::ParseError;
use crate::protocol::{Category, ProtocolId};
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

/// One classifier's positive conclusion about a prefix of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The protocol recognised.
    pub protocol: ProtocolId,
    /// Its category.
    pub category: Category,
    /// Payload evidence only: the engine adds the port bonus.
    pub confidence: Confidence,
    /// Names the evidence, e.g. `"RESP array header"`. Static so that probing never allocates.
    pub reason: &'static str,
    /// Set when the bytes prove the opposite direction to the one the probe was given (a
    /// server greeting seen as "to server", say).
    pub observed: Option<Direction>,
}

impl Verdict {
    /// A verdict for `protocol` with the given evidence, in the direction the probe was given.
    pub const fn new(
        protocol: ProtocolId,
        category: Category,
        confidence: Confidence,
        reason: &'static str,
    ) -> Self {
        Self {
            protocol,
            category,
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

/// The answer of [`Classifier::probe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The bytes are this protocol, with the given evidence.
    Match(Verdict),
    /// A longer prefix could still match: ask again when more bytes arrive.
    NeedMore,
    /// These bytes cannot be this protocol: the engine stops asking for this direction.
    NoMatch,
}

/// A protocol plugin. Implementors are zero-sized types registered with
/// [`crate::register_classifier!`]; per-flow state lives in the [`Session`].
pub trait Classifier: Send + Sync + 'static {
    /// Looks at the first bytes of one direction of a flow.
    ///
    /// Hot path: no allocation, logging or panics; reads at most
    /// `Registration::probe_window.end()` bytes of `buf`.
    fn probe(&self, buf: &[u8], dir: Direction, ports: PortHint) -> Probe;

    /// Makes the per-flow parser, after this classifier won the flow.
    fn session(&self) -> Box<dyn Session>;
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
