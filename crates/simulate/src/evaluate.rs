//! Scores detector alerts against the simulator's labels.
//!
//! An alert is a true detection of a label when its entity (or, for a `campaign` alert, one of
//! the members it lists in `evidence.accounts` / `evidence.entities`) is the label's entity and
//! its `ts` lies in `[label.start, label.end + 24 h]`. Alerts on entities no label names are
//! false positives, counted per distinct entity. Spam leaked is the number of the label's
//! accepted messages between its start and the first detecting alert, from `timeline.jsonl`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::labels::{AbuseKind, Entity, Label, TimelineEntry};
use crate::SimError;

/// Grace after a label's end during which an alert still counts as detecting it.
pub const GRACE_SECS: i64 = 24 * 3600;

/// One alert as detectors write it (JSON Lines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Event time of the deciding event, RFC 3339.
    pub ts: String,
    /// Detector name.
    #[serde(default)]
    pub detector: String,
    /// The entity.
    pub entity: Entity,
    /// Score 0–1.
    #[serde(default)]
    pub score: f64,
    /// One-line summary.
    #[serde(default)]
    pub summary: String,
    /// Detector evidence; campaign members in `accounts` / `entities`.
    #[serde(default)]
    pub evidence: serde_json::Value,
}

/// Per-label accept times (seconds), keyed by entity and kind.
pub type Timeline = HashMap<(Entity, AbuseKind), Vec<i64>>;

/// Percentiles of a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pcts {
    /// Sample size.
    pub n: usize,
    /// Median (nearest rank).
    pub p50: Option<f64>,
    /// 90th percentile (nearest rank).
    pub p90: Option<f64>,
}

impl Pcts {
    fn of(mut v: Vec<f64>) -> Pcts {
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| -> Option<f64> {
            if v.is_empty() {
                return None;
            }
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v.get(rank - 1).copied()
        };
        Pcts {
            n: v.len(),
            p50: at(0.5),
            p90: at(0.9),
        }
    }
}

/// Scores of one abuse kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindScore {
    /// Labels of this kind.
    pub labels: usize,
    /// Detected labels.
    pub detected: usize,
    /// detected / labels.
    pub recall: f64,
    /// Seconds from abuse start to first detecting alert.
    pub ttd_secs: Pcts,
    /// Messages accepted before the first detecting alert.
    pub leaked: Pcts,
}

/// A label no alert detected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    /// The label's entity.
    pub entity: Entity,
    /// Its kind.
    pub kind: AbuseKind,
    /// Abuse start.
    pub start: String,
    /// Messages it got through.
    pub messages: u64,
}

/// An entity alerted on that no label names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalsePositive {
    /// The entity.
    pub entity: Entity,
    /// First alert time.
    pub first_ts: String,
    /// Detectors that alerted on it.
    pub detectors: Vec<String>,
    /// Alerts on it.
    pub alerts: usize,
}

/// The evaluation result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// Labels in total.
    pub labels: usize,
    /// Alerts read.
    pub alerts: usize,
    /// Alerts whose `ts` could not be read (ignored).
    pub bad_alerts: usize,
    /// Per abuse kind.
    pub by_kind: BTreeMap<String, KindScore>,
    /// Over all labels.
    pub overall: KindScore,
    /// Distinct alerted entities (campaign members counted, campaign ids not).
    pub alerted_entities: usize,
    /// Of those, entities some label names.
    pub true_entities: usize,
    /// true_entities / alerted_entities (1 when nothing was alerted).
    pub precision: f64,
    /// Distinct false-positive entities.
    pub fp_entities: usize,
    /// fp_entities / legit accounts × 10,000 / days.
    pub fp_per_10k_accounts_day: f64,
    /// Legitimate accounts used for the rate.
    pub legit_accounts: u64,
    /// Days used for the rate.
    pub days: f64,
    /// Whether spam-leaked numbers are available (a timeline was given).
    pub has_timeline: bool,
    /// Undetected labels.
    pub misses: Vec<Miss>,
    /// False positives.
    pub false_positives: Vec<FalsePositive>,
}

fn ts_secs(s: &str) -> Option<i64> {
    maillog::Ts::parse_rfc3339(s).map(|t| t.secs())
}

