//! Decoding of sampled packet headers (Ethernet, 802.1Q/802.1ad, IPv4, IPv6, TCP, UDP, ICMP)
//! and extraction of UDP payloads from captured frames.
//!
//! The same layer-2/3/4 walkers serve two callers: the raw-packet-header flow record
//! (sampled headers are truncated, so every layer is optional and a short header simply
//! yields fewer fields) and the pcap path (finding the sFlow datagram inside a captured
//! frame). Nothing here allocates or panics on any input.

use serde::Serialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ) service tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ tag EtherType still sent by some switches.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// Largest value of the Ethernet type/length field that is an 802.3 length.
const MAX_8023_LENGTH: u16 = 1500;
/// VLAN tags walked before giving up (QinQ is 2; more is exotic or garbage).
const MAX_VLAN_TAGS: usize = 4;
/// IPv6 extension headers skipped before giving up on finding the upper layer.
const MAX_IPV6_EXT_HEADERS: usize = 8;

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub(crate) fn from_slice(b: &[u8]) -> Option<MacAddr> {
        let a: [u8; 6] = b.get(..6)?.try_into().ok()?;
        Some(MacAddr(a))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What could be decoded from a sampled packet header. Sampled headers are cut at a fixed
/// length (often 128 bytes), so every layer is optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PacketSummary {
    /// Ethernet source MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_mac: Option<MacAddr>,
    /// Ethernet destination MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_mac: Option<MacAddr>,
    /// Outermost VLAN id (802.1Q, or the 802.1ad service tag for QinQ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Inner VLAN id of a QinQ frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_vlan: Option<u16>,
    /// EtherType of the payload after all VLAN tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ethertype: Option<u16>,
    /// The IP layer, when present and readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpSummary>,
}

/// IP and transport fields of a sampled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IpSummary {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (for IPv6, after the extension headers that were skipped).
    pub protocol: u8,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// TOS byte (IPv4) or traffic class (IPv6).
    pub tos: u8,
    /// Total IP length from the header: IPv4 total length, IPv6 payload length + 40.
    pub ip_len: u32,
    /// True when this is a non-first fragment (no transport header in it).
    pub later_fragment: bool,
    /// Transport source port (TCP/UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Transport destination port (TCP/UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// TCP flags (9 bits: NS, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<u16>,
    /// ICMP / ICMPv6 type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP / ICMPv6 code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
}

/// The IP layer of a packet with the bytes after its headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpLayer<'a> {
    pub(crate) summary: IpSummary,
    /// Fragmented (any fragment, first included).
    pub(crate) fragmented: bool,
    /// Upper-layer bytes: bounded by the IP length and by what was captured.
    pub(crate) payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// Walks an Ethernet header and its VLAN tags. Returns the summary so far and the payload
/// offset; 802.3 frames with an LLC/SNAP header are followed to their EtherType.
fn ethernet(b: &[u8], sum: &mut PacketSummary) -> Option<usize> {
    sum.dst_mac = MacAddr::from_slice(b);
    sum.src_mac = MacAddr::from_slice(b.get(6..)?);
    let mut off = 12;
    let mut ty = be16(b, off)?;
    off += 2;
    let mut tags = 0;
    while matches!(ty, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) && tags < MAX_VLAN_TAGS
    {
        let tci = be16(b, off)?;
        let vid = tci & 0x0fff;
        match tags {
            0 => sum.vlan = Some(vid),
            1 => sum.inner_vlan = Some(vid),
            _ => {}
        }
        tags += 1;
        ty = be16(b, off + 2)?;
        off += 4;
    }
    if ty <= MAX_8023_LENGTH {
        // 802.3 + LLC; only SNAP (AA AA 03, OUI 3 bytes) carries an EtherType.
        let llc = b.get(off..off + 3)?;
        if llc != [0xaa, 0xaa, 0x03] {
            return None;
        }
        ty = be16(b, off + 6)?;
        off += 8;
    }
    sum.ethertype = Some(ty);
    Some(off)
}

/// Decodes an IPv4 or IPv6 header (by its version nibble) and the transport header.
pub(crate) fn ip_layer(b: &[u8]) -> Option<IpLayer<'_>> {
    match b.first()? >> 4 {
        4 => ipv4(b),
        6 => ipv6(b),
        _ => None,
    }
}

