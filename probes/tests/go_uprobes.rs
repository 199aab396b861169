//! Root-only: the Go HTTP uprobes on the test client and server (`testdata/go/src`) built by
//! every toolchain in four variants (default, static, no DWARF, stripped), over HTTP and HTTPS
//! (a throwaway certificate made with `openssl req` at test time). Each case asserts the exact
//! method, URL with query, headers (a header with two values, a 100-byte value), status code
//! and a non-zero duration, on both sides.
//!
//! Every test is `#[ignore]`d ("needs root + BPF"): `cargo test -- --include-ignored` runs them
//! as root (CI does), and then a missing toolchain or `openssl` is a failure. Go 1.19, 1.23,
//! 1.24 and 1.27 have a test each and `uprobes_matrix` takes the other toolchains;
//! `testdata/go/uprobe-matrix.sh` runs any of them one by one (`ADI_GO_MATRIX=1.21.13,...`).
//! `ADI_TEST_DUMP=1` prints each case's two events.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use adi_core::event::{GoHttpEvent, GoHttpSide};
use adi_probes::go::testing::{self, Toolchain, Variant};
use adi_probes::go::uprobes::{GoHttpProbes, GoHttpStream};
use adi_probes::testing::require_bpf;

/// The 100-byte X-Long value the client sends.
const LONG: &str = "0123456789012345678901234567890123456789012345678901234567890123456789\
                    012345678901234567890123456789";

/// Kills the process when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throwaway certificate and key for 127.0.0.1, made once per test process.
fn tls_files() -> Option<&'static (PathBuf, PathBuf)> {
    static FILES: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    FILES
        .get_or_init(|| {
            let dir = testing::targets_dir().join(format!("tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("tls dir");
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let made = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
                .args([
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            made.then_some((cert, key))
        })
        .as_ref()
}

fn start_server(bin: &Path, tls: Option<&(PathBuf, PathBuf)>) -> (Proc, String) {
    let mut cmd = Command::new(bin);
    cmd.arg("-addr").arg("127.0.0.1:0");
    if let Some((cert, key)) = tls {
        cmd.arg("-tls-cert").arg(cert).arg("-tls-key").arg(key);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server says where it listens");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("server said {line:?}"))
        .to_owned();
    (Proc(child), addr)
}

/// Waits for `n` events (at most 10 s).
async fn collect(stream: &mut GoHttpStream, n: usize) -> Vec<GoHttpEvent> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while got.len() < n {
            match stream.next().await {
                Ok(e) => got.push(e),
                Err(e) => panic!("ring buffer: {e}"),
            }
        }
    })
    .await;
    got
}

/// The values of header `name`.
fn values<'a>(e: &'a GoHttpEvent, name: &str) -> Vec<&'a str> {
    e.headers
        .0
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// One case: the server and the client of `variant` talk once; both events are checked.
async fn check_case(
    probes: &mut GoHttpProbes,
    stream: &mut GoHttpStream,
    t: &Toolchain,
    variant: Variant,
    tls: Option<&(PathBuf, PathBuf)>,
    extra: usize,
) {
    let what = format!(
        "Go {} {variant:?} {} extra={extra}",
        t.version,
        if tls.is_some() { "https" } else { "http" }
    );
    let (server, addr) = start_server(&t.binary(variant, "server"), tls);
    let server_pid = server.0.id();
    let target = probes
        .attach(server_pid)
        .unwrap_or_else(|e| panic!("{what}: attach server: {e}"));
    assert!(target.server.is_some(), "{what}");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}/status/201?x=1&y=two%20words");
    let mut client = Command::new(t.binary(variant, "client"));
    client.args(["-wait", "-extra", &extra.to_string()]);
    if tls.is_some() {
        client.arg("-insecure");
    }
    let mut client = Proc(
        client
            .arg(&url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("client"),
    );
    let client_pid = client.0.id();
    let target = probes
        .attach(client_pid)
        .unwrap_or_else(|e| panic!("{what}: attach client: {e}"));
    assert!(target.client.is_some(), "{what}");
    client
        .0
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("start the client");
    let mut events = collect(stream, 2).await;
    let out = client.0.wait_with_output_ref();
    assert!(out.0.success(), "{what}: client failed: {}", out.1);
    probes.detach(client_pid);
    probes.detach(server_pid);
    drop(server);
    events.sort_by_key(|e| e.side == GoHttpSide::Server);
    assert_eq!(events.len(), 2, "{what}: {events:#?}");
    let (c, s) = (&events[0], &events[1]);
    if std::env::var_os("ADI_TEST_DUMP").is_some() {
        eprintln!("{what}:\n  {c:?}\n  {s:?}");
    }

    // What both sides see of the same call.
    for (e, side, pid) in [
        (c, GoHttpSide::Client, client_pid),
        (s, GoHttpSide::Server, server_pid),
    ] {
        assert_eq!(e.side, side, "{what}");
        assert_eq!(e.pid, pid, "{what}");
        assert_eq!(e.method, "GET", "{what}");
        assert_eq!(e.url, url, "{what}");
        assert_eq!(e.status_code, Some(201), "{what}");
        assert!(e.duration_ms.is_some_and(|d| d > 0.0), "{what}: {e:?}");
        assert_eq!(&*e.go_version, t.go_version, "{what}");
    }

    // The caller's headers only: the transport adds Host, User-Agent, Accept-Encoding later.
    let mut want: Vec<(String, String)> = vec![
        ("X-Long".into(), LONG.into()),
        ("X-Two".into(), "one".into()),
        ("X-Two".into(), "two".into()),
    ];
    for j in 1..=extra {
        want.push((format!("X-Extra-{j}"), format!("v{j}")));
    }
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let max_values = 64;
    if want.len() <= max_values {
        assert_eq!(c.headers.0, want, "{what}");
        assert!(!c.truncated, "{what}: {c:?}");
    } else {
        // More values than the kernel copies: cut, and flagged.
        assert_eq!(c.headers.0.len(), max_values, "{what}");
        assert!(c.headers.0.iter().all(|h| want.contains(h)), "{what}");
        assert_eq!(c.truncated_fields, vec!["headers"], "{what}");
    }

    if extra == 0 {
        assert_eq!(values(s, "X-Two"), ["one", "two"], "{what}");
        assert_eq!(values(s, "X-Long"), [LONG], "{what}");
        assert_eq!(values(s, "Accept-Encoding"), ["gzip"], "{what}");
        let ua = values(s, "User-Agent");
        assert!(
            ua.len() == 1 && ua[0].starts_with("Go-http-client/"),
            "{what}: {ua:?}"
        );
        assert_eq!(s.headers.0.len(), 5, "{what}: {:?}", s.headers);
        assert!(!s.truncated, "{what}: {s:?}");
    }
}

