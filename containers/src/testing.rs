//! Test support for the root-only tests that need real container runtimes (feature `testing`):
//! this crate's watcher tests (`tests/runtimes.rs`) and the binary's end-to-end tests of
//! container enrichment (`bin/tests/containers.rs`).
//!
//! Everything runs against daemons of the test's own, never the host's: a [`Podman`] with its
//! own `--root`, `--runroot` and `--tmpdir` (runc, vfs, cgroupfs, events in a file) and its
//! Docker-compatible service on its own socket ([`podman_lab`]), and a [`Containerd`] with its
//! own config, root, state and socket, the CRI plugin off ([`containerd_lab`]). Images are a
//! static busybox in a tiny rootfs ([`busybox_rootfs`], [`BUSYBOX_IMAGE`]). Everything started
//! is stopped on drop, and every wait is bounded.
//!
//! The rule is the project's: these tests are `#[ignore]`d ("needs root"), and [`require`]
//! fails them, when run, without root or a tool.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The image every lab imports from [`busybox_rootfs`].
pub const BUSYBOX_IMAGE: &str = "localhost/adi-test-bb:1";

/// The busybox applets linked in the image's `/bin`.
const APPLETS: [&str; 4] = ["sh", "httpd", "sleep", "wget"];

/// How long a change may take to reach an index (the bound of [`wait_for`]).
pub const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The requirements and helpers.

/// Fails the calling runtime test unless it runs as root, with every one of `tools` and a
/// static busybox at [`BUSYBOX`].
///
/// # Panics
///
/// When something is missing; the message names it.
pub fn require(tools: &[&str]) {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false);
    assert!(root, "this test needs root: run it with sudo");
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "this test needs {tool}: install it (.ci/run lists the packages)"
        );
    }
    // A dynamically linked busybox (Debian's `busybox`) cannot run alone in an image.
    assert!(
        is_static_elf(&std::fs::read(BUSYBOX).unwrap_or_default()),
        "this test needs busybox-static: {BUSYBOX} must be static"
    );
}

/// Whether `elf` is a 64-bit little-endian ELF file without a program interpreter
/// (`PT_INTERP`): statically linked.
pub fn is_static_elf(elf: &[u8]) -> bool {
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

/// Runs a command to completion (stdin closed) and returns its stdout, trimmed.
///
/// # Panics
///
/// When it cannot start or fails; the message holds its stderr.
pub fn run(cmd: &mut Command) -> String {
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

/// Runs a command for its side effect, ignoring its output and failure (cleanup).
pub fn quietly(cmd: &mut Command) {
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A daemon the test started, stopped on drop: SIGTERM, then SIGKILL after 10 s.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    /// Starts `cmd` with stdin closed and stdout and stderr written to `log`.
    ///
    /// # Panics
    ///
    /// When the log cannot be created or the command cannot start.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("daemon log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        Self { child: Some(child) }
    }

    /// Stops it (SIGKILL with `kill`, else SIGTERM first) and waits, at most 10 s. Does
    /// nothing the second time.
    pub fn stop(&mut self, kill: bool) {
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

/// Waits until `done` holds, at most [`DEADLINE`].
///
/// # Panics
///
/// When the deadline passes; the message names `what`.
pub fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_within(what, DEADLINE, done);
}

/// Waits until `done` holds, polling every 50 ms, at most `deadline`.
///
/// # Panics
///
/// When the deadline passes; the message names `what`.
pub fn wait_within(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most [`DEADLINE`]) for a unix socket to accept connections.
///
/// # Panics
///
/// When it never does.
pub fn wait_socket(path: &Path) {
    wait_for(&format!("{} to listen", path.display()), || {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    });
}

/// A loopback port free when this returns (another process may still take it first).
///
/// # Panics
///
/// When no loopback port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The CGI script behind `/cgi-bin/slow` of the image's httpd: answers `slow` after a second
/// (a client that waits for it outlives its request by that much).
const SLOW_CGI: &str = "#!/bin/sh\nsleep 1\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow\\n'\n";

/// Writes `dir/rootfs` (a static busybox at `/bin/busybox` with the `sh`, `httpd`, `sleep` and
/// `wget` applets linked beside it; for `httpd -h /www`, a page `/www/index.html` holding `adi`
/// and a CGI `/www/cgi-bin/slow` answering `slow` after a second) and returns a tar of it,
/// `dir/rootfs.tar`, to import as an image.
///
/// # Panics
///
/// When a file cannot be written or `tar` fails.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).expect("rootfs/bin");
    std::fs::create_dir_all(root.join("www/cgi-bin")).expect("rootfs/www/cgi-bin");
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(root.join("www/index.html"), "adi\n").expect("page");
    let slow = root.join("www/cgi-bin/slow");
    std::fs::write(&slow, SLOW_CGI).expect("cgi");
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).expect("chmod cgi");
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// A name no other run uses: `prefix-PID-NANOS`.
///
/// # Panics
///
/// When the clock is before 1970.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 100_000)
}

