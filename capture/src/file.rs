//! Streaming pcap and pcapng record reader.
//!
//! - pcap: <https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/> (24-byte file header,
//!   16-byte record headers; microsecond `0xa1b2c3d4` and nanosecond `0xa1b23c4d` magic, in
//!   either byte order).
//! - pcapng: <https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/> (Section Header Block
//!   with its own byte order, one Interface Description Block per interface with its link type
//!   and `if_tsresol`/`if_tsoffset`, Enhanced/Simple/obsolete Packet Blocks; every other block
//!   is skipped without being buffered).
//!
//! One record buffer is reused for the whole file, so reading allocates only when a record is
//! longer than every record before it. Lengths read from the file are checked against
//! [`MAX_CAPLEN`] and [`MAX_BLOCK_LEN`] before anything is allocated.

use std::io::{self, BufRead, BufReader, Read};

use super::{CaptureError, CaptureFormat};

/// The largest captured packet accepted (libpcap's `MAXIMUM_SNAPLEN`, 256 KiB).
pub const MAX_CAPLEN: u32 = 262_144;
/// The largest pcapng block that is parsed (packet data plus options, or a header block).
/// Unknown blocks are skipped by streaming and may be of any length.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;

/// The read buffer: large reads, so that a big capture costs few system calls.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// pcap, microsecond timestamps (draft-ietf-opsawg-pcap section 4).
pub(crate) const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
/// pcap, nanosecond timestamps.
pub(crate) const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
/// pcapng Section Header Block type, a palindrome so it reads the same in both byte orders
/// (draft-ietf-opsawg-pcapng section 4.1).
pub(crate) const PCAPNG_SHB_MAGIC: u32 = 0x0a0d_0d0a;
/// pcapng byte-order magic inside the Section Header Block.
const PCAPNG_BOM_MAGIC: u32 = 0x1a2b_3c4d;

// pcapng block types (section 4 and appendix).
const BLOCK_IDB: u32 = 1;
const BLOCK_PB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;

// Interface Description Block options (section 4.2).
const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// One captured packet, borrowing the reader's buffer.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    /// The link type of the interface the packet was captured on.
    pub link_type: u32,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The captured bytes (possibly fewer than `orig_len`).
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Self::Little => u16::from_le_bytes(b),
            Self::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Self::Little => u32::from_le_bytes(b),
            Self::Big => u32::from_be_bytes(b),
        }
    }

    /// The `u16` at `at` in `buf`, if it is there.
    fn u16_at(self, buf: &[u8], at: usize) -> Option<u16> {
        let b = buf.get(at..at.checked_add(2)?)?;
        Some(self.u16(b.try_into().ok()?))
    }

    /// The `u32` at `at` in `buf`, if it is there.
    fn u32_at(self, buf: &[u8], at: usize) -> Option<u32> {
        let b = buf.get(at..at.checked_add(4)?)?;
        Some(self.u32(b.try_into().ok()?))
    }

    /// The `i64` at `at` in `buf`, if it is there.
    fn i64_at(self, buf: &[u8], at: usize) -> Option<i64> {
        let b: [u8; 8] = buf.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            Self::Little => i64::from_le_bytes(b),
            Self::Big => i64::from_be_bytes(b),
        })
    }
}

/// One pcapng interface, from its Interface Description Block.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    units_per_sec: u128,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
}

impl Interface {
    fn ts_ns(&self, units: u64) -> u64 {
        let ns = i128::try_from(u128::from(units) * u128::from(NANOS_PER_SEC) / self.units_per_sec)
            .unwrap_or(i128::MAX);
        let ns = ns.saturating_add(i128::from(self.offset_s) * i128::from(NANOS_PER_SEC));
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }
}

#[derive(Debug)]
enum Kind {
    Pcap {
        endian: Endian,
        nanos: bool,
        link_type: u32,
    },
    Pcapng {
        endian: Endian,
        interfaces: Vec<Interface>,
    },
}

/// Where the packet of the record just read lies in the buffer.
struct Located {
    link_type: u32,
    ts_ns: u64,
    start: usize,
    len: usize,
    orig_len: u32,
}

/// Reads packet records one at a time from a pcap or pcapng stream.
pub(crate) struct RecordReader<R> {
    inner: BufReader<R>,
    /// Bytes consumed so far: the offset of the next record.
    offset: u64,
    buf: Vec<u8>,
    /// The last pcap record was handed out from `inner`'s buffer, uncopied: these bytes are
    /// consumed when the next record is read.
    lent: usize,
    kind: Kind,
    /// The last timestamp seen, given to Simple Packet Blocks (which have none).
    last_ts_ns: u64,
}

