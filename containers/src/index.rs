//! What the runtimes said about their containers, by id, by address and by published port:
//! filled by the runtime watchers, read by the pipeline.
//!
//! Lookups take a read lock and clone an `Arc`; the pipeline caches what it found per process
//! and per connection, so the lock is taken once per new process or connection, never per
//! message.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use adi_core::event::ContainerInfo;

/// Which runtime reported a container (a runtime's listing replaces only its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// The Docker Engine API: Docker, or Podman's compatible service.
    Docker,
    /// containerd's API.
    Containerd,
}

impl RuntimeKind {
    /// Its name in messages and `adi doctor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Containerd => "containerd",
        }
    }
}

/// One container as a runtime reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// What events say of it.
    pub info: Arc<ContainerInfo>,
    /// Who reported it.
    pub runtime: RuntimeKind,
    /// Its addresses on every network it is attached to (IPv4-mapped IPv6 unmapped).
    pub addrs: Vec<IpAddr>,
    /// Its ports published on the host, as the host side's address (`0.0.0.0:8080`: every
    /// address of the host).
    pub published: Vec<SocketAddr>,
}

/// The containers the runtimes reported, shared by the watchers and the pipeline.
#[derive(Debug, Default)]
pub struct Index {
    inner: RwLock<Inner>,
    /// Bumped by every change, so that caches of lookups can tell they are stale.
    generation: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    containers: HashMap<String, Container>,
    ips: HashMap<IpAddr, String>,
    /// Host port -> (host address, container id).
    ports: HashMap<u16, Vec<(IpAddr, String)>>,
}

