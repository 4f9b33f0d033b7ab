//! Counters and the Prometheus text exposition (`/metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use detect::Detector;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// +1.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// +n.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Kinds of sources, for per-source counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Policy requests.
    Policy = 0,
    /// Syslog receiver.
    Syslog = 1,
    /// Followed files.
    Follow = 2,
}

const SOURCES: [&str; 3] = ["policy", "syslog", "follow"];

/// Why the syslog receiver refused a datagram or closed a TCP connection
/// (`smtpscope_syslog_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogRefusal {
    /// The peer is outside `syslog_peers` (a datagram, or a TCP connection).
    Peer = 0,
    /// A TCP connection closed to make room for a new one (all slots taken).
    Evicted = 1,
    /// A TCP connection idle for `syslog_idle`, or a frame not complete within
    /// `request_timeout`.
    Timeout = 2,
    /// An over-long or broken TCP frame (the connection is closed).
    Bad = 3,
}

impl SyslogRefusal {
    /// Every reason, in counter order.
    pub const ALL: [SyslogRefusal; 4] = [
        SyslogRefusal::Peer,
        SyslogRefusal::Evicted,
        SyslogRefusal::Timeout,
        SyslogRefusal::Bad,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogRefusal::Peer => "peer",
            SyslogRefusal::Evicted => "evicted",
            SyslogRefusal::Timeout => "timeout",
            SyslogRefusal::Bad => "bad_frame",
        }
    }
}

/// Why the policy server refused or closed a connection (`smtpscope_policy_refused_total{reason}`;
/// slow requests are `smtpscope_policy_timeouts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRefusal {
    /// The TCP peer is outside `policy_peers`.
    Peer = 0,
    /// A connection closed to make room for a new one (all slots taken).
    Evicted = 1,
}

impl PolicyRefusal {
    /// Every reason, in counter order.
    pub const ALL: [PolicyRefusal; 2] = [PolicyRefusal::Peer, PolicyRefusal::Evicted];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyRefusal::Peer => "peer",
            PolicyRefusal::Evicted => "evicted",
        }
    }
}

/// Upper bounds (seconds) of the policy latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

/// How many cells a [`Sharded`] counter or histogram keeps: the policy connections' threads
/// (one per connection) each add to the cell of their [`shard`], so that threads on different
/// cores do not take one cache line from each other at every request (under the policy
/// benchmark on two cores, the connection threads' own code outside the kernel spent 0.23 µs a
/// request in these additions with one shared cell, 0.06 with a cell each, docs/PERFORMANCE.md,
/// "Policy server"). More than the cores of the machines we run on; a reader sums them. Our own
/// choice.
pub const SHARDS: usize = 16;

/// A pair of cache lines of its own: 128-byte aligned, since the adjacent-line prefetcher
/// fetches lines in pairs and would otherwise pull a neighbouring cell along.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line<T>(T);

/// The calling thread's cell in a [`Sharded`] counter or histogram: threads take turns as
/// they first ask.
fn shard() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static SHARD: usize = (NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS as u64) as usize;
    }
    SHARD.with(|s| *s)
}

/// A counter added to by many threads at high rates (every policy request): one cell per
/// [`shard`], summed when read.
#[derive(Debug, Default)]
pub struct Sharded {
    cells: [Line<AtomicU64>; SHARDS],
}

impl Sharded {
    /// +1.
    pub fn inc(&self) {
        self.add(1);
    }
    /// +n.
    pub fn add(&self, n: u64) {
        self.cells[shard()].0.fetch_add(n, Ordering::Relaxed);
    }
    /// Value.
    pub fn get(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |s, c| s.wrapping_add(c.0.load(Ordering::Relaxed)))
    }
}

