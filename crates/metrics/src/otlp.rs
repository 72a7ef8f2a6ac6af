//! OTLP metrics → Prometheus-model samples (issue 17): what an OTLP metrics export
//! (`ExportMetricsServiceRequest`) becomes before it is stored as [`SampleSeries`]. Names and
//! labels are the ones Prometheus 3's OTLP receiver gives the same data with its default
//! translation strategy (`UnderscoreEscapingWithSuffixes`), so PromQL, dashboards and alerts
//! written against Prometheus work unchanged. The rules below were checked against
//! `prometheus/otlptranslator` v1.0.0 (what Prometheus 3 uses: `metric_namer.go`,
//! `unit_namer.go`, `label_namer.go`, `strconv.go`) and Prometheus's
//! `storage/remote/otlptranslator/prometheusremotewrite/` (`helper.go`, `metrics_to_prw.go`,
//! `number_data_points.go`) and `config/config.go` (the receiver's defaults).
//!
//! Metric names:
//! - the OTel name is split at every character outside `[a-zA-Z0-9:]` and the pieces joined
//!   with `_`: `http.server.duration` → `http_server_duration`; runs of invalid characters and
//!   `_` collapse, leading and trailing ones go;
//! - the unit becomes a suffix: the part before `/` is mapped (`s` → `seconds`, `ms` →
//!   `milliseconds`, `By` → `bytes`, `KiBy` → `kibibytes`, `%` → `percent`, `1` → nothing, …;
//!   others kept, cleaned like a name) and the part after `/` becomes `per_<unit>` (`s` →
//!   `second`, `m` → `minute`, …): `m/s` → `meters_per_second`. A unit part in braces
//!   (`{request}`) is dropped, and a suffix the name already has as a `_`-separated word is
//!   not added again (`process.runtime.seconds` with unit `s` stays `…_seconds`);
//! - monotonic sums (delta ones too) end in `_total` (moved to the end if the name has it
//!   elsewhere), gauges with unit `1` in `_ratio`; a name starting with a digit gets a `_`
//!   in front. A metric whose name comes out empty is rejected.
//! - histograms are `<name>_bucket{le="…"}` (cumulative counts; bounds formatted as Go's
//!   `FormatFloat(v, 'f', -1, 64)`: `0.005`, `1`, `100000`; plus `le="+Inf"` = count),
//!   `<name>_sum` (only when the point has a sum) and `<name>_count`; summaries are
//!   `<name>{quantile="…"}`, `<name>_sum`, `<name>_count`.
//!
//! Labels of a data point, later steps overriding earlier ones as in Prometheus:
//! 1. its attributes, sorted by key (an attribute `__name__` is ignored). Keys become label
//!    names as with Prometheus's default OTLP settings (`label_name_underscore_sanitization`
//!    and `label_name_preserve_multiple_underscores`, both on by default): every character
//!    outside `[a-zA-Z0-9]` becomes `_` (no collapsing), a leading digit gets `key_` in front
//!    (`2xx` → `key_2xx`), a single leading `_` gets `key` (`_id` → `key_id`; `__x` is
//!    kept). A key that is empty or only underscores cannot be a label: the point is
//!    rejected (Prometheus fails the metric). Keys that end up with one name join their
//!    values with `;` in key order (`a.b=1`, `a_b=2` → `a_b="1;2"`).
//! 2. every resource attribute, named the same way, where step 1 gave no such label — what
//!    Prometheus does with `promote_all_resource_attributes: true`; kinsight's choice, since
//!    it has no `target_info` join. Two resource attributes with one name: the later wins.
//!    A resource attribute that cannot be a label name is left out (by default Prometheus
//!    promotes none, so such a point is not refused there either).
//! 3. `job` = `service.namespace/service.name` (or `service.name` alone) and `instance` =
//!    `service.instance.id`, when the resource has them — these replace attributes of that
//!    name, as in Prometheus.
//! 4. when the scope has a name, what Prometheus's `promote_scope_metadata: true` adds:
//!    `otel_scope_<attribute>` per scope attribute, `otel_scope_name`, `otel_scope_version`
//!    and `otel_scope_schema_url`.
//! 5. `le` / `quantile` of histogram buckets and summary quantiles.
//!
//! Attribute values are strings as Prometheus reads them (pdata's `AsString`): integers in
//! decimal, booleans as `true` / `false`, doubles as JSON numbers (`1.5`, `1e+21`), bytes in base64,
//! arrays and maps as JSON (keys sorted). A label whose value is empty is absent, as in
//! Prometheus.
//!
//! Values and times: a sample's time is `time_unix_nano` / 10⁶ (ms, rounded down); a point
//! without a time (0) or past year 2262 is rejected. Integer values become floats. A point
//! flagged `NO_RECORDED_VALUE` gives the Prometheus staleness marker ([`STALE_NAN_BITS`]) in
//! each of its series. A number point with neither flag nor value is rejected (Prometheus
//! would store 0).
//!
//! Temporality: gauges, summaries and cumulative sums and histograms go to
//! [`Translated::absolute`]; delta sums and histograms to [`Translated::delta`], as increments
//! the receiver turns into cumulative series — what Prometheus 3 does with the feature
//! `otlp-deltatocumulative` (without either delta flag it drops delta metrics; with
//! `otlp-native-delta-ingestion` it stores the increments as they are). Unspecified
//! temporality is rejected.
//!
//! Deliberately left out: exponential histograms (rejected — they would need native
//! histograms), exemplars, start times (`_created` series), metadata (help, type, unit),
//! `target_info` (every resource attribute is a label already), and the UTF-8 and no-suffix
//! translation strategies. Samples of one series from several points are merged in input
//! order; series come out sorted by name, then labels.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, SummaryDataPoint, metric::Data, number_data_point,
};

use crate::labels::{METRIC_NAME_LABEL, is_valid_label_name};
use crate::samples::SampleSeries;

/// Prometheus's staleness marker, the value of a point flagged `NO_RECORDED_VALUE` (the same
/// bits as `kinsight_promql::STALE_NAN_BITS`, which this crate does not depend on).
pub const STALE_NAN_BITS: u64 = 0x7ff0000000000002;

