//! The engine: one code path from events to alerts, for `analyze` (batch) and `serve` (real time).
//!
//! It owns the correlator and every detector, and is a pure function of the event stream: time
//! comes only from the events. Feed it lines' events in log order with [`Engine::feed`], call
//! [`Engine::finish`] at the end of a batch, and take alerts with [`Engine::take_alerts`].

use std::net::IpAddr;

use maillog::record::{Correlator, MessageRecord, Origin, Outcome};
use maillog::{Action, Event, Ts};
use serde::Serialize;

use crate::alert::{Alert, Detector, Entity, EntityKind};
use crate::bounded::BoundedMap;
use crate::bruteforce::Bruteforce;
use crate::campaign::Campaigns;
use crate::claims::{Claim, ClaimStats, PolicyClaims};
use crate::cold::PackWork;
use crate::config::Config;
use crate::extrusion::Extrusion;
use crate::helo::{HeloDetector, Observation};
use crate::hijack::{Baseline, Hijack, Send};
use crate::incoming::{is_unknown_user, Incoming, Seen};
use crate::snapshot::SnapshotError;

/// The geo database an engine uses: the built-in one, or one the operator loaded.
#[derive(Debug, Clone)]
pub enum GeoRef {
    /// `geo::GeoDb::builtin()`, decoded at the first look-up (or beforehand on another thread,
    /// [`geo::GeoDb::decode_builtin_in_background`]): making an engine costs no decoding, so a
    /// run's reading and parsing can start while the table is decoded.
    Builtin,
    /// A loaded or overridden database.
    Owned(std::sync::Arc<geo::GeoDb>),
}

impl GeoRef {
    /// Have the built-in table decoded on a thread of its own from now, for a caller with other
    /// start-up work ([`geo::GeoDb::decode_builtin_in_background`]); a loaded database is
    /// decoded already, so nothing is done for it.
    pub fn decode_in_background(&self) {
        if let GeoRef::Builtin = self {
            geo::GeoDb::decode_builtin_in_background();
        }
    }
}

impl std::ops::Deref for GeoRef {
    type Target = geo::GeoDb;
    fn deref(&self) -> &geo::GeoDb {
        match self {
            GeoRef::Builtin => geo::GeoDb::builtin(),
            GeoRef::Owned(g) => g,
        }
    }
}

/// Saved engine state (`analyze --state`, the service's store): per-account baselines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Event time the state was taken at.
    pub taken_at: i64,
    /// Account baselines.
    pub baselines: Vec<(String, Baseline)>,
}

impl State {
    /// Merge a newer snapshot into this saved state: the newer baseline of an account replaces
    /// the older one; a baseline absent from the snapshot (evicted from memory, or not seen in
    /// this run) is kept. Sorted by account, as snapshots are.
    pub fn merge(&mut self, newer: State) {
        let mut all: std::collections::BTreeMap<String, Baseline> =
            std::mem::take(&mut self.baselines).into_iter().collect();
        all.extend(newer.baselines);
        self.baselines = all.into_iter().collect();
        self.version = newer.version;
        self.taken_at = self.taken_at.max(newer.taken_at);
    }
}

/// Which way a message went, as far as the log tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sent by one of our users or customers (authenticated, from our networks, relayed out, or
    /// submitted locally).
    Outgoing,
    /// Mail from the internet for local mailboxes.
    Incoming,
    /// Bounces and notifications made by the MTA, and pre-filter copies.
    Internal,
}

/// State the engine dropped to stay within its caps (`[detect.limits]` and the correlator's
/// messages in flight), counted since the state began (a restored checkpoint carries the counts
/// on). Forgetting state can delay a detection, never invent one; these show when the caps bite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Evictions {
    /// Messages closed early because too many were in flight.
    pub messages: u64,
    /// Accounts whose hijack state was dropped.
    pub hijack_accounts: u64,
    /// …of which had a learned baseline.
    pub hijack_established: u64,
    /// Entities whose extrusion state was dropped.
    pub extrusion_entities: u64,
    /// Entities whose HELO state was dropped.
    pub helo_entities: u64,
    /// Accounts whose password-guessing state was dropped.
    pub brute_accounts: u64,
    /// Attacker addresses, networks and guessed names dropped from the password-guessing tables.
    pub brute_attackers: u64,
}

/// Engine counters.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct EngineStats {
    /// Events fed.
    pub events: u64,
    /// Message records completed.
    pub records: u64,
    /// …outgoing.
    pub outgoing: u64,
    /// …incoming.
    pub incoming: u64,
    /// …internal (bounces, notifications, pre-filter copies).
    pub internal: u64,
    /// Recipients failed in outgoing mail.
    pub failed_recipients: u64,
    /// Recipients delivered in outgoing mail.
    pub delivered_recipients: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Latest event time seen.
    #[serde(skip)]
    pub last_ts: Option<Ts>,
    /// Earliest event time seen.
    #[serde(skip)]
    pub first_ts: Option<Ts>,
}

/// What we learned about an unauthenticated client outside the configured networks.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Customer {
    /// Distinct recipient domains it relayed to (hashes, capped).
    domains: Vec<u64>,
    /// Known to be ours.
    ours: bool,
}

fn domain_hash(addr: &str) -> u64 {
    let d = maillog::event::domain_of(addr).unwrap_or("");
    maillog::hash::str_key_ci(d)
}

/// Most host names learned from log headers as "our names".
const MAX_OWN_NAMES: usize = 64;

/// The endings of Postfix's "User unknown in … table" refusals, lower case. Postfix looks a
/// recipient up in these tables only when its domain is one it receives mail for (local,
/// virtual mailbox, virtual alias or relay domain: `ADDRESS_REWRITING_README`, "Recipient
/// address validation"), so such a refusal names one of our own domains even when the
/// configuration does not list it in `local_domains`.
pub const OWN_DOMAIN_REFUSALS: &[&str] = &[
    "in local recipient table",
    "in virtual mailbox table",
    "in virtual alias table",
    "in relay recipient table",
];

/// Whether our own server refused a recipient as an unknown user of one of our domains.
fn refused_as_our_unknown_user(outcome: Outcome, reply: Option<&str>) -> bool {
    outcome == Outcome::Rejected
        && reply.is_some_and(|r| {
            let r = r.to_ascii_lowercase();
            OWN_DOMAIN_REFUSALS.iter().any(|p| r.contains(p))
        })
}

/// Whether `addr` is in one of `[network] local_domains`.
fn is_local_domain(cfg: &Config, addr: &str) -> bool {
    let d = maillog::event::domain_of(addr).unwrap_or("");
    cfg.network
        .local_domains
        .iter()
        .any(|l| l.eq_ignore_ascii_case(d))
}

/// Whether every recipient of a record is one of our mailboxes (delivered locally, in a local
/// domain, or an alias we forward).
fn for_our_mailboxes(cfg: &Config, r: &MessageRecord) -> bool {
    !r.recipients.is_empty()
        && r.recipients.iter().all(|x| {
            x.is_local_delivery()
                || x.is_forwarded()
                || is_local_domain(cfg, x.addr())
                || refused_as_our_unknown_user(x.outcome, x.reply())
        })
}

/// Why an unauthenticated client is taken for a customer of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CustomerBasis {
    /// Its address is in `[network] own_networks`.
    OwnNetworks,
    /// It relayed mail out to `auto_customer_domains` remote domains through us.
    Relayed,
    /// Only its autonomous system: one where `auto_own_asn_customers` confirmed customers sit.
    SameAs,
}

/// What [`Engine::snapshot`] writes (borrowed); [`SnapshotOwned`] is what it reads back. The
/// two must have the same fields in the same order.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    corr: &'a Correlator,
    extrusion: &'a Extrusion,
    helo: &'a HeloDetector,
    own_names: &'a Vec<String>,
    customers: &'a BoundedMap<IpAddr, Customer>,
    own_asns: &'a maillog::hash::Map<u32, u64>,
    hijack: &'a Hijack,
    brute: &'a Bruteforce,
    campaigns: &'a Campaigns,
    incoming: &'a Incoming,
    claims: &'a PolicyClaims,
    stats: &'a EngineStats,
    /// [`EngineStats`]' times are left out of its JSON form, so they travel here.
    first_ts: Option<Ts>,
    last_ts: Option<Ts>,
}

/// See [`SnapshotRef`].
#[derive(serde::Deserialize)]
struct SnapshotOwned {
    corr: Correlator,
    extrusion: Extrusion,
    helo: HeloDetector,
    own_names: Vec<String>,
    customers: BoundedMap<IpAddr, Customer>,
    own_asns: maillog::hash::Map<u32, u64>,
    hijack: Hijack,
    brute: Bruteforce,
    campaigns: Campaigns,
    incoming: Incoming,
    claims: PolicyClaims,
    stats: EngineStats,
    first_ts: Option<Ts>,
    last_ts: Option<Ts>,
}

/// The detection engine.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    corr: Correlator,
    /// Every detector: here, or on their own thread (see [`Engine::detectors_on_thread`]), in
    /// which case this is an empty stand-in.
    det: Detectors,
    /// The thread running [`Engine::det`]'s work, when there is one.
    off: Option<Offload>,
    /// Work items handed to [`Detectors`] so far (orders alerts; see [`Offload`]).
    ops: u64,
    own_names: Vec<String>,
    customers: BoundedMap<IpAddr, Customer>,
    own_asns: maillog::hash::Map<u32, u64>,
    geo: GeoRef,
    /// Policy requests' messages waiting for their log line (see [`crate::claims`]).
    claims: PolicyClaims,
    /// Claims a policy request made due (overflow), kept empty between requests: its memory
    /// is reused, not allocated per request.
    overflowed: Vec<Claim>,
    /// Alerts not taken yet, each with its place in the engine's order (see [`Offload`]).
    alerts: Vec<(u64, Alert)>,
    stats: EngineStats,
    records_buf: Vec<MessageRecord>,
    /// The records the correlator closed, while the detectors take them
    /// ([`Engine::closed_records`]): one vector kept, not one made for every closing line.
    closing: Vec<MessageRecord>,
    keep_records: bool,
    /// Entities whose state was packed after the last sweep ([`Engine::packed`]).
    packed: Frozen,
    /// A log may reach this engine: policy requests' HELOs are kept to lend to its messages
    /// (false after [`Engine::policy_only`]).
    reads_log: bool,
}

