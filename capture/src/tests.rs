//! Tests: hand-built packets and files (a comment per field), real loopback captures from
//! `capture/tests/captures/` (see its README.md), and property tests that nothing panics and
//! that any segment order reassembles to the bytes sent.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use adi_classify::flow::Role;
use adi_classify::{Direction, FlowKey};
use proptest::prelude::*;

use super::packet::{ACK, FIN, RST, SYN};
use super::{
    is_capture_magic, CaptureError, CaptureEvent, CaptureFormat, CaptureReader, CaptureStats,
    ReassemblyLimits,
};

const PSH_ACK: u8 = 0x18;

// ---------------------------------------------------------------------------------------
// Builders

/// A 20-byte TCP header without options.
fn tcp_header(sport: u16, dport: u16, seq: u32, flags: u8) -> Vec<u8> {
    let mut h = Vec::with_capacity(20);
    h.extend(sport.to_be_bytes()); // source port
    h.extend(dport.to_be_bytes()); // destination port
    h.extend(seq.to_be_bytes()); // sequence number
    h.extend(0u32.to_be_bytes()); // acknowledgment number (unused by reassembly)
    h.push(5 << 4); // data offset 5 words, reserved bits 0
    h.push(flags); // CWR ECE URG ACK PSH RST SYN FIN
    h.extend(65535u16.to_be_bytes()); // window
    h.extend([0, 0]); // checksum (not verified)
    h.extend([0, 0]); // urgent pointer
    h
}

/// An IPv4 packet carrying one TCP segment.
fn ipv4_tcp(src: SocketAddr, dst: SocketAddr, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let total = u16::try_from(40 + payload.len()).expect("test packet fits");
    let mut p = vec![
        0x45, // version 4, IHL 5 (20 bytes)
        0x00, // DSCP, ECN
    ];
    p.extend(total.to_be_bytes()); // total length
    p.extend([0x12, 0x34]); // identification
    p.extend([0x40, 0x00]); // flags DF, fragment offset 0
    p.push(64); // TTL
    p.push(6); // protocol: TCP
    p.extend([0, 0]); // header checksum (not verified)
    p.extend(src.ip().octets()); // source address
    p.extend(dst.ip().octets()); // destination address
    p.extend(tcp_header(src.port(), dst.port(), seq, flags));
    p.extend(payload);
    p
}

/// An IPv6 packet carrying one TCP segment, optionally behind a hop-by-hop and a
/// destination-options header.
fn ipv6_tcp(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    flags: u8,
    payload: &[u8],
    ext: bool,
) -> Vec<u8> {
    let (SocketAddr::V6(src), SocketAddr::V6(dst)) = (src, dst) else {
        panic!("IPv6 only")
    };
    let mut body = Vec::new();
    if ext {
        body.extend([
            60, // hop-by-hop: next header = destination options
            0,  // hdr ext len: 0 → 8 bytes
            1, 4, 0, 0, 0, 0, // PadN option, 4 bytes of padding
        ]);
        body.extend([
            6, // destination options: next header = TCP
            1, // hdr ext len: 1 → 16 bytes
            1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // PadN option, 12 bytes of padding
        ]);
    }
    body.extend(tcp_header(src.port(), dst.port(), seq, flags));
    body.extend(payload);
    let mut p = vec![0x60, 0, 0, 0]; // version 6, traffic class 0, flow label 0
    p.extend(u16::try_from(body.len()).expect("fits").to_be_bytes()); // payload length
    p.push(if ext { 0 } else { 6 }); // next header: hop-by-hop or TCP
    p.push(64); // hop limit
    p.extend(src.ip().octets()); // source address
    p.extend(dst.ip().octets()); // destination address
    p.extend(body);
    p
}

/// An Ethernet frame around an IP packet.
fn ethernet(ethertype: u16, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02]; // destination MAC
    f.extend([0x02, 0, 0, 0, 0, 0x01]); // source MAC
    f.extend(ethertype.to_be_bytes()); // EtherType
    f.extend(packet);
    f
}

fn ip_tcp(src: SocketAddr, dst: SocketAddr, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    match src {
        SocketAddr::V4(_) => ipv4_tcp(src, dst, seq, flags, payload),
        SocketAddr::V6(_) => ipv6_tcp(src, dst, seq, flags, payload, false),
    }
}

fn eth_tcp(src: SocketAddr, dst: SocketAddr, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let ethertype = if src.is_ipv4() { 0x0800 } else { 0x86dd };
    ethernet(ethertype, &ip_tcp(src, dst, seq, flags, payload))
}

/// One pcap record: timestamp, captured bytes, original length.
struct Rec {
    ts_ns: u64,
    data: Vec<u8>,
    orig_len: u32,
}

fn rec(ts_ns: u64, data: Vec<u8>) -> Rec {
    let orig_len = u32::try_from(data.len()).expect("fits");
    Rec {
        ts_ns,
        data,
        orig_len,
    }
}

/// A pcap file. `big`: big-endian; `nanos`: nanosecond magic.
fn pcap_file(big: bool, nanos: bool, link_type: u32, records: &[Rec]) -> Vec<u8> {
    let u16b = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend(u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 })); // magic
    f.extend(u16b(2)); // version major
    f.extend(u16b(4)); // version minor
    f.extend(u32b(0)); // thiszone
    f.extend(u32b(0)); // sigfigs
    f.extend(u32b(262_144)); // snaplen
    f.extend(u32b(link_type)); // link type
    for r in records {
        let sec = u32::try_from(r.ts_ns / 1_000_000_000).expect("fits");
        let frac = (r.ts_ns % 1_000_000_000) as u32;
        f.extend(u32b(sec)); // ts_sec
        f.extend(u32b(if nanos { frac } else { frac / 1000 })); // ts_usec / ts_nsec
        f.extend(u32b(u32::try_from(r.data.len()).expect("fits"))); // incl_len
        f.extend(u32b(r.orig_len)); // orig_len
        f.extend(&r.data);
    }
    f
}

/// A little-endian microsecond pcap of Ethernet frames, one second apart from t = 1 s.
fn eth_pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<Rec> = (1u64..)
        .zip(frames)
        .map(|(i, f)| rec(i * 1_000_000_000, f.clone()))
        .collect();
    pcap_file(false, false, 1, &records)
}

/// A pcapng block: type, total length, body padded to 4 bytes, total length.
fn block(big: bool, ty: u32, body: &[u8]) -> Vec<u8> {
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let padded = body.len().next_multiple_of(4);
    let total = u32::try_from(12 + padded).expect("fits");
    let mut b = Vec::new();
    b.extend(u32b(ty)); // block type
    b.extend(u32b(total)); // block total length
    b.extend(body); // body
    b.resize(8 + padded, 0); // padding
    b.extend(u32b(total)); // block total length, again
    b
}

