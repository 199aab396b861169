//! TLS plaintext: which files hold an OpenSSL-compatible TLS library, and uprobes on their
//! `SSL_write`, `SSL_read`, `SSL_write_ex`, `SSL_read_ex` and `SSL_do_handshake` (entry and
//! return), programs of the same object as the socket capture (`probes/bpf/adi.bpf.c`), so
//! the plaintext joins its connection there.
//!
//! A uprobe is set on a file and fires in the processes its scope names: with
//! [`TlsScope::All`] (`--all`: every process is watched anyway) once per file for every
//! process that maps it, now or later; with [`TlsScope::Process`] for one process only, so
//! that processes adi does not watch never take the uprobe trap (tens of microseconds per
//! call on a VM). A file's functions are found once (their file offsets), whatever the number
//! of processes. Candidates are `libssl*` files (OpenSSL 1.1 and 3.x, BoringSSL's shared
//! build) and executables that define the functions themselves (statically linked OpenSSL or
//! BoringSSL with a symbol table, Node.js).
//!
//! Go programs carry their own TLS stack: in a Go executable (amd64, Go 1.17+ register ABI)
//! `crypto/tls.(*Conn).Write` and `(*Conn).Read` are probed at their entry (past the
//! stack-bound check) and at each of their RET instructions, found with the Go binary
//! inspection of [`crate::go`] (symbol table or, stripped, `.gopclntab`): never uretprobes,
//! which patch the return address on a stack Go moves.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::programs::uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope};
use aya::programs::UProbe;
use object::{Object, ObjectSection, ObjectSymbol};

use crate::live::{KernelProbes, ProbeError};

/// The library functions probed and the entry program of each; one return program serves
/// them all. `SSL_do_handshake` (which `SSL_connect` and `SSL_accept` call) only notes the
/// socket of its SSL object: the first read after a handshake is often served from the
/// library's buffer, without a socket read to tie it to its connection.
pub const FUNCTIONS: [(&str, &str); 5] = [
    ("SSL_write", "adi_ssl_write"),
    ("SSL_read", "adi_ssl_read"),
    ("SSL_write_ex", "adi_ssl_write_ex"),
    ("SSL_read_ex", "adi_ssl_read_ex"),
    ("SSL_do_handshake", "adi_ssl_handshake"),
];

/// The return program of every probed library function (a uretprobe).
pub const RETURN_PROGRAM: &str = "adi_ssl_return";

/// The Go functions probed and the entry program of each. The handshake only notes its
/// `Conn`'s socket: a server's first `Read` is often served from records the handshake read.
pub const GO_FUNCTIONS: [(&str, &str); 3] = [
    ("crypto/tls.(*Conn).Write", "adi_go_tls_write"),
    ("crypto/tls.(*Conn).Read", "adi_go_tls_read"),
    (
        "crypto/tls.(*Conn).handshakeContext",
        "adi_go_tls_handshake",
    ),
];

/// The program on every RET instruction of the Go functions.
pub const GO_RETURN_PROGRAM: &str = "adi_go_tls_return";

/// Every program of the TLS uprobes: the library's entries and return, then Go's.
pub(crate) fn programs() -> impl Iterator<Item = &'static str> {
    FUNCTIONS
        .iter()
        .map(|(_, p)| *p)
        .chain(std::iter::once(RETURN_PROGRAM))
        .chain(GO_FUNCTIONS.iter().map(|(_, p)| *p))
        .chain(std::iter::once(GO_RETURN_PROGRAM))
}

/// One place of a file where a TLS uprobe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// The function the place is in.
    pub function: &'static str,
    /// The program attached there.
    pub program: &'static str,
    /// Its file offset.
    pub offset: u64,
}

/// Largest executable read to look for TLS functions in (bigger ones are skipped).
const MAX_EXECUTABLE: u64 = 512 * 1024 * 1024;

/// Directories where a distribution keeps its shared libraries.
const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

