//! The ingest hook: every durable batch reaches observers once, in order, live and on replay
//! after the sequence number they persisted; WAL files are kept until they persisted them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinsight_store::{DurableBatch, IngestObserver, Store};

use crate::support::*;

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(u64, usize, bool)>>,
    persisted: AtomicU64,
}

impl IngestObserver for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn persisted_seq(&self) -> u64 {
        self.persisted.load(Ordering::SeqCst)
    }
    fn on_batch(&self, b: &DurableBatch) {
        self.seen
            .lock()
            .unwrap()
            .push((b.seq, b.record.events.len(), b.replayed));
    }
}

async fn wait_for(r: &Recorder, n: usize) {
    for _ in 0..200 {
        if r.seen.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "observer saw {} of {n} batches",
        r.seen.lock().unwrap().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_see_each_batch_in_order_and_replay_after_their_persisted_seq() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let rec = Arc::new(Recorder::default());
    let store = Store::open(config(dir.path()), vec![rec.clone()])
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for i in 0..5 {
        let events = (0..=i).map(|j| ev("/g", "s", t + j as i64, "x")).collect();
        seqs.push(ingest(&store, None, events).await.seq.unwrap());
    }
    // A catalogue operation takes a sequence number but is not a batch.
    store.create_stream("/g", "other").await.unwrap();
    wait_for(&rec, 5).await;
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), seqs);
    assert_eq!(
        seen.iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(seen.iter().all(|s| !s.2));

    // The flush checkpoints everything, but the observer persisted nothing: the WAL stays.
    store.flush().await.unwrap();
    store.shutdown().await;
    drop(store);

    let rec2 = Arc::new(Recorder::default());
    rec2.persisted.store(seqs[2], Ordering::SeqCst);
    let store = Store::open(config(dir.path()), vec![rec2.clone()])
        .await
        .unwrap();
    let replayed = rec2.seen.lock().unwrap().clone();
    assert_eq!(replayed, vec![(seqs[3], 4, true), (seqs[4], 5, true)]);
    // The flushed events were not applied twice to the store.
    assert_eq!(all_events(&store, "/g", None).await.len(), 15);

    // Once it reports everything persisted, a flush may drop the WAL files.
    rec2.persisted.store(u64::MAX, Ordering::SeqCst);
    let more = ingest(&store, None, vec![ev("/g", "s", t, "y")])
        .await
        .seq
        .unwrap();
    wait_for(&rec2, 3).await;
    assert_eq!(rec2.seen.lock().unwrap()[2], (more, 1, false));
}
