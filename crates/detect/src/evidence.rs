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
                    addr: rc.addr.clone(),
                    outcome: rc.outcome,
                    dsn: rc.dsn.clone(),
                    reply: if rc.outcome.is_delivered() {
                        None
                    } else {
                        rc.reply.as_deref().map(|x| cut(x, 160))
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

/// A small ring of samples: keeps the first `n/2` and the latest `n - n/2`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Samples {
    first: Vec<MessageSample>,
    last: std::collections::VecDeque<MessageSample>,
    seen: u64,
}

impl Samples {
    /// Add one, keeping at most `n`.
    pub fn push(&mut self, s: MessageSample, n: usize) {
        self.seen += 1;
        if self.first.len() < n / 2 {
            crate::compact::push(&mut self.first, s);
            return;
        }
        crate::compact::push_back(&mut self.last, s);
        while self.last.len() > n - n / 2 {
            self.last.pop_front();
        }
    }
    /// The kept samples, in order.
    pub fn to_vec(&self) -> Vec<MessageSample> {
        self.first.iter().chain(self.last.iter()).cloned().collect()
    }
    /// How many were offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}
