//! Pod, PodNet and Container events: cgroup statistics of the kubelet's pods (reference §2.2:
//! the pod cgroup is the parent of its container cgroups, so pod numbers include the pause
//! container; pod network is the pod's network namespace, read through any of its processes).

use super::event::{Ev, Fields, SharedValue, field_name, percent};
use super::pods::{ContainerInfo, ContainerState, PodInfo};
use super::{Collector, Inputs, NodeIdentity};
use crate::cgroup::{CgroupStats, PodCgroup};
use kinsight_model::catalogue::{keys, types};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A built `kubernetes` block ([`Collector::kubernetes_block`]).
#[derive(Debug)]
pub(super) struct KubeBlock {
    container: Option<String>,
    service: Option<String>,
    block: Arc<SharedValue>,
}

/// How a pod's network is read ([`Collector::pod_network`]).
#[derive(Debug)]
pub(super) enum NetProcess {
    Found(crate::host::ProcessDir),
    /// No process of the pod could be read through, at `since` (monotonic ns).
    None {
        since: u64,
    },
}

/// Whether the cgroup listing has `pod` (when it runs) and every running container of it.
fn running_containers_listed(pod: &PodInfo, list: &[PodCgroup]) -> bool {
    let mut running = pod
        .containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .filter_map(|c| c.id.as_deref())
        .peekable();
    match list.iter().find(|p| p.uid == pod.uid) {
        Some(pcg) => running.all(|id| pcg.containers.iter().any(|c| c.id == id)),
        // Not listed: fine only for a pod that has nothing running yet.
        None => running.peek().is_none() && pod.phase != "Running",
    }
}

