//! Metric identities (series) and the registry that numbers them, with the cardinality
//! guards: per namespace, and for all namespaces together (issue 15, item 12).
//!
//! A series is what CloudWatch calls a metric: namespace + metric name + the full set of
//! dimensions (reference §1.2, §6.2 "CloudWatch metric identity"). Every distinct dimension
//! set of an EMF directive is its own series, so `{ClusterName}` and
//! `{ClusterName, Namespace, PodName}` of `pod_cpu_utilization` are two series.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The identity of one metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub namespace: String,
    pub name: String,
    /// Dimension name → value, ordered by name.
    pub dimensions: BTreeMap<String, String>,
}

impl SeriesKey {
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        dimensions: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        SeriesKey {
            namespace: namespace.into(),
            name: name.into(),
            dimensions: dimensions
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// `name{K=V,...}` — a compact label for logs and CLI tables.
    pub fn label(&self) -> String {
        let dims: Vec<String> = self
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}{{{}}}", self.name, dims.join(","))
    }
}

/// One dimension condition of a search: `value: None` matches any value (written `*` in the
/// API and CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionMatcher {
    pub name: String,
    pub value: Option<String>,
}

impl DimensionMatcher {
    pub fn exact(name: impl Into<String>, value: impl Into<String>) -> Self {
        DimensionMatcher {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    pub fn any(name: impl Into<String>) -> Self {
        DimensionMatcher {
            name: name.into(),
            value: None,
        }
    }
}

/// Which series a query or a listing addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SeriesSelector {
    /// `None` lists every namespace (listing only; queries need one).
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Vec<DimensionMatcher>,
    /// `true`: the series' dimension names must be exactly the matchers' names — CloudWatch's
    /// rule that a metric is identified by its full dimension set (and the "schema" of a
    /// SEARCH expression). `false`: the series must have at least these dimensions, as
    /// ListMetrics filters do.
    pub exact_dimensions: bool,
}

impl SeriesSelector {
    /// One metric, fully identified.
    pub fn metric(key: &SeriesKey) -> Self {
        SeriesSelector {
            namespace: Some(key.namespace.clone()),
            metric_name: Some(key.name.clone()),
            dimensions: key
                .dimensions
                .iter()
                .map(|(k, v)| DimensionMatcher::exact(k, v))
                .collect(),
            exact_dimensions: true,
        }
    }

    pub fn matches(&self, key: &SeriesKey) -> bool {
        if self.namespace.as_ref().is_some_and(|n| *n != key.namespace)
            || self.metric_name.as_ref().is_some_and(|n| *n != key.name)
        {
            return false;
        }
        if self.exact_dimensions && self.dimensions.len() != key.dimensions.len() {
            return false;
        }
        self.dimensions
            .iter()
            .all(|m| match (key.dimensions.get(&m.name), &m.value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(v), Some(want)) => v == want,
            })
    }
}

/// What the registry knows about a series besides its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    pub id: u32,
    #[serde(flatten)]
    pub key: SeriesKey,
    /// The CloudWatch unit of the first datapoint (`None` = no unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The cardinality guard's counters for one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardinalityStats {
    pub namespace: String,
    pub series: usize,
    pub limit: usize,
    /// Datapoints dropped because they would have created a series beyond the limit.
    pub rejected_datapoints: u64,
}

/// How close the store-wide series cap is: for an operator to alarm on before it is hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesUsage {
    pub count: usize,
    pub limit: usize,
    /// Datapoints dropped since start because they would have created a series past a cap
    /// (this one or a namespace's).
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct NamespaceGuard {
    series: usize,
    rejected_datapoints: u64,
    warned: bool,
}

/// Outcome of resolving a datapoint's identity.
pub(crate) enum Resolve {
    Known(u32),
    Created(u32),
    Rejected,
}

/// dimensions → series id, for one metric name.
type ByDimensions = HashMap<BTreeMap<String, String>, u32>;
/// metric name → its series.
type ByName = HashMap<String, ByDimensions>;

