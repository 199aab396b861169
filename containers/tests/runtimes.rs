//! Root-only: the runtime watchers against real daemons, no mocks.
//!
//! - `podman_through_the_docker_api`: a `podman system service` of its own (own `--root`,
//!   `--runroot`, `--tmpdir`, socket), a busybox image imported from a tiny rootfs, a network
//!   of its own; containers with labels and a published port fill the index, a container
//!   started and one stopped while the watcher runs are followed (from events: the watcher does
//!   not poll), and killing the service forgets its containers until it is back.
//! - `containerd_namespaces_and_netns_addresses`: a `containerd` of its own (own `--config`
//!   with its own root, state and socket, the CRI plugin off); containers in their own network
//!   namespace (with an address added inside it) and in the host's; the namespace filter; the
//!   same event and reconnection checks.
//!
//! Same rules as the other live tests: without root or a tool these print `SKIPPED` and pass,
//! except under `CI`, where that is a failure. Everything started here is stopped by pid or by
//! name, with bounded waits, even when an assertion fails (guards stop it on drop). Needs
//! podman (with runc), containerd (with ctr and containerd-shim-runc-v2), busybox-static,
//! iproute2 and util-linux (nsenter).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adi_containers::containerd;
use adi_containers::docker;
use adi_containers::runtime::{Endpoint, State, StatusCell};
use adi_containers::{Index, RuntimeKind};

/// Where Debian's busybox-static puts its binary.
const BUSYBOX: &str = "/bin/busybox";

/// How long a change may take to reach the index.
const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The skip rule and helpers.

/// Whether this test can run: root and every tool; a loud skip otherwise, a failure under CI.
fn can_run(tools: &[&str]) -> bool {
    let ci = std::env::var_os("CI").is_some();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false);
    if !root {
        assert!(!ci, "CI runs as root: the runtime tests must run");
        eprintln!("SKIPPED (needs root)");
        return false;
    }
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(!ci, "CI must install {tool}");
            eprintln!("SKIPPED ({tool} not installed)");
            return false;
        }
    }
    // A dynamically linked busybox (Debian's `busybox`) cannot run alone in an image.
    if !is_static_elf(&std::fs::read(BUSYBOX).unwrap_or_default()) {
        assert!(!ci, "CI must install busybox-static");
        eprintln!("SKIPPED (busybox-static not installed: {BUSYBOX} must be static)");
        return false;
    }
    true
}

/// Whether `elf` is a 64-bit little-endian ELF file without a program interpreter
/// (`PT_INTERP`): statically linked.
fn is_static_elf(elf: &[u8]) -> bool {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1).
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        // p_type of each program header; PT_INTERP = 3.
        u32_at(phoff + i * usize::from(phentsize)).is_some_and(|t| t != 3)
    })
}

