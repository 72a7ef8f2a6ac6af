"""OpenTelemetry's own Python SDK exporting logs over OTLP/HTTP (protobuf) to kinsight's
`/v1/logs`, with CloudWatch's `x-aws-log-group` / `x-aws-log-stream` headers: every record is
stored as one JSON event (body, severity, attributes, resource, scope, trace ids) in the named
group and stream, readable with GetLogEvents and queryable with Logs Insights. Also a raw
OTLP/JSON request shaped like CloudWatch's documented example, without the headers (defaults)."""

import json
import logging
import time
import urllib.error
import urllib.request
import uuid

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from conftest import TOKEN, now_ms


def wait_results(logs, query_id, deadline_s=30):
    deadline = time.time() + deadline_s
    while True:
        r = logs.get_query_results(queryId=query_id)
        if r["status"] in ("Complete", "Failed", "Cancelled", "Timeout"):
            return r
        assert time.time() < deadline, r
        time.sleep(0.1)


def test_sdk_logs_reach_the_named_group_and_logs_insights(server, logs):
    group = f"/otlp/{uuid.uuid4().hex[:12]}"
    exporter = OTLPLogExporter(
        endpoint=server.url + "/v1/logs",
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "x-aws-log-group": group,
            "x-aws-log-stream": "checkout-1",
        },
    )
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "checkout", "deployment.environment": "ci"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    log = logging.getLogger("shop.checkout")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    tracer = TracerProvider().get_tracer("shop")
    start = now_ms()
    for i in range(5):
        log.info("order %d placed", i, extra={"order.id": i})
    with tracer.start_as_current_span("pay") as span:
        log.error("payment failed", extra={"user.id": "u-42"})
        ctx = span.get_span_context()
    provider.force_flush()
    provider.shutdown()
    log.removeHandler(handler)

    events = logs.get_log_events(
        logGroupName=group, logStreamName="checkout-1", startFromHead=True
    )["events"]
    assert len(events) == 6, events
    first = json.loads(events[0]["message"])
    assert first["body"] == "order 0 placed"
    assert first["severityText"] == "INFO" and first["severityNumber"] == 9
    assert first["attributes"]["order.id"] == 0
    assert first["resource"]["attributes"]["service.name"] == "checkout"
    assert first["resource"]["attributes"]["deployment.environment"] == "ci"
    assert first["scope"]["name"] == "shop.checkout"
    assert abs(events[0]["timestamp"] - start) < 60_000
    last = json.loads(events[-1]["message"])
    assert last["body"] == "payment failed"
    assert last["severityText"] == "ERROR" and last["severityNumber"] == 17
    assert last["attributes"]["user.id"] == "u-42"
    assert last["traceId"] == format(ctx.trace_id, "032x")
    assert last["spanId"] == format(ctx.span_id, "016x")

    q = logs.start_query(
        logGroupName=group,
        startTime=start // 1000 - 60,
        endTime=now_ms() // 1000 + 60,
        queryString='filter severityText = "ERROR" | fields body, attributes.user.id, traceId',
    )
    r = wait_results(logs, q["queryId"])
    assert r["status"] == "Complete", r
    assert len(r["results"]) == 1, r
    row = {f["field"]: f["value"] for f in r["results"][0]}
    assert row["body"] == "payment failed"
    assert row["attributes.user.id"] == "u-42"
    assert row["traceId"] == format(ctx.trace_id, "032x")


def post(server, path, body, headers):
    req = urllib.request.Request(server.url + path, method="POST", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_otlp_json_without_headers_goes_to_the_defaults(server, logs):
    service = f"svc-{uuid.uuid4().hex[:8]}"
    ts = now_ms() * 1_000_000
    body = {
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeLogs": [{
                "scope": {"name": "my-library", "version": "1.0.0"},
                "logRecords": [{
                    "timeUnixNano": str(ts),
                    "severityNumber": 9,
                    "severityText": "INFO",
                    "body": {"stringValue": "User logged in successfully"},
                    "attributes": [{"key": "user.id", "value": {"stringValue": "12345"}},
                                   {"key": "retries", "value": {"intValue": "3"}}],
                }],
            }],
        }]
    }
    status, answer = post(server, "/v1/logs", json.dumps(body).encode(), {
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert status == 200, answer
    assert json.loads(answer) == {}
    events = logs.get_log_events(
        logGroupName="/kinsight/otlp", logStreamName=service, startFromHead=True
    )["events"]
    assert len(events) == 1
    m = json.loads(events[0]["message"])
    assert m["body"] == "User logged in successfully"
    assert m["attributes"] == {"user.id": "12345", "retries": 3}
    assert m["scope"] == {"name": "my-library", "version": "1.0.0"}
    assert events[0]["timestamp"] == ts // 1_000_000

    # Bad input: a clear 4xx, nothing stored.
    status, answer = post(server, "/v1/logs", b"\x0a\xff\xff", {
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"})
    assert status == 400 and b"ExportLogsServiceRequest" in answer, answer
    status, answer = post(server, "/v1/traces", b"", {
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"})
    assert status == 404 and b"traces" in answer, answer
