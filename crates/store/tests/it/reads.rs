//! Paging through events by time across memory and segments, forward and backward.

use kinsight_store::{Cursor, Direction, EventQuery, Store, StoreError};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_forward_and_backward_across_memory_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let t0 = now_ms() - 3 * HOUR_MS;
    // 300 events of stream "a" over three hours (several windows), "b" interleaved; the
    // first 200 are flushed, the rest stay in memory. Equal timestamps appear on purpose.
    for chunk in 0..3 {
        let events = (0..100)
            .flat_map(|i| {
                let n = chunk * 100 + i;
                let ts = t0 + (n as i64 / 2) * 60_000;
                [
                    ev("/g", "a", ts, &format!("a{n}")),
                    ev("/g", "b", ts, &format!("b{n}")),
                ]
            })
            .collect();
        ingest(&store, None, events).await;
        if chunk < 2 {
            store.flush().await.unwrap();
        }
    }
    let expected: Vec<String> = (0..300).map(|n| format!("a{n}")).collect();

    let mut got = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .read_events(&EventQuery {
                group: "/g".into(),
                stream: Some("a".into()),
                direction: Direction::Forward,
                cursor,
                limit: 37,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.events.is_empty() {
            break;
        }
        assert!(page.events.len() <= 37);
        cursor = page.next_forward;
        got.extend(page.events.into_iter().map(|e| e.message));
    }
    assert_eq!(got, expected);

    // Backward from the end: the newest first page, pages keep oldest-first order inside.
    let mut back = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store
            .read_events(&EventQuery {
                group: "/g".into(),
                stream: Some("a".into()),
                direction: Direction::Backward,
                cursor,
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.events.is_empty() {
            break;
        }
        let msgs: Vec<_> = page.events.iter().map(|e| e.message.clone()).collect();
        cursor = page.next_backward;
        back.splice(0..0, msgs);
    }
    assert_eq!(back, expected);

    // A time range: [start, end).
    let page = store
        .read_events(&EventQuery {
            group: "/g".into(),
            stream: None,
            start_ms: Some(t0 + 10 * 60_000),
            end_ms: Some(t0 + 12 * 60_000),
            direction: Direction::Forward,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let msgs: Vec<_> = page.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["a20", "b20", "a21", "b21", "a22", "b22", "a23", "b23"]
    );

    assert!(matches!(
        store
            .read_events(&EventQuery {
                group: "/nope".into(),
                limit: 1,
                ..Default::default()
            })
            .await,
        Err(StoreError::GroupNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_sees_every_event_once_while_flushes_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let t = now_ms();
    store
        .create_group("/g", None, Default::default())
        .await
        .unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for b in 0..40 {
                let events = (0..25)
                    .map(|i| ev("/g", "s", t + i, &format!("{b}-{i}")))
                    .collect();
                ingest(&store, None, events).await;
                if b % 10 == 9 {
                    store.flush().await.unwrap();
                }
            }
        })
    };
    // While writing and flushing, every scan's rows are a prefix of the log with no
    // duplicates: memory and segments never overlap.
    while !writer.is_finished() {
        let scan = store.scan("/g", None, None).await.unwrap();
        let mem: usize = scan.memory.iter().map(|b| b.num_rows()).sum();
        let seg: u64 = scan.segments.iter().map(|s| s.rows).sum();
        let page = all_events(&store, "/g", None).await;
        let mut ids: Vec<i64> = page.iter().map(|e| e.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), page.len(), "no event twice");
        assert!(mem as u64 + seg <= 1000);
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let scan = store.scan("/g", None, None).await.unwrap();
    let mem: usize = scan.memory.iter().map(|b| b.num_rows()).sum();
    let seg: u64 = scan.segments.iter().map(|s| s.rows).sum();
    assert_eq!(mem as u64 + seg, 1000);
    assert_eq!(all_events(&store, "/g", None).await.len(), 1000);
}
