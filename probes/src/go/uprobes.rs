//! The Go HTTP uprobes (`probes/bpf/go_http.bpf.c`): every HTTP call a Go program makes
//! (`net/http.(*Client).do`) or serves (`net/http.serverHandler.ServeHTTP`), read from
//! `net/http`'s own structures, so HTTPS is seen in clear. The library API mirrors
//! httpwatcher's: create ([`GoHttpProbes::new`]), [`GoHttpProbes::attach`] a pid, read the
//! async stream of events ([`GoHttpStream::next`]), [`GoHttpProbes::close`].
//!
//! For each process attached, user space reads its executable (`/proc/PID/exe`): the Go
//! version (build info), the two functions (`.symtab`, or `.gopclntab` when stripped), their
//! RET instructions (x86-64 decoding), the field offsets (DWARF, else the built-in table by Go
//! version) and the header map layout (buckets or Swiss tables). The offsets go into a map
//! keyed by the pid, so one loaded object serves programs of every Go version at once. A
//! uprobe sits on each function's entry and on each of its RET instructions (never a
//! uretprobe: Go moves goroutine stacks), restricted to that pid.
//!
//! The kernel sends a REQUEST record at the entry and a RETURN record (status, duration) at the
//! RET; [`GoHttpStream`] pairs them by goroutine and stack frame into one
//! [`GoHttpEvent`] per call. A call whose return is never seen (the handler panicked, the
//! program exited) comes out without status and duration when the same goroutine frame starts
//! a new call, or from [`GoHttpStream::take_unfinished`].
//!
//! # What the probes see
//! The request as the caller built it when `Client.do` starts: the transport adds headers
//! later (`Host` from `URL.Host`, `User-Agent`, `Accept-Encoding: gzip`, `Content-Length`,
//! `Connection`), so they are not in the event. One event per `Client.do` call, however
//! many redirects it follows: the URL is the first request's, the status the final
//! response's. On the server side, the request as `net/http` parsed it (the `Host` header
//! is `Request.Host`, so it shows in the URL, not in the headers).

use std::collections::HashMap;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use adi_core::event::{GoHttpEvent, GoHttpSide, Headers};
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use tokio::io::unix::AsyncFd;

use super::offsets::{self, MapLayout, Offsets, OffsetsSource};
use super::symbols::{self, Function, SymbolSource};
use super::{GoBinary, GoError};
use crate::live::ProbeError;

/// The compiled BPF object, committed next to its source (`cargo xtask bpf go_http`).
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../bpf/go_http.bpf.o");

/// The client function probed: `Client.do(c, req)`, req in RBX.
pub const CLIENT_DO: &str = "net/http.(*Client).do";
/// The server function probed: `serverHandler.ServeHTTP(sh, rw, req)`, req in RDI.
pub const SERVE_HTTP: &str = "net/http.serverHandler.ServeHTTP";
/// The first method of `*http.response`'s `ResponseWriter` itab (HTTP/1 writers).
const HTTP1_HEADER: &str = "net/http.(*response).Header";
/// The same for HTTP/2 writers, up to Go 1.26 (the bundled `http2` package) ...
const H2_HEADER_BUNDLED: &str = "net/http.(*http2responseWriter).Header";
/// ... and from Go 1.27 (`net/http/internal/http2`).
const H2_HEADER_INTERNAL: &str = "net/http/internal/http2.(*responseWriter).Header";

/// How often the ring buffer is read when the kernel has not woken the reader.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Most calls waiting for their return in user space; beyond it the oldest come out
/// unfinished.
const MAX_PENDING: usize = 65_536;

/// `struct go_http_hdr` (`probes/bpf/go_http_events.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawGoHttpHdr {
    /// `GO_HTTP_EV_*`: 1 request, 2 return.
    pub kind: u32,
    /// `GO_HTTP_SIDE_*`: 1 client, 2 server.
    pub side: u32,
    /// Process id.
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// The call's `runtime.g`.
    pub goroutine: u64,
    /// `g.stack.hi - SP`: the call's frame.
    pub frame: u64,
    /// Return: nanoseconds since the entry.
    pub duration_ns: u64,
    /// Return: the status code, 0 when unknown.
    pub status: i64,
    /// `GO_HTTP_FL_*`.
    pub flags: u32,
    /// Request: bytes of strings following.
    pub data_len: u32,
}
const _: () = assert!(size_of::<RawGoHttpHdr>() == 64);
const _: () = assert!(std::mem::offset_of!(RawGoHttpHdr, status) == 48);

/// `struct go_http_config`: where one process's binary keeps the fields read (see the C
/// header for each field).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[expect(
    missing_docs,
    reason = "one field per struct field of the C header, named alike"
)]
pub struct RawGoHttpConfig {
    pub req_method: u64,
    pub req_url: u64,
    pub req_header: u64,
    pub req_host: u64,
    pub req_tls: u64,
    pub url_scheme: u64,
    pub url_host: u64,
    pub url_path: u64,
    pub url_raw_query: u64,
    pub resp_status_code: u64,
    pub http1_header_fn: u64,
    pub http1_status: u64,
    pub h2_header_fn: u64,
    pub h2_rws: u64,
    pub h2_status: u64,
    pub g_stack_hi: u64,
    pub swiss: u64,
    pub hmap_flags: u64,
    pub hmap_b: u64,
    pub hmap_buckets: u64,
    pub hmap_oldbuckets: u64,
    pub bucket_keys: u64,
    pub bucket_elems: u64,
    pub bucket_overflow: u64,
    pub bucket_size: u64,
    pub map_dir_ptr: u64,
    pub map_dir_len: u64,
    pub table_groups_data: u64,
    pub table_groups_mask: u64,
    pub group_slots: u64,
    pub slot_size: u64,
    pub slot_elem: u64,
    pub group_size: u64,
}
const _: () = assert!(size_of::<RawGoHttpConfig>() == 33 * 8);

