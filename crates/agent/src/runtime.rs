//! Container hosts without Kubernetes (issue [8/8]): discovers the containers of a local podman
//! (from its state files) or docker (from its API socket) and presents them as Kubernetes Pod
//! objects, so that the same collector and log pipeline report them with the same events and
//! fields. A podman pod's containers get the pod's name as `kubernetes.pod_name` and their name
//! inside the pod as `kubernetes.container_name`; a stand-alone container is a pod of one.
//!
//! Podman keeps its state in files: `overlay-containers/containers.json` (ids, names, images),
//! each container's OCI `config.json` (cgroup path, resources, sandbox id), the runtime dir's
//! `pidfile`, and the pod records (JSON) inside `libpod/bolt_state.db`. Docker is asked through
//! `/var/run/docker.sock` (Engine API). Both are read under `host_root`.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{runtime} at {path} answered garbage: {message}")]
    Garbage {
        runtime: &'static str,
        path: PathBuf,
        message: String,
    },
}

/// Log file format of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `<time> <stream> <P|F> <text>` (podman's k8s-file, containerd, cri-o).
    Cri,
    /// Docker's json-file.
    DockerJson,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeContainer {
    pub runtime: &'static str,
    /// Namespace reported as the Kubernetes namespace: `podman`, `docker`, `containerd`, or the
    /// pod's namespace for a CRI container whose kubelet is not reachable.
    pub namespace: String,
    pub id: String,
    /// Name inside its pod.
    pub name: String,
    /// Podman pod id, or the container's own id when it stands alone.
    pub pod_id: String,
    pub pod_name: String,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub running: bool,
    pub pid: Option<u32>,
    pub log_path: Option<PathBuf>,
    pub log_format: LogFormat,
    pub cpu_limit_m: Option<f64>,
    pub mem_limit: Option<f64>,
    pub mem_request: Option<f64>,
    pub restart_count: u64,
}

/// Every container of the runtimes found under `host_root`. A runtime that is not installed is
/// not an error; one whose state cannot be read is reported and the others still count.
pub async fn discover(host_root: &Path) -> (Vec<RuntimeContainer>, Vec<RuntimeError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    match podman_containers(host_root) {
        Ok(c) => out.extend(c),
        Err(e) => errors.push(e),
    }
    match containerd_containers(host_root) {
        Ok(c) => out.extend(c),
        Err(e) => errors.push(e),
    }
    for sock in ["var/run/docker.sock", "run/docker.sock"] {
        let path = host_root.join(sock);
        if path.exists() {
            match docker_containers(&path).await {
                Ok(c) => out.extend(c),
                Err(e) => errors.push(e),
            }
            break;
        }
    }
    (out, errors)
}

// ---------------------------------------------------------------------------------------- podman

const PODMAN_STORAGE: &str = "var/lib/containers/storage";
const PODMAN_RUN: &str = "run/containers/storage";