/// One [`Histogram`] cell: its buckets, count and sum (a cache line's pair).
#[derive(Debug, Default)]
struct HistogramCell {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A fixed-bucket histogram, one cell per [`shard`] (the policy connections observe every
/// request), summed when read.
#[derive(Debug, Default)]
pub struct Histogram {
    cells: [Line<HistogramCell>; SHARDS],
}

impl Histogram {
    /// Observe one duration.
    pub fn observe(&self, d: std::time::Duration) {
        self.observe_n(d, 1);
    }

    /// Observe `n` durations of `d` (the requests answered together).
    pub fn observe_n(&self, d: std::time::Duration, n: u64) {
        let c = &self.cells[shard()].0;
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| s <= *b) {
            c.buckets[i].fetch_add(n, Ordering::Relaxed);
        }
        c.count.fetch_add(n, Ordering::Relaxed);
        c.sum_nanos
            .fetch_add(n.saturating_mul(d.as_nanos() as u64), Ordering::Relaxed);
    }

    /// Observations in bucket `i` (not cumulative).
    fn bucket(&self, i: usize) -> u64 {
        self.sum_of(|c| &c.buckets[i])
    }

    /// Observations.
    pub fn count(&self) -> u64 {
        self.sum_of(|c| &c.count)
    }

    /// Sum of the observed durations, nanoseconds.
    fn sum_nanos(&self) -> u64 {
        self.sum_of(|c| &c.sum_nanos)
    }

    fn sum_of(&self, field: impl Fn(&HistogramCell) -> &AtomicU64) -> u64 {
        self.cells.iter().fold(0u64, |s, c| {
            s.wrapping_add(field(&c.0).load(Ordering::Relaxed))
        })
    }
}

/// A value the engine thread copies from the engine's own counters (a gauge, or a counter the
/// engine keeps and a checkpoint carries across restarts).
#[derive(Debug, Default)]
pub struct Copied(AtomicU64);

impl Copied {
    /// Set.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a message claimed by a policy request was counted (`detect::claims::ClaimStats`;
/// `smtpscope_policy_claims_total{outcome}`).
pub const CLAIM_OUTCOMES: [(&str, &str); 4] = [
    ("claimed", "claimed by a policy request"),
    (
        "matched",
        "taken by its log line, counted once from the log",
    ),
    (
        "policy_only",
        "counted from the request alone, no log line in time",
    ),
    (
        "overflowed",
        "counted early because too many claims were waiting",
    ),
];

/// Kinds of state the engine drops at its caps (`detect::engine::Evictions`;
/// `smtpscope_engine_evicted_total{state}`).
pub const EVICTED_STATES: [&str; 7] = [
    "messages",
    "hijack_accounts",
    "hijack_established",
    "extrusion_entities",
    "helo_entities",
    "bruteforce_accounts",
    "bruteforce_attackers",
];

/// The engine's own counters, copied by the engine thread after every message it handles.
#[derive(Debug, Default)]
pub struct EngineCounters {
    /// Events fed to the engine.
    pub events: Copied,
    /// Message records completed.
    pub records: Copied,
    /// …closed without their queue-removal line (idle, or evicted).
    pub incomplete: Copied,
    /// Policy claims, by [`CLAIM_OUTCOMES`].
    pub claims: [Copied; 4],
    /// Messages whose HELO was lent by their session's policy request.
    pub helo_lent: Copied,
    /// Sessions' HELOs forgotten early because the table was full.
    pub helo_dropped: Copied,
    /// Failed logins for names without hijack state (counted per attacker, not per account).
    pub unknown_account_failures: Copied,
    /// State dropped at the caps, by [`EVICTED_STATES`].
    pub evicted: [Copied; 7],
    /// Accounts with hijack state now (gauge).
    pub hijack_accounts: Copied,
    /// Entities with extrusion state now (gauge).
    pub extrusion_entities: Copied,
    /// Entities whose state is packed, as of the engine's last sweep, by [`PACKED_DETECTORS`]
    /// (gauge).
    pub packed: [Copied; 4],
    /// Bytes of the learned dictionaries packed states are compressed with (gauge).
    pub packing_dictionary_bytes: Copied,
}

/// Detectors whose idle per-entity state is packed (`detect::engine::Frozen`;
/// `smtpscope_engine_packed_entities{detector}`).
pub const PACKED_DETECTORS: [&str; 4] = [
    "auth-hijack",
    "auth-bruteforce",
    "extrusion",
    "helo-anomaly",
];

impl EngineCounters {
    /// Copy the engine's counters.
    pub fn copy_from(&self, e: &detect::Engine) {
        let st = e.stats();
        self.events.set(st.events);
        self.records.set(e.correlator_stats().records);
        self.incomplete.set(e.correlator_stats().incomplete);
        let c = e.claim_stats();
        for (slot, v) in self
            .claims
            .iter()
            .zip([c.claimed, c.matched, c.policy_only, c.overflowed])
        {
            slot.set(v);
        }
        self.helo_lent.set(c.helo_lent);
        self.helo_dropped.set(c.helo_dropped);
        let h = e.hijack_stats();
        self.unknown_account_failures
            .set(h.failures_unknown_account);
        self.hijack_accounts.set(h.tracked);
        self.extrusion_entities.set(e.tracked_entities() as u64);
        let p = e.packed();
        for (slot, v) in self
            .packed
            .iter()
            .zip([p.hijack, p.bruteforce, p.extrusion, p.helo])
        {
            slot.set(v as u64);
        }
        self.packing_dictionary_bytes.set(p.dictionary_bytes as u64);
        let ev = e.evictions();
        for (slot, v) in self.evicted.iter().zip([
            ev.messages,
            ev.hijack_accounts,
            ev.hijack_established,
            ev.extrusion_entities,
            ev.helo_entities,
            ev.brute_accounts,
            ev.brute_attackers,
        ]) {
            slot.set(v);
        }
    }

