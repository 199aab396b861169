//! The map from events shaped as adi writes them (field for field as in `docs/output-formats.md`).

use adi_core::event::Event;
use serde_json::{json, Value};

use super::*;
use std::time::Duration;

/// An `http` request the traced process `pid` (service `svc`) sent on connection `flow`.
fn request(pid: u64, svc: &str, flow: u64, ts: u32, method: &str, url: &str, body: &str) -> Value {
    json!({"event_type":"http","timestamp":format!("2026-12-03T10:00:{ts:02}.000000000Z"),
        "pid":pid,"comm":"python3","cmdline":"python3 app.py","service":svc,
        "direction":"send","source_ip":"127.0.0.1","source_port":40000 + flow,
        "dest_ip":"127.0.0.1","dest_port":8080,"bytes":100,"method":method,"url":url,
        "headers":{"Host":"127.0.0.1:8080","Content-Type":"application/json"},
        "body":body,"raw_payload":"","truncated":false,"flow_id":flow})
}

/// Its response.
fn response(pid: u64, svc: &str, flow: u64, ts: u32, status: u16, body: &str) -> Value {
    json!({"event_type":"http","timestamp":format!("2026-12-03T10:00:{ts:02}.500000000Z"),
        "pid":pid,"comm":"python3","cmdline":"python3 app.py","service":svc,
        "direction":"recv","source_ip":"127.0.0.1","source_port":8080,
        "dest_ip":"127.0.0.1","dest_port":40000 + flow,"bytes":100,"status_code":status,
        "headers":{"Content-Type":"application/json"},"body":body,"raw_payload":"",
        "truncated":false,"flow_id":flow,"latency_ms":1.5})
}

fn with_peer(mut e: Value, peer: &str) -> Value {
    e["peer_service"] = json!(peer);
    e
}

fn build(events: &[Value]) -> MapBuilder {
    let mut m = MapBuilder::new(MapOptions::default());
    for e in events {
        m.add(e);
    }
    m.finish();
    m
}

fn doc(m: &MapBuilder) -> Value {
    yaml::parse(&m.to_yaml("T").expect("yaml")).expect("parse")
}