fn ipv4(b: &[u8]) -> Option<IpLayer<'_>> {
    let ihl = usize::from(b.first()? & 0x0f) * 4;
    if ihl < 20 || b.len() < 20 {
        return None;
    }
    let total = be16(b, 2)?;
    let frag = be16(b, 6)?;
    let more_fragments = frag & 0x2000 != 0;
    let frag_off = frag & 0x1fff;
    let src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    let end = usize::from(total).clamp(ihl.min(b.len()), b.len());
    let payload = b.get(ihl..end).unwrap_or(&[]);
    let mut summary = IpSummary {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        protocol: b[9],
        ttl: b[8],
        tos: b[1],
        ip_len: u32::from(total),
        later_fragment: frag_off != 0,
        src_port: None,
        dst_port: None,
        tcp_flags: None,
        icmp_type: None,
        icmp_code: None,
    };
    if frag_off == 0 {
        transport(&mut summary, payload);
    }
    Some(IpLayer {
        summary,
        fragmented: more_fragments || frag_off != 0,
        payload,
    })
}

fn ipv6(b: &[u8]) -> Option<IpLayer<'_>> {
    let fixed: &[u8; 40] = b.get(..40)?.try_into().ok()?;
    let plen = u16::from_be_bytes([fixed[4], fixed[5]]);
    let mut next = fixed[6];
    let ttl = fixed[7];
    let tos = ((u16::from_be_bytes([fixed[0], fixed[1]]) >> 4) & 0xff) as u8;
    let mut s = [0u8; 16];
    s.copy_from_slice(&fixed[8..24]);
    let mut d = [0u8; 16];
    d.copy_from_slice(&fixed[24..40]);
    let end = (40 + usize::from(plen)).min(b.len());
    let mut off = 40;
    let mut fragmented = false;
    let mut later_fragment = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        // A sampled header may end inside the extension chain: keep the addresses and
        // report the extension header as the protocol.
        let (Some(&nh), Some(&len_byte)) = (b.get(off), b.get(off + 1)) else {
            break;
        };
        match next {
            // hop-by-hop, routing, destination options, mobility: (len + 1) * 8 bytes
            0 | 43 | 60 | 135 => off += (usize::from(len_byte) + 1) * 8,
            // fragment header: fixed 8 bytes
            44 => {
                let Some(fo) = be16(b, off + 2) else { break };
                fragmented = true;
                later_fragment = fo & 0xfff8 != 0;
                off += 8;
            }
            // authentication header: (len + 2) * 4 bytes
            51 => off += (usize::from(len_byte) + 2) * 4,
            _ => break,
        }
        next = nh;
    }
    let payload = b.get(off..end.max(off).min(b.len())).unwrap_or(&[]);
    let mut summary = IpSummary {
        src: IpAddr::V6(Ipv6Addr::from(s)),
        dst: IpAddr::V6(Ipv6Addr::from(d)),
        protocol: next,
        ttl,
        tos,
        ip_len: u32::from(plen) + 40,
        later_fragment,
        src_port: None,
        dst_port: None,
        tcp_flags: None,
        icmp_type: None,
        icmp_code: None,
    };
    if !later_fragment {
        transport(&mut summary, payload);
    }
    Some(IpLayer {
        summary,
        fragmented,
        payload,
    })
}

fn transport(sum: &mut IpSummary, b: &[u8]) {
    match sum.protocol {
        IPPROTO_TCP => {
            sum.src_port = be16(b, 0);
            sum.dst_port = be16(b, 2);
            sum.tcp_flags = be16(b, 12).map(|v| v & 0x01ff);
        }
        IPPROTO_UDP => {
            sum.src_port = be16(b, 0);
            sum.dst_port = be16(b, 2);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            sum.icmp_type = b.first().copied();
            sum.icmp_code = b.get(1).copied();
        }
        _ => {}
    }
}

/// sFlow header protocol: Ethernet (ISO 802.3).
pub const HEADER_PROTOCOL_ETHERNET: u32 = 1;
/// sFlow header protocol: raw IPv4.
pub const HEADER_PROTOCOL_IPV4: u32 = 11;
/// sFlow header protocol: raw IPv6.
pub const HEADER_PROTOCOL_IPV6: u32 = 12;

