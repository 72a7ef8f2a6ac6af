//! The group-commit writer thread.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StoreError, wal_io_error};
use crate::record::WalEntry;

use super::MAX_GROUP_BYTES;
use super::file::{RECORD_HEADER_BYTES, create_file, encode_record_header, list_files};

/// A record waiting to be written. `payload` is `entry` encoded by the caller (on its own
/// thread, so encoding runs in parallel); `payload_crc` is its CRC.
pub(crate) struct Append<R> {
    pub entry: WalEntry,
    pub payload: Vec<u8>,
    pub payload_crc: crc32fast::Hasher,
    pub reply: oneshot::Sender<Result<R>>,
}

/// A record that is on disk, with the sequence number it was given.
pub(crate) struct Durable<R> {
    pub seq: u64,
    pub entry: WalEntry,
    pub reply: oneshot::Sender<Result<R>>,
}

/// Called on the writer thread with each fsynced group, in sequence order. It applies the
/// records to the state and answers the waiters.
pub(crate) type OnDurable<R> = Box<dyn FnMut(Vec<Durable<R>>) + Send>;

/// Handle to the writer thread. Dropping every handle stops the thread once the queue is empty.
pub(crate) struct WalWriter<R> {
    tx: std::sync::Mutex<Option<mpsc::Sender<Append<R>>>>,
    last_seq: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Active {
    file: File,
    path: PathBuf,
    /// Length of the file up to the end of the last durable group.
    good_len: u64,
    /// The file may hold bytes past `good_len` from a failed write; they must go before the
    /// next write.
    needs_repair: bool,
}

impl<R: Send + 'static> WalWriter<R> {
    /// Starts the writer. It appends to the newest existing file (already replayed, so its
    /// tail is clean) or creates the first one; `next_seq` is the first sequence number to
    /// assign.
    pub(crate) fn start(
        dir: &Path,
        next_seq: u64,
        file_max_bytes: u64,
        queue: usize,
        on_durable: OnDurable<R>,
    ) -> Result<Self> {
        kinsight_model::durable::create_dir_all(dir).map_err(crate::storage::durable_error)?;
        let active = match list_files(dir)?.pop() {
            Some(info) => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(&info.path)
                    .map_err(|e| StoreError::io(&info.path, e))?;
                let len = file
                    .seek(SeekFrom::End(0))
                    .map_err(|e| StoreError::io(&info.path, e))?;
                Active {
                    file,
                    path: info.path,
                    good_len: len,
                    needs_repair: false,
                }
            }
            None => {
                let (file, path) = create_file(dir, next_seq)?;
                let good_len = super::FILE_HEADER_BYTES as u64;
                Active {
                    file,
                    path,
                    good_len,
                    needs_repair: false,
                }
            }
        };
        let (tx, rx) = mpsc::channel(queue);
        let last_seq = Arc::new(AtomicU64::new(next_seq.saturating_sub(1)));
        let commits = Arc::new(AtomicU64::new(0));
        let mut state = WriterThread {
            dir: dir.to_path_buf(),
            rx,
            active,
            next_seq,
            file_max_bytes,
            on_durable,
            last_seq: last_seq.clone(),
            commits: commits.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("kinsight-wal".into())
            .spawn(move || state.run())
            .map_err(|e| StoreError::io(dir, e))?;
        Ok(WalWriter {
            tx: std::sync::Mutex::new(Some(tx)),
            last_seq,
            commits,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Queues a record; waits (asynchronously) while the queue is full.
    pub(crate) async fn append(&self, a: Append<R>) -> Result<()> {
        queue(&self.tx, a).await
    }

    /// Highest sequence number made durable so far.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// How many group commits (write + fdatasync) have succeeded.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stops the thread after it has written what is queued.
    pub(crate) fn shutdown(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Hands a record to a writer's queue (waiting while it is full); `ShuttingDown` once the
/// queue is closed. The local WAL writer and the replicas' shared-log writer both queue here.
pub(crate) async fn queue<R>(
    tx: &std::sync::Mutex<Option<mpsc::Sender<Append<R>>>>,
    a: Append<R>,
) -> Result<()> {
    let tx = tx
        .lock()
        .map_err(|_| StoreError::ShuttingDown)?
        .clone()
        .ok_or(StoreError::ShuttingDown)?;
    tx.send(a).await.map_err(|_| StoreError::ShuttingDown)
}

struct WriterThread<R> {
    dir: PathBuf,
    rx: mpsc::Receiver<Append<R>>,
    active: Active,
    next_seq: u64,
    file_max_bytes: u64,
    on_durable: OnDurable<R>,
    last_seq: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
}

impl<R> WriterThread<R> {
    fn run(&mut self) {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(first) = self.rx.blocking_recv() {
            let mut group = vec![first];
            let mut bytes = group[0].payload.len();
            while bytes < MAX_GROUP_BYTES {
                match self.rx.try_recv() {
                    Ok(a) => {
                        bytes += a.payload.len();
                        group.push(a);
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = self.prepare() {
                fail_all(group, &e);
                continue;
            }
            buf.clear();
            let first_seq = self.next_seq;
            for (i, a) in group.iter().enumerate() {
                encode_record_header(
                    &mut buf,
                    first_seq + i as u64,
                    a.entry.kind(),
                    a.payload.len(),
                    &a.payload_crc,
                );
                buf.extend_from_slice(&a.payload);
            }
            debug_assert!(buf.len() >= group.len() * RECORD_HEADER_BYTES);
            let written = self
                .active
                .file
                .write_all(&buf)
                .and_then(|_| self.active.file.sync_data());
            match written {
                Ok(()) => {
                    self.active.good_len += buf.len() as u64;
                    self.next_seq += group.len() as u64;
                    self.last_seq.store(self.next_seq - 1, Ordering::Release);
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    let durable = group
                        .into_iter()
                        .enumerate()
                        .map(|(i, a)| Durable {
                            seq: first_seq + i as u64,
                            entry: a.entry,
                            reply: a.reply,
                        })
                        .collect();
                    (self.on_durable)(durable);
                }
                Err(e) => {
                    let err = wal_io_error(self.active.path.clone(), e);
                    tracing::error!(error = %err, records = group.len(), "write-ahead log append failed; nothing of it is acknowledged");
                    self.active.needs_repair = true;
                    fail_all(group, &err);
                    // Repair now so that the next group starts from a clean tail.
                    let _ = self.prepare();
                }
            }
        }
        // Queue closed: the file stays as it is; every record in it was acknowledged.
    }

    /// Before a write: cut off the remains of a failed write, rotate if the file is full.
    fn prepare(&mut self) -> Result<()> {
        if self.active.needs_repair {
            let a = &mut self.active;
            a.file
                .set_len(a.good_len)
                .and_then(|_| a.file.seek(SeekFrom::Start(a.good_len)).map(|_| ()))
                .and_then(|_| a.file.sync_data())
                .map_err(|e| wal_io_error(a.path.clone(), e))?;
            a.needs_repair = false;
        }
        // Rotate only a file that holds records: a fresh file is never full.
        if self.active.good_len >= self.file_max_bytes
            && self.active.good_len > super::FILE_HEADER_BYTES as u64
        {
            let (file, path) = create_file(&self.dir, self.next_seq)?;
            self.active = Active {
                file,
                path,
                good_len: super::FILE_HEADER_BYTES as u64,
                needs_repair: false,
            };
        }
        Ok(())
    }
}

fn fail_all<R>(group: Vec<Append<R>>, err: &StoreError) {
    for a in group {
        let e = match err {
            StoreError::DiskFull { path, source } => StoreError::DiskFull {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::WalIo { path, source } => StoreError::WalIo {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            other => StoreError::WalIo {
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        };
        let _ = a.reply.send(Err(e));
    }
}
