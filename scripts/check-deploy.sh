#!/usr/bin/env bash
# Proves the deployment artefacts are valid without a cluster and without a Docker engine:
#   * Helm chart helm/hookbridge: `helm lint --strict`; `helm template` with the defaults, with a
#     chart-created token Secret and with every optional part on, each render validated against
#     the Kubernetes OpenAPI schemas of several Kubernetes versions (kubernetes-validate --strict)
#     and the ServiceMonitor against the Prometheus Operator's Go API types; values with a wrong
#     type or an unknown top-level key must fail to render.
#   * docker-compose.yml: `docker-compose config -q` (Debian's docker-compose, offline), the
#     Compose Specification JSON schema, and refusal to start without the API token.
#   * tests/deploy/ (pytest): Dockerfile structure, compose shape, chart renders and NOTES.
#
# Installs what it needs when missing: helm (go install, into .tools/bin), the ServiceMonitor
# checker (go build, into .tools/bin), docker-compose (apt-get, needs root) and the Python venv
# .venv (requirements-test.txt + tests/deploy/requirements.txt). Runs unattended (CI=true, no TTY).
#
#   bash scripts/check-deploy.sh
#
# Environment: KUBE_VERSIONS (default "1.30.0 1.32.0 1.34.0 1.37.0"), HELM (a helm binary to use
# instead of .tools/bin/helm), PYTHON (interpreter for creating .venv, default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HELM_VERSION="v3.22.0"
# Kubernetes minor version of helm v3.22.0's client-go (v0.37): helm's default capabilities,
# normally set by helm's Makefile through ldflags (go install alone would leave v1.20).
HELM_K8S_MINOR="37"
KUBE_VERSIONS="${KUBE_VERSIONS:-1.30.0 1.32.0 1.34.0 1.37.0}"
TOOLS="$ROOT/.tools/bin"
VENV="$ROOT/.venv"
OUT="$ROOT/.tools/check-deploy"
CHART="$ROOT/helm/hookbridge"
VALUES="$ROOT/tests/deploy/values"

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$TOOLS" "$OUT"

