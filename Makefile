# The commands a newcomer needs. Everything runs on this machine, no Docker:
# deploy/local starts a private PostgreSQL, Redis and Apache Kafka on loopback ports.
SHELL := /bin/bash
# Prebuilt cargo-nextest, cargo-deny, cargo-fuzz and kubectl (deploy/local/tools.sh).
LOCAL := $(or $(BAZAAR_LOCAL_DIR),$(CURDIR)/.local)
TOOLS_BIN := $(LOCAL)/tools/bin
export PATH := $(TOOLS_BIN):$(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo
STACK := deploy/local/stack.sh
SERVICES := deploy/local/services.sh

.PHONY: up down status stack build dashboard dashboard-test examples tools test lint deny advisories check-deploy fmt bench demo chaos fuzz

## up: the stack, the migrations and the three services, in the background; the dashboard
up: stack build dashboard
	@$(SERVICES) up
	@echo
	@echo "  dashboard   http://127.0.0.1:8082/app/   (sign in as demo-manager, password demo-password-only)"
	@echo "  ingest      http://127.0.0.1:8081   (/openapi.json /healthz /readyz /metrics)"
	@echo "  query-api   http://127.0.0.1:8082"
	@echo "  processors  http://127.0.0.1:8083"
	@echo "  registry    http://127.0.0.1:18081/apis/ccompat/v7   (the topics' Avro schemas: docs/contracts.md)"
	@echo "  admin       user admin, password in .local/admin-password"
	@echo "  logs        .local/logs/   status: make status   stop: make down"

## demo: up, then the POS simulator for 30 s (about 200 movements/s), checked against query-api
demo: up
	@echo
	@echo "  pos-sim: 3 stores selling, restocking, retrying and syncing offline tills for 30 s"
	@target/release/pos-sim --seconds 30 --rate 200 --movements 0

## down: stop the services and the stack (only what `up` started)
down:
	@$(SERVICES) down
	@$(STACK) down

status:
	@$(STACK) status
	@$(SERVICES) status

## stack: PostgreSQL, Redis, Apache Kafka and the schema registry (installs what is missing; KAFKA_NODES=3 for three brokers)
stack:
	@$(STACK) up

build:
	$(CARGO) build --release --bins

## dashboard: the web dashboard's npm packages and build (dashboard/dist, served by query-api)
dashboard:
	@deploy/local/dashboard.sh build

# The same, and Debian's Chromium for the browser tests.
dashboard-test:
	@deploy/local/dashboard.sh test

# The Python examples' virtualenv (examples/python/requirements.txt), for their test.
examples:
	@deploy/local/tools.sh examples >/dev/null

# The fuzz targets (another toolchain, other flags: nothing shared with the workspace)
# build at the lowest priority from the start, on the CPU that lint and the stack's install
# leave idle; they are stopped (SIGSTOP to their process group) while the workspace tests
# run — beside them, even at nice 19, the tests took 544 s instead of 344 s — and go on
# beside the fault suite, which mostly waits, then run the targets 30 s side by side. Their own
# process group (`set -m`), not a session of their own: with the kernel's autogroups a new
# session gets an equal share of the CPU whatever its nice value.
FUZZ_SMOKE := FUZZ_SECONDS=30 FUZZ_PROFILE=dev FUZZ_SANITIZER=none
## test: lint, check the deployment files, build the dashboard (with Chromium for its browser tests) and bring the stack up if needed (side by side), run every test of the workspace against it in parallel (nextest; the slowest ten printed), then the fault suite with small counts beside the browser tests and the fuzz targets (30 s each, side by side)
# Each phase's end is printed with the seconds since the start: where the time goes. The
# browser tests (Chromium, the system test `dashboard`) run after the workspace's tests:
# beside them they took 90-100 s instead of 45-60 and slowed the contract tests by a third;
# beside the fault suite, which mostly waits, they meet only its stack and the fuzz
# targets, at nice 19. The fault suite's binary is the workspace run's.
test: tools
	@started=$$SECONDS; phase() { echo "[make test] $$1 after $$((SECONDS - started)) s"; }; \
	mkdir -p $(LOCAL)/fuzz; \
	set -m; \
	$(FUZZ_SMOKE) nice -n 19 deploy/local/fuzz.sh >$(LOCAL)/fuzz/smoke.log 2>&1 & \
	fuzz_smoke=$$!; \
	set +m; \
	trap 'kill -KILL -- -'$$fuzz_smoke' 2>/dev/null || true' EXIT; \
	$(MAKE) --no-print-directory -j4 --output-sync=target lint check-deploy stack dashboard-test examples || exit $$?; \
	phase "lint, deployment files, stack, dashboard build and examples done"; \
	kill -STOP -- -$$fuzz_smoke 2>/dev/null || true; \
	status=0; \
	( set -a && eval "$$($(STACK) env)" && set +a && \
		$(CARGO) nextest run --workspace --profile ci -E 'not test(/^dashboard::/)' ) || status=$$?; \
	phase "workspace tests (build and run) done"; \
	deploy/local/slowest.sh target/nextest/ci/junit.xml 10 || true; \
	kill -CONT -- -$$fuzz_smoke 2>/dev/null || true; \
	( set -a && eval "$$($(STACK) env)" && set +a && \
		$(CARGO) nextest run --workspace --profile ci -E 'test(/^dashboard::/)' \
		>$(LOCAL)/browser-tests.log 2>&1 ) & browser=$$!; \
	CHAOS_SCALE=small deploy/local/chaos.sh || status=$$?; \
	phase "fault suite done"; \
	wait $$browser || status=$$?; \
	cat $(LOCAL)/browser-tests.log; \
	phase "browser tests done"; \
	wait $$fuzz_smoke || status=1; \
	phase "fuzz smoke done"; \
	cat $(LOCAL)/fuzz/smoke.log; \
	exit $$status

## tools: the prebuilt test and lint tools, pinned, into .local/tools (seconds, once)
tools:
	@deploy/local/tools.sh dev >/dev/null

## chaos: processors killed, PostgreSQL restarted, Redis stopped, a broker killed, a poison record, PostgreSQL restored from a backup — on a stack of its own; one table
chaos:
	@deploy/local/chaos.sh

## bench: the broker's own ceiling, then the ingest, processors and query-api suites on a separate one-broker stack; one table
bench:
	@deploy/local/bench.sh

## fuzz: each cargo-fuzz target for FUZZ_SECONDS (60) from its seed corpus (nightly toolchain)
fuzz:
	@deploy/local/fuzz.sh

## lint: formatting and clippy (warnings are errors), and the supply-chain policy
lint: deny
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## deny: licenses, bans and sources of every dependency against deny.toml (crates.io only, no advisory database)
deny: tools
	$(CARGO) deny --log-level error --locked check licenses bans sources

## advisories: the RustSec advisory database against Cargo.lock; needs the internet (GitHub), so a networked CI runs it, not ours
advisories: tools
	$(CARGO) deny check advisories

## check-deploy: docker-compose.yml, deploy/Dockerfile, the Kubernetes manifests, Prometheus rules and Grafana dashboards, validated without a container engine
check-deploy:
	@deploy/check.sh

fmt:
	$(CARGO) fmt --all
