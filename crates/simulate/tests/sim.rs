//! Simulator and evaluator integration tests:
//! - determinism (same seed, same bytes; other seed, other bytes)
//! - labels agree with the log (recount from the raw lines)
//! - recognition through maillog's parsers (ignored until the parsers land)
//! - evaluation metrics on hand-made label/alert sets

use std::collections::HashMap;
use std::path::PathBuf;

use simulate::evaluate::{evaluate, AlertRecord, Timeline};
use simulate::{AbuseKind, Entity, Label, LogFormat, SimConfig};

fn small(seed: u64, format: LogFormat) -> SimConfig {
    SimConfig {
        users: 500,
        days: 1,
        seed,
        format,
        hijacks_per_day: 4.0,
        burst_share: 0.0,
        heavy_day_prob: 0.0,
        infected_per_day: 2.0,
        exploited_sites_per_day: 2.0,
        ..SimConfig::default()
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("simulate-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
fn same_seed_same_bytes() {
    for f in [LogFormat::Postfix, LogFormat::Exim] {
        let (a, b, c) = (tmp("det-a"), tmp("det-b"), tmp("det-c"));
        let tiny = |s| SimConfig {
            users: 200,
            ..small(s, f)
        };
        let sa = simulate::run(&tiny(5), &a).unwrap();
        simulate::run(&tiny(5), &b).unwrap();
        simulate::run(&tiny(6), &c).unwrap();
        let la = std::fs::read(a.join("mail.log")).unwrap();
        let lb = std::fs::read(b.join("mail.log")).unwrap();
        let lc = std::fs::read(c.join("mail.log")).unwrap();
        assert!(sa.lines > 1000, "{sa:?}");
        assert_eq!(fnv(&la), fnv(&lb));
        for f in ["labels.jsonl", "population.jsonl", "timeline.jsonl"] {
            assert_eq!(
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap(),
                "{f}"
            );
        }
        assert_ne!(fnv(&la), fnv(&lc));
        for d in [a, b, c] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn labels_of(dir: &std::path::Path) -> Vec<Label> {
    simulate::load_labels(&dir.join("labels.jsonl")).unwrap()
}

/// Syslog stamp to seconds of day (the test runs within one day).
fn sod(line: &str) -> i64 {
    let t = &line[7..15];
    let p: Vec<i64> = t.split(':').map(|x| x.parse().unwrap()).collect();
    p[0] * 3600 + p[1] * 60 + p[2]
}

#[test]
fn labels_agree_with_log_postfix() {
    let d = tmp("agree-pf");
    let cfg = small(11, LogFormat::Postfix);
    let sum = simulate::run(&cfg, &d).unwrap();
    let log = std::fs::read_to_string(d.join("mail.log")).unwrap();
    let labels = labels_of(&d);
    assert!(labels.iter().any(|l| l.kind == AbuseKind::HijackedAccount));
    assert!(labels.iter().any(|l| l.kind == AbuseKind::InfectedClient));
    // Time order.
    let mut prev = 0;
    for l in log.lines() {
        let s = sod(l);
        assert!(s >= prev, "out of order: {l}");
        prev = s;
    }
    // Accepted messages per unauthenticated client IP and per SASL user, with time.
    let mut by_ip: HashMap<String, u64> = HashMap::new();
    let mut by_user: HashMap<String, Vec<i64>> = HashMap::new();
    let mut qmgr_from = 0u64;
    for l in log.lines() {
        if l.contains("postfix/qmgr") && l.contains(": from=<") && !l.contains("from=<>") {
            qmgr_from += 1;
        }
        let Some(i) = l.find(": client=") else {
            continue;
        };
        let rest = &l[i + 9..];
        let ip = &rest[rest.find('[').unwrap() + 1..rest.find(']').unwrap()];
        match rest.find("sasl_username=") {
            Some(u) => by_user
                .entry(rest[u + 14..].to_string())
                .or_default()
                .push(sod(l)),
            None => *by_ip.entry(ip.to_string()).or_default() += 1,
        }
    }
    assert_eq!(qmgr_from, sum.messages, "summary messages vs queued lines");
    for l in &labels {
        match l.kind {
            AbuseKind::InfectedClient => {
                let n = by_ip.get(&l.entity.id).copied().unwrap_or(0);
                assert_eq!(n, l.messages, "{l:?}");
            }
            AbuseKind::HijackedAccount | AbuseKind::SlowAndLow => {
                let s = sod(&format!("xxx xx {}", &l.start[11..19]));
                let e = sod(&format!("xxx xx {}", &l.end[11..19]));
                let n = by_user
                    .get(&l.entity.id)
                    .map(|v| v.iter().filter(|t| **t >= s && **t <= e).count() as u64)
                    .unwrap_or(0);
                // The victim's own mail in the window is also counted from the log.
                assert!(
                    n >= l.messages && n <= l.messages + l.messages / 10 + 10,
                    "{l:?} log={n}"
                );
                assert!(l.messages > 0);
            }
            AbuseKind::PasswordGuessing | AbuseKind::GuessingSource => {
                assert!(l.rejected > 0, "{l:?}")
            }
            AbuseKind::IncomingSpamSource | AbuseKind::LoopedBack => {
                // Every refused recipient is one RCPT reject line of the source's address(es).
                let prefix = match l.entity.id.strip_suffix(".0/24") {
                    Some(net) => format!("[{net}."),
                    None => format!("[{}]", l.entity.id),
                };
                let n = log
                    .lines()
                    .filter(|x| {
                        x.contains("User unknown in virtual mailbox table") && x.contains(&prefix)
                    })
                    .count() as u64;
                assert_eq!(n, l.rejected, "{l:?}");
                assert!(l.rejected + l.messages > 0, "{l:?}");
            }
            AbuseKind::ExploitedWebsite => {
                // Every labelled message is queued with a sender at the site (the site's own
                // benign mail from the same server comes on top).
                let site = &l.entity.id;
                assert!(site.starts_with('@'), "{l:?}");
                let n = log
                    .lines()
                    .filter(|x| {
                        x.contains("postfix/qmgr") && x.contains(&format!("{site}>, size="))
                    })
                    .count() as u64;
                assert!(l.messages > 0 && n >= l.messages, "{l:?} log={n}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn labels_agree_with_log_exim() {
    let d = tmp("agree-exim");
    let sum = simulate::run(&small(12, LogFormat::Exim), &d).unwrap();
    let log = std::fs::read_to_string(d.join("mail.log")).unwrap();
    let arrivals = log
        .lines()
        .filter(|l| l.contains(" <= ") && !l.contains(" <= <> "))
        .count() as u64;
    assert_eq!(arrivals, sum.messages);
    for l in labels_of(&d) {
        if l.kind == AbuseKind::InfectedClient {
            let needle = format!("[{}]:", l.entity.id);
            let n = log
                .lines()
                .filter(|x| x.contains(" <= ") && x.contains(&needle) && x.contains("P=esmtp "))
                .count() as u64;
            assert_eq!(n, l.messages);
        }
    }
    let _ = std::fs::remove_dir_all(d);
}

/// 100% recognition through maillog's parsers.
#[test]
fn recognition_is_complete() {
    for f in [LogFormat::Postfix, LogFormat::Exim] {
        let d = tmp("recog");
        simulate::run(&small(3, f), &d).unwrap();
        let log = std::fs::read_to_string(d.join("mail.log")).unwrap();
        let mut p = maillog::LineParser::new(maillog::TimeContext::utc(2026));
        for l in log.lines() {
            p.parse(l);
        }
        let st = p.stats();
        for s in st.top_shapes(20) {
            eprintln!("{:?} {} {} | {}", f, s.count, s.shape, s.sample);
        }
        assert_eq!(st.recognized, st.lines, "{f:?}");
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The MX's spam filter: a Postfix run writes one verdict per incoming message, each joins its
/// message (by queue id for rspamd, by Message-ID for spamd), and spam is judged spam more often
/// than ham; an Exim run writes none.
#[test]
fn filter_verdicts_join_their_messages() {
    for seed in [3, 4] {
        let d = tmp("filter");
        simulate::run(&small(seed, LogFormat::Postfix), &d).unwrap();
        let log = std::fs::read_to_string(d.join("mail.log")).unwrap();
        let mut p = maillog::LineParser::new(maillog::TimeContext::utc(2026));
        let mut c = maillog::record::Correlator::default();
        let (mut verdicts, mut spam) = (0u64, 0u64);
        for l in log.lines() {
            let parsed = p.parse(l);
            if let (Some(h), Some(ev)) = (parsed.header, parsed.event) {
                if let maillog::Event::FilterVerdict { verdict, .. } = ev {
                    verdicts += 1;
                    spam += u64::from(verdict == maillog::Verdict::Spam);
                }
                c.feed(h.ts, h.host, h.pid, &ev);
            }
        }
        assert!(verdicts > 100, "seed {seed}: {verdicts} verdicts");
        assert!(
            spam > 0 && spam < verdicts,
            "seed {seed}: {spam} of {verdicts}"
        );
        assert_eq!(c.stats().verdicts_linked, verdicts, "seed {seed}");
        let _ = std::fs::remove_dir_all(d);
    }
    let d = tmp("filter-exim");
    simulate::run(&small(3, LogFormat::Exim), &d).unwrap();
    let log = std::fs::read_to_string(d.join("mail.log")).unwrap();
    assert!(!log.contains("spamd") && !log.contains("rspamd"));
    let _ = std::fs::remove_dir_all(d);
}

fn label(kind: AbuseKind, id: &str, start: &str, end: &str, messages: u64) -> Label {
    let entity = if kind == AbuseKind::InfectedClient {
        Entity::client(id)
    } else {
        Entity::account(id)
    };
    Label {
        entity,
        kind,
        shape: None,
        start: start.into(),
        end: end.into(),
        messages,
        rejected: 0,
        source_ips: 0,
        countries: 0,
        group: None,
    }
}

fn alert(ts: &str, kind: &str, id: &str, evidence: serde_json::Value) -> AlertRecord {
    AlertRecord {
        ts: ts.into(),
        detector: if kind == "campaign" {
            "campaign"
        } else {
            "auth-hijack"
        }
        .into(),
        entity: Entity {
            kind: kind.into(),
            id: id.into(),
        },
        score: 0.9,
        summary: String::new(),
        evidence,
    }
}

#[test]
fn evaluation_metrics() {
    let h = AbuseKind::HijackedAccount;
    let labels = vec![
        label(
            h,
            "a@x",
            "2026-11-20T10:00:00Z",
            "2026-11-20T12:00:00Z",
            100,
        ),
        label(h, "b@x", "2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", 50),
        label(h, "c@x", "2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", 10),
        label(h, "d@x", "2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", 10),
        label(
            AbuseKind::InfectedClient,
            "1.2.3.4",
            "2026-11-20T00:00:00Z",
            "2026-11-20T05:00:00Z",
            7,
        ),
    ];
    let alerts = vec![
        // a: detected after 10 min; an earlier alert before start does not count.
        alert(
            "2026-11-20T09:00:00Z",
            "account",
            "a@x",
            serde_json::Value::Null,
        ),
        alert(
            "2026-11-20T10:10:00Z",
            "account",
            "a@x",
            serde_json::Value::Null,
        ),
        // b and c through a campaign alert after 30 min.
        alert(
            "2026-11-20T10:30:00Z",
            "campaign",
            "camp-1",
            serde_json::to_value(detect::evidence::CampaignEvidence {
                accounts: vec!["b@x".into()],
                accounts_total: 2,
                entities: vec![detect::Entity::new(detect::EntityKind::Account, "c@x")],
                joined: Vec::new(),
                shared_ips: 2,
                domains: vec!["x".into()],
                first: "2026-11-20T10:30:00Z".into(),
            })
            .expect("serializable"),
        ),
        // d: too late (more than 24 h after end) -> miss.
        alert(
            "2026-11-21T11:00:01Z",
            "account",
            "d@x",
            serde_json::Value::Null,
        ),
        // two false-positive entities, one alerted twice.
        alert(
            "2026-11-20T13:00:00Z",
            "account",
            "legit@x",
            serde_json::Value::Null,
        ),
        alert(
            "2026-11-20T14:00:00Z",
            "account",
            "legit@x",
            serde_json::Value::Null,
        ),
        alert(
            "2026-11-20T15:00:00Z",
            "client",
            "9.9.9.9",
            serde_json::Value::Null,
        ),
        alert("not a time", "client", "8.8.8.8", serde_json::Value::Null),
    ];
    let mut tl: Timeline = HashMap::new();
    let base = 1_795_168_800; // 2026-11-20T10:00:00Z
    tl.insert(
        (Entity::account("a@x"), h),
        (0..100).map(|k| base + k * 60).collect(),
    ); // 10 before 10:10
    tl.insert(
        (Entity::account("b@x"), h),
        (0..50).map(|k| base + k * 10).collect(),
    ); // 50 before 10:30
    let ev = evaluate(&labels, &alerts, 20_000, 2.0, Some(&tl));
    let hk = &ev.by_kind["hijacked-account"];
    assert_eq!((hk.labels, hk.detected), (4, 3));
    assert!((hk.recall - 0.75).abs() < 1e-9);
    assert_eq!(ev.by_kind["infected-client"].detected, 0);
    assert_eq!(ev.overall.detected, 3);
    // TTD: 600, 1800, 1800 -> p50 1800, p90 1800.
    assert_eq!(hk.ttd_secs.p50, Some(1800.0));
    assert_eq!(hk.ttd_secs.p90, Some(1800.0));
    assert_eq!(hk.ttd_secs.n, 3);
    // Leaked: a 10, b 50 (c has no timeline) -> p50 10, p90 50.
    assert_eq!(hk.leaked.p50, Some(10.0));
    assert_eq!(hk.leaked.p90, Some(50.0));
    // Entities alerted: a, b, c, d, legit, 9.9.9.9 = 6; true = 4.
    assert_eq!(ev.alerted_entities, 6);
    assert_eq!(ev.true_entities, 4);
    assert!((ev.precision - 4.0 / 6.0).abs() < 1e-9);
    assert_eq!(ev.fp_entities, 2);
    assert!((ev.fp_per_10k_accounts_day - 2.0 / 20_000.0 * 10_000.0 / 2.0).abs() < 1e-9);
    assert_eq!(ev.bad_alerts, 1);
    assert_eq!(ev.misses.len(), 2);
    let fp = ev
        .false_positives
        .iter()
        .find(|f| f.entity.id == "legit@x")
        .unwrap();
    assert_eq!(fp.alerts, 2);
    assert_eq!(fp.first_ts, "2026-11-20T13:00:00Z");
    let text = ev.to_text();
    assert!(text.contains("75.0%"), "{text}");
    assert!(text.contains("0.50 per 10,000"), "{text}");
    let js = serde_json::to_value(&ev).unwrap();
    assert_eq!(js["fp_entities"], 2);
}

#[test]
fn evaluation_of_nothing() {
    let ev = evaluate(&[], &[], 0, 0.0, None);
    assert_eq!(ev.precision, 1.0);
    assert_eq!(ev.fp_per_10k_accounts_day, 0.0);
    assert!(ev.overall.ttd_secs.p50.is_none());
}

/// Labelled source IPs geolocate where the simulation put them (built-in database).
#[test]
fn sources_geolocate() {
    use std::net::IpAddr;
    let db = geo::GeoDb::builtin();
    let s = simulate::addr::Sampler::new(db, &["DE", "VN", "BR"]);
    for c in ["DE", "VN", "BR"] {
        for k in 0..200 {
            let ip = s.ip(c, k).unwrap();
            let (got, _) = db.lookup_fast(IpAddr::V4(ip));
            assert_eq!(got, geo::Country::parse(c), "{ip}");
            let ip = s.ip_in_block(c, k, k * 7).unwrap();
            let (got, _) = db.lookup_fast(IpAddr::V4(ip));
            assert_eq!(got, geo::Country::parse(c), "{ip}");
        }
    }
}

/// The benign look-alikes are written with their profiles, the new abuse kinds are labelled,
/// and forwarding deliveries carry `orig_to`.
#[test]
fn lookalike_populations_and_new_labels() {
    let d = tmp("lookalikes");
    let sum = simulate::run(&small(21, LogFormat::Postfix), &d).unwrap();
    let pop = std::fs::read_to_string(d.join("population.jsonl")).unwrap();
    let entries: Vec<simulate::PopulationEntry> = pop
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for p in [
        "mailing-list",
        "newsletter",
        "customer-mta",
        "business-nat",
        "web-hosting",
        "forwarder",
        "webmail",
        "cgnat",
        "vpn-user",
        "multi-domain",
        "autoresponder",
    ] {
        assert!(
            entries.iter().any(|e| e.profile == p),
            "no {p} in population.jsonl"
        );
    }
    for k in [
        "customer-mtas",
        "business-nats",
        "web-hosting-servers",
        "forwarding-aliases",
    ] {
        assert!(
            sum.populations.get(k).copied().unwrap_or(0) >= 1,
            "{k}: {sum:?}"
        );
    }
    let labels = labels_of(&d);
    assert!(labels
        .iter()
        .any(|l| l.kind == AbuseKind::ExploitedWebsite && l.entity.kind == "sender"));
    let guessers: Vec<&Label> = labels
        .iter()
        .filter(|l| l.kind == AbuseKind::GuessingSource)
        .collect();
    assert!(!guessers.is_empty());
    assert!(guessers
        .iter()
        .all(|l| (l.entity.kind == "client" || l.entity.kind == "network") && l.rejected > 0));
    let log = std::fs::read_to_string(d.join("mail.log")).unwrap();
    assert!(log.contains(", orig_to=<"), "no forwarded delivery");
    assert!(log.contains("action=permit_auth_destination"));
    // Background guessing tries generic names.
    assert!(
        log.contains("user=<admin") || log.contains("user=<info") || log.contains("user=<test")
    );
    let _ = std::fs::remove_dir_all(d);
}
