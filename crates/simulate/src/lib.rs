//! # simulate
//!
//! A simulator of an ISP's outgoing mail traffic with known, labelled abuse, and the evaluator
//! that scores detector alerts against those labels.
//!
//! The vantage point is the ISP's smarthost: customers submit with SMTP AUTH on port 587,
//! customer lines inside the ISP's networks relay without auth on port 25, and the smarthost
//! delivers to the internet. [`run`] writes `mail.log` (Postfix or Exim format, time-ordered,
//! sessions interleaved), `labels.jsonl` (one line per abusive entity), `timeline.jsonl` (accept
//! times per label) and `summary.json`. Every population and parameter is described, with its
//! source, in `docs/SIMULATION.md`.
//!
//! Generation is streaming: the simulated time is cut into slices of [`SLICE_SECS`]; every
//! population emits the sessions that start in the slice, each session is rendered into timed
//! lines in a heap, and the lines older than the slice's end are written out. Memory holds one
//! slice plus the lines of messages still in flight (deferred retries), never a whole day. All
//! randomness comes from [`rng`], seeded from the configured seed: the same configuration gives
//! the same bytes.
#![deny(missing_docs)]

mod abuse;
pub mod addr;
mod benign;
pub mod evaluate;
pub mod exchange;
mod incoming;
pub mod labels;
pub mod params;
mod plan;
mod render;
pub mod rng;
mod sim;
mod world;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use addr::{AddressSource, FakeSource};
pub use labels::{AbuseKind, Entity, Label, PopulationEntry, Shape, TimelineEntry};

/// Length of one generation slice in seconds.
pub const SLICE_SECS: i64 = 600;

/// Which MTA's log format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Postfix 3.x through syslog (with Dovecot lines for POP/IMAP).
    Postfix,
    /// Exim 4.97+ main log.
    Exim,
}

/// A calendar date (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u32,
    /// Day 1–31.
    pub day: u32,
}

impl Date {
    /// Parse `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut it = s.trim().splitn(3, '-');
        let year: i32 = it.next()?.parse().ok()?;
        let month: u32 = it.next()?.parse().ok()?;
        let day: u32 = it.next()?.parse().ok()?;
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || !(1970..=9999).contains(&year)
        {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// Seconds since the epoch of this date's midnight UTC.
    pub fn epoch_secs(self) -> i64 {
        maillog::time::days_from_civil(i64::from(self.year), self.month, self.day) * 86_400
    }
}

/// Everything the simulator can be told. `SimConfig::default()` is the documented baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Ordinary user accounts.
    pub users: u32,
    /// Simulated days.
    pub days: u32,
    /// PRNG seed.
    pub seed: u64,
    /// Output format.
    pub format: LogFormat,
    /// First simulated day (midnight UTC).
    pub start: Date,
    /// The smarthost's name in the log.
    pub hostname: String,
    /// The ISP's own mail domains (most users live here).
    pub isp_domains: Vec<String>,
    /// The ISP's country (ISO alpha-2): home lines, carriers and workplaces are here.
    pub home_country: String,
    /// Share of accounts at hosted customer domains instead of the ISP domains.
    pub hosted_share: f64,
    /// Share of accounts that send (almost) nothing.
    pub inactive_share: f64,
    /// Median messages per day of an active account (log-normal).
    pub msgs_per_active_day: f64,
    /// Log-normal shape of the per-account daily rate.
    pub rate_sigma: f64,
    /// Share of recipient addresses mistyped (user unknown).
    pub typo_rate: f64,
    /// Share of recipient domains mistyped (domain not found).
    pub domain_typo_rate: f64,
    /// Share of deliveries greylisted or deferred once.
    pub greylist_rate: f64,
    /// Share of mail to the ISP's own domains (delivered by LMTP).
    pub local_rcpt_share: f64,
    /// Mean days between changes of a home line's dynamic IP (uniform 1..=2×mean).
    pub home_ip_days: f64,
    /// Users behind one carrier-grade-NAT address (mobile).
    pub users_per_cgnat_ip: u32,
    /// Share of accounts that also submit from a workplace NAT.
    pub worker_share: f64,
    /// Probability per account and day of starting a trip abroad.
    pub travel_per_day: f64,
    /// Share of accounts that use a commercial VPN sometimes.
    pub vpn_share: f64,
    /// Share of accounts whose home machine relays without auth on port 25.
    pub port25_share: f64,
    /// Dovecot IMAP logins per account and day (Postfix format only; 0 disables).
    pub imap_logins_per_day: f64,
    /// Mailing lists per 10,000 accounts.
    pub lists_per_10k: f64,
    /// Weekly newsletters per 10,000 accounts.
    pub newsletters_per_10k: f64,
    /// Small businesses (several sender domains) per 10,000 accounts.
    pub businesses_per_10k: f64,
    /// Forwarding servers on customer lines per 10,000 accounts.
    pub forwarders_per_10k: f64,
    /// Autoresponders per 10,000 accounts.
    pub autoresponders_per_10k: f64,
    /// Mean hijacked accounts per ordinary day.
    pub hijacks_per_day: f64,
    /// Probability that a day is a heavy day.
    pub heavy_day_prob: f64,
    /// Multiplier of the hijack rate on heavy days.
    pub heavy_day_factor: f64,
    /// Share of hijacks with the burst shape.
    pub burst_share: f64,
    /// Share of hijacks that come as a group of accounts of one domain.
    pub group_share: f64,
    /// Share of hijacks preceded by password guessing.
    pub guessing_share: f64,
    /// Mean infected customer machines starting per day.
    pub infected_per_day: f64,
    /// Mean exploited web sites (on the shared hosting servers) starting per day.
    pub exploited_sites_per_day: f64,
    /// Slow-and-low abusers over the whole run.
    pub slow_and_low: u32,
    /// Mean minutes between two slow-and-low messages.
    pub slow_mean_minutes: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            users: 20_000,
            days: 3,
            seed: 1,
            format: LogFormat::Postfix,
            start: Date {
                year: 2026,
                month: 11,
                day: 16,
            },
            hostname: "smtp1".into(),
            isp_domains: vec![
                "example-isp.de".into(),
                "example-online.de".into(),
                "example-mail.de".into(),
            ],
            home_country: "DE".into(),
            hosted_share: 0.15,
            inactive_share: 0.3,
            msgs_per_active_day: 3.0,
            rate_sigma: 0.9,
            typo_rate: 0.02,
            domain_typo_rate: 0.004,
            greylist_rate: 0.02,
            local_rcpt_share: 0.15,
            home_ip_days: 4.0,
            users_per_cgnat_ip: 60,
            worker_share: 0.35,
            travel_per_day: 0.01,
            vpn_share: 0.05,
            port25_share: 0.08,
            imap_logins_per_day: 2.0,
            lists_per_10k: 2.5,
            newsletters_per_10k: 2.0,
            businesses_per_10k: 10.0,
            forwarders_per_10k: 5.0,
            autoresponders_per_10k: 10.0,
            hijacks_per_day: 3.0,
            heavy_day_prob: 0.1,
            heavy_day_factor: 8.0,
            burst_share: 0.1,
            group_share: 0.15,
            guessing_share: 0.3,
            infected_per_day: 1.0,
            exploited_sites_per_day: 1.0,
            slow_and_low: 1,
            slow_mean_minutes: 12.0,
        }
    }
}

