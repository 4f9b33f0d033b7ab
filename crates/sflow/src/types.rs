//! The decoded sFlow v5 structures. All borrow from the datagram buffer.

use crate::packet::{MacAddr, PacketSummary};
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

/// Borrowed bytes that serialize as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Bytes<'a>(pub &'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{self:?}"))
    }
}

/// A borrowed wire string: sFlow strings are bytes, usually UTF-8. Serializes lossily.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Text<'a>(pub &'a [u8]);

impl<'a> Text<'a> {
    /// The string, when it is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.0))
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0))
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One sFlow v5 datagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datagram<'a> {
    /// Always 5.
    pub version: u32,
    /// Agent address (`None` for address type 0 "unknown").
    pub agent: Option<IpAddr>,
    /// Sub-agent id.
    pub sub_agent_id: u32,
    /// Datagram sequence number (per agent/sub-agent).
    pub sequence_number: u32,
    /// Agent uptime in milliseconds.
    pub uptime: u32,
    /// Sample count declared in the header.
    pub sample_count: u32,
    /// The samples decoded (fewer than `sample_count` when decoding stopped on an error).
    pub samples: Vec<Sample<'a>>,
    /// Bytes the datagram occupied (up to where decoding ended). Bytes after the last
    /// sample are not part of the datagram and are ignored.
    pub length: usize,
}

/// sFlow data source: `source_id_type` (0 ifIndex, 1 smonVlanDataSource, 2
/// entPhysicalEntry) and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SourceId {
    /// Source type.
    #[serde(rename = "type")]
    pub source_type: u32,
    /// Source index.
    pub index: u32,
}

impl SourceId {
    /// Decodes the compact form: type in the top 8 bits, index in the low 24.
    pub fn from_compact(v: u32) -> SourceId {
        SourceId {
            source_type: v >> 24,
            index: v & 0x00ff_ffff,
        }
    }
}

/// An interface field of a flow or discard sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interface {
    /// Format 0: an ifIndex (0 when unknown).
    Index(u32),
    /// Format 0 with value 0x3FFFFFFF: the packet went to/came from the device itself.
    Local,
    /// Format 1: the packet was discarded; the value is the reason code.
    Discarded(u32),
    /// Format 2: multiple output interfaces; the value is their count (0 = unknown).
    Multiple(u32),
    /// Format 3 (reserved by the spec): format and value kept as they are.
    Other {
        /// Format number.
        format: u32,
        /// Value.
        value: u32,
    },
}

/// Value of a format-0 interface meaning "internal / local".
pub const INTERFACE_LOCAL: u32 = 0x3fff_ffff;

impl Interface {
    /// Decodes the compact encoding: format in the top 2 bits, value in the low 30.
    pub fn from_compact(v: u32) -> Interface {
        Interface::from_parts(v >> 30, v & 0x3fff_ffff)
    }

    /// Decodes the expanded encoding (separate format and value words).
    pub fn from_parts(format: u32, value: u32) -> Interface {
        match format {
            0 if value == INTERFACE_LOCAL => Interface::Local,
            0 => Interface::Index(value),
            1 => Interface::Discarded(value),
            2 => Interface::Multiple(value),
            _ => Interface::Other { format, value },
        }
    }

    /// The format number (0 ifIndex, 1 discarded, 2 multiple).
    pub fn format(&self) -> u32 {
        match self {
            Interface::Index(_) | Interface::Local => 0,
            Interface::Discarded(_) => 1,
            Interface::Multiple(_) => 2,
            Interface::Other { format, .. } => *format,
        }
    }

    /// The value without the format (ifIndex, reason, count or 0x3FFFFFFF).
    pub fn value(&self) -> u32 {
        match self {
            Interface::Index(v) | Interface::Discarded(v) | Interface::Multiple(v) => *v,
            Interface::Local => INTERFACE_LOCAL,
            Interface::Other { value, .. } => *value,
        }
    }

    /// The ifIndex, for format 0 with a known, non-local index.
    pub fn if_index(&self) -> Option<u32> {
        match self {
            Interface::Index(v) if *v != 0 => Some(*v),
            _ => None,
        }
    }
}

