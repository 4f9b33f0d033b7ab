//! The command line against what users do: a configuration with bad values, `analyze | head`,
//! and a truncated archive among several inputs.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smtpscope"))
}

/// A Postfix log of `n` delivered messages, each a few lines.
fn log(n: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        let (m, sec) = ((i / 60) % 60, i % 60);
        let qid = format!("{:010X}", 0xB000_0000u32 + i);
        s += &format!(
            "Nov 20 10:{m:02}:{sec:02} mx1 postfix/smtpd[7]: {qid}: client=unknown[192.0.2.{}]\n",
            i % 250 + 1
        );
        s += &format!("Nov 20 10:{m:02}:{sec:02} mx1 postfix/qmgr[9]: {qid}: from=<u{i}@example.org>, size=100, nrcpt=1 (queue active)\n");
        s += &format!("Nov 20 10:{m:02}:{sec:02} mx1 postfix/smtp[5]: {qid}: to=<r{i}@example.net>, relay=mx.example.net[198.51.100.7]:25, delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced (host said: 550 5.1.1 unknown user)\n");
        s += &format!("Nov 20 10:{m:02}:{sec:02} mx1 postfix/qmgr[9]: {qid}: removed\n");
    }
    s
}

/// Every bad value of issue 10 is refused by `config --check` and by `analyze`, by key, value
/// and range; `analyze` does not panic on `burst_per_minute = 0` (it did).
#[test]
fn bad_configuration_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let logf = dir.path().join("mail.log");
    std::fs::write(&logf, log(50)).unwrap();
    for (text, want) in [
        (
            "[detect.hijack]\nburst_per_minute = 0\n",
            "detect.hijack.burst_per_minute = 0",
        ),
        (
            "[detect.hijack]\nmin_score = nan\n",
            "detect.hijack.min_score = NaN",
        ),
        (
            "[serve.containment]\nmin_score = -0.1\n",
            "serve.containment.min_score = -0.1",
        ),
        (
            "[detect.limits]\nmax_entities = 0\n",
            "detect.limits.max_entities = 0",
        ),
        (
            "[serve.limits]\nqueue = 9223372036854775807\n",
            "serve.limits.queue = 9223372036854775807",
        ),
        (
            "[serve.limits]\nconnections = 9223372036854775807\n",
            "serve.limits.connections = 9223372036854775807",
        ),
        (
            "[serve.containment]\nduration = \"1000000000d\"\n",
            "serve.containment.duration = \"1000000000d\"",
        ),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, text).unwrap();
        let out = bin()
            .args(["config", "--check"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "config --check {text}: {err}");
        assert!(
            err.contains(want) && err.contains("must be"),
            "{text}: {err}"
        );
        let out = bin()
            .args([
                "analyze", "--quiet", "--year", "2026", "--tz", "UTC", "--config",
            ])
            .arg(&cfg)
            .arg(&logf)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "analyze {text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
}

/// `smtpscope parse | head`: the reader goes away; smtpscope stops quietly with status 0.
#[test]
fn output_to_a_closed_pipe_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let logf = dir.path().join("mail.log");
    std::fs::write(&logf, log(20_000)).unwrap();
    for args in [
        vec!["parse", "--year", "2026", "--tz", "UTC"],
        vec![
            "analyze", "--quiet", "--format", "jsonl", "--year", "2026", "--tz", "UTC",
        ],
    ] {
        let mut child = bin()
            .args(&args)
            .arg(&logf)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then hang up, as `head -c 1` does.
        let mut out = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        let _ = out.read(&mut one);
        drop(out);
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// A truncated .gz between two good logs: a warning names it, the other files are read, and
/// the run succeeds.
#[test]
fn truncated_archive_among_inputs_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    std::fs::write(&a, log(100)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(log(3000).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let b = dir.path().join("b.log.gz");
    std::fs::write(&b, &gz[..gz.len() / 2]).unwrap();
    let c = dir.path().join("c.log");
    std::fs::write(&c, log(100)).unwrap();
    let out = bin()
        .args(["parse", "--stats", "--year", "2026", "--tz", "UTC"])
        .args([&a, &b, &c])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning") && err.contains("b.log.gz") && err.contains("truncated"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stats: serde_json::Value = serde_json::from_str(stdout.trim()).expect("stats JSON");
    let lines = stats["lines"].as_u64().expect("lines");
    // Both good files whole (400 lines each) and some of the damaged one.
    assert!(lines > 800 && lines < 800 + 12_000, "{lines}");
}
