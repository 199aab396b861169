//! The Go HTTP uprobes in live capture (`--go-uprobes`): watched Go programs with `net/http` get
//! the uprobes of `adi_probes::go::uprobes`, at start and when a watched process execs one;
//! `go_http` events join the other events. With `auto` (the default) only programs whose TLS
//! plaintext is not read get them: the socket capture sees plain HTTP and the TLS probes
//! Go's `crypto/tls` plaintext (HTTP/1 and HTTP/2 alike), so the HTTP uprobes would only add
//! their cost (two uprobe hits per request, ~15 µs each on a VM).
//!
//! Attaching reads the executable (symbols, RET sites, DWARF): tens of milliseconds, so a
//! thread of its own does it, never the event loop. The live loop calls [`GoHttp::kernel_event`]
//! for each kernel event (execs attach, exits detach), polls [`GoHttp::next`] with the ring
//! buffer, and [`GoHttp::stop`] at shutdown.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use adi_core::event::GoHttpEvent;
use adi_probes::go::uprobes::{GoHttpProbes, GoHttpStats, GoHttpStream, GoProbeError};
use adi_probes::go::GoError;
use adi_probes::raw::{EventKind, RawEvent};

use adi_pipeline::OptIn;

/// `--go-uprobes`: which watched Go programs get the HTTP uprobes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoMode {
    /// Every one (`on`, or `auto` without TLS plaintext).
    Every,
    /// Those whose TLS plaintext the TLS probes cannot read (`auto`).
    WithoutTlsPlaintext,
    /// None.
    Off,
}

/// What the attaching thread is told.
enum Cmd {
    /// A process to attach to if it is a Go program with `net/http`; `recheck`: an exec the
    /// kernel could not decide, checked against the opt-in from /proc first (otherwise the
    /// kernel's decision stands: a later /proc read may see an overwritten environment).
    Attach { pid: u32, recheck: bool },
    /// A process that exited.
    Detach(u32),
}

/// What the attaching thread reports.
#[derive(Clone, Copy, Debug, Default)]
struct Shared {
    stats: GoHttpStats,
    attached: usize,
    failed: usize,
    /// Go programs left without them (`auto`: their TLS plaintext is read).
    skipped: usize,
}

/// The Go uprobes of live capture, or nothing when they are off or could not load.
pub struct GoHttp {
    cmds: Option<mpsc::Sender<Cmd>>,
    stream: Option<GoHttpStream>,
    /// The stream, once the attaching thread loaded the uprobes (at the first Go program
    /// that needs them: most runs never do, and the object's ring buffer costs 8 MiB of
    /// resident memory).
    loaded: Option<tokio::sync::oneshot::Receiver<GoHttpStream>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
    lost_reported: u64,
    events: u64,
}

impl GoHttp {
    /// Starts the attaching thread, which attaches the uprobes to the Go programs among `pids`
    /// (every running process with `all`) that `mode` admits, loading them at the first one.
    /// `opt_in` is `Some` when processes are chosen by the opt-in: a process that execs is then
    /// attached only if /proc says it opted in. A failure to load is said on stderr and leaves
    /// the uprobes off; capture goes on. Call from within the tokio runtime.
    pub fn start(mode: GoMode, pids: &HashSet<u32>, all: bool, opt_in: Option<OptIn>) -> Self {
        let mut off = Self {
            cmds: None,
            stream: None,
            loaded: None,
            thread: None,
            shared: Arc::default(),
            lost_reported: 0,
            events: 0,
        };
        if mode == GoMode::Off {
            return off;
        }
        let (tx, rx) = mpsc::channel();
        let mut initial: Vec<u32> = pids.iter().copied().collect();
        if all {
            initial = all_pids();
        }
        initial.sort_unstable();
        for pid in initial {
            let _ = tx.send(Cmd::Attach {
                pid,
                recheck: false,
            });
        }
        let shared = Arc::clone(&off.shared);
        let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name("adi-go-uprobes".into())
            .spawn(move || {
                // The ring buffer's reader registers with the runtime's reactor.
                let _in_runtime = runtime.enter();
                let probes = Lazy {
                    probes: None,
                    stream_to: Some(loaded_tx),
                };
                attach_loop(probes, &rx, &shared, opt_in.as_ref(), mode);
            });
        match thread {
            Ok(t) => {
                off.thread = Some(t);
                off.cmds = Some(tx);
                off.loaded = Some(loaded_rx);
            }
            Err(e) => eprintln!("adi: Go uprobes off: starting their thread: {e}"),
        }
        off
    }