// SAFETY: a plain `repr(C)` struct of u64s, without padding (size pinned above), so every bit
// pattern is a valid value.
unsafe impl aya::Pod for RawGoHttpConfig {}

const EV_REQUEST: u32 = 1;
const EV_RETURN: u32 = 2;
const SIDE_CLIENT: u32 = 1;
const SIDE_SERVER: u32 = 2;
const F_METHOD: u16 = 1;
const F_SCHEME: u16 = 2;
const F_URL_HOST: u16 = 3;
const F_PATH: u16 = 4;
const F_QUERY: u16 = 5;
const F_HOST: u16 = 6;
const F_HDR_NAME: u16 = 7;
const F_HDR_VALUE: u16 = 8;
const F_TRUNCATED: u16 = 0x8000;
const FL_HEADERS_CUT: u32 = 1;
const FL_TLS: u32 = 2;
const FL_NO_RESPONSE: u32 = 8;
const FL_NO_STATUS: u32 = 16;
/// `GO_HTTP_MAX_DATA`.
const MAX_DATA: usize = 8192;

/// Attaching or loading the Go uprobes failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoProbeError {
    /// Loading the object or a map failed (privileges, the verifier's log, ...).
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The process's executable could not be read as a Go binary.
    #[error("process {pid}: {source}")]
    Inspect {
        /// The process.
        pid: u32,
        /// Why.
        #[source]
        source: GoError,
    },
    /// The program has neither `net/http.(*Client).do` nor `serverHandler.ServeHTTP`.
    #[error("process {pid} is a Go program without net/http client or server")]
    NoHttp {
        /// The process.
        pid: u32,
    },
    /// A field offset is known neither from DWARF nor from the table.
    #[error("process {pid} ({go_version}): no offset for {field}")]
    MissingOffset {
        /// The process.
        pid: u32,
        /// Its Go version.
        go_version: String,
        /// The field (`net/url.URL.RawQuery`).
        field: String,
    },
    /// Attaching a uprobe failed.
    #[error("attaching {program} to {what} of process {pid}: {source}")]
    Attach {
        /// The process.
        pid: u32,
        /// The program.
        program: &'static str,
        /// The function and offset.
        what: String,
        /// Why.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
}

/// One probed function of a target: where its entry and RET instructions are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbedFunction {
    /// The function (name, address, size, and where the symbol came from).
    pub function: Function,
    /// File offset of its entry.
    pub file_offset: u64,
    /// Offset from the entry where the entry probe goes: past the stack-bound check
    /// ([`super::ret_sites::after_stack_check`]), which a call that grows its stack runs twice.
    pub body_offset: u64,
    /// Offsets of its RET instructions from the entry.
    pub ret_offsets: Vec<u64>,
}

/// What [`inspect`] found in a Go program: everything needed to attach the uprobes.
#[derive(Clone, Debug)]
pub struct GoHttpTarget {
    /// The executable (`/proc/PID/exe` for a process).
    pub path: PathBuf,
    /// The Go version recorded in the binary (`go1.23.9`).
    pub go_version: String,
    /// `net/http.(*Client).do`, when linked.
    pub client: Option<ProbedFunction>,
    /// `net/http.serverHandler.ServeHTTP`, when linked.
    pub server: Option<ProbedFunction>,
    /// Where the offsets came from.
    pub offsets_source: OffsetsSource,
    /// The configuration the kernel side gets (runtime addresses already relocated).
    pub config: RawGoHttpConfig,
}

/// Reads a Go program: version, functions, RET sites, offsets, header map layout. `pid`
/// (when given) relocates runtime addresses of position-independent executables through
/// `/proc/PID/maps`; errors name it.
///
/// # Errors
/// [`GoProbeError::Inspect`] when the file is not a readable Go ELF binary (or is not x86-64);
/// [`GoProbeError::NoHttp`] without either function; [`GoProbeError::MissingOffset`] when a
/// field's offset is unknown (a stripped binary of a Go version newer than the table).
pub fn inspect(path: impl Into<PathBuf>, pid: Option<u32>) -> Result<GoHttpTarget, GoProbeError> {
    let path = path.into();
    let id = pid.unwrap_or(0);
    let inspect_err = |source| GoProbeError::Inspect { pid: id, source };
    let bin = GoBinary::open(&path).map_err(inspect_err)?;
    if bin.machine() != object::elf::EM_X86_64 || !bin.is_64() {
        return Err(inspect_err(GoError::Unsupported {
            reason: "the Go uprobes read amd64 registers: x86-64 only",
        }));
    }
    let info = bin.build_info().map_err(inspect_err)?;
    let names = [
        CLIENT_DO,
        SERVE_HTTP,
        HTTP1_HEADER,
        H2_HEADER_BUNDLED,
        H2_HEADER_INTERNAL,
    ];
    let found = symbols::lookup(&bin, &names).map_err(inspect_err)?;
    let probed = |f: &Option<Function>| -> Result<Option<ProbedFunction>, GoProbeError> {
        let Some(f) = f else { return Ok(None) };
        let file_offset = bin.vaddr_to_file_offset(f.addr).map_err(inspect_err)?;
        let ret_offsets = bin.ret_offsets(f).map_err(inspect_err)?;
        let code = bin.function_code(f).map_err(inspect_err)?;
        Ok(Some(ProbedFunction {
            function: f.clone(),
            file_offset,
            body_offset: super::ret_sites::after_stack_check(code),
            ret_offsets,
        }))
    };
    let client = probed(&found[0])?;
    let server = probed(&found[1])?;
    if client.is_none() && server.is_none() {
        return Err(GoProbeError::NoHttp { pid: id });
    }
    let (offsets, offsets_source) = offsets::for_binary(&bin, &info).map_err(inspect_err)?;
    let bias = load_bias(&bin, pid).map_err(inspect_err)?;
    let runtime = |f: &Option<Function>| f.as_ref().map_or(0, |f| f.addr.wrapping_add(bias));
    let writers = Writers {
        http1: runtime(&found[2]),
        h2_bundled: runtime(&found[3]),
        h2_internal: runtime(&found[4]),
    };
    let config = config_for(
        id,
        &info,
        &offsets,
        client.is_some(),
        server.is_some(),
        &writers,
    )?;
    Ok(GoHttpTarget {
        path,
        go_version: info.go_version,
        client,
        server,
        offsets_source,
        config,
    })
}

