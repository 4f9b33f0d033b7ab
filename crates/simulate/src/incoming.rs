//! Incoming mail at the ISP's MX (issue 14): spam sources on the internet sending to stale and
//! invented addresses of our domains (single hosts, and clusters in one /24), infected
//! customers of our own talking straight to our MX (looped back), and the legitimate senders
//! that look like them: big providers' outbound servers, forwarding partners, external bulk
//! senders with dead addresses on their lists, and small company servers (some with their bare
//! domain as HELO).
//!
//! Everything here draws from its own random streams ([`IncomingParams`], keyed generators, and
//! the rendering [`Stream`] of the caller), so the lines of the outgoing populations of a seed
//! are byte-identical with or without incoming traffic.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::benign::{frac, Slice};
use crate::labels::{AbuseKind, Entity, PopulationEntry};
use crate::params::{IncomingParams, Params, IN_SMALL_SPAM};
use crate::plan::{AbuseAct, HeloStyle, Plan, GENERIC_NAMES};
use crate::render::{Fate, Kind, Msg, Out, Rcpt, Session};
use crate::rng::{hash, Rng};
use crate::world::{World, BOT_COUNTRIES, FIRST, FORGED_DOMAINS, LAST, TRAVEL_COUNTRIES, WORDS};

const MICRO: i64 = 1_000_000;

/// Big providers whose outbound servers deliver to us: (mail domain, outbound host pattern
/// with `{}` for the host number). Real naming schemes of these providers.
const BIG_PROVIDERS: &[(&str, &str)] = &[
    ("gmail.com", "mail-{}.google.com"),
    ("outlook.com", "mail-{}.outbound.protection.outlook.com"),
    ("gmx.net", "mout-{}.gmx.net"),
    ("web.de", "mout-{}.web.de"),
    ("yahoo.com", "sonic{}.mail.yahoo.com"),
];
/// Outbound hosts per big provider, all in one /24 (a provider's pool). Our own guess.
const PROVIDER_HOSTS: u64 = 8;
/// Recipients a spam session names at most (the corpus's dictionary attack: batches of 100).
const MAX_BATCH: f64 = 100.0;

/// A legitimate external sender.
#[derive(Debug, Clone)]
pub struct Sender {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its host name (rDNS).
    pub host: String,
    /// Its HELO.
    pub helo: String,
    /// Its mail domain (MAIL FROM), `None` for a forwarder (mail of arbitrary senders).
    pub domain: Option<String>,
    /// Messages per day.
    pub per_day: f64,
    /// Share of its recipients here that do not exist.
    pub unknown: f64,
    /// Profile in `population.jsonl`.
    pub profile: &'static str,
    /// Share of its mail that is spam (the MX's filter judges every message).
    pub spam: f64,
    /// A forwarding partner: the only users of ours it writes to (their forwarded mail).
    pub forwarded: Vec<String>,
    /// A forwarding partner that rewrites senders with SRS (`SRS0=…@its domain`).
    pub srs: Option<String>,
}

/// The legitimate incoming populations of one run.
pub struct InPops {
    /// Every legitimate external sender.
    pub senders: Vec<Sender>,
}

fn count(per_10k: f64, users: u32) -> u64 {
    (per_10k * f64::from(users) / 10_000.0).round().max(1.0) as u64
}

