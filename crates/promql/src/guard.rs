//! A cheap check of the query text before it reaches the parser.
//!
//! promql-parser has no nesting limit and recurses over the syntax tree (while building it,
//! in `value_type` — once per binary node, so quadratic — and when the tree is dropped), as
//! do the evaluator's `prepare` and `eval`. A query such as `((((…1…))))` with thirty
//! thousand parentheses, or `1+1+…+1`, would overflow a thread's stack and abort the
//! process. The parser also panics on some numbers written as durations (`up[1e30]`,
//! `up[NaN]`, `x offset 1e20`: `Duration::from_secs_f64`). This check refuses such text
//! with [`PromError::BadData`]; the limits are far below what overflows a 2 MiB stack.

use crate::PromError;
use crate::eval::bad;

/// Longest query text accepted, in bytes (128 KiB: room for long regular expressions of
/// Grafana's multi-value variables).
pub const MAX_QUERY_BYTES: usize = 128 * 1024;
/// Deepest nesting of `(`, `[` and `{` accepted (outside strings and comments).
pub const MAX_NESTING_DEPTH: usize = 32;
/// Most operator tokens accepted (`+ - * / % ^`, comparisons, `and`, `or`, `unless`,
/// `atan2`; outside strings, comments and label matchers `{…}`). Each can deepen the
/// syntax tree by one level (`1+1+…`, `- - - 1`). With [`MAX_NESTING_DEPTH`], measured: the
/// deepest query within both limits takes under 1.4 MiB of stack in a debug build (a
/// function call level ~14 KiB, an operator ~3.5 KiB), far less in release.
pub const MAX_OPERATORS: usize = 256;
/// Longest duration written as a bare number of seconds (`x[300]`, `offset 60`): Go's
/// `time.Duration` limit, about 292 years.
pub const MAX_DURATION_SECS: f64 = 9_223_372_036.0;

/// Refuses query text that is too long, too deeply nested, has too many operators, or
/// writes a duration as a number that is not finite, negative or over
/// [`MAX_DURATION_SECS`]. Called by [`crate::instant_query`], [`crate::range_query`] and
/// [`crate::parse_selector`] before parsing.
pub fn check(query: &str) -> Result<(), PromError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(bad(format!(
            "query too long: {} bytes, the limit is {MAX_QUERY_BYTES}",
            query.len()
        )));
    }
    let b = query.as_bytes();
    let mut depth = 0usize;
    let mut operators = 0usize;
    // Whether the previous token opens a duration (`[`, `:` inside `[]`, `offset`).
    let mut duration_next = false;
    // The brackets open, innermost last.
    let mut open: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                // A string: skip to its closing quote (backslash escapes outside raw ones).
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                duration_next = false;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                open.push(c);
                if depth > MAX_NESTING_DEPTH {
                    return Err(bad(format!(
                        "query too deeply nested: more than {MAX_NESTING_DEPTH} levels of brackets"
                    )));
                }
                duration_next = c == b'[';
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                open.pop();
                duration_next = false;
            }
            b':' if open.last() == Some(&b'[') => duration_next = true,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' => {
                while i + 1 < b.len() && b"=~<>!".contains(&b[i + 1]) {
                    i += 1;
                }
                // Matchers (`{a="1",b=~"x"}`) do not deepen the tree.
                if open.last() != Some(&b'{') {
                    operators += 1;
                }
                // `offset -5m`: the sign belongs to the duration.
                if !(duration_next && (c == b'-' || c == b'+')) {
                    duration_next = false;
                }
            }
            c if c.is_ascii_whitespace() => {}
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' => {
                let start = i;
                while i < b.len() {
                    let d = b[i];
                    if d.is_ascii_alphanumeric() || d == b'_' || d == b'.' || d == b':' {
                        i += 1;
                    } else if (d == b'+' || d == b'-')
                        && b[start].is_ascii_digit()
                        && matches!(b[i - 1], b'e' | b'E')
                        && !b[start..].starts_with(b"0x")
                    {
                        // The exponent's sign of a number (`1e+30`).
                        i += 1;
                    } else {
                        break;
                    }
                }
                let word = &query[start..i];
                if duration_next {
                    check_duration_number(word)?;
                }
                let lower = word.to_ascii_lowercase();
                if matches!(lower.as_str(), "and" | "or" | "unless" | "atan2") {
                    operators += 1;
                }
                duration_next = lower == "offset";
                if operators > MAX_OPERATORS {
                    return Err(operators_error());
                }
                continue;
            }
            _ => duration_next = false,
        }
        if operators > MAX_OPERATORS {
            return Err(operators_error());
        }
        i += 1;
    }
    Ok(())
}

fn operators_error() -> PromError {
    bad(format!(
        "query too complex: more than {MAX_OPERATORS} operators"
    ))
}

/// A number where a duration is expected (the parser takes it as seconds).
fn check_duration_number(word: &str) -> Result<(), PromError> {
    let lower = word.to_ascii_lowercase();
    let v = if let Some(hex) = lower.strip_prefix("0x") {
        match u64::from_str_radix(hex, 16) {
            Ok(v) => v as f64,
            Err(_) => return Ok(()),
        }
    } else {
        // Durations such as `5m` do not parse as numbers and are the parser's to check;
        // `inf` and `nan` do.
        match lower.parse::<f64>() {
            Ok(v) => v,
            Err(_) => return Ok(()),
        }
    };
    if !v.is_finite() || v > MAX_DURATION_SECS {
        return Err(bad(format!(
            "duration {word:?} out of range: at most {MAX_DURATION_SECS} seconds"
        )));
    }
    Ok(())
}