/// Runtime addresses of the `Header` methods that tell `ResponseWriter`s apart (0: absent).
struct Writers {
    http1: u64,
    h2_bundled: u64,
    h2_internal: u64,
}

/// The kernel's configuration for a binary of `info`'s version with `offsets`.
fn config_for(
    pid: u32,
    info: &super::BuildInfo,
    offsets: &Offsets,
    client: bool,
    server: bool,
    writers: &Writers,
) -> Result<RawGoHttpConfig, GoProbeError> {
    let get = |key: &str| -> Result<u64, GoProbeError> {
        offsets
            .fields
            .get(key)
            .copied()
            .ok_or_else(|| GoProbeError::MissingOffset {
                pid,
                go_version: info.go_version.clone(),
                field: key.to_owned(),
            })
    };
    let opt = |key: &str| offsets.fields.get(key).copied().unwrap_or(0);
    let layout = MapLayout::http_header(info);
    let mut config = RawGoHttpConfig {
        req_method: get("net/http.Request.Method")?,
        req_url: get("net/http.Request.URL")?,
        req_header: get("net/http.Request.Header")?,
        req_host: get("net/http.Request.Host")?,
        req_tls: get("net/http.Request.TLS")?,
        url_scheme: get("net/url.URL.Scheme")?,
        url_host: get("net/url.URL.Host")?,
        url_path: get("net/url.URL.Path")?,
        url_raw_query: get("net/url.URL.RawQuery")?,
        resp_status_code: if client {
            get("net/http.Response.StatusCode")?
        } else {
            0
        },
        g_stack_hi: get("runtime.g.stack")? + get("runtime.stack.hi")?,
        ..RawGoHttpConfig::default()
    };
    if server {
        config.http1_header_fn = writers.http1;
        config.http1_status = get("net/http.response.status")?;
        let (h2_fn, rws, status) = if writers.h2_bundled != 0 {
            (
                writers.h2_bundled,
                "net/http.http2responseWriter.rws",
                "net/http.http2responseWriterState.status",
            )
        } else {
            (
                writers.h2_internal,
                "net/http/internal/http2.responseWriter.rws",
                "net/http/internal/http2.responseWriterState.status",
            )
        };
        // HTTP/2 status is best effort: without its offsets it is reported as unknown.
        if offsets.fields.contains_key(status) {
            config.h2_header_fn = h2_fn;
            config.h2_rws = opt(rws);
            config.h2_status = opt(status);
        }
    }
    map_config(&mut config, layout, &get)?;
    Ok(config)
}

/// The header map part of the configuration.
fn map_config(
    config: &mut RawGoHttpConfig,
    layout: MapLayout,
    get: &dyn Fn(&str) -> Result<u64, GoProbeError>,
) -> Result<(), GoProbeError> {
    match layout {
        MapLayout::Buckets {
            keys,
            elems,
            overflow,
            size,
        } => {
            config.hmap_flags = get("runtime.hmap.flags")?;
            config.hmap_b = get("runtime.hmap.B")?;
            config.hmap_buckets = get("runtime.hmap.buckets")?;
            config.hmap_oldbuckets = get("runtime.hmap.oldbuckets")?;
            config.bucket_keys = keys;
            config.bucket_elems = elems;
            config.bucket_overflow = overflow;
            config.bucket_size = size;
        }
        MapLayout::Swiss {
            slots,
            slot_size,
            elem,
            size,
        } => {
            config.swiss = 1;
            config.map_dir_ptr = get("internal/runtime/maps.Map.dirPtr")?;
            config.map_dir_len = get("internal/runtime/maps.Map.dirLen")?;
            config.table_groups_data = get("internal/runtime/maps.table.groups")?
                + get("internal/runtime/maps.groupsReference.data")?;
            config.table_groups_mask = get("internal/runtime/maps.table.groups")?
                + get("internal/runtime/maps.groupsReference.lengthMask")?;
            config.group_slots = slots;
            config.slot_size = slot_size;
            config.slot_elem = elem;
            config.group_size = size;
        }
    }
    Ok(())
}

/// The offsets known for a binary (exposed for tests and diagnostics).
///
/// # Errors
/// As [`offsets::for_binary`].
pub fn offsets_of(bin: &GoBinary) -> Result<(Offsets, OffsetsSource), GoError> {
    offsets::for_binary(bin, &bin.build_info()?)
}