impl Collector {
    pub(super) fn workload_events(
        &mut self,
        t_ns: u64,
        ts: i64,
        inputs: &Inputs<'_>,
        pods: Option<&[PodInfo]>,
        id: &NodeIdentity,
        out: &mut Vec<Fields>,
    ) {
        let Some(pods) = pods else {
            return;
        };
        let Some(cgroups) = self.cgroups.clone() else {
            return;
        };
        let found = self.pod_cgroups(&cgroups, t_ns, pods);
        let by_uid: HashMap<&str, &PodCgroup> = found.iter().map(|p| (p.uid.as_str(), p)).collect();
        let node_cpu_limit = self.cores().map(|c| c as f64 * 1000.0);
        let node_mem_limit = self.mem_total;
        let mut seen_pods = HashSet::new();
        let mut seen_containers = HashSet::new();
        for pod in pods {
            if let Some(node) = &pod.node_name {
                if node != &self.settings.node_name && !by_uid.contains_key(pod.uid.as_str()) {
                    continue;
                }
            }
            let Some(pcg) = by_uid.get(pod.uid.as_str()) else {
                continue;
            };
            seen_pods.insert(pod.uid.clone());
            let service = inputs
                .services
                .and_then(|s| s.get(&(pod.namespace.clone(), pod.full_name.clone())))
                .cloned();

            // Restarts: per-interval delta, nothing on the first observation (reference §2.3).
            let total = pod.restarts_total();
            let restart_delta = self
                .pod_restarts
                .insert(pod.uid.clone(), total)
                .map(|prev| total.saturating_sub(prev));

            let stats = cgroups.read(&pcg.path);
            if stats.vanished() {
                // Removed since the listing (pod deleted): skipped like a pod never listed.
                self.rediscover = true;
                continue;
            }
            self.report_cgroup_errors(&pod.uid, &stats);
            let mut ev = Ev::new(types::POD, ts, &self.settings.cluster_name);
            id.apply(&mut ev, &self.settings.node_name);
            self.pod_identity(&mut ev, pod, service.as_deref(), None);
            ev.s(keys::POD_STATUS, pod.phase.clone());
            let key = format!("pod/{}", pod.uid);
            let usage = self.cpu_fields(&mut ev, "pod", &key, &stats, t_ns, node_cpu_limit);
            let cpu_limit = pod.cpu_limit_m();
            if let Some(req) = pod.cpu_request_m() {
                let req = node_cpu_limit.map_or(req, |l| req.min(l));
                ev.f("pod_cpu_request", req);
                ev.opt(
                    "pod_cpu_reserved_capacity",
                    node_cpu_limit.and_then(|l| percent(req, l)),
                );
            }
            if let Some(l) = cpu_limit {
                ev.f("pod_cpu_limit", l);
                ev.opt(
                    "pod_cpu_utilization_over_pod_limit",
                    usage.and_then(|u| percent(u, l)),
                );
            }
            let ws = self.memory_fields(&mut ev, "pod", &key, &stats, t_ns, node_mem_limit);
            if let Some(req) = pod.mem_request() {
                let req = node_mem_limit.map_or(req, |l| req.min(l));
                ev.f("pod_memory_request", req);
                ev.opt(
                    "pod_memory_reserved_capacity",
                    node_mem_limit.and_then(|l| percent(req, l)),
                );
            }
            if let Some(l) = pod.mem_limit() {
                ev.f("pod_memory_limit", l);
                ev.opt(
                    "pod_memory_utilization_over_pod_limit",
                    ws.and_then(|w| percent(w, l)),
                );
            }

            // Network of the pod's namespace, through the first process that can be read.
            let mut base = Ev::new(types::POD_NET, ts, &self.settings.cluster_name);
            id.apply(&mut base, &self.settings.node_name);
            self.pod_identity(&mut base, pod, service.as_deref(), None);
            if let Some(ifaces) = self.pod_network(&cgroups, pcg, t_ns) {
                let sums = self.interface_events(t_ns, &key, "pod", &base.0, &ifaces, out);
                for (m, v) in sums {
                    ev.f(field_name(&["pod_network_", m]), v);
                }
            }

            ev.u("pod_number_of_containers", pod.status_count as u64);
            ev.u(
                "pod_number_of_running_containers",
                pod.running_containers() as u64,
            );
            ev.opt_u("pod_number_of_container_restarts", restart_delta);
            if self.settings.enhanced {
                pod_status_fields(&mut ev, pod);
            }
            self.pod_gpu_fields(&mut ev, pod);
            out.push(ev.into_fields());

            for c in &pod.containers {
                let Some(cid) = c.id.as_deref() else { continue };
                let Some(ccg) = pcg.containers.iter().find(|x| x.id == cid) else {
                    continue;
                };
                let ckey = format!("ctr/{}/{}", pod.uid, c.name);
                seen_containers.insert(ckey.clone());
                let restart_delta = self
                    .container_restarts
                    .insert(ckey.clone(), c.restarts)
                    .map(|prev| c.restarts.saturating_sub(prev));
                let stats = cgroups.read(&ccg.path);
                if stats.vanished() {
                    self.rediscover = true;
                    continue;
                }
                self.report_cgroup_errors(cid, &stats);
                let mut ev = Ev::new(types::CONTAINER, ts, &self.settings.cluster_name);
                id.apply(&mut ev, &self.settings.node_name);
                self.pod_identity(&mut ev, pod, service.as_deref(), Some(c));
                ev.s(keys::CONTAINER_STATUS, c.state.as_str());
                if let Some(r) = &c.reason {
                    ev.s(keys::CONTAINER_STATUS_REASON, r.clone());
                }
                if let Some(r) = &c.last_termination_reason {
                    ev.s(keys::CONTAINER_LAST_TERMINATION_REASON, r.clone());
                }
                let ckey = format!("ctr/{}/{}", pod.uid, cid);
                let usage =
                    self.cpu_fields(&mut ev, "container", &ckey, &stats, t_ns, node_cpu_limit);
                ev.opt("container_cpu_limit", c.cpu_limit_m)
                    .opt("container_cpu_request", c.cpu_request_m);
                if self.settings.enhanced {
                    if let (Some(u), Some(l)) = (usage, c.cpu_limit_m) {
                        ev.opt(
                            "container_cpu_utilization_over_container_limit",
                            percent(u, l),
                        );
                    }
                }
                let ws =
                    self.memory_fields(&mut ev, "container", &ckey, &stats, t_ns, node_mem_limit);
                ev.opt("container_memory_limit", c.mem_limit)
                    .opt("container_memory_request", c.mem_request);
                if self.settings.enhanced {
                    if let (Some(w), Some(l)) = (ws, c.mem_limit) {
                        ev.opt(
                            "container_memory_utilization_over_container_limit",
                            percent(w, l),
                        );
                    }
                }
                // No `container_` prefix on this one (reference §1.3).
                ev.opt_u("number_of_container_restarts", restart_delta);
                out.push(ev.into_fields());
            }
        }
        self.pod_restarts.retain(|uid, _| seen_pods.contains(uid));
        self.net_processes.retain(|uid, _| seen_pods.contains(uid));
        drop(by_uid);
        self.discovered = found;
        self.container_restarts
            .retain(|k, _| seen_containers.contains(k));
    }