fn endpoints(d: &Value) -> Vec<Value> {
    d["services"][0]["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn pipelined_exchanges_pair_in_order_with_their_own_shapes() {
    let events = [
        with_peer(
            request(1, "gateway", 7, 1, "GET", "/items/1", ""),
            "catalog",
        ),
        with_peer(
            request(1, "gateway", 7, 1, "POST", "/orders", r#"{"item":1}"#),
            "catalog",
        ),
        with_peer(
            response(1, "gateway", 7, 2, 200, r#"{"id":"1","price":2.5}"#),
            "catalog",
        ),
        with_peer(
            response(1, "gateway", 7, 2, 201, r#"{"status":"accepted"}"#),
            "catalog",
        ),
    ];
    let d = doc(&build(&events));
    let eps = endpoints(&d);
    assert_eq!(eps.len(), 2, "{d:#}");
    assert_eq!(eps[0]["method"], "GET");
    assert_eq!(eps[0]["path"], "/items/{id}");
    assert_eq!(eps[0]["destination"], "catalog");
    assert_eq!(eps[0]["destination_type"], "process");
    assert_eq!(eps[0]["request_schema"], Value::Null);
    assert_eq!(
        eps[0]["response_schema"],
        json!({"id":"string","price":"number"})
    );
    assert_eq!(eps[0]["status_codes"], json!({"200": 1}));
    assert_eq!(eps[1]["method"], "POST");
    assert_eq!(eps[1]["request_schema"], json!({"item":"number"}));
    assert_eq!(eps[1]["response_schema"], json!({"status":"string"}));
    // Exact to within a bucket (5%).
    let p50 = eps[1]["latency_ms"]["p50"].as_f64().expect("p50");
    assert!((1.5..=1.575).contains(&p50), "{p50}");
    assert_eq!(d["services"][0]["name"], "gateway");
}

#[test]
fn two_hundred_ids_are_one_endpoint_and_shapes_are_variants() {
    let mut events = Vec::new();
    for i in 0..200_u64 {
        let flow = i % 4;
        events.push(request(
            1,
            "web",
            flow,
            1,
            "GET",
            &format!("/reviews/{i}?lang=en"),
            "",
        ));
        let body = if i % 2 == 0 {
            r#"{"id":1}"#
        } else {
            r#"{"id":1,"reviews":[]}"#
        };
        events.push(response(1, "web", flow, 2, 200, body));
    }
    let d = doc(&build(&events));
    let eps = endpoints(&d);
    assert_eq!(eps.len(), 2, "two variants of one endpoint: {d:#}");
    for e in &eps {
        assert_eq!(e["path"], "/reviews/{id}");
        assert_eq!(e["query"], json!(["lang"]));
        assert_eq!(e["count"], 100);
        // No peer service and no process name known here: the Host header names it.
        assert_eq!(e["destination"], "127.0.0.1:8080");
    }
    let raw = {
        let mut m = MapBuilder::new(MapOptions {
            template_paths: false,
            ..MapOptions::default()
        });
        for e in &events {
            m.add(e);
        }
        doc(&m)
    };
    assert_eq!(endpoints(&raw).len(), 200);
}

#[test]
fn responses_without_requests_and_requests_without_responses_are_counted() {
    let events = [
        response(1, "web", 1, 1, 200, "{}"),
        request(1, "web", 2, 2, "DELETE", "/cart", ""),
    ];
    let d = doc(&build(&events));
    assert_eq!(d["sampling"]["unpaired_responses"], 1, "{d:#}");
    let eps = endpoints(&d);
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0]["unanswered"], 1);
    assert_eq!(eps[0]["count"], 0);
}

#[test]
fn the_server_side_and_calls_to_itself_describe_no_dependency() {
    let mut served = request(2, "catalog", 1, 1, "GET", "/items/1", "");
    served["direction"] = json!("recv");
    let itself = with_peer(request(3, "loop", 1, 1, "GET", "/", ""), "loop");
    let d = doc(&build(&[served, itself]));
    assert_eq!(d["services"], json!([]), "{d:#}");
}

/// A connection event and messages of a PostgreSQL connection, as the pipeline writes them.
fn postgres_events() -> Vec<Value> {
    let base = json!({"pid":5,"comm":"python3","cmdline":"python3 orders.py","service":"orders",
        "direction":"send","source_ip":"127.0.0.1","source_port":50000,"dest_ip":"127.0.0.1",
        "dest_port":5432,"flow_id":3});
    let with = |extra: Value| {
        let mut e = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            e[k] = v.clone();
        }
        e
    };
    vec![
        with(
            json!({"event_type":"connection","timestamp":"2026-12-03T10:00:01.000000000Z",
            "protocol":"postgres","category":"database","confidence":95,
            "detection_reason":"StartupMessage","role":"client",
            "summary":{"user":"app","database":"shop"}}),
        ),
        with(
            json!({"event_type":"message","timestamp":"2026-12-03T10:00:02.000000000Z",
            "protocol":"postgres","category":"database","kind":"request","op":"parse",
            "resource":"INSERT INTO orders (item, channel) VALUES ($1, ?)","bytes":60,
            "truncated":false}),
        ),
        with(
            json!({"event_type":"message","timestamp":"2026-12-03T10:00:03.000000000Z",
            "protocol":"postgres","category":"database","kind":"request","op":"query",
            "resource":"SELECT count(*) FROM orders o JOIN items i ON o.i = i.id","bytes":60,
            "truncated":false}),
        ),
        with(
            json!({"event_type":"connection","timestamp":"2026-12-03T10:00:04.000000000Z",
            "protocol":"postgres","category":"database","confidence":99,
            "detection_reason":"StartupMessage; confirmed by AuthenticationOk","role":"client",
            "summary":{"user":"app","database":"shop"}}),
        ),
        json!({"event_type":"lost","timestamp":"2026-12-03T10:00:05.000000000Z",
            "source":"kernel_sampled","count":12}),
    ]
}

#[test]
fn connections_say_what_they_are_used_for() {
    let d = doc(&build(&postgres_events()));
    let c = &d["services"][0]["connections"][0];
    assert_eq!(c["destination"], "127.0.0.1:5432", "{d:#}");
    assert_eq!(c["protocol"], "postgres");
    assert_eq!(c["category"], "database");
    assert_eq!(c["port"], 5432);
    assert_eq!(c["confidence"], 99);
    assert_eq!(c["reason"], "StartupMessage; confirmed by AuthenticationOk");
    assert_eq!(c["count"], 1, "one connection, announced twice");
    assert_eq!(c["first_seen"], "2026-12-03T10:00:01.000000000Z");
    assert_eq!(c["last_seen"], "2026-12-03T10:00:04.000000000Z");
    assert_eq!(
        c["usage"],
        json!({"user":["app"],"database":["shop"],
               "operations":{"INSERT":1,"SELECT":1},"targets":["items","orders"]})
    );
    assert_eq!(d["sampling"]["sampled_out_messages"], 12);
}

#[test]
fn a_map_written_and_read_back_merges_into_the_same_map() {
    let mut events = postgres_events();
    for i in 0..20_u64 {
        events.push(request(1, "web", i % 3, 1, "GET", &format!("/a/{i}"), ""));
        events.push(response(
            1,
            "web",
            i % 3,
            2,
            200 + u16::try_from(i % 2).expect("small"),
            "[1]",
        ));
    }
    let whole = build(&events);
    let text = whole.to_yaml("T").expect("yaml");
    // Read back: the same document.
    let again = MapBuilder::from_yaml(&text, MapOptions::default()).expect("read");
    assert_eq!(again.to_yaml("T").expect("yaml"), text);
    // Two halves merged: the same document (split between exchanges).
    let (a, b) = events.split_at(events.len() - 10);
    let mut left = build(a);
    left.merge(&build(b));
    assert_eq!(left.to_yaml("T").expect("yaml"), text);
}

#[test]
fn the_file_is_written_atomically_private_and_continued_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("map.yaml");
    let mut sink = ServiceMapSink::file(&path, MapOptions::default());
    assert_eq!(sink.due(), None, "nothing to write yet");
    let e = adi_core::event::Event::Lost(adi_core::event::LostEvent {
        timestamp: "2026-12-03T10:00:00.000000000Z".into(),
        source: "kernel_sampled".into(),
        count: 3,
    });
    sink.write(&e).expect("write");
    let due = sink.due().expect("a write is due");
    assert!(due > Instant::now() && due <= Instant::now() + DEBOUNCE);
    sink.flush().expect("flush");
    assert!(!path.exists(), "debounced: not written before it is due");
    sink.finish().expect("finish");
    let text = std::fs::read_to_string(&path).expect("written");
    assert!(text.contains("sampled_out_messages: 3"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A restart continues the map.
    let mut sink = ServiceMapSink::file(&path, MapOptions::default());
    sink.write(&e).expect("write");
    sink.finish().expect("finish");
    let text = std::fs::read_to_string(&path).expect("written");
    assert!(text.contains("sampled_out_messages: 6"), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
}

#[test]
fn a_corrupt_map_is_kept_aside_and_a_fresh_one_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("map.yaml");
    std::fs::write(&path, "services: [unclosed\n\x00").expect("write");
    let mut sink = ServiceMapSink::file(&path, MapOptions::default());
    assert!(dir.path().join("map.yaml.corrupt").exists());
    sink.finish().expect("finish");
    let text = std::fs::read_to_string(&path).expect("written");
    assert!(text.contains("services: []"), "{text}");
}

#[test]
fn an_unwritable_path_is_an_error_and_a_retry_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing-dir").join("map.yaml");
    let mut sink = ServiceMapSink::file(&path, MapOptions::default());
    sink.write(&adi_core::event::Event::Lost(adi_core::event::LostEvent {
        timestamp: "2026-12-03T10:00:00.000000000Z".into(),
        source: "kernel_sampled".into(),
        count: 1,
    }))
    .expect("write");
    assert!(sink.finish().is_err(), "said once");
    // Not due again at once: the sink's thread waits for the retry instead of spinning.
    let due = sink.due().expect("still to be written");
    assert!(
        due + Duration::from_millis(500) >= Instant::now() + DEBOUNCE,
        "{due:?}"
    );
    assert!(sink.flush().is_ok(), "not due yet");
    assert!(sink.finish().is_ok(), "then retried quietly");
    std::fs::create_dir(dir.path().join("missing-dir")).expect("mkdir");
    sink.finish().expect("written once possible");
    assert!(path.exists());
}

#[test]
fn hostile_bodies_give_bounded_schemas() {
    let deep = "[".repeat(10_000);
    let events = [
        request(1, "web", 1, 1, "POST", "/x", &deep),
        response(1, "web", 1, 2, 200, "\u{fffd}\u{fffd}not json"),
    ];
    let d = doc(&build(&events));
    let eps = endpoints(&d);
    assert_eq!(eps[0]["request_schema"], "non-json");
    assert_eq!(eps[0]["response_schema"], "non-json");
}

/// A JSON response as a server sends it compressed: hand-made with flate2 (the encoder side of
/// the crate the sink decodes with), one body per encoding.
fn compressed(encoding: &str, json: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(json).expect("gzip");
            e.finish().expect("gzip")
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(json).expect("zlib");
            e.finish().expect("zlib")
        }
        _ => json.to_vec(),
    }
}

