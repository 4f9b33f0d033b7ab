//! Sendmail log messages.
//!
//! Sendmail writes `QID: key=value, key=value, …` lines: `from=` when a message is queued,
//! `to=… stat=…` per delivery attempt, and free text for SMTP-level events (`AUTH failure`,
//! `ruleset=check_rcpt … reject=…`, `did not issue MAIL/EXPN/VRFY/ETRN`, `lost input channel`).
//! `NOQUEUE:` stands for "no queue id yet". Values end at `, `; `stat=` runs to the end of
//! the line because its text may hold commas.

use crate::event::{unbracket, Action, Delay, DeliveryStatus, Event, NoticeKind, Peer, Service};
use crate::exim::{enhanced_code, host_peer};

/// Shortest and longest Sendmail queue id we accept (8.12+ writes 14 characters; older
/// versions and `-O QueueFileModes` variants write 8 to 16).
const QID_LEN: std::ops::RangeInclusive<usize> = 8..=20;

/// Parse a Sendmail message. `None` when the line is not understood.
pub fn parse(msg: &str) -> Option<Event<'_>> {
    let (qid, rest) = split_qid(msg);
    if let Some(q) = qid {
        if let Some(r) = rest.strip_prefix("from=") {
            return Some(queued(q, r, rest));
        }
        if let Some(r) = rest.strip_prefix("to=") {
            return Some(delivery(q, r, rest));
        }
        // "QID: NEWQID: DSN: User unknown" / "return to sender" / "sender notify"
        let (q2, r2) = split_qid(rest);
        if let Some(nq) = q2 {
            let kind = if r2.starts_with("DSN: ") || r2.starts_with("return to sender") {
                Some(NoticeKind::NonDelivery)
            } else if r2.starts_with("postmaster notify") {
                Some(NoticeKind::PostmasterNonDelivery)
            } else if r2.starts_with("sender notify") || r2.starts_with("Warning: ") {
                Some(NoticeKind::Delay)
            } else {
                None
            };
            return Some(match kind {
                Some(kind) => Event::Notice {
                    qid: q,
                    kind,
                    notice_qid: nq,
                },
                None => Event::Info {
                    what: "notice",
                    qid: Some(q),
                    client: None,
                },
            });
        }
    }
    let qid_opt = qid;
    let r = rest;
    if let Some(x) = r.strip_prefix("AUTH failure (") {
        let close = x.find(')')?;
        let mech = &x[..close];
        let reason = x[close + 1..].trim_start_matches(':').trim();
        let reason = reason.split(", user=").next().unwrap_or(reason);
        let reason = reason.split(", relay=").next().unwrap_or(reason);
        return Some(Event::AuthFailure {
            client: relay_peer(r).unwrap_or_default(),
            user: field(r, "user="),
            mechanism: Some(mech),
            service: Service::Smtp,
            reason,
        });
    }
    if r.starts_with("AUTH=server") {
        if let Some(user) = field(r, "authid=") {
            return Some(Event::AuthSuccess {
                client: relay_peer(r).unwrap_or_default(),
                user,
                mechanism: field(r, "mech="),
                service: Service::Smtp,
            });
        }
        return info("auth", qid_opt, relay_peer(r));
    }
    if r.starts_with("AUTH=client") {
        return info("auth_client", qid_opt, None);
    }
    if r.starts_with("ruleset=") {
        let ruleset = field(r, "ruleset=").unwrap_or("");
        let client = relay_peer(r);
        let Some(reject) = rest_field(r, "reject=") else {
            return info("ruleset", qid_opt, client);
        };
        let stage = match ruleset {
            "check_relay" => "CONNECT",
            "check_mail" => "MAIL",
            "check_rcpt" => "RCPT",
            "check_data" | "check_eoh" | "check_eom" => "DATA",
            "check_etrn" => "ETRN",
            "check_expn" => "EXPN",
            "check_vrfy" => "VRFY",
            _ => "",
        };
        let arg1 = field(r, "arg1=").map(unbracket);
        let action = if reject.starts_with('4') {
            Action::Defer
        } else {
            Action::Reject
        };
        return Some(Event::Check {
            qid: qid_opt,
            action,
            stage: if stage.is_empty() {
                Some(ruleset)
            } else {
                Some(stage)
            },
            client,
            reason: reject,
            from: if ruleset == "check_mail" { arg1 } else { None },
            to: if ruleset == "check_rcpt" { arg1 } else { None },
            proto: None,
            helo: None,
        });
    }
    if let Some(p) = r.find(" did not issue ") {
        return info("no_mail", qid_opt, peer_text(&r[..p]));
    }
    if let Some(x) = r.strip_prefix("lost input channel from ") {
        let end = x.find(" to ").unwrap_or(x.len());
        return info("lost_input", qid_opt, peer_text(&x[..end]));
    }
    if let Some(x) = r.strip_prefix("rejecting commands from ") {
        let end = x.find(" due to").unwrap_or(x.len());
        return Some(Event::Check {
            qid: qid_opt,
            action: Action::Reject,
            stage: Some("CONNECT"),
            client: peer_text(&x[..end]),
            reason: x.get(end + 1..).unwrap_or("").trim(),
            from: None,
            to: None,
            proto: None,
            helo: None,
        });
    }
    if let Some(x) = r.strip_prefix("timeout waiting for input from ") {
        let end = x.find(" during").unwrap_or(x.len());
        return info("timeout", qid_opt, peer_text(&x[..end]));
    }
    if r.starts_with("STARTTLS") {
        return info("tls", qid_opt, relay_peer(r));
    }
    // "host [ip] (may be forged): possible SMTP attack: command=AUTH, count=5",
    // "host [ip]: EXPN root [rejected]"
    if let Some(p) = r
        .find("]: ")
        .map(|p| p + 1)
        .or_else(|| r.find("forged): ").map(|p| p + 7))
    {
        let head = &r[..p];
        let text = &r[p + 2..];
        if let Some(client) = peer_text(head) {
            if text.starts_with("possible SMTP attack") {
                return info("smtp_attack", qid_opt, Some(client));
            }
            if let Some(cmd) = text.strip_suffix(" [rejected]") {
                let verb = &cmd[..cmd.find(' ').unwrap_or(cmd.len())];
                let stage = if verb.eq_ignore_ascii_case("expn") {
                    "EXPN"
                } else if verb.eq_ignore_ascii_case("vrfy") {
                    "VRFY"
                } else {
                    ""
                };
                return Some(Event::Check {
                    qid: qid_opt,
                    action: Action::Reject,
                    stage: if stage.is_empty() { None } else { Some(stage) },
                    client: Some(client),
                    reason: text,
                    from: None,
                    to: None,
                    proto: None,
                    helo: None,
                });
            }
            return info("smtp_session", qid_opt, Some(client));
        }
    }
    // "<addr>... User unknown", "<addr>... Relaying denied"
    if r.starts_with('<') {
        if let Some(p) = r.find(">... ") {
            let addr = &r[1..p];
            let reason = &r[p + 5..];
            if reason.starts_with("Sender ok") || reason.starts_with("Recipient ok") {
                return info("smtp_ok", qid_opt, None);
            }
            return Some(Event::Check {
                qid: qid_opt,
                action: Action::Reject,
                stage: Some("RCPT"),
                client: None,
                reason,
                from: None,
                to: Some(addr),
                proto: None,
                helo: None,
            });
        }
    }
    const PLAIN: &[(&str, &str)] = &[
        ("SYSERR", "syserr"),
        ("done", "done"),
        ("Saved message in", "saved"),
        ("alias database", "aliases"),
        ("/etc/aliases:", "aliases"),
        ("/etc/mail/aliases:", "aliases"),
        ("starting daemon", "daemon"),
        ("unable to qualify my own domain name", "hostname"),
        ("My unqualified host name", "hostname"),
        ("Milter", "milter"),
        ("milter", "milter"),
        ("clone ", "clone"),
        ("collect: ", "collect"),
        ("tcpwrappers", "tcpwrappers"),
        ("discarded", "discarded"),
        ("headers too large", "headers"),
        ("Authentication-Warning", "warning"),
        ("ETRN ", "etrn"),
        ("--- ", "transcript"),
        ("<-- ", "transcript"),
        ("--> ", "transcript"),
        ("Losing ", "error"),
        ("locking ", "error"),
        ("sender notify", "notice"),
        ("postmaster notify", "notice"),
        ("return to sender", "notice"),
        ("DSN: ", "notice"),
        ("rejecting connections", "load"),
        ("accepting connections", "load"),
        ("daemon ", "daemon"),
        ("restarting ", "daemon"),
        ("stopping daemon", "daemon"),
        ("savemail", "savemail"),
        ("Possible SMTP RCPT flood", "rcpt_flood"),
        ("Too many recipients", "too_many_recipients"),
        ("too many hops", "too_many_hops"),
        ("Authentication", "auth"),
        ("makeconnection", "error"),
        ("error connecting", "error"),
        ("forward ", "forward"),
    ];
    for (p, what) in PLAIN {
        if r.starts_with(p) {
            return info(what, qid_opt, relay_peer(r));
        }
    }
    None
}

