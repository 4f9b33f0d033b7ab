//! `helo-anomaly` on Postfix log lines (issue 9, classes 3 and 7): a HELO that names somebody
//! else's domain is flagged; a server naming its own domain, a mailing list and a business NAT's
//! many PCs stay quiet.

use detect::{Alert, Config, Detector, Engine};
use maillog::{LineParser, TimeContext};

/// A Postfix log being written: every line goes through the real parser and engine.
struct Log {
    engine: Engine,
    parser: LineParser,
    secs: u64,
    n: u64,
    /// Pack every entity's state after each line (`Engine::freeze_idle`).
    freeze: bool,
}

impl Log {
    fn new(cfg: Config) -> Self {
        Log {
            engine: Engine::new(cfg),
            parser: LineParser::new(TimeContext::new(2026, jiff::tz::TimeZone::UTC)),
            secs: 10 * 3600,
            n: 0,
            freeze: false,
        }
    }

    fn line(&mut self, text: &str) {
        let (h, m, s) = (self.secs / 3600, (self.secs / 60) % 60, self.secs % 60);
        let line = format!("Nov 20 {h:02}:{m:02}:{s:02} smtp1 {text}");
        let p = self.parser.parse(&line);
        if let (Some(hd), Some(ev)) = (&p.header, &p.event) {
            self.engine.feed(hd.ts, hd.host, hd.program, hd.pid, ev);
        }
        if self.freeze {
            self.engine.freeze_idle(maillog::Ts(i64::MAX));
        }
    }

    /// Queue id `q` from `from` goes out: each recipient with its remote reply (`None`:
    /// delivered; otherwise bounced with `dsn`), then removed.
    fn deliver(&mut self, q: &str, from: &str, rcpts: &[(String, Option<&str>)], dsn: &str) {
        self.line(&format!(
            "postfix/qmgr[9]: {q}: from=<{from}>, size=2000, nrcpt={} (queue active)",
            rcpts.len()
        ));
        for (to, reply) in rcpts {
            let dom = to.rsplit_once('@').map(|x| x.1).unwrap_or("x.example");
            let tail = match reply {
                None => "dsn=2.0.0, status=sent (250 2.0.0 Ok)".to_string(),
                Some(r) => format!(
                    "dsn={dsn}, status=bounced (host mx.{dom}[198.51.100.9] said: {r} (in reply to end of DATA command))"
                ),
            };
            self.line(&format!(
                "postfix/smtp[77]: {q}: to=<{to}>, relay=mx.{dom}[198.51.100.9]:25, delay=1, delays=0/0/0/1, {tail}"
            ));
        }
        self.line(&format!("postfix/qmgr[9]: {q}: removed"));
    }

    /// One message relayed for `client` (`host[ip]`), each recipient with its remote reply
    /// (`None`: delivered).
    fn message(&mut self, client: &str, helo: &str, from: &str, rcpts: &[(String, Option<&str>)]) {
        self.n += 1;
        self.secs += 20;
        let q = format!("{:X}B", 0x1000 + self.n);
        let pid = 100 + self.n % 7;
        for (to, _) in rcpts {
            self.line(&format!(
                "postfix/smtpd[{pid}]: NOQUEUE: permit: RCPT from {client}: action=permit_mynetworks for Client host={client}; from=<{from}> to=<{to}> proto=ESMTP helo=<{helo}>"
            ));
        }
        self.line(&format!("postfix/smtpd[{pid}]: {q}: client={client}"));
        self.deliver(&q, from, rcpts, "5.7.1");
    }

    /// One message from the internet delivered to a local mailbox over LMTP.
    fn incoming(&mut self, client: &str, from: &str, to: &str) {
        self.n += 1;
        self.secs += 20;
        let q = format!("{:X}C", 0x1000 + self.n);
        self.line(&format!("postfix/smtpd[50]: {q}: client={client}"));
        self.line(&format!(
            "postfix/qmgr[9]: {q}: from=<{from}>, size=3000, nrcpt=1 (queue active)"
        ));
        self.line(&format!(
            "postfix/lmtp[60]: {q}: to=<{to}>, relay=mail.isp.example[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Saved)"
        ));
        self.line(&format!("postfix/qmgr[9]: {q}: removed"));
    }

