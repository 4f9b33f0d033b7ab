//! `auth-bruteforce`: password guessing against SMTP AUTH, IMAP and POP3 — how accounts get
//! stolen before they are abused.
//!
//! On the real internet every server is guessed at all day: thousands of addresses try `admin`,
//! `info`, `test` and the names of real users. An alert per guessed name, or per hour of the same
//! attack, is noise nobody can act on. So this detector reports two things only:
//!
//! - **the attackers**, which an operator can block: one address with many failures (entity
//!   `client`), one /24 or /48 with failures from several of its addresses (`network`), a wave
//!   against the whole server from many networks (`campaign`); and an **existing account** (one
//!   that has logged in successfully or sent mail) that is the target of guessing from many
//!   addresses, far more than the other names guessed at the same time;
//! - **a password that was probably guessed**: a successful login that came from where the
//!   failures came from (the same address, /24 or /48, AS, or an address of an attacking
//!   network or campaign), or from a place new to an account with history while it was being
//!   guessed, or one that was followed by changed sending (auth-hijack). The owner logging in
//!   from their usual place while somebody else guesses from elsewhere is not suspicious.
//!
//! Every count is over a true sliding window of event time. Every alert belongs to an
//! [`attack::Attack`]: one alert when it starts, one more only when it has grown by
//! `escalation_factor`, and a new one only after it has been quiet for `attack_quiet`.
//!
//! Failures against names that never logged in create no per-account state: they are counted
//! per attacker (address, network, wave) and per guessed name in a table of their own, capped
//! by `max_attackers`, which cannot evict the state of real accounts. Failures against an
//! account from one of its own places — an address, network or autonomous system it logged in
//! from (a device with a stale password, a typo, a renumbered home line) — are the owner's and
//! count for nothing.

pub mod attack;
pub mod evidence;
pub mod places;
pub mod sliding;

use std::net::IpAddr;

use maillog::{Service, Ts};
use serde::Serialize;

use crate::alert::{round3, Alert, Detector, Entity, EntityKind};
use crate::bounded::{BoundedMap, Handle};
use crate::cold::{Cold, ColdMap};
use crate::config::Config;
use crate::distinct::Distinct;
use crate::window::Counter;
use attack::{Attack, Step};
use evidence::{
    AddressEvidence, AddressRule, GuessedEvidence, NetworkEvidence, NetworkRule, TargetEvidence,
    TopAddress, WaveEvidence,
};
use places::Places;
use sliding::{Recent, SlidingHll};

/// Sample names or addresses kept per attacker as evidence.
const SAMPLES: usize = 8;

/// Longest sample name kept (names come from the attacker).
const SAMPLE_NAME_CHARS: usize = 64;

/// Failing addresses remembered per existing account: enough to count far past
/// `max_ips_per_account` exactly, small enough for every account under background guessing.
const ACCOUNT_SOURCES: usize = 64;

/// Failing addresses remembered per guessed name that never logged in (only for judging a later
/// first success of that name).
const NAME_SOURCES: usize = 8;

/// Addresses remembered per network: every address of an IPv4 /24, so its count is exact.
const NETWORK_ADDRESSES: usize = 256;

/// Addresses of one network with an attack of their own, remembered to see a second one.
const NETWORK_ATTACKERS: usize = 16;

/// Heaviest addresses of a wave kept for its evidence (Space-Saving counters).
const WAVE_TOP: usize = 64;

/// Addresses one device can fail from, one after another, within `source_memory` (1 day): its
/// home line renumbered once. Fixed-line ISPs renumber on a fixed period of a multiple of 24
/// hours (TRAFFIC-FACTS §2, Padmanabhan et al.), so a stale-password device at home fails from
/// at most two addresses in a day, never from two at once. Failures against one name from more
/// addresses, or from two at once, are several machines: distributed guessing. Our own idea.
const DEVICE_MAX_ADDRESSES: usize = 2;

/// Distinct names an address must have failed against to count as a guesser (for a success
/// from it, and as an address of a guessing campaign): one name is one owner's stale device, two
/// can be a household sharing a line; a dictionary guesser tries many (TRAFFIC-FACTS §3: 4,324
/// names from 37 addresses). Our own idea.
const GUESSER_MIN_NAMES: u64 = 3;

/// Score of an alert on a slow guesser (many names over a day, no login from it): deliberate,
/// but each try far apart.
const SCORE_SLOW: f64 = 0.7;

/// Score of an alert on an attacking network (several addresses: deliberate).
const SCORE_NETWORK: f64 = 0.75;
/// Score of an alert on a server-wide guessing wave.
const SCORE_CAMPAIGN: f64 = 0.8;
/// Score of an alert on an existing account targeted by guessing (nothing stolen yet).
const SCORE_TARGETED: f64 = 0.7;
/// Score of a successful login from where the guessing came from.
const SCORE_GUESSED: f64 = 0.9;
/// Score of a successful login from a new place while the account was being guessed.
const SCORE_NEW_PLACE: f64 = 0.8;
/// Score of a login during guessing followed by changed sending.
const SCORE_SENDING: f64 = 0.85;

