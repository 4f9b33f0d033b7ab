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
//! policy request carries `helo_name`. The HELO of a client's session is therefore kept here
//! ([`SessionHelos`]) for [`POLICY_LINK_SECS`]: the log's `client=` line of the same address (and
//! the same SASL name, or none), within that time, lends it to its message when the log gave
//! the message none, so helo-anomaly sees accepted mail's HELO in a Postfix deployment.
//!
//! The policy clock (request arrival and the service's ticks) is kept apart from the log clock:
//! a policy request never moves the log's event time, so the correlator's idle policy and every
//! log-fed window stay a function of the log alone.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use maillog::Ts;
use serde::{Deserialize, Serialize};

/// How long a policy request's message waits for its log line (seconds of policy clock). Postfix
/// logs `client=…, sasl_username=…` as soon as the first recipient passes the restrictions that
/// asked us, so the line follows the request within the log's delivery delay (syslog and the
/// follower's poll, a few seconds); a minute leaves ample room. Our own idea.
pub const POLICY_LINK_SECS: i64 = 60;
/// Most claims waiting at once; beyond, the oldest is counted at once (nothing is dropped). A
/// busy ISP submits a few hundred messages a minute; our own idea.
pub const MAX_PENDING_CLAIMS: usize = 100_000;
/// Recipients kept per claim (one per `RCPT` request); more are counted but not kept.
pub const MAX_CLAIM_RCPTS: usize = 1000;
/// Client sessions whose policy-request HELO is remembered at once; beyond, the oldest is
/// dropped (counted in [`ClaimStats::helo_dropped`]). A request is untrusted input; a busy ISP
/// sees a few thousand sessions a minute, the time one is kept ([`POLICY_LINK_SECS`]). Our own
/// idea.
pub const MAX_SESSION_HELOS: usize = 65_536;
/// Longest HELO kept from a policy request (bytes; longer ones are cut): a domain name is at
/// most 255 octets (RFC 1035, 2.3.4), an address literal shorter.
pub const MAX_HELO_LEN: usize = 255;

/// A message announced by policy requests, not yet seen in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Arrival of its first `RCPT` request (policy clock).
    pub ts: Ts,
    /// SASL login name as the request gave it.
    pub account: String,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Postfix's `instance` (one per SMTP transaction); empty when absent.
    pub instance: String,
    /// Recipients requested (at most [`MAX_CLAIM_RCPTS`]).
    pub rcpts: Vec<String>,
}

/// Matching key: lower-cased account and address.
type Key = (String, Option<IpAddr>);

fn key(account: &str, ip: Option<IpAddr>) -> Key {
    (account.to_ascii_lowercase(), ip)
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
    /// Sessions' HELOs forgotten early because [`MAX_SESSION_HELOS`] were kept.
    #[serde(default)]
    pub helo_dropped: u64,
}

/// Whose session a HELO belongs to: the client address and the lower-cased SASL login name
/// (empty when not authenticated). The name keeps apart the users behind one carrier-NAT
/// address, whose messages are each counted under their own account.
type SessionKey = (IpAddr, String);

/// One session's HELO as [`SessionHelos`] is written (a list, oldest first: the maps' tuple keys
/// are no string keys, which JSON needs).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionHelo {
    ip: IpAddr,
    account: String,
    ts: Ts,
    helo: String,
}

/// The latest policy-request HELO of each client session, for [`POLICY_LINK_SECS`] of policy
/// clock, at most [`MAX_SESSION_HELOS`] of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<SessionHelo>", into = "Vec<SessionHelo>")]
pub struct SessionHelos {
    /// By session: the latest request's time, its HELO and its arrival sequence number.
    by_session: BTreeMap<SessionKey, (Ts, String, u64)>,
    /// Sessions by the sequence number of their latest request (oldest first).
    order: BTreeMap<u64, SessionKey>,
    next_seq: u64,
}

impl From<SessionHelos> for Vec<SessionHelo> {
    fn from(h: SessionHelos) -> Self {
        h.order
            .values()
            .filter_map(|k| {
                let (ts, helo, _) = h.by_session.get(k)?;
                Some(SessionHelo {
                    ip: k.0,
                    account: k.1.clone(),
                    ts: *ts,
                    helo: helo.clone(),
                })
            })
            .collect()
    }
}

impl From<Vec<SessionHelo>> for SessionHelos {
    fn from(v: Vec<SessionHelo>) -> Self {
        let mut h = SessionHelos::default();
        for e in v {
            h.note(e.ts, e.ip, &e.account, &e.helo);
        }
        h
    }
}

