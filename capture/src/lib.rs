//! Offline capture source: pcap and pcapng files, reassembled into TCP byte streams.
//!
//! [`CaptureReader`] streams any [`Read`] (files may be many GB; one record is in memory at a
//! time), decodes each packet down to TCP and reassembles every connection in both directions.
//! It yields [`CaptureEvent::Data`] with in-order bytes and [`CaptureEvent::Closed`] when a
//! connection ends, in capture order. [`CaptureReader::next_ref`] yields the same events with
//! their bytes borrowed from the reader ([`CaptureEventRef`]), which allocates nothing per
//! event: what `adi classify` reads a large capture with.
//!
//! - **Formats:** pcap (both byte orders, microsecond and nanosecond magic) and pcapng (several
//!   sections and interfaces, `if_tsresol`, `if_tsoffset`; Enhanced, Simple and obsolete Packet
//!   Blocks; other blocks skipped). [`is_capture_magic`] tells a capture from a raw payload.
//! - **Link types:** Ethernet with 802.1Q/802.1ad tags, Linux cooked SLL and SLL2, raw IP
//!   (101, 12, 14, 228, 229), BSD loopback NULL and LOOP.
//! - **Network:** IPv4 (options, padding trimmed by total length) and IPv6 (hop-by-hop,
//!   routing, destination-options, AH headers skipped). IP fragments are counted, not
//!   reassembled. Only TCP is decoded; everything else is counted in
//!   [`CaptureStats::non_tcp`].
//! - **Reassembly:** by sequence number with wrap-around, retransmissions and overlaps trimmed
//!   (no byte is delivered twice), early segments buffered up to [`ReassemblyLimits`]. A
//!   capture that starts mid-connection starts each direction at its first segment (and says
//!   no `Opened` for it: its opening was not seen). The SYN sender is the client; without a SYN, the side with the larger port (ties: the lower
//!   address).
//! - **Ends:** a connection closes on an RST or once both FINs are seen; holes that can
//!   never be filled are skipped (counted in [`CaptureStats::gap_bytes`]) and what follows
//!   them delivered. At the end of the input every connection still open is flushed the same
//!   way and gets a `Closed` too, so each connection yields zero or more `Data` and then
//!   exactly one `Closed`. After an error, open connections are flushed and closed, then the
//!   error is yielded last and the iterator ends.
//!
//! Nothing is dropped silently: [`CaptureReader::stats`] counts every packet that did not
//! become stream bytes and every byte skipped.

mod file;
mod packet;
mod reassembly;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;

use adi_classify::{Direction, FlowKey};

use file::RecordReader;
use packet::Decoded;
use reassembly::Reassembler;

pub use file::{MAX_BLOCK_LEN, MAX_CAPLEN};

/// One thing learnt from a capture. `P` holds a `Data` event's bytes: owned by the event (the
/// iterator's `Vec<u8>`), borrowed from the reader ([`CaptureEventRef`]), or, inside the
/// reader, a range of its byte buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureEvent<P = Vec<u8>> {
    /// A connection's opening (its SYN or SYN-ACK) is in the capture, before its first
    /// `Data`. A connection without one was already open when the capture began.
    Opened {
        /// The connection (`pid` 0, role [`adi_classify::flow::Role::Wire`]).
        key: FlowKey,
        /// Capture time of that packet.
        ts_ns: u64,
    },
    /// Reassembled in-order bytes of one direction of one connection.
    Data {
        /// The connection (`pid` 0, role [`adi_classify::flow::Role::Wire`]).
        key: FlowKey,
        /// Which way the bytes travelled.
        dir: Direction,
        /// Capture time of the packet that made these bytes deliverable, in nanoseconds since
        /// the Unix epoch.
        ts_ns: u64,
        /// The bytes; never empty. Consecutive `Data` of one direction are contiguous unless
        /// a gap was counted between them.
        payload: P,
    },
    /// The connection ended (FIN both ways, RST, a new SYN on its 4-tuple, or the end of the
    /// input), after its last `Data`.
    Closed {
        /// The connection.
        key: FlowKey,
        /// Capture time of the packet that ended it (the last packet, at end of input).
        ts_ns: u64,
    },
}

/// A [`CaptureEvent`] whose bytes are borrowed from the reader
/// ([`CaptureReader::next_ref`]): no allocation per event.
pub type CaptureEventRef<'a> = CaptureEvent<&'a [u8]>;

impl<P> CaptureEvent<P> {
    /// The same event with its bytes turned into another form.
    pub fn map_payload<Q>(self, f: impl FnOnce(P) -> Q) -> CaptureEvent<Q> {
        match self {
            Self::Opened { key, ts_ns } => CaptureEvent::Opened { key, ts_ns },
            Self::Data {
                key,
                dir,
                ts_ns,
                payload,
            } => CaptureEvent::Data {
                key,
                dir,
                ts_ns,
                payload: f(payload),
            },
            Self::Closed { key, ts_ns } => CaptureEvent::Closed { key, ts_ns },
        }
    }
}

