//! The capture reader (pcap, pcapng, link layers, IP, TCP reassembly) on arbitrary files.
#![no_main]

use adi_probes::pcap::CaptureReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for event in CaptureReader::new(data) {
        if event.is_err() {
            break;
        }
    }
});
