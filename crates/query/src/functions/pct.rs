//! `pct(f, p)` (reference §5.5): the p-th percentile by the nearest-rank definition — the
//! sample of rank `ceil(p / 100 × n)` in ascending order, always one of the values. The
//! interpolation Logs Insights uses is not documented (reference §10), so kinsight fixes this
//! one definition for `pct` and for percentile metric statistics alike
//! (`kinsight_metrics::nearest_rank`); `pct(f, 0)` is the minimum.
//!
//! Called as `pct(value_f64, p_literal)`; the percentile is read from the literal when the
//! accumulator is created. Under `stats … by` a groups accumulator keeps every group's values
//! in one vector per group (DataFusion's adapter for a plain accumulator would slice each batch
//! per group); both exchange the values between aggregation phases as one list per group.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Float64Builder, ListArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Pct {
    signature: Signature,
}

impl Pct {
    pub(crate) fn new() -> Self {
        Pct {
            signature: Signature::exact(
                vec![DataType::Float64, DataType::Float64],
                Volatility::Immutable,
            ),
        }
    }
}

impl AggregateUDFImpl for Pct {
    fn name(&self) -> &str {
        "pct"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PctAccumulator {
            p_hundredths: p_hundredths(&acc_args)?,
            values: Vec::new(),
        }))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(PctGroups {
            p_hundredths: p_hundredths(&args)?,
            groups: Vec::new(),
            allocated: 0,
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new_list(
            format_state_name(args.name, "values"),
            Field::new_list_field(DataType::Float64, true),
            true,
        ))])
    }
}

/// The percentile literal, in hundredths of a percent.
fn p_hundredths(args: &AccumulatorArgs) -> Result<u64> {
    let p = args
        .exprs
        .get(1)
        .and_then(|e| e.downcast_ref::<Literal>())
        .and_then(|l| match l.value() {
            ScalarValue::Float64(Some(p)) => Some(*p),
            ScalarValue::Int64(Some(p)) => Some(*p as f64),
            _ => None,
        });
    match p {
        Some(p) if (0.0..=100.0).contains(&p) => Ok((p * 100.0).round() as u64),
        _ => exec_err!("pct: the percentile must be a number from 0 to 100"),
    }
}

/// The nearest-rank value of `values` (reordered in place), null when empty.
fn nearest_rank(p_hundredths: u64, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let idx = nearest_rank_index(p_hundredths, values.len());
    let (_, v, _) = values.select_nth_unstable_by(idx, f64::total_cmp);
    Some(*v)
}

/// One list of values per group, as the intermediate state between aggregation phases.
fn values_list(groups: Vec<Vec<f64>>) -> ListArray {
    let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
    let mut values = Float64Builder::with_capacity(groups.iter().map(Vec::len).sum());
    for g in &groups {
        values.append_slice(g);
    }
    ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        offsets,
        Arc::new(values.finish()),
        None,
    )
}

/// `pct` for every group of a `stats … by`.
struct PctGroups {
    p_hundredths: u64,
    groups: Vec<Vec<f64>>,
    /// Σ capacity of the groups' vectors, in values (for `size`).
    allocated: usize,
}

impl PctGroups {
    fn add(
        &mut self,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
        mut each: impl FnMut(usize, &mut Vec<f64>),
    ) {
        if self.groups.len() < total_num_groups {
            self.groups.resize_with(total_num_groups, Vec::new);
        }
        for (row, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let g = &mut self.groups[g];
            let before = g.capacity();
            each(row, g);
            self.allocated += g.capacity() - before;
        }
    }

    /// Takes the groups to emit; their memory leaves the count.
    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<f64>> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.allocated -= taken.iter().map(Vec::capacity).sum::<usize>();
        taken
    }
}

impl GroupsAccumulator for PctGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let a = values[0].as_primitive::<Float64Type>();
        let (nulls, vals) = (a.nulls().cloned(), a.values().clone());
        self.add(group_indices, opt_filter, total_num_groups, |row, g| {
            let v = vals[row];
            if nulls.as_ref().is_none_or(|n| n.is_valid(row)) && !v.is_nan() {
                g.push(v);
            }
        });
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let lists: &ListArray = values[0].as_list();
        let inner = lists.values().as_primitive::<Float64Type>();
        let offsets = lists.value_offsets();
        self.add(group_indices, None, total_num_groups, |row, g| {
            if lists.is_valid(row) {
                let (lo, hi) = (offsets[row] as usize, offsets[row + 1] as usize);
                g.extend(
                    (lo..hi)
                        .filter(|&i| inner.is_valid(i))
                        .map(|i| inner.value(i)),
                );
            }
        });
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let out: Float64Array = self
            .take(emit_to)
            .into_iter()
            .map(|mut g| nearest_rank(self.p_hundredths, &mut g))
            .collect();
        Ok(Arc::new(out))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(values_list(self.take(emit_to)))])
    }

    /// Each row as its own group: a list of its one value (empty when null, NaN or filtered).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let a = values[0].as_primitive::<Float64Type>();
        let kept: Vec<bool> = (0..a.len())
            .map(|row| {
                opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row))
                    && a.is_valid(row)
                    && !a.value(row).is_nan()
            })
            .collect();
        let mut vals = Float64Builder::with_capacity(a.len());
        for (row, k) in kept.iter().enumerate() {
            if *k {
                vals.append_value(a.value(row));
            }
        }
        Ok(vec![Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::from_lengths(kept.iter().map(|k| usize::from(*k))),
            Arc::new(vals.finish()),
            None,
        ))])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.groups.capacity() * std::mem::size_of::<Vec<f64>>()
            + self.allocated * std::mem::size_of::<f64>()
    }
}

