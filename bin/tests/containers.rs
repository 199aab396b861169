//! Root-only: `adi` with container enrichment, end to end, against runtimes of the test's own
//! (`adi_containers::testing`: a podman with its own storage and its Docker-compatible service on
//! its own socket, a containerd with its own config and socket) and busybox containers.
//!
//! Two scenes, each run once (on first use) and looked at by several tests, one claim each:
//!
//! - **podman**: busybox `httpd` as `web` (compose labels, a published port
//!   `127.0.0.1:PORT:8080`, started before adi: found by its /proc scan and the runtime's
//!   first listing) on the lab's own network; a busybox `client` container (started once adi is
//!   ready) running `wget` to web's address and to a host Python `http.server` through the
//!   network's gateway; `curl` on the host calling the published port.
//! - **containerd**: a container on the host's network (`ctr run --net-host`, compose service
//!   `fetcher`) running `wget` to a host Python `http.server` on 127.0.0.1.
//!
//! Every client calls two kinds of endpoint: **slow** ones (`/cgi-bin/slow` of web's httpd,
//! `/slow` of the host server) answer after a second, so that every process at both ends is
//! still running when adi first looks at it; **quick** ones answer at once, so that `wget` and
//! httpd's per-connection child exit within milliseconds of their request, as real short-lived
//! clients do. The claims about names and places are checked on the slow requests; the
//! `*_short_lived_*` tests check the same claims on the quick ones, and
//! `containerd_exited_host_network_process_calls_the_host` on a `wget` whose parent leaves it
//! unreaped for a second. A failing claim's message lists every event that does not hold,
//! with what it says.
//!
//! `doctor_reports_the_docker_runtime` runs `adi doctor --docker-socket` against the lab's
//! podman service and against a missing socket.
//!
//! Every process watched here opts in with `ADI_PROFILE=ctest`, and adi runs with
//! `--profile-allowed ctest`. Same rules as the other live tests: `#[ignore]`d ("needs root +
//! BPF"), and when run, a missing capability or tool is a failure. Everything started is
//! stopped on drop (before the scene's events are looked at), every wait is bounded,
//! and the scenes take turns. Needs podman (with runc and netavark), containerd (with ctr and
//! containerd-shim-runc-v2), busybox-static, curl and python3.

mod common;

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use adi_containers::testing::{
    self, free_port, podman_lab, run, unique, wait_within, Podman, BUSYBOX_IMAGE,
};
use common::{of_type, Adi, Proc};
use serde_json::Value;

/// The `ADI_PROFILE` of every process these tests watch (and adi's `--profile-allowed`).
const PROFILE: &str = "ctest";

/// How long a client container may take to make its calls and exit.
const CLIENT_DEADLINE: Duration = Duration::from_secs(40);

/// How many times each client calls each endpoint.
const ROUNDS: usize = 3;

static SERIAL: Mutex<()> = Mutex::new(());

/// One scene at a time: each starts daemons and containers on a small machine.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fails the test unless it runs as root with BPF and every tool (plus a static busybox) is
/// installed.
fn require(tools: &[&str]) {
    common::require_bpf();
    testing::require(tools);
}

/// Runs `scene` once for every test that asks (the first one runs it, the others wait), and
/// keeps its result; a scene that failed fails every test that asks, with its message.
fn once<T: Send + Sync>(
    cell: &'static OnceLock<Result<T, String>>,
    scene: impl FnOnce() -> T,
) -> &'static T {
    let done = cell.get_or_init(|| {
        let _turn = serial();
        std::panic::catch_unwind(AssertUnwindSafe(scene)).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        })
    });
    match done {
        Ok(s) => s,
        Err(e) => panic!("the scene failed: {e}"),
    }
}

