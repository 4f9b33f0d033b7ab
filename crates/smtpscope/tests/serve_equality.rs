//! One engine in truth: the same log gives the same alerts through `analyze` and through
//! `serve` (a followed file, the service's ticks, and policy requests for part of the mail).
//!
//! The log is written by this test: an ordinary population (some of it also seen by policy
//! requests), an account hijacked over port 465 that only the log shows, an account hijacked
//! through the submission port that both the policy server and the log see (counted once), and
//! an account whose deferred mail bounces two hours later (closed by the one idle policy, not
//! after 15 minutes). Every country comes from a geo override file written beside the log.

mod serve_util;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serve_util::*;

/// Countries of the test's networks: `10.C.A.0/24` is in `CCS[C]`.
const CCS: [&str; 31] = [
    "DE", "US", "BR", "VN", "IN", "CN", "RU", "ID", "TR", "MX", "AR", "CO", "PE", "CL", "EG", "NG",
    "ZA", "KE", "PK", "BD", "TH", "PH", "MY", "UA", "PL", "RO", "IT", "ES", "FR", "GB", "NL",
];

fn geo_csv() -> String {
    let mut csv = String::from("cidr,country,asn,label\n");
    for (c, cc) in CCS.iter().enumerate() {
        for a in 0..64 {
            csv.push_str(&format!("10.{c}.{a}.0/24,{cc},{},\n", 64500 + c * 100 + a));
        }
    }
    csv
}

/// A recipient's fate.
#[derive(Clone, Copy)]
enum Fate {
    Sent,
    /// Deferred at once, bounced this many seconds later.
    DeferredThenBounced(i64),
}

/// A policy request the test sends before the lines of its message.
struct Req {
    user: String,
    ip: String,
    rcpt: String,
    instance: String,
}

/// A log line with its time and sequence number.
type Line = (i64, u64, String);
/// A policy request with the time and sequence number of the message it asks about.
type Timed = (i64, u64, Req);

/// The log being written: lines with their time, and policy requests by the line they precede.
struct Log {
    base: i64,
    lines: Vec<Line>,
    reqs: Vec<Timed>,
    n: u64,
}

impl Log {
    fn stamp(&self, t: i64) -> String {
        jiff::Timestamp::from_second(self.base + t)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%b %e %H:%M:%S")
            .to_string()
    }

    fn line(&mut self, t: i64, text: String) {
        let l = format!("{} mx1 {text}", self.stamp(t));
        self.n += 1;
        self.lines.push((t, self.n, l));
    }

    /// One authenticated message from `ip` through `smtpd` (e.g. `postfix/smtps/smtpd`).
    fn submit(&mut self, t: i64, smtpd: &str, user: &str, ip: &str, fate: Fate, policy: bool) {
        let q = format!("{:X}", 0xA0000 + self.n);
        let pid = 1000 + self.n % 5000;
        let rcpt = format!("r{}@d{}.example", self.n, self.n % 13);
        if policy {
            self.n += 1;
            self.reqs.push((
                t,
                self.n,
                Req {
                    user: user.into(),
                    ip: ip.into(),
                    rcpt: rcpt.clone(),
                    instance: format!("inst.{q}"),
                },
            ));
        }
        self.line(t, format!("{smtpd}[{pid}]: connect from unknown[{ip}]"));
        self.line(
            t,
            format!("{smtpd}[{pid}]: {q}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={user}"),
        );
        self.line(
            t,
            format!("postfix/cleanup[77]: {q}: message-id=<{q}@isp.example>"),
        );
        self.line(
            t,
            format!("postfix/qmgr[78]: {q}: from=<{user}>, size=2000, nrcpt=1 (queue active)"),
        );
        self.line(t, format!("{smtpd}[{pid}]: disconnect from unknown[{ip}]"));
        match fate {
            Fate::Sent => {
                self.line(t + 1, format!("postfix/smtp[79]: {q}: to=<{rcpt}>, relay=mx.example[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)"));
                self.line(t + 1, format!("postfix/qmgr[78]: {q}: removed"));
            }
            Fate::DeferredThenBounced(after) => {
                self.line(t + 1, format!("postfix/smtp[79]: {q}: to=<{rcpt}>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to mx.example[192.0.2.1]:25: Connection timed out)"));
                self.line(t + after, format!("postfix/smtp[79]: {q}: to=<{rcpt}>, relay=mx.example[192.0.2.1]:25, delay={after}, delays={after}/0/0/0, dsn=5.1.1, status=bounced (host mx.example[192.0.2.1] said: 550 5.1.1 User unknown (in reply to RCPT TO command))"));
                self.line(t + after, format!("postfix/qmgr[78]: {q}: removed"));
            }
        }
    }

