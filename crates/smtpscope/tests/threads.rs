//! `analyze --threads N` gives byte-for-byte the same alerts and statistics as one thread, on a
//! log of several parse chunks that crosses a new year (December -> January, year-less stamps).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_smtpscope");

/// Real Postfix lines from the corpus, stamps cut off ("host program[pid]: msg").
fn corpus_bodies() -> Vec<String> {
    let mut v = Vec::new();
    for f in [
        "kdent-postfix_log_analysis/mail.log",
        "kdent-postfix_log_analysis/mail2.log",
        "nole-maillog/mail.log",
        "pflgviewer/mail.log",
        "infohtreasure-maillog-dump/maillog",
        "fail2ban-postfix.log",
    ] {
        let raw = std::fs::read(testdata::mail().join("postfix").join(f)).expect("corpus file");
        for line in String::from_utf8_lossy(&raw).lines() {
            let b = line.as_bytes();
            if b.len() > 16 && b[3] == b' ' && b[0].is_ascii_uppercase() && b[15] == b' ' {
                v.push(line[16..].to_string());
            }
        }
    }
    assert!(v.len() > 1000, "corpus lines: {}", v.len());
    v
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Syslog stamp `secs` seconds after 2026-12-31 20:00:00 (UTC, year-less as syslog writes it).
fn stamp(secs: u64) -> String {
    let t = 20 * 3600 + secs;
    let (day, sod) = (t / 86_400, t % 86_400);
    let (mo, d) = if day == 0 { (12, 31) } else { (1, day) };
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[mo - 1],
        d,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// About 4 MB: corpus lines with stamps walking from Dec 31 20:00 to Jan 1 04:00, a password
/// guessing burst from one address every ~20 minutes (so alerts fall in both years), and one
/// line that is not UTF-8.
fn build_log() -> (Vec<u8>, u64) {
    let bodies = corpus_bodies();
    let mut out = Vec::with_capacity(4 << 20);
    let mut lines = 0u64;
    let total_secs = 8 * 3600u64;
    let n = 24_000u64;
    for i in 0..n {
        let secs = i * total_secs / n;
        let body = &bodies[i as usize % bodies.len()];
        out.extend_from_slice(format!("{} {body}\n", stamp(secs)).as_bytes());
        lines += 1;
        if i % 1_000 == 500 {
            // One /24 per burst: a second address of one network would raise the network instead.
            let ip = format!("203.0.{}.9", i / 1_000);
            for k in 0..30 {
                out.extend_from_slice(
                    format!(
                        "{} mx1 postfix/smtpd[{}]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n",
                        stamp(secs + k),
                        4000 + k
                    )
                    .as_bytes(),
                );
                lines += 1;
            }
        }
        if i == n / 2 {
            out.extend_from_slice(
                b"Jan  1 00:00:01 mx1 postfix/smtpd[1]: connect from bad\xff\xfe[192.0.2.1]\n",
            );
            lines += 1;
        }
    }
    (out, lines)
}

fn analyze(log: &Path, threads: usize) -> (String, serde_json::Value) {
    analyze_with(log, threads, "auto")
}

/// `analyze` with `--threads` and `--detector-thread` (auto, on, off).
fn analyze_with(log: &Path, threads: usize, detector_thread: &str) -> (String, serde_json::Value) {
    let out = Command::new(BIN)
        .args(["analyze", "--format", "jsonl", "--quiet", "--stats"])
        .args(["--year", "2026", "--tz", "UTC", "--threads"])
        .arg(threads.to_string())
        .args(["--detector-thread", detector_thread])
        .arg(log)
        .output()
        .expect("run smtpscope");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stats: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("--stats prints one JSON object");
    stats
        .as_object_mut()
        .expect("stats object")
        .remove("seconds");
    (String::from_utf8(out.stdout).expect("JSONL"), stats)
}

/// `log` analysed with 2, 3 and 4 threads (the engine thread parsing, one parser thread, two),
/// and with the detector thread forced on or off, gives `one` and `s1`, the one-thread alerts
/// and statistics.
fn same_for_every_thread_setting(log: &Path, one: &str, s1: &serde_json::Value) {
    for threads in [2, 3, 4] {
        let (many, sn) = analyze(log, threads);
        assert_eq!(many, one, "alerts with --threads {threads}");
        assert_eq!(&sn, s1, "statistics with --threads {threads}");
    }
    // Forced either way, whatever the thread count.
    for (threads, d) in [(1, "on"), (2, "off"), (2, "on"), (3, "off")] {
        let (many, sn) = analyze_with(log, threads, d);
        assert_eq!(
            many, one,
            "alerts with --threads {threads} --detector-thread {d}"
        );
        assert_eq!(
            &sn, s1,
            "statistics with --threads {threads} --detector-thread {d}"
        );
    }
}

#[test]
fn same_output_for_one_and_many_threads_across_new_year() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    let (text, lines) = build_log();
    assert!(text.len() > 3 << 20, "several parse chunks: {}", text.len());
    std::fs::write(&log, &text).unwrap();

    let (one, s1) = analyze(&log, 1);
    assert_eq!(s1["lines"], lines);
    assert_eq!(s1["invalid_utf8"], 1);
    assert_eq!(s1["inputs"][0]["bytes"], text.len() as u64);
    let alerts: Vec<serde_json::Value> = one
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ts = |a: &serde_json::Value| a["ts"].as_str().unwrap_or("").to_string();
    assert!(
        alerts
            .iter()
            .any(|a| a["detector"] == "auth-bruteforce" && ts(a).starts_with("2026-12-31T2")),
        "an alert in the old year: {one}"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a["detector"] == "auth-bruteforce" && ts(a).starts_with("2027-01-01T0")),
        "an alert in the new year: {one}"
    );

    same_for_every_thread_setting(&log, &one, &s1);
}

