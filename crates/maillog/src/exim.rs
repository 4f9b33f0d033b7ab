//! Exim main-log messages (after the time stamp and optional `[pid]`).
//!
//! Exim writes one line per fact, keyed by the message id when the line is about a message:
//! `ID <= sender …` (arrival), `ID => addr …` / `->` / `*>` / `>>` (delivery), `ID ** addr …`
//! (failure), `ID == addr …` (deferral), `ID Completed`. Lines about an SMTP session rather than
//! a message start with `H=host (helo) [ip]` or a fixed phrase (`SMTP connection from …`,
//! `… authenticator failed for …`).
//!
//! Both message-id forms are accepted: `1j5IF1-0006A7-Ub` (6-6-2, up to Exim 4.96) and
//! `1j5IF1-000000006A7-0000` (6-11-4, Exim 4.97+). Fields are `KEY=value` words; `H=` spans
//! `host (helo) [ip]:port` and quoted values (`T="…"`, `C="…"`) may hold spaces. Unknown
//! fields are skipped, so new log selectors do not break recognition.
//!
//! The scanner works on byte offsets into the borrowed line and never allocates.

use crate::event::{unbracket, Action, DeliveryStatus, Event, Peer, Service};

/// Longest `KEY` of a `KEY=value` field we treat as a field (Exim's longest is `DKIM`/`M8S`;
/// this leaves room for `Ci`, `SNI`, `PRDR`, `CHUNKING` style additions).
const MAX_FIELD_KEY: usize = 10;

/// Parse an Exim main-log message. `None` when the line is not understood.
pub fn parse(msg: &str) -> Option<Event<'_>> {
    let msg = skip_prefixes(msg);
    if let Some((id, rest)) = split_id(msg) {
        return parse_id_line(id, rest);
    }
    parse_session_line(msg)
}

/// Skip what a syslog-wrapped line may still carry: Exim's own `YYYY-MM-DD HH:MM:SS[.fff]
/// [+zone] [pid]` stamp, and a stray `host exim[pid]: ` tag after a native stamp.
fn skip_prefixes(msg: &str) -> &str {
    let mut s = msg;
    let b = s.as_bytes();
    if is_date_time(b) {
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b' ')) && matches!(b.get(i + 1), Some(b'+' | b'-')) {
            let z = &b[i + 2..];
            if z.len() >= 4
                && z[..4].iter().all(u8::is_ascii_digit)
                && z.get(4).is_none_or(|c| *c == b' ')
            {
                i += 6;
            }
        }
        s = skip_pid(s.get(i..).unwrap_or("").trim_start_matches(' '));
    }
    // "mx1.example exim[29786]: msg" (host and tag after a native stamp)
    if let Some(sp) = s.find(' ') {
        let rest = &s[sp + 1..];
        if rest.starts_with("exim") {
            if let Some(c) = rest.find(": ") {
                let tag = &rest[..c];
                if !tag.contains(' ')
                    && (tag.ends_with(']') || tag.bytes().all(|c| c.is_ascii_alphanumeric()))
                {
                    return skip_prefixes_once(&rest[c + 2..]);
                }
            }
        }
    }
    s
}

/// The stamp skip only, for the text after a `host exim[pid]: ` tag.
fn skip_prefixes_once(s: &str) -> &str {
    if is_date_time(s.as_bytes()) {
        return skip_prefixes(s);
    }
    skip_pid(s)
}

/// `[1234] ` (Exim's `pid` log selector).
fn skip_pid(s: &str) -> &str {
    if s.starts_with('[') {
        if let Some(e) = s.find("] ") {
            if s[1..e].bytes().all(|c| c.is_ascii_alphanumeric()) {
                return &s[e + 2..];
            }
        }
    }
    s
}

fn is_date_time(b: &[u8]) -> bool {
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

/// Whether `t` is an Exim message id: `XXXXXX-XXXXXX-XX` or `XXXXXX-XXXXXXXXXXX-XXXX`.
pub fn is_message_id(t: &str) -> bool {
    let b = t.as_bytes();
    let ok = |r: &[u8]| r.iter().all(u8::is_ascii_alphanumeric);
    match b.len() {
        16 => b[6] == b'-' && b[13] == b'-' && ok(&b[..6]) && ok(&b[7..13]) && ok(&b[14..]),
        23 => b[6] == b'-' && b[18] == b'-' && ok(&b[..6]) && ok(&b[7..18]) && ok(&b[19..]),
        _ => false,
    }
}

/// A leading message id and the text after it.
fn split_id(msg: &str) -> Option<(&str, &str)> {
    let sp = msg.find(' ');
    let tok = &msg[..sp.unwrap_or(msg.len())];
    if !is_message_id(tok) {
        return None;
    }
    Some((tok, sp.map(|p| &msg[p + 1..]).unwrap_or("")))
}

// ---------------------------------------------------------------------------------------------
// Field scanning

/// One item of an Exim field list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// `KEY=value` (quotes removed from a quoted value).
    Field(&'a str, &'a str),
    /// A bare word.
    Word(&'a str),
}

/// Iterator over `KEY=value` fields and bare words, honouring quotes and `H=` host specs.
struct Fields<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(s: &'a str) -> Self {
        Fields { s, pos: 0 }
    }

    /// The text from the current position (after spaces) to the end.
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("").trim_start_matches(' ')
    }
}

fn field_key(tok: &str) -> Option<usize> {
    let eq = tok.find('=')?;
    if eq == 0 || eq > MAX_FIELD_KEY {
        return None;
    }
    let k = tok.as_bytes();
    if !k[0].is_ascii_alphabetic()
        || !k[1..eq]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        return None;
    }
    Some(eq)
}