    /// The lines and requests in time order (lines of one message keep their order).
    fn sorted(mut self) -> (Vec<Line>, Vec<Timed>) {
        self.lines.sort_by_key(|(t, n, _)| (*t, *n));
        self.reqs.sort_by_key(|(t, n, _)| (*t, *n));
        (self.lines, self.reqs)
    }
}

fn scenario(base: i64) -> Log {
    let mut log = Log {
        base,
        lines: Vec::new(),
        reqs: Vec::new(),
        n: 0,
    };
    let sub = "postfix/submission/smtpd";
    // An ordinary population at home in DE, half of it also asked about by Postfix.
    for h in 0..24 {
        for u in 0..24usize {
            let t = h * 3600 + u as i64 * 60;
            let ip = format!("10.0.{u}.1");
            log.submit(
                t,
                sub,
                &format!("user{u}@isp.example"),
                &ip,
                Fate::Sent,
                u % 2 == 0,
            );
        }
    }
    // Two accounts with a history at home, then hijacked by bots in 30 countries.
    for (k, (user, smtpd, policy)) in [
        ("maria@isp.example", "postfix/smtps/smtpd", false),
        ("kurt@isp.example", sub, true),
    ]
    .into_iter()
    .enumerate()
    {
        for h in 0..8 {
            log.submit(
                h * 3600 + 1800,
                sub,
                user,
                &format!("10.0.{}.1", 40 + k),
                Fate::Sent,
                policy,
            );
        }
        let start = 10 * 3600 + k as i64 * 4 * 3600;
        for b in 0..150usize {
            let ip = format!("10.{}.{}.{}", 1 + b % 30, (b / 30) % 60, 1 + b % 250);
            log.submit(start + b as i64 * 6, smtpd, user, &ip, Fate::Sent, policy);
        }
    }
    // Deferred mail that bounces two hours later: failures only a long idle policy sees. 40,
    // not 25: with nothing delivered, `delivery-failures` weighs the share with a typical
    // sender's prior and first calls it spam at the 31st failure.
    for i in 0..40 {
        log.submit(
            3 * 3600 + i * 30,
            sub,
            "anna@isp.example",
            "10.0.60.1",
            Fate::DeferredThenBounced(7200),
            false,
        );
    }
    // Much later: every message is long idle (the same sweep closes them in both commands).
    log.line(
        5 * 86_400,
        "postfix/smtpd[9]: connect from unknown[10.0.0.9]".into(),
    );
    log
}

fn policy_request(r: &Req) -> String {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address={}\nclient_name=unknown\nhelo_name=pc\nsender={}\nrecipient={}\nrecipient_count=0\nqueue_id=\ninstance={}\nsasl_method=PLAIN\nsasl_username={}\n",
        r.ip, r.user, r.rcpt, r.instance, r.user
    )
}

