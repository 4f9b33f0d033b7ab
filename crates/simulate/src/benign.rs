//! Benign traffic: ordinary users and the legitimate look-alikes real ISPs have (mailing lists,
//! newsletters, customer MTAs, business NATs, shared web hosting, forwarders, webmail, stale
//! passwords, multi-domain senders, autoresponders), and their profiles for `population.jsonl`.

use std::net::Ipv4Addr;

use crate::labels::{Entity, PopulationEntry};
use crate::params::Params;
use crate::render::{Fate, Kind, Msg, Out, Rcpt, Session};
use crate::rng::{hash, Rng};
use crate::world::{World, FIRST, LAST, TRAVEL_COUNTRIES, VPN_COUNTRIES, WORDS};
use crate::LogFormat;

const MICRO: i64 = 1_000_000;

/// Relative activity by local hour (office-and-evening shape, see SIMULATION.md).
pub const DIURNAL: [f64; 24] = [
    0.15, 0.08, 0.05, 0.04, 0.05, 0.1, 0.3, 0.7, 1.2, 1.6, 1.7, 1.6, 1.4, 1.5, 1.6, 1.5, 1.4, 1.3,
    1.2, 1.3, 1.4, 1.2, 0.8, 0.4,
];
/// Relative activity by weekday, Monday first.
pub const WEEKLY: [f64; 7] = [1.1, 1.1, 1.05, 1.05, 1.0, 0.55, 0.5];

/// The special (non-ordinary) benign populations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Heavy {
    List,
    Newsletter,
    /// One account sending from several domains of its own.
    MultiDomain,
    /// A customer server on a port-25 line forwarding outside mail to one external mailbox.
    Forwarder,
    Autoresponder,
    /// A customer's own mail server: HELO = its own domain, port 25, no AUTH.
    CustomerMta,
    /// A business line with many PCs (many HELOs) behind one address, port 25, no AUTH.
    BusinessNat,
    /// A shared web-hosting server relaying its sites' mail on port 25, no AUTH.
    WebHosting,
    /// An ISP account whose mail is forwarded (alias / `.forward`) to an external mailbox.
    AliasForward,
}

impl Heavy {
    /// Its profile name in `population.jsonl` and its summary population name.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Heavy::List => ("mailing-list", "mailing-lists"),
            Heavy::Newsletter => ("newsletter", "newsletters"),
            Heavy::MultiDomain => ("multi-domain", "multi-domain-senders"),
            Heavy::Forwarder => ("forwarder", "forwarding-servers"),
            Heavy::Autoresponder => ("autoresponder", "autoresponders"),
            Heavy::CustomerMta => ("customer-mta", "customer-mtas"),
            Heavy::BusinessNat => ("business-nat", "business-nats"),
            Heavy::WebHosting => ("web-hosting", "web-hosting-servers"),
            Heavy::AliasForward => ("forwarder", "forwarding-aliases"),
        }
    }
}

/// Who is who: ordinary accounts are `0..ordinary`; the heavy populations re-purpose the
/// account indices above.
pub struct Populations {
    pub ordinary: u64,
    /// (account index, population).
    pub heavy: Vec<(u64, Heavy)>,
    /// Ordinary accounts relaying from home on port 25, sorted.
    pub port25: Vec<u64>,
    /// Ordinary accounts with a stale-password device, sorted.
    pub stale: Vec<u64>,
    /// The webmail server's address.
    pub webmail_ip: Ipv4Addr,
}

