//! The `observed` format: the `ObservedBehaviors` document (`adi.dev/v1alpha1`) that the seed
//! profiler writes upstream (`docs/service-map.md` names the files and commit followed).
//!
//! Workloads are the source services plus one inferred workload per destination that is not
//! a source (labelled `adi.dev/inferred: "true"`); behaviors are one per endpoint variant and
//! one per connection. Unlike upstream, everything is sorted (upstream writes Go map order),
//! a connection's source is its client (upstream takes whoever spoke first, so a NATS server
//! became its clients' source), and a second variant of one endpoint gets `~2` after its id
//! (upstream repeats the id).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::model::{Connection, Model};
use super::yaml::Node;

const ENGINE: &str = "observationengine/adi";

fn workload_id(name: &str) -> String {
    // `container/` is upstream's prefix for every workload, processes included.
    format!("workload:container/{name}")
}

fn evidence(first: &str, last: &str) -> Value {
    json!({"firstSeen": first, "lastSeen": last, "sources": [{"engineRef": ENGINE}]})
}

/// First and last seen of an inferred workload: over every behavior that reaches it.
#[derive(Default)]
struct Seen {
    first: String,
    last: String,
}

impl Seen {
    fn add(&mut self, first: &str, last: &str) {
        if self.first.is_empty() || first < self.first.as_str() {
            first.clone_into(&mut self.first);
        }
        if last > self.last.as_str() {
            last.clone_into(&mut self.last);
        }
    }
}

/// The document.
pub fn document(model: &Model, generated_at: &str) -> Node {
    let mut behaviors: Vec<(String, Node)> = Vec::new();
    let mut inferred: BTreeMap<String, Seen> = BTreeMap::new();
    for (source, s) in &model.services {
        for ((dest, method, path), ep) in &s.endpoints {
            let base = format!("behavior:{source}:http:{dest}:{method}:{path}");
            for (i, v) in ep.sorted_variants().into_iter().enumerate() {
                let id = if i == 0 {
                    base.clone()
                } else {
                    format!("{base}~{}", i + 1)
                };
                inferred
                    .entry(dest.clone())
                    .or_default()
                    .add(&v.first_seen, &v.last_seen);
                let mut facets = json!({
                    "protocol": {"name": "http"},
                    "interface": {"http": {
                        "method": method,
                        "path": path,
                        "requestSchema": v.request_schema,
                        "responseSchema": v.response_schema,
                    }},
                });
                // adi's addition: a gRPC call is named by its service and method too.
                if let Some((service, grpc_method)) = ep.grpc.then(|| grpc_method(path)).flatten() {
                    facets["protocol"] = json!({"name": "grpc"});
                    facets["interface"]["grpc"] =
                        json!({"service": service, "method": grpc_method});
                }
                let mut ev = evidence(&v.first_seen, &v.last_seen);
                ev["count"] = json!(v.count);
                ev["observerConfidence"] = json!(1.0);
                behaviors.push((id.clone(), behavior(&id, source, dest, facets, ev)));
            }
        }
        for ((dest, protocol, port), c) in &s.connections {
            let id = format!("behavior:{source}:tcp:{dest}:{port}:{protocol}");
            inferred
                .entry(dest.clone())
                .or_default()
                .add(&c.first_seen, &c.last_seen);
            let facets = connection_facets(protocol, *port, c);
            let mut ev = evidence(&c.first_seen, &c.last_seen);
            ev["count"] = json!(c.count);
            ev["observerConfidence"] = json!(1.0);
            behaviors.push((id.clone(), behavior(&id, source, dest, facets, ev)));
        }
    }
    behaviors.sort_by(|a, b| a.0.cmp(&b.0));
    let workloads = workloads(model, inferred);
    Node::Map(vec![
        ("apiVersion", json!("adi.dev/v1alpha1").into()),
        ("kind", json!("ObservedBehaviors").into()),
        (
            "metadata",
            json!({"name": metadata_name(generated_at)}).into(),
        ),
        (
            "spec",
            Node::Map(vec![
                ("generatedAt", json!(generated_at).into()),
                ("observationEngines", json!([{"ref": ENGINE}]).into()),
                ("environment", json!({"observed": "local"}).into()),
                ("workloads", Node::List(workloads)),
                (
                    "behaviors",
                    Node::List(behaviors.into_iter().map(|(_, b)| b).collect()),
                ),
            ]),
        ),
    ])
}

