//! A host as it comes: tracefs not mounted, capabilities missing, no BTF. Each case runs in a
//! private mount namespace (`unshare --mount`, so the host's mounts are untouched) or with
//! capabilities dropped (`setpriv`), and checks that adi sets up what it can, and otherwise
//! says in one line what is missing and how to fix it, without creating any output file.
//! Root-only, like the other live tests: `#[ignore]`d, and when run, a failure without root,
//! BTF or a tool.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{need, of_type, py_server, require_bpf, Adi};
use serde_json::Value;

/// Unmounts tracefs in the private mount namespace, fails (exit 97) if it is still there,
/// then runs the command given after the script (`$0`, `$@`).
const WITHOUT_TRACEFS: &str = "umount /sys/kernel/tracing 2>/dev/null; \
    umount /sys/kernel/debug/tracing 2>/dev/null; \
    if [ -e /sys/kernel/tracing/events ] || [ -e /sys/kernel/debug/tracing/events ]; then exit 97; fi; \
    exec \"$0\" \"$@\"";

/// The command line that runs `args...` in a new mount namespace without tracefs.
fn without_tracefs() -> Vec<&'static str> {
    vec!["unshare", "--mount", "sh", "-c", WITHOUT_TRACEFS]
}

/// Runs adi with `args` behind `wrapper` and returns its output.
fn adi_in(wrapper: &[&str], args: &[&str]) -> Output {
    run_in(wrapper, Path::new(env!("CARGO_BIN_EXE_adi")), args)
}

/// Runs `adi` (a path to the binary) with `args` behind `wrapper`.
fn run_in(wrapper: &[&str], adi: &Path, args: &[&str]) -> Output {
    let (program, rest) = wrapper.split_first().expect("a wrapper");
    Command::new(program)
        .args(rest)
        .arg(adi)
        .args(args)
        .output()
        .expect("run adi")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The host's tracefs mounts, to prove a test left them alone.
fn host_tracefs_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" - tracefs "))
        .count()
}

fn doctor_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is JSON ({e}): {}", stderr(o)))
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

#[test]
#[ignore = "needs root + BPF"]
fn live_capture_mounts_tracefs_itself_and_captures() {
    require_bpf();
    need(&["unshare", "curl"]);
    let before = host_tracefs_mounts();
    let (server, port) = py_server();
    let pid = server.0.id().to_string();
    let mut adi = Adi::start_in(&without_tracefs(), &["--pid", &pid]);
    adi.wait_stderr("adi: watching", Duration::from_secs(5));
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .arg(format!("http://127.0.0.1:{port}/bytes/5"))
        .output()
        .expect("curl");
    assert!(out.status.success());
    let (events, err) = adi.stop();
    assert!(
        err.iter()
            .any(|l| l == "adi: tracefs was not mounted; mounted it at /sys/kernel/tracing"),
        "{err:#?}"
    );
    let http = of_type(&events, "http");
    assert!(
        http.iter()
            .any(|e| e["status_code"] == 200 && e["source_port"] == port),
        "{events:#?}"
    );
    assert_eq!(
        host_tracefs_mounts(),
        before,
        "the host's mounts are untouched"
    );
}

#[test]
#[ignore = "needs root + BPF"]
fn doctor_mounts_tracefs_and_loads_every_program() {
    require_bpf();
    need(&["unshare"]);
    let out = adi_in(&without_tracefs(), &["doctor", "--json"]);
    let report = doctor_json(&out);
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["live_capture"], true);
    let tracefs = check(&report, "tracefs");
    assert_eq!(tracefs["status"], "ok");
    assert_eq!(
        tracefs["detail"],
        "was not mounted: adi mounted it at /sys/kernel/tracing"
    );
    for program in [
        "program tp_btf/sock_send_length",
        "program tp_btf/sock_recv_length",
        "program tp_btf/inet_sock_set_state",
        "program raw_tracepoint/sched_process_fork",
        "program tracepoint/sched/sched_process_exec",
        "program tracepoint/sched/sched_process_exit",
    ] {
        assert_eq!(check(&report, program)["status"], "ok", "{report:#}");
    }
    for map in ["map events", "map conns", "map watched", "map stats"] {
        assert_eq!(check(&report, map)["status"], "ok", "{report:#}");
    }
    assert_eq!(check(&report, "map events")["detail"], "ringbuf: created");
    assert_eq!(check(&report, "uprobe attach")["status"], "ok");
    assert_eq!(check(&report, "btf")["status"], "ok");
    assert_eq!(check(&report, "capability cap_bpf")["status"], "ok");

    // The table says the same.
    let out = adi_in(&without_tracefs(), &["doctor"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.ends_with("live capture can work on this host\n"),
        "{table}"
    );
}

