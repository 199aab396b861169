//! Root-only: the ADI_PROFILE opt-in (`docs/live-capture.md`) enforced in the kernel, end to
//! end. Real Python clients with each case of the opt-in rule (the table the eBPF profiler adi
//! replaces documents) make real HTTP calls to a real (unwatched) server while `adi` runs
//! with `--profile-allowed local,dev`; the test asserts which calls
//! appear as `http` events, which processes get an env-yaml document, and that no secret from
//! an environment reaches any sink. Also: a process that execs into another environment (both
//! ways), a variable bigger than the kernel's read step, a process already running when adi
//! starts, and a pid reused by a process that does not opt in.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{of_type, py_server, require_bpf, Adi, Proc};
use saphyr::{LoadableYamlNode, Yaml};

/// GETs `/TAG` once (after a line on stdin with `wait`), then optionally execs itself with
/// another environment (`exec:PROFILE:TAG2`; empty PROFILE: without ADI_PROFILE) and GETs
/// `/TAG2`. Prints its pid first.
const CLIENT: &str = r#"
import os, sys, urllib.request
port, tag, mode = sys.argv[1], sys.argv[2], sys.argv[3]
print(os.getpid(), flush=True)
if mode == "wait":
    sys.stdin.readline()
urllib.request.urlopen(f"http://127.0.0.1:{port}/{tag}", timeout=10).read()
if mode.startswith("exec:"):
    _, profile, tag2 = mode.split(":")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADI_PROFILE")}
    if profile:
        env["ADI_PROFILE"] = profile
    os.execve(sys.executable, [sys.executable, sys.argv[0], port, tag2, "-"], env)
"#;

struct Clients {
    python: String,
    script: PathBuf,
    port: u16,
}

impl Clients {
    /// A client with exactly `env` (plus PATH), not yet waited for.
    fn command(&self, tag: &str, mode: &str, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .args([&self.port.to_string(), tag, mode])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        cmd
    }

    /// Runs a client to its end; returns its pid.
    fn run(&self, tag: &str, mode: &str, env: &[(&str, &str)]) -> u32 {
        let out = self
            .command(tag, mode, env)
            .stdin(Stdio::null())
            .output()
            .expect("client");
        assert!(out.status.success(), "client {tag}: {out:?}");
        pid_line(&out.stdout)
    }
}

fn pid_line(out: &[u8]) -> u32 {
    String::from_utf8_lossy(out)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {:?}", String::from_utf8_lossy(out)))
}

/// Reads the pid line of a client started with `wait`.
fn read_pid(child: &mut Child) -> u32 {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("pid line");
    line.trim().parse().expect("pid")
}

/// Starts a client that does not opt in under exactly pid `want`, by setting the kernel's
/// last-allocated pid (`ns_last_pid`) just before spawning; retries when another fork on the
/// machine takes the pid first. The client waits on stdin.
fn spawn_with_pid(clients: &Clients, want: u32, tag: &str) -> Proc {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string())
            .expect("ns_last_pid");
        let child = clients.command(tag, "wait", &[]).spawn().expect("client");
        if child.id() == want {
            return Proc(child);
        }
        drop(Proc(child));
    }
    panic!("could not get pid {want} again");
}

fn yaml_docs(path: &Path) -> Vec<Yaml<'static>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("env yaml does not parse ({e}):\n{text}"))
}

