//! Logs Insights query text (`POST /v1/queries`, `/v1/queries/check`, StartQuery): the lexer,
//! parser and planner of `kinsight_ql`.
//!
//! Invariants: no panic; an error points inside the text; a parsed query prints as text that
//! parses back to the same commands (when the print fits the length limit) and plans the same
//! way.

use kinsight_ql::{MAX_QUERY_CHARS, Pipeline, parse};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let query = match parse(text) {
        Ok(q) => q,
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(
                e.line >= 1 && e.line <= lines && e.column >= 1,
                "error position {}:{} outside the text ({lines} lines): {e}",
                e.line,
                e.column
            );
            return;
        }
    };
    let planned = Pipeline::from_query(&query);
    let printed = query.to_string();
    if printed.chars().count() > MAX_QUERY_CHARS {
        return;
    }
    let again = parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    let nodes = |q: &kinsight_ql::Query| q.commands.iter().map(|c| c.node.clone()).collect::<Vec<_>>();
    assert_eq!(nodes(&again), nodes(&query), "{text:?} printed as {printed:?}");
    assert_eq!(
        Pipeline::from_query(&again).is_ok(),
        planned.is_ok(),
        "{text:?} and its print {printed:?} plan differently"
    );
}
