//! Integration tests of kinsight-metrics: the store through its public API, on real files.

mod equivalence;
mod events;
mod prom_read;
mod snapshot;
mod store;
