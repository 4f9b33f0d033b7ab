//! Abuse reports for other networks' abuse desks, in the standard forms they process
//! automatically:
//!
//! - **XARF v4** JSON ([`xarf`]; the eXtended Abuse Reporting Format, `xarf_version` [`XARF_VERSION`],
//!   schemas at github.com/xarf/xarf-spec): `connection`/`login_attack` for password guessing,
//!   `messaging`/`spam` for spam, with the evidence lines as a `text/plain` evidence item;
//! - **ARF** (RFC 5965) for the mail case ([`arf`]): a `multipart/report;
//!   report-type=feedback-report` message with a human-readable part, the
//!   `message/feedback-report` part (`Feedback-Type: abuse`) and a `text/rfc822-headers` part.
//!   smtpscope never reads message content, so the third part holds the trace header that our
//!   MTA's log records for the message (`Received:` from the client's HELO and address, our
//!   queue id and time; `Return-Path:`), and says so.
//!
//! What neither form gets from us: the client's **source port**. XARF v4 requires
//! `source_port` for a single-address source of `login_attack` and for every SMTP `spam`
//! report (it tells CGNAT users apart); MTA logs carry no port unless Postfix's
//! `smtpd_client_port_logging = yes` is set, and the evidence does not keep it. Reports for a
//! network (CIDR) source are complete; the others lack that one field, and the test
//! (`tests/abuse_reports.rs`) checks that it is the only thing the schema misses.
//!
//! [`cases`] turns an incident into the reports it warrants; [`write_dir`] writes them.
//! Another module reporting spam it received (networks sending to our MX) builds a [`Case`]
//! itself and calls [`xarf`] and [`arf`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use detect::evidence::{BruteforceEvidence, Evidence, MessageSample};
use detect::incident::Incident;
use detect::{Detector, EntityKind};
use maillog::Ts;
use serde::{Deserialize, Serialize};

/// The XARF version we write (xarf-spec tag `v4.2.0`).
pub const XARF_VERSION: &str = "4.2.0";

/// Most evidence lines in one report: an abuse desk reads a screenful, and XARF caps one
/// evidence item at 5 MB; 200 lines of log-like text stay far below. Our own idea.
pub const MAX_EVIDENCE_LINES: usize = 200;

/// Namespace of the report ids (UUID v5 of the report's identity under this namespace, so
/// the same incident reported twice gets the same id and a desk can drop the duplicate).
const REPORT_ID_NAMESPACE: uuid::Uuid = uuid::Uuid::NAMESPACE_URL;

/// `[abuse]`: who we are, as the reports name us (XARF `reporter`/`sender`, ARF `From`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reporter {
    /// Organisation name, e.g. "Example ISP".
    pub org: Option<String>,
    /// Contact address of the abuse desk, e.g. "abuse@example-isp.net".
    pub contact: Option<String>,
    /// The organisation's domain, e.g. "example-isp.net".
    pub domain: Option<String>,
}

/// A complete reporter (every key given).
#[derive(Debug, Clone, PartialEq)]
pub struct Us {
    /// Organisation.
    pub org: String,
    /// Contact address.
    pub contact: String,
    /// Domain.
    pub domain: String,
}

impl Reporter {
    /// All three keys, or an error saying which are missing and where to put them.
    pub fn complete(&self) -> Result<Us> {
        let missing: Vec<&str> = [
            ("org", &self.org),
            ("contact", &self.contact),
            ("domain", &self.domain),
        ]
        .into_iter()
        .filter(|(_, v)| v.as_deref().is_none_or(str::is_empty))
        .map(|(k, _)| k)
        .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "abuse reports name who sends them: set {} in the [abuse] table of the configuration file (--config FILE; `smtpscope config --default` shows them)",
                missing.join(", ")
            );
        }
        Ok(Us {
            org: self.org.clone().unwrap_or_default(),
            contact: self.contact.clone().unwrap_or_default(),
            domain: self.domain.clone().unwrap_or_default(),
        })
    }
}

/// What is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReportKind {
    /// Password guessing (XARF `connection`/`login_attack`).
    LoginAttack,
    /// Spam sent from the source (XARF `messaging`/`spam`, and ARF).
    Spam,
}

impl ReportKind {
    fn file_tag(self) -> &'static str {
        match self {
            ReportKind::LoginAttack => "login-attack",
            ReportKind::Spam => "spam",
        }
    }
}

