//! Link, IP and TCP header decoding: from a captured frame to one TCP segment.
//!
//! Link types follow <https://www.tcpdump.org/linktypes.html>; IPv4 is RFC 791, IPv6 RFC 8200
//! (extension headers section 4), TCP RFC 9293 section 3.1. Every length read from the packet
//! is checked against the bytes captured before it is used; nothing here allocates.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// TCP flag bits (RFC 9293 section 3.1).
pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const RST: u8 = 0x04;
pub(crate) const ACK: u8 = 0x10;

// EtherTypes (IEEE 802 numbers).
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100; // 802.1Q
const ETHERTYPE_QINQ: u16 = 0x88a8; // 802.1ad
const ETHERTYPE_QINQ_OLD: u16 = 0x9100; // pre-standard QinQ
/// The most VLAN tags followed before giving up.
const MAX_VLAN_TAGS: usize = 4;
/// The most IPv6 extension headers followed before giving up.
const MAX_IPV6_EXT_HEADERS: usize = 8;

// IP protocol numbers (IANA).
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

/// How a link type's header is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113): 16-byte cooked header.
    Sll,
    /// LINKTYPE_LINUX_SLL2 (276): 20-byte cooked header.
    Sll2,
    /// LINKTYPE_RAW (101; DLT_RAW is 12 or 14 on some BSDs): IPv4 or IPv6 by version nibble.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_NULL (0, host byte order) and LINKTYPE_LOOP (108, network byte order): a
    /// 4-byte address family.
    Loopback,
}

impl LinkKind {
    /// The decoder for `link_type`, or `None` when it is not supported.
    pub(crate) fn of(link_type: u32) -> Option<Self> {
        Some(match link_type {
            1 => Self::Ethernet,
            113 => Self::Sll,
            276 => Self::Sll2,
            12 | 14 | 101 => Self::RawIp,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            0 | 108 => Self::Loopback,
            _ => return None,
        })
    }
}

/// One TCP segment, borrowing the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub flags: u8,
    /// The captured payload.
    pub payload: &'a [u8],
    /// Payload bytes the IP length announces but the capture does not hold (snaplen).
    pub missing: u32,
}

/// What a frame turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A TCP segment.
    Tcp(Segment<'a>),
    /// Not TCP over IP (ARP, UDP, ICMP, …).
    NonTcp,
    /// An IP fragment: not reassembled.
    Fragment,
    /// A header is shorter than its fixed part or its lengths disagree.
    Malformed(&'static str),
    /// The link type is not one [`LinkKind::of`] knows.
    UnsupportedLink,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes one captured frame of `link_type`.
pub(crate) fn decode(link_type: u32, frame: &[u8]) -> Decoded<'_> {
    let Some(kind) = LinkKind::of(link_type) else {
        return Decoded::UnsupportedLink;
    };
    match kind {
        LinkKind::Ethernet => {
            // dst_mac(6) src_mac(6) ethertype(2)
            let Some(ethertype) = be16(frame, 12) else {
                return Decoded::Malformed("Ethernet header truncated");
            };
            ethertype_payload(ethertype, frame.get(14..).unwrap_or_default())
        }
        LinkKind::Sll => {
            // packet_type(2) arphrd(2) addr_len(2) addr(8) protocol(2)
            let Some(protocol) = be16(frame, 14) else {
                return Decoded::Malformed("Linux SLL header truncated");
            };
            ethertype_payload(protocol, frame.get(16..).unwrap_or_default())
        }
        LinkKind::Sll2 => {
            // protocol(2) reserved(2) if_index(4) arphrd(2) packet_type(1) addr_len(1) addr(8)
            let Some(protocol) = be16(frame, 0) else {
                return Decoded::Malformed("Linux SLL2 header truncated");
            };
            if frame.len() < 20 {
                return Decoded::Malformed("Linux SLL2 header truncated");
            }
            ethertype_payload(protocol, frame.get(20..).unwrap_or_default())
        }
        LinkKind::RawIp => ip_by_version(frame),
        LinkKind::Ipv4 => ipv4(frame),
        LinkKind::Ipv6 => ipv6(frame),
        LinkKind::Loopback => {
            // family(4), in the capturing host's byte order for NULL and network order for
            // LOOP; either is accepted. AF_INET is 2 everywhere; AF_INET6 is 10 (Linux),
            // 24 (NetBSD, OpenBSD), 28 (FreeBSD, DragonFly) or 30 (macOS).
            let Some(family) = frame.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
                return Decoded::Malformed("loopback header truncated");
            };
            let rest = frame.get(4..).unwrap_or_default();
            let family = match (u32::from_le_bytes(family), u32::from_be_bytes(family)) {
                (f, _) if matches!(f, 2 | 10 | 24 | 28 | 30) => f,
                (_, f) => f,
            };
            match family {
                2 => ipv4(rest),
                10 | 24 | 28 | 30 => ipv6(rest),
                _ => Decoded::NonTcp,
            }
        }
    }
}

