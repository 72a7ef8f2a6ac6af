"""Checks of the deployment files (issue #9), run by scripts/tests/deploy.sh.

Every manifest, plain or rendered by helm, is validated against the Kubernetes schemas
(strict), and then against what kinsight's manifests promise: the commands and ports of the
contracts, RBAC that grants exactly the requests kinsight makes (crates/agent/src/access.rs,
each rule commented with the features it serves), read-only host paths, resources under the
seed's, objects that refer to each other by the right names, an agent config that kinsight's
own parser accepts, and no drift between deploy/kubernetes and the chart. Prints one line per
check and closes with `N passed, N failed`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from urllib.parse import urlparse

import dockerfile
import kubernetes_validate
import yaml

# Oldest Kubernetes the manifests support (recursiveReadOnly mounts) and the newest schema
# kubernetes-validate ships.
K8S_VERSIONS = ["1.30.0", "1.37.0"]

AGENT_CONFIG_KEY = "cwagentconfig.json"
AGENT_CONFIG_DIR = "/etc/cwagentconfig"
BINARY = "/usr/local/bin/kinsight"
LEASE_NAME = "kinsight-leader"

# What kinsight asks of Kubernetes, the agent's requests and those of `kinsight tokens
# ensure-secret` (the chart's hook Jobs): crates/agent/src/access.rs, API_ACCESS, whose copy
# `cargo test -p kinsight-agent` keeps current here and whose entries the agent's tests show
# it really sends. The RBAC grants exactly these (issue 18, "RBAC matches the code").
API_ACCESS = json.loads((Path(__file__).resolve().parent / "api_access.json").read_text())["access"]
# `object` of an entry whose name is given at run time (`ensure-secret --name`).
GIVEN_NAME = "$NAME"
READ_VERBS = {"get", "list"}

# Host paths the agent reads (host path -> why): these and no others (issue 15, item 8), all
# read-only but the state directory, each mounted at host_root + its host path.
AGENT_HOST_PATHS = {
    "/proc": "CPU, memory, disks, mount table, pod network counters",
    "/sys": "cgroups, block device partitions",
    "/var/log": "container and host logs, the persistent journal",
    "/run/log/journal": "volatile journal",
    "/var/lib/docker/containers": "cri-dockerd nodes: json-file logs behind /var/log/pods",
    "/var/lib/kinsight-agent": "state_dir (read-write)",
}
STATE_HOST_PATH = "/var/lib/kinsight-agent"
# Optional, on request: agent.mountDockerSocket; the kubelet's pod-resources socket with
# accelerated compute on (accelerated.podResources: which container holds which EFA device/GPU).
OPTIONAL_HOST_PATHS = {"/var/run/docker.sock", "/var/lib/kubelet/pod-resources"}
# adm: Debian's and Ubuntu's syslog files (syslog:adm 0640).
ADM_GID = 4
# Template functions whose result differs between two renders of the same values, or that
# see a cluster only at install time (`lookup`: nothing under `helm template` or GitOps).
UNSTABLE_TEMPLATE_FUNCTIONS = {
    "lookup", "randAlphaNum", "randAlpha", "randNumeric", "randAscii", "randBytes", "randInt",
    "uuidv4", "now", "date", "dateInZone", "genCA", "genCAWithKey", "genPrivateKey",
    "genSelfSignedCert", "genSelfSignedCertWithKey", "genSignedCert", "genSignedCertWithKey",
    "htpasswd", "derivePassword", "shuffle",
}

# The seed's DaemonSet asks 200m/100Mi; today's CloudWatch agent 400m/400Mi (reference §4.2).
SEED_REQUESTS = {"cpu": 0.2, "memory": 100 * 2**20}
CLOUDWATCH_AGENT = {"cpu": 0.4, "memory": 400 * 2**20}


# --------------------------------------------------------------------------------------------
# A tiny harness: named checks, each failing with an AssertionError that says what is wrong.


class Harness:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def check(self, name: str, fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except AssertionError as e:
            self.failed.append(name)
            print(f"FAIL {name}: {e}")
        except Exception:  # a crash in a check is a failure too, with its traceback
            self.failed.append(name)
            print(f"FAIL {name}: crashed\n{traceback.format_exc()}")
        else:
            self.passed += 1
            print(f"ok   {name}")


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


# --------------------------------------------------------------------------------------------
# A set of Kubernetes objects, as kubectl would apply them.


class Manifests:
    def __init__(self, label: str, objects: list[dict], source: str) -> None:
        self.label = label
        self.objects = [o for o in objects if o]
        self.source = source  # the YAML text, comments included

    def all(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.label}: expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        for o in self.all(kind):
            md = o["metadata"]
            if md["name"] == name and (namespace is None or md.get("namespace") == namespace):
                return o
        return None

    def component(self, kind: str, component: str) -> dict:
        found = [
            o
            for o in self.all(kind)
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"{self.label}: expected one {kind} of component {component}, found {len(found)}"
        return found[0]


def load_yaml_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


# --------------------------------------------------------------------------------------------
# Helpers on pod specs.


def container(workload: dict, name: str) -> dict:
    cs = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(cs) == 1, f"{workload['metadata']['name']}: no single container {name!r}"
    return cs[0]


def env_map(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def port_number(c: dict, port) -> int:
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError(f"container {c['name']}: no port named {port!r}")


def listen_port(args: list[str], flag: str) -> int:
    assert flag in args, f"{flag} missing from args {args}"
    addr = args[args.index(flag) + 1]
    return int(addr.rsplit(":", 1)[1])


def quantity(q) -> float:
    """Kubernetes quantity to a number (cores or bytes)."""
    s = str(q)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for u, f in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if s.endswith(u):
            return float(s[: -len(u)]) * f
    return float(s)


def selector_matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def host_mounts(ds: dict, c: dict) -> dict[str, dict]:
    """host path -> {mount, volume} for every hostPath volume the container mounts."""
    volumes = {v["name"]: v for v in ds["spec"]["template"]["spec"].get("volumes", [])}
    out = {}
    for m in c.get("volumeMounts", []):
        v = volumes.get(m["name"])
        assert v is not None, f"volumeMount {m['name']} has no volume"
        if "hostPath" in v:
            out[v["hostPath"]["path"]] = {"mount": m, "volume": v}
    return out


def agent_config_of(m: Manifests, ds: dict) -> tuple[dict, str]:
    """The agent's config JSON: the ConfigMap mounted at /etc/cwagentconfig."""
    c = container(ds, "agent")
    spec = ds["spec"]["template"]["spec"]
    mount = [vm for vm in c.get("volumeMounts", []) if vm["mountPath"] == AGENT_CONFIG_DIR]
    assert len(mount) == 1, f"nothing mounted at {AGENT_CONFIG_DIR}"
    vol = [v for v in spec["volumes"] if v["name"] == mount[0]["name"]][0]
    assert "configMap" in vol, f"{AGENT_CONFIG_DIR} is not a ConfigMap volume"
    cm = m.find("ConfigMap", vol["configMap"]["name"], ds["metadata"]["namespace"])
    assert cm is not None, f"ConfigMap {vol['configMap']['name']} is not among the manifests"
    text = cm["data"][AGENT_CONFIG_KEY]
    return json.loads(text), text


# --------------------------------------------------------------------------------------------
# Checks that every rendering must pass.


def check_schemas(m: Manifests) -> None:
    errors = []
    for o in m.objects:
        for v in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(o, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                errors.append(f"{o['kind']}/{o['metadata'].get('name')} @ {v}: {e.message} at {list(e.path)}")
            except kubernetes_validate.SchemaNotFoundError as e:
                errors.append(f"{o['kind']}/{o['metadata'].get('name')} @ {v}: no schema ({e})")
    assert not errors, "; ".join(errors)


def check_namespaced(m: Manifests, namespace: str) -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    wrong = [
        f"{o['kind']}/{o['metadata']['name']} in {o['metadata'].get('namespace')!r}"
        for o in m.objects
        if o["kind"] not in cluster_scoped and o["metadata"].get("namespace") != namespace
    ]
    assert not wrong, f"objects outside namespace {namespace}: {wrong}"


def expected_cluster_grants(caller: str) -> tuple[dict[tuple[str, str], set[str]], dict[str, set[str]]]:
    """What `caller`'s ClusterRole must grant: (apiGroup, resource) -> verbs, and
    nonResourceURL -> verbs."""
    resources: dict[tuple[str, str], set[str]] = {}
    paths: dict[str, set[str]] = {}
    for a in API_ACCESS:
        if a["caller"] != caller or a["scope"] != "cluster":
            continue
        if a["resource"] is None:
            paths.setdefault(a["path"], set()).add(a["verb"])
        else:
            resources.setdefault((a["api_group"], a["resource"]), set()).add(a["verb"])
    return resources, paths


def expected_role_grants(caller: str, given_name: str | None = None) -> dict[tuple[str, str, str | None], set[str]]:
    """What `caller`'s Role must grant: (apiGroup, resource, resourceName or None) -> verbs."""
    out: dict[tuple[str, str, str | None], set[str]] = {}
    for a in API_ACCESS:
        if a["caller"] != caller or a["scope"] == "cluster":
            continue
        name = a["object"]
        if name == GIVEN_NAME:
            name = given_name
        out.setdefault((a["api_group"], a["resource"], name), set()).add(a["verb"])
    return out


def role_grants(role: dict) -> dict[tuple[str, str, str | None], set[str]]:
    out: dict[tuple[str, str, str | None], set[str]] = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule, f"{role['metadata']['name']}: a Role cannot grant paths: {rule}"
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for n in rule.get("resourceNames") or [None]:
                    out.setdefault((g, r, n), set()).update(rule["verbs"])
    return out


def diff_grants(what: str, granted: dict, expected: dict) -> None:
    extra = {k: sorted(v - expected.get(k, set())) for k, v in granted.items() if v - expected.get(k, set())}
    missing = {k: sorted(v - granted.get(k, set())) for k, v in expected.items() if v - granted.get(k, set())}
    assert not extra and not missing, (
        f"{what} differs from crates/agent/src/access.rs (scripts/tests/deploy/api_access.json): "
        f"granted but never asked {extra}; asked but not granted {missing}"
    )


def check_cluster_role(m: Manifests) -> None:
    cr = m.component("ClusterRole", "agent")
    granted: dict[tuple[str, str], set[str]] = {}
    paths: dict[str, set[str]] = {}
    for rule in cr["rules"]:
        if "nonResourceURLs" in rule:
            for u in rule["nonResourceURLs"]:
                paths.setdefault(u, set()).update(rule["verbs"])
            continue
        assert "resourceNames" not in rule, f"unexpected resourceNames: {rule}"
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                granted.setdefault((g, r), set()).update(rule["verbs"])
    for (g, r), verbs in granted.items():
        assert "*" not in verbs and r != "*" and g != "*", f"wildcard in {g}/{r}: {verbs}"
        assert r != "secrets", "the agent must not read Secrets"
        assert r != "nodes/proxy", "nodes/proxy allows exec into every pod of the node"
        assert verbs <= READ_VERBS, f"{g or 'core'}/{r}: verbs beyond get and list {sorted(verbs - READ_VERBS)}"
    for u, verbs in paths.items():
        assert "*" not in u and verbs == {"get"}, f"nonResourceURLs {u}: {sorted(verbs)}"
    want_resources, want_paths = expected_cluster_grants("agent")
    diff_grants("the agent's ClusterRole", granted, want_resources)
    diff_grants("the agent's ClusterRole (nonResourceURLs)", paths, want_paths)


def check_leader_role(m: Manifests, namespace: str) -> None:
    role = m.component("Role", "agent")
    assert role["metadata"]["namespace"] == namespace
    granted = role_grants(role)
    # create cannot be narrowed by name; everything else is limited to the one Lease.
    for (g, r, name), verbs in granted.items():
        assert (g, r) == ("coordination.k8s.io", "leases"), f"the Role grants more than leases: {g}/{r}"
        assert name == LEASE_NAME or verbs == {"create"}, f"verbs {sorted(verbs)} on any lease"
    diff_grants("the agent's leader-election Role", granted, expected_role_grants("agent"))


def rule_blocks(source: str) -> list[tuple[str, dict]]:
    """Every RBAC rule of a YAML text, with the comment block right above it: (comment, rule)."""
    lines = source.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not re.match(r"^\s*- (apiGroups|nonResourceURLs):", line):
            continue
        indent = len(line) - len(line.lstrip())
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            j += 1
        rule = yaml.safe_load("\n".join(l[indent:] for l in lines[i:j]))[0]
        k = i - 1
        comment = []
        while k >= 0 and lines[k].strip().startswith("#"):
            comment.insert(0, lines[k].strip().lstrip("#").strip())
            k -= 1
        out.append((" ".join(comment), rule))
    return out


def grants_access(rule: dict, a: dict) -> bool:
    if a["verb"] not in rule.get("verbs", []):
        return False
    if a["resource"] is None:
        return a["path"] in rule.get("nonResourceURLs", [])
    if a["api_group"] not in rule.get("apiGroups", []) or a["resource"] not in rule.get("resources", []):
        return False
    names = rule.get("resourceNames")
    return names is None or a["object"] == GIVEN_NAME or a["object"] in names


def check_rules_commented(m: Manifests) -> None:
    """Every RBAC rule is preceded by a comment saying why, which names the feature of every
    request of crates/agent/src/access.rs that the rule grants."""
    blocks = rule_blocks(m.source)
    assert blocks, "no RBAC rules found in the source"
    problems = []
    for comment, rule in blocks:
        if not comment:
            problems.append(f"no comment above {rule}")
            continue
        for a in API_ACCESS:
            if grants_access(rule, a) and a["feature"].lower() not in comment.lower():
                problems.append(f"the comment above {rule} does not name {a['feature']!r} ({a['name']}: {a['why']})")
    assert not problems, "; ".join(problems)


def check_bindings(m: Manifests, namespace: str) -> None:
    ds = m.component("DaemonSet", "agent")
    sa = ds["spec"]["template"]["spec"]["serviceAccountName"]
    assert m.find("ServiceAccount", sa, namespace), f"ServiceAccount {sa} missing"
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        b = m.component(kind, "agent")
        ref = b["roleRef"]
        assert ref["kind"] == role_kind and m.find(role_kind, ref["name"]), f"{kind} refers to missing {ref}"
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}], (
            f"{kind} subjects {b['subjects']} are not the agent's ServiceAccount {namespace}/{sa}"
        )


