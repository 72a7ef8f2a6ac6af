//! Container, host and dataplane log collection (issue [2/8], reference §3).
//!
//! ```text
//! tailer thread:  kinsight_tailer::Tailer ─lines→ Pipeline (parse, join, route, enrich,
//!                 filter, rate-limit, serialise) ─Batch→ ┐
//! journal thread: journalctl -o json ─entries→ Batch ────┤ bounded channel
//!                                                        ▼
//! shipper task:   Sink::send (durable) → ack offsets → persist checkpoints / journal cursor
//! ```
//!
//! Nothing is acknowledged before the sink has it, and batches are sent one at a time in
//! order, so after a kill -9 only the batch that was being sent can come out twice.
//!
//! Groups and streams (reference §3.1–3.2, Fluent Bit's names so CloudWatch users recognise
//! them): application `<node>-application.var.log.containers.<pod>_<ns>_<container>-<id>.log`;
//! dataplane `<node>-dataplane.systemd.<unit>` and, for `kube-proxy*`/`aws-node*` pods,
//! `<node>-dataplane.tail.var.log.containers.<…>.log`; host `<node>.host.{dmesg,messages,secure}`.

pub mod format;
pub mod journald;
pub mod layout;
pub mod metadata;
pub mod multiline;
pub mod pipeline;
pub mod ratelimit;
pub mod record;
pub mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kinsight_model::config::AgentConfig;
use kinsight_tailer::{Checkpointer, Tailer, TailerOptions};
use tokio::sync::{mpsc, watch};

use crate::sink::Sink;
use layout::NodeLayout;
use pipeline::{Batch, Pipeline, PipelineSettings};
use stats::LogStats;

/// Pod lists for enrichment, newest wins (e.g. each kubelet `/pods` answer). `None` = no
/// metadata source: records carry what the file path tells.
pub type PodFeed = Option<watch::Receiver<Arc<Vec<Pod>>>>;

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("log checkpoints: {0}")]
    State(#[from] kinsight_tailer::TailerError),
}

/// Tunables that are not in the config file (tests shorten them).
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// How long a batch may wait for more lines before it is sent.
    pub linger: Duration,
    /// How often an idle tailer looks for new data even without an inotify event.
    pub poll_interval: Duration,
    /// See [`TailerOptions::rotate_wait`].
    pub rotate_wait: Duration,
    /// Follow host files (`/var/log/syslog` etc.).
    pub host_files: bool,
    /// `journalctl` binary.
    pub journalctl: PathBuf,
    /// How long to wait at start for a first non-empty pod list.
    pub metadata_wait: Duration,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        CollectorOptions {
            linger: Duration::from_millis(200),
            poll_interval: Duration::from_millis(250),
            rotate_wait: Duration::from_secs(5),
            host_files: true,
            journalctl: PathBuf::from("journalctl"),
            metadata_wait: Duration::from_secs(5),
        }
    }
}

/// The log side of the agent.
pub struct LogCollector {
    cfg: AgentConfig,
    sink: Arc<dyn Sink>,
    pods: PodFeed,
    stats: Arc<LogStats>,
    opts: CollectorOptions,
}

impl LogCollector {
    pub fn new(cfg: &AgentConfig, sink: Arc<dyn Sink>, pods: PodFeed) -> LogCollector {
        LogCollector {
            cfg: cfg.clone(),
            sink,
            pods,
            stats: Arc::new(LogStats::default()),
            opts: CollectorOptions::default(),
        }
    }

    pub fn with_options(mut self, opts: CollectorOptions) -> LogCollector {
        self.opts = opts;
        self
    }

    pub fn stats(&self) -> Arc<LogStats> {
        self.stats.clone()
    }

    /// Where checkpoints live: `<state_dir>/logs`.
    pub fn state_dir(cfg: &AgentConfig) -> PathBuf {
        cfg.kinsight.state_dir.join("logs")
    }

    /// Collects until `shutdown` turns true; returns once what was read has been offered to
    /// the sink (what it did not acknowledge is read again at the next start).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), LogsError> {
        let state_dir = Self::state_dir(&self.cfg);
        let checkpoints = Arc::new(Checkpointer::open(&state_dir)?);
        let stop = Arc::new(AtomicBool::new(false));
        // One batch being sent and one queued: memory stays bounded when the sink is slow.
        let (tx, mut rx) = mpsc::channel::<Batch>(1);
        let settings = PipelineSettings::from_config(&self.cfg);
        let layout = NodeLayout::new(&self.cfg.kinsight.host_root);
        let logs = &self.cfg.kinsight.logs;
        let topts = TailerOptions {
            roots: layout.roots(self.opts.host_files),
            allowed_dirs: layout.allowed_dirs(),
            // Links on the node are written for the host's `/`: resolve them under host_root.
            symlink_root: Some(self.cfg.kinsight.host_root.clone()),
            read_from_head: logs.read_from_head,
            max_line_bytes: pipeline::MAX_PIECE_BYTES,
            rotate_wait: self.opts.rotate_wait,
            ..TailerOptions::default()
        };
        let mut tailer = Tailer::new(topts, Arc::new(layout.clone()), checkpoints.clone());
        let waker = tailer.waker();
        let mut pipeline = Pipeline::new(settings.clone(), layout, self.stats.clone());
        let rescan = Duration::from_secs(logs.rescan_interval_seconds.max(1));
        let opts = self.opts.clone();
        let pods = self.pods.clone();
        let tail_tx = tx.clone();
        let tail_stop = stop.clone();
        let tail = std::thread::Builder::new()
            .name("kinsight-tail".into())
            .spawn(move || {
                tail_loop(
                    &mut tailer,
                    &mut pipeline,
                    pods,
                    tail_tx,
                    &tail_stop,
                    rescan,
                    &opts,
                )
            })
            .expect("thread starts");

