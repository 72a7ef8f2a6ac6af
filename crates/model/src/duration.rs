//! Durations and points in time as people write them on the command line: one grammar for
//! every flag (`--interval`, `--sample-interval`, `--since`, `--start-time -24h`, …; issue 15
//! item 13, and issue 21's single grammar).
//!
//! - A duration is one or more `<number><unit>` terms, `1h30m` or `1h 30m`; the number may have
//!   a fraction (`1.5h`, `0.5s`); units `ms`, `s`, `m`, `h`, `d`, `w`. A bare number is seconds
//!   (`30`). Durations are never negative and at most [`MAX_DURATION`] (100 years, so that any
//!   time computed from one fits an epoch in milliseconds).
//! - A time is `now`, `-<duration>` (that long ago), epoch seconds (up to 11 digits) or
//!   milliseconds, or RFC 3339 (`2026-01-01T00:00:00Z`).
//! - A `--since` value is a duration, with or without `-` (that long ago), or a time.
//!
//! Errors say what is wrong with the text ("is negative", "is too long", "unknown unit");
//! callers add the flag's name. Nothing here panics on any input (arithmetic is checked).

use std::time::Duration;

use thiserror::Error;

/// The longest duration accepted: 100 years (36,500 days).
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// What is wrong with a duration or time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("{0:?} is empty: expected a duration such as 30s, 5m, 1h30m or 2d")]
    Empty(String),
    #[error("{0:?} is negative: a duration counts forward from zero")]
    Negative(String),
    #[error("{0:?} is too long: durations are at most 36500d (100 years)")]
    TooLong(String),
    #[error("{text:?}: unknown unit {unit:?} (use ms, s, m, h, d or w, e.g. 1h30m)")]
    Unit { text: String, unit: String },
    #[error("{0:?} is not a duration: expected terms such as 30s, 5m, 1h30m, 1.5h or 2d")]
    Syntax(String),
    #[error(
        "{0:?} is not a time: expected RFC 3339 (2026-01-01T00:00:00Z), epoch seconds or milliseconds, now, or -<duration> (-3h)"
    )]
    Time(String),
    #[error("{0:?} is out of range as a time")]
    TimeRange(String),
}

const UNITS_NS: &[(&str, u128)] = &[
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
    ("w", 7 * 86_400 * 1_000_000_000),
];

/// Parses a duration (see the module documentation); zero is a duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty(text.to_string()));
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(text.to_string()));
    }
    let too_long = || DurationError::TooLong(text.to_string());
    let syntax = || DurationError::Syntax(text.to_string());
    // A bare number is seconds.
    let bare = s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let mut rest = s;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_ns = if bare {
            1_000_000_000
        } else {
            match UNITS_NS.iter().find(|(u, _)| *u == unit) {
                Some((_, ns)) => *ns,
                None if unit.is_empty() || number.is_empty() => return Err(syntax()),
                None => {
                    return Err(DurationError::Unit {
                        text: text.to_string(),
                        unit: unit.to_string(),
                    });
                }
            }
        };
        total_ns = total_ns
            .checked_add(
                term_ns(number, unit_ns)
                    .ok_or_else(syntax)?
                    .ok_or_else(too_long)?,
            )
            .ok_or_else(too_long)?;
        if total_ns > MAX_DURATION.as_nanos() {
            return Err(too_long());
        }
        rest = after.trim_start();
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, (total_ns % 1_000_000_000) as u32))
}

/// `number` (digits with at most one `.`) times `unit_ns`, in whole nanoseconds: `None` if
/// the number is malformed, `Some(None)` if it overflows.
fn term_ns(number: &str, unit_ns: u128) -> Option<Option<u128>> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let mut whole: u128 = 0;
    for d in int.bytes() {
        whole = match whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(u128::from(d - b'0')))
        {
            Some(w) => w,
            None => return Some(None),
        };
    }
    // The fraction, to the nanosecond (digits past the 18th cannot matter): less than one
    // `unit_ns`.
    let mut frac_ns: u128 = 0;
    let mut scale = unit_ns;
    for d in frac.bytes().take(18) {
        scale /= 10;
        frac_ns += u128::from(d - b'0') * scale;
    }
    Some(
        whole
            .checked_mul(unit_ns)
            .and_then(|ns| ns.checked_add(frac_ns)),
    )
}

/// Parses a point in time, in epoch milliseconds (see the module documentation).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, DurationError> {
    let s = text.trim();
    if s == "now" {
        return Ok(now_ms);
    }
    if let Some(ago) = s.strip_prefix('-') {
        if ago.starts_with('-') {
            return Err(DurationError::Negative(text.to_string()));
        }
        let d = parse_duration(ago).map_err(|e| rename(e, text))?;
        return ago_ms(now_ms, d, text);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s
            .parse()
            .map_err(|_| DurationError::TimeRange(text.to_string()))?;
        // Eleven digits are seconds until the year 5138; thirteen are milliseconds.
        return if n < 100_000_000_000 {
            Ok(n * 1000)
        } else {
            Ok(n)
        };
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| DurationError::Time(text.to_string()))
}

