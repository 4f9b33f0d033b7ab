//! IIJ's five figures and the per-incident timeline, computed from what `analyze` produced: the
//! alerts, the incidents, their typed evidence and the records seen ([`Seen`]).
//!
//! Each figure has a pure function giving its numbers (tested) and a `*_chart` turning them into
//! a [`Chart`]. The dashboard renders the same charts from the same functions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use detect::evidence::Evidence;
use detect::hijack::Shape;
use detect::incident::Incident;
use detect::{Alert, Detector, Entity, EntityKind};
use maillog::Ts;

use super::chart::{Chart, Series};
use crate::seen::{Row, Seen};

/// Seconds of a day.
pub const DAY: i64 = 86_400;
/// Seconds of an hour.
pub const HOUR: i64 = 3_600;
/// The timeline's step: IIJ and Clayton read bursts at this grain (the brief's 10 minutes).
pub const TIMELINE_STEP: i64 = 600;
/// Most steps of a timeline (two days of 10 minutes); a longer one shows its last two days and
/// says so. Keeps a week-long incident's chart readable and the file small. Our own idea.
pub const MAX_TIMELINE_STEPS: usize = 288;
/// Longest period whose over-time figures go by the hour; longer ones go by the day (48 hourly
/// bars are still readable; a week of them is not). Our own idea.
pub const HOURLY_UP_TO: i64 = 2 * DAY;
/// Countries named in the country mix; the rest are "other" (a stacked bar of more colours is
/// unreadable). Our own idea.
pub const TOP_COUNTRIES: usize = 6;
/// Accounts drawn in "source IPs per account" (the highest-scored; more lines are unreadable).
pub const TOP_ACCOUNTS: usize = 8;
/// Bars in an "attempts per source IP" figure (the busiest (account, IP) pairs).
pub const MAX_IP_BARS: usize = 40;

/// `2026-11-20` of a time in seconds.
pub fn day_label(secs: i64) -> String {
    Ts::from_secs(secs).display_utc()[..10].to_string()
}

/// `11-20 10:00` of a time in seconds.
pub fn hour_label(secs: i64) -> String {
    Ts::from_secs(secs).display_utc()[5..16].to_string()
}

/// Figure 1: distinct accounts with an alert, per UTC day of the period (every day of the
/// period, none left out; `period` widens to the alerts' own days).
pub fn accounts_per_day(alerts: &[Alert], period: Option<(Ts, Ts)>) -> Vec<(i64, u64)> {
    let mut days: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    for a in alerts
        .iter()
        .filter(|a| a.entity.kind == EntityKind::Account)
    {
        days.entry(a.ts.secs().div_euclid(DAY))
            .or_default()
            .insert(&a.entity.id);
    }
    let lo = period
        .map(|p| p.0.secs().div_euclid(DAY))
        .into_iter()
        .chain(days.keys().next().copied())
        .min();
    let hi = period
        .map(|p| p.1.secs().div_euclid(DAY))
        .into_iter()
        .chain(days.keys().next_back().copied())
        .max();
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Vec::new();
    };
    (lo..=hi)
        .map(|d| (d * DAY, days.get(&d).map_or(0, |s| s.len() as u64)))
        .collect()
}

/// An account that the hijack detector flagged, with how its sending was spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Hijacked<'a> {
    /// The account.
    pub entity: &'a Entity,
    /// Shape of its latest auth-hijack evidence.
    pub shape: Shape,
    /// Incident score.
    pub score: f64,
}

/// The incidents of accounts with an auth-hijack alert, highest score first.
pub fn hijacked(incidents: &[Incident]) -> Vec<Hijacked<'_>> {
    let mut out: Vec<Hijacked<'_>> = incidents
        .iter()
        .filter(|i| i.entity.kind == EntityKind::Account)
        .filter_map(|i| {
            let a = i
                .evidence
                .iter()
                .filter(|a| a.detector == Detector::AuthHijack)
                .max_by_key(|a| a.ts)?;
            let shape = match Evidence::of(a) {
                Some(Evidence::AuthHijack(e)) => e.shape,
                _ => Shape::Mixed,
            };
            Some(Hijacked {
                entity: &i.entity,
                shape,
                score: i.score,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.entity.cmp(b.entity))
    });
    out
}

/// Time buckets of an over-time figure: start, step and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// Start of the first bucket (seconds).
    pub start: i64,
    /// Step in seconds.
    pub step: i64,
    /// Number of buckets.
    pub n: usize,
}

impl Buckets {
    /// Hourly buckets over a period up to [`HOURLY_UP_TO`], daily ones beyond.
    pub fn over(period: (Ts, Ts)) -> Buckets {
        let (a, b) = (period.0.secs(), period.1.secs().max(period.0.secs()));
        let step = if b - a <= HOURLY_UP_TO { HOUR } else { DAY };
        let start = a.div_euclid(step) * step;
        Buckets {
            start,
            step,
            n: ((b - start) / step + 1) as usize,
        }
    }

