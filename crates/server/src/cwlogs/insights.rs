//! Logs Insights through the query service (issue #5): StartQuery, GetQueryResults,
//! StopQuery, DescribeQueries and GetLogRecord. Times are epoch seconds as in CloudWatch
//! (`endTime` inclusive); results are lists of `{field, value}` with values as text and
//! missing values left out, raw-event rows ending with `@ptr`.

use kinsight_query::{Language, QueryError, QueryRequest, QueryService, QueryStatus, value_text};
use kinsight_store::flatten::flatten_message;
use kinsight_store::{Direction, EventQuery};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::malformed_query;
use super::groups::{check_group_name, group_of_arn, resolve_group};
use super::{Answer, Ctx, CwError, CwResult, limit};

fn service<'a>(ctx: &'a Ctx<'_>) -> CwResult<&'a QueryService> {
    ctx.state.query.as_ref().ok_or_else(|| {
        CwError::new(
            CwError::SERVICE_UNAVAILABLE,
            "the query engine is not running on this server",
        )
    })
}

fn language_name(l: Language) -> &'static str {
    match l {
        Language::Insights => "CWLI",
        Language::Sql => "SQL",
    }
}

fn status_name(s: QueryStatus) -> &'static str {
    match s {
        QueryStatus::Scheduled => "Scheduled",
        QueryStatus::Running => "Running",
        QueryStatus::Complete => "Complete",
        QueryStatus::Failed => "Failed",
        QueryStatus::Cancelled => "Cancelled",
        QueryStatus::Timeout => "Timeout",
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartQuery {
    log_group_name: Option<String>,
    log_group_names: Option<Vec<String>>,
    log_group_identifiers: Option<Vec<String>>,
    start_time: i64,
    end_time: i64,
    query_string: String,
    limit: Option<i64>,
    query_language: Option<String>,
}

pub fn start_query(ctx: &Ctx<'_>, i: StartQuery) -> CwResult<Value> {
    let given = [
        i.log_group_name.is_some(),
        i.log_group_names.is_some(),
        i.log_group_identifiers.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(CwError::invalid(
            "Exactly one of logGroupName, logGroupNames or logGroupIdentifiers must be specified.",
        ));
    }
    let mut groups: Vec<String> = Vec::new();
    groups.extend(i.log_group_name);
    groups.extend(i.log_group_names.unwrap_or_default());
    for id in i.log_group_identifiers.unwrap_or_default() {
        groups.push(if id.starts_with("arn:") {
            group_of_arn(&id)?
        } else {
            id
        });
    }
    for g in &groups {
        check_group_name(g, "logGroupNames")?;
    }
    let language = match i.query_language.as_deref() {
        None | Some("CWLI") => Language::Insights,
        Some("SQL") => Language::Sql,
        Some(other) => {
            return Err(CwError::invalid(format!(
                "queryLanguage {other:?} is not supported by kinsight: use CWLI (Logs Insights) or SQL"
            )));
        }
    };
    if i.end_time < i.start_time {
        return Err(CwError::invalid(format!(
            "endTime ({}) must not be before startTime ({})",
            i.end_time, i.start_time
        )));
    }
    let limit = i
        .limit
        .map(|_| limit(i.limit, "limit", 1000, 10_000))
        .transpose()?;
    let req = QueryRequest {
        groups,
        start_ms: i.start_time.saturating_mul(1000),
        // endTime is inclusive: the whole last second is queried.
        end_ms: i.end_time.saturating_add(1).saturating_mul(1000),
        query: i.query_string.clone(),
        language,
        limit: limit.map(|l| l as u64),
        timeout_ms: None,
    };
    match service(ctx)?.start(req) {
        Ok(id) => Ok(json!({"queryId": id})),
        Err(QueryError::Malformed(p)) => Err(malformed_query(&p, &i.query_string)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryIdOnly {
    query_id: String,
}

/// GetQueryResults. The answer is written as JSON text straight from the rows — a tree of
/// `{field, value}` objects would take several hundred bytes a cell — while twice its size
/// (the rows' text and a cell's overhead) is reserved in the request budget; the reservation
/// stays with the answer until it is sent.
pub async fn get_query_results(ctx: &Ctx<'_>, i: QueryIdOnly) -> CwResult<Answer> {
    let s = service(ctx)?.snapshot(&i.query_id, 0)?;
    let cells = s.rows.len().saturating_mul(s.columns.len());
    let field_bytes: usize = s.columns.iter().map(|c| c.len() + 24).sum();
    let estimate = s
        .rows
        .bytes()
        .saturating_add(s.rows.len().saturating_mul(field_bytes))
        .saturating_add(cells.saturating_mul(8));
    let b = &ctx.state.budgets;
    let reserved = b
        .requests
        .reserve(estimate.saturating_mul(2), b.wait)
        .await
        .ok_or_else(crate::body::busy)?;
    let answer = ResultsAnswer {
        query_language: language_name(s.info.language),
        results: ResultRows {
            columns: &s.columns,
            rows: &s.rows,
        },
        statistics: json!({
            "recordsMatched": s.statistics.records_matched as f64,
            "recordsScanned": s.statistics.records_scanned as f64,
            "estimatedRecordsSkipped": 0.0,
            "bytesScanned": s.statistics.bytes_scanned as f64,
            "estimatedBytesSkipped": 0.0,
            "logGroupsScanned": s.info.groups.len() as f64,
        }),
        status: status_name(s.info.status),
    };
    serde_json::to_string(&answer)
        .map(|text| Answer::Held(text, reserved))
        .map_err(|e| CwError::new(CwError::INTERNAL_FAILURE, e.to_string()))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultsAnswer<'a> {
    query_language: &'static str,
    results: ResultRows<'a>,
    statistics: Value,
    status: &'static str,
}

/// Rows as CloudWatch lists them: each a list of `{field, value}`, values as text, missing
/// values left out.
struct ResultRows<'a> {
    columns: &'a [String],
    rows: &'a kinsight_query::Rows,
}

impl Serialize for ResultRows<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut rows = ser.serialize_seq(Some(self.rows.len()))?;
        for row in self.rows.iter() {
            rows.serialize_element(&ResultRow {
                columns: self.columns,
                row,
            })?;
        }
        rows.end()
    }
}

struct ResultRow<'a> {
    columns: &'a [String],
    row: &'a [Value],
}