/// A stable hash of a user name (the same in every run).
fn name_key(s: &str) -> u64 {
    maillog::hash::str_key(s)
}

/// The /24 (IPv4, also IPv4-mapped) or /48 (IPv6) network of an address, in CIDR form.
pub fn network_of(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
    }
}

/// Where a suspicious successful login came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// An address that failed against this account.
    GuessingAddress,
    /// The /24 (/48) of an address that failed against this account.
    GuessingNetwork,
    /// The AS of an address that failed against this account, new to the account.
    GuessingAs,
    /// An address with an attack of its own (over the per-address limit).
    AttackingAddress,
    /// An address of a network with an attack going on.
    AttackingNetwork,
    /// An address that failed during a server-wide guessing wave.
    Campaign,
    /// A place (address, network and AS) new to an account with history, while it was guessed.
    NewPlace,
    /// A login during guessing, then sending changed (auth-hijack raised an alert).
    ChangedSending,
}

impl Origin {
    fn describe(self) -> &'static str {
        match self {
            Origin::GuessingAddress => "from an address that failed against it",
            Origin::GuessingNetwork => "from the network of an address that failed against it",
            Origin::GuessingAs => "from the AS of an address that failed against it, new to it",
            Origin::AttackingAddress => "from an address guessing passwords",
            Origin::AttackingNetwork => "from a network guessing passwords",
            Origin::Campaign => "from an address of a guessing campaign",
            Origin::NewPlace => "from a place new to the account while it was being guessed",
            Origin::ChangedSending => "during guessing, and its sending changed afterwards",
        }
    }

    fn score(self) -> f64 {
        match self {
            Origin::NewPlace => SCORE_NEW_PLACE,
            Origin::ChangedSending => SCORE_SENDING,
            _ => SCORE_GUESSED,
        }
    }
}

/// One attacking address.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Address {
    failures: Counter,
    attack: Attack,
    total: u64,
    names: Distinct,
    /// The most recent distinct names it failed against, with when (for the slow rule; at most
    /// `slow_min_names`).
    day_names: Recent<u64, ()>,
    /// The accounts that logged in successfully from it since its first failure: some means a
    /// user's address (a NAT, a CGNAT, a VPN exit), not a slow guesser's; many, compared with
    /// the names that failed, a shared login point (see [`Address::is_shared`]).
    logins: Distinct,
    sample_names: Vec<String>,
    services: Vec<Service>,
    first: Ts,
    last: Ts,
}

impl Address {
    fn new(ts: Ts, slow_names: u64) -> Address {
        Address {
            failures: Counter::default(),
            attack: Attack::default(),
            total: 0,
            names: Distinct::default(),
            day_names: Recent::new(slow_names as usize),
            logins: Distinct::default(),
            sample_names: Vec::new(),
            services: Vec::new(),
            first: ts,
            last: ts,
        }
    }
}

impl Address {
    /// Whether it is a shared login point (a webmail, a NAT, a CGNAT) rather than a guesser:
    /// accounts logged in from it successfully number at least [`SHARED_MIN_LOGIN_SHARE`] of
    /// the names that failed from it. Its failures are its users' typos, not an attack.
    fn is_shared(&self) -> bool {
        let logins = self.logins.count();
        logins > 0 && logins as f64 >= SHARED_MIN_LOGIN_SHARE * self.names.count() as f64
    }
}

/// One /24 or /48 with failures.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Network {
    failures: Counter,
    addresses: Recent<IpAddr, ()>,
    attackers: Recent<IpAddr, ()>,
    attack: Attack,
    /// The most recent distinct names its addresses failed against (for the slow rule; at most
    /// `slow_min_network_names`).
    day_names: Recent<u64, ()>,
    /// Its first failure.
    first: Ts,
}

impl Network {
    fn new(ts: Ts, slow_names: u64) -> Network {
        Network {
            failures: Counter::default(),
            addresses: Recent::new(NETWORK_ADDRESSES),
            attackers: Recent::new(NETWORK_ATTACKERS),
            attack: Attack::default(),
            day_names: Recent::new(slow_names as usize),
            first: ts,
        }
    }
}

/// Failures against one name from one address.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Source {
    /// The address's autonomous system, when known.
    asn: Option<u32>,
    /// Failures against the name from it.
    failures: u64,
    /// The first of them (the last is the time [`Recent`] keeps).
    first: Ts,
}

/// Guessing against one name: failures in the window and where they came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Guessing {
    failures: Counter,
    sources: Recent<IpAddr, Source>,
    attack: Attack,
}

impl Guessing {
    fn new(cap: usize) -> Guessing {
        Guessing {
            failures: Counter::default(),
            sources: Recent::new(cap),
            attack: Attack::default(),
        }
    }

    fn add(&mut self, ts: Ts, ip: Option<IpAddr>, asn: Option<u32>, w: i64) {
        self.failures.add(ts, 1, w);
        if let Some(ip) = ip {
            let new = Source {
                asn,
                failures: 1,
                first: ts,
            };
            self.sources.touch(ip, ts, new, |v| v.failures += 1);
        }
    }
}

/// An address that failed against an account from outside the account's places.
#[derive(Debug, Clone, Copy)]
struct Failing {
    ip: IpAddr,
    src: Source,
    last: Ts,
}

