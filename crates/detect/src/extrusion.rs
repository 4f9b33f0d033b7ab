//! Extrusion detection: `delivery-failures`, mailing-list recognition, `multiple-lists`, and
//! rejection-daemon discounting.
//!
//! The idea (Clayton, "Stopping Spam by Extrusion Detection", CEAS 2004; "Stopping Outgoing Spam
//! by Examining Incoming Server Logs", CEAS 2005): spam fails. It goes to harvested, ancient and
//! invented addresses and is refused by remote filters, while a real customer's mail mostly
//! arrives. So count, per customer, the distinct recipients that failed for a reason spam produces
//! — but not the failures of bounces (null sender), of mail we forward for our own users, of
//! mailing lists (most deliveries work, ~10% fail), or of rejection daemons (autoresponders
//! answering spam whose sender was forged) — and judge them against what the customer's mail
//! does otherwise: enough failures AND a failure share real senders do not reach, estimated with
//! the entity's own history (or a typical sender's) as a prior, so that a handful of outcomes
//! cannot decide alone.
//!
//! A client or account that relays for several envelope senders (a shared web-hosting server) is
//! also judged per sender address and per sender domain: one hacked site's failures drown in the
//! server's legitimate mail when counted per client. When the failing senders are a minority of
//! what the client sends, they are reported as `sender` entities and their mail is left out of
//! the client's own verdict; when they are most of it, the client itself is the problem.

use std::collections::{BTreeMap, VecDeque};
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use maillog::hash::Map as HashMap;

use maillog::record::{MessageRecord, Outcome, Recipient};
use maillog::Ts;
use serde::Serialize;

use crate::alert::{round3, Alert, Detector, Entity, EntityKind};
use crate::bounded::BoundedMap;
use crate::cold::{Cold, ColdMap};
use crate::compact::Rare;
use crate::config::Config;
use crate::evidence::{MessageSample, SampleOfRecord, Samples};
use crate::window::RareCounter;

/// Most sender addresses tracked per entity for list recognition.
pub const MAX_SENDERS_PER_ENTITY: usize = 32;
/// Most distinct recipients remembered exactly per sender address (enough to call it a list).
pub const MAX_RCPTS_PER_SENDER: usize = 4096;
/// Most distinct failure replies counted per entity for the evidence.
pub const MAX_REPLIES: usize = 16;
/// Slices a [`Tally`] keeps its window in: a window of one day is kept hour by hour, so an
/// entity's failure counts cost at most this many small records however much it sends.
pub const TALLY_SLICES: i64 = 24;
/// Most distinct failed recipients remembered per entity, to count each failed address once per
/// window (a forwarder whose one external mailbox refuses its mail fails again and again on the
/// same address; spam fails on ever new ones). Beyond this, failures count as new
/// (`failed_rcpt_memory_full` in the evidence says how often).
pub const MAX_FAILED_RCPTS: usize = 4096;
/// Sample messages kept per tracked sender of a relaying client.
pub const SENDER_SAMPLES: usize = 4;
/// Other sender domains with mail delivered in the window that make a client a relay for
/// several senders, so that one failing sender domain is reported on its own (a shared
/// web-hosting server) rather than the client. One is enough: an infected PC sends only its
/// own (forged) senders, and a bot rotating forged domains fails on all of them, so the rest
/// of its mail is no cleaner. Our own idea.
pub const MIN_OTHER_SENDER_DOMAINS: usize = 1;

fn hash_str(s: &str) -> u64 {
    // Case-insensitive, the same in every run.
    maillog::hash::str_key_ci(s)
}

/// Why a recipient failed, as far as spam is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No such user, no such domain, disabled mailbox: the harvested, ancient and invented
    /// addresses spam is sent to.
    BadAddress,
    /// Refused as spam or malware, or because the sender or client is on a block list.
    Refused,
    /// A permanent failure whose reply says nothing either way (counted: Clayton counts every
    /// failure).
    Unexplained,
    /// Mailbox full, message too big, a mail loop, given up after temporary errors, or refused
    /// by our own server for the client's set-up (HELO, sender domain): real senders' failures,
    /// not what spam is known by. Known outcomes, never counted as spam failures.
    NotSpam,
}

/// Reply texts (lower-case substrings) of failures that are not spam's.
const NOT_SPAM_TEXT: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "insufficient storage",
    "too large",
    "too big",
    "size limit",
    "exceeds size",
    "mail loop",
    "loops back to myself",
    "helo command rejected",
    "need fully-qualified",
    "sender address rejected: domain not found",
];
/// Reply texts of refusals as spam, malware or by block list.
const REFUSED_TEXT: &[&str] = &[
    "spam",
    "blocked",
    "blacklist",
    "blocklist",
    "block list",
    "listed",
    "reputation",
    "virus",
    "malware",
    "phish",
    "dnsbl",
];
/// Reply texts of addresses that do not exist (any more).
const BAD_ADDRESS_TEXT: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such recipient",
    "no such mailbox",
    "unknown recipient",
    "recipient unknown",
    "does not exist",
    "doesn't exist",
    "invalid recipient",
    "invalid mailbox",
    "mailbox unavailable",
    "mailbox not found",
    "recipient not found",
    "address not found",
    "unrouteable",
    "unroutable",
    "host or domain name not found",
    "host not found",
    "account disabled",
    "mailbox disabled",
];

/// The phrase lists in the order they are tried, with the kind each gives.
const PHRASE_LISTS: [(&[&str], FailureKind); 3] = [
    (NOT_SPAM_TEXT, FailureKind::NotSpam),
    (REFUSED_TEXT, FailureKind::Refused),
    (BAD_ADDRESS_TEXT, FailureKind::BadAddress),
];

/// The phrases of [`PHRASE_LISTS`], searched for in a reply (see [`phrase_kind`]).
struct Phrases {
    /// Every phrase in one SIMD searcher (Teddy), run over the reply lower-cased; None where
    /// the CPU has no instructions for it.
    packed: Option<aho_corasick::packed::Searcher>,
    /// Every phrase in one automaton that ignores ASCII case, for CPUs without `packed`.
    automaton: AhoCorasick,
    /// The index in [`PHRASE_LISTS`] of each phrase's list, by pattern number (the same in both).
    list_of: Vec<usize>,
}

static PHRASES: LazyLock<Phrases> = LazyLock::new(|| {
    let mut pats = Vec::new();
    let mut list_of = Vec::new();
    for (i, (list, _)) in PHRASE_LISTS.iter().enumerate() {
        pats.extend_from_slice(list);
        list_of.extend(std::iter::repeat_n(i, list.len()));
    }
    let packed = aho_corasick::packed::Config::new()
        .match_kind(aho_corasick::packed::MatchKind::LeftmostLongest)
        .builder()
        .extend(&pats)
        .build();
    let automaton = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(&pats)
        .expect("a few constant phrases always make an automaton");
    Phrases {
        packed,
        automaton,
        list_of,
    }
});

/// Replies up to this many bytes are lower-cased on the stack for the packed search; longer
/// ones (the correlator keeps up to 512) into a vector.
const REPLY_ON_STACK: usize = 512;

/// The kind the first list with a phrase in `text` gives (lists in [`PHRASE_LISTS`] order),
/// ignoring ASCII case.
///
/// Searched with `aho-corasick`'s packed (SIMD) searcher over the reply lower-cased (every
/// phrase is lower-case ASCII): each search reports the leftmost phrase (the longest of those
/// that start there), and the next starts one byte after its start, so every occurrence is
/// seen but a phrase that begins another one found at the same place. That can change the
/// answer only when the shorter phrase's list comes first, and no phrase begins a phrase of
/// a later list (tested, `no_phrase_begins_one_of_a_later_list`). The automaton's overlapping
/// search it replaced stepped through every byte of the reply (about 315 ns a reply against
/// 146 in a micro-benchmark; 3,063 instructions a failed recipient on the benchmark log's
/// first 60 MB; docs/PERFORMANCE.md); it remains for CPUs without the packed searcher.
fn phrase_kind(text: &str) -> Option<FailureKind> {
    let p = &*PHRASES;
    let Some(packed) = &p.packed else {
        return phrase_kind_by_automaton(p, text);
    };
    let mut stack = [0u8; REPLY_ON_STACK];
    let mut heap;
    let lower: &mut [u8] = if text.len() <= REPLY_ON_STACK {
        let on_stack = &mut stack[..text.len()];
        on_stack.copy_from_slice(text.as_bytes());
        on_stack
    } else {
        heap = text.as_bytes().to_vec();
        &mut heap
    };
    lower.make_ascii_lowercase();
    let mut first: Option<usize> = None;
    let mut at = 0;
    while let Some(m) = packed.find_in(&*lower, aho_corasick::Span::from(at..lower.len())) {
        let l = p.list_of[m.pattern().as_usize()];
        if first.is_none_or(|f| l < f) {
            first = Some(l);
            if l == 0 {
                break;
            }
        }
        at = m.start() + 1;
    }
    first.map(|l| PHRASE_LISTS[l].1)
}

/// [`phrase_kind`] by the automaton: every occurrence of every phrase, overlapping.
fn phrase_kind_by_automaton(p: &Phrases, text: &str) -> Option<FailureKind> {
    let mut first: Option<usize> = None;
    for m in p.automaton.find_overlapping_iter(text) {
        let l = p.list_of[m.pattern().as_usize()];
        if first.is_none_or(|f| l < f) {
            first = Some(l);
            if l == 0 {
                break;
            }
        }
    }
    first.map(|l| PHRASE_LISTS[l].1)
}

impl FailureKind {
    /// Classify a failed recipient by its reply text, then by its enhanced status code.
    pub fn of(rc: &Recipient) -> FailureKind {
        Self::from_reply(rc.dsn(), rc.reply(), rc.outcome)
    }

