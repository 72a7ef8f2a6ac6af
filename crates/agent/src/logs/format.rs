//! Container log line formats as runtimes write them (reference §3.3, §3.4):
//!
//! * CRI (containerd, CRI-O, podman's k8s-file): `<RFC3339Nano> <stdout|stderr> <P|F> <text>`.
//!   Timestamps end in `Z` (containerd) or an offset such as `+00:00` (podman). `P` marks a
//!   partial chunk (lines over 16 KiB in containerd, 8 KiB in podman) continued by the next
//!   chunk of the same stream, `F` the final one; the other stream's lines may come in between.
//! * Docker json-file: `{"log":"text\n","stream":"stdout","time":"..."}`; a `log` without the
//!   trailing newline is a 16 KiB split continued by the next line.
//!
//! Parsers never fail on bad input: a line that is neither is kept as raw text (stream
//! `stdout`, time unknown), so nothing is dropped.

use std::borrow::Cow;

/// Output stream of a container line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed container log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLine<'a> {
    /// The runtime's timestamp as written (kept verbatim in the record's `time`).
    pub time: Cow<'a, str>,
    /// Milliseconds since the epoch, when `time` parses.
    pub time_ms: Option<i64>,
    pub stream: Stream,
    /// More of this line follows in the next one.
    pub partial: bool,
    /// The payload, raw bytes (may be invalid UTF-8).
    pub text: Cow<'a, [u8]>,
    pub format: LineFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Cri,
    DockerJson,
    /// Neither format: the whole line is the text.
    Raw,
}

/// Parses a container log line in whichever format it is in.
pub fn parse_container_line(line: &[u8]) -> ContainerLine<'_> {
    if line.first() == Some(&b'{')
        && let Some(d) = parse_docker(line)
    {
        return d;
    }
    if let Some(c) = parse_cri(line) {
        return c;
    }
    ContainerLine {
        time: Cow::Borrowed(""),
        time_ms: None,
        stream: Stream::Stdout,
        partial: false,
        text: Cow::Borrowed(line),
        format: LineFormat::Raw,
    }
}

/// `<time> <stream> <P|F> <text>`; the text may be empty (`... F` or `... F `).
pub fn parse_cri(line: &[u8]) -> Option<ContainerLine<'_>> {
    let sp1 = memchr::memchr(b' ', line)?;
    let time = std::str::from_utf8(&line[..sp1]).ok()?;
    let time_ms = parse_rfc3339_ms(time)?;
    let rest = &line[sp1 + 1..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b"stdout ") {
        (Stream::Stdout, r)
    } else if let Some(r) = rest.strip_prefix(b"stderr ") {
        (Stream::Stderr, r)
    } else {
        return None;
    };
    // The tag field may carry more flags in future (`F:x`); only its first letter matters.
    let (tag, text) = match memchr::memchr(b' ', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    let partial = match tag.first() {
        Some(b'P') => true,
        Some(b'F') => false,
        _ => return None,
    };
    Some(ContainerLine {
        time: Cow::Borrowed(time),
        time_ms: Some(time_ms),
        stream,
        partial,
        text: Cow::Borrowed(text),
        format: LineFormat::Cri,
    })
}

#[derive(serde::Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(default, borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
}

