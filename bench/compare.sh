#!/usr/bin/env bash
# Two gateway builds side by side on this machine, alternating, so both see the same noise:
# closed-loop throughput and CPU per request of each, and their ratios (issue 8: compare as
# ratios measured in one run).
#
#   bench/compare.sh BINARY_A BINARY_B [ROUNDS=3] [CONCURRENCY=256] [SECONDS=15] [BODY=small]
#
# Each round runs A then B (B then A on odd rounds) through bench/profile.sh with PROFILE_PERF=0.
# Extra environment (TOKIO_WORKER_THREADS, HOOKBRIDGE_KAFKA_PROPERTIES...) reaches both; give
# A_ENV / B_ENV ("NAME=value ...") to set something for one side only.
set -euo pipefail
cd "$(dirname "$0")/.."
a="$1"; b="$2"; rounds="${3:-3}"; concurrency="${4:-256}"; seconds="${5:-15}"; body="${6:-small}"

run() { # binary, extra env
  local bin="$1" extra=()
  read -r -a extra <<<"$2"
  env "${extra[@]}" HOOKBRIDGE_BIN="$bin" PROFILE_PERF=0 bash bench/profile.sh "$concurrency" "$seconds" "$body" | tail -n 1
}

results=()
for round in $(seq 1 "$rounds"); do
  order=(a b); (( round % 2 == 0 )) && order=(b a)
  for side in "${order[@]}"; do
    if [[ "$side" == a ]]; then line="$(run "$a" "${A_ENV:-}")"; else line="$(run "$b" "${B_ENV:-}")"; fi
    results+=("$side $line")
  done
done

printf '%s\n' "${results[@]}" >"${TMPDIR:-/tmp}/compare-$$.txt"
python3 - "${TMPDIR:-/tmp}/compare-$$.txt" <<'PY'
import json, statistics, sys
rows = {"a": [], "b": []}
for line in open(sys.argv[1]):
    side, doc = line.split(" ", 1)
    r = json.loads(doc)
    cpu_us = r["process"]["cpu_s"] / max(r["ok"], 1) * 1e6
    p99 = r["latency"]["p99_ms"]
    rows[side].append((r["throughput"], cpu_us, p99))
    print(f"{side}: {r['throughput']:9.1f} req/s  {cpu_us:6.1f} us CPU/req  p99 {p99:8.2f} ms  errors {r['errors']}")
med = {s: [statistics.median(c) for c in zip(*v)] for s, v in rows.items()}
a, b = med["a"], med["b"]
print(f"median A: {a[0]:.1f} req/s, {a[1]:.1f} us/req, p99 {a[2]:.2f} ms; B: {b[0]:.1f} req/s, {b[1]:.1f} us/req, p99 {b[2]:.2f} ms")
print(f"B/A: throughput {b[0] / a[0]:.3f}, CPU per request {b[1] / a[1]:.3f}, p99 {b[2] / a[2]:.3f}")
PY
rm -f "${TMPDIR:-/tmp}/compare-$$.txt"
