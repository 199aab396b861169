//! TCP stream reassembly: per connection and direction, by sequence number.
//!
//! Sequence numbers are unwrapped into a 64-bit stream position relative to the next expected
//! byte (RFC 9293 section 3.4 comparisons are modulo 2^32, so a segment is "ahead" when it is
//! less than 2^31 past the next expected byte), which makes wrap-around invisible to the rest
//! of the code. Bytes are delivered once, in order: retransmitted or overlapping bytes are
//! trimmed, segments that arrive early wait in a bounded buffer, and holes that can never be
//! filled are skipped and counted.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use adi_classify::flow::{addr_bits, Role};
use adi_classify::{Direction, FlowKey};

use super::packet::{Segment, ACK, FIN, RST, SYN};
use super::{CaptureStats, EventQueue, Queued, ReassemblyLimits};

/// The connection table is looked up for every packet: foldhash, seeded per process, rather
/// than std's SipHash, which hashed both addresses of every packet.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The stream position of the first byte: leaves room below for segments up to 2^31 bytes
/// behind, so positions never underflow.
const BASE: u64 = 1 << 32;
/// Closed connections are remembered this long (capture time), so the last ACK of a close is
/// not taken for a new connection; like TIME-WAIT (2 MSL, RFC 9293 section 3.6.1).
const CLOSED_LINGER_NS: u64 = 120 * 1_000_000_000;
/// How many packets between sweeps of closed connections.
const SWEEP_EVERY: u32 = 4096;

/// A segment that arrived ahead of the next expected byte.
#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    missing: u32,
}

/// One direction of one connection.
#[derive(Debug, Default)]
struct Stream {
    /// Whether the first sequence number is known (from a SYN or the first segment seen).
    started: bool,
    /// The initial sequence number, when a SYN was seen.
    isn: Option<u32>,
    /// The sequence number of the next byte to deliver, and its stream position.
    next_seq: u32,
    next_pos: u64,
    /// Segments waiting for the bytes before them, by stream position.
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    /// The stream position of the FIN, once seen.
    fin_pos: Option<u64>,
    /// Every byte up to the FIN has been delivered or skipped.
    finished: bool,
}

/// Collects contiguous delivered bytes into one `Data` event, its bytes appended to the
/// queue's shared buffer (no allocation per event).
struct Emitter<'a> {
    key: FlowKey,
    dir: Direction,
    ts_ns: u64,
    /// Where the current run of bytes starts in `out.bytes`.
    start: usize,
    out: &'a mut EventQueue,
    stats: &'a mut CaptureStats,
}

impl<'a> Emitter<'a> {
    fn new(
        key: FlowKey,
        dir: Direction,
        ts_ns: u64,
        out: &'a mut EventQueue,
        stats: &'a mut CaptureStats,
    ) -> Self {
        Self {
            key,
            dir,
            ts_ns,
            start: out.bytes.len(),
            out,
            stats,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.stats.delivered_bytes += data.len() as u64;
        self.out.bytes.extend_from_slice(data);
    }

    /// Ends the current run of contiguous bytes (before a gap, or when done).
    fn flush(&mut self) {
        let end = self.out.bytes.len();
        if end > self.start {
            self.out.events.push_back(Queued::Data {
                key: self.key,
                dir: self.dir,
                ts_ns: self.ts_ns,
                payload: self.start..end,
            });
            self.start = end;
        }
    }
}

impl Stream {
    /// The stream position of sequence number `seq`.
    fn pos(&self, seq: u32) -> u64 {
        // A signed 32-bit distance (RFC 9293 modular comparison); BASE keeps it non-negative.
        let delta = i64::from(seq.wrapping_sub(self.next_seq).cast_signed());
        self.next_pos.saturating_add_signed(delta)
    }

    /// Moves the next expected byte to `pos` (forward only).
    fn advance_to(&mut self, pos: u64) {
        if pos > self.next_pos {
            self.next_seq = self.next_seq.wrapping_add((pos - self.next_pos) as u32);
            self.next_pos = pos;
        }
    }

    /// Handles one segment of this direction.
    fn on_segment(&mut self, seg: &Segment<'_>, limits: ReassemblyLimits, em: &mut Emitter<'_>) {
        let syn = seg.flags & SYN != 0;
        // The SYN takes one sequence number; data (TCP Fast Open) starts after it.
        let data_seq = if syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if !self.started {
            self.started = true;
            self.next_seq = data_seq;
            self.next_pos = BASE;
        }
        if syn && self.isn.is_none() {
            self.isn = Some(seg.seq);
        }
        let len = seg.payload.len() as u64;
        if self.finished {
            em.stats.retransmitted_bytes += len;
            return;
        }
        let start = self.pos(data_seq);
        let end = start + len + u64::from(seg.missing);
        if seg.flags & FIN != 0 && self.fin_pos.is_none() {
            self.fin_pos = Some(end);
        }
        if end > start {
            self.on_data(start, seg.payload, seg.missing, limits, em);
        }
        self.check_fin();
    }