impl InPops {
    /// Draw the legitimate senders of this run.
    pub fn new(w: &World, p: &IncomingParams) -> InPops {
        let cfg = w.cfg;
        let seed = cfg.seed;
        let mut v = Vec::new();
        // Big providers: a pool of outbound hosts in one /24 each.
        let per_host = p.provider_msgs_per_account * f64::from(cfg.users)
            / (BIG_PROVIDERS.len() as u64 * PROVIDER_HOSTS) as f64;
        for (k, (dom, pat)) in BIG_PROVIDERS.iter().enumerate() {
            let k = k as u64;
            let mut er = Rng::keyed(&[seed, 0x1c0b, k]);
            let base = u32::from(w.ip_in("US", hash(&[seed, 0x1c0b, k]))) & 0xFFFF_FF00;
            let unknown = Params::pick_log(&mut er, p.provider_unknown);
            for j in 0..PROVIDER_HOSTS {
                let host = pat.replace("{}", &format!("{}", 10 + j));
                v.push(Sender {
                    ip: Ipv4Addr::from(base | (10 + j as u32)),
                    helo: host.clone(),
                    host,
                    domain: Some(dom.to_string()),
                    per_day: per_host * (0.5 + er.f64()),
                    unknown,
                    profile: "big-provider",
                    spam: 0.0,
                    forwarded: Vec::new(),
                    srs: None,
                });
            }
        }
        for k in 0..count(p.partners_per_10k, cfg.users) {
            let mut er = Rng::keyed(&[seed, 0x1c0f, k]);
            let c = TRAVEL_COUNTRIES[(k % TRAVEL_COUNTRIES.len() as u64) as usize];
            let word = WORDS[er.below(WORDS.len() as u64) as usize];
            let host = format!("mailout{k}.uni-{word}.edu");
            v.push(Sender {
                ip: w.ip_in(c, hash(&[seed, 0x1c0f, k])),
                helo: host.clone(),
                host,
                domain: None,
                per_day: Params::pick_log(&mut er, p.partner_msgs),
                unknown: Params::pick(&mut er, p.partner_unknown),
                profile: "forwarding-partner",
                spam: 0.0,
                forwarded: Vec::new(),
                srs: None,
            });
        }
        for k in 0..count(p.esp_per_10k, cfg.users) {
            let mut er = Rng::keyed(&[seed, 0x1ce5, k]);
            let word = WORDS[er.below(WORDS.len() as u64) as usize];
            let dom = format!("{word}-mailer{k}.com");
            let host = format!("o{k}.out.{dom}");
            v.push(Sender {
                ip: w.ip_in("US", hash(&[seed, 0x1ce5, k])),
                helo: host.clone(),
                host,
                domain: Some(dom),
                per_day: Params::pick_log(&mut er, p.esp_msgs),
                unknown: Params::pick(&mut er, p.esp_unknown),
                profile: "external-bulk",
                spam: 0.0,
                forwarded: Vec::new(),
                srs: None,
            });
        }
        for k in 0..count(p.small_per_10k, cfg.users) {
            let mut er = Rng::keyed(&[seed, 0x1c5a, k]);
            let dom = w.invented_domain(&mut er);
            let host = format!("mail.{dom}");
            let c = TRAVEL_COUNTRIES[er.below(TRAVEL_COUNTRIES.len() as u64) as usize];
            v.push(Sender {
                ip: w.ip_in(c, hash(&[seed, 0x1c5a, k])),
                helo: if er.chance(p.small_bare_helo) {
                    dom.clone()
                } else {
                    host.clone()
                },
                host,
                domain: Some(dom),
                per_day: Params::pick_log(&mut er, p.small_msgs),
                unknown: 0.02,
                profile: "external-sender",
                spam: IN_SMALL_SPAM,
                forwarded: Vec::new(),
                srs: None,
            });
        }
        // The spam filter's view, on streams of their own (the draws above stay the same): how
        // much of each sender's mail is spam, and whom a forwarding partner forwards to.
        let users = u64::from(cfg.users.max(1));
        for (k, s) in v.iter_mut().enumerate() {
            let mut fr = Rng::keyed(&[seed, 0x1cf3, k as u64]);
            s.spam = match s.profile {
                "big-provider" => Params::pick_log(&mut fr, p.provider_spam),
                "external-bulk" => Params::pick(&mut fr, p.esp_spam),
                "forwarding-partner" => Params::pick(&mut fr, p.partner_spam),
                _ => s.spam,
            };
            if s.profile == "forwarding-partner" {
                let n = Params::pick(&mut fr, p.partner_users).round().max(1.0) as u64;
                s.forwarded = (0..n).map(|_| w.account(fr.below(users))).collect();
                if fr.chance(p.partner_srs) {
                    s.srs = s.host.split_once('.').map(|(_, d)| d.to_string());
                }
            }
        }
        InPops { senders: v }
    }

    /// Entities per population (for `summary.json`).
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        for (prof, name) in [
            ("big-provider", "big-provider-servers"),
            ("forwarding-partner", "forwarding-partners"),
            ("external-bulk", "external-bulk-senders"),
            ("external-sender", "external-senders"),
        ] {
            out.push((
                name,
                self.senders.iter().filter(|s| s.profile == prof).count() as u64,
            ));
        }
        out
    }

    /// Their profiles for `population.jsonl`.
    pub fn population(&self) -> Vec<PopulationEntry> {
        self.senders
            .iter()
            .map(|s| PopulationEntry {
                entity: Entity::client(&s.ip.to_string()),
                profile: s.profile.to_string(),
            })
            .collect()
    }
}

