//! Every CLI error names the file (or value) and says what to do; `serve` takes `--year` and
//! `--tz` like `analyze` and refuses bad ones the same way; the hidden `man` and `completions`
//! commands the Debian package is built with.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smtpscope"))
}

/// Run, expect exit 1 and one `smtpscope: error:` message; return it.
fn error_of(args: &[&str]) -> String {
    let o = bin().args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{args:?}");
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(e.starts_with("smtpscope: error: "), "{args:?}: {e}");
    e
}

#[test]
fn errors_name_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, "Nov 20 10:00:00 mx1 postfix/qmgr[9]: A1: removed\n").unwrap();
    let log = log.display().to_string();
    let state = dir.path().join("state.json");
    std::fs::write(&state, "not json").unwrap();
    let state = state.display().to_string();
    let missing = format!("{d}/nope.log");
    let out = format!("{d}/no/such/dir/out.jsonl");
    let cfg = format!("{d}/missing.toml");
    for (args, names, fix) in [
        (
            vec!["analyze", missing.as_str()],
            missing.as_str(),
            "give existing log files",
        ),
        (
            vec!["analyze", d.as_str()],
            d.as_str(),
            "give the log files in it",
        ),
        (
            vec!["analyze", "-o", out.as_str(), log.as_str()],
            out.as_str(),
            "directory exists",
        ),
        (
            vec!["analyze", "--state", state.as_str(), log.as_str()],
            state.as_str(),
            "earlier --state run",
        ),
        (
            vec!["analyze", "-c", cfg.as_str(), log.as_str()],
            cfg.as_str(),
            "config --default",
        ),
        (
            vec!["analyze", "--tz", "Mars/Olympus", log.as_str()],
            "Mars/Olympus",
            "e.g. Europe/Berlin",
        ),
        (
            vec![
                "serve",
                "--tz",
                "Mars/Olympus",
                "--http",
                "",
                "--policy",
                "127.0.0.1:1",
            ],
            "Mars/Olympus",
            "Europe/Berlin",
        ),
        (
            vec![
                "serve",
                "--year",
                "99999",
                "--http",
                "",
                "--policy",
                "127.0.0.1:1",
            ],
            "year = 99999",
            "1970..=9999",
        ),
    ] {
        let e = error_of(&args);
        assert!(e.contains(names), "{args:?}: {e}");
        assert!(e.contains(fix), "{args:?}: {e}");
    }
}

/// The packagers' hidden commands: man pages and completions from the clap definition.
#[test]
fn man_pages_and_completions_come_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin().arg("man").arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top = std::fs::read_to_string(dir.path().join("smtpscope.1")).unwrap();
    assert!(top.contains(".TH smtpscope 1"), "{top}");
    let analyze = std::fs::read_to_string(dir.path().join("smtpscope-analyze.1")).unwrap();
    assert!(analyze.contains("abuse\\-reports"), "{analyze}");
    let o = bin().args(["completions", "bash"]).output().unwrap();
    let b = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && b.contains("smtpscope") && b.contains("--abuse-reports"));
    // Hidden from the help.
    let h = bin().arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&h.stdout).contains("completions"));
}
