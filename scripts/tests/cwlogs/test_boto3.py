"""boto3 against kinsight's CloudWatch Logs API: each action's success and error paths,
pagination, limits of PutLogEvents, token semantics of GetLogEvents, filter patterns, Logs
Insights, tags, scopes of access keys and refused signatures."""

import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import KEYS, REGION, make_client, now_ms

DAY_MS = 86_400_000


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def put(logs, group, stream, events):
    return logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": t, "message": m} for t, m in events],
    )


# --- log groups -------------------------------------------------------------------------------


def test_log_groups_create_describe_paginate_delete(logs):
    names = [f"/pag/g{i:02d}" for i in range(7)]
    for n in names:
        logs.create_log_group(logGroupName=n)
    logs.create_log_group(logGroupName="/pag-other/x", tags={"team": "sre"})

    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName=names[0])
    assert error_code(e) == "ResourceAlreadyExistsException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName="/bad name")
    assert error_code(e) == "InvalidParameterException"
    assert "logGroupName" in str(e.value)

    # Pages of 3 through boto3's own paginator (nextToken).
    pages = list(
        logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix="/pag/", PaginationConfig={"PageSize": 3}
        )
    )
    assert [len(p["logGroups"]) for p in pages] == [3, 3, 1]
    assert [g["logGroupName"] for p in pages for g in p["logGroups"]] == names
    g = pages[0]["logGroups"][0]
    assert g["arn"] == f"arn:aws:logs:{REGION}:000000000000:log-group:/pag/g00:*"
    assert g["logGroupArn"] == f"arn:aws:logs:{REGION}:000000000000:log-group:/pag/g00"
    assert "retentionInDays" not in g and g["creationTime"] > 0

    found = logs.describe_log_groups(logGroupNamePattern="OTHER")["logGroups"]
    assert [g["logGroupName"] for g in found] == ["/pag-other/x"]
    with pytest.raises(ClientError) as e:
        logs.describe_log_groups(logGroupNamePrefix="/pag", logGroupNamePattern="x")
    assert error_code(e) == "InvalidParameterException"

    logs.delete_log_group(logGroupName=names[0])
    left = logs.describe_log_groups(logGroupNamePrefix="/pag/")["logGroups"]
    assert [g["logGroupName"] for g in left] == names[1:]
    with pytest.raises(ClientError) as e:
        logs.delete_log_group(logGroupName=names[0])
    assert error_code(e) == "ResourceNotFoundException"


# --- log streams ------------------------------------------------------------------------------


def test_log_streams_order_prefix_paginate_delete(logs, group):
    t = now_ms() - 60_000
    # Streams whose last events are in the opposite order of their names.
    for i, s in enumerate(["a", "b", "c", "d"]):
        logs.create_log_stream(logGroupName=group, logStreamName=s)
        put(logs, group, s, [(t - i * 1000, f"event of {s}")])
    with pytest.raises(ClientError) as e:
        logs.create_log_stream(logGroupName=group, logStreamName="a")
    assert error_code(e) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        logs.create_log_stream(logGroupName="/no/such/group", logStreamName="a")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.create_log_stream(logGroupName=group, logStreamName="bad:name")
    assert error_code(e) == "InvalidParameterException"

    by_name = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in by_name] == ["a", "b", "c", "d", "s1"]
    a = by_name[0]
    assert a["lastEventTimestamp"] == t and a["firstEventTimestamp"] == t
    assert a["arn"].endswith(f"log-group:{group}:log-stream:a")
    desc = logs.describe_log_streams(logGroupName=group, descending=True)["logStreams"]
    assert [s["logStreamName"] for s in desc] == ["s1", "d", "c", "b", "a"]
    newest = logs.describe_log_streams(
        logGroupName=group, orderBy="LastEventTime", descending=True, limit=4
    )["logStreams"]
    assert [s["logStreamName"] for s in newest] == ["a", "b", "c", "d"]
    prefixed = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="s")["logStreams"]
    assert [s["logStreamName"] for s in prefixed] == ["s1"]
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(
            logGroupName=group, orderBy="LastEventTime", logStreamNamePrefix="a"
        )
    assert error_code(e) == "InvalidParameterException"

    pages = list(
        logs.get_paginator("describe_log_streams").paginate(
            logGroupName=group, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["logStreams"]) for p in pages] == [2, 2, 1]
    assert [s["logStreamName"] for p in pages for s in p["logStreams"]] == ["a", "b", "c", "d", "s1"]
    # The group can also be named by ARN (logGroupIdentifier).
    arn = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["logGroupArn"]
    by_arn = logs.describe_log_streams(logGroupIdentifier=arn)["logStreams"]
    assert len(by_arn) == 5

    logs.delete_log_stream(logGroupName=group, logStreamName="a")
    with pytest.raises(ClientError) as e:
        logs.delete_log_stream(logGroupName=group, logStreamName="a")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName="/no/such/group")
    assert error_code(e) == "ResourceNotFoundException"


