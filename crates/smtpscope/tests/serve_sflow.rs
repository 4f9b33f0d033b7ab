//! `smtpscope serve --sflow`: the datagrams of a real capture sent over loopback UDP are
//! received, decoded and counted in /metrics; the agent filter of `[serve] sflow_agents`
//! rejects datagrams of other agents.

mod serve_util;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Start `serve` with `args` (plus `--http`, `--store`) and wait until /health answers.
fn start(dir: &Path, args: &[String]) -> Server {
    let http_port = free_port();
    let log = dir.join("serve.log");
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_smtpscope"))
        .arg("serve")
        .args(args)
        .arg("--http")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--store")
        .arg(dir.join("db"))
        .env("NO_COLOR", "1")
        .env_remove("SMTPSCOPE_TOKEN")
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .unwrap();
    let mut srv = Server {
        child,
        dir: dir.to_path_buf(),
        http: http_port,
        policy: 0,
        syslog: 0,
        config: dir.join("none.toml"),
        log,
    };
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = srv.child.try_wait() {
            panic!("server exited with {st}: {}", srv.log_text());
        }
        if let Ok((200, _)) = http(srv.http, "GET", "/health", &[], "") {
            return srv;
        }
        assert!(Instant::now() < end, "no start: {}", srv.log_text());
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Send the datagrams in small batches, waiting for each batch to be received (a loopback
/// socket buffer holds only a few hundred KiB).
fn send_all(srv: &Server, port: u16, dgs: &[Vec<u8>]) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0usize;
    for batch in dgs.chunks(50) {
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
    let port = free_port();
    let srv = start(dir.path(), &["--sflow".into(), format!("127.0.0.1:{port}")]);
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
    let port = free_port();
    let cfg = dir.path().join("smtpscope.toml");
    std::fs::write(
        &cfg,
        format!("[serve]\nsflow = [\"127.0.0.1:{port}\"]\nsflow_agents = [\"192.0.2.1\"]\n"),
    )
    .unwrap();
    let srv = start(
        dir.path(),
        &["--config".into(), cfg.to_str().unwrap().to_string()],
    );
    send_all(&srv, port, &dgs[..100]);
    // The capture's agent is 192.168.1.1: not allowed, so every datagram is rejected.
    wait_for(10, "datagrams rejected", || {
        (srv.metric("smtpscope_sflow_rejected_total") == 100.0).then_some(())
    });
    assert_eq!(srv.metric("smtpscope_sflow_accepted_total"), 0.0);
    assert_eq!(srv.metric("smtpscope_sflow_flow_samples_total"), 0.0);
    assert_eq!(srv.term(), 0);
}