    /// The bucket of a minute, if inside.
    fn of_minute(&self, minute: u32) -> Option<usize> {
        let s = i64::from(minute) * 60 - self.start;
        (s >= 0)
            .then(|| (s / self.step) as usize)
            .filter(|i| *i < self.n)
    }

    /// Labels of the buckets.
    pub fn labels(&self) -> Vec<String> {
        (0..self.n)
            .map(|i| {
                let t = self.start + self.step * i as i64;
                if self.step >= DAY {
                    day_label(t)
                } else {
                    hour_label(t)
                }
            })
            .collect()
    }
}

/// Country code of an address (`unknown` when the geo data does not know it).
pub fn country(geo: &geo::GeoDb, ip: IpAddr) -> String {
    geo.lookup_fast(ip)
        .0
        .filter(|c| c.as_str() != "--")
        .map_or_else(|| "unknown".to_string(), |c| c.to_string())
}

/// Figure 2: messages of the hijacked accounts per bucket and source country: the
/// [`TOP_COUNTRIES`] countries with the most messages, then `other`. Returns the country names
/// and for each a count per bucket.
pub fn country_mix(
    seen: &Seen,
    geo: &geo::GeoDb,
    accounts: &[&Entity],
    b: Buckets,
) -> Vec<(String, Vec<u64>)> {
    let mut per: HashMap<String, Vec<u64>> = HashMap::new();
    let mut cache: HashMap<IpAddr, String> = HashMap::new();
    for r in seen.rows_of(accounts) {
        let (Some(i), Some(ip)) = (b.of_minute(r.minute), seen.ip(&r)) else {
            continue;
        };
        let c = cache.entry(ip).or_insert_with(|| country(geo, ip)).clone();
        per.entry(c).or_insert_with(|| vec![0; b.n])[i] += 1;
    }
    let mut all: Vec<(String, Vec<u64>)> = per.into_iter().collect();
    all.sort_by(|a, b| {
        let (x, y) = (a.1.iter().sum::<u64>(), b.1.iter().sum::<u64>());
        y.cmp(&x).then(a.0.cmp(&b.0))
    });
    if all.len() > TOP_COUNTRIES {
        let rest = all.split_off(TOP_COUNTRIES);
        let mut other = vec![0; b.n];
        for (_, v) in rest {
            for (o, x) in other.iter_mut().zip(v) {
                *o += x;
            }
        }
        all.push(("other".to_string(), other));
    }
    all
}

/// Figure 3: distinct source addresses per bucket, for each of `accounts`.
pub fn ips_per_account(seen: &Seen, accounts: &[&Entity], b: Buckets) -> Vec<(String, Vec<u64>)> {
    accounts
        .iter()
        .map(|e| {
            let mut sets: Vec<HashSet<IpAddr>> = vec![HashSet::new(); b.n];
            for r in seen.rows_of(&[e]) {
                if let (Some(i), Some(ip)) = (b.of_minute(r.minute), seen.ip(&r)) {
                    sets[i].insert(ip);
                }
            }
            (e.id.clone(), sets.iter().map(|s| s.len() as u64).collect())
        })
        .collect()
}

/// Figures 4 and 5: messages per (account, source address) of `accounts`, busiest first.
pub fn per_source_ip(seen: &Seen, accounts: &[&Entity]) -> Vec<(String, IpAddr, u64)> {
    let mut n: HashMap<(u32, IpAddr), u64> = HashMap::new();
    for r in seen.rows_of(accounts) {
        if let Some(ip) = seen.ip(&r) {
            *n.entry((r.entity, ip)).or_default() += 1;
        }
    }
    let mut out: Vec<(String, IpAddr, u64)> = n
        .into_iter()
        .map(|((e, ip), c)| (seen.entity_at(e).id.clone(), ip, c))
        .collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    out
}

/// One step of an incident's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Start (seconds).
    pub start: i64,
    /// Messages accepted in the step.
    pub messages: u64,
    /// Distinct source addresses in the step.
    pub ips: u64,
}

