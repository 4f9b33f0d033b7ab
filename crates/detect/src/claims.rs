//! One message, counted once, whichever sources saw it.
//!
//! An authenticated submission can reach the engine twice: as a policy request (Postfix asks at
//! `RCPT`, before it writes the `client=…, sasl_username=…` log line) and as that log line. The
//! log is the **preferred source**: it sees every submission port and every MTA, and it alone
//! knows the recipients' outcomes. A policy request therefore only *claims* its message: the
//! claim waits up to [`POLICY_LINK_SECS`] (policy clock) for the log to show a submission of the
//! same account from the same address; the log's submission takes the claim and is counted
//! instead. A claim no log line took (a policy-only deployment, or an MTA whose log we do not
//! read) is then counted on its own, at its own time. So adding a policy source adds events, it
//! never switches another source off, and a message both sources saw counts once.
//!
//! Postfix logs no HELO for mail it accepts (only its reject lines carry `helo=<…>`), but every
//! policy request carries `helo_name`, with the transaction's `sender` and `instance`. The HELO
//! of each SMTP transaction is therefore kept here ([`SessionHelos`]) for [`POLICY_LINK_SECS`]:
//! when the log's `from=` line of a message from the same address (and the same SASL name, or
//! none) arrives within that time, the message takes the HELO of the oldest transaction of that
//! session with the same sender, if the log gave it none; so helo-anomaly and incoming-helo see
//! accepted mail's HELO in a Postfix deployment, each message its own transaction's even when
//! the log lags several sessions behind the requests.
//!
//! The policy clock (request arrival and the service's ticks) is kept apart from the log clock:
//! a policy request never moves the log's event time, so the correlator's idle policy and every
//! log-fed window stay a function of the log alone.

use std::collections::VecDeque;

use crate::arrivals::{Arrivals, LazyIndex};
use std::net::IpAddr;

use maillog::Ts;
use serde::{Deserialize, Serialize};

/// How long a policy request's message waits for its log line (seconds of policy clock). Postfix
/// logs `client=…, sasl_username=…` as soon as the first recipient passes the restrictions that
/// asked us, so the line follows the request within the log's delivery delay (syslog and the
/// follower's poll, a few seconds); a minute leaves ample room. Our own idea.
pub const POLICY_LINK_SECS: i64 = 60;
/// Most claims waiting at once, counting as waiting the claims the log took after the oldest
/// one still waiting (their slots are held until it goes, [`crate::arrivals::Arrivals::span`]);
/// beyond, the oldest is counted at once (nothing is dropped). A busy ISP submits a few
/// hundred messages a minute; our own idea.
pub const MAX_PENDING_CLAIMS: usize = 100_000;
/// Recipients kept per claim (one per `RCPT` request); more are counted but not kept.
pub const MAX_CLAIM_RCPTS: usize = 1000;
/// SMTP transactions whose policy-request HELO is remembered at once (counting the slots of
/// those a session's cap dropped after the oldest, [`crate::arrivals::Arrivals::span`]); beyond,
/// the oldest is dropped (counted in [`ClaimStats::helo_dropped`]). A request is untrusted input; a busy ISP
/// sees a few thousand transactions a minute, the time one is kept ([`POLICY_LINK_SECS`]). Our
/// own idea.
pub const MAX_SESSION_HELOS: usize = 65_536;
/// Transactions remembered per client session (address and SASL name); beyond, the session's
/// oldest is dropped (counted in [`ClaimStats::helo_dropped`]). The log follows a request within
/// seconds, so only transactions that queued no message (refused outright) linger, until
/// [`POLICY_LINK_SECS`]; this keeps a host flooding refused transactions from making each of its
/// messages' look-up long. Our own idea.
pub const MAX_TRANSACTIONS_PER_SESSION: usize = 256;
/// Longest envelope sender kept from a policy request (bytes; longer ones are cut, and so is the
/// log's when they are compared): a reverse-path is at most 256 octets (RFC 5321, 4.5.3.1.3).
pub const MAX_SENDER_LEN: usize = 256;
/// Longest HELO kept from a policy request (bytes; longer ones are cut): a domain name is at
/// most 255 octets (RFC 1035, 2.3.4), an address literal shorter.
pub const MAX_HELO_LEN: usize = 255;

/// A message announced by policy requests, not yet seen in the log. Its account, `instance`
/// and recipients are one string, and its key in [`PolicyClaims`]' queues is computed once:
/// the policy server makes one claim per transaction and retires one (one allocation where a
/// `String` per field and a `Vec` of recipients made four; `examples/policy_engine.rs`). A
/// snapshot holds it as a [`ClaimForm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ClaimForm", into = "ClaimForm")]
pub struct Claim {
    /// Arrival of its first `RCPT` request (policy clock).
    pub ts: Ts,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// [`claim_key`] of the account and the address.
    key: u64,
    /// Its key in [`PolicyClaims::by_instance`] ([`maillog::hash::str_key`] of the
    /// `instance`), when it has one.
    instance_key: Option<u64>,
    /// The SASL login name as the request gave it, the `instance`, then the recipients
    /// requested, each ended by a newline (a policy request's value never holds one: it ends
    /// its line); at most [`MAX_CLAIM_RCPTS`] of them.
    text: String,
    /// Where the `instance` and the recipients begin in `text`.
    instance_at: usize,
    rcpts_at: usize,
    /// How many recipients `text` holds.
    rcpt_count: usize,
}

/// A [`Claim`] as a snapshot holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ClaimForm {
    /// Arrival of its first `RCPT` request (policy clock).
    ts: Ts,
    /// SASL login name as the request gave it.
    account: String,
    /// Client address.
    ip: Option<IpAddr>,
    /// Postfix's `instance` (one per SMTP transaction); empty when absent.
    instance: String,
    /// Recipients requested (at most [`MAX_CLAIM_RCPTS`]).
    rcpts: Vec<String>,
}

