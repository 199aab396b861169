//! `adi go ps`: the running Go programs, with their Go version and build info, in the output
//! formats of httpwatcher's scanner (see `docs/go-uprobes.md`).
//!
//! Every pid in `/proc` (or the pids given) is inspected through `/proc/PID/exe`, which works
//! for deleted executables and other mount namespaces: the build info comes from its
//! `.go.buildinfo` (`adi_probes::go`), `exe_mtime` from the metadata of the file behind the
//! link, `go_env` from the runtime variables in `/proc/PID/environ`, `cmdline` from
//! `/proc/PID/cmdline`. Non-Go processes are not listed; a process that exits while it is
//! inspected (its start time no longer matches) is skipped silently; processes that cannot be
//! read (permissions) are counted and reported once on stderr.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::UNIX_EPOCH;

use adi_probes::go::buildinfo::compare_versions;
use adi_probes::go::{GoBinary, GoError};
use anyhow::Context;
use clap::Args;
use serde::Serialize;

/// Go runtime variables worth reporting, in table order (httpwatcher's `goEnvKeys`).
const GO_ENV_KEYS: [&str; 6] = [
    "GOGC",
    "GODEBUG",
    "GOMAXPROCS",
    "GOMEMLIMIT",
    "GORACE",
    "GOTRACEBACK",
];

/// `adi go ps` flags.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// One JSON object per line instead of a table (fields: pid, exe, path, version,
    /// go_version, exe_mtime, package, go_env, cmdline, and go_build with --verbose).
    #[arg(long, short)]
    json: bool,
    /// Sort by Go version (oldest first) instead of by pid.
    #[arg(long, short)]
    sort: bool,
    /// Include the build settings (-ldflags, GOEXPERIMENT, CGO_ENABLED, vcs.*, ...) in JSON as
    /// `go_build`.
    #[arg(long)]
    verbose: bool,
    /// Inspect only these processes; an error is reported for each that is not a readable Go
    /// program. Default: every process.
    #[arg(value_name = "PID")]
    pids: Vec<u32>,
}

/// One Go process, as listed; the field names and order are the JSON schema (httpwatcher's
/// `ProcessInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// The executable's path (`/proc/PID/exe`'s target, with ` (deleted)` if it was removed).
    pub exe: String,
    /// The main package path from the build info.
    pub path: String,
    /// The main module's version; `devel` for local builds (`(devel)` or none).
    pub version: String,
    /// The Go toolchain version, as recorded (`go1.23.9`, `go1.9.2 X:framepointer`, ...).
    pub go_version: String,
    /// Modification time of the executable, Unix seconds (0 when unknown).
    pub exe_mtime: i64,
    /// `path@version` (`latest` for local builds); omitted without a path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub package: String,
    /// The Go runtime variables set in the process environment (GOGC, GODEBUG, GOMAXPROCS,
    /// GOMEMLIMIT, GORACE, GOTRACEBACK); omitted when none (or unreadable).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub go_env: BTreeMap<String, String>,
    /// The command line, arguments separated by spaces; omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cmdline: String,
    /// The build settings, with `--verbose` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go_build: Option<BTreeMap<String, String>>,
}

/// What inspecting one pid gave.
#[derive(Debug)]
pub enum Outcome {
    /// A Go program.
    Go(Box<ProcessInfo>),
    /// Not a Go program (or a kernel thread).
    NotGo,
    /// The process exited before or while it was inspected.
    Vanished,
    /// Permission denied (another user's process, without root).
    Denied,
    /// A Go program whose build info could not be read.
    Failed(String),
}

