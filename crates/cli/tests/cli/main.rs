//! End-to-end tests of the `kinsight` binary: real processes, real files, this machine's /proc.

mod agent;
mod alarms;
mod e2e;
mod query;
mod seaweed;
mod server;
mod shipping;
