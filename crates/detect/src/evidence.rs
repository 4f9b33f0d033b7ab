//! Evidence kept with alerts: one serde struct per detector, and compact samples of messages as
//! the abuse desk's report shows them.
//!
//! An [`Alert`] carries its evidence as JSON (`evidence` in the alert contract, stored as is by
//! `serve` and written by `analyze`). Each detector builds it from its own struct, re-exported
//! here, and readers (the report, the dashboard, the evaluator) read it back through [`Evidence`]
//! rather than by string keys, so a renamed field breaks the build, not the report.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};

use maillog::record::{MessageRecord, Outcome};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Detector};
use crate::compact::Rare;
use crate::packed::{Encoded, Packed};

pub use crate::bruteforce::evidence::{
    AddressEvidence, AddressRule, BruteforceEvidence, GuessedEvidence, NetworkEvidence,
    NetworkRule, TargetEvidence, TopAddress, WaveEvidence,
};
pub use crate::campaign::{CampaignEvidence, Joined};
pub use crate::extrusion::{FailureEvidence, ListSender, ListsEvidence, ReplyCount};
pub use crate::helo::{HeloEvidence, HeloSample, SignCount};
pub use crate::hijack::{
    AsnIps, BaselineSummary, BurstRun, CountryIps, HijackEvidence, IpSample, PerIp, Signal,
};
pub use crate::incoming::{HeloSign, IncomingEvidence};

/// The evidence of one alert, typed by its detector.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Evidence {
    /// `delivery-failures`.
    DeliveryFailures(Box<FailureEvidence>),
    /// `multiple-lists`.
    MultipleLists(ListsEvidence),
    /// `helo-anomaly`.
    HeloAnomaly(HeloEvidence),
    /// `auth-hijack`.
    AuthHijack(Box<HijackEvidence>),
    /// `auth-bruteforce`.
    AuthBruteforce(BruteforceEvidence),
    /// `campaign`.
    Campaign(CampaignEvidence),
    /// `sflow-activity`: the sflow crate's per-host figures and verdict.
    SflowActivity(Box<sflow::activity::HostSummary>),
    /// `incoming-failures`, `incoming-helo`, `looped-back`.
    Incoming(Box<IncomingEvidence>),
}

impl Evidence {
    /// Read `evidence` as the evidence of `detector`. Fails when it does not have that
    /// detector's shape (an alert of an older or foreign format).
    pub fn decode(
        detector: Detector,
        evidence: &serde_json::Value,
    ) -> serde_json::Result<Evidence> {
        Ok(match detector {
            Detector::DeliveryFailures => {
                Evidence::DeliveryFailures(Box::new(FailureEvidence::deserialize(evidence)?))
            }
            Detector::MultipleLists => {
                Evidence::MultipleLists(ListsEvidence::deserialize(evidence)?)
            }
            Detector::HeloAnomaly => Evidence::HeloAnomaly(HeloEvidence::deserialize(evidence)?),
            Detector::AuthHijack => {
                Evidence::AuthHijack(Box::new(HijackEvidence::deserialize(evidence)?))
            }
            Detector::AuthBruteforce => {
                Evidence::AuthBruteforce(BruteforceEvidence::deserialize(evidence)?)
            }
            Detector::Campaign => Evidence::Campaign(CampaignEvidence::deserialize(evidence)?),
            Detector::SflowActivity => Evidence::SflowActivity(Box::new(
                sflow::activity::HostSummary::deserialize(evidence)?,
            )),
            Detector::IncomingFailures
            | Detector::IncomingHelo
            | Detector::IncomingFilter
            | Detector::LoopedBack => {
                Evidence::Incoming(Box::new(IncomingEvidence::deserialize(evidence)?))
            }
        })
    }

    /// The alert's evidence, typed; `None` when it does not have its detector's shape.
    pub fn of(a: &Alert) -> Option<Evidence> {
        Evidence::decode(a.detector, &a.evidence).ok()
    }

