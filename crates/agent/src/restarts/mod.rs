//! Restart forensics (issue 18): when a container instance ends — a restart, an OOM kill, an
//! error exit — the agent writes one `ContainerRestart` performance event with why it ended
//! (the kubelet's `lastState.terminated`), its own last log lines and its last CPU and memory
//! readings. Everything is on the node already: the kubelet's pod status, the instance's log
//! file (`/var/log/pods/<ns>_<pod>_<uid>/<container>/<N>.log`) and the agent's own Container
//! events of the instance.
//!
//! Which instance ended: the kubelet reports the previous instance of a container in
//! `lastState.terminated` once a newer one exists or is waiting to start (back-off). The log
//! file of an instance is named after the restart count it started with. While the ended
//! instance is still the newest (`waiting`: CrashLoopBackOff, ContainerCreating) the status'
//! `containerID` is its own and `restartCount` its number; once the next instance was created,
//! `restartCount` is the new instance's and the ended one is `restartCount − 1`. The event's
//! `RestartCount` is the ended instance's number plus one: the count once it is replaced.
//!
//! Exactly once: reported instances are remembered in the state directory
//! ([`state::Reported`]), written only after the sink took the events
//! ([`RestartForensics::delivered`]): a crash in between repeats an event rather than losing it.
//! An instance that ended before the agent started is reported when its log file is still
//! there (otherwise it is old news the kubelet's garbage collection already took away); one
//! that ended while the agent ran is reported either way.
//!
//! Not covered: a container that ends and is not restarted (`restartPolicy: Never`, a completed
//! Job) — the kubelet gives it no `lastState`, and it is not a restart; instances that ended
//! between two pod lists while a newer one ended too (a crash loop faster than the kubelet is
//! asked): the kubelet describes only the last, so only the last is reported, the count says
//! how many there were.

pub mod last_lines;
pub mod state;

use crate::logs::metadata::PodMeta;
use crate::logs::pipeline::log_policy;
use crate::perf::event::Ev;
use crate::perf::pods::{Owners, pod_info};
use crate::perf::quantity::parse_quantity;
use crate::perf::{Fields, PerfEvent, Problems};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use kinsight_model::catalogue::restart::{self, keys as rk};
use kinsight_model::catalogue::{DirectiveBuilder, keys, types};
use kinsight_model::config::{AgentConfig, LogsSettings};
use kinsight_tailer::discover::Confine;
use last_lines::{LIMITS, last_lines};
use serde_json::{Number, Value};
use state::Reported;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// The annotation of a mirror pod (a static pod seen through the API server) holding the uid
/// its logs are filed under on the node.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// An instance's readings as its last Container event had them.
#[derive(Debug, Clone)]
struct Reading {
    container_id: String,
    working_set: Option<Value>,
    cpu_usage: Option<Value>,
    memory_limit: Option<Value>,
}

/// An ended instance: (pod uid, container name, the `N` of its `N.log`).
type Instance = (String, String, u32);

/// Finds ended container instances in the pod lists and writes their ContainerRestart events.
pub struct RestartForensics {
    cluster: String,
    node: String,
    prefer_full_pod_name: bool,
    disable_metric_extraction: bool,
    logs: LogsSettings,
    pods_dir: PathBuf,
    confine: Confine,
    /// Wall clock when the agent started (ms): an instance that finished before it is
    /// reported only with its log file.
    started_ms: i64,
    reported: Reported,
    /// Emitted, not yet known to be with the sink.
    in_flight: Vec<(Instance, PerfEvent)>,
    /// The sink refused the last collection: emit `in_flight` again.
    resend: bool,
    /// Per (pod uid, container name): the readings of its last two instances, newest last.
    readings: HashMap<(String, String), Vec<Reading>>,
    /// The pod list looked at last: a list is looked at once.
    seen: Option<Arc<Vec<Pod>>>,
    directives: DirectiveBuilder,
    problems: Problems,
}

impl RestartForensics {
    /// Reads the reported instances from `<state_dir>/restarts.json`.
    pub fn new(cfg: &AgentConfig, started_ms: i64) -> RestartForensics {
        let layout = crate::logs::layout::NodeLayout::new(&cfg.kinsight.host_root);
        RestartForensics {
            cluster: cfg.cluster_name.clone(),
            node: cfg.host_name.clone(),
            prefer_full_pod_name: cfg.prefer_full_pod_name,
            disable_metric_extraction: cfg.disable_metric_extraction,
            logs: cfg.kinsight.logs.clone(),
            confine: Confine::new(&cfg.kinsight.host_root, &layout.allowed_dirs()),
            pods_dir: layout.pods_dir,
            started_ms,
            reported: Reported::open(&cfg.kinsight.state_dir),
            in_flight: Vec::new(),
            resend: false,
            readings: HashMap::new(),
            seen: None,
            directives: restart::directive_builder(),
            problems: Problems::default(),
        }
    }