/// Reads podman's state files; an absent podman yields an empty list.
pub fn podman_containers(host_root: &Path) -> Result<Vec<RuntimeContainer>, RuntimeError> {
    let storage = host_root.join(PODMAN_STORAGE);
    let list_path = storage.join("overlay-containers/containers.json");
    let text = match std::fs::read_to_string(&list_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(RuntimeError::Read {
                path: list_path,
                message: e.to_string(),
            });
        }
    };
    let list: Vec<Value> = serde_json::from_str(&text).map_err(|e| RuntimeError::Garbage {
        runtime: "podman",
        path: list_path.clone(),
        message: e.to_string(),
    })?;
    let pods = podman_pods(&storage.join("libpod/bolt_state.db"));
    let mut out = Vec::new();
    for c in list {
        let Some(id) = c["id"].as_str().filter(|s| is_hex_id(s)) else {
            continue;
        };
        let full_name = c["names"]
            .get(0)
            .and_then(Value::as_str)
            .unwrap_or(id)
            .to_string();
        let meta: Value = c["metadata"]
            .as_str()
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or(Value::Null);
        let userdata = storage.join("overlay-containers").join(id).join("userdata");
        let config: Value = std::fs::read_to_string(userdata.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let annotations = &config["annotations"];
        if annotations["io.kubernetes.cri-o.ContainerType"] == "sandbox"
            || full_name.ends_with("-infra")
        {
            continue; // the pod's infra (pause) container
        }
        let cgroup = config["linux"]["cgroupsPath"].as_str().unwrap_or_default();
        let pod_id = Path::new(cgroup)
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().to_string())
            .filter(|n| is_hex_id(n));
        let (pod_id, pod_name, labels, name) =
            match pod_id.as_ref().and_then(|p| pods.get(p).map(|v| (p, v))) {
                Some((pid, (pname, labels))) => {
                    let inner = full_name
                        .strip_prefix(&format!("{pname}-"))
                        .unwrap_or(&full_name)
                        .to_string();
                    (pid.clone(), pname.clone(), labels.clone(), inner)
                }
                None => (
                    id.to_string(),
                    full_name.clone(),
                    BTreeMap::new(),
                    full_name.clone(),
                ),
            };
        let pidfile = host_root
            .join(PODMAN_RUN)
            .join("overlay-containers")
            .join(id)
            .join("userdata/pidfile");
        let pid = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let running = pid.is_some_and(|p| host_root.join(format!("proc/{p}")).exists());
        let res = &config["linux"]["resources"];
        let cpu_limit_m = match (res["cpu"]["quota"].as_i64(), res["cpu"]["period"].as_i64()) {
            (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64 * 1000.0),
            _ => None,
        };
        let log = userdata.join("ctr.log");
        out.push(RuntimeContainer {
            runtime: "podman",
            namespace: "podman".into(),
            id: id.to_string(),
            name,
            pod_id,
            pod_name,
            labels,
            image: meta["image-name"].as_str().unwrap_or_default().to_string(),
            running,
            pid: pid.filter(|_| running),
            log_path: log.exists().then_some(log),
            log_format: LogFormat::Cri,
            cpu_limit_m,
            mem_limit: res["memory"]["limit"].as_f64().filter(|l| *l > 0.0),
            mem_request: res["memory"]["reservation"].as_f64().filter(|l| *l > 0.0),
            restart_count: 0,
        });
    }
    Ok(out)
}