        let journal = if logs.journald {
            match journald::find_journal_dir(
                &self.cfg.kinsight.host_root,
                logs.journal_dir.as_deref(),
            ) {
                Some(dir) => Some(journald::spawn(
                    journald::JournalSettings {
                        dir,
                        units: journald::DATAPLANE_UNITS
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                        state_dir: state_dir.clone(),
                        node_name: settings.node_name.clone(),
                        group: settings.dataplane_group.clone(),
                        read_from_head: logs.read_from_head,
                        batch_max_events: settings.batch_max_events,
                        batch_max_bytes: settings.batch_max_bytes,
                        linger: self.opts.linger,
                        journalctl: self.opts.journalctl.clone(),
                        // Hosts without syslog files keep their host logs in the journal only.
                        host_group: (self.opts.host_files
                            && !layout::HOST_FILES.iter().any(|(f, _)| {
                                self.cfg.kinsight.host_root.join("var/log").join(f).exists()
                            }))
                        .then(|| settings.host_group.clone()),
                    },
                    tx.clone(),
                    stop.clone(),
                    self.stats.clone(),
                )),
                None => {
                    tracing::info!(
                        "no journal directory under host_root; dataplane journald logs are off"
                    );
                    None
                }
            }
        } else {
            None
        };
        drop(tx);

        // Turn the shutdown signal into the threads' flag.
        let flag = stop.clone();
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            while !*sd.borrow() {
                if sd.changed().await.is_err() {
                    break;
                }
            }
            flag.store(true, Ordering::Relaxed);
            waker.wake_data();
        });

        // The shipper: one batch at a time, in order.
        while let Some(batch) = rx.recv().await {
            let mut delay = Duration::from_millis(100);
            let delivered = loop {
                match self.sink.send(&batch.events).await {
                    Ok(()) => break true,
                    Err(e) => {
                        self.stats.add_send_errors(1);
                        tracing::warn!(error = %e, events = batch.events.len(), retry_in_ms = delay.as_millis() as u64, "log batch not delivered; retrying");
                        if *shutdown.borrow() {
                            break false;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            };
            if !delivered {
                // Not acknowledged: read again at the next start.
                continue;
            }
            self.stats.add_events_acked(batch.events.len() as u64);
            self.stats.add_batches_acked(1);
            checkpoints.ack(&batch.positions);
            let cp = checkpoints.clone();
            let cursor = batch.journal_cursor.clone();
            let dir = state_dir.clone();
            let res = tokio::task::spawn_blocking(move || {
                if let Some(c) = cursor {
                    journald::store_cursor(&dir, &c)?;
                }
                cp.persist().map(|_| ())
            })
            .await;
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot persist log checkpoints"),
                Err(e) => tracing::error!(error = %e, "checkpoint writer failed"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = tail.join();
            if let Some(j) = journal {
                let _ = j.join();
            }
        })
        .await;
        Ok(())
    }
}

fn tail_loop(
    tailer: &mut Tailer,
    pipeline: &mut Pipeline,
    mut pods: PodFeed,
    tx: mpsc::Sender<Batch>,
    stop: &AtomicBool,
    rescan: Duration,
    opts: &CollectorOptions,
) {
    tailer.watch();
    // The first scan before waiting for pod metadata: it decides where each file starts
    // (issue 15, item 15), and the sooner it runs the less depends on birth times. Lines are
    // read only after the wait, so they are still enriched.
    tailer.scan();
    pipeline.refresh_container_ids();
    if let Some(rx) = pods.as_mut() {
        // Give the first kubelet answer a moment, so the first lines are enriched and the
        // exclusion rules that need labels apply from the start.
        let until = Instant::now() + opts.metadata_wait;
        while rx.borrow().is_empty() && Instant::now() < until && !stop.load(Ordering::Relaxed) {
            if rx.has_changed().is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let list = rx.borrow_and_update().clone();
        pipeline.pods.update(&list, Instant::now());
    }
    let mut ship = |b: Batch| {
        // Fails only when the shipper is gone (shutdown): the lines are read again next start.
        let _ = tx.blocking_send(b);
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            pipeline.ship_now(&mut ship);
            return;
        }
        if let Some(rx) = pods.as_mut()
            && rx.has_changed().unwrap_or(false)
        {
            let list = rx.borrow_and_update().clone();
            pipeline.pods.update(&list, Instant::now());
        }
        if tailer.scan_if_due(rescan) {
            pipeline.refresh_container_ids();
        }
        let n = tailer.poll(4 << 20, |info, line| {
            pipeline.on_line(info, line, &mut ship)
        });
        for info in tailer.take_closed() {
            pipeline.file_closed(&info, &mut ship);
        }
        pipeline.tick(&mut ship);
        if pipeline.due(opts.linger) {
            pipeline.ship_now(&mut ship);
        }
        if n == 0 {
            if pipeline.has_pending_batch() {
                // Lines are waiting for the batch to fill or age: sleep rather than wake on
                // every write (at 10k lines/s that would be 10k wake-ups).
                std::thread::sleep(opts.linger.min(opts.poll_interval) / 2);
            } else {
                tailer.wait(opts.poll_interval);
            }
        }
    }
}
