#!/usr/bin/env bash
# Checks every deployment file that cannot run here (no container engine on our machines):
#   docker-compose.yml  against the Compose specification's JSON schema (check-jsonschema)
#                       and through `docker-compose config`, for both Kafka profiles
#   deploy/Dockerfile   pinned base images
#   deploy/prometheus   promtool check config / rules, and the alert rules' unit tests
#   deploy/k8s          the production overlay built by kustomize (kubectl's), every resource
#                       validated against Kubernetes' schemas (kubernetes-validate --strict)
#   deploy/grafana      the dashboard is JSON (system-tests/tests/system/deploy.rs checks its metrics)
# Installs what it needs under .local/tools (Debian packages with apt-get, PyPI into a
# virtualenv, kubectl as a prebuilt wheel through deploy/local/tools.sh). `make test` runs it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${BAZAAR_LOCAL_DIR:-$ROOT/.local}/tools"
KUBERNETES_VERSION=1.34.0
cd "$ROOT"

say() { printf '\033[1m[deploy-check]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[deploy-check] %s\033[0m\n' "$*" >&2; exit 1; }

install_tools() {
    local packages=()
    command -v docker-compose >/dev/null || packages+=(docker-compose)
    command -v promtool >/dev/null || packages+=(prometheus)
    python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
    if [ "${#packages[@]}" -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        say "installing Debian packages: ${packages[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${packages[@]}" >/dev/null
    fi
    if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ] || [ ! -x "$TOOLS/venv/bin/check-jsonschema" ]; then
        say "installing check-jsonschema and kubernetes-validate from PyPI"
        /usr/bin/python3 -m venv "$TOOLS/venv" 2>/dev/null || python3 -m venv "$TOOLS/venv"
        "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check \
            'check-jsonschema==0.39.0' 'kubernetes-validate==1.37.0'
    fi
    KUBECTL="$("$ROOT/deploy/local/tools.sh" dev)/kubectl"
}

# Values for the compose file's required variables: only `config` sees them.
compose_config() { # compose_config <profile> <brokers> <replication>
    env POSTGRES_PASSWORD=check POSTGRES_REPLICATION_PASSWORD=check REDIS_PASSWORD=check \
        JWT_SECRET=check GRAFANA_ADMIN_PASSWORD=check COMPOSE_PROFILES="$1" \
        KAFKA_BROKERS="$2" KAFKA_REPLICATION_FACTOR="$3" \
        docker-compose -f docker-compose.yml --env-file "$work/empty.env" config
}

install_tools
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: >"$work/empty.env"

say "docker-compose.yml against the Compose specification"
"$TOOLS/venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
say "docker-compose config (three brokers, one broker)"
compose_config kafka-cluster kafka-1:9092,kafka-2:9092,kafka-3:9092 3 >/dev/null
compose_config kafka-single kafka-1:9092 1 >/dev/null
# Without the secrets, compose refuses to start.
if docker-compose -f docker-compose.yml --env-file "$work/empty.env" config >/dev/null 2>&1; then
    die "docker-compose.yml accepted a missing POSTGRES_PASSWORD"
fi

say "deploy/Dockerfile: pinned base images"
grep -E '^ARG (RUST|DEBIAN)_VERSION=[0-9]+(\.[0-9]+)+$' deploy/Dockerfile | wc -l | grep -qx 2 \
    || die "deploy/Dockerfile: RUST_VERSION and DEBIAN_VERSION must be pinned to a version"

say "Prometheus configuration, alert rules and their tests"
promtool check config deploy/prometheus/prometheus.yml >/dev/null
promtool check rules deploy/prometheus/rules/*.yml >/dev/null
promtool test rules deploy/prometheus/rules-test.yml

say "Kubernetes: kubectl kustomize overlays/production | kubernetes-validate --strict ($KUBERNETES_VERSION)"
cp -r deploy/k8s "$work/k8s"
cp "$work/k8s/overlays/production/secrets.env.example" "$work/k8s/overlays/production/secrets.env"
cp "$work/k8s/overlays/production/registry.env.example" "$work/k8s/overlays/production/registry.env"
"$KUBECTL" kustomize "$work/k8s/overlays/production" >"$work/production.yaml"
"$TOOLS/venv/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "$work/production.yaml"
say "$(grep -c '^kind:' "$work/production.yaml") resources valid"

say "Grafana dashboards are JSON"
for dashboard in deploy/grafana/dashboards/*.json; do
    python3 -m json.tool "$dashboard" >/dev/null || die "$dashboard is not JSON"
done
say "all deployment files check out"