/// At most this many distinct reasons in [`Translated::errors`].
pub const MAX_ERRORS: usize = 10;

/// `DataPointFlags::NoRecordedValueMask`: the point marks the end of its series.
const NO_RECORDED_VALUE: u32 = 1;

/// An OTLP metrics export as Prometheus-model series (module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translated {
    /// Gauges, cumulative sums/histograms/summaries: store as they are.
    pub absolute: Vec<SampleSeries>,
    /// Delta sums and delta histograms: each value is an increment the receiver adds to the
    /// series' last stored value (so they become cumulative counters). A staleness marker
    /// ([`STALE_NAN_BITS`]) here is not an increment: the series ended.
    pub delta: Vec<SampleSeries>,
    /// Data points that could not be translated (exponential histograms, metrics without
    /// data, invalid timestamps...).
    pub rejected_points: u64,
    /// Up to [`MAX_ERRORS`] distinct human-readable reasons for rejected points (for OTLP's
    /// `partialSuccess.error_message`). A metric without data points adds a reason but
    /// rejects no point: with `rejected_points` 0 that is a warning in OTLP's terms.
    pub errors: Vec<String>,
}

/// Translates an OTLP metrics export (module doc). Never fails: what cannot be translated
/// is counted in [`Translated::rejected_points`] and explained in [`Translated::errors`].
pub fn translate(req: &ExportMetricsServiceRequest) -> Translated {
    let mut out = Collector::default();
    for rm in &req.resource_metrics {
        let resource = ResourceLabels::new(rm);
        for sm in &rm.scope_metrics {
            let ctx = LabelContext {
                resource: &resource,
                scope: ScopeLabels::new(sm),
            };
            for metric in &sm.metrics {
                out.metric(metric, &ctx);
            }
        }
    }
    out.finish()
}

/// What the metric name rules need to know of a metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    MonotonicCounter,
    /// Non-monotonic sums, histograms, summaries: no type suffix.
    Other,
}

/// Whether `c` may appear in a metric name (`_` is a separator while names are built).
fn is_metric_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// The Prometheus name of an OTel metric (module doc), `None` when nothing valid is left.
fn metric_name(name: &str, unit: &str, kind: Kind) -> Option<String> {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_metric_name_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = unit_suffixes(unit);
    add_unit_tokens(&mut tokens, clean_up_unit(&main), clean_up_unit(&per));
    if kind == Kind::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    // Prometheus adds `_ratio` to gauges only: some receivers wrongly give counts of things
    // the unit `1`, and a counter of ratios makes no sense anyway.
    if unit == "1" && kind == Kind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    (!out.is_empty()).then_some(out)
}

/// The OTel (UCUM) unit's main part as a Prometheus word, `None` when not in the table.
fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        _ => return None,
    })
}

/// The unit after `/` as a Prometheus word (singular: `per_second`).
fn per_unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The main and `per_…` suffixes of `unit`, not yet cleaned; empty when absent or in braces.
fn unit_suffixes(unit: &str) -> (String, String) {
    let has_braces = |u: &str| u.contains(['{', '}']);
    let (main_otel, per_otel) = match unit.split_once('/') {
        Some((main, per)) => (main, per),
        None => (unit, ""),
    };
    let main_otel = main_otel.trim();
    let main = if main_otel.is_empty() || has_braces(main_otel) {
        String::new()
    } else {
        unit_word(main_otel).unwrap_or(main_otel).to_owned()
    };
    let per_otel = per_otel.trim();
    let per = if per_otel.is_empty() || has_braces(per_otel) {
        String::new()
    } else {
        format!("per_{}", per_unit_word(per_otel).unwrap_or(per_otel))
    };
    (main, per)
}

/// A unit suffix with invalid characters as `_`, runs of `_` collapsed, no leading `_`.
fn clean_up_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_name_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_owned(),
        None => out,
    }
}

/// Appends the unit suffixes the name does not have yet as words.
fn add_unit_tokens(tokens: &mut Vec<String>, mut main: String, mut per: String) {
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        if per.ends_with('_') {
            per.pop();
        }
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() && main.ends_with('_') {
        main.pop();
    }
    for suffix in [main, per] {
        if !suffix.is_empty() {
            tokens.push(suffix);
        }
    }
}

/// The label name of an OTel attribute key (module doc, step 1); `None` when it cannot be one.
fn label_name(key: &str) -> Option<String> {
    let single_underscore = key.starts_with('_') && !key.starts_with("__");
    if is_valid_label_name(key) && !single_underscore && !key.bytes().all(|b| b == b'_') {
        return Some(key.to_owned());
    }
    let mut name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    (!name.bytes().all(|b| b == b'_')).then_some(name)
}

/// Sets a label as Prometheus's label builder does: an empty value removes it.
fn set(labels: &mut BTreeMap<String, String>, name: String, value: String) {
    if value.is_empty() {
        labels.remove(&name);
    } else {
        labels.insert(name, value);
    }
}

/// The labels every point of one resource gets (module doc, steps 2 and 3).
struct ResourceLabels {
    promoted: BTreeMap<String, String>,
    job: String,
    instance: String,
}

impl ResourceLabels {
    fn new(rm: &ResourceMetrics) -> Self {
        let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let mut promoted = BTreeMap::new();
        for kv in attrs {
            if let Some(name) = label_name(&kv.key) {
                set(&mut promoted, name, any_value_string(kv.value.as_ref()));
            }
        }
        let get = |key: &str| {
            attrs
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| any_value_string(kv.value.as_ref()))
        };
        let job = match (get("service.name"), get("service.namespace")) {
            (Some(name), Some(namespace)) => format!("{namespace}/{name}"),
            (Some(name), None) => name,
            (None, _) => String::new(),
        };
        ResourceLabels {
            promoted,
            job,
            instance: get("service.instance.id").unwrap_or_default(),
        }
    }
}

/// The `otel_scope_*` labels of a scope with a name (module doc, step 4).
struct ScopeLabels {
    attrs: BTreeMap<String, String>,
    name: String,
    version: String,
    schema_url: String,
}