/// An incident's timeline: messages and distinct source addresses per [`TIMELINE_STEP`], from
/// its first to its last row (the last [`MAX_TIMELINE_STEPS`]); and the steps left out before.
pub fn timeline(seen: &Seen, rows: &[Row]) -> (Vec<Step>, usize) {
    let (Some(lo), Some(hi)) = (
        rows.iter().map(|r| r.minute).min(),
        rows.iter().map(|r| r.minute).max(),
    ) else {
        return (Vec::new(), 0);
    };
    let step_min = (TIMELINE_STEP / 60) as u32;
    let first = lo / step_min;
    let last = hi / step_min;
    let total = (last - first + 1) as usize;
    let skipped = total.saturating_sub(MAX_TIMELINE_STEPS);
    let from = first + skipped as u32;
    let n = total - skipped;
    let mut msgs = vec![0u64; n];
    let mut sets: Vec<HashSet<IpAddr>> = vec![HashSet::new(); n];
    for r in rows {
        let k = r.minute / step_min;
        if k < from {
            continue;
        }
        let i = (k - from) as usize;
        msgs[i] += 1;
        if let Some(ip) = seen.ip(r) {
            sets[i].insert(ip);
        }
    }
    let steps = (0..n)
        .map(|i| Step {
            start: i64::from(from + i as u32) * TIMELINE_STEP,
            messages: msgs[i],
            ips: sets[i].len() as u64,
        })
        .collect();
    (steps, skipped)
}

/// Addresses and messages per key (country or AS) of `rows`, most messages first.
pub fn by_source(
    seen: &Seen,
    rows: &[Row],
    key: impl Fn(IpAddr) -> String,
) -> Vec<(String, u64, u64)> {
    let mut m: HashMap<String, (HashSet<IpAddr>, u64)> = HashMap::new();
    for r in rows {
        if let Some(ip) = seen.ip(r) {
            let e = m.entry(key(ip)).or_default();
            e.0.insert(ip);
            e.1 += 1;
        }
    }
    let mut out: Vec<(String, u64, u64)> = m
        .into_iter()
        .map(|(k, (ips, n))| (k, ips.len() as u64, n))
        .collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    out
}

fn single(name: &str, values: Vec<f64>) -> Vec<Series> {
    vec![Series {
        name: name.to_string(),
        values,
    }]
}

/// Figure 1 as a chart.
pub fn accounts_per_day_chart(days: &[(i64, u64)]) -> Chart {
    Chart {
        id: "fig-accounts-per-day".into(),
        title: "Figure 1. Accounts hit per day (distinct accounts with an alert)".into(),
        labels: days.iter().map(|d| day_label(d.0)).collect(),
        bars: single("accounts", days.iter().map(|d| d.1 as f64).collect()),
        line: None,
        y_label: "accounts".into(),
        note: None,
    }
}

/// Figure 2 as a chart.
pub fn country_mix_chart(mix: &[(String, Vec<u64>)], b: Buckets, accounts: usize) -> Chart {
    Chart {
        id: "fig-country-mix".into(),
        title: format!(
            "Figure 2. Source countries of the hijacked accounts' messages over time ({accounts} accounts)"
        ),
        labels: b.labels(),
        bars: mix
            .iter()
            .map(|(c, v)| Series {
                name: c.clone(),
                values: v.iter().map(|x| *x as f64).collect(),
            })
            .collect(),
        line: None,
        y_label: "messages".into(),
        note: None,
    }
}

/// Figure 3 as a chart: one bar series per account (stacked).
pub fn ips_per_account_chart(per: &[(String, Vec<u64>)], b: Buckets, more: usize) -> Chart {
    Chart {
        id: "fig-ips-per-account".into(),
        title: "Figure 3. Distinct source IPs per hijacked account over time".into(),
        labels: b.labels(),
        bars: per
            .iter()
            .map(|(a, v)| Series {
                name: a.clone(),
                values: v.iter().map(|x| *x as f64).collect(),
            })
            .collect(),
        line: None,
        y_label: "source IPs".into(),
        note: (more > 0).then(|| format!("{more} more hijacked accounts not drawn")),
    }
}

/// Figures 4 and 5 as charts.
pub fn per_source_ip_chart(
    id: &str,
    title: &str,
    pairs: &[(String, IpAddr, u64)],
    accounts: usize,
) -> Chart {
    let shown = &pairs[..pairs.len().min(MAX_IP_BARS)];
    let left: u64 = pairs[shown.len()..].iter().map(|p| p.2).sum();
    let note = if accounts == 0 {
        Some("No hijacked account of this shape.".to_string())
    } else if pairs.len() > shown.len() {
        Some(format!(
            "{accounts} accounts, {} (account, source IP) pairs; {} more pairs with {left} messages not drawn",
            pairs.len(),
            pairs.len() - shown.len()
        ))
    } else {
        Some(format!(
            "{accounts} accounts, {} (account, source IP) pairs",
            pairs.len()
        ))
    };
    Chart {
        id: id.into(),
        title: title.into(),
        labels: shown.iter().map(|p| p.1.to_string()).collect(),
        bars: single("messages", shown.iter().map(|p| p.2 as f64).collect()),
        line: None,
        y_label: "messages".into(),
        note,
    }
}

