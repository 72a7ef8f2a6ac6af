//! `kinsight alarms` (not implemented yet; see the open issues).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AlarmsArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: AlarmsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`kinsight alarms` is not implemented yet")
}
