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

/// Segments cluster rows by kind, so one stream's rows lie in runs spread over every kind's
/// row groups and over several pages of messages (3 MB of them per kind): reading a stream,
/// in full and within a time range, finds exactly its events in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_spread_over_clustered_row_groups_reads_back_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let hour = now_ms().div_euclid(HOUR_MS) * HOUR_MS - HOUR_MS;
    let kinds = ["Container", "Node", "Pod"];
    let mut events = Vec::new();
    for i in 0..6000usize {
        let (kind, stream) = (kinds[i % 3], format!("node-{}", i % 5));
        let ts = hour + (i as i64) * 500;
        let msg = format!(
            r#"{{"Type":"{kind}","i":{i},"pad":"{}"}}"#,
            "x".repeat(1500)
        );
        events.push(ev("/perf", &stream, ts, &msg));
    }
    for chunk in events.chunks(500) {
        ingest(&store, None, chunk.to_vec()).await;
    }
    store.flush().await.unwrap();
    let expected: Vec<i64> = (0..6000i64)
        .filter(|i| i % 5 == 2)
        .map(|i| hour + i * 500)
        .collect();
    let got: Vec<i64> = all_events(&store, "/perf", Some("node-2"))
        .await
        .iter()
        .map(|e| {
            assert_eq!(e.log_stream_name, "node-2");
            e.timestamp
        })
        .collect();
    assert_eq!(got, expected);

    // A time range inside the window, backward.
    let (lo, hi) = (hour + 1_000_000, hour + 2_000_000);
    let page = store
        .read_events(&EventQuery {
            group: "/perf".into(),
            stream: Some("node-2".into()),
            start_ms: Some(lo),
            end_ms: Some(hi),
            direction: Direction::Backward,
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let want: Vec<i64> = expected
        .iter()
        .copied()
        .filter(|t| (lo..hi).contains(t))
        .collect();
    let got: Vec<i64> = page.events.iter().map(|e| e.timestamp).collect();
    assert_eq!(got, want);
    // Every stream together.
    assert_eq!(all_events(&store, "/perf", None).await.len(), 6000);
}

/// Issue 15 item 5: a page holds at most `max_bytes` of events (message + 26 bytes each, 1 MiB
/// by default, CloudWatch's GetLogEvents answer), the nearest ones first, and at least one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_bounded_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let t0 = now_ms() - HOUR_MS;
    let big = |n: usize| format!("{n:03}{}", "x".repeat(100 * 1024 - 3));
    for half in 0..2 {
        let events = (0..10)
            .map(|i| {
                let n = half * 10 + i;
                ev("/g", "a", t0 + n as i64 * 1000, &big(n))
            })
            .collect();
        ingest(&store, None, events).await;
        if half == 0 {
            store.flush().await.unwrap();
        }
    }
    let read = |direction, cursor, max_bytes| {
        let store = store.clone();
        async move {
            store
                .read_events(&EventQuery {
                    group: "/g".into(),
                    direction,
                    cursor,
                    limit: 10_000,
                    max_bytes,
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let names = |p: &kinsight_store::EventPage| -> Vec<String> {
        p.events
            .iter()
            .map(|e| e.message[..3].to_string())
            .collect()
    };
    // 10 events of 100 KiB + 26 fit in 1 MiB, 11 do not.
    let first = read(Direction::Forward, None, None).await;
    assert_eq!(
        names(&first),
        (0..10).map(|n| format!("{n:03}")).collect::<Vec<_>>()
    );
    let rest = read(Direction::Forward, first.next_forward, None).await;
    assert_eq!(
        names(&rest),
        (10..20).map(|n| format!("{n:03}")).collect::<Vec<_>>()
    );
    let newest = read(Direction::Backward, None, None).await;
    assert_eq!(
        names(&newest),
        (10..20).map(|n| format!("{n:03}")).collect::<Vec<_>>()
    );
    // A budget smaller than one event still gives that event.
    let one = read(Direction::Backward, None, Some(1000)).await;
    assert_eq!(names(&one), ["019"]);
    let three = read(Direction::Forward, None, Some(3 * (100 * 1024 + 26))).await;
    assert_eq!(names(&three), ["000", "001", "002"]);
}

mod paging_model {
    //! Pages read from a store equal pages cut from a plain list of the same events, for any
    //! split between segments and memory, stream, direction, cursor, limit and byte budget.
    use super::*;
    use kinsight_store::{LogEvent, StoredEvent};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Case {
        /// (stream 0/1, minute offset, message length)
        events: Vec<(u8, i64, usize)>,
        /// Events before this index are flushed into segments before the rest arrive.
        flushed: usize,
        stream: Option<u8>,
        forward: bool,
        /// Start from the cursor of this event (modulo the count), or from the edge.
        cursor_at: Option<usize>,
        limit: usize,
        max_bytes: usize,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            prop::collection::vec((0u8..2, 0i64..180, 1usize..3000), 1..120),
            any::<prop::sample::Index>(),
            prop::option::of(0u8..2),
            any::<bool>(),
            prop::option::of(0usize..1000),
            1usize..60,
            1usize..40_000,
        )
            .prop_map(
                |(events, split, stream, forward, cursor_at, limit, max_bytes)| Case {
                    flushed: split.index(events.len() + 1),
                    events,
                    stream,
                    forward,
                    cursor_at,
                    limit,
                    max_bytes,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn pages_equal_the_model(c in case()) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(check(c));
        }
    }

    async fn check(c: Case) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path()), vec![]).await.unwrap();
        let t0 = now_ms() - 3 * HOUR_MS;
        let stream = |s: u8| format!("s{s}");
        let message = |i: usize, len: usize| format!("{i:05}{}", "m".repeat(len));
        let all: Vec<LogEvent> = c
            .events
            .iter()
            .enumerate()
            .map(|(i, &(s, minute, len))| {
                ev("/g", &stream(s), t0 + minute * 60_000, &message(i, len))
            })
            .collect();
        let (before, after) = all.split_at(c.flushed);
        if !before.is_empty() {
            ingest(&store, None, before.to_vec()).await;
            store.flush().await.unwrap();
        }
        if !after.is_empty() {
            ingest(&store, None, after.to_vec()).await;
        }
        // The model: every stored event, in cursor order.
        let stored = all_events(&store, "/g", None).await;
        assert_eq!(stored.len(), all.len());
        let direction = if c.forward {
            Direction::Forward
        } else {
            Direction::Backward
        };
        let cursor = c.cursor_at.map(|i| stored[i % stored.len()].cursor());
        let mut want: Vec<&StoredEvent> = stored
            .iter()
            .filter(|e| c.stream.is_none_or(|s| e.log_stream_name == stream(s)))
            .filter(|e| match (cursor, direction) {
                (Some(k), Direction::Forward) => e.cursor() > k,
                (Some(k), Direction::Backward) => e.cursor() < k,
                (None, _) => true,
            })
            .collect();
        if !c.forward {
            want.reverse();
        }
        let mut bytes = 0;
        let mut page = Vec::new();
        for e in want.into_iter().take(c.limit) {
            let size = kinsight_store::event_bytes(&e.message);
            if !page.is_empty() && bytes + size > c.max_bytes {
                break;
            }
            bytes += size;
            page.push(e.message.clone());
        }
        if !c.forward {
            page.reverse();
        }
        let got = store
            .read_events(&EventQuery {
                group: "/g".into(),
                stream: c.stream.map(stream),
                direction,
                cursor,
                limit: c.limit,
                max_bytes: Some(c.max_bytes),
                ..Default::default()
            })
            .await;
        if let Some(s) = c.stream
            && !stored.iter().any(|e| e.log_stream_name == stream(s))
        {
            assert!(
                matches!(got, Err(StoreError::StreamNotFound { .. })),
                "{got:?}"
            );
            return;
        }
        let got: Vec<String> = got.unwrap().events.into_iter().map(|e| e.message).collect();
        assert_eq!(got, page, "{c:?}");
    }
}
