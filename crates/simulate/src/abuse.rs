//! Rendering planned abuse into sessions, slice by slice, and keeping each label's books.

use crate::benign::user_origin;
use crate::plan::{AbuseAct, Place, Plan, GENERIC_NAMES};
use crate::render::{Fate, Kind, Msg, Out, Rcpt, Session};
use crate::rng::{hash, Rng};
use crate::world::{World, BOT_COUNTRIES, FIRST, LAST, WORDS};
use crate::LogFormat;

const MICRO: i64 = 1_000_000;

/// Emit the planned sessions starting before `slice_end`; returns messages accepted.
pub fn emit_slice(plan: &mut Plan, w: &World, out: &mut Out, slice_end: i64, r: &mut Rng) -> u64 {
    let t0 = w.cfg.start.epoch_secs();
    let end = t0 + i64::from(w.cfg.days) * 86_400;
    let mut messages = 0u64;
    for ab in plan.abuses.iter_mut() {
        while ab.cursor < ab.sessions.len() && ab.sessions[ab.cursor].0 < slice_end {
            let (at, key) = ab.sessions[ab.cursor];
            ab.cursor += 1;
            if at < t0 || at >= end {
                continue;
            }
            let at_us = at * MICRO + r.below(MICRO as u64) as i64;
            let (s, country) = session(w, &ab.act, at_us, key, r);
            let acc = out.session(&s);
            messages += acc.len() as u64;
            let Some(b) = ab.label.and_then(|l| plan.books.get_mut(l)) else {
                continue;
            };
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
                Kind::Smtp {
                    inbound: true,
                    msgs,
                    ..
                } => {
                    b.label.rejected += msgs
                        .iter()
                        .flat_map(|m| &m.rcpts)
                        .filter(|x| matches!(x.fate, Fate::LocalUnknown))
                        .count() as u64
                }
                _ => {}
            }
            for a in acc {
                b.times.push(a);
                b.last = b.last.max(a);
            }
        }
    }
    messages
}

/// A spam recipient: harvested at big providers or invented, with mostly failing outcomes.
pub fn spam_rcpt(w: &World, r: &mut Rng) -> Rcpt {
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
        Rcpt::new(addr, fate)
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
        Rcpt::new(addr, fate)
    }
}

