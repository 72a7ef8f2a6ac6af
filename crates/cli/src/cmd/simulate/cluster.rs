//! The simulated cluster: nodes, workloads, pods and their behaviour, from a seed.

use super::*;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness: SplitMix64, so the same seed gives the same cluster on any
// version of any crate.

pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(super) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub(super) fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }
}

pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) that depends only on its inputs (noise for one entity at one tick).
pub(super) fn noise(seed: u64, entity: u64, tick: i64) -> f64 {
    let h = mix(seed ^ mix(entity.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ tick as u64));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

pub(super) const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
pub(super) const HEX: &[u8] = b"0123456789abcdef";
pub(super) const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
pub(super) const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// The cluster

pub(super) struct Node {
    pub(super) name: String,
    pub(super) instance_id: String,
    pub(super) instance_type: &'static str,
    pub(super) cores: u32,
    pub(super) mem_bytes: f64,
    pub(super) fs_capacity: f64,
    pub(super) fs_used: f64,
    pub(super) pods: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Behaviour {
    Normal,
    /// Memory grows towards the limit over a few hours.
    Leak,
    /// One container restarts every few ticks and waits in CrashLoopBackOff.
    CrashLoop,
}

pub(super) struct Container {
    pub(super) name: String,
    pub(super) id: String,
    pub(super) image: String,
    pub(super) cpu_request_m: Option<f64>,
    pub(super) cpu_limit_m: Option<f64>,
    pub(super) mem_request: Option<f64>,
    pub(super) mem_limit: Option<f64>,
    pub(super) cpu_base_m: f64,
    pub(super) mem_base: f64,
}

pub(super) struct Pod {
    pub(super) uid: String,
    pub(super) namespace: String,
    pub(super) full_name: String,
    /// Controller-normalized name (reference §2.6).
    pub(super) pod_name: String,
    pub(super) owner_kind: &'static str,
    pub(super) owner_name: String,
    pub(super) service: Option<String>,
    pub(super) labels: Map<String, Value>,
    pub(super) node: usize,
    pub(super) containers: Vec<Container>,
    pub(super) behaviour: Behaviour,
    /// Bytes/s received at the base of the wave.
    pub(super) net_base: f64,
    /// Logs in JSON (`log_processed`) or plain text.
    pub(super) json_logs: bool,
}

pub(super) struct Service {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) pods: Vec<usize>,
}

pub(super) struct Cluster {
    pub(super) nodes: Vec<Node>,
    pub(super) pods: Vec<Pod>,
    pub(super) namespaces: Vec<String>,
    pub(super) services: Vec<Service>,
}

/// (namespace, name, containers, cpu m, memory MiB, has service, JSON logs).
pub(super) type AppSpec = (
    &'static str,
    &'static str,
    &'static [&'static str],
    f64,
    f64,
    bool,
    bool,
);

pub(super) const DEPLOYMENTS: &[AppSpec] = &[
    (
        "shop",
        "frontend",
        &["nginx", "frontend"],
        180.0,
        320.0,
        true,
        false,
    ),
    ("shop", "cart", &["cart"], 120.0, 256.0, true, true),
    ("shop", "checkout", &["checkout"], 90.0, 300.0, true, true),
    (
        "shop",
        "catalog",
        &["catalog", "envoy"],
        150.0,
        420.0,
        true,
        true,
    ),
    (
        "shop",
        "recommendations",
        &["recommendations"],
        300.0,
        900.0,
        true,
        true,
    ),
    (
        "payments",
        "payments-api",
        &["api", "envoy"],
        140.0,
        380.0,
        true,
        true,
    ),
    (
        "payments",
        "fraud-detector",
        &["model"],
        450.0,
        1500.0,
        true,
        true,
    ),
    ("payments", "ledger", &["ledger"], 80.0, 260.0, true, true),
    ("search", "search-api", &["api"], 220.0, 600.0, true, true),
    (
        "search",
        "indexer",
        &["indexer"],
        350.0,
        1200.0,
        false,
        true,
    ),
    ("default", "web", &["nginx"], 40.0, 64.0, true, false),
    (
        "monitoring",
        "grafana",
        &["grafana"],
        60.0,
        200.0,
        true,
        false,
    ),
    (
        "kube-system",
        "coredns",
        &["coredns"],
        30.0,
        70.0,
        true,
        false,
    ),
];