# --- PutLogEvents -----------------------------------------------------------------------------


def test_put_log_events_rejects_single_events_and_keeps_the_rest(logs, group):
    now = now_ms()
    events = [
        (now - 15 * DAY_MS, "too old 1"),
        (now - 15 * DAY_MS + 1, "too old 2"),
        (now - 1000, "ok 1"),
        (now - 500, "ok 2"),
        (now + 3 * 3_600_000, "too new"),
    ]
    r = put(logs, group, "s1", events)
    info = r["rejectedLogEventsInfo"]
    assert info["tooOldLogEventEndIndex"] == 2
    assert info["tooNewLogEventStartIndex"] == 4
    assert "expiredLogEventEndIndex" not in info
    assert r["nextSequenceToken"]
    got = logs.get_log_events(logGroupName=group, logStreamName="s1", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["ok 1", "ok 2"]
    assert all(e["ingestionTime"] >= now - 1000 for e in got["events"])

    # Older than the group's retention (but within 14 days): expired.
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    r = put(logs, group, "s1", [(now - 3 * DAY_MS, "expired"), (now, "fresh")])
    assert r["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 1}

    # A sequence token is accepted and ignored; so are parallel writers.
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s1",
        logEvents=[{"timestamp": now, "message": "with token"}],
        sequenceToken="49590302939474947374957347939489834939483943948393",
    )
    assert "rejectedLogEventsInfo" not in put(logs, group, "s1", [(now, "plain")])


def test_put_log_events_request_limits(logs, group):
    now = now_ms()

    def refused(events, stream="s1", grp=group):
        with pytest.raises(ClientError) as e:
            put(logs, grp, stream, events)
        return error_code(e), e.value.response["Error"]["Message"]

    code, msg = refused([(now, "refused b"), (now - 1, "refused a")])
    assert code == "InvalidParameterException" and "chronological" in msg
    code, msg = refused([(now, "refused " + "x" * (262_144 - 26))])
    assert code == "InvalidParameterException" and "262144" in msg
    code, msg = refused([(now, "refused " + "y" * 250_000)] * 5)
    assert code == "InvalidParameterException" and "1048576" in msg
    code, msg = refused([(now, "refused")] * 10_001)
    assert code == "InvalidParameterException" and "10000" in msg
    code, msg = refused([(now - 25 * 3_600_000, "refused a"), (now, "refused b")])
    assert code == "InvalidParameterException" and "24 hours" in msg
    assert refused([(now, "refused")], stream="nope")[0] == "ResourceNotFoundException"
    assert refused([(now, "refused")], grp="/no/such/group")[0] == "ResourceNotFoundException"
    # Nothing of a refused batch was stored.
    assert logs.filter_log_events(logGroupName=group, filterPattern="refused")["events"] == []
    # Exactly at the limits: accepted.
    put(logs, group, "s1", [(now, "m" * (262_144 - 26))])
    put(logs, group, "s1", [(now - 24 * 3_600_000, "span start"), (now, "span end")])
    r = put(logs, group, "s1", [(now, "k")] * 10_000)
    assert "rejectedLogEventsInfo" not in r
    stored = logs.filter_log_events(logGroupName=group, filterPattern="k")
    assert len(stored["events"]) == 10_000


# --- GetLogEvents -----------------------------------------------------------------------------


def test_get_log_events_pages_both_ways_and_the_token_stays_at_the_end(logs, group):
    base = now_ms() - 100_000
    put(logs, group, "s1", [(base + i, f"e{i:02d}") for i in range(25)])

    # Forward from the head, 10 at a time.
    seen, token = [], None
    for _ in range(10):
        kw = {"nextToken": token} if token else {"startFromHead": True}
        r = logs.get_log_events(logGroupName=group, logStreamName="s1", limit=10, **kw)
        if not r["events"]:
            assert r["nextForwardToken"] == token, "at the end the token comes back unchanged"
            break
        seen += [e["message"] for e in r["events"]]
        token = r["nextForwardToken"]
    assert seen == [f"e{i:02d}" for i in range(25)]
    # New events show up on the same token.
    put(logs, group, "s1", [(base + 50, "late")])
    r = logs.get_log_events(logGroupName=group, logStreamName="s1", nextToken=token)
    assert [e["message"] for e in r["events"]] == ["late"]

    # Default: the newest events; then backward to the start.
    r = logs.get_log_events(logGroupName=group, logStreamName="s1", limit=10)
    assert [e["message"] for e in r["events"]] == [f"e{i:02d}" for i in range(16, 25)] + ["late"]
    back, token = [], r["nextBackwardToken"]
    while True:
        r = logs.get_log_events(logGroupName=group, logStreamName="s1", limit=10, nextToken=token)
        if not r["events"]:
            assert r["nextBackwardToken"] == token
            break
        back = [e["message"] for e in r["events"]] + back
        token = r["nextBackwardToken"]
    assert back == [f"e{i:02d}" for i in range(16)]

    # A time window: startTime inclusive, endTime exclusive.
    r = logs.get_log_events(
        logGroupName=group, logStreamName="s1", startTime=base + 5, endTime=base + 8,
        startFromHead=True,
    )
    assert [e["message"] for e in r["events"]] == ["e05", "e06", "e07"]

    for bad in [{"logStreamName": "nope"}, {"logStreamName": "s1", "logGroupName": "/nope"}]:
        args = {"logGroupName": group, **bad}
        with pytest.raises(ClientError) as e:
            logs.get_log_events(**args)
        assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName=group, logStreamName="s1", nextToken="garbage")
    assert error_code(e) == "InvalidParameterException"


