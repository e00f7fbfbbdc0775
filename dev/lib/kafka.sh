# Apache Kafka (KRaft) from Maven Central jars, run with the JDK: one combined broker+controller, or
# with VAP_KAFKA_BROKERS=3 three of them (one quorum, replication factor 3, min.insync.replicas 2),
# node i listening on KAFKA_PORT + 2(i-1) (clients) and KAFKA_CONTROLLER_PORT + 2(i-1) (controller).
# shellcheck shell=bash

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/dev/kafka/pom.xml")
KAFKA_LIB=$CACHE/kafka-$KAFKA_VERSION/lib
KAFKA_DIR=$STATE/kafka
KAFKA_LOG=$LOGS/kafka.log
KAFKA_HEAP=${VAP_KAFKA_HEAP:--Xms256m -Xmx512m}
KAFKA_BROKERS=${VAP_KAFKA_BROKERS:-1}
[[ $KAFKA_BROKERS == 1 || $KAFKA_BROKERS == 3 ]] || die "VAP_KAFKA_BROKERS must be 1 or 3 (got $KAFKA_BROKERS)"

# Per node i (1-based): its name (pid file, log), state folder and ports. Node 1 keeps the one-broker names.
kafka_node_name() { if (( $1 == 1 )); then echo kafka; else echo "kafka-$1"; fi; }
kafka_node_dir() { if (( $1 == 1 )); then echo "$KAFKA_DIR"; else echo "$KAFKA_DIR-$1"; fi; }
kafka_node_port() { echo $(( KAFKA_PORT + 2 * ($1 - 1) )); }
kafka_node_controller_port() { echo $(( KAFKA_CONTROLLER_PORT + 2 * ($1 - 1) )); }
kafka_node_log() { echo "$LOGS/$(kafka_node_name "$1").log"; }
kafka_bootstrap() {
  local i servers=()
  for (( i = 1; i <= KAFKA_BROKERS; i++ )); do servers+=("127.0.0.1:$(kafka_node_port "$i")"); done
  local IFS=,; echo "${servers[*]}"
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
  local i=$1 dir voters="" n replication=$(( KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3 )) min_isr=$(( KAFKA_BROKERS < 3 ? 1 : 2 ))
  dir=$(kafka_node_dir "$i")
  for (( n = 1; n <= KAFKA_BROKERS; n++ )); do voters+="${voters:+,}$n@127.0.0.1:$(kafka_node_controller_port "$n")"; done
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(kafka_node_port "$i"),CONTROLLER://127.0.0.1:$(kafka_node_controller_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_node_port "$i")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=$replication
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
CONF
  cat >"$dir/log4j2.properties" <<'CONF'
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

# The `java ...` prefix of node i (its own log4j2 file).
kafka_node_java() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  # shellcheck disable=SC2206
  KAFKA_JAVA=(java $KAFKA_HEAP -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$(kafka_node_dir "$1")/log4j2.properties" -cp "$KAFKA_LIB/*")
}

kafka_start() {
  # The state of a one-broker stack cannot serve three (or the other way round): say so, do not mix.
  local wanted=$STATE/kafka.brokers i dir cluster_id
  if [[ -f $wanted && $(cat "$wanted") != "$KAFKA_BROKERS" ]]; then
    die "the Kafka state in $STATE was made for $(cat "$wanted") broker(s), not $KAFKA_BROKERS: ./dev/infra down --purge first"
  fi
  echo "$KAFKA_BROKERS" >"$wanted"
  for (( i = 1; i <= KAFKA_BROKERS; i++ )); do
    if is_running "$(kafka_node_name "$i")"; then info "$(kafka_node_name "$i") already running"; continue; fi
    dir=$(kafka_node_dir "$i")
    kafka_write_config "$i"
    kafka_node_java "$i"
    if [[ ! -f $dir/data/meta.properties ]]; then
      # One cluster id for every node of the quorum.
      [[ -f $STATE/kafka.cluster-id ]] || "${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG" | tail -n 1 >"$STATE/kafka.cluster-id"
      cluster_id=$(cat "$STATE/kafka.cluster-id")
      info "formatting the storage of $(kafka_node_name "$i") (cluster id $cluster_id)"
      "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >>"$(kafka_node_log "$i")" 2>&1 \
        || die "kafka storage format failed (log: $(kafka_node_log "$i"))"
    fi
    start_daemon "$(kafka_node_name "$i")" "$(kafka_node_log "$i")" "${KAFKA_JAVA[@]}" kafka.Kafka "$dir/server.properties"
  done
}

# Ready = every broker is in the cluster's metadata (not merely an open port); then make the topics.
kafka_ready() {
  local i
  for (( i = 2; i <= KAFKA_BROKERS; i++ )); do is_running "$(kafka_node_name "$i")" && port_open "$(kafka_node_port "$i")" || return 1; done
  "$VENV/bin/python" "$ROOT/dev/lib/kafka_topics.py" --bootstrap "$(kafka_bootstrap)" --check --brokers "$KAFKA_BROKERS"
}
kafka_create_topics() { "$VENV/bin/python" "$ROOT/dev/lib/kafka_topics.py" --bootstrap "$(kafka_bootstrap)"; }

kafka_stop() {
  # Every node at once: one by one, the last ones lose their quorum and cannot shut down cleanly.
  local i pidfile
  for (( i = 1; i <= 3; i++ )); do
    pidfile=$STATE/$(kafka_node_name "$i").pid
    [[ -f $pidfile ]] && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  done
  for (( i = 1; i <= 3; i++ )); do stop_daemon "$(kafka_node_name "$i")"; done
}

kafka_status() {
  local i up=0
  for (( i = 1; i <= KAFKA_BROKERS; i++ )); do is_running "$(kafka_node_name "$i")" && port_open "$(kafka_node_port "$i")" && up=$(( up + 1 )); done
  if (( up == KAFKA_BROKERS )); then
    echo "kafka      up    $(kafka_bootstrap) (Kafka $KAFKA_VERSION, KRaft, $KAFKA_BROKERS broker(s))"
  else
    echo "kafka      down  ($up of $KAFKA_BROKERS broker(s) up)"
  fi
}
