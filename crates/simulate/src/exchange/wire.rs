//! sFlow v5 encoder and pcap writer for the simulated exchange point.
//!
//! Writes exactly what `sflow::decode` reads: datagrams with an IPv4 agent address, flow
//! samples (format 1) carrying one raw packet header record (format 1, Ethernet / IPv4 /
//! TCP), and counter samples (format 2) carrying one generic interface record (format 1).
//! Each datagram is wrapped in Ethernet / IPv4 / UDP to port 6343 inside a classic pcap
//! (link type 1, microsecond stamps). Layouts: "sFlow Version 5" (sflow.org, 2004) §5 and
//! the tcpdump.org pcap format.

use std::net::Ipv4Addr;

/// UDP port sFlow collectors listen on (and the destination of every written datagram).
pub const SFLOW_UDP_PORT: u16 = 6343;
/// Bytes of the sampled frame copied into a raw header record (the usual agent default).
pub const HEADER_BYTES: usize = 128;

/// One sampled TCP packet, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledPacket {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP flags (low 8 bits).
    pub flags: u8,
    /// IP total length of the packet on the wire.
    pub ip_len: u16,
    /// IP protocol (6 TCP, 17 UDP).
    pub proto: u8,
}

/// A flow sample: the packet plus the agent's sampling state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSampleOut {
    /// Per-source flow sample sequence number.
    pub sequence: u32,
    /// Input interface (ifIndex) the packet was sampled on; also the data source.
    pub if_index: u32,
    /// Sampling rate N (1 in N).
    pub rate: u32,
    /// Packets that could have been sampled so far on this source (wraps).
    pub pool: u32,
    /// The sampled packet.
    pub packet: SampledPacket,
}

/// A counter sample of one interface (generic interface counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSampleOut {
    /// Per-source counter sample sequence number.
    pub sequence: u32,
    /// Interface.
    pub if_index: u32,
    /// Octets received.
    pub in_octets: u64,
    /// Unicast packets received (wraps).
    pub in_pkts: u32,
}

/// One sample of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleOut {
    /// A flow sample.
    Flow(FlowSampleOut),
    /// A counter sample.
    Counter(CounterSampleOut),
}

fn be32(v: &mut Vec<u8>, w: u32) {
    v.extend_from_slice(&w.to_be_bytes());
}

fn be64(v: &mut Vec<u8>, w: u64) {
    v.extend_from_slice(&w.to_be_bytes());
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// The first bytes of the sampled frame: Ethernet II, IPv4 (no options), TCP (no options) or
/// UDP, then zero payload up to the captured length.
fn frame_header(p: &SampledPacket) -> (Vec<u8>, u32) {
    let mut h = Vec::with_capacity(HEADER_BYTES);
    h.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00]);
    let ip_len = p.ip_len.max(40);
    h.extend_from_slice(&[0x45, 0]);
    h.extend_from_slice(&ip_len.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0, 64, p.proto, 0, 0]);
    h.extend_from_slice(&p.src.octets());
    h.extend_from_slice(&p.dst.octets());
    h.extend_from_slice(&p.sport.to_be_bytes());
    h.extend_from_slice(&p.dport.to_be_bytes());
    if p.proto == 6 {
        h.extend_from_slice(&[
            0, 0, 0, 1, 0, 0, 0, 1, 0x50, p.flags, 0xff, 0xff, 0, 0, 0, 0,
        ]);
    } else {
        let ulen = ip_len.saturating_sub(20);
        h.extend_from_slice(&ulen.to_be_bytes());
        h.extend_from_slice(&[0, 0]);
    }
    let frame_len = u32::from(ip_len) + 14 + 4; // + Ethernet header and FCS
    let captured = (frame_len as usize - 4).min(HEADER_BYTES);
    h.resize(captured.max(h.len()), 0);
    (h, frame_len)
}

