//! The `rcp` service-map format against the Runtime Conditions Profile draft: profiles built
//! from events shaped as adi writes them, checked in the draft's validation layers
//! (structure, extensions that resolve, vocabulary defined exactly once, every applicable JSON
//! Schema), with the draft's first-party extensions (`tests/data/rcp/`, upstream copies) and
//! adi's messaging extension ([`rcp::MESSAGING_EXTENSION`]).

use std::collections::{BTreeMap, BTreeSet};

use adi_sinks::service_map::{rcp, MapBuilder, MapFormat, MapOptions};
use serde_json::{json, Value};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rcp");
const UPSTREAM: &[&str] = &[
    "common-integrations-v1alpha1.yaml",
    "env-configuration-v1alpha1.yaml",
    "aws-object-store-v1alpha1.yaml",
];

// ---------------------------------------------------------------------------------------------
// YAML

/// Every document of a YAML text, with the crate's own reader.
fn documents(text: &str) -> Vec<Value> {
    adi_sinks::service_map::yaml::parse_all(text).expect("YAML")
}

// ---------------------------------------------------------------------------------------------
// A validator of the draft's layers

/// The extensions we have, by id (`<uri>:<version>`).
fn extensions() -> BTreeMap<String, Value> {
    let mut texts: Vec<String> = UPSTREAM
        .iter()
        .map(|f| std::fs::read_to_string(format!("{DATA}/{f}")).expect("extension file"))
        .collect();
    texts.push(rcp::MESSAGING_EXTENSION.to_owned());
    texts.push(rcp::RPC_EXTENSION.to_owned());
    texts
        .iter()
        .map(|t| {
            let doc = documents(t).remove(0);
            let id = format!(
                "{}:{}",
                doc["metadata"]["uri"].as_str().expect("uri"),
                doc["metadata"]["version"].as_str().expect("version")
            );
            (id, doc)
        })
        .collect()
}

/// `ids` and their transitive dependencies, or the errors of those that do not resolve.
fn resolve<'a>(
    all: &'a BTreeMap<String, Value>,
    ids: &[&str],
    errors: &mut Vec<String>,
) -> Vec<(&'a str, &'a Value)> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    let mut out = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some((key, doc)) = all.get_key_value(&id) else {
            errors.push(format!("unknown-extension: {id}"));
            continue;
        };
        out.push((key.as_str(), doc));
        for d in strs(&doc["spec"]["dependencies"]) {
            todo.push(d.to_owned());
        }
    }
    out.sort_by_key(|(id, _)| *id);
    out
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn items<'a>(ext: &'a Value, list: &str) -> impl Iterator<Item = &'a Value> {
    ext["spec"][list].as_array().into_iter().flatten()
}

/// The values at a `fieldValues` path (`interface.operations[].method`).
fn values_at<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut here = vec![v];
    for seg in path.split('.') {
        let (key, list) = match seg.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (seg, false),
        };
        here = here
            .into_iter()
            .filter_map(|v| v.get(key))
            .flat_map(|v| match (list, v.as_array()) {
                (true, Some(a)) => a.iter().collect(),
                (true, None) => Vec::new(),
                (false, _) => vec![v],
            })
            .collect();
    }
    here
}

/// The validation of one profile: errors (`category: detail`) and, per condition, the ids of
/// the JSON Schemas that applied to it.
#[derive(Debug, Default)]
struct Report {
    errors: Vec<String>,
    applied: BTreeMap<String, Vec<String>>,
}

fn validate(profile: &Value) -> Report {
    let all = extensions();
    let mut r = Report::default();
    structure(profile, &mut r.errors);
    let ids = strs(&profile["extensions"]);
    let scope = resolve(&all, &ids, &mut r.errors);
    for (i, c) in profile["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = c["name"]
            .as_str()
            .map_or_else(|| format!("#{i}"), str::to_owned);
        let applied = condition(c, &scope, &mut r.errors);
        r.applied.insert(name, applied);
    }
    r
}

/// Layer 1: the profile's own fields.
fn structure(p: &Value, errors: &mut Vec<String>) {
    let mut err = |m: &str| errors.push(format!("structural: {m}"));
    let allowed: BTreeSet<&str> = [
        "apiVersion",
        "kind",
        "metadata",
        "workload",
        "extensions",
        "conditions",
    ]
    .into();
    for k in p.as_object().expect("a mapping").keys() {
        if !allowed.contains(k.as_str()) {
            err(&format!("unknown top-level field {k}"));
        }
    }
    if p["apiVersion"] != "runtimeconditions.io/v1alpha1" || p["kind"] != "RuntimeConditionsProfile"
    {
        err("apiVersion/kind");
    }
    for f in [&p["metadata"]["name"], &p["workload"]["uri"]] {
        if f.as_str().is_none_or(str::is_empty) {
            err("metadata.name and workload.uri must be non-empty strings");
        }
    }
    let exts = p["extensions"].as_array();
    let ids = strs(&p["extensions"]);
    if exts.is_none_or(|e| e.len() != ids.len())
        || ids.iter().collect::<BTreeSet<_>>().len() != ids.len()
    {
        err("extensions: a list of unique strings");
    }
    for id in &ids {
        let ok = id.rsplit_once(':').is_some_and(|(uri, v)| {
            (uri.starts_with("https://") || uri.starts_with("http://")) && !v.is_empty()
        });
        if !ok {
            err(&format!("extension id {id}"));
        }
    }
    let Some(conds) = p["conditions"].as_array() else {
        return err("conditions: a list");
    };
    let mut names = BTreeSet::new();
    for c in conds {
        if let Some(n) = c.get("name") {
            if n.as_str().is_none_or(str::is_empty) || !names.insert(n.as_str()) {
                err(&format!("condition name {n} empty or not unique"));
            }
        }
        if c["kind"].as_str().is_none() || c["interface"]["type"].as_str().is_none() {
            err("condition without kind or interface.type");
        }
        if c.get("optional").is_some_and(|o| !o.is_boolean()) {
            err("optional: a boolean");
        }
    }
}

