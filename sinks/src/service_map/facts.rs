//! What the map reads of a message event, borrowed either from the live event or from its
//! JSON form (a recording read back by `adi map build`). Both give the same facts, so the two
//! build the same map, and the live sink reads `http` and `message` events (one per message)
//! without turning each into a `serde_json::Value` first: with that conversion the map cost
//! 2.3 µs per event, 0.65 without. Connection, container and lost events (one per connection
//! or report) still go through their JSON form.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use adi_core::event::{ContainerInfo, HttpEvent, MessageEvent, ProcessInfo};
use serde_json::Value;

use super::model::Workload;

/// An address as the event gives it: text in JSON, an address live.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ip<'a> {
    Text(&'a str),
    Addr(IpAddr),
}

impl Ip<'_> {
    /// Whether the address is on this host (loopback or unspecified).
    pub(super) fn is_local(&self) -> bool {
        let addr = match self {
            Self::Text(t) => t.parse::<IpAddr>().ok(),
            Self::Addr(a) => Some(*a),
        };
        addr.is_some_and(|a| a.is_loopback() || a.is_unspecified())
    }

    fn is_v6(&self) -> bool {
        match self {
            Self::Text(t) => t.contains(':'),
            Self::Addr(a) => a.is_ipv6(),
        }
    }

    /// `ip:port`, IPv6 in brackets.
    pub(super) fn with_port(&self, port: u64) -> String {
        if self.is_v6() {
            format!("[{self}]:{port}")
        } else {
            format!("{self}:{port}")
        }
    }
}

impl fmt::Display for Ip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(t) => f.write_str(t),
            Self::Addr(a) => a.fmt(f),
        }
    }
}

/// A container named by an event (`source_container`, `destination_container`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Container<'a> {
    Json(&'a Value),
    Live(&'a ContainerInfo),
}

impl<'a> Container<'a> {
    /// The service it runs.
    pub(super) fn service(&self) -> Option<&'a str> {
        match self {
            Self::Json(v) => text(v, "service"),
            Self::Live(c) => Some(&c.service),
        }
    }

    /// Its container id.
    pub(super) fn id(&self) -> Option<&'a str> {
        match self {
            Self::Json(v) => text(v, "container_id"),
            Self::Live(c) => Some(&c.container_id),
        }
    }

    /// What it says of its service's workload: its image, and its labels as a message's
    /// fields carry them (none: they come from the `container` event, which both forms
    /// have).
    pub(super) fn workload(&self) -> Option<Workload> {
        let (image, labels) = match self {
            Self::Json(v) => (
                text(v, "image").unwrap_or("").to_owned(),
                v.get("labels").map(string_map).unwrap_or_default(),
            ),
            Self::Live(c) => (c.image.clone(), std::collections::BTreeMap::new()),
        };
        (!image.is_empty() || !labels.is_empty()).then_some(Workload { image, labels })
    }
}

/// Who sent or received one message, and over which connection.
#[derive(Clone, Debug)]
pub(super) struct Ends<'a> {
    pub timestamp: Option<&'a str>,
    /// `send` or `recv`, as seen by the traced process.
    pub direction: Option<&'a str>,
    /// The traced process; 0 in a capture.
    pub pid: Option<u64>,
    pub flow: u64,
    pub service: Option<&'a str>,
    pub comm: Option<&'a str>,
    pub peer_service: Option<&'a str>,
    pub peer_process: Option<&'a str>,
    pub destination_type: Option<&'a str>,
    pub source_ip: Option<Ip<'a>>,
    pub dest_ip: Option<Ip<'a>>,
    pub dest_port: u64,
    pub source_container: Option<Container<'a>>,
    pub destination_container: Option<Container<'a>>,
}

impl<'a> Ends<'a> {
    /// The fields every message event has, from its JSON form.
    pub(super) fn of_json(e: &'a Value) -> Self {
        Self {
            timestamp: text(e, "timestamp"),
            direction: text(e, "direction"),
            pid: number(e, "pid"),
            flow: number(e, "flow_id").unwrap_or(0),
            service: text(e, "service"),
            comm: text(e, "comm"),
            peer_service: text(e, "peer_service"),
            peer_process: text(e, "peer_process"),
            destination_type: text(e, "destination_type"),
            source_ip: text(e, "source_ip").map(Ip::Text),
            dest_ip: text(e, "dest_ip").map(Ip::Text),
            dest_port: number(e, "dest_port").unwrap_or(0),
            source_container: e.get("source_container").map(Container::Json),
            destination_container: e.get("destination_container").map(Container::Json),
        }
    }

    /// The same fields of a live event.
    fn of_live(
        timestamp: &'a str,
        p: &'a ProcessInfo,
        ends: &'a adi_core::event::Endpoints,
        containers: &'a adi_core::event::ContainerFields,
        flow: u64,
    ) -> Self {
        Self {
            timestamp: Some(timestamp),
            direction: Some(ends.direction),
            pid: Some(u64::from(p.pid)),
            flow,
            service: p.service.as_deref(),
            comm: Some(&p.comm),
            peer_service: p.peer_service.as_deref(),
            peer_process: p.peer_process.as_deref(),
            destination_type: containers.destination_type,
            source_ip: Some(Ip::Addr(ends.source_ip)),
            dest_ip: Some(Ip::Addr(ends.dest_ip)),
            dest_port: u64::from(ends.dest_port),
            source_container: containers.source_container.as_deref().map(Container::Live),
            destination_container: containers
                .destination_container
                .as_deref()
                .map(Container::Live),
        }
    }
}