/// Runs `adi go ps`.
pub fn run(args: &PsArgs) -> anyhow::Result<ExitCode> {
    let explicit = !args.pids.is_empty();
    let pids = if explicit {
        args.pids.clone()
    } else {
        let mut all = adi_pipeline::proc::all_pids();
        all.sort_unstable();
        all
    };
    let mut found = Vec::new();
    let mut denied = 0usize;
    let mut errors = 0usize;
    for pid in pids {
        match inspect(pid, args.verbose) {
            Outcome::Go(info) => found.push(*info),
            Outcome::NotGo if explicit => {
                eprintln!("adi: pid {pid}: not a Go program");
                errors += 1;
            }
            Outcome::Vanished if explicit => {
                eprintln!("adi: pid {pid}: no such process");
                errors += 1;
            }
            Outcome::NotGo | Outcome::Vanished => {}
            Outcome::Denied if explicit => {
                eprintln!("adi: pid {pid}: permission denied: run adi as root to inspect it");
                errors += 1;
            }
            Outcome::Denied => denied += 1,
            Outcome::Failed(why) => {
                eprintln!("adi: pid {pid}: {why}");
                errors += 1;
            }
        }
    }
    if args.sort {
        found.sort_by(|a, b| compare_versions(&a.go_version, &b.go_version));
    }
    let stdout = io::stdout();
    let pretty = found.len() == 1 && stdout.is_terminal();
    let mut out = io::BufWriter::new(stdout.lock());
    if args.json {
        write_json(&mut out, &found, pretty)?;
    } else {
        write_table(&mut out, &found)?;
    }
    out.flush().context("writing to stdout")?;
    if denied > 0 {
        let processes = if denied == 1 { "process" } else { "processes" };
        eprintln!(
            "adi: {denied} {processes} could not be inspected (permission denied); run adi as \
             root to see them all"
        );
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Inspects one pid (see the module docs).
pub fn inspect(pid: u32, verbose: bool) -> Outcome {
    inspect_with(pid, verbose, || {})
}

/// [`inspect`], calling `midway` once the build info is read (tests make the process exit
/// there).
fn inspect_with(pid: u32, verbose: bool, midway: impl FnOnce()) -> Outcome {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Some(start) = start_time(pid) else {
        return Outcome::Vanished;
    };
    let exe_link = proc_dir.join("exe");
    let exe = match fs::read_link(&exe_link) {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(e) => return io_outcome(pid, start, &e),
    };
    let bin = match GoBinary::open(&exe_link) {
        Ok(bin) => bin,
        Err(GoError::Io { source, .. }) => return io_outcome(pid, start, &source),
        Err(_) => return still_there(pid, start, Outcome::NotGo),
    };
    if !bin.is_go() {
        return still_there(pid, start, Outcome::NotGo);
    }
    let info = match bin.build_info() {
        Ok(info) => info,
        Err(GoError::NotGo) => return still_there(pid, start, Outcome::NotGo),
        Err(e) => {
            let why = format!("{exe}: {e}");
            return still_there(pid, start, Outcome::Failed(why));
        }
    };
    midway();
    // Through the link: the file the process runs, even deleted or in another namespace.
    let exe_mtime = fs::metadata(&exe_link)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let go_env = fs::read(proc_dir.join("environ"))
        .map(|raw| go_env(&raw))
        .unwrap_or_default();
    let cmdline = fs::read(proc_dir.join("cmdline"))
        .map(|raw| cmdline(&raw))
        .unwrap_or_default();
    let version = display_version(&info.main.version, "devel");
    let package = if info.path.is_empty() {
        String::new()
    } else {
        format!(
            "{}@{}",
            info.path,
            display_version(&info.main.version, "latest")
        )
    };
    let go_build = verbose.then(|| {
        info.settings
            .iter()
            .map(|s| (s.key.clone(), s.value.clone()))
            .collect()
    });
    still_there(
        pid,
        start,
        Outcome::Go(Box::new(ProcessInfo {
            pid,
            exe,
            path: info.path,
            version,
            go_version: info.go_version,
            exe_mtime,
            package,
            go_env,
            cmdline,
            go_build,
        })),
    )
}

/// The process's start time (field 22 of `/proc/PID/stat`); `None` when it is gone or a
/// zombie (exited, not yet reaped: state `Z` or `X`, field 3).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..]
        .split_ascii_whitespace()
        .next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    adi_pipeline::proc::parse_start_time(&stat)
}

/// `outcome`, unless the process exited (or its pid was reused) meanwhile.
fn still_there(pid: u32, start: u64, outcome: Outcome) -> Outcome {
    if start_time(pid) == Some(start) {
        outcome
    } else {
        Outcome::Vanished
    }
}

/// An I/O error on `/proc/PID/...`: permissions, a vanished process, or (no `exe` link) a
/// kernel thread.
fn io_outcome(pid: u32, start: u64, e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::PermissionDenied => still_there(pid, start, Outcome::Denied),
        _ => still_there(pid, start, Outcome::NotGo),
    }
}

/// The module version for display (httpwatcher's `resolveVersion`).
fn display_version(version: &str, fallback: &str) -> String {
    if version.is_empty() || version == "(devel)" {
        fallback.to_owned()
    } else {
        version.to_owned()
    }
}

