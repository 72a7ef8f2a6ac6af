//! The `pattern` aggregate function: `pattern(key, bucket, count)` over the events counted by
//! shape and period, returning every pattern as one list of structs (see the module above).
//! For `diff`, bucket `Buckets::count` holds the events of the range compared with, and each
//! pattern also has its count there, the change and its kind.
//!
//! Partial accumulators (one per partition) keep the counts by shape; their state is the same
//! triples as lists; the final accumulator sorts the shapes and clusters them. Nothing here
//! depends on the order rows arrive in: counts add up, and the clustering sees the shapes
//! sorted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int64Array, Int64Builder, ListArray, StringArray,
    StringBuilder, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use kinsight_ql::pattern_fields as pf;
use serde_json::{Map, Value, json};

use super::drain::{self, Cluster, Slot};
use super::shape::{self, Kind, Severity};
use super::{Buckets, DRAIN, ENUMERATED_VALUE_CHARS, ENUMERATED_VALUES, MAX_SHAPES, pattern_id};

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Patterns {
    buckets: Buckets,
    diff: bool,
    signature: Signature,
}

impl Patterns {
    pub(crate) fn new(buckets: Buckets, diff: bool) -> Self {
        Patterns {
            buckets,
            diff,
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Int64, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

/// The fields of one pattern row, in the order of [`pf::ALL`] (then [`pf::DIFF_ALL`]).
pub(crate) fn row_fields(diff: bool) -> Fields {
    let mut fields = vec![
        Field::new(pf::PATTERN, DataType::Utf8, false),
        Field::new(pf::RATIO, DataType::Float64, false),
        Field::new(pf::SAMPLE_COUNT, DataType::Int64, false),
        Field::new(pf::SEVERITY_LABEL, DataType::Utf8, false),
        Field::new(pf::PATTERN_ID, DataType::Utf8, false),
        Field::new(pf::TOKENS, DataType::Utf8, false),
        Field::new(pf::VISUALIZATION, DataType::Utf8, false),
    ];
    if diff {
        fields.extend([
            Field::new(pf::PREVIOUS_SAMPLE_COUNT, DataType::Int64, false),
            Field::new(pf::CHANGE_IN_COUNT, DataType::Int64, false),
            Field::new(pf::DIFF, DataType::Utf8, false),
        ]);
    }
    Fields::from(fields)
}

fn list_item(diff: bool) -> Arc<Field> {
    Arc::new(Field::new_list_field(
        DataType::Struct(row_fields(diff)),
        true,
    ))
}

impl AggregateUDFImpl for Patterns {
    fn name(&self) -> &str {
        "pattern"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(list_item(self.diff)))
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PatternsAccumulator::new(self.buckets, self.diff)))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |what: &str, t: DataType| {
            Arc::new(Field::new_list(
                format_state_name(args.name, what),
                Field::new_list_field(t, true),
                true,
            ))
        };
        Ok(vec![
            list("keys", DataType::Utf8),
            list("buckets", DataType::Int64),
            list("counts", DataType::Int64),
        ])
    }
}

/// The events of one shape: in all, and per period (sparse, ascending); for `diff`, in the
/// range compared with.
#[derive(Debug, Default)]
struct ShapeCounts {
    total: u64,
    buckets: Vec<(usize, u64)>,
    previous: u64,
}

impl ShapeCounts {
    fn add(&mut self, bucket: usize, n: u64) {
        self.total += n;
        match self.buckets.binary_search_by_key(&bucket, |b| b.0) {
            Ok(i) => self.buckets[i].1 += n,
            Err(i) => self.buckets.insert(i, (bucket, n)),
        }
    }
}

#[derive(Debug)]
struct PatternsAccumulator {
    buckets: Buckets,
    diff: bool,
    shapes: HashMap<String, ShapeCounts>,
    /// Bytes the keys and bucket vectors hold, for `size`.
    heap_bytes: usize,
}

