#!/usr/bin/env bash
# Stand-in for Kafka's bin/kafka-run-class.sh (the distribution's scripts are not on Maven Central):
#   kafka-run-class.sh CLASS [ARGS...]
# Honours KAFKA_HEAP_OPTS (default -Xmx256M), KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_GC_LOG_OPTS,
# KAFKA_JMX_OPTS, KAFKA_LOG4J_OPTS, KAFKA_OPTS and JAVA_HOME, like the original.
set -eu
if [ $# -lt 1 ]; then echo "USAGE: $0 classname [opts]" >&2; exit 1; fi
base_dir=/opt/kafka
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256M}"
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}"
if [ -z "${KAFKA_LOG4J_OPTS:-}" ]; then
  cfg="$base_dir/config/tools-log4j2.xml"
  [ -f "$cfg" ] || cfg=/etc/kafka/docker/tools-log4j2.xml
  [ -f "$cfg" ] && KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=$cfg"
fi
# shellcheck disable=SC2086
exec "$JAVA" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS ${KAFKA_GC_LOG_OPTS:-} ${KAFKA_JMX_OPTS:-} \
  ${KAFKA_LOG4J_OPTS:-} -cp "$base_dir/libs/*" ${KAFKA_OPTS:-} "$@"
