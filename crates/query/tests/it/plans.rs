//! Snapshots of the DataFusion logical plans of representative queries (issue #5), after
//! DataFusion's optimizer: they show what reaches the scan — only the columns a query reads
//! (`projection=[…]`), filters handed to the Parquet reader for pruning (`partial_filters`),
//! sort + limit as one top-k (`fetch`) — and how each Logs Insights stage was planned.

use crate::data::*;
use crate::examples::REFERENCE_EXAMPLES;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_plans() {
    let d = demo().await;
    let mut queries: Vec<(String, &str, String)> = REFERENCE_EXAMPLES
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("reference_example_{:02}", i + 1),
                c.group,
                c.insights.to_string(),
            )
        })
        .collect();
    for (name, group, q) in [
        (
            "raw_default_order",
            APPLICATION,
            "fields @timestamp, log | limit 20",
        ),
        (
            "parse_and_stats",
            APPLICATION,
            "parse log \"* * [*] *\" as ts, level, workload, rest | stats count() by level | sort level",
        ),
        (
            "json_unnest_dedup",
            APPLICATION,
            "fields jsonParse(log) as j | unnest j.tags into tag | dedup tag",
        ),
        (
            "two_groups_log_filter",
            PERFORMANCE,
            "filter @log = \"/kinsight/demo/application\" and stream = \"stderr\" | stats count() by @log",
        ),
        (
            "missing_field",
            PERFORMANCE,
            "fields no_such_field, NodeName | limit 3",
        ),
    ] {
        queries.push((name.to_string(), group, q.to_string()));
    }
    for (name, group, q) in queries {
        let groups: Vec<&str> = if name == "two_groups_log_filter" {
            vec![PERFORMANCE, APPLICATION]
        } else {
            vec![group]
        };
        let e = d.svc.explain(request(&groups, &q)).await.unwrap();
        insta::assert_snapshot!(name, format!("{q}\n---\n{}", e.optimized));
    }
}
