//! Spam-filter verdict lines: amavis (amavisd-new), SpamAssassin's `spamd`, rspamd; and the
//! spam reasons of Postfix `milter-reject` and Exim `rejected after DATA`.
//!
//! A content filter judges a message after the MTA accepted its DATA; its verdict line names
//! the message by queue id (amavis `Queue-ID:`, rspamd `qid:`), by Message-ID (`spamd`'s
//! `mid=`, and the others too) and sometimes by the sending client's address (amavis' first
//! `[ip]:port`, rspamd's `ip:`). [`parse`] turns each into one [`Event::FilterVerdict`]; the
//! correlator ([`crate::record`]) attaches it to the message it names, so that the detectors see
//! which incoming host carried spam.
//!
//! What the formats are, from their authors' documentation and source:
//! - amavis' default `log_templ` (amavisd-new, `amavisd.conf-default`): `(PID-NN) Passed CLEAN
//!   {RelayedInbound}, [client]:port [origin] <from> -> <rcpt>,<rcpt>, Queue-ID: QID,
//!   Message-ID: <mid>, mail_id: ID, Hits: 7.2, size: N, queued_as: QID, N ms`; the words after
//!   the client may be `LOCAL`, `MYNETS`, `ORIGINATING`; the first bracketed address is the SMTP
//!   client the MTA forwarded with XFORWARD (the host that sent the mail to us), the second the
//!   first public hop of the `Received:` trail; `Hits: -` when no spam check ran.
//! - `spamd`'s result line (SpamAssassin `spamd/spamd.raw`): `spamd: result: Y 12 - TESTS
//!   scantime=…,size=…,user=…,uid=…,required_score=5.0,rhost=…,raddr=…,rport=…,mid=<mid>,…`;
//!   `Y` is spam, `.` ham; `rhost`/`raddr` are spamc's peer (the MTA or milter itself), never the
//!   sending host, so the line is joined by its Message-ID alone.
//! - rspamd's `log_format` (rspamd `doc/configuration/logging`; default since 1.1): `id: <mid>,
//!   qid: <QID>, ip: 1.2.3.4, user: u, from: <from>, (default: T (reject): [15.00/15.00]
//!   [SYMBOLS]), len: …`; the letter is `T` (spam), `F` (ham) or `S` (skipped), the action one of
//!   `reject`, `soft reject`, `rewrite subject`, `add header`, `greylist`, `no action`.
//!
//! Untrusted text throughout: every field is optional, nothing panics, a line that is not a
//! verdict gives `None` (counted as unrecognized) or an [`Event::Info`] for the filters' other
//! well-known lines.

use crate::bytes::find;
use crate::event::{peer_brackets, unbracket, Event, Filter, Peer, Verdict};

/// Whether a program name is a spam filter's: `amavis`, `amavisd`, `amavisd-new`, `spamd`,
/// `rspamd`.
pub fn is_filter_program(program: &str) -> bool {
    matches!(
        program,
        "amavis" | "amavisd" | "amavisd-new" | "spamd" | "rspamd"
    )
}

/// Parse one message of a filter program (`program` as in the syslog header).
pub fn parse<'a>(program: &str, msg: &'a str) -> Option<Event<'a>> {
    match program {
        "spamd" => spamd(msg),
        "rspamd" => rspamd(msg),
        _ => amavis(msg),
    }
}

/// The text after `key` in `s` up to the first of `ends` (or the end).
fn field<'a>(s: &'a str, key: &str, ends: &[char]) -> Option<&'a str> {
    let i = find(s, key)? + key.len();
    let rest = &s[i..];
    let j = rest.find(ends).unwrap_or(rest.len());
    Some(&rest[..j])
}

/// A bracketed `<…>` value after `key`, without the brackets (`<>` gives `""`).
fn angle<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let i = find(s, key)? + key.len();
    let rest = s[i..].strip_prefix('<')?;
    let j = rest.find('>')?;
    Some(&rest[..j])
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

fn nonempty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty() && s != "undef" && s != "(unknown)").then_some(s)
}

/// amavis' content category to a verdict.
fn amavis_category(c: &str) -> Verdict {
    match c {
        "CLEAN" => Verdict::Ham,
        "SPAM" | "SPAMMY" => Verdict::Spam,
        "INFECTED" | "BANNED" => Verdict::Malware,
        _ => Verdict::Other,
    }
}

