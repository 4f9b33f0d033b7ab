//! `auth-hijack`, `campaign` and `auth-bruteforce` on synthetic event streams, with a geo
//! database built from overrides so every address has a known country and AS:
//! `10.C.A.H` is in country number C and AS 64500+C*100+A.

use std::sync::Arc;

use detect::{Config, Detector, Engine, EntityKind, GeoRef};
use maillog::{DeliveryStatus, Event, Peer, Service, Ts};

const T0: i64 = 1_763_600_000;
const CCS: [&str; 40] = [
    "DE", "US", "BR", "VN", "IN", "CN", "RU", "ID", "TR", "MX", "AR", "CO", "PE", "CL", "EG", "NG",
    "ZA", "KE", "PK", "BD", "TH", "PH", "MY", "UA", "PL", "RO", "IT", "ES", "FR", "GB", "NL", "SE",
    "NO", "FI", "JP", "KR", "TW", "IR", "IQ", "SA",
];

fn geo() -> GeoRef {
    let mut csv = String::from("cidr,country,asn,label\n");
    for (c, cc) in CCS.iter().enumerate() {
        for a in 0..60 {
            csv.push_str(&format!("10.{c}.{a}.0/24,{cc},{},\n", 64500 + c * 100 + a));
        }
    }
    let o = geo::Overrides::parse_csv(&csv, "test").unwrap();
    GeoRef::Owned(Arc::new(geo::GeoDb::empty().with_overrides(o)))
}

fn ip(c: usize, a: usize, h: usize) -> String {
    format!("10.{c}.{a}.{}", 1 + h % 250)
}

