//! The agent's configuration document (the CloudWatch agent's JSON plus the `kinsight`
//! object, `kinsight_model::config`), as an operator or a ConfigMap writes it.
//!
//! Invariants: no panic; a document that is accepted has a valid cluster name (it becomes part
//! of log group names) and prefix, so every log group it names is one the server accepts, and
//! intervals of at least 1 s.

use kinsight_model::config::AgentConfig;
use kinsight_model::names::{GroupKind, validate_log_group_name};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A fixed environment: no file on the fuzzing host is read for the host name.
    let env = |k: &str| match k {
        "HOST_NAME" => Some("node-1".to_string()),
        "HOST_IP" => Some("10.0.0.1".to_string()),
        "CLUSTER_NAME" => Some("fuzz".to_string()),
        _ => None,
    };
    let Ok(cfg) = AgentConfig::from_json_with_env(text, &env) else {
        return;
    };
    assert!(cfg.metrics_collection_interval_s >= 1, "{cfg:?}");
    assert!(cfg.force_flush_interval_s >= 1, "{cfg:?}");
    let groups = cfg.log_groups();
    for kind in GroupKind::ALL {
        let name = groups.name(kind);
        if let Err(e) = validate_log_group_name(&name) {
            panic!("an accepted config names the log group {name:?}, which the server refuses: {e}");
        }
    }
}
