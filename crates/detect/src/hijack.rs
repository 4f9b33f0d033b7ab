//! `auth-hijack`: fraudulent SMTP AUTH with stolen passwords.
//!
//! A hijacked account in a botnet's hands is used from hundreds to thousands of source addresses
//! in up to ~30 countries: either a few messages from each of very many addresses ("spread",
//! ~90% of cases), or thousands from single addresses new to the account at several per second
//! for about an hour ("burst", ~10%) (IIJ, Hu et al.). The first sign is therefore the
//! **number of source networks new to the account** within a window, against the account's own
//! history and the population's norm; geography and autonomous systems strengthen it — they
//! lower the count needed — but are never required (a domestic botnet, or networks the geo data
//! does not know, still shows as many new /24s). A burst is a **sustained rate from one address
//! new to the account**, never a spike from an address the account always uses.
//!
//! The code follows that reasoning in three seams:
//! - **baseline learning** ([`Baseline`], [`learn_day`]): the networks, countries, ASNs and
//!   hours of the account's past days, learned only from days without alerts;
//! - **features** ([`Features`]) of the account's window, and **signals** as a pure function of
//!   them ([`signals`]), each with a named score;
//! - **evidence** ([`HijackEvidence`]): what the abuse desk reads.
//!
//! Signals combine as `1 - Π(1 - s)`. Supporting signals (failed logins before, shared botnet
//! addresses, failed recipients, an unusual hour, a foreign country) count only when a primary
//! one (spread, geo-spread, spread-partial, burst) fired.
//!
//! Memory per account is bounded: at most `max_recent_ips` first sightings in the window, capped
//! baseline and day sets, and [`Distinct`] counters that switch to a 256-byte sketch past 64
//! values. Accounts get state only when they send (a failed login for a name never seen creates
//! nothing), and accounts with a learned baseline are protected from eviction by newcomers
//! ([`BoundedMap`](crate::bounded::BoundedMap)).

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;

use geo::{Country, GeoDb};
use maillog::hash::Map as HashMap;
use maillog::Ts;
use serde::{Deserialize, Serialize};

use crate::alert::{round3, Alert, Detector, Entity, EntityKind};
use crate::bounded::Handle;
use crate::cold::{Cold, ColdMap};
use crate::compact::{Rare, RecentStrings};
use crate::config::{self, Config};
use crate::distinct::Distinct;
use crate::window::{Counter, RareCounter};

/// The fast window of the evidence (first sightings within it), seconds.
pub const FAST_WINDOW_SECS: i64 = 600;
/// Countries kept in a baseline.
pub const BASELINE_COUNTRIES: usize = 16;
/// ASNs kept in a baseline.
pub const BASELINE_ASNS: usize = 32;
/// Source networks (/24, /48) kept in a baseline; when full, the one seen on the fewest days
/// gives way.
pub const BASELINE_NETWORKS: usize = 32;
/// Sample recipients kept per account.
pub const SAMPLE_RCPTS: usize = 8;
/// A day whose source ASNs are more diverse than this is not learned into the baseline.
pub const LEARN_MAX_ASNS: usize = 12;
/// A day with more source networks (/24, /48) than this is not learned into the baseline (a
/// person's devices use a handful; a botnet hundreds). Our own idea, like [`LEARN_MAX_ASNS`].
pub const LEARN_MAX_NETWORKS: usize = 32;
/// Countries counted per day.
pub const DAY_COUNTRIES: usize = 64;
/// A minute without a message from an address ends its run: a burst is a rate *sustained*
/// without pause (IIJ: several per second for about an hour).
pub const BURST_RUN_GAP_SECS: i64 = 60;
/// The population norm is this quantile of each account's largest count of new networks (and
/// new ASNs) in a window.
pub const POPULATION_QUANTILE: f64 = 0.999;
/// Account-days with a known country needed before a country's share of them makes it a home
/// country.
pub const HOME_SHARE_MIN_LOGINS: u64 = 100;

/// Score of `spread` at its threshold (reaches [`SPREAD_MAX`] at four times the threshold).
pub const SPREAD_SCORE: f64 = 0.8;
/// Highest score of `spread` and `geo-spread`.
pub const SPREAD_MAX: f64 = 0.99;
/// Score of `geo-spread` on many ASNs in few countries (twice `min_new_asns`).
pub const GEO_SPREAD_ASNS_ONLY_SCORE: f64 = 0.8;
/// Score of `spread-partial`: not enough alone, enough with two supporting signals.
pub const SPREAD_PARTIAL_SCORE: f64 = 0.4;
/// Score of `burst`: enough alone.
pub const BURST_SCORE: f64 = 0.85;
/// Score of `new-country` (the burst's address is in a country foreign to the account and the
/// population).
pub const NEW_COUNTRY_SCORE: f64 = 0.3;
/// Score of `campaign-ips`.
pub const CAMPAIGN_IPS_SCORE: f64 = 0.6;
/// Score of `auth-failures-before`.
pub const AUTH_FAILURES_SCORE: f64 = 0.3;
/// Score of `failures` (failed recipients).
pub const FAILURES_SCORE: f64 = 0.3;
/// Score of `unusual-hour`.
pub const UNUSUAL_HOUR_SCORE: f64 = 0.1;

/// `spread-partial`: at least this many addresses…
pub const PARTIAL_MIN_IPS: u64 = 4;
/// …from this many new ASNs…
pub const PARTIAL_MIN_ASNS: u64 = 3;
/// …in this many new countries (or half of `min_new_networks` new networks without geo).
pub const PARTIAL_MIN_COUNTRIES: u64 = 2;
/// `auth-failures-before`: failed logins to the account within the window.
pub const AUTH_FAILURES_MIN: u64 = 5;
/// `campaign-ips`: addresses shared with accounts already flagged.
pub const CAMPAIGN_IPS_MIN: u32 = 2;
/// `failures`: recipients in the window before their failure share counts…
pub const FAILURES_MIN_RCPTS: u64 = 10;
/// `unusual-hour`: days learned before an unused hour of day means something.
pub const UNUSUAL_HOUR_MIN_DAYS: u32 = 7;

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
    /// Source networks (`geo::prefix_key`: /24 for IPv4, /48 for IPv6) with the days each was
    /// seen. Absent in state files written before it existed.
    #[serde(default)]
    pub networks: Vec<(u64, u32)>,
}

/// The baseline of an account that has learned no day yet.
static NO_BASELINE: Baseline = Baseline {
    countries: Vec::new(),
    asns: Vec::new(),
    days: 0,
    msgs_per_day: 0.0,
    hours: Vec::new(),
    networks: Vec::new(),
};

impl Account {
    /// The learned baseline ([`NO_BASELINE`] before the first learned day).
    fn baseline(&self) -> &Baseline {
        self.baseline.get().unwrap_or(&NO_BASELINE)
    }
}

impl Baseline {
    fn has_country(&self, c: &str) -> bool {
        self.countries.iter().any(|(x, _)| x == c)
    }
    /// [`Baseline::has_country`] of a code as an address's look-up gives it: compared as bytes
    /// when ASCII (always, from the geo table), without a UTF-8 check for each address.
    fn has_country_code(&self, c: &[u8; 2]) -> bool {
        if c.is_ascii() {
            self.countries.iter().any(|(x, _)| x.as_bytes() == c)
        } else {
            self.has_country(cc_str(c))
        }
    }
    fn has_asn(&self, a: u32) -> bool {
        self.asns.contains(&a)
    }
    fn has_network(&self, n: u64) -> bool {
        self.networks.iter().any(|(x, _)| *x == n)
    }
}