/// The facts of one report: one source (an address or a network), what it did, when, and
/// the evidence lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Kind.
    pub kind: ReportKind,
    /// The source: an IP address, or a network in CIDR form.
    pub source: String,
    /// First seen.
    pub first: Ts,
    /// Last seen.
    pub last: Ts,
    /// One line for the abuse desk.
    pub description: String,
    /// 0..1.
    pub confidence: f64,
    /// Login attempts seen (login attacks).
    pub attempts: Option<u64>,
    /// Services attacked (`imap`, `pop3`, `smtp`).
    pub services: Vec<String>,
    /// Sample messages (spam): envelope, client, recipients and outcomes.
    pub messages: Vec<MessageSample>,
    /// The evidence, one line each, as the abuse desk reads it.
    pub evidence: Vec<String>,
    /// Our incident's number (names the files; part of the report's identity).
    pub incident: Option<u64>,
}

impl Case {
    /// The first sample's envelope sender that is an address.
    fn smtp_from(&self) -> Option<&str> {
        self.messages
            .iter()
            .map(|m| m.sender.as_str())
            .find(|s| s.contains('@') && !s.starts_with('@'))
    }
    fn smtp_to(&self) -> Option<&str> {
        self.messages
            .iter()
            .flat_map(|m| m.recipients.iter())
            .map(|r| r.addr.as_str())
            .find(|s| s.contains('@'))
    }
    /// A stable id: the same facts give the same id.
    fn report_id(&self, us: &Us) -> uuid::Uuid {
        let name = format!(
            "smtpscope:{}:{}:{}:{}:{}",
            us.domain,
            self.kind.file_tag(),
            self.source,
            self.first.rfc3339(),
            self.incident.unwrap_or(0)
        );
        uuid::Uuid::new_v5(&REPORT_ID_NAMESPACE, name.as_bytes())
    }
}

/// XARF `reporter` / `sender`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    /// Organisation.
    pub org: String,
    /// Address.
    pub contact: String,
    /// Domain.
    pub domain: String,
}

/// XARF `evidence` item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceItem {
    /// `text/plain`.
    pub content_type: &'static str,
    /// What it is.
    pub description: String,
    /// Base64 of the text.
    pub payload: String,
    /// Bytes before encoding.
    pub size: usize,
}

/// XARF `category`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum XarfCategory {
    /// Network attacks.
    Connection,
    /// Mail.
    Messaging,
}

/// XARF `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum XarfType {
    /// Password guessing.
    LoginAttack,
    /// Spam.
    Spam,
}

/// XARF `protocol` values we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Login attacks: the transport.
    Tcp,
    /// Spam: the mail protocol.
    Smtp,
}

/// One XARF v4 report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Xarf {
    /// [`XARF_VERSION`].
    pub xarf_version: &'static str,
    /// UUID.
    pub report_id: String,
    /// When the abuse happened (first seen).
    pub timestamp: String,
    /// Us.
    pub reporter: Contact,
    /// Us.
    pub sender: Contact,
    /// Address or CIDR.
    pub source_identifier: String,
    /// Category.
    pub category: XarfCategory,
    /// Type.
    #[serde(rename = "type")]
    pub xarf_type: XarfType,
    /// Transport / protocol.
    pub protocol: Protocol,
    /// `automated_filter` (our detectors read our MTA's logs).
    pub evidence_source: &'static str,
    /// Evidence.
    pub evidence: Vec<EvidenceItem>,
    /// 0..1.
    pub confidence: f64,
    /// One line.
    pub description: String,
    /// Login attacks: first seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Last seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Login attacks: attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_count: Option<u64>,
    /// Login attacks: services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Spam: envelope sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_from: Option<String>,
    /// Spam: one envelope recipient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_to: Option<String>,
    /// Spam: recipients in the samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_count: Option<u64>,
    /// `namespace:value` tags.
    pub tags: Vec<String>,
}

fn contact(us: &Us) -> Contact {
    Contact {
        org: us.org.clone(),
        contact: us.contact.clone(),
        domain: us.domain.clone(),
    }
}

fn evidence_text(c: &Case) -> String {
    let mut s = String::new();
    for l in c.evidence.iter().take(MAX_EVIDENCE_LINES) {
        s.push_str(l);
        s.push('\n');
    }
    if c.evidence.len() > MAX_EVIDENCE_LINES {
        let _ = writeln!(
            s,
            "... and {} more lines",
            c.evidence.len() - MAX_EVIDENCE_LINES
        );
    }
    s
}

