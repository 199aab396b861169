//! `adi-classify`: the classifier contract, and all a classifier crate needs.
//!
//! - [`contract`]: what a classifier implements ([`Classifier`], the three-way [`Probe`] whose
//!   match carries [`Verdict`] evidence, [`Session`]) and the machinery every classifier shares
//!   ([`probe_both_ways`], [`parse_steps`], [`DetectOnly`]),
//! - [`registry`]: the plugin registry collected with `inventory` ([`register_classifier!`]),
//!   which supplies each protocol's id and category,
//! - [`engine`]: the per-flow classification engine (the hot path),
//! - [`testing`] (feature `testing`): the conformance harness a classifier folder enables in
//!   a few lines ([`conformance_tests!`]), and the helpers its own tests share.
//!
//! It has no async runtime, no JSON and no kernel code, so a built-in or third-party
//! classifier builds and tests anywhere. `adi-core` re-exports all of it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod contract;
pub mod engine;
pub mod error;
pub mod flow;
pub mod protocol;
pub mod record;
pub mod registry;

#[cfg(feature = "testing")]
pub mod testing;

pub use contract::{
    parse_steps, probe_both_ways, Classifier, Confidence, DetectOnly, Direction, PortHint, Probe,
    Sender, Session, Skip, Step, StepResult, Steps, Verdict,
};
pub use error::{ParseError, RegistryError};
pub use flow::{FlowId, FlowKey};
pub use protocol::{Category, ProtocolId};
pub use record::{Record, RecordKind};
pub use registry::{Registration, Registry};

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