fn info<'a>(
    what: &'static str,
    qid: Option<&'a str>,
    client: Option<Peer<'a>>,
) -> Option<Event<'a>> {
    Some(Event::Info { what, qid, client })
}

/// A leading `QID: ` (or `NOQUEUE: `) and the rest.
fn split_qid(msg: &str) -> (Option<&str>, &str) {
    let Some(c) = msg.find(": ") else {
        return (None, msg);
    };
    let t = &msg[..c];
    if t == "NOQUEUE" {
        return (None, &msg[c + 2..]);
    }
    if QID_LEN.contains(&t.len())
        && t.bytes().all(|b| b.is_ascii_alphanumeric())
        && t.bytes().any(|b| b.is_ascii_digit())
    {
        return (Some(t), &msg[c + 2..]);
    }
    (None, msg)
}

/// Value of `key=` (at the start or after a space), up to the next `, `.
fn field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(p) = s[from..].find(key) {
        let at = from + p;
        if at == 0 || s.as_bytes()[at - 1] == b' ' {
            let v = &s[at + key.len()..];
            return Some(&v[..v.find(", ").unwrap_or(v.len())]);
        }
        from = at + key.len();
    }
    None
}

/// Value of `key=` running to the end of the line (`stat=`, `reject=`).
fn rest_field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(p) = s[from..].find(key) {
        let at = from + p;
        if at == 0 || s.as_bytes()[at - 1] == b' ' {
            return Some(&s[at + key.len()..]);
        }
        from = at + key.len();
    }
    None
}

