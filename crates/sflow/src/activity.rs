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

use crate::observe::FlowObservation;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

/// IP protocol number of TCP.
const PROTO_TCP: u8 = 6;
/// TCP SYN flag.
const TCP_SYN: u16 = 0x02;
/// TCP ACK flag.
const TCP_ACK: u16 = 0x10;
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
/// Hours a host must be active in before its pattern is judged: one hour has no pattern.
pub const MIN_HOURS_ACTIVE: u64 = 2;
/// Default minimum samples before a host gets a verdict: with fewer the hour/block and
/// destination measures are noise.
pub const DEFAULT_MIN_SAMPLES: u64 = 5;
/// Default minimum distinct destination networks for a verdict (a customer relaying via
/// one smarthost has 1).
pub const DEFAULT_MIN_DEST_NETS: u64 = 3;
/// Default minimum destination variation (distinct networks per sample) for a verdict.
pub const DEFAULT_MIN_DEST_VARIATION: f64 = 0.5;
/// Default maximum fill ([`HostSummary::fill`]) for a verdict: above it the host is busy
/// in most hours of its blocks, the pattern of a server.
pub const DEFAULT_MAX_FILL: f64 = 0.6;

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
    /// Minimum samples for a verdict.
    pub min_samples: u64,
    /// Minimum distinct destination networks for a verdict.
    pub min_dest_nets: u64,
    /// Minimum destination variation (distinct networks / samples) for a verdict.
    pub min_dest_variation: f64,
    /// Maximum fill ([`HostSummary::fill`]) for a verdict.
    pub max_fill: f64,
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            smtp_ports: DEFAULT_SMTP_PORTS.to_vec(),
            known_servers: Vec::new(),
            max_hosts: DEFAULT_MAX_HOSTS,
            max_dests: DEFAULT_MAX_DESTS,
            max_hours: DEFAULT_MAX_HOURS,
            min_samples: DEFAULT_MIN_SAMPLES,
            min_dest_nets: DEFAULT_MIN_DEST_NETS,
            min_dest_variation: DEFAULT_MIN_DEST_VARIATION,
            max_fill: DEFAULT_MAX_FILL,
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
    dsts: HashSet<IpAddr>,
    dst_nets: HashSet<u128>,
    dests_saturated: bool,
    hours: HashSet<i64>,
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
    /// 0..1 for flagged hosts, else 0.
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
    /// Active in a single hour: no activity pattern to judge.
    SingleHour,
    /// Few destination networks: a customer relaying through one smarthost.
    FewDestinations,
    /// Many destinations, busy nearly every hour: server-like.
    ServerLike,
    /// Many destinations in bursts: the spam-source pattern.
    Suspicious,
}

impl Verdict {
    /// The name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Known => "known",
            Verdict::TooFewSamples => "too-few-samples",
            Verdict::SingleHour => "single-hour",
            Verdict::FewDestinations => "few-destinations",
            Verdict::ServerLike => "server-like",
            Verdict::Suspicious => "suspicious",
        }
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
    hosts: HashMap<IpAddr, Host>,
    stats: ActivityStats,
    labelled: bool,
    bad_labels: HashSet<IpAddr>,
}

impl Activity {
    /// A new, empty analysis.
    pub fn new(cfg: ActivityConfig) -> Activity {
        Activity {
            cfg,
            hosts: HashMap::new(),
            stats: ActivityStats::default(),
            labelled: false,
            bad_labels: HashSet::new(),
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
        if o.protocol != PROTO_TCP || !self.cfg.smtp_ports.contains(&o.dst_port) {
            return false;
        }
        self.stats.smtp_samples += 1;
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
            h.dst_nets.insert(key);
        } else if !h.dst_nets.contains(&key) {
            h.dests_saturated = true;
        }
        let hour = ts.div_euclid(HOUR_SECS);
        if h.hours.len() < cfg.max_hours {
            h.hours.insert(hour);
        } else if !h.hours.contains(&hour) {
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
        let block_set: HashSet<i64> = h
            .hours
            .iter()
            .map(|x| x.div_euclid(HOURS_PER_BLOCK))
            .collect();
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
        let c = &self.cfg;
        let verdict = if h.known {
            Verdict::Known
        } else if h.samples < c.min_samples {
            Verdict::TooFewSamples
        } else if hours < MIN_HOURS_ACTIVE {
            Verdict::SingleHour
        } else if dst_nets < c.min_dest_nets || dest_variation < c.min_dest_variation {
            Verdict::FewDestinations
        } else if fill > c.max_fill {
            Verdict::ServerLike
        } else {
            Verdict::Suspicious
        };
        // Score: half from how varied the destinations are, half from how far the fill is
        // below a server's (1.0), scaled so that the thresholds give 0.5.
        let score = if verdict == Verdict::Suspicious {
            let span = (1.0 - c.min_dest_variation).max(f64::EPSILON);
            let dv = ((dest_variation - c.min_dest_variation) / span).clamp(0.0, 1.0);
            let fspan = c.max_fill.max(f64::EPSILON);
            let fv = ((c.max_fill - fill) / fspan).clamp(0.0, 1.0);
            0.5 + 0.25 * dv + 0.25 * fv
        } else {
            0.0
        };
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
            first: h.first,
            last: h.last,
            known: h.known,
            bad: h.bad,
            verdict,
            score,
        }
    }

