//! `adi doctor`: everything live capture needs on this host, checked for real. The kernel
//! facts and capabilities come from [`crate::host`]; the BPF maps and every program adi uses
//! are loaded, attached and detached again (nothing is watched meanwhile); a uprobe is
//! attached to a libc function and detached. Each check says what it found and, when it
//! fails, the fix (`docs/troubleshooting.md` explains each).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::{self, Capabilities, Tracefs};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Live capture works, but something is reduced (named in the detail).
    Warn,
    /// Live capture cannot work until this is fixed.
    Fail,
    /// Not checked, because an earlier failure makes it impossible to check.
    Skipped,
}

impl Status {
    /// The table's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skipped => "skipped",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`btf`, `capability cap_bpf`, `program tp_btf/sock_send_length`).
    pub check: String,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A line of the report.
    pub fn new(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    /// With the fix to show when it is not ok.
    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Every check, in the order they ran.
    pub checks: Vec<Check>,
    /// Whether live capture can work here (no check failed).
    pub live_capture: bool,
}

/// Oldest kernel adi supports: the `sock:sock_send_length` and `sock:sock_recv_length`
/// tracepoints that socket capture attaches to came with 6.3 (ring buffers and CAP_BPF with
/// 5.8).
const MIN_KERNEL: (u32, u32) = (6, 3);

/// Runs every check. Needs no privilege to run; without it, the checks that need it fail
/// and say so. May mount tracefs, as live capture would.
pub fn run() -> Report {
    let mut checks = Vec::new();
    let release = host::kernel_release();
    checks.push(kernel_check(&release));
    let caps = Capabilities::current();
    checks.extend(capability_checks(caps));
    let btf = Path::new(host::BTF_PATH).exists();
    checks.push(if btf {
        Check::new("btf", Status::Ok, host::BTF_PATH)
    } else {
        Check::new("btf", Status::Fail, format!("{} is missing", host::BTF_PATH))
            .fix("use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions' kernels since 2020)")
    });
    let tracefs = tracefs_check(caps);
    let tracefs_ok = tracefs.status == Status::Ok;
    checks.push(tracefs);
    checks.push(memlock_check(&release));
    checks.extend(sysctl_checks(caps));
    let uprobes = host::uprobes_supported();
    checks.push(if uprobes {
        Check::new("uprobes", Status::Ok, host::UPROBE_PMU)
    } else {
        Check::new("uprobes", Status::Warn, format!("{} is missing", host::UPROBE_PMU))
            .fix("use a kernel built with CONFIG_UPROBE_EVENTS=y; without it, Go programs get no go_http events")
    });
    // The uprobe programs' ring buffer registers with an async runtime, even unread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build();
    let _entered = runtime.as_ref().ok().map(tokio::runtime::Runtime::enter);
    if caps.can_trace() && btf {
        checks.extend(bpf_checks(tracefs_ok));
        if uprobes {
            checks.push(uprobe_attach_check());
        }
    } else {
        checks.push(Check::new(
            "bpf programs and maps",
            Status::Skipped,
            "not loaded: needs the capabilities and BTF above",
        ));
    }
    let live_capture = checks.iter().all(|c| c.status != Status::Fail);
    Report {
        checks,
        live_capture,
    }
}

fn kernel_check(release: &str) -> Check {
    match host::parse_kernel_version(release) {
        Some(v) if v >= MIN_KERNEL => Check::new("kernel", Status::Ok, release),
        Some(_) => Check::new(
            "kernel",
            Status::Fail,
            format!("{release} is older than 6.3 (its socket tracepoints sock_send_length and sock_recv_length)"),
        )
        .fix("run adi on Linux 6.3 or later"),
        None => Check::new(
            "kernel",
            Status::Warn,
            format!("cannot tell the version of `{release}`"),
        ),
    }
}

fn capability_checks(caps: Capabilities) -> Vec<Check> {
    host::CAPS
        .iter()
        .map(|&cap| {
            let name = format!("capability {}", cap.name);
            if caps.has(cap) {
                return Check::new(name, Status::Ok, format!("held: {}", cap.why));
            }
            let tracing = cap == host::CAP_BPF || cap == host::CAP_PERFMON;
            let covered = tracing && caps.has(host::CAP_SYS_ADMIN);
            let status = if tracing && !covered {
                Status::Fail
            } else {
                Status::Warn
            };
            let detail = if covered {
                format!("missing, covered by cap_sys_admin: {}", cap.why)
            } else {
                format!("missing: cannot {}", cap.why)
            };
            Check::new(name, status, detail).fix(format!(
                "run adi with sudo, or `sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_sys_admin+ep $(command -v adi)`; missing {}",
                cap.name
            ))
        })
        .collect()
}

fn tracefs_check(caps: Capabilities) -> Check {
    if let Some(p) = host::tracefs_path() {
        return Check::new("tracefs", Status::Ok, format!("mounted at {}", p.display()));
    }
    if !caps.has(host::CAP_SYS_ADMIN) {
        return Check::new(
            "tracefs",
            Status::Fail,
            "not mounted, and adi cannot mount it without cap_sys_admin",
        )
        .fix(host::MOUNT_TRACEFS);
    }
    match host::ensure_tracefs() {
        Ok(Tracefs::Present(p)) => {
            Check::new("tracefs", Status::Ok, format!("mounted at {}", p.display()))
        }
        Ok(Tracefs::Mounted(p)) => Check::new(
            "tracefs",
            Status::Ok,
            format!("was not mounted: adi mounted it at {}", p.display()),
        ),
        Err(e) => Check::new(
            "tracefs",
            Status::Fail,
            format!("not mounted, and mounting it failed: {e}"),
        )
        .fix(host::MOUNT_TRACEFS),
    }
}

fn memlock_check(release: &str) -> Check {
    let limit = host::memlock_limit();
    let shown = limit.map_or_else(|| "unlimited".to_owned(), |l| format!("{} KiB", l / 1024));
    if !host::memlock_matters(release) {
        return Check::new(
            "memlock rlimit",
            Status::Ok,
            format!("{shown}; not used for BPF by this kernel (5.11+ charges the memory cgroup)"),
        );
    }
    match (limit, host::raise_memlock()) {
        (None, _) => Check::new("memlock rlimit", Status::Ok, shown),
        (Some(_), Ok(())) => Check::new(
            "memlock rlimit",
            Status::Ok,
            format!("{shown}; adi raises it to unlimited at start"),
        ),
        (Some(_), Err(e)) => Check::new(
            "memlock rlimit",
            Status::Fail,
            format!("{shown}, too low for BPF on this kernel, and raising it failed: {e}"),
        )
        .fix("run `ulimit -l unlimited` before adi, or run it as root"),
    }
}

fn sysctl_checks(caps: Capabilities) -> Vec<Check> {
    let bpf = host::sysctl("kernel.unprivileged_bpf_disabled");
    let paranoid = host::sysctl("kernel.perf_event_paranoid");
    let show = |v: Option<i64>| v.map_or_else(|| "absent".to_owned(), |v| v.to_string());
    let bpf_check = if caps.has(host::CAP_BPF) || caps.has(host::CAP_SYS_ADMIN) {
        Check::new(
            "kernel.unprivileged_bpf_disabled",
            Status::Ok,
            format!("{}; does not apply: cap_bpf held", show(bpf)),
        )
    } else {
        Check::new(
            "kernel.unprivileged_bpf_disabled",
            Status::Fail,
            format!(
                "{}; adi's programs need cap_bpf whatever its value",
                show(bpf)
            ),
        )
        .fix("run adi with sudo, or give it cap_bpf+cap_perfmon with setcap")
    };
    let paranoid_check = if caps.has(host::CAP_PERFMON) || caps.has(host::CAP_SYS_ADMIN) {
        Check::new(
            "kernel.perf_event_paranoid",
            Status::Ok,
            format!("{}; does not apply: cap_perfmon held", show(paranoid)),
        )
    } else {
        Check::new(
            "kernel.perf_event_paranoid",
            Status::Fail,
            format!(
                "{}; tracepoint and uprobe events need cap_perfmon unless it is -1",
                show(paranoid)
            ),
        )
        .fix("give adi cap_perfmon (or run it with sudo)")
    };
    vec![bpf_check, paranoid_check]
}

fn bpf_checks(tracefs_ok: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    match crate::live::check_maps() {
        Ok(maps) => checks.extend(maps.into_iter().map(|(name, kind)| {
            Check::new(
                format!("map {name}"),
                Status::Ok,
                format!("{kind}: created"),
            )
        })),
        Err(e) => {
            checks.push(
                Check::new("bpf maps", Status::Fail, first_line(&e))
                    .fix("see the error above; a kernel with BPF ring buffers (5.8+) is needed"),
            );
            return checks;
        }
    }
    match crate::live::check_programs() {
        Ok(results) => {
            for (spec, result) in results {
                let name = format!("program {}", spec.describe());
                checks.push(match result {
                    Ok(()) => Check::new(name, Status::Ok, "loaded, attached and detached"),
                    Err(e) if !tracefs_ok && matches!(spec.kind, crate::live::AttachKind::TracePoint(_)) => {
                        Check::new(name, Status::Fail, first_line(&e)).fix(host::MOUNT_TRACEFS)
                    }
                    Err(e) => Check::new(name, Status::Fail, first_line(&e))
                        .fix("a kernel with this tracepoint and BTF is needed; the verifier log is in `adi doctor --json`"),
                });
            }
        }
        Err(e) => checks.push(Check::new("bpf programs", Status::Fail, first_line(&e))),
    }
    checks.push(tls_check());
    match crate::go::uprobes::GoHttpProbes::new() {
        Ok(_) => checks.push(Check::new(
            "programs uprobe/go_http",
            Status::Ok,
            "4 uprobe programs loaded",
        )),
        Err(e) => checks.push(Check::new(
            "programs uprobe/go_http",
            Status::Warn,
            format!(
                "not loaded: {}; Go programs get no go_http events",
                first_line(&e)
            ),
        )),
    }
    checks
}

/// The TLS library uprobe programs load, and which of the host's `libssl` files define the
/// functions they read.
fn tls_check() -> Check {
    const NAME: &str = "programs uprobe/tls";
    let loaded = match crate::live::check_tls_programs() {
        Ok(n) => n,
        Err(e) => {
            return Check::new(
                NAME,
                Status::Warn,
                format!("not loaded: {}; TLS connections stay `tls`", first_line(&e)),
            )
            .fix("run `adi doctor --json` for the verifier log; `--tls-uprobes off` silences this")
        }
    };
    let mut files = Vec::new();
    for lib in crate::tls::system_libraries() {
        if let Ok(sites) = crate::tls::sites_in(&lib) {
            if !sites.is_empty() {
                files.push((
                    lib,
                    sites
                        .iter()
                        .filter(|s| s.program != crate::tls::RETURN_PROGRAM)
                        .count(),
                ));
            }
        }
    }
    if files.is_empty() {
        return Check::new(
            NAME,
            Status::Warn,
            format!("{loaded} uprobe programs loaded; no OpenSSL-compatible libssl in the library directories (a process's own is found when it runs)"),
        );
    }
    let found: Vec<String> = files
        .iter()
        .map(|(f, n)| format!("{} ({n} functions)", f.display()))
        .collect();
    Check::new(
        NAME,
        Status::Ok,
        format!("{loaded} uprobe programs loaded; {}", found.join(", ")),
    )
}

/// An error with its causes on one line (a verifier log keeps only its first line here;
/// `--json` and live capture's error show it whole).
fn first_line(e: &(dyn std::error::Error + 'static)) -> String {
    adi_core::error::one_line(e)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The C library this process runs with, from its memory map.
fn libc_path() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
        })
        .map(PathBuf::from)
}

