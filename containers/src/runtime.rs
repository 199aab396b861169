//! Where the container runtimes listen, and how their watchers are doing.
//!
//! [`resolve`] picks each runtime's socket from the command-line flags, the environment and the
//! well-known paths, as a pure function of the three, so that the rules are unit-tested without
//! touching the machine:
//!
//! - Docker Engine API (Docker, or Podman's compatible service): `--docker-socket`, else
//!   `DOCKER_HOST`, else the first existing of [`DOCKER_DEFAULTS`] and
//!   `$XDG_RUNTIME_DIR/podman/podman.sock` (rootless Podman);
//! - containerd: `--containerd-socket`, else `CONTAINERD_SOCKET`, else [`CONTAINERD_DEFAULT`]
//!   if it exists; its namespace: `--containerd-namespace`, else `CONTAINERD_NAMESPACE`, else
//!   every namespace.
//!
//! Only unix sockets are supported (`unix:///path` or `/path`): a `tcp://` or `ssh://`
//! `DOCKER_HOST` is refused with a one-line reason rather than half-supported.
//!
//! [`Status`] is one runtime's line in `adi doctor`: the socket, where that setting came from,
//! and whether the watcher is connected ([`StatusCell`] is the live value a watcher updates).
//! `Outage` and [`Backoff`] are the watchers' shared rules for going down and coming back: one
//! warning per outage, the runtime's containers forgotten meanwhile, retries from 1 s doubling
//! to 30 s.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::index::{Index, RuntimeKind};

/// The Docker Engine API sockets tried when neither `--docker-socket` nor `DOCKER_HOST` is set,
/// in order (`$XDG_RUNTIME_DIR/podman/podman.sock` comes after them).
pub const DOCKER_DEFAULTS: &[&str] = &["/var/run/docker.sock", "/run/podman/podman.sock"];

/// containerd's socket when neither `--containerd-socket` nor `CONTAINERD_SOCKET` is set.
pub const CONTAINERD_DEFAULT: &str = "/run/containerd/containerd.sock";

/// A runtime's API socket: a unix socket path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    path: PathBuf,
}

/// Why a setting does not name a usable socket.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Another transport than a unix socket (`tcp://`, `ssh://`, `npipe://`, `http://`).
    #[error("{given}: only unix sockets are supported (unix:///path or /path)")]
    NotUnix {
        /// The setting as given.
        given: String,
    },
    /// An empty path.
    #[error("empty socket path")]
    Empty,
}

