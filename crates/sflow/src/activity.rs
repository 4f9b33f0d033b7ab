//! Port-25 activity analysis of sampled traffic (the spamHINTS idea).
//!
//! An exchange point or transit network sees only sampled packets. From the TCP samples
//! to an SMTP port alone, [`Activity`] keeps per source IP: estimated packets and bytes
//! (each sample stands for `sampling_rate` packets), SYNs, distinct destination IPs and
//! networks (/24 for IPv4, /48 for IPv6), and the hours and four-hour blocks in which the
//! host was seen.
//!
//! **Why hours against four-hour blocks** (R. Clayton, "Using Early Results from the
//! 'spamHINTS' Project to Identify an ISP's Customers' Spam Sources", CEAS 2006): a mail
//! server sends around the clock, so the hours it is active in fill the four-hour blocks
//! they span (H ≈ 4·B, [`HostSummary::fill`] ≈ 1). A compromised home PC runs its spam
//! engine in bursts while the owner has it switched on, so its active hours fill its
//! blocks only partly (fill well below 1) and its destinations change all the time (a bot
//! talks to the MX of every recipient domain; [`HostSummary::dest_variation`] near 1).
//! A smarthost also has many destinations, but it is busy in every hour: that is why the
//! fill matters, and why known servers (our MTAs, large providers' outbound MTAs) are
//! labelled and excluded by prefix ([`ActivityConfig::known_servers`]).
//!
//! Verdicts from the log detectors ("bad" IPs) can be attached with [`Activity::label`]
//! to measure and learn which patterns mean spam: [`Activity::label_table`] gives the
//! share of bad hosts per bucket of hours active and per fill bucket.
//!
//! Pure: no I/O, no clock. Event time is whatever the caller passes (capture timestamps or
//! datagram arrival time). Memory is bounded: at most [`ActivityConfig::max_hosts`] IPs,
//! and per IP at most [`ActivityConfig::max_dests`] destinations and
//! [`ActivityConfig::max_hours`] distinct hours are remembered; past a cap counts saturate
//! and are reported as such.

use crate::learn::{self, Learned};
use crate::observe::FlowObservation;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The hasher of the per-host maps: foldhash with a fixed seed (as `maillog::hash`), several
/// times faster than the standard library's SipHash on these small keys, and the same order in
/// every run. Keys come from the traffic (addresses), but every map is capped
/// ([`ActivityConfig::max_hosts`], [`ActivityConfig::max_dests`], [`ActivityConfig::max_hours`],
/// [`ActivityConfig::max_nets`]): colliding keys can only slow lookups in a map of bounded size.
type State = foldhash::fast::FixedState;
type Map<K, V> = HashMap<K, V, State>;
type Set<T> = HashSet<T, State>;
use std::fmt;
use std::net::IpAddr;

/// IP protocol number of TCP.
const PROTO_TCP: u8 = 6;
/// TCP SYN flag.
const TCP_SYN: u16 = 0x02;
/// TCP ACK flag.
const TCP_ACK: u16 = 0x10;
/// TCP RST flag.
const TCP_RST: u16 = 0x04;
/// Seconds per hour.
const HOUR_SECS: i64 = 3600;
/// Hours per activity block (spamHINTS compares hours with four-hour blocks).
pub const HOURS_PER_BLOCK: i64 = 4;

/// The default SMTP ports: 25 only (submission ports 587/465 carry authenticated mail to
/// the provider's own servers, not direct-to-MX spam).
pub const DEFAULT_SMTP_PORTS: [u16; 1] = [25];
/// Default cap on tracked source IPs (about 200 bytes each plus their sets).
pub const DEFAULT_MAX_HOSTS: usize = 200_000;
/// Default cap on distinct destinations remembered per IP: beyond it the count saturates.
/// 1,024 is far above what a host shows at 1:1000 sampling in a day unless it is a bot.
pub const DEFAULT_MAX_DESTS: usize = 1024;
/// Default cap on distinct hours remembered per IP: 93 days.
pub const DEFAULT_MAX_HOURS: usize = 24 * 93;
/// Default minimum samples before a host gets a verdict: with fewer there is no evidence
/// either way (each term below needs several samples to move).
pub const DEFAULT_MIN_SAMPLES: u64 = 5;
/// Share of a mail server's sampled port-25 packets that open a session (SYN without ACK)
/// under the "server" hypothesis of the session evidence. A server's session carries a
/// message of tens of kB (25 or more packets) and is rarely refused: about 1 in 25–50
/// packets is a SYN. Chosen as the upper end of the good classes on training seeds 1–5
/// (ESPs 3–5%, business MTAs and providers 2–3%).
pub const SERVER_SYN_SHARE: f64 = 0.04;
/// Share of SYNs under the "spam source" hypothesis: short messages (a few kB, 5–15
/// packets) and many refused or rejected sessions (blocklists) make 1 in 10 packets or
/// more a SYN. Median of bots on training seeds 1–5 (0.08–0.10).
pub const SPAM_SYN_SHARE: f64 = 0.10;
/// Cap (log10 units) on the session evidence: SYN counts alone never decide more than
/// this much, so a large list server with slightly more failures than usual is not
/// condemned on SYNs alone, and a bot is not cleared by long messages alone.
pub const SYN_EVIDENCE_CAP: f64 = 6.0;
/// A destination network (/24, /48) that at least this many distinct sources send to is a
/// large receiver (a mailbox provider's MX): everybody's mail repeats there, so it says
/// nothing about the sender. The others are "rare" destinations.
pub const POPULAR_NET_SOURCES: u32 = 30;
/// Correspondents assumed under the "server" hypothesis of the destination evidence: a
/// server's mail to rare networks goes to a circle of about this many (partners, customers,
/// subscribers). k rare sessions that never repeat then have the probability
/// Π_{i<k} (1 − i/20) under "server" and 1 under "spam run through a harvested list": the
/// destination evidence is −log10 of that product (the birthday problem), so 4 sessions
/// without a repeat weigh 0.14, 8 weigh 0.70, 12 weigh 1.83.
pub const SERVER_CORRESPONDENTS: u64 = 20;
/// Cap on the destination evidence for rare sessions that never repeat.
pub const RARE_SPREAD_CAP: f64 = 3.0;
/// Evidence (log10, subtracted) per repeated rare destination: a second session to a small
/// receiver is a correspondent (a partner, a customer), which a spammer working through a
/// harvested list of addresses does not have.
pub const RARE_REPEAT_WEIGHT: f64 = 2.0;
/// Evidence (log10, subtracted) for a recurring share of 1: the share of a host's samples
/// that fall in hours of the day (UTC) in which it was active on two days or more. Office
/// hours every weekday, a list's daily run at its fixed hour and a server's every hour all
/// recur; a bot's campaigns come at hours of their own.
pub const RECURRING_WEIGHT: f64 = 4.0;
/// Spread ([`HostSummary::spread`]) at which the spread evidence is zero: a host whose
/// samples fall into fewer distinct hours than 0.6 of what continuous sending over its
/// span would give is sending in bursts.
pub const SPREAD_MIDPOINT: f64 = 0.6;
/// Evidence (log10) per unit of spread below [`SPREAD_MIDPOINT`] (negative above it).
pub const SPREAD_WEIGHT: f64 = 5.0;
/// Cap on the spread evidence either way: the spread of a few samples is noisy.
pub const SPREAD_CAP: f64 = 2.0;
/// A steady spread (below [`SPREAD_MIDPOINT`]'s negative side) counts in full only for a
/// host whose span (first to last sample) is at least this many hours: sending in every hour of
/// a three-hour campaign says nothing about being a server; sending in every hour of a day does.
pub const SPREAD_FULL_SPAN_HOURS: f64 = 24.0;
/// Cap on the days evidence ([`HostSummary::days_evidence`]).
pub const DAYS_CAP: f64 = 2.0;
/// Cap on the destination evidence of a source network's pool (the sum of its addresses' own
/// destination evidence): a pool of many addresses can say more than one host.
pub const SNOWSHOE_DEST_CAP: f64 = 6.0;
/// Default evidence (log10 likelihood ratio, spam source against server) needed to flag a
/// host: 0.5, odds of about 3 to 1 from the samples alone.
pub const DEFAULT_MIN_EVIDENCE: f64 = 0.5;
/// Live judgement waits until a host has been seen for a day and a half, so that a
/// server's daily repeat has had the chance to show in several hours of its second day
/// (at 24 h only the first hour of the second day can have repeated); at the end of input
/// every host is judged on all it did. docs/DETECTION.md gives what shorter waits cost.
pub const DEFAULT_JUDGE_AFTER_SECS: i64 = 36 * 3600;
/// Live judgement also waits until at least this share of a host's samples are
/// [`DAY_SECS`] old, so that most of what it sent has had the chance to recur on the next
/// day: a list server first seen in its trickle hours and judged just after its first daily
/// run (all of its samples a few hours old) looked like a bot campaign; a day later its second
/// run at the same hour shows. A bot is judged a day after its campaign.
pub const JUDGE_OLD_SHARE: f64 = 0.5;
/// Seconds in a day: the age a sample needs before its hour of the day could recur.
pub const DAY_SECS: i64 = 24 * 3600;
/// Addresses of one source network that must have been seen before the network's pooled
/// evidence can flag them (snowshoe): a network of a few servers or home lines has fewer;
/// a snowshoe operation spreads over dozens (Spamhaus CSS: blocks of 8–16 addresses and
/// more).
pub const SNOWSHOE_MIN_ADDRESSES: u64 = 8;
/// Pooled evidence of a network needed for the snowshoe verdict: 3 (a thousand to one), as
/// the pool of many addresses' samples is far larger than one host's.
pub const SNOWSHOE_MIN_EVIDENCE: f64 = 3.0;
/// Default cap on destination networks whose distinct sources are counted.
pub const DEFAULT_MAX_NETS: usize = 1 << 20;
/// z of the Wilson interval reported for the SYN share (95%).
pub const WILSON_Z: f64 = 1.96;
/// Clayton's population (CEAS 2006): an address counts on a day (UTC) when it was active in at
/// least this many of the day's six four-hour blocks; his figure shows how spammy such
/// addresses are against the hours they were active that day.
pub const CLAYTON_MIN_BLOCKS: u32 = 5;

