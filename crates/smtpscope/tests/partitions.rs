//! `analyze --partitions P` (issue 12, item 3): the engine split by entity across threads gives
//! byte-for-byte the same output for any number of threads, and the alerts a cluster of `P`
//! partitions raises for the log (`cluster-replay`), plus what the end of the input closes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

mod sim_util;

const BIN: &str = env!("CARGO_BIN_EXE_smtpscope");

/// `smtpscope ARGS --tz UTC [--quiet LOG]`'s output (it must succeed).
fn run(args: &[&str], log: Option<&Path>) -> Vec<u8> {
    let mut cmd = Command::new(BIN);
    cmd.args(args).args(["--tz", "UTC"]);
    if let Some(log) = log {
        cmd.arg("--quiet").arg(log);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// (detector, entity, time) of every alert of a JSON Lines output.
fn alert_keys(jsonl: &[u8]) -> Vec<(String, String, String)> {
    String::from_utf8_lossy(jsonl)
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).expect("an alert per line");
            (
                a["detector"].as_str().unwrap().to_string(),
                a["entity"]["id"].as_str().unwrap().to_string(),
                a["ts"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn partitioned_analysis_is_the_same_for_any_thread_count_and_is_the_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let log = sim_util::simulated_day(dir.path());
    let partitioned = |format: &str, threads: &str| {
        let args = ["analyze", "--format", format, "--partitions", "8"];
        run(&[&args[..], &["--threads", threads]].concat(), Some(&log))
    };
    for format in ["jsonl", "incidents"] {
        let one = partitioned(format, "1");
        for threads in ["2", "3", "5", "8", "12"] {
            // From 3 on the input is parsed apart from the routing thread (parser_threads).
            let many = partitioned(format, threads);
            assert!(
                one == many,
                "--format {format}: --threads {threads} differs from one thread"
            );
        }
    }
    let ours = alert_keys(&run(
        &[
            "analyze",
            "--format",
            "jsonl",
            "--partitions",
            "8",
            "--threads",
            "2",
        ],
        Some(&log),
    ));
    let detectors: BTreeSet<&str> = ours.iter().map(|k| k.0.as_str()).collect();
    for d in [
        "auth-hijack",
        "auth-bruteforce",
        "delivery-failures",
        "campaign",
    ] {
        assert!(detectors.contains(d), "no {d} alert: {detectors:?}");
    }
    // Every alert the cluster raises, analyze raises; the rest come from the messages the end
    // of the input closes (a live cluster never closes them), never from logins.
    let edge = format!("a={}", log.display());
    let cluster = alert_keys(&run(
        &["cluster-replay", "--partitions", "8", "--edge", &edge],
        None,
    ));
    let ours_set: BTreeSet<_> = ours.iter().collect();
    let cluster_set: BTreeSet<_> = cluster.iter().collect();
    let missing: Vec<_> = cluster_set.difference(&ours_set).collect();
    assert!(
        missing.is_empty(),
        "the cluster's alerts not raised: {missing:?}"
    );
    for extra in ours_set.difference(&cluster_set) {
        assert!(
            !["auth-hijack", "auth-bruteforce", "campaign"].contains(&extra.0.as_str()),
            "an alert the cluster does not raise: {extra:?}"
        );
    }
    assert!(cluster.len() > 100, "cluster alerts: {}", cluster.len());
}

#[test]
fn partitions_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, "").unwrap();
    for (args, says) in [
        (vec!["--partitions", "0"], "--partitions 0"),
        (vec!["--partitions", "100000"], "--partitions 100000"),
        (vec!["--partitions", "4", "--format", "html"], "HTML"),
        (
            vec!["--partitions", "4", "--detector-thread", "on"],
            "--detector-thread",
        ),
        (
            vec![
                "--partitions",
                "4",
                "--state",
                dir.path().join("st.json").to_str().unwrap(),
            ],
            "--state",
        ),
    ] {
        let out = Command::new(BIN)
            .arg("analyze")
            .args(&args)
            .arg(&log)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