/// One source address of an account within the window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Obs {
    first: Ts,
    last: Ts,
    ip: IpAddr,
    net: u64,
    asn: u32,
    cc: [u8; 2],
    msgs: u32,
    rcpts: u32,
    /// Start of the current run of messages (no gap over [`BURST_RUN_GAP_SECS`]).
    run_start: Ts,
    /// Messages in the current run.
    run_msgs: u64,
}

/// Hours in a day.
const HOURS: usize = 24;
/// Bits of an [`Hours`] entry below its hour: the count (saturating at 134,217,727 messages in
/// one hour of one account's day), the hour (0-23) above.
const HOUR_SHIFT: u32 = 27;
/// Largest count an [`Hours`] entry holds.
const HOUR_COUNT_MAX: u32 = (1 << HOUR_SHIFT) - 1;

/// Messages per hour of day (UTC) of one day, only the hours with messages: one `u32` each, the
/// hour in the top bits and the count below ([`HOUR_SHIFT`]). A person sends in a few hours of
/// a day; the 24 counts were 96 bytes in every account. Serialized as the 24 counts, as before.
#[derive(Debug, Clone, Default, PartialEq)]
struct Hours(Box<[u32]>);

impl Hours {
    /// Count `n` messages in `hour`.
    fn add(&mut self, hour: usize, n: u32) {
        if n == 0 || hour >= HOURS {
            return;
        }
        let key = (hour as u32) << HOUR_SHIFT;
        if let Some(e) = self.0.iter_mut().find(|e| **e >> HOUR_SHIFT == hour as u32) {
            *e = key | (*e & HOUR_COUNT_MAX).saturating_add(n).min(HOUR_COUNT_MAX);
            return;
        }
        // Exactly one more: at most 24 a day, most days a few.
        let mut v = std::mem::take(&mut self.0).into_vec();
        v.reserve_exact(1);
        v.push(key | n.min(HOUR_COUNT_MAX));
        self.0 = v.into_boxed_slice();
    }

    /// The 24 counts.
    fn counts(&self) -> [u32; HOURS] {
        let mut c = [0; HOURS];
        for e in self.0.iter() {
            c[(e >> HOUR_SHIFT) as usize] = e & HOUR_COUNT_MAX;
        }
        c
    }
}

impl Serialize for Hours {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.counts().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut h = Hours::default();
        for (hour, n) in <[u32; HOURS]>::deserialize(d)?.into_iter().enumerate() {
            h.add(hour, n);
        }
        Ok(h)
    }
}

/// The account's current day, learned into the baseline when it ends.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Day {
    start: Option<Ts>,
    ips: Distinct,
    asns: Vec<u32>,
    asns_overflow: bool,
    /// Networks used this day, with when each was first used.
    networks: Vec<(u64, Ts)>,
    networks_overflow: bool,
    countries: Vec<([u8; 2], u32)>,
    msgs: u64,
    hours: Hours,
    alerted: bool,
}

impl Day {
    fn note(&mut self, ts: Ts, msgs: u32, src: Option<&Source>) {
        let hour = (ts.secs().rem_euclid(86_400) / 3600) as usize;
        self.msgs += msgs as u64;
        self.hours.add(hour, msgs);
        let Some(src) = src else { return };
        self.ips.insert(ip_key(src.ip));
        if !self.networks.iter().any(|(n, _)| *n == src.net) {
            if self.networks.len() < LEARN_MAX_NETWORKS {
                crate::compact::push(&mut self.networks, (src.net, ts));
            } else {
                self.networks_overflow = true;
            }
        }
        if let Some(asn) = src.asn {
            if !self.asns.contains(&asn) {
                if self.asns.len() < LEARN_MAX_ASNS {
                    crate::compact::push(&mut self.asns, asn);
                } else {
                    self.asns_overflow = true;
                }
            }
        }
        if let Some(c) = src.cc {
            if let Some(e) = self.countries.iter_mut().find(|(x, _)| *x == c) {
                e.1 += 1;
            } else if self.countries.len() < DAY_COUNTRIES {
                crate::compact::push(&mut self.countries, (c, 1));
            }
        }
    }

    /// Whether the day is fit to learn: no alert, and no more networks than a person uses.
    fn learnable(&self) -> bool {
        !self.alerted
            && !self.asns_overflow
            && !self.networks_overflow
            && self.asns.len() <= LEARN_MAX_ASNS
    }
}

/// Learn a finished day into the baseline (when [`Day::learnable`]).
fn learn_day(b: &mut Baseline, d: &Day) {
    if !d.learnable() {
        return;
    }
    for (c, _) in &d.countries {
        let cs = cc_str(c).to_string();
        if let Some(e) = b.countries.iter_mut().find(|(x, _)| *x == cs) {
            e.1 += 1;
        } else if b.countries.len() < BASELINE_COUNTRIES {
            crate::compact::push(&mut b.countries, (cs, 1));
        }
    }
    for asn in &d.asns {
        if !b.asns.contains(asn) && b.asns.len() < BASELINE_ASNS {
            crate::compact::push(&mut b.asns, *asn);
        }
    }
    for (n, _) in &d.networks {
        if let Some(e) = b.networks.iter_mut().find(|(x, _)| x == n) {
            e.1 += 1;
        } else if b.networks.len() < BASELINE_NETWORKS {
            crate::compact::push(&mut b.networks, (*n, 1));
        } else if let Some(least) = b.networks.iter_mut().min_by_key(|(_, days)| *days) {
            *least = (*n, 1);
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
    for (h, n) in d.hours.counts().iter().enumerate() {
        b.hours[h] = b.hours[h].saturating_add(*n);
    }
}

/// Where an account's population-norm contribution stands.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct NormShare {
    /// Largest count of new networks in one window so far.
    max_new_networks: u32,
    /// Largest count of new ASNs in one window so far.
    max_new_asns: u32,
    /// Taken out of the norm (the account was flagged: a hijack is not the population's norm).
    withdrawn: bool,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Account {
    recent: VecDeque<Obs>,
    day: Day,
    /// Absent until a first day was learned (most accounts of a day-old state have none).
    baseline: Rare<Baseline>,
    rcpts: Counter,
    /// Failed recipients and failed logins: absent while none (most accounts).
    failed: RareCounter,
    msgs: Counter,
    auth_failures: RareCounter,
    sample_rcpts: RecentStrings,
    domains: Distinct,
    alerted_ips: u64,
    alerted_at: Option<Ts>,
    norm: NormShare,
    campaign_hits: u32,
}

/// Histogram of one per-account maximum over the population.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Histogram {
    #[serde(with = "crate::snapshot::array")]
    buckets: [u64; 65],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: [0; 65] }
    }
}

impl Histogram {
    fn slot(v: u32) -> usize {
        (v as usize).min(64)
    }
    fn add(&mut self, v: u32) {
        self.buckets[Self::slot(v)] += 1;
    }
    fn remove(&mut self, v: u32) {
        let s = Self::slot(v);
        self.buckets[s] = self.buckets[s].saturating_sub(1);
    }
    fn raise(&mut self, from: u32, to: u32) {
        if Self::slot(from) != Self::slot(to) {
            self.remove(from);
            self.add(to);
        }
    }
    /// Smallest value v such that at least `q` of the `n` accounts are ≤ v.
    fn quantile(&self, n: u64, q: f64) -> u32 {
        let need = (n as f64 * q).ceil() as u64;
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

/// The population's norm: how many new networks and ASNs an ordinary account shows in a window.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Population {
    networks: Histogram,
    asns: Histogram,
    accounts: u64,
}

/// The population's norm at one moment (its [`POPULATION_QUANTILE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Norm {
    /// New networks (/24, /48) per window.
    pub new_networks: u32,
    /// New ASNs per window.
    pub new_asns: u32,
}

