//! `kinsight alarms`: create, list, inspect and delete alarms on a kinsight server, with the
//! flags of `aws cloudwatch put-metric-alarm` / `describe-alarms` (issue #6), and install the
//! default Kubernetes alarm pack.

use super::metrics::{Api, Output, ServerArgs, parse_dimensions, print_table};
use anyhow::bail;
use clap::{Args, Subcommand};
use kinsight_alarms::wire::{
    DescribeAlarmHistoryResponse, DescribeAlarmsResponse, InstallPackRequest, InstallPackResponse,
    SetAlarmStateRequest,
};
use kinsight_alarms::{AlarmConfig, Dimension, MetricAlarm, PackOptions, kubernetes_pack};
use std::process::ExitCode;

#[derive(Args)]
pub struct AlarmsArgs {
    #[command(subcommand)]
    command: AlarmsCommand,
}

#[derive(Subcommand)]
enum AlarmsCommand {
    /// Create or update an alarm (the flags of `aws cloudwatch put-metric-alarm`).
    Put(Box<PutArgs>),
    /// List alarms; `--output json` prints DescribeAlarms' shape.
    List(ListArgs),
    /// Show one alarm in DescribeAlarms' shape.
    Describe(NameArgs),
    /// State changes, configuration updates and actions of an alarm, newest first.
    History(HistoryArgs),
    /// Delete an alarm.
    Delete(NameArgs),
    /// Set an alarm's state until its next evaluation (to test actions).
    SetState(SetStateArgs),
    /// The default Kubernetes alarm pack.
    Pack(PackArgs),
}

