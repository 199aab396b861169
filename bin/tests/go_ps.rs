//! `adi go ps` end to end: Go programs built with three toolchains are listed with the right
//! version and fields, a non-Go process is not. Needs the toolchains of
//! `testdata/go/install-toolchains.sh`, so the tests are `#[ignore]`d (`cargo test --
//! --include-ignored` runs them, and fails without the toolchains); no root needed.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use adi_probes::go::testing::{self, Toolchain, Variant};
use serde_json::Value;

/// A child killed and reaped on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &Path, args: &[&str]) -> Running {
    let child = Command::new(program)
        .args(args)
        .env("GOMAXPROCS", "1")
        .env("GOGC", "77")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
    Running(child)
}

/// The toolchains of `versions`; a missing one fails the test.
fn all_of(versions: &[&str]) -> Vec<&'static Toolchain> {
    versions.iter().map(|v| testing::toolchain(v)).collect()
}

/// Runs `adi go ps ARGS` and returns its JSON lines by pid, and its exit status.
fn go_ps(args: &[&str]) -> (HashMap<u64, Value>, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_adi"))
        .args(["go", "ps"])
        .args(args)
        .output()
        .expect("run adi");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let mut by_pid = HashMap::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        by_pid.insert(v["pid"].as_u64().expect("pid"), v);
    }
    (by_pid, out.status.success())
}

/// Waits until `pid` runs the Go program (right after fork it is still the test binary).
fn wait_exec(pid: u32, program: &Path) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .as_deref()
        != Some(program)
    {
        assert!(
            Instant::now() < end,
            "pid {pid} never ran {}",
            program.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn lists_go_processes_of_three_versions() {
    let wanted = ["1.19", "1.23.9", "1.27.3"];
    let toolchains = all_of(&wanted);
    let variants = [Variant::Default, Variant::Static, Variant::Stripped];
    let mut servers = Vec::new();
    for (t, variant) in toolchains.iter().zip(variants) {
        let program = t.binary(variant, "server");
        let running = spawn(&program, &["-addr", "127.0.0.1:0"]);
        wait_exec(running.0.id(), &program);
        servers.push((running, *t, program));
    }
    let sleep = Running(
        Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep"),
    );

    let (listed, ok) = go_ps(&["--json"]);
    assert!(ok, "scan mode exits 0");
    assert!(
        !listed.contains_key(&u64::from(sleep.0.id())),
        "sleep is not a Go program"
    );
    assert!(
        !listed.contains_key(&u64::from(std::process::id())),
        "the test binary is not a Go program"
    );
    for (running, t, program) in &servers {
        let pid = running.0.id();
        let v = listed
            .get(&u64::from(pid))
            .unwrap_or_else(|| panic!("Go {} server (pid {pid}) not listed", t.version));
        check_listed(v, t, program);
    }

    // Explicit pids with --verbose: build settings included; a non-Go pid is an error (exit 1)
    // while the Go ones are still listed.
    let pids: Vec<String> = servers
        .iter()
        .map(|(r, _, _)| r.0.id().to_string())
        .collect();
    let mut args = vec!["--json", "--verbose", "--sort"];
    args.extend(pids.iter().map(String::as_str));
    let (listed, ok) = go_ps(&args);
    assert!(ok);
    assert_eq!(listed.len(), 3);
    for (running, t, _) in &servers {
        let v = &listed[&u64::from(running.0.id())];
        let build = &v["go_build"];
        assert_eq!(build["GOOS"], "linux", "{v}");
        let cgo = if v["exe"].as_str().is_some_and(|e| e.contains("/static/")) {
            "0"
        } else {
            "1"
        };
        assert_eq!(build["CGO_ENABLED"], cgo, "{} {v}", t.version);
    }
    let sleep_pid = sleep.0.id().to_string();
    let (listed, ok) = go_ps(&["--json", &pids[0], &sleep_pid]);
    assert!(!ok, "a non-Go pid given explicitly is an error");
    assert_eq!(listed.len(), 1);
}

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn sort_orders_by_go_version() {
    let wanted = ["1.27.3", "1.19", "1.23.9"];
    let toolchains = all_of(&wanted);
    let mut pids = Vec::new();
    let mut running = Vec::new();
    for t in &toolchains {
        let program = t.binary(Variant::NoDwarf, "server");
        let r = spawn(&program, &[]);
        wait_exec(r.0.id(), &program);
        pids.push(r.0.id().to_string());
        running.push(r);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_adi"))
        .args(["go", "ps", "--sort"])
        .args(&pids)
        .output()
        .expect("run adi");
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("PID"), "{table}");
    let versions: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).expect("version column"))
        .collect();
    let mut expected: Vec<&str> = toolchains.iter().map(|t| t.go_version.as_str()).collect();
    expected.sort_by(|a, b| adi_probes::go::buildinfo::compare_versions(a, b));
    assert_eq!(versions, expected, "{table}");
}

/// The fields of one listed server started from `program` (built by toolchain `t`).
fn check_listed(v: &Value, t: &Toolchain, program: &Path) {
    assert_eq!(v["go_version"], t.go_version.as_str(), "{v}");
    assert_eq!(v["exe"], program.to_str().expect("utf8 path"), "{v}");
    assert_eq!(v["path"], "adi.invalid/gotargets/server", "{v}");
    let version = v["version"].as_str().expect("version");
    assert!(version == "devel" || version.starts_with("v0.0.0-"), "{v}");
    assert_eq!(
        v["package"].as_str().expect("package"),
        format!(
            "adi.invalid/gotargets/server@{}",
            if version == "devel" {
                "latest"
            } else {
                version
            }
        ),
    );
    let mtime = std::fs::metadata(program)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert_eq!(v["exe_mtime"].as_u64(), Some(mtime), "{v}");
    assert_eq!(v["go_env"]["GOMAXPROCS"], "1", "{v}");
    assert_eq!(v["go_env"]["GOGC"], "77", "{v}");
    assert_eq!(
        v["cmdline"],
        format!("{} -addr 127.0.0.1:0", program.display()),
        "{v}"
    );
    assert!(
        v.get("go_build").is_none(),
        "go_build only with --verbose: {v}"
    );
    // Exactly the schema's fields (their order is pinned by go_ps.rs's unit test).
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut schema = [
        "pid",
        "exe",
        "path",
        "version",
        "go_version",
        "exe_mtime",
        "package",
        "go_env",
        "cmdline",
    ];
    schema.sort_unstable();
    assert_eq!(keys, schema);
}