impl Engine {
    /// An engine with these settings and the built-in geo database.
    pub fn new(cfg: Config) -> Self {
        Self::with_geo(cfg, GeoRef::Builtin)
    }

    /// An engine with these settings and this geo database.
    pub fn with_geo(cfg: Config, geo: GeoRef) -> Self {
        let own_names: Vec<String> = cfg
            .network
            .own_names
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        Engine {
            corr: Correlator::new(cfg.limits.max_in_flight),
            det: Detectors::new(&cfg, &geo, &own_names),
            off: None,
            ops: 0,
            packed: Frozen::default(),
            customers: BoundedMap::new(cfg.limits.max_entities),
            own_asns: Default::default(),
            geo,
            claims: PolicyClaims::default(),
            overflowed: Vec::new(),
            own_names,
            cfg,
            alerts: Vec::new(),
            stats: EngineStats::default(),
            records_buf: Vec::new(),
            closing: Vec::new(),
            keep_records: false,
            reads_log: true,
        }
    }

    /// Settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// No log reaches this engine, only policy requests (`serve` with a policy server and no
    /// syslog listener or followed file): their HELOs, which the claims keep only to lend to
    /// the log's messages ([`crate::claims::SessionHelos`]), are not kept. Nothing else
    /// changes: the claims are made and counted as before, and no detector reads those HELOs
    /// but through a log's message. A deployment setting, like [`Engine::detectors_on_thread`],
    /// not part of the snapshot.
    pub fn policy_only(&mut self) {
        self.reads_log = false;
    }

    /// Keep completed records for [`Engine::take_records`] (for `parse --records`).
    pub fn keep_records(&mut self, on: bool) {
        self.keep_records = on;
    }

    /// Counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Correlator counters.
    pub fn correlator_stats(&self) -> &maillog::record::CorrelatorStats {
        self.corr.stats()
    }

