//! Generated Container Insights performance events (standard mode, reference §2.4.a), built
//! the way the agent builds them: envelope fields, metric fields, and the EMF directive from
//! the model's catalogue.

use kinsight_model::LogEvent;
use kinsight_model::catalogue::directives_for;
use serde_json::{Map, Value, json};

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub const CLUSTER: &str = "prod-eks";

/// Pod `i` lives in namespace `ns-{i % namespaces}` and backs service `svc-{i % 3}`.
pub fn pod_event(rng: &mut Rng, ts_ms: i64, pod: usize, namespaces: usize) -> LogEvent {
    let ns = format!("ns-{}", pod % namespaces);
    let mut ev: Map<String, Value> = json!({
        "Type": "Pod",
        "Version": "0",
        "Timestamp": ts_ms.to_string(),
        "ClusterName": CLUSTER,
        "NodeName": format!("node-{}", pod % 4),
        "Namespace": ns,
        "PodName": format!("pod-{pod}"),
        "Service": format!("svc-{}", pod % 3),
        "Sources": ["cadvisor", "pod", "calculated"],
        "kubernetes": {"namespace_name": ns, "pod_name": format!("pod-{pod}")},
        // Values with a few decimals, like the agent's; some repeat to exercise ties.
        "pod_cpu_utilization": (rng.unit() * 10_000.0).round() / 100.0,
        "pod_memory_utilization": (rng.below(50) as f64) + 0.5,
        "pod_network_rx_bytes": (rng.unit() * 1e6).round(),
        "pod_number_of_container_restarts": rng.below(3) as f64,
    })
    .as_object()
    .unwrap()
    .clone();
    let directives = directives_for(&ev, false);
    ev.insert(
        "CloudWatchMetrics".into(),
        serde_json::to_value(directives).unwrap(),
    );
    LogEvent::new(
        format!("/kinsight/{CLUSTER}/performance"),
        format!("node-{}", pod % 4),
        ts_ms,
        Value::Object(ev).to_string(),
    )
}

/// Events of `pods` pods every `interval_ms` over `[start, start + duration)`, with jitter of
/// up to a second so samples do not sit on bucket boundaries only.
pub fn pod_events(
    seed: u64,
    start_ms: i64,
    duration_ms: i64,
    interval_ms: i64,
    pods: usize,
    namespaces: usize,
) -> Vec<LogEvent> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut t = start_ms;
    while t < start_ms + duration_ms {
        for p in 0..pods {
            let jitter = rng.below(1000) as i64;
            out.push(pod_event(&mut rng, t + jitter, p, namespaces));
        }
        t += interval_ms;
    }
    out
}
