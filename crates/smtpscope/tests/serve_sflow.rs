//! `smtpscope serve --sflow`: the datagrams of a real capture sent over loopback UDP are
//! received, decoded and counted in /metrics; the agent filter of `[serve] sflow_agents`
//! rejects datagrams of other agents; a simulated capture of two days replayed in seconds
//! with `sflow_clock = "agent"` raises the alerts `sflow analyze` raises on it, live.

mod serve_util;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serve_util::*;

/// A real capture of the corpus (`tests/data/corpus/sflow.tar.zst`).
fn capture() -> std::path::PathBuf {
    testdata::sflow().join("overflowd/sflow.pcap")
}

/// The sFlow UDP payloads of the capture.
fn payloads() -> Vec<Vec<u8>> {
    let buf = std::fs::read(capture()).unwrap();
    sflow::Capture::new(&buf)
        .unwrap()
        .filter_map(|f| {
            f.unwrap()
                .udp_payload_to(sflow::SFLOW_PORT)
                .map(|u| u.payload.to_vec())
        })
        .collect()
}

/// Start `serve` with the arguments `args` makes for an sFlow port (plus `--http`, `--store`)
/// on free ports ([`start_on_free_ports`]) and wait until it is ready; the server and that port.
fn start(dir: &Path, args: impl Fn(u16) -> Vec<String>) -> (Server, u16) {
    start_on_free_ports(dir, || {
        let (http, sflow) = (free_port(), free_port());
        let mut all = args(sflow);
        all.extend([
            "--http".to_string(),
            format!("127.0.0.1:{http}"),
            "--store".to_string(),
            dir.join("db").display().to_string(),
        ]);
        launch(dir, &all, http, 0, 0, dir.join("none.toml")).map(|s| (s, sflow))
    })
}

/// Send the datagrams in small batches, waiting for each batch to be received (a loopback
/// socket buffer holds only a few hundred KiB).
fn send_all(srv: &Server, port: u16, dgs: &[Vec<u8>]) {
    send_batches(srv, port, dgs, 50);
}

fn send_batches(srv: &Server, port: u16, dgs: &[Vec<u8>], size: usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0usize;
    for batch in dgs.chunks(size) {
        for d in batch {
            sock.send_to(d, ("127.0.0.1", port)).unwrap();
        }
        sent += batch.len();
        wait_for(10, &format!("{sent} datagrams received"), || {
            (srv.metric("smtpscope_sflow_datagrams_total") >= sent as f64).then_some(())
        });
    }
}

#[test]
fn serve_receives_and_decodes_sflow() {
    let dgs = payloads();
    // README of the corpus: 1,000 datagrams, 5,855 flow samples, one agent (192.168.1.1).
    assert_eq!(dgs.len(), 1000);
    let dir = tempfile::tempdir().unwrap();
    let (srv, port) = start(dir.path(), |port| {
        vec!["--sflow".into(), format!("127.0.0.1:{port}")]
    });
    send_all(&srv, port, &dgs);
    // The collector counters reach the metrics once a second.
    wait_for(10, "every datagram decoded", || {
        (srv.metric("smtpscope_sflow_accepted_total") == 1000.0).then_some(())
    });
    wait_for(10, "flow samples counted", || {
        (srv.metric("smtpscope_sflow_flow_samples_total") == 5855.0).then_some(())
    });
    assert_eq!(srv.metric("smtpscope_sflow_datagrams_total"), 1000.0);
    assert_eq!(srv.metric("smtpscope_sflow_rejected_total"), 0.0);
    assert_eq!(srv.metric("smtpscope_sflow_lost_total"), 0.0);
    assert_eq!(srv.metric("smtpscope_sflow_alerts_dropped_total"), 0.0);
    assert_eq!(srv.term(), 0);
}

#[test]
fn serve_sflow_agent_filter_from_the_config() {
    let dgs = payloads();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("smtpscope.toml");
    let (srv, port) = start(dir.path(), |port| {
        std::fs::write(
            &cfg,
            format!("[serve]\nsflow = [\"127.0.0.1:{port}\"]\nsflow_agents = [\"192.0.2.1\"]\n"),
        )
        .unwrap();
        vec!["--config".into(), cfg.to_str().unwrap().to_string()]
    });
    send_all(&srv, port, &dgs[..100]);
    // The capture's agent is 192.168.1.1: not allowed, so every datagram is rejected.
    wait_for(10, "datagrams rejected", || {
        (srv.metric("smtpscope_sflow_rejected_total") == 100.0).then_some(())
    });
    assert_eq!(srv.metric("smtpscope_sflow_accepted_total"), 0.0);
    assert_eq!(srv.metric("smtpscope_sflow_flow_samples_total"), 0.0);
    assert_eq!(srv.term(), 0);
}

