# The ETL job platform. `make help` lists the targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# dlt and sling, for bench-peers only: a separate environment so they never meet the project's
PEERS_VENV := benchmarks/.peers-venv
PEERS_STAMP := $(PEERS_VENV)/.installed
PEERS_ARGS ?=  # e.g. PEERS_ARGS="--rows 5000000 --no-delete-insert"
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_HOME

.DEFAULT_GOAL := help
.PHONY: help install demo test lint typecheck unit dev db-upgrade reference-api bench bench-large bench-daemon bench-ledger bench-peers clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its dev tools

demo: $(STAMP) ## run the whole sample flow on embedded SQLite (quick start, step 1)
	$(BIN)/python sandbox/sample_run.py

test: lint typecheck unit ## lint, type-check and run every test (quick start, step 2)

lint: $(STAMP) ## ruff lint and format check, import layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy over etl_assets/
	$(BIN)/mypy etl_assets

unit: $(STAMP) ## the test suite (SQLite always; PostgreSQL when reachable)
	$(BIN)/pytest

db-upgrade: $(STAMP) ## create or upgrade the ledger and warehouse schema
	$(BIN)/etl db upgrade

reference-api: $(STAMP) ## serve the reference FX and catalog APIs on 127.0.0.1:8765
	$(BIN)/etl reference-api

dev: $(STAMP) ## start `dagster dev` (UI on http://127.0.0.1:3000) with the reference APIs
	$(BIN)/etl dagster-home
	$(BIN)/etl db upgrade
	$(BIN)/etl reference-api & trap 'kill $$!' EXIT; \
	$(BIN)/dagster dev -w workspace.yaml

bench: bench-large bench-daemon bench-ledger ## run every benchmark (needs PostgreSQL; RabbitMQ for --celery-workers)

bench-large: $(STAMP) ## 1M- and 5M-row jobs against raw COPY; 1M rows on SQLite against to_sql
	$(BIN)/python benchmarks/bench_large_file.py
	$(BIN)/python benchmarks/bench_large_file.py --rows 5000000 --rounds 1
	$(BIN)/python benchmarks/bench_large_file.py --sqlite --rounds 1

bench-daemon: $(STAMP) ## 500 small jobs through the real daemon, both launchers; time to warehouse of one small file
	$(BIN)/python benchmarks/bench_daemon_jobs.py
	$(BIN)/python benchmarks/bench_daemon_jobs.py --celery-workers 2
	$(BIN)/python benchmarks/bench_time_to_warehouse.py --via api
	$(BIN)/python benchmarks/bench_time_to_warehouse.py --via cli

bench-ledger: $(STAMP) ## the ledger's queries, etl prune, and every operator read (API, dashboard, CLI) at 1,000,000 jobs
	$(BIN)/python benchmarks/bench_ledger_scale.py
	$(BIN)/python benchmarks/bench_ops_surface.py

$(PEERS_STAMP): benchmarks/peers-requirements.txt
	rm -rf $(PEERS_VENV)
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet -r benchmarks/peers-requirements.txt
	touch $(PEERS_STAMP)

bench-peers: $(STAMP) $(PEERS_STAMP) ## the 1M-row job against dlt's and sling's keyed loads of the same file, fresh and again
	$(BIN)/python benchmarks/bench_peers.py --peers-python $(PEERS_VENV)/bin/python $(PEERS_ARGS)

clean: ## remove local state (.dagster_home, .etl_data); keeps .venv
	rm -rf .dagster_home .etl_data
