//! From tailer lines to batches of events: parse (CRI, Docker), join partial lines and stack
//! traces, route to the application/host/dataplane group and stream, enrich with pod
//! metadata, filter, rate-limit, serialise. Synchronous; one per tailer thread.
//!
//! Offsets: every file has a *committed* offset — everything before it is in an event of the
//! current or an earlier batch, or was dropped on purpose. Data held back (a `P` chunk waiting
//! for its `F`, a stack trace being assembled, the pieces of an over-long line) keeps the
//! committed offset at its start, so a crash re-reads it whole. Each batch carries the committed
//! offsets at the moment it was cut; they are acknowledged when the sink has the batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinsight_model::LogEvent;
use kinsight_model::config::{AgentConfig, LogsSettings};
use kinsight_model::limits::EVENT_OVERHEAD_BYTES;
use kinsight_tailer::{FileId, FileInfo, Line, Position};

use super::format::{LineFormat, Stream, parse_container_line, parse_rfc3339_ms};
use super::layout::{ContainerRef, LogSource, NodeLayout};
use super::metadata::{PodCache, PodMeta};
use super::multiline::{Joiner, Language};
use super::ratelimit::RateLimiter;
use super::record::{AppLine, application_record, fields_record, push_json_str, push_key};
use super::stats::LogStats;

/// Pod annotation that excludes a pod's logs.
pub const EXCLUDE_ANNOTATION: &str = "kinsight.io/exclude";
/// Pod annotation that turns stack-trace joining on (`java`, `python`, `go`, `node`, `auto`) or
/// off (`false`).
pub const MULTILINE_ANNOTATION: &str = "kinsight.io/multiline";
/// Pods whose logs go to the dataplane group (reference §3.1).
pub const DATAPLANE_POD_PREFIXES: &[&str] = &["kube-proxy", "aws-node"];
/// Largest `log` text of one event; longer lines become several events with `_p: "P"`. Leaves
/// room for the rest of the record within the 256 KiB event limit.
pub const MAX_PIECE_BYTES: usize = 240 * 1024;
/// A stack trace with no new line for this long is complete.
pub const MULTILINE_FLUSH: Duration = Duration::from_secs(1);
/// A `P` chunk whose `F` never comes (runtime died) is emitted after this long.
pub const PARTIAL_FLUSH: Duration = Duration::from_secs(5);

/// A batch ready for the sink, with what to acknowledge once the sink has it.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<LogEvent>,
    pub positions: Vec<Position>,
    /// journald cursor reached by this batch.
    pub journal_cursor: Option<String>,
    pub bytes: usize,
    pub lines: u64,
}

/// Where one file's events go and what they carry.
#[derive(Debug)]
struct Route {
    group: String,
    stream: String,
    kind: RouteKind,
    excluded: bool,
    multiline: Option<Language>,
    /// Rate-limit bucket.
    key: Arc<str>,
    /// Metadata generation this route was resolved with; `None` when it does not depend on it.
    generation: Option<u64>,
}

#[derive(Debug)]
enum RouteKind {
    /// `"kubernetes": {...}` serialised once per file.
    Container {
        kubernetes: String,
    },
    Host {
        file: String,
    },
    Unknown,
}

#[derive(Debug, Clone)]
struct LineMeta {
    time: String,
    time_ms: Option<i64>,
    stream: Stream,
    start: u64,
}

/// A line being assembled from `P` chunks or tailer pieces.
#[derive(Debug)]
struct Partial {
    meta: LineMeta,
    text: Vec<u8>,
    pieces_emitted: u32,
    since: Instant,
    /// The rate limit's answer for this line, asked when its first piece went out: the pieces
    /// of an over-long line pass or are dropped together.
    admitted: Option<bool>,
}

/// Whether an event may pass the per-container rate limit. A line counts once, however many
/// events its pieces make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// A whole line (or joined stack trace): ask the limiter.
    Ask,
    /// The line's first piece was let through.
    Admitted,
    /// The line's first piece was dropped (and counted).
    Dropped,
}

