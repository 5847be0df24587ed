# crypto-bot: run `make help` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(PYTHON) -m uv
RUN := $(UV) run --frozen --no-sync
export UV_PYTHON_DOWNLOADS := never

.PHONY: help bootstrap sync demo test lint typecheck unit bench build deploy clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap: ## install uv for the project's Python if it is missing
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

sync: bootstrap ## create .venv from uv.lock (exact versions)
	@$(UV) sync --frozen --quiet

demo: sync ## replay the README example through the paper exchange, in both modes
	@$(RUN) crypto-bot replay events/alerts/readme_example.jsonl --config strategy_config.json \
		--fee 0 --increment 0 --compare

lint: sync ## ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

typecheck: sync ## mypy on the layer, the functions and the tests
	@$(RUN) mypy layers/core/crypto_bot tests

unit: sync ## pytest
	@$(RUN) pytest -q

test: lint typecheck unit ## the whole gate: lint, types, tests

bench: sync ## benchmarks (coming with the performance issue)
	@echo "make bench: no benchmarks yet" >&2; exit 1

build: sync ## validate strategy_config.json, bundle it into the core layer, sam build
	@$(RUN) python -c "from crypto_bot.config import StrategyConfig; import os; \
		StrategyConfig.load('strategy_config.json', os.environ.get('QUOTE_CURRENCY', 'USD'))"
	@cp strategy_config.json layers/core/strategy_config.json
	$(RUN) sam build

deploy: build ## sam deploy (--guided the first time: make deploy ARGS=--guided)
	$(RUN) sam deploy $(ARGS)

clean: ## remove caches and build output
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .aws-sam
