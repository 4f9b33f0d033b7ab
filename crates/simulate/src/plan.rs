//! The abuse schedule: who is abused when, drawn once at the start of a run. Each planned
//! activity is a sorted list of session start times plus what to render at each.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::benign::{Heavy, Populations};
use crate::labels::{AbuseKind, Entity, Label, Shape};
use crate::params::Params;
use crate::rng::{hash, Rng};
use crate::world::{World, BOT_COUNTRIES, FORGED_DOMAINS};

/// Names background guessers try that no ISP customer has (TRAFFIC-FACTS §3: 90–99% of the
/// names tried do not exist; generic role names lead).
pub const GENERIC_NAMES: &[&str] = &[
    "admin",
    "info",
    "test",
    "user",
    "postmaster",
    "webmaster",
    "sales",
    "support",
    "office",
    "contact",
    "mail",
    "root",
    "guest",
    "kontakt",
    "service",
    "billing",
    "hr",
    "noreply",
    "marketing",
    "backup",
    "demo",
    "scanner",
    "administrator",
    "news",
    "abuse",
];

/// Per-label bookkeeping while the log is written.
pub struct Book {
    pub label: Label,
    pub times: Vec<i64>,
    pub ips: HashSet<u32>,
    pub countries: HashSet<String>,
    pub first: i64,
    pub last: i64,
}

/// A scheduled activity: abusive (with a label) or the benign aftermath of one (the owner
/// logging in after a guessed password: no label).
pub struct Abuse {
    pub label: Option<usize>,
    /// (start seconds, key), sorted.
    pub sessions: Vec<(i64, u64)>,
    pub cursor: usize,
    pub act: AbuseAct,
}

/// Where a hijack's sources are.
pub enum Place {
    /// Botnet countries, most frequent first.
    Bots(Vec<&'static str>),
    /// The ISP's own country (a domestic botnet).
    Home,
    /// Address space the geo data does not place.
    Unplaced,
}

/// How a spam source to our MX names itself (Clayton, CEAS 2005: HELOs forged "to mislead").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeloStyle {
    /// One plausible host name, always the same.
    Fixed,
    /// An address literal (in a cluster, often a sibling's address).
    Literal,
    /// The MAIL FROM domain of each message (changes with it).
    FromDomain,
    /// The domain of the first recipient: our own domain.
    RcptDomain,
    /// A new random word each session.
    Rotating,
}

pub enum AbuseAct {
    Hijack {
        user: String,
        burst: bool,
        pool: u64,
        shared: u64,
        share: f64,
        place: Place,
        forge: bool,
    },
    Guess {
        user: String,
        pool: u64,
        pop: bool,
        success_at: i64,
    },
    /// The real owner logging in from their usual place.
    OwnerLogin { account: u64 },
    Infected {
        ip: Ipv4Addr,
        helo: String,
        /// Forged sender domain (with a forged HELO of the same name), if any.
        forged: Option<&'static str>,
    },
    Slow {
        user: String,
        pool: u64,
        countries: Vec<&'static str>,
    },
    /// A hacked script on one site of a shared hosting server.
    Site {
        ip: Ipv4Addr,
        host: String,
        site: String,
        style: u64,
    },
    /// One host of a spam source on the internet writing to our MX (session key = recipients).
    InboundSpam {
        ip: Ipv4Addr,
        literal: Ipv4Addr,
        style: HeloStyle,
        fixed: String,
        real: f64,
        country: &'static str,
    },
    /// An infected customer machine writing straight to our MX (session key = recipients).
    LoopedBack {
        ip: Ipv4Addr,
        forged: Option<&'static str>,
        real: f64,
    },
    /// Background password guessing from one address.
    BgGuess {
        ip: Ipv4Addr,
        country: &'static str,
        real_share: f64,
        campaign: u64,
    },
}

/// The whole schedule.
pub struct Plan {
    pub books: Vec<Book>,
    pub abuses: Vec<Abuse>,
}

impl Plan {
    pub(crate) fn book(&mut self, entity: Entity, kind: AbuseKind, shape: Option<Shape>) -> usize {
        self.books.push(Book {
            label: Label {
                entity,
                kind,
                shape,
                start: String::new(),
                end: String::new(),
                messages: 0,
                rejected: 0,
                source_ips: 0,
                countries: 0,
                group: None,
            },
            times: Vec::new(),
            ips: HashSet::new(),
            countries: HashSet::new(),
            first: i64::MAX,
            last: i64::MIN,
        });
        self.books.len() - 1
    }

    pub(crate) fn push(
        &mut self,
        label: Option<usize>,
        mut sessions: Vec<(i64, u64)>,
        act: AbuseAct,
    ) {
        sessions.sort_unstable();
        self.abuses.push(Abuse {
            label,
            sessions,
            cursor: 0,
            act,
        });
    }
}