impl Admission {
    fn of(decided: Option<bool>) -> Admission {
        match decided {
            None => Admission::Ask,
            Some(true) => Admission::Admitted,
            Some(false) => Admission::Dropped,
        }
    }
}

struct FileState {
    route: Arc<Route>,
    /// Lines being joined, one per stream: the runtime interleaves the streams' lines, so a
    /// stderr line can arrive between the `P` chunks of a stdout line.
    partial: [Option<Partial>; 2],
    /// Stream of the physical line whose first piece came last (a tailer piece that does not
    /// start a line continues it).
    current: Stream,
    joiner: Option<Joiner<LineMeta>>,
    joiner_touched: Instant,
    committed: u64,
    /// End of the last line seen.
    last_end: u64,
    /// Re-resolve the route at the next line.
    stale: bool,
}

impl FileState {
    fn held_from(&self) -> Option<u64> {
        self.partial
            .iter()
            .flatten()
            .map(|p| p.meta.start)
            .chain(
                self.joiner
                    .as_ref()
                    .and_then(|j| j.pending())
                    .map(|p| p.meta.start),
            )
            .min()
    }

    fn nothing_partial(&self) -> bool {
        self.partial.iter().all(Option::is_none)
    }
}

fn slot(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// Static settings of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub node_name: String,
    pub application_group: String,
    pub host_group: String,
    pub dataplane_group: String,
    pub logs: LogsSettings,
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
}

impl PipelineSettings {
    pub fn from_config(cfg: &AgentConfig) -> PipelineSettings {
        let g = cfg.log_groups();
        PipelineSettings {
            node_name: cfg.host_name.clone(),
            application_group: g.application(),
            host_group: g.host(),
            dataplane_group: g.dataplane(),
            logs: cfg.kinsight.logs.clone(),
            batch_max_events: cfg.kinsight.batch_max_events,
            batch_max_bytes: cfg.kinsight.batch_max_bytes,
        }
    }
}

/// The per-line pipeline.
pub struct Pipeline {
    s: PipelineSettings,
    layout: NodeLayout,
    pub pods: PodCache,
    container_ids: HashMap<PathBuf, String>,
    files: HashMap<FileId, FileState>,
    limiter: RateLimiter,
    batch: Batch,
    batch_started: Option<Instant>,
    dirty: HashMap<FileId, u64>,
    scratch: String,
    stats: Arc<LogStats>,
    /// When podman's state was last read for an unknown container.
    runtime_looked: Option<Instant>,
    /// The rate limit's clock (tests stop it).
    clock: fn() -> Instant,
}

impl Pipeline {
    pub fn new(s: PipelineSettings, layout: NodeLayout, stats: Arc<LogStats>) -> Pipeline {
        Pipeline {
            pods: PodCache::new(Duration::from_secs(s.logs.metadata_retention_seconds)),
            limiter: RateLimiter::new(s.logs.rate_limit_lines_per_second),
            s,
            layout,
            container_ids: HashMap::new(),
            files: HashMap::new(),
            batch: Batch::default(),
            batch_started: None,
            dirty: HashMap::new(),
            scratch: String::with_capacity(1024),
            stats,
            runtime_looked: None,
            clock: Instant::now,
        }
    }

    /// Re-reads the `/var/log/containers` symlinks (container ids for stream names).
    pub fn refresh_container_ids(&mut self) {
        let ids = self.layout.container_ids();
        if ids != self.container_ids {
            self.container_ids = ids;
            // Routes of files whose id was unknown are re-resolved on their next line.
            for st in self.files.values_mut() {
                st.stale = matches!(st.route.kind, RouteKind::Container { .. });
            }
        }
    }

    /// Rate-limit drops so far for a container (`namespace/pod/container`).
    pub fn rate_limited(&self, key: &str) -> u64 {
        self.limiter.dropped(key)
    }