/// Decodes a sampled header of the given sFlow `header_protocol`. Unknown protocols and
/// unreadable headers give `None`; a short header gives the layers it holds.
pub fn summarize(header_protocol: u32, header: &[u8]) -> Option<PacketSummary> {
    let mut sum = PacketSummary::default();
    let ip = match header_protocol {
        HEADER_PROTOCOL_ETHERNET => {
            let off = ethernet(header, &mut sum);
            match (off, sum.ethertype) {
                (Some(off), Some(ETHERTYPE_IPV4 | ETHERTYPE_IPV6)) => header.get(off..),
                _ => None,
            }
        }
        HEADER_PROTOCOL_IPV4 | HEADER_PROTOCOL_IPV6 => Some(header),
        _ => return None,
    };
    sum.ip = ip.and_then(ip_layer).map(|l| l.summary);
    if sum.src_mac.is_none() && sum.ip.is_none() {
        return None;
    }
    Some(sum)
}

/// Capture link-layer types understood by [`udp_in_frame`] (pcap `LINKTYPE_*` values).
pub mod linktype {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    pub const NULL: u32 = 0;
    /// Ethernet.
    pub const ETHERNET: u32 = 1;
    /// `DLT_RAW` as numbered on some BSDs.
    pub const RAW_BSD: u32 = 12;
    /// `DLT_RAW` as numbered on OpenBSD.
    pub const RAW_OPENBSD: u32 = 14;
    /// Raw IPv4 or IPv6.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: 4-byte address family, big-endian.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: u32 = 276;
}

/// Length of a Linux cooked v1 header; its protocol field is the last 2 bytes.
const SLL_HEADER_LEN: usize = 16;
/// Length of a Linux cooked v2 header; its protocol field is the first 2 bytes.
const SLL2_HEADER_LEN: usize = 20;
/// Length of the BSD loopback family field.
const NULL_HEADER_LEN: usize = 4;
/// UDP header length.
const UDP_HEADER_LEN: usize = 8;

/// A UDP datagram found in a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<'a> {
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// UDP payload (bounded by the UDP length and the captured bytes).
    pub payload: &'a [u8],
}

/// Finds the IP packet in a captured frame of the given link type.
fn ip_in_frame(link_type: u32, frame: &[u8]) -> Option<&[u8]> {
    match link_type {
        linktype::ETHERNET => {
            let mut sum = PacketSummary::default();
            let off = ethernet(frame, &mut sum)?;
            match sum.ethertype {
                Some(ETHERTYPE_IPV4 | ETHERTYPE_IPV6) => frame.get(off..),
                _ => None,
            }
        }
        linktype::RAW
        | linktype::RAW_BSD
        | linktype::RAW_OPENBSD
        | linktype::IPV4
        | linktype::IPV6 => Some(frame),
        linktype::LINUX_SLL => match be16(frame, SLL_HEADER_LEN - 2)? {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => frame.get(SLL_HEADER_LEN..),
            _ => None,
        },
        linktype::LINUX_SLL2 => match be16(frame, 0)? {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => frame.get(SLL2_HEADER_LEN..),
            _ => None,
        },
        // The family value differs per OS (2 = IPv4; 10/24/28/30 = IPv6): the IP version
        // nibble of the packet itself is what `ip_layer` trusts.
        linktype::NULL | linktype::LOOP => frame.get(NULL_HEADER_LEN..),
        _ => None,
    }
}

