//! `kinsight logs` (not implemented yet; see the open issues).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct LogsArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: LogsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`kinsight logs` is not implemented yet")
}