/// End (exclusive) of a host spec `host (helo) [ip]:port` starting at `start`.
fn host_spec_end(s: &str, start: usize) -> usize {
    let b = s.as_bytes();
    let mut p = start;
    loop {
        match b.get(p) {
            Some(b'(') => {
                // helo in parentheses; may hold spaces in odd cases, so look for ") ".
                let close = s[p..].find(") ").map(|c| p + c + 1).or_else(|| {
                    if s.ends_with(')') {
                        Some(s.len())
                    } else {
                        None
                    }
                });
                match close {
                    Some(c) => p = c,
                    None => return word_end(s, p),
                }
            }
            Some(b'[') => {
                let Some(c) = s[p..].find(']') else {
                    return word_end(s, p);
                };
                p += c + 1;
                if b.get(p) == Some(&b':') && b.get(p + 1).is_some_and(u8::is_ascii_digit) {
                    p += 1;
                    while b.get(p).is_some_and(u8::is_ascii_digit) {
                        p += 1;
                    }
                }
                return p;
            }
            Some(_) => p = word_end(s, p),
            None => return p,
        }
        // continue with " (" or " [" only
        if b.get(p) == Some(&b' ') && matches!(b.get(p + 1), Some(b'(' | b'[')) {
            p += 1;
        } else {
            return p;
        }
    }
}

fn word_end(s: &str, p: usize) -> usize {
    s[p..].find(' ').map(|e| p + e).unwrap_or(s.len())
}

impl<'a> Iterator for Fields<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        let s = self.s;
        let b = s.as_bytes();
        while b.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
        let start = self.pos;
        if start >= s.len() {
            return None;
        }
        let we = word_end(s, start);
        let word = &s[start..we];
        if let Some(eq) = field_key(word) {
            let key = &s[start..start + eq];
            let vs = start + eq + 1;
            if b.get(vs) == Some(&b'"') {
                // quoted value with backslash escapes
                let mut i = vs + 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(b.len());
                self.pos = (end + 1).min(b.len());
                return Some(Tok::Field(key, &s[vs + 1..end]));
            }
            if key == "H" {
                let end = host_spec_end(s, vs);
                self.pos = end;
                return Some(Tok::Field(key, &s[vs..end]));
            }
            self.pos = we;
            return Some(Tok::Field(key, &s[vs..we]));
        }
        self.pos = we;
        Some(Tok::Word(word))
    }
}

/// `host (helo) [ip]:port`, `(helo) [ip]`, `[ip]`, `host [ip]`, `host`: peer and helo.
pub(crate) fn host_peer(v: &str) -> (Peer<'_>, Option<&str>) {
    let v = v.trim_end_matches(':');
    let (before, ip, port) = match v.rfind('[') {
        Some(lb) => {
            let rest = &v[lb + 1..];
            match rest.find(']') {
                Some(rb) => {
                    let port = rest[rb + 1..]
                        .strip_prefix(':')
                        .and_then(|p| p.parse().ok());
                    (v[..lb].trim_end(), Some(&rest[..rb]), port)
                }
                None => (v, None, None),
            }
        }
        None => (v, None, None),
    };
    let (host, helo) = if before.ends_with(')') {
        match before.find('(') {
            Some(lp) => (
                before[..lp].trim_end(),
                Some(&before[lp + 1..before.len() - 1]),
            ),
            None => (before, None),
        }
    } else {
        (before, None)
    };
    (
        Peer {
            host: if host.is_empty() { None } else { Some(host) },
            ip: ip.filter(|i| !i.is_empty()),
            port,
        },
        helo,
    )
}

/// The enhanced status code (`5.1.1`) in a reply, if any.
pub(crate) fn enhanced_code(reply: &str) -> Option<&str> {
    let b = reply.as_bytes();
    let mut i = 0;
    while i + 5 <= b.len() {
        if matches!(b[i], b'2' | b'4' | b'5')
            && b[i + 1] == b'.'
            && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'#')
        {
            let mut j = i + 2;
            let d1 = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > d1 && j - d1 <= 3 && b.get(j) == Some(&b'.') {
                j += 1;
                let d2 = j;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j > d2
                    && j - d2 <= 3
                    && b.get(j)
                        .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'.')
                {
                    return Some(&reply[i..j]);
                }
            }
        }
        i += 1;
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

// ---------------------------------------------------------------------------------------------
// Lines with a message id