/// An IP prefix such as `192.0.2.0/24` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

/// Why a prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixError {
    /// The text.
    pub text: String,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not an IP prefix: {:?} (want e.g. 192.0.2.0/24)",
            self.text
        )
    }
}

impl std::error::Error for PrefixError {}

impl std::str::FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let err = || PrefixError { text: s.into() };
        let (a, l) = match s.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if len > max {
            return Err(err());
        }
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Prefix {
    /// Whether `ip` lies inside this prefix (IPv4 and IPv6 never match each other).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Parameters of the analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityConfig {
    /// Destination ports counted as SMTP (default [`DEFAULT_SMTP_PORTS`]).
    pub smtp_ports: Vec<u16>,
    /// Known mail servers (own MTAs, large providers' outbound MTAs): tracked, labelled
    /// `known`, never flagged and left out of the label table.
    pub known_servers: Vec<Prefix>,
    /// Cap on tracked source IPs; samples of further IPs are counted as untracked.
    pub max_hosts: usize,
    /// Cap on distinct destinations remembered per IP.
    pub max_dests: usize,
    /// Cap on distinct hours remembered per IP.
    pub max_hours: usize,
    /// Cap on destination networks whose distinct sources are counted.
    pub max_nets: usize,
    /// Minimum samples for a verdict.
    pub min_samples: u64,
    /// Evidence (log10 likelihood ratio) needed to flag a host.
    pub min_evidence: f64,
    /// Seconds a host must have been seen for before it is judged live (end of input judges
    /// every host).
    pub judge_after_secs: i64,
    /// Learn from the labels ([`crate::learn`]): the size term and labelled networks. Without
    /// labels nothing is learned either way.
    pub learn: bool,
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            smtp_ports: DEFAULT_SMTP_PORTS.to_vec(),
            known_servers: Vec::new(),
            max_hosts: DEFAULT_MAX_HOSTS,
            max_dests: DEFAULT_MAX_DESTS,
            max_hours: DEFAULT_MAX_HOURS,
            max_nets: DEFAULT_MAX_NETS,
            min_samples: DEFAULT_MIN_SAMPLES,
            min_evidence: DEFAULT_MIN_EVIDENCE,
            judge_after_secs: DEFAULT_JUDGE_AFTER_SECS,
            learn: true,
        }
    }
}

/// What is kept per source IP.
#[derive(Debug, Clone, Default)]
struct Host {
    samples: u64,
    est_packets: u64,
    est_bytes: u64,
    syn_samples: u64,
    est_syns: u64,
    full_samples: u64,
    reply_samples: u64,
    reset_replies: u64,
    dsts: Set<IpAddr>,
    dst_nets: Set<u128>,
    dests_saturated: bool,
    /// Sampled sessions: distinct (destination, source port).
    sessions: Set<(IpAddr, u16)>,
    /// Sampled sessions per destination network.
    session_nets: Map<u128, u32>,
    /// Samples per clock hour.
    hours: Map<i64, u32>,
    hours_saturated: bool,
    first: i64,
    last: i64,
    known: bool,
    bad: Option<bool>,
    alerted: bool,
}

/// The per-IP figures and verdict, as printed in the per-IP table; also the evidence of an
/// `sflow-activity` alert (read back through `detect::evidence::Evidence`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSummary {
    /// Source IP.
    pub ip: IpAddr,
    /// Samples to an SMTP port.
    pub samples: u64,
    /// Estimated packets (sum of the sampling rates).
    pub est_packets: u64,
    /// Estimated IP bytes (sum of sampling rate × IP length).
    pub est_bytes: u64,
    /// Sampled SYNs (SYN without ACK: connection attempts).
    pub syn_samples: u64,
    /// Estimated SYNs.
    pub est_syns: u64,
    /// Distinct destination IPs (at most the cap).
    pub dst_ips: u64,
    /// Distinct destination networks, /24 or /48 (at most the cap).
    pub dst_nets: u64,
    /// The destination cap was reached.
    pub dests_saturated: bool,
    /// Hours active, H.
    pub hours: u64,
    /// Four-hour blocks active, B.
    pub blocks: u64,
    /// H / B, the spamHINTS variation measure: 4 = every hour of its four-hour blocks
    /// (a server), 1 = one hour per block.
    pub hours_per_block: f64,
    /// H over the hours of its active blocks that lie between its first and last sample
    /// (so edge blocks count only what was observed): 1 = busy every such hour (a server);
    /// a host with isolated active hours scores about 1/4 or less. The verdict uses this.
    pub fill: f64,
    /// Distinct destination networks per sample.
    pub dest_variation: f64,
    /// Samples of the replies from an SMTP port to this host.
    #[serde(default)]
    pub reply_samples: u64,
    /// Of them resets (a refused connection).
    #[serde(default)]
    pub reset_replies: u64,
    /// Wilson 95% interval of the share of samples that are SYNs (sessions against data).
    #[serde(default)]
    pub syn_share_low: f64,
    /// Upper end of the interval.
    #[serde(default)]
    pub syn_share_high: f64,
    /// Sampled sessions (distinct destination and source port).
    #[serde(default)]
    pub sessions: u64,
    /// Of them to rare destination networks (fewer than [`POPULAR_NET_SOURCES`] sources).
    #[serde(default)]
    pub rare_sessions: u64,
    /// Rare-destination sessions to a network this host had already sent to.
    #[serde(default)]
    pub rare_repeats: u64,
    /// Hours of the day (UTC) in which the host was active on two days or more.
    #[serde(default)]
    pub daily_hours: u64,
    /// Session evidence (log10 likelihood ratio of the SYN count, spam source against
    /// server, capped at ±[`SYN_EVIDENCE_CAP`]).
    #[serde(default)]
    pub syn_evidence: f64,
    /// Destination evidence: + for many rare destinations never repeated, − per repeat.
    #[serde(default)]
    pub dest_evidence: f64,
    /// Share of the samples in hours of the day active on two days or more.
    #[serde(default)]
    pub recurring_share: f64,
    /// Daily-repeat evidence: −RECURRING_WEIGHT·recurring_share.
    #[serde(default)]
    pub daily_evidence: f64,
    /// H over the hours that `samples` samples would fall into if the host sent evenly over
    /// its span S (first to last sample, in hours): S·(1 − e^(−samples/S)). About 1 for a
    /// server sending all the time (Clayton's "active in every hour"), well below for a host
    /// whose samples come in bursts, at any sample count.
    #[serde(default)]
    pub spread: f64,
    /// Spread evidence: SPREAD_WEIGHT·(SPREAD_MIDPOINT − spread), capped at ±SPREAD_CAP; a
    /// positive value times (1 − recurring share), a negative one times min(1, span / 24 h).
    #[serde(default)]
    pub spread_evidence: f64,
    /// Distinct days (UTC) with samples.
    #[serde(default)]
    pub days: u64,
    /// Days evidence: with all n samples on one day of an observation window of D ≥ 2 days,
    /// (n − 1)·log10 D (the chance of that for a host sending every day is D^(1−n)), capped at
    /// [`DAYS_CAP`]; 0 otherwise.
    #[serde(default)]
    pub days_evidence: f64,
    /// Sum of the four terms: the host's evidence of being a spam source (log10 odds).
    #[serde(default)]
    pub evidence: f64,
    /// Addresses of this host's network (/24, /48) seen sending to port 25 (known servers
    /// left out).
    #[serde(default)]
    pub net_addresses: u64,
    /// Evidence of the network's pooled samples (session and destination terms, and the
    /// learned size term).
    #[serde(default)]
    pub net_evidence: f64,
    /// Samples that are full-sized data segments (IP length ≥
    /// [`crate::learn::FULL_SEGMENT_IP_LEN`]): the message size.
    #[serde(default)]
    pub full_samples: u64,
    /// Size evidence learned from the labels ([`crate::learn`]), a positive value times
    /// (1 − recurring share); 0 without labels.
    #[serde(default)]
    pub size_evidence: f64,
    /// Addresses of this host's network labelled bad (0 without labels).
    #[serde(default)]
    pub net_labelled: u64,
    /// First and last sample, seconds since the epoch.
    pub first: i64,
    /// Last sample.
    pub last: i64,
    /// In a known-server prefix.
    pub known: bool,
    /// Label from the log detectors: `Some(true)` bad, `Some(false)` labels were given and
    /// this IP is not among them, `None` no labels (then left out of the JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad: Option<bool>,
    /// The verdict.
    pub verdict: Verdict,
    /// 1 / (1 + 10^−evidence): the evidence as a probability with even prior odds.
    pub score: f64,
}

