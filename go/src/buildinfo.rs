//! Go build information from `.go.buildinfo`, as Go's `debug/buildinfo` reads it
//! (`src/debug/buildinfo/buildinfo.go`, `src/runtime/debug/mod.go` for the text format).
//!
//! The section starts, at a 16-byte aligned offset, with a 32-byte header: the magic
//! `"\xff Go buildinf:"` (14 bytes), the pointer size (byte 14) and flags (byte 15: bit 0 big
//! endian, bit 1 inline strings). Go 1.18 and newer write the version and the module text
//! inline after the header, each as a uvarint length and bytes. Older linkers (1.13 to 1.17)
//! write two pointers to Go string headers `{ptr, len}` instead, which are followed through the
//! `PT_LOAD` segments. The module text is framed by 16 sentinel bytes on each side and holds
//! tab-separated lines: `path`, `mod`, `dep`, `=>` (replacement) and `build KEY=VALUE`, keys
//! and values quoted with Go syntax when they contain spaces, tabs, quotes or `=`.
//!
//! Every length is checked against [`MAX_VERSION_LEN`] / [`MAX_MODINFO_LEN`] and against the
//! file before it is read; anything malformed is a [`GoError::BadBuildInfo`].

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

use super::{GoBinary, GoError};

/// The 14 bytes that start the build info header (`buildInfoMagic`).
pub const BUILDINFO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Size of the header that starts with [`BUILDINFO_MAGIC`] (`buildInfoHeaderSize`).
pub const BUILDINFO_HEADER_LEN: usize = 32;
/// Alignment of the header inside the section (`buildInfoAlign`).
const BUILDINFO_ALIGN: usize = 16;
/// How far into `.go.buildinfo` the header is searched for (Go: the whole section, which the
/// linker makes a few hundred bytes plus the module text).
const MAX_SEARCH_LEN: u64 = 1 << 20;
/// Longest Go version string accepted (real ones: `go1.21.13`, `devel go1.23-abc Tue ...`).
pub const MAX_VERSION_LEN: u64 = 1024;
/// Longest module text accepted (one line per dependency; large programs have a few thousand).
pub const MAX_MODINFO_LEN: u64 = 16 << 20;
/// Flags byte: big-endian pointers (`flagsEndianBig`).
const FLAG_BIG_ENDIAN: u8 = 0x1;
/// Flags byte: inline version and module strings, Go 1.18+ (`flagsVersionInl`).
const FLAG_INLINE: u8 = 0x2;

/// A Go module as the build info names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Module {
    /// Module path, e.g. `golang.org/x/net`.
    pub path: String,
    /// Version, e.g. `v0.1.0`; `(devel)` for the main module of a local build.
    pub version: String,
    /// go.sum checksum (`h1:...`), empty when unknown.
    pub sum: String,
    /// The module that replaced this one (`=>` line), if any.
    pub replace: Option<Box<Module>>,
}

/// One `build KEY=VALUE` line: `-ldflags`, `-tags`, `CGO_ENABLED`, `GOARCH`, `GOOS`,
/// `GOAMD64`, `GOEXPERIMENT`, `vcs`, `vcs.revision`, `vcs.time`, `vcs.modified`, ...
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuildSetting {
    /// The key, unquoted.
    pub key: String,
    /// The value, unquoted.
    pub value: String,
}

/// The build information of a Go binary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    /// The toolchain version as recorded, e.g. `go1.21.13`, `go1.9.2 X:framepointer`,
    /// `devel go1.23-abcdef Tue Jan 2 15:04:05 2024 +0000`.
    pub go_version: String,
    /// The main package path (`path` line), e.g. `example.com/cmd/server`; empty for binaries
    /// built without module support.
    pub path: String,
    /// The main module (`mod` line).
    pub main: Module,
    /// The dependencies (`dep` lines), in file order.
    pub deps: Vec<Module>,
    /// The build settings (`build` lines), in file order.
    pub settings: Vec<BuildSetting>,
}

