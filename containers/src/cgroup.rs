//! `/proc/PID/cgroup` to a container id.
//!
//! Every runtime puts a container's processes in a cgroup named after the container, but
//! each names it its own way, and differently under the cgroupfs and the systemd drivers:
//!
//! | runtime | cgroupfs driver | systemd driver |
//! |---|---|---|
//! | Docker | `/docker/<id>` | `/system.slice/docker-<id>.scope` |
//! | Podman | `/libpod_parent/libpod-<id>` | `/machine.slice/libpod-<id>.scope` (rootless: under `user@UID.service`) |
//! | containerd (`ctr`, nerdctl) | `/<namespace>/<id>` | `/system.slice/nerdctl-<id>.scope` |
//! | Kubernetes, containerd | `/kubepods/<qos>/pod<uid>/<id>` | `/kubepods.slice/.../cri-containerd-<id>.scope` |
//! | Kubernetes, CRI-O | `/kubepods/<qos>/pod<uid>/<id>` | `/kubepods.slice/.../crio-<id>.scope` |
//!
//! With cgroup v1 each controller has its own line (`4:memory:/docker/<id>`); with v2 one
//! line (`0::/docker/<id>`); hybrid hosts have both. A container may nest its own groups below
//! its scope (`.../libpod-<id>.scope/container`), and a runtime's helper processes sit in
//! look-alike groups that are not the container (`libpod-conmon-<id>.scope`,
//! `crio-conmon-<id>.scope`).

/// Which naming scheme a container id came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `docker-<id>.scope` or `/docker/<id>`.
    Docker,
    /// `libpod-<id>[.scope]`.
    Podman,
    /// `cri-containerd-<id>.scope`, `nerdctl-<id>.scope`, `containerd-<id>.scope`.
    Containerd,
    /// `crio-<id>[.scope]`.
    CriO,
    /// A 64-hex group under a Kubernetes pod (`/kubepods/.../pod<uid>/<id>`): containerd or
    /// CRI-O with the cgroupfs driver.
    Kubernetes,
    /// A bare 64-hex group under another parent (a runtime's own cgroup parent).
    Hex,
    /// `/<namespace>/<id>`: containerd's default, where the id is any name; only a runtime
    /// that knows the id makes it a container.
    Namespaced,
}

/// A container named by a cgroup path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupContainer {
    /// The container id, as its runtime reports it.
    pub id: String,
    /// How the path named it.
    pub scheme: Scheme,
}

/// The container a process's cgroup file (`/proc/PID/cgroup`) names, if any.
///
/// The cgroup v2 line is read first (it is the one the kernel enforces on a v2 host), then
/// the v1 lines; the first line that names a container by a runtime's own scheme wins over a
/// line that only looks like containerd's `/<namespace>/<id>`.
pub fn container_of(text: &str) -> Option<CgroupContainer> {
    let paths = || {
        text.lines().filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?;
            let _controllers = parts.next()?;
            Some((hierarchy == "0", parts.next()?))
        })
    };
    let v2_first = paths()
        .filter(|(v2, _)| *v2)
        .chain(paths().filter(|(v2, _)| !*v2));
    let mut weak = None;
    for (_, path) in v2_first {
        match from_path(path) {
            Some(c) if c.scheme == Scheme::Namespaced => {
                weak.get_or_insert(c);
            }
            Some(c) => return Some(c),
            None => {}
        }
    }
    weak
}

/// The container of process `pid`, from `/proc/PID/cgroup`.
pub fn container_of_pid(pid: u32) -> Option<CgroupContainer> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    container_of(&text)
}

/// The container one cgroup path names: the innermost group that names one (groups a
/// container makes below its own are skipped).
fn from_path(path: &str) -> Option<CgroupContainer> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segments.iter().enumerate().rev() {
        let parent = i.checked_sub(1).map(|p| segments[p]);
        if let Some(c) = from_segment(seg, parent) {
            return Some(c);
        }
    }
    // containerd's default: exactly `/<namespace>/<id>`.
    match segments[..] {
        [namespace, id]
            if is_name(namespace) && is_name(id) && !RUNTIME_PARENTS.contains(&namespace) =>
        {
            Some(CgroupContainer {
                id: id.to_owned(),
                scheme: Scheme::Namespaced,
            })
        }
        _ => None,
    }
}