/// What the failures against one account look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// From one device at a time: one address, or a line renumbered once, failing against this
    /// name only — the owner's device with an old password, or typos.
    OneDevice,
    /// An address among them failed against [`GUESSER_MIN_NAMES`] names or more: a guesser.
    Guesser,
    /// From two addresses at once, or from more than one device moves through: several machines
    /// guessing this one name.
    Distributed,
}

/// An account that exists: it has logged in successfully or sent mail.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Account {
    places: Places,
    guessing: Option<Box<Guessing>>,
    /// Last alert that its password was probably guessed.
    guessed_alerted: Option<Ts>,
    /// Last unremarkable login while it was being guessed (for changed sending).
    login_during_guessing: Option<Ts>,
}

/// A server-wide wave of guessing from many addresses.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Wave {
    failures: Counter,
    addresses: SlidingHll,
    top: Vec<(IpAddr, u64)>,
    attack: Attack,
}

impl Wave {
    /// Space-Saving heavy hitters: a new address replaces the lightest when full.
    fn count_top(&mut self, ip: IpAddr) {
        if let Some(e) = self.top.iter_mut().find(|(x, _)| *x == ip) {
            e.1 += 1;
        } else if self.top.len() < WAVE_TOP {
            self.top.push((ip, 1));
        } else if let Some(min) = self.top.iter_mut().min_by_key(|(x, n)| (*n, *x)) {
            *min = (ip, min.1 + 1);
        }
    }
}

/// An address from which the accounts that logged in successfully number at least this share
/// of the names that failed from it is a shared login point (a webmail, a NAT, a CGNAT), not a
/// guesser, for the per-address rate rule and for `attacking-address`: a guesser succeeds for
/// few of the names it tries, while the users of a shared login point mistype now and then and
/// then log in. Our own idea; one half leaves a wide margin on both sides.
const SHARED_MIN_LOGIN_SHARE: f64 = 0.5;

/// The detector.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Bruteforce {
    addresses: BoundedMap<IpAddr, Address>,
    networks: BoundedMap<u64, Network>,
    names: BoundedMap<u64, Guessing>,
    /// Live while active, packed when idle `[detect.limits] pack_idle_after`
    /// ([`Bruteforce::freeze_idle`]).
    accounts: ColdMap<String, Account>,
    wave: Wave,
    /// Failures that named a user, server-wide, in the window, and the distinct names.
    named_failures: Counter,
    named: SlidingHll,
}

/// What a successful login looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// From one of the account's own places.
    Usual,
    /// Nothing links it to guessing.
    Unremarkable,
    /// From where one device alone failed against it: the owner's device with an old password
    /// (remembered for changed sending).
    OneDevice,
    /// Probably a guessed password.
    Suspicious(Origin),
}

impl Bruteforce {
    /// Empty.
    pub fn new(cfg: &Config) -> Self {
        let cap = cfg.bruteforce.max_attackers;
        Bruteforce {
            addresses: BoundedMap::new(cap),
            networks: BoundedMap::new(cap),
            names: BoundedMap::new(cap),
            accounts: ColdMap::new(cfg.limits.max_entities),
            wave: Wave::default(),
            named_failures: Counter::default(),
            named: SlidingHll::default(),
        }
    }

    /// Pack the state of the accounts not touched since `before` ([`crate::cold`]: the next
    /// event of such an account decodes it; detection is the same either way).
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

    /// Whether `user` is an existing account (logged in successfully or sent mail).
    pub fn knows(&self, user: &str) -> bool {
        self.accounts.get(user).is_some()
    }

    /// Accounts, attacker addresses, networks and guessed names with state.
    pub fn tracked(&self) -> (usize, usize, usize, usize) {
        (
            self.accounts.len(),
            self.addresses.len(),
            self.networks.len(),
            self.names.len(),
        )
    }

    /// Entries dropped because of the caps (accounts, attacker tables together).
    pub fn evicted(&self) -> (u64, u64) {
        (
            self.accounts.evicted(),
            self.addresses.evicted() + self.networks.evicted() + self.names.evicted(),
        )
    }

    /// A failed login from `ip` (in `asn`) for `user` (when logged).
    #[allow(clippy::too_many_arguments)]
    pub fn failure(
        &mut self,
        cfg: &Config,
        ts: Ts,
        ip: Option<IpAddr>,
        asn: Option<u32>,
        user: Option<&str>,
        service: Service,
        out: &mut Vec<Alert>,
    ) {
        let c = &cfg.bruteforce;
        if !c.enabled {
            return;
        }
        let user = user.filter(|u| !u.is_empty());
        let key = user.map(str::to_string);
        // The owner's own place (address, network or AS): a device with a stale password or a
        // typo, not an attack.
        if let (Some(ip), Some(k)) = (ip, &key) {
            if self
                .accounts
                .get_mut(k)
                .is_some_and(|a| a.thaw().places.owns(ip, asn))
            {
                return;
            }
        }
        if let Some(ip) = ip {
            // A wave's addresses are covered by its `campaign` alert, as a network's are by its.
            let wave_on = self.wave.attack.is_active(ts, c.attack_quiet.0);
            let step = self.address(cfg, ts, ip, user, service, wave_on);
            let covered = self.network(cfg, ts, ip, user, step == Some(Step::Started), out);
            if let Some(step) = step.filter(|s| s.reports() && !covered) {
                self.address_alert(cfg, ts, ip, step, out);
            }
            self.wave(cfg, ts, ip, out);
        }
        let (Some(u), Some(k)) = (user, key) else {
            return;
        };
        let w = c.window.0;
        self.named_failures.add(ts, 1, w);
        self.named.insert(name_key(u), ts);
        if self.accounts.get(&k).is_none() {
            // A name that never logged in: attacker-side memory only.
            self.names
                .get_or_insert_with(&name_key(u), ts, || Guessing::new(NAME_SOURCES))
                .add(ts, ip, asn, w);
            return;
        }
        self.targeted(cfg, ts, &k, ip, asn, out);
    }

