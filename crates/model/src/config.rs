//! Agent configuration: the seed's ConfigMap document (`cwagentconfig.json`) plus kinsight's
//! own settings in a `"kinsight"` object (issue [1/8], reference §4.1).
//!
//! Accepted shapes, unchanged from what users already have:
//! * `{"structuredlogs": {"metrics_collected": {"kubernetes": {...}}, "force_flush_interval": 5}}`
//!   (the 2019 seed),
//! * `{"logs": {"metrics_collected": {"kubernetes": {...}}, "force_flush_interval": 5}}` (the
//!   current agent), with every key of the reference's table.
//!
//! Unknown keys become warnings (the agent logs them); a value of the wrong type is an error
//! naming the key's full path. Environment variables of the seed's DaemonSet (`HOST_IP`,
//! `HOST_NAME`, `K8S_NAMESPACE`) fill what the document leaves out; they are read through a
//! function so tests need not touch the process environment.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use thiserror::Error;

use crate::names::{DEFAULT_LOG_GROUP_PREFIX, GroupKind, LogGroups, validate_log_group_name};

/// The longest interval a config may set (`metrics_collection_interval`,
/// `force_flush_interval`): a day.
pub const MAX_INTERVAL_SECONDS: u64 = 86_400;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("config key `{key}` must be {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error(
        "config has no `logs.metrics_collected.kubernetes` (or `structuredlogs...`) section and no `kinsight` section: nothing to collect"
    )]
    NothingToCollect,
    #[error(
        "cluster name is not set: set `logs.metrics_collected.kubernetes.cluster_name` (or the CLUSTER_NAME environment variable)"
    )]
    MissingClusterName,
}

/// A multiline rule: which containers' logs get stack traces joined, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultilineRule {
    /// Namespace the rule applies to; `None` = every namespace.
    pub namespace: Option<String>,
    /// Pod name glob (`*` wildcard); `None` = every pod.
    pub pod: Option<String>,
    /// Container name; `None` = every container.
    pub container: Option<String>,
    /// `java`, `python`, `go`, `node` or `auto` (all of them).
    pub language: String,
}

/// Log collection settings (`kinsight.logs`, issue [2/8]).
#[derive(Debug, Clone, PartialEq)]
pub struct LogsSettings {
    pub enabled: bool,
    /// Read files that exist at first start (with no checkpoint) from their beginning.
    pub read_from_head: bool,
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    /// Pods carrying any of these labels (key → value) are not collected.
    pub exclude_pod_labels: BTreeMap<String, String>,
    /// Add pod labels to `kubernetes.labels` (on by default).
    pub labels: bool,
    /// Add pod annotations to `kubernetes.annotations` (opt-in).
    pub annotations: bool,
    pub multiline: Vec<MultilineRule>,
    /// Per-container line rate limit; 0 = unlimited.
    pub rate_limit_lines_per_second: u64,
    pub rescan_interval_seconds: u64,
    /// How long a deleted pod's metadata is kept to enrich its last lines.
    pub metadata_retention_seconds: u64,
    pub journald: bool,
    /// Journal directory relative to `host_root` (default `/var/log/journal`, falling back to `/run/log/journal`).
    pub journal_dir: Option<PathBuf>,
}

impl Default for LogsSettings {
    fn default() -> Self {
        LogsSettings {
            enabled: true,
            read_from_head: false,
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            exclude_pod_labels: BTreeMap::new(),
            labels: true,
            annotations: false,
            multiline: Vec::new(),
            rate_limit_lines_per_second: 0,
            rescan_interval_seconds: 10,
            metadata_retention_seconds: 300,
            journald: true,
            journal_dir: None,
        }
    }
}

/// kinsight's own settings (the `"kinsight"` object).
#[derive(Debug, Clone, PartialEq)]
pub struct KinsightSettings {
    /// Where the host's /proc, /sys and /var/log are mounted (`/rootfs` in a DaemonSet).
    pub host_root: PathBuf,
    /// Kubelet base URL; default `https://${HOST_IP}:10250`. `None` when HOST_IP is unknown.
    pub kubelet_url: Option<String>,
    pub kubelet_token_file: PathBuf,
    pub kubelet_ca_file: PathBuf,
    /// Accept any kubelet serving certificate. Off by default: the kubelet's certificate is
    /// verified against `kubelet_ca_file` before the token is sent (issue 15, item 9). Kubelets
    /// that sign their own serving certificate need the CA that signed it, or this.
    pub kubelet_insecure_skip_verify: bool,
    /// API server URL; default from the in-cluster environment (KUBERNETES_SERVICE_HOST/PORT).
    pub api_server_url: Option<String>,
    pub state_dir: PathBuf,
    /// The kinsight servers to ship to (`server_url`: one URL or a list of them, each with
    /// `${VAR}` expanded); empty when the key is absent. The shipper fails over between them.
    pub server_urls: Vec<String>,
    /// File holding the server token; the `KINSIGHT_TOKEN` variable wins when set.
    pub server_token_file: Option<PathBuf>,
    /// PEM CA certificates an `https://` server's certificate must chain to (instead of the
    /// built-in and system roots).
    pub server_ca_file: Option<PathBuf>,
    /// `/kinsight` by default; `/aws/containerinsights` to match CloudWatch's names.
    pub log_group_prefix: String,
    /// Upper bound of the shipper's disk buffer.
    pub buffer_max_bytes: u64,
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    pub logs: LogsSettings,
    /// The DCGM exporter the agent reads GPU metrics from (`dcgm_exporter_url`, `${VAR}`
    /// expanded; default `http://localhost:9400/metrics`); `None` when set to `""` (no GPU
    /// metrics). Asked only with accelerated compute metrics on, on a node with an NVIDIA GPU.
    pub dcgm_exporter_url: Option<String>,
    /// The kubelet's pod-resources socket, a host path read under `host_root`
    /// (`pod_resources_socket`): which container was given which GPU or EFA device.
    pub pod_resources_socket: PathBuf,
}

