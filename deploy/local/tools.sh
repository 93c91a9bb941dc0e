#!/usr/bin/env bash
# Test tools the project pins, installed on first use under .local/tools and printed as a
# path. Several tests may ask at once: one installs, the others wait for it.
#
#   deploy/local/tools.sh schemathesis   the OpenAPI fuzzer (PyPI), for the contract tests
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${BAZAAR_LOCAL_DIR:-$ROOT/.local}/tools"
SCHEMATHESIS_VERSION=4.32.5

die() { printf '\033[1;31m[tools] %s\033[0m\n' "$*" >&2; exit 1; }

schemathesis() {
    local venv="$TOOLS/schemathesis"
    if [ ! -x "$venv/bin/schemathesis" ]; then
        python3 -c 'import venv, ensurepip' 2>/dev/null \
            || die "python3-venv is missing: run deploy/local/stack.sh install"
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2 \
            || die "installing schemathesis $SCHEMATHESIS_VERSION from PyPI failed"
    fi
    echo "$venv/bin/schemathesis"
}

mkdir -p "$TOOLS"
exec 9>"$TOOLS/.lock"
flock 9
case "${1:-}" in
    schemathesis) schemathesis ;;
    *) die "usage: $0 schemathesis" ;;
esac
