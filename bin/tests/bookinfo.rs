//! Root-only: the Bookinfo demo (`examples/bookinfo/run.sh`) for real: productpage, details,
//! reviews and ratings as podman containers from a compose file, with PostgreSQL and Redis
//! containers, watched by this build of adi through podman's Docker API. Its service map is
//! asserted whole: compose service names, images, labels, the endpoints between containers,
//! the connections to the database and cache containers, and where each destination is.
//!
//! Same rules as the other live tests: `#[ignore]`d, and when run, a missing capability or
//! tool is a failure. The script cleans up after itself on any exit.

mod common;

use std::process::Command;

use serde_json::Value;

/// What changes between runs of the demo: times, latencies, addresses, and the labels that
/// hold the checkout's path.
const MASKS: &[(&str, &str)] = &[
    ("first_seen", "<time>"),
    ("last_seen", "<time>"),
    ("generated_at", "<time>"),
    ("latency_ms", "<latency>"),
    ("addresses", "<addresses>"),
    ("com.docker.compose.project.config_files", "<checkout>"),
    ("com.docker.compose.project.working_dir", "<checkout>"),
];

#[test]
#[ignore = "needs root + BPF"]
fn the_bookinfo_demo_runs_as_containers_and_its_map_is_exact() {
    common::require_bpf();
    common::need(&[
        "podman",
        "podman-compose",
        "runc",
        "redis-server",
        "/usr/lib/postgresql/15/bin/postgres",
        "python3",
        "curl",
        "dot",
    ]);
    let out = tempfile::tempdir().expect("tempdir");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bookinfo/run.sh");
    let run = Command::new("bash")
        .arg(script)
        .arg(out.path())
        .env("ADI", env!("CARGO_BIN_EXE_adi"))
        .output()
        .expect("run.sh");
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "run.sh failed: {said}");
    assert!(
        said.contains("Podman 4.") && said.contains("6 containers"),
        "adi did not read the six containers: {said}"
    );
    let file = |name: &str| {
        std::fs::read_to_string(out.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    // Every answer of productpage combined details (Redis-cached) and reviews with their
    // stars (PostgreSQL, through ratings).
    let answers = file("responses.jsonl");
    assert_eq!(answers.lines().count(), 20, "{answers}");

    let events: Vec<Value> = file("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    containers_at_both_ends(&events);

    // The map, whole.
    let seed = adi_sinks::service_map::yaml::parse(&file("map.yaml")).expect("seed map");
    let got = common::masked(&seed, MASKS);
    eprintln!("MAP bookinfo {got}");
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bookinfo.seed.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, format!("{got:#}\n")).expect("update golden");
    }
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(golden).expect("golden")).expect("json");
    assert_eq!(got, want, "the map differs from {golden}: {got:#}");
    assert!(file("map.svg").contains("<svg"), "no picture");
}

/// The events: every container described once, with its labels; the calls between containers
/// name both ends, whichever end saw them; curl's calls from the host reach a container.
fn containers_at_both_ends(events: &[Value]) {
    // The events: every container described once, with its labels; the calls between
    // containers name both ends.
    let described: Vec<&str> = common::of_type(events, "container")
        .iter()
        .filter_map(|e| e["service"].as_str())
        .collect();
    let mut sorted = described.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "details",
            "postgres",
            "productpage",
            "ratings",
            "redis",
            "reviews"
        ],
        "each container described once"
    );
    let calls: Vec<&Value> = common::of_type(events, "http")
        .into_iter()
        .filter(|e| e["direction"] == "send" && e["method"] == "GET")
        .filter(|e| e["source_container"]["service"] == "productpage")
        .collect();
    assert!(
        calls.len() >= 40,
        "productpage's calls to details and reviews: {}",
        calls.len()
    );
    for e in &calls {
        assert_eq!(e["destination_type"], "container", "{e}");
        let to = e["destination_container"]["service"].as_str().unwrap_or("");
        assert!(matches!(to, "details" | "reviews"), "{e}");
        assert_eq!(
            e["destination_container"]["image"],
            format!("localhost/bookinfo/{to}:1.0"),
            "{e}"
        );
    }
    // The same calls as the servers received them: sender and receiver the same way round.
    let received = common::of_type(events, "http")
        .into_iter()
        .filter(|e| e["direction"] == "recv" && e["method"] == "GET")
        .filter(|e| e["service"] == "reviews")
        .count();
    assert!(received >= 20, "reviews' received requests: {received}");
    for e in common::of_type(events, "http")
        .into_iter()
        .filter(|e| e["direction"] == "recv" && e["service"] == "reviews" && e["method"] == "GET")
    {
        assert_eq!(e["source_container"]["service"], "productpage", "{e}");
        assert_eq!(e["destination_container"]["service"], "reviews", "{e}");
    }
    // curl on the host reached productpage through its published port: not watched, so
    // productpage's own received requests say who: a process of this host.
    for e in common::of_type(events, "http").into_iter().filter(|e| {
        e["direction"] == "recv" && e["service"] == "productpage" && e["method"] == "GET"
    }) {
        assert!(e.get("source_container").is_none(), "{e}");
        assert_eq!(e["destination_container"]["service"], "productpage", "{e}");
    }
}
