//! Shared by the corpus tests: `analyze` on one real log of the corpus.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_smtpscope");

/// Every alert `analyze` gives on `path` with the default configuration, in order:
/// (detector, entity kind, entity id).
pub fn alerts(path: &Path) -> Vec<(String, String, String)> {
    let out = Command::new(BIN)
        .args(["analyze", "--format", "jsonl", "--quiet", "--year", "2026"])
        .args(["--tz", "UTC"])
        .arg(path)
        .output()
        .expect("run smtpscope");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("JSONL")
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).expect("alert JSON");
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&a["detector"]),
                s(&a["entity"]["kind"]),
                s(&a["entity"]["id"]),
            )
        })
        .collect()
}