impl Population {
    fn add_account(&mut self) {
        self.accounts += 1;
        self.networks.add(0);
        self.asns.add(0);
    }
    fn update(&mut self, share: &mut NormShare, new_networks: u32, new_asns: u32) {
        if share.withdrawn {
            return;
        }
        if new_networks > share.max_new_networks {
            self.networks.raise(share.max_new_networks, new_networks);
            share.max_new_networks = new_networks;
        }
        if new_asns > share.max_new_asns {
            self.asns.raise(share.max_new_asns, new_asns);
            share.max_new_asns = new_asns;
        }
    }
    fn withdraw(&mut self, share: &mut NormShare) {
        if share.withdrawn {
            return;
        }
        self.networks.remove(share.max_new_networks);
        self.asns.remove(share.max_new_asns);
        self.accounts = self.accounts.saturating_sub(1);
        share.withdrawn = true;
    }
    fn norm(&self, min_accounts: u64) -> Option<Norm> {
        (self.accounts >= min_accounts).then(|| Norm {
            new_networks: self.networks.quantile(self.accounts, POPULATION_QUANTILE),
            new_asns: self.asns.quantile(self.accounts, POPULATION_QUANTILE),
        })
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

/// Counters of the detector's state, for `--stats` and the service's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HijackStats {
    /// Accounts with state.
    pub tracked: u64,
    /// Accounts whose state was dropped because of `[detect.limits] max_entities`.
    pub evicted: u64,
    /// …of which had a learned baseline.
    pub evicted_established: u64,
    /// Failed logins for names without state, not counted against any account.
    pub failures_unknown_account: u64,
    /// Accounts in the population norm.
    pub population_accounts: u64,
}

/// The detector's state.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Hijack {
    /// Live while active, packed when idle `[detect.limits] pack_idle_after` ([`Hijack::freeze_idle`]).
    accounts: ColdMap<String, Account>,
    population: Population,
    countries: HashMap<[u8; 2], u64>,
    logins: u64,
    failures_unknown: u64,
    /// Reused lists of [`Hijack::features`] (three allocations per message sent before). Not
    /// state: empty between calls.
    #[serde(skip)]
    scratch: Scratch,
}

/// The new networks, autonomous systems and countries of an account's recent addresses, while
/// [`Hijack::features`] counts them.
#[derive(Debug, Default)]
struct Scratch {
    nets: Vec<u64>,
    asns: Vec<u32>,
    ccs: Vec<[u8; 2]>,
    /// A bit per two-byte country code, all clear between calls ([`distinct_codes`]).
    cc_seen: Vec<u64>,
    /// The table [`DistinctCounter`] counts networks and autonomous systems in.
    counter: DistinctCounter,
}

/// Lists [`DistinctCounter::count`] sorts instead of hashing: a short sort costs less than a
/// table's probes.
const SORT_DISTINCT_UP_TO: usize = 16;

/// Counts the distinct values of a list in an open-addressing table of at least twice the
/// list's length, reused from call to call: a slot holds a value and the call that wrote it,
/// so the table is never cleared. A hijacked account's window holds up to `max_recent_ips`
/// addresses, and their networks and AS numbers were sorted to be counted at every message
/// it sent (0.9% of `analyze`'s instructions on the benchmark log, docs/PERFORMANCE.md).
#[derive(Debug, Default)]
struct DistinctCounter {
    /// `(value, call)`: occupied in this call when `call` is the current one.
    slots: Vec<(u64, u32)>,
    /// The current call's number (never 0, which marks a slot never written).
    call: u32,
}

impl DistinctCounter {
    /// The number of distinct values in `v` (which a short list gets sorted for).
    fn count<T: Copy + Ord + Into<u64>>(&mut self, v: &mut [T]) -> u64 {
        if v.len() <= SORT_DISTINCT_UP_TO {
            return distinct(v);
        }
        let bits = (2 * v.len()).next_power_of_two().trailing_zeros();
        if self.slots.len() < 1 << bits {
            self.slots = vec![(0, 0); 1 << bits];
            self.call = 0;
        }
        self.call = self.call.checked_add(1).unwrap_or_else(|| {
            self.slots.fill((0, 0));
            1
        });
        let mask = (1usize << bits) - 1;
        let mut n = 0;
        for &x in v.iter() {
            let x: u64 = x.into();
            // Fibonacci hashing: the product's top bits, spread over the table's size.
            let mut i = (x.wrapping_mul(FIBONACCI) >> (64 - bits)) as usize;
            loop {
                let slot = &mut self.slots[i];
                if slot.1 != self.call {
                    *slot = (x, self.call);
                    n += 1;
                    break;
                }
                if slot.0 == x {
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        n
    }
}

/// 2^64 divided by the golden ratio: [`DistinctCounter`]'s multiplier.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// Words of [`Scratch::cc_seen`]: a bit for each of the 65,536 two-byte codes.
const CODE_WORDS: usize = (1 << 16) / 64;

/// The number of distinct codes in `v`, marked in `seen` (a bit per code, clear before and
/// after): countries come interleaved from a botnet's addresses, and sorting them to count
/// was a third of the sorts of [`Hijack::features`] (docs/PERFORMANCE.md, "Steps of
/// 2026-12-07, afternoon").
fn distinct_codes(v: &[[u8; 2]], seen: &mut Vec<u64>) -> u64 {
    if seen.len() != CODE_WORDS {
        *seen = vec![0; CODE_WORDS];
    }
    let at = |c: &[u8; 2]| {
        let i = usize::from(u16::from_be_bytes(*c));
        (i / 64, 1u64 << (i % 64))
    };
    let mut n = 0;
    for c in v {
        let (w, bit) = at(c);
        if seen[w] & bit == 0 {
            seen[w] |= bit;
            n += 1;
        }
    }
    for c in v {
        seen[at(c).0] = 0;
    }
    n
}

/// The number of distinct values in `v`, sorted in place to count them.
fn distinct<T: Ord>(v: &mut [T]) -> u64 {
    v.sort_unstable();
    v.windows(2).filter(|w| w[0] != w[1]).count() as u64 + u64::from(!v.is_empty())
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

/// The network of an address as text: `192.0.2.0/24`, `2001:db8:1::/48`.
fn network_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// The signals of `auth-hijack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignalKind {
    /// Many source networks new to the account within the window (geography not needed).
    Spread,
    /// Many ASNs and countries new to the account within the window.
    GeoSpread,
    /// Some new networks: not enough alone.
    SpreadPartial,
    /// A sustained rate from one address new to the account.
    Burst,
    /// The burst's address is in a country foreign to the account and the population.
    NewCountry,
    /// Source addresses used by accounts already flagged.
    CampaignIps,
    /// Failed logins to the account before it sent.
    AuthFailuresBefore,
    /// Many failed recipients.
    Failures,
    /// Active at an hour the account never uses.
    UnusualHour,
}

impl SignalKind {
    /// The name in alerts and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Spread => "spread",
            SignalKind::GeoSpread => "geo-spread",
            SignalKind::SpreadPartial => "spread-partial",
            SignalKind::Burst => "burst",
            SignalKind::NewCountry => "new-country",
            SignalKind::CampaignIps => "campaign-ips",
            SignalKind::AuthFailuresBefore => "auth-failures-before",
            SignalKind::Failures => "failures",
            SignalKind::UnusualHour => "unusual-hour",
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signal that fired, with its partial score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Which.
    pub name: SignalKind,
    /// Partial score.
    pub score: f64,
    /// Why, in words.
    pub detail: String,
}

/// How an address stands to the account's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Novelty {
    /// Its network is in the learned baseline, or was used earlier the same day.
    Known,
    /// The account has a history, and this network is not in it.
    New,
    /// The account has no history before this address: newness cannot be told.
    NoHistory,
}

impl Novelty {
    /// The name in evidence: `known`, `new` or `no-history`.
    pub fn as_str(self) -> &'static str {
        match self {
            Novelty::Known => "known",
            Novelty::New => "new",
            Novelty::NoHistory => "no-history",
        }
    }
}

impl fmt::Display for Novelty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run of messages from one address at a sustained rate (the burst candidate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// The address.
    pub ip: IpAddr,
    /// Messages in the run.
    pub msgs: u64,
    /// Seconds from the run's first message to its latest.
    pub secs: f64,
    /// The address against the account's history.
    pub novelty: Novelty,
    /// Its country, when foreign to the account and not a home country of the population.
    pub foreign_country: Option<[u8; 2]>,
    /// Its AS (0 unknown).
    pub asn: u32,
}

/// Features of an account's window: the input of [`signals`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Source addresses in the window.
    pub ips: u64,
    /// Source networks (/24, /48) in the window not in the baseline.
    pub new_networks: u64,
    /// ASNs in the window not in the baseline (0 without geo data).
    pub new_asns: u64,
    /// Countries in the window not in the baseline (0 without geo data).
    pub new_countries: u64,
    /// The current address's run, when it lasted `burst_sustain` at `burst_per_minute` or more.
    pub run: Option<Run>,
    /// Failed logins to the account in the window.
    pub auth_failures: u64,
    /// Its addresses used by accounts already flagged.
    pub campaign_hits: u32,
    /// Recipients in the window…
    pub rcpts: u64,
    /// …of which failed.
    pub failed: u64,
    /// Days in the baseline.
    pub baseline_days: u32,
    /// The hour of day (UTC) now, when the account never used it in its learned days.
    pub unused_hour: Option<usize>,
    /// The population's norm, once enough accounts are seen.
    pub norm: Option<Norm>,
}

