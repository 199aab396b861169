//! `adi-go`: Go binary inspection, what `adi go ps` lists and what adi's Go uprobes (the
//! `net/http` ones and the `crypto/tls` ones, in `adi-probes`) need to attach. Pure reading of
//! files: no BPF, no async runtime.
//!
//! - [`buildinfo`]: the Go version, main package, modules and build settings that the Go linker
//!   writes into `.go.buildinfo` (both the pre-1.18 pointer format and the 1.18+ inline
//!   format), like Go's `debug/buildinfo`;
//! - [`symbols`]: function entry addresses and sizes by name, from `.symtab` or, in stripped
//!   binaries (`-ldflags='-s -w'`), from `.gopclntab` (Go 1.18 to 1.27 layouts); and the
//!   virtual address to file offset conversion that uprobes need;
//! - [`ret_sites`]: the RET instructions of a function, found by decoding x86-64 instructions
//!   (uretprobes must not be used on Go: goroutine stacks move, golang/go#22008);
//! - [`offsets`]: struct field offsets, from DWARF or a built-in table by Go version.
//!
//! Everything here reads untrusted bytes (any file a process runs): lengths are checked
//! before use and bounded by `MAX_*` constants, and malformed input is a [`GoError`], never a
//! panic. Only ELF is read (Linux), 64-bit for symbols and uprobes, 32-bit too for build
//! info. [`GoBinary::open`] reads the parts of the file it needs, not the whole file.

#![forbid(unsafe_code)]

pub mod buildinfo;
pub mod offsets;
pub mod offsets_table;
pub mod ret_sites;
pub mod symbols;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};

use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, SectionTable};
use object::{elf, Endianness, FileKind, ReadCache, ReadRef};

pub use buildinfo::{BuildInfo, BuildSetting, GoVersion, Module};
pub use ret_sites::ret_offsets;
pub use symbols::{Function, SymbolSource};

/// Largest section [`GoBinary::section_data`] reads (`.gopclntab` of a very large program is a
/// few hundred MiB at most; anything bigger is treated as corrupt).
pub const MAX_SECTION_LEN: u64 = 512 << 20;

/// What went wrong reading a Go binary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoError {
    /// The file could not be opened or read.
    #[error("reading {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ELF file, or its ELF headers are corrupt.
    #[error("not a valid ELF file: {reason}")]
    NotElf {
        /// What was wrong.
        reason: String,
    },
    /// A valid ELF file with no Go build information: not a Go program (or one built before Go
    /// 1.13, or with the build info removed).
    #[error("not a Go binary (no .go.buildinfo)")]
    NotGo,
    /// The `.go.buildinfo` section is present but malformed.
    #[error("malformed Go build info: {reason}")]
    BadBuildInfo {
        /// What was wrong.
        reason: String,
    },
    /// The DWARF sections are present but cannot be decompressed or parsed.
    #[error("unreadable DWARF: {reason}")]
    BadDwarf {
        /// What was wrong.
        reason: String,
    },
    /// The `.gopclntab` section is missing, of an unknown version, or malformed.
    #[error("malformed or unsupported .gopclntab: {reason}")]
    BadPclntab {
        /// What was wrong.
        reason: String,
    },
    /// No function of this name in `.symtab` or `.gopclntab`.
    #[error("function {name} not found")]
    FunctionNotFound {
        /// The function name searched for.
        name: String,
    },
    /// A virtual address that no file-backed `PT_LOAD` segment maps.
    #[error("address {addr:#x} is not mapped from the file")]
    AddressNotMapped {
        /// The virtual address.
        addr: u64,
    },
    /// A read past the end of the file or of a bound.
    #[error("{what}: {len} bytes at file offset {offset:#x} are out of bounds")]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// File offset of the read.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// Bytes that do not decode as an x86-64 instruction, at this offset from the start of
    /// the function.
    #[error("invalid instruction at function offset {offset:#x}")]
    BadInstruction {
        /// Offset from the function's entry.
        offset: u64,
    },
    /// The ELF class or machine is not supported for this operation.
    #[error("unsupported binary: {reason}")]
    Unsupported {
        /// What is not supported.
        reason: &'static str,
    },
}

/// One ELF section header, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Section name (`.text`, `.gopclntab`, ...), lossily decoded.
    pub name: String,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// Virtual address (`sh_addr`), 0 when not loaded.
    pub addr: u64,
    /// File offset (`sh_offset`).
    pub offset: u64,
    /// Size in bytes (`sh_size`).
    pub size: u64,
}

impl Section {
    /// Whether the section has bytes in the file (not `SHT_NOBITS`).
    pub fn in_file(&self) -> bool {
        self.kind != elf::SHT_NOBITS && self.kind != elf::SHT_NULL
    }

    /// Whether `addr` falls inside the section's virtual address range.
    pub fn contains_addr(&self, addr: u64) -> bool {
        self.addr != 0 && addr >= self.addr && addr - self.addr < self.size
    }
}

