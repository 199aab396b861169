//! Go programs: the inspection of their binaries (re-exported from `adi-go`) and the Go HTTP
//! uprobes built on it ([`uprobes`], `go_http` events). The `crypto/tls` uprobes are in
//! [`crate::tls`].

pub use adi_go::*;

#[expect(
    unsafe_code,
    reason = "aya::Pod for the config struct, AsyncFd over the ring buffer"
)]
pub mod uprobes;
