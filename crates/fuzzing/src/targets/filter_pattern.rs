//! FilterLogEvents' `filterPattern` (terms, JSON and space-delimited forms) and its matching.
//! The input is a pattern, then optionally a newline and a message to match.
//!
//! Invariants: no panic, no stack overflow (the fuzzer runs with a server thread's 2 MiB stack,
//! see scripts/fuzz.sh); a pattern over 1,024 characters is refused; a parsed pattern prints
//! as text that parses back to the same pattern; matching is deterministic and the empty
//! pattern matches everything.

use kinsight_server::cwlogs::filter_pattern::{FilterPattern, MAX_PATTERN_CHARS, parse};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, message) = text.split_once('\n').unwrap_or((text, ""));
    let p = match parse(pattern) {
        Ok(p) => p,
        Err(_) => return,
    };
    assert!(
        pattern.chars().count() <= MAX_PATTERN_CHARS,
        "a pattern of {} characters was accepted",
        pattern.chars().count()
    );
    let printed = p.to_string();
    if printed.chars().count() <= MAX_PATTERN_CHARS {
        let again = parse(&printed).unwrap_or_else(|e| {
            panic!("{pattern:?} printed as {printed:?}, which does not parse: {e}")
        });
        assert_eq!(again, p, "{pattern:?} printed as {printed:?}");
    }
    let hit = p.matches(message);
    assert_eq!(hit, p.matches(message), "matching is not deterministic");
    if matches!(p, FilterPattern::All) {
        assert!(hit, "the empty pattern matches every message");
    }
}
