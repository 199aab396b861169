//! The Docker Engine API watcher: Docker, and Podman through `podman system service`
//! (<https://docs.docker.com/reference/api/engine/>).
//!
//! [`watch`] connects, lists the running containers, inspects each (name, image reference,
//! labels, the addresses of every network it is attached to, its published TCP ports) and
//! replaces the [`Index`]'s Docker entries with them; then it follows `GET /events` (types
//! `container` and `network`) and re-inspects the one container an event names, or forgets it
//! when it died or was removed. No polling while connected. The events are requested with
//! `since` set to just before the listing, so that the daemon replays whatever happened while
//! the list was read (re-inspecting is idempotent): nothing falls between the listing and the
//! subscription.
//!
//! When the daemon is unreachable or the stream breaks, its containers are forgotten, one
//! warning goes to stderr for the whole outage, and connecting is retried from 1 s doubling to
//! 30 s ([`crate::runtime::Backoff`]); one line says when it is back.
//!
//! API versions: bollard 0.21 asks for unversioned paths, which Docker and Podman answer in
//! their own newest version (Podman 4.3: 1.41). Should a later bollard prefix the paths with its
//! own version, a daemon that refuses it as too new (`Maximum supported API version is 1.41`)
//! is asked again at the version it names, and a daemon that reports an older version is then
//! spoken to at that version.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerInspectResponse, EventMessage, EventMessageTypeEnum, PortMap, SystemVersion,
};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};
use futures_util::StreamExt;

use crate::index::{describe, unmapped, Container, Index, RuntimeKind};
use crate::runtime::{recount, Backoff, Connected, Endpoint, Outage, State, StatusCell};

/// How long one request may wait for its answer's headers (not the events stream's body, which
/// stays open).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// How long [`probe`] waits for the whole exchange.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How far back the event stream of a new connection starts before the listing: events of
/// that second are replayed, harmlessly, in case the daemon's clock or `since` parsing is
/// coarse.
const REPLAY_MARGIN: Duration = Duration::from_secs(1);

/// Asks the daemon at `endpoint` for its version and its running containers, within
/// [`PROBE_TIMEOUT`]: for the start-up message and `adi doctor`.
///
/// # Errors
/// A one-line reason: no such socket, permission denied, connection refused, no answer in
/// time, or what the daemon answered.
pub async fn probe(endpoint: &Endpoint) -> Result<Connected, String> {
    let exchange = async {
        let (docker, version) = connect(endpoint).await?;
        let running = docker
            .list_containers(None::<ListContainersOptions>)
            .await
            .map_err(|e| reason(&e))?;
        Ok(Connected {
            version,
            containers: running.len(),
        })
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())))
}

/// Keeps `index`'s Docker entries equal to the running containers of the daemon at
/// `endpoint`, and `status` current, until the task is dropped (it never returns).
pub async fn watch(endpoint: Endpoint, index: Arc<Index>, status: Arc<StatusCell>) {
    let mut outage = Outage::new(RuntimeKind::Docker, &endpoint);
    let mut backoff = Backoff::new();
    if !matches!(status.get(), State::Connected(_)) {
        status.set(State::Connecting);
    }
    loop {
        let why = follow(&endpoint, &index, &status, &mut outage, &mut backoff).await;
        outage.failed(&why, &index, &status);
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One connection: list, then follow events until something breaks; returns why.
async fn follow(
    endpoint: &Endpoint,
    index: &Index,
    status: &StatusCell,
    outage: &mut Outage,
    backoff: &mut Backoff,
) -> String {
    let (docker, version) = match connect(endpoint).await {
        Ok(c) => c,
        Err(why) => return why,
    };
    let since = since_now();
    let running = match docker.list_containers(None::<ListContainersOptions>).await {
        Ok(list) => list,
        Err(e) => return reason(&e),
    };
    let mut all = Vec::with_capacity(running.len());
    for id in running.into_iter().filter_map(|c| c.id) {
        match inspect(&docker, &id).await {
            Ok(Some(c)) => all.push(c),
            Ok(None) => {}
            Err(why) => return why,
        }
    }
    let containers = all.len();
    index.replace(RuntimeKind::Docker, all);
    outage.connected(
        Connected {
            version,
            containers,
        },
        status,
    );
    backoff.reset();

    let mut events = docker.events(Some(EventsOptions {
        since: Some(since),
        until: None,
        filters: Some(HashMap::from([(
            "type".to_owned(),
            vec!["container".to_owned(), "network".to_owned()],
        )])),
    }));
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => return format!("event stream: {}", reason(&e)),
        };
        match change_of(&event) {
            Change::Refresh(id) => match inspect(&docker, &id).await {
                Ok(Some(c)) => index.upsert(c),
                Ok(None) => index.remove(&id),
                Err(why) => return why,
            },
            Change::Remove(id) => index.remove(&id),
            Change::None => continue,
        }
        recount(status, index, RuntimeKind::Docker);
    }
    "the event stream ended".to_owned()
}