fn shb(big: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(if big {
        0x1a2b_3c4du32.to_be_bytes()
    } else {
        0x1a2b_3c4du32.to_le_bytes()
    }); // byte-order magic
    body.extend(if big { [0, 1, 0, 0] } else { [1, 0, 0, 0] }); // version 1.0
    body.extend((-1i64).to_le_bytes()); // section length: unknown
    block(big, 0x0a0d_0d0a, &body)
}

fn idb(big: bool, link_type: u16, tsresol: Option<u8>) -> Vec<u8> {
    let u16b = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut body = Vec::new();
    body.extend(u16b(link_type)); // link type
    body.extend([0, 0]); // reserved
    body.extend(if big {
        0u32.to_be_bytes()
    } else {
        0u32.to_le_bytes()
    }); // snaplen: none
    body.extend(u16b(2)); // option if_name
    body.extend(u16b(2)); // option length
    body.extend(b"lo\0\0"); // value, padded
    if let Some(r) = tsresol {
        body.extend(u16b(9)); // option if_tsresol
        body.extend(u16b(1)); // option length
        body.extend([r, 0, 0, 0]); // value, padded
    }
    body.extend([0, 0, 0, 0]); // opt_endofopt
    block(big, 1, &body)
}

fn epb(big: bool, iface: u32, ts_units: u64, data: &[u8]) -> Vec<u8> {
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut body = Vec::new();
    body.extend(u32b(iface)); // interface id
    body.extend(u32b((ts_units >> 32) as u32)); // timestamp, high
    body.extend(u32b(ts_units as u32)); // timestamp, low
    body.extend(u32b(u32::try_from(data.len()).expect("fits"))); // captured length
    body.extend(u32b(u32::try_from(data.len()).expect("fits"))); // original length
    body.extend(data);
    block(big, 6, &body)
}

// ---------------------------------------------------------------------------------------
// Running

#[derive(Debug)]
struct Run {
    events: Vec<CaptureEvent>,
    error: Option<CaptureError>,
    stats: CaptureStats,
}

impl Run {
    /// All bytes of one direction, across connections.
    fn bytes(&self, want: Direction) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.events {
            if let CaptureEvent::Data { dir, payload, .. } = e {
                if *dir == want {
                    out.extend(payload);
                }
            }
        }
        out
    }

    fn closed(&self) -> Vec<FlowKey> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CaptureEvent::Closed { key, .. } => Some(*key),
                CaptureEvent::Opened { .. } | CaptureEvent::Data { .. } => None,
            })
            .collect()
    }

    fn keys(&self) -> Vec<FlowKey> {
        let mut keys: Vec<FlowKey> = Vec::new();
        for e in &self.events {
            let (CaptureEvent::Opened { key, .. }
            | CaptureEvent::Data { key, .. }
            | CaptureEvent::Closed { key, .. }) = e;
            if !keys.contains(key) {
                keys.push(*key);
            }
        }
        keys
    }
}

fn run_with(bytes: &[u8], limits: ReassemblyLimits) -> Run {
    let mut reader = CaptureReader::with_limits(bytes, limits).expect("capture header");
    let mut events = Vec::new();
    let mut error = None;
    for item in &mut reader {
        assert!(error.is_none(), "an error must be the last item");
        match item {
            Ok(e) => events.push(e),
            Err(e) => error = Some(e),
        }
    }
    assert!(reader.next().is_none(), "fused");
    // Every connection: at most one Opened, Data*, then exactly one Closed, and nothing
    // after it.
    let mut closed: Vec<FlowKey> = Vec::new();
    let mut started: Vec<FlowKey> = Vec::new();
    for e in &events {
        match e {
            CaptureEvent::Opened { key, .. } => {
                assert!(
                    !started.contains(key) || closed.contains(key),
                    "Opened twice for {key:?}"
                );
                started.push(*key);
            }
            CaptureEvent::Data { key, payload, .. } => {
                started.push(*key);
                assert!(!payload.is_empty());
                assert!(
                    !closed.contains(key) || events_reuse(key),
                    "Data after Closed for {key:?}"
                );
            }
            CaptureEvent::Closed { key, .. } => closed.push(*key),
        }
    }
    Run {
        events,
        error,
        stats: reader.stats(),
    }
}

/// Port-reuse tests legitimately see the same key again after `Closed`.
fn events_reuse(key: &FlowKey) -> bool {
    key.client.port() == 41_000
}

fn run(bytes: &[u8]) -> Run {
    run_with(bytes, ReassemblyLimits::default())
}

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(a), port))
}

fn key(client: SocketAddr, server: SocketAddr) -> FlowKey {
    FlowKey {
        pid: 0,
        role: Role::Wire,
        client,
        server,
    }
}

/// The usual test connection: 10.0.0.1:40000 → 10.0.0.2:80.
fn c() -> SocketAddr {
    v4([10, 0, 0, 1], 40_000)
}
fn s() -> SocketAddr {
    v4([10, 0, 0, 2], 80)
}

/// A full exchange with a handshake: ISNs `cisn` (client) and `sisn` (server).
fn exchange(cisn: u32, sisn: u32, request: &[u8], response: &[u8]) -> Vec<Vec<u8>> {
    let c1 = cisn.wrapping_add(1);
    let s1 = sisn.wrapping_add(1);
    let rq = u32::try_from(request.len()).expect("fits");
    let rs = u32::try_from(response.len()).expect("fits");
    vec![
        eth_tcp(c(), s(), cisn, SYN, b""),
        eth_tcp(s(), c(), sisn, SYN | ACK, b""),
        eth_tcp(c(), s(), c1, ACK, b""),
        eth_tcp(c(), s(), c1, PSH_ACK, request),
        eth_tcp(s(), c(), s1, PSH_ACK, response),
        eth_tcp(s(), c(), s1.wrapping_add(rs), FIN | ACK, b""),
        eth_tcp(c(), s(), c1.wrapping_add(rq), FIN | ACK, b""),
        eth_tcp(s(), c(), s1.wrapping_add(rs).wrapping_add(1), ACK, b""),
    ]
}

// ---------------------------------------------------------------------------------------
// Magic and headers

#[test]
fn capture_magic() {
    for m in [
        [0xd4, 0xc3, 0xb2, 0xa1], // pcap µs, little-endian
        [0xa1, 0xb2, 0xc3, 0xd4], // pcap µs, big-endian
        [0x4d, 0x3c, 0xb2, 0xa1], // pcap ns, little-endian
        [0xa1, 0xb2, 0x3c, 0x4d], // pcap ns, big-endian
        [0x0a, 0x0d, 0x0d, 0x0a], // pcapng SHB
    ] {
        assert!(is_capture_magic(&m), "{m:02x?}");
    }
    assert!(!is_capture_magic(b"GET "));
    assert!(!is_capture_magic(&[0xd4, 0xc3, 0xb2]));
    assert!(!is_capture_magic(b""));
}