/// Parses a `--since` value: a duration (`30m`, `-30m`: that long ago) or a time.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, DurationError> {
    let s = text.trim();
    let ago = s.strip_prefix('-').unwrap_or(s);
    // Digits and unit letters, not only digits (a bare number is an epoch): `2026-01-01T…`
    // is a time.
    let is_duration = ago.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && ago
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ' ' || "mshdw".contains(c))
        && !ago.bytes().all(|b| b.is_ascii_digit());
    if is_duration {
        let d = parse_duration(ago).map_err(|e| rename(e, text))?;
        return ago_ms(now_ms, d, text);
    }
    parse_time(text, now_ms)
}

fn ago_ms(now_ms: i64, d: Duration, text: &str) -> Result<i64, DurationError> {
    i64::try_from(d.as_millis())
        .ok()
        .and_then(|ms| now_ms.checked_sub(ms))
        .ok_or_else(|| DurationError::TimeRange(text.to_string()))
}

/// The same error about the whole text the user gave (`-3x` rather than `3x`).
fn rename(e: DurationError, text: &str) -> DurationError {
    let text = text.to_string();
    match e {
        DurationError::Empty(_) => DurationError::Empty(text),
        DurationError::Negative(_) => DurationError::Negative(text),
        DurationError::TooLong(_) => DurationError::TooLong(text),
        DurationError::Unit { unit, .. } => DurationError::Unit { text, unit },
        DurationError::Syntax(_) => DurationError::Syntax(text),
        DurationError::Time(_) => DurationError::Time(text),
        DurationError::TimeRange(_) => DurationError::TimeRange(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_767_225_600_000;

    #[test]
    fn durations_in_every_unit_and_combination() {
        let d = |s: &str| parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(d("1s"), Duration::from_secs(1));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("2"), Duration::from_secs(2));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("0.5s"), Duration::from_millis(500));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("0.3s"), Duration::from_millis(300), "no binary rounding");
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d(" 1h 30m "), Duration::from_secs(5400));
        assert_eq!(d("2d"), Duration::from_secs(172_800));
        assert_eq!(d("1w"), Duration::from_secs(604_800));
        assert_eq!(d("36500d"), MAX_DURATION);
    }

    #[test]
    fn negative_overflowing_and_malformed_durations_say_so() {
        let e = |s: &str| parse_duration(s).unwrap_err().to_string();
        assert_eq!(
            e("-1s"),
            "\"-1s\" is negative: a duration counts forward from zero"
        );
        assert_eq!(
            e("36500d1ms"),
            "\"36500d1ms\" is too long: durations are at most 36500d (100 years)"
        );
        assert!(e("99999999999999999999999999999999999999999w").contains("too long"));
        assert!(e("18446744073709551616s").contains("too long"));
        assert!(
            e("1e300s").contains("unknown unit \"e\""),
            "{}",
            e("1e300s")
        );
        assert!(e("1y").contains("unknown unit \"y\""));
        assert!(e("").contains("is empty"));
        for bad in ["abc", "1..5s", ".s", "s", "1h-30m", "NaN", "inf", "1 h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_absolute_relative_and_epoch() {
        let t = |s: &str| parse_time(s, NOW).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(t("now"), NOW);
        assert_eq!(t("-3h"), NOW - 3 * 3_600_000);
        assert_eq!(t("-1h30m"), NOW - 5_400_000);
        assert_eq!(t("1767225600"), NOW);
        assert_eq!(t("1767225600000"), NOW);
        assert_eq!(t("2026-01-01T00:00:00Z"), NOW);
        let e = |s: &str| parse_time(s, NOW).unwrap_err().to_string();
        assert!(e("--3h").contains("negative"), "{}", e("--3h"));
        assert!(e("-99999999999w").contains("too long"));
        assert!(e("99999999999999999999").contains("out of range"));
        assert!(
            e("-3x").starts_with("\"-3x\": unknown unit"),
            "{}",
            e("-3x")
        );
        assert!(e("yesterday").contains("is not a time"));
    }

    #[test]
    fn since_takes_a_duration_either_way_or_a_time() {
        let s = |t: &str| parse_since(t, NOW).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(s("30m"), NOW - 1_800_000);
        assert_eq!(s("-30m"), NOW - 1_800_000);
        assert_eq!(s("2026-01-01T00:00:00Z"), NOW);
        assert_eq!(
            s("1767225600"),
            NOW,
            "a bare number is an epoch, not seconds ago"
        );
        assert!(parse_since("--30m", NOW).is_err());
        assert!(
            parse_since("99999999999999w", NOW)
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }

    proptest! {
        #[test]
        fn no_text_panics(text in "(?s).{0,40}", now in any::<i64>()) {
            let _ = parse_duration(&text);
            let _ = parse_time(&text, now);
            let _ = parse_since(&text, now);
        }

        #[test]
        fn printed_durations_read_back(secs in 0u64..36_500 * 86_400, ms in 0u32..1000) {
            let d = Duration::new(secs, ms * 1_000_000);
            let text = format!("{}s{}ms", secs, ms);
            prop_assert_eq!(parse_duration(&text).unwrap(), d);
        }
    }
}
