//! The containerd watcher (<https://github.com/containerd/containerd/tree/main/api>), over
//! containerd's gRPC API on its unix socket.
//!
//! [`watch`] lists the containers of one namespace, or of every namespace when none is given
//! (`k8s.io` included; `moby` left out, as Docker's containers are better described by the
//! Docker watcher), with their tasks, and replaces the [`Index`]'s containerd entries with the
//! ones whose task runs. Then it follows containerd's event stream (`/tasks/start`,
//! `/tasks/exit`, `/tasks/delete`, `/containers/update`, `/containers/delete`) and fetches the
//! one container an event names again, or forgets it. Same outage rules as the Docker watcher:
//! one warning per outage, the entries forgotten meanwhile, retries from 1 s doubling to 30 s.
//!
//! containerd does not know addresses (the CNI plugins or nerdctl set them up): they are read
//! from the task's network namespace, `/proc/PID/net/fib_trie` (its `/32 host LOCAL` entries
//! outside 127.0.0.0/8, [`crate::netns::local_ipv4`]) and `/proc/PID/net/if_inet6` (outside `::1` and
//! fe80::/10, [`crate::netns::global_ipv6`]). A task in the host's network namespace (the one of pid 1, else
//! of adi itself) has no addresses of its own. Ports published by nerdctl come from its
//! `nerdctl/ports` label.
//!
//! Names: the `nerdctl/name` label, else `POD/CONTAINER` from the CRI labels, else the id;
//! Kubernetes pod sandboxes (`io.cri-containerd.kind=sandbox`, the pause containers) are left
//! out, so that a pod's address names one of its containers. Containers are indexed by their
//! id, as the cgroup path names them; the same id in two namespaces is one entry.
//!
//! containerd's Subscribe call answers nothing before the first event, so there is no moment at
//! which the subscription is known to be in place: the list is read once right after the call
//! is sent and once more [`RELIST_AFTER`] later, which covers a change between the two.
//!
//! The few messages adi reads are written out below as prost structs, with the field numbers of
//! containerd's `.proto` files (unknown fields are skipped, so the API's later additions do
//! not matter): no protoc at build time.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tonic::client::Grpc;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::index::{describe, Container, Index, RuntimeKind};
use crate::runtime::{recount, Backoff, Connected, Endpoint, Outage, State, StatusCell};

/// How long [`probe`] waits for the whole exchange.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one call (not the event stream) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// When the list is read a second time after subscribing (see the module comment).
pub const RELIST_AFTER: Duration = Duration::from_secs(1);

/// Docker's own namespace, left out when watching every namespace.
const DOCKER_NAMESPACE: &str = "moby";

/// The gRPC metadata key naming the namespace of a call (containerd's `namespaces.GRPCHeader`).
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// containerd's messages, as far as adi reads them. Field numbers from containerd's API
/// (`api/services/*/v1/*.proto`, `api/types/task/task.proto`, `api/events/*.proto`), stable
/// since containerd 1.0.
mod api {
    use std::collections::HashMap;

    pub(super) const VERSION: &str = "/containerd.services.version.v1.Version/Version";
    pub(super) const LIST_NAMESPACES: &str = "/containerd.services.namespaces.v1.Namespaces/List";
    pub(super) const LIST_CONTAINERS: &str = "/containerd.services.containers.v1.Containers/List";
    pub(super) const GET_CONTAINER: &str = "/containerd.services.containers.v1.Containers/Get";
    pub(super) const LIST_TASKS: &str = "/containerd.services.tasks.v1.Tasks/List";
    pub(super) const GET_TASK: &str = "/containerd.services.tasks.v1.Tasks/Get";
    pub(super) const SUBSCRIBE: &str = "/containerd.services.events.v1.Events/Subscribe";

    /// `google.protobuf.Empty`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Empty {}