impl PatternsAccumulator {
    fn new(buckets: Buckets, diff: bool) -> Self {
        PatternsAccumulator {
            buckets,
            diff,
            shapes: HashMap::new(),
            heap_bytes: 0,
        }
    }

    fn add(&mut self, key: &str, bucket: i64, n: i64) -> Result<()> {
        let n = u64::try_from(n).unwrap_or(0);
        let previous = self.diff && bucket >= self.buckets.count as i64;
        let bucket = self.buckets.index(bucket);
        let entry = match self.shapes.get_mut(key) {
            Some(e) => e,
            None => {
                if self.shapes.len() >= MAX_SHAPES {
                    return exec_err!(
                        "pattern: the events have more than {MAX_SHAPES} distinct shapes (messages with their numbers, ids, addresses and times masked); narrow the query with a filter or a shorter time range"
                    );
                }
                self.heap_bytes += key.len();
                self.shapes.entry(key.to_string()).or_default()
            }
        };
        if previous {
            entry.previous += n;
            return Ok(());
        }
        let before = entry.buckets.capacity();
        entry.add(bucket, n);
        self.heap_bytes +=
            (entry.buckets.capacity() - before) * std::mem::size_of::<(usize, u64)>();
        Ok(())
    }

    fn add_arrays(&mut self, keys: &ArrayRef, buckets: &ArrayRef, counts: &ArrayRef) -> Result<()> {
        let keys: &StringArray = keys.as_string::<i32>();
        let buckets: &Int64Array = buckets.as_primitive::<Int64Type>();
        let counts: &Int64Array = counts.as_primitive::<Int64Type>();
        for i in 0..keys.len() {
            if keys.is_valid(i) {
                let bucket = if buckets.is_valid(i) {
                    buckets.value(i)
                } else {
                    0
                };
                let n = if counts.is_valid(i) {
                    counts.value(i)
                } else {
                    0
                };
                self.add(keys.value(i), bucket, n)?;
            }
        }
        Ok(())
    }
}

fn one_list(values: ArrayRef) -> ScalarValue {
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    ScalarValue::List(Arc::new(ListArray::new(
        field,
        OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    )))
}

