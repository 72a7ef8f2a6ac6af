//! Accelerated compute events (issue 18; reference §1.3, §2.3, §2.4.b), when
//! `accelerated_compute_metrics` is on ([`Inputs::accelerators`] is then `Some`):
//!
//! - **GPUs** (`NodeGPU`, `PodGPU`, `ContainerGPU`): the DCGM exporter's gauges of each GPU,
//!   renamed and scaled as the CloudWatch agent does (§2.3) — `DCGM_FI_DEV_GPU_UTIL` →
//!   `<level>_gpu_utilization`, `_FB_USED_PERCENT` × 100 → `_gpu_memory_utilization`,
//!   `_FB_TOTAL` / `_FB_USED` MiB × 1024² → `_gpu_memory_total` / `_used` (bytes),
//!   `_POWER_USAGE` (W) → `_gpu_power_draw`, `_GPU_TEMP` (°C) → `_gpu_temperature`,
//!   `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` → `_gpu_tensor_core_utilization`. Like upstream, every
//!   reading is written three times: once per GPU at node level, and — when a container holds
//!   the GPU — once for its pod and once for the container, each with `GpuDevice` (the
//!   exporter's `device`, `nvidia0`) and `UUID`. The node and pod figures are these per-GPU
//!   events rolled up by their dimension sets (a node's average utilization is the average over
//!   its GPUs' events), not sums computed here. A GPU nobody holds has a node event only.
//! - **EFA devices** (`NodeEFA`, `PodEFA`, `ContainerEFA`): per-second rates of the sysfs
//!   counters ([`crate::efa`]) with `EfaDevice`; the pod and container copies when the
//!   kubelet's pod-resources API says a container holds the device — and held it at the
//!   previous collection too, so a rate never spans two holders.
//! - **GPU requests** on Node and Pod events (`node_gpu_{request,limit,usage_total,
//!   reserved_capacity}`, `pod_gpu_*`), from the pods' `nvidia.com/gpu` limits and requests and
//!   the Node's capacity, with upstream's formulas (§2.3).
//!
//! Which container holds a GPU: the DCGM exporter's own `pod` / `namespace` / `container`
//! labels (its Kubernetes mode), else the kubelet's device assignments (`nvidia.com/gpu`, by the
//! GPU's UUID or index). The pod is then looked up in the kubelet's pod list for its
//! controller-normalized `PodName`, `Service` and `kubernetes` block; a pod not (yet) in the
//! list is written with the names it came with.

use super::event::{Ev, Fields, field_name, percent};
use super::pods::PodInfo;
use super::{Collector, Inputs, NodeIdentity};
use crate::efa::EfaDevice;
use crate::pod_resources::{Assignments, Holder};
use crate::prometheus::Sample;
use kinsight_model::catalogue::accelerated::{
    EFA_MEASUREMENTS, EFA_RESOURCE, GPU_RESOURCE, NODE_GPU_LIMIT, NODE_GPU_REQUEST,
    NODE_GPU_RESERVED_CAPACITY, NODE_GPU_USAGE_TOTAL, POD_GPU_LIMIT, POD_GPU_REQUEST,
    POD_GPU_RESERVED_CAPACITY, POD_GPU_USAGE_TOTAL,
};
use kinsight_model::catalogue::{keys, types};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// What the agent read for accelerated compute in one collection ([`crate::run::MetricsLoop`]).
#[derive(Debug, Default, Clone)]
pub struct AcceleratorInputs {
    /// The DCGM exporter's samples ([`crate::dcgm::wanted`]); `None` when it was not asked (no
    /// NVIDIA GPU on the node) or did not answer.
    pub gpu: Option<Vec<Sample>>,
    /// The node's EFA devices and their counters.
    pub efa: Vec<EfaDevice>,
    /// The kubelet's device assignments, when something needed them and they could be read.
    pub devices: Option<Assignments>,
}