/// Score growing from `base` at `threshold` to [`SPREAD_MAX`] at four times `threshold`.
fn graded(base: f64, n: u64, threshold: u64) -> f64 {
    let extra = n.saturating_sub(threshold) as f64 / (3.0 * threshold.max(1) as f64);
    base + (SPREAD_MAX - base) * extra.min(1.0)
}

/// The signals that fire on `f` with settings `hc`: a pure function of the window.
pub fn signals(f: &Features, hc: &config::Hijack) -> Vec<Signal> {
    let mut out = Vec::new();
    let win = hc.window.human();
    let above_norm_nets = f
        .norm
        .is_none_or(|p| f.new_networks > p.new_networks as u64);
    let above_norm_asns = f.norm.is_none_or(|p| f.new_asns > p.new_asns as u64);
    // Spread: new networks counted without any geography.
    if above_norm_nets && f.new_networks >= hc.min_new_networks {
        out.push(Signal {
            name: SignalKind::Spread,
            score: graded(SPREAD_SCORE, f.new_networks, hc.min_new_networks),
            detail: format!(
                "{} IPs from {} networks (/24, /48) new to the account within {win}",
                f.ips, f.new_networks
            ),
        });
    }
    // Geography lowers the count needed: few networks, but in many new ASNs and countries.
    if above_norm_asns && f.new_asns >= hc.min_new_asns && f.new_countries >= hc.min_new_countries {
        out.push(Signal {
            name: SignalKind::GeoSpread,
            score: graded(SPREAD_SCORE, f.new_asns, hc.min_new_asns),
            detail: format!(
                "{} IPs from {} new networks (ASNs) in {} new countries within {win}",
                f.ips, f.new_asns, f.new_countries
            ),
        });
    } else if above_norm_asns && f.new_asns >= 2 * hc.min_new_asns {
        out.push(Signal {
            name: SignalKind::GeoSpread,
            score: GEO_SPREAD_ASNS_ONLY_SCORE,
            detail: format!(
                "{} IPs from {} new networks (ASNs) within {win}",
                f.ips, f.new_asns
            ),
        });
    }
    if out.is_empty()
        && ((f.new_asns >= PARTIAL_MIN_ASNS
            && f.new_countries >= PARTIAL_MIN_COUNTRIES
            && f.ips >= PARTIAL_MIN_IPS)
            || f.new_networks >= hc.min_new_networks.div_ceil(2).max(PARTIAL_MIN_IPS))
    {
        out.push(Signal {
            name: SignalKind::SpreadPartial,
            score: SPREAD_PARTIAL_SCORE,
            detail: format!(
                "{} IPs from {} new networks ({} new ASNs) in {} new countries",
                f.ips, f.new_networks, f.new_asns, f.new_countries
            ),
        });
    }
    if let Some(r) = &f.run {
        let rate = r.msgs as f64 * 60.0 / r.secs.max(1.0);
        let why = match (r.novelty, r.foreign_country) {
            (Novelty::New, _) => Some("an address new to the account"),
            (Novelty::NoHistory, Some(_)) => {
                Some("an account without history, from a country foreign to the population")
            }
            _ => None,
        };
        if let Some(why) = why {
            out.push(Signal {
                name: SignalKind::Burst,
                score: BURST_SCORE,
                detail: format!(
                    "{} messages in {:.0}s ({rate:.0} per minute, sustained) from {}, {why}",
                    r.msgs, r.secs, r.ip
                ),
            });
            if let Some(c) = r.foreign_country {
                out.push(Signal {
                    name: SignalKind::NewCountry,
                    score: NEW_COUNTRY_SCORE,
                    detail: format!(
                        "{} is in {} (AS{}), a country neither the account's nor a home country",
                        r.ip,
                        cc_str(&c),
                        r.asn
                    ),
                });
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    if f.auth_failures >= AUTH_FAILURES_MIN {
        out.push(Signal {
            name: SignalKind::AuthFailuresBefore,
            score: AUTH_FAILURES_SCORE,
            detail: format!(
                "{} failed logins to the account within {win}",
                f.auth_failures
            ),
        });
    }
    if f.campaign_hits >= CAMPAIGN_IPS_MIN {
        out.push(Signal {
            name: SignalKind::CampaignIps,
            score: CAMPAIGN_IPS_SCORE,
            detail: format!(
                "{} of its source IPs were used by accounts already flagged",
                f.campaign_hits
            ),
        });
    }
    if f.rcpts >= FAILURES_MIN_RCPTS && f.failed * 2 >= f.rcpts {
        out.push(Signal {
            name: SignalKind::Failures,
            score: FAILURES_SCORE,
            detail: format!("{} of {} recipients failed within {win}", f.failed, f.rcpts),
        });
    }
    if let Some(hour) = f.unused_hour {
        out.push(Signal {
            name: SignalKind::UnusualHour,
            score: UNUSUAL_HOUR_SCORE,
            detail: format!(
                "active at {hour:02}:00 UTC, an hour it never used in {} days",
                f.baseline_days
            ),
        });
    }
    out
}

/// The combined score `1 - Π(1 - s)`.
pub fn combined(signals: &[Signal]) -> f64 {
    1.0 - signals.iter().fold(1.0, |k, s| k * (1.0 - s.score))
}

/// How the account's sending is spread over its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Most messages from one address at a high rate.
    Burst,
    /// Few messages from each of many addresses.
    Spread,
    /// Neither.
    Mixed,
}

/// Source addresses of one country.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountryIps {
    /// ISO code (`--` unknown).
    pub country: String,
    /// Addresses.
    pub ips: u64,
}

/// Source addresses of one AS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsnIps {
    /// AS number (0 unknown).
    pub asn: u32,
    /// Addresses.
    pub ips: u64,
}

