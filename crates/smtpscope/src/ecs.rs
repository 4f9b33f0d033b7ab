//! Alerts and incidents as Elastic Common Schema documents (`analyze --format ecs`), one JSON
//! object per line, so Elastic, OpenSearch and Wazuh ingest them without an ingest pipeline.
//!
//! Every field is an ECS field of [`ECS_VERSION`] with its ECS type (the test
//! `tests/ecs_output.rs` checks each emitted field against the definitions copied from ECS's
//! `generated/ecs/ecs_flat.yml` into `tests/data/ecs/`). What ECS has no field for (the
//! entity's kind and id, an incident's state) goes into `labels`, ECS's own place for
//! keyword key/value pairs.
//!
//! Mapping:
//! - `@timestamp`: the alert's event time (an incident's last alert);
//! - `event.kind: alert`, `event.category` by detector ([`categories`]), `event.type: [info]`
//!   (the one type ECS allows with each of those categories), `event.module: smtpscope`,
//!   `event.dataset: smtpscope.alert | smtpscope.incident`, `event.risk_score_norm` = score × 100;
//!   for incidents `event.id`, `event.start`, `event.end`;
//! - `rule.name` = the detector, `rule.description` its one-line description, `rule.ruleset`;
//! - `message` = the alert's summary;
//! - the entity: an account is `user.name` (and `user.domain`), a client IP is `source.ip`, a
//!   network is `source.address` (CIDR), a sender address is `email.from.address`;
//!   `source.geo.country_iso_code`, `source.as.number`, `source.as.organization.name` come from
//!   the geo database for a client or network (its first address);
//! - from the evidence: every client IP it names → `related.ip` (and `source.ip` when it names
//!   exactly one and the entity has none), envelope senders → `email.from.address`, recipients →
//!   `email.to.address`, account names → `related.user`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use detect::incident::Incident;
use detect::{Alert, Detector, Entity, EntityKind};
use serde::Serialize;

/// The ECS release the documents follow (the field definitions in `tests/data/ecs/` are from it).
pub const ECS_VERSION: &str = "8.17.0";

/// Most values listed in one array field (`related.ip`, `email.to.address`, ...): evidence
/// samples are already bounded, an incident merges up to 200 alerts; 50 keeps a document
/// small enough to read in Kibana while naming every address of a usual sample. Our own idea.
pub const MAX_LISTED: usize = 50;

/// `event.category` values (ECS allowed values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Logins: guessing, hijacked accounts.
    Authentication,
    /// Mail sent.
    Email,
    /// Traffic seen in flow samples.
    Network,
}

/// The categories of a detector's alerts.
pub fn categories(d: Detector) -> Vec<Category> {
    match d {
        Detector::AuthBruteforce => vec![Category::Authentication],
        // A hijacked account: logins with a stolen password, then spam.
        Detector::AuthHijack | Detector::Campaign => {
            vec![Category::Authentication, Category::Email]
        }
        Detector::DeliveryFailures
        | Detector::MultipleLists
        | Detector::HeloAnomaly
        | Detector::IncomingFailures
        | Detector::IncomingHelo
        | Detector::IncomingFilter
        | Detector::LoopedBack => vec![Category::Email],
        Detector::SflowActivity => vec![Category::Network],
    }
}

/// One line describing what a detector finds (`rule.description`).
pub fn description(d: Detector) -> &'static str {
    match d {
        Detector::DeliveryFailures => {
            "Too many failed recipients in the window: a sender of spam or viruses (extrusion detection)"
        }
        Detector::MultipleLists => "One customer running more than one list-like sender",
        Detector::HeloAnomaly => "Bad, forged or changing HELO names",
        Detector::AuthHijack => {
            "An account used from far more networks and countries than its own history and the population: a stolen password"
        }
        Detector::AuthBruteforce => {
            "Many failed logins from one address or network, or against one account: password guessing"
        }
        Detector::Campaign => "Accounts hijacked together (shared source addresses, one domain hit at once)",
        Detector::SflowActivity => "A port-25 sender whose activity pattern in sFlow looks like a spam bot's",
        Detector::IncomingFailures => {
            "An internet host or network whose mail to our MX names mostly unknown local users: a dictionary attack or a stale list"
        }
        Detector::IncomingHelo => "An internet host whose HELO to our MX is forged or changing",
        Detector::IncomingFilter => {
            "An internet host or network whose mail to our users the spam filter judged spam (forwarders discounted)"
        }
        Detector::LoopedBack => {
            "One of our own customers' machines sending spam-like mail straight to our MX"
        }
    }
}

