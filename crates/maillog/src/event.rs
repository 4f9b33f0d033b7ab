//! Normalized events: one fact from one log line, borrowed from the line.
//!
//! Every parser (Postfix, Exim, Dovecot, Sendmail) maps its lines to these shapes, so the
//! correlator and the detectors never see a product-specific format. Fields the line does not
//! carry are `None`. Addresses are given without angle brackets; the null sender `<>` is `Some("")`.

use serde::Serialize;

/// Which MTA or daemon family wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Postfix (any instance).
    Postfix,
    /// Exim main log, native or through syslog.
    Exim,
    /// Dovecot.
    Dovecot,
    /// Sendmail (`sendmail`, `sm-mta`, `sm-msp-queue`).
    Sendmail,
    /// A spam filter's own lines (`amavis`, `spamd`, `rspamd`; see [`crate::filter`]).
    Filter,
    /// Anything else.
    Other,
}

impl Format {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Postfix => "postfix",
            Format::Exim => "exim",
            Format::Dovecot => "dovecot",
            Format::Sendmail => "sendmail",
            Format::Filter => "filter",
            Format::Other => "other",
        }
    }
}

/// A remote SMTP/IMAP/POP peer as logs write it: `host[ip]:port`, `(helo) [ip]`, `rip=ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Peer<'a> {
    /// Reverse-DNS name ("unknown" when Postfix found none), if logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<&'a str>,
    /// IP address text (v4 or v6, without brackets), if logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<&'a str>,
    /// Source port, if logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Outcome of one delivery attempt to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Delivered (Postfix `sent`, Exim `=>`/`->`/`*>`, Sendmail `Sent`).
    Sent,
    /// Temporary failure; will be retried (Postfix `deferred`, Exim `==`).
    Deferred,
    /// Permanent failure; a bounce goes to the sender (Postfix `bounced`, Exim `**`).
    Bounced,
    /// Gave up after the maximal queue lifetime (Postfix `expired`).
    Expired,
    /// Postfix `undeliverable` (address verification probe result).
    Undeliverable,
    /// Postfix `deliverable` (verification probe result).
    Deliverable,
    /// Thrown away on purpose (Postfix `discard` transport, Exim `:blackhole:`).
    Discarded,
}

/// What a policy, access check or content filter did with a message or command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refused (`reject`, Exim `rejected`).
    Reject,
    /// Refused with a temporary code, or deferred (`defer`, `defer_if_permit`).
    Defer,
    /// Accepted after an explicit permit (`permit`, `smtpd_log_access_permit_actions`).
    Permit,
    /// Put on hold (`hold`).
    Hold,
    /// Accepted and dropped (`discard`).
    Discard,
    /// Logged only (`warning`, `warn`, `info`).
    Warn,
    /// Routed to a content filter (`filter`).
    Filter,
    /// Redirected (`redirect`).
    Redirect,
    /// Header or body replaced or prepended by a milter or check (`replace`, `prepend`).
    Modify,
}

/// Protocol or service a login was made to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// SMTP AUTH (Postfix smtpd SASL, Exim authenticators, Sendmail AUTH).
    Smtp,
    /// IMAP login.
    Imap,
    /// POP3 login.
    Pop3,
    /// ManageSieve, submission-login and other Dovecot logins, or unknown.
    Other,
}

impl Service {
    /// The name as in JSON: `smtp`, `imap`, `pop3`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Imap => "imap",
            Service::Pop3 => "pop3",
            Service::Other => "other",
        }
    }
}

/// Which notice Postfix's bounce daemon created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// `sender non-delivery notification`.
    NonDelivery,
    /// `postmaster non-delivery notification`.
    PostmasterNonDelivery,
    /// `sender delay notification`.
    Delay,
    /// `sender delivery status notification` (success DSN).
    Success,
    /// Any other notice.
    Other,
}

/// Which spam filter judged a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// amavis / amavisd-new.
    Amavis,
    /// SpamAssassin's `spamd`.
    Spamd,
    /// rspamd.
    Rspamd,
    /// The MTA's own refusal after DATA with a spam reason: a Postfix `milter-reject` at
    /// `END-OF-MESSAGE`, Exim's `rejected after DATA` from its `spam` ACL condition.
    Refusal,
}