def check_agent_daemonset(m: Manifests, namespace: str) -> None:
    ds = m.component("DaemonSet", "agent")
    spec = ds["spec"]["template"]["spec"]
    c = container(ds, "agent")
    assert c["command"] == [BINARY], f"command {c['command']}"
    args = c["args"]
    assert args[:3] == ["agent", "--config", f"{AGENT_CONFIG_DIR}/{AGENT_CONFIG_KEY}"], f"args {args}"
    metrics_port = listen_port(args, "--metrics-listen")
    assert args[args.index("--metrics-listen") + 1] == f"0.0.0.0:{metrics_port}"

    # The seed's downward-API variables, and the token from the Secret.
    env = env_map(c)
    for var, path in (("HOST_IP", "status.hostIP"), ("HOST_NAME", "spec.nodeName"), ("K8S_NAMESPACE", "metadata.namespace")):
        got = env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        assert got == path, f"{var} comes from {got}, not {path}"
    ref = env.get("KINSIGHT_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef")
    assert ref and ref["key"] == "ingest-token", f"KINSIGHT_TOKEN is not the ingest token: {ref}"

    # Liveness on the metrics listener.
    for probe in ("livenessProbe", "readinessProbe"):
        http = c[probe]["httpGet"]
        assert http["path"] == "/healthz", f"{probe} path {http['path']}"
        assert port_number(c, http["port"]) == metrics_port, f"{probe} port is not --metrics-listen's {metrics_port}"

    # No host namespaces, no privilege, no capability (issue 15, item 8: DAC_READ_SEARCH with a
    # writable host path is the open_by_handle_at escape).
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(k), f"{k} is set"
    sc = c["securityContext"]
    assert sc.get("privileged") is False and sc.get("allowPrivilegeEscalation") is False, f"securityContext {sc}"
    assert sc.get("readOnlyRootFilesystem") is True, "root filesystem is writable"
    assert sc["capabilities"]["drop"] == ["ALL"], f"capabilities not dropped: {sc['capabilities']}"
    assert not sc["capabilities"].get("add"), f"capabilities added: {sc['capabilities']['add']}"
    psc = spec.get("securityContext", {})
    for ctx in (psc, sc):
        caps = ctx.get("capabilities", {})
        assert "DAC_READ_SEARCH" not in caps.get("add", []), "DAC_READ_SEARCH is granted"
    assert (psc.get("seccompProfile") or sc.get("seccompProfile", {})).get("type") == "RuntimeDefault"
    # Host logs of other owners are read through their group instead.
    groups = psc.get("supplementalGroups", [])
    assert ADM_GID in groups, f"supplementalGroups {groups} lack adm ({ADM_GID})"
    assert 0 not in groups, "group root is not needed: root-owned files are read as their owner"

    # Host paths: exactly the ones read, read-only (recursively) except the state directory,
    # each at host_root + its host path, and the state directory apart from all of them.
    mounts = host_mounts(ds, c)
    cfg, _ = agent_config_of(m, ds)
    host_root = cfg["kinsight"]["host_root"]
    assert set(mounts) - OPTIONAL_HOST_PATHS == set(AGENT_HOST_PATHS), (
        f"host paths: missing {sorted(set(AGENT_HOST_PATHS) - set(mounts))}, "
        f"not read by the agent {sorted(set(mounts) - set(AGENT_HOST_PATHS) - OPTIONAL_HOST_PATHS)}"
    )
    for path, mv in mounts.items():
        if path == STATE_HOST_PATH:
            continue
        want = host_root.rstrip("/") + path
        assert mv["mount"]["mountPath"] == want, f"host path {path} is at {mv['mount']['mountPath']}, not {want}"
        inside = lambda a, b: a == b or a.startswith(b.rstrip("/") + "/")
        assert not inside(STATE_HOST_PATH, path) and not inside(path, STATE_HOST_PATH), (
            f"the writable state directory {STATE_HOST_PATH} and the read path {path} overlap"
        )
    for path, mv in mounts.items():
        mount = mv["mount"]
        assert mount.get("mountPropagation", "None") == "None", f"{path}: propagation {mount['mountPropagation']}"
        if path == STATE_HOST_PATH:
            assert not mount.get("readOnly"), "state_dir must be writable"
            continue
        assert mount.get("readOnly") is True, f"host path {path} is writable"
        assert mount.get("recursiveReadOnly") in ("IfPossible", "Enabled"), f"host path {path} is not recursively read-only"
        assert mv["volume"]["hostPath"].get("type") != "", f"{path}: hostPath without a type"
    for v in spec["volumes"]:
        assert v["name"] in {vm["name"] for vm in c["volumeMounts"]}, f"volume {v['name']} is not mounted"

    # Runs everywhere, survives pressure, has time to flush.
    assert {"operator": "Exists"} in spec.get("tolerations", []), f"tolerations {spec.get('tolerations')} miss operator Exists"
    assert spec.get("priorityClassName") == "system-node-critical"
    assert spec.get("nodeSelector", {}).get("kubernetes.io/os") == "linux"
    flush = cfg["logs"].get("force_flush_interval", 5)
    assert spec["terminationGracePeriodSeconds"] >= max(30, 2 * flush), "too short to flush"


def check_agent_resources(m: Manifests) -> None:
    c = container(m.component("DaemonSet", "agent"), "agent")
    req, lim = c["resources"]["requests"], c["resources"]["limits"]
    for r in ("cpu", "memory"):
        # "Well under": at most three quarters of the seed's request.
        assert quantity(req[r]) <= 0.75 * SEED_REQUESTS[r], f"request {r}={req[r]} is not well under the seed's"
        assert quantity(lim[r]) < CLOUDWATCH_AGENT[r], f"limit {r}={lim[r]} is not under the CloudWatch agent's"
        assert quantity(req[r]) <= quantity(lim[r]), f"{r} request above limit"


def check_agent_config(m: Manifests, namespace: str, checker: list[str]) -> None:
    ds = m.component("DaemonSet", "agent")
    c = container(ds, "agent")
    cfg, text = agent_config_of(m, ds)
    k8s = cfg["logs"]["metrics_collected"]["kubernetes"]
    assert k8s["cluster_name"], "no cluster_name"
    own = cfg["kinsight"]
    mounts = host_mounts(ds, c)
    assert own["host_root"] == "/rootfs", f"host_root {own['host_root']}"
    assert all(
        mv["mount"]["mountPath"].startswith(own["host_root"] + "/") for p, mv in mounts.items() if p != STATE_HOST_PATH
    ), "a host path is read outside host_root"
    assert own["state_dir"] == mounts[STATE_HOST_PATH]["mount"]["mountPath"], "state_dir is not the writable mount"

    # server_url names this release's Service, whose port leads to the server's --listen.
    url = urlparse(own["server_url"])
    svc_name, svc_ns = url.hostname.split(".")[:2]
    assert url.hostname == f"{svc_name}.{svc_ns}.svc", f"server_url host {url.hostname}"
    assert svc_ns == namespace, f"server_url points to namespace {svc_ns}"
    svc = m.find("Service", svc_name, namespace)
    assert svc is not None, f"server_url names Service {svc_name}, which is not deployed"
    sts = m.component("StatefulSet", "server")
    server = container(sts, "server")
    port = [p for p in svc["spec"]["ports"] if p["port"] == url.port]
    assert port, f"Service {svc_name} has no port {url.port}"
    assert port_number(server, port[0]["targetPort"]) == listen_port(server["args"], "--listen")
    assert selector_matches(svc["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"]), (
        f"Service {svc_name} does not select the server's pods"
    )
    out = run_checker(checker, text, namespace)
    assert k8s["cluster_name"] in out, f"kinsight agent --check read: {out.strip()}"


