//! Container enrichment in the pipeline, with a fake runtime: Bookinfo-like services in
//! containers that all listen on their own `0.0.0.0:9080`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use adi_classifiers as _;
use adi_core::event::{ContainerInfo, Event, HttpEvent};
use adi_core::flow::{FlowKey, Role};
use adi_core::{Direction, Registry};

use super::*;

/// Processes: pid -> (arguments, environment, listening addresses).
struct Procs(HashMap<u32, (&'static str, &'static str, Vec<SocketAddr>)>);

impl ProcessSource for Procs {
    fn details(&mut self, pid: u32) -> Option<ProcessDetails> {
        let (args, environ, listening) = self.0.get(&pid)?;
        Some(ProcessDetails {
            comm: "python3".to_owned(),
            args: args.split(' ').map(str::to_owned).collect(),
            start_time: 1,
            environ: Some(Ok(environ.replace(' ', "\0").into_bytes())),
            listening: listening.clone(),
        })
    }
}

/// What a runtime would report; shared with the test so it can start containers later.
#[derive(Default)]
struct Runtime {
    by_pid: Mutex<HashMap<u32, Arc<ContainerInfo>>>,
    by_ip: HashMap<IpAddr, Arc<ContainerInfo>>,
    published: HashMap<u16, Arc<ContainerInfo>>,
    generation: AtomicU64,
}

struct Fake(Arc<Runtime>);

impl ContainerSource for Fake {
    fn of_pid(&mut self, pid: u32) -> Option<Arc<ContainerInfo>> {
        self.0.by_pid.lock().expect("lock").get(&pid).cloned()
    }
    fn at(&mut self, addr: SocketAddr) -> Option<Arc<ContainerInfo>> {
        let ip = adi_core::flow::unmapped_ip(addr);
        self.0.by_ip.get(&ip).cloned().or_else(|| {
            (ip.is_loopback())
                .then(|| self.0.published.get(&addr.port()).cloned())
                .flatten()
        })
    }
    fn is_host(&mut self, ip: IpAddr) -> bool {
        ip == "10.89.0.1".parse::<IpAddr>().expect("address")
    }
    fn host_network(&mut self, pid: u32, _container: &ContainerInfo) -> bool {
        pid == HOST_NET
    }
    fn holds(&mut self, ip: IpAddr) -> bool {
        self.0.by_ip.contains_key(&ip)
    }
    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::SeqCst)
    }
}