#[test]
fn not_a_capture() {
    let err = CaptureReader::new(&b"GET / HTTP/1.1\r\n\r\n"[..]).expect_err("not a capture");
    assert!(matches!(err, CaptureError::NotACapture), "{err}");
    assert!(matches!(
        CaptureReader::new(&b""[..]),
        Err(CaptureError::NotACapture)
    ));
}

#[test]
fn truncated_header() {
    let file = eth_pcap(&[]);
    let err = CaptureReader::new(&file[..10]).expect_err("cut header");
    assert!(
        matches!(err, CaptureError::TruncatedHeader { offset: 0 }),
        "{err}"
    );
    let ng = shb(false);
    let err = CaptureReader::new(&ng[..20]).expect_err("cut SHB");
    assert!(
        matches!(err, CaptureError::TruncatedHeader { offset: 0 }),
        "{err}"
    );
}

#[test]
fn unsupported_link_type() {
    let file = pcap_file(false, false, 147, &[]); // LINKTYPE_USER0
    let err = CaptureReader::new(&file[..]).expect_err("unsupported");
    assert!(
        matches!(err, CaptureError::UnsupportedLinkType { link_type: 147 }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("unsupported link type 147"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Link types

/// One fully commented frame: Ethernet, 802.1Q tag, IPv4, TCP, 2 bytes of payload.
const VLAN_FRAME: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // destination MAC
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
    0x81, 0x00, // EtherType 802.1Q
    0x00, 0x64, // TCI: priority 0, VLAN 100
    0x08, 0x00, // inner EtherType IPv4
    0x45, 0x00, // version 4, IHL 5; DSCP/ECN
    0x00, 0x2a, // total length 42
    0x00, 0x01, 0x40, 0x00, // identification; DF, fragment offset 0
    0x40, 0x06, 0x00, 0x00, // TTL 64, protocol TCP, checksum
    0x0a, 0x00, 0x00, 0x01, // source 10.0.0.1
    0x0a, 0x00, 0x00, 0x02, // destination 10.0.0.2
    0x9c, 0x40, // source port 40000
    0x00, 0x50, // destination port 80
    0x00, 0x00, 0x10, 0x00, // sequence number 4096
    0x00, 0x00, 0x00, 0x00, // acknowledgment number
    0x50, 0x18, // data offset 5, flags PSH|ACK
    0xff, 0xff, 0x00, 0x00, 0x00, 0x00, // window, checksum, urgent pointer
    b'h', b'i', // payload
    0x00, 0x00, 0x00, 0x00, // Ethernet padding, trimmed by the IP total length
];

#[test]
fn ethernet_vlan_literal() {
    let r = run(&eth_pcap(&[VLAN_FRAME.to_vec()]));
    assert!(r.error.is_none(), "{:?}", r.error);
    // No SYN: the larger port (40000) is the client.
    assert_eq!(r.keys(), vec![key(c(), s())]);
    assert_eq!(r.bytes(Direction::ToServer), b"hi");
    assert_eq!(r.stats.packets, 1);
    assert_eq!(r.stats.connections, 1);
    // Closed at end of input.
    assert_eq!(r.closed(), vec![key(c(), s())]);
    // No opening either: the connection was already open when the capture began.
    let Some(CaptureEvent::Data { ts_ns, .. }) = r.events.first() else {
        panic!("no data first: {:?}", r.events)
    };
    assert_eq!(*ts_ns, 1_000_000_000);
}

#[test]
fn qinq_two_tags() {
    let ip = ipv4_tcp(c(), s(), 1, PSH_ACK, b"qinq");
    let mut tagged = vec![
        0x00, 0x0a, // outer TCI: VLAN 10
        0x81, 0x00, // inner EtherType 802.1Q
        0x00, 0x14, // inner TCI: VLAN 20
        0x08, 0x00, // EtherType IPv4
    ];
    tagged.extend(ip);
    let r = run(&eth_pcap(&[ethernet(0x88a8, &tagged)])); // 802.1ad outer tag
    assert_eq!(r.bytes(Direction::ToServer), b"qinq");
}

#[test]
fn every_link_type() {
    let ip4 = ipv4_tcp(c(), s(), 7, PSH_ACK, b"payload");
    let c6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 40_000));
    let s6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 80));
    let ip6 = ipv6_tcp(c6, s6, 7, PSH_ACK, b"payload", false);
    let with = |header: &[u8], ip: &[u8]| [header, ip].concat();
    let sll = |proto: u16| {
        let mut h = vec![
            0x00, 0x00, // packet type: to us
            0x03, 0x04, // ARPHRD_LOOPBACK (772)
            0x00, 0x06, // link-layer address length
            0, 0, 0, 0, 0, 0, 0, 0, // address, padded to 8
        ];
        h.extend(proto.to_be_bytes()); // protocol (EtherType)
        h
    };
    let sll2 = |proto: u16| {
        let mut h = proto.to_be_bytes().to_vec(); // protocol (EtherType)
        h.extend([0x00, 0x00]); // reserved
        h.extend(1u32.to_be_bytes()); // interface index
        h.extend([0x03, 0x04]); // ARPHRD_LOOPBACK
        h.push(0x00); // packet type
        h.push(0x06); // address length
        h.extend([0; 8]); // address, padded to 8
        h
    };
    let cases: Vec<(u32, Vec<u8>, SocketAddr)> = vec![
        (1, ethernet(0x0800, &ip4), c()),
        (1, ethernet(0x86dd, &ip6), c6),
        (113, with(&sll(0x0800), &ip4), c()),
        (113, with(&sll(0x86dd), &ip6), c6),
        (276, with(&sll2(0x0800), &ip4), c()),
        (276, with(&sll2(0x86dd), &ip6), c6),
        (101, ip4.clone(), c()),
        (101, ip6.clone(), c6),
        (12, ip4.clone(), c()),
        (14, ip6.clone(), c6),
        (228, ip4.clone(), c()),
        (229, ip6.clone(), c6),
        // NULL: family in the capturing host's order (here little-endian).
        (0, with(&2u32.to_le_bytes(), &ip4), c()), // AF_INET
        (0, with(&30u32.to_le_bytes(), &ip6), c6), // AF_INET6 (macOS)
        (0, with(&24u32.to_be_bytes(), &ip6), c6), // AF_INET6 (OpenBSD), big-endian host
        // LOOP: family in network order.
        (108, with(&2u32.to_be_bytes(), &ip4), c()),
        (108, with(&28u32.to_be_bytes(), &ip6), c6), // AF_INET6 (FreeBSD)
    ];
    for (link_type, frame, client) in cases {
        let r = run(&pcap_file(false, false, link_type, &[rec(5, frame)]));
        assert!(r.error.is_none(), "link type {link_type}: {:?}", r.error);
        assert_eq!(
            r.bytes(Direction::ToServer),
            b"payload",
            "link type {link_type}"
        );
        assert_eq!(
            r.keys().first().map(|k| k.client),
            Some(client),
            "link type {link_type}"
        );
        assert_eq!(
            r.stats.decode_errors + r.stats.non_tcp,
            0,
            "link type {link_type}"
        );
    }
}