/// Runs a command to completion and returns its stdout; panics with its stderr on failure.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs a command for its side effect, ignoring failure (cleanup).
fn quietly(cmd: &mut Command) {
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A daemon we started, stopped on drop: SIGTERM, then SIGKILL after 10 s.
struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    fn spawn(cmd: &mut Command, log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("daemon log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        Self { child: Some(child) }
    }

    /// Stops it (SIGKILL with `kill`, else SIGTERM first) and waits, at most 10 s.
    fn stop(&mut self, kill: bool) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if !kill {
            quietly(Command::new("kill").args(["-TERM", &child.id().to_string()]));
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// Waits until `done` holds, at most [`DEADLINE`]; panics naming `what` otherwise.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a unix socket to accept connections.
fn wait_socket(path: &Path) {
    wait_for(&format!("{} to listen", path.display()), || {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A tar of a rootfs holding only a static busybox (with `sh` and `httpd` links) and a page.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).expect("rootfs/bin");
    std::fs::create_dir_all(root.join("www")).expect("rootfs/www");
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "httpd", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(root.join("www/index.html"), "adi\n").expect("page");
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// A tokio runtime of two worker threads for the watchers (the test thread waits on the index).
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A name no other run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 100_000)
}

fn ip_at(index: &Index, ip: IpAddr) -> Option<String> {
    index
        .at(SocketAddr::new(ip, 80))
        .map(|c| c.container_name.clone())
}

// ---------------------------------------------------------------------------------------------
// Podman through the Docker Engine API.

/// `podman` with this test's own storage, state, events and runtime.
struct Podman {
    dir: PathBuf,
    network: String,
    names: Vec<String>,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args([
                "--runtime",
                "runc",
                "--storage-driver",
                "vfs",
                "--events-backend",
                "file",
                "--cgroup-manager",
                "cgroupfs",
            ]);
        cmd
    }

    fn service(&self, socket: &Path) -> Daemon {
        let mut cmd = self.cmd();
        cmd.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()));
        let d = Daemon::spawn(&mut cmd, &self.dir.join("service.log"));
        wait_socket(socket);
        d
    }

    /// Runs a busybox httpd container on the test network; returns its full id.
    fn run(&mut self, name: &str, extra: &[&str]) -> String {
        self.names.push(name.to_owned());
        run(self
            .cmd()
            .args(["run", "-d", "--name", name, "--network", &self.network])
            .args([
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .args(extra)
            .args([
                "localhost/adi-test-bb:1",
                "/bin/httpd",
                "-f",
                "-p",
                "8080",
                "-h",
                "/www",
            ]))
    }

    fn ip(&self, name: &str) -> IpAddr {
        let out = run(self.cmd().args([
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            name,
        ]));
        out.split_whitespace()
            .next()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("{name} has no address: {out:?}"))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in &self.names {
            quietly(self.cmd().args(["rm", "-f", "-t", "0", name]));
        }
        quietly(self.cmd().args(["network", "rm", "-f", &self.network]));
        quietly(self.cmd().args(["rmi", "-f", "localhost/adi-test-bb:1"]));
    }
}

/// A podman of our own with its service, the busybox image and a network of its own.
fn podman_lab(dir: &Path) -> (Podman, Daemon, PathBuf) {
    let podman = Podman {
        dir: dir.to_owned(),
        network: unique("adi-rt"),
        names: Vec::new(),
    };
    let socket = dir.join("podman.sock");
    let service = podman.service(&socket);
    let tar = busybox_rootfs(dir);
    run(podman
        .cmd()
        .arg("import")
        .arg(&tar)
        .arg("localhost/adi-test-bb:1"));
    // A subnet of its own, unlikely to be in use (podman refuses one that is).
    let pid = std::process::id();
    let subnet = format!("10.{}.{}.0/24", 200 + pid % 50, pid % 250);
    run(podman
        .cmd()
        .args(["network", "create", "--disable-dns", "--subnet", &subnet])
        .arg(&podman.network));
    (podman, service, socket)
}

/// The index, status and task of a watcher started on a runtime.
type Watched = (Arc<Index>, Arc<StatusCell>, tokio::task::JoinHandle<()>);

fn watch_docker(rt: &tokio::runtime::Runtime, endpoint: &Endpoint) -> Watched {
    let index = Arc::new(Index::new());
    let status = Arc::new(StatusCell::default());
    let task = rt.spawn(docker::watch(
        endpoint.clone(),
        Arc::clone(&index),
        Arc::clone(&status),
    ));
    (index, status, task)
}

fn connected_with(status: &StatusCell, n: usize) -> bool {
    matches!(status.get(), State::Connected(c) if c.containers == n)
}

#[test]
fn podman_through_the_docker_api() {
    if !can_run(&["podman", "runc", "tar"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut podman, mut service, socket) = podman_lab(tmp.path());
    let port = free_port();
    let (web_name, db_name) = (unique("adi-rt-web"), unique("adi-rt-db"));
    let publish = format!("127.0.0.1:{port}:8080");
    let compose = "com.docker.compose.service=web";
    let web = podman.run(
        &web_name,
        &["--label", compose, "--label", "tier=front", "-p", &publish],
    );
    let db = podman.run(&db_name, &["--label", "tier=back"]);
    let (web_ip, db_ip) = (podman.ip(&web_name), podman.ip(&db_name));

    let endpoint = Endpoint::parse(&format!("unix://{}", socket.display())).expect("endpoint");
    let rt = tokio_runtime();
    let probed = rt
        .block_on(docker::probe(&endpoint))
        .expect("the probe reaches podman");
    assert!(probed.version.starts_with("Podman 4"), "{probed}");
    assert!(probed.version.contains("(Docker API 1."), "{probed}");
    assert_eq!(probed.containers, 2);
    let missing = tmp.path().join("none.sock").display().to_string();
    let missing = Endpoint::parse(&missing).expect("path");
    assert_eq!(
        rt.block_on(docker::probe(&missing)),
        Err("no such socket".to_owned())
    );

    let (index, status, watcher) = watch_docker(&rt, &endpoint);
    wait_for("the listing", || index.count(RuntimeKind::Docker) == 2);
    assert!(connected_with(&status, 2), "{:?}", status.get());
    let w = index.get(&web).expect("web is indexed");
    assert_eq!(w.container_name, web_name);
    assert_eq!(w.service, "web", "from the compose label");
    assert_eq!(w.image, "localhost/adi-test-bb:1");
    assert_eq!(w.labels.get("tier").map(String::as_str), Some("front"));
    let d = index.get(&db).expect("db is indexed");
    assert_eq!(d.service, db_name, "no service label: the name");
    assert_eq!(ip_at(&index, web_ip).as_deref(), Some(web_name.as_str()));
    assert_eq!(ip_at(&index, db_ip).as_deref(), Some(db_name.as_str()));
    let published = SocketAddr::from(([127, 0, 0, 1], port));
    let at_published = || index.at(published).map(|c| c.container_id.clone());
    assert_eq!(
        at_published(),
        Some(web.clone()),
        "the published port reaches web"
    );

    // Changes while the watcher runs arrive as events.
    let late_name = unique("adi-rt-late");
    let late = podman.run(&late_name, &["--label", "tier=late"]);
    wait_for("the late container", || index.get(&late).is_some());
    let late_ip = podman.ip(&late_name);
    assert_eq!(ip_at(&index, late_ip).as_deref(), Some(late_name.as_str()));
    run(podman.cmd().args(["stop", "-t", "0", &db_name]));
    wait_for("the stopped container to go", || index.get(&db).is_none());
    assert_eq!(ip_at(&index, db_ip), None);
    assert!(connected_with(&status, 2), "{:?}", status.get());

    // The service goes away: its containers are forgotten (they still run)...
    service.stop(true);
    wait_for("the outage to clear the index", || {
        index.count(RuntimeKind::Docker) == 0
    });
    assert!(
        matches!(status.get(), State::Failed(_)),
        "{:?}",
        status.get()
    );
    assert_eq!(at_published(), None);
    // ...and listed again when it is back on the same socket.
    let _ = std::fs::remove_file(&socket);
    let service = podman.service(&socket);
    wait_for("the reconnection", || {
        index.get(&web).is_some() && index.get(&late).is_some()
    });
    assert!(index.get(&db).is_none());
    assert!(connected_with(&status, 2), "{:?}", status.get());

    watcher.abort();
    drop(rt);
    drop(service);
    drop(podman);
}

// ---------------------------------------------------------------------------------------------
// containerd.

/// A `ctr` bound to this test's containerd.
fn ctr(socket: &Path, namespace: &str) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.arg("-a").arg(socket).args(["-n", namespace]);
    cmd
}

/// This test's containerd: its directory, socket and the containers to remove.
struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    /// (namespace, container id)
    containers: Vec<(String, String)>,
    daemon: Option<Daemon>,
}

