//! `auth-bruteforce` on synthetic event streams shaped like the internet's (issue 9 classes 1
//! and 2, issue 10 part 4). Geo data from overrides: `10.C.A.H` is in country number C and in
//! AS 64500+C (one AS per /16, so that one AS holds many /24 networks).

use std::sync::Arc;

use detect::{Alert, Config, Detector, Engine, EntityKind, GeoRef};
use maillog::{DeliveryStatus, Event, Peer, Service, Ts};

const T0: i64 = 1_763_600_000;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;
const CCS: [&str; 40] = [
    "DE", "US", "BR", "VN", "IN", "CN", "RU", "ID", "TR", "MX", "AR", "CO", "PE", "CL", "EG", "NG",
    "ZA", "KE", "PK", "BD", "TH", "PH", "MY", "UA", "PL", "RO", "IT", "ES", "FR", "GB", "NL", "SE",
    "NO", "FI", "JP", "KR", "TW", "IR", "IQ", "SA",
];

fn geo() -> GeoRef {
    let mut csv = String::from("cidr,country,asn,label\n");
    for (c, cc) in CCS.iter().enumerate() {
        csv.push_str(&format!("10.{c}.0.0/16,{cc},{},\n", 64500 + c));
    }
    let o = geo::Overrides::parse_csv(&csv, "test").unwrap();
    GeoRef::Owned(Arc::new(geo::GeoDb::empty().with_overrides(o)))
}

/// Address `h` of network `a` in country (and AS) `c`.
fn ip(c: usize, a: usize, h: usize) -> String {
    format!("10.{c}.{a}.{}", 1 + h % 250)
}

fn ts(t: f64) -> Ts {
    Ts(((T0 as f64 + t) * 1e6) as i64)
}

/// A tiny deterministic generator (xorshift) for spreading events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct F {
    e: Engine,
    n: u64,
    alerts: Vec<Alert>,
}

impl F {
    fn new() -> F {
        Self::with(Config::default())
    }
    fn with(cfg: Config) -> F {
        F {
            e: Engine::with_geo(cfg, geo()),
            n: 0,
            alerts: Vec::new(),
        }
    }
    fn fail(&mut self, t: f64, user: Option<&str>, ip: &str) {
        let peer = Peer {
            host: None,
            ip: Some(ip),
            port: None,
        };
        self.e.feed(
            ts(t),
            "mx",
            "dovecot",
            None,
            &Event::AuthFailure {
                client: peer,
                user,
                mechanism: Some("PLAIN"),
                service: Service::Imap,
                reason: "auth failed",
            },
        );
        self.alerts.extend(self.e.take_alerts());
    }
    fn login(&mut self, t: f64, user: &str, ip: &str) {
        let peer = Peer {
            host: None,
            ip: Some(ip),
            port: None,
        };
        self.e.feed(
            ts(t),
            "mx",
            "dovecot",
            None,
            &Event::AuthSuccess {
                client: peer,
                user,
                mechanism: Some("PLAIN"),
                service: Service::Imap,
            },
        );
        self.alerts.extend(self.e.take_alerts());
    }
    /// One authenticated message with two recipients, `failed` of them bouncing.
    fn send(&mut self, t: f64, user: &str, ip: &str, failed: usize) {
        self.n += 1;
        let qid = format!("Q{:09X}", self.n);
        let peer = Peer {
            host: Some("unknown"),
            ip: Some(ip),
            port: None,
        };
        let e = &mut self.e;
        e.feed(
            ts(t),
            "mx",
            "postfix/submission/smtpd",
            Some(7),
            &Event::Client {
                qid: &qid,
                client: peer,
                sasl_method: Some("PLAIN"),
                sasl_username: Some(user),
                uid: None,
                from: None,
                orig_qid: None,
            },
        );
        e.feed(
            ts(t),
            "mx",
            "postfix/qmgr",
            Some(9),
            &Event::Queued {
                qid: &qid,
                from: user,
                size: Some(3000),
                nrcpt: Some(2),
                client: None,
                helo: None,
                auth_user: None,
                local_user: None,
                proto: None,
                message_id: None,
                parent: None,
            },
        );
        for k in 0..2 {
            let to = format!("x{}-{k}@d{}.example", self.n, self.n % 97);
            let status = if k < failed {
                DeliveryStatus::Bounced
            } else {
                DeliveryStatus::Sent
            };
            e.feed(
                ts(t),
                "mx",
                "postfix/smtp",
                Some(11),
                &Event::Delivery {
                    qid: &qid,
                    to: &to,
                    orig_to: None,
                    relay: Some("mx.example[192.0.2.1]:25"),
                    transport: Some("smtp"),
                    delay: None,
                    delays: None,
                    dsn: None,
                    status,
                    reply: Some("550 no such user"),
                },
            );
        }
        e.feed(
            ts(t),
            "mx",
            "postfix/qmgr",
            Some(9),
            &Event::Removed { qid: &qid },
        );
        self.alerts.extend(self.e.take_alerts());
    }
    /// `user` checks mail from `ip` every 30 minutes for `days` days from `t`.
    fn routine(&mut self, t: f64, days: f64, user: &str, ip: &str) {
        let mut s = t;
        while s < t + days * DAY {
            self.login(s, user, ip);
            s += 1800.0;
        }
    }
    fn brute(&self) -> Vec<&Alert> {
        self.alerts
            .iter()
            .filter(|a| a.detector == Detector::AuthBruteforce)
            .collect()
    }
    fn on(&self, kind: EntityKind, id: &str) -> Vec<&Alert> {
        self.brute()
            .into_iter()
            .filter(|a| a.entity.kind == kind && a.entity.id == id)
            .collect()
    }
}

