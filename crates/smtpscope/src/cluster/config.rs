//! `[cluster]`: running `serve` as one node of a cluster on NATS JetStream.
//!
//! Empty `servers` (the default) is the single-node service: nothing here is used and nothing
//! connects anywhere. Every value is checked when the file is loaded ([`ClusterConfig`]'s
//! [`Validate`]), so a node never starts with a partition count its peers do not share by
//! accident of a typo.

use std::path::PathBuf;

use detect::config::{Checker, Validate};
use serde::{Deserialize, Serialize};

/// What this node does in the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads logs, syslog and policy requests on an MTA host, publishes their events, answers
    /// policy requests from the cluster's containment list. Runs no detection.
    Edge,
    /// Runs the detection engine for its share of the partitions; publishes alerts.
    Worker,
    /// Both on one node.
    #[default]
    Both,
}

impl Role {
    /// Publishes events and answers policy requests.
    pub fn is_edge(self) -> bool {
        matches!(self, Role::Edge | Role::Both)
    }

    /// Runs detection on partitions.
    pub fn is_worker(self) -> bool {
        matches!(self, Role::Worker | Role::Both)
    }
}

/// Default of `partitions`: 64. Partitions are the unit a worker owns, so there must be several
/// per worker for a fair share (64 spreads over 1 to 16 workers within about 20%), and each is a
/// durable consumer on the server (a few KiB of state each). Our own choice.
pub const DEFAULT_PARTITIONS: u32 = 64;
/// Most partitions: each is a consumer (and a subject) on the servers and a snapshot in the
/// state bucket; 1024 already allows a thousand workers.
pub const MAX_PARTITIONS: u32 = 1024;
/// Default of `edge_timeout`: an edge that published nothing (not even its once-a-second
/// watermark) for 10 s is taken to be down, and the workers stop waiting for its event time.
pub const DEFAULT_EDGE_TIMEOUT_SECS: i64 = 10;
/// Default of `snapshot_interval`: a worker stores each partition's detection state this often
/// and only then acknowledges the events it covers (what a restarted or new owner resumes from).
/// At most 60 s: the server redelivers what a dead worker held after 30 s + 2 intervals.
pub const DEFAULT_SNAPSHOT_SECS: i64 = 5;
/// Default of `campaign_hold`: the sink holds each `auth-hijack` alert this long before it
/// correlates campaigns over it, so that alerts of several partitions are taken in event-time
/// order although they reach the sink in the order their workers got to them. A lost worker's
/// partitions are processed again by another after 30 s + 2 `snapshot_interval`s (40 s at the
/// default) plus the time to restore them: 120 s covers that with room (our own choice; the
/// price is that campaign alerts come that much later — the accounts' own alerts do not wait).
pub const DEFAULT_CAMPAIGN_HOLD_SECS: i64 = 120;

/// `[cluster]` of smtpscope.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`); empty: no cluster.
    pub servers: Vec<String>,
    /// edge, worker or both.
    pub role: Role,
    /// This node's name, unique in the cluster (event ids and consumer names carry it); default:
    /// the host name.
    pub name: Option<String>,
    /// Partitions of the event stream; the same on every node, for the life of the streams.
    /// (The integers are read as u64 so that any value is refused by our checks, by name.)
    pub partitions: u64,
    /// This worker's index among `workers` (it owns partitions `p` with `p % workers == index`).
    pub worker_index: u64,
    /// Workers sharing the partitions.
    pub workers: u64,
    /// Edges whose event time the workers wait for before processing an event (so events of
    /// several MTAs are processed in event-time order, the same on every run); empty: the edges
    /// seen so far.
    pub edges: Vec<String>,
    /// An edge silent this long is no longer waited for.
    pub edge_timeout: detect::config::Duration,
    /// How often a worker stores its partitions' state (and then acknowledges their events).
    pub snapshot_interval: detect::config::Duration,
    /// This node stores the cluster's alerts (consumes the alert stream into its SQLite store,
    /// decides incidents and containment, publishes the containment list).
    pub sink: bool,
    /// How long the sink holds an `auth-hijack` alert before correlating campaigns over it
    /// (the order of alerts from several partitions is fixed within this lag).
    pub campaign_hold: detect::config::Duration,
    /// Prefix of subjects, streams and buckets (two clusters can share servers).
    pub prefix: String,
    /// NATS credentials file (JWT and NKey seed, `.creds`).
    pub credentials: Option<PathBuf>,
    /// CA certificate (PEM) to verify the servers with.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub tls_cert: Option<PathBuf>,
    /// Key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// Stream replicas (1 on one server; 3 on a three-server cluster survives one loss).
    pub replicas: u64,
    /// Workers share the partitions among those alive (`workers` and `worker_index` are then
    /// not used): each says it is alive in a bucket, each partition goes to one of them by
    /// rendezvous hashing ([`owner`]) and is run under a lease, so a worker added or lost moves
    /// partitions, with their stored state, to the others.
    pub rebalance: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            servers: Vec::new(),
            role: Role::Both,
            name: None,
            partitions: u64::from(DEFAULT_PARTITIONS),
            worker_index: 0,
            workers: 1,
            edges: Vec::new(),
            edge_timeout: detect::config::Duration(DEFAULT_EDGE_TIMEOUT_SECS),
            snapshot_interval: detect::config::Duration(DEFAULT_SNAPSHOT_SECS),
            sink: false,
            campaign_hold: detect::config::Duration(DEFAULT_CAMPAIGN_HOLD_SECS),
            prefix: "smtpscope".into(),
            credentials: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            replicas: 1,
            rebalance: false,
        }
    }
}

