//! The `rcp` format: one `RuntimeConditionsProfile` (`runtimeconditions.io/v1alpha1`, the
//! CNCF TAG Developer Experience draft) per source service. Each profile lists the service's
//! external dependencies as conditions: the HTTP APIs it calls, the datastores, caches and
//! message buses it uses, and the environment variables that configure them
//! (`docs/notes-service-map-formats.md` section 2).
//!
//! A profile states requirements, not an environment: no address, database name, user or
//! variable value is ever written, only variable names. A destination known only by its
//! address is named after its engine or protocol; a port appears only where two conditions
//! would otherwise share a name (`postgres-5433`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use adi_core::redact::is_secret_name;
use serde_json::{json, Value};

use super::model::{Connection, Endpoint, Model, Service, Usage};
use super::schema;
use super::yaml::Node;

/// The profile's `apiVersion`.
pub const API_VERSION: &str = "runtimeconditions.io/v1alpha1";
/// The profile's `kind`.
pub const KIND: &str = "RuntimeConditionsProfile";
/// `workload.uri` is required, and adi cannot know a repository URL: the default is this
/// prefix and the service name (percent-encoded where a URN needs it).
pub const WORKLOAD_URI_PREFIX: &str = "urn:adi:workload:";
/// The first-party extension of `api`, `datastore` and `cache`.
pub const COMMON_INTEGRATIONS: &str =
    "https://runtimeconditions.io/extensions/common-integrations:v1alpha1";
/// The first-party extension of the `configuration` field.
pub const ENV_CONFIGURATION: &str =
    "https://runtimeconditions.io/extensions/env-configuration:v1alpha1";
/// adi's extension of `adi.messaging` ([`MESSAGING_EXTENSION`]).
pub const MESSAGING: &str = "https://adi.dev/extensions/messaging:v1alpha1";
/// The definition of [`MESSAGING`]: upstream has no messaging vocabulary, so adi ships its own
/// (`RuntimeConditionsExtensionDefinition` YAML) for consumers to load beside the
/// first-party ones.
pub const MESSAGING_EXTENSION: &str = include_str!("adi-messaging-v1alpha1.yaml");
/// adi's extension of `api` for RPC APIs: interface type `adi.grpc` ([`RPC_EXTENSION`]).
pub const RPC: &str = "https://adi.dev/extensions/rpc:v1alpha1";
/// The definition of [`RPC`]: the first-party `api` has only `http`.
pub const RPC_EXTENSION: &str = include_str!("adi-rpc-v1alpha1.yaml");

/// The methods `api`/`http` operations may have; calls with others (`CONNECT`, WebDAV) are
/// left out.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];
/// Deepest body schema node converted; deeper ones (only from a hand-edited map) are dropped.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Longest environment value examined: longer ones are not addresses or names.
const MAX_VALUE_LEN: usize = 4096;
/// Most URLs read from one environment value.
const MAX_URLS: usize = 16;

/// Messaging operations that publish, and that subscribe (NATS, AMQP 0-9-1, Kafka).
const PUBLISHING: &[&str] = &["PUB", "HPUB", "basic.publish", "Produce"];
const SUBSCRIBING: &[&str] = &[
    "SUB",
    "MSG",
    "HMSG",
    "basic.consume",
    "basic.get",
    "basic.deliver",
    "Fetch",
    "ShareFetch",
];

/// One profile document per source service, sorted by service.
pub fn documents(model: &Model) -> Vec<Node> {
    let envs = model.service_environments();
    model
        .services
        .iter()
        .map(|(name, s)| {
            let image = model.workloads.get(name).map(|w| w.image.as_str());
            profile(name, s, image, envs.get(name.as_str()))
        })
        .collect()
}

