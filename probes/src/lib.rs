//! `adi-probes`: where `adi`'s bytes come from.
//!
//! - [`live`]: the eBPF socket and process probes (tracepoints, CO-RE, ring buffer), loaded
//!   with aya 0.14 from the object committed in `probes/bpf/`;
//! - [`host`]: what live capture needs from the host (capabilities, BTF, tracefs, which adi
//!   mounts when missing), checked before every load; [`doctor`]: the same facts and a real
//!   load of every program and map, for `adi doctor`;
//! - [`raw`]: the kernel wire format and its checked decoding;
//! - [`tls`]: which files hold a TLS library, and the uprobes that read its plaintext;
//! - [`go`]: the Go HTTP uprobes, on the Go binary inspection of `adi-go` (re-exported).
//!
//! The offline source, pcap/pcapng files reassembled into TCP streams, is the crate
//! `adi-capture`: `adi classify` and its fuzz target need no BPF loader.
//!
//! This is the only crate where `unsafe` appears (the others forbid it), each block with a
//! `// SAFETY:` comment; [`host`] wraps the few libc calls the binary needs.

#[cfg(test)]
mod btf_layout;
pub mod doctor;
pub mod go;
pub mod host;
pub mod live;
pub mod raw;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
