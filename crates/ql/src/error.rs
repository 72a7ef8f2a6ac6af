//! The one error type of the crate: a position in the query text plus a message that says what
//! was found and what would have been accepted (issue #5: "a wrong query gets the line, column
//! and what was expected").

use serde::Serialize;
use thiserror::Error;

/// A place in the query text. Both numbers are 1-based; `column` counts characters (not bytes),
/// so it matches what an editor shows for non-ASCII queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A query that cannot be parsed or planned.
///
/// `message` is complete on its own (it names what was found); `expected` lists the kinds of
/// thing that would have been accepted at that point, for editors that offer completions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub expected: Vec<String>,
}

impl ParseError {
    pub(crate) fn new(pos: Position, message: impl Into<String>) -> Self {
        ParseError {
            line: pos.line,
            column: pos.column,
            message: message.into(),
            expected: Vec::new(),
        }
    }

    pub(crate) fn expected(
        pos: Position,
        message: impl Into<String>,
        expected: &[&str],
    ) -> ParseError {
        ParseError {
            line: pos.line,
            column: pos.column,
            message: message.into(),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }
}

/// Something the planner should tell the user although the query runs, e.g. a `sort` after
/// `stats` on a field the aggregation does not produce (reference §5.6 example 4), which is
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Warning {
    pub(crate) fn new(pos: Position, message: impl Into<String>) -> Self {
        Warning {
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), c))
        // One edit per three letters (at least one): `avgg` → `avg`, `fitler` → `filter`,
        // but `foo` suggests nothing rather than `floor`.
        .filter(|(d, _)| *d <= (word.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_pick_the_closest_word() {
        assert_eq!(
            suggest("fitler", ["fields", "filter", "stats"]),
            Some("filter")
        );
        assert_eq!(suggest("AVGG", ["avg", "sum"]), Some("avg"));
        assert_eq!(suggest("xyzzy", ["avg", "sum"]), None);
    }

    #[test]
    fn display_names_line_and_column() {
        let e = ParseError::new(
            Position {
                line: 2,
                column: 14,
            },
            "expected an expression",
        );
        assert_eq!(e.to_string(), "line 2, column 14: expected an expression");
    }
}