impl Endpoint {
    /// A socket from `unix:///path` or `/path` (a relative path is taken as it is).
    ///
    /// # Errors
    /// [`EndpointError::NotUnix`] for a URL of another scheme, [`EndpointError::Empty`] for
    /// nothing.
    pub fn parse(given: &str) -> Result<Self, EndpointError> {
        let given = given.trim();
        let path = if let Some(rest) = given.strip_prefix("unix://") {
            rest
        } else if given.contains("://") {
            return Err(EndpointError::NotUnix {
                given: given.to_owned(),
            });
        } else {
            given
        };
        if path.is_empty() {
            return Err(EndpointError::Empty);
        }
        Ok(Self {
            path: PathBuf::from(path),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

/// Where a setting came from, for `adi doctor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag (its name, `--docker-socket`).
    Flag(&'static str),
    /// An environment variable (its name, `DOCKER_HOST`).
    Env(&'static str),
    /// A well-known path that exists.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(name) | Self::Env(name) => write!(f, "from {name}"),
            Self::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

/// What the settings say about one runtime's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Watch this socket (one named by a flag or the environment is watched even while it does
    /// not exist: the runtime may start later).
    Use(Setting<Endpoint>),
    /// The flag or variable names something else than a unix socket: this runtime is off.
    Invalid {
        /// Which setting.
        source: Source,
        /// What is wrong with it.
        error: EndpointError,
    },
    /// Nothing set, and none of the well-known sockets exists: this runtime is off.
    Absent,
}

impl Resolution {
    /// The socket to watch, if any.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            Self::Use(s) => Some(&s.value),
            Self::Invalid { .. } | Self::Absent => None,
        }
    }
}

/// The runtime flags of the command line (`None`: not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--docker-socket`.
    pub docker_socket: Option<String>,
    /// `--containerd-socket`.
    pub containerd_socket: Option<String>,
    /// `--containerd-namespace`.
    pub containerd_namespace: Option<String>,
}

/// Every runtime's settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The Docker Engine API (Docker or Podman).
    pub docker: Resolution,
    /// containerd.
    pub containerd: Resolution,
    /// The one containerd namespace to watch; `None`: all of them.
    pub containerd_namespace: Option<Setting<String>>,
}

/// Resolves the sockets from the flags, the environment (`env(NAME)`: the variable's value, if
/// set) and the file system (`exists(path)`), by the rules in the module comment. Empty values
/// count as unset.
pub fn resolve(
    flags: &Flags,
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> Resolved {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let given = |flag: &Option<String>, flag_name: &'static str, var: &'static str| {
        flag.as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v.to_owned(), Source::Flag(flag_name)))
            .or_else(|| env(var).map(|v| (v, Source::Env(var))))
    };
    let from = |(value, source): (String, Source)| match Endpoint::parse(&value) {
        Ok(endpoint) => Resolution::Use(Setting {
            value: endpoint,
            source,
        }),
        Err(error) => Resolution::Invalid { source, error },
    };
    let first_existing = |candidates: Vec<PathBuf>| {
        candidates
            .into_iter()
            .find(|p| exists(p))
            .map_or(Resolution::Absent, |path| {
                Resolution::Use(Setting {
                    value: Endpoint { path },
                    source: Source::Default,
                })
            })
    };

    let docker = given(&flags.docker_socket, "--docker-socket", "DOCKER_HOST").map_or_else(
        || {
            let mut candidates: Vec<PathBuf> = DOCKER_DEFAULTS.iter().map(PathBuf::from).collect();
            if let Some(dir) = env("XDG_RUNTIME_DIR") {
                candidates.push(Path::new(&dir).join("podman/podman.sock"));
            }
            first_existing(candidates)
        },
        from,
    );
    let containerd = given(
        &flags.containerd_socket,
        "--containerd-socket",
        "CONTAINERD_SOCKET",
    )
    .map_or_else(
        || first_existing(vec![PathBuf::from(CONTAINERD_DEFAULT)]),
        from,
    );
    let containerd_namespace = given(
        &flags.containerd_namespace,
        "--containerd-namespace",
        "CONTAINERD_NAMESPACE",
    )
    .map(|(value, source)| Setting {
        value: value.trim().to_owned(),
        source,
    });
    Resolved {
        docker,
        containerd,
        containerd_namespace,
    }
}

/// [`resolve`] with this process's environment and file system.
pub fn resolve_here(flags: &Flags) -> Resolved {
    resolve(flags, |name| std::env::var(name).ok(), Path::exists)
}

/// A runtime that answered: its version and how many running containers it reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    /// The runtime and API version, e.g. `Docker 28.2.2 (API 1.50)`, `Podman 4.3.1 (Docker
    /// API 1.41)`, `containerd 1.6.20`.
    pub version: String,
    /// Running containers it reported.
    pub containers: usize,
}

impl fmt::Display for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.containers == 1 { "" } else { "s" };
        write!(f, "{}, {} container{s}", self.version, self.containers)
    }
}

/// How a runtime's watcher is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum State {
    /// Not watched: no socket configured or found.
    #[default]
    Off,
    /// Watched, not connected yet.
    Connecting,
    /// Connected and following events.
    Connected(Connected),
    /// Not reachable (or the connection broke): the one-line reason; retried with backoff.
    Failed(String),
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Connecting => f.write_str("connecting"),
            Self::Connected(c) => write!(f, "{c}"),
            Self::Failed(reason) => write!(f, "unreachable: {reason}"),
        }
    }
}

