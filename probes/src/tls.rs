//! TLS plaintext: which files hold an OpenSSL-compatible TLS library, and uprobes on their
//! `SSL_write`, `SSL_read`, `SSL_write_ex` and `SSL_read_ex` (entry and return), programs of
//! the same object as the socket capture (`probes/bpf/adi.bpf.c`), so the plaintext joins its
//! connection there.
//!
//! A uprobe is attached to a file, not a process: once a library file is probed, every
//! process that maps it is covered, whenever it starts (the programs keep only watched
//! processes). Candidates are `libssl*` files (OpenSSL 1.1 and 3.x, BoringSSL's shared build)
//! and executables that define the functions themselves (statically linked OpenSSL or
//! BoringSSL with a symbol table, Node.js).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::programs::uprobe::UProbeScope;
use aya::programs::UProbe;
use object::{Object, ObjectSymbol};

use crate::live::{ProbeError, SyscallProbes};

/// The library functions probed and the entry program of each; one return program serves
/// all four.
pub const FUNCTIONS: [(&str, &str); 4] = [
    ("SSL_write", "adi_ssl_write"),
    ("SSL_read", "adi_ssl_read"),
    ("SSL_write_ex", "adi_ssl_write_ex"),
    ("SSL_read_ex", "adi_ssl_read_ex"),
];

/// The return program of every probed function.
pub const RETURN_PROGRAM: &str = "adi_ssl_return";

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

/// What [`SyscallProbes::attach_tls`] did with one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsAttach {
    /// Probes attached to these functions.
    Attached(Vec<&'static str>),
    /// The file was already probed (or already found to hold no TLS function).
    Known,
    /// The file defines none of the functions.
    NotTls,
}

/// What the TLS probes hold: the files probed or checked, and whether the programs are loaded.
#[derive(Debug, Default)]
pub(crate) struct TlsState {
    loaded: bool,
    seen: HashSet<FileId>,
    probed: Vec<PathBuf>,
}

/// The candidate files of a distribution's library directories: `libssl.so*`.
pub fn system_libraries() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in LIBRARY_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if is_library_name(&entry.file_name().to_string_lossy()) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
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

/// Which of [`FUNCTIONS`] the ELF file at `path` defines (dynamic or static symbol table).
///
/// # Errors
///
/// When the file cannot be read, is not ELF or is larger than adi reads.
pub fn functions_in(path: &Path) -> io::Result<Vec<&'static str>> {
    let meta = fs::metadata(path)?;
    if meta.len() > MAX_EXECUTABLE {
        return Err(io::Error::other("too large to read"));
    }
    let data = fs::read(path)?;
    let file = object::File::parse(&*data).map_err(io::Error::other)?;
    let defined: HashSet<&[u8]> = file
        .dynamic_symbols()
        .chain(file.symbols())
        .filter(ObjectSymbol::is_definition)
        .filter_map(|s| s.name_bytes().ok())
        .collect();
    Ok(FUNCTIONS
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| defined.contains(f.as_bytes()))
        .collect())
}

fn file_id(path: &Path) -> io::Result<FileId> {
    let meta = fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl SyscallProbes {
    /// Probes the TLS functions of the file at `path` (a library or an executable), once
    /// per file: every process that maps it, now or later, is covered.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Tls`] when the file cannot be read, [`ProbeError::Program`] when a
    /// program cannot be loaded or attached.
    pub fn attach_tls(&mut self, path: &Path) -> Result<TlsAttach, ProbeError> {
        let tls_err = |source| ProbeError::Tls {
            path: path.to_path_buf(),
            source,
        };
        let id = file_id(path).map_err(tls_err)?;
        if self.tls.seen.contains(&id) {
            return Ok(TlsAttach::Known);
        }
        let functions = functions_in(path).map_err(tls_err)?;
        self.tls.seen.insert(id);
        if functions.is_empty() {
            return Ok(TlsAttach::NotTls);
        }
        if !self.tls.loaded {
            for name in FUNCTIONS
                .iter()
                .map(|(_, p)| *p)
                .chain(std::iter::once(RETURN_PROGRAM))
            {
                let program: &mut UProbe = crate::live::typed_program(self.ebpf_mut(), name)?;
                program
                    .load()
                    .map_err(crate::live::program_error(name, "loading".into()))?;
            }
            self.tls.loaded = true;
        }
        for (function, entry) in FUNCTIONS {
            if !functions.contains(&function) {
                continue;
            }
            // The return probe first: an entry without its return would leave its call
            // stashed until the map's LRU drops it.
            for program in [RETURN_PROGRAM, entry] {
                let p: &mut UProbe = crate::live::typed_program(self.ebpf_mut(), program)?;
                p.attach(function, path, UProbeScope::AllProcesses)
                    .map_err(crate::live::program_error(
                        program,
                        format!("attaching to {function} in {}", path.display()),
                    ))?;
            }
        }
        self.tls.probed.push(path.to_path_buf());
        Ok(TlsAttach::Attached(functions))
    }

    /// The files whose TLS functions are probed, in attach order.
    pub fn tls_files(&self) -> &[PathBuf] {
        &self.tls.probed
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
        assert_eq!(
            functions_in(&lib).expect("read libssl"),
            ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"]
        );
        // An executable without TLS functions.
        assert!(functions_in(Path::new("/bin/sh"))
            .expect("read sh")
            .is_empty());
        assert!(functions_in(Path::new("/nonexistent")).is_err());
    }
}