    /// Alerts raised since the last call.
    ///
    /// While the detectors run on their own thread ([`Engine::detectors_on_thread`]), these are
    /// the alerts whose place in the order is settled (every earlier piece of work is done);
    /// the rest come with a later call, at the latest after [`Engine::finish`]. Together, in
    /// order, they are exactly the alerts of an engine without the thread.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        let mut alerts = Vec::new();
        self.take_alerts_into(&mut alerts);
        alerts
    }

    /// [`Engine::take_alerts`], appended to `out`. Called for every line by `analyze`: a
    /// vector returned for every line, nearly always empty, took about 26 instructions a line
    /// to drop (docs/PERFORMANCE.md).
    #[inline]
    pub fn take_alerts_into(&mut self, out: &mut Vec<Alert>) {
        if self.off.is_none() {
            if !self.alerts.is_empty() {
                out.extend(self.alerts.drain(..).map(|(_, a)| a));
            }
            return;
        }
        self.merge_settled_alerts(out);
    }

    /// The alerts whose place in the order is settled, with the detector thread on
    /// ([`Engine::take_alerts`]), appended to `out` in order.
    fn merge_settled_alerts(&mut self, out: &mut Vec<Alert>) {
        self.poll_worker();
        let Some(off) = &mut self.off else {
            unreachable!("called with the detector thread on")
        };
        // Ours (even places) are settled up to the work the thread has finished; the thread's
        // (odd places) all are.
        let settled = if off.batch.is_empty() && off.done == off.sent {
            u64::MAX
        } else {
            off.done.saturating_mul(2)
        };
        // Nothing settled (ours wait for the thread's work before them): nothing to merge.
        // Returned before the merge's iterators are made, since this is called for every line
        // and an alert of ours can wait for thousands of them.
        if off.alerts.is_empty() && self.alerts.first().is_none_or(|(k, _)| *k > settled) {
            return;
        }
        let n = self.alerts.partition_point(|(k, _)| *k <= settled);
        let mut ours = self.alerts.drain(..n).peekable();
        let mut theirs = off.alerts.drain(..).peekable();
        out.reserve(n + theirs.len());
        loop {
            let take_ours = match (ours.peek(), theirs.peek()) {
                (Some((a, _)), Some((b, _))) => a < b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_ours {
                ours.next()
            } else {
                theirs.next()
            };
            out.extend(next.map(|(_, a)| a));
        }
    }

    /// Records completed since the last call (only with [`Engine::keep_records`]).
    pub fn take_records(&mut self) -> Vec<MessageRecord> {
        std::mem::take(&mut self.records_buf)
    }

    /// Feed one event from a line of `host` (log host), `program` and `pid`, at `ts`.
    ///
    /// A policy request ([`Event::Policy`]) goes to [`Engine::feed_policy`]: it is stamped by
    /// the policy clock and never moves the log's event time.
    pub fn feed(&mut self, ts: Ts, host: &str, program: &str, pid: Option<u32>, ev: &Event<'_>) {
        if matches!(ev, Event::Policy { .. }) {
            self.feed_policy(ts, ev);
            return;
        }
        self.stats.events += 1;
        if self.stats.first_ts.is_none_or(|f| ts < f) {
            self.stats.first_ts = Some(ts);
        }
        if self.stats.last_ts.is_none_or(|l| ts > l) {
            self.stats.last_ts = Some(ts);
        }
        // Every name kept is lower-case, so comparing without case finds the same ones as
        // comparing the lower-cased host, without a `String` per event; the plain comparison
        // first, as logs name their hosts in lower case (it was 0.7% of `analyze`'s
        // instructions, once per line).
        if !host.is_empty()
            && self.own_names.len() < MAX_OWN_NAMES
            && !self.own_names.iter().any(|n| {
                maillog::bytes::same(n.as_bytes(), host.as_bytes()) || n.eq_ignore_ascii_case(host)
            })
        {
            let name = host.to_ascii_lowercase();
            self.own_names.push(name.clone());
            self.dispatch(Op::OwnName(name));
        }
        self.direct(ts, program, ev);
        self.corr.feed(ts, host, pid, ev);
        self.lend_session_helo(ts, host, ev);
        self.closed_records();
    }

    /// Run the detectors on the records the correlator closed. Most lines close none: then
    /// nothing is made or walked (collecting the correlator's empty output after every line
    /// was about 90 instructions a line, 2.5% of the engine thread's with two threads).
    fn closed_records(&mut self) {
        if !self.corr.has_closed() {
            return;
        }
        let mut recs = std::mem::take(&mut self.closing);
        self.corr.take_closed_into(&mut recs);
        for r in recs.drain(..) {
            self.on_record(r);
        }
        self.closing = recs;
    }

    /// Feed one policy request, stamped `ts` by the policy clock (its arrival). Its message is
    /// claimed and counted once: from the log when the log shows it within
    /// [`crate::claims::POLICY_LINK_SECS`], else from the request (see [`crate::claims`]).
    ///
    /// Any request's `helo_name` is kept as the HELO of its SMTP transaction, with its sender
    /// (see [`crate::claims`]): Postfix logs none for the mail it accepts, so the log's message
    /// of that transaction takes it for helo-anomaly and incoming-helo.
    pub fn feed_policy(&mut self, ts: Ts, ev: &Event<'_>) {
        let Event::Policy {
            client,
            helo,
            sasl_username,
            recipient,
            protocol_state,
            instance,
            sender,
            ..
        } = ev
        else {
            return;
        };
        let ip = client.ip.and_then(maillog::ip::parse_logged);
        if let (Some(ip), Some(h)) = (ip, helo) {
            let account = sasl_username.unwrap_or("");
            let instance = instance.unwrap_or("");
            if self.reads_log {
                self.claims.helo(ts, ip, account, instance, *sender, h);
            } else {
                self.claims.advance(ts);
            }
        }
        let Some(user) = sasl_username else {
            return;
        };
        self.policy_tick(ts);
        // One message per transaction: Postfix gives every request of one SMTP transaction the
        // same `instance`; the message is claimed at its first RCPT.
        if user.is_empty() || *protocol_state != "RCPT" {
            return;
        }
        let mut now = std::mem::take(&mut self.overflowed);
        self.claims
            .request(ts, user, ip, instance.unwrap_or(""), *recipient, &mut now);
        self.count_claims(now.drain(..));
        self.overflowed = now;
    }

    /// A log's `from=` line (Postfix's qmgr) of a message received over SMTP: when the log gave
    /// the message no HELO (Postfix logs none for mail it accepts), it takes its own
    /// transaction's HELO from the policy requests: same address and SASL name, same sender,
    /// within [`crate::claims::POLICY_LINK_SECS`] (see [`crate::claims::SessionHelos`]). Not at
    /// the `client=` line, which comes before the sender is known: the log lags the requests,
    /// and by then later sessions of the same address may have given their own HELOs.
    fn lend_session_helo(&mut self, ts: Ts, host: &str, ev: &Event<'_>) {
        let Event::Queued {
            qid,
            from,
            helo: None,
            parent: None,
            ..
        } = ev
        else {
            return;
        };
        // None kept (a log read without policy requests): nothing to look up.
        if self.claims.session_helos() == 0 {
            return;
        }
        let Some(r) = self.corr.in_flight_record(host, qid) else {
            return;
        };
        let (Origin::Smtp, None, Some(ip)) = (&r.origin, &r.helo, r.client_ip) else {
            return;
        };
        let account = r.auth_user.as_deref().unwrap_or_default();
        let Some(h) = self.claims.session_helo(ts, ip, account, from) else {
            return;
        };
        let h = h.to_string();
        if self.corr.hint_helo(host, qid, &h) {
            self.claims.helo_lent();
        }
    }

    /// Move the policy clock to `now` (the service's tick): count the policy requests' messages
    /// that no log line took in time.
    pub fn policy_tick(&mut self, now: Ts) {
        let due = self.claims.due(now);
        self.count_claims(due);
    }

    /// De-duplication counters of policy requests and log lines.
    pub fn claim_stats(&self) -> ClaimStats {
        self.claims.stats()
    }

    fn count_claims(&mut self, claims: impl IntoIterator<Item = Claim>) {
        for c in claims {
            let rcpts: Vec<&str> = c.rcpts().collect();
            self.send(c.ts, c.account(), c.ip, 1, &rcpts, 0);
        }
    }

    /// An SMTP AUTH login seen in the log (a `client=… sasl_username=` line, or Exim's `A=`):
    /// a success for auth-bruteforce, and a submission the policy claims may be waiting for.
    fn smtp_login(&mut self, ts: Ts, ip: Option<IpAddr>, user: &str) {
        self.login(Login {
            ts,
            ip,
            user: Some(user),
            service: maillog::Service::Smtp,
            ok: true,
        });
        self.log_submission(ts, user, ip);
    }

    /// A login or failed login for auth-bruteforce (and auth-hijack's count of failed logins),
    /// which run with the [`Detectors`] ([`Engine::hand`]).
    fn login(&mut self, l: Login<'_>) {
        self.hand(
            |det, out| det.login(&l, out),
            || Op::Login(Box::new(LoginOp::from(&l))),
        );
    }

    /// The log showed `user` submitting a message from `ip`: counted from the log, taking the
    /// policy request's claim on it if there is one.
    fn log_submission(&mut self, ts: Ts, user: &str, ip: Option<IpAddr>) {
        self.claims.log_submission(user, ip);
        self.send(ts, user, ip, 1, &[], 0);
    }

    /// Close every message in flight (end of batch input) and run the detectors on them; count
    /// every policy claim still waiting.
    pub fn finish(&mut self) {
        let rest = self.claims.drain();
        self.count_claims(rest);
        self.corr.finish();
        self.closed_records();
        self.detectors_back();
    }

    /// Close messages idle for `secs` of event time (real-time service housekeeping).
    ///
    /// Also packs the detector state of accounts and clients idle for `[detect.limits]
    /// pack_idle_after` (memory only: detection is the same; `0s` never).
    pub fn flush_idle(&mut self, secs: i64) {
        self.corr.flush_idle(secs);
        self.closed_records();
        let after = self.cfg.limits.pack_idle_after.0;
        if let (Some(now), true) = (self.stats.last_ts, after > 0) {
            self.dispatch(Op::Freeze(crate::cold::Sweep::at(now, after)));
            self.packed = self.frozen_at_sweep();
        }
    }

    /// Entities whose state was packed, as counted after the last sweep of
    /// [`Engine::flush_idle`] (counting them walks every table, so it is done once a sweep; a
    /// gauge for `serve`). Extrusion's and helo-anomaly's are 0 while the detectors run on
    /// their own thread.
    pub fn packed(&self) -> Frozen {
        self.packed
    }

    /// Pack the detector state of the accounts and clients not touched since `before`
    /// ([`crate::cold`]): memory only, detection is the same ([`Engine::flush_idle`] calls it
    /// for those idle `[detect.limits] pack_idle_after`).
    ///
    /// Every detector's state is in the engine's `Detectors` and packed there; on their own
    /// thread it is packed uncompressed and compressed on this one (`Packs`).
    pub fn freeze_idle(&mut self, before: Ts) {
        self.dispatch(Op::Freeze(before.into()));
    }

    /// Entities whose state is packed ([`Engine::freeze_idle`]): auth-hijack's accounts,
    /// auth-bruteforce's, extrusion's and helo-anomaly's entities (read only after
    /// [`Engine::finish`] when the detectors run on their own thread).
    pub fn frozen(&self) -> Frozen {
        let swept = |p: crate::cold::Packing| crate::cold::Swept {
            frozen: p.frozen,
            dictionary_bytes: p.dictionary_bytes,
        };
        Frozen::of([
            swept(self.det.hijack.packing()),
            swept(self.det.brute.packing()),
            swept(self.det.extrusion.packing()),
            swept(self.det.helo.packing()),
        ])
    }

    /// [`Engine::frozen`] as the last sweep counted it in its own walk of the tables: the same
    /// numbers right after a sweep, without walking every table again (that walk was 0.4% of
    /// `analyze`'s instructions on the benchmark log).
    fn frozen_at_sweep(&self) -> Frozen {
        Frozen::of([
            self.det.hijack.swept(),
            self.det.brute.swept(),
            self.det.extrusion.swept(),
            self.det.helo.swept(),
        ])
    }

    fn in_own_networks(&self, ip: IpAddr) -> bool {
        self.cfg.network.own_networks.iter().any(|n| n.contains(ip))
    }

    fn is_local_domain(&self, addr: &str) -> bool {
        is_local_domain(&self.cfg, addr)
    }

    /// Learn from a record whether its unauthenticated client is one of ours: it is when it
    /// relayed mail out to at least `auto_customer_domains` distinct remote recipient domains (an
    /// inbound MX only accepts mail for its own few domains, so internet clients seldom do).
    fn learn_customer(&mut self, r: &MessageRecord) {
        if r.auth_user.is_some() || r.is_null_sender() || matches!(r.origin, Origin::Notice(_)) {
            return;
        }
        let Some(ip) = r.client_ip.filter(|i| self.may_be_customer(*i)) else {
            return;
        };
        let need = self.cfg.network.auto_customer_domains;
        if need == 0 {
            return;
        }
        let remote: Vec<u64> = r
            .recipients
            .iter()
            .filter(|x| {
                !x.is_local_delivery()
                    && !self.is_local_domain(x.addr())
                    && x.outcome != Outcome::Filtered
                    // Mail for our own users that we forward elsewhere is not relayed for the
                    // client: an internet sender writing to three users who forward to three
                    // freemail providers is not our customer.
                    && !x.is_forwarded()
            })
            .map(|x| domain_hash(x.addr()))
            .collect();
        if remote.is_empty() {
            return;
        }
        let c = self
            .customers
            .get_or_insert_with(&ip, r.finished, Customer::default);
        for d in remote {
            if !c.domains.contains(&d) && c.domains.len() < 16 {
                c.domains.push(d);
            }
        }
        if c.domains.len() >= need && !c.ours {
            c.ours = true;
            // An autonomous system that hosts several confirmed customers is our own access
            // network: its other addresses are customers too (a bot on a customer line may be
            // refused before it ever relays a message).
            if let (_, Some(asn)) = self.geo.lookup_fast(ip) {
                if self.own_asns.len() < 1024 || self.own_asns.contains_key(&asn) {
                    *self.own_asns.entry(asn).or_default() += 1;
                }
            }
        }
    }

    /// A loopback client is this host itself (a content filter re-injecting, a local script):
    /// never a customer, unless the operator put it in `own_networks` (a test bed, or customers
    /// behind a local proxy).
    fn may_be_customer(&self, ip: IpAddr) -> bool {
        !ip.is_loopback() || self.in_own_networks(ip)
    }

    /// Why an unauthenticated client is taken for one of ours, if it is.
    fn customer_basis(&self, ip: IpAddr) -> Option<CustomerBasis> {
        if self.in_own_networks(ip) {
            return Some(CustomerBasis::OwnNetworks);
        }
        if self.customers.get(&ip).is_some_and(|c| c.ours) {
            return Some(CustomerBasis::Relayed);
        }
        let need = self.cfg.network.auto_own_asn_customers;
        let in_own_as = need > 0
            && !self.own_asns.is_empty()
            && self
                .geo
                .lookup_fast(ip)
                .1
                .and_then(|a| self.own_asns.get(&a))
                .is_some_and(|n| *n >= need);
        in_own_as.then_some(CustomerBasis::SameAs)
    }

    /// Direction of a record and the entity that submitted it.
    pub fn classify(&self, r: &MessageRecord) -> (Direction, Option<Entity>) {
        if matches!(r.origin, Origin::Notice(_)) || r.is_null_sender() {
            return (Direction::Internal, None);
        }
        if !r.recipients.is_empty() && r.recipients.iter().all(|x| x.outcome == Outcome::Filtered) {
            return (Direction::Internal, None);
        }
        if let Some(u) = &r.auth_user {
            return (
                Direction::Outgoing,
                Some(Entity::new(EntityKind::Account, u.clone())),
            );
        }
        if let Some(ip) = r.client_ip.filter(|i| self.may_be_customer(*i)) {
            if let Some(basis) = self.customer_basis(ip) {
                // Only the AS says this address is ours, and it writes only to our own
                // mailboxes, as any internet server does: the AS may be a cloud or a big
                // provider where a few customers happen to sit, so it is an incoming host.
                if basis == CustomerBasis::SameAs && for_our_mailboxes(&self.cfg, r) {
                    return (Direction::Incoming, None);
                }
                return (
                    Direction::Outgoing,
                    Some(Entity::new(EntityKind::Client, maillog::ip::text(ip))),
                );
            }
            return (Direction::Incoming, None);
        }
        if r.origin == Origin::Local || r.local_user.is_some() {
            let s = r.sender.clone().unwrap_or_default();
            return (
                Direction::Outgoing,
                Some(Entity::new(EntityKind::Sender, s)),
            );
        }
        (Direction::Internal, None)
    }

    /// A completed record: counted, its client learned, classified; the hijack features get
    /// an account's recipients here, and the rest goes to the [`Detectors`].
    fn on_record(&mut self, r: MessageRecord) {
        self.stats.records += 1;
        self.learn_customer(&r);
        let (dir, ent) = self.classify(&r);
        match dir {
            Direction::Outgoing => self.stats.outgoing += 1,
            Direction::Incoming => self.stats.incoming += 1,
            Direction::Internal => self.stats.internal += 1,
        }
        if dir != Direction::Incoming && ent.is_some() {
            self.stats.failed_recipients += r.failed().count() as u64;
            self.stats.delivered_recipients += r.delivered().count() as u64;
        }
        if self.off.is_none() {
            let mut out = Vec::new();
            self.det.record(&r, dir, ent.as_ref(), &mut out);
            self.push(out);
            if self.keep_records {
                self.records_buf.push(r);
            }
            return;
        }
        if self.keep_records {
            self.records_buf.push(r.clone());
        }
        self.dispatch(Op::Record(Box::new((r, dir, ent))));
    }

    fn push(&mut self, out: Vec<Alert>) {
        self.stats.alerts += out.len() as u64;
        let place = 2 * self.ops;
        self.alerts.extend(out.into_iter().map(|a| (place, a)));
    }

    /// Events used directly (not through records).
    fn direct(&mut self, ts: Ts, program: &str, ev: &Event<'_>) {
        let ip_of = |p: &maillog::Peer<'_>| p.ip.and_then(maillog::ip::parse_logged);
        match ev {
            Event::AuthFailure {
                client,
                user,
                service,
                ..
            } => {
                self.login(Login {
                    ts,
                    ip: ip_of(client),
                    user: *user,
                    service: *service,
                    ok: false,
                });
                return;
            }
            Event::AuthSuccess {
                client,
                user,
                service,
                ..
            } => {
                self.login(Login {
                    ts,
                    ip: ip_of(client),
                    user: Some(user),
                    service: *service,
                    ok: true,
                });
                return;
            }
            Event::Client {
                client,
                sasl_username: Some(user),
                ..
            } => {
                let ip = ip_of(client);
                self.smtp_login(ts, ip, user);
                return;
            }
            Event::Queued {
                auth_user: Some(user),
                client,
                ..
            } => {
                let ip = client.as_ref().and_then(ip_of);
                self.smtp_login(ts, ip, user);
                return;
            }
            _ => {}
        }
        if let Event::Check {
            qid: None,
            action,
            stage,
            client: Some(c),
            helo: Some(h),
            from,
            to,
            reason,
            ..
        } = ev
        {
            // Refusals and warnings only: a `permit` line is logged for accepted mail, whose HELO
            // reaches the detector with the message record under the right entity (the account
            // when authenticated — many users share one carrier-NAT address, so keying their
            // HELOs by IP would make a NAT look like a bot changing its name).
            if !matches!(action, Action::Reject | Action::Defer | Action::Warn) {
                return;
            }
            let Some(ip) = c.ip.and_then(maillog::ip::parse) else {
                return;
            };
            if !self.may_be_customer(ip) {
                return;
            }
            // A relay-access refusal says the client is NOT one of ours.
            if reason.contains("Relay access denied") {
                return;
            }
            let op = CheckOp {
                ts,
                ip,
                basis: self.customer_basis(ip),
                action: *action,
                rcpt_stage: stage.is_none_or(|s| s == "RCPT"),
                submission: program.contains("submission") || program.contains("smtps"),
                host: c.host.map(str::to_string),
                helo: h.to_string(),
                from: from.map(str::to_string),
                to: to.map(str::to_string),
                reason: reason.to_string(),
            };
            self.dispatch(Op::Check(Box::new(op)));
        }
    }

    /// Entities with extrusion state (for memory reports).
    pub fn tracked_entities(&self) -> usize {
        self.det.extrusion.tracked()
    }

    /// Accounts with hijack state and their approximate heap bytes.
    pub fn hijack_memory(&self) -> (usize, usize) {
        (self.det.hijack.tracked(), self.det.hijack.approx_bytes())
    }

    /// The parts [`Engine::reset_part`] knows, for memory reports.
    pub const PARTS: &'static [&'static str] = &[
        "correlator",
        "hijack",
        "extrusion",
        "helo",
        "incoming",
        "bruteforce",
        "campaigns",
        "customers",
        "claims",
        "own_asns",
    ];

    /// Replace one part of the state ([`Engine::PARTS`]) with an empty one, dropping what it
    /// held: the memory report (`examples/account_memory.rs`) measures each part's heap as what
    /// its drop frees. Not for detection: the engine is not consistent afterwards. False when
    /// the part is unknown, or the detectors run on their own thread.
    #[doc(hidden)]
    pub fn reset_part(&mut self, part: &str) -> bool {
        if self.off.is_some() {
            return false;
        }
        let cfg = &self.cfg;
        match part {
            "correlator" => self.corr = Correlator::new(cfg.limits.max_in_flight),
            "hijack" => self.det.hijack = Hijack::new(cfg),
            "extrusion" => self.det.extrusion = Extrusion::new(cfg),
            "helo" => self.det.helo = HeloDetector::new(cfg),
            "incoming" => self.det.incoming = Incoming::new(cfg),
            "bruteforce" => self.det.brute = Bruteforce::new(cfg),
            "campaigns" => self.det.campaigns = Campaigns::new(cfg),
            "customers" => self.customers = BoundedMap::new(cfg.limits.max_entities),
            "claims" => self.claims = PolicyClaims::default(),
            "own_asns" => self.own_asns = Default::default(),
            _ => return false,
        }
        true
    }

    /// State the engine dropped to stay within its caps, by kind (see [`Evictions`]).
    pub fn evictions(&self) -> Evictions {
        let hijack = self.det.hijack.stats();
        let (brute_accounts, brute_attackers) = self.det.brute.evicted();
        Evictions {
            messages: self.corr.stats().evicted,
            hijack_accounts: hijack.evicted,
            hijack_established: hijack.evicted_established,
            extrusion_entities: self.det.extrusion.evicted(),
            helo_entities: self.det.helo.evicted(),
            brute_accounts,
            brute_attackers,
        }
    }

    /// Counters of the hijack detector's state (tracked and evicted accounts, failed logins for
    /// names without state, the population norm's size).
    pub fn hijack_stats(&self) -> crate::hijack::HijackStats {
        self.det.hijack.stats()
    }

    /// The state worth keeping across runs (account baselines). It holds the baselines in
    /// memory; one evicted from memory is not in it, so a saver merges it into what was saved
    /// before ([`State::merge`]) and never deletes a baseline for being absent.
    pub fn snapshot_state(&self) -> State {
        State {
            version: 1,
            taken_at: self.stats.last_ts.map(|t| t.secs()).unwrap_or(0),
            baselines: self.det.hijack.baselines(),
        }
    }

    /// Load saved state (before feeding events). The baselines are auth-hijack's, which runs
    /// with the detectors: if they have a thread of their own, it is stopped first (as
    /// [`Engine::restore`] does), so the state reaches the detectors and not a stand-in.
    pub fn restore_state(&mut self, st: State) {
        self.detectors_back();
        let at = Ts::from_secs(st.taken_at);
        self.det.hijack.restore(st.baselines, at);
    }

    /// The whole detection state as a versioned, compressed snapshot (see [`crate::snapshot`]):
    /// the correlator's open messages, every detector's windows, counters and baselines, the
    /// policy claims and the counters. Restoring it into an engine with the same settings and
    /// feeding it the events after it gives the same alerts as never stopping.
    ///
    /// Not in it: alerts and records not yet taken ([`Engine::take_alerts`],
    /// [`Engine::take_records`]): take them first. Settings and the geo database are not in it
    /// either; they come from the engine it is restored into.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        self.snapshot_raw()?.compress()
    }

    /// The first half of [`Engine::snapshot`]: the state serialized, not yet compressed, so
    /// the compression can run off the thread that owns the engine
    /// ([`crate::snapshot::Raw::compress`] gives exactly what [`Engine::restore`] reads).
    pub fn snapshot_raw(&self) -> Result<crate::snapshot::Raw, SnapshotError> {
        if self.off.is_some() {
            return Err(SnapshotError::Encode(
                "the detectors run on their own thread: snapshot after finish()".into(),
            ));
        }
        crate::snapshot::serialize(&SnapshotRef {
            corr: &self.corr,
            extrusion: &self.det.extrusion,
            helo: &self.det.helo,
            own_names: &self.own_names,
            customers: &self.customers,
            own_asns: &self.own_asns,
            hijack: &self.det.hijack,
            brute: &self.det.brute,
            campaigns: &self.det.campaigns,
            incoming: &self.det.incoming,
            claims: &self.claims,
            stats: &self.stats,
            first_ts: self.stats.first_ts,
            last_ts: self.stats.last_ts,
        })
    }

    /// Replace this engine's detection state with a snapshot's (before feeding events). A
    /// snapshot of another format version, or one that does not decode, is refused and the
    /// engine is left as it was.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let s: SnapshotOwned = crate::snapshot::decode(bytes)?;
        self.detectors_back();
        self.corr = s.corr;
        self.det.extrusion = s.extrusion;
        self.det.helo = s.helo;
        self.det.own_names.clone_from(&s.own_names);
        self.own_names = s.own_names;
        self.customers = s.customers;
        self.own_asns = s.own_asns;
        self.det.hijack = s.hijack;
        self.det.brute = s.brute;
        self.det.campaigns = s.campaigns;
        self.det.incoming = s.incoming;
        self.claims = s.claims;
        self.stats = s.stats;
        self.stats.first_ts = s.first_ts;
        self.stats.last_ts = s.last_ts;
        Ok(())
    }

    /// One account sent (or started sending) a message from `ip`: for auth-hijack, with the
    /// [`Detectors`].
    fn send(
        &mut self,
        ts: Ts,
        account: &str,
        ip: Option<IpAddr>,
        msgs: u32,
        rcpts: &[&str],
        failed: u32,
    ) {
        let s = Send {
            ts,
            account,
            ip,
            msgs,
            rcpts,
            failed,
        };
        self.hand(
            |det, out| det.send(&s, out),
            || Op::Send(Box::new(SendOp::from(&s))),
        );
    }

    /// Work for the [`Detectors`] on borrowed data: done at once without their thread (nothing
    /// owned is made), else made owned by `owned` and handed over as [`Engine::dispatch`]
    /// does.
    fn hand(
        &mut self,
        now: impl FnOnce(&mut Detectors, &mut Vec<Alert>),
        owned: impl FnOnce() -> Op,
    ) {
        if self.off.is_some() {
            self.dispatch(owned());
        } else {
            self.apply_here(now);
        }
    }

    /// Work for the [`Detectors`] done on this thread, its alerts in their place.
    fn apply_here(&mut self, f: impl FnOnce(&mut Detectors, &mut Vec<Alert>)) {
        self.ops += 1;
        let mut out = Vec::new();
        f(&mut self.det, &mut out);
        self.push(out);
    }
}