impl Populations {
    pub fn new(w: &World, p: &Params) -> Populations {
        let cfg = w.cfg;
        let per10k = |x: f64| ((x * cfg.users as f64 / 10_000.0).round() as u64).max(1);
        let mut heavy = Vec::new();
        let mut next = cfg.users as u64;
        for (n, k) in [
            (per10k(cfg.lists_per_10k), Heavy::List),
            (per10k(cfg.newsletters_per_10k), Heavy::Newsletter),
            (per10k(cfg.businesses_per_10k), Heavy::MultiDomain),
            (per10k(cfg.forwarders_per_10k), Heavy::Forwarder),
            (per10k(cfg.autoresponders_per_10k), Heavy::Autoresponder),
            (per10k(p.mta_per_10k), Heavy::CustomerMta),
            (per10k(p.nat_per_10k), Heavy::BusinessNat),
            (per10k(p.hosting_per_10k), Heavy::WebHosting),
            (per10k(p.fwd_per_10k), Heavy::AliasForward),
        ] {
            for _ in 0..n {
                next = next.saturating_sub(1);
                heavy.push((next, k));
            }
        }
        let ordinary = next;
        let port25 = (0..ordinary)
            .filter(|i| frac(hash(&[cfg.seed, 0x25, *i])) < cfg.port25_share)
            .collect();
        let stale = (0..ordinary)
            .filter(|i| frac(hash(&[cfg.seed, 0x57a1e, *i])) < p.stale_share)
            .collect();
        let webmail_ip = w
            .geo
            .ip(w.home(), hash(&[cfg.seed, 0xeeb]))
            .unwrap_or(Ipv4Addr::new(192, 0, 2, 10));
        Populations {
            ordinary,
            heavy,
            port25,
            stale,
            webmail_ip,
        }
    }

    /// Every address a benign customer relays from on port 25 during the run (customer
    /// servers, NATs, hosting, home senders at every address they hold), so an infected
    /// machine is never put on a benign customer's address.
    pub fn port25_addresses(&self, w: &World) -> std::collections::HashSet<Ipv4Addr> {
        let mut v = std::collections::HashSet::new();
        for (hi, (_, kind)) in self.heavy.iter().enumerate() {
            let hi = hi as u64;
            match kind {
                Heavy::Forwarder => v.insert(line_ip(w, 0xf0, hi)),
                Heavy::CustomerMta => v.insert(line_ip(w, 0x3a7, hi)),
                Heavy::BusinessNat => v.insert(line_ip(w, 0x4a7, hi)),
                Heavy::WebHosting => v.insert(hosting(w, &w.params, hi).ip),
                _ => false,
            };
        }
        let t0 = w.cfg.start.epoch_secs();
        let end = t0 + i64::from(w.cfg.days) * 86_400;
        for &i in &self.port25 {
            // Home addresses last at least 6 h (`home_ip_days` × 0.25, at least an hour).
            let mut t = t0;
            while t < end {
                v.insert(w.home_ip(i, t));
                t += 3600;
            }
        }
        v
    }

    /// Whether account `i` belongs to a special population (never a hijack victim).
    pub fn is_special(&self, i: u64) -> bool {
        i >= self.ordinary || self.stale.binary_search(&i).is_ok()
    }

    /// Entities per population for the summary.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let mut v = vec![
            ("ordinary", self.ordinary),
            ("port25-home-senders", self.port25.len() as u64),
            ("stale-password", self.stale.len() as u64),
        ];
        for k in [
            Heavy::List,
            Heavy::Newsletter,
            Heavy::MultiDomain,
            Heavy::Forwarder,
            Heavy::Autoresponder,
            Heavy::CustomerMta,
            Heavy::BusinessNat,
            Heavy::WebHosting,
            Heavy::AliasForward,
        ] {
            v.push((
                k.names().1,
                self.heavy.iter().filter(|h| h.1 == k).count() as u64,
            ));
        }
        v
    }
}

pub fn frac(h: u64) -> f64 {
    (h % 1_000_000) as f64 / 1_000_000.0
}

fn normal_from(h: u64) -> f64 {
    Rng::new(h).normal()
}

fn isp_domain<'a>(w: &'a World) -> &'a str {
    w.cfg
        .isp_domains
        .first()
        .map(|s| s.as_str())
        .unwrap_or("example-isp.de")
}

/// Whether account `i` uses a commercial VPN sometimes.
fn vpn_user(w: &World, i: u64) -> bool {
    frac(hash(&[hash(&[w.cfg.seed, 0x0419, i]), 3])) < w.cfg.vpn_share
}

/// Whether account `i` submits part of its mail through webmail.
fn webmail_user(w: &World, p: &Params, i: u64) -> bool {
    frac(hash(&[w.cfg.seed, 0xeeb1, i])) < p.webmail_share
}

