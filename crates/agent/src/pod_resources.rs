//! The kubelet's pod-resources API (`v1.PodResourcesLister/List`, gRPC on the unix socket
//! `/var/lib/kubelet/pod-resources/kubelet.sock`, read under `host_root`): which container was
//! given which device of an extended resource — an EFA device (`vpc.amazonaws.com/efa`, ids are
//! the devices' names), a GPU (`nvidia.com/gpu`, ids are the GPUs' UUIDs by default). It is how
//! EFA counters reach pods (issue 18), and how GPU metrics do when the DCGM exporter does not
//! label them itself.
//!
//! One unary call, spoken with `h2` and `prost` (both already in the workspace) rather than a
//! gRPC framework: an HTTP/2 POST with the 5-byte gRPC frame of an empty request, the answer's
//! single frame decoded into the three messages the agent reads — unknown fields (CPU ids,
//! memory, dynamic resources) are skipped by protobuf's rules. The socket needs no token; the
//! DaemonSet mounts its directory read-only when accelerated compute is on
//! (`deploy/helm`, docs/deploy.md).
//!
//! No kubelet runs on a test machine: the tests answer on a unix socket with a small h2 server.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The method's path (`k8s.io/kubelet/pkg/apis/podresources/v1`).
pub const LIST_PATH: &str = "/v1.PodResourcesLister/List";
/// How long one call may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// The kubelet's own limit on this API's answers.
pub const MAX_BYTES: usize = 16 << 20;

/// The messages of `api.proto` the agent reads, by their field numbers.
pub mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListPodResourcesRequest {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListPodResourcesResponse {
        #[prost(message, repeated, tag = "1")]
        pub pod_resources: Vec<PodResources>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodResources {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub namespace: String,
        #[prost(message, repeated, tag = "3")]
        pub containers: Vec<ContainerResources>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerResources {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, repeated, tag = "2")]
        pub devices: Vec<ContainerDevices>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerDevices {
        #[prost(string, tag = "1")]
        pub resource_name: String,
        #[prost(string, repeated, tag = "2")]
        pub device_ids: Vec<String>,
    }
}

#[derive(Debug, Error)]
pub enum PodResourcesError {
    #[error("kubelet pod-resources socket {socket}: {message}")]
    Connect { socket: PathBuf, message: String },
    #[error("kubelet pod-resources socket {socket}: {message}")]
    Protocol { socket: PathBuf, message: String },
    #[error("kubelet pod-resources socket {socket} answered gRPC status {code}: {message}")]
    Status {
        socket: PathBuf,
        code: u32,
        message: String,
    },
}

/// A container a device was given to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// Which container holds each device, by (resource name, device id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assignments {
    by_device: HashMap<(String, String), Holder>,
}

impl Assignments {
    pub fn from_response(r: &wire::ListPodResourcesResponse) -> Assignments {
        let mut by_device = HashMap::new();
        for p in &r.pod_resources {
            for c in &p.containers {
                for d in &c.devices {
                    for id in &d.device_ids {
                        by_device
                            .entry((d.resource_name.clone(), id.clone()))
                            .or_insert_with(|| Holder {
                                namespace: p.namespace.clone(),
                                pod: p.name.clone(),
                                container: c.name.clone(),
                            });
                    }
                }
            }
        }
        Assignments { by_device }
    }

