//! Model-based property test (after Vector's file watcher tests): random sequences of writes,
//! rotations (kubelet rename, compression, copytruncate), truncations, deletions, reads with and
//! without acknowledgement, and crash-restarts, run against real files and against a simple
//! model of what must come out.
//!
//! The model knows, for every line written, whether it may be lost (only by a plain truncation
//! or a deletion of something the tailer never had open — the data is gone from disk) and how
//! often it may be delivered (once, plus once per crash while it was delivered but not
//! acknowledged). Pieces of long lines are re-joined like the agent does.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Action {
    Write { pad: usize, count: usize },
    Rotate,
    Compress,
    CopyTruncate,
    Truncate,
    Delete,
    Read { ack: bool },
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0usize..300, 1usize..4).prop_map(|(pad, count)| Action::Write { pad, count }),
        2 => Just(Action::Rotate),
        1 => Just(Action::Compress),
        1 => Just(Action::CopyTruncate),
        1 => Just(Action::Truncate),
        1 => Just(Action::Delete),
        4 => any::<bool>().prop_map(|ack| Action::Read { ack }),
        1 => Just(Action::Restart),
    ]
}

#[derive(Debug, Default)]
struct Line {
    may_lose: bool,
    allowed: u32,
    delivered: u32,
    /// Delivered by a read that was not acknowledged: (file, end offset). A later acknowledged
    /// read of the same file past that offset acknowledges it too (offsets are positional).
    unacked: Option<(FileId, u64)>,
}

#[derive(Debug)]
struct MFile {
    seqs: Vec<u64>,
    /// Number of `seqs` the tailer has had the chance to read.
    read_upto: usize,
    /// The tailer holds it open (it was there at the last read, and no restart since).
    opened: bool,
}

struct Model {
    lines: HashMap<u64, Line>,
    live: Option<MFile>,
    next_seq: u64,
    rotations: u32,
    plain_rotated: Vec<std::path::PathBuf>,
    /// Unread lines of deleted files the tailer holds open.
    deleted_unread: Vec<u64>,
}