    /// Classify from the enhanced status code, reply text and outcome.
    pub fn from_reply(dsn: Option<&str>, reply: Option<&str>, outcome: Outcome) -> FailureKind {
        if let Some(k) = phrase_kind(reply.unwrap_or("")) {
            return k;
        }
        match dsn {
            Some(d) if d.starts_with("5.1.") || d == "5.4.4" || d == "5.2.1" => {
                FailureKind::BadAddress
            }
            Some(d) if d.starts_with("5.7.") => FailureKind::Refused,
            Some("5.2.2" | "5.2.3" | "5.3.4" | "5.4.6") => FailureKind::NotSpam,
            Some(d) if d.starts_with("4.") => FailureKind::NotSpam,
            _ if outcome == Outcome::Expired => FailureKind::NotSpam,
            _ => FailureKind::Unexplained,
        }
    }

    /// True for the failures that count as evidence of spam.
    pub fn is_spam_sign(self) -> bool {
        self != FailureKind::NotSpam
    }
}

/// Outcomes of one entity's recipients over some time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Outcomes {
    /// Recipients delivered.
    pub delivered: u64,
    /// Distinct recipients failed for a reason spam produces ([`FailureKind::is_spam_sign`]).
    pub failed: u64,
    /// Distinct recipients failed for other reasons.
    pub failed_other: u64,
    /// Messages.
    pub messages: u64,
}

impl Outcomes {
    /// Recipients whose outcome is known: delivered or failed (deferred ones are not known yet).
    pub fn known(&self) -> u64 {
        self.delivered + self.failed + self.failed_other
    }
    fn add(&mut self, o: &Outcomes) {
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.failed_other += o.failed_other;
        self.messages += o.messages;
    }
    fn minus(&self, o: &Outcomes) -> Outcomes {
        Outcomes {
            delivered: self.delivered.saturating_sub(o.delivered),
            failed: self.failed.saturating_sub(o.failed),
            failed_other: self.failed_other.saturating_sub(o.failed_other),
            messages: self.messages.saturating_sub(o.messages),
        }
    }
}

/// [`Outcomes`] of one slice of a [`Tally`], in 32-bit counts: an entity keeps up to
/// [`TALLY_SLICES`] of them, and a slice (an hour of the default window) never sees four billion
/// recipients (the counts saturate). Its fields are [`Outcomes`]' names, so a snapshot holds
/// the same map with the same integers (MessagePack writes each in the fewest bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct SliceOutcomes {
    delivered: u32,
    failed: u32,
    failed_other: u32,
    messages: u32,
}

/// A count as a slice keeps it.
fn count32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl SliceOutcomes {
    fn of(o: &Outcomes) -> SliceOutcomes {
        SliceOutcomes {
            delivered: count32(o.delivered),
            failed: count32(o.failed),
            failed_other: count32(o.failed_other),
            messages: count32(o.messages),
        }
    }
    fn get(&self) -> Outcomes {
        Outcomes {
            delivered: self.delivered.into(),
            failed: self.failed.into(),
            failed_other: self.failed_other.into(),
            messages: self.messages.into(),
        }
    }
    fn add(&mut self, o: &Outcomes) {
        let mut sum = self.get();
        sum.add(o);
        *self = SliceOutcomes::of(&sum);
    }
}

/// One slice of a [`Tally`]: its number (seconds since 1970 over the slice width, an `i32`:
/// slices of an hour reach its end in 245,000 years; narrower ones are clamped like
/// [`crate::window::Counter`]'s minutes) and its outcomes. 20 bytes; it was 40.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Slice {
    slot: i32,
    o: SliceOutcomes,
}

/// An entity's outcomes in a sliding window, kept in [`TALLY_SLICES`] slices, plus what fell out
/// of the window (its history).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    slices: VecDeque<Slice>,
    /// Known outcomes that left the window.
    past_known: u64,
    /// Of which spam-sign failures.
    past_failed: u64,
}

/// Whether slice `slot` is in the window ending at slice `now`.
fn in_window(slot: i32, now: i32) -> bool {
    i64::from(slot) > i64::from(now) - TALLY_SLICES
}

impl Tally {
    fn slot(ts: Ts, window: i64) -> i32 {
        let s = ts.secs().div_euclid((window / TALLY_SLICES).max(1));
        s.clamp(i32::MIN.into(), i32::MAX.into()) as i32
    }

    /// Move slices that left the window ending at `ts` into the history.
    pub fn advance(&mut self, ts: Ts, window: i64) {
        self.advance_to(Self::slot(ts, window));
    }

    /// [`Tally::advance`] to the slice `now` (`Tally::slot` of the time).
    fn advance_to(&mut self, now: i32) {
        while let Some(f) = self.slices.front() {
            if in_window(f.slot, now) {
                break;
            }
            self.past_known += f.o.get().known();
            self.past_failed += u64::from(f.o.failed);
            self.slices.pop_front();
        }
    }

    /// Add outcomes at `ts`.
    pub fn add(&mut self, ts: Ts, window: i64, o: &Outcomes) {
        self.advance(ts, window);
        let s = Self::slot(ts, window);
        match self.slices.back_mut() {
            // Same slice, or an out-of-order event (interleaved files): count it in the newest.
            Some(b) if b.slot >= s => b.o.add(o),
            _ => crate::compact::push_back(
                &mut self.slices,
                Slice {
                    slot: s,
                    o: SliceOutcomes::of(o),
                },
            ),
        }
    }

    /// Outcomes in the window (as of the last `add`/`advance`).
    pub fn window(&self) -> Outcomes {
        let mut o = Outcomes::default();
        for s in &self.slices {
            o.add(&s.o.get());
        }
        o
    }

    /// The slices in the window ending at slice `now` (`Tally::slot` of the time): those that
    /// [`Tally::advance_to`] would keep, left where they are.
    fn slices_at(&self, now: i32) -> impl Iterator<Item = &Slice> {
        self.slices
            .iter()
            .skip_while(move |s| !in_window(s.slot, now))
    }

    /// Whether the window ending at slice `now` holds spam-sign failures: `window().failed > 0`
    /// after advancing to it, without adding up the other outcomes and without moving anything
    /// into the history. (Read from the newest slice back instead, the benchmark log took
    /// 117 M instructions more: most groups asked are quiet, their slices old.)
    fn failing_at(&self, now: i32) -> bool {
        self.slices_at(now).any(|s| s.o.failed > 0)
    }

    /// None when the window ending at slice `now` holds no spam-sign failures
    /// ([`Tally::failing_at`] false); otherwise the first slice whose window holds none of
    /// them (its newest failure's slice plus [`TALLY_SLICES`]), as long as nothing is added.
    fn quiet_from(&self, now: i32) -> Option<i32> {
        let newest = self.slices_at(now).filter(|s| s.o.failed > 0).last()?.slot;
        Some(newest.saturating_add(TALLY_SLICES as i32))
    }

    /// Outcomes in the window ending at slice `now`: [`Tally::window`] after advancing to it,
    /// without moving anything into the history.
    fn window_at(&self, now: i32) -> Outcomes {
        let mut o = Outcomes::default();
        for s in self.slices_at(now) {
            o.add(&s.o.get());
        }
        o
    }

    /// Known outcomes and spam-sign failures that left the window ending at slice `now`: the
    /// history (`past_known`, `past_failed`) after advancing to it, without moving anything.
    fn past_at(&self, now: i32) -> (u64, u64) {
        let (mut known, mut failed) = (self.past_known, self.past_failed);
        for s in self.slices.iter().take_while(|s| !in_window(s.slot, now)) {
            known += s.o.get().known();
            failed += u64::from(s.o.failed);
        }
        (known, failed)
    }

    /// The prior failure share: the entity's history shrunk toward the typical sender's, so an
    /// entity seen for long is judged against itself and a new one against a typical sender.
    pub fn prior_share(&self, cfg: &Config) -> f64 {
        prior_from(cfg, self.past_known, self.past_failed)
    }

    /// Take outcomes `o` added last out of the newest slice again.
    fn remove_newest(&mut self, o: &Outcomes) {
        if let Some(b) = self.slices.back_mut() {
            b.o = SliceOutcomes::of(&b.o.get().minus(o));
        }
    }
}

/// A history of `known` outcomes of which `failed` spam-sign failures, shrunk toward
/// `typical_failure_share` with `prior_weight` recipients' worth of it.
fn prior_from(cfg: &Config, known: u64, failed: u64) -> f64 {
    let d = &cfg.delivery_failures;
    let w = d.prior_weight.max(0.0);
    let den = known as f64 + w;
    if den <= 0.0 {
        return d.typical_failure_share;
    }
    (failed as f64 + w * d.typical_failure_share) / den
}

/// The evidence-weighed failure share: the window's spam-sign failures over its known outcomes,
/// with `prior_weight` recipients' worth of the prior share added to both.
pub fn estimated_share(cfg: &Config, o: &Outcomes, prior_share: f64) -> f64 {
    let w = cfg.delivery_failures.prior_weight.max(0.0);
    let den = o.known() as f64 + w;
    if den <= 0.0 {
        return 0.0;
    }
    (o.failed as f64 + w * prior_share) / den
}

/// The `delivery-failures` verdict on some outcomes: more failures than the threshold (Clayton),
/// and an estimated failure share that real senders do not reach.
fn fails_like_spam(cfg: &Config, o: &Outcomes, prior_share: f64) -> bool {
    let d = &cfg.delivery_failures;
    o.failed > d.threshold && estimated_share(cfg, o, prior_share) >= d.min_failure_share
}

fn raw_share(o: &Outcomes) -> f64 {
    o.failed as f64 / o.known().max(1) as f64
}

/// One sender address of an entity, for list recognition. Its counts are of one window (a
/// tumbling one) and 32-bit (they saturate; a snapshot holds the same integers), its address an
/// exact `Box<str>`: 120 bytes, it was 144.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SenderState {
    addr: Box<str>,
    first: Ts,
    last: Ts,
    messages: u32,
    rcpts: maillog::hash::Set<u64>,
    distinct: u32,
    repeats: u32,
    delivered: u32,
    failed: u32,
    /// Failed recipients in the sliding window (what the entity's count holds of this sender).
    failed_w: RareCounter,
    /// Recognised as a list until then (sticky for one window after the last recognition).
    list_until: Option<Ts>,
}

