//! Root-only: gRPC with the real grpcio (PyPI) and grpc-go (Debian's golang-google-grpc-dev)
//! clients and servers: a unary call, a server-streaming call and a call that fails with
//! NOT_FOUND, parsed as `http` events with `version: "2"`, their stream, and `grpc` facts
//! (service, method, status, message, message sizes), each response paired with its request.
//!
//! - over HTTP/2 cleartext, grpcio to grpcio: both ends;
//! - over TLS, grpcio to grpc-go and grpc-go to grpcio: the Go end, read from `crypto/tls`
//!   (`"tls": true`). grpcio links its own BoringSSL without symbols, so its end of a TLS
//!   connection stays `tls` (docs/tls.md).
//!
//! `#[ignore]`d like `live.rs` (root, BPF, grpcio, and Go 1.19 with golang-google-grpc-dev for
//! the TLS ones); adi starts first, with the ADI_PROFILE opt-in.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::services::{held_python, serial, Held, Server};
use common::{need, of_type, require_bpf, Adi};
use serde_json::{json, Value};

const SERVER: &str = r#"
import sys
from concurrent import futures
import grpc
def ping(req, ctx):
    return b"pong:" + req
def items(req, ctx):
    for i in range(3):
        yield b"item%d" % i
def get(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "no such item")
handlers = {
    "Ping": grpc.unary_unary_rpc_method_handler(ping),
    "List": grpc.unary_stream_rpc_method_handler(items),
    "Get": grpc.unary_unary_rpc_method_handler(get),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("demo.Catalog", handlers),))
if len(sys.argv) > 2:  # TLS: certificate and key files
    pair = (open(sys.argv[2], "rb").read(), open(sys.argv[1], "rb").read())
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([pair]))
else:
    port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

const CLIENT: &str = r#"
import grpc
target = f"127.0.0.1:{sys.argv[1]}"
if len(sys.argv) > 2:  # TLS: the server's certificate, issued to localhost
    creds = grpc.ssl_channel_credentials(root_certificates=open(sys.argv[2], "rb").read())
    ch = grpc.secure_channel(target, creds, options=(("grpc.ssl_target_name_override", "localhost"),))
else:
    ch = grpc.insecure_channel(target)
with ch:
    assert ch.unary_unary("/demo.Catalog/Ping")(b"hello") == b"pong:hello"
    assert list(ch.unary_stream("/demo.Catalog/List")(b"all")) == [b"item0", b"item1", b"item2"]
    try:
        ch.unary_unary("/demo.Catalog/Get")(b"x")
        raise SystemExit("Get must fail")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
"#;

