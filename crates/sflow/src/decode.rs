//! The datagram decoder.

use crate::error::{Context, Error};
use crate::packet::{summarize, MacAddr};
use crate::types::*;
use crate::xdr::{bounded_capacity, Reader};
use serde::Serialize;

/// The only sFlow version decoded.
pub const SFLOW_VERSION: u32 = 5;
/// Smallest possible sample on the wire (format + length words); bounds `Vec` reservations.
const MIN_SAMPLE_LEN: usize = 8;
/// Smallest possible record on the wire (format + length words).
const MIN_RECORD_LEN: usize = 8;
/// Smallest AS path segment (type + count).
const MIN_AS_SEGMENT_LEN: usize = 8;
/// Size of one XDR word.
const WORD: usize = 4;

/// The result of decoding one datagram: what was decoded, plus the error that stopped
/// decoding, if any. When `error` is set, the last sample may hold only the records that
/// were decoded before the error.
#[must_use]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decoded<'a> {
    /// The datagram, `None` only when its header could not be read.
    pub datagram: Option<Datagram<'a>>,
    /// The first error met.
    pub error: Option<Error>,
}

impl<'a> Decoded<'a> {
    /// The datagram only when it decoded completely.
    pub fn complete(self) -> Result<Datagram<'a>, Error> {
        match (self.datagram, self.error) {
            (_, Some(e)) => Err(e),
            (Some(d), None) => Ok(d),
            // A datagram is always present when there is no error.
            (None, None) => Err(Error::Truncated {
                context: Context::DatagramHeader,
                offset: 0,
                needed: WORD,
                available: 0,
            }),
        }
    }
}

/// Decodes one sFlow v5 datagram (a UDP payload). Never panics.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    let mut r = Reader::new(buf);
    let mut dg = match header(&mut r) {
        Ok(d) => d,
        Err(e) => {
            return Decoded {
                datagram: None,
                error: Some(e),
            }
        }
    };
    let error = samples(&mut r, &mut dg).err();
    dg.length = r.pos();
    Decoded {
        datagram: Some(dg),
        error,
    }
}

fn header<'a>(r: &mut Reader<'a>) -> Result<Datagram<'a>, Error> {
    let c = Context::DatagramHeader;
    let version = r.u32(c)?;
    if version != SFLOW_VERSION {
        return Err(Error::UnsupportedVersion { version, offset: 0 });
    }
    let agent = r.address(c)?;
    Ok(Datagram {
        version,
        agent,
        sub_agent_id: r.u32(c)?,
        sequence_number: r.u32(c)?,
        uptime: r.u32(c)?,
        sample_count: r.u32(c)?,
        samples: Vec::new(),
        length: 0,
    })
}

fn samples<'a>(r: &mut Reader<'a>, dg: &mut Datagram<'a>) -> Result<(), Error> {
    dg.samples.reserve(bounded_capacity(
        dg.sample_count,
        r.remaining(),
        MIN_SAMPLE_LEN,
    ));
    for _ in 0..dg.sample_count {
        let (data_format, len, mut body, overrun) = r.envelope(Context::SampleHeader)?;
        let enterprise = data_format >> 12;
        let format = data_format & 0xfff;
        let res = match (enterprise, format) {
            (0, SAMPLE_FLOW | SAMPLE_EXPANDED_FLOW) => {
                flow_sample(&mut body, format, &mut dg.samples)
            }
            (0, SAMPLE_COUNTER | SAMPLE_EXPANDED_COUNTER) => {
                counter_sample(&mut body, format, &mut dg.samples)
            }
            (0, SAMPLE_DISCARD) => discard_sample(&mut body, &mut dg.samples),
            _ => {
                dg.samples.push(Sample::Unknown {
                    enterprise,
                    format,
                    len,
                });
                Ok(())
            }
        };
        res?;
        if let Some(e) = overrun {
            return Err(e);
        }
    }
    Ok(())
}