#[test]
fn ipv6_extension_headers() {
    let c6 = SocketAddr::from(("2001:db8::1".parse::<Ipv6Addr>().expect("addr"), 50_000));
    let s6 = SocketAddr::from(("2001:db8::2".parse::<Ipv6Addr>().expect("addr"), 443));
    let frames = [
        ethernet(0x86dd, &ipv6_tcp(c6, s6, 100, SYN, b"", true)),
        ethernet(0x86dd, &ipv6_tcp(c6, s6, 101, PSH_ACK, b"over v6", true)),
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.keys(), vec![key(c6, s6)]);
    assert_eq!(r.bytes(Direction::ToServer), b"over v6");
}

#[test]
fn ipv4_options_and_padding() {
    let mut ip = ipv4_tcp(c(), s(), 1, PSH_ACK, b"opts");
    // Grow the header to IHL 6 with one 4-byte option (NOP NOP NOP EOL).
    ip[0] = 0x46; // version 4, IHL 6
    ip.splice(20..20, [1, 1, 1, 0]);
    let total = u16::try_from(ip.len()).expect("fits");
    ip[2..4].copy_from_slice(&total.to_be_bytes()); // total length
    ip.extend([0xee; 6]); // trailer bytes beyond the total length (Ethernet padding)
    let r = run(&eth_pcap(&[ethernet(0x0800, &ip)]));
    assert_eq!(r.bytes(Direction::ToServer), b"opts");
}

#[test]
fn fragments_and_non_tcp_are_counted() {
    let mut frag4 = ipv4_tcp(c(), s(), 1, PSH_ACK, b"frag");
    frag4[6] = 0x20; // flags: MF (more fragments)
    let mut frag6 = vec![0x60, 0, 0, 0, 0, 16, 44, 64]; // IPv6: payload 16, next = Fragment
    frag6.extend(Ipv6Addr::LOCALHOST.octets()); // source
    frag6.extend(Ipv6Addr::LOCALHOST.octets()); // destination
    frag6.extend([6, 0, 0x00, 0x08, 0, 0, 0, 1]); // fragment header: next TCP, offset 1
    frag6.extend([0; 8]); // fragment data
    let mut udp = ipv4_tcp(c(), s(), 1, 0, b"");
    udp[9] = 17; // protocol: UDP
    let arp = ethernet(0x0806, &[0; 28]);
    let frames = vec![
        ethernet(0x0800, &frag4),
        ethernet(0x86dd, &frag6),
        ethernet(0x0800, &udp),
        arp,
        ethernet(0x0800, &[0x45, 0x00]), // cut IPv4 header
    ];
    let r = run(&eth_pcap(&frames));
    assert!(r.events.is_empty(), "{:?}", r.events);
    assert_eq!(r.stats.ip_fragments, 2);
    assert_eq!(r.stats.non_tcp, 2);
    assert_eq!(r.stats.decode_errors, 1);
    assert_eq!(r.stats.packets, 5);
}

// ---------------------------------------------------------------------------------------
// Reassembly

#[test]
fn full_exchange_closes_once() {
    let r = run(&eth_pcap(&exchange(1000, 5000, b"request", b"response")));
    assert_eq!(r.bytes(Direction::ToServer), b"request");
    assert_eq!(r.bytes(Direction::ToClient), b"response");
    // The final ACK after both FINs does not open a new connection.
    assert_eq!(r.stats.connections, 1);
    assert_eq!(r.closed(), vec![key(c(), s())]);
    assert!(matches!(
        r.events.last(),
        Some(CaptureEvent::Closed {
            ts_ns: 7_000_000_000,
            ..
        })
    ));
    assert_eq!(r.stats.delivered_bytes, 15);
}

#[test]
fn out_of_order_segments() {
    let frames = vec![
        eth_tcp(c(), s(), 99, SYN, b""),
        eth_tcp(c(), s(), 108, PSH_ACK, b"89"),
        eth_tcp(c(), s(), 104, PSH_ACK, b"4567"),
        eth_tcp(c(), s(), 100, PSH_ACK, b"0123"),
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.bytes(Direction::ToServer), b"0123456789");
    assert_eq!(r.stats.out_of_order_segments, 2);
    assert_eq!(r.stats.gap_bytes, 0);
    // All delivered by the packet that filled the hole, in one event.
    let data: Vec<_> = r
        .events
        .iter()
        .filter(|e| matches!(e, CaptureEvent::Data { .. }))
        .collect();
    assert_eq!(data.len(), 1);
}

#[test]
fn retransmission_overlap_trimmed() {
    let frames = vec![
        eth_tcp(c(), s(), 0, SYN, b""),
        eth_tcp(c(), s(), 1, PSH_ACK, b"abcdefghij"), // bytes 0..10
        eth_tcp(c(), s(), 6, PSH_ACK, b"fghijKLMNO"), // bytes 5..15: 5 old, 5 new
        eth_tcp(c(), s(), 1, PSH_ACK, b"abc"),        // fully old
        eth_tcp(c(), s(), 0, SYN, b""),               // retransmitted SYN
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.bytes(Direction::ToServer), b"abcdefghijKLMNO");
    assert_eq!(r.stats.retransmitted_bytes, 8);
    assert_eq!(r.stats.connections, 1);
}

#[test]
fn overlapping_out_of_order_segments() {
    let frames = vec![
        eth_tcp(c(), s(), 0, SYN, b""),
        eth_tcp(c(), s(), 5, PSH_ACK, b"45678"), // bytes 4..9, early
        eth_tcp(c(), s(), 7, PSH_ACK, b"6789"),  // bytes 6..10, early, overlapping
        eth_tcp(c(), s(), 1, PSH_ACK, b"012345"), // bytes 0..6, fills the hole
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.bytes(Direction::ToServer), b"0123456789");
}