    /// Places bytes `[start, start + data.len())` followed by `missing` uncaptured bytes.
    fn on_data(
        &mut self,
        start: u64,
        data: &[u8],
        missing: u32,
        limits: ReassemblyLimits,
        em: &mut Emitter<'_>,
    ) {
        let end = start + data.len() as u64 + u64::from(missing);
        let mut counted_ooo = false;
        loop {
            if end <= self.next_pos {
                em.stats.retransmitted_bytes += data.len() as u64;
                return;
            }
            if start <= self.next_pos {
                self.deliver(start, data, missing, em);
                self.drain(em);
                return;
            }
            if !counted_ooo {
                em.stats.out_of_order_segments += 1;
                counted_ooo = true;
            }
            let fits = self.pending_bytes + data.len() <= limits.max_buffered_bytes
                && self.pending.len() < limits.max_buffered_segments;
            if fits {
                self.insert(start, data, missing, em.stats);
                return;
            }
            // The buffer is full: give up on the oldest hole, deliver what follows it, retry.
            let hole_end = self
                .pending
                .keys()
                .next()
                .copied()
                .unwrap_or(start)
                .min(start);
            em.stats.buffer_overflow_bytes += hole_end.saturating_sub(self.next_pos);
            em.flush();
            self.advance_to(hole_end);
            self.drain(em);
        }
    }

    /// Buffers an early segment. Of two with the same start the longer is kept; the other's
    /// bytes count as retransmitted.
    fn insert(&mut self, start: u64, data: &[u8], missing: u32, stats: &mut CaptureStats) {
        let end = start + data.len() as u64 + u64::from(missing);
        if let Some(old) = self.pending.get(&start) {
            if start + old.data.len() as u64 + u64::from(old.missing) >= end {
                stats.retransmitted_bytes += data.len() as u64;
                return;
            }
            stats.retransmitted_bytes += old.data.len() as u64;
            self.pending_bytes = self.pending_bytes.saturating_sub(old.data.len());
        }
        self.pending_bytes += data.len();
        self.pending.insert(
            start,
            Pending {
                data: data.to_vec(),
                missing,
            },
        );
    }

    /// Delivers a segment that starts at or before the next expected byte.
    fn deliver(&mut self, start: u64, data: &[u8], missing: u32, em: &mut Emitter<'_>) {
        let skip = self.next_pos - start;
        let data_len = data.len() as u64;
        if skip >= data_len {
            // Only part of the uncaptured tail is new.
            em.stats.retransmitted_bytes += data_len;
            let end = start + data_len + u64::from(missing);
            em.stats.gap_bytes += end - self.next_pos;
            em.flush();
            self.advance_to(end);
            return;
        }
        em.stats.retransmitted_bytes += skip;
        let fresh = data.get(skip as usize..).unwrap_or_default();
        em.push(fresh);
        self.advance_to(start + data_len);
        if missing > 0 {
            em.stats.gap_bytes += u64::from(missing);
            em.flush();
            self.advance_to(start + data_len + u64::from(missing));
        }
    }

    /// Delivers waiting segments that have become contiguous.
    fn drain(&mut self, em: &mut Emitter<'_>) {
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > self.next_pos {
                break;
            }
            let seg = entry.remove();
            self.pending_bytes = self.pending_bytes.saturating_sub(seg.data.len());
            let end = start + seg.data.len() as u64 + u64::from(seg.missing);
            if end <= self.next_pos {
                em.stats.retransmitted_bytes += seg.data.len() as u64;
            } else {
                self.deliver(start, &seg.data, seg.missing, em);
            }
        }
    }

    /// Skips every remaining hole and delivers everything buffered (the connection is over).
    fn flush_all(&mut self, em: &mut Emitter<'_>) {
        while let Some(&start) = self.pending.keys().next() {
            if start > self.next_pos {
                em.stats.gap_bytes += start - self.next_pos;
                em.flush();
                self.advance_to(start);
            }
            self.drain(em);
        }
        em.flush();
        self.pending_bytes = 0;
    }

    fn check_fin(&mut self) {
        if let Some(fin) = self.fin_pos {
            if self.next_pos >= fin {
                self.finished = true;
                // The FIN takes one sequence number.
                self.advance_to(fin + 1);
            }
        }
    }
}

/// One TCP connection.
#[derive(Debug)]
struct Conn {
    /// Creation order, to close leftovers deterministically.
    id: u64,
    key: FlowKey,
    /// Indexed by [`Direction::index`].
    streams: [Stream; 2],
    fin_seen: [bool; 2],
    /// When the connection closed (capture time); a closed entry only absorbs stragglers.
    closed_at: Option<u64>,
}

impl Conn {
    fn new(id: u64, client: SocketAddr, server: SocketAddr) -> Self {
        Self {
            id,
            key: FlowKey {
                pid: 0,
                role: Role::Wire,
                client,
                server,
            },
            streams: [Stream::default(), Stream::default()],
            fin_seen: [false; 2],
            closed_at: None,
        }
    }

