//! Root-only: TLS plaintext read from OpenSSL (Debian's libssl3) by adi's uprobes, with real
//! clients and servers on loopback: curl to nginx over HTTPS (HTTP/1.1 and HTTP/2), Python's
//! `urllib` to a Python `ssl` server, psql to PostgreSQL with `sslmode=require`, and redis-cli
//! `--tls` to a TLS redis-server. Both ends of every connection must be classified from the
//! plaintext (not as `tls`), with `"tls": true` on their events, and requests paired with
//! their responses.
//!
//! adi starts first, with the ADI_PROFILE opt-in: each server and client is watched from its
//! exec (servers fork their workers after that). Same rules as `live.rs`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::services::{
    as_postgres, held, held_psql, held_python, initdb_with_password, owned_tempdir, serial, setup,
    Held, Server, PGBIN,
};
use common::{free_port, need, of_type, require_bpf, wait_listener, Adi};
use serde_json::Value;

/// A self-signed certificate and key for `localhost` in `dir` (`cert.pem`, `key.pem`).
fn self_signed(dir: &Path) {
    setup(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stderr(Stdio::null()),
    );
}

/// A profile name of this test run, and adi started with its opt-in (and `extra` flags).
fn adi_opted_in(test: &str, extra: &[&str]) -> (String, Adi) {
    let profile = format!("adi-tls-{test}-{}", std::process::id());
    let mut args = vec!["--profile-allowed", &profile];
    args.extend_from_slice(extra);
    let adi = Adi::start(&args);
    (profile, adi)
}

/// The events of `events` of type `t` on connections to `port`.
fn to_port<'a>(events: &'a [Value], t: &str, port: u16) -> Vec<&'a Value> {
    of_type(events, t)
        .into_iter()
        .filter(|e| e["dest_port"] == port || e["source_port"] == port)
        .collect()
}

/// The last connection event of each (pid, client port) on connections to `port`: what each
/// end finally said about its connection.
fn final_verdicts(events: &[Value], port: u16) -> Vec<&Value> {
    let mut last: BTreeMap<(u64, u64), &Value> = BTreeMap::new();
    for c in to_port(events, "connection", port) {
        let key = (
            c["pid"].as_u64().expect("pid"),
            c["source_port"].as_u64().expect("source_port"),
        );
        last.insert(key, c);
    }
    last.into_values().collect()
}

/// Prints events on `port`, for a failing test's log.
fn show(events: &[Value], port: u16) {
    for e in events
        .iter()
        .filter(|e| e["dest_port"] == port || e["source_port"] == port)
    {
        let mut e = e.clone();
        if let Some(o) = e.as_object_mut() {
            for noisy in ["raw_payload", "headers", "cmdline", "timestamp", "body"] {
                o.remove(noisy);
            }
        }
        eprintln!("{e}");
    }
}