/// Pod records in podman's BoltDB: bolt stores each value contiguously, and a pod's config is
/// a JSON object starting `{"id":"<64 hex>","name":...` with pod-only keys (`sharesNet`,
/// `hasInfra`). Returns pod id → (name, labels); an unreadable file gives an empty map, and
/// containers then count as stand-alone.
fn podman_pods(path: &Path) -> HashMap<String, (String, BTreeMap<String, String>)> {
    let Ok(data) = std::fs::read(path) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    let needle = b"{\"id\":\"";
    let mut i = 0;
    while let Some(pos) = find(&data[i..], needle) {
        let start = i + pos;
        i = start + needle.len();
        let end = (start + 64 * 1024).min(data.len());
        let text = String::from_utf8_lossy(&data[start..end]);
        let mut de = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
        let Some(Ok(v)) = de.next() else { continue };
        if v.get("hasInfra").is_none() && v.get("sharesNet").is_none() {
            continue;
        }
        let (Some(id), Some(name)) = (v["id"].as_str(), v["name"].as_str()) else {
            continue;
        };
        let labels = v["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(id.to_string(), (name.to_string(), labels));
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------- containerd

/// Where containerd (and k3s' embedded one) keep the state of running tasks.
const CONTAINERD_TASKS: &[&str] = &[
    "run/containerd/io.containerd.runtime.v2.task",
    "run/k3s/containerd/io.containerd.runtime.v2.task",
];

/// Running containerd tasks, from each task's state directory
/// (`<state>/io.containerd.runtime.v2.task/<namespace>/<id>/{config.json,init.pid}`): the OCI
/// spec gives the cgroup, the limits and the annotations that name it — CRI's
/// `io.kubernetes.cri.*` (pod, namespace, container; sandboxes are infra and skipped), nerdctl's
/// `nerdctl/name`, or a `name` label passed to `ctr run --label`; otherwise the short id.
pub fn containerd_containers(host_root: &Path) -> Result<Vec<RuntimeContainer>, RuntimeError> {
    let mut out = Vec::new();
    for rel in CONTAINERD_TASKS {
        let tasks = host_root.join(rel);
        let Ok(namespaces) = std::fs::read_dir(&tasks) else {
            continue;
        };
        for ns in namespaces.flatten() {
            let Ok(ids) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for task in ids.flatten() {
                let id = task.file_name().to_string_lossy().to_string();
                let config_path = task.path().join("config.json");
                let Ok(text) = std::fs::read_to_string(&config_path) else {
                    continue;
                };
                let config: Value =
                    serde_json::from_str(&text).map_err(|e| RuntimeError::Garbage {
                        runtime: "containerd",
                        path: config_path.clone(),
                        message: e.to_string(),
                    })?;
                let a = &config["annotations"];
                let ann = |k: &str| a[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
                if ann("io.kubernetes.cri.container-type").as_deref() == Some("sandbox") {
                    continue;
                }
                let short = id.chars().take(12).collect::<String>();
                let name = ann("io.kubernetes.cri.container-name")
                    .or_else(|| ann("nerdctl/name"))
                    .or_else(|| ann("name"))
                    .unwrap_or_else(|| short.clone());
                let (pod_id, pod_name, namespace) = match (
                    ann("io.kubernetes.cri.sandbox-uid"),
                    ann("io.kubernetes.cri.sandbox-name"),
                ) {
                    (Some(uid), Some(pod)) => (
                        uid,
                        pod,
                        ann("io.kubernetes.cri.sandbox-namespace")
                            .unwrap_or_else(|| "default".into()),
                    ),
                    _ => (id.clone(), name.clone(), "containerd".to_string()),
                };
                let pid = std::fs::read_to_string(task.path().join("init.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                let running = pid.is_some_and(|p| host_root.join(format!("proc/{p}")).exists());
                let res = &config["linux"]["resources"];
                let cpu_limit_m =
                    match (res["cpu"]["quota"].as_i64(), res["cpu"]["period"].as_i64()) {
                        (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64 * 1000.0),
                        _ => None,
                    };
                let mut labels = BTreeMap::new();
                labels.insert(
                    "containerd.namespace".to_string(),
                    ns.file_name().to_string_lossy().to_string(),
                );
                out.push(RuntimeContainer {
                    runtime: "containerd",
                    namespace,
                    id: id.clone(),
                    name,
                    pod_id,
                    pod_name,
                    labels,
                    image: ann("io.kubernetes.cri.image-name")
                        .or_else(|| ann("org.opencontainers.image.ref.name"))
                        .unwrap_or_default(),
                    running,
                    pid: pid.filter(|_| running),
                    log_path: None,
                    log_format: LogFormat::Cri,
                    cpu_limit_m,
                    mem_limit: res["memory"]["limit"].as_f64().filter(|l| *l > 0.0),
                    mem_request: res["memory"]["reservation"].as_f64().filter(|l| *l > 0.0),
                    restart_count: 0,
                });
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------- docker

/// Asks the Docker Engine API on a unix socket for every container.
pub async fn docker_containers(sock: &Path) -> Result<Vec<RuntimeContainer>, RuntimeError> {
    let list = unix_get_json(sock, "/containers/json?all=1").await?;
    let items = list.as_array().ok_or_else(|| RuntimeError::Garbage {
        runtime: "docker",
        path: sock.to_path_buf(),
        message: "container list is not an array".into(),
    })?;
    let mut out = Vec::new();
    for item in items {
        let Some(id) = item["Id"].as_str().filter(|s| is_hex_id(s)) else {
            continue;
        };
        let labels: BTreeMap<String, String> = item["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if labels.contains_key("io.kubernetes.pod.name") {
            continue; // managed by a kubelet (dockershim): reported through the kubelet instead
        }
        let inspect = unix_get_json(sock, &format!("/containers/{id}/json")).await?;
        let name = item["Names"]
            .get(0)
            .and_then(Value::as_str)
            .unwrap_or(id)
            .trim_start_matches('/')
            .to_string();
        // Each docker container has its own cgroup: it is a pod of one (compose labels stay labels).
        let (pod_id, pod_name, inner) = (id.to_string(), name.clone(), name.clone());
        let hc = &inspect["HostConfig"];
        let cpu_limit_m = match (
            hc["NanoCpus"].as_f64(),
            hc["CpuQuota"].as_f64(),
            hc["CpuPeriod"].as_f64(),
        ) {
            (Some(n), _, _) if n > 0.0 => Some(n / 1e6),
            (_, Some(q), Some(p)) if q > 0.0 && p > 0.0 => Some(q / p * 1000.0),
            _ => None,
        };
        let running = inspect["State"]["Running"].as_bool().unwrap_or(false);
        out.push(RuntimeContainer {
            runtime: "docker",
            namespace: "docker".into(),
            id: id.to_string(),
            name: inner,
            pod_id,
            pod_name,
            labels,
            image: item["Image"].as_str().unwrap_or_default().to_string(),
            running,
            pid: inspect["State"]["Pid"]
                .as_u64()
                .filter(|p| *p > 0 && running)
                .map(|p| p as u32),
            log_path: inspect["LogPath"]
                .as_str()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            log_format: LogFormat::DockerJson,
            cpu_limit_m,
            mem_limit: hc["Memory"].as_f64().filter(|m| *m > 0.0),
            mem_request: hc["MemoryReservation"].as_f64().filter(|m| *m > 0.0),
            restart_count: inspect["RestartCount"].as_u64().unwrap_or(0),
        });
    }
    Ok(out)
}

/// `GET` over a unix socket with HTTP/1.0 (no chunked encoding), 5 s timeout.
async fn unix_get_json(sock: &Path, path: &str) -> Result<Value, RuntimeError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let err = |message: String| RuntimeError::Read {
        path: sock.to_path_buf(),
        message,
    };
    let fut = async {
        let mut s = tokio::net::UnixStream::connect(sock)
            .await
            .map_err(|e| err(e.to_string()))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
            .await
            .map_err(|e| err(e.to_string()))?;
        let mut buf = Vec::new();
        s.take(64 << 20)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok::<_, RuntimeError>(buf)
    };
    let buf = tokio::time::timeout(std::time::Duration::from_secs(5), fut)
        .await
        .map_err(|_| err("no answer within 5 s".into()))??;
    let garbage = |message: String| RuntimeError::Garbage {
        runtime: "docker",
        path: sock.to_path_buf(),
        message,
    };
    let split = find(&buf, b"\r\n\r\n").ok_or_else(|| garbage("no HTTP header".into()))?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(garbage(format!("HTTP {status} for {path}")));
    }
    serde_json::from_slice(&buf[split + 4..]).map_err(|e| garbage(format!("{path}: {e}")))
}

// ---------------------------------------------------------------------------------------- pods

/// Presents runtime containers as the Pod objects the kubelet would return, so the collector
/// and the log enrichment treat them like any other pod. `containerID` uses the runtime's
/// scheme (`podman://<id>`, `docker://<id>`).
pub fn to_pods(containers: &[RuntimeContainer], node: &str) -> Vec<Pod> {
    let mut by_pod: BTreeMap<(String, String), Vec<&RuntimeContainer>> = BTreeMap::new();
    for c in containers {
        by_pod
            .entry((c.namespace.clone(), c.pod_id.clone()))
            .or_default()
            .push(c);
    }
    let mut pods = Vec::new();
    for ((namespace, pod_id), cs) in by_pod {
        let first = cs[0];
        let spec_containers: Vec<Value> = cs
            .iter()
            .map(|c| {
                let mut limits = serde_json::Map::new();
                let mut requests = serde_json::Map::new();
                if let Some(l) = c.cpu_limit_m {
                    limits.insert("cpu".into(), format!("{}m", l.round() as i64).into());
                }
                if let Some(l) = c.mem_limit {
                    limits.insert("memory".into(), format!("{}", l as u64).into());
                }
                if let Some(r) = c.mem_request {
                    requests.insert("memory".into(), format!("{}", r as u64).into());
                }
                json!({"name": c.name, "image": c.image, "resources": {"limits": limits, "requests": requests}})
            })
            .collect();
        let statuses: Vec<Value> = cs
            .iter()
            .map(|c| {
                let state = if c.running { json!({"running": {}}) } else { json!({"terminated": {"exitCode": 0, "reason": "Exited"}}) };
                json!({"name": c.name, "ready": c.running, "restartCount": c.restart_count, "image": c.image, "imageID": "",
                       "containerID": format!("{}://{}", c.runtime, c.id), "state": state})
            })
            .collect();
        let phase = if cs.iter().any(|c| c.running) {
            "Running"
        } else {
            "Succeeded"
        };
        let pod = json!({
            "metadata": {"name": first.pod_name, "namespace": namespace, "uid": pod_id, "labels": first.labels},
            "spec": {"nodeName": node, "containers": spec_containers},
            "status": {"phase": phase, "containerStatuses": statuses},
        });
        if let Ok(p) = serde_json::from_value(pod) {
            pods.push(p);
        }
    }
    pods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_from_bolt_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let id = "4a6184991cbfb80d7b04883d88a74d1bfbf50279e60b5895bd39841cd46c4aef";
        let mut data = vec![0u8; 100];
        data.extend_from_slice(format!(r#"{{"id":"{id}","name":"web","hostname":"web","labels":{{"app":"web"}},"sharesNet":true,"hasInfra":true}}"#).as_bytes());
        data.extend_from_slice(&[0xff, 0x00, 0x13]);
        data.extend_from_slice(br#"{"id":"broken"#);
        std::fs::write(dir.path().join("db"), &data).unwrap();
        let pods = podman_pods(&dir.path().join("db"));
        assert_eq!(pods.get(id).map(|p| p.0.as_str()), Some("web"));
        assert_eq!(pods[id].1.get("app").map(String::as_str), Some("web"));
        assert!(podman_pods(&dir.path().join("absent")).is_empty());
    }

    /// Serves canned HTTP answers on a unix socket: a Docker engine cannot run on the test
    /// machines, so its API is played back from recorded Engine API documents.
    async fn fake_docker(dir: &Path, answers: Vec<(String, String)>) -> PathBuf {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = dir.join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = answers
                    .iter()
                    .find(|(p, _)| req.contains(p.as_str()))
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                let _ = s.write_all(body.as_bytes()).await;
            }
        });
        sock
    }

    #[tokio::test]
    async fn docker_engine_api_containers_become_pods_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let id = "4f2b8c1d9e0a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c";
        let list = format!(
            r#"[{{"Id":"{id}","Names":["/web"],"Image":"nginx:1.27","ImageID":"sha256:abc","State":"running","Status":"Up 2 hours","Labels":{{"com.docker.compose.project":"shop"}}}},
            {{"Id":"{k}","Names":["/k8s_app_pod"],"Image":"x","State":"running","Labels":{{"io.kubernetes.pod.name":"pod"}}}}]"#,
            k = "b".repeat(64)
        );
        let inspect = format!(
            r#"{{"Id":"{id}","State":{{"Status":"running","Running":true,"Pid":4321}},"LogPath":"/var/lib/docker/containers/{id}/{id}-json.log","RestartCount":2,"HostConfig":{{"NanoCpus":500000000,"Memory":134217728,"MemoryReservation":0}}}}"#
        );
        let sock = fake_docker(
            dir.path(),
            vec![
                (
                    "/containers/json".to_string(),
                    format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{list}"),
                ),
                (
                    format!("/containers/{id}/json"),
                    format!("HTTP/1.0 200 OK\r\n\r\n{inspect}"),
                ),
            ],
        )
        .await;
        let cs = docker_containers(&sock).await.unwrap();
        assert_eq!(
            cs.len(),
            1,
            "containers of a kubelet (dockershim) are left to the kubelet"
        );
        let c = &cs[0];
        assert_eq!(
            (c.name.as_str(), c.pod_name.as_str(), c.pod_id.as_str()),
            ("web", "web", id)
        );
        assert_eq!(c.cpu_limit_m, Some(500.0));
        assert_eq!(c.mem_limit, Some(134217728.0));
        assert_eq!(c.restart_count, 2);
        assert_eq!(c.pid, Some(4321));
        assert_eq!(c.log_format, LogFormat::DockerJson);
        let pods = to_pods(&cs, "host");
        assert_eq!(pods[0].metadata.namespace.as_deref(), Some("docker"));
        assert_eq!(
            pods[0]
                .status
                .as_ref()
                .unwrap()
                .container_statuses
                .as_ref()
                .unwrap()[0]
                .container_id
                .as_deref(),
            Some(format!("docker://{id}").as_str())
        );
    }

    #[tokio::test]
    async fn docker_socket_answering_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let sock = fake_docker(
            dir.path(),
            vec![(
                "/containers/json".to_string(),
                "HTTP/1.0 200 OK\r\n\r\n<html>nope</html>".to_string(),
            )],
        )
        .await;
        let e = docker_containers(&sock).await.unwrap_err().to_string();
        assert!(
            e.contains("docker") && e.contains("docker.sock") && e.contains("/containers/json"),
            "{e}"
        );
        let sock = fake_docker(
            &dir.path().join("x").tap_mkdir(),
            vec![(
                "/containers/json".to_string(),
                "garbage without header".to_string(),
            )],
        )
        .await;
        assert!(
            docker_containers(&sock)
                .await
                .unwrap_err()
                .to_string()
                .contains("no HTTP header")
        );
        // A socket path nobody listens on.
        let e = docker_containers(&dir.path().join("absent.sock"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent.sock"), "{e}");
    }

    trait TapMkdir {
        fn tap_mkdir(self) -> PathBuf;
    }
    impl TapMkdir for PathBuf {
        fn tap_mkdir(self) -> PathBuf {
            std::fs::create_dir_all(&self).unwrap();
            self
        }
    }

    #[test]
    fn absent_podman_is_empty_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(podman_containers(dir.path()).unwrap().is_empty());
        std::fs::create_dir_all(dir.path().join(PODMAN_STORAGE).join("overlay-containers"))
            .unwrap();
        std::fs::write(
            dir.path()
                .join(PODMAN_STORAGE)
                .join("overlay-containers/containers.json"),
            "not json",
        )
        .unwrap();
        assert!(matches!(
            podman_containers(dir.path()),
            Err(RuntimeError::Garbage { .. })
        ));
    }
}