    /// `google.protobuf.Any`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    /// `version.v1.VersionResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct VersionResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub revision: String,
    }

    /// `namespaces.v1.ListNamespacesRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ListNamespacesRequest {
        #[prost(string, tag = "1")]
        pub filter: String,
    }

    /// `namespaces.v1.Namespace`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Namespace {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    /// `namespaces.v1.ListNamespacesResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ListNamespacesResponse {
        #[prost(message, repeated, tag = "1")]
        pub namespaces: Vec<Namespace>,
    }

    /// `containers.v1.Container` (runtime, spec, snapshots, times, extensions left out).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Container {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(map = "string, string", tag = "2")]
        pub labels: HashMap<String, String>,
        #[prost(string, tag = "3")]
        pub image: String,
    }

    /// `containers.v1.ListContainersRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ListContainersRequest {
        #[prost(string, repeated, tag = "1")]
        pub filters: Vec<String>,
    }

    /// `containers.v1.ListContainersResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ListContainersResponse {
        #[prost(message, repeated, tag = "1")]
        pub containers: Vec<Container>,
    }

    /// `containers.v1.GetContainerRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct GetContainerRequest {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    /// `containers.v1.GetContainerResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct GetContainerResponse {
        #[prost(message, optional, tag = "1")]
        pub container: Option<Container>,
    }

    /// `v1.types.Process`: a task (stdio, exit fields left out).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Process {
        #[prost(string, tag = "1")]
        pub container_id: String,
        #[prost(string, tag = "2")]
        pub id: String,
        #[prost(uint32, tag = "3")]
        pub pid: u32,
        /// `v1.types.Status`: UNKNOWN 0, CREATED 1, RUNNING 2, STOPPED 3, PAUSED 4, PAUSING 5.
        #[prost(int32, tag = "4")]
        pub status: i32,
    }

    impl Process {
        /// Whether it runs (a paused task keeps its addresses).
        pub(super) fn alive(&self) -> bool {
            matches!(self.status, 2 | 4 | 5) && self.pid != 0
        }
    }

    /// `tasks.v1.ListTasksRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ListTasksRequest {
        #[prost(string, tag = "1")]
        pub filter: String,
    }

    /// `tasks.v1.ListTasksResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ListTasksResponse {
        #[prost(message, repeated, tag = "1")]
        pub tasks: Vec<Process>,
    }

    /// `tasks.v1.GetRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct GetTaskRequest {
        #[prost(string, tag = "1")]
        pub container_id: String,
        #[prost(string, tag = "2")]
        pub exec_id: String,
    }

    /// `tasks.v1.GetResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct GetTaskResponse {
        #[prost(message, optional, tag = "1")]
        pub process: Option<Process>,
    }

    /// `events.v1.SubscribeRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct SubscribeRequest {
        #[prost(string, repeated, tag = "1")]
        pub filters: Vec<String>,
    }

    /// `types.Envelope` (`events.v1.Envelope` before containerd 2.0, same fields).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Envelope {
        #[prost(string, tag = "2")]
        pub namespace: String,
        #[prost(string, tag = "3")]
        pub topic: String,
        #[prost(message, optional, tag = "4")]
        pub event: Option<Any>,
    }

    /// The container an event is about: field 1 of `TaskStart`, `TaskExit` and `TaskDelete`
    /// (`container_id`) and of `ContainerCreate`, `ContainerUpdate` and `ContainerDelete`
    /// (`id`), which is all adi reads of them.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Subject {
        #[prost(string, tag = "1")]
        pub container_id: String,
    }
}

/// Asks containerd at `endpoint` for its version and its running containers (in `namespace`,
/// or in every namespace but `moby`), within [`PROBE_TIMEOUT`].
///
/// # Errors
/// A one-line reason: no such socket, permission denied, connection refused, no answer in
/// time, or the failed call.
pub async fn probe(endpoint: &Endpoint, namespace: Option<&str>) -> Result<Connected, String> {
    let exchange = async {
        let mut client = Client::connect(endpoint).await?;
        let version = client.version().await?;
        let mut containers = 0;
        for ns in client.namespaces(namespace).await? {
            let tasks = client.tasks(&ns).await?;
            let listed = client.containers(&ns).await?;
            containers += listed
                .iter()
                .filter(|c| !is_sandbox(c) && tasks.get(&c.id).is_some_and(api::Process::alive))
                .count();
        }
        Ok(Connected {
            version,
            containers,
        })
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())))
}

