//! Issue 14: the corpus's real inbound MX logs through `analyze`, the incoming alerts checked by
//! hand (docs/DETECTION.md "On the real corpus logs") and pinned here.
//!
//! * exim/ddgrey/mainlog: a dictionary attack, 1,104 "Unrouteable address" rejects in 9 h from
//!   five addresses of 185.143.223.0/24, each announcing itself as `[185.143.223.163]`. Every
//!   failing address and the /24 are reported by `incoming-failures`, and each address that
//!   names another's literal by `incoming-helo`; nothing else is.
//! * postfix/kdent mail3.log: snowshoe senders rotating `mta1…mta9.<domain>` HELOs from one
//!   address (all of them refused by Spamhaus zen); the legitimate senders of the MX (Outlook's
//!   outbound servers among them, refused only for an unresolvable HELO) are not reported.

use std::collections::BTreeSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_smtpscope");

/// (detector, entity kind, entity id) of every alert `analyze` gives on a corpus file.
fn alerts(rel: &str) -> BTreeSet<(String, String, String)> {
    let out = Command::new(BIN)
        .args(["analyze", "--format", "jsonl", "--quiet", "--year", "2026"])
        .args(["--tz", "UTC"])
        .arg(testdata::mail().join(rel))
        .output()
        .expect("run smtpscope");
    assert!(
        out.status.success(),
        "{}",
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

#[test]
fn ddgrey_dictionary_attack_reported_per_address_and_network() {
    let got = alerts("exim/ddgrey/mainlog");
    let mut want = BTreeSet::new();
    want.insert((
        "incoming-failures".to_string(),
        "network".to_string(),
        "185.143.223.0/24".to_string(),
    ));
    // Five addresses send, all announcing .163's literal (which never connects itself).
    for h in ["160", "166", "168", "171", "173"] {
        let ip = format!("185.143.223.{h}");
        want.insert(("incoming-failures".into(), "client".into(), ip.clone()));
        want.insert(("incoming-helo".into(), "client".into(), ip));
    }
    assert_eq!(got, want);
}

#[test]
fn kdent_snowshoe_helo_rotation_only() {
    let got = alerts("postfix/kdent-postfix_log_analysis/mail3.log");
    assert!(
        got.iter()
            .all(|(d, k, _)| d == "incoming-helo" && k == "client"),
        "{got:?}"
    );
    for ip in ["207.244.68.62", "207.244.75.170", "198.55.118.195"] {
        assert!(
            got.contains(&("incoming-helo".into(), "client".into(), ip.into())),
            "{ip} missing from {got:?}"
        );
    }
    assert_eq!(got.len(), 8, "{got:?}");
}