impl SenderState {
    /// A list for `multiple-lists`: list-like, and either a large fan-out (many distinct
    /// recipients, many per message) or a recipient set mailed again and again.
    fn list_beyond_doubt(&self, cfg: &Config) -> bool {
        let ml = &cfg.mailing_lists;
        let (distinct, repeats) = (u64::from(self.distinct), u64::from(self.repeats));
        let fanout = (distinct + repeats) as f64 / self.messages.max(1) as f64;
        self.list_like(cfg)
            && ((distinct >= ml.multiple_min_recipients && fanout >= ml.multiple_min_fanout)
                || repeats * 10 >= distinct * 3)
    }

    fn list_like(&self, cfg: &Config) -> bool {
        let done = u64::from(self.delivered) + u64::from(self.failed);
        u64::from(self.distinct) >= cfg.mailing_lists.min_recipients
            && done > 0
            && (self.failed as f64) / (done as f64) <= cfg.mailing_lists.max_failure_ratio
    }
}

/// One envelope sender (address, or `@domain`) of a client or account that relays for several.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Group {
    tally: Tally,
    last: Ts,
    /// Its mail is left out of the relaying entity's verdict until then (it was reported).
    flagged_until: Option<Ts>,
    /// Spam-sign failures in the window when it last alerted (re-alert when they double).
    alerted: u64,
    /// Reported (itself, or one of its addresses): its history is not the relaying entity's.
    reported: bool,
    samples: Samples,
}

impl Group {
    fn flagged(&self, ts: Ts) -> bool {
        self.flagged_until.is_some_and(|u| u >= ts)
    }
}

/// Per-sender accounting of a client or account, started once it used a second sender address.
/// Every entity keeps its first sender; the groups, which only an entity relaying for several
/// senders has, are absent until then (they were 64 bytes inline in every entity). A snapshot
/// holds the five fields of the flat struct it was, as before ([`SplitFields`]).
#[derive(Debug, Default)]
struct Split {
    first_sender: Option<Box<str>>,
    groups: Rare<Groups>,
}

/// The groups of an entity relaying for several sender addresses.
#[derive(Debug, Default, PartialEq)]
struct Groups {
    active: bool,
    addresses: BTreeMap<String, Group>,
    domains: BTreeMap<String, Group>,
    /// Senders not tracked because the tables were full of failing ones.
    dropped: u64,
    /// What the last searches of the full tables for a group to give up found (a cache: not
    /// in a snapshot or a packed state, and no part of equality).
    address_room: Room,
    domain_room: Room,
}

/// A [`Split`] as a snapshot holds it (the struct it was before its groups were boxed).
#[derive(serde::Serialize, serde::Deserialize)]
struct SplitFields<S, M> {
    first_sender: Option<S>,
    active: bool,
    addresses: M,
    domains: M,
    dropped: u64,
}

/// The groups of an entity that has none, to serialize.
static NO_GROUPS: BTreeMap<String, Group> = BTreeMap::new();

impl Split {
    /// Whether per-sender accounting started.
    fn active(&self) -> bool {
        self.groups.get().is_some_and(|g| g.active)
    }

    /// Senders not tracked because the tables were full.
    fn dropped(&self) -> u64 {
        self.groups.get().map_or(0, |g| g.dropped)
    }
}

impl serde::Serialize for Split {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.groups.get();
        SplitFields {
            first_sender: self.first_sender.as_deref(),
            active: self.active(),
            addresses: g.map_or(&NO_GROUPS, |g| &g.addresses),
            domains: g.map_or(&NO_GROUPS, |g| &g.domains),
            dropped: self.dropped(),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Split {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = SplitFields::<String, BTreeMap<String, Group>>::deserialize(d)?;
        let mut groups = Rare::default();
        groups.set(Groups {
            active: f.active,
            addresses: f.addresses,
            domains: f.domains,
            dropped: f.dropped,
            address_room: Room::default(),
            domain_room: Room::default(),
        });
        Ok(Split {
            first_sender: f.first_sender.map(String::into_boxed_str),
            groups,
        })
    }
}

/// Insert-or-get in a capped table. When full, the least recently seen group with no spam-sign
/// failures in the window makes room (deterministic: ties go to the smallest key); when every
/// group is failing, the newcomer is not tracked. Choosing changes no other group. `room` is
/// the table's [`Room`]: every change to the table's groups goes through here.
fn group_slot<'a>(
    map: &'a mut BTreeMap<String, Group>,
    room: &mut Room,
    key: &str,
    cap: usize,
    ts: Ts,
    window: i64,
) -> Option<&'a mut Group> {
    if !map.contains_key(key) {
        if map.len() >= cap.max(1) {
            let victim = room.victim(map, Tally::slot(ts, window))?;
            map.remove(&victim);
        }
        map.insert(key.to_string(), Group::default());
    }
    // The caller writes the group at `ts` (its `last`, its tally).
    room.touched(ts);
    map.get_mut(key)
}

/// Groups a search of a full table keeps as the next ones to give up, at most.
const ROOM_CANDIDATES: usize = 16;

/// The groups to give up next in a full sender table, found by one search of the whole table
/// and handed out one per newcomer while nothing can have come before them: a relaying
/// client's spam brings a new sender with nearly every message, and searching all
/// [`DeliveryFailureConfig::max_senders`] groups for each was 2.6% of `analyze`'s
/// instructions on the benchmark log (docs/PERFORMANCE.md, "Steps of 2026-12-07, afternoon").
/// The answer is always [`least_recent_quiet`]'s (tested against it).
///
/// A search (at slice `now`) keeps the [`ROOM_CANDIDATES`] quiet groups that come first (least
/// recent, then smallest key), and the slice at which the first of the failing groups that
/// come before the last of them could be quiet (`recheck`: a failing group's newest spam-sign
/// failure leaves the window then). A candidate is the answer at a later slice when the
/// groups written since (`touched`) are all more recent than it, it is unchanged (same
/// `last`) and still quiet, and the slice is not before the search's (a window read earlier
/// holds older failures) nor at or after `recheck`. Otherwise the table is searched again.
#[derive(Debug, Clone, Default)]
struct Room {
    /// The search's slice, none before the first.
    searched_at: Option<i32>,
    /// The slice from which the search's answer may be out of date.
    recheck: i32,
    /// The candidates (`last`, key), the first one last (popped first).
    candidates: Vec<(Ts, String)>,
    /// The search found every group failing: no room until `recheck`.
    none_quiet: bool,
    /// The earliest `last` written to the table since the search.
    touched: Option<Ts>,
}

/// A cache: two tables with the same groups are equal whatever their searches found.
impl PartialEq for Room {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Room {
    /// A group of the table was written with `last = ts`.
    fn touched(&mut self, ts: Ts) {
        self.touched = Some(self.touched.map_or(ts, |t| t.min(ts)));
    }

    /// The key of the group to give up at slice `now` (None: every group is failing).
    fn victim(&mut self, map: &BTreeMap<String, Group>, now: i32) -> Option<String> {
        let fresh = self
            .searched_at
            .is_some_and(|at| now >= at && now < self.recheck);
        if fresh {
            if self.none_quiet {
                // A write adds outcomes (no group stops failing by one); time alone can only
                // after `recheck`.
                return None;
            }
            while let Some((last, key)) = self.candidates.pop() {
                if self.touched.is_some_and(|t| t <= last) {
                    // A group written since may come first.
                    break;
                }
                if map
                    .get(&key)
                    .is_some_and(|g| g.last == last && !g.tally.failing_at(now))
                {
                    return Some(key);
                }
            }
        }
        self.search(map, now)
    }