/// The XARF v4 report of a case.
pub fn xarf(us: &Us, c: &Case) -> Xarf {
    let text = evidence_text(c);
    let (category, xarf_type, protocol) = match c.kind {
        ReportKind::LoginAttack => (
            XarfCategory::Connection,
            XarfType::LoginAttack,
            Protocol::Tcp,
        ),
        ReportKind::Spam => (XarfCategory::Messaging, XarfType::Spam, Protocol::Smtp),
    };
    let spam = c.kind == ReportKind::Spam;
    let recipients: usize = c
        .messages
        .iter()
        .map(|m| m.recipients.len() + m.more_delivered + m.more_failed)
        .sum();
    let mut tags = vec![format!("detector:smtpscope")];
    tags.extend(
        c.services
            .iter()
            .filter(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
            .map(|s| format!("service:{s}")),
    );
    Xarf {
        xarf_version: XARF_VERSION,
        report_id: c.report_id(us).to_string(),
        timestamp: c.first.rfc3339(),
        reporter: contact(us),
        sender: contact(us),
        source_identifier: c.source.clone(),
        category,
        xarf_type,
        protocol,
        evidence_source: "automated_filter",
        evidence: vec![EvidenceItem {
            content_type: "text/plain",
            description: "Our MTA's log about this source, as smtpscope summarised it".into(),
            payload: base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            size: text.len(),
        }],
        confidence: detect::alert::round3(c.confidence.clamp(0.0, 1.0)),
        description: cut(&c.description, 1000),
        first_seen: Some(c.first.rfc3339()),
        last_seen: Some(c.last.rfc3339()),
        attempt_count: c.attempts.filter(|_| !spam),
        service: (!spam)
            .then(|| c.services.join(","))
            .filter(|s| !s.is_empty()),
        smtp_from: c.smtp_from().filter(|_| spam).map(str::to_owned),
        smtp_to: c.smtp_to().filter(|_| spam).map(str::to_owned),
        recipient_count: (spam && recipients > 0).then_some(recipients as u64),
        tags,
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut e = n;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    s[..e].to_owned()
}

/// RFC 5322 date of an event time.
fn rfc5322(ts: Ts) -> String {
    let t = jiff::Timestamp::from_second(ts.secs()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// The ARF (RFC 5965) report of a spam case, as the bytes of a message ready to send.
/// `None` for a case without a sample message (nothing to report in ARF's terms).
pub fn arf(us: &Us, c: &Case, to: &str) -> Option<Vec<u8>> {
    use mail_builder::headers::content_type::ContentType;
    use mail_builder::mime::MimePart;
    let m = c.messages.first()?;
    let mut human = String::new();
    let _ = writeln!(
        human,
        "This is an abuse report (RFC 5965) from {} about mail sent from {}.\n\n{}\n",
        us.org, c.source, c.description
    );
    let _ = writeln!(
        human,
        "smtpscope never reads message content: the third part is the trace header our MTA's log records\nfor one of the messages. The evidence, one line each:\n"
    );
    human.push_str(&evidence_text(c));
    let mut fb = String::new();
    let _ = write!(
        fb,
        "Feedback-Type: abuse\r\nUser-Agent: smtpscope/{}\r\nVersion: 1\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if !m.sender.is_empty() {
        let _ = write!(fb, "Original-Mail-From: <{}>\r\n", m.sender);
    }
    for r in &m.recipients {
        let _ = write!(fb, "Original-Rcpt-To: <{}>\r\n", r.addr);
    }
    let arrival = parse_sample_time(&m.time).unwrap_or(c.first);
    let _ = write!(fb, "Arrival-Date: {}\r\n", rfc5322(arrival));
    let _ = write!(fb, "Reporting-MTA: dns; {}\r\n", us.domain);
    if let Some(ip) = &m.client {
        let _ = write!(fb, "Source-IP: {ip}\r\n");
    }
    let incidents: usize = c.messages.len().max(1);
    let _ = write!(fb, "Incidents: {incidents}\r\n");
    let mut hdr = String::new();
    let _ = write!(
        hdr,
        "Return-Path: <{}>\r\nReceived: from {} ([{}])\r\n\tby {} with ESMTP id {};\r\n\t{}\r\n",
        m.sender,
        m.helo.as_deref().unwrap_or("unknown"),
        m.client.as_deref().unwrap_or("unknown"),
        us.domain,
        m.qid,
        rfc5322(arrival)
    );
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "feedback-report"),
        vec![
            MimePart::new(ContentType::new("text/plain"), human),
            MimePart::new(ContentType::new("message/feedback-report"), fb),
            MimePart::new(ContentType::new("text/rfc822-headers"), hdr),
        ],
    );
    let id = c.report_id(us);
    let msg = mail_builder::MessageBuilder::new()
        .from((us.org.as_str(), us.contact.as_str()))
        .to(to)
        .subject(format!("Abuse report: spam from {}", c.source))
        .date(c.last.secs())
        .message_id(format!("{id}@{}", us.domain))
        .body(body);
    msg.write_to_vec().ok()
}

/// `2026-11-20 10:47:15` (a sample's UTC time) as a time stamp.
fn parse_sample_time(s: &str) -> Option<Ts> {
    Ts::parse_rfc3339(&format!("{}Z", s.replace(' ', "T")))
}

/// A message sample as one evidence line: time, queue id, client, HELO, sender, recipients
/// with their outcome (`!!!` failed, `->` delivered).
pub fn message_line(m: &MessageSample) -> String {
    let mut s = format!("{} {}", m.time, m.qid);
    if let Some(c) = &m.client {
        let _ = write!(s, " client={c}");
    }
    if let Some(h) = &m.helo {
        let _ = write!(s, " helo=<{h}>");
    }
    let _ = write!(s, " from=<{}>", m.sender);
    for r in &m.recipients {
        let mark = if r.outcome.is_failure() { "!!!" } else { "->" };
        let _ = write!(s, " {mark} <{}>", r.addr);
        if let Some(d) = &r.dsn {
            let _ = write!(s, " {d}");
        }
    }
    let more = m.more_delivered + m.more_failed;
    if more > 0 {
        let _ = write!(s, " (+{more} more)");
    }
    s
}

/// Detectors whose incidents are spam sent from the source.
fn spam_detector(d: Detector) -> bool {
    matches!(
        d,
        Detector::DeliveryFailures
            | Detector::HeloAnomaly
            | Detector::MultipleLists
            | Detector::AuthHijack
    )
}

/// The sample messages of a `delivery-failures` alert's evidence (the only evidence that has
/// them).
fn samples_of(e: &Option<Evidence>) -> Vec<MessageSample> {
    match e {
        Some(Evidence::DeliveryFailures(f)) => f.sample_messages.clone(),
        _ => Vec::new(),
    }
}

/// The reports an incident warrants:
/// - an `auth-bruteforce` incident on a `client` or `network`: one login-attack report about it;
/// - a spam incident (`delivery-failures`, `helo-anomaly`, `multiple-lists`, `auth-hijack`):
///   one spam report per source network of its sample messages that is not the entity's own
///   (a hijacked account's spam comes from the attackers' addresses; a customer's from its
///   line: both are reported to whoever runs the sending address). Source addresses are
///   grouped per address: the abuse desk of each address's network gets its own lines.
pub fn cases(i: &Incident) -> Vec<Case> {
    let ev: Vec<Option<Evidence>> = i.evidence.iter().map(Evidence::of).collect();
    let mut out = Vec::new();
    if i.detector == Detector::AuthBruteforce
        && matches!(i.entity.kind, EntityKind::Client | EntityKind::Network)
    {
        let mut lines = Vec::new();
        let mut services = std::collections::BTreeSet::new();
        let mut attempts = 0u64;
        for (a, e) in i.evidence.iter().zip(&ev) {
            lines.push(format!("{} {}", a.ts.display_utc(), a.summary));
            let Some(Evidence::AuthBruteforce(b)) = e else {
                continue;
            };
            let (accounts, ips): (&[String], &[String]) = match b {
                BruteforceEvidence::Address(x) => (&x.sample_accounts, &[]),
                BruteforceEvidence::Network(x) => (&[], &x.sample_ips),
                BruteforceEvidence::Target(x) => (&[], &x.sample_ips),
                BruteforceEvidence::Wave(_) | BruteforceEvidence::Guessed(_) => (&[], &[]),
            };
            for (what, names) in [("sample accounts", accounts), ("sample ips", ips)] {
                if !names.is_empty() {
                    lines.push(format!("  {what}: {}", names.join(" ")));
                }
            }
            if let BruteforceEvidence::Address(x) = b {
                services.extend(x.services.iter().map(|s| s.as_str().to_owned()));
            }
            let n = match b {
                BruteforceEvidence::Address(x) => x.attack_failures,
                BruteforceEvidence::Network(x) => x.failures,
                BruteforceEvidence::Wave(x) => x.failures,
                BruteforceEvidence::Target(x) => x.failures,
                BruteforceEvidence::Guessed(_) => 0,
            };
            attempts = attempts.max(n);
        }
        out.push(Case {
            kind: ReportKind::LoginAttack,
            source: i.entity.id.clone(),
            first: i.first,
            last: i.last,
            description: i.summary.clone(),
            confidence: i.score,
            attempts: (attempts > 0).then_some(attempts),
            services: services.into_iter().collect(),
            messages: Vec::new(),
            evidence: lines,
            incident: Some(i.id),
        });
    }
    // Spam received at our MX (issue 14): the host or network that sent it, with the refused
    // recipients and HELO names as evidence (no message samples: its mail was refused).
    if matches!(
        i.detector,
        Detector::IncomingFailures | Detector::IncomingHelo | Detector::IncomingFilter
    ) && matches!(i.entity.kind, EntityKind::Client | EntityKind::Network)
    {
        let mut lines = Vec::new();
        for (a, e) in i.evidence.iter().zip(&ev) {
            lines.push(format!("{} {}", a.ts.display_utc(), a.summary));
            let Some(Evidence::Incoming(x)) = e else {
                continue;
            };
            if !x.sample_unknown.is_empty() {
                lines.push(format!(
                    "  refused recipients: {}",
                    x.sample_unknown.join(" ")
                ));
            }
            if let Some(f) = &x.filter {
                let names: Vec<&str> = f.filters.iter().map(|x| x.as_str()).collect();
                lines.push(format!(
                    "  spam-filter verdicts: {} spam of {} judged ({})",
                    f.spam,
                    f.judged,
                    names.join(", ")
                ));
            }
            if !x.helos.is_empty() {
                lines.push(format!("  helo names: {}", x.helos.join(" ")));
            }
            if !x.hosts.is_empty() {
                lines.push(format!("  hosts: {}", x.hosts.join(" ")));
            }
        }
        out.push(Case {
            kind: ReportKind::Spam,
            source: i.entity.id.clone(),
            first: i.first,
            last: i.last,
            description: i.summary.clone(),
            confidence: i.score,
            attempts: None,
            services: vec!["smtp".into()],
            messages: Vec::new(),
            evidence: lines,
            incident: Some(i.id),
        });
    }
    if i.detectors.iter().any(|d| spam_detector(*d)) {
        let mut by_source: BTreeMap<String, Vec<MessageSample>> = BTreeMap::new();
        for e in &ev {
            for m in samples_of(e) {
                if let Some(c) = m.client.clone() {
                    let list = by_source.entry(c).or_default();
                    if !list.iter().any(|x| x.qid == m.qid) {
                        list.push(m);
                    }
                }
            }
        }
        for (source, mut messages) in by_source {
            messages.sort_by(|a, b| a.time.cmp(&b.time).then(a.qid.cmp(&b.qid)));
            let first = messages
                .first()
                .and_then(|m| parse_sample_time(&m.time))
                .unwrap_or(i.first);
            let last = messages
                .last()
                .and_then(|m| parse_sample_time(&m.time))
                .unwrap_or(i.last);
            out.push(Case {
                kind: ReportKind::Spam,
                description: format!("{} (incident about {})", i.summary, i.entity),
                confidence: i.score,
                attempts: None,
                services: vec!["smtp".into()],
                evidence: messages.iter().map(message_line).collect(),
                messages,
                source,
                first,
                last,
                incident: Some(i.id),
            });
        }
    }
    out
}

/// A file-name-safe form of a source (`192.0.2.0/24` → `192.0.2.0_24`).
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Write every report of these incidents into `dir` (created if missing):
/// `incident-<id>-<kind>-<source>.xarf.json` and, for spam, `…​.arf.eml` addressed to
/// `abuse@` nobody in particular (`to` is left for the sending step to fill: the abuse
/// address of the source's network, from its RDAP/whois record). Returns the files written.
pub fn write_dir(dir: &Path, us: &Us, incidents: &[Incident]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the abuse report directory {}", dir.display()))?;
    let mut written = Vec::new();
    for i in incidents {
        for c in cases(i) {
            let base = format!(
                "incident-{}-{}-{}",
                i.id,
                c.kind.file_tag(),
                file_safe(&c.source)
            );
            let p = dir.join(format!("{base}.xarf.json"));
            let mut j = serde_json::to_vec_pretty(&xarf(us, &c))?;
            j.push(b'\n');
            write_file(&p, &j)?;
            written.push(p);
            if c.kind == ReportKind::Spam {
                if let Some(m) = arf(us, &c, ARF_TO_PLACEHOLDER) {
                    let p = dir.join(format!("{base}.arf.eml"));
                    write_file(&p, &m)?;
                    written.push(p);
                }
            }
        }
    }
    Ok(written)
}

/// The `To:` of written ARF files: the sending step replaces it with the abuse contact of the
/// source's network (RDAP `abuse` role), which smtpscope does not look up (no network access).
pub const ARF_TO_PLACEHOLDER: &str = "abuse-contact-of-source@invalid";

fn write_file(p: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", p.display()))
}
