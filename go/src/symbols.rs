//! Function entry addresses and sizes by name: from `.symtab` when the binary has one, else
//! from `.gopclntab`, which Go keeps in stripped binaries (`-ldflags='-s -w'`) because the
//! runtime needs it for tracebacks.
//!
//! `.gopclntab` layouts (`src/debug/gosym/pclntab.go`, `src/internal/abi/symtab.go`,
//! `src/cmd/link/internal/ld/pcln.go`, `src/runtime/symtab.go`):
//! - the header: magic (u32), two zero bytes, the instruction quantum, the pointer size, then
//!   pointer-sized words: `nfunc`, `nfiles`, [`textStart` (1.18+)], and the offsets of
//!   `funcnametab`, `cutab`, `filetab`, `pctab` and `pclntab` from the header;
//! - magic `0xfffffffa` (Go 1.16, 1.17): the function table holds pointer-sized pairs
//!   `(entry PC, func offset)`, and `_func` starts with a pointer-sized entry PC;
//! - magic `0xfffffff0` (Go 1.18, 1.19) and `0xfffffff1` (Go 1.20 and later): pairs of u32
//!   `(entry offset from textStart, func offset)` followed by one end offset; `_func` starts
//!   with `entryOff u32, nameOff i32` (the offset of the NUL-terminated name in
//!   `funcnametab`);
//! - Go 1.26 and later keep magic `0xfffffff1` but no longer write `textStart` (the word is
//!   0: it needed a relocation) and drop `.gosymtab`; the base is `moduledata.text`. It is
//!   found here as Go's tools do: `runtime.text` from `.symtab`, else the `moduledata` whose
//!   first word points at the pclntab header (in `.go.module` since Go 1.27, `.noptrdata`
//!   before), validated by its `funcnametab` and `minpc` fields, else the header word, else
//!   the start of `.text`.
//!
//! Every offset read from the table is bounds-checked; counts are bounded by the table size.

use object::read::elf::{FileHeader, Sym};
use object::{elf, Endianness, ReadRef};

use super::{elf_sections, not_elf, with_data, GoBinary, GoError};

/// Where a [`Function`]'s address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolSource {
    /// The ELF symbol table (`.symtab`): exact sizes.
    Symtab,
    /// The Go function table (`.gopclntab`): the size runs to the next function's entry, so it
    /// includes the padding (INT3 on amd64) between functions.
    Pclntab,
}

/// A function's entry address and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// The Go symbol name, e.g. `net/http.(*Client).do`.
    pub name: String,
    /// Entry virtual address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Where the address came from.
    pub source: SymbolSource,
}

/// `.gopclntab` magic of Go 1.16 and 1.17.
pub const PCLNTAB_MAGIC_116: u32 = 0xffff_fffa;
/// `.gopclntab` magic of Go 1.18 and 1.19.
pub const PCLNTAB_MAGIC_118: u32 = 0xffff_fff0;
/// `.gopclntab` magic of Go 1.20 and later (1.26+ included, with an unused `textStart`).
pub const PCLNTAB_MAGIC_120: u32 = 0xffff_fff1;
/// Largest function size accepted (Go's largest generated functions are a few hundred KiB).
pub const MAX_FUNCTION_LEN: u64 = 64 << 20;
/// Longest function name read from `funcnametab`.
const MAX_NAME_LEN: usize = 64 << 10;

impl GoBinary {
    /// Finds one function by its exact Go symbol name (see [`lookup`]).
    ///
    /// # Errors
    /// [`GoError::FunctionNotFound`] when neither table has it; [`GoError::BadPclntab`] when
    /// `.gopclntab` has to be read and is malformed.
    pub fn function(&self, name: &str) -> Result<Function, GoError> {
        lookup(self, &[name])?
            .pop()
            .flatten()
            .ok_or_else(|| GoError::FunctionNotFound {
                name: name.to_owned(),
            })
    }
}

/// Finds functions by their exact Go symbol names, e.g. `net/http.(*Client).do` and
/// `net/http.serverHandler.ServeHTTP`. Returns one entry per name, in order, `None` for names
/// not found. Names found in `.symtab` come from there; the others are searched in
/// `.gopclntab`.
///
/// # Errors
/// [`GoError::BadPclntab`] when `.gopclntab` has to be read and is missing or malformed;
/// [`GoError::NotElf`] when `.symtab` is malformed.
pub fn lookup(bin: &GoBinary, names: &[&str]) -> Result<Vec<Option<Function>>, GoError> {
    let mut found: Vec<Option<Function>> = vec![None; names.len()];
    if bin.section(".symtab").is_some() {
        symtab_lookup(bin, names, &mut found)?;
    }
    if found.iter().any(Option::is_none) {
        let table = Pclntab::read(bin)?;
        for (slot, name) in found.iter_mut().zip(names) {
            if slot.is_none() {
                *slot = table.find(name)?;
            }
        }
    }
    Ok(found)
}