    /// The evidence as the alert carries it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Most recipients listed per sample message (the rest are counted).
pub const SAMPLE_RECIPIENTS: usize = 8;

/// One recipient in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RcptSample {
    /// Address.
    pub addr: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Enhanced status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
    /// Reply text (cut).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// One message in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSample {
    /// Accepted, `2026-11-20 10:47:15` UTC.
    pub time: String,
    /// Queue id.
    pub qid: String,
    /// Envelope sender (`<>` shown as empty).
    pub sender: String,
    /// Size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Client IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// HELO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helo: Option<String>,
    /// SASL user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    /// Failed recipients first, then delivered, up to [`SAMPLE_RECIPIENTS`].
    pub recipients: Vec<RcptSample>,
    /// Delivered recipients not listed.
    pub more_delivered: usize,
    /// Failed recipients not listed.
    pub more_failed: usize,
}

fn cut(s: &str, n: usize) -> Cow<'_, str> {
    if s.len() <= n {
        return Cow::Borrowed(s);
    }
    let mut e = n;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    // Two copies into a string of the right size, not `format!` (a third of the failing
    // messages' samples on the benchmark log cut a reply).
    let mut out = String::with_capacity(e + '…'.len_utf8());
    out.push_str(&s[..e]);
    out.push('…');
    Cow::Owned(out)
}

impl MessageSample {
    /// Sample a record.
    pub fn of(r: &MessageRecord) -> MessageSample {
        let s = SampleOf::of(r);
        MessageSample {
            time: s.time.0.display_utc(),
            qid: s.qid.to_string(),
            sender: s.sender.to_string(),
            size: s.size,
            client: s.client.map(|c| c.0.to_string()),
            helo: s.helo.map(str::to_string),
            auth_user: s.auth_user.map(str::to_string),
            recipients: s
                .recipients
                .into_iter()
                .map(|r| RcptSample {
                    addr: r.addr.to_string(),
                    outcome: r.outcome,
                    dsn: r.dsn.map(str::to_string),
                    reply: r.reply.map(Cow::into_owned),
                })
                .collect(),
            more_delivered: s.more_delivered,
            more_failed: s.more_failed,
        }
    }
}

/// The recipients a sample lists — failed ones first, then delivered, each group in the
/// record's order, up to [`SAMPLE_RECIPIENTS`] — and how many delivered and failed ones it
/// leaves out.
fn pick_recipients(r: &MessageRecord) -> (Vec<RcptOf<'_>>, usize, usize) {
    let mut picked = Vec::with_capacity(r.recipients.len().min(SAMPLE_RECIPIENTS));
    let (mut more_delivered, mut more_failed) = (0, 0);
    let failed_first = r.recipients.iter().filter(|x| x.outcome.is_failure());
    let then_others = r.recipients.iter().filter(|x| !x.outcome.is_failure());
    for rc in failed_first.chain(then_others) {
        if picked.len() < SAMPLE_RECIPIENTS {
            picked.push(RcptOf {
                addr: rc.addr(),
                outcome: rc.outcome,
                dsn: rc.dsn(),
                reply: if rc.outcome.is_delivered() {
                    None
                } else {
                    rc.reply().map(|x| cut(x, SAMPLE_REPLY_BYTES))
                },
            });
        } else if rc.outcome.is_failure() {
            more_failed += 1;
        } else {
            more_delivered += 1;
        }
    }
    (picked, more_delivered, more_failed)
}

/// Longest reply text a sample keeps, in bytes (cut at a character boundary, `…` added).
const SAMPLE_REPLY_BYTES: usize = 160;

/// A recipient of a sample, borrowed from its record: serialized as a [`StoredRcpt`].
#[derive(Serialize)]
struct RcptOf<'a> {
    addr: &'a str,
    outcome: Outcome,
    dsn: Option<&'a str>,
    reply: Option<Cow<'a, str>>,
}