/// (IP, verdict, score) of each alert of a JSON Lines file, in order.
fn alert_keys(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["detector"], "sflow-activity");
            (
                v["entity"]["id"].as_str().unwrap().to_string(),
                v["evidence"]["verdict"].as_str().unwrap().to_string(),
                v["score"].to_string(),
            )
        })
        .collect()
}

#[test]
fn serve_raises_the_alerts_of_sflow_analyze_on_a_replayed_capture() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = env!("CARGO_BIN_EXE_smtpscope");
    // Two simulated days at a tenth of the exchange point's populations (~480 senders).
    let sim = d.join("sim");
    let st = Command::new(bin)
        .args([
            "simulate-sflow",
            "--seed",
            "1",
            "--days",
            "2",
            "--scale",
            "0.1",
            "--out",
        ])
        .arg(&sim)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let cap = sim.join("exchange.pcap");
    // The datagrams of the first agent, and the capture time of its first one. One agent:
    // the agent clock lines up each agent's datagrams with its first one exactly, and the
    // first one with `sflow_clock_start`; across agents it can only line them up as closely
    // as their first datagrams arrive (seconds apart in a fast replay), which could move a
    // sample into another hour.
    let buf = std::fs::read(&cap).unwrap();
    let (mut agent, mut start, mut dgs) = (None, 0u64, Vec::new());
    for f in sflow::Capture::new(&buf).unwrap() {
        let f = f.unwrap();
        let Some(u) = f.udp_payload_to(sflow::SFLOW_PORT) else {
            continue;
        };
        let a = sflow::decode(u.payload).datagram.unwrap().agent.unwrap();
        if agent.is_none() {
            agent = Some(a);
            start = f.timestamp_ns;
        }
        if agent == Some(a) {
            dgs.push(u.payload.to_vec());
        }
    }
    let agent = agent.unwrap();
    assert!(dgs.len() > 10_000, "{}", dgs.len());
    let expected = d.join("expected.jsonl");
    let st = Command::new(bin)
        .args(["sflow", "analyze"])
        .arg(&cap)
        .arg("--agent")
        .arg(agent.to_string())
        .arg("--jsonl")
        .arg(&expected)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let expected = alert_keys(&std::fs::read_to_string(&expected).unwrap());
    assert!(expected.len() >= 5, "{expected:?}");

    let jsonl = d.join("alerts.jsonl");
    let secs = (start / 1_000_000_000) as i64;
    let start = format!(
        "{}.{:06}Z",
        jiff::Timestamp::from_second(secs)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S"),
        start % 1_000_000_000 / 1000
    );
    let cfg = d.join("smtpscope.toml");
    let (srv, port) = self::start(d, |port| {
        std::fs::write(
            &cfg,
            format!(
                "[serve]\nsflow = [\"127.0.0.1:{port}\"]\nsflow_agents = [\"{agent}\"]\nsflow_clock = \"agent\"\nsflow_clock_start = \"{start}\"\nalerts_jsonl = \"{}\"\n",
                jsonl.display()
            ),
        )
        .unwrap();
        vec!["--config".into(), cfg.to_str().unwrap().to_string()]
    });
    let t0 = Instant::now();
    send_batches(&srv, port, &dgs, 50);
    // Hosts first seen 36 hours (of the agent's time) before are judged while the replay
    // runs: these alerts are live, not the end-of-input judgement.
    let live = wait_for(20, "live sFlow alerts", || {
        let t = std::fs::read_to_string(&jsonl).unwrap_or_default();
        // A line being written is not read.
        let done = &t[..t.rfind('\n').map_or(0, |i| i + 1)];
        Some(alert_keys(done)).filter(|k| !k.is_empty())
    });
    assert!(live.len() < expected.len(), "{} live", live.len());
    assert_eq!(live, expected[..live.len()]);
    assert!(srv.metric("smtpscope_alerts_total{detector=\"sflow-activity\"}") >= live.len() as f64);
    assert_eq!(srv.metric("smtpscope_sflow_alerts_dropped_total"), 0.0);
    eprintln!(
        "{} datagrams replayed in {:?}; {} of {} alerts live",
        dgs.len(),
        t0.elapsed(),
        live.len(),
        expected.len()
    );
    // On shutdown every host is judged on all it did, as at the end of a file.
    assert_eq!(srv.term(), 0);
    let got = alert_keys(&std::fs::read_to_string(&jsonl).unwrap());
    assert_eq!(got, expected);
}