/// How many of the extensions in scope define something.
fn defined(scope: &[(&str, &Value)], list: &str, matches: impl Fn(&Value) -> bool) -> usize {
    scope
        .iter()
        .map(|(_, e)| items(e, list).filter(|d| matches(d)).count())
        .sum()
}

fn once(n: usize, what: &str, errors: &mut Vec<String>) {
    match n {
        0 => errors.push(format!("unresolved-vocabulary: {what}")),
        1 => {}
        _ => errors.push(format!("vocabulary-conflict: {what} defined {n} times")),
    }
}

/// Layers 3 and 4 for one condition: its vocabulary, then its JSON Schemas. Returns the ids
/// of the schemas that applied.
fn condition(c: &Value, scope: &[(&str, &Value)], errors: &mut Vec<String>) -> Vec<String> {
    let (kind, itype) = (
        c["kind"].as_str().unwrap_or(""),
        c["interface"]["type"].as_str().unwrap_or(""),
    );
    once(
        defined(scope, "kinds", |d| d["name"] == kind),
        &format!("kind {kind}"),
        errors,
    );
    once(
        defined(scope, "interfaceTypes", |d| {
            d["name"] == itype && d["targetKind"] == kind
        }),
        &format!("interface type {kind}/{itype}"),
        errors,
    );
    for field in c["interface"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if field != "type" {
            let n = defined(scope, "interfaceFields", |d| {
                d["name"] == *field && d["targetKind"] == kind && d["targetType"] == itype
            });
            once(
                n,
                &format!("interface field {field} of {kind}/{itype}"),
                errors,
            );
        }
    }
    for field in c.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !["name", "optional", "kind", "interface"].contains(&field.as_str()) {
            let n = defined(scope, "conditionFields", |d| {
                d["name"] == *field
                    && (d["appliesToAllKinds"] == true
                        || strs(&d["appliesToKinds"]).contains(&kind))
                    && d.get("appliesToInterfaceTypes")
                        .is_none_or(|t| strs(t).contains(&itype))
            });
            once(n, &format!("condition field {field} of {kind}"), errors);
        }
    }
    field_values(c, kind, itype, scope, errors);
    schemas(c, kind, itype, scope, errors)
}

fn field_values(
    c: &Value,
    kind: &str,
    itype: &str,
    scope: &[(&str, &Value)],
    errors: &mut Vec<String>,
) {
    for (_, e) in scope {
        for fv in items(e, "fieldValues") {
            let applies =
                fv["targetKind"] == kind && fv.get("targetType").is_none_or(|t| t == itype);
            if !applies {
                continue;
            }
            let field = fv["field"].as_str().unwrap_or("");
            for v in values_at(c, field) {
                if !fv["values"].as_array().is_some_and(|vs| vs.contains(v)) {
                    errors.push(format!("semantic: {field} = {v} is not a listed value"));
                }
            }
        }
    }
}

/// Every JSON Schema whose scope keys all match the condition.
fn schemas(
    c: &Value,
    kind: &str,
    itype: &str,
    scope: &[(&str, &Value)],
    errors: &mut Vec<String>,
) -> Vec<String> {
    let mut applied = Vec::new();
    for (_, e) in scope {
        for s in items(e, "schemas") {
            let applies = s.get("appliesToKind").is_none_or(|k| k == kind)
                && s.get("appliesToInterfaceType").is_none_or(|t| t == itype);
            if !applies {
                continue;
            }
            let id = s["id"].as_str().expect("schema id");
            applied.push(id.to_owned());
            let v = jsonschema::validator_for(&s["schema"]).expect("a valid JSON Schema");
            for err in v.iter_errors(c) {
                errors.push(format!("semantic: {id}: {err} at {}", err.instance_path()));
            }
        }
    }
    applied.sort();
    applied
}

// ---------------------------------------------------------------------------------------------
// The extension definitions themselves

