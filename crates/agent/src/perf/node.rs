//! Node, NodeNet, NodeDiskIO and NodeFS events (reference §1.3, §2.3).

use super::event::{Ev, Fields, field_name, percent};
use super::pods::PodInfo;
use super::{Collector, Inputs, NodeIdentity};
use kinsight_model::catalogue::{keys, types};
use serde_json::json;

impl Collector {
    pub(super) fn node_events(
        &mut self,
        t_ns: u64,
        ts: i64,
        inputs: &Inputs<'_>,
        pods: Option<&[PodInfo]>,
        id: &NodeIdentity,
        out: &mut Vec<Fields>,
    ) {
        let cluster = self.settings.cluster_name.clone();
        let mut ev = Ev::new(types::NODE, ts, &cluster);
        id.apply(&mut ev, &self.settings.node_name);
        ev.v(keys::KUBERNETES, json!({"host": self.settings.node_name}));

        let cores = self.cores();
        let cpu_limit = cores.map(|c| c as f64 * 1000.0);
        match self.node_cpu() {
            Ok(cpu) => {
                self.problems.clear("node-cpu");
                let total = self.rates.millicores("node/cpu/total", cpu.total_ns, t_ns);
                ev.opt("node_cpu_usage_total", total);
                ev.opt(
                    "node_cpu_usage_user",
                    self.rates.millicores("node/cpu/user", cpu.user_ns, t_ns),
                );
                ev.opt(
                    "node_cpu_usage_system",
                    self.rates
                        .millicores("node/cpu/system", cpu.system_ns, t_ns),
                );
                if let (Some(u), Some(l)) = (total, cpu_limit) {
                    ev.opt("node_cpu_utilization", percent(u, l));
                }
            }
            Err(e) => self.problems.report("node-cpu", &e.to_string()),
        }
        ev.opt("node_cpu_limit", cpu_limit);

        // Requests of non-terminated pods, each pod capped at node capacity (reference §2.3).
        if let Some(pods) = pods {
            if let Some(limit) = cpu_limit {
                let req: f64 = pods
                    .iter()
                    .filter(|p| !p.is_terminated())
                    .filter_map(|p| p.cpu_request_m())
                    .map(|r| r.min(limit))
                    .sum();
                ev.f("node_cpu_request", req);
                ev.opt("node_cpu_reserved_capacity", percent(req, limit));
            }
        }

        let mut mem_limit = None;
        match self.host.memory() {
            Ok(m) => {
                self.problems.clear("node-memory");
                mem_limit = Some(m.total_bytes as f64);
                self.mem_total = mem_limit;
                ev.u("node_memory_usage", m.usage_bytes)
                    .u("node_memory_cache", m.cache_bytes)
                    .u("node_memory_rss", m.rss_bytes);
                let root = self.cgroups.as_ref().and_then(|c| c.read("/").memory);
                ev.opt_u(
                    "node_memory_max_usage",
                    root.and_then(|r| r.max_usage_bytes),
                );
                ev.u("node_memory_swap", m.swap_bytes);
                ev.opt_u("node_memory_failcnt", root.and_then(|r| r.failcnt));
                ev.u("node_memory_mapped_file", m.mapped_file_bytes)
                    .u("node_memory_working_set", m.working_set_bytes);
                self.fault_rates(&mut ev, "node", "node", t_ns, None);
                ev.opt(
                    "node_memory_utilization",
                    percent(m.working_set_bytes as f64, m.total_bytes as f64),
                );
                ev.u("node_memory_limit", m.total_bytes);
            }
            Err(e) => self.problems.report("node-memory", &e.to_string()),
        }
        if let (Some(pods), Some(limit)) = (pods, mem_limit) {
            let req: f64 = pods
                .iter()
                .filter(|p| !p.is_terminated())
                .filter_map(|p| p.mem_request())
                .map(|r| r.min(limit))
                .sum();
            ev.f("node_memory_request", req);
            ev.opt("node_memory_reserved_capacity", percent(req, limit));
        }

        // Network: one NodeNet event per interface, sums on the Node event.
        match self.host.network(1) {
            Ok(ifaces) => {
                self.problems.clear("node-net");
                let mut base = Ev::new(types::NODE_NET, ts, &cluster);
                id.apply(&mut base, &self.settings.node_name);
                let sums = self.interface_events(t_ns, "node", "node", &base.0, &ifaces, out);
                for (k, v) in sums {
                    ev.f(field_name(&["node_network_", k]), v);
                }
            }
            Err(e) => self.problems.report("node-net", &e.to_string()),
        }

        if let Some(pods) = pods {
            ev.u(
                "node_number_of_running_pods",
                pods.iter().filter(|p| p.phase == "Running").count() as u64,
            );
            ev.u(
                "node_number_of_running_containers",
                pods.iter().map(|p| p.running_containers() as u64).sum(),
            );
        }
        if self.settings.enhanced {
            if let Some(node) = inputs.node {
                node_status_fields(&mut ev, node);
            }
        }
        self.node_gpu_fields(&mut ev, pods);
        out.push(ev.into_fields());

        self.disk_events(t_ns, ts, id, out);
        self.fs_events(ts, id, out);
    }

