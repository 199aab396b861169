//! Root-only: Go programs in live capture. A Go client calls a Go server (Go 1.23 and 1.27 test
//! targets, `testdata/go/src`).
//! - `--go-uprobes on`: over plain HTTP the same request is one `go_http` event (uprobes) and
//!   one `http` event (socket capture) of the same pid; over HTTPS with `--tls-uprobes off`
//!   only the uprobes see it, next to a `tls` connection. `--go-uprobes off` turns them off.
//! - The defaults (`--go-uprobes auto`, `--tls-uprobes on`): Go's `crypto/tls` plaintext is
//!   read, so HTTPS requests are `http` events with `"tls": true` at both ends, over HTTP/1.1
//!   and HTTP/2 (stream ids, paired responses), and no `go_http` events: the HTTP uprobes are
//!   not attached where they would add nothing.
//!
//! `#[ignore]`d; when run, a failure without root, the toolchains or openssl.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use adi_probes::go::testing::{self, Toolchain, Variant};
use common::{need, of_type, require_bpf, Adi, Proc};
use serde_json::Value;

/// How the server serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serve {
    Http,
    /// HTTPS, HTTP/1.1 only.
    Https,
    /// HTTPS offering HTTP/2 (the client takes it).
    Https2,
}

/// Runs client calls (`-n`) against a server under adi; returns adi's events and the two pids.
fn run(t: &Toolchain, serve: Serve, n: u32, adi_args: &[&str]) -> (Vec<Value>, u32, u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Command::new(t.binary(Variant::Default, "server"));
    server.args(["-addr", "127.0.0.1:0"]);
    let tls = serve != Serve::Http;
    if tls {
        let (cert, key) = common::certificate(dir.path());
        server.arg("-tls-cert").arg(cert).arg("-tls-key").arg(key);
    }
    if serve == Serve::Https2 {
        server.arg("-h2");
    }
    let mut server = server.stdout(Stdio::piped()).spawn().expect("server");
    let line = common::first_line(&mut server);
    let server = Proc(server);
    let line = line.expect("listening line");
    let addr = line.trim_start_matches("listening on ").to_owned();
    let scheme = if tls { "https" } else { "http" };
    let mut client = Proc(
        Command::new(t.binary(Variant::Default, "client"))
            .args(["-wait", "-insecure", "-n", &n.to_string()])
            .arg(format!("{scheme}://{addr}/status/201?x=1"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("client"),
    );
    let (sp, cp) = (server.0.id(), client.0.id());
    let (s, c) = (sp.to_string(), cp.to_string());
    let mut args = vec!["--pid", &s, "--pid", &c];
    args.extend_from_slice(adi_args);
    let mut adi = Adi::start(&args);
    if adi_args.contains(&"on") {
        for pid in [sp, cp] {
            adi.wait_stderr(
                &format!("Go uprobes on pid {pid} "),
                Duration::from_secs(20),
            );
        }
    } else if adi_args.is_empty() {
        // The defaults: crypto/tls probed in both programs, and no HTTP uprobes.
        adi.wait_stderr("TLS plaintext read from", Duration::from_secs(20));
        for pid in [sp, cp] {
            adi.wait_stderr(
                &format!("Go uprobes not needed on pid {pid}:"),
                Duration::from_secs(20),
            );
        }
    }
    let mut stdin = client.0.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("start the client");
    assert!(client.0.wait().expect("client").success());
    let (events, _) = adi.stop();
    drop(server);
    (events, sp, cp)
}

fn with_pid<'a>(events: &[&'a Value], pid: u32) -> Vec<&'a Value> {
    events.iter().copied().filter(|e| e["pid"] == pid).collect()
}

