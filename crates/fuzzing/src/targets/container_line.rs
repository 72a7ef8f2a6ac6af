//! Container log lines as runtimes write them: CRI (containerd, CRI-O, podman's k8s-file) and
//! Docker json-file (`kinsight_agent::logs::format`). A file is read line by line; the input
//! is one line, possibly several (each is parsed).
//!
//! Invariants: no panic; a CRI line's text is the tail of the line and its time the head; a
//! line that is neither format is kept whole as raw text (nothing dropped); the hand-written
//! RFC 3339 parser agrees with chrono's wherever both read a time.

use kinsight_agent::logs::format::{
    LineFormat, parse_container_line, parse_cri, parse_docker, parse_rfc3339_ms,
};

pub fn run(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        one(line);
    }
}

fn one(line: &[u8]) {
    let parsed = parse_container_line(line);
    match parsed.format {
        LineFormat::Raw => {
            assert_eq!(&parsed.text[..], line, "a raw line is kept whole");
            assert!(parse_cri(line).is_none());
        }
        LineFormat::Cri => {
            assert!(line.ends_with(&parsed.text), "CRI text is the line's tail");
            assert!(line.starts_with(parsed.time.as_bytes()), "CRI time is the line's head");
            assert!(parsed.time_ms.is_some());
        }
        LineFormat::DockerJson => {
            assert!(line.first() == Some(&b'{') && parse_docker(line).is_some());
        }
    }
    if let Ok(s) = std::str::from_utf8(line) {
        for word in s.split(' ').take(2) {
            check_time(word);
        }
    }
}

/// Where both parsers read a time, they agree (chrono wants `T` and at most nanoseconds; leap
/// seconds differ by design).
fn check_time(s: &str) {
    let Some(ms) = parse_rfc3339_ms(s) else {
        return;
    };
    if s.as_bytes().get(17..19) == Some(b"60") {
        return;
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        assert_eq!(ms, t.timestamp_millis(), "{s:?}");
    }
}