/// Looks the names up in `.symtab` (`STT_FUNC` symbols), filling the empty slots of `found`.
fn symtab_lookup(
    bin: &GoBinary,
    names: &[&str],
    found: &mut [Option<Function>],
) -> Result<(), GoError> {
    symtab_each(bin, &mut |name, kind, value, size| {
        if kind != elf::STT_FUNC {
            return;
        }
        for (slot, want) in found.iter_mut().zip(names) {
            if slot.is_none() && name == want.as_bytes() {
                *slot = Some(Function {
                    name: (*want).to_owned(),
                    addr: value,
                    size,
                    source: SymbolSource::Symtab,
                });
            }
        }
    })
}

/// The value of the first `.symtab` symbol named `name` (any type), e.g. `runtime.text`.
pub(crate) fn symtab_address(bin: &GoBinary, name: &str) -> Option<u64> {
    bin.section(".symtab")?;
    let mut found = None;
    symtab_each(bin, &mut |sym, _, value, _| {
        if found.is_none() && sym == name.as_bytes() {
            found = Some(value);
        }
    })
    .ok()?;
    found
}

/// Calls `visit(name, st_type, st_value, st_size)` for every `.symtab` symbol.
type Visit<'v> = dyn FnMut(&[u8], u8, u64, u64) + 'v;

fn symtab_each(bin: &GoBinary, visit: &mut Visit<'_>) -> Result<(), GoError> {
    with_data!(bin, |data| {
        if bin.is_64() {
            symtab_each_in::<elf::FileHeader64<Endianness>, _>(data, visit)
        } else {
            symtab_each_in::<elf::FileHeader32<Endianness>, _>(data, visit)
        }
    })
}

fn symtab_each_in<'data, Elf, R>(data: R, visit: &mut Visit<'_>) -> Result<(), GoError>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let (_, endian, sections) = elf_sections::<Elf, R>(data)?;
    let symbols = sections
        .symbols(endian, data, elf::SHT_SYMTAB)
        .map_err(not_elf)?;
    let strings = symbols.strings();
    for sym in symbols.iter() {
        if let Ok(name) = sym.name(endian, strings) {
            visit(
                name,
                sym.st_type(),
                sym.st_value(endian).into(),
                sym.st_size(endian).into(),
            );
        }
    }
    Ok(())
}

/// The pclntab version, from its magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    /// Go 1.16, 1.17.
    V116,
    /// Go 1.18 and later (magic 0xfffffff0 or 0xfffffff1).
    V118,
}

/// A decoded `.gopclntab` header with the tables it locates.
#[derive(Debug)]
pub struct Pclntab<'a> {
    data: &'a [u8],
    little_endian: bool,
    version: Version,
    ptr_size: usize,
    nfunc: usize,
    funcnametab: &'a [u8],
    /// Offset of `funcnametab` from the header.
    funcname_offset: u64,
    /// The function table and the `_func` records (`pclnOffset`).
    pcln: &'a [u8],
    /// Base of the u32 entry offsets (1.18+); 0 for 1.16.
    text_start: u64,
    /// The `.gopclntab` magic.
    pub magic: u32,
}

fn bad(reason: impl Into<String>) -> GoError {
    GoError::BadPclntab {
        reason: reason.into(),
    }
}

impl<'a> Pclntab<'a> {
    /// Reads and validates the header of `bin`'s `.gopclntab` (or `.data.rel.ro.gopclntab`,
    /// where PIE builds put it).
    ///
    /// # Errors
    /// [`GoError::BadPclntab`] when the section is missing, of an unknown version, or its
    /// header offsets do not fit the section.
    pub fn read(bin: &'a GoBinary) -> Result<Self, GoError> {
        let section = bin
            .section(".gopclntab")
            .or_else(|| bin.section(".data.rel.ro.gopclntab"))
            .ok_or_else(|| bad("no .gopclntab section"))?;
        let data = bin.section_data(section)?;
        let mut table = Self::parse(data, bin.is_little_endian())?;
        if table.version == Version::V118 {
            table.text_start = text_start(bin, &table, section.addr);
        }
        Ok(table)
    }