impl Claim {
    /// A claim of `account` from `ip`, transaction `instance` (`""` when the client sent none)
    /// whose [`maillog::hash::str_key`] is `instance_key`, made at `ts` by a request for `rcpt`,
    /// if it named one.
    fn new(
        ts: Ts,
        account: &str,
        ip: Option<IpAddr>,
        (instance, instance_key): (&str, u64),
        rcpt: Option<&str>,
    ) -> Claim {
        let rcpt_len = rcpt.map_or(0, |r| r.len() + 1);
        let mut text = String::with_capacity(account.len() + instance.len() + rcpt_len);
        text.push_str(account);
        text.push_str(instance);
        let mut c = Claim {
            ts,
            ip,
            key: claim_key(account, ip),
            instance_key: (!instance.is_empty()).then_some(instance_key),
            instance_at: account.len(),
            rcpts_at: text.len(),
            text,
            rcpt_count: 0,
        };
        if let Some(r) = rcpt {
            c.add_rcpt(r);
        }
        c
    }

    /// The SASL login name as the request gave it.
    pub fn account(&self) -> &str {
        &self.text[..self.instance_at]
    }

    /// Postfix's `instance`; empty when absent.
    pub fn instance(&self) -> &str {
        &self.text[self.instance_at..self.rcpts_at]
    }

    /// The recipients requested, in order.
    pub fn rcpts(&self) -> impl Iterator<Item = &str> {
        self.text[self.rcpts_at..].split_terminator('\n')
    }

    /// Add a recipient (up to [`MAX_CLAIM_RCPTS`]; a newline, which no policy value holds,
    /// ends it).
    fn add_rcpt(&mut self, rcpt: &str) {
        if self.rcpt_count >= MAX_CLAIM_RCPTS {
            return;
        }
        let rcpt = rcpt.split('\n').next().unwrap_or("");
        self.text.push_str(rcpt);
        self.text.push('\n');
        self.rcpt_count += 1;
    }
}

impl From<ClaimForm> for Claim {
    fn from(f: ClaimForm) -> Claim {
        let instance = (f.instance.as_str(), maillog::hash::str_key(&f.instance));
        let mut c = Claim::new(f.ts, &f.account, f.ip, instance, None);
        for r in &f.rcpts {
            c.add_rcpt(r);
        }
        c
    }
}

impl From<Claim> for ClaimForm {
    fn from(c: Claim) -> ClaimForm {
        ClaimForm {
            ts: c.ts,
            account: c.account().to_string(),
            ip: c.ip,
            instance: c.instance().to_string(),
            rcpts: c.rcpts().map(str::to_string).collect(),
        }
    }
}

/// The hash of a claim's matching key, the account (without case) and the address: the key of
/// [`PolicyClaims::by_key`]. A hash, not the lower-cased name, so that neither a request nor a
/// log line allocates one to look its queue up; claims whose keys collide share one queue, and
/// a look-up takes the first claim in it that is its own ([`Claim::is_of`]).
fn claim_key(account: &str, ip: Option<IpAddr>) -> u64 {
    use std::hash::BuildHasher;
    maillog::hash::State::default().hash_one((maillog::hash::str_key_ci(account), ip))
}

impl Claim {
    /// Is this a claim of `account` (without case) from `ip`?
    fn is_of(&self, account: &str, ip: Option<IpAddr>) -> bool {
        self.ip == ip && self.account().eq_ignore_ascii_case(account)
    }
}

/// Counters of the de-duplication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimStats {
    /// Messages claimed by policy requests.
    pub claimed: u64,
    /// …taken by their log line (counted once, from the log).
    pub matched: u64,
    /// …counted from the policy request alone (no log line in time).
    pub policy_only: u64,
    /// …counted early because too many were waiting.
    pub overflowed: u64,
    /// Messages whose HELO came from their session's policy request (the log had none).
    #[serde(default)]
    pub helo_lent: u64,
    /// Transactions' HELOs forgotten early because [`MAX_SESSION_HELOS`] or
    /// [`MAX_TRANSACTIONS_PER_SESSION`] were kept.
    #[serde(default)]
    pub helo_dropped: u64,
}

/// Whose session a HELO belongs to: the hash of the client address and the SASL login name
/// without case (empty when not authenticated), the key of [`SessionHelos::by_session`]. The
/// name keeps apart the users behind one carrier-NAT address, whose messages are each counted
/// under their own account. A hash, so that a request allocates no key to look its session up;
/// sessions whose keys collide share one queue (and its cap), and every look-up takes only the
/// entries of its own session ([`SessionHelo::is_of`]).
fn session_key(ip: IpAddr, account: &str) -> u64 {
    use std::hash::BuildHasher;
    maillog::hash::State::default().hash_one((ip, maillog::hash::str_key_ci(account)))
}

/// One SMTP transaction's HELO as a snapshot holds it (the form [`SessionHelos`] is written in:
/// a list, oldest first, since the maps' tuple keys are no JSON string keys); in memory it is a
/// [`SessionHelo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionHeloForm {
    ip: IpAddr,
    account: String,
    /// Arrival of the transaction's first request (policy clock).
    ts: Ts,
    helo: String,
    /// Postfix's `instance` (one per transaction); empty when the client sent none.
    #[serde(default)]
    instance: String,
    /// The transaction's MAIL FROM (`""` the null sender), once a request gave it (at most
    /// [`MAX_SENDER_LEN`] bytes).
    #[serde(default)]
    sender: Option<String>,
    /// A log message took this HELO already.
    #[serde(default)]
    taken: bool,
}