/// A condition before it is named and written.
struct Condition {
    /// The destination's name, or its engine when it has only an address.
    base: String,
    /// The engine or protocol: the first suffix on a name clash.
    label: &'static str,
    /// The server port: the second suffix on a name clash.
    port: Option<u16>,
    kind: &'static str,
    itype: &'static str,
    /// The extension defining `kind` and `itype`.
    extension: &'static str,
    /// `interface`'s fields after `type`.
    fields: Vec<(&'static str, Node)>,
    /// What configuration inference looks for in the environment.
    target: Target,
}

/// A destination as environment values may name it.
#[derive(Default)]
struct Target {
    /// `(host, port)`: the server's IPs, `localhost` for loopback ones, and the destination's
    /// own name when it is a host name.
    endpoints: BTreeSet<(String, u16)>,
    ports: BTreeSet<u16>,
    /// Lower-case words a variable's name must contain for a bare host, port, database or
    /// user value to count (`PGPORT`, `REDIS_HOST`): such values are too common to trust
    /// alone.
    hints: Vec<String>,
    databases: BTreeSet<String>,
    users: BTreeSet<String>,
    vhosts: BTreeSet<String>,
}

fn profile(
    name: &str,
    s: &Service,
    image: Option<&str>,
    env: Option<&BTreeMap<&str, &str>>,
) -> Node {
    let mut conds = http_conditions(s);
    conds.extend(grpc_conditions(s));
    conds.extend(
        s.connections
            .iter()
            .filter_map(|((dest, protocol, port), c)| {
                connection_condition(dest, protocol, *port, c)
            }),
    );
    let names = unique_names(&conds);
    let configs = match env {
        Some(env) => configurations(&conds, env),
        None => conds.iter().map(|_| BTreeMap::new()).collect(),
    };
    let mut extensions = BTreeSet::new();
    let mut rendered: Vec<(String, Node)> = Vec::new();
    for ((c, name), config) in conds.into_iter().zip(names).zip(configs) {
        extensions.insert(c.extension);
        if !config.is_empty() {
            extensions.insert(ENV_CONFIGURATION);
        }
        rendered.push((name.clone(), condition(name, c, config)));
    }
    rendered.sort_by(|a, b| a.0.cmp(&b.0));
    // `metadata.name` must not be empty (a capture's client with no address).
    let metadata_name = if name.is_empty() { "unknown" } else { name };
    Node::Map(vec![
        ("apiVersion", json!(API_VERSION).into()),
        ("kind", json!(KIND).into()),
        (
            "metadata",
            Node::Map(vec![("name", json!(metadata_name).into())]),
        ),
        ("workload", workload(metadata_name, image)),
        ("extensions", json!(extensions).into()),
        (
            "conditions",
            Node::List(rendered.into_iter().map(|(_, n)| n).collect()),
        ),
    ])
}

/// The workload: its container image when it runs in one (`oci://REPOSITORY`, the tag or
/// digest as its `version`), else `urn:adi:workload:<service>`.
fn workload(service: &str, image: Option<&str>) -> Node {
    let Some(image) = image.filter(|i| !i.is_empty()) else {
        return Node::Map(vec![("uri", json!(workload_uri(service)).into())]);
    };
    let (repository, version) = split_image(image);
    let mut m = vec![("uri", json!(format!("oci://{repository}")).into())];
    if let Some(v) = version {
        m.push(("version", json!(v).into()));
    }
    Node::Map(m)
}

/// `registry/repo:tag` -> (`registry/repo`, `tag`); a digest (`@sha256:...`) is the version
/// too; a port in the registry is not a tag.
fn split_image(image: &str) -> (&str, Option<&str>) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, Some(digest));
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !tag.is_empty() => (repo, Some(tag)),
        _ => (image, None),
    }
}