impl ScopeLabels {
    fn new(sm: &ScopeMetrics) -> Option<Self> {
        let scope = sm.scope.as_ref().filter(|s| !s.name.is_empty())?;
        let mut attrs = BTreeMap::new();
        for kv in &scope.attributes {
            // `otel_scope_` in front: never empty, never only underscores.
            if let Some(name) = label_name(&format!("otel_scope_{}", kv.key)) {
                set(&mut attrs, name, any_value_string(kv.value.as_ref()));
            }
        }
        Some(ScopeLabels {
            attrs,
            name: scope.name.clone(),
            version: scope.version.clone(),
            schema_url: sm.schema_url.clone(),
        })
    }
}

struct LabelContext<'a> {
    resource: &'a ResourceLabels,
    scope: Option<ScopeLabels>,
}

impl LabelContext<'_> {
    /// The labels of a point with `attrs` (module doc, steps 1 to 4), or why it has none.
    fn point_labels(&self, attrs: &[KeyValue]) -> Result<BTreeMap<String, String>, String> {
        let mut sorted: Vec<&KeyValue> = attrs
            .iter()
            .filter(|kv| kv.key != METRIC_NAME_LABEL)
            .collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for kv in sorted {
            let name = label_name(&kv.key).ok_or_else(|| {
                format!(
                    "attribute {:?} cannot be a label name (empty or only underscores)",
                    kv.key
                )
            })?;
            let value = any_value_string(kv.value.as_ref());
            // Labels never hold empty values, so an existing one has something to join.
            match labels.get_mut(&name) {
                Some(existing) => {
                    existing.push(';');
                    existing.push_str(&value);
                }
                None => set(&mut labels, name, value),
            }
        }
        for (name, value) in &self.resource.promoted {
            labels.entry(name.clone()).or_insert_with(|| value.clone());
        }
        if !self.resource.job.is_empty() {
            labels.insert("job".into(), self.resource.job.clone());
        }
        if !self.resource.instance.is_empty() {
            labels.insert("instance".into(), self.resource.instance.clone());
        }
        if let Some(scope) = &self.scope {
            for (name, value) in &scope.attrs {
                labels.insert(name.clone(), value.clone());
            }
            set(&mut labels, "otel_scope_name".into(), scope.name.clone());
            set(
                &mut labels,
                "otel_scope_version".into(),
                scope.version.clone(),
            );
            set(
                &mut labels,
                "otel_scope_schema_url".into(),
                scope.schema_url.clone(),
            );
        }
        // The metric name is the series' own; a label of that name could only be a remnant.
        labels.remove(METRIC_NAME_LABEL);
        Ok(labels)
    }
}

type SeriesId = (String, BTreeMap<String, String>);

#[derive(Default)]
struct Collector {
    absolute: BTreeMap<SeriesId, Vec<(i64, f64)>>,
    delta: BTreeMap<SeriesId, Vec<(i64, f64)>>,
    rejected_points: u64,
    errors: Vec<String>,
}

/// What every series of one point shares.
struct Point {
    t_ms: i64,
    labels: BTreeMap<String, String>,
    stale: bool,
}

impl Point {
    /// `v`, or the staleness marker if the point has no recorded value.
    fn value(&self, v: f64) -> f64 {
        if self.stale {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            v
        }
    }
}