impl<R> std::fmt::Debug for RecordReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("offset", &self.offset)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, CaptureError> {
    let mut done = 0;
    while done < buf.len() {
        let Some(rest) = buf.get_mut(done..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(CaptureError::Io { error }),
        }
    }
    Ok(done)
}

/// Whether `link_type` is one [`super::packet::decode`] understands.
pub(crate) fn link_type_supported(link_type: u32) -> bool {
    super::packet::LinkKind::of(link_type).is_some()
}

impl<R: Read> RecordReader<R> {
    /// Reads the file header (pcap) or first Section Header Block (pcapng).
    pub(crate) fn open(inner: R) -> Result<Self, CaptureError> {
        let mut inner = BufReader::with_capacity(READ_BUFFER_BYTES, inner);
        let mut magic = [0u8; 4];
        if read_full(&mut inner, &mut magic)? < 4 || !super::is_capture_magic(&magic) {
            return Err(CaptureError::NotACapture);
        }
        let mut this = Self {
            inner,
            offset: 4,
            buf: Vec::with_capacity(64 * 1024),
            lent: 0,
            kind: Kind::Pcapng {
                endian: Endian::Little,
                interfaces: Vec::new(),
            },
            last_ts_ns: 0,
        };
        if u32::from_le_bytes(magic) == PCAPNG_SHB_MAGIC {
            // block_total_length(4) byte_order_magic(4)
            let mut head = [0u8; 8];
            if read_full(&mut this.inner, &mut head)? < head.len() {
                return Err(CaptureError::TruncatedHeader { offset: 0 });
            }
            this.section_from_head(0, head).map_err(|e| match e {
                CaptureError::TruncatedRecord { offset } => {
                    CaptureError::TruncatedHeader { offset }
                }
                e => e,
            })?;
        } else {
            this.read_pcap_header(magic)?;
        }
        Ok(this)
    }