#[test]
#[ignore = "needs root + BPF"]
fn without_cap_sys_admin_tracefs_cannot_be_mounted_and_adi_says_how() {
    require_bpf();
    need(&["unshare", "setpriv"]);
    let mut wrapper = without_tracefs();
    wrapper.extend([
        "setpriv",
        "--inh-caps=-sys_admin",
        "--bounding-set=-sys_admin",
    ]);
    let out = adi_in(&wrapper, &["doctor", "--json"]);
    let report = doctor_json(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(report["live_capture"], false);
    let tracefs = check(&report, "tracefs");
    assert_eq!(tracefs["status"], "fail");
    assert_eq!(
        tracefs["fix"],
        "sudo mount -t tracefs tracefs /sys/kernel/tracing"
    );
    assert_eq!(check(&report, "capability cap_sys_admin")["status"], "warn");
    assert_eq!(check(&report, "capability cap_bpf")["status"], "ok");

    let dir = tempfile::tempdir().expect("tempdir");
    let sink = format!("jsonl={}", dir.path().join("events.jsonl").display());
    let out = adi_in(&wrapper, &["--all", "--sink", &sink]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("adi: tracefs is not mounted and adi could not mount it")
            && err.contains("`sudo mount -t tracefs tracefs /sys/kernel/tracing`")
            && err.contains("`adi doctor`"),
        "{err}"
    );
    assert_eq!(err.matches("Operation not permitted").count(), 1, "{err}");
    assert_no_files(dir.path());
}

fn assert_no_files(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).expect("dir").flatten().collect();
    assert!(
        left.is_empty(),
        "no output file for a failed start: {left:?}"
    );
}

#[test]
#[ignore = "needs root + BPF"]
fn without_cap_bpf_one_line_names_the_missing_capabilities() {
    require_bpf();
    need(&["setpriv"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = format!("env-yaml={}", dir.path().join("env.yaml").display());
    let drop_bpf = [
        "setpriv",
        "--inh-caps=-bpf,-sys_admin",
        "--bounding-set=-bpf,-sys_admin",
    ];
    let out = adi_in(&drop_bpf, &["--all", "--sink", &sink]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        "adi: adi needs root or CAP_BPF+CAP_PERFMON (missing: cap_bpf): run it with sudo; `adi doctor` lists what else is needed\n"
    );
    assert_no_files(dir.path());
    let out = adi_in(&drop_bpf, &["doctor", "--json"]);
    let report = doctor_json(&out);
    assert_eq!(out.status.code(), Some(1));
    let bpf = check(&report, "capability cap_bpf");
    assert_eq!(bpf["status"], "fail");
    assert!(
        bpf["fix"].as_str().is_some_and(|f| f.contains("setcap")),
        "{bpf}"
    );
    assert_eq!(check(&report, "bpf programs and maps")["status"], "skipped");
}

#[test]
#[ignore = "needs root + BPF"]
fn a_user_without_privileges_gets_one_line() {
    require_bpf();
    need(&["setpriv"]);
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    // A copy any user can run: the build directory may sit where nobody cannot reach it.
    let dir = tempfile::tempdir().expect("tempdir");
    let adi = dir.path().join("adi");
    std::fs::copy(env!("CARGO_BIN_EXE_adi"), &adi).expect("copy adi");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(dir.path(), mode).expect("chmod dir");
    let out = run_in(&nobody, &adi, &["--all"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        "adi: adi needs root or CAP_BPF+CAP_PERFMON (missing: cap_bpf+cap_perfmon): run it with sudo; `adi doctor` lists what else is needed\n"
    );
    let out = run_in(&nobody, &adi, &["doctor"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(table.contains("FAIL    capability cap_bpf"), "{table}");
    assert!(table.contains("FAIL    capability cap_perfmon"), "{table}");
    assert!(
        table.ends_with("live capture cannot work on this host until the FAIL lines are fixed\n"),
        "{table}"
    );
}

#[test]
#[ignore = "needs root + BPF"]
fn a_kernel_without_btf_gets_one_line() {
    require_bpf();
    need(&["unshare"]);
    // An empty tmpfs over /sys/kernel/btf, in a private mount namespace: no vmlinux.
    let no_btf = [
        "unshare",
        "--mount",
        "sh",
        "-c",
        "mount -t tmpfs none /sys/kernel/btf && exec \"$0\" \"$@\"",
    ];
    let out = adi_in(&no_btf, &["--all"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("adi: this kernel has no BTF (/sys/kernel/btf/vmlinux is missing)")
            && err.contains("CONFIG_DEBUG_INFO_BTF=y"),
        "{err}"
    );
    let out = adi_in(&no_btf, &["doctor", "--json"]);
    let report = doctor_json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(check(&report, "btf")["status"], "fail");
}
