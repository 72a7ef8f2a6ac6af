//! `kinsight server` (not implemented yet; see the open issues).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServerArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: ServerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`kinsight server` is not implemented yet")
}
