//! `adi-probes`: where `adi`'s bytes come from.
//!
//! - [`live`]: the eBPF socket and process probes (tracepoints, CO-RE, ring buffer), loaded
//!   with aya 0.14 from the object committed in `probes/bpf/`;
//! - [`host`]: what live capture needs from the host (capabilities, BTF, tracefs, which adi
//!   mounts when missing), checked before every load; [`doctor`]: the same facts and a real
//!   load of every program and map, for `adi doctor`;
//! - [`raw`]: the kernel wire format and its checked decoding;
//! - [`tls`]: which files hold a TLS library, and the uprobes that read its plaintext;
//! - [`go`]: Go binary inspection: build info, function addresses (`.symtab` or
//!   `.gopclntab`), return sites, for `adi go ps` and the Go uprobes;
//! - [`pcap`]: the offline source, pcap/pcapng files reassembled into TCP streams (used by
//!   `adi classify FILE`).
//!
//! This is the only crate where `unsafe` appears (the others forbid it), each block with a
//! `// SAFETY:` comment; [`host`] wraps the few libc calls the binary needs.

#[cfg(test)]
mod btf_layout;
pub mod doctor;
pub mod go;
pub mod host;
pub mod live;
pub mod pcap;
pub mod raw;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
