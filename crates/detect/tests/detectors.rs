//! Detector behaviour on hand-made record streams: the positives fire, the traps stay quiet.
//!
//! Records are fed through the real engine by synthesizing the events Postfix would log, so the
//! correlator, direction inference and detectors are exercised together.

use detect::{Config, Detector, Engine, EntityKind};
use maillog::{DeliveryStatus, Event, Peer, Ts};

const T0: i64 = 1_763_600_000;

struct Feed {
    e: Engine,
    n: u64,
}

struct Msg<'a> {
    t: i64,
    user: Option<&'a str>,
    ip: &'a str,
    helo: Option<&'a str>,
    from: &'a str,
    rcpts: Vec<(String, DeliveryStatus)>,
}

/// One recipient with the details a plain [`Msg`] recipient gets by default.
struct Rc<'a> {
    to: String,
    orig_to: Option<&'a str>,
    status: DeliveryStatus,
    dsn: &'a str,
    reply: &'a str,
}

/// A remote server's "no such user".
const UNKNOWN_USER: (&str, &str) = (
    "5.1.1",
    "host mx.far.example[192.0.2.9] said: 550 5.1.1 User unknown (in reply to RCPT TO command)",
);
/// A remote server's spam refusal.
const REFUSED_AS_SPAM: (&str, &str) = (
    "5.7.1",
    "host mx.far.example[192.0.2.9] said: 554 5.7.1 Message rejected as spam (in reply to end of DATA command)",
);
const DELIVERED: (&str, &str) = ("2.0.0", "250 2.0.0 Ok");

fn rc<'a>(to: String, ok: bool, fail: (&'a str, &'a str)) -> Rc<'a> {
    let (status, (dsn, reply)) = if ok {
        (DeliveryStatus::Sent, DELIVERED)
    } else {
        (DeliveryStatus::Bounced, fail)
    };
    Rc {
        to,
        orig_to: None,
        status,
        dsn,
        reply,
    }
}

impl Feed {
    fn new(cfg: Config) -> Self {
        Feed {
            e: Engine::new(cfg),
            n: 0,
        }
    }
    fn msg(&mut self, mut m: Msg<'_>) {
        let rcs: Vec<Rc<'_>> = std::mem::take(&mut m.rcpts)
            .into_iter()
            .map(|(to, status)| {
                let (dsn, reply) = match status {
                    DeliveryStatus::Sent => DELIVERED,
                    DeliveryStatus::Bounced => UNKNOWN_USER,
                    _ => (
                        "4.4.1",
                        "connect to mx.far.example[192.0.2.9]:25: Connection timed out",
                    ),
                };
                Rc {
                    to,
                    orig_to: None,
                    status,
                    dsn,
                    reply,
                }
            })
            .collect();
        self.msg_rc(m, rcs);
    }
    fn msg_rc(&mut self, m: Msg<'_>, rcs: Vec<Rc<'_>>) {
        self.n += 1;
        let qid = format!("Q{:08X}", self.n);
        let ts = |d: i64| Ts::from_secs(T0 + m.t + d);
        let peer = Peer {
            host: Some("client.example"),
            ip: Some(m.ip),
            port: None,
        };
        let pid = Some(1000 + (self.n % 50) as u32);
        if let Some(h) = m.helo {
            self.e.feed(
                ts(0),
                "smtp1",
                "postfix/smtpd",
                pid,
                &Event::Check {
                    qid: Some(&qid),
                    action: maillog::Action::Permit,
                    stage: Some("RCPT"),
                    client: Some(peer),
                    reason: "permit",
                    from: Some(m.from),
                    to: None,
                    proto: Some("ESMTP"),
                    helo: Some(h),
                },
            );
        }
        self.e.feed(
            ts(0),
            "smtp1",
            "postfix/smtpd",
            pid,
            &Event::Client {
                qid: &qid,
                client: peer,
                sasl_method: m.user.map(|_| "PLAIN"),
                sasl_username: m.user,
                uid: None,
                from: None,
                orig_qid: None,
            },
        );
        self.e.feed(
            ts(1),
            "smtp1",
            "postfix/qmgr",
            Some(9),
            &Event::Queued {
                qid: &qid,
                from: m.from,
                size: Some(2199),
                nrcpt: Some(rcs.len() as u32),
                client: None,
                helo: None,
                auth_user: None,
                local_user: None,
                proto: None,
                message_id: None,
                parent: None,
            },
        );
        for r in &rcs {
            self.e.feed(
                ts(2),
                "smtp1",
                "postfix/smtp",
                Some(77),
                &Event::Delivery {
                    qid: &qid,
                    to: &r.to,
                    orig_to: r.orig_to,
                    relay: Some("mx.far.example[192.0.2.9]:25"),
                    transport: Some("smtp"),
                    delay: Some(maillog::Delay("1")),
                    delays: None,
                    dsn: Some(r.dsn),
                    status: r.status,
                    reply: Some(r.reply),
                },
            );
        }
        self.e.feed(
            ts(3),
            "smtp1",
            "postfix/qmgr",
            Some(9),
            &Event::Removed { qid: &qid },
        );
    }
    fn alerts(mut self) -> Vec<detect::Alert> {
        self.e.finish();
        self.e.take_alerts()
    }
}

