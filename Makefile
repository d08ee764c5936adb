# kapparec — `make help` lists the targets. Everything runs in .venv, created on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
DATA   ?= ../shared/data
# On CI the dashboard test must run, so `make test` installs the browser there first.
CI_BROWSER := $(if $(filter true 1 yes,$(CI)),browser)

.DEFAULT_GOAL := help
.PHONY: help install demo test unit integration lint bench eval up down replay \
        serve browser bench-http bench-restart dashboard-image validate-infra ablation

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,eval]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv and install kapparec with its test/dev/eval extras

demo: install ## embedded broker + Redis + worker, load the REES46 slice, show recommendations
	KAPPAREC_DATA_DIR=$(DATA) $(BIN)/kapparec demo

test: install $(CI_BROWSER) ## the whole suite: unit tests and integration tests (real broker and Redis)
	$(BIN)/pytest

unit: install ## unit tests only (no services needed)
	$(BIN)/pytest tests/unit

integration: install $(CI_BROWSER) ## integration tests only
	$(BIN)/pytest tests/integration

validate-infra: install ## validate infra/compose.yaml and infra/k8s offline (schemas + settings)
	$(BIN)/pytest tests/unit/test_infra.py -q

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install ## pipeline throughput vs a Faust no-op agent, and freshness -> reports/
	$(BIN)/kapparec bench

eval: install ## offline prequential evaluation on MovieLens-100K -> reports/
	$(BIN)/kapparec eval --dataset movielens --data-dir $(DATA) --out reports

ablation: install ## the evaluation with every ablation variant of the online recommender
	$(BIN)/kapparec eval --dataset movielens --data-dir $(DATA) --out reports --models all

up: install ## start the embedded broker and Redis (prints their addresses)
	$(BIN)/kapparec up

down: install ## stop what `make up` started
	$(BIN)/kapparec down

replay: install ## reprocess the log into version V beside the live one (make replay V=2)
	$(BIN)/kapparec replay --version $(V)
	@echo "then: $(BIN)/kapparec promote $(V)"

serve: install ## HTTP read API, /metrics and /dashboard (KAPPAREC_HTTP_HOST/PORT/PROCESSES)
	$(BIN)/kapparec serve

browser: ## Debian's chromium for the dashboard test (apt-get, as root; no browser download)
	@test -x /usr/bin/chromium || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	@/usr/bin/chromium --version

bench-restart: install ## a restarted worker over 100k catalogue records: launch -> a new user's first list -> reports/
	$(BIN)/python -m agents.restart_bench --catalog 100000 --events 2000 --runs 2 --out reports

bench-http: install ## HTTP API and Redis GET latency, open loop at 1k and 10k req/s -> reports/
	KAPPAREC_REDIS_URL=$${KAPPAREC_REDIS_URL:-redis://127.0.0.1:6379/15} \
	  $(BIN)/python -m agents.http_bench --rates 1000,10000 --redis-rates 10000 --duration 20

dashboard-image: install browser ## refresh docs/img/dashboard.png from the dashboard test
	DASHBOARD_SCREENSHOT=$(CURDIR)/docs/img/dashboard.png $(BIN)/pytest -q \
	  tests/integration/serving/test_dashboard.py -k figures

scale: install ## per-unit costs: pipeline and memory at 10k/100k/1M items, HNSW at 1M, Redis bytes per list -> reports/
	nice -n 10 $(BIN)/python -m agents.scale_bench all --data-dir $(DATA) --out reports