impl BuildInfo {
    /// The value of build setting `key` (the last one if repeated).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// The toolchain version, parsed ([`GoVersion::parse`]).
    pub fn version(&self) -> Option<GoVersion> {
        GoVersion::parse(&self.go_version)
    }

    /// Experiments the binary was built with: the `GOEXPERIMENT` setting (comma-separated,
    /// `no`-prefixed for disabled defaults) and the `X:` suffix of old version strings.
    pub fn experiments(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .setting("GOEXPERIMENT")
            .unwrap_or("")
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        for word in self.go_version.split_ascii_whitespace() {
            if let Some(list) = word.strip_prefix("X:") {
                out.extend(list.split(',').filter(|e| !e.is_empty()).map(str::to_owned));
            }
        }
        out
    }
}

/// Reads the build info of `bin` (see the module docs).
///
/// # Errors
/// [`GoError::NotGo`] without a `.go.buildinfo` section or magic; [`GoError::BadBuildInfo`]
/// when the header, a length or the module text is malformed.
pub fn read(bin: &GoBinary) -> Result<BuildInfo, GoError> {
    let section = bin.section(".go.buildinfo").ok_or(GoError::NotGo)?;
    if !section.in_file() || section.size == 0 {
        return Err(GoError::NotGo);
    }
    let search_len = section.size.min(MAX_SEARCH_LEN);
    let data = bin.read_at(".go.buildinfo", section.offset, search_len)?;
    let start = find_header(data).ok_or(GoError::NotGo)?;
    let header = data
        .get(start..start + BUILDINFO_HEADER_LEN)
        .ok_or_else(|| bad("header truncated"))?;
    let ptr_size = usize::from(header[14]);
    let flags = header[15];
    let (version, modinfo) = if flags & FLAG_INLINE != 0 {
        // Inline strings start right after the header; the section holds them (the linker
        // sizes it so), but read through the file in case the search window was smaller.
        let mut offset = section.offset + (start + BUILDINFO_HEADER_LEN) as u64;
        let end = section.offset + section.size;
        let version = read_varint_string(bin, &mut offset, end, MAX_VERSION_LEN, "version")?;
        let modinfo = read_varint_string(bin, &mut offset, end, MAX_MODINFO_LEN, "module info")?;
        (version, modinfo.to_vec())
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return Err(bad(format!("pointer size {ptr_size}")));
        }
        if (flags & FLAG_BIG_ENDIAN != 0) == bin.is_little_endian() {
            return Err(bad("header byte order differs from the ELF byte order"));
        }
        let words = &header[16..];
        let version_ptr = bin.word(words, ptr_size).ok_or_else(|| bad("header"))?;
        let mod_ptr = bin
            .word(&words[ptr_size..], ptr_size)
            .ok_or_else(|| bad("header"))?;
        let version = read_string_header(bin, version_ptr, ptr_size, MAX_VERSION_LEN)?;
        // Like Go: a module pointer that leads nowhere means "no module info".
        let modinfo =
            read_string_header(bin, mod_ptr, ptr_size, MAX_MODINFO_LEN).unwrap_or_default();
        (version, modinfo.to_vec())
    };
    if version.is_empty() {
        return Err(GoError::NotGo);
    }
    let mut info = parse_modinfo(&String::from_utf8_lossy(strip_sentinels(&modinfo)))?;
    info.go_version = String::from_utf8_lossy(version).into_owned();
    Ok(info)
}

/// The offset of the first 16-byte aligned [`BUILDINFO_MAGIC`] in `data` that has room for a
/// whole header.
fn find_header(data: &[u8]) -> Option<usize> {
    (0..data.len())
        .step_by(BUILDINFO_ALIGN)
        .find(|&i| data.len() - i >= BUILDINFO_HEADER_LEN && data[i..].starts_with(BUILDINFO_MAGIC))
}

fn bad(reason: impl Into<String>) -> GoError {
    GoError::BadBuildInfo {
        reason: reason.into(),
    }
}