pub(super) const STATEFUL_SETS: &[(&str, &str, usize, f64, f64)] = &[
    ("data", "postgres", 3, 400.0, 2048.0),
    ("data", "redis", 3, 120.0, 768.0),
    ("data", "kafka", 3, 500.0, 3072.0),
];

pub(super) const DAEMON_SETS: &[(&str, &str, &str, f64, f64)] = &[
    ("kube-system", "kube-proxy", "kube-proxy", 10.0, 40.0),
    ("kube-system", "aws-node", "aws-node", 15.0, 60.0),
    ("kinsight", "kinsight-agent", "agent", 40.0, 90.0),
];

pub(super) const INSTANCE_TYPES: &[(&str, u32, f64)] = &[
    ("m5.xlarge", 4, 16.0),
    ("m5.2xlarge", 8, 32.0),
    ("c5.4xlarge", 16, 32.0),
];

impl Cluster {
    pub(super) fn generate(args: &SimulateArgs) -> Cluster {
        let mut rng = Rng::new(args.seed);
        let nodes: Vec<Node> = (0..args.nodes)
            .map(|i| {
                let (itype, cores, mem_gib) = INSTANCE_TYPES[rng.below(INSTANCE_TYPES.len())];
                let fs_capacity = 100.0 * GIB;
                Node {
                    name: format!("ip-10-0-{}-{}.sim.internal", 1 + i / 200, 10 + i % 200),
                    instance_id: format!("i-0{}", rng.chars(HEX, 16)),
                    instance_type: itype,
                    cores,
                    mem_bytes: mem_gib * GIB,
                    fs_capacity,
                    fs_used: fs_capacity * rng.range(0.2, 0.6),
                    pods: Vec::new(),
                }
            })
            .collect();
        let mut c = Cluster {
            nodes,
            pods: Vec::new(),
            namespaces: Vec::new(),
            services: Vec::new(),
        };

        // DaemonSets: one pod per node, as long as the pod budget lasts.
        for (ns, ds, ctr, cpu, mem) in DAEMON_SETS {
            if c.pods.len() + c.nodes.len() > args.pods {
                break;
            }
            for n in 0..c.nodes.len() {
                let full = format!("{ds}-{}", rng.chars(K8S_ALPHABET, 5));
                let containers = vec![c.container(&mut rng, ctr, ns, *cpu, *mem, true)];
                c.add_pod(
                    &mut rng,
                    ns,
                    full,
                    ds,
                    "DaemonSet",
                    ds,
                    None,
                    n,
                    containers,
                    false,
                );
            }
        }
        // StatefulSets keep their own pod names (web-0, web-1…).
        for (ns, sts, replicas, cpu, mem) in STATEFUL_SETS {
            if c.pods.len() + replicas > args.pods {
                break;
            }
            let svc = c.service(ns, sts);
            for r in 0..*replicas {
                let full = format!("{sts}-{r}");
                let containers = vec![c.container(&mut rng, sts, ns, *cpu, *mem, true)];
                let node = rng.below(c.nodes.len());
                c.add_pod(
                    &mut rng,
                    ns,
                    full.clone(),
                    &full,
                    "StatefulSet",
                    sts,
                    Some(svc),
                    node,
                    containers,
                    true,
                );
            }
        }
        // Deployments share what is left, by weight.
        let left = args.pods.saturating_sub(c.pods.len());
        let weights: Vec<f64> = DEPLOYMENTS.iter().map(|_| rng.range(0.5, 2.0)).collect();
        let total: f64 = weights.iter().sum();
        let mut replicas: Vec<usize> = weights
            .iter()
            .map(|w| ((w / total) * left as f64).floor() as usize)
            .collect();
        let mut assigned: usize = replicas.iter().sum();
        let mut i = 0;
        let kinds = replicas.len();
        while assigned < left {
            replicas[i % kinds] += 1;
            assigned += 1;
            i += 1;
        }
        for (d, &(ns, name, ctrs, cpu, mem, has_svc, json_logs)) in DEPLOYMENTS.iter().enumerate() {
            if replicas[d] == 0 {
                continue;
            }
            let rs = format!("{name}-{}", rng.chars(K8S_ALPHABET, 10));
            let svc = has_svc.then(|| c.service(ns, name));
            for _ in 0..replicas[d] {
                let full = format!("{rs}-{}", rng.chars(K8S_ALPHABET, 5));
                let containers = ctrs
                    .iter()
                    .enumerate()
                    .map(|(k, ctr)| {
                        let share = if k == 0 { 1.0 } else { 0.25 };
                        c.container(
                            &mut rng,
                            ctr,
                            ns,
                            cpu * share,
                            mem * share,
                            k == 0 || d % 2 == 0,
                        )
                    })
                    .collect();
                let node = rng.below(c.nodes.len());
                c.add_pod(
                    &mut rng,
                    ns,
                    full,
                    name,
                    "Deployment",
                    name,
                    svc,
                    node,
                    containers,
                    json_logs,
                );
            }
        }
        // One leaking and one crash-looping pod, chosen among the Deployments' pods.
        let deploys: Vec<usize> = (0..c.pods.len())
            .filter(|&i| c.pods[i].owner_kind == "Deployment")
            .collect();
        if deploys.len() >= 2 {
            let leak = deploys[rng.below(deploys.len())];
            c.pods[leak].behaviour = Behaviour::Leak;
            let crash = deploys
                .iter()
                .copied()
                .find(|&i| i != leak && c.pods[i].namespace != c.pods[leak].namespace)
                .unwrap_or(deploys[0]);
            if crash != leak {
                c.pods[crash].behaviour = Behaviour::CrashLoop;
            }
        }
        let mut namespaces: Vec<String> = c.pods.iter().map(|p| p.namespace.clone()).collect();
        namespaces.sort();
        namespaces.dedup();
        c.namespaces = namespaces;
        c
    }

