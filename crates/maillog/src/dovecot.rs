//! Dovecot log messages.
//!
//! Dovecot 2.x logs through syslog as program `dovecot` with the process in the message
//! (`imap-login: Login: user=<u>, method=PLAIN, rip=…`, `auth-worker(123): pam(u,ip): …`);
//! Dovecot 1.x and some setups use the process as the syslog tag (`imap-login`, `dovecot-auth`,
//! `auth-worker(123)`). Either way the parser first finds the process (the *service tag*),
//! drops a log level (`Info: `, `Error: `…), then reads the text by service:
//!
//! - `*-login`: `Login:` is a successful login; `(auth failed, N attempts …)`, `(proxy dest
//!   auth failed)` and `(tried to use disallowed plaintext auth)` are failures; everything else
//!   (no auth attempts, TLS handshake failures) is a counted disconnect;
//! - `auth`, `auth-worker`, `dovecot-auth`: a passdb lookup `driver(user,ip[,<session>]):
//!   reason` or `pam_unix(dovecot:auth): authentication failure; … rhost=ip user=u`;
//! - `master`, `imap(user)`, `pop3(user)`, `lmtp(…)`, `lda(…)`: recognised and counted as
//!   [`Event::Info`].

use crate::bytes::find;
use crate::event::{Event, Peer, Service};

/// Parse a Dovecot message; `program` is the syslog tag (`dovecot`, `dovecot-auth`,
/// `imap-login`…). `None` when the line is not understood.
pub fn parse<'a>(program: &'a str, msg: &'a str) -> Option<Event<'a>> {
    // rsyslog's "message repeated 2 times: [ imap: Warning: …]"
    if let Some(r) = msg.strip_prefix("message repeated ") {
        let inner = r.find(": [").map(|p| &r[p + 3..]).unwrap_or("");
        let inner = inner.strip_suffix(']').unwrap_or(inner).trim_start();
        return if inner.starts_with("message repeated ") {
            None
        } else {
            parse(program, inner)
        };
    }
    let mut msg = msg;
    let mut service = if program.starts_with("dovecot") && program != "dovecot-auth" {
        ""
    } else {
        program
    };
    // Up to a few nested tags: "dovecot: auth(default): Info: pam(...)".
    for _ in 0..4 {
        msg = strip_level(msg);
        if let Some(rest) = msg.strip_prefix("dovecot: ") {
            msg = rest;
            continue;
        }
        match split_tag(msg) {
            Some((tag, rest)) if service.is_empty() || is_service_tag(tag) => {
                service = tag;
                msg = rest;
                // a worker connection prefix: "conn unix:auth-worker (pid=1,uid=2): auth-worker<55>: "
                if let Some(r) = msg.strip_prefix("conn unix:") {
                    if let Some(p) = r.find("): ") {
                        msg = &r[p + 3..];
                        if let Some((t, r2)) = split_tag(msg) {
                            if t.starts_with("auth-worker<") {
                                msg = r2;
                            }
                        }
                    }
                }
            }
            _ => break,
        }
    }
    let msg = strip_level(msg);
    if service.is_empty() {
        // Messages of the master process without a tag.
        if msg.starts_with("Dovecot v") || msg.starts_with("Dovecot ") {
            return info("master", None);
        }
        if msg.starts_with("Fatal") || msg.starts_with("Panic") || msg.starts_with("Auth process") {
            return info("error", None);
        }
        return None;
    }
    let base = service.split(['(', '[', '<']).next().unwrap_or(service);
    if let Some(proto) = base.strip_suffix("-login") {
        return login_line(proto, msg);
    }
    match base {
        "auth" | "auth-worker" | "dovecot-auth" => auth_line(service, msg),
        "master" => info("master", None),
        "imap" | "pop3" | "lmtp" | "lda" | "managesieve" | "submission" | "indexer"
        | "indexer-worker" | "config" | "anvil" | "log" | "stats" | "ssl-params"
        | "ssl-build-param" | "dict" | "quota-status" | "doveadm" | "replicator"
        | "imap-postlogin" | "pop3-postlogin" | "director" | "deliver" => {
            info(service_info_name(base), None)
        }
        _ => None,
    }
}

fn service_info_name(base: &str) -> &'static str {
    match base {
        "imap" => "imap",
        "pop3" => "pop3",
        "lmtp" => "lmtp",
        "lda" | "deliver" => "lda",
        "managesieve" => "managesieve",
        "submission" => "submission",
        "indexer" | "indexer-worker" => "indexer",
        "ssl-params" | "ssl-build-param" => "ssl_params",
        _ => "dovecot",
    }
}