fn bot_country(cs: &[&'static str], key: u64) -> &'static str {
    if cs.is_empty() {
        return "US";
    }
    // Zipf-like: earlier countries more frequent.
    let x = crate::benign::frac(hash(&[key, 0xc7]));
    let idx = ((x * x) * cs.len() as f64) as usize;
    cs[idx.min(cs.len() - 1)]
}

fn login(w: &World, user: String, ok: bool, pop: bool, attempts: u32) -> Kind {
    if w.cfg.format == LogFormat::Exim {
        Kind::AuthFail {
            user,
            attempts: if ok { 0 } else { attempts },
        }
    } else {
        Kind::Imap {
            user,
            ok,
            pop,
            attempts,
        }
    }
}

fn session(
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
            place,
            forge,
        } => {
            let ipkey = if crate::benign::frac(hash(&[key, 0x5a])) < *share {
                hash(&[*shared, key])
            } else {
                hash(&[*pool, key])
            };
            let (ip, c) = match place {
                Place::Bots(cs) => {
                    let c = bot_country(cs, ipkey);
                    (w.ip_in(c, ipkey), Some(c))
                }
                Place::Home => (w.ip_in(w.home(), ipkey), Some(w.home_static())),
                Place::Unplaced => (w.unplaced_ip(ipkey), None),
            };
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
                        spam: None,
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
                        inbound: false,
                        msgs,
                    },
                },
                c,
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
            let attempts = r.range(1, 4) as u32;
            (
                Session {
                    t: at,
                    ip,
                    host: None,
                    helo: "User".into(),
                    kind: login(w, user.clone(), ok, *pop, attempts),
                },
                Some(c),
            )
        }
        AbuseAct::OwnerLogin { account } => {
            let (ip, host) = user_origin(w, *account, at / MICRO, r);
            (
                Session {
                    t: at,
                    ip,
                    host,
                    helo: String::new(),
                    kind: login(w, w.account(*account), true, r.chance(0.1), 1),
                },
                None,
            )
        }
        AbuseAct::Infected { ip, helo, forged } => {
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
                    Rcpt::new(addr, fate)
                })
                .collect();
            let from = match forged {
                Some(d) => format!(
                    "{}@{d}",
                    [
                        "service",
                        "security",
                        "no-reply",
                        "kundenservice",
                        "account"
                    ][r.below(5) as usize]
                ),
                None => format!(
                    "{}{}@{}",
                    WORDS[r.below(WORDS.len() as u64) as usize],
                    r.below(10_000),
                    w.invented_domain(r)
                ),
            };
            let m = Msg {
                from,
                size: r.range(20_000, 200_000) as u32,
                rcpts,
                local_sender: false,
                spam: None,
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
                        inbound: false,
                        msgs: vec![m],
                    },
                },
                Some(w.home_static()),
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
                spam: None,
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
                        inbound: false,
                        msgs: vec![m],
                    },
                },
                Some(c),
            )
        }
        AbuseAct::Site {
            ip,
            host,
            site,
            style,
        } => {
            // The hacked script's envelope sender: WordPress's default, a no-reply, or random
            // local parts (TRAFFIC-FACTS §5).
            let from = match (style + r.below(4) / 3) % 3 {
                0 => format!("wordpress@{site}"),
                1 => format!("noreply@{site}"),
                _ => format!(
                    "{}{}@{site}",
                    FIRST[r.below(FIRST.len() as u64) as usize],
                    r.below(100_000)
                ),
            };
            let n = r.range(1, 4) as usize;
            let m = Msg {
                from,
                size: r.range(3_000, 20_000) as u32,
                rcpts: (0..n).map(|_| spam_rcpt(w, r)).collect(),
                local_sender: false,
                spam: None,
            };
            (
                Session {
                    t: at,
                    ip: *ip,
                    host: Some(host.clone()),
                    helo: host.clone(),
                    kind: Kind::Smtp {
                        auth: None,
                        submission: false,
                        helo_rejected: false,
                        inbound: false,
                        msgs: vec![m],
                    },
                },
                Some(w.home_static()),
            )
        }
        AbuseAct::InboundSpam {
            ip,
            literal,
            style,
            fixed,
            real,
            country,
        } => (
            crate::incoming::spam_session(w, *ip, *literal, *style, fixed, *real, at, key, r),
            Some(*country),
        ),
        AbuseAct::LoopedBack { ip, forged, real } => (
            crate::incoming::looped_session(w, *ip, *forged, *real, at, key, r),
            Some(w.home_static()),
        ),
        AbuseAct::BgGuess {
            ip,
            country,
            real_share,
            campaign,
        } => {
            let h = hash(&[*campaign, key, u64::from(u32::from(*ip))]);
            let mut nr = Rng::new(h);
            let name = if nr.chance(*real_share) {
                // A real customer's name (harvested addresses).
                w.account(nr.below(u64::from(w.cfg.users.max(1))))
            } else {
                let local = if nr.chance(0.6) {
                    GENERIC_NAMES[nr.below(GENERIC_NAMES.len() as u64) as usize].to_string()
                } else {
                    format!(
                        "{}.{}",
                        FIRST[nr.below(FIRST.len() as u64) as usize],
                        LAST[nr.below(LAST.len() as u64) as usize]
                    )
                };
                if nr.chance(0.5) {
                    local
                } else {
                    let d = &w.cfg.isp_domains;
                    match d.get(nr.below(d.len().max(1) as u64) as usize) {
                        Some(d) => format!("{local}@{d}"),
                        None => local,
                    }
                }
            };
            let attempts = r.range(1, 3) as u32;
            let kind = if w.cfg.format == LogFormat::Postfix && r.chance(0.3) {
                // SMTP AUTH: Postfix does not name the user.
                Kind::AuthFail {
                    user: name,
                    attempts,
                }
            } else {
                login(w, name, false, r.chance(0.3), attempts)
            };
            (
                Session {
                    t: at,
                    ip: *ip,
                    host: None,
                    helo: ["User", "ylmf-pc", "localhost"][r.below(3) as usize].into(),
                    kind,
                },
                Some(country),
            )
        }
    }
}
