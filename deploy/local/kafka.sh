#!/usr/bin/env bash
# Apache Kafka (KRaft, combined broker + controller nodes) from the jars Maven Central
# serves — no tarball, no Docker. One node for a laptop, three for replication. Used by
# stack.sh (the local stack), bench.sh and the tests' three-node fixture.
#
#   kafka.sh install        Java 17 and Maven if missing, then the broker's jars (once)
#   kafka.sh up             format (first time) and start every node, wait until each serves
#   kafka.sh down           stop the nodes (SIGTERM: a controlled shutdown)
#   kafka.sh kill N         SIGKILL node N (tests)
#   kafka.sh start N        start node N again (tests)
#   kafka.sh status         one line per node
#   kafka.sh bootstrap      the bootstrap address list (host:port,…)
#   kafka.sh bootstrap-tls  the same for the SASL_SSL listeners (with KAFKA_TLS_DIR)
#
# Configured by the environment:
#   KAFKA_DIR    where the nodes keep data, config and logs   (.local/kafka)
#   KAFKA_NODES  1 or 3                                       (1, or what the dir holds)
#   KAFKA_HOST   the loopback address every node listens on   (127.0.0.1)
#   KAFKA_PORT   node 1's client port; node N uses KAFKA_PORT + 2(N-1) for clients and
#                the port after it for its controller          (19092)
#   KAFKA_HEAP   JVM heap options per node                    (-Xms256m -Xmx512m)
#   KAFKA_JVM_OPTS  more JVM options per node (the tests' own clusters: C1 only)   (none)
#   KAFKA_TLS_DIR  with ca.crt, server.crt, server.key and kafka-password (stack.sh makes
#                them): every node also serves SASL_SSL (SCRAM-SHA-512 or PLAIN, user
#                `bazaar`) on its client port + 10                 (none: plaintext only)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local/kafka"
# shellcheck source=deploy/local/apt.sh
. "$ROOT/deploy/local/apt.sh"
KAFKA_VERSION="$(sed -n 's:.*<version>\(4[^<]*\)</version>.*:\1:p' "$HERE/pom.xml" | head -n 1)"
# The jars are shared by every stack on this checkout (local, bench, tests).
JARS="$ROOT/.local/kafka-jars/$KAFKA_VERSION"
KAFKA_DIR="${KAFKA_DIR:-$ROOT/.local/kafka}"
# A cluster keeps the size it was formatted with.
KAFKA_NODES="${KAFKA_NODES:-$(cat "$KAFKA_DIR/nodes" 2>/dev/null || echo 1)}"
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx512m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_TLS_DIR="${KAFKA_TLS_DIR:-}"
KAFKA_SASL_USER="bazaar"

say() { printf '\033[1m[kafka]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[kafka] %s\033[0m\n' "$*" >&2; exit 1; }

case "$KAFKA_NODES" in 1|3) ;; *) die "KAFKA_NODES must be 1 or 3" ;; esac

client_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((KAFKA_PORT + 2 * ($1 - 1) + 1)); }
tls_port() { echo $((KAFKA_PORT + 2 * ($1 - 1) + 10)); }
node_dir() { echo "$KAFKA_DIR/node-$1"; }

# ---- installation --------------------------------------------------------------------

java_ok() {
    command -v java >/dev/null || return 1
    local major
    major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    [ "${major:-0}" -ge 17 ] 2>/dev/null
}

