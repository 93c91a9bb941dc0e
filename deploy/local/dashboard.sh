#!/usr/bin/env bash
# The web dashboard: its npm packages (pinned by dashboard/package-lock.json), its build
# (dashboard/dist, which query-api serves under /app/) and, for its browser tests,
# Debian's Chromium. Node.js and npm come from Debian when the machine has none.
#
#   deploy/local/dashboard.sh build     packages and build
#   deploy/local/dashboard.sh test      the same, and Chromium for the browser tests
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/dashboard"

say() { printf '\033[1m[dashboard]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[dashboard] %s\033[0m\n' "$*" >&2; exit 1; }

# shellcheck source=deploy/local/apt.sh
. "$ROOT/deploy/local/apt.sh"

# apt_install <package...>: from the package lists as they are, else after an update.
apt_install() {
    apt_get install -y -qq "$@" >/dev/null \
        || { apt_get update -qq >/dev/null && apt_get install -y -qq "$@" >/dev/null; } \
        || die "installing $* from Debian failed"
}

packages() {
    command -v npm >/dev/null || { say "installing Node.js and npm from Debian"; apt_install nodejs npm; }
    # Again only when the lock file changed since the last install.
    if [ ! -f "$DIR/node_modules/.package-lock.json" ] \
        || [ "$DIR/package-lock.json" -nt "$DIR/node_modules/.package-lock.json" ]; then
        say "installing the npm packages"
        (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

build() {
    packages
    (cd "$DIR" && npm run --silent build >/dev/null) || die "the dashboard's build failed (cd dashboard && npm run build)"
    say "built: dashboard/dist (served at http://127.0.0.1:8082/app/)"
}

browser() {
    # Debian's Chromium: Playwright never downloads a browser of its own here.
    if [ ! -x /usr/bin/chromium ]; then
        say "installing Chromium from Debian"
        # Without its recommendations (printing, Samba, Avahi, Perl: a hundred packages a
        # headless browser never uses); its fonts, so pages render as people see them.
        apt_install --no-install-recommends chromium fonts-liberation
    fi
}

case "${1:-}" in
    build) build ;;
    test) browser & pid=$!; build; wait "$pid" ;;
    *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
