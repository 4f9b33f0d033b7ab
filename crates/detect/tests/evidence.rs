//! Typed evidence (issue 10, Build 2): every detector's evidence reads back into its struct
//! (`detect::evidence::Evidence`) and writes out as the same JSON, so alerts stored before the
//! structs existed (in `serve`'s SQLite store, in `analyze` output) still load.
//!
//! `data/evidence-alerts.jsonl` holds real alerts written by `smtpscope analyze` at commit
//! 3b00037 (before the evidence was typed), the smallest of each detector and evidence shape,
//! from simulated worlds (`smtpscope simulate --users 3000 --days 2 --seed 7` and `--users 8000
//! --days 1 --seed 101`; all names and addresses in them are the simulator's inventions).

use detect::evidence::{BruteforceEvidence, Evidence};
use detect::Detector;
use serde_json::Value;

const STORED: &str = include_str!("data/evidence-alerts.jsonl");

fn stored() -> Vec<(Detector, Value)> {
    STORED
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("fixture line is JSON");
            let d: Detector =
                serde_json::from_value(v["detector"].clone()).expect("fixture detector");
            (d, v["evidence"].clone())
        })
        .collect()
}

#[test]
fn stored_evidence_of_every_detector_round_trips_through_its_type() {
    let all = stored();
    let mut seen = std::collections::BTreeSet::new();
    for (d, ev) in &all {
        let typed = Evidence::decode(*d, ev).unwrap_or_else(|e| panic!("{d}: {e}\n{ev}"));
        let kind_ok = matches!(
            (d, &typed),
            (Detector::DeliveryFailures, Evidence::DeliveryFailures(_))
                | (Detector::MultipleLists, Evidence::MultipleLists(_))
                | (Detector::HeloAnomaly, Evidence::HeloAnomaly(_))
                | (Detector::AuthHijack, Evidence::AuthHijack(_))
                | (Detector::AuthBruteforce, Evidence::AuthBruteforce(_))
                | (Detector::Campaign, Evidence::Campaign(_))
        );
        assert!(kind_ok, "{d} read as {typed:?}");
        assert_eq!(&typed.to_json(), ev, "{d}: written back differently");
        seen.insert(*d);
    }
    for d in [
        Detector::DeliveryFailures,
        Detector::HeloAnomaly,
        Detector::AuthHijack,
        Detector::AuthBruteforce,
        Detector::Campaign,
    ] {
        assert!(seen.contains(&d), "no stored {d} alert in the fixture");
    }
}

#[test]
fn each_bruteforce_shape_reads_as_its_own_kind() {
    let mut kinds = Vec::new();
    for (d, ev) in stored() {
        if d != Detector::AuthBruteforce {
            continue;
        }
        let Some(Evidence::AuthBruteforce(b)) = Evidence::decode(d, &ev).ok() else {
            panic!("not bruteforce evidence: {ev}");
        };
        // Each shape is told by a field only it has.
        let expect = if ev.get("accounts_tried").is_some() {
            "address"
        } else if ev.get("addresses_in_slow_window").is_some() {
            "network"
        } else if ev.get("min_addresses").is_some() {
            "wave"
        } else if ev.get("failures_per_other_name").is_some() {
            "target"
        } else {
            "guessed"
        };
        let got = match b {
            BruteforceEvidence::Address(_) => "address",
            BruteforceEvidence::Network(_) => "network",
            BruteforceEvidence::Wave(_) => "wave",
            BruteforceEvidence::Target(_) => "target",
            BruteforceEvidence::Guessed(_) => "guessed",
        };
        assert_eq!(got, expect, "{ev}");
        kinds.push(got);
    }
    kinds.sort_unstable();
    assert_eq!(kinds, ["address", "guessed", "network", "wave"]);
}

#[test]
fn evidence_of_another_detector_is_refused() {
    let all = stored();
    let (_, campaign) = all
        .iter()
        .find(|(d, _)| *d == Detector::Campaign)
        .expect("a campaign alert");
    assert!(Evidence::decode(Detector::HeloAnomaly, campaign).is_err());
    assert!(Evidence::decode(Detector::AuthHijack, campaign).is_err());
    assert!(Evidence::decode(Detector::AuthBruteforce, campaign).is_err());
}
