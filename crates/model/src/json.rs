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

/// Appends an integer in decimal.
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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