    /// Count a failure from `ip`; the attack step when its count is over the limit.
    fn address(
        &mut self,
        cfg: &Config,
        ts: Ts,
        ip: IpAddr,
        user: Option<&str>,
        service: Service,
        wave_on: bool,
    ) -> Option<Step> {
        let c = &cfg.bruteforce;
        let st = self
            .addresses
            .get_or_insert_with(&ip, ts, || Address::new(ts, c.slow_min_names));
        st.failures.add(ts, 1, c.window.0);
        st.total += 1;
        st.last = ts;
        if !st.services.contains(&service) {
            st.services.push(service);
        }
        if let Some(u) = user {
            let h = name_key(u);
            if !st.names.contains(h) && st.sample_names.len() < SAMPLES {
                st.sample_names
                    .push(u.chars().take(SAMPLE_NAME_CHARS).collect());
            }
            st.names.insert(h);
            st.day_names.touch(h, ts, (), |_| {});
        }
        let n = st.failures.get();
        if n > c.max_failures_per_ip && !st.is_shared() {
            return Some(st.attack.over(ts, n, c.attack_quiet.0, c.escalation_factor));
        }
        // Slow guessing: going on for longer than the rate window without passing the rate
        // limit, but many names within the day, each try far apart. It starts (or continues)
        // the address's attack as if it had been reported at the rate limit, so that only a rate
        // ten times that limit escalates it.
        let slow = !wave_on
            && st.logins.count() == 0
            && st.first.plus_secs(c.window.0) <= ts
            && st.day_names.count_within(ts, c.slow_window.0) >= c.slow_min_names;
        slow.then(|| {
            st.attack.over(
                ts,
                c.max_failures_per_ip,
                c.attack_quiet.0,
                c.escalation_factor,
            )
        })
    }

    fn address_alert(
        &mut self,
        cfg: &Config,
        ts: Ts,
        ip: IpAddr,
        step: Step,
        out: &mut Vec<Alert>,
    ) {
        let c = &cfg.bruteforce;
        let Some(st) = self.addresses.get(&ip) else {
            return;
        };
        let n = st.failures.get();
        let names = st.names.count().min(st.total);
        let ratio = n as f64 / c.max_failures_per_ip.max(1) as f64;
        let again = match step.escalated_from() {
            Some(b) => format!(" (grown from {b})"),
            None => String::new(),
        };
        let rule = if n > c.max_failures_per_ip {
            AddressRule::Rate
        } else {
            AddressRule::SlowNames
        };
        let day_names = st.day_names.count_within(ts, c.slow_window.0);
        let ev = AddressEvidence {
            rule,
            names_in_slow_window: day_names,
            slow_window: c.slow_window.to_string_h(),
            failures: n,
            threshold: c.max_failures_per_ip,
            window: c.window.to_string_h(),
            attack_failures: st.total,
            accounts_tried: names,
            sample_accounts: st.sample_names.clone(),
            services: st.services.clone(),
            first: st.first.rfc3339(),
            last: ts.rfc3339(),
            escalated_from: step.escalated_from(),
        };
        out.push(Alert {
            ts,
            detector: Detector::AuthBruteforce,
            entity: Entity::new(EntityKind::Client, ip.to_string()),
            score: match rule {
                AddressRule::Rate => round3((0.6 + 0.1 * ratio.log2()).clamp(0.6, 0.95)),
                AddressRule::SlowNames => SCORE_SLOW,
            },
            summary: match rule {
                AddressRule::Rate => format!(
                    "{n} failed logins within {}{again}; {} failures against {names} names since {}",
                    c.window.to_string_h(),
                    st.total,
                    st.first.display_utc()
                ),
                AddressRule::SlowNames => format!(
                    "failed logins against {day_names} names within {}, none logged in from it ({} failures against {names} names since {}): slow password guessing",
                    c.slow_window.to_string_h(),
                    st.total,
                    st.first.display_utc()
                ),
            },
            evidence: serde_json::to_value(ev).unwrap_or_default(),
        });
    }