/// How far a position-independent executable was loaded from its link addresses (0 for
/// `ET_EXEC`, Go's default on linux/amd64).
fn load_bias(bin: &GoBinary, pid: Option<u32>) -> Result<u64, GoError> {
    let e_type = bin.read_at("ELF header", 16, 2)?;
    if u16::from_le_bytes([e_type[0], e_type[1]]) != object::elf::ET_DYN {
        return Ok(0);
    }
    let Some(pid) = pid else { return Ok(0) };
    let first = bin
        .segments()
        .iter()
        .filter(|s| s.offset == 0)
        .map(|s| s.vaddr & !0xfff)
        .min()
        .unwrap_or(0);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let maps_path = format!("/proc/{pid}/maps");
    let maps = std::fs::read_to_string(&maps_path).map_err(|source| GoError::Io {
        path: maps_path.into(),
        source,
    })?;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), _, Some(offset), _, _) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            continue;
        };
        let file = parts.next().map(std::path::Path::new);
        if offset.trim_start_matches('0').is_empty() && file.is_some() && file == exe.as_deref() {
            let start = range.split('-').next().unwrap_or("0");
            let start = u64::from_str_radix(start, 16).unwrap_or(0);
            return Ok(start.wrapping_sub(first));
        }
    }
    Ok(0)
}

/// Counters kept per CPU by the kernel side (`GO_HTTP_STAT_*`), summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoHttpStats {
    /// Records lost because the ring buffer was full.
    pub ringbuf_full: u64,
    /// Records submitted.
    pub records: u64,
    /// Entries not remembered because the calls map was full (their returns are lost).
    pub calls_full: u64,
    /// RETs without a remembered entry.
    pub no_entry: u64,
    /// Reads of process memory that failed.
    pub read_failed: u64,
    /// Requests whose headers were not all copied.
    pub headers_cut: u64,
}

