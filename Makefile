# Customer lifecycle intelligence: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-stamp
DEMO := demo
DEMO_CUSTOMERS ?= 20000
DEMO_TRIALS ?= 3
PORT ?= 3000

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || { \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
	    || { echo "Python 3.11 is needed (found $$($(PYTHON) --version 2>&1)); set PYTHON=..." >&2; exit 1; }; \
	  $(PYTHON) -m venv $(VENV); }
	@test -x $(BIN)/uv || { $(BIN)/python -m ensurepip --default-pip >/dev/null 2>&1; \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); }
	$(BIN)/uv sync --frozen --all-extras --compile-bytecode --python $(BIN)/python
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the locked stack (uv.lock) plus this project

lint: $(STAMP) ## ruff format check, ruff check and mypy on the five packages
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	@rm -rf build/mypy && mkdir -p build/mypy/lifecycle
	@ln -s ../../../lifecycle/__init__.py ../../../lifecycle/cli build/mypy/lifecycle/
	@for p in features models training serving; do ln -s ../../../$$p build/mypy/lifecycle/$$p; done
	cd build/mypy && ../../$(BIN)/mypy --config-file ../../pyproject.toml

format: $(STAMP) ## Format the code and apply safe ruff fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

browser: ## Install Debian's Chromium and CJK fonts for the browser tests (as root; else they skip)
	@if command -v chromium >/dev/null 2>&1; then \
	  echo "browser tests: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and fonts-noto-cjk with apt-get"; \
	  { apt-get install -y -q chromium fonts-noto-cjk >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-noto-cjk >/dev/null 2>&1; }; } || \
	  echo "could not install chromium: the browser tests will skip"; \
	else \
	  echo "no chromium and no root apt-get: the browser tests will skip"; \
	fi

test: lint browser ## Install, lint and run the whole test suite (with the browser tests when Chromium is there)
	$(BIN)/pytest

notebooks: $(STAMP) ## Execute the three notebooks with papermill (as make test does); executed copies in notebooks/executed/
	rm -rf notebooks/executed
	NOTEBOOKS_OUT=notebooks/executed $(BIN)/pytest tests/notebooks --durations=0 -q

lab: $(STAMP) ## Open the notebooks in JupyterLab (adds the lab dependency group to .venv; make install drops it)
	$(BIN)/uv sync --frozen --all-extras --compile-bytecode --group lab --quiet --python $(BIN)/python
	cd notebooks && ../$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root)

