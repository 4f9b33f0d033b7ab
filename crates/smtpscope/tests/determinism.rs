//! Issue 10.1: the same input gives the same output — byte for byte, run after run, on one
//! thread or several.
//!
//! The log is one simulated ISP day (about 20,000 accounts and customer lines) interleaved with
//! an inbound MX's traffic from 12,000 internet clients: refused connections with all kinds of
//! HELO, and accepted mail relayed to an internal server, some of it deferred and some never
//! finished. The engine's capacity limits are set low so that its correlator closes messages
//! early and its detectors forget entities all the time: wherever the order of a hash map or
//! of an eviction could reach a verdict, it does here. Before the fix, two runs of
//! `analyze --threads 1` on such a day differed in the time of `helo-anomaly` alerts.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_smtpscope");

/// Internet clients of the inbound MX.
const INBOUND_CLIENTS: u64 = 12_000;

/// A small deterministic generator (SplitMix64) for the inbound traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn word(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
}

/// Seconds of day of a syslog stamp `Nov 16 HH:MM:SS` (the simulated day), day counted.
fn stamp_secs(line: &str) -> Option<u64> {
    let b = line.as_bytes();
    if b.len() < 15 || b[3] != b' ' || b[6] != b' ' {
        return None;
    }
    let num = |s: &str| s.trim().parse::<u64>().ok();
    let day = num(&line[4..6])?;
    let (h, m, s) = (num(&line[7..9])?, num(&line[10..12])?, num(&line[13..15])?);
    Some(day * 86_400 + h * 3600 + m * 60 + s)
}