fn info<'a>(what: &'static str, client: Option<Peer<'a>>) -> Option<Event<'a>> {
    Some(Event::Info {
        what,
        qid: None,
        client,
    })
}

/// Drop a Dovecot log level prefix.
fn strip_level(s: &str) -> &str {
    for l in [
        "Info: ",
        "Error: ",
        "Warning: ",
        "Fatal: ",
        "Panic: ",
        "Debug: ",
        "Warn: ",
    ] {
        if let Some(r) = s.strip_prefix(l) {
            return r;
        }
    }
    s
}

/// A leading `tag: ` without spaces (parentheses may hold commas).
fn split_tag(s: &str) -> Option<(&str, &str)> {
    let c = find(s, ": ")?;
    let tag = &s[..c];
    if tag.is_empty() || tag.contains(' ') {
        return None;
    }
    Some((tag, &s[c + 2..]))
}

fn is_service_tag(tag: &str) -> bool {
    let base = tag.split(['(', '[', '<']).next().unwrap_or(tag);
    base.ends_with("-login")
        || matches!(
            base,
            "auth"
                | "auth-worker"
                | "master"
                | "imap"
                | "pop3"
                | "lmtp"
                | "lda"
                | "managesieve"
                | "submission"
                | "indexer"
                | "indexer-worker"
                | "config"
                | "anvil"
                | "log"
                | "stats"
                | "ssl-params"
                | "dict"
                | "doveadm"
                | "imap-postlogin"
                | "deliver"
        )
}

fn login_service(proto: &str) -> Service {
    match proto {
        "imap" => Service::Imap,
        "pop3" => Service::Pop3,
        _ => Service::Other,
    }
}

/// Value of `key=` in a `k=v, k=v` list; `<…>` values lose their brackets.
fn kv<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(p) = find(&s[from..], key) {
        let at = from + p;
        let ok = at == 0 || matches!(s.as_bytes()[at - 1], b' ' | b',' | b'(' | b':');
        if ok {
            let v = &s[at + key.len()..];
            if let Some(inner) = v.strip_prefix('<') {
                return Some(&inner[..inner.find('>').unwrap_or(inner.len())]);
            }
            let end = v.find([',', ' ', ')']).unwrap_or(v.len());
            return Some(&v[..end]);
        }
        from = at + key.len();
    }
    None
}

fn rip_peer(s: &str) -> Option<Peer<'_>> {
    let ip = kv(s, "rip=")?;
    let port = kv(s, "rport=").and_then(|p| p.parse().ok());
    Some(Peer {
        host: None,
        ip: Some(ip),
        port,
    })
}

fn login_line<'a>(proto: &'a str, msg: &'a str) -> Option<Event<'a>> {
    let service = login_service(proto);
    let client = rip_peer(msg);
    if let Some(r) = msg.strip_prefix("Login: ") {
        let user = kv(r, "user=")?;
        return Some(Event::AuthSuccess {
            client: client.unwrap_or_default(),
            user,
            mechanism: kv(r, "method="),
            service,
        });
    }
    let failed = msg.contains("(auth failed")
        || msg.contains("(proxy dest auth failed")
        || msg.contains("(tried to use ")
        || msg.contains("(auth_failed)");
    // Reason: the text before ": user=" or ": rip=".
    let reason_end = msg
        .find(": user=")
        .or_else(|| msg.find(": rip="))
        .unwrap_or(msg.len());
    let reason = &msg[..reason_end];
    if failed {
        let user = kv(msg, "user=").filter(|u| !u.is_empty());
        return Some(Event::AuthFailure {
            client: client.unwrap_or_default(),
            user,
            mechanism: kv(msg, "method="),
            service,
            reason,
        });
    }
    if client.is_some()
        || msg.starts_with("Disconnected")
        || msg.starts_with("Aborted login")
        || msg.starts_with("Login aborted")
    {
        return info("login_disconnect", client);
    }
    info("login", None)
}

/// Known passdb/userdb driver names before `(user,ip…)`.
const DRIVERS: &[&str] = &[
    "pam",
    "passwd-file",
    "passwd",
    "shadow",
    "sql",
    "ldap",
    "checkpassword",
    "static",
    "bsdauth",
    "oauth2",
    "lua",
    "vpopmail",
    "userdb",
    "passdb",
    "dict",
    "imap",
];