/// A runtime's current [`State`], set by its watcher and read by whoever reports it.
#[derive(Debug, Default)]
pub struct StatusCell {
    state: Mutex<State>,
}

impl StatusCell {
    /// A cell in `state`.
    pub fn new(state: State) -> Self {
        Self {
            state: Mutex::new(state),
        }
    }

    /// The current state.
    pub fn get(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets the state.
    pub fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }
}

/// One runtime's line in `adi doctor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Which runtime.
    pub runtime: RuntimeKind,
    /// Its socket setting.
    pub resolution: Resolution,
    /// How it answered (a probe's result, or the watcher's [`StatusCell`]).
    pub state: State,
}

impl fmt::Display for Status {
    /// `docker: /run/podman/podman.sock (default): Podman 4.3.1 (Docker API 1.41), 2
    /// containers`, `containerd: off (no socket: set --containerd-socket or
    /// CONTAINERD_SOCKET)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.runtime.as_str();
        match &self.resolution {
            Resolution::Use(s) => write!(f, "{name}: {} ({}): {}", s.value, s.source, self.state),
            Resolution::Invalid { source, error } => {
                let from = match source {
                    Source::Flag(n) | Source::Env(n) => *n,
                    Source::Default => "default",
                };
                write!(f, "{name}: off ({from}: {error})")
            }
            Resolution::Absent => {
                let (flag, var) = match self.runtime {
                    RuntimeKind::Docker => ("--docker-socket", "DOCKER_HOST"),
                    RuntimeKind::Containerd => ("--containerd-socket", "CONTAINERD_SOCKET"),
                };
                write!(f, "{name}: off (no socket found: set {flag} or {var})")
            }
        }
    }
}

/// Retry delays after failures: 1 s, doubling, at most 30 s; back to 1 s after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first delay.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(30);

    /// Starts at [`Self::FIRST`].
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The delay before the next attempt; the one after it is twice as long, up to
    /// [`Self::MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        now
    }

    /// A connection succeeded: the next failure waits [`Self::FIRST`] again.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// A watcher's outage bookkeeping: one warning line per outage on stderr, the runtime's
/// containers forgotten while it is down, one line when it is back, and its [`StatusCell`]
/// kept current.
#[derive(Debug)]
pub(crate) struct Outage {
    runtime: RuntimeKind,
    endpoint: String,
    /// Whether the current outage was reported (and not yet the return).
    down: bool,
}

impl Outage {
    pub(crate) fn new(runtime: RuntimeKind, endpoint: &Endpoint) -> Self {
        Self {
            runtime,
            endpoint: endpoint.to_string(),
            down: false,
        }
    }

    /// The runtime failed: forget its containers and warn, once per outage.
    pub(crate) fn failed(&mut self, reason: &str, index: &Index, status: &StatusCell) {
        index.clear(self.runtime);
        status.set(State::Failed(reason.to_owned()));
        if !self.down {
            self.down = true;
            eprintln!(
                "adi: {} at {}: {reason}; container enrichment from it is off until it comes back",
                self.runtime.as_str(),
                self.endpoint
            );
        }
    }

    /// The runtime answered and its containers are listed.
    pub(crate) fn connected(&mut self, connected: Connected, status: &StatusCell) {
        if self.down {
            self.down = false;
            eprintln!(
                "adi: {} at {}: back ({connected}); container enrichment from it is on again",
                self.runtime.as_str(),
                self.endpoint
            );
        }
        status.set(State::Connected(connected));
    }
}

