//! `kinsight query` (not implemented yet; see the open issues).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct QueryArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: QueryArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`kinsight query` is not implemented yet")
}