/// What is attached to one process.
#[derive(Debug)]
struct Attachment {
    links: Vec<(&'static str, UProbeLinkId)>,
}

/// Per-process facts the stream adds to events.
#[derive(Clone, Debug)]
struct ProcessFacts {
    comm: Arc<str>,
    go_version: Arc<str>,
}

type Facts = Arc<Mutex<HashMap<u32, ProcessFacts>>>;

/// The Go HTTP uprobes, loaded. Attach processes with [`GoHttpProbes::attach`]; read events
/// from the [`GoHttpStream`] returned with it. Dropping this (or [`GoHttpProbes::close`])
/// detaches everything.
///
/// ```no_run
/// use adi_probes::go::uprobes::GoHttpProbes;
///
/// # async fn run(pid: u32) -> Result<(), Box<dyn std::error::Error>> {
/// let (mut probes, mut events) = GoHttpProbes::new()?;
/// let target = probes.attach(pid)?;
/// eprintln!("watching {pid}, built with {}", target.go_version);
/// for _ in 0..10 {
///     let event = events.next().await?;
///     println!("{:?} {} {} -> {:?}", event.side, event.method, event.url, event.status_code);
/// }
/// probes.close();
/// # Ok(())
/// # }
/// ```
pub struct GoHttpProbes {
    ebpf: Ebpf,
    config: BpfHashMap<MapData, u32, RawGoHttpConfig>,
    stats: PerCpuArray<MapData, u64>,
    attached: HashMap<u32, Attachment>,
    facts: Facts,
}

impl std::fmt::Debug for GoHttpProbes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoHttpProbes")
            .field("attached", &self.attached.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

const PROGRAMS: [&str; 4] = [
    "go_client_entry",
    "go_client_ret",
    "go_server_entry",
    "go_server_ret",
];

impl GoHttpProbes {
    /// Loads the BPF object and its four programs (nothing is attached yet). Returns the
    /// probes and the stream of their events.
    ///
    /// # Errors
    /// [`ProbeError`] (as [`GoProbeError::Probe`]) naming the missing privilege or the program
    /// the verifier rejected, with its log.
    pub fn new() -> Result<(Self, GoHttpStream), GoProbeError> {
        let caps = crate::host::Capabilities::current();
        if !caps.can_trace() {
            return Err(ProbeError::NotPrivileged {
                missing: caps.missing_for_tracing().join("+"),
            }
            .into());
        }
        let mut ebpf = EbpfLoader::new()
            .load(OBJECT)
            .map_err(ProbeError::from_load)?;
        for name in PROGRAMS {
            let program: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or(ProbeError::Missing("program"))?
                .try_into()
                .map_err(|source| program_error(name, "typing", source))?;
            program
                .load()
                .map_err(|source| program_error(name, "loading", source))?;
        }
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(ProbeError::Missing(name))
        };
        let map_err = |name: &'static str| move |source| ProbeError::Map { name, source };
        let config = BpfHashMap::try_from(take(&mut ebpf, "go_http_config")?)
            .map_err(map_err("go_http_config"))?;
        let stats = PerCpuArray::try_from(take(&mut ebpf, "go_http_stats")?)
            .map_err(map_err("go_http_stats"))?;
        let ring = RingBuf::try_from(take(&mut ebpf, "go_http_events")?)
            .map_err(map_err("go_http_events"))?;
        let facts = Facts::default();
        let stream = GoHttpStream::new(ring, facts.clone())?;
        Ok((
            Self {
                ebpf,
                config,
                stats,
                attached: HashMap::new(),
                facts,
            },
            stream,
        ))
    }

    /// Attaches the uprobes to process `pid`: reads its executable through `/proc/PID/exe`
    /// (deleted files and other mount namespaces work), puts its offsets in the kernel's
    /// config map, and attaches the entry and every RET of `Client.do` and
    /// `serverHandler.ServeHTTP` (those it has), by symbol when `.symtab` names them, else at
    /// their file offset, firing for this process only. Attaching a pid again first detaches
    /// it (a process that exec'd a new program).
    ///
    /// # Errors
    /// [`GoProbeError`]: not a Go program with `net/http`, offsets unknown, or an attach
    /// failed (then nothing stays attached to the pid).
    pub fn attach(&mut self, pid: u32) -> Result<GoHttpTarget, GoProbeError> {
        self.detach(pid);
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let target = inspect(&exe, Some(pid))?;
        self.config
            .insert(pid, target.config, 0)
            .map_err(|source| ProbeError::Map {
                name: "go_http_config",
                source,
            })?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if let Ok(mut facts) = self.facts.lock() {
            facts.insert(
                pid,
                ProcessFacts {
                    comm: Arc::from(comm.trim_end()),
                    go_version: Arc::from(target.go_version.as_str()),
                },
            );
        }
        let mut attachment = Attachment { links: Vec::new() };
        let result = self.attach_all(pid, &exe, &target, &mut attachment);
        self.attached.insert(pid, attachment);
        if let Err(e) = result {
            self.detach(pid);
            return Err(e);
        }
        Ok(target)
    }

    fn attach_all(
        &mut self,
        pid: u32,
        exe: &std::path::Path,
        target: &GoHttpTarget,
        attachment: &mut Attachment,
    ) -> Result<(), GoProbeError> {
        let scope = NonZeroU32::new(pid).map_or(UProbeScope::AllProcesses, UProbeScope::OneProcess);
        let sides = [
            (&target.client, "go_client_entry", "go_client_ret"),
            (&target.server, "go_server_entry", "go_server_ret"),
        ];
        for (probed, entry, ret) in sides {
            let Some(probed) = probed else { continue };
            let name = probed.function.name.as_str();
            let body = probed.body_offset;
            let location = if probed.function.source == SymbolSource::Symtab {
                UProbeAttachLocation::SymbolOffset(name, body)
            } else {
                UProbeAttachLocation::AbsoluteOffset(probed.file_offset + body)
            };
            let link = self.attach_one(pid, entry, location, exe, scope, || name.to_owned())?;
            attachment.links.push((entry, link));
            for &off in &probed.ret_offsets {
                let location = UProbeAttachLocation::AbsoluteOffset(probed.file_offset + off);
                let link = self.attach_one(pid, ret, location, exe, scope, || {
                    format!("{name}+{off:#x}")
                })?;
                attachment.links.push((ret, link));
            }
        }
        Ok(())
    }

    fn attach_one(
        &mut self,
        pid: u32,
        program: &'static str,
        location: UProbeAttachLocation<'_>,
        exe: &std::path::Path,
        scope: UProbeScope,
        what: impl Fn() -> String,
    ) -> Result<UProbeLinkId, GoProbeError> {
        let attach_err = |source| GoProbeError::Attach {
            pid,
            program,
            what: what(),
            source: Box::new(source),
        };
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(program)
            .ok_or(ProbeError::Missing("program"))?
            .try_into()
            .map_err(attach_err)?;
        prog.attach(location, exe, scope).map_err(attach_err)
    }

    /// Attaches one of the loaded uprobe programs to `symbol` of the ELF file `target`, for
    /// this process only, and detaches it at once: `adi doctor`'s proof that uprobes work
    /// here (use a function this process does not call, so the program never runs).
    ///
    /// # Errors
    /// [`GoProbeError::Attach`] with the kernel's answer.
    pub fn check_uprobe(
        &mut self,
        target: &std::path::Path,
        symbol: &str,
    ) -> Result<(), GoProbeError> {
        let program = PROGRAMS[0];
        let link = self.attach_one(
            std::process::id(),
            program,
            UProbeAttachLocation::Symbol(symbol),
            target,
            UProbeScope::CallingProcess,
            || format!("{symbol} in {}", target.display()),
        )?;
        if let Some(Ok(prog)) = self.ebpf.program_mut(program).map(<&mut UProbe>::try_from) {
            let _ = prog.detach(link);
        }
        Ok(())
    }

    /// Detaches the uprobes from process `pid` (no effect when not attached). Call it when the
    /// process exits or execs: a new program needs a new [`GoHttpProbes::attach`].
    pub fn detach(&mut self, pid: u32) {
        let Some(attachment) = self.attached.remove(&pid) else {
            return;
        };
        for (program, link) in attachment.links {
            if let Some(Ok(prog)) = self.ebpf.program_mut(program).map(<&mut UProbe>::try_from) {
                // The link may already be gone with the process: nothing left to undo.
                let _ = prog.detach(link);
            }
        }
        // Absent keys are fine: the config is only there while attached.
        let _ = self.config.remove(&pid);
    }

    /// The pids attached.
    pub fn attached(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.attached.keys().copied().collect();
        pids.sort_unstable();
        pids
    }

    /// Number of uprobes attached (entries and RETs, all processes).
    pub fn uprobe_count(&self) -> usize {
        self.attached.values().map(|a| a.links.len()).sum()
    }

    /// The kernel's counters, summed over CPUs.
    pub fn stats(&self) -> GoHttpStats {
        let sum = |i: u32| self.stats.get(&i, 0).map_or(0, |v| v.iter().sum::<u64>());
        GoHttpStats {
            ringbuf_full: sum(0),
            records: sum(1),
            calls_full: sum(2),
            no_entry: sum(3),
            read_failed: sum(4),
            headers_cut: sum(5),
        }
    }

    /// Detaches every uprobe and unloads the programs. The stream stays readable: drain it
    /// with [`GoHttpStream::try_next`] and [`GoHttpStream::take_unfinished`].
    pub fn close(mut self) {
        let pids: Vec<u32> = self.attached.keys().copied().collect();
        for pid in pids {
            self.detach(pid);
        }
    }
}

fn program_error(program: &str, what: &str, source: aya::programs::ProgramError) -> GoProbeError {
    ProbeError::Program {
        program: program.to_owned(),
        what: what.to_owned(),
        source: Box::new(source),
    }
    .into()
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads), measured once.
fn boot_offset_ns() -> u64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; both clocks always exist on Linux.
        unsafe { libc::clock_gettime(clock, &raw mut ts) };
        u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(ts.tv_nsec).unwrap_or(0)
    };
    let mono = read(libc::CLOCK_MONOTONIC);
    read(libc::CLOCK_REALTIME).saturating_sub(mono)
}

