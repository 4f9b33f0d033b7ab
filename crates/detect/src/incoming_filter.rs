//! `incoming-filter` (issue 14): internet hosts and networks whose mail to our users the spam
//! filter judged spam, relative to what they delivered, **with forwarding discounted**.
//!
//! The MX's spam filter (amavis, `spamd`, rspamd, a milter's or Exim's refusal after DATA; see
//! [`maillog::filter`]) judges every message; the correlator joins its verdict to the message
//! record and the engine hands it here with the sending host. A spam source that names only
//! valid recipients and a plausible HELO passes `incoming-failures` and `incoming-helo`
//! unseen; its verdicts give it away.
//!
//! The rule, per host over the incoming `window`: at least `filter_min_spam` spam (or malware)
//! verdicts and a spam share of at least `filter_min_spam_share` of the host's judged messages.
//! Per /24 (IPv6 /48): at least `filter_network_min_spam` spam verdicts from at least
//! `network_min_hosts` of its addresses at the same share (a snowshoe spreading its mail thin).
//!
//! **Forwarding discount.** A university or provider forwarding its users' mail to their
//! mailboxes here carries the spam those users receive, and is no source: it is never
//! reported, by this rule or in its network's counts, when
//! - it is listed (`forwarders`, `forwarder_hosts`, or the incoming known-good lists), or
//! - at least `forward_min_ham_share` of its judged messages are ham (it carries real mail
//!   too) **and** either at least `forward_min_srs_share` of them come from SRS-rewritten
//!   senders (`SRS0=`/`SRS1=`, the Sender Rewriting Scheme forwarders use to pass SPF), or its
//!   mail is concentrated on a few of our users: at most `forward_max_rcpts` distinct
//!   recipients, each receiving on average at least `forward_min_msgs_per_rcpt` messages.
//!
//! A spam source forging SRS senders or writing to a handful of users only is still reported
//! while its mail is nearly all spam (the ham share condition). Our own customers' machines
//! (`ours`) are judged by the same rule and reported as `looped-back`.
//!
//! Our own idea, after Clayton's "spam-filter verdicts on the inbound MX" (CEAS 2005), with its
//! warning about forwarders carrying other people's spam.

use std::net::IpAddr;

use maillog::Verdict;
use serde::{Deserialize, Serialize};

use crate::alert::{round3, Alert, Detector, Entity, EntityKind};
use crate::bounded::BoundedMap;
use crate::bruteforce::network_of;
use crate::config::Config;
use crate::incoming::{host_samples, ours_note, touch, IncomingEvidence, Seen, MAX_NET_HOSTS};
use crate::window::Counter;

/// Most distinct recipients remembered per host for the concentration test (more than any
/// `forward_max_rcpts` allowed: past it a host is not concentrated anyway).
pub const MAX_FWD_RCPTS: usize = 32;
/// Score of an alert at the minimum spam share; it grows to 1 at 100% (the same scale as
/// `incoming-failures`).
const SCORE_BASE: f64 = 0.6;

/// What the filter said about one host (or network) in the window, for the evidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterEvidence {
    /// Messages judged spam or malware.
    pub spam: u64,
    /// Messages judged at all (ham, spam, malware).
    pub judged: u64,
    /// spam / judged.
    pub spam_share: f64,
    /// Judged messages from SRS-rewritten senders.
    pub srs: u64,
    /// Distinct recipients (up to [`MAX_FWD_RCPTS`]).
    pub distinct_rcpts: usize,
    /// The filters that judged (`amavis`, `spamd`, `rspamd`, `refusal`).
    pub filters: Vec<maillog::Filter>,
    /// Highest spam score seen, when the filter logs scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_score: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Host {
    spam: Counter,
    judged: Counter,
    srs: Counter,
    /// (recipient hash, last seen secs), at most [`MAX_FWD_RCPTS`].
    rcpts: Vec<(u64, i64)>,
    filters: Vec<maillog::Filter>,
    max_score: Option<f64>,
    asn: Option<u32>,
    alerted: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Net {
    spam: Counter,
    judged: Counter,
    /// Hosts with spam verdicts and their last one (secs), at most [`MAX_NET_HOSTS`].
    hosts: Vec<(IpAddr, i64)>,
    filters: Vec<maillog::Filter>,
    asn: Option<u32>,
    alerted: Option<i64>,
}

/// Counters of `incoming-filter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterStats {
    /// Messages with a verdict seen from incoming hosts.
    pub judged: u64,
    /// Of which spam or malware.
    pub spam: u64,
    /// Judged messages of hosts taken for forwarders (listed or by behaviour) when they were
    /// seen.
    pub forwarded: u64,
}