/// A local recipient: with probability `real` an existing account (delivered), else a former
/// customer's address or an invented one at our domains (refused at RCPT time).
pub fn local_rcpt(w: &World, r: &mut Rng, real: f64) -> Rcpt {
    let users = u64::from(w.cfg.users.max(1));
    if r.chance(real) {
        return Rcpt::new(w.account(r.below(users)), Fate::Local);
    }
    let addr = if r.chance(0.5) {
        // Stale: named like our accounts, but the account is gone.
        w.account(users + r.below(users))
    } else {
        let local = if r.chance(0.5) {
            GENERIC_NAMES[r.below(GENERIC_NAMES.len() as u64) as usize].to_string()
        } else {
            format!(
                "{}.{}",
                FIRST[r.below(FIRST.len() as u64) as usize],
                LAST[r.below(LAST.len() as u64) as usize]
            )
        };
        let d = &w.cfg.isp_domains;
        let dom = d
            .get(r.below(d.len().max(1) as u64) as usize)
            .map(String::as_str)
            .unwrap_or("example-isp.de");
        format!("{local}@{dom}")
    };
    Rcpt::new(addr, Fate::LocalUnknown)
}

/// Emit the legitimate incoming sessions of one slice; returns messages accepted.
pub fn emit_benign(w: &World, pops: &InPops, out: &mut Out, sl: Slice, r: &mut Rng) -> u64 {
    let mut messages = 0u64;
    let act = sl.act();
    let frac_day = (sl.end - sl.t) as f64 / 86_400.0;
    for s in &pops.senders {
        let n = r.poisson(s.per_day * act * frac_day);
        for _ in 0..n {
            let at = sl.t * MICRO + r.below((sl.end - sl.t).max(1) as u64 * MICRO as u64) as i64;
            let n_rcpt = if r.chance(0.85) { 1 } else { r.range(2, 4) } as usize;
            let rcpts = (0..n_rcpt)
                .map(|_| {
                    if s.forwarded.is_empty() {
                        local_rcpt(w, r, 1.0 - s.unknown)
                    } else if r.chance(s.unknown) {
                        // A forward left behind when its user left us.
                        local_rcpt(w, r, 0.0)
                    } else {
                        let u = &s.forwarded[r.below(s.forwarded.len() as u64) as usize];
                        Rcpt::new(u.clone(), Fate::Local)
                    }
                })
                .collect();
            let from = match &s.domain {
                Some(d) => format!(
                    "{}.{}@{d}",
                    FIRST[r.below(FIRST.len() as u64) as usize],
                    LAST[r.below(LAST.len() as u64) as usize]
                ),
                // A forwarder keeps the original sender: anyone, spam included.
                None => {
                    if r.chance(0.6) {
                        w.provider_rcpt(r).0
                    } else {
                        format!(
                            "{}@{}",
                            WORDS[r.below(WORDS.len() as u64) as usize],
                            w.invented_domain(r)
                        )
                    }
                }
            };
            // SRS (Sender Rewriting Scheme) as forwarders write it: SRS0=hash=tt=domain=local@fwd.
            let from = match (&s.srs, from.split_once('@')) {
                (Some(fwd), Some((local, dom))) => format!(
                    "SRS0={:04X}={:02}={dom}={local}@{fwd}",
                    r.below(0x10000),
                    r.below(100)
                ),
                _ => from,
            };
            let m = Msg {
                from,
                size: r.range(3_000, 80_000) as u32,
                rcpts,
                local_sender: false,
                spam: Some(r.chance(s.spam)),
            };
            let sess = Session {
                t: at,
                ip: s.ip,
                host: Some(s.host.clone()),
                helo: s.helo.clone(),
                kind: Kind::Smtp {
                    auth: None,
                    submission: false,
                    helo_rejected: false,
                    inbound: true,
                    msgs: vec![m],
                },
            };
            messages += out.session(&sess).len() as u64;
        }
    }
    messages
}