/// Extracts the UDP datagram from a captured frame. Fragmented IP packets are skipped
/// (`None`): a reassembler is out of scope, and a partial sFlow datagram would only
/// decode to an error.
pub fn udp_in_frame(link_type: u32, frame: &[u8]) -> Option<UdpPacket<'_>> {
    let ip = ip_layer(ip_in_frame(link_type, frame)?)?;
    if ip.fragmented || ip.summary.protocol != IPPROTO_UDP {
        return None;
    }
    let b = ip.payload;
    let udp_len = usize::from(be16(b, 4)?);
    let end = if udp_len >= UDP_HEADER_LEN {
        udp_len.min(b.len())
    } else {
        // A zero UDP length (IPv6 jumbograms) or garbage: use what was captured.
        b.len()
    };
    Some(UdpPacket {
        src: ip.summary.src,
        dst: ip.summary.dst,
        src_port: be16(b, 0)?,
        dst_port: be16(b, 2)?,
        payload: b.get(UDP_HEADER_LEN..end)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv6_with_ext(ext: &[u8], next: u8, l4: &[u8]) -> Vec<u8> {
        let plen = (ext.len() + l4.len()) as u16;
        let mut b = vec![0x60, 0, 0, 0];
        b.extend_from_slice(&plen.to_be_bytes());
        b.extend_from_slice(&[next, 64]);
        b.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b.extend_from_slice(&[0; 11]);
        b.push(1);
        b.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b.extend_from_slice(&[0; 11]);
        b.push(2);
        b.extend_from_slice(ext);
        b.extend_from_slice(l4);
        b
    }

    #[test]
    fn ipv6_skips_hop_by_hop_and_destination_options() {
        // hop-by-hop (8 bytes) -> destination options (16 bytes) -> TCP 1234 -> 25, SYN.
        let mut ext = vec![60, 0, 5, 2, 0, 0, 1, 0];
        ext.extend_from_slice(&[6, 1, 1, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 0, 0]);
        let tcp = [
            4, 210, 0, 25, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff,
        ];
        let b = ipv6_with_ext(&ext, 0, &tcp);
        let s = summarize(HEADER_PROTOCOL_IPV6, &b).unwrap().ip.unwrap();
        assert_eq!(
            (s.protocol, s.src_port, s.dst_port, s.tcp_flags),
            (6, Some(1234), Some(25), Some(2))
        );
        assert_eq!(s.ip_len, 40 + 24 + 16);
    }

    #[test]
    fn ipv6_later_fragment_has_no_ports() {
        let frag = [17, 0, 0x05, 0x00, 0, 0, 0, 1]; // offset 160, UDP
        let b = ipv6_with_ext(&frag, 44, &[0; 8]);
        let s = summarize(HEADER_PROTOCOL_IPV6, &b).unwrap().ip.unwrap();
        assert!(s.later_fragment);
        assert_eq!((s.protocol, s.src_port), (17, None));
    }

    #[test]
    fn truncated_extension_chain_keeps_addresses() {
        let b = ipv6_with_ext(&[], 0, &[]);
        let s = summarize(HEADER_PROTOCOL_IPV6, &b).unwrap().ip.unwrap();
        assert_eq!((s.protocol, s.src.to_string().as_str()), (0, "2001:db8::1"));
    }

    #[test]
    fn snap_and_short_headers() {
        // 802.3 length + LLC/SNAP carrying IPv4 (only 4 bytes of it: no IP layer).
        let mut f = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 100];
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00, 0x45, 0, 0, 20]);
        let s = summarize(HEADER_PROTOCOL_ETHERNET, &f).unwrap();
        assert_eq!((s.ethertype, s.ip), (Some(0x0800), None));
        assert_eq!(s.dst_mac.unwrap().to_string(), "01:02:03:04:05:06");
        for n in 0..f.len() {
            let _ = summarize(HEADER_PROTOCOL_ETHERNET, &f[..n]);
        }
        assert_eq!(summarize(HEADER_PROTOCOL_ETHERNET, &[1, 2, 3]), None);
        assert_eq!(summarize(7, &f), None, "unknown header protocol");
    }

    #[test]
    fn ipv4_with_options_and_fragment() {
        // IHL 6 (4 option bytes), UDP 53 -> 5353, then the same as a later fragment.
        let mut b = vec![
            0x46, 0, 0, 32, 0, 0, 0, 0, 7, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 1,
        ];
        b.extend_from_slice(&[0, 53, 0x14, 0xe9, 0, 8, 0, 0]);
        let s = summarize(HEADER_PROTOCOL_IPV4, &b).unwrap().ip.unwrap();
        assert_eq!(
            (s.ttl, s.src_port, s.dst_port, s.ip_len),
            (7, Some(53), Some(5353), 32)
        );
        b[6] = 0x00;
        b[7] = 0x10;
        let s = summarize(HEADER_PROTOCOL_IPV4, &b).unwrap().ip.unwrap();
        assert!(s.later_fragment);
        assert_eq!(s.src_port, None);
        assert!(
            udp_in_frame(linktype::RAW, &b).is_none(),
            "fragments are not extracted"
        );
    }
}