/// Where dcgm-exporter listens by default (its `--address :9400`).
pub const DEFAULT_DCGM_EXPORTER_URL: &str = "http://localhost:9400/metrics";
/// Where the kubelet serves its pod-resources API (`v1.PodResourcesLister`).
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// The validated agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub cluster_name: String,
    pub metrics_collection_interval_s: u64,
    pub force_flush_interval_s: u64,
    pub enhanced_container_insights: bool,
    pub prefer_full_pod_name: bool,
    pub tag_service: bool,
    pub disable_metric_extraction: bool,
    /// GPU (DCGM exporter) and EFA metrics, and the GPU request fields of Node and Pod events
    /// (issue 18): `accelerated_compute_metrics`, which defaults to
    /// `enhanced_container_insights` — the CloudWatch agent's default is `true`, but it
    /// collects them in enhanced mode only (reference §4.1); an explicit `true` turns them on
    /// in standard mode too.
    pub accelerated_compute_metrics: bool,
    /// The elected leader scrapes the API server's `/metrics` into ControlPlane events:
    /// `enable_control_plane_metrics`, which defaults to `enhanced_container_insights` (the
    /// CloudWatch agent turns the scrape on with enhanced mode, reference §4.1; an explicit
    /// `false` turns it off there too, for the log volume it costs — reference §8 item 2).
    pub control_plane_metrics: bool,
    /// Whether `metrics_collected.kubernetes` was present (metrics enabled).
    pub metrics_enabled: bool,
    pub host_ip: Option<String>,
    pub host_name: String,
    /// Namespace of the agent (leader lock lives there).
    pub k8s_namespace: String,
    pub kinsight: KinsightSettings,
    /// Unknown keys and other non-fatal remarks, one sentence each.
    pub warnings: Vec<String>,
}

impl AgentConfig {
    pub fn log_groups(&self) -> LogGroups {
        LogGroups::new(&self.kinsight.log_group_prefix, &self.cluster_name)
    }