/// Addresses by messages sent from each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerIp {
    /// One message.
    #[serde(rename = "1")]
    pub one: u64,
    /// 2–5.
    #[serde(rename = "2-5")]
    pub few: u64,
    /// 6–20.
    #[serde(rename = "6-20")]
    pub some: u64,
    /// 21–100.
    #[serde(rename = "21-100")]
    pub many: u64,
    /// More.
    #[serde(rename = ">100")]
    pub lots: u64,
}

/// One of the latest source addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpSample {
    /// Address.
    pub ip: String,
    /// Its network (/24, /48).
    pub network: String,
    /// Country (`--` unknown).
    pub country: String,
    /// AS (0 unknown).
    pub asn: u32,
    /// Messages.
    pub messages: u32,
    /// Recipients.
    pub recipients: u32,
    /// First seen in the window.
    pub first: String,
    /// Last seen.
    pub last: String,
}

/// The current burst run of the address that triggered the alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurstRun {
    /// Address.
    pub ip: String,
    /// Messages in the run.
    pub messages: u64,
    /// Seconds it lasted so far.
    pub secs: f64,
    /// Messages per minute over the run.
    pub per_minute: f64,
    /// The address against the account's history: `known`, `new` or `no-history`.
    pub address: Novelty,
}

/// The baseline, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSummary {
    /// Days learned.
    pub days: u32,
    /// Countries with days seen.
    pub countries: Vec<(String, u32)>,
    /// ASNs known.
    pub asns: usize,
    /// Networks known.
    pub networks: usize,
    /// Messages per day.
    pub msgs_per_day: f64,
}

/// Evidence of an `auth-hijack` alert (its `evidence` JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HijackEvidence {
    /// The signals that fired.
    pub signals: Vec<Signal>,
    /// Source addresses in the window.
    pub source_ips: u64,
    /// Source addresses today.
    pub source_ips_day: u64,
    /// First seen in the last ten minutes.
    pub source_ips_10m: u64,
    /// Their countries.
    pub countries_10m: u64,
    /// Shannon entropy (bits) of the addresses' countries: 0 for one country, ~4–5 for a botnet
    /// spread evenly over 20–30.
    pub country_entropy_bits: f64,
    /// Networks (/24, /48) in the window.
    pub prefixes: u64,
    /// …new to the account.
    pub new_networks: u64,
    /// ASNs new to the account.
    pub new_asns: u64,
    /// Countries new to the account.
    pub new_countries: u64,
    /// Top countries.
    pub countries: Vec<CountryIps>,
    /// Top ASNs.
    pub asns: Vec<AsnIps>,
    /// Shape.
    pub shape: Shape,
    /// Addresses by messages sent.
    pub messages_per_ip: PerIp,
    /// Most messages from one address in the window.
    pub max_messages_one_ip: u32,
    /// The triggering address's sustained run, when it has one.
    pub burst_run: Option<BurstRun>,
    /// First sighting in the window.
    pub first: String,
    /// Now.
    pub last: String,
    /// Window, seconds.
    pub window_secs: i64,
    /// Messages in the window.
    pub messages: u64,
    /// Recipients.
    pub recipients: u64,
    /// Failed recipients.
    pub failed_recipients: u64,
    /// Distinct recipient domains.
    pub recipient_domains: u64,
    /// Sample recipients.
    pub sample_recipients: Vec<String>,
    /// Failed logins in the window.
    pub auth_failures: u64,
    /// The baseline.
    pub baseline: BaselineSummary,
    /// Population norm of new ASNs.
    pub population_p999_new_asns: Option<u32>,
    /// Population norm of new networks.
    pub population_p999_new_networks: Option<u32>,
    /// Latest addresses.
    pub recent_ips: Vec<IpSample>,
    /// Every source address of the window, oldest first (at most `max_recent_ips`): the
    /// addresses campaign correlation joins on, so that it can run over the alert stream
    /// ([`crate::campaign::Correlator`]). Empty in alerts stored before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub window_ips: Vec<String>,
}

/// What the geo data says about a source address.
#[derive(Debug, Clone, Copy)]
struct Source {
    ip: IpAddr,
    net: u64,
    cc: Option<[u8; 2]>,
    asn: Option<u32>,
}

impl Hijack {
    /// Empty state.
    pub fn new(cfg: &Config) -> Self {
        Hijack {
            accounts: ColdMap::new(cfg.limits.max_entities),
            population: Population::default(),
            countries: HashMap::default(),
            logins: 0,
            failures_unknown: 0,
            scratch: Scratch::default(),
        }
    }

    /// Accounts tracked.
    pub fn tracked(&self) -> usize {
        self.accounts.len()
    }

    /// Counters.
    pub fn stats(&self) -> HijackStats {
        HijackStats {
            tracked: self.accounts.len() as u64,
            evicted: self.accounts.evicted(),
            evicted_established: self.accounts.evicted_protected(),
            failures_unknown_account: self.failures_unknown,
            population_accounts: self.population.accounts,
        }
    }

    /// The population's norm now (None until `population_min_accounts` accounts are seen).
    pub fn norm(&self, cfg: &Config) -> Option<Norm> {
        self.population.norm(cfg.hijack.population_min_accounts)
    }

    /// Count a failed login against an account (credential guessing before a hijack). Only
    /// accounts that already have state (they sent mail) count it: a failure for a name never
    /// seen creates nothing, so invented names cannot flush real accounts.
    pub fn auth_failure(&mut self, cfg: &Config, ts: Ts, account: &str) {
        match self.accounts.get_mut(account) {
            Some(a) => a.thaw().auth_failures.add(ts, 1, cfg.hijack.window.0),
            None => self.failures_unknown += 1,
        }
    }

    /// Pack the state of the accounts not touched since `before` ([`crate::cold`]: the
    /// next event of such an account decodes it; detection is the same either way).
    pub fn freeze_idle(&mut self, sweep: impl Into<crate::cold::Sweep>) {
        self.accounts.freeze_idle(sweep);
    }

    /// [`Self::freeze_idle`], the compressing left to the caller
    /// ([`crate::cold::ColdMap::freeze_idle_deferred`]).
    pub fn freeze_idle_deferred(
        &mut self,
        sweep: impl Into<crate::cold::Sweep>,
    ) -> Option<crate::cold::PackWork<String>> {
        self.accounts.freeze_idle_deferred(sweep)
    }

    /// Put back accounts' states compressed elsewhere ([`crate::cold::ColdMap::packed_back`]).
    pub fn packed_back(&mut self, work: crate::cold::PackWork<String>) {
        self.accounts.packed_back(work);
    }

    /// Accounts whose state is packed, and the dictionary they are compressed with.
    pub fn packing(&self) -> crate::cold::Packing {
        self.accounts.packing()
    }

    /// Accounts whose state the last sweep left packed ([`crate::cold::ColdMap::swept`]).
    pub fn swept(&self) -> crate::cold::Swept {
        self.accounts.swept()
    }

