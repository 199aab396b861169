//! Test support for the root-only tests of this crate and of the binary (feature `testing`).
//!
//! Such a test is marked `#[ignore = "needs root + BPF"]`, so a plain `cargo test` lists it as
//! ignored, with the reason, instead of reporting it passed; `cargo test -- --include-ignored`
//! (what `.ci/run` runs, as root) runs it, and then a missing capability or tool fails it:
//! nothing is skipped silently.

/// Fails the calling test unless it runs as root on a kernel with BTF: the root-only tests
/// call it first.
///
/// # Panics
///
/// Without root or without `/sys/kernel/btf/vmlinux`.
pub fn require_bpf() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "this test needs root: run it with sudo (`.ci/run` runs `cargo test --workspace -- \
         --include-ignored` as root)"
    );
    assert!(
        std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
        "this test needs a kernel with BTF (/sys/kernel/btf/vmlinux): `adi doctor` says more"
    );
}

/// Fails the calling test unless every one of `tools` (command names or paths) is installed.
///
/// # Panics
///
/// When one is missing; the message names all that are.
pub fn need(tools: &[&str]) {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            !std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "this test needs {}: install it (.ci/run lists the Debian packages)",
        missing.join(", ")
    );
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
