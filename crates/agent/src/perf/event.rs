//! A small builder for performance events: the envelope first, then identity, then metric
//! fields, in insertion order (as the EMF exporter serialises them, reference §1.1).
//!
//! Fields are a plain list of pairs, not a map: an event is written once and read back only
//! for its few dimension keys, so hashing every key of a thousand events per collection (what
//! a JSON map does on insert) bought nothing. Every key is set once per event; the metrics
//! tests check that no event repeats a key.

use kinsight_model::catalogue::{keys, sources_of};
use serde_json::{Map, Number, Value};

/// An event's fields in the order they were set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Vec<(String, Value)>);

impl Fields {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As a JSON map (a repeated key keeps its last value).
    pub fn to_map(&self) -> Map<String, Value> {
        self.0.iter().cloned().collect()
    }

    /// Appends the fields as one JSON object.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            kinsight_model::json::push_str(out, k);
            out.push(b':');
            kinsight_model::json::push_value(out, v);
        }
        out.push(b'}');
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

pub struct Ev(pub Fields);

impl Ev {
    /// `Type`, `Version`, `Timestamp` (string ms), `Sources`, `ClusterName`.
    pub fn new(event_type: &str, timestamp_ms: i64, cluster: &str) -> Ev {
        let mut m = Vec::with_capacity(48);
        m.push((keys::TYPE.into(), event_type.into()));
        m.push((keys::VERSION.into(), "0".into()));
        m.push((keys::TIMESTAMP.into(), timestamp_ms.to_string().into()));
        m.push((
            keys::SOURCES.into(),
            Value::Array(
                sources_of(event_type)
                    .iter()
                    .map(|s| Value::from(*s))
                    .collect(),
            ),
        ));
        m.push((keys::CLUSTER_NAME.into(), cluster.into()));
        Ev(Fields(m))
    }

    pub fn s(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.0.0.push((k.to_string(), Value::String(v.into())));
        self
    }

    pub fn v(&mut self, k: &str, v: Value) -> &mut Self {
        self.0.0.push((k.to_string(), v));
        self
    }

    /// A float metric; non-finite values are left out.
    pub fn f(&mut self, k: &str, v: f64) -> &mut Self {
        if let Some(n) = Number::from_f64(v) {
            self.0.0.push((k.to_string(), Value::Number(n)));
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
        self.0.0.push((k.to_string(), Value::Number(v.into())));
        self
    }

    pub fn opt_u(&mut self, k: &str, v: Option<u64>) -> &mut Self {
        if let Some(v) = v {
            self.u(k, v);
        }
        self
    }

    pub fn into_fields(self) -> Fields {
        self.0
    }
}

/// `a / b × 100`, or `None` when `b` is 0.
pub fn percent(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b * 100.0)
}