fn auth_line<'a>(service: &'a str, msg: &'a str) -> Option<Event<'a>> {
    // pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=x rhost=ip  user=x
    if let Some(r) = msg.strip_prefix("pam_unix(") {
        if let Some(p) = r.find("): ") {
            let text = &r[p + 3..];
            if text.starts_with("authentication failure") {
                let ip = sp_kv(text, "rhost=");
                let user = sp_kv(text, "user=").or_else(|| sp_kv(text, "ruser="));
                return Some(Event::AuthFailure {
                    client: Peer {
                        host: None,
                        ip,
                        port: None,
                    },
                    user,
                    mechanism: None,
                    service: Service::Other,
                    reason: "authentication failure",
                });
            }
            return info("pam", None);
        }
    }
    // New style: tag "auth(user,ip,sasl:login)<session>" then "sql: Password mismatch".
    let (args, reason, driver) = if let Some(inner) = service
        .strip_prefix("auth(")
        .or_else(|| service.strip_prefix("auth-worker("))
    {
        let close = inner.find(')').unwrap_or(inner.len());
        let args = &inner[..close];
        if args.contains(',') {
            let (drv, reason) = match split_tag(msg) {
                Some((d, r)) => (Some(d), r),
                None => (None, msg),
            };
            (Some(args), reason, drv)
        } else {
            driver_call(msg)
        }
    } else {
        driver_call(msg)
    };
    let Some(args) = args else {
        return info("auth", None);
    };
    let mut it = args.splitn(3, ',');
    let user = it.next().filter(|u| !u.is_empty());
    let ip = it
        .next()
        .filter(|i| !i.is_empty() && i.bytes().any(|c| c == b'.' || c == b':'));
    let r = reason.trim();
    let fail = r.starts_with("unknown user")
        || r.starts_with("Password mismatch")
        || r.starts_with("pam_authenticate() failed")
        || r.starts_with("invalid credentials")
        || r.starts_with("Invalid password")
        || r.contains("password mismatch")
        || r.starts_with("user not found");
    if !fail {
        return info(
            "auth",
            Some(Peer {
                host: None,
                ip,
                port: None,
            })
            .filter(|p| p.ip.is_some()),
        );
    }
    Some(Event::AuthFailure {
        client: Peer {
            host: None,
            ip,
            port: None,
        },
        user,
        mechanism: driver,
        service: Service::Other,
        reason: r,
    })
}

/// Find `driver(args): reason` in `msg`: (args, reason, driver).
fn driver_call(msg: &str) -> (Option<&str>, &str, Option<&str>) {
    for d in DRIVERS {
        let mut from = 0;
        while let Some(p) = msg[from..].find(d) {
            let at = from + p;
            from = at + d.len();
            let before_ok = at == 0 || msg.as_bytes()[at - 1] == b' ';
            let after = &msg[at + d.len()..];
            if !before_ok || !after.starts_with('(') {
                continue;
            }
            if let Some(c) = after.find("): ") {
                return (Some(&after[1..c]), &after[c + 3..], Some(d));
            }
            if let Some(args) = after.strip_suffix(')') {
                return (Some(&args[1..]), "", Some(d));
            }
        }
    }
    (None, msg, None)
}

