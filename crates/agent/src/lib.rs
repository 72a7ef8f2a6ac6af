//! kinsight-agent: the node agent.
//!
//! It collects Container Insights performance events from cgroups and /proc ([`cgroup`],
//! [`host`], with EBS volume identity from sysfs: [`ebs`]), the kubelet ([`kubelet`], its
//! Summary API: [`summary`]) and the API server ([`apiserver`]; every request they make is an
//! entry of [`access`], which the RBAC of `deploy/` is checked against), builds the
//! reference's events with their EMF directives ([`perf`]), collects container, host and
//! dataplane logs ([`logs`]), and hands batches of [`kinsight_model::LogEvent`] to a
//! [`sink::Sink`] that acknowledges only once they are durable.
//!
//! With accelerated compute metrics on, it also reads NVIDIA's DCGM exporter ([`dcgm`]), the
//! EFA devices' counters in sysfs ([`efa`]) and the kubelet's device assignments
//! ([`pod_resources`]).
//!
//! When a container instance ends, it reports why, with the instance's own last log lines and
//! last readings ([`restarts`]).
//!
//! It deliberately does not depend on the storage or query crates (no DataFusion): the agent
//! binary path stays small and quick to build.

pub mod access;
pub mod apiserver;
pub mod cgroup;
pub mod dcgm;
pub mod ebs;
pub mod efa;
pub mod host;
pub mod kubelet;
pub mod logs;
pub mod perf;
pub mod pod_resources;
pub mod prometheus;
pub mod pseudofs;
pub mod restarts;
pub mod run;
pub mod runtime;
pub mod server_tls;
pub mod shipper;
pub mod sink;
pub mod summary;