    /// Guessing spread over one /24 (/48): each address may stay under the per-address limit,
    /// the network does not; or a second address of a network becomes an attacker. Returns
    /// whether the network's attack is going on (its addresses need no alerts of their own).
    fn network(
        &mut self,
        cfg: &Config,
        ts: Ts,
        ip: IpAddr,
        user: Option<&str>,
        new_attacker: bool,
        out: &mut Vec<Alert>,
    ) -> bool {
        let c = &cfg.bruteforce;
        let (w, quiet) = (c.window.0, c.attack_quiet.0);
        let st = self
            .networks
            .get_or_insert_with(&geo::prefix_key(ip), ts, || {
                Network::new(ts, c.slow_min_network_names)
            });
        st.failures.add(ts, 1, w);
        st.addresses.touch(ip, ts, (), |_| {});
        if let Some(u) = user {
            st.day_names.touch(name_key(u), ts, (), |_| {});
        }
        let n = st.failures.get();
        let addrs = st.addresses.count_within(ts, w).min(n);
        // Slow guessing spread over the network's addresses: many names within the day.
        let slow_names = st.day_names.count_within(ts, c.slow_window.0);
        let slow = st.first.plus_secs(w) <= ts
            && slow_names >= c.slow_min_network_names
            && st.addresses.count_within(ts, c.slow_window.0) >= 2;
        // A second address of this network starting an attack while another one's is going on.
        let second = new_attacker && st.attackers.within(ts, quiet).iter().any(|(a, _)| *a != ip);
        if new_attacker {
            st.attackers.touch(ip, ts, (), |_| {});
        }
        let rule = if n > c.max_failures_per_network && addrs >= 2 {
            Some(NetworkRule::Rate)
        } else if second {
            Some(NetworkRule::SecondAttacker)
        } else if slow {
            Some(NetworkRule::SlowNames)
        } else {
            None
        };
        // A slow attack counts as reported at the rate limit (see `address`).
        let step = match rule {
            Some(NetworkRule::SlowNames) => {
                st.attack
                    .over(ts, c.max_failures_per_network, quiet, c.escalation_factor)
            }
            Some(_) => st.attack.over(ts, n, quiet, c.escalation_factor),
            None => Step::Continues,
        };
        let active = st.attack.is_active(ts, quiet);
        let Some(rule) = rule.filter(|_| step.reports()) else {
            return active;
        };
        let slow_addrs = st.addresses.count_within(ts, c.slow_window.0);
        let attackers: Vec<String> = st
            .attackers
            .within(ts, quiet)
            .iter()
            .map(|(a, _)| a.to_string())
            .collect();
        let net = network_of(ip);
        let summary = match rule {
            NetworkRule::SecondAttacker => format!(
                "a second address of {net} guessing passwords ({})",
                attackers.join(", ")
            ),
            NetworkRule::Rate => format!(
                "{n} failed logins within {} from {addrs} addresses of one network{}",
                c.window.to_string_h(),
                step.escalated_from()
                    .map(|b| format!(" (grown from {b})"))
                    .unwrap_or_default()
            ),
            NetworkRule::SlowNames => format!(
                "failed logins against {slow_names} names within {} from {slow_addrs} addresses of one network: slow password guessing",
                c.slow_window.to_string_h()
            ),
        };
        let ev = NetworkEvidence {
            rule,
            names_in_slow_window: slow_names,
            addresses_in_slow_window: slow_addrs,
            slow_window: c.slow_window.to_string_h(),
            failures: n,
            threshold: c.max_failures_per_network,
            window: c.window.to_string_h(),
            addresses: addrs,
            sample_ips: st
                .addresses
                .within(ts, w)
                .iter()
                .take(SAMPLES)
                .map(|(a, _)| a.to_string())
                .collect(),
            attacking_addresses: attackers,
            attack_start: st.attack.start(ts, quiet).unwrap_or(ts).rfc3339(),
            escalated_from: step.escalated_from(),
        };
        out.push(Alert {
            ts,
            detector: Detector::AuthBruteforce,
            entity: Entity::new(EntityKind::Network, net),
            score: SCORE_NETWORK,
            summary,
            evidence: serde_json::to_value(ev).unwrap_or_default(),
        });
        active
    }

    /// A wave of guessing against the server from many addresses (a botnet), each under every
    /// per-address limit: one `campaign` per wave.
    fn wave(&mut self, cfg: &Config, ts: Ts, ip: IpAddr, out: &mut Vec<Alert>) {
        let c = &cfg.bruteforce;
        let (w, quiet) = (c.window.0, c.attack_quiet.0);
        let wv = &mut self.wave;
        wv.failures.add(ts, 1, w);
        wv.addresses.insert(places::ip_key(ip), ts);
        if !wv.attack.is_active(ts, quiet) && wv.failures.get() <= c.max_failures_total {
            // Between waves the heavy hitters describe the next one only.
            if wv.top.len() >= WAVE_TOP && !wv.attack.is_active(ts, w) {
                wv.top.clear();
            }
        }
        wv.count_top(ip);
        let n = wv.failures.get();
        if n <= c.max_failures_total {
            return;
        }
        let addrs = wv.addresses.count(ts, w).min(n);
        if addrs < c.min_wave_ips {
            return;
        }
        let step = wv.attack.over(ts, addrs, quiet, c.escalation_factor);
        if !step.reports() {
            return;
        }
        let start = wv.attack.start(ts, quiet).unwrap_or(ts);
        let mut top = wv.top.clone();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(10);
        let id = format!("guessing-{}", start.rfc3339().replace([':', '-'], ""));
        let ev = WaveEvidence {
            failures: n,
            threshold: c.max_failures_total,
            window: c.window.to_string_h(),
            addresses: addrs,
            min_addresses: c.min_wave_ips,
            top_addresses: top
                .iter()
                .map(|(i, k)| TopAddress {
                    ip: i.to_string(),
                    failures: *k,
                })
                .collect(),
            attack_start: start.rfc3339(),
            escalated_from: step.escalated_from(),
        };
        out.push(Alert {
            ts,
            detector: Detector::AuthBruteforce,
            entity: Entity::new(EntityKind::Campaign, id),
            score: SCORE_CAMPAIGN,
            summary: format!(
                "{n} failed logins within {} from about {addrs} addresses: distributed password guessing against the server{}",
                c.window.to_string_h(),
                step.escalated_from()
                    .map(|b| format!(" (grown from {b} addresses)"))
                    .unwrap_or_default()
            ),
            evidence: serde_json::to_value(ev).unwrap_or_default(),
        });
    }