fn parse_id_line<'a>(id: &'a str, rest: &'a str) -> Option<Event<'a>> {
    let (flag, after) = match rest.find(' ') {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, ""),
    };
    match flag {
        "<=" => return arrival(id, after),
        "=>" | "->" | "*>" | ">>" => return delivery_ok(id, after),
        "**" => return delivery_fail(id, after, DeliveryStatus::Bounced),
        "==" => return delivery_fail(id, after, DeliveryStatus::Deferred),
        "Completed" => return Some(Event::Removed { qid: id }),
        _ => {}
    }
    if rest.starts_with("removed by ") || rest.starts_with("Message removed") {
        return Some(Event::Removed { qid: id });
    }
    if rest.starts_with("Frozen")
        || rest.starts_with("frozen by")
        || rest.starts_with("Message is frozen")
    {
        return info("frozen", Some(id), None);
    }
    if rest.starts_with("Unfrozen") || rest.starts_with("unfrozen by") {
        return info("unfrozen", Some(id), None);
    }
    if rest.starts_with("H=") || rest.starts_with("U=") || rest.starts_with("F=") {
        if let Some(ev) = session_fields(Some(id), rest) {
            return Some(ev);
        }
    }
    let simple: &[(&str, &'static str)] = &[
        ("Spool file is locked", "spool_locked"),
        ("Spool file", "spool"),
        ("Error while reading message", "read_error"),
        ("SMTP error from remote mail server", "remote_smtp_error"),
        ("SMTP error from remote mailer", "remote_smtp_error"),
        ("SMTP data timeout", "timeout"),
        ("SMTP timeout", "timeout"),
        ("retry time not reached", "retry_not_reached"),
        ("Sender identification", "sender_identification"),
        ("SA: ", "spamassassin"),
        ("cancelled by", "cancelled"),
        ("no immediate delivery", "no_immediate_delivery"),
        ("DKIM: ", "dkim"),
        ("DKIM:", "dkim"),
        ("ARC: ", "arc"),
        ("SPF: ", "spf"),
        ("TLS error", "tls_error"),
        ("TLS session", "tls"),
        ("tls_out", "tls"),
        ("Warning: ", "warning"),
        ("original recipients ignored", "recipients_ignored"),
        ("post-delivery", "post_delivery"),
        ("Unknown ", "unknown"),
        ("malware", "malware"),
        ("Delivery deferred", "deferred"),
        ("delivery deferred", "deferred"),
        ("unable to ", "error"),
        ("Failed to ", "error"),
        ("failed to ", "error"),
        ("error ", "error"),
        ("Error ", "error"),
        ("event ", "event"),
        ("Received ", "received"),
        ("Authentication-Results:", "auth_results"),
        ("ratelimit", "ratelimit"),
        ("has been frozen", "frozen"),
        ("return path", "return_path"),
        ("bounce", "bounce"),
        ("was removed", "removed"),
    ];
    if rest.starts_with("SA: ") {
        // sa-exim: "… From <a@b> (host=name [ip]) for x@y"
        let client = rest.find("(host=").and_then(|p| {
            let v = &rest[p + 6..];
            let (peer, _) = host_peer(&v[..v.find(')').unwrap_or(v.len())]);
            let host = peer.host.filter(|h| *h != "NULL");
            peer.ip.map(|_| Peer { host, ..peer })
        });
        return info("spamassassin", Some(id), client);
    }
    for (p, what) in simple {
        if rest.starts_with(p) {
            return info(what, Some(id), None);
        }
    }
    // Session lines written inside a message's context ("ID SMTP connection from … closed by
    // DROP in ACL"): keep the id on Info events.
    if let Some(ev) = parse_session_line(rest) {
        return Some(match ev {
            Event::Info { what, client, .. } => Event::Info {
                what,
                qid: Some(id),
                client,
            },
            Event::Connect { client }
            | Event::Disconnect { client, .. }
            | Event::Helo { client, .. } => Event::Info {
                what: "smtp_connection",
                qid: Some(id),
                client: Some(client),
            },
            Event::Check {
                action,
                stage,
                client,
                reason,
                from,
                to,
                proto,
                helo,
                ..
            } => Event::Check {
                qid: Some(id),
                action,
                stage,
                client,
                reason,
                from,
                to,
                proto,
                helo,
            },
            other => other,
        });
    }
    // "ID [ip] Connection timed out", "ID H=host [ip] Connection refused", "ID host [ip]: ..."
    if rest.starts_with('[') || rest.contains(" [") {
        let end = host_spec_end(rest, 0);
        let spec = &rest[..end];
        if spec.ends_with(']') || spec.contains("]:") {
            let (peer, _) = host_peer(spec);
            if peer.ip.is_some() {
                return info("remote_host", Some(id), Some(peer));
            }
        }
    }
    // "ID addr: error ignored", "ID addr <x>: ... "
    if let Some(c) = rest.find(": ") {
        let head = &rest[..c];
        if !head.contains(' ') && head.contains('@') {
            return info("address_error", Some(id), None);
        }
    }
    if rest.contains("defer (") || rest.contains("routing defer") {
        return info("deferred", Some(id), None);
    }
    // Any other line that starts with a message id is Exim (or an ACL `logwrite`) saying
    // something about that message: keep the id, name it generically.
    info("message_note", Some(id), None)
}

fn arrival<'a>(id: &'a str, after: &'a str) -> Option<Event<'a>> {
    let sp = after.find(' ').unwrap_or(after.len());
    let sender = unbracket(&after[..sp]);
    let mut size = None;
    let mut client = None;
    let mut helo = None;
    let mut auth_user = None;
    let mut local_user = None;
    let mut proto = None;
    let mut message_id = None;
    let mut parent = None;
    let mut nrcpt: Option<u32> = None;
    let mut in_for = false;
    for t in Fields::new(&after[sp..]) {
        match t {
            Tok::Field(k, v) => match k {
                "H" => {
                    let (p, h) = host_peer(v);
                    client = Some(p);
                    helo = h;
                }
                "U" => local_user = Some(v),
                "P" => proto = Some(v),
                "A" => {
                    // "dovecot_login:user", "plain:user", or just the authenticator name
                    if let Some(c) = v.find(':') {
                        auth_user = Some(&v[c + 1..]);
                    }
                }
                "S" => size = v.parse().ok(),
                "id" => message_id = Some(unbracket(v)),
                "R" => parent = Some(v),
                _ => {}
            },
            Tok::Word(w) => {
                if w == "for" {
                    in_for = true;
                    nrcpt = Some(0);
                } else if in_for {
                    nrcpt = nrcpt.map(|n| n.saturating_add(1));
                }
            }
        }
    }
    Some(Event::Queued {
        qid: id,
        from: sender,
        size,
        nrcpt,
        client,
        helo,
        auth_user,
        local_user,
        proto,
        message_id,
        parent,
    })
}

/// The recipient and the optional `<original>` address at the start of a delivery line.
fn delivery_addresses(s: &str) -> (&str, Option<&str>, &str) {
    let sp = s.find(' ').unwrap_or(s.len());
    let to = &s[..sp];
    let mut rest = s[sp..].trim_start_matches(' ');
    // "(parent)": the address a pipe, file or one-time alias was generated from; it stands for
    // the original when no "<original>" follows.
    let mut orig = None;
    if rest.starts_with('(') {
        if let Some(e) = rest.find(") ") {
            orig = Some(&rest[1..e]);
            rest = &rest[e + 2..];
        } else if rest.ends_with(')') {
            orig = Some(&rest[1..rest.len() - 1]);
            rest = "";
        }
    }
    if rest.starts_with('<') {
        if let Some(e) = rest.find('>') {
            orig = Some(&rest[1..e]);
            rest = &rest[e + 1..];
        }
    }
    (to, orig, rest)
}

fn delivery_ok<'a>(id: &'a str, after: &'a str) -> Option<Event<'a>> {
    let (to, orig_to, rest) = delivery_addresses(after);
    let mut relay = None;
    let mut transport = None;
    let mut reply = None;
    for t in Fields::new(rest) {
        if let Tok::Field(k, v) = t {
            match k {
                "H" => relay = Some(v),
                "T" => transport = Some(v),
                "C" => reply = Some(v),
                _ => {}
            }
        }
    }
    let status = if to == ":blackhole:" {
        DeliveryStatus::Discarded
    } else {
        DeliveryStatus::Sent
    };
    Some(Event::Delivery {
        qid: id,
        to,
        orig_to,
        relay,
        transport,
        delay: None,
        delays: None,
        dsn: reply.and_then(enhanced_code),
        status,
        reply,
    })
}

