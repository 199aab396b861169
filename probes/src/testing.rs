//! Test support for the root-only tests of this crate and of the binary (feature `testing`).

/// Whether the root-only tests can run here (root, and a kernel with BTF). Otherwise prints
/// `SKIPPED` and returns false, except under `CI`, where that is a failure.
///
/// # Panics
///
/// Under `CI` when the tests cannot run: CI must not skip them.
pub fn can_run_bpf() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root && std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the root-only tests as root with BTF"
    );
    eprintln!("SKIPPED (needs root + BPF)");
    false
}

/// A loopback port free when this returns (another process may still take it first: servers
/// that can should let the kernel pick their port instead).
///
/// # Panics
///
/// When no loopback port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