    /// Parses a config document, reading the seed's environment variables from the process.
    pub fn from_json(text: &str) -> Result<AgentConfig, ConfigError> {
        Self::from_json_with_env(text, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Parses a config document with an explicit environment lookup.
    pub fn from_json_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AgentConfig, ConfigError> {
        let root: Value = serde_json::from_str(text)?;
        let root = match root {
            Value::Object(m) => m,
            other => {
                return Err(ConfigError::WrongType {
                    key: "(root)".into(),
                    expected: "an object",
                    found: kind(&other),
                });
            }
        };
        let mut warnings = Vec::new();
        let mut top = Cursor::new("", &root);

        // The agent's generic sections are accepted; kinsight uses only what it needs.
        if let Some(mut agent) = top.object("agent")? {
            agent.seconds("metrics_collection_interval")?;
            agent.ignore(&[
                "region",
                "credentials",
                "debug",
                "logfile",
                "run_as_user",
                "omit_hostname",
                "quiet",
                "usage_data",
                "aws_sdk_log_level",
            ]);
            agent.finish(&mut warnings);
        }
        if let Some(mut metrics) = top.object("metrics")? {
            metrics.ignore(&[
                "metrics_collected",
                "namespace",
                "append_dimensions",
                "aggregation_dimensions",
                "force_flush_interval",
                "credentials",
                "endpoint_override",
            ]);
            metrics.finish(&mut warnings);
        }
        top.ignore(&["traces"]);
        let agent_interval = root
            .get("agent")
            .and_then(|a| a.get("metrics_collection_interval"))
            .and_then(Value::as_u64);

        let logs_key = if root.contains_key("logs") {
            if root.contains_key("structuredlogs") {
                warnings.push(
                    "both `logs` and `structuredlogs` are set; `structuredlogs` is ignored".into(),
                );
                top.ignore(&["structuredlogs"]);
            }
            "logs"
        } else {
            "structuredlogs"
        };
        let mut cfg_interval = None;
        let mut force_flush = 5;
        let mut k8s_present = false;
        let mut cluster_name = None;
        let mut enhanced = false;
        let mut prefer_full_pod_name = false;
        let mut tag_service = true;
        let mut disable_metric_extraction = false;
        let mut accelerated = None;
        let mut control_plane = None;
        let mut host_ip_cfg = None;
        let mut host_name_cfg = None;
        if let Some(mut logs) = top.object(logs_key)? {
            if let Some(v) = logs.seconds("force_flush_interval")? {
                force_flush = v;
            }
            logs.ignore(&[
                "endpoint_override",
                "log_stream_name",
                "credentials",
                "concurrency",
                "logs_collected",
                "region",
            ]);
            if let Some(mut mc) = logs.object("metrics_collected")? {
                if let Some(mut k) = mc.object("kubernetes")? {
                    k8s_present = true;
                    cluster_name = k.string("cluster_name")?;
                    cfg_interval = k.seconds("metrics_collection_interval")?;
                    enhanced = k.bool("enhanced_container_insights")?.unwrap_or(false);
                    if let Some(g) = k.f64("metric_granularity")? {
                        // Legacy spelling: a granularity above 1 means enhanced.
                        enhanced |= g > 1.0;
                    }
                    prefer_full_pod_name = k.bool("prefer_full_pod_name")?.unwrap_or(enhanced);
                    tag_service = k.bool("tag_service")?.unwrap_or(true);
                    disable_metric_extraction =
                        k.bool("disable_metric_extraction")?.unwrap_or(false);
                    accelerated = k.bool("accelerated_compute_metrics")?;
                    control_plane = k.bool("enable_control_plane_metrics")?;
                    host_ip_cfg = k.string("host_ip")?;
                    host_name_cfg = k.string("host_name")?;
                    k.string("kube_config_path")?;
                    k.ignore(&[
                        "accelerated_compute_gpu_metrics_collection_interval",
                        "kueue_container_insights",
                        "jmx_container_insights",
                    ]);
                    k.finish(&mut warnings);
                }
                mc.finish(&mut warnings);
            }
            logs.finish(&mut warnings);
        }

        let kinsight = match top.object("kinsight")? {
            Some(mut k) => {
                let s = parse_kinsight(&mut k, env, host_ip_cfg.as_deref())?;
                k.finish(&mut warnings);
                s
            }
            None => {
                let empty = Map::new();
                let mut k = Cursor::new("kinsight", &empty);
                parse_kinsight(&mut k, env, host_ip_cfg.as_deref())?
            }
        };
        let kinsight_present = root.contains_key("kinsight");
        top.finish(&mut warnings);

        if !k8s_present && !kinsight_present {
            return Err(ConfigError::NothingToCollect);
        }
        let cluster_name = cluster_name
            .or_else(|| env("CLUSTER_NAME"))
            .ok_or(ConfigError::MissingClusterName)?;
        validate_cluster_name(&cluster_name)?;
        // The prefix is free text: every group name it makes must be one the server accepts,
        // or every batch the agent ships would be refused.
        let groups = LogGroups::new(&kinsight.log_group_prefix, &cluster_name);
        for kind in GroupKind::ALL {
            if let Err(e) = validate_log_group_name(&groups.name(kind)) {
                return Err(ConfigError::Invalid {
                    key: "kinsight.log_group_prefix".into(),
                    message: format!(
                        "{:?} with cluster {cluster_name:?} does not make valid log group names: {e}",
                        kinsight.log_group_prefix
                    ),
                });
            }
        }
        let host_name = host_name_cfg
            .or_else(|| env("HOST_NAME"))
            .or_else(|| {
                std::fs::read_to_string(kinsight.host_root.join("proc/sys/kernel/hostname"))
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        let host_ip = host_ip_cfg.or_else(|| env("HOST_IP"));

        Ok(AgentConfig {
            cluster_name,
            metrics_collection_interval_s: cfg_interval.or(agent_interval).unwrap_or(60),
            force_flush_interval_s: force_flush,
            enhanced_container_insights: enhanced,
            prefer_full_pod_name,
            tag_service,
            disable_metric_extraction,
            accelerated_compute_metrics: accelerated.unwrap_or(enhanced),
            control_plane_metrics: control_plane.unwrap_or(enhanced),
            metrics_enabled: k8s_present,
            host_ip,
            host_name,
            k8s_namespace: env("K8S_NAMESPACE").unwrap_or_else(|| "kinsight".to_string()),
            kinsight,
            warnings,
        })
    }
}

/// Cluster names become part of log group names; newer agents validate this pattern.
fn validate_cluster_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: "logs.metrics_collected.kubernetes.cluster_name".into(),
            message: format!(
                "{name:?} must start with a letter or digit and contain only letters, digits, '-' and '_'"
            ),
        })
    }
}

