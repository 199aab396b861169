//! `adi-probes`: where `adi`'s bytes come from.
//!
//! - [`pcap`]: the offline source, pcap/pcapng files reassembled into TCP streams (used by
//!   `adi classify FILE`).
//!
//! The eBPF probes will live here too; they are the only place `unsafe` is allowed.

pub mod pcap;
