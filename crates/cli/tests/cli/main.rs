//! End-to-end tests of the `kinsight` binary: real processes, real files, this machine's /proc.

mod agent;
mod alarms;
mod cwlogs;
mod durations;
mod e2e;
mod hostile;
mod limits;
#[path = "../../../promql/tests/support/prometheus.rs"]
mod prom_oracle;
mod prometheus;
mod query;
mod replicas;
#[path = "../../../store/tests/it/seaweed.rs"]
mod seaweed;
mod server;
mod shipping;
mod tls;
mod tokens;
