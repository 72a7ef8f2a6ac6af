//! ControlPlane events (issue 18, reference §1.3, §2.4.b, §2.5): the elected leader reads the
//! API server's `/metrics` every interval and turns the reference's allow-listed families
//! ([`control_plane::METRICS`]) into performance events, as the CloudWatch agent's Prometheus
//! scrape and EMF exporter do:
//!
//! - one event per distinct label set — every metric read with exactly those labels is a field
//!   of it — with `Type: "ControlPlane"`, `Sources: ["apiserver"]`, `ClusterName`, the leader's
//!   `NodeName`, and the Prometheus labels as string fields: empty ones left out (Prometheus
//!   treats them as absent), `type` renamed `kubernetes_type`, a label that would overwrite an
//!   envelope key or a metric field prefixed `exported_` (Prometheus's rule for target labels);
//! - gauges as read; counters as their increase since the previous scrape (nothing on the
//!   first scrape of a series; after a counter reset, the value since the reset); histograms as
//!   a statistic set `{"Count", "Sum"}` of the observations since the previous scrape, read
//!   from `<name>_count` and `<name>_sum` (the CloudWatch agent also writes `Min` and `Max`,
//!   always 0 for Prometheus histograms, which carry neither), left out when nothing was
//!   observed in the interval; NaN and infinite readings (and negative counts) are skipped;
//! - `apiserver_request_total_5xx`: a copy of `apiserver_request_total` on the label sets whose
//!   `code` starts with 5 (the agent's metricstransform rule).
//!
//! The state between scrapes is the previous reading of each counter and histogram series. It
//! holds only the series of the last scrape (a series that vanished is forgotten), survives a
//! failed scrape (the next increase then covers both intervals, so no request is lost or
//! counted twice), and is forgotten when the agent stops being the leader
//! ([`Collector::forget_control_plane`]): a later leadership starts from a first scrape again
//! rather than reporting hours of requests as one interval's.

use super::Collector;
use super::event::{Ev, Fields, field_name};
use crate::prometheus::Sample;
use kinsight_model::catalogue::control_plane::{self, Kind};
use kinsight_model::catalogue::{keys, types};
use serde_json::{Number, Value};
use std::collections::HashMap;

/// Whether the leader keeps series `name` of the exposition: a counter or gauge of the
/// allow-list, or the `_sum` / `_count` of one of its histograms (their buckets are not read).
pub fn wanted(name: &str) -> bool {
    lookup(name).is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Value,
    Sum,
    Count,
}

fn lookup(series: &str) -> Option<(&'static str, Kind, Part)> {
    // Every allow-listed name starts with one of these: most lines of an exposition stop here.
    if !(series.starts_with("apiserver_")
        || series.starts_with("etcd_")
        || series.starts_with("rest_client_"))
    {
        return None;
    }
    control_plane::METRICS.iter().find_map(|&(name, kind)| {
        let rest = series.strip_prefix(name)?;
        let part = match (kind, rest) {
            (Kind::Counter | Kind::Gauge, "") => Part::Value,
            (Kind::Histogram, "_sum") => Part::Sum,
            (Kind::Histogram, "_count") => Part::Count,
            _ => return None,
        };
        Some((name, kind, part))
    })
}

/// A label set as event fields: names (interned — the allow-listed families' label names are
/// a fixed vocabulary of the API server's code) and values, sorted by name.
type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
enum Previous {
    Counter(f64),
    Histogram { count: f64, sum: f64 },
}

/// What the leader remembers between two scrapes.
#[derive(Debug, Default)]
pub struct ControlPlaneState {
    previous: HashMap<(&'static str, Labels), Previous>,
}

/// One series of this scrape.
struct Reading {
    metric: &'static str,
    kind: Kind,
    labels: Labels,
    value: Option<f64>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// Envelope keys a label must not overwrite.
const RESERVED: [&str; 7] = [
    keys::TYPE,
    keys::VERSION,
    keys::TIMESTAMP,
    keys::SOURCES,
    keys::CLUSTER_NAME,
    keys::NODE_NAME,
    keys::CLOUDWATCH_METRICS,
];

fn labels_of(raw: &[(String, String)]) -> Labels {
    let mut out: Labels = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        if value.is_empty() {
            continue;
        }
        let name = if name == control_plane::TYPE_LABEL {
            control_plane::TYPE_LABEL_RENAMED
        } else if RESERVED.contains(&name.as_str()) || control_plane::is_control_plane(name) {
            field_name(&["exported_", name])
        } else {
            field_name(&[name])
        };
        // `type` renamed onto a `kubernetes_type` the API server also wrote: the first wins.
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, value.clone()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// An integral value as a JSON integer (counts, sizes), any other as a float.
fn number(v: f64) -> Option<Value> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Some(Value::from(v as i64))
    } else {
        Number::from_f64(v).map(Value::Number)
    }
}

impl Collector {
    /// Forgets the previous scrape: this agent is not (or no longer) the leader.
    pub fn forget_control_plane(&mut self) {
        self.control_plane.previous.clear();
    }