/// Draw the incoming abuse: spam sources and looped-back customers.
pub fn plan(w: &World, p: &IncomingParams, taken: &HashSet<Ipv4Addr>) -> Plan {
    let cfg = w.cfg;
    let t0 = cfg.start.epoch_secs();
    let end = t0 + i64::from(cfg.days) * 86_400;
    let mut plan = Plan {
        books: Vec::new(),
        abuses: Vec::new(),
    };
    let mut r = Rng::keyed(&[cfg.seed, 0x1c5c]);
    let scale = f64::from(cfg.users) / 10_000.0;
    let mut source_no = 0u64;
    for day in 0..i64::from(cfg.days) {
        let day0 = t0 + day * 86_400;
        for _ in 0..r.poisson(p.sources_per_10k_day * scale) {
            source_no += 1;
            let country = BOT_COUNTRIES[r.below(BOT_COUNTRIES.len() as u64) as usize];
            let cluster = r.chance(p.cluster_share);
            let hosts = if cluster {
                Params::pick(&mut r, p.cluster_hosts).round().max(2.0) as u32
            } else {
                1
            };
            let key = hash(&[cfg.seed, 0x1c5d, source_no]);
            let first = w.ip_in(country, key);
            let ips: Vec<Ipv4Addr> = if cluster {
                let base = u32::from(first) & 0xFFFF_FF00;
                let off = 1 + (key % 200) as u32;
                (0..hosts)
                    .map(|h| Ipv4Addr::from(base | (off + h)))
                    .collect()
            } else {
                vec![first]
            };
            let entity = if cluster {
                Entity::network(&format!(
                    "{}/24",
                    Ipv4Addr::from(u32::from(first) & 0xFFFF_FF00)
                ))
            } else {
                Entity::client(&first.to_string())
            };
            let li = plan.book(entity, AbuseKind::IncomingSpamSource, None);
            let total = Params::pick_log(&mut r, p.source_rcpts);
            let dur = Params::pick_log(&mut r, p.source_hours) * 3600.0;
            let start = day0 + r.below(86_400) as i64;
            let real = Params::pick(&mut r, p.source_real);
            let style = match r.below(5) {
                0 => HeloStyle::Fixed,
                1 => HeloStyle::Literal,
                2 => HeloStyle::FromDomain,
                3 => HeloStyle::RcptDomain,
                _ => HeloStyle::Rotating,
            };
            for (h, ip) in ips.iter().enumerate() {
                let mut left = (total / f64::from(hosts)).round().max(1.0) as u64;
                let mut sessions = Vec::new();
                while left > 0 {
                    let batch =
                        (Params::pick_log(&mut r, (1.0, MAX_BATCH)).round() as u64).clamp(1, left);
                    let at = start + (dur * r.f64()) as i64;
                    if at < end {
                        sessions.push((at, batch));
                    }
                    left -= batch;
                }
                let fixed = format!(
                    "mail{}.{}",
                    h,
                    w.invented_domain(&mut Rng::keyed(&[cfg.seed, 0x1c5e, source_no]))
                );
                plan.push(
                    Some(li),
                    sessions,
                    AbuseAct::InboundSpam {
                        ip: *ip,
                        // The literal a cluster's hosts announce is often a sibling's (corpus).
                        literal: ips[0],
                        style,
                        fixed,
                        real,
                        country,
                    },
                );
            }
        }
        for _ in 0..r.poisson(p.looped_per_10k_day * scale) {
            let mut ip = w.isp_ip(r.next_u64());
            for _ in 0..100 {
                if !taken.contains(&ip) {
                    break;
                }
                ip = w.isp_ip(r.next_u64());
            }
            let start = day0 + r.below(86_400) as i64;
            let dur = r.range(2 * 3600, 30 * 3600) as i64;
            let per_hour = r.range(10, 100);
            let n = (per_hour as i64 * dur / 3600).max(1);
            let sessions: Vec<(i64, u64)> = (0..n)
                .map(|k| (start + k * dur / n + r.below(30) as i64, r.range(1, 5)))
                .filter(|(t, _)| *t < end)
                .collect();
            let forged = if r.chance(0.5) {
                Some(FORGED_DOMAINS[r.below(FORGED_DOMAINS.len() as u64) as usize])
            } else {
                None
            };
            let li = plan.book(Entity::client(&ip.to_string()), AbuseKind::LoopedBack, None);
            plan.push(
                Some(li),
                sessions,
                AbuseAct::LoopedBack {
                    ip,
                    forged,
                    real: Params::pick(&mut r, p.source_real),
                },
            );
        }
    }
    // Spam sources visible only through the spam filter: harvested valid addresses, a proper
    // HELO, one to three recipients a message. On a stream of their own (the draws above stay).
    // Only where the MX's log carries the filter's lines (Postfix format: see `SimFilter`).
    let mut fr = Rng::keyed(&[cfg.seed, 0x1cf4]);
    let filter_days = if cfg.format == crate::LogFormat::Postfix {
        i64::from(cfg.days)
    } else {
        0
    };
    for day in 0..filter_days {
        let day0 = t0 + day * 86_400;
        for _ in 0..fr.poisson(p.filter_sources_per_10k_day * scale) {
            source_no += 1;
            let country = BOT_COUNTRIES[fr.below(BOT_COUNTRIES.len() as u64) as usize];
            let key = hash(&[cfg.seed, 0x1cf5, source_no]);
            let ip = w.ip_in(country, key);
            let li = plan.book(
                Entity::client(&ip.to_string()),
                AbuseKind::IncomingSpamSource,
                None,
            );
            let msgs = Params::pick_log(&mut fr, p.filter_source_msgs)
                .round()
                .max(1.0) as u64;
            let dur = Params::pick_log(&mut fr, p.source_hours) * 3600.0;
            let start = day0 + fr.below(86_400) as i64;
            let sessions: Vec<(i64, u64)> = (0..msgs)
                .map(|_| (start + (dur * fr.f64()) as i64, fr.range(1, 4)))
                .filter(|(t, _)| *t < end)
                .collect();
            let fixed = format!(
                "mail.{}",
                w.invented_domain(&mut Rng::keyed(&[cfg.seed, 0x1cf6, source_no]))
            );
            plan.push(
                Some(li),
                sessions,
                AbuseAct::InboundSpam {
                    ip,
                    literal: ip,
                    style: HeloStyle::Fixed,
                    fixed,
                    real: 1.0,
                    country,
                },
            );
        }
    }
    plan
}

