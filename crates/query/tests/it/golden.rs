//! Golden query files (`tests/golden/*.golden`): a query over the demo data (generated
//! performance events, application logs and dataplane records of `support::demo`, part in
//! segments, part in memory) and its expected result. The files of the §5.6 examples hold the
//! same answers DuckDB computes in `differential.rs`; the others were checked by hand when
//! written.
//!
//! Format:
//! ```text
//! # what the query shows
//! groups: /kinsight/demo/performance[, …]
//! order: any | as-is
//! query:
//! <query text, one or more lines>
//! result:
//! <JSON array of column names>
//! <one JSON array per row>
//! ```
//! `KINSIGHT_BLESS=1 cargo test -p kinsight-query --test it golden` rewrites the results
//! (review the diff before committing).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::*;

struct Golden {
    path: PathBuf,
    header: String,
    groups: Vec<String>,
    ordered: bool,
    query: String,
    columns: Value,
    rows: Vec<Value>,
}

fn parse(path: &Path) -> Golden {
    let text = std::fs::read_to_string(path).unwrap();
    let (head, result) = text
        .split_once("\nresult:\n")
        .unwrap_or_else(|| panic!("{}: no 'result:' section", path.display()));
    let (head, query) = head
        .split_once("\nquery:\n")
        .unwrap_or_else(|| panic!("{}: no 'query:' section", path.display()));
    let mut groups = Vec::new();
    let mut ordered = false;
    for line in head.lines() {
        if let Some(g) = line.strip_prefix("groups:") {
            groups = g.split(',').map(|s| s.trim().to_string()).collect();
        } else if let Some(o) = line.strip_prefix("order:") {
            ordered = o.trim() == "as-is";
        }
    }
    let mut lines = result.lines().filter(|l| !l.trim().is_empty());
    let columns = lines
        .next()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or(Value::Null);
    let rows = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    Golden {
        path: path.to_path_buf(),
        header: head.to_string(),
        groups,
        ordered,
        query: query.trim_end().to_string(),
        columns,
        rows,
    }
}

fn canonical(rows: &[Value], ordered: bool) -> Vec<Value> {
    let mut rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            Value::Array(
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| match v.as_f64() {
                        Some(x) => json!(format!("{x:.9e}")),
                        None => v.clone(),
                    })
                    .collect(),
            )
        })
        .collect();
    if !ordered {
        rows.sort_by_key(|r| r.to_string());
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_queries() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "golden"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "the §5.6 examples and more");
    let bless = std::env::var_os("KINSIGHT_BLESS").is_some();
    let d = demo().await;
    let mut failures = Vec::new();
    for path in files {
        let g = parse(&path);
        let groups: Vec<&str> = g.groups.iter().map(String::as_str).collect();
        let out = run(&d.svc, &groups, &g.query).await;
        let rows: Vec<Value> = without_ptr(&out).into_iter().map(Value::Array).collect();
        let columns: Vec<&String> = out.columns.iter().filter(|c| *c != "@ptr").collect();
        if bless {
            let mut text = format!(
                "{}\nquery:\n{}\nresult:\n{}\n",
                g.header,
                g.query,
                json!(columns)
            );
            for r in &rows {
                text.push_str(&format!("{r}\n"));
            }
            std::fs::write(&g.path, text).unwrap();
            continue;
        }
        if json!(columns) != g.columns
            || canonical(&rows, g.ordered) != canonical(&g.rows, g.ordered)
        {
            failures.push(format!(
                "{}:\n  got columns {}\n  got rows {}",
                g.path.display(),
                json!(columns),
                rows.iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n           ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
