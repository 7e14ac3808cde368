# hookbridge: the two commands a newcomer needs are `make run` and `make test`.
SHELL := bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:9092
SCHEMA_REGISTRY_URL ?= http://127.0.0.1:8081/apis/ccompat/v7
export KAFKA_BOOTSTRAP_SERVERS SCHEMA_REGISTRY_URL
export CARGO_TERM_COLOR ?= never

.PHONY: help run test deps build release stack-up stack-down stack-status venv lint unit integration python-test deploy-check consume notify bench bench-smoke bench-micro profile clean

help:
	@echo "make run          start the local Kafka + registry and the gateway with a dev config"
	@echo "make test         the whole suite: lint, unit, integration (real Kafka + registry), Python consumer, deploy checks,"
	@echo "                  containers (testcontainers, compose, runtime image), the chart on a local Kubernetes,"
	@echo "                  short fuzz, chaos and benchmark passes (run it as root)"
	@echo "make containers   the container paths on podman behind the Docker API (or a Docker engine)"
	@echo "make k8s-test     the Helm chart on a local single-node Kubernetes built from source"
	@echo "make stack-up     start Kafka (127.0.0.1:9092) and Apicurio Registry (127.0.0.1:8081) without Docker"
	@echo "make stack-down   stop them"
	@echo "make consume TOPIC=sendbird.group_channel   print records decoded as a consumer team would"
	@echo "make notify       examples/notify: notify channel members of sent messages (JSON lines on stdout)"
	@echo "make bench        hookbridge beside the bare HTTP and Kafka ceilings and Node/Python peers:"
	@echo "                  docs/benchmarks.md and .png from a full run (minutes)"
	@echo "make bench-smoke  a few seconds of each contender through the same harness (report in a temp dir)"
	@echo "make bench-micro  per-body CPU of parse, encode and HMAC beside one validating JSON pass"
	@echo "make profile      a perf CPU profile of the release gateway under load (bench/profile.sh)"
	@echo "make chaos        every 200 survives leader kills on a three-broker cluster (long run)"
	@echo "make fuzz         each fuzz target for FUZZ_SECONDS (300)"
	@echo "make edge-measure memory and service under attack, as figures"

deps:
	@bash scripts/install-deps.sh

build:
	cargo build --locked

release:
	cargo build --locked --release

stack-up:
	@bash scripts/stack.sh up

stack-down:
	@bash scripts/stack.sh down

stack-status:
	@bash scripts/stack.sh status

venv:
	@bash scripts/venv.sh

