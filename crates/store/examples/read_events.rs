//! Times reading one stream's events (what GetLogEvents and the console's log view do) over
//! the query benchmark's store: the first and last 100 events of a performance stream (one
//! node) and of an application stream (one container), and a whole stream in one page.
//!
//! Run `cargo bench -p kinsight-query --bench queries` once to generate the data, then:
//! `cargo run --release -p kinsight-store --example read_events -- target/kinsight-query-bench/store`
//! (results: docs/benchmarks.md, "Reading a stream's events").

use std::time::Instant;

use kinsight_store::read::{Direction, EventQuery};
use kinsight_store::{ManualClock, Store, StoreConfig, StreamOrder};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: read_events <store directory of the query benchmark>");
        std::process::exit(2);
    };
    let mut c = StoreConfig::new(std::path::PathBuf::from(dir));
    c.background = false;
    // The benchmark's data ends on 2024-05-01: a clock there keeps retention away from it.
    c.clock = ManualClock::new(1_714_600_000_000);
    c.max_unflushed_bytes = 8 << 30;
    c.flush_bytes = 8 << 30;
    let store = Store::open(c, Vec::new()).await.expect("store");
    for group in ["/kinsight/demo/performance", "/kinsight/demo/application"] {
        let streams = store
            .list_streams(group, None, StreamOrder::LogStreamName, false, None, 10)
            .expect("group of the query benchmark");
        let stream = streams.items.get(5).map(|s| s.name.clone());
        for (direction, limit) in [
            (Direction::Forward, 100),
            (Direction::Backward, 100),
            (Direction::Forward, 10_000),
        ] {
            let q = EventQuery {
                group: group.into(),
                stream: stream.clone(),
                direction,
                limit,
                ..Default::default()
            };
            let mut times = Vec::new();
            let mut n = 0;
            for _ in 0..5 {
                let t = Instant::now();
                n = store.read_events(&q).await.expect("read").events.len();
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{group} {direction:?} limit {limit}: {n} events, median of 5 {:.1} ms",
                times[2]
            );
        }
    }
    store.shutdown().await;
}
