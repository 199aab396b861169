//! Container enrichment for live capture and `adi doctor`: which runtime sockets to use (flags,
//! variables, defaults), their watchers, and their lines in the doctor's report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adi_containers::runtime::{self, Resolution, State, Status, StatusCell};
use adi_containers::{containerd, docker, Containers, Index, RuntimeKind};
use adi_probes::doctor::{Check, Status as CheckStatus};
use clap::Args;

/// Container runtime flags (`adi` and `adi doctor`).
#[derive(Clone, Debug, Default, Args)]
pub struct RuntimeArgs {
    /// Docker Engine API socket for container enrichment: Docker, or Podman's `podman system
    /// service` (`unix:///PATH` or `PATH`). Else `DOCKER_HOST`, else the first of
    /// /var/run/docker.sock, /run/podman/podman.sock, $XDG_RUNTIME_DIR/podman/podman.sock
    /// that exists. See docs/containers.md.
    #[arg(long, value_name = "PATH", global = true)]
    pub docker_socket: Option<String>,
    /// containerd socket for container enrichment. Else `CONTAINERD_SOCKET`, else
    /// /run/containerd/containerd.sock if it exists.
    #[arg(long, value_name = "PATH", global = true)]
    pub containerd_socket: Option<String>,
    /// The containerd namespace whose containers are named. Else `CONTAINERD_NAMESPACE`,
    /// else every namespace (`k8s.io` included).
    #[arg(long, value_name = "NS", global = true)]
    pub containerd_namespace: Option<String>,
}

impl RuntimeArgs {
    fn flags(&self) -> runtime::Flags {
        runtime::Flags {
            docker_socket: self.docker_socket.clone(),
            containerd_socket: self.containerd_socket.clone(),
            containerd_namespace: self.containerd_namespace.clone(),
        }
    }
}

/// How long start-up waits for the runtimes' first listing, so that the first events are
/// already enriched.
const FIRST_LISTING: Duration = Duration::from_secs(3);

/// The runtime watchers of a live capture.
#[derive(Debug)]
pub struct Enrichment {
    index: Arc<Index>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

impl Enrichment {
    /// Starts a watcher per runtime socket found, on the current tokio runtime, and waits (at
    /// most [`FIRST_LISTING`]) for their first answers; prints one line per runtime. `None`
    /// when no runtime is configured or found: events are then not enriched.
    pub async fn start(args: &RuntimeArgs) -> Option<Self> {
        let resolved = runtime::resolve_here(&args.flags());
        let index = Arc::new(Index::new());
        let mut cells: Vec<(RuntimeKind, Resolution, Arc<StatusCell>)> = Vec::new();
        let mut watchers = Vec::new();
        for (kind, resolution) in [
            (RuntimeKind::Docker, &resolved.docker),
            (RuntimeKind::Containerd, &resolved.containerd),
        ] {
            match resolution {
                Resolution::Use(setting) => {
                    let cell = Arc::new(StatusCell::new(State::Connecting));
                    let endpoint = setting.value.clone();
                    let (i, c) = (Arc::clone(&index), Arc::clone(&cell));
                    let namespace = resolved
                        .containerd_namespace
                        .as_ref()
                        .map(|s| s.value.clone());
                    watchers.push(match kind {
                        RuntimeKind::Docker => tokio::spawn(docker::watch(endpoint, i, c)),
                        RuntimeKind::Containerd => {
                            tokio::spawn(containerd::watch(endpoint, namespace, i, c))
                        }
                    });
                    cells.push((kind, resolution.clone(), cell));
                }
                Resolution::Invalid { .. } => {
                    let status = Status {
                        runtime: kind,
                        resolution: resolution.clone(),
                        state: State::Off,
                    };
                    eprintln!("adi: containers: {status}");
                }
                Resolution::Absent => {}
            }
        }
        if watchers.is_empty() {
            return None;
        }
        let started = Instant::now();
        while started.elapsed() < FIRST_LISTING
            && cells.iter().any(|(_, _, c)| c.get() == State::Connecting)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (kind, resolution, cell) in cells {
            let status = Status {
                runtime: kind,
                resolution,
                state: cell.get(),
            };
            eprintln!("adi: containers: {status}");
        }
        Some(Self { index, watchers })
    }

    /// What the pipeline asks.
    pub fn source(&self) -> Containers {
        Containers::live(Arc::clone(&self.index))
    }
}

impl Drop for Enrichment {
    fn drop(&mut self) {
        for w in &self.watchers {
            w.abort();
        }
    }
}

/// `adi doctor`'s lines: each runtime's socket, where that setting came from, and how it
/// answered. Enrichment is optional: never a failure.
pub fn doctor_checks(args: &RuntimeArgs) -> Vec<Check> {
    let resolved = runtime::resolve_here(&args.flags());
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return vec![Check::new(
            "container runtimes",
            CheckStatus::Skipped,
            "no async runtime to probe them",
        )];
    };
    let namespace = resolved
        .containerd_namespace
        .as_ref()
        .map(|s| s.value.as_str());
    let mut checks = Vec::new();
    for (kind, resolution) in [
        (RuntimeKind::Docker, &resolved.docker),
        (RuntimeKind::Containerd, &resolved.containerd),
    ] {
        let state = match resolution.endpoint() {
            Some(e) => rt.block_on(async {
                match kind {
                    RuntimeKind::Docker => docker::probe(e).await,
                    RuntimeKind::Containerd => containerd::probe(e, namespace).await,
                }
            }),
            None => Err(String::new()),
        };
        let name = format!("container runtime {}", kind.as_str());
        let status = Status {
            runtime: kind,
            resolution: resolution.clone(),
            state: match &state {
                Ok(c) => State::Connected(c.clone()),
                Err(e) if !e.is_empty() => State::Failed(e.clone()),
                Err(_) => State::Off,
            },
        };
        let line = status.to_string();
        let detail = line
            .strip_prefix(&format!("{}: ", kind.as_str()))
            .unwrap_or(&line)
            .to_owned();
        checks.push(match (resolution, &state) {
            (Resolution::Use(_), Ok(_)) | (Resolution::Absent, _) => {
                Check::new(name, CheckStatus::Ok, detail)
            }
            (Resolution::Use(_), Err(_)) => Check::new(name, CheckStatus::Warn, detail).fix(
                "start the runtime (Podman: `podman system service --time=0 unix:///run/podman/podman.sock`) or give adi access to its socket; until then events are not enriched from it",
            ),
            (Resolution::Invalid { .. }, _) => Check::new(name, CheckStatus::Warn, detail)
                .fix("give a unix socket path (unix:///PATH or /PATH)"),
        });
    }
    if let Some(ns) = &resolved.containerd_namespace {
        checks.push(Check::new(
            "container runtime containerd namespace",
            CheckStatus::Ok,
            format!("{} ({})", ns.value, ns.source),
        ));
    }
    checks
}