/// `k` distinct botnet countries the geo data has, in a per-draw random order (the order is
/// the frequency rank).
fn bot_countries(w: &World, r: &mut Rng, k: usize) -> Vec<&'static str> {
    let mut cs: Vec<&'static str> = BOT_COUNTRIES
        .iter()
        .copied()
        .filter(|c| w.geo.has(c))
        .collect();
    for i in (1..cs.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        cs.swap(i, j);
    }
    cs.truncate(k.max(1));
    cs
}

/// Draw the schedule.
pub fn plan(w: &World, p: &Params, pops: &Populations) -> Plan {
    let cfg = w.cfg;
    let t0 = cfg.start.epoch_secs();
    let end = t0 + i64::from(cfg.days) * 86_400;
    let mut plan = Plan {
        books: Vec::new(),
        abuses: Vec::new(),
    };
    let mut srng = Rng::keyed(&[cfg.seed, 0x5c4e]);
    let ordinary = pops.ordinary;
    let mut victims: HashSet<u64> = HashSet::new();
    let pick_victim = |r: &mut Rng, victims: &mut HashSet<u64>| -> Option<u64> {
        for _ in 0..50 {
            let v = r.below(ordinary.max(1));
            if !victims.contains(&v) && !pops.is_special(v) {
                victims.insert(v);
                return Some(v);
            }
        }
        None
    };
    let max_victims = (ordinary / 10).max(1);
    let mut group_no = 0;
    let taken = pops.port25_addresses(w);
    for day in 0..cfg.days as i64 {
        let heavy_day = srng.chance(cfg.heavy_day_prob);
        let mean = cfg.hijacks_per_day * if heavy_day { cfg.heavy_day_factor } else { 1.0 };
        let mut n = srng.poisson(mean);
        while n > 0 && (victims.len() as u64) < max_victims {
            let start = t0 + day * 86_400 + srng.below(86_400) as i64;
            let burst = srng.chance(cfg.burst_share);
            let mut accts: Vec<u64> = Vec::new();
            let mut group = None;
            if !burst && srng.chance(cfg.group_share) {
                let dom = w.hosted[srng.below(w.hosted.len() as u64) as usize].clone();
                let k = srng.range(2, 5) as usize;
                for a in w.accounts_of(&dom, k) {
                    if !victims.contains(&a) && !pops.is_special(a) && a < ordinary {
                        victims.insert(a);
                        accts.push(a);
                    }
                }
                if accts.len() >= 2 {
                    group_no += 1;
                    group = Some(format!("group-{group_no}"));
                } else {
                    accts.clear();
                }
            }
            if accts.is_empty() {
                if let Some(v) = pick_victim(&mut srng, &mut victims) {
                    accts.push(v);
                } else {
                    break;
                }
            }
            let shared = srng.next_u64();
            let k_countries = srng.range(5, 30) as usize;
            let cs = bot_countries(w, &mut srng, k_countries);
            let nogeo = srng.chance(p.hijack_nogeo_share);
            let unplaced = nogeo && !w.unplaced.is_empty() && srng.chance(0.5);
            for (j, a) in accts.iter().enumerate() {
                n = n.saturating_sub(1);
                let user = w.account(*a);
                let st = start + j as i64 * srng.below(1800) as i64;
                let li = plan.book(
                    Entity::account(&user),
                    AbuseKind::HijackedAccount,
                    Some(if burst { Shape::Burst } else { Shape::Spread }),
                );
                plan.books[li].label.group = group.clone();
                let mut sessions = Vec::new();
                if burst {
                    let dur = srng.range(2400, 4800) as i64;
                    let rate = 2.0 + srng.f64() * 4.0; // messages per second
                    let per_sess = 25.0;
                    let n_sess = (rate * dur as f64 / per_sess) as i64;
                    for s in 0..n_sess {
                        sessions.push((st + s * dur / n_sess.max(1), s as u64));
                    }
                } else {
                    let ips = srng.lognormal(700.0, 0.8).clamp(100.0, 5000.0) as u64;
                    let dur = srng
                        .lognormal(4.0 * 3600.0, 0.6)
                        .clamp(1800.0, 14.0 * 3600.0);
                    for i in 0..ips {
                        let sess = 1 + srng.below(3);
                        for _ in 0..sess {
                            let at = st + (dur * srng.f64()) as i64;
                            sessions.push((at, i));
                        }
                    }
                }
                if srng.chance(cfg.guessing_share) {
                    plan_guess(&mut plan, w, &mut srng, *a, &user, st);
                }
                let place = if unplaced {
                    Place::Unplaced
                } else if nogeo {
                    Place::Home
                } else {
                    Place::Bots(cs.clone())
                };
                plan.push(
                    Some(li),
                    sessions,
                    AbuseAct::Hijack {
                        user,
                        burst,
                        pool: srng.next_u64(),
                        shared,
                        share: if group.is_some() { 0.5 } else { 0.0 },
                        place,
                        forge: srng.chance(0.3),
                    },
                );
            }
        }
        plan_infected(&mut plan, w, &taken, &mut srng, t0 + day * 86_400);
        plan_sites(&mut plan, w, p, pops, &mut srng, t0 + day * 86_400, end);
    }
    for _ in 0..cfg.slow_and_low {
        let Some(v) = pick_victim(&mut srng, &mut victims) else {
            break;
        };
        let user = w.account(v);
        let start = t0 + srng.below(86_400) as i64;
        let mut sessions = Vec::new();
        let mut t = start;
        let mut k = 0u64;
        while t < end {
            sessions.push((t, k));
            k += 1;
            t += (srng.exp(cfg.slow_mean_minutes * 60.0) as i64).max(240);
        }
        let k = srng.range(1, 3) as usize;
        let cs = bot_countries(w, &mut srng, k);
        let li = plan.book(Entity::account(&user), AbuseKind::SlowAndLow, None);
        plan.push(
            Some(li),
            sessions,
            AbuseAct::Slow {
                user,
                pool: srng.next_u64(),
                countries: cs,
            },
        );
    }
    plan_background_guessing(&mut plan, w, p, t0, end);
    plan
}