/// A runtime-reported count changed: keep the connected state's count current.
pub(crate) fn recount(status: &StatusCell, index: &Index, runtime: RuntimeKind) {
    if let State::Connected(mut c) = status.get() {
        c.containers = index.count(runtime);
        status.set(State::Connected(c));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve_with(flags: &Flags, env: &[(&str, &str)], existing: &[&str]) -> Resolved {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(
            flags,
            |name| env.get(name).cloned(),
            |p| existing.iter().any(|e| Path::new(e) == p),
        )
    }

    fn used(r: &Resolution) -> (String, Source) {
        match r {
            Resolution::Use(s) => (s.value.to_string(), s.source),
            other => panic!("not used: {other:?}"),
        }
    }

    #[test]
    fn endpoints_are_unix_socket_paths() {
        assert_eq!(
            Endpoint::parse("unix:///run/docker.sock")
                .expect("test input")
                .path(),
            Path::new("/run/docker.sock")
        );
        assert_eq!(
            Endpoint::parse("/run/podman/podman.sock")
                .expect("test input")
                .path(),
            Path::new("/run/podman/podman.sock")
        );
        let e = Endpoint::parse("tcp://10.0.0.1:2375").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "tcp://10.0.0.1:2375: only unix sockets are supported (unix:///path or /path)"
        );
        assert!(matches!(
            Endpoint::parse("ssh://me@host"),
            Err(EndpointError::NotUnix { .. })
        ));
        assert_eq!(Endpoint::parse("unix://"), Err(EndpointError::Empty));
    }

    #[test]
    fn docker_flag_then_env_then_first_existing_default() {
        let flag = Flags {
            docker_socket: Some("/tmp/mine.sock".into()),
            ..Flags::default()
        };
        let r = resolve_with(&flag, &[("DOCKER_HOST", "unix:///x.sock")], &[]);
        assert_eq!(
            used(&r.docker),
            ("/tmp/mine.sock".into(), Source::Flag("--docker-socket"))
        );
        // A flag or variable is watched even if the socket does not exist (yet).
        let r = resolve_with(&Flags::default(), &[("DOCKER_HOST", "unix:///x.sock")], &[]);
        assert_eq!(
            used(&r.docker),
            ("/x.sock".into(), Source::Env("DOCKER_HOST"))
        );
        let r = resolve_with(
            &Flags::default(),
            &[("XDG_RUNTIME_DIR", "/run/user/1000")],
            &[
                "/run/podman/podman.sock",
                "/run/user/1000/podman/podman.sock",
            ],
        );
        assert_eq!(
            used(&r.docker),
            ("/run/podman/podman.sock".into(), Source::Default)
        );
        let r = resolve_with(
            &Flags::default(),
            &[("XDG_RUNTIME_DIR", "/run/user/1000")],
            &["/run/user/1000/podman/podman.sock"],
        );
        assert_eq!(
            used(&r.docker),
            ("/run/user/1000/podman/podman.sock".into(), Source::Default)
        );
        let r = resolve_with(
            &Flags::default(),
            &[("DOCKER_HOST", "")],
            &["/var/run/docker.sock", "/run/podman/podman.sock"],
        );
        assert_eq!(
            used(&r.docker),
            ("/var/run/docker.sock".into(), Source::Default)
        );
        let r = resolve_with(&Flags::default(), &[], &[]);
        assert_eq!(r.docker, Resolution::Absent);
        assert_eq!(r.docker.endpoint(), None);
    }

    #[test]
    fn a_tcp_docker_host_is_refused_in_one_line() {
        let r = resolve_with(
            &Flags::default(),
            &[("DOCKER_HOST", "tcp://127.0.0.1:2375")],
            &["/var/run/docker.sock"],
        );
        assert!(matches!(
            &r.docker,
            Resolution::Invalid {
                source: Source::Env("DOCKER_HOST"),
                ..
            }
        ));
        let status = Status {
            runtime: RuntimeKind::Docker,
            resolution: r.docker,
            state: State::Off,
        };
        assert_eq!(
            status.to_string(),
            "docker: off (DOCKER_HOST: tcp://127.0.0.1:2375: only unix sockets are supported \
             (unix:///path or /path))"
        );
    }

    #[test]
    fn containerd_socket_and_namespace() {
        let r = resolve_with(&Flags::default(), &[], &[]);
        assert_eq!(r.containerd, Resolution::Absent);
        assert_eq!(r.containerd_namespace, None);
        let r = resolve_with(&Flags::default(), &[], &[CONTAINERD_DEFAULT]);
        assert_eq!(
            used(&r.containerd),
            (CONTAINERD_DEFAULT.into(), Source::Default)
        );
        let r = resolve_with(
            &Flags::default(),
            &[
                ("CONTAINERD_SOCKET", "/tmp/c.sock"),
                ("CONTAINERD_NAMESPACE", "k8s.io"),
            ],
            &[CONTAINERD_DEFAULT],
        );
        assert_eq!(
            used(&r.containerd),
            ("/tmp/c.sock".into(), Source::Env("CONTAINERD_SOCKET"))
        );
        assert_eq!(
            r.containerd_namespace,
            Some(Setting {
                value: "k8s.io".into(),
                source: Source::Env("CONTAINERD_NAMESPACE")
            })
        );
        let flags = Flags {
            containerd_socket: Some("unix:///tmp/f.sock".into()),
            containerd_namespace: Some("default".into()),
            ..Flags::default()
        };
        let r = resolve_with(&flags, &[("CONTAINERD_NAMESPACE", "k8s.io")], &[]);
        assert_eq!(
            used(&r.containerd),
            ("/tmp/f.sock".into(), Source::Flag("--containerd-socket"))
        );
        assert_eq!(r.containerd_namespace.expect("test input").value, "default");
        // An empty namespace is none: every namespace.
        let r = resolve_with(&Flags::default(), &[("CONTAINERD_NAMESPACE", " ")], &[]);
        assert_eq!(r.containerd_namespace, None);
    }

    #[test]
    fn status_lines() {
        let r = resolve_with(&Flags::default(), &[], &["/run/podman/podman.sock"]);
        let line = Status {
            runtime: RuntimeKind::Docker,
            resolution: r.docker.clone(),
            state: State::Connected(Connected {
                version: "Podman 4.3.1 (Docker API 1.41)".into(),
                containers: 2,
            }),
        };
        assert_eq!(
            line.to_string(),
            "docker: /run/podman/podman.sock (default): Podman 4.3.1 (Docker API 1.41), 2 \
             containers"
        );
        let line = Status {
            runtime: RuntimeKind::Docker,
            resolution: r.docker,
            state: State::Failed("connection refused".into()),
        };
        assert_eq!(
            line.to_string(),
            "docker: /run/podman/podman.sock (default): unreachable: connection refused"
        );
        let line = Status {
            runtime: RuntimeKind::Containerd,
            resolution: Resolution::Absent,
            state: State::Off,
        };
        assert_eq!(
            line.to_string(),
            "containerd: off (no socket found: set --containerd-socket or CONTAINERD_SOCKET)"
        );
        let cell = StatusCell::default();
        assert_eq!(cell.get(), State::Off);
        cell.set(State::Connecting);
        assert_eq!(cell.get().to_string(), "connecting");
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn an_outage_clears_the_runtime_and_is_reported_once() {
        let index = Index::new();
        index.upsert(crate::index::Container {
            info: std::sync::Arc::new(crate::index::describe(
                "aaa",
                "/web",
                "img",
                std::collections::BTreeMap::new(),
            )),
            runtime: RuntimeKind::Docker,
            addrs: vec![],
            published: vec![],
        });
        let status = StatusCell::default();
        let mut outage = Outage::new(
            RuntimeKind::Docker,
            &Endpoint::parse("/x.sock").expect("test input"),
        );
        outage.failed("connection refused", &index, &status);
        assert!(index.is_empty());
        assert!(outage.down);
        outage.failed("connection refused", &index, &status);
        assert_eq!(status.get(), State::Failed("connection refused".into()));
        outage.connected(
            Connected {
                version: "Docker 28.2.2 (API 1.50)".into(),
                containers: 0,
            },
            &status,
        );
        assert!(!outage.down);
        assert!(matches!(status.get(), State::Connected(_)));
    }
}
