//! Root-only: the real `adi` binary capturing real clients and servers on loopback with eBPF.
//! Each test is `#[ignore]`d ("needs root + BPF"), so a plain `cargo test` lists it as ignored;
//! `cargo test -- --include-ignored` runs them as root, as CI does, and then a missing
//! capability or tool is a failure. Every server is started here, on a free port, and stopped
//! by pid.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, need, of_type, py_server, require_bpf, wait_port, Adi, Proc};

fn nginx(root: &Path, port: u16) -> Proc {
    nginx_with(root, port, "off")
}

/// nginx with `sendfile` on or off: on, static bodies go from the file to the socket without
/// passing through user memory.
fn nginx_with(root: &Path, port: u16, sendfile: &str) -> Proc {
    std::fs::create_dir_all(root.join("www")).expect("www");
    std::fs::create_dir_all(root.join("tmp")).expect("tmp");
    std::fs::write(root.join("www/index.html"), "<p>hello from nginx</p>\n").expect("index");
    std::fs::write(root.join("www/data.json"), r#"{"id":7,"name":"widget"}"#).expect("json");
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {r}/nginx.pid; error_log {r}/error.log;
         events {{ worker_connections 256; }}
         http {{ access_log off; client_body_temp_path {r}/tmp/body; proxy_temp_path {r}/tmp/proxy;
           fastcgi_temp_path {r}/tmp/fcgi; uwsgi_temp_path {r}/tmp/uwsgi; scgi_temp_path {r}/tmp/scgi;
           default_type application/octet-stream; types {{ text/html html; application/json json; }}
           sendfile {sendfile};
           server {{ listen 127.0.0.1:{port}; root {r}/www; }} }}",
        r = root.display()
    );
    std::fs::write(root.join("nginx.conf"), conf).expect("conf");
    let p = Proc(
        Command::new("nginx")
            .args([
                "-p",
                &root.display().to_string(),
                "-c",
                &root.join("nginx.conf").display().to_string(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx"),
    );
    wait_port(port);
    p
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root + BPF"]
fn nginx_server_side_http_events_are_exact() {
    require_bpf();
    need(&["nginx", "curl"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = nginx(dir.path(), port);
    let adi = Adi::start(&["--pid", &server.0.id().to_string()]);
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(
        curl(&[
            "-H",
            "X-Multi: a",
            "-H",
            "X-Multi: b",
            &format!("{url}/data.json?x=1")
        ]),
        r#"{"id":7,"name":"widget"}"#
    );
    curl(&["-o", "/dev/null", &format!("{url}/missing")]);
    let (events, _) = adi.stop();

    let http = of_type(&events, "http");
    assert_eq!(http.len(), 4, "{http:#?}");
    let req = http[0];
    assert_eq!(req["direction"], "recv");
    assert_eq!(req["method"], "GET");
    assert_eq!(req["url"], "/data.json?x=1");
    assert_eq!(req["dest_port"], port);
    assert_eq!(req["headers"]["X-Multi"], serde_json::json!(["a", "b"]));
    assert!(req["headers"]["User-Agent"]
        .as_str()
        .is_some_and(|u| u.starts_with("curl/")));
    assert_eq!(req["pid"], server.0.id());
    let rsp = http[1];
    assert_eq!(rsp["direction"], "send");
    assert_eq!(rsp["status_code"], 200);
    assert_eq!(rsp["body"], r#"{"id":7,"name":"widget"}"#);
    assert_eq!(rsp["headers"]["Content-Type"], "application/json");
    assert_eq!(rsp["source_port"], port);
    assert_eq!(rsp["flow_id"], req["flow_id"]);
    assert!(
        rsp["latency_ms"]
            .as_f64()
            .is_some_and(|l| l > 0.0 && l < 5_000.0),
        "{rsp}"
    );
    assert_eq!(http[2]["url"], "/missing");
    assert_eq!(http[3]["status_code"], 404);
    let conns = of_type(&events, "connection");
    let best: Vec<_> = conns.iter().filter(|c| c["confidence"] == 99).collect();
    assert_eq!(
        best.len(),
        2,
        "each connection confirmed by its response: {conns:#?}"
    );
    for c in best {
        assert_eq!(
            (
                c["protocol"].as_str(),
                c["category"].as_str(),
                c["role"].as_str()
            ),
            (Some("http1"), Some("http"), Some("server"))
        );
        assert_eq!(c["dest_port"], port);
    }
}

const GO_CLIENT: &str = r#"package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	c := &http.Client{}
	req, _ := http.NewRequest("POST", os.Args[1]+"/api/items?id=3", strings.NewReader(`{"name":"a"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("X-Two", "1")
	req.Header.Add("X-Two", "2")
	resp, err := c.Do(req)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, len(b))
}
"#;

fn build_go(dir: &Path, src: &str) -> PathBuf {
    std::fs::write(dir.join("main.go"), src).expect("go source");
    let bin = dir.join("client");
    let out = Command::new("go")
        .args(["build", "-o", &bin.display().to_string(), "main.go"])
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GO111MODULE", "off")
        .output()
        .expect("go build");
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

#[test]
#[ignore = "needs root + BPF"]
fn client_side_go_and_curl_calls_with_bodies_and_chunked_responses() {
    require_bpf();
    need(&["go", "curl"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let go_client = build_go(dir.path(), GO_CLIENT);
    let (_server, port) = py_server();
    let url = format!("http://127.0.0.1:{port}");
    let adi = Adi::start(&["--all"]);
    let go = Command::new(&go_client)
        .arg(&url)
        .output()
        .expect("go client");
    assert_eq!(String::from_utf8_lossy(&go.stdout).trim(), "201 11");
    assert_eq!(curl(&[&format!("{url}/chunked")]), "hello chunked world");
    let (events, _) = adi.stop();

    let http = of_type(&events, "http");
    let go_req = http
        .iter()
        .find(|e| e["comm"] == "client" && e["method"] == "POST")
        .unwrap_or_else(|| panic!("Go request: {http:#?}"));
    assert_eq!(go_req["direction"], "send");
    assert_eq!(go_req["url"], "/api/items?id=3");
    assert_eq!(go_req["body"], r#"{"name":"a"}"#);
    assert_eq!(go_req["headers"]["X-Two"], serde_json::json!(["1", "2"]));
    assert_eq!(go_req["dest_port"], port);
    let go_rsp = http
        .iter()
        .find(|e| e["comm"] == "client" && e["status_code"] == 201)
        .expect("Go response");
    assert_eq!(go_rsp["direction"], "recv");
    assert_eq!(go_rsp["body"], r#"{"got": 12}"#);
    assert_eq!(go_rsp["source_port"], port);
    // The server process is watched too (--all): it saw the same request arrive.
    assert!(http.iter().any(|e| e["comm"] == "python3"
        && e["direction"] == "recv"
        && e["url"] == "/api/items?id=3"));
    let chunked = http
        .iter()
        // Other tests run curl at the same time: only this server's answers count.
        .find(|e| e["comm"] == "curl" && e["status_code"] == 200 && e["source_port"] == port)
        .unwrap_or_else(|| panic!("curl response: {http:#?}"));
    assert_eq!(chunked["body"], "hello chunked world");
    assert_eq!(chunked["headers"]["Transfer-Encoding"], "chunked");
    let roles: Vec<_> = of_type(&events, "connection")
        .into_iter()
        .filter(|c| c["comm"] == "client" && c["dest_port"] == port)
        .map(|c| c["role"].clone())
        .collect();
    assert!(
        !roles.is_empty() && roles.iter().all(|r| r == "client"),
        "{roles:?}"
    );
}

/// A Python client `script` (given the port as its argument) that waits for a line on stdin
/// before it starts, so that adi can be watching its pid first.
fn held_client(script: &str, port: u16) -> std::process::Child {
    Command::new("python3")
        .args([
            "-c",
            &format!("import sys; sys.stdin.readline()\n{script}"),
            &port.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client")
}

/// Lets a [`held_client`] go and returns what it printed once it succeeded.
fn release(client: &mut std::process::Child) -> String {
    client
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let mut out = String::new();
    client
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("client output");
    assert!(client.wait().expect("client").success());
    out
}

const KEEPALIVE_CLIENT: &str = r#"
import http.client, sys
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(1000):
    c.request("GET", f"/n/{i}")
    r = c.getresponse(); r.read()
big = b"u" * (10 * 1024 * 1024)
c.request("POST", "/upload", body=big, headers={"Content-Type": "application/octet-stream"})
r = c.getresponse(); print(r.read().decode(), flush=True)
c.request("GET", f"/bytes/{10 * 1024 * 1024}")
r = c.getresponse(); print(len(r.read()), flush=True)
"#;

#[test]
#[ignore = "needs root + BPF"]
fn keepalive_1000_requests_and_10mb_up_and_down_on_one_connection() {
    require_bpf();
    let (_server, port) = py_server();
    let mut client = held_client(KEEPALIVE_CLIENT, port);
    let adi = Adi::start(&["--pid", &client.id().to_string()]);
    let out = release(&mut client);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![r#"{"got": 10485760}"#, "10485760"]
    );
    let (events, err) = adi.stop();

    let http = of_type(&events, "http");
    let flows: HashMap<String, usize> = http.iter().fold(HashMap::new(), |mut m, e| {
        *m.entry(e["flow_id"].to_string()).or_default() += 1;
        m
    });
    assert_eq!(flows.len(), 1, "one keep-alive connection: {flows:?}");
    let requests: Vec<_> = http.iter().filter(|e| e["method"].is_string()).collect();
    let responses: Vec<_> = http
        .iter()
        .filter(|e| e["status_code"].is_number())
        .collect();
    assert_eq!(
        (requests.len(), responses.len()),
        (1002, 1002),
        "stderr: {err:#?}"
    );
    for (i, r) in requests.iter().take(1000).enumerate() {
        assert_eq!(r["url"], format!("/n/{i}"));
    }
    assert!(responses.iter().all(|r| r["latency_ms"].is_number()));
    let upload = requests[1000];
    assert_eq!(upload["method"], "POST");
    let head = upload["bytes"].as_u64().expect("bytes") - 10 * 1024 * 1024;
    assert!(
        head > 50 && head < 400,
        "real size = head + 10 MiB body: {}",
        upload["bytes"]
    );
    assert_eq!(upload["truncated"], true);
    let download = responses[1001];
    assert!(download["bytes"].as_u64().expect("bytes") > 10 * 1024 * 1024);
    assert_eq!(download["truncated"], true);
    assert!(err.iter().any(|l| l.contains("stopped after")), "{err:#?}");
}

/// Three keep-alive connections, 900 requests each (nginx closes one after 1000), as fast as
/// the server answers.
const SAMPLED_CLIENT: &str = r#"
import http.client, sys
port = int(sys.argv[1])
for c in range(3):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(900):
        conn.request("GET", f"/index.html?c={c}&i={i}")
        r = conn.getresponse(); r.read()
    conn.close()
print("done", flush=True)
"#;

#[test]
#[ignore = "needs root + BPF"]
fn max_rate_samples_whole_exchanges_and_counts_every_skipped_message() {
    require_bpf();
    need(&["nginx"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _server = nginx(dir.path(), port);
    let mut client = held_client(SAMPLED_CLIENT, port);
    let adi = Adi::start(&["--pid", &client.id().to_string(), "--max-rate", "50"]);
    let started = std::time::Instant::now();
    assert_eq!(release(&mut client).trim(), "done");
    let elapsed = started.elapsed().as_secs_f64();
    let (events, err) = adi.stop();

    // The client sees each exchange as two messages: its request and the response.
    let messages = 2 * 3 * 900;
    let http = of_type(&events, "http");
    let sampled: u64 = of_type(&events, "lost")
        .iter()
        .filter(|e| e["source"] == "kernel_sampled")
        .map(|e| e["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        http.len() as u64 + sampled,
        messages,
        "every message is an event or counted as sampled; stderr: {err:#?}"
    );
    assert!(
        err.iter()
            .any(|l| l.contains(&format!("{sampled} messages sampled out"))),
        "{err:#?}"
    );
    // At most the budget (50 a second, plus a second's burst and the first 2 exchanges of
    // each connection, which are always captured), and whole exchanges only: each request
    // is followed by its own response on the same connection.
    let requests = http.iter().filter(|e| e["method"].is_string()).count();
    let budget = 50.0 * (elapsed + 2.0) + 6.0;
    assert!(
        requests > 6 && f64::from(u32::try_from(requests).expect("count")) < budget,
        "{requests} exchanges in {elapsed:.1} s"
    );
    let mut by_flow: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for e in &http {
        by_flow.entry(e["flow_id"].to_string()).or_default().push(e);
    }
    assert_eq!(by_flow.len(), 3, "three connections");
    for flow in by_flow.values() {
        let url = |e: &serde_json::Value| e["url"].as_str().map(str::to_owned);
        let conn = url(flow[0]).expect("first is a request");
        let conn = conn.rsplit_once("&i=").expect("url").0.to_owned();
        assert_eq!(
            url(flow[0]),
            Some(format!("{conn}&i=0")),
            "first exchange kept"
        );
        assert_eq!(
            url(flow[2]),
            Some(format!("{conn}&i=1")),
            "second exchange kept"
        );
        let mut last = None;
        for pair in flow.chunks(2) {
            let [request, response] = pair else {
                panic!("a request without its response: {pair:?}");
            };
            let i: u32 = url(request)
                .and_then(|u| u.rsplit_once("&i=").and_then(|(_, i)| i.parse().ok()))
                .expect("request url");
            assert!(last < Some(i), "in order: {last:?} then {i}");
            last = Some(i);
            assert_eq!(response["status_code"], 200, "{response}");
            assert!(response["latency_ms"].is_number(), "{response}");
            // The same answer every time: no response merged with or cut by a skipped one.
            assert_eq!(response["bytes"], flow[1]["bytes"], "{response}");
        }
    }
}

const EARLY_CLIENT: &str = r#"
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(c.getsockname()[1], flush=True)
sys.stdin.readline()  # adi starts meanwhile
c.sendall(b"GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
print(len(c.recv(65536)), flush=True)
"#;

#[test]
#[ignore = "needs root + BPF"]
fn connection_opened_before_adi_started_has_the_right_tuple() {
    require_bpf();
    let (_server, port) = py_server();
    let mut client = Command::new("python3")
        .args(["-c", EARLY_CLIENT, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let local_port: u16 = lines
        .next()
        .expect("port line")
        .expect("read")
        .parse()
        .expect("port");
    let adi = Adi::start(&["--pid", &client.id().to_string()]);
    client
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let _ = lines.next();
    client.wait().expect("client");
    let (events, _) = adi.stop();
    let req = of_type(&events, "http")
        .into_iter()
        .find(|e| e["url"] == "/early")
        .expect("request event");
    assert_eq!(req["direction"], "send");
    assert_eq!(req["source_port"], local_port);
    assert_eq!(req["dest_port"], port);
    assert_eq!(req["source_ip"], "127.0.0.1");
    let conn = of_type(&events, "connection")
        .into_iter()
        .next()
        .expect("connection event");
    assert_eq!(
        conn["role"], "client",
        "not a listening port: the process connected"
    );
}

#[test]
#[ignore = "needs root + BPF"]
fn nothing_watched_says_so_and_exits_cleanly() {
    require_bpf();
    let adi = Adi::start(&[]);
    let (events, err) = adi.stop();
    assert!(events.is_empty());
    assert!(err.iter().any(|l| l.contains("stopped after")), "{err:#?}");
}

/// `--idle-priority`: every thread of adi runs under SCHED_IDLE (policy 5 in field 41 of
/// /proc/PID/task/TID/stat), and capture still works.
#[test]
#[ignore = "needs root + BPF"]
fn idle_priority_puts_every_thread_under_sched_idle() {
    const SCHED_IDLE: &str = "5";
    require_bpf();
    let adi = Adi::start(&["--idle-priority"]);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", adi.pid())).expect("tasks");
    let mut threads = 0;
    for task in tasks {
        let stat = std::fs::read_to_string(task.expect("task").path().join("stat")).expect("stat");
        // Fields after the comm's closing parenthesis start at field 3: policy is field 41.
        let after = &stat[stat.rfind(')').expect("comm") + 1..];
        let policy = after.split_ascii_whitespace().nth(38).expect("policy");
        assert_eq!(policy, SCHED_IDLE, "{stat}");
        threads += 1;
    }
    assert!(threads >= 2, "the runtime's threads too ({threads})");
    let (_, err) = adi.stop();
    assert!(err.iter().any(|l| l.contains("stopped after")), "{err:#?}");
}

#[test]
#[ignore = "needs root + BPF"]
fn unwritable_sink_is_one_clear_sentence() {
    require_bpf();
    let out = Command::new(env!("CARGO_BIN_EXE_adi"))
        .args([
            "--all",
            "--sink",
            "jsonl=/proc/adi-no-such-dir/events.jsonl",
        ])
        .output()
        .expect("adi");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("adi: cannot open /proc/adi-no-such-dir/events.jsonl:"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
#[ignore = "needs root + BPF"]
fn full_disk_sink_counts_failed_writes_and_adi_keeps_going() {
    require_bpf();
    need(&["curl"]);
    let mnt = tempfile::tempdir().expect("tempdir");
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=16k",
            "tmpfs",
            &mnt.path().display().to_string(),
        ])
        .status()
        .expect("mount");
    assert!(ok.success());
    let (server, port) = py_server();
    let sink = format!("jsonl={}", mnt.path().join("events.jsonl").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_adi"))
        .args(["--pid", &server.0.id().to_string(), "--sink", &sink])
        .stderr(Stdio::piped())
        .spawn()
        .expect("adi");
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..40 {
        curl(&[
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/bytes/3000"),
        ]);
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id().cast_signed(), libc::SIGTERM) };
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    let status = child.wait().expect("adi");
    let _ = Command::new("umount").arg(mnt.path()).status();
    assert!(status.success(), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let summary = err
        .lines()
        .find(|l| l.starts_with("adi: lost: "))
        .expect("loss summary");
    let failed: u64 = summary
        .split(", ")
        .find_map(|p| {
            p.strip_suffix(&format!(" failed writes to {sink}"))?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("failed-writes count in {summary}"));
    assert!(failed > 0, "{summary}");
}

const DYING_CLIENT: &str = r#"
import os, socket, sys
sys.stdin.readline()
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
# Half a request: the head promises a body that never comes, then the process dies.
c.sendall(b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nfirst bytes")
os._exit(3)
"#;

#[test]
#[ignore = "needs root + BPF"]
fn watched_process_exiting_mid_request_is_handled() {
    require_bpf();
    let (_server, port) = py_server();
    let mut client = Command::new("python3")
        .args(["-c", DYING_CLIENT, &port.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("client");
    let adi = Adi::start(&["--pid", &client.id().to_string()]);
    client
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    assert_eq!(client.wait().expect("client").code(), Some(3));
    let (events, err) = adi.stop();
    assert!(!err.iter().any(|l| l.contains("panicked")), "{err:#?}");
    let conn = of_type(&events, "connection");
    assert!(
        conn.iter()
            .any(|c| c["protocol"] == "http1" && c["dest_port"] == port),
        "{events:#?}"
    );
    // The cut request is still reported when its connection ends: its head, the bytes that
    // came, and `truncated`.
    let req = of_type(&events, "http")
        .into_iter()
        .find(|e| e["url"] == "/half")
        .expect("request");
    assert_eq!(req["method"], "POST");
    assert_eq!(req["body"], "first bytes");
    assert_eq!(req["truncated"], true);
}

const FLOOD_CLIENT: &str = r#"
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
end = time.time() + 20
n = 0
while time.time() < end and n < 200000:
    c.request("GET", "/n"); c.getresponse().read(); n += 1
"#;

#[test]
#[ignore = "needs root + BPF"]
fn sigterm_during_heavy_traffic_flushes_and_reports() {
    require_bpf();
    let (server, port) = py_server();
    let mut flood: Vec<Proc> = (0..2)
        .map(|_| {
            Proc(
                Command::new("python3")
                    .args(["-c", FLOOD_CLIENT, &port.to_string()])
                    .spawn()
                    .expect("flood"),
            )
        })
        .collect();
    let adi = Adi::start(&["--pid", &server.0.id().to_string()]);
    std::thread::sleep(Duration::from_secs(3));
    let started = std::time::Instant::now();
    let (events, err) = adi.stop();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "adi stops promptly under load"
    );
    for f in &mut flood {
        let _ = f.0.kill();
    }
    assert!(!err.iter().any(|l| l.contains("panicked")), "{err:#?}");
    let http = of_type(&events, "http");
    assert!(http.len() > 100, "traffic was captured: {}", http.len());
    // Every line is whole JSON (the harness parsed them all) and the summary counts losses.
    let lost = err
        .iter()
        .find(|l| l.starts_with("adi: lost: "))
        .expect("loss summary");
    assert!(
        lost.contains("kernel ring buffer") && lost.contains("queued for"),
        "{lost}"
    );
    assert!(
        err.iter().any(|l| l.starts_with("adi: stopped after")),
        "{err:#?}"
    );
}

#[test]
#[ignore = "needs root + BPF"]
fn sendfile_bodies_are_counted_not_seen_and_keepalive_stays_in_step() {
    require_bpf();
    need(&["nginx", "curl"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = nginx_with(dir.path(), port, "on");
    std::fs::write(dir.path().join("www/big.bin"), vec![b'z'; 200_000]).expect("big file");
    let adi = Adi::start(&["--pid", &server.0.id().to_string()]);
    let url = format!("http://127.0.0.1:{port}");
    // Two responses on one keep-alive connection: the second is found only if the first
    // body, sent with sendfile, was stepped over by its real size.
    curl(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &format!("{url}/big.bin"),
        &format!("{url}/data.json"),
    ]);
    let (events, _) = adi.stop();
    let http = of_type(&events, "http");
    let responses: Vec<_> = http.iter().filter(|e| e["status_code"] == 200).collect();
    assert_eq!(responses.len(), 2, "{http:#?}");
    let big = responses[0];
    assert!(
        big["bytes"].as_u64().expect("bytes") > 200_000,
        "real size: {big}"
    );
    assert_eq!(big["truncated"], true);
    assert_eq!(big["body"], "", "sendfile bytes never reach user memory");
    // The small file goes by sendfile too: its head is parsed in step, its body counted.
    assert_eq!(responses[1]["headers"]["Content-Length"], "24");
    assert!(responses[1]["bytes"].as_u64().expect("bytes") > 24);
    assert_eq!(responses[0]["flow_id"], responses[1]["flow_id"]);
    let urls: Vec<_> = http.iter().filter_map(|e| e["url"].as_str()).collect();
    assert_eq!(urls, vec!["/big.bin", "/data.json"]);
}

#[test]
#[ignore = "needs root + BPF"]
fn secrets_are_redacted_unless_no_redact() {
    require_bpf();
    need(&["curl"]);
    let (server, port) = py_server();
    let url = format!("http://127.0.0.1:{port}/login?token=qtok&x=1");
    for redact in [true, false] {
        let pid = server.0.id().to_string();
        let mut args = vec!["--pid", pid.as_str()];
        if !redact {
            args.push("--no-redact");
        }
        let adi = Adi::start(&args);
        curl(&[
            "-o",
            "/dev/null",
            "-H",
            "Authorization: Bearer topsecret",
            "-H",
            "Cookie: sid=cookieval",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"user":"alice","password":"hunter2"}"#,
            &url,
        ]);
        let (events, _) = adi.stop();
        let req = of_type(&events, "http")
            .into_iter()
            .find(|e| e["method"] == "POST")
            .expect("request");
        let text = serde_json::to_string(&events).expect("json");
        let leaked: Vec<_> = ["topsecret", "cookieval", "hunter2", "qtok"]
            .into_iter()
            .filter(|s| text.contains(s))
            .collect();
        if redact {
            assert!(
                leaked.is_empty(),
                "secrets reached the sink: {leaked:?}\n{req}"
            );
            assert_eq!(req["headers"]["Authorization"], "<redacted>");
            assert_eq!(req["url"], "/login?token=<redacted>&x=1");
            assert!(
                req["body"]
                    .as_str()
                    .expect("body")
                    .contains(r#""user":"alice""#),
                "{req}"
            );
        } else {
            assert_eq!(leaked.len(), 4, "--no-redact keeps them: {req}");
        }
    }
}

/// The same traffic live and offline: adi watches a server while tcpdump captures the
/// loopback, then `adi replay` reads the capture; the `http` and `message` events agree on
/// everything the traffic decides (times, pids, process fields and flow ids masked).
#[test]
#[ignore = "needs root + BPF"]
fn live_and_replayed_capture_give_the_same_events() {
    require_bpf();
    need(&["curl", "tcpdump"]);
    let (server, port) = py_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("traffic.pcap");
    let mut dump = Proc(
        Command::new("tcpdump")
            .args(["-i", "lo", "-U", "-s", "0", "-w"])
            .arg(&pcap)
            .args(["tcp", "port", &port.to_string()])
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump"),
    );
    // tcpdump says it listens once the capture runs. Its stderr stays open until it exits
    // (it reports its counts there at exit: a closed pipe would kill it with SIGPIPE).
    let mut line = String::new();
    let mut dump_err = BufReader::new(dump.0.stderr.take().expect("stderr"));
    dump_err.read_line(&mut line).expect("tcpdump starts");
    assert!(line.contains("listening"), "{line}");
    let adi = Adi::start(&["--pid", &server.0.id().to_string()]);
    let base = format!("http://127.0.0.1:{port}");
    curl(&["-o", "/dev/null", &format!("{base}/bytes/10")]);
    curl(&["-o", "/dev/null", &format!("{base}/chunked")]);
    curl(&[
        "-o",
        "/dev/null",
        "-d",
        r#"{"name":"widget"}"#,
        &format!("{base}/items"),
    ]);
    let (live, _) = adi.stop();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child: SIGINT makes tcpdump flush and exit.
    unsafe { libc::kill(dump.0.id().cast_signed(), libc::SIGINT) };
    let mut counts = String::new();
    let _ = dump_err.read_to_string(&mut counts);
    let status = dump.0.wait().expect("tcpdump");
    assert!(status.success(), "tcpdump: {status} {counts}");
    let out = Command::new(env!("CARGO_BIN_EXE_adi"))
        .arg("replay")
        .arg(&pcap)
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    // What the traffic decides, per message, in order.
    let essence = |events: &[serde_json::Value]| -> Vec<String> {
        of_type(events, "http")
            .iter()
            .map(|e| {
                let mut e = (*e).clone();
                let o = e.as_object_mut().expect("object");
                for masked in [
                    "timestamp",
                    "pid",
                    "comm",
                    "cmdline",
                    "service",
                    "peer_service",
                    "direction",
                    "flow_id",
                    "latency_ms",
                ] {
                    o.remove(masked);
                }
                e.to_string()
            })
            .collect()
    };
    let (live, replayed) = (essence(&live), essence(&replayed));
    assert_eq!(live.len(), 6, "three exchanges: {live:#?}");
    assert_eq!(replayed.len(), 6, "tcpdump said: {counts}");
    assert_eq!(live, replayed);
}
