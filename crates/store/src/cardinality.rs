//! Caps on the number of log groups and streams (issue 15, item 12).
//!
//! Every group and stream costs memory for as long as it exists — its catalogue entry is held
//! live, cloned into the checkpoint being written and serialised into every checkpoint — and
//! groups and streams are created implicitly by ingest. Without a cap, one ingest token can
//! create them until the server runs out of memory. So:
//!
//! - an event that would create a group past [`CardinalityLimits::max_log_groups`], or a stream
//!   past [`CardinalityLimits::max_streams_per_group`] in its group or
//!   [`CardinalityLimits::max_log_streams`] in all, is rejected on its own
//!   ([`RejectReason::TooManyLogGroups`], [`RejectReason::TooManyLogStreams`]); the rest of the
//!   batch, and every event of groups and streams that exist, is accepted as before;
//! - CreateLogGroup / CreateLogStream past a cap fail with [`StoreError::LimitExceeded`].
//!
//! Groups and streams written to by batches still on their way to the WAL are *reserved*
//! (counted as if they existed) from admission until the record is applied, so concurrent
//! batches can never overshoot a cap together. Caps apply to new names only: WAL replay never
//! checks them (what was acknowledged stays), and lowering a cap below the current count only
//! stops further creation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kinsight_model::LogEvent;
use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::error::StoreError;
use crate::ingest::{RejectReason, Rejection};
use crate::store::Shared;

/// The caps; defaults and their reasoning in `docs/security.md` ("Cardinality").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardinalityLimits {
    pub max_log_groups: usize,
    pub max_log_streams: usize,
    pub max_streams_per_group: usize,
}

impl Default for CardinalityLimits {
    fn default() -> Self {
        CardinalityLimits {
            max_log_groups: 2_000,
            max_log_streams: 200_000,
            max_streams_per_group: 100_000,
        }
    }
}

/// Which cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitKind {
    LogGroups,
    LogStreams,
    StreamsPerGroup,
}

impl LimitKind {
    /// The server setting that changes it (for messages).
    pub fn setting(self) -> &'static str {
        match self {
            LimitKind::LogGroups => "--max-log-groups",
            LimitKind::LogStreams => "--max-log-streams",
            LimitKind::StreamsPerGroup => "--max-streams-per-group",
        }
    }
}

/// How close one cap is: for an operator to alarm on before it is hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub count: usize,
    pub limit: usize,
    /// Events (and create calls) refused by this cap since the server started.
    pub rejected: u64,
}

/// The three caps' usage; `streamsPerGroup.count` is the largest group's stream count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardinalityUsage {
    pub log_groups: Usage,
    pub log_streams: Usage,
    pub streams_per_group: Usage,
}

/// Names being created by records not yet applied, counted against the caps.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    groups: HashMap<String, u32>,
    /// group → stream → holders.
    streams: HashMap<String, HashMap<String, u32>>,
    pub rejected_groups: u64,
    pub rejected_streams: u64,
    pub rejected_per_group: u64,
}

/// Counts of reserved names not yet in the catalogue.
struct Pending {
    groups: usize,
    streams: usize,
}

fn pending_streams(cat: &Catalogue, g: &str, ss: &HashMap<String, u32>) -> usize {
    match cat.group(g) {
        Some(entry) => ss
            .keys()
            .filter(|s| !entry.streams.contains_key(*s))
            .count(),
        None => ss.len(),
    }
}

/// What one batch or call reserved; released (see [`ClaimGuard`]) once its record is applied
/// or has failed.
#[derive(Debug, Default)]
pub(crate) struct Claim {
    groups: Vec<String>,
    streams: Vec<(String, String)>,
}

impl Claim {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.streams.is_empty()
    }
}

impl Reservations {
    fn group_reserved(&self, g: &str) -> bool {
        self.groups.contains_key(g)
    }

    fn stream_reserved(&self, g: &str, s: &str) -> bool {
        self.streams.get(g).is_some_and(|m| m.contains_key(s))
    }

    /// Reserved names not yet in the catalogue. A record that has been applied but whose
    /// claim is not yet released has its names in both; they count once, or a batch running
    /// alongside would be refused room that exists.
    fn pending(&self, cat: &Catalogue) -> Pending {
        let groups = self
            .groups
            .keys()
            .filter(|g| cat.group(g).is_none())
            .count();
        let streams = self
            .streams
            .iter()
            .map(|(g, ss)| pending_streams(cat, g, ss))
            .sum();
        Pending { groups, streams }
    }

    /// Reserved streams of one group not yet in the catalogue.
    fn pending_in(&self, cat: &Catalogue, g: &str) -> usize {
        self.streams
            .get(g)
            .map_or(0, |ss| pending_streams(cat, g, ss))
    }