    /// The container holding device `id` of `resource`.
    pub fn holder(&self, resource: &str, id: &str) -> Option<&Holder> {
        self.by_device.get(&(resource.to_string(), id.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }
}

/// A client of the kubelet's pod-resources socket.
#[derive(Debug, Clone)]
pub struct PodResourcesClient {
    socket: PathBuf,
}

impl PodResourcesClient {
    /// `socket` is a host path, read under `host_root`.
    pub fn new(host_root: &Path, socket: &Path) -> PodResourcesClient {
        let rel = socket.strip_prefix("/").unwrap_or(socket);
        PodResourcesClient {
            socket: host_root.join(rel),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `List`: every pod's devices, within [`TIMEOUT`].
    pub async fn list(&self) -> Result<Assignments, PodResourcesError> {
        match tokio::time::timeout(TIMEOUT, self.call()).await {
            Ok(r) => r.map(|r| Assignments::from_response(&r)),
            Err(_) => Err(self.protocol(format!("no answer within {TIMEOUT:?}"))),
        }
    }

    fn protocol(&self, message: String) -> PodResourcesError {
        PodResourcesError::Protocol {
            socket: self.socket.clone(),
            message,
        }
    }

    async fn call(&self) -> Result<wire::ListPodResourcesResponse, PodResourcesError> {
        let io = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| PodResourcesError::Connect {
                socket: self.socket.clone(),
                message: e.to_string(),
            })?;
        let h2err = |e: h2::Error| self.protocol(format!("HTTP/2: {e}"));
        let (client, conn) = h2::client::handshake(io).await.map_err(h2err)?;
        // The connection is driven beside the call and dropped with it.
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let result = async {
            let mut client = client.ready().await.map_err(h2err)?;
            let request = http::Request::post(format!("http://localhost{LIST_PATH}"))
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header(http::header::TE, "trailers")
                .body(())
                .map_err(|e| self.protocol(e.to_string()))?;
            let (response, mut send) = client.send_request(request, false).map_err(h2err)?;
            // The empty request: not compressed, zero bytes long.
            send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
                .map_err(h2err)?;
            let response = response.await.map_err(h2err)?;
            if response.status() != http::StatusCode::OK {
                return Err(self.protocol(format!("HTTP status {}", response.status())));
            }
            // A failed call may answer with headers only ("Trailers-Only").
            self.grpc_status(response.headers())?;
            let mut body = response.into_body();
            let mut buf = BytesMut::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(h2err)?;
                let _ = body.flow_control().release_capacity(chunk.len());
                if buf.len() + chunk.len() > MAX_BYTES + 5 {
                    return Err(self.protocol(format!("an answer over {MAX_BYTES} bytes")));
                }
                buf.extend_from_slice(&chunk);
            }
            if let Some(trailers) = body.trailers().await.map_err(h2err)? {
                self.grpc_status(&trailers)?;
            }
            decode_frame(buf.freeze()).map_err(|m| self.protocol(m))
        }
        .await;
        driver.abort();
        result
    }

    fn grpc_status(&self, headers: &http::HeaderMap) -> Result<(), PodResourcesError> {
        let Some(code) = headers.get("grpc-status") else {
            return Ok(());
        };
        let code: u32 = code.to_str().ok().and_then(|c| c.parse().ok()).unwrap_or(2);
        if code == 0 {
            return Ok(());
        }
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or("")
            .to_string();
        Err(PodResourcesError::Status {
            socket: self.socket.clone(),
            code,
            message,
        })
    }
}

/// One gRPC message frame: a compression flag (0), a big-endian length, the message.
fn decode_frame(mut buf: Bytes) -> Result<wire::ListPodResourcesResponse, String> {
    use prost::Message;
    if buf.len() < 5 {
        return Err(format!(
            "an answer of {} bytes, not a gRPC message",
            buf.len()
        ));
    }
    if buf.get_u8() != 0 {
        return Err("a compressed message (none was offered)".into());
    }
    let len = buf.get_u32() as usize;
    if buf.len() < len {
        return Err(format!("a message of {len} bytes cut at {}", buf.len()));
    }
    wire::ListPodResourcesResponse::decode(buf.split_to(len))
        .map_err(|e| format!("not a ListPodResourcesResponse: {e}"))
}

/// A gRPC frame holding `msg` (what the kubelet sends; for the tests' server).
pub fn encode_frame(msg: &wire::ListPodResourcesResponse) -> Bytes {
    use prost::Message;
    let body = msg.encode_to_vec();
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::wire::*;
    use super::*;

    fn response() -> ListPodResourcesResponse {
        ListPodResourcesResponse {
            pod_resources: vec![PodResources {
                name: "trainer-0".into(),
                namespace: "ml".into(),
                containers: vec![ContainerResources {
                    name: "pytorch".into(),
                    devices: vec![
                        ContainerDevices {
                            resource_name: "vpc.amazonaws.com/efa".into(),
                            device_ids: vec!["rdmap16s27".into()],
                        },
                        ContainerDevices {
                            resource_name: "nvidia.com/gpu".into(),
                            device_ids: vec!["GPU-a".into(), "GPU-b".into()],
                        },
                    ],
                }],
            }],
        }
    }

    #[test]
    fn frames_round_trip_and_devices_find_their_container() {
        let decoded = decode_frame(encode_frame(&response())).unwrap();
        assert_eq!(decoded, response());
        let a = Assignments::from_response(&decoded);
        let h = a.holder("nvidia.com/gpu", "GPU-b").unwrap();
        assert_eq!(
            (h.namespace.as_str(), h.pod.as_str(), h.container.as_str()),
            ("ml", "trainer-0", "pytorch")
        );
        assert!(a.holder("vpc.amazonaws.com/efa", "rdmap16s27").is_some());
        assert!(a.holder("nvidia.com/gpu", "rdmap16s27").is_none());
    }

    #[test]
    fn broken_frames_say_what_is_wrong() {
        assert!(decode_frame(Bytes::from_static(&[0, 0])).is_err());
        assert!(
            decode_frame(Bytes::from_static(&[1, 0, 0, 0, 0]))
                .unwrap_err()
                .contains("compressed")
        );
        assert!(
            decode_frame(Bytes::from_static(&[0, 0, 0, 0, 9, 1]))
                .unwrap_err()
                .contains("cut")
        );
        assert_eq!(
            decode_frame(Bytes::from_static(&[0, 0, 0, 0, 0])).unwrap(),
            ListPodResourcesResponse::default()
        );
    }

    #[test]
    fn the_socket_is_read_under_host_root() {
        let c = PodResourcesClient::new(
            Path::new("/rootfs"),
            Path::new("/var/lib/kubelet/pod-resources/kubelet.sock"),
        );
        assert_eq!(
            c.socket(),
            Path::new("/rootfs/var/lib/kubelet/pod-resources/kubelet.sock")
        );
    }
}