/// What the collector keeps for accelerated compute.
#[derive(Debug, Default)]
pub struct AcceleratorState {
    /// This collection's `nvidia.com/gpu` per pod uid (pods that ask for GPUs).
    pod_gpus: HashMap<String, PodGpus>,
    /// The Node's `nvidia.com/gpu` capacity.
    node_gpus: Option<u64>,
    /// Who held each EFA device at the previous collection with assignments.
    efa_holders: HashMap<String, Holder>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct PodGpus {
    request: u64,
    limit: u64,
}

/// Σ `nvidia.com/gpu` limits and requests of a pod's containers that set a limit (an extended
/// resource's request equals its limit when only the limit is written). `None` when no
/// container asks for a GPU.
fn pod_gpus(pod: &k8s_openapi::api::core::v1::Pod) -> Option<PodGpus> {
    let mut out = None::<PodGpus>;
    for c in pod.spec.as_ref().map(|s| &s.containers[..]).unwrap_or(&[]) {
        let res = c.resources.as_ref();
        let get = |m: Option<
            &std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >| {
            m.and_then(|m| m.get(GPU_RESOURCE))
                .and_then(|q| super::quantity::parse_quantity(&q.0))
                .filter(|v| *v >= 0.0)
                .map(|v| v.ceil() as u64)
        };
        let Some(limit) = get(res.and_then(|r| r.limits.as_ref())) else {
            continue;
        };
        let request = get(res.and_then(|r| r.requests.as_ref())).unwrap_or(limit);
        let o = out.get_or_insert_default();
        o.limit += limit;
        o.request += request;
    }
    out
}

/// An integral reading as a JSON integer (GPU utilization, temperature, bytes), any other as a
/// float.
fn number(ev: &mut Ev, key: &'static str, v: f64) {
    if v.fract() == 0.0 && (0.0..9.0e15).contains(&v) {
        ev.u(key, v as u64);
    } else {
        ev.f(key, v);
    }
}

/// One GPU's readings of one scrape (raw DCGM values).
#[derive(Debug, Default, Clone, Copy)]
struct Readings {
    util: Option<f64>,
    fb_used_percent: Option<f64>,
    fb_total: Option<f64>,
    fb_used: Option<f64>,
    fb_free: Option<f64>,
    fb_reserved: Option<f64>,
    power: Option<f64>,
    temperature: Option<f64>,
    tensor_active: Option<f64>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Readings {
    /// Records `value` of DCGM field `name`; the first reading of a field wins.
    fn set(&mut self, name: &str, value: f64) {
        let slot = match name {
            "DCGM_FI_DEV_GPU_UTIL" => &mut self.util,
            "DCGM_FI_DEV_FB_USED_PERCENT" => &mut self.fb_used_percent,
            "DCGM_FI_DEV_FB_TOTAL" => &mut self.fb_total,
            "DCGM_FI_DEV_FB_USED" => &mut self.fb_used,
            crate::dcgm::FB_FREE => &mut self.fb_free,
            crate::dcgm::FB_RESERVED => &mut self.fb_reserved,
            "DCGM_FI_DEV_POWER_USAGE" => &mut self.power,
            "DCGM_FI_DEV_GPU_TEMP" => &mut self.temperature,
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE" => &mut self.tensor_active,
            _ => return,
        };
        if value.is_finite() {
            slot.get_or_insert(value);
        }
    }

    /// The reference's measurements (without the level prefix) and their values.
    fn measurements(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::with_capacity(7);
        let used_free = self.fb_used.zip(self.fb_free);
        let mut push = |m: &'static str, v: Option<f64>| {
            if let Some(v) = v {
                out.push((m, v));
            }
        };
        push("gpu_utilization", self.util);
        push(
            "gpu_memory_utilization",
            self.fb_used_percent
                .map(|f| f * 100.0)
                .or_else(|| used_free.and_then(|(u, f)| percent(u, u + f))),
        );
        push(
            "gpu_memory_total",
            self.fb_total
                .or_else(|| used_free.map(|(u, f)| u + f + self.fb_reserved.unwrap_or(0.0)))
                .map(|m| m * MIB),
        );
        push("gpu_memory_used", self.fb_used.map(|m| m * MIB));
        push("gpu_power_draw", self.power);
        push("gpu_temperature", self.temperature);
        // A ratio of cycles (0–1): written as a percent, as its name and unit say.
        push(
            "gpu_tensor_core_utilization",
            self.tensor_active.map(|r| r * 100.0),
        );
        out
    }
}

/// A GPU as the exporter labels it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GpuKey {
    /// `gpu` (the index), `GPU_I_ID` (a MIG instance), `UUID`, `device`.
    index: String,
    instance: String,
    uuid: String,
    device: String,
}

