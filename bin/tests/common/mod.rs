//! The harness of the root-only live tests (`live.rs`, `live_services.rs`, ...): what they
//! require, free ports, listener ownership, children stopped on drop, and a running `adi` whose
//! JSON lines are read back when it stops. Each test file uses a part of it.
#![allow(dead_code, unused_imports)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod services;

pub use adi_probes::testing::{need, require_bpf};

pub use adi_probes::testing::free_port;

/// The first line `child` printed on its stdout (piped), trimmed: the port or address a server
/// says it listens on. Wrap the child (so that it is stopped on drop) before checking it.
pub fn first_line(child: &mut Child) -> std::io::Result<String> {
    let mut line = String::new();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("stdout is not piped"))?;
    BufReader::new(stdout).read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

pub fn wait_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Socket inodes listening on 127.0.0.1:`port` (from /proc/net/tcp, without connecting).
fn listening_inodes(port: u16) -> HashSet<u64> {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| f[9].parse().ok())?
        })
        .collect()
}

/// Pids holding a socket that listens on 127.0.0.1:`port`.
pub fn listener_pids(port: u16) -> Vec<u32> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let holds = std::fs::read_dir(entry.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| {
                    t.to_str()
                        .and_then(|s| s.strip_prefix("socket:["))
                        .and_then(|s| s.strip_suffix(']'))
                        .and_then(|s| s.parse().ok())
                        .is_some_and(|i| inodes.contains(&i))
                })
            });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// The parent of process `pid` (`None` once it is gone).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces and parentheses.
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

/// Waits (without connecting: a probe connection would be traffic) until 127.0.0.1:`port`
/// listens, and asserts that the listener is `pid` (or children it forked) and nobody else.
pub fn wait_listener(port: u16, pid: u32, timeout: Duration) {
    let end = Instant::now() + timeout;
    loop {
        let pids = listener_pids(port);
        if !pids.is_empty() {
            // A child the server just forked holds the socket too until it closes it.
            let theirs: Vec<u32> = pids
                .iter()
                .copied()
                .filter(|&p| p != pid && parent_of(p) != Some(pid))
                .collect();
            assert!(
                pids.contains(&pid) && theirs.is_empty(),
                "port {port} must be ours ({pid}): {pids:?}"
            );
            return;
        }
        assert!(Instant::now() < end, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child killed on drop, so a failing test leaves nothing running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `adi` writing JSON lines to a file.
pub struct Adi {
    child: Child,
    out: PathBuf,
    stderr: std::sync::mpsc::Receiver<String>,
    /// Lines of stderr already read by `wait_stderr`.
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Adi {
    /// Starts adi with `args`. Tests assert every event, so unless `args` choose a
    /// `--max-rate`, every exchange is captured (`--max-rate 0`); sampling has its own tests.
    pub fn start(args: &[&str]) -> Self {
        Self::start_in(&[], args)
    }

    /// Starts adi as [`Adi::start`] does, run by `wrapper` (a command and its arguments,
    /// given adi's path and arguments after them: `unshare --mount ...`); empty: directly.
    pub fn start_in(wrapper: &[&str], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("events.jsonl");
        let sink = format!("jsonl={}", out.display());
        let rate: &[&str] = if args.contains(&"--max-rate") {
            &[]
        } else {
            &["--max-rate", "0"]
        };
        let adi = env!("CARGO_BIN_EXE_adi");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(adi);
                c
            }
            None => Command::new(adi),
        };
        let mut child = cmd
            .args(args)
            .args(rate)
            .args(["--sink", &sink])
            .env_remove("ADI_PROFILE_ALLOWED")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start adi");
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut adi = Self {
            child,
            out,
            stderr: rx,
            seen: Vec::new(),
            _dir: dir,
        };
        // What it set up on the host (tracefs mounted, ...) comes first, then what it watches.
        adi.wait_stderr("adi: watching", Duration::from_secs(20));
        adi
    }

    /// Waits until adi says `needle` on stderr (at most `timeout`).
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = end.saturating_duration_since(Instant::now());
            let line = self
                .stderr
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("adi never said {needle:?} ({e}): {:#?}", self.seen));
            self.seen.push(line);
        }
    }

    /// The running adi's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, wait, and return (events, stderr lines).
    pub fn stop(mut self) -> (Vec<Value>, Vec<String>) {
        // Let the last events reach the ring buffer before asking adi to stop.
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id().cast_signed(), libc::SIGTERM) };
        let status = self.child.wait().expect("wait adi");
        let mut err = std::mem::take(&mut self.seen);
        err.extend(self.stderr.try_iter());
        assert!(status.success(), "adi exited with {status}: {err:#?}");
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let events = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        (events, err)
    }
}

/// A test that fails before `stop` must not leave adi running (it would keep its probes
/// attached and, its output directory gone, retry its writes forever).
impl Drop for Adi {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const PY_SERVER: &str = r#"
import http.server, sys, json
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n)
        out = json.dumps({"got": len(body)}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in [b"hello ", b"chunked ", b"world"]:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        size = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/bytes/") else 2
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"x" * 65536
        left = size
        while left:
            n = min(left, len(chunk)); self.wfile.write(chunk[:n]); left -= n
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// The Python test server on a port the kernel picks (no race with other tests picking
/// ports), listening when this returns.
pub fn py_server() -> (Proc, u16) {
    let mut child = Command::new("python3")
        .args(["-c", PY_SERVER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python server");
    let line = first_line(&mut child);
    let p = Proc(child);
    let port = line.expect("port line").parse().expect("server port");
    (p, port)
}

pub fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_type"] == t).collect()
}

/// The Python interpreter itself (not a launcher shim that would fork it as a child that
/// outlives a kill, or exec helpers first).
pub fn python_executable() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `doc` with the value of every key named in `masks` (at any depth) replaced by its mask:
/// what changes between runs of a demo (times, latencies, addresses), so that its map can be
/// compared whole with a golden file.
pub fn masked(doc: &Value, masks: &[(&str, &str)]) -> Value {
    match doc {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = match masks.iter().find(|(key, _)| key == k) {
                        Some((_, mask)) => Value::from(*mask),
                        None => masked(v, masks),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| masked(v, masks)).collect()),
        _ => doc.clone(),
    }
}

/// A throwaway self-signed certificate (EC P-256) for `localhost` and 127.0.0.1 in `dir`:
/// (certificate, key) paths.
pub fn certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}
