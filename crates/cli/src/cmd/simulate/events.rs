//! The performance events and application logs of one tick.

use super::*;

// ---------------------------------------------------------------------------------------------
// Events of one tick

/// A wave of roughly a day plus a faster one and per-tick noise: 1 ± 0.35.
pub(super) fn load(seed: u64, entity: u64, t_ms: i64) -> f64 {
    let t = t_ms as f64 / 1000.0;
    let phase = (mix(entity ^ seed) % 1000) as f64 / 1000.0 * std::f64::consts::TAU;
    let day = (t / 86_400.0 * std::f64::consts::TAU + phase).sin();
    let fast = (t / 2_700.0 * std::f64::consts::TAU + phase * 3.0).sin();
    let n = noise(seed, entity, t_ms / 1000) - 0.5;
    (1.0 + 0.2 * day + 0.1 * fast + 0.1 * n).max(0.05)
}

pub(super) fn percent(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b * 100.0)
}

pub(super) struct Ev(pub(super) Map<String, Value>);

impl Ev {
    pub(super) fn new(event_type: &str, ts: i64, cluster: &str) -> Ev {
        let mut m = Map::new();
        m.insert(keys::TYPE.into(), event_type.into());
        m.insert(keys::VERSION.into(), "0".into());
        m.insert(keys::TIMESTAMP.into(), ts.to_string().into());
        m.insert(
            keys::SOURCES.into(),
            Value::Array(
                catalogue::sources_of(event_type)
                    .iter()
                    .map(|s| Value::from(*s))
                    .collect(),
            ),
        );
        m.insert(keys::CLUSTER_NAME.into(), cluster.into());
        Ev(m)
    }
    pub(super) fn s(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.0.insert(k.to_string(), Value::String(v.into()));
        self
    }
    pub(super) fn v(&mut self, k: &str, v: Value) -> &mut Self {
        self.0.insert(k.to_string(), v);
        self
    }
    pub(super) fn f(&mut self, k: &str, v: f64) -> &mut Self {
        // Two decimals are plenty and keep events small.
        let r = (v * 100.0).round() / 100.0;
        if let Some(n) = Number::from_f64(r) {
            self.0.insert(k.to_string(), Value::Number(n));
        }
        self
    }
    pub(super) fn opt(&mut self, k: &str, v: Option<f64>) -> &mut Self {
        if let Some(v) = v {
            self.f(k, v);
        }
        self
    }
    pub(super) fn u(&mut self, k: &str, v: u64) -> &mut Self {
        self.0.insert(k.to_string(), Value::Number(v.into()));
        self
    }
    /// `<prefix>_memory_*` of a pod or container as the agent reports them, modelled on a
    /// working set of `ws` bytes on a node of `node_mem` bytes.
    pub(super) fn memory(&mut self, prefix: &str, ws: f64, node_mem: f64) -> &mut Self {
        for (m, v) in [
            ("usage", ws * 1.2),
            ("cache", ws * 0.2),
            ("rss", ws * 0.9),
            ("max_usage", ws * 1.3),
            ("swap", 0.0),
            ("failcnt", 0.0),
            ("mapped_file", ws * 0.05),
            ("working_set", ws),
        ] {
            self.u(&format!("{prefix}_memory_{m}"), v as u64);
        }
        self.opt(
            &format!("{prefix}_memory_utilization"),
            percent(ws, node_mem),
        )
    }
}

pub(super) struct Generator<'a> {
    pub(super) c: &'a Cluster,
    pub(super) seed: u64,
    pub(super) cluster: String,
    pub(super) enhanced: bool,
    pub(super) interval_ms: i64,
    pub(super) log_lines: usize,
    pub(super) perf_group: String,
    pub(super) app_group: String,
    pub(super) directives: DirectiveBuilder,
    /// Restart counters are per-interval deltas: nothing on the first tick (reference §2.3).
    pub(super) first_tick: bool,
}