/// An event waiting to be yielded; `Data` bytes are a range of [`EventQueue::bytes`].
pub(crate) type Queued = CaptureEvent<Range<usize>>;

/// The events one packet (or the end of the input) produced, in order, and their bytes in one
/// buffer reused for the whole capture.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    pub(crate) events: VecDeque<Queued>,
    pub(crate) bytes: Vec<u8>,
}

/// The container format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap format.
    Pcap,
    /// pcapng.
    Pcapng,
}

/// Counters for everything read, so that nothing is dropped silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaptureStats {
    /// Packet records read.
    pub packets: u64,
    /// Captured bytes of those packets (link headers included).
    pub bytes: u64,
    /// Packets that are not TCP over IPv4/IPv6 (ARP, UDP, ICMP, …).
    pub non_tcp: u64,
    /// IP fragments (not reassembled, their bytes not delivered).
    pub ip_fragments: u64,
    /// Packets captured shorter than they were on the wire (snaplen); their missing payload
    /// is counted in `gap_bytes`.
    pub truncated_packets: u64,
    /// Packets whose headers are malformed or cut short.
    pub decode_errors: u64,
    /// pcapng packets on an interface whose link type is not supported.
    pub unsupported_link_packets: u64,
    /// TCP segments that arrived ahead of a hole and had to wait.
    pub out_of_order_segments: u64,
    /// Payload bytes already delivered (retransmissions, overlaps, data after close).
    pub retransmitted_bytes: u64,
    /// Stream bytes never captured, skipped at close, end of input, or after a truncated
    /// packet.
    pub gap_bytes: u64,
    /// Stream bytes skipped because the out-of-order buffer was full (not in `gap_bytes`).
    pub buffer_overflow_bytes: u64,
    /// Payload bytes delivered in `Data` events.
    pub delivered_bytes: u64,
    /// TCP connections seen (a reused 4-tuple counts again).
    pub connections: u64,
}

/// Bounds on the bytes buffered while waiting for a hole to fill, per direction of each
/// connection. When either is reached, the oldest hole is skipped
/// ([`CaptureStats::buffer_overflow_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Payload bytes buffered (default 1 MiB).
    pub max_buffered_bytes: usize,
    /// Segments buffered (default 1024).
    pub max_buffered_segments: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_buffered_bytes: 1024 * 1024,
            max_buffered_segments: 1024,
        }
    }
}

/// Reading a capture failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The underlying reader failed.
    #[error("cannot read the capture")]
    Io {
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The input does not start with a pcap or pcapng magic number.
    #[error("not a pcap or pcapng file (unknown magic number)")]
    NotACapture,
    /// The input ends inside the file header (pcap) or first Section Header Block (pcapng).
    #[error("truncated capture header at byte {offset}: the file ends mid-header")]
    TruncatedHeader {
        /// Where the cut header starts.
        offset: u64,
    },
    /// The input ends inside a record or block (a file cut while being written or copied).
    #[error("truncated record at byte {offset}: the file ends mid-record")]
    TruncatedRecord {
        /// Where the cut record starts.
        offset: u64,
    },
    /// A record or block is inconsistent; reading cannot resynchronise after it.
    #[error("corrupt record at byte {offset}: {reason}")]
    CorruptRecord {
        /// Where the record starts.
        offset: u64,
        /// What is wrong, e.g. "block length not a multiple of 4".
        reason: &'static str,
    },
    /// A length field exceeds what this reader accepts ([`MAX_CAPLEN`], [`MAX_BLOCK_LEN`]).
    #[error("corrupt record at byte {offset}: {what} {len} exceeds {max}")]
    RecordTooLong {
        /// Where the record starts.
        offset: u64,
        /// Which length, e.g. "captured length".
        what: &'static str,
        /// The length found.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The pcap file's link type has no decoder here.
    #[error("unsupported link type {link_type} (supported: Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback)")]
    UnsupportedLinkType {
        /// The LINKTYPE_ value (<https://www.tcpdump.org/linktypes.html>).
        link_type: u32,
    },
    /// The file header announces a format version this reader does not know.
    #[error("unsupported {format} version {major}.{minor}")]
    UnsupportedVersion {
        /// `pcap` or `pcapng`.
        format: &'static str,
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
}

/// Whether `first4` (the first bytes of a file) is a pcap or pcapng magic number, in either
/// byte order. Fewer than 4 bytes is never a capture.
pub fn is_capture_magic(first4: &[u8]) -> bool {
    let Some(magic) = first4.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
        return false;
    };
    [u32::from_le_bytes(magic), u32::from_be_bytes(magic)]
        .iter()
        .any(|m| {
            matches!(
                *m,
                file::PCAP_MAGIC_US | file::PCAP_MAGIC_NS | file::PCAPNG_SHB_MAGIC
            )
        })
}

/// Reads a capture and yields reassembled TCP streams; see the [module docs](self).
///
/// ```no_run
/// use adi_capture::{CaptureEvent, CaptureReader};
/// let file = std::fs::File::open("trace.pcapng")?;
/// let mut reader = CaptureReader::new(file)?;
/// for event in &mut reader {
///     match event? {
///         CaptureEvent::Opened { key, .. } => println!("{key:?} opened"),
///         CaptureEvent::Data { key, dir, payload, .. } => println!("{key:?} {dir:?} {} bytes", payload.len()),
///         CaptureEvent::Closed { key, .. } => println!("{key:?} closed"),
///     }
/// }
/// eprintln!("{:?}", reader.stats());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CaptureReader<R: Read> {
    records: RecordReader<R>,
    reassembler: Reassembler,
    stats: CaptureStats,
    queue: EventQueue,
    error: Option<CaptureError>,
    done: bool,
}