/// The Go runtime variables of a NUL-separated environment.
fn go_env(raw: &[u8]) -> BTreeMap<String, String> {
    raw.split(|&b| b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (k, v) = entry.split_once('=')?;
            GO_ENV_KEYS
                .contains(&k)
                .then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// A NUL-separated command line with spaces instead of NULs, trailing spaces trimmed.
fn cmdline(raw: &[u8]) -> String {
    let joined: String = String::from_utf8_lossy(raw).replace('\0', " ");
    joined.trim_end_matches(' ').to_owned()
}

fn write_json(out: &mut impl Write, found: &[ProcessInfo], pretty: bool) -> anyhow::Result<()> {
    for info in found {
        if pretty {
            serde_json::to_writer_pretty(&mut *out, info)?;
        } else {
            serde_json::to_writer(&mut *out, info)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// httpwatcher's table: `PID  Go Version  Exe  Go Package  Env`, columns two spaces apart,
/// nothing at all when no Go process was found.
fn write_table(out: &mut impl Write, found: &[ProcessInfo]) -> io::Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    let mut rows = vec![[
        "PID".to_owned(),
        "Go Version".to_owned(),
        "Exe".to_owned(),
        "Go Package".to_owned(),
        "Env".to_owned(),
    ]];
    for info in found {
        let exe = info.exe.rsplit('/').next().unwrap_or(&info.exe).to_owned();
        let env: Vec<String> = GO_ENV_KEYS
            .iter()
            .filter_map(|k| Some(format!("{k}={}", info.go_env.get(*k)?)))
            .collect();
        rows.push([
            info.pid.to_string(),
            info.go_version.clone(),
            exe,
            info.package.clone(),
            env.join(" "),
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w + 2 - cell.chars().count()));
        }
        line.push_str(&row[4]);
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use adi_probes::go::testing::{self, Variant};

    use super::*;

    fn sample() -> ProcessInfo {
        ProcessInfo {
            pid: 42,
            exe: "/srv/bin/api".into(),
            path: "example.com/cmd/api".into(),
            version: "v1.2.3".into(),
            go_version: "go1.23.9".into(),
            exe_mtime: 1_700_000_000,
            package: "example.com/cmd/api@v1.2.3".into(),
            go_env: BTreeMap::from([
                ("GOMAXPROCS".into(), "2".into()),
                ("GOGC".into(), "50".into()),
            ]),
            cmdline: "/srv/bin/api -port 8080".into(),
            go_build: None,
        }
    }

    #[test]
    fn json_fields_are_httpwatchers() {
        let mut out = Vec::new();
        write_json(&mut out, &[sample()], false).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "{\"pid\":42,\"exe\":\"/srv/bin/api\",\"path\":\"example.com/cmd/api\",\
             \"version\":\"v1.2.3\",\"go_version\":\"go1.23.9\",\"exe_mtime\":1700000000,\
             \"package\":\"example.com/cmd/api@v1.2.3\",\"go_env\":{\"GOGC\":\"50\",\
             \"GOMAXPROCS\":\"2\"},\"cmdline\":\"/srv/bin/api -port 8080\"}\n"
        );
    }

    #[test]
    fn table_is_httpwatchers() {
        let mut other = sample();
        other.pid = 1234;
        other.exe = "/usr/bin/x".into();
        other.package = String::new();
        other.go_env.clear();
        other.go_version = "go1.19.8".into();
        let mut out = Vec::new();
        write_table(&mut out, &[sample(), other]).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "PID   Go Version  Exe  Go Package                  Env\n\
             42    go1.23.9    api  example.com/cmd/api@v1.2.3  GOGC=50 GOMAXPROCS=2\n\
             1234  go1.19.8    x\n"
        );
        let mut none = Vec::new();
        write_table(&mut none, &[]).expect("write");
        assert!(none.is_empty());
    }

    #[test]
    fn env_and_cmdline_follow_the_seed() {
        let env = go_env(b"PATH=/bin\0GOGC=off\0GODEBUG=http2debug=1\0GOGCX=1\0\0");
        assert_eq!(
            env,
            BTreeMap::from([
                ("GOGC".into(), "off".into()),
                ("GODEBUG".into(), "http2debug=1".into())
            ])
        );
        assert_eq!(cmdline(b"/bin/app\0-v\0\0"), "/bin/app -v");
        assert_eq!(display_version("(devel)", "latest"), "latest");
        assert_eq!(display_version("", "devel"), "devel");
    }

    #[test]
    fn exited_and_non_go_processes_are_not_listed() {
        // A process that has exited and been reaped.
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(matches!(inspect(pid, false), Outcome::Vanished));
        // This test binary is not a Go program.
        assert!(matches!(inspect(std::process::id(), false), Outcome::NotGo));
    }

    #[test]
    #[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
    fn a_go_process_that_exits_during_the_scan_is_skipped() {
        let t = testing::toolchain("1.23.9");
        let mut child = Command::new(t.binary(Variant::Static, "server"))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn server");
        let pid = child.id();
        let Outcome::Go(info) = inspect(pid, true) else {
            panic!("the running server is a Go process");
        };
        assert_eq!(info.go_version, t.go_version);
        assert_eq!(info.version, "devel");
        let build = info.go_build.expect("--verbose");
        assert_eq!(build.get("CGO_ENABLED").map(String::as_str), Some("0"));
        // Now the same, but the process exits after its build info was read.
        // Exited but not reaped yet (a zombie) counts as gone too.
        let outcome = inspect_with(pid, false, || {
            child.kill().expect("kill");
            std::thread::sleep(std::time::Duration::from_millis(100));
        });
        assert!(matches!(outcome, Outcome::Vanished), "{outcome:?}");
        child.wait().expect("wait");
        assert!(matches!(inspect(pid, false), Outcome::Vanished));
    }
}