/// `urn:adi:workload:<service>`, with the bytes a URN's name may not hold percent-encoded.
fn workload_uri(service: &str) -> String {
    let mut out = String::from(WORKLOAD_URI_PREFIX);
    for b in service.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `(property, name)` -> sensitive.
type Config = BTreeMap<(&'static str, String), bool>;

fn condition(name: String, c: Condition, config: Config) -> Node {
    let mut iface = vec![("type", json!(c.itype).into())];
    iface.extend(c.fields);
    let mut m = vec![
        ("name", json!(name).into()),
        ("kind", json!(c.kind).into()),
        ("interface", Node::Map(iface)),
    ];
    if !config.is_empty() {
        let env = config
            .into_iter()
            .map(|((property, var), sensitive)| {
                let mut e = vec![
                    ("property", json!(property).into()),
                    ("name", json!(var).into()),
                ];
                if sensitive {
                    e.push(("sensitive", json!(true).into()));
                }
                Node::Map(e)
            })
            .collect();
        m.push(("configuration", Node::Map(vec![("env", Node::List(env))])));
    }
    Node::Map(m)
}

/// One `api`/`http` condition per destination, one operation per (method, path). A
/// destination none of whose calls has a standard method gives none (`operations` would be
/// empty, which the schema forbids).
fn http_conditions(s: &Service) -> Vec<Condition> {
    let mut by_dest: BTreeMap<&str, Vec<(&str, &str, &Endpoint)>> = BTreeMap::new();
    for ((dest, method, path), ep) in s.endpoints.iter().filter(|(_, ep)| !ep.grpc) {
        by_dest
            .entry(dest)
            .or_default()
            .push((method.as_str(), path.as_str(), ep));
    }
    let mut out = Vec::new();
    for (dest, eps) in by_dest {
        let operations: Vec<Node> = eps
            .iter()
            .filter_map(|(method, path, ep)| operation(method, path, ep))
            .collect();
        if operations.is_empty() {
            continue;
        }
        let addresses = eps.iter().flat_map(|(_, _, ep)| &ep.addresses);
        let external = eps
            .iter()
            .any(|(_, _, ep)| ep.destination_type == "external");
        let mut target = target(dest, addresses, external);
        let port = host_port(dest)
            .and_then(|(_, p)| p)
            .or_else(|| target.ports.first().copied());
        target.hints.extend(name_words(dest));
        out.push(Condition {
            base: display_name(dest).unwrap_or_else(|| "http".to_owned()),
            label: "http",
            port,
            kind: "api",
            itype: "http",
            extension: COMMON_INTEGRATIONS,
            fields: vec![("operations", Node::List(operations))],
            target,
        });
    }
    out
}

/// One `api`/`adi.grpc` condition per destination of gRPC calls, one entry per (service,
/// method) called.
fn grpc_conditions(s: &Service) -> Vec<Condition> {
    let mut by_dest: BTreeMap<&str, Vec<(&str, &Endpoint)>> = BTreeMap::new();
    for ((dest, _, path), ep) in s.endpoints.iter().filter(|(_, ep)| ep.grpc) {
        by_dest.entry(dest).or_default().push((path.as_str(), ep));
    }
    let mut out = Vec::new();
    for (dest, eps) in by_dest {
        let methods: BTreeSet<(&str, &str)> = eps
            .iter()
            .filter_map(|(path, _)| super::observed::grpc_method(path))
            .collect();
        if methods.is_empty() {
            continue;
        }
        let methods = methods
            .into_iter()
            .map(|(service, method)| json!({"service": service, "method": method}).into())
            .collect();
        let addresses = eps.iter().flat_map(|(_, ep)| &ep.addresses);
        let external = eps.iter().any(|(_, ep)| ep.destination_type == "external");
        let mut target = target(dest, addresses, external);
        let port = host_port(dest)
            .and_then(|(_, p)| p)
            .or_else(|| target.ports.first().copied());
        target.hints.extend(name_words(dest));
        target.hints.push("grpc".to_owned());
        out.push(Condition {
            base: display_name(dest).unwrap_or_else(|| "grpc".to_owned()),
            label: "grpc",
            port,
            kind: "api",
            itype: "adi.grpc",
            extension: RPC,
            fields: vec![("methods", Node::List(methods))],
            target,
        });
    }
    out
}

/// One operation, its body schemas merged over the endpoint's variants.
fn operation(method: &str, path: &str, ep: &Endpoint) -> Option<Node> {
    if !METHODS.contains(&method) || path.is_empty() {
        return None;
    }
    let mut m = vec![
        ("method", json!(method).into()),
        ("path", json!(path).into()),
    ];
    if let Some(s) = merged_schema(ep.variants.iter().map(|v| &v.request_schema)) {
        m.push(("requestBodySchema", s.into()));
    }
    if let Some(s) = merged_schema(ep.variants.iter().map(|v| &v.response_schema)) {
        m.push(("responseSchema", s.into()));
    }
    Some(Node::Map(m))
}

/// The variants' body schemas as one simpleSchema: empty and non-JSON bodies are left out,
/// the rest merged as the seed merges shapes (objects unite their keys, so a key seen in one
/// variant only is kept), then converted by [`simple`]. `None` when nothing is left.
fn merged_schema<'a>(schemas: impl Iterator<Item = &'a Value>) -> Option<Value> {
    schemas
        .filter(|s| !s.is_null() && s.as_str() != Some("non-json"))
        .cloned()
        .reduce(schema::merge)
        .and_then(|s| simple(&s, 0))
}

/// A seed body schema in the draft's simpleSchema grammar, or `None` where it has no
/// equivalent: unions (`number|string`: a value of either type, which simpleSchema cannot
/// say), empty arrays (`[]`: the element type is unknown), depth-capped `object`/`array`,
/// `non-json`. Inside an object such a node drops its key (the `...: N more` key of a wide
/// object too), inside an array the array; at the top the whole schema. Dropping says less
/// than was seen, never something that was not.
fn simple(v: &Value, depth: usize) -> Option<Value> {
    if depth > MAX_SCHEMA_DEPTH {
        return None;
    }
    match v {
        Value::String(s) => matches!(
            s.as_str(),
            "string" | "number" | "integer" | "boolean" | "null"
        )
        .then(|| v.clone()),
        Value::Object(m) => Some(Value::Object(
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), simple(v, depth + 1)?)))
                .collect(),
        )),
        Value::Array(items) => match items.as_slice() {
            [one] => Some(Value::Array(vec![simple(one, depth + 1)?])),
            _ => None,
        },
        _ => None,
    }
}