fn delivery_fail<'a>(id: &'a str, after: &'a str, status: DeliveryStatus) -> Option<Event<'a>> {
    let (head, reply) = match after.find(": ") {
        Some(c) => (&after[..c], Some(after[c + 2..].trim())),
        None => (after.trim_end_matches(':'), None),
    };
    let (to, orig_to, rest) = delivery_addresses(head);
    let mut relay = None;
    let mut transport = None;
    for t in Fields::new(rest) {
        if let Tok::Field(k, v) = t {
            match k {
                "H" => relay = Some(v),
                "T" => transport = Some(v),
                _ => {}
            }
        }
    }
    Some(Event::Delivery {
        qid: id,
        to,
        orig_to,
        relay,
        transport,
        delay: None,
        delays: None,
        dsn: reply.and_then(enhanced_code),
        status,
        reply,
    })
}

// ---------------------------------------------------------------------------------------------
// Session lines (no message id, or a message id followed by H=/U=/F= fields)

/// Lines that start with `H=`, `U=`, `F=` fields followed by a verb phrase.
fn session_fields<'a>(qid: Option<&'a str>, s: &'a str) -> Option<Event<'a>> {
    let mut client = None;
    let mut helo = None;
    let mut from = None;
    let mut proto = None;
    let mut fields = Fields::new(s);
    let mut verb = "";
    loop {
        let before = fields.rest();
        match fields.next() {
            Some(Tok::Field(k, v)) => match k {
                "H" => {
                    let (p, h) = host_peer(v);
                    client = Some(p);
                    helo = h;
                }
                "F" => from = Some(unbracket(v)),
                "P" => proto = Some(v),
                _ => {}
            },
            Some(Tok::Word(_)) => {
                verb = before;
                break;
            }
            None => break,
        }
    }
    let check = |action: Action,
                 stage: Option<&'a str>,
                 reason: &'a str,
                 to: Option<&'a str>,
                 from2: Option<&'a str>| {
        Some(Event::Check {
            qid,
            action,
            stage,
            client,
            reason,
            from: from2.or(from),
            to,
            proto,
            helo,
        })
    };
    let (action, v) = if let Some(v) = verb.strip_prefix("temporarily rejected ") {
        (Action::Defer, v)
    } else if let Some(v) = verb.strip_prefix("rejected ") {
        (Action::Reject, v)
    } else if let Some(v) = verb.strip_prefix("refused ") {
        (Action::Reject, v)
    } else if let Some(r) = verb.strip_prefix("Warning: ") {
        return check(Action::Warn, None, r, None, None);
    } else if let Some(r) = verb
        .strip_prefix("sender verify fail for ")
        .or_else(|| verb.strip_prefix("sender verify defer for "))
    {
        let (addr, reason) = addr_reason(r);
        return check(Action::Warn, Some("RCPT"), reason, None, Some(addr));
    } else if let Some(r) = verb.strip_prefix("recipient verify fail for ") {
        let (addr, reason) = addr_reason(r);
        return check(Action::Warn, Some("RCPT"), reason, Some(addr), None);
    } else if verb.starts_with("rejected") || verb == "rejected" {
        (Action::Reject, "")
    } else {
        if client.is_some() || from.is_some() || qid.is_some() {
            let what = session_info_name(verb);
            return info(what, qid, client);
        }
        return None;
    };
    // v is what follows "rejected ": "RCPT <to>: reason", "MAIL <from>: reason", "after DATA: r",
    // "connection in "connect" ACL: r", "EHLO or HELO …", "by local_scan(): r", "DATA: r" …
    if let Some(r) = v.strip_prefix("RCPT ") {
        let (addr, reason) = addr_reason(r);
        return check(action, Some("RCPT"), reason, Some(addr), None);
    }
    if let Some(r) = v.strip_prefix("MAIL ") {
        let (addr, reason) = addr_reason(r);
        return check(action, Some("MAIL"), reason, None, Some(addr));
    }
    if let Some(r) = v.strip_prefix("after DATA") {
        return check(action, Some("DATA"), reason_after_colon(r), None, None);
    }
    if v.starts_with("by local_scan()") || v.starts_with("by non-SMTP ACL") {
        return check(action, Some("DATA"), reason_after_colon(v), None, None);
    }
    if v.starts_with("connection") {
        return check(action, Some("CONNECT"), reason_after_colon(v), None, None);
    }
    let w = &v[..v.find([' ', ':']).unwrap_or(v.len())];
    let stage = if !w.is_empty() && w.bytes().all(|c| c.is_ascii_uppercase()) {
        Some(w)
    } else {
        None
    };
    check(action, stage, reason_after_colon(v), None, None)
}

fn session_info_name(verb: &str) -> &'static str {
    const NAMES: &[(&str, &str)] = &[
        ("Connection refused", "connection_refused"),
        ("Connection timed out", "connection_timeout"),
        ("dropped", "dropped"),
        ("lost", "lost"),
        ("closed", "closed"),
        ("no MAIL", "no_mail"),
        ("incomplete transaction", "incomplete_transaction"),
        ("SMTP ", "smtp_error"),
        ("TLS ", "tls"),
        ("ratelimit", "ratelimit"),
        ("accepted", "accepted"),
        ("ACL ", "acl"),
    ];
    for (p, n) in NAMES {
        if verb.starts_with(p) {
            return n;
        }
    }
    "session"
}

/// `<addr>: reason` or `addr: reason` -> (addr without brackets, reason).
fn addr_reason(r: &str) -> (&str, &str) {
    if r.starts_with('<') {
        if let Some(e) = r.find('>') {
            let addr = &r[1..e];
            return (addr, reason_after_colon(&r[e + 1..]));
        }
    }
    match r.find(": ") {
        Some(c) => (r[..c].trim_end_matches(':').trim(), r[c + 2..].trim()),
        None => {
            let sp = r.find(' ').unwrap_or(r.len());
            (r[..sp].trim_end_matches(':'), r[sp..].trim())
        }
    }
}

fn reason_after_colon(r: &str) -> &str {
    match r.find(": ") {
        Some(c) => r[c + 2..].trim(),
        None => r.trim_start_matches(':').trim(),
    }
}

