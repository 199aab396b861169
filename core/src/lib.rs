//! `adi-core`: the pieces every other `adi` crate points to.
//!
//! - [`classify`], [`registry`], [`engine`]: the classifier contract, the plugin registry and
//!   the per-flow classification engine, re-exported from `adi-classify` (the only crate a
//!   classifier depends on),
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
pub mod error;
pub mod event;
pub mod redact;
pub mod time;

pub use adi_classify::contract as classify;
pub use adi_classify::register_classifier;
#[cfg(feature = "testing")]
pub use adi_classify::{conformance_tests, testing};
pub use adi_classify::{engine, flow, protocol, record, registry};

pub use adi_classify::{
    parse_steps, probe_both_ways, Category, Classifier, Confidence, DetectOnly, Direction, FlowId,
    FlowKey, PortHint, Probe, ProtocolId, Record, RecordKind, Registration, Registry, Sender,
    Session, Skip, Step, Steps, Verdict,
};
pub use error::{ParseError, RegistryError};
