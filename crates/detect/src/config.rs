//! Detector settings: every threshold has a name, a default, and a reason (see docs/DETECTION.md).
//!
//! The structures deserialize from the `[detect]` and `[network]` tables of smtpscope.toml with
//! `deny_unknown_fields`, so a misspelt key is an error that names it.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::window::parse_duration;

/// A duration written as `90s`, `10m`, `24h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Duration(pub i64);

impl TryFrom<String> for Duration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_duration(&s)
            .map(Duration)
            .ok_or_else(|| format!("invalid duration {s:?} (expected e.g. 90s, 10m, 24h, 7d)"))
    }
}

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        let s = d.0;
        if s % 86_400 == 0 && s > 0 {
            format!("{}d", s / 86_400)
        } else if s % 3600 == 0 && s > 0 {
            format!("{}h", s / 3600)
        } else if s % 60 == 0 && s > 0 {
            format!("{}m", s / 60)
        } else {
            format!("{s}s")
        }
    }
}

/// Who is "us": the operator's networks, domains and host names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Customer and server networks whose unauthenticated clients are ours (Postfix
    /// `mynetworks`). Mail from elsewhere that is not authenticated and not relayed out is
    /// incoming mail and never makes its sender look like a customer.
    pub own_networks: Vec<IpNet>,
    /// Domains we deliver locally (Postfix `mydestination`, virtual domains). Used to tell
    /// incoming mail from outgoing when the transports do not.
    pub local_domains: Vec<String>,
    /// Our own host names, as a client might forge them in HELO. The host names seen in the
    /// logs' headers are added automatically.
    pub own_names: Vec<String>,
    /// An unauthenticated client outside `own_networks` counts as a customer once it relayed
    /// mail to this many distinct remote recipient domains (an inbound MX accepts mail for its
    /// own few domains only, so internet clients seldom reach it). 0 turns the inference off.
    pub auto_customer_domains: usize,
    /// An autonomous system with at least this many customers found that way counts as our own
    /// access network (all its addresses are customers). 0 turns this off.
    pub auto_own_asn_customers: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            own_networks: Vec::new(),
            local_domains: Vec::new(),
            own_names: Vec::new(),
            auto_customer_domains: 3,
            auto_own_asn_customers: 3,
        }
    }
}

/// `delivery-failures`: extrusion detection by failed recipients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryFailures {
    /// On or off.
    pub enabled: bool,
    /// Alert when failed recipients in the window exceed this. Clayton (2004) found that more
    /// than 20 failures a day separates spam sources from ordinary customers on a large ISP.
    pub threshold: u64,
    /// Sliding window.
    pub window: Duration,
    /// …and the estimated share of the entity's recipients with a known outcome (delivered or
    /// failed; deferred ones are not known yet) that failed for a reason spam produces must reach
    /// this. Real senders stay below it: mailing lists lose ~10% (Clayton), bulk senders 1–7%,
    /// heavy ISP senders are >91% delivered (Foster 2011); spam fails far more (half of a spam
    /// bot's failures are invalid addresses, Stone-Gross et al.). The same boundary as
    /// `mailing_lists.max_failure_ratio`.
    pub min_failure_share: f64,
    /// The failure share of a typical sender, used as the prior of an entity without history
    /// (Foster 2011: ≈2% undelivered for the sources sending under 250 messages a week).
    pub typical_failure_share: f64,
    /// How many recipients' worth of prior the estimate carries: the entity's own history
    /// (shrunk toward `typical_failure_share`), so a handful of outcomes early in a window cannot
    /// decide the verdict on their own. Our own idea.
    pub prior_weight: f64,
    /// Most envelope senders (addresses, and domains, each) tracked per client or account that
    /// relays for several, so that one exploited web site on a shared host is judged on its own.
    /// When full, a sender without failures makes room; failing ones are never pushed out by
    /// new ones. Senders not tracked are counted in the evidence (`senders_dropped`).
    pub max_senders: usize,
}

impl Default for DeliveryFailures {
    fn default() -> Self {
        DeliveryFailures {
            enabled: true,
            threshold: 20,
            window: Duration(86_400),
            min_failure_share: 0.25,
            typical_failure_share: 0.02,
            prior_weight: 100.0,
            max_senders: 512,
        }
    }
}