/// One ECS document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Doc {
    /// Event time.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// `ecs.version`.
    pub ecs: Ecs,
    /// `event.*`.
    pub event: Event,
    /// `rule.*`.
    pub rule: Rule,
    /// The alert's summary.
    pub message: String,
    /// `source.*`: the client or network the alert is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// `user.*`: the account the alert is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// `email.*`: senders and recipients of the sample messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// `related.*`: every address and account named.
    #[serde(skip_serializing_if = "Related::is_empty")]
    pub related: Related,
    /// `labels.*`: what ECS has no field for.
    pub labels: Labels,
}

/// `ecs.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ecs {
    /// `ecs.version`.
    pub version: &'static str,
}

/// `event.kind` values we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A detection: every alert and incident.
    Alert,
}

/// `event.type` values we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// The one type ECS expects with each of authentication, email and network.
    Info,
}

/// `event.dataset` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Dataset {
    /// One alert.
    #[serde(rename = "smtpscope.alert")]
    Alert,
    /// One incident (alerts merged per entity).
    #[serde(rename = "smtpscope.incident")]
    Incident,
}

/// `event.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Always `alert`.
    pub kind: Kind,
    /// By detector.
    pub category: Vec<Category>,
    /// `info`.
    #[serde(rename = "type")]
    pub kind_type: Vec<EventType>,
    /// `smtpscope`.
    pub module: &'static str,
    /// Alert or incident.
    pub dataset: Dataset,
    /// Score × 100.
    pub risk_score_norm: f64,
    /// Incident number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Incident's first alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Incident's last alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `rule.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// The detector.
    pub name: Detector,
    /// What it finds.
    pub description: &'static str,
    /// `smtpscope`.
    pub ruleset: &'static str,
}

/// `source.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// One address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The address, or the network in CIDR form.
    pub address: String,
    /// Country.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo: Option<SourceGeo>,
    /// Autonomous system.
    #[serde(rename = "as", skip_serializing_if = "Option::is_none")]
    pub asys: Option<SourceAs>,
}

/// `source.geo.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceGeo {
    /// ISO 3166-1 alpha-2.
    pub country_iso_code: String,
}

/// `source.as.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceAs {
    /// AS number.
    pub number: u32,
    /// AS organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
}

/// `source.as.organization.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Organization {
    /// Name.
    pub name: String,
}

/// `user.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// The part after `@`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// `email.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Email {
    /// Envelope senders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Addresses>,
    /// Recipients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Addresses>,
}

/// `email.from.*`, `email.to.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Addresses {
    /// Addresses.
    pub address: Vec<String>,
}

/// `related.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Related {
    /// Every IP named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip: Vec<IpAddr>,
    /// Every account named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user: Vec<String>,
}

impl Related {
    fn is_empty(&self) -> bool {
        self.ip.is_empty() && self.user.is_empty()
    }
}

/// `labels.*` (keyword values).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Labels {
    /// `account`, `client`, `sender`, `campaign`, `network`.
    pub entity_kind: EntityKind,
    /// The entity's id, as in the JSON Lines output.
    pub entity_id: String,
    /// An incident's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_state: Option<&'static str>,
}

/// What the evidence names, gathered from its JSON form (so it works for any evidence shape).
#[derive(Default)]
struct Named {
    ips: BTreeSet<IpAddr>,
    senders: BTreeSet<String>,
    recipients: BTreeSet<String>,
    users: BTreeSet<String>,
}

/// Evidence keys whose string values (or arrays of strings) are client addresses.
const IP_KEYS: [&str; 6] = [
    "client",
    "ip",
    "success_ip",
    "sample_ips",
    "sample_failure_ips",
    "attacking_addresses",
];
/// Keys of envelope senders.
const SENDER_KEYS: [&str; 2] = ["sender", "mail_from"];
/// Keys of recipients.
const RECIPIENT_KEYS: [&str; 2] = ["addr", "rcpt_to"];
/// Keys of account names.
const USER_KEYS: [&str; 4] = ["auth_user", "account", "accounts", "sample_accounts"];