/// `host [ip] (may be forged)`, `[IPv6:2001:db8::1]`, `[ip]`.
fn peer_text(v: &str) -> Option<Peer<'_>> {
    let v = v.trim();
    let v = v.strip_suffix("(may be forged)").unwrap_or(v).trim_end();
    if !v.contains('[') {
        return None;
    }
    let (mut p, _) = host_peer(v);
    if let Some(ip) = p.ip {
        p.ip = Some(ip.strip_prefix("IPv6:").unwrap_or(ip));
    }
    if p.ip.is_none() && p.host.is_none() {
        None
    } else {
        Some(p)
    }
}

/// The last `relay=host [ip]` of a line (Sendmail repeats `relay=` on AUTH failures; the last
/// one is the connecting client).
fn relay_peer(s: &str) -> Option<Peer<'_>> {
    let mut best = None;
    let mut from = 0;
    while let Some(p) = s[from..].find("relay=") {
        let at = from + p;
        from = at + 6;
        if at == 0 || s.as_bytes()[at - 1] == b' ' {
            let v = &s[at + 6..];
            let v = &v[..v.find(", ").unwrap_or(v.len())];
            if let Some(peer) = peer_text(v) {
                best = Some(peer);
            }
        }
    }
    best
}

fn queued<'a>(qid: &'a str, r: &'a str, all: &'a str) -> Event<'a> {
    let from = &r[..r.find(", ").unwrap_or(r.len())];
    Event::Queued {
        qid,
        from: unbracket(from),
        size: field(all, "size=").and_then(|v| v.parse().ok()),
        nrcpt: field(all, "nrcpts=").and_then(|v| v.parse().ok()),
        client: relay_peer(all),
        helo: None,
        auth_user: None,
        local_user: None,
        proto: field(all, "proto="),
        message_id: field(all, "msgid=").map(unbracket),
        parent: None,
    }
}