fn label<'a>(s: &'a Sample, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| {
        s.labels
            .iter()
            .find(|(k, v)| k == n && !v.is_empty())
            .map(|(_, v)| v.as_str())
    })
}

/// The container holding the GPU of sample `s`: the exporter's labels, else the kubelet's
/// assignments of `nvidia.com/gpu` by UUID or index.
fn gpu_holder(s: &Sample, key: &GpuKey, devices: Option<&Assignments>) -> Option<Holder> {
    if let (Some(pod), Some(namespace)) = (
        label(s, &["pod", "pod_name"]),
        label(s, &["namespace", "pod_namespace"]),
    ) {
        return Some(Holder {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: label(s, &["container", "container_name"])
                .unwrap_or("")
                .to_string(),
        });
    }
    let devices = devices?;
    [&key.uuid, &key.index]
        .into_iter()
        .filter(|id| !id.is_empty())
        .find_map(|id| devices.holder(GPU_RESOURCE, id))
        .cloned()
}

/// Readings grouped by a key, in order of first appearance.
struct Groups<K> {
    order: Vec<(K, Readings)>,
    index: HashMap<K, usize>,
}

impl<K: std::hash::Hash + Eq + Clone> Groups<K> {
    fn new() -> Self {
        Groups {
            order: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn get(&mut self, k: &K) -> &mut Readings {
        let i = match self.index.get(k) {
            Some(&i) => i,
            None => {
                self.order.push((k.clone(), Readings::default()));
                self.index.insert(k.clone(), self.order.len() - 1);
                self.order.len() - 1
            }
        };
        &mut self.order[i].1
    }
}

impl Collector {
    /// This collection's GPU requests and the node's GPU capacity; nothing when accelerated
    /// compute is off.
    pub(super) fn prepare_accelerators(&mut self, inputs: &Inputs<'_>) {
        let st = &mut self.accelerators;
        st.pod_gpus.clear();
        st.node_gpus = None;
        if inputs.accelerators.is_none() {
            st.efa_holders.clear();
            return;
        }
        st.node_gpus = inputs
            .node
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get(GPU_RESOURCE))
            .and_then(|q| super::quantity::parse_quantity(&q.0))
            .filter(|v| *v >= 0.0)
            .map(|v| v as u64);
        for pod in inputs.pods.map(|p| &p[..]).unwrap_or(&[]) {
            let Some(uid) = pod.metadata.uid.as_ref() else {
                continue;
            };
            if let Some(g) = pod_gpus(pod) {
                st.pod_gpus.insert(uid.clone(), g);
            }
        }
    }

    /// `node_gpu_*` of the Node event, on a node with GPU capacity (upstream's rule): requests
    /// of the pods not terminated, limits of the running ones.
    pub(super) fn node_gpu_fields(&self, ev: &mut Ev, pods: Option<&[PodInfo]>) {
        let st = &self.accelerators;
        let Some(capacity) = st.node_gpus.filter(|c| *c > 0) else {
            return;
        };
        let (mut request, mut usage) = (0, 0);
        for pod in pods.unwrap_or(&[]) {
            let Some(g) = st.pod_gpus.get(&pod.uid) else {
                continue;
            };
            if pod.is_terminated() {
                continue;
            }
            request += g.request;
            if pod.phase == "Running" {
                usage += g.limit;
            }
        }
        ev.u(NODE_GPU_REQUEST, request)
            .u(NODE_GPU_LIMIT, capacity)
            .u(NODE_GPU_USAGE_TOTAL, usage)
            .opt(
                NODE_GPU_RESERVED_CAPACITY,
                percent(request as f64, capacity as f64),
            );
    }

    /// `pod_gpu_*` of a Pod event, for a pod that asks for GPUs and has not terminated: its
    /// request and limit, its limit as usage while it runs, its share of the node's GPUs.
    pub(super) fn pod_gpu_fields(&self, ev: &mut Ev, pod: &PodInfo) {
        let st = &self.accelerators;
        let Some(g) = st.pod_gpus.get(&pod.uid) else {
            return;
        };
        if pod.is_terminated() {
            return;
        }
        let usage = if pod.phase == "Running" { g.limit } else { 0 };
        ev.u(POD_GPU_REQUEST, g.request)
            .u(POD_GPU_LIMIT, g.limit)
            .u(POD_GPU_USAGE_TOTAL, usage);
        if let Some(capacity) = st.node_gpus.filter(|c| *c > 0) {
            ev.opt(
                POD_GPU_RESERVED_CAPACITY,
                percent(g.limit as f64, capacity as f64),
            );
        }
    }

    /// The GPU and EFA events of one collection.
    pub(super) fn accelerator_events(
        &mut self,
        t_ns: u64,
        ts: i64,
        inputs: &Inputs<'_>,
        pods: Option<&[PodInfo]>,
        id: &NodeIdentity,
        out: &mut Vec<Fields>,
    ) {
        let Some(acc) = inputs.accelerators else {
            return;
        };
        if let Some(samples) = &acc.gpu {
            self.gpu_events(ts, samples, acc.devices.as_ref(), inputs, pods, id, out);
        }
        self.efa_events(t_ns, ts, acc, inputs, pods, id, out);
    }

    fn gpu_events(
        &mut self,
        ts: i64,
        samples: &[Sample],
        devices: Option<&Assignments>,
        inputs: &Inputs<'_>,
        pods: Option<&[PodInfo]>,
        id: &NodeIdentity,
        out: &mut Vec<Fields>,
    ) {
        let mut nodes: Groups<GpuKey> = Groups::new();
        let mut pod_groups: Groups<(GpuKey, String, String)> = Groups::new();
        let mut containers: Groups<(GpuKey, Holder)> = Groups::new();
        for s in samples {
            let key = GpuKey {
                index: label(s, &["gpu"]).unwrap_or("").to_string(),
                instance: label(s, &["GPU_I_ID"]).unwrap_or("").to_string(),
                uuid: label(s, &["UUID"]).unwrap_or("").to_string(),
                device: label(s, &["device"]).unwrap_or("").to_string(),
            };
            if key.index.is_empty() && key.uuid.is_empty() && key.device.is_empty() {
                continue; // not a GPU's series
            }
            nodes.get(&key).set(&s.name, s.value);
            if let Some(h) = gpu_holder(s, &key, devices) {
                pod_groups
                    .get(&(key.clone(), h.namespace.clone(), h.pod.clone()))
                    .set(&s.name, s.value);
                if !h.container.is_empty() {
                    containers.get(&(key, h)).set(&s.name, s.value);
                }
            }
        }
        let cluster = self.settings.cluster_name.clone();
        let node_name = self.settings.node_name.clone();
        let gpu_base = |t: &'static str, key: &GpuKey| {
            let mut ev = Ev::new(t, ts, &cluster);
            id.apply(&mut ev, &node_name);
            if !key.device.is_empty() {
                ev.name(keys::GPU_DEVICE, &key.device);
            }
            if !key.uuid.is_empty() {
                ev.name(keys::GPU_UUID, &key.uuid);
            }
            ev
        };
        for (key, r) in &nodes.order {
            let mut ev = gpu_base(types::NODE_GPU, key);
            ev.v(keys::KUBERNETES, json!({"host": node_name}));
            if write_measurements(&mut ev, "node", &r.measurements()) {
                out.push(ev.into_fields());
            }
        }
        for ((key, namespace, pod), r) in &pod_groups.order {
            let mut ev = gpu_base(types::POD_GPU, key);
            let holder = Holder {
                namespace: namespace.clone(),
                pod: pod.clone(),
                container: String::new(),
            };
            self.holder_identity(&mut ev, &holder, false, inputs, pods);
            if write_measurements(&mut ev, "pod", &r.measurements()) {
                out.push(ev.into_fields());
            }
        }
        for ((key, holder), r) in &containers.order {
            let mut ev = gpu_base(types::CONTAINER_GPU, key);
            self.holder_identity(&mut ev, holder, true, inputs, pods);
            if write_measurements(&mut ev, "container", &r.measurements()) {
                out.push(ev.into_fields());
            }
        }
    }

