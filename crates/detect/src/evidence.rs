//! Evidence kept with alerts: one serde struct per detector, and compact samples of messages as
//! the abuse desk's report shows them.
//!
//! An [`Alert`] carries its evidence as JSON (`evidence` in the alert contract, stored as is by
//! `serve` and written by `analyze`). Each detector builds it from its own struct, re-exported
//! here, and readers (the report, the dashboard, the evaluator) read it back through [`Evidence`]
//! rather than by string keys, so a renamed field breaks the build, not the report.

use maillog::record::{MessageRecord, Outcome};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Detector};
use crate::compact::Rare;
use crate::packed::Packed;

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

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut e = n;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    format!("{}…", &s[..e])
}

impl MessageSample {
    /// Sample a record.
    pub fn of(r: &MessageRecord) -> MessageSample {
        let mut recipients = Vec::new();
        let (mut more_d, mut more_f) = (0, 0);
        let mut order: Vec<_> = r.recipients.iter().collect();
        order.sort_by_key(|x| !x.outcome.is_failure());
        for rc in order {
            if recipients.len() < SAMPLE_RECIPIENTS {
                recipients.push(RcptSample {
                    addr: rc.addr().to_string(),
                    outcome: rc.outcome,
                    dsn: rc.dsn().map(str::to_string),
                    reply: if rc.outcome.is_delivered() {
                        None
                    } else {
                        rc.reply().map(|x| cut(x, 160))
                    },
                });
            } else if rc.outcome.is_failure() {
                more_f += 1;
            } else {
                more_d += 1;
            }
        }
        MessageSample {
            time: r.accepted.display_utc(),
            qid: r.qid.clone(),
            sender: r.sender.clone().unwrap_or_default(),
            size: r.size,
            client: r.client_ip.map(|i| i.to_string()),
            helo: r.helo.clone(),
            auth_user: r.auth_user.clone(),
            recipients,
            more_delivered: more_d,
            more_failed: more_f,
        }
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
/// ([`Packed`], read only when an alert is raised), the first ones then the latest in one byte
/// string. A snapshot holds the struct it was before ([`SamplesFields`]): the first ones, the
/// latest ones and how many were offered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples(Rare<Kept>);

/// The samples of an entity that has some.
#[derive(Debug, Clone, Default, PartialEq)]
struct Kept {
    /// The first ones, then the latest ones.
    all: Packed<StoredSample>,
    /// How many of `all` are the first ones.
    first: u32,
    /// How many were offered.
    seen: u64,
}

/// [`Samples`] as a snapshot holds them.
#[derive(Serialize, Deserialize)]
struct SamplesFields {
    first: Vec<MessageSample>,
    last: Vec<MessageSample>,
    seen: u64,
}

impl Samples {
    /// Add one, keeping at most `n`.
    pub fn push(&mut self, s: MessageSample, n: usize) {
        let k = self.0.get_or_default();
        k.seen += 1;
        let first = k.first as usize;
        if first < n / 2 {
            k.all.insert(first, &s.into());
            k.first += 1;
            return;
        }
        let stored = s.into();
        if k.all.len() - first >= n - n / 2 {
            // The rolling half is full: its oldest goes as this one comes.
            k.all.remove_push(first, &stored);
        } else {
            k.all.push(&stored);
        }
        while k.all.len() - first > n - n / 2 {
            k.all.remove(first);
        }
    }

    /// The kept samples, in order.
    pub fn to_vec(&self) -> Vec<MessageSample> {
        self.0.get().map_or_else(Vec::new, |k| {
            k.all
                .to_vec()
                .into_iter()
                .map(MessageSample::from)
                .collect()
        })
    }

    /// How many were offered.
    pub fn seen(&self) -> u64 {
        self.0.get().map_or(0, |k| k.seen)
    }
}

impl Serialize for Samples {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut first = self.to_vec();
        let last = first.split_off((self.0.get().map_or(0, |k| k.first) as usize).min(first.len()));
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
        let f = SamplesFields::deserialize(d)?;
        let mut k = Kept {
            first: u32::try_from(f.first.len()).unwrap_or(u32::MAX),
            seen: f.seen,
            ..Kept::default()
        };
        for m in f.first.into_iter().chain(f.last) {
            k.all.push(&m.into());
        }
        let mut r = Rare::default();
        r.set(k);
        Ok(Samples(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let bytes = crate::snapshot::encode(&new).unwrap();
            assert_eq!(bytes, crate::snapshot::encode(&old).unwrap(), "n {n}");
            let back: Samples = crate::snapshot::decode(&bytes).unwrap();
            assert_eq!(back, new);
            let empty: Samples = crate::snapshot::decode(&none).unwrap();
            assert!(empty.0.get().is_none());
        }
    }
}