    fn render(&self, o: &mut String) {
        let one = |o: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        one(
            o,
            "smtpscope_engine_events_total",
            "counter",
            "Events fed to the detection engine (carried across restarts by the checkpoint).",
            self.events.get(),
        );
        one(
            o,
            "smtpscope_engine_records_total",
            "counter",
            "Message records the correlator completed.",
            self.records.get(),
        );
        one(
            o,
            "smtpscope_engine_records_incomplete_total",
            "counter",
            "Message records closed without their queue-removal line (idle, or evicted).",
            self.incomplete.get(),
        );
        let _ = writeln!(
            o,
            "# HELP smtpscope_policy_claims_total Messages of policy requests, by how they were counted: claimed (all), matched (taken by their log line, counted once from the log), policy_only (no log line in time), overflowed (counted early, too many waiting).\n# TYPE smtpscope_policy_claims_total counter"
        );
        for ((outcome, _), v) in CLAIM_OUTCOMES.iter().zip(&self.claims) {
            let _ = writeln!(
                o,
                "smtpscope_policy_claims_total{{outcome=\"{outcome}\"}} {}",
                v.get()
            );
        }
        one(
            o,
            "smtpscope_policy_helo_lent_total",
            "counter",
            "Messages whose HELO came from their session's policy request (the log had none).",
            self.helo_lent.get(),
        );
        one(
            o,
            "smtpscope_policy_helo_dropped_total",
            "counter",
            "Sessions' HELOs from policy requests forgotten early because the table was full.",
            self.helo_dropped.get(),
        );
        one(
            o,
            "smtpscope_hijack_unknown_account_failures_total",
            "counter",
            "Failed logins for names without hijack state (counted per attacker, no per-account state created).",
            self.unknown_account_failures.get(),
        );
        let _ = writeln!(
            o,
            "# HELP smtpscope_engine_evicted_total Detection state dropped to stay within the caps ([detect.limits], messages in flight), by kind; it can delay a detection, never invent one.\n# TYPE smtpscope_engine_evicted_total counter"
        );
        for (state, v) in EVICTED_STATES.iter().zip(&self.evicted) {
            let _ = writeln!(
                o,
                "smtpscope_engine_evicted_total{{state=\"{state}\"}} {}",
                v.get()
            );
        }
        let _ = writeln!(
            o,
            "# HELP smtpscope_engine_packed_entities Accounts and clients whose detector state is packed because they were idle ([detect.limits] pack_idle_after), as of the engine's last hourly sweep; memory only, detection is the same.\n# TYPE smtpscope_engine_packed_entities gauge"
        );
        for (det, v) in PACKED_DETECTORS.iter().zip(&self.packed) {
            let _ = writeln!(
                o,
                "smtpscope_engine_packed_entities{{detector=\"{det}\"}} {}",
                v.get()
            );
        }
        one(
            o,
            "smtpscope_engine_packing_dictionary_bytes",
            "gauge",
            "Bytes of the compression dictionaries the engine learned from its own packed states (zstd's memory, outside the heap figures), as of its last hourly sweep.",
            self.packing_dictionary_bytes.get(),
        );
        one(
            o,
            "smtpscope_hijack_accounts",
            "gauge",
            "Accounts with hijack-detection state.",
            self.hijack_accounts.get(),
        );
        one(
            o,
            "smtpscope_extrusion_entities",
            "gauge",
            "Entities (accounts, clients, senders) with extrusion-detection state.",
            self.extrusion_entities.get(),
        );
    }
}

/// Every counter of the service.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Lines or requests received, by source kind.
    pub lines: [Sharded; 3],
    /// Lines without a recognizable header, by source kind.
    pub parse_failures: [Counter; 3],
    /// Alerts by detector (index in `Detector::ALL`).
    pub alerts: [Counter; Detector::ALL.len()],
    /// Policy requests answered DUNNO.
    pub policy_dunno: Sharded,
    /// Policy requests answered with the containment action.
    pub policy_acted: Counter,
    /// Policy requests that would have been acted on (observe mode).
    pub policy_would_act: Counter,
    /// Requests not analysed because the engine queue was full (answered from the snapshot).
    pub fail_open: Counter,
    /// Malformed policy requests (garbage, too long, missing fields).
    pub policy_malformed: Counter,
    /// Policy connections dropped for slowness.
    pub policy_timeouts: Counter,
    /// Policy latency.
    pub policy_latency: Histogram,
    /// Syslog datagrams dropped because the engine queue was full.
    pub syslog_dropped: Counter,
    /// Syslog refused, by [`SyslogRefusal`].
    pub syslog_refused: [Counter; 4],
    /// Policy connections refused or closed, by [`PolicyRefusal`].
    pub policy_refused: [Counter; 2],
    /// Policy connections open (gauge, all policy listeners).
    pub policy_open: Arc<AtomicU64>,
    /// Syslog TCP connections open (gauge, all syslog listeners).
    pub syslog_open: Arc<AtomicU64>,
    /// sFlow datagrams received.
    pub sflow_datagrams: Counter,
    /// sFlow datagrams accepted (agent allowed, header decoded).
    pub sflow_accepted: Counter,
    /// sFlow datagrams rejected (agent not allowed, or malformed).
    pub sflow_rejected: Counter,
    /// Flow samples in accepted sFlow datagrams.
    pub sflow_flow_samples: Counter,
    /// Sampled TCP packets to an SMTP port.
    pub sflow_smtp_samples: Counter,
    /// sFlow datagrams lost on the way, by the agents' sequence numbers.
    pub sflow_lost: Counter,
    /// sFlow alerts dropped because the engine queue was full.
    pub sflow_alerts_dropped: Counter,
    /// Alerts written to the JSONL file.
    pub jsonl_written: Counter,
    /// Webhook posts that succeeded / finally failed.
    pub webhook_ok: Counter,
    /// Webhook posts given up after retries, or dropped (queue full).
    pub webhook_failed: Counter,
    /// Incidents opened.
    pub incidents_opened: Counter,
    /// Automatic and manual containments.
    pub containments: Counter,
    /// Queue ids Postfix held for a contained entity, recorded under its incident.
    pub held_recorded: Counter,
    /// Held queue ids not recorded: no incident found, the incident's list full
    /// (`held::MAX_HELD_PER_INCIDENT`), or too many `NOQUEUE: hold` lines waiting.
    pub held_dropped: Counter,
    /// postsuper runs for an incident's held mail (release or delete).
    pub postsuper_runs: Counter,
    /// Store write errors.
    pub store_errors: Counter,
    /// Events the engine panicked on (skipped).
    pub engine_panics: Counter,
    /// Configuration reloads.
    pub reloads: Counter,
    /// File rotations seen (rename or truncation).
    pub rotations: Counter,
    /// Truncations of a followed file with no copy beside it to finish from (lines written just
    /// before the truncation and not yet read are lost).
    pub follow_unrecovered: Counter,
    /// Checkpoints of the engine's state written.
    pub checkpoints: Counter,
    /// Lines read again after a restart, from the last checkpoint's positions up to where the
    /// engine had been fed before it stopped.
    pub replayed_lines: Counter,
    /// Alerts those lines raised again (already committed before the stop; not raised twice).
    pub replayed_alerts: Counter,
    /// Engine queue depth (set by the engine).
    pub queue_depth: AtomicU64,
    /// How long the last checkpoint paused the engine thread (serializing), microseconds.
    pub checkpoint_pause_us: Copied,
    /// Size of the last checkpoint written (compressed), bytes.
    pub checkpoint_bytes: Copied,
    /// The overview's collector (`crate::seen`): message records kept.
    pub figure_records: Copied,
    /// Records it left out at its cap.
    pub figure_dropped: Copied,
    /// Records it let go (out of its window, or replaced by a flagged account's).
    pub figure_evicted: Copied,
    /// The engine's own counters (set by the engine thread).
    pub engine: EngineCounters,
}

impl Metrics {
    /// Count a syslog refusal.
    pub fn syslog_refused(&self, why: SyslogRefusal) {
        self.syslog_refused[why as usize].inc();
    }

