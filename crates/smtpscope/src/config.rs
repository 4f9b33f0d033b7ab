//! smtpscope.toml: the one configuration file. Every key is optional; a misspelt key or a bad
//! value is an error naming the key and the line.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

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
    /// Parse TOML text; `name` is used in errors.
    pub fn parse(text: &str, name: &str) -> Result<FileConfig> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))
    }

    /// Load a file.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
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
                None => detect::GeoRef::Builtin(geo::GeoDb::builtin()),
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
            limits: self.detect.limits.clone(),
        }
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
    }
}
