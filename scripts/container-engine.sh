#!/usr/bin/env bash
# A Docker-API container engine for this machine, when it has none: podman + runc from Debian,
# serving the Docker API on a socket under .tools/engine/, with health checks driven by a loop
# (podman runs them from systemd timers, and there is no systemd here).
#
#   bash scripts/container-engine.sh up        install what is missing, start the API service and
#                                              the health-check driver, wait until `docker info` answers
#   bash scripts/container-engine.sh down      remove every container of this engine's storage, stop
#                                              the service and the driver (images are kept: they are the cache)
#   bash scripts/container-engine.sh env       print `export DOCKER_HOST=...` (eval it), plus the podman
#                                              settings, so that docker, docker-compose and podman all use it
#   bash scripts/container-engine.sh status    what runs (exit 0 only if the engine answers)
#   bash scripts/container-engine.sh podman ARGS...   run podman with this engine's settings
#
# A machine that already has a working Docker engine (`docker info` answers through DOCKER_HOST or
# the default socket) keeps it: `up` changes nothing and `env` prints that engine's DOCKER_HOST.
# HOOKBRIDGE_ENGINE=podman forces the podman engine even then; HOOKBRIDGE_ENGINE=docker refuses
# to start podman.
#
# Everything podman keeps lives under $ENGINE_DIR (default <repo>/.tools/engine, git-ignored):
#   containers.conf, storage.conf, registries.conf   (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
#                                                    CONTAINERS_REGISTRIES_CONF; /etc is not touched)
#   storage/ (images, containers, volumes: storage driver vfs), run/ (runroot), networks/,
#   docker.sock (the API), service.pid, service.log, healthchecks.pid, healthchecks.log
#
# Settings this machine needs (found by hand, see issue 11): runtime runc (crun refuses the hybrid
# cgroups), cgroup_manager cgroupfs, storage driver vfs, default ulimits below the hard limits
# (podman's defaults exceed them, and runc then refuses to start the container).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE_DIR="${ENGINE_DIR:-$ROOT/.tools/engine}"
SOCK="$ENGINE_DIR/docker.sock"
SERVICE_PID="$ENGINE_DIR/service.pid"
SERVICE_LOG="$ENGINE_DIR/service.log"
HC_PID="$ENGINE_DIR/healthchecks.pid"
HC_LOG="$ENGINE_DIR/healthchecks.log"
ENGINE_TIMEOUT="${ENGINE_TIMEOUT:-60}"
# packages: the engine (podman pulls in conmon, containers-common), the OCI runtime, the
# network stack (netavark + aardvark-dns for compose's service names, iptables for -p),
# debootstrap (base images for scripts/images.sh) and Debian's docker-compose 1.29
PACKAGES=(podman runc netavark aardvark-dns iptables catatonit debootstrap docker-compose curl)

say() { printf '[engine] %s\n' "$*" >&2; }
die() { printf '[engine] ERROR: %s\n' "$*" >&2; exit 1; }

# A unix socket path is limited to 107 bytes; a deep checkout falls back to /run.
if [ "${#SOCK}" -gt 100 ]; then
  SOCK="/run/hookbridge-engine-$(printf '%s' "$ENGINE_DIR" | sha256sum | cut -c1-12)/docker.sock"
fi
OUR_HOST="unix://$SOCK"

podman_env() {
  export CONTAINERS_CONF="$ENGINE_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$ENGINE_DIR/storage.conf"
  export CONTAINERS_REGISTRIES_CONF="$ENGINE_DIR/registries.conf"
}

pid_alive() { # pid_alive PIDFILE MARKER -> prints pid if alive and its command line has MARKER
  local f="$1" marker="$2" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$marker" || return 1
  printf '%s' "$pid"
}

our_engine_answers() {
  [ -S "$SOCK" ] && curl -fsS -m 5 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1
}

