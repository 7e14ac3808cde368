#!/usr/bin/env bash
# The runtime image checked as a user would run it, against the local stack (scripts/stack.sh):
#   1. `hookbridge --version` runs in the image (read-only, no capabilities);
#   2. the image has no shell, runs as 65532:65532 and declares its HEALTHCHECK;
#   3. the gateway runs as 65532 with --read-only, --cap-drop ALL and no-new-privileges, on the host's
#      network (the local stack listens on and advertises 127.0.0.1), and its own HEALTHCHECK
#      (`hookbridge healthcheck`, http://127.0.0.1:9090/readyz) passes;
#   4. it serves a signed webhook (200 accepted), and the record is in Kafka, decoded with the
#      AvroDeserializer and the registry;
#   5. `docker stop` (SIGTERM) ends it with exit code 0 within the drain bound;
#   6. the image's size is printed.
#
#   bash scripts/image-check.sh            (make image-check starts the local stack first)
#
# Environment: HOOKBRIDGE_IMAGE [hookbridge], HOOKBRIDGE_VERSION [dev] (built by scripts/images.sh
# unless IMAGE_CHECK_BUILD=0), KAFKA_BOOTSTRAP_SERVERS [127.0.0.1:9092], SCHEMA_REGISTRY_URL
# [http://127.0.0.1:8081/apis/ccompat/v7], DRAIN_BOUND [20] seconds (the compose file's
# stop_grace_period; the gateway's shutdown_timeout is 15 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/.tools/image-check"
IMAGE="${HOOKBRIDGE_IMAGE:-hookbridge}:${HOOKBRIDGE_VERSION:-dev}"
KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
DRAIN_BOUND="${DRAIN_BOUND:-20}"
ADMIN_PORT=9090   # the image's HEALTHCHECK probes http://127.0.0.1:9090/readyz
NAME="hookbridge-image-check"
APP_ID="A1B2C3D4-0000-4000-8000-000000000001"
FIXTURE="tests/fixtures/sendbird/group_channel__message_send.json"
PY="$ROOT/.venv/bin/python"

say() { printf '[image-check] %s\n' "$*" >&2; }
die() { printf '[image-check] FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf '[image-check] ok: %s\n' "$*" >&2; }
mkdir -p "$OUT"
t_all=$SECONDS

bash scripts/container-engine.sh up
eval "$(bash scripts/container-engine.sh env)"
[ -x "$PY" ] || bash scripts/venv.sh >/dev/null
[ "${IMAGE_CHECK_BUILD:-1}" = 1 ] && bash scripts/images.sh hookbridge

port_open() { timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null; }
port_open "${KAFKA_BOOTSTRAP_SERVERS##*:}" || die "no Kafka at $KAFKA_BOOTSTRAP_SERVERS: run make stack-up first"
curl -fsS -m 5 -o /dev/null "$SCHEMA_REGISTRY_URL/subjects" || die "no registry at $SCHEMA_REGISTRY_URL: run make stack-up first"
docker rm -f "$NAME" >/dev/null 2>&1 || true
port_open "$ADMIN_PORT" && die "127.0.0.1:$ADMIN_PORT is in use; the image's HEALTHCHECK probes it (host network)"

# 1-2: the image itself
VERSION_OUT="$(docker run --rm --read-only --cap-drop ALL "$IMAGE" --version)" || die "hookbridge --version failed"
ok "hookbridge --version: $VERSION_OUT"
[ "$(docker image inspect -f '{{.Config.User}}' "$IMAGE")" = "65532:65532" ] || die "the image's USER is not 65532:65532"
ok "USER 65532:65532"
HC="$(docker image inspect -f '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}' "$IMAGE")"
if [ -z "$HC" ] && [ -n "${CONTAINERS_CONF:-}" ]; then
  # podman 4.3's Docker API leaves the health check out of an image's Config; podman shows it
  HC="$(podman image inspect --format '{{if .HealthCheck}}{{json .HealthCheck.Test}}{{end}}' "$IMAGE")"
fi
[ "$HC" = '["CMD","/usr/local/bin/hookbridge","healthcheck"]' ] || die "unexpected HEALTHCHECK: $HC"
ok "HEALTHCHECK $HC"
for sh in /bin/sh /bin/bash /usr/bin/sh /bin/busybox; do
  if docker run --rm --entrypoint "$sh" "$IMAGE" -c true >/dev/null 2>&1; then die "the image has a shell: $sh"; fi
done
ok "no shell in the image"

# 3: run it as a user would, hardened
HTTP_PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TOKEN="$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PREFIX="imagecheck-$(date +%s)-$RANDOM."
cleanup() { docker rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
docker run -d --name "$NAME" --network host \
  --user 65532:65532 --read-only --cap-drop ALL --security-opt no-new-privileges \
  -e HOOKBRIDGE_KAFKA_BROKERS="$KAFKA_BOOTSTRAP_SERVERS" \
  -e HOOKBRIDGE_SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL" \
  -e HOOKBRIDGE_HTTP_ADDR="127.0.0.1:$HTTP_PORT" -e HOOKBRIDGE_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" \
  -e HOOKBRIDGE_SENDBIRD_APP_ID="$APP_ID" -e HOOKBRIDGE_SENDBIRD_API_TOKENS="$TOKEN" \
  -e HOOKBRIDGE_TOPIC_PREFIX="$PREFIX" -e HOOKBRIDGE_TOPIC_PARTITIONS=1 -e HOOKBRIDGE_LOG_FORMAT=text \
  "$IMAGE" >/dev/null || die "docker run failed"
[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$NAME")" = "true 65532:65532" ] \
  || die "not read-only as 65532: $(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$NAME")"
t0=$SECONDS
while :; do
  state="$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$NAME")"
  [ "$state" = "running healthy" ] && break
  case "$state" in exited*|dead*) docker logs "$NAME" >&2 || true; die "the gateway exited: $state";; esac
  if [ $((SECONDS - t0)) -ge 90 ]; then docker logs "$NAME" >&2 || true; die "not healthy within 90 s ($state)"; fi
  sleep 1
