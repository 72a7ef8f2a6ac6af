//! Integration tests of the agent's metrics side: formulas on fixture host trees (cgroup v2
//! with the systemd driver and v1 with cgroupfs, layouts this machine partly lacks), real
//! cgroups with real processes, the kubelet and API server served as recorded JSON by a test
//! server (they cannot run here; the kubelet also over real TLS), leader election, the
//! control-plane events from recorded-style API server `/metrics` text, and bad input.

mod accelerator;
mod access;
mod containerd;
mod control_plane;
mod fake_kube;
mod fixtures;
mod formulas;
mod kubelet;
mod kubelet_tls;
mod leader;
mod podman;
mod real_cgroups;
mod restarts;
mod shipper;
mod storage;
mod token_secret;
