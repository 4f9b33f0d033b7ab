//! End-to-end tests of the `smtpscope` binary on Postfix logs written here line by line.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smtpscope"))
}

/// A smarthost's log: a hijacked account whose spam fails, a customer's clean mailshot, and an
/// infected customer PC with forged HELOs, interleaved as Postfix writes them.
fn write_log(path: &Path) {
    let mut s = String::new();
    let mut n = 0u32;
    let mut msg = |s: &mut String,
                   t: u32,
                   user: Option<&str>,
                   ip: &str,
                   helo: &str,
                   from: &str,
                   rcpts: &[(String, bool)]| {
        n += 1;
        let qid = format!("{:010X}", 0xA000_0000u32 + n);
        let (h, m, sec) = (10 + t / 3600, (t / 60) % 60, t % 60);
        let ts = format!("Nov 20 {h:02}:{m:02}:{sec:02}");
        let pid = 1000 + n;
        let _ = writeln!(
            s,
            "{ts} smtp1 postfix/smtpd[{pid}]: connect from unknown[{ip}]"
        );
        let _ = writeln!(
            s,
            "{ts} smtp1 postfix/smtpd[{pid}]: NOQUEUE: permit: RCPT from unknown[{ip}]: action=permit for Client host=unknown[{ip}]; from=<{from}> to=<{}> proto=ESMTP helo=<{helo}>",
            rcpts[0].0
        );
        match user {
            Some(u) => {
                let _ = writeln!(s, "{ts} smtp1 postfix/smtpd[{pid}]: {qid}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={u}");
            }
            None => {
                let _ = writeln!(
                    s,
                    "{ts} smtp1 postfix/smtpd[{pid}]: {qid}: client=unknown[{ip}]"
                );
            }
        }
        let _ = writeln!(
            s,
            "{ts} smtp1 postfix/cleanup[77]: {qid}: message-id=<{qid}@x.example>"
        );
        let _ = writeln!(
            s,
            "{ts} smtp1 postfix/qmgr[9]: {qid}: from=<{from}>, size=2199, nrcpt={} (queue active)",
            rcpts.len()
        );
        let _ = writeln!(s, "{ts} smtp1 postfix/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt={0} data=1 quit=1 commands={1}", rcpts.len(), 4 + rcpts.len());
        for (to, ok) in rcpts {
            if *ok {
                let _ = writeln!(s, "{ts} smtp1 postfix/smtp[55]: {qid}: to=<{to}>, relay=mx.far.example[192.0.2.10]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ABC)");
            } else {
                let _ = writeln!(s, "{ts} smtp1 postfix/smtp[55]: {qid}: to=<{to}>, relay=mx.far.example[192.0.2.10]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=5.1.1, status=bounced (host mx.far.example[192.0.2.10] said: 550 5.1.1 <{to}>: Recipient address rejected: User unknown (in reply to RCPT TO command))");
            }
        }
        let _ = writeln!(s, "{ts} smtp1 postfix/qmgr[9]: {qid}: removed");
    };
    for i in 0..40u32 {
        // The hijacked account: 3 recipients each, mostly invented.
        let r: Vec<(String, bool)> = (0..3)
            .map(|k| (format!("x{i}{k}@victim{k}.example"), k == 0 && i % 3 == 0))
            .collect();
        msg(
            &mut s,
            i * 30,
            Some("taro@isp.example"),
            "203.0.113.50",
            "pc.example.net",
            "taro@isp.example",
            &r,
        );
        // A clean mailshot from a customer: 40 recipients, 1 fails.
        let r: Vec<(String, bool)> = (0..40)
            .map(|k| {
                (
                    format!("c{i}-{k}@customers{}.example", k % 7),
                    !(i == 0 && k == 0),
                )
            })
            .collect();
        msg(
            &mut s,
            i * 30 + 5,
            Some("bakery@isp.example"),
            "198.51.100.7",
            "DESKTOP-4F2K1",
            "news@bakery.example",
            &r,
        );
        // An infected PC on a customer line relaying without auth, with forged HELOs.
        let helo = [
            "qxzrtv.usa.net",
            "198.51.100.99",
            "smtp1",
            "kwbzdfq.usa.net",
        ][(i % 4) as usize];
        let r = vec![(format!("friend{i}@addressbook{}.example", i % 5), true)];
        msg(
            &mut s,
            i * 30 + 9,
            None,
            "198.51.100.99",
            helo,
            "kwntefsqhi@usa.net",
            &r,
        );
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn analyze_flags_the_abusers_and_spares_the_mailshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    write_log(&log);
    let out = bin()
        .args([
            "analyze", "--format", "jsonl", "--year", "2026", "--tz", "UTC", "--quiet",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let alerts: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |det: &str, id: &str| {
        alerts
            .iter()
            .any(|a| a["detector"] == det && a["entity"]["id"] == id)
    };
    assert!(has("delivery-failures", "taro@isp.example"), "{text}");
    assert!(has("helo-anomaly", "198.51.100.99"), "{text}");
    assert!(
        !alerts
            .iter()
            .any(|a| a["entity"]["id"] == "bakery@isp.example"),
        "{text}"
    );
    let df = alerts
        .iter()
        .find(|a| a["detector"] == "delivery-failures")
        .unwrap();
    assert_eq!(df["entity"]["kind"], "account");
    // More than 20 failures, and their share weighed with a typical sender's 2% (worth 100
    // recipients) reaches 25%: (32 + 2) / (36 + 100) at taro's 12th message.
    assert_eq!(df["evidence"]["failed_recipients"], 32);
    assert!(
        df["ts"].as_str().unwrap().starts_with("2026-11-20T10:"),
        "{}",
        df["ts"]
    );

    let out = bin()
        .args([
            "analyze", "--format", "text", "--year", "2026", "--tz", "UTC", "--quiet",
        ])
        .arg(&log)
        .output()
        .unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("== account taro@isp.example =="),
        "{report}"
    );
    assert!(
        report.contains("2026-11-20 10:00:00 taro@isp.example Size=2199"),
        "{report}"
    );
    assert!(
        report.contains("!!! x01@victim1.example (host mx.far.example"),
        "{report}"
    );
    assert!(report.contains("->  x00@victim0.example"), "{report}");
    assert!(report.contains("== client 198.51.100.99 =="), "{report}");
    assert!(report.contains("HELO=qxzrtv.usa.net"), "{report}");
    assert!(
        report.contains("lines     600 read, 600 recognized (100.00%)")
            || report.contains("recognized (100.00%)"),
        "{report}"
    );
}

#[test]
fn state_file_round_trip_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    write_log(&log);
    let state = dir.path().join("state.json");
    let st = bin()
        .args([
            "analyze", "--format", "jsonl", "--year", "2026", "--tz", "UTC", "--quiet", "-o",
        ])
        .arg(dir.path().join("a.jsonl"))
        .arg("--state")
        .arg(&state)
        .arg(&log)
        .status()
        .unwrap();
    assert!(st.success());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(v["version"], 1);
    // Loading it again works.
    let st = bin()
        .args([
            "analyze",
            "--quiet",
            "--format",
            "jsonl",
            "-o",
            "/dev/null",
            "--state",
        ])
        .arg(&state)
        .arg(&log)
        .status()
        .unwrap();
    assert!(st.success());
    // A corrupt state file, a missing input and a bad option are one-line errors, exit 1/2.
    std::fs::write(&state, "garbage").unwrap();
    let out = bin()
        .args(["analyze", "--quiet", "--state"])
        .arg(&state)
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("smtpscope: error:") && err.contains("state"),
        "{err}"
    );
    let out = bin()
        .args(["analyze", "/nonexistent/mail.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/mail.log"));
    let out = bin()
        .args(["analyze", "--no-such-option"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn parse_stats_counts_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    write_log(&log);
    std::fs::write(
        dir.path().join("junk.log"),
        "not a log line\nNov 20 10:00:00 h cron[1]: ok\n",
    )
    .unwrap();
    let out = bin()
        .args(["parse", "--stats", "--year", "2026"])
        .arg(&log)
        .arg(dir.path().join("junk.log"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines = v["lines"].as_u64().unwrap();
    assert_eq!(v["unrecognized"].as_u64().unwrap(), 2);
    assert_eq!(v["recognized"].as_u64().unwrap(), lines - 2);
    assert_eq!(
        v["by_format"]["postfix"]["lines"],
        v["by_format"]["postfix"]["recognized"]
    );
    assert!(v["by_program"]["postfix/smtpd"]["lines"].as_u64().unwrap() > 0);
}

#[test]
fn config_default_prints_and_checks() {
    let out = bin().args(["config", "--default"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[detect.delivery_failures]") && text.contains("threshold = 20"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[detect.hijack]\nmin_new_asn = 3\n").unwrap();
    let out = bin()
        .args(["config", "--check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("min_new_asn") && err.contains("line 2"),
        "{err}"
    );
}