    /// Flushes both directions and emits `Closed`.
    fn close(&mut self, ts_ns: u64, out: &mut EventQueue, stats: &mut CaptureStats) {
        for dir in [Direction::ToServer, Direction::ToClient] {
            let stream = &mut self.streams[dir.index()];
            let mut em = Emitter::new(self.key, dir, ts_ns, &mut *out, &mut *stats);
            stream.flush_all(&mut em);
            // Free the buffers; the entry lingers only to recognise stragglers.
            *stream = Stream::default();
        }
        out.events.push_back(Queued::Closed {
            key: self.key,
            ts_ns,
        });
        self.closed_at = Some(ts_ns);
    }
}

/// A connection's endpoints, lower first, so that both directions map to the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ConnKey(SocketAddr, SocketAddr);

/// Two wide writes instead of the dozen a derived hash makes: looked up for every packet.
impl Hash for ConnKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(addr_bits(self.0));
        state.write_u128(addr_bits(self.1));
    }
}

fn conn_key(a: SocketAddr, b: SocketAddr) -> ConnKey {
    if a <= b {
        ConnKey(a, b)
    } else {
        ConnKey(b, a)
    }
}

/// The connection table.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    conns: HashMap<ConnKey, Conn>,
    next_id: u64,
    limits: ReassemblyLimits,
    last_ts_ns: u64,
    since_sweep: u32,
}

impl Reassembler {
    pub(crate) fn new(limits: ReassemblyLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Handles one segment captured at `ts_ns`, appending events to `out`.
    pub(crate) fn on_segment(
        &mut self,
        seg: &Segment<'_>,
        ts_ns: u64,
        out: &mut EventQueue,
        stats: &mut CaptureStats,
    ) {
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.sweep();
        }
        let syn = seg.flags & SYN != 0;
        let ack = seg.flags & ACK != 0;
        let rst = seg.flags & RST != 0;
        let key = conn_key(seg.src, seg.dst);
        let existing = self.conns.get_mut(&key);
        let replace = match existing {
            None => {
                if rst {
                    // A reset for a connection never seen: nothing to end.
                    return;
                }
                true
            }
            Some(conn) if conn.closed_at.is_some() => {
                if !syn || ack {
                    // A straggler after close (last ACK, retransmitted FIN, late data).
                    stats.retransmitted_bytes += seg.payload.len() as u64;
                    return;
                }
                // The 4-tuple is reused: a new connection.
                true
            }
            Some(conn) => {
                // A new SYN from the client side with another ISN: the old connection is over
                // even though we never saw it end.
                let client_stream = &conn.streams[Direction::ToServer.index()];
                if syn
                    && !ack
                    && conn.key.client == seg.src
                    && client_stream.isn.is_some_and(|isn| isn != seg.seq)
                {
                    conn.close(ts_ns, out, stats);
                    true
                } else {
                    false
                }
            }
        };
        if replace {
            let (client, server) = pick_client(seg);
            self.next_id += 1;
            stats.connections += 1;
            let conn = Conn::new(self.next_id, client, server);
            if syn {
                // Its opening is in the capture; without one, it was joined mid-stream.
                out.events.push_back(Queued::Opened {
                    key: conn.key,
                    ts_ns,
                });
            }
            self.conns.insert(key, conn);
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let dir = if seg.src == conn.key.client {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let mut em = Emitter::new(conn.key, dir, ts_ns, &mut *out, &mut *stats);
        conn.streams[dir.index()].on_segment(seg, self.limits, &mut em);
        em.flush();
        if seg.flags & FIN != 0 {
            conn.fin_seen[dir.index()] = true;
        }
        if rst || conn.fin_seen == [true, true] {
            conn.close(ts_ns, out, stats);
        }
    }

    /// Ends every open connection (end of input): flushes what is buffered, skipping holes,
    /// and emits `Closed` for each, in the order the connections were first seen.
    pub(crate) fn finish(&mut self, out: &mut EventQueue, stats: &mut CaptureStats) {
        let mut open: Vec<Conn> = self
            .conns
            .drain()
            .map(|(_, c)| c)
            .filter(|c| c.closed_at.is_none())
            .collect();
        open.sort_by_key(|c| c.id);
        for mut conn in open {
            conn.close(self.last_ts_ns, out, stats);
        }
    }

    /// Forgets connections closed long enough ago that no straggler is expected.
    fn sweep(&mut self) {
        let now = self.last_ts_ns;
        self.conns.retain(|_, c| {
            c.closed_at
                .is_none_or(|t| now.saturating_sub(t) < CLOSED_LINGER_NS)
        });
    }
}

/// Decides who is the client from the first segment of a connection: the sender of a SYN, the
/// receiver of a SYN-ACK, else the side with the larger (ephemeral) port, ties going to the
/// lower address.
fn pick_client(seg: &Segment<'_>) -> (SocketAddr, SocketAddr) {
    let syn = seg.flags & SYN != 0;
    let ack = seg.flags & ACK != 0;
    let src_is_client = match (syn, ack) {
        (true, false) => true,
        (true, true) => false,
        _ => match seg.src.port().cmp(&seg.dst.port()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => seg.src <= seg.dst,
        },
    };
    if src_is_client {
        (seg.src, seg.dst)
    } else {
        (seg.dst, seg.src)
    }
}
