//! `smtpscope sflow` end to end through the built binary:
//!
//! * `decode` against tshark 4.0.17's summaries of three corpus captures (agent, sub-agent,
//!   sequence, uptime, sample types, flow/counter sample fields), and `decode --count`
//!   against the corpus README's counts;
//! * `analyze` on the real ISP capture (oxyflow: 27 agents, 5 TCP/25 samples): alert shape,
//!   per-IP table, collector counters, the agent filter;
//! * `analyze` on a synthetic capture built here (servers, bots, customers over two days)
//!   with labels: verdicts, label table and plot.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn corpus(p: &str) -> PathBuf {
    testdata::sflow().join(p)
}

fn smtpscope(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_smtpscope"))
        .args(args)
        .output()
        .expect("run smtpscope");
    assert!(
        out.status.success(),
        "smtpscope {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn jsonl(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Our interface JSON (`{"index": n}`, `"local"`, …) as tshark's value.
fn iface_value(v: &Value) -> String {
    if let Some(o) = v.as_object() {
        if let Some((_, n)) = o.iter().next() {
            return n.to_string();
        }
    }
    match v.as_str() {
        Some("local") => 0x3fff_ffff.to_string(),
        _ => v.to_string(),
    }
}

/// A field of one sample, as tshark prints it.
type Field = dyn Fn(&Value) -> String;

fn check_against_tshark(capture: &str, summary: &str) {
    let ours = jsonl(&smtpscope(&[
        "sflow",
        "decode",
        corpus(capture).to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(corpus(summary)).expect("tshark summary");
    let theirs = jsonl(&text);
    assert_eq!(ours.len(), theirs.len(), "{capture}: datagram count");
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        let ctx = format!("{capture} datagram {}", i + 1);
        assert_eq!(o["agent"].as_str().unwrap(), t["agent"], "{ctx}: agent");
        for (ok, tk) in [
            ("sub_agent_id", "sub_agent_id"),
            ("sequence_number", "sequence_number"),
            ("uptime", "sysuptime"),
            ("sample_count", "numsamples"),
        ] {
            assert_eq!(o[ok].to_string(), t[tk].as_str().unwrap(), "{ctx}: {ok}");
        }
        let samples = o["samples"].as_array().unwrap();
        let types: Vec<String> = samples.iter().map(|s| s["format"].to_string()).collect();
        assert_eq!(types, strs(&t["sampletype"]), "{ctx}: sample types");
        let flows: Vec<&Value> = samples.iter().filter(|s| s["type"] == "flow").collect();
        let counters: Vec<&Value> = samples.iter().filter(|s| s["type"] == "counter").collect();
        let col = |v: &[&Value], f: &Field| v.iter().map(|s| f(s)).collect();
        let flow_fields: [(&str, &Field); 6] = [
            ("flow_sample.sequence_number", &|s| {
                s["sequence_number"].to_string()
            }),
            ("flow_sample.sampling_rate", &|s| {
                s["sampling_rate"].to_string()
            }),
            ("flow_sample.sample_pool", &|s| s["sample_pool"].to_string()),
            ("flow_sample.dropped_packets", &|s| s["drops"].to_string()),
            ("flow_sample.input_interface", &|s| iface_value(&s["input"])),
            ("flow_sample.output_interface_value", &|s| {
                iface_value(&s["output"])
            }),
        ];
        for (key, f) in flow_fields {
            let got: Vec<String> = col(&flows, f);
            assert_eq!(got, strs(&t[key]), "{ctx}: {key}");
        }
        let frame_lens: Vec<String> = flows
            .iter()
            .flat_map(|s| s["records"].as_array().unwrap().iter())
            .filter(|r| r["record"] == "raw_header")
            .map(|r| r["frame_length"].to_string())
            .collect();
        assert_eq!(
            frame_lens,
            strs(&t["header.frame_length"]),
            "{ctx}: frame lengths"
        );
        let cseq: Vec<String> = col(&counters, &|s| s["sequence_number"].to_string());
        assert_eq!(
            cseq,
            strs(&t["counters_sample.sequence_number"]),
            "{ctx}: counter seqs"
        );
        assert!(o["ts"].as_str().unwrap().ends_with('Z'), "{ctx}: ts");
    }
}

#[test]
fn decode_matches_tshark_loadme() {
    check_against_tshark(
        "loadme/sflow.pcap",
        "tshark-reference/loadme_sflow.summary.jsonl",
    );
}

#[test]
fn decode_matches_tshark_ndpi() {
    check_against_tshark(
        "ndpi/sflow.pcap",
        "tshark-reference/ndpi_sflow.summary.jsonl",
    );
}

#[test]
fn decode_matches_tshark_akvorado() {
    check_against_tshark(
        "akvorado/data-1140.pcap",
        "tshark-reference/akvorado_data-1140.summary.jsonl",
    );
}

#[test]
fn decode_count_matches_readme() {
    let p = corpus("overflowd/sflow.pcap");
    let v: Value = serde_json::from_str(&smtpscope(&[
        "sflow",
        "decode",
        "--count",
        p.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(
        (
            &v["datagrams"],
            &v["flow_samples"],
            &v["counter_samples"],
            &v["errors"]
        ),
        (&1000.into(), &5855.into(), &502.into(), &0.into())
    );
}

#[test]
fn analyze_oxyflow_shape() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("hosts.tsv");
    let stats = dir.path().join("stats.json");
    let p = corpus("oxyflow/sflow.pcap");
    let out = smtpscope(&[
        "sflow",
        "analyze",
        p.to_str().unwrap(),
        "--format",
        "jsonl",
        "--min-samples",
        "1",
        "--min-evidence",
        "1",
        "--table",
        table.to_str().unwrap(),
        "--stats",
        stats.to_str().unwrap(),
    ]);
    // 6.4 seconds of traffic, at most two samples per host: far from evidence of 1 (ten to
    // one), even when every host is judged.
    assert!(out.is_empty(), "{out}");
    let tsv = std::fs::read_to_string(&table).unwrap();
    let rows: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows[0][0], "ip");
    // The README: 5 TCP/25 packets in the sampled headers; they come from 4 sources.
    assert_eq!(rows.len(), 5);
    assert!(rows[1..]
        .iter()
        .all(|r| r[17] == "server-like" && r[8] == "1"));
    let est: u64 = rows[1..].iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert_eq!(est, 5 * 16384, "sampling rate 1:16384");
    let samples: u64 = rows[1..].iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    assert_eq!(samples, 5);
    let st: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let c = &st["collector"];
    assert_eq!(
        (&c["datagrams"], &c["accepted"], &c["sources"]),
        (&1503.into(), &1503.into(), &27.into())
    );
    assert_eq!(
        (&c["flow_samples"], &c["counter_samples"]),
        (&6146.into(), &30.into())
    );
    // Interleaved streams under one agent address are not loss or restarts.
    assert_eq!((&c["lost"], &c["restarts"]), (&0.into(), &0.into()));
    assert_eq!(st["activity"]["smtp_samples"], 5);
}

#[test]
fn analyze_agent_filter() {
    let summary =
        std::fs::read_to_string(corpus("tshark-reference/oxyflow_sflow.summary.jsonl")).unwrap();
    let from_agent = jsonl(&summary)
        .iter()
        .filter(|d| d["agent"] == "172.16.5.2")
        .count() as u64;
    assert!(from_agent > 0);
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.json");
    let p = corpus("oxyflow/sflow.pcap");
    smtpscope(&[
        "sflow",
        "analyze",
        p.to_str().unwrap(),
        "--agent",
        "172.16.5.2",
        "--stats",
        stats.to_str().unwrap(),
    ]);
    let st: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(st["collector"]["accepted"], from_agent);
    assert_eq!(st["collector"]["rejected_agent"], 1503 - from_agent);
    assert_eq!(st["rejected_agents"].as_array().unwrap().len(), 26);
}

// ---- a synthetic capture -----------------------------------------------------------

/// Start of the synthetic capture: 2026-01-05T00:00:00Z (a four-hour block boundary).
const T0: u64 = 1_767_571_200;

struct Synth {
    pcap: Vec<u8>,
    seq: u32,
}

impl Synth {
    fn new() -> Synth {
        let mut pcap = Vec::new();
        pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        pcap.extend_from_slice(&2u16.to_le_bytes());
        pcap.extend_from_slice(&4u16.to_le_bytes());
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&65535u32.to_le_bytes());
        pcap.extend_from_slice(&1u32.to_le_bytes());
        Synth { pcap, seq: 1 }
    }

    /// One datagram from agent 192.0.2.1 with one flow sample of a TCP packet src → dst:25.
    fn sample(&mut self, t: u64, src: [u8; 4], dst: [u8; 4], flags: u8) {
        let be = |v: &mut Vec<u8>, w: u32| v.extend_from_slice(&w.to_be_bytes());
        let mut hdr = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        hdr.extend_from_slice(&[0x45, 0, 0x05, 0xdc, 0, 1, 0x40, 0, 64, 6, 0, 0]);
        hdr.extend_from_slice(&src);
        hdr.extend_from_slice(&dst);
        hdr.extend_from_slice(&[0xc3, 0x50, 0, 25, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags]);
        hdr.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        let mut rec = Vec::new();
        for w in [1, 1518, 4, hdr.len() as u32] {
            be(&mut rec, w);
        }
        rec.extend_from_slice(&hdr);
        while rec.len() % 4 != 0 {
            rec.push(0);
        }
        let mut body = Vec::new();
        for w in [
            self.seq,
            3,
            2000,
            self.seq * 2000,
            0,
            3,
            4,
            1,
            1,
            rec.len() as u32,
        ] {
            be(&mut body, w);
        }
        body.extend_from_slice(&rec);
        let mut dg = Vec::new();
        for w in [5, 1] {
            be(&mut dg, w);
        }
        dg.extend_from_slice(&[192, 0, 2, 1]);
        let uptime = ((t - T0 + 3600) * 1000) as u32;
        for w in [0, self.seq, uptime, 1, 1, body.len() as u32] {
            be(&mut dg, w);
        }
        dg.extend_from_slice(&body);
        self.seq += 1;
        // Ethernet / IPv4 / UDP to 6343.
        let mut f = vec![0x02, 0, 0, 0, 0, 3, 0x02, 0, 0, 0, 0, 4, 0x08, 0x00];
        let ip_len = (20 + 8 + dg.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&ip_len.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        f.extend_from_slice(&[0x18, 0xc7, 0x18, 0xc7]);
        f.extend_from_slice(&((8 + dg.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&dg);
        for w in [t as u32, 0, f.len() as u32, f.len() as u32] {
            self.pcap.extend_from_slice(&w.to_le_bytes());
        }
        self.pcap.extend_from_slice(&f);
    }
}

#[test]
fn analyze_synthetic_with_labels() {
    let mut s = Synth::new();
    let hour = |h: u64| T0 + h * 3600;
    // Two days, hour by hour, in time order.
    for h in 0..48u64 {
        let hb = h as u8;
        // Our own MTA (known) and an unknown provider MTA: every hour, many destinations.
        for d in 0..3u8 {
            s.sample(
                hour(h) + 60 + u64::from(d),
                [192, 0, 2, 10],
                [198, hb, d, 1],
                0x18,
            );
            s.sample(
                hour(h) + 90 + u64::from(d),
                [198, 51, 100, 20],
                [100 + d, hb, 7, 1],
                0x18,
            );
        }
        // Bots 203.0.113.1–5: bursts of 2 samples in 4 isolated hours, a new /24 each time.
        if [2, 9, 20, 30].contains(&h) {
            for b in 1..=5u8 {
                for k in 0..2u8 {
                    s.sample(
                        hour(h) + 600 + u64::from(b * 10 + k),
                        [203, 0, 113, b],
                        [b, hb, k, 9],
                        0x02,
                    );
                }
            }
        }
        // Customers 100.64.0.1–3: one message every 6 hours, always to the smarthost.
        if h % 6 == 1 {
            for c in 1..=3u8 {
                s.sample(
                    hour(h) + 1200 + u64::from(c),
                    [100, 64, 0, c],
                    [192, 0, 2, 25],
                    0x18,
                );
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("synth.pcap");
    std::fs::write(&pcap, &s.pcap).unwrap();
    // Labels in the alerts.jsonl shape: bots 1–4 and customer 100.64.0.3 are "bad";
    // an account entity and a non-IP id are ignored.
    let labels = dir.path().join("alerts.jsonl");
    let mut lines = String::new();
    for ip in [
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
        "203.0.113.4",
        "100.64.0.3",
        "not-an-ip",
    ] {
        lines += &format!(
            "{{\"ts\":\"2026-01-05T10:00:00Z\",\"detector\":\"delivery-failures\",\"entity\":{{\"kind\":\"client\",\"id\":\"{ip}\"}},\"score\":0.9,\"summary\":\"x\",\"evidence\":{{}}}}\n"
        );
    }
    lines += "{\"entity\":{\"kind\":\"account\",\"id\":\"u@example.net\"}}\n";
    std::fs::write(&labels, lines).unwrap();
    let table = dir.path().join("hosts.tsv");
    let plot = dir.path().join("plot.svg");
    let jsonl_file = dir.path().join("alerts-out.jsonl");
    let text = smtpscope(&[
        "sflow",
        "analyze",
        pcap.to_str().unwrap(),
        "--known-server",
        "192.0.2.0/25",
        "--labels",
        labels.to_str().unwrap(),
        "--table",
        table.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--jsonl",
        jsonl_file.to_str().unwrap(),
    ]);
    let alerts = jsonl(&std::fs::read_to_string(&jsonl_file).unwrap());
    let mut flagged: Vec<String> = alerts
        .iter()
        .map(|a| a["entity"]["id"].as_str().unwrap().to_string())
        .collect();
    flagged.sort();
    assert_eq!(
        flagged,
        [
            "203.0.113.1",
            "203.0.113.2",
            "203.0.113.3",
            "203.0.113.4",
            "203.0.113.5"
        ]
    );
    // Alerts are decided in event time, 36 hours after a host was first seen (hour 2): at
    // hour 39, with all four bursts; the alert's time is the bot's last sample (hour 30).
    let a = &alerts[0]["evidence"];
    assert!(alerts[0]["ts"]
        .as_str()
        .unwrap()
        .starts_with("2026-01-06T06:"));
    assert_eq!(
        (
            &a["samples"],
            &a["hours"],
            &a["blocks"],
            &a["hours_per_block"]
        ),
        (&8.into(), &4.into(), &4.into(), &1.0.into())
    );
    assert_eq!(
        (
            &a["dst_nets"],
            &a["syn_samples"],
            &a["est_packets"],
            &a["est_syns"]
        ),
        (&8.into(), &8.into(), &16000.into(), &16000.into())
    );
    // Hours 2, 9, 20, 30: blocks 0 (hours 2-3 observed), 2 (8-11), 5 (20-23), 7 (28-30):
    // 4 of 13.
    assert!((a["fill"].as_f64().unwrap() - 4.0 / 13.0).abs() < 1e-9);
    // Eight SYNs in eight samples, eight rare networks, no hour of the day repeated.
    assert_eq!(
        (&a["rare_sessions"], &a["rare_repeats"], &a["daily_hours"]),
        (&8.into(), &0.into(), &0.into())
    );
    assert!(a["evidence"].as_f64().unwrap() > 3.5, "{a}");
    assert_eq!(a["bad"], true);
    // Every alert's evidence reads back typed, as the sflow crate's per-host figures.
    for al in &alerts {
        assert_eq!(al["detector"], "sflow-activity");
        let Ok(detect::evidence::Evidence::SflowActivity(h)) = detect::evidence::Evidence::decode(
            detect::alert::Detector::SflowActivity,
            &al["evidence"],
        ) else {
            panic!("sflow-activity evidence does not decode: {al}");
        };
        assert_eq!(h.ip.to_string(), al["entity"]["id"].as_str().unwrap());
        assert_eq!(Some(h.samples), al["evidence"]["samples"].as_u64());
        assert_eq!(h.bad.is_some(), al["evidence"].get("bad").is_some());
    }
    let tsv = std::fs::read_to_string(&table).unwrap();
    let verdict = |ip: &str| {
        let row = tsv
            .lines()
            .find(|l| l.starts_with(&format!("{ip}\t")))
            .unwrap();
        let cols: Vec<&str> = row.split('\t').collect();
        (
            cols[8].to_string(),
            cols[9].to_string(),
            cols[16].to_string(),
            cols[17].to_string(),
        )
    };
    // The known MTA: 48 hours in 12 blocks, labelled and excluded.
    assert_eq!(
        verdict("192.0.2.10"),
        ("48".into(), "12".into(), "-".into(), "known".into())
    );
    assert_eq!(
        verdict("198.51.100.20"),
        ("48".into(), "12".into(), "-".into(), "server-like".into())
    );
    // A customer: one session to its smarthost, every six hours, the same hours both days.
    assert_eq!(
        verdict("100.64.0.3"),
        ("8".into(), "8".into(), "bad".into(), "server-like".into())
    );
    assert_eq!(verdict("203.0.113.5").3, "suspicious");
    // The label table: 9 judged hosts, 5 bad, 5 flagged of which 4 bad; H bucket 3-4 all bots.
    assert!(text.contains("Labels: 9 hosts with enough samples, 5 bad; flagged 5, of which bad 4; 0 bad IPs never seen"), "{text}");
    // Learning: 5 labelled hosts are too few to be the spam reference (10), so the traffic's
    // confident detections would be; here they are too few as well: nothing is learned.
    assert!(
        text.contains("Learned from the traffic (5 labelled hosts, ")
            && text.contains("share of full-sized samples: spam sources -, servers -"),
        "{text}"
    );
    assert!(
        text.contains(
            "       3-4      5 hosts      4 bad  80.0% |################################"
        ),
        "{text}"
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("<title>3-4 hours: 4 of 5 hosts bad</title>"),
        "{svg}"
    );
    assert!(
        svg.contains("<title>33-64 hours: 0 of 1 hosts bad</title>"),
        "{svg}"
    );
    // The same figure in the HTML page: one column per hours bucket, the 3-4 h bucket 80% bad.
    let html = smtpscope(&[
        "sflow",
        "analyze",
        pcap.to_str().unwrap(),
        "--known-server",
        "192.0.2.0/25",
        "--labels",
        labels.to_str().unwrap(),
        "--format",
        "html",
    ]);
    let buckets = text
        .split("Share of bad hosts by hours active H:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty())
        .count();
    assert!(buckets > 1, "{text}");
    let hours_fig = html
        .split("id=\"fig-sflow-hours\"")
        .nth(1)
        .unwrap()
        .split("</figure>")
        .next()
        .unwrap();
    assert_eq!(
        hours_fig.matches("<g class=\"col\"").count(),
        buckets,
        "{html}"
    );
    assert!(
        html.contains("<title>3-4 h: bad hosts, % of the bucket 80</title>"),
        "{html}"
    );
    assert!(
        html.contains("<td>3-4</td><td class=\"n\">5</td><td class=\"n\">4</td>"),
        "{html}"
    );
    // Clayton's figure: days active in at least 5 of the 6 four-hour blocks. Only the
    // server-like 198.51.100.20 has such days (two of 24 hours); the known MTA is left out and
    // the customer's sessions every six hours fill 4 blocks a day.
    assert!(
        text.contains("at least 5 of the 6 four-hour blocks (1 addresses)"),
        "{text}"
    );
    assert!(
        text.contains("        24 h      2 days       0 bad   0.0% |\n"),
        "{text}"
    );
    assert!(text.contains("         5 h      0 days       0 bad   0.0% |\n"));
    assert!(
        svg.contains("<title>24 hours: 0 of 2 days bad</title>"),
        "{svg}"
    );
    assert!(
        html.contains("<td>24</td><td class=\"n\">2</td><td class=\"n\">0</td>"),
        "{html}"
    );
    assert!(html.contains("id=\"fig-sflow-five-of-six\""));
    assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains(" href="));
}

#[test]
fn decode_truncated_capture_keeps_what_came_before() {
    let full = std::fs::read(corpus("loadme/sflow.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &full[..20_000]).unwrap();
    let v: Value = serde_json::from_str(&smtpscope(&[
        "sflow",
        "decode",
        "--count",
        cut.to_str().unwrap(),
    ]))
    .unwrap();
    let k = v["datagrams"].as_u64().unwrap() as usize;
    assert!(k > 0 && k < 17, "{v}");
    // The first k datagrams as tshark saw them.
    let text =
        std::fs::read_to_string(corpus("tshark-reference/loadme_sflow.summary.jsonl")).unwrap();
    let types: Vec<String> = jsonl(&text)[..k]
        .iter()
        .flat_map(|d| strs(&d["sampletype"]))
        .collect();
    let count = |t: &str| types.iter().filter(|x| *x == t).count() as u64;
    assert_eq!(v["flow_samples"], count("1"));
    assert_eq!(v["counter_samples"], count("2"));
}