impl SessionHelos {
    /// Sessions remembered.
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    /// None remembered?
    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }

    /// A request of `ip`'s session (logged in as `account`, or `""`) said `HELO helo` at `ts`.
    /// Returns how many sessions were dropped to stay within [`MAX_SESSION_HELOS`].
    fn note(&mut self, ts: Ts, ip: IpAddr, account: &str, helo: &str) -> u64 {
        let mut end = helo.len().min(MAX_HELO_LEN);
        while !helo.is_char_boundary(end) {
            end -= 1;
        }
        let k = (ip, account.to_ascii_lowercase());
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some((_, _, old)) = self.by_session.get(&k) {
            self.order.remove(old);
        }
        self.order.insert(seq, k.clone());
        self.by_session
            .insert(k, (ts, helo[..end].to_string(), seq));
        let mut dropped = 0;
        while self.by_session.len() > MAX_SESSION_HELOS {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            self.by_session.remove(&k);
            dropped += 1;
        }
        dropped
    }

    /// Forget sessions whose latest request is [`POLICY_LINK_SECS`] older than `now`.
    fn expire(&mut self, now: Ts) {
        while let Some((_, k)) = self.order.first_key_value() {
            match self.by_session.get(k) {
                Some((ts, _, _)) if ts.secs() + POLICY_LINK_SECS > now.secs() => break,
                _ => {}
            }
            if let Some((_, k)) = self.order.pop_first() {
                self.by_session.remove(&k);
            }
        }
    }

    /// The HELO of `ip`'s session logged in as `account` (or `""`), when its latest request
    /// is within [`POLICY_LINK_SECS`] of the log's `ts` either way (the two clocks are apart).
    fn lookup(&self, ts: Ts, ip: IpAddr, account: &str) -> Option<&str> {
        let (at, helo, _) = self.by_session.get(&(ip, account.to_ascii_lowercase()))?;
        ((at.secs() - ts.secs()).abs() <= POLICY_LINK_SECS).then_some(helo.as_str())
    }
}

