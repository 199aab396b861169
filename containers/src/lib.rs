//! `adi-containers`: which container a process runs in, and which container an address
//! reaches, for the `source_container` / `destination_container` / `destination_type` of
//! events and the service map's names.
//!
//! Two halves meet in an [`Index`]:
//! - the pid side: [`cgroup`] reads `/proc/PID/cgroup` into a container id (Docker, Podman,
//!   containerd, CRI-O; cgroup v1 and v2; systemd and cgroupfs drivers);
//! - the runtime side: watchers for the Docker Engine API ([`docker`], which also serves
//!   Podman through `podman system service`) and for containerd ([`containerd`]) fill the
//!   index with each container's name, image, labels, addresses and published ports, list
//!   first, then follow the runtime's event stream (no polling).
//!
//! [`Containers`] is what the pipeline asks: per pid (cached until the process exits) and
//! per remote address.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cgroup;
pub mod containerd;
pub mod docker;
pub mod index;
pub mod netns;
pub mod runtime;
pub mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use index::{Container, Index, RuntimeKind};
pub use source::Containers;