/// The vocabulary of a protocol: kind, interface type, engine (datastores and caches) and the
/// extension defining them.
fn vocabulary(
    protocol: &str,
) -> Option<(
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
)> {
    let common = |kind, itype, engine| Some((kind, itype, Some(engine), COMMON_INTEGRATIONS));
    match protocol {
        "postgres" => common("datastore", "relational", "postgres"),
        // adi does not tell MariaDB from MySQL.
        "mysql" => common("datastore", "relational", "mysql"),
        "mssql" => common("datastore", "relational", "sqlserver"),
        "mongodb" => common("datastore", "document", "mongodb"),
        "redis" => common("cache", "key_value", "redis"),
        "memcached" => common("cache", "key_value", "memcached"),
        "nats" => Some(("adi.messaging", "adi.nats", None, MESSAGING)),
        "kafka" => Some(("adi.messaging", "adi.kafka", None, MESSAGING)),
        "amqp" => Some(("adi.messaging", "adi.amqp", None, MESSAGING)),
        // TLS hides the protocol (unless its plaintext was read: then it is the protocol
        // inside); HTTP/2 calls are endpoints, not connections; anything else has no
        // first-party or adi vocabulary.
        _ => None,
    }
}

/// Words of variable names that point at an engine (`PGHOST`, `DB_PORT`, `RABBITMQ_URL`).
fn engine_hints(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "postgres" => &["postgres", "pg", "psql", "db", "database", "sql"],
        "mysql" => &["mysql", "mariadb", "db", "database", "sql"],
        "mssql" => &["mssql", "sqlserver", "db", "database", "sql"],
        "mongodb" => &["mongo", "db", "database"],
        "redis" => &["redis", "cache"],
        "memcached" => &["memcache", "cache"],
        "nats" => &["nats", "broker"],
        "kafka" => &["kafka", "broker", "bootstrap"],
        "amqp" => &["amqp", "rabbit", "mq", "broker"],
        _ => &[],
    }
}

/// The condition of a non-HTTP connection; `None` for a protocol with no vocabulary.
fn connection_condition(
    dest: &str,
    protocol: &str,
    port: u16,
    c: &Connection,
) -> Option<Condition> {
    let (kind, itype, engine, extension) = vocabulary(protocol)?;
    let label = engine.unwrap_or_else(|| itype.trim_start_matches("adi."));
    let mut fields = Vec::new();
    if let Some(engine) = engine {
        fields.push(("engine", json!(engine).into()));
    } else {
        let subjects = subjects(&c.usage);
        if !subjects.is_empty() {
            fields.push(("subjects", Node::List(subjects)));
        }
    }
    let mut target = target(dest, &c.addresses, c.destination_type == "external");
    target.ports.insert(port);
    target
        .hints
        .extend(engine_hints(protocol).iter().map(|h| (*h).to_owned()));
    target.hints.extend(name_words(dest));
    let login = |k: &str| c.usage.login.get(k).cloned().unwrap_or_default();
    target.databases = login("database");
    target.users = login("user");
    target.vhosts = login("vhost");
    Some(Condition {
        base: display_name(dest).unwrap_or_else(|| label.to_owned()),
        label,
        port: (port != 0).then_some(port),
        kind,
        itype,
        extension,
        fields,
        target,
    })
}

/// The subjects of a messaging connection: its targets (NATS subjects, AMQP exchanges and
/// queues; Kafka requests name none), less routing keys, the AMQP virtual host
/// (`connection.open` names it), NATS reply inboxes (`_INBOX.…`) and AMQP server-named
/// queues (`amq.gen-…`), which are per-connection and random.
///
/// Usage does not tie a target to the operation that named it, so the direction comes from
/// the operations seen: `publish` when any published (PUB, HPUB, basic.publish, Produce),
/// `subscribe` when any subscribed or received (SUB, MSG, basic.consume, basic.deliver,
/// Fetch...). A connection that did both lists each subject in both directions: a superset
/// of what it needs, never less. Neither seen: no subjects.
fn subjects(usage: &Usage) -> Vec<Node> {
    let seen = |ops: &[&str]| usage.operations.keys().any(|o| ops.contains(&o.as_str()));
    let directions: Vec<&str> = [
        (seen(PUBLISHING), "publish"),
        (seen(SUBSCRIBING), "subscribe"),
    ]
    .into_iter()
    .filter_map(|(seen, d)| seen.then_some(d))
    .collect();
    let vhosts = usage.login.get("vhost");
    let mut out = Vec::new();
    for t in &usage.targets {
        let skip = t.is_empty()
            || t.starts_with("routing_key:")
            || t.starts_with("_INBOX.")
            || t.starts_with("amq.gen-")
            || vhosts.is_some_and(|v| v.contains(t));
        if skip {
            continue;
        }
        for d in &directions {
            out.push(Node::Map(vec![
                ("name", json!(t).into()),
                ("direction", json!(d).into()),
            ]));
        }
    }
    out
}