/// Issue 9, class 1: the owner logs in from their usual address after somebody else's failed
/// guesses from elsewhere. The old rule said "password probably guessed" (93% of all false
/// entities on a real ISP).
#[test]
fn owner_logging_in_from_home_after_guessing_elsewhere_is_quiet() {
    let mut f = F::new();
    let home = ip(0, 1, 5);
    f.routine(0.0, 2.0, "anna@isp.example", &home);
    // Day 2: 24 guesses from 8 addresses in three countries within the hour.
    for i in 0..24usize {
        f.fail(
            2.0 * DAY + i as f64 * 120.0,
            Some("anna@isp.example"),
            &ip(5 + (i % 8) / 3, 7, i % 8),
        );
    }
    // The owner checks mail from home, and from a new address of the same home network.
    f.login(2.0 * DAY + 3000.0, "anna@isp.example", &home);
    f.login(2.0 * DAY + 3100.0, "anna@isp.example", &ip(0, 1, 77));
    assert!(
        f.on(EntityKind::Account, "anna@isp.example").is_empty(),
        "{:#?}",
        f.brute()
    );
}

/// A success from where the failures came from — the same address, the same /24, the same AS
/// (new to the account) — is a guessed password.
#[test]
fn success_from_the_guessing_address_network_or_as_is_reported() {
    let cases = [
        ("same address", ip(6, 3, 1), "guessing-address"),
        ("same network", ip(6, 3, 200), "guessing-network"),
        ("same AS", ip(6, 40, 9), "guessing-as"),
    ];
    for (what, from, origin) in cases {
        let mut f = F::new();
        f.routine(0.0, 2.0, "ben@isp.example", &ip(0, 2, 2));
        for i in 0..8usize {
            f.fail(
                2.0 * DAY + i as f64 * 300.0,
                Some("ben@isp.example"),
                &ip(6, 3, 1 + i % 2),
            );
        }
        f.login(2.0 * DAY + 3000.0, "ben@isp.example", &from);
        let a = f.on(EntityKind::Account, "ben@isp.example");
        assert_eq!(a.len(), 1, "{what}: {:#?}", f.brute());
        assert_eq!(a[0].evidence["origin"], origin, "{what}");
        assert_eq!(a[0].evidence["account_failures"], 8, "{what}");
        assert!(a[0].summary.contains("password probably guessed"));
        // The owner from home afterwards: no second alert.
        f.login(2.0 * DAY + 3600.0, "ben@isp.example", &ip(0, 2, 2));
        assert_eq!(f.on(EntityKind::Account, "ben@isp.example").len(), 1);
    }
}

