//! `auth-hijack`: fraudulent SMTP AUTH with stolen passwords.
//!
//! A hijacked account in a botnet's hands is used from hundreds to thousands of source IPs in up
//! to ~30 countries: either a few messages from each of very many IPs ("spread", ~90% of cases),
//! or thousands from single IPs at several per second for about an hour ("burst", ~10%). The
//! features here are per account, over event-time windows, against the account's own baseline
//! (the countries, networks and rhythm of its past, learned from days without alerts) and the
//! population's norm (how many new networks an account normally shows in an hour):
//!
//! - spread: autonomous systems and countries not in the baseline within the window;
//! - burst: messages from one IP within a minute, from a country that is neither the account's
//!   nor a home country of the population;
//! - supporting signals: failed logins to the account before it sent, IPs shared with accounts
//!   already flagged (a botnet reuses bots), a high failure rate of its recipients, activity at
//!   an hour the account is never active.
//!
//! Signals combine as `1 - Π(1 - s)`; the alert says which fired and the numbers behind them.
//! Memory per account is bounded: at most `max_recent_ips` first-sightings in the window, a
//! one-minute ring of at most [`MAX_MINUTE_MSGS`] messages, capped baseline sets, and
//! [`Distinct`] counters that switch to a 256-byte sketch past 64 values.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use geo::{Country, GeoDb};
use maillog::Ts;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::alert::{round3, Alert, Detector, Entity, EntityKind};
use crate::bounded::BoundedMap;
use crate::config::Config;
use crate::distinct::{mix, Distinct};
use crate::window::Counter;

/// The fast window of the evidence (first sightings within it), seconds.
pub const FAST_WINDOW_SECS: i64 = 600;
/// Messages remembered per account for the one-minute burst count.
pub const MAX_MINUTE_MSGS: usize = 1024;
/// Countries kept in a baseline.
pub const BASELINE_COUNTRIES: usize = 16;
/// ASNs kept in a baseline.
pub const BASELINE_ASNS: usize = 32;
/// Sample recipients kept per account.
pub const SAMPLE_RCPTS: usize = 8;
/// A day whose source networks are more diverse than this is not learned into the baseline.
pub const LEARN_MAX_ASNS: usize = 12;

/// What an account normally looks like, learned from days without alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Countries with the days they were seen.
    pub countries: Vec<(String, u32)>,
    /// Autonomous systems seen.
    pub asns: Vec<u32>,
    /// Days learned.
    pub days: u32,
    /// Messages per day, exponentially weighted.
    pub msgs_per_day: f64,
    /// Messages per hour of day (UTC), learned days only.
    pub hours: Vec<u32>,
}

impl Baseline {
    fn has_country(&self, c: &str) -> bool {
        self.countries.iter().any(|(x, _)| x == c)
    }
    fn has_asn(&self, a: u32) -> bool {
        self.asns.contains(&a)
    }
}

#[derive(Debug, Clone)]
struct Obs {
    first: Ts,
    last: Ts,
    ip: IpAddr,
    asn: u32,
    cc: [u8; 2],
    msgs: u32,
    rcpts: u32,
}

#[derive(Debug, Default)]
struct Day {
    start: Option<Ts>,
    ips: Distinct,
    asns: Vec<u32>,
    asns_overflow: bool,
    countries: Vec<([u8; 2], u32)>,
    msgs: u64,
    hours: [u32; 24],
    alerted: bool,
}

#[derive(Debug, Default)]
struct Account {
    recent: VecDeque<Obs>,
    minute: VecDeque<(Ts, IpAddr)>,
    day: Day,
    baseline: Baseline,
    rcpts: Counter,
    failed: Counter,
    msgs: Counter,
    auth_failures: Counter,
    sample_rcpts: VecDeque<String>,
    domains: Distinct,
    alerted_ips: u64,
    alerted_at: Option<Ts>,
    max_new_asns: u32,
    campaign_hits: u32,
}

/// Population histogram of each account's largest count of new ASNs in a window.
#[derive(Debug, Clone)]
struct Population {
    buckets: [u64; 65],
    accounts: u64,
}

impl Default for Population {
    fn default() -> Self {
        Population {
            buckets: [0; 65],
            accounts: 0,
        }
    }
}