    /// A failure against an existing account from outside its places: is it targeted?
    fn targeted(
        &mut self,
        cfg: &Config,
        ts: Ts,
        user: &str,
        ip: Option<IpAddr>,
        asn: Option<u32>,
        out: &mut Vec<Alert>,
    ) {
        let c = &cfg.bruteforce;
        let (w, quiet) = (c.window.0, c.attack_quiet.0);
        let Some(acct) = self.accounts.get_mut(user).map(Cold::thaw) else {
            return;
        };
        let g = acct
            .guessing
            .get_or_insert_with(|| Box::new(Guessing::new(ACCOUNT_SOURCES)));
        g.add(ts, ip, asn, w);
        g.sources.prune(ts, c.source_memory.0.max(w));
        let f = g.failures.get();
        let ips = g.sources.count_within(ts, w).min(f);
        if ips <= c.max_ips_per_account {
            return;
        }
        // Compared with the other names guessed in the same window.
        let total = self.named_failures.get();
        let names = self.named.count(ts, w).min(total);
        let per_other = if names > 1 {
            total.saturating_sub(f) as f64 / (names - 1) as f64
        } else {
            0.0
        };
        if f as f64 <= c.min_target_ratio * per_other {
            return;
        }
        let step = g.attack.over(ts, ips, quiet, c.escalation_factor);
        if !step.reports() {
            return;
        }
        let ev = TargetEvidence {
            failures: f,
            source_ips: ips,
            threshold: c.max_ips_per_account,
            window: c.window.to_string_h(),
            sample_ips: g
                .sources
                .within(ts, w)
                .iter()
                .take(SAMPLES)
                .map(|(a, _)| a.to_string())
                .collect(),
            failures_per_other_name: round3(per_other),
            min_target_ratio: c.min_target_ratio,
            attack_start: g.attack.start(ts, quiet).unwrap_or(ts).rfc3339(),
            escalated_from: step.escalated_from(),
        };
        out.push(Alert {
            ts,
            detector: Detector::AuthBruteforce,
            entity: Entity::new(EntityKind::Account, user),
            score: SCORE_TARGETED,
            summary: format!(
                "{f} failed logins from {ips} IPs within {}{}: this account is the target of distributed password guessing",
                c.window.to_string_h(),
                step.escalated_from()
                    .map(|b| format!(" (grown from {b} IPs)"))
                    .unwrap_or_default()
            ),
            evidence: serde_json::to_value(ev).unwrap_or_default(),
        });
    }

    /// A successful login (Dovecot login, SMTP AUTH, an authenticated submission).
    #[allow(clippy::too_many_arguments)]
    pub fn success(
        &mut self,
        cfg: &Config,
        ts: Ts,
        ip: Option<IpAddr>,
        asn: Option<u32>,
        user: &str,
        service: Service,
        out: &mut Vec<Alert>,
    ) {
        let c = &cfg.bruteforce;
        if user.is_empty() {
            return;
        }
        let key = user;
        // A name that failed before it ever logged in brings its guessing along (taken only
        // when the account is made).
        let names = &mut self.names;
        let at = self.accounts.entry_with(key, ts, || {
            let moved = names
                .get_mut(&name_key(user))
                .map(|g| Box::new(std::mem::replace(g, Guessing::new(NAME_SOURCES))));
            Cold::new(Account {
                places: Places::new(ts),
                guessing: moved,
                guessed_alerted: None,
                login_during_guessing: None,
            })
        });
        // Known even when disabled: the engine asks whether a name exists.
        let (true, Some(ip)) = (c.enabled, ip) else {
            return;
        };
        // Live for judging (which reads it) and for what the verdict writes.
        if let Some(acct) = self.accounts.at_mut(at) {
            acct.thaw();
        }
        if let Some(a) = self.addresses.get_mut(&ip) {
            a.logins.insert(name_key(user));
        }
        let verdict = self.judge(cfg, ts, (key, at), ip, asn);
        let Some(acct) = self.accounts.at_mut(at).map(Cold::thaw) else {
            return;
        };
        let origin = match verdict {
            Verdict::Usual | Verdict::Unremarkable | Verdict::OneDevice => {
                let during = match verdict {
                    Verdict::OneDevice => true,
                    Verdict::Unremarkable => under_guessing(acct, ts, c),
                    _ => false,
                };
                if during {
                    acct.login_during_guessing = Some(ts);
                }
                acct.places.learn(ip, asn);
                return;
            }
            Verdict::Suspicious(o) => o,
        };
        self.guessed_alert(cfg, ts, key, Some(ip), Some(service), origin, out);
    }