# --- FilterLogEvents --------------------------------------------------------------------------


FILTER_EVENTS = [
    "ERROR disk full on /var",
    "WARN disk 91% used",
    "INFO request served",
    "ERROR connection reset; retry later",
    json.dumps({"level": "error", "latency": 250, "user": {"id": 7}, "path": "/api/a"}),
    json.dumps({"level": "info", "latency": 12, "user": {"id": 8}, "path": "/api/b"}),
    json.dumps({"level": "error", "latency": 40, "user": {"id": 8}, "path": "/health"}),
    '10.0.0.1 - ann [28/Nov/2026:10:00:00 +0000] "GET /index.html HTTP/1.1" 404 1534',
    '10.0.0.2 - bob [28/Nov/2026:10:00:01 +0000] "GET /a.png HTTP/1.1" 200 99',
    '10.0.0.3 - cid [28/Nov/2026:10:00:02 +0000] "POST /api HTTP/1.1" 500 12000',
]

FILTER_CASES = [
    ("", list(range(10))),
    ("ERROR", [0, 3]),
    ("error", [4, 6]),
    ("ERROR disk", [0]),
    ('"retry later"', [3]),
    ("?WARN ?INFO", [1, 2]),
    ("ERROR -reset", [0]),
    ("%disk [0-9]+%", [1]),
    ('{ $.level = "error" }', [4, 6]),
    ("{ $.latency > 100 }", [4]),
    ('{ $.level = "error" && $.latency < 100 }', [6]),
    ("{ $.user.id = 8 || $.latency >= 250 }", [4, 5, 6]),
    ('{ $.path = "/api/*" }', [4, 5]),
    ("{ $.missing NOT EXISTS && $.level = info }", [5]),
    ("[ip, ident, user, timestamp, request, status, bytes]", [7, 8, 9]),
    ("[..., status = 4* || status = 5*, bytes]", [7, 9]),
    ("[ip, ..., status = 5*, bytes > 1000]", [9]),
    ('[ip = 10.0.0.2, ..., request = "*png*", status, bytes]', [8]),
]


