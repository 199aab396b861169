//! The kernel/user wire structs against the committed BPF objects: every `#[repr(C)]` mirror
//! of a C struct (`raw.rs`, `go/uprobes.rs`) must have the C struct's size and, member for
//! member, its names, offsets and sizes, as clang recorded them in the object's BTF (the
//! `.BTF` section, format in the kernel's `Documentation/bpf/btf.rst`).
//!
//! A field added on one side only fails here: on the Rust side the mirror's list below stops
//! compiling (the destructuring pattern names every field), and once listed, or on the C side
//! after `cargo xtask bpf`, the layouts differ.

use std::collections::HashMap;

use object::{Object, ObjectSection};

use crate::go::uprobes::{RawGoHttpConfig, RawGoHttpHdr};
use crate::raw::{RawConn, RawEventHdr, RawProfile};

static ADI: &[u8] = include_bytes!("../bpf/adi.bpf.o");
static GO_HTTP: &[u8] = include_bytes!("../bpf/go_http.bpf.o");

/// One member: name, byte offset, size in bytes.
type Member = (String, usize, usize);

/// A struct's layout: its size and members in order.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    size: usize,
    members: Vec<Member>,
}

/// The layout of a Rust mirror. Lists every field in declaration order; the destructuring
/// pattern fails to compile when a field is missing from the list.
macro_rules! rust_layout {
    ($ty:ident; $($field:ident),* $(,)?) => {{
        let _every_field_listed = |v: &$ty| {
            let $ty { $($field: _),* } = v;
        };
        Layout {
            size: size_of::<$ty>(),
            members: vec![$((
                stringify!($field).to_owned(),
                std::mem::offset_of!($ty, $field),
                size_of_field(|v: &$ty| &v.$field),
            )),*],
        }
    }};
}

/// The size of the field `field` projects to.
fn size_of_field<T, F>(_field: impl Fn(&T) -> &F) -> usize {
    size_of::<F>()
}

// BTF kinds (`BTF_KIND_*` in the kernel's include/uapi/linux/btf.h).
const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

/// One BTF type, as much as the layout check needs.
#[derive(Debug, Clone)]
struct Type {
    name: String,
    kind: u32,
    /// `size` (INT, STRUCT, UNION, ENUM, FLOAT) or `type` (PTR, TYPEDEF, qualifiers).
    size_or_ref: u32,
    /// ARRAY: element type and count.
    array: Option<(u32, u32)>,
    /// STRUCT, UNION: (name, type, bit offset).
    members: Vec<(String, u32, u32)>,
}

/// The types of an object's `.BTF` section, indexed by type id (id 0 is `void`).
struct Btf {
    types: Vec<Type>,
}