/// What the map reads of an `http` event.
#[derive(Clone, Debug)]
pub(super) struct Http<'a> {
    pub ends: Ends<'a>,
    pub method: Option<&'a str>,
    pub url: Option<&'a str>,
    pub status_code: Option<u64>,
    /// The first `Host` header.
    pub host: Option<&'a str>,
    /// The body as text (invalid UTF-8 replaced, as in the JSON form).
    pub body: Cow<'a, str>,
    pub truncated: bool,
    /// The HTTP/2 stream; 0 for HTTP/1.
    pub stream: u64,
    pub grpc: bool,
    pub grpc_status: Option<u64>,
    pub latency_ms: Option<f64>,
}

impl<'a> Http<'a> {
    /// From the JSON form.
    pub(super) fn of_json(e: &'a Value) -> Self {
        let grpc = e.get("grpc");
        Self {
            ends: Ends::of_json(e),
            method: text(e, "method"),
            url: text(e, "url"),
            status_code: number(e, "status_code"),
            host: json_header(e, "host"),
            body: Cow::Borrowed(text(e, "body").unwrap_or("")),
            truncated: e.get("truncated").and_then(Value::as_bool) == Some(true),
            stream: number(e, "stream_id").unwrap_or(0),
            grpc: grpc.is_some_and(Value::is_object),
            grpc_status: grpc.and_then(|g| number(g, "status")),
            latency_ms: e.get("latency_ms").and_then(Value::as_f64),
        }
    }

    /// From a live event whose body, as far as the map reads it, is `body` (the event's own
    /// or, for a compressed one, inflated) and cut short when `truncated`.
    pub(super) fn of_live(h: &'a HttpEvent, body: &'a [u8], truncated: bool) -> Self {
        Self {
            ends: Ends::of_live(
                &h.timestamp,
                &h.process,
                &h.endpoints,
                &h.containers,
                h.flow_id.0,
            ),
            method: h.method.as_deref(),
            url: h.url.as_deref(),
            status_code: h.status_code.map(u64::from),
            host: h.headers.get("host"),
            body: String::from_utf8_lossy(body),
            truncated,
            stream: h.stream_id.unwrap_or(0),
            grpc: h.grpc.is_some(),
            grpc_status: h.grpc.as_ref().and_then(|g| g.status).map(u64::from),
            latency_ms: h.latency_ms,
        }
    }
}

/// What the map reads of a `message` event.
#[derive(Clone, Debug)]
pub(super) struct Message<'a> {
    pub pid: Option<u64>,
    pub service: Option<&'a str>,
    pub flow: u64,
    pub kind: Option<&'a str>,
    pub category: Option<&'a str>,
    pub op: Option<&'a str>,
    pub resource: Option<&'a str>,
    /// The AMQP routing key (an attribute given once).
    pub routing_key: Option<&'a str>,
}

impl<'a> Message<'a> {
    /// From the JSON form.
    pub(super) fn of_json(e: &'a Value) -> Self {
        Self {
            pid: number(e, "pid"),
            service: text(e, "service"),
            flow: number(e, "flow_id").unwrap_or(0),
            kind: text(e, "kind"),
            category: text(e, "category"),
            op: text(e, "op"),
            resource: text(e, "resource"),
            routing_key: e.get("attributes").and_then(|a| text(a, "routing_key")),
        }
    }

    /// From a live event.
    pub(super) fn of_live(m: &'a MessageEvent) -> Self {
        // A name given twice is a JSON array in the event's JSON form, which is no key.
        let mut keys = m
            .attributes
            .0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("routing_key"));
        let routing_key = match (keys.next(), keys.next()) {
            (Some((n, v)), None) if n == "routing_key" => Some(v.as_str()),
            _ => None,
        };
        Self {
            pid: Some(u64::from(m.process.pid)),
            service: m.process.service.as_deref(),
            flow: m.flow_id.0,
            kind: Some(m.kind),
            category: Some(m.category.as_str()),
            op: m.op.as_deref(),
            resource: m.resource.as_deref(),
            routing_key,
        }
    }
}

pub(super) fn text<'a>(e: &'a Value, field: &str) -> Option<&'a str> {
    e.get(field).and_then(Value::as_str)
}

pub(super) fn number(e: &Value, field: &str) -> Option<u64> {
    e.get(field).and_then(Value::as_u64)
}

/// A JSON object of strings.
pub(super) fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// The first value of header `name` of an `http` event's JSON form.
fn json_header<'a>(e: &'a Value, name: &str) -> Option<&'a str> {
    let headers = e.get("headers")?.as_object()?;
    let (_, v) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
    match v {
        Value::String(s) => Some(s),
        Value::Array(a) => a.first().and_then(Value::as_str),
        _ => None,
    }
}
