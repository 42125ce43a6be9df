# Plinth: `make demo` to see it run, `make test` to check everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
COVERAGE_FLOOR ?= 90

.PHONY: install system-deps demo test lint typecheck bench clean

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

# The monitoring tests scrape /metrics with a real Prometheus (Debian's package).
system-deps:
	@command -v prometheus >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; \
	  else echo "make test needs Debian's prometheus package: sudo apt-get install prometheus" >&2; exit 1; fi; }

test: system-deps lint typecheck
	$(BIN)/pytest --doctest-modules plinth/core plinth/config tests --cov=plinth --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

bench: install
	$(PY) bench/run.py $(ARGS)
	$(PY) bench/monitoring.py $(MONITORING_ARGS)
	$(PY) bench/flavors.py

clean:
	rm -rf $(VENV) .plinth .pytest_cache .mypy_cache .ruff_cache .coverage