/// What a run produced (also written as `summary.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Seed used.
    pub seed: u64,
    /// Format written.
    pub format: String,
    /// Simulated days.
    pub days: u32,
    /// First instant, RFC 3339.
    pub start: String,
    /// Ordinary accounts.
    pub users: u64,
    /// Accounts and clients that are not labelled (for false positives per 10k accounts).
    pub legit_accounts: u64,
    /// Entities per population.
    pub populations: std::collections::BTreeMap<String, u64>,
    /// Labels per abuse kind.
    pub labels: std::collections::BTreeMap<String, u64>,
    /// Messages accepted in total.
    pub messages: u64,
    /// Messages accepted from labelled entities.
    pub abusive_messages: u64,
    /// Lines written to `mail.log`.
    pub lines: u64,
    /// Bytes written to `mail.log`.
    pub bytes: u64,
}

/// Why a run or a load failed.
#[derive(Debug)]
pub enum SimError {
    /// Reading or writing a file.
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file's content is not what it should be.
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
        /// What was wrong.
        reason: String,
    },
    /// The configuration cannot be simulated.
    Config(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Io { path, source } => write!(f, "{path}: {source}"),
            SimError::Parse { path, line, reason } => write!(f, "{path}:{line}: {reason}"),
            SimError::Config(s) => write!(f, "bad simulation settings: {s}"),
        }
    }
}

impl std::error::Error for SimError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SimError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Simulate with the given address source (see [`run`] for the files written).
pub fn run_with(
    cfg: &SimConfig,
    out_dir: &Path,
    src: &dyn AddressSource,
) -> Result<Summary, SimError> {
    sim::run(cfg, out_dir, src)
}

/// Simulate with the built-in geo database, so every source address geolocates to the
/// country the simulation meant. Writes `mail.log`, `labels.jsonl`, `timeline.jsonl` and
/// `summary.json` into `out_dir`, and `population.jsonl` (the profile of every benign entity
/// that is not an ordinary user).
pub fn run(cfg: &SimConfig, out_dir: &Path) -> Result<Summary, SimError> {
    sim::run(cfg, out_dir, geo::GeoDb::builtin())
}

/// Read `summary.json`.
pub fn load_summary(path: &Path) -> Result<Summary, SimError> {
    let p = path.display().to_string();
    let s = std::fs::read_to_string(path).map_err(|e| SimError::Io {
        path: p.clone(),
        source: e,
    })?;
    serde_json::from_str(&s).map_err(|e| SimError::Parse {
        path: p,
        line: e.line() as u64,
        reason: e.to_string(),
    })
}

pub use evaluate::{load_alerts, load_labels, load_population, load_timeline};
