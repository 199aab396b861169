//! Root-only: gRPC over HTTP/2 cleartext with the real grpcio (PyPI) client and server: a
//! unary call, a server-streaming call and a call that fails with NOT_FOUND, parsed at both
//! ends as `http` events with `version: "2"`, their stream, and `grpc` facts (service,
//! method, status, message, message sizes), each response paired with its request.
//!
//! grpcio links its own BoringSSL without symbols, so gRPC over TLS from grpcio is not
//! readable by the TLS library uprobes (docs/tls.md); h2c is what this covers. Same rules as
//! `live.rs`; adi starts first, with the ADI_PROFILE opt-in.

mod common;

use std::process::{Command, Stdio};

use common::services::{held_python, serial, Held, Server};
use common::{of_type, require_bpf, Adi};
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
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

const CLIENT: &str = r#"
import grpc
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as ch:
    assert ch.unary_unary("/demo.Catalog/Ping")(b"hello") == b"pong:hello"
    assert list(ch.unary_stream("/demo.Catalog/List")(b"all")) == [b"item0", b"item1", b"item2"]
    try:
        ch.unary_unary("/demo.Catalog/Get")(b"x")
        raise SystemExit("Get must fail")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
"#;

/// Fails the test unless Python has grpcio.
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
    let side = |request_dir: &str, response_dir: &str| -> Vec<Value> {
        exchanges
            .iter()
            .flat_map(|(m, s, stream, req, resp)| {
                [
                    json!([request_dir, m, stream, req]),
                    json!([response_dir, s, stream, resp]),
                ]
            })
            .collect()
    };
    let port = u64::from(port);
    assert_eq!(calls(&events, port, client.pid()), side("send", "recv"));
    assert_eq!(calls(&events, port, server_pid), side("recv", "send"));
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