impl ClusterConfig {
    /// A cluster is configured.
    pub fn enabled(&self) -> bool {
        !self.servers.is_empty()
    }

    /// Partitions (validated: 1..=[`MAX_PARTITIONS`]).
    pub fn partition_count(&self) -> u32 {
        u32::try_from(self.partitions)
            .unwrap_or(MAX_PARTITIONS)
            .clamp(1, MAX_PARTITIONS)
    }

    /// Does this worker own partition `p`?
    pub fn owns(&self, p: u32) -> bool {
        self.workers > 0 && u64::from(p) % self.workers == self.worker_index
    }

    /// The partitions this worker owns.
    pub fn owned(&self) -> Vec<u32> {
        (0..self.partition_count())
            .filter(|p| self.owns(*p))
            .collect()
    }
}

/// The worker that owns partition `p` among the live workers `members` (names): the one with
/// the highest hash of `"<name>/<p>"` (FNV-1a-32, then mixed; rendezvous hashing, Thaler and Ravishankar, "Using
/// name-based mappings to increase hit rates", IEEE/ACM ToN 1998). Every worker computes the
/// same answer from the same members, and a worker added or lost moves only the partitions it
/// gains or had. `None` without members.
pub fn owner(p: u32, members: &[String]) -> Option<&str> {
    members
        .iter()
        .map(|m| {
            (
                mix(super::route::fnv1a32(format!("{m}/{p}").as_bytes())),
                m.as_str(),
            )
        })
        .max()
        .map(|(_, m)| m)
}

/// MurmurHash3's 32-bit finalizer: FNV-1a alone orders names that differ in one character the
/// same way for every partition (its last multiplications barely reach the high bits), which
/// gave one worker all the partitions.
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// A name usable as a NATS subject token, consumer and bucket name part.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A NATS server URL we can dial.
fn is_server_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    matches!(scheme, "nats" | "tls")
        && !rest.is_empty()
        && !rest.contains(['/', ' ', '\t', '?', '#'])
        && rest.len() <= 255
}

