#!/usr/bin/env bash
# docker-compose.yml for real: bring the whole stack up on the container engine, wait until every
# service is healthy, send a signed webhook to the published port, read the record back from the
# published Kafka port with confluent-kafka's AvroDeserializer through the published registry,
# then take the stack down with its volumes (also on failure).
#
#   bash scripts/compose-smoke.sh
#
# Uses the engine of scripts/container-engine.sh (started when needed) and the images of
# scripts/images.sh (built when needed; KAFKA_IMAGE / REGISTRY_IMAGE / HOOKBRIDGE_IMAGE select them,
# so with a real Docker engine and registry access SMOKE_LOCAL_IMAGES=0 runs upstream's images).
# Host ports are free ones picked at start, so the local stack (9092, 9093, 8081, 9000) and other
# runs are never in the way. The env file (with a random API token) is .tools/compose-smoke/smoke.env.
#
# Environment: COMPOSE [docker-compose], SMOKE_TIMEOUT [300] seconds to become healthy,
# SMOKE_LOCAL_IMAGES [1], SMOKE_KEEP [0] (1: leave the stack up for a look; take it down with
# `docker-compose -p hookbridge-smoke down -v`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/.tools/compose-smoke"
PROJECT="hookbridge-smoke"
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-300}"
SMOKE_LOCAL_IMAGES="${SMOKE_LOCAL_IMAGES:-1}"
SMOKE_KEEP="${SMOKE_KEEP:-0}"
APP_ID="A1B2C3D4-0000-4000-8000-000000000001"   # the app id of tests/fixtures/sendbird
FIXTURE="tests/fixtures/sendbird/group_channel__message_send.json"
PY="$ROOT/.venv/bin/python"

say() { printf '[compose-smoke] %s\n' "$*" >&2; }
die() { printf '[compose-smoke] FAIL: %s\n' "$*" >&2; exit 1; }
mkdir -p "$OUT"
t_all=$SECONDS
lap() { LAP="$((SECONDS - t_lap)) s"; t_lap=$SECONDS; }
t_lap=$SECONDS

bash scripts/container-engine.sh up
eval "$(bash scripts/container-engine.sh env)"
[ -x "$PY" ] || bash scripts/venv.sh >/dev/null
if [ "$SMOKE_LOCAL_IMAGES" = 1 ]; then
  bash scripts/images.sh kafka
  bash scripts/images.sh registry
  bash scripts/images.sh hookbridge
  eval "$(bash scripts/images.sh env)"
fi
lap; say "engine and images ready ($LAP)"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
KAFKA_HOST_PORT="$(free_port)"; REGISTRY_HOST_PORT="$(free_port)"
HOOKBRIDGE_HTTP_PORT="$(free_port)"; HOOKBRIDGE_ADMIN_PORT="$(free_port)"
TOKEN="$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ENV_FILE="$OUT/smoke.env"
(
  umask 077
  cat >"$ENV_FILE" <<EOF
# written by scripts/compose-smoke.sh (git-ignored): a throw-away app token and free host ports
HOOKBRIDGE_SENDBIRD_APP_ID=$APP_ID
HOOKBRIDGE_SENDBIRD_API_TOKENS=$TOKEN
KAFKA_HOST_PORT=$KAFKA_HOST_PORT
REGISTRY_HOST_PORT=$REGISTRY_HOST_PORT
HOOKBRIDGE_HTTP_PORT=$HOOKBRIDGE_HTTP_PORT
HOOKBRIDGE_ADMIN_PORT=$HOOKBRIDGE_ADMIN_PORT
HOOKBRIDGE_LOG_FORMAT=text
EOF
  if [ "$SMOKE_LOCAL_IMAGES" = 1 ]; then
    printf 'KAFKA_IMAGE=%s\nKAFKA_VERSION=%s\nREGISTRY_IMAGE=%s\nAPICURIO_VERSION=%s\nHOOKBRIDGE_IMAGE=%s\nHOOKBRIDGE_VERSION=%s\n' \
      "$KAFKA_IMAGE" "$KAFKA_VERSION" "$REGISTRY_IMAGE" "$APICURIO_VERSION" "$HOOKBRIDGE_IMAGE" "$HOOKBRIDGE_VERSION"
  fi >>"$ENV_FILE"
)

# the variables of the env file win over any of the same name in this shell
COMPOSE_CMD=(env -u KAFKA_IMAGE -u REGISTRY_IMAGE -u HOOKBRIDGE_IMAGE -u KAFKA_VERSION -u APICURIO_VERSION
  -u HOOKBRIDGE_VERSION -u HOOKBRIDGE_SENDBIRD_APP_ID -u HOOKBRIDGE_SENDBIRD_API_TOKENS
  "${COMPOSE:-docker-compose}" --ansi never -p "$PROJECT" --project-directory "$ROOT"
  -f "$ROOT/docker-compose.yml" --env-file "$ENV_FILE")