    fn resolve(&self, info: &FileInfo) -> Route {
        let node = &self.s.node_name;
        match self.layout.source(&info.family) {
            Some(LogSource::Container(c)) => self.container_route(info, &c),
            Some(LogSource::Runtime { id }) => {
                // The pod feed (runtime containers presented as pods) names the container;
                // until it does, the id stands in and the route is redone when it arrives.
                let c = match self.pods.find_container(&id) {
                    Some((pod, name)) => ContainerRef {
                        namespace: pod.namespace.clone(),
                        pod: pod.name.clone(),
                        pod_uid: pod.uid.clone(),
                        container: name.to_string(),
                        restart: 0,
                    },
                    None => ContainerRef {
                        namespace: "unknown".into(),
                        pod: id[..12].to_string(),
                        pod_uid: id.clone(),
                        container: id[..12].to_string(),
                        restart: 0,
                    },
                };
                self.container_route(info, &c)
            }
            Some(LogSource::Host { file, stream }) => Route {
                group: self.s.host_group.clone(),
                stream: format!("{node}.host.{stream}"),
                kind: RouteKind::Host { file },
                excluded: false,
                multiline: None,
                key: Arc::from(format!("host/{stream}")),
                generation: None,
            },
            None => Route {
                group: self.s.host_group.clone(),
                stream: format!("{node}.host.other"),
                kind: RouteKind::Unknown,
                excluded: false,
                multiline: None,
                key: Arc::from("host/other"),
                generation: None,
            },
        }
    }

    fn container_route(&self, info: &FileInfo, c: &ContainerRef) -> Route {
        let node = &self.s.node_name;
        let meta = self.pods.get(&c.pod_uid);
        let id = self
            .container_ids
            .get(&*info.family)
            .map(String::as_str)
            .or_else(|| meta.and_then(|m| m.container_id_for(&c.container, c.restart)));
        // Fluent Bit's tag: the /var/log/containers file name (reference §3.2).
        let file_name = match id {
            Some(id) => format!("{}_{}_{}-{id}.log", c.pod, c.namespace, c.container),
            None => format!(
                "{}_{}_{}-{}.log",
                c.pod, c.namespace, c.container, c.restart
            ),
        };
        let dataplane = DATAPLANE_POD_PREFIXES.iter().any(|p| c.pod.starts_with(p));
        let (group, stream) = if dataplane {
            (
                self.s.dataplane_group.clone(),
                format!("{node}-dataplane.tail.var.log.containers.{file_name}"),
            )
        } else {
            (
                self.s.application_group.clone(),
                format!("{node}-application.var.log.containers.{file_name}"),
            )
        };
        let l = &self.s.logs;
        let (excluded, multiline) =
            log_policy(l, &c.namespace, &c.pod, &c.container, meta.map(|m| &**m));
        Route {
            group,
            stream,
            kind: RouteKind::Container {
                kubernetes: kubernetes_json(c, meta.map(|m| &**m), id, node, l),
            },
            excluded,
            multiline,
            key: Arc::from(format!("{}/{}/{}", c.namespace, c.pod, c.container)),
            generation: Some(self.pods.generation()),
        }
    }

