//! The ADI_PROFILE opt-in rule of the seeds (SPEC section 6), exactly: a process is profiled
//! iff `ADI_PROFILE_DISABLED` is not `1`, `ADI_PROFILE` is set and non-empty, and
//! `ADI_PROFILE_ALLOWED` (adi's own environment) is empty or lists its `ADI_PROFILE` value
//! (comma-separated, trimmed, case-sensitive).

/// Whether a process with environment `environ` (the raw `/proc/PID/environ` bytes) opts in,
/// given adi's `allowed` list.
pub fn opted_in(environ: &[u8], allowed: &str) -> bool {
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
    if disabled {
        return false;
    }
    let allowed = parse_allowed(allowed);
    allowed.is_empty() || allowed.iter().any(|a| a.as_bytes() == profile)
}

/// ADI_PROFILE_ALLOWED as a list: comma-separated, trimmed, empty entries ignored.
pub fn parse_allowed(allowed: &str) -> Vec<String> {
    allowed
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Pids of running processes that opt in (a /proc scan; processes whose environ cannot be
/// read, such as kernel threads, do not).
pub fn scan(allowed: &str) -> Vec<u32> {
    adi_probes::proc::all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| opted_in(&env, allowed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::opted_in;

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
