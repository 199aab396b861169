//! Protocol and category names: open sets of `&'static str`, so a third-party crate can add
//! its own without touching `core`.

use std::fmt;

use serde::{Serialize, Serializer};

/// A protocol id, e.g. `redis`. The same string is the classifier's folder name, the CLI value
/// of `--classifiers` and the JSON `protocol` field.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolId(&'static str);

impl ProtocolId {
    /// The id given when no classifier matched.
    pub const UNKNOWN: Self = Self("unknown");

    /// Makes an id. Ids are lower-case ASCII by convention (`http1`, `postgres`).
    pub const fn new(id: &'static str) -> Self {
        Self(id)
    }

    /// The id as a string.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment (`{:<12}` in tables).
        f.pad(self.0)
    }
}

impl Serialize for ProtocolId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// What kind of dependency a protocol is (`docs/confidence.md` lists each protocol's): `http`,
/// `database`, `cache`, `message_bus`, `tls`, or a third party's own.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Category(&'static str);

impl Category {
    /// HTTP APIs (HTTP/1.x, HTTP/2).
    pub const HTTP: Self = Self("http");
    /// Databases (Postgres, MySQL, MongoDB, MSSQL).
    pub const DATABASE: Self = Self("database");
    /// Caches (Redis, memcached).
    pub const CACHE: Self = Self("cache");
    /// Message buses (Kafka, AMQP, NATS).
    pub const MESSAGE_BUS: Self = Self("message_bus");
    /// Encrypted traffic named by its handshake.
    pub const TLS: Self = Self("tls");
    /// Nothing matched.
    pub const UNKNOWN: Self = Self("unknown");

    /// Makes a category for a third-party protocol family.
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The category as a string.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

impl Serialize for Category {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}
