//! Log groups, streams, retention and tags: CreateLogGroup, DeleteLogGroup,
//! DescribeLogGroups, CreateLogStream, DeleteLogStream, DescribeLogStreams,
//! PutRetentionPolicy, DeleteRetentionPolicy, TagResource, UntagResource,
//! ListTagsForResource and the older TagLogGroup, UntagLogGroup, ListTagsLogGroup.

use std::collections::BTreeMap;

use kinsight_model::names::{
    RETENTION_DAYS, validate_log_group_name, validate_log_stream_name, validate_retention_days,
};
use kinsight_store::{GroupInfo, StoreError, StreamInfo, StreamOrder};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ACCOUNT_ID, Ctx, CwError, CwResult, limit};

/// Most tags on one log group (CloudWatch's limit).
pub const MAX_TAGS: usize = 50;

pub fn check_group_name(name: &str, member: &str) -> CwResult<()> {
    validate_log_group_name(name).map_err(|e| {
        CwError::validation(
            name,
            member,
            &format!(
                "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+ and have length between 1 and 512 ({e})"
            ),
        )
    })
}

pub fn check_stream_name(name: &str, member: &str) -> CwResult<()> {
    validate_log_stream_name(name).map_err(|e| {
        CwError::validation(
            name,
            member,
            &format!(
                "Member must satisfy regular expression pattern: [^:*]* and have length between 1 and 512 ({e})"
            ),
        )
    })
}

/// The group named by `logGroupName` or `logGroupIdentifier` (a name or an ARN), exactly one.
pub fn resolve_group(name: Option<String>, identifier: Option<String>) -> CwResult<String> {
    let g = match (name, identifier) {
        (Some(_), Some(_)) => {
            return Err(CwError::invalid(
                "LogGroupName and LogGroupIdentifier are mutually exclusive parameters.",
            ));
        }
        (Some(n), None) => n,
        (None, Some(id)) if id.starts_with("arn:") => group_of_arn(&id)?,
        (None, Some(id)) => id,
        (None, None) => {
            return Err(CwError::invalid(
                "Either LogGroupName or LogGroupIdentifier must be specified.",
            ));
        }
    };
    check_group_name(&g, "logGroupName")?;
    Ok(g)
}

/// The group of `arn:aws:logs:<region>:<account>:log-group:<name>[:*]` (any region; the
/// account must be this server's).
pub fn group_of_arn(arn: &str) -> CwResult<String> {
    let bad = || {
        CwError::invalid(format!(
            "invalid ARN {arn:?}: expected arn:aws:logs:<region>:{ACCOUNT_ID}:log-group:<name>"
        ))
    };
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    if parts.len() != 7
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "logs"
        || parts[5] != "log-group"
    {
        return Err(bad());
    }
    if parts[4] != ACCOUNT_ID {
        return Err(CwError::new(
            CwError::RESOURCE_NOT_FOUND,
            format!(
                "The specified resource does not exist: {arn} (this server's account id is {ACCOUNT_ID})"
            ),
        ));
    }
    let name = parts[6].strip_suffix(":*").unwrap_or(parts[6]);
    if name.is_empty() {
        return Err(bad());
    }
    Ok(name.to_string())
}

fn group_json(ctx: &Ctx<'_>, g: &GroupInfo) -> Value {
    let arn = ctx.group_arn(&g.name);
    let mut v = json!({
        "logGroupName": g.name,
        "creationTime": g.created_ms,
        "metricFilterCount": 0,
        "arn": format!("{arn}:*"),
        "storedBytes": g.stored_bytes + g.unflushed_bytes,
        "logGroupClass": "STANDARD",
        "logGroupArn": arn,
    });
    if let Some(d) = g.retention_days {
        v["retentionInDays"] = json!(d);
    }
    v
}