#[test]
fn sequence_wrap_around() {
    let isn = u32::MAX - 4; // data starts at 2^32 - 4 and crosses zero
    let frames = vec![
        eth_tcp(c(), s(), isn, SYN, b""),
        eth_tcp(c(), s(), isn.wrapping_add(9), PSH_ACK, b"89ab"), // early, after the wrap
        eth_tcp(c(), s(), isn.wrapping_add(1), PSH_ACK, b"01234567"), // crosses zero
        eth_tcp(c(), s(), isn.wrapping_add(5), PSH_ACK, b"4567"), // retransmission across zero
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.bytes(Direction::ToServer), b"0123456789ab");
    assert_eq!(r.stats.retransmitted_bytes, 4);
    let r = run(&eth_pcap(&exchange(
        u32::MAX,
        u32::MAX - 1,
        b"wrap request",
        b"wrap response",
    )));
    assert_eq!(r.bytes(Direction::ToServer), b"wrap request");
    assert_eq!(r.bytes(Direction::ToClient), b"wrap response");
    assert_eq!(r.closed().len(), 1);
    assert_eq!(r.stats.connections, 1);
}

#[test]
fn rst_closes_after_data() {
    let frames = vec![
        eth_tcp(c(), s(), 10, SYN, b""),
        eth_tcp(c(), s(), 11, PSH_ACK, b"hello"),
        eth_tcp(s(), c(), 500, RST | ACK, b""),
        eth_tcp(c(), s(), 16, PSH_ACK, b"late"), // after the reset: ignored, counted
        eth_tcp(s(), c(), 900, RST, b""),        // a reset for nothing known
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.bytes(Direction::ToServer), b"hello");
    assert!(matches!(
        r.events.as_slice(),
        [
            CaptureEvent::Opened {
                ts_ns: 1_000_000_000,
                ..
            },
            CaptureEvent::Data { .. },
            CaptureEvent::Closed {
                ts_ns: 3_000_000_000,
                ..
            }
        ]
    ));
    assert_eq!(r.stats.connections, 1);
    assert_eq!(r.stats.retransmitted_bytes, 4);
}

#[test]
fn mid_connection_start() {
    let server = v4([192, 168, 1, 1], 6379);
    let client = v4([192, 168, 1, 2], 52_000);
    let frames = vec![
        // The server speaks first in the capture; the client has the ephemeral port.
        eth_tcp(server, client, 7000, PSH_ACK, b"+OK\r\n"),
        eth_tcp(client, server, 3000, PSH_ACK, b"PING\r\n"),
        eth_tcp(server, client, 7005, PSH_ACK, b"+PONG\r\n"),
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.keys(), vec![key(client, server)]);
    assert_eq!(r.bytes(Direction::ToServer), b"PING\r\n");
    assert_eq!(r.bytes(Direction::ToClient), b"+OK\r\n+PONG\r\n");
}

#[test]
fn client_from_syn_ack_and_port_tie() {
    // Only the SYN-ACK is seen: its receiver is the client even with the smaller port.
    let server = v4([10, 0, 0, 9], 50_000);
    let client = v4([10, 0, 0, 8], 1_000);
    let r = run(&eth_pcap(&[
        eth_tcp(server, client, 1, SYN | ACK, b""),
        eth_tcp(client, server, 5, PSH_ACK, b"x"),
    ]));
    assert_eq!(r.keys(), vec![key(client, server)]);
    // Same ports, no SYN: the lower address is the client.
    let a = v4([10, 0, 0, 1], 7000);
    let b = v4([10, 0, 0, 2], 7000);
    let r = run(&eth_pcap(&[eth_tcp(b, a, 1, PSH_ACK, b"y")]));
    assert_eq!(r.keys(), vec![key(a, b)]);
    assert_eq!(r.bytes(Direction::ToClient), b"y");
}

#[test]
fn port_reuse_after_close_is_a_new_connection() {
    let client = v4([10, 0, 0, 1], 41_000);
    let frames = vec![
        eth_tcp(client, s(), 100, SYN, b""),
        eth_tcp(client, s(), 101, PSH_ACK, b"first"),
        eth_tcp(client, s(), 106, FIN | ACK, b""),
        eth_tcp(s(), client, 900, FIN | ACK, b""),
        eth_tcp(client, s(), 107, ACK, b""),
        eth_tcp(client, s(), 5000, SYN, b""), // same 4-tuple, new ISN
        eth_tcp(client, s(), 5001, PSH_ACK, b"second"),
        eth_tcp(s(), client, 7000, RST, b""),
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.stats.connections, 2);
    assert_eq!(r.closed(), vec![key(client, s()), key(client, s())]);
    assert_eq!(r.bytes(Direction::ToServer), b"firstsecond");
    let kinds: Vec<&str> = r
        .events
        .iter()
        .map(|e| match e {
            CaptureEvent::Opened { .. } => "opened",
            CaptureEvent::Data { .. } => "data",
            CaptureEvent::Closed { .. } => "closed",
        })
        .collect();
    assert_eq!(
        kinds,
        ["opened", "data", "closed", "opened", "data", "closed"]
    );
}

#[test]
fn new_syn_on_open_connection_replaces_it() {
    let client = v4([10, 0, 0, 1], 41_000);
    let frames = vec![
        eth_tcp(client, s(), 100, SYN, b""),
        eth_tcp(client, s(), 101, PSH_ACK, b"old"),
        eth_tcp(client, s(), 100, SYN, b""), // retransmitted SYN: same connection
        eth_tcp(client, s(), 9000, SYN, b""), // another ISN: the old one is over
        eth_tcp(client, s(), 9001, PSH_ACK, b"new"),
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.stats.connections, 2);
    assert_eq!(r.closed().len(), 2);
    assert_eq!(r.bytes(Direction::ToServer), b"oldnew");
}

#[test]
fn gap_skipped_at_close() {
    let frames = vec![
        eth_tcp(c(), s(), 0, SYN, b""),
        eth_tcp(c(), s(), 1, PSH_ACK, b"AAAA"),
        // bytes 4..8 never captured
        eth_tcp(c(), s(), 9, PSH_ACK, b"CCCC"),
        eth_tcp(c(), s(), 13, FIN | ACK, b""),
        eth_tcp(s(), c(), 50, FIN | ACK, b""),
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.bytes(Direction::ToServer), b"AAAACCCC");
    assert_eq!(r.stats.gap_bytes, 4);
    // The bytes on either side of the gap are separate events.
    let payloads: Vec<&[u8]> = r
        .events
        .iter()
        .filter_map(|e| match e {
            CaptureEvent::Data { payload, .. } => Some(payload.as_slice()),
            CaptureEvent::Opened { .. } | CaptureEvent::Closed { .. } => None,
        })
        .collect();
    assert_eq!(payloads, [&b"AAAA"[..], &b"CCCC"[..]]);
    assert!(matches!(r.events.last(), Some(CaptureEvent::Closed { .. })));
}

#[test]
fn gap_skipped_at_end_of_input() {
    let frames = vec![
        eth_tcp(c(), s(), 0, SYN, b""),
        eth_tcp(c(), s(), 11, PSH_ACK, b"later"), // bytes 10..15; 0..10 never captured
    ];
    let r = run(&eth_pcap(&frames));
    assert_eq!(r.bytes(Direction::ToServer), b"later");
    assert_eq!(r.stats.gap_bytes, 10);
    assert_eq!(r.closed().len(), 1);
}

