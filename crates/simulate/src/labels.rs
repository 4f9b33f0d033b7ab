//! Ground truth: what the simulator labels, as written to `labels.jsonl` and `timeline.jsonl`.

use serde::{Deserialize, Serialize};

/// The entity an alert or label is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    /// `account`, `client`, `sender`, `network` or `campaign`.
    pub kind: String,
    /// SASL user name as logged, client IP, envelope sender (`local@domain`, or `@domain` for a
    /// whole sender domain), network in CIDR form (`192.0.2.0/24`) or campaign id.
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
    /// A `sender` entity: `local@domain`, or `@domain` for a whole envelope-sender domain.
    pub fn sender(id: &str) -> Entity {
        Entity {
            kind: "sender".into(),
            id: id.into(),
        }
    }
    /// A `network` entity in CIDR form.
    pub fn network(id: &str) -> Entity {
        Entity {
            kind: "network".into(),
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
    /// Password guessing on POP/IMAP/SMTP AUTH that succeeded: the label's entity is the
    /// account whose password was guessed and then used.
    PasswordGuessing,
    /// A hacked script on one web site of a shared hosting server (entity `sender`, id `@site`).
    ExploitedWebsite,
    /// An address (`client`) or network (`network`, CIDR) that guesses passwords. Alerts on it
    /// are true; its recall is reported apart from the abuse classes.
    GuessingSource,
    /// A host (`client`) or a /24 of hosts (`network`, CIDR) on the internet sending spam to
    /// our MX: stale and invented recipients, forged HELOs (issue 14).
    IncomingSpamSource,
    /// An infected machine of our own customers writing straight to our MX (`client`).
    LoopedBack,
}

impl AbuseKind {
    /// The label string.
    pub fn as_str(self) -> &'static str {
        match self {
            AbuseKind::HijackedAccount => "hijacked-account",
            AbuseKind::InfectedClient => "infected-client",
            AbuseKind::SlowAndLow => "slow-and-low",
            AbuseKind::PasswordGuessing => "password-guessing",
            AbuseKind::ExploitedWebsite => "exploited-website",
            AbuseKind::GuessingSource => "guessing-source",
            AbuseKind::IncomingSpamSource => "incoming-spam-source",
            AbuseKind::LoopedBack => "looped-back",
        }
    }

    /// Every kind, in report order.
    pub const ALL: [AbuseKind; 8] = [
        AbuseKind::HijackedAccount,
        AbuseKind::InfectedClient,
        AbuseKind::ExploitedWebsite,
        AbuseKind::PasswordGuessing,
        AbuseKind::SlowAndLow,
        AbuseKind::IncomingSpamSource,
        AbuseKind::LoopedBack,
        AbuseKind::GuessingSource,
    ];

    /// The detectors whose alerts can detect a label of this kind (the shared contract in
    /// docs/SIMULATION.md "Evaluation"): an alert by any other detector neither detects the
    /// label nor counts against it.
    pub fn detectors(self) -> &'static [&'static str] {
        match self {
            AbuseKind::HijackedAccount => &["auth-hijack", "campaign"],
            AbuseKind::InfectedClient | AbuseKind::ExploitedWebsite => {
                &["delivery-failures", "helo-anomaly", "multiple-lists"]
            }
            AbuseKind::PasswordGuessing | AbuseKind::GuessingSource => &["auth-bruteforce"],
            AbuseKind::SlowAndLow => &["auth-hijack", "delivery-failures"],
            AbuseKind::IncomingSpamSource => &[
                "incoming-failures",
                "incoming-helo",
                "incoming-filter",
                "looped-back",
            ],
            // A customer's machine is ours: the outgoing detectors that see it count too.
            AbuseKind::LoopedBack => &[
                "looped-back",
                "incoming-failures",
                "incoming-helo",
                "incoming-filter",
                "delivery-failures",
                "helo-anomaly",
            ],
        }
    }

    /// Whether the kind is one of the abuse classes whose recall is a target (everything but
    /// [`AbuseKind::GuessingSource`], which is background noise reported apart).
    pub fn is_abuse_class(self) -> bool {
        self != AbuseKind::GuessingSource
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

/// One line of `population.jsonl`: a benign entity that is not an ordinary user, with the
/// simulator's profile of it (`mailing-list`, `customer-mta`, `web-hosting`, …). Entities not
/// listed are `ordinary`. An entity may appear on several lines (a traveller who also uses a
/// VPN); the evaluator reports all its profiles.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PopulationEntry {
    /// The entity.
    pub entity: Entity,
    /// Its profile.
    pub profile: String,
}