    /// The time the next line will carry.
    fn now(&self) -> maillog::Ts {
        let (h, m, s) = (self.secs / 3600, (self.secs / 60) % 60, self.secs % 60);
        let t = jiff::civil::date(2026, 11, 20)
            .at(h as i8, m as i8, s as i8, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .expect("valid time");
        maillog::Ts::from_secs(t.timestamp().as_second())
    }

    /// One message relayed for unauthenticated `ip` as Postfix logs mail it accepts: no HELO
    /// anywhere in the log (`client=unknown[ip]` only). Its session's HELO reaches us in the
    /// policy requests (one per recipient, at `RCPT`), `policy_lag` seconds before the log's
    /// `client=` line; `policy_ip` is the address the requests give.
    fn postfix_message(
        &mut self,
        ip: &str,
        policy_ip: &str,
        policy_lag: u64,
        helo: &str,
        from: &str,
        rcpts: &[(String, Option<&str>)],
    ) {
        self.n += 1;
        self.secs += 20;
        let q = format!("{:X}D", 0x1000 + self.n);
        let pid = 100 + self.n % 7;
        self.secs -= policy_lag;
        let at = self.now();
        self.secs += policy_lag;
        let instance = format!("{pid}.{}", self.n);
        for (to, _) in rcpts {
            let ev = maillog::Event::Policy {
                protocol_state: "RCPT",
                client: maillog::Peer {
                    host: Some("unknown"),
                    ip: Some(policy_ip),
                    port: None,
                },
                helo: Some(helo),
                sender: Some(from),
                recipient: Some(to),
                recipient_count: Some(0),
                sasl_username: None,
                sasl_method: None,
                qid: None,
                instance: Some(&instance),
                size: None,
            };
            self.engine.feed_policy(at, &ev);
        }
        self.line(&format!("postfix/smtpd[{pid}]: {q}: client=unknown[{ip}]"));
        self.deliver(&q, from, rcpts, "5.7.26");
    }

    fn helo_alerts(mut self) -> Vec<Alert> {
        self.engine.finish();
        self.engine
            .take_alerts()
            .into_iter()
            .filter(|a| a.detector == Detector::HeloAnomaly)
            .collect()
    }
}

fn ours() -> Config {
    let mut cfg = Config::default();
    cfg.network.own_networks = vec!["192.0.2.0/24".parse().expect("valid network")];
    cfg.network.local_domains = vec!["isp.example".into()];
    cfg
}

/// Recipients of message `i` across many domains; every `fail_every`th refused with `reply`.
fn victims(
    i: usize,
    reply: &'static str,
    fail_every: usize,
) -> Vec<(String, Option<&'static str>)> {
    (0..3)
        .map(|k| {
            let n = i * 3 + k;
            let to = format!("p{n}@dom{}.example", n % 40);
            (to, n.is_multiple_of(fail_every).then_some(reply))
        })
        .collect()
}

/// Issue 9 class 7: an infected customer on port 25, HELO and MAIL FROM forged to a bank's
/// domain, hundreds of messages; the banks' receivers refuse it citing DMARC.
#[test]
fn issue_9_class_7_bank_forgery_refused_by_dmarc_is_flagged() {
    let mut log = Log::new(ours());
    for i in 0..200 {
        log.message(
            "unknown[192.0.2.50]",
            "bank.example",
            "security@bank.example",
            &victims(
                i,
                "550 5.7.1 Unauthenticated email from bank.example is not accepted due to domain's DMARC policy",
                4,
            ),
        );
    }
    let a = log.helo_alerts();
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].entity.id, "192.0.2.50");
    let samples = a[0].evidence["samples"].as_array().expect("samples");
    assert!(
        samples
            .iter()
            .any(|s| s["forged_because"] == "auth-refused"),
        "{samples:#?}"
    );
}