/// Keeps `index`'s containerd entries equal to the running containers of containerd at
/// `endpoint` (in `namespace`, or in every namespace but `moby`), and `status` current, until
/// the task is dropped (it never returns).
pub async fn watch(
    endpoint: Endpoint,
    namespace: Option<String>,
    index: Arc<Index>,
    status: Arc<StatusCell>,
) {
    let mut outage = Outage::new(RuntimeKind::Containerd, &endpoint);
    let mut backoff = Backoff::new();
    if !matches!(status.get(), State::Connected(_)) {
        status.set(State::Connecting);
    }
    loop {
        let why = follow(
            &endpoint,
            namespace.as_deref(),
            &index,
            &status,
            &mut outage,
            &mut backoff,
        )
        .await;
        outage.failed(&why, &index, &status);
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One connection: subscribe, list, follow events until something breaks; returns why.
async fn follow(
    endpoint: &Endpoint,
    namespace: Option<&str>,
    index: &Index,
    status: &StatusCell,
    outage: &mut Outage,
    backoff: &mut Backoff,
) -> String {
    let mut client = match Client::connect(endpoint).await {
        Ok(c) => c,
        Err(why) => return why,
    };
    let version = match client.version().await {
        Ok(v) => v,
        Err(why) => return why,
    };
    let host_netns = host_netns();
    let mut events = client.subscribe();
    if let Err(why) = relist(&mut client, namespace, index, host_netns.as_ref()).await {
        return why;
    }
    outage.connected(
        Connected {
            version,
            containers: index.count(RuntimeKind::Containerd),
        },
        status,
    );
    backoff.reset();
    let relist_at = tokio::time::sleep(RELIST_AFTER);
    tokio::pin!(relist_at);
    let mut relisted = false;
    loop {
        tokio::select! {
            () = &mut relist_at, if !relisted => {
                relisted = true;
                if let Err(why) = relist(&mut client, namespace, index, host_netns.as_ref()).await {
                    return why;
                }
            }
            envelope = events.recv() => {
                let envelope = match envelope {
                    Some(Ok(e)) => e,
                    Some(Err(why)) => return why,
                    None => return "the event stream ended".to_owned(),
                };
                let Some((ns, id, change)) = change_of(&envelope, namespace) else {
                    continue;
                };
                match change {
                    Change::Refresh => {
                        match client.container(&ns, &id, host_netns.as_ref()).await {
                            Ok(Some(c)) => index.upsert(c),
                            Ok(None) => index.remove(&id),
                            Err(why) => return why,
                        }
                    }
                    Change::Remove => index.remove(&id),
                }
            }
        }
        recount(status, index, RuntimeKind::Containerd);
    }
}

/// Lists every watched namespace's running containers into the index.
async fn relist(
    client: &mut Client,
    namespace: Option<&str>,
    index: &Index,
    host_netns: Option<&PathBuf>,
) -> Result<(), String> {
    let mut all = Vec::new();
    for ns in client.namespaces(namespace).await? {
        let tasks = client.tasks(&ns).await?;
        for c in client.containers(&ns).await? {
            if let Some(task) = tasks.get(&c.id).filter(|t| t.alive()) {
                if !is_sandbox(&c) {
                    all.push(container_of(&c, task.pid, host_netns));
                }
            }
        }
    }
    index.replace(RuntimeKind::Containerd, all);
    Ok(())
}

/// What an event means for the index.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// Fetch the container and its task again.
    Refresh,
    /// It is gone.
    Remove,
}

/// The namespace, container id and change an event means, if it is about a watched
/// container.
fn change_of(e: &api::Envelope, namespace: Option<&str>) -> Option<(String, String, Change)> {
    let watched = match namespace {
        Some(ns) => e.namespace == ns,
        None => e.namespace != DOCKER_NAMESPACE,
    };
    if !watched {
        return None;
    }
    let change = match e.topic.as_str() {
        "/tasks/start" | "/tasks/exit" | "/tasks/delete" | "/tasks/paused" | "/tasks/resumed"
        | "/containers/update" => Change::Refresh,
        "/containers/delete" => Change::Remove,
        _ => return None,
    };
    let any = e.event.as_ref()?;
    let subject = <api::Subject as prost::Message>::decode(any.value.as_slice()).ok()?;
    (!subject.container_id.is_empty()).then(|| (e.namespace.clone(), subject.container_id, change))
}

/// Whether a container is a Kubernetes pod sandbox (a pause container).
fn is_sandbox(c: &api::Container) -> bool {
    c.labels.get("io.cri-containerd.kind").map(String::as_str) == Some("sandbox")
}

/// The index entry of a container whose task runs as `pid`.
fn container_of(c: &api::Container, pid: u32, host_netns: Option<&PathBuf>) -> Container {
    let labels: BTreeMap<String, String> = c
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let name = name_of(&labels).unwrap_or_else(|| c.id.clone());
    let published = labels
        .get("nerdctl/ports")
        .map(|p| nerdctl_ports(p))
        .unwrap_or_default();
    let info = describe(&c.id, &name, &c.image, labels);
    Container {
        info: Arc::new(info),
        runtime: RuntimeKind::Containerd,
        addrs: netns_addrs(pid, host_netns),
        published,
    }
}

/// nerdctl's name label, else `POD/CONTAINER` from the CRI labels.
fn name_of(labels: &BTreeMap<String, String>) -> Option<String> {
    let label = |k: &str| labels.get(k).filter(|v| !v.is_empty());
    if let Some(name) = label("nerdctl/name") {
        return Some(name.clone());
    }
    let container = label("io.kubernetes.container.name")?;
    Some(match label("io.kubernetes.pod.name") {
        Some(pod) => format!("{pod}/{container}"),
        None => container.clone(),
    })
}

/// The host side of the TCP ports in nerdctl's `nerdctl/ports` label
/// (`[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"}]`).
fn nerdctl_ports(label: &str) -> Vec<SocketAddr> {
    let Ok(serde_json::Value::Array(ports)) = serde_json::from_str(label) else {
        return Vec::new();
    };
    ports
        .iter()
        .filter(|p| {
            p.get("Protocol")
                .and_then(serde_json::Value::as_str)
                .is_none_or(|proto| proto.eq_ignore_ascii_case("tcp"))
        })
        .filter_map(|p| {
            let port = u16::try_from(p.get("HostPort")?.as_u64()?).ok()?;
            let ip = match p.get("HostIP").and_then(serde_json::Value::as_str) {
                None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Some(ip) => ip.parse().ok()?,
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

/// The host's network namespace (`net:[INODE]`): pid 1's, else (when /proc/1 may not be read)
/// adi's own.
fn host_netns() -> Option<PathBuf> {
    std::fs::read_link("/proc/1/ns/net")
        .or_else(|_| std::fs::read_link("/proc/self/ns/net"))
        .ok()
}

/// The addresses of `pid`'s network namespace, unless it is `host_netns` (or unknown: then
/// none).
fn netns_addrs(pid: u32, host_netns: Option<&PathBuf>) -> Vec<IpAddr> {
    let Ok(netns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) else {
        return Vec::new();
    };
    if host_netns == Some(&netns) {
        return Vec::new();
    }
    crate::netns::addresses_of(pid)
}

/// A containerd gRPC connection.
#[derive(Debug, Clone)]
struct Client {
    grpc: Grpc<Channel>,
}

impl Client {
    /// Connects to the socket (the channel's URI is a placeholder: every connection goes to
    /// the socket).
    async fn connect(endpoint: &Endpoint) -> Result<Self, String> {
        let path = endpoint.path().to_owned();
        let channel = tonic::transport::Endpoint::from_static("http://containerd")
            .connect_timeout(CALL_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move { UnixStream::connect(path).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|e| reason_of_error(&e))?;
        Ok(Self {
            grpc: Grpc::new(channel),
        })
    }

    /// One call, in `namespace` if given.
    async fn call<Q, A>(
        &mut self,
        path: &'static str,
        namespace: Option<&str>,
        q: Q,
    ) -> Result<A, tonic::Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        let request = request(q, namespace)?;
        let exchange = async {
            self.grpc
                .ready()
                .await
                .map_err(|e| tonic::Status::unavailable(reason_of_error(&e)))?;
            let codec = tonic_prost::ProstCodec::<Q, A>::default();
            self.grpc
                .unary(request, PathAndQuery::from_static(path), codec)
                .await
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(answer) => answer.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }

    /// `containerd 1.6.20`.
    async fn version(&mut self) -> Result<String, String> {
        let v: api::VersionResponse = self
            .call(api::VERSION, None, api::Empty {})
            .await
            .map_err(|s| reason_of_status(&s))?;
        Ok(format!("containerd {}", v.version))
    }

    /// `only`, or every namespace but Docker's.
    async fn namespaces(&mut self, only: Option<&str>) -> Result<Vec<String>, String> {
        if let Some(ns) = only {
            return Ok(vec![ns.to_owned()]);
        }
        let list: api::ListNamespacesResponse = self
            .call(
                api::LIST_NAMESPACES,
                None,
                api::ListNamespacesRequest::default(),
            )
            .await
            .map_err(|s| reason_of_status(&s))?;
        Ok(list
            .namespaces
            .into_iter()
            .map(|n| n.name)
            .filter(|n| n != DOCKER_NAMESPACE)
            .collect())
    }

    /// A namespace's containers.
    async fn containers(&mut self, ns: &str) -> Result<Vec<api::Container>, String> {
        let list: api::ListContainersResponse = self
            .call(
                api::LIST_CONTAINERS,
                Some(ns),
                api::ListContainersRequest::default(),
            )
            .await
            .map_err(|s| reason_of_status(&s))?;
        Ok(list.containers)
    }

    /// A namespace's tasks, by container id.
    async fn tasks(&mut self, ns: &str) -> Result<HashMap<String, api::Process>, String> {
        let list: api::ListTasksResponse = self
            .call(api::LIST_TASKS, Some(ns), api::ListTasksRequest::default())
            .await
            .map_err(|s| reason_of_status(&s))?;
        // containerd 1.x leaves `container_id` empty here: a task's `id` is its container's.
        Ok(list
            .tasks
            .into_iter()
            .map(|t| {
                let id = if t.container_id.is_empty() {
                    &t.id
                } else {
                    &t.container_id
                };
                (id.clone(), t)
            })
            .collect())
    }

    /// One container, if it exists, has a running task and is no sandbox.
    async fn container(
        &mut self,
        ns: &str,
        id: &str,
        host_netns: Option<&PathBuf>,
    ) -> Result<Option<Container>, String> {
        let get = api::GetContainerRequest { id: id.to_owned() };
        let found: Result<api::GetContainerResponse, _> =
            self.call(api::GET_CONTAINER, Some(ns), get).await;
        let c = match found {
            Ok(r) => r.container,
            Err(s) if s.code() == Code::NotFound => None,
            Err(s) => return Err(reason_of_status(&s)),
        };
        let Some(c) = c.filter(|c| !is_sandbox(c)) else {
            return Ok(None);
        };
        let get = api::GetTaskRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
        };
        let task: Result<api::GetTaskResponse, _> = self.call(api::GET_TASK, Some(ns), get).await;
        let task = match task {
            Ok(r) => r.process,
            Err(s) if s.code() == Code::NotFound => None,
            Err(s) => return Err(reason_of_status(&s)),
        };
        Ok(task
            .filter(api::Process::alive)
            .map(|t| container_of(&c, t.pid, host_netns)))
    }

    /// Subscribes to the task and container events of every namespace. The call runs in its
    /// own task, as containerd answers it only with the first event.
    fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(256);
        let mut grpc = self.grpc.clone();
        let task = tokio::spawn(async move {
            let stream = async {
                grpc.ready()
                    .await
                    .map_err(|e| tonic::Status::unavailable(reason_of_error(&e)))?;
                let q = api::SubscribeRequest {
                    filters: vec![
                        r#"topic~="^/tasks/""#.to_owned(),
                        r#"topic~="^/containers/""#.to_owned(),
                    ],
                };
                let codec =
                    tonic_prost::ProstCodec::<api::SubscribeRequest, api::Envelope>::default();
                grpc.server_streaming(
                    Request::new(q),
                    PathAndQuery::from_static(api::SUBSCRIBE),
                    codec,
                )
                .await
            };
            let mut stream = match stream.await {
                Ok(s) => s.into_inner(),
                Err(s) => {
                    let _ = tx
                        .send(Err(format!("event stream: {}", reason_of_status(&s))))
                        .await;
                    return;
                }
            };
            loop {
                let item = match stream.message().await {
                    Ok(Some(e)) => Ok(e),
                    Ok(None) => Err("the event stream ended".to_owned()),
                    Err(s) => Err(format!("event stream: {}", reason_of_status(&s))),
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Subscription { rx, task }
    }
}

/// The events of a subscription (or why its stream ended), until it is dropped.
#[derive(Debug)]
struct Subscription {
    rx: mpsc::Receiver<Result<api::Envelope, String>>,
    /// The task reading the stream: ended on drop, as it holds the connection.
    task: tokio::task::JoinHandle<()>,
}

impl Subscription {
    async fn recv(&mut self) -> Option<Result<api::Envelope, String>> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request carrying the namespace header.
fn request<Q>(q: Q, namespace: Option<&str>) -> Result<Request<Q>, tonic::Status> {
    let mut request = Request::new(q);
    if let Some(ns) = namespace {
        let value = ns
            .parse()
            .map_err(|_| tonic::Status::invalid_argument(format!("bad namespace name {ns:?}")))?;
        request.metadata_mut().insert(NAMESPACE_HEADER, value);
    }
    Ok(request)
}

/// A failed call as a short reason: the socket's I/O error when there is one.
fn reason_of_status(s: &tonic::Status) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(s);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        cause = c.source();
    }
    if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        s.message().to_owned()
    }
}

/// A transport error as a short reason: the socket's I/O error when there is one.
fn reason_of_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        cause = c.source();
    }
    adi_core::error::one_line(e)
}

/// The usual socket errors in words.
fn io_reason(io: &std::io::Error) -> String {
    match io.kind() {
        std::io::ErrorKind::NotFound => "no such socket".to_owned(),
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens on the socket)".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => "permission denied (run adi as root)".to_owned(),
        _ => io.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn names_from_nerdctl_then_the_cri_labels_then_the_id() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            name_of(&labels(&[("nerdctl/name", "web")])).as_deref(),
            Some("web")
        );
        assert_eq!(
            name_of(&labels(&[
                ("io.kubernetes.container.name", "ratings"),
                ("io.kubernetes.pod.name", "ratings-v1-5f9d")
            ]))
            .as_deref(),
            Some("ratings-v1-5f9d/ratings")
        );
        assert_eq!(name_of(&labels(&[("app", "x")])), None);
        let c = api::Container {
            id: "adi-c1".into(),
            labels: HashMap::from([(
                "nerdctl/ports".to_owned(),
                r#"[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"},
                    {"HostPort":5353,"ContainerPort":53,"Protocol":"udp","HostIP":"0.0.0.0"}]"#
                    .to_owned(),
            )]),
            image: "localhost/adi-bb:1".into(),
        };
        let entry = container_of(&c, u32::MAX, None);
        assert_eq!(entry.info.container_name, "adi-c1");
        assert_eq!(entry.info.image, "localhost/adi-bb:1");
        assert_eq!(
            entry.published,
            ["0.0.0.0:8080".parse().expect("test input")]
        );
        assert!(entry.addrs.is_empty());
        assert!(nerdctl_ports("not json").is_empty());
    }

    #[test]
    fn events_name_their_container_and_namespace() {
        let envelope = |ns: &str, topic: &str, id: &str| api::Envelope {
            namespace: ns.into(),
            topic: topic.into(),
            event: Some(api::Any {
                type_url: "containerd.events.TaskStart".into(),
                value: api::Subject {
                    container_id: id.into(),
                }
                .encode_to_vec(),
            }),
        };
        assert_eq!(
            change_of(&envelope("default", "/tasks/start", "c1"), None),
            Some(("default".into(), "c1".into(), Change::Refresh))
        );
        assert_eq!(
            change_of(&envelope("k8s.io", "/containers/delete", "c2"), None),
            Some(("k8s.io".into(), "c2".into(), Change::Remove))
        );
        assert_eq!(
            change_of(&envelope("moby", "/tasks/start", "c1"), None),
            None
        );
        assert_eq!(
            change_of(&envelope("default", "/tasks/start", "c1"), Some("k8s.io")),
            None
        );
        assert_eq!(
            change_of(&envelope("default", "/images/create", "i"), None),
            None
        );
        assert_eq!(
            change_of(&envelope("default", "/tasks/exit", ""), None),
            None
        );
    }

    #[test]
    fn task_states() {
        let task = |status, pid| api::Process {
            container_id: "c".into(),
            id: "c".into(),
            pid,
            status,
        };
        assert!(task(2, 10).alive());
        assert!(task(4, 10).alive());
        assert!(!task(3, 10).alive());
        assert!(!task(1, 10).alive());
        assert!(!task(2, 0).alive());
    }
}
