//! What live capture needs from the host, checked and, where adi can, set up: capabilities,
//! kernel BTF, tracefs (mounted when missing, as other eBPF agents do), the memlock rlimit on
//! kernels that still charge BPF memory to it. [`prepare`] runs before every load; `adi
//! doctor` reports the same facts (see `docs/troubleshooting.md`).

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

/// Where the kernel's BTF lives; without it CO-RE relocation is impossible.
pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
/// The uprobe PMU: present when the kernel can create uprobes through `perf_event_open`.
pub const UPROBE_PMU: &str = "/sys/bus/event_source/devices/uprobe/type";
/// tracefs's usual mount point, then the older one under debugfs.
pub const TRACEFS_PATHS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
const DEBUGFS_PATH: &str = "/sys/kernel/debug";

/// A Linux capability adi may need (numbers from `linux/capability.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// Its number.
    pub bit: u32,
    /// Its name as `capsh` and `setcap` spell it.
    pub name: &'static str,
    /// What adi uses it for.
    pub why: &'static str,
}

/// Loading BPF programs and maps (Linux 5.8+; before it, CAP_SYS_ADMIN).
pub const CAP_BPF: Cap = Cap {
    bit: 39,
    name: "cap_bpf",
    why: "load BPF programs and maps",
};
/// Tracing programs, tracepoint and uprobe perf events.
pub const CAP_PERFMON: Cap = Cap {
    bit: 38,
    name: "cap_perfmon",
    why: "attach tracepoints and uprobes",
};
/// Reading other users' `/proc/PID/environ` and `/proc/PID/exe`.
pub const CAP_SYS_PTRACE: Cap = Cap {
    bit: 19,
    name: "cap_sys_ptrace",
    why: "read the environment and executable of other users' processes",
};
/// Mounting tracefs when it is missing (and, before Linux 5.8, everything BPF).
pub const CAP_SYS_ADMIN: Cap = Cap {
    bit: 21,
    name: "cap_sys_admin",
    why: "mount tracefs when it is not mounted",
};
/// Every capability `adi doctor` reports, most needed first.
pub const CAPS: [Cap; 4] = [CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_SYS_ADMIN];

/// The effective capability set of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// This process's effective set, from `/proc/self/status` (empty when unreadable).
    pub fn current() -> Self {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| Self::parse_status(&s))
            .unwrap_or(Self(0))
    }

    /// The `CapEff:` line of a `/proc/PID/status` text.
    pub fn parse_status(status: &str) -> Option<Self> {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))?
            .trim();
        u64::from_str_radix(hex, 16).ok().map(Self)
    }

    /// Whether `cap` is held.
    pub fn has(self, cap: Cap) -> bool {
        cap.bit < 64 && self.0 & (1 << cap.bit) != 0
    }

    /// Whether BPF programs can be loaded and attached: CAP_BPF and CAP_PERFMON, or
    /// CAP_SYS_ADMIN, which covers both.
    pub fn can_trace(self) -> bool {
        (self.has(CAP_BPF) && self.has(CAP_PERFMON)) || self.has(CAP_SYS_ADMIN)
    }

    /// The tracing capabilities missing, by name (empty when [`Self::can_trace`]).
    pub fn missing_for_tracing(self) -> Vec<&'static str> {
        if self.can_trace() {
            return Vec::new();
        }
        [CAP_BPF, CAP_PERFMON]
            .into_iter()
            .filter(|c| !self.has(*c))
            .map(|c| c.name)
            .collect()
    }
}

/// The running kernel's release (`uname -r`), e.g. `6.18.0-1-amd64`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `(major, minor)` of a kernel release string (`None` when it does not start with them).
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A `kernel.*` sysctl as a number (`None` when absent or unreadable).
pub fn sysctl(name: &str) -> Option<i64> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `dir` is a directory with at least one entry: how aya recognises a mounted tracefs
/// (the empty mount point exists whether or not tracefs is mounted on it).
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Where tracefs is mounted, if it is (the first of [`TRACEFS_PATHS`] with entries, the
/// order aya looks in).
pub fn tracefs_path() -> Option<PathBuf> {
    TRACEFS_PATHS
        .iter()
        .map(Path::new)
        .find(|p| has_entries(p))
        .map(Path::to_path_buf)
}

/// What [`ensure_tracefs`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracefs {
    /// Already mounted there.
    Present(PathBuf),
    /// Was missing; adi mounted it there.
    Mounted(PathBuf),
}