struct F {
    e: Engine,
    n: u64,
    alerts: Vec<detect::Alert>,
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
    /// One authenticated message at T0+t seconds from `ip`, `failed` of its 2 recipients failing.
    fn send(&mut self, t: f64, user: &str, ip: &str, failed: usize) {
        self.n += 1;
        let qid = format!("Q{:09X}", self.n);
        let ts = Ts(((T0 as f64 + t) * 1e6) as i64);
        let peer = Peer {
            host: Some("unknown"),
            ip: Some(ip),
            port: None,
        };
        let e = &mut self.e;
        e.feed(
            ts,
            "smtp",
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
            ts,
            "smtp",
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
            let st = if k < failed {
                DeliveryStatus::Bounced
            } else {
                DeliveryStatus::Sent
            };
            e.feed(
                ts,
                "smtp",
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
                    status: st,
                    reply: Some("550 no such user"),
                },
            );
        }
        e.feed(
            ts,
            "smtp",
            "postfix/qmgr",
            Some(9),
            &Event::Removed { qid: &qid },
        );
        self.alerts.extend(e.take_alerts());
    }
    fn fail_login(&mut self, t: f64, user: &str, ip: &str, service: Service) {
        let ts = Ts(((T0 as f64 + t) * 1e6) as i64);
        let peer = Peer {
            host: None,
            ip: Some(ip),
            port: None,
        };
        self.e.feed(
            ts,
            "smtp",
            "dovecot",
            None,
            &Event::AuthFailure {
                client: peer,
                user: Some(user),
                mechanism: Some("PLAIN"),
                service,
                reason: "auth failed",
            },
        );
        self.alerts.extend(self.e.take_alerts());
    }
    fn login(&mut self, t: f64, user: &str, ip: &str) {
        let ts = Ts(((T0 as f64 + t) * 1e6) as i64);
        let peer = Peer {
            host: None,
            ip: Some(ip),
            port: None,
        };
        self.e.feed(
            ts,
            "smtp",
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
    /// 200 ordinary accounts in DE (country 0) sending a little, so DE is the home country.
    fn home_population(&mut self) {
        for u in 0..200 {
            self.send(
                u as f64 * 3.0,
                &format!("user{u}@isp.example"),
                &ip(0, u % 20, u),
                0,
            );
        }
    }
    fn of(&self, d: Detector) -> Vec<&detect::Alert> {
        self.alerts.iter().filter(|a| a.detector == d).collect()
    }
    fn finish(mut self) -> Self {
        self.e.finish();
        self.alerts.extend(self.e.take_alerts());
        self
    }
}

#[test]
fn spread_hijack_is_caught_early() {
    let mut f = F::new();
    f.home_population();
    // 400 bots in 30 countries and 120 networks, 1–2 messages each, over 40 minutes.
    let mut sent = 0;
    let mut first_alert_after = None;
    for b in 0..400usize {
        let (c, a) = (1 + b % 30, (b / 30) % 60);
        for _ in 0..(1 + b % 2) {
            sent += 1;
            f.send(
                1000.0 + b as f64 * 6.0,
                "maria@isp.example",
                &ip(c, a, b),
                2,
            );
            if first_alert_after.is_none() && !f.of(Detector::AuthHijack).is_empty() {
                first_alert_after = Some(sent);
            }
        }
    }
    let f = f.finish();
    let h = f.of(Detector::AuthHijack);
    assert!(!h.is_empty());
    assert_eq!(h[0].entity.id, "maria@isp.example");
    assert_eq!(h[0].entity.kind, EntityKind::Account);
    let n = first_alert_after.unwrap();
    assert!(n <= 12, "alerted only after {n} messages");
    let ev = &h.last().unwrap().evidence;
    assert!(ev["new_countries"].as_u64().unwrap() >= 10, "{ev}");
    assert_eq!(ev["shape"], "spread");
    assert!(ev["countries"].as_array().unwrap().len() >= 10);
    assert!(ev["country_entropy_bits"].as_f64().unwrap() > 3.0, "{ev}");
    assert!(ev["source_ips_10m"].as_u64().unwrap() >= 10, "{ev}");
    assert!(h[0].summary.contains("source IPs"), "{}", h[0].summary);
    // Ordinary users stay quiet.
    assert!(
        f.alerts
            .iter()
            .all(|a| a.entity.id == "maria@isp.example" || a.detector == Detector::Campaign),
        "{:#?}",
        f.alerts
    );
}

#[test]
fn burst_from_abroad_is_caught_within_a_minute() {
    let mut f = F::new();
    f.home_population();
    let mut first = None;
    for i in 0..3000 {
        f.send(2000.0 + i as f64 * 0.2, "shop@isp.example", "10.5.7.9", 1);
        if first.is_none() && !f.of(Detector::AuthHijack).is_empty() {
            first = Some(i + 1);
        }
    }
    let n = first.expect("burst not detected");
    assert!(n <= 40, "after {n} messages");
    let h = f.of(Detector::AuthHijack);
    assert_eq!(h[0].evidence["shape"], "burst");
}

#[test]
fn traps_stay_quiet() {
    let mut f = F::new();
    f.home_population();
    // A traveller: home line in DE for two days, then three IPs in Spain.
    for d in 0..2 {
        for m in 0..5 {
            f.send(
                d as f64 * 86_400.0 + m as f64 * 3600.0,
                "traveller@isp.example",
                &ip(0, 3, 7),
                0,
            );
        }
    }
    for m in 0..6 {
        f.send(
            2.0 * 86_400.0 + m as f64 * 1800.0,
            "traveller@isp.example",
            &ip(27, 1 + m % 2, m),
            0,
        );
    }
    // A phone behind carrier-grade NAT: 40 addresses of one carrier in a day.
    for m in 0..40 {
        f.send(
            5000.0 + m as f64 * 600.0,
            "phone@isp.example",
            &ip(0, 50, m * 3),
            0,
        );
    }
    // Fifty accounts behind one office NAT.
    for u in 0..50 {
        for m in 0..4 {
            f.send(
                7000.0 + (u * 4 + m) as f64 * 20.0,
                &format!("staff{u}@firm.example"),
                "10.0.40.5",
                0,
            );
        }
    }
    // A VPN exit abroad.
    for m in 0..10 {
        f.send(
            9000.0 + m as f64 * 300.0,
            "privacy@isp.example",
            "10.33.2.2",
            0,
        );
    }
    // A legitimate heavy sender from its home line: 2,000 messages at 5/s.
    for m in 0..2000 {
        f.send(
            20_000.0 + m as f64 * 0.2,
            "newsletter@club.example",
            &ip(0, 8, 8),
            0,
        );
    }
    // Someone using home DSL, office and phone on one day: 3 networks, one country.
    for m in 0..9 {
        f.send(
            30_000.0 + m as f64 * 900.0,
            "busy@isp.example",
            &ip(0, 10 + m % 3, m),
            0,
        );
    }
    let f = f.finish();
    let h: Vec<_> = f
        .alerts
        .iter()
        .filter(|a| a.detector != Detector::DeliveryFailures)
        .collect();
    assert!(h.is_empty(), "{h:#?}");
}

#[test]
fn accounts_of_one_domain_and_shared_bots_form_a_campaign() {
    let mut f = F::new();
    f.home_population();
    for b in 0..120usize {
        let (c, a) = (1 + b % 25, (b / 25) % 60);
        f.send(
            1000.0 + b as f64 * 5.0,
            "alice@hit.example",
            &ip(c, a, b),
            2,
        );
        // The same botnet uses a second account of the domain, reusing bots.
        f.send(1002.0 + b as f64 * 5.0, "bob@hit.example", &ip(c, a, b), 2);
    }
    let f = f.finish();
    let c = f.of(Detector::Campaign);
    assert!(
        !c.is_empty(),
        "{:#?}",
        f.alerts
            .iter()
            .map(|a| (&a.detector, &a.entity))
            .collect::<Vec<_>>()
    );
    let accts: Vec<&str> = c.last().unwrap().evidence["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        accts.contains(&"alice@hit.example") && accts.contains(&"bob@hit.example"),
        "{accts:?}"
    );
    assert_eq!(c[0].entity.kind, EntityKind::Campaign);
    assert!(c[0].evidence["shared_ips"].as_u64().unwrap() >= 2);
}

#[test]
fn password_guessing_is_reported() {
    let mut f = F::new();
    // One IP trying many accounts.
    for i in 0..40 {
        f.fail_login(
            i as f64 * 10.0,
            &format!("u{i}@isp.example"),
            "10.6.1.1",
            Service::Imap,
        );
    }
    let b = f.of(Detector::AuthBruteforce);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].entity.kind, EntityKind::Client);
    assert_eq!(b[0].entity.id, "10.6.1.1");
    assert_eq!(b[0].evidence["failures"], 21);
    // Distributed guessing against one account, then a success: reported twice.
    for i in 0..15 {
        f.fail_login(
            1000.0 + i as f64 * 30.0,
            "victim@isp.example",
            &ip(2 + i % 10, i, i),
            Service::Pop3,
        );
    }
    f.login(1600.0, "victim@isp.example", "10.7.1.1");
    let b: Vec<_> = f
        .of(Detector::AuthBruteforce)
        .into_iter()
        .filter(|a| a.entity.id == "victim@isp.example")
        .collect();
    assert_eq!(b.len(), 2, "{b:#?}");
    assert!(
        b[1].summary.contains("after 15 failed logins"),
        "{}",
        b[1].summary
    );
}