fn parse_kinsight(
    k: &mut Cursor<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    host_ip_cfg: Option<&str>,
) -> Result<KinsightSettings, ConfigError> {
    let host_root = PathBuf::from(k.string("host_root")?.unwrap_or_else(|| "/".into()));
    let host_ip = host_ip_cfg.map(str::to_string).or_else(|| env("HOST_IP"));
    let kubelet_url = match k.string("kubelet_url")? {
        Some(u) => Some(expand_env(&u, env)),
        None => host_ip.map(|ip| format!("https://{ip}:10250")),
    };
    if let Some(u) = &kubelet_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: k.key("kubelet_url"),
                message: format!("{u:?} is not an http:// or https:// URL"),
            });
        }
    }
    let api_server_url = match k.string("api_server_url")? {
        Some(u) => Some(expand_env(&u, env)),
        None => match (
            env("KUBERNETES_SERVICE_HOST"),
            env("KUBERNETES_SERVICE_PORT"),
        ) {
            (Some(h), Some(p)) if h.contains(':') => Some(format!("https://[{h}]:{p}")),
            (Some(h), Some(p)) => Some(format!("https://{h}:{p}")),
            _ => None,
        },
    };
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    let mut logs = LogsSettings::default();
    if let Some(mut l) = k.object("logs")? {
        logs.enabled = l.bool("enabled")?.unwrap_or(logs.enabled);
        logs.read_from_head = l.bool("read_from_head")?.unwrap_or(logs.read_from_head);
        logs.include_namespaces = l.strings("include_namespaces")?.unwrap_or_default();
        logs.exclude_namespaces = l.strings("exclude_namespaces")?.unwrap_or_default();
        logs.exclude_pod_labels = l.string_map("exclude_pod_labels")?.unwrap_or_default();
        logs.labels = l.bool("labels")?.unwrap_or(logs.labels);
        logs.annotations = l.bool("annotations")?.unwrap_or(logs.annotations);
        logs.rate_limit_lines_per_second = l.u64("rate_limit_lines_per_second")?.unwrap_or(0);
        logs.rescan_interval_seconds = l
            .u64("rescan_interval_seconds")?
            .unwrap_or(logs.rescan_interval_seconds)
            .max(1);
        logs.metadata_retention_seconds = l
            .u64("metadata_retention_seconds")?
            .unwrap_or(logs.metadata_retention_seconds);
        logs.journald = l.bool("journald")?.unwrap_or(logs.journald);
        logs.journal_dir = l.string("journal_dir")?.map(PathBuf::from);
        if let Some(rules) = l.array("multiline")? {
            for (i, rule) in rules.iter().enumerate() {
                let key = format!("{}[{i}]", l.key("multiline"));
                let Value::Object(obj) = rule else {
                    return Err(ConfigError::WrongType {
                        key,
                        expected: "an object",
                        found: kind(rule),
                    });
                };
                let mut r = Cursor::new(&key, obj);
                let language = r.string("language")?.unwrap_or_else(|| "auto".into());
                if !["java", "python", "go", "node", "auto"].contains(&language.as_str()) {
                    return Err(ConfigError::Invalid {
                        key: r.key("language"),
                        message: format!("{language:?} is not one of java, python, go, node, auto"),
                    });
                }
                let rule = MultilineRule {
                    namespace: r.string("namespace")?,
                    pod: r.string("pod")?,
                    container: r.string("container")?,
                    language,
                };
                let mut w = Vec::new();
                r.finish(&mut w);
                if let Some(first) = w.into_iter().next() {
                    return Err(ConfigError::Invalid {
                        key,
                        message: first,
                    });
                }
                logs.multiline.push(rule);
            }
        }
        let mut w = Vec::new();
        l.finish(&mut w);
        k.warnings.extend(w);
    }
    let settings = KinsightSettings {
        host_root,
        kubelet_url,
        kubelet_token_file: PathBuf::from(
            k.string("kubelet_token_file")?
                .unwrap_or_else(|| format!("{sa}/token")),
        ),
        kubelet_ca_file: PathBuf::from(
            k.string("kubelet_ca_file")?
                .unwrap_or_else(|| format!("{sa}/ca.crt")),
        ),
        kubelet_insecure_skip_verify: k.bool("kubelet_insecure_skip_verify")?.unwrap_or(false),
        api_server_url,
        state_dir: PathBuf::from(
            k.string("state_dir")?
                // Its own directory: not the server's `--data-dir /var/lib/kinsight` on the
                // same host, and in a DaemonSet the one writable host path (issue 15, item 8).
                .unwrap_or_else(|| "/var/lib/kinsight-agent".into()),
        ),
        server_urls: server_urls(k, env)?,
        server_token_file: k.string("server_token_file")?.map(PathBuf::from),
        server_ca_file: k.string("server_ca_file")?.map(PathBuf::from),
        log_group_prefix: k
            .string("log_group_prefix")?
            .unwrap_or_else(|| DEFAULT_LOG_GROUP_PREFIX.into()),
        buffer_max_bytes: k.u64("buffer_max_bytes")?.unwrap_or(1 << 30),
        batch_max_events: k
            .u64("batch_max_events")?
            .map(|v| v as usize)
            .unwrap_or(crate::limits::MAX_BATCH_EVENTS)
            .clamp(1, crate::limits::MAX_BATCH_EVENTS),
        batch_max_bytes: k
            .u64("batch_max_bytes")?
            .map(|v| v as usize)
            .unwrap_or(crate::limits::MAX_BATCH_BYTES)
            .clamp(1024, crate::limits::MAX_BATCH_BYTES),
        logs,
        dcgm_exporter_url: match k.string("dcgm_exporter_url")? {
            None => Some(DEFAULT_DCGM_EXPORTER_URL.to_string()),
            Some(u) if u.is_empty() => None,
            Some(u) => {
                let u = expand_env(&u, env);
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        key: k.key("dcgm_exporter_url"),
                        message: format!(
                            "{u:?} is not an http:// or https:// URL (\"\" turns GPU metrics off)"
                        ),
                    });
                }
                Some(u)
            }
        },
        pod_resources_socket: PathBuf::from(
            k.string("pod_resources_socket")?
                .unwrap_or_else(|| DEFAULT_POD_RESOURCES_SOCKET.into()),
        ),
    };
    if settings.server_ca_file.is_some() {
        let listed = settings.server_urls.len() > 1;
        if let Some((i, u)) = settings
            .server_urls
            .iter()
            .enumerate()
            .find(|(_, u)| !u.starts_with("https://"))
        {
            let which = if listed {
                format!("server_url[{i}]")
            } else {
                "server_url".to_string()
            };
            return Err(ConfigError::Invalid {
                key: k.key("server_ca_file"),
                message: format!("a CA file verifies an https:// server, but {which} is {u:?}"),
            });
        }
    }
    if !settings.log_group_prefix.starts_with('/') {
        return Err(ConfigError::Invalid {
            key: k.key("log_group_prefix"),
            message: "must start with '/'".into(),
        });
    }
    Ok(settings)
}