/// A sample borrowed from its record: serialized (packed) exactly as the [`StoredSample`] of
/// [`MessageSample::of`] the same record, without its strings copied first (building the
/// owned sample for every failing record, then packing it, was 3.5% of `analyze`'s
/// instructions; docs/PERFORMANCE.md). The field order is [`StoredSample`]'s: positional.
#[derive(Serialize)]
struct SampleOf<'a> {
    time: TimeText,
    qid: &'a str,
    sender: &'a str,
    size: Option<u64>,
    client: Option<IpText>,
    helo: Option<&'a str>,
    auth_user: Option<&'a str>,
    recipients: Vec<RcptOf<'a>>,
    more_delivered: usize,
    more_failed: usize,
}

impl<'a> SampleOf<'a> {
    /// The sample of a record.
    fn of(r: &'a MessageRecord) -> SampleOf<'a> {
        let (recipients, more_delivered, more_failed) = pick_recipients(r);
        SampleOf {
            time: TimeText(r.accepted),
            qid: &r.qid,
            sender: r.sender.as_deref().unwrap_or_default(),
            size: r.size,
            client: r.client_ip.map(IpText),
            helo: r.helo.as_deref(),
            auth_user: r.auth_user.as_deref(),
            recipients,
            more_delivered,
            more_failed,
        }
    }
}

/// A record whose sample is offered to one or more [`Samples`]
/// ([`Samples::push_sample_of`]): packed at the first that keeps it, and those bytes reused by
/// the others.
pub struct SampleOfRecord<'r> {
    record: &'r MessageRecord,
    encoded: OnceCell<Encoded<StoredSample>>,
}

impl<'r> SampleOfRecord<'r> {
    /// The sample of `record`, not encoded yet.
    pub fn new(record: &'r MessageRecord) -> Self {
        SampleOfRecord {
            record,
            encoded: OnceCell::new(),
        }
    }

    /// The sample, packed ([`SampleOf`]), encoded at the first call.
    fn encoded(&self) -> &Encoded<StoredSample> {
        self.encoded
            .get_or_init(|| Encoded::of(&SampleOf::of(self.record)))
    }
}

thread_local! {
    /// The text of a sample's time or client address while it is packed ([`TimeText`],
    /// [`IpText`]): one buffer reused, where each sample made two strings and dropped them.
    static SAMPLE_TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// `text` written into this thread's [`SAMPLE_TEXT`], then serialized as a string.
fn serialize_text<S: serde::Serializer>(
    s: S,
    text: impl FnOnce(&mut String),
) -> Result<S::Ok, S::Error> {
    SAMPLE_TEXT.with(|buf| {
        // A serializer never packs a sample inside another, so the buffer is free; should it
        // ever not be, a string of its own does the same.
        let mut shared = buf.try_borrow_mut().ok();
        let mut own = String::new();
        let b = shared.as_deref_mut().unwrap_or(&mut own);
        b.clear();
        text(b);
        s.serialize_str(b)
    })
}

/// A sample's time, serialized as [`maillog::Ts::display_utc`] writes it.
struct TimeText(maillog::Ts);

impl Serialize for TimeText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_text(s, |b| self.0.push_display_utc(b))
    }
}

/// A sample's client address, serialized as its `Display` writes it.
struct IpText(std::net::IpAddr);

impl Serialize for IpText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_text(s, |b| maillog::ip::push_text(b, self.0))
    }
}

/// A [`RcptSample`] as [`Samples`] keep it: every field written, so that it can be packed
/// positionally ([`Packed`]; the sample skips `None`s when serialized).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredRcpt {
    addr: String,
    outcome: Outcome,
    dsn: Option<String>,
    reply: Option<String>,
}

/// A [`MessageSample`] as [`Samples`] keep it (see [`StoredRcpt`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredSample {
    time: String,
    qid: String,
    sender: String,
    size: Option<u64>,
    client: Option<String>,
    helo: Option<String>,
    auth_user: Option<String>,
    recipients: Vec<StoredRcpt>,
    more_delivered: usize,
    more_failed: usize,
}