#[test]
fn buffer_overflow_skips_oldest_hole() {
    let limits = ReassemblyLimits {
        max_buffered_bytes: 1024,
        max_buffered_segments: 2,
    };
    let frames = vec![
        eth_tcp(c(), s(), 0, SYN, b""),
        // bytes 0..2 never captured
        eth_tcp(c(), s(), 3, PSH_ACK, b"22"),
        eth_tcp(c(), s(), 7, PSH_ACK, b"66"), // bytes 4..6 missing too
        eth_tcp(c(), s(), 9, PSH_ACK, b"88"), // third early segment: over the limit
    ];
    let r = run_with(&eth_pcap(&frames), limits);
    assert_eq!(r.bytes(Direction::ToServer), b"226688");
    assert_eq!(r.stats.buffer_overflow_bytes, 2);
    assert_eq!(r.stats.gap_bytes, 2); // bytes 4..6, skipped at end of input
    assert_eq!(r.stats.out_of_order_segments, 3);
}

#[test]
fn snaplen_truncated_segment_counts_missing_bytes() {
    let full = eth_tcp(c(), s(), 1, PSH_ACK, b"0123456789");
    let cut = full[..full.len() - 6].to_vec(); // 4 of 10 payload bytes captured
    let orig_len = u32::try_from(full.len()).expect("fits");
    let records = vec![
        rec(1, eth_tcp(c(), s(), 0, SYN, b"")),
        Rec {
            ts_ns: 2,
            data: cut,
            orig_len,
        },
        rec(3, eth_tcp(c(), s(), 11, PSH_ACK, b"next")),
    ];
    let r = run(&pcap_file(false, false, 1, &records));
    assert_eq!(r.bytes(Direction::ToServer), b"0123next");
    assert_eq!(r.stats.truncated_packets, 1);
    assert_eq!(r.stats.gap_bytes, 6);
    assert_eq!(r.stats.out_of_order_segments, 0);
}

// ---------------------------------------------------------------------------------------
// Files

#[test]
fn big_endian_and_nanosecond_pcap() {
    for (big, nanos) in [(true, false), (true, true), (false, true)] {
        let records = vec![rec(
            1_700_000_000_123_456_789,
            eth_tcp(c(), s(), 1, PSH_ACK, b"be"),
        )];
        let file = pcap_file(big, nanos, 1, &records);
        let r = run(&file);
        assert_eq!(
            r.bytes(Direction::ToServer),
            b"be",
            "big={big} nanos={nanos}"
        );
        let Some(CaptureEvent::Data { ts_ns, .. }) = r.events.first() else {
            panic!("no data")
        };
        let want = if nanos {
            1_700_000_000_123_456_789
        } else {
            1_700_000_000_123_456_000
        };
        assert_eq!(*ts_ns, want, "big={big} nanos={nanos}");
    }
}

#[test]
fn truncated_file_yields_events_then_error() {
    let mut file = eth_pcap(&exchange(1, 2, b"request", b"response"));
    let cut_at = file.len() - 10; // inside the last record
    file.truncate(cut_at);
    let r = run(&file);
    assert_eq!(r.bytes(Direction::ToServer), b"request");
    assert_eq!(r.bytes(Direction::ToClient), b"response");
    // The connection was flushed and closed before the error.
    assert_eq!(r.closed().len(), 1);
    let Some(CaptureError::TruncatedRecord { offset }) = r.error else {
        panic!("{:?}", r.error)
    };
    // The last record starts after the file header and seven records.
    let frames = exchange(1, 2, b"request", b"response");
    let start = 24 + frames[..7].iter().map(|f| 16 + f.len() as u64).sum::<u64>();
    assert_eq!(offset, start);
    assert_eq!(
        CaptureError::TruncatedRecord { offset }.to_string(),
        format!("truncated record at byte {start}: the file ends mid-record")
    );
    // Cut inside a record header too.
    let file = eth_pcap(&[eth_tcp(c(), s(), 1, PSH_ACK, b"x")]);
    let r = run(&[&file[..], &[0; 5]].concat());
    assert!(
        matches!(r.error, Some(CaptureError::TruncatedRecord { .. })),
        "{:?}",
        r.error
    );
    assert_eq!(r.bytes(Direction::ToServer), b"x");
}

#[test]
fn corrupt_record_message() {
    let mut file = pcap_file(false, false, 1, &[]);
    file.extend(1u32.to_le_bytes()); // ts_sec
    file.extend(0u32.to_le_bytes()); // ts_usec
    file.extend(u32::MAX.to_le_bytes()); // incl_len: absurd
    file.extend(60u32.to_le_bytes()); // orig_len
    let r = run(&file);
    let err = r.error.expect("error");
    assert!(matches!(
        err,
        CaptureError::RecordTooLong { offset: 24, .. }
    ));
    assert_eq!(
        err.to_string(),
        "corrupt record at byte 24: captured length 4294967295 exceeds 262144"
    );
}

#[test]
fn pcapng_two_interfaces_and_sections() {
    let ip = ipv4_tcp(c(), s(), 1, PSH_ACK, b"raw-ip ns ");
    let mut file = shb(false);
    file.extend(idb(false, 1, None)); // interface 0: Ethernet, default µs
    file.extend(idb(false, 101, Some(9))); // interface 1: raw IP, ns
    file.extend(block(false, 0x0bad, b"custom block, skipped")); // unknown block
    file.extend(epb(
        false,
        0,
        1_700_000_000_000_001,
        &eth_tcp(c(), s(), 0, SYN, b""),
    )); // µs
    file.extend(epb(false, 1, 1_700_000_000_000_000_002, &ip)); // ns
                                                                // Simple Packet Block on interface 0: original length, then data.
    let spb_frame = eth_tcp(c(), s(), 11, PSH_ACK, b"spb ");
    let mut spb = u32::try_from(spb_frame.len())
        .expect("fits")
        .to_le_bytes()
        .to_vec();
    spb.extend(&spb_frame);
    file.extend(block(false, 3, &spb));
    // Obsolete Packet Block: interface id (2), drops (2), ts high, ts low, caplen, len, data.
    let pb_frame = eth_tcp(c(), s(), 15, PSH_ACK, b"pb ");
    let mut pb = Vec::new();
    pb.extend(0u16.to_le_bytes()); // interface id
    pb.extend(0u16.to_le_bytes()); // drops count
    pb.extend(0u32.to_le_bytes()); // timestamp high
    pb.extend(3_000_000u32.to_le_bytes()); // timestamp low: 3 s in µs
    pb.extend(u32::try_from(pb_frame.len()).expect("fits").to_le_bytes()); // captured length
    pb.extend(u32::try_from(pb_frame.len()).expect("fits").to_le_bytes()); // original length
    pb.extend(&pb_frame);
    file.extend(block(false, 2, &pb));
    // A second, big-endian section with a power-of-two resolution (2^-10 s).
    file.extend(shb(true));
    file.extend(idb(true, 1, Some(0x80 | 0x0a)));
    file.extend(epb(
        true,
        0,
        2048,
        &eth_tcp(c(), s(), 18, PSH_ACK, b"section2"),
    ));
    let r = run(&file);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.bytes(Direction::ToServer), b"raw-ip ns spb pb section2");
    let ts: Vec<u64> = r
        .events
        .iter()
        .filter_map(|e| match e {
            CaptureEvent::Data { ts_ns, .. } => Some(*ts_ns),
            CaptureEvent::Opened { .. } | CaptureEvent::Closed { .. } => None,
        })
        .collect();
    assert_eq!(
        ts,
        [
            1_700_000_000_000_000_002, // interface 1, ns resolution
            1_700_000_000_000_000_002, // SPB: no timestamp, the previous one
            3_000_000_000,             // PB, µs
            2_000_000_000,             // 2048 units of 2^-10 s
        ]
    );
    let reader = CaptureReader::new(&file[..]).expect("header");
    assert_eq!(reader.format(), CaptureFormat::Pcapng);
}