/// A decoding failure of a kernel record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GoHttpDecodeError {
    /// Shorter than its header says.
    #[error("record of {0} bytes is too short")]
    Short(usize),
    /// An unknown record kind.
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    /// An unknown side.
    #[error("unknown side {0}")]
    UnknownSide(u32),
}

/// A decoded kernel record.
#[derive(Clone, Debug, PartialEq)]
pub enum GoHttpRecord {
    /// The entry: the request.
    Request {
        /// The header.
        hdr: RawGoHttpHdr,
        /// The strings: (tag without the truncation bit, truncated, bytes).
        fields: Vec<(u16, bool, Vec<u8>)>,
    },
    /// A return: status and duration in the header.
    Return(RawGoHttpHdr),
}

impl GoHttpRecord {
    /// Decodes one ring buffer record, checking every length.
    ///
    /// # Errors
    /// [`GoHttpDecodeError`] for short records and unknown kinds.
    pub fn decode(buf: &[u8]) -> Result<Self, GoHttpDecodeError> {
        const HDR: usize = size_of::<RawGoHttpHdr>();
        let head = buf.get(..HDR).ok_or(GoHttpDecodeError::Short(buf.len()))?;
        let u32_at =
            |o: usize| u32::from_ne_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[o..o + 8]);
            u64::from_ne_bytes(b)
        };
        let hdr = RawGoHttpHdr {
            kind: u32_at(0),
            side: u32_at(4),
            tgid: u32_at(8),
            tid: u32_at(12),
            ts_ns: u64_at(16),
            goroutine: u64_at(24),
            frame: u64_at(32),
            duration_ns: u64_at(40),
            status: u64_at(48).cast_signed(),
            flags: u32_at(56),
            data_len: u32_at(60),
        };
        if hdr.side != SIDE_CLIENT && hdr.side != SIDE_SERVER {
            return Err(GoHttpDecodeError::UnknownSide(hdr.side));
        }
        match hdr.kind {
            EV_RETURN => Ok(Self::Return(hdr)),
            EV_REQUEST => {
                let len = (hdr.data_len as usize).min(MAX_DATA);
                let mut data = buf
                    .get(HDR..HDR + len)
                    .ok_or(GoHttpDecodeError::Short(buf.len()))?;
                let mut fields = Vec::new();
                while data.len() >= 4 {
                    let n = usize::from(u16::from_le_bytes([data[0], data[1]]));
                    let tag = u16::from_le_bytes([data[2], data[3]]);
                    let bytes = data
                        .get(4..4 + n)
                        .ok_or(GoHttpDecodeError::Short(buf.len()))?;
                    fields.push((tag & !F_TRUNCATED, tag & F_TRUNCATED != 0, bytes.to_vec()));
                    data = &data[4 + n..];
                }
                Ok(Self::Request { hdr, fields })
            }
            other => Err(GoHttpDecodeError::UnknownKind(other)),
        }
    }
}

/// The pairing key of a call: (tgid, side, goroutine, frame).
type CallKey = (u32, u32, u64, u64);

/// A request waiting for its return.
#[derive(Debug)]
struct Pending {
    event: GoHttpEvent,
    ts_ns: u64,
}

/// The events of [`GoHttpProbes`], read asynchronously from the kernel ring buffer: one
/// [`GoHttpEvent`] per call, when its return is seen.
pub struct GoHttpStream {
    ring: AsyncFd<RingBuf<MapData>>,
    facts: Facts,
    boot_ns: u64,
    pending: HashMap<CallKey, Pending>,
    ready: std::collections::VecDeque<GoHttpEvent>,
    /// Records that did not decode (counted, never silently dropped).
    pub decode_errors: u64,
    /// Returns whose request record was not seen (lost in the ring buffer).
    pub unpaired_returns: u64,
}

impl std::fmt::Debug for GoHttpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoHttpStream")
            .field("fd", &self.ring.get_ref().as_raw_fd())
            .field("pending", &self.pending.len())
            .field("decode_errors", &self.decode_errors)
            .field("unpaired_returns", &self.unpaired_returns)
            .finish_non_exhaustive()
    }
}

impl GoHttpStream {
    fn new(ring: RingBuf<MapData>, facts: Facts) -> Result<Self, ProbeError> {
        // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, until it is
        // dropped, which happens only when this AsyncFd is dropped.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| ProbeError::Poll(io::Error::other(e.to_string())))?;
        Ok(Self {
            ring,
            facts,
            boot_ns: boot_offset_ns(),
            pending: HashMap::new(),
            ready: std::collections::VecDeque::new(),
            decode_errors: 0,
            unpaired_returns: 0,
        })
    }