# Prints the DOCKER_HOST of a working engine that is not ours, or fails.
other_engine() {
  command -v docker >/dev/null 2>&1 || return 1
  if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "$OUR_HOST" ]; then
    if timeout 20 docker info >/dev/null 2>&1; then printf '%s' "$DOCKER_HOST"; return 0; fi
    return 1
  fi
  local s
  for s in /var/run/docker.sock /run/docker.sock; do
    if [ -S "$s" ] && [ "$s" != "$SOCK" ] \
       && DOCKER_HOST="unix://$s" timeout 20 docker info >/dev/null 2>&1; then
      printf 'unix://%s' "$s"; return 0
    fi
  done
  return 1
}

use_other_engine() { # succeeds (and prints its host) when an existing engine is to be used
  [ "${HOOKBRIDGE_ENGINE:-auto}" = podman ] && return 1
  other_engine
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); installing them needs root: apt-get install ${missing[*]}"
  say "installing ${missing[*]} (apt-get; log $ENGINE_DIR/apt.log)"
  mkdir -p "$ENGINE_DIR"
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$ENGINE_DIR/apt.log" 2>&1 || { tail -n 30 "$ENGINE_DIR/apt.log" >&2; die "apt-get install ${missing[*]}"; }
}

ulimit_value() { # ulimit_value HARD CAP -> a value below the hard limit, at most CAP
  local hard="$1" cap="$2" v
  if [ "$hard" = unlimited ]; then printf '%s' "$cap"; return; fi
  v=$(( hard / 2 ))
  [ "$v" -gt "$cap" ] && v="$cap"
  [ "$v" -lt 1024 ] && v=$(( hard > 1024 ? 1024 : hard ))
  printf '%s' "$v"
}

write_if_changed() { # write_if_changed FILE (content on stdin)
  local f="$1" tmp
  tmp="$(mktemp "$f.XXXXXX")"
  cat >"$tmp"
  if [ -f "$f" ] && cmp -s "$tmp" "$f"; then rm -f "$tmp"; else mv "$tmp" "$f"; fi
}

write_config() {
  mkdir -p "$ENGINE_DIR"/{storage,run,networks,tmp,events} "$(dirname "$SOCK")"
  local nofile nproc
  nofile="$(ulimit_value "$(ulimit -Hn)" 65536)"
  nproc="$(ulimit_value "$(ulimit -Hu)" 16384)"
  write_if_changed "$ENGINE_DIR/storage.conf" <<EOF
# written by scripts/container-engine.sh
[storage]
driver = "vfs"
runroot = "$ENGINE_DIR/run"
graphroot = "$ENGINE_DIR/storage"
EOF
  write_if_changed "$ENGINE_DIR/containers.conf" <<EOF
# written by scripts/container-engine.sh: podman 4.3 + runc on a machine without systemd and with
# hybrid cgroups (v1 controllers)
[containers]
# podman's defaults (nofile 1048576, nproc 4194304) exceed this machine's hard limits
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"
# Kafka's CLI tools and the JVMs need no more than this; keeps compose healthchecks honest
pids_limit = 4096

[engine]
runtime = "runc"
# Docker waits 10 s after SIGTERM by default
stop_timeout = 10
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$ENGINE_DIR/events/events.log"
tmp_dir = "$ENGINE_DIR/tmp"
# no image registry is reachable here: never try one for an image that exists locally
pull_policy = "missing"

[network]
network_backend = "netavark"
network_config_dir = "$ENGINE_DIR/networks"
EOF
  write_if_changed "$ENGINE_DIR/registries.conf" <<'EOF'
# written by scripts/container-engine.sh
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
}

