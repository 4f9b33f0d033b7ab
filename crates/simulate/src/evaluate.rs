//! Scores detector alerts against the simulator's labels.
//!
//! The rules (docs/SIMULATION.md "Evaluation"):
//! * An alert **detects** a label only when its detector is one the label's kind is about
//!   ([`AbuseKind::detectors`]: a hijack alert does not "find" password guessing), one of its
//!   entities (its own, or for a `campaign` alert the members in `evidence.accounts` /
//!   `evidence.entities`) is the label's entity, and its `ts` lies in
//!   `[label.start, label.end + 24 h]`. An `exploited-website` label (`sender` `@site`) is
//!   matched by a `sender` alert whose id is `@site` or ends in `@site`; a `guessing-source`
//!   label (a `client` address or a `network`) by an alert on the address, on a network that
//!   contains it, or on an address or network inside the labelled network.
//! * An alerted entity that no label names (in the sense above, whatever the detector) is a
//!   **false entity**, counted once however many alerts it got; they are reported per detector,
//!   per day, per 10,000 legitimate accounts per day, for all detectors and for the detectors
//!   that contain automatically, each with the simulator's profile of it (`population.jsonl`).
//! * Spam leaked is the number of the label's accepted messages between its start and the
//!   first detecting alert, from `timeline.jsonl`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use detect::evidence::CampaignEvidence;
use detect::Detector;
use serde::{Deserialize, Serialize};

pub use crate::labels::{AbuseKind, Entity, Label, PopulationEntry, TimelineEntry};
use crate::SimError;

/// Grace after a label's end during which an alert still counts as detecting it.
pub const GRACE_SECS: i64 = 24 * 3600;

/// Detectors whose alerts contain their entity automatically by default: the default of
/// `[serve.containment] detectors` (smtpscope's `ContainmentConfig`). `smtpscope evaluate`
/// passes the real configuration; this is for library callers.
pub const DEFAULT_CONTAINING: &[&str] = &["auth-hijack"];
/// Lowest score that contains by default (`[serve.containment] min_score`).
pub const DEFAULT_CONTAIN_MIN_SCORE: f64 = 0.9;
/// Profile of an entity `population.jsonl` does not list.
pub const ORDINARY: &str = "ordinary";
/// False entities listed one by one in the text report (all are in the JSON).
const TEXT_LIST_MAX: usize = 200;

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
    /// Detector evidence (`detect::evidence`); a campaign's members in `accounts` / `entities`.
    #[serde(default)]
    pub evidence: serde_json::Value,
}

/// Per-label accept times (seconds), keyed by entity and kind.
pub type Timeline = HashMap<(Entity, AbuseKind), Vec<i64>>;

/// Profiles per entity, from `population.jsonl`.
pub type Profiles = HashMap<Entity, Vec<String>>;

/// What the evaluation needs besides labels and alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Scoring {
    /// Legitimate accounts (the denominator of the rates).
    pub legit_accounts: u64,
    /// Days covered (the other denominator).
    pub days: f64,
    /// Detectors that contain automatically.
    pub containing: Vec<String>,
    /// Lowest score at which they contain.
    pub contain_min_score: f64,
    /// The simulator's profile of benign entities.
    pub profiles: Profiles,
}

impl Scoring {
    /// Rates over `legit_accounts` and `days`, default containment, no profiles.
    pub fn new(legit_accounts: u64, days: f64) -> Scoring {
        Scoring {
            legit_accounts,
            days,
            containing: DEFAULT_CONTAINING.iter().map(|s| s.to_string()).collect(),
            contain_min_score: DEFAULT_CONTAIN_MIN_SCORE,
            profiles: Profiles::new(),
        }
    }
}

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
    /// Detectors that alerted on the entity in the window but are not about this kind.
    pub other_detectors: Vec<String>,
}

/// An entity alerted on that no label names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalsePositive {
    /// The entity.
    pub entity: Entity,
    /// The simulator's profile(s) of it, `+`-joined (`ordinary` when not listed).
    pub profile: String,
    /// First alert time.
    pub first_ts: String,
    /// Detectors that alerted on it.
    pub detectors: Vec<String>,
    /// Alerts on it.
    pub alerts: usize,
    /// Whether an alert on it would have contained it (a containing detector at or above the
    /// minimum score).
    pub contained: bool,
}

