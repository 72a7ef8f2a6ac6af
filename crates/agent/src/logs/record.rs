//! Building the JSON records that become each event's `message` (reference §3.3). Written by
//! hand into a reused buffer: this runs once per line and is most of the pipeline's CPU.

use kinsight_model::limits::{MAX_MESSAGE_BYTES, TRUNCATED_MARKER};

/// Appends `s` as a JSON string literal (with quotes).
pub fn push_json_str(out: &mut String, s: &str) {
    kinsight_model::json::push_str_to_string(out, s);
}

/// Appends raw bytes as a JSON string, replacing invalid UTF-8 with U+FFFD (never dropped).
pub fn push_json_bytes(out: &mut String, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => push_json_str(out, s),
        Err(_) => push_json_str(out, &String::from_utf8_lossy(b)),
    }
}

/// `"key":` with a comma when needed.
pub fn push_key(out: &mut String, key: &str) {
    if !(out.ends_with('{') || out.is_empty()) {
        out.push(',');
    }
    push_json_str(out, key);
    out.push(':');
}

/// If `text` is a JSON object, returns it (trimmed) for `log_processed` (Fluent Bit's
/// Merge_Log with Merge_Log_Key `log_processed`).
pub fn json_object(text: &str) -> Option<&str> {
    let t = text.trim();
    if t.len() < 2 || !t.starts_with('{') || !t.ends_with('}') {
        return None;
    }
    serde_json::from_str::<serde::de::IgnoredAny>(t).ok()?;
    Some(t)
}

/// What an application record carries besides `kubernetes`.
pub struct AppLine<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    /// `P` for a piece of a line cut at the size limit, `F` otherwise.
    pub partial: bool,
    pub log: &'a str,
}

/// Writes `{"time","stream","_p","log",["log_processed"],"kubernetes"}` into `out`, cutting
/// `log` (with the truncation marker) if the record would not fit one event.
pub fn application_record(out: &mut String, line: &AppLine<'_>, kubernetes_json: &str) {
    let mut log = line.log;
    let mut cut = false;
    loop {
        out.clear();
        out.push('{');
        if !line.time.is_empty() {
            push_key(out, "time");
            push_json_str(out, line.time);
        }
        push_key(out, "stream");
        push_json_str(out, line.stream);
        push_key(out, "_p");
        out.push_str(if line.partial { "\"P\"" } else { "\"F\"" });
        push_key(out, "log");
        if cut {
            let mut s = String::with_capacity(log.len() + TRUNCATED_MARKER.len());
            s.push_str(log);
            s.push_str(TRUNCATED_MARKER);
            push_json_str(out, &s);
        } else {
            push_json_str(out, log);
        }
        if !cut && let Some(obj) = json_object(log) {
            push_key(out, "log_processed");
            out.push_str(obj);
        }
        if !kubernetes_json.is_empty() {
            push_key(out, "kubernetes");
            out.push_str(kubernetes_json);
        }
        out.push('}');
        if out.len() <= MAX_MESSAGE_BYTES || log.is_empty() {
            return;
        }
        // Too big once escaped: cut the text by the excess (and the marker) and retry.
        let excess = out.len() - MAX_MESSAGE_BYTES + TRUNCATED_MARKER.len() + 16;
        let mut at = log.len().saturating_sub(excess.max(log.len() / 16));
        while !log.is_char_boundary(at) {
            at -= 1;
        }
        log = &log[..at];
        cut = true;
    }
}

/// A generic record of string fields (host and dataplane logs), cut like the above.
pub fn fields_record(out: &mut String, fields: &[(&str, &str)], message_key: &str, message: &str) {
    let mut msg = message;
    let mut cut = false;
    loop {
        out.clear();
        out.push('{');
        for (k, v) in fields {
            push_key(out, k);
            push_json_str(out, v);
        }
        push_key(out, message_key);
        if cut {
            push_json_str(out, &format!("{msg}{TRUNCATED_MARKER}"));
        } else {
            push_json_str(out, msg);
        }
        out.push('}');
        if out.len() <= MAX_MESSAGE_BYTES || msg.is_empty() {
            return;
        }
        let excess = out.len() - MAX_MESSAGE_BYTES + TRUNCATED_MARKER.len() + 16;
        let mut at = msg.len().saturating_sub(excess.max(msg.len() / 16));
        while !msg.is_char_boundary(at) {
            at -= 1;
        }
        msg = &msg[..at];
        cut = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_are_valid_json_with_reference_fields() {
        let mut out = String::new();
        application_record(
            &mut out,
            &AppLine {
                time: "2024-05-01T10:00:00.123Z",
                stream: "stderr",
                partial: false,
                log: r#"{"level":"error","msg":"x"}"#,
            },
            r#"{"pod_name":"p"}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["log_processed"]["level"], "error");
        assert_eq!(v["_p"], "F");
        assert_eq!(v["kubernetes"]["pod_name"], "p");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["time", "stream", "_p", "log", "log_processed", "kubernetes"]
        );
    }

    #[test]
    fn oversized_records_are_cut_with_the_marker() {
        let mut out = String::new();
        let log = "\u{1}".repeat(200_000); // 6 bytes each once escaped
        application_record(
            &mut out,
            &AppLine {
                time: "",
                stream: "stdout",
                partial: false,
                log: &log,
            },
            "",
        );
        assert!(out.len() <= MAX_MESSAGE_BYTES);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["log"].as_str().unwrap().ends_with(TRUNCATED_MARKER));
        let mut out2 = String::new();
        fields_record(&mut out2, &[("host", "h")], "message", &"é".repeat(300_000));
        assert!(out2.len() <= MAX_MESSAGE_BYTES);
        assert!(serde_json::from_str::<serde_json::Value>(&out2).is_ok());
    }

    proptest! {
        #[test]
        fn escaping_round_trips(s in "\\PC*|[\\x00-\\x20\"\\\\]{0,20}") {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn any_bytes_make_valid_records(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = String::new();
            push_json_bytes(&mut out, &b);
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, String::from_utf8_lossy(&b).into_owned());
        }
    }
}
