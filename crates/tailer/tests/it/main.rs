//! Integration tests of the tailer against real files: scenarios (rotation as the kubelet and
//! logrotate do it, copytruncate, compression, deletion, restarts) and a model-based property
//! test (tests/it/model.rs).

mod model;
mod scenarios;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kinsight_tailer::{
    Checkpointer, FileId, FileRole, Layout, Position, Root, Tailer, TailerOptions,
};

/// Kubelet naming: `N.log` is live, `N.log.<anything>` (including `.gz`) is a rotation of it.
pub struct KubeletLayout;

impl Layout for KubeletLayout {
    fn classify(&self, path: &Path) -> Option<FileRole> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".log") {
            return Some(FileRole::Live);
        }
        let i = name.find(".log.")?;
        Some(FileRole::Rotated {
            family: path.with_file_name(&name[..i + 4]),
        })
    }
}

/// A line as a consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub family: PathBuf,
    pub text: Vec<u8>,
    pub first: bool,
    pub last: bool,
    pub file: FileId,
    pub end: u64,
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub tailer: Tailer,
    pub opts: TailerOptions,
}

impl Harness {
    pub fn new(read_from_head: bool) -> Harness {
        Self::with(|o| o.read_from_head = read_from_head)
    }

    pub fn with(f: impl FnOnce(&mut TailerOptions)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut opts = TailerOptions {
            roots: vec![Root {
                dir: dir.path().to_path_buf(),
                max_depth: 3,
            }],
            rotate_wait: Duration::ZERO,
            ..TailerOptions::default()
        };
        f(&mut opts);
        let tailer = Self::open(state.path(), &opts);
        Harness {
            dir,
            state,
            tailer,
            opts,
        }
    }

    fn open(state: &Path, opts: &TailerOptions) -> Tailer {
        let cp = Arc::new(Checkpointer::open(state).unwrap());
        Tailer::new(opts.clone(), Arc::new(KubeletLayout), cp)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Scans, then reads until nothing is left; acknowledges what was read when `ack`.
    pub fn read(&mut self, ack: bool) -> Vec<Got> {
        self.tailer.scan();
        let mut got = Vec::new();
        loop {
            let n = self.tailer.poll(1 << 20, |info, line| {
                got.push(Got {
                    family: info.family.to_path_buf(),
                    text: line.bytes.to_vec(),
                    first: line.first,
                    last: line.last,
                    file: info.id,
                    end: line.end,
                })
            });
            if n == 0 {
                // A second round lets files at EOF be closed (and their last line flushed).
                let before = got.len();
                self.tailer.poll(1 << 20, |info, line| {
                    got.push(Got {
                        family: info.family.to_path_buf(),
                        text: line.bytes.to_vec(),
                        first: line.first,
                        last: line.last,
                        file: info.id,
                        end: line.end,
                    })
                });
                if got.len() == before {
                    break;
                }
            }
        }
        self.tailer.take_closed();
        if ack {
            // Like the agent: only whole lines are acknowledged, never the middle of one.
            let pos: Vec<Position> = got
                .iter()
                .filter(|g| g.last)
                .map(|g| Position {
                    file: g.file,
                    offset: g.end,
                })
                .collect();
            self.tailer.checkpointer().ack(&pos);
            self.tailer.checkpointer().persist().unwrap();
        }
        got
    }

    /// Simulates kill -9 and a new process: drops the tailer without persisting anything more.
    pub fn restart(&mut self) {
        self.tailer = Self::open(self.state.path(), &self.opts);
    }

    /// Starts afresh as if this node's first start had been at `ms` (no scan since): the
    /// checkpoint file, in its documented format, is all the tailer knows of it.
    pub fn pretend_first_start_at(&mut self, ms: i64) {
        let doc = serde_json::json!({"version": 1, "written_at_ms": ms, "last_scan_ms": 0,
            "first_start_ms": ms, "next_id": 1, "files": []});
        std::fs::write(
            self.state.path().join("tailer-checkpoints.json"),
            doc.to_string(),
        )
        .unwrap();
        self.restart();
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn texts(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| String::from_utf8_lossy(&g.text).into_owned())
        .collect()
}

pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub fn gzip(from: &Path, to: &Path) {
    use std::io::Write;
    let body = std::fs::read(from).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&body).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(from).unwrap();
}