    /// Search the whole table at slice `now`: keep the candidates and the recheck slice, and
    /// answer with the first candidate.
    fn search(&mut self, map: &BTreeMap<String, Group>, now: i32) -> Option<String> {
        // The first quiet groups, in order (`last`, then key: keys come in order, so an equal
        // `last` never displaces one kept).
        let mut first: Vec<(Ts, &str)> = Vec::with_capacity(ROOM_CANDIDATES + 1);
        let mut recheck = i32::MAX;
        for (k, g) in map {
            let full = first.len() == ROOM_CANDIDATES;
            if full && first.last().is_some_and(|&(last, _)| g.last >= last) {
                continue;
            }
            match g.tally.quiet_from(now) {
                None => {
                    let at = first.partition_point(|&(last, _)| last <= g.last);
                    first.insert(at, (g.last, k));
                    first.truncate(ROOM_CANDIDATES);
                }
                // Failing, and before the last candidate so far (which only moves earlier):
                // once quiet it may come before a candidate.
                Some(q) => recheck = recheck.min(q),
            }
        }
        self.searched_at = Some(now);
        self.recheck = recheck;
        self.none_quiet = first.is_empty();
        self.touched = None;
        self.candidates.clear();
        self.candidates
            .extend(first.iter().rev().map(|&(last, k)| (last, k.to_string())));
        self.candidates.pop().map(|(_, k)| k)
    }
}

/// The key of the least recently seen group with no spam-sign failures in the window ending at
/// slice `now` (ties: the first key), if any: the definition [`Room`] answers by.
#[cfg(test)]
fn least_recent_quiet(map: &BTreeMap<String, Group>, now: i32) -> Option<&str> {
    let mut best: Option<(Ts, &str)> = None;
    for (k, g) in map {
        // Keys come in order, so an equal time keeps the first key.
        if best.is_some_and(|(last, _)| g.last >= last) {
            continue;
        }
        if !g.tally.failing_at(now) {
            best = Some((g.last, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Why a message's failures were not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// Counted.
    None,
    /// Sender looks like an autoresponder / daemon.
    DaemonSender,
    /// A reply to a message this sender received.
    Reply,
}

/// Recipients of one message, sorted by what they say about its sender.
#[derive(Debug, Clone, Copy, Default)]
struct Sorted {
    o: Outcomes,
    forwarded: u64,
    repeats: u64,
    discounted: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct EntityState {
    tally: Tally,
    discounted: RareCounter,
    forwarded: RareCounter,
    repeats: RareCounter,
    /// Failed recipients (hashes) and when they last failed, to count each once per window
    /// (absent until a first failure).
    failed_rcpts: Rare<HashMap<u64, Ts>>,
    /// When the oldest remembered failure leaves the window (next purge worth doing).
    failed_rcpts_purge_at: Option<Ts>,
    failed_rcpt_memory_full: u64,
    senders: Vec<SenderState>,
    split: Split,
    samples: Samples,
    /// Failure replies with how often each came: absent until a first failure with a reply.
    replies: Rare<HashMap<String, u64>>,
    alerted_failures: u64,
    lists_alerted: Option<Ts>,
}

impl EntityState {
    /// Sort the recipients of one message: delivered, failed (first time in the window, by
    /// kind), forwarded by us, failed again, or discounted as a daemon's.
    fn sort(&mut self, rec: &MessageRecord, discount: Discount, window: i64) -> Sorted {
        let ts = rec.finished;
        let mut out = Sorted::default();
        out.o.messages = 1;
        for r in &rec.recipients {
            if r.is_forwarded() {
                if r.outcome.is_delivered() || r.outcome.is_failure() {
                    out.forwarded += 1;
                }
                continue;
            }
            if r.outcome.is_delivered() {
                out.o.delivered += 1;
                continue;
            }
            if !r.outcome.is_failure() {
                continue;
            }
            if discount != Discount::None {
                out.discounted += 1;
                continue;
            }
            let h = hash_str(r.addr());
            let failed_rcpts = self.failed_rcpts.get_or_default();
            match failed_rcpts.get_mut(&h) {
                Some(t) if t.plus_secs(window) >= ts => {
                    *t = ts.max(*t);
                    out.repeats += 1;
                    continue;
                }
                Some(t) => *t = ts,
                None => {
                    // Purge only when something can have left the window since the last purge,
                    // so a spammer beyond the cap does not cost a full scan per recipient.
                    if failed_rcpts.len() >= MAX_FAILED_RCPTS
                        && self.failed_rcpts_purge_at.is_none_or(|p| ts > p)
                    {
                        failed_rcpts.retain(|_, t| t.plus_secs(window) >= ts);
                        self.failed_rcpts_purge_at =
                            failed_rcpts.values().min().map(|t| t.plus_secs(window));
                    }
                    if failed_rcpts.len() < MAX_FAILED_RCPTS {
                        failed_rcpts.insert(h, ts);
                    } else {
                        self.failed_rcpt_memory_full += 1;
                    }
                }
            }
            if FailureKind::of(r).is_spam_sign() {
                out.o.failed += 1;
            } else {
                out.o.failed_other += 1;
            }
        }
        out
    }
}

/// The extrusion detectors' state.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Extrusion {
    /// Live while active, packed when idle `[detect.limits] pack_idle_after`
    /// ([`Extrusion::freeze_idle`]).
    entities: ColdMap<Entity, EntityState>,
    /// Incoming (sender -> local recipient) pairs, for recognising replies.
    inbound: BoundedMap<u64, ()>,
    /// Reused buffer for [`reply_key`] (no `String` per failed recipient). Not state.
    #[serde(skip)]
    key_buf: String,
}

fn local_part(addr: &str) -> &str {
    maillog::bytes::rsplit_once(addr, b'@').map_or(addr, |(l, _)| l)
}

/// What Postfix writes between the remote host and its reply, searched once per failed
/// recipient (`str::split_once` built a searcher each time).
static SAID: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(" said: "));

/// Words of a failure reply kept as its key (the code, the enhanced code and the first words).
const REPLY_KEY_WORDS: usize = 8;

/// Normalize a failure reply for grouping: code and first words (words with an address or a
/// host in brackets left out).
fn reply_key(r: &str, out: &mut String) {
    // "host mx.example[192.0.2.1] said: 550 5.1.1 <a@b>: Recipient address rejected: …"
    let r = SAID
        .find(r.as_bytes())
        .map_or(r, |i| &r[i + SAID.needle().len()..]);
    out.clear();
    if !ascii_reply_key(r, out) {
        out.clear();
        unicode_reply_key(r, out);
    }
}

/// [`reply_key`] of an ASCII reply, in one pass over its bytes: false (and `out` half
/// written) at the first non-ASCII byte before the key is complete, which may belong to a
/// Unicode space ([`unicode_reply_key`] then). Almost every reply is ASCII; splitting them by
/// `char` cost about 2,500 instructions a failed recipient. Each byte's class is one look-up
/// ([`REPLY_BYTE`]) instead of `char::is_whitespace` and a match: the function was 1.5% of
/// `analyze`'s instructions on the benchmark log, and a quarter less with the table.
fn ascii_reply_key(r: &str, out: &mut String) -> bool {
    let class = |c: u8| REPLY_BYTE[usize::from(c)];
    let b = r.as_bytes();
    let (mut kept, mut i) = (0, 0);
    while kept < REPLY_KEY_WORDS {
        while i < b.len() && class(b[i]) == ReplyByte::Space {
            i += 1;
        }
        if i == b.len() {
            return true;
        }
        let start = i;
        let mut skip = false;
        while i < b.len() {
            match class(b[i]) {
                ReplyByte::Space => break,
                ReplyByte::Marks => skip = true,
                ReplyByte::NotAscii => return false,
                ReplyByte::Word => {}
            }
            i += 1;
        }
        if !skip {
            if kept > 0 {
                out.push(' ');
            }
            out.push_str(&r[start..i]);
            kept += 1;
        }
    }
    true
}

/// What a byte of a reply is to [`ascii_reply_key`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReplyByte {
    /// Part of a word.
    Word,
    /// An ASCII space as `char::is_whitespace` has them (tab, line feed, vertical tab, form
    /// feed, carriage return, space).
    Space,
    /// `@` or `[`: the word is an address or a host's and is left out of the key.
    Marks,
    /// Not ASCII. A byte of a UTF-8 text at 0x80 or above follows a leading byte, which stops
    /// the pass first, so the two that are Unicode spaces as characters (0x85, 0xA0) need no
    /// class of their own.
    NotAscii,
}

/// Each byte's [`ReplyByte`].
static REPLY_BYTE: [ReplyByte; 256] = {
    let mut t = [ReplyByte::Word; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = match c as u8 {
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => ReplyByte::Space,
            b'@' | b'[' => ReplyByte::Marks,
            0x80..=0xff => ReplyByte::NotAscii,
            _ => ReplyByte::Word,
        };
        c += 1;
    }
    t
};

/// [`reply_key`] of any reply: words split at Unicode spaces.
fn unicode_reply_key(r: &str, out: &mut String) {
    for (i, w) in r
        .split_whitespace()
        .filter(|w| !w.contains('@') && !w.contains('['))
        .enumerate()
    {
        if i >= REPLY_KEY_WORDS {
            break;
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
}

/// Evidence of a `delivery-failures` alert (its `evidence` JSON).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FailureEvidence {
    /// Distinct recipients failed for a reason spam produces, counted against the entity.
    pub failed_recipients: u64,
    /// `delivery_failures.threshold`.
    pub threshold: u64,
    /// The window, seconds.
    pub window_secs: i64,
    /// Distinct recipients delivered.
    pub delivered_recipients: u64,
    /// Distinct recipients failed for other reasons (mailbox full, too big, …).
    pub failed_other_reasons: u64,
    /// `failed_recipients` over the recipients with a known outcome.
    pub failure_ratio: f64,
    /// The same, weighed with `prior_weight` recipients of the prior share.
    pub estimated_failure_share: f64,
    /// The entity's own failure share before the window.
    pub prior_failure_share: f64,
    /// `delivery_failures.min_failure_share`.
    pub min_failure_share: f64,
    /// Messages in the window.
    pub messages: u64,
    /// Failures left out as replies of a rejection daemon.
    pub discounted_rejection_daemon: u64,
    /// Failures left out as mailing-list mail.
    pub discounted_mailing_lists: u64,
    /// Failures left out as forwarded mail.
    pub discounted_forwarded: u64,
    /// Failures to recipients that had failed before.
    pub repeated_failures: u64,
    /// Mail of senders reported on their own (as `sender` entities), left out of this verdict.
    pub discounted_reported_senders: u64,
    /// The client or account that relayed a `sender` entity's mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayed_by: Option<Entity>,
    /// Recipients with a known outcome of the relaying entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relaying_entity_known_outcomes: Option<u64>,
    /// Senders no longer tracked (cap reached).
    pub senders_dropped: u64,
    /// Failed recipients not remembered (cap reached).
    pub failed_rcpt_memory_full: u64,
    /// The most frequent failure replies.
    pub top_failure_replies: Vec<ReplyCount>,
    /// Sample messages with failures.
    pub sample_messages: Vec<MessageSample>,
    /// Messages offered to the sample.
    pub sampled_of: u64,
}

/// One failure reply and how often it came, in [`FailureEvidence`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ReplyCount {
    /// The reply text.
    pub reply: String,
    /// Failed recipients that got it.
    pub count: u64,
}

/// Evidence of a `multiple-lists` alert (its `evidence` JSON).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ListsEvidence {
    /// The list-like senders.
    pub lists: Vec<ListSender>,
    /// `mailing_lists.min_recipients`.
    pub min_recipients: u64,
    /// `mailing_lists.max_failure_ratio`.
    pub max_failure_ratio: f64,
}

/// One list-like sender in [`ListsEvidence`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ListSender {
    /// Envelope sender.
    pub sender: String,
    /// Messages.
    pub messages: u64,
    /// Distinct recipients.
    pub distinct_recipients: u64,
    /// Deliveries to recipients already mailed.
    pub repeat_deliveries: u64,
    /// Recipients delivered.
    pub delivered: u64,
    /// Recipients failed.
    pub failed: u64,
    /// First message, RFC 3339.
    pub first: String,
    /// Latest message, RFC 3339.
    pub last: String,
}

impl Extrusion {
    /// Empty state.
    pub fn new(cfg: &Config) -> Self {
        Extrusion {
            entities: ColdMap::new(cfg.limits.max_entities),
            inbound: BoundedMap::new(cfg.rejection_daemons.max_pairs),
            key_buf: String::new(),
        }
    }

