# Benchmarks, included by the top-level Makefile.
#
#   make bench                 build what it needs (the `etl` CLI, the hot-path bench,
#                              the release Lambda binaries), install the Python side
#                              into bench/.venv, generate 10k/100k/1M posts under
#                              bench/data/, and measure: etl run vs the Python
#                              reference, hot path alone, scaling, memory, calls and
#                              cost, Lambda start-up and package size.
#                              Results: bench/results/latest.json and summary.md.
#   make bench BENCH_ARGS=--quick       100k only, one round, no 1M
#   make bench BENCH_LAMBDA=0           skip the (slow, fat-LTO) release Lambda build
#   make bench-clean           remove generated data, lakes and results
#
# Everything is built and run under `nice -n 10` (run.py nices each measured
# process itself): benchmarks share the machine.

BENCH_VENV   ?= bench/.venv
BENCH_ARGS   ?=
BENCH_LAMBDA ?= 1
BENCH_NICE   ?= nice -n 10
BENCH_HOTPATH := $(CARGO_TARGET_DIR)/hotpath/etl-bench-hotpath

.PHONY: bench bench-venv bench-etl bench-hotpath bench-lambda-bins bench-clean

$(BENCH_VENV)/.stamp: bench/python/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/python/requirements.txt
	touch $@

bench-venv: $(BENCH_VENV)/.stamp

# One cargo build at a time, in this order (make runs these prerequisites serially
# unless -j is given; the recipes below never start two cargo processes).
bench-etl:
	$(BENCH_NICE) $(CARGO) build --profile bench-cli -p etl-cli

bench-hotpath: bench-etl
	cd bench/hotpath && $(BENCH_NICE) $(CARGO) build --profile hotpath

bench-lambda-bins: bench-hotpath
ifeq ($(BENCH_LAMBDA),1)
	$(BENCH_NICE) $(CARGO) build --release -p producer -p consumer
else
	@echo "BENCH_LAMBDA=0: not building the release Lambda binaries; start-up is reported as not measured."
endif

bench: venv $(BENCH_VENV)/.stamp bench-etl bench-hotpath bench-lambda-bins
	$(BENCH_VENV)/bin/python bench/run.py --etl $(CARGO_TARGET_DIR)/bench-cli/etl --hotpath $(BENCH_HOTPATH) \
	  --target-dir $(CARGO_TARGET_DIR) --python $(abspath $(BENCH_VENV))/bin/python $(BENCH_ARGS)

bench-clean:
	rm -rf bench/data bench/results

## The producer ledger's memory ------------------------------------------------
#
#   make bench-ledger          peak resident memory of the producer's ledger work
#                              (load a stored generation, record 10% new versions,
#                              probe all, prune, encode) at 1M and 4M versions: the
#                              bounded spill ledger against the whole-in-memory way
#                              it replaced. Lines in bench/results/ledger.jsonl.

BENCH_LEDGER_SIZES ?= 1000000 4000000

.PHONY: bench-ledger
bench-ledger:
	$(BENCH_NICE) $(CARGO) build --workspace --features etl-cli/cloud --examples
	mkdir -p bench/results
	for n in $(BENCH_LEDGER_SIZES); do for s in memory spill; do \
	  $(BENCH_NICE) $(CARGO_TARGET_DIR)/debug/examples/ledger_memory --versions $$n --store $$s || exit 1; \
	done; done | tee bench/results/ledger.jsonl