/// Checks one extension definition against the draft's rules (spec sections 6 and 7), with the
/// vocabulary of its dependencies in scope.
fn check_extension(id: &str, e: &Value, all: &BTreeMap<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut err = |m: String| errors.push(format!("{id}: {m}"));
    if e["apiVersion"] != "runtimeconditions.io/v1alpha1"
        || e["kind"] != "RuntimeConditionsExtensionDefinition"
    {
        err("apiVersion/kind".into());
    }
    let uri = e["metadata"]["uri"].as_str().unwrap_or("");
    if !uri.starts_with("https://") || e["metadata"]["version"].as_str().is_none_or(str::is_empty) {
        err("metadata.uri must be an absolute https URI, version non-empty".into());
    }
    let lists = [
        "dependencies",
        "kinds",
        "interfaceTypes",
        "conditionFields",
        "interfaceFields",
        "fieldValues",
        "schemas",
    ];
    let spec = e["spec"].as_object().cloned().unwrap_or_default();
    if spec.keys().any(|k| !lists.contains(&k.as_str()))
        || spec
            .values()
            .all(|v| v.as_array().is_none_or(Vec::is_empty))
    {
        err("spec: only the known lists, at least one item".into());
    }
    let mut dep_errors = Vec::new();
    let scope = resolve(all, &[id], &mut dep_errors);
    for d in dep_errors {
        err(format!("extension-dependency: {d}"));
    }
    let kinds: BTreeSet<&str> = scope
        .iter()
        .flat_map(|(_, x)| items(x, "kinds").filter_map(|k| k["name"].as_str()))
        .collect();
    let types: BTreeSet<(&str, &str)> = scope
        .iter()
        .flat_map(|(_, x)| items(x, "interfaceTypes"))
        .filter_map(|t| Some((t["targetKind"].as_str()?, t["name"].as_str()?)))
        .collect();
    for t in items(e, "interfaceTypes") {
        if !kinds.contains(t["targetKind"].as_str().unwrap_or("")) {
            err(format!("interface type {t} of an unknown kind"));
        }
    }
    for f in items(e, "interfaceFields").chain(items(e, "fieldValues")) {
        let (k, t) = (
            f["targetKind"].as_str().unwrap_or(""),
            f["targetType"].as_str(),
        );
        if !kinds.contains(k) || t.is_some_and(|t| !types.contains(&(k, t))) {
            err(format!("{f} targets an unknown kind or type"));
        }
    }
    for f in items(e, "interfaceFields") {
        if f["name"] == "type" {
            err("interface.type is a core field".into());
        }
    }
    for f in items(e, "conditionFields") {
        let core =
            ["name", "optional", "kind", "interface"].contains(&f["name"].as_str().unwrap_or(""));
        if core || (f["appliesToAllKinds"] != true && f.get("appliesToKinds").is_none()) {
            err(format!("condition field {f}"));
        }
    }
    for f in items(e, "fieldValues") {
        let vs = f["values"].as_array().cloned().unwrap_or_default();
        let unique: BTreeSet<String> = vs.iter().map(Value::to_string).collect();
        if vs.is_empty() || unique.len() != vs.len() {
            err(format!(
                "field values of {} must be unique and non-empty",
                f["field"]
            ));
        }
    }
    errors.extend(check_schemas(id, e, &kinds, &types));
    errors
}

fn check_schemas(
    id: &str,
    e: &Value,
    kinds: &BTreeSet<&str>,
    types: &BTreeSet<(&str, &str)>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut ids = BTreeSet::new();
    for s in items(e, "schemas") {
        let sid = s["id"].as_str().unwrap_or("");
        if sid.is_empty() || !ids.insert(sid) || s["description"].as_str().is_none_or(str::is_empty)
        {
            errors.push(format!(
                "{id}: schema {sid}: id unique and non-empty, description"
            ));
        }
        if s["schema"]["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
            errors.push(format!("{id}: schema {sid} is not JSON Schema 2020-12"));
        }
        if let Err(e) = jsonschema::meta::validate(&s["schema"]) {
            errors.push(format!("{id}: schema {sid} against the meta-schema: {e}"));
        }
        if let Err(e) = jsonschema::validator_for(&s["schema"]) {
            errors.push(format!("{id}: schema {sid} does not compile: {e}"));
        }
        let k = s["appliesToKind"].as_str();
        let t = s["appliesToInterfaceType"].as_str();
        if k.is_some_and(|k| !kinds.contains(k))
            || t.is_some_and(|t| {
                !types
                    .iter()
                    .any(|(tk, tt)| *tt == t && k.is_none_or(|k| k == *tk))
            })
        {
            errors.push(format!(
                "{id}: schema {sid} applies to an unknown kind or type"
            ));
        }
    }
    errors
}

#[test]
fn the_extension_definitions_are_valid() {
    let all = extensions();
    assert_eq!(all.len(), 5, "{:?}", all.keys());
    assert!(all.contains_key(rcp::MESSAGING));
    assert!(all.contains_key(rcp::RPC));
    for (id, e) in &all {
        let errors = check_extension(id, e, &all);
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // A kind or type defined twice in one scope is a conflict: ours are namespaced.
    let mut scope = Vec::new();
    let ids: Vec<&str> = all.keys().map(String::as_str).collect();
    let resolved = resolve(&all, &ids, &mut scope);
    assert!(scope.is_empty());
    for list in ["kinds", "interfaceTypes"] {
        let mut names = BTreeSet::new();
        for (_, e) in &resolved {
            for d in items(e, list) {
                assert!(
                    names.insert((d["name"].to_string(), d["targetKind"].to_string())),
                    "{d}"
                );
            }
        }
    }
}

/// A minimal condition of `kind`/`itype` that the schemas accept.
fn minimal(kind: &str, itype: &str) -> Value {
    let mut c = json!({"kind": kind, "interface": {"type": itype}});
    if (kind, itype) == ("api", "http") {
        c["interface"]["operations"] = json!([{"method": "GET", "path": "/"}]);
        c["interface"]["spec"] = json!({"format": "openapi", "uri": "https://example.invalid/a"});
    }
    if (kind, itype) == ("api", "adi.grpc") {
        c["interface"]["methods"] = json!([{"service": "a.B", "method": "C"}]);
    }
    c
}

/// Sets `path` (`a.b[].c`: into the first list item) to `v`.
fn set_at(c: &mut Value, path: &str, v: Value) {
    let mut here = c;
    let segs: Vec<&str> = path.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        here = match seg.strip_suffix("[]") {
            Some(key) => {
                let list = &mut here[key];
                if list.as_array().is_none_or(Vec::is_empty) {
                    *list = json!([{}]);
                }
                &mut list[0]
            }
            None if last => {
                here[*seg] = v;
                return;
            }
            None => {
                if here.get(*seg).is_none() {
                    here[*seg] = json!({});
                }
                &mut here[*seg]
            }
        };
    }
}