/// One sample of a datagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Sample<'a> {
    /// Flow sample (format 1) or expanded flow sample (format 3).
    Flow(FlowSample<'a>),
    /// Counter sample (format 2) or expanded counter sample (format 4).
    Counter(CounterSample<'a>),
    /// Discarded-packet notification (format 5, sFlow drops extension).
    Discard(DiscardSample<'a>),
    /// Any other enterprise/format, skipped by its length.
    Unknown {
        /// Enterprise number (top 20 bits of the data format).
        enterprise: u32,
        /// Format number (low 12 bits).
        format: u32,
        /// Body length.
        len: u32,
    },
}

/// Sample format number of a flow sample.
pub const SAMPLE_FLOW: u32 = 1;
/// Sample format number of a counter sample.
pub const SAMPLE_COUNTER: u32 = 2;
/// Sample format number of an expanded flow sample.
pub const SAMPLE_EXPANDED_FLOW: u32 = 3;
/// Sample format number of an expanded counter sample.
pub const SAMPLE_EXPANDED_COUNTER: u32 = 4;
/// Sample format number of a discarded-packet sample.
pub const SAMPLE_DISCARD: u32 = 5;

impl Sample<'_> {
    /// The sample's (enterprise 0) format number: 1–5, or the unknown format.
    pub fn format(&self) -> u32 {
        match self {
            Sample::Flow(f) => f.format,
            Sample::Counter(c) => c.format,
            Sample::Discard(_) => SAMPLE_DISCARD,
            Sample::Unknown { format, .. } => *format,
        }
    }
}

/// A flow sample (compact or expanded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowSample<'a> {
    /// 1 (compact) or 3 (expanded).
    pub format: u32,
    /// Sample sequence number (per source).
    pub sequence_number: u32,
    /// Data source.
    pub source_id: SourceId,
    /// 1 in N packets sampled.
    pub sampling_rate: u32,
    /// Packets that could have been sampled.
    pub sample_pool: u32,
    /// Samples lost for lack of resources.
    pub drops: u32,
    /// Input interface.
    pub input: Interface,
    /// Output interface.
    pub output: Interface,
    /// Flow records.
    pub records: Vec<FlowRecord<'a>>,
}

/// A counter sample (compact or expanded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterSample<'a> {
    /// 2 (compact) or 4 (expanded).
    pub format: u32,
    /// Sample sequence number (per source).
    pub sequence_number: u32,
    /// Data source.
    pub source_id: SourceId,
    /// Counter records.
    pub records: Vec<CounterRecord<'a>>,
}

/// A discarded-packet notification (sFlow "Dropped Packet Notification Structures").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscardSample<'a> {
    /// Sequence number (per source).
    pub sequence_number: u32,
    /// Data source.
    pub source_id: SourceId,
    /// Discards not reported because of rate limiting.
    pub drops: u32,
    /// Input interface: always `Interface::Index` (a plain ifIndex, 0 = unknown).
    pub input: Interface,
    /// Output interface: always `Interface::Index` (a plain ifIndex, 0 = unknown).
    pub output: Interface,
    /// Drop reason code (see the drops extension's `drop_reason` enumeration).
    pub reason: u32,
    /// Records describing the dropped packet.
    pub records: Vec<FlowRecord<'a>>,
}

/// Raw packet header record (flow record 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawHeader<'a> {
    /// Header protocol (1 Ethernet, 11 IPv4, 12 IPv6, …).
    pub header_protocol: u32,
    /// Length of the original frame.
    pub frame_length: u32,
    /// Bytes removed from the frame before sampling (e.g. 4 for the FCS).
    pub stripped: u32,
    /// The sampled header bytes.
    pub header: Bytes<'a>,
    /// What could be decoded from the header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded: Option<PacketSummary>,
}

/// Sampled IPv4/IPv6 record (flow records 3, 4, 1023, 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SampledIp {
    /// IP packet length (including the IP header).
    pub length: u32,
    /// IP protocol.
    pub protocol: u32,
    /// Source address.
    pub src_ip: IpAddr,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// TCP flags.
    pub tcp_flags: u32,
    /// IPv4 TOS, or IPv6 priority.
    pub tos: u32,
}

/// One segment of a BGP AS path (extended gateway record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsPathSegment {
    /// 1 = AS_SET, 2 = AS_SEQUENCE.
    pub segment_type: u32,
    /// The AS numbers.
    pub asns: Vec<u32>,
}