/// One SMTP transaction's HELO as its policy requests gave it. Its four texts (the account as
/// the session is known by, the HELO, the `instance` and the sender) are one string, and its
/// keys in [`SessionHelos`]' maps are computed once: the policy server adds one entry per
/// transaction and retires one, and four strings each (four allocations to make and free, on
/// cold memory when retired) and the keys hashed again at each retirement were most of the
/// engine's work per request (`examples/policy_engine.rs`).
#[derive(Debug, Clone, PartialEq)]
struct SessionHelo {
    ip: IpAddr,
    /// Arrival of the transaction's first request (policy clock).
    ts: Ts,
    /// [`session_key`] of `ip` and the account.
    session: u64,
    /// [`instance_key`], when the transaction has an `instance`.
    instance_key: Option<u64>,
    /// The account, the HELO, the instance and the sender, one after another.
    text: Box<str>,
    /// Where the HELO, the instance and the sender begin in `text`.
    helo_at: usize,
    instance_at: usize,
    sender_at: usize,
    /// Has a request given the MAIL FROM (`""` the null sender) yet?
    has_sender: bool,
    /// A log message took this HELO already.
    taken: bool,
}

impl SessionHelo {
    /// The entry of a transaction whose [`session_key`] and [`instance_key`] are `keys`.
    fn with_keys(
        keys: (u64, Option<u64>),
        ip: IpAddr,
        account: &str,
        ts: Ts,
        helo: &str,
        instance: &str,
        sender: Option<&str>,
    ) -> SessionHelo {
        let sender_text = sender.unwrap_or("");
        let mut t =
            String::with_capacity(account.len() + helo.len() + instance.len() + sender_text.len());
        t.push_str(account);
        t.make_ascii_lowercase();
        t.push_str(helo);
        t.push_str(instance);
        t.push_str(sender_text);
        let helo_at = account.len();
        let instance_at = helo_at + helo.len();
        SessionHelo {
            ip,
            ts,
            session: keys.0,
            instance_key: keys.1,
            text: t.into_boxed_str(),
            helo_at,
            instance_at,
            sender_at: instance_at + instance.len(),
            has_sender: sender.is_some(),
            taken: false,
        }
    }

    fn account(&self) -> &str {
        &self.text[..self.helo_at]
    }

    fn helo(&self) -> &str {
        &self.text[self.helo_at..self.instance_at]
    }

    fn instance(&self) -> &str {
        &self.text[self.instance_at..self.sender_at]
    }

    fn sender(&self) -> Option<&str> {
        self.has_sender.then(|| &self.text[self.sender_at..])
    }

    /// The transaction's MAIL FROM, given by a later request (the sender is the text's last
    /// part).
    fn set_sender(&mut self, sender: &str) {
        let mut t = String::with_capacity(self.sender_at + sender.len());
        t.push_str(&self.text[..self.sender_at]);
        t.push_str(sender);
        self.text = t.into_boxed_str();
        self.has_sender = true;
    }
}

impl From<SessionHeloForm> for SessionHelo {
    fn from(f: SessionHeloForm) -> SessionHelo {
        let session = session_key(f.ip, &f.account);
        let ikey = (!f.instance.is_empty()).then(|| instance_key(session, &f.instance));
        let mut e = SessionHelo::with_keys(
            (session, ikey),
            f.ip,
            &f.account,
            f.ts,
            &f.helo,
            &f.instance,
            f.sender.as_deref(),
        );
        e.taken = f.taken;
        e
    }
}

impl From<SessionHelo> for SessionHeloForm {
    fn from(e: SessionHelo) -> SessionHeloForm {
        SessionHeloForm {
            ip: e.ip,
            account: e.account().to_string(),
            ts: e.ts,
            helo: e.helo().to_string(),
            instance: e.instance().to_string(),
            sender: e.sender().map(str::to_string),
            taken: e.taken,
        }
    }
}

/// The HELOs of recent SMTP transactions from their policy requests, one entry per
/// transaction, for [`POLICY_LINK_SECS`] of policy clock, at most [`MAX_SESSION_HELOS`] of them
/// and [`MAX_TRANSACTIONS_PER_SESSION`] per client session.
///
/// Each entry keeps its transaction's sender: the log's message takes the HELO of the oldest
/// entry of its session with the same MAIL FROM ([`SessionHelos::take`]), so every message
/// carries the HELO of its own transaction however far the log lags the requests — a host
/// greeting with a new name on each of several back-to-back connections shows all its names.
/// (Keeping only the latest HELO of each session and lending it when the lagging log line was
/// read gave every message of such a burst the last name.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<SessionHeloForm>", into = "Vec<SessionHeloForm>")]
pub struct SessionHelos {
    /// Every transaction by arrival sequence number (oldest first).
    by_seq: Arrivals<SessionHelo>,
    /// Sequence numbers of each session's transactions, oldest first, by [`session_key`].
    by_session: maillog::hash::Map<u64, VecDeque<u64>>,
    next_seq: u64,
    /// The entry of each transaction that has an `instance`, by [`instance_key`] (checked
    /// against the entry, so a collision of the hash only misses): found without walking the
    /// session's transactions, which a busy session (one address and login sending much mail,
    /// like a hijacked account) fills to [`MAX_TRANSACTIONS_PER_SESSION`]. Mappings of
    /// entries gone are dropped lazily ([`LazyIndex`]).
    by_instance: LazyIndex,
}

/// The key of a transaction in [`SessionHelos::by_instance`] (the account without case).
fn instance_key(session: u64, instance: &str) -> u64 {
    use std::hash::BuildHasher;
    maillog::hash::State::default().hash_one((session, instance))
}

impl SessionHelo {
    /// Is this a transaction of `ip`'s session logged in as `account` (without case)?
    fn is_of(&self, ip: IpAddr, account: &str) -> bool {
        self.ip == ip && self.account().eq_ignore_ascii_case(account)
    }
}