fn uprobe_attach_check() -> Check {
    let name = "uprobe attach";
    let Some(libc) = libc_path() else {
        return Check::new(name, Status::Skipped, "no libc.so mapped to attach to");
    };
    // A libc function adi never calls, so the program attached to it never runs.
    let symbol = "gnu_get_libc_release";
    match crate::go::uprobes::GoHttpProbes::new() {
        Ok((mut probes, _stream)) => match probes.check_uprobe(&libc, symbol) {
            Ok(()) => Check::new(
                name,
                Status::Ok,
                format!("attached to {symbol} in {} and detached", libc.display()),
            ),
            Err(e) => {
                let denied = error_chain_has(&e, |io| {
                    matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
                });
                let fix = if denied {
                    "this kernel wants cap_sys_admin to create uprobes: run adi with sudo; without it Go programs get no go_http events"
                } else {
                    "without uprobes Go programs get no go_http events; a kernel with CONFIG_UPROBE_EVENTS=y is needed"
                };
                Check::new(name, Status::Warn, first_line(&e)).fix(fix)
            }
        },
        Err(e) => Check::new(name, Status::Skipped, first_line(&e)),
    }
}

/// Whether some cause of `e` is an I/O error matching `pred`.
fn error_chain_has(
    e: &(dyn std::error::Error + 'static),
    pred: impl Fn(&std::io::Error) -> bool,
) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(&pred) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The report as a table: one line per check, then the fixes.
pub fn render_table(report: &Report) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.check.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for c in &report.checks {
        let _ = writeln!(
            out,
            "{:<7} {:<width$}  {}",
            c.status.as_str(),
            c.check,
            c.detail
        );
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "{:<7} {:<width$}  fix: {fix}", "", "");
        }
    }
    out.push_str(if report.live_capture {
        "live capture can work on this host\n"
    } else {
        "live capture cannot work on this host until the FAIL lines are fixed\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_missing_are_failures_with_a_fix() {
        let none = capability_checks(Capabilities(0));
        let bpf = none
            .iter()
            .find(|c| c.check == "capability cap_bpf")
            .expect("cap_bpf row");
        assert_eq!(bpf.status, Status::Fail);
        assert!(bpf.fix.as_deref().is_some_and(|f| f.contains("setcap")));
        let ptrace = none
            .iter()
            .find(|c| c.check == "capability cap_sys_ptrace")
            .expect("cap_sys_ptrace row");
        assert_eq!(ptrace.status, Status::Warn);
        // CAP_SYS_ADMIN alone covers both tracing capabilities.
        let admin = capability_checks(Capabilities(1 << host::CAP_SYS_ADMIN.bit));
        assert!(admin.iter().all(|c| c.status != Status::Fail), "{admin:?}");
    }

    #[test]
    fn old_kernels_fail() {
        assert_eq!(kernel_check("5.4.0-150-generic").status, Status::Fail);
        assert_eq!(kernel_check("6.2.16").status, Status::Fail);
        assert_eq!(kernel_check("6.3.0").status, Status::Ok);
        assert_eq!(kernel_check("6.18.0").status, Status::Ok);
        assert_eq!(kernel_check("weird").status, Status::Warn);
    }

    #[test]
    fn table_lists_fixes_and_the_verdict() {
        let report = Report {
            checks: vec![
                Check::new("btf", Status::Fail, "missing").fix("use another kernel"),
                Check::new("kernel", Status::Ok, "6.18"),
            ],
            live_capture: false,
        };
        let table = render_table(&report);
        assert!(table.contains("FAIL    btf"), "{table}");
        assert!(table.contains("fix: use another kernel"), "{table}");
        assert!(
            table.ends_with("until the FAIL lines are fixed\n"),
            "{table}"
        );
    }
}
