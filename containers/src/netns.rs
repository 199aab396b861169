//! The addresses of a network namespace, read from `/proc/PID/net` of a process in it: what
//! containerd does not know of its containers (their addresses), and this host's own
//! addresses (a container calling its gateway calls this host).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addresses of the network namespace `pid` is in, as [`local_ipv4`] and [`global_ipv6`]
/// read them from `/proc/PID/net`; none when they cannot be read (the process exited).
pub fn addresses_of(pid: u32) -> Vec<IpAddr> {
    let read = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{file}"));
    let mut addrs: Vec<IpAddr> = read("fib_trie")
        .map(|t| local_ipv4(&t))
        .unwrap_or_default()
        .into_iter()
        .map(IpAddr::V4)
        .collect();
    addrs.extend(
        read("if_inet6")
            .map(|t| global_ipv6(&t))
            .unwrap_or_default()
            .into_iter()
            .map(IpAddr::V6),
    );
    addrs
}

/// The IPv4 addresses of a network namespace from its `/proc/net/fib_trie`: the leaves whose
/// route is `/32 host LOCAL` (an address of an interface), outside 127.0.0.0/8, each once, in
/// the file's order.
///
/// ```text
///         +-- 10.213.7.0/24 2 0 2
///            |-- 10.213.7.4
///               /32 host LOCAL
/// ```
pub fn local_ipv4(fib_trie: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let line = line.trim_start();
        if let Some(addr) = line.strip_prefix("|-- ") {
            leaf = addr.trim().parse().ok();
        } else if line.starts_with('/') {
            let mut fields = line.split_whitespace();
            let local = fields.next() == Some("/32")
                && fields.next() == Some("host")
                && fields.next() == Some("LOCAL");
            if let Some(ip) = leaf.filter(|ip| local && !ip.is_loopback()) {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        } else {
            // An inner node (`+-- 10.0.0.0/8 ...`) or a table name (`Main:`, `Local:`).
            leaf = None;
        }
    }
    out
}

/// The IPv6 addresses of a network namespace from its `/proc/net/if_inet6` (`ADDRESS IFINDEX
/// PREFIXLEN SCOPE FLAGS NAME`, the address as 32 hex digits): all but `::1`, link-local ones
/// and those whose duplicate address detection failed, each once.
pub fn global_ipv6(if_inet6: &str) -> Vec<Ipv6Addr> {
    /// `IFA_F_DADFAILED` (include/uapi/linux/if_addr.h).
    const DADFAILED: u32 = 0x08;
    let mut out = Vec::new();
    for line in if_inet6.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [hex, _ifindex, _prefix, _scope, flags, ..] = fields.as_slice() else {
            continue;
        };
        if hex.len() != 32 {
            continue;
        }
        let (Ok(bits), Ok(flags)) = (
            u128::from_str_radix(hex, 16),
            u32::from_str_radix(flags, 16),
        ) else {
            continue;
        };
        let ip = Ipv6Addr::from(bits);
        if ip.is_loopback() || ip.is_unicast_link_local() || flags & DADFAILED != 0 {
            continue;
        }
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIB_TRIE_TWO_NETWORKS: &str = include_str!("../tests/data/fib_trie.two_networks");
    const IF_INET6_TWO_NETWORKS: &str = include_str!("../tests/data/if_inet6.two_networks");
    const FIB_TRIE_LOOPBACK_ONLY: &str = include_str!("../tests/data/fib_trie.loopback_only");
    const IF_INET6_LOOPBACK_ONLY: &str = include_str!("../tests/data/if_inet6.loopback_only");
    const FIB_TRIE_HOST: &str = include_str!("../tests/data/fib_trie.host");
    const IF_INET6_HOST: &str = include_str!("../tests/data/if_inet6.host");

    #[test]
    fn a_container_on_two_networks_has_their_addresses() {
        let v4: Vec<String> = local_ipv4(FIB_TRIE_TWO_NETWORKS)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(v4, ["10.213.7.4", "10.213.8.2"]);
        let v6: Vec<String> = global_ipv6(IF_INET6_TWO_NETWORKS)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(v6, ["fd42:ad1:8::2"]);
    }

    #[test]
    fn a_loopback_only_namespace_has_no_addresses() {
        assert!(local_ipv4(FIB_TRIE_LOOPBACK_ONLY).is_empty());
        assert!(global_ipv6(IF_INET6_LOOPBACK_ONLY).is_empty());
    }

    #[test]
    fn the_hosts_addresses_include_its_bridges() {
        let v4: Vec<String> = local_ipv4(FIB_TRIE_HOST)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(v4.contains(&"192.0.2.2".to_owned()), "{v4:?}");
        assert!(v4.contains(&"10.213.7.1".to_owned()), "{v4:?}");
        assert!(!v4.iter().any(|a| a.starts_with("127.")), "{v4:?}");
        // Broadcast and network addresses are not the host's.
        assert!(
            !v4.iter().any(|a| a.ends_with(".255") || a.ends_with(".0")),
            "{v4:?}"
        );
        let v6: Vec<String> = global_ipv6(IF_INET6_HOST)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(v6, ["fd00::2", "fd42:ad1:8::1"]);
    }

    #[test]
    fn odd_lines_are_skipped() {
        assert!(local_ipv4("|-- not-an-address\n   /32 host LOCAL\n").is_empty());
        assert!(global_ipv6("zz 01 80 10 80 lo\n\nfd00 1\n").is_empty());
        // Duplicate address detection failed (flag 0x08): not usable.
        assert!(global_ipv6("fd000000000000000000000000000009 04 40 00 88 eth0\n").is_empty());
    }
}