impl From<SessionHelos> for Vec<SessionHeloForm> {
    fn from(h: SessionHelos) -> Self {
        h.by_seq.into_values().map(SessionHeloForm::from).collect()
    }
}

impl From<Vec<SessionHeloForm>> for SessionHelos {
    fn from(v: Vec<SessionHeloForm>) -> Self {
        let mut h = SessionHelos::default();
        for e in v {
            h.push(e.into());
        }
        h
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Remove `seq` from a queue of sequence numbers in arrival order. What goes is nearly always
/// the oldest (expiry, overflow and the log's submission all take the oldest first), so that is
/// looked at first: a busy session's queue holds thousands, and walking it for each request
/// made the policy server's engine thread slow in proportion to the session's traffic.
fn forget(q: &mut VecDeque<u64>, seq: u64) {
    if q.front() == Some(&seq) {
        q.pop_front();
    } else if let Ok(i) = q.binary_search(&seq) {
        q.remove(i);
    }
}

impl SessionHelos {
    /// Transactions remembered.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// None remembered?
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// A request of transaction `instance` of `ip`'s session (logged in as `account`, or `""`)
    /// said `HELO helo` and `MAIL FROM sender` (`None` before MAIL) at `ts`. Every request of
    /// one transaction lands in one entry: by its `instance`, or, for a client that sends none,
    /// with the session's newest entry when that has the same HELO and sender. Returns how many
    /// entries were dropped to stay within the caps.
    fn note(
        &mut self,
        ts: Ts,
        ip: IpAddr,
        account: &str,
        instance: &str,
        sender: Option<&str>,
        helo: &str,
    ) -> u64 {
        let helo = cut(helo, MAX_HELO_LEN);
        let sender = sender.map(|s| cut(s, MAX_SENDER_LEN));
        let session = session_key(ip, account);
        let ikey = (!instance.is_empty()).then(|| instance_key(session, instance));
        let same = if let Some(ikey) = ikey {
            // The session's transaction with this instance (at most one: `note` adds one
            // only when there is none).
            self.by_instance.get(ikey).filter(|s| {
                self.by_seq
                    .get(*s)
                    .is_some_and(|e| e.instance() == instance && e.is_of(ip, account))
            })
        } else {
            // The session's newest transaction, if it is this one.
            self.by_session
                .get(&session)
                .and_then(|q| {
                    q.iter()
                        .rev()
                        .find(|s| self.by_seq.get(**s).is_some_and(|e| e.is_of(ip, account)))
                })
                .copied()
                .filter(|s| {
                    self.by_seq.get(*s).is_some_and(|e| {
                        e.instance().is_empty()
                            && e.helo() == helo
                            && (e.sender().is_none() || e.sender() == sender)
                    })
                })
        };
        if let Some(e) = same.and_then(|s| self.by_seq.get_mut(s)) {
            if let (None, Some(s)) = (e.sender(), sender) {
                e.set_sender(s);
            }
            return 0;
        }
        self.push(SessionHelo::with_keys(
            (session, ikey),
            ip,
            account,
            ts,
            helo,
            instance,
            sender,
        ))
    }

    /// Append one entry as it is (also when reading a snapshot back); returns how many were
    /// dropped to stay within the caps, oldest first.
    fn push(&mut self, e: SessionHelo) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let q = self.by_session.entry(e.session).or_default();
        q.push_back(seq);
        let mut dropped = 0;
        while q.len() > MAX_TRANSACTIONS_PER_SESSION {
            if let Some(old) = q.pop_front() {
                self.by_seq.remove(old);
                dropped += 1;
            }
        }
        let instance_key = e.instance_key;
        // `seq` is newer than every entry: always accepted.
        let _ = self.by_seq.push(seq, e);
        if let Some(k) = instance_key {
            self.by_instance.insert(k, seq, &self.by_seq);
        }
        // The slots spanned, not only the entries: removals in the middle (a session's cap)
        // leave empty slots, as large as entries.
        while self.by_seq.span() > MAX_SESSION_HELOS {
            self.pop_oldest();
            dropped += 1;
        }
        dropped
    }

    /// Forget the oldest entry.
    fn pop_oldest(&mut self) {
        let Some((seq, e)) = self.by_seq.pop_first() else {
            return;
        };
        let k = e.session;
        if let Some(q) = self.by_session.get_mut(&k) {
            forget(q, seq);
            if q.is_empty() {
                self.by_session.remove(&k);
            }
        }
    }

    /// Forget transactions whose first request is [`POLICY_LINK_SECS`] older than `now`.
    fn expire(&mut self, now: Ts) {
        while let Some((_, e)) = self.by_seq.first() {
            if e.ts.secs() + POLICY_LINK_SECS > now.secs() {
                break;
            }
            self.pop_oldest();
        }
    }

    /// The HELO for a log's message at `ts` (log clock) from `ip`'s session logged in as
    /// `account` (or `""`) with envelope sender `sender`, among the transactions within
    /// [`POLICY_LINK_SECS`] of `ts` either way (the two clocks are apart), in this order:
    /// 1. the oldest one not yet taken with the same sender: its own transaction (Postfix
    ///    queues a session's messages in transaction order; a transaction refused outright
    ///    queues none, and its entry, whose sender the later messages seldom share, expires);
    /// 2. else the oldest one not yet taken (the log's sender was rewritten, by
    ///    `canonical_maps` say);
    /// 3. else the newest one with the same sender, taken or not (a client that sends no
    ///    `instance` repeating an identical transaction, kept as one entry).
    ///
    /// The first two mark the entry taken.
    fn take(&mut self, ts: Ts, ip: IpAddr, account: &str, sender: &str) -> Option<&str> {
        let q = self.by_session.get(&session_key(ip, account))?;
        let sender = cut(sender, MAX_SENDER_LEN);
        let near = |e: &SessionHelo| {
            e.is_of(ip, account) && (e.ts.secs() - ts.secs()).abs() <= POLICY_LINK_SECS
        };
        let same = |e: &SessionHelo| e.sender().is_some_and(|s| s.eq_ignore_ascii_case(sender));
        let entries = || q.iter().filter_map(|s| Some((*s, self.by_seq.get(*s)?)));
        let pick = entries()
            .find(|(_, e)| !e.taken && near(e) && same(e))
            .or_else(|| entries().find(|(_, e)| !e.taken && near(e)))
            .map(|(s, _)| (s, true))
            .or_else(|| {
                entries()
                    .rev()
                    .find(|(_, e)| near(e) && same(e))
                    .map(|(s, _)| (s, false))
            });
        let (seq, mark) = pick?;
        let e = self.by_seq.get_mut(seq)?;
        e.taken |= mark;
        Some(e.helo())
    }
}

/// Claims waiting for their log line, in arrival order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyClaims {
    /// By arrival sequence number.
    pending: Arrivals<Claim>,
    next_seq: u64,
    /// Latest policy-clock time seen.
    now: Option<Ts>,
    /// Counters.
    stats: ClaimStats,
    /// The client sessions' HELOs from their policy requests.
    #[serde(default)]
    helos: SessionHelos,
    /// Sequence numbers of pending claims by [`claim_key`] (rebuilt from `pending`).
    #[serde(skip)]
    by_key: maillog::hash::Map<u64, VecDeque<u64>>,
    /// Pending claim of each `instance`, by its [`maillog::hash::str_key`] (checked against
    /// the claim, so a collision of the hash only misses; mappings of claims gone dropped
    /// lazily, [`LazyIndex`]; rebuilt from `pending`).
    #[serde(skip)]
    by_instance: LazyIndex,
}