#[test]
fn a_few_typos_of_a_password_are_not_guessing() {
    let mut f = F::new();
    for i in 0..3 {
        f.fail_login(
            i as f64 * 5.0,
            "clumsy@isp.example",
            "10.0.3.3",
            Service::Imap,
        );
    }
    f.login(20.0, "clumsy@isp.example", "10.0.3.3");
    assert!(f.alerts.is_empty(), "{:#?}", f.alerts);
}

#[test]
fn baselines_are_learned_saved_and_restored() {
    let mut f = F::new();
    // Three quiet days from DE and one network in NL.
    for d in 0..3 {
        for m in 0..6 {
            f.send(
                d as f64 * 86_400.0 + m as f64 * 3000.0,
                "steady@isp.example",
                &ip(0, 1, 1),
                0,
            );
        }
        f.send(
            d as f64 * 86_400.0 + 40_000.0,
            "steady@isp.example",
            &ip(30, 2, 2),
            0,
        );
    }
    f.send(3.0 * 86_400.0 + 10.0, "steady@isp.example", &ip(0, 1, 1), 0);
    let st = f.e.snapshot_state();
    let b = &st
        .baselines
        .iter()
        .find(|(k, _)| k == "steady@isp.example")
        .unwrap()
        .1;
    assert_eq!(b.days, 3);
    assert!(b.countries.iter().any(|(c, _)| c == "DE"));
    assert!(b.countries.iter().any(|(c, _)| c == "NL"));
    assert_eq!(b.asns.len(), 2);
    let json = serde_json::to_string(&st).unwrap();
    let back: detect::State = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    let mut e2 = Engine::with_geo(Config::default(), geo());
    e2.restore_state(back);
    assert_eq!(e2.snapshot_state().baselines, st.baselines);
}

#[test]
fn memory_stays_bounded_under_adversarial_cardinality() {
    let mut cfg = Config::default();
    cfg.limits.max_entities = 2_000;
    let mut f = F::with(cfg);
    for i in 0..20_000usize {
        f.send(
            i as f64 * 0.05,
            &format!("acct{i}@isp.example"),
            &ip(i % 40, (i / 40) % 60, i),
            0,
        );
    }
    let (n, bytes) = f.e.hijack_memory();
    assert!(n <= 2_000, "{n}");
    assert!(
        bytes / n.max(1) < 2_000,
        "{} bytes per account",
        bytes / n.max(1)
    );
}

#[test]
fn guessing_spread_over_one_network_and_a_botnet_wave_are_reported() {
    let mut f = F::new();
    // 20 addresses of one /24, 3 failures each within the hour: every IP under its limit.
    for i in 0..60usize {
        f.fail_login(
            i as f64 * 50.0,
            &format!("u{}@isp.example", i % 30),
            &format!("10.9.9.{}", 1 + i % 20),
            Service::Smtp,
        );
    }
    let b = f.of(Detector::AuthBruteforce);
    assert_eq!(b.len(), 1, "{b:#?}");
    assert_eq!(b[0].entity.id, "10.9.9.0/24");
    assert_eq!(b[0].entity.kind, EntityKind::Client);
    // A wave: 600 failures from 300 addresses in 30 countries within the hour.
    let mut g = F::new();
    for i in 0..600usize {
        g.fail_login(
            10_000.0 + i as f64 * 5.0,
            "",
            &ip(i % 30, (i / 30) % 10, i),
            Service::Smtp,
        );
    }
    let w: Vec<_> = g
        .of(Detector::AuthBruteforce)
        .into_iter()
        .filter(|a| a.entity.kind == EntityKind::Campaign)
        .collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].evidence["failures"], 501);
}
