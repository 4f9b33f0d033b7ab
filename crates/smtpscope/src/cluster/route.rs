//! Which partition an event goes to: the partition of its entity key, so that every event of
//! one account (or one unauthenticated client address) reaches the same worker's engine.
//!
//! The key of a log line is often not on the line itself: a delivery line names the queue id,
//! not the account. The edge therefore follows, with bounded memory, what the engine's
//! correlator follows: which queue id belongs to which key (set by the message's first line that
//! names its submitter: Postfix's `client=… sasl_username=`, a pickup's `from=`, Exim's `<=`),
//! and which SMTP session (host and process id) is on its way to which key. A session's
//! `connect` and HELO lines come before anything names its key, so they are held (at most
//! [`MAX_HELD`] per session) and published just before the line that decides it, in order: the
//! worker's correlator sees the whole session, as a single engine would.
//!
//! | event | key |
//! | --- | --- |
//! | `client=` (Postfix smtpd, pickup), Exim `<=` | SASL user, else client network, else envelope sender |
//! | later lines of the queue id, bounces it causes | the queue id's key |
//! | refusals without a queue id (`NOQUEUE: reject`) | client network |
//! | authentication success and failure (Dovecot, SMTP AUTH) | client network, else user |
//! | policy request | `sasl_username`, else `client_address`'s network |
//! | a queue id never seen begun (log cut) | host and queue id |
//!
//! The partition is `FNV-1a-32(key) mod partitions`, the hash NATS itself uses for its
//! `partition()` subject mapping: fixed by its specification, the same in every build and any
//! language (Rust's `SipHash` is seeded at random per process, and our own `foldhash` seed is
//! fixed only within one build). Accounts and senders are lower-cased first; a client address
//! is keyed by its /24 (IPv4) or /48 (IPv6) network, because auth-bruteforce and
//! incoming-failures count over networks (password spraying from a /24 is one attack).

use std::collections::VecDeque;
use std::net::IpAddr;

use maillog::hash::Map;
use maillog::{Event, Parsed};

/// Most queue ids whose key the router remembers (the oldest is forgotten first; its later
/// lines then go by host and queue id). The engine's own default `max_in_flight` is 2,000,000;
/// a key is about 100 bytes here.
pub const MAX_MESSAGES: usize = 1 << 21;
/// Most SMTP sessions followed at once (a busy MTA has a few thousand).
pub const MAX_SESSIONS: usize = 1 << 16;
/// Most lines held for one session before its key is known (`connect`, HELO, a few refusals'
/// worth); more are published by the client address at once.
pub const MAX_HELD: usize = 8;

/// Longest host-and-id key built on the stack for a look-up (longer ones, rare, on the heap).
const STACK_KEY_BYTES: usize = 256;

/// Bytes of a key's host length prefix ([`with_key`]).
const HOST_LEN_BYTES: usize = 4;

/// A look-up of what the router keeps per host and id (a queue id, a Message-ID, a process id):
/// one byte string, the host's length (4 bytes, little-endian), the host and the id, so that a
/// look-up needs no allocation and no host and id run into another pair (a corrupt log's host
/// may hold any byte, a NUL too).
fn with_key<R>(host: &str, id: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let n = HOST_LEN_BYTES + host.len() + id.len();
    // A line is at most 64 KiB, so its host's length fits; saturate rather than wrap if not.
    let host_len = u32::try_from(host.len()).unwrap_or(u32::MAX).to_le_bytes();
    let fill = |b: &mut [u8]| {
        let (len, rest) = b.split_at_mut(HOST_LEN_BYTES);
        len.copy_from_slice(&host_len);
        let (h, i) = rest.split_at_mut(host.len());
        h.copy_from_slice(host.as_bytes());
        i.copy_from_slice(id);
    };
    if n <= STACK_KEY_BYTES {
        let mut b = [0u8; STACK_KEY_BYTES];
        fill(&mut b[..n]);
        f(&b[..n])
    } else {
        let mut b = vec![0u8; n];
        fill(&mut b);
        f(&b)
    }
}

/// The key [`with_key`] looks up, owned (to insert).
fn owned_key(host: &str, id: &[u8]) -> Box<[u8]> {
    with_key(host, id, |k| Box::from(k))
}

