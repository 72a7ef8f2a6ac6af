//! Validates an agent config file with kinsight's own parser (`kinsight_model::config`), the
//! way `kinsight agent --check --config FILE` does: exit 0 when valid (warnings, such as
//! unknown keys, are printed), 1 with the parser's error otherwise.

use kinsight_model::config::AgentConfig;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: kinsight-config-check FILE");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    match AgentConfig::from_json(&text) {
        Ok(c) => {
            for w in &c.warnings {
                println!("warning: {w}");
            }
            println!(
                "valid: cluster {} interval {}s enhanced {} host_root {} state_dir {} server {:?} groups {}",
                c.cluster_name,
                c.metrics_collection_interval_s,
                c.enhanced_container_insights,
                c.kinsight.host_root.display(),
                c.kinsight.state_dir.display(),
                c.kinsight.server_url,
                c.log_groups().performance()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            ExitCode::FAILURE
        }
    }
}
