//! The driver: populations, schedule, slices, labels and the summary.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use crate::addr::{AddressSource, Sampler};
use crate::labels::{AbuseKind, Entity, Label, Shape, TimelineEntry};
use crate::render::{Fate, Kind, Msg, Out, Rcpt, Session};
use crate::rng::{hash, Rng};
use crate::world::{World, BOT_COUNTRIES, FORGED_HELOS, TRAVEL_COUNTRIES, VPN_COUNTRIES, WORDS};
use crate::{LogFormat, SimConfig, SimError, Summary, SLICE_SECS};

const MICRO: i64 = 1_000_000;

/// Relative activity by local hour (office-and-evening shape, see SIMULATION.md).
const DIURNAL: [f64; 24] = [
    0.15, 0.08, 0.05, 0.04, 0.05, 0.1, 0.3, 0.7, 1.2, 1.6, 1.7, 1.6, 1.4, 1.5, 1.6, 1.5, 1.4, 1.3,
    1.2, 1.3, 1.4, 1.2, 0.8, 0.4,
];
/// Relative activity by weekday, Monday first.
const WEEKLY: [f64; 7] = [1.1, 1.1, 1.05, 1.05, 1.0, 0.55, 0.5];

struct Book {
    label: Label,
    times: Vec<i64>,
    ips: HashSet<u32>,
    countries: HashSet<String>,
    first: i64,
    last: i64,
}

/// A scheduled abusive activity.
struct Abuse {
    label: usize,
    sessions: Vec<(i64, u64)>, // (start secs, key) sorted
    cursor: usize,
    kind: AbuseAct,
}

enum AbuseAct {
    Hijack {
        user: String,
        burst: bool,
        pool: u64,
        shared: u64,
        share: f64,
        countries: Vec<&'static str>,
        forge: bool,
    },
    Guess {
        user: String,
        pool: u64,
        pop: bool,
        success_at: i64,
    },
    Infected {
        ip: Ipv4Addr,
        helo: String,
    },
    Slow {
        user: String,
        pool: u64,
        countries: Vec<&'static str>,
    },
}

#[derive(Clone, Copy, PartialEq)]
enum Heavy {
    List,
    Newsletter,
    Business,
    Forwarder,
    Autoresponder,
}

