# Plinth: `make demo` to see it run, `make test` to check everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
COVERAGE_FLOOR ?= 90
TEST_WORKERS ?= 2

.PHONY: install system-deps demo test lint typecheck bench clean image image-smoke manifests

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,examples]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) examples/demo.py --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff format --check plinth tests examples bench
	$(BIN)/ruff check plinth tests examples bench

typecheck: install
	$(BIN)/mypy
	$(BIN)/lint-imports

# Debian packages the tests run for real: Prometheus (scrapes /metrics), HAProxy (balances
# replicas), PgBouncer (transaction pooling in front of PostgreSQL), Chromium (drives the
# console in tests/ui through Playwright; nothing is downloaded).
SYSTEM_PACKAGES := prometheus haproxy pgbouncer chromium
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  command -v $$p >/dev/null 2>&1 || [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "make test needs Debian's packages:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; fi

test: system-deps lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --doctest-modules plinth/core plinth/config tests --cov=plinth --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

bench: install
	$(PY) bench/run.py $(ARGS)
	$(PY) bench/monitoring.py $(MONITORING_ARGS)
	$(PY) bench/flavors.py

# The container image (not part of `make test`: it needs podman or docker and the network).
# Where Docker Hub is out of reach, build a Debian-only base first and pass it:
#   deploy/image/debian-base.sh && make image BASE_IMAGE=localhost/plinth-base:3.11-bookworm
# Behind a TLS-inspecting proxy, give the build its CA and pip.conf, e.g.
#   IMAGE_BUILD_FLAGS='-v /etc/pip.conf:/etc/pip.conf:ro -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro'
# docs/deploy.md says what was run on this project's machines.
PODMAN            ?= podman
PODMAN_RUN_FLAGS  ?=
IMAGE             ?= plinth:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BASE_IMAGE        ?= python:3.11-slim-bookworm
IMAGE_BUILD_FLAGS ?=
# Model formats beyond scikit-learn, as pip extras, and the Debian packages they need:
# IMAGE_EXTRAS=onnx,lightgbm IMAGE_SYSTEM_PACKAGES=libgomp1
IMAGE_EXTRAS      ?=
IMAGE_SYSTEM_PACKAGES ?=

image:
	$(PODMAN) build --format docker --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	  --build-arg EXTRAS=$(IMAGE_EXTRAS) --build-arg SYSTEM_PACKAGES='$(IMAGE_SYSTEM_PACKAGES)' \
	  $(IMAGE_BUILD_FLAGS) -t $(IMAGE) .

# Run the image read-only and non-root, register a model inside it, predict, scrape.
image-smoke:
	PODMAN='$(PODMAN)' PODMAN_RUN_FLAGS='$(PODMAN_RUN_FLAGS)' deploy/image/smoke.sh $(IMAGE)

# Plain Kubernetes manifests rendered from the Helm chart (tests check they are current).
manifests: install
	$(PY) deploy/k8s/render.py

clean:
	rm -rf $(VENV) .plinth .pytest_cache .mypy_cache .ruff_cache .coverage