impl Population {
    fn raise(&mut self, from: u32, to: u32) {
        let (f, t) = ((from as usize).min(64), (to as usize).min(64));
        if f == t {
            return;
        }
        self.buckets[f] = self.buckets[f].saturating_sub(1);
        self.buckets[t] += 1;
    }
    fn add_account(&mut self) {
        self.accounts += 1;
        self.buckets[0] += 1;
    }
    /// Smallest value v such that at least `q` of accounts are ≤ v.
    fn quantile(&self, q: f64) -> u32 {
        let need = (self.accounts as f64 * q).ceil() as u64;
        let mut acc = 0;
        for (v, c) in self.buckets.iter().enumerate() {
            acc += c;
            if acc >= need {
                return v as u32;
            }
        }
        64
    }
}

/// One observation of an account sending.
#[derive(Debug, Clone)]
pub struct Send<'a> {
    /// When.
    pub ts: Ts,
    /// Account.
    pub account: &'a str,
    /// Source IP (None for local/webmail submissions).
    pub ip: Option<IpAddr>,
    /// Messages this observation stands for (1 for a record, 1 for a new policy transaction, 0
    /// for a further recipient of one).
    pub msgs: u32,
    /// Recipients.
    pub rcpts: &'a [&'a str],
    /// Of which failed (known for records only).
    pub failed: u32,
}

/// The detector's state.
#[derive(Debug)]
pub struct Hijack {
    accounts: BoundedMap<String, Account>,
    population: Population,
    countries: HashMap<[u8; 2], u64>,
    logins: u64,
}

fn cc_str(c: &[u8; 2]) -> &str {
    std::str::from_utf8(c).unwrap_or("??")
}

fn ip_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u64,
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v >> 64) as u64 ^ v as u64 ^ 0x6000_0000_0000_0000
        }
    }
}

/// Signals that fired, with their partial scores.
#[derive(Debug, Clone, Serialize)]
pub struct Signal {
    /// Name.
    pub name: &'static str,
    /// Partial score.
    pub score: f64,
    /// Why, in words.
    pub detail: String,
}

impl Hijack {
    /// Empty state.
    pub fn new(cfg: &Config) -> Self {
        Hijack {
            accounts: BoundedMap::new(cfg.limits.max_entities),
            population: Population::default(),
            countries: HashMap::new(),
            logins: 0,
        }
    }

    /// Accounts tracked.
    pub fn tracked(&self) -> usize {
        self.accounts.len()
    }

    /// Count a failed login against an account (credential guessing before a hijack).
    pub fn auth_failure(&mut self, cfg: &Config, ts: Ts, account: &str) {
        if let Some(a) = self.accounts.get_mut(&account.to_string()) {
            a.auth_failures.add(ts, 1, cfg.hijack.window.0);
        } else {
            let w = cfg.hijack.window.0;
            let pop = &mut self.population;
            let a = self
                .accounts
                .get_or_insert_with(&account.to_string(), ts, || {
                    pop.add_account();
                    Account::default()
                });
            a.auth_failures.add(ts, 1, w);
        }
    }

