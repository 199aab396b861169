//! The pipeline without root: inputs built from real captures (the classifiers' fixtures),
//! process context from a fake source.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use adi_classifiers as _;
use adi_core::event::Event;
use adi_core::flow::{FlowKey, Role};
use adi_core::{Direction, Registry};

use super::*;

const PG_TO_SERVER: &[u8] =
    include_bytes!("../../classifiers/src/postgres/fixtures/to_server_psql_scram_query.bin");
const PG_TO_CLIENT: &[u8] =
    include_bytes!("../../classifiers/src/postgres/fixtures/to_client_psql_scram_query.bin");

/// Processes with fixed arguments and environments.
#[derive(Default)]
struct Fake(HashMap<u32, (&'static str, &'static str)>);

impl ProcessSource for Fake {
    fn details(&mut self, pid: u32) -> Option<ProcessDetails> {
        let (args, environ) = self.0.get(&pid)?;
        Some(ProcessDetails {
            comm: "python3".to_owned(),
            args: args.split(' ').map(str::to_owned).collect(),
            start_time: 1,
            environ: Some(Ok(environ.replace(' ', "\0").into_bytes())),
            listening: if args.contains("postgres") {
                vec![addr("0.0.0.0:5432")]
            } else {
                Vec::new()
            },
        })
    }
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::from_inventory().expect("registry"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn key(pid: u32, role: Role) -> FlowKey {
    FlowKey {
        pid,
        role,
        client: addr("127.0.0.1:40000"),
        server: addr("127.0.0.1:5432"),
    }
}

fn data(key: FlowKey, dir: Direction, ts_ns: u64, payload: &[u8]) -> Input<'_> {
    Input::Data {
        key,
        dir,
        ts_ns,
        payload,
        missing: 0,
        after_skip: false,
        tls: false,
        comm: "python3",
    }
}

fn messages(events: &[Event]) -> Vec<&adi_core::event::MessageEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn every_protocol_message_becomes_a_paired_message_event() {
    let mut p = Pipeline::new(registry(), NoProcesses, PipelineConfig::default());
    let k = key(0, Role::Wire);
    let mut out = Vec::new();
    p.handle(Input::Opened { key: k, ts_ns: 1 }, &mut out);
    p.handle(data(k, Direction::ToServer, 1_000, PG_TO_SERVER), &mut out);
    p.handle(
        data(k, Direction::ToClient, 3_000_000, PG_TO_CLIENT),
        &mut out,
    );
    p.handle(
        Input::Closed {
            key: k,
            ts_ns: 4_000_000,
        },
        &mut out,
    );
    let msgs = messages(&out);
    let query = msgs
        .iter()
        .find(|m| m.op.as_deref() == Some("query"))
        .unwrap_or_else(|| panic!("a query: {msgs:#?}"));
    assert_eq!(query.protocol.as_str(), "postgres");
    assert_eq!(query.kind, "request");
    assert!(query.resource.is_some(), "{query:?}");
    let startup = msgs
        .iter()
        .find(|m| m.op.as_deref() == Some("startup"))
        .expect("startup");
    assert!(
        startup.attributes.0.iter().any(|(n, _)| n == "user"),
        "{startup:?}"
    );
    // Responses are paired in order, with their latency and their request's resource.
    let answered: Vec<_> = msgs.iter().filter(|m| m.kind == "response").collect();
    assert!(!answered.is_empty());
    assert!(
        answered.iter().all(|m| m.latency_ms.is_some()),
        "{answered:#?}"
    );
    assert!(answered.iter().any(|m| m.resource == query.resource));
    assert_eq!(p.stats().unpaired_responses, 0);
    assert!(out
        .iter()
        .any(|e| matches!(e, Event::Connection(c) if c.protocol.as_str() == "postgres")));
}

#[test]
fn query_literals_are_normalised_unless_asked_not_to() {
    let q = b"Q\x00\x00\x00\x2dSELECT * FROM t WHERE id = 42 AND n = 'x'\x00";
    // Q, then the length (4 + text + NUL) as a big-endian i32, then the text and its NUL.
    let len = u32::try_from(q.len() - 1).expect("len").to_be_bytes();
    let mut msg = q.to_vec();
    msg[1..5].copy_from_slice(&len);
    for (redact, text) in [
        (true, "SELECT * FROM t WHERE id = ? AND n = ?"),
        (false, "SELECT * FROM t WHERE id = 42 AND n = 'x'"),
    ] {
        let config = PipelineConfig {
            redact,
            describe_processes: false,
            mid_stream_unopened: false,
        };
        let mut p = Pipeline::new(registry(), NoProcesses, config);
        let k = key(0, Role::Wire);
        let mut out = Vec::new();
        p.handle(data(k, Direction::ToServer, 1, PG_TO_SERVER), &mut out);
        p.handle(data(k, Direction::ToClient, 2, PG_TO_CLIENT), &mut out);
        p.handle(data(k, Direction::ToServer, 3, &msg), &mut out);
        let msgs = messages(&out);
        assert!(
            msgs.iter().any(|m| m.resource.as_deref() == Some(text)),
            "{msgs:#?}"
        );
    }
}

#[test]
fn services_are_named_and_both_watched_ends_see_each_other() {
    let mut fake = Fake::default();
    fake.0.insert(
        10,
        (
            "python3 /app/web.py",
            "ADI_PROFILE=dev ADI_PROFILE_NAME=web",
        ),
    );
    fake.0.insert(
        20,
        ("/usr/lib/postgresql/15/bin/postgres -D /x", "PATH=/bin"),
    );
    let mut p = Pipeline::new(registry(), fake, PipelineConfig::default());
    let client = key(10, Role::Client);
    let server = key(20, Role::Server);
    let mut out = Vec::new();
    p.handle(
        Input::Opened {
            key: client,
            ts_ns: 1,
        },
        &mut out,
    );
    p.handle(
        Input::Opened {
            key: server,
            ts_ns: 1,
        },
        &mut out,
    );
    p.handle(data(client, Direction::ToServer, 2, PG_TO_SERVER), &mut out);
    p.handle(data(server, Direction::ToServer, 3, PG_TO_SERVER), &mut out);
    assert!(!out.is_empty());
    for e in &out {
        let process = match e {
            Event::Message(m) => &m.process,
            Event::Connection(c) => &c.process,
            other => panic!("unexpected {other:?}"),
        };
        let (me, peer) = match process.pid {
            10 => ("web", "postgres"),
            20 => ("postgres", "web"),
            pid => panic!("pid {pid}"),
        };
        assert_eq!(process.service.as_deref(), Some(me), "{e:?}");
        assert_eq!(process.peer_service.as_deref(), Some(peer), "{e:?}");
    }
    // A new connection to the listening server is named before the server says anything.
    let next = FlowKey {
        client: addr("127.0.0.1:40002"),
        ..client
    };
    let mut out = Vec::new();
    p.handle(
        Input::Opened {
            key: next,
            ts_ns: 5,
        },
        &mut out,
    );
    p.handle(data(next, Direction::ToServer, 6, PG_TO_SERVER), &mut out);
    let first = messages(&out);
    assert!(!first.is_empty());
    assert!(
        first
            .iter()
            .all(|m| m.process.peer_service.as_deref() == Some("postgres")),
        "{first:#?}"
    );
    // An unrelated connection of the same process has no peer.
    let other = FlowKey {
        server: addr("127.0.0.1:5999"),
        ..client
    };
    let mut out = Vec::new();
    p.handle(data(other, Direction::ToServer, 4, PG_TO_SERVER), &mut out);
    for e in &out {
        if let Event::Message(m) = e {
            assert_eq!(m.process.peer_service, None);
        }
    }
}

#[test]
fn a_connection_to_itself_has_no_peer_service() {
    let mut fake = Fake::default();
    fake.0.insert(10, ("python3 app.py", ""));
    let mut p = Pipeline::new(registry(), fake, PipelineConfig::default());
    let client = key(10, Role::Client);
    let server = key(10, Role::Server);
    let mut out = Vec::new();
    p.handle(
        Input::Opened {
            key: client,
            ts_ns: 1,
        },
        &mut out,
    );
    p.handle(
        Input::Opened {
            key: server,
            ts_ns: 1,
        },
        &mut out,
    );
    p.handle(data(client, Direction::ToServer, 2, PG_TO_SERVER), &mut out);
    let msgs = messages(&out);
    assert!(!msgs.is_empty());
    assert!(msgs
        .iter()
        .all(|m| m.process.peer_service.is_none() && m.process.service.as_deref() == Some("app")));
}

#[test]
fn watched_processes_are_described_once_before_their_traffic() {
    let mut fake = Fake::default();
    fake.0
        .insert(10, ("python3 app.py", "ADI_PROFILE=dev SECRET_TOKEN=abc"));
    let config = PipelineConfig {
        redact: true,
        describe_processes: true,
        mid_stream_unopened: false,
    };
    let mut p = Pipeline::new(registry(), fake, config);
    let k = key(10, Role::Client);
    let mut out = Vec::new();
    p.handle(data(k, Direction::ToServer, 1, PG_TO_SERVER), &mut out);
    p.handle(data(k, Direction::ToClient, 2, PG_TO_CLIENT), &mut out);
    let docs: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::Process(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(docs.len(), 1);
    assert!(matches!(out[0], Event::Process(_)), "described first");
    let json = serde_json::to_string(&out[0]).expect("json");
    assert!(!json.contains("abc"), "{json}");
}

/// The connection events of `inputs` fed to a pipeline that treats unopened connections as
/// joined mid-stream.
fn verdicts(inputs: &[Input<'_>]) -> Vec<(String, u8)> {
    let config = PipelineConfig {
        mid_stream_unopened: true,
        ..PipelineConfig::default()
    };
    let mut p = Pipeline::new(registry(), NoProcesses, config);
    let mut out = Vec::new();
    for input in inputs {
        p.handle(*input, &mut out);
    }
    if let Some(Input::Data { key, .. }) = inputs.first() {
        p.handle(
            Input::Closed {
                key: *key,
                ts_ns: 99,
            },
            &mut out,
        );
    }
    out.iter()
        .filter_map(|e| match e {
            Event::Connection(c) => Some((c.protocol.as_str().to_owned(), c.confidence.get())),
            _ => None,
        })
        .collect()
}

fn wire(server_port: u16) -> FlowKey {
    FlowKey {
        pid: 7,
        role: Role::Client,
        client: addr("127.0.0.1:41000"),
        server: SocketAddr::new(addr("127.0.0.1:1").ip(), server_port),
    }
}

const NATS_TO_SERVER: &[u8] =
    include_bytes!("../../classifiers/src/nats/fixtures/to_server_nats_py.bin");
const NATS_TO_CLIENT: &[u8] =
    include_bytes!("../../classifiers/src/nats/fixtures/to_client_nats_py.bin");

/// The first `PUB` of the real nats-py session onwards: what a connection opened before adi
/// started shows first.
fn nats_from_pub() -> &'static [u8] {
    let at = NATS_TO_SERVER
        .windows(4)
        .position(|w| w == b"PUB ")
        .expect("a PUB in the capture");
    &NATS_TO_SERVER[at..]
}

#[test]
fn nats_joined_mid_stream_is_never_announced_as_redis() {
    let rest = nats_from_pub();
    let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("line") + 2;
    for port in [4222, 6379, 39_999] {
        let k = wire(port);
        // The PUB line alone (its payload in the next write), then the rest, then the
        // server's side.
        let got = verdicts(&[
            data(k, Direction::ToServer, 1, &rest[..line_end]),
            data(k, Direction::ToServer, 2, &rest[line_end..]),
            data(k, Direction::ToClient, 3, NATS_TO_CLIENT),
        ]);
        assert!(!got.is_empty(), "port {port}: no verdict");
        assert!(got.iter().all(|(p, _)| p == "nats"), "port {port}: {got:?}");
    }
}

#[test]
fn a_nats_ping_joined_mid_stream_is_never_announced_as_redis() {
    // nats-py's keep-alive on a connection opened before adi started: `PING` reads as a
    // Redis inline command too, and the server's `PONG` proves neither. On NATS's port the
    // port breaks the tie; elsewhere the verdict waits for a message only NATS has.
    let publish: &[u8] = b"PUB updates 5\r\nhello\r\n";
    for (port, verdict_before_pub) in [(4222, true), (39_999, false)] {
        let k = wire(port);
        let ping = [
            data(k, Direction::ToServer, 1, b"PING\r\n"),
            data(k, Direction::ToClient, 2, b"PONG\r\n"),
        ];
        let got = verdicts(&ping);
        assert!(got.iter().all(|(p, _)| p == "nats"), "port {port}: {got:?}");
        assert_eq!(!got.is_empty(), verdict_before_pub, "port {port}: {got:?}");
        let got = verdicts(&[ping[0], ping[1], data(k, Direction::ToServer, 3, publish)]);
        assert!(!got.is_empty(), "port {port}: named by the PUB");
        assert!(got.iter().all(|(p, _)| p == "nats"), "port {port}: {got:?}");
    }
}

#[test]
fn memcached_text_joined_mid_stream_waits_for_the_reply() {
    // A memcached text `get` also reads as a Redis inline command: on a port that names
    // neither, only the reply tells.
    let k = wire(39_999);
    let get = data(k, Direction::ToServer, 1, b"get user:42\r\n");
    assert_eq!(verdicts(&[get]), [], "held while Redis ties");
    let got = verdicts(&[
        get,
        data(
            k,
            Direction::ToClient,
            2,
            b"VALUE user:42 0 2\r\nhi\r\nEND\r\n",
        ),
    ]);
    assert!(got.iter().all(|(p, _)| p == "memcached"), "{got:?}");
    assert!(!got.is_empty(), "confirmed by the reply: {got:?}");
    // The same on a connection seen opening is classified at once, as before.
    let config = PipelineConfig::default();
    let mut p = Pipeline::new(registry(), NoProcesses, config);
    let mut out = Vec::new();
    p.handle(Input::Opened { key: k, ts_ns: 0 }, &mut out);
    p.handle(
        data(k, Direction::ToServer, 1, b"get user:42\r\n"),
        &mut out,
    );
    assert!(
        out.iter().any(|e| matches!(e, Event::Connection(_))),
        "{out:?}"
    );
}

#[test]
fn an_undisputed_protocol_joined_mid_stream_is_named_at_once() {
    let k = wire(5432);
    let got = verdicts(&[data(k, Direction::ToServer, 1, PG_TO_SERVER)]);
    assert_eq!(
        got.first().map(|(p, _)| p.as_str()),
        Some("postgres"),
        "{got:?}"
    );
}

#[test]
fn connections_the_engine_evicts_are_forgotten_here_too() {
    // Two connections at most: the third evicts the least recently active one, whose state,
    // end and unanswered requests must not outlive it.
    let mut fake = Fake::default();
    fake.0
        .insert(10, ("python3 /app/web.py", "ADI_PROFILE_NAME=web"));
    let engine = EngineConfig {
        max_flows: 2,
        ..EngineConfig::default()
    };
    let mut p = Pipeline::with_engine(registry(), fake, PipelineConfig::default(), engine);
    let mut out = Vec::new();
    let keys: Vec<FlowKey> = (0..3)
        .map(|i| FlowKey {
            client: SocketAddr::new(addr("127.0.0.1:1").ip(), 40_000 + i),
            ..key(10, Role::Client)
        })
        .collect();
    for (ts, k) in (1..).zip(&keys) {
        p.handle(Input::Opened { key: *k, ts_ns: ts }, &mut out);
        // The startup, answered by nothing yet: one request pending per connection.
        p.handle(data(*k, Direction::ToServer, ts, PG_TO_SERVER), &mut out);
    }
    assert_eq!(p.flows.len(), 2, "the oldest connection is gone");
    assert!(!p.flows.contains_key(&keys[0]));
    assert!(!p.ends.contains_key(&local_remote(&keys[0])));
    assert!(p.ends.contains_key(&local_remote(&keys[2])));
    let pending_of_evicted = p.stats().unanswered_requests;
    assert!(
        pending_of_evicted > 0,
        "its unanswered requests are counted"
    );
    // Its late bytes start it afresh (joined mid-stream), without the old state.
    p.handle(
        data(keys[0], Direction::ToClient, 9, PG_TO_CLIENT),
        &mut out,
    );
    assert_eq!(p.flows.len(), 2);
    assert!(p.flows[&keys[0]].pending.is_empty());
    // Closing everything leaves nothing behind.
    p.finish(10, &mut out);
    assert!(p.flows.is_empty() && p.ends.is_empty(), "{p:?}");
}

#[test]
fn an_opening_reported_after_its_bytes_does_not_restart_the_connection() {
    // The accepting thread's ring buffer slot can come after the reading thread's: the bytes
    // (time 10) before the open (time 5). The connection and what it said stay.
    let mut p = Pipeline::new(registry(), NoProcesses, PipelineConfig::default());
    let k = key(0, Role::Wire);
    let mut out = Vec::new();
    p.handle(data(k, Direction::ToServer, 10, PG_TO_SERVER), &mut out);
    assert_eq!(
        p.flows[&k].summary.get("user").map(String::as_str),
        Some("adi")
    );
    p.handle(Input::Opened { key: k, ts_ns: 5 }, &mut out);
    assert_eq!(
        p.flows[&k].summary.get("user").map(String::as_str),
        Some("adi")
    );
    // A later opening of the same addresses is a new connection (a missed close).
    p.handle(Input::Opened { key: k, ts_ns: 20 }, &mut out);
    assert!(p.flows[&k].summary.is_empty());
}

const TLS_CLIENT_HELLO: &[u8] =
    include_bytes!("../../classifiers/src/tls/fixtures/to_server_curl_http11_tls12_8443.bin");
const TLS_SERVER_HELLO: &[u8] =
    include_bytes!("../../classifiers/src/tls/fixtures/to_client_curl_http11_tls12_8443.bin");

/// A TLS connection whose plaintext the TLS library gave: classified `tls` from the handshake,
/// then again from the plaintext under the same flow id, every event after that marked `tls`,
/// and encrypted bytes that arrive after the plaintext began ignored and counted.
#[test]
fn plaintext_from_a_tls_library_is_classified_again() {
    let mut p = Pipeline::new(registry(), NoProcesses, PipelineConfig::default());
    let k = FlowKey {
        server: addr("127.0.0.1:8443"),
        ..key(0, Role::Client)
    };
    let mut out = Vec::new();
    p.handle(Input::Opened { key: k, ts_ns: 1 }, &mut out);
    p.handle(data(k, Direction::ToServer, 10, TLS_CLIENT_HELLO), &mut out);
    p.handle(data(k, Direction::ToClient, 20, TLS_SERVER_HELLO), &mut out);
    let plaintext = |dir, ts_ns, payload| Input::Data {
        key: k,
        dir,
        ts_ns,
        payload,
        missing: 0,
        after_skip: false,
        tls: true,
        comm: "curl",
    };
    p.handle(
        plaintext(
            Direction::ToServer,
            30,
            b"GET /orders/42?expand=items HTTP/1.1\r\nHost: shop\r\n\r\n",
        ),
        &mut out,
    );
    // An encrypted record reported late (another CPU's buffer): not classified again.
    p.handle(data(k, Direction::ToClient, 35, TLS_SERVER_HELLO), &mut out);
    p.handle(
        plaintext(
            Direction::ToClient,
            40,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
        &mut out,
    );
    let verdicts: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::Connection(c) => Some((c.protocol.as_str(), c.tls, c.flow_id)),
            _ => None,
        })
        .collect();
    let first = verdicts.first().expect("a verdict");
    assert_eq!((first.0, first.1), ("tls", false), "{verdicts:?}");
    let last = verdicts.last().expect("a verdict");
    assert_eq!((last.0, last.1), ("http1", true), "{verdicts:?}");
    assert!(
        verdicts.iter().all(|v| v.2 == first.2),
        "one connection, one flow id: {verdicts:?}"
    );
    let http: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::Http(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(http.len(), 2, "{http:#?}");
    assert!(http.iter().all(|h| h.tls));
    assert_eq!(http[0].url.as_deref(), Some("/orders/42?expand=items"));
    assert_eq!(http[1].status_code, Some(200));
    assert!(http[1].latency_ms.is_some(), "paired");
    assert_eq!(p.stats().tls_ciphertext, 1);
}

#[test]
fn a_connections_events_share_its_process_until_something_about_it_changes() {
    let mut fake = Fake::default();
    fake.0.insert(10, ("python3 web.py", ""));
    fake.0.insert(20, ("python3 db.py", ""));
    let mut p = Pipeline::new(registry(), fake, PipelineConfig::default());
    let client = key(10, Role::Client);
    let mut out = Vec::new();
    // The server is known from the start (not a new process when its side shows up), and
    // listens nowhere adi knows of.
    p.describe(20, &mut out);
    p.handle(
        Input::Opened {
            key: client,
            ts_ns: 1,
        },
        &mut out,
    );
    // Two queries, one message each way at a time: the same process, not a copy per event.
    let half = PG_TO_CLIENT.len() / 2;
    p.handle(data(client, Direction::ToServer, 2, PG_TO_SERVER), &mut out);
    p.handle(
        data(client, Direction::ToClient, 3, &PG_TO_CLIENT[..half]),
        &mut out,
    );
    p.handle(
        data(client, Direction::ToClient, 4, &PG_TO_CLIENT[half..]),
        &mut out,
    );
    let before = messages(&out);
    assert!(before.len() >= 2, "{before:#?}");
    assert!(before
        .iter()
        .all(|m| Arc::ptr_eq(&m.process, &before[0].process)));
    assert_eq!(before[0].process.peer_service, None);
    // The server's side of the connection shows up: the client's next events name it.
    let server = key(20, Role::Server);
    let mut out = Vec::new();
    p.handle(
        Input::Opened {
            key: server,
            ts_ns: 5,
        },
        &mut out,
    );
    p.handle(data(client, Direction::ToServer, 6, PG_TO_SERVER), &mut out);
    let after: Vec<_> = messages(&out)
        .into_iter()
        .filter(|m| m.process.pid == 10)
        .collect();
    assert!(!after.is_empty());
    assert!(after
        .iter()
        .all(|m| m.process.peer_service.as_deref() == Some("db")));
}