impl Filter {
    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Filter::Amavis => "amavis",
            Filter::Spamd => "spamd",
            Filter::Rspamd => "rspamd",
            Filter::Refusal => "refusal",
        }
    }
}

/// A spam filter's verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not spam (amavis `CLEAN`, spamd `.`, rspamd `F`/`no action`/`greylist`).
    Ham,
    /// Spam (amavis `SPAM`/`SPAMMY`, spamd `Y`, rspamd `T` or a spam action, a refusal after
    /// DATA with a spam reason).
    Spam,
    /// Malware or a banned attachment (amavis `INFECTED`, `BANNED`).
    Malware,
    /// Anything else (amavis `BAD-HEADER`, `UNCHECKED`, `OVERSIZED`…, rspamd skipped or
    /// `soft reject`): not a judgement on spam.
    Other,
}

/// A delivery's total delay as logged: seconds for Postfix (`959`, `0.07`), `[D+]HH:MM:SS` for
/// Sendmail (`00:00:01`, `1+02:00:00`). Read into seconds only when asked ([`Delay::seconds`];
/// serialized as those seconds): no detector reads it, and reading every delivery line's was
/// 0.5% of `analyze`'s instructions (docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delay<'a>(pub &'a str);

impl Delay<'_> {
    /// The delay in seconds (`None` when the logged text is neither form).
    pub fn seconds(self) -> Option<f64> {
        if self.0.contains(':') {
            clock_seconds(self.0)
        } else {
            self.0.parse().ok()
        }
    }
}

impl Serialize for Delay<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.seconds().serialize(s)
    }
}

/// Sendmail's `[D+]HH:MM:SS` in seconds.
fn clock_seconds(v: &str) -> Option<f64> {
    let (days, hms) = match v.split_once('+') {
        Some((d, t)) => (d.parse::<u32>().ok()?, t),
        None => (0, v),
    };
    let mut it = hms.split(':');
    let h: u32 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let s: u32 = it.next()?.parse().ok()?;
    Some(f64::from(days) * 86_400.0 + f64::from(h) * 3600.0 + f64::from(m) * 60.0 + f64::from(s))
}