/// A client for `endpoint` at an API version the daemon accepts, and the daemon's version
/// line.
async fn connect(endpoint: &Endpoint) -> Result<(Docker, String), String> {
    let client = |version: &ClientVersion| {
        let path = endpoint
            .path()
            .to_str()
            .ok_or_else(|| "the socket path is not UTF-8".to_owned())?;
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, version).map_err(|e| reason(&e))
    };
    let mut docker = client(API_DEFAULT_VERSION)?;
    let version = match docker.version().await {
        Ok(v) => v,
        Err(e) => {
            let Some(max) = too_new(&e) else {
                return Err(reason(&e));
            };
            docker = client(&max)?;
            docker.version().await.map_err(|e| reason(&e))?
        }
    };
    if let Some(server) = version.api_version.as_deref().and_then(parse_api_version) {
        if server < docker.client_version() {
            docker = client(&server)?;
        }
    }
    Ok((docker, version_line(&version)))
}

/// The version a daemon says is its newest, when it refused ours as too new.
fn too_new(e: &BollardError) -> Option<ClientVersion> {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 400,
            message,
        } => max_supported(message),
        _ => None,
    }
}

/// The version named by a refusal: "client version 1.53 is too new. Maximum supported API
/// version is 1.41".
fn max_supported(message: &str) -> Option<ClientVersion> {
    let (_, rest) = message.split_once("Maximum supported API version is ")?;
    parse_api_version(rest.split_whitespace().next()?.trim_end_matches('.'))
}

/// `1.41` as a client version.
fn parse_api_version(text: &str) -> Option<ClientVersion> {
    let (major, minor) = text.trim().split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// `Podman 4.3.1 (Docker API 1.41)` or `Docker 28.2.2 (API 1.50)`.
fn version_line(v: &SystemVersion) -> String {
    let api = v.api_version.as_deref().unwrap_or("?");
    let podman = v
        .components
        .iter()
        .flatten()
        .find(|c| c.name.starts_with("Podman"));
    match podman {
        Some(c) => format!("Podman {} (Docker API {api})", c.version),
        None => format!("Docker {} (API {api})", v.version.as_deref().unwrap_or("?")),
    }
}

/// Now less [`REPLAY_MARGIN`], as the `since` of the events API (seconds.nanoseconds).
fn since_now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(REPLAY_MARGIN);
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// Inspects one container: `None` when it is gone or not running.
async fn inspect(docker: &Docker, id: &str) -> Result<Option<Container>, String> {
    match docker.inspect_container(id, None).await {
        Ok(c) => Ok(container_of(c)),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(reason(&e)),
    }
}

/// What the index holds of an inspected container; `None` unless it runs.
fn container_of(c: ContainerInspectResponse) -> Option<Container> {
    let id = c.id?;
    if !c.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
        return None;
    }
    let config = c.config.unwrap_or_default();
    let image = config
        .image
        .filter(|i| !i.is_empty())
        .or(c.image)
        .unwrap_or_default();
    let labels: BTreeMap<String, String> = config.labels.unwrap_or_default().into_iter().collect();
    let info = describe(&id, c.name.as_deref().unwrap_or(""), &image, labels);
    let net = c.network_settings.unwrap_or_default();
    let mut networks: Vec<_> = net.networks.unwrap_or_default().into_iter().collect();
    networks.sort_by(|a, b| a.0.cmp(&b.0));
    let mut addrs = Vec::new();
    for (_, n) in networks {
        for ip in [n.ip_address, n.global_ipv6_address].into_iter().flatten() {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                let ip = unmapped(ip);
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
        }
    }
    Some(Container {
        info: Arc::new(info),
        runtime: RuntimeKind::Docker,
        addrs,
        published: published(net.ports.as_ref()),
    })
}