/// Extended gateway record (flow record 1003).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtendedGateway {
    /// BGP next hop.
    pub next_hop: Option<IpAddr>,
    /// AS of this router.
    pub as_number: u32,
    /// Source AS.
    pub src_as: u32,
    /// Source peer AS.
    pub src_peer_as: u32,
    /// Destination AS path.
    pub as_path: Vec<AsPathSegment>,
    /// BGP communities.
    pub communities: Vec<u32>,
    /// BGP local preference.
    pub local_pref: u32,
}

/// A flow record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum FlowRecord<'a> {
    /// 1: sampled packet header.
    RawHeader(RawHeader<'a>),
    /// 2: Ethernet frame data.
    EthernetFrame {
        /// Frame length.
        length: u32,
        /// Source MAC.
        src_mac: MacAddr,
        /// Destination MAC.
        dst_mac: MacAddr,
        /// EtherType.
        eth_type: u32,
    },
    /// 3: sampled IPv4.
    SampledIpv4(SampledIp),
    /// 4: sampled IPv6.
    SampledIpv6(SampledIp),
    /// 1001: extended switch data.
    ExtendedSwitch {
        /// 802.1Q VLAN of the incoming frame.
        src_vlan: u32,
        /// 802.1p priority of the incoming frame.
        src_priority: u32,
        /// 802.1Q VLAN of the outgoing frame.
        dst_vlan: u32,
        /// 802.1p priority of the outgoing frame.
        dst_priority: u32,
    },
    /// 1002: extended router data.
    ExtendedRouter {
        /// IP next hop.
        next_hop: Option<IpAddr>,
        /// Source prefix length.
        src_mask_len: u32,
        /// Destination prefix length.
        dst_mask_len: u32,
    },
    /// 1003: extended gateway (BGP) data.
    ExtendedGateway(ExtendedGateway),
    /// 1004: extended user data.
    ExtendedUser {
        /// Source user's character set (MIBenum).
        src_charset: u32,
        /// Source user.
        src_user: Text<'a>,
        /// Destination user's character set.
        dst_charset: u32,
        /// Destination user.
        dst_user: Text<'a>,
    },
    /// 1005: extended URL data.
    ExtendedUrl {
        /// 1 = source address is the server, 2 = destination is the server.
        direction: u32,
        /// URL.
        url: Text<'a>,
        /// Host header.
        host: Text<'a>,
    },
    /// 1023: IPv4 tunnel egress (the outer header).
    Ipv4TunnelEgress(SampledIp),
    /// 1024: IPv4 tunnel ingress (the outer header).
    Ipv4TunnelIngress(SampledIp),
    /// 1036: egress queue of a dropped packet (records 1036–1038 and 1042 come from the
    /// sFlow drops extension).
    EgressQueue {
        /// Queue number.
        queue: u32,
    },
    /// 1037: ACL that dropped the packet.
    ExtendedAcl {
        /// ACL number.
        number: u32,
        /// ACL name.
        name: Text<'a>,
        /// 0 unknown, 1 ingress, 2 egress.
        direction: u32,
    },
    /// 1038: function that dropped the packet.
    ExtendedFunction {
        /// Function symbol.
        symbol: Text<'a>,
    },
    /// 1042: Linux kernel drop reason of a dropped packet.
    LinuxDropReason {
        /// The kernel's reason name (e.g. `NOT_SPECIFIED`).
        reason: Text<'a>,
    },
    /// Anything else, skipped by its length.
    Unknown {
        /// Enterprise number.
        enterprise: u32,
        /// Format number.
        format: u32,
        /// Body length.
        len: u32,
    },
}

/// Generic interface counters (counter record 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // field names are the IF-MIB object names
pub struct IfCounters {
    pub if_index: u32,
    pub if_type: u32,
    pub if_speed: u64,
    /// 0 unknown, 1 full duplex, 2 half duplex, 3 in, 4 out.
    pub if_direction: u32,
    /// Bit 0 ifAdminStatus up, bit 1 ifOperStatus up.
    pub if_status: u32,
    pub in_octets: u64,
    pub in_ucast_pkts: u32,
    pub in_multicast_pkts: u32,
    pub in_broadcast_pkts: u32,
    pub in_discards: u32,
    pub in_errors: u32,
    pub in_unknown_protos: u32,
    pub out_octets: u64,
    pub out_ucast_pkts: u32,
    pub out_multicast_pkts: u32,
    pub out_broadcast_pkts: u32,
    pub out_discards: u32,
    pub out_errors: u32,
    pub promiscuous_mode: u32,
}

