"""OpenTelemetry's own Python SDK exporting logs over OTLP/HTTP (protobuf) to kinsight's
`/v1/logs`, with CloudWatch's `x-aws-log-group` / `x-aws-log-stream` headers: every record is
stored as one JSON event (body, severity, attributes, resource, scope, trace ids) in the named
group and stream, readable with GetLogEvents and queryable with Logs Insights. Also a raw
OTLP/JSON request shaped like CloudWatch's documented example, without the headers (defaults)."""

import json
import logging
import time
import urllib.error
import urllib.parse
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


def prom_query(server, q):
    """kinsight's Prometheus API: the instant vector of `q` now, as {labels: value}."""
    url = server.url + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return {json.dumps(s["metric"], sort_keys=True): float(s["value"][1])
            for s in body["data"]["result"]}


def wait_query(server, q, want, deadline_s=30):
    """Polls `q` until `want(answer)` holds (the metric store applies durable samples right
    after the answer, on its own thread)."""
    deadline = time.time() + deadline_s
    while True:
        got = prom_query(server, q)
        if want(got):
            return got
        assert time.time() < deadline, (q, got)
        time.sleep(0.1)


def test_sdk_metrics_become_prometheus_series(server):
    """OpenTelemetry's SDK exporting a counter, an up-down counter and a histogram (cumulative),
    then a delta counter twice: PromQL finds them under Prometheus 3's translated names with
    the resource's attributes, job and instance as labels; deltas add up to a counter."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import Counter, MeterProvider
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality, PeriodicExportingMetricReader)

    service = f"shop{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    resource = Resource.create({"service.name": service, "service.instance.id": "pod-1",
                                "deployment.environment": "ci"})
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=server.url + "/v1/metrics", headers=headers),
        export_interval_millis=3_600_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("shop.checkout", "1.2.0")
    orders = meter.create_counter("shop.orders", unit="1")
    queue = meter.create_up_down_counter("queue.size", unit="{item}")
    latency = meter.create_histogram("http.server.duration", unit="ms")
    for i in range(7):
        orders.add(1, {"payment.method": "card"})
    orders.add(2, {"payment.method": "cash"})
    queue.add(5)
    queue.add(-2)
    for v in (3, 7, 30, 300, 3000):
        latency.record(v, {"http.route": "/pay"})
    assert reader.force_flush()

    base = f'{{job="{service}",instance="pod-1",deployment_environment="ci",otel_scope_name="shop.checkout"}}'
    got = wait_query(server, f'shop_orders_total{base}', lambda g: len(g) == 2)
    by_method = {json.loads(k)["payment_method"]: v for k, v in got.items()}
    assert by_method == {"card": 7.0, "cash": 2.0}, got
    labels = json.loads(next(iter(got)))
    assert labels["service_name"] == service and labels["otel_scope_version"] == "1.2.0", labels
    assert list(wait_query(server, f"queue_size{base}", lambda g: len(g) == 1).values()) == [3.0]
    buckets = wait_query(server, f'http_server_duration_milliseconds_bucket{base}',
                         lambda g: len(g) > 2)
    by_le = {json.loads(k)["le"]: v for k, v in buckets.items()}
    assert by_le["+Inf"] == 5.0 and by_le["5"] == 1.0 and by_le["10"] == 2.0, by_le
    assert list(prom_query(server, f"http_server_duration_milliseconds_count{base}").values()) == [5.0]
    assert list(prom_query(server, f"http_server_duration_milliseconds_sum{base}").values()) == [3340.0]
    # histogram_quantile works on the translated buckets.
    q = prom_query(server, f"histogram_quantile(0.5, http_server_duration_milliseconds_bucket{base})")
    assert len(q) == 1 and 10.0 <= list(q.values())[0] <= 50.0, q
    provider.shutdown()

    # Delta temporality: each export carries what was added since the last one.
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=server.url + "/v1/metrics", headers=headers,
                           preferred_temporality={Counter: AggregationTemporality.DELTA}),
        export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": service + "-delta"}),
                             metric_readers=[reader])
    jobs = provider.get_meter("jobs").create_counter("jobs.done")
    jobs.add(4)
    assert reader.force_flush()
    sel = f'jobs_done_total{{job="{service}-delta"}}'
    wait_query(server, sel, lambda g: list(g.values()) == [4.0])
    jobs.add(6)
    assert reader.force_flush()
    wait_query(server, sel, lambda g: list(g.values()) == [10.0])
    provider.shutdown()

    # Bad input: a clear 4xx naming the problem.
    status, answer = post(server, "/v1/metrics", b"\x0a\xff\xff", {
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"})
    assert status == 400 and b"ExportMetricsServiceRequest" in answer, answer
