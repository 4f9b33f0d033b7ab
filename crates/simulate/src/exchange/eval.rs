//! Scores `sflow-activity` alerts against the exchange simulation's truth.
//!
//! Recall is reported over bad senders by the number of their packets that were sampled
//! (≥ 1, ≥ 5, ≥ 20): a sender never sampled cannot be found, and one sampled four times can
//! hardly be. Precision is over every flagged address. For each good class, the share of its
//! addresses flagged (all, and those with ≥ 5 samples). Addresses given as verdicts
//! (`told`) are left out of every figure: the analysis is scored on what it was not told.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::{SenderClass, TruthLine};

/// Sample thresholds recall is reported at.
pub const RECALL_AT: [u64; 3] = [1, 5, 20];

/// Recall at one sample threshold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecallRow {
    /// At least this many sampled packets.
    pub min_sampled: u64,
    /// Bad senders scored with that many samples.
    pub bad: u64,
    /// Of them flagged.
    pub flagged: u64,
    /// flagged / bad.
    pub recall: f64,
}

/// One class's row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassRow {
    /// Class.
    pub class: SenderClass,
    /// Spam class.
    pub bad: bool,
    /// Addresses scored.
    pub addresses: u64,
    /// Addresses with at least 5 sampled packets.
    pub visible: u64,
    /// Flagged.
    pub flagged: u64,
    /// Flagged among the visible.
    pub flagged_visible: u64,
    /// flagged / addresses.
    pub share: f64,
}

/// The score.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExchangeScore {
    /// Recall by sampled packets.
    pub recall: Vec<RecallRow>,
    /// Flagged addresses scored.
    pub flagged: u64,
    /// Of them bad.
    pub true_alarms: u64,
    /// Of them good.
    pub false_alarms: u64,
    /// Flagged addresses not in the truth (not a sender at all).
    pub unknown_flagged: u64,
    /// true / flagged (1 when nothing is flagged).
    pub precision: f64,
    /// Addresses left out because they were told.
    pub told: u64,
    /// Per class.
    pub classes: Vec<ClassRow>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Scores `flagged` against `truth`, leaving `told` out.
pub fn score(
    truth: &[TruthLine],
    flagged: &BTreeSet<Ipv4Addr>,
    told: &BTreeSet<Ipv4Addr>,
) -> ExchangeScore {
    let scored: Vec<&TruthLine> = truth.iter().filter(|t| !told.contains(&t.ip)).collect();
    let known: BTreeSet<Ipv4Addr> = truth.iter().map(|t| t.ip).collect();
    let recall = RECALL_AT
        .iter()
        .map(|&k| {
            let bad: Vec<_> = scored.iter().filter(|t| t.bad && t.sampled >= k).collect();
            let hit = bad.iter().filter(|t| flagged.contains(&t.ip)).count() as u64;
            RecallRow {
                min_sampled: k,
                bad: bad.len() as u64,
                flagged: hit,
                recall: ratio(hit, bad.len() as u64),
            }
        })
        .collect();
    let mut true_alarms = 0;
    let mut false_alarms = 0;
    for t in &scored {
        if flagged.contains(&t.ip) {
            if t.bad {
                true_alarms += 1;
            } else {
                false_alarms += 1;
            }
        }
    }
    let unknown_flagged = flagged
        .iter()
        .filter(|ip| !known.contains(ip) && !told.contains(ip))
        .count() as u64;
    let flagged_n = true_alarms + false_alarms + unknown_flagged;
    let classes = SenderClass::ALL
        .iter()
        .map(|&c| {
            let of: Vec<&TruthLine> = scored.iter().copied().filter(|t| t.class == c).collect();
            let n_flagged = of.iter().filter(|t| flagged.contains(&t.ip)).count() as u64;
            let visible: Vec<&TruthLine> = of.iter().copied().filter(|t| t.sampled >= 5).collect();
            ClassRow {
                class: c,
                bad: c.is_bad(),
                addresses: of.len() as u64,
                visible: visible.len() as u64,
                flagged: n_flagged,
                flagged_visible: visible.iter().filter(|t| flagged.contains(&t.ip)).count() as u64,
                share: if of.is_empty() {
                    0.0
                } else {
                    n_flagged as f64 / of.len() as f64
                },
            }
        })
        .collect();
    ExchangeScore {
        recall,
        flagged: flagged_n,
        true_alarms,
        false_alarms,
        unknown_flagged,
        precision: ratio(true_alarms, flagged_n),
        told: (truth.len() - scored.len()) as u64,
        classes,
    }
}

impl fmt::Display for ExchangeScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.recall {
            writeln!(
                f,
                "recall (bad senders with >= {:>2} sampled packets): {:.3} ({} of {})",
                r.min_sampled, r.recall, r.flagged, r.bad
            )?;
        }
        writeln!(
            f,
            "precision: {:.3} ({} true, {} false, {} not a sender; {} told addresses left out)",
            self.precision, self.true_alarms, self.false_alarms, self.unknown_flagged, self.told
        )?;
        writeln!(
            f,
            "{:<15} {:>4} {:>9} {:>8} {:>8} {:>12} {:>7}",
            "class", "bad", "addresses", ">=5 smp", "flagged", "flagged >=5", "share"
        )?;
        for c in &self.classes {
            writeln!(
                f,
                "{:<15} {:>4} {:>9} {:>8} {:>8} {:>12} {:>6.1}%",
                c.class.as_str(),
                if c.bad { "yes" } else { "no" },
                c.addresses,
                c.visible,
                c.flagged,
                c.flagged_visible,
                100.0 * c.share
            )?;
        }
        Ok(())
    }
}

/// Reads `sflow-truth.jsonl`.
pub fn read_truth(text: &str) -> Result<Vec<TruthLine>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// The client IPv4 addresses of an `alerts.jsonl` (or verdicts file); with `detector`, only
/// that detector's lines.
pub fn read_clients(text: &str, detector: Option<&str>) -> Result<BTreeSet<Ipv4Addr>, String> {
    let mut out = BTreeSet::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))?;
        if detector.is_some_and(|d| v["detector"] != d) {
            continue;
        }
        if v["entity"]["kind"] == "client" {
            if let Some(ip) = v["entity"]["id"].as_str().and_then(|s| s.parse().ok()) {
                out.insert(ip);
            }
        }
    }
    Ok(out)
}
