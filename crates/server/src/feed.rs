//! Follow/tail: the recent durable batches in arrival (sequence) order, kept in a bounded ring
//! so that a long-polling client that passes the last sequence number it saw gets everything
//! after it — including events whose timestamps are older than ones it already has (agents
//! ship streams independently). Server-sent events use the same ring.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use kinsight_store::{DurableBatch, Store, StoredEvent};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

/// How many batches the ring keeps.
pub const RING_BATCHES: usize = 8192;

pub struct FollowHub {
    ring: Mutex<Ring>,
    pub notify: Notify,
    /// Set when the server shuts down: open long-polls answer and tails end, so that the
    /// graceful shutdown does not wait for clients that never hang up.
    closing: tokio::sync::watch::Sender<bool>,
}

struct Ring {
    batches: VecDeque<DurableBatch>,
    /// The ring holds every batch with a sequence number above this one.
    complete_after: u64,
    last_seq: u64,
}

/// Events after a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowPage {
    pub events: Vec<StoredEvent>,
    /// Pass this as `after` next time.
    pub seq: u64,
    /// Some batches after `after` are no longer in the ring (the client was away too long);
    /// read them with the events API.
    pub gap: bool,
}

impl FollowHub {
    /// Starts filling the ring from the store's live feed.
    pub fn start(store: &Store) -> Arc<FollowHub> {
        let mut rx = store.follow();
        let start = store.last_seq();
        let hub = Arc::new(FollowHub {
            ring: Mutex::new(Ring {
                batches: VecDeque::new(),
                complete_after: start,
                last_seq: start,
            }),
            notify: Notify::new(),
            closing: tokio::sync::watch::channel(false).0,
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            loop {
                let msg = rx.recv().await;
                let Some(hub) = weak.upgrade() else { return };
                match msg {
                    Ok(b) => {
                        let mut r = hub.ring.lock().unwrap_or_else(|p| p.into_inner());
                        r.last_seq = r.last_seq.max(b.seq);
                        r.batches.push_back(b);
                        while r.batches.len() > RING_BATCHES {
                            if let Some(old) = r.batches.pop_front() {
                                r.complete_after = old.seq;
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Batches were skipped: the ring is complete only from the next one.
                        let mut r = hub.ring.lock().unwrap_or_else(|p| p.into_inner());
                        r.batches.clear();
                        r.complete_after = u64::MAX;
                    }
                    Err(RecvError::Closed) => return,
                }
                hub.notify.notify_waiters();
            }
        });
        hub
    }

    /// Ends open follows (server shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
        self.notify.notify_waiters();
    }

    /// Resolves once [`FollowHub::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    pub fn is_closed(&self) -> bool {
        *self.closing.borrow()
    }

    /// The newest sequence number seen.
    pub fn last_seq(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).last_seq
    }

    /// Events of `group` (and `stream`) in batches after `after`, at most `limit` (whole
    /// batches are never split: `seq` is the last batch fully returned).
    pub fn after(&self, after: u64, group: &str, stream: Option<&str>, limit: usize) -> FollowPage {
        let r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let complete_after = if r.complete_after == u64::MAX {
            r.batches
                .front()
                .map_or(r.last_seq, |b| b.seq.saturating_sub(1))
        } else {
            r.complete_after
        };
        let gap = after < complete_after;
        let mut events = Vec::new();
        let mut seq = after;
        let mut stopped = false;
        for b in r.batches.iter().filter(|b| b.seq > after) {
            let before = events.len();
            for (i, e) in b.record.events.iter().enumerate() {
                if e.log_group_name == group && stream.is_none_or(|s| s == e.log_stream_name) {
                    events.push(StoredEvent {
                        timestamp: e.timestamp,
                        ingestion_time: b.record.ingestion_time_ms,
                        log_stream_name: e.log_stream_name.clone(),
                        message: e.message.clone(),
                        id: b.event_id(i),
                    });
                }
            }
            if events.len() > limit && before > 0 {
                events.truncate(before);
                stopped = true;
                break;
            }
            seq = b.seq;
        }
        if !stopped {
            seq = seq.max(r.last_seq);
        }
        FollowPage { events, seq, gap }
    }
}
