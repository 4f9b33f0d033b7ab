//! `smtpscope serve`: the real-time service (being written).

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// `[serve]` table of smtpscope.toml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {}

/// Command-line arguments of `serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Configuration file (smtpscope.toml).
    #[arg(long, short)]
    pub config: Option<std::path::PathBuf>,
}

/// Run the service until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> Result<()> {
    let _ = args;
    anyhow::bail!("serve is not built yet")
}
