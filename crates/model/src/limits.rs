//! Limits of the CloudWatch Logs API that kinsight honours (reference §6.2).

/// The classic per-event limit; the message in errors says "exceeds limit of 262144".
pub const MAX_EVENT_BYTES: usize = 262_144;
/// Bytes added to every event's message size when a batch's size is counted.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Maximum size of one batch: Σ (UTF-8 message bytes + 26).
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Maximum number of events in one batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Events older than this (relative to now) are rejected as too old.
pub const MAX_EVENT_AGE_MS: i64 = 14 * 24 * 3600 * 1000;
/// Events further in the future than this are rejected as too new.
pub const MAX_EVENT_FUTURE_MS: i64 = 2 * 3600 * 1000;
/// Valid events of one batch may span at most this long.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Marker appended to a message truncated to fit [`MAX_EVENT_BYTES`] (as the OTel pusher does).
pub const TRUNCATED_MARKER: &str = "[Truncated...]";

/// Largest message that still fits one event once the per-event overhead is counted.
pub const MAX_MESSAGE_BYTES: usize = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES;

/// Truncates `message` so that it fits one event, appending [`TRUNCATED_MARKER`], cutting on a
/// UTF-8 character boundary. Returns `None` if it already fits.
pub fn truncate_message(message: &str) -> Option<String> {
    if message.len() <= MAX_MESSAGE_BYTES {
        return None;
    }
    let mut cut = MAX_MESSAGE_BYTES - TRUNCATED_MARKER.len();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + TRUNCATED_MARKER.len());
    out.push_str(&message[..cut]);
    out.push_str(TRUNCATED_MARKER);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_within_limit_and_on_char_boundary() {
        assert!(truncate_message("short").is_none());
        let long = "é".repeat(MAX_EVENT_BYTES);
        let t = truncate_message(&long).unwrap();
        assert!(t.len() <= MAX_MESSAGE_BYTES);
        assert!(t.ends_with(TRUNCATED_MARKER));
        assert!(t.len() + EVENT_OVERHEAD_BYTES <= MAX_EVENT_BYTES);
    }
}
