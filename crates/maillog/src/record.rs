//! Message records: the events of one queue id joined.
//!
//! A record says who submitted a message (SASL user, client IP and name, HELO, local user),
//! its envelope sender, size and Message-ID, and every recipient with its final outcome. Records
//! are emitted when the message leaves the queue (Postfix `removed`, Exim `Completed`), or when
//! [`Correlator::flush_idle`] / [`Correlator::finish`] gives up on them, so memory holds only the
//! messages in flight.
//!
//! Links between messages:
//! - a bounce notification (Postfix `sender non-delivery notification: NEWID`, Exim `<= <> R=parent`)
//!   records its parent;
//! - a message re-injected by a content filter (Postfix relays it to a loopback filter and gets back
//!   `250 … queued as NEWID`) hands its submitter (SASL user, client, HELO) to the new queue id, so
//!   the record that reaches the internet still names the customer who sent it.
//!
//! A spam filter's verdict ([`Event::FilterVerdict`]) joins the message it names on the same log
//! host: by queue id when the filter logs one (amavis, rspamd), else by Message-ID (`spamd`)
//! among the messages in flight. A verdict that names no message in flight is counted
//! ([`CorrelatorStats::verdicts_unlinked`]) and dropped. A refusal after DATA whose reason is a
//! spam filter's ([`crate::filter::is_spam_reason`]) marks its message as spam too, and keeps
//! the refused recipient (`Rejected`), so that the message reaches the detectors with its
//! sender and recipient although it never entered the queue. A re-injected message inherits
//! its parent's verdict with its submitter (amavis judges before it re-injects).

use std::net::IpAddr;

use serde::Serialize;

use crate::event::{Action, DeliveryStatus, Event, Filter, NoticeKind, Peer, Verdict};
use crate::time::Ts;

/// Final outcome of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Delivered at the first attempt.
    Delivered,
    /// Delivered after one or more temporary failures.
    DeferredThenDelivered,
    /// Permanently refused (remote 5xx or local error): a bounce goes back.
    Bounced,
    /// Deferred until the queue lifetime ran out.
    Expired,
    /// Still deferred when the record was closed (end of input or time-out).
    Deferred,
    /// Discarded on purpose.
    Discarded,
    /// Handed to a content filter, which re-queued the message under another id.
    Filtered,
    /// Refused by our own server at RCPT time (a local policy or restriction).
    Rejected,
}

impl Outcome {
    /// True for outcomes that mean the recipient did not get the mail and the sender is told:
    /// bounced and expired.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Bounced | Outcome::Expired | Outcome::Rejected
        )
    }
    /// True when the mail arrived.
    pub fn is_delivered(self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::DeferredThenDelivered)
    }
}

pub use crate::recipient::{AddrQuery, Recipient, RecipientIndex};

impl Recipient {
    /// True when our own aliasing or forwarding rewrote this recipient: the log names an original
    /// address (Postfix `orig_to=<…>`, Exim `<original>` or `(parent)`) that is a bare local part
    /// or sits in another domain than the final address. Such mail was sent to one of our users
    /// and passed on by us (aliases, `.forward`, virtual aliases to external mailboxes), so what
    /// happens to it downstream says nothing about whoever sent it (Clayton, CEAS 2004, discounts
    /// forwarding for that reason).
    pub fn is_forwarded(&self) -> bool {
        let Some(orig) = self.orig() else {
            return false;
        };
        if orig.eq_ignore_ascii_case(self.addr()) {
            return false;
        }
        match (
            crate::bytes::rsplit_once(orig, b'@'),
            crate::bytes::rsplit_once(self.addr(), b'@'),
        ) {
            (None, _) => true,
            (Some((_, od)), Some((_, ad))) => !od.eq_ignore_ascii_case(ad),
            (Some(_), None) => false,
        }
    }

    /// True when the last attempt went to a local mailbox (local, virtual, lmtp, pipe to a local
    /// delivery agent) rather than across the internet.
    pub fn is_local_delivery(&self) -> bool {
        let Some(t) = self.transport() else {
            return false;
        };
        // The names compared with `bytes::same` (word loads; a `match` on the strings called
        // `memcmp` for each candidate of the same length, about 4 million calls a run).
        let is = |name: &str| crate::bytes::same(t.as_bytes(), name.as_bytes());
        if ["local", "virtual", "lmtp", "dovecot", "maildrop"]
            .into_iter()
            .any(is)
        {
            return true;
        }
        // Postfix's transports to the internet, the most asked (none has a word below).
        if is("smtp") || is("relay") {
            return false;
        }
        t.contains("local") || t.contains("lmtp") || t.contains("dovecot") || t.contains("virtual")
    }
}

/// How the message entered the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "parent")]
pub enum Origin {
    /// From an SMTP (or QMQP) client.
    Smtp,
    /// Local submission (Postfix pickup / sendmail command, Exim `U=` with `P=local`).
    Local,
    /// A notification (bounce, delay, DSN) the MTA created about the parent queue id.
    Notice(String),
    /// Re-injected by a content filter; the parent is the pre-filter queue id.
    Filter(String),
    /// Only later events were seen (the message entered before the log started).
    Unknown,
}

/// A spam filter's judgement of a message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct FilterMark {
    /// Which filter.
    pub filter: Filter,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its score, when logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// How much a verdict says against a message: a later, milder verdict on the same message (a
/// second filter, or a re-scan) never hides an earlier spam or malware one.
fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Other => 0,
        Verdict::Ham => 1,
        Verdict::Spam => 2,
        Verdict::Malware => 3,
    }
}