    /// The ControlPlane events of one scrape, in the order their label sets first appear.
    pub(super) fn control_plane_events(
        &mut self,
        ts: i64,
        samples: &[Sample],
        out: &mut Vec<Fields>,
    ) {
        let mut readings: Vec<Reading> = Vec::new();
        let mut index: HashMap<(&'static str, Labels), usize> = HashMap::new();
        for s in samples {
            let Some((metric, kind, part)) = lookup(&s.name) else {
                continue;
            };
            let labels = labels_of(&s.labels);
            let i = *index.entry((metric, labels.clone())).or_insert_with(|| {
                readings.push(Reading {
                    metric,
                    kind,
                    labels,
                    value: None,
                    sum: None,
                    count: None,
                });
                readings.len() - 1
            });
            let slot = match part {
                Part::Value => &mut readings[i].value,
                Part::Sum => &mut readings[i].sum,
                Part::Count => &mut readings[i].count,
            };
            // A series written twice (not valid exposition): the first reading counts.
            slot.get_or_insert(s.value);
        }

        let previous = std::mem::take(&mut self.control_plane.previous);
        let mut next = HashMap::with_capacity(previous.len());
        // Label set → its metric fields, in order of first appearance.
        let mut groups: Vec<(Labels, Vec<(&'static str, Value)>)> = Vec::new();
        let mut group_of: HashMap<Labels, usize> = HashMap::new();
        for r in readings {
            let key = (r.metric, r.labels);
            let value = match r.kind {
                Kind::Gauge => r.value.filter(|v| v.is_finite()).and_then(number),
                Kind::Counter => {
                    // A counter is never negative; one that is, is not read.
                    let Some(now) = r.value.filter(|v| v.is_finite() && *v >= 0.0) else {
                        continue;
                    };
                    let before = previous.get(&key).copied();
                    next.insert(key.clone(), Previous::Counter(now));
                    match before {
                        Some(Previous::Counter(p)) if now >= p => number(now - p),
                        Some(Previous::Counter(_)) => number(now),
                        _ => None,
                    }
                }
                Kind::Histogram => {
                    let (Some(count), Some(sum)) = (r.count, r.sum) else {
                        continue;
                    };
                    if !(count.is_finite() && sum.is_finite() && count >= 0.0) {
                        continue;
                    }
                    let before = previous.get(&key).copied();
                    next.insert(key.clone(), Previous::Histogram { count, sum });
                    let delta = match before {
                        Some(Previous::Histogram { count: pc, sum: ps }) if count >= pc => {
                            Some((count - pc, sum - ps))
                        }
                        Some(Previous::Histogram { .. }) => Some((count, sum)),
                        _ => None,
                    };
                    match delta {
                        Some((c, s)) if c > 0.0 => match (number(c), Number::from_f64(s)) {
                            (Some(c), Some(s)) => {
                                let mut set = serde_json::Map::new();
                                set.insert("Count".into(), c);
                                set.insert("Sum".into(), Value::Number(s));
                                Some(Value::Object(set))
                            }
                            _ => None,
                        },
                        _ => None,
                    }
                }
            };
            let Some(value) = value else { continue };
            let (metric, labels) = key;
            let five_xx = metric == control_plane::REQUEST_TOTAL
                && labels
                    .iter()
                    .any(|(k, v)| *k == "code" && v.starts_with('5'));
            let g = match group_of.get(&labels) {
                Some(&g) => g,
                None => {
                    group_of.insert(labels.clone(), groups.len());
                    groups.push((labels, Vec::new()));
                    groups.len() - 1
                }
            };
            let fields = &mut groups[g].1;
            if fields.iter().any(|(k, _)| *k == metric) {
                continue;
            }
            if five_xx {
                fields.push((metric, value.clone()));
                fields.push((control_plane::REQUEST_TOTAL_5XX, value));
            } else {
                fields.push((metric, value));
            }
        }
        self.control_plane.previous = next;

        let cluster = &self.settings.cluster_name;
        let leader = &self.settings.node_name;
        for (labels, fields) in groups {
            let mut ev = Ev::new(types::CONTROL_PLANE, ts, cluster);
            ev.name(keys::NODE_NAME, leader);
            for (k, v) in &labels {
                ev.name(k, v);
            }
            for (k, v) in fields {
                ev.v(k, v);
            }
            out.push(ev.into_fields());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allow_list_is_wanted() {
        for n in [
            "apiserver_request_total",
            "apiserver_request_duration_seconds_sum",
            "apiserver_request_duration_seconds_count",
            "etcd_db_total_size_in_bytes",
            "apiserver_storage_objects",
            "rest_client_requests_total",
        ] {
            assert!(wanted(n), "{n}");
        }
        for n in [
            "apiserver_request_duration_seconds_bucket",
            "apiserver_request_duration_seconds",
            "apiserver_request_total_sum",
            "apiserver_storage_objects_count",
            "apiserver_response_sizes_sum",
            "etcd_requests_total",
            "go_goroutines",
            "process_resident_memory_bytes",
        ] {
            assert!(!wanted(n), "{n}");
        }
    }

    #[test]
    fn labels_become_fields_as_the_agent_relabels_them() {
        let raw: Vec<(String, String)> = [
            ("verb", "GET"),
            ("type", "pods"),
            ("dry_run", ""),
            ("ClusterName", "other"),
            ("apiserver_storage_objects", "x"),
            ("code", "200"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            labels_of(&raw),
            vec![
                ("code", "200".to_string()),
                ("exported_ClusterName", "other".to_string()),
                ("exported_apiserver_storage_objects", "x".to_string()),
                ("kubernetes_type", "pods".to_string()),
                ("verb", "GET".to_string()),
            ]
        );
    }

    #[test]
    fn integral_values_are_integers() {
        assert_eq!(number(3.0), Some(Value::from(3)));
        assert_eq!(number(10_354_688.0), Some(Value::from(10_354_688)));
        assert_eq!(number(0.25), Some(serde_json::json!(0.25)));
        assert_eq!(number(f64::NAN), None);
    }
}
