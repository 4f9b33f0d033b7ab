//! `smtpscope serve`: alert sinks (JSONL file, webhook with retry) and that a failing webhook
//! does not hold up detection.

mod serve_util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use serve_util::*;

/// A webhook receiver: answers 500 to the first request, 200 after; sends each body.
fn webhook() -> (u16, mpsc::Receiver<(u16, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, s) in l.incoming().enumerate() {
            let Ok(s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            let code = if n == 0 { 500 } else { 200 };
            let mut w = s;
            let _ = write!(
                w,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tx.send((code, String::from_utf8(body).unwrap()));
        }
    });
    (port, rx)
}

#[test]
fn alerts_go_to_jsonl_and_webhook_with_retry() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    let jsonl = d.path().join("alerts.jsonl");
    let (hook, rx) = webhook();
    let mut lines = sasl_failures("192.0.2.77", 25, 1);
    lines.extend(sasl_failures("198.51.100.78", 25, 2));
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let srv = Server::start(
        d.path(),
        &format!(
            "follow = [\"{}\"]\nalerts_jsonl = \"{}\"\nwebhook = \"http://127.0.0.1:{hook}/hook\"\n",
            log.display(),
            jsonl.display()
        ),
    );
    let got: Vec<(u16, String)> = (0..3)
        .map(|_| rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap())
        .collect();
    // First attempt refused, retried after back-off, then the second alert.
    assert_eq!(got[0].0, 500);
    assert_eq!(got[1], (200, got[0].1.clone()));
    let a: serde_json::Value = serde_json::from_str(&got[1].1).unwrap();
    let b: serde_json::Value = serde_json::from_str(&got[2].1).unwrap();
    assert_eq!(a["entity"]["id"], "192.0.2.77");
    assert_eq!(b["entity"]["id"], "198.51.100.78");
    assert_eq!(a["detector"], "auth-bruteforce");
    wait_for(10, "webhook_ok 2", || {
        (srv.metric("smtpscope_webhook_ok_total") == 2.0).then_some(())
    });
    assert_eq!(srv.term(), 0);
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["entity"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["192.0.2.77", "198.51.100.78"]);
}

#[test]
fn a_dead_webhook_does_not_hold_up_detection() {
    let d = tempfile::tempdir().unwrap();
    let dead = free_port();
    let srv = Server::start(
        d.path(),
        &format!(
            "mode = \"enforce\"\nwebhook = \"http://127.0.0.1:{dead}/\"\n[serve.containment]\ndetectors = [\"auth-bruteforce\"]\nmin_score = 0.5\n"
        ),
    );
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for ip in 1..=5 {
        // One client per /24, so that only the per-address rule fires.
        for l in sasl_failures(&format!("198.51.{ip}.9"), 21, 3) {
            u.send_to(format!("<38>{l}").as_bytes(), ("127.0.0.1", srv.syslog))
                .unwrap();
        }
    }
    // All five clients are contained while the webhook is still retrying the first alert.
    let mut c = srv.policy_conn();
    wait_for(10, "five containments", || {
        (srv.metric("smtpscope_contained_entities") == 5.0).then_some(())
    });
    for ip in 1..=5 {
        assert!(
            ask(&mut c, &rcpt("x", &format!("198.51.{ip}.9"), "a@b.c")).starts_with("action=HOLD")
        );
    }
    assert_eq!(srv.metric("smtpscope_webhook_ok_total"), 0.0);
    assert_eq!(srv.term(), 0);
}