fn container(service: &str) -> Arc<ContainerInfo> {
    Arc::new(ContainerInfo {
        service: service.to_owned(),
        image: format!("localhost/bookinfo/{service}:1.0"),
        container_id: format!("{service:0>64}"),
        container_name: format!("bookinfo_{service}_1"),
        labels: BTreeMap::from([("com.docker.compose.service".to_owned(), service.to_owned())]),
    })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

const PRODUCTPAGE: u32 = 10;
const REVIEWS: u32 = 20;
const DETAILS: u32 = 30;
const HOST_CURL: u32 = 40;
const LATE: u32 = 50;
/// In a container on the host's network.
const HOST_NET: u32 = 60;

fn setup() -> (Pipeline<Procs>, Arc<Runtime>) {
    let any = vec![addr("0.0.0.0:9080")];
    let procs = Procs(HashMap::from([
        (
            PRODUCTPAGE,
            ("python3 /app/productpage.py", "ADI_PROFILE=on", any.clone()),
        ),
        (
            REVIEWS,
            ("python3 /app/reviews.py", "ADI_PROFILE=on", any.clone()),
        ),
        // Registered last on the same wildcard port: must not be taken for reviews.
        (DETAILS, ("python3 /app/details.py", "ADI_PROFILE=on", any)),
        (
            HOST_CURL,
            ("curl http://127.0.0.1:8080/", "ADI_PROFILE=on", Vec::new()),
        ),
        (
            LATE,
            (
                "python3 /app/late.py",
                "ADI_PROFILE=on ADI_PROFILE_NAME=late-svc",
                Vec::new(),
            ),
        ),
        (
            HOST_NET,
            ("wget http://127.0.0.1:7000/", "ADI_PROFILE=on", Vec::new()),
        ),
    ]));
    let mut runtime = Runtime::default();
    for (pid, service, ip) in [
        (PRODUCTPAGE, "productpage", "10.89.0.2"),
        (REVIEWS, "reviews", "10.89.0.3"),
        (DETAILS, "details", "10.89.0.4"),
    ] {
        let c = container(service);
        runtime
            .by_pid
            .get_mut()
            .expect("lock")
            .insert(pid, Arc::clone(&c));
        runtime
            .by_ip
            .insert(ip.parse().expect("address"), Arc::clone(&c));
        if service == "productpage" {
            runtime.published.insert(8080, c);
        }
    }
    // A container on the host's network has no address of its own.
    runtime
        .by_pid
        .get_mut()
        .expect("lock")
        .insert(HOST_NET, container("hostnet"));
    let runtime = Arc::new(runtime);
    let registry = Arc::new(Registry::from_inventory().expect("registry"));
    let p = Pipeline::new(registry, procs, PipelineConfig::default())
        .with_containers(Box::new(Fake(Arc::clone(&runtime))));
    (p, runtime)
}

/// One HTTP exchange on `key`, as its process sees it; returns the http events.
fn exchange(p: &mut Pipeline<Procs>, key: FlowKey, t: u64) -> Vec<HttpEvent> {
    let mut out = Vec::new();
    let req: &[u8] = b"GET /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    p.handle(Input::Opened { key, ts_ns: t }, &mut out);
    for (dir, bytes, dt) in [
        (Direction::ToServer, req, 1),
        (Direction::ToClient, resp, 2),
    ] {
        p.handle(
            Input::Data {
                key,
                dir,
                ts_ns: t + dt,
                payload: bytes,
                missing: 0,
                after_skip: false,
                tls: false,
                comm: "python3",
            },
            &mut out,
        );
    }
    out.into_iter()
        .filter_map(|e| match e {
            Event::Http(h) => Some(h),
            _ => None,
        })
        .collect()
}

fn flow(pid: u32, role: Role, client: &str, server: &str) -> FlowKey {
    FlowKey {
        pid,
        role,
        client: addr(client),
        server: addr(server),
    }
}

fn names(h: &HttpEvent) -> (Option<&str>, Option<&str>, Option<&str>) {
    let c = &h.containers;
    (
        c.source_container.as_ref().map(|c| c.service.as_str()),
        c.destination_container.as_ref().map(|c| c.service.as_str()),
        c.destination_type,
    )
}

#[test]
fn both_ends_of_a_call_between_containers_name_sender_and_receiver() {
    let (mut p, _) = setup();
    let (client, server) = ("10.89.0.2:40000", "10.89.0.3:9080");
    // The server's side speaks first here: its wildcard listener is known, and details'
    // identical wildcard listener must not be mistaken for it.
    let served = exchange(&mut p, flow(REVIEWS, Role::Server, client, server), 0);
    let called = exchange(&mut p, flow(PRODUCTPAGE, Role::Client, client, server), 10);
    assert_eq!(called.len(), 2, "{called:#?}");
    assert_eq!(served.len(), 2, "{served:#?}");
    for h in called.iter().chain(&served) {
        // Request: productpage -> reviews; response: reviews -> productpage.
        let expected = if h.method.is_some() {
            (Some("productpage"), Some("reviews"), Some("container"))
        } else {
            (Some("reviews"), Some("productpage"), Some("container"))
        };
        assert_eq!(names(h), expected, "{h:#?}");
    }
    // Services are the containers' compose services, not the scripts' names.
    assert_eq!(called[0].process.service.as_deref(), Some("productpage"));
    assert_eq!(called[0].process.peer_service.as_deref(), Some("reviews"));
    // The server spoke first, before its client's end was known.
    assert_eq!(served[0].process.peer_service, None);
    let json = serde_json::to_value(&called[0]).expect("json");
    assert_eq!(
        json["destination_container"]["image"],
        "localhost/bookinfo/reviews:1.0"
    );
    // Labels are not repeated in every message: a `container` event describes each
    // container once, before the first event that names it.
    assert!(json["source_container"].get("labels").is_none(), "{json}");
}

#[test]
fn each_container_is_described_once_before_it_is_named() {
    let (mut p, _) = setup();
    let mut out = Vec::new();
    for (t, port) in [(0, 40000), (10, 40001)] {
        let key = flow(
            PRODUCTPAGE,
            Role::Client,
            &format!("10.89.0.2:{port}"),
            "10.89.0.3:9080",
        );
        p.handle(Input::Opened { key, ts_ns: t }, &mut out);
        p.handle(
            Input::Data {
                key,
                dir: Direction::ToServer,
                ts_ns: t + 1,
                payload: b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n",
                missing: 0,
                after_skip: false,
                tls: false,
                comm: "python3",
            },
            &mut out,
        );
    }
    let described: Vec<(usize, String)> = out
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Container(c) => Some((i, c.container.service.clone())),
            _ => None,
        })
        .collect();
    let services: Vec<&str> = described.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(services, ["productpage", "reviews"], "{out:#?}");
    let first_named = out
        .iter()
        .position(|e| matches!(e, Event::Http(_)))
        .expect("an http event");
    assert!(described.iter().all(|(i, _)| *i < first_named));
    let Event::Container(c) = &out[described[0].0] else {
        unreachable!()
    };
    assert_eq!(c.labels["com.docker.compose.service"], "productpage");
}

