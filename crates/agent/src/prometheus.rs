//! Prometheus text format (0.0.4), both ways:
//! - [`render`]: the latest collection (`--metrics-listen`), every numeric field of every
//!   performance event as a gauge, labelled with the event's identity;
//! - [`TextParser`]: reading an exposition line by line, as the leader reads the API server's
//!   `/metrics` for the control-plane events (issue 18). It keeps only the samples its caller
//!   asks for (an API server exposes tens of thousands of series, most of them histogram
//!   buckets the agent does not need) and never holds the whole text.

use kinsight_model::catalogue::{keys, types};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use thiserror::Error;

/// Event keys that become labels, and their Prometheus names.
const LABELS: &[(&str, &str)] = &[
    (keys::CLUSTER_NAME, "cluster"),
    (keys::NODE_NAME, "node"),
    (keys::NAMESPACE, "namespace"),
    (keys::POD_NAME, "pod"),
    (keys::FULL_POD_NAME, "full_pod_name"),
    (keys::SERVICE, "service"),
    (keys::DEVICE, "device"),
    (keys::INTERFACE, "interface"),
    // One GPU or EFA device per accelerator event (issue 18).
    (keys::GPU_DEVICE, "gpu_device"),
    (keys::EFA_DEVICE, "efa_device"),
];

/// Renders events; metric families are grouped and sorted so the output is stable.
/// ControlPlane events are left out: their numbers are the API server's own, labelled by
/// more than this identity (scrape the API server for them).
pub fn render<'a>(events: impl IntoIterator<Item = &'a Map<String, Value>>) -> String {
    let mut families: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    for ev in events {
        if ev.get(keys::TYPE).and_then(Value::as_str) == Some(types::CONTROL_PLANE) {
            continue;
        }
        let mut labels: Vec<(String, String)> = LABELS
            .iter()
            .filter_map(|(k, name)| {
                ev.get(*k)
                    .and_then(Value::as_str)
                    .map(|v| (name.to_string(), v.to_string()))
            })
            .collect();
        if let Some(c) = ev
            .get(keys::KUBERNETES)
            .and_then(|k| k.get("container_name"))
            .and_then(Value::as_str)
        {
            labels.push(("container".into(), c.to_string()));
        }
        let label_text = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        for (k, v) in ev {
            if let Some(n) = v.as_f64() {
                families
                    .entry(k.as_str())
                    .or_default()
                    .push((label_text.clone(), n));
            }
        }
    }
    let mut out = String::new();
    for (name, samples) in families {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One sample of an exposition: its series name (`http_requests_total`,
/// `request_duration_seconds_sum`), labels in the order written, and value. Timestamps are
/// read and dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// What is wrong with an exposition, and on which line (1-based).
#[derive(Debug, Error, PartialEq)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// An exposition read line by line ([`Self::line`]), keeping the samples whose series name
/// `keep` accepts. Those are parsed in full and a malformed one fails the whole text, as
/// Prometheus fails a scrape; other lines are only checked for a valid series name. `# HELP`,
/// `# TYPE` and other comments are skipped (the caller knows the types it asks for).
pub struct TextParser<F> {
    keep: F,
    line: usize,
    samples: Vec<Sample>,
}

impl<F: FnMut(&str) -> bool> TextParser<F> {
    pub fn new(keep: F) -> TextParser<F> {
        TextParser {
            keep,
            line: 0,
            samples: Vec::new(),
        }
    }

    /// The next line, without its `\n` (a trailing `\r` is ignored).
    pub fn line(&mut self, line: &str) -> Result<(), ParseError> {
        self.line += 1;
        let at = self.line;
        let err = |message: String| ParseError { line: at, message };
        let line = line.strip_suffix('\r').unwrap_or(line);
        let text = line.trim_start_matches([' ', '\t']);
        if text.is_empty() || text.starts_with('#') {
            return Ok(());
        }
        let name_end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(text.len());
        let name = &text[..name_end];
        if !valid_metric_name(name) {
            return Err(err(format!(
                "{:?} does not start with a metric name",
                cut(text)
            )));
        }
        if !(self.keep)(name) {
            return Ok(());
        }
        let mut rest = &text[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.trim_start_matches([' ', '\t']).strip_prefix('{') {
            rest = parse_labels(r, &mut labels).map_err(err)?;
        }
        let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
        let value = fields
            .next()
            .ok_or_else(|| err(format!("{name}: no value")))?;
        let value =
            parse_value(value).ok_or_else(|| err(format!("{name}: {value:?} is not a number")))?;
        if let Some(ts) = fields.next() {
            if ts.parse::<i64>().is_err() {
                return Err(err(format!("{name}: {ts:?} is not a timestamp")));
            }
        }
        if let Some(extra) = fields.next() {
            return Err(err(format!(
                "{name}: unexpected {:?} after the value",
                cut(extra)
            )));
        }
        self.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
        Ok(())
    }

    /// The samples kept, in the order they were read.
    pub fn finish(self) -> Vec<Sample> {
        self.samples
    }
}

/// A whole exposition at once (tests, fuzzing); see [`TextParser`].
pub fn parse_text(text: &str, keep: impl FnMut(&str) -> bool) -> Result<Vec<Sample>, ParseError> {
    let mut p = TextParser::new(keep);
    for line in text.split('\n') {
        p.line(line)?;
    }
    Ok(p.finish())
}

fn valid_metric_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn valid_label_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The start of `s`, for error messages.
fn cut(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `name="value",…}` (after the `{`): fills `out`, returns what follows the `}`.
fn parse_labels<'a>(mut s: &'a str, out: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(r) = s.strip_prefix('}') {
            return Ok(r);
        }
        let eq = s
            .find('=')
            .ok_or_else(|| format!("label without a value in {:?}", cut(s)))?;
        let name = s[..eq].trim_end_matches([' ', '\t']);
        if !valid_label_name(name) {
            return Err(format!("{:?} is not a label name", cut(name)));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} appears twice"));
        }
        s = s[eq + 1..].trim_start_matches([' ', '\t']);
        let body = s
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of label {name} is not quoted"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("the value of label {name} is not closed")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => {
                        return Err(format!(
                            "label {name}: invalid escape \\{}",
                            other.map(|(_, c)| c.to_string()).unwrap_or_default()
                        ));
                    }
                },
                Some((_, c)) => value.push(c),
            }
        };
        out.push((name.to_string(), value));
        s = body[end + 1..].trim_start_matches([' ', '\t']);
        if let Some(r) = s.strip_prefix(',') {
            s = r;
        } else if !s.starts_with('}') {
            return Err(format!("expected , or }} after label {name}"));
        }
    }
}