impl PolicyClaims {
    /// Counters.
    pub fn stats(&self) -> ClaimStats {
        self.stats
    }

    /// Claims waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// None waiting?
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// SMTP transactions whose HELO is remembered.
    pub fn session_helos(&self) -> usize {
        self.helos.len()
    }

    /// A policy request of transaction `instance` (`""` when the client sent none) of `ip`'s
    /// session (SASL name `account`, `""` when none) said `HELO helo` and `MAIL FROM sender`
    /// (`None` before MAIL) at `ts` (policy clock).
    pub fn helo(
        &mut self,
        ts: Ts,
        ip: IpAddr,
        account: &str,
        instance: &str,
        sender: Option<&str>,
        helo: &str,
    ) {
        self.advance(ts);
        if helo.is_empty() {
            return;
        }
        self.stats.helo_dropped += self.helos.note(ts, ip, account, instance, sender, helo);
    }

    /// The HELO of the transaction of a log's message at `ts` (log clock) from `ip`, logged in
    /// as `account` (`""` when not), with envelope sender `sender` (`""` the null sender), if a
    /// policy request of that session gave one within [`POLICY_LINK_SECS`]: its own
    /// transaction's, found by its sender (see [`SessionHelos`]). The transaction is then
    /// taken: the session's next message with that sender gets the next one.
    pub fn session_helo(
        &mut self,
        ts: Ts,
        ip: IpAddr,
        account: &str,
        sender: &str,
    ) -> Option<&str> {
        self.helos.take(ts, ip, account, sender)
    }

    /// A message took its HELO from [`PolicyClaims::session_helo`] (counted).
    pub fn helo_lent(&mut self) {
        self.stats.helo_lent += 1;
    }

    /// Rebuild the indexes after deserializing.
    pub fn reindex(&mut self) {
        self.by_key.clear();
        self.by_instance.clear();
        for (seq, c) in self.pending.iter() {
            self.by_key.entry(c.key).or_default().push_back(seq);
            if let Some(k) = c.instance_key {
                self.by_instance.insert(k, seq, &self.pending);
            }
        }
    }

    /// A policy request at `RCPT` state. Appends to `out` the claims that must be counted now
    /// (overflow).
    pub fn request(
        &mut self,
        ts: Ts,
        account: &str,
        ip: Option<IpAddr>,
        instance: &str,
        rcpt: Option<&str>,
        out: &mut Vec<Claim>,
    ) {
        self.advance(ts);
        let instance_key = maillog::hash::str_key(instance);
        if let Some(c) = self
            .by_instance
            .get(instance_key)
            .and_then(|s| self.pending.get_mut(s))
            .filter(|c| c.instance() == instance)
        {
            if let Some(r) = rcpt {
                c.add_rcpt(r);
            }
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.claimed += 1;
        let claim = Claim::new(ts, account, ip, (instance, instance_key), rcpt);
        self.by_key.entry(claim.key).or_default().push_back(seq);
        let instance_key = claim.instance_key;
        // `seq` is newer than every claim: always accepted.
        let _ = self.pending.push(seq, claim);
        if let Some(k) = instance_key {
            self.by_instance.insert(k, seq, &self.pending);
        }
        // The slots spanned, not only the claims waiting: the claims the log took leave empty
        // slots, as large as claims, until the oldest goes.
        while self.pending.span() > MAX_PENDING_CLAIMS {
            let Some((first, _)) = self.pending.first() else {
                break;
            };
            if let Some(c) = self.remove(first) {
                self.stats.overflowed += 1;
                out.push(c);
            }
        }
    }

    /// The log showed a submission of `account` from `ip`: take the oldest claim it matches.
    /// True when there was one (the log's submission is the one counted).
    pub fn log_submission(&mut self, account: &str, ip: Option<IpAddr>) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let Some(seq) = self.by_key.get(&claim_key(account, ip)).and_then(|q| {
            q.iter()
                .copied()
                .find(|s| self.pending.get(*s).is_some_and(|c| c.is_of(account, ip)))
        }) else {
            return false;
        };
        self.remove(seq);
        self.stats.matched += 1;
        true
    }

