//! The live source: adi's socket and process tracepoint programs (`probes/bpf/adi.bpf.c`),
//! loaded with aya 0.14 from the committed CO-RE object, and the ring buffer they fill. They
//! capture what the read/write family of syscalls moves on TCP sockets, without tracing
//! syscalls themselves.
//!
//! [`KernelProbes::load`] loads and attaches everything; dropping it detaches every program
//! (aya's links detach on drop). [`EventStream`] reads the ring buffer asynchronously.

use std::io;
use std::os::fd::AsRawFd;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use tokio::io::unix::AsyncFd;

use crate::raw::{KernelRole, RawConn, RawEvent, RawProfile};

/// The compiled BPF object, committed next to its source (`cargo xtask bpf` rebuilds it).
static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/adi.bpf.o");

/// Counters kept per CPU by the kernel side (`ADI_STAT_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Events lost because the ring buffer was full.
    pub ringbuf_full: u64,
    /// Data events whose payload was cut to the cap (not a loss: the real length is kept).
    pub truncated: u64,
    /// Payload copies from user memory that failed (the event was sent without payload).
    pub read_failed: u64,
    /// Events submitted.
    pub events: u64,
    /// Messages not copied because their request/response exchange was sampled out
    /// (`--max-rate`).
    pub sampled: u64,
    /// Children of watched processes not followed because the watched map was full.
    pub watch_full: u64,
    /// Execs whose environment the kernel could not read whole (user space decided; what
    /// the process did before that is not captured).
    pub env_unread: u64,
    /// Encrypted messages not sent because their plaintext is captured from the TLS
    /// library (not a loss).
    pub tls_ciphertext: u64,
    /// TLS plaintext not sent because no connection was known for its SSL object (a loss).
    pub tls_untied: u64,
    /// Go TLS calls not read because another began inside them on their goroutine (a `Conn`
    /// over another `Conn`; a loss).
    pub tls_nested: u64,
}

