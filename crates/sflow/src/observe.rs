//! The analysis view of flow samples: one 5-tuple per sampled packet.

use crate::types::{Datagram, FlowRecord, Sample};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};

/// A sampled packet reduced to what traffic analysis needs.
///
/// Built from the first raw-header record whose IP layer decoded; failing that, from a
/// sampled IPv4/IPv6 record (3/4). Ports and flags are 0 when the protocol has none or the
/// sampled header ended before them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlowObservation {
    /// The sFlow agent (0.0.0.0 when the agent address type was "unknown").
    pub agent: IpAddr,
    /// 1 in N packets sampled: each observation stands for about N packets.
    pub sampling_rate: u32,
    /// IP source.
    pub src_ip: IpAddr,
    /// IP destination.
    pub dst_ip: IpAddr,
    /// IP protocol.
    pub protocol: u8,
    /// TCP/UDP source port, or 0.
    pub src_port: u16,
    /// TCP/UDP destination port, or 0.
    pub dst_port: u16,
    /// TCP flags, or 0.
    pub tcp_flags: u16,
    /// IP length (IPv4 total length, IPv6 payload + 40).
    pub ip_len: u32,
    /// Original frame length (raw header record), or the IP length of a sampled-IP record.
    pub frame_len: u32,
}

impl<'a> Datagram<'a> {
    /// The flow samples (compact and expanded) of this datagram that carry an IP packet.
    pub fn flow_observations(&self) -> impl Iterator<Item = FlowObservation> + '_ {
        let agent = self.agent.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.samples.iter().filter_map(move |s| match s {
            Sample::Flow(f) => observe(agent, f.sampling_rate, &f.records),
            _ => None,
        })
    }
}

fn observe(
    agent: IpAddr,
    sampling_rate: u32,
    records: &[FlowRecord<'_>],
) -> Option<FlowObservation> {
    let from_header = records.iter().find_map(|r| match r {
        FlowRecord::RawHeader(h) => {
            let ip = h.decoded.as_ref()?.ip?;
            Some(FlowObservation {
                agent,
                sampling_rate,
                src_ip: ip.src,
                dst_ip: ip.dst,
                protocol: ip.protocol,
                src_port: ip.src_port.unwrap_or(0),
                dst_port: ip.dst_port.unwrap_or(0),
                tcp_flags: ip.tcp_flags.unwrap_or(0),
                ip_len: ip.ip_len,
                frame_len: h.frame_length,
            })
        }
        _ => None,
    });
    from_header.or_else(|| {
        records.iter().find_map(|r| match r {
            FlowRecord::SampledIpv4(s) | FlowRecord::SampledIpv6(s) => Some(FlowObservation {
                agent,
                sampling_rate,
                src_ip: s.src_ip,
                dst_ip: s.dst_ip,
                protocol: s.protocol as u8,
                src_port: s.src_port as u16,
                dst_port: s.dst_port as u16,
                tcp_flags: (s.tcp_flags & 0x1ff) as u16,
                ip_len: s.length,
                frame_len: s.length,
            }),
            _ => None,
        })
    })
}
