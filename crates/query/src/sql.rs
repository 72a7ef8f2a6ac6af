//! SQL as a second language over the same data (issue #5, `kinsight query --sql`).
//!
//! Tables, for the query's time range:
//! - each selected log group under its own name, which needs double quotes in SQL because of
//!   its slashes: `SELECT count(*) FROM "/kinsight/c1/application"`;
//! - `logs`: all selected groups together (union of their schemas), with `@log` naming the
//!   group of each row.
//!
//! Columns are the store's: `@timestamp`, `@ingestionTime`, `@logStream`, `@message`, `@id`,
//! `@log` and one per discovered field under its dotted name. Names are case-sensitive and are
//! not folded to lower case; quote any name that is not a plain identifier:
//! `SELECT "kubernetes.pod_name", count(*) FROM logs GROUP BY 1`.
//!
//! Only one read-only query is accepted (`SELECT`, `WITH`, `VALUES`, `EXPLAIN`): no DDL, DML,
//! `COPY` or `SET`, so SQL cannot read files or change settings. The Logs Insights JSON and IP
//! functions and `pct` are available under the same names.

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::datasource::ViewTable;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{AggregateUDF, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use crate::error::{QueryError, Result, strip_datafusion_prefixes};
use crate::functions;
use crate::table::LogTable;

/// The name of the table holding every selected group.
pub const ALL_GROUPS_TABLE: &str = "logs";

fn position_of(message: &str) -> (Option<u64>, Option<u64>) {
    // sqlparser ends its messages with "at Line: 1, Column: 8".
    let grab = |key: &str| {
        let i = message.rfind(key)? + key.len();
        let digits: String = message[i..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    };
    (grab("Line: "), grab("Column: "))
}

fn malformed(e: impl std::fmt::Display) -> QueryError {
    let message = strip_datafusion_prefixes(&e.to_string());
    let (line, column) = position_of(&message);
    QueryError::MalformedSql {
        message,
        line,
        column,
    }
}

/// Checks that `text` is one read-only SQL query, without planning it (so that `start` can
/// refuse a malformed query before anything runs).
pub fn check(text: &str) -> Result<()> {
    let statements = DFParserBuilder::new(text)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(malformed)?;
    if statements.len() != 1 {
        return Err(QueryError::MalformedSql {
            message: format!(
                "expected exactly one SQL statement, found {}",
                statements.len()
            ),
            line: None,
            column: None,
        });
    }
    let read_only = match &statements[0] {
        Statement::Statement(s) => matches!(
            s.as_ref(),
            SqlStatement::Query(_) | SqlStatement::Explain { .. }
        ),
        Statement::Explain(_) => true,
        _ => false,
    };
    if !read_only {
        return Err(QueryError::MalformedSql {
            message: "only a read-only query (SELECT, WITH, VALUES or EXPLAIN) is allowed".into(),
            line: None,
            column: None,
        });
    }
    Ok(())
}

/// Registers the tables of the module documentation and the Logs Insights functions.
pub(crate) fn register(
    ctx: &SessionContext,
    all: &Arc<LogTable>,
    groups: &[(String, Arc<LogTable>)],
) -> Result<()> {
    let view = |t: &Arc<LogTable>, name: &str| -> Result<Arc<ViewTable>> {
        let plan = t
            .source_plan(name)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    };
    ctx.register_table(
        TableReference::bare(ALL_GROUPS_TABLE),
        view(all, ALL_GROUPS_TABLE)?,
    )
    .map_err(|e| QueryError::Internal(e.to_string()))?;
    for (name, t) in groups {
        ctx.register_table(TableReference::bare(name.as_str()), view(t, name)?)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
    }
    for f in functions::sql_scalar_functions() {
        ctx.register_udf(f);
    }
    ctx.register_udaf(AggregateUDF::clone(&functions::pct()));
    Ok(())
}

/// Plans an SQL query; at most `row_cap` rows come back.
pub(crate) async fn plan(ctx: &SessionContext, text: &str, row_cap: u64) -> Result<LogicalPlan> {
    check(text)?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx
        .sql_with_options(text, options)
        .await
        .map_err(malformed)?;
    let plan = df.into_unoptimized_plan();
    LogicalPlanBuilder::from(plan)
        .limit(0, Some(row_cap as usize))
        .and_then(|b| b.build())
        .map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_read_only_query_passes() {
        assert!(check("SELECT 1").is_ok());
        assert!(check("WITH x AS (SELECT 1) SELECT * FROM x").is_ok());
        for bad in [
            "DROP TABLE logs",
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
            "COPY logs TO '/tmp/x.parquet'",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; SELECT 2",
            "INSERT INTO logs VALUES (1)",
        ] {
            assert!(
                matches!(check(bad), Err(QueryError::MalformedSql { .. })),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        match check("SELECT count(* FROM logs") {
            Err(QueryError::MalformedSql { line, column, .. }) => {
                assert_eq!(line, Some(1));
                assert!(column.is_some());
            }
            other => panic!("expected a malformed-SQL error, got {other:?}"),
        }
    }
}