#[test]
fn a_client_whose_server_has_not_spoken_finds_the_listener_of_the_right_container() {
    let (mut p, _) = setup();
    // Both servers were seen (their listeners registered), reviews first.
    exchange(
        &mut p,
        flow(REVIEWS, Role::Server, "10.89.0.9:1", "10.89.0.3:9080"),
        0,
    );
    exchange(
        &mut p,
        flow(DETAILS, Role::Server, "10.89.0.9:2", "10.89.0.4:9080"),
        5,
    );
    let called = exchange(
        &mut p,
        flow(
            PRODUCTPAGE,
            Role::Client,
            "10.89.0.2:40001",
            "10.89.0.3:9080",
        ),
        10,
    );
    assert_eq!(called[0].process.peer_service.as_deref(), Some("reviews"));
}

#[test]
fn host_processes_published_ports_gateways_and_the_outside() {
    let (mut p, _) = setup();
    // curl on the host to productpage's published port.
    let h = exchange(
        &mut p,
        flow(HOST_CURL, Role::Client, "127.0.0.1:50000", "127.0.0.1:8080"),
        0,
    );
    assert_eq!(names(&h[0]), (None, Some("productpage"), Some("container")));
    assert_eq!(names(&h[1]), (Some("productpage"), None, Some("process")));
    assert_eq!(h[0].process.service.as_deref(), Some("curl"));
    // A container calling a server on the host through its gateway address.
    let h = exchange(
        &mut p,
        flow(
            PRODUCTPAGE,
            Role::Client,
            "10.89.0.2:40002",
            "10.89.0.1:5000",
        ),
        10,
    );
    assert_eq!(names(&h[0]), (Some("productpage"), None, Some("process")));
    assert_eq!(names(&h[1]), (None, Some("productpage"), Some("container")));
    // And one elsewhere.
    let h = exchange(
        &mut p,
        flow(PRODUCTPAGE, Role::Client, "10.89.0.2:40003", "192.0.2.7:80"),
        20,
    );
    assert_eq!(names(&h[0]), (Some("productpage"), None, Some("external")));
    // Loopback of a container on the host's network is the host's.
    let h = exchange(
        &mut p,
        flow(HOST_NET, Role::Client, "127.0.0.1:40005", "127.0.0.1:7000"),
        40,
    );
    assert_eq!(names(&h[0]), (Some("hostnet"), None, Some("process")));
    // Loopback inside a container stays in it.
    let h = exchange(
        &mut p,
        flow(
            PRODUCTPAGE,
            Role::Client,
            "127.0.0.1:40004",
            "127.0.0.1:6000",
        ),
        30,
    );
    assert_eq!(
        names(&h[0]),
        (Some("productpage"), Some("productpage"), Some("container"))
    );
}

#[test]
fn a_container_reported_after_its_process_was_seen_is_found_then() {
    let (mut p, runtime) = setup();
    let k = |port: u16| {
        flow(
            LATE,
            Role::Client,
            &format!("10.89.0.5:{port}"),
            "192.0.2.7:80",
        )
    };
    let before = exchange(&mut p, k(1), 0);
    assert_eq!(names(&before[0]), (None, None, Some("external")));
    assert_eq!(before[0].process.service.as_deref(), Some("late-svc"));
    runtime
        .by_pid
        .lock()
        .expect("lock")
        .insert(LATE, container("late"));
    runtime.generation.fetch_add(1, Ordering::SeqCst);
    let after = exchange(&mut p, k(2), 10);
    assert_eq!(names(&after[0]), (Some("late"), None, Some("external")));
    // ADI_PROFILE_NAME still names the service.
    assert_eq!(after[0].process.service.as_deref(), Some("late-svc"));
}

#[test]
fn without_a_runtime_events_carry_no_container_fields() {
    let registry = Arc::new(Registry::from_inventory().expect("registry"));
    let (procs, _) = {
        let (p, r) = setup();
        (p.source, r)
    };
    let mut p = Pipeline::new(registry, procs, PipelineConfig::default());
    let h = exchange(
        &mut p,
        flow(
            PRODUCTPAGE,
            Role::Client,
            "10.89.0.2:40000",
            "10.89.0.3:9080",
        ),
        0,
    );
    assert_eq!(names(&h[0]), (None, None, None));
    let json = serde_json::to_value(&h[0]).expect("json");
    assert!(json.get("destination_type").is_none(), "{json}");
    assert_eq!(h[0].process.service.as_deref(), Some("productpage"));
}

#[test]
fn a_process_gone_before_its_cgroup_was_read_is_in_the_container_of_its_address() {
    let (mut p, _) = setup();
    // Pid 70 exited at once (a per-connection child, a one-shot client): no cgroup, no
    // /proc entry; its end of the connection is reviews' own address.
    let h = exchange(
        &mut p,
        flow(70, Role::Client, "10.89.0.3:41000", "10.89.0.4:9080"),
        0,
    );
    assert_eq!(
        names(&h[0]),
        (Some("reviews"), Some("details"), Some("container"))
    );
    assert_eq!(h[0].process.service.as_deref(), Some("reviews"));
    // A published port is no container's own address: the host's curl is not put in one.
    let h = exchange(
        &mut p,
        flow(71, Role::Server, "10.89.0.2:41001", "127.0.0.1:8080"),
        10,
    );
    assert_eq!(h[0].containers.destination_container, None);
}