    /// Checks one new group against the cap, counting what is pending and what this claim
    /// adds.
    fn check_group(
        cat: &Catalogue,
        limits: &CardinalityLimits,
        pending: &Pending,
        new_in_claim: usize,
    ) -> Option<LimitKind> {
        (cat.groups.len() + pending.groups + new_in_claim >= limits.max_log_groups)
            .then_some(LimitKind::LogGroups)
    }

    /// Checks one new stream of `group`; `in_group` counts the group's pending and claimed
    /// new streams.
    fn check_stream(
        cat: &Catalogue,
        limits: &CardinalityLimits,
        pending: &Pending,
        group: &str,
        in_group: usize,
        new_total: usize,
    ) -> Option<LimitKind> {
        let in_group = cat.group(group).map_or(0, |g| g.streams.len()) + in_group;
        if in_group >= limits.max_streams_per_group {
            return Some(LimitKind::StreamsPerGroup);
        }
        let total = cat.stream_count() + pending.streams + new_total;
        (total >= limits.max_log_streams).then_some(LimitKind::LogStreams)
    }

    /// Admits the accepted events of a batch (indices into `events`): events needing a group
    /// or stream past a cap are rejected; the new names of the rest are reserved. Returns the
    /// rejections and the claim.
    pub fn admit(
        &mut self,
        cat: &Catalogue,
        limits: &CardinalityLimits,
        events: &[LogEvent],
        accepted: &mut Vec<usize>,
    ) -> (Vec<Rejection>, Claim) {
        let mut rejected = Vec::new();
        let mut claim = Claim::default();
        let mut new_groups: HashSet<&str> = HashSet::new();
        let mut new_streams: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut new_total = 0;
        let mut touched: HashSet<(&str, &str)> = HashSet::new();
        // Counted only when a name is new: batches to existing streams never need it, and it
        // looks at every reserved name.
        let mut pending: Option<Pending> = None;
        let mut pending_in: HashMap<&str, usize> = HashMap::new();
        // The verdict of the last (group, stream) pair: batches come in runs of one pair.
        let mut last: Option<(&str, &str, Option<LimitKind>)> = None;
        accepted.retain(|&i| {
            let e = &events[i];
            let (g, s) = (e.log_group_name.as_str(), e.log_stream_name.as_str());
            let verdict = match last {
                Some((lg, ls, v)) if lg == g && ls == s => v,
                _ => {
                    let group = cat.group(g);
                    let group_new =
                        group.is_none() && !self.group_reserved(g) && !new_groups.contains(g);
                    let stream_new = !group.is_some_and(|x| x.streams.contains_key(s))
                        && !self.stream_reserved(g, s)
                        && !new_streams.get(g).is_some_and(|m| m.contains(s));
                    let mut v = None;
                    if group_new {
                        let p = pending.get_or_insert_with(|| self.pending(cat));
                        v = Self::check_group(cat, limits, p, new_groups.len());
                    }
                    if v.is_none() && stream_new {
                        let reserved = *pending_in
                            .entry(g)
                            .or_insert_with(|| self.pending_in(cat, g));
                        let in_group = reserved + new_streams.get(g).map_or(0, HashSet::len);
                        let p = pending.get_or_insert_with(|| self.pending(cat));
                        v = Self::check_stream(cat, limits, p, g, in_group, new_total);
                    }
                    if v.is_none() {
                        if group_new {
                            new_groups.insert(g);
                        }
                        if stream_new {
                            new_streams.entry(g).or_default().insert(s);
                            new_total += 1;
                        }
                        touched.insert((g, s));
                    }
                    last = Some((g, s, v));
                    v
                }
            };
            match verdict {
                None => true,
                Some(kind) => {
                    self.count_rejection(kind);
                    rejected.push(Rejection {
                        index: i,
                        reason: match kind {
                            LimitKind::LogGroups => RejectReason::TooManyLogGroups,
                            _ => RejectReason::TooManyLogStreams,
                        },
                    });
                    false
                }
            }
        });
        // Every name the batch writes to is claimed, new or not: one deleted while the batch is
        // on its way is created again when the batch is applied, and must count meanwhile.
        let mut groups: HashSet<&str> = HashSet::new();
        for &(g, s) in &touched {
            if groups.insert(g) {
                claim.groups.push(g.to_string());
            }
            claim.streams.push((g.to_string(), s.to_string()));
        }
        self.reserve(&claim);
        (rejected, claim)
    }

