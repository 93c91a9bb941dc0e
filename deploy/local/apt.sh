# Sourced by the scripts that install Debian packages (stack.sh, kafka.sh, dashboard.sh):
# `apt_get ARGS…` runs apt-get as root (through sudo when needed), one at a time — `make
# test` starts the stack's and the dashboard's installs side by side, and two apt-gets at
# once fail on dpkg's lock — and waits for any other apt-get holding it.
apt_get() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    command -v apt-get >/dev/null || { echo "apt-get is missing: install $* with your package manager" >&2; return 1; }
    DEBIAN_FRONTEND=noninteractive flock -w 900 "${TMPDIR:-/tmp}/bazaar-apt.lock" \
        $sudo apt-get -o DPkg::Lock::Timeout=600 "$@"
}
