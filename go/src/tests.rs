//! Tests of Go binary inspection: every toolchain and variant built by
//! `testdata/go/build-targets.sh` (`#[ignore]`d: they need the toolchains, and fail without
//! them when run), and hand-made hostile ELF files that must give clean errors.

use proptest::prelude::*;

use super::buildinfo::{self, compare_versions, uvarint, GoVersion, PreRelease};
use super::offsets::{self, MapLayout, OffsetsSource};
use super::symbols::{self, Pclntab, SymbolSource, PCLNTAB_MAGIC_116, PCLNTAB_MAGIC_120};
use super::testing::{self, Toolchain, Variant};
use super::{ret_offsets, GoBinary, GoError};

const CLIENT_DO: &str = "net/http.(*Client).do";
const SERVE_HTTP: &str = "net/http.serverHandler.ServeHTTP";

/// The function the uprobes need in each test program.
fn probed(prog: &str) -> &'static str {
    if prog == "client" {
        CLIENT_DO
    } else {
        SERVE_HTTP
    }
}

/// Runs `check` on every toolchain of [`testing::VERSIONS`]; a missing one fails the test.
fn each_toolchain(mut check: impl FnMut(&Toolchain)) {
    for version in testing::VERSIONS {
        check(testing::toolchain(version));
    }
}

/// Runs `check(toolchain, variant, program, binary, description)` on every built target.
fn each_target(mut check: impl FnMut(&Toolchain, Variant, &str, &GoBinary, &str)) {
    each_toolchain(|t| {
        for variant in Variant::ALL {
            for prog in ["client", "server"] {
                let bin = open(t, variant, prog);
                let what = format!("{} {variant:?} {prog}", t.version);
                check(t, variant, prog, &bin, &what);
            }
        }
    });
}