/// How many pieces of work [`Engine`] collects before handing them to the detector thread in
/// one go (one channel message and wake-up per batch, not per event). Our own choice.
const OFFLOAD_BATCH: usize = 512;
/// Batches on their way to the detector thread at most; the engine waits when the thread is
/// this far behind, so memory stays bounded however slow the detectors are. Each side's work
/// comes in bursts (the engine's hourly sweep, the detectors' packing), which the queue
/// absorbs: with 8 batches the engine thread waited on the full queue 229 ms and the detector
/// thread for work 169 ms of a 1.6 s run (first quarter of the benchmark log), with 32 62 ms
/// and 97 ms; on the whole log two threads took 2.5% less time (faster in 12 of 13 paired
/// runs) for 6–19 MiB more peak memory (docs/PERFORMANCE.md, "Steps of 2026-12-05 night").
const OFFLOAD_QUEUE: usize = 32;

/// Entities whose state is packed, per detector ([`Engine::frozen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frozen {
    /// auth-hijack's accounts.
    pub hijack: usize,
    /// auth-bruteforce's accounts.
    pub bruteforce: usize,
    /// Extrusion's entities (clients, accounts, senders).
    pub extrusion: usize,
    /// helo-anomaly's entities.
    pub helo: usize,
    /// Bytes of the four maps' learned compression dictionaries ([`crate::cold::ColdMap`]),
    /// held by zstd outside the Rust heap.
    pub dictionary_bytes: usize,
}