/// `server_url`: one URL or a non-empty list of them, `${VAR}` expanded in each, each an
/// `http://` or `https://` URL.
fn server_urls(
    k: &mut Cursor<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = k.string_or_strings("server_url")? else {
        return Ok(Vec::new());
    };
    if raw.is_empty() {
        return Err(ConfigError::Invalid {
            key: k.key("server_url"),
            message: "the list is empty: give at least one server URL (or leave the key out)"
                .into(),
        });
    }
    // Elements of a list are named by their index (`kinsight.server_url[1]`).
    let listed = matches!(k.obj.get("server_url"), Some(Value::Array(_)));
    raw.iter()
        .enumerate()
        .map(|(i, u)| {
            let url = expand_env(u, env);
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if matches!(scheme.as_deref(), Some("http" | "https")) {
                return Ok(url);
            }
            let key = if listed {
                format!("{}[{i}]", k.key("server_url"))
            } else {
                k.key("server_url")
            };
            let expanded = if url == *u {
                String::new()
            } else {
                format!(" (from {u:?})")
            };
            Err(ConfigError::Invalid {
                key,
                message: format!("{url:?}{expanded} is not an http:// or https:// URL"),
            })
        })
        .collect()
}

/// Replaces `${NAME}` with the variable's value (empty when unset).
fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + 2 + end];
                out.push_str(&env(name).unwrap_or_default());
                rest = &rest[start + 3 + end..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Walks one JSON object, remembering which keys were read so the rest can be reported.
struct Cursor<'a> {
    path: String,
    obj: &'a Map<String, Value>,
    seen: HashSet<String>,
    warnings: Vec<String>,
}