/// A message and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MessageRecord {
    /// Log host that wrote the lines.
    pub host: String,
    /// Queue id.
    pub qid: String,
    /// First event time of the message.
    pub accepted: Ts,
    /// Last event time.
    pub finished: Ts,
    /// How it entered.
    pub origin: Origin,
    /// Submitting client IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    /// Submitting client's name as logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_host: Option<String>,
    /// HELO/EHLO name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helo: Option<String>,
    /// SASL / authenticated user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    /// Local user (Exim `U=`) or uid (Postfix pickup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_user: Option<String>,
    /// Envelope sender; `Some("")` is the null sender `<>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Recipient count as announced by the queue manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nrcpt: Option<u32>,
    /// Message-ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Recipients with outcomes, in order of first attempt.
    pub recipients: Vec<Recipient>,
    /// Where the recipients are, by address, once they are many (the correlator's, to find a
    /// delivery line's recipient; see [`RecipientIndex`]). Equal in every record and not
    /// serialized.
    #[serde(skip)]
    pub recipient_index: RecipientIndex,
    /// A check refused the whole message after it was queued (cleanup header/body/milter reject).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    /// A check put the message on hold.
    pub held: bool,
    /// Notifications generated about this message (bounce / delay notices).
    pub notices: u32,
    /// True when the message left the queue in the log; false when closed by time-out or end of input.
    pub complete: bool,
    /// A spam filter's verdict on the message, when one was logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterMark>,
}

impl MessageRecord {
    /// Where the recipient `q` looks for is among [`MessageRecord::recipients`] (through
    /// [`MessageRecord::recipient_index`] once they are many).
    pub fn recipient_position(&mut self, q: &AddrQuery<'_>) -> Option<usize> {
        self.recipient_index.position(&self.recipients, q)
    }

    /// True for the null envelope sender `<>` (bounces and other notifications).
    pub fn is_null_sender(&self) -> bool {
        self.sender.as_deref() == Some("")
    }
    /// Recipients whose outcome is a failure.
    pub fn failed(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.iter().filter(|r| r.outcome.is_failure())
    }
    /// Recipients delivered.
    pub fn delivered(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.iter().filter(|r| r.outcome.is_delivered())
    }
}

/// Most queue ids kept in flight before the oldest are closed early. Bounds memory when a log
/// never shows messages leaving the queue (partial logs, an attacker flooding a syslog port).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 2_000_000;
/// Most recipients kept per record (a message with more keeps counts only for the rest).
pub const MAX_RECIPIENTS: usize = 10_000;
/// Most SMTP sessions (host, pid) remembered for their HELO.
pub const MAX_SESSIONS: usize = 200_000;
/// Longest host name [`Correlator`] remembers as the last one looked up (a DNS name is at most
/// 253 bytes).
const LAST_HOST_MAX_BYTES: usize = 255;

/// Longest string kept from an attacker-controlled field (HELO, addresses, replies).
pub const MAX_FIELD: usize = 512;

/// Queue id as a fixed-size key (no allocation per lookup). Ids are ≤ 23 characters in every MTA
/// we read; longer ones are cut, which can only merge two messages in absurd input.
///
/// Hashed and compared as four 64-bit words ([`QKey::words`]; the same equality as the fields'):
/// derived, the 23 bytes were hashed as a byte string and compared with `memcmp`, about 60
/// instructions of every look-up of a message in flight, which the engine's thread makes for
/// most lines.
#[derive(Clone, Copy, Eq, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
struct QKey {
    host: u32,
    len: u8,
    id: [u8; QKEY_ID_BYTES],
}

/// Bytes of a queue id a [`QKey`] keeps.
const QKEY_ID_BYTES: usize = 23;
// `QKey::words` places the id's bytes at fixed offsets (3 + 8 + 8 + 4 after the first word's).
const _: () = assert!(
    QKEY_ID_BYTES == 3 + 8 + 8 + 4,
    "QKey::words packs 23 id bytes"
);

impl PartialEq for QKey {
    fn eq(&self, other: &QKey) -> bool {
        self.words() == other.words()
    }
}

impl std::hash::Hash for QKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d] = self.words();
        state.write_u128(u128::from(a) | u128::from(b) << 64);
        state.write_u128(u128::from(c) | u128::from(d) << 64);
    }
}

impl QKey {
    /// Every byte of the key in four words: the host number, the length and the id's first
    /// three bytes, then the id's next eight, eight and four.
    #[inline]
    fn words(&self) -> [u64; 4] {
        let id = &self.id;
        let word = |from: usize| {
            u64::from_le_bytes(
                id[from..from + 8]
                    .try_into()
                    .expect("eight bytes of the id"),
            )
        };
        [
            u64::from(self.host)
                | u64::from(self.len) << 32
                | u64::from(id[0]) << 40
                | u64::from(id[1]) << 48
                | u64::from(id[2]) << 56,
            word(3),
            word(11),
            u64::from(u32::from_le_bytes(
                id[19..23].try_into().expect("four bytes of the id"),
            )),
        ]
    }

    fn new(host: u32, qid: &str) -> QKey {
        let b = qid.as_bytes();
        let n = b.len().min(QKEY_ID_BYTES);
        let mut id = [0u8; QKEY_ID_BYTES];
        id[..n].copy_from_slice(&b[..n]);
        QKey {
            host,
            len: n as u8,
            id,
        }
    }
}

fn cap(s: &str) -> String {
    cap_str(s).to_string()
}

/// `s` cut to [`MAX_FIELD`] bytes at a character boundary, borrowed.
fn cap_str(s: &str) -> &str {
    cut_at_char(s, MAX_FIELD)
}

/// `s` cut to at most `n` bytes at a character boundary, borrowed.
pub(crate) fn cut_at_char(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut e = n;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    &s[..e]
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Session {
    ip: Option<IpAddr>,
    helo: Option<String>,
    last: Ts,
}

/// Counters of the correlator.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct CorrelatorStats {
    /// Records emitted.
    pub records: u64,
    /// Of which closed without leaving the queue in the log.
    pub incomplete: u64,
    /// Records closed early because [`DEFAULT_MAX_IN_FLIGHT`] was reached.
    pub evicted: u64,
    /// Most records in flight at once.
    pub peak_in_flight: u64,
    /// Spam-filter verdicts joined to their message.
    #[serde(default)]
    pub verdicts_linked: u64,
    /// Spam-filter verdicts that named no message in flight (another log host, a message
    /// already gone, no queue id and no Message-ID).
    #[serde(default)]
    pub verdicts_unlinked: u64,
}