fn http_event(request: bool, flow: u64, encoding: &str, body: Vec<u8>, truncated: bool) -> Event {
    use adi_core::event::{Endpoints, Headers, HttpEvent, LossyText, ProcessInfo};
    let mut process = ProcessInfo::new(1, "python3", "python3 web.py");
    process.service = Some("web".into());
    let (src, dst) = if request {
        (40_000, 8080)
    } else {
        (8080, 40_000)
    };
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if !encoding.is_empty() {
        headers.push(("Content-Encoding".to_owned(), encoding.to_owned()));
    }
    Event::Http(HttpEvent {
        timestamp: "2026-12-03T10:00:00.000000000Z".into(),
        containers: adi_core::event::ContainerFields::default(),
        process: process.into(),
        endpoints: Endpoints {
            direction: if request { "send" } else { "recv" },
            source_ip: "127.0.0.1".parse().expect("ip"),
            source_port: src,
            dest_ip: "127.0.0.1".parse().expect("ip"),
            dest_port: dst,
        },
        bytes: body.len() as u64,
        tls: false,
        method: request.then(|| "GET".to_owned()),
        url: request.then(|| "/catalog".to_owned()),
        status_code: (!request).then_some(200),
        headers: Headers(if request { Vec::new() } else { headers }),
        body: LossyText(body),
        raw_payload: LossyText(Vec::new()),
        truncated,
        flow_id: adi_core::flow::FlowId(flow),
        latency_ms: (!request).then_some(1.0),
        version: None,
        stream_id: None,
        grpc: None,
    })
}