impl Serialize for ResultRow<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Cell<'a> {
            field: &'a str,
            value: String,
        }
        let mut cells = ser.serialize_seq(None)?;
        for (field, v) in self.columns.iter().zip(self.row) {
            if let Some(value) = value_text(v) {
                cells.serialize_element(&Cell { field, value })?;
            }
        }
        cells.end()
    }
}

pub fn stop_query(ctx: &Ctx<'_>, i: QueryIdOnly) -> CwResult<Value> {
    Ok(json!({"success": service(ctx)?.stop(&i.query_id)?}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeQueries {
    log_group_name: Option<String>,
    status: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    query_language: Option<String>,
}

pub fn describe_queries(ctx: &Ctx<'_>, i: DescribeQueries) -> CwResult<Value> {
    let max = limit(i.max_results, "maxResults", 1000, 1000)?;
    let status = match i.status.as_deref() {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<QueryStatus>(json!(s)).map_err(|_| {
                CwError::validation(
                    s,
                    "status",
                    "Member must satisfy enum value set: [Scheduled, Running, Complete, Failed, Cancelled, Timeout, Unknown]",
                )
            })?,
        ),
    };
    let language = match i.query_language.as_deref() {
        None => None,
        Some("CWLI") => Some(Language::Insights),
        Some("SQL") => Some(Language::Sql),
        Some(other) => {
            return Err(CwError::validation(
                other,
                "queryLanguage",
                "Member must satisfy enum value set: [CWLI, SQL, PPL]",
            ));
        }
    };
    let skip: usize = match &i.next_token {
        None => 0,
        Some(t) => t
            .parse()
            .map_err(|_| CwError::invalid(format!("The specified nextToken is invalid: {t:?}")))?,
    };
    let all: Vec<_> = service(ctx)?
        .list(status, usize::MAX)
        .into_iter()
        .filter(|q| {
            i.log_group_name
                .as_ref()
                .is_none_or(|g| q.groups.iter().any(|x| x == g))
                && language.is_none_or(|l| q.language == l)
        })
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(max)
        .map(|q| {
            json!({
                "queryLanguage": language_name(q.language),
                "queryId": q.query_id,
                "queryString": q.query,
                "status": status_name(q.status),
                "createTime": q.created_ms,
                "logGroupName": q.groups.first(),
            })
        })
        .collect();
    let mut out = json!({"queries": page});
    if skip + max < all.len() {
        out["nextToken"] = json!((skip + max).to_string());
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogRecord {
    log_record_pointer: String,
}

pub async fn get_log_record(ctx: &Ctx<'_>, i: GetLogRecord) -> CwResult<Value> {
    let r = service(ctx)?.get_record(&i.log_record_pointer).await?;
    let record: serde_json::Map<String, Value> = r
        .fields
        .iter()
        .filter_map(|(k, v)| value_text(v).map(|t| (k.clone(), Value::String(t))))
        .collect();
    Ok(json!({"logRecord": record}))
}

/// Events GetLogGroupFields samples (the newest of the group, or of the 15 minutes before
/// `time`).
pub const FIELD_SAMPLE_EVENTS: usize = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogGroupFields {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    /// Epoch seconds: fields of the 15 minutes before it (CloudWatch's rule); without it,
    /// of the group's newest events.
    time: Option<i64>,
}

/// The fields Logs Insights discovers in a group (what editors complete), with the percentage
/// of sampled events that have each: the system fields, then the flattened JSON fields.
pub async fn get_log_group_fields(ctx: &Ctx<'_>, i: GetLogGroupFields) -> CwResult<Value> {
    let group = resolve_group(i.log_group_name, i.log_group_identifier)?;
    let end_ms = i.time.map(|t| t.saturating_add(1).saturating_mul(1000));
    let page = ctx
        .state
        .store
        .read_events(&EventQuery {
            group,
            stream: None,
            start_ms: end_ms.map(|e| e - 15 * 60_000),
            end_ms,
            direction: Direction::Backward,
            cursor: None,
            limit: FIELD_SAMPLE_EVENTS,
            max_bytes: None,
        })
        .await?;
    let n = page.events.len();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut fields = Vec::new();
    for e in &page.events {
        if flatten_message(&e.message, &mut fields) {
            let mut names: Vec<&String> = fields.iter().map(|(k, _)| k).collect();
            names.sort();
            names.dedup();
            for k in names {
                *counts.entry(k.clone()).or_default() += 1;
            }
        }
    }
    let system = [
        "@timestamp",
        "@message",
        "@logStream",
        "@log",
        "@ingestionTime",
    ];
    let mut out: Vec<Value> = system
        .iter()
        .map(|f| json!({"name": f, "percent": if n == 0 { 0 } else { 100 }}))
        .collect();
    out.extend(
        counts.into_iter().map(
            |(k, c)| json!({"name": k, "percent": ((c * 100) as f64 / n as f64).round() as i64}),
        ),
    );
    Ok(json!({"logGroupFields": out}))
}