impl<R: Read> std::fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("records", &self.records)
            .field("stats", &self.stats)
            .field("queued", &self.queue.events.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header. The reader is buffered internally.
    ///
    /// # Errors
    /// [`CaptureError::NotACapture`] when the magic number is unknown, and the header errors
    /// ([`CaptureError::TruncatedHeader`], [`CaptureError::UnsupportedLinkType`], …).
    pub fn new(reader: R) -> Result<Self, CaptureError> {
        Self::with_limits(reader, ReassemblyLimits::default())
    }

    /// Like [`CaptureReader::new`] with other reassembly buffer bounds.
    ///
    /// # Errors
    /// As [`CaptureReader::new`].
    pub fn with_limits(reader: R, limits: ReassemblyLimits) -> Result<Self, CaptureError> {
        Ok(Self {
            records: RecordReader::open(reader)?,
            reassembler: Reassembler::new(limits),
            stats: CaptureStats::default(),
            queue: EventQueue::default(),
            error: None,
            done: false,
        })
    }

    /// The counters so far (final once the iterator has returned `None`).
    pub fn stats(&self) -> CaptureStats {
        self.stats
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        self.records.format()
    }

    /// Bytes of the input consumed so far.
    pub fn offset(&self) -> u64 {
        self.records.offset()
    }

    /// The next event with its bytes borrowed from the reader, which reuses one buffer for
    /// them: the same events as the iterator, without an allocation per event. `None` at
    /// the end (after an error, which comes last).
    pub fn next_ref(&mut self) -> Option<Result<CaptureEventRef<'_>, CaptureError>> {
        loop {
            if let Some(event) = self.queue.events.pop_front() {
                let bytes = &self.queue.bytes;
                return Some(Ok(
                    event.map_payload(|range| bytes.get(range).unwrap_or_default())
                ));
            }
            if let Some(error) = self.error.take() {
                return Some(Err(error));
            }
            if self.done {
                return None;
            }
            // Every event of the last packet has been taken: its bytes are no longer borrowed.
            self.queue.bytes.clear();
            self.step();
        }
    }

    /// Reads one record and feeds it through decoding and reassembly.
    fn step(&mut self) {
        let record = match self.records.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.reassembler.finish(&mut self.queue, &mut self.stats);
                self.done = true;
                return;
            }
            Err(error) => {
                self.reassembler.finish(&mut self.queue, &mut self.stats);
                self.error = Some(error);
                self.done = true;
                return;
            }
        };
        let stats = &mut self.stats;
        stats.packets += 1;
        stats.bytes += record.data.len() as u64;
        if (record.data.len() as u64) < u64::from(record.orig_len) {
            stats.truncated_packets += 1;
        }
        match packet::decode(record.link_type, record.data) {
            Decoded::Tcp(segment) => {
                self.reassembler
                    .on_segment(&segment, record.ts_ns, &mut self.queue, stats);
            }
            Decoded::NonTcp => stats.non_tcp += 1,
            Decoded::Fragment => stats.ip_fragments += 1,
            Decoded::Malformed(_) => stats.decode_errors += 1,
            Decoded::UnsupportedLink => stats.unsupported_link_packets += 1,
        }
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<CaptureEvent, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_ref()
            .map(|event| event.map(|e| e.map_payload(<[u8]>::to_vec)))
    }
}

impl<R: Read> std::iter::FusedIterator for CaptureReader<R> {}
