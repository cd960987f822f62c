# Fuzzing (cargo-fuzz / libFuzzer) — included by the top-level Makefile.
#
#   make fuzz         every target for $(FUZZ_SECONDS) s (default 600), two at a
#                     time, corpus minimised afterwards; writes fuzz/results.json
#   make fuzz-smoke   every target for ~30 s; writes fuzz/logs/results-smoke.json
#
# The fuzz crate is its own workspace (fuzz/Cargo.toml), so `make test` and
# `cargo test --workspace` never build it. cargo-fuzz passes nightly-only
# flags; on the stable toolchain they are allowed with RUSTC_BOOTSTRAP=1
# (run.sh sets it). Builds go to $(FUZZ_TARGET_DIR), one subdirectory per
# sanitizer. Not part of `make test`.

FUZZ_SECONDS    ?= 600
FUZZ_JOBS       ?= 2
FUZZ_TARGET_DIR ?= $(CURDIR)/fuzz/target
FUZZ_TARGETS    ?=

.PHONY: fuzz fuzz-smoke fuzz-tools

fuzz-tools:
	@cargo fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

fuzz: fuzz-tools
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_TARGET_DIR=$(FUZZ_TARGET_DIR) \
	  FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz/run.sh

fuzz-smoke: fuzz-tools
	FUZZ_SECONDS=30 FUZZ_CMIN=0 FUZZ_KEEP=0 FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_TARGET_DIR=$(FUZZ_TARGET_DIR) \
	  FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_RESULTS=$(CURDIR)/fuzz/logs/results-smoke.json fuzz/run.sh