impl Containerd {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{socket}\"\n\
             [ttrpc]\n  address = \"\"\n\
             [debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            socket = socket.display(),
        );
        std::fs::create_dir_all(dir).expect("containerd dir");
        std::fs::write(dir.join("config.toml"), config).expect("containerd config");
        let mut me = Self {
            dir: dir.to_owned(),
            socket,
            containers: Vec::new(),
            daemon: None,
        };
        me.restart();
        me
    }

    fn restart(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(self.dir.join("config.toml"));
        self.daemon = Some(Daemon::spawn(&mut cmd, &self.dir.join("containerd.log")));
        wait_socket(&self.socket);
    }

    fn import(&self, namespace: &str, archive: &Path) {
        run(ctr(&self.socket, namespace)
            .args(["images", "import", "--snapshotter", "native"])
            .arg(archive));
    }

    /// Runs busybox httpd on `port` as container `id`; returns its task's pid.
    fn run(&mut self, namespace: &str, id: &str, port: u16, extra: &[&str]) -> u32 {
        self.containers.push((namespace.to_owned(), id.to_owned()));
        run(ctr(&self.socket, namespace)
            .args(["run", "-d", "--snapshotter", "native"])
            .args(extra)
            .args([
                "localhost/adi-test-bb:1",
                id,
                "/bin/httpd",
                "-f",
                "-h",
                "/www",
                "-p",
            ])
            .arg(port.to_string()));
        self.pid(namespace, id)
    }

    fn pid(&self, namespace: &str, id: &str) -> u32 {
        let out = run(ctr(&self.socket, namespace).args(["task", "ls"]));
        out.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f.get(1)?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no task {id} in {out}"))
    }

    fn kill(&self, namespace: &str, id: &str) {
        run(ctr(&self.socket, namespace).args(["task", "kill", "-s", "SIGKILL", id]));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.daemon.is_none() {
            self.restart();
        }
        for (ns, id) in &self.containers {
            quietly(ctr(&self.socket, ns).args(["task", "kill", "-s", "SIGKILL", id]));
        }
        for (ns, id) in &self.containers {
            // The task is deleted once it has exited (bounded: a few tries).
            for _ in 0..50 {
                let gone = ctr(&self.socket, ns)
                    .args(["task", "delete", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
                    || !ctr(&self.socket, ns)
                        .args(["task", "ls", "-q"])
                        .output()
                        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == id));
                if gone {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            quietly(ctr(&self.socket, ns).args(["containers", "delete", id]));
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop(false);
        }
        // Nothing of ours may stay mounted (a failure halfway could leave a rootfs).
        let dir = self.dir.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for target in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
            if target.starts_with(&dir) {
                quietly(Command::new("umount").args(["-l", target]));
            }
        }
    }
}