/// Joins events into [`MessageRecord`]s.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Correlator {
    hosts: crate::hash::Map<String, u32>,
    /// The last host looked up in `hosts` and its number: a log's lines come mostly from one
    /// host, or a few in runs, and a comparison of a short name costs less than hashing it
    /// for every line. Numbers never change once given, so this only repeats the map. The
    /// name's buffer is reused (no allocation when hosts take turns); names over
    /// [`LAST_HOST_MAX_BYTES`] are not kept.
    #[serde(skip)]
    last_host: (String, Option<u32>),
    /// Messages in flight, each boxed: a record is 360 bytes, and a table of inline records
    /// costs that for every empty slot too, twice over while the table grows (issue 12).
    flight: crate::hash::Map<QKey, Box<MessageRecord>>,
    sessions: crate::hash::Map<(u32, u32), Session>,
    /// Message-ID (hashed with the log host) to the in-flight message that has it, for the
    /// verdicts that name no queue id. At most one entry per message in flight.
    #[serde(default)]
    mids: crate::hash::Map<u64, QKey>,
    max_in_flight: usize,
    out: Vec<MessageRecord>,
    stats: CorrelatorStats,
    now: Ts,
}

impl Default for Correlator {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_IN_FLIGHT)
    }
}

fn parse_ip(p: &Peer<'_>) -> Option<IpAddr> {
    let ip = p.ip?;
    crate::ip::parse_logged(ip)
}

/// The key of a Message-ID on a log host in the Message-ID index.
fn mid_key(hid: u32, mid: &str) -> u64 {
    crate::hash::mix(crate::hash::str_key(mid) ^ u64::from(hid).rotate_left(32))
}

fn useful_host(h: Option<&str>) -> Option<&str> {
    h.filter(|h| !h.is_empty() && *h != "unknown")
}

