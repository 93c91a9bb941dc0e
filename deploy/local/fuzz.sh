#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/) for a bounded time from its seed corpus: the Avro
# decoder and a movement request's parsing and validation. A crash fails the run and
# leaves the input that caused it in fuzz/artifacts/<target>/.
#
#   deploy/local/fuzz.sh                 every target, FUZZ_SECONDS (60) each, side by side
#   FUZZ_SECONDS=600 deploy/local/fuzz.sh avro_decode
#   FUZZ_PROFILE=dev deploy/local/fuzz.sh   unoptimised: builds in a fraction of the time
#                                           and runs fewer inputs a second (`make test`)
#   FUZZ_SANITIZER=none deploy/local/fuzz.sh  without AddressSanitizer (`make test`): our
#                                           crates forbid unsafe code and the targets reach
#                                           no C, so the smoke run skips instrumenting it
#
# libFuzzer needs the nightly toolchain (rustup's, beside stable); cargo-fuzz is the
# prebuilt one deploy/local/tools.sh pins. Inputs that reach new code stay in a scratch
# corpus under .local/fuzz, not in the repository's seeds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${BAZAAR_LOCAL_DIR:-$ROOT/.local}"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
options=(--sanitizer "${FUZZ_SANITIZER:-address}")
[ "${FUZZ_PROFILE:-release}" = dev ] && options+=(--dev)
export PATH="$("$ROOT/deploy/local/tools.sh" dev):$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[fuzz] %s\033[0m\n' "$*" >&2; exit 1; }

rustup toolchain list | grep -q '^nightly' \
    || die "the nightly toolchain is missing (rustup toolchain install nightly)"

cd "$ROOT/fuzz"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
say "building ${targets[*]}"
cargo +nightly fuzz build "${options[@]}"
# Side by side: each target's libFuzzer on a core of its own.
run() {
    local target="$1" scratch="$LOCAL/fuzz/$1"
    mkdir -p "$scratch"
    # -rss_limit_mb: a decoder that believes a length prefix must not take the machine.
    cargo +nightly fuzz run "${options[@]}" "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch.log" 2>&1
}
say "${targets[*]}: ${SECONDS_EACH} s each from corpus/<target>, side by side"
runs=()
for target in "${targets[@]}"; do
    run "$target" &
    runs+=("$!")
done
crashed=()
for index in "${!targets[@]}"; do
    target="${targets[$index]}"
    status=0
    wait "${runs[$index]}" || status=$?
    say "$target:"
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|Failing input|artifact_prefix)' \
        "$LOCAL/fuzz/$target.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$LOCAL/fuzz/$target.log" >&2
        printf '\033[1;31m[fuzz] %s crashed: the input is in fuzz/artifacts/%s/ (log: %s)\033[0m\n' \
            "$target" "$target" "$LOCAL/fuzz/$target.log" >&2
        crashed+=("$target")
    fi
done
[ "${#crashed[@]}" -eq 0 ] || die "crashed: ${crashed[*]}"
say "no crash in ${targets[*]}"