def test_filter_log_events_patterns(logs, group):
    base = now_ms() - 60_000
    put(logs, group, "s1", [(base + i, m) for i, m in enumerate(FILTER_EVENTS)])
    for pattern, want in FILTER_CASES:
        r = logs.filter_log_events(logGroupName=group, filterPattern=pattern)
        got = [e["message"] for e in r["events"]]
        assert got == [FILTER_EVENTS[i] for i in want], pattern
        for e in r["events"]:
            assert e["logStreamName"] == "s1" and e["eventId"] and e["ingestionTime"]
    for bad in ['{ $.level = }', "[a,", '"open']:
        with pytest.raises(ClientError) as e:
            logs.filter_log_events(logGroupName=group, filterPattern=bad)
        assert error_code(e) == "InvalidParameterException", bad


def test_filter_log_events_interleaves_streams_and_paginates(logs, group):
    base = now_ms() - 60_000
    for s in ["web-1", "web-2", "db-1"]:
        logs.create_log_stream(logGroupName=group, logStreamName=s)
    # Each stream gets its own timestamps, written stream after stream.
    for k, s in enumerate(["web-1", "web-2", "db-1"]):
        put(logs, group, s, [(base + i * 3 + k, f"{s} n={i}") for i in range(10)])
    pages = list(
        logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, PaginationConfig={"PageSize": 7}
        )
    )
    events = [e for p in pages for e in p["events"]]
    assert len(pages) >= 5
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert len(events) == 30
    assert events[0]["message"] == "web-1 n=0" and events[1]["message"] == "web-2 n=0"

    r = logs.filter_log_events(logGroupName=group, logStreamNames=["db-1", "web-2"], filterPattern="n=9")
    assert [e["message"] for e in r["events"]] == ["web-2 n=9", "db-1 n=9"]
    r = logs.filter_log_events(logGroupName=group, logStreamNamePrefix="web-", startTime=base + 27, endTime=base + 28)
    assert [e["message"] for e in r["events"]] == ["web-1 n=9", "web-2 n=9"]
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=group, logStreamNames=["a"], logStreamNamePrefix="w")
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName="/no/such/group")
    assert error_code(e) == "ResourceNotFoundException"


# --- retention and tags -----------------------------------------------------------------------


def test_retention_policies(logs, group):
    logs.put_retention_policy(logGroupName=group, retentionInDays=30)
    g = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    assert g["retentionInDays"] == 30
    for bad in [2, 0, 4000]:
        with pytest.raises(ClientError) as e:
            logs.put_retention_policy(logGroupName=group, retentionInDays=bad)
        assert error_code(e) == "InvalidParameterException"
        assert "retentionInDays" in e.value.response["Error"]["Message"]
    logs.delete_retention_policy(logGroupName=group)
    g = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    assert "retentionInDays" not in g
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName="/no/such/group", retentionInDays=7)
    assert error_code(e) == "ResourceNotFoundException"