pub fn run(cfg: &SimConfig, out_dir: &Path, src: &dyn AddressSource) -> Result<Summary, SimError> {
    if cfg.users == 0 || cfg.days == 0 {
        return Err(SimError::Config("users and days must be at least 1".into()));
    }
    let mut countries: Vec<&str> = vec![cfg.home_country.as_str()];
    countries.extend(
        BOT_COUNTRIES
            .iter()
            .chain(TRAVEL_COUNTRIES)
            .chain(VPN_COUNTRIES),
    );
    let geo = Sampler::new(src, &countries);
    if !geo.has(&cfg.home_country) {
        return Err(SimError::Config(format!(
            "no addresses for home country {}",
            cfg.home_country
        )));
    }
    let w = World::new(cfg, geo);
    std::fs::create_dir_all(out_dir).map_err(|e| io(out_dir, e))?;
    let log_path = out_dir.join("mail.log");
    let f = std::fs::File::create(&log_path).map_err(|e| io(&log_path, e))?;
    let mut log = BufWriter::with_capacity(1 << 20, f);
    let t0 = cfg.start.epoch_secs();
    let end = t0 + i64::from(cfg.days) * 86_400;
    let mut out = Out::new(cfg.format, &cfg.hostname, cfg.seed, end * MICRO);

    // Heavy senders: account indices at the top of the range are re-purposed.
    let per10k = |x: f64| ((x * cfg.users as f64 / 10_000.0).round() as u64).max(1);
    let mut heavy: Vec<(u64, Heavy)> = Vec::new();
    let mut next = cfg.users as u64;
    for (n, k) in [
        (per10k(cfg.lists_per_10k), Heavy::List),
        (per10k(cfg.newsletters_per_10k), Heavy::Newsletter),
        (per10k(cfg.businesses_per_10k), Heavy::Business),
        (per10k(cfg.forwarders_per_10k), Heavy::Forwarder),
        (per10k(cfg.autoresponders_per_10k), Heavy::Autoresponder),
    ] {
        for _ in 0..n {
            next = next.saturating_sub(1);
            heavy.push((next, k));
        }
    }
    let heavy_set: HashSet<u64> = heavy.iter().map(|h| h.0).collect();
    let ordinary = next; // accounts 0..ordinary are ordinary users

    // Abuse schedule.
    let mut books: Vec<Book> = Vec::new();
    let mut abuses: Vec<Abuse> = Vec::new();
    let mut victims: HashSet<u64> = HashSet::new();
    let mut srng = Rng::keyed(&[cfg.seed, 0x5c4e]);
    let new_book = |books: &mut Vec<Book>,
                    entity: Entity,
                    kind: AbuseKind,
                    shape: Option<Shape>,
                    group: Option<String>| {
        books.push(Book {
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
                group,
            },
            times: Vec::new(),
            ips: HashSet::new(),
            countries: HashSet::new(),
            first: i64::MAX,
            last: i64::MIN,
        });
        books.len() - 1
    };
    let pick_victim = |r: &mut Rng, victims: &mut HashSet<u64>| -> Option<u64> {
        for _ in 0..50 {
            let v = r.below(ordinary.max(1));
            if !victims.contains(&v) && !heavy_set.contains(&v) {
                victims.insert(v);
                return Some(v);
            }
        }
        None
    };
    let max_victims = (ordinary / 10).max(1);
    let mut group_no = 0;
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
                    if !victims.contains(&a) && !heavy_set.contains(&a) {
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
            let mut cs: Vec<&'static str> =
                BOT_COUNTRIES[..k_countries.min(BOT_COUNTRIES.len())].to_vec();
            cs.retain(|c| w.geo.has(c));
            for (j, a) in accts.iter().enumerate() {
                n = n.saturating_sub(1);
                let user = w.account(*a);
                let st = start + j as i64 * srng.below(1800) as i64;
                let li = new_book(
                    &mut books,
                    Entity::account(&user),
                    AbuseKind::HijackedAccount,
                    Some(if burst { Shape::Burst } else { Shape::Spread }),
                    group.clone(),
                );
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
                sessions.sort_unstable();
                if srng.chance(cfg.guessing_share) {
                    let gi = new_book(
                        &mut books,
                        Entity::account(&user),
                        AbuseKind::PasswordGuessing,
                        None,
                        None,
                    );
                    let gstart = st - srng.range(3600, 6 * 3600) as i64;
                    let n_try = srng.range(10, 60) as i64;
                    let span = (st - gstart - 600).max(60);
                    let mut gs: Vec<(i64, u64)> = (0..n_try)
                        .map(|k| (gstart + k * span / n_try, k as u64))
                        .collect();
                    gs.push((st - 300, u64::MAX));
                    abuses.push(Abuse {
                        label: gi,
                        sessions: gs,
                        cursor: 0,
                        kind: AbuseAct::Guess {
                            user: user.clone(),
                            pool: srng.next_u64(),
                            pop: srng.chance(0.4),
                            success_at: st - 300,
                        },
                    });
                }
                abuses.push(Abuse {
                    label: li,
                    sessions,
                    cursor: 0,
                    kind: AbuseAct::Hijack {
                        user,
                        burst,
                        pool: srng.next_u64(),
                        shared,
                        share: if group.is_some() { 0.5 } else { 0.0 },
                        countries: cs.clone(),
                        forge: srng.chance(0.3),
                    },
                });
            }
        }
        // Infected machines.
        for _ in 0..srng.poisson(cfg.infected_per_day) {
            let ip = w.isp_ip(srng.next_u64());
            let start = t0 + day * 86_400 + srng.below(86_400) as i64;
            let dur = srng.range(2 * 3600, 30 * 3600) as i64;
            let per_hour = srng.range(20, 200);
            let n = (per_hour as i64 * dur / 3600).max(1);
            let sessions: Vec<(i64, u64)> = (0..n)
                .map(|k| (start + k * dur / n + srng.below(30) as i64, k as u64))
                .collect();
            let style = srng.below(3);
            let helo = match style {
                0 => format!(
                    "{}{}",
                    ["WIN-", "DESKTOP-", "USER-PC", "HOME"][srng.below(4) as usize],
                    srng.below(1_000_000)
                ),
                1 => FORGED_HELOS[srng.below(FORGED_HELOS.len() as u64) as usize].to_string(),
                _ => format!("[{ip}]"),
            };
            let li = new_book(
                &mut books,
                Entity::client(&ip.to_string()),
                AbuseKind::InfectedClient,
                None,
                None,
            );
            abuses.push(Abuse {
                label: li,
                sessions,
                cursor: 0,
                kind: AbuseAct::Infected { ip, helo },
            });
        }
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
        let cs: Vec<&'static str> = (0..srng.range(1, 3))
            .map(|_| BOT_COUNTRIES[srng.below(10) as usize])
            .filter(|c| w.geo.has(c))
            .collect();
        let li = new_book(
            &mut books,
            Entity::account(&user),
            AbuseKind::SlowAndLow,
            None,
            None,
        );
        abuses.push(Abuse {
            label: li,
            sessions,
            cursor: 0,
            kind: AbuseAct::Slow {
                user,
                pool: srng.next_u64(),
                countries: cs,
            },
        });
    }
    let port25: Vec<u64> = (0..ordinary)
        .filter(|i| frac(hash(&[cfg.seed, 0x25, *i])) < cfg.port25_share)
        .collect();

    // Slices.
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut messages = 0u64;
    let mut werr: Option<std::io::Error> = None;
    let mut t = t0;
    while t < end {
        let slice_end = (t + SLICE_SECS).min(end);
        let mut r = Rng::keyed(&[cfg.seed, 0x511ce, t as u64]);
        let hour = ((t - t0) / 3600) as usize;
        let sod = t.rem_euclid(86_400);
        let local_h = ((sod / 3600 + 1) % 24) as usize; // CET
        let wd = ((t.div_euclid(86_400) + 3).rem_euclid(7)) as usize; // 1970-01-01 was a Thursday
        let act = DIURNAL[local_h] * WEEKLY[wd];
        let frac_day = (slice_end - t) as f64 / 86_400.0;
        // Ordinary users.
        for i in 0..ordinary {
            let h = hash(&[cfg.seed, 0xa7e, i]);
            let inactive = frac(h) < cfg.inactive_share;
            let rate = if inactive {
                0.05
            } else {
                cfg.msgs_per_active_day * (cfg.rate_sigma * normal_from(hash(&[h, 1]))).exp()
            };
            let lam = rate * act * frac_day;
            let n = if lam < 1e-9 { 0 } else { r.poisson(lam) };
            for _ in 0..n {
                let at = t * MICRO + r.below((slice_end - t) as u64 * MICRO as u64) as i64;
                let s = ordinary_session(&w, i, at, &mut r, port25.binary_search(&i).is_ok());
                messages += out.session(&s).len() as u64;
            }
            if cfg.format == LogFormat::Postfix && cfg.imap_logins_per_day > 0.0 {
                let n = r.poisson(cfg.imap_logins_per_day * act * frac_day * 0.3);
                for _ in 0..n {
                    let at = t * MICRO + r.below((slice_end - t) as u64 * MICRO as u64) as i64;
                    let (ip, host) = user_origin(&w, i, at / MICRO, &mut r);
                    let s = Session {
                        t: at,
                        ip,
                        host,
                        helo: String::new(),
                        kind: Kind::Imap {
                            user: w.account(i),
                            ok: true,
                            pop: r.chance(0.1),
                            attempts: 1,
                        },
                    };
                    out.session(&s);
                }
            }
        }
        // Heavy senders.
        for (hi, (acct, kind)) in heavy.iter().enumerate() {
            for s in heavy_sessions(
                &w, *acct, *kind, hi as u64, t, slice_end, hour, local_h, wd, &mut r,
            ) {
                messages += out.session(&s).len() as u64;
            }
        }
        // Abuse.
        for ab in abuses.iter_mut() {
            while ab.cursor < ab.sessions.len() && ab.sessions[ab.cursor].0 < slice_end {
                let (at, key) = ab.sessions[ab.cursor];
                ab.cursor += 1;
                if at < t0 || at >= end {
                    continue;
                }
                let at_us = at * MICRO + r.below(MICRO as u64) as i64;
                let (s, country) = abuse_session(&w, &ab.kind, at_us, key, &mut r);
                let acc = out.session(&s);
                let b = &mut books[ab.label];
                messages += acc.len() as u64;
                b.first = b.first.min(at_us);
                b.last = b.last.max(at_us);
                b.ips.insert(u32::from(s.ip));
                if let Some(c) = country {
                    b.countries.insert(c.to_string());
                }
                match &s.kind {
                    Kind::Smtp {
                        helo_rejected: true,
                        msgs,
                        ..
                    } => b.label.rejected += msgs.len() as u64,
                    Kind::Imap {
                        ok: false,
                        attempts,
                        ..
                    }
                    | Kind::AuthFail { attempts, .. } => b.label.rejected += u64::from(*attempts),
                    _ => {}
                }
                for a in acc {
                    b.times.push(a);
                    b.last = b.last.max(a);
                }
            }
        }
        out.drain_before(slice_end * MICRO, |line| {
            if werr.is_none() {
                if let Err(e) = log
                    .write_all(line.as_bytes())
                    .and_then(|_| log.write_all(b"\n"))
                {
                    werr = Some(e);
                }
            }
            lines += 1;
            bytes += line.len() as u64 + 1;
        });
        if let Some(e) = werr.take() {
            return Err(io(&log_path, e));
        }
        t = slice_end;
    }
    log.flush().map_err(|e| io(&log_path, e))?;

    // Labels.
    let mut labels_out = String::new();
    let mut timeline_out = String::new();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut abusive = 0u64;
    let mut labelled: HashSet<Entity> = HashSet::new();
    for b in books.iter_mut() {
        if b.first == i64::MAX {
            continue;
        }
        b.times.sort_unstable();
        b.label.start = maillog::Ts(b.first - b.first.rem_euclid(MICRO)).rfc3339();
        b.label.end = maillog::Ts(b.last - b.last.rem_euclid(MICRO)).rfc3339();
        b.label.messages = b.times.len() as u64;
        b.label.source_ips = b.ips.len() as u64;
        b.label.countries = b.countries.len() as u64;
        abusive += b.label.messages;
        *by_kind
            .entry(b.label.kind.as_str().to_string())
            .or_default() += 1;
        labelled.insert(b.label.entity.clone());
        labels_out.push_str(&serde_json::to_string(&b.label).unwrap_or_default());
        labels_out.push('\n');
        let mut prev = 0i64;
        let acc: Vec<i64> = b
            .times
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let s = x.div_euclid(MICRO);
                let v = if i == 0 { s } else { s - prev };
                prev = s;
                v
            })
            .collect();
        let te = TimelineEntry {
            entity: b.label.entity.clone(),
            kind: b.label.kind,
            accepted: acc,
        };
        timeline_out.push_str(&serde_json::to_string(&te).unwrap_or_default());
        timeline_out.push('\n');
    }
    write_file(&out_dir.join("labels.jsonl"), labels_out.as_bytes())?;
    write_file(&out_dir.join("timeline.jsonl"), timeline_out.as_bytes())?;
    let mut populations = BTreeMap::new();
    populations.insert("ordinary".to_string(), ordinary);
    populations.insert("port25-home-senders".to_string(), port25.len() as u64);
    for (name, k) in [
        ("mailing-lists", Heavy::List),
        ("newsletters", Heavy::Newsletter),
        ("businesses", Heavy::Business),
        ("forwarders", Heavy::Forwarder),
        ("autoresponders", Heavy::Autoresponder),
    ] {
        populations.insert(
            name.to_string(),
            heavy.iter().filter(|h| h.1 == k).count() as u64,
        );
    }
    let labelled_accounts = labelled.iter().filter(|e| e.kind == "account").count() as u64;
    let summary = Summary {
        seed: cfg.seed,
        format: match cfg.format {
            LogFormat::Postfix => "postfix".into(),
            LogFormat::Exim => "exim".into(),
        },
        days: cfg.days,
        start: maillog::Ts::from_secs(t0).rfc3339(),
        users: cfg.users as u64,
        legit_accounts: (cfg.users as u64).saturating_sub(labelled_accounts),
        populations,
        labels: by_kind,
        messages,
        abusive_messages: abusive,
        lines,
        bytes,
    };
    let js = serde_json::to_string_pretty(&summary).unwrap_or_default();
    write_file(&out_dir.join("summary.json"), js.as_bytes())?;
    Ok(summary)
}