    fn efa_events(
        &mut self,
        t_ns: u64,
        ts: i64,
        acc: &AcceleratorInputs,
        inputs: &Inputs<'_>,
        pods: Option<&[PodInfo]>,
        id: &NodeIdentity,
        out: &mut Vec<Fields>,
    ) {
        let cluster = self.settings.cluster_name.clone();
        let node_name = self.settings.node_name.clone();
        let mut holders = HashMap::new();
        for dev in &acc.efa {
            let rates: Vec<(&'static str, f64)> = EFA_MEASUREMENTS
                .iter()
                .filter_map(|(m, counter)| {
                    let v = *dev.counters.get(counter)?;
                    let r = self
                        .rates
                        .per_second(("efa", dev.name.as_str(), *counter), v, t_ns)?;
                    Some((*m, r))
                })
                .collect();
            let holder = acc
                .devices
                .as_ref()
                .and_then(|a| a.holder(EFA_RESOURCE, &dev.name))
                .cloned();
            let held_before =
                holder.is_some() && self.accelerators.efa_holders.get(&dev.name) == holder.as_ref();
            if let Some(h) = &holder {
                holders.insert(dev.name.clone(), h.clone());
            }
            if rates.is_empty() {
                continue;
            }
            let base = |t: &'static str| {
                let mut ev = Ev::new(t, ts, &cluster);
                id.apply(&mut ev, &node_name);
                ev.name(keys::EFA_DEVICE, &dev.name);
                ev
            };
            let mut ev = base(types::NODE_EFA);
            ev.v(keys::KUBERNETES, json!({"host": node_name}));
            write_measurements(&mut ev, "node", &rates);
            out.push(ev.into_fields());
            let Some(h) = holder.filter(|_| held_before) else {
                continue;
            };
            let mut ev = base(types::POD_EFA);
            self.holder_identity(&mut ev, &h, false, inputs, pods);
            write_measurements(&mut ev, "pod", &rates);
            out.push(ev.into_fields());
            let mut ev = base(types::CONTAINER_EFA);
            self.holder_identity(&mut ev, &h, true, inputs, pods);
            write_measurements(&mut ev, "container", &rates);
            out.push(ev.into_fields());
        }
        // Without this collection's assignments, the last ones still say who held what.
        if acc.devices.is_some() {
            self.accelerators.efa_holders = holders;
        }
    }

