//! `cargo xtask <chore>`:
//! - `bpf`: rebuilds every `probes/bpf/*.bpf.o` (`adi.bpf.o`, `go_http.bpf.o`) from its C
//!   source with clang (needs Debian's `clang libbpf-dev llvm`) and records, in
//!   `<object>.sha256`, the SHA-256 of the object and of every file it was built from (the
//!   `.bpf.c` and the headers of `probes/bpf` it includes); `bpf --check` (CI runs it) fails
//!   when a source or the object no longer has its recorded hash, without compiling, so any
//!   clang version passes it; `bpf go_http` builds only `go_http.bpf.c`.
//! - `go-offsets`: regenerates `go/src/offsets_table.rs` from the DWARF of the Go test
//!   programs built with every installed toolchain (`testdata/go/install-toolchains.sh`);
//!   `go-offsets --check` fails when the committed table differs.
//! - `fuzz-seed`: fills `fuzz/corpus/<target>/` from the real fixtures and captures, in the
//!   input format each fuzz target expects.

#![forbid(unsafe_code)]

use std::path::Path;

use adi_core::testing::load_fixtures;
use adi_core::{Direction, Registry};
use anyhow::{bail, Context};

use adi_classifiers as _;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::args().nth(1).as_deref() {
        Some("fuzz-seed") => fuzz_seed(&root),
        Some("bpf") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            let only: Vec<&str> = args
                .iter()
                .map(String::as_str)
                .filter(|a| *a != "--check")
                .collect();
            bpf(&root, args.iter().any(|a| a == "--check"), &only)
        }
        Some("go-offsets") => {
            go_offsets(&root, std::env::args().nth(2).as_deref() == Some("--check"))
        }
        _ => bail!("usage: cargo xtask bpf [--check] [NAME...] | go-offsets [--check] | fuzz-seed"),
    }
}

/// Measures the offsets of `adi_probes::go::offsets::FIELDS` in the DWARF of the client test
/// program (it has `net/http`, `net/url` and the map types) built by every installed
/// toolchain, and writes (or checks) the table.
fn go_offsets(root: &Path, check: bool) -> anyhow::Result<()> {
    use adi_probes::go::offsets::{from_dwarf, render_table};
    use adi_probes::go::testing::{toolchains, Variant, VERSIONS};
    use adi_probes::go::{GoBinary, GoVersion};

    let built = toolchains();
    anyhow::ensure!(
        built.len() == VERSIONS.len(),
        "go-offsets needs every toolchain ({}); run testdata/go/install-toolchains.sh",
        VERSIONS.join(" ")
    );
    let mut measured = Vec::new();
    for t in built {
        let version = GoVersion::parse(&t.go_version)
            .with_context(|| format!("Go version {}", t.go_version))?;
        // The client has net/http.Response, the server net/http.response: take the union.
        let mut offsets = adi_probes::go::offsets::Offsets::default();
        for prog in ["client", "server"] {
            let path = t.binary(Variant::Default, prog);
            let bin = GoBinary::open(&path)?;
            let found = from_dwarf(&bin).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            for (field, offset) in found.fields {
                let known = *offsets.fields.entry(field.clone()).or_insert(offset);
                anyhow::ensure!(
                    known == offset,
                    "{field}: {known} and {offset} in {}",
                    t.go_version
                );
            }
        }
        println!("{}: {} fields", t.go_version, offsets.fields.len());
        measured.push(((version.major, version.minor), offsets));
    }
    let table = render_table(&measured);
    let path = root.join("go/src/offsets_table.rs");
    // rustfmt decides the layout, so the committed file passes `cargo fmt --check`.
    let out = if check {
        root.join("target/offsets_table.check.rs")
    } else {
        path.clone()
    };
    std::fs::write(&out, table)?;
    let status = std::process::Command::new("rustfmt")
        .args(["--edition", "2021"])
        .arg(&out)
        .status()
        .context("running rustfmt")?;
    anyhow::ensure!(status.success(), "rustfmt failed: {status}");
    if check {
        let fresh = std::fs::read_to_string(&out)?;
        std::fs::remove_file(&out)?;
        let committed = std::fs::read_to_string(&path).context("reading offsets_table.rs")?;
        if committed != fresh {
            bail!("go/src/offsets_table.rs is stale: run `cargo xtask go-offsets`");
        }
        println!("go/src/offsets_table.rs is fresh");
    } else {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The one command that builds the BPF objects: every `probes/bpf/*.bpf.c` into the `.bpf.o`
/// next to it, with its manifest. Relative paths only, run from `probes/bpf`, so each object
/// (its BTF line info names the source file) is byte-for-byte reproducible with one clang.
fn bpf(root: &Path, check: bool, only: &[&str]) -> anyhow::Result<()> {
    let dir = root.join("probes/bpf");
    let mut sources: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".bpf.c"))
        .filter(|name| only.is_empty() || only.contains(&name.trim_end_matches(".bpf.c")))
        .collect();
    sources.sort();
    anyhow::ensure!(
        !sources.is_empty(),
        "no matching *.bpf.c in {}",
        dir.display()
    );
    for source in &sources {
        bpf_object(&dir, source, check)?;
    }
    Ok(())
}