    /// Parses a pclntab held in `data` (the section bytes). For Go 1.18+ the entry base is
    /// the header's `textStart` word (0 from Go 1.26 on): [`Pclntab::read`] resolves it
    /// properly; [`Pclntab::set_text_start`] overrides it.
    ///
    /// # Errors
    /// [`GoError::BadPclntab`] for an unknown magic or header offsets outside `data`.
    pub fn parse(data: &'a [u8], little_endian: bool) -> Result<Self, GoError> {
        let head = data.get(..8).ok_or_else(|| bad("header truncated"))?;
        let magic_bytes: [u8; 4] = head[..4].try_into().map_err(|_| bad("header"))?;
        let magic = if little_endian {
            u32::from_le_bytes(magic_bytes)
        } else {
            u32::from_be_bytes(magic_bytes)
        };
        let version = match magic {
            PCLNTAB_MAGIC_116 => Version::V116,
            PCLNTAB_MAGIC_118 | PCLNTAB_MAGIC_120 => Version::V118,
            other => return Err(bad(format!("unknown magic {other:#x}"))),
        };
        let (pad1, pad2, quantum, ptr_size) = (head[4], head[5], head[6], head[7]);
        if pad1 != 0 || pad2 != 0 || !matches!(quantum, 1 | 2 | 4) || !matches!(ptr_size, 4 | 8) {
            return Err(bad("bad header padding, quantum or pointer size"));
        }
        let ptr_size = usize::from(ptr_size);
        let mut table = Self {
            data,
            little_endian,
            version,
            ptr_size,
            nfunc: 0,
            funcnametab: &[],
            funcname_offset: 0,
            pcln: &[],
            text_start: 0,
            magic,
        };
        let word = |i: usize| -> Result<u64, GoError> {
            data.get(8 + i * ptr_size..)
                .and_then(|b| read_uint(b, ptr_size, little_endian))
                .ok_or_else(|| bad("header truncated"))
        };
        let tail = |off: u64| -> Result<&'a [u8], GoError> {
            usize::try_from(off)
                .ok()
                .and_then(|o| data.get(o..))
                .ok_or_else(|| bad(format!("table offset {off:#x} outside the section")))
        };
        let nfunc = word(0)?;
        // Each function takes at least 8 bytes of function table: more is corrupt.
        if nfunc > data.len() as u64 / 8 {
            return Err(bad(format!("{nfunc} functions in {} bytes", data.len())));
        }
        let (names, pcln) = match version {
            Version::V116 => (word(2)?, word(6)?),
            Version::V118 => {
                table.text_start = word(2)?;
                (word(3)?, word(7)?)
            }
        };
        table.nfunc = nfunc as usize;
        table.funcnametab = tail(names)?;
        table.funcname_offset = names;
        table.pcln = tail(pcln)?;
        let field = table.functab_field();
        let functab_len = (table.nfunc * 2 + 1) * field;
        if table.pcln.len() < functab_len {
            return Err(bad("function table runs past the section"));
        }
        Ok(table)
    }

    /// Overrides the base of the u32 entry offsets (Go 1.18+).
    pub fn set_text_start(&mut self, text_start: u64) {
        self.text_start = text_start;
    }

    /// The base of the u32 entry offsets in use (Go 1.18+; 0 for 1.16 tables).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// The header's `textStart` word (Go 1.18 to 1.25; 0 from 1.26 on and for 1.16).
    pub fn header_text_start(&self) -> u64 {
        if self.version == Version::V118 {
            self.data
                .get(8 + 2 * self.ptr_size..)
                .and_then(|b| self.word(b))
                .unwrap_or(0)
        } else {
            0
        }
    }

    /// Number of functions in the table.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Whether the table has no function.
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    fn word(&self, b: &[u8]) -> Option<u64> {
        read_uint(b, self.ptr_size, self.little_endian)
    }

    fn u32_at(&self, b: &[u8], off: usize) -> Option<u32> {
        let v = read_uint(b.get(off..)?, 4, self.little_endian)?;
        u32::try_from(v).ok()
    }

    fn functab_field(&self) -> usize {
        match self.version {
            Version::V116 => self.ptr_size,
            Version::V118 => 4,
        }
    }

    /// Field `k` (0 = pc/offset, 1 = func offset) of function table entry `i` (`i == nfunc`
    /// is the end sentinel, field 0 only).
    fn functab(&self, i: usize, k: usize) -> Result<u64, GoError> {
        let field = self.functab_field();
        let off = (2 * i + k) * field;
        self.pcln
            .get(off..)
            .and_then(|b| read_uint(b, field, self.little_endian))
            .ok_or_else(|| bad("function table truncated"))
    }

    /// Entry PC of function table entry `i` (or the end of the last function for `nfunc`).
    fn entry(&self, i: usize) -> Result<u64, GoError> {
        let v = self.functab(i, 0)?;
        Ok(match self.version {
            Version::V116 => v,
            Version::V118 => self.text_start.wrapping_add(v),
        })
    }

    /// The name of function `i`.
    fn name(&self, i: usize) -> Result<&'a [u8], GoError> {
        let func_off = usize::try_from(self.functab(i, 1)?).map_err(|_| bad("func offset"))?;
        let name_field = match self.version {
            Version::V116 => self.ptr_size,
            Version::V118 => 4,
        };
        let name_off = self
            .u32_at(self.pcln, func_off.saturating_add(name_field))
            .ok_or_else(|| bad(format!("_func at {func_off:#x} outside the table")))?;
        let name_off = usize::try_from(name_off).map_err(|_| bad("name offset"))?;
        let tail = self
            .funcnametab
            .get(name_off..)
            .ok_or_else(|| bad(format!("name offset {name_off:#x} outside funcnametab")))?;
        let window = &tail[..tail.len().min(MAX_NAME_LEN)];
        let end = window
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("unterminated function name"))?;
        Ok(&window[..end])
    }

    /// Finds a function by exact name: its entry and its size up to the next function.
    ///
    /// # Errors
    /// [`GoError::BadPclntab`] when an entry on the way is out of bounds, or the function's end
    /// is before its entry or absurdly far.
    pub fn find(&self, name: &str) -> Result<Option<Function>, GoError> {
        for i in 0..self.nfunc {
            if self.name(i)? != name.as_bytes() {
                continue;
            }
            let addr = self.entry(i)?;
            let end = self.entry(i + 1)?;
            let size = end
                .checked_sub(addr)
                .filter(|&s| s <= MAX_FUNCTION_LEN)
                .ok_or_else(|| bad(format!("{name}: end {end:#x} before entry {addr:#x}")))?;
            return Ok(Some(Function {
                name: name.to_owned(),
                addr,
                size,
                source: SymbolSource::Pclntab,
            }));
        }
        Ok(None)
    }

    /// Offset (from the text base) of the first function: `moduledata.minpc - text`.
    fn first_entry_offset(&self) -> Option<u64> {
        self.functab(0, 0).ok()
    }
}

