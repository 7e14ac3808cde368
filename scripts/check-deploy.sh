#!/usr/bin/env bash
# Proves the deployment artefacts are valid without a cluster and without a Docker engine:
#   * Helm chart helm/hookbridge: `helm lint --strict`; `helm template` with the defaults, with a
#     chart-created token Secret, with every optional part on (CPU HPA) and with every optional
#     part on with the KEDA ScaledObject instead, each render validated against the Kubernetes
#     OpenAPI schemas of several Kubernetes versions (kubernetes-validate --strict) and the custom
#     resources (ServiceMonitor, PrometheusRule, HTTPRoute, ScaledObject) against their projects'
#     Go API types and CRDs from their Go modules (tests/deploy/crdcheck: strict decode, the
#     projects' own checks, the CRD's schema and CEL rules as the API server applies them); values
#     with a wrong type or an unknown top-level key, and HPA and KEDA together, must fail to render.
#   * Alert rules: the PrometheusRule's groups pass `promtool check rules`, and
#     `promtool test rules` runs tests/deploy/prometheus/hookbridge_rules_test.yaml on them.
#   * docker-compose.yml: `docker-compose config -q` (Debian's docker-compose, offline), the
#     Compose Specification JSON schema, and refusal to start without the API token.
#   * GitHub workflows (.github/workflows, which cannot run here): actionlint with shellcheck on
#     every run: script, failing on any finding; then again on a copy with each action's commit
#     pin written as its major tag, so actionlint's metadata of popular actions checks inputs and
#     outputs too.
#   * Runtime image contents (no image can be built here from upstream bases): every shared
#     library and symbol version the binary needs (readelf) is in gcr.io/distroless/cc-debian13
#     as docs/containers.md documents it, and its package in docker/runtime-base
#     (tests/deploy/runtime_libs.py).
#   * tests/deploy/ (pytest): Dockerfile structure, compose shape, chart renders and NOTES, the
#     release workflow's properties, .github/scripts/release.py (chart packaged with a tag's
#     version, pushed to a local OCI registry), the project files.
#
# Installs what it needs when missing: helm, actionlint and crane (go install, into .tools/bin,
# kept while their version matches), the custom resource checker (go build, into .tools/bin),
# docker-compose and shellcheck (apt-get, needs root) and the Python venv .venv
# (requirements-test.txt + tests/deploy/requirements.txt). promtool comes from Debian's
# prometheus package, installed by scripts/install-deps.sh; without it the script fails.
# Runs unattended (CI=true, no TTY).
#
#   bash scripts/check-deploy.sh
#
# Environment: KUBE_VERSIONS (default "1.30.0 1.32.0 1.34.0 1.37.0"), HELM (a helm binary to use
# instead of .tools/bin/helm), PROMTOOL (instead of promtool on PATH), PYTHON (interpreter for
# creating .venv, default python3), HOOKBRIDGE_BINARY (the binaries whose libraries are checked,
# separated by spaces; default target/release/hookbridge and target/debug/hookbridge, whichever
# exist, else a debug build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HELM_VERSION="v3.22.0"
# Kubernetes minor version of helm v3.22.0's client-go (v0.37): helm's default capabilities,
# normally set by helm's Makefile through ldflags (go install alone would leave v1.20).
HELM_K8S_MINOR="37"
# actionlint lints the GitHub workflows; crane serves the local OCI registry the chart push is
# tested against (go-containerregistry's `crane registry serve`)
ACTIONLINT_VERSION="v1.7.12"
CRANE_VERSION="v0.22.1"
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

command -v go >/dev/null 2>&1 || die "go is needed to build the custom resource checker"
# KEDA's API package pulls in controller-runtime and client-go: the first build takes minutes
echo "    building crdcheck from tests/deploy/crdcheck (first run: a few minutes; log: $OUT/crdcheck-build.log)"
(cd tests/deploy/crdcheck && go build -o "$TOOLS/crdcheck" . >"$OUT/crdcheck-build.log" 2>&1) \
  || { cat "$OUT/crdcheck-build.log" >&2; die "go build tests/deploy/crdcheck"; }