/// One workload per source service, then one per destination that is none (inferred), sorted
/// by id; with upstream's `software.image` and every container label when known.
fn workloads(model: &Model, inferred: BTreeMap<String, Seen>) -> Vec<Node> {
    let mut workloads: BTreeMap<String, Node> = BTreeMap::new();
    // Upstream's fields: `software.image` and every container label, when known.
    let container = |name: &str, inferred: bool| {
        let w = model.workloads.get(name);
        let mut fields: Vec<(&'static str, Node)> = Vec::new();
        if let Some(w) = w.filter(|w| !w.image.is_empty()) {
            fields.push(("software", json!({"image": w.image}).into()));
        }
        let mut labels = w.map(|w| w.labels.clone()).unwrap_or_default();
        if inferred {
            labels.insert("adi.dev/inferred".to_owned(), "true".to_owned());
        }
        if !labels.is_empty() {
            fields.push(("labels", json!(labels).into()));
        }
        fields
    };
    for (name, s) in &model.services {
        let mut node = vec![
            ("id", json!(workload_id(name)).into()),
            ("displayName", json!(name).into()),
        ];
        node.extend(container(name, false));
        node.push(("evidence", evidence(&s.first_seen, &s.last_seen).into()));
        workloads.insert(workload_id(name), Node::Map(node));
    }
    for (name, seen) in inferred {
        let id = workload_id(&name);
        if workloads.contains_key(&id) {
            continue;
        }
        let mut node = vec![
            ("id", json!(id).into()),
            ("displayName", json!(name).into()),
        ];
        node.extend(container(&name, true));
        node.push(("evidence", evidence(&seen.first, &seen.last).into()));
        workloads.insert(id, Node::Map(node));
    }
    workloads.into_values().collect()
}

/// `adi-local-2026-12-03t101500z` from `2026-12-03T10:15:00.123Z`.
fn metadata_name(generated_at: &str) -> String {
    let digits: String = generated_at
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    match digits.split_once('T') {
        Some((d, t)) if d.len() == 8 && t.len() == 6 => {
            format!("adi-local-{}-{}-{}t{t}z", &d[..4], &d[4..6], &d[6..])
        }
        _ => "adi-local".to_owned(),
    }
}

fn behavior(id: &str, source: &str, dest: &str, facets: Value, evidence: Value) -> Node {
    Node::Map(vec![
        ("id", json!(id).into()),
        ("sourceRef", json!(workload_id(source)).into()),
        (
            "destination",
            json!({"workloadRef": workload_id(dest)}).into(),
        ),
        ("facets", facets.into()),
        ("evidence", evidence.into()),
    ])
}

/// Protocol, interface (adi's additions: what the connection is used for) and network.
fn connection_facets(protocol: &str, port: u16, c: &Connection) -> Value {
    #[expect(clippy::cast_precision_loss, reason = "a confidence of 0 to 100")]
    let confidence = c.confidence as f64 / 100.0;
    let mut facets = json!({
        "protocol": {
            "name": protocol,
            "category": c.category,
            "classificationConfidence": confidence,
            "classificationReason": c.reason,
        },
        "network": {"transport": "tcp", "port": port},
    });
    if let Some(address) = c.addresses.iter().next() {
        let ip = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(ip, _)| ip);
        facets["network"]["address"] = json!(ip.trim_matches(['[', ']']));
    }
    if let Some(usage) = c.usage.to_json() {
        facets["interface"] = json!({ "usage": usage });
    }
    facets
}

/// The service and method of a gRPC path, `/package.Service/Method`.
pub(crate) fn grpc_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}