/// What the analysis concluded about one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// In a known-server prefix: excluded.
    Known,
    /// Too few samples to say anything.
    TooFewSamples,
    /// The evidence is below the threshold.
    ServerLike,
    /// The evidence is at or above the threshold: the spam-source pattern.
    Suspicious,
    /// Not enough evidence on its own, but one of at least [`SNOWSHOE_MIN_ADDRESSES`]
    /// addresses of its network (/24, /48) whose pooled samples are evidence of spam of
    /// [`SNOWSHOE_MIN_EVIDENCE`] or more, and no correspondent of its own (no repeated rare
    /// destination): a snowshoe operation spreading its mail thin over many addresses.
    Snowshoe,
}

impl Verdict {
    /// The name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Known => "known",
            Verdict::TooFewSamples => "too-few-samples",
            Verdict::ServerLike => "server-like",
            Verdict::Suspicious => "suspicious",
            Verdict::Snowshoe => "snowshoe",
        }
    }
}

impl Verdict {
    /// Whether the verdict raises an alert.
    pub fn flagged(self) -> bool {
        matches!(self, Verdict::Suspicious | Verdict::Snowshoe)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of the analysis as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ActivityStats {
    /// Observations seen.
    pub observations: u64,
    /// TCP observations to an SMTP port.
    pub smtp_samples: u64,
    /// SMTP samples of IPs not tracked because the host cap was reached.
    pub untracked_samples: u64,
    /// TCP observations from an SMTP port to a tracked host (replies).
    pub reply_samples: u64,
    /// IPs tracked.
    pub hosts: u64,
    /// Of which in known-server prefixes.
    pub known_hosts: u64,
}

/// One row of the label table: hosts in one bucket, and how many of them are bad.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketRow {
    /// Bucket name, e.g. `5-8` hours or `0.50-0.75` fill.
    pub bucket: String,
    /// Hosts with a verdict other than known / too few samples.
    pub hosts: u64,
    /// Of which labelled bad.
    pub bad: u64,
    /// Of which flagged suspicious.
    pub flagged: u64,
    /// bad / hosts (0 when empty).
    pub bad_share: f64,
}

/// Share of bad hosts against the activity measures, and how the verdict fares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelTable {
    /// By hours active H.
    pub by_hours: Vec<BucketRow>,
    /// By fill H/4B.
    pub by_fill: Vec<BucketRow>,
    /// By destination variation.
    pub by_dest_variation: Vec<BucketRow>,
    /// Clayton's figure: host-days (UTC) on which an address (known servers left out) was
    /// active in at least [`CLAYTON_MIN_BLOCKS`] of the six four-hour blocks, by the hours it
    /// was active that day (`5` to `24`). Here `hosts` counts host-days, `bad` and `flagged`
    /// those of addresses labelled bad and flagged. Every host with such a day counts, whatever
    /// its sample count.
    pub five_of_six: Vec<BucketRow>,
    /// Distinct addresses with at least one day in [`LabelTable::five_of_six`].
    pub five_of_six_hosts: u64,
    /// Hosts with enough samples (known servers excluded).
    pub hosts: u64,
    /// Of which bad.
    pub bad: u64,
    /// Flagged and bad.
    pub flagged_bad: u64,
    /// Flagged.
    pub flagged: u64,
    /// Bad hosts of the labels not seen at all in the SMTP samples.
    pub bad_unseen: u64,
}

/// Upper bounds of the hours-active buckets (powers of two).
const HOUR_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, u64::MAX];
/// Upper bounds of the fill buckets.
const FILL_BUCKETS: [f64; 4] = [0.375, 0.5, 0.75, 1.0];
/// Upper bounds of the destination-variation buckets.
const VARIATION_BUCKETS: [f64; 4] = [0.25, 0.5, 0.75, 1.0];

/// Names of the hours-active buckets, in order.
pub fn hour_bucket_names() -> Vec<String> {
    let mut lo = 1;
    HOUR_BUCKETS
        .iter()
        .map(|&hi| {
            let s = match hi {
                u64::MAX => format!("{lo}+"),
                _ if hi == lo => format!("{hi}"),
                _ => format!("{lo}-{hi}"),
            };
            lo = hi.saturating_add(1);
            s
        })
        .collect()
}

fn hour_bucket(h: u64) -> usize {
    HOUR_BUCKETS
        .iter()
        .position(|&b| h <= b)
        .unwrap_or(HOUR_BUCKETS.len() - 1)
}

fn float_bucket(v: f64, bounds: &[f64]) -> usize {
    bounds
        .iter()
        .position(|&b| v <= b)
        .unwrap_or(bounds.len() - 1)
}

fn float_bucket_names(lo0: f64, bounds: &[f64]) -> Vec<String> {
    let mut lo = lo0;
    bounds
        .iter()
        .map(|&hi| {
            let s = format!("{lo:.2}-{hi:.2}");
            lo = hi;
            s
        })
        .collect()
}

/// The network key of a destination: /24 for IPv4, /48 for IPv6 (tagged apart).
fn net_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a) >> 8) | (1u128 << 127),
        IpAddr::V6(a) => u128::from(a) >> 80,
    }
}

/// The port-25 activity analysis.
#[derive(Debug, Clone)]
pub struct Activity {
    cfg: ActivityConfig,
    hosts: Map<IpAddr, Host>,
    /// Distinct tracked sources per destination network (up to `max_nets` networks).
    net_sources: Map<u128, u32>,
    stats: ActivityStats,
    labelled: bool,
    bad_labels: HashSet<IpAddr>,
    /// First and latest SMTP sample of the whole analysis (the observation window).
    window: Option<(i64, i64)>,
}

