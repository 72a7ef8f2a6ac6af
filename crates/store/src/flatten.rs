//! From event messages to typed columns: a message that is a JSON object is flattened into
//! dotted field names (`{"kubernetes":{"pod_name":"a"}}` → `kubernetes.pod_name`, arrays by
//! index: `a.0.b`, as Logs Insights discovers them, reference §5.1) without building a JSON
//! tree. A field whose top-level name starts with `@` gets one more `@` (`@timestamp` in the
//! JSON becomes `@@timestamp`), as Logs Insights shows it, so it never collides with a system
//! column. JSON `null`, empty objects and empty arrays produce no value. A message that is not
//! a JSON object (or not valid JSON) produces no fields; it stays searchable through
//! `@message`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Array, Int64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{Result, StoreError};
use crate::schema::{
    FieldType, GroupFields, MAX_EVENT_FIELDS, MAX_FIELD_DEPTH, MAX_GROUP_FIELDS, system_fields,
};

/// One JSON scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    pub fn field_type(&self) -> FieldType {
        match self {
            Scalar::Bool(_) => FieldType::Boolean,
            Scalar::Int(_) => FieldType::Int64,
            Scalar::Float(_) => FieldType::Float64,
            Scalar::Str(_) => FieldType::Utf8,
        }
    }

    /// The value's JSON text (strings unquoted), used when a column is `Utf8`; numbers print
    /// as arrow's cast prints them so both paths agree.
    fn to_text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => {
                let a = datafusion::arrow::array::Float64Array::from(vec![*f]);
                datafusion::arrow::compute::cast(&a, &datafusion::arrow::datatypes::DataType::Utf8)
                    .ok()
                    .and_then(|c| {
                        c.as_any()
                            .downcast_ref::<StringArray>()
                            .map(|s| s.value(0).to_string())
                    })
                    .unwrap_or_else(|| f.to_string())
            }
            Scalar::Str(s) => s.clone(),
        }
    }
}

/// Flattens `message` into `out` (cleared first). Returns false if it is not a JSON object.
pub fn flatten_message(message: &str, out: &mut Vec<(String, Scalar)>) -> bool {
    out.clear();
    if !message.trim_start().starts_with('{') {
        return false;
    }
    let mut prefix = String::new();
    let mut de = serde_json::Deserializer::from_str(message);
    let seed = FlatSeed {
        prefix: &mut prefix,
        out,
        depth: 0,
    };
    let ok = seed.deserialize(&mut de).is_ok() && de.end().is_ok();
    if !ok {
        out.clear();
    }
    ok
}

struct FlatSeed<'a> {
    prefix: &'a mut String,
    out: &'a mut Vec<(String, Scalar)>,
    depth: usize,
}

impl FlatSeed<'_> {
    fn push(self, v: Scalar) {
        if self.out.len() < MAX_EVENT_FIELDS && !self.prefix.is_empty() {
            self.out.push((self.prefix.clone(), v));
        }
    }
}