/// Guessing that succeeds before a hijack; afterwards the owner keeps logging in normally
/// from their usual place (issue 9 class 1: the owner's success is not the attacker's).
fn plan_guess(plan: &mut Plan, w: &World, r: &mut Rng, account: u64, user: &str, st: i64) {
    let gi = plan.book(Entity::account(user), AbuseKind::PasswordGuessing, None);
    let gstart = st - r.range(3600, 6 * 3600) as i64;
    let n_try = r.range(10, 60) as i64;
    let span = (st - gstart - 600).max(60);
    let mut gs: Vec<(i64, u64)> = (0..n_try)
        .map(|k| (gstart + k * span / n_try, k as u64))
        .collect();
    gs.push((st - 300, u64::MAX));
    plan.push(
        Some(gi),
        gs,
        AbuseAct::Guess {
            user: user.to_string(),
            pool: r.next_u64(),
            pop: r.chance(0.4),
            success_at: st - 300,
        },
    );
    if w.cfg.imap_logins_per_day > 0.0 {
        let owner: Vec<(i64, u64)> = (0..r.range(2, 5))
            .map(|k| (st - 300 + r.range(300, 6 * 3600) as i64, k))
            .collect();
        plan.push(None, owner, AbuseAct::OwnerLogin { account });
    }
}

/// Infected customer machines starting on the day at `day0`.
fn plan_infected(plan: &mut Plan, w: &World, taken: &HashSet<Ipv4Addr>, r: &mut Rng, day0: i64) {
    for _ in 0..r.poisson(w.cfg.infected_per_day) {
        // A customer line of its own: not an address a benign customer relays from.
        let mut ip = w.isp_ip(r.next_u64());
        for _ in 0..100 {
            if !taken.contains(&ip) {
                break;
            }
            ip = w.isp_ip(r.next_u64());
        }
        let start = day0 + r.below(86_400) as i64;
        let dur = r.range(2 * 3600, 30 * 3600) as i64;
        let per_hour = r.range(20, 200);
        let n = (per_hour as i64 * dur / 3600).max(1);
        let sessions: Vec<(i64, u64)> = (0..n)
            .map(|k| (start + k * dur / n + r.below(30) as i64, k as u64))
            .collect();
        let (helo, forged) = match r.below(4) {
            0 => (
                format!(
                    "{}{}",
                    ["WIN-", "DESKTOP-", "USER-PC", "HOME"][r.below(4) as usize],
                    r.below(1_000_000)
                ),
                None,
            ),
            1 | 2 => {
                // HELO and MAIL FROM forged to a bank's or freemail provider's domain.
                let d = FORGED_DOMAINS[r.below(FORGED_DOMAINS.len() as u64) as usize];
                (d.to_string(), Some(d))
            }
            _ => (format!("[{ip}]"), None),
        };
        let li = plan.book(
            Entity::client(&ip.to_string()),
            AbuseKind::InfectedClient,
            None,
        );
        plan.push(Some(li), sessions, AbuseAct::Infected { ip, helo, forged });
    }
}