impl Activity {
    /// A new, empty analysis.
    pub fn new(cfg: ActivityConfig) -> Activity {
        Activity {
            cfg,
            hosts: Map::default(),
            net_sources: Map::default(),
            stats: ActivityStats::default(),
            labelled: false,
            bad_labels: HashSet::new(),
            window: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ActivityConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> ActivityStats {
        self.stats
    }

    /// Whether labels were attached.
    pub fn labelled(&self) -> bool {
        self.labelled
    }

    /// Adds one observation seen at `ts` (seconds since the epoch). Returns whether it
    /// was a TCP sample to an SMTP port.
    pub fn observe(&mut self, ts: i64, o: &FlowObservation) -> bool {
        self.stats.observations += 1;
        if o.protocol != PROTO_TCP {
            return false;
        }
        if !self.cfg.smtp_ports.contains(&o.dst_port) {
            // A reply from an SMTP port: counted for a host already tracked.
            if self.cfg.smtp_ports.contains(&o.src_port) {
                if let Some(h) = self.hosts.get_mut(&o.dst_ip) {
                    self.stats.reply_samples += 1;
                    h.reply_samples += 1;
                    h.reset_replies += u64::from(o.tcp_flags & TCP_RST != 0);
                }
            }
            return false;
        }
        self.stats.smtp_samples += 1;
        self.window = Some(match self.window {
            Some((a, b)) => (a.min(ts), b.max(ts)),
            None => (ts, ts),
        });
        if !self.hosts.contains_key(&o.src_ip) {
            if self.hosts.len() >= self.cfg.max_hosts {
                self.stats.untracked_samples += 1;
                return true;
            }
            let known = self.cfg.known_servers.iter().any(|p| p.contains(o.src_ip));
            self.stats.hosts += 1;
            self.stats.known_hosts += u64::from(known);
            let bad = self.labelled.then(|| self.bad_labels.contains(&o.src_ip));
            self.hosts.insert(
                o.src_ip,
                Host {
                    first: ts,
                    last: ts,
                    known,
                    bad,
                    ..Host::default()
                },
            );
        }
        let cfg = &self.cfg;
        let Some(h) = self.hosts.get_mut(&o.src_ip) else {
            return true; // inserted just above
        };
        let rate = u64::from(o.sampling_rate.max(1));
        h.samples += 1;
        h.est_packets = h.est_packets.saturating_add(rate);
        h.est_bytes = h
            .est_bytes
            .saturating_add(rate.saturating_mul(u64::from(o.ip_len)));
        h.full_samples += u64::from(o.ip_len >= crate::learn::FULL_SEGMENT_IP_LEN);
        if o.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            h.syn_samples += 1;
            h.est_syns = h.est_syns.saturating_add(rate);
        }
        if h.dsts.len() < cfg.max_dests {
            h.dsts.insert(o.dst_ip);
        } else if !h.dsts.contains(&o.dst_ip) {
            h.dests_saturated = true;
        }
        let key = net_key(o.dst_ip);
        if h.dst_nets.len() < cfg.max_dests {
            if h.dst_nets.insert(key) {
                // A new source for this destination network.
                let n = self.net_sources.len();
                match self.net_sources.get_mut(&key) {
                    Some(c) => *c = c.saturating_add(1),
                    None if n < cfg.max_nets => {
                        self.net_sources.insert(key, 1);
                    }
                    None => {}
                }
            }
        } else if !h.dst_nets.contains(&key) {
            h.dests_saturated = true;
        }
        let session = (o.dst_ip, o.src_port);
        if h.sessions.len() < cfg.max_dests && h.sessions.insert(session) {
            let c = h.session_nets.entry(key).or_insert(0);
            *c = c.saturating_add(1);
        }
        let hour = ts.div_euclid(HOUR_SECS);
        if h.hours.len() < cfg.max_hours || h.hours.contains_key(&hour) {
            let c = h.hours.entry(hour).or_insert(0);
            *c = c.saturating_add(1);
        } else {
            h.hours_saturated = true;
        }
        h.first = h.first.min(ts);
        h.last = h.last.max(ts);
        true
    }

    /// Attaches labels: the IPs the log detectors flagged. Hosts seen before or after this
    /// call get `bad = Some(ip ∈ bad)`.
    pub fn label<I: IntoIterator<Item = IpAddr>>(&mut self, bad: I) {
        self.labelled = true;
        self.bad_labels.extend(bad);
        for (ip, h) in self.hosts.iter_mut() {
            h.bad = Some(self.bad_labels.contains(ip));
        }
    }

    fn summarize(&self, ip: IpAddr, h: &Host) -> HostSummary {
        let hours = h.hours.len() as u64;
        // The active hours in order: blocks and days are runs of them (no set to build).
        let mut sorted: Vec<i64> = h.hours.keys().copied().collect();
        sorted.sort_unstable();
        let mut block_set: Vec<i64> = sorted
            .iter()
            .map(|x| x.div_euclid(HOURS_PER_BLOCK))
            .collect();
        block_set.dedup();
        let blocks = block_set.len() as u64;
        let hours_per_block = if blocks == 0 {
            0.0
        } else {
            hours as f64 / blocks as f64
        };
        // Capacity: the hours of the active blocks that lie between the host's first and
        // last sample, so that a host seen from mid-block on (or still active now) is not
        // judged on hours nobody observed.
        let (first_hour, last_hour) = (h.first.div_euclid(HOUR_SECS), h.last.div_euclid(HOUR_SECS));
        let capacity: i64 = block_set
            .iter()
            .map(|b| {
                let lo = (b * HOURS_PER_BLOCK).max(first_hour);
                let hi = (b * HOURS_PER_BLOCK + HOURS_PER_BLOCK - 1).min(last_hour);
                (hi - lo + 1).max(1)
            })
            .sum();
        let fill = if capacity <= 0 {
            0.0
        } else {
            (hours as f64 / capacity as f64).min(1.0)
        };
        let dst_nets = h.dst_nets.len() as u64;
        let dest_variation = if h.samples == 0 {
            0.0
        } else {
            (dst_nets as f64 / h.samples as f64).min(1.0)
        };
        // Hours of the day seen on two days or more.
        let mut by_hour_of_day = [0u32; 24];
        for hr in h.hours.keys() {
            by_hour_of_day[hr.rem_euclid(24) as usize] += 1;
        }
        let daily_hours = by_hour_of_day.iter().filter(|&&d| d >= 2).count() as u64;
        let recurring: u64 = h
            .hours
            .iter()
            .filter(|(hr, _)| by_hour_of_day[hr.rem_euclid(24) as usize] >= 2)
            .map(|(_, &c)| u64::from(c))
            .sum();
        let recurring_share = if h.samples == 0 {
            0.0
        } else {
            recurring as f64 / h.samples as f64
        };
        // Sessions to rare destination networks, and how many of them repeat a network.
        let (mut rare_sessions, mut rare_repeats) = (0u64, 0u64);
        for (net, &c) in &h.session_nets {
            let sources = self.net_sources.get(net).copied().unwrap_or(0);
            if sources < POPULAR_NET_SOURCES {
                rare_sessions += u64::from(c);
                rare_repeats += u64::from(c.saturating_sub(1));
            }
        }
        let (syn_share_low, syn_share_high) = wilson(h.syn_samples, h.samples, WILSON_Z);
        let span = (last_hour - first_hour + 1).max(1) as f64;
        let even_hours = span * (1.0 - (-(h.samples as f64) / span).exp());
        let spread = if even_hours > 0.0 {
            hours as f64 / even_hours
        } else {
            1.0
        };
        let mut e = evidence(
            h.samples,
            h.syn_samples,
            rare_sessions,
            rare_repeats,
            recurring_share,
        );
        e.spread = (SPREAD_WEIGHT * (SPREAD_MIDPOINT - spread)).clamp(-SPREAD_CAP, SPREAD_CAP);
        // Bursts that recur at the same hours every day are a schedule (a list's daily run),
        // not a campaign: only the share of samples outside recurring hours counts as bursty.
        // Steady sending counts in full only over a day's span.
        if e.spread > 0.0 {
            e.spread *= 1.0 - recurring_share;
        } else {
            e.spread *= (span / SPREAD_FULL_SPAN_HOURS).min(1.0);
        }
        // Days: a host all of whose samples fall on one day of an observation window of D
        // days. A server (or an office) sends every day: each sample falls on any of the D
        // days, so all n on one day has the chance D·(1/D)^n; a campaign puts them all there.
        let mut day_set: Vec<i64> = sorted.iter().map(|x| x.div_euclid(24)).collect();
        day_set.dedup();
        let days = day_set.len() as u64;
        let observed_days = self
            .window
            .map_or(0, |(a, b)| (b - a).max(0).div_euclid(DAY_SECS) + 1);
        e.days = if days == 1 && observed_days >= 2 && h.samples >= 1 {
            ((h.samples - 1) as f64 * (observed_days as f64).log10()).min(DAYS_CAP)
        } else {
            0.0
        };
        let c = &self.cfg;
        let verdict = if h.known {
            Verdict::Known
        } else if h.samples < c.min_samples {
            Verdict::TooFewSamples
        } else if e.total() >= c.min_evidence {
            Verdict::Suspicious
        } else {
            Verdict::ServerLike
        };
        let score = 1.0 / (1.0 + 10f64.powf(-e.total()));
        HostSummary {
            ip,
            samples: h.samples,
            est_packets: h.est_packets,
            est_bytes: h.est_bytes,
            syn_samples: h.syn_samples,
            est_syns: h.est_syns,
            dst_ips: h.dsts.len() as u64,
            dst_nets,
            dests_saturated: h.dests_saturated,
            hours,
            blocks,
            hours_per_block,
            fill,
            dest_variation,
            reply_samples: h.reply_samples,
            reset_replies: h.reset_replies,
            syn_share_low,
            syn_share_high,
            sessions: h.sessions.len() as u64,
            rare_sessions,
            rare_repeats,
            daily_hours,
            syn_evidence: e.syn,
            dest_evidence: e.dest,
            recurring_share,
            daily_evidence: e.daily,
            spread,
            spread_evidence: e.spread,
            days,
            days_evidence: e.days,
            evidence: e.total(),
            net_addresses: 0,
            net_evidence: 0.0,
            full_samples: h.full_samples,
            size_evidence: 0.0,
            net_labelled: 0,
            first: h.first,
            last: h.last,
            known: h.known,
            bad: h.bad,
            verdict,
            score,
        }
    }

    /// Every host's own summary, then the snowshoe rule over each source network.
    fn judged(&self) -> Vec<HostSummary> {
        self.judged_learned(None).0
    }

    /// What was learned from the labels over the hosts as they are now ([`crate::learn`]):
    /// `None` with learning off; without labels the spam reference is the traffic's own confident
    /// detections ([`crate::learn::SpamReference::Traffic`]).
    pub fn learned(&self) -> Option<Learned> {
        self.judged_learned(None).1
    }

    /// The judged hosts and what was learned from the labels, for the hosts of the source
    /// networks in `nets` only (`None`: all). Without learning, a host's summary depends on
    /// its own counts, the global destination and window counts, and its network's pool:
    /// judging every host of a network gives each of them the summary it gets among all hosts.
    /// Learning fits its distributions to all hosts: with it, pass `None`.
    fn judged_learned(&self, nets: Option<&Set<u128>>) -> (Vec<HostSummary>, Option<Learned>) {
        let mut v: Vec<HostSummary> = self
            .hosts
            .iter()
            .filter(|(ip, _)| match nets {
                None => true,
                Some(n) => n.contains(&net_key(**ip)),
            })
            .map(|(ip, h)| self.summarize(*ip, h))
            .collect();
        let mut learned = self.cfg.learn.then(|| {
            learn::apply(
                &mut v,
                &self.bad_labels,
                self.cfg.min_samples,
                self.cfg.min_evidence,
            )
        });
        // Pool the counts of each source network's addresses (known servers left out).
        let mut pools: Map<u128, Pool> = Map::default();
        for s in v.iter().filter(|s| !s.known) {
            let p = pools.entry(net_key(s.ip)).or_default();
            p.seen += 1;
            p.labelled += u64::from(s.bad == Some(true));
        }
        // Hosts flagged on their own are left out of the pool: one open relay must not make
        // its neighbours look like a snowshoe network.
        for s in v
            .iter()
            .filter(|s| !s.known && s.verdict != Verdict::Suspicious)
        {
            let p = pools.entry(net_key(s.ip)).or_default();
            p.addresses += 1;
            p.samples += s.samples;
            p.syns += s.syn_samples;
            p.full += s.full_samples;
            p.dest += s.dest_evidence;
        }
        let mut labelled_nets = HashSet::new();
        for s in v.iter_mut().filter(|s| !s.known) {
            let Some(p) = pools.get(&net_key(s.ip)) else {
                continue;
            };
            s.net_addresses = p.addresses;
            // Each address's destinations are its own (repeats happen within a host, not
            // across a network of different servers): the pool's destination evidence is the
            // sum of its addresses' own.
            s.net_evidence =
                evidence(p.samples, p.syns, 0, 0, 0.0).syn + p.dest.min(SNOWSHOE_DEST_CAP);
            if let Some(l) = &learned {
                s.net_evidence += l.size_evidence(p.full, p.samples);
                s.net_labelled = p.labelled;
            }
            if s.verdict != Verdict::Suspicious
                && p.addresses >= SNOWSHOE_MIN_ADDRESSES
                && s.net_evidence >= SNOWSHOE_MIN_EVIDENCE
                && s.rare_repeats == 0
            {
                s.verdict = Verdict::Snowshoe;
            }
            // A network whose addresses are labelled bad more often than chance allows: its
            // other addresses without a correspondent of their own (learn.rs).
            if let Some(l) = &learned {
                if !s.verdict.flagged()
                    && s.rare_repeats == 0
                    && learn::labelled_network(p.seen, p.labelled, l.labelled_share)
                {
                    s.verdict = Verdict::Snowshoe;
                    labelled_nets.insert(net_key(s.ip));
                }
            }
        }
        if let Some(l) = &mut learned {
            l.labelled_networks = labelled_nets.len() as u64;
        }
        (v, learned)
    }

    /// Every tracked host: the judged ones first, by evidence (strongest first), then the
    /// known servers and those with too few samples, most samples first (ties by IP).
    pub fn summaries(&self) -> Vec<HostSummary> {
        let mut v = self.judged();
        let judged =
            |s: &HostSummary| !matches!(s.verdict, Verdict::Known | Verdict::TooFewSamples);
        v.sort_by(|a, b| {
            judged(b)
                .cmp(&judged(a))
                .then(if judged(a) {
                    b.evidence.total_cmp(&a.evidence)
                } else {
                    std::cmp::Ordering::Equal
                })
                .then(b.samples.cmp(&a.samples))
                .then(a.ip.cmp(&b.ip))
        });
        v
    }

    /// The summary of one IP, if tracked.
    pub fn summary(&self, ip: IpAddr) -> Option<HostSummary> {
        self.hosts.get(&ip)?;
        self.judged().into_iter().find(|s| s.ip == ip)
    }

    /// Hosts flagged (suspicious, or snowshoe) that were not returned by an earlier call,
    /// among those first seen at least [`ActivityConfig::judge_after_secs`] before `now` and
    /// with at least [`JUDGE_OLD_SHARE`] of their samples a day old (pass `i64::MAX` at the
    /// end of input to judge every host): for streaming use (call it
    /// when event time passes an hour boundary). Sorted by evidence, then IP.
    pub fn take_new_suspicious(&mut self, now: i64) -> Vec<HostSummary> {
        let due = now.saturating_sub(self.cfg.judge_after_secs);
        let old_hour = now.saturating_sub(DAY_SECS).div_euclid(HOUR_SECS);
        let ready = |h: &Host| {
            !h.alerted
                && h.first <= due
                && (now == i64::MAX
                    || h.hours_saturated
                    || h.hours
                        .iter()
                        .filter(|(hr, _)| **hr < old_hour)
                        .map(|(_, &c)| u64::from(c))
                        .sum::<u64>() as f64
                        >= JUDGE_OLD_SHARE * h.samples as f64)
        };
        // Only the networks of hosts due for judgement are judged (their hosts all, for the
        // snowshoe pools): every hour most hosts are not due.
        let due_nets: Set<u128> = self
            .hosts
            .iter()
            .filter(|(_, h)| !h.known && ready(h))
            .map(|(ip, _)| net_key(*ip))
            .collect();
        if due_nets.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<HostSummary> = self
            .judged_learned((!self.cfg.learn).then_some(&due_nets))
            .0
            .into_iter()
            .filter(|s| s.verdict.flagged())
            .filter(|s| self.hosts.get(&s.ip).is_some_and(ready))
            .collect();
        for s in &out {
            if let Some(h) = self.hosts.get_mut(&s.ip) {
                h.alerted = true;
            }
        }
        out.sort_by(|a, b| b.evidence.total_cmp(&a.evidence).then(a.ip.cmp(&b.ip)));
        out
    }

    /// The share of bad hosts per bucket of hours active, fill and destination variation,
    /// over hosts with enough samples that are not known servers. `None` without labels.
    pub fn label_table(&self) -> Option<LabelTable> {
        if !self.labelled {
            return None;
        }
        let hn = hour_bucket_names();
        let mut by_hours = rows(&hn);
        let mut by_fill = rows(&float_bucket_names(0.25, &FILL_BUCKETS));
        let mut by_var = rows(&float_bucket_names(0.0, &VARIATION_BUCKETS));
        let (mut hosts, mut bad, mut flagged, mut flagged_bad) = (0, 0, 0, 0);
        let summaries = self.summaries();
        let flagged_ips: HashSet<IpAddr> = summaries
            .iter()
            .filter(|s| s.verdict.flagged())
            .map(|s| s.ip)
            .collect();
        for s in summaries {
            if matches!(s.verdict, Verdict::Known | Verdict::TooFewSamples) {
                continue;
            }
            let is_bad = s.bad == Some(true);
            let is_flagged = s.verdict.flagged();
            hosts += 1;
            bad += u64::from(is_bad);
            flagged += u64::from(is_flagged);
            flagged_bad += u64::from(is_bad && is_flagged);
            for row in [
                &mut by_hours[hour_bucket(s.hours)],
                &mut by_fill[float_bucket(s.fill, &FILL_BUCKETS)],
                &mut by_var[float_bucket(s.dest_variation, &VARIATION_BUCKETS)],
            ] {
                row.hosts += 1;
                row.bad += u64::from(is_bad);
                row.flagged += u64::from(is_flagged);
            }
        }
        let (five_of_six, five_of_six_hosts) = self.five_of_six(&flagged_ips);
        for r in by_hours.iter_mut().chain(&mut by_fill).chain(&mut by_var) {
            r.bad_share = if r.hosts == 0 {
                0.0
            } else {
                r.bad as f64 / r.hosts as f64
            };
        }
        let bad_unseen = self
            .bad_labels
            .iter()
            .filter(|ip| !self.hosts.contains_key(ip))
            .count() as u64;
        Some(LabelTable {
            by_hours,
            by_fill,
            by_dest_variation: by_var,
            five_of_six,
            five_of_six_hosts,
            hosts,
            bad,
            flagged_bad,
            flagged,
            bad_unseen,
        })
    }
}

impl Activity {
    /// Clayton's figure over host-days: rows `5`..`24` (hours active that day) of the days on
    /// which a host was active in at least [`CLAYTON_MIN_BLOCKS`] blocks, and the number of
    /// distinct hosts with such a day.
    fn five_of_six(&self, flagged: &HashSet<IpAddr>) -> (Vec<BucketRow>, u64) {
        let names: Vec<String> = (CLAYTON_MIN_BLOCKS..=24).map(|h| h.to_string()).collect();
        let mut out = rows(&names);
        let mut hosts = 0;
        for (ip, h) in self.hosts.iter().filter(|(_, h)| !h.known) {
            let mut counted = false;
            for hours_of_day in day_masks(h.hours.keys().copied()).into_values() {
                let blocks = (0..6)
                    .filter(|b| hours_of_day >> (4 * b) & 0xf != 0)
                    .count() as u32;
                if blocks < CLAYTON_MIN_BLOCKS {
                    continue;
                }
                let i = (hours_of_day.count_ones() - CLAYTON_MIN_BLOCKS) as usize;
                let Some(r) = out.get_mut(i) else { continue };
                r.hosts += 1;
                r.bad += u64::from(h.bad == Some(true));
                r.flagged += u64::from(flagged.contains(ip));
                counted = true;
            }
            hosts += u64::from(counted);
        }
        for r in &mut out {
            r.bad_share = if r.hosts == 0 {
                0.0
            } else {
                r.bad as f64 / r.hosts as f64
            };
        }
        (out, hosts)
    }
}

/// The hours of the day (bit i = hour i, UTC) a host was active in, per day since the epoch.
fn day_masks(hours: impl Iterator<Item = i64>) -> std::collections::BTreeMap<i64, u32> {
    let mut days = std::collections::BTreeMap::new();
    for hr in hours {
        *days.entry(hr.div_euclid(24)).or_insert(0u32) |= 1 << hr.rem_euclid(24);
    }
    days
}

/// Counts pooled over the addresses of one source network.
#[derive(Debug, Clone, Copy, Default)]
struct Pool {
    addresses: u64,
    samples: u64,
    syns: u64,
    full: u64,
    dest: f64,
    /// All addresses of the network seen (suspicious ones too), and of them labelled bad.
    seen: u64,
    labelled: u64,
}

/// The three evidence terms of a host (log10 likelihood ratios, spam source against
/// server; docs/DETECTION.md, "sFlow port-25 activity").
#[derive(Debug, Clone, Copy, PartialEq)]
struct Evidence {
    syn: f64,
    dest: f64,
    daily: f64,
    spread: f64,
    days: f64,
}

impl Evidence {
    fn total(&self) -> f64 {
        self.syn + self.dest + self.daily + self.spread + self.days
    }
}

/// The evidence of `samples` samples of which `syns` SYNs, `rare` rare-destination sessions
/// of which `repeats` repeated, and the share `recurring` of samples in recurring hours (the
/// spread term is added by the caller).
fn evidence(samples: u64, syns: u64, rare: u64, repeats: u64, recurring: f64) -> Evidence {
    let (k, n) = (syns as f64, samples as f64);
    let syn = k * (SPAM_SYN_SHARE / SERVER_SYN_SHARE).log10()
        + (n - k) * ((1.0 - SPAM_SYN_SHARE) / (1.0 - SERVER_SYN_SHARE)).log10();
    let dest = if repeats > 0 {
        -RARE_REPEAT_WEIGHT * repeats as f64
    } else {
        // −log10 Π_{i<rare} (1 − i/C): no repeat among `rare` sessions to C correspondents.
        let c = SERVER_CORRESPONDENTS as f64;
        let mut e = 0.0;
        for i in 1..rare.min(SERVER_CORRESPONDENTS) {
            e -= (1.0 - i as f64 / c).log10();
            if e >= RARE_SPREAD_CAP {
                break;
            }
        }
        if rare >= SERVER_CORRESPONDENTS {
            RARE_SPREAD_CAP
        } else {
            e.min(RARE_SPREAD_CAP)
        }
    };
    Evidence {
        syn: syn.clamp(-SYN_EVIDENCE_CAP, SYN_EVIDENCE_CAP),
        dest,
        daily: -RECURRING_WEIGHT * recurring,
        spread: 0.0,
        days: 0.0,
    }
}

/// Wilson score interval of a share `k / n` at `z` (E. B. Wilson, "Probable inference, the
/// law of succession, and statistical inference", JASA 1927): honest at small `n`, where the
/// normal interval is not. `(0, 1)` when `n` is 0.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let d = 1.0 + z2 / n;
    let mid = (p + z2 / (2.0 * n)) / d;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / d;
    ((mid - half).max(0.0), (mid + half).min(1.0))
}