/// Decodes a flow sample; pushes it (possibly partial) before returning a record error.
fn flow_sample<'a>(
    r: &mut Reader<'a>,
    format: u32,
    out: &mut Vec<Sample<'a>>,
) -> Result<(), Error> {
    let c = Context::FlowSample;
    let sequence_number = r.u32(c)?;
    let expanded = format == SAMPLE_EXPANDED_FLOW;
    let source_id = if expanded {
        SourceId {
            source_type: r.u32(c)?,
            index: r.u32(c)?,
        }
    } else {
        SourceId::from_compact(r.u32(c)?)
    };
    let sampling_rate = r.u32(c)?;
    let sample_pool = r.u32(c)?;
    let drops = r.u32(c)?;
    let (input, output) = if expanded {
        let inf = r.u32(c)?;
        let inv = r.u32(c)?;
        let outf = r.u32(c)?;
        let outv = r.u32(c)?;
        (
            Interface::from_parts(inf, inv),
            Interface::from_parts(outf, outv),
        )
    } else {
        (
            Interface::from_compact(r.u32(c)?),
            Interface::from_compact(r.u32(c)?),
        )
    };
    let n = r.u32(c)?;
    out.push(Sample::Flow(FlowSample {
        format,
        sequence_number,
        source_id,
        sampling_rate,
        sample_pool,
        drops,
        input,
        output,
        records: Vec::with_capacity(bounded_capacity(n, r.remaining(), MIN_RECORD_LEN)),
    }));
    let Some(Sample::Flow(s)) = out.last_mut() else {
        // Just pushed a flow sample.
        return Ok(());
    };
    flow_records(r, n, &mut s.records)
}

fn discard_sample<'a>(r: &mut Reader<'a>, out: &mut Vec<Sample<'a>>) -> Result<(), Error> {
    let c = Context::DiscardSample;
    let sequence_number = r.u32(c)?;
    let source_id = SourceId {
        source_type: r.u32(c)?,
        index: r.u32(c)?,
    };
    let drops = r.u32(c)?;
    // The drops extension defines these as plain ifIndex values (0 = unknown), without
    // the flow sample's format bits.
    let input = Interface::Index(r.u32(c)?);
    let output = Interface::Index(r.u32(c)?);
    let reason = r.u32(c)?;
    let n = r.u32(c)?;
    out.push(Sample::Discard(DiscardSample {
        sequence_number,
        source_id,
        drops,
        input,
        output,
        reason,
        records: Vec::with_capacity(bounded_capacity(n, r.remaining(), MIN_RECORD_LEN)),
    }));
    let Some(Sample::Discard(s)) = out.last_mut() else {
        // Just pushed a discard sample.
        return Ok(());
    };
    flow_records(r, n, &mut s.records)
}

fn counter_sample<'a>(
    r: &mut Reader<'a>,
    format: u32,
    out: &mut Vec<Sample<'a>>,
) -> Result<(), Error> {
    let c = Context::CounterSample;
    let sequence_number = r.u32(c)?;
    let source_id = if format == SAMPLE_EXPANDED_COUNTER {
        SourceId {
            source_type: r.u32(c)?,
            index: r.u32(c)?,
        }
    } else {
        SourceId::from_compact(r.u32(c)?)
    };
    let n = r.u32(c)?;
    out.push(Sample::Counter(CounterSample {
        format,
        sequence_number,
        source_id,
        records: Vec::with_capacity(bounded_capacity(n, r.remaining(), MIN_RECORD_LEN)),
    }));
    let Some(Sample::Counter(s)) = out.last_mut() else {
        // Just pushed a counter sample.
        return Ok(());
    };
    for _ in 0..n {
        let (data_format, len, mut body, overrun) = r.envelope(Context::CounterRecordHeader)?;
        s.records.push(counter_record(&mut body, data_format, len)?);
        if let Some(e) = overrun {
            return Err(e);
        }
    }
    Ok(())
}

fn flow_records<'a>(
    r: &mut Reader<'a>,
    n: u32,
    out: &mut Vec<FlowRecord<'a>>,
) -> Result<(), Error> {
    for _ in 0..n {
        let (data_format, len, mut body, overrun) = r.envelope(Context::FlowRecordHeader)?;
        out.push(flow_record(&mut body, data_format, len)?);
        if let Some(e) = overrun {
            return Err(e);
        }
    }
    Ok(())
}