impl Accumulator for PatternsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add_arrays(&values[0], &values[1], &values[2])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (keys, buckets, counts) = (
            states[0].as_list::<i32>(),
            states[1].as_list::<i32>(),
            states[2].as_list::<i32>(),
        );
        for row in 0..keys.len() {
            if keys.is_valid(row) && buckets.is_valid(row) && counts.is_valid(row) {
                self.add_arrays(&keys.value(row), &buckets.value(row), &counts.value(row))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let shapes = std::mem::take(&mut self.shapes);
        self.heap_bytes = 0;
        let pairs: usize = shapes
            .values()
            .map(|s| s.buckets.len() + usize::from(s.previous > 0))
            .sum();
        let mut keys = StringBuilder::with_capacity(pairs, 0);
        let mut buckets = Int64Builder::with_capacity(pairs);
        let mut counts = Int64Builder::with_capacity(pairs);
        for (key, s) in &shapes {
            let previous = (s.previous > 0).then_some((self.buckets.count, s.previous));
            for &(b, n) in s.buckets.iter().chain(&previous) {
                keys.append_value(key);
                buckets.append_value(b as i64);
                counts.append_value(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        Ok(vec![
            one_list(Arc::new(keys.finish())),
            one_list(Arc::new(buckets.finish())),
            one_list(Arc::new(counts.finish())),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let rows = patterns(&self.shapes, self.buckets, self.diff);
        Ok(one_list(Arc::new(rows_array(&rows, self.diff)?)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.shapes.capacity() * (std::mem::size_of::<(String, ShapeCounts)>() + 8)
            + self.heap_bytes
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PatternRow {
    pub pattern: String,
    pub ratio: f64,
    pub sample_count: u64,
    pub severity: Severity,
    pub pattern_id: String,
    pub tokens: String,
    pub visualization: String,
    /// `diff`: the events in the range compared with.
    pub previous: u64,
}

impl PatternRow {
    fn change(&self) -> i64 {
        i64::try_from(self.sample_count)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(self.previous).unwrap_or(i64::MAX))
    }

    /// `@diff`.
    fn change_kind(&self) -> &'static str {
        match (self.previous, self.sample_count) {
            (0, _) => "new",
            (_, 0) => "gone",
            (p, n) if n > p => "increased",
            (p, n) if n < p => "decreased",
            _ => "unchanged",
        }
    }
}

fn rows_array(rows: &[PatternRow], diff: bool) -> Result<StructArray> {
    let mut pattern = StringBuilder::new();
    let mut ratio = Float64Builder::new();
    let mut count = Int64Builder::new();
    let mut severity = StringBuilder::new();
    let mut id = StringBuilder::new();
    let mut tokens = StringBuilder::new();
    let mut vis = StringBuilder::new();
    let mut previous = Int64Builder::new();
    let mut change = Int64Builder::new();
    let mut kind = StringBuilder::new();
    for r in rows {
        previous.append_value(i64::try_from(r.previous).unwrap_or(i64::MAX));
        change.append_value(r.change());
        kind.append_value(r.change_kind());
        pattern.append_value(&r.pattern);
        ratio.append_value(r.ratio);
        count.append_value(i64::try_from(r.sample_count).unwrap_or(i64::MAX));
        severity.append_value(r.severity.label());
        id.append_value(&r.pattern_id);
        tokens.append_value(&r.tokens);
        vis.append_value(&r.visualization);
    }
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(pattern.finish()),
        Arc::new(ratio.finish()),
        Arc::new(count.finish()),
        Arc::new(severity.finish()),
        Arc::new(id.finish()),
        Arc::new(tokens.finish()),
        Arc::new(vis.finish()),
    ];
    if diff {
        arrays.extend([
            Arc::new(previous.finish()) as ArrayRef,
            Arc::new(change.finish()),
            Arc::new(kind.finish()),
        ]);
    }
    Ok(StructArray::try_new(row_fields(diff), arrays, None)?)
}

/// The patterns of the counted shapes, sorted by count (descending), then pattern; for `diff`,
/// by the size of the change first.
fn patterns(
    shapes: &HashMap<String, ShapeCounts>,
    buckets: Buckets,
    diff: bool,
) -> Vec<PatternRow> {
    // The canonical order: Drain sees the shapes sorted, whatever order they came in.
    let mut sorted: Vec<(&str, &ShapeCounts)> =
        shapes.iter().map(|(k, c)| (k.as_str(), c)).collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let keys: Vec<&str> = sorted.iter().map(|(k, _)| *k).collect();
    let clusters = drain::cluster(&keys, DRAIN);
    let total: u64 = sorted.iter().map(|(_, c)| c.total).sum();

    // Clusters whose templates read the same are one pattern.
    let mut by_text: BTreeMap<String, (Option<&Cluster<'_>>, Vec<usize>)> = BTreeMap::new();
    for c in &clusters.clusters {
        let e = by_text
            .entry(drain::render(&c.template, &c.glued))
            .or_insert((Some(c), Vec::new()));
        e.1.extend(&c.members);
    }
    if !clusters.overflow.is_empty() {
        let e = by_text
            .entry("<*>".to_string())
            .or_insert((None, Vec::new()));
        e.1.extend(&clusters.overflow);
    }

    let mut rows: Vec<PatternRow> = by_text
        .into_iter()
        .map(|(text, (cluster, members))| {
            let mut count = 0u64;
            let mut previous = 0u64;
            let mut severities = [0u64; Severity::ALL.len()];
            let mut series = vec![0u64; buckets.count];
            for &m in &members {
                let c = sorted[m].1;
                count += c.total;
                previous += c.previous;
                severities[shape::key_severity(sorted[m].0) as usize] += c.total + c.previous;
                for &(b, n) in &c.buckets {
                    series[b.min(buckets.count - 1)] += n;
                }
            }
            // The most events; ties go to the more severe (earlier) one.
            let severity = Severity::ALL
                .into_iter()
                .max_by_key(|s| (severities[*s as usize], std::cmp::Reverse(*s as usize)))
                .unwrap_or(Severity::Unknown);
            // Values are counted in the query's range, or in the compared one for a pattern
            // that is gone.
            let weight = |c: &ShapeCounts| if count > 0 { c.total } else { c.previous };
            let tokens_json = match cluster {
                Some(c) => token_list(c, &members, &sorted, &weight),
                None => json!([{
                    "dynamicTokenPosition": 1,
                    "inferredTokenName": "Token-1",
                    "tokenString": "<*>",
                }]),
            };
            PatternRow {
                pattern_id: pattern_id(&text),
                pattern: text,
                ratio: if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                },
                sample_count: count,
                severity,
                tokens: tokens_json.to_string(),
                visualization: json!({
                    "startTime": buckets.origin_ms,
                    "periodMs": buckets.period_ms,
                    "counts": series,
                })
                .to_string(),
                previous,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let by_change = if diff {
            b.change().unsigned_abs().cmp(&a.change().unsigned_abs())
        } else {
            std::cmp::Ordering::Equal
        };
        by_change
            .then_with(|| b.sample_count.cmp(&a.sample_count))
            .then_with(|| a.pattern.cmp(&b.pattern))
    });
    rows
}

/// `@tokens` of a cluster (see the module above).
fn token_list(
    cluster: &Cluster<'_>,
    members: &[usize],
    shapes: &[(&str, &ShapeCounts)],
    weight: &dyn Fn(&ShapeCounts) -> u64,
) -> Value {
    // The values of the variable positions, counted in one pass over the members' keys.
    let wild: Vec<usize> = (0..cluster.template.len())
        .filter(|&i| matches!(cluster.template[i], Slot::Wild { .. }))
        .collect();
    let mut counts: Vec<HashMap<&str, u64>> = vec![HashMap::new(); wild.len()];
    if !wild.is_empty() {
        for &m in members {
            let (key, c) = shapes[m];
            let n = weight(c);
            if n == 0 {
                continue;
            }
            let tokens = shape::read_key(key).1;
            for (j, &i) in wild.iter().enumerate() {
                if let Some(t) = tokens.get(i) {
                    let value = drain::variable_part(&cluster.template[i], t.text);
                    *counts[j].entry(value).or_default() += n;
                }
            }
        }
    }
    let mut counts = counts.into_iter();
    let mut out = Vec::new();
    let mut position = 0;
    let mut push = |kind: Kind, token: &str, enumerations: Option<Map<String, Value>>| {
        position += 1;
        let mut t = Map::new();
        t.insert("dynamicTokenPosition".into(), json!(position));
        t.insert(
            "inferredTokenName".into(),
            json!(format!("{}-{position}", kind.name())),
        );
        t.insert("tokenString".into(), json!(token));
        if let Some(e) = enumerations {
            t.insert("enumerations".into(), Value::Object(e));
        }
        out.push(Value::Object(t));
    };
    for slot in &cluster.template {
        let shown = drain::render(std::slice::from_ref(slot), &[]);
        match slot {
            Slot::Lit(s) => {
                for kind in shape::placeholders(s) {
                    push(kind, &shown, None);
                }
            }
            Slot::Wild { prefix, suffix } => {
                for kind in shape::placeholders(prefix) {
                    push(kind, &shown, None);
                }
                let (kind, values) = values_of(counts.next().unwrap_or_default());
                push(kind, &shown, Some(values));
                for kind in shape::placeholders(suffix) {
                    push(kind, &shown, None);
                }
            }
        }
    }
    Value::Array(out)
}

/// The type and the most frequent values of a variable position, from its values' counts:
/// the type of the masked value every member has there alone, else `Token`.
fn values_of(counts: HashMap<&str, u64>) -> (Kind, Map<String, Value>) {
    let mut kinds = counts.keys().map(|v| {
        let mut p = shape::placeholders(v);
        match (p.next(), v.len() == 2) {
            (Some(k), true) => Some(k),
            _ => None,
        }
    });
    let first = kinds.next().flatten();
    let kind = match first {
        Some(k) if kinds.all(|o| o == Some(k)) => k,
        _ => Kind::Token,
    };
    let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut values = Map::new();
    for (v, n) in ranked.into_iter().take(ENUMERATED_VALUES) {
        let mut text = String::new();
        shape::render(v, &mut text);
        if text.chars().count() > ENUMERATED_VALUE_CHARS {
            text = text
                .chars()
                .take(ENUMERATED_VALUE_CHARS)
                .collect::<String>()
                + "…";
        }
        // Two values may read the same once cut: add up.
        let entry = values.entry(text).or_insert(json!(0));
        *entry = json!(entry.as_u64().unwrap_or(0) + n);
    }
    (kind, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::shape::Masker;

    fn count(lines: &[String]) -> HashMap<String, ShapeCounts> {
        let m = Masker::new();
        let mut acc = PatternsAccumulator::new(BUCKETS, false);
        for (i, l) in lines.iter().enumerate() {
            acc.add(&m.key(l), (i % 3) as i64, 1).unwrap();
        }
        acc.shapes
    }

    const BUCKETS: Buckets = Buckets {
        origin_ms: 0,
        period_ms: 1000,
        count: 3,
    };

    #[test]
    fn rows_describe_each_pattern() {
        let mut lines = Vec::new();
        for i in 0..6 {
            let user = ["alice", "bob", "carol"][i % 3];
            lines.push(format!(
                "ERROR user {user} failed login from 10.0.0.{i} after {i}ms"
            ));
        }
        lines.push("INFO started".to_string());
        let rows = patterns(&count(&lines), BUCKETS, false);
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(
            r.pattern,
            "ERROR user <*> failed login from <*> after <*>ms"
        );
        assert_eq!(r.sample_count, 6);
        assert_eq!(r.severity, Severity::Error);
        assert!((r.ratio - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(r.pattern_id, pattern_id(&r.pattern));
        let tokens: Value = serde_json::from_str(&r.tokens).unwrap();
        assert_eq!(
            tokens,
            json!([
                {"dynamicTokenPosition": 1, "inferredTokenName": "Token-1", "tokenString": "<*>",
                 "enumerations": {"alice": 2, "bob": 2, "carol": 2}},
                {"dynamicTokenPosition": 2, "inferredTokenName": "IPAddress-2", "tokenString": "<*>"},
                {"dynamicTokenPosition": 3, "inferredTokenName": "Number-3", "tokenString": "<*>ms"},
            ])
        );
        let vis: Value = serde_json::from_str(&r.visualization).unwrap();
        assert_eq!(
            vis,
            json!({"startTime": 0, "periodMs": 1000, "counts": [2, 2, 2]})
        );
        assert_eq!(rows[1].pattern, "INFO started");
        assert_eq!(rows[1].severity, Severity::Info);
    }

    /// Partial accumulators over any split of the rows, merged in any order, give the same
    /// rows as one accumulator over all of them.
    #[test]
    fn states_merge_to_the_same_result_in_any_order() {
        let lines: Vec<String> = (0..300)
            .map(|i| match i % 4 {
                0 => format!(
                    "GET /items/{i} status={} user={}",
                    200 + i % 3,
                    ["ann", "ben"][i % 2]
                ),
                1 => format!("job {} finished in {i}s", ["alpha", "beta", "gamma"][i % 3]),
                2 => format!("WARN slow query on shard {} took {i}ms", i % 7),
                _ => format!("conn {i} closed"),
            })
            .collect();
        let m = Masker::new();
        let keys: Vec<String> = lines.iter().map(|l| m.key(l)).collect();
        let batch = |idx: &[usize]| -> Vec<ArrayRef> {
            vec![
                Arc::new(StringArray::from_iter_values(
                    idx.iter().map(|&i| keys[i].as_str()),
                )),
                // Bucket 3 is the compared range (diff).
                Arc::new(Int64Array::from_iter_values(
                    idx.iter().map(|&i| (i % 4) as i64),
                )),
                Arc::new(Int64Array::from_iter_values(idx.iter().map(|_| 1))),
            ]
        };
        let new = || PatternsAccumulator::new(BUCKETS, true);
        let all: Vec<usize> = (0..lines.len()).collect();
        let mut one = new();
        one.update_batch(&batch(&all)).unwrap();
        let want = one.evaluate().unwrap();

        let reversed: Vec<usize> = all.iter().rev().copied().collect();
        let (a, b) = reversed.split_at(97);
        let mut p1 = new();
        p1.update_batch(&batch(b)).unwrap();
        let mut p2 = new();
        p2.update_batch(&batch(a)).unwrap();
        let states = |p: &mut PatternsAccumulator| -> Vec<ArrayRef> {
            p.state()
                .unwrap()
                .into_iter()
                .map(|s| s.to_array().unwrap())
                .collect()
        };
        let (s1, s2) = (states(&mut p1), states(&mut p2));
        let mut fin = new();
        fin.merge_batch(&s2).unwrap();
        fin.merge_batch(&s1).unwrap();
        assert_eq!(fin.evaluate().unwrap(), want);
        assert!(fin.size() > 0);
    }

    #[test]
    fn too_many_shapes_is_an_error() {
        let mut acc = PatternsAccumulator::new(BUCKETS, false);
        for i in 0..MAX_SHAPES {
            acc.add(&format!("U{i}"), 0, 1).unwrap();
        }
        let e = acc.add("Uanother", 0, 1).unwrap_err();
        assert!(e.to_string().contains("distinct shapes"), "{e}");
        // A known shape still counts.
        acc.add("U0", 1, 1).unwrap();
    }
}

#[cfg(test)]
mod diff_tests {
    use super::*;
    use crate::pattern::shape::Masker;

    #[test]
    fn diff_rows_compare_the_two_ranges() {
        let buckets = Buckets {
            origin_ms: 0,
            period_ms: 1000,
            count: 2,
        };
        let m = Masker::new();
        let mut acc = PatternsAccumulator::new(buckets, true);
        let mut add = |line: &str, bucket: i64, n: i64| acc.add(&m.key(line), bucket, n).unwrap();
        add("INFO kept 1", 0, 5);
        add("INFO kept 2", 2, 5);
        add("ERROR new failure 7", 1, 3);
        add("WARN gone away user=ann", 2, 4);
        add("WARN gone away user=bob", 2, 1);
        add("DEBUG more 1", 0, 10);
        add("DEBUG more 2", 2, 2);
        let rows = patterns(&acc.shapes, buckets, true);
        let got: Vec<(&str, u64, u64, i64, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.pattern.as_str(),
                    r.sample_count,
                    r.previous,
                    r.change(),
                    r.change_kind(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("DEBUG more <*>", 10, 2, 8, "increased"),
                ("WARN gone away user=<*>", 0, 5, -5, "gone"),
                ("ERROR new failure <*>", 3, 0, 3, "new"),
                ("INFO kept <*>", 5, 5, 0, "unchanged"),
            ]
        );
        // A pattern that is gone lists the values it had.
        let gone: Value = serde_json::from_str(&rows[1].tokens).unwrap();
        assert_eq!(gone[0]["enumerations"], json!({"ann": 4, "bob": 1}));
        assert_eq!(rows[1].severity, Severity::Warning);
        // Ratios and sparklines are of the query's range.
        assert!((rows[0].ratio - 10.0 / 18.0).abs() < 1e-12);
        let vis: Value = serde_json::from_str(&rows[2].visualization).unwrap();
        assert_eq!(vis["counts"], json!([0, 3]));
        let array = rows_array(&rows, true).unwrap();
        assert_eq!(array.num_columns(), pf::ALL.len() + pf::DIFF_ALL.len());
    }
}
