#!/usr/bin/env bash
# `make bench`: the benchmark suite on a stack of its own — PostgreSQL, Redis and one
# Apache Kafka broker, durable as `make up` runs it, on ports next to the development
# stack's (which keeps running untouched) — then the release services loaded over
# loopback. The broker's own ceiling is measured first; every suite states its rates as a
# share of it. Prints one table; the JSON lands in .local/bench/results/ for comparing runs.
#
#   deploy/local/bench.sh [broker] [ingest] [processors] ["processors --kinds every"] [pipeline] [query-api] [-- extra bazaar-bench flags]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

export BAZAAR_LOCAL_DIR="$ROOT/.local/bench"
export BAZAAR_PG_PORT="${BAZAAR_BENCH_PG_PORT:-15433}"
export BAZAAR_REDIS_PORT="${BAZAAR_BENCH_REDIS_PORT:-16380}"
export BAZAAR_KAFKA_PORT="${BAZAAR_BENCH_KAFKA_PORT:-19192}"
export BAZAAR_REGISTRY_PORT="${BAZAAR_BENCH_REGISTRY_PORT:-18181}"
# One broker: the laptop's stack, whatever the development stack runs.
export KAFKA_NODES=1

say() { printf '\033[1m[bench]\033[0m %s\n' "$*"; }

suites=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do suites+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
# The processors twice: stock-ins, sales and removals, then every kind of a store's life
# (returns, adjustments, counts, voids, offline sales) — what the new kinds cost.
[ ${#suites[@]} -eq 0 ] && suites=(broker ingest processors "processors --kinds every" pipeline query-api)

deploy/local/stack.sh up
trap 'deploy/local/stack.sh down >/dev/null' EXIT

say "building the release binaries"
cargo build --release --bins --quiet

# Everything below points at the benchmark stack; the secret exists for this run only.
export DATABASE_URL="postgres://bazaar:bazaar-dev-only@127.0.0.1:$BAZAAR_PG_PORT/bazaar"
export REDIS_URL="redis://127.0.0.1:$BAZAAR_REDIS_PORT"
export KAFKA_BROKERS="127.0.0.1:$BAZAAR_KAFKA_PORT"
export SCHEMA_REGISTRY_URL="http://127.0.0.1:$BAZAAR_REGISTRY_PORT/apis/ccompat/v7"
export BAZAAR_ENV=development
JWT_SECRET="bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export JWT_SECRET

# The topics, as every deployment gets them (the suites that need a fresh log use a prefix).
target/release/bazaar-topics >/dev/null

mkdir -p .local/bench/results
marker="$(mktemp)"
trap 'rm -f "$marker"; deploy/local/stack.sh down >/dev/null' EXIT
ceiling=()
for suite in "${suites[@]}"; do
    say "suite $suite"
    # shellcheck disable=SC2086 # a suite may carry its own flags
    target/release/bazaar-bench $suite "${ceiling[@]}" "$@"
    if [ "$suite" = broker ]; then
        ceiling=(--ceiling "$(find .local/bench/results -name 'broker-*.json' -newer "$marker" | sort | tail -n 1)")
    fi
done

# One table for the whole run (and its JSON beside the suites').
mapfile -t reports < <(find .local/bench/results -name '*.json' ! -name 'make-bench-*' -newer "$marker" | sort)
if [ "${#reports[@]}" -gt 1 ]; then
    say "all suites"
    target/release/bazaar-bench combine "${reports[@]}"
fi