/// The entities an alert is about: its own (unless a campaign) plus listed members.
fn members(a: &AlertRecord) -> Vec<Entity> {
    let mut v = Vec::new();
    if a.entity.kind != "campaign" {
        v.push(a.entity.clone());
    }
    if let Some(arr) = a.evidence.get("accounts").and_then(|x| x.as_array()) {
        for x in arr {
            if let Some(id) = x.as_str() {
                v.push(Entity::account(id));
            }
        }
    }
    if let Some(arr) = a.evidence.get("entities").and_then(|x| x.as_array()) {
        for x in arr {
            if let Ok(e) = serde_json::from_value::<Entity>(x.clone()) {
                if e.kind != "campaign" {
                    v.push(e);
                }
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Score `alerts` against `labels`.
pub fn evaluate(
    labels: &[Label],
    alerts: &[AlertRecord],
    legit_accounts: u64,
    days: f64,
    timeline: Option<&Timeline>,
) -> Evaluation {
    // Alert times per member entity.
    let mut by_entity: HashMap<Entity, Vec<(i64, usize)>> = HashMap::new();
    let mut bad = 0;
    for (i, a) in alerts.iter().enumerate() {
        let Some(t) = ts_secs(&a.ts) else {
            bad += 1;
            continue;
        };
        for e in members(a) {
            by_entity.entry(e).or_default().push((t, i));
        }
    }
    for v in by_entity.values_mut() {
        v.sort_unstable();
    }
    let labelled: std::collections::HashSet<&Entity> = labels.iter().map(|l| &l.entity).collect();
    let mut per_kind: BTreeMap<String, (usize, usize, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut all = (0usize, 0usize, Vec::new(), Vec::new());
    let mut misses = Vec::new();
    for l in labels {
        let e = per_kind.entry(l.kind.as_str().to_string()).or_default();
        e.0 += 1;
        all.0 += 1;
        let (Some(s), Some(end)) = (ts_secs(&l.start), ts_secs(&l.end)) else {
            misses.push(Miss {
                entity: l.entity.clone(),
                kind: l.kind,
                start: l.start.clone(),
                messages: l.messages,
            });
            continue;
        };
        let first = by_entity
            .get(&l.entity)
            .and_then(|v| v.iter().find(|(t, _)| *t >= s && *t <= end + GRACE_SECS))
            .map(|x| x.0);
        match first {
            Some(t) => {
                e.1 += 1;
                all.1 += 1;
                let ttd = (t - s) as f64;
                e.2.push(ttd);
                all.2.push(ttd);
                if let Some(tl) = timeline.and_then(|tl| tl.get(&(l.entity.clone(), l.kind))) {
                    let leaked = tl.iter().filter(|x| **x >= s && **x < t).count() as f64;
                    e.3.push(leaked);
                    all.3.push(leaked);
                }
            }
            None => misses.push(Miss {
                entity: l.entity.clone(),
                kind: l.kind,
                start: l.start.clone(),
                messages: l.messages,
            }),
        }
    }
    let score = |(n, d, ttd, leak): (usize, usize, Vec<f64>, Vec<f64>)| KindScore {
        labels: n,
        detected: d,
        recall: if n == 0 { 0.0 } else { d as f64 / n as f64 },
        ttd_secs: Pcts::of(ttd),
        leaked: Pcts::of(leak),
    };
    let by_kind: BTreeMap<String, KindScore> =
        per_kind.into_iter().map(|(k, v)| (k, score(v))).collect();
    let mut fps = Vec::new();
    let mut true_entities = 0;
    for (e, v) in &by_entity {
        if labelled.contains(e) {
            true_entities += 1;
            continue;
        }
        let mut detectors: Vec<String> = v
            .iter()
            .filter_map(|(_, i)| alerts.get(*i).map(|a| a.detector.clone()))
            .collect();
        detectors.sort();
        detectors.dedup();
        fps.push(FalsePositive {
            entity: e.clone(),
            first_ts: maillog::Ts::from_secs(v[0].0).rfc3339(),
            detectors,
            alerts: v.len(),
        });
    }
    fps.sort_by(|a, b| a.first_ts.cmp(&b.first_ts).then(a.entity.cmp(&b.entity)));
    misses.sort_by(|a, b| a.start.cmp(&b.start).then(a.entity.cmp(&b.entity)));
    let alerted = by_entity.len();
    let fp_rate = if legit_accounts == 0 || days <= 0.0 {
        0.0
    } else {
        fps.len() as f64 / legit_accounts as f64 * 10_000.0 / days
    };
    Evaluation {
        labels: labels.len(),
        alerts: alerts.len(),
        bad_alerts: bad,
        by_kind,
        overall: score(all),
        alerted_entities: alerted,
        true_entities,
        precision: if alerted == 0 {
            1.0
        } else {
            true_entities as f64 / alerted as f64
        },
        fp_entities: fps.len(),
        fp_per_10k_accounts_day: fp_rate,
        legit_accounts,
        days,
        has_timeline: timeline.is_some(),
        misses,
        false_positives: fps,
    }
}

fn dur(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) if s < 7200.0 => format!("{:.1}m", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}

fn num(x: Option<f64>, ok: bool) -> String {
    match (x, ok) {
        (Some(v), true) => format!("{v:.0}"),
        _ => "-".into(),
    }
}

impl Evaluation {
    /// A plain-text report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Evaluation: {} labels, {} alerts ({} unreadable)",
            self.labels, self.alerts, self.bad_alerts
        );
        let _ = writeln!(
            s,
            "{:<20} {:>6} {:>8} {:>7} {:>9} {:>9} {:>10} {:>10}",
            "kind",
            "labels",
            "detected",
            "recall",
            "ttd p50",
            "ttd p90",
            "leaked p50",
            "leaked p90"
        );
        let row = |s: &mut String, k: &str, v: &KindScore| {
            let _ = writeln!(
                s,
                "{:<20} {:>6} {:>8} {:>6.1}% {:>9} {:>9} {:>10} {:>10}",
                k,
                v.labels,
                v.detected,
                v.recall * 100.0,
                dur(v.ttd_secs.p50),
                dur(v.ttd_secs.p90),
                num(v.leaked.p50, self.has_timeline),
                num(v.leaked.p90, self.has_timeline)
            );
        };
        for (k, v) in &self.by_kind {
            row(&mut s, k, v);
        }
        row(&mut s, "all", &self.overall);
        let _ = writeln!(
            s,
            "precision: {:.1}% ({} of {} alerted entities are labelled)",
            self.precision * 100.0,
            self.true_entities,
            self.alerted_entities
        );
        let _ = writeln!(
            s,
            "false positives: {} entities = {:.2} per 10,000 legitimate accounts per day ({} accounts, {} days)",
            self.fp_entities, self.fp_per_10k_accounts_day, self.legit_accounts, self.days
        );
        if !self.misses.is_empty() {
            let _ = writeln!(s, "misses ({}):", self.misses.len());
            for m in &self.misses {
                let _ = writeln!(
                    s,
                    "  {:<18} {}:{}  start {}  {} messages",
                    m.kind.as_str(),
                    m.entity.kind,
                    m.entity.id,
                    m.start,
                    m.messages
                );
            }
        }
        if !self.false_positives.is_empty() {
            let _ = writeln!(s, "false positives ({}):", self.false_positives.len());
            for f in &self.false_positives {
                let _ = writeln!(
                    s,
                    "  {}:{}  first {}  {} alerts  [{}]",
                    f.entity.kind,
                    f.entity.id,
                    f.first_ts,
                    f.alerts,
                    f.detectors.join(",")
                );
            }
        }
        s
    }
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, SimError> {
    let p = path.display().to_string();
    let s = std::fs::read_to_string(path).map_err(|e| SimError::Io {
        path: p.clone(),
        source: e,
    })?;
    let mut out = Vec::new();
    for (i, line) in s.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| SimError::Parse {
            path: p.clone(),
            line: i as u64 + 1,
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// Read `labels.jsonl`.
pub fn load_labels(path: &Path) -> Result<Vec<Label>, SimError> {
    read_lines(path)
}

/// Read an alerts JSON Lines file.
pub fn load_alerts(path: &Path) -> Result<Vec<AlertRecord>, SimError> {
    read_lines(path)
}

/// Build a [`Timeline`] from observed accepts, e.g. read from a mail log when no
/// `timeline.jsonl` exists (real logs labelled by hand).
///
/// Every `(entity, seconds)` pair whose entity some label names is kept under each of that
/// entity's `(entity, kind)` keys; all other pairs are dropped. Times are sorted ascending.
/// Labelled entities that never occur get an empty list (so "leaked" is 0 for them, not absent).
pub fn timeline_from_accepts(
    labels: &[Label],
    accepts: impl IntoIterator<Item = (Entity, i64)>,
) -> Timeline {
    let mut kinds: HashMap<Entity, Vec<AbuseKind>> = HashMap::new();
    for l in labels {
        let v = kinds.entry(l.entity.clone()).or_default();
        if !v.contains(&l.kind) {
            v.push(l.kind);
        }
    }
    let mut times: HashMap<Entity, Vec<i64>> = HashMap::new();
    for (e, t) in accepts {
        if kinds.contains_key(&e) {
            times.entry(e).or_default().push(t);
        }
    }
    let mut out = Timeline::new();
    for (e, ks) in kinds {
        let mut v = times.remove(&e).unwrap_or_default();
        v.sort_unstable();
        for k in ks {
            out.insert((e.clone(), k), v.clone());
        }
    }
    out
}

/// Read `timeline.jsonl`.
pub fn load_timeline(path: &Path) -> Result<Timeline, SimError> {
    let v: Vec<TimelineEntry> = read_lines(path)?;
    Ok(v.into_iter()
        .map(|e| ((e.entity.clone(), e.kind), e.times()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(e: Entity, kind: AbuseKind, start: &str, end: &str) -> Label {
        Label {
            entity: e,
            kind,
            shape: None,
            start: start.into(),
            end: end.into(),
            messages: 0,
            rejected: 0,
            source_ips: 0,
            countries: 0,
            group: None,
        }
    }

    #[test]
    fn timeline_from_accepts_keeps_labelled_sorted() {
        let kinds = [AbuseKind::HijackedAccount, AbuseKind::InfectedClient];
        let labels = vec![
            label(
                Entity::account("a@x"),
                kinds[0],
                "2026-11-16T00:00:00Z",
                "2026-11-16T01:00:00Z",
            ),
            label(
                Entity::client("192.0.2.7"),
                kinds[1],
                "2026-11-16T00:00:00Z",
                "2026-11-16T01:00:00Z",
            ),
            label(
                Entity::account("quiet@x"),
                kinds[0],
                "2026-11-16T00:00:00Z",
                "2026-11-16T01:00:00Z",
            ),
        ];
        let accepts = vec![
            (Entity::account("a@x"), 30),
            (Entity::account("other@x"), 5),
            (Entity::client("192.0.2.7"), 9),
            (Entity::account("a@x"), 10),
            (Entity::account("a@x"), 20),
            (Entity::client("198.51.100.1"), 1),
        ];
        let tl = timeline_from_accepts(&labels, accepts);
        assert_eq!(tl.len(), 3);
        assert_eq!(tl[&(Entity::account("a@x"), kinds[0])], vec![10, 20, 30]);
        assert_eq!(tl[&(Entity::client("192.0.2.7"), kinds[1])], vec![9]);
        assert!(tl[&(Entity::account("quiet@x"), kinds[0])].is_empty());
        assert!(!tl.keys().any(|(e, _)| e.id == "other@x"));

        // Leaked counts come from it: alert at 25 s past start -> 2 messages leaked.
        let t0 = ts_secs("2026-11-16T00:00:00Z").unwrap(); // literal, valid RFC 3339
        let tl = timeline_from_accepts(
            &labels[..1],
            [10, 20, 30].map(|d| (Entity::account("a@x"), t0 + d)),
        );
        let alert = AlertRecord {
            ts: maillog::Ts::from_secs(t0 + 25).rfc3339(),
            detector: "d".into(),
            entity: Entity::account("a@x"),
            score: 1.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
        };
        let ev = evaluate(&labels[..1], &[alert], 100, 1.0, Some(&tl));
        assert_eq!(ev.overall.detected, 1);
        assert_eq!(ev.overall.leaked.p50, Some(2.0));
    }
}
