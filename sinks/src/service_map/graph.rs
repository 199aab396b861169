//! The map as a picture: services and their destinations as nodes, one edge per (source,
//! destination, protocol) labelled with the protocol and how much went over it, in Mermaid
//! (renders on GitHub) or Graphviz DOT.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::Model;

/// One edge: how many requests (HTTP) or operations (others), and connections made.
#[derive(Default)]
struct Edge {
    requests: u64,
    connections: u64,
}

/// Edges by (source, destination, protocol).
type Edges<'a> = BTreeMap<(&'a str, &'a str, &'a str), Edge>;

/// The edges, and every node with whether it is watched.
fn edges(model: &Model) -> (Edges<'_>, BTreeMap<&str, bool>) {
    let mut edges: Edges<'_> = BTreeMap::new();
    let mut nodes: BTreeMap<&str, bool> = BTreeMap::new();
    for (source, s) in &model.services {
        nodes.insert(source, true);
        for ((dest, _, _), ep) in &s.endpoints {
            nodes.entry(dest).or_insert(false);
            let e = edges.entry((source, dest, "http")).or_default();
            e.requests += ep.variants.iter().map(|v| v.count).sum::<u64>() + ep.unanswered;
        }
        for ((dest, protocol, _), c) in &s.connections {
            nodes.entry(dest).or_insert(false);
            let e = edges.entry((source, dest, protocol)).or_default();
            e.connections += c.count;
            e.requests += c.usage.operations.values().sum::<u64>();
        }
    }
    (edges, nodes)
}

fn label(protocol: &str, e: &Edge) -> String {
    if protocol == "http" {
        format!("http: {} requests", e.requests)
    } else if e.requests > 0 {
        format!("{protocol}: {} operations", e.requests)
    } else {
        format!("{protocol}: {} connections", e.connections)
    }
}

/// Identifiers safe in both languages: `n0`, `n1`, ... in node-name order.
fn ids<'a>(nodes: &BTreeMap<&'a str, bool>) -> BTreeMap<&'a str, String> {
    nodes
        .keys()
        .enumerate()
        .map(|(i, n)| (*n, format!("n{i}")))
        .collect()
}

/// A label with the characters each language treats specially escaped.
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "'")
}

/// Mermaid `flowchart LR`: watched services as rectangles, other destinations as rounded
/// nodes.
pub fn mermaid(model: &Model) -> String {
    let (edges, nodes) = edges(model);
    let ids = ids(&nodes);
    let mut out = String::from("flowchart LR\n");
    for (name, watched) in &nodes {
        let (open, close) = if *watched { ("[", "]") } else { ("(", ")") };
        let _ = writeln!(out, "  {}{open}\"{}\"{close}", ids[name], quoted(name));
    }
    for ((src, dst, protocol), e) in &edges {
        let _ = writeln!(
            out,
            "  {} -->|\"{}\"| {}",
            ids[src],
            quoted(&label(protocol, e)),
            ids[dst]
        );
    }
    out
}

/// Graphviz DOT: watched services as boxes, other destinations as ellipses.
pub fn dot(model: &Model) -> String {
    let (edges, nodes) = edges(model);
    let ids = ids(&nodes);
    let mut out = String::from(
        "digraph services {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for (name, watched) in &nodes {
        let shape = if *watched { "box" } else { "ellipse" };
        let _ = writeln!(
            out,
            "  {} [label=\"{}\", shape={shape}];",
            ids[name],
            quoted(name)
        );
    }
    for ((src, dst, protocol), e) in &edges {
        let _ = writeln!(
            out,
            "  {} -> {} [label=\"{}\"];",
            ids[src],
            ids[dst],
            quoted(&label(protocol, e))
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model() -> Model {
        let mut m = Model::new(true);
        let base = json!({"pid":1,"comm":"python3","service":"web","direction":"send",
            "source_ip":"127.0.0.1","source_port":40000,"dest_ip":"127.0.0.1","dest_port":5432,
            "flow_id":1,"timestamp":"2026-12-03T10:00:00.000000000Z"});
        let mut c = base.clone();
        for (k, v) in json!({"event_type":"connection","protocol":"postgres",
            "category":"database","confidence":99,"detection_reason":"r","role":"client",
            "peer_process":"postgres"})
        .as_object()
        .expect("object")
        {
            c[k] = v.clone();
        }
        m.add(&c);
        let mut q = base.clone();
        for (k, v) in json!({"event_type":"message","protocol":"postgres",
            "category":"database","kind":"request","op":"query","resource":"SELECT 1"})
        .as_object()
        .expect("object")
        {
            q[k] = v.clone();
        }
        m.add(&q);
        m.add(&q);
        m
    }

    #[test]
    fn one_edge_per_destination_and_protocol() {
        let m = model();
        assert_eq!(
            mermaid(&m),
            "flowchart LR\n  n0(\"postgres\")\n  n1[\"web\"]\n  n1 -->|\"postgres: 2 operations\"| n0\n"
        );
        let d = dot(&m);
        assert!(
            d.contains("n1 -> n0 [label=\"postgres: 2 operations\"];"),
            "{d}"
        );
        assert!(d.contains("n0 [label=\"postgres\", shape=ellipse];"), "{d}");
        assert!(d.ends_with("}\n"));
    }
}
