//! Test support (feature `testing`): the Go test targets built by
//! `testdata/go/build-targets.sh` with every toolchain that `testdata/go/install-toolchains.sh`
//! installs, built once per test process into `target/go-targets` (the Go build cache there
//! makes later runs cheap; the script locks the directory against parallel test binaries).
//!
//! A test that needs a toolchain is `#[ignore]`d (`cargo test -- --include-ignored` runs it)
//! and calls [`toolchain`], which fails it when the toolchain is missing
//! (`docs/contributing.md`, "Build and test").

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every toolchain version the tests expect (`install-toolchains.sh` installs them into
/// `/opt/adi-go/<version>`; 1.19 is Debian's).
pub const VERSIONS: [&str; 8] = [
    "1.19", "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// A build variant of the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The toolchain's defaults (cgo on: dynamically linked).
    Default,
    /// `CGO_ENABLED=0`: statically linked.
    Static,
    /// `-ldflags=-w`: no DWARF, `.symtab` kept.
    NoDwarf,
    /// `-ldflags='-s -w'`: no DWARF, no `.symtab`.
    Stripped,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Self; 4] = [Self::Default, Self::Static, Self::NoDwarf, Self::Stripped];

    /// The directory name the build script uses.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Static => "static",
            Self::NoDwarf => "nodwarf",
            Self::Stripped => "stripped",
        }
    }
}

/// One toolchain's built targets.
#[derive(Clone, Debug)]
pub struct Toolchain {
    /// The toolchain directory name, e.g. `1.23.9` or `1.19`.
    pub version: String,
    /// What `go env GOVERSION` says, e.g. `go1.19.8`: the version recorded in the binaries.
    pub go_version: String,
    /// `OUTDIR/<version>`.
    pub dir: PathBuf,
}

impl Toolchain {
    /// The path of target `prog` (`client` or `server`) in `variant`.
    pub fn binary(&self, variant: Variant, prog: &str) -> PathBuf {
        self.dir.join(variant.dir()).join(prog)
    }
}

/// The workspace root (this crate's parent directory).
///
/// # Panics
/// Never in this workspace: the crate has a parent directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("invariant: the crate lives in the workspace")
        .to_owned()
}

/// Where the targets are built: `$CARGO_TARGET_DIR/go-targets`, else `target/go-targets`.
pub fn targets_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("go-targets")
}

/// The toolchains installed (of [`VERSIONS`]), each built once per process.
pub fn toolchains() -> &'static [Toolchain] {
    static BUILT: OnceLock<Vec<Toolchain>> = OnceLock::new();
    BUILT.get_or_init(build_all)
}

fn go_root() -> PathBuf {
    std::env::var_os("ADI_GO_ROOT").map_or_else(|| PathBuf::from("/opt/adi-go"), PathBuf::from)
}

fn build_all() -> Vec<Toolchain> {
    let root = go_root();
    let installed: Vec<&str> = VERSIONS
        .iter()
        .copied()
        .filter(|v| root.join(v).join("go/bin/go").exists())
        .collect();
    if installed.is_empty() {
        return Vec::new();
    }
    let out = targets_dir();
    let script = workspace_root().join("testdata/go/build-targets.sh");
    let status = Command::new(&script)
        .arg(&out)
        .args(&installed)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(status.success(), "{} failed: {status}", script.display());
    installed
        .into_iter()
        .map(|version| {
            let dir = out.join(version);
            let go_version = std::fs::read_to_string(dir.join("goversion"))
                .expect("build-targets.sh writes goversion")
                .trim()
                .to_owned();
            Toolchain {
                version: version.to_owned(),
                go_version,
                dir,
            }
        })
        .collect()
}

/// The built targets of toolchain `version` (one of [`VERSIONS`]).
///
/// # Panics
/// When the toolchain is not installed, or when building the targets fails.
pub fn toolchain(version: &str) -> &'static Toolchain {
    toolchains()
        .iter()
        .find(|t| t.version == version)
        .unwrap_or_else(|| {
            panic!("this test needs Go {version}: run testdata/go/install-toolchains.sh {version}")
        })
}