/// Class 7 again, with ordinary failures only: the bank's own servers were seen delivering to
/// us from the internet, so `bank.example` is somebody else's.
#[test]
fn issue_9_class_7_bank_whose_servers_we_have_seen_is_flagged() {
    let mut log = Log::new(ours());
    log.incoming(
        "mx2.bank.example[203.0.113.25]",
        "statements@bank.example",
        "anna@isp.example",
    );
    for i in 0..200 {
        log.message(
            "unknown[192.0.2.51]",
            "bank.example",
            "service@bank.example",
            &victims(i, "550 5.1.1 User unknown", 3),
        );
    }
    let a = log.helo_alerts();
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].entity.id, "192.0.2.51");
}

/// A customer line claiming to be Gmail's server.
#[test]
fn freemail_domain_in_helo_from_a_customer_line_is_flagged() {
    let mut log = Log::new(ours());
    for i in 0..20 {
        log.message(
            "unknown[192.0.2.52]",
            "gmail.com",
            &format!("jsmith{i}@gmail.com"),
            &victims(i, "550 5.1.1 User unknown", 2),
        );
    }
    assert_eq!(log.helo_alerts().len(), 1);
}

/// Ratware copies each message's sender domain into its HELO.
#[test]
fn helo_following_the_sender_domain_is_flagged() {
    let mut log = Log::new(ours());
    for i in 0..12 {
        let d = format!("shop{}.example", i % 4);
        log.message(
            "unknown[192.0.2.53]",
            &d,
            &format!("offers@{d}"),
            &victims(i, "550 5.1.1 User unknown", 2),
        );
    }
    assert_eq!(log.helo_alerts().len(), 1);
}

/// Issue 9 class 3: a customer MTA whose HELO names its own domain, a mailing-list server of
/// one organisation, and a list host with a constant first label stay quiet, however much they
/// send.
#[test]
fn issue_9_class_3_servers_naming_their_own_domain_are_quiet() {
    let mut log = Log::new(ours());
    for i in 0..300 {
        log.message(
            "unknown[192.0.2.60]",
            "acme.example",
            "news@acme.example",
            &victims(i, "550 5.1.1 User unknown", 25),
        );
        log.message(
            "unknown[192.0.2.61]",
            "lists.univ.example",
            "physics-bounces@lists.univ.example",
            &[
                (format!("prof{i}@univ.example"), None),
                (format!("alum{i}@dom{}.example", i % 30), None),
            ],
        );
        log.message(
            "unknown[192.0.2.62]",
            "lists.shop.example",
            "newsletter@shop.example",
            &victims(i, "550 5.1.1 User unknown", 30),
        );
    }
    let a = log.helo_alerts();
    assert!(a.is_empty(), "{a:#?}");
}

/// Issue 9 class 3: a business NAT, thirty PCs behind one address, each with its own name.
#[test]
fn issue_9_class_3_business_nat_with_many_pcs_is_quiet() {
    let mut log = Log::new(ours());
    for i in 0..120 {
        let pc = i % 30;
        let helo = if pc % 3 == 0 {
            format!("[10.0.0.{}]", 10 + pc)
        } else {
            format!("DESKTOP-{:04X}K{}", 0x1A2B + pc * 77, pc)
        };
        log.message(
            "unknown[192.0.2.70]",
            &helo,
            &format!("staff{pc}@office.example"),
            &[(format!("client{i}@dom{}.example", i % 25), None)],
        );
    }
    let a = log.helo_alerts();
    assert!(a.is_empty(), "{a:#?}");
}

/// A spam bot changing its HELO to random words and other hosts' address literals.
#[test]
fn bot_with_random_helos_is_flagged_as_changing() {
    let mut log = Log::new(ours());
    let helos = [
        "qxkzvbwt",
        "[203.0.113.7]",
        "zrtplmq",
        "[198.51.100.44]",
        "vbnkrtzs",
        "[203.0.113.99]",
    ];
    for i in 0..12 {
        log.message(
            "unknown[192.0.2.80]",
            helos[i % helos.len()],
            &format!("x{i}@sender{i}.example"),
            &victims(i, "550 5.1.1 User unknown", 2),
        );
    }
    let a = log.helo_alerts();
    assert!(!a.is_empty());
    let signs = a.last().expect("one").evidence["signs"].to_string();
    assert!(signs.contains("changing"), "{signs}");
}

