//! Counters of the log pipeline, shared between its threads (for operators, `--metrics-listen`
//! and tests).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct LogStats {
    lines_read: AtomicU64,
    lines_excluded: AtomicU64,
    lines_rate_limited: AtomicU64,
    lines_unparsed: AtomicU64,
    lines_invalid_utf8: AtomicU64,
    events: AtomicU64,
    events_acked: AtomicU64,
    batches_acked: AtomicU64,
    send_errors: AtomicU64,
    journal_entries: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStatsSnapshot {
    pub lines_read: u64,
    pub lines_excluded: u64,
    pub lines_rate_limited: u64,
    pub lines_unparsed: u64,
    pub lines_invalid_utf8: u64,
    pub events: u64,
    pub events_acked: u64,
    pub batches_acked: u64,
    pub send_errors: u64,
    pub journal_entries: u64,
}

macro_rules! adders {
    ($($name:ident => $field:ident),*) => {
        $(pub fn $name(&self, n: u64) { self.$field.fetch_add(n, Relaxed); })*
    };
}

impl LogStats {
    adders!(add_lines_read => lines_read, add_lines_excluded => lines_excluded,
        add_rate_limited => lines_rate_limited, add_unparsed => lines_unparsed,
        add_invalid_utf8 => lines_invalid_utf8, add_events => events,
        add_events_acked => events_acked, add_batches_acked => batches_acked,
        add_send_errors => send_errors, add_journal_entries => journal_entries);

    pub fn snapshot(&self) -> LogStatsSnapshot {
        LogStatsSnapshot {
            lines_read: self.lines_read.load(Relaxed),
            lines_excluded: self.lines_excluded.load(Relaxed),
            lines_rate_limited: self.lines_rate_limited.load(Relaxed),
            lines_unparsed: self.lines_unparsed.load(Relaxed),
            lines_invalid_utf8: self.lines_invalid_utf8.load(Relaxed),
            events: self.events.load(Relaxed),
            events_acked: self.events_acked.load(Relaxed),
            batches_acked: self.batches_acked.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            journal_entries: self.journal_entries.load(Relaxed),
        }
    }
}