    /// Follows the kernel's process events: a watched process that exec'd may now be a Go
    /// program; an exited one is detached.
    pub fn kernel_event(&self, ev: &RawEvent) {
        let Some(cmds) = &self.cmds else { return };
        let cmd = match ev.kind {
            EventKind::Exec => {
                let flags = ev.exec_flags();
                if !flags.watched && !flags.undecided {
                    Cmd::Detach(ev.tgid)
                } else {
                    Cmd::Attach {
                        pid: ev.tgid,
                        recheck: flags.undecided,
                    }
                }
            }
            EventKind::Exit => Cmd::Detach(ev.tgid),
            _ => return,
        };
        let _ = cmds.send(cmd);
    }

    /// The next `go_http` event; never ready when the uprobes are off. Cancel-safe.
    pub async fn next(&mut self) -> Option<GoHttpEvent> {
        if self.stream.is_none() {
            let Some(loaded) = &mut self.loaded else {
                return std::future::pending().await;
            };
            // Cancel-safe: a receiver awaited by reference keeps what it has not yet given.
            let stream = loaded.await.ok();
            self.loaded = None;
            self.stream = stream;
        }
        let Some(stream) = &mut self.stream else {
            return std::future::pending().await;
        };
        let e = stream.next().await.ok();
        self.events += u64::from(e.is_some());
        e
    }

    /// Records lost since the last call (the uprobes' ring buffer was full): for `lost`
    /// events.
    pub fn lost_delta(&mut self) -> u64 {
        let total = self.shared.lock().map_or(0, |s| s.stats.ringbuf_full);
        let delta = total.saturating_sub(self.lost_reported);
        self.lost_reported = total;
        delta
    }

    /// Detaches everything and returns what is still queued, then calls whose return was not
    /// seen (without status). Prints one summary line when the uprobes ran.
    pub fn stop(&mut self) -> Vec<GoHttpEvent> {
        // Closing the channel ends the thread, which closes the probes.
        self.cmds = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(mut loaded) = self.loaded.take() {
            self.stream = loaded.try_recv().ok();
        }
        let Some(stream) = &mut self.stream else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(e) = stream.try_next() {
            out.push(e);
        }
        out.extend(stream.take_unfinished());
        self.events += out.len() as u64;
        let s = self.shared.lock().map(|s| *s).unwrap_or_default();
        eprintln!(
            "adi: Go uprobes: {} go_http events from {} processes ({} could not be attached, {} not needed); lost: {} ring buffer, {} returns without entry, {} unpaired, {} undecodable; {} requests with headers cut",
            self.events,
            s.attached,
            s.failed,
            s.skipped,
            s.stats.ringbuf_full,
            s.stats.no_entry,
            stream.unpaired_returns,
            stream.decode_errors,
            s.stats.headers_cut,
        );
        out
    }
}

/// Every pid in /proc (for `--all`: the attaching thread keeps the Go programs).
pub(crate) fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The uprobes, loaded at the first Go program that needs them; their stream goes to
/// [`GoHttp::next`] then.
struct Lazy {
    probes: Option<GoHttpProbes>,
    /// Where the stream goes once loaded; `None` once tried (loaded, or failed and said so).
    stream_to: Option<tokio::sync::oneshot::Sender<GoHttpStream>>,
}

impl Lazy {
    /// The probes, loading them the first time.
    fn get(&mut self) -> Option<&mut GoHttpProbes> {
        if let Some(stream_to) = self.stream_to.take() {
            match GoHttpProbes::new() {
                Ok((probes, stream)) => {
                    self.probes = Some(probes);
                    let _ = stream_to.send(stream);
                    // What loading allocated for a moment (the kernel's BTF).
                    adi_probes::host::release_freed_memory();
                }
                Err(e) => eprintln!("adi: Go uprobes off: {e}"),
            }
        }
        self.probes.as_mut()
    }

