//! `adi-core`: the pieces every other `adi` crate points to.
//!
//! - [`classify`]: the classifier contract (three-way [`Probe`], [`Verdict`], [`Confidence`]),
//! - [`registry`]: the plugin registry collected with `inventory` ([`register_classifier!`]),
//! - [`engine`]: the per-flow classification engine (the hot path),
//! - [`event`]: the output events (`http`, `connection`, `go_http`, `lost`) whose field names
//!   are the JSON-lines schema,
//! - [`bus`]: a bounded fan-out bus where a slow sink loses (and counts) events instead of
//!   stalling the others.
//!
//! Data flows one way: probe → flow engine → classifiers → bus → sinks. Nothing here needs
//! root, a kernel or an async runtime beyond tokio's channels.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bus;
pub mod classify;
pub mod engine;
pub mod error;
pub mod event;
pub mod flow;
pub mod protocol;
pub mod record;
pub mod redact;
pub mod registry;
pub mod time;

#[cfg(feature = "testing")]
pub mod testing;

pub use classify::{Classifier, Confidence, Direction, PortHint, Probe, Session, Verdict};
pub use error::{ParseError, RegistryError};
pub use flow::{FlowId, FlowKey};
pub use protocol::{Category, ProtocolId};
pub use record::{Record, RecordKind};
pub use registry::{Registration, Registry};

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