impl Named {
    fn gather(&mut self, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let k = k.as_str();
                    if IP_KEYS.contains(&k) {
                        for s in strings(v) {
                            if let Ok(ip) = s.parse() {
                                self.ips.insert(ip);
                            }
                        }
                    } else if SENDER_KEYS.contains(&k) {
                        self.senders
                            .extend(strings(v).filter(|s| s.contains('@')).map(str::to_owned));
                    } else if RECIPIENT_KEYS.contains(&k) {
                        self.recipients
                            .extend(strings(v).filter(|s| s.contains('@')).map(str::to_owned));
                    } else if USER_KEYS.contains(&k) {
                        self.users.extend(strings(v).map(str::to_owned));
                    }
                    self.gather(v);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.gather(x)),
            _ => {}
        }
    }
}

/// A string, or the strings of an array.
fn strings(v: &serde_json::Value) -> impl Iterator<Item = &str> {
    let one = v.as_str();
    let many = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str());
    one.into_iter().chain(many)
}

fn capped<T: Clone>(s: &BTreeSet<T>) -> Vec<T> {
    s.iter().take(MAX_LISTED).cloned().collect()
}

fn source(ip: Option<IpAddr>, address: String, geo: &geo::GeoDb) -> Source {
    let lookup = ip.or_else(|| {
        address
            .parse::<ipnetwork::IpNetwork>()
            .ok()
            .map(|n| n.network())
    });
    let info = lookup.map(|ip| geo.lookup(ip)).unwrap_or_default();
    Source {
        ip,
        address,
        geo: info.country.map(|c| SourceGeo {
            country_iso_code: c.as_str().to_owned(),
        }),
        asys: info.asn.map(|number| SourceAs {
            number,
            organization: info
                .as_org
                .as_deref()
                .map(|n| Organization { name: n.into() }),
        }),
    }
}

/// The parts of a document that follow from the entity and the evidence.
fn subject(
    entity: &Entity,
    evidence: &[serde_json::Value],
    geo: &geo::GeoDb,
) -> (Option<Source>, Option<User>, Option<Email>, Related) {
    let mut named = Named::default();
    for e in evidence {
        named.gather(e);
    }
    let mut src = None;
    let mut user = None;
    match entity.kind {
        EntityKind::Client => {
            let ip = entity.id.parse().ok();
            if let Some(ip) = ip {
                named.ips.insert(ip);
            }
            src = Some(source(ip, entity.id.clone(), geo));
        }
        EntityKind::Network => src = Some(source(None, entity.id.clone(), geo)),
        EntityKind::Account => {
            named.users.insert(entity.id.clone());
            user = Some(User {
                name: entity.id.clone(),
                domain: entity
                    .id
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_owned())
                    .filter(|d| !d.is_empty()),
            });
        }
        EntityKind::Sender => {
            if entity.id.contains('@') && !entity.id.starts_with('@') {
                named.senders.insert(entity.id.clone());
            }
        }
        EntityKind::Campaign => {}
    }
    if src.is_none() && named.ips.len() == 1 {
        let ip = *named.ips.iter().next().expect("one");
        src = Some(source(Some(ip), ip.to_string(), geo));
    }
    let list = |s: &BTreeSet<String>| (!s.is_empty()).then(|| Addresses { address: capped(s) });
    let (from, to) = (list(&named.senders), list(&named.recipients));
    let email = (from.is_some() || to.is_some()).then_some(Email { from, to });
    let related = Related {
        ip: capped(&named.ips),
        user: capped(&named.users),
    };
    (src, user, email, related)
}

fn evidence_json(a: &Alert) -> serde_json::Value {
    serde_json::to_value(&a.evidence).unwrap_or_default()
}

/// Score 0..1 as ECS's 0..100, rounded like the JSON output's scores.
fn risk(score: f64) -> f64 {
    detect::alert::round3(score.clamp(0.0, 1.0)) * 100.0
}

/// An alert as an ECS document.
pub fn alert(a: &Alert, geo: &geo::GeoDb) -> Doc {
    let (source, user, email, related) = subject(&a.entity, &[evidence_json(a)], geo);
    Doc {
        timestamp: a.ts.rfc3339(),
        ecs: Ecs {
            version: ECS_VERSION,
        },
        event: Event {
            kind: Kind::Alert,
            category: categories(a.detector),
            kind_type: vec![EventType::Info],
            module: "smtpscope",
            dataset: Dataset::Alert,
            risk_score_norm: risk(a.score),
            id: None,
            start: None,
            end: None,
        },
        rule: rule(a.detector),
        message: a.summary.clone(),
        source,
        user,
        email,
        related,
        labels: Labels {
            entity_kind: a.entity.kind,
            entity_id: a.entity.id.clone(),
            incident_state: None,
        },
    }
}