/// Exploited web sites starting on the day at `day0`: one site of a shared hosting server.
fn plan_sites(
    plan: &mut Plan,
    w: &World,
    p: &Params,
    pops: &Populations,
    r: &mut Rng,
    day0: i64,
    end: i64,
) {
    let servers: Vec<(usize, u64)> = pops
        .heavy
        .iter()
        .enumerate()
        .filter(|(_, h)| h.1 == Heavy::WebHosting)
        .map(|(hi, h)| (hi, h.0))
        .collect();
    if servers.is_empty() {
        return;
    }
    for _ in 0..r.poisson(w.cfg.exploited_sites_per_day) {
        let (hi, _) = servers[r.below(servers.len() as u64) as usize];
        let hs = crate::benign::hosting(w, p, hi as u64);
        let site = hs.site(r.below(hs.sites));
        let n = Params::pick_log(r, p.site_spam).round().max(1.0) as i64;
        let dur = (Params::pick_log(r, p.site_spam_hours) * 3600.0) as i64;
        let start = day0 + r.below(86_400) as i64;
        let sessions: Vec<(i64, u64)> = (0..n)
            .map(|k| (start + k * dur / n + r.below(20) as i64, k as u64))
            .filter(|(t, _)| *t < end)
            .collect();
        let li = plan.book(
            Entity::sender(&format!("@{site}")),
            AbuseKind::ExploitedWebsite,
            None,
        );
        plan.push(
            Some(li),
            sessions,
            AbuseAct::Site {
                ip: hs.ip,
                host: hs.host.clone(),
                site,
                style: r.below(3),
            },
        );
    }
}

/// Permanent background guessing of generic and real names (TRAFFIC-FACTS §3): campaigns
/// either inside one /24 (labelled as the network) or spread over countries (each address
/// labelled); per address either low-and-slow for the whole run or bursts.
fn plan_background_guessing(plan: &mut Plan, w: &World, p: &Params, t0: i64, end: i64) {
    let mut r = Rng::keyed(&[w.cfg.seed, 0xb6b6]);
    let n_camp = p.bg_campaigns.max(1);
    let run = (end - t0).max(1);
    let per_campaign = p.bg_fails_per_day * run as f64 / 86_400.0 / n_camp as f64;
    for c in 0..n_camp {
        let n_ips = Params::pick_log(&mut r, p.bg_ips).round().max(1.0) as u64;
        let clustered = r.chance(0.5);
        let cs = bot_countries(w, &mut r, 10);
        let base_c = cs.first().copied().unwrap_or("US");
        let base = u32::from(w.ip_in(base_c, hash(&[c, 0x24]))) & 0xFFFF_FF00;
        let net_label = if clustered {
            let net = format!("{}/24", Ipv4Addr::from(base));
            Some(plan.book(Entity::network(&net), AbuseKind::GuessingSource, None))
        } else {
            None
        };
        let n_hosts = if clustered { n_ips.min(254) } else { n_ips };
        let per_ip = (per_campaign / n_hosts as f64).max(1.0);
        for k in 0..n_hosts {
            let (ip, country) = if clustered {
                (
                    Ipv4Addr::from(base | (1 + (hash(&[c, k]) % 254) as u32)),
                    base_c,
                )
            } else {
                let country = cs[(hash(&[c, k, 1]) % cs.len() as u64) as usize];
                (w.ip_in(country, hash(&[c, k, 0x9e])), country)
            };
            let label = match net_label {
                Some(l) => l,
                None => plan.book(
                    Entity::client(&ip.to_string()),
                    AbuseKind::GuessingSource,
                    None,
                ),
            };
            let n = (per_ip * (0.5 + r.f64())).round().max(1.0) as u64;
            let mut sessions = Vec::with_capacity(n as usize);
            if r.chance(0.3) {
                // Bursts of 50–300 tries an hour.
                let rate = r.range(50, 300) as f64 / 3600.0;
                let mut left = n;
                while left > 0 {
                    let len = left.min(r.range(20, 300));
                    let st = t0 + r.below(run as u64) as i64;
                    for j in 0..len {
                        sessions.push((st + (j as f64 / rate) as i64, left - j));
                    }
                    left -= len;
                }
            } else {
                // Low and slow: evenly over the run with jitter.
                let gap = run as f64 / n as f64;
                let phase = r.f64() * gap;
                for j in 0..n {
                    let at = t0 + (phase + j as f64 * gap + r.f64() * gap * 0.3) as i64;
                    sessions.push((at, j));
                }
            }
            sessions.retain(|(t, _)| *t < end);
            plan.push(
                Some(label),
                sessions,
                AbuseAct::BgGuess {
                    ip,
                    country,
                    real_share: p.bg_real_share,
                    campaign: c,
                },
            );
        }
    }
}