    /// Every tracked host, most SMTP samples first (ties by IP).
    pub fn summaries(&self) -> Vec<HostSummary> {
        let mut v: Vec<HostSummary> = self
            .hosts
            .iter()
            .map(|(ip, h)| self.summarize(*ip, h))
            .collect();
        v.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.ip.cmp(&b.ip)));
        v
    }

    /// The summary of one IP, if tracked.
    pub fn summary(&self, ip: IpAddr) -> Option<HostSummary> {
        self.hosts.get(&ip).map(|h| self.summarize(ip, h))
    }

    /// Hosts flagged suspicious that were not returned by an earlier call: for streaming
    /// use (call it when event time passes an hour boundary). Sorted by score, then IP.
    pub fn take_new_suspicious(&mut self) -> Vec<HostSummary> {
        let mut out: Vec<HostSummary> = self
            .hosts
            .iter()
            .filter(|(_, h)| !h.alerted && !h.known && h.samples >= self.cfg.min_samples)
            .map(|(ip, h)| self.summarize(*ip, h))
            .filter(|s| s.verdict == Verdict::Suspicious)
            .collect();
        for s in &out {
            if let Some(h) = self.hosts.get_mut(&s.ip) {
                h.alerted = true;
            }
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.ip.cmp(&b.ip)));
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
        for s in self.summaries() {
            if matches!(
                s.verdict,
                Verdict::Known | Verdict::TooFewSamples | Verdict::SingleHour
            ) {
                continue;
            }
            let is_bad = s.bad == Some(true);
            let is_flagged = s.verdict == Verdict::Suspicious;
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
            hosts,
            bad,
            flagged_bad,
            flagged,
            bad_unseen,
        })
    }
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
        assert_eq!(s.verdict, Verdict::FewDestinations);
        let b = a.summary("10.9.9.9".parse().unwrap()).unwrap();
        // Hours 0 and 5: blocks 0 (hours 0-3 observed) and 1 (hours 4-5 observed).
        assert_eq!(
            (b.samples, b.hours, b.blocks, b.hours_per_block),
            (6, 2, 2, 1.0)
        );
        assert!((b.fill - 2.0 / 6.0).abs() < 1e-9);
        assert_eq!((b.syn_samples, b.est_syns), (6, 12000));
        assert_eq!(b.dest_variation, 1.0);
        assert_eq!(b.verdict, Verdict::Suspicious);
        assert!((b.score - (0.75 + 0.25 * (0.6 - 2.0 / 6.0) / 0.6)).abs() < 1e-9);
        assert_eq!(a.stats().smtp_samples, 22);
        assert_eq!(a.stats().observations, 23);
        // Alerted once only.
        assert_eq!(a.take_new_suspicious().len(), 1);
        assert!(a.take_new_suspicious().is_empty());
    }

    #[test]
    fn server_like_and_known() {
        let mut cfg = ActivityConfig::default();
        cfg.known_servers.push("10.1.0.0/16".parse().unwrap());
        let mut a = Activity::new(cfg);
        for hr in 0..12 {
            for d in 0..4u8 {
                let dst = [198, (hr as u8), d, 1];
                a.observe(T0 + hr * 3600, &obs([10, 0, 0, 2], dst, 25, 0x10));
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
        assert!(a.take_new_suspicious().is_empty());
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
                &obs([10, 9, 9, 8], [203, 1, 1, 1], 25, 2),
            );
        }
        a.label(["10.9.9.9".parse().unwrap(), "192.0.2.99".parse().unwrap()]);
        let t = a.label_table().unwrap();
        assert_eq!(
            (t.hosts, t.bad, t.flagged, t.flagged_bad, t.bad_unseen),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(t.by_hours[1].bucket, "2");
        assert_eq!((t.by_hours[1].hosts, t.by_hours[1].bad), (1, 1));
        assert_eq!(t.by_hours[3].bucket, "5-8");
        assert_eq!((t.by_hours[3].hosts, t.by_hours[3].bad), (1, 0));
        assert_eq!(hour_bucket_names().last().unwrap(), "129+");
    }
}
