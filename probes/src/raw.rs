//! The kernel wire format (`probes/bpf/adi_events.h`), mirrored field for field, and its
//! decoding with size checks into [`RawEvent`]. The mirrors' sizes are pinned below; their
//! members are checked against the committed object's BTF by `btf_layout.rs` (a test).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Hard cap of payload bytes per event (`ADI_MAX_PAYLOAD`).
pub const MAX_PAYLOAD: usize = 8192;

/// `struct adi_event_hdr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawEventHdr {
    /// `ADI_EV_*`.
    pub kind: u32,
    /// Process id.
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// The socket's fd.
    pub fd: i32,
    /// `bpf_ktime_get_ns()`.
    pub ts_ns: u64,
    /// Bytes the syscall moved.
    pub real_len: u64,
    /// The kernel socket's address.
    pub sock: u64,
    /// Payload bytes following.
    pub cap_len: u32,
    /// `ADI_DIR_*`.
    pub dir: u32,
    /// Syscall number.
    pub syscall: u32,
    /// Address family.
    pub family: u16,
    /// Local port.
    pub lport: u16,
    /// Remote port.
    pub rport: u16,
    /// `ADI_ROLE_*`.
    pub role: u16,
    /// `ADI_DATA_*` flags of a data event.
    pub flags: u32,
    /// Local address.
    pub laddr: [u8; 16],
    /// Remote address.
    pub raddr: [u8; 16],
    /// Task comm, NUL-padded.
    pub comm: [u8; 16],
}

// The layout is the ABI with the BPF side: pin it.
const _: () = assert!(size_of::<RawEventHdr>() == 112);
const _: () = assert!(std::mem::offset_of!(RawEventHdr, laddr) == 64);
const _: () = assert!(std::mem::offset_of!(RawEventHdr, comm) == 96);

impl RawEventHdr {
    /// The header as the kernel writes it (tests and benchmarks build ring records with it).
    pub fn to_bytes(&self) -> [u8; size_of::<RawEventHdr>()] {
        let mut b = [0u8; size_of::<RawEventHdr>()];
        // SAFETY: a repr(C) plain-old-data struct without padding (the asserts above pin its
        // layout) copied as its bytes into a buffer of exactly its size.
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const *self).cast::<u8>(), b.as_mut_ptr(), b.len());
        }
        b
    }
}

/// `ADI_DATA_AFTER_SKIP`: whole messages of the connection were sampled out just before.
const DATA_AFTER_SKIP: u32 = 1;
/// `ADI_DATA_TLS`: plaintext a TLS library read or wrote, not the socket's own bytes.
const DATA_TLS: u32 = 2;

/// `struct adi_conn`: per-connection state in the `conns` map. User space sets `role` and
/// `cap` (read, modify, write); the kernel owns the rest (the file, the tuple and the sampling
/// state), which user space writes back as it read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawConn {
    /// `ADI_ROLE_*` ([`KernelRole::wire`]).
    pub role: u32,
    /// Per-message payload cap; 0 = the default.
    pub cap: u32,
    /// The watched process that last used the connection (0: none yet).
    pub tgid: u32,
    /// Its fd there, -1 when unknown.
    pub fd: i32,
    /// Request/response exchanges started (saturates).
    pub exchanges: u32,
    /// Direction of the last message: `ADI_DIR_*` + 1, 0 before any.
    pub last_dir: u8,
    /// The current exchange is sampled out.
    pub skipping: u8,
    /// Messages were skipped since the last event sent.
    pub after_skip: u8,
    /// 1 once a TLS library's plaintext was seen.
    pub tls: u8,
    /// The socket's address family, 0 before the kernel read its tuple.
    pub family: u16,
    /// Local port.
    pub lport: u16,
    /// Remote port.
    pub rport: u16,
    /// Zero.
    pub pad2: u16,
    /// Local address.
    pub laddr: [u8; 16],
    /// Remote address.
    pub raddr: [u8; 16],
}
const _: () = assert!(size_of::<RawConn>() == 64);

impl RawConn {
    /// The (local, remote) ports of the connection, (0, 0) before the kernel read its tuple.
    pub fn ports(&self) -> (u16, u16) {
        (self.lport, self.rport)
    }
}

/// `struct adi_profile`: one `ADI_PROFILE` value as the kernel compares it, zero-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawProfile {
    /// Bytes used in `val`.
    pub(crate) len: u32,
    /// Zero.
    pub(crate) pad: u32,
    /// The value.
    pub(crate) val: [u8; crate::live::MAX_PROFILE_LEN],
}
const _: () = assert!(size_of::<RawProfile>() == 72);

