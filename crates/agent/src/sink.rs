//! Sinks: where batches of log events go. A sink acknowledges a batch (returns `Ok`) only once
//! it is durable at the destination — fsynced to a file, or acknowledged by the server — so
//! that log checkpoints can advance on that acknowledgement (issue [2/8]).

use futures::future::BoxFuture;
use kinsight_model::LogEvent;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("cannot write to {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Rejected(String),
    #[error("sink is closed")]
    Closed,
}

/// A destination for batches of events.
pub trait Sink: Send + Sync {
    /// Delivers `events`; resolves once they are durable at the destination.
    fn send<'a>(&'a self, events: &'a [LogEvent]) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Hands over events that cannot be produced again (metric samples). A sink with a local
    /// buffer may resolve once they are durable there and drop the oldest such batches when
    /// the buffer is full; by default this is [`Sink::send`].
    fn offer<'a>(&'a self, events: &'a [LogEvent]) -> BoxFuture<'a, Result<(), SinkError>> {
        self.send(events)
    }
}

/// Parses an `--output` value: `-` for stdout, `file:PATH` for an fsynced file.
pub fn sink_from_spec(spec: &str) -> Result<Arc<dyn Sink>, String> {
    if spec == "-" {
        return Ok(Arc::new(StdoutSink::default()));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        if path.is_empty() {
            return Err("--output file: needs a path, e.g. file:/tmp/events.jsonl".into());
        }
        return FileSink::open(Path::new(path))
            .map(|s| Arc::new(s) as Arc<dyn Sink>)
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "unknown output {spec:?}: use `-` (stdout) or `file:PATH`"
    ))
}

/// Writes one JSON line per event to stdout. It acknowledges after a flush; stdout has no
/// stronger guarantee.
#[derive(Default)]
pub struct StdoutSink {
    lock: Mutex<()>,
}

impl Sink for StdoutSink {
    fn send<'a>(&'a self, events: &'a [LogEvent]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let buf = encode_lines(events);
            let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = std::io::stdout().lock();
            out.write_all(&buf)
                .and_then(|_| out.flush())
                .map_err(|source| SinkError::Io {
                    path: "<stdout>".into(),
                    source,
                })
        })
    }
}

/// Appends one JSON line per event to a file and fsyncs before acknowledging, so it can stand
/// in for the server's acknowledgement.
pub struct FileSink {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<FileSink, SinkError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SinkError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SinkError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }
}

impl Sink for FileSink {
    fn send<'a>(&'a self, events: &'a [LogEvent]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            let buf = encode_lines(events);
            let file = self.file.clone();
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || {
                let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                f.write_all(&buf)
                    .and_then(|_| f.sync_data())
                    .map_err(|source| SinkError::Io { path, source })
            })
            .await
            .map_err(|_| SinkError::Closed)?
        })
    }
}

/// Serialises events as newline-terminated JSON lines.
pub fn encode_lines(events: &[LogEvent]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(events.iter().map(|e| e.message.len() + 96).sum());
    for e in events {
        e.write_json(&mut buf);
        buf.push(b'\n');
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_sink_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        let sink = sink_from_spec(&format!("file:{}", path.display())).unwrap();
        let a = LogEvent::new("g", "s", 1, "one");
        let b = LogEvent::new("g", "s", 2, "two");
        sink.send(std::slice::from_ref(&a)).await.unwrap();
        sink.send(std::slice::from_ref(&b)).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<LogEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, vec![a, b]);
    }

    #[test]
    fn bad_output_specs_are_named() {
        assert!(sink_from_spec("kafka:x").err().unwrap().contains("kafka:x"));
        assert!(sink_from_spec("file:").is_err());
    }
}