def test_tags_by_arn_and_by_name(logs, group):
    arn = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["logGroupArn"]
    logs.tag_resource(resourceArn=arn, tags={"team": "sre", "env": "prod"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "sre", "env": "prod"}
    logs.untag_resource(resourceArn=arn, tagKeys=["env"])
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "sre"}
    # Legacy actions on the same tags; the `:*` form of the ARN names the same group.
    logs.tag_log_group(logGroupName=group, tags={"tier": "1"})
    assert logs.list_tags_log_group(logGroupName=group)["tags"] == {"team": "sre", "tier": "1"}
    logs.untag_log_group(logGroupName=group, tags=["team"])
    assert logs.list_tags_for_resource(resourceArn=arn + ":*")["tags"] == {"tier": "1"}

    with pytest.raises(ClientError) as e:
        logs.list_tags_for_resource(resourceArn=arn.replace(group, "/no/such/group"))
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.tag_resource(resourceArn=arn.replace("000000000000", "123456789012"), tags={"a": "b"})
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.tag_resource(resourceArn=arn, tags={"aws:reserved": "x"})
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        logs.tag_resource(resourceArn=arn, tags={f"k{i}": "v" for i in range(50)})
    assert error_code(e) == "TooManyTagsException"


# --- Logs Insights ----------------------------------------------------------------------------


def wait_query(logs, qid, timeout=60):
    deadline = time.time() + timeout
    while True:
        r = logs.get_query_results(queryId=qid)
        if r["status"] not in ("Scheduled", "Running"):
            return r
        assert time.time() < deadline, f"query {qid} still {r['status']}"
        time.sleep(0.2)


def test_insights_queries(logs, group):
    now = now_ms()
    put(
        logs, group, "s1",
        [(now - 5000 + i, json.dumps({"level": lvl, "ms": i * 10})) for i, lvl in
         enumerate(["info", "error", "info", "error", "error"])],
    )
    start, end = now // 1000 - 600, now // 1000 + 60
    qid = logs.start_query(
        logGroupName=group, startTime=start, endTime=end,
        queryString="fields @timestamp, level, ms | filter level = 'error' | sort ms desc | limit 2",
    )["queryId"]
    r = wait_query(logs, qid)
    assert r["status"] == "Complete"
    rows = [{f["field"]: f["value"] for f in row} for row in r["results"]]
    assert [row["ms"] for row in rows] == ["40", "30"]
    assert all(row["level"] == "error" and "@ptr" in row for row in rows)
    assert [f["field"] for f in r["results"][0]][-1] == "@ptr"
    st = r["statistics"]
    assert st["recordsScanned"] == 5 and st["recordsMatched"] == 3 and st["bytesScanned"] > 0

    rec = logs.get_log_record(logRecordPointer=rows[0]["@ptr"])["logRecord"]
    assert json.loads(rec["@message"]) == {"level": "error", "ms": 40}
    assert rec["@logStream"] == "s1"

    qid2 = logs.start_query(
        logGroupNames=[group], startTime=start, endTime=end,
        queryString="stats count(*) as n, sum(ms) as total by level | sort level",
    )["queryId"]
    r = wait_query(logs, qid2)
    rows = [{f["field"]: f["value"] for f in row} for row in r["results"]]
    assert rows == [
        {"level": "error", "n": "3", "total": "80"},
        {"level": "info", "n": "2", "total": "20"},
    ]
    listed = logs.describe_queries(logGroupName=group)["queries"]
    assert {q["queryId"] for q in listed} >= {qid, qid2}
    assert all(q["status"] == "Complete" and q["logGroupName"] == group for q in listed)
    assert logs.stop_query(queryId=qid)["success"] is False  # already complete

    # A time range before the events: nothing.
    qid3 = logs.start_query(logGroupName=group, startTime=start - 3600, endTime=start - 1,
                            queryString="fields @message")["queryId"]
    assert wait_query(logs, qid3)["results"] == []

    with pytest.raises(ClientError) as e:
        logs.start_query(logGroupName=group, startTime=start, endTime=end,
                         queryString="fields @message | stats count( by")
    assert error_code(e) == "MalformedQueryException"
    assert "queryCompileError" in e.value.response
    with pytest.raises(ClientError) as e:
        logs.start_query(logGroupName="/no/such/group", startTime=start, endTime=end,
                         queryString="fields @message")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.get_query_results(queryId="00000000-0000-0000-0000-000000000000")
    assert error_code(e) == "ResourceNotFoundException"


