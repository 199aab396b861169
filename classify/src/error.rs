//! The errors of the classifier contract and the registry.

use crate::protocol::ProtocolId;

/// A session parser met bytes that cannot be its protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes break the protocol's grammar.
    #[error("{protocol}: malformed {what}")]
    Malformed {
        /// The protocol whose parser failed.
        protocol: ProtocolId,
        /// What was being parsed, e.g. "request line".
        what: &'static str,
    },
    /// A length field exceeds the limit the spec (or adi) allows.
    #[error("{protocol}: {what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The protocol whose parser failed.
        protocol: ProtocolId,
        /// Which length, e.g. "header block".
        what: &'static str,
        /// The length found.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes were not captured and the parser cannot step over them.
    #[error("{len} bytes were not captured")]
    Gap {
        /// How many.
        len: u64,
    },
}

impl ParseError {
    /// [`ParseError::Malformed`]: `protocol`'s grammar broke while parsing `what`.
    pub const fn malformed(protocol: ProtocolId, what: &'static str) -> Self {
        Self::Malformed { protocol, what }
    }

    /// [`ParseError::TooLarge`]: `protocol`'s length `what` is `len`, above `max`.
    pub const fn too_large(
        protocol: ProtocolId,
        what: &'static str,
        len: usize,
        max: usize,
    ) -> Self {
        Self::TooLarge {
            protocol,
            what,
            len,
            max,
        }
    }
}

/// The registry could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two registrations use the same protocol id.
    #[error("two classifiers register the protocol id `{id}`")]
    Duplicate {
        /// The id registered twice.
        id: ProtocolId,
    },
    /// `--classifiers` named an id nobody registered.
    #[error("no classifier has the id `{id}` (see `adi classifiers`)")]
    UnknownId {
        /// The id asked for.
        id: String,
    },
    /// The selection was empty.
    #[error("no classifier selected: give `all` or a comma-separated list of ids")]
    Empty,
}