fn open(t: &Toolchain, variant: Variant, prog: &str) -> GoBinary {
    let path = t.binary(variant, prog);
    GoBinary::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn build_info_of_every_target() {
    each_target(|t, variant, prog, bin, what| {
        assert!(bin.is_go(), "{what}");
        assert!(bin.has_go_buildid_note(), "{what}");
        let info = bin.build_info().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(info.go_version, t.go_version, "{what}");
        assert_eq!(info.path, format!("adi.invalid/gotargets/{prog}"), "{what}");
        assert_eq!(info.main.path, "adi.invalid/gotargets", "{what}");
        // Go 1.24+ stamps a pseudo-version from the VCS when it can.
        assert!(
            info.main.version == "(devel)" || info.main.version.starts_with("v0.0.0-"),
            "{what}: {}",
            info.main.version
        );
        assert!(info.deps.is_empty(), "{what}: stdlib only");
        assert_eq!(info.setting("GOOS"), Some("linux"), "{what}");
        assert_eq!(info.setting("GOARCH"), Some("amd64"), "{what}");
        let cgo = if variant == Variant::Static { "0" } else { "1" };
        assert_eq!(info.setting("CGO_ENABLED"), Some(cgo), "{what}");
        let ldflags = match variant {
            Variant::NoDwarf => Some("-w"),
            Variant::Stripped => Some("-s -w"),
            _ => None,
        };
        assert_eq!(info.setting("-ldflags"), ldflags, "{what}");
        let v = info.version().expect("parsable version");
        assert!(v.at_least(1, 19), "{what}");
    });
}

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn symbols_from_symtab_and_pclntab_agree() {
    each_toolchain(|t| {
        for prog in ["client", "server"] {
            let name = probed(prog);
            let with_symtab = open(t, Variant::NoDwarf, prog);
            let stripped = open(t, Variant::Stripped, prog);
            let what = format!("{} {prog} {name}", t.version);
            assert!(with_symtab.section(".symtab").is_some(), "{what}");
            assert!(stripped.section(".symtab").is_none(), "{what}");

            let exact = with_symtab.function(name).expect("in .symtab");
            assert_eq!(exact.source, SymbolSource::Symtab, "{what}");
            assert!(exact.size > 16, "{what}: {exact:?}");

            // The same binary through .gopclntab, with the text base found without .symtab.
            let table = Pclntab::read(&with_symtab).expect("pclntab");
            let text = symbols::symtab_address(&with_symtab, "runtime.text").expect("runtime.text");
            assert_eq!(table.text_start(), text, "{what}");
            let section = with_symtab
                .section(".gopclntab")
                .expect(".gopclntab")
                .clone();
            assert_eq!(
                symbols::moduledata_text(&with_symtab, &table, section.addr),
                Some(text),
                "{what}: moduledata.text"
            );
            // Go 1.26 stopped writing textStart into the pclntab header.
            let header = table.header_text_start();
            if GoVersion::parse(&t.go_version).is_some_and(|v| v.at_least(1, 26)) {
                assert_eq!(header, 0, "{what}");
            } else {
                assert_eq!(header, text, "{what}");
            }
            let magic = if t.version == "1.19" {
                symbols::PCLNTAB_MAGIC_118
            } else {
                PCLNTAB_MAGIC_120
            };
            assert_eq!(table.magic, magic, "{what}");
            let from_pcln = table.find(name).expect("valid").expect("found");
            assert_eq!(from_pcln.addr, exact.addr, "{what}");
            assert!(from_pcln.size >= exact.size, "{what}: padding only");
            assert!(from_pcln.size - exact.size < 64, "{what}: padding only");

            // The stripped build has the same function at the same address, with the same
            // instruction layout (RIP-relative data displacements may differ: -s changes the
            // data layout).
            let found = stripped.function(name).expect("in .gopclntab");
            assert_eq!(found.source, SymbolSource::Pclntab, "{what}");
            assert_eq!(found.addr, exact.addr, "{what}");
            assert_eq!(found.size, from_pcln.size, "{what}");
            assert_eq!(
                stripped.ret_offsets(&found).expect("decodes"),
                with_symtab.ret_offsets(&exact).expect("decodes"),
                "{what}"
            );
            assert!(matches!(
                stripped.function("net/http.noSuchFunction"),
                Err(GoError::FunctionNotFound { .. })
            ));
        }
    });
}

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn symbols_of_every_variant() {
    each_target(|t, variant, prog, bin, what| {
        let f = bin
            .function(probed(prog))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        // The uprobe offset: the file bytes there are the function's code.
        let off = bin.vaddr_to_file_offset(f.addr).expect("mapped");
        let text = bin.section(".text").expect(".text");
        assert_eq!(off, f.addr - text.addr + text.offset, "{what}");
        let from_file = std::fs::read(t.binary(variant, prog)).expect("read");
        let code = bin.function_code(&f).expect("code");
        assert_eq!(
            &from_file[off as usize..off as usize + code.len()],
            code,
            "{what}"
        );
        // amd64 Go functions start with the stack bound check on R14 (the goroutine),
        // `cmp rsp, [r14+0x10]` or `lea r12, [rsp-N]` for large frames.
        assert!(
            code.starts_with(&[0x49, 0x3b, 0x66, 0x10])
                || code.starts_with(&[0x4c, 0x8d, 0x64, 0x24])
                || code.starts_with(&[0x4c, 0x8d, 0xa4, 0x24]),
            "{what}: {:02x?}",
            &code[..8]
        );
    });
}

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn ret_sites_of_every_variant() {
    each_target(|_, _, prog, bin, what| {
        let f = bin.function(probed(prog)).expect("function");
        let code = bin.function_code(&f).expect("code");
        let rets = bin
            .ret_offsets(&f)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!rets.is_empty(), "{what}");
        for &r in &rets {
            assert!(r < f.size, "{what}");
            assert_eq!(code[r as usize], 0xc3, "{what}: RET at {r:#x}");
        }
        // Fewer RETs than 0xC3 bytes would give: the byte scan is wrong, decoding is
        // needed (0xC3 appears inside other instructions).
        let c3 = code.split(|&b| b == 0xc3).count() - 1;
        assert!(rets.len() <= c3, "{what}");
    });
}

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn entry_probes_go_past_the_stack_check() {
    each_target(|_, _, prog, bin, what| {
        let f = bin.function(probed(prog)).expect("function");
        let code = bin.function_code(&f).expect("code");
        let body = super::ret_sites::after_stack_check(code);
        // [lea r12, [rsp-N] (5 or 8 bytes);] cmp rsp|r12, [r14+0x10] (4); jbe (2 or 6).
        assert!(
            (6..=18).contains(&body),
            "{what}: {body} {:02x?}",
            &code[..18]
        );
        let b = body as usize;
        assert!(
            code[b - 2] == 0x76 || code[b - 6..b - 4] == [0x0f, 0x86],
            "{what}: {:02x?}",
            &code[..b]
        );
    });
    // lea r12, [rsp-0x1000]; cmp r12, [r14+0x10]; jbe +0x10; push rbp
    let large = [
        0x4c, 0x8d, 0xa4, 0x24, 0x00, 0xf0, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x76, 0x10, 0x55,
    ];
    assert_eq!(super::ret_sites::after_stack_check(&large), 14);
    // A nosplit function: no check, the entry itself.
    assert_eq!(
        super::ret_sites::after_stack_check(&[0x8d, 0x47, 0x01, 0xc3]),
        0
    );
}

