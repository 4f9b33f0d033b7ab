//! Shared by the tests that analyze a simulated ISP: one simulated day, made by the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A simulated ISP day in `dir` (`simulate --users 300 --days 1 --seed 7`: hijacks, password
/// guessing and spam runs among its accounts); the path of its mail log.
pub fn simulated_day(dir: &Path) -> PathBuf {
    let sim = dir.join("sim");
    let st = Command::new(env!("CARGO_BIN_EXE_smtpscope"))
        .args([
            "simulate", "--users", "300", "--days", "1", "--seed", "7", "--out",
        ])
        .arg(&sim)
        .output()
        .expect("run smtpscope simulate");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    sim.join("mail.log")
}
