//! Issue 10 ("every bad configuration value is refused by name"), for every key rather than a
//! list: each number and duration that `smtpscope config --default` prints is set, alone, to a
//! value no setting can take — `nan` for a fraction or score, 10^18 for a count, a duration
//! that overflows — and `config --check` must refuse it naming the key.

use std::process::Command;

/// What a key of the default file is set to; `None` for the keys that are no number or duration
/// (names, lists, switches).
fn absurd(value: &str) -> Option<&'static str> {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or("");
    let duration = inner
        .strip_suffix(['s', 'm', 'h', 'd'])
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if duration {
        Some("\"99999999999999d\"")
    } else if value.starts_with(['"', '[']) || value == "true" || value == "false" {
        None
    } else if value.contains('.') {
        Some("nan")
    } else {
        Some("1000000000000000000")
    }
}

#[test]
fn every_number_and_duration_key_refuses_an_absurd_value_by_name() {
    let bin = env!("CARGO_BIN_EXE_smtpscope");
    let out = Command::new(bin)
        .args(["config", "--default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let default = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let (mut section, mut checked, mut unnamed) = (String::new(), 0, Vec::new());
    for line in default.lines() {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        if key.starts_with('#') || section.is_empty() {
            continue;
        }
        let Some(bad) = absurd(value) else { continue };
        std::fs::write(&file, format!("[{section}]\n{key} = {bad}\n")).unwrap();
        let r = Command::new(bin)
            .args(["config", "--check"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        let name = format!("{section}.{key}");
        assert!(!r.status.success(), "{name} = {bad} accepted");
        assert!(
            err.contains(key),
            "{name} = {bad}: refused without the key: {err}"
        );
        if !err.contains(&name) {
            // Refused by the TOML reader itself (a number too big for the key's type): the
            // message quotes the line, with the key, but not the section.
            unnamed.push(name);
        }
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} keys checked:\n{default}");
    // `alerts_keep` is a u32: 10^18 does not fit, and the reader refuses it before our checks.
    assert_eq!(
        unnamed,
        ["serve.alerts_keep"],
        "refused without the section"
    );
}