/// Decodes an unsigned LEB128 varint (Go's `binary.Uvarint`): at most 10 bytes, and the 10th
/// may only hold the top bit. Returns the value and the bytes used.
pub fn uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return None; // overflows 64 bits
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads a uvarint-prefixed string at file offset `*offset` (not past `end`), advancing it.
fn read_varint_string<'b>(
    bin: &'b GoBinary,
    offset: &mut u64,
    end: u64,
    max: u64,
    what: &'static str,
) -> Result<&'b [u8], GoError> {
    let avail = end.saturating_sub(*offset).min(10);
    let head = bin.read_at("build info", *offset, avail)?;
    let (len, used) = uvarint(head).ok_or_else(|| bad(format!("{what}: bad length varint")))?;
    if len > max {
        return Err(bad(format!("{what}: length {len} exceeds {max}")));
    }
    let start = *offset + used as u64;
    if len > end.saturating_sub(start) {
        return Err(bad(format!("{what}: length {len} runs past the section")));
    }
    let bytes = bin.read_at("build info", start, len)?;
    *offset = start + len;
    Ok(bytes)
}

/// Follows a pointer to a Go string header `{data, len}` (pre-1.18 format).
fn read_string_header(
    bin: &GoBinary,
    addr: u64,
    ptr_size: usize,
    max: u64,
) -> Result<&[u8], GoError> {
    let header = bin
        .read_addr(addr, 2 * ptr_size as u64)
        .map_err(|_| bad(format!("string header at {addr:#x} is not in the file")))?;
    let data = bin.word(header, ptr_size).ok_or_else(|| bad("string"))?;
    let len = bin
        .word(&header[ptr_size..], ptr_size)
        .ok_or_else(|| bad("string"))?;
    if len > max {
        return Err(bad(format!("string length {len} exceeds {max}")));
    }
    let bytes = bin
        .read_addr(data, len)
        .map_err(|_| bad(format!("string bytes at {data:#x} are not in the file")))?;
    Ok(bytes)
}

/// Removes the 16-byte sentinels around the module text; like Go, text without them (or too
/// short) means no module info.
fn strip_sentinels(b: &[u8]) -> &[u8] {
    if b.len() >= 33 && b[b.len() - 17] == b'\n' {
        &b[16..b.len() - 16]
    } else {
        &[]
    }
}

/// Parses the module text (the reverse of Go's `BuildInfo.String`, without the `go` line):
/// `path`, `mod`, `dep`, `=>` and `build` lines; unknown lines are ignored, as Go does.
///
/// # Errors
/// [`GoError::BadBuildInfo`] naming the line when a `mod`/`dep`/`=>` line has the wrong number
/// of columns, a replacement has no module before it, or a `build` line is malformed.
pub fn parse_modinfo(text: &str) -> Result<BuildInfo, GoError> {
    let mut info = BuildInfo::default();
    // Which module a following `=>` line replaces: None before any, or after a replacement.
    let mut last: Option<usize> = None; // 0 = main, i + 1 = deps[i]
    let lines = text.split('\n');
    for (n, line) in lines.enumerate() {
        let line_err = |what: &str| bad(format!("line {}: {what}", n + 1));
        if let Some(rest) = line.strip_prefix("path\t") {
            rest.clone_into(&mut info.path);
        } else if let Some(rest) = line.strip_prefix("mod\t") {
            info.main = module_line(rest).ok_or_else(|| line_err("expected 2 or 3 columns"))?;
            last = Some(0);
        } else if let Some(rest) = line.strip_prefix("dep\t") {
            info.deps
                .push(module_line(rest).ok_or_else(|| line_err("expected 2 or 3 columns"))?);
            last = Some(info.deps.len());
        } else if let Some(rest) = line.strip_prefix("=>\t") {
            let cols: Vec<&str> = rest.split('\t').collect();
            let [path, version, sum] = cols[..] else {
                return Err(line_err("expected 3 columns for replacement"));
            };
            let replaced = match last.take() {
                Some(0) => &mut info.main,
                Some(i) => info
                    .deps
                    .get_mut(i - 1)
                    .ok_or_else(|| line_err("replacement"))?,
                None => return Err(line_err("replacement with no module on previous line")),
            };
            replaced.replace = Some(Box::new(Module {
                path: path.to_owned(),
                version: version.to_owned(),
                sum: sum.to_owned(),
                replace: None,
            }));
        } else if let Some(kv) = line.strip_prefix("build\t") {
            let (key, value) = build_line(kv).ok_or_else(|| line_err("malformed build line"))?;
            info.settings.push(BuildSetting { key, value });
        }
    }
    Ok(info)
}

