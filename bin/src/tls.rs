//! TLS plaintext in live capture (`--tls-uprobes on`, the default): the TLS library files of
//! this host and of the watched processes get the uprobes of `adi_probes::tls`, at start and
//! when a watched process that was not checked yet is seen starting a TLS handshake (a
//! container's own libssl, a library loaded late, an executable with OpenSSL inside).
//!
//! A file is probed once, for every process that maps it, so a process that starts later
//! with a library already probed is covered without anything done here.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use adi_probes::live::{ProbeError, SyscallProbes};
use adi_probes::raw::{EventKind, RawEvent};
use adi_probes::tls::{self, TlsAttach};

/// The TLS probes of live capture, or nothing when they are off.
pub struct TlsPlaintext {
    enabled: bool,
    /// Processes whose mapped files were checked.
    checked: HashSet<u32>,
    /// Files that could not be probed, said once each.
    failed: HashSet<PathBuf>,
}

impl TlsPlaintext {
    /// Probes the host's TLS libraries and those of `pids` (every process with `all`).
    /// Prints one line saying what is probed; failures are said and leave capture going.
    pub fn start(
        enabled: bool,
        probes: &mut SyscallProbes,
        pids: &HashSet<u32>,
        all: bool,
    ) -> Self {
        let mut me = Self {
            enabled,
            checked: HashSet::new(),
            failed: HashSet::new(),
        };
        if !enabled {
            return me;
        }
        for lib in tls::system_libraries() {
            // One name per file in what is said: the real file, not its symlinks.
            me.probe(probes, &std::fs::canonicalize(&lib).unwrap_or(lib));
        }
        let initial: Vec<u32> = if all {
            crate::go_http::all_pids()
        } else {
            pids.iter().copied().collect()
        };
        // Libraries only: reading every executable of the host would be slow; a process
        // that starts a TLS handshake has its executable read then.
        for pid in initial {
            me.check(probes, pid, false);
        }
        let files = probes.tls_files();
        if files.is_empty() {
            eprintln!("adi: TLS plaintext: no OpenSSL-compatible library found yet; processes that start a TLS handshake are checked as they do");
        } else {
            let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            eprintln!("adi: TLS plaintext read from {}", names.join(", "));
        }
        me
    }

    /// Looks at one kernel event: a watched process seen sending or receiving a TLS
    /// handshake for the first time has its mapped files checked; an exec or exit makes a
    /// process new again.
    pub fn kernel_event(&mut self, probes: &mut SyscallProbes, ev: &RawEvent) {
        if !self.enabled {
            return;
        }
        match ev.kind {
            EventKind::Data
                if !ev.tls && is_handshake(&ev.payload) && !self.checked.contains(&ev.tgid) =>
            {
                self.check(probes, ev.tgid, true);
            }
            EventKind::Exec | EventKind::Exit => {
                self.checked.remove(&ev.tgid);
            }
            _ => {}
        }
    }

    /// Probes the TLS files process `pid` maps that are not probed yet (its executable too
    /// with `exe`).
    fn check(&mut self, probes: &mut SyscallProbes, pid: u32, exe: bool) {
        self.checked.insert(pid);
        for file in tls::candidates_of(pid, exe) {
            self.probe(probes, &file);
        }
    }

    fn probe(&mut self, probes: &mut SyscallProbes, file: &Path) {
        match probes.attach_tls(file) {
            Ok(TlsAttach::Attached(_) | TlsAttach::Known | TlsAttach::NotTls) => {}
            // A process gone meanwhile, or a kernel thread (no executable).
            Err(ProbeError::Tls { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                if self.failed.insert(file.to_path_buf()) {
                    eprintln!("adi: TLS plaintext not read from {}: {e}", file.display());
                }
            }
        }
    }
}

/// Whether bytes start a TLS handshake record (content type 22, version 3.x).
fn is_handshake(payload: &[u8]) -> bool {
    matches!(payload, [0x16, 0x03, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_records_are_recognised() {
        // A ClientHello's record header: handshake (22), TLS 1.0 record version, length.
        assert!(is_handshake(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
        assert!(!is_handshake(b"GET / HTTP/1.1\r\n"));
        // Application data (23) is not a handshake.
        assert!(!is_handshake(&[0x17, 0x03, 0x03]));
        assert!(!is_handshake(&[]));
    }
}