/// One normalized fact from one line. The `qid` is the queue id (Postfix) or message id (Exim,
/// Sendmail) as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// SMTP server accepted a connection (`connect from host[ip]`).
    Connect {
        /// The remote peer.
        client: Peer<'a>,
    },
    /// SMTP server connection ended (`disconnect from host[ip] ehlo=1 auth=0/1 … commands=5/6`).
    Disconnect {
        /// The remote peer.
        client: Peer<'a>,
        /// Postfix command counts (`ehlo=1 auth=0/1 quit=1 commands=2/3`), as written.
        #[serde(skip_serializing_if = "Option::is_none")]
        commands: Option<&'a str>,
        /// AUTH commands as (succeeded, total), from Postfix's `auth=S/T` (`auth=0/1` is one
        /// failed attempt of one; a plain `auth=1` is one of one).
        #[serde(skip_serializing_if = "Option::is_none")]
        auth: Option<(u32, u32)>,
    },
    /// A client said HELO/EHLO (where the log says it on its own, e.g. Exim `H=(helo)`
    /// connection lines or a Postfix `helo=<…>` on a non-queue line).
    Helo {
        /// The remote peer.
        client: Peer<'a>,
        /// The HELO/EHLO argument.
        helo: &'a str,
    },
    /// A successful login: SMTP AUTH (when logged on its own) or IMAP/POP3 (Dovecot).
    AuthSuccess {
        /// The remote peer.
        client: Peer<'a>,
        /// Login name.
        user: &'a str,
        /// Mechanism (PLAIN, LOGIN, …) or authenticator name.
        #[serde(skip_serializing_if = "Option::is_none")]
        mechanism: Option<&'a str>,
        /// Service logged in to.
        service: Service,
    },
    /// A failed login.
    AuthFailure {
        /// The remote peer.
        client: Peer<'a>,
        /// Login name tried, if logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// Mechanism or authenticator, if logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        mechanism: Option<&'a str>,
        /// Service.
        service: Service,
        /// Reason text as logged.
        reason: &'a str,
    },
    /// Postfix smtpd: a new queue file for a client (`QID: client=host[ip], sasl_method=…,
    /// sasl_username=…`), or pickup/qmqpd with `uid=`/`client=`.
    Client {
        /// Queue id.
        qid: &'a str,
        /// The client (absent for local pickup).
        client: Peer<'a>,
        /// SASL mechanism.
        #[serde(skip_serializing_if = "Option::is_none")]
        sasl_method: Option<&'a str>,
        /// SASL login name.
        #[serde(skip_serializing_if = "Option::is_none")]
        sasl_username: Option<&'a str>,
        /// Local submitter uid (pickup).
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// Sender given by pickup (`from=<…>`).
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
        /// Queue id on the previous hop (`orig_queue_id=` of a content filter re-injection).
        #[serde(skip_serializing_if = "Option::is_none")]
        orig_qid: Option<&'a str>,
    },
    /// Message-ID header recorded (Postfix cleanup `message-id=<…>`, Sendmail `msgid=`).
    MessageId {
        /// Queue id.
        qid: &'a str,
        /// The Message-ID, without angle brackets when it had them.
        message_id: &'a str,
    },
    /// A message entered the queue with its envelope sender: Postfix qmgr `from=<…>, size=…,
    /// nrcpt=…`, Exim `<=`, Sendmail `from=… nrcpts=…`. Exim's arrival line carries the
    /// submitter too; Postfix's comes in an earlier [`Event::Client`].
    Queued {
        /// Queue id.
        qid: &'a str,
        /// Envelope sender; `""` is the null sender `<>`.
        from: &'a str,
        /// Size in bytes (`None` when absent or munged, e.g. Exim's test-suite `S=sss`).
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        /// Number of recipients.
        #[serde(skip_serializing_if = "Option::is_none")]
        nrcpt: Option<u32>,
        /// Submitting peer (Exim `H=`, Sendmail `relay=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<Peer<'a>>,
        /// HELO name (Exim `H=host (helo) [ip]`).
        #[serde(skip_serializing_if = "Option::is_none")]
        helo: Option<&'a str>,
        /// Authenticated user (Exim `A=authenticator:user`).
        #[serde(skip_serializing_if = "Option::is_none")]
        auth_user: Option<&'a str>,
        /// Local user (Exim `U=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        local_user: Option<&'a str>,
        /// Protocol (Exim `P=esmtpsa`).
        #[serde(skip_serializing_if = "Option::is_none")]
        proto: Option<&'a str>,
        /// Message-ID (Exim `id=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<&'a str>,
        /// Exim: this message is a bounce generated for this parent message id (`R=parent`).
        #[serde(skip_serializing_if = "Option::is_none")]
        parent: Option<&'a str>,
    },
    /// A delivery attempt to one recipient (Postfix smtp/lmtp/local/virtual/pipe/error/discard,
    /// Exim `=> -> *> ** ==`, Sendmail `to=… stat=…`).
    Delivery {
        /// Queue id.
        qid: &'a str,
        /// Recipient.
        to: &'a str,
        /// Original recipient before aliasing, if logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        orig_to: Option<&'a str>,
        /// Next hop as logged (`mx.example.net[192.0.2.1]:25`, `local`, `none`).
        #[serde(skip_serializing_if = "Option::is_none")]
        relay: Option<&'a str>,
        /// Delivering agent / transport (Postfix daemon name `smtp`, `local`…; Exim `T=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        transport: Option<&'a str>,
        /// Total delay (Postfix, Sendmail `delay=`), read into seconds when asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        delay: Option<Delay<'a>>,
        /// Postfix `delays=a/b/c/d`.
        #[serde(skip_serializing_if = "Option::is_none")]
        delays: Option<&'a str>,
        /// Enhanced status code.
        #[serde(skip_serializing_if = "Option::is_none")]
        dsn: Option<&'a str>,
        /// Outcome.
        status: DeliveryStatus,
        /// Remote or local reply text (inside the parentheses for Postfix).
        #[serde(skip_serializing_if = "Option::is_none")]
        reply: Option<&'a str>,
    },
    /// A check refused, held, discarded, permitted or warned about a command or message:
    /// Postfix `NOQUEUE: reject:`/`QID: reject:`/`hold:`/`discard:`/`permit:`, cleanup header and
    /// body checks, milter actions; Exim `rejected RCPT`/`rejected after DATA`.
    Check {
        /// Queue id, `None` for `NOQUEUE`.
        #[serde(skip_serializing_if = "Option::is_none")]
        qid: Option<&'a str>,
        /// What happened.
        action: Action,
        /// SMTP stage: `CONNECT`, `HELO`, `MAIL`, `RCPT`, `DATA`, `END-OF-MESSAGE`, `header`, `body`…
        #[serde(skip_serializing_if = "Option::is_none")]
        stage: Option<&'a str>,
        /// The client.
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<Peer<'a>>,
        /// Reply and reason text as logged (`554 5.7.1 Service unavailable; Client host … blocked`).
        reason: &'a str,
        /// Envelope sender, `""` for `<>`.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
        /// Recipient.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<&'a str>,
        /// `SMTP`/`ESMTP`.
        #[serde(skip_serializing_if = "Option::is_none")]
        proto: Option<&'a str>,
        /// HELO name.
        #[serde(skip_serializing_if = "Option::is_none")]
        helo: Option<&'a str>,
    },
    /// A message left the queue (Postfix qmgr `removed`, Exim `Completed`).
    Removed {
        /// Queue id.
        qid: &'a str,
    },
    /// Postfix qmgr `from=<…>, status=expired, returned to sender`.
    Expired {
        /// Queue id.
        qid: &'a str,
        /// Envelope sender.
        from: &'a str,
    },
    /// Postfix bounce/defer daemon created a notification for `qid` as `notice_qid`.
    Notice {
        /// The original message.
        qid: &'a str,
        /// Which notification.
        kind: NoticeKind,
        /// The notification's own queue id.
        notice_qid: &'a str,
    },
    /// A Postfix policy delegation request (SMTPD_POLICY_README), as the real-time service
    /// receives it from `check_policy_service`. It is an event like a log line: the detectors see
    /// an SMTP transaction as it happens, before any log line is written.
    Policy {
        /// `protocol_state`: `CONNECT`, `EHLO`, `HELO`, `MAIL`, `RCPT`, `DATA`, `END-OF-MESSAGE`, `VRFY`, `ETRN`.
        protocol_state: &'a str,
        /// The client (`client_address`, `client_name`).
        client: Peer<'a>,
        /// `helo_name`.
        #[serde(skip_serializing_if = "Option::is_none")]
        helo: Option<&'a str>,
        /// `sender`; `""` is the null sender.
        #[serde(skip_serializing_if = "Option::is_none")]
        sender: Option<&'a str>,
        /// `recipient`.
        #[serde(skip_serializing_if = "Option::is_none")]
        recipient: Option<&'a str>,
        /// `recipient_count`.
        #[serde(skip_serializing_if = "Option::is_none")]
        recipient_count: Option<u32>,
        /// `sasl_username`.
        #[serde(skip_serializing_if = "Option::is_none")]
        sasl_username: Option<&'a str>,
        /// `sasl_method`.
        #[serde(skip_serializing_if = "Option::is_none")]
        sasl_method: Option<&'a str>,
        /// `queue_id`, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        qid: Option<&'a str>,
        /// `instance`: the same for every request of one SMTP transaction.
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<&'a str>,
        /// `size`.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// A spam filter's verdict on one message (amavis, `spamd`, rspamd; see [`crate::filter`]).
    /// The message is named by queue id where the filter logs it, else by Message-ID.
    FilterVerdict {
        /// Which filter.
        filter: Filter,
        /// Its verdict.
        verdict: Verdict,
        /// Its score (amavis `Hits`, spamd's score, rspamd's), when logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        score: Option<f64>,
        /// The score at which it calls a message spam (spamd `required_score`, rspamd's
        /// `[score/threshold]`), when logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        threshold: Option<f64>,
        /// Queue id of the judged message (amavis `Queue-ID`, rspamd `qid`).
        #[serde(skip_serializing_if = "Option::is_none")]
        qid: Option<&'a str>,
        /// Its Message-ID, without angle brackets.
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<&'a str>,
        /// The SMTP client that sent it to us (amavis' first `[ip]:port`, rspamd `ip`).
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<Peer<'a>>,
        /// Envelope sender, `""` for `<>`.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
    },
    /// A line we recognize and count but whose content the engine does not use (postscreen
    /// verdicts, anvil statistics, scache, TLS, daemon start/stop, warnings…). `what` names it.
    Info {
        /// Short stable name of the line kind, e.g. `postscreen`, `anvil`, `tls`, `warning`.
        what: &'static str,
        /// Queue id, if the line has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        qid: Option<&'a str>,
        /// A peer the line names (postscreen, warnings), if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<Peer<'a>>,
    },
}

