//! Flow identity: one TCP connection as seen by one observer.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use serde::{Serialize, Serializer};

/// Which end of the connection the observing process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The observed process connected (`connect`).
    Client,
    /// The observed process accepted (`accept`).
    Server,
    /// Seen on the wire (a capture file): no process observes it.
    Wire,
}

/// One connection from one point of view. The same loopback connection traced in both the
/// client and the server process is two flows (same addresses, other `pid` and `role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// The observing process (0 for a capture file).
    pub pid: u32,
    /// Which end the observer is.
    pub role: Role,
    /// The connecting side.
    pub client: SocketAddr,
    /// The accepting side.
    pub server: SocketAddr,
}

/// Three wide writes rather than the dozen narrow ones a derived hash makes (every field of
/// both addresses): flows are looked up for every message, and each write is a round of the
/// hasher. Equal keys hash alike; addresses that differ only in IPv6 flow info or scope
/// share a hash, and `Eq` tells them apart.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(addr_bits(self.client));
        state.write_u128(addr_bits(self.server));
        state.write_u64((u64::from(self.pid) << 8) | self.role as u64);
    }
}

/// An address's IP and port in one number (IPv4 and IPv6 apart by where the port goes).
pub fn addr_bits(addr: SocketAddr) -> u128 {
    match addr {
        SocketAddr::V4(a) => (u128::from(a.ip().to_bits()) << 16) | u128::from(a.port()),
        SocketAddr::V6(a) => a.ip().to_bits() ^ (u128::from(a.port()) << 112),
    }
}

/// A number naming one flow for its lifetime, unique within one `adi` run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for FlowId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// Formats an address as `ip:port`, IPv6 as `[ip]:port`, IPv4-mapped IPv6 unmapped first.
pub fn display_addr(addr: SocketAddr) -> String {
    // SocketAddr's Display already brackets IPv6.
    SocketAddr::new(unmapped_ip(addr), addr.port()).to_string()
}

/// The address's IP, an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) given as IPv4.
pub fn unmapped_ip(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}
