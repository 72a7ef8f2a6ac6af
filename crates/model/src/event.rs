//! The log event envelope: one JSON object per line, shaped like CloudWatch's
//! `InputLogEvent` plus the group and stream it belongs to (issue [1/8]).

use serde::{Deserialize, Serialize};

/// One log event as agents write it and the server ingests it:
/// `{"logGroupName": ..., "logStreamName": ..., "timestamp": <ms>, "message": "..."}`.
///
/// `message` is always a string; performance events carry their JSON document as a string,
/// exactly as CloudWatch's PutLogEvents does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    pub log_group_name: String,
    pub log_stream_name: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub message: String,
}

impl LogEvent {
    pub fn new(
        group: impl Into<String>,
        stream: impl Into<String>,
        timestamp_ms: i64,
        message: impl Into<String>,
    ) -> Self {
        LogEvent {
            log_group_name: group.into(),
            log_stream_name: stream.into(),
            timestamp: timestamp_ms,
            message: message.into(),
        }
    }

    /// Size as CloudWatch counts it against batch limits: UTF-8 bytes of the message plus a
    /// fixed per-event overhead (reference §6.2).
    pub fn billed_size_bytes(&self) -> usize {
        self.message.len() + crate::limits::EVENT_OVERHEAD_BYTES
    }

    /// One JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        let mut out = Vec::with_capacity(self.message.len() + 96);
        self.write_json(&mut out);
        // SAFETY: write_json writes only JSON punctuation and escaped UTF-8 strings.
        unsafe { String::from_utf8_unchecked(out) }
    }

    /// Appends the event as one JSON object (no newline), byte-for-byte what serde writes,
    /// without serde: this runs for every event an agent ships.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"logGroupName\":");
        crate::json::push_str(out, &self.log_group_name);
        out.extend_from_slice(b",\"logStreamName\":");
        crate::json::push_str(out, &self.log_stream_name);
        out.extend_from_slice(b",\"timestamp\":");
        crate::json::push_i64(out, self.timestamp);
        out.extend_from_slice(b",\"message\":");
        crate::json::push_str(out, &self.message);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_cloudwatch_field_names() {
        let e = LogEvent::new(
            "/kinsight/c1/performance",
            "node-1",
            1_700_000_000_000,
            "{\"Type\":\"Node\"}",
        );
        let line = e.to_json_line();
        assert_eq!(
            line,
            r#"{"logGroupName":"/kinsight/c1/performance","logStreamName":"node-1","timestamp":1700000000000,"message":"{\"Type\":\"Node\"}"}"#
        );
        let back: LogEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.billed_size_bytes(), 15 + 26);
    }

    proptest::proptest! {
        #[test]
        fn hand_written_json_is_what_serde_writes(
            group in ".{0,20}", stream in ".{0,20}", ts in proptest::prelude::any::<i64>(),
            message in proptest::prelude::any::<String>(),
        ) {
            let e = LogEvent::new(group, stream, ts, message);
            proptest::prop_assert_eq!(e.to_json_line(), serde_json::to_string(&e).unwrap());
        }
    }
}
