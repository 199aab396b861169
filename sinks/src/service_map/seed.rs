//! The `seed` format: the profiler seed's `generated_at` / `services:` YAML, field for field,
//! with adi's additions after the seed's fields (documented in `docs/service-map.md`). Also
//! read back, so a restarted sink continues its file and `adi map merge` adds maps up.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::model::{Connection, Endpoint, Latency, Model, Service, Usage, Variant, Workload};
use super::yaml::Node;

/// The map as the seed's document, fields in the seed's order.
pub fn document(model: &Model, generated_at: &str) -> Node {
    let services: Vec<Node> = model
        .services
        .iter()
        .map(|(name, s)| service(name, s, model.workloads.get(name)))
        .collect();
    let mut doc = vec![
        ("generated_at", json!(generated_at).into()),
        ("services", Node::List(services)),
    ];
    let s = &model.sampling;
    if s.sampled_out_messages + s.lost_events + s.unpaired_responses > 0 {
        doc.push((
            "sampling",
            serde_json::to_value(s).unwrap_or_default().into(),
        ));
    }
    let o = &model.overflow;
    if o.services + o.endpoints + o.connections + o.variants + o.pending > 0 {
        doc.push((
            "overflow",
            serde_json::to_value(o).unwrap_or_default().into(),
        ));
    }
    Node::Map(doc)
}

fn service(name: &str, s: &Service, workload: Option<&Workload>) -> Node {
    let mut endpoints = Vec::new();
    for ((dest, method, path), ep) in &s.endpoints {
        endpoints.extend(endpoint(dest, method, path, ep));
    }
    let connections: Vec<Node> = s
        .connections
        .iter()
        .map(|((dest, protocol, port), c)| connection(dest, protocol, *port, c))
        .collect();
    let mut m = vec![("name", json!(name).into())];
    let workload = workload.filter(|w| !w.image.is_empty() || !w.labels.is_empty());
    if let Some(w) = workload {
        m.push(("image", json!(w.image).into()));
    }
    m.extend([
        ("endpoints", Node::List(endpoints)),
        ("connections", Node::List(connections)),
        ("first_seen", json!(s.first_seen).into()),
        ("last_seen", json!(s.last_seen).into()),
    ]);
    // adi's addition: the container's labels.
    if let Some(w) = workload.filter(|w| !w.labels.is_empty()) {
        m.push(("labels", json!(w.labels).into()));
    }
    Node::Map(m)
}

/// One entry per variant (the seed keeps each distinct shape as its own endpoint entry); an
/// endpoint whose requests were never answered still gets an entry.
fn endpoint(dest: &str, method: &str, path: &str, ep: &Endpoint) -> Vec<Node> {
    let head = || -> Vec<(&'static str, Node)> {
        let mut m = vec![
            ("destination", json!(dest).into()),
            ("destination_type", json!(ep.destination_type).into()),
            ("method", json!(method).into()),
            ("path", json!(path).into()),
        ];
        // adi's addition: gRPC calls say so (an HTTP endpoint says nothing).
        if ep.grpc {
            m.push(("protocol", json!("grpc").into()));
        }
        m
    };
    let mut out = Vec::new();
    for v in ep.sorted_variants() {
        let mut m = head();
        m.push(("request_schema", v.request_schema.clone().into()));
        m.push(("response_schema", v.response_schema.clone().into()));
        m.push(("first_seen", json!(v.first_seen).into()));
        m.push(("last_seen", json!(v.last_seen).into()));
        m.push(("count", json!(v.count).into()));
        // adi's additions.
        m.push(("addresses", json!(ep.addresses).into()));
        if !ep.query.is_empty() {
            m.push(("query", json!(ep.query).into()));
        }
        if v.truncated {
            m.push(("truncated", json!(true).into()));
        }
        let codes: BTreeMap<String, u64> = v
            .status_codes
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect();
        m.push(("status_codes", json!(codes).into()));
        if !v.grpc_status_codes.is_empty() {
            let grpc: BTreeMap<String, u64> = v
                .grpc_status_codes
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect();
            m.push(("grpc_status_codes", json!(grpc).into()));
        }
        if let (Some(p50), Some(p99)) = (v.latency.quantile(0.5), v.latency.quantile(0.99)) {
            m.push((
                "latency_ms",
                json!({"p50": p50, "p99": p99, "buckets": buckets(&v.latency)}).into(),
            ));
        }
        if ep.unanswered > 0 {
            m.push(("unanswered", json!(ep.unanswered).into()));
        }
        out.push(Node::Map(m));
    }
    if ep.variants.is_empty() {
        let mut m = head();
        m.push(("count", json!(0).into()));
        m.push(("addresses", json!(ep.addresses).into()));
        if !ep.query.is_empty() {
            m.push(("query", json!(ep.query).into()));
        }
        m.push(("unanswered", json!(ep.unanswered).into()));
        out.push(Node::Map(m));
    }
    out
}

/// The latency histogram, kept so that maps can be continued and merged exactly.
fn buckets(l: &Latency) -> Value {
    let m: Map<String, Value> = l.0.iter().map(|(b, n)| (b.to_string(), json!(n))).collect();
    Value::Object(m)
}

fn connection(dest: &str, protocol: &str, port: u16, c: &Connection) -> Node {
    let mut m: Vec<(&'static str, Node)> = vec![
        ("destination", json!(dest).into()),
        ("destination_type", json!(c.destination_type).into()),
        ("protocol", json!(protocol).into()),
        ("category", json!(c.category).into()),
        ("port", json!(port).into()),
        ("confidence", json!(c.confidence).into()),
        ("reason", json!(c.reason).into()),
        ("first_seen", json!(c.first_seen).into()),
        ("last_seen", json!(c.last_seen).into()),
        ("count", json!(c.count).into()),
        ("addresses", json!(c.addresses).into()),
    ];
    if let Some(usage) = c.usage.to_json() {
        m.push(("usage", usage.into()));
    }
    Node::Map(m)
}