fn sampled_ip(r: &mut Reader<'_>, v6: bool) -> Result<SampledIp, Error> {
    let c = Context::FlowRecord;
    let length = r.u32(c)?;
    let protocol = r.u32(c)?;
    let (src_ip, dst_ip) = if v6 {
        (r.ipv6(c)?.into(), r.ipv6(c)?.into())
    } else {
        (r.ipv4(c)?.into(), r.ipv4(c)?.into())
    };
    Ok(SampledIp {
        length,
        protocol,
        src_ip,
        dst_ip,
        src_port: r.u32(c)?,
        dst_port: r.u32(c)?,
        tcp_flags: r.u32(c)?,
        tos: r.u32(c)?,
    })
}

fn mac(r: &mut Reader<'_>) -> Result<MacAddr, Error> {
    let b = r.fixed_opaque(6, Context::FlowRecord)?;
    // `fixed_opaque(6)` returned exactly 6 bytes.
    Ok(MacAddr::from_slice(b).unwrap_or_default())
}

fn flow_record<'a>(
    r: &mut Reader<'a>,
    data_format: u32,
    len: u32,
) -> Result<FlowRecord<'a>, Error> {
    let c = Context::FlowRecord;
    let enterprise = data_format >> 12;
    let format = data_format & 0xfff;
    if enterprise != 0 {
        return Ok(FlowRecord::Unknown {
            enterprise,
            format,
            len,
        });
    }
    Ok(match format {
        1 => {
            let header_protocol = r.u32(c)?;
            let frame_length = r.u32(c)?;
            let stripped = r.u32(c)?;
            let header = r.opaque(c)?;
            FlowRecord::RawHeader(RawHeader {
                header_protocol,
                frame_length,
                stripped,
                header: Bytes(header),
                decoded: summarize(header_protocol, header),
            })
        }
        2 => FlowRecord::EthernetFrame {
            length: r.u32(c)?,
            src_mac: mac(r)?,
            dst_mac: mac(r)?,
            eth_type: r.u32(c)?,
        },
        3 => FlowRecord::SampledIpv4(sampled_ip(r, false)?),
        4 => FlowRecord::SampledIpv6(sampled_ip(r, true)?),
        1001 => FlowRecord::ExtendedSwitch {
            src_vlan: r.u32(c)?,
            src_priority: r.u32(c)?,
            dst_vlan: r.u32(c)?,
            dst_priority: r.u32(c)?,
        },
        1002 => FlowRecord::ExtendedRouter {
            next_hop: r.address(c)?,
            src_mask_len: r.u32(c)?,
            dst_mask_len: r.u32(c)?,
        },
        1003 => FlowRecord::ExtendedGateway(gateway(r)?),
        1004 => FlowRecord::ExtendedUser {
            src_charset: r.u32(c)?,
            src_user: Text(r.opaque(c)?),
            dst_charset: r.u32(c)?,
            dst_user: Text(r.opaque(c)?),
        },
        1005 => FlowRecord::ExtendedUrl {
            direction: r.u32(c)?,
            url: Text(r.opaque(c)?),
            host: Text(r.opaque(c)?),
        },
        1023 => FlowRecord::Ipv4TunnelEgress(sampled_ip(r, false)?),
        1024 => FlowRecord::Ipv4TunnelIngress(sampled_ip(r, false)?),
        1036 => FlowRecord::EgressQueue { queue: r.u32(c)? },
        1037 => FlowRecord::ExtendedAcl {
            number: r.u32(c)?,
            name: Text(r.opaque(c)?),
            direction: r.u32(c)?,
        },
        1038 => FlowRecord::ExtendedFunction {
            symbol: Text(r.opaque(c)?),
        },
        1042 => FlowRecord::LinuxDropReason {
            reason: Text(r.opaque(c)?),
        },
        _ => FlowRecord::Unknown {
            enterprise,
            format,
            len,
        },
    })
}