#[test]
fn compressed_bodies_are_inflated_and_unknown_encodings_are_not_guessed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("map.yaml");
    let mut sink = ServiceMapSink::file(&path, MapOptions::default());
    let json = br#"{"items":[{"id":1,"name":"a"},{"id":2,"name":"b"}],"total":2}"#;
    let cut = compressed("gzip", json);
    let cases = [
        ("gzip", compressed("gzip", json), false),
        ("deflate", compressed("deflate", json), false),
        // Cut at the capture limit: what inflates is the first part.
        ("gzip", cut[..cut.len() - 12].to_vec(), true),
        ("br", vec![0x1b, 0x3f, 0x00, 0xf8], false),
    ];
    for (flow, (encoding, body, truncated)) in (1..).zip(cases) {
        sink.write(&http_event(true, flow, "", Vec::new(), false))
            .expect("write");
        sink.write(&http_event(false, flow, encoding, body, truncated))
            .expect("write");
    }
    sink.finish().expect("finish");
    let d = yaml::parse(&std::fs::read_to_string(&path).expect("map")).expect("yaml");
    let shapes: Vec<(Value, Value)> = endpoints(&d)
        .iter()
        .map(|e| (e["response_schema"].clone(), e["count"].clone()))
        .collect();
    let full = json!({"items":[{"id":"number","name":"string"}],"total":"number"});
    assert!(
        shapes.contains(&(full, json!(2))),
        "gzip and deflate: {shapes:?}"
    );
    assert!(
        shapes.contains(&(json!("non-json"), json!(1))),
        "br: {shapes:?}"
    );
    assert_eq!(shapes.len(), 3, "{d:#}");
}

#[test]
fn a_body_shorter_than_its_content_length_gives_the_shape_of_what_came() {
    // The server declared more than it sent before closing (a wrong Content-Length): the
    // parser hands over what came, marked truncated.
    let mut resp = response(
        1,
        "web",
        1,
        2,
        200,
        r#"{"id":"1","tags":["a","b"],"price":"#,
    );
    resp["truncated"] = json!(true);
    let d = doc(&build(&[
        request(1, "web", 1, 1, "GET", "/items/1", ""),
        resp,
    ]));
    let ep = &endpoints(&d)[0];
    assert_eq!(
        ep["response_schema"],
        json!({"id":"string","tags":["string"]}),
        "{d:#}"
    );
    assert_eq!(ep["truncated"], true);
}

