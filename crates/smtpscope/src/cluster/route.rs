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

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

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
    messages: HashMap<(String, String), u32>,
    message_order: VecDeque<(String, String)>,
    /// (log host, Message-ID) -> partition of the message that carries it, for filter verdicts
    /// that name their message by Message-ID only (SpamAssassin `spamd`).
    message_ids: HashMap<(String, String), u32>,
    message_id_order: VecDeque<(String, String)>,
    sessions: HashMap<(String, u32), Session>,
    session_order: VecDeque<(String, u32)>,
}

impl Router {
    /// A router over `partitions` partitions.
    pub fn new(partitions: u32) -> Router {
        Router {
            partitions: partitions.max(1),
            messages: HashMap::new(),
            message_order: VecDeque::new(),
            message_ids: HashMap::new(),
            message_id_order: VecDeque::new(),
            sessions: HashMap::new(),
            session_order: VecDeque::new(),
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
        let k = (host.to_string(), qid.to_string());
        if self.messages.insert(k.clone(), p).is_none() {
            self.message_order.push_back(k);
            while self.messages.len() > MAX_MESSAGES {
                match self.message_order.pop_front() {
                    Some(old) => {
                        self.messages.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }

    /// Remember which partition the message carrying `message_id` went to (bounded, oldest
    /// forgotten first, like the queue ids).
    fn remember_message_id(&mut self, host: &str, message_id: &str, p: u32) {
        let k = (host.to_string(), message_id.to_string());
        if self.message_ids.insert(k.clone(), p).is_none() {
            self.message_id_order.push_back(k);
            while self.message_ids.len() > MAX_MESSAGES {
                match self.message_id_order.pop_front() {
                    Some(old) => {
                        self.message_ids.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }

    fn message(&self, host: &str, qid: &str) -> Option<u32> {
        // Only a lookup: no allocation on the hot path would be nicer, but (String, String)
        // keys need owned strings; queue ids are short.
        self.messages
            .get(&(host.to_string(), qid.to_string()))
            .copied()
    }

    fn session(&mut self, host: &str, pid: u32) -> &mut Session {
        let k = (host.to_string(), pid);
        if !self.sessions.contains_key(&k) {
            self.session_order.push_back(k.clone());
            while self.sessions.len() >= MAX_SESSIONS {
                match self.session_order.pop_front() {
                    Some(old) => {
                        self.sessions.remove(&old);
                    }
                    None => break,
                }
            }
        }
        self.sessions.entry(k).or_default()
    }

    /// The session's held lines, then this one, to `p`; the session now goes to `p`.
    fn decide(
        &mut self,
        host: &str,
        pid: Option<u32>,
        p: u32,
        ts: i64,
        line: &str,
        out: &mut Vec<Routed>,
    ) {
        if let Some(pid) = pid {
            let s = self.session(host, pid);
            s.partition = Some(p);
            for (t, text) in s.held.drain(..) {
                out.push(Routed {
                    partition: p,
                    ts: t,
                    text,
                });
            }
        }
        out.push(Routed {
            partition: p,
            ts,
            text: line.to_string(),
        });
    }

    /// Route one parsed line (with its text and resolved event time, µs) into `out`: nothing
    /// for a line without an event (the engine would skip it), one or more lines otherwise
    /// (a session's held lines come out with the line that decides their partition).
    pub fn route(&mut self, p: &Parsed<'_>, ts: i64, line: &str, out: &mut Vec<Routed>) {
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
                    return out.push(Routed {
                        partition: part,
                        ts,
                        text: line.to_string(),
                    });
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
                    self.sessions
                        .get(&(host.to_string(), pid))
                        .and_then(|s| s.partition)
                }) {
                    Some(part) => part,
                    None => self.part(&peer_ip(client).unwrap_or_default()),
                };
                self.decide(host, pid, part, ts, line, out);
                if let Some(pid) = pid {
                    self.sessions.remove(&(host.to_string(), pid));
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
                out.push(Routed {
                    partition: part,
                    ts,
                    text: line.to_string(),
                });
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
                out.push(Routed {
                    partition: part,
                    ts,
                    text: line.to_string(),
                });
            }
            Event::AuthFailure { client, user, .. } => {
                let key = match (peer_ip(client), user) {
                    (Some(net), _) => net,
                    (None, Some(u)) => lower(u),
                    (None, None) => String::new(),
                };
                let part = self.part(&key);
                out.push(Routed {
                    partition: part,
                    ts,
                    text: line.to_string(),
                });
            }
            Event::MessageId { qid, message_id } => {
                let part = self
                    .message(host, qid)
                    .unwrap_or_else(|| self.part(&format!("{host}:{qid}")));
                self.remember_message(host, qid, part);
                self.remember_message_id(host, message_id, part);
                out.push(Routed {
                    partition: part,
                    ts,
                    text: line.to_string(),
                });
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
                        self.message_ids
                            .get(&(host.to_string(), m.to_string()))
                            .copied()
                    })
                };
                let part = by_qid.or_else(by_mid).unwrap_or_else(|| {
                    let key = client.as_ref().and_then(peer_ip).unwrap_or_default();
                    self.part(&key)
                });
                out.push(Routed {
                    partition: part,
                    ts,
                    text: line.to_string(),
                });
            }
            Event::Policy { .. } => {
                // Policy requests come from the policy server ([`Router::policy`]), not logs.
            }
            other => {
                let qid = other.qid().unwrap_or("");
                let part = self
                    .message(host, qid)
                    .unwrap_or_else(|| self.part(&format!("{host}:{qid}")));
                out.push(Routed {
                    partition: part,
                    ts,
                    text: line.to_string(),
                });
                if let Event::Removed { qid } = other {
                    self.messages.remove(&(host.to_string(), qid.to_string()));
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