impl Tracefs {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        match self {
            Self::Present(p) | Self::Mounted(p) => p,
        }
    }
}

/// The command that mounts tracefs by hand.
pub const MOUNT_TRACEFS: &str = "sudo mount -t tracefs tracefs /sys/kernel/tracing";

fn mount(source: &str, target: &Path, fstype: &str) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(io::Error::other);
    let target = c(&target.to_string_lossy())?;
    let (source, fstype) = (c(source)?, c(fstype)?);
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; a null data
    // argument is allowed for tracefs and debugfs.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes sure tracefs is mounted (aya reads tracepoint ids from it): when it is not, mounts
/// it at `/sys/kernel/tracing`, else mounts debugfs at `/sys/kernel/debug` (which brings
/// tracefs at `/sys/kernel/debug/tracing` with it). The mount stays after adi exits, as with
/// other tools that mount it; in a private mount namespace it goes with the namespace.
///
/// # Errors
///
/// The first mount's error (typically `EPERM` without CAP_SYS_ADMIN) when no attempt worked.
pub fn ensure_tracefs() -> Result<Tracefs, io::Error> {
    if let Some(p) = tracefs_path() {
        return Ok(Tracefs::Present(p));
    }
    let primary = Path::new(TRACEFS_PATHS[0]);
    let first = match mount("tracefs", primary, "tracefs") {
        Ok(()) if has_entries(primary) => return Ok(Tracefs::Mounted(primary.to_path_buf())),
        Ok(()) => io::Error::other(format!("{} is empty after mounting", primary.display())),
        Err(e) => e,
    };
    let debugfs = Path::new(DEBUGFS_PATH);
    let fallback = Path::new(TRACEFS_PATHS[1]);
    if !has_entries(debugfs) && mount("debugfs", debugfs, "debugfs").is_err() {
        return Err(first);
    }
    if !has_entries(fallback) {
        let _ = mount("tracefs", fallback, "tracefs");
    }
    if has_entries(fallback) {
        Ok(Tracefs::Mounted(fallback.to_path_buf()))
    } else {
        Err(first)
    }
}

/// Kernels before 5.11 charge BPF maps and programs to RLIMIT_MEMLOCK, whose default (8 MiB
/// or less) is too small; later ones charge the memory cgroup instead.
pub fn memlock_matters(release: &str) -> bool {
    parse_kernel_version(release).is_none_or(|v| v < (5, 11))
}