/// The busybox image as an OCI archive, made with a podman storage of our own.
fn oci_image(dir: &Path) -> PathBuf {
    let podman = Podman {
        dir: dir.join("podman"),
        network: String::new(),
        names: Vec::new(),
    };
    let tar = busybox_rootfs(dir);
    run(podman
        .cmd()
        .arg("import")
        .arg(&tar)
        .arg("localhost/adi-test-bb:1"));
    let archive = dir.join("image.oci.tar");
    run(podman
        .cmd()
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&archive)
        .arg("localhost/adi-test-bb:1"));
    archive
}

fn watch_containerd(
    rt: &tokio::runtime::Runtime,
    endpoint: &Endpoint,
    namespace: Option<&str>,
) -> Watched {
    let index = Arc::new(Index::new());
    let status = Arc::new(StatusCell::default());
    let task = rt.spawn(containerd::watch(
        endpoint.clone(),
        namespace.map(str::to_owned),
        Arc::clone(&index),
        Arc::clone(&status),
    ));
    (index, status, task)
}

/// The address given to `own-netns` inside its network namespace.
const OWN_IP: &str = "10.254.77.9";

/// Our containerd with the image in two namespaces, running `own-netns` (its own network
/// namespace, [`OWN_IP`] added inside it) and `host-net` (the host's) in the first and
/// `elsewhere` in the second.
fn containerd_lab(dir: &Path) -> (Containerd, String, String) {
    let archive = oci_image(dir);
    let mut cd = Containerd::start(&dir.join("containerd"));
    let (ns, other_ns) = (unique("adi-rt"), unique("adi-rt-other"));
    cd.import(&ns, &archive);
    cd.import(&other_ns, &archive);
    let labels = ["--label", "nerdctl/name=web", "--label", "tier=front"];
    let own_pid = cd.run(&ns, "own-netns", free_port(), &labels).to_string();
    let add = [
        "-n",
        "ip",
        "addr",
        "add",
        &format!("{OWN_IP}/32"),
        "dev",
        "lo",
    ];
    run(Command::new("nsenter").args(["-t", &own_pid]).args(add));
    cd.run(
        &ns,
        "host-net",
        free_port(),
        &["--net-host", "--label", "tier=host"],
    );
    cd.run(
        &other_ns,
        "elsewhere",
        free_port(),
        &["--label", "tier=other"],
    );
    (cd, ns, other_ns)
}