    /// Baselines, for saving.
    pub fn baselines(&self) -> Vec<(String, Baseline)> {
        let mut v: Vec<(String, Baseline)> = self
            .accounts
            .iter()
            .filter(|(_, a)| a.baseline.days > 0)
            .map(|(k, a)| (k.clone(), a.baseline.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Load saved baselines.
    pub fn restore(&mut self, items: Vec<(String, Baseline)>, at: Ts) {
        for (k, b) in items {
            let pop = &mut self.population;
            let a = self.accounts.get_or_insert_with(&k, at, || {
                pop.add_account();
                Account::default()
            });
            a.baseline = b;
        }
    }

    /// Observe one send. Alerts go to `out`; the returned value says whether the account is
    /// (now) flagged, for campaign correlation.
    pub fn observe(
        &mut self,
        cfg: &Config,
        geo: &GeoDb,
        s: &Send<'_>,
        campaign_ip: impl Fn(IpAddr) -> bool,
        out: &mut Vec<Alert>,
    ) -> bool {
        if !cfg.hijack.enabled {
            return false;
        }
        let hc = &cfg.hijack;
        let w = hc.window.0;
        let (cc, asn) = match s.ip {
            Some(ip) => {
                let (c, a) = geo.lookup_fast(ip);
                (c.map(|c| c.0), a)
            }
            None => (None, None),
        };
        // A loopback source is a local webmail or content filter, unless the operator's geo
        // overrides give it a country or network (test rigs map 127.x ranges that way).
        let src_ip =
            s.ip.filter(|i| !i.is_loopback() || cc.is_some() || asn.is_some());
        if let Some(c) = cc {
            if s.msgs > 0 {
                *self.countries.entry(c).or_default() += 1;
                self.logins += 1;
            }
        }
        let key = s.account.to_string();
        let pop = &mut self.population;
        let a = self.accounts.get_or_insert_with(&key, s.ts, || {
            pop.add_account();
            Account::default()
        });

        // Day roll-over: learn the finished day into the baseline unless it was alerted.
        let day_start = *a.day.start.get_or_insert(s.ts);
        if s.ts.secs() - day_start.secs() >= 86_400 {
            let d = std::mem::take(&mut a.day);
            if !d.alerted && !d.asns_overflow && d.asns.len() <= LEARN_MAX_ASNS {
                let b = &mut a.baseline;
                for (c, _) in &d.countries {
                    let cs = cc_str(c).to_string();
                    if let Some(e) = b.countries.iter_mut().find(|(x, _)| *x == cs) {
                        e.1 += 1;
                    } else if b.countries.len() < BASELINE_COUNTRIES {
                        b.countries.push((cs, 1));
                    }
                }
                for asn in &d.asns {
                    if !b.asns.contains(asn) && b.asns.len() < BASELINE_ASNS {
                        b.asns.push(*asn);
                    }
                }
                b.days += 1;
                b.msgs_per_day = if b.days == 1 {
                    d.msgs as f64
                } else {
                    0.8 * b.msgs_per_day + 0.2 * d.msgs as f64
                };
                if b.hours.len() != 24 {
                    b.hours = vec![0; 24];
                }
                for (h, n) in d.hours.iter().enumerate() {
                    b.hours[h] = b.hours[h].saturating_add(*n);
                }
            }
            a.day.start = Some(s.ts);
        }
        let hour = (s.ts.secs().rem_euclid(86_400) / 3600) as usize;
        a.day.msgs += s.msgs as u64;
        a.day.hours[hour] = a.day.hours[hour].saturating_add(s.msgs);
        if let Some(ip) = src_ip {
            a.day.ips.insert(ip_key(ip));
        }
        if let Some(asn) = asn {
            if !a.day.asns.contains(&asn) {
                if a.day.asns.len() < LEARN_MAX_ASNS {
                    a.day.asns.push(asn);
                } else {
                    a.day.asns_overflow = true;
                }
            }
        }
        if let Some(c) = cc {
            if let Some(e) = a.day.countries.iter_mut().find(|(x, _)| *x == c) {
                e.1 += 1;
            } else if a.day.countries.len() < 64 {
                a.day.countries.push((c, 1));
            }
        }

        a.msgs.add(s.ts, s.msgs, w);
        a.rcpts.add(s.ts, s.rcpts.len() as u32, w);
        a.failed.add(s.ts, s.failed, w);
        a.auth_failures.expire(s.ts, w);
        for r in s.rcpts.iter().take(4) {
            if let Some(d) = r.rsplit_once('@').map(|(_, d)| d) {
                a.domains.insert(mix(d
                    .bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))));
            }
            if a.sample_rcpts.len() >= SAMPLE_RCPTS {
                a.sample_rcpts.pop_front();
            }
            a.sample_rcpts.push_back(r.to_string());
        }

        // Window of first sightings.
        while a.recent.front().is_some_and(|o| o.last.plus_secs(w) < s.ts) {
            a.recent.pop_front();
        }
        let mut new_ip = false;
        if let Some(ip) = src_ip {
            if let Some(o) = a.recent.iter_mut().rev().find(|o| o.ip == ip) {
                o.last = s.ts;
                o.msgs += s.msgs;
                o.rcpts += s.rcpts.len() as u32;
            } else if a.recent.len() < hc.max_recent_ips {
                a.recent.push_back(Obs {
                    first: s.ts,
                    last: s.ts,
                    ip,
                    asn: asn.unwrap_or(0),
                    cc: cc.unwrap_or(*b"--"),
                    msgs: s.msgs,
                    rcpts: s.rcpts.len() as u32,
                });
                new_ip = true;
                if campaign_ip(ip) {
                    a.campaign_hits += 1;
                }
            }
            if s.msgs > 0 {
                while a
                    .minute
                    .front()
                    .is_some_and(|(t, _)| t.plus_secs(60) < s.ts)
                {
                    a.minute.pop_front();
                }
                if a.minute.len() >= MAX_MINUTE_MSGS {
                    a.minute.pop_front();
                }
                a.minute.push_back((s.ts, ip));
            }
        }
        // Only evaluate when something that can raise the score changed.
        let minute_top = if s.msgs > 0 {
            src_ip
                .map(|ip| a.minute.iter().filter(|(_, x)| *x == ip).count() as u64)
                .unwrap_or(0)
        } else {
            0
        };
        let burst_now = minute_top >= hc.burst_per_minute;
        if !new_ip && !burst_now {
            return a.alerted_at.is_some_and(|t| t.plus_secs(w) >= s.ts);
        }

        // Spread features over the window, relative to the baseline.
        let b = &a.baseline;
        let mut new_asns: Vec<u32> = Vec::new();
        let mut new_ccs: Vec<[u8; 2]> = Vec::new();
        for o in &a.recent {
            if o.asn != 0 && !b.has_asn(o.asn) && !new_asns.contains(&o.asn) {
                new_asns.push(o.asn);
            }
            if o.cc != *b"--" && !b.has_country(cc_str(&o.cc)) && !new_ccs.contains(&o.cc) {
                new_ccs.push(o.cc);
            }
        }
        let (n_asn, n_cc) = (new_asns.len() as u64, new_ccs.len() as u64);
        if n_asn as u32 > a.max_new_asns {
            self.population.raise(a.max_new_asns, n_asn as u32);
            a.max_new_asns = n_asn as u32;
        }
        let pop_p999 = if self.population.accounts >= cfg.hijack.population_min_accounts {
            Some(self.population.quantile(0.999))
        } else {
            None
        };
        let a = self.accounts.get_mut(&key).expect("inserted above");
        let mut signals: Vec<Signal> = Vec::new();
        let above_pop = pop_p999.is_none_or(|p| n_asn > p as u64);
        if above_pop && n_asn >= hc.min_new_asns && n_cc >= hc.min_new_countries {
            let extra = (n_asn - hc.min_new_asns) as f64 / (3.0 * hc.min_new_asns.max(1) as f64);
            signals.push(Signal {
                name: "spread",
                score: 0.8 + 0.19 * extra.min(1.0),
                detail: format!(
                    "{} IPs from {n_asn} new networks (ASNs) in {n_cc} new countries within {}",
                    a.recent.len(),
                    hc.window.to_string_h()
                ),
            });
        } else if above_pop && n_asn >= 2 * hc.min_new_asns {
            signals.push(Signal {
                name: "spread",
                score: 0.8,
                detail: format!(
                    "{} IPs from {n_asn} new networks (ASNs) within {}",
                    a.recent.len(),
                    hc.window.to_string_h()
                ),
            });
        } else if n_asn >= 3 && n_cc >= 2 && a.recent.len() >= 4 {
            signals.push(Signal {
                name: "spread-partial",
                score: 0.4,
                detail: format!(
                    "{} IPs from {n_asn} new networks in {n_cc} new countries",
                    a.recent.len()
                ),
            });
        }
        if burst_now {
            let ip = s.ip.expect("burst needs an ip");
            let foreign = cc.is_some_and(|c| {
                !a.baseline.has_country(cc_str(&c))
                    && !self_is_home(&self.countries, self.logins, cfg, &c)
            });
            let known_net = asn.is_some_and(|x| a.baseline.has_asn(x));
            if foreign && !known_net {
                signals.push(Signal {
                    name: "burst",
                    score: 0.85,
                    detail: format!(
                        "{minute_top} messages within one minute from {ip} ({}, AS{}), a country new to the account",
                        cc.map(|c| cc_str(&c).to_string()).unwrap_or_default(),
                        asn.unwrap_or(0)
                    ),
                });
            } else if !known_net && a.baseline.days > 0 {
                signals.push(Signal {
                    name: "burst-new-network",
                    score: 0.5,
                    detail: format!("{minute_top} messages within one minute from {ip}, a network new to the account"),
                });
            }
        }
        if !signals.is_empty() {
            let af = a.auth_failures.get();
            if af >= 5 {
                signals.push(Signal {
                    name: "auth-failures-before",
                    score: 0.3,
                    detail: format!(
                        "{af} failed logins to the account within {}",
                        hc.window.to_string_h()
                    ),
                });
            }
            if a.campaign_hits >= 2 {
                signals.push(Signal {
                    name: "campaign-ips",
                    score: 0.6,
                    detail: format!(
                        "{} of its source IPs were used by accounts already flagged",
                        a.campaign_hits
                    ),
                });
            }
            let (rc, fl) = (a.rcpts.get(), a.failed.get());
            if rc >= 10 && fl * 2 >= rc {
                signals.push(Signal {
                    name: "failures",
                    score: 0.3,
                    detail: format!(
                        "{fl} of {rc} recipients failed within {}",
                        hc.window.to_string_h()
                    ),
                });
            }
            if a.baseline.days >= 7 && a.baseline.hours.get(hour).is_some_and(|h| *h == 0) {
                signals.push(Signal {
                    name: "unusual-hour",
                    score: 0.1,
                    detail: format!(
                        "active at {hour:02}:00 UTC, an hour it never used in {} days",
                        a.baseline.days
                    ),
                });
            }
        }
        let score = 1.0 - signals.iter().fold(1.0, |k, s| k * (1.0 - s.score));
        if score < hc.min_score {
            return a.alerted_at.is_some_and(|t| t.plus_secs(w) >= s.ts);
        }
        let ips = a.recent.len() as u64;
        let again = match a.alerted_at {
            None => true,
            Some(t) => {
                ips >= a.alerted_ips.saturating_mul(2).max(ips.min(1) + 1)
                    || t.plus_secs(86_400) < s.ts
            }
        };
        a.day.alerted = true;
        if !again {
            return true;
        }
        a.alerted_at = Some(s.ts);
        a.alerted_ips = ips;

        // Evidence.
        let mut by_cc: HashMap<&str, u64> = HashMap::new();
        let mut by_asn: HashMap<u32, u64> = HashMap::new();
        let mut prefixes = Distinct::default();
        let mut shape = [0u64; 5];
        let mut max_per_ip = 0u32;
        for o in &a.recent {
            *by_cc.entry(cc_str(&o.cc)).or_default() += 1;
            *by_asn.entry(o.asn).or_default() += 1;
            prefixes.insert(geo::prefix_key(o.ip));
            let i = match o.msgs {
                0..=1 => 0,
                2..=5 => 1,
                6..=20 => 2,
                21..=100 => 3,
                _ => 4,
            };
            shape[i] += 1;
            max_per_ip = max_per_ip.max(o.msgs);
        }
        let mut top_cc: Vec<(&str, u64)> = by_cc.into_iter().collect();
        top_cc.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
        let mut top_asn: Vec<(u32, u64)> = by_asn.into_iter().collect();
        top_asn.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        let first = a.recent.front().map(|o| o.first).unwrap_or(s.ts);
        // The fast window: first sightings within the last ten minutes.
        let fast = s.ts.plus_secs(-FAST_WINDOW_SECS);
        let ips_fast = a.recent.iter().filter(|o| o.first >= fast).count();
        let mut ccs_fast: Vec<[u8; 2]> = a
            .recent
            .iter()
            .filter(|o| o.first >= fast)
            .map(|o| o.cc)
            .collect();
        ccs_fast.sort_unstable();
        ccs_fast.dedup();
        // Shannon entropy (bits) of the source IPs' countries: 0 for one country, ~4–5 for a
        // botnet spread evenly over 20–30.
        let total = a.recent.len().max(1) as f64;
        let entropy: f64 = top_cc
            .iter()
            .map(|(_, n)| {
                let p = *n as f64 / total;
                -p * p.log2()
            })
            .sum();
        let shape_name = if burst_now || max_per_ip as u64 >= hc.burst_per_minute * 10 {
            "burst"
        } else if ips >= 20 && shape[0] + shape[1] >= ips * 8 / 10 {
            "spread"
        } else {
            "mixed"
        };
        let names: Vec<&str> = signals.iter().map(|s| s.name).collect();
        let summary = format!(
            "{} source IPs in {} countries and {} networks within {} ({} messages, {} shape); signals: {}",
            ips,
            top_cc.len(),
            top_asn.len(),
            hc.window.to_string_h(),
            a.msgs.get(),
            shape_name,
            names.join(", ")
        );
        let samples: Vec<serde_json::Value> = a
            .recent
            .iter()
            .rev()
            .take(10)
            .map(|o| {
                json!({"ip": o.ip.to_string(), "country": cc_str(&o.cc), "asn": o.asn, "messages": o.msgs, "recipients": o.rcpts,
                       "first": o.first.rfc3339(), "last": o.last.rfc3339()})
            })
            .collect();
        out.push(Alert {
            ts: s.ts,
            detector: Detector::AuthHijack,
            entity: Entity::new(EntityKind::Account, s.account),
            score: round3(score),
            summary,
            evidence: json!({
                "signals": signals,
                "source_ips": ips,
                "source_ips_day": a.day.ips.count(),
                "source_ips_10m": ips_fast,
                "countries_10m": ccs_fast.len(),
                "country_entropy_bits": round3(entropy),
                "prefixes": prefixes.count(),
                "new_asns": n_asn,
                "new_countries": n_cc,
                "countries": top_cc.iter().take(15).map(|(c, n)| json!({"country": c, "ips": n})).collect::<Vec<_>>(),
                "asns": top_asn.iter().take(15).map(|(x, n)| json!({"asn": x, "ips": n})).collect::<Vec<_>>(),
                "shape": shape_name,
                "messages_per_ip": {"1": shape[0], "2-5": shape[1], "6-20": shape[2], "21-100": shape[3], ">100": shape[4]},
                "max_messages_one_ip": max_per_ip,
                "max_messages_one_ip_minute": minute_top,
                "first": first.rfc3339(),
                "last": s.ts.rfc3339(),
                "window_secs": w,
                "messages": a.msgs.get(),
                "recipients": a.rcpts.get(),
                "failed_recipients": a.failed.get(),
                "recipient_domains": a.domains.count(),
                "sample_recipients": a.sample_rcpts.iter().collect::<Vec<_>>(),
                "auth_failures": a.auth_failures.get(),
                "baseline": {"days": a.baseline.days, "countries": a.baseline.countries, "asns": a.baseline.asns.len(), "msgs_per_day": round3(a.baseline.msgs_per_day)},
                "population_p999_new_asns": pop_p999,
                "recent_ips": samples,
            }),
        });
        true
    }

    /// The IPs an account used within the window (for campaign correlation).
    pub fn recent_ips(&self, account: &str) -> Vec<IpAddr> {
        self.accounts
            .get(&account.to_string())
            .map(|a| a.recent.iter().map(|o| o.ip).collect())
            .unwrap_or_default()
    }

    /// Approximate heap bytes per tracked account (for the docs' memory statement).
    pub fn approx_bytes(&self) -> usize {
        self.accounts
            .iter()
            .map(|(k, a)| {
                k.len()
                    + std::mem::size_of::<Account>()
                    + a.recent.capacity() * std::mem::size_of::<Obs>()
                    + a.minute.capacity() * std::mem::size_of::<(Ts, IpAddr)>()
                    + a.day.ips.heap_bytes()
                    + a.domains.heap_bytes()
                    + a.sample_rcpts.iter().map(|s| s.len() + 24).sum::<usize>()
                    + a.baseline.countries.len() * 32
                    + a.baseline.asns.len() * 4
            })
            .sum()
    }
}

fn self_is_home(
    countries: &HashMap<[u8; 2], u64>,
    logins: u64,
    cfg: &Config,
    cc: &[u8; 2],
) -> bool {
    let s = cc_str(cc);
    if cfg
        .hijack
        .home_countries
        .iter()
        .any(|h| h.eq_ignore_ascii_case(s))
    {
        return true;
    }
    if logins < 100 {
        return false;
    }
    let n = countries.get(cc).copied().unwrap_or(0);
    (n as f64) / (logins as f64) >= cfg.hijack.home_country_share
}

/// The country of an IP as text, for evidence.
pub fn country_of(geo: &GeoDb, ip: IpAddr) -> Option<Country> {
    geo.lookup_fast(ip).0
}
