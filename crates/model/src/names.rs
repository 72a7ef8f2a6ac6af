//! Names of log groups and streams: the reference's rules (§6.2) and the four Container
//! Insights groups of a cluster (§3.1).

use thiserror::Error;

/// Retention periods a log group may have, in days (reference §6.2). No retention = never expire.
pub const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Default prefix of kinsight's log groups: `/kinsight/<cluster>/<kind>`.
pub const DEFAULT_LOG_GROUP_PREFIX: &str = "/kinsight";
/// The prefix CloudWatch itself uses, for users who also send to CloudWatch.
pub const CLOUDWATCH_LOG_GROUP_PREFIX: &str = "/aws/containerinsights";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("log group name must be 1 to 512 characters long, got {0}")]
    GroupLength(usize),
    #[error("log group name {name:?} contains {ch:?}; allowed are letters, digits and . - _ / #")]
    GroupChar { name: String, ch: char },
    #[error("log stream name must be 1 to 512 characters long, got {0}")]
    StreamLength(usize),
    #[error("log stream name {name:?} must not contain ':' or '*'")]
    StreamChar { name: String },
    #[error("retention of {0} days is not allowed; allowed values are {RETENTION_DAYS:?}")]
    Retention(u32),
}

/// Checks a log group name: 1–512 characters of `[.\-_/#A-Za-z0-9]`.
pub fn validate_log_group_name(name: &str) -> Result<(), NameError> {
    let n = name.chars().count();
    if n == 0 || n > 512 {
        return Err(NameError::GroupLength(n));
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#')))
    {
        return Err(NameError::GroupChar {
            name: name.to_string(),
            ch,
        });
    }
    Ok(())
}

/// Checks a log stream name: 1–512 characters, no `:` and no `*`.
pub fn validate_log_stream_name(name: &str) -> Result<(), NameError> {
    let n = name.chars().count();
    if n == 0 || n > 512 {
        return Err(NameError::StreamLength(n));
    }
    if name.contains([':', '*']) {
        return Err(NameError::StreamChar {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Checks a retention period against the allowed values.
pub fn validate_retention_days(days: u32) -> Result<(), NameError> {
    if RETENTION_DAYS.contains(&days) {
        Ok(())
    } else {
        Err(NameError::Retention(days))
    }
}

/// The kinds of log group Container Insights writes for a cluster (reference §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKind {
    Performance,
    Application,
    Host,
    Dataplane,
}

impl GroupKind {
    pub const ALL: [GroupKind; 4] = [
        GroupKind::Performance,
        GroupKind::Application,
        GroupKind::Host,
        GroupKind::Dataplane,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Performance => "performance",
            GroupKind::Application => "application",
            GroupKind::Host => "host",
            GroupKind::Dataplane => "dataplane",
        }
    }
}

/// Builds the log group names of one cluster: `<prefix>/<cluster>/<kind>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroups {
    prefix: String,
    cluster: String,
}

impl LogGroups {
    /// `prefix` is e.g. `/kinsight` or `/aws/containerinsights`; a trailing `/` is ignored.
    pub fn new(prefix: &str, cluster: &str) -> Self {
        LogGroups {
            prefix: prefix.trim_end_matches('/').to_string(),
            cluster: cluster.to_string(),
        }
    }

    pub fn name(&self, kind: GroupKind) -> String {
        format!("{}/{}/{}", self.prefix, self.cluster, kind.as_str())
    }

    pub fn performance(&self) -> String {
        self.name(GroupKind::Performance)
    }
    pub fn application(&self) -> String {
        self.name(GroupKind::Application)
    }
    pub fn host(&self) -> String {
        self.name(GroupKind::Host)
    }
    pub fn dataplane(&self) -> String {
        self.name(GroupKind::Dataplane)
    }
    pub fn cluster(&self) -> &str {
        &self.cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_the_reference_rules() {
        assert!(validate_log_group_name("/aws/containerinsights/c-1/performance").is_ok());
        assert!(validate_log_group_name("a#b.c_d").is_ok());
        assert_eq!(validate_log_group_name(""), Err(NameError::GroupLength(0)));
        assert!(matches!(
            validate_log_group_name("bad name"),
            Err(NameError::GroupChar { ch: ' ', .. })
        ));
        assert!(validate_log_group_name(&"a".repeat(512)).is_ok());
        assert!(validate_log_group_name(&"a".repeat(513)).is_err());
    }

    #[test]
    fn stream_names_reject_colon_and_star() {
        assert!(validate_log_stream_name("ip-10-0-1-2.ec2.internal").is_ok());
        assert!(validate_log_stream_name("a:b").is_err());
        assert!(validate_log_stream_name("a*b").is_err());
        assert!(validate_log_stream_name("").is_err());
    }

    #[test]
    fn retention_allows_only_listed_values() {
        assert!(validate_retention_days(14).is_ok());
        assert!(validate_retention_days(3653).is_ok());
        assert!(validate_retention_days(2).is_err());
    }

    #[test]
    fn groups_use_prefix_and_cluster() {
        let g = LogGroups::new("/kinsight/", "prod");
        assert_eq!(g.performance(), "/kinsight/prod/performance");
        assert_eq!(g.dataplane(), "/kinsight/prod/dataplane");
        let aws = LogGroups::new(CLOUDWATCH_LOG_GROUP_PREFIX, "prod");
        assert_eq!(aws.application(), "/aws/containerinsights/prod/application");
    }
}