    /// Pack the state of the entities not touched since `before` ([`crate::cold`]: the next
    /// record of such an entity decodes it; detection is the same either way).
    pub fn freeze_idle(&mut self, sweep: impl Into<crate::cold::Sweep>) {
        self.entities.freeze_idle(sweep);
    }

    /// [`Self::freeze_idle`], the compressing left to the caller
    /// ([`crate::cold::ColdMap::freeze_idle_deferred`]).
    pub fn freeze_idle_deferred(
        &mut self,
        sweep: impl Into<crate::cold::Sweep>,
    ) -> Option<crate::cold::PackWork<Entity>> {
        self.entities.freeze_idle_deferred(sweep)
    }

    /// Put back states compressed elsewhere ([`crate::cold::ColdMap::packed_back`]).
    pub fn packed_back(&mut self, work: crate::cold::PackWork<Entity>) {
        self.entities.packed_back(work);
    }

    /// Entities whose state is packed, and the dictionary they are compressed with.
    pub fn packing(&self) -> crate::cold::Packing {
        self.entities.packing()
    }

    /// Entities whose state the last sweep left packed ([`crate::cold::ColdMap::swept`]).
    pub fn swept(&self) -> crate::cold::Swept {
        self.entities.swept()
    }

    /// Entities with state.
    pub fn tracked(&self) -> usize {
        self.entities.len()
    }

    /// Entities whose state was dropped because of `[detect.limits] max_entities`.
    pub fn evicted(&self) -> u64 {
        self.entities.evicted()
    }

    /// Remember that `from` mailed local recipient `to` (incoming mail), for reply recognition.
    pub fn note_inbound(&mut self, ts: Ts, from: &str, to: &str) {
        if from.is_empty() {
            return;
        }
        let k = hash_str(to) ^ hash_str(from).rotate_left(17);
        self.inbound.get_or_insert_with(&k, ts, || ());
    }

    fn classify(&self, cfg: &Config, rec: &MessageRecord) -> Discount {
        let sender = rec.sender.as_deref().unwrap_or("");
        let lp = local_part(sender).to_ascii_lowercase();
        if cfg
            .rejection_daemons
            .sender_patterns
            .iter()
            // `bytes::find` (a vector search for the first byte, then a compare): the
            // standard library's `contains` made a two-way searcher per pattern and message.
            .any(|p| !p.is_empty() && maillog::bytes::find(&lp, p).is_some())
        {
            return Discount::DaemonSender;
        }
        if rec.recipients.len() == 1 {
            let to = rec.recipients[0].addr();
            let k = hash_str(sender) ^ hash_str(to).rotate_left(17);
            if self.inbound.get(&k).is_some() {
                return Discount::Reply;
            }
        }
        Discount::None
    }