/// Follows VLAN tags, then dispatches on the EtherType.
fn ethertype_payload(mut ethertype: u16, mut rest: &[u8]) -> Decoded<'_> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ethertype {
            ETHERTYPE_IPV4 => return ipv4(rest),
            ETHERTYPE_IPV6 => return ipv6(rest),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                // tci(2) inner_ethertype(2)
                let Some(inner) = be16(rest, 2) else {
                    return Decoded::Malformed("VLAN tag truncated");
                };
                ethertype = inner;
                rest = rest.get(4..).unwrap_or_default();
            }
            _ => return Decoded::NonTcp,
        }
    }
    Decoded::Malformed("too many VLAN tags")
}

fn ip_by_version(packet: &[u8]) -> Decoded<'_> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => ipv4(packet),
        Some(6) => ipv6(packet),
        Some(_) => Decoded::NonTcp,
        None => Decoded::Malformed("empty IP packet"),
    }
}

/// IPv4 (RFC 791 section 3.1).
fn ipv4(packet: &[u8]) -> Decoded<'_> {
    // version_ihl(1) tos(1) total_length(2) id(2) flags_fragment_offset(2) ttl(1) protocol(1)
    // checksum(2) src(4) dst(4) options...
    let (Some(&version_ihl), Some(total_len), Some(frag), Some(&proto), Some(src), Some(dst)) = (
        packet.first(),
        be16(packet, 2),
        be16(packet, 6),
        packet.get(9),
        be32(packet, 12),
        be32(packet, 16),
    ) else {
        return Decoded::Malformed("IPv4 header truncated");
    };
    if version_ihl >> 4 != 4 {
        return Decoded::Malformed("IPv4 version is not 4");
    }
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if header_len < 20 || header_len > packet.len() {
        return Decoded::Malformed("IPv4 header length out of range");
    }
    // MF flag (0x2000) or a non-zero fragment offset (low 13 bits).
    if frag & 0x3fff != 0 {
        return Decoded::Fragment;
    }
    if proto != IPPROTO_TCP {
        return Decoded::NonTcp;
    }
    // Total length trims Ethernet padding; 0 is what TSO-offloaded sends look like on Linux,
    // so then the captured length is used.
    let total_len = usize::from(total_len);
    let (end, missing) = match total_len {
        0 => (packet.len(), 0),
        n if n < header_len => {
            return Decoded::Malformed("IPv4 total length shorter than its header")
        }
        n if n <= packet.len() => (n, 0),
        n => (packet.len(), n - packet.len()),
    };
    let body = packet.get(header_len..end).unwrap_or_default();
    let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    tcp(body, missing, |sp, dp| {
        (
            SocketAddr::V4(SocketAddrV4::new(src, sp)),
            SocketAddr::V4(SocketAddrV4::new(dst, dp)),
        )
    })
}

