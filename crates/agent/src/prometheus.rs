//! The latest collection in Prometheus text format (`--metrics-listen`): every numeric field
//! of every performance event as a gauge, labelled with the event's identity.

use kinsight_model::catalogue::keys;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Event keys that become labels, and their Prometheus names.
const LABELS: &[(&str, &str)] = &[
    (keys::CLUSTER_NAME, "cluster"),
    (keys::NODE_NAME, "node"),
    (keys::NAMESPACE, "namespace"),
    (keys::POD_NAME, "pod"),
    (keys::FULL_POD_NAME, "full_pod_name"),
    (keys::SERVICE, "service"),
    (keys::DEVICE, "device"),
    (keys::INTERFACE, "interface"),
];

/// Renders events; metric families are grouped and sorted so the output is stable.
pub fn render<'a>(events: impl IntoIterator<Item = &'a Map<String, Value>>) -> String {
    let mut families: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    for ev in events {
        let mut labels: Vec<(String, String)> = LABELS
            .iter()
            .filter_map(|(k, name)| {
                ev.get(*k)
                    .and_then(Value::as_str)
                    .map(|v| (name.to_string(), v.to_string()))
            })
            .collect();
        if let Some(c) = ev
            .get(keys::KUBERNETES)
            .and_then(|k| k.get("container_name"))
            .and_then(Value::as_str)
        {
            labels.push(("container".into(), c.to_string()));
        }
        let label_text = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        for (k, v) in ev {
            if let Some(n) = v.as_f64() {
                families
                    .entry(k.as_str())
                    .or_default()
                    .push((label_text.clone(), n));
            }
        }
    }
    let mut out = String::new();
    for (name, samples) in families {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_gauges_with_identity_labels() {
        let ev = json!({"Type": "Pod", "ClusterName": "c", "NodeName": "n", "Namespace": "ns", "PodName": "p\"q",
            "kubernetes": {"container_name": "app"}, "pod_cpu_utilization": 12.5, "Timestamp": "1"});
        let text = render(&[ev.as_object().unwrap().clone()]);
        assert!(
            text.contains("# TYPE pod_cpu_utilization gauge\n"),
            "{text}"
        );
        assert!(text.contains(r#"pod_cpu_utilization{cluster="c",node="n",namespace="ns",pod="p\"q",container="app"} 12.5"#), "{text}");
        assert!(!text.contains("Timestamp"));
    }
}