impl Log {
    /// One message our own server refused at RCPT for the client's HELO (Postfix
    /// `reject_non_fqdn_helo_hostname`): no queue id, nothing delivered or bounced.
    fn refused_for_helo(&mut self, client: &str, helo: &str, from: &str, rcpts: &[String]) {
        self.n += 1;
        self.secs += 20;
        let pid = 100 + self.n % 7;
        for to in rcpts {
            self.line(&format!(
                "postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from {client}: 504 5.5.2 <{helo}>: Helo command rejected: need fully-qualified hostname; from=<{from}> to=<{to}> proto=ESMTP helo=<{helo}>"
            ));
        }
    }
}

/// Issue 9 class 7: an infected customer PC on port 25 greeting with a Windows name, every
/// RCPT refused by our own server for that HELO, so no recipient ever fails elsewhere; the bot
/// makes up a new sender at a new domain for every message.
#[test]
fn issue_9_class_7_bot_refused_for_its_helo_rotating_senders_is_flagged() {
    let mut log = Log::new(ours());
    for i in 0..60 {
        let rcpts: Vec<String> = (0..2)
            .map(|k| format!("v{i}x{k}@dom{}.example", (i + k) % 30))
            .collect();
        log.refused_for_helo(
            "dsl-192-0-2-90.pool.isp.example[192.0.2.90]",
            "WIN-K3P2QX7",
            &format!("garten{}@werk{}.example", i * 37 % 1000, i),
            &rcpts,
        );
    }
    let a = log.helo_alerts();
    assert!(!a.is_empty(), "the bot is missed");
    assert_eq!(a[0].entity.id, "192.0.2.90");
    let signs = a.last().expect("one").evidence["signs"].to_string();
    assert!(signs.contains("rotating-senders"), "{signs}");
}

/// The trap of the rule above: a business NAT whose PCs greet with their Windows names and are
/// refused for it (a set-up fault), each PC's user sending as their work address and two
/// private ones — three sender domains per PC, thirty PCs behind one address.
#[test]
fn business_nat_refused_for_helo_with_a_few_identities_per_pc_is_quiet() {
    let mut log = Log::new(ours());
    for i in 0..240 {
        let pc = i % 30;
        let from = match (i / 30) % 3 {
            0 => format!("staff{pc}@office.example"),
            1 => format!("person{pc}@freemail{}.example", pc % 4),
            _ => format!("p{pc}@club{}.example", pc % 5),
        };
        log.refused_for_helo(
            "unknown[192.0.2.71]",
            &format!("DESKTOP-{:04X}K{}", 0x1A2B + pc * 77, pc),
            &from,
            &[format!("client{i}@dom{}.example", i % 25)],
        );
    }
    let a = log.helo_alerts();
    assert!(a.is_empty(), "{a:#?}");
}

const DMARC_REFUSAL: &str =
    "550 5.7.26 Unauthenticated email from securebank.example is not accepted due to domain's DMARC policy";

/// Tests e2e s4b on log lines: an infected customer forges HELO and MAIL FROM to a bank's
/// domain; Postfix accepts the mail and logs no HELO for it, the bank's receivers refuse a third
/// citing DMARC. The HELO is in the policy requests of the client's sessions, and the log's
/// messages from that address take it: flagged.
#[test]
fn forged_helo_only_in_policy_requests_is_flagged() {
    let mut log = Log::new(ours());
    for i in 0..60 {
        log.postfix_message(
            "192.0.2.8",
            "192.0.2.8",
            1,
            "securebank.example",
            "alerts@securebank.example",
            &[(
                format!("user{i}@dom{}.example", i % 20),
                (i % 3 == 0).then_some(DMARC_REFUSAL),
            )],
        );
    }
    let lent = log.engine.claim_stats().helo_lent;
    let a = log.helo_alerts();
    assert_eq!(lent, 60, "every message took its session's HELO");
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].entity.id, "192.0.2.8");
    let samples = a[0].evidence["samples"].as_array().expect("samples");
    assert!(
        samples
            .iter()
            .any(|s| s["forged_because"] == "auth-refused"),
        "{samples:#?}"
    );
}

