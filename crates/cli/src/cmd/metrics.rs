//! `kinsight metrics` (not implemented yet; see the open issues).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct MetricsArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: MetricsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`kinsight metrics` is not implemented yet")
}
