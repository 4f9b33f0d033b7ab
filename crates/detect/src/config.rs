//! Detector settings: every threshold has a name, a default, and a reason (see docs/DETECTION.md).
//!
//! The structures deserialize from the `[detect]` and `[network]` tables of smtpscope.toml with
//! `deny_unknown_fields`, so a misspelt key is an error that names it. Each structure then
//! checks its own values ([`Validate`]): ranges, finite numbers, no zero where zero means
//! nothing, no duration or size that overflows; an error names the key, the value and the range.

use ipnetwork::IpNetwork;
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
    pub own_networks: Vec<IpNetwork>,
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

/// `incoming-failures`, `incoming-helo`, `looped-back`: mail from the internet (and from our own
/// customers' machines) to our MX (issue 14; see [`crate::incoming`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Incoming {
    /// On or off (all three rules).
    pub enabled: bool,
    /// Sliding window of every count below, and the time before the same entity is reported
    /// again by the same rule. A day, as for `delivery-failures` (Clayton 2004 counted failures
    /// per day).
    pub window: Duration,
    /// `incoming-failures` on a host: at least this many recipients refused as unknown local
    /// users in the window. The smarthost's boundary (Clayton 2004: more than 20 failures a day
    /// separates spam sources from customers); Clayton 2005 found the same heuristics work on
    /// the MX.
    pub min_unknown: u64,
    /// …and at least this share of the host's recipients refused (unknown / (unknown +
    /// delivered)). Real senders stay far below: mailing lists and newsletters lose 2–15% to
    /// dead addresses (TRAFFIC-FACTS §1), a forwarding partner a few percent; a dictionary
    /// attack or a stale list mostly fails. The same boundary rule as the smarthost's
    /// `mailing_lists.max_failure_ratio`, doubled to stay clear of the dirtiest real lists:
    /// our own choice.
    pub min_unknown_share: f64,
    /// `incoming-failures` on a /24 (IPv6 /48): at least this many refused recipients from the
    /// network in the window (the host rule's count: a cluster splitting its attack over its
    /// addresses is one source)…
    pub network_min_unknown: u64,
    /// …from at least this many of its addresses (one host is reported on its own).
    pub network_min_hosts: u64,
    /// `incoming-helo`: this many distinct HELO names from one host in the window. A mail
    /// server has one name (two behind one address happen); the existing `helo.max_distinct`
    /// is for customers' NATs, which the MX does not see.
    pub max_helos: usize,
    /// `incoming-helo`: the other signs (HELO = recipient's domain, HELO following the MAIL
    /// FROM domain, a foreign address literal) need at least this many events (one stray line
    /// is not a habit).
    pub helo_min_events: u64,
    /// A host that delivered at least this many recipients in the window…
    pub good_min_delivered: u64,
    /// …with at least this share of its recipients delivered behaves as a real sender (a big
    /// provider's outbound server, a forwarding partner) and is never reported while it does.
    pub good_min_success: f64,
    /// Networks of known good senders (partners, providers): never reported.
    pub known_good_networks: Vec<IpNetwork>,
    /// Verified host names (as the MTA logs them) of known good senders: a listed name and its
    /// subdomains are never reported (e.g. `google.com` covers `mail-x.google.com`).
    pub known_good_hosts: Vec<String>,
    /// `incoming-filter` on a host: at least this many messages judged spam (or malware) by
    /// the spam filter in the window. Chosen on the training seeds (docs/DETECTION.md): a real
    /// server's few false positives stay far below it.
    pub filter_min_spam: u64,
    /// …and at least this share of the host's judged messages. A big provider's outbound
    /// servers carry a few percent of spam, a mailing list the odd false positive; a spam
    /// source is judged spam almost always. Our own choice, at the `min_unknown_share` of the
    /// failure rule.
    pub filter_min_spam_share: f64,
    /// `incoming-filter` on a /24 (IPv6 /48): at least this many spam verdicts from at least
    /// `network_min_hosts` of its addresses, at `filter_min_spam_share`.
    pub filter_network_min_spam: u64,
    /// Forwarding partners (a university or provider forwarding its users' mail to us):
    /// never reported by `incoming-filter` — they carry their users' spam, and are no source.
    pub forwarders: Vec<IpNetwork>,
    /// Verified host names of forwarding partners (a name and its subdomains).
    pub forwarder_hosts: Vec<String>,
    /// Forwarding by behaviour needs at least this share of ham among the host's judged
    /// messages: it carries real mail too (a spam source's mail is almost all spam).
    pub forward_min_ham_share: f64,
    /// …and either at least this share of its judged messages from SRS-rewritten senders
    /// (`SRS0=`/`SRS1=`: forwarders rewrite to pass SPF)…
    pub forward_min_srs_share: f64,
    /// …or its mail concentrated on at most this many distinct recipients in the window…
    pub forward_max_rcpts: usize,
    /// …each receiving on average at least this many messages (a forwarder forwards every
    /// message of a few users; a spam source writes once to each of many).
    pub forward_min_msgs_per_rcpt: f64,
    /// Most hosts, and most networks, with state (each).
    pub max_hosts: usize,
}

