//! Process context from `/proc`: what a `ProcessInfo` needs (comm, cmdline), the start time
//! that tells a reused pid apart, and the listening TCP ports that tell the role of a
//! connection opened before adi started.

use std::collections::HashSet;
use std::fs;

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
    fn reads_this_process() {
        let me = read_process(std::process::id()).expect("self");
        assert!(me.start_time > 0 && !me.comm.is_empty() && !me.cmdline.is_empty());
    }
}