/// The trip account `i` is on at `t`, if any: (trip start day, country).
fn trip(w: &World, i: u64, t: i64) -> Option<(i64, &'static str)> {
    let day = t.div_euclid(86_400);
    for s in (day - 10)..=day {
        let th = hash(&[w.cfg.seed, 0x7a1, i, s as u64]);
        if frac(th) < w.cfg.travel_per_day {
            let len = 2 + (th >> 24) as i64 % 9;
            if day < s + len {
                let c = TRAVEL_COUNTRIES[((th >> 32) % TRAVEL_COUNTRIES.len() as u64) as usize];
                return Some((s, c));
            }
        }
    }
    None
}

/// Where account `i` is at `t`: (ip, rDNS name).
pub fn user_origin(w: &World, i: u64, t: i64, r: &mut Rng) -> (Ipv4Addr, Option<String>) {
    let cfg = w.cfg;
    let h = hash(&[cfg.seed, 0x0419, i]);
    if let Some((s, c)) = trip(w, i, t) {
        // Hotel, café, roaming phone: a few addresses per trip.
        return (w.ip_in(c, hash(&[i, s as u64, r.below(3)])), None);
    }
    if vpn_user(w, i) {
        // One exit per VPN session (a session lasts hours; the user is on it ~30% of the time).
        let len = (w.params.vpn_session_hours * 3600.0).max(600.0) as i64;
        let sess = (t + (h % len as u64) as i64).div_euclid(len);
        let sh = hash(&[h, sess as u64, 0x0b9]);
        if frac(sh) < 0.3 {
            let k = sh % 40;
            let c = VPN_COUNTRIES[(k % VPN_COUNTRIES.len() as u64) as usize];
            return (w.ip_in(c, hash(&[0x0b9, k])), None);
        }
    }
    let worker = frac(hash(&[h, 1])) < cfg.worker_share;
    let sod = t.rem_euclid(86_400);
    let wd = (t.div_euclid(86_400) + 3).rem_euclid(7);
    if worker && wd < 5 && (7 * 3600..16 * 3600).contains(&sod) && r.chance(0.7) {
        let c = (h >> 8) % w.companies;
        let ip = w.company_ip(c);
        return (ip, Some(company_host(c)));
    }
    let mobile = 0.1 + 0.5 * frac(hash(&[h, 2]));
    if r.chance(mobile) {
        return (w.cgnat_ip(hash(&[h, t as u64 / 600])), None);
    }
    let ip = w.home_ip(i, t);
    (ip, Some(w.isp_rdns(ip)))
}

fn company_host(c: u64) -> String {
    format!(
        "gw.{}-{}{c}.de",
        WORDS[(c % WORDS.len() as u64) as usize],
        "firma"
    )
}

fn legit_rcpt(w: &World, r: &mut Rng) -> Rcpt {
    let cfg = w.cfg;
    if r.chance(cfg.local_rcpt_share) {
        let j = r.below(cfg.users as u64);
        return Rcpt::new(w.account(j), Fate::Local);
    }
    let (addr, mx) = w.provider_rcpt(r);
    let x = r.f64();
    let fate = if x < cfg.typo_rate {
        Fate::Unknown(mx)
    } else if x < cfg.typo_rate + cfg.domain_typo_rate {
        let a = addr.replace(".com", ".cmo").replace(".de", ".dee");
        return Rcpt::new(a, Fate::NoDomain);
    } else if x < cfg.typo_rate + cfg.domain_typo_rate + cfg.greylist_rate {
        Fate::Grey(mx)
    } else {
        Fate::Sent(mx)
    };
    Rcpt::new(addr, fate)
}

