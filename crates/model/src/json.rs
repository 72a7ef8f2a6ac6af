//! Hand-assembled JSON for the hot paths: the agent writes every log record and every event
//! envelope as JSON, and escaping strings is most of that work (a 1 KB record is escaped
//! twice — once as a record, once as the envelope's `message`). The escaping itself is
//! `json-escape-simd` (sonic-rs's SIMD kernels); its output is byte-for-byte what
//! `serde_json` writes, which the property tests below check.

/// Appends `s` as a JSON string literal, quotes included.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    json_escape_simd::escape_into(s, out);
}

/// [`push_str`] into a `String`.
pub fn push_str_to_string(out: &mut String, s: &str) {
    // SAFETY: escape_into appends a complete JSON string literal, which is valid UTF-8
    // because `s` is; `out` stays valid UTF-8.
    push_str(unsafe { out.as_mut_vec() }, s);
}

/// Appends `v` as serde_json writes it compactly (same bytes; strings escaped by [`push_str`]).
pub fn push_value(out: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => push_object(out, map),
        // Numbers through serde_json's own formatter (the same digits as its serializer, without
        // a serializer per number); booleans and null as serde_json writes them.
        Value::Number(n) => {
            use serde_json::ser::{CompactFormatter, Formatter};
            let mut f = CompactFormatter;
            let written = if let Some(u) = n.as_u64() {
                f.write_u64(out, u)
            } else if let Some(i) = n.as_i64() {
                f.write_i64(out, i)
            } else {
                // A Number holds no NaN or infinity, which serde_json would write as null.
                f.write_f64(out, n.as_f64().unwrap_or(0.0))
            };
            written.expect("writing to memory");
        }
        other => serde_json::to_writer(&mut *out, other).expect("writing to memory"),
    }
}

/// Appends a JSON object, keys in the map's order.
pub fn push_object(out: &mut Vec<u8>, map: &serde_json::Map<String, serde_json::Value>) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, k);
        out.push(b':');
        push_value(out, v);
    }
    out.push(b'}');
}

/// Appends an integer in decimal.
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn values_are_written_exactly_like_serde_json(v in value()) {
            let mut out = Vec::new();
            push_value(&mut out, &v);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&v).unwrap());
        }

        #[test]
        fn escapes_exactly_like_serde_json(s in any::<String>()) {
            let mut out = Vec::new();
            push_str(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn escapes_control_characters_and_quotes_like_serde_json(
            s in "[\\x00-\\x20\"\\\\a\u{7f}\u{e9}\u{1F600}]{0,80}",
            prefix in "[a-z]{0,40}",
        ) {
            let mut out = prefix.clone();
            push_str_to_string(&mut out, &s);
            prop_assert_eq!(out, format!("{prefix}{}", serde_json::to_string(&s).unwrap()));
        }

        #[test]
        fn writes_integers(v in any::<i64>()) {
            let mut out = Vec::new();
            push_i64(&mut out, v);
            prop_assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