    /// The pod identity of a device's holder: from the pod list when the pod is in it (as
    /// Pod and Container events have it), else the names the holder came with.
    fn holder_identity(
        &mut self,
        ev: &mut Ev,
        holder: &Holder,
        with_container: bool,
        inputs: &Inputs<'_>,
        pods: Option<&[PodInfo]>,
    ) {
        let pod = pods.and_then(|list| {
            list.iter()
                .find(|p| p.namespace == holder.namespace && p.full_name == holder.pod)
        });
        if let Some(pod) = pod {
            let container = pod.containers.iter().find(|c| c.name == holder.container);
            if !with_container || container.is_some() {
                let service = inputs
                    .services
                    .and_then(|s| s.get(&(pod.namespace.clone(), pod.full_name.clone())))
                    .cloned();
                let container = container.filter(|_| with_container);
                self.pod_identity(ev, pod, service.as_deref(), container);
                return;
            }
        }
        ev.name(keys::NAMESPACE, &holder.namespace)
            .name(keys::POD_NAME, &holder.pod);
        if self.settings.enhanced {
            ev.name(keys::FULL_POD_NAME, &holder.pod);
            if with_container {
                ev.name(keys::CONTAINER_NAME, &holder.container);
            }
        }
        let mut k = Map::new();
        if with_container {
            k.insert("container_name".into(), holder.container.clone().into());
        }
        k.insert("host".into(), self.settings.node_name.clone().into());
        k.insert("namespace_name".into(), holder.namespace.clone().into());
        k.insert("pod_name".into(), holder.pod.clone().into());
        ev.v(keys::KUBERNETES, Value::Object(k));
    }
}

