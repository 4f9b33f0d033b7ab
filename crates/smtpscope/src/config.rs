//! smtpscope.toml: the one configuration file. Every key is optional; a misspelt key or a bad
//! value is an error naming the key and the line.

use std::path::Path;

use anyhow::{Context, Result};
use detect::config::{Checker, Invalids, Validate, MAX_DURATION, MAX_WINDOW};
use serde::{Deserialize, Serialize};

use crate::serve::{ContainmentConfig, ServeConfig, ServeLimits};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Who is "us".
    pub network: detect::config::Network,
    /// Detector settings.
    pub detect: DetectTables,
    /// Log input.
    pub input: Input,
    /// IP -> country / AS data.
    pub geo: Geo,
    /// The real-time service.
    pub serve: crate::serve::ServeConfig,
    /// Who sends abuse reports (`analyze --abuse-reports`).
    pub abuse: crate::abuse::Reporter,
    /// Running `serve` as a node of a cluster on NATS JetStream.
    pub cluster: crate::cluster::config::ClusterConfig,
}

/// The `[detect.*]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectTables {
    /// `[detect.delivery_failures]`
    pub delivery_failures: detect::config::DeliveryFailures,
    /// `[detect.mailing_lists]`
    pub mailing_lists: detect::config::MailingLists,
    /// `[detect.rejection_daemons]`
    pub rejection_daemons: detect::config::RejectionDaemons,
    /// `[detect.helo]`
    pub helo: detect::config::Helo,
    /// `[detect.hijack]`
    pub hijack: detect::config::Hijack,
    /// `[detect.campaign]`
    pub campaign: detect::config::Campaign,
    /// `[detect.bruteforce]`
    pub bruteforce: detect::config::Bruteforce,
    /// `[detect.incoming]`
    pub incoming: detect::config::Incoming,
    /// `[detect.limits]`
    pub limits: detect::config::Limits,
}

/// `[geo]`: where IP -> country and AS number come from. Without files the built-in database
/// (ip-location-db, CC BY 4.0) is used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Geo {
    /// MaxMind GeoLite2/GeoIP2 Country file, or an ip-location-db country MMDB.
    pub country_mmdb: Option<std::path::PathBuf>,
    /// MaxMind GeoLite2/GeoIP2 ASN file.
    pub asn_mmdb: Option<std::path::PathBuf>,
    /// CSV range files `first_ip,last_ip,asn,organisation` (plain or .zst).
    pub asn_csv: Vec<std::path::PathBuf>,
    /// Overrides: `cidr,country,asn,label` lines.
    pub overrides: Option<std::path::PathBuf>,
}

/// `[input]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Input {
    /// Year of year-less syslog stamps (default: from each file's modification time).
    pub year: Option<i64>,
    /// Zone of zone-less stamps, e.g. "Europe/Berlin" (default: the system's).
    pub tz: Option<String>,
}

impl FileConfig {
    /// Parse TOML text and check every value; `name` is used in errors.
    pub fn parse(text: &str, name: &str) -> Result<FileConfig> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("{name}: invalid configuration:\n{e}"))?;
        Ok(cfg)
    }

    /// Check every value (what [`FileConfig::parse`] and `config --check` do).
    pub fn validate(&self) -> Result<(), Invalids> {
        self.check("")
    }

    /// Load a file.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| {
                format!(
                    "cannot read config {} (check the path given to --config; `smtpscope config --default` prints a file to start from)",
                    path.display()
                )
            })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The geo database these settings name (the built-in one by default).
    pub fn geo_db(&self) -> Result<detect::GeoRef> {
        let g = &self.geo;
        let base: Option<geo::GeoDb> =
            if g.country_mmdb.is_some() || g.asn_mmdb.is_some() || !g.asn_csv.is_empty() {
                let mut b = geo::GeoDbBuilder::new();
                if let Some(p) = &g.country_mmdb {
                    b.country_mmdb_file(p).map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                if let Some(p) = &g.asn_mmdb {
                    b.asn_mmdb_file(p).map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                for p in &g.asn_csv {
                    b.asn_csv_file(p).map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                Some(b.build())
            } else {
                None
            };
        let Some(ov) = &g.overrides else {
            return Ok(match base {
                Some(db) => detect::GeoRef::Owned(std::sync::Arc::new(db)),
                None => detect::GeoRef::Builtin,
            });
        };
        let o = geo::Overrides::load(ov).map_err(|e| anyhow::anyhow!("{e}"))?;
        let db = base.unwrap_or_else(|| geo::GeoDb::builtin().clone());
        Ok(detect::GeoRef::Owned(std::sync::Arc::new(
            db.with_overrides(o),
        )))
    }

    /// The detector configuration.
    pub fn detect_config(&self) -> detect::Config {
        detect::Config {
            network: self.network.clone(),
            delivery_failures: self.detect.delivery_failures.clone(),
            mailing_lists: self.detect.mailing_lists.clone(),
            rejection_daemons: self.detect.rejection_daemons.clone(),
            helo: self.detect.helo.clone(),
            hijack: self.detect.hijack.clone(),
            campaign: self.detect.campaign.clone(),
            bruteforce: self.detect.bruteforce.clone(),
            incoming: self.detect.incoming.clone(),
            limits: self.detect.limits.clone(),
        }
    }
}

/// The zone of zone-less stamps named in the configuration or on the command line: the one
/// parser of zone names (the system's time zone database, e.g. `Europe/Berlin`, `UTC`).
/// `utc` in any case is UTC.
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok(jiff::tz::TimeZone::UTC);
    }
    jiff::tz::TimeZone::get(name).with_context(|| {
        format!("unknown time zone {name:?} (use a name of the system's zone database, e.g. Europe/Berlin, or UTC)")
    })
}

