//! Ground truth: what the simulator labels, as written to `labels.jsonl` and `timeline.jsonl`.

use serde::{Deserialize, Serialize};

/// The entity an alert or label is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    /// `account`, `client`, `sender` or `campaign`.
    pub kind: String,
    /// SASL user name as logged, client IP, envelope sender or campaign id.
    pub id: String,
}

impl Entity {
    /// An `account` entity.
    pub fn account(id: &str) -> Entity {
        Entity {
            kind: "account".into(),
            id: id.into(),
        }
    }
    /// A `client` entity.
    pub fn client(id: &str) -> Entity {
        Entity {
            kind: "client".into(),
            id: id.into(),
        }
    }
}

/// The kinds of abuse the simulator plants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbuseKind {
    /// Fraudulent SMTP AUTH with stolen credentials.
    HijackedAccount,
    /// A customer machine relaying malware or spam through the smarthost without auth.
    InfectedClient,
    /// An abuser staying under simple rate limits.
    SlowAndLow,
    /// Password guessing on POP/IMAP/SMTP AUTH.
    PasswordGuessing,
}

impl AbuseKind {
    /// The label string.
    pub fn as_str(self) -> &'static str {
        match self {
            AbuseKind::HijackedAccount => "hijacked-account",
            AbuseKind::InfectedClient => "infected-client",
            AbuseKind::SlowAndLow => "slow-and-low",
            AbuseKind::PasswordGuessing => "password-guessing",
        }
    }
}

/// How a hijacked account is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// A few messages per IP from very many IPs.
    Spread,
    /// Thousands of messages from one IP at several per second.
    Burst,
}

/// One line of `labels.jsonl`: one abusive entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// Who.
    pub entity: Entity,
    /// What.
    pub kind: AbuseKind,
    /// Hijack shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// First abusive event, RFC 3339 UTC.
    pub start: String,
    /// Last abusive event, RFC 3339 UTC.
    pub end: String,
    /// Messages accepted (queued) from the entity during the abuse.
    pub messages: u64,
    /// Attempts refused at SMTP time (HELO rejects, failed logins).
    #[serde(default)]
    pub rejected: u64,
    /// Distinct source IPs used.
    #[serde(default)]
    pub source_ips: u64,
    /// Distinct countries of those IPs.
    #[serde(default)]
    pub countries: u64,
    /// Id of the group when several accounts of one domain are hijacked together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One line of `timeline.jsonl`: the accept times of a label's messages, so the evaluator can
/// count spam leaked before the first alert without re-reading the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The labelled entity.
    pub entity: Entity,
    /// The label kind.
    pub kind: AbuseKind,
    /// Accept times, seconds since the Unix epoch, ascending: the first value is absolute, every
    /// later value is the difference to the previous one.
    pub accepted: Vec<i64>,
}

impl TimelineEntry {
    /// The absolute accept times.
    pub fn times(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.accepted.len());
        let mut t = 0i64;
        for (i, d) in self.accepted.iter().enumerate() {
            t = if i == 0 { *d } else { t.saturating_add(*d) };
            out.push(t);
        }
        out
    }
}