/// Builds `probes/bpf/<x>.bpf.o` from `<x>.bpf.c` and records its manifest, or with `check`,
/// checks that the committed object was built from the sources as they are.
fn bpf_object(dir: &Path, source: &str, check: bool) -> anyhow::Result<()> {
    let object = format!("{}.o", source.trim_end_matches(".c"));
    let manifest = format!("{object}.sha256");
    let inputs = bpf_inputs(dir, source)?;
    if check {
        let recorded = std::fs::read_to_string(dir.join(&manifest)).with_context(|| {
            format!("reading probes/bpf/{manifest}: run `cargo xtask bpf` and commit it")
        })?;
        let fresh = sha256sum(dir, &object, &inputs)?;
        if fresh != recorded {
            let changed: Vec<&str> = fresh
                .lines()
                .filter(|line| !recorded.lines().any(|r| r == *line))
                .filter_map(|line| line.split_whitespace().nth(1))
                .collect();
            bail!(
                "probes/bpf/{object} is stale: {} not as recorded in probes/bpf/{manifest}; \
                 run `cargo xtask bpf` and commit the object with its manifest",
                changed.join(", ")
            );
        }
        println!(
            "probes/bpf/{object} is fresh (built from {})",
            inputs.join(", ")
        );
        return Ok(());
    }
    // Never write the committed object in place: a failed compile would delete it, and
    // adi-probes (which xtask itself links) embeds it, so xtask could no longer build.
    let out = format!("{object}.tmp");
    let run = |cmd: &str, args: &[&str]| -> anyhow::Result<()> {
        let status = std::process::Command::new(cmd)
            .args(args)
            .current_dir(dir)
            .status()
            .with_context(|| format!("running {cmd} (apt-get install -y clang libbpf-dev llvm)"))?;
        anyhow::ensure!(
            status.success(),
            "{cmd} {} failed: {status}",
            args.join(" ")
        );
        Ok(())
    };
    // BTF records the source path: map this checkout's path away so any clone with the same
    // clang builds the same bytes.
    let prefix_map = format!("-fdebug-prefix-map={}=.", dir.canonicalize()?.display());
    run(
        "clang",
        &[
            "-target",
            "bpf",
            "-O2",
            "-g",
            "-D__TARGET_ARCH_x86",
            "-Wall",
            "-Werror",
            &prefix_map,
            "-I.",
            "-c",
            source,
            "-o",
            &out,
        ],
    )?;
    // Keep .BTF/.BTF.ext (CO-RE needs them), drop DWARF: 2 MB -> 70 KB.
    run("llvm-strip", &["-g", &out])?;
    std::fs::rename(dir.join(&out), dir.join(&object))
        .with_context(|| format!("replacing probes/bpf/{object}"))?;
    std::fs::write(dir.join(&manifest), sha256sum(dir, &object, &inputs)?)
        .with_context(|| format!("writing probes/bpf/{manifest}"))?;
    println!("wrote probes/bpf/{object} and {manifest}");
    Ok(())
}

/// What `source` is built from: itself, then the headers of `dir` it includes with
/// `#include "..."`, directly or through another of them, sorted. System headers (`<...>`,
/// from libbpf-dev) are not: they are the toolchain's, like clang.
fn bpf_inputs(dir: &Path, source: &str) -> anyhow::Result<Vec<String>> {
    let mut headers = std::collections::BTreeSet::new();
    let mut todo = vec![source.to_owned()];
    while let Some(file) = todo.pop() {
        let text = std::fs::read_to_string(dir.join(&file))
            .with_context(|| format!("reading probes/bpf/{file}"))?;
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("#include") else {
                continue;
            };
            let Some(name) = rest
                .trim()
                .strip_prefix('"')
                .and_then(|r| r.split('"').next())
            else {
                continue;
            };
            if headers.insert(name.to_owned()) {
                todo.push(name.to_owned());
            }
        }
    }
    Ok(std::iter::once(source.to_owned()).chain(headers).collect())
}