    fn detach(&mut self, pid: u32) {
        if let Some(p) = &mut self.probes {
            p.detach(pid);
        }
    }

    fn stats(&self) -> GoHttpStats {
        self.probes
            .as_ref()
            .map(GoHttpProbes::stats)
            .unwrap_or_default()
    }

    fn close(self) {
        if let Some(p) = self.probes {
            p.close();
        }
    }
}

/// The attaching thread: owns the probes until the command channel closes.
fn attach_loop(
    mut probes: Lazy,
    rx: &mpsc::Receiver<Cmd>,
    shared: &Mutex<Shared>,
    opt_in: Option<&OptIn>,
    mode: GoMode,
) {
    let own = std::process::id();
    let mut attached: HashSet<u32> = HashSet::new();
    let (mut ever, mut failed, mut skipped) = (0, 0, 0);
    loop {
        let cmd = match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(cmd) => Some(cmd),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match cmd {
            Some(Cmd::Attach { pid, recheck }) if pid != own => {
                if recheck && opt_in.is_some_and(|o| !o.admits_pid(pid)) {
                    probes.detach(pid);
                    attached.remove(&pid);
                } else if !adi_probes::tls::is_go_executable(Path::new(&format!("/proc/{pid}/exe")))
                {
                    // Not (or no longer) a Go program: no need to load anything for it.
                    probes.detach(pid);
                    attached.remove(&pid);
                } else if mode == GoMode::WithoutTlsPlaintext && tls_plaintext_read(pid) {
                    // A program that exec'd another may have had them.
                    probes.detach(pid);
                    attached.remove(&pid);
                    skipped += 1;
                    eprintln!("adi: Go uprobes not needed on pid {pid}: its HTTP is read from its sockets and crypto/tls (--go-uprobes on adds them)");
                } else if let Some(loaded) = probes.get() {
                    match loaded.attach(pid) {
                        Ok(t) => {
                            attached.insert(pid);
                            ever += 1;
                            let sides = match (t.client.is_some(), t.server.is_some()) {
                                (true, true) => "client and server",
                                (true, false) => "client",
                                _ => "server",
                            };
                            eprintln!(
                                "adi: Go uprobes on pid {pid} ({}, net/http {sides})",
                                t.go_version
                            );
                        }
                        Err(e) => {
                            attached.remove(&pid);
                            if !quiet(&e) {
                                failed += 1;
                                eprintln!("adi: Go uprobes: {e}");
                            }
                        }
                    }
                }
            }
            Some(Cmd::Detach(pid)) => {
                probes.detach(pid);
                attached.remove(&pid);
            }
            Some(Cmd::Attach { .. }) | None => {}
        }
        if let Ok(mut s) = shared.lock() {
            s.stats = probes.stats();
            s.attached = ever;
            s.failed = failed;
            s.skipped = skipped;
        }
    }
    if let Ok(mut s) = shared.lock() {
        s.stats = probes.stats();
    }
    probes.close();
}

/// Whether the TLS probes read the TLS plaintext of Go program `pid` (the caller checked it is
/// one): amd64, register ABI, its `crypto/tls` functions found.
fn tls_plaintext_read(pid: u32) -> bool {
    let exe = std::path::PathBuf::from(format!("/proc/{pid}/exe"));
    adi_probes::tls::sites_in(&exe).is_ok_and(|sites| {
        sites
            .iter()
            .any(|s| s.program == adi_probes::tls::GO_RETURN_PROGRAM)
    })
}

/// Errors that only say "not a Go HTTP program" (or "already gone"): not worth a line.
fn quiet(e: &GoProbeError) -> bool {
    match e {
        GoProbeError::NoHttp { .. } => true,
        GoProbeError::Inspect { source, .. } => matches!(
            source,
            GoError::NotGo | GoError::NotElf { .. } | GoError::Io { .. }
        ),
        _ => false,
    }
}