STEP=0
CHECKED=()
say() { printf '\n==> %s\n' "$*"; }
ok() { CHECKED+=("$*"); printf '    ok: %s\n' "$*"; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
step() { STEP=$((STEP + 1)); say "[$STEP] $*"; }

started=$(date +%s)

# --------------------------------------------------------------------------------------------
step "tools"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi

HELM_BIN="${HELM:-$TOOLS/helm}"
if [ -z "${HELM:-}" ]; then
  have="$("$HELM_BIN" version --template '{{.Version}}' 2>/dev/null || true)"
  if [ "$have" != "$HELM_VERSION" ]; then
    command -v go >/dev/null 2>&1 || die "go is needed to build helm $HELM_VERSION (go install)"
    echo "    installing helm $HELM_VERSION with go install (first run: a few minutes; log: $OUT/helm-install.log)"
    GOBIN="$TOOLS" go install -ldflags "-s -w \
      -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$OUT/helm-install.log" 2>&1 \
      || { cat "$OUT/helm-install.log" >&2; die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION"; }
  fi
fi
echo "    helm: $("$HELM_BIN" version --short)"

command -v go >/dev/null 2>&1 || die "go is needed to build the ServiceMonitor checker"
(cd tests/deploy/crdcheck && go build -o "$TOOLS/crdcheck" . >"$OUT/crdcheck-build.log" 2>&1) \
  || { cat "$OUT/crdcheck-build.log" >&2; die "go build tests/deploy/crdcheck"; }
echo "    crdcheck: built from tests/deploy/crdcheck"

if ! command -v docker-compose >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "docker-compose is missing and installing it needs root: apt-get install docker-compose"
  echo "    installing Debian's docker-compose (apt-get)"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose; } \
    >"$OUT/apt-docker-compose.log" 2>&1 \
    || { cat "$OUT/apt-docker-compose.log" >&2; die "apt-get install docker-compose"; }
fi
echo "    docker-compose: $(docker-compose version --short 2>/dev/null || docker-compose version | head -1)"

if [ -f scripts/venv.sh ]; then
  bash scripts/venv.sh >"$OUT/venv.log" 2>&1 || { cat "$OUT/venv.log" >&2; die "scripts/venv.sh"; }
elif [ ! -x "$VENV/bin/python" ]; then
  echo "    creating $VENV from requirements-test.txt"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -r requirements-test.txt
fi
if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml, pytest' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q -r requirements-test.txt
fi
if ! "$VENV/bin/python" -c 'import dockerfile, check_jsonschema' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q -r tests/deploy/requirements.txt
fi
KV="$VENV/bin/kubernetes-validate"
echo "    kubernetes-validate: $("$KV" --version)"

# --------------------------------------------------------------------------------------------
step "helm lint --strict"

lint() { # lint NAME [values file]
  local name="$1"; shift
  local log="$OUT/lint-$name.log"
  if ! "$HELM_BIN" lint --strict "$CHART" "$@" >"$log" 2>&1; then
    cat "$log"; die "helm lint --strict ($name)"
  fi
  ok "helm lint --strict ($name)"
}
lint defaults
lint tokens-in-values -f "$VALUES/tokens-in-values.yaml"
lint all-on -f "$VALUES/all-on.yaml"

# --------------------------------------------------------------------------------------------
step "helm template + kubernetes-validate --strict (Kubernetes $KUBE_VERSIONS)"

rm -rf "$OUT/renders"; mkdir -p "$OUT/renders"
render() { # render NAME KUBE_VERSION [helm args...] -> file path on stdout
  local name="$1" kv="$2"; shift 2
  local file="$OUT/renders/$name-$kv.yaml"
  if ! "$HELM_BIN" template hb "$CHART" --namespace webhooks --kube-version "$kv" "$@" \
        >"$file" 2>"$file.err"; then
    cat "$file.err" >&2; die "helm template ($name, Kubernetes $kv)"
  fi
  echo "$file"
}
validate() { # validate FILE KUBE_VERSION
  local file="$1" kv="$2" log rc=0
  log="$file.validate"
  "$KV" --strict --kubernetes-version "$kv" "$file" >"$log" 2>&1 || rc=$?
  # kubernetes-validate only warns about a kind it has no schema for (and exits 0): the only
  # such kind here is the ServiceMonitor CRD, checked by crdcheck; anything else is an error
  if [ "$rc" -ne 0 ] || grep -v 'Couldn.t find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1' "$log" \
        | grep -qE '^(ERROR|WARN|FATAL)'; then
    cat "$log" >&2; die "kubernetes-validate --strict $file (Kubernetes $kv)"
  fi
  grep -c '^INFO .* passed' "$log"
}
for kv in $KUBE_VERSIONS; do
  for spec in "defaults:" "tokens-in-values:$VALUES/tokens-in-values.yaml" "all-on:$VALUES/all-on.yaml"; do
    name="${spec%%:*}"; vals="${spec#*:}"
    if [ -n "$vals" ]; then file="$(render "$name" "$kv" -f "$vals")"; else file="$(render "$name" "$kv")"; fi
    n="$(validate "$file" "$kv")"
    ok "$name on Kubernetes $kv: $n objects valid (strict)"
  done
  if ! "$TOOLS/crdcheck" "$OUT/renders/all-on-$kv.yaml" >"$OUT/renders/all-on-$kv.crdcheck" 2>&1 \
      || ! grep -q 'ServiceMonitor passed' "$OUT/renders/all-on-$kv.crdcheck"; then
    cat "$OUT/renders/all-on-$kv.crdcheck"; die "ServiceMonitor check (all-on, Kubernetes $kv)"
  fi
  ok "all-on on Kubernetes $kv: ServiceMonitor valid (monitoring.coreos.com/v1 types, strict)"
done
# every optional part is really on in the all-on renders, and off in the defaults
for kv in $KUBE_VERSIONS; do
  for kind in HorizontalPodAutoscaler PodDisruptionBudget ServiceMonitor NetworkPolicy Ingress; do
    grep -q "^kind: $kind\$" "$OUT/renders/all-on-$kv.yaml" || die "the all-on render ($kv) has no $kind"
    ! grep -q "^kind: $kind\$" "$OUT/renders/defaults-$kv.yaml" || die "the default render ($kv) has a $kind"
  done
done
ok "optional parts (HPA, PDB, ServiceMonitor, NetworkPolicy, Ingress): all in all-on, none in defaults"

# --------------------------------------------------------------------------------------------
step "values that must not render"

must_fail() { # must_fail NAME EXPECTED_TEXT values-file
  local name="$1" expect="$2" vals="$3" log="$OUT/must-fail-$1.log"
  if "$HELM_BIN" template hb "$CHART" --kube-version 1.37.0 -f "$vals" >"$log" 2>&1; then
    die "$name: rendered, but values.schema.json must reject it ($vals)"
  fi
  grep -qF -- "$expect" "$log" || { cat "$log"; die "$name: failed, but not with the schema error ($expect)"; }
  ok "$name is rejected: $(grep -F -- "$expect" "$log" | head -1 | sed 's/^ *//')"
}
must_fail wrong-type "at '/replicaCount': got string, want integer" "$VALUES/wrong-type.yaml"
must_fail unknown-key "additional properties 'replicas' not allowed" "$VALUES/unknown-key.yaml"

# --------------------------------------------------------------------------------------------
step "docker-compose.yml"

compose() { env -u DOCKER_HOST docker-compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" "$@"; }
if ! compose --env-file "$ROOT/deploy.env.example" config -q >"$OUT/compose.log" 2>&1; then
  cat "$OUT/compose.log"; die "docker-compose config -q"
fi
ok "docker-compose config -q ($(docker-compose version --short 2>/dev/null), with deploy.env.example)"
: >"$OUT/empty.env"
if env -u HOOKBRIDGE_SENDBIRD_APP_ID -u HOOKBRIDGE_SENDBIRD_API_TOKENS \
    docker-compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" --env-file "$OUT/empty.env" \
    config -q >"$OUT/compose-no-token.log" 2>&1; then
  die "docker-compose config accepted the file without HOOKBRIDGE_SENDBIRD_API_TOKENS"
fi
grep -q 'HOOKBRIDGE_SENDBIRD' "$OUT/compose-no-token.log" || { cat "$OUT/compose-no-token.log"; die "compose failed for another reason"; }
ok "docker-compose refuses to start without the Sendbird app id and API token"
if ! "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$ROOT/docker-compose.yml" >"$OUT/compose-schema.log" 2>&1; then
  cat "$OUT/compose-schema.log"; die "docker-compose.yml against the Compose Specification schema"
fi
ok "docker-compose.yml matches the Compose Specification schema (check-jsonschema)"

# --------------------------------------------------------------------------------------------
step "pytest tests/deploy"

HOOKBRIDGE_REQUIRE_TOOLS=1 HELM="$HELM_BIN" PATH="$PATH" \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/deploy || die "pytest tests/deploy"
ok "pytest tests/deploy"

# --------------------------------------------------------------------------------------------
say "check-deploy: all ${#CHECKED[@]} checks passed in $(( $(date +%s) - started ))s"
for c in "${CHECKED[@]}"; do printf '    - %s\n' "$c"; done