impl Collector {
    fn reject(&mut self, points: usize, reason: String) {
        self.rejected_points += points as u64;
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&reason) {
            self.errors.push(reason);
        }
    }

    fn push(
        &mut self,
        delta: bool,
        name: String,
        labels: BTreeMap<String, String>,
        t: i64,
        v: f64,
    ) {
        let series = if delta {
            &mut self.delta
        } else {
            &mut self.absolute
        };
        series.entry((name, labels)).or_default().push((t, v));
    }

    fn metric(&mut self, m: &Metric, ctx: &LabelContext<'_>) {
        let Some(data) = &m.data else {
            self.reject(
                0,
                format!(
                    "metric {:?}: no data (missing or unknown metric type)",
                    m.name
                ),
            );
            return;
        };
        match data {
            Data::Gauge(g) => {
                let Some(family) = self.family(m, Kind::Gauge, g.data_points.len()) else {
                    return;
                };
                for p in &g.data_points {
                    self.number(m, &family, false, p, ctx);
                }
            }
            Data::Sum(s) => {
                let n = s.data_points.len();
                let Some(delta) = self.temporality(m, s.aggregation_temporality, n) else {
                    return;
                };
                let kind = if s.is_monotonic {
                    Kind::MonotonicCounter
                } else {
                    Kind::Other
                };
                let Some(family) = self.family(m, kind, n) else {
                    return;
                };
                for p in &s.data_points {
                    self.number(m, &family, delta, p, ctx);
                }
            }
            Data::Histogram(h) => {
                let n = h.data_points.len();
                let Some(delta) = self.temporality(m, h.aggregation_temporality, n) else {
                    return;
                };
                let Some(family) = self.family(m, Kind::Other, n) else {
                    return;
                };
                for p in &h.data_points {
                    self.histogram(m, &family, delta, p, ctx);
                }
            }
            Data::Summary(s) => {
                let Some(family) = self.family(m, Kind::Other, s.data_points.len()) else {
                    return;
                };
                for p in &s.data_points {
                    self.summary(m, &family, p, ctx);
                }
            }
            Data::ExponentialHistogram(h) => self.reject(
                h.data_points.len(),
                format!(
                    "exponential histogram {}: not supported; configure the exporter for \
                     explicit-bucket histograms",
                    m.name
                ),
            ),
        }
    }

    /// Whether the metric's points are deltas; `None` (and `points` rejected) when its
    /// temporality is neither cumulative nor delta.
    fn temporality(&mut self, m: &Metric, temporality: i32, points: usize) -> Option<bool> {
        match AggregationTemporality::try_from(temporality) {
            Ok(AggregationTemporality::Cumulative) => Some(false),
            Ok(AggregationTemporality::Delta) => Some(true),
            Ok(AggregationTemporality::Unspecified) | Err(_) => {
                self.reject(
                    points,
                    format!(
                        "metric {:?}: aggregation temporality {temporality} is neither \
                         cumulative (2) nor delta (1)",
                        m.name
                    ),
                );
                None
            }
        }
    }

    /// The metric's Prometheus name; `None` (and `points` rejected, or a warning for a metric
    /// without points) when it has none or no points.
    fn family(&mut self, m: &Metric, kind: Kind, points: usize) -> Option<String> {
        let Some(name) = metric_name(&m.name, &m.unit, kind) else {
            self.reject(
                points,
                format!(
                    "metric {:?}: no valid Prometheus metric name (it needs a character of \
                     [a-zA-Z0-9:])",
                    m.name
                ),
            );
            return None;
        };
        if points == 0 {
            self.reject(0, format!("metric {:?}: no data points", m.name));
            return None;
        }
        Some(name)
    }

    /// The shared part of a point's series, or `None` with the point rejected.
    fn point(
        &mut self,
        m: &Metric,
        time_unix_nano: u64,
        flags: u32,
        attrs: &[KeyValue],
        ctx: &LabelContext<'_>,
    ) -> Option<Point> {
        let t_ms = match time_unix_nano {
            0 => Err("data point without a time (time_unix_nano 0)".to_owned()),
            ns => i64::try_from(ns)
                .map(|ns| ns / 1_000_000)
                .map_err(|_| format!("time_unix_nano {ns} is after the year 2262")),
        };
        match t_ms.and_then(|t_ms| Ok((t_ms, ctx.point_labels(attrs)?))) {
            Ok((t_ms, labels)) => Some(Point {
                t_ms,
                labels,
                stale: flags & NO_RECORDED_VALUE != 0,
            }),
            Err(reason) => {
                self.reject(1, format!("metric {:?}: {reason}", m.name));
                None
            }
        }
    }

    fn number(
        &mut self,
        m: &Metric,
        family: &str,
        delta: bool,
        p: &NumberDataPoint,
        ctx: &LabelContext<'_>,
    ) {
        let Some(point) = self.point(m, p.time_unix_nano, p.flags, &p.attributes, ctx) else {
            return;
        };
        let v = match p.value {
            _ if point.stale => f64::from_bits(STALE_NAN_BITS),
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => {
                self.reject(
                    1,
                    format!("metric {:?}: data point without a value", m.name),
                );
                return;
            }
        };
        self.push(delta, family.to_owned(), point.labels, point.t_ms, v);
    }

    fn histogram(
        &mut self,
        m: &Metric,
        family: &str,
        delta: bool,
        p: &HistogramDataPoint,
        ctx: &LabelContext<'_>,
    ) {
        let Some(point) = self.point(m, p.time_unix_nano, p.flags, &p.attributes, ctx) else {
            return;
        };
        let t = point.t_ms;
        if let Some(sum) = p.sum {
            let v = point.value(sum);
            self.push(delta, format!("{family}_sum"), point.labels.clone(), t, v);
        }
        let count = point.value(p.count as f64);
        self.push(
            delta,
            format!("{family}_count"),
            point.labels.clone(),
            t,
            count,
        );
        // As Prometheus: one bucket per bound that has a count, whatever the lengths claim.
        let mut cumulative: u64 = 0;
        for (&bound, &n) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
            cumulative = cumulative.wrapping_add(n);
            let mut labels = point.labels.clone();
            labels.insert("le".into(), format_float(bound));
            let v = point.value(cumulative as f64);
            self.push(delta, format!("{family}_bucket"), labels, t, v);
        }
        let mut labels = point.labels;
        labels.insert("le".into(), "+Inf".into());
        self.push(delta, format!("{family}_bucket"), labels, t, count);
    }

    fn summary(&mut self, m: &Metric, family: &str, p: &SummaryDataPoint, ctx: &LabelContext<'_>) {
        let Some(point) = self.point(m, p.time_unix_nano, p.flags, &p.attributes, ctx) else {
            return;
        };
        let t = point.t_ms;
        let sum = point.value(p.sum);
        self.push(false, format!("{family}_sum"), point.labels.clone(), t, sum);
        let count = point.value(p.count as f64);
        self.push(
            false,
            format!("{family}_count"),
            point.labels.clone(),
            t,
            count,
        );
        for q in &p.quantile_values {
            let mut labels = point.labels.clone();
            labels.insert("quantile".into(), format_float(q.quantile));
            let v = point.value(q.value);
            self.push(false, family.to_owned(), labels, t, v);
        }
    }

    fn finish(self) -> Translated {
        let series = |map: BTreeMap<SeriesId, Vec<(i64, f64)>>| {
            map.into_iter()
                .map(|((name, labels), samples)| SampleSeries {
                    name,
                    labels,
                    samples,
                })
                .collect()
        };
        Translated {
            absolute: series(self.absolute),
            delta: series(self.delta),
            rejected_points: self.rejected_points,
            errors: self.errors,
        }
    }
}

/// `v` as Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest decimal that reads back
/// as `v`, never an exponent (`le` and `quantile` values).
fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's `Display` for floats is also shortest round-trip, never scientific.
        v.to_string()
    }
}

/// An attribute value as a label value: what pdata's `Value.AsString` gives Prometheus.
fn any_value_string(v: Option<&AnyValue>) -> String {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(V::StringValue(s)) => s.clone(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::IntValue(i)) => i.to_string(),
        // pdata formats NaN and infinities as the text of encoding/json's error.
        Some(V::DoubleValue(d)) if !d.is_finite() => {
            format!("json: unsupported value: {}", format_float(*d))
        }
        Some(V::DoubleValue(d)) => json_number(*d),
        Some(V::BytesValue(b)) => base64(b),
        Some(V::ArrayValue(_) | V::KvlistValue(_)) => {
            let mut out = String::new();
            // encoding/json refuses NaN and infinities; pdata then gives "".
            match write_json(v, &mut out) {
                Ok(()) => out,
                Err(NonFinite) => String::new(),
            }
        }
    }
}

/// A double inside an attribute value JSON cannot hold.
struct NonFinite;

