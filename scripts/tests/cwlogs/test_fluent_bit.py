"""Fluent Bit's `cloudwatch_logs` output against kinsight's own HTTPS -- when a Fluent Bit
binary is available. No package registry CI reaches ships Fluent Bit (not Debian 12, PyPI or
npm), so this runs only with FLUENT_BIT=/path/to/fluent-bit (built from source,
docs/cloudwatch-compat.md) and is skipped otherwise.

Fluent Bit's output always speaks TLS (`tls Off` is overridden by its EC2 credential
provider), so the server runs with `--tls-cert`/`--tls-key` (a CA made by openssl at test time)
and Fluent Bit verifies it with `tls.ca_file` -- no terminator in between (issue 15 item 16).
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import KEYS, REGION, make_client, now_ms

FLUENT_BIT = os.environ.get("FLUENT_BIT") or shutil.which("fluent-bit")

pytestmark = pytest.mark.skipif(
    not FLUENT_BIT, reason="no Fluent Bit binary (set FLUENT_BIT=/path/to/fluent-bit)"
)


def test_fluent_bit_cloudwatch_logs_output(tls_server, tmp_path):
    server = tls_server
    logs = make_client(server, *KEYS["admin"])
    port = server.url.rsplit(":", 1)[1]
    suffix = str(now_ms())
    plain, emf = f"/fluentbit/plain-{suffix}", f"/fluentbit/emf-{suffix}"
    emf_doc = {
        "_aws": {"CloudWatchMetrics": [{"Namespace": "FluentBitTest", "Dimensions": [["Service"]],
                                        "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}]}]},
        "Service": suffix, "Latency": 42,
    }
    common = f"""
    region              {REGION}
    auto_create_group   On
    endpoint            localhost
    port                {port}
    tls.verify          On
    tls.ca_file         {server.ca}
"""
    (tmp_path / "fb.conf").write_text(f"""
[SERVICE]
    Flush        1
    Log_Level    info

[INPUT]
    Name    dummy
    Tag     app.plain
    Dummy   {{"level":"error","msg":"disk full","latency":250}}
    Rate    50
    Samples 100

[INPUT]
    Name    dummy
    Tag     app.emf
    Dummy   {json.dumps(emf_doc)}
    Rate    20
    Samples 30

[OUTPUT]
    Name                cloudwatch_logs
    Match               app.plain
    log_group_name      {plain}
    log_stream_prefix   fb-
{common}
[OUTPUT]
    Name                cloudwatch_logs
    Match               app.emf
    log_group_name      {emf}
    log_stream_name     emf-stream
    log_format          json/emf
{common}
""")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEYS["ingest"][0],
               AWS_SECRET_ACCESS_KEY=KEYS["ingest"][1])
    out = open(tmp_path / "fluent-bit.log", "w")
    fb = subprocess.Popen([FLUENT_BIT, "-c", str(tmp_path / "fb.conf")], env=env,
                          stdout=out, stderr=subprocess.STDOUT)

    def count(group):
        try:
            return sum(len(p["events"]) for p in
                       logs.get_paginator("filter_log_events").paginate(logGroupName=group))
        except logs.exceptions.ResourceNotFoundException:
            return 0

    try:
        deadline = time.time() + 60
        while (count(plain), count(emf)) != (100, 30) and time.time() < deadline:
            time.sleep(0.5)
    finally:
        fb.terminate()
        fb.wait(timeout=30)
    log = (tmp_path / "fluent-bit.log").read_text()
    assert (count(plain), count(emf)) == (100, 30), log[-3000:]
    streams = logs.describe_log_streams(logGroupName=plain)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["fb-app.plain"]
    got = logs.filter_log_events(logGroupName=plain,
                                 filterPattern='{ $.latency > 100 && $.level = "error" }')
    assert len(got["events"]) == 100
    now = now_ms()
    q = {"Namespace": "FluentBitTest", "MetricName": "Latency",
         "Dimensions": [{"Name": "Service", "Value": suffix}], "Statistic": "SampleCount",
         "Period": 86400, "StartTime": now - 86_400_000, "EndTime": now + 60_000}
    deadline = time.time() + 30
    while True:
        r = server.native("POST", "/v1/metrics/query", q)
        total = sum(v for s in r["Series"] for v in s["Values"] if v)
        if total == 30 or time.time() > deadline:
            break
        time.sleep(0.3)
    assert total == 30