fn io(p: &Path, e: std::io::Error) -> SimError {
    SimError::Io {
        path: p.display().to_string(),
        source: e,
    }
}

fn write_file(p: &Path, b: &[u8]) -> Result<(), SimError> {
    std::fs::write(p, b).map_err(|e| io(p, e))
}

fn frac(h: u64) -> f64 {
    (h % 1_000_000) as f64 / 1_000_000.0
}

fn normal_from(h: u64) -> f64 {
    Rng::new(h).normal()
}

/// Where account `i` is at `t`: (ip, rDNS name).
fn user_origin(w: &World, i: u64, t: i64, r: &mut Rng) -> (Ipv4Addr, Option<String>) {
    let cfg = w.cfg;
    let h = hash(&[cfg.seed, 0x0419, i]);
    // Travel: a trip starts on day s with probability travel_per_day and lasts 2..=10 days.
    let day = t.div_euclid(86_400);
    for s in (day - 10)..=day {
        let th = hash(&[cfg.seed, 0x7a1, i, s as u64]);
        if frac(th) < cfg.travel_per_day {
            let len = 2 + (th >> 24) as i64 % 9;
            if day < s + len {
                let c = TRAVEL_COUNTRIES[((th >> 32) % TRAVEL_COUNTRIES.len() as u64) as usize];
                return (w.ip_in(c, hash(&[i, s as u64, r.below(3)])), None);
            }
        }
    }
    if frac(hash(&[h, 3])) < cfg.vpn_share && r.chance(0.3) {
        let k = r.below(40);
        let c = VPN_COUNTRIES[(k % VPN_COUNTRIES.len() as u64) as usize];
        return (w.ip_in(c, hash(&[0x0b9, k])), None);
    }
    let worker = frac(hash(&[h, 1])) < cfg.worker_share;
    let sod = t.rem_euclid(86_400);
    let wd = (t.div_euclid(86_400) + 3).rem_euclid(7);
    if worker && wd < 5 && (7 * 3600..16 * 3600).contains(&sod) && r.chance(0.7) {
        let c = (h >> 8) % w.companies;
        let ip = w.company_ip(c);
        return (
            ip,
            Some(format!(
                "gw.{}-{}{c}.de",
                WORDS[(c % WORDS.len() as u64) as usize],
                "firma"
            )),
        );
    }
    let mobile = 0.1 + 0.5 * frac(hash(&[h, 2]));
    if r.chance(mobile) {
        return (w.cgnat_ip(hash(&[h, t as u64 / 600])), None);
    }
    let ip = w.home_ip(i, t);
    (ip, Some(w.isp_rdns(ip)))
}