    /// Waits for the next complete call. Cancel-safe: records are taken from the ring buffer
    /// only between awaits.
    ///
    /// # Errors
    /// An I/O error from polling the ring buffer's fd.
    pub async fn next(&mut self) -> io::Result<GoHttpEvent> {
        loop {
            if let Some(e) = self.try_next() {
                return Ok(e);
            }
            // The kernel wakes the reader only once a batch is pending (a wakeup per record
            // would cost the traced program more than the record): poll for the rest.
            tokio::select! {
                ready = self.ring.readable_mut() => ready?.clear_ready(),
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// The next complete call if one is already available, without waiting.
    pub fn try_next(&mut self) -> Option<GoHttpEvent> {
        while self.ready.is_empty() {
            let record = {
                let ring = self.ring.get_mut();
                let item = ring.next()?;
                GoHttpRecord::decode(&item)
            };
            self.take(record);
        }
        self.ready.pop_front()
    }

    /// Calls whose return was not seen (yet), as events without status and duration, oldest
    /// first; they are forgotten. For shutdown, after the ring buffer is drained.
    pub fn take_unfinished(&mut self) -> Vec<GoHttpEvent> {
        let mut all: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        all.sort_by_key(|p| p.ts_ns);
        all.into_iter().map(|p| p.event).collect()
    }

    /// Number of calls waiting for their return.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn take(&mut self, record: Result<GoHttpRecord, GoHttpDecodeError>) {
        match record {
            Err(_) => self.decode_errors += 1,
            Ok(GoHttpRecord::Request { hdr, fields }) => {
                let key = (hdr.tgid, hdr.side, hdr.goroutine, hdr.frame);
                let event = self.request_event(&hdr, fields);
                if let Some(old) = self.pending.insert(
                    key,
                    Pending {
                        event,
                        ts_ns: hdr.ts_ns,
                    },
                ) {
                    // Same goroutine frame: the earlier call never returned (a panic).
                    self.ready.push_back(old.event);
                }
                if self.pending.len() > MAX_PENDING {
                    self.evict_oldest();
                }
            }
            Ok(GoHttpRecord::Return(hdr)) => {
                let key = (hdr.tgid, hdr.side, hdr.goroutine, hdr.frame);
                let Some(mut p) = self.pending.remove(&key) else {
                    self.unpaired_returns += 1;
                    return;
                };
                p.event.status_code = status_code(&hdr);
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "durations are far below 2^52 ns"
                )]
                let ms = hdr.duration_ns as f64 / 1e6;
                p.event.duration_ms = Some(ms);
                self.ready.push_back(p.event);
            }
        }
    }

    fn evict_oldest(&mut self) {
        let mut keys: Vec<(u64, CallKey)> =
            self.pending.iter().map(|(k, p)| (p.ts_ns, *k)).collect();
        keys.sort_unstable();
        for (_, k) in keys.iter().take(MAX_PENDING / 8) {
            if let Some(p) = self.pending.remove(k) {
                self.ready.push_back(p.event);
            }
        }
    }

    fn request_event(&self, hdr: &RawGoHttpHdr, fields: Vec<(u16, bool, Vec<u8>)>) -> GoHttpEvent {
        let facts = self
            .facts
            .lock()
            .ok()
            .and_then(|f| f.get(&hdr.tgid).cloned())
            .unwrap_or_else(|| ProcessFacts {
                comm: Arc::from(""),
                go_version: Arc::from(""),
            });
        let side = match hdr.side {
            SIDE_SERVER => GoHttpSide::Server,
            _ => GoHttpSide::Client,
        };
        request_event(
            hdr,
            fields,
            side,
            facts,
            hdr.ts_ns.saturating_add(self.boot_ns),
        )
    }
}

fn status_code(hdr: &RawGoHttpHdr) -> Option<u16> {
    if hdr.flags & (FL_NO_RESPONSE | FL_NO_STATUS) != 0 {
        return None;
    }
    match (hdr.side, hdr.status) {
        // A handler that wrote nothing: net/http's finishRequest sends 200.
        (SIDE_SERVER, 0) => Some(200),
        (_, s) => u16::try_from(s).ok().filter(|s| (100..1000).contains(s)),
    }
}