fn stream_json(ctx: &Ctx<'_>, group: &str, s: &StreamInfo) -> Value {
    let mut v = json!({
        "logStreamName": s.name,
        "creationTime": s.created_ms,
        "arn": format!("{}:log-stream:{}", ctx.group_arn(group), s.name),
        "storedBytes": 0,
    });
    for (k, t) in [
        ("firstEventTimestamp", s.first_event_ms),
        ("lastEventTimestamp", s.last_event_ms),
        ("lastIngestionTime", s.last_ingestion_ms),
    ] {
        if let Some(t) = t {
            v[k] = json!(t);
        }
    }
    // Sequence tokens are ignored (reference §6.2); older clients still read one.
    if let Some(t) = s.last_ingestion_ms {
        v["uploadSequenceToken"] = json!(sequence_token(t as u64));
    }
    v
}

/// A sequence token in AWS's look (digits); only for clients that still read one.
pub fn sequence_token(n: u64) -> String {
    format!("{n:056}")
}

/// Checks tags as CloudWatch does: ≤ 50, keys 1–128 and values ≤ 256 characters of letters,
/// digits, spaces and `_ . : / = + - @`, no `aws:` keys.
fn check_tags<'a>(
    tags: impl IntoIterator<Item = (&'a String, Option<&'a String>)>,
) -> CwResult<()> {
    let ok_char = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || !k.chars().all(ok_char) {
            return Err(CwError::validation(
                k,
                "tags",
                "Member must satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+)$ and have length between 1 and 128",
            ));
        }
        if k.starts_with("aws:") {
            return Err(CwError::invalid(format!(
                "tag key {k:?}: keys starting with aws: are reserved"
            )));
        }
        if let Some(v) = v
            && (v.chars().count() > 256 || !v.chars().all(ok_char))
        {
            return Err(CwError::validation(
                v,
                "tags",
                "Member must satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$ and have length at most 256",
            ));
        }
    }
    Ok(())
}

