//! Durable detection state (issue 10, Build 3): an engine snapshot taken anywhere in a log,
//! restored into a fresh engine that goes on with the rest of the log, gives exactly the alerts
//! of one uninterrupted run, even when the cut falls inside an attack.
//!
//! The log is Postfix and Dovecot text (parsed by `maillog`, as `analyze` and `serve` read it)
//! with a spread account hijack and password guessing (one address against many names, then
//! distributed guessing against one account followed by a success) interleaved with ordinary
//! mail. The geo database is built from overrides: `10.C.A.H` is in country number C.

use std::sync::Arc;

use detect::snapshot::{SnapshotError, VERSION};
use detect::{Alert, Config, Detector, Engine, GeoRef};
use maillog::{TimeContext, Ts};

const T0: i64 = 1_763_600_000;
const CCS: [&str; 12] = [
    "DE", "US", "BR", "VN", "IN", "CN", "RU", "ID", "TR", "MX", "AR", "CO",
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

/// Log lines with their time (seconds after T0) and order of writing.
#[derive(Default)]
struct Log {
    lines: Vec<(f64, usize, String)>,
    n: usize,
}

impl Log {
    fn line(&mut self, t: f64, text: String) {
        let ts = Ts(((T0 as f64 + t) * 1e6) as i64).rfc3339();
        self.n += 1;
        self.lines.push((t, self.n, format!("{ts} smtp {text}")));
    }

    /// One authenticated message from `ip` with 2 recipients, `failed` of them bouncing.
    fn send(&mut self, t: f64, user: &str, ip: &str, failed: usize) {
        let qid = format!("4B{:08X}", self.n);
        self.line(
            t,
            format!("postfix/submission/smtpd[7]: {qid}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={user}"),
        );
        self.line(
            t,
            format!("postfix/qmgr[9]: {qid}: from=<{user}>, size=3000, nrcpt=2 (queue active)"),
        );
        for k in 0..2 {
            let to = format!("x{}-{k}@d{}.example", self.n, self.n % 97);
            let (dsn, status, reply) = if k < failed {
                ("5.1.1", "bounced", "host mx.example[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)")
            } else {
                ("2.0.0", "sent", "250 2.0.0 Ok")
            };
            self.line(
                t,
                format!("postfix/smtp[11]: {qid}: to=<{to}>, relay=mx.example[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn={dsn}, status={status} ({reply})"),
            );
        }
        self.line(t, format!("postfix/qmgr[9]: {qid}: removed"));
    }

    fn fail_login(&mut self, t: f64, user: &str, ip: &str) {
        self.line(
            t,
            format!("dovecot[100]: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<{user}>, method=PLAIN, rip={ip}, lip=192.0.2.1, session=<a>"),
        );
    }

    fn login(&mut self, t: f64, user: &str, ip: &str) {
        self.line(
            t,
            format!("dovecot[100]: imap-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip=192.0.2.1, mpid=1, TLS, session=<b>"),
        );
    }

    fn into_lines(mut self) -> Vec<String> {
        self.lines
            .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        self.lines.into_iter().map(|(_, _, l)| l).collect()
    }
}

/// Seconds after T0 where the attacks are under way (the cuts below fall inside them).
const HIJACK_START: f64 = 1000.0;
const GUESSING_START: f64 = 1200.0;

fn attack_log() -> Vec<String> {
    let mut log = Log::default();
    // 200 ordinary accounts in DE (country 0), before and during the attacks.
    for round in 0..3 {
        for u in 0..200 {
            log.send(
                round as f64 * 1500.0 + u as f64 * 3.0,
                &format!("user{u}@isp.example"),
                &ip(0, u % 20, u),
                0,
            );
        }
    }
    // A spread hijack: 400 bots in 11 countries, 1–2 messages each, over 40 minutes.
    for b in 0..400usize {
        let (c, a) = (1 + b % 11, (b / 11) % 60);
        for _ in 0..(1 + b % 2) {
            log.send(
                HIJACK_START + b as f64 * 6.0,
                "maria@isp.example",
                &ip(c, a, b),
                2,
            );
        }
    }
    // One address guessing 40 names.
    for i in 0..40 {
        log.fail_login(
            GUESSING_START + i as f64 * 10.0,
            &format!("u{i}@isp.example"),
            "10.6.1.1",
        );
    }
    // Distributed guessing against an account that exists, then a success from a guessing address.
    log.login(1500.0, "victim@isp.example", "10.0.1.9");
    for i in 0..15 {
        log.fail_login(
            1600.0 + i as f64 * 30.0,
            "victim@isp.example",
            &ip(2 + i % 10, i, i),
        );
    }
    log.login(2100.0, "victim@isp.example", &ip(2 + 14 % 10, 14, 14));
    log.into_lines()
}

fn feed(e: &mut Engine, ctx: &mut TimeContext, lines: &[String]) {
    for l in lines {
        let p = maillog::parse_line(l, ctx);
        if let (Some(h), Some(ev)) = (&p.header, &p.event) {
            e.feed(h.ts, h.host, h.program, h.pid, ev);
        }
    }
}

/// The alerts of a run over `lines` that stops at each of `cuts` (line indices) and goes on
/// in a new engine: restored from a snapshot when `restore`, fresh otherwise.
fn run(lines: &[String], cuts: &[usize], restore: bool) -> Vec<Alert> {
    let mut e = Engine::with_geo(Config::default(), geo());
    let mut ctx = TimeContext::utc(2025);
    let mut alerts = Vec::new();
    let mut from = 0;
    for &cut in cuts {
        feed(&mut e, &mut ctx, &lines[from..cut]);
        alerts.extend(e.take_alerts());
        let snap = e.snapshot().expect("snapshot");
        e = Engine::with_geo(Config::default(), geo());
        if restore {
            e.restore(&snap).expect("restore");
        }
        from = cut;
    }
    feed(&mut e, &mut ctx, &lines[from..]);
    e.finish();
    alerts.extend(e.take_alerts());
    alerts
}

/// Line index of the first line at or after `t` seconds.
fn index_at(lines: &[String], t: f64) -> usize {
    let at = Ts(((T0 as f64 + t) * 1e6) as i64).rfc3339();
    lines.partition_point(|l| l.split(' ').next().unwrap() < at.as_str())
}

fn json(alerts: &[Alert]) -> String {
    serde_json::to_string_pretty(alerts).unwrap()
}

#[test]
fn restore_and_continue_gives_the_alerts_of_an_uninterrupted_run() {
    let lines = attack_log();
    let whole = run(&lines, &[], true);
    let of = |d: Detector| whole.iter().filter(|a| a.detector == d).count();
    assert!(of(Detector::AuthHijack) >= 1, "{}", json(&whole));
    assert!(
        whole
            .iter()
            .any(|a| a.detector == Detector::AuthBruteforce && a.entity.id == "10.6.1.1"),
        "{}",
        json(&whole)
    );
    assert!(
        whole
            .iter()
            .filter(
                |a| a.detector == Detector::AuthBruteforce && a.entity.id == "victim@isp.example"
            )
            .count()
            >= 1,
        "{}",
        json(&whole)
    );
    // Cuts inside the hijack's first messages, inside the guessing of many names, inside the
    // guessing against the victim, just before its success, and one line after the start
    // (messages open in the correlator).
    let cuts = [
        index_at(&lines, HIJACK_START + 20.0),
        index_at(&lines, HIJACK_START + 20.0) + 1,
        index_at(&lines, GUESSING_START + 105.0),
        index_at(&lines, 1700.0),
        index_at(&lines, 2099.0),
        index_at(&lines, 2500.0) + 2,
    ];
    for &cut in &cuts {
        assert!(cut > 0 && cut < lines.len());
        let split = run(&lines, &[cut], true);
        assert_eq!(json(&split), json(&whole), "cut at line {cut}");
    }
    // All the cuts in one run.
    assert_eq!(json(&run(&lines, &cuts, true)), json(&whole));
}

/// The test above can fail: a fresh engine at the same cuts misses what straddles them.
#[test]
fn without_the_snapshot_the_straddling_attacks_are_missed() {
    let lines = attack_log();
    let whole = run(&lines, &[], true);
    let cuts = [
        index_at(&lines, HIJACK_START + 20.0),
        index_at(&lines, GUESSING_START + 105.0),
        index_at(&lines, 1700.0),
    ];
    let fresh = run(&lines, &cuts, false);
    assert_ne!(json(&fresh), json(&whole));
}

#[test]
fn a_snapshot_of_another_version_or_corrupt_is_refused_and_leaves_the_engine_as_it_was() {
    let lines = attack_log();
    let mut e = Engine::with_geo(Config::default(), geo());
    let mut ctx = TimeContext::utc(2025);
    feed(&mut e, &mut ctx, &lines[..lines.len() / 2]);
    let snap = e.snapshot().unwrap();
    assert_eq!(detect::snapshot::version_of(&snap), Some(VERSION));

    let mut other = snap.clone();
    other[4..8].copy_from_slice(&(VERSION + 1).to_le_bytes());
    let mut fresh = Engine::with_geo(Config::default(), geo());
    match fresh.restore(&other) {
        Err(SnapshotError::Version { found, expected }) => {
            assert_eq!((found, expected), (VERSION + 1, VERSION))
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(fresh.stats().events, 0);

    let mut corrupt = snap.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
    assert!(fresh.restore(&corrupt).is_err());
    assert!(fresh.restore(&snap[..snap.len() / 2]).is_err());
    assert!(matches!(
        fresh.restore(b"garbage"),
        Err(SnapshotError::NotASnapshot)
    ));
    assert!(matches!(
        fresh.restore(b""),
        Err(SnapshotError::NotASnapshot)
    ));
    assert_eq!(fresh.stats().events, 0);
    // The good one restores.
    fresh.restore(&snap).unwrap();
    assert_eq!(fresh.stats().events, e.stats().events);
}

/// A snapshot holds each state itself, packed or live (`Engine::freeze_idle`, which
/// `flush_idle` does for entities idle an hour): the same serialized length (a set's order may
/// differ: a thawed set is rebuilt), and a run restored from it goes on with the alerts of an
/// uninterrupted run.
#[test]
fn packed_state_snapshots_as_the_live_state() {
    let lines = attack_log();
    let whole = run(&lines, &[], true);
    let cut = index_at(&lines, 1500.0);
    let mut e = Engine::with_geo(Config::default(), geo());
    let mut ctx = TimeContext::utc(2025);
    feed(&mut e, &mut ctx, &lines[..cut]);
    let mut alerts = e.take_alerts();
    let live = e.snapshot_raw().expect("snapshot").len();
    e.freeze_idle(Ts(i64::MAX));
    let z = e.frozen();
    assert!(z.hijack > 0 && z.bruteforce > 0 && z.extrusion > 0, "{z:?}");
    assert_eq!(e.snapshot_raw().expect("snapshot").len(), live);
    let snap = e.snapshot().expect("snapshot");
    let mut e = Engine::with_geo(Config::default(), geo());
    e.restore(&snap).expect("restore");
    feed(&mut e, &mut ctx, &lines[cut..]);
    e.finish();
    alerts.extend(e.take_alerts());
    assert_eq!(json(&alerts), json(&whole));
}