/// One session of a spam source: `batch` recipients at our domains.
#[allow(clippy::too_many_arguments)]
pub fn spam_session(
    w: &World,
    ip: Ipv4Addr,
    literal: Ipv4Addr,
    style: HeloStyle,
    fixed: &str,
    real: f64,
    at: i64,
    batch: u64,
    r: &mut Rng,
) -> Session {
    let rcpts: Vec<Rcpt> = (0..batch).map(|_| local_rcpt(w, r, real)).collect();
    let from_dom = if r.chance(0.3) {
        FORGED_DOMAINS[r.below(FORGED_DOMAINS.len() as u64) as usize].to_string()
    } else {
        w.invented_domain(r)
    };
    let from = format!(
        "{}{}@{from_dom}",
        WORDS[r.below(WORDS.len() as u64) as usize],
        r.below(10_000)
    );
    let helo = match style {
        HeloStyle::Fixed => fixed.to_string(),
        HeloStyle::Literal => format!("[{literal}]"),
        HeloStyle::FromDomain => from_dom.clone(),
        HeloStyle::RcptDomain => rcpts
            .first()
            .and_then(|x| x.addr.rsplit_once('@'))
            .map(|(_, d)| d.to_string())
            .unwrap_or_default(),
        HeloStyle::Rotating => format!(
            "{}{}",
            WORDS[r.below(WORDS.len() as u64) as usize],
            r.below(1000)
        ),
    };
    // Spam sources mostly have no or generic reverse DNS.
    let host = (frac(hash(&[u64::from(u32::from(ip)), 0x1c7])) < 0.5).then(|| {
        let o = ip.octets();
        format!("{}-{}-{}-{}.static.example.net", o[0], o[1], o[2], o[3])
    });
    Session {
        t: at,
        ip,
        host,
        helo,
        kind: Kind::Smtp {
            auth: None,
            submission: false,
            helo_rejected: false,
            inbound: true,
            msgs: vec![Msg {
                from,
                size: r.range(2_000, 40_000) as u32,
                rcpts,
                local_sender: false,
                spam: Some(true),
            }],
        },
    }
}

/// One session of an infected customer machine writing straight to our MX.
pub fn looped_session(
    w: &World,
    ip: Ipv4Addr,
    forged: Option<&str>,
    real: f64,
    at: i64,
    batch: u64,
    r: &mut Rng,
) -> Session {
    let rcpts: Vec<Rcpt> = (0..batch).map(|_| local_rcpt(w, r, real)).collect();
    let (helo, from) = match forged {
        Some(d) => (
            d.to_string(),
            format!(
                "{}@{d}",
                ["service", "security", "no-reply", "account"][r.below(4) as usize]
            ),
        ),
        None => (
            format!("[{ip}]"),
            format!(
                "{}{}@{}",
                WORDS[r.below(WORDS.len() as u64) as usize],
                r.below(10_000),
                w.invented_domain(r)
            ),
        ),
    };
    Session {
        t: at,
        ip,
        host: Some(w.isp_rdns(ip)),
        helo,
        kind: Kind::Smtp {
            auth: None,
            submission: false,
            helo_rejected: false,
            inbound: true,
            msgs: vec![Msg {
                from,
                size: r.range(5_000, 60_000) as u32,
                rcpts,
                local_sender: false,
                spam: Some(true),
            }],
        },
    }
}