impl Correlator {
    /// A correlator that keeps at most `max_in_flight` messages open.
    pub fn new(max_in_flight: usize) -> Self {
        Correlator {
            hosts: Default::default(),
            last_host: (String::new(), None),
            flight: Default::default(),
            sessions: Default::default(),
            mids: Default::default(),
            max_in_flight: max_in_flight.max(16),
            out: Vec::new(),
            stats: CorrelatorStats::default(),
            now: Ts(i64::MIN),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &CorrelatorStats {
        &self.stats
    }

    /// Messages currently in flight.
    pub fn in_flight(&self) -> usize {
        self.flight.len()
    }

    /// Records completed since the last call.
    pub fn drain(&mut self) -> std::vec::Drain<'_, MessageRecord> {
        self.out.drain(..)
    }

    /// The records completed since the last call, appended to `buf` in order: what
    /// [`Correlator::drain`] yields, handed over by swapping vectors when `buf` is empty (the
    /// engine's, after every closing line), so that neither side allocates in steady state.
    pub fn take_closed_into(&mut self, buf: &mut Vec<MessageRecord>) {
        if buf.is_empty() {
            std::mem::swap(&mut self.out, buf);
        } else {
            buf.append(&mut self.out);
        }
    }

    /// Whether records completed since the last [`Correlator::drain`] wait to be taken.
    pub fn has_closed(&self) -> bool {
        !self.out.is_empty()
    }

    fn host_id(&mut self, host: &str) -> u32 {
        if let (last, Some(id)) = &self.last_host {
            if crate::bytes::same(last.as_bytes(), host.as_bytes()) {
                return *id;
            }
        }
        if let Some(&id) = self.hosts.get(host) {
            if host.len() <= LAST_HOST_MAX_BYTES {
                self.last_host.0.clear();
                self.last_host.0.push_str(host);
                self.last_host.1 = Some(id);
            }
            return id;
        }
        // Host names come from the log; cap how many we intern.
        if self.hosts.len() >= 65_536 {
            return u32::MAX;
        }
        let id = self.hosts.len() as u32;
        self.hosts.insert(cap(host), id);
        id
    }

    fn entry(
        &mut self,
        hid: u32,
        host: &str,
        qid: &str,
        ts: Ts,
        origin: Origin,
    ) -> &mut MessageRecord {
        let key = QKey::new(hid, qid);
        // One look-up for a message in flight (the common case); a new one only when full
        // checks first whether it is new, to make room.
        if self.flight.len() >= self.max_in_flight && !self.flight.contains_key(&key) {
            self.evict();
        }
        let before = self.flight.len() as u64;
        let rec = match self.flight.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                // The map only grows here, so its peak is its size after an insert.
                self.stats.peak_in_flight = self.stats.peak_in_flight.max(before + 1);
                v.insert(Box::new(MessageRecord {
                    host: cap(host),
                    qid: cap(qid),
                    accepted: ts,
                    finished: ts,
                    origin,
                    client_ip: None,
                    client_host: None,
                    helo: None,
                    auth_user: None,
                    local_user: None,
                    sender: None,
                    size: None,
                    nrcpt: None,
                    message_id: None,
                    recipients: Vec::new(),
                    recipient_index: Default::default(),
                    rejected: None,
                    held: false,
                    notices: 0,
                    complete: false,
                    filter: None,
                }))
            }
        };
        if ts > rec.finished {
            rec.finished = ts;
        }
        rec
    }

    fn evict(&mut self) {
        // Close the oldest half by last activity.
        let mut ts: Vec<Ts> = self.flight.values().map(|r| r.finished).collect();
        let mid = ts.len() / 2;
        ts.select_nth_unstable(mid);
        let cut = ts[mid];
        let n = self.close_where(|r| r.finished <= cut);
        self.stats.evicted += n;
    }

    /// Close (as incomplete) every message in flight for which `pick` is true, in a defined
    /// order — oldest accepted first, then by host and queue id — never the map's: which record
    /// the detectors see first can decide an alert and its time. Returns how many were closed.
    fn close_where(&mut self, pick: impl Fn(&MessageRecord) -> bool) -> u64 {
        let mut keys: Vec<(Ts, QKey)> = self
            .flight
            .iter()
            .filter(|(_, r)| pick(r))
            .map(|(k, r)| (r.accepted, *k))
            .collect();
        keys.sort_unstable();
        let n = keys.len() as u64;
        for (_, k) in keys {
            if let Some(r) = self.flight.remove(&k) {
                self.close(r, false);
            }
        }
        n
    }

    fn close(&mut self, mut r: Box<MessageRecord>, complete: bool) {
        if let (Some(m), Some(&hid)) = (&r.message_id, self.hosts.get(&r.host)) {
            let k = mid_key(hid, m);
            if self.mids.get(&k) == Some(&QKey::new(hid, &r.qid)) {
                self.mids.remove(&k);
            }
        }
        r.complete = complete;
        self.stats.records += 1;
        if !complete {
            self.stats.incomplete += 1;
        }
        self.out.push(*r);
    }

    fn remove(&mut self, hid: u32, qid: &str, ts: Ts) {
        if let Some(mut r) = self.flight.remove(&QKey::new(hid, qid)) {
            r.finished = r.finished.max(ts);
            self.close(r, true);
        }
    }

    /// Feed one event. `host` and `pid` are from the line's header, `ts` its time.
    pub fn feed(&mut self, ts: Ts, host: &str, pid: Option<u32>, ev: &Event<'_>) {
        if ts > self.now {
            self.now = ts;
        }
        let hid = self.host_id(host);
        match ev {
            Event::Connect { client } => {
                if let Some(pid) = pid {
                    self.session(hid, pid, ts, parse_ip(client), None, true);
                }
            }
            Event::Helo { client, helo } => {
                if let Some(pid) = pid {
                    self.session(hid, pid, ts, parse_ip(client), Some(helo), false);
                }
            }
            Event::Check {
                qid,
                action,
                stage,
                client,
                helo,
                from,
                to,
                ..
            } => {
                let ip = client.as_ref().and_then(parse_ip);
                if let (Some(pid), Some(h)) = (pid, helo) {
                    self.session(hid, pid, ts, ip, Some(h), false);
                }
                if let Some(qid) = qid {
                    let r = self.entry(hid, host, qid, ts, Origin::Unknown);
                    if r.helo.is_none() {
                        if let Some(h) = helo {
                            r.helo = Some(cap(h));
                        }
                    }
                    if r.sender.is_none() {
                        if let Some(f) = from {
                            r.sender = Some(cap(f));
                        }
                    }
                    let reason = match ev {
                        Event::Check { reason, .. } => *reason,
                        _ => "",
                    };
                    match action {
                        Action::Reject | Action::Discard => r.rejected = Some(cap(reason)),
                        Action::Hold => r.held = true,
                        _ => {}
                    }
                    if matches!(action, Action::Reject | Action::Discard)
                        && crate::filter::is_content_stage(*stage)
                        && crate::filter::is_spam_reason(reason)
                    {
                        mark_filter(
                            r,
                            FilterMark {
                                filter: Filter::Refusal,
                                verdict: Verdict::Spam,
                                score: None,
                            },
                        );
                        if r.client_ip.is_none() {
                            r.client_ip = ip;
                        }
                        if let Some(to) = to.filter(|t| {
                            let q = AddrQuery::new(t);
                            r.recipient_position(&q).is_none()
                        }) {
                            if r.recipients.len() < MAX_RECIPIENTS {
                                r.recipients.push(Recipient::attempted(
                                    cap_str(to),
                                    None,
                                    [None, None, None, Some(cap_str(reason))],
                                    Outcome::Rejected,
                                    ts,
                                ));
                            }
                        }
                    }
                }
            }
            Event::Client {
                qid,
                client,
                sasl_username,
                uid,
                from,
                orig_qid,
                ..
            } => {
                let ip = parse_ip(client);
                let sess_helo = pid.and_then(|p| {
                    self.sessions
                        .get(&(hid, p))
                        .filter(|s| s.ip.is_none() || s.ip == ip)
                        .and_then(|s| s.helo.clone())
                });
                let origin = match (uid, orig_qid) {
                    (_, Some(o)) => Origin::Filter(cap(o)),
                    (Some(_), _) => Origin::Local,
                    _ if ip.is_none() && client.host.is_none() => Origin::Local,
                    _ => Origin::Smtp,
                };
                let r = self.entry(hid, host, qid, ts, origin.clone());
                if r.origin == Origin::Unknown {
                    r.origin = origin;
                }
                r.accepted = r.accepted.min(ts);
                if ip.is_some() {
                    r.client_ip = ip;
                }
                if let Some(h) = useful_host(client.host) {
                    r.client_host = Some(cap(h));
                }
                if let Some(u) = sasl_username {
                    r.auth_user = Some(cap(u));
                }
                if let Some(u) = uid {
                    r.local_user = Some(u.to_string());
                }
                if let Some(f) = from {
                    r.sender = Some(cap(f));
                }
                if r.helo.is_none() {
                    r.helo = sess_helo;
                }
            }
            Event::MessageId { qid, message_id } => {
                let r = self.entry(hid, host, qid, ts, Origin::Unknown);
                r.message_id = Some(cap(message_id));
                self.index_mid(hid, qid, message_id);
            }
            Event::FilterVerdict {
                filter,
                verdict,
                score,
                qid,
                message_id,
                ..
            } => {
                let mark = FilterMark {
                    filter: *filter,
                    verdict: *verdict,
                    score: *score,
                };
                let by_qid = qid
                    .map(|q| QKey::new(hid, q))
                    .filter(|k| self.flight.contains_key(k));
                let key = by_qid.or_else(|| {
                    let m = (*message_id)?;
                    let k = *self.mids.get(&mid_key(hid, m))?;
                    let r = self.flight.get(&k)?;
                    (r.message_id.as_deref() == Some(cap(m).as_str())).then_some(k)
                });
                match key.and_then(|k| self.flight.get_mut(&k)) {
                    Some(r) => {
                        mark_filter(r, mark);
                        self.stats.verdicts_linked += 1;
                    }
                    None => self.stats.verdicts_unlinked += 1,
                }
            }
            Event::Queued {
                qid,
                from,
                size,
                nrcpt,
                client,
                helo,
                auth_user,
                local_user,
                proto,
                message_id,
                parent,
            } => {
                let origin = if let Some(p) = parent {
                    Origin::Notice(cap(p))
                } else if client.as_ref().is_some_and(|c| c.ip.is_some()) {
                    Origin::Smtp
                } else if local_user.is_some() || proto.is_some_and(|p| p == "local") {
                    Origin::Local
                } else {
                    Origin::Unknown
                };
                let r = self.entry(hid, host, qid, ts, origin.clone());
                if r.origin == Origin::Unknown {
                    r.origin = origin;
                }
                r.sender = Some(cap(from));
                if size.is_some() {
                    r.size = *size;
                }
                if nrcpt.is_some() {
                    r.nrcpt = *nrcpt;
                }
                if let Some(c) = client {
                    if let Some(ip) = parse_ip(c) {
                        r.client_ip = Some(ip);
                    }
                    if let Some(h) = useful_host(c.host) {
                        r.client_host = Some(cap(h));
                    }
                }
                if let Some(h) = helo {
                    r.helo = Some(cap(h));
                }
                if let Some(u) = auth_user {
                    r.auth_user = Some(cap(u));
                }
                if let Some(u) = local_user {
                    r.local_user = Some(cap(u));
                }
                if let Some(m) = message_id {
                    r.message_id = Some(cap(m));
                    self.index_mid(hid, qid, m);
                }
            }
            Event::Delivery {
                qid,
                to,
                orig_to,
                relay,
                transport,
                dsn,
                status,
                reply,
                ..
            } => {
                let queued_as = if *status == DeliveryStatus::Sent {
                    reply
                        .and_then(queued_as)
                        .filter(|_| relay.is_some_and(is_loopback_relay))
                } else {
                    None
                };
                let r = self.entry(hid, host, qid, ts, Origin::Unknown);
                let attempt = [
                    dsn.map(cap_str),
                    relay.map(cap_str),
                    transport.map(cap_str),
                    reply.map(cap_str),
                ];
                let q = AddrQuery::new(to);
                let idx = r.recipient_position(&q);
                let rc = match idx {
                    Some(i) => {
                        // Each attempt's details replace the last one's (and a retry that logs
                        // the same texts again changes nothing: see `Recipient::set_attempt`).
                        let rc = &mut r.recipients[i];
                        rc.set_attempt(attempt);
                        rc
                    }
                    None => {
                        if r.recipients.len() >= MAX_RECIPIENTS {
                            return;
                        }
                        r.recipients.push(Recipient::attempted(
                            cap_str(to),
                            orig_to.map(cap_str),
                            attempt,
                            Outcome::Deferred,
                            ts,
                        ));
                        r.recipients.last_mut().expect("pushed above")
                    }
                };
                rc.ts = ts;
                rc.outcome = match status {
                    DeliveryStatus::Sent | DeliveryStatus::Deliverable => {
                        if queued_as.is_some() {
                            Outcome::Filtered
                        } else if rc.deferrals > 0 {
                            Outcome::DeferredThenDelivered
                        } else {
                            Outcome::Delivered
                        }
                    }
                    DeliveryStatus::Deferred => {
                        rc.deferrals += 1;
                        Outcome::Deferred
                    }
                    DeliveryStatus::Bounced | DeliveryStatus::Undeliverable => Outcome::Bounced,
                    DeliveryStatus::Expired => Outcome::Expired,
                    DeliveryStatus::Discarded => Outcome::Discarded,
                };
                if let Some(child) = queued_as {
                    let parent_mark = r.filter;
                    let (ip, chost, helo, user, luser, sender) = (
                        r.client_ip,
                        r.client_host.clone(),
                        r.helo.clone(),
                        r.auth_user.clone(),
                        r.local_user.clone(),
                        r.sender.clone(),
                    );
                    let parent = r.qid.clone();
                    let c = self.entry(hid, host, child, ts, Origin::Filter(parent.clone()));
                    c.origin = Origin::Filter(parent);
                    c.accepted = c.accepted.min(ts);
                    if c.client_ip.is_none_or(|i| i.is_loopback()) {
                        c.client_ip = ip;
                        c.client_host = chost;
                    }
                    if c.helo.is_none() || c.helo.as_deref() == Some("localhost") {
                        c.helo = helo;
                    }
                    if c.auth_user.is_none() {
                        c.auth_user = user;
                    }
                    if c.local_user.is_none() {
                        c.local_user = luser;
                    }
                    if c.sender.is_none() {
                        c.sender = sender;
                    }
                    if let Some(m) = parent_mark {
                        mark_filter(c, m);
                    }
                }
            }
            Event::Expired { qid, .. } => {
                let r = self.entry(hid, host, qid, ts, Origin::Unknown);
                for rc in &mut r.recipients {
                    if rc.outcome == Outcome::Deferred {
                        rc.outcome = Outcome::Expired;
                    }
                }
            }
            Event::Notice {
                qid,
                kind,
                notice_qid,
            } => {
                let r = self.entry(hid, host, qid, ts, Origin::Unknown);
                r.notices += 1;
                let _ = kind == &NoticeKind::Delay;
                let parent = r.qid.clone();
                let n = self.entry(hid, host, notice_qid, ts, Origin::Notice(parent.clone()));
                n.origin = Origin::Notice(parent);
            }
            Event::Removed { qid } => self.remove(hid, qid, ts),
            Event::Disconnect { .. } => {
                if let Some(pid) = pid {
                    self.sessions.remove(&(hid, pid));
                }
            }
            Event::AuthSuccess { .. }
            | Event::AuthFailure { .. }
            | Event::Policy { .. }
            | Event::Info { .. } => {}
        }
    }

    fn session(
        &mut self,
        hid: u32,
        pid: u32,
        ts: Ts,
        ip: Option<IpAddr>,
        helo: Option<&str>,
        reset: bool,
    ) {
        if self.sessions.len() >= MAX_SESSIONS && !self.sessions.contains_key(&(hid, pid)) {
            let cut = self.now.plus_secs(-3600);
            self.sessions.retain(|_, s| s.last > cut);
            if self.sessions.len() >= MAX_SESSIONS {
                self.sessions.clear();
            }
        }
        let s = self.sessions.entry((hid, pid)).or_default();
        if reset || (ip.is_some() && s.ip.is_some() && s.ip != ip) {
            *s = Session::default();
        }
        if ip.is_some() {
            s.ip = ip;
        }
        if let Some(h) = helo {
            // Every check line of a session names its HELO again: the session's own text is
            // rewritten in place, not allocated anew.
            let h = cap_str(h);
            match &mut s.helo {
                Some(kept) => {
                    kept.clear();
                    kept.push_str(h);
                }
                None => s.helo = Some(h.to_string()),
            }
        }
        s.last = ts;
    }

    /// Remember which in-flight message has a Message-ID (the last one to log it wins: a
    /// re-injected copy after its parent).
    fn index_mid(&mut self, hid: u32, qid: &str, mid: &str) {
        if self.mids.len() >= self.max_in_flight {
            // Entries of messages closed under another host name (cut ones) would stay: drop
            // every entry whose message is gone.
            let flight = &self.flight;
            self.mids.retain(|_, k| flight.contains_key(k));
        }
        self.mids.insert(mid_key(hid, mid), QKey::new(hid, qid));
    }

    /// The message `qid` of `host` while it is in flight (not yet completed).
    pub fn in_flight_record(&self, host: &str, qid: &str) -> Option<&MessageRecord> {
        let hid = self.hosts.get(host)?;
        self.flight.get(&QKey::new(*hid, qid)).map(|r| &**r)
    }

    /// A HELO learned outside the log for the in-flight message `qid` of `host` (the Postfix
    /// policy request of its SMTP session: Postfix logs no HELO for mail it accepts). The
    /// message takes it only when the log gave it none. True when it took it.
    pub fn hint_helo(&mut self, host: &str, qid: &str, helo: &str) -> bool {
        let Some(&hid) = self.hosts.get(host) else {
            return false;
        };
        match self.flight.get_mut(&QKey::new(hid, qid)) {
            Some(r) if r.helo.is_none() => {
                r.helo = Some(cap(helo));
                true
            }
            _ => false,
        }
    }

    /// Close messages with no activity for `idle_secs` of event time (the real-time service calls
    /// this periodically; messages in the deferred queue live for days, so use a long time-out).
    pub fn flush_idle(&mut self, idle_secs: i64) {
        let cut = self.now.plus_secs(-idle_secs);
        self.close_where(|r| r.finished < cut);
    }

    /// Close every message still in flight (end of batch input), oldest first.
    pub fn finish(&mut self) {
        self.close_where(|_| true);
    }
}

