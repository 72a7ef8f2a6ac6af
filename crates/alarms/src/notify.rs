//! Alarm actions: HTTP webhooks and Slack-compatible incoming webhooks, sent on state
//! transitions (reference §6.1 "Actions") from a persisted outbox, retried with exponential
//! backoff and jitter.
//!
//! An action is a URL:
//! - `http://…` / `https://…`: a webhook; the body is JSON shaped like CloudWatch's SNS alarm
//!   message (`AlarmName`, `OldStateValue`, `NewStateValue`, `NewStateReason`,
//!   `StateChangeTime`, `Trigger` with the metric) plus the evaluated `Values`.
//! - `https://hooks.slack.com/…` or any URL written `slack+https://…` (`slack+http://…`):
//!   a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, …); the body is
//!   `{"text": …}` and the `slack+` prefix is removed before sending.
//!
//! Where a webhook may connect is [`crate::egress`]'s decision, at every hop. Webhook URLs are
//! secrets (a Slack hook is a secret path; tokens travel in query strings): logs and the
//! alarm history only ever hold them as [`redact_url`] shows them — scheme, host and port —,
//! and callers below admin scope see them that way in DescribeAlarms (issue 15, item 10).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::egress::{EgressPolicy, refusal_in};

/// What replaces the path, query and credentials of a webhook URL when it is shown.
pub const REDACTED: &str = "<redacted>";

/// `scheme://host[:port]/<redacted>` (keeping a `slack+` prefix): enough to tell webhooks
/// apart, nothing of the secret path, query or user info.
pub fn redact_url(action: &str) -> String {
    let (prefix, rest) = match action.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("slack+") => ("slack+", &action[6..]),
        _ => ("", action),
    };
    match reqwest::Url::parse(rest) {
        Ok(u) if u.host_str().is_some() => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{prefix}{}://{}{port}/{REDACTED}",
                u.scheme(),
                u.host_str().unwrap_or_default()
            )
        }
        _ => REDACTED.to_string(),
    }
}

/// `text` with every `http://…` / `https://…` URL in it redacted (history summaries and
/// documents written before redaction, alarm configurations inside history items).
pub fn redact_urls_in(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = ["http://", "https://"]
        .iter()
        .filter_map(|s| lower[pos..].find(s).map(|i| pos + i))
        .min()
    {
        let end = text[found..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\\' | '<' | '>' | '\''))
            .map_or(text.len(), |i| found + i);
        out.push_str(&text[pos..found]);
        out.push_str(&redact_url(&text[found..end]));
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// A reqwest error as text without its URL (which may carry secrets), with its causes.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Webhook,
    Slack,
}

/// A parsed action URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: TargetKind,
    /// The URL requests go to.
    pub url: String,
}

impl Target {
    pub fn parse(action: &str) -> Result<Target, String> {
        let (kind, rest) = match action.strip_prefix("slack+") {
            Some(rest) => (TargetKind::Slack, rest),
            None => (TargetKind::Webhook, action),
        };
        let url = reqwest::Url::parse(rest).map_err(|e| format!("{action:?} is not a URL: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!(
                "{action:?}: an action must be an http(s) webhook URL or slack+https://… (got scheme {:?})",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{action:?}: the URL has no host"));
        }
        let kind = if url.host_str() == Some("hooks.slack.com") {
            TargetKind::Slack
        } else {
            kind
        };
        Ok(Target {
            kind,
            url: url.to_string(),
        })
    }
}

/// One pending delivery of one action, persisted with the alarms so that a restart neither
/// loses nor re-triggers it (delivery is at least once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: u64,
    pub alarm_name: String,
    /// The action as configured (may carry the `slack+` prefix).
    pub action: String,
    /// The webhook body; the Slack text is derived from it at send time.
    pub message: Value,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// First retry after this long; doubled per attempt, plus up to 50 % jitter.
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// Attempts before giving up (recorded in the alarm history).
    pub max_attempts: u32,
    pub timeout_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Where webhooks may connect ([`crate::egress`]).
    pub egress: EgressPolicy,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            backoff_base_ms: 2_000,
            backoff_max_ms: 300_000,
            max_attempts: 10,
            timeout_ms: 10_000,
            concurrency: 16,
            egress: EgressPolicy::default(),
        }
    }
}

impl NotifierConfig {
    /// Delay before attempt `attempts + 1`, given `attempts` failures so far.
    pub fn backoff_ms(&self, attempts: u32) -> i64 {
        let exp = self
            .backoff_base_ms
            .saturating_mul(1i64 << attempts.saturating_sub(1).min(30))
            .min(self.backoff_max_ms);
        let jitter = if exp > 1 {
            rand::random_range(0..=exp / 2)
        } else {
            0
        };
        exp + jitter
    }
}

/// What one attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered(u16),
    /// Worth retrying: connection errors, timeouts, 408, 429, 5xx.
    Retry(String),
    /// Not worth retrying: other 4xx, a bad URL.
    Failed(String),
}

