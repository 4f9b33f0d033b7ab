use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::eval::{read_clients, read_truth, score};
use super::wire::{
    datagram, CounterSampleOut, FlowSampleOut, PcapWriter, SampleOut, SampledPacket,
};
use super::*;

fn small(seed: u64) -> ExchangeConfig {
    ExchangeConfig {
        seed,
        days: 1,
        scale: 0.05,
        sampling: 200,
        ..ExchangeConfig::default()
    }
}

#[test]
fn encoder_round_trips_through_the_decoder() {
    let pkt = SampledPacket {
        src: Ipv4Addr::new(91, 0, 3, 7),
        dst: Ipv4Addr::new(64, 16, 2, 1),
        sport: 40_000,
        dport: 25,
        flags: 0x02,
        ip_len: 60,
        proto: 6,
    };
    let samples = [
        SampleOut::Flow(FlowSampleOut {
            sequence: 9,
            if_index: 17,
            rate: 2000,
            pool: 123_456,
            packet: pkt,
        }),
        SampleOut::Counter(CounterSampleOut {
            sequence: 3,
            if_index: 17,
            in_octets: 1 << 40,
            in_pkts: 77,
        }),
    ];
    let agent = Ipv4Addr::new(192, 0, 2, 3);
    let bytes = datagram(agent, 42, 3_600_000, &samples);
    let d = sflow::decode(&bytes).complete().expect("decodes");
    assert_eq!(d.agent, Some(IpAddr::V4(agent)));
    assert_eq!(
        (d.sequence_number, d.uptime, d.samples.len()),
        (42, 3_600_000, 2)
    );
    assert_eq!(d.length, bytes.len());
    let sflow::Sample::Flow(f) = &d.samples[0] else {
        panic!("flow sample first")
    };
    assert_eq!(
        (f.sequence_number, f.sampling_rate, f.sample_pool),
        (9, 2000, 123_456)
    );
    let sflow::Sample::Counter(c) = &d.samples[1] else {
        panic!("counter sample second")
    };
    assert_eq!(c.sequence_number, 3);
    let sflow::CounterRecord::GenericInterface(ifc) = &c.records[0] else {
        panic!("generic interface counters")
    };
    assert_eq!(
        (ifc.if_index, ifc.in_octets, ifc.in_ucast_pkts),
        (17, 1 << 40, 77)
    );
    let obs: Vec<_> = d.flow_observations().collect();
    assert_eq!(obs.len(), 1);
    let o = &obs[0];
    assert_eq!(o.src_ip, IpAddr::V4(pkt.src));
    assert_eq!(o.dst_ip, IpAddr::V4(pkt.dst));
    assert_eq!((o.protocol, o.src_port, o.dst_port), (6, 40_000, 25));
    assert_eq!((o.tcp_flags, o.ip_len, o.sampling_rate), (0x02, 60, 2000));

    // Inside a pcap, addressed to the collector's port.
    let mut pcap = PcapWriter::new(Vec::new(), Ipv4Addr::new(192, 0, 2, 100)).unwrap();
    pcap.write(1_772_409_600_250_000, agent, &bytes).unwrap();
    let buf = pcap.finish().unwrap();
    let cap = sflow::Capture::new(&buf).unwrap();
    let got: Vec<_> = cap.udp_payloads(sflow::SFLOW_PORT).collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 1_772_409_600_250_000_000);
    assert_eq!(got[0].1.payload, &bytes[..]);
}