/// Value of ` key=` (space-separated list, key after a space or at the start).
fn sp_kv<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(p) = find(&s[from..], key) {
        let at = from + p;
        if at == 0 || s.as_bytes()[at - 1] == b' ' {
            let v = &s[at + key.len()..];
            let v = &v[..v.find(' ').unwrap_or(v.len())];
            return if v.is_empty() { None } else { Some(v) };
        }
        from = at + key.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(program: &str, msg: &str) -> (Option<String>, Option<String>, Service) {
        match parse(program, msg) {
            Some(Event::AuthFailure {
                client,
                user,
                service,
                ..
            }) => (
                client.ip.map(str::to_owned),
                user.map(str::to_owned),
                service,
            ),
            other => panic!("{msg}: {other:?}"),
        }
    }

    #[test]
    fn login_success() {
        let e = parse(
            "dovecot",
            "imap-login: Login: user=<u1>, method=PLAIN, rip=192.168.1.5, lip=192.168.1.1, mpid=1571, TLS, session=<abc>",
        );
        assert_eq!(
            e,
            Some(Event::AuthSuccess {
                client: Peer {
                    host: None,
                    ip: Some("192.168.1.5"),
                    port: None
                },
                user: "u1",
                mechanism: Some("PLAIN"),
                service: Service::Imap,
            })
        );
    }

    #[test]
    fn login_failures() {
        let (ip, user, svc) = fail(
            "dovecot",
            "imap-login: Aborted login (auth failed, 3 attempts in 15 secs): user=<u>, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8, session=<x>",
        );
        assert_eq!(
            (ip.as_deref(), user.as_deref(), svc),
            (Some("1.2.3.4"), Some("u"), Service::Imap)
        );
        let (ip, user, svc) = fail(
            "dovecot",
            "pop3-login: Disconnected: Inactivity (auth failed, 1 attempts): user=<info>, method=PLAIN, rip=193.95.245.163, lip=176.214.13.210",
        );
        assert_eq!(
            (ip.as_deref(), user.as_deref(), svc),
            (Some("193.95.245.163"), Some("info"), Service::Pop3)
        );
        let (_, _, svc) = fail(
            "dovecot",
            "managesieve-login: Login aborted: Logged out (auth failed, 1 attempts in 10 secs) (auth_failed): user=<user@domain>, method=PLAIN, rip=192.0.2.241, lip=203.0.113.104, TLS",
        );
        assert_eq!(svc, Service::Other);
        let (ip, user, _) = fail(
            "imap-login",
            "Info: Aborted login (auth failed, 1 attempts): user=<martin@waschbuesch.de>, method=CRAM-MD5, rip=80.187.101.33, lip=80.254.129.240, TLS",
        );
        assert_eq!(
            (ip.as_deref(), user.as_deref()),
            (Some("80.187.101.33"), Some("martin@waschbuesch.de"))
        );
    }

    #[test]
    fn backend_failures() {
        let (ip, user, _) = fail("dovecot", "auth-worker(304): pam(username,1.2.3.4): pam_authenticate() failed: Authentication failure (password mismatch?)");
        assert_eq!(
            (ip.as_deref(), user.as_deref()),
            (Some("1.2.3.4"), Some("username"))
        );
        let (ip, user, _) = fail(
            "dovecot",
            "auth: passwd-file(username,1.2.3.4): unknown user",
        );
        assert_eq!(
            (ip.as_deref(), user.as_deref()),
            (Some("1.2.3.4"), Some("username"))
        );
        let (ip, user, _) = fail(
            "dovecot",
            "auth: sql(admin@example.ru,192.168.144.226,<6rXunFtu493AqJDi>): Password mismatch",
        );
        assert_eq!(
            (ip.as_deref(), user.as_deref()),
            (Some("192.168.144.226"), Some("admin@example.ru"))
        );
        let (ip, user, _) = fail(
            "dovecot",
            "auth-worker(5787): conn unix:auth-worker (pid=27359,uid=97): auth-worker<55>: pam(webapps,192.0.2.7): unknown user",
        );
        assert_eq!(
            (ip.as_deref(), user.as_deref()),
            (Some("192.0.2.7"), Some("webapps"))
        );
        let (ip, user, _) = fail(
            "dovecot-auth",
            "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=rhost=1.2.3.4 rhost=192.0.43.10",
        );
        assert_eq!(
            (ip.as_deref(), user.as_deref()),
            (Some("192.0.43.10"), Some("rhost=1.2.3.4"))
        );
        let (ip, user, _) = fail(
            "dovecot-auth",
            "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=root rhost=176.61.140.225  user=root",
        );
        assert_eq!(
            (ip.as_deref(), user.as_deref()),
            (Some("176.61.140.225"), Some("root"))
        );
        let (ip, user, _) = fail("dovecot", "dovecot: auth(default): pam(account@x.com,200.76.17.206): pam_authenticate() failed: User not known");
        assert_eq!(
            (ip.as_deref(), user.as_deref()),
            (Some("200.76.17.206"), Some("account@x.com"))
        );
    }

    #[test]
    fn infos() {
        assert!(matches!(
            parse(
                "dovecot",
                "master: Dovecot v2.2.33.2 (d6601f4ec) starting up for imap, pop3"
            ),
            Some(Event::Info { what: "master", .. })
        ));
        assert!(matches!(
            parse("dovecot", "imap(u1): Connection closed in=0 out=384"),
            Some(Event::Info { what: "imap", .. })
        ));
        assert!(matches!(
            parse("dovecot", "imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=192.168.1.5, lip=192.168.1.1, session=<x>"),
            Some(Event::Info { what: "login_disconnect", client: Some(Peer { ip: Some("192.168.1.5"), .. }), .. })
        ));
        assert!(matches!(
            parse(
                "dovecot",
                "Dovecot v1.2.rc3 starting up (core dumps disabled)"
            ),
            Some(Event::Info { what: "master", .. })
        ));
        assert_eq!(parse("dovecot", "something else entirely"), None);
    }
}