install() {
    local packages=()
    java_ok || packages+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || packages+=(maven)
    if [ "${#packages[@]}" -gt 0 ]; then
        command -v apt-get >/dev/null || die "missing ${packages[*]}: install Java 17 and Maven"
        say "installing Debian packages: ${packages[*]}"
        apt_get update -qq
        apt_get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    fi
    if [ -f "$JARS/complete" ]; then return; fi
    say "fetching Apache Kafka $KAFKA_VERSION from Maven Central (once)"
    rm -rf "$JARS/libs"
    mkdir -p "$JARS"
    # --strict-checksums: a jar whose checksum does not match is an error, not a warning.
    mvn -B -q --strict-checksums -f "$HERE/pom.xml" \
        -Dmaven.repo.local="$ROOT/.local/kafka-jars/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$JARS/libs" \
        || die "fetching the Kafka jars failed"
    [ -f "$JARS/libs/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar is missing"
    touch "$JARS/complete"
}

java_run() { # java_run <main class> <args…> (a short-lived tool: no C2 compiler warm-up)
    java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$JARS/libs/*" -Dlog4j2.configurationFile="$HERE/log4j2.yaml" \
        -Dkafka.logs.dir="$KAFKA_DIR" "$@"
}

# ---- configuration -------------------------------------------------------------------

voters() {
    local n list=""
    for n in $(seq 1 "$KAFKA_NODES"); do
        list="${list:+$list,}$n@$KAFKA_HOST:$(controller_port "$n")"
    done
    echo "$list"
}

write_config() { # write_config <node>
    local n="$1" dir replicas min_isr tls_listener="" tls_advertised=""
    dir="$(node_dir "$n")"
    if [ -n "$KAFKA_TLS_DIR" ]; then
        tls_listener=",SASL_SSL://$KAFKA_HOST:$(tls_port "$n")"
        tls_advertised="$tls_listener"
    fi
    replicas="$KAFKA_NODES"
    min_isr=$((KAFKA_NODES > 1 ? 2 : 1))
    mkdir -p "$dir/data" "$dir/logs"
    cat >"$dir/server.properties" <<PROPERTIES
# Written by deploy/local/kafka.sh: node $n of $KAFKA_NODES (KRaft, combined mode).
process.roles=broker,controller
node.id=$n
listeners=PLAINTEXT://$KAFKA_HOST:$(client_port "$n"),CONTROLLER://$KAFKA_HOST:$(controller_port "$n")$tls_listener
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$(client_port "$n")$tls_advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
controller.quorum.voters=$(voters)
log.dirs=$dir/data

# Topics are declared by the project (bazaar-topics), never created by a stray client.
auto.create.topics.enable=false
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
unclean.leader.election.enable=false
# A consumer group starts at once instead of waiting 3 s for more members, and the tests'
# processors may use sessions shorter than the 6 s Kafka accepts by default.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
# The processors publish their outputs in transactions: one a dead processor left open is
# aborted within a second of its timeout (10 s by default) instead of ten.
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
# A node that stops answering is fenced (its partitions led elsewhere) 6 s after its last
# heartbeat instead of Kafka's 9 s: a lost broker stalls the ledger for about as long, and
# the clients' timeouts (a 15 s consumer session, 15 s transactions) outlast it.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000

# A 2-core laptop: few threads; the OS page cache does the rest.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.check.interval.ms=30000
PROPERTIES
    if [ -n "$KAFKA_TLS_DIR" ]; then
        # The keystore: the certificate and its (PKCS#8, unencrypted) key in one PEM file.
        cat "$KAFKA_TLS_DIR/server.crt" "$KAFKA_TLS_DIR/server.key" >"$dir/keystore.pem"
        chmod 600 "$dir/keystore.pem"
        cat >>"$dir/server.properties" <<PROPERTIES

# Clients that must encrypt and authenticate: SASL_SSL, SCRAM-SHA-512 (credentials in the
# cluster's metadata, made by kafka.sh up) or PLAIN (as managed services offer).
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$(sasl_password)";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/keystore.pem
PROPERTIES
    fi
}

sasl_password() { cat "$KAFKA_TLS_DIR/kafka-password"; }

# The SCRAM credential of the SASL user, once per cluster (kept in its metadata log).
ensure_scram_user() {
    local marker
    marker="$(node_dir 1)/scram-$KAFKA_SASL_USER"
    [ -f "$marker" ] && return
    java_run kafka.admin.ConfigCommand --bootstrap-server "$(bootstrap)" --alter \
        --entity-type users --entity-name "$KAFKA_SASL_USER" \
        --add-config "SCRAM-SHA-512=[iterations=8192,password=$(sasl_password)]" \
        >"$KAFKA_DIR/scram.log" 2>&1 \
        || { tail -n 5 "$KAFKA_DIR/scram.log" >&2; die "creating the SCRAM user failed"; }
    touch "$marker"
    say "SASL_SSL (SCRAM-SHA-512, PLAIN) for user $KAFKA_SASL_USER at $(bootstrap_tls)"
}

format_node() { # format_node <node>: once per node, with the cluster's id
    local n="$1" dir
    dir="$(node_dir "$n")"
    [ -f "$dir/data/meta.properties" ] && return
    if [ ! -s "$KAFKA_DIR/cluster-id" ]; then
        java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$KAFKA_DIR/cluster-id"
    fi
    java_run kafka.tools.StorageTool format -t "$(cat "$KAFKA_DIR/cluster-id")" \
        -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 \
        || { tail -n 5 "$dir/logs/format.log" >&2; die "formatting node $n failed"; }
}

# ---- processes -----------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

node_pid() { # the node's pid, if it runs
    local pidfile pid
    pidfile="$(node_dir "$1")/kafka.pid"
    [ -f "$pidfile" ] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(node_dir "$1")/server.properties" || return 1
    echo "$pid"
}

start_node() { # start_node <node>: start it if it is not running (no wait)
    local n="$1" dir
    dir="$(node_dir "$n")"
    if node_pid "$n" >/dev/null; then return; fi
    port_open "$KAFKA_HOST" "$(client_port "$n")" \
        && die "$KAFKA_HOST:$(client_port "$n") is taken by something else; set KAFKA_PORT (BAZAAR_KAFKA_PORT)"
    write_config "$n"
    format_node "$n"
    # The second from which a "Kafka Server started" counts as this start's (a line count
    # would miss it once log4j rolls server.log over at 20 MB, as a long-lived stack's does).
    date '+%Y-%m-%d %H:%M:%S' >"$dir/started-after"
    # shellcheck disable=SC2086 # KAFKA_HEAP and KAFKA_JVM_OPTS are lists of JVM options
    (exec setsid nohup java $KAFKA_HEAP $KAFKA_JVM_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$HERE/log4j2.yaml" -Dkafka.logs.dir="$dir/logs" \
        -cp "$JARS/libs/*" kafka.Kafka "$dir/server.properties" \
        >>"$dir/logs/stdout.log" 2>&1 </dev/null) &
    echo $! >"$dir/kafka.pid"
}

serving() { # serving <node>: it logged "Kafka Server started" since its start and listens
    local n="$1" dir since
    dir="$(node_dir "$n")"
    since="$(cat "$dir/started-after" 2>/dev/null || true)"
    # Log lines begin "[YYYY-MM-DD HH:MM:SS,mmm]"; rolled-over files count too (a roll-over
    # during the start).
    grep -hs "Kafka Server started" "$dir"/logs/server.log* \
        | awk -v since="$since" 'substr($0, 2, 19) >= since { found = 1 } END { exit !found }' \
        && port_open "$KAFKA_HOST" "$(client_port "$n")"
}

wait_serving() { # wait_serving <node>…
    local n pid deadline=$((SECONDS + 120))
    for n in "$@"; do
        until serving "$n"; do
            pid="$(tr -dc '0-9' <"$(node_dir "$n")/kafka.pid")"
            if ! kill -0 "$pid" 2>/dev/null; then
                tail -n 20 "$(node_dir "$n")/logs/stdout.log" "$(node_dir "$n")/logs/server.log" >&2 2>/dev/null || true
                die "node $n exited during start-up (logs: $(node_dir "$n")/logs)"
            fi
            [ "$SECONDS" -lt "$deadline" ] || die "node $n did not serve within 120 s (logs: $(node_dir "$n")/logs)"
            sleep 0.2
        done
        say "node $n serves on $KAFKA_HOST:$(client_port "$n")"
    done
}

stop_node() { # stop_node <node> <signal>
    local pid
    pid="$(node_pid "$1")" || return 0
    kill "-$2" "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$(node_dir "$1")/kafka.pid"
}

bootstrap() {
    local n list=""
    for n in $(seq 1 "$KAFKA_NODES"); do list="${list:+$list,}$KAFKA_HOST:$(client_port "$n")"; done
    echo "$list"
}

bootstrap_tls() {
    local n list=""
    for n in $(seq 1 "$KAFKA_NODES"); do list="${list:+$list,}$KAFKA_HOST:$(tls_port "$n")"; done
    echo "$list"
}

nodes() { seq 1 "$KAFKA_NODES"; }

# ---- main ----------------------------------------------------------------------------

command="${1:-}"
case "$command" in
    install) install ;;
    up)
        install
        mkdir -p "$KAFKA_DIR"
        # A directory formatted for another cluster size would never form a quorum.
        if [ -s "$KAFKA_DIR/nodes" ] && [ "$(cat "$KAFKA_DIR/nodes")" != "$KAFKA_NODES" ]; then
            die "$KAFKA_DIR holds a $(cat "$KAFKA_DIR/nodes")-node cluster; \`make down\` and remove it to change KAFKA_NODES"
        fi
        echo "$KAFKA_NODES" >"$KAFKA_DIR/nodes"
        started=()
        for n in $(nodes); do
            if node_pid "$n" >/dev/null; then continue; fi
            start_node "$n"
            started+=("$n")
        done
        # A quorum of controllers is needed before any node serves: start all, then wait.
        if [ "${#started[@]}" -gt 0 ]; then wait_serving "${started[@]}"; fi
        if [ -n "$KAFKA_TLS_DIR" ]; then ensure_scram_user; fi
        say "Apache Kafka $KAFKA_VERSION ($KAFKA_NODES node(s)) at $(bootstrap)"
        ;;
    down)
        for n in $(nodes); do
            if node_pid "$n" >/dev/null; then stop_node "$n" TERM; say "node $n stopped"; fi
        done
        ;;
    kill) stop_node "${2:?node}" KILL ;;
    start) start_node "${2:?node}"; wait_serving "$2" ;;
    status)
        for n in $(nodes); do
            if pid="$(node_pid "$n")"; then
                echo "kafka-$n    up    $KAFKA_HOST:$(client_port "$n")  pid $pid  (Apache Kafka $KAFKA_VERSION)"
            else
                echo "kafka-$n    down"
            fi
        done
        ;;
    bootstrap) bootstrap ;;
    bootstrap-tls) bootstrap_tls ;;
    *)
        echo "usage: $0 install|up|down|kill N|start N|status|bootstrap|bootstrap-tls" >&2
        exit 2
        ;;
esac