fn delivery<'a>(qid: &'a str, r: &'a str, all: &'a str) -> Event<'a> {
    let to = &r[..r.find(", ").unwrap_or(r.len())];
    let stat = rest_field(all, "stat=");
    let dsn = field(all, "dsn=").or_else(|| stat.and_then(enhanced_code));
    let status = match stat {
        Some(s) if s.starts_with("Sent") => DeliveryStatus::Sent,
        Some(s) if s.starts_with("Deferred") || s.starts_with("queued") => DeliveryStatus::Deferred,
        _ => match dsn.and_then(|d| d.bytes().next()) {
            Some(b'2') => DeliveryStatus::Sent,
            Some(b'4') => DeliveryStatus::Deferred,
            _ => DeliveryStatus::Bounced,
        },
    };
    let reply = stat.map(|s| match (s.find('('), s.ends_with(')')) {
        (Some(p), true) if s.starts_with("Sent") => &s[p + 1..s.len() - 1],
        _ => s,
    });
    Event::Delivery {
        qid,
        to: unbracket(to),
        orig_to: field(all, "orig_to=").map(unbracket),
        relay: field(all, "relay="),
        transport: field(all, "mailer="),
        delay: field(all, "delay=").map(Delay),
        delays: None,
        dsn,
        status,
        reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_line() {
        let e = parse("rA37ZTSC026255: from=<anton@domain.com>, size=0, class=0, nrcpts=0, bodytype=8BITMIME, proto=ESMTP, daemon=MTA, relay=163.23.32.95.dsl-dynamic.vsi.ru [95.32.23.163]").unwrap();
        let Event::Queued {
            qid,
            from,
            size,
            nrcpt,
            client,
            proto,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(qid, "rA37ZTSC026255");
        assert_eq!(from, "anton@domain.com");
        assert_eq!(size, Some(0));
        assert_eq!(nrcpt, Some(0));
        assert_eq!(proto, Some("ESMTP"));
        let c = client.unwrap();
        assert_eq!(c.ip, Some("95.32.23.163"));
        assert_eq!(c.host, Some("163.23.32.95.dsl-dynamic.vsi.ru"));
        let e = parse("jA9J1UvC004306: from=root, size=629060, class=0, nrcpts=1, msgid=<200511091901.jA9J1UvC004306@eadmin1>, relay=#7#@localhost").unwrap();
        let Event::Queued {
            from,
            message_id,
            client,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(from, "root");
        assert_eq!(message_id, Some("200511091901.jA9J1UvC004306@eadmin1"));
        assert_eq!(client, None);
    }

    #[test]
    fn to_lines() {
        let e = parse("jA9J1UvC004306: to=root, ctladdr=root (0/0), delay=00:00:01, xdelay=00:00:00, mailer=relay, pri=659060, relay=[127.0.0.1] [127.0.0.1], dsn=4.0.0, stat=Deferred: Connection refused by [127.0.0.1]").unwrap();
        let Event::Delivery {
            to,
            status,
            dsn,
            delay,
            transport,
            relay,
            reply,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(to, "root");
        assert_eq!(status, DeliveryStatus::Deferred);
        assert_eq!(dsn, Some("4.0.0"));
        assert_eq!(delay.and_then(Delay::seconds), Some(1.0));
        assert_eq!(transport, Some("relay"));
        assert_eq!(relay, Some("[127.0.0.1] [127.0.0.1]"));
        assert_eq!(reply, Some("Deferred: Connection refused by [127.0.0.1]"));
        let e = parse("21QBRGdX006005: to=This, ctladdr=root (0/0), delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=180030, relay=[127.0.0.1] [127.0.0.1], dsn=5.1.1, stat=User unknown").unwrap();
        assert!(matches!(
            e,
            Event::Delivery {
                status: DeliveryStatus::Bounced,
                dsn: Some("5.1.1"),
                ..
            }
        ));
        let e = parse("21QCW5qq001837: to=<a@b.c>, delay=1+02:00:03, mailer=esmtp, pri=1, relay=mx.b.c. [192.0.2.1], dsn=2.0.0, stat=Sent (Ok: queued as DB951405DD14)").unwrap();
        let Event::Delivery {
            status,
            delay,
            reply,
            to,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(status, DeliveryStatus::Sent);
        assert_eq!(delay.and_then(Delay::seconds), Some(93603.0));
        assert_eq!(reply, Some("Ok: queued as DB951405DD14"));
        assert_eq!(to, "a@b.c");
    }

    #[test]
    fn auth_and_checks() {
        let e = parse("09DJDgOM005976: AUTH failure (PLAIN): authentication failure (-13) SASL(-13): authentication failure: Password verification failed, user=test, relay=host.example.com [192.0.2.8]").unwrap();
        let Event::AuthFailure {
            client,
            user,
            mechanism,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(client.ip, Some("192.0.2.8"));
        assert_eq!(user, Some("test"));
        assert_eq!(mechanism, Some("PLAIN"));
        let e = parse("06I02CNi016765: AUTH failure (LOGIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=criminal, relay=[192.0.2.100], relay=[192.0.2.4] (may be forged)").unwrap();
        assert!(matches!(
            e,
            Event::AuthFailure {
                client: Peer {
                    ip: Some("192.0.2.4"),
                    ..
                },
                ..
            }
        ));
        let e =
            parse("AUTH=server, relay=host [192.0.2.9], authid=taro, mech=LOGIN, bits=0").unwrap();
        assert!(matches!(
            e,
            Event::AuthSuccess {
                user: "taro",
                mechanism: Some("LOGIN"),
                client: Peer {
                    ip: Some("192.0.2.9"),
                    ..
                },
                ..
            }
        ));
        let e = parse("ruleset=check_rcpt, arg1=<x@y.z>, relay=host [192.0.2.3], reject=550 5.7.1 <x@y.z>... Relaying denied").unwrap();
        let Event::Check {
            action,
            stage,
            to,
            reason,
            client,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(action, Action::Reject);
        assert_eq!(stage, Some("RCPT"));
        assert_eq!(to, Some("x@y.z"));
        assert_eq!(reason, "550 5.7.1 <x@y.z>... Relaying denied");
        assert_eq!(client.unwrap().ip, Some("192.0.2.3"));
        let e = parse("x2TMpAlI024202: internettl.org [104.152.52.29] (may be forged) did not issue MAIL/EXPN/VRFY/ETRN during connection to MSA").unwrap();
        assert!(matches!(
            e,
            Event::Info {
                what: "no_mail",
                client: Some(Peer {
                    ip: Some("104.152.52.29"),
                    ..
                }),
                ..
            }
        ));
        let e = parse("06QDQnNf050438: example.com [IPv6:2001:DB8::1] did not issue MAIL/EXPN/VRFY/ETRN during connection to IPv6").unwrap();
        assert!(matches!(
            e,
            Event::Info {
                client: Some(Peer {
                    ip: Some("2001:DB8::1"),
                    ..
                }),
                ..
            }
        ));
        let e = parse("55HIbcGI002794: <baduser@yourhost.com>... User unknown").unwrap();
        assert!(matches!(
            e,
            Event::Check {
                to: Some("baduser@yourhost.com"),
                stage: Some("RCPT"),
                ..
            }
        ));
    }

    #[test]
    fn notices_and_info() {
        let e = parse("21QBRGdX006005: 21QBRGdY006005: DSN: User unknown").unwrap();
        assert_eq!(
            e,
            Event::Notice {
                qid: "21QBRGdX006005",
                kind: NoticeKind::NonDelivery,
                notice_qid: "21QBRGdY006005"
            }
        );
        assert!(matches!(
            parse("alias database /etc/aliases rebuilt by root"),
            Some(Event::Info {
                what: "aliases",
                ..
            })
        ));
        assert!(matches!(
            parse("unable to qualify my own domain name (eadmin1) -- using short name"),
            Some(Event::Info {
                what: "hostname",
                ..
            })
        ));
        assert_eq!(parse("what is this"), None);
    }
}