    /// Reserves one group for CreateLogGroup, or says which cap refuses it.
    pub fn admit_group(
        &mut self,
        cat: &Catalogue,
        limits: &CardinalityLimits,
        name: &str,
    ) -> Result<Claim, StoreError> {
        if let Some(kind) = Self::check_group(cat, limits, &self.pending(cat), 0) {
            self.count_rejection(kind);
            return Err(limit_error(kind, cat, limits, name, None));
        }
        let claim = Claim {
            groups: vec![name.to_string()],
            streams: Vec::new(),
        };
        self.reserve(&claim);
        Ok(claim)
    }

    /// Reserves one stream for CreateLogStream, or says which cap refuses it.
    pub fn admit_stream(
        &mut self,
        cat: &Catalogue,
        limits: &CardinalityLimits,
        group: &str,
        stream: &str,
    ) -> Result<Claim, StoreError> {
        let in_group = self.pending_in(cat, group);
        if let Some(kind) = Self::check_stream(cat, limits, &self.pending(cat), group, in_group, 0)
        {
            self.count_rejection(kind);
            return Err(limit_error(kind, cat, limits, group, Some(stream)));
        }
        let claim = Claim {
            groups: Vec::new(),
            streams: vec![(group.to_string(), stream.to_string())],
        };
        self.reserve(&claim);
        Ok(claim)
    }

    fn count_rejection(&mut self, kind: LimitKind) {
        match kind {
            LimitKind::LogGroups => self.rejected_groups += 1,
            LimitKind::LogStreams => self.rejected_streams += 1,
            LimitKind::StreamsPerGroup => self.rejected_per_group += 1,
        }
    }

    fn reserve(&mut self, claim: &Claim) {
        for g in &claim.groups {
            *self.groups.entry(g.clone()).or_default() += 1;
        }
        for (g, s) in &claim.streams {
            *self
                .streams
                .entry(g.clone())
                .or_default()
                .entry(s.clone())
                .or_default() += 1;
        }
    }

    pub fn release(&mut self, claim: &Claim) {
        for g in &claim.groups {
            if let Some(n) = self.groups.get_mut(g) {
                *n -= 1;
                if *n == 0 {
                    self.groups.remove(g);
                }
            }
        }
        for (g, s) in &claim.streams {
            let Some(m) = self.streams.get_mut(g) else {
                continue;
            };
            if let Some(n) = m.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    m.remove(s);
                }
            }
            if m.is_empty() {
                self.streams.remove(g);
            }
        }
    }
}

/// The error of a create call past a cap.
pub(crate) fn limit_error(
    kind: LimitKind,
    cat: &Catalogue,
    limits: &CardinalityLimits,
    group: &str,
    stream: Option<&str>,
) -> StoreError {
    let (count, limit) = match kind {
        LimitKind::LogGroups => (cat.groups.len(), limits.max_log_groups),
        LimitKind::LogStreams => (cat.stream_count(), limits.max_log_streams),
        LimitKind::StreamsPerGroup => (
            cat.group(group).map_or(0, |g| g.streams.len()),
            limits.max_streams_per_group,
        ),
    };
    let what = match stream {
        Some(s) => format!("log stream {s:?} in log group {group:?}"),
        None => format!("log group {group:?}"),
    };
    StoreError::LimitExceeded {
        kind,
        what,
        count,
        limit,
    }
}

/// Releases a claim when dropped — after the record is applied (the names are then in the
/// catalogue) or has failed.
pub(crate) struct ClaimGuard {
    pub shared: Arc<Shared>,
    pub claim: Claim,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.claim.is_empty() {
            self.shared.lock().reservations.release(&self.claim);
        }
    }
}