impl<'de> DeserializeSeed<'de> for FlatSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlatSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.push(Scalar::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.push(Scalar::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.push(match i64::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::Float(v as f64),
        });
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.push(Scalar::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.push(Scalar::Str(v.to_string()));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.push(Scalar::Str(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let FlatSeed { prefix, out, depth } = self;
        let base = prefix.len();
        while map
            .next_key_seed(KeySeed {
                prefix,
                top_level: depth == 0,
            })?
            .is_some()
        {
            if depth + 1 > MAX_FIELD_DEPTH || out.len() >= MAX_EVENT_FIELDS {
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(FlatSeed {
                    prefix,
                    out,
                    depth: depth + 1,
                })?;
            }
            prefix.truncate(base);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let FlatSeed { prefix, out, depth } = self;
        let base = prefix.len();
        let mut i = 0usize;
        loop {
            if depth == 0 {
                // A top-level array is not an object: no fields.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(());
            }
            prefix.push('.');
            prefix.push_str(&i.to_string());
            let more = if depth + 1 > MAX_FIELD_DEPTH || out.len() >= MAX_EVENT_FIELDS {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else {
                seq.next_element_seed(FlatSeed {
                    prefix,
                    out,
                    depth: depth + 1,
                })?
                .is_some()
            };
            prefix.truncate(base);
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// Appends a map key to the prefix (with the `.` separator and the `@` escape).
struct KeySeed<'a> {
    prefix: &'a mut String,
    top_level: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        if !self.prefix.is_empty() {
            self.prefix.push('.');
        }
        if self.top_level && v.starts_with('@') {
            self.prefix.push('@');
        }
        self.prefix.push_str(v);
        Ok(())
    }
}

/// One event to put into a batch.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub timestamp_ms: i64,
    pub ingestion_ms: i64,
    pub stream: &'a str,
    pub message: &'a str,
    pub id: i64,
}

/// Sparse values of one column while a batch is built.
struct ColumnAcc {
    ty: FieldType,
    values: Vec<(u32, Scalar)>,
}

/// Builds a record batch from rows: system columns plus the flattened fields. A field not in
/// `known` becomes a column only while the group has fewer than [`MAX_GROUP_FIELDS`]
/// fields. Returns the batch and its fields (name → type as needed by these rows).
pub fn build_batch<'a>(
    rows: impl ExactSizeIterator<Item = RowRef<'a>>,
    known: &GroupFields,
) -> Result<(RecordBatch, GroupFields)> {
    let n = rows.len();
    let mut ts = Vec::with_capacity(n);
    let mut ing = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut streams = StringBuilder::with_capacity(n, n * 32);
    let mut messages = StringBuilder::with_capacity(n, n * 256);
    let mut cols: HashMap<String, ColumnAcc> = HashMap::new();
    let mut new_fields = 0usize;
    let mut scratch = Vec::new();
    for (i, r) in rows.enumerate() {
        ts.push(r.timestamp_ms);
        ing.push(r.ingestion_ms);
        ids.push(r.id);
        streams.append_value(r.stream);
        messages.append_value(r.message);
        if !flatten_message(r.message, &mut scratch) {
            continue;
        }
        for (name, v) in scratch.drain(..) {
            match cols.get_mut(&name) {
                Some(acc) => {
                    acc.ty = acc.ty.unify(v.field_type());
                    acc.values.push((i as u32, v));
                }
                None => {
                    if !known.contains_key(&name) {
                        if known.len() + new_fields >= MAX_GROUP_FIELDS {
                            continue;
                        }
                        new_fields += 1;
                    }
                    cols.insert(
                        name,
                        ColumnAcc {
                            ty: v.field_type(),
                            values: vec![(i as u32, v)],
                        },
                    );
                }
            }
        }
    }
    let mut fields = system_fields();
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
        Arc::new(TimestampMillisecondArray::from(ing).with_timezone("UTC")),
        Arc::new(streams.finish()),
        Arc::new(messages.finish()),
        Arc::new(Int64Array::from(ids)),
    ];
    let mut names: Vec<String> = cols.keys().cloned().collect();
    names.sort();
    let mut out_fields = GroupFields::new();
    for name in names {
        let Some(acc) = cols.remove(&name) else {
            continue;
        };
        arrays.push(build_column(&acc, n));
        fields.push(Field::new(name.as_str(), acc.ty.data_type(), true));
        out_fields.insert(name, acc.ty);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
        StoreError::Arrow {
            context: "build batch from events".into(),
            source: e,
        }
    })?;
    Ok((batch, out_fields))
}

fn build_column(acc: &ColumnAcc, n: usize) -> ArrayRef {
    // Values arrive in row order; fill the gaps with nulls.
    macro_rules! fill {
        ($builder:expr, $conv:expr) => {{
            let mut b = $builder;
            let mut next = 0u32;
            for (row, v) in &acc.values {
                while next < *row {
                    b.append_null();
                    next += 1;
                }
                b.append_option($conv(v));
                next = row + 1;
            }
            while (next as usize) < n {
                b.append_null();
                next += 1;
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match acc.ty {
        FieldType::Boolean => fill!(BooleanBuilder::with_capacity(n), |v: &Scalar| match v {
            Scalar::Bool(b) => Some(*b),
            _ => None,
        }),
        FieldType::Int64 => fill!(Int64Builder::with_capacity(n), |v: &Scalar| match v {
            Scalar::Int(i) => Some(*i),
            _ => None,
        }),
        FieldType::Float64 => fill!(Float64Builder::with_capacity(n), |v: &Scalar| match v {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }),
        FieldType::Utf8 => {
            // Strings are appended without a copy; other values as their JSON text.
            let bytes: usize = acc
                .values
                .iter()
                .map(|(_, v)| match v {
                    Scalar::Str(s) => s.len(),
                    _ => 8,
                })
                .sum();
            let mut b = StringBuilder::with_capacity(n, bytes);
            let mut next = 0u32;
            for (row, v) in &acc.values {
                while next < *row {
                    b.append_null();
                    next += 1;
                }
                match v {
                    Scalar::Str(s) => b.append_value(s),
                    other => b.append_value(other.to_text()),
                }
                next = row + 1;
            }
            while (next as usize) < n {
                b.append_null();
                next += 1;
            }
            Arc::new(b.finish()) as ArrayRef
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Float64Array};

    fn flat(m: &str) -> Vec<(String, Scalar)> {
        let mut v = Vec::new();
        flatten_message(m, &mut v);
        v
    }

    #[test]
    fn flattens_nested_objects_and_arrays_with_dotted_names() {
        let v = flat(
            r#"{"log":"x","kubernetes":{"pod_name":"api-1","labels":{"app":"a"}},"n":[1,{"b":true}],"z":null,"@timestamp":"t"}"#,
        );
        assert_eq!(
            v,
            vec![
                ("log".into(), Scalar::Str("x".into())),
                ("kubernetes.pod_name".into(), Scalar::Str("api-1".into())),
                ("kubernetes.labels.app".into(), Scalar::Str("a".into())),
                ("n.0".into(), Scalar::Int(1)),
                ("n.1.b".into(), Scalar::Bool(true)),
                ("@@timestamp".into(), Scalar::Str("t".into())),
            ]
        );
    }

    #[test]
    fn non_objects_and_broken_json_give_no_fields() {
        assert!(flat("plain text").is_empty());
        assert!(flat("[1,2]").is_empty());
        assert!(flat(r#"{"a":1"#).is_empty());
        assert!(flat(r#"{"a":1} trailing"#).is_empty());
        assert_eq!(flat(r#"  {"a":1}  "#), vec![("a".into(), Scalar::Int(1))]);
    }

    #[test]
    fn caps_fields_per_event() {
        let m = format!(
            "{{{}}}",
            (0..300)
                .map(|i| format!("\"f{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(flat(&m).len(), MAX_EVENT_FIELDS);
    }

    #[test]
    fn batch_widens_conflicting_types_within_a_column() {
        let msgs = [
            r#"{"v":1,"w":1}"#,
            r#"{"v":2.5,"w":"x"}"#,
            "text",
            r#"{"w":true}"#,
        ];
        let rows = msgs.iter().enumerate().map(|(i, m)| RowRef {
            timestamp_ms: i as i64,
            ingestion_ms: 10,
            stream: "s",
            message: m,
            id: i as i64,
        });
        let rows: Vec<_> = rows.collect();
        let (b, f) = build_batch(rows.into_iter(), &GroupFields::new()).unwrap();
        assert_eq!(f.get("v"), Some(&FieldType::Float64));
        assert_eq!(f.get("w"), Some(&FieldType::Utf8));
        let v = b
            .column_by_name("v")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!((v.value(0), v.value(1), v.is_null(2)), (1.0, 2.5, true));
        let w = b
            .column_by_name("w")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            (w.value(0), w.value(1), w.is_null(2), w.value(3)),
            ("1", "x", true, "true")
        );
    }
}