/// Claims waiting for their log line, in arrival order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyClaims {
    /// By arrival sequence number.
    pending: BTreeMap<u64, Claim>,
    next_seq: u64,
    /// Latest policy-clock time seen.
    now: Option<Ts>,
    /// Counters.
    stats: ClaimStats,
    /// The client sessions' HELOs from their policy requests.
    #[serde(default)]
    helos: SessionHelos,
    /// Sequence numbers of pending claims by account and address (rebuilt from `pending`).
    #[serde(skip)]
    by_key: BTreeMap<Key, VecDeque<u64>>,
    /// Pending claim of each `instance` (rebuilt from `pending`).
    #[serde(skip)]
    by_instance: BTreeMap<String, u64>,
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

    /// Client sessions whose HELO is remembered.
    pub fn session_helos(&self) -> usize {
        self.helos.len()
    }

    /// A policy request of `ip`'s session (SASL name `account`, `""` when none) said
    /// `HELO helo` at `ts` (policy clock).
    pub fn helo(&mut self, ts: Ts, ip: IpAddr, account: &str, helo: &str) {
        self.advance(ts);
        if helo.is_empty() {
            return;
        }
        self.stats.helo_dropped += self.helos.note(ts, ip, account, helo);
    }

    /// The HELO of the session of a log's `client=` line at `ts` (log clock) from `ip`, logged
    /// in as `account` (`""` when not), if a policy request of that session gave one within
    /// [`POLICY_LINK_SECS`].
    pub fn session_helo(&self, ts: Ts, ip: IpAddr, account: &str) -> Option<&str> {
        self.helos.lookup(ts, ip, account)
    }

    /// A message took its HELO from [`PolicyClaims::session_helo`] (counted).
    pub fn helo_lent(&mut self) {
        self.stats.helo_lent += 1;
    }

    /// Rebuild the indexes after deserializing.
    pub fn reindex(&mut self) {
        self.by_key.clear();
        self.by_instance.clear();
        for (seq, c) in &self.pending {
            self.by_key
                .entry(key(&c.account, c.ip))
                .or_default()
                .push_back(*seq);
            if !c.instance.is_empty() {
                self.by_instance.insert(c.instance.clone(), *seq);
            }
        }
    }

    /// A policy request at `RCPT` state. Returns claims that must be counted now (overflow).
    pub fn request(
        &mut self,
        ts: Ts,
        account: &str,
        ip: Option<IpAddr>,
        instance: &str,
        rcpt: Option<&str>,
    ) -> Vec<Claim> {
        self.advance(ts);
        if let Some(c) = self
            .by_instance
            .get(instance)
            .and_then(|s| self.pending.get_mut(s))
        {
            if let Some(r) = rcpt {
                if c.rcpts.len() < MAX_CLAIM_RCPTS {
                    c.rcpts.push(r.to_string());
                }
            }
            return Vec::new();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.claimed += 1;
        self.by_key
            .entry(key(account, ip))
            .or_default()
            .push_back(seq);
        if !instance.is_empty() {
            self.by_instance.insert(instance.to_string(), seq);
        }
        self.pending.insert(
            seq,
            Claim {
                ts,
                account: account.to_string(),
                ip,
                instance: instance.to_string(),
                rcpts: rcpt.map(str::to_string).into_iter().collect(),
            },
        );
        let mut out = Vec::new();
        while self.pending.len() > MAX_PENDING_CLAIMS {
            let Some(&first) = self.pending.keys().next() else {
                break;
            };
            if let Some(c) = self.remove(first) {
                self.stats.overflowed += 1;
                out.push(c);
            }
        }
        out
    }

    /// The log showed a submission of `account` from `ip`: take the oldest claim it matches.
    /// True when there was one (the log's submission is the one counted).
    pub fn log_submission(&mut self, account: &str, ip: Option<IpAddr>) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let k = key(account, ip);
        let Some(seq) = self.by_key.get(&k).and_then(|q| q.front().copied()) else {
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
        while let Some((&seq, c)) = self.pending.iter().next() {
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
        let seqs: Vec<u64> = self.pending.keys().copied().collect();
        let out: Vec<Claim> = seqs.into_iter().filter_map(|s| self.remove(s)).collect();
        self.stats.policy_only += out.len() as u64;
        out
    }

    fn advance(&mut self, ts: Ts) {
        if self.now.is_none_or(|n| ts > n) {
            self.now = Some(ts);
        }
        if let Some(now) = self.now {
            self.helos.expire(now);
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Claim> {
        let c = self.pending.remove(&seq)?;
        let k = key(&c.account, c.ip);
        if let Some(q) = self.by_key.get_mut(&k) {
            q.retain(|s| *s != seq);
            if q.is_empty() {
                self.by_key.remove(&k);
            }
        }
        if self.by_instance.get(&c.instance) == Some(&seq) {
            self.by_instance.remove(&c.instance);
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
        assert!(c
            .request(t, "Alice", ip("192.0.2.1"), "i.1", Some("x@a"))
            .is_empty());
        // A second recipient of the same transaction joins the claim.
        c.request(t, "Alice", ip("192.0.2.1"), "i.1", Some("y@a"));
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
        );
        c.request(
            Ts::from_secs(1_010),
            "bob",
            ip("192.0.2.1"),
            "i.2",
            Some("y@a"),
        );
        assert!(c
            .due(Ts::from_secs(1_000 + POLICY_LINK_SECS - 1))
            .is_empty());
        let d = c.due(Ts::from_secs(1_000 + POLICY_LINK_SECS));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].rcpts, ["x@a"]);
        // The log line for the second message still finds its claim.
        assert!(c.log_submission("bob", ip("192.0.2.1")));
        assert_eq!(c.stats().policy_only, 1);
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
        );
        assert_eq!(back.len(), 1);
        assert!(back.log_submission("BOB", ip("192.0.2.1")));
    }

    #[test]
    fn session_helos_expire_and_stay_bounded() {
        let mut c = PolicyClaims::default();
        let a = ip("192.0.2.1").unwrap();
        c.helo(Ts::from_secs(1_000), a, "", "pc.example");
        c.helo(Ts::from_secs(1_000), a, "Bob", "laptop");
        assert_eq!(
            c.session_helo(Ts::from_secs(1_002), a, ""),
            Some("pc.example")
        );
        assert_eq!(
            c.session_helo(Ts::from_secs(1_002), a, "bob"),
            Some("laptop")
        );
        assert_eq!(c.session_helo(Ts::from_secs(1_002), a, "eve"), None);
        // Too far from the log's time, either way.
        let far = POLICY_LINK_SECS + 1;
        assert_eq!(c.session_helo(Ts::from_secs(1_000 + far), a, ""), None);
        assert_eq!(c.session_helo(Ts::from_secs(1_000 - far), a, ""), None);
        // The policy clock moving on forgets it.
        c.due(Ts::from_secs(1_000 + POLICY_LINK_SECS));
        assert_eq!(c.session_helos(), 0);
        // A flood of sessions keeps at most MAX_SESSION_HELOS, counting the dropped ones.
        for n in 0..(MAX_SESSION_HELOS as u32 + 10) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            c.helo(Ts::from_secs(5_000), ip, "", &"x".repeat(1000));
        }
        assert_eq!(c.session_helos(), MAX_SESSION_HELOS);
        assert_eq!(c.stats().helo_dropped, 10);
        let last = IpAddr::from(std::net::Ipv4Addr::from(
            0x0a00_0000 + MAX_SESSION_HELOS as u32 + 9,
        ));
        let h = c.session_helo(Ts::from_secs(5_000), last, "").unwrap();
        assert_eq!(h.len(), MAX_HELO_LEN, "cut");
        // They survive serialization.
        let back: PolicyClaims = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.session_helo(Ts::from_secs(5_000), last, ""), Some(h));
    }
}