impl Event<'_> {
    /// Queue id the event belongs to, if any.
    pub fn qid(&self) -> Option<&str> {
        match self {
            Event::Client { qid, .. }
            | Event::MessageId { qid, .. }
            | Event::Queued { qid, .. }
            | Event::Delivery { qid, .. }
            | Event::Removed { qid }
            | Event::Expired { qid, .. }
            | Event::Notice { qid, .. } => Some(qid),
            Event::Check { qid, .. }
            | Event::Info { qid, .. }
            | Event::FilterVerdict { qid, .. } => *qid,
            _ => None,
        }
    }
}

/// Parse `host[ip]` or `host[ip]:port` (Postfix style). `None` unless it has the brackets.
pub fn peer_brackets(s: &str) -> Option<Peer<'_>> {
    let b = s.as_bytes();
    let lb = crate::bytes::find_byte(b, b'[')?;
    let rb = crate::bytes::find_byte(&b[lb..], b']')? + lb;
    let host = &s[..lb];
    let ip = &s[lb + 1..rb];
    let port = s[rb + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
    Some(Peer {
        host: if host.is_empty() { None } else { Some(host) },
        ip: if ip.is_empty() { None } else { Some(ip) },
        port,
    })
}

/// The domain of an address (after its last `@`), None when it has none or it is empty.
pub fn domain_of(addr: &str) -> Option<&str> {
    crate::bytes::rsplit_once(addr, b'@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// Strip one pair of angle brackets: `<a@b>` -> `a@b`, `<>` -> ``; other text unchanged.
pub fn unbracket(s: &str) -> &str {
    s.strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_domain_is_after_its_last_at_and_not_empty() {
        assert_eq!(domain_of("a@b.example"), Some("b.example"));
        assert_eq!(domain_of("\"a@b\"@c.example"), Some("c.example"));
        assert_eq!(domain_of("a@"), None);
        assert_eq!(domain_of("postmaster"), None);
        assert_eq!(domain_of(""), None);
    }

    #[test]
    fn a_delay_reads_as_seconds_in_either_form() {
        for (logged, secs) in [
            ("959", Some(959.0)),
            ("0.07", Some(0.07)),
            ("00:00:01", Some(1.0)),
            ("01:02:03", Some(3723.0)),
            ("2+00:00:05", Some(172_805.0)),
            ("", None),
            ("soon", None),
            ("1:2", None),
            ("x+00:00:01", None),
        ] {
            assert_eq!(Delay(logged).seconds(), secs, "{logged:?}");
        }
        assert_eq!(serde_json::to_string(&Delay("0.5")).unwrap(), "0.5");
        assert_eq!(serde_json::to_string(&Delay("soon")).unwrap(), "null");
    }

    #[test]
    fn peers() {
        let p = peer_brackets("mail.example.com[192.0.2.1]:25").unwrap();
        assert_eq!(p.host, Some("mail.example.com"));
        assert_eq!(p.ip, Some("192.0.2.1"));
        assert_eq!(p.port, Some(25));
        let p = peer_brackets("unknown[2001:db8::1]").unwrap();
        assert_eq!(p.ip, Some("2001:db8::1"));
        assert_eq!(p.port, None);
        assert!(peer_brackets("nothing").is_none());
        assert!(peer_brackets("x]y[").is_none());
    }

    #[test]
    fn brackets() {
        assert_eq!(unbracket("<a@b>"), "a@b");
        assert_eq!(unbracket("<>"), "");
        assert_eq!(unbracket("a@b"), "a@b");
    }
}