    /// Count a policy refusal.
    pub fn policy_refused(&self, why: PolicyRefusal) {
        self.policy_refused[why as usize].inc();
    }

    /// Count an alert.
    pub fn alert(&self, d: Detector) {
        if let Some(i) = Detector::ALL.iter().position(|x| *x == d) {
            self.alerts[i].inc();
        }
    }

    /// Prometheus text format.
    pub fn render(&self, contained: usize, uptime: f64) -> String {
        let mut o = String::with_capacity(4096);
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let _ = writeln!(
            o,
            "# HELP smtpscope_lines_total Log lines and policy requests received, by source.\n# TYPE smtpscope_lines_total counter"
        );
        for (i, s) in SOURCES.iter().enumerate() {
            let _ = writeln!(
                o,
                "smtpscope_lines_total{{source=\"{s}\"}} {}",
                self.lines[i].get()
            );
        }
        let _ = writeln!(
            o,
            "# HELP smtpscope_parse_failures_total Lines that could not be parsed, by source.\n# TYPE smtpscope_parse_failures_total counter"
        );
        for (i, s) in SOURCES.iter().enumerate() {
            let _ = writeln!(
                o,
                "smtpscope_parse_failures_total{{source=\"{s}\"}} {}",
                self.parse_failures[i].get()
            );
        }
        let _ = writeln!(
            o,
            "# HELP smtpscope_alerts_total Alerts raised, by detector.\n# TYPE smtpscope_alerts_total counter"
        );
        for (i, d) in Detector::ALL.iter().enumerate() {
            let _ = writeln!(
                o,
                "smtpscope_alerts_total{{detector=\"{}\"}} {}",
                d.as_str(),
                self.alerts[i].get()
            );
        }
        let _ = writeln!(
            o,
            "# HELP smtpscope_contained_entities Accounts, clients and senders currently contained.\n# TYPE smtpscope_contained_entities gauge\nsmtpscope_contained_entities {contained}"
        );
        let _ = writeln!(
            o,
            "# HELP smtpscope_policy_requests_total Policy requests answered, by answer.\n# TYPE smtpscope_policy_requests_total counter"
        );
        for (a, n) in [
            ("dunno", self.policy_dunno.get()),
            ("action", self.policy_acted.get()),
            ("would_act", self.policy_would_act.get()),
        ] {
            let _ = writeln!(o, "smtpscope_policy_requests_total{{answer=\"{a}\"}} {n}");
        }
        counter(
            &mut o,
            "smtpscope_policy_fail_open_total",
            "Policy requests answered without analysis because the engine was overloaded.",
            self.fail_open.get(),
        );
        counter(
            &mut o,
            "smtpscope_policy_malformed_total",
            "Malformed policy requests (garbage, over-long, missing fields).",
            self.policy_malformed.get(),
        );
        counter(
            &mut o,
            "smtpscope_policy_timeouts_total",
            "Policy connections closed because a request was too slow.",
            self.policy_timeouts.get(),
        );
        let _ = writeln!(
            o,
            "# HELP smtpscope_policy_refused_total Policy connections refused (peer outside policy_peers) or closed to make room (evicted), by reason.\n# TYPE smtpscope_policy_refused_total counter"
        );
        for r in PolicyRefusal::ALL {
            let _ = writeln!(
                o,
                "smtpscope_policy_refused_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.policy_refused[r as usize].get()
            );
        }
        let _ = writeln!(
            o,
            "# HELP smtpscope_syslog_refused_total Syslog datagrams or TCP connections refused (peer outside syslog_peers) or closed (evicted, timeout, bad_frame), by reason.\n# TYPE smtpscope_syslog_refused_total counter"
        );
        for r in SyslogRefusal::ALL {
            let _ = writeln!(
                o,
                "smtpscope_syslog_refused_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.syslog_refused[r as usize].get()
            );
        }
        let _ = writeln!(
            o,
            "# HELP smtpscope_connections_open Policy and syslog TCP connections open, by source.\n# TYPE smtpscope_connections_open gauge\nsmtpscope_connections_open{{source=\"policy\"}} {}\nsmtpscope_connections_open{{source=\"syslog\"}} {}",
            self.policy_open.load(Ordering::Relaxed),
            self.syslog_open.load(Ordering::Relaxed)
        );
        let h = &self.policy_latency;
        // Read once: `+Inf` and `_count` must agree while connections keep adding.
        let count = h.count();
        let _ = writeln!(
            o,
            "# HELP smtpscope_policy_latency_seconds Time from a complete request to its answer.\n# TYPE smtpscope_policy_latency_seconds histogram"
        );
        let mut cum = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cum += h.bucket(i);
            let _ = writeln!(
                o,
                "smtpscope_policy_latency_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        let _ = writeln!(
            o,
            "smtpscope_policy_latency_seconds_bucket{{le=\"+Inf\"}} {}\nsmtpscope_policy_latency_seconds_sum {}\nsmtpscope_policy_latency_seconds_count {}",
            count,
            h.sum_nanos() as f64 / 1e9,
            count
        );
        for (name, help, v) in [
            (
                "smtpscope_syslog_dropped_total",
                "Syslog datagrams dropped because the engine queue was full.",
                self.syslog_dropped.get(),
            ),
            (
                "smtpscope_sflow_datagrams_total",
                "sFlow datagrams received.",
                self.sflow_datagrams.get(),
            ),
            (
                "smtpscope_sflow_accepted_total",
                "sFlow datagrams accepted (agent allowed, header decoded).",
                self.sflow_accepted.get(),
            ),
            (
                "smtpscope_sflow_rejected_total",
                "sFlow datagrams rejected (agent not allowed, or malformed).",
                self.sflow_rejected.get(),
            ),
            (
                "smtpscope_sflow_flow_samples_total",
                "Flow samples in accepted sFlow datagrams.",
                self.sflow_flow_samples.get(),
            ),
            (
                "smtpscope_sflow_smtp_samples_total",
                "Sampled TCP packets to an SMTP port.",
                self.sflow_smtp_samples.get(),
            ),
            (
                "smtpscope_sflow_lost_total",
                "sFlow datagrams lost on the way (agents' sequence numbers).",
                self.sflow_lost.get(),
            ),
            (
                "smtpscope_sflow_alerts_dropped_total",
                "sFlow alerts dropped because the engine queue was full.",
                self.sflow_alerts_dropped.get(),
            ),
            (
                "smtpscope_alerts_jsonl_written_total",
                "Alerts written to the JSONL file.",
                self.jsonl_written.get(),
            ),
            (
                "smtpscope_webhook_ok_total",
                "Alerts posted to the webhook.",
                self.webhook_ok.get(),
            ),
            (
                "smtpscope_webhook_failed_total",
                "Alerts the webhook did not take after every retry, or dropped.",
                self.webhook_failed.get(),
            ),
            (
                "smtpscope_incidents_opened_total",
                "Incidents opened.",
                self.incidents_opened.get(),
            ),
            (
                "smtpscope_containments_total",
                "Containments (automatic and by hand).",
                self.containments.get(),
            ),
            (
                "smtpscope_held_recorded_total",
                "Queue ids Postfix held for a contained entity, recorded under its incident.",
                self.held_recorded.get(),
            ),
            (
                "smtpscope_held_dropped_total",
                "Held queue ids not recorded (no incident, the incident's list full, too many waiting).",
                self.held_dropped.get(),
            ),
            (
                "smtpscope_postsuper_runs_total",
                "postsuper runs for an incident's held mail.",
                self.postsuper_runs.get(),
            ),
            (
                "smtpscope_store_errors_total",
                "Store write errors.",
                self.store_errors.get(),
            ),
            (
                "smtpscope_engine_panics_total",
                "Events skipped because the engine panicked on them.",
                self.engine_panics.get(),
            ),
            (
                "smtpscope_reloads_total",
                "Configuration reloads.",
                self.reloads.get(),
            ),
            (
                "smtpscope_file_rotations_total",
                "Followed-file rotations and truncations seen.",
                self.rotations.get(),
            ),
            (
                "smtpscope_follow_truncations_unrecovered_total",
                "Truncations of a followed file with no copy beside it to finish from (unread lines lost).",
                self.follow_unrecovered.get(),
            ),
            (
                "smtpscope_checkpoints_total",
                "Checkpoints of the engine's detection state (with the file positions) written.",
                self.checkpoints.get(),
            ),
            (
                "smtpscope_replayed_lines_total",
                "Followed-file lines read again after a restart, from the last checkpoint up to where the engine had been fed.",
                self.replayed_lines.get(),
            ),
            (
                "smtpscope_replayed_alerts_suppressed_total",
                "Alerts raised again by replayed lines and not sent twice.",
                self.replayed_alerts.get(),
            ),
        ] {
            counter(&mut o, name, help, v);
        }
        self.engine.render(&mut o);
        let _ = writeln!(
            o,
            "# HELP smtpscope_checkpoint_pause_seconds How long the last checkpoint paused the engine thread (serializing its state; compression and the write run on another thread).\n# TYPE smtpscope_checkpoint_pause_seconds gauge\nsmtpscope_checkpoint_pause_seconds {}\n# HELP smtpscope_checkpoint_bytes Size of the last checkpoint written (compressed).\n# TYPE smtpscope_checkpoint_bytes gauge\nsmtpscope_checkpoint_bytes {}",
            self.checkpoint_pause_us.get() as f64 / 1e6,
            self.checkpoint_bytes.get()
        );
        let _ = writeln!(
            o,
            "# HELP smtpscope_figure_records Message records the overview's figures are drawn from (bounded, see docs/OPERATIONS.md).\n# TYPE smtpscope_figure_records gauge\nsmtpscope_figure_records {}",
            self.figure_records.get()
        );
        counter(
            &mut o,
            "smtpscope_figure_dropped_total",
            "Message records left out of the overview's figures at the collector's cap (unflagged senders).",
            self.figure_dropped.get(),
        );
        counter(
            &mut o,
            "smtpscope_figure_evicted_total",
            "Message records the overview's collector let go (older than its window, or replaced by a flagged account's).",
            self.figure_evicted.get(),
        );
        let _ = writeln!(
            o,
            "# HELP smtpscope_engine_queue_depth Events waiting for the engine.\n# TYPE smtpscope_engine_queue_depth gauge\nsmtpscope_engine_queue_depth {}\n# HELP smtpscope_uptime_seconds Seconds since start.\n# TYPE smtpscope_uptime_seconds gauge\nsmtpscope_uptime_seconds {uptime:.0}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histogram_cumulatively() {
        let m = Metrics::default();
        m.policy_latency
            .observe(std::time::Duration::from_micros(30));
        m.policy_latency
            .observe(std::time::Duration::from_micros(700));
        m.lines[SourceKind::Syslog as usize].add(5);
        m.alert(Detector::DeliveryFailures);
        let t = m.render(3, 1.0);
        assert!(
            t.contains("smtpscope_policy_latency_seconds_bucket{le=\"0.00005\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("smtpscope_policy_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(t.contains("smtpscope_policy_latency_seconds_bucket{le=\"0.001\"} 2\n"));
        assert!(t.contains("smtpscope_policy_latency_seconds_count 2\n"));
        assert!(t.contains("smtpscope_lines_total{source=\"syslog\"} 5\n"));
        assert!(t.contains("smtpscope_alerts_total{detector=\"delivery-failures\"} 1\n"));
        assert!(t.contains("smtpscope_contained_entities 3\n"));
    }

    /// Counts added on many threads land in different cells and are all summed: every thread's
    /// additions, whatever cell it took, however many threads share one.
    #[test]
    fn sharded_counts_from_many_threads_add_up() {
        let m = Metrics::default();
        let threads = 2 * SHARDS + 3;
        std::thread::scope(|s| {
            for t in 0..threads {
                let m = &m;
                s.spawn(move || {
                    for _ in 0..1000 {
                        m.lines[SourceKind::Policy as usize].inc();
                        m.policy_dunno.add(2);
                    }
                    m.policy_latency
                        .observe_n(std::time::Duration::from_micros(10 * (t as u64 + 1)), 3);
                });
            }
        });
        assert_eq!(
            m.lines[SourceKind::Policy as usize].get(),
            1000 * threads as u64
        );
        assert_eq!(m.policy_dunno.get(), 2000 * threads as u64);
        assert_eq!(m.policy_latency.count(), 3 * threads as u64);
        // Durations of 10, 20, ... µs: 10-50 µs in the first bucket, 60-100 µs in the second.
        assert_eq!(m.policy_latency.bucket(0), 3 * 5);
        assert_eq!(m.policy_latency.bucket(1), 3 * 5);
        let micros: u64 = (1..=threads as u64).map(|t| 10 * t).sum();
        assert_eq!(m.policy_latency.sum_nanos(), 3 * 1000 * micros);
        // More threads than cells: some share one, and no cell is left out of the sums.
        let used = m.lines[SourceKind::Policy as usize]
            .cells
            .iter()
            .filter(|c| c.0.load(Ordering::Relaxed) > 0)
            .count();
        assert!(used > 1, "the threads took {used} cell(s)");
    }
}