def run_checker(checker: list[str], text: str, namespace: str) -> str:
    """`kinsight agent --check` on the config, with the DaemonSet's environment."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
    try:
        env = dict(os.environ, HOST_IP="10.0.0.7", HOST_NAME="node-a", K8S_NAMESPACE=namespace)
        env.pop("CLUSTER_NAME", None)
        p = run(checker + [f.name], env=env)
    finally:
        os.unlink(f.name)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{' '.join(checker)} rejected the config: {out.strip()}"
    # Warnings are the parser's word for keys it does not know: a typo in our manifests.
    assert "unknown config key" not in out and not re.search(r"(?im)^\s*warning:", out), f"parser warnings: {out.strip()}"
    return out


def check_server(m: Manifests, namespace: str, tokens_secret: str, replicas: int = 1) -> None:
    sts = m.component("StatefulSet", "server")
    spec = sts["spec"]["template"]["spec"]
    c = container(sts, "server")
    assert c["command"] == [BINARY]
    args = c["args"]
    assert args[:5] == ["server", "--data-dir", "/data", "--listen", "0.0.0.0:8080"], f"args {args}"
    port = listen_port(args, "--listen")
    # Alive while the process serves (/healthz); ready, and sent requests by the Service, once
    # it has opened its store and, with a catalogue, joined it (/readyz).
    for probe, path in (("startupProbe", "/healthz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        http = c[probe]["httpGet"]
        assert http["path"] == path and port_number(c, http["port"]) == port, f"{probe} {http}, expected {path}"
    data = [vm for vm in c["volumeMounts"] if vm["mountPath"] == "/data"]
    claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
    assert data and data[0]["name"] in claims, "/data is not a PersistentVolumeClaim"
    assert sts["spec"]["replicas"] == replicas, f"replicas {sts['spec']['replicas']}, expected {replicas}"
    assert selector_matches(sts["spec"]["selector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"])
    gov = m.find("Service", sts["spec"]["serviceName"], namespace)
    assert gov is not None and gov["spec"].get("clusterIP") == "None", "governing Service missing or not headless"

    # No privilege at all: non-root, nothing from the host, no API token.
    psc, sc = spec["securityContext"], c["securityContext"]
    assert psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, f"pod securityContext {psc}"
    assert sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert not any("hostPath" in v for v in spec.get("volumes", [])), "the server mounts a host path"
    assert spec.get("automountServiceAccountToken") is False, "the server gets an API token it never uses"
    sa = m.find("ServiceAccount", spec["serviceAccountName"], namespace)
    assert sa is not None, f"ServiceAccount {spec['serviceAccountName']} missing"

    env = env_map(c)
    for var, key in (("KINSIGHT_TOKEN", "admin-token"), ("KINSIGHT_INGEST_TOKEN", "ingest-token")):
        ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
        assert ref.get("name") == tokens_secret and ref.get("key") == key, f"{var}: {ref}"


def check_token_refs(m: Manifests, namespace: str, tokens_secret: str, secret: str) -> None:
    """Both workloads read the same Secret. `secret` says what the manifests hold of it:
    "values" (both keys with real tokens), "empty" (the object, values created by the operator),
    "supplied" (nothing: an existing Secret is named) or "generated" (nothing: the hook Job
    creates it in the cluster)."""
    refs = set()
    for kind in ("DaemonSet", "StatefulSet"):
        for o in m.all(kind):
            for c in o["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref and ref["key"].endswith("-token"):
                        refs.add((ref["name"], ref["key"]))
    assert {n for n, _ in refs} == {tokens_secret}, f"token references {refs}"
    found = m.find("Secret", tokens_secret, namespace)
    jobs = [j for j in m.all("Job") if j["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "tokens"]
    if secret in ("supplied", "values", "empty"):
        assert not jobs, f"a tokens Job is rendered although the Secret is {secret}"
    if secret == "supplied":
        assert found is None, f"Secret {tokens_secret} is rendered although it is supplied"
        return
    if secret == "generated":
        assert found is None, f"Secret {tokens_secret} is rendered: its tokens would change with every render"
        assert len(jobs) == 1, f"no single Job makes Secret {tokens_secret}: {len(jobs)}"
        check_secret_job(m, jobs[0], namespace, tokens_secret)
        return
    assert found is not None, f"Secret {tokens_secret} missing"
    data = {**found.get("data", {}), **found.get("stringData", {})}
    if secret == "empty":
        assert not data, f"Secret {tokens_secret} holds values"
        return
    assert {k for _, k in refs} <= set(data), f"Secret lacks {sorted({k for _, k in refs} - set(data))}"
    for k in ("admin-token", "ingest-token"):
        raw = found.get("data", {}).get(k)
        token = base64.b64decode(raw).decode() if raw is not None else found["stringData"][k]
        assert len(token) >= 32, f"{k} is only {len(token)} characters"


def check_secret_job(m: Manifests, job: dict, namespace: str, tokens_secret: str, name: str = "tokens",
                     keys: list[str] | None = None) -> None:
    """A hook Job that makes a Secret of random values (the tokens, or the bundled PostgreSQL's
    password): the Secret the workloads read, with the keys they read, a restricted pod, and
    RBAC limited to that Secret (create cannot be narrowed by name). `keys` None: the
    command's default keys (admin-token and ingest-token)."""
    c = container(job, name)
    assert c["command"] == [BINARY], c["command"]
    args = c["args"]
    assert args[:2] == ["tokens", "ensure-secret"], args
    assert args[args.index("--name") + 1] == tokens_secret, f"the Job makes {args}, the pods read {tokens_secret}"
    assert args[args.index("--namespace") + 1] == namespace
    given = [args[i + 1] for i, a in enumerate(args) if a == "--key"]
    assert given == (keys or []), f"the Job makes keys {given or 'admin-token, ingest-token'}, expected {keys}"
    spec = job["spec"]["template"]["spec"]
    psc, sc = spec["securityContext"], c["securityContext"]
    assert psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, psc
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert not any("hostPath" in v for v in spec.get("volumes", []))
    sa = spec["serviceAccountName"]
    objs = [m.find(k, sa, namespace) for k in ("ServiceAccount", "Role", "RoleBinding")]
    assert all(objs), f"ServiceAccount, Role or RoleBinding {sa} missing"
    role, binding = objs[1], objs[2]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]
    granted = role_grants(role)
    for (g, r, n), verbs in granted.items():
        assert (g, r) == ("", "secrets"), f"the Role grants more than secrets: {g}/{r}"
        assert n == tokens_secret or verbs == {"create"}, f"{sorted(verbs)} on secrets other than {tokens_secret}"
    diff_grants(f"the {name} Job's Role", granted, expected_role_grants("secret-job", tokens_secret))
    # Run by Helm (and Argo CD) before the workloads, and removed once done.
    weights = {}
    for o in [job, *objs]:
        ann = o["metadata"].get("annotations", {})
        assert set(ann.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"}, f"{o['kind']} hook {ann}"
        assert "hook-succeeded" in ann.get("helm.sh/hook-delete-policy", ""), f"{o['kind']} stays after success"
        weights[o["kind"]] = int(ann.get("helm.sh/hook-weight", "0"))
    assert all(weights[k] < weights["Job"] for k in ("ServiceAccount", "Role", "RoleBinding")), weights


def check_selectors(m: Manifests) -> None:
    for kind in ("DaemonSet", "StatefulSet"):
        for o in m.all(kind):
            sel = o["spec"]["selector"]["matchLabels"]
            assert selector_matches(sel, o["spec"]["template"]["metadata"]["labels"]), f"{kind} selector"
    # Agent and server selectors must not overlap, or a Service could pick agents.
    a = m.component("DaemonSet", "agent")["spec"]["template"]["metadata"]["labels"]
    for s in m.all("Service"):
        assert not selector_matches(s["spec"]["selector"], a), f"Service {s['metadata']['name']} selects agents"
    # Every Service and PodDisruptionBudget selects the pods of its own component, and only them.
    pods = [o["spec"]["template"]["metadata"]["labels"] for k in ("DaemonSet", "StatefulSet", "Deployment") for o in m.all(k)]
    for o in m.all("Service") + m.all("PodDisruptionBudget"):
        sel = o["spec"]["selector"]
        sel = sel.get("matchLabels", sel) if o["kind"] == "PodDisruptionBudget" else sel
        own = o["metadata"]["labels"]["app.kubernetes.io/component"]
        picked = {p["app.kubernetes.io/component"] for p in pods if selector_matches(sel, p)}
        assert picked == {own}, f"{o['kind']} {o['metadata']['name']} selects pods of {sorted(picked)}, not {own}"


def check_common(h: Harness, m: Manifests, namespace: str, tokens_secret: str, secret: str,
                 checker: list[str], server: bool = True, replicas: int = 1) -> None:
    p = m.label
    h.check(f"{p}: every object validates against Kubernetes {', '.join(K8S_VERSIONS)} (strict)", check_schemas, m)
    h.check(f"{p}: everything is in namespace {namespace}", check_namespaced, m, namespace)
    h.check(f"{p}: ClusterRole grants exactly the agent's cluster-wide requests (access.rs): get/list only, no secrets, "
            "no nodes/proxy", check_cluster_role, m)
    h.check(f"{p}: leader-election Role grants exactly the agent's Lease requests (access.rs), on {LEASE_NAME}",
            check_leader_role, m, namespace)
    h.check(f"{p}: bindings grant the roles to the agent's ServiceAccount", check_bindings, m, namespace)
    h.check(f"{p}: every RBAC rule has a comment naming the features (access.rs) it is granted for", check_rules_commented, m)
    h.check(f"{p}: agent DaemonSet (command, env, probes, host paths, privileges, scheduling)", check_agent_daemonset, m, namespace)
    h.check(f"{p}: agent resources well under the seed's and the CloudWatch agent's", check_agent_resources, m)
    if server:
        h.check(f"{p}: agent config is accepted by kinsight's parser and matches mounts and Service", check_agent_config, m, namespace, checker)
        h.check(f"{p}: server StatefulSet (command, probes, PVC, non-root, tokens, {replicas} replica{'s' if replicas > 1 else ''})", check_server, m, namespace, tokens_secret, replicas)
    h.check(f"{p}: token Secret references", check_token_refs, m, namespace, tokens_secret, secret)
    h.check(f"{p}: selectors match their pods and only them", check_selectors, m)


# --------------------------------------------------------------------------------------------
# deploy/kubernetes


def plain_manifests(repo: Path) -> Manifests:
    d = repo / "deploy/kubernetes"
    files = sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    text = "\n---\n".join(p.read_text() for p in files)
    return Manifests("deploy/kubernetes", load_yaml_docs(text), text)


def canonical(objs: list[dict]) -> list[str]:
    return sorted(json.dumps(o, sort_keys=True) for o in objs)


def check_kubectl_f_reads_only_manifests(kubectl: str, m: Manifests, d: Path) -> None:
    """`kubectl apply -f dir/` reads what `kubectl label --local -f dir/` reads: no Kustomization."""
    p = run([kubectl, "label", "--local", "-f", str(d), "kinsight.test/probe=1", "-o", "name"],
            env=dict(os.environ, KUBECONFIG="/dev/null"))
    assert p.returncode == 0, p.stderr
    names = sorted(p.stdout.split())
    assert not any("kustomization" in n.lower() for n in names), f"kubectl -f would apply {names}"
    expected = sorted(
        f"{o['kind'].lower()}.{o['apiVersion'].split('/')[0]}/{o['metadata']['name']}"
        if "/" in o["apiVersion"] else f"{o['kind'].lower()}/{o['metadata']['name']}"
        for o in m.objects
    )
    assert names == expected, f"kubectl -f reads {names}, expected {expected}"


def check_kustomize_equals_files(kubectl: str, m: Manifests, d: Path) -> None:
    p = run([kubectl, "kustomize", str(d)])
    assert p.returncode == 0, p.stderr
    k = load_yaml_docs(p.stdout)
    assert canonical(k) == canonical(m.objects), "kubectl apply -k and -f would create different objects"
    assert k[0]["kind"] == "Namespace", "kustomize must create the Namespace first"


def check_files_ordered(m: Manifests, d: Path) -> None:
    """`kubectl apply -f` applies files in name order: the Namespace file must come first."""
    files = sorted(p.name for p in d.iterdir() if p.suffix == ".yaml")
    first = load_yaml_docs((d / files[0]).read_text())
    assert [o["kind"] for o in first] == ["Namespace"], f"{files[0]} is applied first but is not the Namespace"


def check_namespace_object(m: Manifests) -> None:
    ns = m.one("Namespace", "kinsight")
    labels = ns["metadata"].get("labels", {})
    # hostPath volumes are refused by Pod Security `baseline` and `restricted`.
    assert labels.get("pod-security.kubernetes.io/enforce") == "privileged", f"labels {labels}"


def check_plain_secret_has_no_values(m: Manifests) -> None:
    s = m.one("Secret", "kinsight-tokens")
    assert "data" not in s and "stringData" not in s, (
        "a token in the repository would be the same in every cluster, and re-applying the file "
        "would overwrite the operator's"
    )


def check_token_command(kubectl: str, m: Manifests) -> None:
    """The documented token command produces a Secret that fits the manifests."""
    p = run([kubectl, "-n", "kinsight", "create", "secret", "generic", "kinsight-tokens",
             "--from-literal=admin-token=" + base64.b64encode(os.urandom(32)).decode(),
             "--from-literal=ingest-token=" + base64.b64encode(os.urandom(32)).decode(),
             "--dry-run=client", "-o", "yaml"], env=dict(os.environ, KUBECONFIG="/dev/null"))
    assert p.returncode == 0, p.stderr
    made = yaml.safe_load(p.stdout)
    kubernetes_validate.validate(made, K8S_VERSIONS[-1], strict=True)
    with_tokens = Manifests("with tokens", [made if o["kind"] == "Secret" else o for o in m.objects], "")
    check_token_refs(with_tokens, "kinsight", "kinsight-tokens", "values")
    doc = (Path(__file__).resolve().parents[3] / "deploy/kubernetes/20-secret.yaml").read_text()
    assert "create secret generic kinsight-tokens" in doc, "the command is not documented in 20-secret.yaml"


def check_seed_config_shape(m: Manifests, checker: list[str]) -> None:
    """The seed's own 2019 document still works in place of ours (the `structuredlogs` spelling)."""
    seed = {"structuredlogs": {"metrics_collected": {"kubernetes": {"cluster_name": "my-cluster",
            "metrics_collection_interval": 60}}, "force_flush_interval": 5}}
    run_checker(checker, json.dumps(seed), "kinsight")
    bad = {"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "metrics_collection_interval": "60"}}}}
    try:
        run_checker(checker, json.dumps(bad), "kinsight")
    except AssertionError as e:
        assert "metrics_collection_interval" in str(e), f"the error does not name the key: {e}"
    else:
        raise AssertionError("the checker accepted a string interval: it does not check anything")
    typo = {"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "enhanced_containers_insights": True}}}}
    try:
        run_checker(checker, json.dumps(typo), "kinsight")
    except AssertionError as e:
        assert "enhanced_containers_insights" in str(e), f"the warning does not name the key: {e}"
    else:
        raise AssertionError("a misspelt key passed unnoticed")


def plain_checks(h: Harness, repo: Path, kubectl: str, checker: list[str]) -> Manifests:
    d = repo / "deploy/kubernetes"
    m = plain_manifests(repo)
    check_common(h, m, "kinsight", "kinsight-tokens", secret="empty", checker=checker)
    h.check("deploy/kubernetes: Namespace allows the agent's host paths (Pod Security)", check_namespace_object, m)
    h.check("deploy/kubernetes: kubectl apply -f reads the manifests and not the Kustomization", check_kubectl_f_reads_only_manifests, kubectl, m, d)
    h.check("deploy/kubernetes: kubectl apply -k creates exactly what -f creates", check_kustomize_equals_files, kubectl, m, d)
    h.check("deploy/kubernetes: the Namespace file is applied first", check_files_ordered, m, d)
    h.check("deploy/kubernetes: the Secret ships no token values", check_plain_secret_has_no_values, m)
    h.check("deploy/kubernetes: the documented token command makes a fitting Secret", check_token_command, kubectl, m)
    h.check("agent config: the seed's structuredlogs document passes; a wrong type or a misspelt key is named", check_seed_config_shape, m, checker)
    return m


def plain_ha_checks(h: Harness, repo: Path, kubectl: str, plain: Manifests, checker: list[str]) -> Manifests | None:
    """deploy/kubernetes-ha: the overlay for 3 replicas sharing S3 and a PostgreSQL catalogue."""
    got: list[Manifests] = []
    h.check("deploy/kubernetes-ha: kubectl kustomize builds the overlay on deploy/kubernetes", lambda: got.append(plain_ha_manifests(repo, kubectl)))
    if not got:
        return None
    m = got[0]
    check_common(h, m, "kinsight", "kinsight-tokens", secret="empty", checker=checker, replicas=3)
    h.check("deploy/kubernetes-ha: 3 replicas, S3, KINSIGHT_CATALOGUE from Secret kinsight-catalogue, replica id, PDB, /readyz; "
            "nothing else changed", check_plain_ha, m, plain)
    return m


# --------------------------------------------------------------------------------------------
# The Helm chart


class Chart:
    def __init__(self, helm: str, path: Path) -> None:
        self.helm = helm
        self.path = path
        self.version = run([helm, "version", "--short"]).stdout.strip()

    def template(self, release: str = "kinsight", namespace: str = "kinsight", values: dict | None = None,
                 sets: list[str] | None = None) -> subprocess.CompletedProcess:
        cmd = [self.helm, "template", release, str(self.path), "--namespace", namespace]
        tmp = None
        if values is not None:
            tmp = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
            yaml.safe_dump(values, tmp)
            tmp.close()
            cmd += ["--values", tmp.name]
        for s in sets or []:
            cmd += ["--set", s]
        try:
            return run(cmd)
        finally:
            if tmp:
                os.unlink(tmp.name)

    def render(self, label: str, **kw) -> Manifests:
        p = self.template(**kw)
        assert p.returncode == 0, f"helm template failed: {p.stderr.strip()}"
        return Manifests(f"helm {self.version} {label}", load_yaml_docs(p.stdout), p.stdout)


def strip_helm(o: dict) -> dict:
    """An object without what only Helm adds (its labels and the config checksum)."""
    o = copy.deepcopy(o)

    def clean(md: dict) -> None:
        for k in ("app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"):
            md.get("labels", {}).pop(k, None)
        md.get("annotations", {}).pop("checksum/config", None)
        for k in ("labels", "annotations"):
            if k in md and not md[k]:
                del md[k]

    clean(o["metadata"])
    spec = o.get("spec", {})
    if "template" in spec:
        clean(spec["template"]["metadata"])
    for t in spec.get("volumeClaimTemplates", []):
        clean(t["metadata"])
    for k in ("selector",):
        if isinstance(spec.get(k), dict):
            sel = spec[k].get("matchLabels", spec[k])
            sel.pop("app.kubernetes.io/instance", None)
    for t in spec.get("template", {}).get("spec", {}).get("topologySpreadConstraints", []):
        t.get("labelSelector", {}).get("matchLabels", {}).pop("app.kubernetes.io/instance", None)
    return o


def sort_env(o: dict) -> dict:
    """An object with its containers' variables in name order. Kustomize's strategic merge puts
    the variables an overlay adds first; their order means nothing while none refers to
    another with $(NAME)."""
    o = copy.deepcopy(o)
    for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        env = c.get("env", [])
        assert not any("$(" in str(e.get("value", "")) for e in env), f"{c['name']}: a $(NAME) reference depends on the order"
        if env:
            c["env"] = sorted(env, key=lambda e: e["name"])
    return o


def check_no_drift(plain: Manifests, rendered: Manifests, env_order: bool = True) -> None:
    """The chart with default values deploys what deploy/kubernetes deploys (and, with
    env_order False, the chart's replicas what deploy/kubernetes-ha deploys)."""
    def key(o):
        return (o["kind"], o["metadata"]["name"])

    def hook(o):
        return "helm.sh/hook" in o["metadata"].get("annotations", {})
    # The tokens: an empty Secret the operator fills (plain) or a hook Job that fills it (chart).
    norm = (lambda o: strip_helm(o)) if env_order else (lambda o: sort_env(strip_helm(o)))
    p = {key(o): norm(o) for o in plain.objects if o["kind"] not in ("Namespace", "Secret")}
    r = {key(o): norm(o) for o in rendered.objects if o["kind"] != "Secret" and not hook(o)}
    assert set(p) == set(r), f"objects differ: only plain {sorted(set(p) - set(r))}, only chart {sorted(set(r) - set(p))}"
    diffs = []
    for k in sorted(p):
        if k[0] == "ConfigMap":
            a, b = json.loads(p[k]["data"][AGENT_CONFIG_KEY]), json.loads(r[k]["data"][AGENT_CONFIG_KEY])
            if a != b:
                diffs.append(f"{k}: {a} != {b}")
            continue
        if p[k] != r[k]:
            diffs.append(f"{k}:\n  plain {json.dumps(p[k], sort_keys=True)}\n  chart {json.dumps(r[k], sort_keys=True)}")
    assert not diffs, "\n".join(diffs)


def check_lint(chart: Chart) -> None:
    p = run([chart.helm, "lint", "--strict", str(chart.path)])
    assert p.returncode == 0, p.stdout + p.stderr


def cfg_of(m: Manifests) -> dict:
    return agent_config_of(m, m.component("DaemonSet", "agent"))[0]


def check_values_reach_config(chart: Chart, checker: list[str]) -> None:
    m = chart.render("enhanced", values={
        "clusterName": "prod-eu_1", "enhanced": True, "logGroupPrefix": "/aws/containerinsights",
        "metricsCollectionInterval": 30, "forceFlushInterval": 2,
        "agent": {"config": {"logs": {"exclude_namespaces": ["kube-system"]}, "host_root": "/elsewhere"}},
    })
    cfg = cfg_of(m)
    k8s = cfg["logs"]["metrics_collected"]["kubernetes"]
    assert k8s == {"cluster_name": "prod-eu_1", "enhanced_container_insights": True, "metrics_collection_interval": 30}, k8s
    assert cfg["logs"]["force_flush_interval"] == 2
    assert cfg["kinsight"]["log_group_prefix"] == "/aws/containerinsights"
    assert cfg["kinsight"]["logs"] == {"exclude_namespaces": ["kube-system"]}, "agent.config is not merged"
    assert cfg["kinsight"]["host_root"] == "/rootfs", "agent.config overrode the chart-owned host_root"
    # The parser's own reading of the rendered document.
    out = run_checker(checker, json.dumps(cfg), "kinsight")
    assert "prod-eu_1" in out and "enhanced" in out, f"kinsight agent --check read: {out.strip()}"


def check_release_names(chart: Chart, checker: list[str]) -> Manifests:
    """Another release name and namespace: every cross-reference follows."""
    m = chart.render("release monitoring in observability", release="monitoring", namespace="observability")
    names = {o["metadata"]["name"] for o in m.objects}
    assert all(n.startswith("monitoring-kinsight-") for n in names), f"names {sorted(names)}"
    check_namespaced(m, "observability")
    check_bindings(m, "observability")
    check_agent_config(m, "observability", checker)
    check_token_refs(m, "observability", "monitoring-kinsight-tokens", "generated")
    check_schemas(m)
    return m


def check_object_storage(chart: Chart) -> None:
    m = chart.render("s3 with existing secret", values={"objectStorage": {
        "enabled": True, "bucket": "logs", "prefix": "k1", "endpoint": "http://seaweedfs:8333",
        "region": "eu-west-1", "existingSecret": "s3-creds"}})
    check_schemas(m)
    c = container(m.component("StatefulSet", "server"), "server")
    args = c["args"]
    assert args[args.index("--object-store") + 1] == "s3://logs/k1", args
    env = env_map(c)
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://seaweedfs:8333" and env["AWS_REGION"]["value"] == "eu-west-1"
    assert c["envFrom"] == [{"secretRef": {"name": "s3-creds"}}], c.get("envFrom")
    assert not m.find("Secret", "kinsight-object-store"), "a credentials Secret is rendered next to the existing one"

    m = chart.render("s3 with keys", values={"objectStorage": {
        "enabled": True, "bucket": "logs", "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "c2VjcmV0"}})
    check_schemas(m)
    s = m.find("Secret", "kinsight-object-store")
    assert s and s["stringData"] == {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0"}, s
    c = container(m.component("StatefulSet", "server"), "server")
    assert c["envFrom"] == [{"secretRef": {"name": "kinsight-object-store"}}]
    assert "AWS_ENDPOINT_URL" not in env_map(c), "an empty endpoint must fall back to AWS S3"

    m = chart.render("local storage")
    c = container(m.component("StatefulSet", "server"), "server")
    assert "--object-store" not in c["args"] and "envFrom" not in c


def check_server_extra_settings(chart: Chart) -> None:
    m = chart.render("server extraArgs and extraEnv", values={"server": {
        "extraArgs": ["--max-log-groups", "5000", "--write-timeout", "30s"],
        "extraEnv": [{"name": "KINSIGHT_REQUEST_MEMORY", "value": "256MiB"}]}})
    check_schemas(m)
    c = container(m.component("StatefulSet", "server"), "server")
    args = c["args"]
    assert args[-4:] == ["--max-log-groups", "5000", "--write-timeout", "30s"], args
    env = env_map(c)
    assert env["KINSIGHT_REQUEST_MEMORY"]["value"] == "256MiB", env
    assert "KINSIGHT_TOKEN" in env, "the chart's own variables stay"


def check_tokens_values(chart: Chart) -> None:
    m = chart.render("existing token secret", values={"tokens": {"existingSecret": "my-tokens"}})
    check_token_refs(m, "kinsight", "my-tokens", "supplied")
    m = chart.render("explicit tokens", values={"tokens": {"adminToken": "a" * 40, "ingestToken": "i" * 40}})
    check_token_refs(m, "kinsight", "kinsight-tokens", "values")
    s = m.one("Secret", "kinsight-tokens")
    assert base64.b64decode(s["data"]["admin-token"]).decode() == "a" * 40
    assert base64.b64decode(s["data"]["ingest-token"]).decode() == "i" * 40
    # Uninstalling, or switching to generated tokens, must not delete what the pods hold.
    assert s["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep", s["metadata"]
    # No token given: nothing random in the rendering; a hook Job makes the Secret once.
    check_token_refs(chart.render("generated"), "kinsight", "kinsight-tokens", "generated")


def template_actions(text: str) -> list[str]:
    """The `{{ ... }}` actions of a template, comments left out."""
    text = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", text, flags=re.S)
    return re.findall(r"\{\{(.*?)\}\}", text, flags=re.S)


def check_stable_renders(chart: Chart) -> None:
    """Issue 15, item 14: the same values render the same bytes, every time, without a cluster
    (helm template, Argo CD, Flux): no `lookup`, nothing random, no clock. Tokens therefore
    never change on a re-render or an upgrade."""
    problems = []
    for label, values in (
        ("defaults", None),
        ("explicit tokens", {"tokens": {"adminToken": "a" * 40, "ingestToken": "i" * 40}}),
        ("existing secret", {"tokens": {"existingSecret": "my-tokens"}}),
        ("agents only", {"server": {"enabled": False, "url": "http://x:8080"}}),
        ("3 replicas", HA_VALUES),
        ("bundled postgresql", {"server": {"replicas": 3}, "objectStorage": S3_VALUES, "postgresql": {"enabled": True}}),
    ):
        one, two = chart.template(values=values), chart.template(values=values)
        assert one.returncode == 0, one.stderr
        if one.stdout != two.stdout:
            problems.append(f"two renders of {label} differ")
    for t in sorted((chart.path / "templates").iterdir()):
        for action in template_actions(t.read_text()):
            for fn in UNSTABLE_TEMPLATE_FUNCTIONS & set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", action)):
                problems.append(f"{t.name} uses {fn}: {{{{{action.strip()}}}}}")
    assert not problems, "; ".join(problems)


def check_resources_and_tolerations(chart: Chart) -> None:
    m = chart.render("resources", values={
        "agent": {"resources": {"requests": {"cpu": "20m", "memory": "48Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}},
        "server": {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
                   "persistence": {"size": "100Gi", "storageClassName": "fast"}},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "logs", "effect": "NoSchedule"}],
    })
    check_schemas(m)
    a = container(m.component("DaemonSet", "agent"), "agent")
    assert a["resources"] == {"requests": {"cpu": "20m", "memory": "48Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}, a["resources"]
    sts = m.component("StatefulSet", "server")
    # Helm merges maps: the default cpu limit stays unless set to null.
    lim = container(sts, "server")["resources"]["limits"]
    assert lim == {"cpu": "2", "memory": "4Gi"}, f"server limits {lim}"
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "100Gi" and claim["storageClassName"] == "fast", claim
    tol = m.component("DaemonSet", "agent")["spec"]["template"]["spec"]["tolerations"]
    assert tol == [{"key": "dedicated", "operator": "Equal", "value": "logs", "effect": "NoSchedule"}], tol


def check_external_server(chart: Chart, checker: list[str]) -> None:
    m = chart.render("agents only", values={"server": {"enabled": False, "url": "https://kinsight.example.com"}})
    check_schemas(m)
    assert not m.all("StatefulSet") and not m.all("Service"), "server objects rendered with server.enabled=false"
    cfg = cfg_of(m)
    assert cfg["kinsight"]["server_url"] == "https://kinsight.example.com"
    run_checker(checker, json.dumps(cfg), "kinsight")
    p = chart.template(values={"server": {"enabled": False}})
    assert p.returncode != 0 and "server.url is required" in p.stderr, p.stderr


def check_docker_socket(chart: Chart) -> None:
    m = chart.render("docker socket", values={"agent": {"mountDockerSocket": True}})
    check_schemas(m)
    ds = m.component("DaemonSet", "agent")
    mv = host_mounts(ds, container(ds, "agent"))["/var/run/docker.sock"]
    assert mv["mount"]["readOnly"] is True and mv["volume"]["hostPath"]["type"] == "Socket", mv
    plain = chart.render("no docker socket").component("DaemonSet", "agent")
    assert "/var/run/docker.sock" not in host_mounts(plain, container(plain, "agent"))


def check_accelerated(chart: Chart, checker: list[str]) -> None:
    """Accelerated compute (issue 18): the opt-in DCGM exporter DaemonSet behind a node-local
    Service the agents' dcgm_exporter_url names; the pod-resources mount; the flag itself."""
    pr = "/var/lib/kubelet/pod-resources"
    m = chart.render("accelerated with the DCGM exporter", values={
        "accelerated": {"enabled": True, "dcgmExporter": {"enabled": True}}})
    check_schemas(m)
    check_selectors(m)
    agent = m.component("DaemonSet", "agent")
    cfg = cfg_of(m)
    assert cfg["logs"]["metrics_collected"]["kubernetes"]["accelerated_compute_metrics"] is True
    url = urlparse(cfg["kinsight"]["dcgm_exporter_url"])
    svc_name, svc_ns = url.hostname.split(".")[:2]
    assert url.hostname == f"{svc_name}.{svc_ns}.svc" and svc_ns == "kinsight" and url.path == "/metrics", url
    svc = m.find("Service", svc_name, "kinsight")
    assert svc is not None, f"dcgm_exporter_url names Service {svc_name}, which is not deployed"
    assert svc["spec"].get("internalTrafficPolicy") == "Local", "each agent must reach its own node's exporter"
    exporter = m.component("DaemonSet", "dcgm-exporter")
    c = container(exporter, "dcgm-exporter")
    port = [p for p in svc["spec"]["ports"] if p["port"] == url.port]
    assert port and port_number(c, port[0]["targetPort"]) == url.port, f"Service port {url.port}"
    assert selector_matches(svc["spec"]["selector"], exporter["spec"]["template"]["metadata"]["labels"])
    assert env_map(c)["DCGM_EXPORTER_KUBERNETES"]["value"] == "true", "pods are labelled in Kubernetes mode"
    assert env_map(c)["DCGM_EXPORTER_LISTEN"]["value"] == f":{url.port}"
    assert pr in host_mounts(exporter, c), "the exporter reads the kubelet's pod-resources socket"
    assert exporter["spec"]["template"]["spec"].get("nodeSelector"), "GPU nodes only"
    counters = m.find("ConfigMap", exporter["metadata"]["name"], "kinsight")["data"]["counters.csv"]
    for field in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED_PERCENT", "DCGM_FI_DEV_FB_TOTAL", "DCGM_FI_DEV_FB_USED",
                  "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"):
        assert f"{field}," in counters, f"{field} is not exported"
    mv = host_mounts(agent, container(agent, "agent"))[pr]
    assert mv["mount"]["mountPath"] == "/rootfs" + pr and mv["mount"]["readOnly"] is True, mv
    run_checker(checker, json.dumps(cfg), "kinsight")

    # Enhanced mode turns it on (the agent's default); no exporter, no URL: the agent's own default.
    m = chart.render("enhanced", values={"enhanced": True})
    assert "accelerated_compute_metrics" not in cfg_of(m)["logs"]["metrics_collected"]["kubernetes"]
    assert "dcgm_exporter_url" not in cfg_of(m)["kinsight"]
    assert not [o for o in m.all("DaemonSet") if "dcgm" in o["metadata"]["name"]]
    agent = m.component("DaemonSet", "agent")
    assert pr in host_mounts(agent, container(agent, "agent"))
    # An exporter of one's own; and off in enhanced mode, with no mount.
    m = chart.render("own exporter", values={"accelerated": {"enabled": True, "dcgmExporterUrl": "http://${HOST_IP}:9400/metrics"}})
    assert cfg_of(m)["kinsight"]["dcgm_exporter_url"] == "http://${HOST_IP}:9400/metrics"
    run_checker(checker, json.dumps(cfg_of(m)), "kinsight")
    m = chart.render("enhanced, accelerated off", values={"enhanced": True, "accelerated": {"enabled": False}})
    assert cfg_of(m)["logs"]["metrics_collected"]["kubernetes"]["accelerated_compute_metrics"] is False
    agent = m.component("DaemonSet", "agent")
    assert pr not in host_mounts(agent, container(agent, "agent"))
    p = chart.template(values={"accelerated": {"dcgmExporter": {"enabled": True}}})
    assert p.returncode != 0 and "no agent would read it" in p.stderr, p.stderr


def tls_checks(m: Manifests, secret: str, namespace: str = "kinsight", ca_key: str | None = "ca.crt") -> None:
    """What server.tls promises, on any rendering with it: the server serves HTTPS from the
    whole Secret (no subPath, so updates reach it), probes speak HTTPS, agents ship to https://
    and verify against the Secret's CA only (never mounting its key)."""
    sts = m.component("StatefulSet", "server")
    spec = sts["spec"]["template"]["spec"]
    c = container(sts, "server")
    args = c["args"]
    assert args[args.index("--tls-cert") + 1] == "/etc/kinsight/tls/tls.crt", args
    assert args[args.index("--tls-key") + 1] == "/etc/kinsight/tls/tls.key", args
    vols = {v["name"]: v for v in spec["volumes"]}
    mount = [vm for vm in c["volumeMounts"] if vm["mountPath"] == "/etc/kinsight/tls"]
    assert len(mount) == 1 and mount[0].get("readOnly") is True and "subPath" not in mount[0], mount
    vol = vols[mount[0]["name"]]
    assert vol["secret"]["secretName"] == secret, vol
    assert vol["secret"].get("defaultMode") == 0o440, f"key readable by others: {vol}"
    port = listen_port(args, "--listen")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = c[probe]["httpGet"]
        assert http.get("scheme") == "HTTPS" and port_number(c, http["port"]) == port, f"{probe} {http}"
    for svc in m.all("Service"):
        for p in svc["spec"]["ports"]:
            assert p["name"] == "https" and port_number(c, p["targetPort"]) == port, f"Service {svc['metadata']['name']} port {p}"

    ds = m.component("DaemonSet", "agent")
    cfg, _ = agent_config_of(m, ds)
    own = cfg["kinsight"]
    url = urlparse(own["server_url"])
    assert url.scheme == "https", f"agents ship to {own['server_url']}"
    agent = container(ds, "agent")
    ca_mounts = [vm for vm in agent["volumeMounts"] if vm["mountPath"] == "/etc/kinsight/server-ca"]
    if ca_key is None:
        assert "server_ca_file" not in own and not ca_mounts, "the agents get a CA although caKey is empty"
        return
    assert own["server_ca_file"] == f"/etc/kinsight/server-ca/{ca_key}", own
    assert len(ca_mounts) == 1 and ca_mounts[0].get("readOnly") is True, ca_mounts
    v = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}[ca_mounts[0]["name"]]
    assert v["secret"]["secretName"] == secret, v
    assert v["secret"]["items"] == [{"key": ca_key, "path": ca_key}], f"the agents see more than the CA: {v}"


def check_tls_existing_secret(chart: Chart, checker: list[str]) -> None:
    m = chart.render("tls from an existing Secret", values={"server": {"tls": {"enabled": True, "secretName": "my-tls"}}})
    check_schemas(m)
    tls_checks(m, "my-tls")
    assert not [o for o in m.objects if o["kind"] == "Certificate"], "a Certificate next to an existing Secret"
    check_agent_config(m, "kinsight", checker)
    check_server(m, "kinsight", "kinsight-tokens")
    # A public certificate: no CA for the agents, their built-in roots verify it.
    m = chart.render("tls without a CA key", values={"server": {"tls": {"enabled": True, "secretName": "my-tls", "caKey": ""}}})
    check_schemas(m)
    tls_checks(m, "my-tls", ca_key=None)
    run_checker(checker, json.dumps(cfg_of(m)), "kinsight")


def check_tls_cert_manager(chart: Chart, checker: list[str]) -> None:
    m = chart.render("tls from cert-manager", release="mon", namespace="obs", values={"server": {"tls": {
        "enabled": True, "certManager": {"enabled": True, "dnsNames": ["kinsight.example.com"],
                                         "issuerRef": {"name": "cluster-ca", "kind": "ClusterIssuer"}}}}})
    certs = [o for o in m.objects if o["kind"] == "Certificate"]
    assert len(certs) == 1, f"{len(certs)} Certificates"
    cert = certs[0]
    # No Kubernetes schema for a CRD: everything else validates strictly.
    check_schemas(Manifests(m.label, [o for o in m.objects if o["kind"] != "Certificate"], m.source))
    assert cert["apiVersion"] == "cert-manager.io/v1" and cert["metadata"]["namespace"] == "obs", cert["metadata"]
    spec = cert["spec"]
    secret = "mon-kinsight-server-tls"
    assert spec["secretName"] == secret, spec
    assert spec["issuerRef"] == {"name": "cluster-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}, spec
    tls_checks(m, secret, namespace="obs")
    host = urlparse(cfg_of(m)["kinsight"]["server_url"]).hostname
    assert host in spec["dnsNames"], f"the agents' host {host} is not on the certificate {spec['dnsNames']}"
    assert "kinsight.example.com" in spec["dnsNames"], spec["dnsNames"]
    assert {"server auth"} <= set(spec.get("usages", [])), spec.get("usages")
    check_agent_config(m, "obs", checker)


def check_no_tls_by_default(chart: Chart) -> None:
    m = chart.render("no tls")
    assert not [o for o in m.objects if o["kind"] == "Certificate"]
    c = container(m.component("StatefulSet", "server"), "server")
    assert "--tls-cert" not in c["args"] and all("scheme" not in c[p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
    assert urlparse(cfg_of(m)["kinsight"]["server_url"]).scheme == "http"
    assert "server_ca_file" not in cfg_of(m)["kinsight"]


# --------------------------------------------------------------------------------------------
# Highly available replicas: several servers sharing one S3 bucket and a PostgreSQL catalogue


S3_VALUES = {"enabled": True, "bucket": "logs", "prefix": "k1", "existingSecret": "s3-creds"}
HA_VALUES = {"server": {"replicas": 3}, "objectStorage": S3_VALUES,
             "catalogue": {"existingSecret": "pg-url", "secretKey": "dsn"}}
# The chart's values that deploy exactly deploy/kubernetes-ha (no drift between the two).
HA_PLAIN_VALUES = {"server": {"replicas": 3},
                   "objectStorage": {"enabled": True, "bucket": "my-bucket", "prefix": "kinsight", "region": "",
                                     "existingSecret": "kinsight-object-store"},
                   "catalogue": {"existingSecret": "kinsight-catalogue"}}


def server_service(m: Manifests) -> dict:
    """The server's load-balancing Service (not the StatefulSet's headless one)."""
    found = [s for s in m.all("Service") if s["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
             and s["spec"].get("clusterIP") != "None"]
    assert len(found) == 1, f"{len(found)} server Services"
    return found[0]


def ha_checks(m: Manifests, replicas: int, bucket_url: str, catalogue: dict | None) -> None:
    """What several server replicas promise, on any rendering of them. `catalogue`: the
    secretKeyRef KINSIGHT_CATALOGUE comes from, or None when the chart composes it (bundled
    PostgreSQL)."""
    sts = m.component("StatefulSet", "server")
    spec = sts["spec"]["template"]["spec"]
    c = container(sts, "server")
    assert sts["spec"]["replicas"] == replicas, f"replicas {sts['spec']['replicas']}"
    args = c["args"]
    assert "--object-store" in args and args[args.index("--object-store") + 1] == bucket_url, args
    # The URL holds a password: from a Secret into the environment, never on the command line.
    assert not any(a.startswith("--catalogue") or a.startswith("postgres") for a in args), args
    env = env_map(c)
    assert env.get("KINSIGHT_REPLICA_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name", (
        f"KINSIGHT_REPLICA_ID is not the pod's name: {env.get('KINSIGHT_REPLICA_ID')}")
    cat = env.get("KINSIGHT_CATALOGUE")
    assert cat is not None, "no KINSIGHT_CATALOGUE"
    if catalogue is not None:
        assert cat.get("valueFrom", {}).get("secretKeyRef") == catalogue, f"KINSIGHT_CATALOGUE: {cat}"
        assert "value" not in cat, cat
    # Readiness on /readyz (a replica gets requests once it joined the catalogue), liveness
    # on /healthz.
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", c["readinessProbe"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", c["livenessProbe"]
    # No volume shared by all the pods: /data is each pod's own claim or an emptyDir.
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    assert not any("persistentVolumeClaim" in v for v in vols.values()), f"a claim shared by every replica: {vols}"
    data = [vm["name"] for vm in c["volumeMounts"] if vm["mountPath"] == "/data"]
    claims = {t["metadata"]["name"]: t for t in sts["spec"].get("volumeClaimTemplates", [])}
    assert data and (data[0] in claims or "emptyDir" in vols.get(data[0], {})), f"/data is {data}"
    if data[0] in claims:
        assert claims[data[0]]["spec"]["accessModes"] == ["ReadWriteOnce"], claims[data[0]]["spec"]
    # One replica at a time through voluntary disruptions.
    pdbs = m.all("PodDisruptionBudget")
    assert len(pdbs) == 1, f"{len(pdbs)} PodDisruptionBudgets"
    pdb = pdbs[0]["spec"]
    assert pdb.get("maxUnavailable") == 1 and "minAvailable" not in pdb, pdb
    assert selector_matches(pdb["selector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"]), pdb
    # The Service spreads requests over every ready replica: no stickiness.
    svc = server_service(m)
    assert svc["spec"].get("sessionAffinity", "None") == "None", svc["spec"]
    assert selector_matches(svc["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"])
    # Replicas spread over nodes where possible.
    spread = spec.get("topologySpreadConstraints", [])
    assert [t["topologyKey"] for t in spread] == ["kubernetes.io/hostname"], spread
    assert selector_matches(spread[0]["labelSelector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"])


def check_ha_chart(chart: Chart) -> None:
    m = chart.render("3 replicas", values=HA_VALUES)
    check_schemas(m)
    ha_checks(m, 3, "s3://logs/k1", {"name": "pg-url", "key": "dsn"})
    assert m.find("Secret", "pg-url") is None, "the existing catalogue Secret is rendered"
    assert not m.all("Job") or all(j["metadata"]["labels"]["app.kubernetes.io/component"] == "tokens" for j in m.all("Job"))

    # catalogue.url: the chart's Secret holds it, the server reads it from there.
    url = "postgres://kinsight:s%40cret@pg.example.com:5432/kinsight"
    m = chart.render("3 replicas, catalogue.url", values={**HA_VALUES, "catalogue": {"url": url}})
    check_schemas(m)
    ha_checks(m, 3, "s3://logs/k1", {"name": "kinsight-catalogue", "key": "url"})
    sec = m.one("Secret", "kinsight-catalogue")
    assert sec["stringData"] == {"url": url}, sec
    assert url not in json.dumps(m.component("StatefulSet", "server")), "the URL is in the StatefulSet itself"

    # A small cache instead of a volume per replica: an emptyDir of persistence.size.
    m = chart.render("3 replicas on emptyDir", values={**HA_VALUES, "server": {"replicas": 3, "persistence": {"enabled": False, "size": "5Gi"}}})
    check_schemas(m)
    ha_checks(m, 3, "s3://logs/k1", {"name": "pg-url", "key": "dsn"})
    sts = m.component("StatefulSet", "server")
    assert "volumeClaimTemplates" not in sts["spec"], sts["spec"].get("volumeClaimTemplates")
    data = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}["data"]
    assert data == {"name": "data", "emptyDir": {"sizeLimit": "5Gi"}}, data

    # One replica on a catalogue: shared mode, nothing of several replicas.
    m = chart.render("1 replica with a catalogue", values={**HA_VALUES, "server": {"replicas": 1}})
    check_schemas(m)
    assert not m.all("PodDisruptionBudget"), "a PodDisruptionBudget for one replica blocks nothing and says nothing"
    env = env_map(container(m.component("StatefulSet", "server"), "server"))
    assert {"KINSIGHT_CATALOGUE", "KINSIGHT_REPLICA_ID"} <= set(env), sorted(env)

    # The default: one replica, embedded catalogue, none of it.
    m = chart.render("single node")
    sts = m.component("StatefulSet", "server")
    env = env_map(container(sts, "server"))
    assert sts["spec"]["replicas"] == 1 and not m.all("PodDisruptionBudget")
    assert not {"KINSIGHT_CATALOGUE", "KINSIGHT_REPLICA_ID", "KINSIGHT_CATALOGUE_PASSWORD"} & set(env), sorted(env)
    assert "topologySpreadConstraints" not in sts["spec"]["template"]["spec"]
    assert not [o for o in m.objects if o["metadata"]["labels"].get("app.kubernetes.io/component", "").startswith("postgresql")]


# Several replicas without what they share: refused at render time, saying what to set.
HA_REFUSED = [
    ({"server": {"replicas": 3}, "objectStorage": S3_VALUES},
     "server.replicas=3 needs a shared PostgreSQL catalogue: set catalogue.url (postgres://USER:PASSWORD@HOST:PORT/DB), "
     "catalogue.existingSecret (a Secret with that URL under catalogue.secretKey) or postgresql.enabled=true"),
    ({"server": {"replicas": 3}, "catalogue": {"existingSecret": "pg-url"}},
     "server.replicas=3 needs a shared S3 bucket: set objectStorage.enabled=true and objectStorage.bucket"),
    ({"server": {"replicas": 2}, "postgresql": {"enabled": True}},
     "server.replicas=2 needs a shared S3 bucket: set objectStorage.enabled=true and objectStorage.bucket"),
    ({"server": {"replicas": 3}},
     "server.replicas=3 needs a shared S3 bucket"),
    ({"server": {"replicas": 3}, "objectStorage": {"enabled": True}, "catalogue": {"existingSecret": "pg-url"}},
     "objectStorage.bucket is required"),
]


def check_ha_refused(chart: Chart) -> None:
    problems = []
    for values, needle in HA_REFUSED:
        p = chart.template(values=values)
        if p.returncode == 0:
            problems.append(f"{values} was accepted")
        elif needle not in p.stderr:
            problems.append(f"{values}: the error does not say {needle!r}: {p.stderr.strip()[:400]}")
    # The same with --set, as in the docs.
    p = chart.template(sets=["server.replicas=3", "objectStorage.enabled=true", "objectStorage.bucket=logs"])
    if p.returncode == 0 or "needs a shared PostgreSQL catalogue" not in p.stderr:
        problems.append(f"--set server.replicas=3 with S3 only: {p.returncode} {p.stderr.strip()[:300]}")
    assert not problems, "; ".join(problems)


def check_bundled_postgresql(chart: Chart) -> None:
    m = chart.render("3 replicas, bundled postgresql", release="mon", namespace="obs", values={
        "server": {"replicas": 3}, "objectStorage": S3_VALUES, "postgresql": {"enabled": True}})
    check_schemas(m)
    ha_checks(m, 3, "s3://logs/k1", None)
    pg = m.component("StatefulSet", "postgresql")
    assert pg["spec"]["replicas"] == 1
    spec = pg["spec"]["template"]["spec"]
    c = container(pg, "postgresql")
    assert c["image"].split(":")[0] == "postgres" and c["image"].split(":")[1], c["image"]
    env = env_map(c)
    secret = "mon-kinsight-postgresql"
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "password"}, env["POSTGRES_PASSWORD"]
    user, db = env["POSTGRES_USER"]["value"], env["POSTGRES_DB"]["value"]
    # Its data on its own claim, PGDATA below the mount point (a volume's root may hold lost+found).
    claims = [t["metadata"]["name"] for t in pg["spec"]["volumeClaimTemplates"]]
    mount = [vm for vm in c["volumeMounts"] if vm["name"] in claims]
    assert len(mount) == 1, c["volumeMounts"]
    assert env["PGDATA"]["value"].startswith(mount[0]["mountPath"].rstrip("/") + "/"), (env["PGDATA"], mount)
    # Pod Security `restricted`: non-root from the start, nothing added, no API token.
    psc, sc = spec["securityContext"], c["securityContext"]
    assert psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, psc
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", psc
    assert sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True, sc
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), sc
    assert spec.get("automountServiceAccountToken") is False
    assert c["readinessProbe"]["exec"]["command"][0] == "pg_isready", c["readinessProbe"]
    svc = m.find("Service", "mon-kinsight-postgresql", "obs")
    assert svc is not None, "no Service for the bundled PostgreSQL"
    assert selector_matches(svc["spec"]["selector"], pg["spec"]["template"]["metadata"]["labels"])
    assert port_number(c, svc["spec"]["ports"][0]["targetPort"]) == 5432

    # The server's catalogue URL points at it, with the password from the same Secret.
    server = container(m.component("StatefulSet", "server"), "server")
    names = [e["name"] for e in server["env"]]
    senv = env_map(server)
    assert senv["KINSIGHT_CATALOGUE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "password"}
    # $(NAME) is expanded only from variables defined before it.
    assert names.index("KINSIGHT_CATALOGUE_PASSWORD") < names.index("KINSIGHT_CATALOGUE"), names
    value = senv["KINSIGHT_CATALOGUE"]["value"]
    assert "$(KINSIGHT_CATALOGUE_PASSWORD)" in value, value
    u = urlparse(value.replace("$(KINSIGHT_CATALOGUE_PASSWORD)", "Pw0rd"))
    assert u.scheme == "postgres" and u.username == user and u.password == "Pw0rd", value
    assert u.hostname == "mon-kinsight-postgresql.obs.svc" and u.port == svc["spec"]["ports"][0]["port"], value
    assert u.path == f"/{db}", value

    # No password given: made once in the cluster by a hook Job, never by the chart.
    assert m.find("Secret", secret) is None, "the chart renders the password: it would change or sit in the values"
    jobs = [j for j in m.all("Job") if j["metadata"]["labels"]["app.kubernetes.io/component"] == "postgresql-password"]
    assert len(jobs) == 1, f"{len(jobs)} password Jobs"
    check_secret_job(m, jobs[0], "obs", secret, name="password", keys=["password"])

    # postgresql.password: the chart's Secret, kept on uninstall like the volume; no Job.
    m = chart.render("bundled postgresql, password", values={
        "server": {"replicas": 3}, "objectStorage": S3_VALUES, "postgresql": {"enabled": True, "password": "Zx-9.q_~"}})
    check_schemas(m)
    s = m.one("Secret", "kinsight-postgresql")
    assert s["stringData"] == {"password": "Zx-9.q_~"}, s
    assert s["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep", s["metadata"]
    assert not [j for j in m.all("Job") if j["metadata"]["name"] == "kinsight-postgresql-password"]
    # postgresql.existingSecret: neither.
    m = chart.render("bundled postgresql, existing secret", values={
        "server": {"replicas": 3}, "objectStorage": S3_VALUES, "postgresql": {"enabled": True, "existingSecret": "pg-pass"}})
    assert m.find("Secret", "kinsight-postgresql") is None and not [j for j in m.all("Job") if "postgresql" in j["metadata"]["name"]]
    ref = env_map(container(m.component("StatefulSet", "postgresql"), "postgresql"))["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "pg-pass", "key": "password"}, ref
    # A catalogue URL given as well: it wins; the bundled PostgreSQL is still installed.
    m = chart.render("bundled postgresql, explicit URL", values={
        "server": {"replicas": 3}, "objectStorage": S3_VALUES, "postgresql": {"enabled": True},
        "catalogue": {"existingSecret": "pg-url"}})
    ha_checks(m, 3, "s3://logs/k1", {"name": "pg-url", "key": "url"})
    assert "KINSIGHT_CATALOGUE_PASSWORD" not in env_map(container(m.component("StatefulSet", "server"), "server"))
    m.component("StatefulSet", "postgresql")
    # Agents only: no server, no PostgreSQL.
    m = chart.render("agents only, postgresql.enabled", values={"server": {"enabled": False, "url": "http://x:8080"}, "postgresql": {"enabled": True}})
    assert not m.all("StatefulSet"), [o["metadata"]["name"] for o in m.all("StatefulSet")]


def plain_ha_manifests(repo: Path, kubectl: str) -> Manifests:
    """deploy/kubernetes-ha as `kubectl apply -k` sees it. Kustomize drops comments: the source
    (for the checks of comments) is the files'."""
    d = repo / "deploy/kubernetes-ha"
    p = run([kubectl, "kustomize", str(d)])
    assert p.returncode == 0, f"kubectl kustomize {d}: {p.stderr}"
    files = sorted((repo / "deploy/kubernetes").glob("*.yaml")) + sorted(d.iterdir())
    return Manifests("deploy/kubernetes-ha", load_yaml_docs(p.stdout), "\n".join(f.read_text() for f in files))


def check_plain_ha(m: Manifests, plain: Manifests) -> None:
    ha_checks(m, 3, "s3://my-bucket/kinsight", {"name": "kinsight-catalogue", "key": "url"})
    c = container(m.component("StatefulSet", "server"), "server")
    assert c.get("envFrom") == [{"secretRef": {"name": "kinsight-object-store"}}], c.get("envFrom")
    # The base and the overlay: every object of deploy/kubernetes, plus the PodDisruptionBudget.
    key = lambda o: (o["kind"], o["metadata"]["name"])
    assert {key(o) for o in m.objects} == {key(o) for o in plain.objects} | {("PodDisruptionBudget", "kinsight-server")}
    for o in plain.objects:
        if o["kind"] != "StatefulSet":
            assert o in m.objects, f"the overlay changes {key(o)}"


BAD_VALUES = [
    ({"clusterName": "my cluster"}, "clusterName"),
    ({"clusterName": ""}, "clusterName"),
    ({"enhanced": "yes"}, "enhanced"),
    ({"enhance": True}, "enhance"),
    ({"logGroupPrefix": "kinsight"}, "logGroupPrefix"),
    ({"metricsCollectionInterval": 0}, "metricsCollectionInterval"),
    ({"agent": {"resources": {"requests": {"cpus": "1"}}}}, "cpus"),
    ({"objectStorage": {"enabled": True}}, "objectStorage.bucket is required"),
    ({"objectStorage": {"enabled": True, "bucket": "b", "accessKeyId": "AKID"}}, "objectStorage.secretAccessKey is required"),
    ({"tokens": {"adminToken": "a" * 40}}, "tokens.adminToken and tokens.ingestToken go together"),
    ({"agent": {"hostGroups": {"admGroup": 4}}}, "admGroup"),
    ({"agent": {"hostGroups": {"adm": "adm"}}}, "adm"),
    ({"server": {"tls": {"enabled": True}}}, "server.tls.secretName or server.tls.certManager.enabled"),
    ({"server": {"tls": {"enabled": True, "certManager": {"enabled": True}}}}, "server.tls.certManager.issuerRef.name is required"),
    ({"server": {"tls": {"enabled": "yes"}}}, "enabled"),
    ({"server": {"replicas": -1}}, "replicas"),
    ({"server": {"replicas": "3"}}, "replicas"),
    ({"catalogue": {"url": "mysql://x@y/z"}}, "catalogue"),
    ({"catalogue": {"url": "postgres://k:p@pg:5432/k", "existingSecret": "pg-url"}, "objectStorage": S3_VALUES},
     "catalogue.url and catalogue.existingSecret exclude each other"),
    ({"catalogue": {"existingSecret": "pg-url"}}, "set objectStorage.enabled=true and objectStorage.bucket too"),
    ({"server": {"persistence": {"enabled": False}}}, "server.persistence.enabled=false puts /data on an emptyDir"),
    ({"server": {"persistence": {"enabled": False}}, "objectStorage": S3_VALUES}, "server.persistence.enabled=false"),
    ({"postgresql": {"enabled": True, "password": "has space"}, "objectStorage": S3_VALUES}, "password"),
    ({"postgresql": {"enabled": True, "password": "p", "existingSecret": "s"}, "objectStorage": S3_VALUES},
     "postgresql.password and postgresql.existingSecret exclude each other"),
    ({"postgresql": {"enabled": True, "username": "Kin-sight"}, "objectStorage": S3_VALUES}, "username"),
]


def check_bad_values(chart: Chart) -> None:
    problems = []
    for values, needle in BAD_VALUES:
        p = chart.template(values=values)
        if p.returncode == 0:
            problems.append(f"{values} was accepted")
        elif needle not in p.stderr:
            problems.append(f"{values}: error does not name {needle!r}: {p.stderr.strip()[:300]}")
    assert not problems, "; ".join(problems)


def helm_checks(h: Harness, repo: Path, helm: str, plain: Manifests, plain_ha: Manifests | None,
                checker: list[str]) -> list[dict]:
    """Runs the chart's checks; returns the Jobs of the default rendering."""
    chart = Chart(helm, repo / "deploy/helm/kinsight")
    v = chart.version
    h.check(f"helm {v}: lint --strict", check_lint, chart)
    rendered: list[Manifests] = []
    h.check(f"helm {v}: renders with default values", lambda: rendered.append(chart.render("defaults")))
    if rendered:
        check_common(h, rendered[0], "kinsight", "kinsight-tokens", secret="generated", checker=checker)
        h.check(f"helm {v}: default values deploy exactly deploy/kubernetes (no drift)", check_no_drift, plain, rendered[0])
    h.check(f"helm {v}: clusterName, enhanced, logGroupPrefix, intervals, agent.config reach the config", check_values_reach_config, chart, checker)
    h.check(f"helm {v}: another release name and namespace keep every reference", check_release_names, chart, checker)
    h.check(f"helm {v}: objectStorage (existing secret, keys, none)", check_object_storage, chart)
    h.check(f"helm {v}: tokens (existing secret, explicit, generated by a hook Job)", check_tokens_values, chart)
    h.check(f"helm {v}: server.extraArgs and server.extraEnv reach the server", check_server_extra_settings, chart)
    h.check(f"helm {v}: two renders of the same values are byte-identical; no lookup, nothing random", check_stable_renders, chart)
    h.check(f"helm {v}: resources, persistence and tolerations", check_resources_and_tolerations, chart)
    h.check(f"helm {v}: agents only, shipping to an external server", check_external_server, chart, checker)
    h.check(f"helm {v}: optional docker socket mount is type Socket", check_docker_socket, chart)
    h.check(f"helm {v}: accelerated compute: the opt-in DCGM exporter behind a node-local Service, the pod-resources mount, "
            "the flag", check_accelerated, chart, checker)
    h.check(f"helm {v}: server.tls from an existing Secret (HTTPS server, probes, agents' CA and URL)", check_tls_existing_secret, chart, checker)
    h.check(f"helm {v}: server.tls from a cert-manager Certificate for the Service's names", check_tls_cert_manager, chart, checker)
    h.check(f"helm {v}: no TLS objects or flags unless server.tls.enabled", check_no_tls_by_default, chart)
    h.check(f"helm {v}: bad values fail with an error naming them", check_bad_values, chart)
    h.check(f"helm {v}: server.replicas=3 with S3 and a catalogue Secret (replicas, PDB, KINSIGHT_CATALOGUE from the Secret, "
            "replica id, /readyz, own volumes); catalogue.url; emptyDir; nothing of it by default", check_ha_chart, chart)
    h.check(f"helm {v}: server.replicas>1 without a catalogue or without S3 is refused, saying what to set", check_ha_refused, chart)
    h.check(f"helm {v}: postgresql.enabled renders a PostgreSQL StatefulSet, and the catalogue URL points at its Service",
            check_bundled_postgresql, chart)
    ha: list[Manifests] = []
    h.check(f"helm {v}: renders 3 replicas with S3 and a catalogue", lambda: ha.append(chart.render("3 replicas (shared checks)", values=HA_VALUES)))
    if ha:
        check_common(h, ha[0], "kinsight", "kinsight-tokens", secret="generated", checker=checker, replicas=3)
    pg: list[Manifests] = []
    h.check(f"helm {v}: renders 3 replicas with a bundled PostgreSQL", lambda: pg.append(chart.render("bundled postgresql (shared checks)", values={
        "server": {"replicas": 3}, "objectStorage": S3_VALUES, "postgresql": {"enabled": True}})))
    if pg:
        check_common(h, pg[0], "kinsight", "kinsight-tokens", secret="generated", checker=checker, replicas=3)
    if plain_ha is not None:
        h.check(f"helm {v}: replicas, S3 and catalogue Secret deploy exactly deploy/kubernetes-ha (no drift)",
                lambda: check_no_drift(plain_ha, chart.render("as kubernetes-ha", values=HA_PLAIN_VALUES), env_order=False))
    m = chart.render("agents only (shared checks)", values={"server": {"enabled": False, "url": "http://x:8080"}})
    check_common(h, m, "kinsight", "kinsight-tokens", secret="generated", checker=checker, server=False)
    return rendered[0].all("Job") if rendered else []


# --------------------------------------------------------------------------------------------
# Dockerfile


def stages(cmds) -> list[list]:
    out: list[list] = []
    for c in cmds:
        if c.cmd.upper() == "FROM":
            out.append([])
        if out:
            out[-1].append(c)
    return out


def check_dockerfile(repo: Path, hadolint: str, plain: Manifests, jobs: list[dict]) -> None:
    path = repo / "Dockerfile"
    p = run([hadolint, "--failure-threshold", "warning", str(path)])
    assert p.returncode == 0, f"hadolint: {p.stdout}{p.stderr}"
    cmds = dockerfile.parse_file(str(path))
    st = stages(cmds)
    assert len(st) >= 3, f"{len(st)} stages; expected ui, rust build and runtime"
    runs = " ".join(" ".join(c.value) for s in st for c in s if c.cmd.upper() == "RUN")
    assert re.search(r"cargo build[^&;]*--release[^&;]*--bin kinsight", runs), "no `cargo build --release --bin kinsight`"
    final = st[-1]
    base = final[0].value[0]
    assert "distroless/cc" in base or "slim" in base, f"runtime base {base} is not small"
    copies = [c for c in final if c.cmd.upper() == "COPY"]
    assert any(BINARY in c.value for c in copies), f"the runtime stage does not put the binary at {BINARY}"
    user = [c.value[0] for c in final if c.cmd.upper() == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root"), f"image user {user}"
    entry = [c for c in final if c.cmd.upper() == "ENTRYPOINT"]
    assert entry and list(entry[-1].value) == [BINARY], f"ENTRYPOINT {entry and entry[-1].value}"
    # The server (and the chart's tokens Job) run as the image's user; the agent overrides it
    # with root on purpose.
    uid = int(user[-1].split(":")[0])
    server = plain.component("StatefulSet", "server")["spec"]["template"]["spec"]["securityContext"]
    assert server["runAsUser"] == uid, f"server runs as {server['runAsUser']}, image user is {uid}"
    for job in jobs:
        run_as = job["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
        assert run_as == uid, f"Job {job['metadata']['name']} runs as {run_as}, image user is {uid}"
    ignore = (repo / ".dockerignore").read_text().split()
    for needed in ("target", ".git", "ui/node_modules"):
        assert any(i.strip("/") == needed for i in ignore), f".dockerignore does not exclude {needed}"


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, type=Path)
    ap.add_argument("--helm", action="append", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--hadolint", required=True)
    ap.add_argument("--kinsight", required=True, help="the kinsight binary (its `agent --check` validates configs)")
    a = ap.parse_args()
    checker = [a.kinsight, "agent", "--check", "--config"]
    h = Harness()
    print(f"config checker: {' '.join(checker)}")
    plain = plain_checks(h, a.repo, a.kubectl, checker)
    plain_ha = plain_ha_checks(h, a.repo, a.kubectl, plain, checker)
    jobs: list[dict] = []
    for helm in a.helm:
        jobs += helm_checks(h, a.repo, helm, plain, plain_ha, checker)
    h.check("Dockerfile: hadolint, stages, small non-root runtime, binary path of the manifests", check_dockerfile, a.repo, a.hadolint, plain, jobs)
    print(f"deploy: {h.passed} passed, {len(h.failed)} failed")
    sys.exit(1 if h.failed else 0)


if __name__ == "__main__":
    main()