    /// The interfaces of the pod's network namespace, read through one of its processes. The
    /// process found is kept (its `/proc` directory held open) and asked again at the next
    /// collections, without listing the pod's cgroups for pids (v1 `cgroup.procs` builds and
    /// sorts a pid list on every read); once it has exited, the pod's processes are listed
    /// again. A pod with no process to read through is looked at again after 10 s.
    fn pod_network(
        &mut self,
        cgroups: &crate::cgroup::Cgroups,
        pcg: &PodCgroup,
        t_ns: u64,
    ) -> Option<std::collections::BTreeMap<String, crate::host::NetCounters>> {
        const RETRY_NS: u64 = 10_000_000_000;
        match self.net_processes.get(&pcg.uid) {
            Some(NetProcess::Found(p)) => {
                if let Ok(ifaces) = self.host.process_network(p) {
                    return Some(ifaces);
                }
            }
            Some(NetProcess::None { since }) if t_ns >= *since && t_ns - since < RETRY_NS => {
                return None;
            }
            _ => {}
        }
        let pids = std::iter::once(pcg.path.as_str())
            .chain(pcg.containers.iter().map(|c| c.path.as_str()))
            .flat_map(|p| cgroups.pids(p))
            .take(4);
        for pid in pids {
            let Ok(p) = self.host.process(pid) else {
                continue;
            };
            if let Ok(ifaces) = self.host.process_network(&p) {
                self.net_processes
                    .insert(pcg.uid.clone(), NetProcess::Found(p));
                return Some(ifaces);
            }
        }
        self.net_processes
            .insert(pcg.uid.clone(), NetProcess::None { since: t_ns });
        None
    }

    /// Pod cgroups of the node. Listing the cgroup tree costs a directory read per pod, so
    /// the listing is kept and taken again only every 10 s, when a running container of the
    /// kubelet's list is not in it (a new pod or a restarted container), or when a listed
    /// cgroup was gone at the last collection.
    fn pod_cgroups(
        &mut self,
        cgroups: &crate::cgroup::Cgroups,
        t_ns: u64,
        pods: &[PodInfo],
    ) -> Vec<PodCgroup> {
        const RELIST_NS: u64 = 10_000_000_000;
        if let Some(at) = self.discovered_at {
            let fresh = !self.rediscover && t_ns >= at && t_ns - at < RELIST_NS;
            let node = &self.settings.node_name;
            // Pods of other nodes (an API server pod list) have no cgroups here.
            let ours = |p: &&PodInfo| p.node_name.as_ref().is_none_or(|n| n == node);
            if fresh
                && pods
                    .iter()
                    .filter(ours)
                    .all(|p| running_containers_listed(p, &self.discovered))
            {
                // Handed back by `workload_events` when it is done with it.
                return std::mem::take(&mut self.discovered);
            }
        }
        self.rediscover = false;
        self.discovered_at = Some(t_ns);
        // A new listing may show processes in pods that had none.
        self.net_processes
            .retain(|_, p| matches!(p, NetProcess::Found(_)));
        cgroups.discover_pods()
    }

    fn report_cgroup_errors(&mut self, what: &str, stats: &CgroupStats) {
        for e in &stats.errors {
            self.problems
                .report(&format!("cgroup/{what}"), &format!("{what}: {e}"));
        }
    }

