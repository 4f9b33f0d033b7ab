//! End to end on simulated logs: simulate an ISP day with hidden abuse (library), analyze it with
//! the binary, score the alerts against the ground truth. The hijack issue's targets, on a
//! small population: every hijacked account and infected client found, quickly, with few
//! messages leaked and no false positives among the ordinary users and the traps.

use std::process::Command;

fn run_case(format: simulate::LogFormat, seed: u64) -> simulate::evaluate::Evaluation {
    let dir = tempfile::tempdir().unwrap();
    let cfg = simulate::SimConfig {
        users: 1000,
        days: 1,
        seed,
        format,
        start: simulate::Date::parse("2026-11-16").unwrap(),
        hijacks_per_day: 3.0,
        heavy_day_prob: 0.0,
        infected_per_day: 1.0,
        ..simulate::SimConfig::default()
    };
    let summary = simulate::run(&cfg, dir.path()).unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let st = Command::new(env!("CARGO_BIN_EXE_smtpscope"))
        .args([
            "analyze", "--format", "jsonl", "--quiet", "--year", "2026", "--tz", "UTC", "-o",
        ])
        .arg(&alerts)
        .arg(dir.path().join("mail.log"))
        .status()
        .unwrap();
    assert!(st.success());
    let labels = simulate::evaluate::load_labels(&dir.path().join("labels.jsonl")).unwrap();
    let al = simulate::evaluate::load_alerts(&alerts).unwrap();
    let tl = simulate::evaluate::load_timeline(&dir.path().join("timeline.jsonl")).unwrap();
    let ev = simulate::evaluate::evaluate(&labels, &al, summary.legit_accounts, 1.0, Some(&tl));
    eprintln!("{}", ev.to_text());
    ev
}

fn check(ev: &simulate::evaluate::Evaluation) {
    let text = ev.to_text();
    // Every label found, no false entity.
    assert_eq!(
        ev.overall.detected, ev.overall.labels,
        "not every abusive entity was detected:\n{text}"
    );
    assert!(ev.overall.labels > 0, "{text}");
    assert_eq!(ev.fp_entities, 0, "{text}");
}

#[test]
fn postfix_day_with_hidden_abuse_is_scored_perfectly() {
    check(&run_case(simulate::LogFormat::Postfix, 11));
}

#[test]
fn exim_day_with_hidden_abuse_is_scored_perfectly() {
    check(&run_case(simulate::LogFormat::Exim, 12));
}
