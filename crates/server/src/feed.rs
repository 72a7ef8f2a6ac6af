//! Follow/tail: the recent durable batches in arrival (sequence) order, kept in a bounded ring
//! so that a long-polling client that passes the last sequence number it saw gets everything
//! after it — including events whose timestamps are older than ones it already has (agents
//! ship streams independently). Server-sent events use the same ring.
//!
//! The ring is bounded by batches and by bytes ([`FollowLimits`]), and it holds nothing while
//! nobody reads: with no follow, tail or events read for [`FollowLimits::idle_release`], new
//! batches are not kept (a follower that arrives later is told about the `gap`, or starts from
//! an events read, which wakes the ring first). Pages are bounded by events and by bytes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinsight_store::{DurableBatch, Store, StoredEvent};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

/// How many batches the ring keeps by default.
pub const RING_BATCHES: usize = 8192;
/// How many bytes of events (messages, group and stream names, 26 bytes an event) the ring
/// keeps by default.
pub const RING_BYTES: usize = 64 * 1024 * 1024;
/// With no reader for this long the ring stops keeping batches (twice the longest long-poll).
pub const IDLE_RELEASE: Duration = Duration::from_secs(120);

/// Bounds of the follow ring.
#[derive(Debug, Clone, Copy)]
pub struct FollowLimits {
    pub ring_batches: usize,
    pub ring_bytes: usize,
    pub idle_release: Duration,
}

impl Default for FollowLimits {
    fn default() -> Self {
        FollowLimits {
            ring_batches: RING_BATCHES,
            ring_bytes: RING_BYTES,
            idle_release: IDLE_RELEASE,
        }
    }
}

pub struct FollowHub {
    ring: Mutex<Ring>,
    limits: FollowLimits,
    /// Tails and long polls in progress.
    followers: AtomicUsize,
    pub notify: Notify,
    /// Set when the server shuts down: open long-polls answer and tails end, so that the
    /// graceful shutdown does not wait for clients that never hang up.
    closing: tokio::sync::watch::Sender<bool>,
}

struct Ring {
    /// Each batch with the bytes it counts for.
    batches: VecDeque<(DurableBatch, usize)>,
    bytes: usize,
    /// The ring holds every batch with a sequence number above this one.
    complete_after: u64,
    last_seq: u64,
    /// When a reader last asked (or stopped following).
    last_read: Instant,
}

/// Bytes of a batch's events, as the ring counts them.
fn batch_bytes(b: &DurableBatch) -> usize {
    b.record
        .events
        .iter()
        .map(|e| {
            kinsight_store::event_bytes(&e.message)
                + e.log_group_name.len()
                + e.log_stream_name.len()
        })
        .sum()
}

/// A follower in progress (a tail, a long poll): while any exists, the ring keeps batches.
pub struct Following(Arc<FollowHub>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.touch();
        self.0.followers.fetch_sub(1, Ordering::Relaxed);
    }
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
    pub fn start(store: &Store, limits: FollowLimits) -> Arc<FollowHub> {
        let mut rx = store.follow();
        let start = store.last_seq();
        let hub = Arc::new(FollowHub {
            ring: Mutex::new(Ring {
                batches: VecDeque::new(),
                bytes: 0,
                complete_after: start,
                last_seq: start,
                // Nobody has read yet: keep nothing until someone does.
                last_read: Instant::now()
                    .checked_sub(limits.idle_release)
                    .unwrap_or_else(Instant::now),
            }),
            limits,
            followers: AtomicUsize::new(0),
            notify: Notify::new(),
            closing: tokio::sync::watch::channel(false).0,
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            loop {
                let msg = rx.recv().await;
                let Some(hub) = weak.upgrade() else { return };
                match msg {
                    Ok(b) => hub.keep(b),
                    Err(RecvError::Lagged(_)) => {
                        // Batches were skipped: the ring is complete only from the next one.
                        let mut r = hub.ring.lock().unwrap_or_else(|p| p.into_inner());
                        r.batches.clear();
                        r.bytes = 0;
                        r.complete_after = u64::MAX;
                    }
                    Err(RecvError::Closed) => return,
                }
                hub.notify.notify_waiters();
            }
        });
        hub
    }

    /// Adds a batch from the store's feed: kept while someone reads, within the bounds.
    fn keep(&self, b: DurableBatch) {
        let idle = self.followers.load(Ordering::Relaxed) == 0;
        let mut r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        r.last_seq = r.last_seq.max(b.seq);
        if idle && r.last_read.elapsed() >= self.limits.idle_release {
            r.batches.clear();
            r.bytes = 0;
            r.complete_after = r.last_seq;
            return;
        }
        let size = batch_bytes(&b);
        r.bytes += size;
        r.batches.push_back((b, size));
        while r.batches.len() > self.limits.ring_batches.max(1)
            || (r.bytes > self.limits.ring_bytes && r.batches.len() > 1)
        {
            if let Some((old, size)) = r.batches.pop_front() {
                r.complete_after = old.seq;
                r.bytes -= size;
            }
        }
    }

    /// Marks the ring as read now: batches arriving from now on are kept (an events read
    /// calls this before it reads, so a follow that starts from its `seq` finds the rest).
    pub fn touch(&self) {
        self.ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_read = Instant::now();
    }

    /// Registers a follower until the guard is dropped.
    pub fn following(self: &Arc<Self>) -> Following {
        self.followers.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Following(self.clone())
    }

    /// Bytes the ring holds now.
    pub fn ring_bytes(&self) -> usize {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).bytes
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

    /// Events of `group` (and `stream`) in batches after `after`, at most `limit` events and
    /// `max_bytes` (as [`kinsight_store::event_bytes`] counts) — whole batches are never split:
    /// `seq` is the last batch fully returned, and a first batch over the bounds comes whole.
    pub fn after(
        &self,
        after: u64,
        group: &str,
        stream: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> FollowPage {
        let mut r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        r.last_read = Instant::now();
        let complete_after = if r.complete_after == u64::MAX {
            r.batches
                .front()
                .map_or(r.last_seq, |(b, _)| b.seq.saturating_sub(1))
        } else {
            r.complete_after
        };
        let gap = after < complete_after;
        let mut events = Vec::new();
        let mut seq = after;
        let mut stopped = false;
        let mut bytes = 0usize;
        for b in r.batches.iter().map(|(b, _)| b).filter(|b| b.seq > after) {
            let matching = || {
                b.record.events.iter().enumerate().filter(|(_, e)| {
                    e.log_group_name == group && stream.is_none_or(|s| s == e.log_stream_name)
                })
            };
            // Measure first, so that a batch over the bounds is not copied only to be dropped.
            let (n, size) = matching().fold((0usize, 0usize), |(n, size), (_, e)| {
                (n + 1, size + kinsight_store::event_bytes(&e.message))
            });
            if !events.is_empty() && (events.len() + n > limit || bytes + size > max_bytes) {
                stopped = true;
                break;
            }
            bytes += size;
            for (i, e) in matching() {
                events.push(StoredEvent {
                    timestamp: e.timestamp,
                    ingestion_time: b.record.ingestion_time_ms,
                    log_stream_name: e.log_stream_name.clone(),
                    message: e.message.clone(),
                    id: b.event_id(i),
                });
            }
            seq = b.seq;
        }
        if !stopped {
            seq = seq.max(r.last_seq);
        }
        FollowPage { events, seq, gap }
    }
}