/// The memlock limit in bytes (`None`: unlimited or unreadable).
pub fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, writable `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut lim) } != 0 {
        return None;
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Raises RLIMIT_MEMLOCK to unlimited where the kernel still charges BPF memory to it.
///
/// # Errors
///
/// `setrlimit`'s error (EPERM without CAP_SYS_RESOURCE).
pub fn raise_memlock() -> io::Result<()> {
    if !memlock_matters(&kernel_release()) || memlock_limit().is_none() {
        return Ok(());
    }
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads one valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const lim) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Puts the calling thread under `SCHED_IDLE` (`--idle-priority`): it runs only when a CPU
/// has nothing else to do. Threads it starts afterwards inherit the policy.
///
/// # Errors
///
/// `sched_setscheduler`'s error.
pub fn set_idle_priority() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// mimalloc's `mi_option_arena_eager_commit` (its `mi_option_e` index in the mimalloc 3 that
/// `libmimalloc-sys` builds; the crate's Rust constants are mimalloc 2's and lack it).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits mimalloc's arenas as they are used rather than all at once. With the default (eager
/// commit on an overcommitting kernel), pages freed under load stay counted in adi's resident
/// size; committed on demand they are purged (`MADV_DONTNEED`) and leave it:
/// adi's arena under the overhead bench at full capture fell from 20-23 MiB to 10-15 MiB.
/// It must be set before the first allocation reserves the first arena, which the Rust
/// runtime makes before `main`: hence a constructor (`.init_array`) of the binary.
extern "C" fn commit_arenas_on_demand() {
    // SAFETY: mi_option_set takes no pointer and only stores the value; it may run before
    // mimalloc's own initialisation (the value set is then kept over the environment's).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[link_section = ".init_array"]
static COMMIT_ARENAS_ON_DEMAND: extern "C" fn() = commit_arenas_on_demand;

/// Whether mimalloc commits its arenas on demand (see [`commit_arenas_on_demand`]).
pub fn arenas_committed_on_demand() -> bool {
    // SAFETY: mi_option_get takes no pointer.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT) == 0 }
}

/// Returns the memory the allocator holds free to the kernel, now. Loading a BPF object parses
/// the kernel's BTF (tens of MiB of short-lived allocations, once); mimalloc, the binary's
/// allocator, keeps freed pages for reuse until its next purge, which an idle thread never
/// reaches, so they would stay in adi's resident size for good. Harmless with another
/// global allocator (mimalloc's own heaps are then empty).
pub fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointer; it frees the calling thread's and the arenas'
    // unused pages, which no live allocation refers to.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Whether this kernel can create uprobes through `perf_event_open` (how aya attaches them).
pub fn uprobes_supported() -> bool {
    Path::new(UPROBE_PMU).exists()
}

/// What [`prepare`] did that a user should hear about, one line each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Lines to print once (e.g. that tracefs was mounted).
    pub notes: Vec<String>,
    /// Where tracefs is.
    pub tracefs: Option<PathBuf>,
}

/// Checks and sets up what loading and attaching adi's probes needs, in the order a failure
/// is best explained: privileges, BTF, the memlock limit, tracefs.
///
/// # Errors
///
/// [`crate::live::ProbeError`] naming the cause and the fix, in one line.
pub fn prepare() -> Result<Prepared, crate::live::ProbeError> {
    use crate::live::ProbeError;
    let caps = Capabilities::current();
    if !caps.can_trace() {
        return Err(ProbeError::NotPrivileged {
            missing: caps.missing_for_tracing().join("+"),
        });
    }
    if !Path::new(BTF_PATH).exists() {
        return Err(ProbeError::NoBtf);
    }
    raise_memlock().map_err(|source| ProbeError::Memlock { source })?;
    let mut prepared = Prepared::default();
    match ensure_tracefs() {
        Ok(Tracefs::Present(p)) => prepared.tracefs = Some(p),
        Ok(Tracefs::Mounted(p)) => {
            prepared.notes.push(format!(
                "adi: tracefs was not mounted; mounted it at {}",
                p.display()
            ));
            prepared.tracefs = Some(p);
        }
        Err(source) => return Err(ProbeError::NoTracefs { source }),
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimalloc_commits_its_arenas_on_demand() {
        assert!(arenas_committed_on_demand());
    }

    /// `/proc/self/status` of a root shell (capsh 2.66) with every capability, and of one
    /// started by `setpriv --inh-caps=-bpf --bounding-set=-bpf` (bit 39 cleared).
    const STATUS_ROOT: &str = "Name:\tbash\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
    const STATUS_NO_BPF: &str = "Name:\tbash\nCapEff:\t0000017fffdfffff\n";
    const STATUS_USER: &str = "Name:\tbash\nCapEff:\t0000000000000000\n";

    #[test]
    fn capabilities_from_status() {
        let root = Capabilities::parse_status(STATUS_ROOT).expect("CapEff");
        assert!(root.can_trace());
        assert!(root.has(CAP_SYS_PTRACE));
        assert!(root.missing_for_tracing().is_empty());
        // Without CAP_BPF and CAP_SYS_ADMIN (bit 21 also cleared), tracing is impossible.
        let no_bpf = Capabilities::parse_status(STATUS_NO_BPF).expect("CapEff");
        assert!(!no_bpf.has(CAP_BPF));
        assert!(no_bpf.has(CAP_PERFMON));
        assert!(!no_bpf.can_trace());
        assert_eq!(no_bpf.missing_for_tracing(), ["cap_bpf"]);
        let user = Capabilities::parse_status(STATUS_USER).expect("CapEff");
        assert_eq!(user.missing_for_tracing(), ["cap_bpf", "cap_perfmon"]);
        assert_eq!(Capabilities::parse_status("Name:\tx\n"), None);
        assert_eq!(Capabilities::parse_status("CapEff:\tzz\n"), None);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel_version("5.4.0"), Some((5, 4)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert!(memlock_matters("5.10.0"));
        assert!(!memlock_matters("5.11.0"));
        assert!(!memlock_matters("6.18.0-1-amd64"));
        assert!(memlock_matters(""));
    }
}