/// `(PID-NN) Passed CLEAN {RelayedInbound}, [ip]:port [ip] <from> -> <rcpt>, Queue-ID: …`.
fn amavis(msg: &str) -> Option<Event<'_>> {
    let rest = msg.strip_prefix('(')?;
    let close = rest.find(") ")?;
    let rest = &rest[close + 2..];
    let rest = rest
        .strip_prefix("Passed ")
        .or_else(|| rest.strip_prefix("Blocked "))?;
    let cat_end = rest.find([' ', ',']).unwrap_or(rest.len());
    let verdict = amavis_category(&rest[..cat_end]);
    // The client and sender come after the first ", " that follows the category and its
    // optional "{…}" disposition and "(virus name)".
    let after = &rest[cat_end..];
    let start = after.find("}, ").map(|i| i + 3).or_else(|| {
        let i = after.find(", ")?;
        Some(i + 2)
    })?;
    let who = &after[start..];
    let lt = who.find('<').unwrap_or(who.len());
    let client = who[..lt]
        .split(' ')
        .find(|w| w.starts_with('['))
        .and_then(peer_brackets)
        .map(|p| Peer { host: None, ..p });
    let from = who[lt..]
        .strip_prefix('<')
        .and_then(|s| s.find('>').map(|j| &s[..j]));
    let qid = field(after, ", Queue-ID: ", &[',', ' ']).and_then(nonempty);
    let message_id = angle(after, ", Message-ID: ").and_then(nonempty);
    let score = field(after, ", Hits: ", &[',', ' ']).and_then(number);
    Some(Event::FilterVerdict {
        filter: Filter::Amavis,
        verdict,
        score,
        threshold: None,
        qid,
        message_id,
        client,
        from,
    })
}

/// spamd's lines: the `result:` line is a verdict; its other per-message lines are counted.
fn spamd(msg: &str) -> Option<Event<'_>> {
    let m = msg.strip_prefix("spamd: ").unwrap_or(msg);
    let Some(r) = m.strip_prefix("result: ") else {
        const OTHER: &[&str] = &[
            "connection from ",
            "setuid to ",
            "processing message ",
            "checking message ",
            "identified spam ",
            "clean message ",
        ];
        return OTHER
            .iter()
            .any(|p| m.starts_with(p))
            .then_some(Event::Info {
                what: "spamd",
                qid: None,
                client: None,
            });
    };
    let mut words = r.splitn(4, ' ');
    let verdict = match words.next()? {
        "Y" => Verdict::Spam,
        "." => Verdict::Ham,
        _ => return None,
    };
    let score = words.next().and_then(number);
    let message_id = field(r, "mid=", &[',', ' '])
        .map(unbracket)
        .and_then(nonempty);
    let threshold = field(r, "required_score=", &[',', ' ']).and_then(number);
    Some(Event::FilterVerdict {
        filter: Filter::Spamd,
        verdict,
        score,
        threshold,
        qid: None,
        message_id,
        client: None,
        from: None,
    })
}

/// rspamd's action to a verdict (`None` for an action we do not know: the letter decides).
fn rspamd_action(a: &str) -> Option<Verdict> {
    Some(match a {
        "reject" | "add header" | "rewrite subject" | "discard" | "quarantine" => Verdict::Spam,
        "no action" | "greylist" => Verdict::Ham,
        "soft reject" => Verdict::Other,
        _ => return None,
    })
}

/// `…rspamd_task_write_log: id: <mid>, qid: <QID>, ip: 1.2.3.4, from: <f>, (default: T (reject): [15.00/15.00] [...]), …`.
fn rspamd(msg: &str) -> Option<Event<'_>> {
    const TAG: &str = "rspamd_task_write_log: ";
    let i = find(msg, TAG)? + TAG.len();
    let s = &msg[i..];
    let message_id = angle(s, "id: ").and_then(nonempty);
    let qid = match find(s, ", qid: ") {
        Some(k) => {
            let v = &s[k + 7..];
            if let Some(b) = v.strip_prefix('<') {
                b.find('>').map(|j| &b[..j])
            } else {
                Some(&v[..v.find([',', ' ']).unwrap_or(v.len())])
            }
        }
        None => None,
    }
    .and_then(nonempty);
    let client = field(s, ", ip: ", &[',', ' '])
        .and_then(nonempty)
        .map(|ip| Peer {
            host: None,
            ip: Some(ip),
            port: None,
        });
    let from = angle(s, ", from: ");
    // "(default: T (reject): [15.00/15.00] [" — the metric name may differ from "default".
    let open = s
        .find(": [")
        .and_then(|j| s[..j].rfind(", (").map(|k| (k + 3, j)));
    let (verdict, score, threshold) = match open {
        Some((k, j)) => {
            let head = &s[k..j]; // "default: T (reject)"
            let letter = head.split(": ").nth(1).and_then(|x| x.split(' ').next());
            let action = head
                .rfind('(')
                .and_then(|a| head[a + 1..].strip_suffix(')'));
            let by_letter = match letter {
                Some("T") => Verdict::Spam,
                Some("F") => Verdict::Ham,
                Some("S") => Verdict::Other,
                _ => return None,
            };
            let verdict = action.and_then(rspamd_action).unwrap_or(by_letter);
            let nums = field(&s[j..], ": [", &[']']).unwrap_or("");
            let (sc, th) = nums.split_once('/').unwrap_or((nums, ""));
            (verdict, number(sc), number(th))
        }
        None => return None,
    };
    Some(Event::FilterVerdict {
        filter: Filter::Rspamd,
        verdict,
        score,
        threshold,
        qid,
        message_id,
        client,
        from,
    })
}