/// IPv6 (RFC 8200 sections 3 and 4).
fn ipv6(packet: &[u8]) -> Decoded<'_> {
    // version_class_flow(4) payload_length(2) next_header(1) hop_limit(1) src(16) dst(16)
    let (Some(&version), Some(payload_len), Some(&next), Some(src), Some(dst)) = (
        packet.first(),
        be16(packet, 4),
        packet.get(6),
        packet.get(8..24),
        packet.get(24..40),
    ) else {
        return Decoded::Malformed("IPv6 header truncated");
    };
    if version >> 4 != 6 {
        return Decoded::Malformed("IPv6 version is not 6");
    }
    let (Ok(src), Ok(dst)) = (<[u8; 16]>::try_from(src), <[u8; 16]>::try_from(dst)) else {
        return Decoded::Malformed("IPv6 header truncated");
    };
    // Payload length 0 is a jumbogram or a TSO send: use what was captured.
    let available = packet.len() - 40;
    let payload_len = usize::from(payload_len);
    let (end, missing) = match payload_len {
        0 => (packet.len(), 0),
        n if n <= available => (40 + n, 0),
        n => (packet.len(), n - available),
    };
    let mut rest = packet.get(40..end).unwrap_or_default();
    let mut next = next;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_TCP => {
                let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
                return tcp(rest, missing, |sp, dp| {
                    (
                        SocketAddr::V6(SocketAddrV6::new(src, sp, 0, 0)),
                        SocketAddr::V6(SocketAddrV6::new(dst, dp, 0, 0)),
                    )
                });
            }
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT => {
                // next_header(1) hdr_ext_len(1) ...
                let (Some(&inner), Some(&ext_len)) = (rest.first(), rest.get(1)) else {
                    return Decoded::Malformed("IPv6 extension header truncated");
                };
                let len = match next {
                    // Fragment header: fixed 8 bytes (section 4.5). An atomic fragment
                    // (offset 0, M clear; RFC 6946) is the whole packet and is decoded.
                    IPPROTO_FRAGMENT => {
                        let Some(off_m) = be16(rest, 2) else {
                            return Decoded::Malformed("IPv6 fragment header truncated");
                        };
                        if off_m & 0xfff9 != 0 {
                            return Decoded::Fragment;
                        }
                        8
                    }
                    // AH length is in 4-byte units minus 2 (RFC 4302 section 2.2).
                    IPPROTO_AH => (usize::from(ext_len) + 2) * 4,
                    // In 8-byte units, not counting the first 8 (RFC 8200 section 4.3).
                    _ => (usize::from(ext_len) + 1) * 8,
                };
                let Some(after) = rest.get(len..) else {
                    return Decoded::Malformed("IPv6 extension header truncated");
                };
                rest = after;
                next = inner;
            }
            _ => return Decoded::NonTcp,
        }
    }
    Decoded::Malformed("too many IPv6 extension headers")
}

/// TCP (RFC 9293 section 3.1): `addrs` builds the source and destination from the ports.
fn tcp(
    segment: &[u8],
    missing: usize,
    addrs: impl FnOnce(u16, u16) -> (SocketAddr, SocketAddr),
) -> Decoded<'_> {
    // src_port(2) dst_port(2) seq(4) ack(4) data_offset_flags(2) window(2) checksum(2) urgent(2)
    let (Some(sp), Some(dp), Some(seq), Some(&off), Some(&flags)) = (
        be16(segment, 0),
        be16(segment, 2),
        be32(segment, 4),
        segment.get(12),
        segment.get(13),
    ) else {
        return Decoded::Malformed("TCP header truncated");
    };
    let header_len = usize::from(off >> 4) * 4;
    if header_len < 20 {
        return Decoded::Malformed("TCP data offset below 5");
    }
    let Some(payload) = segment.get(header_len..) else {
        return Decoded::Malformed("TCP header truncated");
    };
    let (src, dst) = addrs(sp, dp);
    let missing = u32::try_from(missing).unwrap_or(u32::MAX);
    Decoded::Tcp(Segment {
        src,
        dst,
        seq,
        flags,
        payload,
        missing,
    })
}