fn read_uint(b: &[u8], size: usize, little_endian: bool) -> Option<u64> {
    Some(match (size, little_endian) {
        (8, true) => u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
        (8, false) => u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
        (4, true) => u64::from(u32::from_le_bytes(b.get(..4)?.try_into().ok()?)),
        (4, false) => u64::from(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)),
        _ => return None,
    })
}

/// The base of the pclntab's entry offsets (see the module docs for the order of sources).
fn text_start(bin: &GoBinary, table: &Pclntab<'_>, pclntab_addr: u64) -> u64 {
    if let Some(addr) = symtab_address(bin, "runtime.text") {
        return addr;
    }
    if let Some(text) = moduledata_text(bin, table, pclntab_addr) {
        return text;
    }
    let header = table.header_text_start();
    if header != 0 {
        return header;
    }
    bin.section(".text").map_or(0, |s| s.addr)
}

/// Sections where the linker puts `runtime.firstmoduledata`.
const MODULEDATA_SECTIONS: [&str; 4] = [".go.module", ".noptrdata", ".data.rel.ro", ".data"];
/// Most bytes of a section scanned for the moduledata.
const MAX_MODULEDATA_SCAN: u64 = 16 << 20;

/// `moduledata.text`: the moduledata starts with a pointer to the pclntab header, then six
/// slices (`funcnametab` first), then `findfunctab`, `minpc`, `maxpc`, `text`.
pub(crate) fn moduledata_text(
    bin: &GoBinary,
    table: &Pclntab<'_>,
    pclntab_addr: u64,
) -> Option<u64> {
    let ptr = table.ptr_size;
    let names_addr = pclntab_addr.checked_add(table.funcname_offset)?;
    let first = table.first_entry_offset()?;
    for name in MODULEDATA_SECTIONS {
        let Some(section) = bin.section(name) else {
            continue;
        };
        let Ok(data) = bin.read_at(
            "moduledata",
            section.offset,
            section.size.min(MAX_MODULEDATA_SCAN),
        ) else {
            continue;
        };
        let mut off = 0;
        while off + 23 * ptr <= data.len() {
            let w = |i: usize| read_uint(&data[off + i * ptr..], ptr, bin.is_little_endian());
            if w(0) == Some(pclntab_addr) && w(1) == Some(names_addr) {
                let (minpc, text) = (w(20)?, w(22)?);
                if text.checked_add(first) == Some(minpc) {
                    return Some(text);
                }
            }
            off += ptr;
        }
    }
    None
}