/// Lower-case phrases of a refusal after DATA that say the content was judged spam (Postfix
/// `milter-reject: END-OF-MESSAGE … 5.7.1 Blocked by SpamAssassin`, rspamd's milter `Spam
/// message rejected`, Exim's `rejected after DATA: … spam score …`). A refusal that names a
/// block list by name (`spamhaus`) is about the sender's reputation, not a filter's verdict on
/// the content: excluded.
pub const SPAM_REASON_PHRASES: &[&str] = &["spam", "junk mail", "unsolicited", "bulk mail"];

/// Whether the reason of a refusal at `DATA`/`END-OF-MESSAGE` is a spam filter's verdict.
pub fn is_spam_reason(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    let r = r.replace("spamhaus", "");
    SPAM_REASON_PHRASES.iter().any(|p| r.contains(p))
}

/// Whether a check's stage is after the message content was received.
pub fn is_content_stage(stage: Option<&str>) -> bool {
    matches!(stage, Some("DATA" | "END-OF-MESSAGE" | "BDAT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(
        program: &str,
        msg: &str,
    ) -> (
        Filter,
        Verdict,
        Option<f64>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) {
        match parse(program, msg) {
            Some(Event::FilterVerdict {
                filter,
                verdict,
                score,
                qid,
                message_id,
                client,
                ..
            }) => (
                filter,
                verdict,
                score,
                qid.map(str::to_string),
                message_id.map(str::to_string),
                client.and_then(|c| c.ip).map(str::to_string),
            ),
            e => panic!("{msg}: {e:?}"),
        }
    }

    #[test]
    fn amavis_lines() {
        let (f, v, s, q, m, c) = verdict("amavis", "(03491-01) Blocked SPAM {DiscardedInbound,Quarantined}, [192.168.203.3]:47508 [209.85.166.194] <a@gmail.com> -> <d@example.org>, quarantine: W/spam-WK3.gz, Queue-ID: E52312222F, Message-ID: <CAPN2x@mail.gmail.com>, mail_id: WK3LMJCskwci, Hits: 1000.053, size: 2997, 1093 ms");
        assert_eq!((f, v), (Filter::Amavis, Verdict::Spam));
        assert_eq!(s, Some(1000.053));
        assert_eq!(q.as_deref(), Some("E52312222F"));
        assert_eq!(m.as_deref(), Some("CAPN2x@mail.gmail.com"));
        assert_eq!(c.as_deref(), Some("192.168.203.3"));
        let (_, v, s, q, _, c) = verdict("amavis", "(01155-07) Passed CLEAN {RelayedInbound}, LOCAL [192.168.24.102]:53123 <v@d.fr> -> <v@d.fr>,<w@d.fr>, Queue-ID: E19A55F945, Message-ID: <5661@d.fr>, mail_id: m0g5, Hits: -1.2, size: 2869, queued_as: 7AB, 494 ms");
        assert_eq!((v, s), (Verdict::Ham, Some(-1.2)));
        assert_eq!(q.as_deref(), Some("E19A55F945"));
        assert_eq!(c.as_deref(), Some("192.168.24.102"));
        // Old template without the disposition, INFECTED with a virus name, "Hits: -".
        let (_, v, s, q, m, _) = verdict("amavis", "(11111-02) Blocked INFECTED (Eicar-Test-Signature), [198.51.100.7] [198.51.100.7] <x@y> -> <z@w>, Message-ID: <m@y>, Hits: -, 300 ms");
        assert_eq!((v, s, q), (Verdict::Malware, None, None));
        assert_eq!(m.as_deref(), Some("m@y"));
        assert!(parse("amavis", "(11111-02) Checking: XYZ").is_none());
        assert!(parse("amavis", "starting.  /usr/sbin/amavisd-new").is_none());
    }

    #[test]
    fn spamd_lines() {
        let (f, v, s, q, m, c) = verdict("spamd", "spamd: result: . -1 - DKIM_SIGNED,SPF_PASS scantime=3.4,size=120289,user=debian-spamd,uid=119,required_score=5.0,rhost=127.0.0.1,raddr=127.0.0.1,rport=44944,mid=<11111111111111@uexample.org>,autolearn=disabled");
        assert_eq!((f, v, s), (Filter::Spamd, Verdict::Ham, Some(-1.0)));
        assert_eq!((q, c), (None, None));
        assert_eq!(m.as_deref(), Some("11111111111111@uexample.org"));
        let (_, v, s, _, m, _) = verdict("spamd", "spamd: result: Y 12 - BAYES_99,URIBL_BLACK scantime=0.9,size=4260,user=nobody,uid=65534,required_score=5.0,rhost=localhost,raddr=127.0.0.1,rport=46436,mid=(unknown),autolearn=spam");
        assert_eq!((v, s, m), (Verdict::Spam, Some(12.0), None));
        assert!(matches!(
            parse(
                "spamd",
                "spamd: connection from mx.example.org [127.0.0.1]:33620 to port 783, fd 5"
            ),
            Some(Event::Info { what: "spamd", .. })
        ));
        assert!(parse("spamd", "spamd: result: Q 1 - x").is_none());
    }

    #[test]
    fn rspamd_lines() {
        let (f, v, s, q, m, c) = verdict("rspamd", "<ed2abb>; task; rspamd_task_write_log: id: <F66@FreeBSD.org>, qid: <4ABC1C2D3>, ip: 203.0.113.9, from: <a@b.example>, (default: T (reject): [16.20/15.00] [BAYES_SPAM(5.10){99.9%;},R_SPF_FAIL(1.00){-all;}]), len: 2048, time: 120.5ms, dns req: 12, digest: <0123abcd>, rcpts: <u@example.org>, mime_rcpts: <u@example.org>");
        assert_eq!((f, v, s), (Filter::Rspamd, Verdict::Spam, Some(16.2)));
        assert_eq!(q.as_deref(), Some("4ABC1C2D3"));
        assert_eq!(m.as_deref(), Some("F66@FreeBSD.org"));
        assert_eq!(c.as_deref(), Some("203.0.113.9"));
        let (_, v, s, q, _, _) = verdict("rspamd", "<aa>; task; rspamd_task_write_log: id: <x@y>, qid: <undef>, ip: 2001:db8::5, from: <>, (default: F (no action): [0.40/15.00] [ARC_NA(0.00){}]), len: 10, time: 1ms");
        assert_eq!((v, s, q), (Verdict::Ham, Some(0.4), None));
        // "add header" is a spam verdict whatever the letter; "soft reject" is neither.
        let (_, v, ..) = verdict("rspamd", "rspamd_task_write_log: id: <x@y>, ip: 192.0.2.1, (default: F (add header): [7.00/15.00] []), len: 1");
        assert_eq!(v, Verdict::Spam);
        let (_, v, ..) = verdict(
            "rspamd",
            "rspamd_task_write_log: id: <x@y>, (default: T (soft reject): [1.00/15.00] []), len: 1",
        );
        assert_eq!(v, Verdict::Other);
        assert!(parse("rspamd", "rspamd_task_write_log: id: <x@y>, len: 1").is_none());
        assert!(parse(
            "rspamd",
            "<ab>; task; accept_socket: accepted connection from ::1 port 52895"
        )
        .is_none());
    }

    #[test]
    fn spam_reasons() {
        assert!(is_spam_reason("5.7.1 Blocked by SpamAssassin"));
        assert!(is_spam_reason("Your message scored 12.3 spam points"));
        assert!(is_spam_reason("5.7.1 Spam message rejected"));
        assert!(!is_spam_reason(
            "5.7.1 Service unavailable; client blocked using zen.spamhaus.org"
        ));
        assert!(!is_spam_reason("550 5.7.1 Command rejected"));
        assert!(is_content_stage(Some("END-OF-MESSAGE")));
        assert!(!is_content_stage(Some("RCPT")));
    }

    #[test]
    fn hostile_text_never_panics() {
        for m in [
            "(",
            "()",
            "() Passed",
            "(x) Passed ",
            "(x) Blocked SPAM",
            "(x) Passed CLEAN, ",
            "(x) Passed CLEAN {, [",
            "(x) Passed CLEAN, [1.2.3.4",
            "(x) Passed CLEAN, [1.2.3.4]:99999 <",
            ", Queue-ID: ",
            ", Message-ID: <",
            ", Hits: ",
        ] {
            let _ = parse("amavis", m);
        }
        for m in [
            "spamd: result: ",
            "spamd: result: Y",
            "result: . x - mid=",
            "mid=<",
        ] {
            let _ = parse("spamd", m);
        }
        for m in [
            "rspamd_task_write_log: ",
            "rspamd_task_write_log: id: <",
            "rspamd_task_write_log: , qid: ",
            "rspamd_task_write_log: (: [",
            "rspamd_task_write_log:  (default: T (x): [",
            "rspamd_task_write_log: x (: [/]",
        ] {
            let _ = parse("rspamd", m);
        }
    }
}
