//! The accelerated compute sources of the metrics loop (issue 18): NVIDIA's DCGM exporter,
//! the EFA counters in sysfs and the kubelet's device assignments, read once per collection
//! when `accelerated_compute_metrics` is on — and not at all when it is off.
//!
//! Each is optional and fails alone: an exporter that does not answer (refused, an HTTP error,
//! no complete answer within [`crate::dcgm::SCRAPE_TIMEOUT`], text that is not Prometheus's)
//! costs that interval's GPU events, is logged once and then at most every five minutes while it
//! lasts, and is asked again at the next collection; the node, pod and EFA events go on. A
//! pod-resources socket that cannot be read leaves GPU and EFA metrics at node level (the
//! exporter's own pod labels still attribute GPUs).

use crate::dcgm::DcgmClient;
use crate::perf::Problems;
use crate::perf::accelerator::AcceleratorInputs;
use crate::pod_resources::PodResourcesClient;
use k8s_openapi::api::core::v1::Node;
use kinsight_model::config::AgentConfig;
use std::path::PathBuf;

pub(super) struct AcceleratorSources {
    enabled: bool,
    host_root: PathBuf,
    dcgm: Option<DcgmClient>,
    pod_resources: PodResourcesClient,
    problems: Problems,
}

impl AcceleratorSources {
    pub(super) fn new(cfg: &AgentConfig) -> AcceleratorSources {
        let k = &cfg.kinsight;
        let mut problems = Problems::default();
        let enabled = cfg.accelerated_compute_metrics;
        let dcgm = match k.dcgm_exporter_url.as_deref().filter(|_| enabled) {
            None => None,
            Some(url) => match DcgmClient::new(url) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.report("dcgm", &format!("{e}; GPU metrics"));
                    None
                }
            },
        };
        if enabled {
            tracing::info!(
                dcgm_exporter = dcgm.as_ref().map_or("(off)", |d| d.url()),
                "accelerated compute metrics are on: GPU metrics on nodes with an NVIDIA GPU, EFA counters from sysfs"
            );
        }
        AcceleratorSources {
            enabled,
            host_root: k.host_root.clone(),
            dcgm,
            pod_resources: PodResourcesClient::new(&k.host_root, &k.pod_resources_socket),
            problems,
        }
    }

    /// This collection's readings; `None` when accelerated compute metrics are off. The EFA
    /// counters are read last, closest to the collection's time stamp.
    pub(super) async fn read(&mut self, node: Option<&Node>) -> Option<AcceleratorInputs> {
        if !self.enabled {
            return None;
        }
        let mut out = AcceleratorInputs::default();
        if let Some(dcgm) = &self.dcgm {
            if crate::dcgm::node_has_gpu(&self.host_root, node) {
                // The client's own timeout bounds the whole request, body included.
                match dcgm.scrape().await {
                    Ok(samples) => {
                        self.problems.clear("dcgm");
                        out.gpu = Some(samples);
                    }
                    Err(e) => self.problems.report(
                        "dcgm",
                        &format!("{e}; GPU metrics, asked again next interval"),
                    ),
                }
            }
        }
        // Device assignments only when something is to be attributed by them: RDMA devices
        // (EFA's class), or GPU series the exporter did not label with a pod.
        let rdma_devices = std::fs::read_dir(self.host_root.join(crate::efa::SYSFS_CLASS))
            .is_ok_and(|mut d| d.next().is_some());
        let unlabelled_gpus = out.gpu.as_ref().is_some_and(|samples| {
            samples.iter().any(|s| {
                !s.labels
                    .iter()
                    .any(|(k, v)| (k == "pod" || k == "pod_name") && !v.is_empty())
            })
        });
        if rdma_devices || unlabelled_gpus {
            match self.pod_resources.list().await {
                Ok(a) => {
                    self.problems.clear("pod-resources");
                    out.devices = Some(a);
                }
                Err(e) => self.problems.report(
                    "pod-resources",
                    &format!(
                        "{e}; EFA (and unlabelled GPU) metrics are node-level only (mount the node's /var/lib/kubelet/pod-resources for pod attribution)"
                    ),
                ),
            }
        }
        let (efa, errors) = crate::efa::read_devices(&self.host_root);
        if errors.is_empty() {
            self.problems.clear("efa");
        }
        for e in errors {
            self.problems.report("efa", &format!("{e}; EFA metrics"));
        }
        out.efa = efa;
        Some(out)
    }
}
