//! `kinsight logs groups|streams|tail`: browse log groups and read their events from a
//! kinsight server (issue [3/8]). The token comes from `KINSIGHT_TOKEN`.

use super::metrics::{Api, ServerArgs};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct LogsArgs {
    #[command(subcommand)]
    command: LogsCommand,
}

#[derive(Subcommand)]
enum LogsCommand {
    /// List log groups with their retention, size and event times.
    Groups {
        /// Only groups whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the streams of a group.
    Streams {
        group: String,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print a group's (or one stream's) latest events; with --follow, keep printing new ones.
    Tail {
        group: String,
        #[arg(long)]
        stream: Option<String>,
        /// Keep waiting for new events (Ctrl-C to stop).
        #[arg(long, short = 'f')]
        follow: bool,
        /// How many of the latest events to print first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// Only events since then: `1h`, `-30m`, RFC 3339 or epoch.
        #[arg(long, allow_hyphen_values = true)]
        since: Option<String>,
        /// `text`: time, stream and message per line; `json`: the events as JSON lines.
        #[arg(long, value_enum, default_value = "text")]
        output: TailOutput,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Output {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum TailOutput {
    Text,
    Json,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventPage {
    events: Vec<Value>,
    seq: Option<u64>,
    #[serde(default)]
    next_backward_token: Option<String>,
}

#[derive(Deserialize)]
struct FollowPage {
    events: Vec<Value>,
    seq: u64,
    #[serde(default)]
    gap: bool,
}

pub fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let rt = super::runtime()?;
    rt.block_on(async move {
        match args.command {
            LogsCommand::Groups {
                prefix,
                output,
                server,
            } => groups(&Api::new(&server)?, prefix, output).await,
            LogsCommand::Streams {
                group,
                prefix,
                output,
                server,
            } => streams(&Api::new(&server)?, &group, prefix, output).await,
            LogsCommand::Tail {
                group,
                stream,
                follow,
                lines,
                since,
                output,
                server,
            } => {
                tail(
                    &Api::new(&server)?,
                    &group,
                    stream.as_deref(),
                    follow,
                    lines,
                    since.as_deref(),
                    output,
                )
                .await
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Pages through a listing endpoint (`next` tokens) and returns every item.
async fn all_pages(
    api: &Api,
    path: &str,
    key: &str,
    mut query: Vec<(&str, String)>,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        let page: Value = api.get(path, &query).await?;
        out.extend(page[key].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(n) if !n.is_empty() => {
                query.retain(|(k, _)| *k != "next");
                query.push(("next", n.to_string()));
            }
            _ => return Ok(out),
        }
    }
}

async fn groups(api: &Api, prefix: Option<String>, output: Output) -> anyhow::Result<()> {
    let mut q = vec![("limit", "1000".to_string())];
    if let Some(p) = prefix {
        q.push(("prefix", p));
    }
    let groups = all_pages(api, "/v1/groups", "groups", q).await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&groups)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g["name"].as_str().unwrap_or_default().to_string(),
                g["retentionDays"]
                    .as_u64()
                    .map_or("never expire".into(), |d| format!("{d} days")),
                human_bytes(
                    g["storedBytes"].as_u64().unwrap_or(0)
                        + g["unflushedBytes"].as_u64().unwrap_or(0),
                ),
                g["streamCount"].as_u64().unwrap_or(0).to_string(),
                time_or_dash(&g["lastEventMs"]),
            ]
        })
        .collect();
    print_table(
        &["GROUP", "RETENTION", "SIZE", "STREAMS", "LAST EVENT"],
        &rows,
    );
    Ok(())
}

async fn streams(
    api: &Api,
    group: &str,
    prefix: Option<String>,
    output: Output,
) -> anyhow::Result<()> {
    let mut q = vec![("group", group.to_string()), ("limit", "1000".to_string())];
    if let Some(p) = prefix {
        q.push(("prefix", p));
    }
    let streams = all_pages(api, "/v1/streams", "streams", q).await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&streams)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = streams
        .iter()
        .map(|s| {
            vec![
                s["name"]
                    .as_str()
                    .or(s["logStreamName"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                time_or_dash(&s["firstEventMs"]),
                time_or_dash(&s["lastEventMs"]),
            ]
        })
        .collect();
    print_table(&["STREAM", "FIRST EVENT", "LAST EVENT"], &rows);
    Ok(())
}

async fn tail(
    api: &Api,
    group: &str,
    stream: Option<&str>,
    follow: bool,
    lines: usize,
    since: Option<&str>,
    output: TailOutput,
) -> anyhow::Result<()> {
    let now = kinsight_agent::run::now_ms();
    let mut q = vec![
        ("group", group.to_string()),
        ("direction", "backward".to_string()),
        ("end", (now + 1).to_string()),
    ];
    if let Some(s) = stream {
        q.push(("stream", s.to_string()));
    }
    if let Some(s) = since {
        let start = kinsight_model::duration::parse_since(s, now).context("--since")?;
        q.push(("start", start.to_string()));
    }
    // `-n 0 --follow`: nothing old, only what arrives from now on. A page holds at most 1 MiB
    // of events, so the last `lines` may take several pages, read newest first.
    let mut page = EventPage {
        events: Vec::new(),
        seq: None,
        next_backward_token: None,
    };
    while page.events.len() < lines {
        let mut q = q.clone();
        q.push(("limit", (lines - page.events.len()).min(10_000).to_string()));
        if let Some(t) = &page.next_backward_token {
            q.push(("next", t.clone()));
        }
        let older: EventPage = api.get("/v1/events", &q).await?;
        if older.events.is_empty() {
            break;
        }
        page.seq = page.seq.or(older.seq);
        page.next_backward_token = older.next_backward_token;
        let mut events = older.events;
        events.append(&mut page.events);
        page.events = events;
    }
    let mut out = std::io::stdout().lock();
    for e in &page.events {
        print_event(&mut out, e, output)?;
    }
    out.flush()?;
    drop(out);
    if !follow {
        return Ok(());
    }
    let mut seq = match page.seq {
        Some(s) => s,
        None => {
            api.get::<FollowPage>("/v1/follow", &[("group", group.to_string())])
                .await?
                .seq
        }
    };
    loop {
        let mut q = vec![
            ("group", group.to_string()),
            ("after", seq.to_string()),
            ("waitMs", "20000".to_string()),
        ];
        if let Some(s) = stream {
            q.push(("stream", s.to_string()));
        }
        let page: FollowPage = api.get("/v1/follow", &q).await?;
        if page.gap {
            eprintln!(
                "kinsight: some events arrived faster than they could be followed; read them with `kinsight logs tail --since`"
            );
        }
        let mut out = std::io::stdout().lock();
        for e in &page.events {
            print_event(&mut out, e, output)?;
        }
        out.flush()?;
        seq = page.seq;
    }
}

fn print_event(out: &mut impl Write, e: &Value, output: TailOutput) -> std::io::Result<()> {
    match output {
        TailOutput::Json => writeln!(out, "{e}"),
        TailOutput::Text => {
            let ts = e["timestamp"].as_i64().map(format_ms).unwrap_or_default();
            let stream = e["logStreamName"].as_str().unwrap_or_default();
            let msg = e["message"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('\n');
            writeln!(out, "{ts} {stream} {msg}")
        }
    }
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn time_or_dash(v: &Value) -> String {
    v.as_i64().map(format_ms).unwrap_or_else(|| "-".into())
}

fn human_bytes(b: u64) -> String {
    kinsight_model::size::format_size(b.into())
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(headers.to_vec()));
    for r in rows {
        println!("{}", line(r.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