#[test]
fn every_listed_field_value_passes_the_schemas_and_others_fail() {
    let all = extensions();
    let ids: Vec<&str> = all.keys().map(String::as_str).collect();
    let scope = resolve(&all, &ids, &mut Vec::new());
    let mut checked = 0;
    for (_, e) in &scope {
        for fv in items(e, "fieldValues") {
            let field = fv["field"].as_str().expect("field");
            let (kind, itype) = (
                fv["targetKind"].as_str().expect("kind"),
                fv["targetType"].as_str().expect("type"),
            );
            // Alternatives need two entries; their values are the same as env's.
            if field.contains("alternatives") {
                continue;
            }
            for v in fv["values"].as_array().expect("values") {
                let mut c = minimal(kind, itype);
                set_at(&mut c, field, v.clone());
                if field.starts_with("interface.subjects") {
                    c["interface"]["subjects"][0]["name"] = json!("s");
                }
                if field.starts_with("configuration") {
                    c["configuration"]["env"][0]["name"] = json!("X");
                }
                let mut errors = Vec::new();
                schemas(&c, kind, itype, &scope, &mut errors);
                assert!(errors.is_empty(), "{field} = {v}: {errors:#?}");
                set_at(&mut c, field, json!("not-a-listed-value"));
                let mut errors = Vec::new();
                let applied = schemas(&c, kind, itype, &scope, &mut errors);
                assert!(
                    !errors.is_empty(),
                    "{field}: an unlisted value passed {applied:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 90, "{checked}");
}

#[test]
fn the_upstream_example_profiles_pass_this_validator() {
    for f in ["checkout-service-profile.yaml", "object-store-profile.yaml"] {
        let text = std::fs::read_to_string(format!("{DATA}/{f}")).expect("example");
        let r = validate(&documents(&text).remove(0));
        assert!(r.errors.is_empty(), "{f}: {:#?}", r.errors);
        assert!(
            r.applied.values().all(|a| a.len() >= 3),
            "{f}: {:?}",
            r.applied
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Profiles from events

/// An event of the traced process 5 (`orders`) on connection `flow` to 127.0.0.1:`port`.
fn event(flow: u64, port: u16, ts: u32, fields: Value) -> Value {
    let mut e = json!({"timestamp": format!("2026-12-03T10:00:{ts:02}.000000000Z"),
        "pid": 5, "comm": "python3", "cmdline": "python3 orders.py", "service": "orders",
        "source_ip": "127.0.0.1", "source_port": 40000 + flow, "dest_ip": "127.0.0.1",
        "dest_port": port, "flow_id": flow});
    for (k, v) in fields.as_object().expect("object") {
        e[k] = v.clone();
    }
    e
}

/// A call to `catalog` (watched, port 8080) and its answer.
fn call(flow: u64, method: &str, url: &str, body: &str, status: u16, answer: &str) -> [Value; 2] {
    let host = Some("127.0.0.1:8080");
    let mut c = call_to(flow, 8080, host, method, url, body, status, answer);
    c[0]["peer_service"] = json!("catalog");
    c
}

/// A call to port `port` with `Host` header `host`, and its answer.
#[expect(
    clippy::too_many_arguments,
    reason = "a test helper mirroring the event's fields"
)]
fn call_to(
    flow: u64,
    port: u16,
    host: Option<&str>,
    method: &str,
    url: &str,
    body: &str,
    status: u16,
    answer: &str,
) -> [Value; 2] {
    let headers = host.map_or_else(|| json!({}), |h| json!({ "Host": h }));
    let request = json!({"event_type": "http", "direction": "send", "method": method,
        "url": url, "headers": headers, "body": body, "truncated": false, "bytes": 100,
        "raw_payload": ""});
    let response = json!({"event_type": "http", "direction": "recv", "status_code": status,
        "headers": {}, "body": answer, "truncated": false, "latency_ms": 1.5, "bytes": 100,
        "raw_payload": ""});
    [
        event(flow, port, 1, request),
        event(flow, port, 2, response),
    ]
}

/// A client connection of `protocol` and its messages (`op`, `resource`).
fn connection(
    flow: u64,
    port: u16,
    protocol: &str,
    category: &str,
    summary: Value,
    messages: &[(&str, &str)],
) -> Vec<Value> {
    let mut out = vec![event(
        flow,
        port,
        3,
        json!({"event_type": "connection",
        "protocol": protocol, "category": category, "confidence": 99,
        "detection_reason": "handshake", "role": "client", "summary": summary,
        "direction": "send"}),
    )];
    for (op, resource) in messages {
        let mut m = json!({"event_type": "message", "protocol": protocol, "category": category,
            "kind": "message", "op": op, "direction": "send", "bytes": 10, "truncated": false});
        if !resource.is_empty() {
            m["resource"] = json!(resource);
        }
        out.push(event(flow, port, 4, m));
    }
    out
}

fn orders_events() -> Vec<Value> {
    let mut events = Vec::new();
    events.extend(call(
        1,
        "GET",
        "/items/7",
        "",
        200,
        r#"{"id":"7","name":"pen","price":2.5,"tags":["office"]}"#,
    ));
    events.extend(call(
        2,
        "GET",
        "/items/8",
        "",
        200,
        r#"{"id":"8","name":"ink","price":1,"tags":[],"discount":0.1}"#,
    ));
    events.extend(call(
        3,
        "GET",
        "/items/9",
        "",
        404,
        "<html>not found</html>",
    ));
    events.extend(call(
        4,
        "POST",
        "/items?dry_run=1",
        r#"{"name":"cup","qty":2}"#,
        201,
        r#"{"id":"10"}"#,
    ));
    events.extend(connection(
        10,
        5432,
        "postgres",
        "database",
        json!({"user": "app", "database": "shop"}),
        &[("query", "SELECT id FROM orders WHERE id = $1")],
    ));
    events.extend(connection(
        11,
        6379,
        "redis",
        "cache",
        json!({}),
        &[("GET", "cart:1")],
    ));
    events.extend(connection(
        12,
        4222,
        "nats",
        "message_bus",
        json!({"client_name": "orders"}),
        &[("CONNECT", ""), ("INFO", ""), ("PUB", "orders.created")],
    ));
    events.extend(connection(13, 443, "tls", "encrypted", json!({}), &[]));
    events
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const ORDERS_ENV: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://app:pw@127.0.0.1:5432/shop"),
    ("PGPORT", "5432"),
    ("PGDATABASE", "shop"),
    ("REDIS_HOST", "127.0.0.1"),
    ("NATS_URL", "nats://127.0.0.1:4222"),
    ("CATALOG_URL", "http://localhost:8080"),
    // Not tied to anything: the service's own port, paths, a secret, a bare address that
    // the cache kind has no property for, a host whose name fits two conditions, a name the
    // draft does not allow.
    ("PORT", "8000"),
    ("PATH", "/usr/local/bin:/usr/bin"),
    ("API_TOKEN", "<redacted>"),
    ("REDIS_ADDR", "127.0.0.1:6379"),
    ("DB_CACHE_HOST", "127.0.0.1"),
    ("weird.name", "nats://127.0.0.1:4222"),
];

fn build(events: &[Value], vars: &[(&str, &str)]) -> String {
    let mut m = MapBuilder::new(MapOptions {
        format: MapFormat::Rcp,
        ..MapOptions::default()
    });
    m.environment(5, env(vars));
    for e in events {
        m.add(e);
    }
    m.finish();
    m.render(MapFormat::Rcp, "T").expect("render")
}

fn expected_orders() -> Value {
    json!({
        "apiVersion": "runtimeconditions.io/v1alpha1",
        "kind": "RuntimeConditionsProfile",
        "metadata": {"name": "orders"},
        "workload": {"uri": "urn:adi:workload:orders"},
        "extensions": [
            "https://adi.dev/extensions/messaging:v1alpha1",
            "https://runtimeconditions.io/extensions/common-integrations:v1alpha1",
            "https://runtimeconditions.io/extensions/env-configuration:v1alpha1",
        ],
        "conditions": [
            {"name": "catalog", "kind": "api", "interface": {"type": "http", "operations": [
                {"method": "GET", "path": "/items/{id}", "responseSchema": {
                    "discount": "number", "id": "string", "name": "string", "price": "number",
                    "tags": ["string"]}},
                {"method": "POST", "path": "/items",
                 "requestBodySchema": {"name": "string", "qty": "number"},
                 "responseSchema": {"id": "string"}},
             ]},
             "configuration": {"env": [{"property": "baseUrl", "name": "CATALOG_URL"}]}},
            {"name": "nats", "kind": "adi.messaging", "interface": {"type": "adi.nats",
                "subjects": [{"name": "orders.created", "direction": "publish"}]},
             "configuration": {"env": [{"property": "url", "name": "NATS_URL"}]}},
            {"name": "postgres", "kind": "datastore",
             "interface": {"type": "relational", "engine": "postgres"},
             "configuration": {"env": [
                {"property": "database", "name": "PGDATABASE"},
                {"property": "port", "name": "PGPORT"},
                {"property": "url", "name": "DATABASE_URL", "sensitive": true},
             ]}},
            {"name": "redis", "kind": "cache",
             "interface": {"type": "key_value", "engine": "redis"},
             "configuration": {"env": [{"property": "hostname", "name": "REDIS_HOST"}]}},
        ],
    })
}

#[test]
fn a_service_profile_is_exact_and_passes_every_schema() {
    let text = build(&orders_events(), ORDERS_ENV);
    let docs = documents(&text);
    assert_eq!(docs.len(), 1, "{text}");
    assert_eq!(docs[0], expected_orders(), "{text}");
    // Only variable names are written, never a value.
    for (_, v) in ORDERS_ENV {
        assert!(!text.contains(v), "{v} in\n{text}");
    }
    for v in ["127.0.0.1", "5432", "shop", "8080", "4222"] {
        assert!(!text.contains(v), "{v} in\n{text}");
    }
    let r = validate(&docs[0]);
    assert!(r.errors.is_empty(), "{:#?}\n{text}", r.errors);
    let shape = "configuration-shape";
    let applied: BTreeMap<&str, Vec<&str>> = [
        (
            "catalog",
            vec![
                "api-http-interface",
                shape,
                "configuration-properties-api-http",
            ],
        ),
        (
            "nats",
            vec![
                shape,
                "configuration-properties-nats",
                "messaging-nats-interface",
            ],
        ),
        (
            "postgres",
            vec![
                shape,
                "configuration-properties-datastore-relational",
                "datastore-relational-interface",
            ],
        ),
        (
            "redis",
            vec![
                "cache-key-value-interface",
                shape,
                "configuration-properties-cache-key-value",
            ],
        ),
    ]
    .into_iter()
    .map(|(k, mut v)| {
        v.sort_unstable();
        (k, v)
    })
    .collect();
    let got: BTreeMap<&str, Vec<&str>> = r
        .applied
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(got, applied);
}

/// The orders profile with the value at JSON pointer `at` set (a new key, or a list item
/// replaced), and the errors it gets.
fn errors_after(at: &str, v: Value) -> Vec<String> {
    let mut p = expected_orders();
    let (parent, key) = at.rsplit_once('/').expect("a pointer");
    match p.pointer_mut(parent).expect("parent") {
        Value::Array(a) => a[key.parse::<usize>().expect("index")] = v,
        Value::Object(m) => {
            m.insert(key.to_owned(), v);
        }
        _ => panic!("{at} is inside a scalar"),
    }
    validate(&p).errors
}

#[test]
fn the_validator_rejects_what_the_draft_forbids() {
    // Conditions 0 catalog, 1 nats, 2 postgres, 3 redis.
    let op = "/conditions/0/interface/operations/0";
    let subject = "/conditions/1/interface/subjects/0";
    let cases = [
        (
            format!("{op}/extra"),
            json!(1),
            "semantic: api-http-interface:",
        ),
        (
            format!("{op}/method"),
            json!("BREW"),
            "semantic: api-http-interface:",
        ),
        (
            format!("{op}/responseSchema"),
            json!({"a": "non-json"}),
            "semantic: api-http-interface:",
        ),
        (
            "/conditions/2/interface/engine".to_owned(),
            json!("db2"),
            "semantic: datastore-relational-interface:",
        ),
        (
            "/conditions/3/interface/engine".to_owned(),
            json!("postgres"),
            "semantic: cache-key-value-interface:",
        ),
        (
            format!("{subject}/direction"),
            json!("both"),
            "semantic: messaging-nats-interface:",
        ),
        (
            format!("{subject}/payload"),
            json!("x"),
            "semantic: messaging-nats-interface:",
        ),
        (
            "/conditions/2/configuration/env/0/property".to_owned(),
            json!("vhost"),
            "semantic: configuration-properties-datastore-relational:",
        ),
        (
            "/conditions/3/configuration/env".to_owned(),
            json!([]),
            "semantic: configuration-shape:",
        ),
        (
            "/conditions/3/configuration/env/0/value".to_owned(),
            json!("127.0.0.1"),
            "semantic: configuration-shape:",
        ),
        (
            "/extensions".to_owned(),
            json!([rcp::COMMON_INTEGRATIONS, rcp::ENV_CONFIGURATION]),
            "unresolved-vocabulary: kind adi.messaging",
        ),
        (
            "/extensions/0".to_owned(),
            json!("https://example.invalid/x:v1"),
            "unknown-extension:",
        ),
        (
            "/conditions/1/name".to_owned(),
            json!("catalog"),
            "structural:",
        ),
        (
            "/conditions/1/interface/topics".to_owned(),
            json!([]),
            "unresolved-vocabulary: interface field topics",
        ),
    ];
    for (at, v, expected) in cases {
        let errors = errors_after(&at, v.clone());
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{at} = {v}: {errors:#?}"
        );
    }
}

fn every_protocol_events() -> Vec<Value> {
    let db = "database";
    let mut events = Vec::new();
    events.extend(connection(1, 5432, "postgres", db, json!({}), &[]));
    events.extend(connection(2, 5433, "postgres", db, json!({}), &[]));
    events.extend(connection(3, 3306, "mysql", db, json!({}), &[]));
    events.extend(connection(4, 1433, "mssql", db, json!({}), &[]));
    let mut mongo = connection(5, 27017, "mongodb", db, json!({}), &[("find", "orders")]);
    for e in &mut mongo {
        e["peer_service"] = json!("catalog-db");
    }
    events.extend(mongo);
    events.extend(connection(6, 6379, "redis", "cache", json!({}), &[]));
    events.extend(connection(7, 11211, "memcached", "cache", json!({}), &[]));
    let bus = "message_bus";
    let nats = [
        ("SUB", "payments.*"),
        ("MSG", "payments.settled"),
        ("SUB", "_INBOX.k2j3.*"),
    ];
    events.extend(connection(8, 4222, "nats", bus, json!({}), &nats));
    let kafka = [("Produce", ""), ("Fetch", "")];
    events.extend(connection(9, 9092, "kafka", bus, json!({}), &kafka));
    let amqp = [
        ("connection.open", "/"),
        ("exchange.declare", "orders"),
        ("basic.publish", "orders"),
        ("queue.declare", "amq.gen-Xa1"),
        ("basic.consume", "billing"),
    ];
    events.extend(connection(
        10,
        5672,
        "amqp",
        bus,
        json!({"vhost": "/"}),
        &amqp,
    ));
    events.extend(connection(11, 443, "tls", "encrypted", json!({}), &[]));
    events.extend(connection(12, 8443, "http2", "web", json!({}), &[]));
    let answer = r#"{"id":"ch_1","refunded":null,"items":[1,"a"]}"#;
    let host = Some("api.example.com");
    let body = r#"{"amount":1}"#;
    events.extend(call_to(
        20,
        443,
        host,
        "POST",
        "/v1/charges",
        body,
        200,
        answer,
    ));
    events.extend(call_to(21, 9090, None, "GET", "/healthz", "", 200, "ok"));
    let proxy = Some("proxy:3128");
    events.extend(call_to(
        22,
        3128,
        proxy,
        "CONNECT",
        "example.com:443",
        "",
        200,
        "",
    ));
    events
}

const EVERY_ENV: &[(&str, &str)] = &[
    ("AMQP_VHOST", "/"),
    ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9093"),
    ("MONGO_URL", "mongodb://u:pw@localhost:27017/orders"),
    ("PAYMENTS_API", "https://api.example.com"),
    ("MEMCACHED_SERVERS", "localhost:11211"),
    ("MYSQL_PASSWORD", "<redacted>"),
    ("POSTGRES_PORT", "5433"),
    ("SQLSERVER_URL", "sqlserver://127.0.0.1:1433;database=x"),
    (
        "NATS_SERVERS",
        "nats://127.0.0.1:4222,nats://127.0.0.1:4223",
    ),
];

fn text_of(v: &Value) -> &str {
    v.as_str().expect("a string")
}

/// A condition's interface in short: its engine, subjects or operations.
fn detail(i: &Value) -> String {
    match (i.get("engine"), i.get("subjects"), i.get("operations")) {
        (Some(e), _, _) => text_of(e).to_owned(),
        (_, Some(s), _) => s
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{}>{}", text_of(&s["direction"]), text_of(&s["name"])))
            .collect::<Vec<_>>()
            .join(","),
        (_, _, Some(ops)) => ops.to_string(),
        _ => i
            .get("methods")
            .map_or_else(|| "-".to_owned(), Value::to_string),
    }
}

/// Each condition as `name kind/type detail [property:NAME(! when sensitive)...]`.
fn summary(profile: &Value) -> Vec<String> {
    values_at(profile, "conditions[]")
        .iter()
        .map(|c| {
            let env: Vec<String> = values_at(c, "configuration.env[]")
                .iter()
                .map(|e| {
                    let s = if e["sensitive"] == true { "!" } else { "" };
                    format!("{}:{}{s}", text_of(&e["property"]), text_of(&e["name"]))
                })
                .collect();
            let (name, kind) = (text_of(&c["name"]), text_of(&c["kind"]));
            let itype = text_of(&c["interface"]["type"]);
            let detail = detail(&c["interface"]);
            format!("{name} {kind}/{itype} {detail} [{}]", env.join(" "))
        })
        .collect()
}

#[test]
fn every_protocol_becomes_a_valid_condition_or_none() {
    let text = build(&every_protocol_events(), EVERY_ENV);
    let docs = documents(&text);
    assert_eq!(docs.len(), 1, "{text}");
    let r = validate(&docs[0]);
    assert!(r.errors.is_empty(), "{:#?}\n{text}", r.errors);
    let ops = r#"[{"method":"POST","path":"/v1/charges","requestBodySchema":{"amount":"number"},"responseSchema":{"id":"string","refunded":"null"}}]"#;
    let amqp = "publish>billing,subscribe>billing,publish>orders,subscribe>orders";
    let nats = "subscribe>payments.*,subscribe>payments.settled";
    assert_eq!(
        summary(&docs[0]),
        [
            format!("amqp adi.messaging/adi.amqp {amqp} [vhost:AMQP_VHOST]"),
            format!("api.example.com api/http {ops} [baseUrl:PAYMENTS_API]"),
            "catalog-db datastore/document mongodb [url:MONGO_URL!]".to_owned(),
            r#"http api/http [{"method":"GET","path":"/healthz"}] []"#.to_owned(),
            "kafka adi.messaging/adi.kafka - [address:KAFKA_BOOTSTRAP_SERVERS]".to_owned(),
            "memcached cache/key_value memcached []".to_owned(),
            "mysql datastore/relational mysql []".to_owned(),
            format!("nats adi.messaging/adi.nats {nats} [url:NATS_SERVERS]"),
            "postgres-5432 datastore/relational postgres []".to_owned(),
            "postgres-5433 datastore/relational postgres [port:POSTGRES_PORT]".to_owned(),
            "redis cache/key_value redis []".to_owned(),
            "sqlserver datastore/relational sqlserver [url:SQLSERVER_URL]".to_owned(),
        ],
        "{text}"
    );
    // `"null"` stays a string in YAML.
    assert!(text.contains("refunded: \"null\""), "{text}");
}

/// A gRPC call (an `http` event pair of version 2 with its `grpc` facts) to port 50051.
fn grpc_call(flow: u64, method: &str, status: u16) -> [Value; 2] {
    let path = format!("/shop.Catalog/{method}");
    let grpc = json!({"service": "shop.Catalog", "method": method, "encoding": "protobuf",
                      "messages": [12]});
    let mut c = call_to(flow, 50051, None, "POST", &path, "", 200, "");
    for e in &mut c {
        e["version"] = json!("2");
        e["stream_id"] = json!(1);
        e["grpc"] = grpc.clone();
        e["peer_service"] = json!("catalog");
    }
    c[1]["grpc"]["status"] = json!(status);
    c
}

#[test]
fn grpc_calls_become_an_adi_grpc_condition() {
    let mut events = Vec::new();
    events.extend(grpc_call(1, "GetItem", 0));
    events.extend(grpc_call(2, "ListItems", 0));
    events.extend(grpc_call(3, "GetItem", 5));
    let text = build(&events, &[("CATALOG_GRPC_URL", "http://127.0.0.1:50051")]);
    let docs = documents(&text);
    assert_eq!(docs.len(), 1, "{text}");
    let r = validate(&docs[0]);
    assert!(r.errors.is_empty(), "{:#?}\n{text}", r.errors);
    let methods = r#"[{"method":"GetItem","service":"shop.Catalog"},{"method":"ListItems","service":"shop.Catalog"}]"#;
    assert_eq!(
        summary(&docs[0]),
        [format!(
            "catalog api/adi.grpc {methods} [baseUrl:CATALOG_GRPC_URL]"
        )],
        "{text}"
    );
    assert!(
        text.contains("https://adi.dev/extensions/rpc:v1alpha1"),
        "{text}"
    );
    // A method's calls are not HTTP operations too.
    assert!(!text.contains("operations"), "{text}");
}

#[test]
fn hostile_input_gives_valid_profiles() {
    let mut events = Vec::new();
    events.extend(call_to(
        1,
        80,
        Some("a b:99999"),
        "GET",
        "/x?y=1",
        "",
        200,
        "[[[]]]",
    ));
    events.extend(call_to(2, 80, Some(""), "BREW", "/pot", "", 418, "{}"));
    let odd = r#"{"...":"x"}"#;
    events.extend(call_to(
        3,
        81,
        Some("[::1]:81"),
        "PUT",
        "",
        "\u{fffd}",
        200,
        odd,
    ));
    let empty = json!({"database": ""});
    events.extend(connection(4, 0, "postgres", "database", empty, &[]));
    let pubs = [("PUB", ""), ("PUB", "\u{0}")];
    events.extend(connection(5, 4222, "nats", "message_bus", json!({}), &pubs));
    for e in &mut events {
        e["service"] = json!("weird service/é%");
    }
    let long = "x:1,".repeat(5000);
    let env: Vec<(&str, &str)> = vec![
        ("", "127.0.0.1"),
        ("_", ""),
        ("A", &long),
        ("B", "://"),
        ("C", "[::1]:81"),
        ("D", "http://[::1]:81/"),
        ("E", "postgres://:@:0/"),
        ("F", "\u{fffd}://\u{fffd}"),
    ];
    let text = build(&events, &env);
    let docs = documents(&text);
    assert_eq!(docs.len(), 1, "{text}");
    let uri = "urn:adi:workload:weird%20service/%C3%A9%25";
    assert_eq!(docs[0]["workload"]["uri"], uri);
    // The call to `[::1]:81` (its `Host` header) is configured by D.
    let http = &docs[0]["conditions"][1];
    assert_eq!(http["name"], "http", "{text}");
    assert_eq!(
        http["configuration"]["env"],
        json!([{"property": "baseUrl", "name": "D"}])
    );
    let r = validate(&docs[0]);
    assert!(r.errors.is_empty(), "{:#?}\n{text}", r.errors);
}

#[test]
fn services_are_profiles_in_order_and_an_empty_map_none() {
    assert_eq!(build(&[], &[]), "");
    let mut events = orders_events();
    for mut e in orders_events() {
        e["service"] = json!("billing");
        e["pid"] = json!(6);
        events.push(e);
    }
    let docs = documents(&build(&events, ORDERS_ENV));
    let names: Vec<&Value> = docs.iter().map(|d| &d["metadata"]["name"]).collect();
    assert_eq!(names, [&json!("billing"), &json!("orders")]);
    // billing's process has no environment known: no configuration.
    assert!(values_at(&docs[0], "conditions[].configuration").is_empty());
    assert_eq!(docs[1], expected_orders());
}

/// The profiles adi wrote for the live three-service demo (`bin/tests/live_services.rs`
/// checks that a live run writes exactly these) pass every layer of the draft's validation.
#[test]
fn the_live_demos_profiles_pass_every_schema() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bin/tests/data/demo-map.rcp.json"
    );
    let profiles: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(golden).expect("golden")).expect("json");
    assert_eq!(profiles.len(), 3);
    for p in &profiles {
        let r = validate(p);
        assert!(r.errors.is_empty(), "{:#?}\n{p:#}", r.errors);
    }
}