    /// Judge a successful login of the existing account `user` (at `at`) from `ip`.
    fn judge(
        &self,
        cfg: &Config,
        ts: Ts,
        (user, at): (&str, Handle),
        ip: IpAddr,
        asn: Option<u32>,
    ) -> Verdict {
        let c = &cfg.bruteforce;
        let quiet = c.attack_quiet.0;
        // Live: `success` thawed it before judging.
        let Some(acct) = self.accounts.at(at).map(Cold::view) else {
            return Verdict::Unremarkable;
        };
        let places = &acct.places;
        if places.owns(ip, asn) {
            return Verdict::Usual;
        }
        let history = places.has_history(ts, c.learn_period.0);
        // Where the failures against this account came from, but for its own places (failures
        // from an AS it was not yet known to use when they happened).
        let mem = c.source_memory.0;
        let sources = failing(&acct, ts, mem);
        let recent: u64 = sources.iter().map(|f| f.src.failures).sum();
        let net = geo::prefix_key(ip);
        let at_address: Vec<&Failing> = sources.iter().filter(|f| f.ip == ip).collect();
        let in_network: Vec<&Failing> = sources
            .iter()
            .filter(|f| geo::prefix_key(f.ip) == net)
            .collect();
        let in_as: Vec<&Failing> = match asn {
            Some(x) if !places.knows_asn(x) => {
                sources.iter().filter(|f| f.src.asn == Some(x)).collect()
            }
            _ => Vec::new(),
        };
        let (from_sources, matched) = if !at_address.is_empty() {
            (Some(Origin::GuessingAddress), at_address)
        } else if !in_network.is_empty() {
            (Some(Origin::GuessingNetwork), in_network)
        } else if !in_as.is_empty() {
            (Some(Origin::GuessingAs), in_as)
        } else {
            (None, Vec::new())
        };
        // Guessing is a guesser (an address trying many names) or several machines trying this
        // one: a success from where one device alone failed against this name only is the
        // owner's device with an old password (or typos), with or without history.
        let distributed = self.distributed(&sources);
        let mut one_device = false;
        if let Some(o) = from_sources.filter(|_| recent >= c.success_after_failures) {
            if distributed || matched.iter().any(|f| self.is_guesser(f.ip)) {
                return Verdict::Suspicious(o);
            }
            one_device = true;
        }
        // An attacker's address or network logging in to an account it guessed: the place is
        // new to the account (an owned place returned above) and the guessing involved this
        // account — its failures came from there, or its name was among those tried there. Any
        // other account logging in from a place called an attacker is one of the users behind
        // it (a customer of the ISP's /24, a webmail user), not a guessed password.
        let key = name_key(user);
        let address = self.addresses.get(&ip);
        let tried_here = address.is_some_and(|a| a.names.contains(key));
        if address.is_some_and(|a| a.attack.is_active(ts, quiet) && !a.is_shared())
            && (tried_here || sources.iter().any(|f| f.ip == ip))
        {
            return Verdict::Suspicious(Origin::AttackingAddress);
        }
        if self.networks.get(&net).is_some_and(|n| {
            n.attack.is_active(ts, quiet)
                && (tried_here
                    || n.day_names.within(ts, mem).iter().any(|(k, _)| *k == key)
                    || sources.iter().any(|f| geo::prefix_key(f.ip) == net))
        }) {
            return Verdict::Suspicious(Origin::AttackingNetwork);
        }
        // A member of the wave: it failed against several names within the wave (whose first
        // window precedes its reported start).
        if let Some(start) = self.wave.attack.start(ts, quiet) {
            if self.addresses.get(&ip).is_some_and(|a| {
                a.last.plus_secs(c.window.0) >= start && a.names.count() >= GUESSER_MIN_NAMES
            }) {
                return Verdict::Suspicious(Origin::Campaign);
            }
        }
        // From where the owner's device was failing: the owner, whoever else guesses.
        if one_device {
            return Verdict::OneDevice;
        }
        // A new place while the account is being guessed, not while one device of its owner
        // fails against it.
        let guessed = distributed || sources.iter().any(|f| self.is_guesser(f.ip));
        if history && places.is_new(ip, asn) && guessed && under_guessing(&acct, ts, c) {
            return Verdict::Suspicious(Origin::NewPlace);
        }
        Verdict::Unremarkable
    }

    /// Whether the address failed against at least [`GUESSER_MIN_NAMES`] names: a guesser.
    fn is_guesser(&self, ip: IpAddr) -> bool {
        self.addresses
            .get(&ip)
            .is_some_and(|a| a.names.count() >= GUESSER_MIN_NAMES)
    }