fn rcpt(i: usize, dom: &str, ok: bool) -> (String, DeliveryStatus) {
    (
        format!("r{i}@{dom}"),
        if ok {
            DeliveryStatus::Sent
        } else {
            DeliveryStatus::Bounced
        },
    )
}

#[test]
fn spammer_with_many_failures_is_flagged() {
    let mut f = Feed::new(Config::default());
    for i in 0..80 {
        f.msg(Msg {
            t: i * 60,
            user: Some("hijacked@isp.example"),
            ip: "198.51.100.20",
            helo: None,
            from: "hijacked@isp.example",
            rcpts: vec![rcpt(i as usize, "victims.example", i % 5 == 0)],
        });
    }
    let a = f.alerts();
    let df: Vec<_> = a
        .iter()
        .filter(|a| a.detector == Detector::DeliveryFailures)
        .collect();
    assert!(!df.is_empty(), "{a:?}");
    assert_eq!(df[0].entity.kind, EntityKind::Account);
    assert_eq!(df[0].entity.id, "hijacked@isp.example");
    // Fired once more than 20 failures were seen AND their share, weighed with a typical
    // sender's 2% as a prior worth 100 recipients, reached 25%: 80% of its mail fails, so
    // (0.8 n + 2) / (n + 100) >= 0.25 at the 42nd message, the 34th failure.
    assert_eq!(df[0].evidence["failed_recipients"], 34);
    assert!(df[0].evidence["estimated_failure_share"].as_f64().unwrap() >= 0.25);
    assert!(df[0].evidence["sample_messages"].as_array().unwrap().len() > 3);
}

#[test]
fn twenty_failures_are_not_more_than_twenty() {
    let mut f = Feed::new(Config::default());
    for i in 0..20 {
        f.msg(Msg {
            t: i * 600,
            user: Some("typo-prone@isp.example"),
            ip: "198.51.100.21",
            helo: None,
            from: "typo-prone@isp.example",
            rcpts: vec![rcpt(i as usize, "x.example", false)],
        });
    }
    assert!(f.alerts().is_empty());
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let mut f = Feed::new(Config::default());
    for i in 0..40 {
        f.msg(Msg {
            t: i * 7200, // one every two hours: 12 a day
            user: Some("slow@isp.example"),
            ip: "198.51.100.22",
            helo: None,
            from: "slow@isp.example",
            rcpts: vec![rcpt(i as usize, "x.example", false)],
        });
    }
    assert!(f.alerts().is_empty());
}

#[test]
fn mailing_list_with_ten_percent_failures_is_quiet() {
    let mut f = Feed::new(Config::default());
    // A list of 300 subscribers, 10% dead, posting 3 times a day.
    for post in 0..3 {
        for chunk in 0..6 {
            let rcpts = (0..50).map(|j| {
                let i = chunk * 50 + j;
                rcpt(i, "subscribers.example", i % 10 != 0)
            });
            f.msg(Msg {
                t: post * 3 * 3600 + chunk as i64 * 10,
                user: Some("list-owner@club.example"),
                ip: "198.51.100.30",
                helo: Some("mail.club.example"),
                from: "announce@club.example",
                rcpts: rcpts.collect(),
            });
        }
    }
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn two_lists_from_one_customer_raise_multiple_lists() {
    let mut f = Feed::new(Config::default());
    for (k, from) in ["offers@shop-a.example", "deals@shop-b.example"]
        .iter()
        .enumerate()
    {
        for chunk in 0..4 {
            f.msg(Msg {
                t: k as i64 * 600 + chunk * 10,
                user: Some("reseller@isp.example"),
                ip: "198.51.100.31",
                helo: None,
                from,
                rcpts: (0..50)
                    .map(|j| rcpt(chunk as usize * 50 + j, "harvest.example", j % 12 != 0))
                    .collect(),
            });
        }
    }
    let a = f.alerts();
    let ml: Vec<_> = a
        .iter()
        .filter(|a| a.detector == Detector::MultipleLists)
        .collect();
    assert_eq!(ml.len(), 1, "{a:#?}");
    assert_eq!(ml[0].evidence["lists"].as_array().unwrap().len(), 2);
    // The wire names stay those alerts were stored with before the evidence was typed.
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(&ml[0].evidence),
        ["lists", "max_failure_ratio", "min_recipients"]
    );
    assert_eq!(
        keys(&ml[0].evidence["lists"][0]),
        [
            "delivered",
            "distinct_recipients",
            "failed",
            "first",
            "last",
            "messages",
            "repeat_deliveries",
            "sender"
        ]
    );
    let Some(detect::evidence::Evidence::MultipleLists(e)) = detect::evidence::Evidence::of(ml[0])
    else {
        panic!("not typed: {:?}", ml[0].evidence);
    };
    let senders: Vec<&str> = e.lists.iter().map(|l| l.sender.as_str()).collect();
    assert_eq!(senders, ["offers@shop-a.example", "deals@shop-b.example"]);
    assert!(a.iter().all(|a| a.detector != Detector::DeliveryFailures));
}