/// A business recipient at a big provider that fails with probability `fail`.
fn biz_rcpt(w: &World, r: &mut Rng, fail: f64) -> Rcpt {
    if r.chance(fail) {
        let (addr, mx) = w.provider_rcpt(r);
        return Rcpt::new(addr, Fate::Unknown(mx));
    }
    let mut rc = legit_rcpt(w, r);
    if matches!(rc.fate, Fate::Unknown(_) | Fate::NoDomain) {
        let (addr, mx) = w.provider_rcpt(r);
        rc = Rcpt::new(addr, Fate::Sent(mx));
    }
    rc
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

fn smtp(auth: Option<String>, submission: bool, msgs: Vec<Msg>) -> Kind {
    Kind::Smtp {
        auth,
        submission,
        helo_rejected: false,
        inbound: false,
        msgs,
    }
}

fn ordinary_session(
    w: &World,
    pops: &Populations,
    i: u64,
    at: i64,
    r: &mut Rng,
    port25: bool,
) -> Session {
    let user = w.account(i);
    let from = user.clone();
    let msgs = vec![Msg {
        from,
        size: msg_size(r),
        rcpts: (0..n_rcpts(r)).map(|_| legit_rcpt(w, r)).collect(),
        local_sender: true,
        spam: None,
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
            kind: smtp(None, false, msgs),
        };
    }
    if webmail_user(w, &w.params, i) && r.chance(0.5) {
        let host = format!("webmail.{}", isp_domain(w));
        return Session {
            t: at,
            ip: pops.webmail_ip,
            host: Some(host.clone()),
            helo: host,
            kind: smtp(Some(user), true, msgs),
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
        kind: smtp(Some(user), true, msgs),
    }
}

/// The clock of one slice.
#[derive(Clone, Copy)]
pub struct Slice {
    pub t: i64,
    pub end: i64,
    pub local_h: usize,
    pub wd: usize,
}

impl Slice {
    pub fn new(t: i64, end: i64) -> Slice {
        let sod = t.rem_euclid(86_400);
        Slice {
            t,
            end,
            local_h: ((sod / 3600 + 1) % 24) as usize, // CET
            wd: ((t.div_euclid(86_400) + 3).rem_euclid(7)) as usize, // 1970-01-01: Thursday
        }
    }
    pub(crate) fn act(&self) -> f64 {
        DIURNAL[self.local_h] * WEEKLY[self.wd]
    }
    fn hours(&self) -> f64 {
        (self.end - self.t) as f64 / 3600.0
    }
    fn at(&self, r: &mut Rng) -> i64 {
        self.t * MICRO + r.below((self.end - self.t).max(1) as u64 * MICRO as u64) as i64
    }
}

/// Emit all benign sessions of one slice; returns messages accepted.
pub fn emit_slice(w: &World, pops: &Populations, out: &mut Out, sl: Slice, r: &mut Rng) -> u64 {
    let cfg = w.cfg;
    let mut messages = 0u64;
    let act = sl.act();
    let frac_day = (sl.end - sl.t) as f64 / 86_400.0;
    for i in 0..pops.ordinary {
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
            let at = sl.at(r);
            let p25 = pops.port25.binary_search(&i).is_ok();
            let s = ordinary_session(w, pops, i, at, r, p25);
            messages += out.session(&s).len() as u64;
        }
        if cfg.format == LogFormat::Postfix && cfg.imap_logins_per_day > 0.0 {
            let n = r.poisson(cfg.imap_logins_per_day * act * frac_day * 0.3);
            for _ in 0..n {
                let at = sl.at(r);
                let (ip, host) = user_origin(w, i, at / MICRO, r);
                out.session(&Session {
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
                });
            }
        }
    }
    for &i in &pops.stale {
        stale_device(w, i, sl, out, r);
    }
    for (hi, (acct, kind)) in pops.heavy.iter().enumerate() {
        for s in heavy_sessions(w, *acct, *kind, hi as u64, sl, r) {
            messages += out.session(&s).len() as u64;
        }
    }
    messages
}

/// A device with an old password polling from the owner's own address (TRAFFIC-FACTS §2:
/// every 10–60 min), for a stretch of the run that starts and ends per account.
fn stale_device(w: &World, i: u64, sl: Slice, out: &mut Out, r: &mut Rng) {
    let p = &w.params;
    let h = hash(&[w.cfg.seed, 0x57a1e, i, 1]);
    let t0 = w.cfg.start.epoch_secs();
    let run = i64::from(w.cfg.days) * 86_400;
    let from = t0 + (frac(h) * run as f64 * 0.7) as i64;
    let until = from + 6 * 3600 + (frac(hash(&[h, 2])) * run as f64) as i64;
    if sl.end <= from || sl.t >= until {
        return;
    }
    let gap = 60.0 * Params::pick(&mut Rng::new(hash(&[h, 3])), p.stale_minutes);
    let n = r.poisson((sl.end - sl.t) as f64 / gap.max(60.0));
    let user = w.account(i);
    for _ in 0..n {
        let at = sl.at(r);
        let ip = w.home_ip(i, at / MICRO);
        let kind = if w.cfg.format == LogFormat::Exim || r.chance(0.2) {
            Kind::AuthFail {
                user: user.clone(),
                attempts: r.range(1, 3) as u32,
            }
        } else {
            Kind::Imap {
                user: user.clone(),
                ok: false,
                pop: hash(&[h, 4]) & 1 == 0,
                attempts: 1,
            }
        };
        out.session(&Session {
            t: at,
            ip,
            host: Some(w.isp_rdns(ip)),
            helo: format!("{}-phone", user.split('.').next().unwrap_or("user")),
            kind,
        });
    }
}

/// A shared web-hosting server: address, name and its sites.
pub struct Hosting {
    pub ip: Ipv4Addr,
    pub host: String,
    pub sites: u64,
    seed: u64,
    hi: u64,
}

impl Hosting {
    /// The domain of site `s`.
    pub fn site(&self, s: u64) -> String {
        let h = hash(&[self.seed, 0x517e, self.hi, s]);
        format!(
            "{}-{}{}.{}",
            WORDS[(h % WORDS.len() as u64) as usize],
            WORDS[((h >> 8) % WORDS.len() as u64) as usize],
            s,
            ["de", "com", "net", "eu", "shop"][((h >> 16) % 5) as usize]
        )
    }
}

/// Heavy population `hi` as a web-hosting server.
pub fn hosting(w: &World, p: &Params, hi: u64) -> Hosting {
    let ip = w.isp_ip(hash(&[w.cfg.seed, 0x4e6, hi]));
    let mut r = Rng::keyed(&[w.cfg.seed, 0x4e7, hi]);
    Hosting {
        ip,
        host: format!("web{hi}.{}", isp_domain(w).replace("example-", "hosting-")),
        sites: Params::pick_log(&mut r, p.hosting_sites).round().max(1.0) as u64,
        seed: w.cfg.seed,
        hi,
    }
}

/// The address of a customer server on a fixed ISP line (population `hi`, kind tag `tag`).
fn line_ip(w: &World, tag: u64, hi: u64) -> Ipv4Addr {
    w.isp_ip(hash(&[w.cfg.seed, tag, hi]))
}

/// External mail servers whose mail reaches forwarding aliases (a fixed pool).
const FWD_SOURCES: u64 = 200;

fn fwd_source(w: &World, k: u64) -> (Ipv4Addr, String) {
    let c = TRAVEL_COUNTRIES[(k % TRAVEL_COUNTRIES.len() as u64) as usize];
    let ip = w.ip_in(c, hash(&[w.cfg.seed, 0xf5, k]));
    (
        ip,
        format!(
            "mail{k}.{}",
            WORDS[(k % WORDS.len() as u64) as usize].to_owned() + "-mail.net"
        ),
    )
}

/// Subscriber `k` of list or newsletter `hi` (`salt` tells the two populations apart): a
/// provider mailbox, unknown there with probability `fail`, the same on every post.
fn subscriber(w: &World, hi: u64, k: u64, salt: u64, fail: f64) -> Rcpt {
    let kh = hash(&[hi, k, salt]);
    let mut rr = Rng::new(kh);
    let (addr, mx) = w.provider_rcpt(&mut rr);
    let fate = if frac(kh) < fail {
        Fate::Unknown(mx)
    } else {
        Fate::Sent(mx)
    };
    Rcpt::new(addr, fate)
}

fn heavy_sessions(
    w: &World,
    acct: u64,
    kind: Heavy,
    hi: u64,
    sl: Slice,
    r: &mut Rng,
) -> Vec<Session> {
    let mut out = Vec::new();
    let cfg = w.cfg;
    let p = &w.params;
    let span = sl.hours();
    let (local_h, wd) = (sl.local_h, sl.wd);
    let server_ip = w
        .geo
        .ip(&cfg.home_country, hash(&[cfg.seed, 0x5e7, hi]))
        .unwrap_or(Ipv4Addr::new(192, 0, 2, 9));
    let dom = w.hosted[(hi % w.hosted.len() as u64) as usize].clone();
    let server_host = Some(format!("srv{hi}.{dom}"));
    // Per-entity draws inside this seed's ranges.
    let mut er = Rng::keyed(&[cfg.seed, 0xe47, hi]);
    match kind {
        Heavy::List => {
            let posts = p.list_posts * (0.5 + er.f64());
            let subs = Params::pick_log(&mut er, p.list_subs).round() as u64;
            let fail = Params::pick(&mut er, p.list_fail);
            let n = r.poisson(posts / 24.0 * span * DIURNAL[local_h]);
            let list = format!("list{hi}@{dom}");
            for _ in 0..n {
                let rcpts: Vec<Rcpt> = (0..subs).map(|k| subscriber(w, hi, k, 3, fail)).collect();
                let m = Msg {
                    from: list.clone(),
                    size: msg_size(r),
                    rcpts,
                    local_sender: true,
                    spam: None,
                };
                out.push(Session {
                    t: sl.at(r),
                    ip: server_ip,
                    host: server_host.clone(),
                    helo: format!("srv{hi}.{dom}"),
                    kind: smtp(Some(list.clone()), true, vec![m]),
                });
            }
        }
        Heavy::Newsletter => {
            let subs = Params::pick_log(&mut er, p.news_subs).round() as u64;
            let fail = Params::pick_log(&mut er, p.news_fail);
            if wd as u64 == hi % 5 && local_h == 9 {
                let acct_name = format!("newsletter@{dom}");
                let batches = subs.div_ceil(50);
                let per = (batches as f64 / span.max(1e-9)).max(0.0);
                let n = r.poisson(per * span / 6.0);
                for _ in 0..n {
                    let b = r.below(batches);
                    let rcpts: Vec<Rcpt> = (b * 50..((b + 1) * 50).min(subs))
                        .map(|k| subscriber(w, hi, k, 6, fail))
                        .collect();
                    let m = Msg {
                        from: acct_name.clone(),
                        size: 40_000 + r.below(30_000) as u32,
                        rcpts,
                        local_sender: true,
                        spam: None,
                    };
                    out.push(Session {
                        t: sl.at(r),
                        ip: server_ip,
                        host: server_host.clone(),
                        helo: format!("srv{hi}.{dom}"),
                        kind: smtp(Some(acct_name.clone()), true, vec![m]),
                    });
                }
            }
        }
        Heavy::MultiDomain => {
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
                    spam: None,
                };
                out.push(Session {
                    t: sl.at(r),
                    ip,
                    host: Some(format!("mail.{}", doms[0])),
                    helo: format!("mail.{}", doms[0]),
                    kind: smtp(Some(user.clone()), true, vec![m]),
                });
            }
        }
        Heavy::Forwarder => {
            let n = r.poisson(60.0 / 24.0 * span);
            let ip = line_ip(w, 0xf0, hi);
            let dest = format!(
                "{}.{}@gmail.com",
                WORDS[(hi % WORDS.len() as u64) as usize],
                hi
            );
            let gmail = crate::world::provider_mx(crate::world::PROVIDERS[0]);
            let reject = p.fwd_reject;
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
                let fate = if r.chance(reject) {
                    Fate::Spam(gmail.clone())
                } else {
                    Fate::Sent(gmail.clone())
                };
                let m = Msg {
                    from,
                    size: msg_size(r),
                    rcpts: vec![Rcpt::new(dest.clone(), fate)],
                    local_sender: false,
                    spam: None,
                };
                out.push(Session {
                    t: sl.at(r),
                    ip,
                    host: Some(w.isp_rdns(ip)),
                    helo: format!("fw{hi}.{dom}"),
                    kind: smtp(None, false, vec![m]),
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
                    Rcpt::new(format!("info@{d}"), Fate::Unknown(mx))
                } else {
                    let (a, mx) = w.provider_rcpt(r);
                    Rcpt::new(a, Fate::Sent(mx))
                };
                let m = Msg {
                    from: user.clone(),
                    size: 1500 + r.below(1500) as u32,
                    rcpts: vec![rc],
                    local_sender: true,
                    spam: None,
                };
                let ip = w
                    .geo
                    .ip(&cfg.home_country, hash(&[cfg.seed, 0xa0, hi]))
                    .unwrap_or(server_ip);
                out.push(Session {
                    t: sl.at(r),
                    ip,
                    host: Some(format!("webmail.{}", isp_domain(w))),
                    helo: "webmail".to_string(),
                    kind: smtp(Some(user.clone()), true, vec![m]),
                });
            }
        }
        Heavy::CustomerMta => {
            let per_day = Params::pick_log(&mut er, p.mta_msgs);
            let fail = Params::pick(&mut er, p.biz_fail);
            let ip = line_ip(w, 0x3a7, hi);
            let host = format!("mail.{dom}");
            let n = r.poisson(per_day / 24.0 * span * DIURNAL[local_h] * WEEKLY[wd]);
            // The server's queue flushes several messages per connection.
            let mut left = n;
            while left > 0 {
                let k = left.min(r.range(1, 5));
                left -= k;
                let msgs = (0..k)
                    .map(|_| Msg {
                        from: format!(
                            "{}.{}@{dom}",
                            FIRST[r.below(FIRST.len() as u64) as usize],
                            LAST[r.below(LAST.len() as u64) as usize]
                        ),
                        size: msg_size(r),
                        rcpts: (0..n_rcpts(r)).map(|_| biz_rcpt(w, r, fail)).collect(),
                        local_sender: false,
                        spam: None,
                    })
                    .collect();
                out.push(Session {
                    t: sl.at(r),
                    ip,
                    host: Some(host.clone()),
                    helo: host.clone(),
                    kind: smtp(None, false, msgs),
                });
            }
        }
        Heavy::BusinessNat => {
            let pcs = Params::pick(&mut er, p.nat_pcs).round().max(1.0) as u64;
            let per_pc = Params::pick_log(&mut er, p.nat_msgs_per_pc);
            let fail = Params::pick(&mut er, p.biz_fail);
            let ip = line_ip(w, 0x4a7, hi);
            let company = format!(
                "{}-{}{hi}",
                WORDS[(hi % WORDS.len() as u64) as usize],
                "gmbh"
            );
            let n = r.poisson(pcs as f64 * per_pc / 24.0 * span * DIURNAL[local_h] * WEEKLY[wd]);
            for _ in 0..n {
                let pc = r.below(pcs);
                let helo = match hash(&[hi, pc]) % 3 {
                    0 => format!("DESKTOP-{:X}.{company}.local", hash(&[hi, pc, 1]) & 0xFFFFF),
                    1 => format!("pc{pc:02}.{company}.lan"),
                    _ => format!("[192.168.{}.{}]", hi % 250, 10 + pc),
                };
                let m = Msg {
                    from: format!(
                        "{}.{}@{dom}",
                        FIRST[(hash(&[hi, pc, 2]) % FIRST.len() as u64) as usize],
                        LAST[(hash(&[hi, pc, 3]) % LAST.len() as u64) as usize]
                    ),
                    size: msg_size(r),
                    rcpts: (0..n_rcpts(r)).map(|_| biz_rcpt(w, r, fail)).collect(),
                    local_sender: false,
                    spam: None,
                };
                out.push(Session {
                    t: sl.at(r),
                    ip,
                    host: Some(w.isp_rdns(ip)),
                    helo,
                    kind: smtp(None, false, vec![m]),
                });
            }
        }
        Heavy::WebHosting => {
            let hs = hosting(w, p, hi);
            let per_site = Params::pick_log(&mut er, p.site_msgs);
            let fail = Params::pick(&mut er, p.biz_fail);
            let n = r.poisson(hs.sites as f64 * per_site / 24.0 * span * DIURNAL[local_h]);
            for _ in 0..n {
                // Busy sites send more: a skewed pick.
                let x = r.f64();
                let site = hs.site(((x * x * x) * hs.sites as f64) as u64);
                let from = match r.below(5) {
                    0 => format!("wordpress@{site}"),
                    1 => format!("noreply@{site}"),
                    2 => format!("www-data@{}", hs.host),
                    3 => format!("info@{site}"),
                    _ => format!("shop@{site}"),
                };
                let m = Msg {
                    from,
                    size: r.range(2_000, 40_000) as u32,
                    rcpts: vec![biz_rcpt(w, r, fail)],
                    local_sender: false,
                    spam: None,
                };
                out.push(Session {
                    t: sl.at(r),
                    ip: hs.ip,
                    host: Some(hs.host.clone()),
                    helo: hs.host.clone(),
                    kind: smtp(None, false, vec![m]),
                });
            }
        }
        Heavy::AliasForward => {
            let per_day = Params::pick_log(&mut er, p.fwd_msgs);
            let alias = w.account(acct);
            let dest = {
                let mut rr = Rng::keyed(&[cfg.seed, 0xa1, hi]);
                w.provider_rcpt(&mut rr)
            };
            let n = r.poisson(per_day / 24.0 * span);
            for _ in 0..n {
                let k = r.below(FWD_SOURCES);
                let (ip, host) = fwd_source(w, k);
                let fate = if r.chance(p.fwd_reject) {
                    Fate::Spam(dest.1.clone())
                } else {
                    Fate::Sent(dest.1.clone())
                };
                let from = if r.chance(0.5) {
                    w.provider_rcpt(r).0
                } else {
                    format!(
                        "{}@{}",
                        WORDS[r.below(WORDS.len() as u64) as usize],
                        w.invented_domain(r)
                    )
                };
                let m = Msg {
                    from,
                    size: msg_size(r),
                    rcpts: vec![Rcpt {
                        addr: dest.0.clone(),
                        fate,
                        orig_to: Some(alias.clone()),
                    }],
                    local_sender: false,
                    spam: None,
                };
                out.push(Session {
                    t: sl.at(r),
                    ip,
                    host: Some(host.clone()),
                    helo: host,
                    kind: Kind::Smtp {
                        auth: None,
                        submission: false,
                        helo_rejected: false,
                        inbound: true,
                        msgs: vec![m],
                    },
                });
            }
        }
    }
    out
}