/// A map read back from its `seed` document.
///
/// # Errors
///
/// A message naming what is missing or malformed.
pub fn read(doc: &Value, template_paths: bool) -> Result<Model, String> {
    let mut model = Model::new(template_paths);
    let services = doc
        .get("services")
        .and_then(Value::as_array)
        .ok_or("no `services` list")?;
    for s in services {
        let name = str_of(s, "name").ok_or("a service without a name")?;
        let mut svc = Service {
            first_seen: str_of(s, "first_seen").unwrap_or_default(),
            last_seen: str_of(s, "last_seen").unwrap_or_default(),
            ..Service::default()
        };
        for e in s
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            read_endpoint(e, &mut svc)?;
        }
        for c in s
            .get("connections")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            read_connection(c, &mut svc)?;
        }
        let workload = Workload {
            image: str_of(s, "image").unwrap_or_default(),
            labels: s
                .get("labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
        };
        if workload != Workload::default() {
            model.workloads.insert(name.clone(), workload);
        }
        model.services.insert(name, svc);
    }
    if let Some(s) = doc.get("sampling") {
        model.sampling = serde_json::from_value(s.clone()).map_err(|e| e.to_string())?;
    }
    if let Some(o) = doc.get("overflow") {
        model.overflow = serde_json::from_value(o.clone()).map_err(|e| e.to_string())?;
    }
    Ok(model)
}

fn str_of(v: &Value, f: &str) -> Option<String> {
    v.get(f).and_then(Value::as_str).map(str::to_owned)
}

fn strings<'a>(v: &'a Value, f: &str) -> impl Iterator<Item = String> + 'a {
    v.get(f)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
}

fn num_of(v: &Value, f: &str) -> u64 {
    v.get(f).and_then(Value::as_u64).unwrap_or(0)
}

/// A `{"code": count}` object of a written map (`status_codes`), entries that are not numbers
/// left out.
fn counts(e: &Value, field: &str) -> BTreeMap<u16, u64> {
    e.get(field)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(code, n)| Some((code.parse().ok()?, n.as_u64()?)))
        .collect()
}

/// One endpoint entry (a variant) of a written map.
fn read_endpoint(e: &Value, svc: &mut Service) -> Result<(), String> {
    let key = (
        str_of(e, "destination").ok_or("an endpoint without a destination")?,
        str_of(e, "method").ok_or("an endpoint without a method")?,
        str_of(e, "path").ok_or("an endpoint without a path")?,
    );
    let ep: &mut Endpoint = svc.endpoints.entry(key).or_default();
    ep.destination_type = str_of(e, "destination_type").unwrap_or_default();
    ep.grpc |= str_of(e, "protocol").as_deref() == Some("grpc");
    ep.addresses.extend(strings(e, "addresses"));
    for q in e
        .get("query")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(q) = q.as_str() {
            ep.query.insert(q.to_owned());
        }
    }
    ep.unanswered = ep.unanswered.max(num_of(e, "unanswered"));
    if e.get("response_schema").is_none() {
        return Ok(());
    }
    let mut v = Variant {
        request_schema: e.get("request_schema").cloned().unwrap_or(Value::Null),
        response_schema: e.get("response_schema").cloned().unwrap_or(Value::Null),
        truncated: e.get("truncated").and_then(Value::as_bool) == Some(true),
        status_codes: counts(e, "status_codes"),
        grpc_status_codes: counts(e, "grpc_status_codes"),
        latency: Latency::default(),
        first_seen: str_of(e, "first_seen").unwrap_or_default(),
        last_seen: str_of(e, "last_seen").unwrap_or_default(),
        count: num_of(e, "count"),
    };
    let buckets = e.get("latency_ms").and_then(|l| l.get("buckets"));
    for (b, n) in buckets.and_then(Value::as_object).into_iter().flatten() {
        if let (Ok(b), Some(n)) = (b.parse(), n.as_u64()) {
            v.latency.0.insert(b, n);
        }
    }
    ep.variants.push(v);
    Ok(())
}

/// One connection entry of a written map.
fn read_connection(c: &Value, svc: &mut Service) -> Result<(), String> {
    let key = (
        str_of(c, "destination").ok_or("a connection without a destination")?,
        str_of(c, "protocol").ok_or("a connection without a protocol")?,
        u16::try_from(num_of(c, "port")).map_err(|_| "a port out of range")?,
    );
    let mut usage = Usage::default();
    if let Some(u) = c.get("usage").and_then(Value::as_object) {
        for (k, v) in u {
            match (k.as_str(), v) {
                ("operations", Value::Object(ops)) => {
                    for (op, n) in ops {
                        usage.operations.insert(op.clone(), n.as_u64().unwrap_or(0));
                    }
                }
                ("targets", Value::Array(ts)) => {
                    usage
                        .targets
                        .extend(ts.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                (_, Value::Array(vs)) => {
                    usage.login.insert(
                        k.clone(),
                        vs.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                    );
                }
                _ => {}
            }
        }
    }
    svc.connections.insert(
        key,
        Connection {
            destination_type: str_of(c, "destination_type").unwrap_or_default(),
            addresses: strings(c, "addresses").collect(),
            category: str_of(c, "category").unwrap_or_default(),
            confidence: num_of(c, "confidence"),
            reason: str_of(c, "reason").unwrap_or_default(),
            first_seen: str_of(c, "first_seen").unwrap_or_default(),
            last_seen: str_of(c, "last_seen").unwrap_or_default(),
            count: num_of(c, "count"),
            usage,
        },
    );
    Ok(())
}