/// The Slack text for a webhook message.
pub fn slack_text(message: &Value) -> String {
    let s = |k: &str| message.get(k).and_then(Value::as_str).unwrap_or_default();
    let icon = match s("NewStateValue") {
        "ALARM" => ":red_circle:",
        "OK" => ":large_green_circle:",
        _ => ":white_circle:",
    };
    let trigger = message.get("Trigger");
    let t = |k: &str| {
        trigger
            .and_then(|t| t.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    format!(
        "{icon} *{}* is now *{}* (was {})\n{} / {}\n{}",
        s("AlarmName"),
        s("NewStateValue"),
        s("OldStateValue"),
        t("Namespace"),
        t("MetricName"),
        s("NewStateReason"),
    )
}

/// Header carrying [`Notification::id`]: one state transition's notification to one action
/// keeps its id across retries and across replicas.
pub const NOTIFICATION_ID_HEADER: &str = "x-kinsight-notification-id";

/// Sends one notification once, with a client from [`EgressPolicy::client`] (which checks
/// names and redirects); address literals are checked here.
pub async fn deliver(
    client: &reqwest::Client,
    policy: &EgressPolicy,
    n: &Notification,
) -> Delivery {
    let target = match Target::parse(&n.action) {
        Ok(t) => t,
        Err(e) => return Delivery::Failed(redact_urls_in(&e)),
    };
    if let Some(refused) = reqwest::Url::parse(&target.url)
        .ok()
        .and_then(|u| policy.check_literal(&u).err())
    {
        return Delivery::Failed(format!("refused: {refused}"));
    }
    let body = match target.kind {
        TargetKind::Webhook => n.message.clone(),
        TargetKind::Slack => serde_json::json!({ "text": slack_text(&n.message) }),
    };
    let res = client
        .post(&target.url)
        .header(
            "user-agent",
            concat!("kinsight-alarms/", env!("CARGO_PKG_VERSION")),
        )
        // The same on every attempt (and on every replica): receivers can drop a repeat.
        .header(NOTIFICATION_ID_HEADER, n.id.to_string())
        .json(&body)
        .send()
        .await;
    match res {
        Ok(r) => {
            let status = r.status();
            if status.is_success() {
                Delivery::Delivered(status.as_u16())
            } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                Delivery::Retry(format!("HTTP {status}"))
            } else {
                Delivery::Failed(format!("HTTP {status}"))
            }
        }
        Err(e) => {
            if let Some(refused) = refusal_in(&e) {
                // A refused address does not become allowed by retrying.
                Delivery::Failed(format!("refused: {refused}"))
            } else if e.is_redirect() {
                Delivery::Failed(describe(e))
            } else {
                Delivery::Retry(describe(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_recognised() {
        let t = Target::parse("https://hooks.slack.com/services/T/B/X").unwrap();
        assert_eq!(t.kind, TargetKind::Slack);
        let t = Target::parse("slack+https://chat.example.com/hooks/abc").unwrap();
        assert_eq!(t.kind, TargetKind::Slack);
        assert_eq!(t.url, "https://chat.example.com/hooks/abc");
        let t = Target::parse("http://127.0.0.1:9000/alarm").unwrap();
        assert_eq!(t.kind, TargetKind::Webhook);
        assert!(
            Target::parse("arn:aws:sns:us-east-1:1:topic")
                .unwrap_err()
                .contains("http(s)")
        );
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn urls_are_redacted_to_scheme_host_and_port() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/<redacted>"
        );
        assert_eq!(
            redact_url("slack+https://user:pw@chat.example.com:8443/hooks/abc?token=s3cret"),
            "slack+https://chat.example.com:8443/<redacted>"
        );
        assert_eq!(redact_url("not a url"), "<redacted>");
        let text = r#"Failed to execute action https://pager.example.com/hook?key=SECRET after 3 attempts; {"AlarmActions":["http://10.0.0.5:9000/x/y"],"OKActions":["slack+HTTPS://h.example/T/B/C"]}"#;
        let r = redact_urls_in(text);
        assert_eq!(
            r,
            r#"Failed to execute action https://pager.example.com/<redacted> after 3 attempts; {"AlarmActions":["http://10.0.0.5:9000/<redacted>"],"OKActions":["slack+https://h.example/<redacted>"]}"#
        );
        assert!(!r.contains("SECRET") && !r.contains("/x/y") && !r.contains("T/B/C"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let c = NotifierConfig {
            backoff_base_ms: 1000,
            backoff_max_ms: 10_000,
            ..Default::default()
        };
        let b1 = c.backoff_ms(1);
        assert!((1000..=1500).contains(&b1), "{b1}");
        let b3 = c.backoff_ms(3);
        assert!((4000..=6000).contains(&b3), "{b3}");
        let b20 = c.backoff_ms(20);
        assert!((10_000..=15_000).contains(&b20), "{b20}");
    }
}
