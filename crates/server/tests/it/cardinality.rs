//! Issue 15, item 12, through the server's API: events past the group and stream caps are
//! rejected per event in `/v1/ingest`, create calls answer 400 `LimitExceeded` (the
//! CloudWatch API `LimitExceededException`), and `/v1/admin/stats` says how close each cap is.

use axum::http::StatusCode;
use kinsight_server::cwlogs::error::CwError;
use kinsight_server::{AppState, Auth, router};
use kinsight_store::{CardinalityLimits, LimitKind, Store, StoreConfig, StoreError};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_answer_per_event_rejections_limit_exceeded_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.background = false;
    cfg.limits = CardinalityLimits {
        max_log_groups: 1,
        max_log_streams: 10,
        max_streams_per_group: 2,
    };
    let store = Store::open(cfg, vec![]).await.unwrap();
    let app = router(AppState::new(store, Auth::open(ADMIN, dir.path()).unwrap()));
    let t = now_ms();
    let (s, v) = call("POST", "/v1/ingest")
        .json(&json!([
            event("/g1", "s1", t, "a"),
            event("/g1", "s2", t, "b"),
            event("/g1", "s3", t, "c"),
            event("/g2", "x", t, "d"),
        ]))
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2);
    assert_eq!(
        v["rejected"],
        json!([{"index": 2, "reason": "tooManyLogStreams"}, {"index": 3, "reason": "tooManyLogGroups"}])
    );
    let (s, v) = call("POST", "/v1/groups")
        .json(&json!({"name": "/g3"}))
        .send(&app)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("LimitExceeded"))
    );
    assert!(
        v["message"].as_str().unwrap().contains("--max-log-groups"),
        "{v}"
    );
    let (s, v) = call("POST", "/v1/streams?group=/g1")
        .json(&json!({"name": "s9"}))
        .send(&app)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("LimitExceeded"))
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("--max-streams-per-group"),
        "{v}"
    );

    let (s, v) = call("GET", "/v1/admin/stats").send(&app).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["groups"], 1, "the store's counters are still there: {v}");
    assert_eq!(
        v["cardinality"]["logGroups"],
        json!({"count": 1, "limit": 1, "rejected": 2})
    );
    assert_eq!(
        v["cardinality"]["logStreams"],
        json!({"count": 2, "limit": 10, "rejected": 0})
    );
    assert_eq!(
        v["cardinality"]["streamsPerGroup"],
        json!({"count": 2, "limit": 2, "rejected": 2})
    );

    // The CloudWatch API's name and status for the same error.
    let e = CwError::from(StoreError::LimitExceeded {
        kind: LimitKind::LogGroups,
        what: "log group \"/g3\"".into(),
        count: 1,
        limit: 1,
    });
    assert_eq!(
        (e.kind, e.status()),
        ("LimitExceededException", StatusCode::BAD_REQUEST)
    );
    assert!(e.message.contains("--max-log-groups"), "{}", e.message);
}