fn run(actions: Vec<Action>) -> Result<(), TestCaseError> {
    let mut h = Harness::with(|o| {
        o.read_from_head = true;
        o.max_line_bytes = 100;
        o.read_chunk_bytes = 4096;
    });
    let live_path = h.path("0.log");
    let mut m = Model {
        lines: HashMap::new(),
        live: None,
        next_seq: 0,
        rotations: 0,
        plain_rotated: Vec::new(),
        deleted_unread: Vec::new(),
    };
    let mut pending: HashMap<FileId, Vec<u8>> = HashMap::new();
    let mut deliver = |m: &mut Model, got: Vec<Got>, ack: bool| -> Result<(), TestCaseError> {
        let mut last_seq: HashMap<FileId, u64> = HashMap::new();
        let mut acked_to: HashMap<FileId, u64> = HashMap::new();
        for g in got {
            let buf = pending.entry(g.file).or_default();
            if g.first {
                prop_assert!(buf.is_empty(), "a line started before the previous ended");
            }
            buf.extend_from_slice(&g.text);
            if !g.last {
                continue;
            }
            let text = String::from_utf8(std::mem::take(buf)).unwrap();
            let seq: u64 = text.get(1..9).unwrap_or("").parse().map_err(|_| {
                TestCaseError::fail(format!("delivered text was never written: {text:?}"))
            })?;
            let l = m
                .lines
                .get_mut(&seq)
                .ok_or_else(|| TestCaseError::fail(format!("unknown seq {seq}")))?;
            l.delivered += 1;
            l.unacked = (!ack).then_some((g.file, g.end));
            if ack {
                let e = acked_to.entry(g.file).or_insert(0);
                *e = (*e).max(g.end);
            }
            if let Some(prev) = last_seq.insert(g.file, seq) {
                prop_assert!(
                    prev < seq,
                    "out of order within one file: {prev} then {seq}"
                );
            }
        }
        for l in m.lines.values_mut() {
            if let Some((f, end)) = l.unacked
                && acked_to.get(&f).is_some_and(|a| *a >= end)
            {
                l.unacked = None;
            }
        }
        Ok(())
    };

    for a in actions {
        match a {
            Action::Write { pad, count } => {
                let f = m.live.get_or_insert_with(|| MFile {
                    seqs: Vec::new(),
                    read_upto: 0,
                    opened: false,
                });
                let mut text = String::new();
                for _ in 0..count {
                    let seq = m.next_seq;
                    m.next_seq += 1;
                    text.push_str(&format!("L{seq:08}-{}\n", "x".repeat(pad)));
                    f.seqs.push(seq);
                    m.lines.insert(
                        seq,
                        Line {
                            allowed: 1,
                            ..Line::default()
                        },
                    );
                }
                append(&live_path, &text);
            }
            Action::Rotate => {
                if m.live.take().is_some() {
                    m.rotations += 1;
                    let to = h.path(&format!("0.log.{:04}", m.rotations));
                    std::fs::rename(&live_path, &to).unwrap();
                    m.plain_rotated.push(to);
                }
            }
            Action::Compress => {
                if !m.plain_rotated.is_empty() {
                    let from = m.plain_rotated.remove(0);
                    let mut to = from.clone().into_os_string();
                    to.push(".gz");
                    gzip(&from, std::path::Path::new(&to));
                }
            }
            Action::CopyTruncate => {
                if m.live.is_some() {
                    m.rotations += 1;
                    let to = h.path(&format!("0.log.{:04}", m.rotations));
                    std::fs::copy(&live_path, &to).unwrap();
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&live_path)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                    m.plain_rotated.push(to);
                    // The content lives on in the copy; the live file starts afresh.
                    let old = m.live.take().unwrap();
                    m.live = Some(MFile {
                        seqs: Vec::new(),
                        read_upto: 0,
                        opened: old.opened,
                    });
                }
            }
            Action::Truncate => {
                if let Some(f) = m.live.as_mut() {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&live_path)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                    for s in &f.seqs[f.read_upto..] {
                        m.lines.get_mut(s).unwrap().may_lose = true;
                    }
                    f.seqs.clear();
                    f.read_upto = 0;
                }
            }
            Action::Delete => {
                if let Some(f) = m.live.take() {
                    std::fs::remove_file(&live_path).unwrap();
                    if !f.opened {
                        for s in &f.seqs[f.read_upto..] {
                            m.lines.get_mut(s).unwrap().may_lose = true;
                        }
                    }
                    // An open deleted file is read to its end at the next read; a crash before
                    // that loses its unread lines (they are gone from disk).
                    if f.opened {
                        m.deleted_unread.extend_from_slice(&f.seqs[f.read_upto..]);
                    }
                }
            }
            Action::Read { ack } => {
                let got = h.read(ack);
                deliver(&mut m, got, ack)?;
                m.deleted_unread.clear();
                if let Some(f) = m.live.as_mut() {
                    f.read_upto = f.seqs.len();
                    f.opened = true;
                }
            }
            Action::Restart => {
                h.restart();
                for l in m.lines.values_mut() {
                    if l.unacked.take().is_some() {
                        l.allowed += 1;
                    }
                }
                for s in std::mem::take(&mut m.deleted_unread) {
                    m.lines.get_mut(&s).unwrap().may_lose = true;
                }
                if let Some(f) = m.live.as_mut() {
                    f.opened = false;
                }
            }
        }
    }
    for _ in 0..2 {
        let got = h.read(true);
        deliver(&mut m, got, true)?;
    }
    for (seq, l) in &m.lines {
        prop_assert!(
            l.delivered <= l.allowed,
            "line {seq} delivered {} times, allowed {}",
            l.delivered,
            l.allowed
        );
        if !l.may_lose {
            prop_assert!(l.delivered >= 1, "line {seq} lost");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
    #[test]
    fn tailer_matches_the_model(actions in proptest::collection::vec(action(), 1..40)) {
        run(actions)?;
    }
}
