//! `smtpscope serve`: following files across rotation (rename, truncation), `kill -9` and
//! restart (positions, incidents, containment, baselines), and the syslog receiver.

mod serve_util;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};

use serve_util::*;

fn filler(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("Nov 24 05:10:00 mx1 postfix/smtpd[77]: connect from unknown[198.51.100.{}] line={i}\n", i % 250))
        .collect()
}

fn append(p: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn follow_lines(srv: &Server) -> f64 {
    srv.metric("smtpscope_lines_total{source=\"follow\"}")
}

/// Wait for exactly `n` lines and check that no more arrive for a while (no duplicates).
fn expect_lines(srv: &Server, n: f64) {
    wait_for(20, &format!("{n} lines"), || {
        (follow_lines(srv) >= n).then_some(())
    });
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_millis(400) {
        assert_eq!(follow_lines(srv), n, "no duplicates");
    }
}

#[test]
fn follow_survives_rename_and_truncation_without_loss_or_duplicates() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, &filler(0, 100));
    let srv = Server::start(d.path(), &format!("follow = [\"{}\"]\n", log.display()));
    expect_lines(&srv, 100.0);
    // Rename rotation; the MTA writes a few more lines to the old file before reopening.
    std::fs::rename(&log, d.path().join("mail.log.1")).unwrap();
    append(&d.path().join("mail.log.1"), &filler(100, 10));
    append(&log, &filler(110, 50));
    expect_lines(&srv, 160.0);
    // copytruncate.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &filler(160, 30));
    expect_lines(&srv, 190.0);
    // A last line without newline is not taken until it is complete.
    append(
        &log,
        "Nov 24 05:10:00 mx1 postfix/smtpd[77]: connect from unknown[198.51.100.1]",
    );
    append(&log, " tail\n");
    expect_lines(&srv, 191.0);
    assert_eq!(srv.metric("smtpscope_file_rotations_total"), 2.0);
    assert_eq!(
        srv.metric("smtpscope_parse_failures_total{source=\"follow\"}"),
        0.0
    );
    assert_eq!(srv.term(), 0);
}

fn store_pos(db: &std::path::Path) -> (u64, i64, i64) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let pos: i64 = c
        .query_row("SELECT pos FROM file_positions", [], |r| r.get(0))
        .unwrap();
    let inc: i64 = c
        .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
        .unwrap();
    let cont: i64 = c
        .query_row("SELECT count(*) FROM containment", [], |r| r.get(0))
        .unwrap();
    (pos as u64, inc, cont)
}

#[test]
fn kill_9_mid_stream_loses_and_repeats_nothing() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    let cfg = format!(
        "mode = \"enforce\"\nfollow = [\"{}\"]\nbaseline_interval = \"1s\"\n[serve.containment]\ndetectors = [\"auth-bruteforce\"]\nmin_score = 0.5\n",
        log.display()
    );
    // Logins of one account on two days give it a baseline.
    let mut head = String::new();
    for day in [22, 23] {
        for i in 0..3 {
            head.push_str(&format!("Nov {day} 09:0{i}:00 mx1 postfix/smtpd[5]: 4B{day}{i}C: client=unknown[192.0.2.33], sasl_method=PLAIN, sasl_username=alice@example.jp\n"));
        }
    }
    head.push_str(&(sasl_failures("192.0.2.9", 25, 1).join("\n") + "\n"));
    append(&log, &head);
    let srv = Server::start(d.path(), &cfg);
    let mut c = srv.policy_conn();
    wait_for(20, "containment of the guessing client", || {
        ask(&mut c, &rcpt("x", "192.0.2.9", "a@example.org"))
            .starts_with("action=HOLD")
            .then_some(())
    });
    wait_for(20, "baseline saved", || {
        let c = rusqlite::Connection::open_with_flags(
            d.path().join("store.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        let n: i64 = c
            .query_row("SELECT count(*) FROM baselines", [], |r| r.get(0))
            .ok()?;
        (n > 0).then_some(())
    });
    // Stream lines and kill -9 while they are being read.
    let total = 100_000;
    let mut written = 0;
    while written < total {
        append(&log, &filler(written, 5000));
        written += 5000;
        if follow_lines(&srv) >= 10_000.0 {
            break;
        }
    }
    srv.kill9();
    append(&log, &filler(written, total - written));
    let db = d.path().join("store.db");
    let (pos, incidents, contained) = store_pos(&db);
    assert_eq!((incidents, contained), (1, 1));
    let text = std::fs::read(&log).unwrap();
    assert!(
        pos >= head.len() as u64 && pos < text.len() as u64,
        "killed mid-stream at {pos}"
    );
    assert_eq!(text[pos as usize - 1], b'\n', "positions are at line ends");
    let after = text[pos as usize..].iter().filter(|b| **b == b'\n').count();

    // Restart: containment is there before the first line is read; the file resumes exactly.
    let srv = Server::start(d.path(), &cfg);
    let mut c = srv.policy_conn();
    assert!(ask(&mut c, &rcpt("x", "192.0.2.9", "a@example.org")).starts_with("action=HOLD"));
    expect_lines(&srv, after as f64);
    assert_eq!(srv.term(), 0);
    let (pos, incidents, contained) = store_pos(&db);
    assert_eq!(pos, text.len() as u64);
    assert_eq!((incidents, contained), (1, 1));
    let c = rusqlite::Connection::open(&db).unwrap();
    let who: String = c
        .query_row("SELECT account FROM baselines", [], |r| r.get(0))
        .unwrap();
    assert_eq!(who, "alice@example.jp", "baseline restored and saved again");
}

#[test]
fn syslog_udp_and_tcp_feed_the_engine() {
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(d.path(), "");
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    for l in sasl_failures("192.0.2.50", 15, 2) {
        u.send_to(format!("<38>{l}").as_bytes(), ("127.0.0.1", srv.syslog))
            .unwrap();
    }
    let mut t = TcpStream::connect(("127.0.0.1", srv.syslog)).unwrap();
    let mut wire = Vec::new();
    for i in 0..5 {
        // RFC 5424, octet-counted.
        let m = format!("<38>1 2026-11-24T05:03:0{i}Z mx1 postfix/smtpd 123 - - warning: unknown[192.0.2.50]: SASL LOGIN authentication failed: UGFzc3dvcmQ6");
        wire.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
    }
    for l in sasl_failures("192.0.2.50", 5, 4) {
        // RFC 3164, newline-framed.
        wire.extend_from_slice(format!("<38>{l}\n").as_bytes());
    }
    t.write_all(&wire).unwrap();
    drop(t);
    wait_for(20, "25 syslog lines", || {
        (srv.metric("smtpscope_lines_total{source=\"syslog\"}") >= 25.0).then_some(())
    });
    assert_eq!(srv.metric("smtpscope_lines_total{source=\"syslog\"}"), 25.0);
    assert_eq!(
        srv.metric("smtpscope_parse_failures_total{source=\"syslog\"}"),
        0.0
    );
    let list = wait_for(20, "incident", || {
        let (_, j) = srv.get("/api/incidents?q=192.0.2.50");
        let v: serde_json::Value = serde_json::from_str(&j).ok()?;
        (v.as_array()?.len() == 1).then_some(v)
    });
    assert_eq!(list[0]["detector"], "auth-bruteforce");
    assert_eq!(
        list[0]["state"], "open",
        "auth-bruteforce does not contain by default"
    );
    assert_eq!(
        srv.metric("smtpscope_alerts_total{detector=\"auth-bruteforce\"}"),
        1.0
    );
    assert_eq!(srv.term(), 0);
}