    /// Node CPU: the root cgroup's accounting where it is kept (cAdvisor's source, nanosecond
    /// precision), else /proc/stat (10 ms ticks).
    fn node_cpu(&self) -> Result<crate::host::CpuTimes, crate::host::HostError> {
        if let Some(cpu) = self
            .cgroups
            .as_ref()
            .and_then(|c| c.read_cpu("/").ok())
            .filter(|c| c.usage_total_ns > 0)
        {
            return Ok(crate::host::CpuTimes {
                total_ns: cpu.usage_total_ns,
                user_ns: cpu.usage_user_ns.unwrap_or(0),
                system_ns: cpu.usage_system_ns.unwrap_or(0),
            });
        }
        self.host.cpu_times()
    }

    /// One NodeDiskIO event per whole disk. Read, write and total from /proc/diskstats (every
    /// request the device completed); sync and async from the root blkio cgroup where cgroup v1
    /// keeps them — cAdvisor's source for all five (reference §2.2) — and nowhere else: cgroup
    /// v2 has no such split ([`crate::cgroup::Cgroups::read_blkio`]).
    fn disk_events(&mut self, t_ns: u64, ts: i64, id: &NodeIdentity, out: &mut Vec<Fields>) {
        let disks = match self.host.disk_io() {
            Ok(d) => {
                self.problems.clear("node-diskio");
                d
            }
            Err(e) => return self.problems.report("node-diskio", &e.to_string()),
        };
        let blkio = match self.cgroups.as_ref().map(|c| c.read_blkio("/")) {
            Some(Ok(b)) => {
                self.problems.clear("node-blkio");
                b
            }
            Some(Err(e)) => {
                self.problems
                    .report("node-blkio", &format!("{e}; node_diskio_* sync and async"));
                None
            }
            None => None,
        };
        for d in disks {
            let c = d.counters;
            let device = format!("/dev/{}", d.name);
            let mut ev = Ev::new(types::NODE_DISK_IO, ts, &self.settings.cluster_name);
            id.apply(&mut ev, &self.settings.node_name);
            ev.s(keys::DEVICE, device.clone());
            self.device_volume_ids(&mut ev, Some(&d.name));
            // The key includes the device: the upstream cache did not, mixing devices (§2.1 quirk).
            let key = |m: &'static str| ("diskio", device.as_str(), m);
            let rb = self.rates.per_second(key("rb"), c.read_bytes, t_ns);
            let wb = self.rates.per_second(key("wb"), c.write_bytes, t_ns);
            let tb = self
                .rates
                .per_second(key("tb"), c.read_bytes + c.write_bytes, t_ns);
            let ro = self.rates.per_second(key("ro"), c.reads, t_ns);
            let wo = self.rates.per_second(key("wo"), c.writes, t_ns);
            let to = self.rates.per_second(key("to"), c.reads + c.writes, t_ns);
            let bytes = blkio.as_ref().and_then(|b| b.service_bytes.get(&d.dev));
            let ops = blkio.as_ref().and_then(|b| b.serviced.get(&d.dev));
            let mut split = |m: &'static str, v: Option<u64>| {
                v.and_then(|v| self.rates.per_second(key(m), v, t_ns))
            };
            let (sb, ab) = (
                split("sb", bytes.and_then(|b| b.sync)),
                split("ab", bytes.and_then(|b| b.async_)),
            );
            let (so, ao) = (
                split("so", ops.and_then(|o| o.sync)),
                split("ao", ops.and_then(|o| o.async_)),
            );
            if tb.is_none() {
                continue; // first sample of this device
            }
            ev.opt("node_diskio_io_service_bytes_read", rb)
                .opt("node_diskio_io_service_bytes_write", wb)
                .opt("node_diskio_io_service_bytes_sync", sb)
                .opt("node_diskio_io_service_bytes_async", ab)
                .opt("node_diskio_io_service_bytes_total", tb);
            ev.opt("node_diskio_io_serviced_read", ro)
                .opt("node_diskio_io_serviced_write", wo)
                .opt("node_diskio_io_serviced_sync", so)
                .opt("node_diskio_io_serviced_async", ao)
                .opt("node_diskio_io_serviced_total", to);
            out.push(ev.into_fields());
        }
    }

    /// One NodeFS event per filesystem device of the host's mount table (read once per
    /// collection, [`Collector::read_devices`]).
    fn fs_events(&mut self, ts: i64, id: &NodeIdentity, out: &mut Vec<Fields>) {
        let fss = self.host.filesystems_of(&self.mounts);
        for fs in fss {
            let mut ev = Ev::new(types::NODE_FS, ts, &self.settings.cluster_name);
            id.apply(&mut ev, &self.settings.node_name);
            ev.s(keys::DEVICE, fs.device.clone())
                .s(keys::FSTYPE, fs.fstype.clone());
            let name = self.devices.name_of(fs.dev);
            self.device_volume_ids(&mut ev, name.as_deref());
            ev.u("node_filesystem_capacity", fs.capacity_bytes)
                .u("node_filesystem_usage", fs.usage_bytes)
                .u("node_filesystem_available", fs.available_bytes);
            ev.opt(
                "node_filesystem_utilization",
                percent(fs.usage_bytes as f64, fs.capacity_bytes as f64),
            );
            if fs.inodes > 0 {
                ev.u("node_filesystem_inodes", fs.inodes)
                    .u("node_filesystem_inodes_free", fs.inodes_free);
            }
            out.push(ev.into_fields());
        }
    }
}