impl<'a> Cursor<'a> {
    fn new(path: &str, obj: &'a Map<String, Value>) -> Self {
        Cursor {
            path: path.to_string(),
            obj,
            seen: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn get(&mut self, k: &str) -> Option<&'a Value> {
        self.seen.insert(k.to_string());
        self.obj.get(k).filter(|v| !v.is_null())
    }

    fn ignore(&mut self, keys: &[&str]) {
        for k in keys {
            self.seen.insert((*k).to_string());
        }
    }

    fn wrong(&self, k: &str, expected: &'static str, v: &Value) -> ConfigError {
        ConfigError::WrongType {
            key: self.key(k),
            expected,
            found: kind(v),
        }
    }

    fn object(&mut self, k: &str) -> Result<Option<Cursor<'a>>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Cursor::new(&self.key(k), m))),
            Some(v) => Err(self.wrong(k, "an object", v)),
        }
    }

    fn array(&mut self, k: &str) -> Result<Option<&'a Vec<Value>>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong(k, "an array", v)),
        }
    }

    fn string(&mut self, k: &str) -> Result<Option<String>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(k, "a string", v)),
        }
    }

    /// A string, or an array of strings (the string alone is a list of one). An element
    /// that is not a string is an error naming it (`key[i]`); an empty array is returned as is.
    fn string_or_strings(&mut self, k: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(ConfigError::WrongType {
                        key: format!("{}[{i}]", self.key(k)),
                        expected: "a string",
                        found: kind(v),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.wrong(k, "a string or an array of strings", v)),
        }
    }

    fn strings(&mut self, k: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(items) = self.array(k)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.wrong(k, "an array of strings", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn string_map(&mut self, k: &str) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(key, v)| {
                    v.as_str()
                        .map(|s| (key.clone(), s.to_string()))
                        .ok_or_else(|| self.wrong(k, "an object of strings", v))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map(Some),
            Some(v) => Err(self.wrong(k, "an object of strings", v)),
        }
    }

    fn bool(&mut self, k: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(k, "true or false", v)),
        }
    }

    fn u64(&mut self, k: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(u) => Ok(Some(u)),
                None => {
                    Err(self.wrong(k, "a whole number of at least 0", &Value::Number(n.clone())))
                }
            },
            Some(v) => Err(self.wrong(k, "a number", v)),
        }
    }

    /// A number of seconds from 1 to [`MAX_INTERVAL_SECONDS`]: intervals feed timers, which
    /// refuse zero and overflow on a period near `u64::MAX`.
    fn seconds(&mut self, k: &str) -> Result<Option<u64>, ConfigError> {
        match self.u64(k)? {
            Some(v) if !(1..=MAX_INTERVAL_SECONDS).contains(&v) => Err(ConfigError::Invalid {
                key: self.key(k),
                message: format!(
                    "must be from 1 to {MAX_INTERVAL_SECONDS} seconds (a day), got {v}"
                ),
            }),
            v => Ok(v),
        }
    }

    fn f64(&mut self, k: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(v) => Err(self.wrong(k, "a number", v)),
        }
    }

    fn finish(mut self, warnings: &mut Vec<String>) {
        warnings.append(&mut self.warnings);
        for k in self.obj.keys() {
            if !self.seen.contains(k) {
                warnings.push(format!("unknown config key `{}` is ignored", self.key(k)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const SEED: &str = r#"{"structuredlogs": {"metrics_collected": {"kubernetes": {"cluster_name": "MyCluster", "metrics_collection_interval": 60}}, "force_flush_interval": 5}}"#;

    #[test]
    fn accepts_the_seed_document_unchanged() {
        let c = AgentConfig::from_json_with_env(
            SEED,
            &env(&[
                ("HOST_IP", "10.0.0.7"),
                ("HOST_NAME", "node-a"),
                ("K8S_NAMESPACE", "amazon-cloudwatch"),
            ]),
        )
        .unwrap();
        assert_eq!(c.cluster_name, "MyCluster");
        assert_eq!(c.metrics_collection_interval_s, 60);
        assert_eq!(c.force_flush_interval_s, 5);
        assert_eq!(c.host_name, "node-a");
        assert_eq!(c.k8s_namespace, "amazon-cloudwatch");
        assert_eq!(
            c.kinsight.kubelet_url.as_deref(),
            Some("https://10.0.0.7:10250")
        );
        assert_eq!(
            c.log_groups().performance(),
            "/kinsight/MyCluster/performance"
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(!c.enhanced_container_insights);
        assert_eq!(
            c.kinsight.state_dir,
            PathBuf::from("/var/lib/kinsight-agent")
        );
    }

    /// Issue 15, item 9: the kubelet's certificate is verified by default, against the service
    /// account's CA; skipping it is an explicit choice.
    #[test]
    fn the_kubelet_is_verified_against_the_cluster_ca_unless_told_otherwise() {
        let c = AgentConfig::from_json_with_env(SEED, &env(&[("HOST_IP", "10.0.0.7")])).unwrap();
        assert!(!c.kinsight.kubelet_insecure_skip_verify);
        assert_eq!(
            c.kinsight.kubelet_ca_file,
            PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
        );
        let doc = r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}},
            "kinsight": {"kubelet_insecure_skip_verify": true, "kubelet_ca_file": "/etc/kubelet-ca.pem"}}"#;
        let c = AgentConfig::from_json_with_env(doc, &env(&[])).unwrap();
        assert!(c.kinsight.kubelet_insecure_skip_verify);
        assert_eq!(
            c.kinsight.kubelet_ca_file,
            PathBuf::from("/etc/kubelet-ca.pem")
        );
    }

    /// Issue 18: the control-plane scrape follows enhanced mode unless
    /// `enable_control_plane_metrics` says otherwise, either way.
    #[test]
    fn control_plane_metrics_follow_enhanced_mode_unless_set() {
        let with = |k8s: &str| {
            let doc = format!(
                r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "c"{k8s}}}}}}}}}"#
            );
            let c = AgentConfig::from_json_with_env(&doc, &env(&[])).unwrap();
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            c.control_plane_metrics
        };
        assert!(!with(""));
        assert!(with(r#", "enhanced_container_insights": true"#));
        assert!(with(r#", "enable_control_plane_metrics": true"#));
        assert!(!with(
            r#", "enhanced_container_insights": true, "enable_control_plane_metrics": false"#
        ));
        let doc = r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "enable_control_plane_metrics": "yes"}}}}"#;
        let err = AgentConfig::from_json_with_env(doc, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("enable_control_plane_metrics"), "{err}");
    }

    /// Issue 18: accelerated compute metrics follow enhanced mode unless
    /// `accelerated_compute_metrics` says otherwise; where the DCGM exporter and the kubelet's
    /// pod-resources socket are.
    #[test]
    fn accelerated_compute_metrics_and_their_sources() {
        let with = |k8s: &str, own: &str| {
            let doc = format!(
                r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "c"{k8s}}}}}}}, "kinsight": {{{own}}}}}"#
            );
            let c = AgentConfig::from_json_with_env(&doc, &env(&[("HOST_IP", "10.0.1.23")]))?;
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            Ok::<_, ConfigError>(c)
        };
        let c = with("", "").unwrap();
        assert!(!c.accelerated_compute_metrics);
        assert_eq!(
            c.kinsight.dcgm_exporter_url.as_deref(),
            Some("http://localhost:9400/metrics")
        );
        assert_eq!(
            c.kinsight.pod_resources_socket,
            PathBuf::from("/var/lib/kubelet/pod-resources/kubelet.sock")
        );
        let on = |k8s| with(k8s, "").unwrap().accelerated_compute_metrics;
        assert!(on(r#", "enhanced_container_insights": true"#));
        assert!(on(r#", "accelerated_compute_metrics": true"#));
        assert!(!on(
            r#", "enhanced_container_insights": true, "accelerated_compute_metrics": false"#
        ));
        let c = with(
            "",
            r#""dcgm_exporter_url": "http://${HOST_IP}:9400/metrics", "pod_resources_socket": "/run/pr.sock""#,
        )
        .unwrap();
        assert_eq!(
            c.kinsight.dcgm_exporter_url.as_deref(),
            Some("http://10.0.1.23:9400/metrics")
        );
        assert_eq!(
            c.kinsight.pod_resources_socket,
            PathBuf::from("/run/pr.sock")
        );
        assert_eq!(
            with("", r#""dcgm_exporter_url": """#)
                .unwrap()
                .kinsight
                .dcgm_exporter_url,
            None
        );
        let err = with("", r#""dcgm_exporter_url": "localhost:9400""#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kinsight.dcgm_exporter_url"), "{err}");
    }

    #[test]
    fn accepts_the_logs_spelling_with_reference_keys() {
        let doc = r#"{"agent": {"region": "eu-west-1"}, "logs": {"metrics_collected": {"kubernetes": {
            "cluster_name": "c1", "metrics_collection_interval": 1, "enhanced_container_insights": true,
            "tag_service": false, "accelerated_compute_metrics": false, "disable_metric_extraction": true}},
            "force_flush_interval": 2},
            "kinsight": {"host_root": "/rootfs", "kubelet_url": "http://127.0.0.1:10255", "log_group_prefix": "/aws/containerinsights",
                         "logs": {"exclude_namespaces": ["kube-system"], "multiline": [{"namespace": "prod", "language": "java"}]}}}"#;
        let c = AgentConfig::from_json_with_env(doc, &env(&[])).unwrap();
        assert!(
            c.enhanced_container_insights
                && c.prefer_full_pod_name
                && !c.tag_service
                && c.disable_metric_extraction
        );
        assert_eq!(c.metrics_collection_interval_s, 1);
        assert_eq!(c.kinsight.host_root, PathBuf::from("/rootfs"));
        assert_eq!(
            c.kinsight.kubelet_url.as_deref(),
            Some("http://127.0.0.1:10255")
        );
        assert_eq!(c.log_groups().host(), "/aws/containerinsights/c1/host");
        assert_eq!(c.kinsight.logs.exclude_namespaces, vec!["kube-system"]);
        assert_eq!(c.kinsight.logs.multiline[0].language, "java");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let doc = r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "colour": "red"}}}, "extra": 1}"#;
        let c = AgentConfig::from_json_with_env(doc, &env(&[])).unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("logs.metrics_collected.kubernetes.colour"))
        );
        assert!(c.warnings.iter().any(|w| w.contains("`extra`")));
    }

    #[test]
    fn wrong_type_names_the_key() {
        let doc = r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "metrics_collection_interval": "60"}}}}"#;
        let e = AgentConfig::from_json_with_env(doc, &env(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config key `logs.metrics_collected.kubernetes.metrics_collection_interval` must be a number, found the string \"60\""
        );
        let doc = r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}, "kinsight": {"logs": {"labels": "yes"}}}"#;
        let e = AgentConfig::from_json_with_env(doc, &env(&[])).unwrap_err();
        assert!(e.to_string().contains("`kinsight.logs.labels`"), "{e}");
    }

    #[test]
    fn server_ca_file_is_read_and_only_for_an_https_server() {
        let doc = |url: &str, ca: &str| {
            format!(
                r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "c"}}}}}},
                   "kinsight": {{"server_url": "{url}", "server_ca_file": {ca}}}}}"#
            )
        };
        let c = AgentConfig::from_json_with_env(
            &doc("https://kinsight.example:8080", r#""/etc/kinsight/ca.crt""#),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            c.kinsight.server_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/kinsight/ca.crt"))
        );
        match AgentConfig::from_json_with_env(
            &doc("http://kinsight:8080", r#""/ca.crt""#),
            &env(&[]),
        ) {
            Err(ConfigError::Invalid { key, message }) => {
                assert_eq!(key, "kinsight.server_ca_file");
                assert!(message.contains("https://"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            AgentConfig::from_json_with_env(&doc("https://k", "5"), &env(&[])),
            Err(ConfigError::WrongType { .. })
        ));
    }

    fn with_server_url(value: &str) -> String {
        format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "c"}}}}}},
               "kinsight": {{"server_url": {value}}}}}"#
        )
    }

    /// `server_url` is one URL (as it always was) or a list of them to fail over between.
    #[test]
    fn server_url_is_one_url_or_a_list() {
        let parse = |v: &str| AgentConfig::from_json_with_env(&with_server_url(v), &env(&[]));
        let c = parse(r#""http://kinsight-server.kinsight.svc:8080""#).unwrap();
        assert_eq!(
            c.kinsight.server_urls,
            vec!["http://kinsight-server.kinsight.svc:8080"]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c =
            parse(r#"["http://kinsight-0.kinsight:8080", "https://kinsight-1.kinsight:8443/"]"#)
                .unwrap();
        assert_eq!(
            c.kinsight.server_urls,
            vec![
                "http://kinsight-0.kinsight:8080",
                "https://kinsight-1.kinsight:8443/"
            ]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // Absent (or null): no server.
        let c = AgentConfig::from_json_with_env(
            r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}}"#,
            &env(&[]),
        )
        .unwrap();
        assert!(c.kinsight.server_urls.is_empty());
        assert!(parse("null").unwrap().kinsight.server_urls.is_empty());
    }

    #[test]
    fn an_empty_or_mistyped_server_url_list_is_refused_naming_the_key() {
        let parse = |v: &str| AgentConfig::from_json_with_env(&with_server_url(v), &env(&[]));
        match parse("[]") {
            Err(ConfigError::Invalid { key, message }) => {
                assert_eq!(key, "kinsight.server_url");
                assert!(message.contains("empty"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("[]").unwrap_err().to_string(),
            "config key `kinsight.server_url`: the list is empty: give at least one server URL (or leave the key out)"
        );
        assert_eq!(
            parse(r#"["http://a:8080", 8080]"#).unwrap_err().to_string(),
            "config key `kinsight.server_url[1]` must be a string, found the number 8080"
        );
        assert_eq!(
            parse(r#"["http://a:8080", null]"#).unwrap_err().to_string(),
            "config key `kinsight.server_url[1]` must be a string, found null"
        );
        assert_eq!(
            parse("8080").unwrap_err().to_string(),
            "config key `kinsight.server_url` must be a string or an array of strings, found the number 8080"
        );
        assert_eq!(
            parse(r#"{"url": "http://a"}"#).unwrap_err().to_string(),
            "config key `kinsight.server_url` must be a string or an array of strings, found an object"
        );
        // Every element must be an http:// or https:// URL; the error names the element.
        assert_eq!(
            parse(r#"["http://a:8080", "b:8080"]"#)
                .unwrap_err()
                .to_string(),
            "config key `kinsight.server_url[1]`: \"b:8080\" is not an http:// or https:// URL"
        );
        assert_eq!(
            parse(r#""kinsight:8080""#).unwrap_err().to_string(),
            "config key `kinsight.server_url`: \"kinsight:8080\" is not an http:// or https:// URL"
        );
    }

    #[test]
    fn env_expansion_in_every_server_url() {
        let vars = env(&[("NS", "obs"), ("PORT", "8080")]);
        let doc = with_server_url(r#""http://kinsight.${NS}.svc:${PORT}""#);
        let c = AgentConfig::from_json_with_env(&doc, &vars).unwrap();
        assert_eq!(c.kinsight.server_urls, vec!["http://kinsight.obs.svc:8080"]);
        let doc = with_server_url(
            r#"["http://kinsight-0.${NS}:${PORT}", "http://kinsight-1.${NS}:${PORT}"]"#,
        );
        let c = AgentConfig::from_json_with_env(&doc, &vars).unwrap();
        assert_eq!(
            c.kinsight.server_urls,
            vec!["http://kinsight-0.obs:8080", "http://kinsight-1.obs:8080"]
        );
        // A variable that is not set leaves an element that is no URL: refused, saying so.
        let doc = with_server_url(r#"["http://a:8080", "${KINSIGHT_SERVER_1}"]"#);
        assert_eq!(
            AgentConfig::from_json_with_env(&doc, &vars)
                .unwrap_err()
                .to_string(),
            "config key `kinsight.server_url[1]`: \"\" (from \"${KINSIGHT_SERVER_1}\") is not an http:// or https:// URL"
        );
    }

    #[test]
    fn a_server_ca_file_needs_every_listed_server_to_be_https() {
        let doc = |urls: &str| {
            format!(
                r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "c"}}}}}},
                   "kinsight": {{"server_url": {urls}, "server_ca_file": "/ca.crt"}}}}"#
            )
        };
        let c = AgentConfig::from_json_with_env(
            &doc(r#"["https://kinsight-0:8443", "https://kinsight-1:8443"]"#),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(c.kinsight.server_urls.len(), 2);
        match AgentConfig::from_json_with_env(
            &doc(r#"["https://kinsight-0:8443", "http://kinsight-1:8080"]"#),
            &env(&[]),
        ) {
            Err(ConfigError::Invalid { key, message }) => {
                assert_eq!(key, "kinsight.server_ca_file");
                assert_eq!(
                    message,
                    "a CA file verifies an https:// server, but server_url[1] is \"http://kinsight-1:8080\""
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_cluster_and_bad_values_are_errors() {
        let e = AgentConfig::from_json_with_env(
            r#"{"logs": {"metrics_collected": {"kubernetes": {}}}}"#,
            &env(&[]),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::MissingClusterName));
        let c = AgentConfig::from_json_with_env(
            r#"{"logs": {"metrics_collected": {"kubernetes": {}}}}"#,
            &env(&[("CLUSTER_NAME", "fromenv")]),
        )
        .unwrap();
        assert_eq!(c.cluster_name, "fromenv");
        assert!(
            AgentConfig::from_json_with_env(
                r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "bad name"}}}}"#,
                &env(&[])
            )
            .is_err()
        );
        assert!(AgentConfig::from_json_with_env(r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "metrics_collection_interval": 0}}}}"#, &env(&[])).is_err());
        assert!(matches!(
            AgentConfig::from_json_with_env("{}", &env(&[])),
            Err(ConfigError::NothingToCollect)
        ));
        assert!(matches!(
            AgentConfig::from_json_with_env("[1]", &env(&[])),
            Err(ConfigError::WrongType { .. })
        ));
        assert!(matches!(
            AgentConfig::from_json_with_env("{", &env(&[])),
            Err(ConfigError::Json(_))
        ));
    }

    #[test]
    fn env_expansion_in_urls() {
        let doc = r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}, "kinsight": {"kubelet_url": "http://${HOST_IP}:10255"}}"#;
        let c = AgentConfig::from_json_with_env(doc, &env(&[("HOST_IP", "1.2.3.4")])).unwrap();
        assert_eq!(
            c.kinsight.kubelet_url.as_deref(),
            Some("http://1.2.3.4:10255")
        );
    }

    #[test]
    fn intervals_are_refused_at_zero_and_past_a_day() {
        // Found by the agent_config fuzz target: `agent.metrics_collection_interval: 0` was
        // accepted (only the kubernetes-level key was checked) and the agent panicked on a
        // zero timer period; a period near u64::MAX overflows the timer's next deadline.
        for doc in [
            r#"{"agent": {"metrics_collection_interval": 0}, "logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}}"#,
            r#"{"agent": {"metrics_collection_interval": 18446744073709551615}, "logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}}"#,
            r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "metrics_collection_interval": 86401}}}}"#,
            r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}, "force_flush_interval": 0}}"#,
        ] {
            let e = AgentConfig::from_json_with_env(doc, &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("must be from 1 to 86400 seconds"), "{doc}: {e}");
        }
        let ok = r#"{"agent": {"metrics_collection_interval": 86400}, "logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}}"#;
        assert_eq!(
            AgentConfig::from_json_with_env(ok, &env(&[]))
                .unwrap()
                .metrics_collection_interval_s,
            86_400
        );
    }

    #[test]
    fn the_prefix_must_make_valid_log_group_names() {
        // Found by the agent_config fuzz target: any prefix starting with '/' was accepted,
        // and the server then refused every batch for its group name.
        let doc = r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}, "kinsight": {"log_group_prefix": "/my logs!"}}"#;
        let e = AgentConfig::from_json_with_env(doc, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kinsight.log_group_prefix") && e.contains("' '"),
            "{e}"
        );
        let long = format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "c"}}}}}}, "kinsight": {{"log_group_prefix": "/{}"}}}}"#,
            "p".repeat(500)
        );
        assert!(AgentConfig::from_json_with_env(&long, &env(&[])).is_err());
        let aws = r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}, "kinsight": {"log_group_prefix": "/aws/containerinsights/"}}"#;
        assert!(AgentConfig::from_json_with_env(aws, &env(&[])).is_ok());
    }
}