/// An incident's timeline as a chart.
pub fn timeline_chart(id: u64, steps: &[Step], skipped: usize) -> Chart {
    Chart {
        id: format!("fig-timeline-{id}"),
        title: "Messages and distinct source IPs per 10 minutes".into(),
        labels: steps.iter().map(|s| hour_label(s.start)).collect(),
        bars: single(
            "messages",
            steps.iter().map(|s| s.messages as f64).collect(),
        ),
        line: Some(Series {
            name: "distinct source IPs".into(),
            values: steps.iter().map(|s| s.ips as f64).collect(),
        }),
        y_label: "messages".into(),
        note: (skipped > 0).then(|| format!("{skipped} earlier 10-minute steps not drawn")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(id: &str) -> Entity {
        Entity::new(EntityKind::Account, id)
    }

    fn alert(ts: i64, e: &Entity) -> Alert {
        Alert {
            ts: Ts::from_secs(ts),
            detector: Detector::AuthHijack,
            entity: e.clone(),
            score: 1.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
        }
    }

    const D0: i64 = 1_795_132_800; // 2026-11-20 00:00 UTC

    #[test]
    fn accounts_per_day_counts_distinct_accounts_and_keeps_empty_days() {
        let (a, b) = (acct("a@x"), acct("b@x"));
        let c = Entity::new(EntityKind::Client, "192.0.2.1");
        let alerts = vec![
            alert(D0 + 10, &a),
            alert(D0 + 20, &a),
            alert(D0 + 30, &b),
            alert(D0 + 40, &c),
            alert(D0 + 2 * DAY + 5, &a),
        ];
        let days = accounts_per_day(
            &alerts,
            Some((Ts::from_secs(D0), Ts::from_secs(D0 + 3 * DAY - 1))),
        );
        assert_eq!(days, vec![(D0, 2), (D0 + DAY, 0), (D0 + 2 * DAY, 1)],);
    }

    #[test]
    fn over_time_figures_count_messages_per_country_and_ips_per_account() {
        let geo = geo::GeoDb::builtin();
        let (a, b) = (acct("a@x"), acct("b@x"));
        let mut s = Seen::new();
        // a: 3 messages from 2 IPs in hour 0, 1 in hour 2; b: 1 in hour 1.
        for (e, ip, t) in [
            (&a, "192.0.2.1", D0 + 60),
            (&a, "192.0.2.1", D0 + 120),
            (&a, "192.0.2.2", D0 + 180),
            (&a, "192.0.2.2", D0 + 2 * HOUR),
            (&b, "192.0.2.9", D0 + HOUR),
        ] {
            s.note(e, ip.parse().ok(), Ts::from_secs(t));
        }
        let bk = Buckets::over((Ts::from_secs(D0), Ts::from_secs(D0 + 3 * HOUR - 1)));
        assert_eq!((bk.start, bk.step, bk.n), (D0, HOUR, 3));
        let per = ips_per_account(&s, &[&a, &b], bk);
        assert_eq!(per[0], ("a@x".to_string(), vec![2, 0, 1]));
        assert_eq!(per[1], ("b@x".to_string(), vec![0, 1, 0]));
        let mix = country_mix(&s, geo, &[&a], bk);
        let total: Vec<u64> = (0..3).map(|i| mix.iter().map(|m| m.1[i]).sum()).collect();
        assert_eq!(total, vec![3, 0, 1]);
        let pairs = per_source_ip(&s, &[&a, &b]);
        // Busiest first, ties by account then address.
        let got: Vec<(&str, String, u64)> = pairs
            .iter()
            .map(|p| (p.0.as_str(), p.1.to_string(), p.2))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a@x", "192.0.2.1".to_string(), 2),
                ("a@x", "192.0.2.2".to_string(), 2),
                ("b@x", "192.0.2.9".to_string(), 1),
            ]
        );
    }

    #[test]
    fn timeline_steps_are_ten_minutes_with_distinct_ips() {
        let a = acct("a@x");
        let mut s = Seen::new();
        for (ip, t) in [
            ("192.0.2.1", D0),
            ("192.0.2.2", D0 + 60),
            ("192.0.2.2", D0 + 120),
            ("192.0.2.3", D0 + 1800),
        ] {
            s.note(&a, ip.parse().ok(), Ts::from_secs(t));
        }
        let rows = s.rows_of(&[&a]);
        let (steps, skipped) = timeline(&s, &rows);
        assert_eq!(skipped, 0);
        let got: Vec<(u64, u64)> = steps.iter().map(|x| (x.messages, x.ips)).collect();
        assert_eq!(got, vec![(3, 2), (0, 0), (0, 0), (1, 1)]);
        assert_eq!(steps[0].start, D0);
    }
}