/// Mailing-list recognition and the `multiple-lists` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailingLists {
    /// A sender address is list-like once it has mailed at least this many distinct recipients
    /// in the window.
    pub min_recipients: u64,
    /// …and at most this share of its recipients failed (real lists see ~5–15%: addresses go
    /// stale; spam to harvested and invented addresses fails far more).
    pub max_failure_ratio: f64,
    /// Alert `multiple-lists` when one customer has more list-like senders than this in the window…
    pub max_lists: u64,
    /// …counting only lists with at least this many distinct recipients in the window, or whose
    /// recipients get its mail again and again (at least 30% repeat deliveries).
    pub multiple_min_recipients: u64,
    /// …and, for the first kind, at least this many recipients per message on average: a list
    /// posts one message to many, while the people behind a customer's mail server (or a
    /// business NAT) each write to a few — two busy senders of a firm reach 200 distinct
    /// recipients a day without being lists. Our own idea.
    pub multiple_min_fanout: f64,
    /// Whether `multiple-lists` alerts at all.
    pub alert_multiple: bool,
}

impl Default for MailingLists {
    fn default() -> Self {
        MailingLists {
            min_recipients: 50,
            max_failure_ratio: 0.25,
            max_lists: 1,
            multiple_min_recipients: 200,
            multiple_min_fanout: 10.0,
            alert_multiple: true,
        }
    }
}

/// Rejection daemons: autoresponders and challenge-response systems replying to spam with a
/// non-null sender; their failures are discounted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RejectionDaemons {
    /// Sender local parts (case-insensitive substrings) that mark automatic replies. Not
    /// `noreply` and its kin: those name senders that take no replies (newsletters, web forms,
    /// and the `noreply@site` of a hacked script or a phish), not daemons that reply.
    pub sender_patterns: Vec<String>,
    /// A message to an address that mailed this sender within this time is a reply.
    pub reply_window: Duration,
    /// Most (recipient, sender) pairs of incoming mail remembered for reply recognition.
    pub max_pairs: usize,
}

impl Default for RejectionDaemons {
    fn default() -> Self {
        RejectionDaemons {
            sender_patterns: [
                "mailer-daemon",
                "postmaster",
                "autoreply",
                "auto-reply",
                "autoresponder",
                "vacation",
                "bounce",
                "challenge",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            reply_window: Duration(7 * 86_400),
            max_pairs: 1_000_000,
        }
    }
}

/// `helo-anomaly`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Helo {
    /// On or off.
    pub enabled: bool,
    /// Alert when the combined score of the signs reaches this.
    pub min_score: f64,
    /// …and at least this many messages or commands showed a sign (one stray line is not a bot).
    pub min_events: u64,
    /// Distinct HELO names from one client within `window` that count as "changing HELOs".
    pub max_distinct: usize,
    /// Window for the distinct-HELO count and for re-alerting.
    pub window: Duration,
}

impl Default for Helo {
    fn default() -> Self {
        Helo {
            enabled: true,
            min_score: 0.7,
            min_events: 3,
            max_distinct: 4,
            window: Duration(3600),
        }
    }
}

/// Memory bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most entities (accounts, clients, senders) with detector state at once.
    pub max_entities: usize,
    /// Most messages kept in flight by the correlator.
    pub max_in_flight: usize,
    /// Sample messages kept per entity as evidence.
    pub samples: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entities: 500_000,
            max_in_flight: maillog::record::DEFAULT_MAX_IN_FLIGHT,
            samples: 12,
        }
    }
}

/// All detector settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Who is us.
    pub network: Network,
    /// `delivery-failures`.
    pub delivery_failures: DeliveryFailures,
    /// Mailing lists and `multiple-lists`.
    pub mailing_lists: MailingLists,
    /// Rejection daemons.
    pub rejection_daemons: RejectionDaemons,
    /// `helo-anomaly`.
    pub helo: Helo,
    /// `auth-hijack`.
    pub hijack: Hijack,
    /// `campaign`.
    pub campaign: Campaign,
    /// `auth-bruteforce`.
    pub bruteforce: Bruteforce,
    /// Memory bounds.
    pub limits: Limits,
}

/// `auth-hijack`: accounts used from far more networks than their history (geography lowers the
/// count needed), or in sustained bursts from an address new to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hijack {
    /// On or off.
    pub enabled: bool,
    /// Alert when the combined score of the signals reaches this.
    pub min_score: f64,
    /// Window for the spread features.
    pub window: Duration,
    /// Spread: at least this many source networks (/24 for IPv4, /48 for IPv6) not in the
    /// account's baseline within the window, with or without geo data (IIJ: the number of source
    /// addresses is the first sign). A person's phone, laptop and office show a handful per hour;
    /// a botnet hundreds.
    pub min_new_networks: u64,
    /// Geo-spread (geography lowers the count needed): at least this many autonomous systems not
    /// in the account's baseline within the window…
    pub min_new_asns: u64,
    /// …in at least this many countries not in its baseline. A traveller adds one country and
    /// an ASN or two; a phone on a carrier adds IPs but stays in one ASN; a botnet adds dozens.
    pub min_new_countries: u64,
    /// Burst: messages from one address new to the account at an average of at least this many
    /// per minute (IIJ: several per second; we take one per second as the floor)…
    pub burst_per_minute: u64,
    /// …sustained for at least this long without a minute's pause (longer than a mail client's
    /// outbox flush; a one-minute spike is not a burst).
    pub burst_sustain: Duration,
    /// Countries that are never foreign: a burst from an account without history counts only
    /// from a country that is neither the account's nor one of these.
    pub home_countries: Vec<String>,
    /// Countries with at least this share of all authenticated logins count as home countries
    /// too (learned from the population).
    pub home_country_share: f64,
    /// Most first-sightings of IPs kept per account for the window (evidence and features).
    pub max_recent_ips: usize,
    /// With at least this many accounts seen, an account must also exceed the population's
    /// 99.9th percentile of new ASNs per window.
    pub population_min_accounts: u64,
}