/// False entities counted several ways.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FalseCounts {
    /// Distinct false entities.
    pub entities: usize,
    /// entities / legitimate accounts × 10,000 / days.
    pub per_10k_accounts_day: f64,
    /// Distinct false entities per detector (an entity counts under every detector that
    /// alerted on it).
    pub by_detector: BTreeMap<String, usize>,
    /// Distinct false entities by the UTC day of their first alert.
    pub by_day: BTreeMap<String, usize>,
    /// Distinct false entities per profile, then per detector.
    pub by_profile: BTreeMap<String, BTreeMap<String, usize>>,
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
    /// Per abuse kind (including `guessing-source`).
    pub by_kind: BTreeMap<String, KindScore>,
    /// Over the abuse classes (every kind but `guessing-source`).
    pub overall: KindScore,
    /// Distinct alerted entities (campaign members counted, campaign ids not).
    pub alerted_entities: usize,
    /// Of those, entities some label names.
    pub true_entities: usize,
    /// true_entities / alerted_entities (1 when nothing was alerted).
    pub precision: f64,
    /// Distinct false entities (all detectors).
    pub fp_entities: usize,
    /// fp_entities / legit accounts × 10,000 / days.
    pub fp_per_10k_accounts_day: f64,
    /// False entities, all detectors.
    pub false_all: FalseCounts,
    /// False entities that a containing detector alerted on at or above the minimum score.
    pub false_containing: FalseCounts,
    /// The detectors counted as containing, and their minimum score.
    pub containing: Vec<String>,
    /// Minimum score of the containing detectors.
    pub contain_min_score: f64,
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

/// The entities an alert is about: its own (unless a campaign) plus, for a campaign, its listed
/// members (read through `detect`'s [`CampaignEvidence`]).
fn members(a: &AlertRecord) -> Vec<Entity> {
    let mut v = Vec::new();
    if a.entity.kind != "campaign" {
        v.push(a.entity.clone());
    }
    if a.detector == Detector::Campaign.as_str() {
        if let Ok(e) = CampaignEvidence::deserialize(&a.evidence) {
            v.extend(e.accounts.iter().map(|id| Entity::account(id)));
            v.extend(
                e.entities
                    .iter()
                    .filter(|x| x.kind != detect::EntityKind::Campaign)
                    .map(|x| Entity {
                        kind: x.kind.as_str().to_string(),
                        id: x.id.clone(),
                    }),
            );
        }
    }
    v.sort();
    v.dedup();
    v
}

/// An address or a network in CIDR form (a bare address is a host network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Net> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    /// Whether `other` lies inside this network.
    fn contains(&self, other: &Net) -> bool {
        if other.prefix < self.prefix {
            return false;
        }
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let m = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & m == u32::from(b) & m
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & m == u128::from(b) & m
            }
            _ => false,
        }
    }
}

/// Finds the labels that name an alerted entity.
struct LabelIndex<'a> {
    labels: &'a [Label],
    exact: HashMap<&'a Entity, Vec<usize>>,
    /// Exploited-website labels by `@site`.
    sites: HashMap<&'a str, Vec<usize>>,
    /// Account-kind labels by id (a `sender` alert on a hijacked account's own address is
    /// about that account's abuse, not a false entity).
    accounts: HashMap<&'a str, Vec<usize>>,
    /// Guessing-source and incoming-spam-source labels with their address or network.
    guessers: Vec<(usize, Net)>,
}