/// One `PT_LOAD` program header, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_offset`.
    pub offset: u64,
    /// `p_filesz`: the bytes of the segment present in the file.
    pub filesz: u64,
    /// `p_flags` (`PF_X`, `PF_W`, `PF_R`).
    pub flags: u32,
}

/// Where the bytes come from: a file read on demand, or bytes in memory.
enum Source {
    File(ReadCache<File>),
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(_) => f.write_str("File"),
            Self::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
        }
    }
}

/// Calls `$body` with `$data` bound to the binary's bytes as an `object::ReadRef`.
macro_rules! with_data {
    ($bin:expr, |$data:ident| $body:expr) => {
        match &$bin.source {
            $crate::Source::File(cache) => {
                let $data = cache;
                $body
            }
            $crate::Source::Bytes(bytes) => {
                let $data = bytes.as_slice();
                $body
            }
        }
    };
}
pub(crate) use with_data;

/// An ELF executable opened for Go inspection: its section and segment tables are decoded
/// once; section contents are read on demand.
#[derive(Debug)]
pub struct GoBinary {
    source: Source,
    path: Option<PathBuf>,
    is_64: bool,
    little_endian: bool,
    machine: u16,
    sections: Vec<Section>,
    segments: Vec<Segment>,
}

impl GoBinary {
    /// Opens an ELF file (for a process, `/proc/PID/exe` works even when the file was deleted
    /// or lives in another mount namespace). Only the headers are read here.
    ///
    /// # Errors
    /// [`GoError::Io`] when the file cannot be opened, [`GoError::NotElf`] when its headers are
    /// not valid ELF.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GoError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| GoError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut bin = Self::parse(Source::File(ReadCache::new(file)))?;
        bin.path = Some(path.to_owned());
        Ok(bin)
    }

    /// Parses an ELF image held in memory (tests, fuzzing, files already read).
    ///
    /// # Errors
    /// [`GoError::NotElf`] when the headers are not valid ELF.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GoError> {
        Self::parse(Source::Bytes(bytes))
    }

    fn parse(source: Source) -> Result<Self, GoError> {
        let mut bin = Self {
            source,
            path: None,
            is_64: true,
            little_endian: true,
            machine: 0,
            sections: Vec::new(),
            segments: Vec::new(),
        };
        let layout = with_data!(bin, |data| {
            match FileKind::parse(data) {
                Ok(FileKind::Elf64) => read_layout::<elf::FileHeader64<Endianness>, _>(data),
                Ok(FileKind::Elf32) => read_layout::<elf::FileHeader32<Endianness>, _>(data),
                Ok(_) => Err(GoError::NotElf {
                    reason: "not an ELF file".into(),
                }),
                Err(e) => Err(GoError::NotElf {
                    reason: e.to_string(),
                }),
            }
        })?;
        bin.is_64 = layout.is_64;
        bin.little_endian = layout.little_endian;
        bin.machine = layout.machine;
        bin.sections = layout.sections;
        bin.segments = layout.segments;
        Ok(bin)
    }

    /// The path given to [`GoBinary::open`], if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the file is ELF64 (ELF32 otherwise).
    pub fn is_64(&self) -> bool {
        self.is_64
    }

    /// Whether the file is little-endian.
    pub fn is_little_endian(&self) -> bool {
        self.little_endian
    }

    /// `e_machine` (`EM_X86_64` is 62).
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// The section headers, in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The `PT_LOAD` program headers.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The first section with this name.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Whether the linker's Go build id note (`.note.go.buildid`) is present: the cheap test
    /// for "is a Go binary" (`-ldflags=-s` keeps it). [`GoBinary::is_go`] also accepts binaries
    /// with build info only.
    pub fn has_go_buildid_note(&self) -> bool {
        self.section(".note.go.buildid").is_some()
    }

    /// Whether this is a Go binary: it has `.note.go.buildid` or `.go.buildinfo`.
    pub fn is_go(&self) -> bool {
        self.has_go_buildid_note() || self.section(".go.buildinfo").is_some()
    }

    /// Reads the Go build information (see [`buildinfo`]).
    ///
    /// # Errors
    /// [`GoError::NotGo`] without `.go.buildinfo`; [`GoError::BadBuildInfo`] when it is
    /// malformed.
    pub fn build_info(&self) -> Result<BuildInfo, GoError> {
        buildinfo::read(self)
    }

    /// Reads `len` bytes at file offset `offset`.
    ///
    /// # Errors
    /// [`GoError::OutOfBounds`] past the end of the file.
    pub fn read_at(&self, what: &'static str, offset: u64, len: u64) -> Result<&[u8], GoError> {
        let oob = GoError::OutOfBounds { what, offset, len };
        if len > MAX_SECTION_LEN {
            return Err(oob);
        }
        with_data!(self, |data| data
            .read_bytes_at(offset, len)
            .map_err(|()| oob))
    }

    /// The bytes of a section (at most [`MAX_SECTION_LEN`]).
    ///
    /// # Errors
    /// [`GoError::OutOfBounds`] when the section is `SHT_NOBITS`, too large, or extends past the
    /// end of the file.
    pub fn section_data(&self, section: &Section) -> Result<&[u8], GoError> {
        if !section.in_file() {
            return Err(GoError::OutOfBounds {
                what: "section without file data",
                offset: section.offset,
                len: section.size,
            });
        }
        self.read_at("section", section.offset, section.size)
    }

    /// The file offset of virtual address `addr`, through the `PT_LOAD` segment that maps it
    /// from the file. This is the offset a uprobe is attached at (aya's
    /// `UProbeAttachLocation::AbsoluteOffset`).
    ///
    /// # Errors
    /// [`GoError::AddressNotMapped`] when no segment maps `addr` from file bytes.
    pub fn vaddr_to_file_offset(&self, addr: u64) -> Result<u64, GoError> {
        self.segments
            .iter()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)
            .and_then(|s| s.offset.checked_add(addr - s.vaddr))
            .ok_or(GoError::AddressNotMapped { addr })
    }

    /// Reads `len` bytes at virtual address `addr` (through the `PT_LOAD` segments).
    ///
    /// # Errors
    /// [`GoError::AddressNotMapped`] when the range is not entirely file-backed by one segment;
    /// [`GoError::OutOfBounds`] past the end of the file.
    pub fn read_addr(&self, addr: u64, len: u64) -> Result<&[u8], GoError> {
        let seg = self
            .segments
            .iter()
            .find(|s| {
                addr >= s.vaddr && addr - s.vaddr < s.filesz && len <= s.filesz - (addr - s.vaddr)
            })
            .ok_or(GoError::AddressNotMapped { addr })?;
        let offset = seg
            .offset
            .checked_add(addr - seg.vaddr)
            .ok_or(GoError::AddressNotMapped { addr })?;
        self.read_at("virtual address", offset, len)
    }

    /// Decodes a pointer-sized word (`ptr_size` 4 or 8) in the file's byte order.
    pub(crate) fn word(&self, bytes: &[u8], ptr_size: usize) -> Option<u64> {
        let b = bytes.get(..ptr_size)?;
        Some(match (ptr_size, self.little_endian) {
            (8, true) => u64::from_le_bytes(b.try_into().ok()?),
            (8, false) => u64::from_be_bytes(b.try_into().ok()?),
            (4, true) => u64::from(u32::from_le_bytes(b.try_into().ok()?)),
            (4, false) => u64::from(u32::from_be_bytes(b.try_into().ok()?)),
            _ => return None,
        })
    }
}