impl Default for Incoming {
    fn default() -> Self {
        Incoming {
            enabled: true,
            window: Duration(86_400),
            min_unknown: 20,
            min_unknown_share: 0.5,
            network_min_unknown: 20,
            network_min_hosts: 2,
            max_helos: 3,
            helo_min_events: 2,
            good_min_delivered: 100,
            good_min_success: 0.9,
            known_good_networks: Vec::new(),
            known_good_hosts: Vec::new(),
            filter_min_spam: 10,
            filter_min_spam_share: 0.5,
            filter_network_min_spam: 10,
            forwarders: Vec::new(),
            forwarder_hosts: Vec::new(),
            forward_min_ham_share: 0.2,
            forward_min_srs_share: 0.3,
            forward_max_rcpts: 16,
            forward_min_msgs_per_rcpt: 3.0,
            max_hosts: 200_000,
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
    /// Event time after which an idle account's or client's detector state is packed into
    /// one byte string until its next event ([`crate::cold`]); `0s`: never (more memory, less
    /// CPU). Detection is the same either way.
    pub pack_idle_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entities: 500_000,
            max_in_flight: maillog::record::DEFAULT_MAX_IN_FLIGHT,
            samples: 12,
            pack_idle_after: Duration(crate::cold::FREEZE_AFTER_SECS),
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
    /// `incoming-failures`, `incoming-helo`, `looped-back`.
    pub incoming: Incoming,
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
    /// Window of the slow rules: guessers that stay under every rate limit (one try every
    /// 5–20 minutes for days, TRAFFIC-FACTS §3) still try many names within a day.
    pub slow_window: Duration,
    /// Alert on an address that failed against at least this many distinct names within
    /// `slow_window` and from which nobody logged in (more than a household's accounts behind
    /// one line; a user's NAT or VPN exit has successful logins).
    pub slow_min_names: u64,
    /// Alert on a /24 (/48) whose addresses (at least two) failed against at least this many
    /// distinct names within `slow_window`.
    pub slow_min_network_names: u64,
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
            slow_window: Duration(86_400),
            slow_min_names: 4,
            slow_min_network_names: 10,
        }
    }
}

/// One configuration value outside what it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The full key, e.g. `detect.hijack.burst_per_minute`.
    pub key: String,
    /// The value, as it would be written in the file.
    pub value: String,
    /// What is allowed, e.g. `an integer in 1..=1000000000`.
    pub allowed: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}: must be {}", self.key, self.value, self.allowed)
    }
}

/// Every invalid value of a configuration (one per line when shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalids(pub Vec<Invalid>);

impl std::fmt::Display for Invalids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalids {}

/// Largest count or threshold accepted. Counters are `u64` and are compared, added and
/// multiplied with these; a billion is far above any real threshold and keeps that arithmetic
/// away from overflow. Our own idea.
pub const MAX_COUNT: u64 = 1_000_000_000;

/// Largest table size accepted (entities, remembered pairs or IPs). Tables hold at least tens
/// of bytes per entry, so 100 million entries is already several GiB; more is a typing error,
/// and a capacity near `usize::MAX` makes allocation abort. Our own idea.
pub const MAX_TABLE: u64 = 100_000_000;