#[test]
fn pcapng_corrupt_blocks() {
    let mut base = shb(false);
    base.extend(idb(false, 1, None));
    let at = base.len() as u64;
    // Length not a multiple of 4.
    let mut bad = base.clone();
    bad.extend(6u32.to_le_bytes()); // EPB
    bad.extend(30u32.to_le_bytes()); // block total length 30
    bad.extend([0; 22]);
    let err = run(&bad).error.expect("error");
    assert_eq!(
        err.to_string(),
        format!("corrupt record at byte {at}: block length not a multiple of 4")
    );
    // Trailer differs from header.
    let mut bad = base.clone();
    let mut b = epb(false, 0, 1, &eth_tcp(c(), s(), 1, PSH_ACK, b"x"));
    let n = b.len();
    b[n - 4..].copy_from_slice(&999u32.to_le_bytes());
    bad.extend(b);
    let err = run(&bad).error.expect("error");
    assert!(
        matches!(err, CaptureError::CorruptRecord { offset, .. } if offset == at),
        "{err}"
    );
    // Undeclared interface.
    let mut bad = base.clone();
    bad.extend(epb(false, 7, 1, &eth_tcp(c(), s(), 1, PSH_ACK, b"x")));
    let err = run(&bad).error.expect("error");
    assert!(err.to_string().contains("undeclared interface"), "{err}");
    // Unknown link type on a pcapng interface: counted, not fatal.
    let mut odd = shb(false);
    odd.extend(idb(false, 147, None));
    odd.extend(epb(false, 0, 1, b"whatever"));
    let r = run(&odd);
    assert!(r.error.is_none());
    assert_eq!(r.stats.unsupported_link_packets, 1);
    // A block cut short.
    let mut cut = base.clone();
    cut.extend(&epb(false, 0, 1, &eth_tcp(c(), s(), 1, PSH_ACK, b"x"))[..20]);
    let err = run(&cut).error.expect("error");
    assert!(
        matches!(err, CaptureError::TruncatedRecord { offset } if offset == at),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Real captures (capture/tests/captures/README.md)

const HTTP_LO: &[u8] = include_bytes!("../tests/captures/http_lo.pcap");
const HTTP_LO_NS: &[u8] = include_bytes!("../tests/captures/http_lo_ns.pcapng");
const HTTP_ANY_SLL2: &[u8] = include_bytes!("../tests/captures/http_any_sll2.pcap");
const HTTP_ANY_SLL: &[u8] = include_bytes!("../tests/captures/http_any_sll.pcap");
const HTTP_LO_IPV6: &[u8] = include_bytes!("../tests/captures/http_lo_ipv6.pcap");

/// The file every capture fetches (see capture.sh).
fn body_txt() -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..4000 {
        text.extend(format!("line {i:05}\n").bytes());
    }
    text.truncate(40_000);
    text
}

#[test]
fn real_captures_reassemble_http() {
    let body = body_txt();
    for (name, file, format, v6) in [
        ("http_lo.pcap", HTTP_LO, CaptureFormat::Pcap, false),
        (
            "http_lo_ns.pcapng",
            HTTP_LO_NS,
            CaptureFormat::Pcapng,
            false,
        ),
        (
            "http_any_sll2.pcap",
            HTTP_ANY_SLL2,
            CaptureFormat::Pcap,
            false,
        ),
        (
            "http_any_sll.pcap",
            HTTP_ANY_SLL,
            CaptureFormat::Pcap,
            false,
        ),
        ("http_lo_ipv6.pcap", HTTP_LO_IPV6, CaptureFormat::Pcap, true),
    ] {
        assert_eq!(
            CaptureReader::new(file).expect(name).format(),
            format,
            "{name}"
        );
        let r = run(file);
        assert!(r.error.is_none(), "{name}: {:?}", r.error);
        let keys = r.keys();
        assert_eq!(keys.len(), 1, "{name}: {keys:?}");
        let k = keys[0];
        assert_eq!(k.client.is_ipv6(), v6, "{name}");
        assert!(k.client.port() != k.server.port(), "{name}");
        let request = r.bytes(Direction::ToServer);
        let request = String::from_utf8(request).expect("ASCII request");
        assert!(
            request.starts_with("GET /body.txt HTTP/1.1\r\n"),
            "{name}: {request:?}"
        );
        assert!(
            request.contains("\r\nUser-Agent: adi-test\r\n"),
            "{name}: {request:?}"
        );
        assert!(request.ends_with("\r\n\r\n"), "{name}: {request:?}");
        let response = r.bytes(Direction::ToClient);
        assert!(response.starts_with(b"HTTP/1.0 200 OK\r\n"), "{name}");
        assert!(
            response
                .windows(23)
                .any(|w| w == b"Content-Length: 40000\r\n"),
            "{name}"
        );
        assert!(
            response.ends_with(&body),
            "{name}: response does not end with body.txt"
        );
        let head_len = response.len() - body.len();
        assert!(response[..head_len].ends_with(b"\r\n\r\n"), "{name}");
        // Closed by the FINs, not by the end of input.
        assert_eq!(r.closed(), vec![k], "{name}");
        assert!(
            matches!(r.events.last(), Some(CaptureEvent::Closed { .. })),
            "{name}"
        );
        let s = r.stats;
        assert_eq!(
            (
                s.non_tcp,
                s.decode_errors,
                s.gap_bytes,
                s.buffer_overflow_bytes
            ),
            (0, 0, 0, 0),
            "{name}: {s:?}"
        );
        assert_eq!(s.connections, 1, "{name}");
        assert_eq!(s.packets, 14, "{name}");
        // Timestamps are 2026-ish, in ns; the handshake is in each capture.
        let Some(CaptureEvent::Opened { ts_ns, .. }) = r.events.first() else {
            panic!("{name}: no opening")
        };
        assert!(*ts_ns > 1_700_000_000 * 1_000_000_000, "{name}: {ts_ns}");
    }
}

#[test]
fn real_capture_nanosecond_timestamps() {
    let r = run(HTTP_LO_NS);
    let sub_us = r
        .events
        .iter()
        .any(|e| matches!(e, CaptureEvent::Data { ts_ns, .. } if ts_ns % 1000 != 0));
    assert!(sub_us, "if_tsresol 9 keeps nanoseconds");
}

// ---------------------------------------------------------------------------------------
// Robustness

/// Reads everything, ignoring results: must not panic and must terminate.
fn drain(bytes: &[u8], limits: ReassemblyLimits) {
    if let Ok(reader) = CaptureReader::with_limits(bytes, limits) {
        for item in reader.take(100_000) {
            let _ = item;
        }
    }
}

#[test]
fn every_prefix_of_real_captures() {
    for file in [HTTP_LO, HTTP_LO_NS, HTTP_ANY_SLL2] {
        for cut in (0..file.len()).step_by(7) {
            drain(&file[..cut], ReassemblyLimits::default());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_after_magic_never_panic(
        magic in prop::sample::select(vec![
            vec![0xd4, 0xc3, 0xb2, 0xa1], vec![0xa1, 0xb2, 0x3c, 0x4d], vec![0x0a, 0x0d, 0x0d, 0x0a],
        ]),
        rest in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        drain(&[magic, rest].concat(), ReassemblyLimits::default());
    }

    #[test]
    fn mutated_captures_never_panic(
        which in 0usize..3,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut file = [HTTP_LO, HTTP_LO_NS, HTTP_ANY_SLL2][which].to_vec();
        for (at, byte) in flips {
            let i = at.index(file.len());
            file[i] = byte;
        }
        let keep = cut.index(file.len() + 1);
        file.truncate(keep.max(file.len() / 2));
        drain(&file, ReassemblyLimits { max_buffered_bytes: 4096, max_buffered_segments: 4 });
    }

    #[test]
    fn random_packets_never_panic(
        link_type in prop::sample::select(vec![0u32, 1, 12, 101, 108, 113, 228, 229, 276]),
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..128), 0..32),
    ) {
        let records: Vec<Rec> = frames.into_iter().map(|f| rec(1, f)).collect();
        drain(&pcap_file(false, false, link_type, &records), ReassemblyLimits::default());
    }

    /// Any order of segments, with duplicates and overlaps, reassembles to the bytes sent.
    #[test]
    fn any_segment_order_reassembles(
        isn in any::<u32>(),
        data in prop::collection::vec(any::<u8>(), 1..600),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), 1usize..64), 1..40),
        order in any::<u64>(),
    ) {
        // Segments: a cover of `data` plus random (possibly overlapping) slices.
        let mut segments: Vec<(usize, usize)> = Vec::new();
        let mut at = 0;
        for (_, len) in &cuts {
            if at >= data.len() { break; }
            let end = (at + len).min(data.len());
            segments.push((at, end));
            at = end;
        }
        if at < data.len() { segments.push((at, data.len())); }
        for (start, len) in &cuts {
            let s0 = start.index(data.len());
            segments.push((s0, (s0 + len).min(data.len())));
        }
        // A deterministic shuffle from `order`.
        let mut state = order | 1;
        for i in (1..segments.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            segments.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut frames = vec![eth_tcp(c(), s(), isn, SYN, b"")];
        for (a, b) in &segments {
            let seq = isn.wrapping_add(1).wrapping_add(*a as u32);
            frames.push(eth_tcp(c(), s(), seq, PSH_ACK, &data[*a..*b]));
        }
        let end = isn.wrapping_add(1).wrapping_add(data.len() as u32);
        frames.push(eth_tcp(c(), s(), end, FIN | ACK, b""));
        frames.push(eth_tcp(s(), c(), 77, FIN | ACK, b""));
        let r = run(&eth_pcap(&frames));
        prop_assert_eq!(r.bytes(Direction::ToServer), data.clone());
        prop_assert_eq!(r.stats.gap_bytes + r.stats.buffer_overflow_bytes, 0);
        let sent: u64 = segments.iter().map(|(a, b)| (b - a) as u64).sum();
        prop_assert_eq!(r.stats.retransmitted_bytes + r.stats.delivered_bytes, sent);
        prop_assert_eq!(r.closed().len(), 1);
    }
}