    /// Baselines, for saving.
    pub fn baselines(&self) -> Vec<(String, Baseline)> {
        let mut v: Vec<(String, Baseline)> = self
            .accounts
            .iter()
            .filter_map(|(k, a)| {
                let a = a.view();
                (a.baseline().days > 0).then(|| (k.clone(), a.baseline().clone()))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Load saved baselines.
    pub fn restore(&mut self, items: Vec<(String, Baseline)>, at: Ts) {
        for (k, b) in items {
            let pop = &mut self.population;
            let a = self
                .accounts
                .get_or_insert_with(&k, at, || {
                    pop.add_account();
                    Cold::default()
                })
                .thaw();
            a.baseline.set(b);
            if a.baseline().days > 0 {
                self.accounts.protect(&k);
            }
        }
    }

    fn source(&self, geo: &GeoDb, ip: Option<IpAddr>) -> Option<Source> {
        let ip = ip?;
        let (cc, asn) = geo.lookup_fast(ip);
        let cc = cc.map(|c| c.0);
        // A loopback source is a local webmail or content filter, unless the operator's geo
        // overrides give it a country or network (test rigs map 127.x ranges that way).
        if ip.is_loopback() && cc.is_none() && asn.is_none() {
            return None;
        }
        Some(Source {
            ip,
            net: geo::prefix_key(ip),
            cc,
            asn,
        })
    }

    /// Observe one send. Alerts go to `out`; the returned value says whether the account is
    /// (now) flagged, for campaign correlation.
    ///
    /// The steps: `enter` (the account's state, its finished day learned into the baseline),
    /// `note_send` (the window), `features` and [`signals`] (the judgement), `again` (whether
    /// it is worth another alert) and `hijack_alert`.
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
        let src = self.source(geo, s.ip);
        let key = s.account;
        let at = self.enter(key, s.ts);
        let Some(a) = self.accounts.at_mut(at).map(Cold::thaw) else {
            return false;
        };
        let new_country_today = new_country_today(a, src.as_ref(), s.msgs);
        let changed = note_send(a, hc, s, src.as_ref(), &campaign_ip);
        let flagged_now = a
            .alerted_at
            .is_some_and(|t| t.plus_secs(hc.window.0) >= s.ts);
        if let Some(c) = new_country_today {
            *self.countries.entry(c).or_default() += 1;
            self.logins += 1;
        }
        if !changed {
            return flagged_now;
        }
        let features = self.features(cfg, at, s, src.as_ref());
        let sigs = signals(&features, hc);
        let score = combined(&sigs);
        let Some(a) = self.accounts.at_mut(at).map(Cold::thaw) else {
            return false;
        };
        if score < hc.min_score {
            return flagged_now;
        }
        a.day.alerted = true;
        self.population.withdraw(&mut a.norm);
        if !again(a, s.ts) {
            return true;
        }
        a.alerted_at = Some(s.ts);
        a.alerted_ips = a.recent.len() as u64;
        out.push(hijack_alert(a, hc, s, &features, sigs, score));
        true
    }

    /// Where the state of account `key` is at `ts`, created when new, with a finished day
    /// learned into its baseline (an account that now has a baseline is protected from
    /// eviction). Good until the next account is entered.
    fn enter(&mut self, key: &str, ts: Ts) -> Handle {
        let pop = &mut self.population;
        let at = self.accounts.entry_with(key, ts, || {
            pop.add_account();
            Cold::default()
        });
        let a = self.accounts.at_mut(at).expect("made just now").thaw();
        if !roll_day(a, ts) {
            return at;
        }
        self.accounts.protect(key);
        self.accounts
            .find(key)
            .expect("present: inserted or found above")
    }

    /// The features of the window of the account at `at` after the send `s` (and update the
    /// population norm).
    fn features(
        &mut self,
        cfg: &Config,
        at: Handle,
        s: &Send<'_>,
        src: Option<&Source>,
    ) -> Features {
        let hc = &cfg.hijack;
        let home = |c: &[u8; 2]| is_home(&self.countries, self.logins, hc, c);
        let Some(a) = self.accounts.at_mut(at).map(|a| &*a.thaw()) else {
            return Features::empty();
        };
        let b = a.baseline();
        let Scratch {
            nets,
            asns,
            ccs,
            cc_seen,
            counter,
        } = &mut self.scratch;
        nets.clear();
        asns.clear();
        ccs.clear();
        // A value equal to the one pushed just before is left out: the count of distinct
        // values is the same, and the sorts below get shorter lists (an account's addresses
        // come in runs from one network, AS and country).
        for o in &a.recent {
            if nets.last() != Some(&o.net) && !b.has_network(o.net) {
                nets.push(o.net);
            }
            if o.asn != 0 && asns.last() != Some(&o.asn) && !b.has_asn(o.asn) {
                asns.push(o.asn);
            }
            if o.cc != *b"--" && ccs.last() != Some(&o.cc) && !b.has_country_code(&o.cc) {
                ccs.push(o.cc);
            }
        }
        let (new_networks, new_asns, new_countries) = (
            counter.count(nets),
            counter.count(asns),
            distinct_codes(ccs, cc_seen),
        );
        let run = src.and_then(|src| {
            let o = a.recent.iter().rev().find(|o| o.ip == src.ip)?;
            sustained(o, hc)?;
            let foreign_country = src.cc.filter(|c| {
                !b.has_country_code(c) && !home(c) && src.asn.is_none_or(|x| !b.has_asn(x))
            });
            Some(Run {
                ip: o.ip,
                msgs: o.run_msgs,
                secs: run_secs(o),
                novelty: novelty(a, o),
                foreign_country,
                asn: o.asn,
            })
        });
        let hour = (s.ts.secs().rem_euclid(86_400) / 3600) as usize;
        let unused_hour = (b.days >= UNUSUAL_HOUR_MIN_DAYS
            && b.hours.get(hour).is_some_and(|h| *h == 0))
        .then_some(hour);
        let f = Features {
            ips: a.recent.len() as u64,
            new_networks,
            new_asns,
            new_countries,
            run,
            auth_failures: a.auth_failures.count(),
            campaign_hits: a.campaign_hits,
            rcpts: a.rcpts.get(),
            failed: a.failed.count(),
            baseline_days: b.days,
            unused_hour,
            norm: None,
        };
        if let Some(a) = self.accounts.at_mut(at).map(Cold::thaw) {
            self.population
                .update(&mut a.norm, f.new_networks as u32, f.new_asns as u32);
        }
        Features {
            norm: self.population.norm(hc.population_min_accounts),
            ..f
        }
    }

    /// The IPs an account used within the window (for campaign correlation).
    pub fn recent_ips(&self, account: &str) -> Vec<IpAddr> {
        self.accounts
            .get(account)
            .map(|a| a.view().recent.iter().map(|o| o.ip).collect())
            .unwrap_or_default()
    }

    /// Approximate heap bytes per tracked account (for the docs' memory statement).
    pub fn approx_bytes(&self) -> usize {
        self.accounts
            .iter()
            .map(|(k, a)| {
                let a = match a {
                    Cold::Hot(a) => a,
                    Cold::Frozen(b) => return k.len() + b.len(),
                };
                k.len()
                    + std::mem::size_of::<Account>()
                    + a.recent.capacity() * std::mem::size_of::<Obs>()
                    + a.day.ips.heap_bytes()
                    + a.day.networks.capacity() * 16
                    + a.domains.heap_bytes()
                    + a.sample_rcpts.heap_bytes()
                    + a.baseline.get().map_or(0, |b| {
                        std::mem::size_of::<Baseline>()
                            + b.countries.len() * 32
                            + b.asns.len() * 4
                            + b.networks.len() * 16
                    })
            })
            .sum()
    }
}

impl Features {
    fn empty() -> Features {
        Features {
            ips: 0,
            new_networks: 0,
            new_asns: 0,
            new_countries: 0,
            run: None,
            auth_failures: 0,
            campaign_hits: 0,
            rcpts: 0,
            failed: 0,
            baseline_days: 0,
            unused_hour: None,
            norm: None,
        }
    }
}

/// The country of `src` when the account sends from it for the first time today: a country
/// counts once per account and day toward the home countries, so that one account's burst
/// cannot make its own country "home".
fn new_country_today(a: &Account, src: Option<&Source>, msgs: u32) -> Option<[u8; 2]> {
    let c = src.and_then(|x| x.cc)?;
    (msgs > 0 && !a.day.countries.iter().any(|(x, _)| *x == c)).then_some(c)
}

/// Whether an account over the score deserves another alert at `ts`: its first, or its source
/// addresses at least doubled since the last one, or a day passed.
fn again(a: &Account, ts: Ts) -> bool {
    let ips = a.recent.len() as u64;
    match a.alerted_at {
        None => true,
        Some(t) => {
            ips >= a.alerted_ips.saturating_mul(2).max(ips.min(1) + 1) || t.plus_secs(86_400) < ts
        }
    }
}

/// The `auth-hijack` alert on `a` now, from its signals and score.
fn hijack_alert(
    a: &Account,
    hc: &config::Hijack,
    s: &Send<'_>,
    f: &Features,
    sigs: Vec<Signal>,
    score: f64,
) -> Alert {
    let ev = evidence(a, hc, s, f, sigs);
    let summary = format!(
        "{} source IPs in {} countries and {} networks within {} ({} messages, {} shape); signals: {}",
        ev.source_ips,
        ev.countries.len(),
        ev.prefixes,
        hc.window.to_string_h(),
        ev.messages,
        ev.shape,
        ev.signals
            .iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Alert {
        ts: s.ts,
        detector: Detector::AuthHijack,
        entity: Entity::new(EntityKind::Account, s.account),
        score: round3(score),
        summary,
        evidence: serde_json::to_value(&ev).unwrap_or(serde_json::Value::Null),
    }
}

/// Day roll-over: learn the finished day into the baseline unless it was alerted. True when the
/// account now has a baseline it did not have (it becomes established).
fn roll_day(a: &mut Account, ts: Ts) -> bool {
    let day_start = *a.day.start.get_or_insert(ts);
    if ts.secs() - day_start.secs() < 86_400 {
        return false;
    }
    let had = a.baseline().days > 0;
    let d = std::mem::take(&mut a.day);
    if d.learnable() {
        // Only a learnable day makes the baseline (an unlearnable one would leave it empty).
        learn_day(a.baseline.get_or_default(), &d);
    }
    a.day.start = Some(ts);
    !had && a.baseline().days > 0
}

/// Count the send into the account's day, counters and window of addresses. True when something
/// that can raise the score changed (a new address, or an address whose run is sustained).
fn note_send(
    a: &mut Account,
    hc: &config::Hijack,
    s: &Send<'_>,
    src: Option<&Source>,
    campaign_ip: &impl Fn(IpAddr) -> bool,
) -> bool {
    let w = hc.window.0;
    a.day.note(s.ts, s.msgs, src);
    a.msgs.add(s.ts, s.msgs, w);
    a.rcpts.add(s.ts, s.rcpts.len() as u32, w);
    a.failed.add(s.ts, s.failed, w);
    a.auth_failures.expire(s.ts, w);
    for r in s.rcpts.iter().take(4) {
        if let Some((_, d)) = maillog::bytes::rsplit_once(r, b'@') {
            a.domains.insert(maillog::hash::str_key_ci(d));
        }
        a.sample_rcpts.push(r, SAMPLE_RCPTS);
    }
    while a.recent.front().is_some_and(|o| o.last.plus_secs(w) < s.ts) {
        a.recent.pop_front();
    }
    let Some(src) = src else { return false };
    if let Some(o) = a.recent.iter_mut().rev().find(|o| o.ip == src.ip) {
        if s.msgs > 0 {
            if o.last.plus_secs(BURST_RUN_GAP_SECS) < s.ts {
                o.run_start = s.ts;
                o.run_msgs = 0;
            }
            o.run_msgs += s.msgs as u64;
        }
        o.last = s.ts;
        o.msgs += s.msgs;
        o.rcpts += s.rcpts.len() as u32;
        return s.msgs > 0 && sustained(o, hc).is_some();
    }
    if a.recent.len() >= hc.max_recent_ips {
        return false;
    }
    crate::compact::push_back(
        &mut a.recent,
        Obs {
            first: s.ts,
            last: s.ts,
            ip: src.ip,
            net: src.net,
            asn: src.asn.unwrap_or(0),
            cc: src.cc.unwrap_or(*b"--"),
            msgs: s.msgs,
            rcpts: s.rcpts.len() as u32,
            run_start: s.ts,
            run_msgs: s.msgs as u64,
        },
    );
    if campaign_ip(src.ip) {
        a.campaign_hits += 1;
    }
    true
}

fn run_secs(o: &Obs) -> f64 {
    (o.last.0 - o.run_start.0) as f64 / 1e6
}

/// `Some(())` when the address's current run has lasted `burst_sustain` at an average of at
/// least `burst_per_minute`.
fn sustained(o: &Obs, hc: &config::Hijack) -> Option<()> {
    let secs = run_secs(o);
    let need = hc.burst_sustain.0.max(1) as f64;
    (secs >= need && o.run_msgs as f64 * 60.0 >= hc.burst_per_minute as f64 * secs).then_some(())
}

/// How the address of `o` stands to the account's history: its learned networks, and the
/// networks it used earlier the same day.
fn novelty(a: &Account, o: &Obs) -> Novelty {
    let b = a.baseline();
    let d = &a.day;
    if b.has_network(o.net) || d.networks.iter().any(|(n, t)| *n == o.net && *t < o.first) {
        return Novelty::Known;
    }
    if b.days > 0 || d.networks_overflow || d.networks.iter().any(|(_, t)| *t < o.first) {
        Novelty::New
    } else {
        Novelty::NoHistory
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Burst => "burst",
            Shape::Spread => "spread",
            Shape::Mixed => "mixed",
        })
    }
}

/// The evidence of an alert on `a` now.
fn evidence(
    a: &Account,
    hc: &config::Hijack,
    s: &Send<'_>,
    f: &Features,
    signals: Vec<Signal>,
) -> HijackEvidence {
    let mut by_cc: HashMap<&str, u64> = HashMap::default();
    let mut by_asn: HashMap<u32, u64> = HashMap::default();
    let mut prefixes = Distinct::default();
    let mut per_ip = PerIp::default();
    let mut max_per_ip = 0u32;
    for o in &a.recent {
        *by_cc.entry(cc_str(&o.cc)).or_default() += 1;
        *by_asn.entry(o.asn).or_default() += 1;
        prefixes.insert(o.net);
        match o.msgs {
            0..=1 => per_ip.one += 1,
            2..=5 => per_ip.few += 1,
            6..=20 => per_ip.some += 1,
            21..=100 => per_ip.many += 1,
            _ => per_ip.lots += 1,
        }
        max_per_ip = max_per_ip.max(o.msgs);
    }
    let mut top_cc: Vec<(&str, u64)> = by_cc.into_iter().collect();
    top_cc.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    let mut top_asn: Vec<(u32, u64)> = by_asn.into_iter().collect();
    top_asn.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let first = a.recent.front().map(|o| o.first).unwrap_or(s.ts);
    let fast = s.ts.plus_secs(-FAST_WINDOW_SECS);
    let ips_fast = a.recent.iter().filter(|o| o.first >= fast).count() as u64;
    let mut ccs_fast: Vec<[u8; 2]> = a
        .recent
        .iter()
        .filter(|o| o.first >= fast)
        .map(|o| o.cc)
        .collect();
    ccs_fast.sort_unstable();
    ccs_fast.dedup();
    let ips = a.recent.len() as u64;
    let total = ips.max(1) as f64;
    let entropy: f64 = top_cc
        .iter()
        .map(|(_, n)| {
            let p = *n as f64 / total;
            -p * p.log2()
        })
        .sum();
    let shape = if f.run.is_some() || max_per_ip as u64 >= hc.burst_per_minute * 10 {
        Shape::Burst
    } else if ips >= 20 && per_ip.one + per_ip.few >= ips * 8 / 10 {
        Shape::Spread
    } else {
        Shape::Mixed
    };
    let norm = f.norm;
    HijackEvidence {
        signals,
        source_ips: ips,
        source_ips_day: a.day.ips.count(),
        source_ips_10m: ips_fast,
        countries_10m: ccs_fast.len() as u64,
        country_entropy_bits: round3(entropy),
        prefixes: prefixes.count(),
        new_networks: f.new_networks,
        new_asns: f.new_asns,
        new_countries: f.new_countries,
        countries: top_cc
            .iter()
            .take(15)
            .map(|(c, n)| CountryIps {
                country: c.to_string(),
                ips: *n,
            })
            .collect(),
        asns: top_asn
            .iter()
            .take(15)
            .map(|(x, n)| AsnIps { asn: *x, ips: *n })
            .collect(),
        shape,
        messages_per_ip: per_ip,
        max_messages_one_ip: max_per_ip,
        burst_run: f.run.map(|r| BurstRun {
            ip: maillog::ip::text(r.ip),
            messages: r.msgs,
            secs: round3(r.secs),
            per_minute: round3(r.msgs as f64 * 60.0 / r.secs.max(1.0)),
            address: r.novelty,
        }),
        first: first.rfc3339(),
        last: s.ts.rfc3339(),
        window_secs: hc.window.0,
        messages: a.msgs.get(),
        recipients: a.rcpts.get(),
        failed_recipients: a.failed.count(),
        recipient_domains: a.domains.count(),
        sample_recipients: a.sample_rcpts.iter().map(str::to_string).collect(),
        auth_failures: a.auth_failures.count(),
        baseline: BaselineSummary {
            days: a.baseline().days,
            countries: a.baseline().countries.clone(),
            asns: a.baseline().asns.len(),
            networks: a.baseline().networks.len(),
            msgs_per_day: round3(a.baseline().msgs_per_day),
        },
        population_p999_new_asns: norm.map(|n| n.new_asns),
        population_p999_new_networks: norm.map(|n| n.new_networks),
        recent_ips: a
            .recent
            .iter()
            .rev()
            .take(10)
            .map(|o| IpSample {
                ip: maillog::ip::text(o.ip),
                network: network_text(o.ip),
                country: cc_str(&o.cc).to_string(),
                asn: o.asn,
                messages: o.msgs,
                recipients: o.rcpts,
                first: o.first.rfc3339(),
                last: o.last.rfc3339(),
            })
            .collect(),
        window_ips: a.recent.iter().map(|o| maillog::ip::text(o.ip)).collect(),
    }
}

/// Whether `cc` is a home country: configured, or the country of at least `home_country_share`
/// of all account-days once [`HOME_SHARE_MIN_LOGINS`] were seen.
fn is_home(
    countries: &HashMap<[u8; 2], u64>,
    logins: u64,
    hc: &config::Hijack,
    cc: &[u8; 2],
) -> bool {
    let s = cc_str(cc);
    if hc.home_countries.iter().any(|h| h.eq_ignore_ascii_case(s)) {
        return true;
    }
    if logins < HOME_SHARE_MIN_LOGINS {
        return false;
    }
    let n = countries.get(cc).copied().unwrap_or(0);
    (n as f64) / (logins as f64) >= hc.home_country_share
}

/// The country of an IP as text, for evidence.
pub fn country_of(geo: &GeoDb, ip: IpAddr) -> Option<Country> {
    geo.lookup_fast(ip).0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A code is in the baseline by bytes exactly when its text is, invalid UTF-8 ("??")
    /// included.
    #[test]
    fn a_country_code_is_found_as_its_text_is() {
        let b = Baseline {
            countries: vec![("DE".into(), 3), ("??".into(), 1), ("US".into(), 2)],
            ..NO_BASELINE.clone()
        };
        for c in [
            *b"DE",
            *b"US",
            *b"FR",
            *b"de",
            *b"??",
            [0xFF, 0xFE],
            [b'D', 0xC3],
            *b"--",
        ] {
            assert_eq!(b.has_country_code(&c), b.has_country(cc_str(&c)), "{c:?}");
        }
        assert!(!NO_BASELINE.has_country_code(b"DE"));
    }

    /// `distinct_codes` counts what sorting and de-duplicating counts, and leaves its bits
    /// clear for the next call.
    #[test]
    fn distinct_codes_count_as_sorting_does() {
        let mut seen = Vec::new();
        let mut r = 7u64;
        for n in 0..300usize {
            let v: Vec<[u8; 2]> = (0..n)
                .map(|_| {
                    r = r.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let x = (r >> 33) as u16 % (1 + n as u16 % 40);
                    [
                        b'A' + (x % 26) as u8,
                        [b'A', b'Z', b'-', 0xFF][(x / 26) as usize % 4],
                    ]
                })
                .collect();
            let mut sorted = v.clone();
            assert_eq!(
                distinct_codes(&v, &mut seen),
                distinct(&mut sorted),
                "{v:?}"
            );
            assert!(seen.iter().all(|&w| w == 0));
        }
    }

    /// The counter's table counts what sorting counts, for lists short and long, with few
    /// and many repeats, the extreme values, one counter reused across calls of any length,
    /// and across its call number's wrap.
    #[test]
    fn the_distinct_counter_counts_as_sorting() {
        let mut counter = DistinctCounter::default();
        let mut r = 7u64;
        for round in 0..400usize {
            let n = (round * 37) % 1_100;
            let range = [2u64, 50, 1_000, u64::MAX][round % 4];
            let mut v: Vec<u64> = (0..n)
                .map(|i| {
                    r = r
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1442695040888963407);
                    match i % 29 {
                        0 => 0,
                        1 => u64::MAX,
                        _ => (r >> 7) % range.max(1),
                    }
                })
                .collect();
            let mut sorted = v.clone();
            assert_eq!(
                counter.count(&mut v),
                distinct(&mut sorted),
                "round {round}"
            );
            if round == 200 {
                counter.call = u32::MAX - 1;
            }
        }
        let mut asns: Vec<u32> = (0..300).map(|i| i % 77).collect();
        assert_eq!(counter.count(&mut asns), 77);
    }

    #[test]
    fn hours_keep_the_used_ones_and_snapshot_as_the_24_counts() {
        let mut h = Hours::default();
        h.add(3, 2);
        h.add(23, 1);
        h.add(3, 5);
        h.add(7, 0);
        h.add(HOURS, 9);
        assert_eq!(h.0.len(), 2);
        let mut want = [0u32; HOURS];
        want[3] = 7;
        want[23] = 1;
        assert_eq!(h.counts(), want);
        let bytes = crate::snapshot::encode(&h).unwrap();
        assert_eq!(bytes, crate::snapshot::encode(&want).unwrap());
        let back: Hours = crate::snapshot::decode(&bytes).unwrap();
        assert_eq!(back, h);
        h.add(3, u32::MAX);
        assert_eq!(h.counts()[3], HOUR_COUNT_MAX);
    }
}