/// Longest detection window: 31 days. The longest default window is 7 days
/// (`reply_window`); state is kept per entity for a whole window, so a longer one is memory
/// that never ends up in a verdict. Our own idea.
pub const MAX_WINDOW: i64 = 31 * 86_400;

/// Longest duration of any kind (retention, containment): 100 years. Times are microseconds in
/// an `i64` (±292,000 years), so event time plus this never overflows, where a duration near
/// `i64::MAX` seconds wrapped and made a containment end at once. Our own idea.
pub const MAX_DURATION: i64 = 100 * 365 * 86_400;

/// Collects the invalid values of a configuration. Each configuration structure checks its own
/// keys in [`Validate::validate`]; [`Checker::section`] prefixes the keys of a nested table.
#[derive(Debug, Default)]
pub struct Checker {
    prefix: String,
    errors: Vec<Invalid>,
}

impl Checker {
    /// A checker whose keys are reported under `prefix` (e.g. `detect.hijack`; "" for none).
    pub fn new(prefix: &str) -> Self {
        Checker {
            prefix: prefix.to_string(),
            errors: Vec::new(),
        }
    }

    /// Check `v` with its keys under `name` (appended to this checker's prefix).
    pub fn section(&mut self, name: &str, v: &dyn Validate) {
        let saved = self.prefix.clone();
        self.prefix = if saved.is_empty() {
            name.to_string()
        } else {
            format!("{saved}.{name}")
        };
        v.validate(self);
        self.prefix = saved;
    }

    /// Record an invalid value of `key` (relative to the prefix).
    pub fn invalid(
        &mut self,
        key: &str,
        value: impl std::fmt::Display,
        allowed: impl Into<String>,
    ) {
        let key = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        };
        self.errors.push(Invalid {
            key,
            value: value.to_string(),
            allowed: allowed.into(),
        });
    }

    /// An integer in `min..=max`.
    pub fn count(&mut self, key: &str, v: u64, min: u64, max: u64) {
        if !(min..=max).contains(&v) {
            self.invalid(key, v, format!("an integer in {min}..={max}"));
        }
    }

    /// A size or table capacity (`usize`) in `min..=max`.
    pub fn size(&mut self, key: &str, v: usize, min: u64, max: u64) {
        self.count(key, u64::try_from(v).unwrap_or(u64::MAX), min, max);
    }

    /// A finite number in `min..=max` (NaN and infinities are refused).
    pub fn number(&mut self, key: &str, v: f64, min: f64, max: f64) {
        if !v.is_finite() || v < min || v > max {
            self.invalid(key, v, format!("a finite number in {min}..={max}"));
        }
    }

    /// A duration of `min..=max` seconds.
    pub fn duration(&mut self, key: &str, d: Duration, min: i64, max: i64) {
        if !(min..=max).contains(&d.0) {
            self.invalid(
                key,
                format!("\"{}\"", String::from(d)),
                format!(
                    "a duration from {} to {}",
                    String::from(Duration(min)),
                    String::from(Duration(max))
                ),
            );
        }
    }

    /// A detection window: 1 second to [`MAX_WINDOW`].
    pub fn window(&mut self, key: &str, d: Duration) {
        self.duration(key, d, 1, MAX_WINDOW);
    }

    /// What was found: `Ok` when every value was valid.
    pub fn finish(self) -> Result<(), Invalids> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Invalids(self.errors))
        }
    }
}

/// A configuration structure that checks its own values.
pub trait Validate {
    /// Record every invalid value in `c` (keys relative to the structure's table).
    fn validate(&self, c: &mut Checker);

    /// Check this structure alone, its keys under `prefix`.
    fn check(&self, prefix: &str) -> Result<(), Invalids>
    where
        Self: Sized,
    {
        let mut c = Checker::new(prefix);
        self.validate(&mut c);
        c.finish()
    }
}

impl Validate for Network {
    fn validate(&self, c: &mut Checker) {
        // 0 turns each inference off.
        c.size(
            "auto_customer_domains",
            self.auto_customer_domains,
            0,
            MAX_COUNT,
        );
        c.count(
            "auto_own_asn_customers",
            self.auto_own_asn_customers,
            0,
            MAX_COUNT,
        );
    }
}