fn rows(names: &[String]) -> Vec<BucketRow> {
    names
        .iter()
        .map(|n| BucketRow {
            bucket: n.clone(),
            hosts: 0,
            bad: 0,
            flagged: 0,
            bad_share: 0.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn obs(src: [u8; 4], dst: [u8; 4], port: u16, flags: u16) -> FlowObservation {
        FlowObservation {
            agent: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            sampling_rate: 2000,
            src_ip: IpAddr::from(src),
            dst_ip: IpAddr::from(dst),
            protocol: PROTO_TCP,
            src_port: 40000,
            dst_port: port,
            tcp_flags: flags,
            ip_len: 1500,
            frame_len: 1514,
        }
    }

    const T0: i64 = 1_700_000_000 - 1_700_000_000 % (4 * 3600);

    #[test]
    fn prefix_parse_and_contains() {
        let p: Prefix = "192.0.2.0/24".parse().unwrap();
        assert!(p.contains("192.0.2.77".parse().unwrap()));
        assert!(!p.contains("192.0.3.1".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let one: Prefix = "2001:db8::1".parse().unwrap();
        assert_eq!(one.len, 128);
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("bogus".parse::<Prefix>().is_err());
    }

    #[test]
    fn hours_blocks_fill_and_estimates() {
        let mut a = Activity::new(ActivityConfig::default());
        // A server: every hour of 8 hours (2 blocks), always the same 2 destinations.
        for hr in 0..8 {
            for d in 0..2u8 {
                a.observe(
                    T0 + hr * 3600 + 10,
                    &obs([10, 0, 0, 1], [198, 51, d, 1], 25, 0x18),
                );
            }
        }
        // A bot: hour 0 and hour 5 (2 blocks, 2 hours), a new /24 per sample, SYNs.
        for i in 0..6u8 {
            let hr = if i < 3 { 0 } else { 5 };
            a.observe(
                T0 + hr * 3600 + i64::from(i),
                &obs([10, 9, 9, 9], [203, 0, i, 1], 25, 0x02),
            );
        }
        // Not SMTP.
        assert!(!a.observe(T0, &obs([10, 9, 9, 9], [203, 0, 99, 1], 80, 0x02)));
        let s = a.summary("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!((s.samples, s.hours, s.blocks, s.fill), (16, 8, 2, 1.0));
        assert_eq!(s.hours_per_block, 4.0);
        assert_eq!((s.dst_ips, s.dst_nets), (2, 2));
        assert_eq!(s.est_packets, 16 * 2000);
        assert_eq!(s.est_bytes, 16 * 2000 * 1500);
        // No SYN in 16 samples, two rare destinations: no evidence of a spam source.
        assert_eq!((s.syn_samples, s.sessions, s.rare_sessions), (0, 2, 2));
        assert!((s.syn_evidence - 16.0 * (0.90f64 / 0.96).log10()).abs() < 1e-9);
        assert!((s.dest_evidence + 0.95f64.log10()).abs() < 1e-9);
        assert_eq!((s.recurring_share, s.daily_evidence), (0.0, 0.0));
        assert_eq!(s.verdict, Verdict::ServerLike);
        let b = a.summary("10.9.9.9".parse().unwrap()).unwrap();
        // Hours 0 and 5: blocks 0 (hours 0-3 observed) and 1 (hours 4-5 observed).
        assert_eq!(
            (b.samples, b.hours, b.blocks, b.hours_per_block),
            (6, 2, 2, 1.0)
        );
        assert!((b.fill - 2.0 / 6.0).abs() < 1e-9);
        assert_eq!((b.syn_samples, b.est_syns), (6, 12000));
        assert_eq!(b.dest_variation, 1.0);
        // Six SYNs in six samples, six rare networks never repeated.
        assert!((b.syn_evidence - 6.0 * 2.5f64.log10()).abs() < 1e-9);
        assert_eq!((b.rare_sessions, b.rare_repeats), (6, 0));
        // No repeat among 6 rare sessions: −log10 of 0.95·0.90·0.85·0.80·0.75.
        let birthday: f64 = (1..6).map(|i| 1.0 - f64::from(i) / 20.0).product();
        assert!((b.dest_evidence + birthday.log10()).abs() < 1e-9);
        assert_eq!(b.verdict, Verdict::Suspicious);
        assert!((b.score - 1.0 / (1.0 + 10f64.powf(-b.evidence))).abs() < 1e-9);
        let (lo, hi) = (b.syn_share_low, b.syn_share_high);
        assert!((lo - 0.6097).abs() < 1e-3 && hi > 0.999, "{lo} {hi}");
        assert_eq!(a.stats().smtp_samples, 22);
        assert_eq!(a.stats().observations, 23);
        // Alerted once only.
        // Judged live only a day after it was first seen; then alerted once only.
        assert!(a.take_new_suspicious(T0 + 6 * 3600).is_empty());
        assert_eq!(a.take_new_suspicious(T0 + 36 * 3600).len(), 1);
        assert!(a.take_new_suspicious(i64::MAX).is_empty());
    }

    #[test]
    fn daily_run_is_judged_once_it_could_recur() {
        let mut a = Activity::new(ActivityConfig::default());
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        // One trickle sample at hour 0, then a run at hour 30 (day 2, 06:00): 40 sessions to
        // 40 rare networks, 2 of them SYNs.
        let run = |a: &mut Activity, hour: i64, net0: u8| {
            for i in 0..40u8 {
                let mut o = obs([10, 0, 0, 7], [198, net0, i, 1], 25, 0x10);
                if i % 20 == 0 {
                    o.tcp_flags = 0x02;
                }
                o.src_port = 30_000 + u16::from(net0) * 64 + u16::from(i);
                a.observe(T0 + hour * 3600 + i64::from(i), &o);
            }
        };
        a.observe(T0, &obs([10, 0, 0, 7], [198, 51, 100, 1], 25, 0x10));
        run(&mut a, 30, 1);
        // Six hours after the run a bot's campaign and a list's first run look alike...
        assert_eq!(a.summary(ip).unwrap().verdict, Verdict::Suspicious);
        // ...so it is not judged yet, though it was first seen 36 hours ago: its samples are
        // not a day old.
        assert!(a.take_new_suspicious(T0 + 36 * 3600).is_empty());
        // The next day's run at the same hour (to other subscribers' networks).
        run(&mut a, 54, 2);
        let s = a.summary(ip).unwrap();
        assert!(s.recurring_share > 0.95, "{}", s.recurring_share);
        // Bursty, but the bursts recur: the spread adds (almost) nothing.
        assert!(s.spread_evidence < 0.1, "{}", s.spread_evidence);
        assert_eq!(s.verdict, Verdict::ServerLike);
        assert!(a.take_new_suspicious(T0 + 79 * 3600).is_empty());
        assert!(a.take_new_suspicious(i64::MAX).is_empty());
    }

    #[test]
    fn days_evidence_of_a_one_day_host() {
        let mut a = Activity::new(ActivityConfig::default());
        // Host 1: three samples in hour 2 of day 1. Host 2: one sample on day 1, one on day 3
        // (the observation window is three days).
        for i in 0..3 {
            a.observe(
                T0 + 2 * 3600 + i,
                &obs([10, 0, 0, 1], [198, 51, 100, 1], 25, 0x10),
            );
        }
        a.observe(T0, &obs([10, 0, 0, 2], [198, 51, 100, 1], 25, 0x10));
        let one = "10.0.0.1".parse().unwrap();
        // Only one day observed so far: no evidence either way.
        assert_eq!(a.summary(one).unwrap().days_evidence, 0.0);
        a.observe(
            T0 + 50 * 3600,
            &obs([10, 0, 0, 2], [198, 51, 100, 1], 25, 0x10),
        );
        let s = a.summary(one).unwrap();
        // All 3 samples on one of 3 days: a daily sender does that with chance 3·(1/3)^3.
        assert_eq!(s.days, 1);
        assert!(
            (s.days_evidence - 2.0 * 3f64.log10()).abs() < 1e-9,
            "{}",
            s.days_evidence
        );
        let two = a.summary("10.0.0.2".parse().unwrap()).unwrap();
        assert_eq!((two.days, two.days_evidence), (2, 0.0));
    }

    #[test]
    fn server_like_and_known() {
        let mut cfg = ActivityConfig::default();
        cfg.known_servers.push("10.1.0.0/16".parse().unwrap());
        let mut a = Activity::new(cfg);
        // Every hour, four sessions among six partner networks: rare destinations repeated.
        for hr in 0..12 {
            for d in 0..4u8 {
                let dst = [198, ((hr * 4 + i64::from(d)) % 6) as u8, d, 1];
                let mut o = obs([10, 0, 0, 2], dst, 25, 0x10);
                o.src_port = 40_000 + (hr * 4 + i64::from(d)) as u16;
                a.observe(T0 + hr * 3600, &o);
                a.observe(T0 + hr * 3600, &obs([10, 1, 2, 3], dst, 25, 0x10));
            }
        }
        assert_eq!(
            a.summary("10.0.0.2".parse().unwrap()).unwrap().verdict,
            Verdict::ServerLike
        );
        let k = a.summary("10.1.2.3".parse().unwrap()).unwrap();
        assert_eq!((k.known, k.verdict), (true, Verdict::Known));
        assert_eq!(a.stats().known_hosts, 1);
        assert!(a.take_new_suspicious(i64::MAX).is_empty());
    }

    #[test]
    fn wilson_interval_is_honest_at_small_counts() {
        assert_eq!(wilson(0, 0, WILSON_Z), (0.0, 1.0));
        // 0 of 5: the share can still be up to ~43%.
        let (lo, hi) = wilson(0, 5, WILSON_Z);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.4345).abs() < 1e-3, "{hi}");
        // 10 of 100: about 5.5%–17.4%.
        let (lo, hi) = wilson(10, 100, WILSON_Z);
        assert!(
            (lo - 0.0552).abs() < 1e-3 && (hi - 0.1744).abs() < 1e-3,
            "{lo} {hi}"
        );
    }

    #[test]
    fn replies_daily_hours_and_repeats() {
        let mut a = Activity::new(ActivityConfig::default());
        // Two days, hours 9 and 10 each day, a session every sample to one of 2 partners.
        for day in 0..2i64 {
            for hr in [9, 10] {
                for k in 0..3u16 {
                    let mut o = obs([10, 0, 0, 7], [192, 0, (k % 2) as u8, 1], 25, 0x18);
                    o.src_port = 1000 + k + 10 * hr as u16 + 100 * day as u16;
                    a.observe(T0 + day * 86_400 + hr * 3600 + i64::from(k), &o);
                }
            }
        }
        // A reset and a reply to it; a reply to an untracked host is not counted.
        let mut r = obs([192, 0, 0, 1], [10, 0, 0, 7], 40000, 0x14);
        r.src_port = 25;
        assert!(!a.observe(T0, &r));
        r.tcp_flags = 0x18;
        a.observe(T0, &r);
        r.dst_ip = IpAddr::from([10, 0, 0, 8]);
        a.observe(T0, &r);
        assert_eq!(a.stats().reply_samples, 2);
        let s = a.summary("10.0.0.7".parse().unwrap()).unwrap();
        assert_eq!((s.reply_samples, s.reset_replies), (2, 1));
        assert_eq!((s.hours, s.daily_hours), (4, 2));
        assert_eq!((s.sessions, s.rare_sessions, s.rare_repeats), (12, 12, 10));
        assert_eq!(s.dest_evidence, -10.0 * RARE_REPEAT_WEIGHT);
        assert_eq!(s.recurring_share, 1.0);
        assert_eq!(s.daily_evidence, -RECURRING_WEIGHT);
        assert_eq!(s.verdict, Verdict::ServerLike);
    }

    #[test]
    fn snowshoe_network_pools_its_addresses() {
        let mut a = Activity::new(ActivityConfig::default());
        for host in 1..=SNOWSHOE_MIN_ADDRESSES as u8 {
            // Three SYNs each, to a new rare network every time: too few to judge alone.
            for k in 0..3u8 {
                a.observe(
                    T0 + i64::from(k) * 3600,
                    &obs([10, 5, 5, host], [203, host, k, 1], 25, 0x02),
                );
                // Servers of a business network: data to two partners, over and over.
                let mut o = obs([10, 6, 6, host], [198, 18, k % 2, 1], 25, 0x10);
                o.src_port = 1000 + u16::from(k);
                a.observe(T0 + i64::from(k) * 3600, &o);
            }
        }
        let s = a.summary("10.5.5.1".parse().unwrap()).unwrap();
        assert_eq!(s.net_addresses, SNOWSHOE_MIN_ADDRESSES);
        assert!(
            s.net_evidence >= SNOWSHOE_MIN_EVIDENCE,
            "{}",
            s.net_evidence
        );
        assert_eq!(s.verdict, Verdict::Snowshoe);
        let b = a.summary("10.6.6.1".parse().unwrap()).unwrap();
        assert_eq!(b.verdict, Verdict::TooFewSamples);
        assert!(b.net_evidence < 0.0);
        let alerts = a.take_new_suspicious(i64::MAX);
        assert_eq!(alerts.len(), SNOWSHOE_MIN_ADDRESSES as usize);
        assert!(alerts.iter().all(|s| s.verdict == Verdict::Snowshoe));
    }

    #[test]
    fn caps_bound_memory() {
        let cfg = ActivityConfig {
            max_hosts: 2,
            max_dests: 3,
            max_hours: 2,
            ..ActivityConfig::default()
        };
        let mut a = Activity::new(cfg);
        for i in 0..10u8 {
            a.observe(
                T0 + i64::from(i) * 3600,
                &obs([10, 0, 0, 1], [203, 0, i, 1], 25, 0),
            );
            a.observe(T0, &obs([10, 0, 1, i], [203, 0, 0, 1], 25, 0));
        }
        let s = a.summary("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            (s.dst_ips, s.dst_nets, s.dests_saturated, s.hours),
            (3, 3, true, 2)
        );
        assert_eq!(a.stats().hosts, 2);
        assert_eq!(a.stats().untracked_samples, 9);
    }

    #[test]
    fn label_table_counts() {
        let mut a = Activity::new(ActivityConfig::default());
        for i in 0..6u8 {
            let hr = if i < 3 { 0 } else { 5 };
            a.observe(
                T0 + hr * 3600 + i64::from(i),
                &obs([10, 9, 9, 9], [203, 0, i, 1], 25, 2),
            );
            a.observe(
                T0 + i64::from(i) * 3600,
                &obs([10, 9, 9, 8], [203, 1, 1, 1], 25, 0x10),
            );
        }
        a.label(["10.9.9.9".parse().unwrap(), "192.0.2.99".parse().unwrap()]);
        let t = a.label_table().unwrap();
        assert_eq!(
            (t.hosts, t.bad, t.flagged, t.flagged_bad, t.bad_unseen),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(t.by_hours[1].bucket, "2");
        assert_eq!(
            a.summary("10.9.9.8".parse().unwrap()).unwrap().verdict,
            Verdict::ServerLike
        );
        assert_eq!((t.by_hours[1].hosts, t.by_hours[1].bad), (1, 1));
        assert_eq!(t.by_hours[3].bucket, "5-8");
        assert_eq!((t.by_hours[3].hosts, t.by_hours[3].bad), (1, 0));
        assert_eq!(hour_bucket_names().last().unwrap(), "129+");
    }

    #[test]
    fn clayton_five_of_six_blocks_by_hours_of_the_day() {
        let mut cfg = ActivityConfig::default();
        cfg.known_servers.push("10.0.0.9/32".parse().unwrap());
        let mut a = Activity::new(cfg);
        let day = 24 * 3600;
        let midnight = T0 - T0.rem_euclid(day);
        let put = |a: &mut Activity, ip: [u8; 4], d: i64, hours: &[i64]| {
            for &hr in hours {
                let o = obs(ip, [198, 51, 100, 1], 25, 0x10);
                a.observe(midnight + d * day + hr * 3600, &o);
            }
        };
        let all_day: Vec<i64> = (0..24).collect();
        // A: day 0, one hour in each of five blocks: a 5-hour day.
        put(&mut a, [10, 0, 0, 1], 0, &[0, 4, 8, 12, 16]);
        // B: day 0, every hour: a 24-hour day; day 1, four blocks only: not counted.
        put(&mut a, [10, 0, 0, 2], 0, &all_day);
        put(&mut a, [10, 0, 0, 2], 1, &[1, 5, 9, 13]);
        // C (bad): day 0, hours 0-5 and 8, 12, 16, 20 (6 blocks, 10 hours); day 2, hours 2, 3,
        // 6, 10, 14, 18 (5 blocks, 6 hours).
        put(&mut a, [10, 0, 0, 3], 0, &[0, 1, 2, 3, 4, 5, 8, 12, 16, 20]);
        put(&mut a, [10, 0, 0, 3], 2, &[2, 3, 6, 10, 14, 18]);
        // D (bad): three blocks a day: never in the figure.
        put(&mut a, [10, 0, 0, 4], 0, &[0, 1, 4, 5, 8, 9]);
        // K: a known server, left out.
        put(&mut a, [10, 0, 0, 9], 0, &all_day);
        a.label(["10.0.0.3".parse().unwrap(), "10.0.0.4".parse().unwrap()]);
        let t = a.label_table().unwrap();
        let f = &t.five_of_six;
        assert_eq!(f.len(), 20);
        assert_eq!((f[0].bucket.as_str(), f[19].bucket.as_str()), ("5", "24"));
        let got: Vec<(&str, u64, u64)> = f
            .iter()
            .filter(|r| r.hosts > 0)
            .map(|r| (r.bucket.as_str(), r.hosts, r.bad))
            .collect();
        assert_eq!(got, [("5", 1, 0), ("6", 1, 1), ("10", 1, 1), ("24", 1, 0)]);
        assert_eq!(t.five_of_six_hosts, 3);
        assert_eq!((f[0].bad_share, f[1].bad_share), (0.0, 1.0));
    }
}