#[test]
fn an_interim_100_continue_is_not_the_response() {
    let events = [
        request(1, "web", 1, 1, "POST", "/upload", r#"{"n":1}"#),
        response(1, "web", 1, 2, 100, ""),
        response(1, "web", 1, 3, 201, r#"{"ok":true}"#),
    ];
    let d = doc(&build(&events));
    let eps = endpoints(&d);
    assert_eq!(eps.len(), 1, "{d:#}");
    assert_eq!(eps[0]["status_codes"], json!({"201": 1}));
    assert_eq!(eps[0]["response_schema"], json!({"ok":"boolean"}));
    assert!(d.get("sampling").is_none(), "nothing unpaired: {d:#}");
}

#[test]
fn merging_does_not_depend_on_the_order_of_the_maps() {
    // One host saw the destination on itself, the other elsewhere; shapes seen in either order.
    let a = build(&[
        with_peer(request(1, "web", 1, 1, "GET", "/a", ""), "api"),
        with_peer(response(1, "web", 1, 2, 200, r#"{"x":1}"#), "api"),
    ]);
    let mut far = request(2, "web", 1, 1, "GET", "/a", "");
    far["dest_ip"] = json!("10.1.2.3");
    far["headers"] = json!({"Host": "api"});
    let b = build(&[far, response(2, "web", 1, 2, 200, r#"{"y":"s"}"#)]);
    let mut ab = MapBuilder::new(MapOptions::default());
    ab.merge(&a);
    ab.merge(&b);
    let mut ba = MapBuilder::new(MapOptions::default());
    ba.merge(&b);
    ba.merge(&a);
    assert_eq!(
        ab.to_yaml("T").expect("yaml"),
        ba.to_yaml("T").expect("yaml")
    );
    assert!(ab
        .to_yaml("T")
        .expect("yaml")
        .contains("destination_type: process"));
}

/// The container fields of a service in compose project `bookinfo`, as messages carry them.
fn container(service: &str) -> Value {
    json!({"service": service, "image": format!("localhost/bookinfo/{service}:1.0"),
        "container_id": format!("{service:0>64}"), "container_name": format!("bookinfo_{service}_1")})
}

/// The `container` event that describes it once, with its labels.
fn container_event(service: &str) -> Value {
    let mut e = container(service);
    e["event_type"] = json!("container");
    e["timestamp"] = json!("2026-12-03T10:00:00.000000000Z");
    e["labels"] = json!({"com.docker.compose.service": service, "app.bookinfo/version": "v1"});
    e
}

/// `e` as container enrichment writes it: `src` sent it to `dst` (`None`: not a container),
/// and the receiver is `kind`.
fn in_containers(mut e: Value, src: Option<&str>, dst: Option<&str>, kind: &str) -> Value {
    if let Some(s) = src {
        e["source_container"] = container(s);
    }
    if let Some(d) = dst {
        e["destination_container"] = container(d);
    }
    e["destination_type"] = json!(kind);
    e
}

#[test]
fn containers_name_destinations_and_give_services_their_image_and_labels() {
    let req = request(1, "productpage", 7, 1, "GET", "/reviews/0", "");
    let mut resp = response(1, "productpage", 7, 2, 200, r#"{"id":0}"#);
    resp["destination_type"] = json!("container");
    let events = [
        container_event("productpage"),
        container_event("reviews"),
        // Reviews is not watched: its container names it.
        in_containers(req, Some("productpage"), Some("reviews"), "container"),
        in_containers(resp, Some("reviews"), Some("productpage"), "container"),
        // A connection to a database in no container the runtimes know, on another host.
        in_containers(
            json!({"event_type":"connection","timestamp":"2026-12-03T10:00:03.000000000Z",
                "pid":1,"comm":"python3","service":"productpage","direction":"send",
                "source_ip":"10.89.0.2","source_port":40001,"dest_ip":"192.0.2.9","dest_port":5432,
                "protocol":"postgres","category":"database","confidence":90,
                "detection_reason":"startup","flow_id":8,"role":"client"}),
            Some("productpage"),
            None,
            "external",
        ),
    ];
    let m = build(&events);
    let d = doc(&m);
    let s = &d["services"][0];
    assert_eq!(s["name"], "productpage", "{d:#}");
    assert_eq!(s["image"], "localhost/bookinfo/productpage:1.0");
    assert_eq!(s["labels"]["app.bookinfo/version"], "v1");
    let eps = endpoints(&d);
    assert_eq!(eps[0]["destination"], "reviews");
    assert_eq!(eps[0]["destination_type"], "container");
    let c = &s["connections"][0];
    assert_eq!(
        (c["destination"].clone(), c["destination_type"].clone()),
        (json!("192.0.2.9:5432"), json!("external"))
    );
    // Upstream's workloads: the image as `software.image`, every label; the destination
    // inferred with its own.
    let observed =
        yaml::parse(&m.render(MapFormat::Observed, "T").expect("observed")).expect("yaml");
    let workloads = observed["spec"]["workloads"].as_array().expect("workloads");
    let reviews = workloads
        .iter()
        .find(|w| w["displayName"] == "reviews")
        .expect("reviews");
    assert_eq!(
        reviews["software"]["image"],
        "localhost/bookinfo/reviews:1.0"
    );
    assert_eq!(reviews["labels"]["com.docker.compose.service"], "reviews");
    assert_eq!(reviews["labels"]["adi.dev/inferred"], "true");
    // The profile names its workload by its image.
    let rcp = m.render(MapFormat::Rcp, "T").expect("rcp");
    let profile = yaml::parse(&rcp).expect("rcp yaml");
    assert_eq!(
        profile["workload"]["uri"], "oci://localhost/bookinfo/productpage",
        "{rcp}"
    );
    assert_eq!(profile["workload"]["version"], "1.0");
    // Read back and merged with a map that saw reviews only as a process: what says most
    // wins, whichever order.
    let back =
        MapBuilder::from_yaml(&m.to_yaml("T").expect("yaml"), MapOptions::default()).expect("read");
    let host_only = build(&[
        with_peer(
            request(1, "productpage", 7, 1, "GET", "/reviews/0", ""),
            "reviews",
        ),
        with_peer(
            response(1, "productpage", 7, 2, 200, r#"{"id":0}"#),
            "reviews",
        ),
    ]);
    for (a, b) in [(&back, &host_only), (&host_only, &back)] {
        let mut merged =
            MapBuilder::from_yaml(&a.to_yaml("T").expect("yaml"), MapOptions::default())
                .expect("read");
        merged.merge(b);
        let d = doc(&merged);
        assert_eq!(endpoints(&d)[0]["destination_type"], "container", "{d:#}");
        assert_eq!(
            d["services"][0]["image"],
            "localhost/bookinfo/productpage:1.0"
        );
    }
}

/// Multiplexed HTTP/2 calls answered out of order pair by stream; gRPC calls keep their
/// `grpc-status` counts and say `protocol: grpc` through a write, a read back and a merge.
#[test]
fn http2_streams_pair_by_stream_and_grpc_calls_keep_their_status() {
    let call = |stream: u64, ts: u32, method: &str, grpc_status: u16| -> [Value; 2] {
        let path = format!("/shop.Catalog/{method}");
        let grpc = json!({"service": "shop.Catalog", "method": method,
                          "encoding": "protobuf", "messages": [7]});
        let mut req = request(1, "web", 1, ts, "POST", &path, "");
        let mut resp = response(1, "web", 1, ts + 10, 200, "");
        for e in [&mut req, &mut resp] {
            e["version"] = json!("2");
            e["stream_id"] = json!(stream);
            e["grpc"] = grpc.clone();
        }
        resp["grpc"]["status"] = json!(grpc_status);
        [req, resp]
    };
    // Two requests on one connection, answered in the other order.
    let [get_req, get_resp] = call(1, 1, "GetItem", 5);
    let [list_req, list_resp] = call(3, 2, "ListItems", 0);
    let events = [get_req, list_req, list_resp, get_resp];
    let m = build(&events);
    let text = m.to_yaml("T").expect("yaml");
    let eps = endpoints(&doc(&m));
    assert_eq!(eps.len(), 2, "{text}");
    for ep in &eps {
        assert_eq!(ep["protocol"], "grpc", "{text}");
        let want = if ep["path"] == "/shop.Catalog/GetItem" {
            "5"
        } else {
            "0"
        };
        assert_eq!(ep["grpc_status_codes"][want], 1, "paired by stream: {text}");
        assert_eq!(ep["count"], 1, "{text}");
    }
    assert_eq!(m.model.sampling.unpaired_responses, 0);
    let again = MapBuilder::from_yaml(&text, MapOptions::default()).expect("read");
    assert_eq!(again.to_yaml("T").expect("yaml"), text);
    // Whole calls merge: counts add, the protocol stays.
    let mut twice = build(&events);
    twice.merge(&build(&events));
    let doubled = endpoints(&doc(&twice));
    assert!(doubled
        .iter()
        .all(|ep| ep["count"] == 2 && ep["protocol"] == "grpc"));
}

/// A connection first announced as `tls` (its handshake) and then, its plaintext read from
/// the TLS library, as the protocol inside (`"tls": true`) is that protocol alone; a TLS
/// connection whose plaintext was not read stays `tls`.
#[test]
fn a_tls_connection_read_in_plaintext_is_the_protocol_inside() {
    let conn = |flow: u64, port: u16, protocol: &str, category: &str, tls: bool| {
        let mut e = json!({"event_type":"connection","timestamp":"2026-12-03T10:00:01.000000000Z",
            "pid":5,"comm":"python3","service":"orders","direction":"send",
            "source_ip":"127.0.0.1","source_port":50000 + flow,"dest_ip":"127.0.0.1",
            "dest_port":port,"flow_id":flow,"protocol":protocol,"category":category,
            "confidence":92,"detection_reason":"x","role":"client",
            "peer_service":"db"});
        if tls {
            e["tls"] = json!(true);
        }
        e
    };
    let events = [
        // PostgreSQL over TLS: the handshake, then the plaintext.
        conn(1, 5432, "tls", "tls", false),
        conn(1, 5432, "postgres", "database", true),
        // HTTPS read in plaintext: its endpoints describe it.
        conn(2, 8443, "tls", "tls", false),
        conn(2, 8443, "http1", "http", true),
        // A TLS connection adi could not read.
        conn(3, 9443, "tls", "tls", false),
    ];
    let m = build(&events);
    let d = doc(&m);
    let got: Vec<(String, u64)> = d["services"][0]["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| {
            (
                format!("{}:{}", c["protocol"].as_str().unwrap_or(""), c["port"]),
                c["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("postgres:5432".to_owned(), 1), ("tls:9443".to_owned(), 1)]
    );
}

/// Live events of every kind the map reads, drawn at random: a few services, peers and
/// containers, IPv4 and IPv6, loopback and remote, JSON and other bodies (invalid UTF-8
/// too), HTTP/2 streams, gRPC, interim responses, messages with and without a routing key.
mod live_and_json {
    use std::sync::Arc;

    use adi_core::event::{
        ConnectionEvent, ContainerFields, ContainerInfo, Endpoints, Event, GrpcInfo, Headers,
        HttpEvent, LossyText, MessageEvent, ProcessInfo,
    };
    use adi_core::flow::{FlowId, Role};
    use adi_core::protocol::{Category, ProtocolId};
    use proptest::prelude::*;

    use super::super::{MapBuilder, MapOptions};

    fn container(i: u8) -> Arc<ContainerInfo> {
        Arc::new(ContainerInfo {
            service: ["", "db", "api"][usize::from(i % 3)].to_owned(),
            image: ["", "postgres:16", "api:1"][usize::from(i % 3)].to_owned(),
            container_id: format!("c{i}"),
            container_name: format!("n{i}"),
            labels: [("tier".to_owned(), format!("t{i}"))].into(),
        })
    }

    fn process(pid: u32, svc: u8, peer: u8) -> ProcessInfo {
        let mut p = ProcessInfo::new(pid, ["python3", ""][usize::from(svc % 2)], "x");
        p.service = [
            None,
            Some("web".into()),
            Some("".into()),
            Some("worker".into()),
        ][usize::from(svc % 4)]
        .clone();
        p.peer_service = (peer % 5 == 1).then(|| "orders".into());
        p.peer_process = (peer % 5 == 2).then(|| "postgres".into());
        p
    }

    fn ends(sent: bool, v6: bool, remote: bool, port: u16) -> Endpoints {
        let here = if v6 { "::1" } else { "127.0.0.1" };
        let there = match (v6, remote) {
            (true, true) => "2001:db8::7",
            (false, true) => "10.1.2.3",
            _ => here,
        };
        let (a, b) = (here.parse().expect("ip"), there.parse().expect("ip"));
        let ((src, sp), (dst, dp)) = if sent {
            ((a, 40_000), (b, port))
        } else {
            ((b, port), (a, 40_000))
        };
        Endpoints {
            direction: if sent { "send" } else { "recv" },
            source_ip: src,
            source_port: sp,
            dest_ip: dst,
            dest_port: dp,
        }
    }

    fn containers(c: u8) -> ContainerFields {
        ContainerFields {
            source_container: (c % 3 == 1).then(|| container(c)),
            destination_container: (c % 4 >= 2).then(|| container(c / 2)),
            destination_type: [None, Some("container"), Some("process"), Some("external")]
                [usize::from(c % 4)],
        }
    }

    const BODIES: [&[u8]; 5] = [
        b"",
        b"{\"id\":7,\"items\":[{\"sku\":\"a\"}]}",
        b"[1,2]",
        b"{\"name\":\"\xff\xfe\"}",
        b"plain text",
    ];

    #[derive(Debug, Clone)]
    struct Draw {
        kind: u8,
        pid: u8,
        svc: u8,
        peer: u8,
        flow: u8,
        sent: bool,
        v6: bool,
        remote: bool,
        c: u8,
        body: u8,
        status: u16,
        stream: Option<u8>,
        /// 0: not gRPC; 1, 2: status 0, 2; 3: no status.
        grpc: u8,
        host: u8,
        ts: u8,
    }

    fn draw() -> impl Strategy<Value = Draw> {
        (
            (
                0u8..4,
                0u8..3,
                0u8..4,
                0u8..5,
                0u8..4,
                any::<bool>(),
                any::<bool>(),
            ),
            (
                any::<bool>(),
                0u8..8,
                0u8..5,
                prop::sample::select(vec![100u16, 200, 404, 503]),
            ),
            (prop::option::of(0u8..3), 0u8..4, 0u8..4, 0u8..60),
        )
            .prop_map(
                |(
                    (kind, pid, svc, peer, flow, sent, v6),
                    (remote, c, body, status),
                    (stream, grpc, host, ts),
                )| Draw {
                    kind,
                    pid,
                    svc,
                    peer,
                    flow,
                    sent,
                    v6,
                    remote,
                    c,
                    body,
                    status,
                    stream,
                    grpc,
                    host,
                    ts,
                },
            )
    }

    fn event(d: &Draw) -> Event {
        let timestamp = format!("2026-12-03T10:00:{:02}.000000000Z", d.ts);
        let process = process(u32::from(d.pid), d.svc, d.peer);
        let flow_id = FlowId(u64::from(d.flow));
        let port = [5432u16, 8080, 6379][usize::from(d.flow % 3)];
        let endpoints = ends(d.sent, d.v6, d.remote, port);
        let containers = containers(d.c);
        match d.kind {
            0 | 1 => {
                let request = d.kind == 0;
                let mut headers = Vec::new();
                match d.host {
                    1 => headers.push(("Host".to_owned(), "shop.example".to_owned())),
                    2 => headers.push(("host".to_owned(), "api.internal".to_owned())),
                    3 => headers.push(("Host".to_owned(), String::new())),
                    _ => {}
                }
                Event::Http(HttpEvent {
                    timestamp,
                    process: process.into(),
                    endpoints,
                    containers,
                    bytes: 10,
                    tls: false,
                    method: request.then(|| "POST".to_owned()),
                    url: request.then(|| format!("/orders/{}?q=1", d.flow)),
                    status_code: (!request).then_some(d.status),
                    headers: Headers(headers),
                    body: LossyText(BODIES[usize::from(d.body)].to_vec()),
                    raw_payload: LossyText(Vec::new()),
                    truncated: d.body == 2,
                    flow_id,
                    latency_ms: (!request).then_some(f64::from(d.ts) / 7.0),
                    version: d.stream.map(|_| "2"),
                    stream_id: d.stream.map(u64::from),
                    grpc: (d.grpc > 0).then(|| {
                        Box::new(GrpcInfo {
                            service: None,
                            method: None,
                            status: [None, Some(0), Some(2)][usize::from(d.grpc % 3)],
                            message: None,
                            encoding: "protobuf".into(),
                            messages: Vec::new(),
                        })
                    }),
                })
            }
            2 => Event::Connection(ConnectionEvent {
                timestamp,
                process: process.into(),
                endpoints,
                containers,
                protocol: ProtocolId::new(
                    ["postgres", "redis", "amqp", "tls"][usize::from(d.c % 4)],
                ),
                category: [
                    Category::DATABASE,
                    Category::CACHE,
                    Category::MESSAGE_BUS,
                    Category::TLS,
                ][usize::from(d.c % 4)],
                confidence: adi_core::classify::Confidence::CERTAIN,
                detection_reason: "startup message".into(),
                flow_id,
                role: if d.sent { Role::Client } else { Role::Server },
                tls: d.host == 3,
                summary: [("user", "app".to_owned())].into(),
            }),
            _ => {
                let routing = match d.host {
                    1 => vec![("routing_key".to_owned(), "orders.new".to_owned())],
                    2 => vec![
                        ("routing_key".to_owned(), "a".to_owned()),
                        ("routing_key".to_owned(), "b".to_owned()),
                    ],
                    3 => vec![("Routing_Key".to_owned(), "c".to_owned())],
                    _ => Vec::new(),
                };
                Event::Message(MessageEvent {
                    timestamp,
                    process: process.into(),
                    endpoints,
                    containers,
                    protocol: ProtocolId::new("postgres"),
                    category: [Category::DATABASE, Category::CACHE, Category::MESSAGE_BUS]
                        [usize::from(d.c % 3)],
                    kind: ["request", "response", "message"][usize::from(d.body % 3)],
                    op: (d.status != 100)
                        .then(|| ["query", "GET", "publish"][usize::from(d.c % 3)].to_owned()),
                    resource: (d.status != 404).then(|| "SELECT a FROM orders".to_owned()),
                    status: None,
                    error: None,
                    attributes: Headers(routing),
                    bytes: 10,
                    tls: false,
                    truncated: false,
                    flow_id,
                    latency_ms: None,
                })
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The live sink reads `http` and `message` events as they are; `adi map build` reads
        /// their JSON lines. Both must build the same map, in every format.
        #[test]
        fn live_events_and_their_json_lines_build_the_same_map(draws in prop::collection::vec(draw(), 1..40)) {
            let opts = MapOptions::default();
            let (mut live, mut json) = (MapBuilder::new(opts), MapBuilder::new(opts));
            for d in &draws {
                let e = event(d);
                live.add_event(&e).expect("live");
                json.add(&serde_json::to_value(&e).expect("json"));
            }
            live.finish();
            json.finish();
            for format in [super::super::MapFormat::Seed, super::super::MapFormat::Observed, super::super::MapFormat::Rcp] {
                prop_assert_eq!(live.render(format, "T").expect("yaml"), json.render(format, "T").expect("yaml"));
            }
            prop_assert_eq!(live.dot(), json.dot());
        }
    }
}