/// A policy request's HELO belongs to its own client's session: another address's messages,
/// and messages logged more than the link time after the request, do not take it.
#[test]
fn policy_helo_of_another_client_or_too_old_is_not_lent() {
    for (policy_ip, lag) in [
        ("192.0.2.9", 1),
        ("192.0.2.8", detect::claims::POLICY_LINK_SECS as u64 + 5),
    ] {
        let mut log = Log::new(ours());
        for i in 0..60 {
            log.postfix_message(
                "192.0.2.8",
                policy_ip,
                lag,
                "securebank.example",
                "alerts@securebank.example",
                &[(
                    format!("user{i}@dom{}.example", i % 20),
                    (i % 3 == 0).then_some(DMARC_REFUSAL),
                )],
            );
        }
        assert_eq!(log.engine.claim_stats().helo_lent, 0, "{policy_ip} {lag}");
        assert!(log.helo_alerts().is_empty(), "{policy_ip} {lag}");
    }
}

/// One message of a burst: the HELO of its session, its sender, its one recipient and the
/// remote reply (`None`: delivered; a recipient in `isp.example` is delivered to its mailbox).
type BurstMessage = (String, String, String, Option<&'static str>);

impl Log {
    /// Back-to-back SMTP transactions of unauthenticated `ip`, as Postfix reports them when the
    /// log follower lags: every policy request (at `RCPT`, one `instance` per transaction, each
    /// with its own session's HELO) is answered before the log shows any of their messages; then
    /// the log's lines of those messages, in order, a second apart, none with a HELO.
    fn burst(&mut self, ip: &str, msgs: &[BurstMessage]) {
        let at = self.now();
        for (i, (helo, from, to, _)) in msgs.iter().enumerate() {
            let instance = format!("burst.{}.{i}", self.n);
            let ev = maillog::Event::Policy {
                protocol_state: "RCPT",
                client: maillog::Peer {
                    host: Some("unknown"),
                    ip: Some(ip),
                    port: None,
                },
                helo: Some(helo),
                sender: Some(from),
                recipient: Some(to),
                recipient_count: Some(0),
                sasl_username: None,
                sasl_method: None,
                qid: None,
                instance: Some(&instance),
                size: None,
            };
            self.engine.feed_policy(at, &ev);
        }
        for (_, from, to, reply) in msgs {
            self.n += 1;
            self.secs += 1;
            let q = format!("{:X}E", 0x1000 + self.n);
            self.line(&format!("postfix/smtpd[50]: {q}: client=unknown[{ip}]"));
            if to.ends_with("@isp.example") {
                self.line(&format!(
                    "postfix/qmgr[9]: {q}: from=<{from}>, size=3000, nrcpt=1 (queue active)"
                ));
                self.line(&format!(
                    "postfix/lmtp[60]: {q}: to=<{to}>, relay=mail.isp.example[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Saved)"
                ));
                self.line(&format!("postfix/qmgr[9]: {q}: removed"));
            } else {
                self.deliver(&q, from, &[(to.clone(), *reply)], "5.1.1");
            }
        }
    }
}

/// E2e s8f on log lines: an internet host opens 4 back-to-back sessions to our MX, each with a
/// new invented HELO, 3 messages each, all delivered (so the HELOs are only in the policy
/// requests). Every message takes its own session's HELO, though the log is read after all the
/// requests: incoming-helo "several names" with the 4 names (`max_helos` 4 here, so that the
/// alert, raised once, comes at the fourth). Keeping one latest HELO per address gave all 12
/// messages the last name, and nothing fired.
#[test]
fn an_mx_client_rotating_helos_in_back_to_back_sessions_shows_every_name() {
    let mut cfg = ours();
    cfg.incoming.max_helos = 4;
    let mut log = Log::new(cfg);
    let names: Vec<String> = (0..4)
        .map(|s| format!("pc{s}.invalid-isp.example"))
        .collect();
    let msgs: Vec<BurstMessage> = (0..12)
        .map(|i| {
            let (s, m) = (i / 3, i % 3);
            (
                names[s].clone(),
                format!("promo{s}@deals{m}.example"),
                format!("user{i}@isp.example"),
                None,
            )
        })
        .collect();
    log.burst("198.18.12.7", &msgs);
    assert_eq!(log.engine.claim_stats().helo_lent, 12);
    log.engine.finish();
    let a: Vec<Alert> = log
        .engine
        .take_alerts()
        .into_iter()
        .filter(|a| a.detector == Detector::IncomingHelo)
        .collect();
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].entity.id, "198.18.12.7");
    assert!(a[0].summary.contains("several names"), "{}", a[0].summary);
    assert_eq!(a[0].evidence["distinct_helos"], 4);
    assert_eq!(a[0].evidence["helos"], serde_json::json!(names));
}

