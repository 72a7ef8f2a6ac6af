//! `kinsight agent` (in progress).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AgentArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: AgentArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`kinsight agent` is not implemented yet")
}