impl Frozen {
    /// The counts of auth-hijack's, auth-bruteforce's, extrusion's and helo-anomaly's tables,
    /// in that order.
    fn of([hijack, bruteforce, extrusion, helo]: [crate::cold::Swept; 4]) -> Frozen {
        Frozen {
            hijack: hijack.frozen,
            bruteforce: bruteforce.frozen,
            extrusion: extrusion.frozen,
            helo: helo.frozen,
            dictionary_bytes: [hijack, bruteforce, extrusion, helo]
                .iter()
                .map(|p| p.dictionary_bytes)
                .sum(),
        }
    }
}

/// Work for the [`Detectors`]: everything they need from an event or a record, owned, so it can
/// be done on another thread. Decided on the engine's side with its state (direction,
/// customers), applied on the detectors' side with theirs.
#[derive(Debug)]
enum Op {
    /// A host name the engine learned as one of ours (helo-anomaly compares HELOs with them).
    OwnName(String),
    /// A refusal or warning at SMTP time (no queue id) of a possible customer.
    Check(Box<CheckOp>),
    /// A completed record, its direction and submitter.
    Record(Box<(MessageRecord, Direction, Option<Entity>)>),
    /// Pack the state of entities idle by the sweep's measure ([`Engine::freeze_idle`],
    /// [`crate::cold::Sweep`]).
    Freeze(crate::cold::Sweep),
    /// A login or failed login, for auth-bruteforce and auth-hijack.
    Login(Box<LoginOp>),
    /// An account's submission or policy request, for auth-hijack (a record's goes with
    /// [`Op::Record`]).
    Send(Box<SendOp>),
    /// States the detectors' thread packed and the engine's compressed ([`Packs`]), to be put
    /// back.
    Packed(Box<Packs>),
}

/// Idle states the [`Detectors`] packed uncompressed on their own thread, handed to the
/// engine's thread to be compressed and brought back ([`Op::Packed`]); the two threads' work
/// is then about even (docs/PERFORMANCE.md, "How `analyze` uses more than one core"). A
/// state thawed meanwhile stays as it is ([`crate::cold::ColdMap::packed_back`]).
#[derive(Debug, Default)]
struct Packs {
    hijack: Vec<PackWork<String>>,
    brute: Vec<PackWork<String>>,
    extrusion: Vec<PackWork<Entity>>,
    helo: Vec<PackWork<Entity>>,
}

impl Packs {
    fn is_empty(&self) -> bool {
        self.hijack.is_empty()
            && self.brute.is_empty()
            && self.extrusion.is_empty()
            && self.helo.is_empty()
    }

    fn compress(&mut self) {
        self.hijack.iter_mut().for_each(PackWork::compress);
        self.brute.iter_mut().for_each(PackWork::compress);
        self.extrusion.iter_mut().for_each(PackWork::compress);
        self.helo.iter_mut().for_each(PackWork::compress);
    }
}

/// A [`Send`], owned, on its way to the detector thread.
#[derive(Debug)]
struct SendOp {
    ts: Ts,
    account: String,
    ip: Option<IpAddr>,
    msgs: u32,
    rcpts: Vec<String>,
    failed: u32,
}

impl From<&Send<'_>> for SendOp {
    fn from(s: &Send<'_>) -> SendOp {
        SendOp {
            ts: s.ts,
            account: s.account.to_string(),
            ip: s.ip,
            msgs: s.msgs,
            rcpts: s.rcpts.iter().map(|r| r.to_string()).collect(),
            failed: s.failed,
        }
    }
}

/// A login or failed login seen in the log, for auth-bruteforce and auth-hijack
/// ([`Detectors::login`]).
#[derive(Debug, Clone, Copy)]
struct Login<'a> {
    ts: Ts,
    ip: Option<IpAddr>,
    user: Option<&'a str>,
    service: maillog::Service,
    /// A success, not a failure.
    ok: bool,
}

/// A [`Login`], owned, on its way to the detector thread.
#[derive(Debug)]
struct LoginOp {
    ts: Ts,
    ip: Option<IpAddr>,
    user: Option<String>,
    service: maillog::Service,
    ok: bool,
}

impl From<&Login<'_>> for LoginOp {
    fn from(l: &Login<'_>) -> LoginOp {
        LoginOp {
            ts: l.ts,
            ip: l.ip,
            user: l.user.map(str::to_string),
            service: l.service,
            ok: l.ok,
        }
    }
}

impl LoginOp {
    fn login(&self) -> Login<'_> {
        Login {
            ts: self.ts,
            ip: self.ip,
            user: self.user.as_deref(),
            service: self.service,
            ok: self.ok,
        }
    }
}

/// A refusal or warning without a queue id (see [`Engine::direct`]), owned.
#[derive(Debug)]
struct CheckOp {
    ts: Ts,
    ip: IpAddr,
    basis: Option<CustomerBasis>,
    action: Action,
    /// Refused at RCPT time (or the stage is not logged).
    rcpt_stage: bool,
    /// Logged by a submission or smtps service.
    submission: bool,
    host: Option<String>,
    helo: String,
    from: Option<String>,
    to: Option<String>,
    reason: String,
}

/// The detectors: auth-hijack, auth-bruteforce and campaign (fed by logins and submissions),
/// extrusion (`delivery-failures`, `multiple-lists`), `helo-anomaly` and the incoming rules
/// (`incoming-failures`, `incoming-helo`, `looped-back`). Nothing else in the engine reads
/// their state and they read no other state, so they can run on a thread of their own; what
/// they are given ([`Op`]) is decided by the engine (the correlator, the direction, the
/// customers and the policy claims) in event order.
#[derive(Debug)]
struct Detectors {
    cfg: Config,
    geo: GeoRef,
    /// The engine's own host names, kept in step by [`Op::OwnName`].
    own_names: Vec<String>,
    extrusion: Extrusion,
    helo: HeloDetector,
    incoming: Incoming,
    brute: Bruteforce,
    hijack: Hijack,
    campaigns: Campaigns,
    /// On their own thread: idle states are packed uncompressed and handed over in
    /// [`Detectors::packs`].
    defer_packing: bool,
    packs: Packs,
}

impl Detectors {
    fn new(cfg: &Config, geo: &GeoRef, own_names: &[String]) -> Detectors {
        Detectors {
            cfg: cfg.clone(),
            geo: geo.clone(),
            own_names: own_names.to_vec(),
            extrusion: Extrusion::new(cfg),
            helo: HeloDetector::new(cfg),
            incoming: Incoming::new(cfg),
            brute: Bruteforce::new(cfg),
            hijack: Hijack::new(cfg),
            campaigns: Campaigns::new(cfg),
            defer_packing: false,
            packs: Packs::default(),
        }
    }

    /// Do one piece of work. It is left in place (a name taken is left empty), to be dropped
    /// by the thread that made it (see [`Done::batch`]).
    fn apply(&mut self, op: &mut Op, out: &mut Vec<Alert>) {
        match op {
            Op::OwnName(n) => self.own_names.push(std::mem::take(n)),
            Op::Check(c) => self.check(c, out),
            Op::Record(b) => {
                let (r, dir, ent) = &**b;
                self.record(r, *dir, ent.as_ref(), out);
            }
            Op::Freeze(sweep) => self.freeze_idle(*sweep),
            Op::Packed(p) => self.packed_back(p),
            Op::Login(l) => self.login(&l.login(), out),
            Op::Send(s) => {
                let rcpts: Vec<&str> = s.rcpts.iter().map(String::as_str).collect();
                let send = Send {
                    ts: s.ts,
                    account: &s.account,
                    ip: s.ip,
                    msgs: s.msgs,
                    rcpts: &rcpts,
                    failed: s.failed,
                };
                self.send(&send, out);
            }
        }
    }

    /// Pack the states not touched since `before`: compressed at once, or left for the
    /// engine's thread ([`Detectors::defer_packing`]).
    fn freeze_idle(&mut self, sweep: crate::cold::Sweep) {
        if !self.defer_packing {
            self.hijack.freeze_idle(sweep);
            self.brute.freeze_idle(sweep);
            self.extrusion.freeze_idle(sweep);
            self.helo.freeze_idle(sweep);
            return;
        }
        let p = &mut self.packs;
        p.hijack.extend(self.hijack.freeze_idle_deferred(sweep));
        p.brute.extend(self.brute.freeze_idle_deferred(sweep));
        p.extrusion
            .extend(self.extrusion.freeze_idle_deferred(sweep));
        p.helo.extend(self.helo.freeze_idle_deferred(sweep));
    }

    /// Put back states compressed on the engine's thread.
    fn packed_back(&mut self, p: &mut Packs) {
        let p = std::mem::take(p);
        p.hijack
            .into_iter()
            .for_each(|w| self.hijack.packed_back(w));
        p.brute.into_iter().for_each(|w| self.brute.packed_back(w));
        p.extrusion
            .into_iter()
            .for_each(|w| self.extrusion.packed_back(w));
        p.helo.into_iter().for_each(|w| self.helo.packed_back(w));
    }

    /// An account's sending for auth-hijack; when it finds the sending changed,
    /// auth-bruteforce looks whether the password was guessed just before, and the campaign
    /// detector whether the account's addresses send for other accounts too.
    fn send(&mut self, s: &Send<'_>, out: &mut Vec<Alert>) {
        let (campaigns, cfg) = (&self.campaigns, &self.cfg);
        let start = out.len();
        self.hijack.observe(
            cfg,
            &self.geo,
            s,
            |ip| campaigns.is_campaign_ip(cfg, ip, s.ts),
            out,
        );
        let mut camp = Vec::new();
        for a in &out[start..] {
            if a.detector == Detector::AuthHijack {
                self.brute
                    .sending_changed(cfg, a.ts, &a.entity.id, &mut camp);
                let ips = self.hijack.recent_ips(&a.entity.id);
                self.campaigns
                    .flagged(cfg, a.ts, &a.entity.id, &ips, &mut camp);
            }
        }
        out.extend(camp);
    }