    /// Move the policy clock to `now`; returns the claims whose wait is over, oldest first.
    pub fn due(&mut self, now: Ts) -> Vec<Claim> {
        self.advance(now);
        let now = self.now.unwrap_or(now);
        let mut out = Vec::new();
        while let Some((seq, c)) = self.pending.first() {
            if c.ts.secs() + POLICY_LINK_SECS > now.secs() {
                break;
            }
            if let Some(c) = self.remove(seq) {
                self.stats.policy_only += 1;
                out.push(c);
            }
        }
        out
    }

    /// Every claim still waiting (end of input), oldest first.
    pub fn drain(&mut self) -> Vec<Claim> {
        let seqs: Vec<u64> = self.pending.iter().map(|(s, _)| s).collect();
        let out: Vec<Claim> = seqs.into_iter().filter_map(|s| self.remove(s)).collect();
        self.stats.policy_only += out.len() as u64;
        out
    }

    /// Move the policy clock to `ts` (also what the engine does with a request whose HELO it
    /// does not keep: [`crate::Engine::policy_only`]).
    pub(crate) fn advance(&mut self, ts: Ts) {
        if self.now.is_none_or(|n| ts > n) {
            self.now = Some(ts);
        }
        if let Some(now) = self.now {
            self.helos.expire(now);
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Claim> {
        let c = self.pending.remove(seq)?;
        let k = c.key;
        if let Some(q) = self.by_key.get_mut(&k) {
            forget(q, seq);
            if q.is_empty() {
                self.by_key.remove(&k);
            }
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn a_log_line_takes_the_claim_of_its_message() {
        let mut c = PolicyClaims::default();
        let t = Ts::from_secs(1_000);
        let mut out = Vec::new();
        c.request(t, "Alice", ip("192.0.2.1"), "i.1", Some("x@a"), &mut out);
        assert!(out.is_empty());
        // A second recipient of the same transaction joins the claim.
        c.request(t, "Alice", ip("192.0.2.1"), "i.1", Some("y@a"), &mut out);
        assert_eq!(c.len(), 1);
        // Another address does not match; the right one does, case-insensitively.
        assert!(!c.log_submission("alice", ip("192.0.2.2")));
        assert!(c.log_submission("alice", ip("192.0.2.1")));
        assert!(c.is_empty());
        assert!(!c.log_submission("alice", ip("192.0.2.1")), "taken once");
        assert!(c.due(Ts::from_secs(5_000)).is_empty());
        assert_eq!(c.stats().matched, 1);
    }

    #[test]
    fn an_unmatched_claim_is_counted_after_the_link_window() {
        let mut c = PolicyClaims::default();
        c.request(
            Ts::from_secs(1_000),
            "bob",
            ip("192.0.2.1"),
            "i.1",
            Some("x@a"),
            &mut Vec::new(),
        );
        c.request(
            Ts::from_secs(1_010),
            "bob",
            ip("192.0.2.1"),
            "i.2",
            Some("y@a"),
            &mut Vec::new(),
        );
        assert!(c
            .due(Ts::from_secs(1_000 + POLICY_LINK_SECS - 1))
            .is_empty());
        let d = c.due(Ts::from_secs(1_000 + POLICY_LINK_SECS));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].rcpts().collect::<Vec<_>>(), ["x@a"]);
        // The log line for the second message still finds its claim.
        assert!(c.log_submission("bob", ip("192.0.2.1")));
        assert_eq!(c.stats().policy_only, 1);
    }

    /// Claims the log took leave empty slots behind the oldest claim still waiting; those
    /// count towards [`MAX_PENDING_CLAIMS`], so the memory held stays bounded: past the cap
    /// the oldest waiting claim is counted at once (overflow), and the slots go with it.
    #[test]
    fn claims_taken_by_the_log_count_towards_the_cap_until_the_oldest_goes() {
        let mut c = PolicyClaims::default();
        let mut out = Vec::new();
        let t = Ts::from_secs(1_000);
        c.request(
            t,
            "stuck",
            ip("192.0.2.1"),
            "i.stuck",
            Some("x@a"),
            &mut out,
        );
        for n in 0..MAX_PENDING_CLAIMS {
            c.request(t, "bob", ip("192.0.2.2"), &format!("i.{n}"), None, &mut out);
            assert!(c.log_submission("bob", ip("192.0.2.2")));
            assert!(c.pending.span() <= MAX_PENDING_CLAIMS);
        }
        assert_eq!(out.len(), 1, "the oldest claim was counted early");
        assert_eq!(out[0].account(), "stuck");
        assert_eq!(c.stats().overflowed, 1);
        assert_eq!(
            (c.len(), c.pending.span()),
            (0, 0),
            "and every slot went with it"
        );
        assert_eq!(c.stats().matched, MAX_PENDING_CLAIMS as u64);
    }

    #[test]
    fn claims_survive_serialization() {
        let mut c = PolicyClaims::default();
        c.request(
            Ts::from_secs(1_000),
            "bob",
            ip("192.0.2.1"),
            "i.1",
            Some("x@a"),
            &mut Vec::new(),
        );
        let mut back: PolicyClaims =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        back.reindex();
        back.request(
            Ts::from_secs(1_001),
            "bob",
            ip("192.0.2.1"),
            "i.1",
            Some("y@a"),
            &mut Vec::new(),
        );
        assert_eq!(back.len(), 1);
        assert!(back.log_submission("BOB", ip("192.0.2.1")));
    }

    #[test]
    fn session_helos_expire_and_stay_bounded() {
        let mut c = PolicyClaims::default();
        let a = ip("192.0.2.1").unwrap();
        let t = Ts::from_secs(1_000);
        c.helo(t, a, "", "i.1", Some("x@pc.example"), "pc.example");
        c.helo(t, a, "Bob", "i.2", Some("bob@a.example"), "laptop");
        assert_eq!(
            c.session_helo(Ts::from_secs(1_002), a, "bob", "bob@a.example"),
            Some("laptop")
        );
        assert_eq!(
            c.session_helo(Ts::from_secs(1_002), a, "eve", "bob@a.example"),
            None
        );
        // Too far from the log's time, either way.
        let far = POLICY_LINK_SECS + 1;
        let at = |s| Ts::from_secs(s);
        assert_eq!(c.session_helo(at(1_000 + far), a, "", "x@pc.example"), None);
        assert_eq!(c.session_helo(at(1_000 - far), a, "", "x@pc.example"), None);
        // The policy clock moving on forgets them.
        c.due(Ts::from_secs(1_000 + POLICY_LINK_SECS));
        assert_eq!(c.session_helos(), 0);
        // A flood of transactions keeps at most MAX_SESSION_HELOS, counting the dropped ones.
        for n in 0..(MAX_SESSION_HELOS as u32 + 10) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            c.helo(at(5_000), ip, "", "", Some(""), &"x".repeat(1000));
        }
        assert_eq!(c.session_helos(), MAX_SESSION_HELOS);
        assert_eq!(c.stats().helo_dropped, 10);
        let last = IpAddr::from(std::net::Ipv4Addr::from(
            0x0a00_0000 + MAX_SESSION_HELOS as u32 + 9,
        ));
        // Dropped from the middle (a session's cap below), a transaction still holds its slot
        // until the older ones go: the slots, not only the entries, stay within the cap.
        assert!(c.helos.by_seq.span() <= MAX_SESSION_HELOS);
        // They survive serialization.
        let mut back: PolicyClaims =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        let h = c.session_helo(at(5_000), last, "", "").unwrap().to_string();
        assert_eq!(h.len(), MAX_HELO_LEN, "cut");
        assert_eq!(back.session_helo(at(5_000), last, "", ""), Some(h.as_str()));
        // One session flooding transactions keeps its newest MAX_TRANSACTIONS_PER_SESSION.
        let mut c = PolicyClaims::default();
        for n in 0..MAX_TRANSACTIONS_PER_SESSION + 3 {
            c.helo(t, a, "", &format!("i.{n}"), Some(&format!("s{n}@x")), "h");
        }
        assert_eq!(c.session_helos(), MAX_TRANSACTIONS_PER_SESSION);
        assert_eq!(c.stats().helo_dropped, 3);
        assert_eq!(
            c.session_helo(t, a, "", "s0@x"),
            Some("h"),
            "oldest kept one"
        );
    }

    #[test]
    fn each_message_takes_its_own_transactions_helo() {
        let mut c = PolicyClaims::default();
        let a = ip("198.18.12.7").unwrap();
        let t = Ts::from_secs(1_000);
        // Four back-to-back sessions, a new HELO each, two transactions each (the second with
        // two RCPT requests); all requests come before any log line.
        for s in 0..4 {
            for m in 0..2 {
                let inst = format!("i.{s}.{m}");
                let from = format!("p{s}{m}@d{m}.example");
                for _ in 0..=m {
                    c.helo(t, a, "", &inst, Some(&from), &format!("pc{s}.example"));
                }
            }
        }
        assert_eq!(c.session_helos(), 8, "one entry per transaction");
        // A transaction refused outright (no message in the log).
        c.helo(t, a, "", "i.r", Some("gone@x.example"), "refused.example");
        for s in 0..4 {
            for m in 0..2 {
                let from = format!("p{s}{m}@d{m}.example");
                assert_eq!(
                    c.session_helo(t, a, "", &from),
                    Some(format!("pc{s}.example").as_str())
                );
            }
        }
        // A message whose sender the log rewrote takes the oldest transaction not taken.
        c.helo(t, a, "", "i.x", Some("u@sub.example"), "last.example");
        assert_eq!(
            c.session_helo(t, a, "", "u@example"),
            Some("refused.example")
        );
        assert_eq!(c.session_helo(t, a, "", "u@example"), Some("last.example"));
        // Nothing left untaken: a repeat of a known sender gets its newest transaction.
        assert_eq!(
            c.session_helo(t, a, "", "P31@D1.example"),
            Some("pc3.example")
        );
        assert_eq!(c.session_helo(t, a, "", "other@example"), None);
    }

    /// The maps are keyed by hashes of the names without case: a name in another case finds the
    /// same claims and transactions, and another name at the same address finds none of them.
    #[test]
    fn names_in_any_case_find_their_own_entries_only() {
        let mut c = PolicyClaims::default();
        let a = ip("192.0.2.7");
        let t = Ts::from_secs(1_000);
        let mut out = Vec::new();
        c.request(t, "Carol@Example.org", a, "i.1", Some("x@a"), &mut out);
        c.request(t, "dave@example.org", a, "i.2", Some("x@a"), &mut out);
        c.request(t, "CAROL@example.org", a, "i.3", Some("x@a"), &mut out);
        // A further recipient of a transaction joins its claim, whatever case its name has.
        c.request(t, "carol@example.org", a, "i.1", Some("y@a"), &mut out);
        assert!(out.is_empty());
        assert_eq!(c.len(), 3);
        assert!(!c.log_submission("eve@example.org", a));
        assert!(!c.log_submission("carol@example.org", ip("192.0.2.8")));
        assert!(c.log_submission("carol@example.org", a));
        assert!(c.log_submission("carol@EXAMPLE.org", a));
        assert!(
            !c.log_submission("carol@example.org", a),
            "dave's is not carol's"
        );
        let rest = c.drain();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].account(), "dave@example.org");

