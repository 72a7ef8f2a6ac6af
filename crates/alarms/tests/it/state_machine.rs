//! The evaluation state machine, table-tested.
//!
//! Sources of the expected states:
//! - reference §6.1: `- - - - X` does not alarm; `- - X - -` with M = N = 3 alarms even
//!   under `missing`;
//! - the two tables of CloudWatch's "How alarm state is evaluated when data is missing"
//!   (awsdocs AlarmThatSendsEmail.md): N = 3 with M = 3 and M = 2, evaluation range of 5.
//!
//! Notation: `0` not breaching, `X` breaching, `-` missing, oldest first. "keep" = the
//! current state is retained (checked from each of the three states).

use kinsight_alarms::StateValue::{self, Alarm, InsufficientData, Ok};
use kinsight_alarms::evaluate::{EvalParams, Point, evaluate};
use kinsight_alarms::{ComparisonOperator, TreatMissingData};

const THRESHOLD: f64 = 50.0;

fn points(s: &str) -> Vec<Point> {
    s.split_whitespace()
        .enumerate()
        .map(|(i, c)| Point {
            timestamp_ms: 1_700_000_000_000 + i as i64 * 60_000,
            value: match c {
                "X" => Some(90.0),
                "0" => Some(10.0),
                "-" => None,
                other => panic!("bad cell {other}"),
            },
        })
        .collect()
}

fn params(n: usize, m: usize, treat: TreatMissingData) -> EvalParams {
    EvalParams {
        n,
        m,
        comparison: ComparisonOperator::GreaterThanThreshold,
        threshold: THRESHOLD,
        treat_missing: treat,
    }
}

#[derive(Clone, Copy, Debug)]
enum Want {
    S(StateValue),
    Keep,
}
use Want::{Keep, S};

/// One row: data, then the expected state for missing, ignore, breaching, notBreaching.
fn check(n: usize, m: usize, data: &str, want: [Want; 4]) {
    let modes = [
        TreatMissingData::Missing,
        TreatMissingData::Ignore,
        TreatMissingData::Breaching,
        TreatMissingData::NotBreaching,
    ];
    for (mode, w) in modes.into_iter().zip(want) {
        for current in [Ok, Alarm, InsufficientData] {
            let ev = evaluate(&params(n, m, mode), &points(data), current);
            let expected = match w {
                S(s) => s,
                Keep => current,
            };
            assert_eq!(
                ev.state, expected,
                "M={m} N={n} data `{data}` mode {mode:?} from {current:?}: reason {:?}",
                ev.reason
            );
            match w {
                Keep => assert!(ev.reason.is_none(), "a kept state keeps its reason"),
                S(_) => assert!(ev.reason.is_some()),
            }
        }
    }
}

#[test]
fn cloudwatch_table_three_out_of_three() {
    //                      missing              ignore     breaching  notBreaching
    check(3, 3, "0 - X - X", [S(Ok), S(Ok), S(Ok), S(Ok)]);
    check(3, 3, "0 - - - -", [S(Ok), S(Ok), S(Ok), S(Ok)]);
    check(
        3,
        3,
        "- - - - -",
        [S(InsufficientData), Keep, S(Alarm), S(Ok)],
    );
    check(3, 3, "0 X X - X", [S(Alarm), S(Alarm), S(Alarm), S(Alarm)]);
    check(
        3,
        3,
        "- - - - X",
        [S(InsufficientData), Keep, S(Alarm), S(Ok)],
    );
    check(3, 3, "X - - - -", [S(Alarm), Keep, S(Alarm), S(Ok)]);
}

#[test]
fn cloudwatch_table_two_out_of_three() {
    check(3, 2, "0 - X - X", [S(Alarm), S(Alarm), S(Alarm), S(Alarm)]);
    check(3, 2, "0 0 X 0 X", [S(Alarm), S(Alarm), S(Alarm), S(Alarm)]);
    check(3, 2, "0 - X - -", [S(Ok), S(Ok), S(Alarm), S(Ok)]);
    check(3, 2, "- - - - 0", [S(Ok), S(Ok), S(Alarm), S(Ok)]);
    check(
        3,
        2,
        "- - - - X",
        [S(InsufficientData), Keep, S(Alarm), S(Ok)],
    );
}

