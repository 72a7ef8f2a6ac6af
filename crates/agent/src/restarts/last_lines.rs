//! The last lines of a container instance's log file, as its log events were made: CRI `P`
//! chunks and Docker's 16 KiB splits joined per stream, then stack traces joined when the
//! container's logs are ([`crate::logs::pipeline::log_policy`]) — the log pipeline's parsers
//! ([`crate::logs::format`]) and joiner ([`crate::logs::multiline`]), run over the file's tail.
//!
//! The file is read from its end, in a window that doubles until it holds enough whole records
//! (at most [`Limits::read_bytes`]). A record whose beginning may lie before the window — the
//! first line of each stream (its earlier `P` chunks may be cut off) and the first stack trace
//! (its head may be) — makes the window grow when it is among the newest, until an earlier line
//! of its stream (or the file's start) shows where it begins. When the file
//! holds fewer records than asked (the kubelet rotated it shortly before the instance ended),
//! the newest uncompressed rotation `N.log.<stamp>` is read for the rest.
//!
//! Paths are opened as the tailer opens them (issue 15, item 7): symlinks resolved under
//! `host_root` and followed only inside the log directories, the real path opened with
//! `O_NOFOLLOW`, the descriptor's path checked again.

use crate::logs::format::{Stream, parse_container_line};
use crate::logs::multiline::{Joiner, Language};
use crate::logs::pipeline::MAX_PIECE_BYTES;
use kinsight_tailer::discover::{Confine, resolve_path};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How much of a file is read and kept.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Records kept (the newest).
    pub lines: usize,
    /// A longer record is cut (at a character boundary) and ends with `…`.
    pub line_bytes: usize,
    /// The kept records' text in all: older records are left out beyond it (the event must stay
    /// well under the 256 KiB event limit).
    pub total_bytes: usize,
    /// The most of one file read to find them.
    pub read_bytes: u64,
}

/// What ContainerRestart events carry: 50 records of at most 16 KiB, 128 KiB in all, found in
/// the last 8 MiB of the file.
pub const LIMITS: Limits = Limits {
    lines: 50,
    line_bytes: 16 * 1024,
    total_bytes: 128 * 1024,
    read_bytes: 8 << 20,
};

/// Why a file's lines could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LastLinesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}; not read")]
    Refused { path: PathBuf, why: String },
}

/// The newest records of the log file `path` (a live `N.log`), oldest first; `Ok(None)` when
/// the file does not exist.
pub fn last_lines(
    confine: &Confine,
    path: &Path,
    multiline: Option<Language>,
    limits: &Limits,
) -> Result<Option<Vec<String>>, LastLinesError> {
    let Some(file) = open(confine, path)? else {
        return Ok(None);
    };
    let io = |source| LastLinesError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (mut records, whole) =
        tail_records(&file, multiline, limits.lines, limits.read_bytes).map_err(io)?;
    if whole && records.len() < limits.lines {
        if let Some(rotated) = newest_rotation(path) {
            if let Some(f) = open(confine, &rotated)? {
                let want = limits.lines - records.len();
                let (mut older, _) =
                    tail_records(&f, multiline, want, limits.read_bytes).map_err(|source| {
                        LastLinesError::Io {
                            path: rotated.clone(),
                            source,
                        }
                    })?;
                older.append(&mut records);
                records = older;
            }
        }
    }
    Ok(Some(bounded(records, limits)))
}

/// Opens `path` confined to the log directories; `None` when it does not exist.
fn open(confine: &Confine, path: &Path) -> Result<Option<File>, LastLinesError> {
    let refused = |why: String| LastLinesError::Refused {
        path: path.to_path_buf(),
        why,
    };
    let (real, meta) = match resolve_path(&confine.base, path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LastLinesError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    if !confine.allows(&real) {
        return Err(refused(format!(
            "it leads to {}, outside the log directories",
            real.display()
        )));
    }
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    let file = match Confine::open(&real) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LastLinesError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    confine.check_fd(&file).map_err(refused)?;
    Ok(Some(file))
}

/// The kubelet's newest uncompressed rotation of `live` (`N.log.<YYYYMMDD-hhmmss>`: the names
/// sort by time).
fn newest_rotation(live: &Path) -> Option<PathBuf> {
    let dir = live.parent()?;
    let prefix = format!("{}.", live.file_name()?.to_str()?);
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix) && !n.ends_with(".gz") && !n.ends_with(".tmp"))
        .max()
        .map(|n| dir.join(n))
}