#[test]
fn big_clean_mailshot_and_multi_domain_business_are_quiet() {
    let mut f = Feed::new(Config::default());
    // 2,000 recipients, 3% fail: volume alone is no spam sign.
    for chunk in 0..40 {
        f.msg(Msg {
            t: chunk * 30,
            user: Some("bakery@isp.example"),
            ip: "198.51.100.40",
            helo: Some("DESKTOP-4F2K1"),
            from: "news@bakery.example",
            rcpts: (0..50)
                .map(|j| rcpt(chunk as usize * 50 + j, "customers.example", j % 33 != 0))
                .collect(),
        });
    }
    // A business that owns several domains and sends ordinary mail from all of them.
    for i in 0..60 {
        let from = [
            "boss@acme.example",
            "sales@acme-shop.example",
            "info@acme.de.example",
        ][i % 3];
        f.msg(Msg {
            t: i as i64 * 300,
            user: Some("acme@isp.example"),
            ip: "198.51.100.41",
            helo: Some("office.acme.example"),
            from,
            rcpts: vec![rcpt(i, "partner.example", i % 20 != 0)],
        });
    }
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn bounces_from_null_sender_do_not_count() {
    let mut f = Feed::new(Config::default());
    for i in 0..50 {
        f.msg(Msg {
            t: i * 60,
            user: None,
            ip: "198.51.100.50",
            helo: Some("mx.customer.example"),
            from: "",
            rcpts: vec![rcpt(i as usize, "forged.example", false)],
        });
    }
    assert!(f.alerts().is_empty());
}

#[test]
fn autoresponder_replies_are_discounted() {
    let mut f = Feed::new(Config::default());
    for i in 0..50 {
        f.msg(Msg {
            t: i * 60,
            user: Some("holiday@isp.example"),
            ip: "198.51.100.51",
            helo: None,
            from: "vacation-reply@isp.example",
            rcpts: vec![rcpt(i as usize, "forged-senders.example", false)],
        });
    }
    assert!(f.alerts().is_empty());
}

#[test]
fn reply_to_incoming_spam_is_discounted() {
    let mut f = Feed::new(Config::default());
    for i in 0..30 {
        let spammer = format!("r{i}@forged.example");
        // Incoming spam delivered locally to pat@isp.example…
        let qid = format!("IN{i:06}");
        let ts = Ts::from_secs(T0 + i * 60);
        f.e.feed(
            ts,
            "smtp1",
            "postfix/smtpd",
            Some(5),
            &Event::Client {
                qid: &qid,
                client: Peer {
                    host: Some("bot.example"),
                    ip: Some("203.0.113.99"),
                    port: None,
                },
                sasl_method: None,
                sasl_username: None,
                uid: None,
                from: None,
                orig_qid: None,
            },
        );
        f.e.feed(
            ts,
            "smtp1",
            "postfix/qmgr",
            Some(9),
            &Event::Queued {
                qid: &qid,
                from: &spammer,
                size: Some(900),
                nrcpt: Some(1),
                client: None,
                helo: None,
                auth_user: None,
                local_user: None,
                proto: None,
                message_id: None,
                parent: None,
            },
        );
        f.e.feed(
            ts,
            "smtp1",
            "postfix/local",
            Some(8),
            &Event::Delivery {
                qid: &qid,
                to: "pat@isp.example",
                orig_to: None,
                relay: Some("local"),
                transport: Some("local"),
                delay: None,
                delays: None,
                dsn: Some("2.0.0"),
                status: DeliveryStatus::Sent,
                reply: Some("delivered to mailbox"),
            },
        );
        f.e.feed(
            ts,
            "smtp1",
            "postfix/qmgr",
            Some(9),
            &Event::Removed { qid: &qid },
        );
        // …answered by pat's challenge-response filter through the smarthost, which fails.
        f.msg(Msg {
            t: i * 60 + 5,
            user: Some("pat@isp.example"),
            ip: "198.51.100.52",
            helo: None,
            from: "pat@isp.example",
            rcpts: vec![(spammer.clone(), DeliveryStatus::Bounced)],
        });
    }
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn incoming_mail_does_not_make_internet_hosts_customers() {
    let mut f = Feed::new(Config::default());
    for i in 0..40 {
        let qid = format!("MX{i:06}");
        let ts = Ts::from_secs(T0 + i * 60);
        f.e.feed(
            ts,
            "mx1",
            "postfix/smtpd",
            Some(5),
            &Event::Client {
                qid: &qid,
                client: Peer {
                    host: Some("unknown"),
                    ip: Some("203.0.113.7"),
                    port: None,
                },
                sasl_method: None,
                sasl_username: None,
                uid: None,
                from: None,
                orig_qid: None,
            },
        );
        f.e.feed(
            ts,
            "mx1",
            "postfix/qmgr",
            Some(9),
            &Event::Queued {
                qid: &qid,
                from: "x@spam.example",
                size: Some(900),
                nrcpt: Some(1),
                client: None,
                helo: None,
                auth_user: None,
                local_user: None,
                proto: None,
                message_id: None,
                parent: None,
            },
        );
        let to = format!("nobody{i}@isp.example");
        f.e.feed(
            ts,
            "mx1",
            "postfix/local",
            Some(8),
            &Event::Delivery {
                qid: &qid,
                to: &to,
                orig_to: None,
                relay: Some("local"),
                transport: Some("local"),
                delay: None,
                delays: None,
                dsn: Some("5.1.1"),
                status: DeliveryStatus::Bounced,
                reply: Some("unknown user"),
            },
        );
        f.e.feed(
            ts,
            "mx1",
            "postfix/qmgr",
            Some(9),
            &Event::Removed { qid: &qid },
        );
    }
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn infected_client_with_forged_helos_is_flagged() {
    let mut f = Feed::new(Config::default());
    let helos = ["lrhnow.usa.net", "qzxwvt.usa.net", "192.0.2.77", "smtp1"];
    for i in 0..8 {
        f.msg(Msg {
            t: i * 30,
            user: None,
            ip: "198.51.100.60",
            helo: Some(helos[i as usize % helos.len()]),
            from: "kwntefsqhi@usa.net",
            // Address-book targets across many domains.
            rcpts: vec![rcpt(i as usize, &format!("friend{}.example", i % 5), true)],
        });
    }
    let a = f.alerts();
    let h: Vec<_> = a
        .iter()
        .filter(|a| a.detector == Detector::HeloAnomaly)
        .collect();
    assert!(!h.is_empty(), "{a:#?}");
    assert_eq!(h[0].entity.kind, EntityKind::Client);
    assert_eq!(h[0].entity.id, "198.51.100.60");
    let signs: Vec<String> = h.last().unwrap().evidence["signs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sign"].as_str().unwrap().to_string())
        .collect();
    assert!(
        signs.contains(&"forged-sender-domain".to_string()),
        "{signs:?}"
    );
    assert!(signs.contains(&"bare-ip".to_string()), "{signs:?}");
    assert!(signs.contains(&"own-name".to_string()), "{signs:?}");
}

#[test]
fn outlook_netbios_helo_is_quiet() {
    let mut f = Feed::new(Config::default());
    for i in 0..30 {
        f.msg(Msg {
            t: i * 600,
            user: Some("anna@isp.example"),
            ip: "198.51.100.61",
            helo: Some("DESKTOP-7QK1L2"),
            from: "anna@isp.example",
            rcpts: vec![rcpt(i as usize, "friends.example", true)],
        });
    }
    assert!(f.alerts().is_empty());
}

#[test]
fn replay_is_deterministic() {
    let run = || {
        let mut f = Feed::new(Config::default());
        for i in 0..60 {
            f.msg(Msg {
                t: i * 30,
                user: Some(if i % 2 == 0 {
                    "a@isp.example"
                } else {
                    "b@isp.example"
                }),
                ip: "198.51.100.70",
                helo: Some(if i % 3 == 0 {
                    "192.0.2.1"
                } else {
                    "pc.example.net"
                }),
                from: "a@isp.example",
                rcpts: vec![rcpt(i as usize, "x.example", i % 4 == 0)],
            });
        }
        serde_json::to_string(&f.alerts()).unwrap()
    };
    assert_eq!(run(), run());
}

#[test]
fn internet_host_relayed_to_our_one_domain_is_not_a_customer() {
    // An inbound MX relays mail for its own domain to the internal server over SMTP: the
    // internet client must not look like a customer, however bad its HELO.
    let mut f = Feed::new(Config::default());
    for i in 0..40 {
        f.msg(Msg {
            t: i * 60,
            user: None,
            ip: "203.0.113.80",
            helo: Some(["192.0.2.1", "qwrtzpx.spam.example", "smtp1"][i as usize % 3]),
            from: "x@spam.example",
            rcpts: vec![rcpt(i as usize, "our-domain.example", i % 2 == 0)],
        });
    }
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn own_networks_make_a_client_ours_at_once() {
    let mut cfg = Config::default();
    cfg.network.own_networks = vec!["198.51.100.0/24".parse().unwrap()];
    let mut f = Feed::new(cfg);
    for i in 0..40 {
        f.msg(Msg {
            t: i * 60,
            user: None,
            ip: "198.51.100.90",
            helo: None,
            from: "shop@customer.example",
            rcpts: vec![rcpt(i as usize, "one-domain.example", false)],
        });
    }
    let a = f.alerts();
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].entity.id, "198.51.100.90");
}

#[test]
fn shop_assistants_writing_to_customers_are_not_multiple_lists() {
    // info@ and sales@ of one small business each write to ~60 different customers over two
    // days: two list-like senders by count, but neither is a mailing list.
    let mut f = Feed::new(Config::default());
    for (k, from) in ["info@praxis.example", "sales@praxis.example"]
        .iter()
        .enumerate()
    {
        for m in 0..20usize {
            f.msg(Msg {
                t: k as i64 * 300 + m as i64 * 7200,
                user: Some("praxis@isp.example"),
                ip: "198.51.100.32",
                helo: None,
                from,
                rcpts: (0..3)
                    .map(|j| rcpt(k * 1000 + m * 3 + j, &format!("c{j}.example"), true))
                    .collect(),
            });
        }
    }
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

/// A config whose `own_networks` hold the customers of the tests below.
fn own(nets: &[&str]) -> Config {
    let mut cfg = Config::default();
    cfg.network.own_networks = nets.iter().map(|n| n.parse().unwrap()).collect();
    cfg
}

fn delivery_failures(a: &[detect::Alert]) -> Vec<&detect::Alert> {
    a.iter()
        .filter(|a| a.detector == Detector::DeliveryFailures)
        .collect()
}

#[test]
fn customer_mta_with_early_failures_and_no_delivery_yet_is_quiet() {
    // Issue 9, class 4: a customer's own mail server flushes its queue after midnight; 21
    // recipients at 21 domains fail as unknown users before any delivery is seen. Clayton's
    // "more than 20" alone called that spam; its share cannot be judged on 21 outcomes, and the
    // rest of its day is ordinary (2% failures).
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    for i in 0..21usize {
        f.msg(Msg {
            t: i as i64 * 120,
            user: None,
            ip: "10.20.30.40",
            helo: Some("mail.customer.example"),
            from: "accounts@customer.example",
            rcpts: vec![rcpt(i, &format!("partner{i}.example"), false)],
        });
    }
    for i in 0..400usize {
        f.msg(Msg {
            t: 3600 + i as i64 * 180,
            user: None,
            ip: "10.20.30.40",
            helo: Some("mail.customer.example"),
            from: ["accounts@customer.example", "office@customer.example"][i % 2],
            rcpts: vec![rcpt(
                100 + i,
                &format!("client{}.example", i % 40),
                i % 50 != 0,
            )],
        });
    }
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn forwarded_mail_rejected_downstream_is_not_the_senders_spam() {
    // Issue 9, class 4: mail from one internet sender to thirty of our users, each of whom has
    // their mail forwarded (alias / .forward, logged as orig_to) to a freemail mailbox that
    // refuses it as spam. The forwarding does not make the sender our customer, and the
    // refusals are not its spam — nor the forwarding user's.
    let mut f = Feed::new(Config::default());
    for i in 0..120usize {
        let user = format!("user{}@isp.example", i % 30);
        let to = format!(
            "user{}.fwd@{}",
            i % 30,
            ["gmail.example", "yahoo.example", "outlook.example"][i % 3]
        );
        f.msg_rc(
            Msg {
                t: i as i64 * 300,
                user: None,
                ip: "203.0.113.7",
                helo: Some("mta.newsletter-sender.example"),
                from: "news@newsletter-sender.example",
                rcpts: vec![],
            },
            vec![Rc {
                orig_to: Some(&user),
                ..rc(to, i % 4 == 0, REFUSED_AS_SPAM)
            }],
        );
    }
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

/// A shared web-hosting server at 10.5.5.5 relaying, on port 25 without AUTH, the mail of 300
/// sites: each sends a few form mails a day (2% fail); `spam(i)` gives the extra messages.
fn web_host(f: &mut Feed, spam: impl Fn(usize) -> Option<(String, Vec<Rc<'static>>)>) {
    for i in 0..9000usize {
        let t = i as i64 * 9; // 22.5 hours
        if let Some((from, rcs)) = spam(i) {
            f.msg_rc(
                Msg {
                    t,
                    user: None,
                    ip: "10.5.5.5",
                    helo: Some("web5.hoster.example"),
                    from: &from,
                    rcpts: vec![],
                },
                rcs,
            );
            continue;
        }
        let site = i % 300;
        let from = format!(
            "{}@site{site}.example",
            ["wordpress", "info", "noreply"][i % 3]
        );
        f.msg(Msg {
            t,
            user: None,
            ip: "10.5.5.5",
            helo: Some("web5.hoster.example"),
            from: &from,
            rcpts: vec![rcpt(i, &format!("visitor{}.example", i % 97), i % 50 != 7)],
        });
    }
}

/// Spam of an exploited site: 60% of its recipients fail (unknown users, refused as spam).
fn site_spam(i: usize) -> Vec<Rc<'static>> {
    let to = format!(
        "victim{i}@{}",
        ["harvested.example", "mail.example", "inbox.example"][i % 3]
    );
    let fail = if i.is_multiple_of(2) {
        UNKNOWN_USER
    } else {
        REFUSED_AS_SPAM
    };
    vec![rc(to, i % 5 >= 3, fail)]
}

#[test]
fn exploited_site_on_a_shared_web_host_is_reported_as_a_sender() {
    // Issue 9, class 6: one site's hacked script sends 3,000 spam messages in the middle of the
    // day; counted per client, its failures would drown in (or, here, condemn) the host's
    // legitimate mail. Reported: the site's sender; not the hosting server.
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    web_host(&mut f, |i| {
        (i >= 3000 && i.is_multiple_of(2))
            .then(|| ("noreply@hacked-shop.example".to_string(), site_spam(i)))
    });
    let a = f.alerts();
    let df = delivery_failures(&a);
    assert!(!df.is_empty(), "{a:#?}");
    for x in &df {
        assert_eq!(x.entity.kind, EntityKind::Sender, "{x:#?}");
        assert!(x.entity.id.ends_with("@hacked-shop.example"), "{x:#?}");
        assert_eq!(x.evidence["relayed_by"]["id"], "10.5.5.5");
    }
    assert!(a.iter().all(|x| x.entity.id != "10.5.5.5"), "{a:#?}");
}

#[test]
fn random_senders_at_a_host_name_raise_its_domain() {
    // Issue 9, class 6: a PHP mailer that puts random local parts at the server's host name:
    // no one address fails enough, the domain does.
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    web_host(&mut f, |i| {
        (i >= 3000 && i.is_multiple_of(2)).then(|| {
            (
                format!("x{:x}@web5.hoster.example", i * 7919 % 65_521),
                site_spam(i),
            )
        })
    });
    let a = f.alerts();
    let df = delivery_failures(&a);
    assert!(!df.is_empty(), "{a:#?}");
    assert_eq!(df[0].entity.kind, EntityKind::Sender);
    assert_eq!(df[0].entity.id, "@web5.hoster.example");
    assert!(a.iter().all(|x| x.entity.id != "10.5.5.5"), "{a:#?}");
}

#[test]
fn shared_web_host_without_an_exploited_site_is_quiet() {
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    web_host(&mut f, |_| None);
    let a = f.alerts();
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn infected_customer_forging_a_bank_is_flagged_as_the_client() {
    // Issue 9, class 7: an infected customer PC relays on port 25 from our own network, HELO
    // and MAIL FROM forged to a bank (`noreply@` — a phish's sender, not an autoresponder's),
    // to two freemail domains. On a real-Postfix test bed the customer range is loopback.
    for ip in ["127.40.0.9", "192.0.2.140"] {
        let mut f = Feed::new(own(&["127.40.0.0/16", "192.0.2.128/25"]));
        for i in 0..300usize {
            let rcs = (0..1 + i % 3)
                .map(|k| {
                    let n = i * 3 + k;
                    let fail = if n % 3 == 0 {
                        UNKNOWN_USER
                    } else {
                        REFUSED_AS_SPAM
                    };
                    rc(
                        format!("c{n}@{}", ["gmail.example", "yahoo.example"][n % 2]),
                        n % 2 == 0,
                        fail,
                    )
                })
                .collect();
            f.msg_rc(
                Msg {
                    t: i as i64 * 20,
                    user: None,
                    ip,
                    helo: Some("secure.bank.example"),
                    from: "noreply@bank.example",
                    rcpts: vec![],
                },
                rcs,
            );
        }
        let a = f.alerts();
        let df = delivery_failures(&a);
        assert!(!df.is_empty(), "{ip}: {a:#?}");
        assert!(
            df.iter()
                .all(|x| x.entity.kind == EntityKind::Client && x.entity.id == ip),
            "{a:#?}"
        );
    }
}

#[test]
fn our_own_helo_refusals_of_a_business_nat_are_not_spam_failures() {
    // Issue 9, class 4: a business NAT whose PCs greet with a bare NetBIOS name; our server
    // refuses every RCPT for it. A set-up fault, not failures spam produces.
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    for i in 0..60 {
        let to = format!("r{i}@partner{}.example", i % 9);
        f.e.feed(
            Ts::from_secs(T0 + i * 30),
            "smtp1",
            "postfix/smtpd",
            Some(3),
            &Event::Check {
                qid: None,
                action: maillog::Action::Reject,
                stage: Some("RCPT"),
                client: Some(Peer {
                    host: Some("unknown"),
                    ip: Some("10.44.0.1"),
                    port: None,
                }),
                reason: "504 5.5.2 <DESKTOP-7QK1L2>: Helo command rejected: need fully-qualified hostname",
                from: Some("anna@firm.example"),
                to: Some(&to),
                proto: Some("ESMTP"),
                helo: Some("DESKTOP-7QK1L2"),
            },
        );
    }
    let a = f.alerts();
    assert!(delivery_failures(&a).is_empty(), "{a:#?}");
}

#[test]
fn exploited_site_outnumbering_a_small_hosting_servers_mail_is_reported_as_a_sender() {
    // Issue 9, class 6: a small shared web-hosting server (ten sites, a form mail every half
    // hour) whose one hacked site sends 1,500 spam messages: the site's mail is most of what
    // the server sends, yet the server's other senders' mail is fine. Reported: the site; not
    // the hosting server.
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    for i in 0..3000usize {
        let t = i as i64 * 20; // 16.7 hours
        if i % 60 == 0 {
            let site = (i / 60) % 10;
            let from = format!("{}@site{site}.example", ["wordpress", "info"][i % 2]);
            f.msg(Msg {
                t,
                user: None,
                ip: "10.6.6.6",
                helo: Some("web6.hoster.example"),
                from: &from,
                rcpts: vec![rcpt(i, &format!("visitor{}.example", i % 97), true)],
            });
        } else if i >= 300 && i.is_multiple_of(2) {
            f.msg_rc(
                Msg {
                    t,
                    user: None,
                    ip: "10.6.6.6",
                    helo: Some("web6.hoster.example"),
                    from: &format!("anna{}@hacked-shop.example", i * 7919 % 65_521),
                    rcpts: vec![],
                },
                site_spam(i),
            );
        }
    }
    let a = f.alerts();
    let df = delivery_failures(&a);
    assert!(!df.is_empty(), "{a:#?}");
    assert!(
        df.iter()
            .any(|x| x.entity.kind == EntityKind::Sender && x.entity.id == "@hacked-shop.example"),
        "{df:#?}"
    );
    assert!(a.iter().all(|x| x.entity.id != "10.6.6.6"), "{a:#?}");
}

#[test]
fn bot_rotating_forged_sender_domains_is_flagged_as_the_client() {
    // The trap of the rule above: an infected PC making up a sender domain per batch of
    // messages, all failing alike — no domain is one tenant among healthy ones.
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    for i in 0..600usize {
        f.msg_rc(
            Msg {
                t: i as i64 * 30,
                user: None,
                ip: "10.7.7.7",
                helo: Some("[10.7.7.7]"),
                from: &format!("service@bank{}.example", i / 100),
                rcpts: vec![],
            },
            site_spam(i),
        );
    }
    let a = f.alerts();
    let df = delivery_failures(&a);
    assert!(!df.is_empty(), "{a:#?}");
    assert!(
        df.iter()
            .any(|x| x.entity.kind == EntityKind::Client && x.entity.id == "10.7.7.7"),
        "{df:#?}"
    );
    assert!(
        df.iter().all(|x| x.entity.kind == EntityKind::Client),
        "{df:#?}"
    );
}

/// A small shared web-hosting server at 10.6.6.6 (ten sites, a form mail every 20 minutes from
/// message `legit_from` on) whose hacked site sends spam with random local parts from message
/// `spam_from` on, every other message slot, 20 s apart, `n` slots from `t0`; as `noreply@` when
/// `noreply`, else with random local parts.
fn small_web_host(
    f: &mut Feed,
    t0: i64,
    n: usize,
    legit_from: usize,
    spam_from: usize,
    noreply: bool,
) {
    for i in 0..n {
        let t = t0 + i as i64 * 20;
        if i >= legit_from && i % 60 == 0 {
            let site = (i / 60) % 10;
            let from = format!("{}@site{site}.example", ["wordpress", "info"][i % 2]);
            f.msg(Msg {
                t,
                user: None,
                ip: "10.6.6.6",
                helo: Some("web6.hoster.example"),
                from: &from,
                rcpts: vec![rcpt(i, &format!("visitor{}.example", i % 97), true)],
            });
        } else if i >= spam_from && i.is_multiple_of(2) {
            f.msg_rc(
                Msg {
                    t,
                    user: None,
                    ip: "10.6.6.6",
                    helo: Some("web6.hoster.example"),
                    from: &if noreply {
                        "noreply@hacked-shop.example".to_string()
                    } else {
                        format!("anna{}@hacked-shop.example", i * 7919 % 65_521)
                    },
                    rcpts: vec![],
                },
                site_spam(i + t0 as usize),
            );
        }
    }
}

#[test]
fn hacked_site_whose_spam_came_first_is_still_reported_as_a_sender() {
    // The site's spam, all from `noreply@`, is the server's first mail: 30 messages (18
    // failures) before the first form mail of another site. Those failures are the site's, not
    // the server's: the site's count starts with them, not at the second sender.
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    small_web_host(&mut f, 0, 1500, 60, 0, true);
    let a = f.alerts();
    let df = delivery_failures(&a);
    assert!(
        df.iter()
            .any(|x| x.entity.id.ends_with("@hacked-shop.example")),
        "{df:#?}"
    );
    assert!(a.iter().all(|x| x.entity.id != "10.6.6.6"), "{a:#?}");
}

#[test]
fn hacked_sites_mail_closing_days_later_does_not_condemn_the_server() {
    // The site was reported on day one; two days later, after its flag ran out, 300 of its
    // messages close late (deferred for days, or the end of the log) among the server's
    // ordinary mail. They are the site's, and yesterday's spam is not the server's record.
    let mut f = Feed::new(own(&["10.0.0.0/8"]));
    small_web_host(&mut f, 0, 3000, 0, 300, false);
    small_web_host(&mut f, 2 * 86_400, 600, 0, 0, false);
    let a = f.alerts();
    assert!(
        delivery_failures(&a)
            .iter()
            .any(|x| x.entity.id == "@hacked-shop.example"),
        "{a:#?}"
    );
    assert!(a.iter().all(|x| x.entity.id != "10.6.6.6"), "{a:#?}");
}

/// An engine whose geo data puts 198.51.100.0/24 in one autonomous system (a cloud provider
/// where a few of our business customers happen to sit, and a big provider's outbound servers).
fn engine_with_one_cloud_as() -> Feed {
    let db = geo::GeoDb::from_asn_csv(&b"198.51.100.0,198.51.100.255,64500,Cloud\n"[..], "t.csv")
        .unwrap();
    Feed {
        e: Engine::with_geo(
            Config::default(),
            detect::GeoRef::Owned(std::sync::Arc::new(db)),
        ),
        n: 0,
    }
}

/// Our server refusing `to` at RCPT time for `ip`, as Postfix logs it.
fn refuse_at_rcpt(f: &mut Feed, t: i64, ip: &str, helo: &str, from: &str, to: &str, reason: &str) {
    f.e.feed(
        Ts::from_secs(T0 + t),
        "mx1",
        "postfix/smtpd",
        Some(77),
        &Event::Check {
            qid: None,
            action: maillog::Action::Reject,
            stage: Some("RCPT"),
            client: Some(Peer {
                host: Some("mail-16.outbound.provider.example"),
                ip: Some(ip),
                port: None,
            }),
            reason,
            from: Some(from),
            to: Some(to),
            proto: Some("ESMTP"),
            helo: Some(helo),
        },
    );
}

#[test]
fn internet_server_in_an_as_learned_as_ours_is_an_incoming_host() {
    // Three business customers relay through us from a cloud AS: the AS is learned as ours
    // (`auto_own_asn_customers`). A big provider's outbound server in the same AS then writes
    // to addresses of ours that do not exist (stale addresses its users still have): mail to
    // our own mailboxes, not extrusion — no `delivery-failures` for it or its many senders.
    let mut f = engine_with_one_cloud_as();
    for (c, ip) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        for d in 0..3 {
            f.msg(Msg {
                t: (c * 10 + d) as i64 * 60,
                user: None,
                ip,
                helo: None,
                from: "office@business.example",
                rcpts: vec![rcpt(d, &format!("partner{d}.example"), true)],
            });
        }
    }
    for i in 0..60 {
        let to = format!("stale{i}@our-isp.example");
        let reason = format!(
            "554 5.1.1 <{to}>: Recipient address rejected: User unknown in virtual mailbox table"
        );
        let from = format!("user{i}@provider.example");
        refuse_at_rcpt(
            &mut f,
            3600 + i * 600,
            "198.51.100.200",
            "mail-16.outbound.provider.example",
            &from,
            &to,
            &reason,
        );
    }
    let a = f.alerts();
    let wrong: Vec<_> = a
        .iter()
        .filter(|x| {
            matches!(
                x.detector,
                Detector::DeliveryFailures | Detector::LoopedBack
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn relaying_customer_refused_for_our_unknown_users_is_looped_back() {
    // The same refusals from a customer that relays mail out through us (confirmed, not only
    // by its AS): an infected machine of ours writing to our MX — `looped-back`, and still not
    // extrusion's `delivery-failures`.
    let mut f = engine_with_one_cloud_as();
    for d in 0..3 {
        f.msg(Msg {
            t: d as i64 * 60,
            user: None,
            ip: "198.51.100.9",
            helo: None,
            from: "office@business.example",
            rcpts: vec![rcpt(d, &format!("partner{d}.example"), true)],
        });
    }
    for i in 0..60 {
        let to = format!("stale{i}@our-isp.example");
        let reason = format!(
            "554 5.1.1 <{to}>: Recipient address rejected: User unknown in local recipient table"
        );
        refuse_at_rcpt(
            &mut f,
            3600 + i * 60,
            "198.51.100.9",
            "pc",
            "x@bank.example",
            &to,
            &reason,
        );
    }
    let a = f.alerts();
    assert!(
        a.iter().all(|x| x.detector != Detector::DeliveryFailures),
        "{a:#?}"
    );
    assert!(
        a.iter()
            .any(|x| x.detector == Detector::LoopedBack && x.entity.id == "198.51.100.9"),
        "{a:#?}"
    );
}