fn request_event(
    hdr: &RawGoHttpHdr,
    fields: Vec<(u16, bool, Vec<u8>)>,
    side: GoHttpSide,
    facts: ProcessFacts,
    unix_ns: u64,
) -> GoHttpEvent {
    let text = |b: Vec<u8>| {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    };
    let mut method = String::new();
    let (mut scheme, mut url_host, mut path, mut query, mut host) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut name: Option<String> = None;
    let (mut cut_method, mut cut_url, mut cut_headers) =
        (false, false, hdr.flags & FL_HEADERS_CUT != 0);
    for (tag, truncated, bytes) in fields {
        match tag {
            F_METHOD => {
                method = text(bytes);
                cut_method |= truncated;
            }
            F_SCHEME | F_URL_HOST | F_PATH | F_QUERY | F_HOST => {
                let s = text(bytes);
                match tag {
                    F_SCHEME => scheme = s,
                    F_URL_HOST => url_host = s,
                    F_PATH => path = s,
                    F_QUERY => query = s,
                    _ => host = s,
                }
                cut_url |= truncated;
            }
            F_HDR_NAME => {
                name = Some(text(bytes));
                cut_headers |= truncated;
            }
            F_HDR_VALUE => {
                if let Some(n) = &name {
                    headers.push((n.clone(), text(bytes)));
                }
                cut_headers |= truncated;
            }
            _ => {}
        }
    }
    // Go keeps headers in a map: sort by name for a stable output, values in their order.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    if scheme.is_empty() {
        let tls = hdr.flags & FL_TLS != 0;
        scheme.push_str(if tls { "https" } else { "http" });
    }
    let host = if url_host.is_empty() { host } else { url_host };
    let mut url = format!("{scheme}://{host}{path}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    let mut truncated_fields = Vec::new();
    for (cut, what) in [
        (cut_method, "method"),
        (cut_url, "url"),
        (cut_headers, "headers"),
    ] {
        if cut {
            truncated_fields.push(what);
        }
    }
    GoHttpEvent {
        timestamp: adi_core::time::rfc3339_nanos(unix_ns),
        pid: hdr.tgid,
        comm: facts.comm,
        side,
        method,
        url,
        headers: Headers(headers),
        truncated: !truncated_fields.is_empty(),
        truncated_fields,
        status_code: None,
        duration_ms: None,
        go_version: facts.go_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u32, side: u32, flags: u32, status: i64, data: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        for v in [kind, side, 7, 8] {
            buf.extend_from_slice(&v.to_ne_bytes());
        }
        for v in [1_000u64, 0xc000_0001, 0x200, 5_000_000] {
            buf.extend_from_slice(&v.to_ne_bytes());
        }
        buf.extend_from_slice(&status.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&(data.len() as u32).to_ne_bytes());
        buf.extend_from_slice(data);
        buf
    }

    fn field(tag: u16, s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// The `go_http` event of a request record made of `fields` (tag, text), decoded as the
    /// stream decodes it, from a process `comm` running `go_version`.
    fn request_of(
        fields: &[(u16, &str)],
        side: GoHttpSide,
        flags: u32,
        comm: &str,
        go_version: &str,
    ) -> GoHttpEvent {
        let data: Vec<u8> = fields.iter().flat_map(|&(tag, s)| field(tag, s)).collect();
        let raw_side = match side {
            GoHttpSide::Client => SIDE_CLIENT,
            GoHttpSide::Server => SIDE_SERVER,
        };
        let buf = record(EV_REQUEST, raw_side, flags, 0, &data);
        let GoHttpRecord::Request { hdr, fields } = GoHttpRecord::decode(&buf).expect("decodes")
        else {
            panic!("not a request")
        };
        let facts = ProcessFacts {
            comm: Arc::from(comm),
            go_version: Arc::from(go_version),
        };
        request_event(&hdr, fields, side, facts, 5)
    }

    #[test]
    fn decodes_a_request_with_headers_and_cut_fields() {
        let e = request_of(
            &[
                (F_METHOD, "GET"),
                (F_SCHEME, "https"),
                (F_URL_HOST, "h:1"),
                (F_PATH, "/p"),
                (F_QUERY | F_TRUNCATED, "a=1"),
                (F_HOST, ""),
                (F_HDR_NAME, "X-Two"),
                (F_HDR_VALUE, "one"),
                (F_HDR_VALUE, "two"),
                (F_HDR_NAME, "Accept"),
                (F_HDR_VALUE, "*/*"),
            ],
            GoHttpSide::Client,
            0,
            "c",
            "go1.23.9",
        );
        assert_eq!(e.url, "https://h:1/p?a=1");
        assert_eq!(e.truncated_fields, vec!["url"]);
        assert_eq!(
            e.headers.0,
            vec![
                ("Accept".to_owned(), "*/*".to_owned()),
                ("X-Two".to_owned(), "one".to_owned()),
                ("X-Two".to_owned(), "two".to_owned()),
            ]
        );
    }

    #[test]
    fn server_url_from_host_and_tls_and_status_defaults() {
        let e = request_of(
            &[
                (F_METHOD, "POST"),
                (F_SCHEME, ""),
                (F_URL_HOST, ""),
                (F_PATH, "/x"),
                (F_QUERY, ""),
                (F_HOST, "example:8443"),
            ],
            GoHttpSide::Server,
            FL_TLS,
            "s",
            "go1.27.3",
        );
        assert_eq!(e.url, "https://example:8443/x");
        assert!(!e.truncated);
        let ret = |side, flags, status| RawGoHttpHdr {
            kind: EV_RETURN,
            side,
            flags,
            status,
            ..RawGoHttpHdr::default()
        };
        assert_eq!(status_code(&ret(SIDE_SERVER, 0, 0)), Some(200));
        assert_eq!(status_code(&ret(SIDE_SERVER, FL_NO_STATUS, 0)), None);
        assert_eq!(status_code(&ret(SIDE_CLIENT, FL_NO_RESPONSE, 0)), None);
        assert_eq!(status_code(&ret(SIDE_CLIENT, 0, 404)), Some(404));
        assert_eq!(status_code(&ret(SIDE_CLIENT, 0, 70_000)), None);
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert_eq!(
            GoHttpRecord::decode(&[0; 10]),
            Err(GoHttpDecodeError::Short(10))
        );
        let buf = record(9, SIDE_CLIENT, 0, 0, &[]);
        assert_eq!(
            GoHttpRecord::decode(&buf),
            Err(GoHttpDecodeError::UnknownKind(9))
        );
        // A string longer than the data that holds it.
        let mut buf = record(EV_REQUEST, SIDE_CLIENT, 0, 0, &field(F_METHOD, "GET"));
        let last = buf.len() - 1;
        buf.truncate(last);
        assert!(GoHttpRecord::decode(&buf).is_err());
    }
}
