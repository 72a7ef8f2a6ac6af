//! PromQL alarms (kinsight extension) over a fake source that answers instant queries: the
//! instants queried (the ends of the evaluation range's periods), M of N over the
//! expression's values, one state per label set, missing data, validation, and the JSON.

use crate::service::T0;
use kinsight_alarms::source::PromSample;
use kinsight_alarms::{
    Alarm, AlarmConfig, AlarmService, AlarmServiceConfig, ManualClock, MetricSource, StateValue,
};
use kinsight_metrics::{MetricStore, MetricStoreConfig, SeriesKey, SeriesSelector, SlotSummary};
use std::sync::{Arc, Mutex};

const MIN: i64 = 60_000;
const LAG: i64 = 10_000;
const EXPR: &str = r#"avg by (node) (node_cpu_utilization{ClusterName="c1"})"#;

type Answer = Box<dyn Fn(i64) -> Vec<PromSample> + Send + Sync>;

/// Answers `promql_instant` with `answer(t)` and records the expressions and instants asked.
struct Fake {
    answer: Answer,
    calls: Mutex<Vec<(String, i64)>>,
}

impl Fake {
    fn new(answer: impl Fn(i64) -> Vec<PromSample> + Send + Sync + 'static) -> Fake {
        Fake {
            answer: Box::new(answer),
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl MetricSource for Fake {
    fn fetch(
        &self,
        _: &SeriesKey,
        _: i64,
        _: i64,
        _: usize,
        _: bool,
    ) -> Result<Vec<SlotSummary>, String> {
        Err("a PromQL alarm must not read metrics".into())
    }

    fn matching(&self, _: &SeriesSelector) -> Vec<SeriesKey> {
        panic!("a PromQL alarm must not match series")
    }

    fn promql_instant(&self, expr: &str, t_ms: i64) -> Result<Vec<PromSample>, String> {
        self.calls.lock().unwrap().push((expr.to_string(), t_ms));
        Ok((self.answer)(t_ms))
    }
}

fn node(name: &str, v: f64) -> PromSample {
    (vec![("node".to_string(), name.to_string())], v)
}

pub fn promql_alarm(name: &str, expr: &str) -> AlarmConfig {
    AlarmConfig {
        alarm_name: name.into(),
        promql: Some(expr.into()),
        period: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: Some(2),
        threshold: 80.0,
        comparison_operator: "GreaterThanThreshold".into(),
        ..Default::default()
    }
}

fn service(dir: &std::path::Path) -> Arc<AlarmService> {
    let config = AlarmServiceConfig {
        evaluation_lag_ms: LAG,
        ..Default::default()
    };
    AlarmService::open(dir.join("alarms"), config, Arc::new(ManualClock::new(T0))).unwrap()
}

#[test]
fn queries_the_end_of_each_period_and_alarms_on_m_of_n() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.put(promql_alarm("cpu", "avg(node_cpu_utilization)"))
        .unwrap();
    // The minute ending at T0+10m: 90, T0+9m: 50, T0+8m: 85 → 2 of the last 3 breach.
    let source = Fake::new(|t| {
        let v = match (t - T0) / MIN {
            10 => 90.0,
            9 => 50.0,
            8 => 85.0,
            _ => 10.0,
        };
        vec![(vec![], v)]
    });
    let r = svc.evaluate_at(T0 + 10 * MIN + LAG, &source).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.transitions.len(), 1, "{r:?}");
    assert_eq!(r.transitions[0].to, StateValue::Alarm);
    // N + 2 = 5 instant queries at the ends of the periods of the evaluation range.
    let calls = source.calls.lock().unwrap().clone();
    let ends: Vec<i64> = (6..=10).map(|m| T0 + m * MIN).collect();
    assert_eq!(calls.iter().map(|c| c.1).collect::<Vec<_>>(), ends);
    assert!(calls.iter().all(|c| c.0 == "avg(node_cpu_utilization)"));
    let a = svc.get("cpu").unwrap();
    assert_eq!(a.state_value, StateValue::Alarm);
    assert!(
        a.series_states.is_empty(),
        "one label set: a single-series alarm"
    );
    let data: serde_json::Value =
        serde_json::from_str(a.state_reason_data.as_deref().unwrap()).unwrap();
    assert_eq!(data["promQL"], "avg(node_cpu_utilization)");
    assert_eq!(
        data["recentDatapoints"],
        serde_json::json!([10.0, 10.0, 85.0, 50.0, 90.0])
    );

    // One breaching value of three: back to OK.
    let source = Fake::new(|t| vec![(vec![], if (t - T0) / MIN == 11 { 95.0 } else { 1.0 })]);
    let r = svc.evaluate_at(T0 + 12 * MIN + LAG, &source).unwrap();
    assert_eq!(r.transitions[0].to, StateValue::Ok, "{r:?}");
}

#[test]
fn several_label_sets_make_a_multi_series_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.put(promql_alarm("nodes", EXPR)).unwrap();
    let source = Fake::new(|_| vec![node("a", 95.0), node("b", 20.0)]);
    let r = svc.evaluate_at(T0 + 10 * MIN + LAG, &source).unwrap();
    assert_eq!(r.transitions[0].to, StateValue::Alarm, "{r:?}");
    assert!(
        r.transitions[0].reason.contains("1 of 2 series in ALARM"),
        "{r:?}"
    );
    let a = svc.get("nodes").unwrap();
    assert_eq!(a.series_states.len(), 2);
    assert_eq!(a.series_states["node=a"], StateValue::Alarm);
    assert_eq!(a.series_states["node=b"], StateValue::Ok);