/// Every benign entity that is not an ordinary user, with its profile.
pub fn population(w: &World, pops: &Populations) -> Vec<PopulationEntry> {
    let cfg = w.cfg;
    let mut v = Vec::new();
    let mut add = |e: Entity, p: &str| {
        v.push(PopulationEntry {
            entity: e,
            profile: p.to_string(),
        })
    };
    for (hi, (acct, kind)) in pops.heavy.iter().enumerate() {
        let hi = hi as u64;
        let prof = kind.names().0;
        let dom = &w.hosted[(hi % w.hosted.len() as u64) as usize];
        let server_ip = w.geo.ip(&cfg.home_country, hash(&[cfg.seed, 0x5e7, hi]));
        match kind {
            Heavy::List => {
                add(Entity::account(&format!("list{hi}@{dom}")), prof);
                if let Some(ip) = server_ip {
                    add(Entity::client(&ip.to_string()), prof);
                }
            }
            Heavy::Newsletter => {
                add(Entity::account(&format!("newsletter@{dom}")), prof);
                if let Some(ip) = server_ip {
                    add(Entity::client(&ip.to_string()), prof);
                }
            }
            Heavy::MultiDomain => {
                add(Entity::account(&w.account(*acct)), prof);
                add(
                    Entity::client(&w.company_ip(hash(&[hi, 0xb5])).to_string()),
                    prof,
                );
            }
            Heavy::Forwarder => add(Entity::client(&line_ip(w, 0xf0, hi).to_string()), prof),
            Heavy::Autoresponder => add(Entity::account(&w.account(*acct)), prof),
            Heavy::CustomerMta => add(Entity::client(&line_ip(w, 0x3a7, hi).to_string()), prof),
            Heavy::BusinessNat => add(Entity::client(&line_ip(w, 0x4a7, hi).to_string()), prof),
            Heavy::WebHosting => add(
                Entity::client(&hosting(w, &w.params, hi).ip.to_string()),
                prof,
            ),
            Heavy::AliasForward => add(Entity::account(&w.account(*acct)), prof),
        }
    }
    for k in 0..FWD_SOURCES {
        add(Entity::client(&fwd_source(w, k).0.to_string()), "forwarder");
    }
    add(Entity::client(&pops.webmail_ip.to_string()), "webmail");
    for c in 0..w.companies {
        add(Entity::client(&w.company_ip(c).to_string()), "business-nat");
    }
    for k in 0..w.cgnat_ips {
        add(Entity::client(&w.cgnat_ip(k).to_string()), "cgnat");
    }
    for &i in &pops.stale {
        add(Entity::account(&w.account(i)), "stale-password");
    }
    let t0 = cfg.start.epoch_secs();
    for i in 0..pops.ordinary {
        if vpn_user(w, i) {
            add(Entity::account(&w.account(i)), "vpn-user");
        }
        if (0..cfg.days as i64).any(|d| trip(w, i, t0 + d * 86_400).is_some()) {
            add(Entity::account(&w.account(i)), "traveller");
        }
    }
    v.sort();
    v.dedup();
    v
}