    /// A podman container's log can appear before the next pod list names its container: read
    /// podman's state files right away so its first lines are enriched like the rest (at most
    /// once a second).
    fn learn_runtime_container(&mut self, info: &FileInfo) {
        let Some(LogSource::Runtime { id }) = self.layout.source(&info.family) else {
            return;
        };
        if self.pods.find_container(&id).is_some()
            || !info.family.starts_with(&self.layout.podman_dir)
        {
            return;
        }
        if self
            .runtime_looked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.runtime_looked = Some(Instant::now());
        match crate::runtime::podman_containers(&self.layout.host_root) {
            Ok(containers) if containers.iter().any(|c| c.id == id) => {
                let pods = crate::runtime::to_pods(&containers, &self.s.node_name);
                self.pods.update(&pods, Instant::now());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot read podman's state for container {id}: {e}"),
        }
    }

    fn state(&mut self, info: &FileInfo, start: u64) -> &mut FileState {
        let stale = match self.files.get(&info.id) {
            None => true,
            Some(st) => {
                st.stale
                    || st
                        .route
                        .generation
                        .is_some_and(|g| g != self.pods.generation())
            }
        };
        if stale {
            self.learn_runtime_container(info);
            let route = Arc::new(self.resolve(info));
            let multiline = route.multiline;
            let st = self.files.entry(info.id).or_insert_with(|| FileState {
                route: route.clone(),
                partial: [None, None],
                current: Stream::Stdout,
                joiner: None,
                joiner_touched: Instant::now(),
                committed: start,
                last_end: start,
                stale: false,
            });
            if st.joiner.is_none()
                && let Some(lang) = multiline
            {
                st.joiner = Some(Joiner::new(lang, MAX_PIECE_BYTES));
            }
            st.route = route;
            st.stale = false;
        }
        self.files.get_mut(&info.id).expect("inserted above")
    }

    /// Handles one line (or piece) from the tailer. Calls `ship` whenever a batch fills.
    pub fn on_line(&mut self, info: &FileInfo, line: Line<'_>, ship: &mut dyn FnMut(Batch)) {
        self.stats.add_lines_read(1);
        let id = info.id;
        let stats = self.stats.clone();
        let st = self.state(info, line.start);
        st.last_end = line.end;
        let route = st.route.clone();
        if route.excluded {
            stats.add_lines_excluded(1);
            if st.held_from().is_none() {
                st.committed = line.end;
                self.dirty.insert(id, line.end);
            }
            return;
        }
        // Fast path, by far the most common case: a whole line with nothing held for its file
        // is turned into an event straight from the tailer's buffer.
        let nothing_held = st.nothing_partial() && st.joiner.is_none();
        if line.first
            && line.last
            && nothing_held
            && matches!(route.kind, RouteKind::Container { .. })
        {
            let p = parse_container_line(line.bytes);
            if !p.partial {
                if p.format == LineFormat::Raw {
                    stats.add_unparsed(1);
                }
                let time = if p.format == LineFormat::Raw {
                    ""
                } else {
                    &p.time
                };
                let text = match std::str::from_utf8(&p.text) {
                    Ok(t) => std::borrow::Cow::Borrowed(t),
                    Err(_) => {
                        stats.add_invalid_utf8(1);
                        String::from_utf8_lossy(&p.text)
                    }
                };
                self.emit_fields(
                    &route,
                    time,
                    p.time_ms,
                    p.stream,
                    &text,
                    false,
                    Admission::Ask,
                    ship,
                );
                if let Some(st) = self.files.get_mut(&id) {
                    st.committed = line.end;
                }
                self.dirty.insert(id, line.end);
                self.maybe_ship_full(ship);
                return;
            }
        }
        // Parse. A piece that does not start a line continues the partial's metadata.
        let (meta, text, more) = if line.first {
            match &route.kind {
                RouteKind::Container { .. } => {
                    let p = parse_container_line(line.bytes);
                    let more = p.partial || !line.last;
                    if p.format == LineFormat::Raw {
                        stats.add_unparsed(1);
                    }
                    let time = match p.format {
                        LineFormat::Raw => String::new(),
                        _ => p.time.into_owned(),
                    };
                    (
                        LineMeta {
                            time,
                            time_ms: p.time_ms,
                            stream: p.stream,
                            start: line.start,
                        },
                        p.text,
                        more,
                    )
                }
                _ => {
                    // Host files: RFC 3339 at the start (rsyslog's default on Debian) dates
                    // the line; otherwise now.
                    let first = line.bytes.split(|b| *b == b' ').next().unwrap_or(&[]);
                    let time_ms = std::str::from_utf8(first).ok().and_then(parse_rfc3339_ms);
                    (
                        LineMeta {
                            time: String::new(),
                            time_ms,
                            stream: Stream::Stdout,
                            start: line.start,
                        },
                        std::borrow::Cow::Borrowed(line.bytes),
                        !line.last,
                    )
                }
            }
        } else {
            let meta = match &st.partial[slot(st.current)] {
                Some(p) => p.meta.clone(),
                None => LineMeta {
                    // The start of this line was handed out before a restart: the rest
                    // still counts.
                    time: String::new(),
                    time_ms: None,
                    stream: Stream::Stdout,
                    start: line.start,
                },
            };
            (meta, std::borrow::Cow::Borrowed(line.bytes), !line.last)
        };

        // Join CRI `P` chunks / Docker splits / tailer pieces, per stream.
        st.current = meta.stream;
        let slot = slot(meta.stream);
        let p = st.partial[slot].get_or_insert_with(|| Partial {
            meta,
            text: Vec::new(),
            pieces_emitted: 0,
            since: Instant::now(),
            admitted: None,
        });
        p.text.extend_from_slice(&text);
        p.since = Instant::now();
        let mut out: Vec<(LineMeta, Vec<u8>, bool, Option<bool>)> = Vec::new();
        if more {
            if p.text.len() >= MAX_PIECE_BYTES {
                // Over the event limit: emit what we have as a piece marked `_p: "P"`.
                let mut cut = MAX_PIECE_BYTES;
                while cut > 0 && cut < p.text.len() && (p.text[cut] & 0xC0) == 0x80 {
                    cut -= 1;
                }
                if cut == 0 {
                    cut = MAX_PIECE_BYTES;
                }
                let rest = p.text.split_off(cut);
                let piece = std::mem::replace(&mut p.text, rest);
                p.pieces_emitted += 1;
                out.push((p.meta.clone(), piece, true, p.admitted));
            }
        } else if let Some(p) = st.partial[slot].take() {
            out.push((p.meta, p.text, false, p.admitted));
        }
        for (meta, text, piece, decided) in out {
            let admission = match decided {
                None if piece => {
                    let admitted = self.admit(&route.key);
                    if let Some(p) = self
                        .files
                        .get_mut(&id)
                        .and_then(|st| st.partial[slot].as_mut())
                    {
                        p.admitted = Some(admitted);
                    }
                    Admission::of(Some(admitted))
                }
                decided => Admission::of(decided),
            };
            self.emit_line(id, meta, text, piece, admission, ship);
        }
        let st = self.files.get_mut(&id).expect("state exists");
        let committed = st.held_from().unwrap_or(line.end);
        if committed != st.committed {
            st.committed = committed;
            self.dirty.insert(id, committed);
        }
        self.maybe_ship_full(ship);
    }

    /// A whole line (or an over-limit piece) of file `id`: through multiline, then out. The
    /// pieces of an over-long line (and its last piece) bypass stack-trace joining.
    fn emit_line(
        &mut self,
        id: FileId,
        meta: LineMeta,
        text: Vec<u8>,
        piece: bool,
        admission: Admission,
        ship: &mut dyn FnMut(Batch),
    ) {
        let text = match String::from_utf8(text) {
            Ok(s) => s,
            Err(e) => {
                self.stats.add_invalid_utf8(1);
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        let st = self.files.get_mut(&id).expect("state exists");
        if !piece
            && admission == Admission::Ask
            && let Some(j) = st.joiner.as_mut()
        {
            st.joiner_touched = Instant::now();
            if let Some(done) = j.push(meta, &text) {
                self.emit_record(id, &done.meta, &done.text, false, Admission::Ask, ship);
            }
            return;
        }
        self.emit_record(id, &meta, &text, piece, admission, ship);
    }

    fn emit_record(
        &mut self,
        id: FileId,
        meta: &LineMeta,
        text: &str,
        piece: bool,
        admission: Admission,
        ship: &mut dyn FnMut(Batch),
    ) {
        let Some(st) = self.files.get(&id) else {
            return;
        };
        let route = st.route.clone();
        self.emit_fields(
            &route,
            &meta.time,
            meta.time_ms,
            meta.stream,
            text,
            piece,
            admission,
            ship,
        );
    }

    /// Asks the rate limit for one line of `key`; a drop is counted here, once per line.
    fn admit(&mut self, key: &Arc<str>) -> bool {
        if !self.limiter.enabled() || self.limiter.allow(key, (self.clock)()) {
            return true;
        }
        self.stats.add_rate_limited(1);
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_fields(
        &mut self,
        route: &Route,
        time: &str,
        time_ms: Option<i64>,
        stream: Stream,
        text: &str,
        piece: bool,
        admission: Admission,
        ship: &mut dyn FnMut(Batch),
    ) {
        let admitted = match admission {
            Admission::Ask => self.admit(&route.key),
            Admission::Admitted => true,
            Admission::Dropped => false,
        };
        if !admitted {
            return;
        }
        let mut rec = std::mem::take(&mut self.scratch);
        match &route.kind {
            RouteKind::Container { kubernetes } => application_record(
                &mut rec,
                &AppLine {
                    time,
                    stream: stream.as_str(),
                    partial: piece,
                    log: text,
                },
                kubernetes,
            ),
            RouteKind::Host { file } => fields_record(
                &mut rec,
                &[("host", &self.s.node_name), ("file", file)],
                "message",
                text,
            ),
            RouteKind::Unknown => {
                fields_record(&mut rec, &[("host", &self.s.node_name)], "message", text)
            }
        }
        let ts = time_ms.unwrap_or_else(crate::run::now_ms);
        let size = rec.len() + EVENT_OVERHEAD_BYTES;
        if !self.batch.events.is_empty()
            && (self.batch.bytes + size > self.s.batch_max_bytes
                || self.batch.events.len() >= self.s.batch_max_events)
        {
            self.ship_now(ship);
        }
        self.batch.bytes += size;
        self.batch.lines += 1;
        self.batch.events.push(LogEvent::new(
            route.group.as_str(),
            route.stream.as_str(),
            ts,
            rec.as_str(),
        ));
        self.batch_started.get_or_insert_with(Instant::now);
        self.scratch = rec;
    }

    fn maybe_ship_full(&mut self, ship: &mut dyn FnMut(Batch)) {
        if self.batch.events.len() >= self.s.batch_max_events
            || self.batch.bytes >= self.s.batch_max_bytes
        {
            self.ship_now(ship);
        }
    }

    /// Cuts the batch now (with the committed offsets as of now).
    pub fn ship_now(&mut self, ship: &mut dyn FnMut(Batch)) {
        if self.batch.events.is_empty() && self.dirty.is_empty() {
            return;
        }
        let mut b = std::mem::take(&mut self.batch);
        b.positions = self
            .dirty
            .drain()
            .map(|(file, offset)| Position { file, offset })
            .collect();
        self.stats.add_events(b.events.len() as u64);
        self.batch_started = None;
        ship(b);
    }

    /// Whether a batch has waited `linger` (or has offsets only to acknowledge).
    pub fn due(&mut self, linger: Duration) -> bool {
        let started = if self.dirty.is_empty() {
            self.batch_started
        } else {
            Some(*self.batch_started.get_or_insert_with(Instant::now))
        };
        started.is_some_and(|t| t.elapsed() >= linger)
    }

    pub fn has_pending_batch(&self) -> bool {
        !self.batch.events.is_empty() || !self.dirty.is_empty()
    }

    /// Time-based work: complete stack traces and lost partials; report rate-limit drops.
    pub fn tick(&mut self, ship: &mut dyn FnMut(Batch)) {
        let now = Instant::now();
        self.limiter.report(now);
        let ids: Vec<FileId> = self
            .files
            .iter()
            .filter(|(_, st)| {
                st.joiner.as_ref().is_some_and(|j| j.pending().is_some())
                    && now.duration_since(st.joiner_touched) >= MULTILINE_FLUSH
                    || st
                        .partial
                        .iter()
                        .flatten()
                        .any(|p| now.duration_since(p.since) >= PARTIAL_FLUSH)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.flush_file(id, false, ship);
        }
    }

    /// Emits what is held for file `id`; with `end` the file is finished and its state dropped.
    fn flush_file(&mut self, id: FileId, end: bool, ship: &mut dyn FnMut(Batch)) {
        let Some(st) = self.files.get_mut(&id) else {
            return;
        };
        let mut stale: Vec<Partial> = st
            .partial
            .iter_mut()
            .filter(|p| {
                p.as_ref()
                    .is_some_and(|p| end || p.since.elapsed() >= PARTIAL_FLUSH)
            })
            .filter_map(Option::take)
            .collect();
        stale.sort_by_key(|p| p.meta.start);
        for p in stale {
            self.emit_line(id, p.meta, p.text, false, Admission::of(p.admitted), ship);
        }
        let Some(st) = self.files.get_mut(&id) else {
            return;
        };
        if let Some(done) = st.joiner.as_mut().and_then(|j| j.take()) {
            self.emit_record(id, &done.meta, &done.text, false, Admission::Ask, ship);
        }
        let Some(st) = self.files.get_mut(&id) else {
            return;
        };
        if st.held_from().is_none() && end {
            self.files.remove(&id);
        }
    }

    /// The tailer finished a file: flush what it held (its end offset is already committed
    /// by its last line).
    pub fn file_closed(&mut self, info: &FileInfo, ship: &mut dyn FnMut(Batch)) {
        let id = info.id;
        let Some(st) = self.files.get(&id) else {
            return;
        };
        let held = st.held_from().is_some();
        let last_end = st.last_end;
        self.flush_file(id, true, ship);
        if held {
            self.dirty.insert(id, last_end);
        }
        self.files.remove(&id);
    }
}

/// Whether a container's logs are excluded (`include_namespaces`, `exclude_namespaces`,
/// `exclude_pod_labels`, the [`EXCLUDE_ANNOTATION`]) and how its stack traces are joined (the
/// first matching `multiline` rule, overridden by the [`MULTILINE_ANNOTATION`]). `pod` is the
/// pod's own name; `meta`, when known, brings its labels and annotations.
pub fn log_policy(
    l: &LogsSettings,
    namespace: &str,
    pod: &str,
    container: &str,
    meta: Option<&PodMeta>,
) -> (bool, Option<Language>) {
    let mut excluded = (!l.include_namespaces.is_empty()
        && !l.include_namespaces.iter().any(|n| n == namespace))
        || l.exclude_namespaces.iter().any(|n| n == namespace);
    let mut multiline = l
        .multiline
        .iter()
        .find(|r| {
            r.namespace.as_ref().is_none_or(|n| n == namespace)
                && r.pod.as_ref().is_none_or(|p| glob(p, pod))
                && r.container.as_ref().is_none_or(|n| n == container)
        })
        .and_then(|r| Language::parse(&r.language));
    if let Some(m) = meta {
        excluded |= m
            .annotations
            .get(EXCLUDE_ANNOTATION)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        excluded |= l
            .exclude_pod_labels
            .iter()
            .any(|(k, v)| m.labels.get(k) == Some(v));
        if let Some(v) = m.annotations.get(MULTILINE_ANNOTATION) {
            multiline = Language::parse(v);
        }
    }
    (excluded, multiline)
}

/// Minimal glob: `*` matches any run of characters.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The record's `kubernetes` object (reference §3.3): from the path always, from the pod
/// metadata when known.
fn kubernetes_json(
    c: &ContainerRef,
    meta: Option<&PodMeta>,
    id: Option<&str>,
    node: &str,
    l: &LogsSettings,
) -> String {
    let mut o = String::from("{");
    let field = |o: &mut String, k: &str, v: &str| {
        push_key(o, k);
        push_json_str(o, v);
    };
    field(&mut o, "pod_name", &c.pod);
    field(&mut o, "namespace_name", &c.namespace);
    field(&mut o, "pod_id", &c.pod_uid);
    field(
        &mut o,
        "host",
        meta.and_then(|m| m.node_name.as_deref()).unwrap_or(node),
    );
    field(&mut o, "container_name", &c.container);
    if let Some(id) = id {
        field(&mut o, "docker_id", id);
    }
    if let Some(cm) = meta.and_then(|m| m.containers.get(&c.container)) {
        if let Some(h) = &cm.image_id {
            field(&mut o, "container_hash", h);
        }
        if let Some(i) = &cm.image {
            field(&mut o, "container_image", i);
        }
    }
    if let Some(m) = meta {
        let map = |o: &mut String, k: &str, m: &std::collections::BTreeMap<String, String>| {
            push_key(o, k);
            o.push('{');
            for (k, v) in m {
                push_key(o, k);
                push_json_str(o, v);
            }
            o.push('}');
        };
        if l.labels && !m.labels.is_empty() {
            map(&mut o, "labels", &m.labels);
        }
        if l.annotations && !m.annotations.is_empty() {
            map(&mut o, "annotations", &m.annotations);
        }
    }
    o.push('}');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited_pipeline(root: &std::path::Path, per_second: u64) -> Pipeline {
        let logs = LogsSettings {
            rate_limit_lines_per_second: per_second,
            ..LogsSettings::default()
        };
        let s = PipelineSettings {
            node_name: "node-1".into(),
            application_group: "/kinsight/c/application".into(),
            host_group: "/kinsight/c/host".into(),
            dataplane_group: "/kinsight/c/dataplane".into(),
            logs,
            batch_max_events: 10_000,
            batch_max_bytes: 1 << 30,
        };
        let mut p = Pipeline::new(s, NodeLayout::new(root), Arc::new(LogStats::default()));
        // A stopped clock: no tokens come back however long a debug build takes.
        p.clock = || {
            static T: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            *T.get_or_init(Instant::now)
        };
        p
    }

    /// Issue 15 item 17: the pieces of an over-long line are one line to the rate limit. With a
    /// burst of 10 lines, a line in 30 pieces passes whole, the next 9 lines pass, and the
    /// 11th line — pieces and all — is dropped and counted once. The limiter's clock is stopped,
    /// so the answer does not depend on the machine's speed.
    #[test]
    fn an_over_long_line_passes_or_is_dropped_whole() {
        let root = tempfile::tempdir().unwrap();
        let path: Arc<std::path::Path> = Arc::from(
            root.path()
                .join("var/log/pods/prod_api-1_0000-11/api/0.log")
                .as_path(),
        );
        let info = FileInfo {
            id: FileId(1),
            path: path.clone(),
            family: path,
            compressed: false,
        };
        let mut p = limited_pipeline(root.path(), 10);
        let mut events = Vec::new();
        let mut ship = |b: Batch| events.extend(b.events);
        let mut offset = 0u64;
        let mut feed = |p: &mut Pipeline, pieces: usize, ship: &mut dyn FnMut(Batch)| {
            for i in 0..pieces {
                let bytes = vec![b'x'; MAX_PIECE_BYTES];
                let line = Line {
                    bytes: &bytes,
                    start: offset,
                    end: offset + bytes.len() as u64 + u64::from(i + 1 == pieces),
                    first: i == 0,
                    last: i + 1 == pieces,
                };
                offset = line.end;
                p.on_line(&info, line, ship);
            }
        };
        feed(&mut p, 30, &mut ship);
        for _ in 0..9 {
            feed(&mut p, 1, &mut ship);
        }
        feed(&mut p, 30, &mut ship);
        p.ship_now(&mut ship);
        assert_eq!(
            events.len(),
            30 + 9,
            "the first long line whole, then 9 lines"
        );
        assert_eq!(
            p.rate_limited("prod/api-1/api"),
            1,
            "one line dropped, counted once"
        );
        assert_eq!(p.stats.snapshot().lines_rate_limited, 1);
    }

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob("api-*", "api-7d9f-x"));
        assert!(glob("*", "anything"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abcd"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }
}