/// Size of one parse chunk (`pipeline::par::CHUNK_BYTES`): the test puts the new year exactly on
/// a chunk boundary, where a parser thread cannot know that the previous line was in December.
const CHUNK_BYTES: usize = 1 << 20;

#[test]
fn new_year_on_a_chunk_boundary() {
    let bodies = corpus_bodies();
    let mut out = Vec::with_capacity(3 << 20);
    let mut i = 0usize;
    // December lines up to just under one chunk...
    loop {
        let line = format!(
            "{} {}\n",
            stamp((i as u64 * 14_000 / 5_000).min(3 * 3600 + 3599)),
            bodies[i % bodies.len()]
        );
        if out.len() + line.len() > CHUNK_BYTES - 100 {
            break;
        }
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    // ...one line that fills the chunk exactly...
    let head = "Dec 31 23:59:59 mx1 cron[1]: ";
    let pad = CHUNK_BYTES - out.len() - head.len() - 1;
    out.extend_from_slice(format!("{head}{}\n", "x".repeat(pad)).as_bytes());
    assert_eq!(out.len(), CHUNK_BYTES);
    // ...and the next chunk starts in January with a password-guessing burst.
    for k in 0..30u64 {
        out.extend_from_slice(
            format!(
                "{} mx1 postfix/smtpd[{}]: warning: unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n",
                stamp(4 * 3600 + k),
                5000 + k
            )
            .as_bytes(),
        );
    }
    for j in 0..8_000u64 {
        out.extend_from_slice(
            format!(
                "{} {}\n",
                stamp(4 * 3600 + 30 + j / 4),
                bodies[j as usize % bodies.len()]
            )
            .as_bytes(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, &out).unwrap();

    let (one, s1) = analyze(&log, 1);
    assert!(
        one.lines()
            .any(|l| l.contains("\"detector\":\"auth-bruteforce\"")
                && l.contains("\"ts\":\"2027-01-01T00:00:")),
        "the burst is dated in the new year: {one}"
    );
    // Parser threads cut the input in chunks: two without the detector thread, one with it.
    for (threads, d) in [(2, "off"), (3, "auto")] {
        let (many, sn) = analyze_with(&log, threads, d);
        assert_eq!(
            many, one,
            "alerts with --threads {threads} --detector-thread {d}"
        );
        assert_eq!(
            sn, s1,
            "statistics with --threads {threads} --detector-thread {d}"
        );
    }
}

/// The detectors on a thread of their own (`detect::Engine::detectors_on_thread`, with two
/// threads or more, or `--detector-thread on`) give the one-thread output byte for byte, on a
/// simulated day where detectors fed by logins, by submissions and by completed messages fire
/// and their alerts interleave: auth-hijack, auth-bruteforce and campaign, delivery-failures
/// and helo-anomaly. Also the incidents (`--format incidents`), built from the alerts in their
/// order.
#[test]
fn detectors_on_their_own_thread_give_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = simulate::SimConfig {
        users: 3_000,
        days: 1,
        seed: 11,
        msgs_per_active_day: 0.5,
        hijacks_per_day: 4.0,
        heavy_day_prob: 0.0,
        group_share: 0.5,
        guessing_share: 1.0,
        infected_per_day: 3.0,
        start: simulate::Date::parse("2026-11-16").expect("valid date"),
        ..simulate::SimConfig::default()
    };
    let sim = dir.path().join("sim");
    simulate::run(&cfg, &sim).expect("simulate");
    let log = sim.join("mail.log");

    let (one, s1) = analyze(&log, 1);
    let detectors: Vec<String> = one
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).unwrap();
            a["detector"].as_str().unwrap_or("").to_string()
        })
        .collect();
    let engine_side = |d: &str| matches!(d, "auth-hijack" | "auth-bruteforce" | "campaign");
    for d in ["auth-hijack", "auth-bruteforce", "delivery-failures"] {
        assert!(detectors.iter().any(|x| x == d), "{d} fires: {detectors:?}");
    }
    // The two sides' alerts interleave (so their order is the merge's doing, not a concatenation).
    let switches = detectors
        .windows(2)
        .filter(|w| engine_side(&w[0]) != engine_side(&w[1]))
        .count();
    assert!(switches >= 3, "interleaved: {detectors:?}");

    same_for_every_thread_setting(&log, &one, &s1);
    let incidents = |threads: usize| {
        let out = Command::new(BIN)
            .args(["analyze", "--format", "incidents", "--quiet", "--tz", "UTC"])
            .arg("--threads")
            .arg(threads.to_string())
            .arg(&log)
            .output()
            .expect("run smtpscope");
        assert!(out.status.success());
        out.stdout
    };
    let i1 = incidents(1);
    assert!(!i1.is_empty());
    assert_eq!(incidents(2), i1, "incidents with --threads 2");
}
