//! Real servers and clients for the live tests: servers stopped with their clean-shutdown
//! signal, clients held until their pid is known, temp dirs a server's user can write, and a
//! lock so that one service test runs at a time on a small machine.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// One service test at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A server stopped on drop with `signal` (its clean shutdown), and killed if it is still
/// there 10 s later.
pub struct Server {
    /// The server's process.
    pub child: Child,
    /// What stops it cleanly.
    pub signal: i32,
}

impl Server {
    /// Starts a server that prints the port it listens on as its first line (a port the
    /// kernel picked: no race with other tests for it), and returns it with that port.
    pub fn spawn_printing_port(cmd: &mut Command, signal: i32) -> (Self, u16) {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let line = super::first_line(&mut child);
        let server = Self { child, signal };
        let line = line.expect("the port line");
        let port = line
            .parse()
            .unwrap_or_else(|_| panic!("{cmd:?} printed {line:?}, not a port"));
        (server, port)
    }

    pub fn spawn(cmd: &mut Command, signal: i32) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        Self { child, signal }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet.
        unsafe { libc::kill(self.child.id().cast_signed(), self.signal) };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sh -c 'read go; exec ARGV'`: a client that does nothing before it gets a line on stdin,
/// so that its pid (exec keeps it) can be given to `adi --pid` first.
pub fn held(argv: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "read go; exec \"$@\"", "sh"]).args(argv);
    cmd
}

/// A Python client that reads a line from stdin before it runs `script`.
pub fn held_python(script: &str, args: &[&str]) -> Command {
    // The interpreter itself, not a launcher shim that execs helpers first (each exec of a
    // watched program is work for adi, and the shim's are not the test's).
    let mut cmd = Command::new(super::python_executable());
    cmd.args(["-c", &format!("import sys\nsys.stdin.readline()\n{script}")])
        .args(args);
    cmd
}

/// A client started by `held` or `held_python`, killed on drop.
pub struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
    what: String,
}

impl Held {
    pub fn spawn(mut cmd: Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let stdin = child.stdin.take();
        Self { child, stdin, what }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it go and waits (at most 20 s) for it to succeed; returns its stdout.
    pub fn run(&mut self) -> String {
        let mut stdin = self.stdin.take().expect("not run yet");
        stdin.write_all(b"go\n").expect("go");
        drop(stdin);
        let read = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_string(&mut s);
                }
                s
            })
        };
        let out = read(self.child.stdout.take().map(|o| Box::new(o) as _));
        let err = read(self.child.stderr.take().map(|e| Box::new(e) as _));
        let end = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait client") {
                break status;
            }
            assert!(Instant::now() < end, "{} did not finish in 20 s", self.what);
            std::thread::sleep(Duration::from_millis(20));
        };
        let (out, err) = (out.join().expect("stdout"), err.join().expect("stderr"));
        assert!(
            status.success(),
            "{} exited with {status}: {out}{err}",
            self.what
        );
        out
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temp dir that user `owner` can write (servers that drop root run as that user).
pub fn owned_tempdir(owner: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = Command::new("chown")
        .args([owner, &dir.path().display().to_string()])
        .status()
        .expect("chown");
    assert!(ok.success(), "chown {owner}");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    dir
}

/// Runs a setup command to completion (bounded by the command itself) and asserts success.
pub fn setup(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian 12's PostgreSQL programs.
pub const PGBIN: &str = "/usr/lib/postgresql/15/bin";

/// `bin` run as the postgres user (setpriv execs, so the pid is the program's).
pub fn as_postgres(bin: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups", bin]);
    cmd
}

/// psql, held until its go (see [`held`]), running `query` once as `postgres` (logging in
/// with `password`) against 127.0.0.1:`port` with `sslmode`, unaligned and tuples only.
pub fn held_psql(port: &str, password: &str, sslmode: &str, query: &str) -> Command {
    let mut cmd = held(&[
        "psql",
        "-X",
        "-A",
        "-t",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-U",
        "postgres",
        "-c",
        query,
    ]);
    cmd.env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", sslmode);
    cmd
}

/// A new cluster in `d("data")` whose `postgres` superuser logs in with `password`, sent in
/// clear (`--auth=password`).
pub fn initdb_with_password(initdb: &str, d: &dyn Fn(&str) -> String, password: &str) {
    std::fs::write(d("pwfile"), password).expect("pwfile");
    setup(as_postgres(initdb).args([
        "-D",
        &d("data"),
        "-U",
        "postgres",
        "--auth=password",
        &format!("--pwfile={}", d("pwfile")),
        "--no-sync",
        "--locale=C",
        "--encoding=UTF8",
    ]));
}