impl Inner {
    fn insert(&mut self, c: Container) {
        let id = c.info.container_id.clone();
        self.remove(&id);
        for ip in &c.addrs {
            self.ips.insert(unmapped(*ip), id.clone());
        }
        for p in &c.published {
            self.ports
                .entry(p.port())
                .or_default()
                .push((unmapped(p.ip()), id.clone()));
        }
        self.containers.insert(id, c);
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(old) = self.containers.remove(id) else {
            return false;
        };
        for ip in &old.addrs {
            if self.ips.get(&unmapped(*ip)).is_some_and(|held| held == id) {
                self.ips.remove(&unmapped(*ip));
            }
        }
        for p in &old.published {
            if let Some(v) = self.ports.get_mut(&p.port()) {
                v.retain(|(_, held)| held != id);
                if v.is_empty() {
                    self.ports.remove(&p.port());
                }
            }
        }
        true
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a container, or replaces what was known of it.
    pub fn upsert(&self, c: Container) {
        self.write().insert(c);
        self.bump();
    }

    /// Forgets a container (it died or was removed).
    pub fn remove(&self, id: &str) {
        if self.write().remove(id) {
            self.bump();
        }
    }

    /// Replaces everything `runtime` reported with `all` (a fresh listing, after a
    /// (re)connection).
    pub fn replace(&self, runtime: RuntimeKind, all: Vec<Container>) {
        let mut inner = self.write();
        let stale: Vec<String> = inner
            .containers
            .values()
            .filter(|c| c.runtime == runtime)
            .map(|c| c.info.container_id.clone())
            .collect();
        for id in stale {
            inner.remove(&id);
        }
        for c in all {
            inner.insert(c);
        }
        drop(inner);
        self.bump();
    }

    /// Forgets everything `runtime` reported (it went away).
    pub fn clear(&self, runtime: RuntimeKind) {
        self.replace(runtime, Vec::new());
    }

    /// The container with id `id` (the full id, as the cgroup path names it).
    pub fn get(&self, id: &str) -> Option<Arc<ContainerInfo>> {
        self.read().containers.get(id).map(|c| Arc::clone(&c.info))
    }

    /// The container that `addr` reaches: the one holding that address, else the one whose
    /// published port it is (a host address, loopback included, and a published host port).
    pub fn at(&self, addr: SocketAddr) -> Option<Arc<ContainerInfo>> {
        let ip = unmapped(addr.ip());
        let inner = self.read();
        let id = inner.ips.get(&ip).or_else(|| {
            let published = inner.ports.get(&addr.port())?;
            published
                .iter()
                .find(|(host, _)| *host == ip)
                .or_else(|| published.iter().find(|(host, _)| host.is_unspecified()))
                .map(|(_, id)| id)
        })?;
        inner.containers.get(id).map(|c| Arc::clone(&c.info))
    }

    /// Whether `addr` is some container's own address (not a published port).
    pub fn holds_ip(&self, ip: IpAddr) -> bool {
        self.read().ips.contains_key(&unmapped(ip))
    }

    /// Whether container `id` has addresses of its own (one on the host's network has none).
    pub fn has_addresses(&self, id: &str) -> bool {
        self.read()
            .containers
            .get(id)
            .is_some_and(|c| !c.addrs.is_empty())
    }

    /// How many containers are known.
    pub fn len(&self) -> usize {
        self.read().containers.len()
    }

    /// Whether no container is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many containers `runtime` reported.
    pub fn count(&self, runtime: RuntimeKind) -> usize {
        self.read()
            .containers
            .values()
            .filter(|c| c.runtime == runtime)
            .count()
    }

    /// Changes so far: a cache of lookups made at an older generation may be stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A writer that panicked left whole entries (each change is one insert or remove).
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`: containers are reported with IPv4 addresses, sockets may
/// see them mapped.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Labels that name a container's service, most specific first: the compose service (Docker
/// Compose, podman-compose, nerdctl compose), the Kubernetes app name, the Kubernetes
/// container name (CRI).
pub const SERVICE_LABELS: &[&str] = &[
    "com.docker.compose.service",
    "app.kubernetes.io/name",
    "io.kubernetes.container.name",
];

/// The service a container runs: the first of [`SERVICE_LABELS`] it has, else its name.
pub fn service_of(labels: &BTreeMap<String, String>, name: &str) -> String {
    SERVICE_LABELS
        .iter()
        .find_map(|l| labels.get(*l).filter(|v| !v.is_empty()))
        .map_or_else(|| name.to_owned(), Clone::clone)
}

/// A container's description from what a runtime reports: `name` may carry Docker's leading
/// `/`.
pub fn describe(
    id: &str,
    name: &str,
    image: &str,
    labels: BTreeMap<String, String>,
) -> ContainerInfo {
    let name = name.trim_start_matches('/');
    let name = if name.is_empty() { id } else { name };
    ContainerInfo {
        service: service_of(&labels, name),
        image: image.to_owned(),
        container_id: id.to_owned(),
        container_name: name.to_owned(),
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, ip: &str, published: &[&str]) -> Container {
        Container {
            info: Arc::new(describe(
                id,
                &format!("/{id}-1"),
                "localhost/img:1",
                BTreeMap::new(),
            )),
            runtime: RuntimeKind::Docker,
            addrs: vec![ip.parse().expect("address")],
            published: published
                .iter()
                .map(|p| p.parse().expect("address"))
                .collect(),
        }
    }

    #[test]
    fn addresses_and_published_ports_find_their_container() {
        let index = Index::new();
        index.upsert(container("aaa", "10.89.0.2", &["0.0.0.0:8080"]));
        index.upsert(container("bbb", "10.89.0.3", &["127.0.0.1:9090"]));
        let at = |a: &str| {
            index
                .at(a.parse().expect("present"))
                .map(|c| c.container_id.clone())
        };
        assert_eq!(at("10.89.0.2:9080").as_deref(), Some("aaa"));
        assert_eq!(at("[::ffff:10.89.0.3]:5432").as_deref(), Some("bbb"));
        // Published on every host address: loopback and the host's own address reach it.
        assert_eq!(at("127.0.0.1:8080").as_deref(), Some("aaa"));
        assert_eq!(at("192.168.1.5:8080").as_deref(), Some("aaa"));
        // Published on loopback only.
        assert_eq!(at("127.0.0.1:9090").as_deref(), Some("bbb"));
        assert_eq!(at("192.168.1.5:9090"), None);
        assert_eq!(at("10.89.0.9:80"), None);
        assert_eq!(index.get("aaa").expect("present").container_name, "aaa-1");
    }

    #[test]
    fn changes_forget_old_addresses_and_bump_the_generation() {
        let index = Index::new();
        let g0 = index.generation();
        index.upsert(container("aaa", "10.89.0.2", &["0.0.0.0:8080"]));
        // Reconnected to another network, port unpublished.
        index.upsert(container("aaa", "10.90.0.7", &[]));
        assert!(index.generation() > g0);
        assert!(index.at("10.89.0.2:1".parse().expect("present")).is_none());
        assert!(index
            .at("127.0.0.1:8080".parse().expect("present"))
            .is_none());
        assert!(index.at("10.90.0.7:1".parse().expect("present")).is_some());
        index.remove("aaa");
        assert!(index.is_empty());
        assert!(index.at("10.90.0.7:1".parse().expect("present")).is_none());
    }

    #[test]
    fn a_listing_replaces_only_its_runtimes_containers() {
        let index = Index::new();
        index.upsert(container("aaa", "10.89.0.2", &[]));
        let mut other = container("ccc", "10.4.0.2", &[]);
        other.runtime = RuntimeKind::Containerd;
        index.upsert(other);
        index.replace(
            RuntimeKind::Docker,
            vec![container("bbb", "10.89.0.3", &[])],
        );
        assert!(index.get("aaa").is_none());
        assert!(index.get("bbb").is_some());
        assert!(index.get("ccc").is_some());
        assert_eq!(index.count(RuntimeKind::Containerd), 1);
    }

    #[test]
    fn services_come_from_compose_then_kubernetes_labels_then_the_name() {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            service_of(
                &labels(&[
                    ("com.docker.compose.service", "reviews"),
                    ("io.kubernetes.container.name", "x")
                ]),
                "bookinfo_reviews_1"
            ),
            "reviews"
        );
        assert_eq!(
            service_of(
                &labels(&[("io.kubernetes.container.name", "ratings")]),
                "k8s_x"
            ),
            "ratings"
        );
        assert_eq!(service_of(&labels(&[]), "details-1"), "details-1");
        let d = describe("abc", "/web", "img", labels(&[]));
        assert_eq!(
            (d.container_name.as_str(), d.service.as_str()),
            ("web", "web")
        );
        assert_eq!(
            describe("abc", "", "img", labels(&[])).container_name,
            "abc"
        );
    }
}