/// A host HTTP server (Python's `http.server`): `/slow` answers `slow` after a second, any
/// other path `hello` at once.
const HOST_SERVER: &str = r#"
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(1)
        body = b"slow\n" if self.path == "/slow" else b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = http.server.ThreadingHTTPServer((sys.argv[1], 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// [`HOST_SERVER`] as `dir/host_server.py` on `bind`, a port the kernel picks, watched
/// (`ADI_PROFILE`); listening when this returns. (server, port)
fn host_server(dir: &Path, bind: IpAddr) -> (Proc, u16) {
    let script = dir.join("host_server.py");
    std::fs::write(&script, HOST_SERVER).expect("host_server.py");
    let mut child = Command::new(common::python_executable())
        .arg(&script)
        .arg(bind.to_string())
        .env("ADI_PROFILE", PROFILE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("host server");
    let line = common::first_line(&mut child);
    let server = Proc(child);
    let line = line.expect("port line");
    let port = line
        .parse()
        .unwrap_or_else(|_| panic!("no port in {line:?}"));
    (server, port)
}

/// A `sh -ec` script: after a second (the container's start event reaching adi), `ROUNDS`
/// times, each of `calls`.
fn rounds_of(calls: &[String]) -> String {
    let rounds: Vec<String> = (1..=ROUNDS).map(|i| i.to_string()).collect();
    format!(
        "sleep 1; for i in {}; do {} sleep 0.2; done",
        rounds.join(" "),
        calls.join(" ")
    )
}

/// `wget` of `url`, its answer on stdout.
fn wget(url: &str) -> String {
    format!("wget -q -O- {url} ;")
}

/// `wget` of `url` whose parent does not reap it for a second: once its request is answered it
/// stays a zombie that long (its `cmdline` empty, its `ns/net` link gone).
fn unreaped_wget(url: &str) -> String {
    format!("( wget -q -O- {url} & exec sleep 1 ) ;")
}

/// The `http` requests (events with a `method`) matching `pick`.
fn requests(events: &[Value], pick: impl Fn(&Value) -> bool) -> Vec<&Value> {
    of_type(events, "http")
        .into_iter()
        .filter(|e| e.get("method").is_some() && pick(e))
        .collect()
}

/// The `http` events, one per line without their bulky fields, for failure messages.
fn dump(events: &[Value]) -> String {
    of_type(events, "http")
        .iter()
        .map(|e| {
            let mut e = (*e).clone();
            if let Some(o) = e.as_object_mut() {
                for noise in ["raw_payload", "body", "headers", "timestamp"] {
                    o.remove(noise);
                }
            }
            e.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ip_is(e: &Value, field: &str, ip: IpAddr) -> bool {
    e[field].as_str() == Some(ip.to_string().as_str())
}

fn port_is(e: &Value, field: &str, port: u16) -> bool {
    e[field].as_u64() == Some(u64::from(port))
}

fn url_is(e: &Value, url: &str) -> bool {
    e["url"] == url
}

/// Asserts `n` events, with every event of the scene in the message otherwise.
fn expect_n<'a>(found: Vec<&'a Value>, n: usize, what: &str, events: &[Value]) -> Vec<&'a Value> {
    assert_eq!(
        found.len(),
        n,
        "{what}: {n} expected among:\n{}",
        dump(events)
    );
    found
}

/// One event in a line: who, which way, what, and its container fields.
fn brief(e: &Value) -> String {
    let service = |side: &str| e[side]["service"].as_str().unwrap_or("-").to_owned();
    format!(
        "pid {} {} {} {}:{} -> {}:{} {} {} | service {} | source_container {} | \
         destination_container {} | destination_type {} | cmdline {:?}",
        e["pid"],
        e["comm"],
        e["direction"],
        e["source_ip"],
        e["source_port"],
        e["dest_ip"],
        e["dest_port"],
        e["method"],
        e["url"],
        e["service"],
        service("source_container"),
        service("destination_container"),
        e["destination_type"],
        e["cmdline"],
    )
}

/// The claims one test makes about events: every mismatch is collected, and [`Claims::hold`]
/// fails with all of them, one line per event.
#[derive(Default)]
struct Claims(Vec<(String, Vec<String>)>);

impl Claims {
    fn mismatch(&mut self, e: &Value, what: String) {
        let line = brief(e);
        match self.0.last_mut() {
            Some((last, found)) if *last == line => found.push(what),
            _ => self.0.push((line, vec![what])),
        }
    }

    /// The field at JSON pointer `at` (`/source_container/service`) of `e` is `want`.
    fn eq(&mut self, e: &Value, at: &str, want: &str) {
        let got = e.pointer(at);
        if got.and_then(Value::as_str) != Some(want) {
            let got = got.map_or("absent".to_owned(), Value::to_string);
            self.mismatch(e, format!("{at} is {got}, expected {want:?}"));
        }
    }

    /// `e` has no field `field`.
    fn absent(&mut self, e: &Value, field: &str) {
        if let Some(got) = e.get(field) {
            let got = got.get("service").unwrap_or(got);
            self.mismatch(e, format!("/{field} is there ({got}), expected absent"));
        }
    }

    /// The `container` event that describes container `id` (events name containers without
    /// their labels) has label `label` = `want`.
    fn label(&mut self, events: &[Value], id: &str, label: &str, want: &str) {
        let described = events
            .iter()
            .find(|e| e["event_type"] == "container" && e["container_id"] == id);
        match described {
            Some(e) => self.eq(e, &format!("/labels/{}", label.replace('/', "~1")), want),
            None => self.mismatch(&Value::Null, format!("no container event describes {id}")),
        }
    }

    /// Fails listing every event that does not hold (with `what` the test claims).
    fn hold(self, what: &str) {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|(event, found)| format!("{event}\n    {}", found.join("; ")))
            .collect();
        assert!(
            lines.is_empty(),
            "{what}: {} events do not hold:\n{}",
            lines.len(),
            lines.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Podman.

/// What the podman scene ran, and adi's events.
struct PodmanScene {
    events: Vec<Value>,
    web_name: String,
    web_id: String,
    web_ip: IpAddr,
    client_name: String,
    client_id: String,
    client_ip: IpAddr,
    /// The host's address on the lab's network.
    gateway: IpAddr,
    /// Web's port published on the host's 127.0.0.1.
    published: u16,
    /// The host server's port, on the gateway.
    host_port: u16,
}

static PODMAN: OnceLock<Result<PodmanScene, String>> = OnceLock::new();

/// The podman scene (run on first use).
fn podman() -> &'static PodmanScene {
    require(&["podman", "runc", "tar", "curl", "python3"]);
    once(&PODMAN, || {
        let tmp = tempfile::tempdir().expect("tempdir");
        podman_scene(tmp.path())
    })
}

/// web, the host server on the gateway, adi, then the client container and two curls on the
/// host through the published port; everything stopped before this returns.
fn podman_scene(dir: &Path) -> PodmanScene {
    let (mut podman, _service, socket) = podman_lab(dir);
    let published = free_port();
    let (web_name, client_name) = (unique("adi-ct-web"), unique("adi-ct-client"));
    let profile = format!("ADI_PROFILE={PROFILE}");
    let publish = format!("127.0.0.1:{published}:8080");
    let web_id = podman.run(
        &web_name,
        &[
            "--label",
            "com.docker.compose.service=web",
            "--label",
            "com.docker.compose.project=adi-ctest",
            "--label",
            "tier=front",
            "-p",
            &publish,
            "-e",
            &profile,
        ],
    );
    let web_ip = podman.ip(&web_name);
    // The lab's bridge holds the gateway once a container runs on it.
    let gateway = podman.gateway();
    let (_host, host_port) = host_server(dir, gateway);

    let sock = socket.display().to_string();
    let adi = Adi::start(&["--docker-socket", &sock, "--profile-allowed", PROFILE]);

    let script = rounds_of(&[
        wget(&format!("http://{web_ip}:8080/cgi-bin/slow")),
        wget(&format!("http://{gateway}:{host_port}/slow")),
        wget(&format!("http://{web_ip}:8080/")),
        wget(&format!("http://{gateway}:{host_port}/")),
    ]);
    // A fixed address, known after the container has exited.
    let IpAddr::V4(g) = gateway else {
        unreachable!("the lab's subnet is IPv4")
    };
    let [a, b, c, _] = g.octets();
    let client_ip = IpAddr::from([a, b, c, 50]);
    let client_id = podman.run_with(
        &client_name,
        &[
            "--ip",
            &client_ip.to_string(),
            "--label",
            "com.docker.compose.service=client",
            "--label",
            "tier=back",
            "-e",
            &profile,
        ],
        &["/bin/sh", "-ec", &script],
    );
    for _ in 0..2 {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{published}/"))
            .env("ADI_PROFILE", PROFILE)
            .stdin(Stdio::null())
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "adi\n");
    }
    wait_within("the client container to finish", CLIENT_DEADLINE, || {
        podman.state(&client_name).as_deref() == Some("exited")
    });
    let exit = run(podman
        .cmd()
        .args(["inspect", "--format", "{{.State.ExitCode}}", &client_name]));
    let logs = run(podman.cmd().args(["logs", &client_name]));
    assert_eq!(exit, "0", "the client's calls failed: {logs}");

    let (events, _stderr) = adi.stop();
    PodmanScene {
        events,
        web_name,
        web_id,
        web_ip,
        client_name,
        client_id,
        client_ip,
        gateway,
        published,
        host_port,
    }
}

impl PodmanScene {
    /// The client's requests to web at `url`, as wget sent them.
    fn to_web_sent(&self, url: &str) -> Vec<&Value> {
        let found = requests(&self.events, |e| {
            e["comm"] == "wget"
                && e["direction"] == "send"
                && ip_is(e, "dest_ip", self.web_ip)
                && port_is(e, "dest_port", 8080)
                && url_is(e, url)
        });
        expect_n(
            found,
            ROUNDS,
            &format!("wget's requests of {url}"),
            &self.events,
        )
    }

    /// The client's requests to web at `url`, as httpd received them.
    fn to_web_received(&self, url: &str) -> Vec<&Value> {
        let found = requests(&self.events, |e| {
            e["comm"] == "httpd"
                && e["direction"] == "recv"
                && ip_is(e, "source_ip", self.client_ip)
                && url_is(e, url)
        });
        expect_n(
            found,
            ROUNDS,
            &format!("httpd's requests of {url}"),
            &self.events,
        )
    }

    /// The client's requests to the host server at `url`, as wget sent them.
    fn to_host_sent(&self, url: &str) -> Vec<&Value> {
        let found = requests(&self.events, |e| {
            e["comm"] == "wget"
                && e["direction"] == "send"
                && ip_is(e, "dest_ip", self.gateway)
                && port_is(e, "dest_port", self.host_port)
                && url_is(e, url)
        });
        expect_n(
            found,
            ROUNDS,
            &format!("wget's requests of host {url}"),
            &self.events,
        )
    }

    /// The client's requests to the host server at `url`, as it received them.
    fn to_host_received(&self, url: &str) -> Vec<&Value> {
        let found = requests(&self.events, |e| {
            e["direction"] == "recv"
                && port_is(e, "dest_port", self.host_port)
                && ip_is(e, "source_ip", self.client_ip)
                && url_is(e, url)
        });
        expect_n(
            found,
            ROUNDS,
            &format!("host's requests of {url}"),
            &self.events,
        )
    }

    /// Both containers on a request from the client to web, whichever end saw it.
    fn client_to_web(&self, c: &mut Claims, e: &Value) {
        c.eq(e, "/source_container/service", "client");
        c.eq(e, "/source_container/container_id", &self.client_id);
        c.eq(e, "/source_container/container_name", &self.client_name);
        c.eq(e, "/source_container/image", BUSYBOX_IMAGE);

        c.eq(e, "/destination_container/service", "web");
        c.eq(e, "/destination_container/container_id", &self.web_id);
        c.eq(e, "/destination_container/container_name", &self.web_name);
        c.eq(e, "/destination_container/image", BUSYBOX_IMAGE);
        c.eq(e, "/destination_type", "container");
        c.label(&self.events, &self.client_id, "tier", "back");
        c.label(&self.events, &self.web_id, "tier", "front");
        c.label(
            &self.events,
            &self.web_id,
            "com.docker.compose.service",
            "web",
        );
        c.label(
            &self.events,
            &self.web_id,
            "com.docker.compose.project",
            "adi-ctest",
        );
    }

    /// The client's container, and a host process (the gateway is the host's) as the receiver.
    fn client_to_host(&self, c: &mut Claims, e: &Value) {
        c.eq(e, "/source_container/service", "client");
        c.eq(e, "/source_container/container_id", &self.client_id);
        c.absent(e, "destination_container");
        c.eq(e, "/destination_type", "process");
    }
}

/// The client's requests to web as wget sent them: both containers, their images and labels,
/// `destination_type: container`.
#[test]
#[ignore = "needs root + BPF"]
fn podman_sent_request_names_both_containers() {
    let s = podman();
    let mut c = Claims::default();
    for e in s.to_web_sent("/cgi-bin/slow") {
        s.client_to_web(&mut c, e);
    }
    c.hold("wget's requests to web");
}

/// The same requests as web's httpd received them: the same two containers.
#[test]
#[ignore = "needs root + BPF"]
fn podman_received_request_names_both_containers() {
    let s = podman();
    let mut c = Claims::default();
    for e in s.to_web_received("/cgi-bin/slow") {
        s.client_to_web(&mut c, e);
    }
    c.hold("httpd's requests from the client");
}

/// The containers' processes are named by their container's service (the compose label), not
/// by their program (`busybox`, `wget`, `httpd`).
#[test]
#[ignore = "needs root + BPF"]
fn podman_processes_are_named_by_their_container_service() {
    let s = podman();
    let mut c = Claims::default();
    for e in s.to_web_sent("/cgi-bin/slow") {
        c.eq(e, "/service", "client");
    }
    for e in s.to_host_sent("/slow") {
        c.eq(e, "/service", "client");
    }
    for e in s.to_web_received("/cgi-bin/slow") {
        c.eq(e, "/service", "web");
    }
    c.hold("the containers' services");
}

/// curl on the host through web's published port: no source container, web behind the port.
#[test]
#[ignore = "needs root + BPF"]
fn podman_published_port_reaches_the_container() {
    let s = podman();
    let found = requests(&s.events, |e| {
        e["comm"] == "curl" && e["direction"] == "send" && port_is(e, "dest_port", s.published)
    });
    let mut c = Claims::default();
    for e in expect_n(found, 2, "curl's requests", &s.events) {
        c.absent(e, "source_container");
        c.eq(e, "/destination_container/service", "web");
        c.eq(e, "/destination_container/container_id", &s.web_id);
        c.eq(e, "/destination_type", "container");
        c.eq(e, "/service", "curl");
    }
    c.hold("curl's requests to the published port");
}

/// The client's requests to the host server through the gateway, sent and received: the
/// receiver is a process, in no container.
#[test]
#[ignore = "needs root + BPF"]
fn podman_container_calling_the_host_reaches_a_process() {
    let s = podman();
    let mut c = Claims::default();
    for e in s.to_host_sent("/slow") {
        s.client_to_host(&mut c, e);
    }
    for e in s.to_host_received("/slow") {
        s.client_to_host(&mut c, e);
    }
    c.hold("the client's requests to the host");
}

/// The claims above on the quick requests, where `wget` (and httpd's per-connection child)
/// exits within milliseconds of its request.
///
/// adi may first handle such a process after it exited: it reads the cgroup before anything
/// else, and when even that is gone, the process's end of the connection is its container's
/// own address.
#[test]
#[ignore = "needs root + BPF"]
fn podman_short_lived_processes_are_named_by_their_container() {
    let s = podman();
    let mut c = Claims::default();
    for e in s.to_web_sent("/") {
        s.client_to_web(&mut c, e);
        c.eq(e, "/service", "client");
    }
    for e in s.to_web_received("/") {
        s.client_to_web(&mut c, e);
        c.eq(e, "/service", "web");
    }
    for e in s.to_host_sent("/") {
        s.client_to_host(&mut c, e);
        c.eq(e, "/service", "client");
    }
    for e in s.to_host_received("/") {
        s.client_to_host(&mut c, e);
    }
    c.hold("the quick requests");
}

// ---------------------------------------------------------------------------------------------
// containerd.

/// What the containerd scene ran, and adi's events.
struct ContainerdScene {
    events: Vec<Value>,
    id: String,
    /// The host server's port on 127.0.0.1.
    port: u16,
}

static CONTAINERD: OnceLock<Result<ContainerdScene, String>> = OnceLock::new();

/// The containerd scene (run on first use).
fn containerd() -> &'static ContainerdScene {
    let tools = [
        "containerd",
        "ctr",
        "containerd-shim-runc-v2",
        "podman",
        "runc",
        "tar",
        "python3",
    ];
    require(&tools);
    once(&CONTAINERD, || {
        let tmp = tempfile::tempdir().expect("tempdir");
        containerd_scene(tmp.path())
    })
}

/// The lab's containerd, the host server on 127.0.0.1, adi, then the fetcher (on the host's
/// network); everything stopped before this returns.
fn containerd_scene(dir: &Path) -> ContainerdScene {
    let ns = unique("adi-ct");
    let mut cd = testing::containerd_lab(dir, &[&ns]);
    let (_host, port) = host_server(dir, IpAddr::from([127, 0, 0, 1]));

    let sock = cd.socket().display().to_string();
    let adi = Adi::start(&[
        "--containerd-socket",
        &sock,
        "--containerd-namespace",
        &ns,
        "--profile-allowed",
        PROFILE,
    ]);
    let id = unique("adi-ct-fetcher");
    let script = rounds_of(&[
        wget(&format!("http://127.0.0.1:{port}/slow")),
        wget(&format!("http://127.0.0.1:{port}/")),
        unreaped_wget(&format!("http://127.0.0.1:{port}/unreaped")),
    ]);
    cd.run_with(
        &ns,
        &id,
        &[
            "--net-host",
            "--env",
            &format!("ADI_PROFILE={PROFILE}"),
            "--label",
            "com.docker.compose.service=fetcher",
            "--label",
            "tier=batch",
        ],
        &["/bin/sh", "-ec", &script],
    );
    wait_within("the fetcher to finish", CLIENT_DEADLINE, || {
        cd.task(&ns, &id)
            .is_some_and(|(_, status)| status == "STOPPED")
    });
    let (events, _stderr) = adi.stop();
    ContainerdScene { events, id, port }
}

impl ContainerdScene {
    /// The fetcher's requests of `url`, as wget sent them.
    fn sent(&self, url: &str) -> Vec<&Value> {
        let found = requests(&self.events, |e| {
            e["comm"] == "wget"
                && e["direction"] == "send"
                && port_is(e, "dest_port", self.port)
                && url_is(e, url)
        });
        expect_n(
            found,
            ROUNDS,
            &format!("wget's requests of {url}"),
            &self.events,
        )
    }

    /// The fetcher's requests of `url`, as the host server received them.
    fn received(&self, url: &str) -> Vec<&Value> {
        let found = requests(&self.events, |e| {
            e["comm"] != "wget"
                && e["direction"] == "recv"
                && port_is(e, "dest_port", self.port)
                && url_is(e, url)
        });
        expect_n(
            found,
            ROUNDS,
            &format!("the host's requests of {url}"),
            &self.events,
        )
    }

    /// The fetcher's container, from containerd; the receiver a host process (on the host's
    /// network, loopback is the host's).
    fn fetcher_to_host(&self, c: &mut Claims, e: &Value) {
        c.eq(e, "/source_container/service", "fetcher");
        c.eq(e, "/source_container/container_id", &self.id);
        c.eq(e, "/source_container/image", BUSYBOX_IMAGE);
        c.label(&self.events, &self.id, "tier", "batch");
        c.absent(e, "destination_container");
        c.eq(e, "/destination_type", "process");
    }
}

/// The fetcher's requests as wget sent them: its container, a host process as the receiver,
/// and the container's service as the process's.
#[test]
#[ignore = "needs root + BPF"]
fn containerd_sent_request_names_the_host_network_container() {
    let s = containerd();
    let mut c = Claims::default();
    for e in s.sent("/slow") {
        s.fetcher_to_host(&mut c, e);
        c.eq(e, "/service", "fetcher");
    }
    c.hold("wget's requests to the host");
}

/// The same requests as the host server received them: the fetcher's container as the source
/// (found through wget's end of the connection: a host-network container has no address of
/// its own).
#[test]
#[ignore = "needs root + BPF"]
fn containerd_received_request_names_the_host_network_container() {
    let s = containerd();
    let mut c = Claims::default();
    for e in s.received("/slow") {
        s.fetcher_to_host(&mut c, e);
    }
    c.hold("the host's requests from the fetcher");
}

/// The quick requests, where `wget` exits within milliseconds of its request. On the host's
/// network its address says nothing, and when its cgroup is gone before adi reads it (adi
/// sees a process only after its first message), nothing left in `/proc` names its
/// container: such a request has no `source_container` (docs/containers.md, "Limits"). What
/// must hold: a container named is the right one, and the receiver is a process.
#[test]
#[ignore = "needs root + BPF"]
fn containerd_short_lived_processes_are_never_named_wrongly() {
    let s = containerd();
    let mut c = Claims::default();
    let (mut named, mut all) = (0, 0);
    for e in s.sent("/").into_iter().chain(s.received("/")) {
        all += 1;
        if e.get("source_container").is_some() {
            named += 1;
            s.fetcher_to_host(&mut c, e);
        } else {
            c.absent(e, "destination_container");
            c.eq(e, "/destination_type", "process");
        }
    }
    eprintln!("quick requests named by their container: {named} of {all}");
    c.hold("the quick requests");
}

/// The claims above on requests of a `wget` that exits but is not reaped for a second (a
/// zombie: its `cgroup` still readable, its `cmdline` empty, its `ns/net` link gone).
///
/// Its network namespace cannot be read any more: adi must not take 127.0.0.1 for the
/// container's own loopback (a container with no address of its own is on the host's
/// network, whose loopback is the host's).
#[test]
#[ignore = "needs root + BPF"]
fn containerd_exited_host_network_process_calls_the_host() {
    let s = containerd();
    let mut c = Claims::default();
    for e in s.sent("/unreaped") {
        s.fetcher_to_host(&mut c, e);
        c.eq(e, "/service", "fetcher");
    }
    for e in s.received("/unreaped") {
        s.fetcher_to_host(&mut c, e);
    }
    c.hold("the unreaped wget's requests");
}

// ---------------------------------------------------------------------------------------------
// adi doctor.

/// `adi doctor ARGS` (no runtime variables): (exit status, stdout).
fn doctor(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_adi"))
        .arg("doctor")
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("CONTAINERD_SOCKET")
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("adi doctor");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The line of `check` in the doctor's table, and the fix line below it when there is one.
fn doctor_line<'a>(table: &'a str, check: &str) -> (&'a str, Option<&'a str>) {
    let mut lines = table.lines();
    while let Some(l) = lines.next() {
        let name = l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
        if name.starts_with(check) {
            let fix = lines.next().filter(|f| f.trim_start().starts_with("fix:"));
            return (l, fix);
        }
    }
    panic!("no {check:?} line in:\n{table}");
}

/// `adi doctor --docker-socket` against the lab's podman service: `ok`, the socket, where the
/// setting came from, the Podman version. Against a missing socket: `warn`, why, a fix, and
/// the exit status still 0 (a runtime is optional when live capture works).
#[test]
#[ignore = "needs root + BPF"]
fn doctor_reports_the_docker_runtime() {
    require(&["podman", "runc"]);
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let podman = Podman::new(tmp.path());
    let socket = tmp.path().join("podman.sock");
    let _service = podman.service(&socket);
    // "podman version 4.3.1"
    let version = run(Command::new("podman").arg("--version"));
    let version = version.rsplit(' ').next().expect("a version");

    let sock = socket.display().to_string();
    let (status, table) = doctor(&["--docker-socket", &sock]);
    assert!(status.success(), "{status}:\n{table}");
    let (line, fix) = doctor_line(&table, "container runtime docker");
    assert!(line.starts_with("ok "), "{line}");
    assert!(line.contains(&sock), "the socket: {line}");
    assert!(
        line.contains("--docker-socket"),
        "where it came from: {line}"
    );
    assert!(
        line.contains(&format!("Podman {version}")),
        "the version: {line}"
    );
    assert!(fix.is_none(), "{table}");

    let (status, table) = doctor(&["--docker-socket", "/nonexistent.sock"]);
    let (line, fix) = doctor_line(&table, "container runtime docker");
    assert!(line.starts_with("warn "), "{line}");
    assert!(line.contains("/nonexistent.sock"), "{line}");
    assert!(line.contains("no such socket"), "the reason: {line}");
    assert!(fix.is_some(), "a fix: {table}");
    assert!(
        table.contains("live capture can work on this host"),
        "{table}"
    );
    assert!(
        status.success(),
        "a runtime is optional: {status}:\n{table}"
    );
}
