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

mod corpus_util;

use std::collections::BTreeSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_smtpscope");

/// (detector, entity kind, entity id) of every alert `analyze` gives on a corpus file.
fn alerts(rel: &str) -> BTreeSet<(String, String, String)> {
    corpus_util::alerts(&testdata::mail().join(rel))
        .into_iter()
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

/// The dictionary attack's network gets a spam report an abuse desk can act on (XARF; the
/// evidence lines name the refused recipients and the HELO the hosts announced).
#[test]
fn ddgrey_network_gets_an_abuse_report() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("smtpscope.toml");
    std::fs::write(
        &cfg,
        "[abuse]\norg = \"Example ISP\"\ncontact = \"abuse@example-isp.net\"\ndomain = \"example-isp.net\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("reports");
    let o = Command::new(BIN)
        .args(["analyze", "-q", "--format", "jsonl", "-o", "/dev/null"])
        .args(["--year", "2026", "--tz", "UTC", "-c"])
        .arg(&cfg)
        .arg("--abuse-reports")
        .arg(&out_dir)
        .arg(testdata::mail().join("exim/ddgrey/mainlog"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut found = false;
    for f in std::fs::read_dir(&out_dir).unwrap() {
        let p = f.unwrap().path();
        if !p.to_string_lossy().ends_with(".xarf.json") {
            continue;
        }
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        if r["source_identifier"] == "185.143.223.0/24" {
            assert_eq!(r["type"], "spam", "{r}");
            use base64::Engine as _;
            let payload = r["evidence"][0]["payload"].as_str().unwrap_or_default();
            let text = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_default();
            assert!(
                text.contains("refused recipients: explain@dissonantia.se"),
                "{text}"
            );
            assert!(
                text.contains("hosts: 185.143.223.168 185.143.223.166"),
                "{text}"
            );
            found = true;
        }
    }
    assert!(found, "no report for 185.143.223.0/24");
}