impl<'a> LabelIndex<'a> {
    fn new(labels: &'a [Label]) -> LabelIndex<'a> {
        let mut ix = LabelIndex {
            labels,
            exact: HashMap::new(),
            sites: HashMap::new(),
            accounts: HashMap::new(),
            guessers: Vec::new(),
        };
        for (i, l) in labels.iter().enumerate() {
            ix.exact.entry(&l.entity).or_default().push(i);
            match l.kind {
                AbuseKind::ExploitedWebsite if l.entity.id.starts_with('@') => {
                    ix.sites.entry(l.entity.id.as_str()).or_default().push(i);
                }
                AbuseKind::GuessingSource | AbuseKind::IncomingSpamSource => {
                    if let Some(n) = Net::parse(&l.entity.id) {
                        ix.guessers.push((i, n));
                    }
                }
                _ => {}
            }
            if l.entity.kind == "account" {
                ix.accounts.entry(l.entity.id.as_str()).or_default().push(i);
            }
        }
        ix
    }

    /// Labels that name `e`, whatever the detector.
    fn naming(&self, e: &Entity) -> Vec<usize> {
        let mut v: Vec<usize> = self.exact.get(e).cloned().unwrap_or_default();
        match e.kind.as_str() {
            "sender" => {
                if let Some(at) = e.id.rfind('@') {
                    if let Some(ls) = self.sites.get(&e.id[at..]) {
                        v.extend(ls);
                    }
                }
                if let Some(ls) = self.accounts.get(e.id.as_str()) {
                    v.extend(ls);
                }
            }
            "client" | "network" => {
                if let Some(n) = Net::parse(&e.id) {
                    for (i, g) in &self.guessers {
                        if g.contains(&n) || n.contains(g) {
                            v.push(*i);
                        }
                    }
                }
            }
            _ => {}
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether an alert on `e` by `detector` detects label `i`.
    fn detects(&self, i: usize, e: &Entity, detector: &str) -> bool {
        let Some(l) = self.labels.get(i) else {
            return false;
        };
        if !l.kind.detectors().contains(&detector) {
            return false;
        }
        match l.kind {
            // Only the site's own sender entities, never the account of the same name.
            AbuseKind::ExploitedWebsite => e.kind == "sender",
            AbuseKind::GuessingSource | AbuseKind::IncomingSpamSource => {
                e.kind == "client" || e.kind == "network"
            }
            _ => e.kind == l.entity.kind && e.id == l.entity.id,
        }
    }
}

/// Score `alerts` against `labels` with default containment and no profiles.
pub fn evaluate(
    labels: &[Label],
    alerts: &[AlertRecord],
    legit_accounts: u64,
    days: f64,
    timeline: Option<&Timeline>,
) -> Evaluation {
    evaluate_with(
        labels,
        alerts,
        &Scoring::new(legit_accounts, days),
        timeline,
    )
}

fn rate(n: usize, sc: &Scoring) -> f64 {
    if sc.legit_accounts == 0 || sc.days <= 0.0 {
        0.0
    } else {
        n as f64 / sc.legit_accounts as f64 * 10_000.0 / sc.days
    }
}

fn false_counts<'a>(fps: impl Iterator<Item = &'a FalsePositive>, sc: &Scoring) -> FalseCounts {
    let mut c = FalseCounts::default();
    for f in fps {
        c.entities += 1;
        for d in &f.detectors {
            *c.by_detector.entry(d.clone()).or_default() += 1;
            *c.by_profile
                .entry(f.profile.clone())
                .or_default()
                .entry(d.clone())
                .or_default() += 1;
        }
        let day = f.first_ts.get(..10).unwrap_or("?").to_string();
        *c.by_day.entry(day).or_default() += 1;
    }
    c.per_10k_accounts_day = rate(c.entities, sc);
    c
}

/// Score `alerts` against `labels`.
pub fn evaluate_with(
    labels: &[Label],
    alerts: &[AlertRecord],
    sc: &Scoring,
    timeline: Option<&Timeline>,
) -> Evaluation {
    let ix = LabelIndex::new(labels);
    let windows: Vec<Option<(i64, i64)>> = labels
        .iter()
        .map(|l| Some((ts_secs(&l.start)?, ts_secs(&l.end)?)))
        .collect();
    // First detecting alert per label; other detectors seen on it (for the misses).
    let mut first: Vec<Option<i64>> = vec![None; labels.len()];
    let mut others: Vec<BTreeSet<String>> = vec![BTreeSet::new(); labels.len()];
    // Per alerted entity: whether some label names it, and its alerts.
    struct Seen {
        named: bool,
        first: i64,
        detectors: BTreeSet<String>,
        alerts: usize,
        contained: bool,
    }
    let mut seen: HashMap<Entity, Seen> = HashMap::new();
    let mut bad = 0;
    for a in alerts {
        let Some(t) = ts_secs(&a.ts) else {
            bad += 1;
            continue;
        };
        let contains = sc.containing.contains(&a.detector) && a.score >= sc.contain_min_score;
        for e in members(a) {
            let named = ix.naming(&e);
            for &i in &named {
                let Some((s, end)) = windows[i] else { continue };
                if t < s || t > end.saturating_add(GRACE_SECS) {
                    continue;
                }
                if ix.detects(i, &e, &a.detector) {
                    first[i] = Some(first[i].map_or(t, |f| f.min(t)));
                } else {
                    others[i].insert(a.detector.clone());
                }
            }
            let st = seen.entry(e).or_insert(Seen {
                named: false,
                first: t,
                detectors: BTreeSet::new(),
                alerts: 0,
                contained: false,
            });
            st.named |= !named.is_empty();
            st.first = st.first.min(t);
            st.detectors.insert(a.detector.clone());
            st.alerts += 1;
            st.contained |= contains;
        }
    }
    #[derive(Default)]
    struct Acc {
        n: usize,
        d: usize,
        ttd: Vec<f64>,
        leak: Vec<f64>,
    }
    let mut per_kind: BTreeMap<String, Acc> = BTreeMap::new();
    let mut all = Acc::default();
    let mut misses = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let class = l.kind.is_abuse_class();
        let e = per_kind.entry(l.kind.as_str().to_string()).or_default();
        e.n += 1;
        if class {
            all.n += 1;
        }
        match (first[i], windows[i]) {
            (Some(t), Some((s, _))) => {
                e.d += 1;
                let ttd = (t - s) as f64;
                e.ttd.push(ttd);
                let leaked = timeline
                    .and_then(|tl| tl.get(&(l.entity.clone(), l.kind)))
                    .map(|tl| tl.iter().filter(|x| **x >= s && **x < t).count() as f64);
                if let Some(x) = leaked {
                    e.leak.push(x);
                }
                if class {
                    all.d += 1;
                    all.ttd.push(ttd);
                    if let Some(x) = leaked {
                        all.leak.push(x);
                    }
                }
            }
            _ => misses.push(Miss {
                entity: l.entity.clone(),
                kind: l.kind,
                start: l.start.clone(),
                messages: l.messages,
                other_detectors: others[i].iter().cloned().collect(),
            }),
        }
    }
    let score = |a: Acc| KindScore {
        labels: a.n,
        detected: a.d,
        recall: if a.n == 0 {
            0.0
        } else {
            a.d as f64 / a.n as f64
        },
        ttd_secs: Pcts::of(a.ttd),
        leaked: Pcts::of(a.leak),
    };
    let by_kind: BTreeMap<String, KindScore> =
        per_kind.into_iter().map(|(k, v)| (k, score(v))).collect();
    let mut fps = Vec::new();
    let mut true_entities = 0;
    for (e, st) in &seen {
        if st.named {
            true_entities += 1;
            continue;
        }
        let profile = match sc.profiles.get(e) {
            Some(p) if !p.is_empty() => {
                let mut p = p.clone();
                p.sort();
                p.dedup();
                p.join("+")
            }
            _ => ORDINARY.to_string(),
        };
        fps.push(FalsePositive {
            entity: e.clone(),
            profile,
            first_ts: maillog::Ts::from_secs(st.first).rfc3339(),
            detectors: st.detectors.iter().cloned().collect(),
            alerts: st.alerts,
            contained: st.contained,
        });
    }
    fps.sort_by(|a, b| a.first_ts.cmp(&b.first_ts).then(a.entity.cmp(&b.entity)));
    misses.sort_by(|a, b| a.start.cmp(&b.start).then(a.entity.cmp(&b.entity)));
    let alerted = seen.len();
    let false_all = false_counts(fps.iter(), sc);
    let false_containing = false_counts(fps.iter().filter(|f| f.contained), sc);
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
        fp_per_10k_accounts_day: false_all.per_10k_accounts_day,
        false_all,
        false_containing,
        containing: sc.containing.clone(),
        contain_min_score: sc.contain_min_score,
        legit_accounts: sc.legit_accounts,
        days: sc.days,
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
        for k in AbuseKind::ALL {
            if let Some(v) = self.by_kind.get(k.as_str()) {
                if k.is_abuse_class() {
                    row(&mut s, k.as_str(), v);
                }
            }
        }
        row(&mut s, "all abuse classes", &self.overall);
        if let Some(v) = self.by_kind.get(AbuseKind::GuessingSource.as_str()) {
            row(&mut s, "(guessing-source)", v);
        }
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
        let _ = writeln!(
            s,
            "false positives, containing detectors ({} at score >= {}): {} entities = {:.2} per 10,000 accounts per day",
            self.containing.join(","),
            self.contain_min_score,
            self.false_containing.entities,
            self.false_containing.per_10k_accounts_day
        );
        let counts = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.false_all.entities > 0 {
            let _ = writeln!(s, "  by detector: {}", counts(&self.false_all.by_detector));
            let _ = writeln!(s, "  by day: {}", counts(&self.false_all.by_day));
            for (p, m) in &self.false_all.by_profile {
                let _ = writeln!(s, "  profile {p}: {}", counts(m));
            }
        }
        let (classes, guessers): (Vec<&Miss>, Vec<&Miss>) =
            self.misses.iter().partition(|m| m.kind.is_abuse_class());
        if !classes.is_empty() {
            let _ = writeln!(s, "misses ({}):", classes.len());
            for m in classes.iter().take(TEXT_LIST_MAX) {
                let other = if m.other_detectors.is_empty() {
                    String::new()
                } else {
                    format!(
                        "  (alerted by {}, not about this kind)",
                        m.other_detectors.join(",")
                    )
                };
                let _ = writeln!(
                    s,
                    "  {:<18} {}:{}  start {}  {} messages{other}",
                    m.kind.as_str(),
                    m.entity.kind,
                    m.entity.id,
                    m.start,
                    m.messages
                );
            }
        }
        if !guessers.is_empty() {
            let _ = writeln!(s, "guessing sources not reported: {}", guessers.len());
        }
        if !self.false_positives.is_empty() {
            let _ = writeln!(s, "false positives ({}):", self.false_positives.len());
            for f in self.false_positives.iter().take(TEXT_LIST_MAX) {
                let _ = writeln!(
                    s,
                    "  {}:{}  [{}]  first {}  {} alerts  [{}]{}",
                    f.entity.kind,
                    f.entity.id,
                    f.profile,
                    f.first_ts,
                    f.alerts,
                    f.detectors.join(","),
                    if f.contained { "  CONTAINED" } else { "" }
                );
            }
            if self.false_positives.len() > TEXT_LIST_MAX {
                let _ = writeln!(
                    s,
                    "  … {} more (all in --format json)",
                    self.false_positives.len() - TEXT_LIST_MAX
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

/// Read `population.jsonl` into profiles per entity (a missing file gives no profiles).
pub fn load_population(path: &Path) -> Result<Profiles, SimError> {
    if !path.exists() {
        return Ok(Profiles::new());
    }
    let v: Vec<PopulationEntry> = read_lines(path)?;
    let mut out = Profiles::new();
    for e in v {
        let p = out.entry(e.entity).or_default();
        if !p.contains(&e.profile) {
            p.push(e.profile);
        }
    }
    Ok(out)
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
            detector: "auth-hijack".into(),
            entity: Entity::account("a@x"),
            score: 1.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
        };
        let ev = evaluate(&labels[..1], &[alert], 100, 1.0, Some(&tl));
        assert_eq!(ev.overall.detected, 1);
        assert_eq!(ev.overall.leaked.p50, Some(2.0));
    }

    fn alert(ts: &str, detector: &str, e: Entity, score: f64) -> AlertRecord {
        AlertRecord {
            ts: ts.into(),
            detector: detector.into(),
            entity: e,
            score,
            summary: String::new(),
            evidence: serde_json::Value::Null,
        }
    }

    const S: &str = "2026-11-16T00:00:00Z";
    const E: &str = "2026-11-16T06:00:00Z";
    const IN: &str = "2026-11-16T01:00:00Z";

    /// A detector that is not about the label's kind neither detects it nor makes its entity
    /// false; the right detector does.
    #[test]
    fn only_the_kinds_detectors_detect() {
        let labels = vec![
            label(Entity::account("v@x"), AbuseKind::PasswordGuessing, S, E),
            label(Entity::account("h@x"), AbuseKind::HijackedAccount, S, E),
        ];
        let wrong = [
            alert(IN, "auth-hijack", Entity::account("v@x"), 1.0),
            alert(IN, "auth-bruteforce", Entity::account("h@x"), 1.0),
        ];
        let ev = evaluate(&labels, &wrong, 1000, 1.0, None);
        assert_eq!(ev.overall.detected, 0);
        assert_eq!(ev.fp_entities, 0, "labelled entities are never false");
        assert_eq!(ev.misses[0].other_detectors.len(), 1);
        let right = [
            alert(IN, "auth-bruteforce", Entity::account("v@x"), 1.0),
            alert(IN, "auth-hijack", Entity::account("h@x"), 1.0),
        ];
        let ev = evaluate(&labels, &right, 1000, 1.0, None);
        assert_eq!(ev.overall.detected, 2);
        assert_eq!(ev.by_kind["password-guessing"].recall, 1.0);
    }

    /// An exploited site is found by a sender alert on `@site` or on an address at the site,
    /// not by one on the hosting server's IP or on another site.
    #[test]
    fn exploited_site_matches_its_senders() {
        let labels = vec![label(
            Entity::sender("@shop-a.de"),
            AbuseKind::ExploitedWebsite,
            S,
            E,
        )];
        let server = alert(IN, "delivery-failures", Entity::client("192.0.2.9"), 0.9);
        let other = alert(
            IN,
            "delivery-failures",
            Entity::sender("noreply@shop-b.de"),
            0.9,
        );
        let sub = alert(
            IN,
            "delivery-failures",
            Entity::sender("x@mail.shop-a.de"),
            0.9,
        );
        let ev = evaluate(&labels, &[server.clone(), other, sub], 1000, 1.0, None);
        assert_eq!(ev.overall.detected, 0);
        assert_eq!(ev.fp_entities, 3);
        for hit in [
            alert(
                IN,
                "delivery-failures",
                Entity::sender("wordpress@shop-a.de"),
                0.9,
            ),
            alert(IN, "helo-anomaly", Entity::sender("@shop-a.de"), 0.9),
        ] {
            let ev = evaluate(&labels, &[hit], 1000, 1.0, None);
            assert_eq!(ev.by_kind["exploited-website"].detected, 1);
            assert_eq!(ev.fp_entities, 0);
        }
        // The right entity by a detector not about it: not found, not false.
        let ev = evaluate(
            &labels,
            &[alert(
                IN,
                "auth-hijack",
                Entity::sender("noreply@shop-a.de"),
                1.0,
            )],
            1000,
            1.0,
            None,
        );
        assert_eq!((ev.overall.detected, ev.fp_entities), (0, 0));
    }

    /// Guessing sources: alerts on the address, on a network holding it, or on an address in a
    /// labelled network are true; they are reported apart from the abuse classes.
    #[test]
    fn guessing_sources_by_address_and_network() {
        let labels = vec![
            label(
                Entity::client("198.51.100.7"),
                AbuseKind::GuessingSource,
                S,
                E,
            ),
            label(
                Entity::network("203.0.113.0/24"),
                AbuseKind::GuessingSource,
                S,
                E,
            ),
            label(Entity::account("h@x"), AbuseKind::HijackedAccount, S, E),
        ];
        let alerts = [
            alert(
                IN,
                "auth-bruteforce",
                Entity::network("198.51.100.0/24"),
                0.8,
            ),
            alert(IN, "auth-bruteforce", Entity::client("203.0.113.77"), 0.8),
            alert(
                IN,
                "auth-bruteforce",
                Entity::network("203.0.114.0/24"),
                0.8,
            ),
        ];
        let ev = evaluate(&labels, &alerts, 1000, 1.0, None);
        assert_eq!(ev.by_kind["guessing-source"].detected, 2);
        assert_eq!(ev.fp_entities, 1);
        assert_eq!(ev.false_positives[0].entity.id, "203.0.114.0/24");
        // Overall is over the abuse classes only: the hijack is missed.
        assert_eq!((ev.overall.labels, ev.overall.detected), (1, 0));
    }

    /// Incoming spam sources (issue 14): a labelled /24 is found by an alert on one of its hosts
    /// or on the network, only by the incoming detectors; a looped-back customer also by the
    /// outgoing detectors that see it.
    #[test]
    fn incoming_sources_by_address_and_network() {
        let labels = vec![
            label(
                Entity::network("203.0.113.0/24"),
                AbuseKind::IncomingSpamSource,
                S,
                E,
            ),
            label(
                Entity::client("198.51.100.9"),
                AbuseKind::IncomingSpamSource,
                S,
                E,
            ),
            label(Entity::client("192.0.2.5"), AbuseKind::LoopedBack, S, E),
        ];
        let alerts = [
            alert(IN, "incoming-failures", Entity::client("203.0.113.77"), 0.8),
            // Not an incoming detector: neither finds the label nor counts against it.
            alert(IN, "auth-bruteforce", Entity::client("198.51.100.9"), 0.8),
            alert(IN, "delivery-failures", Entity::client("192.0.2.5"), 0.8),
            alert(
                IN,
                "incoming-failures",
                Entity::network("203.0.114.0/24"),
                0.8,
            ),
        ];
        let ev = evaluate(&labels, &alerts, 1000, 1.0, None);
        assert_eq!(ev.by_kind["incoming-spam-source"].detected, 1);
        assert_eq!(ev.by_kind["looped-back"].detected, 1);
        assert_eq!(ev.fp_entities, 1);
        assert_eq!(ev.false_positives[0].entity.id, "203.0.114.0/24");
    }

    /// False entities per detector, per day, per profile, and those a containing detector
    /// would have held.
    #[test]
    fn false_entities_counted_every_way() {
        let mut sc = Scoring::new(10_000, 2.0);
        sc.profiles
            .insert(Entity::client("192.0.2.1"), vec!["business-nat".into()]);
        let alerts = [
            alert(IN, "helo-anomaly", Entity::client("192.0.2.1"), 0.7),
            alert(IN, "delivery-failures", Entity::client("192.0.2.1"), 0.7),
            alert(
                "2026-11-17T03:00:00Z",
                "auth-hijack",
                Entity::account("o@x"),
                0.95,
            ),
            alert(
                "2026-11-17T04:00:00Z",
                "auth-hijack",
                Entity::account("p@x"),
                0.5,
            ),
        ];
        let ev = evaluate_with(&[], &alerts, &sc, None);
        assert_eq!(ev.fp_entities, 3);
        assert!((ev.fp_per_10k_accounts_day - 1.5).abs() < 1e-9);
        assert_eq!(ev.false_all.by_detector["auth-hijack"], 2);
        assert_eq!(ev.false_all.by_detector["helo-anomaly"], 1);
        assert_eq!(ev.false_all.by_day["2026-11-16"], 1);
        assert_eq!(ev.false_all.by_day["2026-11-17"], 2);
        assert_eq!(
            ev.false_all.by_profile["business-nat"]["delivery-failures"],
            1
        );
        assert_eq!(ev.false_all.by_profile[ORDINARY]["auth-hijack"], 2);
        assert_eq!(ev.false_containing.entities, 1, "only the score >= 0.9 one");
        assert!((ev.false_containing.per_10k_accounts_day - 0.5).abs() < 1e-9);
        let nat = ev
            .false_positives
            .iter()
            .find(|f| f.entity.id == "192.0.2.1")
            .expect("listed");
        assert_eq!(nat.profile, "business-nat");
        assert!(!nat.contained);
        assert!(ev.to_text().contains("[business-nat]"));
    }

    #[test]
    fn networks_contain() {
        let n = Net::parse("10.1.2.0/24").expect("cidr");
        assert!(n.contains(&Net::parse("10.1.2.200").expect("ip")));
        assert!(!n.contains(&Net::parse("10.1.3.1").expect("ip")));
        assert!(!n.contains(&Net::parse("10.1.0.0/16").expect("cidr")));
        let v6 = Net::parse("2001:db8:1::/48").expect("cidr");
        assert!(v6.contains(&Net::parse("2001:db8:1:2::5").expect("ip")));
        assert!(!v6.contains(&n));
        assert!(Net::parse("10.0.0.0/33").is_none());
        assert!(Net::parse("0.0.0.0/0").expect("all").contains(&n));
    }
}