/// Parents the other runtimes use: a group under one that failed their id check is not
/// containerd's.
const RUNTIME_PARENTS: &[&str] = &["docker", "libpod_parent", "kubepods", "machine"];

/// Prefixes of systemd scopes (and podman's cgroupfs groups) that name a container; the
/// runtimes' helpers (`libpod-conmon-`, `crio-conmon-`) are not containers and fail the id
/// check.
const PREFIXES: &[(&str, Scheme)] = &[
    ("docker-", Scheme::Docker),
    ("libpod-", Scheme::Podman),
    ("cri-containerd-", Scheme::Containerd),
    ("nerdctl-", Scheme::Containerd),
    ("containerd-", Scheme::Containerd),
    ("crio-", Scheme::CriO),
];

fn from_segment(seg: &str, parent: Option<&str>) -> Option<CgroupContainer> {
    let unit = seg.strip_suffix(".scope").unwrap_or(seg);
    for (prefix, scheme) in PREFIXES {
        if let Some(id) = unit.strip_prefix(prefix) {
            if is_hex_id(id) {
                return Some(CgroupContainer {
                    id: id.to_owned(),
                    scheme: *scheme,
                });
            }
        }
    }
    if !is_hex_id(seg) {
        return None;
    }
    let scheme = match parent {
        Some("docker") => Scheme::Docker,
        Some(p) if p.starts_with("pod") || p.starts_with("kubepods") => Scheme::Kubernetes,
        _ => Scheme::Hex,
    };
    Some(CgroupContainer {
        id: seg.to_owned(),
        scheme,
    })
}

