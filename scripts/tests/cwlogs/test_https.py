"""The CloudWatch Logs API over HTTPS served by kinsight itself (issue 15 item 16):
`kinsight server --tls-cert --tls-key` with a CA made at test time by openssl; boto3 and the aws
CLI verify the server against that CA, and refuse it without it."""

import json
import os
import ssl
import subprocess
import urllib.request
import uuid

import botocore.exceptions
import pytest

from conftest import KEYS, REGION, make_client, now_ms


def test_boto3_put_and_get_log_events_over_https(tls_server):
    assert tls_server.url.startswith("https://127.0.0.1:")
    logs = make_client(tls_server, *KEYS["ingest"])
    read = make_client(tls_server, *KEYS["read"])
    g = f"/https/{uuid.uuid4().hex[:10]}"
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    now = now_ms()
    msgs = [f"event {i} over TLS" for i in range(50)]
    out = logs.put_log_events(
        logGroupName=g, logStreamName="s",
        logEvents=[{"timestamp": now - 1000 + i, "message": m} for i, m in enumerate(msgs)],
    )
    assert "rejectedLogEventsInfo" not in out
    got = read.get_log_events(logGroupName=g, logStreamName="s", startFromHead=True)
    assert [e["message"] for e in got["events"]] == msgs
    # The native API and the health check answer over the same listener.
    assert tls_server.native("GET", f"/v1/events?group={g}")["events"][0]["message"] == msgs[0]
    ctx = ssl.create_default_context(cafile=tls_server.ca)
    with urllib.request.urlopen(tls_server.url + "/healthz", context=ctx, timeout=30) as r:
        assert r.status == 200


def test_boto3_without_the_ca_refuses_the_server(tls_server):
    # The default roots (certifi's) do not include our CA.
    logs = make_client(tls_server, *KEYS["admin"], verify=True)
    with pytest.raises(botocore.exceptions.SSLError) as e:
        logs.describe_log_groups()
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)


def aws(server, *args, ca_bundle=None):
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=KEYS["admin"][0],
        AWS_SECRET_ACCESS_KEY=KEYS["admin"][1],
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_MAX_ATTEMPTS="1",
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_CA_BUNDLE", None)
    extra = ["--ca-bundle", ca_bundle] if ca_bundle else []
    return subprocess.run(
        ["aws", "--endpoint-url", server.url, *extra, "--output", "json", "logs", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_aws_cli_over_https_with_ca_bundle(tls_server):
    g = f"/https-cli/{uuid.uuid4().hex[:10]}"
    p = aws(tls_server, "create-log-group", "--log-group-name", g, ca_bundle=tls_server.ca)
    assert p.returncode == 0, p.stderr
    p = aws(tls_server, "create-log-stream", "--log-group-name", g, "--log-stream-name", "s",
            ca_bundle=tls_server.ca)
    assert p.returncode == 0, p.stderr
    events = [{"timestamp": now_ms() - 10, "message": "from the aws CLI over TLS"}]
    p = aws(tls_server, "put-log-events", "--log-group-name", g, "--log-stream-name", "s",
            "--log-events", json.dumps(events), ca_bundle=tls_server.ca)
    assert p.returncode == 0, p.stderr
    p = aws(tls_server, "get-log-events", "--log-group-name", g, "--log-stream-name", "s",
            "--start-from-head", ca_bundle=tls_server.ca)
    assert p.returncode == 0, p.stderr
    assert [e["message"] for e in json.loads(p.stdout)["events"]] == [events[0]["message"]]
    # Without the CA bundle the CLI refuses the certificate.
    p = aws(tls_server, "describe-log-groups")
    assert p.returncode != 0
    assert "SSL validation failed" in p.stderr or "CERTIFICATE_VERIFY_FAILED" in p.stderr, p.stderr