#[test]
fn ret_sites_skip_c3_bytes_inside_instructions() {
    let code = [
        0xb8, 0xc3, 0xc3, 0xc3, 0xc3, // mov eax, 0xc3c3c3c3
        0x48, 0x8b, 0x43, 0xc3, // mov rax, [rbx-0x3d]: ModRM 0x43, disp8 0xc3
        0xc3, // ret
        0x66, 0xc3, // ret with an operand-size prefix (retw)
        0xc2, 0x08, 0x00, // ret 8
        0xcc, 0xcc, // int3 padding
    ];
    assert_eq!(ret_offsets(&code).expect("valid"), vec![9, 10, 12]);
    // An undefined opcode is a clean error naming its offset.
    let bad = [0x90, 0x0f, 0x0b, 0x0f, 0xff]; // nop; ud2; (0f ff = ud0 without ModRM)
    assert!(matches!(
        ret_offsets(&bad),
        Err(GoError::BadInstruction { offset: 3 })
    ));
    // A truncated last instruction too.
    assert!(matches!(
        ret_offsets(&[0xc3, 0xb8, 0x01]),
        Err(GoError::BadInstruction { offset: 1 })
    ));
}

// ---------------------------------------------------------------------------------------------
// Hand-made ELF files.

const BASE: u64 = 0x40_0000;

/// A minimal little-endian ELF64 x86-64 executable: one PT_LOAD maps the whole file at `BASE`,
/// and each section (name, type, bytes) lives at `BASE + its file offset`. Returns the image
/// and each section's address.
fn elf(sections: &[(&str, u32, Vec<u8>)]) -> (Vec<u8>, Vec<u64>) {
    let mut out = vec![0u8; 64 + 56];
    let mut placed = Vec::new();
    for (_, _, data) in sections {
        while !out.len().is_multiple_of(16) {
            out.push(0);
        }
        placed.push((out.len() as u64, data.len() as u64));
        out.extend_from_slice(data);
    }
    let mut shstrtab = vec![0u8];
    let mut names = Vec::new();
    for (name, _, _) in sections.iter().chain([&(".shstrtab", 3, Vec::new())]) {
        names.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(name.as_bytes());
        shstrtab.push(0);
    }
    let shstrtab_off = out.len() as u64;
    out.extend_from_slice(&shstrtab);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    let sh = |out: &mut Vec<u8>, name: u32, kind: u32, addr: u64, off: u64, size: u64| {
        out.extend_from_slice(&name.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&2u64.to_le_bytes()); // SHF_ALLOC
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&[0; 8]); // link, info
        out.extend_from_slice(&1u64.to_le_bytes()); // addralign
        out.extend_from_slice(&0u64.to_le_bytes()); // entsize
    };
    out.extend_from_slice(&[0; 64]); // the null section
    let mut addrs = Vec::new();
    for (i, (_, kind, _)) in sections.iter().enumerate() {
        let (off, size) = placed[i];
        addrs.push(BASE + off);
        sh(&mut out, names[i], *kind, BASE + off, off, size);
    }
    let shstr_name = names[sections.len()];
    sh(
        &mut out,
        shstr_name,
        3,
        0,
        shstrtab_off,
        shstrtab.len() as u64,
    );
    let shnum = sections.len() as u16 + 2;
    let len = out.len() as u64;
    // ELF header.
    let mut h = Vec::new();
    h.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"); // 64-bit, LE, v1
    h.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    h.extend_from_slice(&1u32.to_le_bytes()); // version
    h.extend_from_slice(&BASE.to_le_bytes()); // entry
    h.extend_from_slice(&64u64.to_le_bytes()); // phoff
    h.extend_from_slice(&shoff.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 64, shnum, shnum - 1] {
        h.extend_from_slice(&v.to_le_bytes()); // ehsize phentsize phnum shentsize shnum shstrndx
    }
    // PT_LOAD, R+X, the whole file.
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&5u32.to_le_bytes());
    for v in [0, BASE, BASE, len, len, 0x1000] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    out[..h.len()].copy_from_slice(&h);
    (out, addrs)
}

const MODINFO: &str = "path\texample.com/cmd/app\n\
    mod\texample.com\tv1.2.3\th1:abc=\n\
    dep\tgolang.org/x/net\tv0.1.0\th1:def=\n\
    =>\t../net\t(devel)\t\n\
    build\t-ldflags=\"-s -w -X \\\"main.v=1\\\"\"\n\
    build\tGOEXPERIMENT=noswissmap,aliastypeparams\n\
    build\tCGO_ENABLED=0\n\
    build\t\"we=ird\"=`raw value`\n";

fn sentinel_wrapped(text: &str) -> Vec<u8> {
    let mut v = vec![0x30; 16];
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(&[0x31; 16]);
    v
}

fn push_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn header(ptr_size: u8, flags: u8) -> Vec<u8> {
    let mut h = buildinfo::BUILDINFO_MAGIC.to_vec();
    h.push(ptr_size);
    h.push(flags);
    h.resize(buildinfo::BUILDINFO_HEADER_LEN, 0);
    h
}

/// A `.go.buildinfo` in the Go 1.18+ inline format.
fn inline_buildinfo(version: &str, modinfo: &[u8]) -> Vec<u8> {
    let mut s = header(8, 2);
    push_uvarint(&mut s, version.len() as u64);
    s.extend_from_slice(version.as_bytes());
    push_uvarint(&mut s, modinfo.len() as u64);
    s.extend_from_slice(modinfo);
    s
}

