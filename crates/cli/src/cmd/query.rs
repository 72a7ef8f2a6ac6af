//! `kinsight query`: runs a Logs Insights (or, with `--sql`, SQL) query on a kinsight server
//! and prints the result as an aligned table, a JSON array of objects or CSV (issue #5).
//!
//! The query runs on the server (`POST /v1/queries`, then polling `GET /v1/queries/{id}`,
//! docs/api.md "Queries"); Ctrl-C stops it there too. When stdout is a terminal, a progress
//! line (records and bytes scanned) appears on stderr once a query has run for a second, and
//! a summary line follows the table.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};

use super::metrics::{Api, ServerArgs, parse_time, print_table};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryOutput {
    /// Columns aligned for a terminal (`@ptr` left out).
    Table,
    /// A JSON array with one object per result row.
    Json,
    /// RFC 4180 CSV with a header line.
    Csv,
}

#[derive(Args)]
pub struct QueryArgs {
    /// Log group to query; repeat for several (`@log` tells them apart).
    #[arg(long = "group", required = true, value_name = "GROUP")]
    groups: Vec<String>,
    /// Query the last period: 90s, 30m, 1h, 1h30m, 2d, 1w, or since a time (default 1h unless
    /// --start is given).
    #[arg(long, conflicts_with_all = ["start", "end"], allow_hyphen_values = true)]
    since: Option<String>,
    /// Start of the time range: RFC 3339, epoch seconds or ms, or relative (-3h).
    #[arg(long, allow_hyphen_values = true)]
    start: Option<String>,
    /// End of the time range (exclusive; default now).
    #[arg(long, allow_hyphen_values = true, requires = "start")]
    end: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    output: QueryOutput,
    /// The query is SQL (tables: each group by its quoted name, and `logs` for all).
    #[arg(long)]
    sql: bool,
    /// Most rows to return (1–10000); default: the query's own `limit`, else 1000.
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    server: ServerArgs,
    /// The query text, e.g. 'stats count() by kubernetes.namespace_name'.
    query: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    query_id: String,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Statistics {
    records_matched: u64,
    records_scanned: u64,
    bytes_scanned: u64,
}

#[derive(Deserialize)]
struct Failure {
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    status: String,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    total_rows: usize,
    statistics: Statistics,
    error: Option<Failure>,
    #[serde(default)]
    warnings: Vec<String>,
}

/// The time range `[start, end)` in epoch milliseconds.
fn time_range(a: &QueryArgs, now_ms: i64) -> anyhow::Result<(i64, i64)> {
    let (start, end) = match (&a.since, &a.start) {
        (Some(since), _) => {
            let start = kinsight_model::duration::parse_since(since, now_ms).context("--since")?;
            (start, now_ms)
        }
        (None, Some(start)) => {
            let end = match &a.end {
                Some(e) => parse_time(e, now_ms).context("--end")?,
                None => now_ms,
            };
            (parse_time(start, now_ms).context("--start")?, end)
        }
        (None, None) => (now_ms - 3_600_000, now_ms),
    };
    if end <= start {
        bail!("the time range is empty: --end must be after --start");
    }
    Ok((start, end))
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let rt = super::runtime()?;
    rt.block_on(query(args))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn progress_text(s: &Statistics, elapsed: Duration) -> String {
    format!(
        "{} records scanned ({}), {} matched, {:.1} s",
        s.records_scanned,
        human_bytes(s.bytes_scanned),
        s.records_matched,
        elapsed.as_secs_f64()
    )
}

async fn query(a: QueryArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (start, end) = time_range(&a, now_ms)?;
    let body = json!({
        "groups": a.groups,
        "start": start,
        "end": end,
        "query": a.query,
        "language": if a.sql { "sql" } else { "insights" },
        "limit": a.limit,
    });
    let started: Started = api
        .send(reqwest::Method::POST, "/v1/queries", &body)
        .await?;
    let id = started.query_id;
    let path = format!("/v1/queries/{id}");
    let interactive = std::io::stdout().is_terminal();
    let begun = Instant::now();
    let mut rows: Vec<Vec<Value>> = Vec::new();
    let mut delay = Duration::from_millis(50);
    let mut showed_progress = false;
    let snap = loop {
        let params = [("rowsFrom", rows.len().to_string())];
        let poll = api.get::<Snapshot>(&path, &params);
        let snap = tokio::select! {
            s = poll => s?,
            _ = tokio::signal::ctrl_c() => {
                let _: Value = api
                    .send(reqwest::Method::POST, &format!("{path}/stop"), &json!({}))
                    .await
                    .unwrap_or(Value::Null);
                if showed_progress {
                    eprintln!();
                }
                eprintln!("kinsight: query stopped");
                return Ok(ExitCode::from(130));
            }
        };
        let got = snap.rows.len();
        rows.extend(snap.rows.iter().cloned());
        let finished = !matches!(snap.status.as_str(), "Scheduled" | "Running");
        // An answer holds at most a few MiB of rows: read on until all of them are here.
        if rows.len() < snap.total_rows && got > 0 {
            continue;
        }
        if finished {
            break snap;
        }
        if interactive && begun.elapsed() >= Duration::from_secs(1) {
            eprint!(
                "\r\x1b[2K{}",
                progress_text(&snap.statistics, begun.elapsed())
            );
            let _ = std::io::stderr().flush();
            showed_progress = true;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    };
    if showed_progress {
        eprint!("\r\x1b[2K");
    }
    for w in &snap.warnings {
        eprintln!("kinsight: warning: {w}");
    }
    match snap.status.as_str() {
        "Complete" => {}
        status => {
            let why = snap.error.map(|e| e.message).unwrap_or_default();
            bail!("query {status}: {why}");
        }
    }
    if rows.len() != snap.total_rows {
        bail!(
            "the server returned {} rows of {} (query {id})",
            rows.len(),
            snap.total_rows
        );
    }
    let mut out = std::io::stdout().lock();
    match a.output {
        QueryOutput::Json => print_json(&mut out, &snap.columns, &rows)?,
        QueryOutput::Csv => print_csv(&mut out, &snap.columns, &rows)?,
        QueryOutput::Table => {
            drop(out);
            print_rows_table(&snap.columns, &rows);
        }
    }
    if interactive {
        eprintln!(
            "{} rows; {}",
            rows.len(),
            progress_text(&snap.statistics, begun.elapsed())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A cell as text: strings as they are, numbers and booleans as JSON, missing as empty.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_rows_table(columns: &[String], rows: &[Vec<Value>]) {
    let keep: Vec<usize> = (0..columns.len())
        .filter(|&i| columns[i] != "@ptr")
        .collect();
    let header: Vec<&str> = keep.iter().map(|&i| columns[i].as_str()).collect();
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            keep.iter()
                .map(|&i| {
                    // One line per row: a multi-line message shows its breaks as \n.
                    cell(r.get(i).unwrap_or(&Value::Null))
                        .replace('\r', "\\r")
                        .replace('\n', "\\n")
                })
                .collect()
        })
        .collect();
    print_table(&header, &lines);
}

fn print_json(out: &mut impl Write, columns: &[String], rows: &[Vec<Value>]) -> anyhow::Result<()> {
    let objects: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            for (c, v) in columns.iter().zip(r) {
                m.insert(c.clone(), v.clone());
            }
            Value::Object(m)
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &objects)?;
    writeln!(out)?;
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_csv(out: &mut impl Write, columns: &[String], rows: &[Vec<Value>]) -> anyhow::Result<()> {
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",")
    };
    writeln!(out, "{}", line(columns.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(cell).collect()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        q: QueryArgs,
    }

    fn args(a: &[&str]) -> QueryArgs {
        Cli::try_parse_from(std::iter::once("kinsight-query").chain(a.iter().copied()))
            .unwrap_or_else(|e| panic!("{a:?}: {e}"))
            .q
    }

    #[test]
    fn time_ranges_from_since_or_start_end() {
        let now = 1_714_564_800_000;
        let a = args(&["--group", "g", "--since", "2h", "q"]);
        assert_eq!(time_range(&a, now).unwrap(), (now - 7_200_000, now));
        let a = args(&["--group", "g", "q"]);
        assert_eq!(time_range(&a, now).unwrap(), (now - 3_600_000, now));
        let a = args(&[
            "--group",
            "g",
            "--start",
            "2024-05-01T10:00:00Z",
            "--end",
            "-30m",
            "q",
        ]);
        assert_eq!(
            time_range(&a, now).unwrap(),
            (now - 7_200_000, now - 1_800_000)
        );
        let a = args(&["--group", "g", "--start", "-1h", "--end", "-2h", "q"]);
        assert!(time_range(&a, now).is_err());
        assert!(
            Cli::try_parse_from(["k", "--group", "g", "--since", "1h", "--start", "-2h", "q"])
                .is_err()
        );
        assert!(
            Cli::try_parse_from(["k", "q"]).is_err(),
            "--group is required"
        );
    }

    #[test]
    fn json_and_csv_keep_every_column() {
        let cols = vec!["a".to_string(), "b, c".to_string()];
        let rows = vec![
            vec![json!(1), json!("x \"y\"")],
            vec![Value::Null, json!(true)],
        ];
        let mut buf = Vec::new();
        print_json(&mut buf, &cols, &rows).unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            v,
            json!([{"a": 1, "b, c": "x \"y\""}, {"a": null, "b, c": true}])
        );
        let mut buf = Vec::new();
        print_csv(&mut buf, &cols, &rows).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "a,\"b, c\"\n1,\"x \"\"y\"\"\"\n,true\n"
        );
    }
}