#[derive(Args)]
struct PutArgs {
    #[arg(long)]
    alarm_name: String,
    #[arg(long)]
    alarm_description: Option<String>,
    /// The metric's namespace (a metric alarm; not with --promql).
    #[arg(long)]
    namespace: Option<String>,
    /// The metric (a metric alarm; not with --promql).
    #[arg(long)]
    metric_name: Option<String>,
    /// A PromQL expression instead of a metric (kinsight): each period's datapoint is its
    /// value at the period's end; several label sets make a multi-series alarm.
    #[arg(long, value_name = "EXPR")]
    promql: Option<String>,
    /// `Name=K,Value=V`, several allowed; `Value=*` makes a multi-series alarm (kinsight).
    #[arg(long, num_args = 1.., value_name = "Name=K,Value=V")]
    dimensions: Vec<String>,
    /// SampleCount, Average, Sum, Minimum or Maximum.
    #[arg(long, conflicts_with = "extended_statistic")]
    statistic: Option<String>,
    /// A percentile: pNN or pNN.NN.
    #[arg(long)]
    extended_statistic: Option<String>,
    /// Seconds: 10, 30 or a multiple of 60.
    #[arg(long)]
    period: u64,
    #[arg(long)]
    evaluation_periods: u32,
    /// M of "M out of N" (default: N).
    #[arg(long)]
    datapoints_to_alarm: Option<u32>,
    #[arg(long, allow_hyphen_values = true)]
    threshold: f64,
    /// GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold,
    /// LessThanOrEqualToThreshold.
    #[arg(long)]
    comparison_operator: String,
    /// missing (default), notBreaching, breaching, ignore.
    #[arg(long)]
    treat_missing_data: Option<String>,
    /// evaluate or ignore (percentile alarms).
    #[arg(long)]
    evaluate_low_sample_count_percentile: Option<String>,
    #[arg(long)]
    unit: Option<String>,
    /// Webhook URLs run on entering ALARM (Slack: hooks.slack.com or slack+https://…).
    #[arg(long, num_args = 1.., value_name = "URL")]
    alarm_actions: Vec<String>,
    #[arg(long, num_args = 1.., value_name = "URL")]
    ok_actions: Vec<String>,
    #[arg(long, num_args = 1.., value_name = "URL")]
    insufficient_data_actions: Vec<String>,
    /// Keep the actions but do not run them.
    #[arg(long)]
    no_actions_enabled: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct ListArgs {
    #[arg(long)]
    alarm_name_prefix: Option<String>,
    /// OK, ALARM or INSUFFICIENT_DATA.
    #[arg(long)]
    state_value: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct NameArgs {
    name: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct HistoryArgs {
    name: String,
    /// ConfigurationUpdate, StateUpdate or Action.
    #[arg(long)]
    history_item_type: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct SetStateArgs {
    name: String,
    #[arg(long)]
    state_value: String,
    #[arg(long)]
    state_reason: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct PackArgs {
    #[command(subcommand)]
    command: PackCommand,
}

#[derive(Subcommand)]
enum PackCommand {
    /// Install (or update) the Kubernetes pack for a cluster: node CPU and memory, pod memory
    /// near its limit, container restarts, failed nodes, crash-looping pods.
    Install(PackInstallArgs),
    /// Print the pack's alarm definitions (PutMetricAlarm JSON) without installing.
    Show(PackShowArgs),
}

#[derive(Args)]
struct PackInstallArgs {
    #[arg(long)]
    cluster: String,
    #[arg(long)]
    prefix: Option<String>,
    #[arg(long, num_args = 1.., value_name = "URL")]
    alarm_actions: Vec<String>,
    #[arg(long, num_args = 1.., value_name = "URL")]
    ok_actions: Vec<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct PackShowArgs {
    #[arg(long)]
    cluster: String,
    #[arg(long)]
    prefix: Option<String>,
}

pub fn run(args: AlarmsArgs) -> anyhow::Result<ExitCode> {
    if let AlarmsCommand::Pack(PackArgs {
        command: PackCommand::Show(a),
    }) = &args.command
    {
        let mut o = PackOptions::new(&a.cluster);
        if let Some(p) = &a.prefix {
            o.prefix = p.clone();
        }
        println!("{}", serde_json::to_string_pretty(&kubernetes_pack(&o))?);
        return Ok(ExitCode::SUCCESS);
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        match args.command {
            AlarmsCommand::Put(a) => put(*a).await,
            AlarmsCommand::List(a) => list(a).await,
            AlarmsCommand::Describe(a) => describe(a).await,
            AlarmsCommand::History(a) => history(a).await,
            AlarmsCommand::Delete(a) => delete(a).await,
            AlarmsCommand::SetState(a) => set_state(a).await,
            AlarmsCommand::Pack(PackArgs {
                command: PackCommand::Install(a),
            }) => pack_install(a).await,
            AlarmsCommand::Pack(PackArgs {
                command: PackCommand::Show(_),
            }) => Ok(ExitCode::SUCCESS),
        }
    })
}

/// Exactly one of a metric (`--namespace`, `--metric-name`, a statistic) and `--promql`.
fn check_source(a: &PutArgs) -> anyhow::Result<()> {
    let metric_flags: Vec<&str> = [
        ("--namespace", a.namespace.is_some()),
        ("--metric-name", a.metric_name.is_some()),
        ("--dimensions", !a.dimensions.is_empty()),
        ("--statistic", a.statistic.is_some()),
        ("--extended-statistic", a.extended_statistic.is_some()),
        (
            "--evaluate-low-sample-count-percentile",
            a.evaluate_low_sample_count_percentile.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(f, given)| given.then_some(f))
    .collect();
    if a.promql.is_some() {
        if !metric_flags.is_empty() {
            bail!(
                "--promql replaces the metric: drop {} (give either --promql or --namespace/--metric-name/--statistic)",
                metric_flags.join(", ")
            );
        }
        return Ok(());
    }
    let mut missing = Vec::new();
    if a.namespace.is_none() {
        missing.push("--namespace");
    }
    if a.metric_name.is_none() {
        missing.push("--metric-name");
    }
    if a.statistic.is_none() && a.extended_statistic.is_none() {
        missing.push("--statistic (or --extended-statistic)");
    }
    if !missing.is_empty() {
        bail!(
            "an alarm watches a metric or a PromQL expression: give --promql EXPR, or {} for a metric alarm",
            missing.join(", ")
        );
    }
    Ok(())
}

fn config_of(a: &PutArgs) -> anyhow::Result<AlarmConfig> {
    check_source(a)?;
    let mut dimensions = Vec::new();
    for d in parse_dimensions(&a.dimensions)? {
        let Some(value) = d.value else {
            bail!(
                "--dimensions Name={}: an alarm needs a Value (use Value=* for every value)",
                d.name
            );
        };
        dimensions.push(Dimension {
            name: d.name,
            value,
        });
    }
    Ok(AlarmConfig {
        alarm_name: a.alarm_name.clone(),
        alarm_description: a.alarm_description.clone(),
        namespace: a.namespace.clone().unwrap_or_default(),
        metric_name: a.metric_name.clone().unwrap_or_default(),
        promql: a.promql.clone(),
        dimensions,
        statistic: a.statistic.clone(),
        extended_statistic: a.extended_statistic.clone(),
        period: a.period,
        evaluation_periods: a.evaluation_periods,
        datapoints_to_alarm: a.datapoints_to_alarm,
        threshold: a.threshold,
        comparison_operator: a.comparison_operator.clone(),
        treat_missing_data: a.treat_missing_data.clone(),
        evaluate_low_sample_count_percentile: a.evaluate_low_sample_count_percentile.clone(),
        unit: a.unit.clone(),
        actions_enabled: a.no_actions_enabled.then_some(false),
        alarm_actions: a.alarm_actions.clone(),
        ok_actions: a.ok_actions.clone(),
        insufficient_data_actions: a.insufficient_data_actions.clone(),
    })
}

async fn put(a: PutArgs) -> anyhow::Result<ExitCode> {
    let config = config_of(&a)?;
    // Check locally first: the same validation as the server, with the same messages, and
    // no round trip for a typo.
    kinsight_alarms::Alarm::try_from(config.clone())?;
    let api = Api::new(&a.server)?;
    let alarm: MetricAlarm = api
        .send(reqwest::Method::PUT, "/v1/alarms", &config)
        .await?;
    eprintln!("alarm {:?} saved ({})", alarm.alarm_name, alarm.state_value);
    Ok(ExitCode::SUCCESS)
}

async fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let mut q = Vec::new();
    if let Some(p) = a.alarm_name_prefix {
        q.push(("prefix", p));
    }
    if let Some(s) = a.state_value {
        q.push(("state", s));
    }
    let res: DescribeAlarmsResponse = api.get("/v1/alarms", &q).await?;
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&res)?),
        Output::Table => {
            let rows: Vec<Vec<String>> = res
                .metric_alarms
                .iter()
                .map(|m| {
                    vec![
                        m.alarm_name.clone(),
                        m.state_value.to_string(),
                        match &m.promql {
                            Some(expr) => format!(
                                "{expr} {} {}",
                                operator_symbol(&m.comparison_operator),
                                m.threshold
                            ),
                            None => format!(
                                "{} {} {} {}",
                                m.metric_name,
                                m.statistic
                                    .clone()
                                    .or(m.extended_statistic.clone())
                                    .unwrap_or_default(),
                                operator_symbol(&m.comparison_operator),
                                m.threshold
                            ),
                        },
                        m.state_reason.chars().take(100).collect(),
                    ]
                })
                .collect();
            print_table(&["NAME", "STATE", "CONDITION", "REASON"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn operator_symbol(op: &str) -> &str {
    match op {
        "GreaterThanOrEqualToThreshold" => ">=",
        "GreaterThanThreshold" => ">",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "<=",
        other => other,
    }
}

async fn describe(a: NameArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let alarm: MetricAlarm = api.get("/v1/alarm", &[("name", a.name)]).await?;
    let res = DescribeAlarmsResponse {
        metric_alarms: vec![alarm],
    };
    println!("{}", serde_json::to_string_pretty(&res)?);
    Ok(ExitCode::SUCCESS)
}

async fn history(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let mut q = vec![("name", a.name), ("limit", a.limit.to_string())];
    if let Some(t) = a.history_item_type {
        q.push(("type", t));
    }
    let res: DescribeAlarmHistoryResponse = api.get("/v1/alarm/history", &q).await?;
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&res)?),
        Output::Table => {
            let rows: Vec<Vec<String>> = res
                .alarm_history_items
                .iter()
                .map(|h| {
                    vec![
                        h.timestamp.clone(),
                        format!("{:?}", h.history_item_type),
                        h.history_summary.clone(),
                    ]
                })
                .collect();
            print_table(&["TIMESTAMP", "TYPE", "SUMMARY"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn delete(a: NameArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let _: serde_json::Value = api.delete("/v1/alarm", &[("name", a.name.clone())]).await?;
    eprintln!("alarm {:?} deleted", a.name);
    Ok(ExitCode::SUCCESS)
}

async fn set_state(a: SetStateArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let req = SetAlarmStateRequest {
        alarm_name: a.name,
        state_value: a.state_value,
        state_reason: a.state_reason,
    };
    let _: serde_json::Value = api
        .send(reqwest::Method::POST, "/v1/alarm/state", &req)
        .await?;
    Ok(ExitCode::SUCCESS)
}

async fn pack_install(a: PackInstallArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&a.server)?;
    let req = InstallPackRequest {
        cluster_name: a.cluster,
        prefix: a.prefix,
        alarm_actions: a.alarm_actions,
        ok_actions: a.ok_actions,
    };
    let res: InstallPackResponse = api
        .send(reqwest::Method::POST, "/v1/alarms/packs/kubernetes", &req)
        .await?;
    for m in &res.installed {
        println!("{}", m.alarm_name);
    }
    eprintln!("{} alarms installed", res.installed.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: AlarmsCommand,
    }

    #[test]
    fn put_takes_aws_cli_flags() {
        let t = T::try_parse_from([
            "x",
            "put",
            "--alarm-name",
            "cpu",
            "--namespace",
            "ContainerInsights",
            "--metric-name",
            "node_cpu_utilization",
            "--dimensions",
            "Name=ClusterName,Value=prod",
            "Name=NodeName,Value=*",
            "--statistic",
            "Average",
            "--period",
            "60",
            "--evaluation-periods",
            "5",
            "--datapoints-to-alarm",
            "3",
            "--threshold",
            "-1.5",
            "--comparison-operator",
            "LessThanThreshold",
            "--treat-missing-data",
            "notBreaching",
            "--alarm-actions",
            "http://a/1",
            "slack+https://b/2",
            "--ok-actions",
            "http://a/ok",
            "--server",
            "http://127.0.0.1:9999",
        ])
        .unwrap();
        let AlarmsCommand::Put(a) = t.c else { panic!() };
        let c = config_of(&a).unwrap();
        assert_eq!(c.dimensions.len(), 2);
        assert_eq!(c.dimensions[1].value, "*");
        assert_eq!(c.threshold, -1.5);
        assert_eq!(c.alarm_actions.len(), 2);
        assert_eq!(c.datapoints_to_alarm, Some(3));
        kinsight_alarms::Alarm::try_from(c).unwrap();
        // A metric alarm needs --statistic or --extended-statistic (not a clap rule: not
        // needed with --promql).
        let t = T::try_parse_from([
            "x",
            "put",
            "--alarm-name",
            "a",
            "--namespace",
            "n",
            "--metric-name",
            "m",
            "--period",
            "60",
            "--evaluation-periods",
            "1",
            "--threshold",
            "1",
            "--comparison-operator",
            "GreaterThanThreshold",
        ])
        .unwrap();
        let AlarmsCommand::Put(a) = t.c else { panic!() };
        let e = config_of(&a).unwrap_err().to_string();
        assert!(e.contains("--statistic (or --extended-statistic)"), "{e}");
        // --promql instead of the metric.
        let t = T::try_parse_from([
            "x",
            "put",
            "--alarm-name",
            "a",
            "--promql",
            "sum(rate(x[5m]))",
            "--period",
            "60",
            "--evaluation-periods",
            "1",
            "--threshold",
            "1",
            "--comparison-operator",
            "GreaterThanThreshold",
        ])
        .unwrap();
        let AlarmsCommand::Put(a) = t.c else { panic!() };
        let c = config_of(&a).unwrap();
        assert_eq!(c.promql.as_deref(), Some("sum(rate(x[5m]))"));
        assert!(c.namespace.is_empty() && c.statistic.is_none());
        kinsight_alarms::Alarm::try_from(c).unwrap();
    }
}
