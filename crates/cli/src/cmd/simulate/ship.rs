//! Sending the events to the server in batches, with deterministic batch ids.

use super::*;

// ---------------------------------------------------------------------------------------------
// Shipping

#[derive(Default)]
pub(super) struct Totals {
    pub(super) events: u64,
    pub(super) bytes: u64,
    pub(super) rejected: u64,
}

impl Totals {
    pub(super) fn add(&mut self, o: &Totals) {
        self.events += o.events;
        self.bytes += o.bytes;
        self.rejected += o.rejected;
    }
}

pub(super) struct Shipper {
    pub(super) base: String,
    pub(super) token: Option<String>,
    pub(super) http: reqwest::Client,
    pub(super) cluster: String,
    pub(super) seed: u64,
    pub(super) concurrency: usize,
}

/// Below the 1 MiB batch limit (Σ message bytes + 26 per event, reference §6.2).
pub(super) const BATCH_BYTES: usize = 900 * 1024;
pub(super) const BATCH_EVENTS: usize = 10_000;

impl Shipper {
    pub(super) fn new(args: &SimulateArgs) -> anyhow::Result<Shipper> {
        let base = args.server.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base)
            .with_context(|| format!("--server {:?} is not a URL", args.server))?;
        Ok(Shipper {
            base,
            token: std::env::var("KINSIGHT_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            http: kinsight_agent::server_tls::client_builder(args.ca_file.as_deref())
                .map_err(|e| anyhow::anyhow!("--ca-file: {e}"))?
                .timeout(Duration::from_secs(120))
                .build()?,
            cluster: args.cluster.clone(),
            seed: args.seed,
            concurrency: args.concurrency.max(1),
        })
    }

    /// Sends one tick's events in batches, a few at a time; retries connection errors and 5xx
    /// with the same batch id (the server stores a batch once).
    pub(super) async fn send(&self, tick_ms: i64, events: Vec<LogEvent>) -> anyhow::Result<Totals> {
        let mut batches: Vec<Vec<LogEvent>> = Vec::new();
        let mut cur: Vec<LogEvent> = Vec::new();
        let mut size = 0;
        for e in events {
            let s = e.billed_size_bytes();
            if !cur.is_empty() && (size + s > BATCH_BYTES || cur.len() >= BATCH_EVENTS) {
                batches.push(std::mem::take(&mut cur));
                size = 0;
            }
            size += s;
            cur.push(e);
        }
        if !cur.is_empty() {
            batches.push(cur);
        }
        let results: Vec<anyhow::Result<Totals>> =
            futures::stream::iter(batches.into_iter().enumerate())
                .map(|(i, b)| {
                    self.post(
                        format!("sim-{}-{}-{tick_ms}-{i}", self.cluster, self.seed),
                        b,
                    )
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let mut t = Totals::default();
        for r in results {
            t.add(&r?);
        }
        Ok(t)
    }

    pub(super) async fn post(
        &self,
        batch_id: String,
        events: Vec<LogEvent>,
    ) -> anyhow::Result<Totals> {
        let mut body = String::new();
        let mut bytes = 0u64;
        for e in &events {
            bytes += e.message.len() as u64;
            body.push_str(&e.to_json_line());
            body.push('\n');
        }
        let payload = zstd::encode_all(body.as_bytes(), 1).context("compressing a batch")?;
        let url = format!("{}/v1/ingest", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .header("content-encoding", "zstd")
                .header("x-kinsight-batch-id", &batch_id)
                .body(payload.clone());
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let retry = match req.send().await {
                Ok(res) => {
                    let status = res.status();
                    let text = res.text().await.unwrap_or_default();
                    if status.is_success() {
                        let v: Value = serde_json::from_str(&text).unwrap_or_default();
                        return Ok(Totals {
                            events: events.len() as u64,
                            bytes,
                            rejected: v["rejectedCount"].as_u64().unwrap_or(0),
                        });
                    }
                    if status.is_server_error() {
                        format!("HTTP {status}: {}", text.trim())
                    } else {
                        let hint = if status.as_u16() == 401 {
                            " (set KINSIGHT_TOKEN to the server's token)"
                        } else {
                            ""
                        };
                        bail!("POST {url}: HTTP {status}: {}{hint}", text.trim());
                    }
                }
                Err(e) => format!("{e}"),
            };
            if attempt >= 5 {
                bail!("POST {url}: giving up after {attempt} attempts: {retry}");
            }
            tracing::warn!("POST {url}: {retry}; retrying");
            tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        }
    }
}
