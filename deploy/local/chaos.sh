#!/usr/bin/env bash
# `make chaos`: the fault suite (processors/tests/chaos/) on a stack of its own —
# PostgreSQL, Redis and one Apache Kafka broker on ports next to the development stack's
# (which keeps running untouched) — because it stops and restarts them. Processors are
# SIGKILLed mid-stream, PostgreSQL is restarted, Redis stopped, one broker of a three-node
# cluster (the test's own) killed, a poison record sent, PostgreSQL restored from a base
# backup taken seconds before; after each, the ledger, the state
# and the output topics are compared with the model. Prints one table.
#
#   deploy/local/chaos.sh            large counts (minutes)
#   CHAOS_SCALE=small deploy/local/chaos.sh   what `make test` runs
#   CHAOS_ONLY=Redis deploy/local/chaos.sh    the scenarios whose name contains it
#
# The suite is the workspace's test binary (nextest, the workspace's features): after
# `make test`'s workspace run it is already built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export PATH="$("$ROOT/deploy/local/tools.sh" dev):$HOME/.cargo/bin:$PATH"

export BAZAAR_LOCAL_DIR="$ROOT/.local/chaos"
export BAZAAR_PG_PORT="${BAZAAR_CHAOS_PG_PORT:-15434}"
export BAZAAR_REDIS_PORT="${BAZAAR_CHAOS_REDIS_PORT:-16381}"
export BAZAAR_KAFKA_PORT="${BAZAAR_CHAOS_KAFKA_PORT:-19392}"
export BAZAAR_REGISTRY_PORT="${BAZAAR_CHAOS_REGISTRY_PORT:-18381}"
export KAFKA_NODES=1
export CHAOS_SCALE="${CHAOS_SCALE:-large}"

say() { printf '\033[1m[chaos]\033[0m %s\n' "$*"; }

deploy/local/stack.sh up
trap 'deploy/local/stack.sh down >/dev/null' EXIT

export DATABASE_URL="postgres://bazaar:bazaar-dev-only@127.0.0.1:$BAZAAR_PG_PORT/bazaar?sslmode=disable"
export REDIS_URL="redis://127.0.0.1:$BAZAAR_REDIS_PORT/0"
export KAFKA_BROKERS="127.0.0.1:$BAZAAR_KAFKA_PORT"
export SCHEMA_REGISTRY_URL="http://127.0.0.1:$BAZAAR_REGISTRY_PORT/apis/ccompat/v7"
export KAFKA_REPLICATION_FACTOR=1
# The suite may stop and start the components of this stack (and no other).
export BAZAAR_CHAOS_STACK="$ROOT/deploy/local/stack.sh"

say "scale: $CHAOS_SCALE"
cargo nextest run --locked --workspace --run-ignored only --no-capture \
    -E 'binary_id(processors::chaos)'
