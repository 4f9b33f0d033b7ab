//! Incoming mail at our MX (issue 14): spam sources among the internet hosts that send to us,
//! and our own customers' machines looped back to our MX.
//!
//! Clayton ("Examining incoming server logs", CEAS 2005) found that the inbound MX's log finds
//! spam sources with the same "spam fails" heuristics as the smarthost's: a dictionary attack or
//! a list of stale addresses names many local users that do not exist, and ratware forges its
//! HELO to mislead. Three rules, each per sending host over a sliding window of event time:
//!
//! * `incoming-failures`: recipients refused as unknown local users, relative to what the host
//!   delivered (`min_unknown` refused and at least `min_unknown_share` of its recipients), per
//!   host (`client`) and per /24 or /48 (`network`, from at least `network_min_hosts` of its
//!   addresses, so that a cluster rotating addresses is found although each stays low);
//! * `incoming-helo`: a host announcing itself under several names, a HELO that names our own
//!   recipient's domain, a HELO that follows the MAIL FROM domain as it changes, or an address
//!   literal that is not the host's own address;
//! * `looped-back`: either of the above from an address that is ours (a customer in
//!   `own_networks` or learned from the outgoing mail): an infected customer machine talking
//!   to our MX directly, reported as our own `client`.
//!
//! Known good senders are never reported: hosts and networks the operator lists, and any host
//! whose window shows the behaviour of a real sender (at least `good_min_delivered` delivered
//! recipients at a success share of at least `good_min_success`).
//!
//! State is bounded (capped maps of hosts and networks; a few names and samples per host) and
//! every verdict is a function of the event stream alone.

use std::net::IpAddr;

use maillog::event::domain_of;
use maillog::Ts;
use serde::{Deserialize, Serialize};

use crate::alert::{round3, Alert, Detector, Entity, EntityKind};
use crate::bounded::BoundedMap;
use crate::bruteforce::network_of;
use crate::config::{Config, Incoming as Settings};
use crate::window::Counter;

/// Phrases of a refusal that mean "no such local user" (Postfix `User unknown in local
/// recipient table` / `virtual mailbox table`, Exim `Unrouteable address` for a local domain,
/// Sendmail `User unknown`, and the usual wordings of other MTAs and milters), lower case.
pub const UNKNOWN_USER_PHRASES: &[&str] = &[
    "user unknown",
    "unknown user",
    "unrouteable address",
    "no such user",
    "recipient unknown",
    "unknown recipient",
    "mailbox unavailable",
    "mailbox not found",
    "no mailbox",
    "does not exist",
    "invalid recipient",
];

/// Most distinct HELO names remembered per host (each with its last sighting): more than any
/// rule needs, so a host cycling thousands of names costs no more memory.
pub const MAX_HELOS: usize = 16;
/// HELO names, refused recipients and hosts quoted in an alert's evidence.
pub const EVIDENCE_SAMPLES: usize = 8;
/// Most failing hosts remembered per network (for the `network_min_hosts` count and evidence).
pub const MAX_NET_HOSTS: usize = 64;

/// Score of a host or network alert at the minimum failure share; it grows with the share.
const SCORE_FAILURES_BASE: f64 = 0.6;
/// Score of a HELO alert per sign, combined as 1 − Π(1 − w) (our own weights: naming our own
/// recipient's domain is the strongest tell, Clayton).
const W_RCPT_DOMAIN: f64 = 0.9;
/// A HELO that follows the MAIL FROM domain while it changes.
const W_FROM_DOMAIN: f64 = 0.8;
/// Several names from one host.
const W_MANY: f64 = 0.7;
/// An address literal that is not the host's own address.
const W_FOREIGN_LITERAL: f64 = 0.7;

