//! The classifier registry, collected at link time with `inventory`.
//!
//! Any crate registers a classifier with [`crate::register_classifier!`]; the binary links it
//! with `use that_crate as _;` (rust-lang/rust#64731: an unreferenced crate is not linked).
//! [`Registry::from_inventory`] sorts registrations by id, because inventory's order is
//! unspecified, and refuses duplicates.

use std::fmt;
use std::ops::RangeInclusive;

use crate::contract::{Classifier, Confidence, PortHint};
use crate::error::RegistryError;
use crate::protocol::{Category, ProtocolId};

/// One classifier's entry in the registry.
pub struct Registration {
    /// The protocol id.
    pub id: ProtocolId,
    /// The category of the protocol.
    pub category: Category,
    /// One line for `adi classifiers`.
    pub description: &'static str,
    /// Well-known server ports: they order the candidates and add [`Confidence::PORT_BONUS`].
    pub default_ports: &'static [u16],
    /// Minimum bytes before the first probe ..= the most bytes the probe ever reads.
    pub probe_window: RangeInclusive<usize>,
    /// The classifier itself (a zero-sized type).
    pub classifier: &'static dyn Classifier,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("category", &self.category)
            .field("default_ports", &self.default_ports)
            .field("probe_window", &self.probe_window)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// True when `port` is one of this protocol's well-known ports.
    pub fn is_default_port(&self, port: Option<u16>) -> bool {
        port.is_some_and(|p| self.default_ports.contains(&p))
    }
}

inventory::collect!(Registration);

/// Registers a classifier from any crate:
///
/// ```
/// # use adi_classify::{Classifier, Direction, PortHint, Probe, ProtocolId};
/// # const REDIS: ProtocolId = ProtocolId::new("redis");
/// # struct Redis;
/// # impl Classifier for Redis {
/// #     fn probe(&self, _: &[u8], _: Direction, _: PortHint) -> Probe { Probe::NoMatch }
/// # }
/// adi_classify::register_classifier!(adi_classify::Registration {
///     id: REDIS, category: adi_classify::Category::CACHE, description: "Redis RESP2/RESP3",
///     default_ports: &[6379], probe_window: 1..=64, classifier: &Redis,
/// });
/// ```
#[macro_export]
macro_rules! register_classifier {
    ($reg:expr) => {
        $crate::__private::inventory::submit! { $reg }
    };
}

/// Payload confidence plus the port bonus when `ports.server` is a default port of `reg`.
/// Never reaches [`Confidence::CONFIRMED`], which only both directions together earn.
pub fn score(reg: &Registration, payload: Confidence, ports: PortHint) -> Confidence {
    let mut value = payload.get();
    if reg.is_default_port(ports.server) {
        value = value.saturating_add(Confidence::PORT_BONUS);
    }
    Confidence::new(value.min(Confidence::CONFIRMED.get() - 1))
}

/// The set of classifiers the engine uses, sorted by id.
#[derive(Debug)]
pub struct Registry {
    entries: Vec<&'static Registration>,
}

impl Registry {
    /// Every classifier linked into this binary.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Duplicate`] when two registrations share an id.
    pub fn from_inventory() -> Result<Self, RegistryError> {
        Self::from_entries(inventory::iter::<Registration>.into_iter().collect())
    }

    /// A registry of the given entries (tests, embedding).
    ///
    /// # Errors
    ///
    /// [`RegistryError::Duplicate`] when two entries share an id; [`RegistryError::Empty`]
    /// when there are none.
    pub fn from_entries(mut entries: Vec<&'static Registration>) -> Result<Self, RegistryError> {
        if entries.is_empty() {
            return Err(RegistryError::Empty);
        }
        entries.sort_by_key(|r| r.id);
        if let Some(pair) = entries.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(RegistryError::Duplicate { id: pair[0].id });
        }
        Ok(Self { entries })
    }

    /// Keeps only the classifiers named in `selection`: `all`, or ids separated by commas.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownId`] for an id nobody registered, [`RegistryError::Empty`] for
    /// an empty list.
    pub fn select(&self, selection: &str) -> Result<Self, RegistryError> {
        let selection = selection.trim();
        if selection == "all" {
            return Ok(Self {
                entries: self.entries.clone(),
            });
        }
        let mut picked = Vec::new();
        for id in selection
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let entry = self
                .entries
                .iter()
                .find(|r| r.id.as_str() == id)
                .ok_or_else(|| RegistryError::UnknownId { id: id.to_owned() })?;
            if !picked.iter().any(|r: &&Registration| r.id == entry.id) {
                picked.push(*entry);
            }
        }
        Self::from_entries(picked)
    }

    /// Number of classifiers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none (never, for a registry built by the constructors).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `n`th classifier in id order.
    ///
    /// # Panics
    ///
    /// When `n >= self.len()`.
    pub fn nth(&self, n: usize) -> &'static Registration {
        self.entries[n]
    }

    /// All classifiers in id order.
    pub fn iter(&self) -> impl Iterator<Item = &'static Registration> + '_ {
        self.entries.iter().copied()
    }

    /// The classifier with this id.
    pub fn get(&self, id: &str) -> Option<&'static Registration> {
        self.entries.iter().copied().find(|r| r.id.as_str() == id)
    }

    /// The largest probe window end: how many bytes per direction the engine buffers before
    /// it gives up on classifying a flow.
    pub fn max_window(&self) -> usize {
        self.entries
            .iter()
            .map(|r| *r.probe_window.end())
            .max()
            .unwrap_or(0)
    }

    /// The single protocol whose default ports include `port`, for a port-only verdict; `None`
    /// when no protocol or several claim it.
    pub fn port_owner(&self, port: u16) -> Option<&'static Registration> {
        let mut owners = self
            .entries
            .iter()
            .filter(|r| r.default_ports.contains(&port));
        let first = owners.next()?;
        owners.next().is_none().then_some(*first)
    }
}
