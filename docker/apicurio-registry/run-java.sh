#!/usr/bin/env bash
# Starts Apicurio Registry in the foreground (exec: docker stop's SIGTERM reaches the JVM).
# Options, in order: the container-aware defaults below, JAVA_OPTS, JAVA_OPTIONS, JAVA_OPTS_APPEND
# (the names the upstream image's run-java.sh reads). A later -Xmx wins over the default ratio.
set -eu
cd "${JAVA_APP_DIR:-/deployments}"
# shellcheck disable=SC2086
exec java -XX:MaxRAMPercentage="${JAVA_MAX_RAM_RATIO:-50}" -XX:+ExitOnOutOfMemoryError -XX:+UseG1GC \
  ${JAVA_OPTS:-} ${JAVA_OPTIONS:-} ${JAVA_OPTS_APPEND:-} -jar quarkus-run.jar "$@"