# --- EMF --------------------------------------------------------------------------------------


def test_put_log_events_of_emf_documents_produces_metrics(server, logs, group):
    now = now_ms()
    minute = now - now % 60_000 - 60_000
    docs = [
        {
            "_aws": {"Timestamp": minute + i * 1000,
                     "CloudWatchMetrics": [{"Namespace": "CwCompatTest", "Dimensions": [["Service"]],
                                            "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}]}]},
            "Service": group, "Latency": v,
        }
        for i, v in enumerate([10, 20, 60])
    ]
    put(logs, group, "s1", [(d["_aws"]["Timestamp"], json.dumps(d)) for d in docs])
    query = {
        "Namespace": "CwCompatTest", "MetricName": "Latency",
        "Dimensions": [{"Name": "Service", "Value": group}],
        "Statistic": "Sum", "Period": 60, "StartTime": minute, "EndTime": minute + 60_000,
    }
    deadline = time.time() + 30
    while True:
        r = server.native("POST", "/v1/metrics/query", query)
        values = [v for s in r["Series"] for v in s["Values"] if v is not None]
        if values or time.time() > deadline:
            break
        time.sleep(0.2)
    assert values == [90]
    assert r["Series"][0]["Unit"] == "Milliseconds"


# --- authentication and scopes ----------------------------------------------------------------


def test_wrong_secret_unknown_key_and_unsigned_requests_are_refused(server, logs, group):
    wrong = make_client(server, KEYS["admin"][0], "not-the-right-secret-0123456789")
    with pytest.raises(ClientError) as e:
        wrong.describe_log_groups()
    assert error_code(e) == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        wrong.put_log_events(logGroupName=group, logStreamName="s1",
                             logEvents=[{"timestamp": now_ms(), "message": "forged"}])
    assert error_code(e) == "InvalidSignatureException"
    unknown = make_client(server, "AKIAUNKNOWNKEY000000", KEYS["admin"][1])
    with pytest.raises(ClientError) as e:
        unknown.describe_log_groups()
    assert error_code(e) == "UnrecognizedClientException"
    # Nothing forged was stored.
    assert logs.filter_log_events(logGroupName=group, filterPattern="forged")["events"] == []

    import urllib.error
    import urllib.request
    req = urllib.request.Request(
        server.url + "/", data=b"{}", method="POST",
        headers={"X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                 "Content-Type": "application/x-amz-json-1.1"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    body = json.loads(e.value.read())
    assert body["__type"] == "MissingAuthenticationTokenException"


def test_key_scopes(logs, ingest_logs, read_logs, group):
    now = now_ms()
    # Ingest keys: create, put, describe (what agents' IAM policies allow) -- not read events.
    ingest_logs.create_log_stream(logGroupName=group, logStreamName="agent")
    put(ingest_logs, group, "agent", [(now, "from the agent")])
    assert ingest_logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="agent")["logStreams"]
    for call in [
        lambda: ingest_logs.get_log_events(logGroupName=group, logStreamName="agent"),
        lambda: ingest_logs.delete_log_stream(logGroupName=group, logStreamName="agent"),
        lambda: read_logs.put_log_events(logGroupName=group, logStreamName="agent",
                                         logEvents=[{"timestamp": now, "message": "x"}]),
        lambda: read_logs.create_log_group(logGroupName=group + "-x"),
        lambda: read_logs.delete_log_group(logGroupName=group),
        lambda: read_logs.put_retention_policy(logGroupName=group, retentionInDays=7),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "AccessDeniedException"
    # Read keys read.
    got = read_logs.get_log_events(logGroupName=group, logStreamName="agent")
    assert [e["message"] for e in got["events"]] == ["from the agent"]
    assert read_logs.filter_log_events(logGroupName=group, filterPattern="agent")["events"]


def test_requests_signed_with_a_skewed_clock_are_refused(server, monkeypatch):
    """botocore signs with its own clock; 20 minutes off is refused, 10 minutes off is not
    (AWS allows 15)."""
    import datetime

    import botocore.auth

    real = botocore.auth.get_current_datetime
    client = make_client(server, *KEYS["read"])
    for minutes, ok in [(-20, False), (20, False), (-10, True), (10, True)]:
        monkeypatch.setattr(
            botocore.auth, "get_current_datetime",
            lambda *a, m=minutes, **k: real(*a, **k) + datetime.timedelta(minutes=m),
        )
        if ok:
            client.describe_log_groups(limit=1)
        else:
            with pytest.raises(ClientError) as e:
                client.describe_log_groups(limit=1)
            assert error_code(e) == "InvalidSignatureException"
            assert "Signature expired" in str(e.value) or "not yet current" in str(e.value)


def test_log_group_fields_and_groups_by_identifier(logs, group):
    now = now_ms()
    put(logs, group, "s1", [
        (now - 4, json.dumps({"level": "info", "user": {"id": 1}})),
        (now - 3, json.dumps({"level": "info"})),
        (now - 2, json.dumps({"level": "error", "user": {"id": 2}, "tags": ["a"]})),
        (now - 1, "plain text"),
    ])
    fields = {f["name"]: f["percent"] for f in logs.get_log_group_fields(logGroupName=group)["logGroupFields"]}
    assert fields == {"@timestamp": 100, "@message": 100, "@logStream": 100, "@log": 100,
                      "@ingestionTime": 100, "level": 75, "user.id": 50, "tags.0": 25}
    # Before the events: only the system fields, at 0 %.
    early = logs.get_log_group_fields(logGroupName=group, time=now // 1000 - 3600)["logGroupFields"]
    assert {f["percent"] for f in early} == {0}

    arn = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["logGroupArn"]
    got = logs.describe_log_groups(logGroupIdentifiers=[arn, "/no/such/group"])["logGroups"]
    assert [g["logGroupName"] for g in got] == [group]
    with pytest.raises(ClientError) as e:
        logs.get_log_group_fields(logGroupName="/no/such/group")
    assert error_code(e) == "ResourceNotFoundException"


def test_acknowledged_events_survive_kill_9(tmp_path):
    """PutLogEvents answers after the write-ahead log's fsync: a SIGKILL right after loses
    nothing acknowledged, nor the catalogue (groups, streams, retention, tags)."""
    from conftest import Server

    data = tmp_path / "data"
    first = Server(data_dir=data)
    c = make_client(first, *KEYS["admin"])
    c.create_log_group(logGroupName="/durable", tags={"k": "v"})
    c.put_retention_policy(logGroupName="/durable", retentionInDays=7)
    c.create_log_stream(logGroupName="/durable", logStreamName="s")
    now = now_ms()
    for b in range(20):
        put(c, "/durable", "s", [(now - 1000 + b, f"batch {b} event {i}") for i in range(500)])
    first.kill9()

    second = Server(data_dir=data)
    try:
        c = make_client(second, *KEYS["admin"])
        n = sum(len(p["events"]) for p in
                c.get_paginator("filter_log_events").paginate(logGroupName="/durable"))
        assert n == 20 * 500
        g = c.describe_log_groups(logGroupNamePrefix="/durable")["logGroups"][0]
        assert g["retentionInDays"] == 7
        assert c.list_tags_log_group(logGroupName="/durable")["tags"] == {"k": "v"}
    finally:
        second.stop()