/// Whether an address is a public one: a machine behind NAT announcing its private address
/// (`[192.168.178.20]`) tells nothing, one naming another public address is forging.
fn is_public(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            !(v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_documentation()
                // RFC 6598 shared address space (carrier-grade NAT).
                || (o[0] == 100 && (o[1] & 0xC0) == 64))
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            !(v.is_loopback()
                || v.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Whether a refusal's text says the recipient is no local user.
pub fn is_unknown_user(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    UNKNOWN_USER_PHRASES.iter().any(|p| r.contains(p))
}

/// What the log told about one transaction (or one refused recipient) of an incoming host.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    /// Event time.
    pub ts: Ts,
    /// The sending host.
    pub ip: IpAddr,
    /// Its autonomous system, when the geo data knows it.
    pub asn: Option<u32>,
    /// Its verified host name as logged (`unknown` when none).
    pub host: Option<&'a str>,
    /// Its HELO, when logged.
    pub helo: Option<&'a str>,
    /// Envelope sender.
    pub from: Option<&'a str>,
    /// The first recipient (for the HELO = RCPT TO domain sign).
    pub rcpt: Option<&'a str>,
    /// Recipients refused as unknown local users.
    pub unknown: u32,
    /// Refused addresses (samples for the evidence).
    pub unknown_addrs: Vec<&'a str>,
    /// Recipients delivered (locally, or forwarded on).
    pub delivered: u32,
    /// The address is ours (a customer): its alerts are `looped-back`.
    pub ours: bool,
    /// The spam filter's verdict on the message, when one was logged (`incoming-filter`).
    pub verdict: Option<maillog::Verdict>,
    /// Which filter gave it.
    pub filter: Option<maillog::Filter>,
    /// Its score, when logged.
    pub score: Option<f64>,
}

/// A HELO sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeloSign {
    /// At least `max_helos` distinct names from one host in the window.
    ManyNames,
    /// The HELO was the domain of the recipient (ours) in at least `helo_min_events` events.
    RcptDomain,
    /// The HELO was the MAIL FROM domain in at least `helo_min_events` events, and at least
    /// two distinct names each matched their own message's sender domain: it follows the
    /// forged sender.
    FromDomain,
    /// An address literal other than the host's own, in at least `helo_min_events` events.
    ForeignLiteral,
}

/// The evidence of an incoming alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncomingEvidence {
    /// Window the counts are over, seconds.
    pub window_secs: i64,
    /// Recipients refused as unknown local users in the window.
    pub unknown_rcpts: u64,
    /// Recipients delivered in the window.
    pub delivered_rcpts: u64,
    /// unknown / (unknown + delivered).
    pub unknown_share: f64,
    /// The autonomous system (of the host, or of the network's first failing host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// For a network: its failing hosts (first ones, in order of appearance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Failing hosts of the network in the window (all, up to the cap).
    #[serde(default)]
    pub failing_hosts: usize,
    /// HELO signs that fired (`incoming-helo`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signs: Vec<HeloSign>,
    /// Distinct HELO names in the window (up to [`MAX_HELOS`]).
    pub distinct_helos: usize,
    /// HELO names seen (first ones).
    pub helos: Vec<String>,
    /// Events whose HELO was the recipient's domain / the sender's domain / a foreign literal.
    pub rcpt_domain_helos: u64,
    /// See `rcpt_domain_helos`.
    pub from_domain_helos: u64,
    /// See `rcpt_domain_helos`.
    pub foreign_literal_helos: u64,
    /// Refused recipients (first ones).
    pub sample_unknown: Vec<String>,
    /// The host is one of our own addresses (looped back).
    pub ours: bool,
    /// The spam filter's verdicts (`incoming-filter`, and `looped-back` from them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<crate::incoming_filter::FilterEvidence>,
}

/// Per-host state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Host {
    unknown: Counter,
    delivered: Counter,
    rcpt_domain: Counter,
    from_domain: Counter,
    foreign_literal: Counter,
    /// (name hash, last seen secs), at most [`MAX_HELOS`].
    helos: Vec<(u64, i64)>,
    /// The names among `helos` that were the MAIL FROM domain of their own message (name
    /// hash, last such match secs), at most [`MAX_HELOS`]: a HELO *follows* the sender only
    /// when two of them did. A host whose own name matched and whose other names did not (a
    /// server and a machine behind the same address) does not follow anything.
    #[serde(default)]
    from_helos: Vec<(u64, i64)>,
    helo_names: Vec<String>,
    samples: Vec<String>,
    asn: Option<u32>,
    failures_alerted: Option<i64>,
    helo_alerted: Option<i64>,
}

