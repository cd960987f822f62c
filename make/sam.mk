# SAM / infrastructure targets, included by the top-level Makefile.
#
#   make venv-iac             .venv-iac with aws-sam-cli, cfn-lint, checkov, pytest
#   make validate             sam validate --lint, cfn-lint, checkov
#   make test-iac             pytest tests/iac (template, IAM-vs-code, contract checks)
#   make build                sam build (Rust, arm64, via cargo-lambda + zig; slow)
#   make deploy               sam deploy with samconfig.toml
#   make deploy-guided        sam deploy --guided (first deploy)
#   make invoke-producer      sam local invoke (needs Docker)
#   make local-invoke-producer  the same fixture through cargo lambda watch/invoke (no Docker)
#
# .venv (the lead's `venv` target, tools/requirements.txt) provides cargo-lambda
# and ziglang; it goes FIRST on PATH so that the `python3` cargo-lambda runs to
# find zig is the one that has ziglang installed.

VENV ?= .venv
VENV_IAC ?= .venv-iac
SAM_TEMPLATE ?= template.yaml
SAM_STACK ?=
LAMBDA_TARGET ?= aarch64-unknown-linux-gnu
# Port of the local Lambda runtime API that `cargo lambda watch` serves.
CARGO_LAMBDA_PORT ?= 9000

# No telemetry: it would try to reach the network on every call.
SAM := SAM_CLI_TELEMETRY=0 $(VENV_IAC)/bin/sam
CFN_LINT := $(VENV_IAC)/bin/cfn-lint
CHECKOV := $(VENV_IAC)/bin/checkov
PYTEST_IAC := $(VENV_IAC)/bin/python -m pytest
VENV_IAC_STAMP := $(VENV_IAC)/.installed
BUILD_PATH := $(abspath $(VENV))/bin:$(PATH)
SAM_STACK_FLAG := $(if $(SAM_STACK),--stack-name $(SAM_STACK),)

.PHONY: venv-iac validate test-iac build deploy deploy-guided \
	invoke-producer invoke-consumer local-invoke-producer local-invoke-consumer \
	check-lambda-toolchain check-docker

venv-iac: $(VENV_IAC_STAMP)

$(VENV_IAC_STAMP): tools/requirements-iac.txt
	test -x $(VENV_IAC)/bin/python || python3 -m venv $(VENV_IAC)
	$(VENV_IAC)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_IAC)/bin/python -m pip install --quiet -r tools/requirements-iac.txt
	touch $@

validate: $(VENV_IAC_STAMP)
	$(SAM) validate --lint --template-file $(SAM_TEMPLATE) --region us-east-1
	$(CFN_LINT) $(SAM_TEMPLATE)
	$(CHECKOV) -f $(SAM_TEMPLATE) --framework cloudformation --skip-download --quiet --compact

test-iac: $(VENV_IAC_STAMP)
	$(PYTEST_IAC) tests/iac -q

check-lambda-toolchain:
	@test -x $(VENV)/bin/cargo-lambda || $(MAKE) --no-print-directory venv
	@PATH="$(BUILD_PATH)" python3 -c 'import ziglang' 2>/dev/null || { echo "the python3 first on PATH has no ziglang: run 'make venv' first." >&2; exit 1; }
	rustup target add $(LAMBDA_TARGET)

# Compiles both binaries in release mode for arm64 (cargo lambda build
# --release --arm64), then copies each bootstrap into .aws-sam/build.
build: $(VENV_IAC_STAMP) check-lambda-toolchain
	PATH="$(BUILD_PATH)" $(SAM) build --template-file $(SAM_TEMPLATE) --beta-features

deploy: $(VENV_IAC_STAMP)
	$(SAM) deploy $(SAM_STACK_FLAG)

deploy-guided: $(VENV_IAC_STAMP)
	$(SAM) deploy --guided $(SAM_STACK_FLAG)

check-docker:
	@docker info >/dev/null 2>&1 || { \
	  echo "sam local invoke runs the function in a Docker container, and Docker is not available here." >&2; \
	  echo "Use 'make local-invoke-producer' / 'make local-invoke-consumer' (cargo lambda, no Docker) instead." >&2; \
	  exit 1; }

invoke-producer: check-docker $(VENV_IAC_STAMP)
	$(SAM) local invoke ProducerFunction -e events/scheduled-event.json --beta-features --skip-pull-image

invoke-consumer: check-docker $(VENV_IAC_STAMP)
	$(SAM) local invoke ConsumerFunction -e events/sqs-batch.json --beta-features --skip-pull-image

# Runs the real binary under cargo lambda's local Lambda runtime API (the
# Docker-free stand-in for sam local invoke): start `cargo lambda watch` in the
# background (its own process group), wait for its port, invoke with the
# fixture, and stop the watcher however the invoke ends. The function reads its
# environment (QUEUE_URL, AWS_ENDPOINT_URL, ...) from this shell, or from
# LAMBDA_ENV_FILE (KEY=VALUE lines) when set.
LAMBDA_ENV_FILE ?=
local-invoke-producer local-invoke-consumer: SHELL := /bin/bash

define cargo_lambda_invoke
	@set -e; \
	export PATH="$(BUILD_PATH)"; \
	log=$$(mktemp); \
	setsid cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port $(CARGO_LAMBDA_PORT) \
	  $(if $(LAMBDA_ENV_FILE),--env-file $(LAMBDA_ENV_FILE),) >"$$log" 2>&1 & watcher=$$!; \
	trap 'kill -TERM -- -$$watcher 2>/dev/null || kill $$watcher 2>/dev/null || true; wait $$watcher 2>/dev/null || true; rm -f "$$log"' EXIT; \
	for i in $$(seq 1 120); do \
	  if (exec 3<>/dev/tcp/127.0.0.1/$(CARGO_LAMBDA_PORT)) 2>/dev/null; then break; fi; \
	  kill -0 $$watcher 2>/dev/null || { cat "$$log" >&2; exit 1; }; \
	  sleep 1; \
	done; \
	cargo lambda invoke $(1) --invoke-address 127.0.0.1 --invoke-port $(CARGO_LAMBDA_PORT) --data-file $(2) \
	  || { echo "--- cargo lambda watch output:" >&2; cat "$$log" >&2; exit 1; }
endef

local-invoke-producer:
	$(call cargo_lambda_invoke,producer,events/scheduled-event.json)

local-invoke-consumer:
	$(call cargo_lambda_invoke,consumer,events/sqs-batch.json)

# Several nights of live data through the real producer and consumer binaries
# under `cargo lambda watch`, against a moto server (tools/lambda_nights.py):
# bulk load, updates, late writes, SQS-refused characters, odd ids; after every
# night the S3 lake holds every version exactly once.
LAMBDA_NIGHTS_BULK ?= 20000
.PHONY: lambda-nights
lambda-nights: venv
	PATH="$(BUILD_PATH)" $(abspath $(VENV))/bin/python tools/lambda_nights.py \
	  --moto $(abspath $(VENV))/bin/moto_server --bulk $(LAMBDA_NIGHTS_BULK)