    /// A login or failed login for auth-bruteforce, with the address's autonomous system.
    fn login(&mut self, l: &Login<'_>, out: &mut Vec<Alert>) {
        let asn = l.ip.and_then(|i| self.geo.lookup_fast(i).1);
        let cfg = &self.cfg;
        if l.ok {
            let user = l.user.unwrap_or_default();
            self.brute
                .success(cfg, l.ts, l.ip, asn, user, l.service, out);
        } else {
            self.brute
                .failure(cfg, l.ts, l.ip, asn, l.user, l.service, out);
            // auth-hijack keeps no state for a name that never logged in (it counts them).
            if let Some(u) = l.user {
                self.hijack.auth_failure(cfg, l.ts, u);
            }
        }
    }

    /// A record's part in auth-hijack (an account's recipients and their outcomes), extrusion,
    /// helo-anomaly and the incoming rules (the engine counted it and learned its client).
    fn record(
        &mut self,
        r: &MessageRecord,
        dir: Direction,
        ent: Option<&Entity>,
        out: &mut Vec<Alert>,
    ) {
        if dir == Direction::Incoming {
            // Only mail for our own mailboxes: a record relayed out for a client not yet known
            // as ours is not the MX's business.
            if for_our_mailboxes(&self.cfg, r) {
                self.incoming_record(r, false, out);
            }
            // Mail from an internet server named in its domain: that domain's servers are
            // elsewhere, so a customer whose HELO names it is forging (helo-anomaly).
            if let Some(h) = r.client_host.as_deref() {
                self.helo.note_foreign_server(r.finished, h);
            }
            if let Some(from) = r.sender.as_deref() {
                for rc in r.recipients.iter().filter(|x| x.outcome.is_delivered()) {
                    self.extrusion.note_inbound(r.finished, from, rc.addr());
                }
            }
            return;
        }
        if let Some(ent) = ent.filter(|e| e.kind == EntityKind::Account) {
            // Recipients and their outcomes reach the hijack features when the message is done
            // (the submission itself was counted when it happened).
            let rcpts: Vec<&str> = r.recipients.iter().map(|x| x.addr()).collect();
            let send = Send {
                ts: r.finished,
                account: &ent.id,
                ip: None,
                msgs: 0,
                rcpts: &rcpts,
                failed: r.failed().count() as u32,
            };
            self.send(&send, out);
        }
        // Local deliveries to our own mailboxes are incoming too, whoever sent them: remember
        // them so that autoresponder replies are recognised.
        if let Some(from) = r.sender.as_deref() {
            for rc in r
                .recipients
                .iter()
                .filter(|x| x.is_local_delivery() && x.outcome.is_delivered())
            {
                self.extrusion.note_inbound(r.finished, from, rc.addr());
            }
        }
        let Some(ent) = ent else { return };
        if ent.kind == EntityKind::Client {
            self.helo.mark_ours(ent, r.finished);
            // A customer's machine writing only to our own mailboxes talks to us as an MX does
            // to the internet: looked at by the incoming rules as our own (`looped-back`), and
            // by them alone — none of its mail leaves us, so it is not extrusion, and its forged
            // envelope senders are not tenants of a customer server (`delivery-failures`).
            if for_our_mailboxes(&self.cfg, r) {
                self.incoming_record(r, true, out);
                return;
            }
        }
        self.extrusion.on_record(&self.cfg, ent, r, out);
        if let Some(h) = r.helo.as_deref() {
            let rcpts: Vec<&str> = r.recipients.iter().map(|x| x.addr()).collect();
            let obs = Observation {
                ts: r.accepted,
                helo: h,
                sender: r.sender.as_deref(),
                rcpts,
                client: r.client_ip,
                client_host: r.client_host.as_deref(),
                refusals: r.failed().filter_map(|x| x.reply()).collect(),
                context: "message",
                ours: true,
            };
            self.helo
                .observe(&self.cfg, &self.own_names, ent, &obs, out);
        }
    }

    /// A message from an incoming host (or, `ours`, from a customer to our mailboxes) for the
    /// incoming rules: its delivered and refused recipients and its HELO.
    fn incoming_record(&mut self, r: &MessageRecord, ours: bool, out: &mut Vec<Alert>) {
        let Some(ip) = r.client_ip else { return };
        let unknown: Vec<&str> = r
            .recipients
            .iter()
            .filter(|x| x.outcome == Outcome::Rejected && x.reply().is_some_and(is_unknown_user))
            .map(|x| x.addr())
            .collect();
        let first = r.recipients.first().map(|x| x.orig().unwrap_or(x.addr()));
        let seen = Seen {
            ts: r.finished,
            ip,
            asn: self.geo.lookup_fast(ip).1,
            host: r.client_host.as_deref(),
            helo: r.helo.as_deref(),
            from: r.sender.as_deref(),
            rcpt: first,
            unknown: unknown.len() as u32,
            unknown_addrs: unknown,
            delivered: r.delivered().count() as u32,
            ours,
            verdict: r.filter.map(|m| m.verdict),
            filter: r.filter.map(|m| m.filter),
            score: r.filter.and_then(|m| m.score),
        };
        self.incoming.observe(&self.cfg, &seen, out);
    }

    /// A refusal or warning at SMTP time of a possible customer (see [`Engine::direct`]).
    fn check(&mut self, c: &CheckOp, out: &mut Vec<Alert>) {
        let (ts, ip, basis, reason) = (c.ts, c.ip, c.basis, c.reason.as_str());
        // A refusal naming an unknown user of one of our own domains is about mail to our
        // mailboxes: the incoming rules' business (`looped-back` for a customer), not
        // extrusion's; and a client that is ours only by its AS is then an internet host.
        let own_mailbox = refused_as_our_unknown_user(Outcome::Rejected, Some(reason));
        let ours = match basis {
            Some(CustomerBasis::SameAs) => !own_mailbox,
            Some(_) => true,
            None => c.submission,
        };
        let ent = Entity::new(EntityKind::Client, maillog::ip::text(ip));
        // A recipient our MX refused at RCPT time, sent without authentication: the
        // incoming rules count unknown local users and the HELO (`looped-back` when the
        // client is ours).
        if c.action == Action::Reject && c.rcpt_stage && !c.submission {
            let unknown = is_unknown_user(reason);
            // An unknown local user is mail to our own mailboxes: a client that is ours
            // only by its AS is then an incoming host (see `classify`).
            let ours = match basis {
                Some(CustomerBasis::SameAs) => !unknown,
                Some(_) => true,
                None => false,
            };
            // An unknown local user names one of our domains; any other refusal of an
            // internet host is about mail to us too (a relay attempt was left out above),
            // but a customer's other refusals are about its outgoing mail.
            if unknown || !ours {
                let seen = Seen {
                    ts,
                    ip,
                    asn: self.geo.lookup_fast(ip).1,
                    host: c.host.as_deref(),
                    helo: Some(&c.helo),
                    from: c.from.as_deref(),
                    rcpt: c.to.as_deref(),
                    unknown: u32::from(unknown),
                    unknown_addrs: if unknown {
                        c.to.iter().map(String::as_str).collect()
                    } else {
                        Vec::new()
                    },
                    delivered: 0,
                    ours,
                    verdict: None,
                    filter: None,
                    score: None,
                };
                self.incoming.observe(&self.cfg, &seen, out);
            }
        }
        // A recipient our own server refused from one of our customers failed as surely as
        // one a remote server refused: count it (spam bots on customer lines are mostly
        // stopped here, before any message exists).
        if ours && !own_mailbox && c.action == Action::Reject && c.rcpt_stage {
            if let Some(rcpt) = &c.to {
                let rec = MessageRecord {
                    host: String::new(),
                    qid: "NOQUEUE".into(),
                    accepted: ts,
                    finished: ts,
                    origin: Origin::Smtp,
                    client_ip: Some(ip),
                    client_host: c.host.clone(),
                    helo: Some(c.helo.clone()),
                    auth_user: None,
                    local_user: None,
                    sender: c.from.clone(),
                    size: None,
                    nrcpt: Some(1),
                    message_id: None,
                    recipients: vec![maillog::record::Recipient::new(
                        rcpt,
                        None,
                        Outcome::Rejected,
                        ts,
                    )
                    .with_attempt([None, None, None, Some(&c.reason)])],
                    recipient_index: Default::default(),
                    rejected: None,
                    held: false,
                    notices: 0,
                    complete: true,
                    filter: None,
                };
                self.extrusion.on_record(&self.cfg, &ent, &rec, out);
            }
        }
        let obs = Observation {
            ts,
            helo: &c.helo,
            sender: c.from.as_deref(),
            rcpts: c.to.iter().map(String::as_str).collect(),
            client: Some(ip),
            client_host: c.host.as_deref(),
            refusals: if c.action == Action::Reject {
                vec![reason]
            } else {
                Vec::new()
            },
            context: reason,
            ours,
        };
        self.helo
            .observe(&self.cfg, &self.own_names, &ent, &obs, out);
    }
}

