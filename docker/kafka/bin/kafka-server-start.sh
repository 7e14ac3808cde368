#!/usr/bin/env bash
# Stand-in for Kafka's bin/kafka-server-start.sh: kafka-server-start.sh server.properties [--override k=v ...]
set -eu
if [ $# -lt 1 ]; then echo "USAGE: $0 server.properties [--override property=value]*" >&2; exit 1; fi
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
if [ -z "${KAFKA_LOG4J_OPTS:-}" ] && [ -f /opt/kafka/config/log4j2.xml ]; then
  export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.xml"
fi
exec /opt/kafka/bin/kafka-run-class.sh kafka.Kafka "$@"