/// HELO = MAIL FROM domain pairs each message with its own session's HELO: an internet host
/// whose HELO follows its forged sender domain over 4 back-to-back sessions (3 messages each)
/// shows it on every message, though the log is read after all the requests. Lending the
/// latest HELO gave every message the last session's name: one name, matching 3 messages,
/// which is a server greeting with its own domain, and the sign did not fire.
#[test]
fn an_mx_client_helo_following_its_sender_is_paired_per_session() {
    let mut log = Log::new(ours());
    let msgs: Vec<BurstMessage> = (0..12)
        .map(|i| {
            let s = i / 3;
            (
                format!("deals{s}.example"),
                format!("promo{i}@deals{s}.example"),
                format!("user{i}@isp.example"),
                None,
            )
        })
        .collect();
    log.burst("198.18.12.8", &msgs);
    log.engine.finish();
    let a: Vec<Alert> = log
        .engine
        .take_alerts()
        .into_iter()
        .filter(|a| a.detector == Detector::IncomingHelo)
        .collect();
    assert!(!a.is_empty(), "missed");
    let signs = a[0].evidence["signs"].to_string();
    assert!(signs.contains("from-domain"), "{signs}");
}

/// The same for helo-anomaly on a customer line: ratware copying each message's sender domain
/// into its HELO, a new session per domain, back to back. With each message paired to its own
/// session's HELO the claim follows 3 sender domains (`MIN_FOLLOWED_DOMAINS`): flagged. The
/// latest HELO lent to every message followed one domain only.
#[test]
fn a_customer_helo_following_its_sender_is_paired_per_session() {
    let mut log = Log::new(ours());
    let msgs: Vec<BurstMessage> = (0..12)
        .map(|i| {
            let s = i / 3;
            (
                format!("shop{s}.example"),
                format!("offers{i}@shop{s}.example"),
                format!("p{i}@dom{i}.example"),
                (i % 2 == 0).then_some("550 5.1.1 User unknown"),
            )
        })
        .collect();
    log.burst("192.0.2.53", &msgs);
    assert_eq!(log.engine.claim_stats().helo_lent, 12);
    let a = log.helo_alerts();
    assert_eq!(a.len(), 1, "{a:#?}");
    let signs = a[0].evidence["signs"].to_string();
    assert!(signs.contains("forged-sender-domain"), "{signs}");
}

/// An entity's state packed between its messages (`Engine::freeze_idle`, which `flush_idle`
/// does for entities idle an hour) is the state it was: the same alerts and evidence (its HELO
/// samples, signs and distinct HELOs) as when it stays live.
#[test]
fn packed_state_gives_the_same_helo_alerts() {
    let run = |freeze: bool| {
        let mut log = Log::new(ours());
        log.freeze = freeze;
        let helos = ["qxkzvbwt", "[203.0.113.7]", "zrtplmq", "vbnkrtzs"];
        for i in 0..16 {
            log.message(
                "unknown[192.0.2.80]",
                helos[i % helos.len()],
                &format!("x{i}@sender{i}.example"),
                &victims(i, "550 5.1.1 User unknown", 2),
            );
            let d = format!("shop{}.example", i % 4);
            log.message(
                "unknown[192.0.2.53]",
                &d,
                &format!("offers@{d}"),
                &victims(i, "550 5.1.1 User unknown", 2),
            );
        }
        if freeze {
            assert!(log.engine.frozen().helo > 0);
        }
        let a = log.helo_alerts();
        assert!(a.len() >= 2, "{a:#?}");
        serde_json::to_string(&a).expect("json")
    };
    assert_eq!(run(true), run(false));
}