done
ok "HEALTHCHECK passes (healthy after $((SECONDS - t0)) s)"
pid="$(docker inspect -f '{{.State.Pid}}' "$NAME")"
if [ -r "/proc/$pid/status" ]; then
  ids="$(awk '/^Uid:/ { u = $2 } /^Gid:/ { g = $2 } /^CapEff:/ { c = $2 } END { print u, g, c }' "/proc/$pid/status")"
  [ "$ids" = "65532 65532 0000000000000000" ] || die "the gateway runs with uid gid capabilities $ids"
  ok "the gateway process runs as uid 65532, gid 65532, with no capabilities"
fi

# 4: a signed webhook, and its record in Kafka
SIG="$("$PY" -c 'import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2], "rb").read(), hashlib.sha256).hexdigest())' "$TOKEN" "$FIXTURE")"
ANSWER="$(curl -sS -m 30 -w '\n%{http_code}' "http://127.0.0.1:$HTTP_PORT/webhooks/sendbird" \
  --data-binary @"$FIXTURE" -H 'content-type: application/json' -H "x-sendbird-signature: $SIG")"
CODE="${ANSWER##*$'\n'}"; BODY="${ANSWER%$'\n'*}"
[ "$CODE" = 200 ] || { docker logs "$NAME" 2>&1 | tail -n 30 >&2; die "the gateway answered $CODE: $BODY"; }
ok "signed webhook accepted: $BODY"
BAD="$(curl -sS -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/webhooks/sendbird" \
  --data-binary @"$FIXTURE" -H 'content-type: application/json' -H "x-sendbird-signature: $(printf '0%.0s' {1..64})")"
[ "$BAD" = 401 ] || die "a forged signature got $BAD, not 401"
ok "forged signature refused (401)"
# Read it back with a fresh consumer group. consume.py logs each step with its time and gives up
# by itself after 80 s, naming the step it was at. One failed read on a CI machine (stop 19)
# left no trace, so a failed first read is printed and tried once more with a new group: the
# record must still be there, so a missing record fails both reads.
read_back() {
  KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS" SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL" \
    timeout -k 5 100 "$PY" scripts/consume.py "${PREFIX}group_channel" --from-beginning --max 1 \
    --idle-seconds 45 --timeout-seconds 80 --verbose >"$OUT/consumed.json" 2>"$OUT/consume.err"
}
read_back || {
  rc=$?
  cat "$OUT/consume.err" >&2
  say "WARN: the first read-back failed (exit $rc, steps above); reading again with a new consumer group"
  read_back || {
    rc=$?
    cat "$OUT/consume.err" >&2
    docker logs "$NAME" 2>&1 | tail -n 20 >&2 || true
    die "consume.py failed twice (exit $rc; its steps are above, then the gateway's last log lines)"
  }
}
grep -q "\"event_id\": \"$(sha256sum "$FIXTURE" | cut -d' ' -f1)\"" "$OUT/consumed.json" \
  || die "the record was not read back (see $OUT/consumed.json)"
ok "record read back from ${PREFIX}group_channel with the AvroDeserializer"

# 5: docker stop -> SIGTERM -> drain -> exit 0 within the bound
t0="$(date +%s.%N)"
docker stop -t "$DRAIN_BOUND" "$NAME" >/dev/null
took="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
code="$(docker inspect -f '{{.State.ExitCode}}' "$NAME")"
[ "$code" = 0 ] || { docker logs "$NAME" 2>&1 | tail -n 20 >&2; die "docker stop: exit code $code after ${took} s"; }
awk -v t="$took" -v b="$DRAIN_BOUND" 'BEGIN { exit !(t < b) }' || die "docker stop took ${took} s, bound ${DRAIN_BOUND} s"
ok "docker stop: exit code 0 after ${took} s (bound ${DRAIN_BOUND} s)"
docker logs "$NAME" >"$OUT/gateway.log" 2>&1 || true

# 6: size
SIZE="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
ok "image $IMAGE: $(awk -v b="$SIZE" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1000000, b }')"
say "PASS in $((SECONDS - t_all)) s"
