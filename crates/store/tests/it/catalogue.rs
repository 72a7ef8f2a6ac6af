//! Groups, streams, retention and tags: rules, listing and persistence through the WAL and
//! through checkpoints.

use std::collections::BTreeMap;

use kinsight_store::{IngestRequest, Store, StoreError, StreamOrder};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_streams_follow_the_rules_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let tags = BTreeMap::from([("team".to_string(), "sre".to_string())]);
    store
        .create_group("/k/c/application", Some(30), tags.clone())
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_group("/k/c/application", None, BTreeMap::new())
            .await,
        Err(StoreError::GroupAlreadyExists(_))
    ));
    assert!(matches!(
        store.create_group("bad name", None, BTreeMap::new()).await,
        Err(StoreError::InvalidName(_))
    ));
    store
        .create_stream("/k/c/application", "node-1")
        .await
        .unwrap();
    assert!(matches!(
        store.create_stream("/k/c/application", "node-1").await,
        Err(StoreError::StreamAlreadyExists { .. })
    ));
    assert!(matches!(
        store.create_stream("/nope", "x").await,
        Err(StoreError::GroupNotFound(_))
    ));
    let t = now_ms();
    ingest(
        &store,
        None,
        vec![
            ev("/k/c/application", "node-2", t - 5, "a"),
            ev("/k/c/application", "node-2", t - 9, "b"),
            ev("/k/c/host", "node-1.host.dmesg", t, "c"),
        ],
    )
    .await;
    // Unknown groups are refused when auto-create is off.
    let err = store
        .ingest(IngestRequest {
            batch_id: None,
            events: vec![ev("/k/other", "s", t, "x")],
            auto_create_groups: false,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::GroupNotFound(ref g) if g == "/k/other"));

    store
        .tag_group(
            "/k/c/application",
            BTreeMap::from([("env".into(), "prod".into())]),
        )
        .await
        .unwrap();
    store
        .untag_group("/k/c/application", vec!["team".into()])
        .await
        .unwrap();

    let check = |store: &Store| {
        let g = store.group("/k/c/application").unwrap();
        assert_eq!(g.retention_days, Some(30));
        assert_eq!(
            g.tags,
            BTreeMap::from([("env".to_string(), "prod".to_string())])
        );
        assert_eq!(
            (g.first_event_ms, g.last_event_ms),
            (Some(t - 9), Some(t - 5))
        );
        assert_eq!(g.stream_count, 2);
        let page = store.list_groups(Some("/k/c/"), None, 1);
        assert_eq!(page.items[0].name, "/k/c/application");
        let next = store.list_groups(Some("/k/c/"), page.next.as_deref(), 1);
        assert_eq!(next.items[0].name, "/k/c/host");
        assert!(next.next.is_none());
        let streams = store
            .list_streams(
                "/k/c/application",
                None,
                StreamOrder::LastEventTime,
                true,
                None,
                10,
            )
            .unwrap();
        let names: Vec<_> = streams.items.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["node-2", "node-1"],
            "newest event first; empty stream last"
        );
        let by_name = store
            .list_streams(
                "/k/c/application",
                Some("node"),
                StreamOrder::LogStreamName,
                false,
                None,
                1,
            )
            .unwrap();
        assert_eq!(by_name.items[0].name, "node-1");
        let rest = store
            .list_streams(
                "/k/c/application",
                Some("node"),
                StreamOrder::LogStreamName,
                false,
                by_name.next.as_deref(),
                1,
            )
            .unwrap();
        assert_eq!(rest.items[0].name, "node-2");
    };
    check(&store);
    drop(store);
    // From the WAL.
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    check(&store);
    store.flush().await.unwrap();
    drop(store);
    // From the checkpoint.
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    check(&store);

    // Deleting a group removes it and its events; the name can be used again, empty.
    store.delete_group("/k/c/application").await.unwrap();
    assert!(store.group("/k/c/application").is_none());
    assert!(matches!(
        store.delete_group("/k/c/application").await,
        Err(StoreError::GroupNotFound(_))
    ));
    ingest(&store, None, vec![ev("/k/c/application", "n", t, "new")]).await;
    assert_eq!(all_events(&store, "/k/c/application", None).await.len(), 1);
    drop(store);
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let events = all_events(&store, "/k/c/application", None).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_stream_deletes_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let t = now_ms();
    ingest(
        &store,
        None,
        vec![ev("/g", "a", t, "1"), ev("/g", "b", t, "2")],
    )
    .await;
    store.flush().await.unwrap();
    ingest(&store, None, vec![ev("/g", "a", t, "3")]).await;
    store.delete_stream("/g", "a").await.unwrap();
    let left: Vec<_> = all_events(&store, "/g", None)
        .await
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(left, ["2"]);
    assert!(
        store
            .scan("/g", None, None)
            .await
            .unwrap()
            .memory
            .is_empty()
    );
    // Written again later, the stream starts empty.
    ingest(&store, None, vec![ev("/g", "a", t, "4")]).await;
    let left: Vec<_> = all_events(&store, "/g", Some("a"))
        .await
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(left, ["4"]);
}