/// Enhanced-mode node condition and pod-capacity fields (reference §2.3).
fn node_status_fields(ev: &mut Ev, node: &k8s_openapi::api::core::v1::Node) {
    let Some(status) = node.status.as_ref() else {
        return;
    };
    let conds = status.conditions.as_deref().unwrap_or(&[]);
    for (cond, field) in [
        ("Ready", "node_status_condition_ready"),
        ("DiskPressure", "node_status_condition_disk_pressure"),
        ("MemoryPressure", "node_status_condition_memory_pressure"),
        ("PIDPressure", "node_status_condition_pid_pressure"),
        (
            "NetworkUnavailable",
            "node_status_condition_network_unavailable",
        ),
    ] {
        if let Some(c) = conds.iter().find(|c| c.type_ == cond) {
            ev.u(field, (c.status == "True") as u64);
        }
    }
    ev.u(
        "node_status_condition_unknown",
        conds.iter().any(|c| c.status == "Unknown") as u64,
    );
    let q = |m: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        m.and_then(|m| m.get("pods"))
            .and_then(|q| super::quantity::parse_quantity(&q.0))
    };
    ev.opt("node_status_capacity_pods", q(status.capacity.as_ref()));
    ev.opt(
        "node_status_allocatable_pods",
        q(status.allocatable.as_ref()),
    );
}