fn module_line(rest: &str) -> Option<Module> {
    let cols: Vec<&str> = rest.split('\t').collect();
    let (path, version, sum) = match cols[..] {
        [p, v] => (p, v, ""),
        [p, v, s] => (p, v, s),
        _ => return None,
    };
    Some(Module {
        path: path.to_owned(),
        version: version.to_owned(),
        sum: sum.to_owned(),
        replace: None,
    })
}

/// `KEY=VALUE` where either side may be a Go quoted string (`"..."` or `` `...` ``).
fn build_line(kv: &str) -> Option<(String, String)> {
    let (key, rest) = match kv.as_bytes().first()? {
        b'=' => return None,
        b'"' | b'`' => {
            let (key, used) = unquote_prefix(kv)?;
            (key, kv[used..].strip_prefix('=')?)
        }
        _ => {
            let (key, rest) = kv.split_once('=')?;
            (key.to_owned(), rest)
        }
    };
    let value = match rest.as_bytes().first() {
        Some(b'"' | b'`') => {
            let (value, used) = unquote_prefix(rest)?;
            if used != rest.len() {
                return None;
            }
            value
        }
        _ => rest.to_owned(),
    };
    Some((key, value))
}

/// Decodes the Go quoted string at the start of `s` (`strconv.QuotedPrefix` + `Unquote`):
/// returns the value and the bytes used.
pub fn unquote_prefix(s: &str) -> Option<(String, usize)> {
    let bytes = s.as_bytes();
    match bytes.first()? {
        b'`' => {
            let end = s[1..].find('`')? + 1;
            Some((s[1..end].replace('\r', ""), end + 1))
        }
        b'"' => {
            let mut out = String::new();
            let mut chars = s[1..].char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => return Some((out, i + 2)),
                    '\n' => return None,
                    '\\' => {
                        let (_, e) = chars.next()?;
                        match e {
                            'a' => out.push('\x07'),
                            'b' => out.push('\x08'),
                            'f' => out.push('\x0c'),
                            'n' => out.push('\n'),
                            'r' => out.push('\r'),
                            't' => out.push('\t'),
                            'v' => out.push('\x0b'),
                            '\\' | '"' | '\'' => out.push(e),
                            'x' | 'u' | 'U' => {
                                let n = match e {
                                    'x' => 2,
                                    'u' => 4,
                                    _ => 8,
                                };
                                let mut v = 0u32;
                                for _ in 0..n {
                                    v = v * 16 + chars.next()?.1.to_digit(16)?;
                                }
                                // \x is a byte: only ASCII survives in a Rust String.
                                out.push(char::from_u32(v)?);
                            }
                            '0'..='7' => {
                                let mut v = e.to_digit(8)?;
                                for _ in 0..2 {
                                    v = v * 8 + chars.next()?.1.to_digit(8)?;
                                }
                                out.push(char::from_u32(v)?);
                            }
                            _ => return None,
                        }
                    }
                    c => out.push(c),
                }
            }
            None
        }
        _ => None,
    }
}

