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
//! Same rules as the other live tests: `#[ignore]`d, and when run (`cargo test --
//! --include-ignored`, as root), a missing tool is a failure. Everything started here is
//! stopped by pid or by name, with bounded waits, even when an assertion fails (guards stop it
//! on drop). Needs podman (with runc), containerd (with ctr and containerd-shim-runc-v2),
//! busybox-static, iproute2 and util-linux (nsenter).

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use adi_containers::containerd;
use adi_containers::docker;
use adi_containers::runtime::{Endpoint, State, StatusCell};
use adi_containers::testing::{
    self, free_port, podman_lab, require, run, unique, wait_for, Containerd,
};
use adi_containers::{Index, RuntimeKind};

// ---------------------------------------------------------------------------------------------
// Helpers (the daemons, images and waits are adi_containers::testing's).

/// A tokio runtime of two worker threads for the watchers (the test thread waits on the index).
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn ip_at(index: &Index, ip: IpAddr) -> Option<String> {
    index
        .at(SocketAddr::new(ip, 80))
        .map(|c| c.container_name.clone())
}

// ---------------------------------------------------------------------------------------------
// Podman through the Docker Engine API.

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
#[ignore = "needs root + podman"]
fn podman_through_the_docker_api() {
    require(&["podman", "runc", "tar"]);
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
fn containerd_lab(dir: &std::path::Path) -> (Containerd, String, String) {
    let (ns, other_ns) = (unique("adi-rt"), unique("adi-rt-other"));
    let mut cd = testing::containerd_lab(dir, &[&ns, &other_ns]);
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
#[ignore = "needs root + containerd"]
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
    require(&tools);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut cd, ns, other_ns) = containerd_lab(tmp.path());
    let own_ip: IpAddr = OWN_IP.parse().expect("ip");
    let endpoint = Endpoint::parse(&cd.socket().display().to_string()).expect("endpoint");
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
    cd.kill_daemon();
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