/// The newest `want` whole records of `file`, and whether the file was read from its start.
fn tail_records(
    file: &File,
    multiline: Option<Language>,
    want: usize,
    read_bytes: u64,
) -> std::io::Result<(Vec<String>, bool)> {
    let len = file.metadata()?.len();
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0u8; (len - start) as usize];
        file.read_exact_at(&mut buf, start)?;
        let whole = start == 0;
        let mut records = records(&buf, whole, multiline);
        records.drain(..records.len().saturating_sub(want));
        let enough = records.len() == want && records.iter().all(|r| r.sure);
        // At the limit, a record that may have been cut is kept: a stderr line seen once in
        // megabytes is more likely whole than not, and the most telling.
        if whole || enough || window >= read_bytes {
            return Ok((records.into_iter().map(|r| r.text).collect(), whole));
        }
        window = (window * 2).min(read_bytes);
    }
}

/// A record, and whether it surely begins where it seems to (not cut off by the window).
struct Record {
    text: String,
    sure: bool,
}

/// A line being joined from chunks of one stream.
struct Partial {
    text: Vec<u8>,
    sure: bool,
}

/// Records of `buf`, in the order the log pipeline would emit them. Unless `whole`, `buf`
/// starts inside the file: its first (partial) physical line is skipped.
fn records(buf: &[u8], whole: bool, multiline: Option<Language>) -> Vec<Record> {
    let mut body = buf;
    if !whole {
        match memchr::memchr(b'\n', body) {
            Some(i) => body = &body[i + 1..],
            None => return Vec::new(),
        }
    }
    let mut out = Vec::new();
    let mut partial: [Option<Partial>; 2] = [None, None];
    // Whether a line of each stream has ended in the window: after that, the stream's lines
    // begin where they seem to.
    let mut stream_sure = [whole, whole];
    let mut joiner: Option<Joiner<bool>> = multiline.map(|l| Joiner::new(l, MAX_PIECE_BYTES));
    let mut joined_any = whole;
    let mut emit = |text: Vec<u8>, sure: bool, out: &mut Vec<Record>| {
        let text = String::from_utf8_lossy(&text).into_owned();
        match joiner.as_mut() {
            Some(j) => {
                // The first joined record may be the tail of a stack trace the window cut.
                let sure = sure && joined_any;
                joined_any = true;
                if let Some(done) = j.push(sure, &text) {
                    out.push(Record {
                        text: done.text,
                        sure: done.meta,
                    });
                }
            }
            None => out.push(Record { text, sure }),
        }
    };
    // The last line ends with a newline, unless the instance died in the middle of writing it.
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    let lines = (!body.is_empty()).then(|| body.split(|b| *b == b'\n'));
    for line in lines.into_iter().flatten() {
        let p = parse_container_line(line);
        let s = match p.stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        let chunk = partial[s].get_or_insert_with(|| Partial {
            text: Vec::new(),
            sure: stream_sure[s],
        });
        if chunk.text.len() < MAX_PIECE_BYTES {
            chunk.text.extend_from_slice(&p.text);
        }
        if !p.partial {
            let done = partial[s].take().expect("set above");
            stream_sure[s] = true;
            emit(done.text, done.sure, &mut out);
        }
    }
    // A line whose final chunk never came (the instance died mid-line), as the pipeline emits
    // it when the file closes.
    let mut held: Vec<Partial> = partial.into_iter().flatten().collect();
    held.retain(|p| !p.text.is_empty());
    for p in held {
        emit(p.text, p.sure, &mut out);
    }
    if let Some(done) = joiner.as_mut().and_then(Joiner::take) {
        out.push(Record {
            text: done.text,
            sure: done.meta,
        });
    }
    out
}