/// A parsed Go toolchain version, ordered like Go's `go/version.Compare`: `go1.21` <
/// `go1.21rc1` < `go1.21.0` < `go1.21.1`.
///
/// Accepts what binaries record: `go1.21.13`, `go1.22rc2`, `go1.21.0-bigcorp` (a custom
/// suffix), the old space-separated experiment suffix `go1.9.2 X:framepointer`, and
/// development builds `devel go1.23-abcdef Tue ...` (whose base version is kept when it is
/// written; old `devel +abcdef ...` strings have none and do not parse).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GoVersion {
    /// Major version (1).
    pub major: u64,
    /// Minor version (21 in `go1.21.3`).
    pub minor: u64,
    /// Patch version (3 in `go1.21.3`); `None` for `go1.21` and pre-releases.
    pub patch: Option<u64>,
    /// Pre-release kind and number: `("rc", 1)` for `go1.21rc1`; `None` for releases.
    pub pre: Option<(PreRelease, u64)>,
    /// Whether this is a development build (`devel ...`).
    pub devel: bool,
}

/// The kind of a pre-release, in Go's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreRelease {
    /// `alpha`.
    Alpha,
    /// `beta`.
    Beta,
    /// `rc`.
    Rc,
}

impl GoVersion {
    /// Parses a recorded Go version (see the type docs); `None` when it has no `goN.N` base.
    pub fn parse(s: &str) -> Option<Self> {
        let mut words = s.split_ascii_whitespace();
        let mut first = words.next()?;
        let devel = first == "devel";
        if devel {
            first = words.next()?;
        }
        // A custom suffix (`go1.21.0-bigcorp`, `go1.23-abcdef` in devel strings) is dropped.
        let base = first.split(['-', '+']).next()?.strip_prefix("go")?;
        let (major, rest) = split_number(base)?;
        let rest = rest.strip_prefix('.')?;
        let (minor, rest) = split_number(rest)?;
        let mut v = Self {
            major,
            minor,
            patch: None,
            pre: None,
            devel,
        };
        if let Some(rest) = rest.strip_prefix('.') {
            let (patch, rest) = split_number(rest)?;
            if !rest.is_empty() {
                return None;
            }
            v.patch = Some(patch);
        } else if !rest.is_empty() {
            let (kind, n) = [
                ("alpha", PreRelease::Alpha),
                ("beta", PreRelease::Beta),
                ("rc", PreRelease::Rc),
            ]
            .into_iter()
            .find_map(|(p, k)| rest.strip_prefix(p).map(|n| (k, n)))?;
            let (n, tail) = split_number(n)?;
            if !tail.is_empty() {
                return None;
            }
            v.pre = Some((kind, n));
        }
        Some(v)
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(&self, major: u64, minor: u64) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    fn key(&self) -> (u64, u64, Option<u64>, u8, u64) {
        let (kind, n) = match self.pre {
            None => (0, 0),
            Some((PreRelease::Alpha, n)) => (1, n),
            Some((PreRelease::Beta, n)) => (2, n),
            Some((PreRelease::Rc, n)) => (3, n),
        };
        (self.major, self.minor, self.patch, kind, n)
    }
}

impl PartialOrd for GoVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GoVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then(self.devel.cmp(&other.devel))
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go{}.{}", self.major, self.minor)?;
        if let Some(p) = self.patch {
            write!(f, ".{p}")?;
        }
        if let Some((kind, n)) = self.pre {
            let k = match kind {
                PreRelease::Alpha => "alpha",
                PreRelease::Beta => "beta",
                PreRelease::Rc => "rc",
            };
            write!(f, "{k}{n}")?;
        }
        Ok(())
    }
}

/// Compares two recorded Go version strings for `adi go ps --sort`: by [`GoVersion`] order,
/// unparsable ones first, then by the strings themselves (so the order is total).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    GoVersion::parse(a)
        .cmp(&GoVersion::parse(b))
        .then_with(|| a.cmp(b))
}

/// Splits the leading decimal number (no sign, no leading `+`) off `s`.
fn split_number(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 || end > 19 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}
