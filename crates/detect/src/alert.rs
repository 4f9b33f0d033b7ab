//! The alert contract (see docs/ARCHITECTURE.md): one JSON object per alert.

use std::fmt;

use maillog::Ts;
use serde::{Deserialize, Serialize, Serializer};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A SASL-authenticated account.
    Account,
    /// A submitting client IP (a customer line relaying through the smarthost).
    Client,
    /// An envelope sender address (e.g. a web form script submitting locally).
    Sender,
    /// A group of entities tied together (shared botnet IPs, one domain hit at once).
    Campaign,
    /// A network of client addresses, id in CIDR form: `192.0.2.0/24`, `2001:db8:1::/48`.
    Network,
}

impl EntityKind {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Account => "account",
            EntityKind::Client => "client",
            EntityKind::Sender => "sender",
            EntityKind::Campaign => "campaign",
            EntityKind::Network => "network",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entity: kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    /// Kind.
    pub kind: EntityKind,
    /// Id: account name, IP address, sender address or campaign id.
    pub id: String,
}

impl Entity {
    /// Build one.
    pub fn new(kind: EntityKind, id: impl Into<String>) -> Entity {
        Entity {
            kind,
            id: id.into(),
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.id)
    }
}

/// Which rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    /// Too many failed recipients in the window (extrusion detection).
    DeliveryFailures,
    /// One customer running more than one list-like sender.
    MultipleLists,
    /// Bad, forged or changing HELO names.
    HeloAnomaly,
    /// An account used from far more networks/countries than its own history and the population.
    AuthHijack,
    /// Many failed logins from one IP or against one account.
    AuthBruteforce,
    /// Accounts tied by shared source IPs or one domain hit at once.
    Campaign,
    /// sFlow port-25 activity pattern.
    SflowActivity,
    /// An internet host or network whose mail to our MX names mostly unknown local users.
    IncomingFailures,
    /// An internet host whose HELO to our MX is forged or changing.
    IncomingHelo,
    /// An internet host or network whose mail to our users the spam filter judged spam
    /// (forwarders discounted).
    IncomingFilter,
    /// One of our own customers' machines sending spam-like mail straight to our MX.
    LoopedBack,
}

impl Detector {
    /// The rule's name as printed and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::DeliveryFailures => "delivery-failures",
            Detector::MultipleLists => "multiple-lists",
            Detector::HeloAnomaly => "helo-anomaly",
            Detector::AuthHijack => "auth-hijack",
            Detector::AuthBruteforce => "auth-bruteforce",
            Detector::Campaign => "campaign",
            Detector::SflowActivity => "sflow-activity",
            Detector::IncomingFailures => "incoming-failures",
            Detector::IncomingHelo => "incoming-helo",
            Detector::IncomingFilter => "incoming-filter",
            Detector::LoopedBack => "looped-back",
        }
    }
    /// All detectors.
    pub const ALL: [Detector; 11] = [
        Detector::DeliveryFailures,
        Detector::MultipleLists,
        Detector::HeloAnomaly,
        Detector::AuthHijack,
        Detector::AuthBruteforce,
        Detector::Campaign,
        Detector::SflowActivity,
        Detector::IncomingFailures,
        Detector::IncomingHelo,
        Detector::IncomingFilter,
        Detector::LoopedBack,
    ];
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Event time of the event that made the decision.
    #[serde(serialize_with = "ser_ts")]
    pub ts: Ts,
    /// Rule.
    pub detector: Detector,
    /// Subject.
    pub entity: Entity,
    /// 0..1, how sure.
    pub score: f64,
    /// One line for humans.
    pub summary: String,
    /// The numbers and samples behind it.
    pub evidence: serde_json::Value,
}

pub(crate) fn ser_ts<S: Serializer>(ts: &Ts, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.rfc3339())
}

/// Round a score to 3 decimals for stable output.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