/// `host` and optional port of `host[:port]` or `[v6][:port]`; a bare IPv6 address has no
/// port. `None` when a port is given but is no port.
fn host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if host.is_empty() {
            return None;
        }
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match s.split_once(':') {
        Some((host, port)) if !port.contains(':') => Some((host, Some(port.parse().ok()?))),
        _ => Some((s, None)),
    }
    .filter(|(h, _)| !h.is_empty())
}

/// Whether `s` is an IP address or `localhost`: a value of one environment only.
fn is_address(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || s.eq_ignore_ascii_case("localhost")
}

/// Whether `s` can be a DNS host name (a compose service, a `Host` header's name).
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// The condition's name for a destination: its service or host name, without a port.
/// `None` for an address (`127.0.0.1:5432`), which must not appear in a profile.
fn display_name(dest: &str) -> Option<String> {
    let host = match host_port(dest) {
        Some((h, Some(_))) => h,
        _ => dest,
    };
    (!dest.is_empty() && !is_address(host) && !is_address(dest)).then(|| host.to_owned())
}

/// The lower-case words of a destination's name, as hints for variable names (`catalog` for
/// `CATALOG_HOST`).
fn name_words(dest: &str) -> Vec<String> {
    let Some(name) = display_name(dest) else {
        return Vec::new();
    };
    // The first label of a DNS name: `api` of `api.example.com`, not `com`.
    let label = name.split('.').next().unwrap_or(&name);
    label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() >= 2 && !w.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The `(host, port)` pairs that name a destination: its addresses (`ip:port`), `localhost`
/// beside loopback ones, and its own name when that is an address, a dotted host name (a
/// `Host` header's), or any host name for a destination elsewhere. A single word naming a
/// destination on this host is its program or service (`postgres`), not a host name.
fn target<'a>(
    dest: &str,
    addresses: impl IntoIterator<Item = &'a String>,
    external: bool,
) -> Target {
    let mut t = Target::default();
    for a in addresses {
        let Some((ip, Some(port))) = host_port(a) else {
            continue;
        };
        t.ports.insert(port);
        t.endpoints.insert((ip.to_ascii_lowercase(), port));
        if ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            t.endpoints.insert(("localhost".to_owned(), port));
        }
    }
    // A `Host` header may name the server otherwise than the connection did (a proxy).
    let named =
        |h: &str| (is_host_name(h) && (external || h.contains('.'))) || h.parse::<IpAddr>().is_ok();
    if let Some((host, port)) = host_port(dest).filter(|(h, _)| named(h)) {
        let host = host.to_ascii_lowercase();
        match port {
            Some(p) => {
                t.endpoints.insert((host, p));
            }
            None => {
                for p in t.ports.clone() {
                    t.endpoints.insert((host.clone(), p));
                }
            }
        }
    }
    t
}

/// Condition names: each its base name; bases shared by several conditions get `-<label>`
/// when their label (engine, protocol) is theirs alone in the group, else `-<port>` when
/// the port is, else both. Any name still taken then gets `-2`, `-3`... in order.
fn unique_names(conds: &[Condition]) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in conds.iter().enumerate() {
        groups.entry(c.base.as_str()).or_default().push(i);
    }
    let mut names: Vec<String> = conds.iter().map(|c| c.base.clone()).collect();
    for members in groups.values().filter(|m| m.len() > 1) {
        for &i in members {
            let c = &conds[i];
            let alone = |same: &dyn Fn(&Condition) -> bool| {
                members.iter().filter(|&&j| same(&conds[j])).count() == 1
            };
            let port = c.port.map_or_else(|| "0".to_owned(), |p| p.to_string());
            names[i] = if alone(&|o| o.label == c.label) {
                format!("{}-{}", c.base, c.label)
            } else if alone(&|o| o.port == c.port) {
                format!("{}-{port}", c.base)
            } else {
                format!("{}-{}-{port}", c.base, c.label)
            };
        }
    }
    let mut taken = BTreeSet::new();
    for name in &mut names {
        let mut n = 2;
        let base = name.clone();
        while !taken.insert(name.clone()) {
            *name = format!("{base}-{n}");
            n += 1;
        }
    }
    names
}