start_service() {
  local pid
  if pid="$(pid_alive "$SERVICE_PID" "system service")" && our_engine_answers; then
    say "API service already running (pid $pid, $OUR_HOST)"
    return 0
  fi
  [ -n "${pid:-}" ] && { kill -TERM "$pid" 2>/dev/null || true; sleep 1; }
  rm -f "$SOCK"
  podman_env
  printf '\n===== %s podman system service =====\n' "$(date -u +%FT%TZ)" >>"$SERVICE_LOG"
  setsid nohup podman system service --time=0 "$OUR_HOST" >>"$SERVICE_LOG" 2>&1 </dev/null &
  local child=$!
  echo "$child" >"$SERVICE_PID"
  local deadline=$((SECONDS + ENGINE_TIMEOUT))
  until our_engine_answers; do
    # The child itself, not its command line: until it has exec'd podman (setsid and nohup
    # exec in the same process), its command line is still this script's, and on a busy
    # machine that moment is long enough to be seen.
    kill -0 "$child" 2>/dev/null \
      || { tail -n 30 "$SERVICE_LOG" >&2; die "podman system service exited (log $SERVICE_LOG)"; }
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$SERVICE_LOG" >&2; die "the API did not answer on $SOCK within ${ENGINE_TIMEOUT} s"; }
    sleep 0.3
  done
  say "API service started (pid $(cat "$SERVICE_PID"), $OUR_HOST)"
}

# ---------------------------------------------------------------------------------------------
# Health-check driver: runs `podman healthcheck run` for each running container that has a health
# check, every `min(interval, 2 s)` until it is healthy and every `interval` afterwards, one check
# per container at a time. Docker's own daemon does this by itself; podman leaves it to systemd.

duration_s() { # duration_s GO_DURATION (10s, 1m30s, 500ms, 0s) -> whole seconds, at least 1
  local d="$1" total=0 n u
  while [[ "$d" =~ ^([0-9.]+)(h|ms|m|s|us|ns)(.*)$ ]]; do
    n="${BASH_REMATCH[1]%%.*}"; u="${BASH_REMATCH[2]}"; d="${BASH_REMATCH[3]}"
    case "$u" in h) total=$((total + n * 3600));; m) total=$((total + n * 60));; s) total=$((total + n));; esac
  done
  [ "$total" -ge 1 ] || total=1
  printf '%s' "$total"
}

hc_loop() {
  podman_env
  declare -A next=() every=()
  local now id status interval
  local containers="$ENGINE_DIR/storage/vfs-containers/containers.json"
  while :; do
    # no container at all (the storage's list is empty): nothing to ask podman
    if [ ! -s "$containers" ] || [ "$(head -c 2 "$containers")" = "[]" ]; then sleep 1; continue; fi
    now="$(date +%s)"
    # one `podman ps` per tick; a container's interval is read once
    while IFS='|' read -r id status; do
      case "$status" in
        *"(healthy)"*) ;;
        *"(starting)"*|*"(unhealthy)"*) ;;
        *) continue ;;
      esac
      if [ -z "${every[$id]:-}" ]; then
        every[$id]="$(duration_s "$(podman inspect --format '{{.Config.Healthcheck.Interval}}' "$id" 2>/dev/null || echo 30s)")"
      fi
      interval="${every[$id]}"
      # until healthy, check every 2 s (Docker checks at the interval, but nobody waits then)
      case "$status" in *"(healthy)"*) ;; *) [ "$interval" -gt 2 ] && interval=2 ;; esac
      if [ "${next[$id]:-0}" -le "$now" ]; then
        next[$id]=$((now + interval))
        # one check at a time per container: a slow check (a JVM tool) does not block the others
        ( flock -n 9 || exit 0; timeout 120 podman healthcheck run "$id" >/dev/null 2>&1 || true ) \
          9>"$ENGINE_DIR/tmp/hc-$id.lock" &
      fi
    done < <(podman ps --format '{{.ID}}|{{.Status}}' 2>/dev/null)
    find "$ENGINE_DIR/tmp" -maxdepth 1 -name 'hc-*.lock' -mmin +60 -delete 2>/dev/null || true
    sleep 1
  done
}

start_healthchecks() {
  local pid
  if pid="$(pid_alive "$HC_PID" "container-engine.sh _healthchecks")"; then
    say "health-check driver already running (pid $pid)"
    return 0
  fi
  setsid nohup bash "$ROOT/scripts/container-engine.sh" _healthchecks >>"$HC_LOG" 2>&1 </dev/null &
  echo $! >"$HC_PID"
  say "health-check driver started (pid $(cat "$HC_PID"), log $HC_LOG)"
}

