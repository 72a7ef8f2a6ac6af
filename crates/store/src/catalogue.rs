//! The catalogue: log groups (name, id, retention, tags), their streams, and the first/last
//! event and ingestion times. It changes only by applying WAL records in sequence order, so a
//! checkpoint taken at sequence `s` plus the replay of the records after `s` rebuilds it
//! exactly. Every change is idempotent (see [`crate::record::CatalogueOp`]).

use std::collections::BTreeMap;

use kinsight_model::LogEvent;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::record::CatalogueOp;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalogue {
    /// Id the next created group gets; ids are never reused.
    pub next_group_id: u64,
    /// Groups by name (sorted, as DescribeLogGroups lists them).
    pub groups: BTreeMap<String, GroupEntry>,
    /// Streams of all groups together (kept as they change; recounted after decoding): what
    /// the `max_log_streams` cap compares with, without walking every group per batch.
    #[serde(skip)]
    stream_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupEntry {
    pub id: u64,
    pub name: String,
    pub created_ms: i64,
    /// `None`: never expire (the reference's default).
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
    pub last_ingestion_ms: Option<i64>,
    pub streams: BTreeMap<String, StreamEntry>,
    /// Deleted streams: events of the stream with a sequence number below the value were
    /// deleted with it (a stream created again later starts empty).
    #[serde(default)]
    pub deleted_streams: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEntry {
    pub created_ms: i64,
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
    pub last_ingestion_ms: Option<i64>,
}

impl GroupEntry {
    fn new(id: u64, name: &str, created_ms: i64) -> Self {
        GroupEntry {
            id,
            name: name.to_string(),
            created_ms,
            retention_days: None,
            tags: BTreeMap::new(),
            first_event_ms: None,
            last_event_ms: None,
            last_ingestion_ms: None,
            streams: BTreeMap::new(),
            deleted_streams: BTreeMap::new(),
        }
    }

    /// Whether an event of `stream` written at `seq` was deleted with its stream.
    pub fn is_deleted(&self, stream: &str, seq: u64) -> bool {
        self.deleted_streams
            .get(stream)
            .is_some_and(|&dead_below| seq < dead_below)
    }
}

fn widen(slot: &mut Option<i64>, v: i64, pick: fn(i64, i64) -> i64) {
    *slot = Some(slot.map_or(v, |old| pick(old, v)));
}

/// What applying a record changed beyond the catalogue itself.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Ids of groups deleted (their memory rows and segments must go).
    pub deleted_groups: Vec<u64>,
}

impl Catalogue {
    /// Streams of all groups.
    pub fn stream_count(&self) -> usize {
        self.stream_count
    }

    /// Recomputes [`Catalogue::stream_count`] (after decoding a checkpoint).
    pub(crate) fn recount(&mut self) {
        self.stream_count = self.groups.values().map(|g| g.streams.len()).sum();
    }

    pub fn group(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.get(name)
    }

    pub fn group_by_id(&self, id: u64) -> Option<&GroupEntry> {
        self.groups.values().find(|g| g.id == id)
    }

    fn create_group(&mut self, name: &str, created_ms: i64) -> &mut GroupEntry {
        let next = &mut self.next_group_id;
        self.groups.entry(name.to_string()).or_insert_with(|| {
            *next += 1;
            GroupEntry::new(*next, name, created_ms)
        })
    }

    /// Applies a batch's events: groups and streams are created as needed (auto-create, as
    /// Fluent Bit's `auto_create_group`), times widened. Returns `(group id, event index)` for
    /// each event, in order.
    pub(crate) fn apply_events(
        &mut self,
        events: &[LogEvent],
        ingestion_ms: i64,
    ) -> Vec<(u64, usize)> {
        let mut out = Vec::with_capacity(events.len());
        let mut i = 0;
        let mut new_streams = 0;
        // Events of one group usually come in runs: look the group up once per run (this
        // runs on the WAL thread, for every event).
        while i < events.len() {
            let name = &events[i].log_group_name;
            let run = events[i..]
                .iter()
                .take_while(|e| &e.log_group_name == name)
                .count();
            let g = match self.groups.get_mut(name.as_str()) {
                Some(g) => g,
                None => self.create_group(name, ingestion_ms),
            };
            for (j, e) in events[i..i + run].iter().enumerate() {
                widen(&mut g.first_event_ms, e.timestamp, i64::min);
                widen(&mut g.last_event_ms, e.timestamp, i64::max);
                let s = match g.streams.get_mut(e.log_stream_name.as_str()) {
                    Some(s) => s,
                    None => {
                        new_streams += 1;
                        g.streams
                            .entry(e.log_stream_name.clone())
                            .or_insert(StreamEntry {
                                created_ms: ingestion_ms,
                                first_event_ms: None,
                                last_event_ms: None,
                                last_ingestion_ms: None,
                            })
                    }
                };
                widen(&mut s.first_event_ms, e.timestamp, i64::min);
                widen(&mut s.last_event_ms, e.timestamp, i64::max);
                s.last_ingestion_ms = Some(ingestion_ms);
                out.push((g.id, i + j));
            }
            g.last_ingestion_ms = Some(ingestion_ms);
            i += run;
        }
        self.stream_count += new_streams;
        out
    }

    /// Applies a catalogue operation written at `seq`.
    pub(crate) fn apply_op(&mut self, seq: u64, op: &CatalogueOp) -> Result<Effects> {
        let mut fx = Effects::default();
        match op {
            CatalogueOp::CreateGroup {
                name,
                retention_days,
                tags,
                created_ms,
            } => {
                if self.groups.contains_key(name) {
                    return Err(StoreError::GroupAlreadyExists(name.clone()));
                }
                let g = self.create_group(name, *created_ms);
                g.retention_days = *retention_days;
                g.tags = tags.clone();
            }
            CatalogueOp::DeleteGroup { name } => match self.groups.remove(name) {
                Some(g) => {
                    self.stream_count -= g.streams.len();
                    fx.deleted_groups.push(g.id);
                }
                None => return Err(StoreError::GroupNotFound(name.clone())),
            },
            CatalogueOp::PutRetention {
                name,
                retention_days,
            } => {
                self.group_mut(name)?.retention_days = *retention_days;
            }
            CatalogueOp::TagGroup { name, tags } => {
                let g = self.group_mut(name)?;
                for (k, v) in tags {
                    g.tags.insert(k.clone(), v.clone());
                }
            }
            CatalogueOp::UntagGroup { name, keys } => {
                let g = self.group_mut(name)?;
                for k in keys {
                    g.tags.remove(k);
                }
            }
            CatalogueOp::CreateStream {
                group,
                stream,
                created_ms,
            } => {
                let g = self.group_mut(group)?;
                if g.streams.contains_key(stream) {
                    return Err(StoreError::StreamAlreadyExists {
                        group: group.clone(),
                        stream: stream.clone(),
                    });
                }
                g.streams.insert(
                    stream.clone(),
                    StreamEntry {
                        created_ms: *created_ms,
                        first_event_ms: None,
                        last_event_ms: None,
                        last_ingestion_ms: None,
                    },
                );
                self.stream_count += 1;
            }
            CatalogueOp::DeleteStream { group, stream, .. } => {
                let g = self.group_mut(group)?;
                if g.streams.remove(stream).is_none() {
                    return Err(StoreError::StreamNotFound {
                        group: group.clone(),
                        stream: stream.clone(),
                    });
                }
                g.deleted_streams.insert(stream.clone(), seq);
                self.stream_count -= 1;
            }
            // The memtable's business (`State::apply`).
            CatalogueOp::Freeze => {}
        }
        Ok(fx)
    }

    fn group_mut(&mut self, name: &str) -> Result<&mut GroupEntry> {
        self.groups
            .get_mut(name)
            .ok_or_else(|| StoreError::GroupNotFound(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_create_groups_and_streams_and_widen_times() {
        let mut c = Catalogue::default();
        let ev = vec![
            LogEvent::new("/a", "s1", 20, "x"),
            LogEvent::new("/a", "s2", 10, "y"),
            LogEvent::new("/b", "s1", 30, "z"),
        ];
        let placed = c.apply_events(&ev, 100);
        assert_eq!(placed, vec![(1, 0), (1, 1), (2, 2)]);
        let a = c.group("/a").unwrap();
        assert_eq!((a.first_event_ms, a.last_event_ms), (Some(10), Some(20)));
        assert_eq!(a.streams.len(), 2);
        assert_eq!(c.stream_count(), 3);
        // Re-applying (a replay over a checkpoint) changes nothing.
        let before = c.clone();
        c.apply_events(&ev, 100);
        assert_eq!(c, before);
    }

    #[test]
    fn deleted_group_names_get_new_ids() {
        let mut c = Catalogue::default();
        c.apply_events(&[LogEvent::new("/a", "s", 1, "")], 1);
        let fx = c
            .apply_op(2, &CatalogueOp::DeleteGroup { name: "/a".into() })
            .unwrap();
        assert_eq!(fx.deleted_groups, vec![1]);
        assert_eq!(c.stream_count(), 0);
        c.apply_events(&[LogEvent::new("/a", "s", 1, "")], 3);
        assert_eq!(c.group("/a").unwrap().id, 2);
        assert_eq!(c.stream_count(), 1);
        let mut decoded: Catalogue =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        decoded.recount();
        assert_eq!(decoded, c);
    }

    #[test]
    fn deleting_a_stream_hides_its_older_events_only() {
        let mut c = Catalogue::default();
        c.apply_events(&[LogEvent::new("/a", "s", 1, "")], 1);
        c.apply_op(
            10,
            &CatalogueOp::DeleteStream {
                group: "/a".into(),
                stream: "s".into(),
                deleted_ms: 5,
            },
        )
        .unwrap();
        let g = c.group("/a").unwrap();
        assert!(g.is_deleted("s", 9));
        assert!(!g.is_deleted("s", 11));
        assert!(!g.is_deleted("t", 1));
    }
}