impl Default for Hijack {
    fn default() -> Self {
        Hijack {
            enabled: true,
            min_score: 0.8,
            window: Duration(3600),
            min_new_networks: 20,
            min_new_asns: 6,
            min_new_countries: 4,
            burst_per_minute: 60,
            burst_sustain: Duration(30),
            home_countries: Vec::new(),
            home_country_share: 0.2,
            max_recent_ips: 512,
            population_min_accounts: 1000,
        }
    }
}

/// `campaign`: accounts tied by shared botnet IPs, or several accounts of one domain at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Campaign {
    /// On or off.
    pub enabled: bool,
    /// Two flagged accounts sharing at least this many source IPs belong to one campaign.
    pub min_shared_ips: u64,
    /// Flagged accounts of one domain within this time belong to one campaign.
    pub domain_window: Duration,
    /// How long the IPs of a flagged account are remembered as campaign IPs.
    pub ip_memory: Duration,
    /// Most campaign IPs remembered.
    pub max_ips: usize,
}

impl Default for Campaign {
    fn default() -> Self {
        Campaign {
            enabled: true,
            min_shared_ips: 2,
            domain_window: Duration(3600),
            ip_memory: Duration(86_400),
            max_ips: 1_000_000,
        }
    }
}

/// `auth-bruteforce`: password guessing on SMTP AUTH, IMAP and POP3. It reports attackers
/// (addresses, networks, campaigns), accounts that exist and are targeted, and successful logins
/// that came from the guessing (see docs/DETECTION.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bruteforce {
    /// On or off.
    pub enabled: bool,
    /// Sliding window of every count below.
    pub window: Duration,
    /// Alert on an IP with more failed logins than this in the window (fail2ban's default is
    /// 5 in 10 minutes; we are less trigger-happy because we report, not ban).
    pub max_failures_per_ip: u64,
    /// Alert on one /24 (IPv6: /48) with more failed logins than this in the window, from at
    /// least two of its addresses (a botnet's or a hoster's range rotating addresses).
    pub max_failures_per_network: u64,
    /// Alert on the server as a whole when failed logins in the window exceed this…
    pub max_failures_total: u64,
    /// …from at least this many addresses (a distributed guessing wave).
    pub min_wave_ips: u64,
    /// Alert on an existing account with failed logins from more distinct IPs than this in the
    /// window…
    pub max_ips_per_account: u64,
    /// …when it is guessed more than this many times as often as the average other guessed name
    /// in the window (targeted, not one name of the background dictionary).
    pub min_target_ratio: f64,
    /// A successful login is suspicious only after at least this many failures against the
    /// account from outside its own places (fewer are typos).
    pub success_after_failures: u64,
    /// An attack is over once its rule's condition has not held for this long; only then does
    /// the same attacker or account start a new attack with a new alert.
    pub attack_quiet: Duration,
    /// Within one attack, alert again when the attack's measure (failures, addresses) reaches
    /// this many times the measure of its last alert. Below 2: never.
    pub escalation_factor: u64,
    /// How long the addresses that failed against a name are remembered for judging a later
    /// successful login (slow guessing spreads over a day).
    pub source_memory: Duration,
    /// An account's places count as its history once its first successful login is this old.
    pub learn_period: Duration,
    /// Most attacker addresses, networks and guessed names with state (each), kept apart from
    /// the accounts so that an attacker's cardinality cannot evict real accounts.
    pub max_attackers: usize,
}

impl Default for Bruteforce {
    fn default() -> Self {
        Bruteforce {
            enabled: true,
            window: Duration(3600),
            max_failures_per_ip: 20,
            max_failures_per_network: 40,
            max_failures_total: 500,
            min_wave_ips: 50,
            max_ips_per_account: 10,
            min_target_ratio: 10.0,
            success_after_failures: 5,
            attack_quiet: Duration(7 * 86_400),
            escalation_factor: 10,
            source_memory: Duration(86_400),
            learn_period: Duration(86_400),
            max_attackers: 100_000,
        }
    }
}