    /// One collection at `wall_ms`: a ContainerRestart event for every instance that ended and
    /// was not reported yet, by the pod list `pods` (looked at once per list) and the readings
    /// of earlier collections; then this collection's Container `events` are remembered.
    pub fn collect(
        &mut self,
        wall_ms: i64,
        pods: Option<&Arc<Vec<Pod>>>,
        owners: Option<&Owners>,
        events: &[PerfEvent],
    ) -> Vec<PerfEvent> {
        let mut out = Vec::new();
        if std::mem::take(&mut self.resend) {
            out.extend(self.in_flight.iter().map(|(_, e)| e.clone()));
        }
        if let Some(list) = pods {
            if !self.seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, list)) {
                self.seen = Some(list.clone());
                out.extend(self.ended_instances(wall_ms, list, owners));
            }
        }
        self.remember_readings(events);
        out
    }

    /// Whether the sink took the events of the collections since the last call. Taken: their
    /// instances are written to the state directory. Not taken: they are emitted again at the
    /// next collection.
    pub fn delivered(&mut self, ok: bool) {
        if !ok {
            self.resend = !self.in_flight.is_empty();
            return;
        }
        for ((uid, container, n), _) in self.in_flight.drain(..) {
            self.reported.insert(&uid, &container, n);
        }
        match self.reported.persist() {
            Ok(()) => self.problems.clear("restarts-state"),
            Err(e) => self.problems.report(
                "restarts-state",
                &format!("cannot write the reported restarts ({e}); they may be reported again after a restart"),
            ),
        }
    }

    fn ended_instances(
        &mut self,
        wall_ms: i64,
        list: &[Pod],
        owners: Option<&Owners>,
    ) -> Vec<PerfEvent> {
        let mut out = Vec::new();
        let mut uids = HashSet::new();
        for pod in list {
            let Some(uid) = pod.metadata.uid.as_deref() else {
                continue;
            };
            if pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| n != self.node)
            {
                continue;
            }
            uids.insert(uid.to_string());
            let Some(status) = &pod.status else { continue };
            let statuses = status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten());
            for st in statuses {
                let Some(term) = st.last_state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                    continue;
                };
                let Some(n) = ended_instance(st, term) else {
                    continue;
                };
                if self.reported.contains(uid, &st.name, n)
                    || self
                        .in_flight
                        .iter()
                        .any(|((u, c, i), _)| u == uid && *c == st.name && *i >= n)
                {
                    continue;
                }
                if let Some(ev) = self.event(wall_ms, pod, uid, st, term, n, owners) {
                    out.push(ev.clone());
                    self.in_flight
                        .push(((uid.to_string(), st.name.clone(), n), ev));
                }
            }
        }
        self.reported.retain_pods(|uid| uids.contains(uid));
        self.readings.retain(|(uid, _), _| uids.contains(uid));
        out
    }

    /// The event of instance `n` of container `st`, or `None` when it ended before the agent
    /// started and its log file is gone.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        wall_ms: i64,
        pod: &Pod,
        uid: &str,
        st: &ContainerStatus,
        term: &ContainerStateTerminated,
        n: u32,
        owners: Option<&Owners>,
    ) -> Option<PerfEvent> {
        let (Some(namespace), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            return None;
        };
        let path = self.log_path(pod, namespace, name, uid, &st.name, n);
        let exists = path.as_ref().is_some_and(|p| p.symlink_metadata().is_ok());
        // The kubelet's times have whole seconds: one that ends in the second the agent
        // started counts as before.
        let finished_ms = term.finished_at.as_ref().map(|t| t.0.as_millisecond());
        if finished_ms.is_none_or(|f| f + 1000 <= self.started_ms) && !exists {
            return None;
        }
        let lines = match &path {
            Some(p) if exists && self.logs.enabled => {
                let meta = PodMeta::from_pod(pod);
                let (excluded, multiline) =
                    log_policy(&self.logs, namespace, name, &st.name, meta.as_ref());
                if excluded {
                    None
                } else {
                    match last_lines(&self.confine, p, multiline, &LIMITS) {
                        Ok(l) => l,
                        Err(e) => {
                            self.problems.report(
                                &format!("restart-log/{}", p.display()),
                                &format!("last lines of an ended container: {e}"),
                            );
                            None
                        }
                    }
                }
            }
            _ => None,
        };
        let default_owners = Owners::default();
        let pod_name = pod_info(
            pod,
            self.prefer_full_pod_name,
            owners.unwrap_or(&default_owners),
        )
        .map(|p| p.pod_name)
        .unwrap_or_else(|| name.clone());
        let container_id = term.container_id.as_deref().map(without_scheme);
        let reading = container_id.and_then(|id| {
            self.readings
                .get(&(uid.to_string(), st.name.clone()))?
                .iter()
                .find(|r| r.container_id == id)
        });

        // Dated when the instance ended (the kubelet's clock is the node's), so its sample
        // of RestartCount falls in the period of the restart, also for an instance found ended
        // at start; the collection's time when the kubelet gives none.
        let at_ms = finished_ms.map_or(wall_ms, |f| f.min(wall_ms));
        let mut ev = Ev::new(restart::TYPE, at_ms, &self.cluster);
        ev.name(keys::NODE_NAME, &self.node)
            .name(keys::NAMESPACE, namespace)
            .name(keys::POD_NAME, &pod_name)
            .name(keys::FULL_POD_NAME, name)
            .name(keys::CONTAINER_NAME, &st.name);
        if let Some(id) = container_id {
            ev.s(rk::CONTAINER_ID, id);
        }
        ev.u(rk::RESTART_COUNT, u64::from(n) + 1);
        if let Some(r) = term.reason.as_deref().filter(|r| !r.is_empty()) {
            ev.s(rk::REASON, r);
        }
        ev.v(rk::EXIT_CODE, Value::from(term.exit_code));
        if let Some(s) = term.signal {
            ev.v(rk::SIGNAL, Value::from(s));
        }
        if let Some(m) = term.message.as_deref().filter(|m| !m.is_empty()) {
            ev.s(rk::MESSAGE, truncate(m, 4096));
        }
        if let Some(t) = &term.started_at {
            ev.v(
                rk::STARTED_AT,
                serde_json::to_value(t).unwrap_or(Value::Null),
            );
        }
        if let Some(t) = &term.finished_at {
            ev.v(
                rk::FINISHED_AT,
                serde_json::to_value(t).unwrap_or(Value::Null),
            );
        }
        if let Some(r) = reading {
            if let Some(v) = &r.working_set {
                ev.v(rk::MEMORY_WORKING_SET_BEFORE, v.clone());
            }
            if let Some(v) = &r.cpu_usage {
                ev.v(rk::CPU_USAGE_BEFORE, v.clone());
            }
        }
        let limit = reading
            .and_then(|r| r.memory_limit.clone())
            .or_else(|| spec_memory_limit(pod, &st.name));
        if let Some(l) = limit {
            ev.v(rk::MEMORY_LIMIT, l);
        }
        if let Some(lines) = lines {
            ev.v(
                rk::LAST_LOG_LINES,
                Value::Array(lines.into_iter().map(Value::String).collect()),
            );
        }
        Some(self.finish(ev.into_fields()))
    }

    fn finish(&mut self, fields: Fields) -> PerfEvent {
        let directive = if self.disable_metric_extraction {
            None
        } else {
            self.directives.build_json(&fields)
        };
        PerfEvent { fields, directive }
    }

    /// `<pods_dir>/<ns>_<pod>_<uid>/<container>/<n>.log`; `None` for names that cannot be path
    /// components (the API validates them; a kubelet's answer is not trusted with paths).
    fn log_path(
        &self,
        pod: &Pod,
        namespace: &str,
        name: &str,
        uid: &str,
        container: &str,
        n: u32,
    ) -> Option<PathBuf> {
        let uid = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MIRROR_ANNOTATION))
            .map(String::as_str)
            .unwrap_or(uid);
        let ok = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']);
        if !(ok(namespace) && ok(name) && ok(uid) && ok(container)) {
            return None;
        }
        Some(
            self.pods_dir
                .join(format!("{namespace}_{name}_{uid}"))
                .join(container)
                .join(format!("{n}.log")),
        )
    }

    /// Keeps each container's readings from this collection's Container events.
    fn remember_readings(&mut self, events: &[PerfEvent]) {
        for e in events {
            let f = &e.fields;
            if f.get(keys::TYPE).and_then(Value::as_str) != Some(types::CONTAINER) {
                continue;
            }
            let Some(k) = f.get(keys::KUBERNETES) else {
                continue;
            };
            let (Some(uid), Some(name), Some(id)) = (
                k.get("pod_id").and_then(Value::as_str),
                k.get("container_name").and_then(Value::as_str),
                kube_container_id(k),
            ) else {
                continue;
            };
            let reading = Reading {
                container_id: id.to_string(),
                working_set: f.get("container_memory_working_set").cloned(),
                cpu_usage: f.get("container_cpu_usage_total").cloned(),
                memory_limit: f.get("container_memory_limit").cloned(),
            };
            let list = self
                .readings
                .entry((uid.to_string(), name.to_string()))
                .or_default();
            list.retain(|r| r.container_id != reading.container_id);
            list.push(reading);
            if list.len() > 2 {
                list.remove(0);
            }
        }
    }
}