echo "    crdcheck: built from tests/deploy/crdcheck"
# The CustomResourceDefinitions crdcheck validates against as the API server would (schema,
# unknown fields, CEL rules), from the projects' Go modules: Gateway API and KEDA at the versions
# crdcheck's go.mod pins for their Go types; the Prometheus Operator's main module (which holds
# its CRDs) at v0.85.0, the newest version the Go module proxy serves and the CRD make k8s-test
# applies (its API types module is newer: pkg/apis/monitoring in go.mod).
PROM_OPERATOR_CRD_VERSION="0.85.0"
gw_dir="$(cd tests/deploy/crdcheck && go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)"
keda_dir="$(cd tests/deploy/crdcheck && go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)"
po_dir="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@v$PROM_OPERATOR_CRD_VERSION" \
  | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
CRD_FILES=("$gw_dir/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
           "$keda_dir/config/crd/bases/keda.sh_scaledobjects.yaml"
           "$po_dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
           "$po_dir/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml")
CRD_ARGS=()
for f in "${CRD_FILES[@]}"; do
  [ -f "$f" ] || die "CRD file missing: $f (go module download failed?)"
  CRD_ARGS+=(-crd "$f")
done
echo "    CRDs: HTTPRoute (gateway-api $(basename "$gw_dir" | cut -d@ -f2)), ScaledObject (keda $(basename "$keda_dir" | cut -d@ -f2)), ServiceMonitor and PrometheusRule (prometheus-operator v$PROM_OPERATOR_CRD_VERSION)"

PROMTOOL="${PROMTOOL:-$(command -v promtool || true)}"
[ -n "$PROMTOOL" ] && [ -x "$PROMTOOL" ] \
  || die "promtool is missing: it validates the chart's alert rules. Install Debian's prometheus package (bash scripts/install-deps.sh does: apt-get install --no-install-recommends prometheus), or set PROMTOOL"
echo "    promtool: $("$PROMTOOL" --version 2>&1 | head -1)"

if ! command -v docker-compose >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "docker-compose is missing and installing it needs root: apt-get install docker-compose"
  echo "    installing Debian's docker-compose (apt-get)"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose; } \
    >"$OUT/apt-docker-compose.log" 2>&1 \
    || { cat "$OUT/apt-docker-compose.log" >&2; die "apt-get install docker-compose"; }
fi
echo "    docker-compose: $(docker-compose version --short 2>/dev/null || docker-compose version | head -1)"

go_tool() { # go_tool NAME PACKAGE VERSION ARG: .tools/bin/NAME at VERSION (first line of `NAME ARG`)
  local name="$1" pkg="$2" version="$3" arg="$4" have
  have="$("$TOOLS/$name" "$arg" 2>/dev/null | head -1 || true)"
  if [ "$have" != "$version" ]; then
    command -v go >/dev/null 2>&1 || die "go is needed to build $name $version (go install)"
    echo "    installing $name $version with go install (log: $OUT/$name-install.log)"
    GOBIN="$TOOLS" go install "$pkg@$version" >"$OUT/$name-install.log" 2>&1 \
      || { cat "$OUT/$name-install.log" >&2; die "go install $pkg@$version"; }
    have="$("$TOOLS/$name" "$arg" 2>/dev/null | head -1 || true)"
    [ "$have" = "$version" ] || die "$name reports version '$have' after installing $version"
  fi
  echo "    $name: $have"
}
go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION" --version
go_tool crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION" version
ACTIONLINT="$TOOLS/actionlint"
CRANE="$TOOLS/crane"

# actionlint runs shellcheck on every run: script only when it finds one: make sure it does
if ! command -v shellcheck >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "shellcheck is missing and installing it needs root: apt-get install shellcheck"
  echo "    installing Debian's shellcheck (apt-get)"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends shellcheck; } \
    >"$OUT/apt-shellcheck.log" 2>&1 \
    || { cat "$OUT/apt-shellcheck.log" >&2; die "apt-get install shellcheck"; }