/// What one pod looks like at one tick.
pub(super) struct PodSample {
    pub(super) cpu_m: Vec<f64>,
    pub(super) mem: Vec<f64>,
    pub(super) running: Vec<bool>,
    pub(super) restarts: Vec<u64>,
    pub(super) rx: f64,
    pub(super) tx: f64,
}

impl<'a> Generator<'a> {
    pub(super) fn new(c: &'a Cluster, args: &SimulateArgs) -> Generator<'a> {
        let prefix = args.log_group_prefix.trim_end_matches('/');
        Generator {
            c,
            seed: args.seed,
            cluster: args.cluster.clone(),
            enhanced: args.enhanced,
            interval_ms: args.interval.as_millis() as i64,
            log_lines: args.log_lines,
            perf_group: format!("{prefix}/{}/performance", args.cluster),
            app_group: format!("{prefix}/{}/application", args.cluster),
            directives: DirectiveBuilder::new(args.enhanced),
            first_tick: true,
        }
    }

    pub(super) fn pod_sample(&self, p: usize, t: i64) -> PodSample {
        let pod = &self.c.pods[p];
        let l = load(self.seed, p as u64, t);
        let tick = t / self.interval_ms;
        let mut s = PodSample {
            cpu_m: Vec::new(),
            mem: Vec::new(),
            running: Vec::new(),
            restarts: Vec::new(),
            rx: pod.net_base * l,
            tx: pod.net_base * l * 0.6,
        };
        for (k, ctr) in pod.containers.iter().enumerate() {
            let e = (p as u64) << 8 | k as u64;
            let mut cpu = ctr.cpu_base_m * load(self.seed, e, t);
            let mut mem = ctr.mem_base * (0.9 + 0.1 * load(self.seed, e ^ 0xff, t));
            let mut running = true;
            let mut restarts = 0;
            match pod.behaviour {
                Behaviour::Leak if k == 0 => {
                    // Up to ~97 % of the limit over a six-hour cycle, then "restarted".
                    let lim = ctr.mem_limit.unwrap_or(ctr.mem_base * 4.0);
                    let phase = (t.rem_euclid(6 * 3_600_000)) as f64 / (6.0 * 3_600_000.0);
                    mem = ctr.mem_base.min(lim * 0.4)
                        + (lim * 0.97 - ctr.mem_base.min(lim * 0.4)) * phase;
                }
                Behaviour::CrashLoop if k == 0 => {
                    // Restarts every 5 ticks; waits in back-off most of the time.
                    restarts = (tick / 5).max(0) as u64;
                    running = tick % 5 == 0;
                    if !running {
                        cpu = 0.0;
                        mem = 0.0;
                    }
                }
                _ => {}
            }
            s.cpu_m.push(cpu);
            s.mem.push(mem);
            s.running.push(running);
            s.restarts.push(restarts);
        }
        s
    }

    pub(super) fn tick(&mut self, t: i64) -> Vec<LogEvent> {
        let mut perf: Vec<(String, Map<String, Value>)> = Vec::new();
        let samples: Vec<PodSample> = (0..self.c.pods.len())
            .map(|p| self.pod_sample(p, t))
            .collect();
        let prev: Option<Vec<PodSample>> = (!self.first_tick).then(|| {
            (0..self.c.pods.len())
                .map(|p| self.pod_sample(p, t - self.interval_ms))
                .collect()
        });
        for (n, node) in self.c.nodes.iter().enumerate() {
            self.node_events(n, node, t, &samples, &mut perf);
            for &p in &node.pods {
                self.pod_events(p, t, &samples[p], prev.as_ref().map(|v| &v[p]), &mut perf);
            }
        }
        self.cluster_events(t, &samples, &mut perf);
        self.first_tick = false;

        let mut out: Vec<LogEvent> = perf
            .into_iter()
            .map(|(stream, ev)| {
                let ev = self.finish(ev);
                LogEvent::new(&self.perf_group, stream, t, Value::Object(ev).to_string())
            })
            .collect();
        self.app_logs(t, &samples, &mut out);
        out
    }

    /// The EMF directive right after the envelope, as the agent's collector places it.
    pub(super) fn finish(&mut self, ev: Map<String, Value>) -> Map<String, Value> {
        let directives = self.directives.build(&ev);
        if directives.is_empty() {
            return ev;
        }
        let value = serde_json::to_value(directives).unwrap_or(Value::Null);
        let mut ordered = Map::new();
        let mut placed = false;
        for (k, v) in ev {
            if !placed && v.is_number() {
                ordered.insert(keys::CLOUDWATCH_METRICS.to_string(), value.clone());
                placed = true;
            }
            ordered.insert(k, v);
        }
        if !placed {
            ordered.insert(keys::CLOUDWATCH_METRICS.to_string(), value);
        }
        ordered
    }

    pub(super) fn node_identity(&self, ev: &mut Ev, node: &Node) {
        ev.s(keys::NODE_NAME, node.name.clone())
            .s(keys::INSTANCE_ID, node.instance_id.clone())
            .s(keys::INSTANCE_TYPE, node.instance_type);
    }

    pub(super) fn node_events(
        &self,
        n: usize,
        node: &Node,
        t: i64,
        samples: &[PodSample],
        out: &mut Vec<(String, Map<String, Value>)>,
    ) {
        let seed = self.seed;
        let entity = 1 << 40 | n as u64;
        let cpu_limit = node.cores as f64 * 1000.0;
        let mut cpu = 150.0 + 100.0 * load(seed, entity, t);
        let mut ws = 0.9 * GIB * load(seed, entity ^ 1, t).min(1.2);
        let (mut rx, mut tx) = (2e4, 1e4);
        let (mut cpu_req, mut mem_req) = (0.0, 0.0);
        let (mut running_pods, mut running_ctrs) = (0u64, 0u64);
        for &p in &node.pods {
            let s = &samples[p];
            cpu += s.cpu_m.iter().sum::<f64>() + 2.0;
            ws += s.mem.iter().sum::<f64>() + 1.0 * MIB;
            rx += s.rx;
            tx += s.tx;
            running_pods += 1;
            running_ctrs += s.running.iter().filter(|r| **r).count() as u64;
            for c in &self.c.pods[p].containers {
                cpu_req += c.cpu_request_m.unwrap_or(0.0);
                mem_req += c.mem_request.unwrap_or(0.0);
            }
        }
        let cpu = cpu.min(cpu_limit);
        let ws = ws.min(node.mem_bytes * 0.98);
        let cache = 0.8 * GIB + 0.1 * GIB * load(seed, entity ^ 2, t);
        let usage = (ws + cache).min(node.mem_bytes);

        let mut ev = Ev::new(types::NODE, t, &self.cluster);
        self.node_identity(&mut ev, node);
        ev.v(keys::KUBERNETES, json!({"host": node.name}));
        ev.f("node_cpu_usage_total", cpu)
            .f("node_cpu_usage_user", cpu * 0.7)
            .f("node_cpu_usage_system", cpu * 0.3)
            .opt("node_cpu_utilization", percent(cpu, cpu_limit))
            .f("node_cpu_limit", cpu_limit)
            .f("node_cpu_request", cpu_req.min(cpu_limit))
            .opt(
                "node_cpu_reserved_capacity",
                percent(cpu_req.min(cpu_limit), cpu_limit),
            );
        ev.u("node_memory_usage", usage as u64)
            .u("node_memory_cache", cache as u64)
            .u("node_memory_rss", (ws * 0.85) as u64)
            .u(
                "node_memory_max_usage",
                (usage * 1.05).min(node.mem_bytes) as u64,
            )
            .u("node_memory_swap", 0)
            .u("node_memory_failcnt", 0)
            .u("node_memory_mapped_file", (0.2 * GIB) as u64)
            .u("node_memory_working_set", ws as u64);
        let pgfault = 2000.0 * load(seed, entity ^ 3, t);
        ev.f("node_memory_pgfault", pgfault)
            .f("node_memory_pgmajfault", pgfault / 500.0)
            .f("node_memory_hierarchical_pgfault", pgfault)
            .f("node_memory_hierarchical_pgmajfault", pgfault / 500.0)
            .f("node_memory_failures_total", pgfault * 1.002)
            .opt("node_memory_utilization", percent(ws, node.mem_bytes))
            .u("node_memory_limit", node.mem_bytes as u64)
            .f("node_memory_request", mem_req.min(node.mem_bytes))
            .opt(
                "node_memory_reserved_capacity",
                percent(mem_req.min(node.mem_bytes), node.mem_bytes),
            );
        // The node's traffic is its one interface's: the same eight counters for both events.
        let counters = net_counters(rx, tx, 900.0, 700.0);
        for (m, v) in counters {
            ev.f(&format!("node_network_{m}"), v);
        }
        ev.f("node_network_total_bytes", rx + tx);
        ev.u("node_number_of_running_pods", running_pods)
            .u("node_number_of_running_containers", running_ctrs);
        if self.enhanced {
            ev.u("node_status_condition_ready", 1)
                .u("node_status_condition_disk_pressure", 0)
                .u("node_status_condition_memory_pressure", 0)
                .u("node_status_condition_pid_pressure", 0)
                .u("node_status_condition_network_unavailable", 0)
                .u("node_status_condition_unknown", 0)
                .u("node_status_capacity_pods", 110)
                .u("node_status_allocatable_pods", 110);
        }
        out.push((node.name.clone(), ev.0));

        let mut net = Ev::new(types::NODE_NET, t, &self.cluster);
        self.node_identity(&mut net, node);
        net.s(keys::INTERFACE, "eth0");
        for (m, v) in counters {
            net.f(&format!("node_interface_network_{m}"), v);
        }
        net.f("node_interface_network_total_bytes", rx + tx);
        out.push((node.name.clone(), net.0));

        let mut io = Ev::new(types::NODE_DISK_IO, t, &self.cluster);
        self.node_identity(&mut io, node);
        io.s(keys::DEVICE, "nvme0n1");
        let (rb, wb) = (
            4e5 * load(seed, entity ^ 4, t),
            1.2e6 * load(seed, entity ^ 5, t),
        );
        io.f("node_diskio_io_service_bytes_read", rb)
            .f("node_diskio_io_service_bytes_write", wb)
            .f("node_diskio_io_service_bytes_total", rb + wb)
            .f("node_diskio_io_serviced_read", rb / 16384.0)
            .f("node_diskio_io_serviced_write", wb / 16384.0)
            .f("node_diskio_io_serviced_total", (rb + wb) / 16384.0);
        out.push((node.name.clone(), io.0));

        let mut fs = Ev::new(types::NODE_FS, t, &self.cluster);
        self.node_identity(&mut fs, node);
        fs.s(keys::DEVICE, "/dev/nvme0n1p1").s(keys::FSTYPE, "xfs");
        // Slowly filling: +1 % of the capacity per day.
        let used = (node.fs_used + node.fs_capacity * 0.01 * (t as f64 / 86_400_000.0).fract())
            .min(node.fs_capacity);
        fs.u("node_filesystem_capacity", node.fs_capacity as u64)
            .u("node_filesystem_usage", used as u64)
            .u(
                "node_filesystem_available",
                (node.fs_capacity - used) as u64,
            )
            .opt(
                "node_filesystem_utilization",
                percent(used, node.fs_capacity),
            )
            .u("node_filesystem_inodes", 52_428_800)
            .u(
                "node_filesystem_inodes_free",
                52_428_800 - (used / 65536.0) as u64,
            );
        out.push((node.name.clone(), fs.0));
    }

    pub(super) fn kubernetes_block(
        &self,
        pod: &Pod,
        node: &Node,
        container: Option<&Container>,
    ) -> Value {
        let mut k = Map::new();
        if let Some(c) = container {
            k.insert("container_name".into(), c.name.clone().into());
            k.insert("containerd".into(), json!({"container_id": c.id}));
        }
        k.insert("host".into(), node.name.clone().into());
        k.insert("labels".into(), Value::Object(pod.labels.clone()));
        k.insert("namespace_name".into(), pod.namespace.clone().into());
        k.insert("pod_id".into(), pod.uid.clone().into());
        k.insert("pod_name".into(), pod.full_name.clone().into());
        k.insert(
            "pod_owners".into(),
            json!([{"owner_kind": pod.owner_kind, "owner_name": pod.owner_name}]),
        );
        if let Some(s) = &pod.service {
            k.insert("service_name".into(), s.clone().into());
        }
        Value::Object(k)
    }

    pub(super) fn pod_identity(
        &self,
        ev: &mut Ev,
        pod: &Pod,
        node: &Node,
        container: Option<&Container>,
    ) {
        self.node_identity(ev, node);
        ev.s(keys::NAMESPACE, pod.namespace.clone())
            .s(keys::POD_NAME, pod.pod_name.clone());
        if self.enhanced {
            ev.s(keys::FULL_POD_NAME, pod.full_name.clone());
            if let Some(c) = container {
                ev.s(keys::CONTAINER_NAME, c.name.clone());
            }
        }
        if let Some(s) = &pod.service {
            ev.s(keys::SERVICE, s.clone());
        }
        ev.v(
            keys::KUBERNETES,
            self.kubernetes_block(pod, node, container),
        );
    }

    pub(super) fn pod_events(
        &self,
        p: usize,
        t: i64,
        s: &PodSample,
        prev: Option<&PodSample>,
        out: &mut Vec<(String, Map<String, Value>)>,
    ) {
        let pod = &self.c.pods[p];
        let node = &self.c.nodes[pod.node];
        let node_cpu = node.cores as f64 * 1000.0;
        let cpu: f64 = s.cpu_m.iter().sum::<f64>() + 2.0;
        let ws: f64 = s.mem.iter().sum::<f64>() + MIB;
        let all = |f: fn(&Container) -> Option<f64>| -> Option<f64> {
            pod.containers.iter().map(f).sum::<Option<f64>>()
        };
        let cpu_req: f64 = pod.containers.iter().filter_map(|c| c.cpu_request_m).sum();
        let mem_req: f64 = pod.containers.iter().filter_map(|c| c.mem_request).sum();

        let mut ev = Ev::new(types::POD, t, &self.cluster);
        self.pod_identity(&mut ev, pod, node, None);
        ev.s(keys::POD_STATUS, "Running");
        ev.f("pod_cpu_usage_total", cpu)
            .f("pod_cpu_usage_user", cpu * 0.75)
            .f("pod_cpu_usage_system", cpu * 0.25)
            .opt("pod_cpu_utilization", percent(cpu, node_cpu))
            .f("pod_cpu_request", cpu_req)
            .opt("pod_cpu_reserved_capacity", percent(cpu_req, node_cpu));
        if let Some(l) = all(|c| c.cpu_limit_m) {
            ev.f("pod_cpu_limit", l)
                .opt("pod_cpu_utilization_over_pod_limit", percent(cpu, l));
        }
        ev.memory("pod", ws, node.mem_bytes)
            .f("pod_memory_request", mem_req)
            .opt(
                "pod_memory_reserved_capacity",
                percent(mem_req, node.mem_bytes),
            );
        if let Some(l) = all(|c| c.mem_limit) {
            ev.f("pod_memory_limit", l)
                .opt("pod_memory_utilization_over_pod_limit", percent(ws, l));
        }
        // The pod's traffic is its one interface's: the same counters for both events.
        let counters = net_counters(s.rx, s.tx, 800.0, 600.0);
        for (m, v) in counters {
            ev.f(&format!("pod_network_{m}"), v);
        }
        ev.f("pod_network_total_bytes", s.rx + s.tx);
        let running = s.running.iter().filter(|r| **r).count() as u64;
        ev.u("pod_number_of_containers", pod.containers.len() as u64)
            .u("pod_number_of_running_containers", running);
        let restarts_now: u64 = s.restarts.iter().sum();
        if let Some(prev) = prev {
            let before: u64 = prev.restarts.iter().sum();
            ev.u(
                "pod_number_of_container_restarts",
                restarts_now.saturating_sub(before),
            );
        }
        if self.enhanced {
            let waiting = pod.containers.len() as u64 - running;
            ev.u("pod_status_running", 1)
                .u("pod_status_pending", 0)
                .u("pod_status_succeeded", 0)
                .u("pod_status_failed", 0)
                .u("pod_status_ready", (waiting == 0) as u64)
                .u("pod_status_scheduled", 1)
                .u("pod_status_unknown", 0)
                .u("pod_container_status_running", running)
                .u("pod_container_status_waiting", waiting)
                .u("pod_container_status_terminated", 0)
                .u(
                    "pod_container_status_waiting_reason_crash_loop_back_off",
                    if pod.behaviour == Behaviour::CrashLoop {
                        waiting
                    } else {
                        0
                    },
                )
                .u("pod_container_status_waiting_reason_image_pull_error", 0)
                .u("pod_container_status_waiting_reason_start_error", 0)
                .u(
                    "pod_container_status_waiting_reason_create_container_error",
                    0,
                )
                .u(
                    "pod_container_status_waiting_reason_create_container_config_error",
                    0,
                )
                .u("pod_container_status_terminated_reason_oom_killed", 0);
        }
        out.push((node.name.clone(), ev.0));

        let mut net = Ev::new(types::POD_NET, t, &self.cluster);
        self.pod_identity(&mut net, pod, node, None);
        net.s(keys::INTERFACE, "eth0");
        for (m, v) in counters {
            net.f(&format!("pod_interface_network_{m}"), v);
        }
        net.f("pod_interface_network_total_bytes", s.rx + s.tx);
        out.push((node.name.clone(), net.0));

        for (k, c) in pod.containers.iter().enumerate() {
            let mut ev = Ev::new(types::CONTAINER, t, &self.cluster);
            self.pod_identity(&mut ev, pod, node, Some(c));
            if s.running[k] {
                ev.s(keys::CONTAINER_STATUS, "Running");
            } else {
                ev.s(keys::CONTAINER_STATUS, "Waiting")
                    .s(keys::CONTAINER_STATUS_REASON, "CrashLoopBackOff");
            }
            if pod.behaviour == Behaviour::CrashLoop && k == 0 {
                ev.s(keys::CONTAINER_LAST_TERMINATION_REASON, "Error");
            }
            let (cpu, ws) = (s.cpu_m[k], s.mem[k]);
            ev.f("container_cpu_usage_total", cpu)
                .f("container_cpu_usage_user", cpu * 0.75)
                .f("container_cpu_usage_system", cpu * 0.25)
                .opt("container_cpu_utilization", percent(cpu, node_cpu))
                .opt("container_cpu_limit", c.cpu_limit_m)
                .opt("container_cpu_request", c.cpu_request_m);
            if self.enhanced {
                ev.opt(
                    "container_cpu_utilization_over_container_limit",
                    c.cpu_limit_m.and_then(|l| percent(cpu, l)),
                );
            }
            ev.memory("container", ws, node.mem_bytes)
                .opt("container_memory_limit", c.mem_limit)
                .opt("container_memory_request", c.mem_request);
            if self.enhanced {
                ev.opt(
                    "container_memory_utilization_over_container_limit",
                    c.mem_limit.and_then(|l| percent(ws, l)),
                );
            }
            if let Some(prev) = prev {
                ev.u(
                    "number_of_container_restarts",
                    s.restarts[k].saturating_sub(prev.restarts[k]),
                );
            }
            out.push((node.name.clone(), ev.0));
        }
    }

    /// The leader's events: Cluster, ClusterNamespace, ClusterService (in its node's stream).
    pub(super) fn cluster_events(
        &self,
        t: i64,
        samples: &[PodSample],
        out: &mut Vec<(String, Map<String, Value>)>,
    ) {
        let leader = &self.c.nodes[0].name;
        let mut ev = Ev::new(types::CLUSTER, t, &self.cluster);
        ev.s(keys::NODE_NAME, leader.clone());
        ev.u("cluster_node_count", self.c.nodes.len() as u64)
            .u("cluster_failed_node_count", 0);
        if self.enhanced {
            ev.u("cluster_number_of_running_pods", self.c.pods.len() as u64);
        }
        out.push((leader.clone(), ev.0));
        for ns in &self.c.namespaces {
            let n = self.c.pods.iter().filter(|p| &p.namespace == ns).count();
            let mut ev = Ev::new(types::CLUSTER_NAMESPACE, t, &self.cluster);
            ev.s(keys::NODE_NAME, leader.clone())
                .s(keys::NAMESPACE, ns.clone());
            ev.v(keys::KUBERNETES, json!({"namespace_name": ns}));
            ev.u("namespace_number_of_running_pods", n as u64);
            out.push((leader.clone(), ev.0));
        }
        for svc in &self.c.services {
            // Ready endpoints: pods whose containers all run.
            let ready = svc
                .pods
                .iter()
                .filter(|&&p| samples[p].running.iter().all(|r| *r))
                .count();
            if ready == 0 {
                continue;
            }
            let mut ev = Ev::new(types::CLUSTER_SERVICE, t, &self.cluster);
            ev.s(keys::NODE_NAME, leader.clone())
                .s(keys::SERVICE, svc.name.clone())
                .s(keys::NAMESPACE, svc.namespace.clone());
            ev.v(
                keys::KUBERNETES,
                json!({"namespace_name": svc.namespace, "service_name": svc.name}),
            );
            ev.u("service_number_of_running_pods", ready as u64);
            out.push((leader.clone(), ev.0));
        }
    }

    /// Application log lines as the agent's log pipeline writes them (CRI `time`, `stream`,
    /// `_p`, `log`, `log_processed` for JSON lines, `kubernetes`), in the streams Fluent Bit
    /// names (`<node>-application.var.log.containers.<pod>_<ns>_<container>-<id>.log`).
    pub(super) fn app_logs(&self, t: i64, samples: &[PodSample], out: &mut Vec<LogEvent>) {
        if self.log_lines == 0 || self.c.pods.is_empty() {
            return;
        }
        const PATHS: &[&str] = &[
            "/api/v1/items",
            "/api/v1/cart",
            "/healthz",
            "/api/v1/checkout",
            "/api/v1/search",
            "/",
        ];
        let tick = t / self.interval_ms;
        let mut emit =
            |p: usize, k: usize, at: i64, stream: &str, log: String, processed: Option<Value>| {
                let pod = &self.c.pods[p];
                let node = &self.c.nodes[pod.node];
                let c = &pod.containers[k];
                let mut m = Map::new();
                let time = chrono::DateTime::from_timestamp_millis(at)
                    .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
                    .unwrap_or_default();
                m.insert("time".into(), time.into());
                m.insert("stream".into(), stream.into());
                m.insert("_p".into(), "F".into());
                m.insert("log".into(), log.into());
                if let Some(v) = processed {
                    m.insert("log_processed".into(), v);
                }
                let mut kb = Map::new();
                kb.insert("pod_name".into(), pod.full_name.clone().into());
                kb.insert("namespace_name".into(), pod.namespace.clone().into());
                kb.insert("pod_id".into(), pod.uid.clone().into());
                kb.insert("host".into(), node.name.clone().into());
                kb.insert("container_name".into(), c.name.clone().into());
                kb.insert("docker_id".into(), c.id.clone().into());
                kb.insert("container_image".into(), c.image.clone().into());
                kb.insert("labels".into(), Value::Object(pod.labels.clone()));
                m.insert("kubernetes".into(), Value::Object(kb));
                let stream_name = format!(
                    "{}-application.var.log.containers.{}_{}_{}-{}.log",
                    node.name, pod.full_name, pod.namespace, c.name, c.id
                );
                out.push(LogEvent::new(
                    &self.app_group,
                    stream_name,
                    at,
                    Value::Object(m).to_string(),
                ));
            };
        for i in 0..self.log_lines {
            let r = mix(self.seed ^ mix(tick as u64) ^ (i as u64).wrapping_mul(0x9E37_79B9));
            let p = (r % self.c.pods.len() as u64) as usize;
            let pod = &self.c.pods[p];
            if !samples[p].running[0] {
                continue;
            }
            let at = t + ((r >> 20) % self.interval_ms.max(1) as u64) as i64;
            let status = match (r >> 40) % 100 {
                0..=1 => 500,
                2..=5 => 404,
                _ => 200,
            };
            let path = PATHS[((r >> 8) % PATHS.len() as u64) as usize];
            let latency = 2 + (r >> 30) % 250;
            if pod.json_logs {
                let level = if status >= 500 {
                    "error"
                } else if status >= 400 {
                    "warn"
                } else {
                    "info"
                };
                let v = json!({"level": level, "msg": "request handled", "method": "GET", "path": path,
                               "status": status, "latency_ms": latency, "trace_id": format!("{:016x}", r)});
                emit(
                    p,
                    0,
                    at,
                    if status >= 500 { "stderr" } else { "stdout" },
                    v.to_string(),
                    Some(v),
                );
            } else {
                let line = format!(
                    "10.0.{}.{} - - [{}] \"GET {path} HTTP/1.1\" {status} {} \"-\" \"kube-probe/1.30\" {latency}ms",
                    (r >> 12) % 250,
                    (r >> 16) % 250,
                    chrono::DateTime::from_timestamp_millis(at)
                        .map(|d| d.format("%d/%b/%Y:%H:%M:%S +0000").to_string())
                        .unwrap_or_default(),
                    200 + (r >> 24) % 5000
                );
                emit(p, 0, at, "stdout", line, None);
            }
        }
        // The crash-looping pod says why, every time it starts.
        for (p, pod) in self.c.pods.iter().enumerate() {
            if pod.behaviour == Behaviour::CrashLoop && samples[p].running[0] {
                for (j, line) in [
                    "Starting worker pool (8 threads)",
                    "panic: runtime error: invalid memory address or nil pointer dereference",
                    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]",
                ]
                .iter()
                .enumerate()
                {
                    emit(
                        p,
                        0,
                        t + j as i64,
                        if j == 0 { "stdout" } else { "stderr" },
                        line.to_string(),
                        None,
                    );
                }
            }
        }
    }
}

/// The eight `*_network_*` counters of an interface moving `rx`/`tx` bytes per second, with
/// packets of the given average sizes and no drops or errors.
pub(super) fn net_counters(
    rx: f64,
    tx: f64,
    rx_packet_bytes: f64,
    tx_packet_bytes: f64,
) -> [(&'static str, f64); 8] {
    [
        ("rx_bytes", rx),
        ("rx_packets", rx / rx_packet_bytes),
        ("rx_dropped", 0.0),
        ("rx_errors", 0.0),
        ("tx_bytes", tx),
        ("tx_packets", tx / tx_packet_bytes),
        ("tx_dropped", 0.0),
        ("tx_errors", 0.0),
    ]
}