#[test]
fn reference_premature_alarm_guard() {
    // `- - - - X` does not alarm (M = N = 3 and M = 2): too recent.
    for m in [2, 3] {
        let ev = evaluate(
            &params(3, m, TreatMissingData::Missing),
            &points("- - - - X"),
            Ok,
        );
        assert_ne!(ev.state, Alarm, "M={m}");
    }
    // `- - X - -` with M = N = 3 alarms even under missing: the breach is 3 periods old and
    // nothing since contradicts it.
    let ev = evaluate(
        &params(3, 3, TreatMissingData::Missing),
        &points("- - X - -"),
        Ok,
    );
    assert_eq!(ev.state, Alarm, "{:?}", ev.reason);
    // One period younger it is still too early.
    let ev = evaluate(
        &params(3, 3, TreatMissingData::Missing),
        &points("- - - X -"),
        Ok,
    );
    assert_eq!(ev.state, InsufficientData);
    // Under ignore the same data keeps the state; a non-breaching point anywhere means OK.
    check(3, 3, "- - X - -", [S(Alarm), Keep, S(Alarm), S(Ok)]);
    // (breaching fills: 1 real breach + 1 fill = 2 of 3, still OK)
    check(3, 3, "0 - X - -", [S(Ok), S(Ok), S(Ok), S(Ok)]);
    check(3, 3, "- X - - 0", [S(Ok), S(Ok), S(Ok), S(Ok)]);
}

#[test]
fn enough_real_points_make_the_missing_setting_irrelevant() {
    // ≥ N real points: the N most recent real ones decide, whatever the mode.
    let all = |s| [S(s), S(s), S(s), S(s)];
    check(3, 3, "X X X 0 -", all(Ok)); // last three real: X X 0
    check(3, 3, "0 X - X X", all(Alarm)); // X X X
    check(3, 2, "X - 0 X 0", all(Ok)); // real X 0 X 0 → last three 0 X 0
    check(3, 2, "X 0 X - -", all(Alarm)); // X 0 X
    check(1, 1, "X X X - -", all(Alarm));
    check(1, 1, "X X 0 - -", all(Ok));
}

#[test]
fn m_out_of_n_need_not_be_consecutive() {
    let all = |s| [S(s), S(s), S(s), S(s)];
    // N = 5, M = 3 (range 7).
    check(5, 3, "0 0 X 0 X 0 X", all(Alarm));
    check(5, 3, "0 0 X 0 X 0 0", all(Ok));
    check(5, 3, "X X X 0 0 0 0", all(Ok)); // breaches fell out of the last five
    // Fewer than N real points, notBreaching fills never add breaches.
    check(
        5,
        3,
        "- - X - X - X",
        [S(Alarm), S(Alarm), S(Alarm), S(Alarm)],
    );
    check(5, 3, "- - X - X - -", [S(Alarm), Keep, S(Alarm), S(Ok)]);
}

#[test]
fn the_four_comparison_operators_with_the_statistic_on_the_left() {
    use ComparisonOperator::*;
    let one = |op, v: f64| {
        let p = EvalParams {
            n: 1,
            m: 1,
            comparison: op,
            threshold: 50.0,
            treat_missing: TreatMissingData::Missing,
        };
        let pts = [Point {
            timestamp_ms: 0,
            value: Some(v),
        }];
        evaluate(&p, &pts, InsufficientData).state
    };
    assert_eq!(one(GreaterThanThreshold, 50.0), Ok);
    assert_eq!(one(GreaterThanThreshold, 50.1), Alarm);
    assert_eq!(one(GreaterThanOrEqualToThreshold, 50.0), Alarm);
    assert_eq!(one(GreaterThanOrEqualToThreshold, 49.9), Ok);
    assert_eq!(one(LessThanThreshold, 50.0), Ok);
    assert_eq!(one(LessThanThreshold, 49.9), Alarm);
    assert_eq!(one(LessThanOrEqualToThreshold, 50.0), Alarm);
    assert_eq!(one(LessThanOrEqualToThreshold, 50.1), Ok);
}

#[test]
fn reasons_read_like_cloudwatch() {
    let ev = evaluate(
        &params(3, 3, TreatMissingData::Missing),
        &points("0 - X X X"),
        Ok,
    );
    let r = ev.reason.unwrap();
    assert!(
        r.starts_with("Threshold Crossed: 3 out of the last 3 datapoints [90.0 ("),
        "{r}"
    );
    assert!(r.contains("were greater than the threshold (50.0) (minimum 3 datapoints for OK -> ALARM transition)"), "{r}");
    // Newest first, as CloudWatch lists them.
    assert_eq!(ev.evaluated[0].timestamp_ms, 1_700_000_000_000 + 4 * 60_000);
    let ev = evaluate(
        &params(3, 3, TreatMissingData::Breaching),
        &points("- - - - -"),
        Ok,
    );
    assert_eq!(
        ev.reason.unwrap(),
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as [Breaching]."
    );
    let ev = evaluate(
        &params(3, 2, TreatMissingData::Breaching),
        &points("0 - X - -"),
        Ok,
    );
    assert!(
        ev.reason
            .unwrap()
            .contains("and 1 missing datapoint treated as [Breaching]")
    );
    assert_eq!(ev.filled, 1);
}
