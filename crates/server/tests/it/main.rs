//! Integration tests of the HTTP layer: the router through `oneshot` (no socket) and one
//! real-socket module for long-poll and server-sent events. Process-level tests (SIGKILL under
//! load, S3, full disk) run the real binary: `crates/cli/tests/cli/server.rs`.

mod budget;
mod cardinality;
mod cwlogs;
mod filter_pattern;
mod fuzz_corpus;
mod metrics_alarms;
mod otlp;
mod prometheus;
mod query;
mod remote_write;
mod replica_alarms;
mod router;
mod sigv4;
mod socket;
mod support;
mod transport;
mod ui;
mod webhooks;