/// `v` as Go's `encoding/json` writes pdata's raw form of it: maps with sorted keys (the
/// last of duplicate keys wins), bytes as base64 strings, no spaces.
fn write_json(v: Option<&AnyValue>, out: &mut String) -> Result<(), NonFinite> {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None => out.push_str("null"),
        Some(V::StringValue(s)) => json_string(s, out),
        Some(V::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(V::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(V::DoubleValue(d)) if !d.is_finite() => return Err(NonFinite),
        Some(V::DoubleValue(d)) => out.push_str(&json_number(*d)),
        Some(V::BytesValue(b)) => json_string(&base64(b), out),
        Some(V::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(Some(item), out)?;
            }
            out.push(']');
        }
        Some(V::KvlistValue(kvs)) => {
            let map: BTreeMap<&str, Option<&AnyValue>> = kvs
                .values
                .iter()
                .map(|kv| (kv.key.as_str(), kv.value.as_ref()))
                .collect();
            out.push('{');
            for (i, (key, value)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(key, out);
                out.push(':');
                write_json(value, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A JSON string as Go's `encoding/json` escapes it (HTML-safe: `<`, `>`, `&` as `\u00XX`).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite double as a JSON number the way Go writes it (ES6 number-to-string): decimal
/// for 1e-6 <= |v| < 1e21 (and 0), otherwise an exponent (`1e+21`, `1.5e-7`).
fn json_number(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    } else {
        v.to_string()
    }
}

/// Standard base64 with padding (pdata's form of a bytes value).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, Sum, Summary,
        summary_data_point::ValueAtQuantile,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    const T: u64 = 1_700_000_000_123_456_789;
    const T_MS: i64 = 1_700_000_000_123;
    const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
    const DELTA: i32 = AggregationTemporality::Delta as i32;

    fn value(v: any_value::Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(v) })
    }

    fn kv(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value(any_value::Value::StringValue(v.into())),
        }
    }

    fn kvs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
        pairs.iter().map(|(k, v)| kv(k, v)).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn metric(name: &str, unit: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn number(attrs: &[(&str, &str)], v: number_data_point::Value) -> NumberDataPoint {
        NumberDataPoint {
            attributes: kvs(attrs),
            time_unix_nano: T,
            value: Some(v),
            ..Default::default()
        }
    }

    fn double(attrs: &[(&str, &str)], v: f64) -> NumberDataPoint {
        number(attrs, number_data_point::Value::AsDouble(v))
    }

    fn gauge(points: Vec<NumberDataPoint>) -> Data {
        Data::Gauge(Gauge {
            data_points: points,
        })
    }

    fn sum(monotonic: bool, temporality: i32, points: Vec<NumberDataPoint>) -> Data {
        Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        })
    }

    fn request_with(
        resource: &[(&str, &str)],
        scope: Option<InstrumentationScope>,
        metrics: Vec<Metric>,
    ) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: kvs(resource),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope,
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        request_with(&[], None, metrics)
    }

    fn one(t: &Translated) -> &SampleSeries {
        assert_eq!(t.absolute.len(), 1, "{t:#?}");
        assert!(t.delta.is_empty() && t.rejected_points == 0, "{t:#?}");
        &t.absolute[0]
    }

    fn name_of(name: &str, unit: &str, kind: Kind) -> String {
        metric_name(name, unit, kind).unwrap()
    }

    #[test]
    fn gauge_is_one_sample_at_the_time_in_ms() {
        let t = translate(&request(vec![metric(
            "system.memory.usage",
            "By",
            gauge(vec![double(&[("state", "used")], 1.5)]),
        )]));
        let s = one(&t);
        assert_eq!(s.name, "system_memory_usage_bytes");
        assert_eq!(s.labels, labels(&[("state", "used")]));
        assert_eq!(s.samples, vec![(T_MS, 1.5)]);
        assert!(t.errors.is_empty());
    }

    #[test]
    fn int_gauge_becomes_a_float() {
        let t = translate(&request(vec![metric(
            "queue.depth",
            "{item}",
            gauge(vec![number(&[], number_data_point::Value::AsInt(-42))]),
        )]));
        let s = one(&t);
        assert_eq!(s.name, "queue_depth");
        assert_eq!(s.samples, vec![(T_MS, -42.0)]);
    }

    #[test]
    fn cumulative_monotonic_sum_is_a_counter_with_unit_and_total() {
        let t = translate(&request(vec![metric(
            "system.cpu.time",
            "s",
            sum(true, CUMULATIVE, vec![double(&[("cpu", "0")], 12.25)]),
        )]));
        let s = one(&t);
        assert_eq!(s.name, "system_cpu_time_seconds_total");
        assert_eq!(s.labels, labels(&[("cpu", "0")]));
        assert_eq!(s.samples, vec![(T_MS, 12.25)]);
        // `_total` already in the name moves to the end, after the unit.
        assert_eq!(
            name_of("http.requests_total", "{request}", Kind::MonotonicCounter),
            "http_requests_total"
        );
        assert_eq!(
            name_of("io.total.time", "ms", Kind::MonotonicCounter),
            "io_time_milliseconds_total"
        );
    }

    #[test]
    fn non_monotonic_sum_is_gauge_like() {
        let t = translate(&request(vec![metric(
            "db.client.connections.usage",
            "{connection}",
            sum(false, CUMULATIVE, vec![double(&[], 7.0)]),
        )]));
        let s = one(&t);
        assert_eq!(s.name, "db_client_connections_usage");
        assert_eq!(s.samples, vec![(T_MS, 7.0)]);
    }

    #[test]
    fn delta_sums_go_to_delta() {
        let t = translate(&request(vec![
            metric(
                "http.server.requests",
                "{request}",
                sum(true, DELTA, vec![double(&[], 3.0)]),
            ),
            metric(
                "queue.change",
                "1",
                sum(false, DELTA, vec![double(&[], -2.0)]),
            ),
        ]));
        assert!(t.absolute.is_empty() && t.rejected_points == 0, "{t:#?}");
        let names: Vec<&str> = t.delta.iter().map(|s| s.name.as_str()).collect();
        // Sorted by name; `1` adds `_ratio` to gauges only.
        assert_eq!(names, ["http_server_requests_total", "queue_change"]);
        assert_eq!(t.delta[0].samples, vec![(T_MS, 3.0)]);
        assert_eq!(t.delta[1].samples, vec![(T_MS, -2.0)]);
    }

    fn histogram_point(sum: Option<f64>) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes: kvs(&[("http.route", "/api")]),
            time_unix_nano: T,
            count: 10,
            sum,
            bucket_counts: vec![1, 2, 3, 0, 4],
            explicit_bounds: vec![0.005, 1.0, 2.5, 100000.0],
            ..Default::default()
        }
    }

    fn histogram(temporality: i32, points: Vec<HistogramDataPoint>) -> Data {
        Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: temporality,
        })
    }

    #[test]
    fn histogram_has_cumulative_buckets_sum_and_count() {
        let t = translate(&request(vec![metric(
            "http.server.duration",
            "ms",
            histogram(CUMULATIVE, vec![histogram_point(Some(123.5))]),
        )]));
        assert!(t.delta.is_empty() && t.rejected_points == 0, "{t:#?}");
        let got: Vec<(String, Option<String>, f64)> = t
            .absolute
            .iter()
            .map(|s| {
                assert_eq!(s.labels.get("http_route").map(String::as_str), Some("/api"));
                assert_eq!(s.samples.len(), 1);
                assert_eq!(s.samples[0].0, T_MS);
                (s.name.clone(), s.labels.get("le").cloned(), s.samples[0].1)
            })
            .collect();
        let b = "http_server_duration_milliseconds_bucket";
        let le = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            vec![
                // Label values sort as strings.
                (b.into(), le("+Inf"), 10.0),
                (b.into(), le("0.005"), 1.0),
                (b.into(), le("1"), 3.0),
                (b.into(), le("100000"), 6.0),
                (b.into(), le("2.5"), 6.0),
                ("http_server_duration_milliseconds_count".into(), None, 10.0),
                ("http_server_duration_milliseconds_sum".into(), None, 123.5),
            ]
        );
    }

    #[test]
    fn histogram_without_sum_has_no_sum_series_and_delta_goes_to_delta() {
        let t = translate(&request(vec![metric(
            "rpc.duration",
            "s",
            histogram(DELTA, vec![histogram_point(None)]),
        )]));
        assert!(t.absolute.is_empty() && t.rejected_points == 0, "{t:#?}");
        assert_eq!(t.delta.len(), 6);
        assert!(t.delta.iter().all(|s| s.name != "rpc_duration_seconds_sum"));
        assert!(
            t.delta
                .iter()
                .any(|s| s.name == "rpc_duration_seconds_count")
        );
    }

    #[test]
    fn le_and_quantile_values_are_shortest_decimals() {
        for (v, s) in [
            (0.005, "0.005"),
            (1.0, "1"),
            (0.1, "0.1"),
            (1e-7, "0.0000001"),
            (1e21, "1000000000000000000000"),
            (-0.0, "-0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(format_float(v), s);
        }
    }

    #[test]
    fn summary_has_quantiles_sum_and_count() {
        let t = translate(&request(vec![metric(
            "rpc.latency",
            "ms",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: T,
                    count: 4,
                    sum: 10.0,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.0,
                        },
                        ValueAtQuantile {
                            quantile: 0.99,
                            value: 5.0,
                        },
                    ],
                    ..Default::default()
                }],
            }),
        )]));
        assert!(t.delta.is_empty() && t.rejected_points == 0, "{t:#?}");
        let got: Vec<(&str, Option<&str>, f64)> = t
            .absolute
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.labels.get("quantile").map(String::as_str),
                    s.samples[0].1,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("rpc_latency_milliseconds", Some("0.5"), 2.0),
                ("rpc_latency_milliseconds", Some("0.99"), 5.0),
                ("rpc_latency_milliseconds_count", None, 4.0),
                ("rpc_latency_milliseconds_sum", None, 10.0),
            ]
        );
    }

    #[test]
    fn exponential_histograms_are_rejected_with_a_reason() {
        let t = translate(&request(vec![metric(
            "http.server.request.duration",
            "s",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![
                    ExponentialHistogramDataPoint {
                        time_unix_nano: T,
                        ..Default::default()
                    };
                    3
                ],
                aggregation_temporality: CUMULATIVE,
            }),
        )]));
        assert!(t.absolute.is_empty() && t.delta.is_empty());
        assert_eq!(t.rejected_points, 3);
        assert_eq!(
            t.errors,
            vec![
                "exponential histogram http.server.request.duration: not supported; configure \
                 the exporter for explicit-bucket histograms"
            ]
        );
    }

    #[test]
    fn no_recorded_value_is_the_staleness_marker() {
        let mut gauge_point = double(&[], 1.0);
        gauge_point.flags = NO_RECORDED_VALUE;
        gauge_point.value = None;
        let mut h = histogram_point(Some(1.0));
        h.flags = NO_RECORDED_VALUE;
        let t = translate(&request(vec![
            metric("up.ish", "", gauge(vec![gauge_point])),
            metric("lat", "s", histogram(CUMULATIVE, vec![h])),
        ]));
        assert_eq!(t.rejected_points, 0, "{t:#?}");
        assert_eq!(t.absolute.len(), 1 + 1 + 1 + 5);
        for s in &t.absolute {
            assert_eq!(s.samples.len(), 1);
            assert_eq!(s.samples[0].1.to_bits(), STALE_NAN_BITS, "{}", s.name);
        }
    }

    #[test]
    fn resource_attributes_become_labels_with_job_and_instance() {
        let resource = [
            ("service.name", "checkout"),
            ("service.namespace", "shop"),
            ("service.instance.id", "pod-1"),
            ("k8s.pod.name", "checkout-7d9"),
            ("host", "from-resource"),
            ("job", "overridden"),
        ];
        let t = translate(&request_with(
            &resource,
            None,
            vec![metric(
                "m",
                "",
                gauge(vec![double(
                    &[("host", "from-point"), ("instance", "x")],
                    1.0,
                )]),
            )],
        ));
        assert_eq!(
            one(&t).labels,
            labels(&[
                ("host", "from-point"),
                ("instance", "pod-1"),
                ("job", "shop/checkout"),
                ("k8s_pod_name", "checkout-7d9"),
                ("service_instance_id", "pod-1"),
                ("service_name", "checkout"),
                ("service_namespace", "shop"),
            ])
        );
        // Without a namespace the job is the service name; no instance id, no instance.
        let t = translate(&request_with(
            &[("service.name", "api")],
            None,
            vec![metric("m", "", gauge(vec![double(&[], 1.0)]))],
        ));
        assert_eq!(
            one(&t).labels,
            labels(&[("job", "api"), ("service_name", "api")])
        );
    }

    #[test]
    fn scope_name_version_schema_and_attributes_are_labels() {
        let scope = InstrumentationScope {
            name: "io.opentelemetry.jdbc".into(),
            version: "2.1.0".into(),
            attributes: kvs(&[("lib.kind", "db")]),
            ..Default::default()
        };
        let mut req = request_with(
            &[],
            Some(scope),
            vec![metric("m", "", gauge(vec![double(&[], 1.0)]))],
        );
        req.resource_metrics[0].scope_metrics[0].schema_url =
            "https://opentelemetry.io/schemas/1.24.0".into();
        assert_eq!(
            one(&translate(&req)).labels,
            labels(&[
                ("otel_scope_lib_kind", "db"),
                ("otel_scope_name", "io.opentelemetry.jdbc"),
                (
                    "otel_scope_schema_url",
                    "https://opentelemetry.io/schemas/1.24.0"
                ),
                ("otel_scope_version", "2.1.0"),
            ])
        );
        // A scope without a name adds nothing.
        let scope = InstrumentationScope {
            version: "1".into(),
            ..Default::default()
        };
        let req = request_with(
            &[],
            Some(scope),
            vec![metric("m", "", gauge(vec![double(&[], 1.0)]))],
        );
        assert!(one(&translate(&req)).labels.is_empty());
    }

    #[test]
    fn label_names_are_sanitised_and_collisions_joined_in_key_order() {
        let t = translate(&request(vec![metric(
            "m",
            "",
            gauge(vec![double(
                &[
                    ("http_method", "b"),
                    ("http.method", "a"),
                    ("http-method", "c"),
                    ("2xx", "two"),
                    ("_private", "p"),
                    ("__meta__", "kept"),
                    ("k8s..pod", "double"),
                    ("café", "x"),
                    ("empty", ""),
                    ("__name__", "ignored"),
                ],
                1.0,
            )]),
        )]));
        assert_eq!(
            one(&t).labels,
            labels(&[
                ("__meta__", "kept"),
                ("caf_", "x"),
                // `-` < `.` < `_`: values in key order.
                ("http_method", "c;a;b"),
                ("k8s__pod", "double"),
                ("key_2xx", "two"),
                ("key_private", "p"),
            ])
        );
        assert_eq!(label_name("_").as_deref(), Some("key_"));
        assert_eq!(label_name("__"), None);
        assert_eq!(label_name(""), None);
        assert_eq!(label_name("a1"), Some("a1".into()));

        // A point with a key that cannot be a label is rejected; the others stay.
        let t = translate(&request(vec![metric(
            "m",
            "",
            gauge(vec![
                double(&[("___", "v")], 1.0),
                double(&[("ok", "v")], 2.0),
            ]),
        )]));
        assert_eq!(t.absolute.len(), 1);
        assert_eq!(t.rejected_points, 1);
        assert_eq!(
            t.errors,
            vec![
                "metric \"m\": attribute \"___\" cannot be a label name (empty or only \
                 underscores)"
            ]
        );
    }

    /// Expectations from otlptranslator v1.0.0's own tests (label_namer_test.go in the
    /// Prometheus default mode: multiple underscores kept, `key` before a single `_`;
    /// metric_namer_test.go with suffixes, no namespace).
    #[test]
    fn agrees_with_otlptranslator_examples() {
        for (key, want) in [
            ("label:with:colons", Some("label_with_colons")),
            (
                "label!with&special$chars)",
                Some("label_with_special_chars_"),
            ),
            (
                "label_with_foreign_characters_字符",
                Some("label_with_foreign_characters___"),
            ),
            ("123label", Some("key_123label")),
            (
                "_label_starting_with_underscore",
                Some("key_label_starting_with_underscore"),
            ),
            (
                "__label_starting_with_2underscores",
                Some("__label_starting_with_2underscores"),
            ),
            (
                "label.name__with&&special##chars",
                Some("label_name__with__special__chars"),
            ),
            (
                "__reserved__label__name__",
                Some("__reserved__label__name__"),
            ),
            ("ようこそ", None),
        ] {
            assert_eq!(label_name(key).as_deref(), want, "{key}");
        }
        for (name, unit, kind, want) in [
            (
                "requests",
                "1/s",
                Kind::MonotonicCounter,
                Some("requests_per_second_total"),
            ),
            ("items", "1", Kind::MonotonicCounter, Some("items_total")),
            ("cpu_usage_ratio", "1", Kind::Gauge, Some("cpu_usage_ratio")),
            (
                "response_time_seconds",
                "s",
                Kind::Gauge,
                Some("response_time_seconds"),
            ),
            (
                "custom_metric",
                "custom_unit",
                Kind::Gauge,
                Some("custom_metric_custom_unit"),
            ),
            (
                "custom_metric",
                "By/{custom}",
                Kind::Gauge,
                Some("custom_metric_bytes"),
            ),
            (
                "custom_metric",
                "unit@with#special/chars",
                Kind::Gauge,
                Some("custom_metric_unit_with_special_per_chars"),
            ),
            (
                "metric__with__multiple__underscores",
                "unit__multiple__underscores",
                Kind::Gauge,
                Some("metric_with_multiple_underscores_unit_multiple_underscores"),
            ),
            (
                "123_requests",
                "",
                Kind::MonotonicCounter,
                Some("_123_requests_total"),
            ),
            ("@#$%", "", Kind::Gauge, None),
        ] {
            assert_eq!(
                metric_name(name, unit, kind).as_deref(),
                want,
                "{name} {unit}"
            );
        }
    }

    #[test]
    fn unit_1_on_a_gauge_is_ratio() {
        assert_eq!(
            name_of("system.cpu.utilization", "1", Kind::Gauge),
            "system_cpu_utilization_ratio"
        );
        assert_eq!(name_of("hit.ratio", "1", Kind::Gauge), "hit_ratio");
        assert_eq!(
            name_of("errors", "1", Kind::MonotonicCounter),
            "errors_total"
        );
        assert_eq!(name_of("queue", "1", Kind::Other), "queue");
    }

    #[test]
    fn units_become_suffixes_once() {
        for (name, unit, want) in [
            ("process.runtime.seconds", "s", "process_runtime_seconds"),
            ("disk.io", "KiBy", "disk_io_kibibytes"),
            ("cpu.usage", "%", "cpu_usage_percent"),
            ("speed", "m/s", "speed_meters_per_second"),
            ("net.io", "By/s", "net_io_bytes_per_second"),
            ("packets.rate", "{packet}/s", "packets_rate_per_second"),
            ("requests", "{request}", "requests"),
            ("temp", "Cel", "temp_celsius"),
            ("odd", "foo bar", "odd_foo_bar"),
            ("odd", "1/mo", "odd_per_month"),
            ("weird..name__x", " ms ", "weird_name_x_milliseconds"),
            ("2xx.responses", "", "_2xx_responses"),
            ("ns:metric", "", "ns:metric"),
        ] {
            assert_eq!(name_of(name, unit, Kind::Other), want, "{name} {unit}");
        }
        assert_eq!(metric_name("...", "", Kind::Gauge), None);
    }

    #[test]
    fn rejections_count_points_and_keep_ten_distinct_reasons() {
        let mut metrics = vec![
            metric(
                "unspecified",
                "",
                sum(true, 0, vec![double(&[], 1.0), double(&[], 2.0)]),
            ),
            Metric {
                name: "nodata".into(),
                ..Default::default()
            },
            metric("empty", "", gauge(vec![])),
            metric("...", "", gauge(vec![double(&[], 1.0)])),
        ];
        let mut no_time = double(&[], 1.0);
        no_time.time_unix_nano = 0;
        let mut no_value = double(&[], 1.0);
        no_value.value = None;
        metrics.push(metric("t", "", gauge(vec![no_time, no_value])));
        let t = translate(&request(metrics));
        assert!(t.absolute.is_empty() && t.delta.is_empty(), "{t:#?}");
        assert_eq!(t.rejected_points, 2 + 1 + 2);
        assert_eq!(
            t.errors,
            vec![
                "metric \"unspecified\": aggregation temporality 0 is neither cumulative (2) \
                 nor delta (1)",
                "metric \"nodata\": no data (missing or unknown metric type)",
                "metric \"empty\": no data points",
                "metric \"...\": no valid Prometheus metric name (it needs a character of \
                 [a-zA-Z0-9:])",
                "metric \"t\": data point without a time (time_unix_nano 0)",
                "metric \"t\": data point without a value",
            ]
        );

        let metrics = (0..30)
            .map(|i| Metric {
                name: format!("nodata{}", i % 15),
                ..Default::default()
            })
            .collect();
        let t = translate(&request(metrics));
        assert_eq!(t.errors.len(), MAX_ERRORS);
        assert_eq!(
            t.errors[9],
            "metric \"nodata9\": no data (missing or unknown metric type)"
        );
    }

    #[test]
    fn points_of_one_series_merge_in_input_order() {
        let mut later = double(&[("a", "1")], 2.0);
        later.time_unix_nano = T + 1_000_000_000;
        let mut earlier = double(&[("a", "1")], 3.0);
        earlier.time_unix_nano = T - 1_000_000_000;
        let t = translate(&request(vec![
            metric("b", "", gauge(vec![double(&[("a", "1")], 1.0), later])),
            metric("a", "", gauge(vec![double(&[], 0.0)])),
            metric("b", "", gauge(vec![earlier, double(&[("a", "2")], 9.0)])),
        ]));
        let got: Vec<(&str, Vec<(i64, f64)>)> = t
            .absolute
            .iter()
            .map(|s| (s.name.as_str(), s.samples.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", vec![(T_MS, 0.0)]),
                (
                    "b",
                    vec![(T_MS, 1.0), (T_MS + 1000, 2.0), (T_MS - 1000, 3.0)]
                ),
                ("b", vec![(T_MS, 9.0)]),
            ]
        );
    }

    #[test]
    fn attribute_values_are_strings_as_prometheus_reads_them() {
        use any_value::Value as V;
        let attr = |key: &str, v: V| KeyValue {
            key: key.into(),
            value: value(v),
        };
        let mut p = double(&[], 1.0);
        p.attributes = vec![
            attr("i", V::IntValue(-7)),
            attr("b", V::BoolValue(true)),
            attr("d", V::DoubleValue(0.25)),
            attr("big", V::DoubleValue(1e21)),
            attr("small", V::DoubleValue(1.5e-7)),
            attr("nan", V::DoubleValue(f64::NAN)),
            attr("bytes", V::BytesValue(b"hello".to_vec())),
            attr(
                "arr",
                V::ArrayValue(ArrayValue {
                    values: vec![
                        value(V::StringValue("<a>".into())).unwrap(),
                        value(V::IntValue(1)).unwrap(),
                        AnyValue { value: None },
                    ],
                }),
            ),
            attr(
                "map",
                V::KvlistValue(KeyValueList {
                    values: vec![kv("z", "1"), kv("a", "q\"\n"), kv("z", "2")],
                }),
            ),
            attr(
                "badmap",
                V::KvlistValue(KeyValueList {
                    values: vec![attr("x", V::DoubleValue(f64::INFINITY))],
                }),
            ),
            KeyValue {
                key: "none".into(),
                value: None,
            },
        ];
        let t = translate(&request(vec![metric("m", "", gauge(vec![p]))]));
        assert_eq!(
            one(&t).labels,
            labels(&[
                ("arr", r#"["\u003ca\u003e",1,null]"#),
                ("b", "true"),
                ("big", "1e+21"),
                ("bytes", "aGVsbG8="),
                ("d", "0.25"),
                ("i", "-7"),
                ("map", r#"{"a":"q\"\n","z":"2"}"#),
                ("nan", "json: unsupported value: NaN"),
                ("small", "1.5e-7"),
            ])
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