/// `sha256sum OBJECT INPUTS...` run in `dir`: the manifest, which `sha256sum -c` also reads.
fn sha256sum(dir: &Path, object: &str, inputs: &[String]) -> anyhow::Result<String> {
    let out = std::process::Command::new("sha256sum")
        .arg(object)
        .args(inputs)
        .current_dir(dir)
        .output()
        .context("running sha256sum (coreutils)")?;
    anyhow::ensure!(
        out.status.success(),
        "sha256sum failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).context("sha256sum output")
}

fn fuzz_seed(root: &Path) -> anyhow::Result<()> {
    let registry = Registry::from_inventory()?;
    let corpus = root.join("fuzz/corpus");
    let probe_dir = corpus.join("probe_all");
    let engine_dir = corpus.join("engine");
    let pcap_dir = corpus.join("pcap");
    let http2_dir = corpus.join("http2");
    for d in [&probe_dir, &engine_dir, &pcap_dir, &http2_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut count = 0;
    for (i, reg) in registry.iter().enumerate() {
        let fixtures = root
            .join("classifiers/src")
            .join(reg.id.as_str())
            .join("fixtures");
        if !fixtures.is_dir() {
            continue;
        }
        for f in load_fixtures(&fixtures) {
            let dir_bit = u8::from(f.dir == Direction::ToClient);
            // probe_all: one byte picks the classifier (bits 1..) and direction (bit 0).
            let mut input = vec![((i as u8) << 1) | dir_bit];
            input.extend_from_slice(&f.bytes);
            let stem = format!("{}_{}", reg.id, file_stem(&f.path));
            std::fs::write(probe_dir.join(&stem), &input)?;
            // engine: a port byte, then chunks of at most 63 bytes behind a control byte.
            let mut input = vec![0u8];
            for chunk in f.bytes.chunks(63) {
                input.push(((chunk.len() as u8) << 2) | dir_bit);
                input.extend_from_slice(chunk);
            }
            std::fs::write(engine_dir.join(&stem), &input)?;
            count += 2;
        }
    }
    // http2: both directions of each real conversation, behind the preface and SETTINGS the
    // target writes itself (so the client's own preface is left out), in chunks of at most
    // 63 bytes behind a control byte (bit 0: to client).
    let h2 = root.join("classifiers/src/http2/fixtures");
    let mut conversations: std::collections::BTreeMap<String, Vec<u8>> =
        std::collections::BTreeMap::new();
    for f in load_fixtures(&h2) {
        let stem = file_stem(&f.path);
        let name = stem
            .trim_start_matches("to_server_")
            .trim_start_matches("to_client_")
            .to_owned();
        let dir_bit = u8::from(f.dir == Direction::ToClient);
        let bytes = f
            .bytes
            .strip_prefix(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".as_slice())
            .unwrap_or(&f.bytes);
        let input = conversations.entry(name).or_default();
        for chunk in bytes.chunks(63) {
            input.push(((chunk.len() as u8) << 2) | dir_bit);
            input.extend_from_slice(chunk);
        }
    }
    for (name, input) in conversations {
        std::fs::write(http2_dir.join(name), input)?;
        count += 1;
    }
    for dir in [
        root.join("testdata/captures"),
        root.join("capture/tests/captures"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            ) {
                std::fs::copy(&path, pcap_dir.join(file_stem(&path)))?;
                count += 1;
            }
        }
    }
    println!("seeded {count} inputs under {}", corpus.display());
    Ok(())
}

fn file_stem(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("input")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The README shows the test command that `.ci/run` runs (its `TEST_CMD`), as it says.
    #[test]
    fn readme_shows_the_ci_test_command() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let ci = std::fs::read_to_string(root.join(".ci/run")).expect(".ci/run");
        let cmd = ci
            .lines()
            .find_map(|l| l.strip_prefix("TEST_CMD=\"")?.strip_suffix('"'))
            .expect(".ci/run sets TEST_CMD=\"...\"");
        let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
        assert!(
            readme.contains(&format!("```sh\n{cmd}\n```")),
            "README.md must show .ci/run's test command in a sh block: {cmd}"
        );
    }
}