#[derive(Debug)]
struct PctAccumulator {
    p_hundredths: u64,
    values: Vec<f64>,
}

/// Rank `ceil(p × n / 100)`, computed in hundredths of a percent so that `p = 0.1`-style
/// literals do not round the wrong way; clamped to `1..=n`.
pub(crate) fn nearest_rank_index(p_hundredths: u64, n: usize) -> usize {
    let rank = (u128::from(p_hundredths) * n as u128).div_ceil(10_000) as usize;
    rank.clamp(1, n) - 1
}

impl Accumulator for PctAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let a = values[0].as_primitive::<Float64Type>();
        self.values
            .extend(a.iter().flatten().filter(|v| !v.is_nan()));
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists: &ListArray = states[0].as_list();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                let inner = lists.value(i);
                let a = inner.as_primitive::<Float64Type>();
                self.values.extend(a.iter().flatten());
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = std::mem::take(&mut self.values);
        Ok(vec![ScalarValue::List(Arc::new(values_list(vec![values])))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(nearest_rank(
            self.p_hundredths,
            &mut self.values,
        )))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_matches_its_definition() {
        // Ten samples 1..=10: p50 is the 5th, p90 the 9th, p90.01 the 10th, p0 the 1st.
        assert_eq!(nearest_rank_index(5000, 10), 4);
        assert_eq!(nearest_rank_index(9000, 10), 8);
        assert_eq!(nearest_rank_index(9001, 10), 9);
        assert_eq!(nearest_rank_index(10_000, 10), 9);
        assert_eq!(nearest_rank_index(0, 10), 0);
        assert_eq!(nearest_rank_index(5000, 1), 0);
    }

    fn groups(p: f64) -> PctGroups {
        PctGroups {
            p_hundredths: (p * 100.0).round() as u64,
            groups: Vec::new(),
            allocated: 0,
        }
    }

    /// Partial accumulators over two batches, their states merged into a final one (directly,
    /// and through `convert_to_state` as when partial aggregation is skipped), answer what the
    /// definition gives over each group's values; nulls, NaN and filtered rows are ignored.
    #[test]
    fn groups_accumulator_phases_agree_with_the_definition() {
        let vals: Vec<Option<f64>> = (0..200)
            .map(|i| match i % 17 {
                0 => None,
                5 => Some(f64::NAN),
                _ => Some(((i * 37) % 101) as f64),
            })
            .collect();
        let group_of = |i: usize| i % 3 + usize::from(i > 150);
        let keep = |i: usize| !i.is_multiple_of(11);
        let mut expected: Vec<Vec<f64>> = vec![Vec::new(); 4];
        for (i, v) in vals.iter().enumerate() {
            if let Some(v) = v.filter(|v| !v.is_nan())
                && keep(i)
            {
                expected[group_of(i)].push(v);
            }
        }
        let want: Vec<Option<f64>> = expected.iter_mut().map(|g| nearest_rank(9000, g)).collect();
        assert!(want.iter().all(Option::is_some));

        let batch = |r: std::ops::Range<usize>| -> (Vec<ArrayRef>, Vec<usize>, BooleanArray) {
            let a: ArrayRef = Arc::new(Float64Array::from(vals[r.clone()].to_vec()));
            let g = r.clone().map(group_of).collect();
            let f = BooleanArray::from(r.map(keep).collect::<Vec<_>>());
            (vec![a], g, f)
        };
        let (a1, g1, f1) = batch(0..120);
        let (a2, g2, f2) = batch(120..200);

        // Two partial accumulators (one sees groups 0-2, the other 0-3), merged.
        let mut p1 = groups(90.0);
        p1.update_batch(&a1, &g1, Some(&f1), 3).unwrap();
        assert!(
            p1.allocated >= 90,
            "at least the values kept: {}",
            p1.allocated
        );
        assert!(p1.size() >= std::mem::size_of::<PctGroups>() + 90 * 8);
        let mut p2 = groups(90.0);
        p2.update_batch(&a2, &g2, Some(&f2), 4).unwrap();
        let mut fin = groups(90.0);
        fin.merge_batch(&p1.state(EmitTo::All).unwrap(), &[0, 1, 2], 3)
            .unwrap();
        fin.merge_batch(&p2.state(EmitTo::All).unwrap(), &[0, 1, 2, 3], 4)
            .unwrap();
        assert_eq!(
            p1.allocated + p2.allocated,
            0,
            "state hands the values over"
        );
        let out = fin.evaluate(EmitTo::All).unwrap();
        let got: Vec<Option<f64>> = out.as_primitive::<Float64Type>().iter().collect();
        assert_eq!(got, want);

        // Partial aggregation skipped: every row becomes a one-value state.
        let mut fin = groups(90.0);
        for (a, g, f) in [(a1, g1, f1), (a2, g2, f2)] {
            let st = fin.convert_to_state(&a, Some(&f)).unwrap();
            fin.merge_batch(&st, &g, 4).unwrap();
        }
        // Emitting the first two groups, then the rest.
        let first = fin.evaluate(EmitTo::First(2)).unwrap();
        let rest = fin.evaluate(EmitTo::All).unwrap();
        let got: Vec<Option<f64>> = first
            .as_primitive::<Float64Type>()
            .iter()
            .chain(rest.as_primitive::<Float64Type>().iter())
            .collect();
        assert_eq!(got, want);
        assert_eq!(fin.allocated, 0);
    }
}