    // Node a cools down: the alarm is OK once no series breaches.
    let source = Fake::new(|_| vec![node("a", 30.0), node("b", 20.0)]);
    let r = svc.evaluate_at(T0 + 11 * MIN + LAG, &source).unwrap();
    assert_eq!(r.transitions[0].to, StateValue::Ok, "{r:?}");
    assert_eq!(
        svc.get("nodes").unwrap().series_states["node=a"],
        StateValue::Ok
    );
}

#[test]
fn no_sample_at_a_period_end_is_missing_data() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.put(promql_alarm("quiet", "avg(node_cpu_utilization)"))
        .unwrap();
    // An empty result at every instant: INSUFFICIENT_DATA stays (no transition).
    let empty = Fake::new(|_| vec![]);
    let r = svc.evaluate_at(T0 + 10 * MIN + LAG, &empty).unwrap();
    assert!(r.errors.is_empty() && r.transitions.is_empty(), "{r:?}");
    assert_eq!(
        svc.get("quiet").unwrap().state_value,
        StateValue::InsufficientData
    );

    // Values only at two period ends, NaN at another: missing data elsewhere. With
    // TreatMissingData=breaching the missing periods count as breaching.
    let mut c = promql_alarm("quiet", "avg(node_cpu_utilization)");
    c.treat_missing_data = Some("breaching".into());
    c.datapoints_to_alarm = Some(3);
    svc.put(c).unwrap();
    let sparse = Fake::new(|t| match (t - T0) / MIN {
        11 => vec![(vec![], f64::NAN)],
        9 => vec![(vec![], 99.0)],
        _ => vec![],
    });
    let r = svc.evaluate_at(T0 + 11 * MIN + LAG, &sparse).unwrap();
    assert_eq!(r.transitions[0].to, StateValue::Alarm, "{r:?}");
    // notBreaching: the same data is OK.
    let mut c = promql_alarm("quiet", "avg(node_cpu_utilization)");
    c.treat_missing_data = Some("notBreaching".into());
    svc.put(c).unwrap();
    let r = svc.evaluate_at(T0 + 12 * MIN + LAG, &sparse).unwrap();
    assert_eq!(
        svc.get("quiet").unwrap().state_value,
        StateValue::Ok,
        "{r:?}"
    );
}

#[test]
fn a_source_without_promql_is_an_evaluation_error() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let store =
        MetricStore::open(dir.path().join("metrics"), MetricStoreConfig::default()).unwrap();
    svc.put(promql_alarm("cpu", "avg(node_cpu_utilization)"))
        .unwrap();
    let r = svc.evaluate_at(T0 + 10 * MIN + LAG, &store).unwrap();
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].1.contains("PromQL"), "{r:?}");
}

fn invalid(c: AlarmConfig) -> String {
    Alarm::try_from(c).unwrap_err().to_string()
}