/// A file on this host, by device and inode (the same library through two paths, or seen
/// from a container's root, is one file).
pub type FileId = (u64, u64);

/// Which processes a file's TLS uprobes fire in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsScope {
    /// Every process that maps the file (`--all`).
    All,
    /// This process only.
    Process(u32),
}

/// What [`KernelProbes::attach_tls`] did with one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsAttach {
    /// Probes attached to these functions.
    Attached(Vec<&'static str>),
    /// The file was already probed in this scope.
    Known,
    /// The file defines none of the functions.
    NotTls,
}

/// The uprobes of one file in one scope: (program, link).
type Links = Vec<(&'static str, UProbeLinkId)>;

/// What the TLS probes hold: the functions found per file, the attachments per scope, and
/// whether the programs are loaded.
#[derive(Debug, Default)]
pub(crate) struct TlsState {
    loaded: bool,
    /// The places to probe in each file (empty: none).
    sites: HashMap<FileId, Vec<Site>>,
    /// Attachments by scope and file, with their links.
    links: HashMap<TlsScope, HashMap<FileId, Links>>,
    probed: Vec<PathBuf>,
}

/// The candidate files of a distribution's library directories: `libssl.so*`, each real file
/// once.
pub fn system_libraries() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in LIBRARY_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if is_library_name(&entry.file_name().to_string_lossy()) {
                // The real file, once: `libssl.so` and `/lib` (merged into `/usr/lib`) are
                // other names of it; a dangling link names nothing.
                if let Ok(real) = fs::canonicalize(entry.path()) {
                    found.push(real);
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Whether a file name is that of a TLS library adi probes: `libssl.so`, `libssl.so.3`,
/// `libssl.so.1.1` (not NSS's `libssl3.so`, whose API is another).
pub fn is_library_name(name: &str) -> bool {
    name.starts_with("libssl.so")
}

/// The candidate files mapped by process `pid`: its `libssl` libraries and, with `exe`, its
/// executable (which may have OpenSSL linked in; reading it costs more), as paths adi can
/// open (through `/proc/PID/root`, so a container's own files are found). Empty when the
/// process is gone.
pub fn candidates_of(pid: u32, exe: bool) -> Vec<PathBuf> {
    let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut found: Vec<PathBuf> = mapped_libraries(&maps)
        .into_iter()
        .map(|p| root.join(p.trim_start_matches('/')))
        .collect();
    if exe {
        found.push(PathBuf::from(format!("/proc/{pid}/exe")));
    }
    found
}

/// Whether the file at `path` is a Go executable (whose `crypto/tls` [`sites_in`] finds): told
/// from its section headers, without reading the whole file.
pub fn is_go_executable(path: &Path) -> bool {
    crate::go::GoBinary::open(path).is_ok_and(|bin| bin.is_go())
}

/// The `libssl` paths in a `/proc/PID/maps` text, each once, in order of appearance.
pub fn mapped_libraries(maps: &str) -> Vec<&str> {
    let mut found: Vec<&str> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path: the path starts at the sixth field and may
        // hold spaces.
        let Some(path) = line.splitn(6, ' ').nth(5).map(str::trim_start) else {
            continue;
        };
        if !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        if is_library_name(name) && !found.contains(&path) {
            found.push(path);
        }
    }
    found
}

/// Where the TLS uprobes go in the ELF file at `path`: the entry and return of each of
/// [`FUNCTIONS`] it defines (dynamic or static symbol table), or, in a Go executable, the
/// entry and RET instructions of [`GO_FUNCTIONS`]. Empty when it has none.
///
/// # Errors
///
/// When the file cannot be read, is not ELF or is larger than adi reads.
pub fn sites_in(path: &Path) -> io::Result<Vec<Site>> {
    let meta = fs::metadata(path)?;
    if meta.len() > MAX_EXECUTABLE {
        return Err(io::Error::other("too large to read"));
    }
    // A Go binary is told by its sections, read without reading the whole file.
    if let Ok(bin) = crate::go::GoBinary::open(path) {
        if bin.is_go() {
            return go_sites(&bin).map_err(io::Error::other);
        }
    }
    let data = fs::read(path)?;
    let file = object::File::parse(&*data).map_err(io::Error::other)?;
    let mut found = Vec::new();
    for (function, program) in FUNCTIONS {
        let symbol = file
            .dynamic_symbols()
            .chain(file.symbols())
            .filter(ObjectSymbol::is_definition)
            .find(|s| s.name_bytes().ok() == Some(function.as_bytes()));
        // The symbol's address, as a file offset: within its section, from the section's
        // place in the file.
        let offset = symbol.and_then(|s| {
            let section = file.section_by_index(s.section_index()?).ok()?;
            let (file_start, _) = section.file_range()?;
            Some(s.address() - section.address() + file_start)
        });
        // The return probe first: an entry attached without its return would leave its
        // calls stashed until the map's LRU drops them.
        if let Some(offset) = offset {
            found.push(Site {
                function,
                program: RETURN_PROGRAM,
                offset,
            });
            found.push(Site {
                function,
                program,
                offset,
            });
        }
    }
    Ok(found)
}

/// The sites of [`GO_FUNCTIONS`] in a Go executable: none unless they are all there (an
/// x86-64 binary of the register ABI, Go 1.17+).
fn go_sites(bin: &crate::go::GoBinary) -> Result<Vec<Site>, crate::go::GoError> {
    if bin.machine() != object::elf::EM_X86_64 || !bin.is_64() || !register_abi(bin) {
        return Ok(Vec::new());
    }
    let names = GO_FUNCTIONS.map(|(f, _)| f);
    let found = crate::go::symbols::lookup(bin, &names)?;
    let mut sites = Vec::new();
    for ((function, program), f) in GO_FUNCTIONS.into_iter().zip(found) {
        let Some(f) = f else { return Ok(Vec::new()) };
        let start = bin.vaddr_to_file_offset(f.addr)?;
        for ret in bin.ret_offsets(&f)? {
            sites.push(Site {
                function,
                program: GO_RETURN_PROGRAM,
                offset: start + ret,
            });
        }
        let code = bin.function_code(&f)?;
        sites.push(Site {
            function,
            program,
            offset: start + crate::go::ret_sites::after_stack_check(code),
        });
    }
    Ok(sites)
}

/// Whether a Go binary passes arguments in registers (Go 1.17 and later, by its build info;
/// a binary without one is taken to).
fn register_abi(bin: &crate::go::GoBinary) -> bool {
    bin.build_info()
        .ok()
        .and_then(|info| crate::go::GoVersion::parse(&info.go_version))
        .is_none_or(|v| (v.major, v.minor) >= (1, 17))
}

fn file_id(path: &Path) -> io::Result<FileId> {
    let meta = fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl KernelProbes {
    /// Probes the TLS functions of the file at `path` (a library or an executable) for
    /// `scope`, once per file and scope. The probes were loaded with
    /// [`crate::live::ProbeConfig::tls_plaintext`] (without it the socket capture does not
    /// tie the calls to their connections, and their plaintext is counted as untied).
    ///
    /// # Errors
    ///
    /// [`ProbeError::Tls`] when the file cannot be read, [`ProbeError::Program`] when a
    /// program cannot be loaded or attached.
    pub fn attach_tls(&mut self, path: &Path, scope: TlsScope) -> Result<TlsAttach, ProbeError> {
        let tls_err = |source| ProbeError::Tls {
            path: path.to_path_buf(),
            source,
        };
        let id = file_id(path).map_err(tls_err)?;
        if self
            .tls
            .links
            .get(&scope)
            .is_some_and(|files| files.contains_key(&id))
        {
            return Ok(TlsAttach::Known);
        }
        let sites = if let Some(f) = self.tls.sites.get(&id) {
            f.clone()
        } else {
            let f = sites_in(path).map_err(tls_err)?;
            self.tls.sites.insert(id, f.clone());
            f
        };
        if sites.is_empty() {
            return Ok(TlsAttach::NotTls);
        }
        self.load_tls_programs()?;
        let aya_scope = match scope {
            TlsScope::All => UProbeScope::AllProcesses,
            TlsScope::Process(pid) => match std::num::NonZeroU32::new(pid) {
                Some(pid) => UProbeScope::OneProcess(pid),
                None => return Ok(TlsAttach::Known),
            },
        };
        let mut links = Vec::new();
        let mut result = Ok(());
        for site in &sites {
            let p: &mut UProbe = crate::live::typed_program(self.ebpf_mut(), site.program)?;
            match p.attach(
                UProbeAttachLocation::AbsoluteOffset(site.offset),
                path,
                aya_scope,
            ) {
                Ok(link) => links.push((site.program, link)),
                Err(e) => {
                    result = Err(crate::live::program_error(
                        site.program,
                        format!("attaching to {} in {}", site.function, path.display()),
                    )(e));
                    break;
                }
            }
        }
        if let Err(e) = result {
            // All or nothing: a process is not left with half of a file's probes.
            self.detach_links(links);
            return Err(e);
        }
        self.tls.links.entry(scope).or_default().insert(id, links);
        if !self.tls.probed.iter().any(|p| p == path) {
            self.tls.probed.push(path.to_path_buf());
        }
        let mut functions: Vec<&'static str> = sites.iter().map(|s| s.function).collect();
        functions.dedup();
        Ok(TlsAttach::Attached(functions))
    }

    /// Detaches the TLS uprobes of process `pid` (when it exits; no effect when it has none).
    pub fn detach_tls(&mut self, pid: u32) {
        if let Some(files) = self.tls.links.remove(&TlsScope::Process(pid)) {
            for links in files.into_values() {
                self.detach_links(links);
            }
        }
    }

    /// Processes with TLS uprobes of their own.
    pub fn tls_processes(&self) -> usize {
        self.tls
            .links
            .keys()
            .filter(|s| matches!(s, TlsScope::Process(_)))
            .count()
    }

    /// The files whose TLS functions are probed (in some scope), in attach order.
    pub fn tls_files(&self) -> &[PathBuf] {
        &self.tls.probed
    }

    fn load_tls_programs(&mut self) -> Result<(), ProbeError> {
        if self.tls.loaded {
            return Ok(());
        }
        for name in programs() {
            let program: &mut UProbe = crate::live::typed_program(self.ebpf_mut(), name)?;
            program
                .load()
                .map_err(crate::live::program_error(name, "loading".into()))?;
        }
        self.tls.loaded = true;
        Ok(())
    }

    fn detach_links(&mut self, links: Links) {
        for (program, link) in links {
            if let Ok(p) = crate::live::typed_program::<UProbe>(self.ebpf_mut(), program) {
                // The link may be gone with its process already.
                let _ = p.detach(link);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libssl_in_maps_once() {
        // Lines of a real /proc/PID/maps of curl 7.88 on Debian 12 (addresses shortened).
        let maps = "\
55d0c6a00000-55d0c6a0b000 r--p 00000000 fe:01 1311234                    /usr/bin/curl
7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0 
7f1e2d0d0000-7f1e2d0ee000 r--p 00000000 fe:01 1318009                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2d0ee000-7f1e2d148000 r-xp 0001e000 fe:01 1318009                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2d200000-7f1e2d262000 r--p 00000000 fe:01 1317990                    /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f1e2d300000-7f1e2d301000 r--p 00000000 fe:01 1317777                    /usr/lib/x86_64-linux-gnu/libnss3.so
7f1e2d400000-7f1e2d401000 r--p 00000000 fe:01 1317778                    /opt/my app/lib/libssl.so.1.1
7f1e2d500000-7f1e2d501000 r--p 00000000 fe:01 1317779                    /usr/lib/libssl.so.3 (deleted)
7ffd1e000000-7ffd1e021000 rw-p 00000000 00:00 0                          [stack]
";
        assert_eq!(
            mapped_libraries(maps),
            [
                "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "/opt/my app/lib/libssl.so.1.1"
            ]
        );
        assert!(!is_library_name("libssl3.so"));
        assert!(!is_library_name("libcrypto.so.3"));
    }

    #[test]
    fn finds_the_functions_of_the_system_libssl() {
        let Some(lib) = system_libraries().into_iter().find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libssl.so.3"))
        }) else {
            // libssl3 is installed wherever curl is; say so rather than pass silently.
            panic!("no libssl.so.3 in {LIBRARY_DIRS:?}: install libssl3");
        };
        let found = sites_in(&lib).expect("read libssl");
        // A return and an entry probe per function, both at the function's first instruction.
        for pair in found.chunks(2) {
            assert_eq!(pair[0].function, pair[1].function);
            assert_eq!(pair[0].offset, pair[1].offset);
            assert_eq!(pair[0].program, RETURN_PROGRAM);
        }
        let names: Vec<&str> = found.iter().step_by(2).map(|s| s.function).collect();
        assert_eq!(
            names,
            [
                "SSL_write",
                "SSL_read",
                "SSL_write_ex",
                "SSL_read_ex",
                "SSL_do_handshake"
            ]
        );
        // Offsets inside the file, each function at its own.
        let len = std::fs::metadata(&lib).expect("stat").len();
        assert!(
            found.iter().all(|s| s.offset > 0 && s.offset < len),
            "{found:?}"
        );
        let mut offsets: Vec<u64> = found.iter().map(|s| s.offset).collect();
        offsets.dedup();
        assert_eq!(offsets.len(), 5);
        // An executable without TLS functions.
        assert!(sites_in(Path::new("/bin/sh")).expect("read sh").is_empty());
        assert!(sites_in(Path::new("/nonexistent")).is_err());
    }

    /// The Go TLS probes' places in every Go test target (all of them link crypto/tls):
    /// every function, the entry past the stack-bound check, at least one RET each, every RET
    /// place on a RET opcode (0xc3), whatever the toolchain and the symbol source.
    #[test]
    #[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
    fn go_tls_sites_of_every_target() {
        use crate::go::testing::{self, Variant};
        for version in testing::VERSIONS {
            let t = testing::toolchain(version);
            for variant in Variant::ALL {
                for prog in ["client", "server"] {
                    let path = t.binary(variant, prog);
                    let what = format!("{} {variant:?} {prog}", t.version);
                    let bin = crate::go::GoBinary::open(&path).expect("open");
                    let sites = sites_in(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
                    let names = GO_FUNCTIONS.map(|(f, _)| f);
                    let found = crate::go::symbols::lookup(&bin, &names).expect("lookup");
                    for ((function, entry), f) in GO_FUNCTIONS.into_iter().zip(found) {
                        let f = f.unwrap_or_else(|| panic!("{what}: no {function}"));
                        let start = bin.vaddr_to_file_offset(f.addr).expect("offset");
                        let code = bin.function_code(&f).expect("code");
                        let mine: Vec<_> =
                            sites.iter().filter(|s| s.function == function).collect();
                        let entries: Vec<_> = mine.iter().filter(|s| s.program == entry).collect();
                        assert_eq!(entries.len(), 1, "{what}: {function}: {mine:?}");
                        let body = entries[0].offset - start;
                        assert!(
                            body > 0 && body < 32,
                            "{what}: {function} entry at +{body:#x}"
                        );
                        let rets: Vec<_> = mine
                            .iter()
                            .filter(|s| s.program == GO_RETURN_PROGRAM)
                            .collect();
                        assert!(!rets.is_empty(), "{what}: {function} has no RET");
                        for r in rets {
                            let off = usize::try_from(r.offset - start).expect("small");
                            assert_eq!(code.get(off), Some(&0xc3), "{what}: {function}+{off:#x}");
                        }
                    }
                }
            }
        }
    }
}