#[test]
fn containerd_namespaces_and_netns_addresses() {
    let tools = [
        "containerd",
        "ctr",
        "containerd-shim-runc-v2",
        "podman",
        "runc",
        "nsenter",
        "ip",
    ];
    if !can_run(&tools) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut cd, ns, other_ns) = containerd_lab(tmp.path());
    let own_ip: IpAddr = OWN_IP.parse().expect("ip");
    let endpoint = Endpoint::parse(&cd.socket.display().to_string()).expect("endpoint");
    let rt = tokio_runtime();
    let probed = rt
        .block_on(containerd::probe(&endpoint, Some(&ns)))
        .expect("probe");
    assert!(probed.version.starts_with("containerd "), "{probed}");
    assert_eq!(probed.containers, 2);

    let (index, status, watcher) = watch_containerd(&rt, &endpoint, Some(&ns));
    wait_for("the listing", || index.count(RuntimeKind::Containerd) == 2);
    assert!(
        index.get("elsewhere").is_none(),
        "another namespace is not watched"
    );
    let web = index.get("own-netns").expect("own-netns is indexed");
    assert_eq!(web.container_name, "web", "from nerdctl's name label");
    assert_eq!(web.image, "localhost/adi-test-bb:1");
    assert_eq!(web.labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(
        ip_at(&index, own_ip).as_deref(),
        Some("web"),
        "its netns address"
    );
    let host = index.get("host-net").expect("host-net is indexed");
    assert_eq!(host.container_name, "host-net", "no name label: the id");
    // Nobody holds loopback, and the host-network one holds none of the host's addresses.
    assert!(!index.holds_ip("127.0.0.1".parse().expect("ip")));
    let host_addrs = adi_containers::netns::addresses_of(std::process::id());
    assert!(!host_addrs.is_empty());
    for a in &host_addrs {
        assert!(!index.holds_ip(*a), "{a} is the host's, not host-net's");
    }

    // Changes while the watcher runs arrive as events (after its second listing, so that
    // only events can tell it).
    std::thread::sleep(containerd::RELIST_AFTER + Duration::from_millis(500));
    cd.run(&ns, "late", free_port(), &["--label", "tier=late"]);
    cd.run(&other_ns, "late-elsewhere", free_port(), &[]);
    wait_for("the late container", || index.get("late").is_some());
    cd.kill(&ns, "own-netns");
    wait_for("the killed container to go", || {
        index.get("own-netns").is_none()
    });
    assert_eq!(ip_at(&index, own_ip), None);
    assert!(index.get("late-elsewhere").is_none());
    assert!(connected_with(&status, 2), "{:?}", status.get());

    // Every namespace: both namespaces' running containers, and events from both.
    let (all, _, all_watcher) = watch_containerd(&rt, &endpoint, None);
    let everywhere = ["host-net", "late", "elsewhere", "late-elsewhere"];
    wait_for("every namespace", || {
        everywhere.iter().all(|id| all.get(id).is_some())
    });
    assert_eq!(all.count(RuntimeKind::Containerd), everywhere.len());
    std::thread::sleep(containerd::RELIST_AFTER + Duration::from_millis(500));
    cd.kill(&other_ns, "elsewhere");
    wait_for("the other namespace's event", || {
        all.get("elsewhere").is_none()
    });

    // containerd goes away: its containers are forgotten (the shims keep them running)...
    if let Some(mut d) = cd.daemon.take() {
        d.stop(true);
    }
    wait_for("the outage to clear the index", || {
        index.count(RuntimeKind::Containerd) == 0
    });
    assert!(
        matches!(status.get(), State::Failed(_)),
        "{:?}",
        status.get()
    );
    // ...and listed again when it is back.
    cd.restart();
    wait_for("the reconnection", || {
        index.get("late").is_some() && index.get("host-net").is_some()
    });
    assert!(connected_with(&status, 2), "{:?}", status.get());

    watcher.abort();
    all_watcher.abort();
    drop(rt);
    drop(cd);
}