// SAFETY: plain `repr(C)` structs of integers and byte arrays, without padding (the asserts
// above pin the sizes, `btf_layout` checks every field against the object), so every bit
// pattern is a valid value.
unsafe impl aya::Pod for RawConn {}
// SAFETY: as above.
unsafe impl aya::Pod for RawProfile {}

/// What kind of event the kernel sent (`ADI_EV_*`; values never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum EventKind {
    /// Bytes read or written on a socket.
    Data = 1,
    /// A watched process's connection is established (role client).
    Connect = 2,
    // 3 is retired (`ADI_EV_ACCEPT`): accepted connections show with their first message, and
    // decode as an unknown kind should an old object send one.
    /// A known connection's fd was closed.
    Close = 4,
    /// A process exec'd a new program: [`RawEvent::exec_flags`] says what the kernel decided.
    Exec = 5,
    /// The last thread of a watched process exited.
    Exit = 6,
}

/// What the kernel decided when a process exec'd (the `ADI_EXEC_*` flags of an
/// [`EventKind::Exec`] event).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "four independent facts of one decision"
)]
pub struct ExecFlags {
    /// The kernel now watches the process.
    pub watched: bool,
    /// It was watched before the exec.
    pub was_watched: bool,
    /// The kernel could not read the whole environment: user space decides from /proc.
    pub undecided: bool,
    /// Flags this build does not know were set.
    pub unknown: bool,
}

/// Which way data went, as seen by the traced process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// The process wrote it.
    Send,
    /// The process read it.
    Recv,
}

/// Which end of the connection the process is, as far as the kernel side knows (`ADI_ROLE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum KernelRole {
    /// Opened before adi started or by an untraced path: user space decides.
    Unknown = 0,
    /// The process connected.
    Client = 1,
    /// The process accepted.
    Server = 2,
}

impl KernelRole {
    /// The `ADI_ROLE_*` value.
    pub const fn wire(self) -> u32 {
        self as u32
    }

    /// The role of an `ADI_ROLE_*` value; an unknown value is [`KernelRole::Unknown`].
    pub fn from_wire(role: u32) -> Self {
        [Self::Client, Self::Server]
            .into_iter()
            .find(|r| r.wire() == role)
            .unwrap_or(Self::Unknown)
    }
}

/// A decoded kernel event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// The kind.
    pub kind: EventKind,
    /// Process id.
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// The fd (-1 when the syscall did not say).
    pub fd: i32,
    /// The kernel socket's address: with `tgid`, the connection's id while it lives.
    pub sock: u64,
    /// Monotonic nanoseconds.
    pub ts_ns: u64,
    /// Bytes the syscall moved.
    pub real_len: u64,
    /// Direction (data events).
    pub dir: DataDir,
    /// Syscall number.
    pub syscall: u32,
    /// Local address of the socket (unspecified when unknown, e.g. a close after shutdown).
    pub local: SocketAddr,
    /// Remote address.
    pub remote: SocketAddr,
    /// Role as the kernel knows it.
    pub role: KernelRole,
    /// Task comm.
    pub comm: String,
    /// Whole messages of this connection were sampled out in the kernel right before this
    /// data event (`--max-rate`): parsing restarts at a message boundary.
    pub after_skip: bool,
    /// The payload is the plaintext a TLS library (libssl) read or wrote on this connection,
    /// not the bytes on the wire.
    pub tls: bool,
    /// The captured payload (at most the cap); empty when the record's payload was lent
    /// instead ([`RawEvent::decode_header`]).
    pub payload: Vec<u8>,
}

/// A kernel record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than the header.
    #[error("event of {len} bytes is shorter than its {need}-byte header")]
    Short {
        /// Bytes received.
        len: usize,
        /// Header size.
        need: usize,
    },
    /// The payload length does not match the record size.
    #[error("event says {cap_len} payload bytes but carries {actual}")]
    SizeMismatch {
        /// What the header says.
        cap_len: usize,
        /// What arrived.
        actual: usize,
    },
    /// An event kind this build does not know.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    /// An address family other than IPv4/IPv6.
    #[error("unknown address family {0}")]
    UnknownFamily(u16),
}