        let a = a.unwrap();
        c.helo(t, a, "Carol", "i.1", Some("c@x"), "carol-pc");
        c.helo(t, a, "CAROL", "i.1", Some("c@x"), "carol-pc");
        c.helo(t, a, "Dave", "i.1", Some("d@x"), "dave-pc");
        c.helo(t, a, "dave", "", Some("d@x"), "dave-pc");
        c.helo(t, a, "DAVE", "", Some("d@x"), "dave-pc");
        assert_eq!(c.session_helos(), 3, "one per transaction of each session");
        assert_eq!(c.session_helo(t, a, "carol", "c@x"), Some("carol-pc"));
        assert_eq!(c.session_helo(t, a, "Dave", "d@x"), Some("dave-pc"));
        assert_eq!(c.session_helo(t, a, "dave", "d@x"), Some("dave-pc"));
        assert_eq!(c.session_helo(t, a, "eve", "d@x"), None);
    }

    /// The snapshot's form of the claims (the look-up maps are not in it): pinned, so that a
    /// snapshot written before a change of the maps reads back after it.
    #[test]
    fn snapshot_form_is_pinned() {
        let mut c = PolicyClaims::default();
        let t = Ts::from_secs(1_000);
        let a = ip("192.0.2.1");
        c.request(t, "Bob", a, "i.1", Some("x@a"), &mut Vec::new());
        c.request(t, "bob", a, "i.1", Some("y@a"), &mut Vec::new());
        c.helo(t, a.unwrap(), "Bob", "i.1", Some("b@a"), "pc");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, SNAPSHOT_JSON);
        let mut back: PolicyClaims = serde_json::from_str(&json).unwrap();
        back.reindex();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert!(back.log_submission("BOB", a));
        assert_eq!(back.session_helo(t, a.unwrap(), "bob", "b@a"), Some("pc"));
    }

    /// A claim's and a transaction's texts in one string each read back field by field as
    /// their snapshot forms gave them: empty and multi-byte parts, no sender and the null
    /// sender, no recipients and many (cut at [`MAX_CLAIM_RCPTS`]), a sender given later.
    #[test]
    fn packed_entries_read_back_as_their_forms() {
        let t = Ts::from_secs(7);
        for (account, instance, rcpts) in [
            ("", "", 0usize),
            ("Bob", "i.1", 1),
            ("jürgen@beispiel.de", "", 3),
            ("x", "ä.ö", MAX_CLAIM_RCPTS + 5),
        ] {
            let form = ClaimForm {
                ts: t,
                account: account.to_string(),
                ip: ip("2001:db8::1"),
                instance: instance.to_string(),
                rcpts: (0..rcpts).map(|i| format!("r{i}@é.example")).collect(),
            };
            let c = Claim::from(form.clone());
            assert_eq!(c.account(), account);
            assert_eq!(c.instance(), instance);
            assert_eq!(c.rcpts().count(), rcpts.min(MAX_CLAIM_RCPTS));
            let back = ClaimForm::from(c);
            assert_eq!(back.rcpts[..], form.rcpts[..rcpts.min(MAX_CLAIM_RCPTS)]);
            assert_eq!((back.account, back.instance), (form.account, form.instance));
        }
        let a = ip("192.0.2.7").unwrap();
        for (helo, instance, sender) in [
            ("pc", "", None),
            ("", "i.9", Some("")),
            ("häuschen", "ä", Some("wer@ü.example")),
        ] {
            let form = SessionHeloForm {
                ip: a,
                account: "carol".to_string(),
                ts: t,
                helo: helo.to_string(),
                instance: instance.to_string(),
                sender: sender.map(str::to_string),
                taken: sender.is_some(),
            };
            let mut e = SessionHelo::from(form.clone());
            assert_eq!(SessionHeloForm::from(e.clone()), form);
            if sender.is_none() {
                e.set_sender("late@x.example");
                assert_eq!(e.sender(), Some("late@x.example"));
                assert_eq!(
                    (e.account(), e.helo(), e.instance()),
                    ("carol", helo, instance)
                );
            }
        }
    }

    /// [`PolicyClaims`] as written before and after its maps were keyed by hashes.
    const SNAPSHOT_JSON: &str = concat!(
        r#"{"pending":{"0":{"ts":1000000000,"account":"Bob","ip":"192.0.2.1","instance":"i.1","#,
        r#""rcpts":["x@a","y@a"]}},"next_seq":1,"now":1000000000,"stats":{"claimed":1,"#,
        r#""matched":0,"policy_only":0,"overflowed":0,"helo_lent":0,"helo_dropped":0},"#,
        r#""helos":[{"ip":"192.0.2.1","account":"bob","ts":1000000000,"helo":"pc","#,
        r#""instance":"i.1","sender":"b@a","taken":false}]}"#
    );

    #[test]
    fn requests_without_instance_make_one_entry_per_transaction() {
        let mut c = PolicyClaims::default();
        let a = ip("192.0.2.9").unwrap();
        let t = Ts::from_secs(1_000);
        // HELO stage (no sender yet), then two RCPTs, of one transaction.
        c.helo(t, a, "", "", None, "h1.example");
        c.helo(t, a, "", "", Some("a@x.example"), "h1.example");
        c.helo(t, a, "", "", Some("a@x.example"), "h1.example");
        assert_eq!(c.session_helos(), 1);
        c.helo(t, a, "", "", Some("b@x.example"), "h1.example");
        c.helo(t, a, "", "", Some("a@x.example"), "h2.example");
        assert_eq!(c.session_helos(), 3);
        assert_eq!(c.session_helo(t, a, "", "a@x.example"), Some("h1.example"));
        assert_eq!(c.session_helo(t, a, "", "a@x.example"), Some("h2.example"));
    }
}
