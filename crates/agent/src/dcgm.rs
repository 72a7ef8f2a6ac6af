//! NVIDIA's DCGM exporter on this node (issue 18, accelerated compute): its Prometheus text
//! endpoint (`http://localhost:9400/metrics` unless `kinsight.dcgm_exporter_url` says
//! otherwise), read every collection for the fields behind the reference's GPU metrics
//! ([`kinsight_model::catalogue::accelerated::GPU_MEASUREMENTS`]) and the frame-buffer fields
//! that stand in for `DCGM_FI_DEV_FB_TOTAL` / `_FB_USED_PERCENT` when the exporter's counter
//! list leaves those two out (dcgm-exporter's default list does).
//!
//! Run in Kubernetes mode (its default in NVIDIA's chart and the GPU operator), the exporter
//! asks the kubelet's pod-resources API itself which container holds each GPU and labels the
//! GPU's series with `pod`, `namespace` and `container` (`pod_name`, `pod_namespace`,
//! `container_name` with `--use-old-namespace`): that is how GPU metrics reach pods, and the
//! agent's own pod-resources reading ([`crate::pod_resources`]) is only the fallback for an
//! exporter that does not label.
//!
//! The agent asks only on a node with an NVIDIA GPU ([`node_has_gpu`]), so a fleet with a few
//! GPU nodes does not log a refused connection from every other node. It knows no NVML: there
//! is no well-kept Rust crate that loads `libnvidia-ml.so` without the NVIDIA driver's
//! libraries in the agent's image, and the exporter is what the CloudWatch agent reads too.
//!
//! No GPU can be used on a test machine: the tests serve recorded-style dcgm-exporter text.

use crate::prometheus::{ParseError, Sample};
use k8s_openapi::api::core::v1::Node;
use kinsight_model::catalogue::accelerated::{GPU_MEASUREMENTS, GPU_RESOURCE};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// How long a scrape may take (a GPU node's exporter answers tens of kilobytes in
/// milliseconds).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer longer than this is refused (eight GPUs with every profiling field are well
/// under a megabyte).
pub const MAX_BYTES: usize = 16 << 20;

/// Frame-buffer fields (MiB) read besides the reference's: used + free (+ reserved) is the
/// total, and used / (used + free) the utilization, when `DCGM_FI_DEV_FB_TOTAL` and
/// `DCGM_FI_DEV_FB_USED_PERCENT` are not exported (DCGM's definitions: total = free + used +
/// reserved; used percent = used / (total − reserved)).
pub const FB_FREE: &str = "DCGM_FI_DEV_FB_FREE";
pub const FB_RESERVED: &str = "DCGM_FI_DEV_FB_RESERVED";

/// Whether the exporter's series `name` is one the agent reads.
pub fn wanted(name: &str) -> bool {
    name.starts_with("DCGM_FI_")
        && (name == FB_FREE
            || name == FB_RESERVED
            || GPU_MEASUREMENTS.iter().any(|(_, field)| *field == name))
}

#[derive(Debug, Error)]
pub enum DcgmError {
    #[error("DCGM exporter at {url} is not reachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("DCGM exporter at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("DCGM exporter at {url}: the answer is longer than {MAX_BYTES} bytes")]
    TooLarge { url: String },
    #[error("DCGM exporter at {url} answered something that is not Prometheus text: {source}")]
    Malformed {
        url: String,
        #[source]
        source: ParseError,
    },
    #[error("cannot build the DCGM exporter client: {0}")]
    Client(String),
}

/// A client of the node's DCGM exporter.
#[derive(Clone)]
pub struct DcgmClient {
    url: String,
    http: reqwest::Client,
}

impl DcgmClient {
    pub fn new(url: &str) -> Result<DcgmClient, DcgmError> {
        let http = reqwest::Client::builder()
            .timeout(SCRAPE_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| DcgmError::Client(e.to_string()))?;
        Ok(DcgmClient {
            url: url.to_string(),
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One scrape: the samples of the fields the agent reads, in the order written.
    pub async fn scrape(&self) -> Result<Vec<Sample>, DcgmError> {
        let unreachable = |e: reqwest::Error| DcgmError::Unreachable {
            url: self.url.clone(),
            message: crate::kubelet::error_chain(&e),
        };
        let mut resp = self
            .http
            .get(&self.url)
            .header(http::header::ACCEPT, "text/plain;version=0.0.4")
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(DcgmError::Status {
                url: self.url.clone(),
                status,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(DcgmError::TooLarge {
                    url: self.url.clone(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        parse(&String::from_utf8_lossy(&body)).map_err(|source| DcgmError::Malformed {
            url: self.url.clone(),
            source,
        })
    }
}

/// The samples of an exporter's text that the agent reads.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    crate::prometheus::parse_text(text, wanted)
}

/// Whether this node has an NVIDIA GPU: its Node object advertises `nvidia.com/gpu` capacity
/// (NVIDIA's device plugin), or the driver lists a GPU under `/proc/driver/nvidia/gpus`
/// (read under `host_root`; present with the driver loaded, device plugin or not).
pub fn node_has_gpu(host_root: &Path, node: Option<&Node>) -> bool {
    let capacity = node
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get(GPU_RESOURCE))
        .and_then(|q| crate::perf::quantity::parse_quantity(&q.0))
        .is_some_and(|n| n > 0.0);
    capacity
        || std::fs::read_dir(host_root.join("proc/driver/nvidia/gpus"))
            .is_ok_and(|mut d| d.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_fields_behind_the_reference_metrics() {
        for n in [
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_FB_FREE",
            "DCGM_FI_DEV_FB_TOTAL",
            "DCGM_FI_DEV_FB_USED_PERCENT",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_GPU_TEMP",
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        ] {
            assert!(wanted(n), "{n}");
        }
        for n in [
            "DCGM_FI_DEV_SM_CLOCK",
            "DCGM_FI_DEV_MEMORY_TEMP",
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "DCGM_FI_DEV_GPU_UTIL_bucket",
            "go_goroutines",
        ] {
            assert!(!wanted(n), "{n}");
        }
    }

    #[test]
    fn a_gpu_node_by_capacity_or_by_driver() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!node_has_gpu(dir.path(), None));
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "48", "nvidia.com/gpu": "4"}}
        }))
        .unwrap();
        assert!(node_has_gpu(dir.path(), Some(&node)));
        let cpu_only: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"}, "status": {"capacity": {"cpu": "48", "nvidia.com/gpu": "0"}}
        }))
        .unwrap();
        assert!(!node_has_gpu(dir.path(), Some(&cpu_only)));
        std::fs::create_dir_all(dir.path().join("proc/driver/nvidia/gpus")).unwrap();
        assert!(!node_has_gpu(dir.path(), Some(&cpu_only)), "no GPU listed");
        std::fs::create_dir_all(dir.path().join("proc/driver/nvidia/gpus/0000:00:1e.0")).unwrap();
        assert!(node_has_gpu(dir.path(), Some(&cpu_only)));
    }
}
