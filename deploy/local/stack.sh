#!/usr/bin/env bash
# The whole backing stack on one machine, no Docker: a private PostgreSQL, Redis and
# Apache Kafka (KRaft; kafka.sh) and the schema registry (registry.sh), each on a loopback
# port of its own, plus a streaming standby of the PostgreSQL (pg_basebackup; query-api's
# reports read it), with data and logs under .local/. Never touches the machine's own services or standard ports; `down` stops
# only what `up` started (by pid). Data survives `down`/`up` and kill -9.
#
#   deploy/local/stack.sh up       install what is missing, start, wait until each serves
#   deploy/local/stack.sh down     stop what up started
#   deploy/local/stack.sh status   what is running
#   deploy/local/stack.sh env      KAFKA_BROKERS, SCHEMA_REGISTRY_URL, … for this stack
#                                  (BAZAAR_TLS=1: every link over TLS, Kafka with SASL)
#   deploy/local/stack.sh stop|start postgres|standby|redis|kafka|registry
#                                  one component alone (`make chaos` takes them away)
#   deploy/local/stack.sh backup|restore postgres
#                                  a base backup of the primary, and the primary replaced by
#                                  it (`make chaos`'s restore drill)
#
# KAFKA_NODES=3 runs a three-node Kafka cluster (ports 19092, 19094, 19096) instead of one.
# Every server also speaks TLS, with a certificate for 127.0.0.1 signed by a CA made here
# (.local/tls): PostgreSQL on its own port (ssl=on), Redis on its port + 10, Kafka SASL_SSL
# on each client port + 10.
# Topics are created by `bazaar-topics` (services.sh, the tests), not here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${BAZAAR_LOCAL_DIR:-$ROOT/.local}"
# Every fixed port sits below 32768, the start of Linux's ephemeral range: a listener inside
# that range fails to bind whenever some outgoing connection happens to hold its number.
PG_PORT="${BAZAAR_PG_PORT:-15432}"
# Ten above the primary: the benchmark and fault stacks' primaries sit just above it.
STANDBY_PORT="${BAZAAR_PG_STANDBY_PORT:-$((PG_PORT + 10))}"
REDIS_PORT="${BAZAAR_REDIS_PORT:-16379}"
REDIS_TLS_PORT="$((REDIS_PORT + 10))"
KAFKA_PORT="${BAZAAR_KAFKA_PORT:-19092}"
# The registry's API; its management port (health, metrics) is the next one.
REGISTRY_PORT="${BAZAAR_REGISTRY_PORT:-18081}"
# Development-only credentials of the private PostgreSQL; see service-kit settings.
PG_USER="bazaar"
PG_PASSWORD="bazaar-dev-only"
PG_DATABASE="bazaar"
# The schema registry's own database on the same server.
REGISTRY_DATABASE="registry"