/// Go's float syntax as Prometheus writes it: decimal, exponent, `+Inf`, `-Inf`, `NaN`.
fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if v
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            v.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_gauges_with_identity_labels() {
        let ev = json!({"Type": "Pod", "ClusterName": "c", "NodeName": "n", "Namespace": "ns", "PodName": "p\"q",
            "kubernetes": {"container_name": "app"}, "pod_cpu_utilization": 12.5, "Timestamp": "1"});
        let text = render(&[ev.as_object().unwrap().clone()]);
        assert!(
            text.contains("# TYPE pod_cpu_utilization gauge\n"),
            "{text}"
        );
        assert!(text.contains(r#"pod_cpu_utilization{cluster="c",node="n",namespace="ns",pod="p\"q",container="app"} 12.5"#), "{text}");
        assert!(!text.contains("Timestamp"));
    }

    #[test]
    fn control_plane_events_are_not_rendered() {
        let ev = json!({"Type": "ControlPlane", "ClusterName": "c", "verb": "GET", "apiserver_request_total": 3});
        assert_eq!(render(&[ev.as_object().unwrap().clone()]), "");
    }

    fn all(text: &str) -> Result<Vec<Sample>, ParseError> {
        parse_text(text, |_| true)
    }

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn reads_what_client_golang_writes() {
        let text = "# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n\
            # TYPE apiserver_request_total counter\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"cluster\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 1523\n\
            etcd_db_total_size_in_bytes{endpoint=\"https://10.0.1.5:2379\"} 1.0354688e+07\n\
            \n\
            apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 42 1718000000000\r\n\
            odd{ a = \"x\\\\y\\\"z\\n\" , b=\"\" , } -Inf\n\
            spaced {a=\"1\"}\t+Inf\n\
            nan_one NaN";
        let got = all(text).unwrap();
        assert_eq!(got.len(), 6);
        assert_eq!(
            got[0],
            sample(
                "apiserver_request_total",
                &[
                    ("code", "200"),
                    ("component", "apiserver"),
                    ("dry_run", ""),
                    ("group", ""),
                    ("resource", "pods"),
                    ("scope", "cluster"),
                    ("subresource", ""),
                    ("verb", "LIST"),
                    ("version", "v1")
                ],
                1523.0
            )
        );
        assert_eq!(
            got[1],
            sample(
                "etcd_db_total_size_in_bytes",
                &[("endpoint", "https://10.0.1.5:2379")],
                10_354_688.0
            )
        );
        assert_eq!(
            got[2],
            sample(
                "apiserver_request_duration_seconds_bucket",
                &[("verb", "GET"), ("le", "+Inf")],
                42.0
            )
        );
        assert_eq!(
            got[3],
            sample("odd", &[("a", "x\\y\"z\n"), ("b", "")], f64::NEG_INFINITY)
        );
        assert_eq!(got[4], sample("spaced", &[("a", "1")], f64::INFINITY));
        assert!(got[5].value.is_nan());
    }

    #[test]
    fn keeps_only_what_is_asked_for_without_parsing_the_rest() {
        let text = "a_total{x=\"1\"} 1\nb_bucket{le=\"0.5\"} 3\nb_sum 0.25\nb_count{broken 3\n";
        let got = parse_text(text, |n| n == "a_total" || n == "b_sum").unwrap();
        assert_eq!(
            got.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a_total", "b_sum"],
            "a line not kept is not parsed past its name"
        );
    }

    #[test]
    fn malformed_lines_say_where() {
        for (text, line, what) in [
            ("ok 1\n{x=\"1\"} 2", 2, "metric name"),
            ("m{x=\"1\" 2", 1, "expected , or }"),
            ("m{x=1} 2", 1, "not quoted"),
            ("m{x=\"1} 2", 1, "not closed"),
            ("m{x=\"\\t\"} 2", 1, "invalid escape"),
            ("m{x=\"1\",x=\"2\"} 2", 1, "twice"),
            ("m{1x=\"1\"} 2", 1, "not a label name"),
            ("m", 1, "no value"),
            ("m one", 1, "not a number"),
            ("m 0x10", 1, "not a number"),
            ("m 1 soon", 1, "not a timestamp"),
            ("m 1 2 3", 1, "unexpected"),
        ] {
            let e = all(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
        }
    }
}
