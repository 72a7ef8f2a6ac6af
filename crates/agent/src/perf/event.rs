//! A small builder for performance events: the envelope first, then identity, then metric
//! fields, in insertion order (as the EMF exporter serialises them, reference §1.1).
//!
//! Fields are a plain list of pairs, not a map: an event is written once and read back only
//! for its few dimension keys, so hashing every key of a thousand events per collection (what
//! a JSON map does on insert) bought nothing. Every key is set once per event; the metrics
//! tests check that no event repeats a key.

use kinsight_model::catalogue::{EventFields, keys, sources_of};
use serde_json::{Map, Number, Value};
use std::sync::Arc;

/// A field's value: its own, or one shared by many events (a pod's `kubernetes` block, an
/// event type's `Sources`), which costs a reference count instead of a deep copy and is
/// serialised once.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Own(Value),
    Shared(Arc<SharedValue>),
}

/// A value with its JSON text.
#[derive(Debug, PartialEq)]
pub struct SharedValue {
    value: Value,
    json: Box<str>,
}

impl SharedValue {
    pub fn new(value: Value) -> Arc<SharedValue> {
        let mut json = Vec::new();
        kinsight_model::json::push_value(&mut json, &value);
        Arc::new(SharedValue {
            value,
            json: String::from_utf8(json)
                .expect("JSON text is UTF-8")
                .into_boxed_str(),
        })
    }
}

impl std::ops::Deref for FieldValue {
    type Target = Value;
    fn deref(&self) -> &Value {
        match self {
            FieldValue::Own(v) => v,
            FieldValue::Shared(v) => &v.value,
        }
    }
}

/// An event's fields in the order they were set. Keys are names from the agent's code — the
/// reference's field names, some built from a level and a metric by [`field_name`] — so they are
/// `&'static str`, not a string allocated per field of every event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Vec<(&'static str, FieldValue)>);

impl Fields {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| &**v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.0.iter().map(|(k, v)| (*k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As a JSON map (a repeated key keeps its last value).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
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
            match v {
                FieldValue::Own(v) => kinsight_model::json::push_value(out, v),
                FieldValue::Shared(v) => out.extend_from_slice(v.json.as_bytes()),
            }
        }
        out.push(b'}');
    }
}

impl EventFields for Fields {
    fn each(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (*k, &**v))
    }
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

/// The key made of `parts`, as a `&'static str`: each distinct key is allocated once for the
/// life of the process. For keys built from a level and a metric name (`pod` +
/// `_memory_usage`), a vocabulary the agent's code fixes.
pub fn field_name(parts: &[&str]) -> &'static str {
    use std::cell::RefCell;
    use std::collections::HashSet;
    thread_local! {
        static KEYS: RefCell<(HashSet<&'static str, kinsight_model::hash::FastBuildHasher>, String)> =
            RefCell::default();
    }
    KEYS.with_borrow_mut(|(known, scratch)| {
        scratch.clear();
        for p in parts {
            scratch.push_str(p);
        }
        if let Some(k) = known.get(scratch.as_str()) {
            return *k;
        }
        let k: &'static str = Box::leak(scratch.clone().into_boxed_str());
        known.insert(k);
        k
    })
}

/// `Sources` of an event type, built once per type.
fn sources(event_type: &'static str) -> FieldValue {
    use std::cell::RefCell;
    thread_local! {
        static BUILT: RefCell<Vec<(&'static str, Arc<SharedValue>)>> = const { RefCell::new(Vec::new()) };
    }
    BUILT.with_borrow_mut(|built| {
        if let Some((_, v)) = built.iter().find(|(t, _)| *t == event_type) {
            return FieldValue::Shared(v.clone());
        }
        let v: Vec<Value> = sources_of(event_type)
            .iter()
            .map(|s| Value::from(*s))
            .collect();
        let v = SharedValue::new(Value::Array(v));
        built.push((event_type, v.clone()));
        FieldValue::Shared(v)
    })
}

/// A string value shared by the events that carry it — identity fields (ClusterName,
/// NodeName, Namespace, PodName…) repeat on hundreds of events per collection. Interned per
/// thread; the table is emptied when it reaches 4,096 names (a node runs at most a few hundred
/// pods, but their names change over time), so it stays under a megabyte.
fn shared_string(v: &str) -> FieldValue {
    use std::cell::RefCell;
    use std::collections::HashMap;
    const MAX: usize = 4096;
    thread_local! {
        static KNOWN: RefCell<HashMap<Box<str>, Arc<SharedValue>, kinsight_model::hash::FastBuildHasher>> =
            RefCell::default();
    }
    KNOWN.with_borrow_mut(|known| {
        if let Some(s) = known.get(v) {
            return FieldValue::Shared(s.clone());
        }
        if known.len() >= MAX {
            known.clear();
        }
        let s = SharedValue::new(Value::String(v.to_string()));
        known.insert(v.into(), s.clone());
        FieldValue::Shared(s)
    })
}

/// `Timestamp` (milliseconds as a string), shared by the events of one collection.
fn timestamp(ms: i64) -> FieldValue {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(i64, Arc<SharedValue>)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((t, v)) if *t == ms => FieldValue::Shared(v.clone()),
        _ => {
            let v = SharedValue::new(Value::String(ms.to_string()));
            *last = Some((ms, v.clone()));
            FieldValue::Shared(v)
        }
    })
}

pub struct Ev(pub Fields);

impl Ev {
    /// `Type`, `Version`, `Timestamp` (string ms), `Sources`, `ClusterName`.
    pub fn new(event_type: &'static str, timestamp_ms: i64, cluster: &str) -> Ev {
        let mut m = Vec::with_capacity(48);
        m.push((keys::TYPE, shared_string(event_type)));
        m.push((keys::VERSION, shared_string("0")));
        m.push((keys::TIMESTAMP, timestamp(timestamp_ms)));
        m.push((keys::SOURCES, sources(event_type)));
        m.push((keys::CLUSTER_NAME, shared_string(cluster)));
        Ev(Fields(m))
    }

    pub fn s(&mut self, k: &'static str, v: impl Into<String>) -> &mut Self {
        self.v(k, Value::String(v.into()))
    }

    /// A string that many events carry (a name of the node, a pod, a namespace), shared.
    pub fn name(&mut self, k: &'static str, v: &str) -> &mut Self {
        self.0.0.push((k, shared_string(v)));
        self
    }

    pub fn v(&mut self, k: &'static str, v: Value) -> &mut Self {
        self.0.0.push((k, FieldValue::Own(v)));
        self
    }

    /// A value shared with other events.
    pub fn shared(&mut self, k: &'static str, v: &Arc<SharedValue>) -> &mut Self {
        self.0.0.push((k, FieldValue::Shared(v.clone())));
        self
    }

    /// A float metric; non-finite values are left out.
    pub fn f(&mut self, k: &'static str, v: f64) -> &mut Self {
        if let Some(n) = Number::from_f64(v) {
            self.v(k, Value::Number(n));
        }
        self
    }

    pub fn opt(&mut self, k: &'static str, v: Option<f64>) -> &mut Self {
        if let Some(v) = v {
            self.f(k, v);
        }
        self
    }

    /// An integer metric (counts, bytes).
    pub fn u(&mut self, k: &'static str, v: u64) -> &mut Self {
        self.v(k, Value::Number(v.into()))
    }

    pub fn opt_u(&mut self, k: &'static str, v: Option<u64>) -> &mut Self {
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
