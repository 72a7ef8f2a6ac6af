//! `kinsight up` (not implemented yet; see the open issues).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct UpArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: UpArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`kinsight up` is not implemented yet")
}
