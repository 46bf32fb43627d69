# TradeOps: `make demo` runs the suite end to end on the embedded sandbox; `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)

.PHONY: demo up up-celery test test-compose lint format sandbox check-config bench lock venv clean

# DEVSTACK_ARGS: options of `python -m devstack` (--auto-ports, --run-dir DIR, --only DAG_ID; see its --help).
# CELERY=1: `make demo` on the Celery topology (two workers, Redis broker), as `make up-celery` runs it.
demo: $(RUNTIME_STAMP)  ## start sandbox + Airflow, trigger every DAG, print a summary, stop
	$(PY) -m devstack demo $(if $(CELERY),--celery) $(DEVSTACK_ARGS)

up: $(RUNTIME_STAMP)  ## same stack, kept running (Airflow UI on http://127.0.0.1:8080) until Ctrl-C
	$(PY) -m devstack up $(DEVSTACK_ARGS)

up-celery: $(RUNTIME_STAMP)  ## the same stack on the CeleryExecutor: two workers with their queues (Redis broker)
	$(PY) -m devstack up --celery $(DEVSTACK_ARGS)

# Two workers: one runs the tests that start a whole Airflow stack, one after another; the other the rest.
test: $(TEST_STAMP)  ## the whole test suite (unit, integration against the sandbox, end to end)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

# The docker-compose stack started for real, alone on the machine (image builds and nine containers on two cores):
# needs root and a running Docker engine, see .ci/run. In `make test` the same test is skipped unless
# TRADEOPS_COMPOSE_TEST=1.
test-compose: $(TEST_STAMP)  ## build the images, start docker-compose.yaml, run a DAG on its Celery worker, down -v
	TRADEOPS_COMPOSE_TEST=1 TRADEOPS_REQUIRE_DOCKER=1 $(PY) -m pytest -n 0 -s -m compose tests/deploy/test_compose_stack.py

LINTED := plugins dags tests sandbox devstack bench
lint: $(TEST_STAMP)  ## ruff (lint, import order, format) and mypy (types of the library and the DAGs)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

format: $(TEST_STAMP)  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix $(LINTED)
	$(VENV)/bin/ruff format $(LINTED)

sandbox: $(RUNTIME_STAMP)  ## only the simulated platform, in the foreground
	$(PY) -m sandbox up

CONFIG ?= include/config/tradeops.yaml
check-config: $(RUNTIME_STAMP)  ## validate a TradeOps config file: make check-config CONFIG=path
	$(PY) -m tradeops.config $(CONFIG)

bench: $(RUNTIME_STAMP)  ## benchmarks (see bench/README.md)
	$(PY) bench/parse_time.py
	$(PY) bench/market_calendar.py
	$(PY) bench/sandbox_startup.py
	$(PY) bench/rollout_sensor.py
	$(PY) bench/deadline_paging.py
	$(PY) bench/db_maintenance.py
	$(PY) bench/pre_market.py
	$(PY) bench/rollback.py
	$(PY) bench/alert_intake.py
	$(PY) bench/security_check.py
	$(PY) bench/market_watch.py
	$(PY) bench/executors.py

venv: $(RUNTIME_STAMP)

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found: install Python 3.11, or pass its path: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Installs exactly the lock (--no-deps: nothing outside it), then checks it is consistent.
$(RUNTIME_STAMP): requirements.txt | $(VENV)/bin/python
	@echo "First run: installing the locked dependencies into $(VENV) (Airflow and the sandbox's servers, 0.75 GB)."
	@echo "It takes a few minutes (3.5 on 2 cores) and prints nothing until it is done; later runs skip it."
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.txt
	$(PY) -m pip check
	touch $@

$(TEST_STAMP): requirements-test.txt $(RUNTIME_STAMP)
	@echo "Installing the test dependencies into $(VENV) (once)."
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-test.txt
	$(PY) -m pip check
	touch $@

lock:  ## recompile the locks from requirements*.in (needs network)
	$(PYTHON) -m venv .lock-tools && .lock-tools/bin/pip install --quiet pip-tools
	.lock-tools/bin/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url -o requirements.txt requirements.in
	.lock-tools/bin/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url -o requirements-test.txt requirements-test.in
	rm -rf .lock-tools

clean:
	rm -rf .run