stop_pid() { # stop_pid NAME PIDFILE MARKER
  local pid
  if pid="$(pid_alive "$2" "$3")"; then
    # the whole session (setsid), so the driver's checks end with it
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    say "$1 stopped (pid $pid)"
  fi
  rm -f "$2"
}

# ---------------------------------------------------------------------------------------------

cmd_up() {
  local t0=$SECONDS host
  [ "$(uname -s)" = Linux ] || die "this script runs podman on Linux; elsewhere use Docker Desktop or podman machine"
  if host="$(use_other_engine)"; then
    say "a working Docker engine answers at $host: using it as it is"
    return 0
  fi
  [ "${HOOKBRIDGE_ENGINE:-auto}" = docker ] && die "HOOKBRIDGE_ENGINE=docker, but no Docker engine answers"
  install_packages
  write_config
  podman_env
  command -v docker >/dev/null 2>&1 || say "note: no docker CLI on PATH (docker-compose and testcontainers use the API directly)"
  start_service
  start_healthchecks
  if command -v docker >/dev/null 2>&1; then
    DOCKER_HOST="$OUR_HOST" timeout 30 docker info >/dev/null 2>&1 \
      || die "docker info fails against $OUR_HOST: $(DOCKER_HOST="$OUR_HOST" docker info 2>&1 | tail -n 3)"
  fi
  say "engine up in $((SECONDS - t0)) s: podman $(podman version --format '{{.Client.Version}}' 2>/dev/null) ($(podman info --format '{{.Host.OCIRuntime.Name}}, {{.Store.GraphDriverName}}, cgroups {{.Host.CgroupsVersion}}' 2>/dev/null)); use it with: eval \"\$(bash scripts/container-engine.sh env)\""
}

cmd_down() {
  if [ -f "$ENGINE_DIR/containers.conf" ] && command -v podman >/dev/null 2>&1; then
    podman_env
    local n
    n="$(podman ps -aq 2>/dev/null | wc -l)"
    if [ "$n" -gt 0 ]; then
      say "removing $n container(s) of this engine"
      podman rm -af -t 5 >/dev/null 2>&1 || podman rm -af >/dev/null 2>&1 || true
    fi
    podman pod rm -af >/dev/null 2>&1 || true
    podman network prune -f >/dev/null 2>&1 || true
    podman volume prune -f >/dev/null 2>&1 || true
  fi
  stop_pid "health-check driver" "$HC_PID" "container-engine.sh _healthchecks"
  stop_pid "API service" "$SERVICE_PID" "system service"
  rm -f "$SOCK"
  say "engine down (images kept in $ENGINE_DIR/storage)"
}

cmd_env() {
  local host
  if host="$(use_other_engine)"; then
    printf 'export DOCKER_HOST=%q\n' "$host"
    return 0
  fi
  printf 'export DOCKER_HOST=%q\n' "$OUR_HOST"
  printf 'export CONTAINERS_CONF=%q\n' "$ENGINE_DIR/containers.conf"
  printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$ENGINE_DIR/storage.conf"
  printf 'export CONTAINERS_REGISTRIES_CONF=%q\n' "$ENGINE_DIR/registries.conf"
  our_engine_answers || say "note: the engine is not running; start it with: bash scripts/container-engine.sh up"
}

cmd_status() {
  local host pid rc=0
  if host="$(use_other_engine)"; then echo "engine:        Docker engine at $host (not managed here)"; return 0; fi
  if pid="$(pid_alive "$SERVICE_PID" "system service")" && our_engine_answers; then
    echo "engine:        podman API service (pid $pid) answering at $OUR_HOST"
  else echo "engine:        stopped"; rc=1; fi
  if pid="$(pid_alive "$HC_PID" "container-engine.sh _healthchecks")"; then echo "health checks: driven (pid $pid)"
  else echo "health checks: not driven"; rc=1; fi
  if [ "$rc" = 0 ]; then podman_env; echo "containers:"; podman ps -a --format '  {{.Names}}  {{.Image}}  {{.Status}}'; fi
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  podman) shift; podman_env; exec podman "$@" ;;
  _healthchecks) hc_loop ;;
  *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