    pub(super) fn service(&mut self, ns: &str, name: &str) -> usize {
        if let Some(i) = self
            .services
            .iter()
            .position(|s| s.namespace == ns && s.name == name)
        {
            return i;
        }
        self.services.push(Service {
            namespace: ns.to_string(),
            name: name.to_string(),
            pods: Vec::new(),
        });
        self.services.len() - 1
    }

    pub(super) fn container(
        &self,
        rng: &mut Rng,
        name: &str,
        ns: &str,
        cpu_m: f64,
        mem_mib: f64,
        limits: bool,
    ) -> Container {
        let cpu_base_m = cpu_m * rng.range(0.5, 1.3);
        let mem_base = mem_mib * MIB * rng.range(0.6, 1.2);
        let cpu_req = (cpu_m / 50.0).ceil() * 50.0;
        let mem_req = (mem_mib / 64.0).ceil() * 64.0 * MIB;
        Container {
            name: name.to_string(),
            id: rng.chars(HEX, 64),
            image: format!(
                "registry.sim.internal/{ns}/{name}:1.{}.{}",
                rng.below(20),
                rng.below(10)
            ),
            cpu_request_m: Some(cpu_req),
            cpu_limit_m: limits.then_some(cpu_req * 2.0),
            mem_request: Some(mem_req),
            mem_limit: limits.then_some(mem_req * 2.0),
            cpu_base_m,
            mem_base,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_pod(
        &mut self,
        rng: &mut Rng,
        ns: &str,
        full_name: String,
        pod_name: &str,
        owner_kind: &'static str,
        owner_name: &str,
        service: Option<usize>,
        node: usize,
        containers: Vec<Container>,
        json_logs: bool,
    ) {
        let idx = self.pods.len();
        let mut labels = Map::new();
        labels.insert("app".into(), owner_name.into());
        if owner_kind == "Deployment" {
            labels.insert(
                "pod-template-hash".into(),
                rng.chars(K8S_ALPHABET, 10).into(),
            );
        }
        let uid = format!(
            "{}-{}-{}-{}-{}",
            rng.chars(HEX, 8),
            rng.chars(HEX, 4),
            rng.chars(HEX, 4),
            rng.chars(HEX, 4),
            rng.chars(HEX, 12)
        );
        let svc_name = service.map(|s| {
            self.services[s].pods.push(idx);
            self.services[s].name.clone()
        });
        let net_base = rng.range(5e3, 4e5) * if svc_name.is_some() { 3.0 } else { 1.0 };
        self.pods.push(Pod {
            uid,
            namespace: ns.to_string(),
            full_name,
            pod_name: pod_name.to_string(),
            owner_kind,
            owner_name: owner_name.to_string(),
            service: svc_name,
            labels,
            node,
            containers,
            behaviour: Behaviour::Normal,
            net_base,
            json_logs,
        });
        self.nodes[node].pods.push(idx);
    }
}
