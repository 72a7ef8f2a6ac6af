//! `pct(f, p)` (reference §5.5): the p-th percentile by the nearest-rank definition — the
//! sample of rank `ceil(p / 100 × n)` in ascending order, always one of the values. The
//! interpolation Logs Insights uses is not documented (reference §10), so kinsight fixes this
//! one definition for `pct` and for percentile metric statistics alike
//! (`kinsight_metrics::nearest_rank`); `pct(f, 0)` is the minimum.
//!
//! Called as `pct(value_f64, p_literal)`; the percentile is read from the literal when the
//! accumulator is created.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
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
        let p = acc_args
            .exprs
            .get(1)
            .and_then(|e| e.downcast_ref::<Literal>())
            .and_then(|l| match l.value() {
                ScalarValue::Float64(Some(p)) => Some(*p),
                ScalarValue::Int64(Some(p)) => Some(*p as f64),
                _ => None,
            });
        match p {
            Some(p) if (0.0..=100.0).contains(&p) => Ok(Box::new(PctAccumulator {
                p_hundredths: (p * 100.0).round() as u64,
                values: Vec::new(),
            })),
            _ => exec_err!("pct: the percentile must be a number from 0 to 100"),
        }
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new_list(
            format_state_name(args.name, "values"),
            Field::new_list_field(DataType::Float64, true),
            true,
        ))])
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
        let values = Float64Array::from(std::mem::take(&mut self.values));
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values.iter().map(ScalarValue::Float64).collect::<Vec<_>>(),
            &DataType::Float64,
        ))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.values.is_empty() {
            return Ok(ScalarValue::Float64(None));
        }
        let idx = nearest_rank_index(self.p_hundredths, self.values.len());
        let (_, v, _) = self.values.select_nth_unstable_by(idx, f64::total_cmp);
        Ok(ScalarValue::Float64(Some(*v)))
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
}
