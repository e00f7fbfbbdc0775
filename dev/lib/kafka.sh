# Apache Kafka (KRaft, one combined broker+controller) from Maven Central jars, run with the JDK.
# shellcheck shell=bash

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/dev/kafka/pom.xml")
KAFKA_LIB=$CACHE/kafka-$KAFKA_VERSION/lib
KAFKA_DIR=$STATE/kafka
KAFKA_LOG=$LOGS/kafka.log
KAFKA_HEAP=${VAP_KAFKA_HEAP:--Xms256m -Xmx512m}

# The `java ...` prefix shared by the storage tool and the broker, as the distribution's scripts build it.
kafka_java() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  # shellcheck disable=SC2206
  KAFKA_JAVA=(java $KAFKA_HEAP -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIB/*")
}

kafka_install() {
  if [[ -f $KAFKA_LIB/.complete ]]; then return; fi
  command -v mvn >/dev/null || apt_install maven
  info "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIB"
  mvn -B -q -f "$ROOT/dev/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_LIB" >>"$LOGS/kafka-fetch.log" 2>&1 || die "mvn could not fetch Kafka (log: $LOGS/kafka-fetch.log)"
  touch "$KAFKA_LIB/.complete"
}

kafka_write_config() {
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
CONF
  cat >"$KAFKA_DIR/log4j2.properties" <<'CONF'
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
CONF
}

kafka_start() {
  if is_running kafka; then info "already running"; return; fi
  kafka_write_config
  kafka_java
  if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
    local cluster_id
    cluster_id=$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG" | tail -n 1)
    info "formatting storage (cluster id $cluster_id)"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >>"$KAFKA_LOG" 2>&1 \
      || die "kafka storage format failed (log: $KAFKA_LOG)"
  fi
  start_daemon kafka "$KAFKA_LOG" "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties"
}

# Ready = the broker answers a metadata request (not merely an open port); then make the topics.
kafka_ready() { "$VENV/bin/python" "$ROOT/dev/lib/kafka_topics.py" --bootstrap "127.0.0.1:$KAFKA_PORT" --check; }
kafka_create_topics() { "$VENV/bin/python" "$ROOT/dev/lib/kafka_topics.py" --bootstrap "127.0.0.1:$KAFKA_PORT"; }

kafka_stop() { stop_daemon kafka; }

kafka_status() {
  if is_running kafka && port_open "$KAFKA_PORT"; then echo "kafka      up    127.0.0.1:$KAFKA_PORT (Kafka $KAFKA_VERSION, KRaft)"; else echo "kafka      down"; fi
}
