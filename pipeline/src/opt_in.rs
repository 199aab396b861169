//! The ADI_PROFILE opt-in rule of the eBPF profiler adi replaces, exactly (documented in
//! `docs/live-capture.md`, "Which processes are watched"): a process is profiled iff
//! `ADI_PROFILE_DISABLED` is not `1`, `ADI_PROFILE` is set and non-empty, and
//! `ADI_PROFILE_ALLOWED` (adi's own environment) is empty or lists its `ADI_PROFILE` value
//! (comma-separated, trimmed, case-sensitive).

/// The opt-in rule with adi's ADI_PROFILE_ALLOWED list, parsed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OptIn {
    allowed: Vec<String>,
}

impl OptIn {
    /// ADI_PROFILE_ALLOWED as given: comma-separated, trimmed, empty entries ignored.
    pub fn new(allowed: &str) -> Self {
        Self {
            allowed: allowed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The allowed profiles (empty: any non-empty ADI_PROFILE).
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    /// Whether a process with environment `environ` (the raw `/proc/PID/environ` bytes) opts
    /// in. A repeated variable: the last one counts.
    pub fn admits(&self, environ: &[u8]) -> bool {
        let mut profile = None;
        let mut disabled = false;
        for var in environ.split(|&b| b == 0) {
            if let Some(v) = var.strip_prefix(b"ADI_PROFILE=") {
                profile = Some(v);
            } else if let Some(v) = var.strip_prefix(b"ADI_PROFILE_DISABLED=") {
                disabled = v == b"1";
            }
        }
        let Some(profile) = profile.filter(|p| !p.is_empty()) else {
            return false;
        };
        !disabled
            && (self.allowed.is_empty() || self.allowed.iter().any(|a| a.as_bytes() == profile))
    }

    /// Whether process `pid` opts in, from `/proc/PID/environ`; a process whose environ
    /// cannot be read (gone, a kernel thread) does not.
    pub fn admits_pid(&self, pid: u32) -> bool {
        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| self.admits(&env))
    }

    /// Pids of running processes that opt in (a /proc scan).
    pub fn scan(&self) -> Vec<u32> {
        crate::proc::all_pids()
            .into_iter()
            .filter(|&pid| self.admits_pid(pid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::OptIn;

    fn opted_in(environ: &[u8], allowed: &str) -> bool {
        OptIn::new(allowed).admits(environ)
    }

    #[test]
    fn seed_opt_in_table() {
        let env = |s: &str| s.replace(' ', "\0").into_bytes();
        assert!(opted_in(&env("PATH=/bin ADI_PROFILE=local"), ""));
        assert!(opted_in(&env("ADI_PROFILE=local"), "local,dev"));
        assert!(opted_in(&env("ADI_PROFILE=dev"), " local , dev "));
        assert!(!opted_in(&env("ADI_PROFILE=prod"), "local,dev"));
        assert!(
            !opted_in(&env("ADI_PROFILE=Local"), "local"),
            "case-sensitive"
        );
        assert!(!opted_in(
            &env("ADI_PROFILE=local ADI_PROFILE_DISABLED=1"),
            ""
        ));
        assert!(opted_in(
            &env("ADI_PROFILE=local ADI_PROFILE_DISABLED=0"),
            ""
        ));
        assert!(!opted_in(&env("ADI_PROFILE="), ""));
        assert!(!opted_in(&env("PATH=/bin"), ""));
    }
}
