//! Embedded Metric Format documents in ingested log events (`kinsight_model::emf`), both
//! layouts, as the metric store's ingest observer reads every stored message.
//!
//! Invariants: no panic; every datapoint respects the EMF limits (≤ 30 dimensions, names
//! ≤ 255 characters, dimension values ≤ 1,024, at least one finite value, resolution 1 or 60)
//! and reads its values and dimensions from the document.

use kinsight_model::emf::{
    MAX_DIMENSION_VALUE_CHARS, MAX_DIMENSIONS, MAX_NAME_CHARS, extract_from_message,
};

const FALLBACK_MS: i64 = 1_767_225_600_000;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(Some(points)) = extract_from_message(text, FALLBACK_MS) else {
        return;
    };
    let doc: serde_json::Value = serde_json::from_str(text).expect("EMF came from a JSON document");
    for p in &points {
        assert!(!p.namespace.is_empty() && p.namespace.chars().count() <= MAX_NAME_CHARS, "{p:?}");
        assert!(!p.name.is_empty() && p.name.chars().count() <= MAX_NAME_CHARS, "{p:?}");
        assert!(p.dimensions.len() <= MAX_DIMENSIONS, "{p:?}");
        for (k, v) in &p.dimensions {
            assert!(k.chars().count() <= MAX_NAME_CHARS, "{p:?}");
            assert!(v.chars().count() <= MAX_DIMENSION_VALUE_CHARS, "{p:?}");
            assert_eq!(doc.get(k).and_then(|x| x.as_str()), Some(v.as_str()), "{p:?}");
        }
        assert!(!p.values.is_empty(), "{p:?}");
        assert!(p.values.iter().all(|v| v.is_finite()), "{p:?}");
        assert!(matches!(p.storage_resolution, 1 | 60), "{p:?}");
        assert!(doc.get(&p.name).is_some(), "{p:?}");
    }
}