fn legit_rcpt(w: &World, r: &mut Rng) -> Rcpt {
    let cfg = w.cfg;
    if r.chance(cfg.local_rcpt_share) {
        let j = r.below(cfg.users as u64);
        return Rcpt {
            addr: w.account(j),
            fate: Fate::Local,
        };
    }
    let (addr, mx) = w.provider_rcpt(r);
    let x = r.f64();
    let fate = if x < cfg.typo_rate {
        Fate::Unknown(mx)
    } else if x < cfg.typo_rate + cfg.domain_typo_rate {
        let a = addr.replace(".com", ".cmo").replace(".de", ".dee");
        return Rcpt {
            addr: a,
            fate: Fate::NoDomain,
        };
    } else if x < cfg.typo_rate + cfg.domain_typo_rate + cfg.greylist_rate {
        Fate::Grey(mx)
    } else {
        Fate::Sent(mx)
    };
    Rcpt { addr, fate }
}

fn n_rcpts(r: &mut Rng) -> usize {
    let x = r.f64();
    if x < 0.7 {
        1
    } else if x < 0.95 {
        r.range(2, 5) as usize
    } else {
        r.range(6, 20) as usize
    }
}

fn msg_size(r: &mut Rng) -> u32 {
    r.lognormal(9000.0, 1.2).clamp(600.0, 25_000_000.0) as u32
}