fn build_info_of(sections: &[(&str, u32, Vec<u8>)]) -> Result<buildinfo::BuildInfo, GoError> {
    GoBinary::from_bytes(elf(sections).0)
        .expect("valid ELF")
        .build_info()
}

#[test]
fn inline_build_info_parses() {
    let s = inline_buildinfo("go1.23.9", &sentinel_wrapped(MODINFO));
    let info = build_info_of(&[(".go.buildinfo", 1, s)]).expect("valid");
    assert_eq!(info.go_version, "go1.23.9");
    assert_eq!(info.path, "example.com/cmd/app");
    assert_eq!(info.main.version, "v1.2.3");
    assert_eq!(info.main.sum, "h1:abc=");
    assert_eq!(info.deps.len(), 1);
    let rep = info.deps[0].replace.as_deref().expect("replaced");
    assert_eq!(
        (rep.path.as_str(), rep.version.as_str()),
        ("../net", "(devel)")
    );
    assert_eq!(info.setting("-ldflags"), Some("-s -w -X \"main.v=1\""));
    assert_eq!(info.setting("we=ird"), Some("raw value"));
    assert_eq!(info.experiments(), vec!["noswissmap", "aliastypeparams"]);
}

#[test]
fn pointer_build_info_parses() {
    // Pre-1.18: the header holds pointers to Go string headers {ptr, len}. Lay out, after the
    // 32-byte header: version string header (16), modinfo string header (16), the bytes.
    let version = b"go1.9.2 X:framepointer";
    let modinfo = sentinel_wrapped("path\told/cmd\nmod\told\t(devel)\t\n");
    // The section address is BASE + 0x80 (after the ELF and program headers, 16-aligned).
    let addr = BASE + 0x80;
    let mut s = header(8, 0);
    s[16..24].copy_from_slice(&(addr + 32).to_le_bytes());
    s[24..32].copy_from_slice(&(addr + 48).to_le_bytes());
    let vers_at = addr + 64;
    let mod_at = vers_at + version.len() as u64;
    s.extend_from_slice(&vers_at.to_le_bytes());
    s.extend_from_slice(&(version.len() as u64).to_le_bytes());
    s.extend_from_slice(&mod_at.to_le_bytes());
    s.extend_from_slice(&(modinfo.len() as u64).to_le_bytes());
    s.extend_from_slice(version);
    s.extend_from_slice(&modinfo);
    let (image, addrs) = elf(&[(".go.buildinfo", 1, s)]);
    assert_eq!(addrs[0], addr);
    let info = GoBinary::from_bytes(image)
        .expect("ELF")
        .build_info()
        .expect("valid");
    assert_eq!(info.go_version, "go1.9.2 X:framepointer");
    assert_eq!(info.path, "old/cmd");
    assert_eq!(info.experiments(), vec!["framepointer"]);
    let v = info.version().expect("parses");
    assert_eq!((v.major, v.minor, v.patch), (1, 9, Some(2)));
}