impl Validate for DeliveryFailures {
    fn validate(&self, c: &mut Checker) {
        c.count("threshold", self.threshold, 1, MAX_COUNT);
        c.window("window", self.window);
        // Shares of recipients: 0..=1 (a share above 1 never alerts, NaN never compares).
        c.number("min_failure_share", self.min_failure_share, 0.0, 1.0);
        c.number(
            "typical_failure_share",
            self.typical_failure_share,
            0.0,
            1.0,
        );
        // A count of recipients' worth of prior; 0 means the entity's own outcomes alone.
        c.number("prior_weight", self.prior_weight, 0.0, MAX_COUNT as f64);
        // The table always keeps at least one sender, so 0 would silently mean 1.
        c.size("max_senders", self.max_senders, 1, MAX_TABLE);
    }
}

impl Validate for MailingLists {
    fn validate(&self, c: &mut Checker) {
        c.count("min_recipients", self.min_recipients, 1, MAX_COUNT);
        c.number("max_failure_ratio", self.max_failure_ratio, 0.0, 1.0);
        c.count("max_lists", self.max_lists, 0, MAX_COUNT);
        c.count(
            "multiple_min_recipients",
            self.multiple_min_recipients,
            1,
            MAX_COUNT,
        );
        // Recipients per message; 0 leaves the list size alone to decide.
        c.number(
            "multiple_min_fanout",
            self.multiple_min_fanout,
            0.0,
            MAX_COUNT as f64,
        );
    }
}

impl Validate for RejectionDaemons {
    fn validate(&self, c: &mut Checker) {
        for (i, p) in self.sender_patterns.iter().enumerate() {
            if p.is_empty() {
                // An empty substring matches every sender: no failure would ever count.
                c.invalid(&format!("sender_patterns[{i}]"), "\"\"", "a non-empty text");
            }
        }
        c.window("reply_window", self.reply_window);
        c.size("max_pairs", self.max_pairs, 1, MAX_TABLE);
    }
}

impl Validate for Helo {
    fn validate(&self, c: &mut Checker) {
        // Scores combine signs as 1 - Π(1 - weight): always in 0..=1.
        c.number("min_score", self.min_score, 0.0, 1.0);
        c.count("min_events", self.min_events, 1, MAX_COUNT);
        // One name is no change: "changing HELOs" needs at least two.
        c.size("max_distinct", self.max_distinct, 2, MAX_COUNT);
        c.window("window", self.window);
    }
}

impl Validate for Hijack {
    fn validate(&self, c: &mut Checker) {
        c.number("min_score", self.min_score, 0.0, 1.0);
        c.window("window", self.window);
        c.count("min_new_networks", self.min_new_networks, 1, MAX_COUNT);
        c.count("min_new_asns", self.min_new_asns, 1, MAX_COUNT);
        c.count("min_new_countries", self.min_new_countries, 0, MAX_COUNT);
        // 0 would make every message a burst, with no IP to name.
        c.count("burst_per_minute", self.burst_per_minute, 1, MAX_COUNT);
        // 0s would make a single busy minute a burst; the rule is about sustained sending.
        c.duration("burst_sustain", self.burst_sustain, 1, MAX_WINDOW);
        for (i, cc) in self.home_countries.iter().enumerate() {
            if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) {
                c.invalid(
                    &format!("home_countries[{i}]"),
                    format!("{cc:?}"),
                    "a two-letter ISO 3166 country code",
                );
            }
        }
        // A share of 0 would make every country a home country.
        c.number(
            "home_country_share",
            self.home_country_share,
            f64::MIN_POSITIVE,
            1.0,
        );
        c.size("max_recent_ips", self.max_recent_ips, 1, MAX_TABLE);
        c.count(
            "population_min_accounts",
            self.population_min_accounts,
            0,
            MAX_COUNT,
        );
    }
}

impl Validate for Campaign {
    fn validate(&self, c: &mut Checker) {
        c.count("min_shared_ips", self.min_shared_ips, 1, MAX_COUNT);
        c.window("domain_window", self.domain_window);
        c.window("ip_memory", self.ip_memory);
        c.size("max_ips", self.max_ips, 1, MAX_TABLE);
    }
}