/// The detector thread (see [`Engine::detectors_on_thread`]) and the work on its way.
///
/// Order: every alert has a place, a number. Alerts raised on the engine's own thread get `2k`
/// when `k` pieces of work had been handed to the [`Detectors`] before them (none since every
/// detector went to the [`Detectors`]; the merge stays for any that raises them there); the
/// alerts of the `k`-th piece get `2k + 1`. Sorting by place (stable) gives exactly the order
/// of an engine that does all of it in one thread.
#[derive(Debug)]
struct Offload {
    tx: Option<std::sync::mpsc::SyncSender<Vec<Op>>>,
    rx: std::sync::mpsc::Receiver<Done>,
    handle: Option<std::thread::JoinHandle<Detectors>>,
    /// Work not sent yet.
    batch: Vec<Op>,
    /// Emptied batches back from the thread, for reuse.
    spare: Vec<Vec<Op>>,
    /// Pieces of work sent (counted from the engine's first) and done.
    sent: u64,
    done: u64,
    /// The thread's alerts received and not taken, in place order.
    alerts: Vec<(u64, Alert)>,
    /// States the thread packed, to be compressed here and sent back ([`Op::Packed`]).
    packs: Vec<Packs>,
    /// Pieces of work the thread has finished and sent back (its [`Done::upto`], stored after
    /// each send): [`Engine::take_alerts`], called for every line, looks at the channel only
    /// when this is past [`Offload::done`]. An empty `try_recv` on the channel cost the
    /// engine's thread, which sets the pace with two threads, about 70 instructions a line
    /// (docs/PERFORMANCE.md, "How `analyze` uses more than one core").
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// What the detector thread sends back after a batch.
#[derive(Debug)]
struct Done {
    /// Pieces of work done so far (counted from the engine's first).
    upto: u64,
    /// Their alerts, with their places.
    alerts: Vec<(u64, Alert)>,
    /// The batch, done but not dropped: its records are freed by the engine's thread, which
    /// allocated them. A block freed by another thread goes back to its owner's heap by a
    /// queue the owner must walk (mimalloc's `_mi_page_free_collect`), which cost the engine's
    /// thread more than freeing its own blocks (docs/PERFORMANCE.md, "How `analyze` uses more
    /// than one core").
    batch: Vec<Op>,
    /// States packed in the batch, to be compressed by the engine's thread.
    packs: Packs,
}

/// The detector thread's loop: apply each batch in order, send back its alerts.
fn detector_thread(
    mut det: Detectors,
    first: u64,
    rx: std::sync::mpsc::Receiver<Vec<Op>>,
    (tx, progress): (
        std::sync::mpsc::Sender<Done>,
        std::sync::Arc<std::sync::atomic::AtomicU64>,
    ),
) -> Detectors {
    let mut k = first;
    let mut out = Vec::new();
    det.defer_packing = true;
    for mut batch in rx {
        let mut alerts = Vec::new();
        for op in batch.iter_mut() {
            det.apply(op, &mut out);
            alerts.extend(out.drain(..).map(|a| (2 * k + 1, a)));
            k += 1;
        }
        let done = Done {
            upto: k,
            alerts,
            batch,
            packs: std::mem::take(&mut det.packs),
        };
        if tx.send(done).is_err() {
            break;
        }
        // After the send: whoever sees `k` finds its batch in the channel.
        progress.store(k, std::sync::atomic::Ordering::Release);
    }
    det.defer_packing = false;
    det
}

impl Engine {
    /// Run the detectors on a thread of their own from now until [`Engine::finish`]
    /// (`analyze` with more than one thread): the correlator, the direction, the customers and
    /// the policy claims stay on the calling thread and hand the detectors their work in
    /// batches; idle states are packed there and compressed here (`Packs`), which leaves the
    /// two threads about even. The alerts are exactly those of an engine without the thread,
    /// in the same order ([`Engine::take_alerts`]); counters and state that belong to the
    /// detectors ([`Engine::evictions`], [`Engine::tracked_entities`], [`Engine::frozen`],
    /// [`Engine::hijack_stats`], [`Engine::snapshot_state`], snapshots) are only read after
    /// [`Engine::finish`] (or before this call). No-op when the thread already runs.
    pub fn detectors_on_thread(&mut self) {
        if self.off.is_some() {
            return;
        }
        let det = std::mem::replace(
            &mut self.det,
            Detectors::new(&self.cfg, &self.geo, &self.own_names),
        );
        let (tx, rx) = std::sync::mpsc::sync_channel(OFFLOAD_QUEUE);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let first = self.ops;
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(first));
        let theirs = progress.clone();
        let handle = std::thread::Builder::new()
            .name("detect".into())
            .spawn(move || detector_thread(det, first, rx, (done_tx, theirs)))
            .expect("spawning the detector thread");
        self.off = Some(Offload {
            tx: Some(tx),
            rx: done_rx,
            handle: Some(handle),
            batch: Vec::with_capacity(OFFLOAD_BATCH),
            spare: Vec::new(),
            sent: first,
            done: first,
            alerts: Vec::new(),
            packs: Vec::new(),
            progress,
        });
    }

    /// Hand a piece of work to the [`Detectors`]: at once without their thread, else in the
    /// next batch.
    fn dispatch(&mut self, mut op: Op) {
        let Some(off) = &mut self.off else {
            self.apply_here(|det, out| det.apply(&mut op, out));
            return;
        };
        self.ops += 1;
        off.batch.push(op);
        if off.batch.len() >= OFFLOAD_BATCH {
            self.send_batch();
        }
    }

