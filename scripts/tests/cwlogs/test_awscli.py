"""The aws CLI (v1, from PyPI) against kinsight with --endpoint-url: the commands a user types,
their JSON output, automatic pagination, errors and exit codes, a wrong secret refused."""

import json
import os
import subprocess
import time
import uuid

from conftest import KEYS, REGION, now_ms


def aws(server, *args, key="admin", secret=None, check=True):
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=KEYS[key][0],
        AWS_SECRET_ACCESS_KEY=secret or KEYS[key][1],
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_MAX_ATTEMPTS="1",
    )
    env.pop("AWS_PROFILE", None)
    p = subprocess.run(
        ["aws", "--endpoint-url", server.url, "--output", "json", "logs", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )
    if check:
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout) if p.stdout.strip() else None
    return p


def test_cli_groups_streams_events_and_errors(server):
    g = f"/cli/{uuid.uuid4().hex[:10]}"
    aws(server, "create-log-group", "--log-group-name", g, "--tags", "team=sre")
    for i in range(3):
        aws(server, "create-log-stream", "--log-group-name", g, "--log-stream-name", f"s{i}")
    # Automatic pagination: pages of 1 stream, all returned.
    out = aws(server, "describe-log-streams", "--log-group-name", g, "--page-size", "1")
    assert [s["logStreamName"] for s in out["logStreams"]] == ["s0", "s1", "s2"]
    out = aws(server, "describe-log-groups", "--log-group-name-prefix", g)
    assert out["logGroups"][0]["logGroupName"] == g

    now = now_ms()
    events = [{"timestamp": now - 3000 + i, "message": m} for i, m in
              enumerate(["GET /a 200", "GET /b 500", '{"level":"error","code":503}'])]
    out = aws(server, "put-log-events", "--log-group-name", g, "--log-stream-name", "s0",
              "--log-events", json.dumps(events))
    assert "nextSequenceToken" in out and "rejectedLogEventsInfo" not in out
    out = aws(server, "get-log-events", "--log-group-name", g, "--log-stream-name", "s0",
              "--start-from-head")
    assert [e["message"] for e in out["events"]] == [e["message"] for e in events]
    out = aws(server, "filter-log-events", "--log-group-name", g, "--filter-pattern", "?500 ?503")
    assert len(out["events"]) == 2
    out = aws(server, "filter-log-events", "--log-group-name", g,
              "--filter-pattern", "{ $.code >= 500 }")
    assert [e["message"] for e in out["events"]] == [events[2]["message"]]

    aws(server, "put-retention-policy", "--log-group-name", g, "--retention-in-days", "14")
    p = aws(server, "put-retention-policy", "--log-group-name", g, "--retention-in-days", "13",
            check=False)
    assert p.returncode != 0 and "InvalidParameterException" in p.stderr
    p = aws(server, "create-log-group", "--log-group-name", g, check=False)
    assert p.returncode != 0 and "ResourceAlreadyExistsException" in p.stderr
    p = aws(server, "get-log-events", "--log-group-name", g, "--log-stream-name", "nope",
            check=False)
    assert p.returncode != 0 and "ResourceNotFoundException" in p.stderr

    arn = f"arn:aws:logs:{REGION}:000000000000:log-group:{g}"
    out = aws(server, "list-tags-for-resource", "--resource-arn", arn)
    assert out["tags"] == {"team": "sre"}
    aws(server, "tag-resource", "--resource-arn", arn, "--tags", "env=prod")
    out = aws(server, "list-tags-log-group", "--log-group-name", g)
    assert out["tags"] == {"team": "sre", "env": "prod"}

    start = now // 1000 - 300
    qid = aws(server, "start-query", "--log-group-name", g, "--start-time", str(start),
              "--end-time", str(start + 600),
              "--query-string", "filter @message like /GET/ | stats count(*) as n")["queryId"]
    deadline = time.time() + 60
    while True:
        out = aws(server, "get-query-results", "--query-id", qid)
        if out["status"] not in ("Scheduled", "Running") or time.time() > deadline:
            break
        time.sleep(0.3)
    assert out["status"] == "Complete"
    assert out["results"] == [[{"field": "n", "value": "2"}]]

    aws(server, "delete-log-stream", "--log-group-name", g, "--log-stream-name", "s2")
    aws(server, "delete-log-group", "--log-group-name", g)
    p = aws(server, "delete-log-group", "--log-group-name", g, check=False)
    assert p.returncode != 0 and "ResourceNotFoundException" in p.stderr


def test_cli_wrong_secret_and_scope(server):
    p = aws(server, "describe-log-groups", secret="wrong-secret-0123456789abcdef", check=False)
    assert p.returncode != 0 and "InvalidSignatureException" in p.stderr
    p = aws(server, "create-log-group", "--log-group-name", "/cli/readonly", key="read",
            check=False)
    assert p.returncode != 0 and "AccessDeniedException" in p.stderr
    assert aws(server, "describe-log-groups", "--log-group-name-prefix", "/cli/readonly",
               key="read")["logGroups"] == []