impl Validate for Bruteforce {
    fn validate(&self, c: &mut Checker) {
        c.window("window", self.window);
        c.count(
            "max_failures_per_ip",
            self.max_failures_per_ip,
            1,
            MAX_COUNT,
        );
        c.count(
            "max_failures_per_network",
            self.max_failures_per_network,
            1,
            MAX_COUNT,
        );
        c.count("max_failures_total", self.max_failures_total, 1, MAX_COUNT);
        c.count("min_wave_ips", self.min_wave_ips, 1, MAX_COUNT);
        c.count(
            "max_ips_per_account",
            self.max_ips_per_account,
            1,
            MAX_COUNT,
        );
        c.number(
            "min_target_ratio",
            self.min_target_ratio,
            0.0,
            MAX_COUNT as f64,
        );
        c.count(
            "success_after_failures",
            self.success_after_failures,
            1,
            MAX_COUNT,
        );
        c.duration("attack_quiet", self.attack_quiet, 1, MAX_WINDOW);
        // Below 2 means "never alert again within an attack", as documented.
        c.count("escalation_factor", self.escalation_factor, 0, MAX_COUNT);
        c.window("source_memory", self.source_memory);
        c.duration("learn_period", self.learn_period, 0, MAX_WINDOW);
        c.size("max_attackers", self.max_attackers, 1, MAX_TABLE);
        c.window("slow_window", self.slow_window);
        // Each address and network keeps this many recent names: bounded memory.
        c.count("slow_min_names", self.slow_min_names, 1, MAX_SLOW_NAMES);
        c.count(
            "slow_min_network_names",
            self.slow_min_network_names,
            1,
            MAX_SLOW_NAMES,
        );
    }
}

/// Most distinct names an address or network remembers for the slow rules (the largest
/// `slow_min_names` / `slow_min_network_names`): 256 × 16 bytes per attacker at most.
pub const MAX_SLOW_NAMES: u64 = 256;

impl Validate for Incoming {
    fn validate(&self, c: &mut Checker) {
        c.window("window", self.window);
        c.count("min_unknown", self.min_unknown, 1, MAX_COUNT);
        // A share of recipients; 0 would report every host that ever named an unknown user.
        c.number(
            "min_unknown_share",
            self.min_unknown_share,
            f64::MIN_POSITIVE,
            1.0,
        );
        c.count(
            "network_min_unknown",
            self.network_min_unknown,
            1,
            MAX_COUNT,
        );
        // One host is the host rule's business.
        c.count(
            "network_min_hosts",
            self.network_min_hosts,
            2,
            MAX_NET_HOSTS as u64,
        );
        // One name is no change; more than the names remembered could never be reached.
        c.size(
            "max_helos",
            self.max_helos,
            2,
            crate::incoming::MAX_HELOS as u64,
        );
        c.count("helo_min_events", self.helo_min_events, 1, MAX_COUNT);
        c.count("good_min_delivered", self.good_min_delivered, 1, MAX_COUNT);
        c.number("good_min_success", self.good_min_success, 0.0, 1.0);
        for (i, h) in self.known_good_hosts.iter().enumerate() {
            if h.trim_start_matches('.').is_empty() {
                // An empty suffix would match every named host.
                c.invalid(
                    &format!("known_good_hosts[{i}]"),
                    format!("{h:?}"),
                    "a host or domain name",
                );
            }
        }
        c.count("filter_min_spam", self.filter_min_spam, 1, MAX_COUNT);
        // A share; 0 would report every host the filter ever caught once.
        c.number(
            "filter_min_spam_share",
            self.filter_min_spam_share,
            f64::MIN_POSITIVE,
            1.0,
        );
        c.count(
            "filter_network_min_spam",
            self.filter_network_min_spam,
            1,
            MAX_COUNT,
        );
        for (i, h) in self.forwarder_hosts.iter().enumerate() {
            if h.trim_start_matches('.').is_empty() {
                // An empty suffix would make every named host a forwarder.
                c.invalid(
                    &format!("forwarder_hosts[{i}]"),
                    format!("{h:?}"),
                    "a host or domain name",
                );
            }
        }
        // Shares of the judged messages.
        c.number(
            "forward_min_ham_share",
            self.forward_min_ham_share,
            0.0,
            1.0,
        );
        c.number(
            "forward_min_srs_share",
            self.forward_min_srs_share,
            0.0,
            1.0,
        );
        // More than the recipients remembered could never be told apart.
        c.size(
            "forward_max_rcpts",
            self.forward_max_rcpts,
            1,
            crate::incoming_filter::MAX_FWD_RCPTS as u64,
        );
        c.number(
            "forward_min_msgs_per_rcpt",
            self.forward_min_msgs_per_rcpt,
            1.0,
            MAX_COUNT as f64,
        );
        c.size("max_hosts", self.max_hosts, 1, MAX_TABLE);
    }
}