fi
SHELLCHECK="$(command -v shellcheck)"
echo "    shellcheck: $("$SHELLCHECK" --version | sed -n 's/^version: //p')"
command -v readelf >/dev/null 2>&1 || die "readelf (binutils) is missing: it reads the binary's shared libraries"

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
lint all-on-keda -f "$VALUES/all-on.yaml" -f "$VALUES/keda.yaml"

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
# custom resources: kubernetes-validate has no schema for them and only warns; crdcheck decodes
# them into their projects' Go types instead
CRDS="ServiceMonitor:monitoring.coreos.com/v1 PrometheusRule:monitoring.coreos.com/v1 HTTPRoute:gateway.networking.k8s.io/v1 ScaledObject:keda.sh/v1alpha1"
validate() { # validate FILE KUBE_VERSION
  local file="$1" kv="$2" log rc=0 crd skip=()
  log="$file.validate"
  "$KV" --strict --kubernetes-version "$kv" "$file" >"$log" 2>&1 || rc=$?
  # kubernetes-validate only warns about a kind it has no schema for (and exits 0): only the
  # custom resources in $CRDS may be such kinds (checked by crdcheck); anything else is an error
  for crd in $CRDS; do skip+=(-e "Couldn.t find schema for kind ${crd%%:*} with api version ${crd#*:} for kubernetes version"); done
  if [ "$rc" -ne 0 ] || grep -v "${skip[@]}" "$log" | grep -qE '^(ERROR|WARN|FATAL)'; then
    cat "$log" >&2; die "kubernetes-validate --strict $file (Kubernetes $kv)"
  fi
  grep -c '^INFO .* passed' "$log"
}
crdcheck() { # crdcheck FILE NAME KUBE_VERSION KIND...: every KIND is in FILE and passes
  local file="$1" name="$2" kv="$3" log kind; shift 3
  log="$file.crdcheck"
  "$TOOLS/crdcheck" "${CRD_ARGS[@]}" "$file" >"$log" 2>&1 || { cat "$log"; die "crdcheck ($name, Kubernetes $kv)"; }
  for kind in "$@"; do
    grep -q "^INFO .*: $kind .* passed (.*, strict decode, CRD schema and CEL rules)" "$log" \
      || { cat "$log"; die "crdcheck ($name, Kubernetes $kv): no $kind passed"; }
  done
  ok "$name on Kubernetes $kv: $* valid (Go API types, strict decode; CRD schema and CEL rules)"
}
VARIANTS=("defaults:" "tokens-in-values:$VALUES/tokens-in-values.yaml" "all-on:$VALUES/all-on.yaml"
          "all-on-keda:$VALUES/all-on.yaml,$VALUES/keda.yaml")
for kv in $KUBE_VERSIONS; do
  for spec in "${VARIANTS[@]}"; do
    name="${spec%%:*}"; vals="${spec#*:}"; args=()
    IFS=, read -r -a files <<<"$vals"
    for f in "${files[@]}"; do args+=(-f "$f"); done
    file="$(render "$name" "$kv" "${args[@]}")"
    n="$(validate "$file" "$kv")"
    ok "$name on Kubernetes $kv: $n objects valid (strict)"
  done
  crdcheck "$OUT/renders/all-on-$kv.yaml" all-on "$kv" ServiceMonitor PrometheusRule HTTPRoute
  crdcheck "$OUT/renders/all-on-keda-$kv.yaml" all-on-keda "$kv" ServiceMonitor PrometheusRule HTTPRoute ScaledObject
done
# every optional part is really on in the all-on renders, and off in the defaults
has_kind() { grep -q "^kind: $2\$" "$1"; }
for kv in $KUBE_VERSIONS; do
  on="$OUT/renders/all-on-$kv.yaml" keda="$OUT/renders/all-on-keda-$kv.yaml" off="$OUT/renders/defaults-$kv.yaml"
  for kind in HorizontalPodAutoscaler PodDisruptionBudget ServiceMonitor PrometheusRule NetworkPolicy Ingress HTTPRoute; do
    has_kind "$on" "$kind" || die "the all-on render ($kv) has no $kind"
    ! has_kind "$off" "$kind" || die "the default render ($kv) has a $kind"
  done
  has_kind "$keda" ScaledObject && ! has_kind "$keda" HorizontalPodAutoscaler \
    || die "the all-on-keda render ($kv) must have a ScaledObject and no HorizontalPodAutoscaler"
  ! has_kind "$on" ScaledObject && ! has_kind "$off" ScaledObject || die "a ScaledObject without keda.enabled ($kv)"
  grep -q '^    grafana_dashboard: "1"$' "$on" || die "the all-on render ($kv) has no dashboard ConfigMap"
  ! grep -q 'grafana_dashboard' "$off" || die "the default render ($kv) has a dashboard ConfigMap"
  grep -q '^      initContainers:$' "$on" && grep -q '^  name: hb-hookbridge-quota$' "$on" \
    || die "the all-on render ($kv) lacks the init container or the extra objects"
