//! `kinsight metrics list|get`: metric listings and statistics from a kinsight server, with
//! aws-cli habits (`--dimensions Name=K,Value=V ...`, `--output json`). Also home of the small
//! HTTP client that `kinsight alarms` shares.

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use kinsight_metrics::wire::{
    DimensionFilter, ListMetricsRequest, ListMetricsResponse, MetricQueryRequest,
    MetricQueryResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::process::ExitCode;

#[derive(Args)]
pub struct MetricsArgs {
    #[command(subcommand)]
    command: MetricsCommand,
}

#[derive(Subcommand)]
enum MetricsCommand {
    /// List metrics (namespace, name, dimensions), like `aws cloudwatch list-metrics`.
    List(ListArgs),
    /// Statistics of one metric, or of every metric a dimension search matches
    /// (`Value=*`), as aligned time series.
    Get(GetArgs),
}

/// Where the server is; the token comes from `KINSIGHT_TOKEN`.
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// kinsight server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// PEM CA certificates to verify an https:// server against (instead of the built-in
    /// and system roots).
    #[arg(long, value_name = "FILE", env = "KINSIGHT_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Args)]
struct ListArgs {
    #[arg(long)]
    namespace: Option<String>,
    #[arg(long)]
    metric_name: Option<String>,
    /// `Name=K,Value=V` (or `Name=K` for any value), several allowed.
    #[arg(long, num_args = 1.., value_name = "Name=K,Value=V")]
    dimensions: Vec<String>,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct GetArgs {
    #[arg(long)]
    namespace: String,
    #[arg(long)]
    metric_name: String,
    /// `Name=K,Value=V`; `Value=*` (or no Value) searches every value of K.
    #[arg(long, num_args = 1.., value_name = "Name=K,Value=V")]
    dimensions: Vec<String>,
    /// Also match series with more dimensions than those given.
    #[arg(long)]
    partial_dimensions: bool,
    /// Average, Sum, Minimum, Maximum, SampleCount, or a percentile pNN / pNN.NN.
    #[arg(long, default_value = "Average")]
    statistic: String,
    /// Seconds, 1 to 86400.
    #[arg(long, default_value_t = 60)]
    period: u32,
    /// RFC 3339 (2026-01-01T00:00:00Z), epoch seconds or ms, `now`, or relative (-3h, -30m, -2d).
    #[arg(long, default_value = "-3h", allow_hyphen_values = true)]
    start_time: String,
    #[arg(long, default_value = "now", allow_hyphen_values = true)]
    end_time: String,
    #[arg(long)]
    max_series: Option<usize>,
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    server: ServerArgs,
}

pub fn run(args: MetricsArgs) -> anyhow::Result<ExitCode> {
    let rt = super::runtime()?;
    rt.block_on(async {
        match args.command {
            MetricsCommand::List(a) => list(a).await,
            MetricsCommand::Get(a) => get(a).await,
        }
    })
}

async fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let req = ListMetricsRequest {
        namespace: a.namespace,
        metric_name: a.metric_name,
        dimensions: parse_dimensions(&a.dimensions)?,
        limit: a.limit,
    };
    let res: ListMetricsResponse = api
        .send(reqwest::Method::POST, "/v1/metrics/list", &req)
        .await?;
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&res)?),
        Output::Table => {
            let rows: Vec<Vec<String>> = res
                .metrics
                .iter()
                .map(|m| {
                    vec![
                        m.namespace.clone(),
                        m.metric_name.clone(),
                        m.dimensions
                            .iter()
                            .map(|d| format!("{}={}", d.name, d.value))
                            .collect::<Vec<_>>()
                            .join(","),
                        m.unit.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["NAMESPACE", "METRIC", "DIMENSIONS", "UNIT"], &rows);
            if res.truncated {
                eprintln!("(more metrics match; raise --limit or narrow the filter)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(a: GetArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let now = chrono::Utc::now().timestamp_millis();
    let start = parse_time(&a.start_time, now).context("--start-time")?;
    let end = parse_time(&a.end_time, now).context("--end-time")?;
    let req = MetricQueryRequest {
        namespace: a.namespace,
        metric_name: a.metric_name,
        dimensions: parse_dimensions(&a.dimensions)?,
        exact_dimensions: Some(!a.partial_dimensions),
        statistic: a.statistic,
        period: a.period,
        start_time: start,
        end_time: end,
        max_series: a.max_series,
    };
    let res: MetricQueryResponse = api
        .send(reqwest::Method::POST, "/v1/metrics/query", &req)
        .await?;
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&res)?),
        Output::Table => print_series(&res),
    }
    for m in &res.messages {
        eprintln!("note: {m}");
    }
    if res.truncated {
        eprintln!(
            "note: more series match than --max-series; showing the first {}",
            res.series.len()
        );
    }
    if res.series.is_empty() {
        eprintln!("no metric matches");
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per period, one column per series (or one line per value when there are many).
fn print_series(res: &MetricQueryResponse) {
    let fmt = |v: &Option<f64>| v.map(|x| format!("{x}")).unwrap_or_else(|| "-".into());
    let when = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    if res.series.len() <= 6 {
        let mut header = vec!["TIMESTAMP".to_string()];
        header.extend(res.series.iter().map(|s| s.label.clone()));
        let rows: Vec<Vec<String>> = res
            .timestamps
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut r = vec![when(*t)];
                r.extend(res.series.iter().map(|s| fmt(&s.values[i])));
                r
            })
            .collect();
        let h: Vec<&str> = header.iter().map(String::as_str).collect();
        print_table(&h, &rows);
    } else {
        let mut rows = Vec::new();
        for s in &res.series {
            for (i, t) in res.timestamps.iter().enumerate() {
                if let Some(v) = s.values[i] {
                    rows.push(vec![when(*t), s.label.clone(), format!("{v}")]);
                }
            }
        }
        print_table(
            &["TIMESTAMP", "SERIES", &res.statistic.to_uppercase()],
            &rows,
        );
    }
}

pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// aws-cli's shorthand: `Name=K,Value=V`; `Name=K` alone (or `Value=*`) means any value.
pub(crate) fn parse_dimensions(args: &[String]) -> anyhow::Result<Vec<DimensionFilter>> {
    args.iter().map(|a| parse_dimension(a)).collect()
}

fn parse_dimension(s: &str) -> anyhow::Result<DimensionFilter> {
    let (mut name, mut value) = (None, None);
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--dimensions: expected Name=NAME,Value=VALUE, got {s:?}"))?;
        match k.trim() {
            "Name" | "name" => name = Some(v.to_string()),
            "Value" | "value" => value = Some(v.to_string()),
            other => {
                bail!("--dimensions: unknown key {other:?} in {s:?} (expected Name=…,Value=…)")
            }
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow!("--dimensions: {s:?} has no Name=…"))?;
    Ok(DimensionFilter { name, value })
}

/// RFC 3339, epoch seconds or milliseconds, `now`, or a relative `-<duration>` (`-3h`,
/// `-1h30m`): the grammar of [`kinsight_model::duration`]. Callers name the flag.
pub(crate) fn parse_time(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    Ok(kinsight_model::duration::parse_time(s, now_ms)?)
}

/// A minimal client of the native API: bearer token from `KINSIGHT_TOKEN`, errors that name
/// the server, the call and the server's `{code, message}`.
pub(crate) struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Api> {
        let server = &args.server;
        let base = server.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).with_context(|| format!("--server {server:?} is not a URL"))?;
        let http = kinsight_agent::server_tls::client_builder(args.ca_file.as_deref())
            .map_err(|e| anyhow!("--ca-file: {e}"))?
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| anyhow!("--ca-file: {}", kinsight_agent::server_tls::describe(&e)))?;
        Ok(Api {
            base,
            token: std::env::var("KINSIGHT_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            http,
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let req = self.http.get(format!("{}{path}", self.base)).query(query);
        self.call("GET", path, req).await
    }

    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let req = self
            .http
            .delete(format!("{}{path}", self.base))
            .query(query);
        self.call("DELETE", path, req).await
    }

    pub async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let m = method.to_string();
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(body);
        self.call(&m, path, req).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        mut req: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.map_err(|e| {
            let why = kinsight_agent::server_tls::describe(&e);
            if why.contains("certificate") {
                anyhow!("cannot reach the kinsight server at {}: {why}", self.base)
            } else {
                anyhow!(
                    "cannot reach the kinsight server at {}: {why} (is `kinsight server` running? use --server URL)",
                    self.base
                )
            }
        })?;
        let status = res.status();
        let text = res.text().await.context("reading the server's answer")?;
        if !status.is_success() {
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    Some(format!(
                        "{}: {}",
                        v.get("code")?.as_str()?,
                        v.get("message")?.as_str()?
                    ))
                })
                .unwrap_or_else(|| text.trim().chars().take(300).collect());
            let hint = if status.as_u16() == 401 {
                " (set KINSIGHT_TOKEN to the server's token)"
            } else {
                ""
            };
            bail!("{method} {path}: HTTP {status}: {detail}{hint}");
        }
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{method} {path}: unexpected answer: {}",
                text.chars().take(300).collect::<String>()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_shorthand() {
        let d = parse_dimensions(&["Name=ClusterName,Value=prod".into(), "Name=PodName".into()])
            .unwrap();
        assert_eq!(
            d[0],
            DimensionFilter {
                name: "ClusterName".into(),
                value: Some("prod".into())
            }
        );
        assert_eq!(
            d[1],
            DimensionFilter {
                name: "PodName".into(),
                value: None
            }
        );
        let e = parse_dimensions(&["ClusterName=prod".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key \"ClusterName\""), "{e}");
        assert!(
            parse_dimensions(&["Value=x".into()])
                .unwrap_err()
                .to_string()
                .contains("no Name")
        );
        assert!(parse_dimensions(&["Name".into()]).is_err());
    }

    #[test]
    fn times() {
        let now = 1_767_225_600_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("-3h", now).unwrap(), now - 3 * 3_600_000);
        assert_eq!(parse_time("-15m", now).unwrap(), now - 15 * 60_000);
        assert_eq!(parse_time("1767225600", now).unwrap(), now);
        assert_eq!(parse_time("1767225600000", now).unwrap(), now);
        assert_eq!(parse_time("2026-01-01T00:00:00Z", now).unwrap(), now);
        assert!(parse_time("-3x", now).is_err());
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .to_string()
                .contains("not a time")
        );
    }
}