    /// Whether the failures against one name from addresses that are not guessers come from
    /// two addresses at once (their spans of failures overlap) or from more addresses than
    /// [`DEVICE_MAX_ADDRESSES`]: several machines, not one device at one address at a time,
    /// moving with its renumbered line.
    fn distributed(&self, sources: &[Failing]) -> bool {
        let mut spans: Vec<(Ts, Ts)> = sources
            .iter()
            .filter(|f| !self.is_guesser(f.ip))
            .map(|f| (f.src.first, f.last))
            .collect();
        if spans.len() > DEVICE_MAX_ADDRESSES {
            return true;
        }
        // Sorted by their first failure, two spans overlap only if two neighbours do.
        spans.sort_unstable();
        spans.windows(2).any(|w| w[1].0 <= w[0].1)
    }

    /// What the failures against an account look like (`None`: there were none).
    fn shape(&self, sources: &[Failing]) -> Option<Shape> {
        if sources.is_empty() {
            None
        } else if sources.iter().any(|f| self.is_guesser(f.ip)) {
            Some(Shape::Guesser)
        } else if self.distributed(sources) {
            Some(Shape::Distributed)
        } else {
            Some(Shape::OneDevice)
        }
    }

    /// auth-hijack raised an alert on `user`: if it logged in while being guessed, its
    /// password was probably guessed.
    pub fn sending_changed(&mut self, cfg: &Config, ts: Ts, user: &str, out: &mut Vec<Alert>) {
        let c = &cfg.bruteforce;
        if !c.enabled {
            return;
        }
        let key = user;
        let during = self
            .accounts
            .get(key)
            .and_then(|a| a.view().login_during_guessing)
            .is_some_and(|t| t.plus_secs(c.source_memory.0) >= ts);
        if during {
            self.guessed_alert(cfg, ts, key, None, None, Origin::ChangedSending, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn guessed_alert(
        &mut self,
        cfg: &Config,
        ts: Ts,
        user: &str,
        ip: Option<IpAddr>,
        service: Option<Service>,
        origin: Origin,
        out: &mut Vec<Alert>,
    ) {
        let c = &cfg.bruteforce;
        let Some(acct) = self.accounts.get_mut(user).map(Cold::thaw) else {
            return;
        };
        // One alert per attack on the account.
        if acct
            .guessed_alerted
            .is_some_and(|t| t.plus_secs(c.attack_quiet.0) >= ts)
        {
            acct.guessed_alerted = Some(ts);
            return;
        }
        acct.guessed_alerted = Some(ts);
        // Live: thawed just above.
        let Some(acct) = self.accounts.get(user).map(Cold::view) else {
            return;
        };
        let sources: Vec<(IpAddr, Source)> = acct
            .guessing
            .as_ref()
            .map(|g| g.sources.within(ts, c.source_memory.0))
            .unwrap_or_default();
        let failures: u64 = sources.iter().map(|(_, s)| s.failures).sum();
        let places_known = acct.places.addresses_known();
        let history = acct.places.has_history(ts, c.learn_period.0);
        let shape = self.shape(&failing(&acct, ts, c.source_memory.0));
        let ev = GuessedEvidence {
            origin,
            shape,
            success_ip: ip.map(|i| i.to_string()),
            service,
            account_failures: failures,
            failing_addresses: sources.len() as u64,
            sample_failure_ips: sources
                .iter()
                .take(SAMPLES)
                .map(|(a, _)| a.to_string())
                .collect(),
            places_known,
            history,
        };
        let how = match service {
            Some(Service::Smtp) => "SMTP AUTH ",
            Some(Service::Imap) => "IMAP ",
            Some(Service::Pop3) => "POP3 ",
            _ => "",
        };
        let from = ip.map(|i| format!(" from {i}")).unwrap_or_default();
        out.push(Alert {
            ts,
            detector: Detector::AuthBruteforce,
            entity: Entity::new(EntityKind::Account, user),
            score: origin.score(),
            summary: format!(
                "successful {how}login{from} {} ({failures} failed logins from {} addresses within {}): password probably guessed",
                origin.describe(),
                sources.len(),
                c.source_memory.to_string_h()
            ),
            evidence: serde_json::to_value(ev).unwrap_or_default(),
        });
    }
}

/// The addresses that failed against an account within `mem` seconds of `now`, but for its
/// own places, most recent first.
fn failing(acct: &Account, now: Ts, mem: i64) -> Vec<Failing> {
    acct.guessing
        .as_ref()
        .map(|g| g.sources.entries_within(now, mem))
        .unwrap_or_default()
        .into_iter()
        .filter(|(a, s, _)| !acct.places.owns(*a, s.asn))
        .map(|(ip, src, last)| Failing { ip, src, last })
        .collect()
}

/// Whether the account is being guessed now: at least `success_after_failures` failures from
/// outside its places within the window.
fn under_guessing(acct: &Account, ts: Ts, c: &crate::config::Bruteforce) -> bool {
    acct.guessing.as_ref().is_some_and(|g| {
        let mut f = g.failures.clone();
        f.expire(ts, c.window.0);
        f.get() >= c.success_after_failures
    })
}