fn stamp(secs: u64) -> String {
    let (day, sod) = (secs / 86_400, secs % 86_400);
    format!(
        "Nov {day:>2} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// The inbound MX's lines, `(time, line)`, for the day starting at `day0` (seconds).
fn inbound(day0: u64) -> Vec<(u64, String)> {
    let mut r = Rng(42);
    let mut out = Vec::new();
    let local = ["example-isp.de", "example-online.de", "example-mail.de"];
    let mut pid = 20_000u64;
    let mut qn = 0x100000u64;
    for i in 0..INBOUND_CLIENTS {
        let t = day0 + (i * 86_000) / INBOUND_CLIENTS;
        let ip = format!(
            "{}.{}.{}.{}",
            11 + r.below(180),
            r.below(256),
            r.below(256),
            1 + r.below(254)
        );
        let dom = format!(
            "{}.{}",
            r.word(6),
            ["com", "net", "ru", "top"][r.below(4) as usize]
        );
        let rcpt = format!("user{}@{}", r.below(5000), local[r.below(3) as usize]);
        let helo = match r.below(6) {
            0 => ip.clone(),
            1 => format!("[{ip}]"),
            2 => r.word(8),
            3 => local[r.below(3) as usize].to_string(),
            4 => format!("{}.{dom}", r.word(6)),
            _ => format!("mail.{dom}"),
        };
        let from = format!("{}@{dom}", r.word(7));
        pid += 1;
        let smtpd = format!("mx1 postfix/smtpd[{pid}]");
        out.push((
            t,
            format!("{} {smtpd}: connect from unknown[{ip}]", stamp(t)),
        ));
        if r.below(10) < 6 {
            out.push((
                t + 1,
                format!(
                    "{} {smtpd}: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; from=<{from}> to=<{rcpt}> proto=ESMTP helo=<{helo}>",
                    stamp(t + 1)
                ),
            ));
            out.push((
                t + 1,
                format!("{} {smtpd}: disconnect from unknown[{ip}]", stamp(t + 1)),
            ));
            continue;
        }
        qn += 1;
        let q = format!("{qn:X}A");
        out.push((
            t + 1,
            format!("{} {smtpd}: {q}: client=unknown[{ip}]", stamp(t + 1)),
        ));
        out.push((
            t + 1,
            format!(
                "{} mx1 postfix/cleanup[{}]: {q}: message-id=<{i}@{dom}>",
                stamp(t + 1),
                pid + 7
            ),
        ));
        out.push((
            t + 2,
            format!(
                "{} mx1 postfix/qmgr[999]: {q}: from=<{from}>, size={}, nrcpt=1 (queue active)",
                stamp(t + 2),
                1000 + r.below(50_000)
            ),
        ));
        out.push((
            t + 2,
            format!("{} {smtpd}: disconnect from unknown[{ip}]", stamp(t + 2)),
        ));
        let relay = "relay=mail.internal.example[10.0.0.5]:25";
        match r.below(10) {
            // Never finished in this log: closed by eviction or at the end.
            0 => {}
            // Deferred, delivered later.
            1 | 2 => {
                let later = t + 600 + r.below(7200);
                out.push((
                    t + 3,
                    format!(
                        "{} mx1 postfix/smtp[{}]: {q}: to=<{rcpt}>, {relay}, delay=1, delays=0.1/0/0.5/0.4, dsn=4.4.1, status=deferred (connect to mail.internal.example[10.0.0.5]:25: Connection refused)",
                        stamp(t + 3),
                        pid + 9
                    ),
                ));
                out.push((
                    later,
                    format!(
                        "{} mx1 postfix/smtp[{}]: {q}: to=<{rcpt}>, {relay}, delay=700, delays=700/0/0.5/0.4, dsn=2.0.0, status=sent (250 OK)",
                        stamp(later),
                        pid + 9
                    ),
                ));
                out.push((
                    later,
                    format!("{} mx1 postfix/qmgr[999]: {q}: removed", stamp(later)),
                ));
            }
            _ => {
                out.push((
                    t + 3,
                    format!(
                        "{} mx1 postfix/smtp[{}]: {q}: to=<{rcpt}>, {relay}, delay=1, delays=0.1/0/0.5/0.4, dsn=2.0.0, status=sent (250 OK)",
                        stamp(t + 3),
                        pid + 9
                    ),
                ));
                out.push((
                    t + 3,
                    format!("{} mx1 postfix/qmgr[999]: {q}: removed", stamp(t + 3)),
                ));
            }
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// The simulated day (20,000 accounts; a light one, so that a debug build analyses it three
/// times in about a minute) and the inbound lines, merged in time order: about 28 MB.
fn build_log(dir: &Path) -> std::path::PathBuf {
    let cfg = simulate::SimConfig {
        users: 20_000,
        days: 1,
        seed: 5,
        msgs_per_active_day: 0.1,
        hijacks_per_day: 0.0,
        heavy_day_prob: 0.0,
        infected_per_day: 1.0,
        start: simulate::Date::parse("2026-11-16").expect("valid date"),
        ..simulate::SimConfig::default()
    };
    let sim = dir.join("sim");
    simulate::run(&cfg, &sim).expect("simulate");
    let text = std::fs::read_to_string(sim.join("mail.log")).expect("simulated log");
    let day0 = 16 * 86_400;
    let inb = inbound(day0);
    let mut out = String::with_capacity(text.len() + inb.len() * 160);
    let mut it = inb.iter().peekable();
    for line in text.lines() {
        let t = stamp_secs(line).unwrap_or(0);
        while let Some((ti, l)) = it.peek() {
            if *ti > t {
                break;
            }
            out.push_str(l);
            out.push('\n');
            it.next();
        }
        out.push_str(line);
        out.push('\n');
    }
    for (_, l) in it {
        out.push_str(l);
        out.push('\n');
    }
    let log = dir.join("mail.log");
    std::fs::write(&log, out).expect("write log");
    log
}

fn analyze(dir: &Path, log: &Path, threads: &str, name: &str) -> Vec<u8> {
    let out = dir.join(name);
    let st = Command::new(BIN)
        .args([
            "analyze", "--format", "jsonl", "--year", "2026", "--tz", "UTC", "-q",
        ])
        .args(["--threads", threads, "-c"])
        .arg(dir.join("small.toml"))
        .arg("-o")
        .arg(&out)
        .arg(log)
        .status()
        .expect("run analyze");
    assert!(st.success(), "analyze --threads {threads} failed");
    std::fs::read(out).expect("alerts")
}

#[test]
fn issue_10_1_same_log_same_alerts_any_run_any_thread_count() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let log = build_log(dir);
    // Low limits: the correlator evicts messages and the detectors forget entities all day.
    std::fs::write(
        dir.join("small.toml"),
        "[detect.limits]\nmax_in_flight = 32\nmax_entities = 3000\n",
    )
    .expect("write config");
    let a = analyze(dir, &log, "1", "a.jsonl");
    let b = analyze(dir, &log, "1", "b.jsonl");
    let c = analyze(dir, &log, "2", "c.jsonl");
    let n = a.iter().filter(|&&c| c == b'\n').count();
    assert!(n >= 5, "the day raises alerts to compare: {n}");
    assert!(a == b, "two runs with --threads 1 differ");
    assert!(a == c, "--threads 1 and --threads 2 differ");
}
