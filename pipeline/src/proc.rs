//! Process context from `/proc`: what a `ProcessInfo` needs (comm, cmdline), the start time
//! that tells a reused pid apart, and the listening TCP ports that tell the role of a
//! connection opened before adi started.

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One process as `/proc` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// Process id.
    pub pid: u32,
    /// `/proc/PID/comm` without its newline.
    pub comm: String,
    /// `/proc/PID/cmdline` with NULs as spaces.
    pub cmdline: String,
    /// `/proc/PID/cmdline`'s arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`): with the pid, it
    /// names one process even when pids are reused.
    pub start_time: u64,
}

/// Reads `/proc/PID`; `None` when the process is gone.
pub fn read_process(pid: u32) -> Option<ProcInfo> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let start_time = parse_start_time(&stat)?;
    let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default();
    let args: Vec<String> = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(ProcInfo {
        pid,
        comm,
        cmdline: args.join(" "),
        args,
        start_time,
    })
}

/// Field 22 of `/proc/PID/stat`. The comm (field 2) may contain spaces and parentheses, so
/// fields are counted after its last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After ')' come field 3 (state) onwards: field 22 is the 20th of them.
    after.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Local TCP ports in LISTEN state, IPv4 and IPv6 (`/proc/net/tcp`, `/proc/net/tcp6`): a
/// connection whose local port is one of these was accepted.
pub fn listening_ports() -> HashSet<u16> {
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            ports.extend(parse_listening(&text));
        }
    }
    ports
}

/// Parses a `/proc/net/tcp` table: `sl local_address rem_address st ...`, state `0A` = LISTEN.
pub fn parse_listening(text: &str) -> impl Iterator<Item = u16> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let mut f = line.split_ascii_whitespace();
        let local = f.nth(1)?;
        let state = f.nth(1)?;
        if state != "0A" {
            return None;
        }
        let port = local.rsplit(':').next()?;
        u16::from_str_radix(port, 16).ok()
    })
}

/// The TCP addresses process `pid` listens on: the LISTEN rows of `/proc/net/tcp` and
/// `/proc/net/tcp6` whose socket inode is one of the process's open files. Empty when the
/// process is gone or its fds cannot be read.
pub fn listening_addrs(pid: u32) -> Vec<SocketAddr> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: HashSet<u64> = fds
        .filter_map(Result::ok)
        .filter_map(|fd| {
            let target = fs::read_link(fd.path()).ok()?;
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut addrs = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            addrs.extend(
                parse_listening_addrs(&text)
                    .filter(|(_, inode)| inodes.contains(inode))
                    .map(|(addr, _)| addr),
            );
        }
    }
    addrs
}

/// LISTEN rows of a `/proc/net/tcp{,6}` table as (local address, socket inode).
pub fn parse_listening_addrs(text: &str) -> impl Iterator<Item = (SocketAddr, u64)> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            return None;
        }
        let (ip, port) = f[1].split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let ip = parse_proc_ip(ip)?;
        Some((SocketAddr::new(ip, port), f[9].parse().ok()?))
    })
}

/// An address as `/proc/net/tcp` writes it: 32-bit words in hex, each in host (little-endian
/// on the machines adi supports) byte order.
fn parse_proc_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_le_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// The process listening at `addr` on this host: a LISTEN row of `/proc/net/tcp{,6}` on its
/// address (or, for a loopback address, on any address of its port), and the process holding
/// that socket (a scan of every process's fds: called once per new destination). `None` for
/// an address of another host, or when the listener cannot be seen.
pub fn listener_of(addr: SocketAddr) -> Option<u32> {
    let mut inodes: HashSet<u64> = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            inodes.extend(
                parse_listening_addrs(&text)
                    .filter(|(a, _)| listens_for(*a, addr))
                    .map(|(_, inode)| inode),
            );
        }
    }
    if inodes.is_empty() {
        return None;
    }
    all_pids().into_iter().find(|pid| {
        fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.filter_map(Result::ok).any(|fd| {
                fs::read_link(fd.path()).ok().is_some_and(|t| {
                    t.to_str()
                        .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']'))
                        .and_then(|n| n.parse().ok())
                        .is_some_and(|n: u64| inodes.contains(&n))
                })
            })
        })
    })
}

/// Whether a socket listening on `local` accepts connections to `dest` on this host. A
/// wildcard listener counts only for loopback destinations: another host's address with the
/// same port is not ours.
pub fn listens_for(local: SocketAddr, dest: SocketAddr) -> bool {
    let unmap = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    let (l, d) = (unmap(local.ip()), unmap(dest.ip()));
    local.port() == dest.port() && (l == d || (l.is_unspecified() && d.is_loopback()))
}

/// Every pid in `/proc`.
pub fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_comms() {
        let stat =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn parses_listen_rows_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
             0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n   \
             1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 0 0 2 1\n";
        assert_eq!(parse_listening(table).collect::<Vec<_>>(), vec![8080]);
    }

    #[test]
    fn listening_addresses_and_inodes() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 4242 1\n   \
             1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 0 0 4343 1\n";
        let rows: Vec<_> = parse_listening_addrs(table).collect();
        assert_eq!(rows, [("127.0.0.1:8080".parse().expect("addr"), 4242)]);
        let v6 = "  sl  local_address rem_address st\n   \
             0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 77 1\n";
        let rows: Vec<_> = parse_listening_addrs(v6).collect();
        assert_eq!(rows, [("[::1]:8080".parse().expect("addr"), 77)]);
    }

    #[test]
    fn this_process_listening_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        assert!(listening_addrs(std::process::id()).contains(&addr));
    }

    #[test]
    fn reads_this_process() {
        let me = read_process(std::process::id()).expect("self");
        assert!(me.start_time > 0 && !me.comm.is_empty() && !me.cmdline.is_empty());
    }
}