/// The state of `incoming-filter`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IncomingFilter {
    hosts: BoundedMap<IpAddr, Host>,
    nets: BoundedMap<String, Net>,
    stats: FilterStats,
}

/// Whether an envelope sender was rewritten by the Sender Rewriting Scheme (`SRS0=…`,
/// `SRS1=…`, any case).
pub fn is_srs(sender: &str) -> bool {
    let b = sender.as_bytes();
    b.len() > 5
        && b[..3].eq_ignore_ascii_case(b"SRS")
        && matches!(b[3], b'0' | b'1')
        && b[4] == b'='
}

fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn push_filter(v: &mut Vec<maillog::Filter>, f: maillog::Filter) {
    if !v.contains(&f) {
        v.push(f);
    }
}

impl IncomingFilter {
    /// Empty state with the caps of `cfg`.
    pub fn new(cfg: &Config) -> IncomingFilter {
        IncomingFilter {
            hosts: BoundedMap::new(cfg.incoming.max_hosts),
            nets: BoundedMap::new(cfg.incoming.max_hosts),
            stats: FilterStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &FilterStats {
        &self.stats
    }

    /// Whether the operator listed the host as a forwarder.
    fn listed_forwarder(cfg: &Config, ip: IpAddr, host: Option<&str>) -> bool {
        let s = &cfg.incoming;
        if s.forwarders.iter().any(|n| n.contains(ip)) {
            return true;
        }
        let Some(h) = host.filter(|h| !h.eq_ignore_ascii_case("unknown")) else {
            return false;
        };
        s.forwarder_hosts
            .iter()
            .any(|suffix| crate::incoming::is_host_or_subdomain(h, suffix))
    }

    /// Feed one message of an incoming host (`listed_good`: the incoming known-good lists name
    /// it). Only messages with a verdict count.
    pub fn observe(
        &mut self,
        cfg: &Config,
        seen: &Seen<'_>,
        listed_good: bool,
        out: &mut Vec<Alert>,
    ) {
        let s = &cfg.incoming;
        let Some(verdict) = seen.verdict else { return };
        let bad = match verdict {
            Verdict::Spam | Verdict::Malware => true,
            Verdict::Ham => false,
            Verdict::Other => return,
        };
        self.stats.judged += 1;
        self.stats.spam += u64::from(bad);
        let w = s.window.0;
        let now = seen.ts.secs();
        let h = self
            .hosts
            .get_or_insert_with(&seen.ip, seen.ts, Host::default);
        h.asn = h.asn.or(seen.asn);
        h.spam.add(seen.ts, u32::from(bad), w);
        h.judged.add(seen.ts, 1, w);
        h.srs
            .add(seen.ts, u32::from(seen.from.is_some_and(is_srs)), w);
        h.rcpts.retain(|(_, t)| *t > now - w);
        if let Some(r) = seen.rcpt {
            let k = maillog::hash::str_key_ci(r);
            if let Some(e) = h.rcpts.iter_mut().find(|(x, _)| *x == k) {
                e.1 = now;
            } else if h.rcpts.len() < MAX_FWD_RCPTS {
                h.rcpts.push((k, now));
            }
        }
        if let Some(f) = seen.filter {
            push_filter(&mut h.filters, f);
        }
        if bad {
            if let Some(sc) = seen.score {
                h.max_score = Some(h.max_score.map_or(sc, |m: f64| m.max(sc)));
            }
        }
        let (spam, judged) = (h.spam.get(), h.judged.get());
        let ham_share = 1.0 - share(spam, judged);
        let n_rcpts = h.rcpts.len();
        let concentrated = n_rcpts <= s.forward_max_rcpts
            && judged as f64 >= s.forward_min_msgs_per_rcpt * n_rcpts.max(1) as f64;
        let by_behaviour = ham_share >= s.forward_min_ham_share
            && (share(h.srs.get(), judged) >= s.forward_min_srs_share || concentrated);
        if listed_good || Self::listed_forwarder(cfg, seen.ip, seen.host) || by_behaviour {
            self.stats.forwarded += 1;
            return;
        }
        let ev_of = |h: &Host| FilterEvidence {
            spam: h.spam.get(),
            judged: h.judged.get(),
            spam_share: round3(share(h.spam.get(), h.judged.get())),
            srs: h.srs.get(),
            distinct_rcpts: h.rcpts.len(),
            filters: h.filters.clone(),
            max_score: h.max_score,
        };
        let sh = share(spam, judged);
        let due = |last: Option<i64>| last.is_none_or(|t| now - t >= w);
        if spam >= s.filter_min_spam && sh >= s.filter_min_spam_share && due(h.alerted) {
            h.alerted = Some(now);
            let detector = if seen.ours {
                Detector::LoopedBack
            } else {
                Detector::IncomingFilter
            };
            let ev = IncomingEvidence {
                window_secs: w,
                asn: h.asn,
                ours: seen.ours,
                filter: Some(ev_of(h)),
                ..IncomingEvidence::default()
            };
            out.push(Alert {
                ts: seen.ts,
                detector,
                entity: Entity::new(EntityKind::Client, seen.ip.to_string()),
                score: score(sh, s.filter_min_spam_share),
                summary: format!(
                    "{} of {} messages to our users judged spam by the filter in {} ({:.0}%){}",
                    spam,
                    judged,
                    String::from(crate::config::Duration(w)),
                    sh * 100.0,
                    ours_note(seen.ours)
                ),
                evidence: serde_json::to_value(ev).unwrap_or_default(),
            });
        }
        if seen.ours {
            return;
        }
        let key = network_of(seen.ip);
        let n = self.nets.get_or_insert_with(&key, seen.ts, Net::default);
        n.asn = n.asn.or(seen.asn);
        n.spam.add(seen.ts, u32::from(bad), w);
        n.judged.add(seen.ts, 1, w);
        n.hosts.retain(|(_, t)| *t > now - w);
        if bad {
            touch(&mut n.hosts, seen.ip, now, MAX_NET_HOSTS);
        }
        if let Some(f) = seen.filter {
            push_filter(&mut n.filters, f);
        }
        let (ns, nj) = (n.spam.get(), n.judged.get());
        let nsh = share(ns, nj);
        if n.hosts.len() as u64 >= s.network_min_hosts
            && ns >= s.filter_network_min_spam
            && nsh >= s.filter_min_spam_share
            && due(n.alerted)
        {
            n.alerted = Some(now);
            let ev = IncomingEvidence {
                window_secs: w,
                asn: n.asn,
                hosts: host_samples(&n.hosts),
                failing_hosts: n.hosts.len(),
                filter: Some(FilterEvidence {
                    spam: ns,
                    judged: nj,
                    spam_share: round3(nsh),
                    filters: n.filters.clone(),
                    ..FilterEvidence::default()
                }),
                ..IncomingEvidence::default()
            };
            out.push(Alert {
                ts: seen.ts,
                detector: Detector::IncomingFilter,
                entity: Entity::new(EntityKind::Network, key.clone()),
                score: score(nsh, s.filter_min_spam_share),
                summary: format!(
                    "{} of {} messages to our users from {} hosts of {} judged spam by the filter in {} ({:.0}%)",
                    ns,
                    nj,
                    n.hosts.len(),
                    key,
                    String::from(crate::config::Duration(w)),
                    nsh * 100.0
                ),
                evidence: serde_json::to_value(ev).unwrap_or_default(),
            });
        }
    }
}

/// Score of an alert: [`SCORE_BASE`] at the minimum share, 1 at 100%.
fn score(share: f64, min_share: f64) -> f64 {
    let span = (1.0 - min_share).max(1e-9);
    round3((SCORE_BASE + (1.0 - SCORE_BASE) * ((share - min_share) / span)).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maillog::Ts;

    const T0: i64 = 1_763_280_000;

    /// One judged message from `host` to `rcpt` from `from`.
    fn msg<'a>(t: i64, host: &str, rcpt: &'a str, from: &'a str, v: Verdict) -> Seen<'a> {
        Seen {
            ts: Ts::from_secs(T0 + t),
            ip: host.parse().expect("test address"),
            asn: Some(64_500),
            host: None,
            helo: Some("mail.sender.example"),
            from: Some(from),
            rcpt: Some(rcpt),
            unknown: 0,
            unknown_addrs: Vec::new(),
            delivered: 1,
            ours: false,
            verdict: Some(v),
            filter: Some(maillog::Filter::Rspamd),
            score: Some(if v == Verdict::Spam { 9.0 } else { 1.0 }),
        }
    }

    const USERS: [&str; 40] = [
        "u0@our.example",
        "u1@our.example",
        "u2@our.example",
        "u3@our.example",
        "u4@our.example",
        "u5@our.example",
        "u6@our.example",
        "u7@our.example",
        "u8@our.example",
        "u9@our.example",
        "v0@our.example",
        "v1@our.example",
        "v2@our.example",
        "v3@our.example",
        "v4@our.example",
        "v5@our.example",
        "v6@our.example",
        "v7@our.example",
        "v8@our.example",
        "v9@our.example",
        "w0@our.example",
        "w1@our.example",
        "w2@our.example",
        "w3@our.example",
        "w4@our.example",
        "w5@our.example",
        "w6@our.example",
        "w7@our.example",
        "w8@our.example",
        "w9@our.example",
        "x0@our.example",
        "x1@our.example",
        "x2@our.example",
        "x3@our.example",
        "x4@our.example",
        "x5@our.example",
        "x6@our.example",
        "x7@our.example",
        "x8@our.example",
        "x9@our.example",
    ];

    fn run(cfg: &Config, ev: &[Seen<'_>]) -> Vec<Alert> {
        let mut d = IncomingFilter::new(cfg);
        let mut out = Vec::new();
        for e in ev {
            d.observe(cfg, e, false, &mut out);
        }
        out
    }

    #[test]
    fn a_spam_source_to_valid_users_is_reported_once() {
        let cfg = Config::default();
        let ev: Vec<Seen> = (0..40)
            .map(|i| {
                let v = if i % 10 == 9 {
                    Verdict::Ham
                } else {
                    Verdict::Spam
                };
                msg(
                    i * 60,
                    "198.51.100.7",
                    USERS[i as usize],
                    "x@spam.example",
                    v,
                )
            })
            .collect();
        let out = run(&cfg, &ev);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].detector, Detector::IncomingFilter);
        assert_eq!(out[0].entity.id, "198.51.100.7");
        let e: IncomingEvidence = serde_json::from_value(out[0].evidence.clone()).unwrap();
        let f = e.filter.expect("filter evidence");
        assert_eq!(f.spam, cfg.incoming.filter_min_spam);
        assert_eq!(e.asn, Some(64_500));
        assert!(crate::evidence::Evidence::of(&out[0]).is_some());
        // Below the count: nothing.
        let few = run(&cfg, &ev[..(cfg.incoming.filter_min_spam as usize - 1)]);
        assert!(few.is_empty());
    }

    #[test]
    fn a_forwarder_to_a_few_users_is_discounted_a_spammer_to_a_few_is_not() {
        let cfg = Config::default();
        // 3 forwarded users, 60% spam: concentrated, with ham.
        let fwd: Vec<Seen> = (0..60)
            .map(|i| {
                let v = if i % 5 < 3 {
                    Verdict::Spam
                } else {
                    Verdict::Ham
                };
                msg(
                    i * 60,
                    "192.0.2.10",
                    USERS[(i % 3) as usize],
                    "a@uni.example",
                    v,
                )
            })
            .collect();
        assert!(run(&cfg, &fwd).is_empty());
        // The same users hammered with spam only: reported.
        let spam: Vec<Seen> = (0..60)
            .map(|i| {
                msg(
                    i * 60,
                    "192.0.2.11",
                    USERS[(i % 3) as usize],
                    "a@x.example",
                    Verdict::Spam,
                )
            })
            .collect();
        assert_eq!(run(&cfg, &spam).len(), 1);
        // SRS senders to many users, mostly ham: discounted.
        let srs: Vec<Seen> = (0..40)
            .map(|i| {
                let v = if i % 5 < 3 {
                    Verdict::Spam
                } else {
                    Verdict::Ham
                };
                msg(
                    i * 60,
                    "192.0.2.12",
                    USERS[i as usize],
                    "SRS0=HHH=TT=b.example=a@uni.example",
                    v,
                )
            })
            .collect();
        assert!(run(&cfg, &srs).is_empty());
        // Listed: never.
        let mut listed = cfg.clone();
        listed.incoming.forwarders = vec!["192.0.2.11/32".parse().unwrap()];
        assert!(run(&listed, &spam).is_empty());
    }

    #[test]
    fn a_spreading_network_is_reported_as_its_prefix() {
        let cfg = Config::default();
        let hosts = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"];
        let ev: Vec<Seen> = (0..16)
            .map(|i| {
                msg(
                    i * 60,
                    hosts[(i % 4) as usize],
                    USERS[i as usize],
                    "x@s.example",
                    Verdict::Spam,
                )
            })
            .collect();
        let out = run(&cfg, &ev);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].entity.kind, EntityKind::Network);
        assert_eq!(out[0].entity.id, "203.0.113.0/24");
    }

    #[test]
    fn srs_senders() {
        assert!(is_srs("SRS0=HHH=TT=example.org=user@fwd.example"));
        assert!(is_srs("srs1=x=y@fwd.example"));
        assert!(!is_srs("SRS@example.org"));
        assert!(!is_srs("srs0"));
    }
}
