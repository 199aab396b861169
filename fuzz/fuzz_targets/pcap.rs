//! The capture reader (pcap, pcapng, link layers, IP, TCP reassembly) on arbitrary files.
#![no_main]

use adi_capture::CaptureReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(capture) = CaptureReader::new(data) else { return };
    for event in capture {
        if event.is_err() {
            break;
        }
    }
});