/// A host spec right after `prefix` in `s`, stripped of an optional `H=`.
fn peer_after<'a>(s: &'a str, prefix: &str) -> Option<(Peer<'a>, Option<&'a str>, &'a str)> {
    let p = s.find(prefix)? + prefix.len();
    let p = if s[p..].starts_with("H=") { p + 2 } else { p };
    let end = host_spec_end(s, p);
    let (peer, helo) = host_peer(&s[p..end]);
    Some((peer, helo, &s[end..]))
}

fn parse_session_line(msg: &str) -> Option<Event<'_>> {
    let b = msg.as_bytes();
    if b.first().is_some_and(|c| c.is_ascii_uppercase()) && b.get(1) == Some(&b'=') {
        return session_fields(None, msg);
    }
    if let Some(p) = msg.find(" authenticator failed for ") {
        let mechanism = &msg[..p];
        if !mechanism.contains(' ') {
            let (client, _helo, tail) = peer_after(msg, " authenticator failed for ")?;
            let reason = reason_after_colon(tail);
            let user = reason.find("(set_id=").and_then(|s| {
                let v = &reason[s + 8..];
                v.find(')').map(|e| &v[..e])
            });
            return Some(Event::AuthFailure {
                client,
                user,
                mechanism: Some(mechanism),
                service: Service::Smtp,
                reason,
            });
        }
    }
    if let Some(r) = msg.strip_prefix("SMTP connection from ") {
        let r = r.strip_prefix("H=").unwrap_or(r);
        let end = host_spec_end(r, 0);
        let (client, helo) = host_peer(&r[..end]);
        let tail = r[end..].trim_start();
        // skip I=[ip]:port and other fields before the verb
        let mut verb = tail;
        for t in Fields::new(tail) {
            if let Tok::Word(w) = t {
                verb = &tail[tail.find(w).unwrap_or(0)..];
                break;
            }
        }
        if verb.starts_with("(TCP/IP connection count") || tail.is_empty() {
            return Some(match helo {
                Some(h) => Event::Helo { client, helo: h },
                None => Event::Connect { client },
            });
        }
        if verb.starts_with("lost") || verb.starts_with("closed") || verb.starts_with("D=") {
            return Some(Event::Disconnect {
                client,
                commands: None,
                auth: None,
            });
        }
        return info("smtp_connection", None, Some(client));
    }
    type Rule = (&'static str, &'static str, &'static str);
    // (line prefix, marker the peer follows, what)
    const PEER_RULES: &[Rule] = &[
        ("SMTP protocol error", " H=", "protocol_error"),
        ("SMTP protocol synchronization error", " H=", "sync_error"),
        ("SMTP syntax error", " H=", "syntax_error"),
        (
            "SMTP command timeout on connection from ",
            "from ",
            "timeout",
        ),
        (
            "SMTP command timeout on TLS connection from ",
            "from ",
            "timeout",
        ),
        (
            "SMTP data timeout (message abandoned) on connection from ",
            "from ",
            "timeout",
        ),
        ("SMTP timeout on connection from", "from ", "timeout"),
        ("SMTP call from ", "from ", "dropped"),
        (
            "unexpected disconnection while reading SMTP command from ",
            "from ",
            "unexpected_disconnect",
        ),
        ("unexpected disconnection", "from ", "unexpected_disconnect"),
        ("TLS error on connection from ", "from ", "tls_error"),
        ("TLS error on connection to ", "to ", "tls_error"),
        ("TLS client disconnected", "from ", "tls_error"),
        ("no MAIL in SMTP connection from ", "from ", "no_mail"),
        ("no MAIL in ", "from ", "no_mail"),
        ("Connection from ", "from ", "refused"),
        ("SMTP incomplete transaction lost", "from ", "lost"),
        ("rejected EHLO from ", "from ", "rejected_helo"),
        ("rejected HELO from ", "from ", "rejected_helo"),
        ("rejected ", " H=", "rejected"),
        (
            "no host name found for IP address ",
            "address ",
            "no_host_name",
        ),
        (
            "no IP address found for host ",
            "connection from ",
            "no_ip_address",
        ),
        (
            "host name alias list truncated for ",
            "for ",
            "alias_truncated",
        ),
        ("SMTP connection lost", "from ", "lost"),
    ];
    for (prefix, marker, what) in PEER_RULES {
        if let Some(after_prefix) = msg.strip_prefix(prefix) {
            let peer = if *marker == "address " {
                let ip = after_prefix.trim();
                Some(Peer {
                    host: None,
                    ip: Some(ip),
                    port: None,
                })
            } else {
                let from = prefix.len().saturating_sub(marker.len());
                // " H=" follows a quoted, client-chosen command: take the last one so that a
                // command holding `" H=(x) [ip]` cannot name a different peer.
                let found = if *marker == " H=" {
                    msg.get(from..).and_then(|t| t.rfind(marker))
                } else {
                    msg.get(from..).and_then(|t| t.find(marker))
                };
                found.and_then(|p| {
                    let start = from + p + marker.len();
                    let start = if msg[start..].starts_with("H=") {
                        start + 2
                    } else {
                        start
                    };
                    let end = host_spec_end(msg, start);
                    let (peer, _) = host_peer(&msg[start..end]);
                    if peer.ip.is_some() || peer.host.is_some() {
                        Some(peer)
                    } else {
                        None
                    }
                })
            };
            if *what == "rejected_helo" {
                // rejected EHLO from (x) [ip]: syntactically invalid argument(s): arg
                let (client, helo, tail) = peer_after(msg, "from ")?;
                let stage = if msg.starts_with("rejected EHLO") {
                    "EHLO"
                } else {
                    "HELO"
                };
                return Some(Event::Check {
                    qid: None,
                    action: Action::Reject,
                    stage: Some(stage),
                    client: Some(client),
                    reason: reason_after_colon(tail),
                    from: None,
                    to: None,
                    proto: None,
                    helo,
                });
            }
            return info(what, None, peer);
        }
    }
    const PLAIN: &[(&str, &str)] = &[
        ("Start queue run", "queue_run"),
        ("End queue run", "queue_run"),
        ("Start ", "queue_run"),
        ("cwd=", "cwd"),
        ("daemon started", "daemon"),
        ("exim ", "daemon"),
        ("Exim ", "daemon"),
        ("pid ", "daemon"),
        ("SIGHUP", "daemon"),
        ("SIGTERM", "daemon"),
        ("daemon ", "daemon"),
        ("Warning: ", "warning"),
        ("warning: ", "warning"),
        ("Spool file is locked", "spool_locked"),
        ("Failed to ", "error"),
        ("failed to ", "error"),
        ("Error ", "error"),
        ("error ", "error"),
        ("SMTP ", "smtp"),
        ("TLS ", "tls"),
        ("too many connections", "refused"),
        ("Connection ", "connection"),
        ("spam acl condition", "spamassassin"),
        ("malware acl condition", "malware"),
        ("LOG: ", "log"),
        ("ratelimit", "ratelimit"),
        ("sender verify fail", "sender_verify"),
        ("ACL ", "acl"),
        ("DKIM: ", "dkim"),
        ("SPF ", "spf"),
        ("gnutls", "tls"),
        ("temporarily rejected", "rejected"),
        ("rejected", "rejected"),
        ("refused connection", "refused"),
        ("using queue", "queue_run"),
        ("unable to ", "error"),
        ("Unable to ", "error"),
        ("configured error", "error"),
        ("ignoring AUTH=", "auth_ignored"),
        ("ETRN ", "etrn"),
        ("ATRN ", "atrn"),
        ("too many recipients", "too_many_recipients"),
        ("spool directory space check failed", "spool_space"),
        ("sender verify defer", "sender_verify"),
        ("recipient verify", "recipient_verify"),
        ("unqualified ", "unqualified"),
        ("Expansion of ", "expansion_failed"),
        ("VRFY failed", "vrfy"),
        ("EXPN failed", "expn"),
        ("WARNING: ", "warning"),
        ("Authentication-Results:", "auth_results"),
        ("SPF ", "spf"),
    ];
    for (p, what) in PLAIN {
        if msg.starts_with(p) {
            return info(what, None, None);
        }
    }
    if msg.contains(" daemon started") || msg.contains("daemon: ") {
        return info("daemon", None, None);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(ev: Option<Event<'_>>) -> Event<'_> {
        ev.expect("line should parse")
    }

    #[test]
    fn ids() {
        assert!(is_message_id("1j5IF1-0006A7-Ub"));
        assert!(is_message_id("10HmaX-000000005vi-0000"));
        assert!(!is_message_id("1j5IF1-0006A7-U"));
        assert!(!is_message_id("1j5IF1_0006A7-Ub"));
    }

    #[test]
    fn arrival_local() {
        let e = q(parse(
            "1j5IF1-0006A7-Ub <= root@edward.rosnix.net U=root P=local S=18235693",
        ));
        assert_eq!(
            e,
            Event::Queued {
                qid: "1j5IF1-0006A7-Ub",
                from: "root@edward.rosnix.net",
                size: Some(18235693),
                nrcpt: None,
                client: None,
                helo: None,
                auth_user: None,
                local_user: Some("root"),
                proto: Some("local"),
                message_id: None,
                parent: None,
            }
        );
    }

    #[test]
    fn arrival_remote() {
        let e = q(parse(
            "1j5Inj-0006ua-SB <= per-eric.rosen@pol.uppsala.se H=mail-eopbgr60075.outbound.protection.outlook.com (EUR04-DB3-obe.outbound.protection.outlook.com) [40.107.6.75]:4521 I=[10.0.0.1]:25 P=esmtps X=TLS1.2:ECDHE:256 CV=no A=dovecot_login:taro@example.jp S=25859 M8S=0 id=abc@x.y T=\"Re: hi \\\"there\\\" for you\" from <a@b> for x@y z@w",
        ));
        let Event::Queued {
            from,
            size,
            nrcpt,
            client,
            helo,
            auth_user,
            proto,
            message_id,
            ..
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!(from, "per-eric.rosen@pol.uppsala.se");
        assert_eq!(size, Some(25859));
        assert_eq!(nrcpt, Some(2));
        let c = client.unwrap();
        assert_eq!(
            c.host,
            Some("mail-eopbgr60075.outbound.protection.outlook.com")
        );
        assert_eq!(c.ip, Some("40.107.6.75"));
        assert_eq!(c.port, Some(4521));
        assert_eq!(helo, Some("EUR04-DB3-obe.outbound.protection.outlook.com"));
        assert_eq!(auth_user, Some("taro@example.jp"));
        assert_eq!(proto, Some("esmtps"));
        assert_eq!(message_id, Some("abc@x.y"));
    }

    #[test]
    fn arrival_bounce_and_munged_size() {
        let e = q(parse(
            "10HmaY-000000005vi-0000 <= <> R=10HmaX-000000005vi-0000 U=EXIMUSER P=local S=sss",
        ));
        let Event::Queued {
            from, size, parent, ..
        } = e
        else {
            panic!()
        };
        assert_eq!(from, "");
        assert_eq!(size, None);
        assert_eq!(parent, Some("10HmaX-000000005vi-0000"));
        let e = q(parse(
            "10HmaX-000000005vi-0000 <= x@y H=(helo.example) [192.0.2.1] P=smtp S=1",
        ));
        let Event::Queued { client, helo, .. } = e else {
            panic!()
        };
        assert_eq!(client.unwrap().host, None);
        assert_eq!(helo, Some("helo.example"));
        let e = q(parse(
            "10HmaX-000000005vi-0000 <= x@y H=[192.0.2.1] P=smtp S=1",
        ));
        let Event::Queued { client, helo, .. } = e else {
            panic!()
        };
        assert_eq!(client.unwrap().ip, Some("192.0.2.1"));
        assert_eq!(helo, None);
    }

    #[test]
    fn deliveries() {
        let e = q(parse(
            "1j5IhX-0006pK-Rt => anders.warnqvist@gmail.com <kassor@ucf.se> R=dnslookup T=remote_smtp H=gmail-smtp-in.l.google.com [108.177.15.26] X=TLS1.2:RSA_AES_128_CBC_SHA1:128 DN=\"C=US,ST=California\" C=\"250 2.0.0 OK 1582331486 q1si\"",
        ));
        let Event::Delivery {
            qid,
            to,
            orig_to,
            relay,
            transport,
            status,
            reply,
            dsn,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(qid, "1j5IhX-0006pK-Rt");
        assert_eq!(to, "anders.warnqvist@gmail.com");
        assert_eq!(orig_to, Some("kassor@ucf.se"));
        assert_eq!(relay, Some("gmail-smtp-in.l.google.com [108.177.15.26]"));
        assert_eq!(transport, Some("remote_smtp"));
        assert_eq!(status, DeliveryStatus::Sent);
        assert_eq!(reply, Some("250 2.0.0 OK 1582331486 q1si"));
        assert_eq!(dsn, Some("2.0.0"));
        let e = q(parse("10HmaX-000000005vi-0000 => :blackhole: <blackhole@the.local.host.name> R=system_aliases"));
        assert!(matches!(
            e,
            Event::Delivery {
                status: DeliveryStatus::Discarded,
                ..
            }
        ));
        // A pipe generated from a .forward: "(parent)" names the user it was made for.
        let e = q(parse(
            "10HmaX-000000005vi-0000 => |/usr/bin/procmail (kim@test.ex) <kim@test.ex> R=userforward T=address_pipe",
        ));
        assert!(matches!(
            e,
            Event::Delivery {
                to: "|/usr/bin/procmail",
                orig_to: Some("kim@test.ex"),
                ..
            }
        ));
        let e = q(parse(
            "10HmaX-000000005vi-0000 => /home/kim/mbox (kim@test.ex) R=userforward T=address_file",
        ));
        assert!(matches!(
            e,
            Event::Delivery {
                orig_to: Some("kim@test.ex"),
                ..
            }
        ));
        let e = q(parse("10HmaX-000000005vi-0000 -> userb@test.ex R=r1 T=t1"));
        assert!(matches!(
            e,
            Event::Delivery {
                status: DeliveryStatus::Sent,
                to: "userb@test.ex",
                ..
            }
        ));
        let e = q(parse("10HmaX-000000005vi-0000 *> userb@test.ex R=r1 T=t1"));
        assert!(matches!(
            e,
            Event::Delivery {
                status: DeliveryStatus::Sent,
                ..
            }
        ));
    }

    #[test]
    fn failures() {
        let e = q(parse(
            "1j4ZTB-0001Sv-P4 ** noreply@pilgrimbrevet.se: Unrouteable address",
        ));
        let Event::Delivery {
            to, status, reply, ..
        } = e
        else {
            panic!()
        };
        assert_eq!(to, "noreply@pilgrimbrevet.se");
        assert_eq!(status, DeliveryStatus::Bounced);
        assert_eq!(reply, Some("Unrouteable address"));
        let e = q(parse(
            "1j5J1a-0007Ay-Ff ** x@example.com <y@example.org> R=dnslookup T=remote_smtp H=mx.example.com [192.0.2.7]: SMTP error from remote mail server after RCPT TO:<x@example.com>: 550 5.1.1 User unknown",
        ));
        let Event::Delivery {
            relay,
            transport,
            dsn,
            reply,
            orig_to,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(relay, Some("mx.example.com [192.0.2.7]"));
        assert_eq!(transport, Some("remote_smtp"));
        assert_eq!(dsn, Some("5.1.1"));
        assert_eq!(orig_to, Some("y@example.org"));
        assert_eq!(
            reply,
            Some("SMTP error from remote mail server after RCPT TO:<x@example.com>: 550 5.1.1 User unknown")
        );
        let e = q(parse("10HmaX-000000005vi-0000 ** userx@badbad.ex R=fail_remote_domains : unrouteable mail domain \"badbad.ex\" (:fail:)"));
        assert!(matches!(
            e,
            Event::Delivery {
                to: "userx@badbad.ex",
                status: DeliveryStatus::Bounced,
                ..
            }
        ));
        let e = q(parse("10HmaX-0005vi-00 == userx@test.ex R=r1 T=smtp defer (-44): SMTP error from remote mail server after RCPT TO:<userx@test.ex>: host 127.0.0.1 [127.0.0.1]: 451 Recipient not OK"));
        let Event::Delivery {
            status, transport, ..
        } = e
        else {
            panic!()
        };
        assert_eq!(status, DeliveryStatus::Deferred);
        assert_eq!(transport, Some("smtp"));
    }

    #[test]
    fn message_state() {
        assert_eq!(
            parse("1j5IF1-0006A7-Ub Completed"),
            Some(Event::Removed {
                qid: "1j5IF1-0006A7-Ub"
            })
        );
        assert_eq!(
            parse("10HmaX-000000005vi-0000 removed by CALLER"),
            Some(Event::Removed {
                qid: "10HmaX-000000005vi-0000"
            })
        );
        assert!(matches!(
            parse("1j4ZTB-0001Sv-P4 Message is frozen"),
            Some(Event::Info { what: "frozen", .. })
        ));
        assert!(matches!(
            parse("1j4ZTB-0001Sv-P4 Unfrozen by errmsg timer"),
            Some(Event::Info {
                what: "unfrozen",
                ..
            })
        ));
    }

    #[test]
    fn rejects() {
        let e = q(parse("H=mx.tillions.com [182.18.24.93] F=<buh@caladan.ebay.sun.com> rejected RCPT <ruslan@maslovskiy.com.ua>: Sender verify failed"));
        let Event::Check {
            action,
            stage,
            client,
            from,
            to,
            reason,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(action, Action::Reject);
        assert_eq!(stage, Some("RCPT"));
        assert_eq!(client.unwrap().ip, Some("182.18.24.93"));
        assert_eq!(from, Some("buh@caladan.ebay.sun.com"));
        assert_eq!(to, Some("ruslan@maslovskiy.com.ua"));
        assert_eq!(reason, "Sender verify failed");
        let e = q(parse("H=(yakult.com.tw) [202.132.70.178]:3755 I=[1.2.3.4]:25 F=menacedsj04@listserv.eurasia.org rejected RCPT dir@ml3.ru: relay not permitted"));
        let Event::Check {
            helo,
            to,
            reason,
            client,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(helo, Some("yakult.com.tw"));
        assert_eq!(to, Some("dir@ml3.ru"));
        assert_eq!(reason, "relay not permitted");
        assert_eq!(client.unwrap().port, Some(3755));
        let e = q(parse("H=test.sa.com [1.2.3.4]:18146 temporarily rejected connection in \"connect\" ACL: \"Host is ratelimited (1.9/1h max:1.2)\""));
        assert!(matches!(
            e,
            Event::Check {
                action: Action::Defer,
                stage: Some("CONNECT"),
                ..
            }
        ));
        let e = q(parse("1j5IBw-00064P-De F=toyaedypo@evowpmy.com H=xdsl-178-35-123-109.soes.su (evowpmy.com) [178.35.123.109] P=smtp rejected by local_scan(): Rejected"));
        let Event::Check {
            qid,
            stage,
            reason,
            proto,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(qid, Some("1j5IBw-00064P-De"));
        assert_eq!(stage, Some("DATA"));
        assert_eq!(reason, "Rejected");
        assert_eq!(proto, Some("smtp"));
        let e = q(parse("H=ufficioestampa.it (srv.ufficioestampa.it) [193.169.56.211] sender verify fail for <user@example.com>: Unrouteable address"));
        let Event::Check {
            action,
            from,
            reason,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(action, Action::Warn);
        assert_eq!(from, Some("user@example.com"));
        assert_eq!(reason, "Unrouteable address");
        let e = q(parse(
            "rejected EHLO from [192.0.2.1]: syntactically invalid argument(s): bad_helo",
        ));
        let Event::Check {
            stage,
            client,
            reason,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(stage, Some("EHLO"));
        assert_eq!(client.unwrap().ip, Some("192.0.2.1"));
        assert_eq!(reason, "syntactically invalid argument(s): bad_helo");
    }

    #[test]
    fn auth_failures() {
        let e = q(parse("dovecot_login authenticator failed for (localhost) [46.148.40.123]:58870: 535 Incorrect authentication data (set_id=info)"));
        let Event::AuthFailure {
            client,
            user,
            mechanism,
            service,
            reason,
        } = e
        else {
            panic!()
        };
        assert_eq!(client.ip, Some("46.148.40.123"));
        assert_eq!(client.port, Some(58870));
        assert_eq!(user, Some("info"));
        assert_eq!(mechanism, Some("dovecot_login"));
        assert_eq!(service, Service::Smtp);
        assert_eq!(reason, "535 Incorrect authentication data (set_id=info)");
        let e = q(parse("2021-07-17 23:20:49 plain_server authenticator failed for ([192.0.2.17]) [192.0.2.27]: 535 Incorrect authentication data"));
        let Event::AuthFailure { client, user, .. } = e else {
            panic!()
        };
        assert_eq!(client.ip, Some("192.0.2.27"));
        assert_eq!(user, None);
        let e = q(parse("mx1.fqdn.local exim[29786]: dovecot_login authenticator failed for (User) [192.0.2.37]: 535 Incorrect authentication data (set_id=test@domain.com)"));
        assert!(matches!(
            e,
            Event::AuthFailure {
                user: Some("test@domain.com"),
                ..
            }
        ));
        let e = q(parse("expanded_prompt_plain authenticator failed for H=(test.host) [10.0.0.1] U=CALLER: 535 Incorrect authentication data (set_id=userx)"));
        let Event::AuthFailure { client, user, .. } = e else {
            panic!()
        };
        assert_eq!(client.ip, Some("10.0.0.1"));
        assert_eq!(user, Some("userx"));
    }

    #[test]
    fn connections() {
        let e = q(parse(
            "SMTP connection from [46.148.40.100]:54838 (TCP/IP connection count = 1)",
        ));
        assert!(matches!(
            e,
            Event::Connect {
                client: Peer {
                    ip: Some("46.148.40.100"),
                    port: Some(54838),
                    ..
                }
            }
        ));
        let e = q(parse(
            "SMTP connection from (localhost) [46.148.40.100]:54838 lost D=21s",
        ));
        assert!(matches!(
            e,
            Event::Disconnect {
                client: Peer {
                    ip: Some("46.148.40.100"),
                    ..
                },
                ..
            }
        ));
        let e = q(parse("SMTP call from [192.0.2.109] dropped: too many syntax or protocol errors (last command was \"AUTH LOGIN\")"));
        assert!(matches!(
            e,
            Event::Info {
                what: "dropped",
                client: Some(Peer {
                    ip: Some("192.0.2.109"),
                    ..
                }),
                ..
            }
        ));
        let e = q(parse("SMTP protocol error in \"AUTH LOGIN\" H=(ylmf-pc) [45.32.34.167]:60723 I=[172.89.0.6]:587 AUTH command used when not advertised"));
        assert!(matches!(
            e,
            Event::Info {
                what: "protocol_error",
                client: Some(Peer {
                    ip: Some("45.32.34.167"),
                    ..
                }),
                ..
            }
        ));
        let e = q(parse("no host name found for IP address 192.0.2.8"));
        assert!(matches!(
            e,
            Event::Info {
                what: "no_host_name",
                client: Some(Peer {
                    ip: Some("192.0.2.8"),
                    ..
                }),
                ..
            }
        ));
        let e = q(parse("no IP address found for host test.example.com (during SMTP connection from [192.0.2.9])"));
        assert!(matches!(
            e,
            Event::Info {
                what: "no_ip_address",
                client: Some(Peer {
                    ip: Some("192.0.2.9"),
                    ..
                }),
                ..
            }
        ));
        let e = q(parse(
            "TLS error on connection from [1.2.3.4]:5 (SSL_accept): error",
        ));
        assert!(matches!(
            e,
            Event::Info {
                what: "tls_error",
                client: Some(Peer {
                    ip: Some("1.2.3.4"),
                    ..
                }),
                ..
            }
        ));
        assert!(matches!(
            parse("exim 4.96 daemon started: pid=1234, -q30m"),
            Some(Event::Info { what: "daemon", .. })
        ));
        assert!(matches!(
            parse("Start queue run: pid=1"),
            Some(Event::Info {
                what: "queue_run",
                ..
            })
        ));
        assert!(matches!(
            parse("cwd=/ 3 args: exim -bd -q30m"),
            Some(Event::Info { what: "cwd", .. })
        ));
    }

    #[test]
    fn unknown_is_none() {
        assert_eq!(parse("hello world"), None);
        assert_eq!(parse(""), None);
    }
}
