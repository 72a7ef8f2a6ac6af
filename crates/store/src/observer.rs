//! The ingest hook for consumers that keep their own durable state from the event stream —
//! the metric store of issue #6 extracts EMF datapoints from every stored event.
//!
//! Contract: every durable batch is delivered to every observer, in increasing `seq` order,
//! exactly once per process lifetime; after a restart the WAL records with
//! `seq > observer.persisted_seq()` are delivered again (with `replayed: true`) before any new
//! batch. The store keeps WAL files until every observer reports them persisted, so an
//! observer that persists its state together with the highest `seq` it contains sees each
//! batch's effect exactly once across crashes. Sequence numbers are increasing but not
//! contiguous (catalogue operations use numbers too).

use std::sync::Arc;

use crate::record::{BatchRecord, SamplesRecord, event_id};

/// A batch that is durable in the WAL.
#[derive(Debug, Clone)]
pub struct DurableBatch {
    pub seq: u64,
    pub record: Arc<BatchRecord>,
    /// Delivered from the WAL during start-up rather than live.
    pub replayed: bool,
}

impl DurableBatch {
    /// The `@id` of the event at `index` of `record.events`.
    pub fn event_id(&self, index: usize) -> i64 {
        event_id(self.seq, index)
    }
}

/// Metric samples that are durable in the WAL (`Store::append_samples`).
#[derive(Debug, Clone)]
pub struct DurableSamples {
    pub seq: u64,
    pub record: Arc<SamplesRecord>,
    pub replayed: bool,
}

/// What the observers' queue carries, in `seq` order.
#[derive(Debug, Clone)]
pub(crate) enum Observed {
    Batch(DurableBatch),
    Samples(DurableSamples),
}

impl Observed {
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Observed::Batch(b) => b.seq,
            Observed::Samples(s) => s.seq,
        }
    }

    pub(crate) fn deliver(&self, o: &dyn IngestObserver) {
        match self {
            Observed::Batch(b) => o.on_batch(b),
            Observed::Samples(s) => o.on_samples(s),
        }
    }
}

pub trait IngestObserver: Send + Sync + 'static {
    /// For log lines.
    fn name(&self) -> &str;

    /// Highest sequence number whose effects this observer has made durable (0: none). Called
    /// at start-up (to choose what to replay) and before WAL files are deleted.
    fn persisted_seq(&self) -> u64;

    /// Replicas: the highest sequence number from which a replica that joins can rebuild this
    /// observer's state — it restores what the leader published to the bucket up to there and
    /// replays the log after it. The leader keeps the shared log above it. `None`: the
    /// observer publishes nothing, and its [`Self::persisted_seq`] is the bound.
    fn shared_bound(&self) -> Option<u64> {
        None
    }

    /// Called on a dedicated thread (never the WAL thread), in `seq` order. A slow observer
    /// slows ingest down through a bounded queue rather than losing batches.
    fn on_batch(&self, batch: &DurableBatch);

    /// Samples records, under the same contract as batches (same thread, `seq` order with
    /// them). Observers that do not keep metrics ignore them.
    fn on_samples(&self, _samples: &DurableSamples) {}
}