impl From<MessageSample> for StoredSample {
    fn from(m: MessageSample) -> Self {
        StoredSample {
            time: m.time,
            qid: m.qid,
            sender: m.sender,
            size: m.size,
            client: m.client,
            helo: m.helo,
            auth_user: m.auth_user,
            recipients: m
                .recipients
                .into_iter()
                .map(|r| StoredRcpt {
                    addr: r.addr,
                    outcome: r.outcome,
                    dsn: r.dsn,
                    reply: r.reply,
                })
                .collect(),
            more_delivered: m.more_delivered,
            more_failed: m.more_failed,
        }
    }
}

impl From<StoredSample> for MessageSample {
    fn from(m: StoredSample) -> Self {
        MessageSample {
            time: m.time,
            qid: m.qid,
            sender: m.sender,
            size: m.size,
            client: m.client,
            helo: m.helo,
            auth_user: m.auth_user,
            recipients: m
                .recipients
                .into_iter()
                .map(|r| RcptSample {
                    addr: r.addr,
                    outcome: r.outcome,
                    dsn: r.dsn,
                    reply: r.reply,
                })
                .collect(),
            more_delivered: m.more_delivered,
            more_failed: m.more_failed,
        }
    }
}

/// A small ring of samples: keeps the first `n/2` and the latest `n - n/2`.
///
/// Most entities never have a sample (one null pointer); the others keep theirs packed
/// ([`Packed`], read only when an alert is raised): the first ones in one byte string, the
/// latest in another, so that replacing the oldest of the latest walks past no other sample.
/// A snapshot holds the struct it was before ([`SamplesFields`]): the first ones, the latest
/// ones and how many were offered, each sample with every field (an absent one as nil), so
/// that the form is positional-safe ([`crate::cold`]); snapshots written when absent fields
/// were left out read back the same.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples(Rare<Kept>);

/// The samples of an entity that has some.
#[derive(Debug, Clone, Default, PartialEq)]
struct Kept {
    /// The first ones.
    first: Packed<StoredSample>,
    /// The latest ones, oldest first.
    last: Packed<StoredSample>,
    /// How many were offered.
    seen: u64,
}

/// [`Samples`] as a snapshot holds them.
#[derive(Serialize, Deserialize)]
struct SamplesFields {
    first: Vec<StoredSample>,
    last: Vec<StoredSample>,
    seen: u64,
}

impl Samples {
    /// Add one, keeping at most `n`.
    pub fn push(&mut self, s: MessageSample, n: usize) {
        let stored = Encoded::of(&StoredSample::from(s));
        self.keep(|| &stored, n);
    }

    /// Add the sample of a record, keeping at most `n`: what `push(MessageSample::of(r), n)`
    /// keeps, packed straight from the record.
    pub fn push_record(&mut self, r: &MessageRecord, n: usize) {
        self.push_sample_of(&SampleOfRecord::new(r), n);
    }

    /// [`Samples::push_record`] of a record whose sample may go into other lists too: it is
    /// encoded once, at the first list that keeps it.
    pub fn push_sample_of(&mut self, r: &SampleOfRecord<'_>, n: usize) {
        self.keep(|| r.encoded(), n);
    }

    /// Keep the sample `stored` gives (called only when it is kept).
    fn keep<'s>(&mut self, stored: impl FnOnce() -> &'s Encoded<StoredSample>, n: usize) {
        let k = self.0.get_or_default();
        k.seen += 1;
        if k.first.len() < n / 2 {
            k.first.push_encoded(stored());
            return;
        }
        let latest = n - n / 2;
        if latest == 0 {
            return;
        }
        if k.last.len() >= latest {
            // The rolling half is full: its oldest goes as this one comes.
            k.last.remove_push_encoded(0, stored());
        } else {
            k.last.push_encoded(stored());
        }
        while k.last.len() > latest {
            k.last.remove(0);
        }
    }

    /// The kept samples, in order.
    pub fn to_vec(&self) -> Vec<MessageSample> {
        let (first, last) = self.parts();
        first
            .into_iter()
            .chain(last)
            .map(MessageSample::from)
            .collect()
    }

    /// The first ones and the latest ones, decoded.
    fn parts(&self) -> (Vec<StoredSample>, Vec<StoredSample>) {
        self.0
            .get()
            .map_or_else(Default::default, |k| (k.first.to_vec(), k.last.to_vec()))
    }

    /// How many were offered.
    pub fn seen(&self) -> u64 {
        self.0.get().map_or(0, |k| k.seen)
    }
}

