//! `smtpscope sflow`: decode and analyse sFlow (being written).

use anyhow::Result;

/// `sflow` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct SflowArgs {
    /// Files.
    pub files: Vec<std::path::PathBuf>,
}

/// Run.
pub fn run(args: SflowArgs) -> Result<()> {
    let _ = args;
    anyhow::bail!("sflow is not built yet")
}