fn flow_sample(out: &mut Vec<u8>, s: &FlowSampleOut) {
    let (hdr, frame_len) = frame_header(&s.packet);
    let mut rec = Vec::with_capacity(16 + hdr.len());
    be32(&mut rec, 1); // header protocol: Ethernet
    be32(&mut rec, frame_len);
    be32(&mut rec, 4); // stripped: FCS
    be32(&mut rec, hdr.len() as u32);
    rec.extend_from_slice(&hdr);
    pad4(&mut rec);
    let mut body = Vec::with_capacity(40 + rec.len());
    be32(&mut body, s.sequence);
    be32(&mut body, s.if_index & 0x00ff_ffff); // source id: type 0 (ifIndex)
    be32(&mut body, s.rate);
    be32(&mut body, s.pool);
    be32(&mut body, 0); // drops
    be32(&mut body, s.if_index & 0x3fff_ffff); // input
    be32(&mut body, 0); // output unknown
    be32(&mut body, 1); // one record
    be32(&mut body, 1); // raw packet header
    be32(&mut body, rec.len() as u32);
    body.extend_from_slice(&rec);
    be32(out, 1); // flow sample
    be32(out, body.len() as u32);
    out.extend_from_slice(&body);
}

fn counter_sample(out: &mut Vec<u8>, s: &CounterSampleOut) {
    let mut rec = Vec::with_capacity(88);
    be32(&mut rec, s.if_index);
    be32(&mut rec, 6); // ethernetCsmacd
    be64(&mut rec, 10_000_000_000);
    be32(&mut rec, 1); // full duplex
    be32(&mut rec, 3); // admin and oper up
    be64(&mut rec, s.in_octets);
    be32(&mut rec, s.in_pkts);
    for _ in 0..5 {
        be32(&mut rec, 0);
    }
    be64(&mut rec, 0);
    for _ in 0..6 {
        be32(&mut rec, 0);
    }
    let mut body = Vec::with_capacity(20 + rec.len());
    be32(&mut body, s.sequence);
    be32(&mut body, s.if_index & 0x00ff_ffff);
    be32(&mut body, 1);
    be32(&mut body, 1); // generic interface counters
    be32(&mut body, rec.len() as u32);
    body.extend_from_slice(&rec);
    be32(out, 2); // counter sample
    be32(out, body.len() as u32);
    out.extend_from_slice(&body);
}

/// Encodes one sFlow v5 datagram.
pub fn datagram(agent: Ipv4Addr, sequence: u32, uptime_ms: u32, samples: &[SampleOut]) -> Vec<u8> {
    let mut dg = Vec::with_capacity(28 + samples.len() * 200);
    be32(&mut dg, 5);
    be32(&mut dg, 1); // IPv4 agent
    dg.extend_from_slice(&agent.octets());
    be32(&mut dg, 0); // sub-agent
    be32(&mut dg, sequence);
    be32(&mut dg, uptime_ms);
    be32(&mut dg, samples.len() as u32);
    for s in samples {
        match s {
            SampleOut::Flow(f) => flow_sample(&mut dg, f),
            SampleOut::Counter(c) => counter_sample(&mut dg, c),
        }
    }
    dg
}

/// A classic pcap (Ethernet, microseconds) being written into memory-bounded chunks.
pub struct PcapWriter<W: std::io::Write> {
    out: W,
    collector: Ipv4Addr,
}

impl<W: std::io::Write> PcapWriter<W> {
    /// Writes the file header; datagrams are addressed to `collector`.
    pub fn new(mut out: W, collector: Ipv4Addr) -> std::io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, collector })
    }

    /// Writes one datagram from `agent` (also the UDP source) at `ts_us` (Unix microseconds).
    pub fn write(&mut self, ts_us: i64, agent: Ipv4Addr, dg: &[u8]) -> std::io::Result<()> {
        let mut f = Vec::with_capacity(42 + dg.len());
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x03, 0x02, 0, 0, 0, 0, 0x04, 0x08, 0x00]);
        let ip_len = (20 + 8 + dg.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&ip_len.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&agent.octets());
        f.extend_from_slice(&self.collector.octets());
        f.extend_from_slice(&SFLOW_UDP_PORT.to_be_bytes());
        f.extend_from_slice(&SFLOW_UDP_PORT.to_be_bytes());
        f.extend_from_slice(&((8 + dg.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(dg);
        let secs = ts_us.div_euclid(1_000_000) as u32;
        let us = ts_us.rem_euclid(1_000_000) as u32;
        let mut rec = Vec::with_capacity(16);
        for w in [secs, us, f.len() as u32, f.len() as u32] {
            rec.extend_from_slice(&w.to_le_bytes());
        }
        self.out.write_all(&rec)?;
        self.out.write_all(&f)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
