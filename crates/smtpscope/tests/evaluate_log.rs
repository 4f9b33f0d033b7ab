//! `evaluate --log`: "spam leaked" computed from the mail log itself agrees with the
//! simulator's timeline.jsonl.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smtpscope"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn smtpscope");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn evaluate(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let s = run(bin()
        .arg("evaluate")
        .arg("--labels")
        .arg(dir.join("labels.jsonl"))
        .arg("--alerts")
        .arg(dir.join("alerts.jsonl"))
        .args(["--format", "json"])
        .args(extra));
    serde_json::from_str(&s).expect("evaluate --format json prints JSON")
}

fn leaked(v: &serde_json::Value) -> (u64, f64, f64) {
    let l = &v["overall"]["leaked"];
    (
        l["n"].as_u64().expect("leaked.n"),
        l["p50"].as_f64().expect("leaked.p50 present"),
        l["p90"].as_f64().expect("leaked.p90 present"),
    )
}

#[test]
fn leaked_from_log_matches_timeline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // A light day (the default hijack rate writes ~200 MB even for 300 users, too slow for a
    // debug test): three hijacks, one infected client.
    let cfg = simulate::SimConfig {
        users: 300,
        days: 1,
        seed: 3,
        hijacks_per_day: 3.0,
        heavy_day_prob: 0.0,
        infected_per_day: 1.0,
        start: simulate::Date::parse("2026-11-16").expect("valid date"),
        ..simulate::SimConfig::default()
    };
    simulate::run(&cfg, dir).expect("simulate");
    let log = dir.join("mail.log");
    run(bin()
        .args(["analyze", "--format", "jsonl", "-o"])
        .arg(dir.join("alerts.jsonl"))
        .args(["--year", "2026", "--tz", "UTC"])
        .arg(&log));

    let with_tl = evaluate(dir, &[]);
    assert_eq!(with_tl["has_timeline"], true);
    let (n_tl, p50_tl, p90_tl) = leaked(&with_tl);
    assert!(n_tl > 0, "some label detected: {with_tl}");

    std::fs::remove_file(dir.join("timeline.jsonl")).expect("remove timeline.jsonl");
    let without = evaluate(dir, &[]);
    assert_eq!(without["has_timeline"], false);
    assert_eq!(without["overall"]["leaked"]["n"], 0);

    let logpath = log.to_str().expect("utf-8 temp path");
    let with_log = evaluate(dir, &["--log", logpath]);
    assert_eq!(with_log["has_timeline"], true);
    let (n_log, p50_log, p90_log) = leaked(&with_log);
    // Detection itself does not depend on where accept times come from.
    assert_eq!(n_log, n_tl);
    assert_eq!(
        with_log["overall"]["detected"],
        with_tl["overall"]["detected"]
    );
    eprintln!("leaked timeline p50/p90 {p50_tl}/{p90_tl}, log {p50_log}/{p90_log} (n={n_tl})");
    // The log counts every accept of the entity, the timeline only the abusive ones (a hijacked
    // account's owner keeps sending in the abuse window), so log-based ≥ timeline-based.
    assert!(p50_log >= p50_tl && p90_log >= p90_tl);
    assert!(p50_log <= p50_tl * 1.1 + 2.0, "p50 {p50_log} vs {p50_tl}");
    assert!(p90_log <= p90_tl * 1.1 + 2.0, "p90 {p90_log} vs {p90_tl}");
}