/// Docker json-file line.
pub fn parse_docker(line: &[u8]) -> Option<ContainerLine<'_>> {
    let d: DockerLine<'_> = serde_json::from_slice(line).ok()?;
    let stream = match d.stream.as_deref() {
        Some("stderr") => Stream::Stderr,
        _ => Stream::Stdout,
    };
    let time = d.time.unwrap_or(Cow::Borrowed(""));
    let time_ms = parse_rfc3339_ms(&time);
    let (text, partial) = match d.log {
        Cow::Borrowed(s) => match s.strip_suffix('\n') {
            Some(t) => (Cow::Borrowed(t.as_bytes()), false),
            None => (Cow::Borrowed(s.as_bytes()), true),
        },
        Cow::Owned(mut s) => {
            let full = s.ends_with('\n');
            if full {
                s.pop();
            }
            (Cow::Owned(s.into_bytes()), !full)
        }
    };
    Some(ContainerLine {
        time,
        time_ms,
        stream,
        partial,
        text,
        format: LineFormat::DockerJson,
    })
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (also with a space instead of `T`, and
/// lower-case `t`/`z`) to milliseconds since the epoch. Hand-written: it runs once per line.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Some(v)
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *c == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset_s) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cri_lines_from_containerd_and_podman() {
        let l = parse_container_line(b"2024-05-01T10:00:00.123456789Z stdout F hello world");
        assert_eq!(l.format, LineFormat::Cri);
        assert_eq!(l.time, "2024-05-01T10:00:00.123456789Z");
        assert_eq!(l.time_ms, Some(1_714_557_600_123));
        assert_eq!(l.stream, Stream::Stdout);
        assert!(!l.partial);
        assert_eq!(&*l.text, b"hello world");
        // podman writes an offset instead of Z.
        let p = parse_container_line(b"2026-11-28T04:46:21.910496009+00:00 stderr P part");
        assert_eq!(
            p.time_ms,
            Some(parse_rfc3339_ms("2026-11-28T04:46:21.910Z").unwrap())
        );
        assert!(p.partial);
        assert_eq!(p.stream, Stream::Stderr);
        let e = parse_container_line(b"2024-05-01T10:00:00Z stdout F");
        assert_eq!(e.format, LineFormat::Cri);
        assert!(e.text.is_empty());
        let sp = parse_container_line(b"2024-05-01T10:00:00Z stdout F   indented");
        assert_eq!(&*sp.text, b"  indented");
    }

    #[test]
    fn docker_json_lines_and_their_splits() {
        let d = parse_container_line(
            br#"{"log":"hello \"x\"\n","stream":"stderr","time":"2024-05-01T10:00:00.5Z"}"#,
        );
        assert_eq!(d.format, LineFormat::DockerJson);
        assert_eq!(&*d.text, br#"hello "x""#);
        assert!(!d.partial);
        assert_eq!(d.stream, Stream::Stderr);
        assert_eq!(d.time_ms, Some(1_714_557_600_500));
        let s = parse_container_line(br#"{"log":"first 16k","stream":"stdout","time":"x"}"#);
        assert!(s.partial);
        assert_eq!(s.time_ms, None);
    }

    #[test]
    fn bad_lines_become_raw_text() {
        for bad in [
            &b""[..],
            b"no timestamp here",
            b"2024-05-01T10:00:00Z stdin F x",
            b"2024-05-01T10:00:00Z stdout X x",
            b"2024-13-01T10:00:00Z stdout F x",
            b"{\"log\": 5}",
            b"\xff\xfe\x00",
            b"2024-05-01T10:00:00Z",
        ] {
            let l = parse_container_line(bad);
            assert_eq!(l.format, LineFormat::Raw, "{bad:?}");
            assert_eq!(&*l.text, bad);
        }
    }

    #[test]
    fn timestamps_agree_with_chrono() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.999Z",
            "2024-05-01T10:00:00.1+02:00",
            "1999-12-31T23:00:00-05:30",
            "2100-03-01 00:00:00.123456Z",
        ] {
            let want = chrono::DateTime::parse_from_rfc3339(&s.replace(' ', "T"))
                .unwrap()
                .timestamp_millis();
            assert_eq!(parse_rfc3339_ms(s), Some(want), "{s}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic_and_keep_raw_bytes(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let l = parse_container_line(&line);
            if l.format == LineFormat::Raw {
                prop_assert_eq!(&*l.text, &line[..]);
            }
        }

        #[test]
        fn cri_prefix_round_trips(ms in 0i64..4_102_444_800_000, text in "[ -~]{0,80}", err in any::<bool>(), partial in any::<bool>()) {
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
            let line = format!("{t} {} {} {text}", if err { "stderr" } else { "stdout" }, if partial { "P" } else { "F" });
            let l = parse_container_line(line.as_bytes());
            prop_assert_eq!(l.format, LineFormat::Cri);
            prop_assert_eq!(l.time_ms, Some(ms));
            prop_assert_eq!(l.partial, partial);
            prop_assert_eq!(&*l.text, text.as_bytes());
        }

        #[test]
        fn timestamp_parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse_rfc3339_ms(&s);
        }
    }
}