#[test]
fn validation_takes_exactly_one_way() {
    assert!(Alarm::try_from(promql_alarm("x", EXPR)).is_ok());
    assert!(Alarm::try_from(promql_alarm("x", "1 + 1")).is_ok());
    let both = AlarmConfig {
        metric_name: "node_cpu_utilization".into(),
        ..promql_alarm("x", EXPR)
    };
    let e = invalid(both);
    assert!(e.contains("PromQL") && e.contains("MetricName"), "{e}");
    let stat = AlarmConfig {
        statistic: Some("Average".into()),
        ..promql_alarm("x", EXPR)
    };
    assert!(invalid(stat).contains("Statistic"));
    let e = invalid(promql_alarm("x", "avg(node_cpu_utilization"));
    assert!(e.contains("invalid PromQL: parse error"), "{e}");
    let e = invalid(promql_alarm("x", "node_cpu_utilization[5m]"));
    assert!(e.contains("instant vector or a scalar"), "{e}");
    assert!(invalid(promql_alarm("x", "")).contains("PromQL"));
    // Neither: the metric alarm's first missing member.
    let neither = AlarmConfig {
        promql: None,
        ..promql_alarm("x", EXPR)
    };
    assert!(invalid(neither).contains("Namespace"));
}

#[test]
fn json_member_and_describe() {
    let c = promql_alarm("x", EXPR);
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["PromQL"], EXPR);
    assert!(
        v.get("MetricName").is_none() && v.get("Namespace").is_none(),
        "{v}"
    );
    let back: AlarmConfig = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);

    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let described = svc.put(c).unwrap();
    assert_eq!(described.promql.as_deref(), Some(EXPR));
    assert_eq!(described.statistic, None);
    let v = serde_json::to_value(&described).unwrap();
    assert_eq!(v["PromQL"], EXPR);
    assert!(v.get("Statistic").is_none(), "{v}");
    // It survives a restart.
    drop(svc);
    let svc = service(dir.path());
    assert_eq!(svc.get("x").unwrap().promql.as_deref(), Some(EXPR));
}

#[test]
fn deeply_nested_expressions_are_refused_not_parsed() {
    let deep = format!("{}1{}", "(".repeat(5_000), ")".repeat(5_000));
    let e = invalid(promql_alarm("x", &deep));
    assert!(e.contains("invalid PromQL"), "{e}");
    let e = invalid(promql_alarm("x", "up[1e30s]"));
    assert!(e.contains("invalid PromQL"), "{e}");
}

#[test]
fn the_cost_of_one_promql_alarm_is_bounded() {
    // At most 100 periods (one instant query each per evaluation) …
    let mut c = promql_alarm("long", EXPR);
    c.period = 10;
    c.evaluation_periods = 101;
    let e = invalid(c);
    assert!(e.contains("EvaluationPeriods") && e.contains("100"), "{e}");
    let mut c = promql_alarm("long", EXPR);
    c.period = 10;
    c.evaluation_periods = 100;
    Alarm::try_from(c).unwrap();

    // … and at most 1,000 label sets: beyond, the alarm is not evaluated (an error), and no
    // series state is kept.
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.put(promql_alarm("wide", EXPR)).unwrap();
    let wide = Fake::new(|_| (0..1_001).map(|i| node(&format!("n{i}"), 1.0)).collect());
    let r = svc.evaluate_at(T0 + 10 * MIN + LAG, &wide).unwrap();
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert!(r.errors[0].1.contains("1000 series"), "{r:?}");
    assert!(svc.get("wide").unwrap().series_states.is_empty());
    let ok = Fake::new(|_| (0..1_000).map(|i| node(&format!("n{i}"), 1.0)).collect());
    let r = svc.evaluate_at(T0 + 11 * MIN + LAG, &ok).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(svc.get("wide").unwrap().series_states.len(), 1_000);
}

#[test]
fn label_sets_whose_values_hold_separators_keep_their_own_states() {
    // {a="1,b=2"} and {a="1", b="2"} would both read `a=1,b=2` unescaped.
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.put(promql_alarm("sep", EXPR)).unwrap();
    let source = Fake::new(|_| {
        vec![
            (vec![("a".to_string(), "1,b=2".to_string())], 95.0),
            (
                vec![
                    ("a".to_string(), "1".to_string()),
                    ("b".to_string(), "2".to_string()),
                ],
                10.0,
            ),
        ]
    });
    svc.evaluate_at(T0 + 10 * MIN + LAG, &source).unwrap();
    let states = svc.get("sep").unwrap().series_states;
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(states["a=1\\,b\\=2"], StateValue::Alarm);
    assert_eq!(states["a=1,b=2"], StateValue::Ok);
}