/// Per-network state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Net {
    unknown: Counter,
    delivered: Counter,
    /// Failing hosts with their last failure (secs), at most [`MAX_NET_HOSTS`].
    hosts: Vec<(IpAddr, i64)>,
    asn: Option<u32>,
    samples: Vec<String>,
    alerted: Option<i64>,
}

/// Counters of the incoming detectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncomingStats {
    /// Events seen from incoming hosts.
    pub events: u64,
    /// Events from known good hosts (listed, or by behaviour) that were not judged.
    pub known_good: u64,
}

/// The incoming detectors' state.
#[derive(Debug, Serialize, Deserialize)]
pub struct Incoming {
    hosts: BoundedMap<IpAddr, Host>,
    nets: BoundedMap<String, Net>,
    stats: IncomingStats,
    /// `incoming-filter`.
    #[serde(default = "default_filter")]
    filter: crate::incoming_filter::IncomingFilter,
}

fn default_filter() -> crate::incoming_filter::IncomingFilter {
    crate::incoming_filter::IncomingFilter::new(&Config::default())
}

/// Mark `k` seen at `now` in a capped list of (key, last seen); a new key past `cap` is dropped.
pub(crate) fn touch<K: PartialEq>(v: &mut Vec<(K, i64)>, k: K, now: i64, cap: usize) {
    if let Some(e) = v.iter_mut().find(|(x, _)| *x == k) {
        e.1 = now;
    } else if v.len() < cap {
        v.push((k, now));
    }
}

/// The first [`EVIDENCE_SAMPLES`] hosts of a network's list, for the evidence.
pub(crate) fn host_samples(hosts: &[(IpAddr, i64)]) -> Vec<String> {
    hosts
        .iter()
        .take(EVIDENCE_SAMPLES)
        .map(|(a, _)| a.to_string())
        .collect()
}

/// The summary's note on an address of our own (a looped-back customer).
pub(crate) fn ours_note(ours: bool) -> &'static str {
    if ours {
        "; the address is one of our own"
    } else {
        ""
    }
}