struct Layout {
    is_64: bool,
    little_endian: bool,
    machine: u16,
    sections: Vec<Section>,
    segments: Vec<Segment>,
}

/// Most section headers accepted (real Go binaries have about 40).
const MAX_SECTIONS: usize = 4096;

/// An `object` error as [`GoError::NotElf`].
pub(crate) fn not_elf(e: object::Error) -> GoError {
    GoError::NotElf {
        reason: e.to_string(),
    }
}

/// The ELF header, byte order and section table of `data`.
pub(crate) fn elf_sections<'data, Elf, R>(
    data: R,
) -> Result<(&'data Elf, Endianness, SectionTable<'data, Elf, R>), GoError>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let header = Elf::parse(data).map_err(not_elf)?;
    let endian = header.endian().map_err(not_elf)?;
    let table = header.sections(endian, data).map_err(not_elf)?;
    Ok((header, endian, table))
}

fn read_layout<'data, Elf, R>(data: R) -> Result<Layout, GoError>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let (header, endian, table) = elf_sections::<Elf, R>(data)?;
    if table.len() > MAX_SECTIONS {
        return Err(GoError::NotElf {
            reason: format!("{} section headers", table.len()),
        });
    }
    let mut sections = Vec::with_capacity(table.len());
    for sh in table.iter() {
        let name = table
            .section_name(endian, sh)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        sections.push(Section {
            name,
            kind: sh.sh_type(endian),
            flags: sh.sh_flags(endian).into(),
            addr: sh.sh_addr(endian).into(),
            offset: sh.sh_offset(endian).into(),
            size: sh.sh_size(endian).into(),
        });
    }
    let segments = header
        .program_headers(endian, data)
        .map_err(not_elf)?
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .map(|p| Segment {
            vaddr: p.p_vaddr(endian).into(),
            memsz: p.p_memsz(endian).into(),
            offset: p.p_offset(endian).into(),
            filesz: p.p_filesz(endian).into(),
            flags: p.p_flags(endian),
        })
        .collect();
    Ok(Layout {
        is_64: header.is_type_64(),
        little_endian: endian == Endianness::Little,
        machine: header.e_machine(endian),
        sections,
        segments,
    })
}