/// Attach a verdict to a record unless it already has a graver one.
fn mark_filter(r: &mut MessageRecord, m: FilterMark) {
    if r.filter
        .is_none_or(|old| severity(m.verdict) >= severity(old.verdict))
    {
        r.filter = Some(m);
    }
}

/// `250 2.0.0 Ok: queued as 4Nw1sP3J0kz9vFJ` -> the new queue id.
pub fn queued_as(reply: &str) -> Option<&str> {
    // Not `str::find`: it builds a two-way searcher per call (1% of `analyze`'s instructions
    // for a delivery line's reply).
    let i = crate::bytes::find(reply, "queued as ")?;
    let id = reply[i + 10..].split([' ', ')', ';', ',']).next()?;
    if id.is_empty() || id.len() > 23 || !id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    {
        None
    } else {
        Some(id)
    }
}

/// Relay text pointing at this machine (a content filter such as amavisd on 127.0.0.1:10024).
fn is_loopback_relay(relay: &str) -> bool {
    let ip = crate::event::peer_brackets(relay)
        .and_then(|p| p.ip)
        .unwrap_or(relay);
    ip.starts_with("127.") || ip == "::1" || relay.starts_with("localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_delivery_is_named_by_the_transport() {
        for t in [
            "smtp",
            "relay",
            "local",
            "virtual",
            "lmtp",
            "dovecot",
            "maildrop",
            "smtp-amavis",
            "dovecot-lda",
            "my-lmtp",
            "virtualuser",
            "nonlocal",
            "error",
            "retry",
            "pipe",
            "",
            "SMTP",
            "smtps",
        ] {
            let r = Recipient::new("a@b.example", None, Outcome::Delivered, Ts(0)).with_attempt([
                None,
                None,
                Some(t),
                None,
            ]);
            let expected = t == "maildrop"
                || ["local", "lmtp", "dovecot", "virtual"]
                    .iter()
                    .any(|w| t.contains(w));
            assert_eq!(r.is_local_delivery(), expected, "{t:?}");
        }
        let none = Recipient::new("a@b.example", None, Outcome::Delivered, Ts(0));
        assert!(!none.is_local_delivery());
    }

    /// A queue key's words hold every byte of it: keys that differ in any one byte (host
    /// number, length, each byte of the id) are different and, here, hash differently; equal
    /// keys hash alike.
    #[test]
    fn queue_keys_are_equal_only_in_every_byte() {
        use std::hash::BuildHasher;
        let hash = |k: &QKey| crate::hash::State::default().hash_one(k);
        let base = QKey::new(7, "4Tq9Xb2mZkz3Jr8Yp1Wc5Vd");
        assert_eq!(base.len as usize, QKEY_ID_BYTES);
        let same = QKey::new(7, "4Tq9Xb2mZkz3Jr8Yp1Wc5Vd");
        assert!(base == same && hash(&base) == hash(&same));
        let mut variants = vec![QKey { host: 8, ..base }, QKey { len: 22, ..base }];
        for i in 0..QKEY_ID_BYTES {
            let mut k = base;
            k.id[i] ^= 1;
            variants.push(k);
        }
        for k in &variants {
            assert!(*k != base, "{k:?}");
            assert_ne!(hash(k), hash(&base), "{k:?}");
            assert_eq!(*k == base, k.cmp(&base) == std::cmp::Ordering::Equal);
        }
        // Ids longer than a key holds are cut; shorter ones are padded with zeros.
        assert!(
            QKey::new(1, "4Tq9Xb2mZkz3Jr8Yp1Wc5VdEXTRA") == QKey::new(1, "4Tq9Xb2mZkz3Jr8Yp1Wc5Vd")
        );
        assert!(QKey::new(1, "ABC") != QKey::new(1, "ABC\0"));
    }
    use crate::event::{Event, Peer};

    fn t(s: i64) -> Ts {
        Ts::from_secs(1_700_000_000 + s)
    }
    fn peer<'a>(host: &'a str, ip: &'a str) -> Peer<'a> {
        Peer {
            host: Some(host),
            ip: Some(ip),
            port: None,
        }
    }
    fn delivery<'a>(
        qid: &'a str,
        to: &'a str,
        status: DeliveryStatus,
        reply: &'a str,
    ) -> Event<'a> {
        Event::Delivery {
            qid,
            to,
            orig_to: None,
            relay: Some("mx.example.net[192.0.2.5]:25"),
            transport: Some("smtp"),
            delay: None,
            delays: None,
            dsn: Some("5.1.1"),
            status,
            reply: Some(reply),
        }
    }
    fn queued(qid: &str, from: &str) -> Event<'static> {
        let qid: &'static str = Box::leak(qid.to_string().into_boxed_str());
        let from: &'static str = Box::leak(from.to_string().into_boxed_str());
        Event::Queued {
            qid,
            from,
            size: Some(1234),
            nrcpt: Some(2),
            client: None,
            helo: None,
            auth_user: None,
            local_user: None,
            proto: None,
            message_id: None,
            parent: None,
        }
    }

    #[test]
    fn joins_a_postfix_message() {
        let mut c = Correlator::default();
        c.feed(
            t(0),
            "mx",
            Some(10),
            &Event::Connect {
                client: peer("a.example", "198.51.100.7"),
            },
        );
        c.feed(
            t(1),
            "mx",
            Some(10),
            &Event::Check {
                qid: None,
                action: Action::Reject,
                stage: Some("RCPT"),
                client: Some(peer("a.example", "198.51.100.7")),
                reason: "550 5.1.1 unknown",
                from: Some("u@example.org"),
                to: Some("x@here"),
                proto: Some("ESMTP"),
                helo: Some("pc17"),
            },
        );
        c.feed(
            t(2),
            "mx",
            Some(10),
            &Event::Client {
                qid: "ABC123",
                client: peer("a.example", "198.51.100.7"),
                sasl_method: Some("PLAIN"),
                sasl_username: Some("u@example.org"),
                uid: None,
                from: None,
                orig_qid: None,
            },
        );
        c.feed(t(3), "mx", Some(11), &queued("ABC123", "u@example.org"));
        c.feed(
            t(4),
            "mx",
            Some(12),
            &delivery(
                "ABC123",
                "a@far.example",
                DeliveryStatus::Deferred,
                "451 later",
            ),
        );
        c.feed(
            t(5),
            "mx",
            Some(12),
            &delivery("ABC123", "b@far.example", DeliveryStatus::Bounced, "550 no"),
        );
        c.feed(
            t(9),
            "mx",
            Some(12),
            &delivery("ABC123", "a@far.example", DeliveryStatus::Sent, "250 ok"),
        );
        assert_eq!(c.drain().count(), 0);
        c.feed(t(10), "mx", Some(11), &Event::Removed { qid: "ABC123" });
        let recs: Vec<_> = c.drain().collect();
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.auth_user.as_deref(), Some("u@example.org"));
        assert_eq!(r.helo.as_deref(), Some("pc17"));
        assert_eq!(r.client_ip, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(r.size, Some(1234));
        assert_eq!(r.recipients[0].outcome, Outcome::DeferredThenDelivered);
        assert_eq!(r.recipients[1].outcome, Outcome::Bounced);
        assert!(r.complete);
        assert_eq!(r.accepted, t(2));
        assert_eq!(r.finished, t(10));
    }

    /// [`Correlator::take_closed_into`] hands over the closed records in order, into an empty
    /// vector or after what a vector holds, and leaves none behind.
    #[test]
    fn closed_records_are_taken_in_order_into_a_vector() {
        let mut c = Correlator::default();
        let close = |c: &mut Correlator, qid: &str, at: i64| {
            c.feed(t(at), "h", None, &queued(qid, "s@x"));
            c.feed(
                t(at),
                "h",
                None,
                &delivery(qid, "a@far.example", DeliveryStatus::Sent, "250 ok"),
            );
            c.feed(t(at), "h", None, &Event::Removed { qid });
        };
        let qids = |v: &[MessageRecord]| v.iter().map(|r| r.qid.clone()).collect::<Vec<_>>();
        let mut buf = Vec::new();
        c.take_closed_into(&mut buf);
        assert!(buf.is_empty());
        close(&mut c, "Q1", 1);
        close(&mut c, "Q2", 2);
        c.take_closed_into(&mut buf);
        assert_eq!(qids(&buf), ["Q1", "Q2"]);
        assert!(!c.has_closed());
        close(&mut c, "Q3", 3);
        c.take_closed_into(&mut buf);
        assert_eq!(qids(&buf), ["Q1", "Q2", "Q3"]);
        assert!(!c.has_closed() && c.drain().count() == 0);
    }

    #[test]
    fn expiry_marks_deferred_recipients() {
        let mut c = Correlator::default();
        c.feed(t(0), "h", None, &queued("Q1", "s@x"));
        c.feed(
            t(1),
            "h",
            None,
            &delivery(
                "Q1",
                "a@dead.example",
                DeliveryStatus::Deferred,
                "connect timed out",
            ),
        );
        c.feed(
            t(2),
            "h",
            None,
            &Event::Expired {
                qid: "Q1",
                from: "s@x",
            },
        );
        c.feed(t(3), "h", None, &Event::Removed { qid: "Q1" });
        let r = c.drain().next().unwrap();
        assert_eq!(r.recipients[0].outcome, Outcome::Expired);
    }

    #[test]
    fn bounce_notice_is_linked() {
        let mut c = Correlator::default();
        c.feed(t(0), "h", None, &queued("P1", "s@x"));
        c.feed(
            t(1),
            "h",
            None,
            &Event::Notice {
                qid: "P1",
                kind: NoticeKind::NonDelivery,
                notice_qid: "N1",
            },
        );
        c.feed(t(1), "h", None, &queued("N1", ""));
        c.feed(t(2), "h", None, &Event::Removed { qid: "N1" });
        let r = c.drain().next().unwrap();
        assert_eq!(r.origin, Origin::Notice("P1".into()));
        assert!(r.is_null_sender());
    }

    #[test]
    fn content_filter_passes_submitter_on() {
        let mut c = Correlator::default();
        c.feed(
            t(0),
            "h",
            Some(1),
            &Event::Client {
                qid: "PRE",
                client: peer("dsl-1.isp.example", "203.0.113.9"),
                sasl_method: Some("LOGIN"),
                sasl_username: Some("bob"),
                uid: None,
                from: None,
                orig_qid: None,
            },
        );
        c.feed(t(1), "h", Some(2), &queued("PRE", "bob@isp.example"));
        c.feed(
            t(2),
            "h",
            Some(3),
            &Event::Client {
                qid: "POST",
                client: peer("localhost", "127.0.0.1"),
                sasl_method: None,
                sasl_username: None,
                uid: None,
                from: None,
                orig_qid: None,
            },
        );
        c.feed(
            t(3),
            "h",
            Some(4),
            &Event::Delivery {
                qid: "PRE",
                to: "x@far.example",
                orig_to: None,
                relay: Some("127.0.0.1[127.0.0.1]:10024"),
                transport: Some("smtp"),
                delay: None,
                delays: None,
                dsn: Some("2.0.0"),
                status: DeliveryStatus::Sent,
                reply: Some(
                    "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as POST",
                ),
            },
        );
        c.feed(t(4), "h", Some(2), &Event::Removed { qid: "PRE" });
        c.feed(
            t(5),
            "h",
            Some(4),
            &delivery("POST", "x@far.example", DeliveryStatus::Bounced, "550 no"),
        );
        c.feed(t(6), "h", Some(2), &Event::Removed { qid: "POST" });
        let recs: Vec<_> = c.drain().collect();
        assert_eq!(recs[0].recipients[0].outcome, Outcome::Filtered);
        assert_eq!(recs[1].auth_user.as_deref(), Some("bob"));
        assert_eq!(recs[1].client_ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(recs[1].origin, Origin::Filter("PRE".into()));
    }

    /// Issue 10.1: records closed by the idle sweep and by eviction come out oldest first
    /// (then by queue id), not in the map's order, so every run feeds the detectors alike.
    #[test]
    fn idle_and_evicted_records_close_in_time_order() {
        let order = |c: &mut Correlator| -> Vec<(i64, String)> {
            c.drain().map(|r| (r.accepted.secs(), r.qid)).collect()
        };
        let mut c = Correlator::new(10_000);
        // Accepted out of queue-id order, several per second.
        for i in 0..500i64 {
            let qid = format!("Q{:04}", (i * 7919) % 500);
            c.feed(t(i / 3), "h", None, &queued(&qid, "s@x"));
        }
        c.feed(t(100_000), "h", None, &queued("LATE", "s@x"));
        c.flush_idle(3600);
        let got = order(&mut c);
        assert_eq!(got.len(), 500);
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want);

        let mut c = Correlator::new(64);
        for i in 0..1000i64 {
            let qid = format!("Q{:04}", (i * 7919) % 1000);
            c.feed(t(i / 5), "h", None, &queued(&qid, "s@x"));
        }
        let got = order(&mut c);
        assert!(got.len() >= 900);
        for w in got.windows(2) {
            // Each eviction closes a batch in order; batches follow each other in time.
            assert!(w[0] <= w[1], "{w:?}");
        }
    }

    /// Each log host's lines join its own messages, whether its lines come in runs or take
    /// turns with another host's line by line (the last host looked up is remembered), and
    /// a host name too long to remember is still one host.
    #[test]
    fn hosts_taking_turns_keep_their_messages_apart() {
        let long = "h".repeat(LAST_HOST_MAX_BYTES + 1);
        for hosts in [["a", "b"], ["a", "a.example"], ["a", long.as_str()]] {
            let mut c = Correlator::new(10_000);
            let mut want = Vec::new();
            for (n, host) in hosts.iter().enumerate() {
                let qid = format!("Q{n}");
                want.push((host.to_string(), qid.clone()));
                c.feed(t(0), host, None, &queued(&qid, "s@x"));
            }
            for round in 0..3 {
                for (n, host) in hosts.iter().enumerate() {
                    c.feed(t(round), host, None, &queued(&format!("Q{n}"), "s@x"));
                }
                for host in hosts.iter().rev() {
                    c.feed(t(round), host, None, &queued("Q0", "s@x"));
                    c.feed(t(round), host, None, &queued("Q0", "s@x"));
                }
            }
            c.finish();
            let mut got: Vec<(String, String)> = c.drain().map(|r| (r.host, r.qid)).collect();
            got.sort();
            want.push((hosts[1].to_string(), "Q0".to_string()));
            want.sort();
            assert_eq!(got, want, "{hosts:?}");
        }
    }

    #[test]
    fn bounded_in_flight() {
        let mut c = Correlator::new(100);
        for i in 0..1000 {
            c.feed(t(i), "h", None, &queued(&format!("Q{i}"), "s@x"));
        }
        assert!(c.in_flight() <= 100);
        assert!(c.stats().evicted >= 900);
        c.finish();
        assert_eq!(c.drain().count(), 1000);
    }

    #[test]
    fn forwarded_recipients() {
        let rc = |addr: &str, orig: Option<&str>| {
            Recipient::new(addr, orig, Outcome::Bounced, Ts::from_secs(0))
        };
        // .forward / virtual alias of one of our users to an external mailbox.
        assert!(rc("kim.w@gmail.example", Some("kim@isp.example")).is_forwarded());
        // Local alias named by its bare local part.
        assert!(rc("kim.w@gmail.example", Some("postmaster")).is_forwarded());
        // Not rewritten, or rewritten within the same domain (canonical maps, case).
        assert!(!rc("a@b.example", None).is_forwarded());
        assert!(!rc("a@b.example", Some("A@B.example")).is_forwarded());
        assert!(!rc("a.b@b.example", Some("ab@b.example")).is_forwarded());
    }

    #[test]
    fn queued_as_parsing() {
        assert_eq!(
            queued_as("250 2.0.0 Ok: queued as 4Nw1sP3J0kz9vFJ"),
            Some("4Nw1sP3J0kz9vFJ")
        );
        assert_eq!(queued_as("250 2.0.0 Ok: queued as ABC)"), Some("ABC"));
        assert_eq!(queued_as("250 ok"), None);
    }
}