compose() { "${COMPOSE_CMD[@]}" "$@"; }

finish() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    say "logs of the stack (last 60 lines each):"
    compose logs --no-color --tail 60 >&2 2>&1 || true
    compose ps >&2 2>&1 || true
  fi
  if [ "$SMOKE_KEEP" = 1 ]; then
    say "stack left up (SMOKE_KEEP=1): docker-compose -p $PROJECT --env-file $ENV_FILE down -v"
  else
    compose down -v --remove-orphans -t 20 >"$OUT/down.log" 2>&1 || { cat "$OUT/down.log" >&2; rc=1; }
    say "down -v done"
  fi
  exit "$rc"
}
trap finish EXIT

# a stack left over by an interrupted run
compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true

say "docker-compose up -d (kafka :$KAFKA_HOST_PORT, registry :$REGISTRY_HOST_PORT, hookbridge :$HOOKBRIDGE_HTTP_PORT/:$HOOKBRIDGE_ADMIN_PORT)"
# up waits for kafka and registry to be healthy (depends_on) before it starts the gateway
timeout "$SMOKE_TIMEOUT" "${COMPOSE_CMD[@]}" up -d --no-build \
  || die "docker-compose up -d failed or did not finish within ${SMOKE_TIMEOUT} s"
lap; say "up returned ($LAP)"

deadline=$((SECONDS + SMOKE_TIMEOUT))
for svc in kafka registry hookbridge; do
  id="$(compose ps -q "$svc")"
  [ -n "$id" ] || die "no container for service $svc"
  while :; do
    state="$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")"
    [ "$state" = "running healthy" ] && break
    case "$state" in exited*|dead*) die "$svc: $state";; esac
    [ "$SECONDS" -lt "$deadline" ] || die "$svc is not healthy within ${SMOKE_TIMEOUT} s ($state)"
    sleep 1
  done
  say "$svc: healthy"
done
lap; say "all services healthy ($LAP)"

# a signed webhook to the published port: HMAC-SHA256 of the raw body, keyed with the API token
SIG="$("$PY" -c 'import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2], "rb").read(), hashlib.sha256).hexdigest())' "$TOKEN" "$FIXTURE")"
ANSWER="$(curl -sS -m 30 -w '\n%{http_code}' "http://127.0.0.1:$HOOKBRIDGE_HTTP_PORT/webhooks/sendbird" \
  --data-binary @"$FIXTURE" -H 'content-type: application/json' -H "x-sendbird-signature: $SIG")"
CODE="${ANSWER##*$'\n'}"; BODY="${ANSWER%$'\n'*}"
[ "$CODE" = 200 ] || die "the gateway answered $CODE: $BODY"
EVENT_ID="$(printf '%s' "$BODY" | "$PY" -c 'import json, sys; d = json.load(sys.stdin); assert d["status"] == "accepted", d; print(d["event_id"])')"
WANT_ID="$(sha256sum "$FIXTURE" | cut -d' ' -f1)"
[ "$EVENT_ID" = "$WANT_ID" ] || die "event_id $EVENT_ID is not the body's SHA-256 $WANT_ID"
lap; say "webhook accepted: $BODY ($LAP)"

# read it back as a consumer team would: published Kafka port + AvroDeserializer + published registry
KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_HOST_PORT" \
SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_HOST_PORT/apis/ccompat/v7" \
  timeout -k 5 130 "$PY" scripts/consume.py sendbird.group_channel --from-beginning --max 1 --idle-seconds 60 \
  --timeout-seconds 110 --verbose >"$OUT/consumed.json" 2>"$OUT/consume.err" || {
  rc=$?
  cat "$OUT/consume.err" >&2
  die "consume.py failed (exit $rc; its steps are above)"
}
"$PY" - "$OUT/consumed.json" "$EVENT_ID" "$FIXTURE" <<'EOF' || die "the record read back does not match (see $OUT/consumed.json)"
import json, sys
text = open(sys.argv[1]).read()
record, _ = json.JSONDecoder().raw_decode(text.strip())
value = record["value"]
assert record["topic"] == "sendbird.group_channel", record["topic"]
assert value["event_id"] == sys.argv[2], value["event_id"]
assert record["headers"]["hookbridge-event-id"] == sys.argv[2]
assert value["category"] == "group_channel:message_send", value["category"]
assert value["raw_body"] == open(sys.argv[3], encoding="utf-8").read(), "raw_body differs from the body sent"
assert record["key"] == value["channel_url"], (record["key"], value["channel_url"])
print(f"[compose-smoke] consumed {record['topic']}[{record['partition']}]@{record['offset']} "
      f"key={record['key']} event_id={value['event_id']} (Avro, schema from the registry)", file=sys.stderr)
EOF
lap; say "record read back ($LAP)"
say "PASS in $((SECONDS - t_all)) s"