/// Largest `[serve.limits] queue`: the engine's queue is allocated as events arrive, so the
/// bound is about time, not memory at start: 16 Mi events is minutes of the busiest source we
/// know of waiting behind the engine, past which failing open sooner is better. Tokio's channel
/// panics at start on a capacity near `usize::MAX >> 3` (issue 10). Our own idea.
pub const MAX_QUEUE: u64 = 1 << 24;

/// Largest `[serve.limits] connections`: 1 Mi, Linux's default `fs.nr_open`, the most file
/// descriptors one process can hold; tokio's semaphore panics at start past `usize::MAX >> 3`.
pub const MAX_CONNECTIONS: u64 = 1 << 20;

/// Largest rotation size of the alerts file, 1 TiB in MiB (the size in bytes stays far from
/// overflowing `u64`). Our own idea.
pub const MAX_ALERTS_MIB: u64 = 1 << 20;

impl Validate for FileConfig {
    fn validate(&self, c: &mut Checker) {
        c.section("network", &self.network);
        c.section("detect", &self.detect);
        c.section("input", &self.input);
        c.section("serve", &self.serve);
        c.section("cluster", &self.cluster);
    }
}

impl Validate for DetectTables {
    fn validate(&self, c: &mut Checker) {
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

/// A zone name that the one parser ([`time_zone`]) refuses.
fn check_tz(c: &mut Checker, key: &str, tz: &Option<String>) {
    if let Some(n) = tz {
        if time_zone(n).is_err() {
            c.invalid(
                key,
                format!("{n:?}"),
                "a zone of the system's time zone database, e.g. \"Europe/Berlin\"",
            );
        }
    }
}

impl Validate for Input {
    fn validate(&self, c: &mut Checker) {
        if let Some(y) = self.year {
            // Syslog stamps name no year before Unix time began; past 9999 RFC 3339 has no form.
            if !(1970..=9999).contains(&y) {
                c.invalid("year", y, "a year in 1970..=9999");
            }
        }
        check_tz(c, "tz", &self.tz);
    }
}

impl Validate for ServeConfig {
    fn validate(&self, c: &mut Checker) {
        c.count("alerts_max_mib", self.alerts_max_mib, 1, MAX_ALERTS_MIB);
        c.count("alerts_keep", u64::from(self.alerts_keep), 0, 1000);
        c.duration("retention", self.retention, 3600, MAX_DURATION);
        c.duration("baseline_interval", self.baseline_interval, 1, MAX_WINDOW);
        c.duration(
            "checkpoint_interval",
            self.checkpoint_interval,
            1,
            crate::serve::MAX_CHECKPOINT_SECS,
        );
        check_tz(c, "tz", &self.tz);
        if let Some(t) = &self.sflow_clock_start {
            if self.sflow_clock != crate::serve::SflowClock::Agent {
                c.invalid(
                    "sflow_clock_start",
                    format!("{t:?}"),
                    "only with sflow_clock = \"agent\"",
                );
            } else if t.parse::<jiff::Timestamp>().is_err() {
                c.invalid(
                    "sflow_clock_start",
                    format!("{t:?}"),
                    "an RFC 3339 time, e.g. \"2026-03-02T00:00:02.511012Z\"",
                );
            }
        }
        let mode = self.policy_socket_mode.0;
        // Postfix connects as its own user or group; others that may write can forge requests
        // (issue 10: a 0666 socket let anyone on the host put an account on HOLD), and an owner
        // without read and write cannot serve the socket it made.
        if mode & 0o002 != 0 || mode & 0o600 != 0o600 {
            c.invalid(
                "policy_socket_mode",
                format!("\"{:04o}\"", mode),
                "octal permissions with owner read and write and no write for others, e.g. \"0660\"",
            );
        }
        if let Some(g) = &self.policy_socket_group {
            if g.trim().is_empty() || g.contains(':') {
                c.invalid("policy_socket_group", format!("{g:?}"), "a group name");
            }
        }
        c.section("containment", &self.containment);
        c.section("limits", &self.limits);
    }
}

impl Validate for ContainmentConfig {
    fn validate(&self, c: &mut Checker) {
        c.number("min_score", self.min_score, 0.0, 1.0);
        // 0s means "until released by hand"; a longer one must still end in representable time.
        c.duration("duration", self.duration, 0, MAX_DURATION);
        c.duration("rearm", self.rearm, 0, MAX_DURATION);
        let cmd = &self.postsuper_command;
        // Run without a shell: a program, then its arguments, none empty or with control
        // characters; the program is a path or a name on PATH, never an option.
        let bad = cmd.is_empty()
            || cmd.len() > crate::serve::MAX_COMMAND_WORDS
            || cmd
                .iter()
                .any(|w| w.is_empty() || w.len() > 4096 || w.chars().any(char::is_control))
            || cmd[0].starts_with('-');
        if bad {
            c.invalid(
                "postsuper_command",
                format!("{cmd:?}"),
                "a program and its arguments, e.g. [\"sudo\", \"-n\", \"/usr/sbin/postsuper\"]",
            );
        }
    }
}

impl Validate for ServeLimits {
    fn validate(&self, c: &mut Checker) {
        c.size("queue", self.queue, 1, MAX_QUEUE);
        c.size("connections", self.connections, 1, MAX_CONNECTIONS);
        c.duration("policy_idle", self.policy_idle, 1, 86_400);
        c.duration("request_timeout", self.request_timeout, 1, 3600);
        // rsyslog reconnects after a close; idle longer than a window only holds a slot.
        c.duration("syslog_idle", self.syslog_idle, 1, MAX_WINDOW);
    }
}

/// The default configuration, every key shown and explained (`smtpscope config --default`).
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_is_the_default() {
        let c = FileConfig::parse(DEFAULT_TOML, "default").unwrap();
        assert_eq!(c, FileConfig::default());
    }

    #[test]
    fn sflow_clock_start_needs_the_agent_clock_and_a_time() {
        let ok =
            "[serve]\nsflow_clock = \"agent\"\nsflow_clock_start = \"2026-03-02T00:00:02.5Z\"\n";
        FileConfig::parse(ok, "x.toml").unwrap();
        for bad in [
            "[serve]\nsflow_clock_start = \"2026-03-02T00:00:02Z\"\n",
            "[serve]\nsflow_clock = \"agent\"\nsflow_clock_start = \"yesterday\"\n",
        ] {
            let e = FileConfig::parse(bad, "x.toml").unwrap_err().to_string();
            assert!(e.contains("sflow_clock_start"), "{e}");
        }
        assert!(FileConfig::parse("[serve]\nsflow_clock = \"uptime\"\n", "x.toml").is_err());
    }

    #[test]
    fn errors_name_key_and_line() {
        let e = FileConfig::parse("[detect.delivery_failures]\nthreshhold = 5\n", "x.toml")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("threshhold"), "{s}");
        assert!(s.contains("line 2"), "{s}");
        let e = FileConfig::parse(
            "[detect.delivery_failures]\nwindow = \"forever\"\n",
            "x.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let e = FileConfig::parse("[network]\nown_networks = [\"10.0.0.0/33\"]\n", "x.toml")
            .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        // Peer networks are checked as they are read: the line and the value are named.
        let e = FileConfig::parse("[serve]\nsyslog_peers = [\"10.0.0.0/33\"]\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("syslog_peers") && e.contains("10.0.0.0/33"),
            "{e}"
        );
    }

    /// Every bad value of issue 10 is refused when the file is loaded, by key, value and range.
    #[test]
    fn bad_values_are_refused_by_name() {
        for (text, want) in [
            (
                "[detect.hijack]\nburst_per_minute = 0\n",
                "detect.hijack.burst_per_minute = 0: must be an integer in 1..=1000000000",
            ),
            (
                "[detect.hijack]\nmin_score = nan\n",
                "detect.hijack.min_score = NaN: must be a finite number in 0..=1",
            ),
            (
                "[detect.helo]\nmin_score = -0.5\n",
                "detect.helo.min_score = -0.5: must be a finite number in 0..=1",
            ),
            (
                "[serve.containment]\nmin_score = -1.0\n",
                "serve.containment.min_score = -1: must be a finite number in 0..=1",
            ),
            (
                "[serve.containment]\npostsuper_command = []\n",
                "serve.containment.postsuper_command = []: must be a program and its arguments",
            ),
            (
                "[serve.containment]\npostsuper_command = [\"-H\"]\n",
                "serve.containment.postsuper_command = [\"-H\"]: must be a program",
            ),
            (
                "[serve.containment]\npostsuper_command = [\"sudo\", \"\"]\n",
                "serve.containment.postsuper_command = [\"sudo\", \"\"]: must be a program",
            ),
            (
                "[detect.mailing_lists]\nmax_failure_ratio = inf\n",
                "detect.mailing_lists.max_failure_ratio = inf: must be a finite number in 0..=1",
            ),
            (
                "[detect.limits]\nmax_entities = 0\n",
                "detect.limits.max_entities = 0: must be an integer in 1..=100000000",
            ),
            (
                "[serve.limits]\nqueue = 9223372036854775807\n",
                "serve.limits.queue = 9223372036854775807: must be an integer in 1..=16777216",
            ),
            (
                "[serve.limits]\nconnections = 4611686018427387904\n",
                "serve.limits.connections = 4611686018427387904: must be an integer in 1..=1048576",
            ),
            (
                "[serve.limits]\nconnections = 0\n",
                "serve.limits.connections = 0: must be an integer in 1..=1048576",
            ),
            (
                "[serve.containment]\nduration = \"100000000000d\"\n",
                "serve.containment.duration = \"100000000000d\": must be a duration from 0s to 36500d",
            ),
            (
                "[detect.bruteforce]\nwindow = \"0s\"\n",
                "detect.bruteforce.window = \"0s\": must be a duration from 1s to 31d",
            ),
            (
                "[serve.limits]\nsyslog_idle = \"0s\"\n",
                "serve.limits.syslog_idle = \"0s\": must be a duration from 1s to 31d",
            ),
            (
                "[serve]\npolicy_socket_mode = \"0666\"\n",
                "serve.policy_socket_mode = \"0666\": must be octal permissions with owner read and write and no write for others",
            ),
            (
                "[serve]\npolicy_socket_mode = \"0060\"\n",
                "serve.policy_socket_mode = \"0060\": must be octal permissions",
            ),
            (
                "[serve]\npolicy_socket_group = \"\"\n",
                "serve.policy_socket_group = \"\": must be a group name",
            ),
            (
                "[detect.delivery_failures]\nmin_failure_share = 2.0\n",
                "detect.delivery_failures.min_failure_share = 2: must be a finite number in 0..=1",
            ),
            (
                "[detect.mailing_lists]\nmultiple_min_fanout = -1.0\n",
                "detect.mailing_lists.multiple_min_fanout = -1: must be a finite number in 0..=1000000000",
            ),
            (
                "[serve]\ncheckpoint_interval = \"0s\"\n",
                "serve.checkpoint_interval = \"0s\": must be a duration from 1s to 1d",
            ),
            (
                "[serve]\ncheckpoint_interval = \"2d\"\n",
                "serve.checkpoint_interval = \"2d\": must be a duration from 1s to 1d",
            ),
            (
                "[input]\ntz = \"Mars/Olympus\"\n",
                "input.tz = \"Mars/Olympus\": must be a zone of the system's time zone database",
            ),
        ] {
            let e = FileConfig::parse(text, "x.toml").unwrap_err().to_string();
            assert!(e.starts_with("x.toml: invalid configuration:\n"), "{e}");
            assert!(e.contains(want), "{text}: {e}");
        }
        // All of them at once: one line each.
        let all = "[detect.hijack]\nburst_per_minute = 0\nmin_score = nan\n[detect.limits]\nmax_entities = 0\n";
        let e = FileConfig::parse(all, "x.toml").unwrap_err().to_string();
        assert_eq!(e.lines().count(), 4, "{e}");
    }

    /// A duration that overflows while parsing is refused there, naming the key.
    #[test]
    fn overflowing_duration_is_refused() {
        let e = FileConfig::parse(
            "[serve.containment]\nduration = \"106751991167301d\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("invalid duration") && e.contains("duration"),
            "{e}"
        );
    }

    #[test]
    fn one_time_zone_parser() {
        assert_eq!(time_zone("UTC").unwrap(), jiff::tz::TimeZone::UTC);
        assert_eq!(time_zone("utc").unwrap(), jiff::tz::TimeZone::UTC);
        assert!(time_zone("Europe/Berlin").is_ok());
        assert!(time_zone("Mars/Olympus").is_err());
    }
}