fn addr(family: u16, bytes: [u8; 16], port: u16) -> Result<SocketAddr, DecodeError> {
    let ip = match family {
        0 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        2 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        10 => {
            let v6 = Ipv6Addr::from(bytes);
            // A dual-stack socket talking IPv4: report the IPv4 address.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        other => return Err(DecodeError::UnknownFamily(other)),
    };
    Ok(SocketAddr::new(ip, port))
}

impl RawEvent {
    /// The kernel's decision, for an [`EventKind::Exec`] event (all false otherwise).
    pub fn exec_flags(&self) -> ExecFlags {
        if self.kind != EventKind::Exec {
            return ExecFlags::default();
        }
        let f = self.real_len;
        ExecFlags {
            watched: f & 1 != 0,
            was_watched: f & 2 != 0,
            undecided: f & 4 != 0,
            unknown: f & !7 != 0,
        }
    }

    /// Decodes one ring buffer record.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the record is short, inconsistent or of an unknown kind.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut ev = Self::blank();
        ev.decode_into(buf)?;
        Ok(ev)
    }

    /// An event of nothing, to decode records into ([`RawEvent::decode_into`]).
    pub(crate) fn blank() -> Self {
        Self {
            kind: EventKind::Data,
            tgid: 0,
            tid: 0,
            fd: -1,
            sock: 0,
            ts_ns: 0,
            real_len: 0,
            dir: DataDir::Send,
            syscall: 0,
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            remote: SocketAddr::from(([0, 0, 0, 0], 0)),
            role: KernelRole::Unknown,
            comm: String::new(),
            after_skip: false,
            tls: false,
            payload: Vec::new(),
        }
    }

    /// Decodes a ring buffer record over this event, its payload and comm buffers reused.
    /// On an error the event is left partly overwritten.
    ///
    /// # Errors
    ///
    /// As [`RawEvent::decode`].
    pub fn decode_into(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        let payload = self.decode_header(buf)?;
        self.payload.extend_from_slice(payload);
        Ok(())
    }

    /// Decodes a record's header over this event and returns its payload, borrowed from
    /// `buf`: the live loop decodes every record into one event and parses the payload where
    /// the kernel wrote it, without a copy. `payload` is left empty. On an error the event
    /// is left partly overwritten.
    ///
    /// # Errors
    ///
    /// As [`RawEvent::decode`].
    pub fn decode_header<'b>(&mut self, buf: &'b [u8]) -> Result<&'b [u8], DecodeError> {
        let need = size_of::<RawEventHdr>();
        if buf.len() < need {
            return Err(DecodeError::Short {
                len: buf.len(),
                need,
            });
        }
        // SAFETY: `buf` holds at least `size_of::<RawEventHdr>()` bytes (checked above), the
        // struct is `repr(C)` plain old data valid for any bit pattern, and
        // `read_unaligned` does not require alignment.
        let h: RawEventHdr = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        let payload = &buf[need..];
        let cap_len = h.cap_len as usize;
        if cap_len > MAX_PAYLOAD || payload.len() < cap_len {
            return Err(DecodeError::SizeMismatch {
                cap_len,
                actual: payload.len(),
            });
        }
        let kind = match h.kind {
            1 => EventKind::Data,
            2 => EventKind::Connect,
            4 => EventKind::Close,
            5 => EventKind::Exec,
            6 => EventKind::Exit,
            other => return Err(DecodeError::UnknownKind(other)),
        };
        let comm_len = h.comm.iter().position(|&b| b == 0).unwrap_or(h.comm.len());
        self.local = addr(h.family, h.laddr, h.lport)?;
        self.remote = addr(h.family, h.raddr, h.rport)?;
        self.kind = kind;
        self.tgid = h.tgid;
        self.tid = h.tid;
        self.fd = h.fd;
        self.sock = h.sock;
        self.ts_ns = h.ts_ns;
        self.real_len = h.real_len;
        self.dir = if h.dir == 1 {
            DataDir::Recv
        } else {
            DataDir::Send
        };
        self.syscall = h.syscall;
        self.role = KernelRole::from_wire(u32::from(h.role));
        self.comm.clear();
        self.comm
            .push_str(&String::from_utf8_lossy(&h.comm[..comm_len]));
        self.after_skip = kind == EventKind::Data && h.flags & DATA_AFTER_SKIP != 0;
        self.tls = kind == EventKind::Data && h.flags & DATA_TLS != 0;
        self.payload.clear();
        Ok(&payload[..cap_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32, cap_len: u32) -> Vec<u8> {
        let h = RawEventHdr {
            kind,
            tgid: 42,
            tid: 43,
            fd: 7,
            ts_ns: 1_000,
            real_len: 10,
            sock: 0xffff_8880_0000_1000,
            cap_len,
            dir: 1,
            syscall: 0,
            family: 2,
            lport: 8080,
            rport: 51_000,
            role: KernelRole::Server.wire() as u16,
            flags: 1,
            laddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            raddr: [127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
        };
        h.to_bytes().to_vec()
    }

    #[test]
    fn decodes_a_data_event() {
        let mut b = header(1, 4);
        b.extend_from_slice(b"GET ");
        let e = RawEvent::decode(&b).expect("decode");
        assert_eq!(e.kind, EventKind::Data);
        assert_eq!(e.local, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(e.remote, "127.0.0.2:51000".parse().expect("addr"));
        assert_eq!(
            (e.dir, e.role, e.comm.as_str()),
            (DataDir::Recv, KernelRole::Server, "curl")
        );
        assert_eq!(e.payload, b"GET ");
        assert!(e.after_skip);
        assert!(!e.tls);
    }

    #[test]
    fn a_reused_buffer_holds_only_the_new_payload() {
        let mut b = header(1, 4);
        b.extend_from_slice(b"GET ");
        let mut e = RawEvent::blank();
        e.payload = b"HTTP/1.1 200 OK\r\n".to_vec();
        e.decode_into(&b).expect("decode");
        assert_eq!(e.payload, b"GET ");
        assert_eq!(e, RawEvent::decode(&b).expect("decode"));
    }

    #[test]
    fn a_header_decoded_alone_lends_the_payload_where_it_lies() {
        let mut b = header(1, 4);
        b.extend_from_slice(b"GET ");
        b.extend_from_slice(b"padding the ring may leave");
        let mut e = RawEvent::blank();
        e.payload = b"HTTP/1.1 200 OK\r\n".to_vec();
        let payload = e.decode_header(&b).expect("decode");
        assert_eq!(payload, b"GET ");
        // The bytes in the record itself, not a copy.
        assert_eq!(payload.as_ptr(), b[size_of::<RawEventHdr>()..].as_ptr());
        assert!(e.payload.is_empty());
        let whole = RawEvent::decode(&b).expect("decode");
        assert_eq!(
            RawEvent {
                payload: payload.to_vec(),
                ..e
            },
            whole
        );
    }

    #[test]
    fn decoding_over_an_event_leaves_nothing_of_it() {
        // A TLS data event of another process with a longer comm and a payload, then a
        // close decoded over it: the same as decoding the close afresh.
        let mut old = header(1, 17);
        old[4..8].copy_from_slice(&7u32.to_le_bytes());
        old[96..112].copy_from_slice(b"a-long-comm-name");
        let at = std::mem::offset_of!(RawEventHdr, flags);
        old[at..at + 4].copy_from_slice(&(DATA_AFTER_SKIP | DATA_TLS).to_le_bytes());
        old.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let b = header(4, 0);
        let mut e = RawEvent::decode(&old).expect("decode");
        e.decode_into(&b).expect("decode");
        assert_eq!(e, RawEvent::decode(&b).expect("decode"));
        assert!(e.payload.is_empty() && e.comm == "curl" && e.kind == EventKind::Close);
    }

    #[test]
    fn decodes_tls_plaintext() {
        let mut b = header(1, 4);
        // flags sit after role: set ADI_DATA_TLS alone.
        let at = std::mem::offset_of!(RawEventHdr, flags);
        b[at..at + 4].copy_from_slice(&DATA_TLS.to_ne_bytes());
        b.extend_from_slice(b"GET ");
        let e = RawEvent::decode(&b).expect("decode");
        assert!(e.tls && !e.after_skip);
    }

    #[test]
    fn rejects_short_inconsistent_and_unknown() {
        assert!(matches!(
            RawEvent::decode(&[0; 10]),
            Err(DecodeError::Short { len: 10, .. })
        ));
        let b = header(1, 4);
        assert!(matches!(
            RawEvent::decode(&b),
            Err(DecodeError::SizeMismatch {
                cap_len: 4,
                actual: 0
            })
        ));
        assert_eq!(
            RawEvent::decode(&header(99, 0)),
            Err(DecodeError::UnknownKind(99))
        );
        // The retired ADI_EV_ACCEPT.
        assert_eq!(
            RawEvent::decode(&header(3, 0)),
            Err(DecodeError::UnknownKind(3))
        );
    }
}