impl Validate for ClusterConfig {
    fn validate(&self, c: &mut Checker) {
        for s in &self.servers {
            if !is_server_url(s) {
                c.invalid(
                    "servers",
                    format!("{s:?}"),
                    "NATS URLs such as \"nats://10.0.0.1:4222\" or \"tls://nats.example.net:4222\"",
                );
            }
        }
        c.count("partitions", self.partitions, 1, u64::from(MAX_PARTITIONS));
        c.count("workers", self.workers, 1, u64::from(MAX_PARTITIONS));
        if self.worker_index >= self.workers.max(1) {
            c.invalid(
                "worker_index",
                self.worker_index,
                "an index below workers (0 for the first worker)",
            );
        }
        if self.workers > self.partitions.max(1) {
            c.invalid(
                "workers",
                self.workers,
                "at most partitions workers (a worker without a partition does nothing)",
            );
        }
        if let Some(n) = &self.name {
            if !is_token(n) {
                c.invalid(
                    "name",
                    format!("{n:?}"),
                    "letters, digits, - and _ (1 to 64)",
                );
            }
        }
        for e in &self.edges {
            if !is_token(e) {
                c.invalid(
                    "edges",
                    format!("{e:?}"),
                    "node names: letters, digits, - and _",
                );
            }
        }
        if !is_token(&self.prefix) {
            c.invalid(
                "prefix",
                format!("{:?}", self.prefix),
                "letters, digits, - and _",
            );
        }
        c.duration("edge_timeout", self.edge_timeout, 1, 3600);
        // The server redelivers what is not acknowledged within 30 s + 2 intervals: a longer
        // interval would keep a dead worker's partitions waiting as long.
        c.duration("snapshot_interval", self.snapshot_interval, 1, 60);
        c.duration("campaign_hold", self.campaign_hold, 1, 3600);
        c.count("replicas", self.replicas, 1, 5);
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            c.invalid(
                "tls_cert",
                format!("{:?}", self.tls_cert),
                "tls_cert and tls_key together (mutual TLS) or neither",
            );
        }
        // Read now, so that a missing, unreadable or wrong file stops the node at start with
        // the key's name, not at its first connection with a TLS error.
        for (key, p, pem) in [
            ("credentials", &self.credentials, false),
            ("tls_ca", &self.tls_ca, true),
            ("tls_cert", &self.tls_cert, true),
            ("tls_key", &self.tls_key, true),
        ] {
            let Some(p) = p else { continue };
            match std::fs::read(p) {
                Err(e) => c.invalid(key, p.display(), format!("a readable file ({e})")),
                Ok(b) if pem && !b.windows(11).any(|w| w == b"-----BEGIN ") => {
                    c.invalid(key, p.display(), "a PEM file (\"-----BEGIN ...\")")
                }
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(c: &ClusterConfig) -> Result<(), String> {
        let mut k = Checker::new("cluster");
        c.validate(&mut k);
        k.finish().map_err(|e| e.to_string())
    }

    #[test]
    fn default_is_valid_and_off() {
        let c = ClusterConfig::default();
        assert!(!c.enabled());
        check(&c).unwrap();
        assert_eq!(c.owned().len(), DEFAULT_PARTITIONS as usize);
    }

    #[test]
    fn bad_values_are_named() {
        let c = ClusterConfig {
            servers: vec!["http://x".into(), "nats://127.0.0.1:4222".into()],
            partitions: 0,
            workers: 3,
            worker_index: 3,
            name: Some("a b".into()),
            tls_cert: Some("/nonexistent.pem".into()),
            // Not a PEM file.
            tls_ca: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")),
            ..ClusterConfig::default()
        };
        let e = check(&c).unwrap_err();
        for key in [
            "servers",
            "partitions",
            "worker_index",
            "workers",
            "name",
            "tls_cert",
            "tls_ca",
        ] {
            assert!(e.contains(&format!("cluster.{key}")), "{key} not in {e}");
        }
        assert!(!e.contains("127.0.0.1"), "a good URL is not refused: {e}");
        assert!(e.contains("a PEM file"), "{e}");
        assert!(e.contains("a readable file ("), "{e}");
    }

    #[test]
    fn rendezvous_moves_only_what_a_worker_gains_or_had() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let two = names(&["w0", "w1"]);
        let three = names(&["w0", "w1", "w2"]);
        let without_w0 = names(&["w1", "w2"]);
        let mut count = std::collections::HashMap::new();
        for p in 0..64 {
            let (a, b, c) = (
                owner(p, &two).unwrap(),
                owner(p, &three).unwrap(),
                owner(p, &without_w0).unwrap(),
            );
            // The same answer whatever the order of the members.
            assert_eq!(owner(p, &names(&["w2", "w0", "w1"])), Some(b));
            // Adding w2 moves a partition only to w2.
            assert!(a == b || b == "w2", "p{p}: {a} -> {b}");
            // Losing w0 moves only w0's partitions.
            assert!(b == c || b == "w0", "p{p}: {b} -> {c}");
            *count.entry(b).or_insert(0) += 1;
        }
        assert_eq!(owner(0, &[]), None);
        // Every worker gets a share.
        assert!(count.values().all(|n| *n >= 10), "{count:?}");
    }

    #[test]
    fn workers_share_every_partition_once() {
        let mut seen = vec![0; 10];
        for i in 0..3 {
            let c = ClusterConfig {
                partitions: 10,
                workers: 3,
                worker_index: i,
                ..ClusterConfig::default()
            };
            for p in c.owned() {
                seen[p as usize] += 1;
            }
        }
        assert_eq!(seen, vec![1; 10]);
    }
}
