//! `journalctl -o json` output as the agent's journal reader gets it: one JSON object per line,
//! routed to the dataplane group (kubelet, container runtime units) or, on hosts without
//! syslog files, to the host group (`kinsight_agent::logs::journald`).
//!
//! Invariants: no panic; every event has a valid log stream name, lands in one of the two
//! groups, and its message is a JSON object holding the entry's message.

use kinsight_agent::logs::journald::{DATAPLANE_UNITS, JournalSettings, route_entry};
use kinsight_model::names::validate_log_stream_name;

pub fn run(data: &[u8]) {
    let settings = JournalSettings {
        dir: "/var/log/journal".into(),
        units: DATAPLANE_UNITS.iter().map(|u| u.to_string()).collect(),
        state_dir: "/nonexistent".into(),
        node_name: "node-1".into(),
        group: "/kinsight/fuzz/dataplane".into(),
        read_from_head: false,
        batch_max_events: 1000,
        batch_max_bytes: 1 << 20,
        linger: std::time::Duration::from_secs(1),
        journalctl: "journalctl".into(),
        host_group: Some("/kinsight/fuzz/host".into()),
    };
    let mut scratch = String::new();
    for line in data.split(|&b| b == b'\n') {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let Some(ev) = route_entry(&v, &settings, &mut scratch) else {
            continue;
        };
        assert!(
            ev.log_group_name == settings.group
                || Some(&ev.log_group_name) == settings.host_group.as_ref(),
            "{ev:?}"
        );
        if let Err(e) = validate_log_stream_name(&ev.log_stream_name) {
            panic!("journal entry {v} became stream {:?}: {e}", ev.log_stream_name);
        }
        let record: serde_json::Value = serde_json::from_str(&ev.message)
            .unwrap_or_else(|e| panic!("event message is not JSON ({e}): {:?}", ev.message));
        assert!(record.get("message").is_some_and(|m| m.is_string()), "{record}");
    }
}