/// Ethernet interface counters (counter record 2), EtherLike-MIB dot3Stats*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // field names are the EtherLike-MIB object names
pub struct EthernetCounters {
    pub alignment_errors: u32,
    pub fcs_errors: u32,
    pub single_collision_frames: u32,
    pub multiple_collision_frames: u32,
    pub sqe_test_errors: u32,
    pub deferred_transmissions: u32,
    pub late_collisions: u32,
    pub excessive_collisions: u32,
    pub internal_mac_transmit_errors: u32,
    pub carrier_sense_errors: u32,
    pub frame_too_longs: u32,
    pub internal_mac_receive_errors: u32,
    pub symbol_errors: u32,
}

/// VLAN counters (counter record 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct VlanCounters {
    pub vlan_id: u32,
    pub octets: u64,
    pub ucast_pkts: u32,
    pub multicast_pkts: u32,
    pub broadcast_pkts: u32,
    pub discards: u32,
}

/// Processor counters (counter record 1001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessorCounters {
    /// CPU load over 5 s, percent × 100.
    pub cpu_5s: u32,
    /// CPU load over 1 min, percent × 100.
    pub cpu_1m: u32,
    /// CPU load over 5 min, percent × 100.
    pub cpu_5m: u32,
    /// Total memory in bytes.
    pub total_memory: u64,
    /// Free memory in bytes.
    pub free_memory: u64,
}

/// A counter record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum CounterRecord<'a> {
    /// 1: generic interface counters.
    GenericInterface(IfCounters),
    /// 2: Ethernet counters.
    Ethernet(EthernetCounters),
    /// 5: VLAN counters.
    Vlan(VlanCounters),
    /// 1001: processor counters.
    Processor(ProcessorCounters),
    /// 1005: port name.
    PortName {
        /// The interface name.
        name: Text<'a>,
    },
    /// 2000: host description (sFlow Host Structures).
    HostDescription {
        /// Host name.
        hostname: Text<'a>,
        /// Host UUID.
        uuid: Bytes<'a>,
        /// Machine type enumeration.
        machine_type: u32,
        /// OS name enumeration.
        os_name: u32,
        /// OS release.
        os_release: Text<'a>,
    },
    /// Anything else, skipped by its length.
    Unknown {
        /// Enterprise number.
        enterprise: u32,
        /// Format number.
        format: u32,
        /// Body length.
        len: u32,
    },
}

impl FlowRecord<'_> {
    /// The (enterprise, format) pair of this record.
    pub fn data_format(&self) -> (u32, u32) {
        let f = match self {
            FlowRecord::RawHeader(_) => 1,
            FlowRecord::EthernetFrame { .. } => 2,
            FlowRecord::SampledIpv4(_) => 3,
            FlowRecord::SampledIpv6(_) => 4,
            FlowRecord::ExtendedSwitch { .. } => 1001,
            FlowRecord::ExtendedRouter { .. } => 1002,
            FlowRecord::ExtendedGateway(_) => 1003,
            FlowRecord::ExtendedUser { .. } => 1004,
            FlowRecord::ExtendedUrl { .. } => 1005,
            FlowRecord::Ipv4TunnelEgress(_) => 1023,
            FlowRecord::Ipv4TunnelIngress(_) => 1024,
            FlowRecord::EgressQueue { .. } => 1036,
            FlowRecord::ExtendedAcl { .. } => 1037,
            FlowRecord::ExtendedFunction { .. } => 1038,
            FlowRecord::LinuxDropReason { .. } => 1042,
            FlowRecord::Unknown {
                enterprise, format, ..
            } => return (*enterprise, *format),
        };
        (0, f)
    }
}

impl CounterRecord<'_> {
    /// The (enterprise, format) pair of this record.
    pub fn data_format(&self) -> (u32, u32) {
        let f = match self {
            CounterRecord::GenericInterface(_) => 1,
            CounterRecord::Ethernet(_) => 2,
            CounterRecord::Vlan(_) => 5,
            CounterRecord::Processor(_) => 1001,
            CounterRecord::PortName { .. } => 1005,
            CounterRecord::HostDescription { .. } => 2000,
            CounterRecord::Unknown {
                enterprise, format, ..
            } => return (*enterprise, *format),
        };
        (0, f)
    }
}
