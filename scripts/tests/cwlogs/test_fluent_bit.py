"""Fluent Bit's `cloudwatch_logs` output against kinsight -- when a Fluent Bit binary is
available. No package registry CI reaches ships Fluent Bit (not Debian 12, PyPI or npm), so
this runs only with FLUENT_BIT=/path/to/fluent-bit (built from source, docs/cloudwatch-compat.md)
and is skipped otherwise.

Fluent Bit's output always speaks TLS (`tls Off` is overridden by its EC2 credential
provider), so the test puts a small TLS terminator (Python's ssl, a certificate made with the
openssl command) between it and the server's plain HTTP.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import KEYS, REGION, now_ms

FLUENT_BIT = os.environ.get("FLUENT_BIT") or shutil.which("fluent-bit")

pytestmark = pytest.mark.skipif(
    not FLUENT_BIT, reason="no Fluent Bit binary (set FLUENT_BIT=/path/to/fluent-bit)"
)


class TlsTerminator:
    """Accepts TLS on a local port and forwards the plain bytes to `backend`."""

    def __init__(self, backend, certfile, keyfile):
        self.backend = backend
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
            up = socket.create_connection(self.backend)
        except (OSError, ssl.SSLError):
            conn.close()
            return

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(up, tls), daemon=True).start()
        pump(tls, up)

    def stop(self):
        self.stopped = True
        self.sock.close()


def test_fluent_bit_cloudwatch_logs_output(server, logs, tmp_path):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    term = TlsTerminator((host, int(port)), tmp_path / "cert.pem", tmp_path / "key.pem")
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
    endpoint            127.0.0.1
    port                {term.port}
    tls.verify          Off
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
        term.stop()
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