// ---------------------------------------------------------------------------------------------
// Podman.

/// `podman` with the test's own storage, state, events and runtime, and what to remove on drop:
/// the containers it ran, its network and the image.
#[derive(Debug)]
pub struct Podman {
    dir: PathBuf,
    network: String,
    subnet: Option<(u8, u8)>,
    names: Vec<String>,
}

impl Podman {
    /// A podman keeping everything under `dir` (`root`, `runroot`, `tmp`), with no network of
    /// its own yet.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            network: String::new(),
            subnet: None,
            names: Vec::new(),
        }
    }

    /// `podman` with this instance's `--root`, `--runroot`, `--tmpdir`, runc, vfs, events in a
    /// file and cgroupfs.
    pub fn cmd(&self) -> Command {
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

    /// Starts its Docker-compatible service on `socket` (`podman system service --time=0`,
    /// logging to `service.log`) and waits for it to listen.
    ///
    /// # Panics
    ///
    /// When it does not start or never listens.
    pub fn service(&self, socket: &Path) -> Daemon {
        let mut cmd = self.cmd();
        cmd.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()));
        let d = Daemon::spawn(&mut cmd, &self.dir.join("service.log"));
        wait_socket(socket);
        d
    }

    /// Imports [`BUSYBOX_IMAGE`] from a [`busybox_rootfs`] written under its directory.
    ///
    /// # Panics
    ///
    /// When the import fails.
    pub fn import_busybox(&self) {
        let tar = busybox_rootfs(&self.dir);
        run(self.cmd().arg("import").arg(&tar).arg(BUSYBOX_IMAGE));
    }

    /// Creates a network of its own (a unique name, DNS off) on a /24 of `10.0.0.0/8` unlikely
    /// to be in use (podman refuses one that is), named by [`Podman::network`]; its gateway
    /// is [`Podman::gateway`].
    ///
    /// # Panics
    ///
    /// When podman refuses.
    pub fn create_network(&mut self) {
        /// Networks created by this process so far: two tests of one binary get two subnets.
        static CREATED: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let n = CREATED.fetch_add(1, Ordering::Relaxed);
        let subnet = (200 + (pid % 50) as u8, ((pid + n * 37) % 250) as u8);
        self.network = unique("adi-rt");
        run(self
            .cmd()
            .args(["network", "create", "--disable-dns", "--subnet"])
            .arg(format!("10.{}.{}.0/24", subnet.0, subnet.1))
            .arg(&self.network));
        self.subnet = Some(subnet);
    }

    /// The name of its network (empty before [`Podman::create_network`]).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Its network's gateway, the `.1` of its subnet: the host's address on that network.
    ///
    /// # Panics
    ///
    /// Before [`Podman::create_network`].
    pub fn gateway(&self) -> IpAddr {
        let (a, b) = self.subnet.expect("the network is created");
        IpAddr::from([10, a, b, 1])
    }

    /// Runs busybox httpd (port 8080, serving `/www`) as container `name` on its network, with
    /// the `podman run` options `extra`; returns its full id.
    ///
    /// # Panics
    ///
    /// When `podman run` fails.
    pub fn run(&mut self, name: &str, extra: &[&str]) -> String {
        self.run_with(
            name,
            extra,
            &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
        )
    }

    /// Runs `argv` in [`BUSYBOX_IMAGE`] as container `name` (detached) on its network, with
    /// the `podman run` options `extra`; returns its full id. It is removed on drop.
    ///
    /// # Panics
    ///
    /// When `podman run` fails.
    pub fn run_with(&mut self, name: &str, extra: &[&str], argv: &[&str]) -> String {
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
            .arg(BUSYBOX_IMAGE)
            .args(argv))
    }

    /// The address of container `name` on its first network.
    ///
    /// # Panics
    ///
    /// When `podman inspect` fails or gives no address.
    pub fn ip(&self, name: &str) -> IpAddr {
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

    /// The state of container `name` (`running`, `exited`, ...), `None` when podman does not
    /// know it.
    pub fn state(&self, name: &str) -> Option<String> {
        let out = self
            .cmd()
            .args(["inspect", "--format", "{{.State.Status}}", name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in &self.names {
            quietly(self.cmd().args(["rm", "-f", "-t", "0", name]));
        }
        if !self.network.is_empty() {
            quietly(self.cmd().args(["network", "rm", "-f", &self.network]));
        }
        quietly(self.cmd().args(["rmi", "-f", BUSYBOX_IMAGE]));
    }
}

/// A podman of the test's own under `dir` with its service on `dir/podman.sock`, the busybox
/// image and a network of its own: (podman, service, socket).
///
/// # Panics
///
/// When a step fails.
pub fn podman_lab(dir: &Path) -> (Podman, Daemon, PathBuf) {
    let mut podman = Podman::new(dir);
    let socket = dir.join("podman.sock");
    let service = podman.service(&socket);
    podman.import_busybox();
    podman.create_network();
    (podman, service, socket)
}

// ---------------------------------------------------------------------------------------------
// containerd.

/// `ctr` bound to the containerd at `socket`, in `namespace`.
pub fn ctr(socket: &Path, namespace: &str) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.arg("-a").arg(socket).args(["-n", namespace]);
    cmd
}

/// A containerd of the test's own (its config, root, state and socket under one directory,
/// the CRI plugin off) and the containers to remove on drop.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    /// (namespace, container id)
    containers: Vec<(String, String)>,
    daemon: Option<Daemon>,
}

