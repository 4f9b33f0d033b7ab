//! Decoded values against expectations published by other decoders' test suites:
//! Telegraf's `expected.out` (InfluxDB line protocol), the goflow2 drop-record tests, the
//! akvorado interface-encoding and sampled-header tests (values cross-checked with the
//! tshark `-V` text of the same captures), and the corpus README's counts.

mod common;

use common::*;
use sflow::{
    CounterRecord, Datagram, FlowRecord, FlowSample, Interface, IpSummary, PacketSummary, Sample,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Parses one InfluxDB line-protocol row into its field map (tags are ignored; string
/// values lose their quotes, integer values their `u` suffix).
fn line_fields(line: &str) -> BTreeMap<String, String> {
    let mut parts = line.splitn(3, ' ');
    let _measurement_and_tags = parts.next();
    let fields = parts.next().unwrap_or("");
    let mut m = BTreeMap::new();
    // Field values in these files hold no commas or spaces inside quotes.
    for kv in fields.split(',') {
        if let Some((k, v)) = kv.split_once('=') {
            let v = v.trim_matches('"');
            let v = v
                .strip_suffix('u')
                .filter(|n| n.parse::<u64>().is_ok())
                .unwrap_or(v);
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

fn raw_header<'a, 'b>(records: &'b [FlowRecord<'a>]) -> Option<&'b sflow::RawHeader<'a>> {
    records.iter().find_map(|r| match r {
        FlowRecord::RawHeader(h) => Some(h),
        _ => None,
    })
}

fn switch(records: &[FlowRecord<'_>]) -> Option<(u32, u32, u32, u32)> {
    records.iter().find_map(|r| match *r {
        FlowRecord::ExtendedSwitch {
            src_vlan,
            src_priority,
            dst_vlan,
            dst_priority,
        } => Some((src_vlan, src_priority, dst_vlan, dst_priority)),
        _ => None,
    })
}

/// Our value for a Telegraf field of a flow row, or `None` when we do not map that field.
fn flow_field(d: &Datagram<'_>, f: &FlowSample<'_>, key: &str) -> Option<String> {
    let h = raw_header(&f.records);
    let pkt: Option<&PacketSummary> = h.and_then(|h| h.decoded.as_ref());
    let ip: Option<&IpSummary> = pkt.and_then(|p| p.ip.as_ref());
    let sw = switch(&f.records);
    let v6 = matches!(ip.map(|i| i.src), Some(IpAddr::V6(_)));
    Some(match key {
        "agent_ip" => d.agent?.to_string(),
        "agent_subid" => d.sub_agent_id.to_string(),
        "sys_uptime" => d.uptime.to_string(),
        "seq_number" => f.sequence_number.to_string(),
        "sampling_interval" => f.sampling_rate.to_string(),
        "in_total_packets" => f.sample_pool.to_string(),
        "sampling_drops" => f.drops.to_string(),
        // Telegraf reports the data source as in_snmp, and the output ifIndex as out_snmp.
        "in_snmp" => f.source_id.index.to_string(),
        "out_snmp" => f.output.if_index()?.to_string(),
        "direction" => if f.input.value() == f.source_id.index {
            "ingress"
        } else {
            "egress"
        }
        .into(),
        "l2_bytes" => h?.frame_length.to_string(),
        "in_src_mac" => pkt?.src_mac?.to_string(),
        "out_dst_mac" => pkt?.dst_mac?.to_string(),
        "src" => ip?.src.to_string(),
        "dst" => ip?.dst.to_string(),
        "src_port" => ip?.src_port?.to_string(),
        "dst_port" => ip?.dst_port?.to_string(),
        "ttl" => ip?.ttl.to_string(),
        "src_tos" => ip?.tos.to_string(),
        "ipv4_total_len" if !v6 => ip?.ip_len.to_string(),
        "ipv6_total_len" if v6 => (ip?.ip_len - 40).to_string(),
        "ip_version" => if v6 { "IPv6" } else { "IPv4" }.into(),
        "protocol" => match ip?.protocol {
            6 => "tcp".into(),
            17 => "udp".into(),
            p => p.to_string(),
        },
        "vlan_src" => sw?.0.to_string(),
        "vlan_src_priority" => sw?.1.to_string(),
        "vlan_dst" => sw?.2.to_string(),
        "vlan_dst_priority" => sw?.3.to_string(),
        _ => return None,
    })
}

/// Our value for a Telegraf field of a counter row.
fn counter_field(
    d: &Datagram<'_>,
    seq: u32,
    recs: &[CounterRecord<'_>],
    key: &str,
) -> Option<String> {
    let g = recs.iter().find_map(|r| match r {
        CounterRecord::GenericInterface(g) => Some(*g),
        _ => None,
    });
    let e = recs.iter().find_map(|r| match r {
        CounterRecord::Ethernet(e) => Some(*e),
        _ => None,
    });
    let name = recs.iter().find_map(|r| match r {
        CounterRecord::PortName { name } => Some(name.to_string()),
        _ => None,
    });
    Some(match key {
        "agent_ip" => d.agent?.to_string(),
        "agent_subid" => d.sub_agent_id.to_string(),
        "sys_uptime" => d.uptime.to_string(),
        "seq_number" => seq.to_string(),
        "interface" | "in_snmp" => g?.if_index.to_string(),
        "interface_type" => g?.if_type.to_string(),
        "speed" => g?.if_speed.to_string(),
        // ifStatus bit 1 = ifOperStatus up.
        "status" => if g?.if_status & 2 != 0 { "up" } else { "down" }.into(),
        "in_bytes" => g?.in_octets.to_string(),
        "in_unicast_packets_total" => g?.in_ucast_pkts.to_string(),
        "in_mcast_packets_total" => g?.in_multicast_pkts.to_string(),
        "in_broadcast_packets_total" => g?.in_broadcast_pkts.to_string(),
        "in_dropped_packets" => g?.in_discards.to_string(),
        "in_errors" => g?.in_errors.to_string(),
        "in_unknown_protocol" => g?.in_unknown_protos.to_string(),
        "out_bytes" => g?.out_octets.to_string(),
        "out_unicast_packets_total" => g?.out_ucast_pkts.to_string(),
        "out_mcast_packets_total" => g?.out_multicast_pkts.to_string(),
        "out_broadcast_packets_total" => g?.out_broadcast_pkts.to_string(),
        "out_dropped_packets" => g?.out_discards.to_string(),
        "out_errors" => g?.out_errors.to_string(),
        "promiscuous" => g?.promiscuous_mode.to_string(),
        "errors_alignment" => e?.alignment_errors.to_string(),
        "errors_fcs" => e?.fcs_errors.to_string(),
        "collision_frames_single" => e?.single_collision_frames.to_string(),
        "collision_frames_multi" => e?.multiple_collision_frames.to_string(),
        "errors_sqetest" => e?.sqe_test_errors.to_string(),
        "deferred" => e?.deferred_transmissions.to_string(),
        "collisions_late" => e?.late_collisions.to_string(),
        "collisions_excessive" => e?.excessive_collisions.to_string(),
        "errors_internal_mac_tx" => e?.internal_mac_transmit_errors.to_string(),
        "errors_carrier_sense" => e?.carrier_sense_errors.to_string(),
        "errors_frame_too_long" => e?.frame_too_longs.to_string(),
        "errors_internal_mac_rx" => e?.internal_mac_receive_errors.to_string(),
        "errors_symbols" => e?.symbol_errors.to_string(),
        "port_name" => name?,
        _ => return None,
    })
}

/// Our value for a Telegraf field of a discard row.
fn discard_field(d: &Datagram<'_>, s: &sflow::DiscardSample<'_>, key: &str) -> Option<String> {
    Some(match key {
        "agent_ip" => d.agent?.to_string(),
        "agent_subid" => d.sub_agent_id.to_string(),
        "sys_uptime" => d.uptime.to_string(),
        "seq_number" => s.sequence_number.to_string(),
        "in_snmp" => s.input.if_index()?.to_string(),
        "out_snmp" => s.output.if_index()?.to_string(),
        "reason" => s.reason.to_string(),
        "sampling_drops" => s.drops.to_string(),
        "out_queue" => s.records.iter().find_map(|r| match r {
            FlowRecord::EgressQueue { queue } => Some(queue.to_string()),
            _ => None,
        })?,
        _ => return None,
    })
}

/// Telegraf fields we deliberately do not compare, with the reason:
/// * `source`/`version`: tags, not decoded data; `ip_version` of counter/discard rows is
///   the agent's address family; `type`/`l2_protocol`/`datalink_frame_type`: labels;
/// * `ip_total_len`: Telegraf's IP payload length (we expose the IPv4/IPv6 total length,
///   checked through `ipv4_total_len`/`ipv6_total_len`);
/// * `ipv4_id`, `ipv4_inet_header_len`, `fragment_flags`, `fragment_offset`: IP header
///   details the summary does not keep;
/// * `protocol="hopopt"`: Telegraf stops at the IPv6 hop-by-hop header; we skip extension
///   headers and report the upper-layer protocol (58, ICMPv6 MLD), so it differs by design;
/// * `direction` of counter rows.
const NOT_COMPARED: &[&str] = &[
    "ip_total_len",
    "ipv4_id",
    "ipv4_inet_header_len",
    "fragment_flags",
    "fragment_offset",
    "type",
    "l2_protocol",
    "datalink_frame_type",
];

#[test]
fn telegraf_expected_out() {
    let cases = [
        (
            "sflow_v5_example__sflow_v5.bin",
            "sflow_v5_example__expected.out",
        ),
        (
            "sflow_issue_15375__sflow_drop_1036.bin",
            "sflow_issue_15375__expected.out",
        ),
        (
            "sflow_issue_15918__message.bin",
            "sflow_issue_15918__expected.out",
        ),
        (
            "sflow_issue_18876__message.bin",
            "sflow_issue_18876__expected.out",
        ),
    ];
    let mut compared = 0;
    let mut bad = Vec::new();
    for (bin, out) in cases {
        let bytes = read(&format!("telegraf/{bin}"));
        let d = sflow::decode(&bytes).complete().expect(bin);
        let text = String::from_utf8(read(&format!("telegraf/{out}"))).expect("utf-8");
        let rows: Vec<_> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(line_fields)
            .collect();
        assert_eq!(rows.len(), d.samples.len(), "{bin}: one row per sample");
        for row in rows {
            let seq: u32 = row["seq_number"].parse().expect("seq");
            let sample = d
                .samples
                .iter()
                .find(|s| match s {
                    Sample::Flow(f) => f.sequence_number == seq && row.contains_key("l2_bytes"),
                    Sample::Counter(c) => c.sequence_number == seq && row.contains_key("in_bytes"),
                    Sample::Discard(x) => x.sequence_number == seq && row.contains_key("reason"),
                    _ => false,
                })
                .unwrap_or_else(|| panic!("{bin}: no sample for row {row:?}"));
            for (k, v) in &row {
                if NOT_COMPARED.contains(&k.as_str()) || (k == "protocol" && v == "hopopt") {
                    continue;
                }
                let ours = match sample {
                    Sample::Flow(f) => flow_field(&d, f, k),
                    Sample::Counter(c) => counter_field(&d, c.sequence_number, &c.records, k),
                    Sample::Discard(x) => discard_field(&d, x, k),
                    _ => None,
                };
                match ours {
                    Some(o) if &o == v => compared += 1,
                    Some(o) => bad.push(format!("{bin} seq {seq} {k}: telegraf {v} ours {o}")),
                    None if k == "ip_version" || k == "direction" => {}
                    None => bad.push(format!("{bin} seq {seq} {k}: telegraf {v} ours -")),
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // 4 files, 10 rows: make sure the comparison really covered them.
    assert!(compared >= 250, "only {compared} fields compared");
}

#[test]
fn telegraf_spot_values() {
    let b = read("telegraf/sflow_v5_example__sflow_v5.bin");
    let d = sflow::decode(&b).complete().expect("decode");
    let Sample::Counter(c) = &d.samples[0] else {
        panic!("counter sample")
    };
    assert!(c
        .records
        .iter()
        .any(|r| matches!(r, CounterRecord::PortName { name } if name.as_str() == Some("eno1"))));
    let b = read("telegraf/sflow_issue_15375__sflow_drop_1036.bin");
    let d = sflow::decode(&b).complete().expect("decode");
    let Sample::Discard(x) = &d.samples[0] else {
        panic!("discard sample")
    };
    assert_eq!(
        (x.reason, x.drops, x.input, x.output),
        (1, 256, Interface::Index(1), Interface::Index(2))
    );
    assert_eq!(x.records, vec![FlowRecord::EgressQueue { queue: 42 }]);
    let b = read("telegraf/sflow_issue_18876__message.bin");
    let d = sflow::decode(&b).complete().expect("decode");
    let Sample::Counter(c) = &d.samples[0] else {
        panic!("counter sample")
    };
    assert_eq!(c.format, 4);
    let g = c
        .records
        .iter()
        .find_map(|r| match r {
            CounterRecord::GenericInterface(g) => Some(*g),
            _ => None,
        })
        .expect("generic counters");
    assert_eq!(
        (g.in_octets, g.out_octets),
        (59_347_538_341_644, 89_572_325_677_612)
    );
}

fn only_discard(path: &str) -> Vec<FlowRecord<'static>> {
    let b: &'static [u8] = Box::leak(read(path).into_boxed_slice());
    let d = sflow::decode(b).complete().expect(path);
    assert_eq!(d.samples.len(), 1);
    match &d.samples[0] {
        Sample::Discard(x) => x.records.clone(),
        s => panic!("{path}: {s:?}"),
    }
}

#[test]
fn goflow2_drop_vectors() {
    assert_eq!(
        only_discard("vectors/goflow2/TestSFlowDecodeDropEgressQueue.bin"),
        vec![FlowRecord::EgressQueue { queue: 42 }]
    );
    let acl = only_discard("vectors/goflow2/TestSFlowDecodeDropExtendedACL.bin");
    assert!(
        matches!(acl.as_slice(), [FlowRecord::ExtendedAcl { number: 42, name, direction: 2 }] if name.as_str() == Some("foo!")),
        "{acl:?}"
    );
    // 86 bytes: the string "foobar" lacks its 2 bytes of XDR padding at the very end.
    let f = only_discard("vectors/goflow2/TestSFlowDecodeDropExtendedFunction.bin");
    assert!(
        matches!(f.as_slice(), [FlowRecord::ExtendedFunction { symbol }] if symbol.as_str() == Some("foobar")),
        "{f:?}"
    );
}

/// Cistern's host-sflow drop event (values cross-checked with the hex of the file: the
/// Linux drop reason string, the kernel function and the sampled broadcast UDP packet).
#[test]
fn cistern_discard_event() {
    let recs = only_discard("cistern-sflow/event_discarded_packet.dump");
    assert!(
        matches!(&recs[0], FlowRecord::LinuxDropReason { reason } if reason.as_str() == Some("NOT_SPECIFIED"))
    );
    assert!(
        matches!(&recs[1], FlowRecord::ExtendedFunction { symbol } if symbol.as_str() == Some("__udp4_lib_rcv+0xbed/0xd90"))
    );
    let FlowRecord::RawHeader(h) = &recs[2] else {
        panic!("{recs:?}")
    };
    let ip = h.decoded.and_then(|p| p.ip).expect("ip");
    assert_eq!(
        (ip.src.to_string(), ip.dst.to_string()),
        ("192.168.1.31".into(), "255.255.255.255".into())
    );
    assert_eq!(
        (ip.protocol, ip.src_port, ip.dst_port),
        (17, Some(63055), Some(3289))
    );
    let b = read("cistern-sflow/event_discarded_packet.dump");
    let d = sflow::decode(&b).complete().expect("decode");
    let Sample::Discard(x) = &d.samples[0] else {
        panic!("discard")
    };
    assert_eq!((x.sequence_number, x.drops, x.reason), (17145, 1799, 289));
    assert_eq!(
        (x.input, x.output),
        (Interface::Index(2), Interface::Index(0))
    );
}

fn pcap_single(path: &str) -> Datagram<'static> {
    let buf: &'static [u8] = Box::leak(read(path).into_boxed_slice());
    let dgs = pcap_datagrams(buf);
    assert_eq!(dgs.len(), 1, "{path}");
    sflow::decode(dgs[0]).complete().expect(path)
}

fn first_flow<'a>(d: &'a Datagram<'static>) -> &'a FlowSample<'static> {
    d.samples
        .iter()
        .find_map(|s| match s {
            Sample::Flow(f) => Some(f),
            _ => None,
        })
        .expect("flow sample")
}

#[test]
fn akvorado_interface_encodings() {
    let d = pcap_single("akvorado/data-discard-interface.pcap");
    assert_eq!(first_flow(&d).output, Interface::Discarded(1)); // 0x40000001
    let d = pcap_single("akvorado/data-local-interface.pcap");
    assert_eq!(first_flow(&d).output, Interface::Local); // 0x3fffffff
    let d = pcap_single("akvorado/data-multiple-interfaces.pcap");
    assert_eq!(first_flow(&d).output, Interface::Multiple(7)); // 0x80000007
    assert_eq!(
        Interface::from_compact(0x4000_0001),
        Interface::Discarded(1)
    );
    assert_eq!(Interface::from_compact(0x3fff_ffff), Interface::Local);
    assert_eq!(Interface::from_compact(0x8000_0007), Interface::Multiple(7));
    assert_eq!(Interface::from_compact(0x0000_002f), Interface::Index(47));
}

fn ip_of(d: &Datagram<'_>) -> (PacketSummary, IpSummary) {
    let f = d
        .samples
        .iter()
        .find_map(|s| match s {
            Sample::Flow(f) => Some(f),
            _ => None,
        })
        .expect("flow");
    let p = raw_header(&f.records)
        .and_then(|h| h.decoded)
        .expect("decoded header");
    (p, p.ip.expect("ip"))
}

/// Sampled-header decoding, against the tshark -V text of the same captures.
#[test]
fn akvorado_sampled_headers() {
    let (p, ip) = ip_of(&pcap_single("akvorado/data-qinq.pcap"));
    assert_eq!(
        (p.vlan, p.inner_vlan, p.ethertype),
        (Some(1062), Some(1493), Some(0x0800))
    );
    assert_eq!(
        p.src_mac.map(|m| m.to_string()).as_deref(),
        Some("4c:ae:a3:52:0f:f6")
    );
    assert_eq!(
        p.dst_mac.map(|m| m.to_string()).as_deref(),
        Some("00:01:10:62:14:93")
    );
    assert_eq!(
        (ip.src.to_string(), ip.dst.to_string()),
        ("49.49.49.2".into(), "49.49.49.109".into())
    );
    assert_eq!(
        (ip.protocol, ip.src_port, ip.dst_port),
        (6, Some(32017), Some(443))
    );

    let (_, ip) = ip_of(&pcap_single("akvorado/data-icmpv4.pcap"));
    assert_eq!(
        (ip.src.to_string(), ip.dst.to_string()),
        ("203.0.113.4".into(), "203.0.113.5".into())
    );
    assert_eq!(
        (ip.protocol, ip.icmp_type, ip.icmp_code),
        (1, Some(8), Some(0))
    );

    let (_, ip) = ip_of(&pcap_single("akvorado/data-icmpv6.pcap"));
    assert_eq!(ip.src.to_string(), "fe80::d05b:45ff:feee:5ecf");
    assert_eq!(ip.dst.to_string(), "2001:db8::");
    assert_eq!(
        (ip.protocol, ip.icmp_type, ip.icmp_code),
        (58, Some(135), Some(0))
    );

    // Header protocol 11 (raw IPv4): no Ethernet layer, the IP layer still decodes.
    let d = pcap_single("akvorado/data-sflow-raw-ipv4.pcap");
    for s in &d.samples {
        let Sample::Flow(f) = s else { continue };
        let h = raw_header(&f.records).expect("raw header");
        assert_eq!(h.header_protocol, 11);
        let p = h.decoded.expect("decoded");
        assert_eq!(p.src_mac, None);
        assert!(p.ip.is_some(), "{p:?}");
    }
}

/// Counts from the corpus README (tshark 4.0.17 counts) and the oxyflow SMTP packets.
#[test]
fn big_capture_counts() {
    for (path, datagrams, flow, counter, expanded_flow) in [
        ("overflowd/sflow.pcap", 1000, 5855, 502, 0),
        ("oxyflow/sflow.pcap", 1503, 0, 30, 6146),
    ] {
        let buf = read(path);
        let dgs = pcap_datagrams(&buf);
        assert_eq!(dgs.len(), datagrams, "{path}");
        let (mut f1, mut c, mut f3, mut ok) = (0, 0, 0, 0);
        for p in &dgs {
            let dec = sflow::decode(p);
            if dec.error.is_none() {
                ok += 1;
            }
            for s in dec.datagram.iter().flat_map(|d| &d.samples) {
                match s.format() {
                    1 => f1 += 1,
                    2 | 4 => c += 1,
                    3 => f3 += 1,
                    _ => {}
                }
            }
        }
        assert_eq!(ok, datagrams, "{path}: all decode");
        assert_eq!((f1, c, f3), (flow, counter, expanded_flow), "{path}");
    }
    let buf = read("oxyflow/sflow.pcap");
    let mut smtp = Vec::new();
    let mut agents = std::collections::BTreeSet::new();
    for p in pcap_datagrams(&buf) {
        let d = sflow::decode(p).complete().expect("decode");
        agents.insert(d.agent);
        smtp.extend(
            d.flow_observations()
                .filter(|o| o.protocol == 6 && (o.dst_port == 25 || o.src_port == 25)),
        );
    }
    assert_eq!(agents.len(), 27);
    assert_eq!(smtp.len(), 5, "{smtp:#?}");
    assert!(smtp
        .iter()
        .all(|o| o.sampling_rate > 0 && o.ip_len > 0 && o.frame_len >= o.ip_len));
}

#[test]
fn observations_cover_flow_samples() {
    let buf = read("overflowd/sflow.pcap");
    let (mut obs, mut flows) = (0, 0);
    for p in pcap_datagrams(&buf) {
        let d = sflow::decode(p).complete().expect("decode");
        flows += d
            .samples
            .iter()
            .filter(|s| matches!(s, Sample::Flow(_)))
            .count();
        for o in d.flow_observations() {
            assert_eq!(o.agent.to_string(), "192.168.1.1");
            assert_eq!(o.sampling_rate, 300);
            obs += 1;
        }
    }
    assert_eq!(flows, 5855);
    // Nearly every sampled frame here is IP (ARP and the like are not observations).
    assert!(obs > flows * 9 / 10 && obs <= flows, "{obs} of {flows}");
}

fn counter_records(path: &str) -> Vec<CounterRecord<'static>> {
    let b: &'static [u8] = Box::leak(read(path).into_boxed_slice());
    let d = sflow::decode(b).complete().expect(path);
    d.samples
        .iter()
        .flat_map(|s| match s {
            Sample::Counter(c) => c.records.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// gopacket counter vectors; values as printed by tshark -V for the records it knows
/// (processor, VLAN), and the ASCII bytes of the port name.
#[test]
fn gopacket_counter_records() {
    let r = counter_records("vectors/gopacket/SFlowTestPacket3.bin");
    assert_eq!(
        r,
        vec![CounterRecord::Processor(sflow::ProcessorCounters {
            cpu_5s: 1450,
            cpu_1m: 1370,
            cpu_5m: 1330,
            total_memory: 3_884_806_144,
            free_memory: 1_441_230_848,
        })]
    );
    let r = counter_records("vectors/gopacket/SFlowTestPacket10.bin");
    assert_eq!(
        r,
        vec![CounterRecord::Vlan(sflow::VlanCounters {
            vlan_id: 10,
            octets: 25_963_724,
            ucast_pkts: 38_531,
            multicast_pkts: 167_958,
            broadcast_pkts: 128_627,
            discards: 0,
        })]
    );
    let r = counter_records("vectors/gopacket/SFlowTestPacket9.bin");
    let formats: Vec<u32> = r.iter().map(|c| c.data_format().1).collect();
    assert_eq!(formats, vec![2, 1004, 1005, 1]);
    assert!(
        matches!(&r[2], CounterRecord::PortName { name } if name.as_str() == Some("tapd98154f2-00"))
    );
    assert!(
        matches!(&r[3], CounterRecord::GenericInterface(g) if g.if_index == 14 && g.if_speed == 10_000_000_000)
    );
}