/// Usage of the three caps for stats.
pub(crate) fn usage(
    cat: &Catalogue,
    limits: &CardinalityLimits,
    r: &Reservations,
) -> CardinalityUsage {
    CardinalityUsage {
        log_groups: Usage {
            count: cat.groups.len(),
            limit: limits.max_log_groups,
            rejected: r.rejected_groups,
        },
        log_streams: Usage {
            count: cat.stream_count(),
            limit: limits.max_log_streams,
            rejected: r.rejected_streams,
        },
        streams_per_group: Usage {
            count: cat
                .groups
                .values()
                .map(|g| g.streams.len())
                .max()
                .unwrap_or(0),
            limit: limits.max_streams_per_group,
            rejected: r.rejected_per_group,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(g: &str, s: &str) -> LogEvent {
        LogEvent::new(g, s, 1, "x")
    }

    /// A stream deleted while a batch writing to it is on its way comes back when the batch is
    /// applied: it counts as pending meanwhile, so a new stream cannot take its place.
    #[test]
    fn names_deleted_under_a_batch_in_flight_still_count() {
        let limits = CardinalityLimits {
            max_log_groups: 10,
            max_log_streams: 1,
            max_streams_per_group: 10,
        };
        let mut cat = Catalogue::default();
        cat.apply_events(&[ev("/a", "s1")], 1);
        let mut r = Reservations::default();
        let mut acc = vec![0];
        let (_, in_flight) = r.admit(&cat, &limits, &[ev("/a", "s1")], &mut acc);
        assert_eq!(acc, vec![0], "an existing stream");
        cat.apply_op(
            2,
            &crate::record::CatalogueOp::DeleteStream {
                group: "/a".into(),
                stream: "s1".into(),
                deleted_ms: 2,
            },
        )
        .unwrap();
        let mut acc = vec![0];
        let (rej, _) = r.admit(&cat, &limits, &[ev("/a", "t1")], &mut acc);
        assert!(
            acc.is_empty(),
            "s1 comes back with the batch in flight: {rej:?}"
        );
        assert!(r.admit_stream(&cat, &limits, "/a", "t2").is_err());
        cat.apply_events(&[ev("/a", "s1")], 3);
        r.release(&in_flight);
        assert_eq!(cat.stream_count(), 1);
    }

    /// A record applied whose claim is not yet released has its names in the catalogue and
    /// in the reservations: they count once, so a batch alongside still gets the room left.
    #[test]
    fn applied_but_unreleased_names_count_once() {
        let limits = CardinalityLimits {
            max_log_groups: 2,
            max_log_streams: 2,
            max_streams_per_group: 2,
        };
        let mut cat = Catalogue::default();
        let mut r = Reservations::default();
        let mut acc = vec![0];
        let (_, first) = r.admit(&cat, &limits, &[ev("/a", "s1")], &mut acc);
        assert_eq!(acc, vec![0]);
        cat.apply_events(&[ev("/a", "s1")], 1);
        let mut acc = vec![0];
        let (rej, _) = r.admit(&cat, &limits, &[ev("/b", "t1")], &mut acc);
        assert_eq!(acc, vec![0], "{rej:?}");
        assert!(
            r.admit_stream(&cat, &limits, "/a", "s2").is_err(),
            "now full"
        );
        r.release(&first);
    }

    #[test]
    fn reservations_count_against_the_caps_until_released() {
        let limits = CardinalityLimits {
            max_log_groups: 2,
            max_log_streams: 3,
            max_streams_per_group: 2,
        };
        let mut cat = Catalogue::default();
        cat.apply_events(&[ev("/a", "s1")], 1);
        let mut r = Reservations::default();
        // /a has room for one more stream, one new group fits, three streams in all.
        let events = [
            ev("/a", "s2"),
            ev("/a", "s3"),
            ev("/b", "t1"),
            ev("/c", "u1"),
            ev("/a", "s1"),
        ];
        let mut accepted: Vec<usize> = (0..events.len()).collect();
        let (rejected, claim) = r.admit(&cat, &limits, &events, &mut accepted);
        assert_eq!(accepted, vec![0, 2, 4]);
        assert_eq!(
            rejected
                .iter()
                .map(|x| (x.index, x.reason))
                .collect::<Vec<_>>(),
            vec![
                (1, RejectReason::TooManyLogStreams),
                (3, RejectReason::TooManyLogGroups)
            ]
        );
        // A concurrent batch sees the reservations: nothing new fits.
        let mut acc2 = vec![0, 1];
        let (rej2, claim2) = r.admit(&cat, &limits, &[ev("/d", "x"), ev("/b", "t1")], &mut acc2);
        assert_eq!(acc2, vec![1], "{rej2:?}");
        // /b t1 is reserved by the first batch already: claimed again, counted once.
        assert_eq!(claim2.streams, vec![("/b".to_string(), "t1".to_string())]);
        assert_eq!(r.pending(&cat).streams, 2, "s2 and t1");
        r.release(&claim2);
        // Applied: the names are in the catalogue, the reservation goes.
        cat.apply_events(&[ev("/a", "s2"), ev("/b", "t1")], 2);
        r.release(&claim);
        assert!(r.groups.is_empty() && r.streams.is_empty());
        assert_eq!(cat.stream_count(), 3);
        let u = usage(&cat, &limits, &r);
        assert_eq!((u.log_groups.count, u.log_groups.rejected), (2, 2));
        assert_eq!((u.log_streams.count, u.streams_per_group.count), (3, 2));
        assert!(matches!(
            r.admit_group(&cat, &limits, "/e"),
            Err(StoreError::LimitExceeded {
                kind: LimitKind::LogGroups,
                count: 2,
                limit: 2,
                ..
            })
        ));
        assert!(matches!(
            r.admit_stream(&cat, &limits, "/b", "t2"),
            Err(StoreError::LimitExceeded {
                kind: LimitKind::LogStreams,
                ..
            })
        ));
    }
}