/// Loading or attaching failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Not root and without CAP_BPF + CAP_PERFMON.
    #[error("adi needs root or CAP_BPF+CAP_PERFMON (missing: {missing}): run it with sudo; `adi doctor` lists what else is needed")]
    NotPrivileged {
        /// The missing capabilities, `+`-joined (`cap_bpf+cap_perfmon`).
        missing: String,
    },
    /// The capabilities are held, yet the kernel refused to create a map or load a program.
    #[error("the kernel refused BPF although adi holds CAP_BPF+CAP_PERFMON ({source}): kernel lockdown, a security module or a container's seccomp profile forbids it; see `adi doctor`")]
    Refused {
        /// The kernel's answer.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// The kernel has no BTF, so CO-RE relocation is impossible.
    #[error("this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): adi needs a kernel built with CONFIG_DEBUG_INFO_BTF=y; see `adi doctor`")]
    NoBtf,
    /// tracefs is not mounted and adi could not mount it.
    #[error("tracefs is not mounted and adi could not mount it ({source}): run `sudo mount -t tracefs tracefs /sys/kernel/tracing`, or give adi CAP_SYS_ADMIN; see `adi doctor`")]
    NoTracefs {
        /// Why the mount failed.
        #[source]
        source: io::Error,
    },
    /// This kernel charges BPF memory to RLIMIT_MEMLOCK and adi could not raise it.
    #[error("this kernel charges BPF memory to the memlock limit and adi could not raise it ({source}): run `ulimit -l unlimited` before adi, or give it CAP_SYS_RESOURCE; see `adi doctor`")]
    Memlock {
        /// Why setrlimit failed.
        #[source]
        source: io::Error,
    },
    /// The object could not be loaded (the verifier log is in the source).
    #[error("loading the BPF object failed: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    /// A program could not be loaded or attached.
    #[error("{what} failed for program {program}: {source}")]
    Program {
        /// The program.
        program: String,
        /// "loading" or "attaching to sys_exit", ...
        what: String,
        /// Why (for loads, includes the verifier log).
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map is missing or of the wrong type.
    #[error("map {name}: {source}")]
    Map {
        /// The map.
        name: &'static str,
        /// Why.
        #[source]
        source: aya::maps::MapError,
    },
    /// The object lacks a program or map this build expects.
    #[error("the BPF object has no {0}: rebuild it with `cargo xtask bpf`")]
    Missing(&'static str),
    /// Registering the ring buffer with the async runtime failed.
    #[error("polling the ring buffer: {0}")]
    Poll(#[source] io::Error),
    /// An ADI_PROFILE_ALLOWED list the kernel cannot hold.
    #[error("ADI_PROFILE_ALLOWED: {0}")]
    Allowed(String),
    /// A file to probe for TLS functions could not be read.
    #[error("reading {} for TLS functions: {source}", path.display())]
    Tls {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Checks an allowed list and turns it into the kernel's form.
fn allowed_profiles(allowed: &[String]) -> Result<Vec<RawProfile>, ProbeError> {
    if allowed.len() > MAX_ALLOWED_PROFILES {
        return Err(ProbeError::Allowed(format!(
            "{} values given, at most {MAX_ALLOWED_PROFILES} are supported",
            allowed.len()
        )));
    }
    allowed
        .iter()
        .map(|a| {
            let bytes = a.as_bytes();
            if bytes.is_empty() || bytes.len() > MAX_PROFILE_LEN {
                return Err(ProbeError::Allowed(format!(
                    "`{a}` must be 1 to {MAX_PROFILE_LEN} bytes long"
                )));
            }
            let mut val = [0; MAX_PROFILE_LEN];
            val[..bytes.len()].copy_from_slice(bytes);
            Ok(RawProfile {
                len: u32::try_from(bytes.len()).unwrap_or(0),
                pad: 0,
                val,
            })
        })
        .collect()
}

/// Load options.
#[derive(Clone, Debug, Default)]
pub struct ProbeConfig {
    /// Trace every process (`--all`); otherwise only pids added with
    /// [`KernelProbes::watch`] and, from their creation on, their children.
    pub watch_all: bool,
    /// Default per-message payload cap (`--capture-bytes`), at most [`crate::raw::MAX_PAYLOAD`].
    pub capture_bytes: u32,
    /// The ADI_PROFILE opt-in (`docs/live-capture.md`) enforced in the kernel at every exec:
    /// `Some` with ADI_PROFILE_ALLOWED's values (empty: any non-empty ADI_PROFILE). Processes
    /// running before the load are not covered: scan /proc and [`KernelProbes::watch`] them.
    pub opt_in: Option<Vec<String>>,
    /// Most request/response exchanges per second captured in full (`--max-rate`), over all
    /// connections; beyond it the kernel skips whole exchanges and counts their messages as
    /// sampled. The first exchanges of every connection are always captured. 0: no limit.
    pub max_rate: u32,
    /// TLS library uprobes will be attached ([`KernelProbes::attach_tls`]): socket reads and
    /// writes then look for a TLS call in progress on their thread (one map lookup each).
    pub tls_plaintext: bool,
    /// Size of the kernel's ring buffer in bytes (a power of two, at least 1 MiB); 0: what
    /// [`ring_bytes_for`] says for `max_rate`.
    pub ring_bytes: u32,
}

/// The ring buffer adi uses for a `--max-rate`: 4 MiB when exchanges are sampled (at most
/// `max_rate` full exchanges a second, a few MiB/s at the 4 KiB cap: seconds of slack), 16 MiB
/// when every exchange is captured (a saturated HTTP server on loopback fills 4 MiB in tens of
/// milliseconds when adi falls behind; 16 MiB lost nothing in `benches/overhead`). Its pages
/// are mapped twice into adi (the wrap-around view), so the resident size grows by twice this.
pub fn ring_bytes_for(max_rate: u32) -> u32 {
    if max_rate == 0 {
        16 << 20
    } else {
        4 << 20
    }
}

/// Most ADI_PROFILE_ALLOWED values the kernel compares.
pub const MAX_ALLOWED_PROFILES: usize = 16;
/// Longest ADI_PROFILE_ALLOWED value the kernel compares, in bytes.
pub const MAX_PROFILE_LEN: usize = 64;

/// Loaded and attached probes of what syscalls move on TCP sockets (socket-layer and process
/// tracepoints). Dropping this detaches them.
pub struct KernelProbes {
    ebpf: Ebpf,
    watched: BpfHashMap<MapData, u32, u32>,
    conns: BpfHashMap<MapData, u64, RawConn>,
    stats: PerCpuArray<MapData, u64>,
    attached: usize,
    notes: Vec<String>,
    pub(crate) tls: crate::tls::TlsState,
}

impl std::fmt::Debug for KernelProbes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelProbes")
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

/// The credit one captured exchange costs on one CPU, in nanoseconds: each online CPU keeps its
/// own budget of `max_rate / cpus` exchanges per second (0: no limit).
fn exchange_cost_ns(max_rate: u32) -> u64 {
    if max_rate == 0 {
        return 0;
    }
    let cpus = aya::util::online_cpus().map_or(1, |c| c.len().max(1));
    (cpus as u64 * 1_000_000_000 / u64::from(max_rate)).max(1)
}

impl ProbeError {
    /// A load error, with "permission denied" explained: missing capabilities, or a kernel
    /// that refuses BPF to a process that holds them.
    pub(crate) fn from_load(e: aya::EbpfError) -> Self {
        let denied = matches!(&e, aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
            if io_error.kind() == io::ErrorKind::PermissionDenied);
        if !denied {
            return Self::Load(Box::new(e));
        }
        let caps = crate::host::Capabilities::current();
        if caps.can_trace() {
            Self::Refused {
                source: Box::new(e),
            }
        } else {
            Self::NotPrivileged {
                missing: caps.missing_for_tracing().join("+"),
            }
        }
    }
}

impl KernelProbes {
    /// Loads the BPF object (CO-RE relocated against this kernel) and attaches every program.
    /// Returns the probes and the ring buffer stream.
    ///
    /// # Errors
    ///
    /// [`ProbeError`] naming the missing privilege, the missing kernel feature, or the program
    /// the verifier rejected (with its log).
    pub fn load(config: ProbeConfig) -> Result<(Self, EventStream), ProbeError> {
        let prepared = crate::host::prepare()?;
        let watch_all = u32::from(config.watch_all);
        let self_tgid = std::process::id();
        let capture = config.capture_bytes.min(crate::raw::MAX_PAYLOAD as u32);
        let allowed = allowed_profiles(config.opt_in.as_deref().unwrap_or_default())?;
        let opt_in = u32::from(config.opt_in.is_some() && !config.watch_all);
        let allowed_count = u32::try_from(allowed.len()).unwrap_or(0);
        let exchange_cost_ns = exchange_cost_ns(config.max_rate);
        let ring_bytes = match config.ring_bytes {
            0 => ring_bytes_for(config.max_rate),
            n => n.max(1 << 20).next_power_of_two(),
        };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("events", ring_bytes)
            .override_global("ring_bytes", &ring_bytes, true)
            .override_global("watch_all", &watch_all, true)
            .override_global("self_tgid", &self_tgid, true)
            .override_global("capture_bytes", &capture, true)
            .override_global("opt_in", &opt_in, true)
            .override_global("allowed_count", &allowed_count, true)
            .override_global("exchange_cost_ns", &exchange_cost_ns, true)
            .override_global("tls_plaintext", &u32::from(config.tls_plaintext), true)
            .load(OBJECT)
            .map_err(ProbeError::from_load)?;
        // The allowed list is in place before the exec program can run.
        {
            let map = ebpf
                .map_mut("allowed_profiles")
                .ok_or(ProbeError::Missing("allowed_profiles"))?;
            let mut array: aya::maps::Array<&mut MapData, RawProfile> =
                aya::maps::Array::try_from(map).map_err(|source| ProbeError::Map {
                    name: "allowed_profiles",
                    source,
                })?;
            for (i, p) in (0u32..).zip(allowed) {
                array.set(i, p, 0).map_err(|source| ProbeError::Map {
                    name: "allowed_profiles",
                    source,
                })?;
            }
        }
        let btf = aya::Btf::from_sys_fs().map_err(|_| ProbeError::NoBtf)?;
        for program in PROGRAMS {
            program.attach(&mut ebpf, &btf)?;
        }
        let attached = PROGRAMS.len();
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(ProbeError::Missing(name))
        };
        let map_err = |name: &'static str| move |source| ProbeError::Map { name, source };
        let watched =
            BpfHashMap::try_from(take(&mut ebpf, "watched")?).map_err(map_err("watched"))?;
        let conns = BpfHashMap::try_from(take(&mut ebpf, "conns")?).map_err(map_err("conns"))?;
        let stats = PerCpuArray::try_from(take(&mut ebpf, "stats")?).map_err(map_err("stats"))?;
        let ring = RingBuf::try_from(take(&mut ebpf, "events")?).map_err(map_err("events"))?;
        let stream = EventStream::new(ring)?;
        Ok((
            Self {
                ebpf,
                watched,
                conns,
                stats,
                attached,
                notes: prepared.notes,
                tls: crate::tls::TlsState::default(),
            },
            stream,
        ))
    }

    /// What loading set up on the host that the user should hear about, one line each
    /// (e.g. that tracefs was mounted).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Number of attached tracepoints.
    pub fn attached(&self) -> usize {
        self.attached
    }

    /// Starts tracing process `tgid` (no effect with `watch_all`).
    ///
    /// # Errors
    ///
    /// [`ProbeError::Map`] when the map is full.
    pub fn watch(&mut self, tgid: u32) -> Result<(), ProbeError> {
        self.watched
            .insert(tgid, 1, 0)
            .map_err(|source| ProbeError::Map {
                name: "watched",
                source,
            })
    }

    /// Stops tracing process `tgid`.
    pub fn unwatch(&mut self, tgid: u32) {
        // Absent keys are fine: the process may never have been watched.
        let _ = self.watched.remove(&tgid);
    }

    /// Tells the kernel what user space decided about one connection: its role (which the
    /// kernel cannot know for a connection opened before adi started, and without which it
    /// never samples the connection) and, with `cap`, its per-message payload cap (0 = the
    /// default: after a connection is classified as a non-HTTP protocol only its first bytes
    /// per message need to reach user space). The kernel's own state of the entry is kept.
    /// `ports` are the connection's (local, remote) ports as user space knows them: a kernel
    /// socket's address is reused as soon as it is freed, and an entry with other ports (or
    /// none yet) is another connection's, left alone.
    pub fn set_connection(
        &mut self,
        sock: u64,
        ports: (u16, u16),
        role: KernelRole,
        cap: Option<u32>,
    ) {
        /// `BPF_EXIST`: update only, so a connection closed meanwhile is not brought back.
        const BPF_EXIST: u64 = 2;
        let Ok(mut conn) = self.conns.get(&sock, 0) else {
            return;
        };
        if conn.ports() != ports {
            return;
        }
        conn.role = role.wire();
        if let Some(cap) = cap {
            conn.cap = cap;
        }
        let _ = self.conns.insert(sock, conn, BPF_EXIST);
    }

    /// The kernel's counters, summed over CPUs.
    pub fn kernel_stats(&self) -> KernelStats {
        let sum = |i: u32| self.stats.get(&i, 0).map_or(0, |v| v.iter().sum::<u64>());
        KernelStats {
            ringbuf_full: sum(0),
            truncated: sum(1),
            read_failed: sum(2),
            events: sum(3),
            sampled: sum(7),
            watch_full: sum(5),
            env_unread: sum(6),
            tls_ciphertext: sum(8),
            tls_untied: sum(9),
            tls_nested: sum(10),
        }
    }

    /// Detaches and unloads every program: no new events are produced, while the maps (and
    /// the ring buffer of the [`EventStream`]) stay readable, so what is already queued can
    /// be drained and the counters read. Used at shutdown.
    pub fn detach(&mut self) {
        for (_, program) in self.ebpf.programs_mut() {
            // A program that was never attached has nothing to unload.
            match program {
                aya::programs::Program::TracePoint(tp) => {
                    let _ = tp.unload();
                }
                aya::programs::Program::RawTracePoint(tp) => {
                    let _ = tp.unload();
                }
                aya::programs::Program::UProbe(p) => {
                    let _ = p.unload();
                }
                _ => {}
            }
        }
        self.attached = 0;
    }

    /// The loaded object (for tests and diagnostics).
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    pub(crate) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// How one of adi's programs attaches.
#[derive(Clone, Copy, Debug)]
pub enum AttachKind {
    /// A BTF-typed raw tracepoint (`tp_btf`): arguments typed by the kernel's BTF.
    BtfTracePoint,
    /// A raw tracepoint.
    RawTracePoint,
    /// A classic tracepoint of this category (needs tracefs for its id).
    TracePoint(&'static str),
}

/// One program of the object and where it attaches.
#[derive(Clone, Copy, Debug)]
pub struct ProgramSpec {
    /// The program's name in the object.
    pub name: &'static str,
    /// Its program type.
    pub kind: AttachKind,
    /// The tracepoint.
    pub tracepoint: &'static str,
}

/// Every program of the object, in attach order:
/// - socket reads and writes and TCP state changes (no syscall is traced);
/// - children of watched processes watched too (forking servers; raw, for the child's
///   task, so threads are told apart);
/// - an exec re-decides the opt-in, and an exiting process is forgotten.
pub const PROGRAMS: [ProgramSpec; 6] = [
    ProgramSpec::btf("adi_sock_send", "sock_send_length"),
    ProgramSpec::btf("adi_sock_recv", "sock_recv_length"),
    ProgramSpec::btf("adi_sock_state", "inet_sock_set_state"),
    ProgramSpec {
        name: "adi_sched_fork",
        kind: AttachKind::RawTracePoint,
        tracepoint: "sched_process_fork",
    },
    ProgramSpec::sched("adi_sched_exec", "sched_process_exec"),
    ProgramSpec::sched("adi_sched_exit", "sched_process_exit"),
];

impl ProgramSpec {
    const fn btf(name: &'static str, tracepoint: &'static str) -> Self {
        Self {
            name,
            kind: AttachKind::BtfTracePoint,
            tracepoint,
        }
    }

    const fn sched(name: &'static str, tracepoint: &'static str) -> Self {
        Self {
            name,
            kind: AttachKind::TracePoint("sched"),
            tracepoint,
        }
    }

    /// Loads the program (the verifier runs) and attaches it.
    fn attach(&self, ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<(), ProbeError> {
        match self.kind {
            AttachKind::BtfTracePoint => attach_btf(ebpf, btf, self.name, self.tracepoint),
            AttachKind::RawTracePoint => attach_raw(ebpf, self.name, self.tracepoint),
            AttachKind::TracePoint(category) => attach(ebpf, category, self.name, self.tracepoint),
        }
    }

    /// What `adi doctor` calls it: `tp_btf/sock_send_length`.
    pub fn describe(&self) -> String {
        match self.kind {
            AttachKind::BtfTracePoint => format!("tp_btf/{}", self.tracepoint),
            AttachKind::RawTracePoint => format!("raw_tracepoint/{}", self.tracepoint),
            AttachKind::TracePoint(c) => format!("tracepoint/{c}/{}", self.tracepoint),
        }
    }
}

/// One program of [`PROGRAMS`] and whether it loaded and attached.
pub type ProgramCheck = (ProgramSpec, Result<(), ProbeError>);

/// Loads the object as live capture does, but watching nothing, and attaches each program in
/// turn; everything is detached and unloaded on return. For `adi doctor`: the maps' result,
/// then one result per program of [`PROGRAMS`]. Call [`crate::host::prepare`] first.
///
/// # Errors
///
/// When the object cannot be loaded at all (a map cannot be created, no BTF).
pub fn check_programs() -> Result<Vec<ProgramCheck>, ProbeError> {
    let mut ebpf = EbpfLoader::new()
        .override_global("self_tgid", &std::process::id(), true)
        .load(OBJECT)
        .map_err(ProbeError::from_load)?;
    let btf = aya::Btf::from_sys_fs().map_err(|_| ProbeError::NoBtf)?;
    Ok(PROGRAMS
        .iter()
        .map(|p| (*p, p.attach(&mut ebpf, &btf)))
        .collect())
}

/// Loads the object as live capture does and loads (the verifier runs) its TLS library
/// uprobe programs, attaching nothing; everything is unloaded on return. For `adi doctor`:
/// how many programs loaded.
///
/// # Errors
///
/// When the object or one of the programs cannot be loaded.
pub fn check_tls_programs() -> Result<usize, ProbeError> {
    let mut ebpf = EbpfLoader::new()
        .override_global("self_tgid", &std::process::id(), true)
        .override_global("tls_plaintext", &1u32, true)
        .load(OBJECT)
        .map_err(ProbeError::from_load)?;
    let mut loaded = 0;
    for name in crate::tls::programs() {
        let program: &mut aya::programs::UProbe = typed_program(&mut ebpf, name)?;
        program
            .load()
            .map_err(program_error(name, "loading".into()))?;
        loaded += 1;
    }
    Ok(loaded)
}

/// The maps of the object with their types, as loaded (`adi doctor`).
///
/// # Errors
///
/// When the object cannot be loaded.
pub fn check_maps() -> Result<Vec<(String, String)>, ProbeError> {
    let ebpf = EbpfLoader::new()
        .load(OBJECT)
        .map_err(ProbeError::from_load)?;
    // `.rodata` and friends hold the object's globals, not maps of adi's design.
    let mut maps: Vec<(String, String)> = ebpf
        .maps()
        .filter(|(name, _)| !name.starts_with('.'))
        .map(|(name, map)| (name.to_owned(), map_type_name(map).to_owned()))
        .collect();
    maps.sort();
    Ok(maps)
}

/// A loaded map's type as the kernel names it.
pub(crate) fn map_type_name(map: &aya::maps::Map) -> &'static str {
    use aya::maps::Map;
    match map {
        Map::HashMap(_) => "hash",
        Map::LruHashMap(_) => "lru_hash",
        Map::Array(_) => "array",
        Map::PerCpuArray(_) => "percpu_array",
        Map::RingBuf(_) => "ringbuf",
        Map::PerCpuHashMap(_) => "percpu_hash",
        _ => "other",
    }
}

/// Turns an aya program error into a [`ProbeError::Program`] naming the program and the step.
pub(crate) fn program_error(
    program: &str,
    what: String,
) -> impl FnOnce(aya::programs::ProgramError) -> ProbeError + '_ {
    move |source| ProbeError::Program {
        program: program.to_owned(),
        what,
        source: Box::new(source),
    }
}

/// The program `program` of the object, as the program type `T` it must be.
pub(crate) fn typed_program<'a, T>(
    ebpf: &'a mut Ebpf,
    program: &str,
) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(program)
        .ok_or(ProbeError::Missing("program"))?
        .try_into()
        .map_err(program_error(program, "typing".into()))
}

/// Loads `program` and attaches it to the tracepoint `category:tracepoint`.
fn attach(
    ebpf: &mut Ebpf,
    category: &str,
    program: &str,
    tracepoint: &str,
) -> Result<(), ProbeError> {
    let prog: &mut TracePoint = typed_program(ebpf, program)?;
    prog.load()
        .map_err(program_error(program, "loading".into()))?;
    prog.attach(category, tracepoint)
        .map_err(program_error(program, format!("attaching to {tracepoint}")))?;
    Ok(())
}

/// Loads `program` and attaches it to the BTF-typed raw tracepoint `tracepoint` (its
/// arguments typed by the kernel's BTF, so the program reads through them with plain loads).
fn attach_btf(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    program: &str,
    tracepoint: &str,
) -> Result<(), ProbeError> {
    let prog: &mut BtfTracePoint = typed_program(ebpf, program)?;
    prog.load(tracepoint, btf)
        .map_err(program_error(program, "loading".into()))?;
    prog.attach()
        .map_err(program_error(program, format!("attaching to {tracepoint}")))?;
    Ok(())
}

/// Loads `program` and attaches it to the raw tracepoint `tracepoint`.
fn attach_raw(ebpf: &mut Ebpf, program: &str, tracepoint: &str) -> Result<(), ProbeError> {
    let prog: &mut RawTracePoint = typed_program(ebpf, program)?;
    prog.load()
        .map_err(program_error(program, "loading".into()))?;
    prog.attach(tracepoint)
        .map_err(program_error(program, format!("attaching to {tracepoint}")))?;
    Ok(())
}

/// How often the ring buffer is read when the kernel has not woken the reader: the latency
/// of an event at low rates.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The ring buffer, read asynchronously.
pub struct EventStream {
    ring: AsyncFd<RingBuf<MapData>>,
    /// Records that did not decode (counted, never silently dropped).
    pub decode_errors: u64,
    /// The event every record's header is decoded into, in turn
    /// ([`EventStream::drain_each`]): its comm buffer is reused and the payload stays in the
    /// ring buffer, so nothing is allocated or copied per message.
    current: RawEvent,
    /// The last drain read records: more may be there already, so the next wait does not.
    busy: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("fd", &self.ring.get_ref().as_raw_fd())
            .field("decode_errors", &self.decode_errors)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    fn new(ring: RingBuf<MapData>) -> Result<Self, ProbeError> {
        // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, until it is
        // dropped, which happens only when this AsyncFd is dropped.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| ProbeError::Poll(io::Error::other(e.to_string())))?;
        Ok(Self {
            ring,
            decode_errors: 0,
            current: RawEvent::blank(),
            busy: false,
        })
    }

    /// Waits until records may be available: at once when the last drain read some (under
    /// load the ring buffer is never empty), else until the kernel wakes the reader or
    /// `POLL_EVERY` (100 ms) passes.
    ///
    /// # Errors
    ///
    /// An I/O error from polling the ring buffer's fd.
    pub async fn wait(&mut self) -> io::Result<()> {
        if self.busy {
            return Ok(());
        }
        // The kernel wakes the reader only once a batch is pending (a wakeup per event
        // would cost the traced processes more than the copy): poll for the rest.
        tokio::select! {
            ready = self.ring.readable_mut() => ready?.clear_ready(),
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        Ok(())
    }

    /// Hands each available record (at most `max`) to `each` as it is read: its header
    /// decoded into one reused event (whose `payload` stays empty) and its payload borrowed
    /// from the ring buffer, where the kernel wrote it. A record is parsed while its bytes
    /// are still in cache, rather than copied out with thousands of others first. Records
    /// that fail to decode are counted in `decode_errors`. Returns how many records were read.
    pub fn drain_each(&mut self, max: usize, mut each: impl FnMut(&RawEvent, &[u8])) -> usize {
        let ring = self.ring.get_mut();
        let mut got = 0;
        while got < max {
            let Some(item) = ring.next() else { break };
            match self.current.decode_header(&item) {
                // The record's slot goes back to the kernel only after the event is handled
                // (the item is dropped at the end of the iteration).
                Ok(payload) => each(&self.current, payload),
                Err(_) => self.decode_errors += 1,
            }
            got += 1;
        }
        self.busy = got > 0;
        got
    }
}