    /// Account one outgoing record of `entity`. Returns alerts.
    pub fn on_record(
        &mut self,
        cfg: &Config,
        entity: &Entity,
        rec: &MessageRecord,
        out: &mut Vec<Alert>,
    ) {
        if rec.is_null_sender() {
            return;
        }
        let ts = rec.finished;
        let window = cfg.delivery_failures.window.0;
        let any_failed = rec.failed().next().is_some();
        if !any_failed && rec.delivered().next().is_none() {
            return;
        }
        let discount = if any_failed {
            self.classify(cfg, rec)
        } else {
            Discount::None
        };
        let n_samples = cfg.limits.samples;
        let st = self
            .entities
            .get_or_insert_with(entity, ts, Cold::default)
            .thaw();
        let sorted = st.sort(rec, discount, window);
        st.tally.add(ts, window, &sorted.o);
        st.discounted.add(ts, sorted.discounted as u32, window);
        st.forwarded.add(ts, sorted.forwarded as u32, window);
        st.repeats.add(ts, sorted.repeats as u32, window);
        let failed = sorted.o.failed;
        // Its sample, for the entity's and its sender's and sender domain's lists.
        let sample = SampleOfRecord::new(rec);

        // Per-sender list tracking.
        let sender = rec.sender.as_deref().unwrap_or("");
        let from_list = track_lists(cfg, st, sender, rec, &sorted, ts, window);

        if failed > 0 {
            for r in rec.failed() {
                if let Some(rep) = r.reply() {
                    reply_key(rep, &mut self.key_buf);
                    let replies = st.replies.get_or_default();
                    if let Some(c) = replies.get_mut(self.key_buf.as_str()) {
                        *c += 1;
                    } else if replies.len() < MAX_REPLIES {
                        replies.insert(self.key_buf.clone(), 1);
                    }
                }
            }
            st.samples.push_sample_of(&sample, n_samples);
        }

        // Per-sender accounting of a client or account relaying for several senders.
        if entity.kind != EntityKind::Sender && cfg.delivery_failures.enabled {
            split_observe(cfg, entity, st, sender, &sample, &sorted.o, ts, window, out);
        }

        // The entity's own verdict, looked at only when this message failed (nothing it reads
        // changed otherwise).
        if cfg.delivery_failures.enabled && failed > 0 {
            entity_verdict(cfg, entity, st, ts, window, out);
        }

        // For `multiple-lists`, only senders that are lists beyond doubt count: a large fan-out,
        // or a recipient set mailed again and again. Ten shop assistants each writing to fifty
        // customers in a day are not mailing lists, nor are a firm's busy people behind its
        // mail server.
        let lists: Vec<&SenderState> = st
            .senders
            .iter()
            .filter(|s| s.list_beyond_doubt(cfg))
            .collect();
        if cfg.mailing_lists.alert_multiple
            && from_list
            && !lists.is_empty()
            && lists.len() as u64 > cfg.mailing_lists.max_lists
            && st.lists_alerted.is_none_or(|t| t.plus_secs(window) < ts)
        {
            let n = lists.len();
            out.push(Alert {
                ts,
                detector: Detector::MultipleLists,
                entity: entity.clone(),
                score: round3((0.6 + 0.1 * (n as f64 - 2.0)).clamp(0.6, 0.95)),
                summary: format!(
                    "{n} list-like senders in {} (more than {} mailing list from one customer)",
                    crate::config::Duration(window).to_string_h(),
                    cfg.mailing_lists.max_lists
                ),
                evidence: serde_json::to_value(ListsEvidence {
                    lists: lists
                        .iter()
                        .map(|s| ListSender {
                            sender: s.addr.to_string(),
                            messages: s.messages.into(),
                            distinct_recipients: s.distinct.into(),
                            repeat_deliveries: s.repeats.into(),
                            delivered: s.delivered.into(),
                            failed: s.failed.into(),
                            first: s.first.rfc3339(),
                            last: s.last.rfc3339(),
                        })
                        .collect(),
                    min_recipients: cfg.mailing_lists.min_recipients,
                    max_failure_ratio: cfg.mailing_lists.max_failure_ratio,
                })
                .unwrap_or_default(),
            });
            st.lists_alerted = Some(ts);
        }
    }
}

/// Update the list recognition of `sender`; true when it is recognised as a list now.
fn track_lists(
    cfg: &Config,
    st: &mut EntityState,
    sender: &str,
    rec: &MessageRecord,
    sorted: &Sorted,
    ts: Ts,
    window: i64,
) -> bool {
    st.senders.retain(|s| s.last.plus_secs(window) >= ts);
    let idx = match st
        .senders
        .iter()
        .position(|s| s.addr.eq_ignore_ascii_case(sender))
    {
        Some(i) => i,
        None if st.senders.len() < MAX_SENDERS_PER_ENTITY => {
            crate::compact::push(
                &mut st.senders,
                SenderState {
                    addr: sender.into(),
                    first: ts,
                    last: ts,
                    messages: 0,
                    rcpts: Default::default(),
                    distinct: 0,
                    repeats: 0,
                    delivered: 0,
                    failed: 0,
                    failed_w: RareCounter::default(),
                    list_until: None,
                },
            );
            st.senders.len() - 1
        }
        None => return false,
    };
    let s = &mut st.senders[idx];
    // Tumbling window: a list is judged on what it sent within one window.
    if s.first.plus_secs(window) < ts {
        s.first = ts;
        s.messages = 0;
        s.rcpts.clear();
        s.distinct = 0;
        s.repeats = 0;
        s.delivered = 0;
        s.failed = 0;
    }
    s.last = ts;
    s.messages = s.messages.saturating_add(1);
    for r in &rec.recipients {
        let h = hash_str(r.addr());
        if s.rcpts.contains(&h) {
            s.repeats = s.repeats.saturating_add(1);
        } else if s.rcpts.len() < MAX_RCPTS_PER_SENDER {
            s.rcpts.insert(h);
            s.distinct = s.distinct.saturating_add(1);
        } else {
            s.distinct = s.distinct.saturating_add(1);
        }
    }
    s.delivered = s.delivered.saturating_add(count32(sorted.o.delivered));
    s.failed = s
        .failed
        .saturating_add(count32(sorted.o.failed + sorted.o.failed_other));
    s.failed_w.add(ts, sorted.o.failed as u32, window);
    if s.list_like(cfg) {
        s.list_until = Some(ts.plus_secs(window));
    }
    s.list_until.is_some_and(|u| u >= ts)
}

/// The `delivery-failures` verdict on an entity's own mail after a failing message: its window
/// without the mail of reported senders and of mailing lists, judged against its prior; an
/// alert when that fails like spam and the failures at least doubled since the last one.
fn entity_verdict(
    cfg: &Config,
    entity: &Entity,
    st: &mut EntityState,
    ts: Ts,
    window: i64,
    out: &mut Vec<Alert>,
) {
    // Failures of list-like senders are not the customer's fault.
    let list_failures: u64 = st
        .senders
        .iter()
        .filter(|s| s.list_until.is_some_and(|u| u >= ts))
        .map(|s| {
            let mut c = s.failed_w.clone();
            c.expire(ts, window);
            c.count()
        })
        .sum();
    let whole = st.tally.window();
    let reported = reported_senders(st, ts, window);
    let mut counted = whole.minus(&reported);
    counted.failed = counted.failed.saturating_sub(list_failures);
    if counted.failed < st.alerted_failures.saturating_mul(2).max(1) {
        return;
    }
    let prior = entity_prior(cfg, st, ts, window);
    if fails_like_spam(cfg, &counted, prior) {
        let ev = FailureEvidence {
            failed_recipients: counted.failed,
            threshold: cfg.delivery_failures.threshold,
            window_secs: window,
            delivered_recipients: counted.delivered,
            failed_other_reasons: counted.failed_other,
            failure_ratio: round3(raw_share(&counted)),
            estimated_failure_share: round3(estimated_share(cfg, &counted, prior)),
            prior_failure_share: round3(prior),
            min_failure_share: cfg.delivery_failures.min_failure_share,
            messages: counted.messages,
            discounted_rejection_daemon: st.discounted.count(),
            discounted_mailing_lists: list_failures,
            discounted_forwarded: st.forwarded.count(),
            repeated_failures: st.repeats.count(),
            discounted_reported_senders: reported.failed,
            relayed_by: None,
            relaying_entity_known_outcomes: None,
            senders_dropped: st.split.dropped(),
            failed_rcpt_memory_full: st.failed_rcpt_memory_full,
            top_failure_replies: st.replies.get().map(top_replies).unwrap_or_default(),
            sample_messages: st.samples.to_vec(),
            sampled_of: st.samples.seen(),
        };
        out.push(failure_alert(cfg, ts, entity.clone(), &counted, ev));
        st.alerted_failures = counted.failed;
    }
}

/// The window outcomes of the sender domains reported on their own, left out of the relaying
/// entity's verdict (they were reported only while the rest of its mail was fine; should the
/// rest fail like spam too, the entity is judged on the rest).
fn reported_senders(st: &EntityState, ts: Ts, window: i64) -> Outcomes {
    let mut r = Outcomes::default();
    let Some(groups) = st.split.groups.get() else {
        return r;
    };
    let now = Tally::slot(ts, window);
    for g in groups.domains.values().filter(|g| g.flagged(ts)) {
        r.add(&g.tally.window_at(now));
    }
    r
}

/// Whether sender domain `dkey` (with the domains already reported) is one tenant of a client
/// that relays for others: at least [`MIN_OTHER_SENDER_DOMAINS`] other sender domains had mail
/// delivered in the window, and the client's mail without the failing domains does not fail
/// like spam (its estimated failure share, with the client's own prior, stays below
/// `min_failure_share`). How much of the client's volume the failing domain makes up does not
/// matter: a hacked site's thousands of messages outnumber a small hosting server's form mails.
/// An infected PC forging one sender, or a bot rotating forged domains that all fail, is no
/// tenant: the client itself is the problem. Our own idea.
fn is_one_tenant_of_many(
    cfg: &Config,
    sp: &Groups,
    whole: &Outcomes,
    prior: f64,
    dkey: &str,
    ts: Ts,
    window: i64,
) -> bool {
    let mut failing = Outcomes::default();
    let mut others = 0usize;
    let now = Tally::slot(ts, window);
    for (key, g) in &sp.domains {
        let w = g.tally.window_at(now);
        if g.flagged(ts) || key == dkey {
            failing.add(&w);
        } else if w.delivered > 0 {
            others += 1;
        }
    }
    let rest = whole.minus(&failing);
    others >= MIN_OTHER_SENDER_DOMAINS
        && estimated_share(cfg, &rest, prior) < cfg.delivery_failures.min_failure_share
}

/// The relaying entity's prior failure share without the history of the sender domains reported
/// on their own: a hacked site's spam of yesterday is not the hosting server's record.
fn entity_prior(cfg: &Config, st: &EntityState, ts: Ts, window: i64) -> f64 {
    let (mut known, mut failed) = (st.tally.past_known, st.tally.past_failed);
    let now = Tally::slot(ts, window);
    let groups = st.split.groups.get().map(|g| &g.domains);
    for g in groups
        .into_iter()
        .flat_map(|d| d.values())
        .filter(|g| g.reported)
    {
        let (k, f) = g.tally.past_at(now);
        known = known.saturating_sub(k);
        failed = failed.saturating_sub(f);
    }
    prior_from(cfg, known, failed)
}

fn top_replies(replies: &HashMap<String, u64>) -> Vec<ReplyCount> {
    let mut v: Vec<(&String, &u64)> = replies.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.truncate(5);
    v.iter()
        .map(|(k, c)| ReplyCount {
            reply: k.to_string(),
            count: **c,
        })
        .collect()
}

fn failure_alert(cfg: &Config, ts: Ts, entity: Entity, o: &Outcomes, ev: FailureEvidence) -> Alert {
    let thr = cfg.delivery_failures.threshold.max(1) as f64;
    let ratio = raw_share(o);
    let score =
        (0.5 + 0.25 * ((o.failed as f64) / thr).log2().min(1.0) + 0.25 * ratio).clamp(0.0, 1.0);
    let window = cfg.delivery_failures.window;
    let by = ev
        .relayed_by
        .as_ref()
        .map(|e| format!(", relayed by {e}"))
        .unwrap_or_default();
    Alert {
        ts,
        detector: Detector::DeliveryFailures,
        entity,
        score: round3(score),
        summary: format!(
            "{} failed recipients in {} ({} delivered, {:.0}% failed){by}",
            o.failed,
            window.to_string_h(),
            o.delivered,
            ratio * 100.0
        ),
        evidence: serde_json::to_value(&ev).unwrap_or_default(),
    }
}

/// Per-sender accounting of a relaying client or account: track the message's sender address
/// and sender domain, and report a sender whose mail fails like spam while it is a minority of
/// what the relaying entity sends.
#[allow(clippy::too_many_arguments)]
fn split_observe(
    cfg: &Config,
    entity: &Entity,
    st: &mut EntityState,
    sender: &str,
    sample: &SampleOfRecord<'_>,
    o: &Outcomes,
    ts: Ts,
    window: i64,
    out: &mut Vec<Alert>,
) {
    let sender = maillog::bytes::ascii_lower(sender);
    if sender.is_empty() {
        return;
    }
    let sp = &mut st.split;
    if !sp.active() {
        match &sp.first_sender {
            None => {
                sp.first_sender = Some(sender.into_owned().into_boxed_str());
                return;
            }
            Some(f) if **f == *sender => return,
            Some(f) => {
                // Until now all of the entity's mail was the first sender's: its groups start
                // with that, so a hacked site that sent first is not judged on a late start.
                let f = f.to_string();
                let sp = sp.groups.get_or_default();
                sp.active = true;
                let mut first = st.tally.clone();
                first.remove_newest(o);
                let fd = f.rsplit_once('@').map(|(_, d)| format!("@{d}"));
                let cap = cfg.delivery_failures.max_senders;
                for (map, room, key) in [
                    (&mut sp.addresses, &mut sp.address_room, Some(f)),
                    (&mut sp.domains, &mut sp.domain_room, fd),
                ] {
                    let Some(key) = key else { continue };
                    if let Some(g) = group_slot(map, room, &key, cap, ts, window) {
                        g.tally = first.clone();
                        g.last = ts;
                    }
                }
            }
        }
    }
    let sp = st.split.groups.get_or_default();
    let cap = cfg.delivery_failures.max_senders;
    // The domain's group is keyed `@domain`: the address from its last `@`, borrowed.
    let domain = maillog::bytes::rfind_byte(sender.as_bytes(), b'@').map(|at| &sender[at..]);
    let keys = [(false, Some(&*sender)), (true, domain)];
    let keys = keys.iter().filter_map(|&(d, k)| Some((d, k?)));
    for (is_domain, key) in keys.clone() {
        let (map, room) = if is_domain {
            (&mut sp.domains, &mut sp.domain_room)
        } else {
            (&mut sp.addresses, &mut sp.address_room)
        };
        match group_slot(map, room, key, cap, ts, window) {
            Some(g) => {
                g.tally.add(ts, window, o);
                g.last = ts;
                if o.failed > 0 {
                    g.samples.push_sample_of(sample, SENDER_SAMPLES);
                }
            }
            None => sp.dropped += 1,
        }
    }
    if o.failed == 0 {
        return;
    }
    let whole = st.tally.window();
    let dkey = domain.unwrap_or_default();
    // Whether the sender is one tenant of many, asked when one of its groups first fails like
    // spam (before that, nothing it reads has changed): most failing mail never asks.
    let mut tenant = None;
    for (is_domain, key) in keys {
        let sp = st.split.groups.get_or_default();
        let g = if is_domain {
            sp.domains.get(key)
        } else {
            sp.addresses.get(key)
        };
        let Some(g) = g else { continue };
        let gw = g.tally.window();
        if !fails_like_spam(cfg, &gw, g.tally.prior_share(cfg)) {
            continue;
        }
        let tenant = *tenant.get_or_insert_with(|| {
            let prior = entity_prior(cfg, st, ts, window);
            st.split
                .groups
                .get()
                .is_some_and(|sp| is_one_tenant_of_many(cfg, sp, &whole, prior, dkey, ts, window))
        });
        let sp = st.split.groups.get_or_default();
        let Some(g) = (if is_domain {
            sp.domains.get_mut(key)
        } else {
            sp.addresses.get_mut(key)
        }) else {
            continue;
        };
        // A reported sender that keeps failing like spam stays out of the relaying entity's
        // verdict for a window after its latest failures (records closed late, at the end of a
        // log or after long deferrals, included), alerting again only when they double.
        if tenant && g.reported {
            g.flagged_until = Some(ts.plus_secs(window));
            if !is_domain {
                if let Some(d) = sp.domains.get_mut(dkey) {
                    d.flagged_until = Some(ts.plus_secs(window));
                }
            }
        }
        let g = if is_domain {
            sp.domains.get(key)
        } else {
            sp.addresses.get(key)
        };
        let Some(g) = g else { continue };
        if gw.failed < g.alerted.saturating_mul(2).max(1) {
            continue;
        }
        // One address already reported stands for its domain.
        if is_domain
            && sp
                .addresses
                .get(&*sender)
                .is_some_and(|a| a.flagged(ts) && a.alerted > 0)
        {
            continue;
        }
        // One tenant of a client that relays for others whose mail is fine: the sender is the
        // problem, not the client. Otherwise the client is judged on all of its mail.
        if !tenant {
            continue;
        }
        let g = if is_domain {
            sp.domains.get_mut(key)
        } else {
            sp.addresses.get_mut(key)
        };
        let Some(g) = g else { continue };
        g.alerted = gw.failed;
        g.reported = true;
        g.flagged_until = Some(ts.plus_secs(window));
        let ev = FailureEvidence {
            failed_recipients: gw.failed,
            threshold: cfg.delivery_failures.threshold,
            window_secs: window,
            delivered_recipients: gw.delivered,
            failed_other_reasons: gw.failed_other,
            failure_ratio: round3(raw_share(&gw)),
            estimated_failure_share: round3(estimated_share(cfg, &gw, g.tally.prior_share(cfg))),
            prior_failure_share: round3(g.tally.prior_share(cfg)),
            min_failure_share: cfg.delivery_failures.min_failure_share,
            messages: gw.messages,
            discounted_rejection_daemon: 0,
            discounted_mailing_lists: 0,
            discounted_forwarded: 0,
            repeated_failures: 0,
            discounted_reported_senders: 0,
            relayed_by: Some(entity.clone()),
            relaying_entity_known_outcomes: Some(whole.known()),
            senders_dropped: sp.dropped,
            failed_rcpt_memory_full: 0,
            top_failure_replies: Vec::new(),
            sample_messages: g.samples.to_vec(),
            sampled_of: g.samples.seen(),
        };
        out.push(failure_alert(
            cfg,
            ts,
            Entity::new(EntityKind::Sender, key),
            &gw,
            ev,
        ));
        if !is_domain {
            // The address's domain is left out of the relaying entity's verdict with it.
            if let Some(d) = sp.domains.get_mut(dkey) {
                d.flagged_until = Some(ts.plus_secs(window));
                d.reported = true;
            }
        }
    }
}

impl crate::config::Duration {
    /// `24 h`, `10 min`, `90 s`.
    pub fn to_string_h(self) -> String {
        self.human().to_string()
    }