fn rule(d: Detector) -> Rule {
    Rule {
        name: d,
        description: description(d),
        ruleset: "smtpscope",
    }
}

/// An incident as an ECS document: its own detector, time span and state; what its alerts name.
pub fn incident(i: &Incident, geo: &geo::GeoDb) -> Doc {
    let ev: Vec<serde_json::Value> = i.evidence.iter().map(evidence_json).collect();
    let (source, user, email, related) = subject(&i.entity, &ev, geo);
    let mut category: Vec<Category> = i.detectors.iter().flat_map(|d| categories(*d)).collect();
    category.sort();
    category.dedup();
    Doc {
        timestamp: i.last.rfc3339(),
        ecs: Ecs {
            version: ECS_VERSION,
        },
        event: Event {
            kind: Kind::Alert,
            category,
            kind_type: vec![EventType::Info],
            module: "smtpscope",
            dataset: Dataset::Incident,
            risk_score_norm: risk(i.score),
            id: Some(i.id.to_string()),
            start: Some(i.first.rfc3339()),
            end: Some(i.last.rfc3339()),
        },
        rule: rule(i.detector),
        message: i.summary.clone(),
        source,
        user,
        email,
        related,
        labels: Labels {
            entity_kind: i.entity.kind,
            entity_id: i.entity.id.clone(),
            incident_state: Some(i.state.as_str()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maillog::Ts;

    fn a(kind: EntityKind, id: &str, detector: Detector, ev: serde_json::Value) -> Alert {
        Alert {
            ts: Ts::from_secs(1_795_000_000),
            detector,
            entity: Entity::new(kind, id),
            score: 0.9,
            summary: "s".into(),
            evidence: ev,
        }
    }

    #[test]
    fn client_alert_has_source_and_geo() {
        let g = geo::GeoDb::builtin();
        let d = alert(
            &a(
                EntityKind::Client,
                "8.8.8.8",
                Detector::DeliveryFailures,
                serde_json::json!({"sample_messages": [{"client": "8.8.8.8", "sender": "x@example.org",
                "recipients": [{"addr": "y@example.net"}]}]}),
            ),
            g,
        );
        let s = d.source.expect("source");
        assert_eq!(s.ip, Some("8.8.8.8".parse().unwrap()));
        assert_eq!(s.asys.as_ref().map(|a| a.number), Some(15169));
        assert_eq!(d.event.category, vec![Category::Email]);
        let e = d.email.expect("email");
        assert_eq!(e.from.unwrap().address, vec!["x@example.org"]);
        assert_eq!(e.to.unwrap().address, vec!["y@example.net"]);
    }

    #[test]
    fn account_alert_names_user_and_one_source() {
        let g = geo::GeoDb::empty();
        let d = alert(
            &a(
                EntityKind::Account,
                "taro@example.jp",
                Detector::AuthBruteforce,
                serde_json::json!({"success_ip": "192.0.2.7", "sample_failure_ips": ["192.0.2.7"]}),
            ),
            &g,
        );
        assert_eq!(d.user.as_ref().unwrap().name, "taro@example.jp");
        assert_eq!(
            d.user.as_ref().unwrap().domain.as_deref(),
            Some("example.jp")
        );
        assert_eq!(d.source.unwrap().ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(d.event.category, vec![Category::Authentication]);
        // Two addresses: no single source.
        let d = alert(
            &a(
                EntityKind::Account,
                "taro@example.jp",
                Detector::AuthHijack,
                serde_json::json!({"recent_ips": [{"ip": "192.0.2.7"}, {"ip": "198.51.100.1"}]}),
            ),
            &g,
        );
        assert!(d.source.is_none());
        assert_eq!(d.related.ip.len(), 2);
    }

    #[test]
    fn network_is_a_source_address() {
        let g = geo::GeoDb::empty();
        let d = alert(
            &a(
                EntityKind::Network,
                "192.0.2.0/24",
                Detector::AuthBruteforce,
                serde_json::json!({"sample_ips": ["192.0.2.1", "192.0.2.9"]}),
            ),
            &g,
        );
        let s = d.source.unwrap();
        assert_eq!(s.address, "192.0.2.0/24");
        assert_eq!(s.ip, None);
        assert_eq!(d.related.ip.len(), 2);
    }
}
