//! `adi-classifiers`: the built-in protocol classifiers, one folder per protocol.
//!
//! Each folder registers itself with [`adi_classify::register_classifier!`]; nothing else in the
//! workspace names a protocol. The binary links this crate with `use adi_classifiers as _;`.
//! To add a protocol, see "Adding a protocol" in `docs/contributing.md`.
#![forbid(unsafe_code)]

mod amqp;
mod body;
mod http1;
mod http2;
mod kafka;
mod memcached;
mod mongodb;
mod mssql;
mod mysql;
mod nats;
mod parsing;
mod postgres;
mod redis;
mod tls;
