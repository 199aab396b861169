//! Root-only: load the real BPF object into this kernel and watch real processes talk over
//! loopback. Each test is `#[ignore]`d ("needs root + BPF"): `cargo test -- --include-ignored`
//! runs them as root, as CI does, and then a missing capability is a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adi_probes::live::{KernelProbes, ProbeConfig};
use adi_probes::raw::{DataDir, EventKind, KernelRole, RawEvent};
use adi_probes::testing::{free_port, require_bpf};

/// Collects events for `dur` or until `done` says enough.
async fn collect(
    stream: &mut adi_probes::live::EventStream,
    dur: Duration,
    mut done: impl FnMut(&[RawEvent]) -> bool,
) -> Vec<RawEvent> {
    let mut all = Vec::new();
    let end = Instant::now() + dur;
    while Instant::now() < end && !done(&all) {
        let left = end.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, stream.wait()).await.is_err() {
            break;
        }
        stream.drain_each(1024, |ev, payload| {
            all.push(RawEvent {
                payload: payload.to_vec(),
                ..ev.clone()
            });
        });
    }
    all
}

const SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("ready", flush=True)
c, _ = s.accept()
data = b""
while not data.endswith(b"\r\n\r\n"):
    data += c.recv(4096)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
c.close()
"#;

const CLIENT: &str = r#"
import socket, sys, time
sys.stdin.readline()  # wait until adi watches us
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"GET /probe?x=1 HTTP/1.1\r\nHost: t\r\n\r\n")
got = b""
while len(got) < 43:
    chunk = c.recv(4096)
    if not chunk: break
    got += chunk
c.close()
print(len(got), flush=True)
"#;

/// The probes, watching only the pids the test adds.
fn load_watching_pids() -> (KernelProbes, adi_probes::live::EventStream) {
    KernelProbes::load(ProbeConfig {
        watch_all: false,
        capture_bytes: 4096,
        opt_in: None,
        max_rate: 0,
        tls_plaintext: false,
        ring_bytes: 0,
    })
    .expect("load")
}

/// `SERVER` on a free port, listening when this returns.
fn one_request_server() -> (std::process::Child, u16) {
    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-c", SERVER, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("server");
    let mut ready = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready");
    (server, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root + BPF"]
async fn captures_a_loopback_exchange_of_watched_processes_only() {
    require_bpf();
    let (mut probes, mut stream) = load_watching_pids();
    assert_eq!(
        probes.attached(),
        6,
        "socket send, receive and state, sched fork, exec and exit"
    );

    let (mut server, port) = one_request_server();
    let mut client = Command::new("python3")
        .args(["-c", CLIENT, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    // Watch only the client: the server's events must never arrive.
    probes.watch(client.id()).expect("watch");
    client
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");

    let client_pid = client.id();
    let events = collect(&mut stream, Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e.kind == EventKind::Close && e.tgid == client_pid)
    })
    .await;
    let mut out = String::new();
    client
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert_eq!(out.trim(), "43");
    client.wait().expect("client exit");
    server.wait().expect("server exit");

    // Exec and exit events also come from the client's children (`python3` may be a pyenv
    // shim that forks and execs before the interpreter runs): socket events only from it.
    assert!(
        events
            .iter()
            .filter(|e| !matches!(e.kind, EventKind::Exec | EventKind::Exit))
            .all(|e| e.tgid == client_pid),
        "only the watched pid: {events:#?}"
    );
    let connect = events
        .iter()
        .find(|e| e.kind == EventKind::Connect)
        .expect("connect event");
    assert_eq!(connect.role, KernelRole::Client);
    assert_eq!(connect.remote.port(), port);
    assert_eq!(connect.local.ip().to_string(), "127.0.0.1");
    let sent = events
        .iter()
        .find(|e| e.kind == EventKind::Data && e.dir == DataDir::Send)
        .expect("send event");
    assert_eq!(sent.payload, b"GET /probe?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(sent.real_len, sent.payload.len() as u64);
    assert_eq!((sent.local, sent.remote), (connect.local, connect.remote));
    assert_eq!(sent.comm, "python3");
    let recv: Vec<u8> = events
        .iter()
        .filter(|e| e.kind == EventKind::Data && e.dir == DataDir::Recv)
        .flat_map(|e| e.payload.clone())
        .collect();
    assert_eq!(recv, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let stats = probes.kernel_stats();
    assert_eq!(stats.ringbuf_full, 0);
    assert!(stats.events >= 4, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root + BPF"]
async fn children_of_a_watched_process_are_watched() {
    require_bpf();
    let (mut probes, mut stream) = load_watching_pids();
    let (mut server, port) = one_request_server();
    // The watched shell forks the client (the trailing `echo` keeps it from exec'ing).
    let script = format!(
        "read go; echo go | python3 -c '{}' {port}; echo done",
        CLIENT.replace('\'', "\"")
    );
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("shell");
    probes.watch(shell.id()).expect("watch");
    shell
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let shell_pid = shell.id();
    let events = collect(&mut stream, Duration::from_secs(10), |evs| {
        evs.iter().any(|e| e.kind == EventKind::Close)
    })
    .await;
    let mut out = String::new();
    shell
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    shell.wait().expect("shell");
    server.wait().expect("server");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        vec!["43", "done"]
    );
    let sent = events
        .iter()
        .find(|e| e.kind == EventKind::Data && e.dir == DataDir::Send)
        .unwrap_or_else(|| panic!("the child's request: {events:#?}"));
    assert_ne!(
        sent.tgid, shell_pid,
        "sent by the forked child, not the shell"
    );
    assert_eq!(sent.comm, "python3");
    assert!(sent.payload.starts_with(b"GET /probe?x=1 HTTP/1.1"));
}

/// The main thread leaves with `pthread_exit` before a worker thread talks: the process must
/// stay watched until its last thread exits, and then be reported gone.
const LEADER_EXITS_FIRST: &str = r#"
import ctypes, socket, sys, threading, time
def worker():
    time.sleep(0.5)
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.sendall(b"GET /after-leader HTTP/1.1\r\nHost: t\r\n\r\n")
    c.recv(4096)
    c.close()
threading.Thread(target=worker).start()
print("started", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root + BPF"]
async fn a_process_stays_watched_until_its_last_thread_exits() {
    require_bpf();
    let (mut probes, mut stream) = load_watching_pids();
    let (mut server, port) = one_request_server();
    let mut client = Command::new("python3")
        .args(["-c", LEADER_EXITS_FIRST, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let pid = client.id();
    probes.watch(pid).expect("watch");
    let events = collect(&mut stream, Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e.kind == EventKind::Exit && e.tgid == pid)
    })
    .await;
    client.wait().expect("client");
    server.wait().expect("server");
    let sent = events
        .iter()
        .find(|e| e.kind == EventKind::Data && e.dir == DataDir::Send && e.tgid == pid)
        .unwrap_or_else(|| panic!("the worker's request after the leader left: {events:#?}"));
    assert!(sent.payload.starts_with(b"GET /after-leader"));
    let exit = events
        .iter()
        .position(|e| e.kind == EventKind::Exit && e.tgid == pid)
        .expect("exit event when the last thread goes");
    let send = events
        .iter()
        .position(|e| std::ptr::eq(e, sent))
        .expect("send");
    assert!(send < exit, "the exit comes after the worker's traffic");
}
