//! The pipeline's view of containers: a process's container from its cgroup and the runtimes'
//! index, an address's container from the index, this host's own addresses.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adi_core::event::ContainerInfo;
use adi_pipeline::ContainerSource;

use crate::cgroup::{self, CgroupContainer};
use crate::index::{unmapped, Index};

/// How long this host's address list is trusted before it is read again (an address added
/// to an interface is rare; reading is cheap but not free).
const HOST_ADDRS_TTL: Duration = Duration::from_secs(10);

/// Most processes whose network namespace is remembered (pids are reused: forget them all
/// rather than grow).
const MAX_HOST_NET: usize = 4096;

/// Where a process's cgroup is read from: `/proc` live, a table in tests and benchmarks.
pub type CgroupReader = Box<dyn FnMut(u32) -> Option<CgroupContainer> + Send>;

/// Where this host's own addresses are read from.
pub type HostReader = Box<dyn FnMut() -> HashSet<IpAddr> + Send>;

/// Containers for the pipeline, from an [`Index`] the runtime watchers keep current.
pub struct Containers {
    index: Arc<Index>,
    cgroups: CgroupReader,
    host: HostReader,
    host_addrs: HashSet<IpAddr>,
    host_read: Option<Instant>,
    /// Whether each process asked about shares this host's network namespace.
    host_net: HashMap<u32, bool>,
}

impl std::fmt::Debug for Containers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containers")
            .field("containers", &self.index.len())
            .field("host_addrs", &self.host_addrs)
            .finish_non_exhaustive()
    }
}

impl Containers {
    /// Live: cgroups from `/proc/PID/cgroup`, host addresses from this network namespace's
    /// interfaces (`/proc/net/fib_trie`, `/proc/net/if_inet6`).
    pub fn live(index: Arc<Index>) -> Self {
        Self::with_readers(
            index,
            Box::new(cgroup::container_of_pid),
            Box::new(|| {
                crate::netns::addresses_of(std::process::id())
                    .into_iter()
                    .collect()
            }),
        )
    }

    /// With the given readers (tests, benchmarks).
    pub fn with_readers(index: Arc<Index>, cgroups: CgroupReader, host: HostReader) -> Self {
        Self {
            index,
            cgroups,
            host,
            host_addrs: HashSet::new(),
            host_read: None,
            host_net: HashMap::new(),
        }
    }
}

impl ContainerSource for Containers {
    fn of_pid(&mut self, pid: u32) -> Option<Arc<ContainerInfo>> {
        let c = (self.cgroups)(pid)?;
        let found = self.index.get(&c.id)?;
        // Now, while the process is surely there: whether it shares the host's network.
        if let Some(shared) = host_netns(pid) {
            if self.host_net.len() >= MAX_HOST_NET {
                self.host_net.clear();
            }
            self.host_net.insert(pid, shared);
        }
        Some(found)
    }

    fn at(&mut self, addr: SocketAddr) -> Option<Arc<ContainerInfo>> {
        self.index.at(addr)
    }

    fn is_host(&mut self, ip: IpAddr) -> bool {
        let stale = self
            .host_read
            .is_none_or(|at| at.elapsed() >= HOST_ADDRS_TTL);
        if stale {
            self.host_addrs = (self.host)();
            self.host_read = Some(Instant::now());
        }
        self.host_addrs.contains(&unmapped(ip))
    }

    fn host_network(&mut self, pid: u32, container: &ContainerInfo) -> bool {
        if let Some(known) = self.host_net.get(&pid) {
            return *known;
        }
        // Read when the process's container is (`of_pid`); when that was too late, or the
        // process has exited since (its namespace link is gone before its cgroup), a
        // container on the host's network is one with no address of its own.
        host_netns(pid).unwrap_or_else(|| !self.index.has_addresses(&container.container_id))
    }

    fn holds(&mut self, ip: IpAddr) -> bool {
        self.index.holds_ip(ip)
    }

    fn generation(&self) -> u64 {
        self.index.generation()
    }
}

/// Whether process `pid` is in this process's network namespace; `None` when its namespace
/// cannot be read (it exited).
fn host_netns(pid: u32) -> Option<bool> {
    let netns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    Some(netns(&pid.to_string())? == netns("self")?)
}
