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
