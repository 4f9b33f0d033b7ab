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
}