done
ok "optional parts (HPA or KEDA, PDB, ServiceMonitor, PrometheusRule, dashboard, NetworkPolicy, Ingress, HTTPRoute, extra objects): all in all-on, none in defaults"

# --------------------------------------------------------------------------------------------
step "values that must not render"

must_fail() { # must_fail NAME EXPECTED_TEXT values-file...
  local name="$1" expect="$2" log="$OUT/must-fail-$1.log" args=() f; shift 2
  for f in "$@"; do args+=(-f "$f"); done
  if "$HELM_BIN" template hb "$CHART" --kube-version 1.37.0 "${args[@]}" >"$log" 2>&1; then
    die "$name: rendered, but it must be rejected ($*)"
  fi
  grep -qF -- "$expect" "$log" || { cat "$log"; die "$name: failed, but not with the expected error ($expect)"; }
  ok "$name is rejected: $(grep -F -- "$expect" "$log" | head -1 | sed 's/^ *//' | cut -c1-160)"
}
must_fail wrong-type "at '/replicaCount': got string, want integer" "$VALUES/wrong-type.yaml"
must_fail unknown-key "additional properties 'replicas' not allowed" "$VALUES/unknown-key.yaml"
must_fail hpa-and-keda "autoscaling.enabled and keda.enabled are both true" \
  "$VALUES/all-on.yaml" "$VALUES/keda.yaml" "$VALUES/hpa-and-keda.yaml"

# --------------------------------------------------------------------------------------------
step "alert rules: promtool check rules + promtool test rules ($("$PROMTOOL" --version 2>&1 | head -1 | cut -d' ' -f3))"

PROM="$OUT/prometheus"
rm -rf "$PROM"; mkdir -p "$PROM"
extract() { "$VENV/bin/python" tests/deploy/prometheus/extract_rules.py "$@" >/dev/null || die "extract rules from $1"; }
# the all-on rules (labels, interval, overrides) and the defaults' rules
first_kv="$(echo $KUBE_VERSIONS | cut -d' ' -f1)"
extract "$OUT/renders/all-on-$first_kv.yaml" "$PROM/all-on-rules.yaml"
"$HELM_BIN" template hb "$CHART" --namespace webhooks --set prometheusRule.enabled=true \
  --show-only templates/prometheusrule.yaml >"$PROM/defaults-render.yaml" 2>"$PROM/defaults-render.err" \
  || { cat "$PROM/defaults-render.err"; die "helm template with prometheusRule.enabled=true"; }
extract "$PROM/defaults-render.yaml" "$PROM/defaults-rules.yaml"
for rules in all-on-rules defaults-rules; do
  "$PROMTOOL" check rules "$PROM/$rules.yaml" >"$PROM/$rules.check" 2>&1 || { cat "$PROM/$rules.check"; die "promtool check rules ($rules)"; }
  ok "promtool check rules ($rules): $(grep -o 'SUCCESS: [0-9]* rules found' "$PROM/$rules.check")"
done
# unit tests: the defaults' rules (summary annotations only) next to a copy of the test file
extract "$PROM/defaults-render.yaml" "$PROM/hookbridge-rules.yaml" --summary-only
cp tests/deploy/prometheus/hookbridge_rules_test.yaml "$PROM/"
"$PROMTOOL" test rules "$PROM/hookbridge_rules_test.yaml" >"$PROM/test.log" 2>&1 \
  || { cat "$PROM/test.log"; die "promtool test rules tests/deploy/prometheus/hookbridge_rules_test.yaml"; }
ok "promtool test rules: $(grep -c 'alertname:' tests/deploy/prometheus/hookbridge_rules_test.yaml) alert checks in $(grep -c '^  - interval:' tests/deploy/prometheus/hookbridge_rules_test.yaml) tests pass"

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
step "GitHub workflows: actionlint $ACTIONLINT_VERSION"

