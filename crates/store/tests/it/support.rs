//! Helpers shared by the store tests.

use std::path::Path;

use kinsight_store::{
    Direction, EventQuery, IngestOutcome, IngestRequest, LogEvent, Store, StoreConfig, StoredEvent,
};

pub const HOUR_MS: i64 = 3_600_000;

/// A config with background tasks off: tests drive flush/compaction/retention by hand.
pub fn config(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.background = false;
    c
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn ev(group: &str, stream: &str, ts: i64, msg: &str) -> LogEvent {
    LogEvent::new(group, stream, ts, msg)
}

pub async fn ingest(store: &Store, id: Option<&str>, events: Vec<LogEvent>) -> IngestOutcome {
    store
        .ingest(IngestRequest {
            batch_id: id.map(str::to_string),
            events,
            auto_create_groups: true,
        })
        .await
        .expect("ingest")
}

/// Every event of a group (or stream), oldest first, read page by page.
pub async fn all_events(store: &Store, group: &str, stream: Option<&str>) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .read_events(&EventQuery {
                group: group.into(),
                stream: stream.map(str::to_string),
                direction: Direction::Forward,
                cursor,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("read events");
        if page.events.is_empty() {
            return out;
        }
        cursor = page.next_forward;
        out.extend(page.events);
    }
}

/// A realistic Kubernetes application log line as Fluent Bit ships it (reference §3.3).
pub fn k8s_line(i: usize) -> String {
    let level = if i.is_multiple_of(10) {
        "error"
    } else {
        "info"
    };
    format!(
        r#"{{"time":"2024-05-01T10:00:00.{:03}Z","stream":"stdout","_p":"F","log":"{{\"level\":\"{level}\",\"msg\":\"request served\",\"status\":{},\"latency_ms\":{}}}","log_processed":{{"level":"{level}","msg":"request served","status":{},"latency_ms":{}}},"kubernetes":{{"pod_name":"api-7d9f-{}","namespace_name":"prod","pod_id":"6f1c0b9e-1d2a-4c55-9a51-0b7e{:08}","host":"ip-10-0-1-2.ec2.internal","container_name":"api","docker_id":"{:064x}","container_image":"registry.local/api:1.2"}}}}"#,
        i % 1000,
        200 + (i % 3) * 100,
        i % 97,
        200 + (i % 3) * 100,
        i % 97,
        i % 5,
        i % 5,
        i % 5
    )
}