dev.env:
	@umask 077
	{
	  echo "# Local development secrets for make run (git-ignored). The app id matches tests/fixtures/sendbird."
	  echo "HOOKBRIDGE_SENDBIRD_APP_ID=A1B2C3D4-0000-4000-8000-000000000001"
	  echo "HOOKBRIDGE_SENDBIRD_API_TOKENS=$$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	} > dev.env
	echo "created dev.env with a random development API token"

run: deps stack-up build dev.env
	@bash scripts/run-dev.sh

consume: venv
	@.venv/bin/python scripts/consume.py $(TOPIC) --from-beginning

# examples/notify: the tutorial's use case, notifications as JSON lines on stdout (NOTIFY_ARGS).
NOTIFY_ARGS ?= --from-beginning --jsonl -
notify:
	cargo build --locked --example notify
	./target/debug/examples/notify $(NOTIFY_ARGS)

lint:
	cargo fmt --all -- --check
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	cargo clippy --locked --all-targets -- -D warnings

unit:
	cargo test --locked --lib --bins

integration: stack-up
	cargo test --locked --test integration

python-test: stack-up venv
	cargo build --locked
	HOOKBRIDGE_BIN=$(CURDIR)/target/debug/hookbridge .venv/bin/python -m pytest -q tests/python

deploy-check: venv
	bash scripts/check-deploy.sh

# The whole suite, exactly what CI runs (.ci/run calls this target).
test: deps stack-up venv
	$(MAKE) --no-print-directory lint
	# the examples the integration suite runs as programs (examples/notify); cargo test builds
	# an example with `test = true` only as a test harness
	cargo build --locked --examples
	cargo test --locked
	HOOKBRIDGE_BIN=$(CURDIR)/target/debug/hookbridge .venv/bin/python -m pytest -q tests/python
	bash scripts/check-deploy.sh
	$(MAKE) --no-print-directory containers HOOKBRIDGE_PROFILE=debug
	$(MAKE) --no-print-directory k8s-test HOOKBRIDGE_PROFILE=debug
	$(MAKE) --no-print-directory fuzz-short
	$(MAKE) --no-print-directory chaos-short
	$(MAKE) --no-print-directory bench-smoke

# Benchmark harness (issue 8, bench/README.md): the bare HTTP and produce ceilings, hookbridge
# and the Node and Python peers, one after the other on the local stack with the same bodies and
# load generator; prints the table and writes docs/benchmarks.md and docs/benchmarks.png (raw
# results and logs in bench/out/). Minutes. BENCH_ARGS go to bench/run.py (see its --help).
# hookbridge is built on its own so that the binary measured is the one `cargo build` makes.
BENCH_PROGRAMS := --example ceiling-http --example ceiling-produce --example bench-load
BENCH_ARGS ?=
bench: stack-up
	cargo build --locked --release --bin hookbridge
	cargo build --locked --release $(BENCH_PROGRAMS)
	bash bench/setup.sh
	bench/.venv/bin/python bench/run.py --profile release $(BENCH_ARGS)

# In-process figures, no stack: ns per body of the typed parse, the Avro encoding and the HMAC,
# each beside one validating serde_json pass over the same body (bench/micro).
BENCH_MICRO_ARGS ?=
bench-micro:
	cargo run --locked --release --example bench-micro -- $(BENCH_MICRO_ARGS)

# A CPU profile of the release gateway under closed-loop load (perf record; bench/profile.sh):
# PROFILE_ARGS="256 20 small" are the concurrency, seconds and body set.
profile: stack-up
	cargo build --locked --release --bin hookbridge --example bench-load
	bash bench/profile.sh $(PROFILE_ARGS)

# The same code path for a few seconds per contender, on the debug builds `cargo test` makes:
# fails unless every contender answered 200 and nothing else, each 200 is a record in Kafka,
# and the report was written (into a new temporary directory, never docs/). Nothing about speed.
bench-smoke: stack-up
	cargo build --locked --bin hookbridge $(BENCH_PROGRAMS) --example bench-micro
	bash bench/setup.sh
	bench/.venv/bin/python bench/run.py --smoke --profile debug $(BENCH_ARGS)
	target/debug/examples/bench-micro --seconds 0.05

# Chaos suite (issue 6, docs/reliability.md): a fresh three-node Kafka cluster on loopback
# (scripts/cluster.sh, torn down afterwards, also on failure), the registry of the local stack,
# and examples/chaos.rs killing partition leaders and the gateway under signed load. Fails if
# any webhook answered 200 is missing from Kafka. Options: CHAOS_ARGS (see examples/chaos.rs).
.PHONY: chaos chaos-short
chaos: CHAOS_ARGS ?= --broker-kills 10 --gateway-kills 1 --gateway-terms 1
chaos-short: CHAOS_ARGS ?= --broker-kills 3 --gateway-kills 1 --gateway-terms 1
chaos chaos-short: stack-up
	cargo build --locked --bins --examples
	trap 'bash scripts/cluster.sh down' EXIT
	bash scripts/cluster.sh down
	bash scripts/cluster.sh up
	HOOKBRIDGE_BIN=$(CURDIR)/target/debug/hookbridge ./target/debug/examples/chaos $(CHAOS_ARGS)

# Coverage-guided fuzzing (issue 6, fuzz/README.md): cargo fuzz on the nightly toolchain, the
# verify, parse, avro and config targets each for FUZZ_SECONDS, failing on any crash (the input
# is kept in fuzz/artifacts/<target>/). cargo-fuzz is installed into .tools on first use; the
# build has its own target dir (fuzz/target). fuzz-short is the CI-sized run.
.PHONY: fuzz fuzz-short
fuzz: FUZZ_SECONDS ?= 300
fuzz-short: FUZZ_SECONDS ?= 20
fuzz fuzz-short:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# Memory and service under attack (docs/reliability.md): stalled and trickling forged uploads,
# half-sent heads and painful 2 MiB bodies against the release binary. Prints figures only.
.PHONY: edge-measure
edge-measure: EDGE_CONNECTIONS ?= 500
edge-measure: stack-up venv
	cargo build --locked --release --bins
	HOOKBRIDGE_BIN=$(CURDIR)/target/release/hookbridge .venv/bin/python scripts/edge_measure.py $(EDGE_CONNECTIONS)

# Containers (issue 11, docs/containers.md): a Docker-API engine on this machine (podman + runc
# behind the Docker API when no Docker engine answers; a working Docker engine is used as it is),
# local images built from Debian packages and Maven Central jars, and the three container paths:
# the integration suite through testcontainers, `docker-compose up` and the runtime image.
.PHONY: engine-up engine-down images test-containers compose-smoke image-check containers
engine-up:
	@bash scripts/container-engine.sh up

engine-down:
	@bash scripts/container-engine.sh down

images: engine-up
	bash scripts/images.sh all

# The whole integration suite through testcontainers: KAFKA_BOOTSTRAP_SERVERS and
# SCHEMA_REGISTRY_URL unset, images from HOOKBRIDGE_TEST_KAFKA_IMAGE / _REGISTRY_IMAGE (the local
# builds here); the containers of the run are removed afterwards, also on failure.
test-containers: engine-up
	bash scripts/images.sh kafka
	bash scripts/images.sh registry
	eval "$$(bash scripts/container-engine.sh env)"
	eval "$$(bash scripts/images.sh env)"
	run_id="make-$$$$-$$(date +%s)"
	trap 'docker ps -aq --filter "label=org.hookbridge.test-run='"$$run_id"'" | xargs -r docker rm -f -v >/dev/null' EXIT
	env -u KAFKA_BOOTSTRAP_SERVERS -u SCHEMA_REGISTRY_URL HOOKBRIDGE_TEST_RUN_ID="$$run_id" \
	  cargo test --locked --test integration

compose-smoke: engine-up venv
	bash scripts/compose-smoke.sh

image-check: engine-up stack-up venv
	bash scripts/image-check.sh

containers: test-containers compose-smoke image-check

# Kubernetes (issue 12, docs/deploy.md "Tried on a real cluster"): a single-node cluster built
# from source (scripts/k8s-local.sh; binaries cached in .tools/k8s/cache, keyed by version) and
# tests/k8s/k8s_test.py: the chart under PodSecurity restricted, readiness following the broker,
# webhooks through the Service, helm test, a rolling upgrade under load, token rotation, the
# optional parts and helm uninstall. The cluster is removed afterwards unless K8S_KEEP=1.
PROM_OPERATOR_VERSION ?= 0.85.0
.PHONY: k8s-up k8s-down k8s-test
k8s-up:
	bash scripts/k8s-local.sh up

k8s-down:
	bash scripts/k8s-local.sh down

k8s-test: engine-up stack-up venv
	[ -x .tools/bin/helm ] || bash scripts/check-deploy.sh
	bash scripts/images.sh hookbridge
	trap '[ -n "$${K8S_KEEP:-}" ] || bash scripts/k8s-local.sh down' EXIT
	bash scripts/k8s-local.sh up
	image="$$(bash scripts/k8s-local.sh load hookbridge:dev)"
	# the Prometheus Operator's ServiceMonitor CRD, from its Go module
	crd_dir="$$(go mod download -json github.com/prometheus-operator/prometheus-operator@v$(PROM_OPERATOR_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p')"
	K8S_IMAGE="$$image" HOST_IP="$$(bash scripts/k8s-local.sh host-ip)" \
	  KUBECTL="$$(bash scripts/k8s-local.sh kubectl-path)" KUBECONFIG="$$(bash scripts/k8s-local.sh kubeconfig)" \
	  SERVICEMONITOR_CRD="$$crd_dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
	  HELM=$(CURDIR)/.tools/bin/helm .venv/bin/python tests/k8s/k8s_test.py

clean:
	-bash scripts/k8s-local.sh down
	-bash scripts/container-engine.sh down
	cargo clean
	rm -rf .venv .tools fuzz/target fuzz/work fuzz/artifacts