/// Properties each kind and type allows (env-configuration's `fieldValues`, and ours for
/// messaging).
fn allowed(kind: &str, itype: &str) -> &'static [&'static str] {
    const HTTP: &[&str] = &[
        "url", "baseUrl", "hostname", "port", "scheme", "username", "password", "token", "tls",
    ];
    const DATASTORE: &[&str] = &[
        "url", "hostname", "port", "scheme", "username", "password", "database", "tls",
    ];
    const CACHE: &[&str] = &[
        "url", "hostname", "port", "scheme", "username", "password", "database", "token", "tls",
    ];
    const MESSAGING_PROPS: &[&str] = &[
        "url", "address", "hostname", "port", "scheme", "username", "password", "token", "tls",
    ];
    const AMQP: &[&str] = &[
        "url", "address", "hostname", "port", "scheme", "username", "password", "token", "tls",
        "vhost",
    ];
    match (kind, itype) {
        ("api", "http" | "adi.grpc") => HTTP,
        ("datastore", _) => DATASTORE,
        ("cache", _) => CACHE,
        ("adi.messaging", "adi.amqp") => AMQP,
        ("adi.messaging", _) => MESSAGING_PROPS,
        _ => &[],
    }
}

/// A URL found in an environment value.
struct Url<'a> {
    scheme: &'a str,
    /// Its hosts (several in `mongodb://h1:1,h2:2/db`) and ports.
    hosts: Vec<(&'a str, Option<u16>)>,
    /// It carries a password (`user:pw@`).
    password: bool,
}

/// The URLs in `value` (`scheme://[user[:pw]@]host[:port][,host[:port]…][/…]`), at most
/// [`MAX_URLS`].
fn urls(value: &str) -> Vec<Url<'_>> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        if out.len() >= MAX_URLS {
            break;
        }
        let head = &rest[..at];
        // The scheme's characters are ASCII: as many bytes as characters.
        let start = head.len()
            - head
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | ':'))
                .count();
        let scheme = &head[start..];
        let tail = &rest[at + 3..];
        let end = tail
            .find(['/', '?', '#', ' ', '"', '\'', ';', '\t', '\n'])
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        let (userinfo, hosts) = authority.rsplit_once('@').unwrap_or(("", authority));
        let password = userinfo.split_once(':').is_some_and(|(_, p)| !p.is_empty());
        let hosts = hosts.split(',').filter_map(host_port).collect();
        out.push(Url {
            scheme,
            hosts,
            password,
        });
        rest = &tail[end..];
    }
    out
}

/// The usual port of a URL scheme (`jdbc:postgresql`, `postgresql+psycopg2` included), for
/// URLs that give none.
fn default_port(scheme: &str) -> Option<u16> {
    let s = scheme.rsplit(':').next().unwrap_or(scheme);
    let s = s.split('+').next().unwrap_or(s).to_ascii_lowercase();
    Some(match s.as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        "sqlserver" | "mssql" => 1433,
        "mongodb" => 27017,
        "redis" | "rediss" => 6379,
        "memcached" | "memcache" => 11211,
        "nats" => 4222,
        "kafka" => 9092,
        "amqp" => 5672,
        "amqps" => 5671,
        _ => return None,
    })
}

/// Whether `host:port` names the target (IPs compared as addresses, names case-insensitively).
fn names_target(t: &Target, host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    if t.endpoints.contains(&(host.clone(), port)) {
        return true;
    }
    let Ok(ip) = host.parse::<IpAddr>() else {
        return false;
    };
    t.endpoints
        .iter()
        .any(|(h, p)| *p == port && h.parse::<IpAddr>().is_ok_and(|a| a == ip))
}

/// Whether a variable's name contains one of the target's hint words: a word of the name
/// (split at `_`) that starts with the hint (`PGPORT` for `pg`).
fn name_fits(t: &Target, var: &str) -> bool {
    let var = var.to_ascii_lowercase();
    var.split('_')
        .any(|w| t.hints.iter().any(|h| w.starts_with(h.as_str())))
}