use crate::incoming::MAX_NET_HOSTS;

impl Validate for Limits {
    fn validate(&self, c: &mut Checker) {
        c.size("max_entities", self.max_entities, 1, MAX_TABLE);
        c.size("max_in_flight", self.max_in_flight, 1, MAX_TABLE);
        c.size("samples", self.samples, 0, 10_000);
        c.duration("pack_idle_after", self.pack_idle_after, 0, MAX_WINDOW);
    }
}

impl Validate for Config {
    fn validate(&self, c: &mut Checker) {
        c.section("network", &self.network);
        c.section("delivery_failures", &self.delivery_failures);
        c.section("mailing_lists", &self.mailing_lists);
        c.section("rejection_daemons", &self.rejection_daemons);
        c.section("helo", &self.helo);
        c.section("hijack", &self.hijack);
        c.section("campaign", &self.campaign);
        c.section("bruteforce", &self.bruteforce);
        c.section("incoming", &self.incoming);
        c.section("limits", &self.limits);
    }
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().check(""), Ok(()));
    }

    #[test]
    fn errors_name_key_value_and_range() {
        let mut cfg = Config::default();
        cfg.hijack.burst_per_minute = 0;
        cfg.hijack.min_score = f64::NAN;
        cfg.helo.min_score = -0.5;
        cfg.limits.max_entities = 0;
        cfg.campaign.ip_memory = Duration(i64::MAX);
        cfg.delivery_failures.min_failure_share = 1.5;
        cfg.delivery_failures.typical_failure_share = f64::NAN;
        cfg.delivery_failures.prior_weight = -1.0;
        cfg.delivery_failures.max_senders = 0;
        cfg.mailing_lists.multiple_min_fanout = f64::INFINITY;
        cfg.limits.pack_idle_after = Duration(MAX_WINDOW + 1);
        let e = cfg.check("detect").unwrap_err();
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 11, "{text}");
        for want in [
            "detect.delivery_failures.min_failure_share = 1.5: must be a finite number in 0..=1",
            "detect.delivery_failures.typical_failure_share = NaN: must be a finite number in 0..=1",
            "detect.delivery_failures.prior_weight = -1: must be a finite number in 0..=1000000000",
            "detect.delivery_failures.max_senders = 0: must be an integer in 1..=100000000",
            "detect.mailing_lists.multiple_min_fanout = inf: must be a finite number in 0..=1000000000",
        ] {
            assert!(lines.contains(&want), "{want} not in {text}");
        }
        assert!(lines
            .contains(&"detect.hijack.burst_per_minute = 0: must be an integer in 1..=1000000000"));
        assert!(lines.contains(&"detect.hijack.min_score = NaN: must be a finite number in 0..=1"));
        assert!(lines.contains(&"detect.helo.min_score = -0.5: must be a finite number in 0..=1"));
        assert!(
            lines.contains(&"detect.limits.max_entities = 0: must be an integer in 1..=100000000")
        );
        assert!(
            text.contains("detect.campaign.ip_memory = \"9223372036854775807s\": must be a duration from 1s to 31d"),
            "{text}"
        );
        assert!(
            text.contains(
                "detect.limits.pack_idle_after = \"2678401s\": must be a duration from 0s to 31d"
            ),
            "{text}"
        );
        cfg = Config::default();
        cfg.limits.pack_idle_after = Duration(0);
        assert!(cfg.check("detect").is_ok(), "0s: never pack");
    }
}
