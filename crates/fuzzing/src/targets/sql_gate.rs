//! SQL query text (`language: sql`): the gate that lets through exactly one read-only
//! statement (`kinsight_query::sql::check`) before DataFusion plans it.
//!
//! Invariants: no panic; what passes is refused once a second statement follows it, so the
//! gate can never be talked into running `DROP`, `COPY` or `SET` after a `SELECT`.

use kinsight_query::QueryError;
use kinsight_query::sql::check;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match check(text) {
        Ok(()) => {
            for second in ["\n;COPY logs TO '/tmp/x'", "\n;SET datafusion.x = 1", "\n;DROP TABLE logs"] {
                let smuggled = format!("{text}{second}");
                assert!(
                    check(&smuggled).is_err(),
                    "the gate let a second statement through: {smuggled:?}"
                );
            }
        }
        Err(QueryError::MalformedSql { line, column, .. }) => {
            assert!(line.is_none_or(|l| l >= 1) && column.is_none_or(|c| c >= 1));
        }
        Err(other) => panic!("the SQL gate answered {other:?}, not MalformedSql"),
    }
}