/// Decodes a whole simulated capture: every datagram complete, sequence gaps equal to the
/// datagrams the simulator dropped, and the port-25 samples per source equal to the truth.
#[test]
fn capture_decodes_and_matches_the_truth() {
    let dir = std::env::temp_dir().join(format!("sflowx-sim-{}", std::process::id()));
    let sum = run(&small(3), &dir).unwrap();
    let buf = std::fs::read(dir.join("exchange.pcap")).unwrap();
    let truth =
        read_truth(&std::fs::read_to_string(dir.join("sflow-truth.jsonl")).unwrap()).unwrap();
    let verdicts = std::fs::read_to_string(dir.join("verdicts.jsonl")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let mut per_src: BTreeMap<IpAddr, u64> = BTreeMap::new();
    let mut last_seq: BTreeMap<IpAddr, u32> = BTreeMap::new();
    let (mut gaps, mut datagrams, mut flows, mut counters, mut last_ts) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for (ts, udp) in sflow::Capture::new(&buf)
        .unwrap()
        .udp_payloads(sflow::SFLOW_PORT)
    {
        assert!(ts >= last_ts, "capture in time order");
        last_ts = ts;
        let d = sflow::decode(udp.payload)
            .complete()
            .expect("every datagram decodes");
        datagrams += 1;
        let agent = d.agent.unwrap();
        if let Some(prev) = last_seq.insert(agent, d.sequence_number) {
            assert!(d.sequence_number > prev);
            gaps += u64::from(d.sequence_number - prev - 1);
        } else {
            gaps += u64::from(d.sequence_number - 1);
        }
        for s in &d.samples {
            match s {
                sflow::Sample::Flow(f) => {
                    flows += 1;
                    assert_eq!(f.sampling_rate, 200);
                }
                sflow::Sample::Counter(_) => counters += 1,
                other => panic!("unexpected sample {other:?}"),
            }
        }
        for o in d.flow_observations() {
            if o.dst_port == 25 && o.protocol == 6 {
                *per_src.entry(o.src_ip).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(datagrams, sum.datagrams);
    assert_eq!(gaps, sum.lost_datagrams);
    assert_eq!(flows, sum.flow_samples);
    assert_eq!(counters, sum.counter_samples);
    assert!(counters > 0);
    for t in &truth {
        assert_eq!(
            per_src.get(&IpAddr::V4(t.ip)).copied().unwrap_or(0),
            t.sampled,
            "{}",
            t.ip
        );
        assert!(t.sampled <= t.packets);
    }
    // Every class is present; both kinds of sender are.
    for c in SenderClass::ALL {
        assert!(truth.iter().any(|t| t.class == c), "{c:?}");
    }
    // Verdicts: mostly bad senders, and every one a sender.
    let told = read_clients(&verdicts, None).unwrap();
    let bad = truth
        .iter()
        .filter(|t| t.bad && told.contains(&t.ip))
        .count();
    assert!(bad > 0 && bad * 2 > told.len(), "{bad} of {}", told.len());
}

/// Sampling is honest: over all senders, sampled / true packets ≈ 1/N (minus lost datagrams).
#[test]
fn sampling_rate_is_one_in_n() {
    let dir = std::env::temp_dir().join(format!("sflowx-rate-{}", std::process::id()));
    let sum = run(&small(5), &dir).unwrap();
    let truth =
        read_truth(&std::fs::read_to_string(dir.join("sflow-truth.jsonl")).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let packets: u64 = truth.iter().map(|t| t.packets).sum();
    let sampled: u64 = truth.iter().map(|t| t.sampled).sum();
    let expect = packets as f64 / 200.0 * (1.0 - sum.loss);
    let sd = expect.sqrt();
    assert!(
        (sampled as f64 - expect).abs() < 5.0 * sd + 0.02 * expect,
        "{sampled} samples of {packets} packets, expected {expect:.0}"
    );
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let base = std::env::temp_dir().join(format!("sflowx-det-{}", std::process::id()));
    let mut cfg = small(7);
    cfg.scale = 0.02;
    run(&cfg, &base.join("a")).unwrap();
    run(&cfg, &base.join("b")).unwrap();
    cfg.seed = 8;
    run(&cfg, &base.join("c")).unwrap();
    let read = |d: &str| std::fs::read(base.join(d).join("exchange.pcap")).unwrap();
    let (a, b, c) = (read("a"), read("b"), read("c"));
    std::fs::remove_dir_all(&base).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn business_mtas_keep_office_hours() {
    // 2026-03-02 is a Monday: office hours on weekdays only, a residual outside.
    let v = office(
        DEFAULT_START,
        DEFAULT_START + 7 * 86_400,
        0,
        10.0,
        0.0,
        8,
        18,
    );
    assert_eq!(v.len(), 5 * 10);
    assert!(v.iter().all(|&(s, _, _)| {
        let h = s.rem_euclid(86_400) / 3600;
        (8..18).contains(&h) && (s - DEFAULT_START) / 86_400 < 5
    }));
}

#[test]
fn score_counts_recall_precision_and_classes() {
    let line = |ip: [u8; 4], class, sampled| TruthLine {
        ip: Ipv4Addr::from(ip),
        class,
        bad: SenderClass::is_bad(class),
        sessions: 1,
        messages: 1,
        packets: 100,
        sampled,
        sampled_replies: 0,
    };
    let truth = vec![
        line([1, 0, 0, 1], SenderClass::Bot, 30),
        line([1, 0, 0, 2], SenderClass::Bot, 6),
        line([1, 0, 0, 3], SenderClass::Bot, 2),
        line([1, 0, 0, 4], SenderClass::Bot, 40), // told
        line([2, 0, 0, 1], SenderClass::BusinessMta, 8),
        line([2, 0, 0, 2], SenderClass::BusinessMta, 8),
    ];
    let flagged = [[1, 0, 0, 1], [1, 0, 0, 4], [2, 0, 0, 1], [9, 9, 9, 9]]
        .into_iter()
        .map(Ipv4Addr::from)
        .collect();
    let told = [Ipv4Addr::new(1, 0, 0, 4)].into_iter().collect();
    let s = score(&truth, &flagged, &told);
    let r: Vec<_> = s.recall.iter().map(|r| (r.bad, r.flagged)).collect();
    assert_eq!(r, [(3, 1), (2, 1), (1, 1)]);
    assert_eq!(
        (s.true_alarms, s.false_alarms, s.unknown_flagged, s.told),
        (1, 1, 1, 1)
    );
    assert!((s.precision - 1.0 / 3.0).abs() < 1e-9);
    let biz = s
        .classes
        .iter()
        .find(|c| c.class == SenderClass::BusinessMta)
        .unwrap();
    assert_eq!(
        (biz.addresses, biz.visible, biz.flagged, biz.flagged_visible),
        (2, 2, 1, 1)
    );
    assert!((biz.share - 0.5).abs() < 1e-9);
}