/// The host side of the published TCP ports (`"8080/tcp": [{"HostIp": "127.0.0.1",
/// "HostPort": "18080"}]`); an empty host address is every address (`0.0.0.0`).
fn published(ports: Option<&PortMap>) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = ports
        .into_iter()
        .flatten()
        .filter(|(port, _)| port.ends_with("/tcp"))
        .flat_map(|(_, bindings)| bindings.iter().flatten())
        .filter_map(|b| {
            let port: u16 = b.host_port.as_deref()?.parse().ok()?;
            let ip = match b.host_ip.as_deref() {
                None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Some(ip) => ip.parse().ok()?,
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What an event means for the index.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// Inspect this container again (it started, was renamed, joined or left a network...).
    Refresh(String),
    /// This container stopped running or is gone.
    Remove(String),
    /// Nothing that the index holds changed.
    None,
}

/// Container actions that change what the index holds (Docker's names; Podman's compatible
/// API uses the same ones for these).
fn change_of(e: &EventMessage) -> Change {
    let action = e.action.as_deref().unwrap_or("");
    let actor = e.actor.as_ref();
    let attribute = |key: &str| actor.and_then(|a| a.attributes.as_ref()?.get(key).cloned());
    let actor_id = || actor.and_then(|a| a.id.clone()).filter(|id| !id.is_empty());
    match e.typ {
        Some(EventMessageTypeEnum::CONTAINER) => {
            let Some(id) = actor_id() else {
                return Change::None;
            };
            match action {
                "start" | "restart" | "rename" | "update" | "pause" | "unpause" => {
                    Change::Refresh(id)
                }
                "die" | "died" | "destroy" | "remove" => Change::Remove(id),
                _ => Change::None,
            }
        }
        // Docker: the actor is the network, the container an attribute; Podman: the actor is
        // the container.
        Some(EventMessageTypeEnum::NETWORK) if matches!(action, "connect" | "disconnect") => {
            attribute("container")
                .filter(|id| !id.is_empty())
                .or_else(actor_id)
                .map_or(Change::None, Change::Refresh)
        }
        _ => Change::None,
    }
}

/// A bollard error as a short reason: the socket's I/O error when there is one (no such
/// socket, connection refused, permission denied), else the error and its causes on one line.
fn reason(e: &BollardError) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::NotFound => "no such socket".to_owned(),
                std::io::ErrorKind::ConnectionRefused => {
                    "connection refused (nothing listens on the socket)".to_owned()
                }
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied (run adi as root, or as a member of the socket's group)"
                        .to_owned()
                }
                _ => io.to_string(),
            };
        }
        cause = c.source();
    }
    match e {
        BollardError::SocketNotFoundError(_) => "no such socket".to_owned(),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => format!("the daemon answered {status_code}: {message}"),
        _ => adi_core::error::one_line(e),
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::EventActor;

    use super::*;

    const PODMAN_INSPECT: &str = include_str!("../tests/data/podman_inspect.json");
    const PODMAN_VERSION: &str = include_str!("../tests/data/podman_version.json");

    #[test]
    fn an_inspected_podman_container_becomes_an_index_entry() {
        let inspected: ContainerInspectResponse =
            serde_json::from_str(PODMAN_INSPECT).expect("podman's inspect answer parses");
        let c = container_of(inspected).expect("running");
        assert_eq!(c.info.container_name, "web6");
        assert_eq!(c.info.service, "web");
        assert_eq!(c.info.image, "localhost/adi-bb:1");
        assert_eq!(
            c.info
                .labels
                .get("com.docker.compose.service")
                .map(String::as_str),
            Some("web")
        );
        let addrs: Vec<String> = c.addrs.iter().map(ToString::to_string).collect();
        // Networks in name order, each network's IPv4 then IPv6 address.
        assert_eq!(addrs, ["10.213.7.5", "10.213.8.3", "fd42:ad1:8::3"]);
        assert_eq!(
            c.published,
            ["127.0.0.1:18086".parse().expect("test input")]
        );
        assert_eq!(c.runtime, RuntimeKind::Docker);
    }

    #[test]
    fn a_stopped_container_is_not_an_entry() {
        let mut inspected: ContainerInspectResponse =
            serde_json::from_str(PODMAN_INSPECT).expect("test input");
        inspected.state.as_mut().expect("test input").running = Some(false);
        assert!(container_of(inspected).is_none());
    }

    #[test]
    fn published_ports_are_tcp_host_sides() {
        let ports: PortMap = serde_json::from_str(
            r#"{
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                           {"HostIp": "::", "HostPort": "8080"}],
                "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}],
                "9000/tcp": [{"HostIp": "", "HostPort": "9000"}],
                "9100/tcp": null
            }"#,
        )
        .expect("test input");
        let got: Vec<String> = published(Some(&ports))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["0.0.0.0:8080", "0.0.0.0:9000", "[::]:8080"]);
    }

    #[test]
    fn podman_versions_name_podman_and_its_docker_api() {
        let v: SystemVersion = serde_json::from_str(PODMAN_VERSION).expect("test input");
        assert_eq!(version_line(&v), "Podman 4.3.1 (Docker API 1.41)");
        let docker = SystemVersion {
            version: Some("28.2.2".into()),
            api_version: Some("1.50".into()),
            ..SystemVersion::default()
        };
        assert_eq!(version_line(&docker), "Docker 28.2.2 (API 1.50)");
    }

    #[test]
    fn a_too_new_refusal_names_the_version_to_use() {
        let v =
            max_supported("client version 1.53 is too new. Maximum supported API version is 1.41")
                .expect("test input");
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        assert!(max_supported("page not found").is_none());
        assert!(parse_api_version("1.x").is_none());
        assert!(since_now().contains('.'));
    }

    fn event(
        typ: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attrs: &[(&str, &str)],
    ) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
            }),
            ..EventMessage::default()
        }
    }

    #[test]
    fn events_name_the_container_to_refresh_or_forget() {
        use EventMessageTypeEnum::{CONTAINER, IMAGE, NETWORK};
        let c = |action| change_of(&event(CONTAINER, action, "c1", &[("name", "web")]));
        assert_eq!(c("start"), Change::Refresh("c1".into()));
        assert_eq!(c("rename"), Change::Refresh("c1".into()));
        assert_eq!(c("die"), Change::Remove("c1".into()));
        assert_eq!(c("destroy"), Change::Remove("c1".into()));
        assert_eq!(c("remove"), Change::Remove("c1".into()));
        assert_eq!(c("exec_start: sh"), Change::None);
        assert_eq!(c("health_status: healthy"), Change::None);
        assert_eq!(c("create"), Change::None);
        // Docker: the network is the actor, the container an attribute.
        let docker = event(
            NETWORK,
            "connect",
            "net1",
            &[("container", "c2"), ("type", "bridge")],
        );
        assert_eq!(change_of(&docker), Change::Refresh("c2".into()));
        // Podman: the container is the actor.
        let podman = event(NETWORK, "disconnect", "c3", &[("name", "web")]);
        assert_eq!(change_of(&podman), Change::Refresh("c3".into()));
        assert_eq!(change_of(&event(NETWORK, "create", "n", &[])), Change::None);
        assert_eq!(change_of(&event(IMAGE, "pull", "i", &[])), Change::None);
    }
}