WORKFLOWS=(.github/workflows/*.yml)
[ -f "${WORKFLOWS[0]}" ] || die "no workflows in .github/workflows"
if ! "$ACTIONLINT" -shellcheck "$SHELLCHECK" "${WORKFLOWS[@]}" >"$OUT/actionlint.log" 2>&1; then
  cat "$OUT/actionlint.log"; die "actionlint ${WORKFLOWS[*]}"
fi
ok "actionlint: ${WORKFLOWS[*]}: no finding (expressions, permissions, job outputs, shellcheck on every run: script)"
# The pins are commit SHAs, which actionlint cannot look up: a copy with each pin written as the
# major tag of its comment (`@<sha> # v4.1.0` -> `@v4`) lets its metadata of popular actions
# check the inputs given and the outputs read.
TAGGED="$OUT/actionlint-tags"
rm -rf "$TAGGED"; mkdir -p "$TAGGED"
for f in "${WORKFLOWS[@]}"; do
  sed -E 's/@[0-9a-f]{40} # (v[0-9]+)(\.[0-9]+)*$/@\1/' "$f" >"$TAGGED/$(basename "$f")"
done
if grep -nE 'uses: .*@[0-9a-f]{40}' "$TAGGED"/*.yml; then die "an action pin without a '# vX.Y.Z' comment"; fi
if ! "$ACTIONLINT" -shellcheck "$SHELLCHECK" "$TAGGED"/*.yml >"$OUT/actionlint-tags.log" 2>&1; then
  cat "$OUT/actionlint-tags.log"; die "actionlint on the workflows with major-tag pins ($TAGGED)"
fi
ok "actionlint with the pins as major tags (inputs and outputs checked for the actions in actionlint's metadata): $(grep -ohE 'uses: [^ ]+@v[0-9]+' "$TAGGED"/*.yml | sed 's/uses: //' | sort -u | tr '\n' ' ')"

# --------------------------------------------------------------------------------------------
step "runtime image contents: the binary's shared libraries against gcr.io/distroless/cc-debian13 (docs/containers.md)"

BINARIES=()
if [ -n "${HOOKBRIDGE_BINARY:-}" ]; then
  read -r -a BINARIES <<<"$HOOKBRIDGE_BINARY"
else
  for b in target/release/hookbridge target/debug/hookbridge; do [ -x "$b" ] && BINARIES+=("$b"); done
  if [ "${#BINARIES[@]}" -eq 0 ]; then
    echo "    no target/release/hookbridge or target/debug/hookbridge: cargo build --locked --bin hookbridge (log: $OUT/cargo-build.log)"
    cargo build --locked --bin hookbridge >"$OUT/cargo-build.log" 2>&1 \
      || { tail -n 40 "$OUT/cargo-build.log" >&2; die "cargo build --locked --bin hookbridge"; }
    BINARIES=(target/debug/hookbridge)
  fi
fi
rc=0
"$VENV/bin/python" tests/deploy/runtime_libs.py "${BINARIES[@]}" >"$OUT/runtime-libs.log" 2>&1 || rc=$?
sed 's/^/    /' "$OUT/runtime-libs.log"
[ "$rc" -eq 0 ] || die "a library or symbol version the binary needs is not in the runtime base (docs/containers.md)"
for b in "${BINARIES[@]}"; do
  ok "$b (built $(date -r "$b" '+%F %H:%M')): every NEEDED library and symbol version is in cc-debian13, every package in runtime-base"
done

# --------------------------------------------------------------------------------------------
step "pytest tests/deploy"

HOOKBRIDGE_REQUIRE_TOOLS=1 HELM="$HELM_BIN" PROMTOOL="$PROMTOOL" CRDCHECK="$TOOLS/crdcheck" \
  ACTIONLINT="$ACTIONLINT" CRANE="$CRANE" SHELLCHECK="$SHELLCHECK" \
  CRDCHECK_CRDS="$(IFS=:; echo "${CRD_FILES[*]}")" PATH="$PATH" \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/deploy || die "pytest tests/deploy"
ok "pytest tests/deploy"

# --------------------------------------------------------------------------------------------
say "check-deploy: all ${#CHECKED[@]} checks passed in $(( $(date +%s) - started ))s"
for c in "${CHECKED[@]}"; do printf '    - %s\n' "$c"; done