#[test]
fn hostile_build_info_gives_clean_errors() {
    let modinfo = sentinel_wrapped(MODINFO);
    let good = inline_buildinfo("go1.23.9", &modinfo);
    // Truncated anywhere: never a panic; inside the header it is "not Go".
    for cut in 0..good.len() {
        let r = build_info_of(&[(".go.buildinfo", 1, good[..cut].to_vec())]);
        if cut < buildinfo::BUILDINFO_HEADER_LEN {
            assert!(matches!(r, Err(GoError::NotGo)), "cut {cut}: {r:?}");
        } else {
            assert!(
                matches!(r, Err(GoError::BadBuildInfo { .. } | GoError::NotGo)),
                "cut {cut}: {r:?}"
            );
        }
    }
    // A varint that overflows 64 bits.
    let mut huge = header(8, 2);
    huge.extend_from_slice(&[0xff; 9]);
    huge.push(0x7f);
    huge.extend_from_slice(&[0; 64]);
    let r = build_info_of(&[(".go.buildinfo", 1, huge)]);
    assert!(matches!(r, Err(GoError::BadBuildInfo { ref reason }) if reason.contains("varint")));
    // A valid varint far larger than the bound, and one larger than the section.
    for len in [u64::MAX >> 1, buildinfo::MAX_VERSION_LEN + 1, 200] {
        let mut s = header(8, 2);
        push_uvarint(&mut s, len);
        s.extend_from_slice(&[b'x'; 100]);
        let r = build_info_of(&[(".go.buildinfo", 1, s)]);
        assert!(
            matches!(r, Err(GoError::BadBuildInfo { .. })),
            "{len}: {r:?}"
        );
    }
    // Pointers that lead outside the file, and a bad pointer size.
    let mut s = header(8, 0);
    s[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let r = build_info_of(&[(".go.buildinfo", 1, s)]);
    assert!(matches!(r, Err(GoError::BadBuildInfo { .. })), "{r:?}");
    let r = build_info_of(&[(".go.buildinfo", 1, header(3, 0))]);
    assert!(matches!(r, Err(GoError::BadBuildInfo { .. })), "{r:?}");
    // No magic, no section: not Go.
    assert!(matches!(
        build_info_of(&[(".go.buildinfo", 1, vec![0; 64])]),
        Err(GoError::NotGo)
    ));
    assert!(matches!(
        build_info_of(&[(".data", 1, good)]),
        Err(GoError::NotGo)
    ));
    // A NOBITS section claiming a huge size.
    let (image, _) = elf(&[(".go.buildinfo", 8, Vec::new())]);
    let r = GoBinary::from_bytes(image).expect("ELF").build_info();
    assert!(matches!(r, Err(GoError::NotGo)), "{r:?}");
    // Malformed module lines.
    for text in [
        "mod\tonly-one\n",
        "=>\ta\tb\tc\n",
        "build\t=x\n",
        "build\t\"k\n",
    ] {
        let r = build_info_of(&[(
            ".go.buildinfo",
            1,
            inline_buildinfo("go1.22.1", &sentinel_wrapped(text)),
        )]);
        assert!(
            matches!(r, Err(GoError::BadBuildInfo { .. })),
            "{text:?}: {r:?}"
        );
    }
}

#[test]
fn uvarint_matches_go() {
    assert_eq!(uvarint(&[0x00]), Some((0, 1)));
    assert_eq!(uvarint(&[0xac, 0x02]), Some((300, 2)));
    let mut max = vec![0xff; 9];
    max.push(0x01);
    assert_eq!(uvarint(&max), Some((u64::MAX, 10)));
    max[9] = 0x02;
    assert_eq!(uvarint(&max), None, "overflow");
    assert_eq!(uvarint(&[0x80; 11]), None, "too long");
    assert_eq!(uvarint(&[0x80]), None, "truncated");
    assert_eq!(uvarint(&[]), None);
}

#[test]
fn go_versions_parse_and_order() {
    let v = |s: &str| GoVersion::parse(s).unwrap_or_else(|| panic!("{s}"));
    assert_eq!(v("go1.19.8").patch, Some(8));
    assert_eq!(v("go1.22rc2").pre, Some((PreRelease::Rc, 2)));
    assert_eq!(v("go1.21.0-bigcorp").to_string(), "go1.21.0");
    assert_eq!(v("go1.9.2 X:framepointer").to_string(), "go1.9.2");
    let devel = v("devel go1.23-a1b2c3d Tue Jan 2 15:04:05 2024 +0000");
    assert!(devel.devel && devel.minor == 23);
    assert_eq!(
        GoVersion::parse("devel +a1b2c3d Thu Jan 1 00:00:00 2015"),
        None
    );
    assert_eq!(GoVersion::parse(""), None);
    assert_eq!(GoVersion::parse("go1"), None);
    assert_eq!(GoVersion::parse("go1.99999999999999999999999"), None);
    let mut list = [
        "go1.21.0",
        "go1.9.2 X:framepointer",
        "go1.21rc1",
        "devel +abc",
        "go1.21",
        "go1.27.3",
        "go1.19.8",
        "go1.21beta1",
    ];
    list.sort_by(|a, b| compare_versions(a, b));
    assert_eq!(
        list,
        [
            "devel +abc",
            "go1.9.2 X:framepointer",
            "go1.19.8",
            "go1.21",
            "go1.21beta1",
            "go1.21rc1",
            "go1.21.0",
            "go1.27.3"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-made pclntabs.

/// A Go 1.18+ (`v118`) or 1.16 pclntab with the given functions (name, entry offset), the last
/// one ending at `end`.
fn pclntab(magic: u32, funcs: &[(&str, u64)], end: u64) -> Vec<u8> {
    let v118 = magic != PCLNTAB_MAGIC_116;
    let words = if v118 { 8 } else { 7 };
    let head_len = 8 + 8 * words;
    let mut names = Vec::new();
    let mut name_offs = Vec::new();
    for (n, _) in funcs {
        name_offs.push(names.len() as u32);
        names.extend_from_slice(n.as_bytes());
        names.push(0);
    }
    let names_off = head_len;
    let pcln_off = names_off + names.len();
    let field = if v118 { 4 } else { 8 };
    let functab_len = (funcs.len() * 2 + 1) * field;
    let mut pcln = Vec::new();
    let put = |pcln: &mut Vec<u8>, v: u64| {
        if v118 {
            pcln.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            pcln.extend_from_slice(&v.to_le_bytes());
        }
    };
    for (i, (_, entry)) in funcs.iter().enumerate() {
        put(&mut pcln, *entry);
        put(&mut pcln, (functab_len + i * 16) as u64);
    }
    put(&mut pcln, end);
    for (i, (_, entry)) in funcs.iter().enumerate() {
        // _func: entry (u32 offset, or a pointer for 1.16), nameOff, then padding.
        put(&mut pcln, *entry);
        pcln.extend_from_slice(&name_offs[i].to_le_bytes());
        pcln.resize(functab_len + (i + 1) * 16, 0);
    }
    let mut out = magic.to_le_bytes().to_vec();
    out.extend_from_slice(&[0, 0, 1, 8]);
    let mut header_words = vec![funcs.len() as u64, 0];
    if v118 {
        header_words.push(0); // textStart: 0 as in Go 1.26+
    }
    header_words.extend([names_off as u64, 0, 0, 0, pcln_off as u64]);
    for w in header_words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&names);
    out.extend_from_slice(&pcln);
    out
}

#[test]
fn pclntab_layouts_resolve_names() {
    let funcs = [("main.main", 0x0), (CLIENT_DO, 0x40), ("main.other", 0x100)];
    for magic in [
        PCLNTAB_MAGIC_116,
        symbols::PCLNTAB_MAGIC_118,
        PCLNTAB_MAGIC_120,
    ] {
        let data = pclntab(magic, &funcs, 0x180);
        let mut table = Pclntab::parse(&data, true).expect("valid");
        assert_eq!(table.len(), 3);
        if magic != PCLNTAB_MAGIC_116 {
            table.set_text_start(0x40_1000);
        }
        let base = if magic == PCLNTAB_MAGIC_116 {
            0
        } else {
            0x40_1000
        };
        let f = table.find(CLIENT_DO).expect("valid").expect("found");
        assert_eq!((f.addr, f.size), (base + 0x40, 0xc0), "{magic:#x}");
        let last = table.find("main.other").expect("valid").expect("found");
        assert_eq!(last.size, 0x80);
        assert_eq!(table.find("nope").expect("valid"), None);
    }
    // Through an ELF with no .symtab and no moduledata: the base is the start of .text.
    let data = pclntab(PCLNTAB_MAGIC_120, &funcs, 0x180);
    let code = vec![0xc3; 0x180];
    let (image, addrs) = elf(&[(".text", 1, code), (".gopclntab", 1, data)]);
    let bin = GoBinary::from_bytes(image).expect("ELF");
    let f = bin.function(CLIENT_DO).expect("found");
    assert_eq!((f.addr, f.source), (addrs[0] + 0x40, SymbolSource::Pclntab));
    assert_eq!(bin.ret_offsets(&f).expect("decodes").len(), 0xc0);
}

#[test]
fn hostile_pclntab_gives_clean_errors() {
    let funcs = [("main.main", 0x0), (CLIENT_DO, 0x40)];
    let good = pclntab(PCLNTAB_MAGIC_120, &funcs, 0x80);
    let bad_pcln =
        |data: &[u8]| matches!(Pclntab::parse(data, true), Err(GoError::BadPclntab { .. }));
    // Truncated anywhere.
    for cut in 0..good.len() {
        if let Ok(t) = Pclntab::parse(&good[..cut], true) {
            let r = t.find(CLIENT_DO);
            assert!(
                r.is_ok() || matches!(r, Err(GoError::BadPclntab { .. })),
                "cut {cut}"
            );
        }
    }
    // Unknown magic, bad padding, bad pointer size.
    let mut d = good.clone();
    d[0] = 0xfb;
    d[3] = 0xfe;
    assert!(bad_pcln(&d));
    let mut d = good.clone();
    d[4] = 1;
    assert!(bad_pcln(&d));
    let mut d = good.clone();
    d[7] = 3;
    assert!(bad_pcln(&d));
    // A function count larger than the table could hold.
    let mut d = good.clone();
    d[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(bad_pcln(&d));
    // funcnametab and pclntab offsets outside the section.
    for word in [3, 7] {
        let mut d = good.clone();
        d[8 + word * 8..16 + word * 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(bad_pcln(&d), "word {word}");
    }
    // A func offset and a name offset that point nowhere: errors from find, not panics.
    let pcln_off = u64::from_le_bytes(good[64..72].try_into().expect("8 bytes")) as usize;
    let mut d = good.clone();
    d[pcln_off + 4..pcln_off + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let t = Pclntab::parse(&d, true).expect("header fine");
    assert!(matches!(t.find(CLIENT_DO), Err(GoError::BadPclntab { .. })));
    let mut d = good.clone();
    let func0 = pcln_off + 5 * 4;
    d[func0 + 4..func0 + 8].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let t = Pclntab::parse(&d, true).expect("header fine");
    assert!(matches!(t.find(CLIENT_DO), Err(GoError::BadPclntab { .. })));
    // An end before the entry.
    let d = pclntab(PCLNTAB_MAGIC_120, &funcs, 0x10);
    let t = Pclntab::parse(&d, true).expect("header fine");
    assert!(matches!(t.find(CLIENT_DO), Err(GoError::BadPclntab { .. })));
    // No .gopclntab at all.
    let (image, _) = elf(&[(".text", 1, vec![0xc3; 16])]);
    let bin = GoBinary::from_bytes(image).expect("ELF");
    assert!(matches!(bin.function("x"), Err(GoError::BadPclntab { .. })));
}

#[test]
fn not_elf_is_a_clean_error() {
    for bytes in [
        Vec::new(),
        b"#!/bin/sh\n".to_vec(),
        vec![0x7f, b'E', b'L', b'F'],
    ] {
        assert!(matches!(
            GoBinary::from_bytes(bytes),
            Err(GoError::NotElf { .. })
        ));
    }
    let r = GoBinary::open("/nonexistent/adi-test");
    assert!(matches!(r, Err(GoError::Io { .. })));
}

#[test]
fn addresses_map_through_segments() {
    let (image, addrs) = elf(&[(".text", 1, vec![0x90; 32])]);
    let bin = GoBinary::from_bytes(image).expect("ELF");
    assert_eq!(
        bin.vaddr_to_file_offset(addrs[0] + 4).expect("mapped"),
        addrs[0] + 4 - BASE
    );
    assert!(matches!(
        bin.vaddr_to_file_offset(BASE - 1),
        Err(GoError::AddressNotMapped { .. })
    ));
    assert!(matches!(
        bin.read_addr(addrs[0], u64::MAX),
        Err(GoError::AddressNotMapped { .. })
    ));
}

proptest! {
    /// Any bytes: parsing never panics.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(bin) = GoBinary::from_bytes(bytes.clone()) {
            let _ = bin.build_info();
            let _ = bin.function(CLIENT_DO);
        }
        if let Ok(t) = Pclntab::parse(&bytes, true) {
            let _ = t.find(CLIENT_DO);
        }
        let _ = ret_offsets(&bytes);
    }

    /// A valid Go-like ELF with random bytes overwritten: clean errors or results, no panic.
    #[test]
    fn mutated_go_elf_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)
    ) {
        let info = inline_buildinfo("go1.24.11", &sentinel_wrapped(MODINFO));
        let pcln = pclntab(PCLNTAB_MAGIC_120, &[("main.main", 0), (CLIENT_DO, 0x20)], 0x40);
        let (mut image, _) = elf(&[
            (".text", 1, vec![0xc3; 0x40]),
            (".go.buildinfo", 1, info),
            (".gopclntab", 1, pcln),
        ]);
        for (at, byte) in edits {
            let i = at.index(image.len());
            image[i] = byte;
        }
        if let Ok(bin) = GoBinary::from_bytes(image) {
            let _ = bin.build_info();
            if let Ok(f) = bin.function(CLIENT_DO) {
                let _ = bin.ret_offsets(&f);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field offsets.

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn offsets_table_matches_dwarf_of_every_target() {
    each_target(|t, variant, _, bin, what| {
        let version = GoVersion::parse(&t.go_version).expect("version");
        let table = offsets::from_table(&version);
        let info = bin.build_info().expect("build info");
        let (found, source) = offsets::for_binary(bin, &info).expect("offsets");
        match variant {
            Variant::Default | Variant::Static => {
                assert_eq!(source, OffsetsSource::Dwarf, "{what}");
                assert!(found.fields.len() >= 17, "{what}: {found:?}");
                for (field, offset) in &found.fields {
                    assert_eq!(table.fields.get(field), Some(offset), "{what}: {field}");
                }
            }
            Variant::NoDwarf | Variant::Stripped => {
                assert_eq!(source, OffsetsSource::Table, "{what}");
                assert_eq!(found, table, "{what}");
            }
        }
        // The offsets the uprobes read (verified-recipes.md), and url.URL's reordering in 1.26.
        let get = |s, m| found.get(s, m).unwrap_or_else(|| panic!("{what}: {s}.{m}"));
        assert_eq!(get("net/http.Request", "Method"), 0, "{what}");
        assert_eq!(get("net/http.Request", "URL"), 16, "{what}");
        assert_eq!(get("net/http.Request", "Host"), 128, "{what}");
        assert_eq!(get("net/url.URL", "Host"), 40, "{what}");
        assert_eq!(get("net/url.URL", "Path"), 56, "{what}");
        let raw_query = if version.at_least(1, 26) { 88 } else { 96 };
        assert_eq!(get("net/url.URL", "RawQuery"), raw_query, "{what}");
        let swiss = offsets::swiss_maps(&info);
        assert_eq!(swiss, version.at_least(1, 24), "{what}");
        let map_field = if swiss {
            ("internal/runtime/maps.Map", "dirPtr")
        } else {
            ("runtime.hmap", "buckets")
        };
        assert!(found.get(map_field.0, map_field.1).is_some(), "{what}");
    });
}

#[test]
#[ignore = "needs the Go toolchains (testdata/go/install-toolchains.sh)"]
fn header_map_layout_matches_dwarf() {
    let bucket = "noalg.map.bucket[string][]string";
    let group = "noalg.map.group[string][]string";
    let slot = "noalg.struct { key string; elem []string }";
    let fields = [
        (bucket, "keys"),
        (bucket, "elems"),
        (bucket, "overflow"),
        (group, "slots"),
        (slot, "elem"),
    ];
    each_toolchain(|t| {
        let bin = open(t, Variant::Default, "client");
        let info = bin.build_info().expect("build info");
        let dwarf = offsets::from_dwarf_fields(&bin, &fields).expect("DWARF");
        let what = &t.version;
        match MapLayout::http_header(&info) {
            MapLayout::Buckets {
                keys,
                elems,
                overflow,
                size,
            } => {
                assert_eq!((keys, elems, overflow, size), (8, 136, 328, 336), "{what}");
                // Go 1.23's linker does not emit this bucket type; 1.19's does.
                if let Some(k) = dwarf.get(bucket, "keys") {
                    assert_eq!(k, keys, "{what}");
                    assert_eq!(dwarf.get(bucket, "elems"), Some(elems), "{what}");
                    assert_eq!(dwarf.get(bucket, "overflow"), Some(overflow), "{what}");
                }
            }
            MapLayout::Swiss {
                slots,
                slot_size,
                elem,
                size,
            } => {
                assert_eq!((slots, slot_size, elem, size), (8, 40, 16, 328), "{what}");
                assert_eq!(dwarf.get(group, "slots"), Some(slots), "{what}");
                assert_eq!(dwarf.get(slot, "elem"), Some(elem), "{what}");
            }
        }
    });
}

#[test]
fn swiss_maps_follow_version_and_goexperiment() {
    let info = |version: &str, experiment: &str| buildinfo::BuildInfo {
        go_version: version.into(),
        settings: vec![buildinfo::BuildSetting {
            key: "GOEXPERIMENT".into(),
            value: experiment.into(),
        }],
        ..Default::default()
    };
    assert!(!offsets::swiss_maps(&info("go1.23.9", "")));
    assert!(offsets::swiss_maps(&info("go1.23.9", "swissmap")));
    assert!(offsets::swiss_maps(&info("go1.24.11", "")));
    assert!(!offsets::swiss_maps(&info("go1.24.11", "noswissmap")));
    assert!(!offsets::swiss_maps(&info(
        "go1.25.5",
        "aliastypeparams,noswissmap"
    )));
    assert!(
        offsets::swiss_maps(&info("go1.26.6", "noswissmap")),
        "removed in 1.26"
    );
    assert!(!offsets::swiss_maps(&info("devel +abc", "")));
}

#[test]
fn table_lookup_by_version() {
    let v = |s: &str| GoVersion::parse(s).expect("version");
    let raw_query = |s: &str| offsets::from_table(&v(s)).get("net/url.URL", "RawQuery");
    assert_eq!(raw_query("go1.19.8"), Some(96));
    assert_eq!(
        raw_query("go1.20.5"),
        Some(96),
        "between measured versions of one range"
    );
    assert_eq!(raw_query("go1.25.0"), Some(96));
    assert_eq!(raw_query("go1.26rc1"), Some(88));
    assert_eq!(raw_query("go1.18.10"), None, "older than the table");
    assert_eq!(raw_query("go1.99.0"), None, "newer than the table");
    // A stripped binary of an unknown version: a clean error, not a guess.
    let built = inline_buildinfo("go1.99.0", &sentinel_wrapped(MODINFO));
    let bin = GoBinary::from_bytes(elf(&[(".go.buildinfo", 1, built)]).0).expect("ELF");
    let info = bin.build_info().expect("build info");
    assert!(matches!(
        offsets::for_binary(&bin, &info),
        Err(GoError::Unsupported { .. })
    ));
}

#[test]
fn hostile_dwarf_gives_clean_errors() {
    // .zdebug_info: "ZLIB", a big-endian size, then zlib bytes.
    let mut huge = b"ZLIB".to_vec();
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&[0x78, 0x9c, 0, 0]);
    let mut garbage = b"ZLIB".to_vec();
    garbage.extend_from_slice(&100u64.to_be_bytes());
    garbage.extend_from_slice(&[0x13; 32]);
    for data in [huge, garbage, b"ZLI".to_vec()] {
        let bin = GoBinary::from_bytes(elf(&[(".zdebug_info", 1, data)]).0).expect("ELF");
        let r = offsets::from_dwarf(&bin);
        assert!(matches!(r, Err(GoError::BadDwarf { .. })), "{r:?}");
    }
    // Uncompressed but truncated .debug_info: a unit header promising more than is there.
    let unit = vec![0xff, 0, 0, 0, 4, 0, 0, 0, 0, 0, 8];
    let bin = GoBinary::from_bytes(elf(&[(".debug_info", 1, unit)]).0).expect("ELF");
    let r = offsets::from_dwarf(&bin);
    assert!(matches!(r, Err(GoError::BadDwarf { .. })), "{r:?}");
}