/// Each record cut to `line_bytes`, then the oldest left out beyond `total_bytes`.
fn bounded(records: Vec<String>, limits: &Limits) -> Vec<String> {
    let mut out: Vec<String> = records
        .into_iter()
        .map(|mut r| {
            if r.len() > limits.line_bytes {
                let mut cut = limits.line_bytes;
                while !r.is_char_boundary(cut) {
                    cut -= 1;
                }
                r.truncate(cut);
                r.push('…');
            }
            r
        })
        .collect();
    let mut total = 0;
    let mut keep = out.len();
    for (i, r) in out.iter().enumerate().rev() {
        if total + r.len() > limits.total_bytes {
            break;
        }
        total += r.len();
        keep = i;
    }
    out.drain(..keep);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn cri(stream: &str, tag: &str, text: &str) -> String {
        format!(
            "2026-11-28T02:03:{:02}.000000000Z {stream} {tag} {text}\n",
            1
        )
    }

    fn setup() -> (tempfile::TempDir, Confine, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("var/log/pods/shop_orders-1_u1/app");
        fs::create_dir_all(&dir).unwrap();
        let confine = Confine::new(root.path(), &[root.path().join("var/log")]);
        (root, confine, dir.join("0.log"))
    }

    fn read(confine: &Confine, path: &Path, lang: Option<Language>, l: &Limits) -> Vec<String> {
        last_lines(confine, path, lang, l).unwrap().unwrap()
    }

    #[test]
    fn chunks_and_stack_traces_are_joined_as_the_pipeline_joins_them() {
        let (_root, confine, path) = setup();
        let mut text = String::new();
        text += &cri("stdout", "F", "starting");
        text += &cri("stdout", "P", "a long ");
        text += &cri("stderr", "F", "warning in between");
        text += &cri("stdout", "F", "line in two chunks");
        text += &cri(
            "stderr",
            "F",
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
        );
        text += &cri("stderr", "F", "\tat com.example.Cache.put(Cache.java:42)");
        text += &cri("stderr", "F", "\tat com.example.Main.main(Main.java:7)");
        fs::write(&path, &text).unwrap();
        let got = read(&confine, &path, Some(Language::Java), &LIMITS);
        assert_eq!(
            got,
            [
                "starting",
                "warning in between",
                "a long line in two chunks",
                "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n\tat com.example.Cache.put(Cache.java:42)\n\tat com.example.Main.main(Main.java:7)",
            ]
        );
        // Without stack-trace joining, every line is a record.
        assert_eq!(read(&confine, &path, None, &LIMITS).len(), 6);
    }

    #[test]
    fn docker_json_lines_and_a_last_line_without_its_end() {
        let (_root, confine, path) = setup();
        fs::write(
            &path,
            concat!(
                "{\"log\":\"one\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-28T02:03:01.5Z\"}\n",
                "{\"log\":\"split \",\"stream\":\"stdout\",\"time\":\"2026-11-28T02:03:01.6Z\"}\n",
                "{\"log\":\"line\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-28T02:03:01.6Z\"}\n",
            ),
        )
        .unwrap();
        assert_eq!(read(&confine, &path, None, &LIMITS), ["one", "split line"]);
        // The instance died after a `P` chunk: the chunk is a record, as when the pipeline
        // closes the file.
        fs::write(
            &path,
            cri("stdout", "F", "last whole") + &cri("stdout", "P", "cut off"),
        )
        .unwrap();
        assert_eq!(
            read(&confine, &path, None, &LIMITS),
            ["last whole", "cut off"]
        );
        fs::write(&path, "").unwrap();
        assert!(read(&confine, &path, None, &LIMITS).is_empty());
        assert!(
            last_lines(&confine, &path.with_file_name("7.log"), None, &LIMITS)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_newest_lines_of_a_long_file_and_nothing_cut_by_the_window() {
        let (_root, confine, path) = setup();
        let mut text = String::new();
        for i in 0..20_000 {
            text += &cri("stdout", "F", &format!("line {i:05} {}", "x".repeat(40)));
        }
        // A stack trace near the end, and a line in chunks across many reads.
        text += &cri("stderr", "F", "Exception: boom");
        text += &cri("stderr", "F", "\tat a.b(C.java:1)");
        fs::write(&path, &text).unwrap();
        let got = read(&confine, &path, Some(Language::Java), &LIMITS);
        assert_eq!(got.len(), 50);
        assert_eq!(got[48], format!("line 19999 {}", "x".repeat(40)));
        assert_eq!(got[49], "Exception: boom\n\tat a.b(C.java:1)");
        assert_eq!(got[0], format!("line 19951 {}", "x".repeat(40)));
        // A window that starts inside a line never shows its tail as a record.
        let small = Limits {
            lines: 1000,
            read_bytes: 64 * 1024,
            ..LIMITS
        };
        let got = read(&confine, &path, None, &small);
        assert!(got.len() > 500 && got.len() < 1000);
        assert!(got.iter().all(|l| l.starts_with("line ")
            || l.starts_with("Exception")
            || l.starts_with("\tat")));
        assert!(got[..got.len() - 2].iter().all(|l| l.len() == 51));
    }

    #[test]
    fn a_line_in_chunks_across_the_window_start_is_read_whole() {
        let (_root, confine, path) = setup();
        let mut text = String::new();
        for i in 0..2000 {
            text += &cri("stdout", "F", &format!("filler {i}"));
        }
        // 100 KiB in 1 KiB chunks: the first 64 KiB window starts among them.
        text += &cri("stdout", "P", &format!("BEGIN{}", "a".repeat(1019)));
        for _ in 0..98 {
            text += &cri("stdout", "P", &"b".repeat(1024));
        }
        text += &cri("stdout", "F", "END");
        for i in 0..49 {
            text += &cri("stdout", "F", &format!("after {i}"));
        }
        fs::write(&path, &text).unwrap();
        let got = read(&confine, &path, None, &LIMITS);
        assert_eq!(got.len(), 50);
        assert!(
            got[0].starts_with("BEGINaaa") && got[0].ends_with('…'),
            "{}",
            &got[0][..20]
        );
        assert_eq!(got[49], "after 48");
    }

    #[test]
    fn lines_are_cut_and_the_total_bounded() {
        let (_root, confine, path) = setup();
        let mut text = String::new();
        for i in 0..10 {
            text += &cri("stdout", "F", &format!("{i}{}", "é".repeat(20_000)));
        }
        fs::write(&path, &text).unwrap();
        let l = Limits {
            total_bytes: 3 * (16 * 1024 + 3),
            ..LIMITS
        };
        let got = read(&confine, &path, None, &l);
        assert_eq!(got.len(), 3, "the newest three fit");
        assert!(got[2].starts_with('9') && got[2].ends_with('…'));
        assert!(got[2].len() <= 16 * 1024 + '…'.len_utf8());
    }

    #[test]
    fn a_short_file_is_completed_from_its_rotation() {
        let (_root, confine, path) = setup();
        let dir = path.parent().unwrap();
        fs::write(
            dir.join("0.log.20261128-020000"),
            cri("stdout", "F", "rotated 1") + &cri("stdout", "F", "rotated 2"),
        )
        .unwrap();
        fs::write(dir.join("0.log.20261128-010000.gz"), b"\x1f\x8b not read").unwrap();
        fs::write(&path, cri("stdout", "F", "live")).unwrap();
        assert_eq!(
            read(&confine, &path, None, &LIMITS),
            ["rotated 1", "rotated 2", "live"]
        );
    }

    #[test]
    fn a_link_out_of_the_log_directories_is_refused() {
        let (root, confine, path) = setup();
        fs::write(root.path().join("secret"), "root:x:0:0\n").unwrap();
        std::os::unix::fs::symlink("/secret", &path).unwrap();
        let err = last_lines(&confine, &path, None, &LIMITS).unwrap_err();
        assert!(
            matches!(err, LastLinesError::Refused { .. }),
            "{err}: the link resolves under the host root, outside /var/log"
        );
        // A link inside the log directories (cri-dockerd's) is followed.
        let inside = root.path().join("var/log/elsewhere.log");
        fs::write(&inside, cri("stdout", "F", "followed")).unwrap();
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/var/log/elsewhere.log", &path).unwrap();
        assert_eq!(read(&confine, &path, None, &LIMITS), ["followed"]);
    }
}