/// A map bounded by dropping its oldest insertions. Each insertion of a new key is numbered,
/// and the insertion order beside the map holds (key, number): an entry whose key was removed,
/// or removed and inserted again since (a process id reused, a queue id seen anew), no longer
/// matches the map's number for that key and is skipped when the oldest is dropped and dropped
/// when the order is pruned, which happens whenever the order holds more than twice the map's
/// keys. So the order stays within a constant of the map's size however keys come and go, a
/// prune leaves exactly the live keys (each once: amortized O(1) per insertion), and eviction
/// drops the key inserted longest ago, never the one being inserted.
#[derive(Debug)]
struct Bounded<V> {
    map: Map<Box<[u8]>, (V, u64)>,
    order: VecDeque<(Box<[u8]>, u64)>,
    /// The number of the next insertion of a new key.
    next: u64,
    cap: usize,
}

/// Keys the insertion order may hold beyond twice the map's before it is pruned, so a small
/// map is not pruned at every insertion.
const ORDER_SLACK: usize = 1_024;

impl<V> Bounded<V> {
    /// At most `cap` keys (at least one).
    fn new(cap: usize) -> Bounded<V> {
        Bounded {
            map: Map::default(),
            order: VecDeque::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    fn get(&self, k: &[u8]) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    fn get_mut(&mut self, k: &[u8]) -> Option<&mut V> {
        self.map.get_mut(k).map(|(v, _)| v)
    }

    fn remove(&mut self, k: &[u8]) -> Option<V> {
        self.map.remove(k).map(|(v, _)| v)
    }

    /// Whether the order's entry `(k, n)` is the insertion the map holds `k` from.
    fn is_current(map: &Map<Box<[u8]>, (V, u64)>, k: &[u8], n: u64) -> bool {
        map.get(k).is_some_and(|(_, m)| *m == n)
    }

    /// Forget the oldest key still held.
    fn evict_oldest(&mut self) {
        while let Some((old, n)) = self.order.pop_front() {
            if Self::is_current(&self.map, &old, n) {
                self.map.remove(&old);
                return;
            }
        }
    }

    /// Insert (or replace: a replaced key keeps its place in the order) `k`, first forgetting
    /// the oldest keys while the map is at its cap; returns the value now under `k`.
    fn insert(&mut self, k: Box<[u8]>, v: V) -> &mut V {
        use std::collections::hash_map::Entry;
        if !self.map.contains_key(&k) {
            while self.map.len() >= self.cap && !self.order.is_empty() {
                self.evict_oldest();
            }
            if self.order.len() >= 2 * self.map.len() + ORDER_SLACK {
                let map = &self.map;
                self.order.retain(|(o, n)| Self::is_current(map, o, *n));
            }
            self.order.push_back((k.clone(), self.next));
        }
        let n = self.next;
        match self.map.entry(k) {
            Entry::Occupied(e) => {
                let slot = e.into_mut();
                slot.0 = v;
                &mut slot.0
            }
            Entry::Vacant(e) => {
                self.next += 1;
                &mut e.insert((v, n)).0
            }
        }
    }
}

/// FNV-1a, 32 bits (offset basis 2166136261, prime 16777619).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The partition of an entity key (already normalized).
pub fn partition(key: &str, partitions: u32) -> u32 {
    fnv1a32(key.as_bytes()) % partitions.max(1)
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// The key of a client address: its /24 (IPv4) or /48 (IPv6) network, as the detectors that
/// count over networks (auth-bruteforce's and incoming-failures' `network` entities) write it,
/// so that they see every address of a network; text that is no address, as is.
fn ip_key(s: &str) -> String {
    let t = s.strip_prefix("IPv6:").unwrap_or(s);
    match t.parse::<IpAddr>() {
        Ok(ip) => detect::bruteforce::network_of(ip),
        Err(_) => t.to_string(),
    }
}

/// One line to publish: its partition, event time (µs) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Partition.
    pub partition: u32,
    /// Event time, µs.
    pub ts: i64,
    /// The line.
    pub text: String,
}

#[derive(Debug, Default)]
struct Session {
    partition: Option<u32>,
    held: Vec<(i64, String)>,
    client: Option<String>,
}

/// The edge's router (see the module doc). Feed it every parsed line in log order.
#[derive(Debug)]
pub struct Router {
    partitions: u32,
    /// (log host, queue id) -> partition of its message.
    messages: Bounded<u32>,
    /// (log host, Message-ID) -> partition of the message that carries it, for filter verdicts
    /// that name their message by Message-ID only (SpamAssassin `spamd`).
    message_ids: Bounded<u32>,
    /// (log host, process id) -> the SMTP session.
    sessions: Bounded<Session>,
}

impl Router {
    /// A router over `partitions` partitions.
    pub fn new(partitions: u32) -> Router {
        Router {
            partitions: partitions.max(1),
            messages: Bounded::new(MAX_MESSAGES),
            message_ids: Bounded::new(MAX_MESSAGES),
            sessions: Bounded::new(MAX_SESSIONS),
        }
    }

    fn part(&self, key: &str) -> u32 {
        partition(key, self.partitions)
    }

    /// Partition of a policy request (its attribute lines).
    pub fn policy(&self, raw: &str) -> u32 {
        let attr = |name: &str| {
            raw.lines().find_map(|l| {
                l.split_once('=')
                    .filter(|(k, v)| *k == name && !v.is_empty())
                    .map(|(_, v)| v)
            })
        };
        self.policy_of(attr("sasl_username"), attr("client_address"))
    }

    /// Partition of a policy request from its SASL name and client address (non-empty, when
    /// given): the account's, else the address's network's.
    pub fn policy_of(&self, sasl_username: Option<&str>, client_address: Option<&str>) -> u32 {
        match (sasl_username, client_address) {
            (Some(u), _) => self.part(&lower(u)),
            (None, Some(ip)) => self.part(&ip_key(ip)),
            (None, None) => 0,
        }
    }

    fn remember_message(&mut self, host: &str, qid: &str, p: u32) {
        let known = with_key(host, qid.as_bytes(), |k| {
            self.messages.get_mut(k).map(|v| *v = p).is_some()
        });
        if !known {
            self.messages.insert(owned_key(host, qid.as_bytes()), p);
        }
    }

    /// Remember which partition the message carrying `message_id` went to (bounded, oldest
    /// forgotten first, like the queue ids).
    fn remember_message_id(&mut self, host: &str, message_id: &str, p: u32) {
        let known = with_key(host, message_id.as_bytes(), |k| {
            self.message_ids.get_mut(k).map(|v| *v = p).is_some()
        });
        if !known {
            self.message_ids
                .insert(owned_key(host, message_id.as_bytes()), p);
        }
    }

    fn message(&self, host: &str, qid: &str) -> Option<u32> {
        with_key(host, qid.as_bytes(), |k| self.messages.get(k).copied())
    }

    fn session(&mut self, host: &str, pid: u32) -> &mut Session {
        let pid = pid.to_le_bytes();
        if with_key(host, &pid, |k| self.sessions.get(k).is_none()) {
            return self
                .sessions
                .insert(owned_key(host, &pid), Session::default());
        }
        with_key(host, &pid, |k| self.sessions.get_mut(k)).expect("looked up just before")
    }

    /// The session's held lines, then this one, to `p`; the session now goes to `p`.
    fn decide(
        &mut self,
        host: &str,
        pid: Option<u32>,
        p: u32,
        ts: i64,
        line: &str,
        out: &mut impl FnMut(u32, i64, &str),
    ) {
        if let Some(pid) = pid {
            let s = self.session(host, pid);
            s.partition = Some(p);
            for (t, text) in s.held.drain(..) {
                out(p, t, &text);
            }
        }
        out(p, ts, line);
    }

    /// Route one parsed line (with its text and resolved event time, µs) into `out`: nothing
    /// for a line without an event (the engine would skip it), one or more lines otherwise
    /// (a session's held lines come out with the line that decides their partition).
    pub fn route(&mut self, p: &Parsed<'_>, ts: i64, line: &str, out: &mut Vec<Routed>) {
        self.route_each(p, ts, line, &mut |partition, ts, text| {
            out.push(Routed {
                partition,
                ts,
                text: text.to_string(),
            })
        });
    }

    /// [`Router::route`], handing each routed line to `out` (partition, event time, text)
    /// instead of copying it (`analyze --partitions` copies it into its batch).
    pub fn route_each(
        &mut self,
        p: &Parsed<'_>,
        ts: i64,
        line: &str,
        out: &mut impl FnMut(u32, i64, &str),
    ) {
        let (Some(h), Some(ev)) = (&p.header, &p.event) else {
            return;
        };
        let host = h.host;
        let pid = h.pid;
        let peer_ip = |c: &maillog::Peer<'_>| c.ip.map(ip_key);
        match ev {
            Event::Connect { client } | Event::Helo { client, .. } => {
                let Some(pid) = pid else {
                    let key = peer_ip(client).unwrap_or_default();
                    let part = self.part(&key);
                    return self.decide(host, None, part, ts, line, out);
                };
                let ip = peer_ip(client);
                let s = self.session(host, pid);
                if matches!(ev, Event::Connect { .. }) {
                    // A new connection of a reused process id starts afresh.
                    s.partition = None;
                    s.held.clear();
                }
                if s.client.is_none() {
                    s.client = ip.clone();
                }
                if let Some(part) = s.partition {
                    return out(part, ts, line);
                }
                if s.held.len() < MAX_HELD {
                    s.held.push((ts, line.to_string()));
                    return;
                }
                let key = ip.unwrap_or_default();
                let part = self.part(&key);
                self.decide(host, Some(pid), part, ts, line, out)
            }
            Event::Disconnect { client, .. } => {
                let part = match pid.and_then(|pid| {
                    with_key(host, &pid.to_le_bytes(), |k| {
                        self.sessions.get(k).and_then(|s| s.partition)
                    })
                }) {
                    Some(part) => part,
                    None => self.part(&peer_ip(client).unwrap_or_default()),
                };
                self.decide(host, pid, part, ts, line, out);
                if let Some(pid) = pid {
                    with_key(host, &pid.to_le_bytes(), |k| self.sessions.remove(k));
                }
            }
            Event::Client {
                qid,
                client,
                sasl_username,
                from,
                ..
            } => {
                let key = match (sasl_username, peer_ip(client), from) {
                    (Some(u), _, _) => lower(u),
                    (None, Some(ip), _) => ip,
                    (None, None, Some(f)) => lower(f),
                    (None, None, None) => format!("{host}:{qid}"),
                };
                let part = self.part(&key);
                self.remember_message(host, qid, part);
                self.decide(host, pid, part, ts, line, out);
            }
            Event::Queued {
                qid,
                from,
                client,
                auth_user,
                parent,
                ..
            } => {
                let part = match self.message(host, qid) {
                    Some(part) => part,
                    None => {
                        let part = match (
                            parent.and_then(|q| self.message(host, q)),
                            auth_user,
                            client.as_ref().and_then(peer_ip),
                        ) {
                            (Some(part), _, _) => part,
                            (None, Some(u), _) => self.part(&lower(u)),
                            (None, None, Some(ip)) => self.part(&ip),
                            (None, None, None) => self.part(&lower(from)),
                        };
                        self.remember_message(host, qid, part);
                        part
                    }
                };
                self.decide(host, pid, part, ts, line, out);
            }
            Event::Notice {
                qid, notice_qid, ..
            } => {
                let part = self
                    .message(host, qid)
                    .unwrap_or_else(|| self.part(&format!("{host}:{qid}")));
                self.remember_message(host, notice_qid, part);
                out(part, ts, line);
            }
            Event::Check {
                qid: None, client, ..
            }
            | Event::Info {
                qid: None, client, ..
            } => {
                let key = client.as_ref().and_then(peer_ip).unwrap_or_default();
                let part = self.part(&key);
                self.decide(host, pid, part, ts, line, out);
            }
            Event::AuthSuccess { client, user, .. } => {
                let key = match peer_ip(client) {
                    Some(net) => net,
                    None => lower(user),
                };
                let part = self.part(&key);
                out(part, ts, line);
            }
            Event::AuthFailure { client, user, .. } => {
                let key = match (peer_ip(client), user) {
                    (Some(net), _) => net,
                    (None, Some(u)) => lower(u),
                    (None, None) => String::new(),
                };
                let part = self.part(&key);
                out(part, ts, line);
            }
            Event::MessageId { qid, message_id } => {
                let part = self
                    .message(host, qid)
                    .unwrap_or_else(|| self.part(&format!("{host}:{qid}")));
                self.remember_message(host, qid, part);
                self.remember_message_id(host, message_id, part);
                out(part, ts, line);
            }
            Event::FilterVerdict {
                qid,
                message_id,
                client,
                ..
            } => {
                // The verdict joins its message (by queue id, else by Message-ID, as the
                // correlator does), so it must reach the message's partition.
                let by_qid = qid.and_then(|q| self.message(host, q));
                let by_mid = || {
                    message_id.and_then(|m| {
                        with_key(host, m.as_bytes(), |k| self.message_ids.get(k).copied())
                    })
                };
                let part = by_qid.or_else(by_mid).unwrap_or_else(|| {
                    let key = client.as_ref().and_then(peer_ip).unwrap_or_default();
                    self.part(&key)
                });
                out(part, ts, line);
            }
            Event::Policy { .. } => {
                // Policy requests come from the policy server ([`Router::policy`]), not logs.
            }
            other => {
                let qid = other.qid().unwrap_or("");
                let part = self
                    .message(host, qid)
                    .unwrap_or_else(|| self.part(&format!("{host}:{qid}")));
                out(part, ts, line);
                if let Event::Removed { qid } = other {
                    with_key(host, qid.as_bytes(), |k| self.messages.remove(k));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maillog::{LineParser, TimeContext};

    #[test]
    fn a_bounded_map_keeps_its_insertion_order_within_a_constant_of_its_keys() {
        // Messages come and go (`removed`) far more often than the cap is reached: the order
        // must not keep every key ever inserted (it did, growing without bound on an edge
        // whose live messages never reached the cap).
        let mut m: Bounded<u32> = Bounded::new(MAX_MESSAGES);
        for i in 0..50_000u32 {
            let k = owned_key("mx1", format!("Q{i}").as_bytes());
            m.insert(k.clone(), i);
            // Pruned at insertion: the bound holds right after one.
            assert!(
                m.order.len() <= 2 * m.map.len() + ORDER_SLACK,
                "order {} for {} keys",
                m.order.len(),
                m.map.len()
            );
            if i % 10 != 0 {
                m.remove(&k);
            }
        }
        assert_eq!(m.map.len(), 5_000);
    }

    #[test]
    fn a_bounded_map_forgets_its_oldest_keys_past_its_cap() {
        let mut m: Bounded<u32> = Bounded::new(100);
        for i in 0..200u32 {
            m.insert(owned_key("mx1", format!("Q{i}").as_bytes()), i);
            assert!(m.map.len() <= 100);
        }
        let has =
            |m: &Bounded<u32>, id: &str| with_key("mx1", id.as_bytes(), |k| m.get(k).is_some());
        assert!(!has(&m, "Q0") && !has(&m, "Q99"));
        assert!(has(&m, "Q100") && has(&m, "Q199"));
        // A key removed and a new one inserted: the map is under its cap, nothing goes.
        with_key("mx1", b"Q150", |k| m.remove(k));
        m.insert(owned_key("mx1", b"new"), 1);
        assert!(has(&m, "new") && has(&m, "Q100"));
        // Past the cap again, the oldest goes.
        m.insert(owned_key("mx1", b"newer"), 2);
        assert!(has(&m, "newer") && !has(&m, "Q100") && has(&m, "Q101"));
        assert_eq!(m.map.len(), 100);
    }

    #[test]
    fn a_key_removed_and_inserted_again_at_the_cap_evicts_the_oldest_other() {
        // The order still names A's first insertion when A comes back at the cap: evicting
        // must skip it, drop B (the oldest key held) and keep A (it used to drop A itself and
        // panic).
        let mut m: Bounded<u32> = Bounded::new(2);
        let k = |id: &str| owned_key("mx1", id.as_bytes());
        let has =
            |m: &Bounded<u32>, id: &str| with_key("mx1", id.as_bytes(), |x| m.get(x).copied());
        m.insert(k("A"), 1);
        with_key("mx1", b"A", |x| m.remove(x));
        m.insert(k("B"), 2);
        m.insert(k("C"), 3);
        assert_eq!(*m.insert(k("A"), 4), 4);
        assert_eq!(has(&m, "A"), Some(4));
        assert_eq!(has(&m, "B"), None);
        assert_eq!(has(&m, "C"), Some(3));
        // C is now the oldest.
        m.insert(k("D"), 5);
        assert_eq!(has(&m, "C"), None);
        assert_eq!((has(&m, "A"), has(&m, "D")), (Some(4), Some(5)));
    }

    #[test]
    fn a_key_inserted_and_removed_over_and_over_keeps_the_order_short() {
        // One process id connecting and disconnecting all day: each insertion is a new entry
        // in the order, and a prune must drop the stale ones (it kept them all while the key
        // was live, so every later insertion pruned the whole order: quadratic).
        let mut m: Bounded<u32> = Bounded::new(MAX_SESSIONS);
        let k = owned_key("mx1", &1u32.to_le_bytes());
        for i in 0..200_000u32 {
            m.insert(k.clone(), i);
            assert!(m.order.len() <= ORDER_SLACK + 2, "{} at {i}", m.order.len());
            m.remove(&k);
        }
        assert!(m.map.is_empty());
    }

    #[test]
    fn a_reused_process_id_at_the_session_cap_is_routed() {
        // smtpd[1] comes and goes, the session table fills to its cap with sessions that never
        // end (a log cut, pids reused), then smtpd[1] connects again while the order's oldest
        // entry is still its first session.
        let mut lines = vec![
            "Nov 20 10:00:00 mx1 postfix/smtpd[1]: connect from unknown[203.0.113.5]".to_string(),
            "Nov 20 10:00:01 mx1 postfix/smtpd[1]: disconnect from unknown[203.0.113.5] ehlo=1 quit=1 commands=2".to_string(),
        ];
        for pid in 2..(MAX_SESSIONS as u32 + 2) {
            lines.push(format!(
                "Nov 20 10:00:02 mx1 postfix/smtpd[{pid}]: connect from unknown[198.51.100.9]"
            ));
        }
        lines.push(
            "Nov 20 10:00:03 mx1 postfix/smtpd[1]: connect from unknown[192.0.2.1]".to_string(),
        );
        lines.push("Nov 20 10:00:04 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <x@example.org>: Relay access denied; from=<a@example.com> to=<x@example.org> proto=ESMTP helo=<h>".to_string());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let out = route_all(&refs, 64);
        let last = out.last().expect("routed");
        assert!(last.text.contains("Relay access denied"), "{last:?}");
        assert_eq!(last.partition, partition("192.0.2.0/24", 64));
    }

    #[test]
    fn a_host_holding_a_nul_does_not_run_into_its_id() {
        let mut m: Bounded<u32> = Bounded::new(10);
        m.insert(owned_key("a\0b", b"c"), 1);
        assert_eq!(with_key("a", b"b\0c", |k| m.get(k).copied()), None);
        assert_eq!(with_key("a\0b", b"c", |k| m.get(k).copied()), Some(1));
    }

    #[test]
    fn a_long_key_is_looked_up_as_a_short_one() {
        let mut m: Bounded<u32> = Bounded::new(10);
        let long = "x".repeat(STACK_KEY_BYTES * 2);
        m.insert(owned_key("mx1", long.as_bytes()), 7);
        m.insert(owned_key("mx1", b"short"), 8);
        assert_eq!(
            with_key("mx1", long.as_bytes(), |k| m.get(k).copied()),
            Some(7)
        );
        assert_eq!(with_key("mx1", b"short", |k| m.get(k).copied()), Some(8));
        // Host and id are kept apart: ("mx1", "2x") is not ("mx12", "x").
        assert_eq!(with_key("mx12", b"x", |k| m.get(k).copied()), None);
    }

    #[test]
    fn fnv1a32_matches_the_published_test_vectors() {
        // From the FNV reference (draft-eastlake-fnv, test vectors for FNV-1a 32).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    fn route_all(lines: &[&str], parts: u32) -> Vec<Routed> {
        let mut parser = LineParser::new(TimeContext::utc(2026));
        let mut r = Router::new(parts);
        let mut out = Vec::new();
        for l in lines {
            let p = parser.parse(l);
            let ts = p.header.as_ref().map(|h| h.ts.0).unwrap_or(0);
            r.route(&p, ts, l, &mut out);
        }
        out
    }

    #[test]
    fn every_line_of_an_authenticated_message_goes_to_its_account() {
        let lines = [
            "Nov 20 10:00:00 mx1 postfix/submission/smtpd[100]: connect from unknown[203.0.113.5]",
            "Nov 20 10:00:01 mx1 postfix/submission/smtpd[100]: 4AB12C3D4E: client=unknown[203.0.113.5], sasl_method=LOGIN, sasl_username=Taro@Example.JP",
            "Nov 20 10:00:01 mx1 postfix/cleanup[200]: 4AB12C3D4E: message-id=<x@y>",
            "Nov 20 10:00:01 mx1 postfix/qmgr[300]: 4AB12C3D4E: from=<taro@example.jp>, size=100, nrcpt=1 (queue active)",
            "Nov 20 10:00:02 mx1 postfix/smtp[400]: 4AB12C3D4E: to=<a@b.example>, relay=b.example[198.51.100.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)",
            "Nov 20 10:00:02 mx1 postfix/qmgr[300]: 4AB12C3D4E: removed",
            "Nov 20 10:00:03 mx1 postfix/submission/smtpd[100]: disconnect from unknown[203.0.113.5] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6",
        ];
        let out = route_all(&lines, 64);
        assert_eq!(out.len(), lines.len(), "{out:?}");
        let want = partition("taro@example.jp", 64);
        assert!(out.iter().all(|r| r.partition == want), "{out:?}");
        // The held connect line comes out first, before the client= line: order kept.
        let texts: Vec<&str> = out.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, lines);
    }

    #[test]
    fn unauthenticated_refusals_go_by_client_address() {
        let lines = [
            "Nov 20 10:00:00 mx1 postfix/smtpd[101]: connect from unknown[198.51.100.9]",
            "Nov 20 10:00:01 mx1 postfix/smtpd[101]: NOQUEUE: reject: RCPT from unknown[198.51.100.9]: 550 5.1.1 <x@example.jp>: Recipient address rejected: User unknown in local recipient table; from=<s@spam.example> to=<x@example.jp> proto=ESMTP helo=<bot>",
            "Nov 20 10:00:02 mx1 postfix/smtpd[101]: disconnect from unknown[198.51.100.9]",
        ];
        let out = route_all(&lines, 16);
        assert_eq!(out.len(), 3, "{out:?}");
        let want = partition("198.51.100.0/24", 16);
        assert!(out.iter().all(|r| r.partition == want), "{out:?}");
    }

    #[test]
    fn filter_verdicts_go_with_the_message_they_judge() {
        let lines = [
            "Dec  2 09:01:00 mx1 postfix/smtpd[2001]: 7C8D9E0F1A: client=unknown[198.51.100.7]",
            "Dec  2 09:01:00 mx1 postfix/cleanup[2002]: 7C8D9E0F1A: message-id=<spam-1@bulk.example>",
            "Dec  2 09:01:01 mx1 spamd[4100]: spamd: result: Y 14 - BAYES_99 scantime=0.9,size=4260,user=spamass-milter,uid=117,required_score=5.0,rhost=localhost,raddr=127.0.0.1,rport=44944,mid=<spam-1@bulk.example>,autolearn=no",
            "Dec  2 09:01:02 mx1 rspamd[4200]: <ed2abb>; task; rspamd_task_write_log: id: <other@example.com>, qid: <7C8D9E0F1A>, ip: 198.51.100.7, from: <x@example.com>, (default: T (reject): [16.20/15.00] [BAYES_SPAM(5.10){99.9%;}]), len: 2048, time: 120.5ms, dns req: 12, digest: <0123abcd>, rcpts: <dave@example.org>, mime_rcpts: <dave@example.org>",
        ];
        for parts in [7, 16, 64] {
            let out = route_all(&lines, parts);
            assert_eq!(out.len(), lines.len(), "{out:?}");
            let want = partition("198.51.100.0/24", parts);
            assert!(out.iter().all(|r| r.partition == want), "{parts}: {out:?}");
        }
        // A verdict naming no known message goes by its client address.
        let lone = ["Dec  2 09:03:01 mx1 rspamd[4200]: <ed2abb>; task; rspamd_task_write_log: id: <spam-3@example.com>, qid: <8A9B0C1D2E>, ip: 203.0.113.9, from: <x@example.com>, (default: T (reject): [16.20/15.00] [BAYES_SPAM(5.10){99.9%;}]), len: 2048, time: 120.5ms, dns req: 12, digest: <0123abcd>, rcpts: <dave@example.org>, mime_rcpts: <dave@example.org>"];
        let out = route_all(&lone, 64);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].partition, partition("203.0.113.0/24", 64));
    }

    #[test]
    fn policy_requests_go_with_their_account() {
        let r = Router::new(64);
        let raw = "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=203.0.113.5\nsasl_username=taro@example.jp\n";
        assert_eq!(r.policy(raw), partition("taro@example.jp", 64));
        let raw = "request=smtpd_access_policy\nclient_address=203.0.113.5\nsasl_username=\n";
        assert_eq!(r.policy(raw), partition("203.0.113.0/24", 64));
    }
}