    /// Namespace, PodName (FullPodName), Service and the `kubernetes` block (reference §1.4).
    pub(super) fn pod_identity(
        &mut self,
        ev: &mut Ev,
        pod: &PodInfo,
        service: Option<&str>,
        container: Option<&ContainerInfo>,
    ) {
        ev.name(keys::NAMESPACE, &pod.namespace)
            .name(keys::POD_NAME, &pod.pod_name);
        if self.settings.enhanced {
            ev.name(keys::FULL_POD_NAME, &pod.full_name);
            if let Some(c) = container {
                ev.name(keys::CONTAINER_NAME, &c.name);
            }
        }
        if let Some(s) = service {
            ev.name(keys::SERVICE, s);
        }
        let block = self.kubernetes_block(pod, service, container);
        ev.shared(keys::KUBERNETES, &block);
    }

    /// The `kubernetes` block of a pod's (or one of its containers') events, built once per
    /// pod list and Service and shared by every event that carries it.
    fn kubernetes_block(
        &mut self,
        pod: &PodInfo,
        service: Option<&str>,
        container: Option<&ContainerInfo>,
    ) -> Arc<SharedValue> {
        let name = container.map(|c| c.name.as_str());
        let same =
            |b: &KubeBlock| b.container.as_deref() == name && b.service.as_deref() == service;
        if let Some(b) = self
            .kube_blocks
            .get(pod.uid.as_str())
            .and_then(|list| list.iter().find(|b| same(b)))
        {
            return b.block.clone();
        }
        let mut k = Map::new();
        if let Some(c) = container {
            k.insert("container_name".into(), c.name.clone().into());
            if let Some(id) = &c.id {
                match &c.runtime {
                    Some(rt) => k.insert(rt.clone(), json!({"container_id": id})),
                    None => k.insert("container_id".into(), id.clone().into()),
                };
            }
        }
        k.insert("host".into(), self.settings.node_name.clone().into());
        if !pod.labels.is_empty() {
            k.insert("labels".into(), json!(pod.labels));
        }
        k.insert("namespace_name".into(), pod.namespace.clone().into());
        k.insert("pod_id".into(), pod.uid.clone().into());
        k.insert("pod_name".into(), pod.full_name.clone().into());
        if !pod.owners.is_empty() {
            let owners: Vec<Value> = pod
                .owners
                .iter()
                .map(|(kind, name)| json!({"owner_kind": kind, "owner_name": name}))
                .collect();
            k.insert("pod_owners".into(), Value::Array(owners));
        }
        if let Some(s) = service {
            k.insert("service_name".into(), s.into());
        }
        let block = SharedValue::new(Value::Object(k));
        let list = self.kube_blocks.entry(pod.uid.clone()).or_default();
        // The one built for another Service, if any, is not asked for any more.
        list.retain(|b| b.container.as_deref() != name);
        list.push(KubeBlock {
            container: name.map(str::to_string),
            service: service.map(str::to_string),
            block: block.clone(),
        });
        block
    }

    /// `<p>_cpu_usage_{total,user,system}` and `<p>_cpu_utilization`; returns usage (millicores).
    fn cpu_fields(
        &mut self,
        ev: &mut Ev,
        p: &str,
        key: &str,
        stats: &CgroupStats,
        t_ns: u64,
        node_limit: Option<f64>,
    ) -> Option<f64> {
        let cpu = stats.cpu?;
        let total = self
            .rates
            .millicores((key, "cpu/total"), cpu.usage_total_ns, t_ns);
        ev.opt(field_name(&[p, "_cpu_usage_total"]), total);
        if let Some(u) = cpu.usage_user_ns {
            ev.opt(
                field_name(&[p, "_cpu_usage_user"]),
                self.rates.millicores((key, "cpu/user"), u, t_ns),
            );
        }
        if let Some(s) = cpu.usage_system_ns {
            ev.opt(
                field_name(&[p, "_cpu_usage_system"]),
                self.rates.millicores((key, "cpu/system"), s, t_ns),
            );
        }
        if let (Some(u), Some(l)) = (total, node_limit) {
            ev.opt(field_name(&[p, "_cpu_utilization"]), percent(u, l));
        }
        total
    }