/// From fuzzing (`pcap` target, minimised): a pcapng Section Header Block whose total
/// length is 0xf900506c. The header block skipped the `MAX_BLOCK_LEN` check and the record
/// buffer was sized from the declared length before reading: 4 GB for a 12-byte file.
#[test]
fn pcapng_huge_section_header_is_refused_before_allocating() {
    let file: &[u8] = &[
        0x0a, 0x0d, 0x0d, 0x0a, // block type: Section Header Block
        0x6c, 0x50, 0x00, 0xf9, // block total length (little endian): 4_177_547_372
        0x4d, 0x3c, 0x2b, 0x1a, // byte-order magic, little endian
    ];
    let Err(err) = CaptureReader::new(file) else {
        panic!("a 4 GB header block must be refused")
    };
    assert!(
        matches!(
            err,
            CaptureError::RecordTooLong {
                offset: 0,
                len: 4_177_547_372,
                ..
            }
        ),
        "{err:?}"
    );
    // A later section is checked the same way.
    let mut file2 = shb(false);
    file2.extend_from_slice(file);
    let r = run(&file2);
    assert!(
        matches!(r.error, Some(CaptureError::RecordTooLong { .. })),
        "{:?}",
        r.error
    );
}

/// A block within `MAX_BLOCK_LEN` that the file does not hold is reported as truncated,
/// and the record buffer grows only with the bytes actually read.
#[test]
fn pcapng_declared_block_longer_than_file_is_truncated() {
    let mut file = shb(false);
    file.extend(idb(false, 1, None));
    file.extend(6u32.to_le_bytes()); // block type: Enhanced Packet Block
    file.extend((16u32 * 1024 * 1024).to_le_bytes()); // total length: MAX_BLOCK_LEN
    file.extend([0u8; 20]); // a few body bytes, then the file ends
    let r = run(&file);
    assert!(
        matches!(r.error, Some(CaptureError::TruncatedRecord { .. })),
        "{:?}",
        r.error
    );
}