/// Series numbering. Ids are dense and never reused, so segment files can refer to them.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    series: Vec<SeriesInfo>,
    /// namespace → metric name → dimensions → id. Nested so that a lookup borrows the
    /// datapoint's strings instead of building a key.
    index: HashMap<String, ByName>,
    guards: HashMap<String, NamespaceGuard>,
    limit_per_namespace: usize,
    /// Series of all namespaces together: every series costs registry memory for the life
    /// of the store (ids are never reused), whatever its namespace.
    limit_total: usize,
    rejected_total: u64,
    warned_total: bool,
}

impl Registry {
    pub fn new(limit_per_namespace: usize, limit_total: usize) -> Self {
        Registry {
            limit_per_namespace,
            limit_total,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn all(&self) -> &[SeriesInfo] {
        &self.series
    }

    /// Re-inserts a persisted series (on open). Ids must come in order.
    pub fn restore(&mut self, info: SeriesInfo) -> Result<(), String> {
        if info.id as usize != self.series.len() {
            return Err(format!(
                "series id {} out of sequence (expected {})",
                info.id,
                self.series.len()
            ));
        }
        self.insert(info.key.clone(), info.unit.clone());
        Ok(())
    }

    pub fn lookup(
        &self,
        namespace: &str,
        name: &str,
        dims: &BTreeMap<String, String>,
    ) -> Option<u32> {
        self.index.get(namespace)?.get(name)?.get(dims).copied()
    }

    /// Finds or creates the series; refuses to create one past the namespace's limit, counts
    /// the refusal, and logs once per namespace (per process) when the limit is first hit.
    /// Whether [`Self::resolve`] would give the key an id now: known, or room for a new
    /// series in its namespace and in all (a check ahead of ingest; a concurrent ingest may
    /// still take the last room).
    pub fn admits(&self, namespace: &str, name: &str, dims: &BTreeMap<String, String>) -> bool {
        self.lookup(namespace, name, dims).is_some()
            || (self.series.len() < self.limit_total
                && self
                    .guards
                    .get(namespace)
                    .is_none_or(|g| g.series < self.limit_per_namespace))
    }

    pub fn resolve(
        &mut self,
        namespace: &str,
        name: &str,
        dims: &BTreeMap<String, String>,
        unit: Option<&str>,
    ) -> Resolve {
        if let Some(id) = self.lookup(namespace, name, dims) {
            return Resolve::Known(id);
        }
        if self.series.len() >= self.limit_total {
            self.rejected_total += 1;
            if !self.warned_total {
                self.warned_total = true;
                let limit = self.limit_total;
                tracing::warn!(
                    namespace,
                    limit,
                    metric = name,
                    "metric series limit reached: the store holds {limit} series; datapoints of new series are dropped and counted (--max-metric-series)"
                );
            }
            return Resolve::Rejected;
        }
        let limit = self.limit_per_namespace;
        let guard = self.guards.entry(namespace.to_string()).or_default();
        if guard.series >= limit {
            guard.rejected_datapoints += 1;
            if !guard.warned {
                guard.warned = true;
                tracing::warn!(
                    namespace,
                    limit,
                    metric = name,
                    "metric cardinality limit reached: namespace has {limit} series; datapoints of new series are dropped and counted (see cardinality stats)"
                );
            }
            return Resolve::Rejected;
        }
        let key = SeriesKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
            dimensions: dims.clone(),
        };
        Resolve::Created(self.insert(key, unit.map(str::to_string)))
    }

    fn insert(&mut self, key: SeriesKey, unit: Option<String>) -> u32 {
        let id = self.series.len() as u32;
        self.guards.entry(key.namespace.clone()).or_default().series += 1;
        self.index
            .entry(key.namespace.clone())
            .or_default()
            .entry(key.name.clone())
            .or_default()
            .insert(key.dimensions.clone(), id);
        self.series.push(SeriesInfo { id, key, unit });
        id
    }

    /// Series matching a selector, in key order.
    pub fn select(&self, sel: &SeriesSelector) -> Vec<&SeriesInfo> {
        let mut out: Vec<&SeriesInfo> = Vec::new();
        let namespaces: Vec<&ByName> = match &sel.namespace {
            Some(ns) => self.index.get(ns).into_iter().collect(),
            None => self.index.values().collect(),
        };
        for names in namespaces {
            let maps: Vec<&ByDimensions> = match &sel.metric_name {
                Some(n) => names.get(n).into_iter().collect(),
                None => names.values().collect(),
            };
            for m in maps {
                for id in m.values() {
                    let info = &self.series[*id as usize];
                    if sel.matches(&info.key) {
                        out.push(info);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    pub fn usage(&self) -> SeriesUsage {
        SeriesUsage {
            count: self.series.len(),
            limit: self.limit_total,
            rejected: self.rejected_total
                + self
                    .guards
                    .values()
                    .map(|g| g.rejected_datapoints)
                    .sum::<u64>(),
        }
    }

    pub fn cardinality(&self) -> Vec<CardinalityStats> {
        let mut v: Vec<CardinalityStats> = self
            .guards
            .iter()
            .map(|(ns, g)| CardinalityStats {
                namespace: ns.clone(),
                series: g.series,
                limit: self.limit_per_namespace,
                rejected_datapoints: g.rejected_datapoints,
            })
            .collect();
        v.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn guard_rejects_new_series_past_the_limit_and_counts() {
        let mut r = Registry::new(2, 100);
        assert!(matches!(
            r.resolve("N", "m", &dims(&[("a", "1")]), None),
            Resolve::Created(0)
        ));
        assert!(matches!(
            r.resolve("N", "m", &dims(&[("a", "2")]), None),
            Resolve::Created(1)
        ));
        assert!(matches!(
            r.resolve("N", "m", &dims(&[("a", "1")]), None),
            Resolve::Known(0)
        ));
        assert!(matches!(
            r.resolve("N", "m", &dims(&[("a", "3")]), None),
            Resolve::Rejected
        ));
        assert!(matches!(
            r.resolve("N", "m", &dims(&[("a", "4")]), None),
            Resolve::Rejected
        ));
        // Another namespace has its own budget.
        assert!(matches!(
            r.resolve("O", "m", &dims(&[]), None),
            Resolve::Created(2)
        ));
        let stats = r.cardinality();
        assert_eq!(stats[0].namespace, "N");
        assert_eq!(stats[0].series, 2);
        assert_eq!(stats[0].rejected_datapoints, 2);
        assert_eq!(stats[1].rejected_datapoints, 0);
    }

    #[test]
    fn the_store_wide_cap_holds_across_namespaces() {
        let mut r = Registry::new(10, 3);
        for ns in ["A", "B", "C"] {
            assert!(matches!(
                r.resolve(ns, "m", &dims(&[]), None),
                Resolve::Created(_)
            ));
        }
        // A fourth namespace has room of its own, the store has none.
        assert!(matches!(
            r.resolve("D", "m", &dims(&[]), None),
            Resolve::Rejected
        ));
        assert!(matches!(
            r.resolve("A", "m", &dims(&[]), None),
            Resolve::Known(0)
        ));
        assert_eq!(
            r.usage(),
            SeriesUsage {
                count: 3,
                limit: 3,
                rejected: 1
            }
        );
    }

    #[test]
    fn selectors_exact_and_partial() {
        let mut r = Registry::new(100, 100);
        let pod = dims(&[
            ("ClusterName", "c"),
            ("Namespace", "prod"),
            ("PodName", "api"),
        ]);
        let pod2 = dims(&[
            ("ClusterName", "c"),
            ("Namespace", "dev"),
            ("PodName", "api"),
        ]);
        let ns = dims(&[("ClusterName", "c"), ("Namespace", "prod")]);
        for d in [&pod, &pod2, &ns] {
            r.resolve("CI", "pod_cpu_utilization", d, Some("Percent"));
        }
        let sel = SeriesSelector {
            namespace: Some("CI".into()),
            metric_name: Some("pod_cpu_utilization".into()),
            dimensions: vec![
                DimensionMatcher::exact("ClusterName", "c"),
                DimensionMatcher::any("PodName"),
                DimensionMatcher::exact("Namespace", "prod"),
            ],
            exact_dimensions: true,
        };
        let got = r.select(&sel);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].key.dimensions, pod);
        let partial = SeriesSelector {
            dimensions: vec![DimensionMatcher::exact("Namespace", "prod")],
            exact_dimensions: false,
            ..sel.clone()
        };
        assert_eq!(r.select(&partial).len(), 2);
        let everything = SeriesSelector::default();
        assert_eq!(r.select(&everything).len(), 3);
    }
}
