#!/usr/bin/env bash
# Local test stack without Docker: a single-node Apache Kafka (KRaft, broker+controller) and an
# Apicurio Registry (in-memory, Confluent-compatible API under /apis/ccompat/v7), both fetched
# from Maven Central through scripts/stack/pom.xml and run as plain Java processes.
#
#   bash scripts/stack.sh up          fetch (first time), start what is not running, wait until both answer
#   bash scripts/stack.sh down        stop both and delete their data (next `up` starts fresh)
#   bash scripts/stack.sh status      what runs (exit 0 only if both answer)
#   bash scripts/stack.sh kafka-stop  stop only the broker, keep its data
#   bash scripts/stack.sh kafka-start start the broker again on the same data, wait until it answers
#   bash scripts/stack.sh logs [kafka|registry]   last lines of the logs (LINES=100)
#   bash scripts/stack.sh kafka-tool CLASS ARGS...  run a Kafka CLI class with the stack's jars, e.g.
#        kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#        (also ConsoleProducer, consumer.ConsoleConsumer, GetOffsetShell, ... under org.apache.kafka.tools)
#
# Environment (defaults in brackets):
#   STACK_DIR [<repo>/.stack]  KAFKA_PORT [9092]  KAFKA_CONTROLLER_PORT [9093]
#   REGISTRY_PORT [8081]  REGISTRY_MANAGEMENT_PORT [9000]  STACK_TIMEOUT [120] seconds per wait
#   KAFKA_JAVA_HOME [JAVA_HOME or java on PATH; Java 17+]
#   REGISTRY_JAVA_HOME [first Java 21+ among JAVA_HOME, PATH, /usr/lib/jvm/*; Apicurio 3.3 needs 21]
#   KAFKA_HEAP_OPTS [-Xms256m -Xmx512m]  REGISTRY_HEAP_OPTS [-Xms128m -Xmx512m]
#   KAFKA_EXTRA_LISTENER [none] ADDRESS:PORT of a second plaintext listener, bound to and advertised
#     as that address (for clients that cannot reach loopback, such as the pods of
#     scripts/k8s-local.sh: make k8s-test restarts the broker with it); read when the broker starts
#
# Layout under $STACK_DIR: lib/kafka-<v>-<pom hash>/ (jars), lib/apicurio-registry-<v>-<pom hash>/ (app),
# conf/ (server.properties, log4j2.xml), data/kafka/ (broker data), kafka.pid, registry.pid,
# logs/kafka.log, logs/registry.log, logs/fetch.log (Maven output).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/scripts/stack/pom.xml"

STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
REGISTRY_MANAGEMENT_PORT="${REGISTRY_MANAGEMENT_PORT:-9000}"
STACK_TIMEOUT="${STACK_TIMEOUT:-120}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
REGISTRY_HEAP_OPTS="${REGISTRY_HEAP_OPTS:--Xms128m -Xmx512m}"

pom_prop() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$POM" | head -n1; }
KAFKA_VERSION="${KAFKA_VERSION:-$(pom_prop kafka.version)}"
APICURIO_VERSION="${APICURIO_VERSION:-$(pom_prop apicurio.version)}"

# download folders are named after the versions and a hash of the POM, so editing the POM
# (say, a log4j bump) fetches into new folders and never touches what a running process uses
POM_STAMP="$(sha256sum <"$POM" | cut -c1-10)"
LIB_DIR="$STACK_DIR/lib"
KAFKA_LIB="$LIB_DIR/kafka-$KAFKA_VERSION-$POM_STAMP"
REGISTRY_HOME="$LIB_DIR/apicurio-registry-$APICURIO_VERSION-$POM_STAMP"
CONF_DIR="$STACK_DIR/conf"
DATA_DIR="$STACK_DIR/data"
KAFKA_DATA="$DATA_DIR/kafka"
LOG_DIR="$STACK_DIR/logs"
KAFKA_LOG="$LOG_DIR/kafka.log"
REGISTRY_LOG="$LOG_DIR/registry.log"
FETCH_LOG="$LOG_DIR/fetch.log"
KAFKA_PID="$STACK_DIR/kafka.pid"
REGISTRY_PID="$STACK_DIR/registry.pid"
REGISTRY_URL="http://$HOST:$REGISTRY_PORT/apis/ccompat/v7"

say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Java selection