/// Reads a child's exit status and stderr.
trait WaitRef {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status, err)
    }
}

/// Every variant, over HTTP and HTTPS, for toolchain `version`; plus larger header maps
/// (more buckets or a Swiss table, and more values than are copied) on the default build.
fn check_version(version: &str) {
    require_bpf();
    let t = testing::toolchain(version);
    let tls = tls_files().expect("this test needs openssl, for a throwaway certificate");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut probes, mut stream) = GoHttpProbes::new().expect("load the Go uprobes");
        for variant in Variant::ALL {
            for tls in [None, Some(tls)] {
                check_case(&mut probes, &mut stream, t, variant, tls, 0).await;
            }
        }
        for extra in [20, 70] {
            check_case(&mut probes, &mut stream, t, Variant::Default, None, extra).await;
        }
        let stats = probes.stats();
        assert_eq!(stats.ringbuf_full, 0, "{stats:?}");
        assert_eq!(stats.read_failed, 0, "{stats:?}");
        assert_eq!(stream.decode_errors, 0);
        assert_eq!(stream.unpaired_returns, 0);
        probes.close();
    });
}

#[test]
#[ignore = "needs root + BPF"]
fn uprobes_go_1_19() {
    check_version("1.19");
}

#[test]
#[ignore = "needs root + BPF"]
fn uprobes_go_1_23() {
    check_version("1.23.9");
}

#[test]
#[ignore = "needs root + BPF"]
fn uprobes_go_1_24() {
    check_version("1.24.11");
}

#[test]
#[ignore = "needs root + BPF"]
fn uprobes_go_1_27() {
    check_version("1.27.3");
}

/// The toolchains with a test of their own, above.
const OWN_TEST: [&str; 4] = ["1.19", "1.23.9", "1.24.11", "1.27.3"];

/// The rest of the matrix: the versions in `ADI_GO_MATRIX` (comma-separated; what
/// `testdata/go/uprobe-matrix.sh` sets, one version at a time), else every toolchain without
/// a test of its own, so that CI covers each one once.
#[test]
#[ignore = "needs root + BPF"]
fn uprobes_matrix() {
    let list = std::env::var("ADI_GO_MATRIX").unwrap_or_default();
    let versions: Vec<&str> = if list.is_empty() {
        testing::VERSIONS
            .into_iter()
            .filter(|v| !OWN_TEST.contains(v))
            .collect()
    } else {
        list.split(',').map(str::trim).collect()
    };
    for v in versions {
        check_version(v);
        eprintln!("MATRIX {v} ok");
    }
}