fn read_alerts(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn append(p: &Path, lines: &[Line]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    let mut text = String::new();
    for (_, _, l) in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn analyze_and_serve_raise_the_same_alerts_for_the_same_log() {
    let d = tempfile::tempdir().unwrap();
    let year = jiff::Zoned::now().year();
    let base = jiff::civil::date(year, 1, 5)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    let (lines, reqs) = scenario(base).sorted();
    let geo = d.path().join("geo.csv");
    std::fs::write(&geo, geo_csv()).unwrap();
    let full = d.path().join("full.log");
    append(&full, &lines);

    // analyze: alerts, and the same alerts as incidents.
    let cfg = d.path().join("analyze.toml");
    std::fs::write(&cfg, format!("[geo]\noverrides = \"{}\"\n", geo.display())).unwrap();
    let analyze = |format: &str| {
        let out = d.path().join(format!("batch.{format}"));
        let st = Command::new(env!("CARGO_BIN_EXE_smtpscope"))
            .args(["analyze", "--format", format, "--quiet", "--tz", "UTC"])
            .args(["--year", &year.to_string(), "--config"])
            .arg(&cfg)
            .arg("-o")
            .arg(&out)
            .arg(&full)
            .status()
            .unwrap();
        assert!(st.success());
        read_alerts(&out)
    };
    let a = analyze("jsonl");
    let batch_incidents = analyze("incidents");
    let has = |det: &str, id: &str| {
        a.iter()
            .any(|x| x["detector"] == det && x["entity"]["id"] == id)
    };
    assert!(has("auth-hijack", "maria@isp.example"), "{a:#?}");
    assert!(has("auth-hijack", "kurt@isp.example"), "{a:#?}");
    assert!(has("delivery-failures", "anna@isp.example"), "{a:#?}");

    // serve: the same lines appended to a followed file in chunks, each chunk's policy
    // requests answered before its lines are written (as Postfix asks before it logs).
    let log = d.path().join("mail.log");
    std::fs::write(&log, "").unwrap();
    let live = d.path().join("live.jsonl");
    let srv = Server::start(
        d.path(),
        &format!(
            "follow = [\"{}\"]\nalerts_jsonl = \"{}\"\ntz = \"UTC\"\n[geo]\noverrides = \"{}\"\n",
            log.display(),
            live.display(),
            geo.display()
        ),
    );
    let mut conn = srv.policy_conn();
    let mut r = 0;
    let mut written = 0usize;
    for chunk in lines.chunks(2000) {
        let (t_end, n_end) = {
            let (t, n, _) = chunk.last().unwrap();
            (*t, *n)
        };
        while r < reqs.len() && (reqs[r].0, reqs[r].1) <= (t_end, n_end) {
            let ans = ask(&mut conn, &policy_request(&reqs[r].2));
            assert!(ans.starts_with("action="), "{ans}");
            r += 1;
        }
        append(&log, chunk);
        written += chunk.len();
        wait_for(60, "lines followed", || {
            (srv.metric("smtpscope_lines_total{source=\"follow\"}") >= written as f64).then_some(())
        });
    }
    assert_eq!(r, reqs.len());
    // Incidents: the store merges the alerts by the same rules (`detect::incident`) as
    // `analyze`; wait until it committed every alert.
    let key =
        |kind: &serde_json::Value,
         id: &serde_json::Value,
         det: &serde_json::Value,
         n: &serde_json::Value,
         score: &serde_json::Value| { format!("{kind} {id} {det} {n} {score}") };
    let mut want: Vec<String> = batch_incidents
        .iter()
        .map(|i| {
            key(
                &i["entity"]["kind"],
                &i["entity"]["id"],
                &i["detector"],
                &i["alerts"],
                &i["score"],
            )
        })
        .collect();
    want.sort();
    let live_incidents = wait_for(30, "incidents stored", || {
        let (_, body) = srv.get("/api/incidents?limit=1000");
        let v: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
        let n: i64 = v.iter().map(|i| i["alerts"].as_i64().unwrap_or(0)).sum();
        (n as usize >= a.len()).then_some(v)
    });
    let mut got: Vec<String> = live_incidents
        .iter()
        .map(|i| {
            key(
                &i["entity_kind"],
                &i["entity_id"],
                &i["detector"],
                &i["alerts"],
                &i["score"],
            )
        })
        .collect();
    got.sort();
    assert_eq!(want, got);
    // The same entities contained by the policy.
    let mut want: Vec<String> = batch_incidents
        .iter()
        .filter(|i| {
            i["timeline"]
                .as_array()
                .is_some_and(|t| t.iter().any(|s| s["step"] == "contained"))
        })
        .map(|i| format!("{} {}", i["entity"]["kind"], i["entity"]["id"]))
        .collect();
    want.sort();
    let (_, body) = srv.get("/api/containment");
    let c: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let mut got: Vec<String> = c
        .iter()
        .map(|e| format!("{} {}", e["kind"], e["id"]))
        .collect();
    got.sort();
    assert!(!want.is_empty());
    assert_eq!(want, got);
    // Every line is processed (the engine counts a line when it fed it, and hands its alerts to
    // the sink in the same step); the sink's file is complete once the service stopped.
    assert_eq!(srv.term(), 0);
    let b = read_alerts(&live);
    assert_eq!(a.len(), b.len(), "analyze {a:#?}\nserve {b:#?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
}