java_major() { # prints the major version of the given java binary, or nothing
  local v
  v="$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1)" || true
  case "$v" in 1.*) v="${v#1.}"; v="${v%%.*}" ;; esac
  printf '%s' "${v%%.*}"
}

find_java() { # find_java MIN_MAJOR [preferred JAVA_HOME...] -> path of a java binary
  local min="$1"; shift
  local cand=() h j m
  for h in "$@"; do [ -n "$h" ] && cand+=("$h/bin/java"); done
  [ -n "${JAVA_HOME:-}" ] && cand+=("$JAVA_HOME/bin/java")
  j="$(command -v java 2>/dev/null || true)"; [ -n "$j" ] && cand+=("$j")
  for h in /usr/lib/jvm/*/ /opt/java/*/ /opt/*jdk*/; do [ -x "$h/bin/java" ] && cand+=("${h%/}/bin/java"); done
  for j in "${cand[@]}"; do
    [ -x "$j" ] || continue
    m="$(java_major "$j")"
    if [ -n "$m" ] && [ "$m" -ge "$min" ] 2>/dev/null; then printf '%s' "$j"; return 0; fi
  done
  return 1
}

kafka_java() {
  find_java 17 "${KAFKA_JAVA_HOME:-}" || die "Kafka needs Java 17 or newer; none found (set KAFKA_JAVA_HOME)"
}
registry_java() {
  find_java 21 "${REGISTRY_JAVA_HOME:-}" \
    || die "Apicurio Registry $APICURIO_VERSION needs Java 21 or newer (its classes are Java 21 bytecode); none found among JAVA_HOME, PATH and /usr/lib/jvm/* (set REGISTRY_JAVA_HOME)"
}

# ---------------------------------------------------------------------------------------------
# Download (Maven Central through the ordinary mvn client; ~/.m2 is the download cache)