impl Serialize for Samples {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if crate::cold::packing() {
            // A packed state keeps the packed samples as they are (see `crate::cold`).
            let none = Kept::default();
            let k = self.0.get().unwrap_or(&none);
            return (&k.first, &k.last, k.seen).serialize(s);
        }
        let (first, last) = self.parts();
        SamplesFields {
            first,
            last,
            seen: self.seen(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Samples {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if crate::cold::packing() {
            let (first, last, seen) = Deserialize::deserialize(d)?;
            let mut r = Rare::default();
            r.set(Kept { first, last, seen });
            return Ok(Samples(r));
        }
        let f = SamplesFields::deserialize(d)?;
        let mut k = Kept {
            seen: f.seen,
            ..Kept::default()
        };
        for m in &f.first {
            k.first.push(m);
        }
        for m in &f.last {
            k.last.push(m);
        }
        let mut r = Rare::default();
        r.set(k);
        Ok(Samples(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply is cut as `format!("{}…", …)` cut it: borrowed when short enough, else at the
    /// last character boundary at or before the limit, with the ellipsis, for every limit
    /// over texts of one-, two-, three- and four-byte characters.
    #[test]
    fn a_cut_reply_is_the_formatted_one() {
        for text in ["550 user unknown", "Größe ü€ 𝄞 550 5.1.1", "€€€€€€", ""] {
            for n in 0..=text.len() + 1 {
                let got = cut(text, n);
                if text.len() <= n {
                    assert!(matches!(got, Cow::Borrowed(t) if t == text));
                    continue;
                }
                let e = (0..=n).rev().find(|&e| text.is_char_boundary(e)).unwrap();
                assert_eq!(got, format!("{}…", &text[..e]), "{text:?} {n}");
            }
        }
    }

    /// The ring as it was kept before it was packed: the reference for order and snapshots.
    #[derive(Default, Serialize)]
    struct OldSamples {
        first: Vec<MessageSample>,
        last: std::collections::VecDeque<MessageSample>,
        seen: u64,
    }

    impl OldSamples {
        fn push(&mut self, s: MessageSample, n: usize) {
            self.seen += 1;
            if self.first.len() < n / 2 {
                self.first.push(s);
                return;
            }
            self.last.push_back(s);
            while self.last.len() > n - n / 2 {
                self.last.pop_front();
            }
        }
    }

    fn sample(i: usize) -> MessageSample {
        MessageSample {
            time: format!("2026-11-20 10:47:{:02}", i % 60),
            qid: format!("Q{i}"),
            sender: format!("s{i}@example.org"),
            size: i.is_multiple_of(2).then_some(1000 + i as u64),
            client: (!i.is_multiple_of(3)).then(|| "192.0.2.7".to_string()),
            helo: None,
            auth_user: (i % 2 == 1).then(|| "user".to_string()),
            recipients: vec![RcptSample {
                addr: format!("r{i}@example.net"),
                outcome: if i.is_multiple_of(2) {
                    Outcome::Bounced
                } else {
                    Outcome::Delivered
                },
                dsn: Some("5.1.1".to_string()),
                reply: i.is_multiple_of(2).then(|| "550 User unknown".to_string()),
            }],
            more_delivered: i,
            more_failed: 0,
        }
    }

    /// A record of `n` recipients whose outcomes cycle through every kind, with replies long
    /// and short (cut inside a multi-byte character), and the optional fields set or not by `i`.
    fn record(i: usize, n: usize) -> MessageRecord {
        use maillog::record::{Origin, Recipient};
        use maillog::Ts;
        let outcomes = [
            Outcome::Delivered,
            Outcome::Bounced,
            Outcome::Deferred,
            Outcome::DeferredThenDelivered,
            Outcome::Expired,
            Outcome::Discarded,
        ];
        let ts = Ts::from_secs(1_763_600_000 + 61 * i as i64);
        let long = format!("550 5.1.1 {} no such user", "é".repeat(100 + i));
        let recipients = (0..n)
            .map(|k| {
                let reply = match k % 3 {
                    0 => Some(long.as_str()),
                    1 => Some("250 2.0.0 Ok: queued as ABC"),
                    _ => None,
                };
                Recipient::new(
                    &format!("r{k}@far{i}.example"),
                    (k % 4 == 1).then_some("orig@here.example"),
                    outcomes[(k + i) % outcomes.len()],
                    ts,
                )
                .with_attempt([
                    (k % 2 == 0).then_some("5.1.1"),
                    None,
                    Some("smtp"),
                    reply,
                ])
            })
            .collect();
        MessageRecord {
            host: "mx1".to_string(),
            qid: format!("Q{i}"),
            accepted: ts,
            finished: ts,
            origin: Origin::Smtp,
            client_ip: match i % 3 {
                0 => None,
                1 => Some("192.0.2.7".parse().unwrap()),
                _ => Some("2001:db8::7".parse().unwrap()),
            },
            client_host: None,
            helo: i.is_multiple_of(2).then(|| "pc-7".to_string()),
            auth_user: (i % 2 == 1).then(|| format!("user{i}")),
            local_user: None,
            sender: (!i.is_multiple_of(5)).then(|| format!("s{i}@here.example")),
            size: (i % 3 != 1).then_some(1000 + i as u64),
            nrcpt: Some(n as u32),
            message_id: None,
            recipients,
            recipient_index: Default::default(),
            rejected: None,
            held: false,
            notices: 0,
            complete: true,
            filter: None,
        }
    }

    /// A record's sample packed straight from it is the one its owned [`MessageSample`] packs
    /// to, byte for byte, and reads back as that sample.
    #[test]
    fn samples_of_records_pack_as_their_owned_samples() {
        for n in [2, 10] {
            let (mut direct, mut owned) = (Samples::default(), Samples::default());
            let mut want = Vec::new();
            for i in 0..14 {
                let r = record(i, [0, 1, 3, 8, 9, 20][i % 6]);
                direct.push_record(&r, n);
                owned.push(MessageSample::of(&r), n);
                want.push(MessageSample::of(&r));
                assert_eq!(direct, owned, "n {n}, record {i}");
            }
            let kept = direct.to_vec();
            assert_eq!(kept.last(), want.last());
            assert!(kept.iter().all(|k| want.contains(k)));
        }
        let s = MessageSample::of(&record(1, 20));
        assert_eq!(s.recipients.len(), SAMPLE_RECIPIENTS);
        assert!(s.recipients[0].outcome.is_failure());
        assert_eq!(s.more_delivered + s.more_failed, 20 - SAMPLE_RECIPIENTS);
        let cut = s.recipients[0].reply.as_deref().unwrap();
        assert!(cut.ends_with('…') && cut.len() <= SAMPLE_REPLY_BYTES + '…'.len_utf8());
    }

    /// A record's sample offered to several lists is encoded once, at the first that keeps it,
    /// and every list holds what `push_record` would have put in it; a list that keeps none
    /// does not encode it.
    #[test]
    fn a_sample_offered_to_several_lists_is_encoded_once_and_kept_alike() {
        let sizes = [0, 1, 2, 3, 10];
        let mut once: Vec<Samples> = sizes.iter().map(|_| Samples::default()).collect();
        let mut each = once.clone();
        for i in 0..14 {
            let r = record(i, [0, 1, 3, 8, 9, 20][i % 6]);
            let sample = SampleOfRecord::new(&r);
            for (k, &n) in sizes.iter().enumerate() {
                once[k].push_sample_of(&sample, n);
                each[k].push_record(&r, n);
                assert_eq!(once[k], each[k], "record {i}, list of {n}");
            }
            assert!(
                sample.encoded.get().is_some(),
                "record {i}: kept, so encoded"
            );
        }
        // A list of none keeps nothing, so nothing is encoded for it.
        let r = record(3, 2);
        let sample = SampleOfRecord::new(&r);
        let mut none = Samples::default();
        none.push_sample_of(&sample, 0);
        assert!(sample.encoded.get().is_none());
        assert_eq!(none.seen(), 1);
        assert!(none.to_vec().is_empty());
    }

    /// A client address is written as `Display` writes it: every octet value in every place
    /// of an IPv4 address, and IPv6 ones (which `Display` writes).
    #[test]
    fn a_sample_writes_addresses_as_display_does() {
        use std::net::{IpAddr, Ipv4Addr};
        let mut out = String::new();
        for v in 0..=255u8 {
            for place in 0..4 {
                let mut octets = [10, 0, 200, 99];
                octets[place] = v;
                let ip = IpAddr::V4(Ipv4Addr::from(octets));
                out.clear();
                maillog::ip::push_text(&mut out, ip);
                assert_eq!(out, ip.to_string());
            }
        }
        for text in ["2001:db8::7", "::1", "::ffff:192.0.2.1", "fe80::1:2:3:4"] {
            let ip: IpAddr = text.parse().unwrap();
            out.clear();
            maillog::ip::push_text(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
        // The time as `display_utc` writes it, into a buffer that held something before.
        let ts = maillog::Ts::from_secs(1_763_635_635);
        out.clear();
        out.push_str("left over");
        out.clear();
        ts.push_display_utc(&mut out);
        assert_eq!(out, ts.display_utc());
        assert_eq!(out, "2025-11-20 10:47:15");
    }

    #[test]
    fn packed_samples_keep_what_the_ring_kept_and_snapshot_as_it() {
        for n in [0, 1, 4, 5, 10] {
            let (mut new, mut old) = (Samples::default(), OldSamples::default());
            let none = crate::snapshot::encode(&OldSamples::default()).unwrap();
            assert_eq!(crate::snapshot::encode(&new).unwrap(), none);
            for i in 0..13 {
                new.push(sample(i), n);
                old.push(sample(i), n);
                let want: Vec<_> = old.first.iter().chain(old.last.iter()).cloned().collect();
                assert_eq!(new.to_vec(), want, "n {n}, push {i}");
                assert_eq!(new.seen(), old.seen);
            }
            // Every field written (absent ones as nil), else the ring's form.
            let bytes = crate::snapshot::encode(&new).unwrap();
            let stored = |v: &mut dyn Iterator<Item = &MessageSample>| -> Vec<StoredSample> {
                v.cloned().map(StoredSample::from).collect()
            };
            let want = SamplesFields {
                first: stored(&mut old.first.iter()),
                last: stored(&mut old.last.iter()),
                seen: old.seen,
            };
            assert_eq!(bytes, crate::snapshot::encode(&want).unwrap(), "n {n}");
            let back: Samples = crate::snapshot::decode(&bytes).unwrap();
            assert_eq!(back, new);
            // A snapshot that left absent fields out (as before) reads back the same.
            let ring = crate::snapshot::encode(&old).unwrap();
            let back: Samples = crate::snapshot::decode(&ring).unwrap();
            assert_eq!(back, new, "n {n}");
            // Positional (as a packed state keeps it): the same samples back.
            let packed = rmp_serde::to_vec(&new).unwrap();
            let back: Samples = rmp_serde::from_slice(&packed).unwrap();
            assert_eq!(back, new, "n {n}");
            let empty: Samples = crate::snapshot::decode(&none).unwrap();
            assert!(empty.0.get().is_none());
        }
    }
}