/// A name guessed from several addresses in several autonomous systems that logs in for the
/// first time from one of them: no history needed. Failures from one address (or one AS: a
/// renumbered home line, a phone's carrier) against one name and then a success are a stale
/// password on the owner's own device as likely as a guesser: quiet.
#[test]
fn first_login_from_the_guessing_addresses() {
    let mut f = F::new();
    for i in 0..12usize {
        f.fail(
            i as f64 * 400.0,
            Some("carl@isp.example"),
            &ip(8 + i % 3, 1 + i % 5, i),
        );
    }
    f.login(5000.0, "carl@isp.example", &ip(8, 2, 6));
    let a = f.on(EntityKind::Account, "carl@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["origin"], "guessing-address");
    assert_eq!(a[0].evidence["history"], false);

    let mut g = F::new();
    for i in 0..12usize {
        g.fail(i as f64 * 300.0, Some("dora@isp.example"), &ip(0, 4, 4));
    }
    g.login(3700.0, "dora@isp.example", &ip(0, 4, 4));
    // ...and her stale phone keeps failing from her own address: nothing either.
    for i in 0..30usize {
        g.fail(
            4000.0 + i as f64 * 100.0,
            Some("dora@isp.example"),
            &ip(0, 4, 4),
        );
    }
    assert!(g.brute().is_empty(), "{:#?}", g.brute());
}

/// A success from a place new to an account with history, while it is being guessed from
/// elsewhere, is reported; the same trip without guessing is an ordinary traveller.
#[test]
fn success_from_a_new_place_while_guessed_is_reported() {
    let mut f = F::new();
    f.routine(0.0, 2.0, "eva@isp.example", &ip(0, 5, 5));
    for i in 0..6usize {
        f.fail(
            2.0 * DAY + i as f64 * 500.0,
            Some("eva@isp.example"),
            &ip(9, 9, i),
        );
    }
    f.login(2.0 * DAY + 3200.0, "eva@isp.example", &ip(30, 1, 1));
    let a = f.on(EntityKind::Account, "eva@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["origin"], "new-place");
    assert_eq!(a[0].evidence["history"], true);

    let mut t = F::new();
    t.routine(0.0, 2.0, "eva@isp.example", &ip(0, 5, 5));
    t.login(2.0 * DAY + 3200.0, "eva@isp.example", &ip(30, 1, 1));
    assert!(t.brute().is_empty(), "{:#?}", t.brute());
}

/// Issue 9, class 2: failures spread over ten hours are not "N IPs within 1 h", and the counts
/// of an alert agree (never more addresses than failures).
#[test]
fn failures_spread_over_ten_hours_are_not_one_window() {
    let mut f = F::new();
    f.routine(0.0, 1.0, "finn@isp.example", &ip(0, 6, 6));
    for i in 0..15usize {
        f.fail(
            DAY + i as f64 * 2400.0,
            Some("finn@isp.example"),
            &ip(10 + i, 1, i),
        );
    }
    assert!(f.brute().is_empty(), "{:#?}", f.brute());
    // The same 15 addresses within 20 minutes are a targeted attack.
    for i in 0..15usize {
        f.fail(
            2.0 * DAY + i as f64 * 80.0,
            Some("finn@isp.example"),
            &ip(10 + i, 1, i),
        );
    }
    let a = f.on(EntityKind::Account, "finn@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    let ev = &a[0].evidence;
    assert_eq!(ev["source_ips"], 11, "alerted when the 11th address failed");
    assert_eq!(ev["failures"], 11);
    assert!(
        a[0].summary.contains("from 11 IPs within 1 h"),
        "{}",
        a[0].summary
    );
}

/// Background guessing: 5,000 addresses spraying generic names for a day. Only attackers are
/// reported, in a bounded number; no account alert for a name that does not exist, and none for
/// an existing generic account guessed no more than the other names.
#[test]
fn background_guessing_of_generic_names_reports_attackers_only() {
    let names = [
        "admin",
        "info",
        "test",
        "user",
        "support",
        "sales",
        "office",
        "webmaster",
        "postmaster",
        "contact",
        "mail",
        "root",
    ];
    let mut f = F::new();
    f.routine(0.0, 2.0, "info@isp.example", &ip(0, 9, 9));
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ev: Vec<(u64, usize, usize)> = Vec::new();
    for a in 0..5_000usize {
        for _ in 0..6 {
            ev.push((r.below(86_400), a, r.below(names.len() as u64) as usize));
        }
    }
    ev.sort_unstable();
    for (t, a, n) in ev {
        let user = if n % 3 == 0 {
            names[n].to_string()
        } else {
            format!("{}@isp.example", names[n])
        };
        let addr = format!("10.{}.{}.{}", 10 + a % 30, (a / 30) % 200, 1 + a % 7);
        f.fail(DAY + t as f64, Some(&user), &addr);
    }
    f.routine(2.0 * DAY, 0.5, "info@isp.example", &ip(0, 9, 9));
    let b = f.brute();
    assert!(
        b.iter().all(|a| matches!(
            a.entity.kind,
            EntityKind::Client | EntityKind::Network | EntityKind::Campaign
        )),
        "{b:#?}"
    );
    let waves = b
        .iter()
        .filter(|a| a.entity.kind == EntityKind::Campaign)
        .count();
    assert_eq!(waves, 1, "one wave, reported once: {b:#?}");
    assert!(b.len() <= 5, "{} alerts: {b:#?}", b.len());
}

/// An attack that goes on for three days is one alert, not one a day: one address at 30
/// failures an hour; one /24 whose 20 addresses guess 2–3 times an hour each (the shape of
/// the corpus's exim/artik292 log); an existing account guessed from 15 addresses an hour.
#[test]
fn an_ongoing_attack_over_three_days_is_one_alert() {
    let mut f = F::new();
    f.routine(0.0, 0.1, "gus@isp.example", &ip(0, 3, 3));
    for h in 0..72usize {
        let t0 = HOUR + h as f64 * HOUR;
        for k in 0..30usize {
            f.fail(
                t0 + k as f64 * 100.0,
                Some(&format!("u{h}-{k}")),
                "10.20.1.1",
            );
        }
        for k in 0..50usize {
            f.fail(
                t0 + k as f64 * 70.0,
                Some(&format!("n{h}-{k}")),
                &format!("10.21.40.{}", 100 + k % 20),
            );
        }
        for k in 0..30usize {
            f.fail(
                t0 + k as f64 * 100.0,
                Some("gus@isp.example"),
                &ip(22 + k % 15, 1, h),
            );
        }
    }
    assert_eq!(
        f.on(EntityKind::Client, "10.20.1.1").len(),
        1,
        "{:#?}",
        f.brute()
    );
    assert_eq!(f.on(EntityKind::Network, "10.21.40.0/24").len(), 1);
    assert_eq!(f.on(EntityKind::Account, "gus@isp.example").len(), 1);
    assert!(
        f.brute()
            .iter()
            .all(|a| !a.entity.id.starts_with("10.21.40.") || a.entity.kind == EntityKind::Network),
        "the network's addresses are covered by its alert"
    );
}

/// The same attacker after a week of quiet is a new attack; a tenfold rise within one attack is
/// reported again, once.
#[test]
fn a_restarted_or_escalated_attack_is_reported_again() {
    let mut f = F::new();
    for k in 0..30usize {
        f.fail(k as f64 * 100.0, None, "10.30.1.1");
    }
    for k in 0..30usize {
        f.fail(8.0 * DAY + k as f64 * 100.0, None, "10.30.1.1");
    }
    let a = f.on(EntityKind::Client, "10.30.1.1");
    assert_eq!(a.len(), 2, "{a:#?}");
    // Escalation: from 21 to 210 failures within the window.
    let mut g = F::new();
    for k in 0..400usize {
        g.fail(k as f64 * 5.0, None, "10.31.1.1");
    }
    let a = g.on(EntityKind::Client, "10.31.1.1");
    assert_eq!(a.len(), 2, "{a:#?}");
    assert_eq!(a[1].evidence["escalated_from"], 21);
    assert_eq!(a[1].evidence["failures"], 210);
}

/// The corpus's 141.98.10.x pattern: one address guesses ~30 names in half an hour, again a day
/// later, then a second address of the same /24 two days later. One alert for the address,
/// then one for the network when a second of its addresses attacks.
#[test]
fn a_second_address_of_an_attacking_network_raises_the_network() {
    let mut f = F::new();
    for (day, host) in [(0.0, 159), (1.2, 159), (2.0, 151)] {
        for k in 0..31usize {
            f.fail(
                day * DAY + k as f64 * 50.0,
                Some(&format!("d{day}-{k}")),
                &format!("10.32.10.{host}"),
            );
        }
    }
    let b = f.brute();
    assert_eq!(b.len(), 2, "{b:#?}");
    assert_eq!(b[0].entity.kind, EntityKind::Client);
    assert_eq!(b[0].entity.id, "10.32.10.159");
    assert_eq!(b[1].entity.kind, EntityKind::Network);
    assert_eq!(b[1].entity.id, "10.32.10.0/24");
}

/// Issue 10, part 4: failures for invented names create no per-account state (neither here nor
/// in auth-hijack), and cannot evict the state of real accounts.
#[test]
fn invented_names_create_no_account_state() {
    let mut cfg = Config::default();
    cfg.bruteforce.max_attackers = 1_000;
    cfg.limits.max_entities = 1_000;
    let mut f = F::with(cfg);
    for u in 0..100usize {
        f.routine(0.0, 1.0, &format!("real{u}@isp.example"), &ip(0, u % 50, u));
    }
    // Real guessing against one real account from two addresses...
    for i in 0..6usize {
        f.fail(
            DAY + i as f64 * 60.0,
            Some("real7@isp.example"),
            &ip(12, 1, i % 2),
        );
    }
    // ...hidden under 100,000 invented names from 2,000 addresses.
    for i in 0..100_000usize {
        f.fail(
            DAY + 400.0 + i as f64 * 0.03,
            Some(&format!("x{i}@isp.example")),
            &ip(13 + i % 20, (i / 20) % 100, i),
        );
    }
    let (accounts, _) = f.e.hijack_memory();
    assert!(accounts <= 100, "auth-hijack state for {accounts} accounts");
    f.login(DAY + 3500.0, "real7@isp.example", &ip(12, 1, 0));
    let a = f.on(EntityKind::Account, "real7@isp.example");
    assert_eq!(a.len(), 1, "the real account's guessing survived the flood");
    assert!(f
        .brute()
        .iter()
        .all(|a| a.entity.kind != EntityKind::Account || a.entity.id == "real7@isp.example"));
}

/// A login while the account was being guessed, from nowhere that links it to the guessing,
/// followed by changed sending (auth-hijack): the password was probably guessed.
#[test]
fn login_during_guessing_then_changed_sending_is_reported() {
    let mut f = F::new();
    for u in 0..200usize {
        f.send(
            u as f64 * 3.0,
            &format!("user{u}@isp.example"),
            &ip(0, u % 20, u),
            0,
        );
    }
    for i in 0..8usize {
        f.fail(
            1000.0 + i as f64 * 60.0,
            Some("hana@isp.example"),
            &ip(35, 1, i),
        );
    }
    f.login(1600.0, "hana@isp.example", &ip(15, 1, 1));
    assert!(f.on(EntityKind::Account, "hana@isp.example").is_empty());
    for b in 0..400usize {
        f.send(
            1700.0 + b as f64 * 6.0,
            "hana@isp.example",
            &ip(1 + b % 30, b % 60, b),
            2,
        );
    }
    assert!(f
        .alerts
        .iter()
        .any(|a| a.detector == Detector::AuthHijack && a.entity.id == "hana@isp.example"));
    let a = f.on(EntityKind::Account, "hana@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["origin"], "changed-sending");
}

/// A few typos of a password from a new place are not guessing.
#[test]
fn a_few_typos_are_not_guessing() {
    let mut f = F::new();
    f.routine(0.0, 2.0, "ivo@isp.example", &ip(0, 8, 8));
    for i in 0..3usize {
        f.fail(
            2.0 * DAY + i as f64 * 5.0,
            Some("ivo@isp.example"),
            &ip(31, 1, 1),
        );
    }
    f.login(2.0 * DAY + 20.0, "ivo@isp.example", &ip(31, 1, 1));
    assert!(f.brute().is_empty(), "{:#?}", f.brute());
}

/// Issue 9 class 1: the owner's home line was renumbered into another /24 of the same ISP (the
/// same AS); a mis-set client retries a mistyped password several times, then the owner gets it
/// right from the same new address. That is the owner at home, not a guessed password.
#[test]
fn owner_typos_then_success_from_a_renumbered_home_line_are_quiet() {
    let mut f = F::new();
    f.routine(0.0, 2.0, "jana@isp.example", &ip(0, 10, 10));
    let new_home = ip(0, 11, 20);
    for i in 0..6usize {
        f.fail(
            2.0 * DAY + i as f64 * 10.0,
            Some("jana@isp.example"),
            &new_home,
        );
    }
    f.login(2.0 * DAY + 120.0, "jana@isp.example", &new_home);
    assert!(f.brute().is_empty(), "{:#?}", f.brute());
}

/// Issue 9 class 1: a phone with a stale password polls every 15 minutes from the owner's home
/// line, which is renumbered during the day inside the ISP; the owner then logs in from the
/// same home address — with history, and on the first day (no history) too. Quiet.
#[test]
fn stale_device_and_owner_success_from_the_same_home_address_are_quiet() {
    // With history: known home, the line renumbered into a new /24 of the same AS.
    let mut f = F::new();
    f.routine(0.0, 2.0, "kai@isp.example", &ip(0, 12, 12));
    let new_home = ip(0, 13, 30);
    for i in 0..12usize {
        f.fail(
            2.0 * DAY + i as f64 * 900.0,
            Some("kai@isp.example"),
            &new_home,
        );
    }
    f.login(2.0 * DAY + 12.0 * 900.0, "kai@isp.example", &new_home);
    assert!(f.brute().is_empty(), "with history: {:#?}", f.brute());

    // First day: the stale phone fails from the old and then the renumbered home address
    // before the owner's first login is ever seen, from the renumbered address.
    let mut g = F::new();
    for i in 0..16usize {
        let home = if i < 8 { ip(0, 14, 40) } else { ip(0, 15, 41) };
        g.fail(i as f64 * 900.0, Some("lea@isp.example"), &home);
    }
    g.login(16.0 * 900.0, "lea@isp.example", &ip(0, 15, 41));
    // ...and the phone keeps failing from there afterwards.
    for i in 0..8usize {
        g.fail(
            17.0 * 900.0 + i as f64 * 900.0,
            Some("lea@isp.example"),
            &ip(0, 15, 41),
        );
    }
    assert!(g.brute().is_empty(), "first day: {:#?}", g.brute());
}

/// Issue 9 class 1: an attacker guesses from a few addresses abroad and logs in from one of
/// them, new to the account: reported with history, and on the first day (no history) when the
/// failures came from more than one AS.
#[test]
fn attacker_guessing_then_logging_in_from_its_address_is_reported() {
    let mut f = F::new();
    f.routine(0.0, 2.0, "max@isp.example", &ip(0, 16, 16));
    for i in 0..20usize {
        f.fail(
            2.0 * DAY + i as f64 * 600.0,
            Some("max@isp.example"),
            &ip(7 + i % 3, 4, 9),
        );
    }
    f.login(2.0 * DAY + 20.0 * 600.0, "max@isp.example", &ip(7, 4, 9));
    let a = f.on(EntityKind::Account, "max@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["origin"], "guessing-address");

    let mut g = F::new();
    for i in 0..20usize {
        g.fail(
            i as f64 * 600.0,
            Some("nele@isp.example"),
            &ip(7 + i % 3, 4, 9),
        );
    }
    g.login(20.0 * 600.0, "nele@isp.example", &ip(8, 4, 9));
    let a = g.on(EntityKind::Account, "nele@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", g.brute());
    assert_eq!(a[0].evidence["origin"], "guessing-address");
    assert_eq!(a[0].evidence["history"], false);
}

/// Issue 9 class 1: during a distributed guessing wave, a success from an address of the wave
/// (one that tried many names) new to the account is reported; an owner whose own stale device
/// failed from its address during the wave, against its own name only, is not a wave member.
#[test]
fn campaign_address_is_one_that_guessed_many_names() {
    let mut f = F::new();
    f.routine(0.0, 2.0, "olga@isp.example", &ip(0, 17, 17));
    // The wave: 600 failures within 50 minutes from 120 addresses in 12 countries, each against
    // three generic names (too few for the slow rule of an address of its own).
    for k in 0..600usize {
        let a = k % 120;
        f.fail(
            2.0 * DAY + k as f64 * 5.0,
            Some(&format!("name{}@isp.example", (k / 120) % 3 + 5 * (a % 7))),
            &ip(10 + a % 12, 20 + a / 12, a),
        );
    }
    assert!(f
        .brute()
        .iter()
        .any(|a| a.entity.kind == EntityKind::Campaign));
    // A first-time user whose stale phone failed from its home address during the wave, then
    // the owner from the same address.
    for i in 0..3usize {
        f.fail(
            2.0 * DAY + 3000.0 + i as f64 * 300.0,
            Some("paul@isp.example"),
            &ip(0, 18, 18),
        );
    }
    f.login(2.0 * DAY + 4000.0, "paul@isp.example", &ip(0, 18, 18));
    assert!(
        f.on(EntityKind::Account, "paul@isp.example").is_empty(),
        "{:#?}",
        f.brute()
    );
    // Olga's password from an address of the wave: it never failed against her.
    let a = 7usize;
    let wave_ip = ip(10 + a % 12, 20 + a / 12, a);
    f.login(2.0 * DAY + 4100.0, "olga@isp.example", &wave_ip);
    let a = f.on(EntityKind::Account, "olga@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["origin"], "campaign");
}

/// Issue 9 class 2: a low-and-slow guesser (one try every 20 minutes for three days, a new name
/// each time) never passes a rate limit, but tries far more names within a day than any user's
/// line: one alert on the address for the whole attack. A NAT address whose users log in
/// successfully and mistype a few names is not one.
#[test]
fn slow_guesser_trying_many_names_is_reported_once() {
    let mut f = F::new();
    let nat = ip(0, 20, 20);
    let slow = ip(11, 5, 5);
    for i in 0..(3 * 72usize) {
        let t = i as f64 * 1200.0;
        if i % 3 == 0 {
            f.login(t, "quinn@isp.example", &nat);
        }
        f.fail(t + 1.0, Some(&format!("guess{i}@isp.example")), &slow);
        if i % 20 == 0 {
            // Somebody behind the NAT mistypes a name now and then.
            f.fail(t + 5.0, Some(&format!("quin{}@isp.example", i / 20)), &nat);
        }
    }
    let a = f.on(EntityKind::Client, &slow);
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["rule"], "slow-names");
    assert!(
        f.on(EntityKind::Client, &nat).is_empty(),
        "{:#?}",
        f.brute()
    );
    assert!(f.brute().iter().all(|a| a.entity.id != "quinn@isp.example"));
}

/// Issue 9 class 2: twenty addresses of one /24 each try one name an hour for two days (20
/// failures an hour from the network, under its rate limit): one alert on the network, none
/// on its addresses.
#[test]
fn slow_network_is_reported_once_and_covers_its_addresses() {
    let mut f = F::new();
    for h in 0..48usize {
        for a in 0..20usize {
            f.fail(
                h as f64 * HOUR + a as f64 * 170.0,
                Some(&format!("n{h}-{a}@isp.example")),
                &ip(12, 7, a),
            );
        }
    }
    let b = f.brute();
    assert_eq!(b.len(), 1, "{b:#?}");
    assert_eq!(b[0].entity.kind, EntityKind::Network);
    assert_eq!(b[0].entity.id, "10.12.7.0/24");
    assert_eq!(b[0].evidence["rule"], "slow-names");
}

/// A busy webmail (tests/e2e/scenarios/s6b_busy_webmail.py): 40 users log in from its one
/// address within the hour, 25 of them after one typo each. Most names that failed there also
/// logged in: a shared login point, not a guesser — no alert on the address, none on the users.
#[test]
fn busy_webmail_typos_are_quiet() {
    let mut f = F::new();
    let webmail = ip(0, 60, 20);
    for i in 0..40usize {
        let u = format!("wb{i:02}@isp.example");
        let t = i as f64 * 90.0;
        if i < 25 {
            f.fail(t, Some(&u), &webmail);
        }
        f.login(t + 10.0, &u, &webmail);
    }
    assert!(f.brute().is_empty(), "{:#?}", f.brute());
}

/// An address guessing many names (one of them `max`, who has history at home) logs in to
/// `max`, new to it: still `attacking-address`. Another account with history that logs in
/// from the same address but whose name was never tried there is one of the users behind it
/// (a CGNAT, a NAT): quiet.
#[test]
fn attacking_address_alerts_only_the_accounts_it_tried() {
    let mut f = F::new();
    f.routine(0.0, 2.0, "max@isp.example", &ip(0, 16, 16));
    f.routine(0.0, 2.0, "eva@isp.example", &ip(1, 16, 16));
    let x = ip(7, 4, 9);
    for k in 0..30usize {
        let name = if k == 15 {
            "max@isp.example".to_string()
        } else {
            format!("guess{k}")
        };
        f.fail(2.0 * DAY + k as f64 * 60.0, Some(&name), &x);
    }
    f.login(2.0 * DAY + 1900.0, "eva@isp.example", &x);
    f.login(2.0 * DAY + 2000.0, "max@isp.example", &x);
    assert!(
        f.on(EntityKind::Account, "eva@isp.example").is_empty(),
        "{:#?}",
        f.brute()
    );
    let a = f.on(EntityKind::Account, "max@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["origin"], "attacking-address");
    assert_eq!(f.on(EntityKind::Client, &x).len(), 1, "{:#?}", f.brute());
}

/// A /24 with two guessing addresses is an attacking network. A customer of the same ISP
/// network logging in from a new address in it (its name never tried there) is quiet; so is
/// an owner logging in from its established address inside it; an account the network's
/// addresses tried that logs in from another address of it is `attacking-network`.
#[test]
fn attacking_network_alerts_only_the_accounts_it_tried() {
    let mut f = F::new();
    f.routine(0.0, 2.0, "kai@isp.example", &ip(0, 16, 16));
    f.routine(0.0, 2.0, "lea@isp.example", "10.32.10.40");
    f.routine(0.0, 2.0, "tom@isp.example", &ip(2, 16, 16));
    for (n, host) in [(0, 159), (1, 151)] {
        for k in 0..31usize {
            let name = if n == 1 && k == 3 {
                "tom@isp.example".to_string()
            } else {
                format!("n{n}-{k}")
            };
            f.fail(
                2.0 * DAY + (n * 31 + k) as f64 * 50.0,
                Some(&name),
                &format!("10.32.10.{host}"),
            );
        }
    }
    assert_eq!(
        f.on(EntityKind::Network, "10.32.10.0/24").len(),
        1,
        "{:#?}",
        f.brute()
    );
    let t = 2.0 * DAY + 3200.0;
    f.login(t, "kai@isp.example", "10.32.10.77");
    f.login(t + 10.0, "lea@isp.example", "10.32.10.40");
    f.login(t + 20.0, "tom@isp.example", "10.32.10.78");
    assert!(
        f.on(EntityKind::Account, "kai@isp.example").is_empty(),
        "{:#?}",
        f.brute()
    );
    assert!(
        f.on(EntityKind::Account, "lea@isp.example").is_empty(),
        "{:#?}",
        f.brute()
    );
    let a = f.on(EntityKind::Account, "tom@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["origin"], "attacking-network");
}

/// Issue 9's last false-entity class: the owner's device with an old password polls from a
/// home line renumbered into a network (and AS) the account never used, then the owner logs
/// in with the right password from the same address. One address failing against this one name
/// at a device's rhythm is one device, not guessing: quiet, with history and without; and on
/// the first day with the line renumbered once more (two addresses, one after the other).
#[test]
fn stale_device_on_a_new_line_then_the_owner_from_it_is_quiet() {
    // With history: known home in AS 64500; the line is now in AS 64501.
    let mut f = F::new();
    f.routine(0.0, 2.0, "otto@isp.example", &ip(0, 30, 30));
    let new_home = ip(1, 31, 31);
    for i in 0..20usize {
        f.fail(
            2.0 * DAY + i as f64 * 900.0,
            Some("otto@isp.example"),
            &new_home,
        );
    }
    f.login(2.0 * DAY + 20.0 * 900.0, "otto@isp.example", &new_home);
    for i in 0..8usize {
        f.fail(
            2.0 * DAY + (21 + i) as f64 * 900.0,
            Some("otto@isp.example"),
            &new_home,
        );
    }
    assert!(f.brute().is_empty(), "with history: {:#?}", f.brute());

    // No history: the phone fails from a line in AS 64502, which is renumbered into AS 64503;
    // the owner's first login is from the renumbered address.
    let mut g = F::new();
    for i in 0..16usize {
        let home = if i < 8 { ip(2, 32, 32) } else { ip(3, 33, 33) };
        g.fail(i as f64 * 1200.0, Some("pia@isp.example"), &home);
    }
    g.login(16.0 * 1200.0, "pia@isp.example", &ip(3, 33, 33));
    assert!(g.brute().is_empty(), "first day: {:#?}", g.brute());

    // With history, while a background guesser also tries the owner's name among others: the
    // login from the device's address is still the owner's (the guesser never logs in).
    let mut h = F::new();
    h.routine(0.0, 2.0, "quirin@isp.example", &ip(0, 39, 39));
    let line = ip(4, 40, 40);
    let guesser = ip(27, 41, 41);
    for i in 0..20usize {
        let t = 2.0 * DAY + i as f64 * 180.0;
        h.fail(t, Some("quirin@isp.example"), &line);
        let name = [
            "quirin@isp.example",
            "admin@isp.example",
            "info@isp.example",
        ][i % 3];
        h.fail(t + 60.0, Some(name), &guesser);
    }
    h.login(2.0 * DAY + 3700.0, "quirin@isp.example", &line);
    assert!(
        h.on(EntityKind::Account, "quirin@isp.example").is_empty(),
        "with a guesser beside: {:#?}",
        h.brute()
    );
}

/// A lone address that guesses several names (a guesser, at least `GUESSER_MIN_NAMES`) slowly
/// enough to stay under the address rules, and then logs in to one of them: the password was
/// guessed, on the account's first day as with history.
#[test]
fn a_lone_guesser_of_several_names_logging_in_to_one_is_reported() {
    for history in [false, true] {
        let mut f = F::new();
        let t0 = if history {
            f.routine(0.0, 2.0, "rosa@isp.example", &ip(0, 34, 34));
            2.0 * DAY
        } else {
            0.0
        };
        let guesser = ip(20, 35, 35);
        // Three names, one try every 15 minutes (under 20 an hour, fewer than 4 names a day).
        for i in 0..18usize {
            let name = ["rosa@isp.example", "admin@isp.example", "info@isp.example"][i % 3];
            f.fail(t0 + i as f64 * 900.0, Some(name), &guesser);
        }
        assert!(f.brute().is_empty(), "history {history}: {:#?}", f.brute());
        f.login(t0 + 18.0 * 900.0, "rosa@isp.example", &guesser);
        let a = f.on(EntityKind::Account, "rosa@isp.example");
        assert_eq!(a.len(), 1, "history {history}: {:#?}", f.brute());
        assert_eq!(a[0].evidence["origin"], "guessing-address");
        assert_eq!(a[0].evidence["shape"], "guesser");
    }
}

/// Distributed guessing of one name — a pool of addresses trying it at once, or one address
/// after another faster than a line is renumbered — then a success from an address of the pool:
/// reported, with history and without.
#[test]
fn a_distributed_pool_then_success_from_a_pool_address_is_reported() {
    // Five addresses in five countries taking turns (the simulator's password-guessing attack).
    for history in [false, true] {
        let mut f = F::new();
        let t0 = if history {
            f.routine(0.0, 2.0, "sven@isp.example", &ip(0, 36, 36));
            2.0 * DAY
        } else {
            0.0
        };
        let pool: Vec<String> = (0..5usize).map(|k| ip(21 + k, 37, k)).collect();
        for i in 0..20usize {
            f.fail(
                t0 + i as f64 * 400.0,
                Some("sven@isp.example"),
                &pool[i % 5],
            );
        }
        f.login(t0 + 20.0 * 400.0, "sven@isp.example", &pool[0]);
        let a = f.on(EntityKind::Account, "sven@isp.example");
        assert_eq!(a.len(), 1, "history {history}: {:#?}", f.brute());
        assert_eq!(a[0].evidence["origin"], "guessing-address");
        assert_eq!(a[0].evidence["shape"], "distributed");
    }
    // Six addresses of one /24, one try each, one after another: no device moves that often.
    let mut g = F::new();
    for i in 0..6usize {
        g.fail(i as f64 * 600.0, Some("tina@isp.example"), &ip(26, 38, i));
    }
    g.login(3700.0, "tina@isp.example", &ip(26, 38, 5));
    let a = g.on(EntityKind::Account, "tina@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", g.brute());
    assert_eq!(a[0].evidence["shape"], "distributed");
}

/// A login from where one device alone failed against the account is taken for the owner's;
/// if the account's sending then changes (auth-hijack), the password was probably guessed.
#[test]
fn one_device_then_changed_sending_is_reported() {
    let mut f = F::new();
    for u in 0..200usize {
        f.send(
            u as f64 * 3.0,
            &format!("user{u}@isp.example"),
            &ip(0, u % 20, u),
            0,
        );
    }
    // Slowly, from one address, against this name only: one device.
    for i in 0..8usize {
        f.fail(
            1000.0 + i as f64 * 900.0,
            Some("uwe@isp.example"),
            &ip(36, 2, 2),
        );
    }
    f.login(1000.0 + 8.0 * 900.0, "uwe@isp.example", &ip(36, 2, 2));
    assert!(f.on(EntityKind::Account, "uwe@isp.example").is_empty());
    for b in 0..400usize {
        f.send(
            9000.0 + b as f64 * 6.0,
            "uwe@isp.example",
            &ip(1 + b % 30, b % 60, b),
            2,
        );
    }
    assert!(f
        .alerts
        .iter()
        .any(|a| a.detector == Detector::AuthHijack && a.entity.id == "uwe@isp.example"));
    let a = f.on(EntityKind::Account, "uwe@isp.example");
    assert_eq!(a.len(), 1, "{:#?}", f.brute());
    assert_eq!(a[0].evidence["origin"], "changed-sending");
}