/// The `N` of the ended instance's `N.log` (see the module's documentation), or `None` when
/// the status names no ended instance.
fn ended_instance(st: &ContainerStatus, term: &ContainerStateTerminated) -> Option<u32> {
    let count = u32::try_from(st.restart_count).ok()?;
    let newest_ended = match (term.container_id.as_deref(), st.container_id.as_deref()) {
        (Some(ended), Some(current)) if !ended.is_empty() && !current.is_empty() => {
            ended == current
        }
        // Without ids: a waiting container has no newer instance yet.
        _ => st.state.as_ref().is_some_and(|s| s.waiting.is_some()),
    };
    if newest_ended {
        Some(count)
    } else {
        count.checked_sub(1)
    }
}

/// `containerd://abc` → `abc`.
fn without_scheme(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

/// The container id of a `kubernetes` block: `{"containerd": {"container_id": …}}` (by
/// runtime) or `{"container_id": …}`.
fn kube_container_id(k: &Value) -> Option<&str> {
    let o = k.as_object()?;
    if let Some(id) = o.get("container_id").and_then(Value::as_str) {
        return Some(id);
    }
    o.values()
        .find_map(|v| v.get("container_id").and_then(Value::as_str))
}

/// The memory limit (bytes) in the pod's spec of container `name`.
fn spec_memory_limit(pod: &Pod, name: &str) -> Option<Value> {
    let spec = pod.spec.as_ref()?;
    let c = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)?;
    let q = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
    // A float, as the Container events write it.
    Number::from_f64(parse_quantity(&q.0)?).map(Value::Number)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: serde_json::Value) -> ContainerStatus {
        serde_json::from_value(v).unwrap()
    }

    fn ended(v: serde_json::Value) -> Option<u32> {
        let st = status(v);
        let term = st.last_state.as_ref()?.terminated.clone()?;
        ended_instance(&st, &term)
    }

    /// The kubelet's statuses around a restart (`convertToAPIContainerStatuses`): the ended
    /// instance's number follows from whether a newer instance exists.
    #[test]
    fn which_instance_ended() {
        let last = serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "containerID": "containerd://aaa"}});
        // Restarted: a new instance (1.log) runs, the ended one was 0.log.
        assert_eq!(
            ended(
                serde_json::json!({"name": "app", "image": "i", "imageID": "", "ready": true,
                "restartCount": 1, "containerID": "containerd://bbb",
                "state": {"running": {}}, "lastState": last})
            ),
            Some(0)
        );
        // Back-off: the ended instance is still the newest; it was 3.log.
        assert_eq!(
            ended(
                serde_json::json!({"name": "app", "image": "i", "imageID": "", "ready": false,
                "restartCount": 3, "containerID": "containerd://aaa",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": last})
            ),
            Some(3)
        );
        // Without ids, the state tells.
        let no_ids = serde_json::json!({"terminated": {"exitCode": 1}});
        assert_eq!(
            ended(
                serde_json::json!({"name": "app", "image": "i", "imageID": "", "ready": false,
                "restartCount": 2, "state": {"waiting": {}}, "lastState": no_ids})
            ),
            Some(2)
        );
        assert_eq!(
            ended(
                serde_json::json!({"name": "app", "image": "i", "imageID": "", "ready": true,
                "restartCount": 2, "state": {"running": {}}, "lastState": no_ids})
            ),
            Some(1)
        );
        // A lastState with a count of 0 and a newer instance is not a restart the kubelet
        // could report.
        assert_eq!(
            ended(
                serde_json::json!({"name": "app", "image": "i", "imageID": "", "ready": true,
                "restartCount": 0, "containerID": "containerd://bbb",
                "state": {"running": {}}, "lastState": last})
            ),
            None
        );
        assert_eq!(without_scheme("cri-o://x"), "x");
        assert_eq!(truncate("aé", 2), "a…");
    }
}
