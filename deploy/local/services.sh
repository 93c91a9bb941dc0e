#!/usr/bin/env bash
# Runs the three services (release builds) in the background against deploy/local's stack,
# with pid files and logs under .local/. `down` sends SIGTERM and waits: each service
# finishes its in-flight work and exits.
#
#   deploy/local/services.sh up|down|status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${BAZAAR_LOCAL_DIR:-$ROOT/.local}"
BIN="${BAZAAR_BIN_DIR:-$ROOT/target/release}"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
# Started in this order: processors first (they own the streaming state), then the APIs.
SERVICES=(processors ingest query-api)

say() { printf '\033[1m[services]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[services] %s\033[0m\n' "$*" >&2; exit 1; }

listen_addr() {
    case "$1" in
        ingest) echo "${INGEST_LISTEN_ADDR:-127.0.0.1:8081}" ;;
        query-api) echo "${QUERY_API_LISTEN_ADDR:-127.0.0.1:8082}" ;;
        processors) echo "${PROCESSORS_LISTEN_ADDR:-127.0.0.1:8083}" ;;
    esac
}

running_pid() {
    local pidfile="$RUN/$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$BIN/$1" || return 1
    echo "$pid"
}

ready() { curl -fsS -m 2 "http://$(listen_addr "$1")/readyz" >/dev/null 2>&1; }

# The first admin: a random password, written once to .local/admin-password (git-ignored,
# readable by you only) the way Jenkins hands out its initial password. Later `up`s keep
# it; `ingest create-admin` never changes an existing user.
bootstrap_admin() {
    local password_file="$LOCAL/admin-password"
    if [ ! -s "$password_file" ]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$password_file")
        say "admin password generated in $password_file"
    fi
    "$BIN/ingest" create-admin --username admin --password-file "$password_file" >>"$LOGS/ingest.log" 2>&1 \
        || { tail -n 5 "$LOGS/ingest.log" >&2; die "creating the admin user failed"; }
}

# The topics, as schemas::topics declares them (created once, then checked every time),
# and their value schemas in the registry.
ensure_topics() {
    "$BIN/bazaar-topics" ensure >>"$LOGS/topics.log" 2>&1 \
        || { tail -n 5 "$LOGS/topics.log" >&2; die "the topics or their schemas are not as declared (log: $LOGS/topics.log)"; }
    say "topics as declared, value schemas registered at $SCHEMA_REGISTRY_URL"
}

up() {
    mkdir -p "$RUN" "$LOGS"
    [ -x "$BIN/ingest" ] || die "$BIN/ingest is not built: run \`cargo build --release --bins\`"
    # Every broker of the local cluster, and topics replicated on up to three of them.
    set -a
    eval "$("$ROOT/deploy/local/stack.sh" env)"
    # The dashboard (`make dashboard` builds it) is served by query-api; its pages call
    # ingest, which allows their origin (by either name of the loopback address).
    local query_port="${QUERY_API_LISTEN_ADDR:-127.0.0.1:8082}"
    query_port="${query_port##*:}"
    QUERY_DASHBOARD_DIR="${QUERY_DASHBOARD_DIR:-$ROOT/dashboard/dist}"
    QUERY_DASHBOARD_INGEST_URL="${QUERY_DASHBOARD_INGEST_URL:-http://$(listen_addr ingest)}"
    CORS_ALLOWED_ORIGINS="${CORS_ALLOWED_ORIGINS:-http://127.0.0.1:$query_port,http://localhost:$query_port}"
    set +a
    ensure_topics
    bootstrap_admin
    for service in "${SERVICES[@]}"; do
        [ -x "$BIN/$service" ] || die "$BIN/$service is not built: run \`cargo build --release --bins\`"
        if running_pid "$service" >/dev/null; then
            say "$service already running on $(listen_addr "$service")"
            continue
        fi
        setsid nohup "$BIN/$service" >>"$LOGS/$service.log" 2>&1 </dev/null &
        local pid=$!
        echo "$pid" >"$RUN/$service.pid"
        local deadline=$((SECONDS + 60))
        until ready "$service"; do
            # By pid: until the child has exec'd, its command line is still this script's.
            if ! kill -0 "$pid" 2>/dev/null; then
                tail -n 20 "$LOGS/$service.log" >&2
                die "$service exited during start-up (log: $LOGS/$service.log)"
            fi
            [ "$SECONDS" -lt "$deadline" ] || die "$service not ready after 60 s (log: $LOGS/$service.log)"
            sleep 0.3
        done
        say "$service ready on http://$(listen_addr "$service")"
    done
}

down() {
    for service in "${SERVICES[@]}"; do
        local pid
        if pid="$(running_pid "$service")"; then
            kill -TERM "$pid"
            for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$pid" 2>/dev/null; then
                say "$service did not stop within 30 s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            say "$service stopped"
        fi
        rm -f "$RUN/$service.pid"
    done
}

status() {
    for service in "${SERVICES[@]}"; do
        local pid
        if pid="$(running_pid "$service")"; then
            if ready "$service"; then
                printf '%-10s up    http://%s  pid %s\n' "$service" "$(listen_addr "$service")" "$pid"
            else
                printf '%-10s up (not ready)  http://%s  pid %s\n' "$service" "$(listen_addr "$service")" "$pid"
            fi
        else
            printf '%-10s down\n' "$service"
        fi
    done
}

# The demo catalog (three stores, a supplier, twenty products, a user per role), created
# through ingest's API as the admin; a second `up` changes nothing.
seed_demo() {
    "$BIN/pos-sim" seed-demo --password-file "$LOCAL/admin-password" >>"$LOGS/pos-sim.log" 2>&1 \
        || { tail -n 5 "$LOGS/pos-sim.log" >&2; die "creating the demo catalog failed"; }
    say "demo catalog ready (stores DEMO-BLR-01, DEMO-DEL-01, DEMO-MUM-01; 20 products)"
}

try_it() {
    cat <<'TRY'

  Demo users (development only; password demo-password-only): demo-manager, demo-staff,
  demo-pos (store DEMO-BLR-01), demo-analyst (every store). Admin: user admin, password in
  .local/admin-password.

  Try it:
    TOKEN=$(curl -s localhost:8081/v1/auth/token -H 'content-type: application/json' \
      -d '{"username":"demo-manager","password":"demo-password-only"}' \
      | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
    STORE=$(curl -s localhost:8082/v1/stores -H "authorization: Bearer $TOKEN" \
      | sed 's/.*"items":\[{"id":\([0-9]*\).*/\1/')
    curl -s localhost:8082/v1/stores/$STORE/inventory?below_reorder_point=true -H "authorization: Bearer $TOKEN"
    curl -s localhost:8082/v1/stores/$STORE/reports/sales -H "authorization: Bearer $TOKEN"
  Traffic: make demo (or target/release/pos-sim --seconds 60 --rate 200)
TRY
}

case "${1:-}" in
    up) up; seed_demo; try_it ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