/// Writes `<level>_<measurement>` fields; whether there was any.
fn write_measurements(ev: &mut Ev, level: &str, values: &[(&'static str, f64)]) -> bool {
    for (m, v) in values {
        number(ev, field_name(&[level, "_", m]), *v);
    }
    !values.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn readings_are_renamed_and_scaled_with_fallbacks_for_the_default_counters() {
        let mut r = Readings::default();
        for (n, v) in [
            ("DCGM_FI_DEV_GPU_UTIL", 87.0),
            ("DCGM_FI_DEV_FB_USED_PERCENT", 0.25),
            ("DCGM_FI_DEV_FB_TOTAL", 23028.0),
            ("DCGM_FI_DEV_FB_USED", 5757.0),
            ("DCGM_FI_DEV_POWER_USAGE", 201.5),
            ("DCGM_FI_DEV_GPU_TEMP", 45.0),
            ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 0.5),
            ("DCGM_FI_DEV_GPU_UTIL", 12.0),
        ] {
            r.set(n, v);
        }
        assert_eq!(
            r.measurements(),
            vec![
                ("gpu_utilization", 87.0),
                ("gpu_memory_utilization", 25.0),
                ("gpu_memory_total", 23028.0 * MIB),
                ("gpu_memory_used", 5757.0 * MIB),
                ("gpu_power_draw", 201.5),
                ("gpu_temperature", 45.0),
                ("gpu_tensor_core_utilization", 50.0),
            ]
        );
        // dcgm-exporter's default counters: used, free and reserved, no total or percent.
        let mut r = Readings::default();
        for (n, v) in [
            ("DCGM_FI_DEV_FB_USED", 1000.0),
            ("DCGM_FI_DEV_FB_FREE", 3000.0),
            ("DCGM_FI_DEV_FB_RESERVED", 96.0),
        ] {
            r.set(n, v);
        }
        assert_eq!(
            r.measurements(),
            vec![
                ("gpu_memory_utilization", 25.0),
                ("gpu_memory_total", 4096.0 * MIB),
                ("gpu_memory_used", 1000.0 * MIB),
            ]
        );
    }

    #[test]
    fn a_gpu_is_held_by_the_exporters_labels_else_by_the_kubelets_assignments() {
        let key = GpuKey {
            index: "1".into(),
            instance: String::new(),
            uuid: "GPU-b".into(),
            device: "nvidia1".into(),
        };
        let labelled = sample(
            "DCGM_FI_DEV_GPU_UTIL",
            &[
                ("gpu", "1"),
                ("pod", "p"),
                ("namespace", "ns"),
                ("container", "c"),
            ],
            1.0,
        );
        let old_names = sample(
            "DCGM_FI_DEV_GPU_UTIL",
            &[
                ("gpu", "1"),
                ("pod_name", "p"),
                ("pod_namespace", "ns"),
                ("container_name", "c"),
            ],
            1.0,
        );
        let want = Holder {
            namespace: "ns".into(),
            pod: "p".into(),
            container: "c".into(),
        };
        assert_eq!(gpu_holder(&labelled, &key, None), Some(want.clone()));
        assert_eq!(gpu_holder(&old_names, &key, None), Some(want));
        let bare = sample("DCGM_FI_DEV_GPU_UTIL", &[("gpu", "1"), ("pod", "")], 1.0);
        assert_eq!(gpu_holder(&bare, &key, None), None);
        use crate::pod_resources::wire::*;
        let a = Assignments::from_response(&ListPodResourcesResponse {
            pod_resources: vec![PodResources {
                name: "q".into(),
                namespace: "ml".into(),
                containers: vec![ContainerResources {
                    name: "main".into(),
                    devices: vec![ContainerDevices {
                        resource_name: GPU_RESOURCE.into(),
                        device_ids: vec!["GPU-b".into()],
                    }],
                }],
            }],
        });
        assert_eq!(
            gpu_holder(&bare, &key, Some(&a)).map(|h| h.pod),
            Some("q".to_string())
        );
    }
}