/// A runtime's full container id: 64 lowercase hex digits.
fn is_hex_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A containerd namespace or container id (letters, digits, `._-`), and not a systemd unit.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 76
        && !s
            .rsplit_once('.')
            .is_some_and(|(_, unit)| matches!(unit, "slice" | "scope" | "service"))
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6838169e531610111bb3842223fe15477eeb21bd34d2ed22a4357df3d176bb92";

    fn of(text: &str) -> Option<(Scheme, String)> {
        container_of(text).map(|c| (c.scheme, c.id))
    }

    #[test]
    fn podman_cgroupfs_on_a_hybrid_host() {
        // Captured on this project's test VM: podman 4.3.1 --runtime runc, cgroupfs manager,
        // cgroup v1 controllers plus the v2 unified hierarchy.
        let text = format!(
            "9:name=systemd:/libpod_parent/libpod-{ID}\n8:pids:/libpod_parent/libpod-{ID}\n\
             4:memory:/libpod_parent/libpod-{ID}\n1:cpu:/libpod_parent/libpod-{ID}\n\
             0::/libpod_parent/libpod-{ID}\n"
        );
        assert_eq!(of(&text), Some((Scheme::Podman, ID.to_owned())));
    }

    #[test]
    fn podman_systemd_rootful_rootless_and_nested() {
        let rootful = format!("0::/machine.slice/libpod-{ID}.scope\n");
        assert_eq!(of(&rootful), Some((Scheme::Podman, ID.to_owned())));
        let rootless = format!(
            "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n"
        );
        assert_eq!(of(&rootless), Some((Scheme::Podman, ID.to_owned())));
        // systemd inside the container, or --cgroups=split: groups below the scope.
        let nested = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
        assert_eq!(of(&nested), Some((Scheme::Podman, ID.to_owned())));
        // conmon, podman's monitor, is not the container.
        let conmon = format!("0::/machine.slice/libpod-conmon-{ID}.scope\n");
        assert_eq!(of(&conmon), None);
    }

    #[test]
    fn docker_cgroupfs_v1_and_systemd_v1_v2() {
        let v1 =
            format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n");
        assert_eq!(of(&v1), Some((Scheme::Docker, ID.to_owned())));
        let systemd_v1 = format!(
            "11:devices:/system.slice/docker-{ID}.scope\n1:name=systemd:/system.slice/docker-{ID}.scope\n"
        );
        assert_eq!(of(&systemd_v1), Some((Scheme::Docker, ID.to_owned())));
        let systemd_v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(of(&systemd_v2), Some((Scheme::Docker, ID.to_owned())));
        let cgroupfs_v2 = format!("0::/docker/{ID}\n");
        assert_eq!(of(&cgroupfs_v2), Some((Scheme::Docker, ID.to_owned())));
    }

    #[test]
    fn kubernetes_containerd_and_crio_both_drivers() {
        let pod = "pod8ab7c3f0-5c2e-4b0a-9d1e-2f6b7a1c9e42";
        let systemd_containerd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-{}.slice/cri-containerd-{ID}.scope\n",
            pod.replace('-', "_")
        );
        assert_eq!(
            of(&systemd_containerd),
            Some((Scheme::Containerd, ID.to_owned()))
        );
        let systemd_crio = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-{}.slice/crio-{ID}.scope\n",
            pod.replace('-', "_")
        );
        assert_eq!(of(&systemd_crio), Some((Scheme::CriO, ID.to_owned())));
        let conmon = format!("0::/kubepods.slice/crio-conmon-{ID}.scope\n");
        assert_eq!(of(&conmon), None);
        let cgroupfs_v1 = format!("10:memory:/kubepods/burstable/{pod}/{ID}\n");
        assert_eq!(of(&cgroupfs_v1), Some((Scheme::Kubernetes, ID.to_owned())));
        let guaranteed = format!("0::/kubepods/{pod}/{ID}\n");
        assert_eq!(of(&guaranteed), Some((Scheme::Kubernetes, ID.to_owned())));
    }

    #[test]
    fn containerd_namespaced_and_nerdctl() {
        // `ctr run ... redis-1` in namespace `default`, cgroupfs driver.
        assert_eq!(
            of("0::/default/redis-1\n"),
            Some((Scheme::Namespaced, "redis-1".to_owned()))
        );
        assert_eq!(
            of("4:memory:/k8s.io/some-id\n0::/\n"),
            Some((Scheme::Namespaced, "some-id".to_owned()))
        );
        let nerdctl = format!("0::/system.slice/nerdctl-{ID}.scope\n");
        assert_eq!(of(&nerdctl), Some((Scheme::Containerd, ID.to_owned())));
    }

    #[test]
    fn a_runtime_scheme_beats_a_namespaced_look_alike() {
        // A v1 controller line that merely has two segments, and a v2 line naming the
        // container properly: the proper one wins whatever the order.
        let text =
            format!("4:memory:/process_api/deac3ba117893cb24be89e241cc88111\n0::/docker/{ID}\n");
        assert_eq!(of(&text), Some((Scheme::Docker, ID.to_owned())));
    }

    #[test]
    fn host_processes_are_in_no_container() {
        // This VM's own shell: a 32-hex group is no container id.
        let host =
            "9:name=systemd:/\n4:memory:/process_api/deac3ba117893cb24be89e241cc88111\n0::/\n";
        // It looks like containerd's /<namespace>/<id>: only a runtime that knows the id
        // can make it a container.
        assert_eq!(of(host).map(|c| c.0), Some(Scheme::Namespaced));
        for text in [
            "0::/init.scope\n",
            "0::/system.slice/sshd.service\n",
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service\n",
            "0::/\n",
            "",
            "garbage without colons\n",
            "0::/docker/not-a-hex-id\n",
            &format!("0::/docker/{}\n", &ID[..63]),
            &format!("0::/docker/{}\n", ID.to_uppercase()),
        ] {
            assert_eq!(of(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_bare_hex_group_under_any_parent_is_a_container() {
        // GitHub Actions' job containers, ECS tasks: a runtime's own cgroup parent.
        let text = format!("0::/actions_job/{ID}\n");
        assert_eq!(of(&text), Some((Scheme::Hex, ID.to_owned())));
        let ecs = format!("0::/ecs/8f3c1d2e9a7b4c5d/{ID}\n");
        assert_eq!(of(&ecs), Some((Scheme::Hex, ID.to_owned())));
    }
}
