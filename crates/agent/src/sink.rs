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
///
/// A batch that was not acknowledged may have left part of a line behind: a kill -9 in the
/// middle of the write, or a write that failed (disk full). Such a tail is cut off — when the
/// file is opened, and after a failed write — so the next batch starts on a line of its own;
/// its events are sent again, since their checkpoint never advanced.
pub struct FileSink {
    path: PathBuf,
    file: Arc<Mutex<Appender>>,
}

/// The file and the length of its complete, acknowledged lines.
struct Appender {
    file: std::fs::File,
    len: u64,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<FileSink, SinkError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| SinkError::Io { path: p, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        let size = file.metadata().map_err(io(path))?.len();
        let len = complete_lines_len(&file, size).map_err(io(path))?;
        if len < size {
            tracing::warn!(path = %path.display(), bytes = size - len,
                "cutting off an unfinished line an interrupted run left at the end of the output file");
            file.set_len(len).map_err(io(path))?;
            file.sync_data().map_err(io(path))?;
        }
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(Appender { file, len })),
        })
    }
}

/// The length of `file` up to and including its last newline (0 when it has none).
fn complete_lines_len(file: &std::fs::File, size: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = size;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
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
                let mut a = file.lock().unwrap_or_else(|p| p.into_inner());
                match a.file.write_all(&buf).and_then(|_| a.file.sync_data()) {
                    Ok(()) => {
                        a.len += buf.len() as u64;
                        Ok(())
                    }
                    Err(source) => {
                        // Whatever part of the batch got in goes: it is not acknowledged.
                        let len = a.len;
                        let _ = a.file.set_len(len);
                        Err(SinkError::Io { path, source })
                    }
                }
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

    /// Every line of the sink's file, each parsed as an event.
    fn read_lines(path: &Path) -> Vec<LogEvent> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn file_sink_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        let sink = sink_from_spec(&format!("file:{}", path.display())).unwrap();
        let a = LogEvent::new("g", "s", 1, "one");
        let b = LogEvent::new("g", "s", 2, "two");
        sink.send(std::slice::from_ref(&a)).await.unwrap();
        sink.send(std::slice::from_ref(&b)).await.unwrap();
        let lines = read_lines(&path);
        assert_eq!(lines, vec![a, b]);
    }

    /// A kill -9 in the middle of a write leaves part of a line: the next run cuts it off and
    /// starts on a line of its own, so every line of the file parses.
    #[tokio::test]
    async fn an_unfinished_line_left_by_a_killed_run_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let a = LogEvent::new("g", "s", 1, "one");
        let b = LogEvent::new("g", "s", 2, "two");
        let mut torn = encode_lines(std::slice::from_ref(&a));
        torn.extend_from_slice(br#"{"logGroupName":"g","logStre"#);
        std::fs::write(&path, &torn).unwrap();
        let sink = FileSink::open(&path).unwrap();
        sink.send(std::slice::from_ref(&b)).await.unwrap();
        let lines = read_lines(&path);
        assert_eq!(lines, vec![a, b.clone()]);

        // A file holding only part of a first line.
        std::fs::write(&path, br#"{"logGroupN"#).unwrap();
        let sink = FileSink::open(&path).unwrap();
        sink.send(std::slice::from_ref(&b)).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            serde_json::from_str::<LogEvent>(text.trim_end()).unwrap(),
            b
        );
    }

    #[test]
    fn bad_output_specs_are_named() {
        assert!(sink_from_spec("kafka:x").err().unwrap().contains("kafka:x"));
        assert!(sink_from_spec("file:").is_err());
    }
}