/// What an environment value tells of one condition: a strong tie (a URL or address naming
/// the server) or a weak one (a bare port, host, database or user, which counts only when the
/// variable's name fits the condition and no other condition's).
enum Tie {
    Strong(&'static str, bool),
    Weak(&'static str),
}

/// An environment value, read once for all conditions.
struct Reading<'a> {
    value: &'a str,
    urls: Vec<Url<'a>>,
    /// `host:port[,host:port…]` with no scheme (Kafka bootstrap servers, `REDIS_ADDR`).
    addresses: Option<Vec<(&'a str, u16)>>,
    ip: Option<IpAddr>,
    port: Option<u16>,
}

impl<'a> Reading<'a> {
    fn new(value: &'a str) -> Self {
        let urls = urls(value);
        let addresses = if urls.is_empty() {
            value
                .split(',')
                .map(|a| match host_port(a.trim()) {
                    Some((h, Some(p))) if is_host_name(h) || h.parse::<IpAddr>().is_ok() => {
                        Some((h, p))
                    }
                    _ => None,
                })
                .collect()
        } else {
            None
        };
        Self {
            value,
            urls,
            addresses,
            ip: value.parse().ok(),
            port: value.parse().ok(),
        }
    }
}

fn tie(c: &Condition, var: &str, r: &Reading<'_>) -> Option<Tie> {
    let t = &c.target;
    let matching = r.urls.iter().find(|u| {
        u.hosts.iter().any(|&(h, p)| {
            p.or_else(|| default_port(u.scheme))
                .is_some_and(|p| names_target(t, h, p))
        })
    });
    if let Some(u) = matching {
        // An API's variable holds the base its operation paths are relative to.
        let property = if c.kind == "api" { "baseUrl" } else { "url" };
        return Some(Tie::Strong(property, u.password));
    }
    if !r.urls.is_empty() {
        return None;
    }
    if let Some(list) = &r.addresses {
        let named = list.iter().any(|&(h, p)| names_target(t, h, p));
        return named.then_some(Tie::Strong("address", false));
    }
    if !name_fits(t, var) {
        return None;
    }
    let value = r.value;
    let host = t.endpoints.iter().any(|(h, _)| {
        h.eq_ignore_ascii_case(value)
            || r.ip
                .is_some_and(|ip| h.parse::<IpAddr>().is_ok_and(|a| a == ip))
    });
    // A value can fit several properties (`postgres` is a program, a database and a user):
    // the variable's name says which it is.
    let lower = var.to_ascii_lowercase();
    let property = if r.port.is_some_and(|p| t.ports.contains(&p)) {
        "port"
    } else if lower.contains("user") && t.users.contains(value) {
        "username"
    } else if (lower.contains("database") || lower.ends_with("db") || lower.contains("db_"))
        && t.databases.contains(value)
    {
        "database"
    } else if host {
        "hostname"
    } else if t.databases.contains(value) {
        "database"
    } else if t.users.contains(value) {
        "username"
    } else if t.vhosts.contains(value) {
        "vhost"
    } else {
        return None;
    };
    Some(Tie::Weak(property))
}

/// Each condition's `configuration.env`, from the service's environment: only variable names
/// (and whether they look secret) are kept. A `host:port` value with no scheme is kept only
/// where the kind allows an `address` property (messaging): the first-party kinds have no
/// property for it, and calling it a `url` would mislead.
fn configurations(conds: &[Condition], env: &BTreeMap<&str, &str>) -> Vec<Config> {
    let mut out: Vec<Config> = conds.iter().map(|_| BTreeMap::new()).collect();
    for (&var, &value) in env {
        let valid_name = var
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name || value.is_empty() || value.len() > MAX_VALUE_LEN {
            continue;
        }
        let secret = is_secret_name(var);
        let reading = Reading::new(value);
        let mut weak = Vec::new();
        for (i, c) in conds.iter().enumerate() {
            let (property, sensitive) = match tie(c, var, &reading) {
                Some(Tie::Strong(p, pw)) => (p, secret || pw),
                Some(Tie::Weak(p)) => {
                    weak.push((i, p));
                    continue;
                }
                None => continue,
            };
            if allowed(c.kind, c.itype).contains(&property) {
                *out[i].entry((property, var.to_owned())).or_default() |= sensitive;
            }
        }
        if let [(i, property)] = weak[..] {
            let c = &conds[i];
            if allowed(c.kind, c.itype).contains(&property) {
                *out[i].entry((property, var.to_owned())).or_default() |= secret;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_schemas_become_simple_schemas() {
        let s = |v: Value| simple(&v, 0);
        assert_eq!(
            s(json!({"id":"string","tags":["string"],"n":"number","x":"null"})),
            Some(json!({"id":"string","tags":["string"],"n":"number","x":"null"}))
        );
        assert_eq!(s(json!("non-json")), None);
        assert_eq!(s(json!([])), None);
        assert_eq!(s(json!("number|string")), None);
        assert_eq!(s(Value::Null), None);
        // Keys with no equivalent leave; the object stays.
        assert_eq!(
            s(json!({"a":"number|string","b":[],"c":[[]],"d":"object","...":"3 more","e":{}})),
            Some(json!({"e":{}}))
        );
        let mut deep = json!("string");
        for _ in 0..100 {
            deep = json!({ "a": deep });
        }
        // Too deep: the deepest keys leave, the objects above them stay.
        let mut kept = s(deep).expect("an object");
        let mut depth = 0;
        while let Some(inner) = kept.get("a") {
            kept = inner.clone();
            depth += 1;
        }
        assert_eq!((depth, kept), (MAX_SCHEMA_DEPTH, json!({})));
    }

    #[test]
    fn variants_merge_into_the_union_of_their_keys() {
        let v = [
            json!({"id":"string","price":"number"}),
            Value::Null,
            json!("non-json"),
            json!({"id":"string","error":"string"}),
            json!({"id":"number"}),
        ];
        assert_eq!(
            merged_schema(v.iter()),
            Some(json!({"error":"string","price":"number"})),
            "id is a string in some and a number in another: dropped"
        );
        assert_eq!(merged_schema([Value::Null].iter()), None);
        assert_eq!(
            merged_schema([json!([]), json!([{"a":"string"}])].iter()),
            Some(json!([{"a":"string"}]))
        );
    }

    #[test]
    fn urls_and_addresses_are_read_without_their_values_kept() {
        let u = urls("postgres://app:pw@127.0.0.1:5432/shop?sslmode=disable");
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].scheme, "postgres");
        assert_eq!(u[0].hosts, vec![("127.0.0.1", Some(5432))]);
        assert!(u[0].password);
        let u = urls("jdbc:postgresql://[::1]/db mongodb://u@h1:1,h2/x redis://:<redacted>@r");
        assert_eq!(u.len(), 3);
        assert_eq!(u[0].scheme, "jdbc:postgresql");
        assert_eq!(u[0].hosts, vec![("::1", None)]);
        assert_eq!(u[1].hosts, vec![("h1", Some(1)), ("h2", None)]);
        assert!(!u[1].password);
        assert!(u[2].password);
        assert_eq!(default_port("jdbc:postgresql"), Some(5432));
        assert_eq!(default_port("postgresql+psycopg2"), Some(5432));
        assert_eq!(default_port("gopher"), None);
        assert_eq!(host_port("[::1]:5432"), Some(("::1", Some(5432))));
        assert_eq!(host_port("::1"), Some(("::1", None)));
        assert_eq!(host_port("h:x"), None);
        assert_eq!(host_port(":1"), None);
        assert_eq!(host_port("[]:1"), None);
        for hostile in [
            "://",
            ":///",
            "a://@",
            "[",
            "[:",
            "x://[::1",
            "\u{fffd}://\u{fffd}:9",
        ] {
            let _ = urls(hostile);
            let _ = host_port(hostile);
        }
    }

    #[test]
    fn addresses_never_name_a_condition() {
        assert_eq!(display_name("127.0.0.1:5432"), None);
        assert_eq!(display_name("[::1]:80"), None);
        assert_eq!(display_name("localhost:8080"), None);
        assert_eq!(display_name("catalog:8080").as_deref(), Some("catalog"));
        assert_eq!(display_name("catalog").as_deref(), Some("catalog"));
        assert_eq!(display_name(""), None);
        assert_eq!(workload_uri("my app/é"), "urn:adi:workload:my%20app/%C3%A9");
        assert_eq!(
            split_image("localhost/bookinfo/reviews:1.0"),
            ("localhost/bookinfo/reviews", Some("1.0"))
        );
        assert_eq!(
            split_image("registry:5000/team/app"),
            ("registry:5000/team/app", None)
        );
        assert_eq!(
            split_image("docker.io/library/redis@sha256:0123"),
            ("docker.io/library/redis", Some("sha256:0123"))
        );
    }

    fn cond(base: &str, label: &'static str, port: u16) -> Condition {
        Condition {
            base: base.into(),
            label,
            port: Some(port),
            kind: "datastore",
            itype: "relational",
            extension: COMMON_INTEGRATIONS,
            fields: Vec::new(),
            target: Target::default(),
        }
    }

    #[test]
    fn clashing_names_get_the_engine_or_the_port() {
        let conds = [
            cond("postgres", "postgres", 5432),
            cond("postgres", "postgres", 5433),
            cond("backend", "http", 8080),
            cond("backend", "redis", 6379),
            cond("backend-http", "http", 1),
            cond("db", "mysql", 1),
            cond("db", "mysql", 1),
            cond("db", "redis", 1),
        ];
        assert_eq!(
            unique_names(&conds),
            [
                "postgres-5432",
                "postgres-5433",
                "backend-http",
                "backend-redis",
                "backend-http-2",
                "db-mysql-1",
                "db-mysql-1-2",
                "db-redis",
            ]
        );
    }
}