fn push_sample(v: &mut Vec<String>, s: &str) {
    if v.len() < EVIDENCE_SAMPLES && !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

impl Incoming {
    /// Empty state with the caps of `cfg`.
    pub fn new(cfg: &Config) -> Incoming {
        Incoming {
            hosts: BoundedMap::new(cfg.incoming.max_hosts),
            nets: BoundedMap::new(cfg.incoming.max_hosts),
            stats: IncomingStats::default(),
            filter: crate::incoming_filter::IncomingFilter::new(cfg),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &IncomingStats {
        &self.stats
    }

    /// Counters of `incoming-filter`.
    pub fn filter_stats(&self) -> &crate::incoming_filter::FilterStats {
        self.filter.stats()
    }

    /// Whether the operator listed the host as a known good sender.
    fn listed_good(s: &Settings, ip: IpAddr, host: Option<&str>) -> bool {
        if s.known_good_networks.iter().any(|n| n.contains(ip)) {
            return true;
        }
        let Some(h) = host.filter(|h| !h.eq_ignore_ascii_case("unknown")) else {
            return false;
        };
        s.known_good_hosts
            .iter()
            .any(|suffix| is_host_or_subdomain(h, suffix))
    }

    /// Feed one observation; alerts go to `out`.
    pub fn observe(&mut self, cfg: &Config, seen: &Seen<'_>, out: &mut Vec<Alert>) {
        let s = &cfg.incoming;
        if !s.enabled {
            return;
        }
        self.stats.events += 1;
        let listed = Self::listed_good(s, seen.ip, seen.host);
        // The filter's verdicts are judged before the known-good shortcuts below: a spam
        // source writing to valid users delivers as well as a real sender does.
        self.filter.observe(cfg, seen, listed, out);
        if listed {
            self.stats.known_good += 1;
            return;
        }
        let w = s.window.0;
        let now = seen.ts.secs();
        let h = self
            .hosts
            .get_or_insert_with(&seen.ip, seen.ts, Host::default);
        h.asn = h.asn.or(seen.asn);
        h.unknown.add(seen.ts, seen.unknown, w);
        h.delivered.add(seen.ts, seen.delivered, w);
        for a in &seen.unknown_addrs {
            push_sample(&mut h.samples, a);
        }
        if let Some(helo) = seen.helo.filter(|x| !x.is_empty()) {
            let key = maillog::hash::str_key_ci(helo);
            h.helos.retain(|(_, t)| *t > now - w);
            h.from_helos.retain(|(_, t)| *t > now - w);
            touch(&mut h.helos, key, now, MAX_HELOS);
            push_sample(&mut h.helo_names, helo);
            let from_dom = seen.from.and_then(domain_of);
            let rcpt_dom = seen.rcpt.and_then(domain_of);
            let follows_from = from_dom.is_some_and(|d| d.eq_ignore_ascii_case(helo));
            if follows_from {
                touch(&mut h.from_helos, key, now, MAX_HELOS);
            }
            h.rcpt_domain.add(
                seen.ts,
                u32::from(rcpt_dom.is_some_and(|d| d.eq_ignore_ascii_case(helo))),
                w,
            );
            h.from_domain.add(seen.ts, u32::from(follows_from), w);
            let literal = helo
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .and_then(maillog::ip::parse_logged);
            h.foreign_literal.add(
                seen.ts,
                u32::from(literal.is_some_and(|a| a != seen.ip && is_public(a))),
                w,
            );
        } else {
            h.rcpt_domain.expire(seen.ts, w);
            h.from_domain.expire(seen.ts, w);
            h.foreign_literal.expire(seen.ts, w);
        }
        let (unknown, delivered) = (h.unknown.get(), h.delivered.get());
        // Behaviour of a real sender: much delivered, little refused.
        let good = delivered >= s.good_min_delivered
            && delivered as f64 >= s.good_min_success * (unknown + delivered) as f64;
        if good {
            self.stats.known_good += 1;
            return;
        }
        let detector = |d: Detector| if seen.ours { Detector::LoopedBack } else { d };
        let share = |u: u64, d: u64| {
            if u + d == 0 {
                0.0
            } else {
                u as f64 / (u + d) as f64
            }
        };
        let evidence = |h: &Host, signs: Vec<HeloSign>| IncomingEvidence {
            window_secs: w,
            unknown_rcpts: h.unknown.get(),
            delivered_rcpts: h.delivered.get(),
            unknown_share: round3(share(h.unknown.get(), h.delivered.get())),
            asn: h.asn,
            hosts: Vec::new(),
            failing_hosts: 0,
            signs,
            distinct_helos: h.helos.len(),
            helos: h.helo_names.clone(),
            rcpt_domain_helos: h.rcpt_domain.get(),
            from_domain_helos: h.from_domain.get(),
            foreign_literal_helos: h.foreign_literal.get(),
            sample_unknown: h.samples.clone(),
            ours: seen.ours,
            filter: None,
        };
        let due = |last: Option<i64>| last.is_none_or(|t| now - t >= w);
        // incoming-failures (looped-back) on the host.
        let sh = share(unknown, delivered);
        if unknown >= s.min_unknown && sh >= s.min_unknown_share && due(h.failures_alerted) {
            h.failures_alerted = Some(now);
            let ev = evidence(h, Vec::new());
            out.push(Alert {
                ts: seen.ts,
                detector: detector(Detector::IncomingFailures),
                entity: Entity::new(EntityKind::Client, seen.ip.to_string()),
                score: failure_score(sh, s.min_unknown_share),
                summary: format!(
                    "{} recipients refused as unknown local users and {} delivered in {} ({:.0}% unknown){}",
                    unknown,
                    delivered,
                    String::from(crate::config::Duration(w)),
                    sh * 100.0,
                    ours_note(seen.ours)
                ),
                evidence: serde_json::to_value(ev).unwrap_or_default(),
            });
        }
        // incoming-helo (looped-back) on the host.
        let mut signs = Vec::new();
        let min_ev = s.helo_min_events;
        // Several names behind one of our own addresses is a customer's NAT (helo-anomaly
        // judges those with what it knows of NATs); from the internet it is one host.
        if h.helos.len() >= s.max_helos && !seen.ours {
            signs.push(HeloSign::ManyNames);
        }
        if h.rcpt_domain.get() >= min_ev {
            signs.push(HeloSign::RcptDomain);
        }
        if h.from_domain.get() >= min_ev && h.from_helos.len() >= 2 {
            signs.push(HeloSign::FromDomain);
        }
        if h.foreign_literal.get() >= min_ev {
            signs.push(HeloSign::ForeignLiteral);
        }
        if !signs.is_empty() && due(h.helo_alerted) {
            h.helo_alerted = Some(now);
            let score = 1.0
                - signs
                    .iter()
                    .map(|x| {
                        1.0 - match x {
                            HeloSign::RcptDomain => W_RCPT_DOMAIN,
                            HeloSign::FromDomain => W_FROM_DOMAIN,
                            HeloSign::ManyNames => W_MANY,
                            HeloSign::ForeignLiteral => W_FOREIGN_LITERAL,
                        }
                    })
                    .product::<f64>();
            let names: Vec<&str> = signs
                .iter()
                .map(|x| match x {
                    HeloSign::ManyNames => "several names",
                    HeloSign::RcptDomain => "HELO = our recipient's domain",
                    HeloSign::FromDomain => "HELO follows the MAIL FROM domain",
                    HeloSign::ForeignLiteral => "HELO names another address",
                })
                .collect();
            let ev = evidence(h, signs);
            out.push(Alert {
                ts: seen.ts,
                detector: detector(Detector::IncomingHelo),
                entity: Entity::new(EntityKind::Client, seen.ip.to_string()),
                score: round3(score),
                summary: format!(
                    "forged HELO: {} ({} distinct names){}",
                    names.join(", "),
                    h.helos.len(),
                    ours_note(seen.ours)
                ),
                evidence: serde_json::to_value(ev).unwrap_or_default(),
            });
        }
        // The network: our own addresses are reported one by one, as customers.
        if seen.ours {
            return;
        }
        let key = network_of(seen.ip);
        let n = self.nets.get_or_insert_with(&key, seen.ts, Net::default);
        n.asn = n.asn.or(seen.asn);
        n.unknown.add(seen.ts, seen.unknown, w);
        n.delivered.add(seen.ts, seen.delivered, w);
        n.hosts.retain(|(_, t)| *t > now - w);
        if seen.unknown > 0 {
            touch(&mut n.hosts, seen.ip, now, MAX_NET_HOSTS);
            for a in &seen.unknown_addrs {
                push_sample(&mut n.samples, a);
            }
        }
        let (nu, nd) = (n.unknown.get(), n.delivered.get());
        let nsh = share(nu, nd);
        if n.hosts.len() as u64 >= s.network_min_hosts
            && nu >= s.network_min_unknown
            && nsh >= s.min_unknown_share
            && due(n.alerted)
        {
            n.alerted = Some(now);
            let ev = IncomingEvidence {
                window_secs: w,
                unknown_rcpts: nu,
                delivered_rcpts: nd,
                unknown_share: round3(nsh),
                asn: n.asn,
                hosts: host_samples(&n.hosts),
                failing_hosts: n.hosts.len(),
                signs: Vec::new(),
                distinct_helos: 0,
                helos: Vec::new(),
                rcpt_domain_helos: 0,
                from_domain_helos: 0,
                foreign_literal_helos: 0,
                sample_unknown: n.samples.clone(),
                ours: false,
                filter: None,
            };
            out.push(Alert {
                ts: seen.ts,
                detector: Detector::IncomingFailures,
                entity: Entity::new(EntityKind::Network, key.clone()),
                score: failure_score(nsh, s.min_unknown_share),
                summary: format!(
                    "{} recipients refused as unknown local users from {} hosts of {} and {} delivered in {} ({:.0}% unknown)",
                    nu,
                    n.hosts.len(),
                    key,
                    nd,
                    String::from(crate::config::Duration(w)),
                    nsh * 100.0
                ),
                evidence: serde_json::to_value(ev).unwrap_or_default(),
            });
        }
    }
}

/// Score of a failure alert: [`SCORE_FAILURES_BASE`] at the minimum share, 1 at 100%.
fn failure_score(share: f64, min_share: f64) -> f64 {
    let span = (1.0 - min_share).max(1e-9);
    round3(
        (SCORE_FAILURES_BASE + (1.0 - SCORE_FAILURES_BASE) * ((share - min_share) / span))
            .clamp(0.0, 1.0),
    )
}

/// Whether host name `host` is `suffix` (a leading dot ignored) or a name under it, ignoring
/// ASCII case: what lower-casing both and comparing, or looking for `.suffix` at the end, says,
/// without the two strings that made for every message and listed name (0.4% of `analyze`'s
/// instructions on the benchmark log; docs/PERFORMANCE.md, "Steps of 2026-12-07, afternoon").
pub(crate) fn is_host_or_subdomain(host: &str, suffix: &str) -> bool {
    let (h, s) = (host.as_bytes(), suffix.trim_start_matches('.').as_bytes());
    let Some(cut) = h.len().checked_sub(s.len()) else {
        return false;
    };
    h[cut..].eq_ignore_ascii_case(s) && (cut == 0 || h[cut - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `is_host_or_subdomain` says what lower-casing both names and comparing them, or looking
    /// for the suffix after a dot, says.
    #[test]
    fn a_host_under_a_listed_name_is_found_as_by_lower_casing() {
        let hosts = [
            "",
            ".",
            "mx.example.com",
            "MX.Example.COM",
            "example.com",
            "badexample.com",
            "a.b.example.com.",
            "exämple.com",
            "x.exämple.com",
            "com",
            "m",
        ];
        let suffixes = [
            "",
            ".",
            "example.com",
            ".Example.com",
            "com",
            "exämple.com",
            "..com",
        ];
        for h in hosts {
            for suffix in suffixes {
                let hl = h.to_ascii_lowercase();
                let suf = suffix.trim_start_matches('.').to_ascii_lowercase();
                let want = hl == suf || hl.ends_with(&format!(".{suf}"));
                assert_eq!(is_host_or_subdomain(h, suffix), want, "{h:?} {suffix:?}");
            }
        }
    }

    const T0: i64 = 1_763_280_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    /// One event from `host`: `unknown` refused, `delivered` delivered, with `helo`.
    fn seen<'a>(t: i64, host: &str, helo: &'a str, unknown: u32, delivered: u32) -> Seen<'a> {
        Seen {
            ts: Ts::from_secs(T0 + t),
            ip: ip(host),
            asn: Some(64_500),
            host: None,
            helo: Some(helo),
            from: Some("x@sender.example"),
            rcpt: Some("user@our.example"),
            unknown,
            unknown_addrs: Vec::new(),
            delivered,
            ours: false,
            verdict: None,
            filter: None,
            score: None,
        }
    }

    fn run(cfg: &Config, events: &[Seen<'_>]) -> Vec<Alert> {
        let mut d = Incoming::new(cfg);
        let mut out = Vec::new();
        for e in events {
            d.observe(cfg, e, &mut out);
        }
        out
    }

    fn names(v: &[Alert]) -> Vec<(Detector, EntityKind, String)> {
        v.iter()
            .map(|a| (a.detector, a.entity.kind, a.entity.id.clone()))
            .collect()
    }

    #[test]
    fn unknown_users_from_one_host_alert_once_at_the_threshold() {
        let cfg = Config::default();
        let ev: Vec<Seen> = (0..30)
            .map(|i| seen(i * 60, "198.51.100.7", "mx.spam.example", 1, 0))
            .collect();
        let out = run(&cfg, &ev[..19]);
        assert!(out.is_empty(), "{:?}", names(&out));
        let out = run(&cfg, &ev);
        assert_eq!(
            names(&out),
            vec![(
                Detector::IncomingFailures,
                EntityKind::Client,
                "198.51.100.7".into()
            )]
        );
        assert!(crate::evidence::Evidence::of(&out[0]).is_some());
        let e: IncomingEvidence = serde_json::from_value(out[0].evidence.clone()).unwrap();
        assert_eq!((e.unknown_rcpts, e.delivered_rcpts), (20, 0));
    }

    #[test]
    fn a_cluster_under_the_host_limit_is_found_as_its_network() {
        let cfg = Config::default();
        let ev: Vec<Seen> = (0..24)
            .map(|i| {
                let host = format!("203.0.113.{}", 10 + i % 4);
                seen(i * 60, Box::leak(host.into_boxed_str()), "x.example", 1, 0)
            })
            .collect();
        let out = run(&cfg, &ev);
        assert_eq!(
            names(&out),
            vec![(
                Detector::IncomingFailures,
                EntityKind::Network,
                "203.0.113.0/24".into()
            )]
        );
    }

    #[test]
    fn real_senders_with_dead_addresses_are_not_reported() {
        let cfg = Config::default();
        // A newsletter sender: 15% of its recipients here are dead (the dirtiest real lists).
        let ev: Vec<Seen> = (0..400)
            .map(|i| {
                seen(
                    i * 60,
                    "192.0.2.50",
                    "o1.mailer.example",
                    u32::from(i % 7 == 0),
                    u32::from(i % 7 != 0),
                )
            })
            .collect();
        assert!(run(&cfg, &ev).is_empty());
        // A big provider's server refused a burst of unknowns after much delivered mail: its
        // behaviour is a real sender's (≥ 100 delivered at ≥ 90%).
        let mut ev: Vec<Seen> = (0..300)
            .map(|i| seen(i * 10, "192.0.2.60", "mail-10.provider.example", 0, 1))
            .collect();
        ev.extend((0..25).map(|i| seen(4000 + i, "192.0.2.60", "mail-10.provider.example", 1, 0)));
        assert!(run(&cfg, &ev).is_empty());
    }

    #[test]
    fn listed_good_senders_are_never_reported() {
        let mut cfg = Config::default();
        let mut ev: Vec<Seen> = (0..40)
            .map(|i| seen(i * 60, "198.51.100.8", "a.example", 1, 0))
            .collect();
        for e in ev.iter_mut() {
            e.host = Some("mail-40.outbound.provider.example");
        }
        assert!(!run(&cfg, &ev).is_empty());
        cfg.incoming.known_good_hosts = vec!["provider.example".into()];
        assert!(run(&cfg, &ev).is_empty());
        cfg.incoming.known_good_hosts.clear();
        cfg.incoming.known_good_networks = vec!["198.51.100.0/24".parse().unwrap()];
        assert!(run(&cfg, &ev).is_empty());
    }

    #[test]
    fn helo_signs() {
        let cfg = Config::default();
        // Rotating names.
        let rot = ["mta1.x.example", "mta2.x.example", "mta3.x.example"];
        let ev: Vec<Seen> = rot
            .iter()
            .enumerate()
            .map(|(i, h)| seen(i as i64, "198.51.100.9", h, 0, 0))
            .collect();
        let out = run(&cfg, &ev);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].detector, Detector::IncomingHelo);
        // Our recipient's domain as HELO, twice.
        let ev: Vec<Seen> = (0..2)
            .map(|i| seen(i, "198.51.100.10", "our.example", 0, 0))
            .collect();
        assert_eq!(run(&cfg, &ev).len(), 1);
        // A server whose HELO is its bare domain, the domain of its own mail: legitimate.
        let mut ev: Vec<Seen> = (0..20)
            .map(|i| seen(i, "198.51.100.11", "sender.example", 0, 1))
            .collect();
        assert!(run(&cfg, &ev).is_empty());
        // …but following the sender domain as it changes is forging.
        ev[5].helo = Some("other.example");
        ev[5].from = Some("y@other.example");
        ev[6].helo = Some("other.example");
        ev[6].from = Some("y@other.example");
        assert_eq!(run(&cfg, &ev).len(), 1);
        // A machine behind NAT announcing its private address is no forger; another public
        // address is.
        let ev: Vec<Seen> = (0..5)
            .map(|i| seen(i, "198.51.100.12", "[192.168.178.20]", 0, 0))
            .collect();
        assert!(run(&cfg, &ev).is_empty());
        let ev: Vec<Seen> = (0..5)
            .map(|i| seen(i, "198.51.100.12", "[93.184.216.34]", 0, 0))
            .collect();
        assert_eq!(run(&cfg, &ev).len(), 1);
    }

    /// Test seed 108: a web-hosting server (HELO = its own domain = the sender domain of its
    /// mail) and a home machine with another name behind the same address. Two names, and the
    /// sender domain matched often, but only one name ever matched: nothing follows the sender.
    #[test]
    fn one_matching_name_beside_another_name_does_not_follow_the_sender() {
        let cfg = Config::default();
        let mut ev: Vec<Seen> = (0..20)
            .map(|i| {
                let mut s = seen(i * 60, "192.0.2.79", "sender.example", 0, 1);
                s.ours = true;
                s
            })
            .collect();
        for e in ev.iter_mut().skip(3).step_by(4) {
            e.helo = Some("home-pc.dsl.isp.example");
            e.from = Some("someone@webmail.example");
        }
        let out = run(&cfg, &ev);
        assert!(out.is_empty(), "{:?}", names(&out));
        // The same address whose second name also matched its own sender domain does follow.
        for e in ev.iter_mut().skip(3).step_by(4) {
            e.from = Some("someone@home-pc.dsl.isp.example");
        }
        let out = run(&cfg, &ev);
        assert_eq!(
            names(&out),
            vec![(
                Detector::LoopedBack,
                EntityKind::Client,
                "192.0.2.79".into()
            )]
        );
    }

    #[test]
    fn our_own_addresses_are_looped_back_and_never_a_network() {
        let cfg = Config::default();
        let ev: Vec<Seen> = (0..30)
            .map(|i| {
                let mut s = seen(i * 60, "192.0.2.77", "paypal.com", 1, 0);
                s.from = Some("service@paypal.com");
                s.ours = true;
                s
            })
            .collect();
        let out = run(&cfg, &ev);
        assert_eq!(
            names(&out),
            vec![(
                Detector::LoopedBack,
                EntityKind::Client,
                "192.0.2.77".into()
            ),]
        );
        // A customer's NAT with many HELO names writing to our users is not looped back.
        let ev: Vec<Seen> = (0..10)
            .map(|i| {
                let h = format!("DESKTOP-{i}.firm.local");
                let mut s = seen(i, "192.0.2.78", Box::leak(h.into_boxed_str()), 0, 1);
                s.ours = true;
                s
            })
            .collect();
        assert!(run(&cfg, &ev).is_empty());
    }

    #[test]
    fn refusal_wordings() {
        for r in [
            "550 5.1.1 <a@b>: Recipient address rejected: User unknown in virtual mailbox table",
            "Unrouteable address",
            "550 5.1.1 <a@b>: Recipient address rejected: User unknown in local recipient table",
        ] {
            assert!(is_unknown_user(r), "{r}");
        }
        for r in [
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            "450 4.7.1 <x>: Helo command rejected: Host not found",
            "relay not permitted",
        ] {
            assert!(!is_unknown_user(r), "{r}");
        }
    }
}