fetch() {
  local need=0
  [ -f "$KAFKA_LIB/.complete" ] || need=1
  [ -f "$REGISTRY_HOME/.complete" ] || need=1
  [ "$need" = 1 ] || return 0
  command -v mvn >/dev/null || die "mvn (Maven) is needed to fetch Kafka and Apicurio Registry from Maven Central"
  mkdir -p "$LIB_DIR" "$LOG_DIR"
  local tk="$KAFKA_LIB.tmp" tr="$REGISTRY_HOME.tmp"
  rm -rf "$tk" "$tr"
  say "fetching Kafka $KAFKA_VERSION and Apicurio Registry $APICURIO_VERSION from Maven Central (log: $FETCH_LOG)"
  local t0=$SECONDS
  if ! mvn -B -ntp -Dstyle.color=never -f "$POM" \
        dependency:copy-dependencies dependency:unpack@registry \
        -Dkafka.version="$KAFKA_VERSION" -Dapicurio.version="$APICURIO_VERSION" \
        -Dstack.kafka.dir="$tk" -Dstack.registry.dir="$tr" >"$FETCH_LOG" 2>&1; then
    tail -n 40 "$FETCH_LOG" >&2
    die "Maven could not fetch the stack (full output in $FETCH_LOG)"
  fi
  [ -f "$tr/quarkus-run.jar" ] || die "unpacked Apicurio Registry has no quarkus-run.jar (see $FETCH_LOG)"
  ls "$tk"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar was copied (see $FETCH_LOG)"
  touch "$tk/.complete" "$tr/.complete"
  rm -rf "$KAFKA_LIB" "$REGISTRY_HOME"
  mv "$tk" "$KAFKA_LIB"
  mv "$tr" "$REGISTRY_HOME"
  say "fetched in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------------------------
# Process helpers

pid_of() { # pid_of PIDFILE MARKER -> prints the pid if it is alive and its command line has MARKER
  local f="$1" marker="$2" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$marker" || return 1
  printf '%s' "$pid"
}

# started_alive PIDFILE: the process this script just started (and wrote to PIDFILE) still runs.
# While it starts, not by its command line: until setsid and nohup have exec'd java in the same
# process, its command line is still this script's, and a busy machine can show that moment
# (the same race failed container-engine.sh's start once on CI).
started_alive() {
  local pid
  pid="$(cat "$1" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

port_open() { timeout 2 bash -c ": </dev/tcp/$1/$2" 2>/dev/null; }

stop_pid() { # stop_pid NAME PIDFILE MARKER
  local name="$1" f="$2" marker="$3" pid
  if ! pid="$(pid_of "$f" "$marker")"; then
    rm -f "$f"; say "$name is not running"; return 0
  fi
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do # 30 s
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop within 30 s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
  say "$name stopped"
}

fail_with_log() { # fail_with_log MESSAGE LOGFILE
  say "$1"
  if [ -f "$2" ]; then
    printf -- '----- last 60 lines of %s -----\n' "$2" >&2
    tail -n 60 "$2" >&2
    printf -- '-----\n' >&2
  fi
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Kafka

KAFKA_MARKER="kafka.Kafka"

write_kafka_conf() {
  mkdir -p "$CONF_DIR" "$KAFKA_DATA" "$LOG_DIR"
  local extra=""
  if [ -n "${KAFKA_EXTRA_LISTENER:-}" ]; then
    [[ "$KAFKA_EXTRA_LISTENER" =~ ^[0-9.]+:[0-9]+$ ]] || die "KAFKA_EXTRA_LISTENER must be IPv4:PORT, not $KAFKA_EXTRA_LISTENER"
    extra=",EXTRA://$KAFKA_EXTRA_LISTENER"
  fi
  cat >"$CONF_DIR/server.properties" <<EOF
# generated by scripts/stack.sh: single-node KRaft, combined broker + controller
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT$extra
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT$extra
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,EXTRA:PLAINTEXT
log.dirs=$KAFKA_DATA
# the gateway creates its own topics
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.recovery.threads.per.data.dir=1
# message.max.bytes and the rest stay at the broker defaults on purpose
EOF
  cat >"$CONF_DIR/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/stack.sh: all broker logging to one file -->
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="$KAFKA_LOG" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.network.RequestChannel\$" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="WARN"/>
    <Root level="INFO">
      <AppenderRef ref="file"/>
    </Root>
  </Loggers>
</Configuration>
EOF
}

kafka_java_opts() {
  # shellcheck disable=SC2206
  local heap=($KAFKA_HEAP_OPTS)
  printf '%s\n' "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$CONF_DIR/log4j2.xml"
}

kafka_format() {
  [ -f "$KAFKA_DATA/meta.properties" ] && return 0
  local java cid
  java="$(kafka_java)"
  # cluster id: 16 random bytes, URL-safe base64 without padding (what `random-uuid` prints)
  while :; do
    cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [ "${cid:0:1}" != "-" ] && break
  done
  : >"$KAFKA_LOG"
  say "formatting Kafka storage (cluster id $cid)"
  mapfile -t opts < <(kafka_java_opts)
  if ! "$java" "${opts[@]}" -cp "$KAFKA_LIB/*" kafka.tools.StorageTool format --standalone \
        -t "$cid" -c "$CONF_DIR/server.properties" >>"$KAFKA_LOG" 2>&1; then
    fail_with_log "formatting Kafka storage failed" "$KAFKA_LOG"
  fi
}

kafka_running() { pid_of "$KAFKA_PID" "$KAFKA_MARKER" >/dev/null; }
kafka_answers() { kafka_running && port_open "$HOST" "$KAFKA_PORT"; }

kafka_launch() { # starts the broker in the background; prints the log offset the wait uses
  local java pid
  java="$(kafka_java)"
  if port_open "$HOST" "$KAFKA_PORT"; then
    die "port $HOST:$KAFKA_PORT is already in use by another process (not this stack's broker); set KAFKA_PORT"
  fi
  if port_open "$HOST" "$KAFKA_CONTROLLER_PORT"; then
    die "port $HOST:$KAFKA_CONTROLLER_PORT is already in use by another process; set KAFKA_CONTROLLER_PORT"
  fi
  write_kafka_conf
  kafka_format
  touch "$KAFKA_LOG"
  KAFKA_LOG_OFFSET="$(stat -c %s "$KAFKA_LOG")"
  mapfile -t opts < <(kafka_java_opts)
  printf '\n===== starting broker %s =====\n' "$(date -u +%FT%TZ)" >>"$KAFKA_LOG"
  setsid nohup "$java" "${opts[@]}" -cp "$KAFKA_LIB/*" kafka.Kafka "$CONF_DIR/server.properties" \
    >>"$KAFKA_LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$KAFKA_PID"
  say "Kafka $KAFKA_VERSION starting (pid $pid, java $("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.version = //p'), log $KAFKA_LOG)"
}

kafka_wait() { # waits for the port and the "Kafka Server started" line written after KAFKA_LOG_OFFSET
  local deadline=$((SECONDS + STACK_TIMEOUT))
  while :; do
    if ! started_alive "$KAFKA_PID"; then
      rm -f "$KAFKA_PID"
      fail_with_log "Kafka exited during start-up" "$KAFKA_LOG"
    fi
    if port_open "$HOST" "$KAFKA_PORT" \
       && tail -c +"$((KAFKA_LOG_OFFSET + 1))" "$KAFKA_LOG" | grep -q "Kafka Server started"; then
      say "Kafka answers on $HOST:$KAFKA_PORT"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail_with_log "Kafka did not answer on $HOST:$KAFKA_PORT within ${STACK_TIMEOUT} s" "$KAFKA_LOG"
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------------
# Apicurio Registry

REGISTRY_MARKER="quarkus-run.jar"

registry_running() { pid_of "$REGISTRY_PID" "$REGISTRY_MARKER" >/dev/null; }
registry_answers() { registry_running && curl -fsS -m 5 -o /dev/null "$REGISTRY_URL/subjects" 2>/dev/null; }

registry_launch() {
  local java pid
  java="$(registry_java)"
  mkdir -p "$LOG_DIR"
  if port_open "$HOST" "$REGISTRY_PORT"; then
    die "port $HOST:$REGISTRY_PORT is already in use by another process (not this stack's registry); set REGISTRY_PORT"
  fi
  : >"$REGISTRY_LOG"
  # shellcheck disable=SC2206
  local heap=($REGISTRY_HEAP_OPTS)
  # In-memory storage is the default (SQL storage on an in-memory H2 database), no
  # authentication is enabled by default; both are set explicitly all the same.
  # Confluent-compatible behaviour (/apis/ccompat/v7):
  #   legacy-id-mode=false: the schema id is Apicurio's *content id*, so one schema text has one id
  #     across subjects, as with Confluent (true would return per-version global ids).
  #   use-canonical-hash=true: lookups (POST /subjects/{s}) and re-registrations compare the
  #     canonical form of the schema, like Confluent, not its exact text (a whitespace-only
  #     difference already matched in a test without it; this covers the rest).
  #   global compatibility rule BACKWARD: Confluent's default (Apicurio's default is none).
  #   deletions enabled: DELETE /subjects/{s} works as with Confluent.
  (
    cd "$REGISTRY_HOME"
    exec setsid nohup "$java" "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true \
      -Dquarkus.http.host="$HOST" -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dquarkus.management.host="$HOST" -Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
      -Dquarkus.log.console.format='%d{yyyy-MM-dd HH:mm:ss,SSS} %-5p [%c{3.}] (%t) %s%e%n' \
      -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
      -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
      -Dquarkus.oidc.tenant-enabled=false \
      -Dapicurio.authn.basic-client-credentials.enabled=false \
      -Dapicurio.auth.role-based-authorization=false \
      -Dapicurio.auth.owner-only-authorization=false \
      -Dapicurio.ccompat.legacy-id-mode.enabled=false \
      -Dapicurio.ccompat.use-canonical-hash=true \
      -Dapicurio.rules.global.compatibility=BACKWARD \
      -Dapicurio.rest.deletion.artifact.enabled=true \
      -Dapicurio.rest.deletion.artifact-version.enabled=true \
      -Dapicurio.rest.deletion.group.enabled=true \
      -jar quarkus-run.jar >>"$REGISTRY_LOG" 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" >"$REGISTRY_PID"
  say "Apicurio Registry $APICURIO_VERSION starting (pid $pid, java $("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.version = //p'), log $REGISTRY_LOG)"
}

registry_wait() {
  local deadline=$((SECONDS + STACK_TIMEOUT))
  while :; do
    if ! started_alive "$REGISTRY_PID"; then
      rm -f "$REGISTRY_PID"
      fail_with_log "Apicurio Registry exited during start-up" "$REGISTRY_LOG"
    fi
    if curl -fsS -m 5 -o /dev/null "$REGISTRY_URL/subjects" 2>/dev/null; then
      say "Apicurio Registry answers at $REGISTRY_URL"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail_with_log "Apicurio Registry did not answer at $REGISTRY_URL/subjects within ${STACK_TIMEOUT} s" "$REGISTRY_LOG"
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
  local t0=$SECONDS start_k=0 start_r=0
  mkdir -p "$STACK_DIR" "$LOG_DIR"
  if kafka_answers; then say "Kafka already running (pid $(cat "$KAFKA_PID"))"
  elif kafka_running; then say "Kafka process is running but not answering yet; waiting"; KAFKA_LOG_OFFSET=0; start_k=2
  else start_k=1; fi
  if registry_answers; then say "Apicurio Registry already running (pid $(cat "$REGISTRY_PID"))"
  elif registry_running; then say "Apicurio Registry process is running but not answering yet; waiting"; start_r=2
  else start_r=1; fi
  if [ "$start_k" = 0 ] && [ "$start_r" = 0 ]; then
    say "stack is up: Kafka $HOST:$KAFKA_PORT, registry $REGISTRY_URL"
    return 0
  fi
  fetch
  [ "$start_k" = 1 ] && kafka_launch
  [ "$start_r" = 1 ] && registry_launch
  [ "$start_k" != 0 ] && kafka_wait
  [ "$start_r" != 0 ] && registry_wait
  say "stack is up in $((SECONDS - t0)) s: Kafka $HOST:$KAFKA_PORT, registry $REGISTRY_URL"
}

cmd_down() {
  stop_pid "Apicurio Registry" "$REGISTRY_PID" "$REGISTRY_MARKER"
  stop_pid "Kafka" "$KAFKA_PID" "$KAFKA_MARKER"
  rm -rf "$DATA_DIR" "$CONF_DIR"
  say "data removed ($DATA_DIR); downloads kept in $LIB_DIR"
}

cmd_kafka_stop() { stop_pid "Kafka" "$KAFKA_PID" "$KAFKA_MARKER"; }

cmd_kafka_start() {
  if kafka_answers; then say "Kafka already running (pid $(cat "$KAFKA_PID"))"; return 0; fi
  if kafka_running; then KAFKA_LOG_OFFSET=0; kafka_wait; return 0; fi
  fetch
  kafka_launch
  kafka_wait
}

cmd_status() {
  local rc=0 pid
  if pid="$(pid_of "$KAFKA_PID" "$KAFKA_MARKER")"; then
    if port_open "$HOST" "$KAFKA_PORT"; then echo "kafka:    running (pid $pid), answering on $HOST:$KAFKA_PORT"
    else echo "kafka:    running (pid $pid), NOT answering on $HOST:$KAFKA_PORT"; rc=1; fi
  else echo "kafka:    stopped"; rc=1; fi
  if pid="$(pid_of "$REGISTRY_PID" "$REGISTRY_MARKER")"; then
    if curl -fsS -m 5 -o /dev/null "$REGISTRY_URL/subjects" 2>/dev/null; then echo "registry: running (pid $pid), answering at $REGISTRY_URL"
    else echo "registry: running (pid $pid), NOT answering at $REGISTRY_URL"; rc=1; fi
  else echo "registry: stopped"; rc=1; fi
  echo "logs:     $KAFKA_LOG $REGISTRY_LOG"
  return "$rc"
}

cmd_logs() {
  local which="${1:-all}" n="${LINES:-100}"
  case "$which" in
    kafka) tail -n "$n" "$KAFKA_LOG" ;;
    registry) tail -n "$n" "$REGISTRY_LOG" ;;
    all) for f in "$KAFKA_LOG" "$REGISTRY_LOG"; do
           printf -- '===== %s =====\n' "$f"; [ -f "$f" ] && tail -n "$n" "$f"; done ;;
    *) die "logs: expected kafka, registry or nothing" ;;
  esac
}

cmd_kafka_tool() {
  [ "$#" -ge 1 ] || die "kafka-tool: expected a class name, e.g. org.apache.kafka.tools.TopicCommand"
  fetch
  local java; java="$(kafka_java)"
  mkdir -p "$CONF_DIR"
  cat >"$CONF_DIR/log4j2-tools.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="err" target="SYSTEM_ERR"><PatternLayout pattern="%p %m (%c)%n"/></Console></Appenders>
  <Loggers><Root level="WARN"><AppenderRef ref="err"/></Root></Loggers>
</Configuration>
EOF
  exec "$java" -Xmx256m -Dlog4j2.configurationFile="$CONF_DIR/log4j2-tools.xml" -cp "$KAFKA_LIB/*" "$@"
}

usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# sourced (scripts/cluster.sh reuses the settings and functions above): no command to run
(return 0 2>/dev/null) && return 0

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kafka-stop) cmd_kafka_stop ;;
  kafka-start) cmd_kafka_start ;;
  logs) shift; cmd_logs "$@" ;;
  kafka-tool) shift; cmd_kafka_tool "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
