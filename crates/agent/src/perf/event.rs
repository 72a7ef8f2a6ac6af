//! A small builder for performance events: the envelope first, then identity, then metric
//! fields, in insertion order (as the EMF exporter serialises them, reference §1.1).

use kinsight_model::catalogue::{keys, sources_of};
use serde_json::{Map, Number, Value};

pub struct Ev(pub Map<String, Value>);

impl Ev {
    /// `Type`, `Version`, `Timestamp` (string ms), `Sources`, `ClusterName`.
    pub fn new(event_type: &str, timestamp_ms: i64, cluster: &str) -> Ev {
        let mut m = Map::new();
        m.insert(keys::TYPE.into(), event_type.into());
        m.insert(keys::VERSION.into(), "0".into());
        m.insert(keys::TIMESTAMP.into(), timestamp_ms.to_string().into());
        m.insert(
            keys::SOURCES.into(),
            Value::Array(
                sources_of(event_type)
                    .iter()
                    .map(|s| Value::from(*s))
                    .collect(),
            ),
        );
        m.insert(keys::CLUSTER_NAME.into(), cluster.into());
        Ev(m)
    }

    pub fn s(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.0.insert(k.to_string(), Value::String(v.into()));
        self
    }

    pub fn v(&mut self, k: &str, v: Value) -> &mut Self {
        self.0.insert(k.to_string(), v);
        self
    }

    /// A float metric; non-finite values are left out.
    pub fn f(&mut self, k: &str, v: f64) -> &mut Self {
        if let Some(n) = Number::from_f64(v) {
            self.0.insert(k.to_string(), Value::Number(n));
        }
        self
    }

    pub fn opt(&mut self, k: &str, v: Option<f64>) -> &mut Self {
        if let Some(v) = v {
            self.f(k, v);
        }
        self
    }

    /// An integer metric (counts, bytes).
    pub fn u(&mut self, k: &str, v: u64) -> &mut Self {
        self.0.insert(k.to_string(), Value::Number(v.into()));
        self
    }

    pub fn opt_u(&mut self, k: &str, v: Option<u64>) -> &mut Self {
        if let Some(v) = v {
            self.u(k, v);
        }
        self
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// `a / b × 100`, or `None` when `b` is 0.
pub fn percent(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b * 100.0)
}
