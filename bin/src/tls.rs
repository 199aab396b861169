//! TLS plaintext in live capture (`--tls-uprobes`): which files get the uprobes of
//! `adi_probes::tls`, for which processes, and when.
//!
//! - `on` (the default, and always with `--all`): each TLS library file of the host and of the
//!   running processes is probed once, for every process that maps it, now or later; the
//!   programs ignore unwatched processes, which still take the uprobe trap. Nothing a watched
//!   process does escapes: a worker it forks, a program it starts, a backend forked per
//!   connection.
//! - `watched`: only watched processes are probed, each on its own, so that a process adi
//!   does not watch never takes a uprobe trap: at start, at the exec of a watched program (the
//!   host's `libssl` files, before the program maps them), and when a watched process adi has
//!   not checked yet shows a TLS handshake (a forked worker, a container's own library,
//!   OpenSSL inside the executable). A process's probes go when it exits. The price: calls a
//!   process makes before adi attached (a backend forked per connection, a client that runs
//!   for a few milliseconds) are not read.
//!
//! Either way, when a watched process first shows a TLS handshake its mapped libraries and its
//! executable are checked (a container's own library, OpenSSL linked into the program). A Go
//! executable (Go's own `crypto/tls`) is probed as soon as adi sees it: at start, and at the
//! exec of a watched program, before it runs far enough to make a TLS call.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use adi_probes::live::{KernelProbes, ProbeError};
use adi_probes::raw::{EventKind, RawEvent};
use adi_probes::tls::{self, TlsAttach, TlsScope};

/// `--tls-uprobes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// For every process that maps a probed file.
    AllProcesses,
    /// For watched processes only, one by one.
    Watched,
    /// No TLS uprobes.
    Off,
}

/// The TLS probes of live capture, or nothing when they are off.
pub struct TlsPlaintext {
    enabled: bool,
    /// Files are probed for every process.
    all: bool,
    /// The host's `libssl` files (given to every watched program at its exec).
    system: Vec<PathBuf>,
    /// Processes whose mapped files were checked.
    checked: HashSet<u32>,
    /// Files that could not be probed, said once each.
    failed: HashSet<PathBuf>,
}

impl TlsPlaintext {
    /// Probes the host's TLS libraries and those of `pids` (every process with
    /// `watch_all`), as `mode` says. Prints one line saying what is probed; failures are said
    /// and leave capture going.
    pub fn start(
        mode: TlsMode,
        probes: &mut KernelProbes,
        pids: &HashSet<u32>,
        watch_all: bool,
    ) -> Self {
        let enabled = mode != TlsMode::Off;
        let all = watch_all || mode == TlsMode::AllProcesses;
        let system = tls::system_libraries();
        let mut me = Self {
            enabled,
            all,
            system,
            checked: HashSet::new(),
            failed: HashSet::new(),
        };
        if !enabled {
            return me;
        }
        if all {
            for lib in me.system.clone() {
                me.probe(probes, &lib, TlsScope::All);
            }
        }
        let initial: Vec<u32> = if watch_all {
            crate::go_http::all_pids()
        } else {
            pids.iter().copied().collect()
        };
        // Libraries only: reading every executable would be slow; a process that starts a
        // TLS handshake has its executable read then.
        for pid in initial {
            me.check(probes, pid, false);
        }
        let files = probes.tls_files();
        if files.is_empty() {
            eprintln!("adi: TLS plaintext: no OpenSSL-compatible library in use yet; watched processes are probed as they exec or start a TLS handshake");
        } else {
            let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            let whom = if all {
                "for every process that maps them".to_owned()
            } else {
                format!("for {} watched process(es) so far", probes.tls_processes())
            };
            eprintln!("adi: TLS plaintext read from {} ({whom})", names.join(", "));
        }
        me
    }

    /// Looks at one kernel event: a watched program's exec gets the host's libraries, a
    /// watched process seen sending or receiving a TLS handshake for the first time has its
    /// mapped files checked, an exit removes a process's probes.
    pub fn kernel_event(&mut self, probes: &mut KernelProbes, ev: &RawEvent, payload: &[u8]) {
        if !self.enabled {
            return;
        }
        match ev.kind {
            EventKind::Data
                if !ev.tls && is_handshake(payload) && !self.checked.contains(&ev.tgid) =>
            {
                self.check(probes, ev.tgid, true);
            }
            EventKind::Exec => {
                self.checked.remove(&ev.tgid);
                let flags = ev.exec_flags();
                // An undecided opt-in is decided from /proc later: the programs still ignore
                // a process the kernel does not watch.
                let watched = flags.watched || flags.undecided;
                if !self.all {
                    // A new program: its libraries are mapped after this, so they are probed
                    // now, for it alone.
                    probes.detach_tls(ev.tgid);
                    if watched {
                        for lib in self.system.clone() {
                            self.probe(probes, &lib, TlsScope::Process(ev.tgid));
                        }
                    }
                }
                if watched {
                    self.probe_go(probes, ev.tgid);
                }
            }
            EventKind::Exit => {
                self.checked.remove(&ev.tgid);
                if !self.all {
                    probes.detach_tls(ev.tgid);
                }
            }
            _ => {}
        }
    }

    /// Probes the TLS files process `pid` maps that are not probed yet (its executable too
    /// with `exe`), and the host's libraries for it (which it may load later).
    fn check(&mut self, probes: &mut KernelProbes, pid: u32, exe: bool) {
        self.checked.insert(pid);
        let scope = if self.all {
            TlsScope::All
        } else {
            TlsScope::Process(pid)
        };
        let mut files = tls::candidates_of(pid, exe);
        if !self.all {
            files.extend(self.system.iter().cloned());
        }
        for file in files {
            self.probe(probes, &file, scope);
        }
        if !exe {
            self.probe_go(probes, pid);
        }
    }

    /// Probes process `pid`'s executable when it is a Go program (its `crypto/tls`): cheap to
    /// tell, so done at start and at every watched exec, not only at a first handshake.
    fn probe_go(&mut self, probes: &mut KernelProbes, pid: u32) {
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        if tls::is_go_executable(&exe) {
            let scope = if self.all {
                TlsScope::All
            } else {
                TlsScope::Process(pid)
            };
            if self.probe(probes, &exe, scope) {
                eprintln!("adi: TLS plaintext read from Go program {pid} (crypto/tls)");
            }
        }
    }

    /// Probes one file; whether probes were attached now.
    fn probe(&mut self, probes: &mut KernelProbes, file: &Path, scope: TlsScope) -> bool {
        match probes.attach_tls(file, scope) {
            Ok(TlsAttach::Attached(_)) => return true,
            Ok(TlsAttach::Known | TlsAttach::NotTls) => {}
            // A process gone meanwhile, or a kernel thread (no executable).
            Err(ProbeError::Tls { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            // A process that exited between the check and the attach.
            Err(ProbeError::Program { .. }) if matches!(scope, TlsScope::Process(pid) if !Path::new(&format!("/proc/{pid}")).exists()) =>
                {}
            Err(e) => {
                if self.failed.insert(file.to_path_buf()) {
                    eprintln!("adi: TLS plaintext not read from {}: {e}", file.display());
                }
            }
        }
        false
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