impl Containerd {
    /// Writes its config under `dir` and starts it on `dir/containerd.sock`.
    ///
    /// # Panics
    ///
    /// When it does not start or never listens.
    pub fn start(dir: &Path) -> Self {
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

    /// Its gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Starts the daemon again (after [`Containerd::kill_daemon`]) and waits for its socket.
    ///
    /// # Panics
    ///
    /// When it does not start or never listens.
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(self.dir.join("config.toml"));
        self.daemon = Some(Daemon::spawn(&mut cmd, &self.dir.join("containerd.log")));
        wait_socket(&self.socket);
    }

    /// Kills the daemon (SIGKILL): its shims keep the containers running.
    pub fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(true);
        }
    }

    /// Imports an image archive into `namespace` (native snapshotter).
    ///
    /// # Panics
    ///
    /// When `ctr` fails.
    pub fn import(&self, namespace: &str, archive: &Path) {
        run(ctr(&self.socket, namespace)
            .args(["images", "import", "--snapshotter", "native"])
            .arg(archive));
    }

    /// Runs busybox httpd on `port` as container `id` with the `ctr run` options `extra`;
    /// returns its task's pid.
    ///
    /// # Panics
    ///
    /// When `ctr` fails.
    pub fn run(&mut self, namespace: &str, id: &str, port: u16, extra: &[&str]) -> u32 {
        let port = port.to_string();
        self.run_with(
            namespace,
            id,
            extra,
            &["/bin/httpd", "-f", "-h", "/www", "-p", &port],
        );
        self.pid(namespace, id)
    }

    /// Runs `argv` in [`BUSYBOX_IMAGE`] as container `id` (detached), with the `ctr run`
    /// options `extra`. Its task and container are removed on drop.
    ///
    /// # Panics
    ///
    /// When `ctr` fails.
    pub fn run_with(&mut self, namespace: &str, id: &str, extra: &[&str], argv: &[&str]) {
        self.containers.push((namespace.to_owned(), id.to_owned()));
        run(ctr(&self.socket, namespace)
            .args(["run", "-d", "--snapshotter", "native"])
            .args(extra)
            .args([BUSYBOX_IMAGE, id])
            .args(argv));
    }

    /// The pid and status (`RUNNING`, `STOPPED`, ...) of container `id`'s task, `None` when
    /// it has none.
    ///
    /// # Panics
    ///
    /// When `ctr` fails.
    pub fn task(&self, namespace: &str, id: &str) -> Option<(u32, String)> {
        let out = run(ctr(&self.socket, namespace).args(["task", "ls"]));
        out.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.first() != Some(&id) {
                return None;
            }
            Some((f.get(1)?.parse().ok()?, (*f.get(2)?).to_owned()))
        })
    }

    /// The pid of container `id`'s task.
    ///
    /// # Panics
    ///
    /// When it has no task.
    pub fn pid(&self, namespace: &str, id: &str) -> u32 {
        self.task(namespace, id)
            .unwrap_or_else(|| panic!("no task {id}"))
            .0
    }

    /// Kills container `id`'s task (SIGKILL).
    ///
    /// # Panics
    ///
    /// When `ctr` fails.
    pub fn kill(&self, namespace: &str, id: &str) {
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

/// [`BUSYBOX_IMAGE`] as an OCI archive, `dir/image.oci.tar`, made with a podman storage of its
/// own under `dir/podman`.
///
/// # Panics
///
/// When podman fails.
pub fn oci_image(dir: &Path) -> PathBuf {
    let podman = Podman::new(&dir.join("podman"));
    podman.import_busybox();
    let archive = dir.join("image.oci.tar");
    run(podman
        .cmd()
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&archive)
        .arg(BUSYBOX_IMAGE));
    archive
}

/// A containerd of the test's own under `dir/containerd` with [`BUSYBOX_IMAGE`] imported into
/// each of `namespaces`.
///
/// # Panics
///
/// When a step fails.
pub fn containerd_lab(dir: &Path, namespaces: &[&str]) -> Containerd {
    let archive = oci_image(dir);
    let cd = Containerd::start(&dir.join("containerd"));
    for ns in namespaces {
        cd.import(ns, &archive);
    }
    cd
}