    /// Which container format the input is.
    pub(crate) fn format(&self) -> CaptureFormat {
        match self.kind {
            Kind::Pcap { .. } => CaptureFormat::Pcap,
            Kind::Pcapng { .. } => CaptureFormat::Pcapng,
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    fn read_pcap_header(&mut self, magic: [u8; 4]) -> Result<(), CaptureError> {
        let (endian, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (PCAP_MAGIC_US, _) => (Endian::Little, false),
            (PCAP_MAGIC_NS, _) => (Endian::Little, true),
            (_, PCAP_MAGIC_US) => (Endian::Big, false),
            (_, PCAP_MAGIC_NS) => (Endian::Big, true),
            _ => return Err(CaptureError::NotACapture),
        };
        // version_major(2) version_minor(2) thiszone(4) sigfigs(4) snaplen(4) linktype(4)
        let mut rest = [0u8; 20];
        if read_full(&mut self.inner, &mut rest)? < rest.len() {
            return Err(CaptureError::TruncatedHeader { offset: 0 });
        }
        self.offset = 24;
        let major = endian.u16_at(&rest, 0).unwrap_or(0);
        let minor = endian.u16_at(&rest, 2).unwrap_or(0);
        if major != 2 {
            return Err(CaptureError::UnsupportedVersion {
                format: "pcap",
                major,
                minor,
            });
        }
        // The upper bits carry FCS information (draft section 4): the link type is the low 16.
        let link_type = endian.u32_at(&rest, 16).unwrap_or(0) & 0xffff;
        if !link_type_supported(link_type) {
            return Err(CaptureError::UnsupportedLinkType { link_type });
        }
        self.kind = Kind::Pcap {
            endian,
            nanos,
            link_type,
        };
        Ok(())
    }

    /// Fills `self.buf` with exactly `n` bytes. A short read is `TruncatedRecord` at
    /// `start`, the offset of the record being read.
    fn read_into_buf(&mut self, n: usize, start: u64) -> Result<(), CaptureError> {
        self.buf.clear();
        // Most records are already in the reader's buffer: one copy, no read call.
        if let Some(record) = self.inner.buffer().get(..n) {
            self.buf.extend_from_slice(record);
            self.inner.consume(n);
            return Ok(());
        }
        // Grow with the bytes actually read, not with the declared length: a short file that
        // declares a long record allocates no more than it holds.
        let got = (&mut self.inner)
            .take(n as u64)
            .read_to_end(&mut self.buf)
            .map_err(|error| CaptureError::Io { error })?;
        if got < n {
            return Err(CaptureError::TruncatedRecord { offset: start });
        }
        Ok(())
    }

    /// The next packet record, or `None` at a clean end of input.
    pub(crate) fn next_record(&mut self) -> Result<Option<Record<'_>>, CaptureError> {
        self.inner.consume(std::mem::take(&mut self.lent));
        let located = match self.kind {
            Kind::Pcap {
                endian,
                nanos,
                link_type,
            } => self.next_pcap(endian, nanos, link_type)?,
            Kind::Pcapng { .. } => self.next_pcapng()?,
        };
        let Some(loc) = located else { return Ok(None) };
        self.last_ts_ns = loc.ts_ns;
        let held = if self.lent > 0 {
            self.inner.buffer()
        } else {
            &self.buf
        };
        let data = held.get(loc.start..loc.start + loc.len).unwrap_or_default();
        Ok(Some(Record {
            link_type: loc.link_type,
            ts_ns: loc.ts_ns,
            data,
            orig_len: loc.orig_len,
        }))
    }

    fn next_pcap(
        &mut self,
        endian: Endian,
        nanos: bool,
        link_type: u32,
    ) -> Result<Option<Located>, CaptureError> {
        let start = self.offset;
        // ts_sec(4) ts_usec_or_nsec(4) incl_len(4) orig_len(4)
        let mut hdr = [0u8; 16];
        match read_full(&mut self.inner, &mut hdr)? {
            0 => return Ok(None),
            16 => {}
            _ => return Err(CaptureError::TruncatedRecord { offset: start }),
        }
        let sec = u64::from(endian.u32_at(&hdr, 0).unwrap_or(0));
        let frac = u64::from(endian.u32_at(&hdr, 4).unwrap_or(0));
        let caplen = endian.u32_at(&hdr, 8).unwrap_or(0);
        let orig_len = endian.u32_at(&hdr, 12).unwrap_or(0);
        if caplen > MAX_CAPLEN {
            return Err(CaptureError::RecordTooLong {
                offset: start,
                what: "captured length",
                len: u64::from(caplen),
                max: u64::from(MAX_CAPLEN),
            });
        }
        self.offset += 16;
        let caplen_bytes = caplen as usize;
        if self.inner.buffer().len() >= caplen_bytes {
            // Most records are whole in the read buffer: lent from there, not copied.
            self.lent = caplen_bytes;
        } else {
            self.read_into_buf(caplen_bytes, start)?;
        }
        self.offset += u64::from(caplen);
        let ts_ns = sec * NANOS_PER_SEC
            + if nanos {
                frac
            } else {
                frac.saturating_mul(1000)
            };
        Ok(Some(Located {
            link_type,
            ts_ns,
            start: 0,
            len: caplen as usize,
            orig_len,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Located>, CaptureError> {
        loop {
            let start = self.offset;
            let mut hdr = [0u8; 8];
            match read_full(&mut self.inner, &mut hdr)? {
                0 => return Ok(None),
                8 => {}
                _ => return Err(CaptureError::TruncatedRecord { offset: start }),
            }
            let Kind::Pcapng { endian, .. } = self.kind else {
                return Ok(None);
            };
            let ty = endian.u32_at(&hdr, 0).unwrap_or(0);
            if ty == PCAPNG_SHB_MAGIC {
                // A new section: it may switch byte order and starts with no interfaces.
                let [_, _, _, _, l0, l1, l2, l3] = hdr;
                let mut head = [l0, l1, l2, l3, 0, 0, 0, 0];
                let (_, bom) = head.split_at_mut(4);
                if read_full(&mut self.inner, bom)? < 4 {
                    return Err(CaptureError::TruncatedRecord { offset: start });
                }
                self.section_from_head(start, head)?;
                continue;
            }
            let len = endian.u32_at(&hdr, 4).unwrap_or(0);
            check_block_len(start, len, 12)?;
            if !matches!(ty, BLOCK_IDB | BLOCK_PB | BLOCK_SPB | BLOCK_EPB) {
                self.skip_block(endian, start, len)?;
                continue;
            }
            if len > MAX_BLOCK_LEN {
                return Err(CaptureError::RecordTooLong {
                    offset: start,
                    what: "block length",
                    len: u64::from(len),
                    max: u64::from(MAX_BLOCK_LEN),
                });
            }
            self.offset += 8;
            self.read_into_buf(len as usize - 8, start)?;
            check_trailer(endian, &self.buf, start, len)?;
            self.offset = start + u64::from(len);
            let body_len = len as usize - 12;
            if ty == BLOCK_IDB {
                let iface = parse_idb(endian, self.buf.get(..body_len).unwrap_or_default(), start)?;
                if let Kind::Pcapng { interfaces, .. } = &mut self.kind {
                    interfaces.push(iface);
                }
                continue;
            }
            let Kind::Pcapng { interfaces, .. } = &self.kind else {
                return Ok(None);
            };
            let body = self.buf.get(..body_len).unwrap_or_default();
            return locate_packet(endian, ty, body, interfaces, start, self.last_ts_ns).map(Some);
        }
    }

    /// Parses a Section Header Block given its length and byte-order magic (`head`), the type
    /// having been read at `start`.
    fn section_from_head(&mut self, start: u64, head: [u8; 8]) -> Result<(), CaptureError> {
        let endian = match Endian::Little.u32_at(&head, 4) {
            Some(PCAPNG_BOM_MAGIC) => Endian::Little,
            _ if Endian::Big.u32_at(&head, 4) == Some(PCAPNG_BOM_MAGIC) => Endian::Big,
            _ => {
                return Err(CaptureError::CorruptRecord {
                    offset: start,
                    reason: "unknown pcapng byte-order magic",
                })
            }
        };
        let len = endian.u32_at(&head, 0).unwrap_or(0);
        check_block_len(start, len, 28)?;
        if len > MAX_BLOCK_LEN {
            return Err(CaptureError::RecordTooLong {
                offset: start,
                what: "block length",
                len: u64::from(len),
                max: u64::from(MAX_BLOCK_LEN),
            });
        }
        self.offset = start + 12;
        self.read_into_buf(len as usize - 12, start)?;
        check_trailer(endian, &self.buf, start, len)?;
        self.offset = start + u64::from(len);
        let major = endian.u16_at(&self.buf, 0).unwrap_or(0);
        let minor = endian.u16_at(&self.buf, 2).unwrap_or(0);
        if major != 1 {
            return Err(CaptureError::UnsupportedVersion {
                format: "pcapng",
                major,
                minor,
            });
        }
        self.kind = Kind::Pcapng {
            endian,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    /// Skips a block this reader does not use without buffering it, then checks its trailer.
    fn skip_block(&mut self, endian: Endian, start: u64, len: u32) -> Result<(), CaptureError> {
        let body = u64::from(len) - 12;
        let copied = io::copy(&mut (&mut self.inner).take(body), &mut io::sink())
            .map_err(|error| CaptureError::Io { error })?;
        if copied < body {
            return Err(CaptureError::TruncatedRecord { offset: start });
        }
        let mut trailer = [0u8; 4];
        if read_full(&mut self.inner, &mut trailer)? < 4 {
            return Err(CaptureError::TruncatedRecord { offset: start });
        }
        if endian.u32(trailer) != len {
            return Err(CaptureError::CorruptRecord {
                offset: start,
                reason: "block length in trailer differs from header",
            });
        }
        self.offset = start + u64::from(len);
        Ok(())
    }
}

/// Checks a pcapng block's total length before anything is read or allocated.
fn check_block_len(start: u64, len: u32, min: u32) -> Result<(), CaptureError> {
    if len < min {
        return Err(CaptureError::CorruptRecord {
            offset: start,
            reason: "block length shorter than its fixed fields",
        });
    }
    if !len.is_multiple_of(4) {
        return Err(CaptureError::CorruptRecord {
            offset: start,
            reason: "block length not a multiple of 4",
        });
    }
    Ok(())
}

/// Checks that the trailing length (the last 4 bytes of `buf`) repeats the header's.
fn check_trailer(endian: Endian, buf: &[u8], start: u64, len: u32) -> Result<(), CaptureError> {
    let trailer = buf
        .len()
        .checked_sub(4)
        .and_then(|at| endian.u32_at(buf, at));
    if trailer != Some(len) {
        return Err(CaptureError::CorruptRecord {
            offset: start,
            reason: "block length in trailer differs from header",
        });
    }
    Ok(())
}

/// Parses an Interface Description Block body: link type, snaplen and the options that
/// change timestamps.
fn parse_idb(endian: Endian, body: &[u8], start: u64) -> Result<Interface, CaptureError> {
    // link_type(2) reserved(2) snaplen(4) options...
    let (Some(link_type), Some(snaplen)) = (endian.u16_at(body, 0), endian.u32_at(body, 4)) else {
        return Err(CaptureError::CorruptRecord {
            offset: start,
            reason: "interface description block too short",
        });
    };
    let mut iface = Interface {
        link_type: u32::from(link_type),
        snaplen,
        units_per_sec: 1_000_000,
        offset_s: 0,
    };
    let mut at = 8;
    // option: code(2) length(2) value padded to 4 bytes
    while let (Some(code), Some(olen)) = (endian.u16_at(body, at), endian.u16_at(body, at + 2)) {
        if code == OPT_ENDOFOPT {
            break;
        }
        let olen = usize::from(olen);
        let Some(value) = body.get(at + 4..at + 4 + olen) else {
            return Err(CaptureError::CorruptRecord {
                offset: start,
                reason: "option runs past the end of its block",
            });
        };
        match (code, value) {
            (OPT_IF_TSRESOL, [v, ..]) => {
                // High bit set: a negative power of 2, else a negative power of 10 (section 4.2).
                let exp = u32::from(v & 0x7f);
                let units = if v & 0x80 != 0 {
                    1u128.checked_shl(exp)
                } else {
                    10u128.checked_pow(exp)
                };
                iface.units_per_sec = units.ok_or(CaptureError::CorruptRecord {
                    offset: start,
                    reason: "if_tsresol out of range",
                })?;
            }
            (OPT_IF_TSOFFSET, _) => {
                if let Some(off) = endian.i64_at(value, 0) {
                    iface.offset_s = off;
                }
            }
            _ => {}
        }
        at += 4 + olen.next_multiple_of(4);
    }
    Ok(iface)
}

/// Finds the packet inside an EPB, SPB or obsolete PB body.
fn locate_packet(
    endian: Endian,
    ty: u32,
    body: &[u8],
    interfaces: &[Interface],
    start: u64,
    last_ts_ns: u64,
) -> Result<Located, CaptureError> {
    let short = CaptureError::CorruptRecord {
        offset: start,
        reason: "packet block too short",
    };
    let (iface_id, ts_units, caplen, orig_len, data_at) = match ty {
        BLOCK_EPB | BLOCK_PB => {
            // EPB: interface_id(4) ts_high(4) ts_low(4) caplen(4) orig_len(4) data...
            // PB:  interface_id(2) drops_count(2) ts_high(4) ts_low(4) caplen(4) orig_len(4) data...
            let iface = if ty == BLOCK_EPB {
                endian.u32_at(body, 0)
            } else {
                endian.u16_at(body, 0).map(u32::from)
            };
            let (Some(iface), Some(hi), Some(lo), Some(caplen), Some(orig)) = (
                iface,
                endian.u32_at(body, 4),
                endian.u32_at(body, 8),
                endian.u32_at(body, 12),
                endian.u32_at(body, 16),
            ) else {
                return Err(short);
            };
            (
                iface,
                Some((u64::from(hi) << 32) | u64::from(lo)),
                caplen,
                orig,
                20,
            )
        }
        _ => {
            // SPB: orig_len(4) data... ; captured length is implied by the block length and
            // the snaplen of interface 0 (section 4.4).
            let Some(orig) = endian.u32_at(body, 0) else {
                return Err(short);
            };
            let in_block = u32::try_from(body.len() - 4).unwrap_or(u32::MAX);
            let snap = interfaces.first().map_or(0, |i| i.snaplen);
            let mut caplen = orig.min(in_block);
            if snap != 0 {
                caplen = caplen.min(snap);
            }
            (0, None, caplen, orig, 4)
        }
    };
    if caplen > MAX_CAPLEN {
        return Err(CaptureError::RecordTooLong {
            offset: start,
            what: "captured length",
            len: u64::from(caplen),
            max: u64::from(MAX_CAPLEN),
        });
    }
    let Some(iface) = interfaces.get(iface_id as usize) else {
        return Err(CaptureError::CorruptRecord {
            offset: start,
            reason: "packet refers to an undeclared interface",
        });
    };
    if body.len() < data_at + caplen as usize {
        return Err(CaptureError::CorruptRecord {
            offset: start,
            reason: "captured length exceeds its block",
        });
    }
    let ts_ns = ts_units.map_or(last_ts_ns, |u| iface.ts_ns(u));
    Ok(Located {
        link_type: iface.link_type,
        ts_ns,
        start: data_at,
        len: caplen as usize,
        orig_len,
    })
}