    /// `<p>_memory_*` from the cgroup; returns the working set (bytes).
    fn memory_fields(
        &mut self,
        ev: &mut Ev,
        p: &str,
        key: &str,
        stats: &CgroupStats,
        t_ns: u64,
        node_limit: Option<f64>,
    ) -> Option<f64> {
        let m = stats.memory?;
        ev.u(field_name(&[p, "_memory_usage"]), m.usage_bytes);
        ev.opt_u(field_name(&[p, "_memory_cache"]), m.cache_bytes)
            .opt_u(field_name(&[p, "_memory_rss"]), m.rss_bytes);
        ev.opt_u(field_name(&[p, "_memory_max_usage"]), m.max_usage_bytes)
            .opt_u(field_name(&[p, "_memory_swap"]), m.swap_bytes);
        ev.opt_u(field_name(&[p, "_memory_failcnt"]), m.failcnt)
            .opt_u(field_name(&[p, "_memory_mapped_file"]), m.mapped_file_bytes);
        ev.u(field_name(&[p, "_memory_working_set"]), m.working_set_bytes);
        let faults = m.pgfault.zip(m.pgmajfault);
        self.fault_rates(ev, p, key, t_ns, faults);
        if let Some(l) = node_limit {
            ev.opt(
                field_name(&[p, "_memory_utilization"]),
                percent(m.working_set_bytes as f64, l),
            );
        }
        Some(m.working_set_bytes as f64)
    }
}

/// Enhanced-mode status fields of a Pod event (reference §2.3).
pub(super) fn pod_status_fields(ev: &mut Ev, pod: &PodInfo) {
    for (phase, field) in [
        ("Running", "pod_status_running"),
        ("Pending", "pod_status_pending"),
        ("Succeeded", "pod_status_succeeded"),
        ("Failed", "pod_status_failed"),
    ] {
        ev.u(field, (pod.phase == phase) as u64);
    }
    let cond = |t: &str| pod.conditions.get(t).map(String::as_str);
    ev.u("pod_status_ready", (cond("Ready") == Some("True")) as u64);
    ev.u(
        "pod_status_scheduled",
        (cond("PodScheduled") == Some("True")) as u64,
    );
    ev.u(
        "pod_status_unknown",
        (cond("Ready") == Some("Unknown") || cond("PodScheduled") == Some("Unknown")) as u64,
    );
    let count = |s: ContainerState| pod.containers.iter().filter(|c| c.state == s).count() as u64;
    ev.u(
        "pod_container_status_running",
        count(ContainerState::Running),
    );
    ev.u(
        "pod_container_status_waiting",
        count(ContainerState::Waiting),
    );
    ev.u(
        "pod_container_status_terminated",
        count(ContainerState::Terminated),
    );
    let waiting = |reasons: &[&str]| {
        pod.containers
            .iter()
            .filter(|c| {
                c.state == ContainerState::Waiting
                    && c.reason.as_deref().is_some_and(|r| reasons.contains(&r))
            })
            .count() as u64
    };
    ev.u(
        "pod_container_status_waiting_reason_crash_loop_back_off",
        waiting(&["CrashLoopBackOff"]),
    );
    ev.u(
        "pod_container_status_waiting_reason_image_pull_error",
        waiting(&["ErrImagePull", "ImagePullBackOff", "InvalidImageName"]),
    );
    ev.u(
        "pod_container_status_waiting_reason_start_error",
        waiting(&["StartError"]),
    );
    ev.u(
        "pod_container_status_waiting_reason_create_container_error",
        waiting(&["CreateContainerError"]),
    );
    ev.u(
        "pod_container_status_waiting_reason_create_container_config_error",
        waiting(&["CreateContainerConfigError"]),
    );
    ev.u(
        "pod_container_status_terminated_reason_oom_killed",
        pod.containers
            .iter()
            .filter(|c| {
                c.last_termination_reason
                    .as_deref()
                    .is_some_and(|r| r.contains("OOMKilled"))
            })
            .count() as u64,
    );
}