fn check_new_tags(tags: &BTreeMap<String, String>) -> CwResult<()> {
    if tags.is_empty() || tags.len() > MAX_TAGS {
        return Err(CwError::validation(
            &format!("{} tags", tags.len()),
            "tags",
            &format!("Member must have between 1 and {MAX_TAGS} entries"),
        ));
    }
    check_tags(tags.iter().map(|(k, v)| (k, Some(v))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateLogGroup {
    log_group_name: String,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility; kinsight has one storage class (`STANDARD`).
    #[serde(default)]
    log_group_class: Option<String>,
}

pub async fn create_log_group(ctx: &Ctx<'_>, i: CreateLogGroup) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    if let Some(c) = &i.log_group_class
        && !matches!(c.as_str(), "STANDARD" | "INFREQUENT_ACCESS" | "DELIVERY")
    {
        return Err(CwError::validation(
            c,
            "logGroupClass",
            "Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]",
        ));
    }
    let tags = i.tags.unwrap_or_default();
    if !tags.is_empty() {
        check_new_tags(&tags)?;
    }
    ctx.state
        .store
        .create_group(&i.log_group_name, None, tags)
        .await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupOnly {
    log_group_name: String,
}

pub async fn delete_log_group(ctx: &Ctx<'_>, i: GroupOnly) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    ctx.state.store.delete_group(&i.log_group_name).await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogGroups {
    /// Names or ARNs of the groups wanted (not with a prefix or pattern).
    log_group_identifiers: Option<Vec<String>>,
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

pub fn describe_log_groups(ctx: &Ctx<'_>, i: DescribeLogGroups) -> CwResult<Value> {
    let limit = limit(i.limit, "limit", 50, 50)?;
    if i.log_group_name_prefix.is_some() && i.log_group_name_pattern.is_some() {
        return Err(CwError::invalid(
            "LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive parameters.",
        ));
    }
    if let Some(ids) = &i.log_group_identifiers {
        if i.log_group_name_prefix.is_some() || i.log_group_name_pattern.is_some() {
            return Err(CwError::invalid(
                "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.",
            ));
        }
        let mut names = Vec::with_capacity(ids.len());
        for id in ids {
            names.push(resolve_group(None, Some(id.clone()))?);
        }
        names.sort();
        names.dedup();
        let found: Vec<Value> = names
            .iter()
            .filter_map(|n| ctx.state.store.group(n))
            .map(|g| group_json(ctx, &g))
            .collect();
        return Ok(json!({"logGroups": found}));
    }
    let pattern = i.log_group_name_pattern.map(|p| p.to_lowercase());
    let mut after = i.next_token.clone();
    let mut groups: Vec<GroupInfo> = Vec::new();
    let next = loop {
        let page =
            ctx.state
                .store
                .list_groups(i.log_group_name_prefix.as_deref(), after.as_deref(), 1000);
        let exhausted = page.next.is_none();
        let mut last_seen = None;
        let mut full = false;
        for g in page.items {
            last_seen = Some(g.name.clone());
            if pattern
                .as_ref()
                .is_some_and(|p| !g.name.to_lowercase().contains(p.as_str()))
            {
                continue;
            }
            if groups.len() == limit {
                full = true;
                break;
            }
            groups.push(g);
        }
        if full {
            break groups.last().map(|g| g.name.clone());
        }
        if exhausted {
            break None;
        }
        after = last_seen;
    };
    let mut out =
        json!({"logGroups": groups.iter().map(|g| group_json(ctx, g)).collect::<Vec<_>>()});
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamOnly {
    log_group_name: String,
    log_stream_name: String,
}

pub async fn create_log_stream(ctx: &Ctx<'_>, i: StreamOnly) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    check_stream_name(&i.log_stream_name, "logStreamName")?;
    ctx.state
        .store
        .create_stream(&i.log_group_name, &i.log_stream_name)
        .await?;
    Ok(Value::Null)
}

pub async fn delete_log_stream(ctx: &Ctx<'_>, i: StreamOnly) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    check_stream_name(&i.log_stream_name, "logStreamName")?;
    ctx.state
        .store
        .delete_stream(&i.log_group_name, &i.log_stream_name)
        .await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogStreams {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<i64>,
}

pub fn describe_log_streams(ctx: &Ctx<'_>, i: DescribeLogStreams) -> CwResult<Value> {
    let group = resolve_group(i.log_group_name, i.log_group_identifier)?;
    let limit = limit(i.limit, "limit", 50, 50)?;
    let order = match i.order_by.as_deref() {
        None | Some("LogStreamName") => StreamOrder::LogStreamName,
        Some("LastEventTime") => StreamOrder::LastEventTime,
        Some(other) => {
            return Err(CwError::validation(
                other,
                "orderBy",
                "Member must satisfy enum value set: [LogStreamName, LastEventTime]",
            ));
        }
    };
    if order == StreamOrder::LastEventTime && i.log_stream_name_prefix.is_some() {
        return Err(CwError::invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let page = ctx.state.store.list_streams(
        &group,
        i.log_stream_name_prefix.as_deref(),
        order,
        i.descending.unwrap_or(false),
        i.next_token.as_deref(),
        limit,
    )?;
    let mut out = json!({
        "logStreams": page.items.iter().map(|s| stream_json(ctx, &group, s)).collect::<Vec<_>>()
    });
    if let Some(n) = page.next {
        out["nextToken"] = json!(n);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRetentionPolicy {
    log_group_name: String,
    retention_in_days: i64,
}

pub async fn put_retention_policy(ctx: &Ctx<'_>, i: PutRetentionPolicy) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    let days = u32::try_from(i.retention_in_days)
        .ok()
        .filter(|d| validate_retention_days(*d).is_ok())
        .ok_or_else(|| {
            CwError::validation(
                &i.retention_in_days.to_string(),
                "retentionInDays",
                &format!("Member must satisfy enum value set: {RETENTION_DAYS:?}"),
            )
        })?;
    ctx.state
        .store
        .put_retention(&i.log_group_name, Some(days))
        .await?;
    Ok(Value::Null)
}

pub async fn delete_retention_policy(ctx: &Ctx<'_>, i: GroupOnly) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    ctx.state
        .store
        .put_retention(&i.log_group_name, None)
        .await?;
    Ok(Value::Null)
}

fn group_tags(ctx: &Ctx<'_>, group: &str) -> CwResult<BTreeMap<String, String>> {
    ctx.state
        .store
        .group(group)
        .map(|g| g.tags)
        .ok_or_else(|| StoreError::GroupNotFound(group.to_string()).into())
}

async fn add_tags(ctx: &Ctx<'_>, group: &str, tags: BTreeMap<String, String>) -> CwResult<()> {
    check_new_tags(&tags)?;
    let existing = group_tags(ctx, group)?;
    let total = existing.len() + tags.keys().filter(|k| !existing.contains_key(*k)).count();
    if total > MAX_TAGS {
        return Err(CwError::new(
            "TooManyTagsException",
            format!("A resource can have no more than {MAX_TAGS} tags ({total} requested)."),
        ));
    }
    ctx.state.store.tag_group(group, tags).await?;
    Ok(())
}

async fn remove_tags(ctx: &Ctx<'_>, group: &str, keys: Vec<String>) -> CwResult<()> {
    if keys.is_empty() || keys.len() > MAX_TAGS {
        return Err(CwError::validation(
            &format!("{} keys", keys.len()),
            "tagKeys",
            &format!("Member must have between 1 and {MAX_TAGS} entries"),
        ));
    }
    check_tags(keys.iter().map(|k| (k, None)))?;
    ctx.state.store.untag_group(group, keys).await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResource {
    resource_arn: String,
    tags: BTreeMap<String, String>,
}

pub async fn tag_resource(ctx: &Ctx<'_>, i: TagResource) -> CwResult<Value> {
    let group = group_of_arn(&i.resource_arn)?;
    add_tags(ctx, &group, i.tags).await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResource {
    resource_arn: String,
    tag_keys: Vec<String>,
}

pub async fn untag_resource(ctx: &Ctx<'_>, i: UntagResource) -> CwResult<Value> {
    let group = group_of_arn(&i.resource_arn)?;
    remove_tags(ctx, &group, i.tag_keys).await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceOnly {
    resource_arn: String,
}

pub fn list_tags_for_resource(ctx: &Ctx<'_>, i: ResourceOnly) -> CwResult<Value> {
    let group = group_of_arn(&i.resource_arn)?;
    Ok(json!({"tags": group_tags(ctx, &group)?}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagLogGroup {
    log_group_name: String,
    tags: BTreeMap<String, String>,
}

pub async fn tag_log_group(ctx: &Ctx<'_>, i: TagLogGroup) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    add_tags(ctx, &i.log_group_name, i.tags).await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagLogGroup {
    log_group_name: String,
    /// The keys (the legacy action calls them `tags`).
    tags: Vec<String>,
}

pub async fn untag_log_group(ctx: &Ctx<'_>, i: UntagLogGroup) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    remove_tags(ctx, &i.log_group_name, i.tags).await?;
    Ok(Value::Null)
}

pub fn list_tags_log_group(ctx: &Ctx<'_>, i: GroupOnly) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    Ok(json!({"tags": group_tags(ctx, &i.log_group_name)?}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_groups_of_this_account() {
        assert_eq!(
            group_of_arn("arn:aws:logs:eu-west-1:000000000000:log-group:/a/b").unwrap(),
            "/a/b"
        );
        assert_eq!(
            group_of_arn("arn:aws:logs:us-east-1:000000000000:log-group:/a/b:*").unwrap(),
            "/a/b"
        );
        assert_eq!(
            group_of_arn("arn:aws:logs:us-east-1:123456789012:log-group:/a")
                .unwrap_err()
                .kind,
            CwError::RESOURCE_NOT_FOUND
        );
        assert_eq!(
            group_of_arn("arn:aws:s3:::bucket").unwrap_err().kind,
            CwError::INVALID_PARAMETER
        );
    }
}