fn gateway(r: &mut Reader<'_>) -> Result<ExtendedGateway, Error> {
    let c = Context::FlowRecord;
    let next_hop = r.address(c)?;
    let as_number = r.u32(c)?;
    let src_as = r.u32(c)?;
    let src_peer_as = r.u32(c)?;
    let nseg = r.u32(c)?;
    let mut as_path = Vec::with_capacity(bounded_capacity(nseg, r.remaining(), MIN_AS_SEGMENT_LEN));
    for _ in 0..nseg {
        let segment_type = r.u32(c)?;
        let n = r.u32(c)?;
        let mut asns = Vec::with_capacity(bounded_capacity(n, r.remaining(), WORD));
        for _ in 0..n {
            asns.push(r.u32(c)?);
        }
        as_path.push(AsPathSegment { segment_type, asns });
    }
    let ncomm = r.u32(c)?;
    let mut communities = Vec::with_capacity(bounded_capacity(ncomm, r.remaining(), WORD));
    for _ in 0..ncomm {
        communities.push(r.u32(c)?);
    }
    Ok(ExtendedGateway {
        next_hop,
        as_number,
        src_as,
        src_peer_as,
        as_path,
        communities,
        local_pref: r.u32(c)?,
    })
}

fn counter_record<'a>(
    r: &mut Reader<'a>,
    data_format: u32,
    len: u32,
) -> Result<CounterRecord<'a>, Error> {
    let c = Context::CounterRecord;
    let enterprise = data_format >> 12;
    let format = data_format & 0xfff;
    if enterprise != 0 {
        return Ok(CounterRecord::Unknown {
            enterprise,
            format,
            len,
        });
    }
    Ok(match format {
        1 => CounterRecord::GenericInterface(IfCounters {
            if_index: r.u32(c)?,
            if_type: r.u32(c)?,
            if_speed: r.u64(c)?,
            if_direction: r.u32(c)?,
            if_status: r.u32(c)?,
            in_octets: r.u64(c)?,
            in_ucast_pkts: r.u32(c)?,
            in_multicast_pkts: r.u32(c)?,
            in_broadcast_pkts: r.u32(c)?,
            in_discards: r.u32(c)?,
            in_errors: r.u32(c)?,
            in_unknown_protos: r.u32(c)?,
            out_octets: r.u64(c)?,
            out_ucast_pkts: r.u32(c)?,
            out_multicast_pkts: r.u32(c)?,
            out_broadcast_pkts: r.u32(c)?,
            out_discards: r.u32(c)?,
            out_errors: r.u32(c)?,
            promiscuous_mode: r.u32(c)?,
        }),
        2 => CounterRecord::Ethernet(EthernetCounters {
            alignment_errors: r.u32(c)?,
            fcs_errors: r.u32(c)?,
            single_collision_frames: r.u32(c)?,
            multiple_collision_frames: r.u32(c)?,
            sqe_test_errors: r.u32(c)?,
            deferred_transmissions: r.u32(c)?,
            late_collisions: r.u32(c)?,
            excessive_collisions: r.u32(c)?,
            internal_mac_transmit_errors: r.u32(c)?,
            carrier_sense_errors: r.u32(c)?,
            frame_too_longs: r.u32(c)?,
            internal_mac_receive_errors: r.u32(c)?,
            symbol_errors: r.u32(c)?,
        }),
        5 => CounterRecord::Vlan(VlanCounters {
            vlan_id: r.u32(c)?,
            octets: r.u64(c)?,
            ucast_pkts: r.u32(c)?,
            multicast_pkts: r.u32(c)?,
            broadcast_pkts: r.u32(c)?,
            discards: r.u32(c)?,
        }),
        1001 => CounterRecord::Processor(ProcessorCounters {
            cpu_5s: r.u32(c)?,
            cpu_1m: r.u32(c)?,
            cpu_5m: r.u32(c)?,
            total_memory: r.u64(c)?,
            free_memory: r.u64(c)?,
        }),
        1005 => CounterRecord::PortName {
            name: Text(r.opaque(c)?),
        },
        2000 => CounterRecord::HostDescription {
            hostname: Text(r.opaque(c)?),
            uuid: Bytes(r.bytes(16, c)?),
            machine_type: r.u32(c)?,
            os_name: r.u32(c)?,
            os_release: Text(r.opaque(c)?),
        },
        _ => CounterRecord::Unknown {
            enterprise,
            format,
            len,
        },
    })
}
