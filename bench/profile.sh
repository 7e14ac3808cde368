#!/usr/bin/env bash
# A CPU profile of the release gateway under the harness's load: the first step of any speed work
# (issue 8). Starts `target/release/hookbridge serve` against the local stack (make stack-up),
# drives it with bench-load in a closed loop, records it with `perf record` while the load runs,
# and prints the hottest symbols, by shared object and by symbol.
#
#   bench/profile.sh [CONCURRENCY=256] [SECONDS=20] [BODY=small|256k|2m]
#
# HOOKBRIDGE_BIN measures another build (default: target/release/hookbridge); PROFILE_PERF=0
# runs the load without recording (bench/compare.sh uses that); PROFILE_CALLGRAPH=dwarf records
# unwound call stacks. make profile builds what it needs first. Output:
# bench/out/profile-<time>/ (perf.data, the reports, the gateway's log and the load generator's
# figures). Needs linux-perf
# (apt-get install linux-perf) and a perf_event_paranoid that lets this user profile its own
# processes (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."

concurrency="${1:-256}"
seconds="${2:-20}"
body="${3:-small}"
kafka="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
registry="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
target="${CARGO_TARGET_DIR:-target}/release"
out="bench/out/profile-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

gateway_bin="${HOOKBRIDGE_BIN:-$target/hookbridge}"
perf_on="${PROFILE_PERF:-1}"
[[ "$perf_on" == 0 ]] || command -v perf >/dev/null || { echo "profile: perf is missing (apt-get install linux-perf)" >&2; exit 2; }
for bin in "$gateway_bin" "$target/examples/bench-load"; do
  [[ -x "$bin" ]] || { echo "profile: $bin is missing (make profile builds it)" >&2; exit 2; }
done

# Two ports, held open together while chosen so they differ.
read -r http_port admin_port < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
token="profile-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
prefix="bench-profile-$$."

HOOKBRIDGE_KAFKA_BROKERS="$kafka" \
HOOKBRIDGE_SCHEMA_REGISTRY_URL="$registry" \
HOOKBRIDGE_SENDBIRD_APP_ID="A1B2C3D4-0000-4000-8000-000000000001" \
HOOKBRIDGE_SENDBIRD_API_TOKENS="$token" \
HOOKBRIDGE_HTTP_ADDR="127.0.0.1:$http_port" \
HOOKBRIDGE_ADMIN_ADDR="127.0.0.1:$admin_port" \
HOOKBRIDGE_TOPIC_PREFIX="$prefix" \
HOOKBRIDGE_LOG_LEVEL="${HOOKBRIDGE_LOG_LEVEL:-warn}" \
  "$gateway_bin" serve >"$out/hookbridge.log" 2>&1 &
gateway=$!
# The run's topics go when it ends (best effort): thousands of leftover partitions slow every
# later restart of the local broker.
cleanup() {
  kill -TERM "$gateway" 2>/dev/null || true
  wait "$gateway" 2>/dev/null || true
  bash scripts/stack.sh kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$kafka" \
    --delete --topic "${prefix//./\\.}.*" >/dev/null 2>&1 || true
}
trap cleanup EXIT

for _ in $(seq 1 240); do
  curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  kill -0 "$gateway" 2>/dev/null || { echo "profile: the gateway exited; see $out/hookbridge.log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null || { echo "profile: not ready; see $out/hookbridge.log" >&2; exit 1; }

# Load for longer than the recording, which starts after a few seconds of warm-up.
BENCH_SENDBIRD_API_TOKEN="$token" "$target/examples/bench-load" \
  --url "http://127.0.0.1:$http_port/webhooks/sendbird" \
  --concurrency "$concurrency" --duration "$((seconds + 6))" --body "$body" \
  --watch-pid "$gateway" --label profile >"$out/load.json" 2>"$out/load.log" &
load=$!
if [[ "$perf_on" == 0 ]]; then
  wait "$load"
  cat "$out/load.json"
  exit 0
fi
sleep 3
# PROFILE_CALLGRAPH=dwarf unwinds call stacks without frame pointers (larger perf.data): what
# `perf report --children` needs to charge time to the gateway's own functions.
if [[ "${PROFILE_CALLGRAPH:-fp}" == dwarf ]]; then graph=(--call-graph dwarf,16384); else graph=(-g); fi
perf record -F 1999 "${graph[@]}" -p "$gateway" -o "$out/perf.data" -- sleep "$seconds" 2>"$out/perf-record.log"
wait "$load"

# perf pads its columns (and may print a call graph); keep one trimmed line per entry.
report() {
  perf report -i "$out/perf.data" --no-children --stdio -g none --percent-limit 0.25 "$@" 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//' || true
}
report --sort dso >"$out/by-dso.txt"
report --sort symbol | head -60 >"$out/by-symbol.txt"
echo "== load ($concurrency connections, $body bodies) =="
cat "$out/load.json"
echo "== by shared object =="
cat "$out/by-dso.txt"
echo "== by symbol =="
cat "$out/by-symbol.txt"
echo "profile: $out"