/// Python's grpcio, or a failure naming what to install.
fn need_grpcio() {
    let ok = Command::new("python3")
        .args(["-c", "import grpc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "this test needs grpcio: python3 -m pip install grpcio");
}

/// (direction, method or status, stream, grpc) of the `http` events of `pid` on `port`.
fn calls(events: &[Value], port: u64, pid: u32) -> Vec<Value> {
    of_type(events, "http")
        .into_iter()
        .filter(|e| e["pid"] == pid && (e["dest_port"] == port || e["source_port"] == port))
        .map(|e| {
            assert_eq!(e["version"], "2", "{e}");
            if e["status_code"].is_number() {
                assert!(e["latency_ms"].is_number(), "paired: {e}");
            }
            json!([
                e["direction"],
                if e["method"].is_null() {
                    &e["status_code"]
                } else {
                    &e["method"]
                },
                e["stream_id"],
                e["grpc"]
            ])
        })
        .collect()
}

/// The three calls as [`calls`] shows them at one end: requests in `request_dir`, responses
/// in `response_dir`.
fn expected(request_dir: &str, response_dir: &str) -> Vec<Value> {
    let grpc = |method: &str, status: Option<u16>, message: Option<&str>, sizes: &[u64]| {
        let mut g = json!({"service": "demo.Catalog", "method": method, "encoding": "protobuf",
                           "messages": sizes});
        if let Some(s) = status {
            g["status"] = json!(s);
            g["message"] = json!(message.unwrap_or(""));
        }
        g
    };
    // Requests: the message each call sent ("hello", "all", "x"); responses: the replies
    // ("pong:hello", three "itemN"), the error's status and text from the trailers.
    let exchanges = [
        (
            "POST",
            200,
            1,
            grpc("Ping", None, None, &[5]),
            grpc("Ping", Some(0), None, &[10]),
        ),
        (
            "POST",
            200,
            3,
            grpc("List", None, None, &[3]),
            grpc("List", Some(0), None, &[5, 5, 5]),
        ),
        (
            "POST",
            200,
            5,
            grpc("Get", None, None, &[1]),
            grpc("Get", Some(5), Some("no such item"), &[]),
        ),
    ];
    exchanges
        .iter()
        .flat_map(|(m, s, stream, req, resp)| {
            [
                json!([request_dir, m, stream, req]),
                json!([response_dir, s, stream, resp]),
            ]
        })
        .collect()
}

#[test]
#[ignore = "needs root + BPF"]
fn grpcio_unary_streaming_and_failing_calls_over_h2c() {
    require_bpf();
    need_grpcio();
    let _turn = serial();
    let profile = format!("adi-grpc-{}", std::process::id());
    let adi = Adi::start(&["--profile-allowed", &profile]);
    let (server, port) = Server::spawn_printing_port(
        Command::new(common::python_executable())
            .args(["-c", SERVER])
            .env("ADI_PROFILE", &profile),
        libc::SIGTERM,
    );
    let mut client = Held::spawn({
        let mut cmd = held_python(CLIENT, &[&port.to_string()]);
        cmd.env("ADI_PROFILE", &profile);
        cmd
    });
    client.run();
    let (events, _) = adi.stop();
    let server_pid = server.pid();
    drop(server);
    let port = u64::from(port);
    assert_eq!(calls(&events, port, client.pid()), expected("send", "recv"));
    assert_eq!(calls(&events, port, server_pid), expected("recv", "send"));
    // The connection, classified at both ends.
    let verdicts: Vec<&Value> = of_type(&events, "connection")
        .into_iter()
        .filter(|c| c["dest_port"] == port)
        .collect();
    assert!(
        verdicts.iter().all(|c| c["protocol"] == "http2"),
        "{verdicts:#?}"
    );
    assert!(verdicts.iter().any(|c| c["pid"] == client.pid()));
    assert!(verdicts.iter().any(|c| c["pid"] == server_pid));
}

/// grpc-go's demo (`testdata/go/grpc`) built with Debian's Go 1.19 and golang-google-grpc-dev
/// (GOPATH mode, offline) into `target/go-targets/grpcdemo`, or a failure naming what to
/// install.
fn grpcdemo() -> PathBuf {
    let go = Path::new("/usr/lib/go-1.19/bin/go");
    let gopath = Path::new("/usr/share/gocode");
    assert!(
        go.exists() && gopath.join("src/google.golang.org/grpc").exists(),
        "this test needs Go 1.19 and grpc-go: apt-get install golang-go golang-google-grpc-dev"
    );
    let out = adi_probes::go::testing::targets_dir();
    let bin = out.join("grpcdemo");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/go/grpc");
    let status = Command::new(go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", gopath)
        .env("GOCACHE", out.join(".grpc-gocache"))
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .status()
        .expect("go build");
    assert!(status.success(), "building testdata/go/grpc failed");
    bin
}

/// The connection verdicts of `pid` on `port`: every one `want`, with `tls` as said.
fn assert_verdicts(events: &[Value], port: u64, pid: u32, want: &str, tls: bool) {
    let verdicts: Vec<&Value> = of_type(events, "connection")
        .into_iter()
        .filter(|c| c["pid"] == pid && (c["dest_port"] == port || c["source_port"] == port))
        .collect();
    let last = verdicts
        .last()
        .unwrap_or_else(|| panic!("no connection of {pid}"));
    assert_eq!(last["protocol"], want, "{verdicts:#?}");
    assert_eq!(last["tls"].as_bool().unwrap_or(false), tls, "{verdicts:#?}");
}

/// What both gRPC-over-TLS tests start with: their needs checked, the grpc-go demo built, a
/// certificate, and adi watching the profile's opt-in; the test's turn held to the end.
struct TlsRun {
    demo: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    profile: String,
    adi: Adi,
    _dir: tempfile::TempDir,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl TlsRun {
    fn start() -> Self {
        require_bpf();
        need_grpcio();
        need(&["openssl"]);
        let demo = grpcdemo();
        let turn = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = common::certificate(dir.path());
        let profile = format!("adi-grpc-tls-{}", std::process::id());
        let adi = Adi::start(&["--profile-allowed", &profile]);
        Self {
            demo,
            cert,
            key,
            profile,
            adi,
            _dir: dir,
            _turn: turn,
        }
    }
}

/// The Go end of a gRPC-over-TLS connection, read from crypto/tls: its calls as `want`, every
/// one of its `http` events `"tls": true`, its connection `http2` with `tls`.
fn assert_go_end(events: &[Value], port: u64, pid: u32, want: Vec<Value>) {
    assert_eq!(calls(events, port, pid), want);
    for e in of_type(events, "http")
        .into_iter()
        .filter(|e| e["pid"] == pid)
    {
        assert_eq!(e["tls"], true, "{e}");
    }
    assert_verdicts(events, port, pid, "http2", true);
}

/// grpcio's client over TLS to a grpc-go server: the server's end is read from crypto/tls.
#[test]
#[ignore = "needs root + BPF"]
fn grpcio_client_to_grpc_go_server_over_tls() {
    let mut run = TlsRun::start();
    let (server, port) = Server::spawn_printing_port(
        Command::new(&run.demo)
            .arg("-serve")
            .arg("-cert")
            .arg(&run.cert)
            .arg("-key")
            .arg(&run.key)
            .env("ADI_PROFILE", &run.profile),
        libc::SIGTERM,
    );
    run.adi.wait_stderr(
        &format!("TLS plaintext read from Go program {}", server.pid()),
        std::time::Duration::from_secs(20),
    );
    let cert_arg = run.cert.display().to_string();
    let mut client = Held::spawn({
        let mut cmd = held_python(CLIENT, &[&port.to_string(), &cert_arg]);
        cmd.env("ADI_PROFILE", &run.profile);
        cmd
    });
    client.run();
    let (events, _) = run.adi.stop();
    let server_pid = server.pid();
    drop(server);
    let port = u64::from(port);
    assert_go_end(&events, port, server_pid, expected("recv", "send"));
    // grpcio's BoringSSL is not probed: its end stays encrypted.
    assert_verdicts(&events, port, client.pid(), "tls", false);
}

/// grpc-go's client over TLS to a grpcio server: the client's end is read from crypto/tls.
#[test]
#[ignore = "needs root + BPF"]
fn grpc_go_client_to_grpcio_server_over_tls() {
    let mut run = TlsRun::start();
    let (server, port) = Server::spawn_printing_port(
        Command::new(common::python_executable())
            .args(["-c", SERVER])
            .arg(&run.cert)
            .arg(&run.key)
            .env("ADI_PROFILE", &run.profile),
        libc::SIGTERM,
    );
    // Probed at its exec; it calls once adi says so.
    let mut client = Held::spawn({
        let mut cmd = Command::new(&run.demo);
        cmd.args(["-wait", "-call"])
            .arg(format!("127.0.0.1:{port}"))
            .env("ADI_PROFILE", &run.profile);
        cmd
    });
    run.adi.wait_stderr(
        &format!("TLS plaintext read from Go program {}", client.pid()),
        std::time::Duration::from_secs(20),
    );
    client.run();
    let (events, _) = run.adi.stop();
    drop(server);
    let port = u64::from(port);
    assert_go_end(&events, port, client.pid(), expected("send", "recv"));
}