fn check_version(version: &str) {
    require_bpf();
    need(&["openssl"]);
    let t = testing::toolchain(version);
    // Plain HTTP: one go_http and one http request per side, same pid.
    let (events, server, client) = run(t, Serve::Http, 1, &["--go-uprobes", "on"]);
    let go = of_type(&events, "go_http");
    let http = of_type(&events, "http");
    for (pid, side) in [(client, "client"), (server, "server")] {
        let g = with_pid(&go, pid);
        assert_eq!(g.len(), 1, "{version} {side}: {go:#?}");
        assert_eq!(g[0]["side"], side);
        assert_eq!(g[0]["method"], "GET");
        assert_eq!(g[0]["status_code"], 201);
        assert_eq!(g[0]["go_version"], t.go_version.as_str());
        assert!(g[0]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://") && u.ends_with("/status/201?x=1")));
        assert_eq!(g[0]["headers"]["X-Two"], serde_json::json!(["one", "two"]));
        let requests: Vec<&Value> = with_pid(&http, pid)
            .into_iter()
            .filter(|e| e["method"] == "GET")
            .collect();
        assert_eq!(requests.len(), 1, "{version} {side}: {http:#?}");
        assert_eq!(requests[0]["url"], "/status/201?x=1");
    }
    // HTTPS without TLS plaintext: only the uprobes see the request; the connection is tls.
    let (events, server, client) = run(
        t,
        Serve::Https,
        1,
        &["--go-uprobes", "on", "--tls-uprobes", "off"],
    );
    let go = of_type(&events, "go_http");
    for pid in [client, server] {
        let g = with_pid(&go, pid);
        assert_eq!(g.len(), 1, "{version}: {go:#?}");
        assert!(g[0]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")));
        assert_eq!(g[0]["status_code"], 201);
    }
    assert!(of_type(&events, "http").is_empty(), "{events:#?}");
    let conns = of_type(&events, "connection");
    assert!(
        with_pid(&conns, client)
            .iter()
            .any(|e| e["protocol"] == "tls"),
        "{conns:#?}"
    );
    // Off: no go_http at all.
    let (events, _, _) = run(t, Serve::Http, 1, &["--go-uprobes", "off"]);
    assert!(of_type(&events, "go_http").is_empty(), "{events:#?}");
    assert!(!of_type(&events, "http").is_empty());
    // The defaults: crypto/tls plaintext, HTTP/1.1 then HTTP/2.
    for serve in [Serve::Https, Serve::Https2] {
        let (events, server, client) = run(t, serve, 3, &[]);
        https_from_plaintext(version, &events, server, client, serve == Serve::Https2);
    }
}

/// Three requests over one kept-alive HTTPS connection, read from crypto/tls at both ends:
/// `http` events with `"tls": true`, method, path with query, status paired with its request,
/// HTTP/2 ones with `version` "2" and the client's stream ids (1, 3, 5); the connection
/// classified from the plaintext at both ends; no `go_http` events.
fn https_from_plaintext(version: &str, events: &[Value], server: u32, client: u32, h2: bool) {
    let what = format!("{version} {}", if h2 { "HTTP/2" } else { "HTTP/1.1" });
    assert!(of_type(events, "go_http").is_empty(), "{what}: {events:#?}");
    let http = of_type(events, "http");
    for pid in [client, server] {
        let mine = with_pid(&http, pid);
        let requests: Vec<&Value> = mine
            .iter()
            .copied()
            .filter(|e| e["method"] == "GET")
            .collect();
        let responses: Vec<&Value> = mine
            .iter()
            .copied()
            .filter(|e| e["status_code"].is_number())
            .collect();
        assert_eq!(requests.len(), 3, "{what} pid {pid}: {http:#?}");
        assert_eq!(responses.len(), 3, "{what} pid {pid}: {http:#?}");
        for e in &mine {
            assert_eq!(e["tls"], true, "{what}: {e}");
            if h2 {
                assert_eq!(e["version"], "2", "{what}: {e}");
            } else {
                assert!(e.get("version").is_none(), "{what}: {e}");
            }
        }
        for r in &requests {
            assert_eq!(r["url"], "/status/201?x=1", "{what}: {r}");
        }
        for r in &responses {
            assert_eq!(r["status_code"], 201, "{what}: {r}");
            assert!(r["latency_ms"].is_number(), "{what}: paired: {r}");
        }
        if h2 {
            let mut streams: Vec<u64> = requests
                .iter()
                .filter_map(|r| r["stream_id"].as_u64())
                .collect();
            streams.sort_unstable();
            assert_eq!(streams, [1, 3, 5], "{what}: {requests:#?}");
        }
    }
    let protocol = if h2 { "http2" } else { "http1" };
    let conns = of_type(events, "connection");
    for pid in [client, server] {
        let last = with_pid(&conns, pid).into_iter().last();
        let last = last.unwrap_or_else(|| panic!("{what}: no connection of {pid}: {conns:#?}"));
        assert_eq!(last["protocol"], protocol, "{what}: {last}");
        assert_eq!(last["tls"], true, "{what}: {last}");
    }
}

#[test]
#[ignore = "needs root + BPF"]
fn go_http_and_http_events_go_1_23() {
    check_version("1.23.9");
}

#[test]
#[ignore = "needs root + BPF"]
fn go_http_and_http_events_go_1_27() {
    check_version("1.27.3");
}
