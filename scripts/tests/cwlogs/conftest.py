"""A real `kinsight server` process for the CloudWatch-compatible API tests, and clients.

The server gets an admin token (authentication on), one admin access key pair from
KINSIGHT_AWS_ACCESS_KEY_ID / KINSIGHT_AWS_SECRET_ACCESS_KEY and an ingest and a read key pair
from a key file (KINSIGHT_AWS_KEYS_FILE) -- the configuration docs/cloudwatch-compat.md shows.
"""

import json
import os
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
import uuid

import boto3
import botocore.config
import pytest

TOKEN = "cwlogs-test-admin-token-0123456789"
REGION = "eu-west-1"
KEYS = {
    "admin": ("AKIAKINSIGHTADMIN001", "admin/secret+Key0123456789abcdefghijklmn"),
    "ingest": ("AKIAKINSIGHTINGEST01", "ingest-secret-0123456789abcdefghijklmnop"),
    "read": ("AKIAKINSIGHTREAD0001", "read-secret-0123456789abcdefghijklmnopqr"),
}


def make_pki(directory, name="kinsight test"):
    """A CA and a server certificate for 127.0.0.1 / localhost made with the openssl command
    (nothing is committed): returns (ca.crt, tls.crt, tls.key) paths."""
    d = os.path.join(directory, name.replace(" ", "-"))
    os.makedirs(d, exist_ok=True)
    ca_key, ca, key, csr, crt = (os.path.join(d, n) for n in
                                 ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN={name} CA", "-keyout", ca_key, "-out", ca)
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=localhost", "-keyout", key, "-out", csr)
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", ext, "-out", crt)
    return ca, crt, key


class Server:
    def __init__(self, data_dir=None, tls=False):
        self.dir = tempfile.TemporaryDirectory(prefix="kinsight-cwlogs-")
        # With tls: `kinsight server --tls-cert --tls-key` and the CA in self.ca.
        self.ca = None
        tls_args = []
        if tls:
            self.ca, cert, key = make_pki(self.dir.name)
            tls_args = ["--tls-cert", cert, "--tls-key", key]
        data_dir = data_dir or os.path.join(self.dir.name, "data")
        keys_file = os.path.join(self.dir.name, "aws-keys.json")
        with open(keys_file, "w") as f:
            json.dump(
                {
                    "keys": [
                        {"accessKeyId": KEYS[s][0], "secretAccessKey": KEYS[s][1], "scope": s}
                        for s in ("ingest", "read")
                    ]
                },
                f,
            )
        env = dict(os.environ)
        env.update(
            KINSIGHT_TOKEN=TOKEN,
            KINSIGHT_AWS_ACCESS_KEY_ID=KEYS["admin"][0],
            KINSIGHT_AWS_SECRET_ACCESS_KEY=KEYS["admin"][1],
            KINSIGHT_AWS_KEYS_FILE=keys_file,
            RUST_LOG="warn",
        )
        self.proc = subprocess.Popen(
            [
                os.environ["KINSIGHT_BIN"],
                "server",
                "--data-dir",
                str(data_dir),
                "--listen",
                "127.0.0.1:0",
                *tls_args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert "listening on" in line, f"server did not start: {line!r}"
        self.url = line.strip().rsplit(" ", 1)[-1]

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()

    def native(self, method, path, body=None):
        """A call to the native API with the admin token."""
        req = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        ctx = ssl.create_default_context(cafile=self.ca) if self.ca else None
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            data = r.read()
            return json.loads(data) if data else None


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


def make_client(server, key_id, secret, verify=None):
    """boto3 for `server`; over HTTPS it verifies against the server's CA unless told
    otherwise (`verify`: a CA bundle path, or True for the default roots)."""
    return boto3.client(
        "logs",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        verify=verify if verify is not None else (server.ca or True),
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="session")
def logs(server):
    """boto3 with the admin key pair."""
    return make_client(server, *KEYS["admin"])


@pytest.fixture(scope="session")
def ingest_logs(server):
    return make_client(server, *KEYS["ingest"])


@pytest.fixture(scope="session")
def read_logs(server):
    return make_client(server, *KEYS["read"])


@pytest.fixture
def group(logs):
    """A fresh log group with one stream `s1`."""
    name = f"/test/{uuid.uuid4().hex[:12]}"
    logs.create_log_group(logGroupName=name)
    logs.create_log_stream(logGroupName=name, logStreamName="s1")
    return name


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture(scope="session")
def tls_server():
    """`kinsight server --tls-cert --tls-key` with a CA made at test time (server.ca)."""
    s = Server(tls=True)
    yield s
    s.stop()