impl Btf {
    fn parse(elf: &[u8]) -> Self {
        let file = object::File::parse(elf).expect("a BPF object");
        let data = file
            .section_by_name(".BTF")
            .expect("the object has .BTF (built with -g)")
            .data()
            .expect(".BTF data");
        let u16_at = |at: usize| u16::from_le_bytes([data[at], data[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        // struct btf_header: magic, version, flags, hdr_len, type_off, type_len, str_off,
        // str_len.
        assert_eq!(u16_at(0), 0xeb9f, "BTF magic (a little-endian object)");
        let hdr_len = u32_at(4) as usize;
        let (type_off, type_len) = (u32_at(8) as usize, u32_at(12) as usize);
        let str_off = hdr_len + u32_at(16) as usize;
        let name = |off: u32| {
            let start = str_off + off as usize;
            let end = start + data[start..].iter().position(|&b| b == 0).expect("NUL");
            String::from_utf8_lossy(&data[start..end]).into_owned()
        };
        let mut types = vec![Type {
            name: "void".into(),
            kind: 0,
            size_or_ref: 0,
            array: None,
            members: Vec::new(),
        }];
        let (mut at, end) = (hdr_len + type_off, hdr_len + type_off + type_len);
        while at < end {
            // struct btf_type: name_off, info (vlen: bits 0-15, kind: bits 24-28,
            // kind_flag: bit 31), size or type.
            let info = u32_at(at + 4);
            let (vlen, kind, kind_flag) =
                ((info & 0xffff) as usize, (info >> 24) & 0x1f, info >> 31);
            let mut t = Type {
                name: name(u32_at(at)),
                kind,
                size_or_ref: u32_at(at + 8),
                array: None,
                members: Vec::new(),
            };
            at += 12;
            match kind {
                INT | VAR | DECL_TAG => at += 4,
                ARRAY => {
                    // struct btf_array: type, index_type, nelems.
                    t.array = Some((u32_at(at), u32_at(at + 8)));
                    at += 12;
                }
                STRUCT | UNION => {
                    for _ in 0..vlen {
                        // struct btf_member: name_off, type, offset (in bits; with
                        // kind_flag, the bitfield size is in the top 8 bits).
                        let offset = u32_at(at + 8);
                        let bits = if kind_flag == 1 {
                            offset & 0xff_ffff
                        } else {
                            offset
                        };
                        t.members.push((name(u32_at(at)), u32_at(at + 4), bits));
                        at += 12;
                    }
                }
                ENUM | FUNC_PROTO => at += 8 * vlen,
                DATASEC | ENUM64 => at += 12 * vlen,
                PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => {}
                other => panic!("unknown BTF kind {other}"),
            }
            types.push(t);
        }
        Self { types }
    }

    /// The size in bytes of type `id`, through typedefs and qualifiers.
    fn size(&self, id: u32) -> usize {
        let t = &self.types[id as usize];
        match t.kind {
            INT | STRUCT | UNION | ENUM | ENUM64 | FLOAT => t.size_or_ref as usize,
            PTR => 8,
            ARRAY => {
                let (elem, n) = t.array.expect("array info");
                self.size(elem) * n as usize
            }
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => self.size(t.size_or_ref),
            other => panic!("type {id} ({}) of kind {other} has no size", t.name),
        }
    }

    /// The layout of `struct name`.
    fn layout(&self, name: &str) -> Layout {
        let t = self
            .types
            .iter()
            .find(|t| t.kind == STRUCT && t.name == name)
            .unwrap_or_else(|| panic!("struct {name} is not in the object's BTF"));
        Layout {
            size: t.size_or_ref as usize,
            members: t
                .members
                .iter()
                .map(|(m, ty, bits)| {
                    assert!(bits % 8 == 0, "{name}.{m} is a bitfield");
                    (m.clone(), (bits / 8) as usize, self.size(*ty))
                })
                .collect(),
        }
    }
}

/// Compares each (C struct, Rust mirror) pair and fails with every difference, side by side.
fn check(object: &str, btf: &Btf, pairs: Vec<(&str, &str, Layout)>) {
    let mut report = Vec::new();
    for (c_name, rust_name, rust) in pairs {
        let c = btf.layout(c_name);
        if c == rust {
            continue;
        }
        let mut lines = vec![format!(
            "struct {c_name} ({object}, {} bytes) vs {rust_name} ({} bytes):",
            c.size, rust.size
        )];
        let rows = c.members.len().max(rust.members.len());
        let show = |m: Option<&Member>| {
            m.map_or_else(
                || "-".to_owned(),
                |(n, off, size)| format!("{n} @{off} +{size}"),
            )
        };
        for i in 0..rows {
            let (cm, rm) = (c.members.get(i), rust.members.get(i));
            let mark = if cm == rm { "  " } else { "!=" };
            lines.push(format!("  {mark} C {:<24} Rust {}", show(cm), show(rm)));
        }
        report.push(lines.join("\n"));
    }
    assert!(
        report.is_empty(),
        "wire structs differ from probes/bpf/{object}: change the C header and the Rust \
         mirror together, then `cargo xtask bpf`\n{}",
        report.join("\n")
    );
}

#[test]
fn adi_wire_structs_match_the_object() {
    let btf = Btf::parse(ADI);
    check(
        "adi.bpf.o",
        &btf,
        vec![
            (
                "adi_event_hdr",
                "RawEventHdr",
                rust_layout!(
                    RawEventHdr;
                    kind, tgid, tid, fd, ts_ns, real_len, sock, cap_len, dir, syscall, family,
                    lport, rport, role, flags, laddr, raddr, comm,
                ),
            ),
            (
                "adi_conn",
                "RawConn",
                rust_layout!(
                    RawConn;
                    role, cap, tgid, fd, exchanges, last_dir, skipping, after_skip, tls, family,
                    lport, rport, pad2, laddr, raddr,
                ),
            ),
            (
                "adi_profile",
                "RawProfile",
                rust_layout!(RawProfile; len, pad, val),
            ),
        ],
    );
}

#[test]
fn go_http_wire_structs_match_the_object() {
    let btf = Btf::parse(GO_HTTP);
    check(
        "go_http.bpf.o",
        &btf,
        vec![
            (
                "go_http_hdr",
                "RawGoHttpHdr",
                rust_layout!(
                    RawGoHttpHdr;
                    kind, side, tgid, tid, ts_ns, goroutine, frame, duration_ns, status, flags,
                    data_len,
                ),
            ),
            (
                "go_http_config",
                "RawGoHttpConfig",
                rust_layout!(
                    RawGoHttpConfig;
                    req_method, req_url, req_header, req_host, req_tls, url_scheme, url_host,
                    url_path, url_raw_query, resp_status_code, http1_header_fn, http1_status,
                    h2_header_fn, h2_rws, h2_status, g_stack_hi, swiss, hmap_flags, hmap_b,
                    hmap_buckets, hmap_oldbuckets, bucket_keys, bucket_elems, bucket_overflow,
                    bucket_size, map_dir_ptr, map_dir_len, table_groups_data, table_groups_mask,
                    group_slots, slot_size, slot_elem, group_size,
                ),
            ),
        ],
    );
}

/// The reader itself, on a struct whose layout is known: a wrong offset or size in the
/// reader would otherwise pass unnoticed only if it matched a wrong Rust mirror too.
#[test]
fn reads_known_layouts() {
    let btf = Btf::parse(ADI);
    let conn = btf.layout("adi_conn");
    assert_eq!(conn.size, 64);
    let by_name: HashMap<&str, (usize, usize)> = conn
        .members
        .iter()
        .map(|(n, off, size)| (n.as_str(), (*off, *size)))
        .collect();
    assert_eq!(by_name["lport"], (26, 2));
    assert_eq!(by_name["laddr"], (32, 16));
}