    /// The duration as [`Self::to_string_h`] writes it, formatted only where it is written (a
    /// detail text made for a signal that fires), not where it might be.
    pub fn human(self) -> HumanDuration {
        HumanDuration(self)
    }
}

/// A [`crate::config::Duration`] shown for people: `2 days`, `24 h`, `10 min`, `90 s`.
#[derive(Debug, Clone, Copy)]
pub struct HumanDuration(crate::config::Duration);

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0 .0;
        if s % 86_400 == 0 && s >= 86_400 * 2 {
            write!(f, "{} days", s / 86_400)
        } else if s % 3600 == 0 && s >= 3600 {
            write!(f, "{} h", s / 3600)
        } else if s % 60 == 0 && s >= 60 {
            write!(f, "{} min", s / 60)
        } else {
            write!(f, "{s} s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_keys_are_the_remote_code_and_first_words() {
        let mut k = String::from("stale");
        reply_key(
            "host mx.example[192.0.2.1] said: 550 5.1.1 <a@b.example>: Recipient address \
             rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
            &mut k,
        );
        assert_eq!(k, "550 5.1.1 Recipient address rejected: User unknown in");
        reply_key("552 5.2.2 mailbox full é said:nothing", &mut k);
        assert_eq!(k, "552 5.2.2 mailbox full é said:nothing");
        reply_key("", &mut k);
        assert_eq!(k, "");
    }

    /// The byte classes are `char::is_whitespace`'s spaces and the marks for every ASCII
    /// byte, and every other byte is not ASCII.
    #[test]
    fn reply_byte_classes_are_the_char_tests() {
        for c in 0..=255u8 {
            let expected = match c {
                0x80.. => ReplyByte::NotAscii,
                b'@' | b'[' => ReplyByte::Marks,
                _ if char::from(c).is_whitespace() => ReplyByte::Space,
                _ => ReplyByte::Word,
            };
            assert!(REPLY_BYTE[usize::from(c)] == expected, "{c:#x}");
        }
    }

    #[test]
    fn ascii_reply_keys_are_the_unicode_ones() {
        // Every string of up to 5 characters over spaces of both kinds, the characters that
        // drop a word and letters, so that word counts reach the cap, each behind a prefix of
        // words.
        let alphabet = ['a', ' ', '\t', '\x0b', '@', '[', '\u{a0}', '\u{3000}', 'é'];
        let prefixes = ["", "550 5.1.1 a b c d e ", "x@y ", "a b c d e f g "];
        let mut n = 0;
        for tail in crate::testing::strings_over(&alphabet, 5) {
            for p in prefixes {
                let r = format!("{p}{tail}");
                let (mut fast, mut slow) = (String::from("stale"), String::new());
                reply_key(&r, &mut fast);
                unicode_reply_key(&r, &mut slow);
                assert_eq!(fast, slow, "{r:?}");
                n += 1;
            }
        }
        assert!(n > 200_000, "{n}");
    }
    use maillog::record::Origin;

    /// What [`phrase_kind`]'s packed search relies on: phrases in lower-case ASCII (it
    /// searches the reply lower-cased), none in two lists, and none that begins a phrase of a
    /// later list (found at the same place, only the longer one is reported).
    #[test]
    fn no_phrase_begins_one_of_a_later_list() {
        for (i, (list, _)) in PHRASE_LISTS.iter().enumerate() {
            for a in *list {
                assert!(a.is_ascii() && a.to_ascii_lowercase() == *a, "{a:?}");
            }
            for (later, _) in &PHRASE_LISTS[i + 1..] {
                for a in *list {
                    for b in *later {
                        assert!(!b.starts_with(a), "{a:?} begins {b:?} of a later list");
                    }
                }
            }
        }
    }

    /// The search decides as the lists read in order do: the first list one of whose phrases
    /// occurs in the reply (ignoring ASCII case), whatever else occurs, overlapping or not.
    #[test]
    fn phrase_kind_is_the_first_list_with_a_phrase_in_the_reply() {
        let naive = |text: &str| {
            let lower = text.to_ascii_lowercase();
            PHRASE_LISTS
                .iter()
                .find(|(list, _)| list.iter().any(|p| lower.contains(p)))
                .map(|(_, kind)| *kind)
        };
        let phrases: Vec<&str> = PHRASE_LISTS
            .iter()
            .flat_map(|(l, _)| l.iter().copied())
            .collect();
        let fillers = [
            "",
            " ",
            "550 5.1.1 <a@b.example>: ",
            "x",
            "unlisted",
            "SPAM",
            "Us",
        ];
        let mut n = 0;
        for a in &phrases {
            for b in &phrases {
                for f in fillers {
                    // Two phrases with and without something between them, and one cut short
                    // (its last byte gone), in mixed case.
                    for text in [
                        format!("{f}{a}{b}"),
                        format!("{a} {f} {}", b.to_uppercase()),
                        format!("{}{f}{}", &a[..a.len() - 1], b),
                    ] {
                        assert_eq!(phrase_kind(&text), naive(&text), "{text:?}");
                        assert_eq!(
                            phrase_kind_by_automaton(&PHRASES, &text),
                            naive(&text),
                            "{text:?}"
                        );
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 40_000, "{n}");
        let long = format!("{} user unknown {}", "x".repeat(600), "é".repeat(40));
        assert_eq!(phrase_kind(&long), Some(FailureKind::BadAddress));
        assert_eq!(phrase_kind(""), None);
        assert_eq!(phrase_kind("250 2.0.0 Ok: queued"), None);
    }

    #[test]
    fn failure_kinds() {
        let k = |dsn: Option<&str>, reply: &str, o: Outcome| {
            FailureKind::from_reply(dsn, Some(reply), o)
        };
        use FailureKind::*;
        use Outcome::*;
        assert_eq!(k(Some("5.1.1"), "host mx[192.0.2.1] said: 550 5.1.1 <a@b>: Recipient address rejected: User unknown", Bounced), BadAddress);
        assert_eq!(k(Some("5.4.4"), "Host or domain name not found. Name service error for name=x.example type=MX: Host not found", Bounced), BadAddress);
        assert_eq!(k(None, "Unrouteable address", Bounced), BadAddress);
        assert_eq!(
            k(Some("5.7.1"), "554 5.7.1 Message rejected as spam", Bounced),
            Refused
        );
        assert_eq!(k(Some("5.7.1"), "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", Rejected), Refused);
        assert_eq!(k(Some("5.2.2"), "552 5.2.2 Mailbox full", Bounced), NotSpam);
        assert_eq!(
            k(
                Some("5.3.4"),
                "552 5.3.4 Message size exceeds fixed limit",
                Bounced
            ),
            NotSpam
        );
        assert_eq!(
            k(
                Some("4.4.1"),
                "connect to mx.example[192.0.2.1]:25: Connection timed out",
                Expired
            ),
            NotSpam
        );
        assert_eq!(
            k(
                None,
                "504 5.5.2 <PC1>: Helo command rejected: need fully-qualified hostname",
                Rejected
            ),
            NotSpam
        );
        assert_eq!(k(Some("5.0.0"), "550 Rejected", Bounced), Unexplained);
        assert_eq!(FailureKind::from_reply(None, None, Bounced), Unexplained);
        assert_eq!(FailureKind::from_reply(None, None, Expired), NotSpam);
    }

    #[test]
    fn prior_weighs_small_numbers() {
        let cfg = Config::default();
        let t = Tally::default();
        let few = Outcomes {
            failed: 21,
            ..Default::default()
        };
        assert!(!fails_like_spam(&cfg, &few, t.prior_share(&cfg)));
        let many = Outcomes {
            failed: 31,
            ..Default::default()
        };
        assert!(fails_like_spam(&cfg, &many, t.prior_share(&cfg)));
        // A history of 10,000 outcomes at 1% pulls the prior down from the typical 2%.
        let h = Tally {
            past_known: 10_000,
            past_failed: 100,
            ..Default::default()
        };
        assert!(h.prior_share(&cfg) < cfg.delivery_failures.typical_failure_share);
    }

    fn rec(i: usize, sender: &str, ok: bool) -> MessageRecord {
        let ts = Ts::from_secs(1_763_600_000 + i as i64);
        MessageRecord {
            host: String::new(),
            qid: format!("Q{i}"),
            accepted: ts,
            finished: ts,
            origin: Origin::Smtp,
            client_ip: None,
            client_host: None,
            helo: None,
            auth_user: None,
            local_user: None,
            sender: Some(sender.to_string()),
            size: None,
            nrcpt: Some(1),
            message_id: None,
            recipients: vec![Recipient::new(
                &format!("r{i}@far.example"),
                None,
                if ok {
                    Outcome::Delivered
                } else {
                    Outcome::Bounced
                },
                ts,
            )
            .with_attempt([
                Some(if ok { "2.0.0" } else { "5.1.1" }),
                None,
                Some("smtp"),
                None,
            ])],
            recipient_index: Default::default(),
            rejected: None,
            held: false,
            notices: 0,
            complete: true,
            filter: None,
        }
    }

    #[test]
    fn sender_tables_are_bounded_and_count_what_they_drop() {
        let mut cfg = Config::default();
        cfg.delivery_failures.max_senders = 8;
        let mut x = Extrusion::new(&cfg);
        let e = Entity::new(EntityKind::Client, "192.0.2.1");
        let mut out = Vec::new();
        // 40 senders at 40 domains, every one failing: the tables keep 8 each, the rest is
        // counted as dropped.
        for i in 0..400 {
            let s = format!("s{}@d{}.example", i % 40, i % 40);
            x.on_record(&cfg, &e, &rec(i, &s, false), &mut out);
        }
        let st = x.entities.get(&e).unwrap().view();
        let sp = st.split.groups.get().unwrap();
        assert!(sp.addresses.len() <= 8 && sp.domains.len() <= 8);
        assert!(sp.dropped > 0);
        // Healthy senders make room for failing ones.
        let mut x = Extrusion::new(&cfg);
        for i in 0..100 {
            x.on_record(
                &cfg,
                &e,
                &rec(i, &format!("ok{i}@fine{i}.example"), true),
                &mut out,
            );
        }
        x.on_record(&cfg, &e, &rec(100, "bad@site.example", false), &mut out);
        let st = x.entities.get(&e).unwrap().view();
        let sp = st.split.groups.get().unwrap();
        assert!(sp.addresses.contains_key("bad@site.example"));
        assert!(sp.domains.contains_key("@site.example"));
        assert_eq!(sp.dropped, 0);
    }

    /// A table of `n` groups whose times, tallies and failures come from `seed` (a small
    /// linear congruential sequence: ties in `last`, failures inside and outside the window).
    fn groups_table(n: usize, seed: u64, window: i64) -> BTreeMap<String, Group> {
        let mut r = seed;
        let mut next = move |m: u64| {
            r = r
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (r >> 33) % m
        };
        let hour = window / TALLY_SLICES;
        (0..n)
            .map(|i| {
                let mut g = Group {
                    last: Ts::from_secs(1_000_000 + 60 * next(8) as i64),
                    ..Group::default()
                };
                for _ in 0..next(4) {
                    let at = Ts::from_secs(1_000_000 - hour * next(2 * TALLY_SLICES as u64) as i64);
                    let o = Outcomes {
                        delivered: next(3),
                        failed: next(2),
                        ..Outcomes::default()
                    };
                    g.tally.add(at, window, &o);
                }
                (format!("k{:03}@x{}.example", next(1000), i), g)
            })
            .collect()
    }

    #[test]
    fn the_group_given_up_is_the_least_recent_quiet_one() {
        let window = Config::default().delivery_failures.window.0;
        let now = Tally::slot(Ts::from_secs(1_000_000), window);
        let mut chosen = 0;
        for seed in 0..400 {
            let map = groups_table(1 + (seed as usize % 40), seed, window);
            // The plain definition: advance a copy of every tally, keep the quiet ones, take
            // the least (time, key).
            let expected = map
                .iter()
                .filter(|(_, g)| {
                    let mut t = g.tally.clone();
                    t.advance_to(now);
                    t.window().failed == 0
                })
                .map(|(k, g)| (g.last, k.as_str()))
                .min()
                .map(|(_, k)| k);
            assert_eq!(least_recent_quiet(&map, now), expected, "seed {seed}");
            chosen += usize::from(expected.is_some());
        }
        // Both answers occur: some tables have a quiet group, some have none.
        assert!(chosen > 0 && chosen < 400, "{chosen}");
    }

    #[test]
    fn reading_a_window_at_a_time_is_advancing_to_it_then_reading() {
        let window = Config::default().delivery_failures.window.0;
        let hour = window / TALLY_SLICES;
        let mut n = 0;
        for seed in 0..100 {
            for (_, g) in groups_table(20, seed, window) {
                for h in -3..(3 * TALLY_SLICES) {
                    let now = Tally::slot(Ts::from_secs(1_000_000 + h * hour), window);
                    let mut advanced = g.tally.clone();
                    advanced.advance_to(now);
                    assert_eq!(g.tally.window_at(now), advanced.window());
                    assert_eq!(
                        g.tally.past_at(now),
                        (advanced.past_known, advanced.past_failed)
                    );
                    assert_eq!(g.tally.failing_at(now), advanced.window().failed > 0);
                    n += usize::from(advanced != g.tally);
                }
            }
        }
        // Most reads are at times that would have moved slices into the history.
        assert!(n > 10_000, "{n}");
    }

    #[test]
    fn making_room_changes_no_other_group() {
        let window = Config::default().delivery_failures.window.0;
        let mut map = groups_table(30, 7, window);
        let before: Vec<(String, Tally)> = map
            .iter()
            .map(|(k, g)| (k.clone(), g.tally.clone()))
            .collect();
        let late = Ts::from_secs(1_000_000 + 3 * window);
        let victim = least_recent_quiet(&map, Tally::slot(late, window)).map(str::to_string);
        let mut room = Room::default();
        assert!(group_slot(&mut map, &mut room, "new@y.example", 30, late, window).is_some());
        let victim = victim.expect("a quiet group three windows on");
        assert!(!map.contains_key(&victim) && map.contains_key("new@y.example"));
        for (k, t) in before.into_iter().filter(|(k, _)| *k != victim) {
            assert_eq!(map[&k].tally, t, "{k}");
        }
    }

    /// A table kept with its [`Room`] gives up the same groups as one searched in full for
    /// every newcomer ([`least_recent_quiet`]), through long runs of newcomers and returning
    /// senders, writes at the same second, times going back a little (log lines out of
    /// order) and jumps of hours (failures leaving the window), and tables full of failing
    /// groups.
    #[test]
    fn the_room_kept_gives_up_what_a_full_search_gives_up() {
        let window = Config::default().delivery_failures.window.0;
        let hour = window / TALLY_SLICES;
        let (mut searched, mut given_up, mut refused) = (0usize, 0usize, 0usize);
        for seed in 0..60u64 {
            let mut r = seed.wrapping_add(1);
            let mut next = move |m: u64| {
                r = r
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (r >> 33) % m
            };
            let cap = 1 + next(40) as usize;
            let senders = cap as u64 * (1 + next(4));
            let fail_per_mille = [0, 300, 700, 1000][next(4) as usize];
            let mut kept: BTreeMap<String, Group> = BTreeMap::new();
            let mut room = Room::default();
            let mut plain: BTreeMap<String, Group> = BTreeMap::new();
            let mut secs = 1_000_000i64;
            for _ in 0..3_000 {
                secs += match next(100) {
                    0..=59 => 0,
                    60..=89 => next(120) as i64,
                    90..=95 => -(next(30) as i64),
                    _ => hour * next(30) as i64,
                };
                let ts = Ts::from_secs(secs);
                let key = format!("s{}@d{}.example", next(senders), next(3));
                let failed = u64::from(next(1000) < fail_per_mille);
                let o = Outcomes {
                    delivered: 1 - failed,
                    failed,
                    ..Outcomes::default()
                };
                // The plain table: a full search for every newcomer.
                let now = Tally::slot(ts, window);
                let expected = if !plain.contains_key(&key) && plain.len() >= cap {
                    searched += 1;
                    match least_recent_quiet(&plain, now).map(str::to_string) {
                        Some(v) => {
                            plain.remove(&v);
                            given_up += 1;
                            true
                        }
                        None => {
                            refused += 1;
                            false
                        }
                    }
                } else {
                    true
                };
                if expected {
                    let g = plain.entry(key.clone()).or_default();
                    g.tally.add(ts, window, &o);
                    g.last = ts;
                }
                let got = group_slot(&mut kept, &mut room, &key, cap, ts, window);
                assert_eq!(got.is_some(), expected, "seed {seed} at {secs}");
                if let Some(g) = got {
                    g.tally.add(ts, window, &o);
                    g.last = ts;
                }
                assert!(
                    kept.len() == plain.len() && kept.keys().eq(plain.keys()),
                    "seed {seed} at {secs}"
                );
            }
            assert_eq!(kept, plain, "seed {seed}");
        }
        // Every case occurs many times.
        assert!(
            given_up > 10_000 && refused > 1_000,
            "{searched} {given_up} {refused}"
        );
    }
}
