//! `POST /v1/logs` bodies (OTLP/HTTP logs, `kinsight_server::api::otlp`): the first byte picks
//! the media type (bit 0: protobuf or OTLP/JSON; bit 1: an unsupported type) and whether the
//! `x-aws-log-group` / `x-aws-log-stream` headers are given (bits 2, 3); the rest is the body.
//!
//! Invariants: no panic (deeply nested values included); a body is decoded or refused with a
//! 4xx error; every record becomes one event in the header's group (else the default), whose
//! message is a JSON object that parses back and fits the event limit (or the record is
//! counted as too large); at most the batch limit of events; refusals of the whole request are
//! 413.

use kinsight_model::limits::{MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES};
use kinsight_server::api::otlp::{DEFAULT_GROUP, decode_logs, to_events};

const NOW_MS: i64 = 1_767_225_600_000;

pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let content_type = match (mode & 0b10 != 0, mode & 0b1 != 0) {
        (true, _) => "text/plain",
        (false, true) => "application/json",
        (false, false) => "application/x-protobuf",
    };
    let group = (mode & 0b100 != 0).then_some("/fuzz/group");
    let stream = (mode & 0b1000 != 0).then_some("fuzz-stream");
    let request = match decode_logs(Some(content_type), body) {
        Ok(r) => r,
        Err(e) => {
            assert!(e.code.status().is_client_error(), "{e:?}");
            return;
        }
    };
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    match to_events(&request, group, stream, NOW_MS) {
        Ok(prepared) => {
            let events = &prepared.events;
            assert_eq!(events.len() + prepared.too_large, records);
            assert!(events.len() <= MAX_BATCH_EVENTS);
            for e in events {
                assert_eq!(e.log_group_name, group.unwrap_or(DEFAULT_GROUP));
                if let Some(s) = stream {
                    assert_eq!(e.log_stream_name, s);
                }
                assert!(e.message.len() <= MAX_MESSAGE_BYTES);
                let v: serde_json::Value =
                    serde_json::from_str(&e.message).expect("the event is JSON");
                assert!(v.is_object());
            }
        }
        Err(e) => {
            assert_eq!(e.code.status(), 413, "{e:?}");
        }
    }
}