fn ordinary_session(w: &World, i: u64, at: i64, r: &mut Rng, port25: bool) -> Session {
    let user = w.account(i);
    let from = user.clone();
    let msgs = vec![Msg {
        from,
        size: msg_size(r),
        rcpts: (0..n_rcpts(r)).map(|_| legit_rcpt(w, r)).collect(),
        local_sender: true,
    }];
    if port25 && r.chance(0.8) {
        let ip = w.home_ip(i, at / MICRO);
        let helo = if hash(&[i, 9]) & 1 == 0 {
            format!("DESKTOP-{:X}.fritz.box", hash(&[i]) & 0xFFFFF)
        } else {
            "[192.168.178.20]".to_string()
        };
        return Session {
            t: at,
            ip,
            host: Some(w.isp_rdns(ip)),
            helo,
            kind: Kind::Smtp {
                auth: None,
                submission: false,
                helo_rejected: false,
                msgs,
            },
        };
    }
    let (ip, host) = user_origin(w, i, at / MICRO, r);
    let helo = match hash(&[i, 7]) % 3 {
        0 => "[192.168.1.23]".to_string(),
        1 => format!("DESKTOP-{:X}.local", hash(&[i]) & 0xFFFFF),
        _ => format!(
            "{}-laptop.fritz.box",
            w.account(i).split('.').next().unwrap_or("user")
        ),
    };
    Session {
        t: at,
        ip,
        host,
        helo,
        kind: Kind::Smtp {
            auth: Some(user),
            submission: true,
            helo_rejected: false,
            msgs,
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn heavy_sessions(
    w: &World,
    acct: u64,
    kind: Heavy,
    hi: u64,
    t: i64,
    end: i64,
    _hour: usize,
    local_h: usize,
    wd: usize,
    r: &mut Rng,
) -> Vec<Session> {
    let mut out = Vec::new();
    let cfg = w.cfg;
    let span = (end - t) as f64 / 3600.0;
    let at = |r: &mut Rng| t * MICRO + r.below((end - t) as u64 * MICRO as u64) as i64;
    let server_ip = w
        .geo
        .ip(&cfg.home_country, hash(&[cfg.seed, 0x5e7, hi]))
        .unwrap_or(Ipv4Addr::new(192, 0, 2, 9));
    let dom = w.hosted[(hi % w.hosted.len() as u64) as usize].clone();
    let server_host = Some(format!("srv{hi}.{dom}"));
    match kind {
        Heavy::List => {
            // ~3 posts a day, business hours weighted.
            let n = r.poisson(3.0 / 24.0 * span * DIURNAL[local_h]);
            let subs = 100 + hash(&[hi, 1]) % 700;
            let fail = 0.05 + 0.10 * frac(hash(&[hi, 2]));
            let list = format!("list{hi}@{dom}");
            for _ in 0..n {
                let rcpts: Vec<Rcpt> = (0..subs)
                    .map(|k| {
                        let kh = hash(&[hi, k, 3]);
                        let mut rr = Rng::new(kh);
                        let (addr, mx) = w.provider_rcpt(&mut rr);
                        let fate = if frac(kh) < fail {
                            Fate::Unknown(mx)
                        } else {
                            Fate::Sent(mx)
                        };
                        Rcpt { addr, fate }
                    })
                    .collect();
                let m = Msg {
                    from: list.clone(),
                    size: msg_size(r),
                    rcpts,
                    local_sender: true,
                };
                out.push(Session {
                    t: at(r),
                    ip: server_ip,
                    host: server_host.clone(),
                    helo: format!("srv{hi}.{dom}"),
                    kind: Kind::Smtp {
                        auth: Some(list.clone()),
                        submission: true,
                        helo_rejected: false,
                        msgs: vec![m],
                    },
                });
            }
        }
        Heavy::Newsletter => {
            if wd as u64 == hi % 5 && local_h == 9 {
                let subs = 500 + hash(&[hi, 4]) % 2500;
                let fail = 0.03 + 0.05 * frac(hash(&[hi, 5]));
                let acct_name = format!("newsletter@{dom}");
                let batches = subs.div_ceil(50);
                let per = (batches as f64 / span.max(1e-9)).max(0.0);
                let n = r.poisson(per * span / 6.0);
                for _ in 0..n {
                    let b = r.below(batches);
                    let rcpts: Vec<Rcpt> = (b * 50..((b + 1) * 50).min(subs))
                        .map(|k| {
                            let kh = hash(&[hi, k, 6]);
                            let mut rr = Rng::new(kh);
                            let (addr, mx) = w.provider_rcpt(&mut rr);
                            Rcpt {
                                addr,
                                fate: if frac(kh) < fail {
                                    Fate::Unknown(mx)
                                } else {
                                    Fate::Sent(mx)
                                },
                            }
                        })
                        .collect();
                    let m = Msg {
                        from: acct_name.clone(),
                        size: 40_000 + r.below(30_000) as u32,
                        rcpts,
                        local_sender: true,
                    };
                    out.push(Session {
                        t: at(r),
                        ip: server_ip,
                        host: server_host.clone(),
                        helo: format!("srv{hi}.{dom}"),
                        kind: Kind::Smtp {
                            auth: Some(acct_name.clone()),
                            submission: true,
                            helo_rejected: false,
                            msgs: vec![m],
                        },
                    });
                }
            }
        }
        Heavy::Business => {
            let n = r.poisson(50.0 / 24.0 * span * DIURNAL[local_h] * WEEKLY[wd]);
            let user = w.account(acct);
            let doms: Vec<String> = (0..2 + hi % 3)
                .map(|k| w.hosted[((hi + k * 7) % w.hosted.len() as u64) as usize].clone())
                .collect();
            let ip = w.company_ip(hash(&[hi, 0xb5]));
            for _ in 0..n {
                let d = &doms[r.below(doms.len() as u64) as usize];
                let from = format!(
                    "{}@{d}",
                    ["info", "office", "sales", "rechnung"][r.below(4) as usize]
                );
                let m = Msg {
                    from,
                    size: msg_size(r),
                    rcpts: (0..n_rcpts(r)).map(|_| legit_rcpt(w, r)).collect(),
                    local_sender: true,
                };
                out.push(Session {
                    t: at(r),
                    ip,
                    host: Some(format!("mail.{}", doms[0])),
                    helo: format!("mail.{}", doms[0]),
                    kind: Kind::Smtp {
                        auth: Some(user.clone()),
                        submission: true,
                        helo_rejected: false,
                        msgs: vec![m],
                    },
                });
            }
        }
        Heavy::Forwarder => {
            let n = r.poisson(60.0 / 24.0 * span);
            let ip = w.isp_ip(hash(&[cfg.seed, 0xf0, hi]));
            let dest = format!(
                "{}.{}@gmail.com",
                WORDS[(hi % WORDS.len() as u64) as usize],
                hi
            );
            let gmail = crate::world::provider_mx(crate::world::PROVIDERS[0]);
            for _ in 0..n {
                let from = if r.chance(0.3) {
                    format!(
                        "{}@{}",
                        WORDS[r.below(WORDS.len() as u64) as usize],
                        w.invented_domain(r)
                    )
                } else {
                    w.provider_rcpt(r).0
                };
                let fate = if r.chance(0.05) {
                    Fate::Spam(gmail.clone())
                } else {
                    Fate::Sent(gmail.clone())
                };
                let m = Msg {
                    from,
                    size: msg_size(r),
                    rcpts: vec![Rcpt {
                        addr: dest.clone(),
                        fate,
                    }],
                    local_sender: false,
                };
                out.push(Session {
                    t: at(r),
                    ip,
                    host: Some(w.isp_rdns(ip)),
                    helo: format!("fw{hi}.{dom}"),
                    kind: Kind::Smtp {
                        auth: None,
                        submission: false,
                        helo_rejected: false,
                        msgs: vec![m],
                    },
                });
            }
        }
        Heavy::Autoresponder => {
            let n = r.poisson(15.0 / 24.0 * span);
            let user = w.account(acct);
            for _ in 0..n {
                let rc = if r.chance(0.2) {
                    let d = w.invented_domain(r);
                    let mx = w.small_mx(&d, r);
                    Rcpt {
                        addr: format!("info@{d}"),
                        fate: Fate::Unknown(mx),
                    }
                } else {
                    let (a, mx) = w.provider_rcpt(r);
                    Rcpt {
                        addr: a,
                        fate: Fate::Sent(mx),
                    }
                };
                let m = Msg {
                    from: user.clone(),
                    size: 1500 + r.below(1500) as u32,
                    rcpts: vec![rc],
                    local_sender: true,
                };
                let ip = w
                    .geo
                    .ip(&cfg.home_country, hash(&[cfg.seed, 0xa0, hi]))
                    .unwrap_or(server_ip);
                out.push(Session {
                    t: at(r),
                    ip,
                    host: Some(format!(
                        "webmail.{}",
                        cfg.isp_domains
                            .first()
                            .map(|s| s.as_str())
                            .unwrap_or("example-isp.de")
                    )),
                    helo: "webmail".to_string(),
                    kind: Kind::Smtp {
                        auth: Some(user.clone()),
                        submission: true,
                        helo_rejected: false,
                        msgs: vec![m],
                    },
                });
            }
        }
    }
    out
}

/// A spam recipient: harvested at big providers or invented, with mostly failing outcomes.
fn spam_rcpt(w: &World, r: &mut Rng) -> Rcpt {
    if r.chance(0.4) {
        let (addr, mx) = w.provider_rcpt(r);
        let x = r.f64();
        let fate = if x < 0.3 {
            Fate::Spam(mx)
        } else if x < 0.6 {
            Fate::Unknown(mx)
        } else {
            Fate::Sent(mx)
        };
        Rcpt { addr, fate }
    } else {
        let d = w.invented_domain(r);
        let addr = format!(
            "{}{}@{d}",
            WORDS[r.below(WORDS.len() as u64) as usize],
            r.below(1000)
        );
        let x = r.f64();
        let fate = if x < 0.3 {
            Fate::NoDomain
        } else {
            let mx = w.small_mx(&d, r);
            if x < 0.7 {
                Fate::Unknown(mx)
            } else if x < 0.9 {
                Fate::Sent(mx)
            } else {
                Fate::Dead(mx)
            }
        };
        Rcpt { addr, fate }
    }
}

fn bot_country(cs: &[&'static str], key: u64) -> &'static str {
    if cs.is_empty() {
        return "US";
    }
    // Zipf-like: earlier countries more frequent.
    let x = frac(hash(&[key, 0xc7]));
    let idx = ((x * x) * cs.len() as f64) as usize;
    cs[idx.min(cs.len() - 1)]
}

fn abuse_session(
    w: &World,
    act: &AbuseAct,
    at: i64,
    key: u64,
    r: &mut Rng,
) -> (Session, Option<&'static str>) {
    match act {
        AbuseAct::Hijack {
            user,
            burst,
            pool,
            shared,
            share,
            countries,
            forge,
        } => {
            let ipkey = if frac(hash(&[key, 0x5a])) < *share {
                hash(&[*shared, key])
            } else {
                hash(&[*pool, key])
            };
            let c = bot_country(countries, ipkey);
            let ip = w.ip_in(c, ipkey);
            let n_msgs = if *burst { 25 } else { r.range(1, 3) as usize };
            let msgs = (0..n_msgs)
                .map(|_| {
                    let from = if *forge {
                        format!(
                            "{}@{}",
                            WORDS[r.below(WORDS.len() as u64) as usize],
                            w.invented_domain(r)
                        )
                    } else {
                        user.clone()
                    };
                    let n = if *burst {
                        r.range(1, 5)
                    } else {
                        r.range(1, 10)
                    } as usize;
                    Msg {
                        local_sender: !*forge,
                        from,
                        size: r.range(2_000, 30_000) as u32,
                        rcpts: (0..n).map(|_| spam_rcpt(w, r)).collect(),
                    }
                })
                .collect();
            let helo = if r.chance(0.5) {
                format!("[{ip}]")
            } else {
                ["User", "localhost", "ylmf-pc", "WIN-K3P2"][r.below(4) as usize].to_string()
            };
            (
                Session {
                    t: at,
                    ip,
                    host: None,
                    helo,
                    kind: Kind::Smtp {
                        auth: Some(user.clone()),
                        submission: true,
                        helo_rejected: false,
                        msgs,
                    },
                },
                Some(c),
            )
        }
        AbuseAct::Guess {
            user,
            pool,
            pop,
            success_at,
        } => {
            let c = BOT_COUNTRIES[(hash(&[*pool, key % 5]) % 10) as usize];
            let ip = w.ip_in(c, hash(&[*pool, key % 5]));
            let ok = key == u64::MAX || at / MICRO >= *success_at;
            let kind = if w.cfg.format == LogFormat::Exim {
                if ok {
                    Kind::AuthFail {
                        user: user.clone(),
                        attempts: 0,
                    }
                } else {
                    Kind::AuthFail {
                        user: user.clone(),
                        attempts: r.range(1, 4) as u32,
                    }
                }
            } else {
                Kind::Imap {
                    user: user.clone(),
                    ok,
                    pop: *pop,
                    attempts: r.range(1, 3) as u32,
                }
            };
            (
                Session {
                    t: at,
                    ip,
                    host: None,
                    helo: "User".into(),
                    kind,
                },
                Some(c),
            )
        }
        AbuseAct::Infected { ip, helo } => {
            let rejected = !helo.contains('.') && !helo.starts_with('[');
            let n = r.range(1, 5) as usize;
            let rcpts = (0..n)
                .map(|_| {
                    let (addr, mx) = w.provider_rcpt(r);
                    let x = r.f64();
                    let fate = if x < 0.15 {
                        Fate::Unknown(mx)
                    } else if x < 0.65 {
                        Fate::Malware(mx)
                    } else {
                        Fate::Sent(mx)
                    };
                    Rcpt { addr, fate }
                })
                .collect();
            let from = format!(
                "{}{}@{}",
                WORDS[r.below(WORDS.len() as u64) as usize],
                r.below(10_000),
                w.invented_domain(r)
            );
            let m = Msg {
                from,
                size: r.range(20_000, 200_000) as u32,
                rcpts,
                local_sender: false,
            };
            (
                Session {
                    t: at,
                    ip: *ip,
                    host: Some(w.isp_rdns(*ip)),
                    helo: helo.clone(),
                    kind: Kind::Smtp {
                        auth: None,
                        submission: false,
                        helo_rejected: rejected && w.cfg.format == LogFormat::Postfix,
                        msgs: vec![m],
                    },
                },
                Some(static_home(w)),
            )
        }
        AbuseAct::Slow {
            user,
            pool,
            countries,
        } => {
            let k = hash(&[*pool, key % 7]);
            let c = bot_country(countries, k);
            let ip = w.ip_in(c, k);
            let n = r.range(1, 3) as usize;
            let m = Msg {
                from: user.clone(),
                size: r.range(3_000, 12_000) as u32,
                rcpts: (0..n).map(|_| spam_rcpt(w, r)).collect(),
                local_sender: true,
            };
            (
                Session {
                    t: at,
                    ip,
                    host: None,
                    helo: "[127.0.0.1]".into(),
                    kind: Kind::Smtp {
                        auth: Some(user.clone()),
                        submission: true,
                        helo_rejected: false,
                        msgs: vec![m],
                    },
                },
                Some(c),
            )
        }
    }
}

fn static_home(w: &World) -> &'static str {
    // The home country as a static str for the label's country set.
    let h = w.cfg.home_country.as_str();
    for c in VPN_COUNTRIES
        .iter()
        .chain(TRAVEL_COUNTRIES)
        .chain(BOT_COUNTRIES)
    {
        if *c == h {
            return c;
        }
    }
    "DE"
}