#[test]
#[ignore = "needs root + BPF"]
fn opt_in_rows_exec_and_pid_reuse() {
    require_bpf();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("client.py");
    std::fs::write(&script, CLIENT).expect("script");
    let (_server, port) = py_server();
    let clients = Clients {
        python: common::python_executable(),
        script,
        port,
    };
    let secret = "hunter2-env-secret";
    let big = "x".repeat(20_000);

    // Already running when adi starts: found by the /proc scan.
    let mut early = Proc(
        clients
            .command("early", "wait", &[("ADI_PROFILE", "local")])
            .spawn()
            .expect("early"),
    );
    let early_pid = read_pid(&mut early.0);

    let env_yaml = dir.path().join("env.yaml");
    let sink = format!("env-yaml={}", env_yaml.display());
    let adi = Adi::start(&["--profile-allowed", "local,dev", "--sink", &sink]);
    let start = Instant::now();

    let mut pids: HashMap<&str, u32> = HashMap::new();
    // Every case of the opt-in rule's table, plus an empty value.
    let rows: &[(&str, &[(&str, &str)])] = &[
        (
            "local",
            &[("ADI_PROFILE", "local"), ("DB_PASSWORD", secret)],
        ),
        (
            "dev",
            &[("ADI_PROFILE", "dev"), ("ADI_PROFILE_NAME", "reviews")],
        ),
        ("prod", &[("ADI_PROFILE", "prod")]),
        (
            "disabled",
            &[("ADI_PROFILE", "local"), ("ADI_PROFILE_DISABLED", "1")],
        ),
        ("none", &[]),
        ("empty", &[("ADI_PROFILE", "")]),
        // A variable longer than the kernel's 4 KiB read step before ADI_PROFILE.
        ("big", &[("A_BIG", big.as_str()), ("ADI_PROFILE", "local")]),
    ];
    for (tag, env) in rows {
        pids.insert(tag, clients.run(tag, "-", env));
    }
    // Exec into another environment, both ways.
    pids.insert(
        "exec-out",
        clients.run(
            "exec-out-before",
            "exec::exec-out-after",
            &[("ADI_PROFILE", "local")],
        ),
    );
    pids.insert(
        "exec-in",
        clients.run("exec-in-before", "exec:dev:exec-in-after", &[]),
    );
    writeln!(early.0.stdin.as_mut().expect("stdin")).expect("go");
    assert!(early.0.wait().expect("early").success());

    // A pid reused: first a process that opts in, then one that does not.
    let first = clients.run("reuse-first", "-", &[("ADI_PROFILE", "local")]);
    let mut second = spawn_with_pid(&clients, first, "reuse-second");
    assert_eq!(read_pid(&mut second.0), first);
    writeln!(second.0.stdin.as_mut().expect("stdin")).expect("go");
    assert!(second.0.wait().expect("second").success());
    eprintln!("clients done in {:?}", start.elapsed());

    let (events, stderr) = adi.stop();
    let seen: BTreeSet<String> = of_type(&events, "http")
        .into_iter()
        .filter(|e| e["dest_port"] == port && e["direction"] == "send")
        .filter_map(|e| {
            e["url"]
                .as_str()
                .map(|u| u.trim_start_matches('/').to_owned())
        })
        .collect();
    let want: BTreeSet<String> = [
        "local",
        "dev",
        "big",
        "exec-out-before",
        "exec-in-after",
        "early",
        "reuse-first",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(seen, want, "calls captured; adi said {stderr:#?}");
    // Nothing decided late: the kernel read every environment itself.
    let summary = stderr
        .iter()
        .find(|l| l.starts_with("adi: lost:"))
        .expect("summary");
    assert!(
        summary.contains(" 0 execs the kernel could not decide (0 decided from /proc)"),
        "{summary}"
    );

    check_env_docs(&env_yaml, &pids, early_pid, &events, secret);
}

/// One env-yaml document per process that opted in, none for the others; no secret from an
/// environment in any sink; the file is private.
fn check_env_docs(
    env_yaml: &Path,
    pids: &HashMap<&str, u32>,
    early_pid: u32,
    events: &[serde_json::Value],
    secret: &str,
) {
    // One env-yaml document per process that opted in, none for the others.
    let docs = yaml_docs(env_yaml);
    let documented: HashMap<i64, &Yaml> = docs
        .iter()
        .filter_map(|d| Some((d["adi_profile_pid"].as_integer()?, d)))
        .collect();
    for (tag, profile) in [
        ("local", "local"),
        ("dev", "dev"),
        ("big", "local"),
        ("exec-in", "dev"),
    ] {
        let doc = documented
            .get(&i64::from(pids[tag]))
            .unwrap_or_else(|| panic!("no env document for {tag}: {docs:?}"));
        assert_eq!(doc["adi_profile_match"].as_str(), Some(profile), "{tag}");
    }
    let early_doc = documented.get(&i64::from(early_pid)).expect("early doc");
    assert_eq!(early_doc["adi_profile_match"].as_str(), Some("local"));
    let dev = documented[&i64::from(pids["dev"])];
    assert_eq!(dev["adi_profile_name"].as_str(), Some("reviews"));
    let local = documented[&i64::from(pids["local"])];
    assert_eq!(
        local["adi_profile_env"]["DB_PASSWORD"].as_str(),
        Some("<redacted>")
    );
    for tag in ["prod", "disabled", "none", "empty"] {
        assert!(
            !documented.contains_key(&i64::from(pids[tag])),
            "{tag} does not opt in but has a document"
        );
    }
    // No secret value from an environment reaches any sink.
    let yaml = std::fs::read_to_string(env_yaml).expect("yaml");
    let jsonl = serde_json::to_string(events).expect("json");
    assert!(!yaml.contains(secret) && !jsonl.contains(secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env_yaml)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "env yaml mode {mode:o}");
    }
}