export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m[stack]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[stack] %s\033[0m\n' "$*" >&2; exit 1; }

# ---- installation --------------------------------------------------------------------

# shellcheck source=deploy/local/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
APT_UPDATED=""
apt_install() {
    if ! command -v apt-get >/dev/null; then
        die "missing $* and no apt-get here: install them with your package manager"
    fi
    if [ -z "$APT_UPDATED" ]; then
        say "apt-get update"
        apt_get update -qq
        APT_UPDATED=1
    fi
    say "installing Debian packages: $*"
    apt_get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

install_missing() {
    local packages=()
    pg_bin >/dev/null || packages+=(postgresql)
    command -v redis-server >/dev/null || packages+=(redis-server)
    # Building the workspace: librdkafka is compiled from source by the rdkafka crate.
    command -v cc >/dev/null || packages+=(build-essential)
    command -v cmake >/dev/null || packages+=(cmake)
    command -v curl >/dev/null || packages+=(curl)
    command -v openssl >/dev/null || packages+=(openssl)
    # rdkafka, sqlx and redis link OpenSSL for TLS.
    pkg-config --exists openssl 2>/dev/null || packages+=(libssl-dev pkg-config)
    # The contract tests' OpenAPI fuzzer lives in a virtualenv (deploy/local/tools.sh).
    python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
    if [ "${#packages[@]}" -gt 0 ]; then apt_install "${packages[@]}"; fi
}

# ---- helpers -------------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for <seconds> <description> <command...>
    local seconds="$1" what="$2"; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        sleep 0.2
    done
    say "$what is up"
}

# The pid in a pid file if that process is alive and is the program we started.
running_pid() { # running_pid <pidfile> <program-name>
    local pidfile="$1" program="$2" pid
    [ -f "$pidfile" ] || return 1
    pid="$(head -n 1 "$pidfile" 2>/dev/null | tr -dc '0-9')"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$program" || return 1
    echo "$pid"
}

stop_pid() { # stop_pid <pidfile> <program-name> <description>
    local pid
    if pid="$(running_pid "$1" "$2")"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        say "$3 stopped"
    fi
    rm -f "$1"
}

# ---- TLS -----------------------------------------------------------------------------

# A private CA and one server certificate for 127.0.0.1 and localhost, made once: every
# server of the stack presents it, clients verify it against ca.crt (with host names).
TLS_DIR="$LOCAL/tls"
tls_up() {
    [ -s "$TLS_DIR/server.crt" ] && [ -s "$TLS_DIR/kafka-password" ] && return
    say "making a private CA and a certificate for 127.0.0.1 in $TLS_DIR"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR"
    (
        cd "$TLS_DIR" && umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Bazaar local CA" \
            -keyout ca.key -out ca.crt
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
            "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
            -extfile server.ext -out server.crt
        rm -f server.csr server.ext ca.srl
        head -c 24 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_' >kafka-password
        chmod 644 ca.crt server.crt
    ) >/dev/null 2>&1 || die "making the TLS certificates failed (is openssl there?)"
}

# ---- PostgreSQL ----------------------------------------------------------------------

# PostgreSQL refuses to run as root: as root, run it as the `postgres` system user.
pg_as() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_dirs() {
    PG_HOME="$LOCAL/postgres"
    mkdir -p "$PG_HOME"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$PG_HOME"
        if ! runuser -u postgres -- test -x "$PG_HOME"; then
            # The checkout is below a directory the postgres user cannot enter (/root, say):
            # keep the data in a private directory of our own and point .local at it.
            local alt="/var/lib/bazaar-local/$(echo "$ROOT" | md5sum | cut -c1-12)/postgres"
            mkdir -p "$alt" && chown postgres: "$alt" && chmod 700 "$alt"
            echo "$alt" >"$LOCAL/postgres.location"
            PG_HOME="$alt"
        fi
    fi
    PG_DATA="$PG_HOME/data"
    PG_LOG="$PG_HOME/postgres.log"
    STANDBY_DATA="$PG_HOME/standby"
    STANDBY_LOG="$PG_HOME/standby.log"
}

pg_up() {
    local bin; bin="$(pg_bin)" || die "PostgreSQL binaries not found"
    pg_dirs
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        say "initialising a private PostgreSQL cluster in $PG_DATA"
        local pwfile="$PG_HOME/.pwfile"
        printf '%s\n' "$PG_PASSWORD" >"$pwfile"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
        pg_as "$bin/initdb" -D "$PG_DATA" -U "$PG_USER" --pwfile="$pwfile" \
            --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
        rm -f "$pwfile"
        cat >>"$PG_DATA/postgresql.conf" <<CONF

# deploy/local: a private development instance on loopback
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_HOME'
max_connections = 300
shared_buffers = 1GB
# The processors write tens of thousands of ledger rows a second: with the default 1GB of
# WAL, checkpoints came every minute or so, asked for by WAL volume (71 requested against
# 6 timed in one benchmark), each followed by full-page images of every index page touched.
max_wal_size = 4GB
checkpoint_timeout = 15min
timezone = 'UTC'
log_min_messages = warning
CONF
    fi
    pg_start "$PG_DATA" "$PG_LOG" "$PG_PORT" PostgreSQL BAZAAR_PG_PORT
    local database
    for database in "$PG_DATABASE" "$REGISTRY_DATABASE"; do
        if ! pg_as "$bin/psql" -h "$PG_HOME" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
            pg_as "$bin/createdb" -h "$PG_HOME" -p "$PG_PORT" -U "$PG_USER" "$database"
            say "database $database created"
        fi
    done
}

# The standby: a physical copy of the primary taken with pg_basebackup, then following its
# WAL over streaming replication (hot standby: it answers read-only queries). Made once;
# it catches up on its own after either side was stopped.
standby_up() {
    local bin; bin="$(pg_bin)" || die "PostgreSQL binaries not found"
    pg_dirs
    if [ ! -f "$STANDBY_DATA/PG_VERSION" ]; then
        say "copying the primary into a streaming standby in $STANDBY_DATA"
        rm -rf "$STANDBY_DATA"
        pg_as env PGPASSWORD="$PG_PASSWORD" "$bin/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" \
            -U "$PG_USER" -D "$STANDBY_DATA" --write-recovery-conf --wal-method=stream \
            --checkpoint=fast --no-sync >/dev/null \
            || die "pg_basebackup from 127.0.0.1:$PG_PORT failed"
        cat >>"$STANDBY_DATA/postgresql.conf" <<CONF

# deploy/local: the standby (settings below override the primary's copied above)
port = $STANDBY_PORT
unix_socket_directories = '$PG_HOME'
shared_buffers = 256MB
hot_standby = on
# Long reports are not cancelled by the primary's vacuum.
hot_standby_feedback = on
CONF
    fi
    # It follows the primary on the port the primary has now (pg_basebackup wrote the one
    # of its day into primary_conninfo).
    pg_as sed -i -E "s/(primary_conninfo = '.* port=)[0-9]+/\1$PG_PORT/" "$STANDBY_DATA/postgresql.auto.conf"
    pg_start "$STANDBY_DATA" "$STANDBY_LOG" "$STANDBY_PORT" "PostgreSQL standby" BAZAAR_PG_STANDBY_PORT
}

# pg_start <data> <log> <port> <name> <variable>: starts the cluster in <data> unless it
# runs. The port is given on the command line, so it wins over the one its configuration
# was written with.
pg_start() {
    local data="$1" log="$2" port="$3" name="$4" variable="$5" bin
    bin="$(pg_bin)" || die "PostgreSQL binaries not found"
    if pg_as "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        say "$name already running on 127.0.0.1:$port"
        return
    fi
    port_open "$port" && die "port $port is taken by something else; set $variable"
    # TLS beside plaintext (clients choose with sslmode); the key belongs to the server's
    # user, as PostgreSQL insists.
    mkdir -p "$PG_HOME/tls"
    cp "$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$PG_HOME/tls/"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$PG_HOME/tls"
    chmod 600 "$PG_HOME/tls/server.key"
    local tls="-c ssl=on -c ssl_cert_file='$PG_HOME/tls/server.crt' -c ssl_key_file='$PG_HOME/tls/server.key'"
    pg_as "$bin/pg_ctl" -D "$data" -l "$log" -o "-p $port $tls" -w -t 120 start >/dev/null \
        || { tail -n 20 "$log" >&2; die "$name did not start"; }
    say "$name is up on 127.0.0.1:$port"
}

standby_down() {
    pg_dirs
    pg_stop "$STANDBY_DATA" "PostgreSQL standby"
}

pg_down() {
    pg_dirs
    pg_stop "$PG_DATA" PostgreSQL
}

pg_stop() { # pg_stop <data> <name>
    local bin; bin="$(pg_bin)" || return 0
    if [ -f "$1/postmaster.pid" ] && pg_as "$bin/pg_ctl" -D "$1" status >/dev/null 2>&1; then
        pg_as "$bin/pg_ctl" -D "$1" -m fast -w stop >/dev/null
        say "$2 stopped"
    fi
}

# The restore drill's (make chaos): a base backup of the primary taken while it works, and
# later the primary replaced by it — what an operator's restore does (docs/operations.md,
# "Backups"). The standby, ahead of the restored primary, is copied afresh.
pg_backup() {
    local bin; bin="$(pg_bin)" || die "PostgreSQL binaries not found"
    pg_dirs
    pg_as rm -rf "$PG_HOME/backup"
    pg_as env PGPASSWORD="$PG_PASSWORD" "$bin/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" \
        -U "$PG_USER" -D "$PG_HOME/backup" --wal-method=stream --checkpoint=fast --no-sync \
        >/dev/null || die "pg_basebackup from 127.0.0.1:$PG_PORT failed"
    say "base backup of the primary in $PG_HOME/backup"
}

pg_restore() {
    pg_dirs
    [ -f "$PG_HOME/backup/PG_VERSION" ] || die "no base backup in $PG_HOME/backup: take one first"
    standby_down
    pg_down
    pg_as rm -rf "$PG_DATA" "$STANDBY_DATA"
    pg_as cp -a "$PG_HOME/backup" "$PG_DATA"
    say "the primary's data replaced by the base backup"
    pg_up
    standby_up
}

pg_status() {
    local bin; bin="$(pg_bin)" || { echo "postgres   not installed"; return; }
    pg_dirs
    if pg_as "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
        echo "postgres   up    127.0.0.1:$PG_PORT  pid $(head -n 1 "$PG_DATA/postmaster.pid")  data $PG_DATA"
    else
        echo "postgres   down"
    fi
    if pg_as "$bin/pg_ctl" -D "$STANDBY_DATA" status >/dev/null 2>&1; then
        echo "standby    up    127.0.0.1:$STANDBY_PORT  pid $(head -n 1 "$STANDBY_DATA/postmaster.pid")  data $STANDBY_DATA"
    else
        echo "standby    down"
    fi
}

# ---- Redis ---------------------------------------------------------------------------

REDIS_DIR="$LOCAL/redis"
redis_up() {
    mkdir -p "$REDIS_DIR"
    if running_pid "$REDIS_DIR/redis.pid" redis-server >/dev/null; then
        say "Redis already running on 127.0.0.1:$REDIS_PORT"
        return
    fi
    port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by something else; set BAZAAR_REDIS_PORT"
    # A cache: no persistence.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" --daemonize yes \
        --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
        --save "" --appendonly no --protected-mode yes \
        --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$TLS_DIR/server.crt" \
        --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_DIR/ca.crt" \
        --tls-auth-clients no
    wait_for 30 "Redis on 127.0.0.1:$REDIS_PORT" redis_ping || die "Redis did not start (see $REDIS_DIR/redis.log)"
}
# The development signing key: random, made on first use in .local/jwt-secret (git-ignored,
# readable by you only) and kept, so tokens outlive a restart. The repository holds none.
signing_secret() {
    local file="$LOCAL/jwt-secret"
    if [ ! -s "$file" ]; then
        mkdir -p "$LOCAL"
        (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_' >"$file")
    fi
    cat "$file"
}

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }
redis_down() { stop_pid "$REDIS_DIR/redis.pid" redis-server "Redis"; }
redis_status() {
    local pid
    if pid="$(running_pid "$REDIS_DIR/redis.pid" redis-server)"; then
        echo "redis      up    127.0.0.1:$REDIS_PORT  pid $pid"
    else
        echo "redis      down"
    fi
}

# ---- Apache Kafka --------------------------------------------------------------------

kafka() {
    KAFKA_DIR="$LOCAL/kafka" KAFKA_PORT="$KAFKA_PORT" KAFKA_TLS_DIR="$TLS_DIR" \
        "$ROOT/deploy/local/kafka.sh" "$@"
}

# ---- the schema registry -------------------------------------------------------------

registry() {
    REGISTRY_DIR="$LOCAL/registry" REGISTRY_PORT="$REGISTRY_PORT" \
        REGISTRY_DATABASE_URL="jdbc:postgresql://127.0.0.1:$PG_PORT/$REGISTRY_DATABASE" \
        REGISTRY_DATABASE_USER="$PG_USER" REGISTRY_DATABASE_PASSWORD="$PG_PASSWORD" \
        "$ROOT/deploy/local/registry.sh" "$@"
}

# ---- main ----------------------------------------------------------------------------

case "${1:-}" in
    up)
        mkdir -p "$LOCAL"
        install_missing
        tls_up
        pg_up
        standby_up
        redis_up
        # The registry's JVM starts while Kafka's does (Maven and Java come with Kafka's).
        kafka install
        registry up
        kafka up
        registry wait
        ;;
    down)
        registry down
        kafka down
        redis_down
        standby_down
        pg_down
        ;;
    status)
        pg_status
        redis_status
        kafka status
        registry status
        ;;
    env)
        # What the services and tests are pointed at: every broker, and topics replicated
        # on all of them (up to three). Values in single quotes, for `eval`.
        var() { printf "%s='%s'\n" "$1" "$2"; }
        brokers="$(kafka bootstrap)"
        nodes="$(tr -cd ',' <<<"$brokers" | wc -c)"
        var KAFKA_REPLICATION_FACTOR "$((nodes + 1))"
        var SCHEMA_REGISTRY_URL "$(registry url)"
        pg_url() { echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$1/$PG_DATABASE$2"; }
        if [ "${BAZAAR_TLS:-0}" = 1 ]; then
            # Every link encrypted, every server's name checked against the stack's CA.
            verify="?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.crt"
            var KAFKA_BROKERS "$(kafka bootstrap-tls)"
            var KAFKA_SECURITY_PROTOCOL "SASL_SSL"
            var KAFKA_SASL_MECHANISM "SCRAM-SHA-512"
            var KAFKA_SASL_USERNAME "bazaar"
            var KAFKA_SASL_PASSWORD "$(cat "$TLS_DIR/kafka-password")"
            var KAFKA_SSL_CA_LOCATION "$TLS_DIR/ca.crt"
            var DATABASE_URL "$(pg_url "$PG_PORT" "$verify")"
            var DATABASE_READ_URL "$(pg_url "$STANDBY_PORT" "$verify")"
            var REDIS_URL "rediss://127.0.0.1:$REDIS_TLS_PORT/0"
            var REDIS_TLS_CA_FILE "$TLS_DIR/ca.crt"
        else
            var KAFKA_BROKERS "$brokers"
            # Plaintext on loopback, said outright: left to sqlx's default (`prefer`), every
            # connection negotiated unverified TLS, and building its OpenSSL context (the
            # system's trust store parsed twice) was over half of a system test's CPU.
            var DATABASE_URL "$(pg_url "$PG_PORT" "?sslmode=disable")"
            # Reports and history read the standby.
            var DATABASE_READ_URL "$(pg_url "$STANDBY_PORT" "?sslmode=disable")"
        fi
        # Services not told otherwise run as production and refuse the stack's defaults.
        var BAZAAR_ENV "development"
        var JWT_SECRET "$(signing_secret)"
        ;;
    install)
        install_missing
        kafka install
        registry install
        ;;
    start|stop|backup|restore)
        action="$1" component="${2:-}"
        case "$action:$component" in
            backup:postgres) pg_backup ;;
            restore:postgres) pg_restore ;;
            start:postgres) pg_up ;;
            stop:postgres) pg_down ;;
            start:standby) standby_up ;;
            stop:standby) standby_down ;;
            start:redis) redis_up ;;
            stop:redis) redis_down ;;
            start:kafka) kafka up ;;
            stop:kafka) kafka down ;;
            start:registry) registry up && registry wait ;;
            stop:registry) registry down ;;
            *) echo "usage: $0 $action postgres|standby|redis|kafka|registry" >&2; exit 2 ;;
        esac
        ;;
    *)
        echo "usage: $0 up|down|status|env|install|start <component>|stop <component>|backup postgres|restore postgres" >&2
        exit 2
        ;;
esac