/// (method, url) of the requests and (status, has latency) of the responses that `pid` saw
/// in `http` events on connections to `port`, every one of them with `"tls": true`.
fn exchanges_of(events: &[Value], port: u16, pid: u32) -> (Vec<(String, String)>, Vec<u64>) {
    let mine: Vec<&Value> = to_port(events, "http", port)
        .into_iter()
        .filter(|e| e["pid"] == pid)
        .collect();
    for e in &mine {
        assert_eq!(e["tls"], true, "plaintext events say so: {e}");
    }
    let requests = mine
        .iter()
        .filter_map(|e| {
            Some((
                e["method"].as_str()?.to_owned(),
                e["url"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let statuses = mine
        .iter()
        .filter_map(|e| {
            let status = e["status_code"].as_u64()?;
            assert!(e["latency_ms"].is_number(), "paired with its request: {e}");
            Some(status)
        })
        .collect();
    (requests, statuses)
}

const NGINX_CONF: &str = r#"
worker_processes 1;
daemon off;
pid DIR/nginx.pid;
error_log DIR/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path DIR/body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
    server {
        listen 127.0.0.1:PORT ssl http2;
        ssl_certificate DIR/cert.pem;
        ssl_certificate_key DIR/key.pem;
        location / { return 200 "hello over tls\n"; }
    }
}
"#;

/// curl (libcurl with OpenSSL 3) to nginx over HTTPS: an HTTP/1.1 request with a query and an
/// HTTP/2 one, each parsed at both ends from the plaintext (HTTP/2 with HPACK, paired by
/// stream).
#[test]
#[ignore = "needs root + BPF"]
fn curl_to_nginx_over_https() {
    require_bpf();
    need(&["nginx", "curl", "openssl"]);
    let _turn = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    self_signed(dir.path());
    let port = free_port();
    let d = dir.path().display().to_string();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        NGINX_CONF
            .replace("DIR", &d)
            .replace("PORT", &port.to_string()),
    )
    .expect("nginx.conf");
    let (profile, adi) = adi_opted_in("nginx", &[]);
    let nginx = Server::spawn(
        Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .env("ADI_PROFILE", &profile),
        libc::SIGQUIT,
    );
    // The master and its worker both hold the listening socket.
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !common::listener_pids(port).contains(&nginx.pid()) {
        assert!(std::time::Instant::now() < end, "nginx never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("https://127.0.0.1:{port}");
    let curl = |version: &str, path: &str| {
        let mut c = Held::spawn({
            let mut cmd = held(&["curl", "-sSk", version, &format!("{base}{path}")]);
            cmd.env("ADI_PROFILE", &profile);
            cmd
        });
        let out = c.run();
        assert_eq!(out, "hello over tls\n");
        c.pid()
    };
    let h1 = curl("--http1.1", "/orders/42?expand=items");
    let h2 = curl("--http2", "/h2/status");
    let (events, _) = adi.stop();
    drop(nginx);
    show(&events, port);

    let worker = to_port(&events, "http", port)
        .into_iter()
        .find(|e| e["comm"] == "nginx")
        .and_then(|e| e["pid"].as_u64())
        .expect("nginx's worker reported the request");
    let get = |path: &str| ("GET".to_owned(), path.to_owned());
    assert_eq!(
        exchanges_of(&events, port, h1),
        (vec![get("/orders/42?expand=items")], vec![200])
    );
    assert_eq!(
        exchanges_of(&events, port, h2),
        (vec![get("/h2/status")], vec![200])
    );
    // The worker served both connections.
    let worker_pid = u32::try_from(worker).expect("pid");
    let (mut requests, statuses) = exchanges_of(&events, port, worker_pid);
    requests.sort();
    assert_eq!(
        (requests, statuses),
        (
            vec![get("/h2/status"), get("/orders/42?expand=items")],
            vec![200, 200]
        )
    );
    // HTTP/2 events say so, and name their stream: curl's first, 1.
    for e in to_port(&events, "http", port) {
        let h2_end = e["pid"] == h2 || (e["pid"] == worker && e["version"] == "2");
        if h2_end {
            assert_eq!(
                (&e["version"], &e["stream_id"]),
                (&Value::from("2"), &Value::from(1)),
                "{e}"
            );
        } else {
            assert!(e.get("version").is_none(), "{e}");
        }
    }
    // Each end of each connection ends classified from its plaintext, marked tls: the
    // HTTP/1.1 one `http1`, the HTTP/2 one `http2`.
    let verdicts = final_verdicts(&events, port);
    assert_eq!(verdicts.len(), 4, "two connections, two ends each");
    for v in &verdicts {
        assert_eq!(v["tls"], true, "{v}");
    }
    let protocol_of = |pid: u32| -> Vec<&str> {
        verdicts
            .iter()
            .filter(|v| v["pid"] == pid)
            .filter_map(|v| v["protocol"].as_str())
            .collect()
    };
    assert_eq!(protocol_of(h1), ["http1"]);
    assert_eq!(protocol_of(h2), ["http2"]);
    let mut at_worker = protocol_of(worker_pid);
    at_worker.sort_unstable();
    assert_eq!(at_worker, ["http1", "http2"]);
}

const PY_TLS_SERVER: &str = r#"
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

const PY_TLS_CLIENT: &str = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for i in range(3):
    urllib.request.urlopen(f"https://127.0.0.1:{sys.argv[1]}/items/{i}?q=x", context=ctx).read()
"#;

/// Python's `ssl` (OpenSSL 3, `SSL_read_ex`/`SSL_write_ex`) on both ends: three requests,
/// each on its own connection, parsed at the client and at the server.
#[test]
#[ignore = "needs root + BPF"]
fn python_urllib_to_python_tls_server() {
    python_urllib_to_python_tls_server_with(&[]);
}

/// The same with the uprobes set for each watched process alone (`--tls-uprobes watched`):
/// the server and the client are probed at their exec, before they load OpenSSL.
#[test]
#[ignore = "needs root + BPF"]
fn python_tls_with_uprobes_for_watched_processes_only() {
    python_urllib_to_python_tls_server_with(&["--tls-uprobes", "watched"]);
}

fn python_urllib_to_python_tls_server_with(flags: &[&str]) {
    require_bpf();
    need(&["python3", "openssl"]);
    let _turn = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    self_signed(dir.path());
    let (profile, adi) = adi_opted_in("python", flags);
    let (server, port) = Server::spawn_printing_port(
        Command::new(common::python_executable())
            .args(["-c", PY_TLS_SERVER])
            .arg(dir.path().join("cert.pem"))
            .arg(dir.path().join("key.pem"))
            .env("ADI_PROFILE", &profile),
        libc::SIGTERM,
    );
    let mut client = Held::spawn({
        let mut cmd = held_python(PY_TLS_CLIENT, &[&port.to_string()]);
        cmd.env("ADI_PROFILE", &profile);
        cmd
    });
    if flags.contains(&"watched") {
        // With `watched`, adi probes a program at its exec, and a call made before adi has
        // attached is not read (docs/tls.md): the client, exec'd and waiting for its go,
        // gives adi the time a busy machine may need.
        std::thread::sleep(Duration::from_secs(1));
    }
    client.run();
    let (events, _) = adi.stop();
    let server_pid = server.pid();
    drop(server);
    show(&events, port);
    let want: Vec<(String, String)> = (0..3)
        .map(|i| ("GET".to_owned(), format!("/items/{i}?q=x")))
        .collect();
    assert_eq!(
        exchanges_of(&events, port, client.pid()),
        (want.clone(), vec![200; 3])
    );
    assert_eq!(
        exchanges_of(&events, port, server_pid),
        (want, vec![200; 3])
    );
    let verdicts = final_verdicts(&events, port);
    assert_eq!(verdicts.len(), 6, "three connections, two ends each");
    for v in verdicts {
        assert_eq!(
            (v["protocol"].as_str(), &v["tls"]),
            (Some("http1"), &Value::Bool(true)),
            "{v}"
        );
    }
}

/// psql to PostgreSQL with `sslmode=require`: the SSLRequest in clear, then TLS. The login and
/// the query are read from the plaintext at both ends: `postgres`, `tls: true`, the login's
/// user on the connection events and the query as `message` events.
#[test]
#[ignore = "needs root + BPF"]
fn psql_to_postgresql_with_sslmode_require() {
    let (initdb, postgres) = (format!("{PGBIN}/initdb"), format!("{PGBIN}/postgres"));
    require_bpf();
    need(&[&initdb, &postgres, "psql", "openssl"]);
    let _turn = serial();
    let dir = owned_tempdir("postgres");
    let d = |p: &str| dir.path().join(p).display().to_string();
    let password = format!("pg-tls-{}", std::process::id());
    initdb_with_password(&initdb, &d, &password);
    self_signed(dir.path());
    // The server reads its key as the postgres user, and only from a file of its own.
    setup(Command::new("chown").args(["postgres", &d("key.pem"), &d("cert.pem")]));
    setup(Command::new("chmod").args(["600", &d("key.pem")]));
    let (profile, adi) = adi_opted_in("postgres", &[]);
    let port = free_port();
    let p = port.to_string();
    let server = Server::spawn(
        as_postgres(&postgres)
            .args(["-D", &d("data"), "-p", &p])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("unix_socket_directories={}", d(""))])
            .args(["-c", "fsync=off", "-c", "ssl=on"])
            .args(["-c", &format!("ssl_cert_file={}", d("cert.pem"))])
            .args(["-c", &format!("ssl_key_file={}", d("key.pem"))])
            .env("ADI_PROFILE", &profile),
        libc::SIGINT,
    );
    wait_listener(port, server.pid(), Duration::from_secs(20));
    let mut psql = Held::spawn({
        let query = "select count(*) from pg_class where relname = 'pg_type'";
        let mut cmd = held_psql(&p, &password, "require", query);
        cmd.env("ADI_PROFILE", &profile);
        cmd
    });
    assert_eq!(psql.run().trim(), "1");
    let (events, _) = adi.stop();
    drop(server);
    show(&events, port);
    let verdicts = final_verdicts(&events, port);
    assert_eq!(verdicts.len(), 2, "one connection, two ends");
    for v in &verdicts {
        assert_eq!(v["protocol"], "postgres", "{v}");
        assert_eq!(v["tls"], true, "{v}");
        assert_eq!(v["summary"]["user"], "postgres", "{v}");
    }
    assert!(verdicts.iter().any(|v| v["pid"] == psql.pid()));
    let queries: Vec<&Value> = to_port(&events, "message", port)
        .into_iter()
        .filter(|m| m["kind"] == "request" && m["op"] == "query")
        .collect();
    assert_eq!(queries.len(), 2, "the query, at each end");
    for q in &queries {
        assert_eq!(q["tls"], true, "{q}");
        assert_eq!(
            q["resource"], "select count(*) from pg_class where relname = ?",
            "normalised: {q}"
        );
    }
    for e in &events {
        assert!(
            !e.to_string().contains(&password),
            "the password is in no event: {e}"
        );
    }
}

/// redis-cli `--tls` to redis-server with a TLS port (Debian's build links OpenSSL 3): SET
/// and GET read from the plaintext at both ends.
#[test]
#[ignore = "needs root + BPF"]
fn redis_cli_over_tls() {
    require_bpf();
    need(&["redis-server", "redis-cli", "openssl"]);
    let _turn = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    self_signed(dir.path());
    let (profile, adi) = adi_opted_in("redis", &[]);
    let port = free_port();
    let p = port.to_string();
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let server = Server::spawn(
        Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &p, "--bind", "127.0.0.1"])
            .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
            .args(["--tls-ca-cert-file", &cert, "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .env("ADI_PROFILE", &profile),
        libc::SIGTERM,
    );
    wait_listener(port, server.pid(), Duration::from_secs(20));
    let cli = |args: &[&str]| {
        let mut argv = vec![
            "redis-cli",
            "--tls",
            "--insecure",
            "-h",
            "127.0.0.1",
            "-p",
            &p,
        ];
        argv.extend_from_slice(args);
        let mut c = Held::spawn({
            let mut cmd = held(&argv);
            cmd.env("ADI_PROFILE", &profile);
            cmd
        });
        let out = c.run();
        (c.pid(), out)
    };
    let (set_pid, out) = cli(&["SET", "tls:key", "v1"]);
    assert_eq!(out.trim(), "OK");
    let (get_pid, out) = cli(&["GET", "tls:key"]);
    assert_eq!(out.trim(), "v1");
    let (events, _) = adi.stop();
    let server_pid = server.pid();
    drop(server);
    show(&events, port);
    let verdicts = final_verdicts(&events, port);
    assert_eq!(verdicts.len(), 4, "two connections, two ends each");
    for v in &verdicts {
        assert_eq!(
            (v["protocol"].as_str(), &v["tls"]),
            (Some("redis"), &Value::Bool(true)),
            "{v}"
        );
    }
    for (pid, op) in [
        (set_pid, "SET"),
        (get_pid, "GET"),
        (server_pid, "SET"),
        (server_pid, "GET"),
    ] {
        let found = to_port(&events, "message", port).into_iter().any(|m| {
            m["pid"] == pid && m["kind"] == "request" && m["op"] == op && m["tls"] == true
        });
        assert!(found, "{op} seen by {pid}");
    }
}