    /// Send the batch being collected to the detector thread (waits while it is
    /// [`OFFLOAD_QUEUE`] batches behind).
    fn send_batch(&mut self) {
        self.poll_worker();
        self.return_packs();
        let Some(off) = &mut self.off else { return };
        if off.batch.is_empty() {
            return;
        }
        let next = off
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(OFFLOAD_BATCH));
        let batch = std::mem::replace(&mut off.batch, next);
        let n = batch.len() as u64;
        let sent = off.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if !sent {
            self.worker_died();
        }
        if let Some(off) = &mut self.off {
            off.sent += n;
        }
    }

    /// Compress the states the detector thread packed and put them in the batch, to go back
    /// (pushed here, not through [`Engine::dispatch`], which may call [`Engine::send_batch`],
    /// this function's caller).
    fn return_packs(&mut self) {
        let Some(off) = &mut self.off else { return };
        for mut p in off.packs.drain(..) {
            p.compress();
            off.batch.push(Op::Packed(Box::new(p)));
            self.ops += 1;
        }
    }

    /// Take what the detector thread sent back, without waiting (nothing to do, and the
    /// channel not looked at, until its [`Offload::progress`] passes what was taken).
    fn poll_worker(&mut self) {
        let Some(off) = &mut self.off else { return };
        if off.progress.load(std::sync::atomic::Ordering::Acquire) <= off.done {
            return;
        }
        while let Ok(d) = off.rx.try_recv() {
            Self::accept(off, &mut self.stats, d);
        }
    }

    /// Take a batch back from the detector thread: its alerts, the states it compressed.
    fn accept(off: &mut Offload, stats: &mut EngineStats, d: Done) {
        off.done = d.upto;
        stats.alerts += d.alerts.len() as u64;
        off.alerts.extend(d.alerts);
        if !d.packs.is_empty() {
            off.packs.push(d.packs);
        }
        let mut batch = d.batch;
        // Drops the batch's work here, on the thread that allocated it.
        batch.clear();
        if off.spare.len() < 2 {
            off.spare.push(batch);
        }
    }

    /// Wait until the detector thread has done all work handed over, stop it and take its
    /// detectors back; the alerts not taken stay, in order.
    fn detectors_back(&mut self) {
        if self.off.is_none() {
            return;
        }
        self.send_batch();
        loop {
            let Some(off) = &mut self.off else { return };
            if off.done >= off.sent {
                if off.packs.is_empty() {
                    break;
                }
                // States packed by the last work, compressed and sent back.
                self.send_batch();
                continue;
            }
            match off.rx.recv() {
                Ok(d) => Self::accept(off, &mut self.stats, d),
                Err(_) => self.worker_died(),
            }
        }
        // Everything is settled: merge the thread's alerts into ours, in order.
        let merged = self.take_alerts();
        let Some(mut off) = self.off.take() else {
            return;
        };
        off.tx = None;
        let det = off
            .handle
            .take()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        if let Some(det) = det {
            self.det = det;
        }
        self.alerts = merged.into_iter().map(|a| (0, a)).collect();
    }

    /// The detector thread is gone (it panicked): raise its panic here.
    fn worker_died(&mut self) -> ! {
        let handle = self.off.as_mut().and_then(|o| {
            o.tx = None;
            o.handle.take()
        });
        match handle.map(std::thread::JoinHandle::join) {
            Some(Err(e)) => std::panic::resume_unwind(e),
            _ => panic!("the detector thread stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy-only engine keeps no session HELOs (nothing could borrow them) and otherwise
    /// does what an engine a log may reach does with the same requests: the same claims made
    /// and counted, the same alerts (here auth-hijack's, on an account sending from hundreds of
    /// networks).
    #[test]
    fn a_policy_only_engine_keeps_no_helos_and_detects_the_same() {
        let requests = |e: &mut Engine| {
            let start = Ts::from_secs(1_764_547_200);
            let mut alerts = Vec::new();
            for i in 0..6_000u64 {
                // 40 accounts from their own address; every fifth request the hijacked
                // one's, from a new network each time.
                let (ip, user) = if i % 5 == 0 {
                    let n = i / 5;
                    (
                        format!("{}.{}.{}.7", 11 + n % 180, (n * 7) % 250, n % 200),
                        "victim@isp.example".to_string(),
                    )
                } else {
                    (
                        format!("192.0.2.{}", i % 40),
                        format!("user{}@isp.example", i % 40),
                    )
                };
                let (helo, rcpt, instance) = (
                    format!("pc-{i}"),
                    format!("r{i}@example.org"),
                    format!("{i:x}.1"),
                );
                let ev = Event::Policy {
                    protocol_state: "RCPT",
                    client: maillog::Peer {
                        host: Some("unknown"),
                        ip: Some(&ip),
                        port: Some(50_000),
                    },
                    helo: Some(&helo),
                    sender: Some(&user),
                    recipient: Some(&rcpt),
                    recipient_count: Some(0),
                    sasl_username: Some(&user),
                    sasl_method: Some("PLAIN"),
                    qid: None,
                    instance: Some(&instance),
                    size: Some(0),
                };
                e.feed_policy(Ts(start.0 + i as i64 * 500_000), &ev);
                alerts.extend(e.take_alerts());
            }
            let helos = e.claims.session_helos();
            e.policy_tick(Ts::from_secs(1_764_547_200 + 3_600));
            alerts.extend(e.take_alerts());
            (alerts, helos)
        };
        let mut both = Engine::new(Config::default());
        let mut policy = Engine::new(Config::default());
        policy.policy_only();
        let ((a, kept), (b, none)) = (requests(&mut both), requests(&mut policy));
        assert!(kept > 100, "{kept}");
        assert_eq!(none, 0);
        assert!(
            a.iter().any(|x| x.entity.id == "victim@isp.example"),
            "the hijacked account is flagged: {a:#?}"
        );
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let (x, y) = (both.claim_stats(), policy.claim_stats());
        assert_eq!(
            (x.claimed, x.policy_only, x.overflowed, x.matched),
            (y.claimed, y.policy_only, y.overflowed, y.matched)
        );
        assert_eq!(x.claimed, 6_000);
    }

    /// Records closed by the idle sweep reach [`Engine::take_records`] like those closed by
    /// their own lines or by [`Engine::finish`] (the report's and the dashboard's figures lost
    /// every message still queued after a day: a deferred spam run's).
    #[test]
    fn records_closed_by_the_idle_sweep_are_kept() {
        let mut ctx = maillog::TimeContext::utc(2026);
        let mut e = Engine::new(Config::default());
        e.keep_records(true);
        for l in [
            "Nov 16 10:00:00 mx postfix/smtpd[7]: A1B2C3: client=unknown[192.0.2.7], sasl_method=PLAIN, sasl_username=u@isp.example",
            "Nov 16 10:00:01 mx postfix/qmgr[9]: A1B2C3: from=<u@isp.example>, size=900, nrcpt=1 (queue active)",
            "Nov 16 10:00:02 mx postfix/smtp[8]: A1B2C3: to=<x@example.org>, relay=none, delay=1, dsn=4.4.1, status=deferred (connect timed out)",
            "Nov 17 12:00:00 mx postfix/smtpd[7]: connect from unknown[192.0.2.8]",
        ] {
            let p = maillog::parse_line(l, &mut ctx);
            let (Some(h), Some(ev)) = (&p.header, &p.event) else {
                panic!("not parsed: {l}");
            };
            e.feed(h.ts, h.host, h.program, h.pid, ev);
        }
        assert!(e.take_records().is_empty(), "still queued");
        e.flush_idle(86_400);
        let r = e.take_records();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].auth_user.as_deref(), Some("u@isp.example"));
    }

    /// What the detector thread has sent back is taken by the next [`Engine::take_alerts`]
    /// once its [`Offload::progress`] says so, without [`Engine::finish`]: the look at the
    /// channel it saves is skipped only while there is nothing in it.
    #[test]
    fn work_done_on_the_detector_thread_is_taken_as_it_comes_back() {
        let mut ctx = maillog::TimeContext::utc(2026);
        let mut e = Engine::new(Config::default());
        e.detectors_on_thread();
        for i in 0..20 {
            for l in [
                format!("Nov 16 10:00:{i:02} mx postfix/smtpd[7]: A1B2{i:02}: client=unknown[192.0.2.7], sasl_method=PLAIN, sasl_username=u@isp.example"),
                format!("Nov 16 10:00:{i:02} mx postfix/qmgr[9]: A1B2{i:02}: from=<u@isp.example>, size=900, nrcpt=1 (queue active)"),
                format!("Nov 16 10:00:{i:02} mx postfix/smtp[8]: A1B2{i:02}: to=<x{i}@example.org>, relay=mx.example.org[198.51.100.2]:25, delay=1, dsn=5.1.1, status=bounced (host said: 550 5.1.1 User unknown)"),
                format!("Nov 16 10:00:{i:02} mx postfix/qmgr[9]: A1B2{i:02}: removed"),
            ] {
                let p = maillog::parse_line(&l, &mut ctx);
                let (Some(h), Some(ev)) = (&p.header, &p.event) else {
                    panic!("not parsed: {l}");
                };
                e.feed(h.ts, h.host, h.program, h.pid, ev);
            }
        }
        e.send_batch();
        let off = e.off.as_ref().expect("the thread runs");
        let sent = off.sent;
        assert!(sent >= 20, "{sent}");
        assert!(off.done < sent, "nothing can be back before it was taken");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while off.progress.load(std::sync::atomic::Ordering::Acquire) < sent {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread never finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        e.take_alerts();
        let off = e.off.as_ref().expect("the thread runs");
        assert_eq!(off.done, sent);
        // Nothing new: the channel is not looked at again, and nothing changes.
        e.take_alerts();
        assert_eq!(e.off.as_ref().map(|o| o.done), Some(sent));
        e.finish();
    }

    /// [`Engine::take_alerts_into`] appends to what the vector holds, after every line, the
    /// alerts [`Engine::take_alerts`] returns, in the same order, with the detector thread
    /// on or off.
    #[test]
    fn alerts_taken_into_a_vector_are_appended_as_taken() {
        let lines: Vec<String> = (0..60)
            .flat_map(|i| {
                [
                    format!("Nov 16 10:{:02}:{:02} mx postfix/smtpd[7]: C1D2{i:02}: client=unknown[192.0.2.7], sasl_method=PLAIN, sasl_username=u@isp.example", i / 60, i % 60),
                    format!("Nov 16 10:{:02}:{:02} mx postfix/qmgr[9]: C1D2{i:02}: from=<u{i}@isp.example>, size=900, nrcpt=1 (queue active)", i / 60, i % 60),
                    format!("Nov 16 10:{:02}:{:02} mx postfix/smtp[8]: C1D2{i:02}: to=<x{i}@example.org>, relay=mx.example.org[198.51.100.2]:25, delay=1, dsn=5.1.1, status=bounced (host said: 550 5.1.1 User unknown)", i / 60, i % 60),
                    format!("Nov 16 10:{:02}:{:02} mx postfix/qmgr[9]: C1D2{i:02}: removed", i / 60, i % 60),
                ]
            })
            .collect();
        let run = |threaded: bool, into: bool| {
            let mut ctx = maillog::TimeContext::utc(2026);
            let mut e = Engine::new(Config::default());
            if threaded {
                e.detectors_on_thread();
            }
            let mut alerts = Vec::new();
            for l in &lines {
                let p = maillog::parse_line(l, &mut ctx);
                let (Some(h), Some(ev)) = (&p.header, &p.event) else {
                    panic!("not parsed: {l}");
                };
                e.feed(h.ts, h.host, h.program, h.pid, ev);
                if into {
                    e.take_alerts_into(&mut alerts);
                } else {
                    alerts.extend(e.take_alerts());
                }
            }
            e.finish();
            e.take_alerts_into(&mut alerts);
            serde_json::to_string(&alerts).unwrap()
        };
        let want = run(false, false);
        assert!(want.contains("delivery-failures"), "{want}");
        for threaded in [false, true] {
            assert_eq!(run(threaded, true), want, "threaded {threaded}");
        }
        // What the vector held stays first.
        let fed = || {
            let mut e = Engine::new(Config::default());
            let mut ctx = maillog::TimeContext::utc(2026);
            for l in &lines {
                let p = maillog::parse_line(l, &mut ctx);
                if let (Some(h), Some(ev)) = (&p.header, &p.event) {
                    e.feed(h.ts, h.host, h.program, h.pid, ev);
                }
            }
            e.finish();
            e
        };
        let taken = fed().take_alerts();
        assert!(!taken.is_empty());
        let mut held = vec![taken[0].clone()];
        fed().take_alerts_into(&mut held);
        assert_eq!(held[0], taken[0]);
        assert_eq!(held[1..], taken[..]);
    }

    /// Saved baselines given to an engine whose detectors already run on their own thread
    /// reach auth-hijack (the thread is stopped first), not the thread's empty stand-in.
    #[test]
    fn saved_state_reaches_the_detectors_on_their_thread() {
        let saved = State {
            version: 1,
            taken_at: 1_795_000_000,
            baselines: vec![(
                "u@isp.example".to_string(),
                Baseline {
                    countries: vec![("DE".to_string(), 3)],
                    asns: vec![3320],
                    days: 3,
                    msgs_per_day: 2.0,
                    hours: vec![1; 24],
                    ..Baseline::default()
                },
            )],
        };
        let mut threaded = Engine::new(Config::default());
        threaded.detectors_on_thread();
        threaded.restore_state(saved.clone());
        threaded.finish();
        assert_eq!(threaded.snapshot_state().baselines, saved.baselines);
    }

    /// With the detectors on their own thread, their idle states are packed there and
    /// compressed on the engine's thread ([`Packs`], [`Op::Packed`]): the engine ends as one
    /// without the thread, every state compressed as there.
    #[test]
    fn states_compressed_on_the_detector_thread_come_back() {
        // Users logging in, five hours apart (new entities are packed once idle four hours,
        // cold::SPARE_IDLE_PERIODS): enough go idle to learn the dictionaries at the second
        // sweep; at the third the next idle ones are compressed on the thread, and some of
        // them are back after it.
        let rounds: [(u32, std::ops::Range<usize>); 4] = [
            (1, 0..1_500),
            (6, 1_500..3_000),
            (11, 0..100),
            (16, 1_500..1_550),
        ];
        let run = |threaded: bool| {
            let mut ctx = maillog::TimeContext::utc(2026);
            let mut e = Engine::new(Config::default());
            if threaded {
                e.detectors_on_thread();
            }
            for (hour, users) in rounds.clone() {
                for i in users {
                    let l = format!(
                        "Nov 16 {hour:02}:{:02}:{:02} mx postfix/smtpd[7]: {:X}: \
                         client=unknown[198.51.100.{}], sasl_method=PLAIN, \
                         sasl_username=user{i}@isp.example",
                        i / 60 % 60,
                        i % 60,
                        0xA0000 + hour as usize * 10_000 + i,
                        i % 250 + 1,
                    );
                    let p = maillog::parse_line(&l, &mut ctx);
                    let (Some(h), Some(ev)) = (&p.header, &p.event) else {
                        panic!("not parsed: {l}");
                    };
                    e.feed(h.ts, h.host, h.program, h.pid, ev);
                }
                e.flush_idle(86_400);
                // The sweep's own count is the walk's, right after it.
                assert_eq!(e.packed(), e.frozen(), "hour {hour}, threaded {threaded}");
            }
            // The thread's work settled (its batches back), before `finish` thaws accounts.
            e.detectors_back();
            let packing = (e.det.hijack.packing(), e.det.brute.packing());
            let frozen = e.frozen();
            e.finish();
            let alerts = e.take_alerts();
            (e.snapshot().unwrap(), frozen, packing, alerts.len())
        };
        let (one, two) = (run(false), run(true));
        let (hijack, brute) = one.2;
        assert!(hijack.dictionary_bytes > 0, "{hijack:?}");
        assert_eq!(hijack.frozen, 3_000 - 50, "{hijack:?}");
        assert_eq!(brute.frozen, 3_000 - 50, "{brute:?}");
        // Compressed, but for states compression does not make shorter.
        assert!(hijack.uncompressed * 4 < hijack.frozen, "{hijack:?}");
        // A login's few bytes a state: too little saved to compress
        // (cold::MIN_DICTIONARY_SAVING_BYTES), packed plain on either path.
        assert_eq!(brute.dictionary_bytes, 0, "{brute:?}");
        assert_eq!(brute.uncompressed, brute.frozen, "{brute:?}");
        assert_eq!(one.2, two.2);
        assert_eq!(one.1, two.1);
        assert_eq!(one.3, two.3);
        assert!(one.0 == two.0, "snapshots differ");
    }
}