strip: $(STAMP) ## Strip outputs and execution counts from the notebooks before committing (nbstripout)
	$(BIN)/nbstripout notebooks/*.ipynb

demo: $(STAMP) ## Simulate 20,000 customers, build features, train (3 trials), promote, learn uplift, score, serve
	$(BIN)/lifecycle simulate --customers $(DEMO_CUSTOMERS) --seed 42 --out $(DEMO)/sim
	$(BIN)/lifecycle validate --events $(DEMO)/sim/events.parquet --out $(DEMO)/validated
	$(BIN)/lifecycle features --events $(DEMO)/validated/events.parquet --cutoff 2026-01-01 --out $(DEMO)/features.parquet
	$(BIN)/lifecycle stages --events $(DEMO)/validated/events.parquet --cutoff 2026-01-01
	$(BIN)/lifecycle rfm --events $(DEMO)/validated/events.parquet --cutoff 2026-01-01
	$(BIN)/lifecycle train --events $(DEMO)/validated/events.parquet --truth $(DEMO)/sim/truth.parquet --trials $(DEMO_TRIALS) --report-dir $(DEMO)/reports
	$(BIN)/lifecycle promote
	$(BIN)/lifecycle uplift --events $(DEMO)/validated/events.parquet --campaigns $(DEMO)/sim/campaigns.parquet
	$(BIN)/lifecycle score --events $(DEMO)/validated/events.parquet --cutoff 2026-01-01 --out $(DEMO)/scores.parquet
	@echo "MLflow: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --workers 1  (then open http://127.0.0.1:5000)"
	@$(MAKE) --no-print-directory serve

serve: $(STAMP) ## Serve the demo's champions and customers on http://127.0.0.1:$(PORT) with an API key (Ctrl-C stops)
	@test -f $(DEMO)/scores.parquet || { echo "run make demo first" >&2; exit 1; }
	@test -s $(DEMO)/api_key || $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(18))' > $(DEMO)/api_key
	@key=$$(cat $(DEMO)/api_key); \
	customer=$$($(BIN)/python -c 'import pandas as p; s = p.read_parquet("$(DEMO)/scores.parquet", columns=["customer_id", "n_purchases"]); print(s[s.n_purchases > 1].customer_id.iloc[0])'); \
	example="curl -s -X POST http://127.0.0.1:$(PORT)/predict -H 'Content-Type: application/json' -H 'Authorization: Bearer $$key' -d '{\"customer_id\": \"$$customer\", \"top_k\": 3}'"; \
	LIFECYCLE_API_KEY=$$key $(BIN)/lifecycle serve --lookup $(DEMO)/scores.parquet --events $(DEMO)/validated/events.parquet --port $(PORT) & pid=$$!; \
	trap 'kill -INT $$pid 2>/dev/null; wait $$pid' INT TERM; \
	until curl -sf http://127.0.0.1:$(PORT)/readyz >/dev/null; do kill -0 $$pid 2>/dev/null || exit 1; sleep 1; done; \
	echo; echo "== the service is ready; this call works (API key in $(DEMO)/api_key):"; echo "$$example"; echo; \
	eval "$$example" | $(BIN)/python -m json.tool --no-ensure-ascii | head -60; \
	echo "   ..."; echo "== the marketer page: http://127.0.0.1:$(PORT)/ (sign in with the key); OpenAPI: /docs.json. Ctrl-C stops the service."; \
	wait $$pid

# Benchmarks (BENCHMARKS.md): each script writes a JSON per run; `make bench`/`bench-quick` also
# collect the printed tables into one markdown file per run.
BENCH_SYNC := $(BIN)/uv sync --frozen --all-extras --compile-bytecode --group bench --quiet --python $(BIN)/python
BENCH_OUT ?= benchmarks/results
QUICK_OUT ?= benchmarks/results/quick
define bench_steps
	@set -o pipefail; mkdir -p $(2); tables=$(2)/tables-$$(date -u +%Y%m%dT%H%M%SZ).md; \
	IFS='+' read -ra steps <<< "$(1)"; for step in "$${steps[@]}"; do \
	  step=$$(echo $$step); echo "== $$step" >&2; printf '\n## `%s`\n\n' "$$step" >> $$tables; \
	  $(BIN)/python benchmarks/$$step | tee -a $$tables || exit 1; \
	done; echo "tables: $$tables"
endef
FULL_STEPS := real_data.py --trials 30 --out $(BENCH_OUT) + training_quality.py sim --customers 20000 --trials 20 --out $(BENCH_OUT) + feature_speed.py --events 1000000 10000000 50000000 --out $(BENCH_OUT) + serving_latency.py --duration 15 --out $(BENCH_OUT) + training_time.py --customers 100000 --trials 50 --out $(BENCH_OUT)
QUICK_STEPS := real_data.py cdnow_sample online_retail simulator --protocols time_honest --sim-customers 3000 --trials 3 --out $(QUICK_OUT) --plots $(QUICK_OUT)/plots + feature_speed.py --events 200000 1000000 --repeats 1 --out $(QUICK_OUT) --plots $(QUICK_OUT)/plots + serving_latency.py --quick --out $(QUICK_OUT) + training_time.py --quick --out $(QUICK_OUT)

bench: $(STAMP) ## Every benchmark (about 80 min): real data vs BTYD peers, simulator vs oracle, features to 50M events, serving, training time
	@$(BENCH_SYNC)
	$(call bench_steps,$(FULL_STEPS),$(BENCH_OUT))

bench-quick: $(STAMP) ## A small version of every benchmark (under 10 min); results in benchmarks/results/quick/
	@$(BENCH_SYNC)
	$(call bench_steps,$(QUICK_STEPS),$(QUICK_OUT))

bench-quality: $(STAMP) ## Proper scores of the hybrid on CDNOW, Online Retail and the simulator vs BG/NBD, Pareto/NBD, naive, RFM
	@$(BENCH_SYNC)
	$(BIN)/python benchmarks/real_data.py --trials 30 --out $(BENCH_OUT)

bench-features: $(STAMP) ## Feature build speed and memory at 1M, 10M and 50M events beside pymc-marketing and lifetimes
	@$(BENCH_SYNC)
	$(BIN)/python benchmarks/feature_speed.py --events 1000000 10000000 50000000

bench-training: $(STAMP) ## Simulated model quality vs RFM, last-period, BG/NBD and the oracle (20,000 customers)
	$(BIN)/python benchmarks/training_quality.py sim --customers 20000 --trials 20

bench-training-time: $(STAMP) ## Wall time of lifecycle train on 100,000 simulated customers with 50 trials, by part
	$(BIN)/python benchmarks/training_time.py --customers 100000 --trials 50

bench-serving: $(STAMP) ## Serving latency/throughput under wrk vs a bare Starlette floor (the demo's models, else builds a small world)
	$(BIN)/python benchmarks/serving_latency.py --duration 15

bench-reliability: $(STAMP) ## Champion swaps under load (promote, rollback), a soak with memory growth, kills at every write (~15 min; QUICK=1: ~5)
	$(BIN)/python benchmarks/reliability.py $(if $(QUICK),--quick,)

bench-policy: $(STAMP) ## Next-best-action plan vs heuristics and the oracle at 5/10/25% budgets, true and IPW/DR (QUICK=1: 3,000 customers)
	$(BIN)/python benchmarks/policy.py $(if $(QUICK),--quick,)

bento: bento-requirements ## Build the Bento of the service (no Docker needed); then see docs/serving.md
	$(BIN)/bentoml build

bento-requirements: $(STAMP) ## Refresh serving/requirements.txt (the Bento's packages) from uv.lock
	$(BIN)/uv export --frozen --no-dev --no-hashes --no-emit-project --no-header --no-annotate --format requirements.txt --quiet > serving/requirements.txt

bench-sim: $(STAMP) ## Simulator speed at 100k and 1M customers, and truth vs realised outcomes
	$(BIN)/python benchmarks/simulator.py --customers 100000 1000000

clean: ## Remove the virtual environment, caches and demo output
	rm -rf $(VENV) $(DEMO) build .pytest_cache .mypy_cache .ruff_cache mlflow.db mlartifacts reports notebooks/work notebooks/executed

.PHONY: help install lint format browser test notebooks lab strip demo serve bench bench-quick bench-quality bench-features bench-sim bench-training bench-training-time bench-serving bench-reliability bench-policy bento bento-requirements clean
